//! TLSH (Trend Micro's locality-sensitive hash): T1 format, 128 buckets, 1-byte checksum, 50-byte
//! minimum, no digest for low-variety input. Generated here, parsed and compared through the
//! `fast-tlsh` crate; checked byte-for-byte against py-tlsh 5.0.0 by the golden and differential
//! tests and against `fast-tlsh`'s own generator.
//!
//! Why the generator is written here: TLSH bucket counts are additive over byte ranges (each
//! five-byte window looks back four bytes; only the checksum and the length are sequential), so
//! the whole-file digest of an ELF file is assembled from the counts its section digests already
//! made plus the bytes between them ([`TlshHasher::assembled`]) instead of hashing those bytes
//! twice, and `fast-tlsh` keeps its buckets private. The bucket update is seven table loads per
//! byte (one 64 KiB two-step Pearson table indexed by a window byte pair, one per-byte table of the
//! salted first steps) with the window in a shift register. The Pearson permutation is `v_table`
//! of the TLSH reference implementation (trendmicro/tlsh); the length encoding comes from
//! `fast-tlsh`.

use std::fmt;
use std::str::FromStr;

use fast_tlsh::compare::ComparisonConfiguration;
use fast_tlsh::prelude::*;

/// A TLSH digest (T1, 128 buckets, 1-byte checksum), kept in binary form: comparing two is a
/// handful of table lookups, no parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlsh(fast_tlsh::Tlsh);

/// A TLSH digest string that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a TLSH digest (expected T1 and 70 hex digits): {0}")]
pub struct TlshParseError(String);

impl Tlsh {
    /// Distance to `other` with the length term (py-tlsh `diff`); 0 means identical digests.
    pub fn diff(&self, other: &Self) -> u32 {
        self.0
            .compare_with_config(&other.0, ComparisonConfiguration::Default)
    }

    /// Distance without the length term (py-tlsh `diffxlen`).
    pub fn diff_no_len(&self, other: &Self) -> u32 {
        self.0
            .compare_with_config(&other.0, ComparisonConfiguration::NoDistance)
    }

    /// The length byte (L-value: the quantised logarithm of the input length).
    pub fn lvalue(&self) -> u8 {
        self.0.length().value()
    }

    /// The two quartile ratios (Q1 ratio, Q2 ratio), each `0..16`.
    pub fn qratios(&self) -> (u8, u8) {
        let q = self.0.qratios();
        (q.q1ratio(), q.q2ratio())
    }
}

impl fmt::Display for Tlsh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Tlsh {
    type Err = TlshParseError;

    /// Parses `T1` followed by 70 hex digits (the prefix-less form of old tools is accepted too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        fast_tlsh::Tlsh::from_str(s)
            .map(Self)
            .map_err(|e| TlshParseError(e.to_string()))
    }
}

