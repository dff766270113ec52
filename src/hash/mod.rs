//! Digests of bytes: SHA-256, ssdeep (in-house, byte-identical to libfuzzy 2.14.1) and TLSH,
//! computed together in one pass ([`digests()`]), and their comparison on pre-parsed forms.
//!
//! ```
//! use fwsim::hash::{digests, ssdeep};
//! let d = digests(b"");
//! assert_eq!(d.ssdeep.as_ref().map(ToString::to_string), Ok("3::".to_string()));
//! assert!(d.tlsh.is_none());
//! let a: ssdeep::Ssdeep = "96:abcdefgh:abcd".parse().unwrap();
//! let b: ssdeep::Ssdeep = "384:abcdefgh:abcd".parse().unwrap();
//! assert_eq!(ssdeep::compare(&a, &b), None); // block sizes 4x apart: not comparable
//! ```

pub mod digests;
pub(crate) mod directory;
pub mod ssdeep;
pub mod ssdeep_index;
pub mod tlsh;
pub mod tlsh_index;

pub use digests::{DigestHasher, Digests, PreparedDigests, Similarity, digests, digests_par};
pub use ssdeep::{Ssdeep, SsdeepHasher, SsdeepPrepared};
pub use ssdeep_index::SsdeepIndex;
pub use tlsh::{Tlsh, TlshHasher};
pub use tlsh_index::TlshIndex;
