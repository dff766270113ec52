//! The format registry: one module per format, listed once in [`FORMATS`].
//!
//! # Adding a format
//! 1. Write `formats/<name>.rs` with a unit struct implementing [`Format`]: its `name`, the magic
//!    bytes that announce it (with their offset inside the structure), a cheap `detect` that
//!    validates a candidate structurally, and `unpack`, which returns the structure's true extent,
//!    what its header said, and its entries.
//! 2. Parse with [`crate::unpack::bytes`] (checked reads), decompress through
//!    [`Ctx::sink`] (bounded output), call [`Ctx::check`] in every loop, and cap every count read
//!    from the input by the bytes that could hold it before allocating.
//! 3. Add one line to [`FORMATS`], a fixture builder in `tests/common/`, tests (valid, truncated,
//!    corrupted) and a fuzz target.

use bytes::Bytes;

use super::limits::{BlobAccount, Budget, LimitError, Sink};
use super::tree::Unpacked;
use super::{Hashing, UnpackError};

pub mod bzip2;
pub mod cpio;
pub mod cramfs;
pub mod ext;
pub mod fdt;
pub mod gzip;
pub mod hikvision;
pub mod instar;
pub mod jffs2;
pub mod lz4;
pub mod lzma;
pub mod lzop;
pub mod novatek;
pub mod reolink;
pub mod romfs;
pub mod sevenz;
pub mod squashfs;
pub mod tar;
pub mod ubi;
pub mod ubifs;
pub mod uimage;
pub mod xz;
pub mod yaffs2;
pub mod zimage;
pub mod zip;
pub mod zlib;
pub mod zstd;

/// A magic byte string and where it sits inside the structure it announces.
#[derive(Clone, Copy, Debug)]
pub struct Magic {
    /// The bytes.
    pub bytes: &'static [u8],
    /// Their offset from the start of the structure (tar's `ustar` sits at 257).
    pub offset: usize,
}

impl Magic {
    /// A magic at the start of the structure.
    pub const fn at0(bytes: &'static [u8]) -> Self {
        Self { bytes, offset: 0 }
    }
}

/// One container, filesystem or compression format.
pub trait Format: Sync + Send {
    /// Short stable name, used in provenance and JSON (`squashfs`, `uimage`, `gzip` …).
    fn name(&self) -> &'static str;

    /// The magics that announce this format.
    fn magics(&self) -> &'static [Magic];

    /// Cheap structural check of a candidate that starts at `data[0]` (and runs at most to the end
    /// of `data`). Must not allocate in proportion to the input or decompress more than a little.
    fn detect(&self, data: &[u8]) -> bool;

    /// Unpacks the structure at `data[0]`. `data` may extend past the structure's end; the result
    /// says how far the structure really goes.
    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError>;

    /// The alignment (from the start of the blob being scanned) at which carving looks for this
    /// format: 1 (anywhere) for most; a flash page or block for formats that only ever start on
    /// one and whose magics are too common to look for everywhere.
    fn carve_alignment(&self) -> usize {
        1
    }
}

/// Every format fwsim knows, in priority order: when two formats match at the same offset the
/// earlier one is tried first.
pub static FORMATS: &[&dyn Format] = &[
    &uimage::UImage,
    &gzip::Gzip,
    &zip::Zip,
    &zip::Dahua,
    &hikvision::Hikvision,
    &novatek::Novatek,
    &novatek::NovatekCksm,
    &novatek::Bcl1,
    &reolink::Reolink,
    &instar::InstarHd,
    &instar::Bneg,
    &zimage::ZImage,
    &zimage::Arm64Image,
    &sevenz::SevenZip,
    &tar::Tar,
    &cpio::Cpio,
    &squashfs::Squashfs,
    &cramfs::Cramfs,
    &ubi::Ubi,
    &ubifs::Ubifs,
    &romfs::Romfs,
    &romfs::AmbaRomfs,
    &jffs2::Jffs2,
    &yaffs2::Yaffs2,
    &ext::Ext,
    &fdt::Fdt,
    &lzop::Lzop,
    &xz::Xz,
    &bzip2::Bzip2,
    &zstd::Zstd,
    &lz4::Lz4,
    &lzma::Lzma,
    &zlib::Zlib,
];

