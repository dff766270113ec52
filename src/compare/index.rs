//! One image against many: the in-memory index built from corpus entries on load (exact SHA-256
//! postings of files and ELF sections, the ssdeep 7-gram index, TLSH radius indexes of whole
//! files and ELF identifiers, evidence postings), answering per corpus image exactly what
//! [`pair`](super::matching::pair) answers, without comparing against every file.

use std::collections::{BTreeMap, HashMap, HashSet};

use rayon::prelude::*;

use super::FileMatch;
use super::matching::{
    PreparedFile, PreparedSection, file_similarity, prepare, search_radii, shared_section_floor,
    shares_enough_sections, similarity,
};
use super::score::{
    Comparison, PerCategory, ScoreContext, file_material, file_rarities, fuzzy_mass_cap,
    is_shared_secret, material, max_similarity, score, score_with, scoring_evidence, upper_bound,
};
use super::thresholds::Thresholds;
use super::weights::Weigher;
use crate::corpus::Entry;
use crate::fingerprint::{FileFeatures, Fingerprint};
use crate::hash::directory::Directory;
use crate::hash::{Ssdeep, SsdeepIndex, Tlsh, TlshIndex};

/// Exact postings: a string key (a SHA-256, an evidence item) → the numbers holding it.
#[derive(Debug, Default)]
struct Postings<'a> {
    /// (hash, key, start, len) sorted by (hash, key): the key's range of `numbers`. The hash
    /// ([`text_hash`]) settles the sort and most comparisons of a lookup without touching the
    /// strings.
    keys: Vec<KeyRange<'a>>,
    /// Buckets of `keys` by hash.
    directory: Directory,
    /// Numbers, ascending and unique within each key's range.
    numbers: Vec<u32>,
}

/// A distinct key: (hash, key, start, len) of its range of numbers.
type KeyRange<'a> = (u64, &'a str, u32, u32);

/// A 64-bit hash of a key's bytes (8 bytes at a time, folded multiplications as in aHash's
/// portable fallback): cheap on SHA-256 hex strings. Only a sort and search order: keys with
/// equal hashes are still told apart by their text.
fn text_hash(s: &str) -> u64 {
    const K: u64 = 0x5851_f42d_4c95_7f2d;
    let fold = |a: u64, b: u64| {
        let p = u128::from(a) * u128::from(b);
        (p as u64) ^ ((p >> 64) as u64)
    };
    let mut h = 0x243f_6a88_85a3_08d3_u64 ^ s.len() as u64;
    for chunk in s.as_bytes().chunks(8) {
        let mut b = [0u8; 8];
        if let Some(dst) = b.get_mut(..chunk.len()) {
            dst.copy_from_slice(chunk);
        }
        h = fold(h ^ u64::from_le_bytes(b), K);
    }
    fold(h, K ^ 0x9e37_79b9_7f4a_7c15)
}

/// Groups (key, number) pairs by key: each distinct key once as (hash, key, start, len) of its
/// range of the returned numbers (ascending, unique), keys sorted by (hash, key). Sorting by
/// (hash, number) and checking each hash group's texts once keeps the many equal keys of a
/// corpus (files shared by every image of a family) from being compared byte by byte in the
/// sort.
fn group_by_key(pairs: Vec<(&str, u32)>) -> (Vec<KeyRange<'_>>, Vec<u32>) {
    group_by_key_with(pairs, text_hash)
}

/// [`group_by_key`] with another hash (tests force collisions).
fn group_by_key_with(
    pairs: Vec<(&str, u32)>,
    hash: impl Fn(&str) -> u64 + Sync,
) -> (Vec<KeyRange<'_>>, Vec<u32>) {
    let mut pairs: Vec<(u64, u32, &str)> = pairs
        .into_par_iter()
        .map(|(k, n)| (hash(k), n, k))
        .collect();
    pairs.par_sort_unstable_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)));
    let mut keys = Vec::new();
    let mut numbers = Vec::with_capacity(pairs.len());
    for group in pairs.chunk_by_mut(|x, y| x.0 == y.0) {
        let Some(&(h, _, first)) = group.first() else {
            continue;
        };
        // Almost always one text per hash; otherwise order the group by text.
        if group.iter().any(|&(_, _, k)| k != first) {
            group.sort_unstable_by(|x, y| x.2.cmp(y.2).then(x.1.cmp(&y.1)));
        }
        for same in group.chunk_by(|x, y| x.2 == y.2) {
            let Some(&(_, _, key)) = same.first() else {
                continue;
            };
            let start = u32::try_from(numbers.len()).unwrap_or(u32::MAX);
            let before = numbers.len();
            for &(_, g, _) in same {
                if numbers.len() == before || numbers.last() != Some(&g) {
                    numbers.push(g);
                }
            }
            let len = u32::try_from(numbers.len().saturating_sub(before)).unwrap_or(u32::MAX);
            keys.push((h, key, start, len));
        }
    }
    (keys, numbers)
}

