//! `fwsim corpus …`: the corpus database from the command line — add images or fingerprints,
//! list, remove, move to a family, export, import, and find which images hold something.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use fwsim::corpus::find::{DEFAULT_MAX_TLSH, DEFAULT_MIN_SSDEEP};
use fwsim::corpus::{AddOutcome, Corpus, CorpusError, FindHit, ImageRow, Labels, Query};
use fwsim::features::FeatureParams;
use fwsim::fingerprint::{Fingerprint, Params};
use fwsim::unpack::tree::escape_name;

use super::LimitArgs;

/// Arguments of `fwsim corpus`.
#[derive(Debug, Args)]
pub struct CorpusArgs {
    #[command(subcommand)]
    pub command: CorpusCommand,
}

/// The database file, given to every `corpus` subcommand.
#[derive(Debug, Args)]
pub struct DbArg {
    /// The corpus database (SQLite). `add` and `import` create it when the path does not exist;
    /// an existing file that is not a fwsim corpus is refused and left untouched.
    #[arg(long, value_name = "DB")]
    pub db: PathBuf,
}

/// The `corpus` subcommands.
#[derive(Debug, Subcommand)]
pub enum CorpusCommand {
    /// Add images (unpacked and fingerprinted as `fwsim fingerprint` does) or fingerprint JSON
    /// files; each is one transaction, an image already present (same SHA-256) is skipped.
    Add(AddArgs),
    /// List the images.
    List(ListArgs),
    /// Remove an image by id.
    Remove(RemoveArgs),
    /// Put an image into another family (rarity is counted over families).
    SetFamily(SetFamilyArgs),
    /// Write every image as JSON Lines `{labels, family, fingerprint}`.
    Export(ExportArgs),
    /// Add every image of an export, in one transaction.
    Import(ImportArgs),
    /// Which images hold a SHA-256, a similar digest, a key, a certificate, a build path or a
    /// string, and at which paths.
    Find(FindArgs),
    /// Judge which images are the same software (every pair scored, average-linkage clusters cut
    /// at the calibrated threshold) and put each cluster into one family.
    Cluster(ClusterArgs),
}

/// Arguments of `fwsim corpus cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// A JSON object overriding calibrated thresholds (`same_software` cuts the clusters).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Items to count for little, one a line.
    #[arg(long, value_name = "FILE")]
    pub discount: Option<PathBuf>,
    /// Print the families the clusters would give, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `fwsim corpus add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Firmware images or fingerprint JSON files (`fwsim fingerprint -o`).
    #[arg(required = true, value_name = "IMAGE_OR_FINGERPRINT")]
    pub inputs: Vec<PathBuf>,
    /// Vendor label.
    #[arg(long, value_name = "V")]
    pub vendor: Option<String>,
    /// Product label.
    #[arg(long, value_name = "P")]
    pub product: Option<String>,
    /// Firmware version label.
    #[arg(long, value_name = "X")]
    pub fw_version: Option<String>,
    /// A free tag (repeatable).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// The family (same software) the images belong to; without it each image gets a family of
    /// its own, named `img-` and the first 12 hex digits of its SHA-256.
    #[arg(long, value_name = "F")]
    pub family: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Arguments of `fwsim corpus list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// JSON (an array of images) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `fwsim corpus remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The image id (see `corpus list`).
    pub id: i64,
}

/// Arguments of `fwsim corpus set-family`.
#[derive(Debug, Args)]
pub struct SetFamilyArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The image id.
    pub id: i64,
    /// The family name (created when new; a family left empty disappears).
    pub family: String,
}

/// Arguments of `fwsim corpus export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Write to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Arguments of `fwsim corpus import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// An export (JSON Lines); `-` reads standard input.
    pub file: PathBuf,
}