/// TLSH's Pearson permutation (`v_table` of the reference implementation).
const PEARSON: [u8; 256] = [
    0x01, 0x57, 0x31, 0x0c, 0xb0, 0xb2, 0x66, 0xa6, 0x79, 0xc1, 0x06, 0x54, 0xf9, 0xe6, 0x2c, 0xa3,
    0x0e, 0xc5, 0xd5, 0xb5, 0xa1, 0x55, 0xda, 0x50, 0x40, 0xef, 0x18, 0xe2, 0xec, 0x8e, 0x26, 0xc8,
    0x6e, 0xb1, 0x68, 0x67, 0x8d, 0xfd, 0xff, 0x32, 0x4d, 0x65, 0x51, 0x12, 0x2d, 0x60, 0x1f, 0xde,
    0x19, 0x6b, 0xbe, 0x46, 0x56, 0xed, 0xf0, 0x22, 0x48, 0xf2, 0x14, 0xd6, 0xf4, 0xe3, 0x95, 0xeb,
    0x61, 0xea, 0x39, 0x16, 0x3c, 0xfa, 0x52, 0xaf, 0xd0, 0x05, 0x7f, 0xc7, 0x6f, 0x3e, 0x87, 0xf8,
    0xae, 0xa9, 0xd3, 0x3a, 0x42, 0x9a, 0x6a, 0xc3, 0xf5, 0xab, 0x11, 0xbb, 0xb6, 0xb3, 0x00, 0xf3,
    0x84, 0x38, 0x94, 0x4b, 0x80, 0x85, 0x9e, 0x64, 0x82, 0x7e, 0x5b, 0x0d, 0x99, 0xf6, 0xd8, 0xdb,
    0x77, 0x44, 0xdf, 0x4e, 0x53, 0x58, 0xc9, 0x63, 0x7a, 0x0b, 0x5c, 0x20, 0x88, 0x72, 0x34, 0x0a,
    0x8a, 0x1e, 0x30, 0xb7, 0x9c, 0x23, 0x3d, 0x1a, 0x8f, 0x4a, 0xfb, 0x5e, 0x81, 0xa2, 0x3f, 0x98,
    0xaa, 0x07, 0x73, 0xa7, 0xf1, 0xce, 0x03, 0x96, 0x37, 0x3b, 0x97, 0xdc, 0x5a, 0x35, 0x17, 0x83,
    0x7d, 0xad, 0x0f, 0xee, 0x4f, 0x5f, 0x59, 0x10, 0x69, 0x89, 0xe1, 0xe0, 0xd9, 0xa0, 0x25, 0x7b,
    0x76, 0x49, 0x02, 0x9d, 0x2e, 0x74, 0x09, 0x91, 0x86, 0xe4, 0xcf, 0xd4, 0xca, 0xd7, 0x45, 0xe5,
    0x1b, 0xbc, 0x43, 0x7c, 0xa8, 0xfc, 0x2a, 0x04, 0x1d, 0x6c, 0x15, 0xf7, 0x13, 0xcd, 0x27, 0xcb,
    0xe9, 0x28, 0xba, 0x93, 0xc6, 0xc0, 0x9b, 0x21, 0xa4, 0xbf, 0x62, 0xcc, 0xa5, 0xb4, 0x75, 0x4c,
    0x8c, 0x24, 0xd2, 0xac, 0x29, 0x36, 0x9f, 0x08, 0xb9, 0xe8, 0x71, 0xc4, 0xe7, 0x2f, 0x92, 0x78,
    0x33, 0x41, 0x1c, 0x90, 0xfe, 0xdd, 0x5d, 0xbd, 0xc2, 0x8b, 0x70, 0x2b, 0x47, 0x6d, 0xb8, 0xd1,
];

/// The salts of TLSH's six window triplets (the checksum uses salt 0).
const SALTS: [u8; 6] = [2, 3, 5, 7, 11, 13];

/// `TWO_STEP[(v << 8) | u] = P[P[u] ^ v]`: the last two Pearson steps of a triplet in one load
/// (the index is a window byte pair with the salted first step folded into its low byte).
// Built at compile time: an index out of range would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
static TWO_STEP: [u8; 1 << 16] = {
    let mut t = [0u8; 1 << 16];
    let mut i = 0;
    while i < (1 << 16) {
        t[i] = PEARSON[(PEARSON[i & 0xFF] ^ (i >> 8) as u8) as usize];
        i += 1;
    }
    t
};

/// `FIRST_STEP[b][k] = P[P[salt_k] ^ b]` for the six bucket salts (k = 0–5) and the checksum
/// salt 0 (k = 6), as 16-bit words ready to be folded into a [`TWO_STEP`] index.
// Built at compile time: an index out of range would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
static FIRST_STEP: [[u16; 8]; 256] = {
    let mut t = [[0u16; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut k = 0;
        while k < 6 {
            t[b][k] = PEARSON[(PEARSON[SALTS[k] as usize] ^ b as u8) as usize] as u16;
            k += 1;
        }
        t[b][6] = PEARSON[(PEARSON[0] ^ b as u8) as usize] as u16;
        b += 1;
    }
    t
};

/// Inputs longer than this have no TLSH digest (the length field cannot encode them).
const MAX_LEN: u64 = u32::MAX as u64;

/// Bytes a window looks back: the first four bytes of an input only fill the window.
const LOOKBACK: usize = 4;

/// Streaming TLSH state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlshHasher {
    /// Bucket counts; only the first 128 enter the digest, all 256 are counted.
    buckets: [u32; 256],
    /// The four bytes before the next one, oldest first.
    window: [u8; 4],
    /// The 1-byte checksum.
    checksum: u8,
    /// Bytes fed so far.
    len: u64,
}

