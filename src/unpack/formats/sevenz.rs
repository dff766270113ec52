//! 7-Zip archives: the 32-byte signature header (magic, version, start-header CRC, offset, size
//! and CRC of the next header) is checked and gives the archive's true extent; the contents are
//! not read in process yet and the archive is reported `unsupported` (see the README).
//!
//! Field layout from 7-Zip's `DOC/7zFormat.txt`.

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::bytes::Reader;
use crate::unpack::tree::Unpacked;

/// 7-Zip archive (recognised and sized, contents not read).
pub struct SevenZip;

/// The 7z signature.
pub const MAGIC: &[u8; 6] = b"7z\xBC\xAF\x27\x1C";
/// Signature header length.
pub const HEADER_LEN: usize = 32;

/// A decoded signature header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    /// Format version (major, minor).
    pub version: (u8, u8),
    /// CRC-32 of the 20 bytes after it.
    pub start_crc: u32,
    /// Offset of the next header after the signature header.
    pub next_offset: u64,
    /// Size of the next header.
    pub next_size: u64,
    /// CRC-32 of the next header.
    pub next_crc: u32,
}

impl SignatureHeader {
    /// Parses the signature header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        if !data.starts_with(MAGIC) {
            return Err(UnpackError::Corrupt("7z: bad signature".into()));
        }
        let mut r = Reader::new(data);
        r.seek(6, "7z version")?;
        Ok(Self {
            version: (r.u8("7z major version")?, r.u8("7z minor version")?),
            start_crc: r.u32("7z start header CRC")?,
            next_offset: r.u64("7z next header offset")?,
            next_size: r.u64("7z next header size")?,
            next_crc: r.u32("7z next header CRC")?,
        })
    }

    /// Whether the start-header CRC matches the 20 bytes it covers in `data`.
    pub fn start_crc_ok(&self, data: &[u8]) -> bool {
        data.get(12..HEADER_LEN)
            .is_some_and(|b| crc32fast::hash(b) == self.start_crc)
    }

    /// The archive's extent, if it fits in a `u64`.
    pub fn extent(&self) -> Option<u64> {
        (HEADER_LEN as u64)
            .checked_add(self.next_offset)?
            .checked_add(self.next_size)
    }
}

impl Format for SevenZip {
    fn name(&self) -> &'static str {
        "7z"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(MAGIC)];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        SignatureHeader::parse(data)
            .is_ok_and(|h| h.version.0 == 0 && h.start_crc_ok(data) && h.extent().is_some())
    }

    fn unpack(&self, data: &Bytes, _ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let h = SignatureHeader::parse(data)?;
        if !h.start_crc_ok(data) {
            return Err(UnpackError::Corrupt("7z: start header CRC mismatch".into()));
        }
        let extent = h
            .extent()
            .ok_or_else(|| UnpackError::Corrupt("7z: next header beyond 2^64".into()))?;
        if extent > data.len() as u64 {
            return Err(UnpackError::Truncated(format!(
                "7z: next header ends at {extent}, input has {}",
                data.len()
            )));
        }
        let start = usize::try_from(HEADER_LEN as u64 + h.next_offset).unwrap_or(usize::MAX);
        let end = usize::try_from(extent).unwrap_or(usize::MAX);
        let next_ok = data
            .get(start..end)
            .is_some_and(|b| crc32fast::hash(b) == h.next_crc);
        Ok(Unpacked::new(extent)
            .meta("version", format!("{}.{}", h.version.0, h.version.1))
            .meta("next_header_crc_ok", next_ok)
            .partial(UnpackError::Unsupported(
                "7z archive contents are not read in process (recognised and sized only)".into(),
            )))
    }
}
