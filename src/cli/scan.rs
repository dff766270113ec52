//! `fwsim scan IMAGE --db DB [--top N] [--json]`: one image (or its fingerprint JSON) against a
//! corpus — the best matches with score, verdict and evidence — through the corpus index.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use fwsim::compare::index::{CorpusIndex, Ranked};
use fwsim::compare::rarity::DocFreq;
use fwsim::compare::{Discount, ScoreContext, Thresholds};
use fwsim::corpus::{Entry, Labels};
use fwsim::features::FeatureParams;
use fwsim::fingerprint::Fingerprint;
use serde::Serialize;

use super::LimitArgs;
use super::matrix::{self, escape};

/// Version of the JSON layout of `scan`.
pub const SCAN_SCHEMA_VERSION: u32 = 1;

/// Arguments of `fwsim scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The firmware image, or a fingerprint JSON written by `fwsim fingerprint`.
    pub image: PathBuf,
    /// The corpus database.
    #[arg(long, value_name = "DB", required_unless_present = "corpus")]
    pub db: Option<PathBuf>,
    /// Instead of a database: images, fingerprint JSONs or folders of them to scan against, each
    /// image its own family.
    #[arg(long, value_name = "PATH", num_args = 1.., conflicts_with = "db")]
    pub corpus: Vec<PathBuf>,
    /// How many matches to show.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// Findings shown per match in text output.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub evidence: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Thresholds overriding the calibrated ones (JSON object, any subset of the fields).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Discount list: items (file SHA-256, key fingerprints, component names…), one a line.
    #[arg(long, value_name = "FILE")]
    pub discount: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The JSON document of `scan`.
#[derive(Serialize)]
struct ScanReport<'a> {
    schema_version: u32,
    query: &'a str,
    query_sha256: &'a str,
    corpus_images: usize,
    rarity_source: &'a str,
    results: Vec<ScanResult<'a>>,
}

/// One match in the JSON document: the corpus entry and the comparison (query = `a`).
#[derive(Serialize)]
struct ScanResult<'a> {
    rank: usize,
    id: i64,
    family: &'a str,
    labels: &'a Labels,
    #[serde(flatten)]
    comparison: &'a fwsim::compare::Comparison,
}

/// A corpus loaded for comparison: its entries and document frequencies.
pub(super) struct LoadedCorpus {
    /// Entries.
    pub entries: Vec<Entry>,
    /// Document frequencies over families.
    pub docfreq: DocFreq,
    /// Where they came from, for `rarity_source`.
    pub source: String,
}

/// Document frequencies of `entries` counted over their families.
pub(super) fn docfreq_of(entries: &[Entry]) -> DocFreq {
    DocFreq::from_families(entries.iter().map(|e| (e.family.as_str(), &e.fingerprint)))
}

/// Entries made from loose fingerprints: ids from 1 in the order given, each its own family
/// (named by its image SHA-256), no labels.
pub(super) fn entries_of(fps: Vec<Fingerprint>) -> Vec<Entry> {
    fps.into_iter()
        .enumerate()
        .map(|(i, fp)| Entry {
            id: i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1),
            labels: Labels::default(),
            family: fp.image.sha256.clone(),
            fingerprint: fp,
        })
        .collect()
}

/// Reads the thresholds and discount files, when given.
pub(super) fn tuning(
    thresholds: Option<&Path>,
    discount: Option<&Path>,
) -> anyhow::Result<(Thresholds, Discount)> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| fwsim::Error::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let t = match thresholds {
        Some(p) => Thresholds::from_json(&read(p)?)
            .map_err(|e| fwsim::Error::Invalid(format!("{}: {e}", p.display())))?,
        None => Thresholds::default(),
    };
    let d = match discount {
        Some(p) => Discount::parse(&read(p)?),
        None => Discount::default(),
    };
    Ok((t, d))
}