impl Default for TlshHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl TlshHasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self {
            buckets: [0; 256],
            window: [0; 4],
            checksum: 0,
            len: 0,
        }
    }

    /// Feeds more input.
    pub fn update(&mut self, data: &[u8]) {
        // The first four bytes only fill the window; beyond MAX_LEN there is no digest anyway.
        let fill = usize::try_from(4u64.saturating_sub(self.len))
            .unwrap_or(0)
            .min(data.len());
        let (head, rest) = data.split_at_checked(fill).unwrap_or((data, &[]));
        for &b in head {
            self.window = shift(self.window, b);
        }
        let room = usize::try_from(MAX_LEN.saturating_sub(self.len.saturating_add(fill as u64)))
            .unwrap_or(usize::MAX);
        let rest = rest.get(..room.min(rest.len())).unwrap_or_default();
        self.len = self.len.saturating_add(data.len() as u64);
        if !rest.is_empty() {
            let w = slide::<true>(
                &mut self.buckets,
                &mut self.checksum,
                u32::from_be_bytes(self.window),
                rest,
            );
            self.window = w.to_be_bytes();
        }
    }

    /// The state of a hasher fed all of `data`, computed from `parts` whose bucket counts are
    /// already known: each `(offset, hasher)` is a fresh hasher fed exactly
    /// `data[offset..offset + len]`. Bucket counts are additive over window positions, so only the
    /// windows outside the parts (the bytes between them, and the four windows at the start of each
    /// part that look back into the bytes before it) are counted here, plus the checksum, a cheap
    /// sequential chain over all of `data`. Parts that overlap an earlier one, lie outside `data`
    /// or whose last bytes differ from `data`'s there are ignored (their bytes are counted here).
    pub fn assembled(data: &[u8], parts: &[(usize, &TlshHasher)]) -> Self {
        if data.len() as u64 > MAX_LEN || data.len() <= LOOKBACK {
            let mut h = Self::new();
            h.update(data);
            return h;
        }
        let mut order: Vec<(usize, &TlshHasher)> = parts.to_vec();
        order.sort_by_key(|&(offset, _)| offset);
        let mut buckets = [0u32; 256];
        // The first window end (position of a window's last byte) not counted yet.
        let mut cursor = 0usize;
        for (start, part) in order {
            let Some(end) = usize::try_from(part.len)
                .ok()
                .and_then(|len| start.checked_add(len))
            else {
                continue;
            };
            let usable = start >= cursor
                && end > start.saturating_add(LOOKBACK)
                && data.get(end - LOOKBACK..end) == Some(&part.window[..]);
            if !usable {
                continue;
            }
            count_windows(&mut buckets, data, cursor, start + LOOKBACK);
            for (b, p) in buckets.iter_mut().zip(part.buckets) {
                *b = b.wrapping_add(p);
            }
            cursor = end;
        }
        count_windows(&mut buckets, data, cursor, data.len());
        let mut window = [0u8; 4];
        for &b in data.get(data.len() - LOOKBACK..).unwrap_or_default() {
            window = shift(window, b);
        }
        Self {
            buckets,
            window,
            checksum: checksum(data),
            len: data.len() as u64,
        }
    }

    /// The digest, or `None` where TLSH gives none (`TNULL`: fewer than 50 bytes, more than
    /// 4 GiB, too few distinct buckets, or a zero third quartile).
    pub fn finish(&self) -> Option<Tlsh> {
        if self.len < 50 {
            return None;
        }
        let lvalue =
            fast_tlsh::length::FuzzyHashLengthEncoding::new(u32::try_from(self.len).ok()?)?.value();
        let counted: [u32; 128] = self.buckets.get(..128)?.try_into().ok()?;
        let mut sorted = counted;
        sorted.sort_unstable();
        let (q1, q2, q3) = (*sorted.get(31)?, *sorted.get(63)?, *sorted.get(95)?);
        let nonzero = counted.iter().filter(|&&c| c > 0).count();
        if q3 == 0 || nonzero <= 64 {
            return None;
        }
        // The reference computes the ratios in single precision; so must we to match it.
        let ratio = |q: u32| ((q.wrapping_mul(100) as f32 / q3 as f32) as u32 % 16) as u8;
        let mut bytes = [0u8; 35];
        let mut out = bytes.iter_mut();
        // Header bytes are written nibble-swapped, the body from the last code to the first.
        for byte in [
            self.checksum.rotate_left(4),
            lvalue.rotate_left(4),
            (ratio(q1) << 4) | ratio(q2),
        ] {
            if let Some(o) = out.next() {
                *o = byte;
            }
        }
        for (quad, o) in counted.chunks_exact(4).rev().zip(out) {
            *o = quad.iter().rev().fold(0u8, |code, &c| {
                let level = if c > q3 {
                    3
                } else if c > q2 {
                    2
                } else {
                    u8::from(c > q1)
                };
                (code << 2) | level
            });
        }
        let text = format!("T1{}", hex::encode_upper(bytes));
        text.parse().ok()
    }
}

/// `window` with `b` shifted in as the newest byte.
fn shift(window: [u8; 4], b: u8) -> [u8; 4] {
    let [_, w1, w2, w3] = window;
    [w1, w2, w3, b]
}

