//! Which files of two fingerprints correspond and how closely: digests parsed once per file
//! ([`PreparedFile`]), the similarity of two files ([`file_similarity`]) and, for every file of
//! image A, its best counterpart in image B ([`pair`]).
//!
//! The similarity of two files, 0–1:
//! - identical SHA-256: 1;
//! - different content classes: no match;
//! - ELF pairs whose code can be compared (neither UPX-packed): per-section similarity by section
//!   name — 1 for the same SHA-256, else [`Thresholds::digest_similarity`] of the sections'
//!   ssdeep score and TLSH distance (0 when neither is comparable) — averaged with weights
//!   `size × section weight` (`.text`, `.rodata` 1, `.data` 0.5, the rest 0.1; the larger size
//!   of the two sides; a section on one side only counts as 0); the identifier digest (TLSH of
//!   names and strings, which survives recompilation) gives `identifier_cap ×` its TLSH
//!   similarity (falling linearly from 1 at distance 0 to 0 at `identifier_tlsh_zero`); the
//!   file's similarity is the larger of the two, and the whole-file digests can only add;
//! - everything else, and packed ELF files (marked `packed`, left out of code scores): the
//!   whole-file [`Thresholds::digest_similarity`].
//!
//! Counterparts are looked for among candidates only ([`search_radii`]): beyond the whole-file
//! TLSH radius derived from the thresholds ([`whole_tlsh_radius`]) a file without ssdeep overlap
//! provably stays below `file_match_min`, so it is never scored; identical ELF sections make a
//! candidate only when their weighted size alone could lift the file to `file_match_min`
//! ([`shared_section_floor`]: a shared 4-byte `.fini` does not).

use std::collections::HashMap;

use super::thresholds::Thresholds;
use super::{FileMatch, MatchKind, SectionMatch};
use crate::features::class::ContentClass;
use crate::fingerprint::{FileFeatures, Fingerprint};
use crate::hash::{Ssdeep, SsdeepIndex, SsdeepPrepared, Tlsh};

/// One ELF section's digests, parsed.
#[derive(Clone, Debug)]
pub struct PreparedSection<'a> {
    /// Section name.
    pub name: &'a str,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: &'a str,
    /// ssdeep, parsed.
    pub ssdeep: Option<SsdeepPrepared>,
    /// TLSH, parsed.
    pub tlsh: Option<Tlsh>,
    /// [`key`] of `name`.
    name_key: u64,
    /// [`key`] of `sha256`.
    sha_key: u64,
}

/// A 64-bit FNV-1a hash of a string: equal strings have equal keys, so comparing keys first
/// skips most string comparisons in the inner loop without changing any outcome.
fn key(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A file's digests parsed once, for many comparisons.
#[derive(Clone, Debug)]
pub struct PreparedFile<'a> {
    /// The file's features.
    pub file: &'a FileFeatures,
    /// Whole-file ssdeep, parsed.
    pub ssdeep: Option<SsdeepPrepared>,
    /// Whole-file TLSH, parsed.
    pub tlsh: Option<Tlsh>,
    /// ELF sections (empty for other files).
    pub sections: Vec<PreparedSection<'a>>,
    /// ELF identifier digest.
    pub identifier: Option<Tlsh>,
    /// ELF file whose code can be compared section by section (not packed, parsed).
    pub code_comparable: bool,
    /// (name key, position in `sections`), sorted: lookups by name without string hashing.
    by_name: Vec<(u64, usize)>,
    /// No two sections share a name key (so no two share a name).
    unique_names: bool,
}

fn parse_ssdeep(s: Option<&String>) -> Option<SsdeepPrepared> {
    s.and_then(|s| s.parse::<Ssdeep>().ok())
        .map(|d| d.prepare())
}

fn parse_tlsh(s: Option<&String>) -> Option<Tlsh> {
    s.and_then(|s| s.parse::<Tlsh>().ok())
}