impl<'a> Postings<'a> {
    /// Builds from (key, number) pairs in any order.
    fn new(pairs: Vec<(&'a str, u32)>) -> Self {
        let (keys, numbers) = group_by_key(pairs);
        let directory = Directory::new(keys.iter().map(|k| k.0));
        Self {
            keys,
            directory,
            numbers,
        }
    }

    /// The numbers holding `key`, ascending.
    fn get(&self, key: &str) -> &[u32] {
        let h = text_hash(key);
        let bucket = self.keys.get(self.directory.bucket(h)).unwrap_or_default();
        bucket
            .iter()
            .find(|&&(q, k, _, _)| q == h && k == key)
            .and_then(|&(_, _, start, len)| {
                let start = start as usize;
                self.numbers.get(start..start.saturating_add(len as usize))
            })
            .unwrap_or_default()
    }
}

/// A probe file's identical counterparts (image, match) and fuzzy candidates (file numbers).
type Candidates = (Vec<(u32, FileMatch)>, Vec<u32>);

/// Where one indexed file sits: its image and its position in that image's `files`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FileRef {
    /// Image number (position in the entries).
    image: u32,
    /// Index into the image fingerprint's `files`.
    file: u32,
}

/// The matches of a probe image against one corpus image.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageMatches {
    /// Image number: position in the entries the index was built from.
    pub image: usize,
    /// The probe's files and their best counterparts in that image, ordered by the probe's file
    /// index: equal to `pair(probe, image)`.
    pub matches: Vec<FileMatch>,
    /// Evidence items (kind and value) both images hold.
    pub shared_evidence: usize,
}

/// A corpus image scored against a probe.
#[derive(Clone, Debug)]
pub struct Ranked {
    /// Image number: position in the entries.
    pub image: usize,
    /// The probe (A) against that image (B).
    pub comparison: Comparison,
}

/// One pair of a batch scored all against all.
#[derive(Clone, Debug)]
pub struct PairScore {
    /// Image A (position in the entries).
    pub a: usize,
    /// Image B, after A.
    pub b: usize,
    /// A against B.
    pub comparison: Comparison,
}

/// What the two stages of [`CorpusIndex::scan_top`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopStats {
    /// Images sharing anything with the probe, each given an upper bound of its score.
    pub bounded: usize,
    /// Of these, images matched file by file and scored.
    pub matched: usize,
}

/// Sizes of a built index, for reports and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Images.
    pub images: usize,
    /// Files indexed (non-container files of every image).
    pub files: usize,
    /// Distinct file SHA-256 values.
    pub distinct_files: usize,
    /// ELF section digests posted (by SHA-256).
    pub sections: usize,
    /// Whole-file ssdeep digests indexed.
    pub ssdeep: usize,
    /// Whole-file TLSH digests indexed.
    pub tlsh: usize,
    /// ELF identifier digests indexed.
    pub identifiers: usize,
}

/// Many corpus images indexed for one-against-many matching. Borrows the entries it was built
/// from; build it once after loading, query it many times (queries are read-only and may run in
/// parallel).
///
/// A query reproduces [`pair`](super::matching::pair) image by image. For every file of the
/// probe, `pair` takes an identical file of the image if there is one, else the most similar of
/// the candidates — files sharing an ssdeep 7-gram at a comparable block size (scoring above 0),
/// files of the same class within the TLSH radii of [`search_radii`] (whole file and, for ELF
/// code, identifier: derived from the thresholds so that no file beyond them can reach
/// `file_match_min`), and files of the same class sharing an ELF section's SHA-256 — that
/// reaches `file_match_min`, the first in file order among equals. The index finds exactly those
/// candidates in every image at once, through the SHA-256 postings, [`SsdeepIndex`] and
/// [`TlshIndex`], ranks them on the similarity alone and scores the winner of each image with
/// [`file_similarity`] (section details included).
#[derive(Debug)]
pub struct CorpusIndex<'a> {
    /// The entries, in the order given.
    entries: &'a [Entry],
    /// Every indexed file, numbered in (image, file) order.
    files: Vec<FileRef>,
    /// File SHA-256 → file numbers.
    file_sha: Postings<'a>,
    /// ELF section SHA-256 → file numbers.
    section_sha: Postings<'a>,
    /// Evidence `kind:value` → image numbers.
    evidence: Postings<'a>,
    /// Distinct whole-file ssdeep digests (each parsed and posted once, however many files
    /// carry it).
    ssdeep: SsdeepIndex,
    /// The files carrying each digest of `ssdeep`.
    ssdeep_owner: Owners,
    /// Distinct whole-file TLSH digests.
    tlsh: TlshIndex,
    /// The files carrying each digest of `tlsh`.
    tlsh_owner: Owners,
    /// Distinct ELF identifier TLSH digests.
    identifier: TlshIndex,
    /// The files carrying each digest of `identifier`.
    identifier_owner: Owners,
}

/// The file numbers carrying each distinct digest of an index: digest `i` is carried by
/// `files[start[i]..start[i + 1]]`, ascending.
#[derive(Debug, Default)]
struct Owners {
    /// Where each digest's files begin in `files` (one more entry than digests).
    start: Vec<u32>,
    /// File numbers.
    files: Vec<u32>,
}

