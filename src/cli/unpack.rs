//! `fwsim unpack IMAGE [--json] [--out DIR]`: list every entry of an image, recursively.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use clap::Args;
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
    let bar = super::show_progress(quiet).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message("unpacking");
        b
    });
    let tree = unpack::unpack_with_progress(data, &name, &limits, &|p| {
        if let Some(b) = &bar {
            b.set_message(format!(
                "unpacking: {} entries, {} pending, {} MiB",
                p.nodes,
                p.pending,
                p.output_bytes >> 20
            ));
            b.tick();
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    if args.json {
        write_json(&tree, &mut out)?;
    } else {
        write_text(&tree, &mut out)?;
    }
    out.flush().context("writing output")?;
    Ok(())
}

/// JSON Lines: one object per entry, depth-first.
pub fn write_json(tree: &Tree, out: &mut impl Write) -> anyhow::Result<()> {
    for id in tree.dfs() {
        let Some(node) = tree.get(id) else { continue };
        let v = entry_json(tree, id, node);
        serde_json::to_writer(&mut *out, &v)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The JSON object of one entry.
pub fn entry_json(tree: &Tree, id: usize, node: &Node) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "path".into(),
        String::from_utf8_lossy(&node.path).into_owned().into(),
    );
    if std::str::from_utf8(&node.path).is_err() {
        m.insert(
            "path_bytes".into(),
            base64::engine::general_purpose::STANDARD
                .encode(&node.path)
                .into(),
        );
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
            m.insert(
                "target".into(),
                String::from_utf8_lossy(target).into_owned().into(),
            );
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
        let path = escape(&node.path);
        let mut line = format!(
            "{:<8} {:>12}  {}",
            node.kind.as_str(),
            node.data.len(),
            path
        );
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

/// Escapes control characters and invalid UTF-8 in names before they reach a terminal.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                s.extend(c.escape_default());
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}
