//! Every number the comparison stage decides with, in one place: how fuzzy-digest scores become
//! similarities, when a counterpart is a match, how sub-scores are weighted and where the verdicts
//! change. The decision thresholds (`same_software`, `sdk_environment`, `sdk_share`) and the
//! identifier digest's range are calibrated on the reference corpus's `fit` split (`corpus/`,
//! `fwsim-corpus fit`; procedure in corpus/README.md); the others on the image pairs fwsim's own
//! writers build (`tests/compare.rs`) and the real samples. A user's file (`--thresholds`, JSON)
//! overrides any subset of the fields.

use serde::{Deserialize, Serialize};

/// The thresholds and weights of matching, scoring and verdicts. Every field has a documented
/// default ([`Thresholds::default`]); a JSON object with some of the fields overrides those.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// TLSH distance (with the length term) at or above which two digests count as dissimilar;
    /// below it the similarity falls linearly from 1 at distance 0 to 0 here. TLSH distances of
    /// unrelated files of the same kind are typically 100–300; near-duplicates fall below 30.
    pub tlsh_zero: u32,
    /// Weight of a TLSH-only similarity relative to ssdeep: TLSH also rates files with the same
    /// byte statistics as close (two unrelated code sections made by one compiler), ssdeep does
    /// not, so TLSH alone never claims a full match.
    pub tlsh_weight: f64,
    /// Where ssdeep compares the two and finds nothing in common (score 0), TLSH still counts
    /// only at or below this distance (near-duplicates whose ssdeep pieces fell out of step).
    pub tlsh_alone_max: u32,
    /// Similarity below which a counterpart is no match at all.
    pub file_match_min: f64,
    /// Cap on an ELF match resting on the identifier digest alone (recompiled binary: sections
    /// differ, names and strings survive).
    pub identifier_cap: f64,
    /// TLSH distance of identifier digests at which their similarity reaches 0. Unrelated
    /// programs share libc names and common strings and land near 60, where
    /// `identifier_cap × (1 − 60 / 90)` stays below `file_match_min`; a program rebuilt with other
    /// compiler flags and its vendor strings replaced lands at 5–35. Calibrated on the reference
    /// corpus's `fit` split: of 50, 70 and 90, the value that best separates same-family from
    /// other-family pairs (lowest same-family score 39.9, 42.1, 47.6 against highest other 29.8).
    pub identifier_tlsh_zero: u32,
    /// Section weights by name (`.text`, `.rodata`, `.data`); other sections weigh
    /// `section_other_weight` per byte.
    pub section_text_weight: f64,
    /// See `section_text_weight`.
    pub section_rodata_weight: f64,
    /// See `section_text_weight`.
    pub section_data_weight: f64,
    /// See `section_text_weight`.
    pub section_other_weight: f64,
    /// Rarity factor of a file in which `features::components` recognised an open-source
    /// component (busybox, uClibc, OpenSSL …): such files count for this little in every case.
    pub component_factor: f64,
    /// Rarity factor of an item on the user's discount list.
    pub discount_factor: f64,
    /// Smallest rarity weight of an item held by every family.
    pub rarity_floor: f64,
    /// Weights of the sub-scores in the overall score (renormalised over the sub-scores both
    /// images have material for).
    pub weight_code: f64,
    /// See `weight_code`.
    pub weight_data: f64,
    /// See `weight_code`.
    pub weight_web: f64,
    /// See `weight_code`.
    pub weight_crypto: f64,
    /// See `weight_code`.
    pub weight_platform: f64,
    /// Score floor when the images share a private key or a certificate that is neither
    /// discounted nor common: very strong evidence of the same software.
    pub shared_secret_floor: f64,
    /// Identified share of an image's non-padding bytes (`identified_bytes / (image_bytes −
    /// padding_bytes)`) below which it is too opaque to judge: verdict `inconclusive`.
    pub min_identified_share: f64,
    /// Score (0–100) at or above which the images are the same software (`rebrand` or
    /// `same-vendor`). Calibrated on the reference corpus's `fit` split: midway between the
    /// highest other-family score (29.8, two vendors sharing a chip SDK) and the lowest
    /// same-family one (47.6, a rebrand rebuilt with other compiler flags and new keys).
    pub same_software: f64,
    /// Share (0–1, rarity-weighted, both sides) of the images' code and kernel modules matched by
    /// files that are not open-source components (kernel modules always count), at or above which sharing a chip SDK is claimed (`shared-sdk`)
    /// when the score stays below `same_software` and `sdk_environment` is reached too.
    /// Calibrated on the reference corpus's `fit` split: half the lowest share of a `shared-sdk`
    /// pair (0.242), as no unrelated pair passing `sdk_environment` is left to separate.
    pub sdk_share: f64,
    /// Rarity-weighted mass of shared SDK build environment (build paths, SoC names,
    /// toolchains: evidence weight × rarity, summed) at or above which shared code is put down to
    /// a shared chip SDK; below it, code shared under `same_software` is common open-source
    /// libraries and the verdict is `unrelated`. Calibrated on the reference corpus's `fit`
    /// split: midway between the highest unrelated pair (0.18, a distribution's toolchain
    /// string) and the lowest `shared-sdk` pair (1.58).
    pub sdk_environment: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            tlsh_zero: 100,
            tlsh_weight: 0.8,
            tlsh_alone_max: 12,
            file_match_min: 0.3,
            identifier_cap: 0.8,
            identifier_tlsh_zero: 90,
            section_text_weight: 1.0,
            section_rodata_weight: 1.0,
            section_data_weight: 0.5,
            section_other_weight: 0.1,
            component_factor: 0.05,
            discount_factor: 0.02,
            rarity_floor: 0.05,
            weight_code: 0.45,
            weight_data: 0.15,
            weight_web: 0.2,
            weight_crypto: 0.1,
            weight_platform: 0.1,
            shared_secret_floor: 80.0,
            min_identified_share: 0.3,
            same_software: 38.7,
            sdk_share: 0.121,
            sdk_environment: 0.88,
        }
    }
}

