//! An exact radius index over many TLSH digests: every digest within a distance bound of a probe,
//! the same answer as a linear scan, found by skipping whole header cells (length byte and
//! quartile ratios) whose header terms alone already exceed the bound.

use super::tlsh::Tlsh;

/// Many [`Tlsh`] digests indexed for "which lie within distance `d` of this one".
///
/// The TLSH distance (with the length term, [`Tlsh::diff`]) is a sum of independent terms:
/// checksum (0 or 1), length byte (ring distance `x` on 256 values, counted `x` if at most 1 and
/// `12x` above), the two quartile ratios (ring distance `x` on 16 values each, `x` if at most 1 and
/// `12(x - 1)` above), and the body (128 two-bit buckets). Every term is non-negative, so the
/// length and ratio terms alone are a lower bound of the distance. The digests are sorted into
/// cells by (length byte, Q1 ratio, Q2 ratio); a query computes that bound once per cell and scans
/// only the cells whose bound is within the radius, scoring each member with [`Tlsh::diff`] itself
/// so that distances cannot drift from the pairwise path.
///
/// Why not a metric tree over the bodies (a vantage-point tree, as proposed for TLSH by Gonzalez,
/// 2025): the body term is not a metric (a bucket difference of 3 costs 6, more than 1 + 2), so a
/// tree would have to index a weaker metric lower bound (the L1 distance of the buckets), while
/// the header cells prune for free and keep each cell's digests contiguous, so a scan streams
/// memory.
///
/// ```
/// use fwsim::hash::{tlsh, TlshIndex};
/// let data = |seed: u32, n: u32| -> Vec<u8> {
///     (0..n).map(|i| (i.wrapping_mul(2_654_435_761) ^ seed).rotate_right(13) as u8).collect()
/// };
/// let a = tlsh::hash(&data(1, 4096)).unwrap();
/// let b = tlsh::hash(&data(1, 4000)).unwrap(); // a shorter copy
/// let c = tlsh::hash(&data(7, 400_000)).unwrap(); // other content, 100 times longer
/// let index = TlshIndex::new(vec![a, b, c]);
/// let near = index.within(&a, 100);
/// assert_eq!(near.first(), Some(&(0, 0)));
/// assert!(near.iter().all(|&(i, d)| d <= 100 && index.get(i).map(|t| t.diff(&a)) == Some(d)));
/// assert!(!near.iter().any(|&(i, _)| i == 2));
/// ```
#[derive(Clone, Debug, Default)]
pub struct TlshIndex {
    /// The digests sorted by cell, contiguous per cell.
    sorted: Vec<Tlsh>,
    /// For each position of `sorted`, the digest's number (its position as given).
    numbers: Vec<u32>,
    /// Non-empty cells in ascending (length byte, Q1, Q2) order.
    cells: Vec<Cell>,
    /// For each length byte, the range of `cells` holding it (`start..end`, empty when none).
    by_length: Vec<(u32, u32)>,
    /// Number of digests as given, to answer [`get`](Self::get) by number.
    positions: Vec<u32>,
}

/// One group of digests sharing length byte and quartile ratios.
#[derive(Clone, Copy, Debug)]
struct Cell {
    /// Q1 ratio.
    q1: u8,
    /// Q2 ratio.
    q2: u8,
    /// Range of `sorted`.
    start: u32,
    /// End of the range (exclusive).
    end: u32,
}

