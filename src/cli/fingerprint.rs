//! `fwsim fingerprint IMAGE [-o FILE]`: unpack an image and write its fingerprint (every unique
//! file's class, digests, ELF anatomy and components, plus coverage) as JSON.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use fwsim::features::{self, FeatureParams};
use fwsim::fingerprint::Fingerprint;
use fwsim::unpack::{Limits, Tree};

use super::LimitArgs;

/// Arguments of `fwsim fingerprint`.
#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// The firmware image.
    pub image: PathBuf,
    /// Write the JSON to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Minimum length of a string (characters).
    #[arg(long, value_name = "N", default_value_t = FeatureParams::default().string_min_len)]
    pub string_min_len: usize,
    /// ELF sections smaller than this get only a SHA-256 (bytes).
    #[arg(long, value_name = "BYTES", default_value_t = FeatureParams::default().section_floor)]
    pub section_floor: u64,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Runs `fwsim fingerprint`.
pub fn run(args: &FingerprintArgs, quiet: bool) -> anyhow::Result<()> {
    let limits = args.limits.to_limits()?;
    if args.string_min_len == 0 {
        return Err(fwsim::Error::Invalid("--string-min-len must be at least 1".into()).into());
    }
    let params = FeatureParams {
        string_min_len: args.string_min_len,
        section_floor: args.section_floor,
        ..FeatureParams::default()
    };
    let (_, fp) = unpack_and_fingerprint(&args.image, &params, &limits, quiet)?;
    match &args.output {
        Some(path) => fp.write(path)?,
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            fp.write_to(&mut out).context("writing output")?;
            out.flush().context("writing output")?;
        }
    }
    Ok(())
}

/// Unpacks the image at `path` and fingerprints it, with a spinner unless `quiet`.
pub(super) fn unpack_and_fingerprint(
    path: &Path,
    params: &FeatureParams,
    limits: &Limits,
    quiet: bool,
) -> anyhow::Result<(Tree, Fingerprint)> {
    let data = fwsim::input::open(path)?;
    let name = path
        .file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_else(|| b"image".to_vec());
    let bar = super::show_progress(quiet).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message("unpacking");
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    });
    // Features are extracted while the image is unpacked; the last level's wait for them is
    // what the second message covers.
    let (tree, fp) = features::unpack_and_fingerprint(data, &name, limits, params, &|p| {
        if let Some(b) = &bar
            && p.pending == 0
        {
            b.set_message("extracting features");
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok((tree, fp))
}
