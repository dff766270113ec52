//! LZ4 frames (`04 22 4D 18`) and the legacy frame (`02 21 4C 18`, written by `lz4 -l` and used
//! for Linux kernels). Block headers are walked first, which validates a candidate and gives its
//! exact extent (the legacy frame has no end mark: it ends where the next size is implausible);
//! then the frame is decoded by lz4_flex. Concatenated frames decode into one child.

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::bytes::le32;
use crate::unpack::codec::{self, Codec};
use crate::unpack::tree::{Child, Unpacked};

/// LZ4.
pub struct Lz4;

const MAGIC: u32 = 0x184D_2204;
const LEGACY_MAGIC: u32 = 0x184C_2102;
/// Legacy frames cut the input into 8 MiB blocks; a compressed block is at most this long.
const LEGACY_MAX_BLOCK: u64 = (8 << 20) + (8 << 20) / 255 + 16;

fn corrupt(m: &str) -> UnpackError {
    UnpackError::Corrupt(format!("lz4: {m}"))
}

/// The extent of the LZ4 frame (modern or legacy) at the start of `data`, from its headers.
pub fn frame_extent(data: &[u8]) -> Result<u64, UnpackError> {
    match le32(data, 0, "lz4 magic")? {
        MAGIC => modern_extent(data),
        LEGACY_MAGIC => legacy_extent(data),
        _ => Err(corrupt("bad magic")),
    }
}

fn modern_extent(data: &[u8]) -> Result<u64, UnpackError> {
    let (Some(&flg), Some(&bd)) = (data.get(4), data.get(5)) else {
        return Err(UnpackError::Truncated("lz4: frame descriptor".into()));
    };
    if flg >> 6 != 1 || flg & 0x02 != 0 || bd & 0x8F != 0 || (bd >> 4) < 4 {
        return Err(corrupt("bad frame descriptor"));
    }
    let max_block = 1u64 << (8 + 2 * u32::from(bd >> 4));
    let block_checksum = flg & 0x10 != 0;
    let mut pos = 6 + if flg & 0x08 != 0 { 8 } else { 0 } + if flg & 0x01 != 0 { 4 } else { 0 };
    pos += 1; // header checksum, verified by the decoder
    loop {
        let size = le32(data, pos, "lz4 block size")?;
        pos += 4;
        if size == 0 {
            break;
        }
        let len = u64::from(size & 0x7FFF_FFFF);
        if len > max_block {
            return Err(corrupt("block larger than the frame's maximum"));
        }
        pos += len + if block_checksum { 4 } else { 0 };
    }
    if flg & 0x04 != 0 {
        pos += 4;
    }
    if pos > data.len() as u64 {
        return Err(UnpackError::Truncated(format!(
            "lz4: frame needs {pos} bytes, {} present",
            data.len()
        )));
    }
    Ok(pos)
}

fn legacy_extent(data: &[u8]) -> Result<u64, UnpackError> {
    let mut pos = 4u64;
    let total = data.len() as u64;
    while let Ok(size) = le32(data, pos, "lz4 legacy block size") {
        let len = u64::from(size);
        if size == 0
            || size == LEGACY_MAGIC
            || size == MAGIC
            || len > LEGACY_MAX_BLOCK
            || pos + 4 + len > total
        {
            break;
        }
        pos += 4 + len;
    }
    if pos == 4 {
        return Err(UnpackError::Truncated(
            "lz4: legacy frame without blocks".into(),
        ));
    }
    Ok(pos)
}

impl Format for Lz4 {
    fn name(&self) -> &'static str {
        "lz4"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[
            Magic::at0(&[0x04, 0x22, 0x4D, 0x18]),
            Magic::at0(&[0x02, 0x21, 0x4C, 0x18]),
        ];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        // A walk that runs out of data is a truncated stream, worth reporting as one.
        matches!(frame_extent(data), Ok(_) | Err(UnpackError::Truncated(_)))
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        // Decode exactly the walked frames, one at a time, so the decoder never reads past them.
        let legacy = le32(data, 0, "lz4 magic")? == LEGACY_MAGIC;
        let mut end = 0u64;
        let mut frames = 0u64;
        let mut output: Vec<u8> = Vec::new();
        loop {
            ctx.check()?;
            let rest = usize::try_from(end).ok().and_then(|e| data.get(e..));
            let Some(rest) = rest else { break };
            let n = match frame_extent(rest) {
                Ok(n) => n,
                Err(e) if frames == 0 => return Err(e),
                Err(_) => break,
            };
            let frame = usize::try_from(n).ok().and_then(|n| rest.get(..n));
            let decoded = match codec::decode(Codec::Lz4, frame.unwrap_or_default(), ctx) {
                Ok(d) => d,
                Err(e) if frames == 0 || matches!(e, UnpackError::Limit(_)) => return Err(e),
                Err(_) => break,
            };
            ctx.claimed_size((output.len() as u64).saturating_add(decoded.data.len() as u64))?;
            output.extend_from_slice(&decoded.data);
            end += n;
            frames += 1;
        }
        ctx.entries(1)?;
        let mut out = Unpacked::new(end)
            .meta("frame", if legacy { "legacy" } else { "lz4" })
            .meta("frames", frames);
        out.children
            .push(Child::file(Vec::new(), Bytes::from(output)));
        Ok(out)
    }
}
