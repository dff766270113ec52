//! The fused digest pass: SHA-256, ssdeep and TLSH of one buffer in a single walk, chunk by chunk
//! so that each chunk is still in cache while every hasher reads it; rayon across buffers.

use rayon::prelude::*;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use sha2::{Digest, Sha256};

use super::ssdeep::{Ssdeep, SsdeepError, SsdeepHasher, SsdeepPrepared};
use super::tlsh::{Tlsh, TlshHasher};

/// Bytes handed to every hasher in turn (fits in L1/L2 together with the hashers' state).
pub const CHUNK: usize = 32 << 10;

/// The digests of one buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digests {
    /// Length in bytes.
    pub size: u64,
    /// SHA-256.
    pub sha256: [u8; 32],
    /// ssdeep; `Err` only for inputs above 192 GiB, which ssdeep cannot digest.
    pub ssdeep: Result<Ssdeep, SsdeepError>,
    /// TLSH; `None` where TLSH gives no digest (`TNULL`).
    pub tlsh: Option<Tlsh>,
}

impl Digests {
    /// The digests parsed for fast comparison.
    pub fn prepare(&self) -> PreparedDigests {
        PreparedDigests {
            ssdeep: self.ssdeep.as_ref().ok().map(Ssdeep::prepare),
            tlsh: self.tlsh,
        }
    }
}

impl Serialize for Digests {
    /// `size`, `sha256` (hex), `ssdeep` (string or null), `tlsh` (string or null).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Digests", 4)?;
        st.serialize_field("size", &self.size)?;
        st.serialize_field("sha256", &hex::encode(self.sha256))?;
        st.serialize_field(
            "ssdeep",
            &self.ssdeep.as_ref().ok().map(ToString::to_string),
        )?;
        st.serialize_field("tlsh", &self.tlsh.map(|t| t.to_string()))?;
        st.end()
    }
}

/// Fuzzy digests ready for comparison; what compare and the corpus keep in memory.
#[derive(Clone, Debug)]
pub struct PreparedDigests {
    /// Parsed ssdeep digest.
    pub ssdeep: Option<SsdeepPrepared>,
    /// TLSH digest.
    pub tlsh: Option<Tlsh>,
}

/// How similar two buffers are by their fuzzy digests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Similarity {
    /// ssdeep score 0–100; `None` when the block sizes are not comparable (or a digest is
    /// missing).
    pub ssdeep: Option<u32>,
    /// TLSH distance with the length term; `None` when either side has no digest.
    pub tlsh_diff: Option<u32>,
    /// TLSH distance without the length term.
    pub tlsh_diff_no_len: Option<u32>,
}

impl PreparedDigests {
    /// Both fuzzy comparisons.
    pub fn compare(&self, other: &Self) -> Similarity {
        let ssdeep = match (&self.ssdeep, &other.ssdeep) {
            (Some(a), Some(b)) => a.compare(b),
            _ => None,
        };
        let (tlsh_diff, tlsh_diff_no_len) = match (&self.tlsh, &other.tlsh) {
            (Some(a), Some(b)) => (Some(a.diff(b)), Some(a.diff_no_len(b))),
            _ => (None, None),
        };
        Similarity {
            ssdeep,
            tlsh_diff,
            tlsh_diff_no_len,
        }
    }
}

/// Streaming form of the fused pass.
#[derive(Clone, Debug)]
pub struct DigestHasher {
    sha256: Sha256,
    ssdeep: SsdeepHasher,
    tlsh: TlshHasher,
    size: u64,
}

impl Default for DigestHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl DigestHasher {
    /// A hasher for input of unknown length.
    pub fn new() -> Self {
        Self {
            sha256: Sha256::new(),
            ssdeep: SsdeepHasher::new(),
            tlsh: TlshHasher::new(),
            size: 0,
        }
    }

