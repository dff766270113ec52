//! The verdict on a pair of images and the vendor labels it rests on: which label each side
//! carries and where it came from (given at `corpus add`, or the strongest vendor candidate of
//! its evidence), and the decision rule from score, SDK share and coverage.

use serde::{Deserialize, Serialize};

use super::thresholds::Thresholds;
use crate::corpus::Labels;
use crate::features::evidence::vendor;
use crate::fingerprint::Fingerprint;

/// What two images are to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The same software under a different vendor label.
    Rebrand,
    /// The same software and the same vendor: another product or version.
    SameVendor,
    /// Only a chip vendor's SDK (and common open-source components) in common.
    SharedSdk,
    /// Nothing of weight in common beyond common open-source components.
    Unrelated,
    /// Too little of either image could be unpacked and identified to judge.
    Inconclusive,
}

impl Verdict {
    /// The name used in text and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Rebrand => "rebrand",
            Verdict::SameVendor => "same-vendor",
            Verdict::SharedSdk => "shared-sdk",
            Verdict::Unrelated => "unrelated",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Where a vendor label came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// Given by the analyst (`--vendor` at `corpus add`).
    Given,
    /// The strongest vendor candidate of the image's evidence.
    Evidence,
    /// No label and no vendor candidate.
    None,
}

/// The vendor label used for one side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VendorLabel {
    /// The label as given or as found (display spelling).
    pub vendor: Option<String>,
    /// The folded name compared across sides (`features::evidence::vendor::normalize`).
    pub normalized: Option<String>,
    /// Where it came from.
    pub source: LabelSource,
    /// The candidate's score, for labels taken from evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_score: Option<f64>,
}

impl VendorLabel {
    /// The label of an image: the given vendor when there is one, else its strongest vendor
    /// candidate.
    pub fn of(fp: &Fingerprint, labels: Option<&Labels>) -> Self {
        if let Some(v) = labels
            .and_then(|l| l.vendor.as_deref())
            .filter(|v| !v.is_empty())
        {
            let n = vendor::normalize(v);
            return Self {
                vendor: Some(v.to_owned()),
                normalized: Some(if n.is_empty() { v.to_lowercase() } else { n }),
                source: LabelSource::Given,
                candidate_score: None,
            };
        }
        match vendor::candidates(&fp.evidence).into_iter().next() {
            Some(c) => Self {
                vendor: Some(c.display),
                normalized: Some(c.name),
                source: LabelSource::Evidence,
                candidate_score: Some(c.score),
            },
            None => Self {
                vendor: None,
                normalized: None,
                source: LabelSource::None,
                candidate_score: None,
            },
        }
    }

    /// Whether two labels name the same vendor (both known and equal after folding).
    pub fn same_as(&self, other: &Self) -> bool {
        matches!((&self.normalized, &other.normalized), (Some(a), Some(b)) if a == b)
    }
}

/// The inputs of the decision.
#[derive(Clone, Copy, Debug)]
pub struct Signals {
    /// Overall score 0–100.
    pub score: f64,
    /// Rarity-weighted share of code outside open-source components and of kernel modules
    /// matched, 0–1.
    pub sdk_share: f64,
    /// Rarity-weighted mass of the shared SDK build environment (build paths, SoC names,
    /// toolchains), in evidence-weight units.
    pub sdk_environment: f64,
    /// The smaller identified share of non-padding bytes of the two images.
    pub identified_share: f64,
    /// Both labels name the same vendor.
    pub same_vendor: bool,
}

/// The rule: `inconclusive` below the coverage threshold on either side; at or above
/// `same_software`, `same-vendor` when both labels name the same vendor and `rebrand` otherwise
/// (an unknown vendor does not show it is the same one); below it, `shared-sdk` when code outside
/// open-source components or kernel modules are shared (`sdk_share`) *and* the images share the build environment a
/// chip SDK leaves behind (`sdk_environment`: its build paths, SoC names, toolchain), else
/// `unrelated` — two vendors linking the same Debian or open-source libraries share code, not an
/// SDK.
pub fn decide(s: &Signals, t: &Thresholds) -> Verdict {
    if s.identified_share < t.min_identified_share {
        Verdict::Inconclusive
    } else if s.score >= t.same_software {
        if s.same_vendor {
            Verdict::SameVendor
        } else {
            Verdict::Rebrand
        }
    } else if s.sdk_share >= t.sdk_share && s.sdk_environment >= t.sdk_environment {
        Verdict::SharedSdk
    } else {
        Verdict::Unrelated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_order() {
        let t = Thresholds::default();
        let s = |score, sdk_share, identified_share, same_vendor| Signals {
            score,
            sdk_share,
            sdk_environment: 5.0,
            identified_share,
            same_vendor,
        };
        assert_eq!(decide(&s(99.0, 1.0, 0.01, true), &t), Verdict::Inconclusive);
        assert_eq!(decide(&s(90.0, 1.0, 0.9, false), &t), Verdict::Rebrand);
        assert_eq!(decide(&s(90.0, 1.0, 0.9, true), &t), Verdict::SameVendor);
        assert_eq!(decide(&s(20.0, 0.3, 0.9, true), &t), Verdict::SharedSdk);
        assert_eq!(decide(&s(20.0, 0.0, 0.9, false), &t), Verdict::Unrelated);
        // Shared code without an SDK's build environment (common libraries): unrelated.
        let no_env = Signals {
            sdk_environment: 0.1,
            ..s(20.0, 0.3, 0.9, false)
        };
        assert_eq!(decide(&no_env, &t), Verdict::Unrelated);
    }
}
