//! Scale benchmark of one image against many (`scan`), all against all (`matrix`) and the TLSH
//! radius index, on a corpus built from real firmware files mutated and re-hashed.
//!
//! Corpus: every file of `../shared/realdata` up to 256 KiB (plus the files of fwsim's synthetic
//! camera) is a *pool file* with its real class, digests and ELF anatomy. A family holds 500
//! files: 40 common ones (the same bytes in every family, like busybox and libc) and 460 pool
//! files whose bytes went through a family-specific byte permutation inside their editable
//! ranges (ELF sections, so headers still parse; whole files otherwise) — other content with the
//! statistics of real code and data. Each image of a family is a version of it in which 15 % of
//! the files had a few byte clusters flipped (and, outside ELF, a few bytes inserted); every
//! changed file is re-hashed with `fwsim::hash::digests` and, for ELF, re-extracted with
//! `features::elf::extract`, so ssdeep and TLSH neighbours are as a real corpus has them. 20
//! images per family, families interleaved, so the first N images hold N/20 families.
//! The generated corpus is cached as JSON under `target/bench-scan/`.
//!
//! Run: `cargo bench --bench scan` (sizes: `FWSIM_BENCH_SIZES=250,500,1000`, probes:
//! `FWSIM_BENCH_PROBES=5`, matrix size:
//! `FWSIM_BENCH_MATRIX=200`). Prints one table; the README quotes it.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::single_range_in_vec_init
)]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fwsim::compare::cluster::{ScoreMatrix, average_linkage};
use fwsim::compare::index::CorpusIndex;
use fwsim::compare::rarity::{DocFreq, items};
use fwsim::compare::{Discount, ScoreContext, Thresholds};
use fwsim::corpus::{Entry, Labels};
use fwsim::features::FeatureParams;
use fwsim::features::class::{ContentClass, classify};
use fwsim::features::elf::{ElfParams, extract};
use fwsim::features::evidence::{Evidence, Kind};
use fwsim::fingerprint::{Coverage, FileDigests, FileFeatures, Fingerprint, ImageInfo};
use fwsim::hash::{Tlsh, TlshIndex, digests, tlsh_index::linear_within};
use rayon::prelude::*;

/// Files per family and how many of them are the same in every family.
const FILES: usize = 500;
const COMMON: usize = 40;
/// Images per family.
const VERSIONS: usize = 20;
/// Largest pool file, to keep re-hashing modest.
const MAX_POOL_FILE: usize = 256 << 10;
/// Bump when the generator changes, so that a stale cache is not reused.
const CACHE_VERSION: u32 = 1;

/// Deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x5eed_f00d_cafe_beef)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

struct PoolFile {
    path: String,
    data: Vec<u8>,
    class: ContentClass,
}

