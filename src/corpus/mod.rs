//! The corpus: fingerprints of known images with their labels, kept in one embedded database
//! file, and what the comparison stage loads from it.

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;

/// What an analyst says about an image when adding it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    /// Vendor label (`--vendor`).
    pub vendor: Option<String>,
    /// Product (`--product`).
    pub product: Option<String>,
    /// Firmware version (`--fw-version`).
    pub fw_version: Option<String>,
    /// Free tags (`--tag`, repeatable).
    pub tags: Vec<String>,
}

/// One image of the corpus as loaded for comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Database id.
    pub id: i64,
    /// Labels given when added.
    pub labels: Labels,
    /// The family it belongs to: images known or judged to be the same software. Rarity is
    /// counted over families.
    pub family: String,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}