/// Arguments of `fwsim corpus find`: exactly one of the queries.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("query").required(true).multiple(false))]
pub struct FindArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// SHA-256 of an image, a file, a container or an ELF section.
    #[arg(long, value_name = "H", group = "query")]
    pub sha256: Option<String>,
    /// Files whose ssdeep digest scores at least --min-score against D.
    #[arg(long, value_name = "D", group = "query")]
    pub ssdeep: Option<String>,
    /// Files whose TLSH digest lies at most --max-distance from T (distance with length term).
    #[arg(long, value_name = "T", group = "query")]
    pub tlsh: Option<String>,
    /// A public or private key by the SHA-256 of its public part.
    #[arg(long, value_name = "FP", group = "query")]
    pub key: Option<String>,
    /// A certificate by its SHA-256.
    #[arg(long, value_name = "FP", group = "query")]
    pub cert: Option<String>,
    /// Build paths containing P.
    #[arg(long, value_name = "P", group = "query")]
    pub build_path: Option<String>,
    /// Evidence values of any kind (vendor names, products, build facts, banners …) and file
    /// paths containing S, ASCII case ignored.
    #[arg(long, value_name = "S", group = "query")]
    pub string: Option<String>,
    /// Lowest ssdeep score (0–100) of a --ssdeep hit.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MIN_SSDEEP)]
    pub min_score: u32,
    /// Largest TLSH distance of a --tlsh hit.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_TLSH)]
    pub max_distance: u32,
    /// JSON (an array of hits) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl FindArgs {
    fn query(&self) -> anyhow::Result<Query> {
        let q = if let Some(h) = &self.sha256 {
            Query::Sha256(h.clone())
        } else if let Some(d) = &self.ssdeep {
            Query::Ssdeep {
                digest: d.clone(),
                min_score: self.min_score,
            }
        } else if let Some(d) = &self.tlsh {
            Query::Tlsh {
                digest: d.clone(),
                max_distance: self.max_distance,
            }
        } else if let Some(k) = &self.key {
            Query::Key(k.clone())
        } else if let Some(c) = &self.cert {
            Query::Cert(c.clone())
        } else if let Some(p) = &self.build_path {
            Query::BuildPath(p.clone())
        } else if let Some(s) = &self.string {
            Query::Text(s.clone())
        } else {
            return Err(fwsim::Error::Invalid("corpus find needs one query".into()).into());
        };
        Ok(q)
    }
}

/// Runs `fwsim corpus …`.
pub fn run(args: &CorpusArgs, quiet: bool) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    match &args.command {
        CorpusCommand::Add(a) => add(a, quiet, &mut out)?,
        CorpusCommand::List(a) => list(a, &mut out)?,
        CorpusCommand::Remove(a) => {
            let mut db = open(&a.db.db)?;
            db.remove(a.id).map_err(user)?;
            writeln!(out, "removed #{}", a.id)?;
        }
        CorpusCommand::SetFamily(a) => {
            let mut db = open(&a.db.db)?;
            db.assign_family(a.id, &a.family).map_err(user)?;
            writeln!(out, "#{} is now in family {}", a.id, shown(a.family.trim()))?;
        }
        CorpusCommand::Export(a) => {
            let db = open(&a.db.db)?;
            match &a.output {
                Some(p) => {
                    let f = fs::File::create(p).map_err(|source| fwsim::Error::Io {
                        path: p.clone(),
                        source,
                    })?;
                    let mut w = BufWriter::new(f);
                    db.export(&mut w).map_err(user)?;
                    w.flush().map_err(|source| fwsim::Error::Io {
                        path: p.clone(),
                        source,
                    })?;
                }
                None => {
                    db.export(&mut out).map_err(user)?;
                }
            }
        }
        CorpusCommand::Import(a) => import(a, &mut out)?,
        CorpusCommand::Find(a) => find(a, &mut out)?,
        CorpusCommand::Cluster(a) => cluster(a, &mut out)?,
    }
    out.flush().context("writing output")?;
    Ok(())
}

/// A corpus error as the exit code wants it: the user's mistakes (not a corpus, refused
/// fingerprint, unknown id) are usage errors, SQLite failures internal ones.
pub(super) fn user(e: CorpusError) -> anyhow::Error {
    match e {
        CorpusError::Fwsim(f) => f.into(),
        e @ (CorpusError::NotACorpus { .. } | CorpusError::NoSuchImage(_)) => {
            fwsim::Error::Invalid(e.to_string()).into()
        }
        other => anyhow::Error::new(other),
    }
}

pub(super) fn open(path: &Path) -> anyhow::Result<Corpus> {
    if !path.exists() {
        return Err(fwsim::Error::Invalid(format!(
            "{}: no such corpus (create one with `fwsim corpus add --db {}`)",
            path.display(),
            path.display()
        ))
        .into());
    }
    Corpus::open(path).map_err(user)
}

/// Opens the corpus, or creates it with `params` when nothing exists at `path`.
fn open_or_create(path: &Path, params: impl FnOnce() -> Params) -> anyhow::Result<Corpus> {
    if path.exists() {
        Corpus::open(path).map_err(user)
    } else {
        Corpus::create(path, &params()).map_err(user)
    }
}

