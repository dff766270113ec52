//! `fwsim-corpus build` (the reference corpus under `target/refcorpus/`), `fwsim-corpus bench`
//! (accuracy of fwsim's pairs and of the baselines against the ground truth) and `fwsim-corpus
//! fit` (fwsim's decision thresholds fitted on the `fit` split).

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use fwsim_corpus::bench::{self, Scores};
use fwsim_corpus::builder::{self, Manifest};
use fwsim_corpus::fit;
use fwsim_corpus::plan::{Config, Pair};

#[derive(Parser)]
#[command(about = "fwsim's labelled reference corpus and accuracy benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Size {
    /// One family, three versions and a rebrand (what CI builds).
    Small,
    /// Two splits of six families with five kinds of rebrand.
    Full,
}

#[derive(Subcommand)]
enum Cmd {
    /// Builds the corpus: images, manifest.json, pairs.json/tsv, background-df.json.
    Build {
        /// Which configuration.
        #[arg(long, value_enum, default_value = "full")]
        config: Size,
        /// Output folder (cached between runs).
        #[arg(long, default_value = "target/refcorpus")]
        out: PathBuf,
    },
    /// Scores the corpus: the baselines, and fwsim's pairs when given.
    Bench {
        /// The corpus folder.
        #[arg(long, default_value = "target/refcorpus")]
        corpus: PathBuf,
        /// `fwsim matrix --json` output over the corpus images.
        #[arg(long)]
        scores: Option<PathBuf>,
        /// Folder of the real samples.
        #[arg(long, default_value = "../shared/realdata")]
        realdata: PathBuf,
        /// The fwsim binary that scores the real samples' pairs (`fwsim compare --json`);
        /// without it, the real-sample table has the baselines only.
        #[arg(long)]
        fwsim: Option<PathBuf>,
    },
    /// Prints `FAMILY=FINGERPRINT` for every image of one split, one a line: the members of the
    /// background table `scripts/background-table.sh` ships (`fwsim background-table`).
    BackgroundMembers {
        /// The corpus folder.
        #[arg(long, default_value = "target/refcorpus")]
        corpus: PathBuf,
        /// The split whose images are listed.
        #[arg(long, default_value = "fit")]
        split: String,
    },
    /// Fits fwsim's decision thresholds (`same_software`, `sdk_environment`, `sdk_share`) on
    /// the pairs of split `fit` only, and prints them as a `--thresholds` JSON object.
    Fit {
        /// The corpus folder.
        #[arg(long, default_value = "target/refcorpus")]
        corpus: PathBuf,
        /// `fwsim matrix --json` output over the corpus images.
        #[arg(long)]
        scores: PathBuf,
    },
}

/// Writes `text` to standard output; a closed pipe (`| head`) is success.
fn emit(text: &str) -> Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Build { config, out } => {
            let config = match config {
                Size::Small => Config::Small,
                Size::Full => Config::Full,
            };
            let start = Instant::now();
            let m = builder::build(&out, config, &|s| eprintln!("  {s}"))?;
            emit(&format!(
                "built {} images in {:.0} s under {}\n",
                m.images.len(),
                start.elapsed().as_secs_f64(),
                out.display()
            ))?;
        }
        Cmd::Bench {
            corpus,
            scores,
            realdata,
            fwsim,
        } => {
            let manifest: Manifest = serde_json::from_str(
                &fs::read_to_string(corpus.join("manifest.json"))
                    .context("no manifest.json: run `fwsim-corpus build` first")?,
            )?;
            let pairs: Vec<Pair> =
                serde_json::from_str(&fs::read_to_string(corpus.join("pairs.json"))?)?;
            let mut all = Vec::new();
            if let Some(path) = &scores {
                let s = bench::read_scores(&fs::read_to_string(path)?)?;
                all.push(Scores::from_pairs("fwsim", &s));
            }
            all.extend(bench::baseline_scores(&corpus, &manifest, &pairs)?);
            let splits: std::collections::BTreeSet<&str> =
                pairs.iter().map(|p| p.split.as_str()).collect();
            // With one split (the small configuration) thresholds are fitted and scored on it.
            let scored = if splits.contains("score") {
                "score"
            } else {
                "fit"
            };
            let n = pairs.iter().filter(|p| p.split == scored).count();
            let figures: Vec<_> = all
                .iter()
                .map(|s| bench::figures(s, &pairs, "fit", scored))
                .collect();
            let mut out = format!(
                "## Reference corpus ({} images)\n\n{}\n",
                manifest.images.len(),
                bench::report(&figures, "fit", scored, n)
            );
            fs::write(
                corpus.join("bench.json"),
                serde_json::to_string_pretty(&figures)?,
            )?;
            match bench::real_table(&realdata, fwsim.as_deref())? {
                Some(table) => out.push_str(&format!(
                    "## Real samples{}\n\n{table}",
                    if fwsim.is_some() {
                        " (fwsim compare, background rarity; ✗ where the verdict is not the expected relation)"
                    } else {
                        " (baselines)"
                    }
                )),
                None => out.push_str(&format!(
                    "(real samples not found at {})\n",
                    realdata.display()
                )),
            }
            emit(&out)?;
        }
        Cmd::BackgroundMembers { corpus, split } => {
            let manifest: Manifest = serde_json::from_str(
                &fs::read_to_string(corpus.join("manifest.json"))
                    .context("no manifest.json: run `fwsim-corpus build` first")?,
            )?;
            let mut out = String::new();
            for r in manifest.images.iter().filter(|r| r.plan.split == split) {
                // Cached by the build; made now if missing.
                builder::fingerprint(&corpus, &r.plan.name, &r.sha256)?;
                out.push_str(&format!(
                    "{}={}\n",
                    r.plan.family,
                    builder::fingerprint_path(&corpus, &r.plan.name).display()
                ));
            }
            anyhow::ensure!(!out.is_empty(), "no image of split `{split}`");
            emit(&out)?;
        }
        Cmd::Fit { corpus, scores } => {
            let pairs: Vec<Pair> = serde_json::from_str(
                &fs::read_to_string(corpus.join("pairs.json"))
                    .context("no pairs.json: run `fwsim-corpus build` first")?,
            )?;
            let s = bench::read_scores(&fs::read_to_string(&scores)?)?;
            let fitted = fit::fit(&pairs, &s, "fit")
                .context("split `fit` lacks same-family, shared-sdk or unrelated pairs")?;
            emit(&fit::report(&fitted, "fit"))?;
        }
    }
    Ok(())
}
