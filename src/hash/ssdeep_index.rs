//! An exact candidate index over many prepared ssdeep digests, keyed by (block size, 7-gram):
//! a query scores only the digests sharing a 7-gram at a comparable block size with the probe
//! and knows every other comparable digest scores 0, with results identical to pairwise compare.

use rayon::prelude::*;
use std::collections::HashMap;

use super::directory::{Directory, mix};
use super::ssdeep::{SsdeepPrepared, comparable_block_sizes};

/// Many [`SsdeepPrepared`] digests indexed for one-against-many and all-against-all comparison.
///
/// `fuzzy_compare` only ever compares two signature parts that sit at the same block size (a
/// digest of block size `b` carries one part at `b` and one at `2b`), and a pair of parts scores
/// 0 unless they share a 7-character substring after runs are cut to three. So each part's
/// distinct 7-grams are posted under (the part's block size, gram); a probe looks up its own
/// parts' keys, and the union of the posting lists is exactly the set of digests that can score
/// above 0. The one exception, identical digests whose parts are too short to hold a 7-gram
/// (they score 100), is kept in a side table. Candidates are then scored by
/// [`SsdeepPrepared::compare`] itself, so scores cannot drift from the pairwise path.
///
/// ```
/// use fwsim::hash::{Ssdeep, SsdeepIndex};
/// let parse = |s: &str| s.parse::<Ssdeep>().unwrap().prepare();
/// let index = SsdeepIndex::new(vec![
///     parse("96:abcdefghijkl:mnop"),
///     parse("96:zyxwvutsrqpo:nmlk"),
///     parse("384:abcdefghijkl:mnop"),
/// ]);
/// let probe = parse("96:abcdefghijkX:mnop");
/// // Part 1: 12 characters each, edit distance 2: 100 - (100 · (2 · 64 / 24) / 64) = 93.
/// assert_eq!(index.compare_all(&probe), vec![Some(93), Some(0), None]);
/// assert_eq!(index.matches(&probe), vec![(0, 93)]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct SsdeepIndex {
    /// The indexed digests, in the order given.
    digests: Vec<SsdeepPrepared>,
    /// Their block sizes, for filling whole rows quickly.
    block_sizes: Vec<u64>,
    /// (hash, block size of a part, 7-gram, start and length of its range of `postings`),
    /// unique by (block size, gram), sorted by hash ([`mix`] of block size and gram).
    keys: Vec<(u64, u64, u64, u32, u32)>,
    /// Buckets of `keys` by hash.
    directory: Directory,
    /// Digest numbers, ascending within each key's range, each at most once per key.
    postings: Vec<u32>,
    /// Digests without any 7-gram in either part, by (block size, part 1, part 2) after runs
    /// are cut: identical ones score 100 although they share no 7-gram.
    gramless: HashMap<(u64, Vec<u8>, Vec<u8>), Vec<u32>>,
}

impl SsdeepIndex {
    /// Indexes `digests`; they keep their positions as numbers in query results. At most
    /// `u32::MAX` digests are indexed (any beyond are dropped).
    pub fn new(mut digests: Vec<SsdeepPrepared>) -> Self {
        digests.truncate(u32::MAX as usize);
        let mut entries: Vec<(u64, u64, u32)> = Vec::new();
        let mut gramless: HashMap<(u64, Vec<u8>, Vec<u8>), Vec<u32>> = HashMap::new();
        for (id, d) in digests.iter().enumerate() {
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            for (bs, grams) in part_keys(d) {
                let mut prev = None;
                for &g in grams {
                    // Grams are sorted: skip repeats so each digest is posted once per key.
                    if prev != Some(g) {
                        entries.push((bs, g, id));
                        prev = Some(g);
                    }
                }
            }
            if d.part1().grams().is_empty() && d.part2().grams().is_empty() {
                gramless.entry(gramless_key(d)).or_default().push(id);
            }
        }
        // A static table rather than a hash map filled key by key: one (parallel) sort, then
        // the distinct keys ordered by hash with a directory of buckets over them.
        entries.par_sort_unstable();
        let mut keys: Vec<(u64, u64, u64, u32, u32)> = Vec::new();
        let mut postings = Vec::with_capacity(entries.len());
        for &(bs, g, id) in &entries {
            let start = u32::try_from(postings.len()).unwrap_or(u32::MAX);
            match keys.last_mut() {
                Some((_, b, h, _, len)) if (*b, *h) == (bs, g) => *len = len.saturating_add(1),
                _ => keys.push((mix(bs, g), bs, g, start, 1)),
            }
            postings.push(id);
        }
        drop(entries);
        keys.par_sort_unstable();
        let directory = Directory::new(keys.iter().map(|k| k.0));
        let block_sizes = digests.iter().map(SsdeepPrepared::block_size).collect();
        Self {
            digests,
            block_sizes,
            keys,
            directory,
            postings,
            gramless,
        }
    }