/// The feature parameters that make fingerprints with the corpus' recorded `params`.
pub(super) fn feature_params(p: &Params) -> anyhow::Result<FeatureParams> {
    let f = FeatureParams {
        string_min_len: p.string_min_len,
        max_strings: p.max_strings,
        section_floor: p.section_floor,
        evidence: p.evidence.clone(),
        ..FeatureParams::default()
    };
    if f.recorded() != *p {
        return Err(fwsim::Error::Refused(format!(
            "the corpus was made with ELF identifier recipe '{}', this fwsim makes '{}': build a \
             new corpus",
            p.identifier_recipe,
            f.recorded().identifier_recipe
        ))
        .into());
    }
    Ok(f)
}

/// What an input file of `corpus add` is.
enum Input {
    /// Fingerprint JSON (parsed as JSON, not yet checked against the corpus' parameters).
    Fingerprint(String),
    /// Anything else: an image to unpack.
    Image,
}

/// A file is a fingerprint when its first non-blank byte is `{` and it parses as a JSON object
/// with a `schema_version`; anything else is an image.
fn classify(path: &Path) -> anyhow::Result<Input> {
    let io = |source| fwsim::Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::File::open(path).map_err(io)?;
    let mut head = [0u8; 64];
    let n = f.read(&mut head).map_err(io)?;
    let first = head
        .get(..n)
        .unwrap_or(&[])
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Ok(Input::Image);
    }
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(_) => return Ok(Input::Image), // not UTF-8: not JSON
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if v.get("schema_version").is_some() => Ok(Input::Fingerprint(text)),
        _ => Ok(Input::Image),
    }
}

fn add(a: &AddArgs, quiet: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let limits = a.limits.to_limits()?;
    let labels = Labels {
        vendor: a.vendor.clone(),
        product: a.product.clone(),
        fw_version: a.fw_version.clone(),
        tags: a.tags.clone(),
    };
    let mut inputs = Vec::with_capacity(a.inputs.len());
    for p in &a.inputs {
        inputs.push((p, classify(p)?));
    }
    // A new corpus takes the parameters of the first fingerprint given, else the defaults.
    let mut db = open_or_create(&a.db.db, || {
        inputs
            .first()
            .and_then(|(_, i)| match i {
                Input::Fingerprint(t) => serde_json::from_str::<serde_json::Value>(t)
                    .ok()
                    .and_then(|v| serde_json::from_value(v.get("params")?.clone()).ok()),
                Input::Image => None,
            })
            .unwrap_or_else(|| FeatureParams::default().recorded())
    })?;
    for (path, input) in inputs {
        let fp = match input {
            Input::Fingerprint(text) => {
                Fingerprint::from_json(&text, db.params()).map_err(|e| match e {
                    fwsim::Error::Refused(m) => {
                        fwsim::Error::Refused(format!("{}: {m}", path.display()))
                    }
                    other => fwsim::Error::Invalid(format!("{}: {other}", path.display())),
                })?
            }
            Input::Image => {
                let params = feature_params(db.params())?;
                super::fingerprint::unpack_and_fingerprint(path, &params, &limits, quiet)?.1
            }
        };
        let name = shown(&path.display().to_string());
        match db.add(&fp, &labels, a.family.as_deref()).map_err(user)? {
            AddOutcome::Added(id) => writeln!(out, "added #{id} {name}")?,
            AddOutcome::AlreadyPresent(id) => writeln!(
                out,
                "already present as #{id}: {name} (sha256 {})",
                fp.image.sha256
            )?,
        }
    }
    Ok(())
}

fn list(a: &ListArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let db = open(&a.db.db)?;
    let rows = db.list().map_err(user)?;
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &rows).context("writing output")?;
        writeln!(out)?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(out, "(the corpus is empty)")?;
        return Ok(());
    }
    let table: Vec<[String; 8]> = rows.iter().map(row_cells).collect();
    let header = [
        "ID", "FAMILY", "VENDOR", "PRODUCT", "VERSION", "FILES", "SIZE", "NAME",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&table) {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn row_cells(r: &ImageRow) -> [String; 8] {
    let opt = |s: &Option<String>| s.as_deref().map_or_else(|| "-".to_string(), shown);
    [
        r.id.to_string(),
        shown(&r.family),
        opt(&r.labels.vendor),
        opt(&r.labels.product),
        opt(&r.labels.fw_version),
        r.files.to_string(),
        r.size.to_string(),
        shown(&r.name),
    ]
}

fn import(a: &ImportArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let text = if a.file.as_os_str() == "-" {
        let mut s = String::new();
        io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        fs::read_to_string(&a.file).map_err(|source| fwsim::Error::Io {
            path: a.file.clone(),
            source,
        })?
    };
    let mut db = open_or_create(&a.db.db, || {
        fwsim::corpus::transfer::first_params(&text)
            .unwrap_or_else(|| FeatureParams::default().recorded())
    })?;
    let done = db.import(BufReader::new(text.as_bytes())).map_err(user)?;
    writeln!(
        out,
        "imported {} image(s), {} already present",
        done.added.len(),
        done.already_present.len()
    )?;
    Ok(())
}

fn find(a: &FindArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let query = a.query()?;
    let db = open(&a.db.db)?;
    let hits = db.find(&query).map_err(user)?;
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &hits).context("writing output")?;
        writeln!(out)?;
        return Ok(());
    }
    if hits.is_empty() {
        writeln!(out, "no image holds it")?;
        return Ok(());
    }
    for h in &hits {
        write_hit(h, out)?;
    }
    Ok(())
}

