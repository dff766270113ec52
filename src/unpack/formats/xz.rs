//! xz streams (the `.xz` container of LZMA2): the 12-byte stream header is checked (flags and
//! their CRC-32) before decoding; concatenated streams decode into one child, as `xz -dc` does.

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::codec::{self, Codec};
use crate::unpack::tree::{Child, Unpacked};

/// xz.
pub struct Xz;

const MAGIC: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0x00];

/// Whether `data` starts with a valid xz stream header (magic, known check type, flags CRC).
pub fn stream_header_ok(data: &[u8]) -> bool {
    let (Some(magic), Some(flags), Some(crc)) = (data.get(..6), data.get(6..8), data.get(8..12))
    else {
        return false;
    };
    magic == MAGIC
        && matches!(flags, [0, 0x00 | 0x01 | 0x04 | 0x0A])
        && crc32fast::hash(flags).to_le_bytes() == crc
}

fn check_name(id: u8) -> &'static str {
    match id {
        0x00 => "none",
        0x01 => "crc32",
        0x04 => "crc64",
        0x0A => "sha256",
        _ => "unknown",
    }
}

impl Format for Xz {
    fn name(&self) -> &'static str {
        "xz"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(MAGIC)];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        stream_header_ok(data)
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let decoded = codec::decode_concatenated(Codec::Xz, data, ctx, stream_header_ok)?;
        ctx.entries(1)?;
        let check = data.get(7).copied().map_or("unknown", check_name);
        let mut out = Unpacked::new(decoded.consumed).meta("check", check);
        out.children
            .push(Child::file(Vec::new(), Bytes::from(decoded.data)));
        Ok(out)
    }
}
