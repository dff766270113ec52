//! From matched files and shared evidence to a [`Comparison`]: rarity-weighted sub-scores (code,
//! data/strings, web/config, crypto, platform), the overall score 0–100, the verdict and the
//! evidence list, strongest first, each finding naming both sides' paths and its numbers.
//!
//! Each file (not a container) and each evidence item is a piece of *material* of one category
//! with a mass: files `ln(1 + size/64) × rarity × factor` (factor: open-source components and
//! discounted items count for little), evidence items a weight by kind × rarity. A sub-score is
//! the harmonic mean of the two sides' matched shares of their material in that category (a file
//! matched with similarity `s` contributes `s` of its mass; on the B side a file's best match
//! counts), times 100. The score is the weighted mean of the sub-scores both images have material
//! for, raised to `shared_secret_floor` when a private key or certificate of weight is shared.
//! Linux kernel modules (`ET_REL` with `.modinfo` or a `.ko` name) are the chip vendor's drivers, which every
//! vendor on that SoC ships: they are platform material, not code, and count toward `sdk_share`
//! (with code outside open-source components), so images sharing only them come out `shared-sdk`.
//! Symmetry: every share is measured on both sides and combined by a symmetric mean, so
//! `score(A, B)` and `score(B, A)` differ only where best counterparts differ by direction.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::rarity::DocFreq;
use super::thresholds::Thresholds;
use super::verdict::{self, Signals, VendorLabel, Verdict};
use super::weights::{Discount, Weigher, evidence_weight};
use super::{FileMatch, MatchKind, SectionMatch};
use crate::corpus::Labels;
use crate::features::class::ContentClass;
use crate::features::evidence::{Evidence, Kind};
use crate::fingerprint::{FileFeatures, Fingerprint};

/// Version of the comparison's JSON layout.
pub const COMPARISON_SCHEMA_VERSION: u32 = 1;

/// What the score of a comparison is computed with.
#[derive(Clone, Copy, Debug)]
pub struct ScoreContext<'a> {
    /// Document frequencies over families (a corpus's, or the shipped background table).
    pub docfreq: &'a DocFreq,
    /// Where `docfreq` comes from (`corpus`, `background` …), reported as is.
    pub docfreq_source: &'a str,
    /// Thresholds and weights.
    pub thresholds: &'a Thresholds,
    /// The user's discount list.
    pub discount: &'a Discount,
    /// Labels of image A, when known (corpus entries).
    pub labels_a: Option<&'a Labels>,
    /// Labels of image B.
    pub labels_b: Option<&'a Labels>,
}

impl<'a> ScoreContext<'a> {
    /// A context without labels (images not from a corpus, or labels not wanted).
    pub fn new(
        docfreq: &'a DocFreq,
        docfreq_source: &'a str,
        thresholds: &'a Thresholds,
        discount: &'a Discount,
    ) -> Self {
        Self {
            docfreq,
            docfreq_source,
            thresholds,
            discount,
            labels_a: None,
            labels_b: None,
        }
    }
}

/// The sub-score a piece of material belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// ELF executables and libraries (kernel modules are [`Category::Platform`]).
    Code,
    /// Other files, strings and build-environment evidence.
    Data,
    /// Web assets, configuration and scripts.
    WebConfig,
    /// Certificates, keys and password hashes.
    Crypto,
    /// Kernel, kernel modules, device tree, SoC, bootloader.
    Platform,
}

impl Category {
    /// All categories, in report order.
    pub const ALL: [Category; 5] = [
        Category::Code,
        Category::Data,
        Category::WebConfig,
        Category::Crypto,
        Category::Platform,
    ];

