//! `fwsim demo`: builds a small corpus of vendor images with fwsim's own writers (vendor A's
//! versions 1 and 2, an unrelated vendor B sharing only open-source parts) and a rebrand of A
//! under another name in another container and compressor, fingerprints them, adds the first
//! three to a corpus database, scans the rebrand against it and prints the ranking and the report
//! of the best match.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use fwsim::compare::index::CorpusIndex;
use fwsim::compare::{Comparison, Discount, ScoreContext, Thresholds, report};
use fwsim::corpus::{Corpus, Labels};
use fwsim::features::{self, FeatureParams};
use fwsim::fingerprint::Fingerprint;
use fwsim::synth::{Brand, Compression, Firmware, Options, Soc, Software};
use fwsim::unpack::{self, Limits};
use rayon::prelude::*;

/// Arguments of `fwsim demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the built images in DIR (created if missing) instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// One image of the demo.
struct Image {
    file: &'static str,
    what: &'static str,
    family: &'static str,
    labels: Option<Labels>,
    bytes: Vec<u8>,
}

/// Size of the demo's generated files, in percent of a typical camera's.
const SIZE_PERCENT: u32 = 10;

fn vendor_a() -> Options {
    Options {
        size_percent: SIZE_PERCENT,
        software: Some(Software::new("Vistacam", Soc::Hi3516a)),
        ..Options::demo()
    }
}

fn labels(vendor: &str, product: &str, version: &str) -> Option<Labels> {
    Some(Labels {
        vendor: Some(vendor.to_owned()),
        product: Some(product.to_owned()),
        fw_version: Some(version.to_owned()),
        tags: Vec::new(),
    })
}

