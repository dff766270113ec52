//! ssdeep (context-triggered piecewise hashing), written in this project from the published
//! description of the algorithm (ssdeep-project `fuzzy.c`/`edit_dist.c` behaviour as documented in
//! the golden set's ALGORITHM.md): digests and scores byte-identical to libfuzzy 2.14.1.
//!
//! The hasher is streaming and single-pass: it keeps every candidate block size (3·2^i) alive at
//! once and picks one at the end. Its inner loop updates the 6-bit piece hashes of the live block
//! sizes as arrays of 8, 16, 24 or 32 `u16` lanes (a few vector multiplies per byte; the high bits
//! of a lane are never read, so no masking in the loop), so the cost per byte barely grows with
//! the number of block sizes in flight. Comparison works on [`SsdeepPrepared`], a digest parsed once, with
//! cheap prefilters (block-size compatibility, then a common 7-gram) before the edit distance,
//! which is a bit-parallel LCS over one machine word.

use std::fmt;
use std::str::FromStr;

/// Longest first signature part (`SPAMSUM_LENGTH`); the second part holds at most half of it.
pub const SPAMSUM_LENGTH: usize = 64;
/// Number of block sizes tracked (3·2^0 … 3·2^30).
const NUM_BLOCKHASHES: usize = 31;
/// Smallest block size.
const MIN_BLOCKSIZE: u64 = 3;
/// Width of the rolling hash window, and the common substring length compare requires.
const ROLLING_WINDOW: usize = 7;
/// Low 6 bits of the FNV-style piece hash's initial value 0x28021967.
const HASH_INIT: u16 = 0x27;
/// Low 6 bits of the FNV prime 0x01000193: only the low 6 bits of a piece hash are ever used.
const HASH_PRIME: u16 = 0x13;
/// Largest input a digest exists for: 3·2^30 · 64 bytes (192 GiB).
pub const MAX_INPUT_LEN: u64 = (MIN_BLOCKSIZE << 30) * SPAMSUM_LENGTH as u64;
/// The base64 alphabet the signature characters come from.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// Number of piece-hash lanes: 31 block sizes + the `lasth` lane.
const LANES: usize = 32;
/// The hot loop runs over a multiple of this many lanes (one 128-bit vector of `u16`).
const LANE_STEP: usize = 8;
/// The lane that holds libfuzzy's `lasth` (the piece hash past the largest block size).
const LAST_LANE: usize = NUM_BLOCKHASHES;

/// Why no digest could be produced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SsdeepError {
    /// More than [`MAX_INPUT_LEN`] bytes were hashed (libfuzzy refuses these too).
    #[error("input longer than {MAX_INPUT_LEN} bytes has no ssdeep digest")]
    TooLarge,
    /// The hasher was told the input length up front and was then fed a different amount.
    #[error("announced input length {announced} but {fed} bytes were hashed")]
    LengthMismatch {
        /// Length given to [`SsdeepHasher::with_len`].
        announced: u64,
        /// Bytes actually fed.
        fed: u64,
    },
}

/// Why a digest string could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SsdeepParseError {
    /// The text is not `blocksize:part1:part2`.
    #[error("not an ssdeep digest (expected blocksize:part1:part2)")]
    Syntax,
    /// The block size is not a positive decimal number.
    #[error("invalid ssdeep block size")]
    BlockSize,
    /// A part is longer than [`SPAMSUM_LENGTH`] characters.
    #[error("ssdeep signature part longer than {SPAMSUM_LENGTH} characters")]
    TooLong,
}

/// An ssdeep digest: block size and its two signature parts, exactly as libfuzzy prints them
/// (runs of identical characters are kept; [`SsdeepPrepared`] shortens them for comparison).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ssdeep {
    block_size: u64,
    part1: Vec<u8>,
    part2: Vec<u8>,
}

impl Ssdeep {
    /// The block size (3·2^i for digests computed here).
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// The signature at the block size (at most 64 characters).
    pub fn part1(&self) -> &[u8] {
        &self.part1
    }

    /// The signature at twice the block size (at most 32 characters for digests computed here).
    pub fn part2(&self) -> &[u8] {
        &self.part2
    }

    /// This digest parsed for fast, repeated comparison.
    pub fn prepare(&self) -> SsdeepPrepared {
        SsdeepPrepared::new(self.block_size, &self.part1, &self.part2)
    }
}