    /// The name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Code => "code",
            Category::Data => "data",
            Category::WebConfig => "web_config",
            Category::Crypto => "crypto",
            Category::Platform => "platform",
        }
    }

    fn of_file(f: &FileFeatures) -> Self {
        let packed = f
            .elf
            .as_ref()
            .is_some_and(|e| e.packer.is_some() || !e.code_comparable);
        match f.class {
            c if c.is_elf() && c != ContentClass::ElfKernelModule && !packed => Category::Code,
            ContentClass::WebAsset | ContentClass::Config | ContentClass::Script => {
                Category::WebConfig
            }
            ContentClass::Certificate => Category::Crypto,
            // Kernel modules are the chip vendor's drivers, shipped by every vendor on the SoC:
            // platform, not the vendor's own code.
            ContentClass::ElfKernelModule
            | ContentClass::KernelImage
            | ContentClass::DeviceTree => Category::Platform,
            _ => Category::Data,
        }
    }

    fn of_evidence(k: Kind) -> Self {
        match k {
            Kind::Certificate | Kind::PublicKey | Kind::PrivateKey | Kind::PasswordHash => {
                Category::Crypto
            }
            Kind::DeviceTree
            | Kind::KernelVersion
            | Kind::KernelConfig
            | Kind::Bootloader
            | Kind::Soc => Category::Platform,
            _ => Category::Data,
        }
    }

    fn weight(self, t: &Thresholds) -> f64 {
        match self {
            Category::Code => t.weight_code,
            Category::Data => t.weight_data,
            Category::WebConfig => t.weight_web,
            Category::Crypto => t.weight_crypto,
            Category::Platform => t.weight_platform,
        }
    }
}

/// One side of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// Image name as given.
    pub name: String,
    /// Image SHA-256.
    pub sha256: String,
    /// Vendor label used and where it came from.
    pub label: VendorLabel,
    /// `coverage.identified_share` of the image.
    pub identified_share: f64,
    /// Identified share of the bytes that are not padding (what `inconclusive` is decided on).
    pub identified_content_share: f64,
    /// `coverage.opaque_share` of the image.
    pub opaque_share: f64,
    /// Files compared (not containers).
    pub files: usize,
    /// Of these, files with a counterpart on the other side.
    pub matched_files: usize,
}

/// One reason behind the score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Share of the score (points 0–100) this finding stands for.
    pub strength: f64,
    /// Sub-score it counts in.
    pub category: Category,
    /// `identical_file`, `similar_file` or `shared_<evidence kind>`.
    pub what: String,
    /// Path on side A (the first of the file's paths, or where the evidence was found).
    pub a_path: String,
    /// Path on side B.
    pub b_path: String,
    /// Similarity 0–1 (1 for identical files and shared evidence).
    pub similarity: f64,
    /// Rarity weight 0–1 of the item across families (discounts applied).
    pub rarity: f64,
    /// Factor for open-source components (1 for other files).
    #[serde(default, skip_serializing_if = "is_one")]
    pub component_factor: f64,
    /// The shared value (evidence) or the component names (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Whole-file ssdeep score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssdeep: Option<u32>,
    /// Whole-file TLSH distance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlsh: Option<u32>,
    /// TLSH distance of the ELF identifier digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier_tlsh: Option<u32>,
    /// Matched ELF sections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<SectionMatch>,
    /// One side is UPX-packed: compared as whole files, not as code.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub packed: bool,
}

fn is_one(v: &f64) -> bool {
    (*v - 1.0).abs() < f64::EPSILON
}

/// Sub-scores 0–100; `None` where one of the images has no material of that kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SubScores {
    /// ELF code (kernel modules excepted).
    pub code: Option<f64>,
    /// Other files, strings, build environment.
    pub data: Option<f64>,
    /// Web assets, configuration, scripts.
    pub web_config: Option<f64>,
    /// Keys, certificates, password hashes.
    pub crypto: Option<f64>,
    /// Kernel, kernel modules, device tree, SoC, bootloader.
    pub platform: Option<f64>,
}

impl SubScores {
    fn set(&mut self, c: Category, v: Option<f64>) {
        let slot = match c {
            Category::Code => &mut self.code,
            Category::Data => &mut self.data,
            Category::WebConfig => &mut self.web_config,
            Category::Crypto => &mut self.crypto,
            Category::Platform => &mut self.platform,
        };
        *slot = v;
    }

