//! Accuracy figures of a scorer: ROC AUC (Mann–Whitney, ties counted half), the threshold that
//! best separates two classes, precision/recall, and the confusion matrix of verdicts.

use std::collections::BTreeMap;

/// ROC AUC of `positives` against `negatives` (higher score = more likely positive): the
/// probability that a random positive outscores a random negative, ties counting one half.
/// `None` when either side is empty.
pub fn auc(positives: &[f64], negatives: &[f64]) -> Option<f64> {
    if positives.is_empty() || negatives.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for p in positives {
        for n in negatives {
            if p > n {
                wins += 1.0;
            } else if p == n {
                wins += 0.5;
            }
        }
    }
    Some(wins / (positives.len() as f64 * negatives.len() as f64))
}

/// Precision and recall of the prediction "positive" at one operating point.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct PrecisionRecall {
    /// Positives predicted positive.
    pub tp: usize,
    /// Negatives predicted positive.
    pub fp: usize,
    /// Positives predicted negative.
    pub fn_: usize,
    /// Negatives predicted negative.
    pub tn: usize,
}

impl PrecisionRecall {
    /// Counts from (is positive, predicted positive) pairs.
    pub fn count(items: impl IntoIterator<Item = (bool, bool)>) -> Self {
        let mut pr = Self::default();
        for (truth, pred) in items {
            match (truth, pred) {
                (true, true) => pr.tp += 1,
                (false, true) => pr.fp += 1,
                (true, false) => pr.fn_ += 1,
                (false, false) => pr.tn += 1,
            }
        }
        pr
    }

    /// tp / (tp + fp); 1 when nothing was predicted positive.
    pub fn precision(&self) -> f64 {
        let d = self.tp + self.fp;
        if d == 0 {
            1.0
        } else {
            self.tp as f64 / d as f64
        }
    }

    /// tp / (tp + fn); 1 when there is no positive.
    pub fn recall(&self) -> f64 {
        let d = self.tp + self.fn_;
        if d == 0 {
            1.0
        } else {
            self.tp as f64 / d as f64
        }
    }
}

/// The threshold `t` (predict positive when `score >= t`) with the most correct predictions on
/// `(score, is positive)` items; among equals, the midpoint between the lowest positive kept and
/// the highest negative below it, so a fitted threshold does not sit on a training score.
pub fn fit_threshold(items: &[(f64, bool)]) -> f64 {
    let mut scores: Vec<f64> = items.iter().map(|(s, _)| *s).collect();
    scores.sort_by(f64::total_cmp);
    scores.dedup();
    let mut best = (0usize, f64::INFINITY);
    // Candidates: every distinct score, and above the highest one.
    let mut candidates = scores.clone();
    candidates.push(f64::INFINITY);
    for (i, &t) in candidates.iter().enumerate() {
        let correct = items.iter().filter(|(s, p)| (*s >= t) == *p).count();
        if correct > best.0 {
            let below = if i == 0 { None } else { scores.get(i - 1) };
            let t = match below {
                Some(b) if t.is_finite() => (b + t) / 2.0,
                _ => t,
            };
            best = (correct, t);
        }
    }
    best.1
}

/// A confusion matrix: expected label → predicted label → count.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Confusion(pub BTreeMap<String, BTreeMap<String, usize>>);

impl Confusion {
    /// Counts (expected, predicted) pairs.
    pub fn count<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut m: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for (e, p) in items {
            *m.entry(e.to_owned())
                .or_default()
                .entry(p.to_owned())
                .or_default() += 1;
        }
        Self(m)
    }

    /// How many pairs expected `e` were predicted `p`.
    pub fn get(&self, e: &str, p: &str) -> usize {
        self.0
            .get(e)
            .and_then(|row| row.get(p))
            .copied()
            .unwrap_or(0)
    }

    /// Every predicted label that occurs, sorted.
    pub fn predicted_labels(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.values().flat_map(|r| r.keys().cloned()).collect();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_inverted_and_tied_scorers() {
        assert_eq!(auc(&[0.9, 0.8], &[0.1, 0.2, 0.3]), Some(1.0));
        assert_eq!(auc(&[0.1], &[0.5, 0.6]), Some(0.0));
        assert_eq!(auc(&[0.5, 0.5], &[0.5]), Some(0.5));
        assert_eq!(auc(&[], &[0.5]), None);
    }

    #[test]
    fn auc_by_hand() {
        // Positives 0.8, 0.4; negatives 0.5, 0.4, 0.1.
        // 0.8 beats all three (3); 0.4 loses to 0.5 (0), ties 0.4 (0.5), beats 0.1 (1) → 4.5 / 6.
        let a = auc(&[0.8, 0.4], &[0.5, 0.4, 0.1]).unwrap();
        assert!((a - 0.75).abs() < 1e-12, "{a}");
    }

    #[test]
    fn precision_and_recall_by_hand() {
        let pr = PrecisionRecall::count([
            (true, true),
            (true, true),
            (true, false),
            (false, true),
            (false, false),
            (false, false),
        ]);
        assert_eq!((pr.tp, pr.fp, pr.fn_, pr.tn), (2, 1, 1, 2));
        assert!((pr.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((pr.recall() - 2.0 / 3.0).abs() < 1e-12);
        let none = PrecisionRecall::count([(false, false)]);
        assert_eq!(none.precision(), 1.0);
    }

    #[test]
    fn threshold_sits_between_the_classes() {
        let items = [(10.0, false), (20.0, false), (60.0, true), (80.0, true)];
        assert_eq!(fit_threshold(&items), 40.0);
        // One overlap: 30 (positive) below 35 (negative): best keeps 3 of 4 correct.
        let items = [(10.0, false), (35.0, false), (30.0, true), (80.0, true)];
        let t = fit_threshold(&items);
        let correct = items.iter().filter(|(s, p)| (*s >= t) == *p).count();
        assert_eq!(correct, 3);
        // No positive at all: nothing is predicted positive.
        assert_eq!(fit_threshold(&[(5.0, false)]), f64::INFINITY);
    }

    #[test]
    fn confusion_counts_by_hand() {
        let c = Confusion::count([
            ("rebrand", "rebrand"),
            ("rebrand", "unrelated"),
            ("unrelated", "unrelated"),
            ("unrelated", "unrelated"),
            ("shared-sdk", "same-vendor"),
        ]);
        assert_eq!(c.get("rebrand", "rebrand"), 1);
        assert_eq!(c.get("rebrand", "unrelated"), 1);
        assert_eq!(c.get("unrelated", "unrelated"), 2);
        assert_eq!(c.get("shared-sdk", "same-vendor"), 1);
        assert_eq!(c.get("same-vendor", "rebrand"), 0);
        assert_eq!(
            c.predicted_labels(),
            vec!["rebrand", "same-vendor", "unrelated"]
        );
    }
}