impl Thresholds {
    /// Reads a JSON object overriding some of the defaults; unknown fields are refused.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Similarity 0–1 from a TLSH distance: 1 at 0, falling linearly to 0 at `tlsh_zero`.
    pub fn tlsh_similarity(&self, distance: u32) -> f64 {
        let zero = f64::from(self.tlsh_zero.max(1));
        (1.0 - f64::from(distance) / zero).clamp(0.0, 1.0)
    }

    /// Similarity 0–1 of two identifier digests: 1 at 0, linearly to 0 at `identifier_tlsh_zero`.
    pub fn identifier_similarity(&self, distance: u32) -> f64 {
        let zero = f64::from(self.identifier_tlsh_zero.max(1));
        (1.0 - f64::from(distance) / zero).clamp(0.0, 1.0)
    }

    /// Similarity 0–1 of two digested blobs: the ssdeep score over 100 where there is one, the
    /// TLSH similarity times `tlsh_weight` where there is one, the larger of the two — except
    /// that where ssdeep scores 0, TLSH counts only at or below `tlsh_alone_max`; `None` when
    /// neither digest is comparable.
    pub fn digest_similarity(&self, ssdeep: Option<u32>, tlsh: Option<u32>) -> Option<f64> {
        let s = ssdeep.map(|s| f64::from(s.min(100)) / 100.0);
        let tlsh = match ssdeep {
            Some(0) => tlsh.filter(|&d| d <= self.tlsh_alone_max),
            _ => tlsh,
        };
        let t = tlsh.map(|d| self.tlsh_similarity(d) * self.tlsh_weight);
        match (s, t) {
            (Some(s), Some(t)) => Some(s.max(t)),
            (s, t) => s.or(t),
        }
    }

    /// Weight per byte of an ELF section named `name`.
    pub fn section_weight(&self, name: &str) -> f64 {
        match name {
            ".text" => self.section_text_weight,
            ".rodata" => self.section_rodata_weight,
            ".data" => self.section_data_weight,
            _ => self.section_other_weight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlsh_similarity_is_linear_to_zero() {
        let t = Thresholds::default();
        assert_eq!(t.tlsh_similarity(0), 1.0);
        assert!((t.tlsh_similarity(50) - 0.5).abs() < 1e-9);
        assert_eq!(t.tlsh_similarity(100), 0.0);
        assert_eq!(t.tlsh_similarity(400), 0.0);
    }

    #[test]
    fn digest_similarity_prefers_ssdeep_and_caps_tlsh() {
        let t = Thresholds::default();
        assert_eq!(t.digest_similarity(None, None), None);
        assert_eq!(t.digest_similarity(Some(90), Some(400)), Some(0.9));
        assert_eq!(t.digest_similarity(Some(0), Some(0)), Some(0.8));
        assert_eq!(t.digest_similarity(None, Some(0)), Some(0.8));
        // ssdeep sees nothing in common: a middling TLSH distance does not count.
        assert_eq!(t.digest_similarity(Some(0), Some(30)), Some(0.0));
        assert!((t.digest_similarity(None, Some(30)).unwrap() - 0.56).abs() < 1e-9);
    }

    #[test]
    fn partial_override_keeps_other_defaults_and_refuses_unknown_fields() {
        let t = Thresholds::from_json(r#"{"same_software": 70}"#).unwrap();
        assert_eq!(t.same_software, 70.0);
        assert_eq!(t.tlsh_zero, Thresholds::default().tlsh_zero);
        assert!(Thresholds::from_json(r#"{"same_sofware": 70}"#).is_err());
    }
}
