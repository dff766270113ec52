//! `fwsim demo`: builds a sample Dahua-style camera update (uImage-wrapped squashfs partitions)
//! with fwsim's own writers in a temporary folder, unpacks it with the library and prints a short
//! summary: partitions, formats, file counts and a few interesting paths.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use fwsim::synth::{Firmware, Options};
use fwsim::unpack::{self, EntryKind, Limits, Tree};

use fwsim::unpack::tree::escape_name as escape;

/// Arguments of `fwsim demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the built image in DIR (created if missing) instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// Paths worth showing an analyst first, by suffix.
const INTERESTING: &[&str] = &[
    "/bin/busybox",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/init.d/rcS",
    "/bin/sonia",
    "/index.html",
    "/product.json",
];

/// Runs `fwsim demo`.
pub fn run(args: &DemoArgs, _quiet: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let fw = Firmware::camera(&Options::demo()).context("building the demo firmware")?;
    let bin = fw.dahua_bin().context("packing the demo firmware")?;
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
    let file_name = "DH_IPC-HX4XXX-Demo.bin";
    let path = dir.join(file_name);
    std::fs::write(&path, &bin).map_err(|source| fwsim::Error::Io {
        path: path.clone(),
        source,
    })?;
    let built = started.elapsed();

    let unpacking = Instant::now();
    let data = fwsim::input::open(&path)?;
    let tree = unpack::unpack(data, file_name.as_bytes(), &Limits::default());
    let took = unpacking.elapsed();

    let mut out = BufWriter::new(io::stdout().lock());
    writeln!(
        out,
        "fwsim demo: a Dahua-style camera update built by fwsim's own writers, then unpacked\n"
    )?;
    writeln!(
        out,
        "image     {}  ({}, {} partitions, built in {:.1} s)",
        path.display(),
        human(bin.len() as u64),
        fw.partitions.len(),
        built.as_secs_f64()
    )?;
    let kinds = count_kinds(&tree, 0, true);
    writeln!(
        out,
        "unpacked  in {:.2} s: {} entries ({}, {}, {}), {}",
        took.as_secs_f64(),
        tree.nodes().len(),
        plural(kinds.files, "file"),
        plural(kinds.dirs, "dir"),
        plural(kinds.symlinks, "symlink"),
        plural(tree.errors().count(), "error")
    )?;
    write_summary(&tree, &mut out)?;
    if args.keep.is_some() {
        writeln!(
            out,
            "\nthe image is kept: try `fwsim unpack --json {}`",
            path.display()
        )?;
    }
    out.flush().context("writing output")?;
    Ok(())
}

/// Entry counts below a node, by kind.
#[derive(Debug, Default, Clone, Copy)]
struct Kinds {
    files: usize,
    dirs: usize,
    symlinks: usize,
    other: usize,
}

/// Entry counts of node `id`'s children, and of all their descendants when `deep`.
fn count_kinds(tree: &Tree, id: usize, deep: bool) -> Kinds {
    let mut k = Kinds::default();
    let mut stack: Vec<usize> = tree.get(id).map(|n| n.children.clone()).unwrap_or_default();
    while let Some(c) = stack.pop() {
        let Some(n) = tree.get(c) else { continue };
        match n.kind {
            EntryKind::File => k.files += 1,
            EntryKind::Dir => k.dirs += 1,
            EntryKind::Symlink { .. } => k.symlinks += 1,
            _ => k.other += 1,
        }
        if deep {
            stack.extend(n.children.iter().copied());
        }
    }
    k
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

fn meta_str<'a>(m: &'a unpack::Meta, key: &str) -> &'a str {
    m.get(key).and_then(|v| v.as_str()).unwrap_or("?")
}

