//! zlib streams (RFC 1950): a two-byte header (CM 8, a window of 32 KiB, no preset dictionary,
//! header check) and deflate data with an Adler-32 trailer. Two bytes are a weak magic and carving
//! runs on every blob, so `detect` also inflates a little and refuses any stream that errors.

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::codec::{self, Codec};
use crate::unpack::tree::{Child, Unpacked};

/// zlib.
pub struct Zlib;

/// Input a trial inflate may read in `detect`.
const TRIAL_INPUT: usize = 4 << 10;
/// Input a trial inflate must have read without error when the data ends before the stream.
const TRIAL_MIN_INPUT: usize = 64;
/// Output after which a trial inflate stops, satisfied.
const TRIAL_OUTPUT: u64 = 64 << 10;

/// Whether the two header bytes are a zlib header fwsim accepts: deflate, 32 KiB window (what
/// zlib, miniz and every firmware tool write), no preset dictionary, header check valid.
pub fn header_ok(data: &[u8]) -> bool {
    match data.get(..2) {
        Some(&[cmf, flg]) => {
            cmf == 0x78 && flg & 0x20 == 0 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Inflates the start of `data` and says whether it looks like a real stream: it ends properly
/// (Adler-32 checked) or runs on without error for the whole trial.
fn trial_inflate(data: &[u8]) -> bool {
    // The first block header, checked without allocating: type 3 is invalid, and a stored
    // block's length must match its complement.
    match data.get(2).map(|b| (b >> 1) & 3) {
        Some(3) | None => return false,
        Some(0) => match data.get(3..7) {
            Some(&[a, b, c, d]) if u16::from_le_bytes([a, b]) == !u16::from_le_bytes([c, d]) => {}
            _ => return false,
        },
        Some(_) => {}
    }
    let input = data.get(..TRIAL_INPUT.min(data.len())).unwrap_or_default();
    let mut d = Decompress::new(true);
    let mut out = [0u8; 4096];
    loop {
        let consumed = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
        let Some(rest) = input.get(consumed..) else {
            return false;
        };
        let before = (d.total_in(), d.total_out());
        match d.decompress(rest, &mut out, FlushDecompress::None) {
            Ok(Status::StreamEnd) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        if d.total_out() >= TRIAL_OUTPUT {
            return true;
        }
        if (d.total_in(), d.total_out()) == before {
            // Out of input with no error: plausible when enough was read to judge (random data
            // fails within a few dozen bytes), so a stream cut short is still reported.
            return input.len() >= TRIAL_MIN_INPUT;
        }
    }
}

impl Format for Zlib {
    fn name(&self) -> &'static str {
        "zlib"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[
            Magic::at0(&[0x78, 0x01]),
            Magic::at0(&[0x78, 0x5E]),
            Magic::at0(&[0x78, 0x9C]),
            Magic::at0(&[0x78, 0xDA]),
        ];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        header_ok(data) && trial_inflate(data)
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let decoded = codec::decode(Codec::Zlib, data, ctx)?;
        ctx.entries(1)?;
        let level = match data.get(1).map(|f| f >> 6) {
            Some(0) => "fastest",
            Some(1) => "fast",
            Some(2) => "default",
            _ => "maximum",
        };
        let mut out = Unpacked::new(decoded.consumed).meta("level", level);
        out.children
            .push(Child::file(Vec::new(), Bytes::from(decoded.data)));
        Ok(out)
    }
}