    /// The sub-score of a category.
    pub fn get(&self, c: Category) -> Option<f64> {
        match c {
            Category::Code => self.code,
            Category::Data => self.data,
            Category::WebConfig => self.web_config,
            Category::Crypto => self.crypto,
            Category::Platform => self.platform,
        }
    }
}

/// The comparison of two images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// [`COMPARISON_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Image A.
    pub a: Side,
    /// Image B.
    pub b: Side,
    /// Score 0–100 (one decimal).
    pub score: f64,
    /// Verdict.
    pub verdict: Verdict,
    /// Sub-scores.
    pub sub_scores: SubScores,
    /// Rarity-weighted share 0–1 of code outside open-source components and kernel modules
    /// matched (what `shared-sdk` rests on, with `sdk_environment`).
    pub sdk_share: f64,
    /// Rarity-weighted mass of shared build-environment evidence a chip SDK leaves (build paths,
    /// SoC names, toolchains; [`evidence_weight`] × rarity summed), which `shared-sdk` also needs.
    #[serde(default)]
    pub sdk_environment: f64,
    /// Where the rarity weights came from.
    pub rarity_source: String,
    /// A shared private key or certificate of weight raised the score to the floor.
    pub shared_secret: bool,
    /// Files matched identically / fuzzily (from A's side).
    pub identical_files: usize,
    /// See `identical_files`.
    pub similar_files: usize,
    /// Findings, strongest first.
    pub evidence: Vec<Finding>,
}

/// Material of one side: mass per category, and for B the best matched contribution per file.
#[derive(Default)]
struct Mass {
    total: BTreeMap<Category, f64>,
    matched: BTreeMap<Category, f64>,
}

impl Mass {
    fn add(&mut self, c: Category, total: f64, matched: f64) {
        *self.total.entry(c).or_default() += total;
        *self.matched.entry(c).or_default() += matched;
    }

    fn share(&self, c: Category) -> Option<f64> {
        let t = *self.total.get(&c)?;
        (t > 0.0).then(|| self.matched.get(&c).copied().unwrap_or(0.0) / t)
    }
}

fn harmonic(a: f64, b: f64) -> f64 {
    if a + b <= 0.0 {
        0.0
    } else {
        2.0 * a * b / (a + b)
    }
}

fn first_path(f: &FileFeatures) -> String {
    f.paths.first().cloned().unwrap_or_default()
}

/// Evidence items of one image by (kind, value), first occurrence kept.
fn evidence_set(fp: &Fingerprint) -> BTreeMap<(Kind, &str), &Evidence> {
    let mut out = BTreeMap::new();
    for e in &fp.evidence {
        // Vendor and product names say who, not what: they label, they do not score.
        if matches!(e.kind, Kind::Vendor | Kind::Product | Kind::BuildDate) {
            continue;
        }
        out.entry((e.kind, e.value.as_str())).or_insert(e);
    }
    out
}

/// Scores image `a` against image `b` from `matches` (A's files and their best counterparts in
/// B, from [`super::matching::pair`]) and the images' evidence; see the module docs.
pub fn score(
    a: &Fingerprint,
    b: &Fingerprint,
    matches: &[FileMatch],
    ctx: &ScoreContext<'_>,
) -> Comparison {
    score_with(a, b, matches, ctx, None, None)
}

/// The rarity of every file of `fp` (`file:<sha256>`), by file index: what [`score_with`] takes
/// to score one image against many without looking the same items up again.
pub(crate) fn file_rarities(w: &Weigher<'_>, fp: &Fingerprint) -> Vec<f64> {
    fp.files.iter().map(|f| file_rarity(w, f)).collect()
}

/// `w.rarity("file:<sha256>")` of one file.
fn file_rarity(w: &Weigher<'_>, f: &FileFeatures) -> f64 {
    w.rarity(&format!("file:{}", f.sha256))
}