/// Looks a format up by name.
pub fn by_name(name: &str) -> Option<&'static dyn Format> {
    FORMATS.iter().copied().find(|f| f.name() == name)
}

/// Whether an entry name would leave the extraction root if joined naively: an absolute path (`/`,
/// `\\`, a drive letter) or a `..` component (with `/` or `\\` as separator). Such names are listed
/// as the container states them and flagged `unsafe_path` in the entry's metadata (zip-slip).
pub fn path_escapes(name: &[u8]) -> bool {
    let absolute = matches!(name.first(), Some(b'/' | b'\\'))
        || matches!(name, [drive, b':', ..] if drive.is_ascii_alphabetic());
    absolute
        || name
            .split(|&b| b == b'/' || b == b'\\')
            .any(|component| component == b"..")
}

/// What a format may use while unpacking: the shared budget, the account of the blob being
/// analysed, and which blobs are hashed.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'b> {
    budget: &'b Budget,
    blob: Option<&'b BlobAccount>,
    hashing: Hashing,
}

impl<'b> Ctx<'b> {
    /// A context over `budget`, hashing every blob.
    pub fn new(budget: &'b Budget) -> Self {
        Self {
            budget,
            blob: None,
            hashing: Hashing::All,
        }
    }

    /// The same context under another hashing policy.
    pub fn hashing(self, hashing: Hashing) -> Self {
        Self { hashing, ..self }
    }

    /// Whether every blob, carved regions included, gets its SHA-256.
    pub fn hashes_all(&self) -> bool {
        self.hashing == Hashing::All
    }

    /// The same context, charging output to `blob` as well.
    pub fn for_blob(self, blob: &'b BlobAccount) -> Self {
        Self {
            blob: Some(blob),
            ..self
        }
    }

    /// The shared budget.
    pub fn budget(&self) -> &'b Budget {
        self.budget
    }

    /// Fails once the time budget is spent; call it in every parse and decompression loop.
    pub fn check(&self) -> Result<(), UnpackError> {
        self.budget.check_time().map_err(UnpackError::Limit)
    }

    /// A bounded output buffer for decompressing `input_len` bytes.
    pub fn sink(&self, input_len: u64) -> Sink<'b> {
        self.budget.sink_for(input_len, self.blob)
    }

    /// Notes that `n` input bytes were read by a decoder (whether it then succeeded or not).
    pub fn charge_read(&self, n: u64) {
        if let Some(blob) = self.blob {
            blob.add_read(n);
        }
    }

    /// Accounts for `n` entries about to be returned (the engine does not count a format's
    /// entries again; it counts only carved regions and entries reused from an identical blob).
    pub fn entries(&self, n: u64) -> Result<(), UnpackError> {
        self.budget.add_entries(n).map_err(UnpackError::Limit)
    }

    /// Accounts for `n` bytes of extracted (not decompressed) file data that will be copied (and
    /// held in the tree).
    pub fn output(&self, n: u64) -> Result<(), UnpackError> {
        if let Some(blob) = self.blob {
            blob.add(n).map_err(UnpackError::Limit)?;
        }
        self.budget.add_output(n).map_err(UnpackError::Limit)?;
        self.budget.hold(n).map_err(UnpackError::Limit)
    }

    /// Checks a size a header claims against the per-file limit before allocating for it.
    pub fn claimed_size(&self, n: u64) -> Result<(), UnpackError> {
        let max = self.budget.limits().max_file_bytes;
        if n > max {
            Err(UnpackError::Limit(LimitError::FileBytes { max }))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn escaping_names_are_recognised() {
        for bad in [
            &b"../x"[..],
            b"a/../../b",
            b"/etc/passwd",
            b"..",
            b"C:x",
            b"a\\..\\b",
        ] {
            assert!(path_escapes(bad), "{}", String::from_utf8_lossy(bad));
        }
        for good in [&b"a/b"[..], b"..a/b..", b"./x", b"a/.../b"] {
            assert!(!path_escapes(good), "{}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn names_are_unique_and_magics_present() {
        let mut seen = HashSet::new();
        for f in FORMATS {
            assert!(seen.insert(f.name()), "duplicate format name {}", f.name());
            assert!(!f.magics().is_empty(), "{} has no magic", f.name());
            for m in f.magics() {
                assert!(!m.bytes.is_empty(), "{} has an empty magic", f.name());
            }
        }
    }
}