/// The demo's images: the corpus (first three) and the image scanned (last).
fn build() -> anyhow::Result<Vec<Image>> {
    let a1 = vendor_a();
    let mut a2 = vendor_a();
    a2.brand.version = "V2.640.0000000.3.R".into();
    if let Some(sw) = a2.software.as_mut() {
        sw.release = 3;
    }
    let b = Options {
        brand: Brand {
            vendor: "Kestrel Security Inc.".into(),
            product: "KS-IPC3".into(),
            version: "3.1.7".into(),
            build_user: "builder".into(),
        },
        software: Some(Software::new("Kestrel", Soc::IngenicT31)),
        ..vendor_a()
    };
    let rebrand = Options {
        brand: Brand {
            vendor: "Northwind Vision Ltd.".into(),
            product: "NV-C2040".into(),
            ..a1.brand.clone()
        },
        rootfs_compression: Compression::Zstd,
        web_compression: Compression::Lz4,
        ..vendor_a()
    };
    let jobs: Vec<(usize, Options)> = vec![(0, a1), (1, a2), (2, b), (3, rebrand)];
    let built = jobs
        .into_par_iter()
        .map(|(i, o)| -> anyhow::Result<(usize, Vec<u8>)> {
            let fw = Firmware::camera(&o)?;
            let bytes = match i {
                2 => fw.tar_gz()?,
                3 => fw.flash_dump()?.0,
                _ => fw.dahua_bin()?,
            };
            Ok((i, bytes))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut bytes: Vec<Vec<u8>> = vec![Vec::new(); 4];
    for (i, b) in built {
        if let Some(slot) = bytes.get_mut(i) {
            *slot = b;
        }
    }
    let mut it = bytes.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok(vec![
        Image {
            file: "vistacam-IPC-HFW4431R-Z-v1.bin",
            what: "vendor A, version 1 (Dahua-style .bin, xz)",
            family: "vistacam",
            labels: labels("Vistacam", "IPC-HFW4431R-Z", "V2.622"),
            bytes: next(),
        },
        Image {
            file: "vistacam-IPC-HFW4431R-Z-v2.bin",
            what: "vendor A, version 2",
            family: "vistacam",
            labels: labels("Vistacam", "IPC-HFW4431R-Z", "V2.640"),
            bytes: next(),
        },
        Image {
            file: "kestrel-KS-IPC3.tar.gz",
            what: "vendor B on another chip, same open-source parts (tar.gz)",
            family: "kestrel",
            labels: labels("Kestrel", "KS-IPC3", "3.1.7"),
            bytes: next(),
        },
        Image {
            file: "northwind-NV-C2040-flash.bin",
            what: "unknown vendor (flash dump, zstd and lz4)",
            family: "",
            labels: None,
            bytes: next(),
        },
    ])
}

fn fingerprint_of(img: &Image) -> Fingerprint {
    let tree = unpack::unpack(
        Bytes::copy_from_slice(&img.bytes),
        img.file.as_bytes(),
        &Limits::default(),
    );
    features::fingerprint(&tree, &FeatureParams::default())
}

/// Runs `fwsim demo`.
pub fn run(args: &DemoArgs, _quiet: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let images = build().context("building the demo images")?;
    let tmp;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|source| fwsim::Error::Io {
                path: d.clone(),
                source,
            })?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("creating a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    for img in &images {
        let path = dir.join(img.file);
        std::fs::write(&path, &img.bytes).map_err(|source| fwsim::Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    let built = started.elapsed();
    let fingerprinting = Instant::now();
    let fps: Vec<Fingerprint> = images.par_iter().map(fingerprint_of).collect();
    let fingerprinted = fingerprinting.elapsed();

    // The corpus: the first three images, added with their labels and families to a corpus
    // database beside them; the unknown image is then scanned against it as `fwsim scan` does.
    let (Some(query_img), Some(query)) = (images.get(3), fps.get(3)) else {
        return Ok(());
    };
    let scanning = Instant::now();
    let db_path = dir.join("demo-corpus.db");
    if db_path.exists() {
        // A kept folder from an earlier run: start the corpus afresh.
        std::fs::remove_file(&db_path).map_err(|source| fwsim::Error::Io {
            path: db_path.clone(),
            source,
        })?;
    }
    let mut db = Corpus::create(&db_path, &FeatureParams::default().recorded())
        .context("creating the demo corpus")?;
    for (img, fp) in images.iter().zip(&fps).take(3) {
        db.add(
            fp,
            &img.labels.clone().unwrap_or_default(),
            Some(img.family),
        )
        .context("adding to the demo corpus")?;
    }
    let (entries, docfreq) = db.load().context("loading the demo corpus")?;
    let thresholds = Thresholds::default();
    let discount = Discount::default();
    let ctx = ScoreContext::new(&docfreq, "corpus", &thresholds, &discount);
    let ranked = CorpusIndex::new(&entries).scan(query, &ctx);
    // Entries come back in the order they were added: the first three images.
    let results: Vec<(&Image, Comparison)> = ranked
        .into_iter()
        .filter_map(|r| images.get(r.image).map(|img| (img, r.comparison)))
        .collect();
    let scanned = scanning.elapsed();

    let mut out = BufWriter::new(io::stdout().lock());
    writeln!(
        out,
        "fwsim demo: is the unknown camera image a rebrand of a known vendor's firmware?\n"
    )?;
    writeln!(
        out,
        "images built by fwsim's own writers in {}:",
        dir.display()
    )?;
    for (img, fp) in images.iter().zip(&fps) {
        writeln!(
            out,
            "  {:<34} {:>9}  {:>4} files  {}",
            img.file,
            human(img.bytes.len() as u64),
            fp.files.iter().filter(|f| !f.unpacked).count(),
            img.what
        )?;
    }
    writeln!(
        out,
        "built in {:.1} s, unpacked and fingerprinted in {:.1} s, scanned in {:.2} s\n",
        built.as_secs_f64(),
        fingerprinted.as_secs_f64(),
        scanned.as_secs_f64()
    )?;
    writeln!(out, "scan of {} against the corpus:", query_img.file)?;
    writeln!(
        out,
        "  {:>5}  {:<12} {:<10} image",
        "score", "verdict", "vendor"
    )?;
    for (img, c) in &results {
        writeln!(
            out,
            "  {:>5.1}  {:<12} {:<10} {}",
            c.score,
            c.verdict.as_str(),
            img.labels
                .as_ref()
                .and_then(|l| l.vendor.as_deref())
                .unwrap_or("?"),
            img.file
        )?;
    }
    if let Some((_, best)) = results.first() {
        writeln!(out, "\nbest match in full:\n")?;
        report::write_text(best, 8, &mut out)?;
    }
    if args.keep.is_some() {
        writeln!(
            out,
            "\nthe images are kept: try `fwsim compare {} {}`",
            dir.join(query_img.file).display(),
            dir.join(images.first().map_or("", |i| i.file)).display()
        )?;
    }
    out.flush().context("writing output")?;
    Ok(())
}

fn human(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}