impl TlshIndex {
    /// Indexes `digests`; they keep their positions as numbers in query results. At most
    /// `u32::MAX` digests are indexed (any beyond are dropped).
    pub fn new(mut digests: Vec<Tlsh>) -> Self {
        digests.truncate(u32::MAX as usize);
        let mut keyed: Vec<(u8, u8, u8, u32)> = digests
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let (q1, q2) = t.qratios();
                (t.lvalue(), q1, q2, u32::try_from(i).unwrap_or(u32::MAX))
            })
            .collect();
        keyed.sort_unstable();
        let mut sorted = Vec::with_capacity(keyed.len());
        let mut numbers = Vec::with_capacity(keyed.len());
        let mut positions = vec![0u32; keyed.len()];
        let mut cells: Vec<Cell> = Vec::new();
        let mut by_length = vec![(0u32, 0u32); 256];
        let mut last: Option<(u8, u8, u8)> = None;
        for (pos, &(l, q1, q2, n)) in keyed.iter().enumerate() {
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            if last != Some((l, q1, q2)) {
                let c = u32::try_from(cells.len()).unwrap_or(u32::MAX);
                if let Some(slot) = by_length.get_mut(usize::from(l)) {
                    if last.map(|(l0, _, _)| l0) != Some(l) {
                        *slot = (c, c);
                    }
                    slot.1 = c.saturating_add(1);
                }
                cells.push(Cell {
                    q1,
                    q2,
                    start: pos,
                    end: pos,
                });
                last = Some((l, q1, q2));
            }
            if let Some(cell) = cells.last_mut() {
                cell.end = pos.saturating_add(1);
            }
            if let Some(t) = digests.get(n as usize) {
                sorted.push(*t);
            }
            numbers.push(n);
            if let Some(p) = positions.get_mut(n as usize) {
                *p = pos;
            }
        }
        Self {
            sorted,
            numbers,
            cells,
            by_length,
            positions,
        }
    }

    /// Number of indexed digests.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The indexed digest number `i`.
    pub fn get(&self, i: usize) -> Option<&Tlsh> {
        let pos = *self.positions.get(i)?;
        self.sorted.get(pos as usize)
    }

    /// Every indexed digest within `max_distance` of `probe` ([`Tlsh::diff`], with the length
    /// term), as (number, distance) in ascending number order: exactly what
    /// [`linear_within`] finds.
    pub fn within(&self, probe: &Tlsh, max_distance: u32) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        self.for_each_within(probe, max_distance, |i, d| out.push((i, d)));
        out.sort_unstable();
        out
    }

    /// How many digests a query with this radius scores (the members of the cells it does not
    /// skip): the work [`within`](Self::within) does, for benchmarks and tuning.
    pub fn scanned(&self, probe: &Tlsh, max_distance: u32) -> usize {
        let mut n = 0usize;
        self.for_each_cell(probe, max_distance, |c| {
            n = n.saturating_add(c.end.saturating_sub(c.start) as usize);
        });
        n
    }

    /// Calls `f(number, distance)` for every indexed digest within `max_distance` of `probe`,
    /// in no particular order.
    pub fn for_each_within(&self, probe: &Tlsh, max_distance: u32, mut f: impl FnMut(usize, u32)) {
        self.for_each_cell(probe, max_distance, |cell| {
            let range = cell.start as usize..cell.end as usize;
            let (Some(digests), Some(numbers)) =
                (self.sorted.get(range.clone()), self.numbers.get(range))
            else {
                return;
            };
            for (t, &n) in digests.iter().zip(numbers) {
                let d = probe.diff(t);
                if d <= max_distance {
                    f(n as usize, d);
                }
            }
        });
    }

    /// Calls `f` on every cell whose header lower bound is within `max_distance` of `probe`.
    fn for_each_cell(&self, probe: &Tlsh, max_distance: u32, mut f: impl FnMut(&Cell)) {
        let l = probe.lvalue();
        let (q1, q2) = probe.qratios();
        for (lv, &(start, end)) in self.by_length.iter().enumerate() {
            if start == end {
                continue;
            }
            let lv = u8::try_from(lv).unwrap_or(u8::MAX);
            let len_term = length_distance(l, lv);
            if len_term > max_distance {
                continue;
            }
            let cells = self
                .cells
                .get(start as usize..end as usize)
                .unwrap_or_default();
            for cell in cells {
                let bound = len_term
                    .saturating_add(qratio_distance(q1, cell.q1))
                    .saturating_add(qratio_distance(q2, cell.q2));
                if bound <= max_distance {
                    f(cell);
                }
            }
        }
    }
}

/// Every digest of `digests` within `max_distance` of `probe`, by comparing with each: the
/// reference that [`TlshIndex::within`] must equal.
pub fn linear_within(digests: &[Tlsh], probe: &Tlsh, max_distance: u32) -> Vec<(usize, u32)> {
    digests
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let d = probe.diff(t);
            (d <= max_distance).then_some((i, d))
        })
        .collect()
}

