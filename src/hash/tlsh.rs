//! TLSH (Trend Micro's locality-sensitive hash): T1 format, 128 buckets, 1-byte checksum, 50-byte
//! minimum, no digest for low-variety input. Digests are generated here and compared through the
//! `fast-tlsh` crate; both are checked byte-for-byte against py-tlsh 5.0.0 by the golden and
//! differential tests.
//!
//! Why the generator is written here: it is the slowest part of the fused digest pass, and the
//! bucket update can be cut to seven table loads and six increments per input byte (one 64 KiB
//! two-step Pearson table indexed by a window byte pair, one per-byte table of the salted first
//! steps) with the window in a shift register and the buckets in a local array — about twice the speed of the crate's generator. The Pearson
//! permutation is TLSH's published table; the length encoding comes from `fast-tlsh`.

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

/// Streaming TLSH state.
#[derive(Clone, Debug)]
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
        let (head, rest) = data.split_at(fill);
        for &b in head {
            self.window = [self.window[1], self.window[2], self.window[3], b];
        }
        let room = usize::try_from(MAX_LEN.saturating_sub(self.len.saturating_add(fill as u64)))
            .unwrap_or(usize::MAX);
        let rest = rest.get(..room.min(rest.len())).unwrap_or_default();
        self.len = self.len.saturating_add(data.len() as u64);
        if !rest.is_empty() {
            self.slide(rest);
        }
    }

    /// The hot loop: every byte of `data` ends a full five-byte window.
    // Every index below is a `u8` into a 256-entry table, a `u16` into the 65,536-entry table or a
    // constant below 8 into an 8-entry row, so none can be out of bounds (the checks compile away).
    #[allow(clippy::indexing_slicing)]
    fn slide(&mut self, data: &[u8]) {
        let mut buckets = self.buckets;
        let mut checksum = self.checksum;
        // The window as a shift register, newest byte lowest: after shifting in b4, byte 1 is b3,
        // byte 2 is b2, byte 3 is b1, byte 4 is b0.
        let [w0, w1, w2, w3] = self.window;
        let mut h = u64::from_be_bytes([0, 0, 0, 0, w0, w1, w2, w3]);
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
            buckets[usize::from(TWO_STEP[usize::from(p32 ^ first[0])])] += 1;
            buckets[usize::from(TWO_STEP[usize::from(p31 ^ first[1])])] += 1;
            buckets[usize::from(TWO_STEP[usize::from(p21 ^ first[2])])] += 1;
            buckets[usize::from(TWO_STEP[usize::from(p20 ^ first[3])])] += 1;
            buckets[usize::from(TWO_STEP[usize::from(p30 ^ first[4])])] += 1;
            buckets[usize::from(TWO_STEP[usize::from(p10 ^ first[5])])] += 1;
            let b3 = (h >> 8) as u8;
            let step = PEARSON[usize::from(first[6] as u8 ^ b3)];
            checksum = PEARSON[usize::from(step ^ checksum)];
        }
        self.buckets = buckets;
        self.window = [(h >> 24) as u8, (h >> 16) as u8, (h >> 8) as u8, h as u8];
        self.checksum = checksum;
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
        let (q1, q2, q3) = (sorted[31], sorted[63], sorted[95]);
        let nonzero = counted.iter().filter(|&&c| c > 0).count();
        if q3 == 0 || nonzero <= 64 {
            return None;
        }
        // The reference computes the ratios in single precision; so must we to match it.
        let ratio = |q: u32| ((q.wrapping_mul(100) as f32 / q3 as f32) as u32 % 16) as u8;
        let mut hex = String::with_capacity(72);
        hex.push_str("T1");
        // Header bytes are written nibble-swapped, the body from the last code to the first.
        for byte in [
            self.checksum.rotate_left(4),
            lvalue.rotate_left(4),
            (ratio(q1) << 4) | ratio(q2),
        ] {
            hex.push_str(&format!("{byte:02X}"));
        }
        for quad in counted.chunks_exact(4).rev() {
            let code = quad.iter().rev().fold(0u8, |code, &c| {
                let level = if c > q3 {
                    3
                } else if c > q2 {
                    2
                } else {
                    u8::from(c > q1)
                };
                (code << 2) | level
            });
            hex.push_str(&format!("{code:02X}"));
        }
        hex.parse().ok()
    }
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

    #[test]
    fn generator_matches_the_crate_on_varied_inputs_and_splits() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300usize {
            let len = match round % 4 {
                0 => 40 + round % 30,
                1 => 50 + round * 7,
                2 => 1000 + round * 97,
                _ => 100_000 + round * 1021,
            };
            // Low-variety inputs (a few symbols) exercise the TNULL rules and equal quartiles.
            let symbols = [2u64, 5, 17, 256][round % 4];
            let data: Vec<u8> = (0..len).map(|_| (next() % symbols) as u8).collect();
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
