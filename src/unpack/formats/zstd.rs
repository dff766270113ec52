//! Zstandard frames (RFC 8878). The frame header and every block header are walked without
//! decompressing, which validates a candidate cheaply and gives its exact extent; consecutive
//! frames (and skippable frames between them) decode into one child, as `zstd -dc` does.

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::bytes::le32;
use crate::unpack::codec::{self, Codec};
use crate::unpack::tree::{Child, Unpacked};

/// Zstandard.
pub struct Zstd;

const MAGIC: u32 = 0xFD2F_B528;
/// Largest block: 128 KiB.
const MAX_BLOCK: u64 = 128 << 10;

fn corrupt(m: &str) -> UnpackError {
    UnpackError::Corrupt(format!("zstd: {m}"))
}

fn byte(data: &[u8], pos: u64, what: &str) -> Result<u8, UnpackError> {
    usize::try_from(pos)
        .ok()
        .and_then(|p| data.get(p).copied())
        .ok_or_else(|| UnpackError::Truncated(format!("zstd: {what} at {pos:#x}")))
}

/// The extent of the Zstandard frame at the start of `data`, from its headers alone.
pub fn frame_extent(data: &[u8]) -> Result<u64, UnpackError> {
    if le32(data, 0, "zstd magic")? != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let fhd = byte(data, 4, "frame header")?;
    if fhd & 0x08 != 0 {
        return Err(corrupt("reserved frame header bit set"));
    }
    let single_segment = fhd & 0x20 != 0;
    let mut pos = 5u64;
    if !single_segment {
        let wd = byte(data, pos, "window descriptor")?;
        if 10 + u32::from(wd >> 3) > 31 {
            return Err(corrupt("window too large"));
        }
        pos += 1;
    }
    pos += match fhd & 3 {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => 4,
    };
    pos += match fhd >> 6 {
        0 => u64::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    loop {
        let header = u32::from(byte(data, pos, "block header")?)
            | u32::from(byte(data, pos + 1, "block header")?) << 8
            | u32::from(byte(data, pos + 2, "block header")?) << 16;
        let last = header & 1 != 0;
        let size = u64::from(header >> 3);
        let content = match (header >> 1) & 3 {
            0 | 2 => size,
            1 => 1,
            _ => return Err(corrupt("reserved block type")),
        };
        if size > MAX_BLOCK {
            return Err(corrupt("block larger than 128 KiB"));
        }
        pos += 3 + content;
        if last {
            break;
        }
    }
    if fhd & 0x04 != 0 {
        pos += 4;
    }
    if pos > data.len() as u64 {
        return Err(UnpackError::Truncated(format!(
            "zstd: frame needs {pos} bytes, {} present",
            data.len()
        )));
    }
    Ok(pos)
}

/// The extent of a skippable frame at the start of `data`, if there is one.
fn skippable_extent(data: &[u8]) -> Option<u64> {
    let magic = le32(data, 0, "magic").ok()?;
    if magic & 0xFFFF_FFF0 != 0x184D_2A50 {
        return None;
    }
    let len = 8 + u64::from(le32(data, 4, "skippable size").ok()?);
    (len <= data.len() as u64).then_some(len)
}

/// Whether another frame (regular, or skippable followed by a regular one) starts `data`.
fn next_frame(data: &[u8]) -> bool {
    frame_extent(data).is_ok()
        || skippable_extent(data)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| data.get(n..))
            .is_some_and(|rest| frame_extent(rest).is_ok())
}

impl Format for Zstd {
    fn name(&self) -> &'static str {
        "zstd"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(&[0x28, 0xB5, 0x2F, 0xFD])];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        // A walk that runs out of data is a truncated stream, worth reporting as one.
        matches!(frame_extent(data), Ok(_) | Err(UnpackError::Truncated(_)))
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        frame_extent(data)?;
        let decoded = codec::decode_concatenated(Codec::Zstd, data, ctx, next_frame)?;
        ctx.entries(1)?;
        let mut out = Unpacked::new(decoded.consumed);
        out.children
            .push(Child::file(Vec::new(), Bytes::from(decoded.data)));
        Ok(out)
    }
}
