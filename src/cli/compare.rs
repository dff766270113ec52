//! `fwsim compare A B`: one image (or fingerprint JSON, or folder of files) against another —
//! score, verdict, sub-scores and evidence, as text or JSON; and the hidden
//! `fwsim background-table`, which writes the rarity table fwsim ships.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use fwsim::compare::rarity::DocFreq;
use fwsim::compare::{self, ScoreContext, background, report};
use fwsim::features::FeatureParams;
use fwsim::fingerprint::Fingerprint;

use super::LimitArgs;

/// Arguments of `fwsim compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Image A: a firmware image, a fingerprint JSON (`fwsim fingerprint`) or a folder of files.
    pub a: PathBuf,
    /// Image B, likewise.
    pub b: PathBuf,
    /// JSON output (`a`, `b`, `score`, `verdict`, `sub_scores`, `evidence`, labels, coverage).
    #[arg(long)]
    pub json: bool,
    /// Override thresholds with a JSON object of some of their fields (see README).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Discount list: item keys, SHA-256 values, key fingerprints or component names, one a line.
    #[arg(long, value_name = "FILE")]
    pub discount: Option<PathBuf>,
    /// Findings shown in text output.
    #[arg(long, value_name = "N", default_value_t = 12)]
    pub top: usize,
    /// Weigh rarity with this corpus database's document frequencies (over its families)
    /// instead of the background table fwsim ships; images are fingerprinted with the
    /// corpus's extraction parameters.
    #[arg(long, value_name = "DB")]
    pub db: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Arguments of the hidden `fwsim background-table`.
#[derive(Debug, Args)]
pub struct BackgroundArgs {
    /// Output file (zstd-compressed JSON).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Families as FAMILY=PATH (image, fingerprint JSON or folder); repeat a family name for
    /// several images of one family.
    #[arg(value_name = "FAMILY=PATH")]
    pub members: Vec<String>,
    /// Add the synthetic vendor families fwsim's own writers build (see `SYNTH_FAMILIES`).
    #[arg(long)]
    pub synth: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Loads one side: a fingerprint JSON as is, a folder as an in-memory tar of its regular files,
/// anything else as an image to unpack and fingerprint.
pub(super) fn load(
    path: &Path,
    params: &FeatureParams,
    limits: &fwsim::unpack::Limits,
    quiet: bool,
) -> anyhow::Result<Fingerprint> {
    if path.is_dir() {
        let tar = folder_tar(path)?;
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .unwrap_or_else(|| b"folder".to_vec());
        let tree = fwsim::unpack::unpack(bytes::Bytes::from(tar), &name, limits);
        return Ok(fwsim::features::fingerprint(&tree, params));
    }
    let head = {
        let mut f = std::fs::File::open(path).map_err(|source| fwsim::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut b = [0u8; 64];
        let n = std::io::Read::read(&mut f, &mut b).unwrap_or(0);
        b.get(..n).unwrap_or_default().to_vec()
    };
    let looks_json = head
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
        && head.windows(14).any(|w| w == b"schema_version");
    if looks_json {
        return Ok(Fingerprint::read(path, &params.recorded())?);
    }
    let (_, fp) = super::fingerprint::unpack_and_fingerprint(path, params, limits, quiet)?;
    Ok(fp)
}

/// A ustar archive of the regular files below `dir` (sorted, relative paths; symlinks skipped).
fn folder_tar(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("reading {}", d.display()))?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        b.append_path_with_name(&f, rel)
            .with_context(|| format!("archiving {}", f.display()))?;
    }
    Ok(b.into_inner()?)
}

