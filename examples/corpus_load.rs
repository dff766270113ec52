//! Measures the corpus load path: builds a corpus of N images (default 1,000) of about 500 files
//! each from one real fingerprint, then times `Corpus::open` + `entries()`, `doc_freq()` and
//! building the in-memory index (`CorpusIndex::new`), and reports the database size.
//!
//! `cargo run --profile test --example corpus_load -- [FINGERPRINT.json] [N] [FILES]`
//!
//! Without a fingerprint, a synth demo camera (`fwsim::synth`) is built and fingerprinted; a real
//! one comes from `fwsim fingerprint themis.bin -o themis.json` (see `examples/themis_bin.rs`).
//! Image i keeps 70% of the base files byte-identical (what products of one SDK share) and
//! re-hashes the rest with i mixed in (SHA-256 of the file and of each ELF section, so postings
//! and document frequencies see new items); images come in families of three.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use fwsim::compare::index::CorpusIndex;
use fwsim::corpus::{Corpus, Labels};
use fwsim::features::{self, FeatureParams};
use fwsim::fingerprint::Fingerprint;
use sha2::{Digest, Sha256};

fn rehash(s: &str, i: usize) -> String {
    hex::encode(Sha256::digest(format!("{s}/{i}").as_bytes()))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (fp_path, rest) = match args.first() {
        Some(a) if a.ends_with(".json") => (Some(PathBuf::from(a)), args.get(1..).unwrap_or(&[])),
        _ => (None, args.as_slice()),
    };
    let n: usize = rest.first().map_or(Ok(1000), |s| s.parse())?;
    let per_image: usize = rest.get(1).map_or(Ok(500), |s| s.parse())?;

    let params = FeatureParams::default();
    let t = Instant::now();
    let mut base = match &fp_path {
        Some(p) => Fingerprint::read(p, &params.recorded())?,
        None => {
            let fw = fwsim::synth::Firmware::camera(&fwsim::synth::Options::demo())?;
            let image = fw.dahua_bin()?;
            let tree = fwsim::unpack::unpack(
                bytes::Bytes::from(image),
                b"demo.bin",
                &fwsim::unpack::Limits::default(),
            );
            features::fingerprint(&tree, &params)
        }
    };
    eprintln!(
        "base fingerprint: {} files ({:.1} s)",
        base.files.len(),
        t.elapsed().as_secs_f64()
    );
    // Pad (or cut) to `per_image` files by cloning files under new digests and paths.
    let originals = base.files.clone();
    anyhow::ensure!(!originals.is_empty(), "the base fingerprint has no file");
    let mut k = 0;
    while base.files.len() < per_image {
        let mut f = originals.get(k % originals.len()).context("file")?.clone();
        f.sha256 = rehash(&f.sha256, k + 1_000_000);
        f.paths = f.paths.iter().map(|p| format!("{p}.{k}")).collect();
        base.files.push(f);
        k += 1;
    }
    base.files.truncate(per_image);

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("corpus.db");
    let mut db = Corpus::create(&path, &params.recorded())?;
    let t = Instant::now();
    for i in 0..n {
        let mut fp = base.clone();
        fp.image.sha256 = rehash("image", i);
        fp.image.name = format!("image-{i}.bin");
        for (j, f) in fp.files.iter_mut().enumerate() {
            if j % 10 >= 7 {
                f.sha256 = rehash(&f.sha256, i);
                if let Some(elf) = &mut f.elf {
                    for s in &mut elf.sections {
                        s.sha256 = rehash(&s.sha256, i);
                    }
                }
            }
        }
        let labels = Labels {
            vendor: Some(format!("vendor-{}", i / 3)),
            ..Labels::default()
        };
        db.add(&fp, &labels, Some(&format!("family-{}", i / 3)))?;
    }
    let add_s = t.elapsed().as_secs_f64();
    drop(db);
    let size = std::fs::metadata(&path)?.len();

    let t = Instant::now();
    let db = Corpus::open(&path)?;
    let entries = db.entries()?;
    let entries_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let df = db.doc_freq()?;
    let df_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let index = CorpusIndex::new(&entries);
    let index_s = t.elapsed().as_secs_f64();
    let files: usize = entries.iter().map(|e| e.fingerprint.files.len()).sum();
    println!(
        "{n} images, {files} files: add {add_s:.1} s ({:.1} ms/image); open+entries {entries_s:.2} s, \
         doc_freq {df_s:.2} s ({} items, {} families), index {index_s:.2} s ({} files indexed); \
         load {:.2} s; database {:.1} MiB",
        add_s * 1000.0 / n.max(1) as f64,
        df.counts.len(),
        df.families,
        index.stats().files,
        entries_s + df_s + index_s,
        size as f64 / (1 << 20) as f64
    );
    Ok(())
}
