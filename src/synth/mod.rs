//! The project's own firmware writers: realistic camera images assembled in code — squashfs through
//! backhand, JFFS2, UBI/UBIFS, YAFFS2, uImage partitions, Dahua and Hikvision update packages, raw
//! flash dumps, tar.gz updates, romfs and squashfs 3 — for `fwsim demo`, the tests and the
//! benchmarks. Everything is generated; nothing is downloaded.
//!
//! ```
//! use fwsim::synth::{Firmware, Options};
//! # fn main() -> Result<(), fwsim::synth::SynthError> {
//! let fw = Firmware::camera(&Options::tiny())?;
//! let bin = fw.dahua_bin()?;
//! assert_eq!(&bin[..4], b"DH\x03\x04");
//! # Ok(())
//! # }
//! ```

pub mod camera;
pub mod content;
pub mod dahua;
pub mod fdt;
pub mod flash;
pub mod hikvision;
pub mod instar;
pub mod jffs2;
pub mod kernel;
pub mod novatek;
pub mod reolink;
pub mod romfs;
pub mod squashfs;
pub mod squashfs3;
pub mod tarball;
pub mod ubi;
pub mod ubifs;
pub mod vendor;
pub mod yaffs2;

pub use camera::{Brand, Firmware, Options, Partition, Payload};
pub use content::{Entry, EntryData, Rootfs};
pub use squashfs::Compression;
pub use vendor::{Soc, Software};

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// backhand refused the filesystem.
    #[error("squashfs writer: {0}")]
    Squashfs(String),
    /// The zip writer failed.
    #[error("zip writer: {0}")]
    Zip(String),
    /// The tar or gzip writer failed.
    #[error("tar writer: {0}")]
    Tar(String),
    /// A parameter that cannot be honoured (a partition that does not fit, a bad block size …).
    #[error("{0}")]
    Invalid(String),
}