/// Runs `fwsim compare`.
pub fn run(args: &CompareArgs, quiet: bool) -> anyhow::Result<()> {
    let limits = args.limits.to_limits()?;
    let (thresholds, discount) =
        super::scan::tuning(args.thresholds.as_deref(), args.discount.as_deref())?;
    let (corpus_df, params) = match &args.db {
        Some(db) => {
            let corpus = super::corpus::open(db)?;
            let params = super::corpus::feature_params(corpus.params())?;
            let df = corpus.doc_freq().map_err(super::corpus::user)?;
            (Some(df), params)
        }
        None => (None, FeatureParams::default()),
    };
    let a = load(&args.a, &params, &limits, quiet)?;
    let b = load(&args.b, &params, &limits, quiet)?;
    let (docfreq, docfreq_source): (&DocFreq, &str) = match &corpus_df {
        Some(df) => (df, "corpus"),
        None => (background::background(), "background"),
    };
    let ctx = ScoreContext::new(docfreq, docfreq_source, &thresholds, &discount);
    let c = compare::compare(&a, &b, &ctx);
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &c).context("writing output")?;
        writeln!(out)?;
    } else {
        report::write_text(&c, args.top, &mut out)?;
    }
    out.flush().context("writing output")?;
    Ok(())
}

/// Synthetic vendor families of the background table: (family, software name, chip). Not the
/// vendors of the demo or the tests, so that their own files stay rare; what all of them share
/// (BusyBox, uClibc, OpenSSL, time-zone data, common configuration) becomes common.
const SYNTH_FAMILIES: &[(&str, &str, fwsim::synth::Soc)] = &[
    ("synth-orchid", "Orchid", fwsim::synth::Soc::Hi3516a),
    ("synth-larkspur", "Larkspur", fwsim::synth::Soc::Hi3516a),
    (
        "synth-tidewater",
        "Tidewater",
        fwsim::synth::Soc::IngenicT31,
    ),
    ("synth-quarry", "Quarry", fwsim::synth::Soc::IngenicT31),
];

/// Fingerprints of the synthetic families (two images each: two releases, two containers).
fn synth_members(limits: &fwsim::unpack::Limits) -> anyhow::Result<Vec<(String, Fingerprint)>> {
    use fwsim::synth::{Brand, Firmware, Options, Software};
    let mut out = Vec::new();
    for &(family, name, soc) in SYNTH_FAMILIES {
        for release in [0u32, 2] {
            let opts = Options {
                size_percent: 10,
                brand: Brand {
                    vendor: format!("{name} Technology Co., Ltd."),
                    product: format!("{}-C{release}", &name[..2].to_uppercase()),
                    version: format!("1.{release}.0"),
                    build_user: name.to_lowercase(),
                },
                software: Some(Software {
                    release,
                    ..Software::new(name, soc)
                }),
                ..Options::demo()
            };
            let fw = Firmware::camera(&opts)?;
            let bytes = if release == 0 {
                fw.dahua_bin()?
            } else {
                fw.tar_gz()?
            };
            let tree = fwsim::unpack::unpack(bytes::Bytes::from(bytes), family.as_bytes(), limits);
            let fp = fwsim::features::fingerprint(&tree, &FeatureParams::default());
            out.push((family.to_owned(), fp));
        }
    }
    Ok(out)
}

/// Runs `fwsim background-table`.
pub fn run_background(args: &BackgroundArgs, quiet: bool) -> anyhow::Result<()> {
    let limits = args.limits.to_limits()?;
    let mut members: Vec<(String, Fingerprint)> = Vec::new();
    if args.synth {
        members.extend(synth_members(&limits)?);
    }
    for m in &args.members {
        let (family, path) = m
            .split_once('=')
            .ok_or_else(|| fwsim::Error::Invalid(format!("{m}: expected FAMILY=PATH")))?;
        members.push((
            family.to_owned(),
            load(Path::new(path), &FeatureParams::default(), &limits, quiet)?,
        ));
    }
    let df = DocFreq::from_families(members.iter().map(|(f, fp)| (f.as_str(), fp)));
    let mut families: Vec<String> = members.iter().map(|(f, _)| f.clone()).collect();
    families.sort();
    families.dedup();
    let file = std::fs::File::create(&args.output).map_err(|source| fwsim::Error::Io {
        path: args.output.clone(),
        source,
    })?;
    background::write(&df, &families, BufWriter::new(file))?;
    Ok(())
}