    /// A hasher told the exact input length in advance (faster ssdeep; see
    /// [`SsdeepHasher::with_len`]).
    pub fn with_len(len: u64) -> Self {
        Self {
            ssdeep: SsdeepHasher::with_len(len),
            ..Self::new()
        }
    }

    /// Feeds more input; large inputs are split into cache-sized chunks.
    pub fn update(&mut self, data: &[u8]) {
        for chunk in data.chunks(CHUNK) {
            self.sha256.update(chunk);
            self.ssdeep.update(chunk);
            self.tlsh.update(chunk);
        }
        self.size = self
            .size
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
    }

    /// The digests of everything fed so far.
    pub fn finish(self) -> Digests {
        self.finish_with_tlsh().0
    }

    /// [`finish`](Self::finish), also giving the TLSH state (its bucket counts can be reused for
    /// a larger buffer holding these bytes: [`TlshHasher::assembled`]).
    pub fn finish_with_tlsh(self) -> (Digests, TlshHasher) {
        let digests = Digests {
            size: self.size,
            sha256: self.sha256.finalize().into(),
            ssdeep: self.ssdeep.finish(),
            tlsh: self.tlsh.finish(),
        };
        (digests, self.tlsh)
    }
}

/// SHA-256, ssdeep and TLSH of `data` in one pass.
pub fn digests(data: &[u8]) -> Digests {
    let mut h = DigestHasher::with_len(u64::try_from(data.len()).unwrap_or(u64::MAX));
    h.update(data);
    h.finish()
}

/// [`digests`] of many buffers, in parallel across buffers (order kept).
pub fn digests_par<T: AsRef<[u8]> + Sync>(items: &[T]) -> Vec<Digests> {
    items.par_iter().map(|d| digests(d.as_ref())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_pass_equals_separate_hashers() {
        let data: Vec<u8> = (0..(3 * CHUNK as u32 + 17))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        let d = digests(&data);
        assert_eq!(d.size, data.len() as u64);
        assert_eq!(d.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(d.ssdeep, super::super::ssdeep::hash(&data));
        assert_eq!(d.tlsh, super::super::tlsh::hash(&data));
        let mut streaming = DigestHasher::new();
        for piece in data.chunks(1000) {
            streaming.update(piece);
        }
        assert_eq!(streaming.finish(), d);
    }

    #[test]
    fn chunk_boundaries_at_every_alignment() {
        // Lengths around one and two chunks, fed whole and split at every offset of a 64-byte
        // stretch around the first chunk boundary: equal to each hasher run alone.
        let data: Vec<u8> = (0..(2 * CHUNK as u32 + 64))
            .map(|i| (i.wrapping_mul(2_246_822_519).rotate_left(13) >> 5) as u8)
            .collect();
        for len in [CHUNK - 1, CHUNK, CHUNK + 1, CHUNK + 7, 2 * CHUNK + 63] {
            let d = &data[..len];
            let one = digests(d);
            assert_eq!(one.sha256, <[u8; 32]>::from(Sha256::digest(d)));
            assert_eq!(one.ssdeep, super::super::ssdeep::hash(d));
            assert_eq!(one.tlsh, super::super::tlsh::hash(d));
            for p in CHUNK - 32..CHUNK + 32 {
                let p = p.min(len);
                let mut h = DigestHasher::with_len(len as u64);
                h.update(&d[..p]);
                h.update(&d[p..]);
                assert_eq!(h.finish(), one, "length {len}, split at {p}");
            }
        }
    }

    #[test]
    fn identical_buffers_compare_as_identical() {
        let data: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(40_503) >> 7) as u8)
            .collect();
        let p = digests(&data).prepare();
        let s = p.compare(&p);
        assert_eq!(s.ssdeep, Some(100));
        assert_eq!(s.tlsh_diff, Some(0));
        assert_eq!(s.tlsh_diff_no_len, Some(0));
        let all = digests_par(&[data.clone(), data]);
        assert_eq!(all[0], all[1]);
    }
}