    /// Number of indexed digests.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The indexed digest number `i`.
    pub fn get(&self, i: usize) -> Option<&SsdeepPrepared> {
        self.digests.get(i)
    }

    /// Every indexed digest that scores above 0 against `probe`, as (number, score) in
    /// ascending number order. Every other indexed digest scores `Some(0)` when its block size
    /// is comparable with the probe's and `None` otherwise ([`compare_all`](Self::compare_all)
    /// spells that out).
    pub fn matches(&self, probe: &SsdeepPrepared) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        self.for_each_match(probe, |i, s| out.push((i, s)));
        out
    }

    /// `probe.compare(d)` for every indexed digest `d`, in order: `None` for block sizes that are
    /// not comparable, computed through the index (only candidates are scored).
    pub fn compare_all(&self, probe: &SsdeepPrepared) -> Vec<Option<u32>> {
        let a = probe.block_size();
        let mut row: Vec<Option<u32>> = self
            .block_sizes
            .iter()
            .map(|&b| comparable_block_sizes(a, b).then_some(0))
            .collect();
        self.for_each_match(probe, |i, s| {
            if let Some(slot) = row.get_mut(i) {
                *slot = Some(s);
            }
        });
        row
    }

    /// All-against-all: every pair `i < j` of indexed digests scoring above 0, as `(i, j,
    /// score)` sorted by `i` then `j`. Scores are symmetric, so this determines all n² results
    /// (the diagonal and the rest: `Some(0)` if comparable, else `None`).
    pub fn all_pairs(&self) -> Vec<(usize, usize, u32)> {
        let mut out = Vec::new();
        for (i, d) in self.digests.iter().enumerate() {
            self.for_each_candidate(d, i.saturating_add(1), |j, s| out.push((i, j, s)));
        }
        out
    }

    /// The digests posted under (block size, gram), ascending.
    fn posted(&self, bs: u64, g: u64) -> &[u32] {
        let h = mix(bs, g);
        let bucket = self.keys.get(self.directory.bucket(h)).unwrap_or_default();
        bucket
            .iter()
            .find(|&&(k, b, x, _, _)| (k, b, x) == (h, bs, g))
            .and_then(|&(_, _, _, start, len)| {
                let start = start as usize;
                self.postings.get(start..start.saturating_add(len as usize))
            })
            .unwrap_or_default()
    }

    /// Calls `f(number, score)` for every indexed digest scoring above 0, ascending.
    fn for_each_match(&self, probe: &SsdeepPrepared, f: impl FnMut(usize, u32)) {
        self.for_each_candidate(probe, 0, f);
    }

    /// Calls `f(number, score)` for every indexed digest numbered `from` or above that scores
    /// above 0 against `probe`, ascending.
    fn for_each_candidate(
        &self,
        probe: &SsdeepPrepared,
        from: usize,
        mut f: impl FnMut(usize, u32),
    ) {
        let n = self.digests.len();
        if from >= n {
            return;
        }
        // One bit per indexed digest: which share a key with the probe.
        let mut seen = vec![0u64; n.div_ceil(64)];
        let mut any = false;
        let mut mark = |id: u32| {
            let id = id as usize;
            if id >= from
                && let Some(w) = seen.get_mut(id / 64)
            {
                *w |= 1u64 << (id % 64);
                any = true;
            }
        };
        for (bs, grams) in part_keys(probe) {
            let mut prev = None;
            for &g in grams {
                if prev == Some(g) {
                    continue;
                }
                prev = Some(g);
                for &id in self.posted(bs, g) {
                    mark(id);
                }
            }
        }
        if probe.part1().grams().is_empty()
            && probe.part2().grams().is_empty()
            && let Some(ids) = self.gramless.get(&gramless_key(probe))
        {
            for &id in ids {
                mark(id);
            }
        }
        if !any {
            return;
        }
        for (w, &bits) in seen.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let id = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(s) = self.digests.get(id).and_then(|d| probe.compare(d))
                    && s > 0
                {
                    f(id, s);
                }
            }
        }
    }
}