impl fmt::Display for Ssdeep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Parts are base64 characters when computed here; parsed ones were checked to hold no
        // separators. Lossy conversion keeps Display total for arbitrary parsed bytes.
        write!(
            f,
            "{}:{}:{}",
            self.block_size,
            String::from_utf8_lossy(&self.part1),
            String::from_utf8_lossy(&self.part2)
        )
    }
}

impl FromStr for Ssdeep {
    type Err = SsdeepParseError;

    /// Parses `blocksize:part1:part2`, ignoring a trailing `,"filename"` as `fuzzy_compare` does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (bs, rest) = s.split_once(':').ok_or(SsdeepParseError::Syntax)?;
        if bs.is_empty() || !bs.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SsdeepParseError::BlockSize);
        }
        let block_size: u64 = bs.parse().map_err(|_| SsdeepParseError::BlockSize)?;
        if block_size == 0 {
            return Err(SsdeepParseError::BlockSize);
        }
        let (p1, rest) = rest.split_once(':').ok_or(SsdeepParseError::Syntax)?;
        let p2 = rest.split_once(',').map_or(rest, |(p, _)| p);
        if p2.contains(':') {
            return Err(SsdeepParseError::Syntax);
        }
        if p1.len() > SPAMSUM_LENGTH || p2.len() > SPAMSUM_LENGTH {
            return Err(SsdeepParseError::TooLong);
        }
        Ok(Self {
            block_size,
            part1: p1.as_bytes().to_vec(),
            part2: p2.as_bytes().to_vec(),
        })
    }
}

/// The ssdeep digest of a whole buffer (libfuzzy's `fuzzy_hash_buf`).
pub fn hash(data: &[u8]) -> Result<Ssdeep, SsdeepError> {
    let len = u64::try_from(data.len()).map_err(|_| SsdeepError::TooLarge)?;
    let mut h = SsdeepHasher::with_len(len);
    h.update(data);
    h.finish()
}

/// Streaming ssdeep state. Feed bytes with [`update`](Self::update), read the digest with
/// [`finish`](Self::finish).
#[derive(Clone, Debug)]
pub struct SsdeepHasher {
    /// Rolling hash: window sum.
    h1: u32,
    /// Rolling hash: position-weighted window sum.
    h2: u32,
    /// Rolling hash: shift/xor of the window.
    h3: u32,
    /// The last 7 bytes; byte at stream position `p` sits at `window[p % 7]`.
    window: [u8; ROLLING_WINDOW],
    /// Piece hashes per block size (lane = block-size index); only the low 6 bits are meaningful.
    h: [u16; LANES],
    /// Piece hashes for the truncated second part (`halfh`), same layout.
    half: [u16; LANES],
    /// Signature characters per block size.
    digest: [[u8; SPAMSUM_LENGTH]; NUM_BLOCKHASHES],
    /// Number of finished characters per block size (at most 63; the 64th is the tail).
    dindex: [u8; NUM_BLOCKHASHES],
    /// Last character written for the second part (0 = none since its last reset).
    halfdigest: [u8; NUM_BLOCKHASHES],
    /// First block size still in the running.
    bhstart: usize,
    /// One past the last block size in the running.
    bhend: usize,
    /// Whether the `lasth` lane is live (all 31 block sizes started).
    need_lasth: bool,
    /// Bytes fed so far (saturating just above [`MAX_INPUT_LEN`]).
    total: u64,
    /// Stream position of the next byte (only its value modulo 7 matters).
    pos: u64,
    /// Input length announced up front (lets smaller block sizes retire early).
    fixed: Option<u64>,
}

impl Default for SsdeepHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl SsdeepHasher {
    /// A hasher for input of unknown length.
    pub fn new() -> Self {
        let mut s = Self {
            h1: 0,
            h2: 0,
            h3: 0,
            window: [0; ROLLING_WINDOW],
            h: [0; LANES],
            half: [0; LANES],
            digest: [[0; SPAMSUM_LENGTH]; NUM_BLOCKHASHES],
            dindex: [0; NUM_BLOCKHASHES],
            halfdigest: [0; NUM_BLOCKHASHES],
            bhstart: 0,
            bhend: 1,
            need_lasth: false,
            total: 0,
            pos: 0,
            fixed: None,
        };
        set_lane(&mut s.h, 0, HASH_INIT);
        set_lane(&mut s.half, 0, HASH_INIT);
        s
    }

