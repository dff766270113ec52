//! `fwsim matrix IMAGE_OR_DIR... [--db DB] [--json|--csv]`: every image against every other
//! (through the corpus index), and the families that average-linkage clustering finds.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use fwsim::compare::cluster::{Cluster, ScoreMatrix, average_linkage};
use fwsim::compare::index::{CorpusIndex, PairScore};
use fwsim::compare::{Comparison, ScoreContext};
use fwsim::features::FeatureParams;
use fwsim::fingerprint::Fingerprint;
use fwsim::unpack::Limits;
use rayon::prelude::*;
use serde::Serialize;

use super::LimitArgs;
use super::scan::{docfreq_of, entries_of, load_db, tuning};

/// Version of the JSON layout of `matrix`.
pub const MATRIX_SCHEMA_VERSION: u32 = 1;

/// Arguments of `fwsim matrix`.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Images, fingerprint JSONs, or folders (every file inside, recursively, in name order).
    #[arg(required = true, value_name = "IMAGE_OR_DIR")]
    pub inputs: Vec<PathBuf>,
    /// Take rarity (document frequencies over families) from this corpus database, and its
    /// extraction parameters, instead of counting over the inputs themselves.
    #[arg(long, value_name = "DB")]
    pub db: Option<PathBuf>,
    /// Print JSON: every pair, the images and the clusters.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV: one line per pair.
    #[arg(long)]
    pub csv: bool,
    /// Thresholds overriding the calibrated ones (JSON object, any subset of the fields).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Discount list: items (file SHA-256, key fingerprints, component names…), one a line.
    #[arg(long, value_name = "FILE")]
    pub discount: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The JSON document of `matrix`.
#[derive(Serialize)]
struct MatrixReport<'a> {
    schema_version: u32,
    rarity_source: &'a str,
    /// Score at or above which clusters are joined (`same_software`).
    cluster_threshold: f64,
    images: Vec<ImageRef<'a>>,
    pairs: Vec<PairJson<'a>>,
    clusters: &'a [Cluster],
}

#[derive(Serialize)]
struct ImageRef<'a> {
    index: usize,
    path: String,
    name: &'a str,
    sha256: &'a str,
}

#[derive(Serialize)]
struct PairJson<'a> {
    a_index: usize,
    b_index: usize,
    #[serde(flatten)]
    comparison: &'a Comparison,
}

/// Runs `fwsim matrix`.
pub fn run(args: &MatrixArgs, quiet: bool) -> anyhow::Result<()> {
    let limits = args.limits.to_limits()?;
    let (thresholds, discount) = tuning(args.thresholds.as_deref(), args.discount.as_deref())?;
    let db = args.db.as_deref().map(load_db).transpose()?;
    let params = db
        .as_ref()
        .map_or_else(FeatureParams::default, |(_, p)| p.clone());
    let loaded = fingerprints(&args.inputs, &params, &limits, quiet)?;
    let paths: Vec<PathBuf> = loaded.iter().map(|(p, _)| p.clone()).collect();
    let entries = entries_of(loaded.into_iter().map(|(_, fp)| fp).collect());
    let (docfreq, source) = match db {
        Some((corpus, _)) => (corpus.docfreq, corpus.source),
        None => (docfreq_of(&entries), "inputs".to_string()),
    };
    let index = CorpusIndex::new(&entries);
    let ctx = ScoreContext::new(&docfreq, &source, &thresholds, &discount);
    let pairs = index.all_pairs(&ctx);
    let mut m = ScoreMatrix::new(entries.len());
    for p in &pairs {
        m.set(p.a, p.b, p.comparison.score);
    }
    let clusters = average_linkage(&m, thresholds.same_software);
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        let report = MatrixReport {
            schema_version: MATRIX_SCHEMA_VERSION,
            rarity_source: &source,
            cluster_threshold: thresholds.same_software,
            images: entries
                .iter()
                .zip(&paths)
                .enumerate()
                .map(|(index, (e, p))| ImageRef {
                    index,
                    path: p.display().to_string(),
                    name: &e.fingerprint.image.name,
                    sha256: &e.fingerprint.image.sha256,
                })
                .collect(),
            pairs: pairs
                .iter()
                .map(|p| PairJson {
                    a_index: p.a,
                    b_index: p.b,
                    comparison: &p.comparison,
                })
                .collect(),
            clusters: &clusters,
        };
        serde_json::to_writer_pretty(&mut out, &report).context("writing output")?;
        writeln!(out).context("writing output")?;
    } else if args.csv {
        write_csv(&mut out, &pairs).context("writing output")?;
    } else {
        write_text(&mut out, &paths, &pairs, &clusters).context("writing output")?;
    }
    out.flush().context("writing output")?;
    Ok(())
}

