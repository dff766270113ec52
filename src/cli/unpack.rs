//! `fwsim unpack IMAGE [--json] [--out DIR]`: list every entry of an image, recursively.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use fwsim::unpack::tree::escape_name;
use fwsim::unpack::write::{Report, Skipped, Written};
use fwsim::unpack::{self, Node, Tree};

use super::LimitArgs;

/// Arguments of `fwsim unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The firmware image.
    pub image: PathBuf,
    /// JSON Lines output: one object per entry.
    #[arg(long)]
    pub json: bool,
    /// Write every entry under DIR (created; must be empty) through the safe writer: nothing
    /// lands outside DIR, links are never followed, refused entries are reported on stderr. The
    /// listing is then printed only with --json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Runs `fwsim unpack`.
pub fn run(args: &UnpackArgs, quiet: bool) -> anyhow::Result<()> {
    let limits = args.limits.to_limits()?;
    let data = fwsim::input::open(&args.image)?;
    let name = args
        .image
        .file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_else(|| b"image".to_vec());
    // Only the JSON listing shows digests; the text listing and the writer need hashes only to
    // find identical blobs.
    let hashing = if args.json {
        unpack::Hashing::All
    } else {
        unpack::Hashing::Dedupe
    };
    let bar = spinner(quiet, "unpacking");
    let tree = unpack::unpack_with_progress(data, &name, &limits, hashing, &|p| {
        if let Some(b) = &bar {
            b.set_message(format!(
                "unpacking: {} entries, {} pending, {} MiB",
                p.nodes,
                p.pending,
                p.output_bytes >> 20
            ));
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = match &args.out {
        Some(dir) => {
            let bar = spinner(quiet, "writing");
            let report = unpack::write::write_with_progress(&tree, dir, &|done, total| {
                if let Some(b) = &bar {
                    b.set_message(format!("writing: {done}/{total} entries"));
                }
            })?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            write_summary(&tree, &report, dir, &mut io::stderr().lock())
                .context("writing the summary")?;
            Some(report)
        }
        None => None,
    };
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    if args.json {
        write_json(&tree, report.as_ref(), &mut out)?;
    } else if report.is_none() {
        write_text(&tree, &mut out)?;
    }
    out.flush().context("writing output")?;
    Ok(())
}

/// A spinner on stderr, only when progress is wanted (a terminal, no `--quiet`).
fn spinner(quiet: bool, message: &'static str) -> Option<indicatif::ProgressBar> {
    super::show_progress(quiet).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message(message);
        b.enable_steady_tick(Duration::from_millis(120));
        b
    })
}

/// What `--out` did, for stderr: counts, then every entry not written and why.
pub fn write_summary(
    tree: &Tree,
    report: &Report,
    dir: &std::path::Path,
    out: &mut impl Write,
) -> io::Result<()> {
    writeln!(
        out,
        "wrote {} files ({} bytes), {} folders, {} symlinks under {}; {} entries not written",
        report.files(),
        report.bytes(),
        report.dirs(),
        report.symlinks(),
        escape_name(dir.as_os_str().as_encoded_bytes()),
        report.skipped.len()
    )?;
    if report.case_insensitive {
        writeln!(
            out,
            "note: the output folder ignores case; names equal but for case collide"
        )?;
    }
    for s in &report.skipped {
        let path = tree.get(s.node).map_or(&[][..], |n| &n.path[..]);
        writeln!(out, "not written: {}: {}", escape_name(path), s.reason)?;
    }
    Ok(())
}

/// JSON Lines: one object per entry, depth-first. With a writer's report, each entry also says
/// where it was written (`out`, relative to the output folder) or why not (`not_written`).
pub fn write_json(
    tree: &Tree,
    report: Option<&Report>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let outcomes: HashMap<usize, Result<&Written, &Skipped>> =
        report.map(Report::by_node).unwrap_or_default();
    for id in tree.dfs() {
        let Some(node) = tree.get(id) else { continue };
        let mut v = entry_json(tree, id, node);
        if let (Some(outcome), Some(m)) = (outcomes.get(&id), v.as_object_mut()) {
            match outcome {
                Ok(w) => {
                    m.insert("out".into(), lossy(&w.path));
                    if std::str::from_utf8(&w.path).is_err() {
                        m.insert("out_bytes".into(), base64(&w.path));
                    }
                }
                Err(s) => {
                    m.insert("not_written".into(), s.reason.to_string().into());
                }
            }
        }
        serde_json::to_writer(&mut *out, &v)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The JSON object of one entry.
pub fn entry_json(tree: &Tree, id: usize, node: &Node) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("path".into(), lossy(&node.path));
    if std::str::from_utf8(&node.path).is_err() {
        m.insert("path_bytes".into(), base64(&node.path));
    }
    m.insert("size".into(), (node.data.len() as u64).into());
    m.insert(
        "sha256".into(),
        node.sha256
            .map(|h| serde_json::Value::from(hex::encode(h)))
            .unwrap_or(serde_json::Value::Null),
    );
    m.insert("kind".into(), node.kind.as_str().into());
    let chain = tree.chain(id);
    m.insert(
        "formats".into(),
        chain
            .iter()
            .map(|(f, _)| serde_json::Value::from(*f))
            .collect(),
    );
    m.insert(
        "offsets".into(),
        chain
            .iter()
            .map(|(_, o)| o.map_or(serde_json::Value::Null, serde_json::Value::from))
            .collect(),
    );
    if let Some(f) = node.format {
        m.insert("format".into(), f.into());
    }
    if !node.format_meta.is_empty() {
        m.insert("format_meta".into(), node.format_meta.clone().into());
    }
    if !node.meta.is_empty() {
        m.insert("meta".into(), node.meta.clone().into());
    }
    if let Some(mode) = node.mode {
        m.insert("mode".into(), format!("{mode:o}").into());
    }
    match &node.kind {
        unpack::EntryKind::Symlink { target } | unpack::EntryKind::Hardlink { target } => {
            m.insert("target".into(), lossy(target));
            if std::str::from_utf8(target).is_err() {
                m.insert("target_bytes".into(), base64(target));
            }
        }
        _ => {}
    }
    if let Some(same) = node.same_as.and_then(|s| tree.get(s)) {
        m.insert(
            "same_as".into(),
            String::from_utf8_lossy(&same.path).into_owned().into(),
        );
    }
    if let Some(e) = &node.error {
        m.insert("error".into(), e.to_string().into());
    }
    serde_json::Value::Object(m)
}

/// A readable listing: kind, size, path, and what was recognised or went wrong.
pub fn write_text(tree: &Tree, out: &mut impl Write) -> anyhow::Result<()> {
    for id in tree.dfs() {
        let Some(node) = tree.get(id) else { continue };
        let path = escape_name(&node.path);
        let mut line = format!(
            "{:<8} {:>12}  {}",
            node.kind.as_str(),
            node.data.len(),
            path
        );
        match &node.kind {
            unpack::EntryKind::Symlink { target } => {
                line.push_str(&format!(" -> {}", escape_name(target)));
            }
            unpack::EntryKind::Hardlink { target } => {
                line.push_str(&format!(" link to {}", escape_name(target)));
            }
            _ => {}
        }
        if let Some(f) = node.format {
            line.push_str(&format!("  [{f}]"));
        }
        if let Some(e) = &node.error {
            line.push_str(&format!("  ERROR: {e}"));
        }
        writeln!(out, "{line}")?;
    }
    let errors = tree.errors().count();
    writeln!(
        out,
        "{} entries, {} with errors",
        tree.nodes().len(),
        errors
    )?;
    Ok(())
}

/// Bytes as a JSON string, invalid UTF-8 replaced (the exact bytes go in a `*_bytes` field).
fn lossy(bytes: &[u8]) -> serde_json::Value {
    String::from_utf8_lossy(bytes).into_owned().into()
}

/// Bytes as standard base64.
fn base64(bytes: &[u8]) -> serde_json::Value {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into()
}