/// Loads the corpus database at `db`: its entries, its stored document frequencies, and the
/// feature parameters its fingerprints were made with (inputs are fingerprinted the same way).
pub(super) fn load_db(db: &Path) -> anyhow::Result<(LoadedCorpus, FeatureParams)> {
    use super::corpus::{feature_params, open, user};
    let corpus = open(db)?;
    let params = feature_params(corpus.params())?;
    let entries = corpus.entries().map_err(user)?;
    let docfreq = corpus.doc_freq().map_err(user)?;
    Ok((
        LoadedCorpus {
            entries,
            docfreq,
            source: "corpus".into(),
        },
        params,
    ))
}

/// Runs `fwsim scan`.
pub fn run(args: &ScanArgs, quiet: bool) -> anyhow::Result<()> {
    let limits = args.limits.to_limits()?;
    let (thresholds, discount) = tuning(args.thresholds.as_deref(), args.discount.as_deref())?;
    let (corpus, params) = match &args.db {
        Some(db) => load_db(db)?,
        None => {
            let params = FeatureParams::default();
            let fps = matrix::fingerprints(&args.corpus, &params, &limits, quiet)?;
            let entries = entries_of(fps.into_iter().map(|(_, fp)| fp).collect());
            let docfreq = docfreq_of(&entries);
            let corpus = LoadedCorpus {
                entries,
                docfreq,
                source: "inputs".into(),
            };
            (corpus, params)
        }
    };
    let probe = matrix::fingerprint_one(&args.image, &params, &limits, quiet)?;
    let index = CorpusIndex::new(&corpus.entries);
    let ctx = ScoreContext::new(&corpus.docfreq, &corpus.source, &thresholds, &discount);
    let ranked = index.scan_top(&probe, &ctx, args.top);
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        let report = ScanReport {
            schema_version: SCAN_SCHEMA_VERSION,
            query: &probe.image.name,
            query_sha256: &probe.image.sha256,
            corpus_images: corpus.entries.len(),
            rarity_source: &corpus.source,
            results: results(&ranked, &corpus.entries),
        };
        serde_json::to_writer_pretty(&mut out, &report).context("writing output")?;
        writeln!(out).context("writing output")?;
    } else {
        write_text(&mut out, &probe, &corpus, &ranked, args.evidence).context("writing output")?;
    }
    out.flush().context("writing output")?;
    Ok(())
}

fn results<'a>(ranked: &'a [Ranked], entries: &'a [Entry]) -> Vec<ScanResult<'a>> {
    ranked
        .iter()
        .enumerate()
        .filter_map(|(k, r)| {
            let e = entries.get(r.image)?;
            Some(ScanResult {
                rank: k.saturating_add(1),
                id: e.id,
                family: &e.family,
                labels: &e.labels,
                comparison: &r.comparison,
            })
        })
        .collect()
}

/// The terminal report: one line per match, its strongest findings under it.
fn write_text(
    out: &mut impl Write,
    probe: &Fingerprint,
    corpus: &LoadedCorpus,
    ranked: &[Ranked],
    per_match: usize,
) -> io::Result<()> {
    writeln!(
        out,
        "{} ({} files, {:.0}% identified) against {} images (rarity: {})",
        escape(&probe.image.name),
        probe.files.iter().filter(|f| !f.unpacked).count(),
        probe.coverage.identified_share * 100.0,
        corpus.entries.len(),
        corpus.source
    )?;
    if ranked.is_empty() {
        return writeln!(
            out,
            "no corpus image shares a file or an evidence item with it"
        );
    }
    writeln!(
        out,
        "{:>4}  {:>5}  {:<12}  {:>6}  {:<24}  image",
        "rank", "score", "verdict", "id", "vendor"
    )?;
    for (k, r) in ranked.iter().enumerate() {
        let Some(e) = corpus.entries.get(r.image) else {
            continue;
        };
        let c = &r.comparison;
        writeln!(
            out,
            "{:>4}  {:>5.1}  {:<12}  {:>6}  {:<24}  {}",
            k.saturating_add(1),
            c.score,
            c.verdict.as_str(),
            e.id,
            escape(c.b.label.vendor.as_deref().unwrap_or("-")),
            escape(&c.b.name)
        )?;
        matrix::write_findings(out, c, per_match)?;
    }
    Ok(())
}