    /// A hasher told the exact input length in advance, which makes it faster (block sizes that
    /// cannot be chosen retire early). [`finish`](Self::finish) fails if a different number of
    /// bytes was fed.
    pub fn with_len(len: u64) -> Self {
        let mut s = Self::new();
        s.fixed = Some(len);
        s
    }

    /// Feeds more input.
    pub fn update(&mut self, data: &[u8]) {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.total = if self.total <= MAX_INPUT_LEN.saturating_sub(len) {
            self.total + len
        } else {
            MAX_INPUT_LEN + 1
        };
        // The first bytes of a call take their outgoing window byte from the saved window, the
        // rest straight from `data` seven bytes back.
        let head = data.len().min(ROLLING_WINDOW);
        let mut pos = 0usize;
        while pos < head {
            let n = self.run_dispatch(data.get(pos..head).unwrap_or_default(), None);
            pos += n;
        }
        while pos < data.len() {
            let cs = data.get(pos..).unwrap_or_default();
            let outs = data.get(pos - ROLLING_WINDOW..).unwrap_or_default();
            let n = self.run_dispatch(cs, Some(outs));
            pos += n;
        }
        // Save the last bytes of this call into the ring, at their stream positions.
        let keep = data.len().min(ROLLING_WINDOW);
        let tail = data.get(data.len() - keep..).unwrap_or_default();
        let end = self.pos;
        for (k, &c) in tail.iter().enumerate() {
            let p = end.wrapping_sub((keep - k) as u64);
            if let Some(w) = self.window.get_mut((p % ROLLING_WINDOW as u64) as usize) {
                *w = c;
            }
        }
    }

    /// Runs the hot loop over as many lanes as the live block sizes need (rounded up to a
    /// multiple of [`LANE_STEP`]).
    fn run_dispatch(&mut self, cs: &[u8], outs: Option<&[u8]>) -> usize {
        let last = if self.need_lasth {
            LAST_LANE
        } else {
            self.bhend - 1
        };
        match last.saturating_sub(self.bhstart) / LANE_STEP {
            0 => self.run::<LANE_STEP>(cs, outs),
            1 => self.run::<{ 2 * LANE_STEP }>(cs, outs),
            2 => self.run::<{ 3 * LANE_STEP }>(cs, outs),
            _ => self.run::<LANES>(cs, outs),
        }
    }