/// [`score`], with the file rarities of A and B ([`file_rarities`] under the same context)
/// when the caller has them; the same numbers either way.
pub(crate) fn score_with(
    a: &Fingerprint,
    b: &Fingerprint,
    matches: &[FileMatch],
    ctx: &ScoreContext<'_>,
    rarities_a: Option<&[f64]>,
    rarities_b: Option<&[f64]>,
) -> Comparison {
    let t = ctx.thresholds;
    let w = Weigher {
        docfreq: ctx.docfreq,
        discount: ctx.discount,
        thresholds: t,
    };
    let rarity_of = |known: Option<&[f64]>, i: usize, f: &FileFeatures| {
        known
            .and_then(|r| r.get(i).copied())
            .unwrap_or_else(|| file_rarity(&w, f))
    };
    let mut mass_a = Mass::default();
    let mut mass_b = Mass::default();
    // Per-file masses; matched contributions are rarity-weighted by the counterpart's item.
    let file_mass =
        |f: &FileFeatures, rarity: f64| Weigher::size_weight(f.size) * rarity * w.file_factor(f);
    let by_a: HashMap<usize, &FileMatch> = matches.iter().map(|m| (m.a, m)).collect();
    let mut best_b: HashMap<usize, f64> = HashMap::new();
    let mut best_b_plain: HashMap<usize, f64> = HashMap::new();
    let mut raw_findings: Vec<(f64, Finding)> = Vec::new();
    let mut sdk_a = Mass::default();
    let mut sdk_b = Mass::default();
    for (ai, fa) in a.files.iter().enumerate().filter(|(_, f)| !f.unpacked) {
        let cat = Category::of_file(fa);
        let total = file_mass(fa, rarity_of(rarities_a, ai, fa));
        let mut matched = 0.0;
        if let Some(m) = by_a.get(&ai)
            && let Some(fb) = b.files.get(m.b)
        {
            let rarity = rarity_of(rarities_b, m.b, fb);
            let factor = w.file_factor(fa).min(w.file_factor(fb));
            let size_w = Weigher::size_weight(fa.size);
            matched = size_w * rarity * factor * m.similarity;
            let b_mass = Weigher::size_weight(fb.size) * rarity * factor * m.similarity;
            let e = best_b.entry(m.b).or_default();
            *e = e.max(b_mass);
            if sdk_candidate(fa) && sdk_candidate(fb) {
                let e = best_b_plain.entry(m.b).or_default();
                *e = e.max(b_mass);
            }
            let components: Vec<&str> =
                fa.components.iter().map(|c| c.component.as_str()).collect();
            raw_findings.push((
                matched,
                Finding {
                    strength: 0.0,
                    category: cat,
                    what: match m.kind {
                        MatchKind::Identical => "identical_file".into(),
                        MatchKind::Fuzzy => "similar_file".into(),
                    },
                    a_path: first_path(fa),
                    b_path: first_path(fb),
                    similarity: m.similarity,
                    rarity,
                    component_factor: factor,
                    value: (!components.is_empty()).then(|| components.join(", ")),
                    ssdeep: m.ssdeep,
                    tlsh: m.tlsh,
                    identifier_tlsh: m.identifier_tlsh,
                    sections: m.sections.clone(),
                    packed: m.packed,
                },
            ));
        }
        mass_a.add(cat, total, matched);
        if cat == Category::Code || is_kernel_module(fa) {
            let plain = sdk_candidate(fa);
            sdk_a.add(Category::Code, total, if plain { matched } else { 0.0 });
        }
    }
    for (bi, fb) in b.files.iter().enumerate().filter(|(_, f)| !f.unpacked) {
        let matched = best_b.get(&bi).copied().unwrap_or(0.0);
        let cat = Category::of_file(fb);
        let mass = file_mass(fb, rarity_of(rarities_b, bi, fb));
        mass_b.add(cat, mass, matched);
        if cat == Category::Code || is_kernel_module(fb) {
            let plain = best_b_plain.get(&bi).copied().unwrap_or(0.0);
            sdk_b.add(Category::Code, mass, plain);
        }
    }

    // Evidence: shared (kind, value) pairs count on both sides.
    let ev_a = evidence_set(a);
    let ev_b = evidence_set(b);
    let mut shared_secret = false;
    let mut sdk_environment = 0.0;
    for (side, mine, other, mass) in [
        (0, &ev_a, &ev_b, &mut mass_a),
        (1, &ev_b, &ev_a, &mut mass_b),
    ] {
        for (&(kind, value), e) in mine {
            let item = format!("ev:{}:{value}", kind.as_str());
            let rarity = w.rarity(&item);
            let weight = evidence_weight(kind) * rarity;
            let cat = Category::of_evidence(kind);
            let shared = other.get(&(kind, value));
            mass.add(cat, weight, if shared.is_some() { weight } else { 0.0 });
            if side == 0
                && let Some(o) = shared
            {
                if matches!(kind, Kind::PrivateKey | Kind::Certificate) && rarity >= 0.5 {
                    shared_secret = true;
                }
                if is_sdk_environment(kind) {
                    sdk_environment += weight;
                }
                raw_findings.push((
                    weight,
                    Finding {
                        strength: 0.0,
                        category: cat,
                        what: format!("shared_{}", kind.as_str()),
                        a_path: e.path.clone(),
                        b_path: o.path.clone(),
                        similarity: 1.0,
                        rarity,
                        component_factor: 1.0,
                        value: Some(value.to_owned()),
                        ssdeep: None,
                        tlsh: None,
                        identifier_tlsh: None,
                        sections: Vec::new(),
                        packed: false,
                    },
                ));
            }
        }
    }

    let mut sub = SubScores::default();
    let mut num = 0.0;
    let mut den = 0.0;
    let mut cat_norm: HashMap<Category, f64> = HashMap::new();
    for c in Category::ALL {
        let v = match (mass_a.share(c), mass_b.share(c)) {
            (Some(x), Some(y)) => Some(harmonic(x, y)),
            _ => None,
        };
        sub.set(c, v.map(|v| round1(v * 100.0)));
        if let Some(v) = v {
            num += c.weight(t) * v;
            den += c.weight(t);
            let ta = mass_a.total.get(&c).copied().unwrap_or(0.0);
            let tb = mass_b.total.get(&c).copied().unwrap_or(0.0);
            cat_norm.insert(c, c.weight(t) / (ta.max(tb).max(f64::MIN_POSITIVE)));
        }
    }
    let mut score = if den > 0.0 { 100.0 * num / den } else { 0.0 };
    if shared_secret {
        score = score.max(t.shared_secret_floor);
    }
    let score = round1(score.clamp(0.0, 100.0));
    let sdk_share = harmonic(
        sdk_a.share(Category::Code).unwrap_or(0.0),
        sdk_b.share(Category::Code).unwrap_or(0.0),
    );

    // Strength: a finding's mass over its category's material, times the category's share of
    // the weights, in score points.
    let mut evidence: Vec<Finding> = raw_findings
        .into_iter()
        .map(|(m, mut f)| {
            let norm = cat_norm.get(&f.category).copied().unwrap_or(0.0);
            f.strength = round2(100.0 * m * norm / den.max(f64::MIN_POSITIVE));
            f
        })
        .collect();
    evidence.sort_by(|x, y| {
        y.strength
            .total_cmp(&x.strength)
            .then_with(|| x.a_path.cmp(&y.a_path))
            .then_with(|| x.what.cmp(&y.what))
    });

    let label_a = VendorLabel::of(a, ctx.labels_a);
    let label_b = VendorLabel::of(b, ctx.labels_b);
    let same_vendor = label_a.same_as(&label_b);
    let verdict = verdict::decide(
        &Signals {
            score,
            sdk_share,
            sdk_environment,
            identified_share: content_share(a).min(content_share(b)),
            same_vendor,
        },
        t,
    );
    let matched_b: HashSet<usize> = matches.iter().map(|m| m.b).collect();
    let side = |fp: &Fingerprint, label: VendorLabel, matched: usize| Side {
        name: fp.image.name.clone(),
        sha256: fp.image.sha256.clone(),
        label,
        identified_share: fp.coverage.identified_share,
        identified_content_share: round3(content_share(fp)),
        opaque_share: fp.coverage.opaque_share,
        files: fp.files.iter().filter(|f| !f.unpacked).count(),
        matched_files: matched,
    };
    Comparison {
        schema_version: COMPARISON_SCHEMA_VERSION,
        a: side(a, label_a, by_a.len()),
        b: side(b, label_b, matched_b.len()),
        score,
        verdict,
        sub_scores: sub,
        sdk_share: round3(sdk_share),
        sdk_environment: round3(sdk_environment),
        rarity_source: ctx.docfreq_source.to_owned(),
        shared_secret,
        identical_files: matches
            .iter()
            .filter(|m| m.kind == MatchKind::Identical)
            .count(),
        similar_files: matches
            .iter()
            .filter(|m| m.kind == MatchKind::Fuzzy)
            .count(),
        evidence,
    }
}

