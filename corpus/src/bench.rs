//! The accuracy benchmark: scores every ground-truth pair with fwsim (any pairs JSON of the
//! `fwsim matrix --json` shape) and with three baselines — whole-image ssdeep, whole-image TLSH,
//! share of byte-identical files — and reports AUC, confusion, precision/recall and catches per
//! rebrand transformation, thresholds fitted on the `fit` split and figures reported on `score`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use fwsim::fingerprint::Fingerprint;
use fwsim::hash;
use serde::{Deserialize, Serialize};

use crate::builder::{self, Manifest};
use crate::metrics::{Confusion, PrecisionRecall, auc, fit_threshold};
use crate::plan::{Pair, Relation, Transform};

/// One scored pair as `fwsim matrix --json` gives it (extra fields ignored).
#[derive(Clone, Debug, Deserialize)]
pub struct ScoredPair {
    /// First image (path or name).
    pub a: String,
    /// Second image.
    pub b: String,
    /// Score 0–100.
    pub score: f64,
    /// Verdict.
    #[serde(default)]
    pub verdict: Option<String>,
    /// Share of non-component code matched (what `shared-sdk` rests on), when given.
    #[serde(default)]
    pub sdk_share: Option<f64>,
    /// Shared SDK build-environment mass (what `shared-sdk` also needs), when given.
    #[serde(default)]
    pub sdk_environment: Option<f64>,
}

/// Reads a pairs JSON: an array of pairs, or an object with a `pairs` array.
pub fn read_scores(text: &str) -> Result<Vec<ScoredPair>> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let arr = match v {
        serde_json::Value::Array(_) => v,
        serde_json::Value::Object(mut o) => o.remove("pairs").context("no \"pairs\" array")?,
        _ => anyhow::bail!("expected an array of pairs or an object with \"pairs\""),
    };
    // `fwsim matrix --json` describes each side as an object with its `name`: take the name.
    let arr = match arr {
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items
                .into_iter()
                .map(|mut p| {
                    for side in ["a", "b"] {
                        let name = p
                            .get(side)
                            .and_then(|v| v.get("name"))
                            .and_then(serde_json::Value::as_str)
                            .map(str::to_owned);
                        if let (Some(name), Some(obj)) = (name, p.as_object_mut()) {
                            obj.insert(side.to_owned(), name.into());
                        }
                    }
                    p
                })
                .collect(),
        ),
        other => other,
    };
    Ok(serde_json::from_value(arr)?)
}