/// A digest's two parts with the block size each sits at (the second is left out when twice the
/// block size overflows: `compare` never scores it then).
fn part_keys(d: &SsdeepPrepared) -> impl Iterator<Item = (u64, &[u64])> {
    let bs = d.block_size();
    [
        Some((bs, d.part1().grams())),
        bs.checked_mul(2).map(|b2| (b2, d.part2().grams())),
    ]
    .into_iter()
    .flatten()
}

/// The exact-identity key of a digest: block size and both parts after runs are cut.
fn gramless_key(d: &SsdeepPrepared) -> (u64, Vec<u8>, Vec<u8>) {
    (
        d.block_size(),
        d.part1().chars().to_vec(),
        d.part2().chars().to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ssdeep::{Ssdeep, hash};

    /// xorshift32.
    struct Rng(u32);

    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }

        fn below(&mut self, n: u32) -> u32 {
            self.next() % n
        }
    }

    /// A random part over a small alphabet (so 7-grams recur), with runs now and then.
    fn part(r: &mut Rng, max: u32, alphabet: &[u8]) -> Vec<u8> {
        let len = r.below(max + 1) as usize;
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            let c = alphabet[r.below(alphabet.len() as u32) as usize];
            let run = if r.below(8) == 0 { 1 + r.below(6) } else { 1 };
            for _ in 0..run {
                v.push(c);
            }
        }
        v.truncate(len);
        v
    }

    /// Mutates a part a little (replace, insert, delete), keeping 7-grams in common mostly.
    fn mutate(r: &mut Rng, p: &[u8], alphabet: &[u8], max: usize) -> Vec<u8> {
        let mut v = p.to_vec();
        for _ in 0..r.below(6) {
            let at = if v.is_empty() {
                0
            } else {
                r.below(v.len() as u32) as usize
            };
            let c = alphabet[r.below(alphabet.len() as u32) as usize];
            match r.below(3) {
                0 if !v.is_empty() => v[at] = c,
                1 => v.insert(at, c),
                _ if !v.is_empty() => {
                    v.remove(at);
                }
                _ => {}
            }
        }
        v.truncate(max);
        v
    }

    /// Generated digests: block sizes 3·2^0..3·2^6 (equal, 2× and 4× apart), families of edited
    /// parts, short gram-less parts, duplicates and the empty digest.
    fn generated(seed: u32, n: usize) -> Vec<SsdeepPrepared> {
        let mut r = Rng(seed);
        let alphabets: [&[u8]; 3] = [
            b"ABCD",
            b"ABCDEFGHIJKLMNOP",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        ];
        let mut out: Vec<SsdeepPrepared> = Vec::new();
        while out.len() < n {
            let alpha = alphabets[r.below(3) as usize];
            let bs = 3u64 << r.below(7);
            let d = match r.below(6) {
                // Edit an earlier digest, sometimes moving it to twice or half its block size
                // with the parts shifted as a real digest's would be.
                0..=2 if !out.is_empty() => {
                    let base = &out[r.below(out.len() as u32) as usize];
                    let (p1, p2) = (base.part1().chars().to_vec(), base.part2().chars().to_vec());
                    match r.below(4) {
                        0 => SsdeepPrepared::new(
                            base.block_size() * 2,
                            &mutate(&mut r, &p2, alpha, 64),
                            &part(&mut r, 32, alpha),
                        ),
                        1 if base.block_size() > 3 => SsdeepPrepared::new(
                            base.block_size() / 2,
                            &part(&mut r, 64, alpha),
                            &mutate(&mut r, &p1, alpha, 32),
                        ),
                        2 => base.clone(),
                        _ => SsdeepPrepared::new(
                            base.block_size(),
                            &mutate(&mut r, &p1, alpha, 64),
                            &mutate(&mut r, &p2, alpha, 32),
                        ),
                    }
                }
                3 => SsdeepPrepared::new(bs, &part(&mut r, 6, alpha), &part(&mut r, 6, alpha)),
                _ => SsdeepPrepared::new(bs, &part(&mut r, 64, alpha), &part(&mut r, 32, alpha)),
            };
            out.push(d);
        }
        out.push(SsdeepPrepared::new(3, b"", b""));
        out.push(SsdeepPrepared::new(3, b"", b""));
        out.push(SsdeepPrepared::new(u64::MAX, b"ABCDEFGHIJ", b"ABCDEFGHIJ"));
        out.push(SsdeepPrepared::new(u64::MAX, b"ABCDEFGHIJ", b"ABCDEFGHIJ"));
        out.push(SsdeepPrepared::new(
            u64::MAX / 2,
            b"ABCDEFGHIJ",
            b"ABCDEFGHIJ",
        ));
        out
    }

    /// Every query path against the pairwise compare, for every ordered pair.
    fn assert_exact(digests: &[SsdeepPrepared]) -> usize {
        let index = SsdeepIndex::new(digests.to_vec());
        let mut positive = 0;
        for (i, a) in digests.iter().enumerate() {
            let row = index.compare_all(a);
            let expected: Vec<Option<u32>> = digests.iter().map(|b| a.compare(b)).collect();
            assert_eq!(row, expected, "row {i}");
            let m: Vec<(usize, u32)> = expected
                .iter()
                .enumerate()
                .filter_map(|(j, s)| s.filter(|&s| s > 0).map(|s| (j, s)))
                .collect();
            positive += m.len();
            assert_eq!(index.matches(a), m, "matches {i}");
        }
        let mut expected_pairs = Vec::new();
        for (i, a) in digests.iter().enumerate() {
            for (j, b) in digests.iter().enumerate().skip(i + 1) {
                if let Some(s) = a.compare(b).filter(|&s| s > 0) {
                    expected_pairs.push((i, j, s));
                }
            }
        }
        assert_eq!(index.all_pairs(), expected_pairs);
        positive
    }

    #[test]
    fn index_equals_pairwise_compare_on_generated_digests() {
        for seed in [1, 7, 99] {
            let d = generated(seed, 600);
            let positive = assert_exact(&d);
            // The generator must produce plenty of pairs scoring between 1 and 99, and of
            // pairs 2x apart scoring above 0, for the comparison to mean something.
            let pairs = || d.iter().flat_map(|a| d.iter().map(move |b| (a, b)));
            let mid = pairs()
                .filter(|(a, b)| matches!(a.compare(b), Some(1..=99)))
                .count();
            let apart = pairs()
                .filter(|(a, b)| a.block_size() != b.block_size())
                .filter(|(a, b)| a.compare(b).is_some_and(|s| s > 0))
                .count();
            assert!(
                mid > 500 && apart > 100 && positive > mid,
                "seed {seed}: {mid} {apart} {positive}"
            );
        }
    }

    #[test]
    fn index_equals_pairwise_compare_on_digests_of_edited_buffers() {
        let mut r = Rng(5);
        let mut bufs: Vec<Vec<u8>> = Vec::new();
        for k in 0..60 {
            let mut b: Vec<u8> = if k % 3 == 0 || bufs.is_empty() {
                let n = 2000 + r.below(60_000) as usize;
                (0..n).map(|_| r.next() as u8).collect()
            } else {
                bufs[r.below(bufs.len() as u32) as usize].clone()
            };
            for _ in 0..r.below(20) {
                let at = r.below(b.len() as u32) as usize;
                let n = (r.below(600) as usize).min(b.len() - at);
                match r.below(3) {
                    0 => b.drain(at..at + n).for_each(drop),
                    1 => b
                        .splice(at..at, (0..n).map(|_| r.next() as u8))
                        .for_each(drop),
                    _ => b[at..at + n].iter_mut().for_each(|x| *x = r.next() as u8),
                }
            }
            bufs.push(b);
        }
        let d: Vec<SsdeepPrepared> = bufs.iter().map(|b| hash(b).unwrap().prepare()).collect();
        assert!(assert_exact(&d) > 60);
    }

    #[test]
    fn gramless_identical_digests_score_100_and_others_0() {
        let p = |s: &str| s.parse::<Ssdeep>().unwrap().prepare();
        let index = SsdeepIndex::new(vec![
            p("3:ABBB:C"),
            p("3:ABBB:D"),
            p("6:ABBB:C"),
            p("12:ABBB:C"),
        ]);
        assert_eq!(
            index.compare_all(&p("3:ABBBBB:C")),
            vec![Some(100), Some(0), Some(0), None]
        );
        assert!(SsdeepIndex::new(Vec::new()).matches(&p("3::")).is_empty());
    }
}