/// The hot loop: counts the window ending at every byte of `data` (and, with `CHECKSUM`, chains
/// the checksum); `window` holds the four bytes before `data`, newest lowest. Returns the window
/// after `data`.
// Every index below is a `u8` into a 256-entry table, a `u16` into the 65,536-entry table or a
// constant below 8 into an 8-entry row, so none can be out of bounds (the checks compile away).
#[allow(clippy::indexing_slicing)]
#[inline(always)]
fn slide<const CHECKSUM: bool>(
    buckets: &mut [u32; 256],
    checksum: &mut u8,
    window: u32,
    data: &[u8],
) -> u32 {
    let mut ck = *checksum;
    // The window as a shift register, newest byte lowest: after shifting in b4, byte 1 is b3,
    // byte 2 is b2, byte 3 is b1, byte 4 is b0.
    let mut h = u64::from(window);
    for &b4 in data {
        h = (h << 8) | u64::from(b4);
        let first = &FIRST_STEP[usize::from(b4)];
        // Byte pairs `x | y << 8` of the triplets (b4, x, y).
        let p32 = (h >> 8) as u16;
        let p21 = (h >> 16) as u16;
        let p10 = (h >> 24) as u16;
        let p31 = (p32 & 0xFF) | (p21 & 0xFF00);
        let p20 = (p21 & 0xFF) | (p10 & 0xFF00);
        let p30 = (p32 & 0xFF) | (p10 & 0xFF00);
        for idx in [
            p32 ^ first[0],
            p31 ^ first[1],
            p21 ^ first[2],
            p20 ^ first[3],
            p30 ^ first[4],
            p10 ^ first[5],
        ] {
            let b = &mut buckets[usize::from(TWO_STEP[usize::from(idx)])];
            *b = b.wrapping_add(1);
        }
        if CHECKSUM {
            let b3 = (h >> 8) as u8;
            let step = PEARSON[usize::from(first[6] as u8 ^ b3)];
            ck = PEARSON[usize::from(step ^ ck)];
        }
    }
    *checksum = ck;
    h as u32
}

/// Counts the windows ending at positions `from..to` of `data` (none end before position 4).
fn count_windows(buckets: &mut [u32; 256], data: &[u8], from: usize, to: usize) {
    let from = from.max(LOOKBACK);
    if from >= to {
        return;
    }
    let before = data
        .get(from - LOOKBACK..from)
        .and_then(|b| <[u8; 4]>::try_from(b).ok());
    if let (Some(before), Some(body)) = (before, data.get(from..to)) {
        let mut unused = 0;
        slide::<false>(buckets, &mut unused, u32::from_be_bytes(before), body);
    }
}

/// The checksum of all of `data`: the sequential part of TLSH, one dependent load per byte.
// Indices are `u8` into 256-entry tables.
#[allow(clippy::indexing_slicing)]
fn checksum(data: &[u8]) -> u8 {
    let (Some(&first), Some(rest)) = (data.get(LOOKBACK - 1), data.get(LOOKBACK..)) else {
        return 0;
    };
    let mut ck = 0u8;
    let mut b3 = first;
    for &b4 in rest {
        let step = PEARSON[usize::from(FIRST_STEP[usize::from(b4)][6] as u8 ^ b3)];
        ck = PEARSON[usize::from(step ^ ck)];
        b3 = b4;
    }
    ck
}

