//! `fwsim inspect IMAGE [--json]`: a readable summary of one image for an analyst (see
//! [`fwsim::inspect`]).

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use fwsim::features::FeatureParams;

use super::LimitArgs;

/// Arguments of `fwsim inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The firmware image.
    pub image: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Items kept in each ranked list (vendor candidates, binaries, build values).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Runs `fwsim inspect`.
pub fn run(args: &InspectArgs, quiet: bool) -> anyhow::Result<()> {
    let limits = args.limits.to_limits()?;
    let (tree, fp) = super::fingerprint::unpack_and_fingerprint(
        &args.image,
        &FeatureParams::default(),
        &limits,
        quiet,
    )?;
    let summary = fwsim::inspect::summarize(&tree, &fp, args.top);
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &summary).context("writing output")?;
        writeln!(out).context("writing output")?;
    } else {
        write!(out, "{summary}").context("writing output")?;
    }
    out.flush().context("writing output")?;
    Ok(())
}
