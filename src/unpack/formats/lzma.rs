//! LZMA "alone" streams (`.lzma`, LZMA Utils): a 13-byte header of properties, dictionary size and
//! uncompressed size, then the range-coded data. The magic (`5D 00 00`) is weak, so `detect` checks
//! every header field the way xz's picky `.lzma` reader does and trial-decodes the start.

use bytes::Bytes;
use liblzma::stream::{Action, Status, Stream};

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::codec::{self, Codec};
use crate::unpack::tree::{Child, Unpacked};

/// LZMA-alone.
pub struct Lzma;

const HEADER_LEN: usize = 13;
/// Sizes above this (256 GiB) are not real `.lzma` files (xz applies the same bound).
const MAX_KNOWN_SIZE: u64 = 1 << 38;
const TRIAL_INPUT: usize = 4 << 10;
/// Input a trial decode must have read without error when the data ends before the stream.
const TRIAL_MIN_INPUT: usize = 64;
const TRIAL_OUTPUT: u64 = 64 << 10;
/// Dictionary memory a trial decode may ask for.
const TRIAL_MEMLIMIT: u64 = 128 << 20;

/// The fields of an LZMA-alone header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// lc/lp/pb properties byte.
    pub props: u8,
    /// Dictionary size.
    pub dict_size: u32,
    /// Uncompressed size, `None` when the stream ends with an end marker instead.
    pub size: Option<u64>,
}

/// Parses and checks the header at the start of `data`.
pub fn header(data: &[u8]) -> Option<Header> {
    let h = data.get(..HEADER_LEN)?;
    let props = *h.first()?;
    let dict_size = u32::from_le_bytes(h.get(1..5)?.try_into().ok()?);
    let raw_size = u64::from_le_bytes(h.get(5..13)?.try_into().ok()?);
    // lc + 9 lp + 45 pb with lc <= 8, lp <= 4, pb <= 4.
    if props >= 9 * 5 * 5 {
        return None;
    }
    // A power of two, or 2^n + 2^(n-1), as every LZMA encoder writes (xz insists on it too).
    let d = dict_size;
    let two_bits = (d & d.wrapping_sub(1)).is_power_of_two() && (d >> 1) & d != 0;
    if d < 4096 || !(d.is_power_of_two() || two_bits) {
        return None;
    }
    let size = (raw_size != u64::MAX).then_some(raw_size);
    if size.is_some_and(|s| s >= MAX_KNOWN_SIZE) {
        return None;
    }
    Some(Header {
        props,
        dict_size,
        size,
    })
}

/// Decodes the start of the stream and says whether it is plausible: it ends where its header
/// says, or runs on without error for the whole trial.
fn trial_decode(data: &[u8], h: &Header) -> bool {
    // The range coder's first byte is always zero.
    if data.get(HEADER_LEN) != Some(&0) {
        return false;
    }
    let Ok(mut s) = Stream::new_lzma_decoder(TRIAL_MEMLIMIT) else {
        return false;
    };
    let input = data.get(..TRIAL_INPUT.min(data.len())).unwrap_or_default();
    let mut out = [0u8; 4096];
    loop {
        let Some(rest) = usize::try_from(s.total_in())
            .ok()
            .and_then(|i| input.get(i..))
        else {
            return false;
        };
        let before = (s.total_in(), s.total_out());
        match s.process(rest, &mut out, Action::Run) {
            Ok(Status::StreamEnd) => return h.size.is_none_or(|n| n == s.total_out()),
            Ok(_) => {}
            Err(_) => return false,
        }
        if s.total_out() >= TRIAL_OUTPUT {
            return true;
        }
        if (s.total_in(), s.total_out()) == before {
            // Out of input with no error: plausible when enough was read to judge (random data
            // fails within a few dozen bytes), so a stream cut short is still reported.
            return input.len() >= HEADER_LEN + TRIAL_MIN_INPUT;
        }
    }
}

impl Format for Lzma {
    fn name(&self) -> &'static str {
        "lzma"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(&[0x5D, 0x00, 0x00])];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        header(data).is_some_and(|h| trial_decode(data, &h))
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let h = header(data).ok_or_else(|| UnpackError::Corrupt("lzma: bad header".into()))?;
        if let Some(n) = h.size {
            ctx.claimed_size(n)?;
        }
        let decoded = codec::decode(Codec::Lzma, data, ctx)?;
        if let Some(n) = h.size
            && decoded.data.len() as u64 != n
        {
            return Err(UnpackError::Truncated(format!(
                "lzma: {} of {n} announced bytes decoded",
                decoded.data.len()
            )));
        }
        ctx.entries(1)?;
        let mut out = Unpacked::new(decoded.consumed)
            .meta("properties", format!("{:#04x}", h.props))
            .meta("dictionary_size", h.dict_size)
            .meta("end_marker", h.size.is_none());
        out.children
            .push(Child::file(Vec::new(), Bytes::from(decoded.data)));
        Ok(out)
    }
}
