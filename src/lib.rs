//! fwsim — firmware similarity analyzer.
//!
//! The pipeline, stage by stage (each module uses only those before it):
//! bytes → [`unpack`] (a [`unpack::Tree`] of everything inside the image) → features →
//! fingerprint → corpus index → compare → report.
//!
//! ```
//! use fwsim::unpack::{unpack, Limits};
//! # fn main() {
//! let image = bytes::Bytes::from_static(b"not a container");
//! let tree = unpack(image, b"image.bin", &Limits::default());
//! assert_eq!(tree.nodes().len(), 1);
//! # }
//! ```

pub mod compare;
pub mod corpus;
pub mod error;
pub mod features;
pub mod fingerprint;
pub mod hash;
pub mod input;
pub mod inspect;
pub mod synth;
pub mod unpack;

pub use error::{Error, Result};