    /// Hashes bytes until the end of `cs` or up to and including the first byte that ends a
    /// piece; returns the number of bytes consumed. `outs[k]` is the byte leaving the window
    /// when `cs[k]` enters (`None`: take it from the saved window).
    #[inline(always)]
    fn run<const L: usize>(&mut self, cs: &[u8], outs: Option<&[u8]>) -> usize {
        // Lanes ws..ws + L hold every live block size (bhstart..=last, fewer than L of them).
        let ws = self.bhstart.min(LANES - L);
        let mut h = [0u16; L];
        let mut f = [0u16; L];
        if let (Some(src_h), Some(src_f)) = (self.h.get(ws..ws + L), self.half.get(ws..ws + L)) {
            h.copy_from_slice(src_h);
            f.copy_from_slice(src_f);
        }
        let (mut h1, mut h2, mut h3) = (self.h1, self.h2, self.h3);
        // A piece ends at block size 3·2^i when (roll+1) is a non-zero multiple of 3·2^i; then
        // q = (roll+1)·3⁻¹ mod 2^32 = (roll+1)/3, and the block sizes hit are those with
        // q % 2^i == 0.
        let bshift = self.bhstart as u32;
        let limit: u32 = u32::MAX / (3u32 << bshift);
        let mut consumed = 0usize;
        let mut hit: Option<u32> = None;
        let mut pos = self.pos;
        // One byte: roll the window, advance every lane's piece hash, test for a piece end.
        // A macro rather than a closure: a closure called from two loops was not always inlined,
        // and a call per byte costs as much as the work.
        macro_rules! step {
            ($c:expr, $out:expr) => {{
                let (c, out): (u8, u8) = ($c, $out);
                let cw = u32::from(c);
                h2 = h2
                    .wrapping_sub(h1)
                    .wrapping_add(cw.wrapping_mul(ROLLING_WINDOW as u32));
                h1 = h1.wrapping_add(cw).wrapping_sub(u32::from(out));
                h3 = (h3 << 5) ^ cw;
                // Lanes are independent `u16`s: the loops become vector multiplies; bits above the
                // sixth never reach the low six, so they are left to wrap.
                let cc = u16::from(c);
                for x in h.iter_mut() {
                    *x = x.wrapping_mul(HASH_PRIME) ^ cc;
                }
                for y in f.iter_mut() {
                    *y = y.wrapping_mul(HASH_PRIME) ^ cc;
                }
                let t = h1.wrapping_add(h2).wrapping_add(h3).wrapping_add(1);
                let q = t.wrapping_mul(0xAAAA_AAAB);
                // t is a multiple of 3·2^b iff rotr(t·3⁻¹, b) <= u32::MAX / (3·2^b) (Hacker's
                // Delight 10-17): one comparison, one well-predicted branch.
                (q.rotate_right(bshift) <= limit && t != 0).then_some(q)
            }};
        }
        match outs {
            Some(o) => {
                for (&c, &out) in cs.iter().zip(o) {
                    consumed += 1;
                    if let Some(q) = step!(c, out) {
                        hit = Some(q);
                        break;
                    }
                }
                pos = pos.wrapping_add(consumed as u64);
            }
            None => {
                for &c in cs {
                    let slot = (pos % ROLLING_WINDOW as u64) as usize;
                    let out = self.window.get(slot).copied().unwrap_or(0);
                    if let Some(w) = self.window.get_mut(slot) {
                        *w = c;
                    }
                    pos = pos.wrapping_add(1);
                    consumed += 1;
                    if let Some(q) = step!(c, out) {
                        hit = Some(q);
                        break;
                    }
                }
            }
        }
        self.pos = pos;
        (self.h1, self.h2, self.h3) = (h1, h2, h3);
        if let (Some(dst_h), Some(dst_f)) =
            (self.h.get_mut(ws..ws + L), self.half.get_mut(ws..ws + L))
        {
            dst_h.copy_from_slice(&h);
            dst_f.copy_from_slice(&f);
        }
        if let Some(q) = hit {
            self.end_pieces(q);
        }
        consumed
    }

    /// A piece ended at every live block size 3·2^i with 2^i dividing `q`.
    fn end_pieces(&mut self, q: u32) {
        let top = q.trailing_zeros() as usize;
        let mut i = self.bhstart;
        while i < self.bhend && i <= top {
            let Some(&di) = self.dindex.get(i) else {
                break;
            };
            if di == 0 {
                self.fork();
            }
            let hv = lane(&self.h, i);
            let fv = lane(&self.half, i);
            let di = usize::from(di);
            if let Some(d) = self.digest.get_mut(i)
                && let Some(slot) = d.get_mut(di)
            {
                *slot = b64(hv);
            }
            if let Some(hd) = self.halfdigest.get_mut(i) {
                *hd = b64(fv);
            }
            if di < SPAMSUM_LENGTH - 1 {
                let nd = di + 1;
                if let Some(d) = self.digest.get_mut(i)
                    && let Some(slot) = d.get_mut(nd)
                {
                    *slot = 0;
                }
                if let Some(x) = self.dindex.get_mut(i) {
                    *x = nd as u8;
                }
                set_lane(&mut self.h, i, HASH_INIT);
                if nd < SPAMSUM_LENGTH / 2 {
                    set_lane(&mut self.half, i, HASH_INIT);
                    if let Some(hd) = self.halfdigest.get_mut(i) {
                        *hd = 0;
                    }
                }
            } else {
                self.try_reduce();
            }
            i += 1;
        }
    }

    /// The first piece at the largest live block size ended: start the next block size from
    /// the same state (it has seen exactly the same bytes so far).
    fn fork(&mut self) {
        let last = self.bhend - 1;
        if self.bhend < NUM_BLOCKHASHES {
            let n = self.bhend;
            let (hv, fv) = (lane(&self.h, last), lane(&self.half, last));
            set_lane(&mut self.h, n, hv);
            set_lane(&mut self.half, n, fv);
            if let Some(d) = self.digest.get_mut(n) {
                d[0] = 0;
            }
            if let Some(x) = self.dindex.get_mut(n) {
                *x = 0;
            }
            if let Some(x) = self.halfdigest.get_mut(n) {
                *x = 0;
            }
            self.bhend += 1;
        } else if self.bhend == NUM_BLOCKHASHES && !self.need_lasth {
            self.need_lasth = true;
            let hv = lane(&self.h, last);
            set_lane(&mut self.h, LAST_LANE, hv);
        }
    }

