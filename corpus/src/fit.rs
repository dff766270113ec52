//! `fwsim-corpus fit`: the decision thresholds of fwsim's verdicts (`same_software`,
//! `sdk_environment`, `sdk_share`) fitted on the pairs of split `fit` only, from a
//! `fwsim matrix --json` run over the corpus; the split that is scored stays unseen.

use std::fmt::Write as _;

use serde::Serialize;

use std::collections::HashMap;

use crate::bench::ScoredPair;
use crate::metrics::fit_threshold;
use crate::plan::{Pair, Relation};

/// The fitted thresholds (the fields of `fwsim::compare::Thresholds` they set) and what they
/// were fitted on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fitted {
    /// Score at or above which a pair is the same software.
    pub same_software: f64,
    /// Shared SDK build-environment mass at or above which shared code is a chip SDK.
    pub sdk_environment: f64,
    /// Share of non-component code matched at or above which a chip SDK is claimed.
    pub sdk_share: f64,
    /// Pairs of the fit split used: same family, shared-sdk, unrelated.
    #[serde(skip)]
    pub counts: (usize, usize, usize),
}

/// One fit-split pair's signals.
struct Signals {
    relation: Relation,
    score: f64,
    sdk_share: f64,
    sdk_environment: f64,
}

/// Fits the thresholds on the pairs of split `split` (see the README's "Fitting" section):
/// 1. `same_software` — [`fit_threshold`] on the score, same family (rebrand, same-vendor)
///    against other families;
/// 2. `sdk_environment` — [`fit_threshold`] on the shared SDK build environment, `shared-sdk`
///    against `unrelated` pairs;
/// 3. `sdk_share` — [`fit_threshold`] on the share of non-component code matched, `shared-sdk`
///    against `unrelated`, among the pairs that pass step 2; when none of those is unrelated, half
///    the lowest `shared-sdk` share (every fit pair kept, and no threshold on a training value).
///
/// Pairs fwsim did not score are left out. `None` when the split lacks positives or negatives.
pub fn fit(pairs: &[Pair], scores: &[ScoredPair], split: &str) -> Option<Fitted> {
    let key = |a: &str, b: &str| {
        let base = |n: &str| n.rsplit(['/', '\\']).next().unwrap_or(n).to_owned();
        let (a, b) = (base(a), base(b));
        if a <= b { (a, b) } else { (b, a) }
    };
    let by_pair: HashMap<(String, String), &ScoredPair> =
        scores.iter().map(|s| (key(&s.a, &s.b), s)).collect();
    let signals: Vec<Signals> = pairs
        .iter()
        .filter(|p| p.split == split)
        .filter_map(|p| {
            let s = by_pair.get(&key(&p.a, &p.b))?;
            Some(Signals {
                relation: p.relation,
                score: s.score,
                sdk_share: s.sdk_share.unwrap_or(0.0),
                sdk_environment: s.sdk_environment.unwrap_or(0.0),
            })
        })
        .collect();
    let same: Vec<(f64, bool)> = signals
        .iter()
        .map(|s| (s.score, s.relation.same_family()))
        .collect();
    let other: Vec<&Signals> = signals
        .iter()
        .filter(|s| !s.relation.same_family())
        .collect();
    let n_same = same.iter().filter(|(_, p)| *p).count();
    let n_sdk = other
        .iter()
        .filter(|s| s.relation == Relation::SharedSdk)
        .count();
    if n_same == 0 || other.is_empty() || n_sdk == 0 || n_sdk == other.len() {
        return None;
    }
    let same_software = fit_threshold(&same);
    let env: Vec<(f64, bool)> = other
        .iter()
        .map(|s| (s.sdk_environment, s.relation == Relation::SharedSdk))
        .collect();
    let sdk_environment = fit_threshold(&env);
    let passing: Vec<(f64, bool)> = other
        .iter()
        .filter(|s| s.sdk_environment >= sdk_environment)
        .map(|s| (s.sdk_share, s.relation == Relation::SharedSdk))
        .collect();
    let sdk_share = if passing.iter().all(|(_, p)| *p) {
        passing
            .iter()
            .map(|(v, _)| *v)
            .min_by(f64::total_cmp)
            .map_or(0.0, |v| v / 2.0)
    } else {
        fit_threshold(&passing)
    };
    Some(Fitted {
        same_software,
        sdk_environment,
        sdk_share,
        counts: (n_same, n_sdk, other.len() - n_sdk),
    })
}

/// The fitted thresholds as a `--thresholds` JSON object and a line saying what they rest on.
pub fn report(f: &Fitted, split: &str) -> String {
    let mut s = String::new();
    let (same, sdk, unrelated) = f.counts;
    let _ = writeln!(
        s,
        "Fitted on split `{split}`: {same} same-family pairs, {sdk} shared-sdk, {unrelated} unrelated."
    );
    let json = serde_json::json!({
        "same_software": round2(f.same_software),
        "sdk_environment": round2(f.sdk_environment),
        "sdk_share": round3(f.sdk_share),
    });
    let _ = writeln!(s, "{json}");
    s
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str, split: &str, relation: Relation) -> Pair {
        Pair {
            a: a.into(),
            b: b.into(),
            split: split.into(),
            relation,
            transformations: Vec::new(),
        }
    }

    fn scored(a: &str, b: &str, score: f64, share: f64, env: f64) -> ScoredPair {
        ScoredPair {
            a: a.into(),
            b: b.into(),
            score,
            verdict: None,
            sdk_share: Some(share),
            sdk_environment: Some(env),
        }
    }

    #[test]
    fn thresholds_fall_between_the_fit_classes_and_ignore_the_scored_split() {
        let pairs = vec![
            pair("a1", "a2", "fit", Relation::SameVendor),
            pair("a1", "r1", "fit", Relation::Rebrand),
            pair("a1", "c1", "fit", Relation::SharedSdk),
            pair("a1", "d1", "fit", Relation::Unrelated),
            pair("c1", "d1", "fit", Relation::Unrelated),
            // The scored split would pull every threshold elsewhere: it must not count.
            pair("s1", "s2", "score", Relation::Rebrand),
            pair("s1", "s3", "score", Relation::Unrelated),
        ];
        let scores = vec![
            scored("a1", "a2", 80.0, 0.5, 10.0),
            scored("r1", "a1", 40.0, 0.4, 6.0), // either order
            scored("a1", "c1", 30.0, 0.3, 4.0),
            scored("a1", "d1", 20.0, 0.3, 0.2),
            scored("c1", "d1", 10.0, 0.1, 0.0),
            scored("s1", "s2", 5.0, 0.0, 0.0),
            scored("s1", "s3", 95.0, 1.0, 50.0),
        ];
        let f = fit(&pairs, &scores, "fit").unwrap();
        // Same family 40, 80 against 30, 20, 10: midway between 30 and 40.
        assert_eq!(f.same_software, 35.0);
        // shared-sdk 4.0 against unrelated 0.2, 0.0: midway between 0.2 and 4.0.
        assert!((f.sdk_environment - 2.1).abs() < 1e-9, "{f:?}");
        // Only the shared-sdk pair passes: half its share.
        assert!((f.sdk_share - 0.15).abs() < 1e-9, "{f:?}");
        assert_eq!(f.counts, (2, 1, 2));
        let text = report(&f, "fit");
        assert!(text.contains("\"same_software\":35.0"), "{text}");
        // A split without shared-sdk pairs cannot fit the SDK thresholds.
        assert!(fit(&pairs, &scores, "score").is_none());
    }
}