impl<'a> PreparedFile<'a> {
    /// Parses the digests of `file` (unparseable digests count as absent).
    pub fn new(file: &'a FileFeatures) -> Self {
        let (sections, identifier, code_comparable) = match &file.elf {
            Some(elf) => (
                elf.sections
                    .iter()
                    .map(|s| PreparedSection {
                        name: &s.name,
                        size: s.size,
                        sha256: &s.sha256,
                        ssdeep: parse_ssdeep(s.ssdeep.as_ref()),
                        tlsh: parse_tlsh(s.tlsh.as_ref()),
                        name_key: key(&s.name),
                        sha_key: key(&s.sha256),
                    })
                    .collect(),
                parse_tlsh(elf.identifier_digest.as_ref()),
                elf.code_comparable && elf.packer.is_none() && !elf.sections.is_empty(),
            ),
            None => (Vec::new(), None, false),
        };
        let mut by_name: Vec<(u64, usize)> = sections
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name_key, i))
            .collect();
        by_name.sort_unstable();
        let unique_names = by_name.windows(2).all(|w| match w {
            [x, y] => x.0 != y.0,
            _ => true,
        });
        Self {
            file,
            ssdeep: parse_ssdeep(file.digests.ssdeep.as_ref()),
            tlsh: parse_tlsh(file.digests.tlsh.as_ref()),
            sections,
            identifier,
            code_comparable,
            by_name,
            unique_names,
        }
    }

    /// The last section named like `s` (the one a map by name would keep).
    fn section_named(&self, s: &PreparedSection<'_>) -> Option<&PreparedSection<'a>> {
        let start = self.by_name.partition_point(|&(k, _)| k < s.name_key);
        let end = self.by_name.partition_point(|&(k, _)| k <= s.name_key);
        // Same key: the same name but for a hash collision; positions ascend, so the last
        // equal name is the last section of that name.
        self.by_name
            .get(start..end)?
            .iter()
            .rev()
            .filter_map(|&(_, i)| self.sections.get(i))
            .find(|o| o.name == s.name)
    }

    /// The file's content class.
    pub fn class(&self) -> ContentClass {
        self.file.class
    }
}

/// The largest TLSH distance below `tlsh_zero` at which two files' whole-file digests alone can
/// still make a match (similarity above 0 and at least `file_match_min`) when ssdeep does not
/// help — it scores 0 or cannot compare, which is all that is left for a file outside the ssdeep
/// index's hits; `None` when no distance can. Derived by evaluating
/// [`Thresholds::digest_similarity`] at every distance, so it follows the thresholds as given.
pub fn whole_tlsh_radius(t: &Thresholds) -> Option<u32> {
    (0..t.tlsh_zero).rev().find(|&d| {
        [None, Some(0)].into_iter().any(|s| {
            t.digest_similarity(s, Some(d))
                .is_some_and(|x| x > 0.0 && x >= t.file_match_min)
        })
    })
}

/// The TLSH radii (whole file, ELF identifier) within which `probe`'s fuzzy counterparts are
/// looked for; every file outside both, outside the ssdeep hits and not sharing enough section
/// bytes ([`shares_enough_sections`]) is no candidate.
///
/// A probe that is not comparable code (not ELF, or packed) is matched on whole-file digests
/// only, so [`whole_tlsh_radius`] bounds it and identifiers do not count. Comparable ELF code
/// can also match through its sections, whose digests are not indexed: for it the candidates
/// stay every file whose whole-file or identifier TLSH lies below `tlsh_zero`.
pub fn search_radii(probe: &PreparedFile<'_>, t: &Thresholds) -> (Option<u32>, Option<u32>) {
    if probe.class().is_elf() && probe.code_comparable {
        let r = t.tlsh_zero.checked_sub(1);
        (r, r)
    } else {
        (whole_tlsh_radius(t), None)
    }
}