    /// Retires the smallest block size once it can no longer be chosen.
    fn try_reduce(&mut self) {
        if self.bhend - self.bhstart < 2 {
            return;
        }
        let size = self.fixed.unwrap_or(self.total);
        let border = (MIN_BLOCKSIZE << self.bhstart) * SPAMSUM_LENGTH as u64;
        if border >= size {
            return;
        }
        if usize::from(self.dindex.get(self.bhstart + 1).copied().unwrap_or(0)) < SPAMSUM_LENGTH / 2
        {
            return;
        }
        self.bhstart += 1;
    }

    /// The digest of everything fed so far.
    pub fn finish(&self) -> Result<Ssdeep, SsdeepError> {
        if self.total > MAX_INPUT_LEN {
            return Err(SsdeepError::TooLarge);
        }
        if let Some(announced) = self.fixed
            && announced != self.total
        {
            return Err(SsdeepError::LengthMismatch {
                announced,
                fed: self.total,
            });
        }
        let roll = self.h1.wrapping_add(self.h2).wrapping_add(self.h3);
        let mut bi = self.bhstart;
        while (MIN_BLOCKSIZE << bi) * (SPAMSUM_LENGTH as u64) < self.total {
            bi += 1;
            if bi >= NUM_BLOCKHASHES {
                return Err(SsdeepError::TooLarge);
            }
        }
        if bi >= self.bhend {
            bi = self.bhend - 1;
        }
        while bi > self.bhstart && usize::from(self.dindex_at(bi)) < SPAMSUM_LENGTH / 2 {
            bi -= 1;
        }
        let block_size = MIN_BLOCKSIZE << bi;

        let di = usize::from(self.dindex_at(bi));
        let sig = self.digest.get(bi).map(|d| &d[..]).unwrap_or_default();
        let mut part1: Vec<u8> = sig.get(..di).unwrap_or_default().to_vec();
        if roll != 0 {
            part1.push(b64(lane(&self.h, bi)));
        } else if let Some(&c) = sig.get(di).filter(|&&c| c != 0) {
            part1.push(c);
        }

        let mut part2 = Vec::with_capacity(SPAMSUM_LENGTH / 2);
        if bi + 1 < self.bhend {
            let b2 = bi + 1;
            let di2 = usize::from(self.dindex_at(b2)).min(SPAMSUM_LENGTH / 2 - 1);
            let sig2 = self.digest.get(b2).map(|d| &d[..]).unwrap_or_default();
            part2.extend_from_slice(sig2.get(..di2).unwrap_or_default());
            if roll != 0 {
                part2.push(b64(lane(&self.half, b2)));
            } else {
                let hd = self.halfdigest.get(b2).copied().unwrap_or(0);
                if hd != 0 {
                    part2.push(hd);
                }
            }
        } else if roll != 0 {
            if bi == 0 {
                part2.push(b64(lane(&self.h, bi)));
            } else {
                part2.push(b64(lane(&self.h, LAST_LANE)));
            }
        }
        Ok(Ssdeep {
            block_size,
            part1,
            part2,
        })
    }

    fn dindex_at(&self, i: usize) -> u8 {
        self.dindex.get(i).copied().unwrap_or(0)
    }
}

/// The 6-bit piece hash of block size `i`.
fn lane(lanes: &[u16; LANES], i: usize) -> u16 {
    lanes.get(i).copied().unwrap_or(0) & 0x3f
}

/// Sets the 6-bit piece hash of block size `i`.
fn set_lane(lanes: &mut [u16; LANES], i: usize, v: u16) {
    if let Some(l) = lanes.get_mut(i) {
        *l = v & 0x3f;
    }
}

/// The signature character for a 6-bit hash.
fn b64(v: u16) -> u8 {
    B64.get((v & 0x3f) as usize).copied().unwrap_or(b'A')
}

