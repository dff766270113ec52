//! `fwsim hash FILE... [--json | --ssdeep]` and `fwsim hash --compare A B`: digests of files
//! (SHA-256, ssdeep, TLSH in one pass, files in parallel) and the fuzzy scores of two files.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use fwsim::hash::{self, Digests, ssdeep};
use rayon::prelude::*;

/// Arguments of `fwsim hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Files to hash (with `--compare`: exactly two files to score against each other).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// JSON Lines output: one object per file with path, size, sha256, ssdeep, tlsh.
    #[arg(long, conflicts_with = "ssdeep")]
    pub json: bool,
    /// Only ssdeep, printed exactly as the `ssdeep` tool does (readable by `ssdeep -m`).
    #[arg(long)]
    pub ssdeep: bool,
    /// Score two files: ssdeep score and TLSH distances (with and without the length term).
    #[arg(long, conflicts_with = "ssdeep")]
    pub compare: bool,
}

/// Runs `fwsim hash`.
pub fn run(args: &HashArgs) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    if args.compare {
        let [a, b] = args.files.as_slice() else {
            return Err(fwsim::Error::Invalid("--compare takes exactly two files".into()).into());
        };
        write_compare(a, b, args.json, &mut out)?;
    } else if args.ssdeep {
        write_ssdeep(&args.files, &mut out)?;
    } else {
        let all: Vec<_> = args
            .files
            .par_iter()
            .map(|p| fwsim::input::open(p).map(|d| hash::digests(&d)))
            .collect();
        for (path, d) in args.files.iter().zip(all) {
            let d = d?;
            if args.json {
                write_json_line(path, &d, &mut out)?;
            } else {
                write_text_line(path, &d, &mut out)?;
            }
        }
    }
    out.flush().context("writing output")?;
    Ok(())
}

/// `sha256  ssdeep  tlsh  path` (TLSH `TNULL` where there is no digest).
fn write_text_line(path: &Path, d: &Digests, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "{}  {}  {}  {}",
        hex::encode(d.sha256),
        ssdeep_text(d),
        d.tlsh
            .map_or_else(|| "TNULL".to_string(), |t| t.to_string()),
        path.display()
    )?;
    Ok(())
}

/// One JSON object: `path` (as given, lossy UTF-8), `size`, `sha256`, `ssdeep`, `tlsh`.
fn write_json_line(path: &Path, d: &Digests, out: &mut impl Write) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(d)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("path".into(), path.to_string_lossy().into_owned().into());
    }
    serde_json::to_writer(&mut *out, &v)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn ssdeep_text(d: &Digests) -> String {
    d.ssdeep
        .as_ref()
        .map_or_else(|e| format!("({e})"), ToString::to_string)
}

/// The `ssdeep` tool's own format: a header line, then `digest,"path"` per file.
fn write_ssdeep(files: &[PathBuf], out: &mut impl Write) -> anyhow::Result<()> {
    let all: Vec<_> = files
        .par_iter()
        .map(|p| -> anyhow::Result<ssdeep::Ssdeep> {
            let data = fwsim::input::open(p)?;
            ssdeep::hash(&data).with_context(|| p.display().to_string())
        })
        .collect();
    out.write_all(b"ssdeep,1.1--blocksize:hash:hash,filename\n")?;
    for (path, d) in files.iter().zip(all) {
        writeln!(out, "{},\"{}\"", d?, path.display())?;
    }
    Ok(())
}

/// ssdeep score (0 where the block sizes are not comparable, as `ssdeep` prints it) and TLSH
/// distances of two files.
fn write_compare(a: &Path, b: &Path, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let da = hash::digests(&fwsim::input::open(a)?);
    let db = hash::digests(&fwsim::input::open(b)?);
    let s = da.prepare().compare(&db.prepare());
    if json {
        let v = serde_json::json!({
            "a": a.to_string_lossy(),
            "b": b.to_string_lossy(),
            "ssdeep": s.ssdeep.unwrap_or(0),
            "ssdeep_comparable": s.ssdeep.is_some(),
            "tlsh_diff": s.tlsh_diff,
            "tlsh_diff_no_len": s.tlsh_diff_no_len,
        });
        serde_json::to_writer(&mut *out, &v)?;
        out.write_all(b"\n")?;
    } else {
        let na = |v: Option<u32>| v.map_or_else(|| "NA".to_string(), |v| v.to_string());
        let note = if s.ssdeep.is_none() {
            " (block sizes not comparable)"
        } else {
            ""
        };
        writeln!(out, "ssdeep\t{}{note}", s.ssdeep.unwrap_or(0))?;
        writeln!(out, "tlsh_diff\t{}", na(s.tlsh_diff))?;
        writeln!(out, "tlsh_diff_no_len\t{}", na(s.tlsh_diff_no_len))?;
    }
    Ok(())
}
