//! A static lookup directory over keys sorted by a 64-bit hash: the top bits of a key's hash
//! pick a bucket of the sorted table, and a lookup scans that bucket's one or two keys — a
//! couple of memory reads instead of a binary search over millions of keys.

use std::ops::Range;

/// Bucket boundaries over a table sorted by hash (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct Directory {
    /// `64 -` the number of bucket bits.
    shift: u32,
    /// Where each bucket begins in the table, one more entry than buckets.
    starts: Vec<u32>,
}

impl Directory {
    /// Builds the directory of a table whose keys have `hashes`, in ascending order (at most
    /// `u32::MAX` keys: the directory has about as many buckets as keys, at most 2³¹).
    pub(crate) fn new(hashes: impl ExactSizeIterator<Item = u64>) -> Self {
        let n = hashes.len().max(2);
        let bits = (usize::BITS - (n - 1).leading_zeros()).clamp(1, 31);
        let shift = 64 - bits;
        let mut starts = vec![0u32; (1usize << bits) + 1];
        for h in hashes {
            let b = (h >> shift) as usize;
            if let Some(c) = starts.get_mut(b + 1) {
                *c = c.saturating_add(1);
            }
        }
        let mut total = 0u32;
        for c in &mut starts {
            total = total.saturating_add(*c);
            *c = total;
        }
        Self { shift, starts }
    }

    /// The positions of the table where keys with hash `h` can sit.
    pub(crate) fn bucket(&self, h: u64) -> Range<usize> {
        let b = usize::try_from(h.checked_shr(self.shift).unwrap_or(0)).unwrap_or(usize::MAX);
        match (self.starts.get(b), self.starts.get(b.saturating_add(1))) {
            (Some(&s), Some(&e)) => s as usize..e as usize,
            _ => 0..0,
        }
    }
}

/// Mixes two 64-bit words into a well-spread hash (folded multiplications, as in aHash's
/// portable fallback).
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let fold = |x: u64, y: u64| {
        let p = u128::from(x) * u128::from(y);
        (p as u64) ^ ((p >> 64) as u64)
    };
    fold(
        fold(a ^ 0x243f_6a88_85a3_08d3, 0x5851_f42d_4c95_7f2d) ^ b,
        0x9e37_79b9_7f4a_7c15,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_found_in_its_bucket() {
        for n in [0usize, 1, 2, 3, 100, 4097] {
            let mut hashes: Vec<u64> = (0..n as u64).map(|i| mix(i, i / 3)).collect();
            // Duplicated hashes and the extremes too.
            hashes.extend([0, u64::MAX, u64::MAX]);
            hashes.sort_unstable();
            let d = Directory::new(hashes.iter().copied());
            for (i, &h) in hashes.iter().enumerate() {
                let r = d.bucket(h);
                assert!(r.contains(&i), "n {n}: key {i} outside {r:?}");
                assert!(hashes[r].iter().all(|&g| g >> d.shift == h >> d.shift));
            }
            assert!(d.bucket(0x1234_5678_9abc_def0).len() <= hashes.len());
        }
    }
}