/// Score of two digests, as libfuzzy's `fuzzy_compare` computes it: `None` when the block sizes
/// are neither equal nor a factor of two apart (libfuzzy returns 0 for these: "not comparable").
pub fn compare(a: &Ssdeep, b: &Ssdeep) -> Option<u32> {
    a.prepare().compare(&b.prepare())
}

/// Maximum number of 7-grams in one part.
const MAX_GRAMS: usize = SPAMSUM_LENGTH - ROLLING_WINDOW + 1;

/// One signature part ready for comparison: runs cut to 3, and its 7-grams sorted.
#[derive(Clone, Debug)]
pub(super) struct Part {
    /// The characters, runs of more than three identical ones cut to three.
    chars: [u8; SPAMSUM_LENGTH],
    /// Number of characters in `chars`.
    len: u8,
    /// Every 7-character substring packed exactly into a `u64` (7 × 8 bits), sorted.
    grams: [u64; MAX_GRAMS],
    /// Number of entries in `grams`.
    ngrams: u8,
}

impl Part {
    fn new(raw: &[u8]) -> Self {
        let mut chars = [0u8; SPAMSUM_LENGTH];
        let mut len = 0usize;
        for (i, &c) in raw.iter().enumerate().take(SPAMSUM_LENGTH) {
            let run = i >= 3
                && raw.get(i - 1) == Some(&c)
                && raw.get(i - 2) == Some(&c)
                && raw.get(i - 3) == Some(&c);
            if !run && let Some(slot) = chars.get_mut(len) {
                *slot = c;
                len += 1;
            }
        }
        let mut grams = [u64::MAX; MAX_GRAMS];
        let mut ngrams = 0usize;
        let s = chars.get(..len).unwrap_or_default();
        for (g, w) in grams.iter_mut().zip(s.windows(ROLLING_WINDOW)) {
            *g = w.iter().fold(0u64, |acc, &c| (acc << 8) | u64::from(c));
            ngrams += 1;
        }
        if let Some(g) = grams.get_mut(..ngrams) {
            g.sort_unstable();
        }
        Self {
            chars,
            len: len as u8,
            grams,
            ngrams: ngrams as u8,
        }
    }

    /// The characters after cutting runs.
    pub(super) fn chars(&self) -> &[u8] {
        self.chars.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The 7-grams, sorted (duplicates kept).
    pub(super) fn grams(&self) -> &[u64] {
        self.grams
            .get(..usize::from(self.ngrams))
            .unwrap_or_default()
    }

    /// Whether both parts share a substring of 7 characters (merge of the sorted 7-grams).
    fn common_gram(&self, other: &Part) -> bool {
        let (a, b) = (self.grams(), other.grams());
        let (Some(&a0), Some(&b0), Some(&al), Some(&bl)) =
            (a.first(), b.first(), a.last(), b.last())
        else {
            return false;
        };
        if al < b0 || bl < a0 {
            return false;
        }
        let (mut i, mut j) = (0usize, 0usize);
        while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
            if x == y {
                return true;
            }
            i += usize::from(x < y);
            j += usize::from(y < x);
        }
        false
    }

    /// libfuzzy's `score_strings` for two parts at block size `bs`.
    fn score(&self, other: &Part, bs: u64) -> u32 {
        if !self.common_gram(other) {
            return 0;
        }
        let (l1, l2) = (u64::from(self.len), u64::from(other.len));
        let lcs = lcs(self.chars(), other.chars());
        let dist = l1 + l2 - 2 * lcs;
        let mut score = dist * SPAMSUM_LENGTH as u64 / (l1 + l2);
        score = 100 * score / SPAMSUM_LENGTH as u64;
        score = 100 - score;
        let cap_from = (99 + ROLLING_WINDOW as u64) / ROLLING_WINDOW as u64 * MIN_BLOCKSIZE;
        if bs < cap_from {
            let cap = bs / MIN_BLOCKSIZE * l1.min(l2);
            score = score.min(cap);
        }
        u32::try_from(score).unwrap_or(0)
    }
}