fn base(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Scores of one scorer by unordered pair of image names.
#[derive(Clone, Debug, Default)]
pub struct Scores {
    /// Scorer's name.
    pub name: String,
    /// (a, b) sorted → (score, verdict).
    pub by_pair: BTreeMap<(String, String), (f64, Option<String>)>,
}

impl Scores {
    fn key(a: &str, b: &str) -> (String, String) {
        let (a, b) = (base(a).to_owned(), base(b).to_owned());
        if a <= b { (a, b) } else { (b, a) }
    }

    /// From fwsim's scored pairs.
    pub fn from_pairs(name: &str, pairs: &[ScoredPair]) -> Self {
        let mut s = Self {
            name: name.into(),
            ..Self::default()
        };
        for p in pairs {
            s.by_pair
                .insert(Self::key(&p.a, &p.b), (p.score, p.verdict.clone()));
        }
        s
    }

    fn get(&self, a: &str, b: &str) -> Option<&(f64, Option<String>)> {
        self.by_pair.get(&Self::key(a, b))
    }
}

/// Whole-input digests and file set of one side (an image, or a folder of real samples).
pub struct Side {
    /// Whole-input digests.
    pub digests: hash::Digests,
    /// SHA-256 of its files.
    pub files: BTreeSet<String>,
}

impl Side {
    /// An image and its fingerprint.
    pub fn image(bytes: &[u8], fp: &Fingerprint) -> Self {
        Self {
            digests: hash::digests(bytes),
            files: fp
                .files
                .iter()
                .filter(|f| !f.unpacked)
                .map(|f| f.sha256.clone())
                .collect(),
        }
    }
}

/// The three baselines for two sides: whole ssdeep (0–100), whole TLSH as `-distance`, and the
/// Jaccard share of byte-identical files (0–100).
pub fn baselines(a: &Side, b: &Side) -> [f64; 3] {
    let ssdeep = match (&a.digests.ssdeep, &b.digests.ssdeep) {
        (Ok(x), Ok(y)) => f64::from(hash::ssdeep::compare(x, y).unwrap_or(0)),
        _ => 0.0,
    };
    let tlsh = match (&a.digests.tlsh, &b.digests.tlsh) {
        (Some(x), Some(y)) => -f64::from(x.diff(y)),
        _ => -1000.0,
    };
    let union = a.files.union(&b.files).count();
    let shared = a.files.intersection(&b.files).count();
    let jaccard = if union == 0 {
        0.0
    } else {
        100.0 * shared as f64 / union as f64
    };
    [ssdeep, tlsh, jaccard]
}

/// Baseline scorer names, in [`baselines`] order.
pub const BASELINES: [&str; 3] = [
    "ssdeep (whole image)",
    "TLSH (whole image, -distance)",
    "identical files (Jaccard %)",
];

/// Computes the baselines over every pair of the corpus under `root`.
pub fn baseline_scores(root: &Path, manifest: &Manifest, pairs: &[Pair]) -> Result<Vec<Scores>> {
    let mut sides = BTreeMap::new();
    for r in &manifest.images {
        let name = &r.plan.name;
        let bytes = fs::read(builder::images_dir(root).join(name))
            .with_context(|| format!("reading image {name}"))?;
        let fp = builder::fingerprint(root, name, &r.sha256)?;
        sides.insert(name.clone(), Side::image(&bytes, &fp));
    }
    let mut out: Vec<Scores> = BASELINES
        .iter()
        .map(|n| Scores {
            name: (*n).into(),
            ..Scores::default()
        })
        .collect();
    for p in pairs {
        let (Some(a), Some(b)) = (sides.get(&p.a), sides.get(&p.b)) else {
            continue;
        };
        for (s, v) in out.iter_mut().zip(baselines(a, b)) {
            s.by_pair.insert(Scores::key(&p.a, &p.b), (v, None));
        }
    }
    Ok(out)
}

/// The figures of one scorer on the scored split.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    /// Scorer.
    pub scorer: String,
    /// AUC same family (rebrand, same-vendor) vs different families (shared-sdk, unrelated).
    pub auc: Option<f64>,
    /// AUC same family vs unrelated only.
    pub auc_vs_unrelated: Option<f64>,
    /// Threshold fitted on the fit split (baselines), if any.
    pub threshold: Option<f64>,
    /// "Same family" predictions on the scored split.
    pub same_family: PrecisionRecall,
    /// Expected relation × predicted verdict.
    pub confusion: Confusion,
    /// Per transformation: (caught, total) over rebrand–original pairs.
    pub transformations: BTreeMap<String, (usize, usize)>,
    /// Pairs the scorer had no score for.
    pub missing: usize,
}

/// Scores one scorer: thresholds (for scorers without verdicts) fitted on `fit`, figures on
/// `scored`.
pub fn figures(scores: &Scores, pairs: &[Pair], fit: &str, scored: &str) -> Figures {
    let has_verdicts = scores.by_pair.values().any(|(_, v)| v.is_some());
    let fit_items: Vec<(f64, bool)> = pairs
        .iter()
        .filter(|p| p.split == fit)
        .filter_map(|p| {
            scores
                .get(&p.a, &p.b)
                .map(|(s, _)| (*s, p.relation.same_family()))
        })
        .collect();
    let threshold = (!has_verdicts).then(|| fit_threshold(&fit_items));
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    let mut neg_unrelated = Vec::new();
    let mut pr = Vec::new();
    let mut conf = Vec::new();
    let mut transformations: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut missing = 0;
    for p in pairs.iter().filter(|p| p.split == scored) {
        let Some((score, verdict)) = scores.get(&p.a, &p.b) else {
            missing += 1;
            continue;
        };
        let predicted: String = match (verdict, threshold) {
            (Some(v), _) => v.clone(),
            (None, Some(t)) if *score >= t => "same-family".into(),
            _ => "different".into(),
        };
        let said_same = matches!(
            predicted.as_str(),
            "rebrand" | "same-vendor" | "same-family"
        );
        let same = p.relation.same_family();
        if same {
            pos.push(*score);
        } else {
            neg.push(*score);
            if p.relation == Relation::Unrelated {
                neg_unrelated.push(*score);
            }
        }
        pr.push((same, said_same));
        conf.push((p.relation.name().to_owned(), predicted.clone()));
        let mut kinds: BTreeSet<&str> = p.transformations.iter().map(|t| t.name()).collect();
        if !p.transformations.is_empty() {
            kinds.insert("any rebrand");
        }
        for k in kinds {
            let e = transformations.entry(k.to_owned()).or_default();
            e.1 += 1;
            if said_same && (verdict.is_none() || predicted == "rebrand") {
                e.0 += 1;
            }
        }
    }
    Figures {
        scorer: scores.name.clone(),
        auc: auc(&pos, &neg),
        auc_vs_unrelated: auc(&pos, &neg_unrelated),
        threshold,
        same_family: PrecisionRecall::count(pr),
        confusion: Confusion::count(conf.iter().map(|(e, p)| (e.as_str(), p.as_str()))),
        transformations,
        missing,
    }
}