/// Distance between two values on a ring of `n` values (`n` = 256 for the length byte).
fn ring_distance(x: u8, y: u8, n: u16) -> u32 {
    let d = u16::from(x.abs_diff(y));
    u32::from(d.min(n.saturating_sub(d)))
}

/// The TLSH length term.
fn length_distance(a: u8, b: u8) -> u32 {
    let d = ring_distance(a, b, 256);
    if d <= 1 { d } else { d.saturating_mul(12) }
}

/// The TLSH term of one quartile ratio.
fn qratio_distance(a: u8, b: u8) -> u32 {
    let d = ring_distance(a, b, 16);
    if d <= 1 {
        d
    } else {
        (d - 1).saturating_mul(12)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::tlsh::hash;

    /// Deterministic pseudo-random bytes (xorshift).
    fn noise(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Text-like bytes with a skewed distribution, so that quartile ratios vary.
    fn skewed(seed: u64, n: usize) -> Vec<u8> {
        noise(seed, n)
            .into_iter()
            .map(|b| if b < 160 { b'a' + b % 7 } else { b })
            .collect()
    }

    /// Families of mutated buffers: a base and copies with flipped and inserted bytes.
    fn digests() -> Vec<Tlsh> {
        let mut out = Vec::new();
        for base in 0..40u64 {
            let len = 64usize << (base % 12);
            let data = if base % 3 == 0 {
                skewed(base, len)
            } else {
                noise(base, len)
            };
            for m in 0..25u64 {
                let mut d = data.clone();
                let r = noise(base * 100 + m, 64);
                for (k, &b) in r.iter().enumerate().take((m as usize) * 2) {
                    let at = (usize::from(b) * 257 + k * 911) % d.len();
                    if k % 2 == 0 {
                        d[at] ^= 0x5a;
                    } else {
                        d.insert(at, b);
                    }
                }
                if let Some(t) = hash(&d) {
                    out.push(t);
                }
            }
        }
        out
    }

    #[test]
    fn header_terms_are_a_lower_bound_and_sum_with_the_body() {
        let ds = digests();
        assert!(ds.len() > 900, "{}", ds.len());
        for a in ds.iter().step_by(7) {
            for b in ds.iter().step_by(5) {
                let (qa, qb) = (a.qratios(), b.qratios());
                let header = length_distance(a.lvalue(), b.lvalue())
                    + qratio_distance(qa.0, qb.0)
                    + qratio_distance(qa.1, qb.1);
                assert!(header <= a.diff(b));
                // Without the length term, TLSH drops exactly that term.
                assert_eq!(
                    a.diff(b) - a.diff_no_len(b),
                    length_distance(a.lvalue(), b.lvalue())
                );
            }
        }
    }

    #[test]
    fn index_equals_linear_scan_at_every_radius() {
        let ds = digests();
        let index = TlshIndex::new(ds.clone());
        assert_eq!(index.len(), ds.len());
        for (i, t) in ds.iter().enumerate() {
            assert_eq!(index.get(i), Some(t));
        }
        for radius in [0, 1, 13, 30, 70, 100, 150, 250, 400, u32::MAX] {
            for probe in ds.iter().step_by(11) {
                assert_eq!(
                    index.within(probe, radius),
                    linear_within(&ds, probe, radius),
                    "radius {radius}"
                );
            }
        }
        // The header cells do prune: at radius 100 far fewer digests are scored than held.
        let scored: usize = ds.iter().map(|p| index.scanned(p, 100)).sum();
        assert!(scored * 2 < ds.len() * ds.len(), "{scored}");
    }

    #[test]
    fn empty_index_and_ring_wrap() {
        let index = TlshIndex::new(Vec::new());
        assert!(index.is_empty());
        let t = hash(&noise(1, 1000)).unwrap();
        assert!(index.within(&t, u32::MAX).is_empty());
        assert_eq!(index.get(0), None);
        assert_eq!(length_distance(0, 255), 1);
        assert_eq!(length_distance(0, 254), 24);
        assert_eq!(qratio_distance(0, 15), 1);
        assert_eq!(qratio_distance(0, 8), 84);
    }
}
