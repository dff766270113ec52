//! Command-line interface: clap types live only here. Raw arguments become a validated command,
//! the command runs on library code, and its outcome becomes one of three exit codes.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod compare;
mod corpus;
mod demo;
mod fingerprint;
mod hash;
mod inspect;
mod matrix;
mod scan;
mod unpack;

/// fwsim — is this firmware the same software as one we know?
#[derive(Debug, Parser)]
#[command(name = "fwsim", version, about, long_about = None)]
pub struct Cli {
    /// No progress output on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// SHA-256, ssdeep and TLSH of files, or the fuzzy scores of two files.
    Hash(hash::HashArgs),
    /// List (or safely write) every file inside an image, recursively.
    Unpack(unpack::UnpackArgs),
    /// Unpack an image and write its fingerprint (files, classes, digests, ELF anatomy,
    /// components, coverage) as JSON.
    Fingerprint(fingerprint::FingerprintArgs),
    /// A readable summary of an image: partitions, coverage, platform, vendor candidates,
    /// components, build environment, keys, the largest vendor binaries.
    Inspect(inspect::InspectArgs),
    /// The corpus database: add images or fingerprints, list, remove, set-family, export,
    /// import, find.
    Corpus(corpus::CorpusArgs),
    /// One image against another: score 0–100, verdict and evidence.
    Compare(compare::CompareArgs),
    /// One image against a corpus: the best matches, with score, verdict and evidence.
    Scan(scan::ScanArgs),
    /// Every image against every other: scores, verdicts and family clusters.
    Matrix(matrix::MatrixArgs),
    /// Build a few vendor images with fwsim's own writers and show a rebrand being found.
    Demo(demo::DemoArgs),
    /// Write the background rarity table fwsim ships (maintainers only).
    #[command(hide = true)]
    BackgroundTable(compare::BackgroundArgs),
}

/// Resource limits, shared by every command that unpacks.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Deepest container nesting.
    #[arg(long, value_name = "N")]
    pub max_depth: Option<u32>,
    /// Total bytes unpacking may produce (suffixes K, M, G allowed).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_output: Option<u64>,
    /// Most bytes one unpack may hold in memory at once (suffixes K, M, G allowed).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<u64>,
    /// Largest expansion ratio of one compressed blob.
    #[arg(long, value_name = "N")]
    pub max_ratio: Option<u64>,
    /// Most entries in one tree.
    #[arg(long, value_name = "N")]
    pub max_entries: Option<u64>,
    /// Largest single file or stream (suffixes K, M, G allowed).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<u64>,
    /// Time budget for one image, in seconds.
    #[arg(long, value_name = "SECS")]
    pub time_budget: Option<f64>,
    /// Most carving candidates validated in one blob.
    #[arg(long, value_name = "N")]
    pub max_carve_candidates: Option<usize>,
    /// Most bytes candidates that then fail may decode in one blob (suffixes K, M, G allowed).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_failed_carve: Option<u64>,
}

impl LimitArgs {
    /// The limits these flags describe, on top of the defaults.
    pub fn to_limits(&self) -> anyhow::Result<fwsim::unpack::Limits> {
        let mut l = fwsim::unpack::Limits::default();
        if let Some(v) = self.max_depth {
            l.max_depth = v;
        }
        if let Some(v) = self.max_output {
            l.max_output_bytes = v;
        }
        if let Some(v) = self.max_memory {
            l.max_memory_bytes = v;
        }
        if let Some(v) = self.max_ratio {
            l.max_ratio = v;
        }
        if let Some(v) = self.max_entries {
            l.max_entries = v;
        }
        if let Some(v) = self.max_file_size {
            l.max_file_bytes = v;
        }
        if let Some(v) = self.time_budget {
            if !(v.is_finite() && v > 0.0) {
                anyhow::bail!("--time-budget must be a positive number of seconds");
            }
            l.time_budget = std::time::Duration::from_secs_f64(v);
        }
        if let Some(v) = self.max_carve_candidates {
            l.max_carve_candidates = v;
        }
        if let Some(v) = self.max_failed_carve {
            l.max_failed_carve_bytes = v;
        }
        Ok(l)
    }
}

/// Parses `123`, `64K`, `512M`, `8G` (binary multiples).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in '{s}'")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map_err(|e| format!("'{s}': {e}"))?
        .checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Exit codes, as documented in the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success (also when some blobs failed: they are reported).
    Ok = 0,
    /// Usage error or unreadable input.
    Usage = 1,
    /// Internal error.
    Internal = 2,
}

/// Whether an error chain ends in a closed pipe (which is success for a CLI).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Runs the CLI.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage as u8 } else { 0 });
        }
    };
    let outcome = match &cli.command {
        Command::Hash(args) => hash::run(args),
        Command::Unpack(args) => unpack::run(args, cli.quiet),
        Command::Demo(args) => demo::run(args, cli.quiet),
        Command::Compare(args) => compare::run(args, cli.quiet),
        Command::BackgroundTable(args) => compare::run_background(args, cli.quiet),
        Command::Fingerprint(args) => fingerprint::run(args, cli.quiet),
        Command::Inspect(args) => inspect::run(args, cli.quiet),
        Command::Corpus(args) => corpus::run(args, cli.quiet),
        Command::Scan(args) => scan::run(args, cli.quiet),
        Command::Matrix(args) => matrix::run(args, cli.quiet),
    };
    match outcome {
        Ok(()) => ExitCode::from(Exit::Ok as u8),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(Exit::Ok as u8),
        Err(e) => {
            let code = if e.downcast_ref::<fwsim::Error>().is_some() {
                Exit::Usage
            } else {
                Exit::Internal
            };
            let _ = writeln!(io::stderr(), "fwsim: {e:#}");
            ExitCode::from(code as u8)
        }
    }
}

/// Whether progress should be drawn: stderr is a terminal and `--quiet` was not given.
pub fn show_progress(quiet: bool) -> bool {
    use std::io::IsTerminal;
    !quiet && io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("3"), Ok(3));
        assert!(parse_size("1Q").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
