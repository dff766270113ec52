//! Family clusters from a score matrix: average-linkage (UPGMA) agglomeration stopped at the
//! calibrated same-software score, deterministic for a given matrix.

use serde::{Deserialize, Serialize};

/// Pairwise scores (0–100) of `n` images; pairs never scored count as 0.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreMatrix {
    n: usize,
    values: Vec<f64>,
}

impl ScoreMatrix {
    /// `n` images, every pair at 0.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            values: vec![0.0; n.saturating_mul(n)],
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Sets the score of the pair (`a`, `b`), both ways (ignored outside the matrix or when not
    /// a number).
    pub fn set(&mut self, a: usize, b: usize, score: f64) {
        if a >= self.n || b >= self.n || score.is_nan() {
            return;
        }
        for (i, j) in [(a, b), (b, a)] {
            if let Some(v) = self.values.get_mut(i * self.n + j) {
                *v = score;
            }
        }
    }

    /// The score of the pair (`a`, `b`) (0 when unset or outside the matrix).
    pub fn get(&self, a: usize, b: usize) -> f64 {
        if a >= self.n || b >= self.n {
            return 0.0;
        }
        self.values.get(a * self.n + b).copied().unwrap_or(0.0)
    }
}

/// One family: images judged to be the same software.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Image numbers, ascending.
    pub members: Vec<usize>,
    /// Average score over the cluster's pairs (100 for a single image).
    pub cohesion: f64,
}

/// Average-linkage clustering: starting from single images, the two clusters with the highest
/// average pairwise score are merged while that average is at least `threshold`. Ties go to
/// the pair whose smallest members come first, so the result depends only on the matrix.
/// Clusters are returned ordered by their first member, members ascending; every image is in
/// exactly one cluster.
pub fn average_linkage(m: &ScoreMatrix, threshold: f64) -> Vec<Cluster> {
    let n = m.len();
    // Live clusters: members and the sum of scores to every other live cluster.
    let mut members: Vec<Option<Vec<usize>>> = (0..n).map(|i| Some(vec![i])).collect();
    // Sum of pairwise scores between clusters i and j (row-major, kept symmetric).
    let mut sums: Vec<f64> = (0..n.saturating_mul(n))
        .map(|k| match (k.checked_div(n), k.checked_rem(n)) {
            (Some(i), Some(j)) => m.get(i, j),
            _ => 0.0,
        })
        .collect();
    loop {
        let mut best: Option<(f64, usize, usize)> = None;
        for i in 0..n {
            let Some(Some(mi)) = members.get(i) else {
                continue;
            };
            for j in i + 1..n {
                let Some(Some(mj)) = members.get(j) else {
                    continue;
                };
                let pairs = (mi.len() * mj.len()) as f64;
                let avg = sums.get(i * n + j).copied().unwrap_or(0.0) / pairs;
                // Strictly greater: the first pair in (i, j) order wins ties.
                if avg >= threshold && best.is_none_or(|(b, _, _)| avg > b) {
                    best = Some((avg, i, j));
                }
            }
        }
        let Some((_, i, j)) = best else {
            break;
        };
        // Merge j into i (i < j, so the merged cluster keeps the smaller first member).
        let Some(mj) = members.get_mut(j).and_then(Option::take) else {
            break;
        };
        if let Some(Some(mi)) = members.get_mut(i) {
            mi.extend(mj);
            mi.sort_unstable();
        }
        for k in 0..n {
            let add = sums.get(j * n + k).copied().unwrap_or(0.0);
            if let Some(v) = sums.get_mut(i * n + k) {
                *v += add;
            }
            if let Some(v) = sums.get_mut(k * n + i) {
                *v += add;
            }
        }
    }
    let mut out: Vec<Cluster> = members
        .into_iter()
        .flatten()
        .map(|ms| {
            let mut total = 0.0;
            let mut pairs = 0usize;
            for (x, &a) in ms.iter().enumerate() {
                for &b in ms.iter().skip(x + 1) {
                    total += m.get(a, b);
                    pairs += 1;
                }
            }
            let cohesion = if pairs == 0 {
                100.0
            } else {
                total / pairs as f64
            };
            Cluster {
                members: ms,
                cohesion,
            }
        })
        .collect();
    out.sort_by_key(|c| c.members.first().copied());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(cs: &[Cluster]) -> Vec<Vec<usize>> {
        cs.iter().map(|c| c.members.clone()).collect()
    }

    #[test]
    fn two_families_and_a_loner() {
        let mut m = ScoreMatrix::new(6);
        // Family {0, 2, 4}, family {1, 5}, image 3 alone; weak cross links.
        for (a, b, s) in [
            (0, 2, 90.0),
            (0, 4, 70.0),
            (2, 4, 80.0),
            (1, 5, 95.0),
            (0, 1, 20.0),
            (3, 4, 40.0),
            (2, 3, 50.0),
        ] {
            m.set(a, b, s);
        }
        let cs = average_linkage(&m, 55.0);
        assert_eq!(members(&cs), vec![vec![0, 2, 4], vec![1, 5], vec![3]]);
        assert!((cs[0].cohesion - 80.0).abs() < 1e-9);
        assert_eq!(cs[2].cohesion, 100.0);
    }

    #[test]
    fn average_not_single_linkage() {
        // 0–1 and 1–2 are close but 0–2 is not: single linkage would chain all three, average
        // linkage only merges {0, 1} and then finds 2 at (60 + 0) / 2 = 30 from it.
        let mut m = ScoreMatrix::new(3);
        m.set(0, 1, 80.0);
        m.set(1, 2, 60.0);
        let cs = average_linkage(&m, 55.0);
        assert_eq!(members(&cs), vec![vec![0, 1], vec![2]]);
    }

    #[test]
    fn ties_are_deterministic_and_edges_are_safe() {
        let mut m = ScoreMatrix::new(4);
        m.set(0, 1, 60.0);
        m.set(2, 3, 60.0);
        m.set(9, 1, 99.0); // ignored
        m.set(1, 2, f64::NAN); // ignored
        assert_eq!(m.get(9, 9), 0.0);
        let cs = average_linkage(&m, 60.0);
        assert_eq!(members(&cs), vec![vec![0, 1], vec![2, 3]]);
        assert!(average_linkage(&ScoreMatrix::new(0), 50.0).is_empty());
        assert_eq!(members(&average_linkage(&m, 61.0)).len(), 4);
    }
}