/// The weighted size (`section weight × size`, summed in `probe`'s section order) that the
/// sections a file shares with `probe` by SHA-256 must reach to make it a candidate: with only
/// those sections matched (similarity 1) and every other section at 0, the section similarity
/// is at most their weighted size over `probe`'s total (`section_similarity` divides by at
/// least that), so below `file_match_min ×` the total they cannot lift the file to
/// `file_match_min` on their own. 0 (any shared section makes a candidate) when a weight or the
/// minimum is negative or not a number, where no such bound holds.
pub fn shared_section_floor(probe: &PreparedFile<'_>, t: &Thresholds) -> f64 {
    let weights = [
        t.section_text_weight,
        t.section_rodata_weight,
        t.section_data_weight,
        t.section_other_weight,
        t.file_match_min,
    ];
    if weights.iter().any(|w| w.is_nan() || *w < 0.0) {
        return 0.0;
    }
    let total: f64 = probe
        .sections
        .iter()
        .map(|s| t.section_weight(s.name) * s.size as f64)
        .sum();
    // A little slack so that rounding never turns a candidate away.
    let floor = t.file_match_min * total * (1.0 - 1e-9);
    if floor.is_finite() { floor } else { 0.0 }
}

/// Whether the sections `probe` shares with a file make it a candidate: at least one shared
/// section (of non-zero size) and their weighted sizes, summed in `probe`'s section order,
/// reach [`shared_section_floor`]. `shares(s)` answers whether the file holds a section with
/// the SHA-256 of `probe`'s section `s`.
pub fn shares_enough_sections(
    probe: &PreparedFile<'_>,
    t: &Thresholds,
    floor: f64,
    mut shares: impl FnMut(&PreparedSection<'_>) -> bool,
) -> bool {
    let mut any = false;
    let mut sum = 0.0;
    for s in probe.sections.iter().filter(|s| s.size > 0) {
        if shares(s) {
            any = true;
            sum += t.section_weight(s.name) * s.size as f64;
        }
    }
    any && sum >= floor
}

/// Every non-container file of a fingerprint, prepared, with its index in `files`.
pub fn prepare(fp: &Fingerprint) -> Vec<(usize, PreparedFile<'_>)> {
    fp.files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.unpacked)
        .map(|(i, f)| (i, PreparedFile::new(f)))
        .collect()
}

fn ssdeep_score(a: Option<&SsdeepPrepared>, b: Option<&SsdeepPrepared>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => a.compare(b),
        _ => None,
    }
}

fn tlsh_distance(a: Option<&Tlsh>, b: Option<&Tlsh>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.diff(b)),
        _ => None,
    }
}

/// How similar two files are, with the numbers behind it (module docs give the formula), or
/// `None` when they cannot correspond (other content classes, nothing comparable) or score 0.
/// The indices `a` and `b` of the result are left 0 for the caller to set.
pub fn file_similarity(
    a: &PreparedFile<'_>,
    b: &PreparedFile<'_>,
    t: &Thresholds,
) -> Option<FileMatch> {
    similarity(a, b, t, true)
}

/// [`file_similarity`], with the per-section details (`sections`) left empty unless `details`:
/// the same similarity without allocating, for ranking many candidates.
pub(crate) fn similarity(
    a: &PreparedFile<'_>,
    b: &PreparedFile<'_>,
    t: &Thresholds,
    details: bool,
) -> Option<FileMatch> {
    let mut m = FileMatch {
        a: 0,
        b: 0,
        kind: MatchKind::Identical,
        similarity: 1.0,
        ssdeep: None,
        tlsh: None,
        identifier_tlsh: None,
        sections: Vec::new(),
        packed: false,
    };
    if a.file.sha256 == b.file.sha256 {
        return Some(m);
    }
    if a.class() != b.class() {
        return None;
    }
    m.kind = MatchKind::Fuzzy;
    m.ssdeep = ssdeep_score(a.ssdeep.as_ref(), b.ssdeep.as_ref());
    m.tlsh = tlsh_distance(a.tlsh.as_ref(), b.tlsh.as_ref());
    let whole = t.digest_similarity(m.ssdeep, m.tlsh);
    let elf = a.class().is_elf();
    m.packed = elf && !(a.code_comparable && b.code_comparable);
    let similarity = if elf && !m.packed {
        m.identifier_tlsh = tlsh_distance(a.identifier.as_ref(), b.identifier.as_ref());
        let by_identifier = m
            .identifier_tlsh
            .map_or(0.0, |d| t.identifier_cap * t.identifier_similarity(d));
        // Ranking needs only the matches: a pair whose sections provably stay below the
        // minimum, with nothing else reaching it, is none.
        if !details
            && by_identifier.max(whole.unwrap_or(0.0)) < t.file_match_min
            && sections_below(a, b, t, t.file_match_min)
        {
            return None;
        }
        let by_sections = section_similarity(a, b, t, details.then_some(&mut m.sections));
        by_sections.max(by_identifier).max(whole.unwrap_or(0.0))
    } else {
        whole?
    };
    if similarity <= 0.0 {
        return None;
    }
    m.similarity = similarity;
    Some(m)
}

