//! Image-vs-image similarity: which files of two fingerprints correspond and how closely
//! ([`matching`]), how rare each shared item is across families ([`rarity`]), and the score,
//! sub-scores, verdict and evidence that follow from them.

pub mod background;
pub mod cluster;
pub mod index;
pub mod matching;
pub mod rarity;
pub mod report;
pub mod score;
pub mod thresholds;
pub mod verdict;
pub mod weights;

pub use matching::{PreparedFile, file_similarity, pair};
pub use score::{Comparison, Finding, ScoreContext, SubScores, score};
pub use thresholds::Thresholds;
pub use verdict::{LabelSource, VendorLabel, Verdict};
pub use weights::Discount;

use serde::{Deserialize, Serialize};

use crate::fingerprint;

/// How a file of image A corresponds to a file of image B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// Same SHA-256.
    Identical,
    /// Different bytes, similar by fuzzy digests (whole file, ELF sections or identifiers).
    Fuzzy,
}

/// One matched ELF section (by name) of a fuzzy ELF match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SectionMatch {
    /// Section name (`.text`, `.rodata` …).
    pub name: String,
    /// Sizes on the A and B side.
    pub size: (u64, u64),
    /// Same SHA-256.
    pub identical: bool,
    /// ssdeep score 0–100, when both sides carry a comparable digest.
    pub ssdeep: Option<u32>,
    /// TLSH distance (with the length term), when both sides carry a digest.
    pub tlsh: Option<u32>,
    /// Similarity 0–1 derived from the above.
    pub similarity: f64,
}

/// A file of image A and its best counterpart in image B.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileMatch {
    /// Index into A's `files`.
    pub a: usize,
    /// Index into B's `files`.
    pub b: usize,
    /// Identical or fuzzy.
    pub kind: MatchKind,
    /// Overall similarity 0–1 of the two files (1 for identical).
    pub similarity: f64,
    /// Whole-file ssdeep score, when both digests are comparable.
    pub ssdeep: Option<u32>,
    /// Whole-file TLSH distance (with the length term), when both have a digest.
    pub tlsh: Option<u32>,
    /// TLSH distance of the ELF identifier digests, for ELF pairs that carry them.
    pub identifier_tlsh: Option<u32>,
    /// Matched sections, for ELF pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<SectionMatch>,
    /// An ELF pair of which one side is packed (UPX): compared as whole files, left out of
    /// code scores.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub packed: bool,
}

/// Matches and scores image `a` against image `b`: [`pair`] then [`score()`].
pub fn compare(
    a: &fingerprint::Fingerprint,
    b: &fingerprint::Fingerprint,
    ctx: &ScoreContext<'_>,
) -> Comparison {
    let matches = pair(a, b, ctx.thresholds);
    score(a, b, &matches, ctx)
}
