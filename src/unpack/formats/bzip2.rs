//! bzip2 streams: `BZh`, a block size digit and the magic of the first block (or of an empty
//! stream's end). Concatenated streams (pbzip2 writes one per block) decode into one child.

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::codec::{self, Codec};
use crate::unpack::tree::{Child, Unpacked};

/// bzip2.
pub struct Bzip2;

/// π: the magic of a compressed block.
const BLOCK_MAGIC: &[u8] = &[0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
/// √π: the magic of the end of stream.
const END_MAGIC: &[u8] = &[0x17, 0x72, 0x45, 0x38, 0x50, 0x90];

/// Whether `data` starts a bzip2 stream: header, level `1`–`9`, then the end of the stream, or a
/// block that is not "randomised" (no bzip2 since 0.9.5 writes one) and whose BWT origin pointer
/// fits the block size.
pub fn stream_header_ok(data: &[u8]) -> bool {
    let Some(level) = data.get(3).filter(|d| (b'1'..=b'9').contains(d)) else {
        return false;
    };
    if data.get(..3) != Some(b"BZh".as_slice()) {
        return false;
    }
    match data.get(4..10) {
        Some(m) if m == END_MAGIC => true,
        Some(m) if m == BLOCK_MAGIC => match data.get(14..18) {
            Some(&[a, b, c, d]) => {
                let v = u32::from_be_bytes([a, b, c, d]);
                let orig_ptr = (v >> 7) & 0x00FF_FFFF;
                v >> 31 == 0 && orig_ptr < u32::from(level - b'0') * 100_000
            }
            _ => false,
        },
        _ => false,
    }
}

impl Format for Bzip2 {
    fn name(&self) -> &'static str {
        "bzip2"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(b"BZh")];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        stream_header_ok(data)
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let decoded = codec::decode_concatenated(Codec::Bzip2, data, ctx, stream_header_ok)?;
        ctx.entries(1)?;
        let level = data.get(3).map_or(0, |d| d.wrapping_sub(b'0'));
        let mut out = Unpacked::new(decoded.consumed).meta("block_size_100k", level);
        out.children
            .push(Child::file(Vec::new(), Bytes::from(decoded.data)));
        Ok(out)
    }
}