/// Per-category amounts in [`Category::ALL`] order (material totals or matched masses), for
/// [`upper_bound`].
pub(crate) type PerCategory = [f64; 5];

/// Position of a category in [`PerCategory`].
pub(crate) fn category_index(c: Category) -> usize {
    match c {
        Category::Code => 0,
        Category::Data => 1,
        Category::WebConfig => 2,
        Category::Crypto => 3,
        Category::Platform => 4,
    }
}

/// What [`upper_bound`] knows of one file: its category and the mass `score` gives it in its
/// own image (size weight × rarity × component factor).
pub(crate) fn file_material(w: &Weigher<'_>, f: &FileFeatures) -> (usize, f64) {
    let mass =
        Weigher::size_weight(f.size) * w.rarity(&format!("file:{}", f.sha256)) * w.file_factor(f);
    (category_index(Category::of_file(f)), mass)
}

/// The largest similarity a fuzzy match can have: 1, unless the thresholds weigh TLSH or the
/// identifier digest above it.
pub(crate) fn max_similarity(t: &Thresholds) -> f64 {
    1.0_f64.max(t.tlsh_weight).max(t.identifier_cap)
}

/// The most a fuzzy match can add to image A's matched mass for file `f` of A: its size weight
/// × its component factor × the largest rarity any item can have (the counterpart's rarity
/// counts, not the file's own) × [`max_similarity`].
pub(crate) fn fuzzy_mass_cap(w: &Weigher<'_>, f: &FileFeatures) -> f64 {
    let t = w.thresholds;
    Weigher::size_weight(f.size)
        * w.file_factor(f)
        * t.rarity_floor.max(1.0)
        * t.discount_factor.max(1.0)
        * max_similarity(t)
}