fn write_hit(h: &FindHit, out: &mut impl Write) -> io::Result<()> {
    let mut labels = Vec::new();
    for v in [&h.labels.vendor, &h.labels.product, &h.labels.fw_version]
        .into_iter()
        .flatten()
    {
        labels.push(shown(v));
    }
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!(" [{}]", labels.join(" / "))
    };
    writeln!(
        out,
        "#{} {}{labels}  family {}  sha256 {}",
        h.id,
        shown(&h.name),
        shown(&h.family),
        h.sha256
    )?;
    for m in &h.matches {
        let score = m.score.map(|s| format!(" ({s})")).unwrap_or_default();
        let detail = if m.detail.is_empty() {
            String::new()
        } else {
            format!(" {}", shown(&m.detail))
        };
        writeln!(
            out,
            "    {}{detail}  {}{score}",
            shown(&m.path),
            shown(&m.key)
        )?;
    }
    Ok(())
}

/// Text from an image made safe for a terminal.
fn shown(s: &str) -> String {
    escape_name(s.as_bytes())
}

/// The family a cluster joins: the name most of its members already carry among names an analyst
/// gave (not the automatic `img-…` of a lone image), else its first member's family.
fn cluster_family<'e>(members: &[&'e fwsim::corpus::Entry]) -> Option<&'e str> {
    let mut named: Vec<&str> = members
        .iter()
        .map(|e| e.family.as_str())
        .filter(|f| !f.starts_with("img-"))
        .collect();
    named.sort_unstable();
    let best = named
        .chunk_by(|a, b| a == b)
        .max_by_key(|run| run.len())
        .and_then(|run| run.first().copied());
    best.or_else(|| members.first().map(|e| e.family.as_str()))
}

/// `fwsim corpus cluster`: every pair scored with the corpus' own document frequencies, clusters
/// cut at `same_software`, each cluster of two or more images moved into one family.
fn cluster(a: &ClusterArgs, out: &mut impl Write) -> anyhow::Result<()> {
    use fwsim::compare::cluster::{ScoreMatrix, average_linkage};
    use fwsim::compare::index::CorpusIndex;
    use fwsim::compare::score::ScoreContext;

    let (thresholds, discount) =
        super::scan::tuning(a.thresholds.as_deref(), a.discount.as_deref())?;
    let mut db = open(&a.db.db)?;
    let (entries, docfreq) = db.load().map_err(user)?;
    let index = CorpusIndex::new(&entries);
    let ctx = ScoreContext::new(&docfreq, "corpus", &thresholds, &discount);
    let mut m = ScoreMatrix::new(entries.len());
    for p in index.all_pairs(&ctx) {
        m.set(p.a, p.b, p.comparison.score);
    }
    let mut moves: Vec<(i64, String, String)> = Vec::new();
    for c in average_linkage(&m, thresholds.same_software) {
        let members: Vec<&fwsim::corpus::Entry> =
            c.members.iter().filter_map(|&i| entries.get(i)).collect();
        if members.len() < 2 {
            continue;
        }
        let Some(target) = cluster_family(&members) else {
            continue;
        };
        writeln!(
            out,
            "family {} ({} images, cohesion {:.1}): {}",
            shown(target),
            members.len(),
            c.cohesion,
            members
                .iter()
                .map(|e| format!("#{}", e.id))
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        for e in &members {
            if e.family != target {
                moves.push((e.id, e.family.clone(), target.to_owned()));
            }
        }
    }
    for (id, from, to) in &moves {
        if a.dry_run {
            writeln!(
                out,
                "would move #{id} from {} to {}",
                shown(from),
                shown(to)
            )?;
        } else {
            db.assign_family(*id, to).map_err(user)?;
            writeln!(out, "moved #{id} from {} to {}", shown(from), shown(to))?;
        }
    }
    if moves.is_empty() {
        writeln!(out, "no image changes family")?;
    }
    Ok(())
}
