//! Seeded mutations of an input for the soak and hostile tests: truncations, bit flips, zeroed
//! and 0xFF-filled ranges, and splices with another input — one small PRNG, no dependency.

/// A small deterministic PRNG (xorshift64).
pub struct XorShift(pub u64);

impl XorShift {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// What a mutation did (for messages and counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Cut short.
    Truncated,
    /// A few bits flipped (in the first 512 bytes, where headers are, or anywhere).
    BitFlipped,
    /// A range set to zero.
    Zeroed,
    /// An aligned word set to 0xFF.. (sizes and counts at their extreme).
    Extreme,
    /// The head of this input followed by the tail of another.
    Spliced,
}

/// One mutant of `data`, chosen by `rng`; `other` is spliced in for [`Kind::Spliced`].
pub fn mutate(data: &[u8], other: &[u8], rng: &mut XorShift) -> (Kind, Vec<u8>) {
    if data.is_empty() {
        return (Kind::Spliced, other.to_vec());
    }
    let len = data.len();
    match rng.below(5) {
        0 => {
            // Inside the first header half the time, else anywhere.
            let cut = if rng.below(2) == 0 {
                rng.below(len.min(600))
            } else {
                rng.below(len)
            };
            (Kind::Truncated, data[..cut].to_vec())
        }
        1 => {
            let mut m = data.to_vec();
            let headers = rng.below(2) == 0;
            for _ in 0..1 + rng.below(4) {
                let at = if headers {
                    rng.below(len.min(512))
                } else {
                    rng.below(len)
                };
                m[at] ^= 1 << rng.below(8);
            }
            (Kind::BitFlipped, m)
        }
        2 => {
            let mut m = data.to_vec();
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(4096));
            m[at..at + n].fill(0);
            (Kind::Zeroed, m)
        }
        3 => {
            let mut m = data.to_vec();
            let at = rng.below(len.min(1024)) & !3;
            let end = (at + 4).min(len);
            m[at..end].fill(0xFF);
            (Kind::Extreme, m)
        }
        _ => {
            let cut = rng.below(len);
            let from = rng.below(other.len().max(1));
            let mut m = data[..cut].to_vec();
            m.extend_from_slice(other.get(from..).unwrap_or_default());
            (Kind::Spliced, m)
        }
    }
}

/// Deterministic truncations: inside the first header, at fixed fractions, one byte short.
pub fn truncations(data: &[u8]) -> Vec<Vec<u8>> {
    let len = data.len();
    [
        1,
        13,
        65,
        len / 4,
        len / 2,
        len * 3 / 4,
        len.saturating_sub(1),
    ]
    .into_iter()
    .map(|cut| data[..cut.min(len)].to_vec())
    .collect()
}
