//! The corpus: fingerprints of known images with their labels, kept in one embedded database
//! file, and what the comparison stage loads from it.
//!
//! The database ([`Corpus`], SQLite in WAL mode: many readers while one process adds) is marked
//! by `PRAGMA application_id` = [`schema::APPLICATION_ID`] and `PRAGMA user_version` =
//! [`schema::SCHEMA_VERSION`]; anything else is refused unmodified. Its tables:
//! - `meta(name, value)`: the fingerprint `Params` (JSON) every image was made with, the
//!   fingerprint schema version, the creating fwsim version;
//! - `families(id, name)`: groups of images that are the same software (rarity counts these);
//! - `images(id, sha256 UNIQUE, name, size, vendor, product, fw_version, family_id, added, files,
//!   fp_len, fingerprint)`: the fingerprint is zstd-compressed JSON (`fp_len` its plain length);
//! - `tags(image_id, tag)`;
//! - `keys(id, key UNIQUE, counted, families)`: every key `find` looks up, prefixed by kind
//!   (`file:`, `section:`, `ev:<kind>:`, `container:`, `ssdeep:`, `tlsh:`, `path:`); for the
//!   counted ones — exactly [`crate::compare::rarity::items`] — `families` is the stored document
//!   frequency, raised when an image joins a family that did not hold the key yet and lowered when
//!   the last image of a family holding it leaves;
//! - `postings(key_id, image_id, path, detail)`: where each key occurs.
//!
//! Every add, removal, family move and import is one transaction: a killed process leaves the
//! database as it was before.

pub mod db;
pub mod find;
pub mod schema;
pub mod transfer;

pub use db::{AddOutcome, Corpus, CorpusError, ImageRow};
pub use find::{FindHit, FindMatch, Query};
pub use transfer::ImportOutcome;

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
