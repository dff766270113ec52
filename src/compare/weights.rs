//! How much a shared item counts: its rarity across families from a [`DocFreq`] (idf over
//! families), times a small factor for open-source components and for entries of the user's
//! discount list, times its size or kind weight.

use std::collections::BTreeSet;

use super::rarity::DocFreq;
use super::thresholds::Thresholds;
use crate::features::evidence::Kind;
use crate::fingerprint::FileFeatures;

/// The user's discount list: item keys (`file:<sha256>`, `section:<sha256>`,
/// `ev:<kind>:<value>`), bare SHA-256 values or key fingerprints, and component names
/// (`busybox`), one per line; `#` starts a comment. Listed items count for
/// `discount_factor` only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discount {
    entries: BTreeSet<String>,
}

impl Discount {
    /// Parses the list (blank lines and `#` comments ignored; entries compared lower-case).
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .map(|l| {
                l.split('#')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|l| !l.is_empty())
            .collect();
        Self { entries }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` (an item key, a bare value or a component name) is listed.
    pub fn contains(&self, key: &str) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let key = key.to_ascii_lowercase();
        if self.entries.contains(&key) {
            return true;
        }
        // An item key also matches by its bare value (`file:<sha>` by `<sha>`).
        key.rsplit_once(':')
            .is_some_and(|(_, v)| self.entries.contains(v))
    }
}

/// Rarity and weight of items, from document frequencies, the discount list and thresholds.
#[derive(Clone, Copy, Debug)]
pub struct Weigher<'a> {
    /// Document frequencies over families.
    pub docfreq: &'a DocFreq,
    /// The user's discount list.
    pub discount: &'a Discount,
    /// Thresholds (`rarity_floor`, `component_factor`, `discount_factor`).
    pub thresholds: &'a Thresholds,
}

impl Weigher<'_> {
    /// Rarity 0–1 of an item from the families holding it: `ln(N / df) / ln(N)` for `N`
    /// families counted and `df ≥ 2` holding it, floored at `rarity_floor`; 1 for an item held by
    /// at most one family or when fewer than two families are counted; times `discount_factor`
    /// when the item is on the discount list.
    pub fn rarity(&self, item: &str) -> f64 {
        let n = self.docfreq.families;
        let df = self.docfreq.get(item).min(n);
        let r = if n < 2 || df < 2 {
            1.0
        } else {
            (f64::from(n) / f64::from(df)).ln() / f64::from(n).ln()
        };
        let r = r.max(self.thresholds.rarity_floor);
        if self.discount.contains(item) {
            r * self.thresholds.discount_factor
        } else {
            r
        }
    }

    /// Factor of a file: `component_factor` when an open-source component was recognised in it
    /// (`discount_factor` instead when that component is on the discount list), else 1.
    pub fn file_factor(&self, f: &FileFeatures) -> f64 {
        if f.components.is_empty() {
            1.0
        } else if f
            .components
            .iter()
            .any(|c| self.discount.contains(&c.component))
        {
            self.thresholds.discount_factor
        } else {
            self.thresholds.component_factor
        }
    }

    /// Information weight of a file by size: `ln(1 + size / 64)` (a 64 KiB binary weighs about
    /// 7, a 1 KiB script about 3).
    pub fn size_weight(size: u64) -> f64 {
        (1.0 + size as f64 / 64.0).ln()
    }
}

/// Weight of a shared evidence item of `kind`, in the units of [`Weigher::size_weight`]: keys,
/// certificates and kernel configurations count like a large file, build paths and password
/// hashes like a script, toolchains and image names barely.
pub fn evidence_weight(kind: Kind) -> f64 {
    match kind {
        Kind::PrivateKey | Kind::Certificate => 10.0,
        Kind::PublicKey | Kind::KernelConfig => 6.0,
        Kind::PasswordHash | Kind::DeviceTree => 4.0,
        Kind::BuildPath | Kind::Soc => 3.0,
        Kind::BuildUser | Kind::BuildHost | Kind::KernelVersion | Kind::Bootloader => 2.0,
        Kind::Vendor | Kind::Product | Kind::BuildDate => 1.0,
        Kind::Toolchain | Kind::ImageName => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rarity_is_idf_over_families_with_floor_and_discount() {
        let mut df = DocFreq {
            families: 8,
            ..DocFreq::default()
        };
        df.counts.insert("file:common".into(), 8);
        df.counts.insert("file:half".into(), 4);
        df.counts.insert("file:one".into(), 1);
        let discount =
            Discount::parse("# known SDK key\nEV:PRIVATE_KEY:abc\n\nfile:one # listed\n");
        let t = Thresholds::default();
        let w = Weigher {
            docfreq: &df,
            discount: &discount,
            thresholds: &t,
        };
        assert_eq!(w.rarity("file:absent"), 1.0);
        assert_eq!(w.rarity("file:common"), t.rarity_floor);
        assert!((w.rarity("file:half") - 2f64.ln() / 8f64.ln()).abs() < 1e-9);
        assert_eq!(w.rarity("file:one"), t.discount_factor);
        assert_eq!(w.rarity("ev:private_key:abc"), t.discount_factor);
        assert_eq!(discount.len(), 2);
    }
}