impl Owners {
    /// The files carrying digest `i`.
    fn of(&self, i: usize) -> &[u32] {
        let (Some(&a), Some(&b)) = (self.start.get(i), self.start.get(i.saturating_add(1))) else {
            return &[];
        };
        self.files.get(a as usize..b as usize).unwrap_or_default()
    }
}

/// Distinct digests (by their text) among `(digest, file number)` pairs, each parsed once with
/// `parse` (in parallel; digests that do not parse are left out, as a file without a digest),
/// with the files carrying each. Corpus images of one software share most of their files, so a
/// corpus holds several times fewer distinct digests than files.
fn distinct<T: Send>(
    pairs: Vec<(&str, u32)>,
    parse: impl Fn(&str) -> Option<T> + Sync,
) -> (Vec<T>, Owners) {
    let (groups, files) = group_by_key(pairs);
    let parsed: Vec<Option<T>> = groups
        .par_iter()
        .map(|&(_, text, _, _)| parse(text))
        .collect();
    let mut digests = Vec::with_capacity(groups.len());
    let mut owners = Owners {
        start: Vec::with_capacity(groups.len().saturating_add(1)),
        files: Vec::with_capacity(files.len()),
    };
    for ((_, _, start, len), d) in groups.into_iter().zip(parsed) {
        let Some(d) = d else {
            continue;
        };
        digests.push(d);
        owners
            .start
            .push(u32::try_from(owners.files.len()).unwrap_or(u32::MAX));
        let (start, len) = (start as usize, len as usize);
        let group = files
            .get(start..start.saturating_add(len))
            .unwrap_or_default();
        owners.files.extend_from_slice(group);
    }
    owners
        .start
        .push(u32::try_from(owners.files.len()).unwrap_or(u32::MAX));
    (digests, owners)
}

/// What one file contributes to the index (digests as text: each distinct one is parsed once).
struct FileKeys<'a> {
    at: FileRef,
    sha: &'a str,
    sections: Vec<&'a str>,
    ssdeep: Option<&'a str>,
    tlsh: Option<&'a str>,
    identifier: Option<&'a str>,
}

impl<'a> FileKeys<'a> {
    fn new(at: FileRef, f: &'a FileFeatures) -> Self {
        let elf = f.elf.as_ref();
        Self {
            at,
            sha: &f.sha256,
            sections: elf
                .map(|e| {
                    e.sections
                        .iter()
                        .filter(|s| s.size > 0)
                        .map(|s| s.sha256.as_str())
                        .collect()
                })
                .unwrap_or_default(),
            ssdeep: f.digests.ssdeep.as_deref(),
            tlsh: f.digests.tlsh.as_deref(),
            identifier: elf.and_then(|e| e.identifier_digest.as_deref()),
        }
    }
}