/// The root's format, one line per top-level entry (partition), the formats seen and a few
/// interesting paths.
fn write_summary(tree: &Tree, out: &mut impl Write) -> anyhow::Result<()> {
    let Some(root) = tree.root() else {
        return Ok(());
    };
    writeln!(out, "container {}", root.format.unwrap_or("not recognised"))?;
    writeln!(out, "\npartitions")?;
    for &c in &root.children {
        let Some(n) = tree.get(c) else { continue };
        let name = n.path.rsplit(|&b| b == b'/').next().unwrap_or_default();
        let mut line = format!(
            "  {:<24} {:>10}  ",
            escape(name),
            human(n.data.len() as u64)
        );
        match n.format {
            Some("uimage") => {
                let m = &n.format_meta;
                line.push_str(&format!(
                    "uImage '{}' {} {}/{}",
                    meta_str(m, "name"),
                    meta_str(m, "type"),
                    meta_str(m, "os"),
                    meta_str(m, "arch")
                ));
                if let Some((pid, p)) = n.children.first().and_then(|&p| Some((p, tree.get(p)?))) {
                    line.push_str(&describe_payload(tree, pid, p));
                }
            }
            Some(f) => {
                let k = count_kinds(tree, c, false);
                line.push_str(&format!("{f}: {}", plural(k.files, "file")));
            }
            None => line.push_str("file"),
        }
        if let Some(e) = &n.error {
            line.push_str(&format!("  ERROR: {e}"));
        }
        writeln!(out, "{line}")?;
    }

    let mut formats: BTreeMap<&str, usize> = BTreeMap::new();
    for n in tree.nodes() {
        if let Some(f) = n.format.filter(|f| *f != "carve") {
            *formats.entry(f).or_default() += 1;
        }
    }
    let list: Vec<String> = formats.iter().map(|(f, n)| format!("{f} ×{n}")).collect();
    writeln!(out, "\nformats   {}", list.join(", "))?;

    writeln!(out, "\ninteresting paths")?;
    for suffix in INTERESTING {
        if let Some(n) = tree
            .nodes()
            .iter()
            .find(|n| n.path.ends_with(suffix.as_bytes()))
        {
            writeln!(
                out,
                "  {:<64} {:>10}",
                escape(&n.path),
                human(n.data.len() as u64)
            )?;
        }
    }
    let errors: Vec<_> = tree.errors().take(5).collect();
    if !errors.is_empty() {
        writeln!(out, "\nerrors")?;
        for n in errors {
            if let Some(e) = &n.error {
                writeln!(out, "  {}: {e}", escape(&n.path))?;
            }
        }
    }
    Ok(())
}

/// `→ squashfs (xz): 60 files, 12 dirs, 40 symlinks` for a uImage payload (its own entries, not
/// what was found inside them); `→ carved: gzip at 0x4000` when structures were found inside it.
fn describe_payload(tree: &Tree, id: usize, payload: &unpack::Node) -> String {
    let k = count_kinds(tree, id, false);
    match payload.format {
        Some("carve") => {
            let regions: Vec<String> = payload
                .children
                .iter()
                .filter_map(|&c| tree.get(c))
                .filter_map(|n| {
                    let off = n.origin.as_ref().and_then(|o| o.offset)?;
                    Some(format!("{} at {off:#x}", n.format.unwrap_or("?")))
                })
                .collect();
            format!(" → carved: {}", regions.join(", "))
        }
        Some(f) => {
            let comp = ["compressor", "compression"]
                .iter()
                .find_map(|key| payload.format_meta.get(*key).and_then(|v| v.as_str()));
            let what = match comp {
                Some(c) => format!("{f} ({c})"),
                None => f.to_owned(),
            };
            format!(
                " → {what}: {}, {}, {}",
                plural(k.files, "file"),
                plural(k.dirs, "dir"),
                plural(k.symlinks, "symlink")
            )
        }
        None => " → raw".to_owned(),
    }
}

/// `1 file`, `2 files`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("{n} {what}")
    } else {
        format!("{n} {what}s")
    }
}