/// An image's material per category, as `score` totals it (files that are not containers and
/// the evidence items that score).
pub(crate) fn material(w: &Weigher<'_>, fp: &Fingerprint) -> PerCategory {
    let mut out = [0.0; 5];
    for f in fp.files.iter().filter(|f| !f.unpacked) {
        let (c, m) = file_material(w, f);
        if let Some(x) = out.get_mut(c) {
            *x += m;
        }
    }
    for (kind, value) in evidence_set(fp).into_keys() {
        let (c, weight) = evidence_material(w, kind, value);
        if let Some(x) = out.get_mut(c) {
            *x += weight;
        }
    }
    out
}

/// The category and weight `score` gives a shared evidence item on either side, or `None` for
/// kinds that label rather than score (vendor, product, build date).
pub(crate) fn scoring_evidence(w: &Weigher<'_>, kind: Kind, value: &str) -> Option<(usize, f64)> {
    (!matches!(kind, Kind::Vendor | Kind::Product | Kind::BuildDate))
        .then(|| evidence_material(w, kind, value))
}

fn evidence_material(w: &Weigher<'_>, kind: Kind, value: &str) -> (usize, f64) {
    let item = format!("ev:{}:{value}", kind.as_str());
    (
        category_index(Category::of_evidence(kind)),
        evidence_weight(kind) * w.rarity(&item),
    )
}