impl<'a> CorpusIndex<'a> {
    /// Indexes every non-container file of every entry (in parallel). At most `u32::MAX` images
    /// and files are indexed.
    pub fn new(entries: &'a [Entry]) -> Self {
        let per_image: Vec<Vec<FileKeys<'a>>> = entries
            .par_iter()
            .enumerate()
            .map(|(i, e)| {
                let image = u32::try_from(i).unwrap_or(u32::MAX);
                e.fingerprint
                    .files
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| !f.unpacked)
                    .map(|(k, f)| {
                        let file = u32::try_from(k).unwrap_or(u32::MAX);
                        FileKeys::new(FileRef { image, file }, f)
                    })
                    .collect()
            })
            .collect();
        let mut files = Vec::new();
        let mut file_sha = Vec::new();
        let mut section_sha = Vec::new();
        let mut ssdeep = Vec::new();
        let mut tlsh = Vec::new();
        let mut identifier = Vec::new();
        for keys in per_image.into_iter().flatten() {
            let Ok(g) = u32::try_from(files.len()) else {
                break;
            };
            files.push(keys.at);
            file_sha.push((keys.sha, g));
            section_sha.extend(keys.sections.iter().map(|&s| (s, g)));
            if let Some(d) = keys.ssdeep {
                ssdeep.push((d, g));
            }
            if let Some(t) = keys.tlsh {
                tlsh.push((t, g));
            }
            if let Some(t) = keys.identifier {
                identifier.push((t, g));
            }
        }
        let evidence = entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                let image = u32::try_from(i).unwrap_or(u32::MAX);
                e.fingerprint
                    .evidence
                    .iter()
                    .map(move |ev| (ev.value.as_str(), image, ev.kind))
            })
            .collect::<Vec<_>>();
        // Evidence is keyed by value within kind: post the value, check the kind on lookup.
        let evidence = Postings::new(evidence.into_iter().map(|(v, i, _)| (v, i)).collect());
        let (file_sha, section_sha) =
            rayon::join(|| Postings::new(file_sha), || Postings::new(section_sha));
        let parse_ssdeep = |s: &str| s.parse::<Ssdeep>().ok().map(|d| d.prepare());
        let parse_tlsh = |s: &str| s.parse::<Tlsh>().ok();
        let ((ssdeep, ssdeep_owner), ((tlsh, tlsh_owner), (identifier, identifier_owner))) =
            rayon::join(
                || {
                    let (d, o) = distinct(ssdeep, parse_ssdeep);
                    (SsdeepIndex::new(d), o)
                },
                || {
                    rayon::join(
                        || {
                            let (d, o) = distinct(tlsh, parse_tlsh);
                            (TlshIndex::new(d), o)
                        },
                        || {
                            let (d, o) = distinct(identifier, parse_tlsh);
                            (TlshIndex::new(d), o)
                        },
                    )
                },
            );
        Self {
            entries,
            files,
            file_sha,
            section_sha,
            evidence,
            ssdeep,
            ssdeep_owner,
            tlsh,
            tlsh_owner,
            identifier,
            identifier_owner,
        }
    }

    /// The entries the index was built from.
    pub fn entries(&self) -> &'a [Entry] {
        self.entries
    }

    /// Sizes of the index.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            images: self.entries.len(),
            files: self.files.len(),
            distinct_files: self.file_sha.keys.len(),
            sections: self.section_sha.numbers.len(),
            ssdeep: self.ssdeep_owner.files.len(),
            tlsh: self.tlsh_owner.files.len(),
            identifiers: self.identifier_owner.files.len(),
        }
    }

    /// The file a file number stands for.
    fn file(&self, g: u32) -> Option<(FileRef, &'a FileFeatures)> {
        let at = *self.files.get(g as usize)?;
        let entries: &'a [Entry] = self.entries;
        let f = entries
            .get(at.image as usize)?
            .fingerprint
            .files
            .get(at.file as usize)?;
        Some((at, f))
    }

    /// Every corpus image sharing a matched file or an evidence item with `probe`, ascending by
    /// image number, with the file matches `pair(probe, image, t)` gives.
    pub fn query(&self, probe: &Fingerprint, t: &Thresholds) -> Vec<ImageMatches> {
        self.query_where(probe, t, &|_| true)
    }

    /// [`query`](Self::query) restricted to the images `keep` accepts (by image number).
    fn query_where(
        &self,
        probe: &Fingerprint,
        t: &Thresholds,
        keep: &(dyn Fn(u32) -> bool + Sync),
    ) -> Vec<ImageMatches> {
        let prepared = prepare(probe);
        let found: Vec<Candidates> = prepared
            .par_iter()
            .map(|(_, f)| self.candidates(f, t, keep))
            .collect();
        let mut by_image: BTreeMap<u32, ImageMatches> = self
            .resolve(&prepared, found, t)
            .into_iter()
            .map(|(image, matches)| {
                (
                    image,
                    ImageMatches {
                        image: image as usize,
                        matches,
                        shared_evidence: 0,
                    },
                )
            })
            .collect();
        let slot = |by_image: &mut BTreeMap<u32, ImageMatches>, image: u32| {
            by_image.entry(image).or_insert_with(|| ImageMatches {
                image: image as usize,
                matches: Vec::new(),
                shared_evidence: 0,
            });
        };
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        for ev in &probe.evidence {
            if !seen.insert((ev.kind.as_str(), ev.value.as_str())) {
                continue;
            }
            let mut last = None;
            for &image in self.evidence.get(&ev.value) {
                if last == Some(image) || !keep(image) {
                    continue;
                }
                let holds = self.entries.get(image as usize).is_some_and(|e| {
                    e.fingerprint
                        .evidence
                        .iter()
                        .any(|o| o.kind == ev.kind && o.value == ev.value)
                });
                if holds {
                    last = Some(image);
                    slot(&mut by_image, image);
                    if let Some(im) = by_image.get_mut(&image) {
                        im.shared_evidence = im.shared_evidence.saturating_add(1);
                    }
                }
            }
        }
        by_image.into_values().collect()
    }

    /// The file matches of every image from the candidates of each probe file (`found`, in
    /// `prepared`'s order), by image; each image's matches ordered by the probe's file index.
    fn resolve(
        &self,
        prepared: &[(usize, PreparedFile<'_>)],
        found: Vec<Candidates>,
        t: &Thresholds,
    ) -> BTreeMap<u32, Vec<FileMatch>> {
        // Each candidate file parsed once (many probe files name the same candidates), then
        // the best per image.
        let mut union: Vec<u32> = found.iter().flat_map(|(_, c)| c.iter().copied()).collect();
        union.par_sort_unstable();
        union.dedup();
        let parsed: Vec<Option<PreparedFile<'a>>> = union
            .par_iter()
            .map(|&g| self.file(g).map(|(_, f)| PreparedFile::new(f)))
            .collect();
        let lookup = |g: u32| {
            union
                .binary_search(&g)
                .ok()
                .and_then(|k| parsed.get(k))
                .and_then(Option::as_ref)
        };
        let per_file: Vec<Vec<(u32, FileMatch)>> = prepared
            .par_iter()
            .zip(found)
            .map(|((ai, f), (identical, candidates))| {
                let mut found = self.choose(f, t, identical, &candidates, &lookup);
                for (_, m) in &mut found {
                    m.a = *ai;
                }
                found
            })
            .collect();
        let mut by_image: BTreeMap<u32, Vec<FileMatch>> = BTreeMap::new();
        // Probe files in file order, so every image's matches come out ordered by `a`.
        for found in per_file {
            for (image, m) in found {
                by_image.entry(image).or_default().push(m);
            }
        }
        by_image
    }

    /// Scores `probe` against every corpus image that shares a matched file or an evidence item
    /// with it, best first (score descending, then image number). `ctx.labels_b` is set to each
    /// entry's labels; `ctx.labels_a` is the probe's. Images sharing nothing are left out: with
    /// no file matched and no evidence shared they cannot score above 0.
    pub fn scan(&self, probe: &Fingerprint, ctx: &ScoreContext<'_>) -> Vec<Ranked> {
        let hits = self.query(probe, ctx.thresholds);
        let mut out: Vec<Ranked> = hits
            .into_par_iter()
            .filter_map(|hit| {
                let entry = self.entries.get(hit.image)?;
                let ctx = ScoreContext {
                    labels_b: Some(&entry.labels),
                    ..*ctx
                };
                Some(Ranked {
                    image: hit.image,
                    comparison: score(probe, &entry.fingerprint, &hit.matches, &ctx),
                })
            })
            .collect();
        out.sort_by(|x, y| {
            y.comparison
                .score
                .total_cmp(&x.comparison.score)
                .then(x.image.cmp(&y.image))
        });
        out
    }

    /// The `top` best corpus images for `probe`: exactly the first `top` of
    /// [`scan`](Self::scan) (same images, order, scores, verdicts and evidence), found in two
    /// stages. First every image sharing anything with the probe gets an upper bound of its
    /// score from the postings alone (`score::upper_bound`: identical files and shared evidence at
    /// their exact masses, each probe file with fuzzy candidates in the image at the most a
    /// fuzzy match can weigh, every candidate file of the image fully matched). Then images are
    /// matched file by file and scored in descending order of their bound, until the `top`-th
    /// exact score exceeds the next bound (or equals it while that image ranks after it on the
    /// image-number tie-break): no image left can enter the top.
    pub fn scan_top(&self, probe: &Fingerprint, ctx: &ScoreContext<'_>, top: usize) -> Vec<Ranked> {
        self.scan_top_counted(probe, ctx, top).0
    }

    /// [`scan_top`](Self::scan_top), with how much of the corpus each stage saw.
    pub fn scan_top_counted(
        &self,
        probe: &Fingerprint,
        ctx: &ScoreContext<'_>,
        top: usize,
    ) -> (Vec<Ranked>, TopStats) {
        let mut stats = TopStats::default();
        if top == 0 {
            return (Vec::new(), stats);
        }
        let t = ctx.thresholds;
        let w = Weigher {
            docfreq: ctx.docfreq,
            discount: ctx.discount,
            thresholds: t,
        };
        let prepared = prepare(probe);
        let found: Vec<Candidates> = prepared
            .par_iter()
            .map(|(_, f)| self.candidates(f, t, &|_| true))
            .collect();
        let n = self.entries.len();
        let mut matched_a: Vec<PerCategory> = vec![[0.0; 5]; n];
        let mut matched_b: Vec<PerCategory> = vec![[0.0; 5]; n];
        // Images sharing an evidence item (any kind: what makes `scan` report an image).
        let mut evidence_hit = vec![false; n];
        let mut secret = vec![false; n];
        // (image, file) of every corpus file that may be some probe file's counterpart.
        let mut touched: Vec<(u32, u32)> = Vec::new();
        let add = |per: &mut Vec<PerCategory>, image: u32, c: usize, x: f64| {
            if let Some(v) = per.get_mut(image as usize).and_then(|p| p.get_mut(c)) {
                *v += x;
            }
        };
        for ((_, f), (identical, candidates)) in prepared.iter().zip(&found) {
            let (c, mass) = file_material(&w, f.file);
            let cap = fuzzy_mass_cap(&w, f.file);
            let mut last = None;
            for (image, m) in identical {
                if last != Some(*image) {
                    add(&mut matched_a, *image, c, mass);
                    last = Some(*image);
                }
                touched.push((*image, u32::try_from(m.b).unwrap_or(u32::MAX)));
            }
            let mut last = None;
            for at in candidates
                .iter()
                .filter_map(|&g| self.files.get(g as usize))
            {
                if last != Some(at.image) {
                    add(&mut matched_a, at.image, c, cap);
                    last = Some(at.image);
                }
                touched.push((at.image, at.file));
            }
        }
        touched.par_sort_unstable();
        touched.dedup();
        let sim_max = max_similarity(t);
        let b_side: Vec<(u32, usize, f64)> = touched
            .par_iter()
            .filter_map(|&(image, file)| {
                let f = self
                    .entries
                    .get(image as usize)?
                    .fingerprint
                    .files
                    .get(file as usize)?;
                let (c, mass) = file_material(&w, f);
                Some((image, c, mass * sim_max))
            })
            .collect();
        for (image, c, x) in b_side {
            add(&mut matched_b, image, c, x);
        }
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        for ev in &probe.evidence {
            if !seen.insert((ev.kind.as_str(), ev.value.as_str())) {
                continue;
            }
            let scoring = scoring_evidence(&w, ev.kind, &ev.value);
            let is_secret = is_shared_secret(&w, ev.kind, &ev.value);
            for image in self.holders(ev) {
                if let Some(hit) = evidence_hit.get_mut(image as usize) {
                    *hit = true;
                }
                if let Some((c, x)) = scoring {
                    add(&mut matched_a, image, c, x);
                    add(&mut matched_b, image, c, x);
                }
                if is_secret && let Some(s) = secret.get_mut(image as usize) {
                    *s = true;
                }
            }
        }
        // Every image sharing anything, with its bound, best first.
        let mut images: Vec<u32> = touched.iter().map(|&(image, _)| image).collect();
        images.extend(
            evidence_hit
                .iter()
                .enumerate()
                .filter(|(_, h)| **h)
                .filter_map(|(i, _)| u32::try_from(i).ok()),
        );
        images.sort_unstable();
        images.dedup();
        let total_a = material(&w, probe);
        let mut order: Vec<(u32, f64)> = images
            .par_iter()
            .filter_map(|&image| {
                let entry = self.entries.get(image as usize)?;
                let total_b = material(&w, &entry.fingerprint);
                let bound = upper_bound(
                    &total_a,
                    &total_b,
                    matched_a.get(image as usize)?,
                    matched_b.get(image as usize)?,
                    secret.get(image as usize).copied().unwrap_or(true),
                    t,
                );
                Some((image, bound))
            })
            .collect();
        order.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        stats.bounded = order.len();

        let mut out: Vec<Ranked> = Vec::new();
        let mut next = 0;
        // The first round scores `top` images, later rounds 1, 2, 4 … more (the bound is usually
        // tight once the top is known).
        let mut batch: usize = 1;
        while let Some(&(image, bound)) = order.get(next) {
            if out.len() >= top
                && let Some(last) = out.get(top.saturating_sub(1))
                && (bound < last.comparison.score
                    || (bound <= last.comparison.score && image as usize > last.image))
            {
                break;
            }
            let size = if out.len() < top {
                top.saturating_sub(out.len())
            } else {
                batch
            };
            let end = next.saturating_add(size).min(order.len());
            let mut chunk: Vec<u32> = order
                .get(next..end)
                .unwrap_or_default()
                .iter()
                .map(|&(image, _)| image)
                .collect();
            if out.len() >= top {
                batch = batch.saturating_mul(2);
            }
            next = end;
            chunk.sort_unstable();
            stats.matched += chunk.len();
            out.extend(self.score_some(probe, &prepared, &found, &chunk, &evidence_hit, ctx));
            out.sort_by(|x, y| {
                y.comparison
                    .score
                    .total_cmp(&x.comparison.score)
                    .then(x.image.cmp(&y.image))
            });
            out.truncate(top);
        }
        (out, stats)
    }

    /// The images holding evidence item `ev` (its kind and value), ascending.
    fn holders<'s>(
        &'s self,
        ev: &'s crate::features::evidence::Evidence,
    ) -> impl Iterator<Item = u32> + 's {
        self.evidence
            .get(&ev.value)
            .iter()
            .copied()
            .filter(|&image| {
                self.entries.get(image as usize).is_some_and(|e| {
                    e.fingerprint
                        .evidence
                        .iter()
                        .any(|o| o.kind == ev.kind && o.value == ev.value)
                })
            })
    }

    /// The second stage of [`scan_top`](Self::scan_top): `images` (ascending) matched file by
    /// file from the candidates already found and scored, leaving out those that end up sharing
    /// nothing (no file matched, no evidence), as [`scan`](Self::scan) does.
    fn score_some(
        &self,
        probe: &Fingerprint,
        prepared: &[(usize, PreparedFile<'_>)],
        found: &[Candidates],
        images: &[u32],
        evidence_hit: &[bool],
        ctx: &ScoreContext<'_>,
    ) -> Vec<Ranked> {
        let within = |image: u32| images.binary_search(&image).is_ok();
        let found: Vec<Candidates> = found
            .par_iter()
            .map(|(identical, candidates)| {
                (
                    identical
                        .iter()
                        .filter(|(image, _)| within(*image))
                        .cloned()
                        .collect(),
                    candidates
                        .iter()
                        .copied()
                        .filter(|&g| {
                            self.files
                                .get(g as usize)
                                .is_some_and(|at| within(at.image))
                        })
                        .collect(),
                )
            })
            .collect();
        let mut matched = self.resolve(prepared, found, ctx.thresholds);
        let work: Vec<(u32, Vec<FileMatch>)> = images
            .iter()
            .map(|&image| (image, matched.remove(&image).unwrap_or_default()))
            .filter(|(image, m)| {
                !m.is_empty() || evidence_hit.get(*image as usize).copied().unwrap_or(false)
            })
            .collect();
        work.into_par_iter()
            .filter_map(|(image, matches)| {
                let entry = self.entries.get(image as usize)?;
                let ctx = ScoreContext {
                    labels_b: Some(&entry.labels),
                    ..*ctx
                };
                Some(Ranked {
                    image: image as usize,
                    comparison: score(probe, &entry.fingerprint, &matches, &ctx),
                })
            })
            .collect()
    }

    /// Every pair `a < b` of indexed images scored (`compare(a, b)`: A's files matched in B),
    /// in (a, b) order. Each image is queried once against the images after it (the index is
    /// built once over all of them), in parallel, and its pairs are scored as soon as its query
    /// is answered; pairs sharing nothing are scored with no matches — what `pair` gives them,
    /// as they have no candidate — so that coverage alone can still make them `inconclusive`.
    pub fn all_pairs(&self, ctx: &ScoreContext<'_>) -> Vec<PairScore> {
        let n = self.entries.len();
        // Every image's file rarities, looked up once rather than once per pair.
        let w = Weigher {
            docfreq: ctx.docfreq,
            discount: ctx.discount,
            thresholds: ctx.thresholds,
        };
        let rarities: Vec<Vec<f64>> = self
            .entries
            .par_iter()
            .map(|e| file_rarities(&w, &e.fingerprint))
            .collect();
        (0..n)
            .into_par_iter()
            .flat_map_iter(|a| {
                let after = u32::try_from(a).unwrap_or(u32::MAX);
                let mut matched: HashMap<usize, Vec<FileMatch>> = self
                    .entries
                    .get(a)
                    .map(|e| self.query_where(&e.fingerprint, ctx.thresholds, &|b| b > after))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|h| (h.image, h.matches))
                    .collect();
                (a.saturating_add(1)..n)
                    .filter_map(|b| {
                        let (ea, eb) = (self.entries.get(a)?, self.entries.get(b)?);
                        let ctx = ScoreContext {
                            labels_a: Some(&ea.labels),
                            labels_b: Some(&eb.labels),
                            ..*ctx
                        };
                        let matches = matched.remove(&b).unwrap_or_default();
                        Some(PairScore {
                            a,
                            b,
                            comparison: score_with(
                                &ea.fingerprint,
                                &eb.fingerprint,
                                &matches,
                                &ctx,
                                rarities.get(a).map(Vec::as_slice),
                                rarities.get(b).map(Vec::as_slice),
                            ),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// For one probe file: its identical counterparts as (image, match), and the file numbers
    /// of its fuzzy candidates (same class, in images without an identical file), ascending.
    fn candidates(
        &self,
        probe: &PreparedFile<'_>,
        t: &Thresholds,
        keep: &(dyn Fn(u32) -> bool + Sync),
    ) -> Candidates {
        let mut out: Vec<(u32, FileMatch)> = Vec::new();
        // Identical files first: an image holding the same bytes answers with them.
        // Files with the probe's SHA-256 answer as the probe answers to itself (the identical
        // case reads nothing but the SHA-256), so none of them needs parsing.
        let mut identical_in: Vec<u32> = Vec::new();
        let same = self.file_sha.get(probe.file.sha256.as_str());
        if let Some(m) = (!same.is_empty())
            .then(|| file_similarity(probe, probe, t))
            .flatten()
        {
            for &g in same {
                if let Some(at) = self.files.get(g as usize).filter(|at| keep(at.image)) {
                    identical_in.push(at.image);
                    out.push((
                        at.image,
                        FileMatch {
                            b: at.file as usize,
                            ..m.clone()
                        },
                    ));
                }
            }
        }
        // Fuzzy candidates in every other image.
        let mut candidates: Vec<u32> = Vec::new();
        if let Some(d) = &probe.ssdeep {
            candidates.extend(
                self.ssdeep
                    .matches(d)
                    .into_iter()
                    .flat_map(|(i, _)| self.ssdeep_owner.of(i).iter().copied()),
            );
        }
        let (whole, identifier) = search_radii(probe, t);
        for (digest, radius, index, owner) in [
            (&probe.tlsh, whole, &self.tlsh, &self.tlsh_owner),
            (
                &probe.identifier,
                identifier,
                &self.identifier,
                &self.identifier_owner,
            ),
        ] {
            if let (Some(d), Some(radius)) = (digest, radius) {
                index.for_each_within(d, radius, |i, _| {
                    candidates.extend_from_slice(owner.of(i));
                });
            }
        }
        candidates.extend(self.section_candidates(probe, t));
        candidates.sort_unstable();
        candidates.dedup();
        let class = probe.class();
        candidates.retain(|&g| {
            self.file(g).is_some_and(|(at, f)| {
                identical_in.binary_search(&at.image).is_err() && f.class == class && keep(at.image)
            })
        });
        (out, candidates)
    }

    /// The files sharing enough of `probe`'s ELF sections ([`shares_enough_sections`]), ascending.
    /// Only *lead* sections are looked up: a file whose heaviest shared section is `s` shares at
    /// most the weighted sizes of `s` and every lighter section, so when those stay below the
    /// floor, `s` cannot lead (a shared `.fini` is looked up only when it could matter). Each
    /// file found is then checked against the rule itself.
    fn section_candidates(&self, probe: &PreparedFile<'_>, t: &Thresholds) -> Vec<u32> {
        let floor = shared_section_floor(probe, t);
        let weighted = |s: &PreparedSection<'_>| t.section_weight(s.name) * s.size as f64;
        let mut order: Vec<&PreparedSection<'_>> =
            probe.sections.iter().filter(|s| s.size > 0).collect();
        order.sort_by(|x, y| weighted(y).total_cmp(&weighted(x)));
        let mut lighter: f64 = order.iter().map(|s| weighted(s)).sum();
        let mut found: Vec<u32> = Vec::new();
        for s in order {
            // Weights are non-negative wherever the floor is above 0; slack for rounding.
            if floor > 0.0 && lighter * (1.0 + 1e-9) + 1e-9 < floor {
                break;
            }
            lighter -= weighted(s);
            found.extend_from_slice(self.section_sha.get(s.sha256));
        }
        found.sort_unstable();
        found.dedup();
        found.retain(|&g| {
            shares_enough_sections(probe, t, floor, |s| {
                self.section_sha.get(s.sha256).binary_search(&g).is_ok()
            })
        });
        found
    }

    /// For one probe file, its best counterpart in every image that has one, as (image, match)
    /// ascending by image (the match's `a` is left for the caller): the identical ones, and the
    /// best of the fuzzy `candidates` (parsed by `parsed`) in images without one.
    fn choose<'p>(
        &self,
        probe: &PreparedFile<'_>,
        t: &Thresholds,
        mut out: Vec<(u32, FileMatch)>,
        candidates: &[u32],
        parsed: &impl Fn(u32) -> Option<&'p PreparedFile<'a>>,
    ) -> Vec<(u32, FileMatch)>
    where
        'a: 'p,
    {
        // Candidates are ranked on the similarity alone; the winner of each image is scored
        // again with its section details (the same computation, so the same numbers).
        let detailed = |g: u32| {
            let at = self.files.get(g as usize)?;
            let mut m = file_similarity(probe, parsed(g)?, t)?;
            m.b = at.file as usize;
            Some((at.image, m))
        };
        // (image, file number, similarity) of the best candidate so far in the current image.
        let mut best: Option<(u32, u32, f64)> = None;
        for &g in candidates {
            let (Some(at), Some(f)) = (self.files.get(g as usize), parsed(g)) else {
                continue;
            };
            if let Some((image, won, _)) = best
                && image != at.image
            {
                out.extend(detailed(won));
                best = None;
            }
            let Some(m) = similarity(probe, f, t, false) else {
                continue;
            };
            if m.similarity < t.file_match_min {
                continue;
            }
            if best.is_none_or(|(_, _, s)| m.similarity > s) {
                best = Some((at.image, g, m.similarity));
            }
        }
        if let Some((_, won, _)) = best {
            out.extend(detailed(won));
        }
        out.sort_by_key(|(image, _)| *image);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key's numbers, the way a map from key to ascending unique numbers holds them.
    fn as_map(keys: &[KeyRange<'_>], numbers: &[u32]) -> BTreeMap<String, Vec<u32>> {
        keys.iter()
            .map(|&(_, k, start, len)| {
                let r = start as usize..(start + len) as usize;
                (k.to_string(), numbers[r].to_vec())
            })
            .collect()
    }

    #[test]
    fn keys_group_the_same_with_and_without_hash_collisions() {
        let texts = ["a", "b", "abcdefghijklmnopq", "abcdefghijklmnopr", "", "b"];
        let mut pairs: Vec<(&str, u32)> = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            for n in [7u32, 3, i as u32, 3] {
                pairs.push((t, n));
            }
        }
        let mut expected: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for &(k, n) in &pairs {
            expected.entry(k.to_string()).or_default().push(n);
        }
        for v in expected.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        let (keys, numbers) = group_by_key(pairs.clone());
        assert_eq!(as_map(&keys, &numbers), expected);
        // Every key colliding, and two hash values for five keys.
        for hash in [|_: &str| 42u64, |k: &str| k.len() as u64 % 2] {
            let (keys, numbers) = group_by_key_with(pairs.clone(), hash);
            assert_eq!(keys.len(), expected.len());
            assert_eq!(as_map(&keys, &numbers), expected);
            let ordered = keys.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1));
            assert!(ordered, "keys sorted by (hash, key)");
        }
        // Lookups find every key and nothing else.
        let postings = Postings::new(pairs);
        for (k, v) in &expected {
            assert_eq!(postings.get(k), v.as_slice(), "{k:?}");
        }
        assert!(postings.get("c").is_empty());
        assert!(postings.get("abcdefghijklmnop").is_empty());
    }

    #[test]
    fn distinct_digests_keep_every_owner_and_drop_unparseable_ones() {
        let pairs = vec![("x", 4), ("y", 1), ("x", 2), ("bad", 3), ("y", 1), ("x", 9)];
        let (digests, owners) = distinct(pairs, |s| (s != "bad").then(|| s.to_string()));
        assert_eq!(digests.len(), 2);
        let mut got: Vec<(String, Vec<u32>)> = digests
            .iter()
            .enumerate()
            .map(|(i, d)| (d.clone(), owners.of(i).to_vec()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![("x".to_string(), vec![2, 4, 9]), ("y".to_string(), vec![1])]
        );
        assert!(owners.of(2).is_empty());
    }
}