fn realdata() -> PathBuf {
    std::env::var_os("FWSIM_REALDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdata"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    children.sort();
    for c in children {
        if c.is_dir() {
            walk(&c, out);
        } else if c.is_file() {
            out.push(c);
        }
    }
}

/// Real files (and the synthetic camera's), unique by content, largest first among the
/// common candidates.
fn pool() -> Vec<PoolFile> {
    let root = realdata();
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut add = |path: String, data: Vec<u8>, out: &mut Vec<PoolFile>| {
        if data.len() < 64 || data.len() > MAX_POOL_FILE {
            return;
        }
        if !seen.insert(digests(&data).sha256) {
            return;
        }
        let class = classify(&data, path.as_bytes());
        out.push(PoolFile { path, data, class });
    };
    for p in paths {
        if p.file_name().is_some_and(|n| n == "SOURCES.tsv") {
            continue;
        }
        if let Ok(data) = std::fs::read(&p) {
            let rel = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            add(rel, data, &mut out);
        }
    }
    if let Ok(fw) = fwsim::synth::Firmware::camera(&fwsim::synth::Options::demo()) {
        for part in &fw.partitions {
            if let Some(r) = part.rootfs() {
                for (path, data) in r.files() {
                    add(
                        format!("{}/{path}", part.file_name),
                        data.to_vec(),
                        &mut out,
                    );
                }
            }
        }
    }
    out
}

/// Byte ranges a mutation may touch: ELF sections with file contents, or the whole file.
fn editable(data: &[u8]) -> Vec<Range<usize>> {
    if let Ok(elf) = goblin::elf::Elf::parse(data) {
        let r: Vec<Range<usize>> = elf
            .section_headers
            .iter()
            .filter(|s| s.sh_type != goblin::elf::section_header::SHT_NOBITS && s.sh_size > 16)
            .filter_map(|s| {
                let start = usize::try_from(s.sh_offset).ok()?;
                let end = start.checked_add(usize::try_from(s.sh_size).ok()?)?;
                (end <= data.len() && start >= 64).then_some(start..end)
            })
            .collect();
        if !r.is_empty() {
            return r;
        }
        return Vec::new();
    }
    vec![0..data.len()]
}

/// The family's version of a pool file: a byte permutation inside the editable ranges.
fn permute(data: &[u8], family: u64) -> Vec<u8> {
    let mut table: Vec<u8> = (0..=255).collect();
    let mut rng = Rng::new(family.wrapping_mul(7919));
    for i in (1..256).rev() {
        table.swap(i, rng.below(i + 1));
    }
    let mut out = data.to_vec();
    for r in editable(data) {
        for b in &mut out[r] {
            *b = table[*b as usize];
        }
    }
    out
}

/// A new build: a few clusters of flipped bytes, and outside ELF a few inserted bytes.
fn tweak(data: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = data.to_vec();
    let ranges = editable(data);
    if ranges.is_empty() {
        out.push(0);
        return out;
    }
    let clusters = 2 + out.len() / 16384;
    for _ in 0..clusters {
        let r = &ranges[rng.below(ranges.len())];
        let at = r.start + rng.below(r.len());
        for b in out.iter_mut().skip(at).take(12.min(r.end - at)) {
            *b ^= 0x5a;
        }
    }
    if ranges.len() == 1 && ranges[0] == (0..data.len()) {
        let at = rng.below(out.len());
        let ins: Vec<u8> = (0..8).map(|_| rng.next() as u8).collect();
        out.splice(at..at, ins);
    }
    out
}

/// The features of one file's bytes, as the fingerprint stage would record them.
fn features(path: &str, data: &[u8], class: ContentClass) -> FileFeatures {
    let d = digests(data);
    FileFeatures {
        sha256: hex::encode(d.sha256),
        size: data.len() as u64,
        paths: vec![path.to_string()],
        class,
        digests: FileDigests {
            ssdeep: d.ssdeep.ok().map(|s| s.to_string()),
            tlsh: d.tlsh.map(|t| t.to_string()),
        },
        strings: 0,
        unpacked: false,
        elf: class.is_elf().then(|| extract(data, &ElfParams::default())),
        components: Vec::new(),
    }
}

/// The files of family `k`: (path, bytes, class).
fn family(pool: &[PoolFile], k: u64) -> Vec<(String, Vec<u8>, ContentClass)> {
    let mut rng = Rng::new(k.wrapping_add(1_000_003));
    let mut order: Vec<usize> = (COMMON..pool.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut out: Vec<(String, Vec<u8>, ContentClass)> = pool
        .iter()
        .take(COMMON)
        .map(|p| (p.path.clone(), p.data.clone(), p.class))
        .collect();
    out.extend(
        order
            .iter()
            .take(FILES - COMMON)
            .collect::<Vec<_>>()
            .par_iter()
            .map(|&&i| {
                let p = &pool[i];
                (p.path.clone(), permute(&p.data, k), p.class)
            })
            .collect::<Vec<_>>(),
    );
    out
}

/// Image `v` of family `k`: 15 % of the family's files tweaked and re-hashed.
fn version(
    fam: &[(String, Vec<u8>, ContentClass)],
    base: &[FileFeatures],
    k: u64,
    v: u64,
) -> Fingerprint {
    let files: Vec<FileFeatures> = fam
        .par_iter()
        .zip(base)
        .enumerate()
        .map(|(i, ((path, data, class), f))| {
            let seed = k << 40 | v << 20 | i as u64;
            if Rng::new(seed).below(100) < 15 {
                features(path, &tweak(data, seed), *class)
            } else {
                f.clone()
            }
        })
        .collect();
    let mut uniq = BTreeSet::new();
    let files: Vec<FileFeatures> = files
        .into_iter()
        .filter(|f| uniq.insert(f.sha256.clone()))
        .collect();
    let size = files.iter().map(|f| f.size).sum();
    let name = format!("fam{k:03}-v{v:02}");
    let ev = |kind, value: String| Evidence::new(kind, value, serde_json::json!({}), "/bin/app", 0);
    Fingerprint {
        schema_version: fwsim::fingerprint::SCHEMA_VERSION,
        params: FeatureParams::default().recorded(),
        image: ImageInfo {
            sha256: hex::encode(digests(name.as_bytes()).sha256),
            name,
            size,
        },
        coverage: Coverage {
            image_bytes: size,
            identified_bytes: size,
            identified_share: 1.0,
            ..Coverage::default()
        },
        files,
        evidence: vec![
            ev(Kind::BuildPath, format!("/home/fam{k}/sdk/app")),
            ev(Kind::Soc, "hi3516ev200".into()),
        ],
    }
}

/// The corpus of `n` images (families interleaved), from the cache when present.
fn corpus(n: usize) -> Vec<Entry> {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-scan")
        .join(format!("corpus-v{CACHE_VERSION}-{n}.json"));
    let t = Instant::now();
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Ok(entries) = serde_json::from_str::<Vec<Entry>>(&text)
    {
        eprintln!("corpus of {n} read from cache in {:.1?}", t.elapsed());
        return entries;
    }
    let pool = pool();
    eprintln!("{} pool files", pool.len());
    let families = n.div_ceil(VERSIONS);
    let mut by_family: Vec<Vec<Fingerprint>> = Vec::new();
    for k in 0..families as u64 {
        let fam = family(&pool, k);
        let base: Vec<FileFeatures> = fam.par_iter().map(|(p, d, c)| features(p, d, *c)).collect();
        by_family.push(
            (0..VERSIONS as u64)
                .map(|v| version(&fam, &base, k, v))
                .collect(),
        );
        eprintln!("family {k} built ({:.1?})", t.elapsed());
    }
    let mut entries = Vec::new();
    for v in 0..VERSIONS {
        for (k, fam) in by_family.iter().enumerate() {
            if let Some(fp) = fam.get(v) {
                entries.push(Entry {
                    id: entries.len() as i64 + 1,
                    labels: Labels {
                        vendor: Some(format!("Vendor {k}")),
                        ..Labels::default()
                    },
                    family: format!("fam{k:03}"),
                    fingerprint: fp.clone(),
                });
            }
        }
    }
    entries.truncate(n);
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(text) = serde_json::to_string(&entries) {
        let _ = std::fs::write(&cache, text);
    }
    eprintln!("corpus of {n} built in {:.1?}", t.elapsed());
    entries
}

fn docfreq(entries: &[Entry]) -> DocFreq {
    let mut fam: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for e in entries {
        fam.entry(&e.family)
            .or_default()
            .extend(items(&e.fingerprint));
    }
    let mut df = DocFreq {
        families: fam.len() as u32,
        ..DocFreq::default()
    };
    for set in fam.into_values() {
        for item in set {
            *df.counts.entry(item).or_default() += 1;
        }
    }
    df
}

/// Results a scan reports (`fwsim scan --top`'s default).
const TOP: usize = 10;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the arguments.
    let sizes: Vec<usize> = std::env::var("FWSIM_BENCH_SIZES")
        .unwrap_or_else(|_| "250,500,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let matrix_n: usize = std::env::var("FWSIM_BENCH_MATRIX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let probes_n: usize = std::env::var("FWSIM_BENCH_PROBES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // One cached corpus of 1,000 images; smaller sizes are its first images.
    let mut all = corpus(1000);
    all.truncate(sizes.iter().copied().max().unwrap_or(1000).max(matrix_n));
    let t = Thresholds::default();
    let d = Discount::default();
    println!("threads: {}", rayon::current_num_threads());
    println!(
        "| images | files | index build | scan, top {TOP} (median of {probes_n} probes) | images answering | images matched |"
    );
    println!("|---|---|---|---|---|---|");
    // Probes: new versions of families 0..5, not in the corpus.
    let probes: Vec<Fingerprint> = {
        let pool = pool();
        (0..probes_n as u64)
            .map(|k| {
                let fam = family(&pool, k);
                let base: Vec<FileFeatures> =
                    fam.par_iter().map(|(p, d, c)| features(p, d, *c)).collect();
                version(&fam, &base, k, 999)
            })
            .collect()
    };
    for &n in &sizes {
        let entries = &all[..n.min(all.len())];
        let df = docfreq(entries);
        let ctx = ScoreContext::new(&df, "corpus", &t, &d);
        let t0 = Instant::now();
        let index = CorpusIndex::new(entries);
        let build = t0.elapsed();
        let mut times = Vec::new();
        let mut answering = 0;
        let mut matched = 0;
        for p in &probes {
            let t1 = Instant::now();
            let (ranked, stats) = index.scan_top_counted(p, &ctx, TOP);
            times.push(t1.elapsed());
            eprintln!(
                "{n} images: scan of {} in {:.2?} ({stats:?})",
                p.image.name,
                t1.elapsed()
            );
            answering = stats.bounded;
            matched = stats.matched;
            if let Some(best) = ranked.first() {
                let fam = &entries[best.image].family;
                assert!(
                    p.image.name.starts_with(fam.as_str()),
                    "{} ranked {fam} first",
                    p.image.name
                );
            }
        }
        println!(
            "| {n} | {} | {:.2?} | {:.2?} | {answering} | {matched} |",
            index.stats().files,
            build,
            median(times)
        );
    }

    // All against all.
    let entries = &all[..matrix_n.min(all.len())];
    let df = docfreq(entries);
    let ctx = ScoreContext::new(&df, "corpus", &t, &d);
    let t0 = Instant::now();
    let index = CorpusIndex::new(entries);
    eprintln!("matrix index built in {:.2?}", t0.elapsed());
    let pairs = index.all_pairs(&ctx);
    let mut m = ScoreMatrix::new(entries.len());
    for p in &pairs {
        m.set(p.a, p.b, p.comparison.score);
    }
    let clusters = average_linkage(&m, t.same_software);
    let families: BTreeSet<&str> = entries.iter().map(|e| e.family.as_str()).collect();
    println!(
        "\nmatrix of {} images: {} pairs, {} clusters ({} families) in {:.2?}",
        entries.len(),
        pairs.len(),
        clusters.len(),
        families.len(),
        t0.elapsed()
    );

    // The TLSH index against the linear scan, on every whole-file digest of the largest corpus.
    let tl: Vec<Tlsh> = all
        .iter()
        .flat_map(|e| e.fingerprint.files.iter())
        .filter_map(|f| f.digests.tlsh.as_ref()?.parse().ok())
        .collect();
    let index = TlshIndex::new(tl.clone());
    let probes: Vec<&Tlsh> = tl.iter().step_by(tl.len() / 200 + 1).collect();
    let radius = t.tlsh_zero.saturating_sub(1);
    let t0 = Instant::now();
    let mut found = 0usize;
    let mut scanned = 0usize;
    for p in &probes {
        found += index.within(p, radius).len();
        scanned += index.scanned(p, radius);
    }
    let fast = t0.elapsed();
    let t0 = Instant::now();
    let mut found_linear = 0usize;
    for p in &probes {
        found_linear += linear_within(&tl, p, radius).len();
    }
    let slow = t0.elapsed();
    assert_eq!(found, found_linear);
    println!(
        "\nTLSH radius {radius} over {} digests, {} probes: index {:.2?} ({:.1} % of digests scored), linear {:.2?} ({:.1}x)",
        tl.len(),
        probes.len(),
        fast,
        100.0 * scanned as f64 / (probes.len() * tl.len()) as f64,
        slow,
        slow.as_secs_f64() / fast.as_secs_f64().max(1e-9)
    );
}