/// Length of the longest common subsequence of two strings of at most 64 bytes, bit-parallel
/// (Allison–Dix / Hyyrö): the edit distance with insert/delete 1 and replace 2 is
/// `len(a) + len(b) - 2·LCS`.
fn lcs(a: &[u8], b: &[u8]) -> u64 {
    let mut peq = [0u64; 256];
    for (i, &c) in a.iter().enumerate().take(64) {
        if let Some(m) = peq.get_mut(usize::from(c)) {
            *m |= 1u64 << i;
        }
    }
    let mut v: u64 = !0;
    for &c in b {
        let m = peq.get(usize::from(c)).copied().unwrap_or(0);
        let u = v & m;
        v = v.wrapping_add(u) | (v & !m);
    }
    let mask = if a.len() >= 64 {
        !0u64
    } else {
        (1u64 << a.len()) - 1
    };
    u64::from((!v & mask).count_ones())
}

/// Whether digests of block sizes `a` and `b` can be compared (equal or a factor of two apart).
pub(super) fn comparable_block_sizes(a: u64, b: u64) -> bool {
    a == b || a.checked_mul(2) == Some(b) || b.checked_mul(2) == Some(a)
}

/// A digest parsed once for fast comparison (what a corpus keeps in memory).
#[derive(Clone, Debug)]
pub struct SsdeepPrepared {
    block_size: u64,
    part1: Part,
    part2: Part,
}

impl SsdeepPrepared {
    /// Prepares a digest from its block size and two parts (parts longer than 64 characters are
    /// cut to 64).
    pub fn new(block_size: u64, part1: &[u8], part2: &[u8]) -> Self {
        Self {
            block_size,
            part1: Part::new(part1),
            part2: Part::new(part2),
        }
    }

    /// The block size.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// Whether the two block sizes can be compared at all (equal or a factor of two apart).
    pub fn comparable(&self, other: &Self) -> bool {
        comparable_block_sizes(self.block_size, other.block_size)
    }

    /// The first part (at the block size), runs cut.
    pub(super) fn part1(&self) -> &Part {
        &self.part1
    }

    /// The second part (at twice the block size), runs cut.
    pub(super) fn part2(&self) -> &Part {
        &self.part2
    }

    /// The `fuzzy_compare` score 0–100, or `None` when the block sizes are not comparable.
    pub fn compare(&self, other: &Self) -> Option<u32> {
        let (a, b) = (self.block_size, other.block_size);
        if a == b {
            if self.part1.chars() == other.part1.chars()
                && self.part2.chars() == other.part2.chars()
            {
                return Some(100);
            }
            let s1 = self.part1.score(&other.part1, a);
            let s2 = match a.checked_mul(2) {
                Some(a2) => self.part2.score(&other.part2, a2),
                None => 0,
            };
            Some(s1.max(s2))
        } else if a.checked_mul(2) == Some(b) {
            Some(other.part1.score(&self.part2, b))
        } else if b.checked_mul(2) == Some(a) {
            Some(self.part1.score(&other.part2, a))
        } else {
            None
        }
    }
}