fn f3(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{v:.3}"))
}

/// The report, Markdown.
pub fn report(all: &[Figures], fit: &str, scored: &str, n_pairs: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Thresholds of the baselines fitted on split `{fit}`; figures on split `{scored}` ({n_pairs} pairs).\n"
    );
    s.push_str("| scorer | AUC same family vs other | AUC vs unrelated | threshold | precision | recall | other-family pairs called same |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for f in all {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.3} | {:.3} | {} |",
            f.scorer,
            f3(f.auc),
            f3(f.auc_vs_unrelated),
            f.threshold
                .map_or_else(|| "verdicts".into(), |t| format!("{t:.1}")),
            f.same_family.precision(),
            f.same_family.recall(),
            f.same_family.fp
        );
    }
    let kinds: BTreeSet<&String> = all.iter().flat_map(|f| f.transformations.keys()).collect();
    s.push_str("\nRebrand–original pairs caught, by transformation:\n\n| transformation |");
    for f in all {
        let _ = write!(s, " {} |", f.scorer);
    }
    s.push_str("\n| --- |");
    for _ in all {
        s.push_str(" --- |");
    }
    s.push('\n');
    for k in kinds {
        let _ = write!(s, "| {k} |");
        for f in all {
            let (c, t) = f.transformations.get(k).copied().unwrap_or((0, 0));
            let _ = write!(s, " {c}/{t} |");
        }
        s.push('\n');
    }
    for f in all {
        let labels = f.confusion.predicted_labels();
        let _ = write!(
            s,
            "\nConfusion, {} (rows expected, columns predicted):\n\n| expected |",
            f.scorer
        );
        for l in &labels {
            let _ = write!(s, " {l} |");
        }
        s.push_str("\n| --- |");
        for _ in &labels {
            s.push_str(" --- |");
        }
        s.push('\n');
        for e in ["rebrand", "same-vendor", "shared-sdk", "unrelated"] {
            let _ = write!(s, "| {e} |");
            for l in &labels {
                let _ = write!(s, " {} |", f.confusion.get(e, l));
            }
            s.push('\n');
        }
    }
    s
}

/// One known relationship among the real samples.
pub struct RealPair {
    /// What it is.
    pub what: &'static str,
    /// Folder of side A, relative to the real-data folder.
    pub a: &'static str,
    /// Folder of side B.
    pub b: &'static str,
    /// Expected relation.
    pub relation: Relation,
}

/// The known relationships of `../shared/realdata` (see its SOURCES.tsv).
pub const REAL_PAIRS: &[RealPair] = &[
    RealPair {
        what: "Dahua Eos vs Themis",
        a: "BotoX__DH_IPC-HX4XXX-Eos",
        b: "BotoX__DH_IPC-HX4XXX-Themis",
        relation: Relation::SameVendor,
    },
    RealPair {
        what: "HiSilicon Hi3516EV200 vs Goke GK7205V200 SDK",
        a: "OpenIPC__firmware/general/package/hisilicon-osdrv-hi3516ev200/files",
        b: "OpenIPC__firmware/general/package/goke-osdrv-gk7205v200/files",
        relation: Relation::SharedSdk,
    },
    RealPair {
        what: "Anyka AK3918 SDK, two versions",
        a: "kkrzysztofik__Anyka_ak3918_hacking_journey/SD_card_contents/anyka_hack/onvif/lib",
        b: "warren-bank__mirror-firmware-lightbulb-camera-Anyka-ak3918-by-Gergely-Palfi/cross-compile/IOT-ANYKA-PTZdaemon/libs",
        relation: Relation::SharedSdk,
    },
    RealPair {
        what: "ESCAM vs OpenIPC HiSilicon kmods",
        a: "gadonline__escam_pvr008/rootfs/ko",
        b: "OpenIPC__firmware/general/package/hisilicon-osdrv-hi3516ev200/files/kmod",
        relation: Relation::SharedSdk,
    },
    RealPair {
        what: "Dahua vs Xiongmai (shared uClibc trap)",
        a: "BotoX__DH_IPC-HX4XXX-Eos",
        b: "nikitos1550__XM_ipcam_crypto_generator",
        relation: Relation::Unrelated,
    },
];

