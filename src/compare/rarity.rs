//! Rarity of shared items across families: the items of a fingerprint that a corpus counts
//! ([`items`]) and their document frequencies over families ([`DocFreq`]). A match is weighted by
//! how few families hold its item, never by how many images or vendor labels do.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;

/// The countable items of one image, each a string key with a kind prefix:
/// `file:<sha256>` for every unique file that is not a container, `section:<sha256>` for every
/// ELF section digested at or above the section floor, and `ev:<kind>:<value>` for every evidence
/// item. Sorted and unique.
pub fn items(fp: &Fingerprint) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in fp.files.iter().filter(|f| !f.unpacked) {
        out.insert(format!("file:{}", f.sha256));
        if let Some(elf) = &f.elf {
            for s in elf
                .sections
                .iter()
                .filter(|s| s.ssdeep.is_some() || s.tlsh.is_some())
            {
                out.insert(format!("section:{}", s.sha256));
            }
        }
    }
    for e in &fp.evidence {
        out.insert(format!("ev:{}:{}", e.kind.as_str(), e.value));
    }
    out
}

/// Document frequencies over families: for each item, how many families hold it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DocFreq {
    /// Number of families counted.
    pub families: u32,
    /// Item key ([`items`]) → number of families holding it (items held by none are absent).
    pub counts: HashMap<String, u32>,
}

impl DocFreq {
    /// How many families hold `item`.
    pub fn get(&self, item: &str) -> u32 {
        self.counts.get(item).copied().unwrap_or(0)
    }

    /// Document frequencies of images grouped into families: an item counts once per family
    /// however many of the family's images hold it.
    pub fn from_families<'a>(images: impl IntoIterator<Item = (&'a str, &'a Fingerprint)>) -> Self {
        let mut families: HashMap<&str, BTreeSet<String>> = HashMap::new();
        for (family, fp) in images {
            families.entry(family).or_default().extend(items(fp));
        }
        let mut counts: HashMap<String, u32> = HashMap::new();
        for held in families.values() {
            for item in held {
                *counts.entry(item.clone()).or_default() += 1;
            }
        }
        Self {
            families: u32::try_from(families.len()).unwrap_or(u32::MAX),
            counts,
        }
    }
}