/// The TLSH digest of a whole buffer (`None` for `TNULL`).
pub fn hash(data: &[u8]) -> Option<Tlsh> {
    let mut h = TlshHasher::new();
    h.update(data);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest `fast-tlsh`'s own generator gives (an independent implementation).
    fn crate_digest(data: &[u8]) -> Option<Tlsh> {
        let mut g = fast_tlsh::TlshGenerator::new();
        g.update(data);
        g.finalize().ok().map(Tlsh)
    }

    /// xorshift64: reproducible test bytes.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Bytes drawn from `symbols` values (few symbols: low variety, TNULL and equal quartiles).
    fn bytes(next: &mut impl FnMut() -> u64, len: usize, symbols: u64) -> Vec<u8> {
        (0..len).map(|_| (next() % symbols) as u8).collect()
    }

    #[test]
    fn generator_matches_the_crate_on_varied_inputs_and_splits() {
        let mut next = rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..300usize {
            let len = match round % 4 {
                0 => 40 + round % 30,
                1 => 50 + round * 7,
                2 => 1000 + round * 97,
                _ => 100_000 + round * 1021,
            };
            let symbols = [2u64, 5, 17, 256][round % 4];
            let data = bytes(&mut next, len, symbols);
            let want = crate_digest(&data);
            assert_eq!(hash(&data), want, "round {round}, {len} bytes");
            let mut h = TlshHasher::new();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = (next() as usize % 9).min(rest.len());
                let (piece, tail) = rest.split_at(n);
                h.update(piece);
                rest = tail;
            }
            assert_eq!(h.finish(), want, "round {round}, streamed");
        }
    }

    #[test]
    fn generator_matches_the_crate_at_every_short_length() {
        let mut next = rng(7);
        for len in 0..=600usize {
            for symbols in [3u64, 256] {
                let data = bytes(&mut next, len, symbols);
                assert_eq!(hash(&data), crate_digest(&data), "{len} bytes of {symbols}");
            }
        }
        // Boundary lengths of the minimum and of the length encoding's steps.
        for len in [
            49usize, 50, 51, 255, 256, 257, 4095, 4096, 4097, 65_535, 65_536, 65_537,
        ] {
            let data = bytes(&mut next, len, 256);
            assert_eq!(hash(&data), crate_digest(&data), "{len} bytes");
        }
        assert_eq!(hash(b""), None);
    }

    /// Parts of `data`: random offsets and lengths, some tiny, some overlapping, some touching.
    fn random_parts(next: &mut impl FnMut() -> u64, len: usize) -> Vec<(usize, usize)> {
        let count = next() as usize % 8;
        (0..count)
            .map(|_| {
                let start = next() as usize % (len + 1);
                let max = len - start;
                let n = match next() % 4 {
                    0 => next() as usize % 7,
                    _ => next() as usize % (max + 1),
                };
                (start, n.min(max))
            })
            .collect()
    }

    #[test]
    fn assembled_from_parts_equals_hashing_everything() {
        let mut next = rng(0xD1B5_4A32_D192_ED03);
        for round in 0..2000usize {
            let len = match round % 5 {
                0 => next() as usize % 80,
                1 => 50 + next() as usize % 500,
                2 => 1000 + next() as usize % 20_000,
                3 => 4 + next() as usize % 4,
                _ => 100_000 + next() as usize % 100_000,
            };
            let symbols = [2u64, 7, 256][round % 3];
            let data = bytes(&mut next, len, symbols);
            let mut parts = random_parts(&mut next, len);
            if round % 7 == 0 {
                // Back to back, covering everything.
                parts = vec![(0, len / 3), (len / 3, len - len / 3)];
            }
            let hashers: Vec<(usize, TlshHasher)> = parts
                .iter()
                .map(|&(s, n)| {
                    let mut h = TlshHasher::new();
                    h.update(&data[s..s + n]);
                    (s, h)
                })
                .collect();
            let refs: Vec<(usize, &TlshHasher)> = hashers.iter().map(|(s, h)| (*s, h)).collect();
            let mut whole = TlshHasher::new();
            whole.update(&data);
            let got = TlshHasher::assembled(&data, &refs);
            assert_eq!(got, whole, "round {round}, {len} bytes, parts {parts:?}");
            assert_eq!(got.finish(), crate_digest(&data), "round {round}");
        }
    }

    #[test]
    fn assembled_ignores_parts_that_do_not_fit() {
        let mut next = rng(99);
        let data = bytes(&mut next, 5000, 256);
        let mut whole = TlshHasher::new();
        whole.update(&data);
        // Fed other bytes than data's at that offset; beyond the end; overlapping the first.
        let mut other = TlshHasher::new();
        other.update(&bytes(&mut next, 1000, 256));
        let mut tail = TlshHasher::new();
        tail.update(&data[4500..]);
        let mut first = TlshHasher::new();
        first.update(&data[100..2000]);
        let mut overlapping = TlshHasher::new();
        overlapping.update(&data[1500..3000]);
        let parts = [
            (3000, &other),
            (4600, &tail),
            (100, &first),
            (1500, &overlapping),
        ];
        assert_eq!(TlshHasher::assembled(&data, &parts), whole);
        assert_eq!(TlshHasher::assembled(&data, &[]), whole);
    }

    #[test]
    fn short_or_uniform_input_has_no_digest() {
        assert_eq!(hash(&[0x41; 49]), None);
        assert_eq!(hash(&[0u8; 100_000]), None);
    }

    #[test]
    fn digest_round_trips_and_distance_is_zero_to_itself() {
        let data: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let d = hash(&data).unwrap();
        let s = d.to_string();
        assert!(s.starts_with("T1") && s.len() == 72, "{s}");
        let back: Tlsh = s.parse().unwrap();
        assert_eq!(back, d);
        assert_eq!(d.diff(&back), 0);
        assert!("T1XYZ".parse::<Tlsh>().is_err());
    }
}