/// Whether [`section_similarity`] of `a` and `b` provably stays below `floor`, judged from the
/// two heaviest sections of `a` (by weight × size) alone.
///
/// With `x = weight × max(size_a, size_b)` per matched section, the similarity is
/// `Σ s·x / (Σ x + unmatched weight)` with every `s` in 0–1. Once the heaviest sections are
/// scored (`m` of `t`), the rest can add at most `R` = the weighted sizes of `a`'s other
/// sections plus those of `b`'s sections not yet matched (names of `a` being unique, each
/// section of `b` is matched at most once), and `(m + R) / (t + R)` bounds the result: it grows
/// with what the rest adds, whose similarity is at most 1. Only used with non-negative weights.
fn sections_below(a: &PreparedFile<'_>, b: &PreparedFile<'_>, t: &Thresholds, floor: f64) -> bool {
    let weights = [
        t.section_text_weight,
        t.section_rodata_weight,
        t.section_data_weight,
        t.section_other_weight,
    ];
    if !a.unique_names || weights.iter().any(|w| w.is_nan() || *w < 0.0) {
        return false;
    }
    let weighted = |s: &PreparedSection<'_>| t.section_weight(s.name) * s.size as f64;
    let mut heavy: [Option<(f64, &PreparedSection<'_>)>; 2] = [None, None];
    let mut rest_a = 0.0;
    for s in &a.sections {
        let x = weighted(s);
        rest_a += x;
        match heavy {
            [Some((h0, _)), _] if x <= h0 => {
                if heavy[1].is_none_or(|(h1, _)| x > h1) {
                    heavy[1] = Some((x, s));
                }
            }
            _ => {
                heavy[1] = heavy[0];
                heavy[0] = Some((x, s));
            }
        }
    }
    let mut rest_b: f64 = b.sections.iter().map(weighted).sum();
    let (mut matched, mut total) = (0.0, 0.0);
    for (x, sa) in heavy.into_iter().flatten() {
        rest_a -= x;
        let Some(sb) = b.section_named(sa) else {
            total += x;
            continue;
        };
        let w = t.section_weight(sa.name);
        rest_b -= w * sb.size as f64;
        let weight = w * sa.size.max(sb.size) as f64;
        let similarity = if sa.sha_key == sb.sha_key && sa.sha256 == sb.sha256 {
            1.0
        } else {
            let ssdeep = ssdeep_score(sa.ssdeep.as_ref(), sb.ssdeep.as_ref());
            let tlsh = tlsh_distance(sa.tlsh.as_ref(), sb.tlsh.as_ref());
            t.digest_similarity(ssdeep, tlsh).unwrap_or(0.0)
        };
        if !(0.0..=1.0).contains(&similarity) {
            return false;
        }
        total += weight;
        matched += weight * similarity;
    }
    // A little slack for rounding: the bound must not undercut the value computed in file order.
    let rest = (rest_a.max(0.0) + rest_b.max(0.0)) * (1.0 + 1e-9) + 1e-9;
    (matched + rest) / (total + rest) < floor - 1e-9
}

/// The size-weighted similarity of sections matched by name (sections on one side only weigh in
/// as 0), pushing each matched section to `out` when given.
fn section_similarity(
    a: &PreparedFile<'_>,
    b: &PreparedFile<'_>,
    t: &Thresholds,
    mut out: Option<&mut Vec<SectionMatch>>,
) -> f64 {
    let mut total = 0.0;
    let mut matched = 0.0;
    for sa in &a.sections {
        let w = t.section_weight(sa.name);
        match b.section_named(sa) {
            Some(sb) => {
                let weight = w * sa.size.max(sb.size) as f64;
                total += weight;
                let identical = sa.sha_key == sb.sha_key && sa.sha256 == sb.sha256;
                let ssdeep = ssdeep_score(sa.ssdeep.as_ref(), sb.ssdeep.as_ref());
                let tlsh = tlsh_distance(sa.tlsh.as_ref(), sb.tlsh.as_ref());
                let similarity = if identical {
                    1.0
                } else {
                    t.digest_similarity(ssdeep, tlsh).unwrap_or(0.0)
                };
                matched += weight * similarity;
                if let Some(out) = out.as_deref_mut() {
                    out.push(SectionMatch {
                        name: sa.name.to_owned(),
                        size: (sa.size, sb.size),
                        identical,
                        ssdeep,
                        tlsh,
                        similarity,
                    });
                }
            }
            None => total += w * sa.size as f64,
        }
    }
    for sb in b.sections.iter().filter(|s| a.section_named(s).is_none()) {
        total += t.section_weight(sb.name) * sb.size as f64;
    }
    if total > 0.0 { matched / total } else { 0.0 }
}

/// Image B prepared for many lookups: its files, a SHA-256 map and an ssdeep index.
pub struct Prepared<'a> {
    files: Vec<(usize, PreparedFile<'a>)>,
    by_sha: HashMap<&'a str, usize>,
    ssdeep: SsdeepIndex,
    /// Position in `files` of each digest in `ssdeep`.
    ssdeep_owner: Vec<usize>,
}

impl<'a> Prepared<'a> {
    /// Prepares every non-container file of `fp`.
    pub fn new(fp: &'a Fingerprint) -> Self {
        let files = prepare(fp);
        let by_sha = files
            .iter()
            .enumerate()
            .map(|(k, (_, f))| (f.file.sha256.as_str(), k))
            .collect();
        let mut digests = Vec::new();
        let mut ssdeep_owner = Vec::new();
        for (k, (_, f)) in files.iter().enumerate() {
            if let Some(d) = &f.ssdeep {
                digests.push(d.clone());
                ssdeep_owner.push(k);
            }
        }
        Self {
            files,
            by_sha,
            ssdeep: SsdeepIndex::new(digests),
            ssdeep_owner,
        }
    }

    /// The best counterpart of `probe` (index into the fingerprint's `files` set in `b`), if any
    /// reaches `file_match_min`.
    pub fn best_match(&self, probe: &PreparedFile<'_>, t: &Thresholds) -> Option<FileMatch> {
        if let Some(&k) = self.by_sha.get(probe.file.sha256.as_str()) {
            let (bi, f) = self.files.get(k)?;
            let mut m = file_similarity(probe, f, t)?;
            m.b = *bi;
            return Some(m);
        }
        // Candidates: ssdeep index hits, TLSH within range, and for ELF files the identifier
        // digest within range or identical sections of enough weight.
        let mut candidates: Vec<usize> = probe
            .ssdeep
            .as_ref()
            .map(|p| {
                self.ssdeep
                    .matches(p)
                    .into_iter()
                    .filter_map(|(i, _)| self.ssdeep_owner.get(i).copied())
                    .collect()
            })
            .unwrap_or_default();
        let class = probe.class();
        let (whole, identifier) = search_radii(probe, t);
        let floor = shared_section_floor(probe, t);
        for (k, (_, f)) in self.files.iter().enumerate() {
            if f.class() != class {
                continue;
            }
            let near = |x: Option<&Tlsh>, y: Option<&Tlsh>, r: Option<u32>| {
                r.is_some_and(|r| tlsh_distance(x, y).is_some_and(|d| d <= r))
            };
            let close = near(probe.tlsh.as_ref(), f.tlsh.as_ref(), whole)
                || near(probe.identifier.as_ref(), f.identifier.as_ref(), identifier)
                || shares_enough_sections(probe, t, floor, |s| {
                    f.sections
                        .iter()
                        .any(|o| o.size > 0 && o.sha256 == s.sha256)
                });
            if close {
                candidates.push(k);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut best: Option<(usize, f64)> = None;
        for k in candidates {
            let Some((_, f)) = self.files.get(k) else {
                continue;
            };
            let Some(m) = similarity(probe, f, t, false) else {
                continue;
            };
            if m.similarity < t.file_match_min {
                continue;
            }
            if best.is_none_or(|(_, s)| m.similarity > s) {
                best = Some((k, m.similarity));
            }
        }
        let (bi, f) = self.files.get(best?.0)?;
        let mut m = file_similarity(probe, f, t)?;
        m.b = *bi;
        Some(m)
    }
}

/// For every non-container file of `a`, its best counterpart in `b` (identical by SHA-256 first,
/// else the most similar file of the same class reaching `file_match_min`), ordered by `a`'s
/// file index. Files without a counterpart are absent.
pub fn pair(a: &Fingerprint, b: &Fingerprint, t: &Thresholds) -> Vec<FileMatch> {
    use rayon::prelude::*;
    let pb = Prepared::new(b);
    prepare(a)
        .par_iter()
        .filter_map(|(ai, f)| {
            let mut m = pb.best_match(f, t)?;
            m.a = *ai;
            Some(m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::FileDigests;
    use crate::hash::digests;

    fn file(data: &[u8], class: ContentClass) -> FileFeatures {
        let d = digests(data);
        FileFeatures {
            sha256: hex::encode(d.sha256),
            size: data.len() as u64,
            paths: vec!["x".into()],
            class,
            digests: FileDigests {
                ssdeep: d.ssdeep.ok().map(|s| s.to_string()),
                tlsh: d.tlsh.map(|t| t.to_string()),
            },
            strings: 0,
            unpacked: false,
            elf: None,
            components: Vec::new(),
        }
    }

    fn text(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                b"abcdefghijklmnopqrstuvwxyz \n"[(x >> 59) as usize % 28]
            })
            .collect()
    }

    fn elf_file(data: &[u8]) -> FileFeatures {
        let mut f = file(data, ContentClass::ElfExecutable);
        f.elf = Some(crate::features::elf::extract(
            data,
            &crate::features::elf::ElfParams::default(),
        ));
        f
    }

    #[test]
    fn whole_tlsh_radius_follows_the_thresholds() {
        // Defaults: 0.8 × (1 − d/100) ≥ 0.3 up to d = 62.5; with ssdeep at 0, only up to 12.
        assert_eq!(whole_tlsh_radius(&Thresholds::default()), Some(62));
        let t = Thresholds {
            tlsh_weight: 1.0,
            file_match_min: 0.5,
            ..Thresholds::default()
        };
        assert_eq!(whole_tlsh_radius(&t), Some(50));
        // TLSH alone can never reach the minimum: no radius.
        let t = Thresholds {
            file_match_min: 0.9,
            ..Thresholds::default()
        };
        assert_eq!(whole_tlsh_radius(&t), None);
        // A minimum of 0 still asks for a similarity above 0: below `tlsh_zero`.
        let t = Thresholds {
            file_match_min: 0.0,
            ..Thresholds::default()
        };
        assert_eq!(whole_tlsh_radius(&t), Some(99));
    }

    #[test]
    fn files_beyond_the_radius_never_match_on_whole_digests() {
        let t = Thresholds::default();
        let r = whole_tlsh_radius(&t).unwrap();
        let base = text(7, 20_000);
        let (mut near, mut far) = (0, 0);
        for k in 0..60u64 {
            // Ever more of the text replaced: TLSH distances sweep across the radius.
            let mut other = base.clone();
            let n = (k as usize * 300).min(other.len());
            other[..n].copy_from_slice(&text(1000 + k, n));
            let (fa, fb) = (
                file(&base, ContentClass::Config),
                file(&other, ContentClass::Config),
            );
            let (pa, pb) = (PreparedFile::new(&fa), PreparedFile::new(&fb));
            let d = pa.tlsh.as_ref().unwrap().diff(pb.tlsh.as_ref().unwrap());
            let ssdeep = ssdeep_score(pa.ssdeep.as_ref(), pb.ssdeep.as_ref());
            let m = file_similarity(&pa, &pb, &t).map_or(0.0, |m| m.similarity);
            if d > r && ssdeep.is_none_or(|s| s == 0) {
                far += 1;
                assert!(m < t.file_match_min, "{d} {ssdeep:?} {m}");
            } else {
                near += 1;
            }
        }
        assert!(near > 0 && far > 0, "{near} {far}");
    }

    #[test]
    fn elf_pairs_compare_by_section_and_packed_ones_as_whole_files() {
        use crate::synth::content::{ElfKind, arm_elf};
        let t = Thresholds::default();
        // Same code (same seed and length), strings patched: .text identical, .rodata similar.
        let a = elf_file(&arm_elf(
            ElfKind::Executable,
            "app",
            40_000,
            &["Copyright Vistacam"],
        ));
        let b = elf_file(&arm_elf(
            ElfKind::Executable,
            "app",
            40_000,
            &["Copyright Northwind"],
        ));
        let c = elf_file(&arm_elf(
            ElfKind::Executable,
            "other",
            40_000,
            &["Copyright Vistacam"],
        ));
        let (pa, pb, pc) = (
            PreparedFile::new(&a),
            PreparedFile::new(&b),
            PreparedFile::new(&c),
        );
        let m = file_similarity(&pa, &pb, &t).unwrap();
        assert_eq!(m.kind, MatchKind::Fuzzy);
        let text = m.sections.iter().find(|s| s.name == ".text").unwrap();
        assert!(text.identical && text.similarity == 1.0, "{m:?}");
        assert!(m.similarity > 0.9, "{m:?}");
        assert!(!m.packed);
        // Other code with the same statistics: TLSH is close, ssdeep is not; no match.
        assert!(
            file_similarity(&pa, &pc, &t).is_none_or(|m| m.similarity < t.file_match_min),
            "{:?}",
            file_similarity(&pa, &pc, &t)
        );
        // A packed side: no section scores, marked.
        let mut packed = b.clone();
        if let Some(e) = packed.elf.as_mut() {
            e.packer = Some("upx".into());
            e.code_comparable = false;
        }
        let pp = PreparedFile::new(&packed);
        let m = file_similarity(&pa, &pp, &t).unwrap();
        assert!(m.packed && m.sections.is_empty(), "{m:?}");
    }

    #[test]
    fn identical_similar_and_unrelated_files() {
        let t = Thresholds::default();
        let base = text(1, 20_000);
        let mut edited = base.clone();
        edited[10_000..10_100].copy_from_slice(&text(2, 100));
        let a = file(&base, ContentClass::Config);
        let b = file(&edited, ContentClass::Config);
        let c = file(&text(3, 20_000), ContentClass::Config);
        let d = file(&edited, ContentClass::WebAsset);
        let (pa, pb, pc, pd) = (
            PreparedFile::new(&a),
            PreparedFile::new(&b),
            PreparedFile::new(&c),
            PreparedFile::new(&d),
        );
        let same = file_similarity(&pa, &pa, &t).unwrap();
        assert_eq!((same.kind, same.similarity), (MatchKind::Identical, 1.0));
        let near = file_similarity(&pa, &pb, &t).unwrap();
        assert_eq!(near.kind, MatchKind::Fuzzy);
        assert!(near.ssdeep.unwrap() > 80, "{near:?}");
        assert!(near.similarity > 0.8, "{near:?}");
        assert!(
            file_similarity(&pa, &pc, &t).is_none_or(|m| m.similarity < t.file_match_min),
            "unrelated text"
        );
        assert!(file_similarity(&pa, &pd, &t).is_none(), "other class");
    }
}
