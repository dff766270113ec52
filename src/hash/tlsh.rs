//! TLSH (Trend Micro's locality-sensitive hash) through the `fast-tlsh` crate: T1 format, 128
//! buckets, 1-byte checksum, 50-byte minimum, no digest for low-variety input. Checked
//! byte-for-byte against py-tlsh 5.0.0 by the golden and differential tests.

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

/// Streaming TLSH state.
#[derive(Clone, Debug, Default)]
pub struct TlshHasher(fast_tlsh::TlshGenerator);

impl TlshHasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more input.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest, or `None` where TLSH gives none (`TNULL`: fewer than 50 bytes, too few
    /// distinct buckets, or a zero third quartile).
    pub fn finish(&self) -> Option<Tlsh> {
        self.0.finalize().ok().map(Tlsh)
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