/// Whether sharing this evidence item raises the score to `shared_secret_floor` (as `score`
/// decides it).
pub(crate) fn is_shared_secret(w: &Weigher<'_>, kind: Kind, value: &str) -> bool {
    matches!(kind, Kind::PrivateKey | Kind::Certificate)
        && w.rarity(&format!("ev:{}:{value}", kind.as_str())) >= 0.5
}

/// An upper bound of the score `score` gives A against B (rounded as the score is, so that
/// `score ≤ bound` holds for the reported value), from both images' material per category
/// (`total_a`, `total_b`, exact) and upper bounds of their matched masses (`matched_a`,
/// `matched_b`), and whether a shared secret is possible. Each sub-score is the harmonic mean
/// of the two matched shares, which grows with either share, and the score is their weighted
/// mean over the categories both images have material for (known exactly from the totals), so
/// bounding the shares bounds the score. `f64::INFINITY` when a category weight is negative or
/// not a number (the mean is then not monotone).
pub(crate) fn upper_bound(
    total_a: &PerCategory,
    total_b: &PerCategory,
    matched_a: &PerCategory,
    matched_b: &PerCategory,
    secret: bool,
    t: &Thresholds,
) -> f64 {
    let mut num = 0.0;
    let mut den = 0.0;
    for (k, c) in Category::ALL.into_iter().enumerate() {
        let w = c.weight(t);
        if w.is_nan() || w < 0.0 {
            return f64::INFINITY;
        }
        let (Some(&ta), Some(&tb), Some(&ma), Some(&mb)) = (
            total_a.get(k),
            total_b.get(k),
            matched_a.get(k),
            matched_b.get(k),
        ) else {
            return f64::INFINITY;
        };
        if ta > 0.0 && tb > 0.0 {
            num += w * harmonic(ma / ta, mb / tb);
            den += w;
        }
    }
    let mut score = if den > 0.0 { 100.0 * num / den } else { 0.0 };
    if secret {
        score = score.max(t.shared_secret_floor);
    }
    if score.is_nan() {
        return f64::INFINITY;
    }
    // Slack for summation order, then rounded like the score.
    round1((score * (1.0 + 1e-9) + 1e-9).clamp(0.0, 100.0))
}

/// A Linux kernel module (`ET_REL` with `.modinfo`, class [`ContentClass::ElfKernelModule`]).
fn is_kernel_module(f: &FileFeatures) -> bool {
    f.class == ContentClass::ElfKernelModule
}

/// Whether a matched file can stand for a shared chip SDK (`sdk_share`): code in which no
/// open-source component was recognised, and every kernel module — a module's vermagic names
/// Linux, but the module is the chip vendor's driver.
fn sdk_candidate(f: &FileFeatures) -> bool {
    f.components.is_empty() || is_kernel_module(f)
}

/// Evidence of the build environment a chip SDK leaves in the code built with it: the SDK's
/// build paths, the SoC it names, its toolchain. Shared open-source libraries bring none of it
/// (or only a toolchain every vendor of a distribution shares, which rarity discounts).
fn is_sdk_environment(kind: Kind) -> bool {
    matches!(kind, Kind::BuildPath | Kind::Soc | Kind::Toolchain)
}

/// `identified_bytes / (image_bytes − padding_bytes)` (1 for an image that is all padding).
pub fn content_share(fp: &Fingerprint) -> f64 {
    let c = &fp.coverage;
    let content = c.image_bytes.saturating_sub(c.padding_bytes);
    if content == 0 {
        1.0
    } else {
        (c.identified_bytes as f64 / content as f64).min(1.0)
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