/// One CSV line per pair: `a,b,score,verdict,identical_files,similar_files,evidence` (the three
/// strongest findings, `; `-separated).
fn write_csv(out: &mut impl Write, pairs: &[PairScore]) -> io::Result<()> {
    writeln!(
        out,
        "a,b,score,verdict,identical_files,similar_files,evidence"
    )?;
    for p in pairs {
        let c = &p.comparison;
        let evidence: Vec<String> = c
            .evidence
            .iter()
            .take(3)
            .map(|f| format!("{} {} ~ {}", f.what, f.a_path, f.b_path))
            .collect();
        writeln!(
            out,
            "{},{},{:.1},{},{},{},{}",
            csv_field(&c.a.name),
            csv_field(&c.b.name),
            c.score,
            c.verdict.as_str(),
            c.identical_files,
            c.similar_files,
            csv_field(&evidence.join("; "))
        )?;
    }
    Ok(())
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The terminal report: images, families, and the pairs that scored, best first.
fn write_text(
    out: &mut impl Write,
    paths: &[PathBuf],
    pairs: &[PairScore],
    clusters: &[Cluster],
) -> io::Result<()> {
    writeln!(out, "{} images", paths.len())?;
    for (i, p) in paths.iter().enumerate() {
        writeln!(out, "  [{i}] {}", escape(&p.display().to_string()))?;
    }
    let families: Vec<&Cluster> = clusters.iter().filter(|c| c.members.len() > 1).collect();
    writeln!(
        out,
        "\n{} families of more than one image ({} images alone)",
        families.len(),
        clusters.len().saturating_sub(families.len())
    )?;
    for c in &families {
        let members: Vec<String> = c.members.iter().map(|m| format!("[{m}]")).collect();
        writeln!(
            out,
            "  {} (average score {:.1})",
            members.join(" "),
            c.cohesion
        )?;
    }
    let mut scored: Vec<&PairScore> = pairs.iter().filter(|p| p.comparison.score > 0.0).collect();
    scored.sort_by(|x, y| {
        y.comparison
            .score
            .total_cmp(&x.comparison.score)
            .then((x.a, x.b).cmp(&(y.a, y.b)))
    });
    writeln!(
        out,
        "\n{} of {} pairs scored above 0 (--json or --csv lists all):",
        scored.len(),
        pairs.len()
    )?;
    writeln!(out, "{:>5}  {:<12}  pair", "score", "verdict")?;
    for p in scored {
        writeln!(
            out,
            "{:>5.1}  {:<12}  [{}] {} ~ [{}] {}",
            p.comparison.score,
            p.comparison.verdict.as_str(),
            p.a,
            escape(&p.comparison.a.name),
            p.b,
            escape(&p.comparison.b.name)
        )?;
        write_findings(out, &p.comparison, 2)?;
    }
    Ok(())
}

/// The `n` strongest findings of a comparison, indented under its line.
pub(super) fn write_findings(out: &mut impl Write, c: &Comparison, n: usize) -> io::Result<()> {
    for f in c.evidence.iter().take(n) {
        let mut numbers = vec![format!("similarity {:.2}", f.similarity)];
        numbers.push(format!("rarity {:.2}", f.rarity));
        if let Some(s) = f.ssdeep {
            numbers.push(format!("ssdeep {s}"));
        }
        if let Some(t) = f.tlsh {
            numbers.push(format!("tlsh {t}"));
        }
        let what = match &f.value {
            Some(v) => format!("{} {}", f.what, escape(v)),
            None => f.what.clone(),
        };
        writeln!(
            out,
            "        {:>5.1}  {what}: {} ~ {} ({})",
            f.strength,
            escape(&f.a_path),
            escape(&f.b_path),
            numbers.join(", ")
        )?;
    }
    Ok(())
}

/// Text from untrusted data made safe for a terminal: control characters escaped.
pub(super) fn escape(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars().flat_map(char::escape_default).collect()
    } else {
        s.to_string()
    }
}

/// The inputs expanded (folders to every file inside, recursively, in name order) and
/// fingerprinted in parallel: images are unpacked, fingerprint JSONs read.
pub(super) fn fingerprints(
    inputs: &[PathBuf],
    params: &FeatureParams,
    limits: &Limits,
    quiet: bool,
) -> anyhow::Result<Vec<(PathBuf, Fingerprint)>> {
    let mut files = Vec::new();
    for p in inputs {
        expand(p, &mut files)?;
    }
    let bar = super::show_progress(quiet).then(|| {
        let b = indicatif::ProgressBar::new(files.len() as u64);
        b.set_message("fingerprinting");
        b
    });
    let out = files
        .par_iter()
        .map(|p| {
            let fp = fingerprint_one(p, params, limits, true);
            if let Some(b) = &bar {
                b.inc(1);
            }
            fp.map(|fp| (p.clone(), fp))
        })
        .collect::<anyhow::Result<Vec<_>>>();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    out
}

/// Adds `path` (a file) or every file under it (a folder) to `out`, in name order.
fn expand(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| fwsim::Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(path)
        .and_then(|rd| rd.map(|e| e.map(|e| e.path())).collect())
        .map_err(|source| fwsim::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    children.sort();
    for c in children {
        expand(&c, out)?;
    }
    Ok(())
}

/// The fingerprint of one input: read when it is a fingerprint JSON (it starts with `{`; one
/// made with other parameters than `params` is refused), else computed from the image.
pub(super) fn fingerprint_one(
    path: &Path,
    params: &FeatureParams,
    limits: &Limits,
    quiet: bool,
) -> anyhow::Result<Fingerprint> {
    if looks_like_json(path)? {
        return Ok(Fingerprint::read(path, &params.recorded())?);
    }
    let (_, fp) = super::fingerprint::unpack_and_fingerprint(path, params, limits, quiet)?;
    Ok(fp)
}

/// Whether the file's first non-blank byte is `{`.
fn looks_like_json(path: &Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|source| fwsim::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(head
        .get(..n)
        .unwrap_or_default()
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        == Some(&b'{'))
}