/// A folder of real samples as one side: its files concatenated in path order (the "whole
/// image" of the baselines) and their SHA-256 set.
pub fn folder_side(dir: &Path) -> Result<Side> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let ty = e.file_type()?;
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    let mut all = Vec::new();
    let mut set = BTreeSet::new();
    for f in files {
        let b = fs::read(&f)?;
        set.insert(crate::inputs::sha256_hex(&b));
        all.extend_from_slice(&b);
    }
    Ok(Side {
        digests: hash::digests(&all),
        files: set,
    })
}

/// fwsim's score and verdict on one real pair: `fwsim compare --json A B` run with the binary
/// `fwsim` (the folders are compared as fwsim compares folders: their files archived in path
/// order).
pub fn fwsim_compare(fwsim: &Path, a: &Path, b: &Path) -> Result<(f64, String)> {
    let out = std::process::Command::new(fwsim)
        .arg("--quiet")
        .arg("compare")
        .arg("--json")
        .arg(a)
        .arg(b)
        .output()
        .with_context(|| format!("running {}", fwsim.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "fwsim compare {} {}: {}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let score = v
        .get("score")
        .and_then(serde_json::Value::as_f64)
        .context("fwsim compare: no score")?;
    let verdict = v
        .get("verdict")
        .and_then(serde_json::Value::as_str)
        .context("fwsim compare: no verdict")?;
    Ok((score, verdict.to_owned()))
}

/// The real-sample table, Markdown: the baselines, and fwsim's score and verdict when a fwsim
/// binary is given; `None` when the folder is missing.
pub fn real_table(realdata: &Path, fwsim: Option<&Path>) -> Result<Option<String>> {
    if !realdata.is_dir() {
        return Ok(None);
    }
    let mut s = String::from(
        "| pair | expected | fwsim score | fwsim verdict | ssdeep | TLSH distance | identical files (Jaccard %) |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for p in REAL_PAIRS {
        let (pa, pb) = (realdata.join(p.a), realdata.join(p.b));
        let a = folder_side(&pa)?;
        let b = folder_side(&pb)?;
        let [ss, tl, jac] = baselines(&a, &b);
        let (score, verdict) = match fwsim {
            Some(bin) => {
                let (score, verdict) = fwsim_compare(bin, &pa, &pb)?;
                let mark = if verdict == p.relation.name() {
                    ""
                } else {
                    " ✗"
                };
                (format!("{score:.1}"), format!("{verdict}{mark}"))
            }
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {score} | {verdict} | {ss:.0} | {:.0} | {jac:.1} |",
            p.what,
            p.relation.name(),
            -tl
        );
    }
    Ok(Some(s))
}

/// Transformation names for documentation.
pub fn transformation_names() -> Vec<&'static str> {
    [
        Transform::Strings,
        Transform::BinaryPatch,
        Transform::Container,
        Transform::Compressor,
        Transform::Flags,
        Transform::Arch,
        Transform::OldVersion,
        Transform::Additions,
        Transform::NewKeys,
    ]
    .iter()
    .map(|t| t.name())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str, split: &str, relation: Relation, t: Vec<Transform>) -> Pair {
        Pair {
            a: a.into(),
            b: b.into(),
            split: split.into(),
            relation,
            transformations: t,
        }
    }

    #[test]
    fn matrix_json_of_either_shape_is_read() {
        let a = read_scores(
            r#"[{"a":"x/i1.bin","b":"i2.bin","score":80,"verdict":"rebrand","evidence":[]}]"#,
        )
        .unwrap();
        let b = read_scores(r#"{"schema_version":1,"pairs":[{"a":"i1.bin","b":"i2.bin","score":80.5,"verdict":"rebrand","evidence":[]}]}"#).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(b[0].score, 80.5);
        let s = Scores::from_pairs("fwsim", &a);
        // Looked up by base name, in either order.
        assert_eq!(s.get("i2.bin", "i1.bin").map(|x| x.0), Some(80.0));
        assert!(read_scores("3").is_err());
        // `fwsim matrix --json`: sides are objects carrying their name.
        let m = read_scores(r#"{"schema_version":1,"pairs":[{"a_index":0,"b_index":1,"a":{"name":"i1.bin","files":3},"b":{"name":"i2.bin"},"score":61.5,"verdict":"rebrand","evidence":[]}]}"#).unwrap();
        assert_eq!((m[0].a.as_str(), m[0].b.as_str()), ("i1.bin", "i2.bin"));
        assert_eq!(m[0].score, 61.5);
    }

    #[test]
    fn figures_of_a_small_hand_scored_corpus() {
        let pairs = vec![
            // fit split: same family scores 70, 60; others 20, 10 → threshold 40.
            pair("f1", "f2", "fit", Relation::SameVendor, vec![]),
            pair(
                "f1",
                "f3",
                "fit",
                Relation::Rebrand,
                vec![Transform::Strings],
            ),
            pair("f1", "f4", "fit", Relation::Unrelated, vec![]),
            pair("f2", "f4", "fit", Relation::SharedSdk, vec![]),
            // score split.
            pair(
                "s1",
                "s2",
                "score",
                Relation::Rebrand,
                vec![Transform::Flags],
            ),
            pair("s1", "s3", "score", Relation::SameVendor, vec![]),
            pair("s1", "s4", "score", Relation::Unrelated, vec![]),
            pair("s2", "s4", "score", Relation::SharedSdk, vec![]),
        ];
        let mut s = Scores::default();
        for (a, b, v) in [
            ("f1", "f2", 70.0),
            ("f1", "f3", 60.0),
            ("f1", "f4", 20.0),
            ("f2", "f4", 10.0),
            ("s1", "s2", 30.0), // missed
            ("s1", "s3", 90.0),
            ("s1", "s4", 50.0), // false positive
            ("s2", "s4", 5.0),
        ] {
            s.by_pair.insert(Scores::key(a, b), (v, None));
        }
        let f = figures(&s, &pairs, "fit", "score");
        assert_eq!(f.threshold, Some(40.0));
        // Positives 30, 90; negatives 50, 5: 90 beats both (2), 30 beats 5 (1) → 3/4.
        assert_eq!(f.auc, Some(0.75));
        // Against unrelated only (50): 90 wins, 30 loses → 1/2.
        assert_eq!(f.auc_vs_unrelated, Some(0.5));
        assert_eq!(
            (
                f.same_family.tp,
                f.same_family.fp,
                f.same_family.fn_,
                f.same_family.tn
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(f.transformations.get("flags"), Some(&(0, 1)));
        assert_eq!(f.transformations.get("any rebrand"), Some(&(0, 1)));
        assert_eq!(f.confusion.get("unrelated", "same-family"), 1);
        assert_eq!(f.missing, 0);
    }

    #[test]
    fn verdicts_are_used_as_given() {
        let pairs = vec![
            pair("a", "b", "score", Relation::Rebrand, vec![Transform::Arch]),
            pair("a", "c", "score", Relation::Unrelated, vec![]),
        ];
        let s = Scores::from_pairs(
            "fwsim",
            &[
                ScoredPair {
                    a: "a".into(),
                    b: "b".into(),
                    score: 70.0,
                    verdict: Some("same-vendor".into()),
                    sdk_share: None,
                    sdk_environment: None,
                },
                ScoredPair {
                    a: "a".into(),
                    b: "c".into(),
                    score: 10.0,
                    verdict: Some("unrelated".into()),
                    sdk_share: None,
                    sdk_environment: None,
                },
            ],
        );
        let f = figures(&s, &pairs, "fit", "score");
        assert_eq!(f.threshold, None);
        assert_eq!(f.same_family.tp, 1);
        // Called the same software, but not a rebrand: not counted as caught.
        assert_eq!(f.transformations.get("arch"), Some(&(0, 1)));
        assert_eq!(f.confusion.get("rebrand", "same-vendor"), 1);
    }

    #[test]
    fn baselines_on_hand_made_sides() {
        let data: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let side = |bytes: &[u8], files: &[&str]| Side {
            digests: hash::digests(bytes),
            files: files.iter().map(|s| (*s).to_owned()).collect(),
        };
        let a = side(&data, &["x", "y", "z"]);
        let b = side(&data, &["x", "y", "w"]);
        let [ss, tl, jac] = baselines(&a, &b);
        assert_eq!(ss, 100.0);
        assert_eq!(tl, 0.0);
        assert_eq!(jac, 50.0); // 2 shared of 4
    }
}