impl From<&Ssdeep> for SsdeepPrepared {
    fn from(d: &Ssdeep) -> Self {
        d.prepare()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(data: &[u8]) -> String {
        hash(data).unwrap().to_string()
    }

    fn score(a: &str, b: &str) -> Option<u32> {
        compare(&a.parse().unwrap(), &b.parse().unwrap())
    }

    #[test]
    fn tiny_inputs() {
        assert_eq!(digest(b""), "3::");
        assert_eq!(digest(&[0u8; 5000]), "3::");
    }

    #[test]
    fn streaming_equals_one_shot_for_any_split() {
        let data: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let whole = digest(&data);
        for chunk in [1usize, 2, 3, 6, 7, 8, 13, 64, 4096] {
            let mut h = SsdeepHasher::new();
            for c in data.chunks(chunk) {
                h.update(c);
            }
            assert_eq!(h.finish().unwrap().to_string(), whole, "chunk {chunk}");
        }
    }

    /// xorshift64 bytes: reproducible random test data.
    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Streamed into a hasher of unknown length (which keeps every block size alive, so its hot
    /// loop runs over more lanes) in pieces of `piece` bytes.
    fn streamed(data: &[u8], piece: usize) -> String {
        let mut h = SsdeepHasher::new();
        for c in data.chunks(piece.max(1)) {
            h.update(c);
        }
        h.finish().unwrap().to_string()
    }

    #[test]
    fn every_length_to_600_streams_like_one_shot() {
        for n in 0..600 {
            let rnd = random(n, n as u64 + 1);
            // Low entropy: long runs, so pieces end at many block sizes at once.
            let low: Vec<u8> = rnd.iter().map(|b| b & 0x81).collect();
            for data in [&rnd, &low] {
                let whole = digest(data);
                assert_eq!(streamed(data, n % 13 + 1), whole, "length {n}");
                assert_eq!(streamed(data, n + 1), whole, "length {n}");
            }
        }
    }

    #[test]
    fn every_split_point_gives_the_same_digest() {
        let data = random(600, 7);
        let whole = digest(&data);
        for p in 0..=data.len() {
            let (a, b) = data.split_at(p);
            let mut h = SsdeepHasher::with_len(data.len() as u64);
            h.update(a);
            h.update(b);
            assert_eq!(h.finish().unwrap().to_string(), whole, "split at {p}");
            let mut h = SsdeepHasher::new();
            h.update(a);
            h.update(&[]);
            h.update(b);
            assert_eq!(h.finish().unwrap().to_string(), whole, "split at {p}");
        }
    }

    #[test]
    fn every_lane_width_gives_the_same_digest() {
        // Known length: few live block sizes (8 lanes). Unknown length: every block size since
        // 3 stays live, so 10 KiB runs 16 lanes and 1.5 MiB 24 lanes; odd piece sizes put the
        // rolling window across every alignment of a call boundary.
        for (n, seed) in [(10 << 10, 3u64), (100 << 10, 4), (3 << 19, 5)] {
            let data = random(n, seed);
            let whole = digest(&data);
            for piece in [1usize, 7, 4093, 65_537] {
                assert_eq!(streamed(&data, piece), whole, "size {n}, pieces of {piece}");
            }
        }
    }

    #[test]
    fn announced_length_must_match() {
        let mut h = SsdeepHasher::with_len(10);
        h.update(b"abc");
        assert_eq!(
            h.finish(),
            Err(SsdeepError::LengthMismatch {
                announced: 10,
                fed: 3
            })
        );
    }

    #[test]
    fn parse_and_print_round_trip() {
        let d: Ssdeep = "3:H:H".parse().unwrap();
        assert_eq!(d.block_size(), 3);
        assert_eq!(d.to_string(), "3:H:H");
        let d: Ssdeep = "96:abc:de,\"file name\"".parse().unwrap();
        assert_eq!(d.to_string(), "96:abc:de");
        assert!("x:a:b".parse::<Ssdeep>().is_err());
        assert!("3:a".parse::<Ssdeep>().is_err());
        assert!("0:a:b".parse::<Ssdeep>().is_err());
        assert!(format!("3:{}:b", "A".repeat(65)).parse::<Ssdeep>().is_err());
    }

    #[test]
    fn incomparable_block_sizes_are_none_not_zero() {
        assert_eq!(score("3:ABCDEFGH:ABCD", "12:ABCDEFGH:ABCD"), None);
        assert_eq!(score("3:ABCDEFGH:ABCD", "6:ABCDEFGH:ABCD"), Some(0));
        assert_eq!(score("3::", "3::"), Some(100));
    }

    #[test]
    fn runs_are_cut_before_comparing() {
        // Identical after cutting runs of more than three.
        assert_eq!(
            score("96:AAAAAAABCDEFGHIJ:xy", "96:AAABCDEFGHIJ:xy"),
            Some(100)
        );
    }

    #[test]
    fn lcs_matches_a_plain_dynamic_programme() {
        fn dp(a: &[u8], b: &[u8]) -> u64 {
            let mut t = vec![vec![0u64; b.len() + 1]; a.len() + 1];
            for i in 1..=a.len() {
                for j in 1..=b.len() {
                    t[i][j] = if a[i - 1] == b[j - 1] {
                        t[i - 1][j - 1] + 1
                    } else {
                        t[i - 1][j].max(t[i][j - 1])
                    };
                }
            }
            t[a.len()][b.len()]
        }
        let mut x = 12345u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..2000 {
            let la = (next() % 65) as usize;
            let lb = (next() % 65) as usize;
            let a: Vec<u8> = (0..la).map(|_| b"ABCD"[(next() % 4) as usize]).collect();
            let b: Vec<u8> = (0..lb).map(|_| b"ABCD"[(next() % 4) as usize]).collect();
            assert_eq!(lcs(&a, &b), dp(&a, &b), "{a:?} {b:?}");
        }
    }
}
