//! Export and import of a corpus as JSON Lines, one `{labels, family, fingerprint}` object per
//! image: how a corpus is shared without the firmware. An import is one transaction.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::Labels;
use super::db::{AddOutcome, Corpus, CorpusError, Result, add_in};
use crate::fingerprint::Fingerprint;

/// One line of an export.
#[derive(Serialize)]
struct LineOut<'a> {
    labels: &'a Labels,
    family: &'a str,
    fingerprint: &'a Fingerprint,
}

/// One line of an import (the fingerprint is checked by [`Fingerprint::from_json`]).
#[derive(Deserialize)]
struct LineIn {
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    family: Option<String>,
    fingerprint: serde_json::Value,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOutcome {
    /// Ids of the images added.
    pub added: Vec<i64>,
    /// Ids of the images that were already present (same SHA-256).
    pub already_present: Vec<i64>,
}

impl Corpus {
    /// Writes every image as one JSON line `{labels, family, fingerprint}`, by id. Returns the
    /// number of images written.
    pub fn export(&self, w: &mut impl Write) -> Result<usize> {
        let entries = self.entries()?;
        for e in &entries {
            let line = LineOut {
                labels: &e.labels,
                family: &e.family,
                fingerprint: &e.fingerprint,
            };
            serde_json::to_writer(&mut *w, &line)
                .map_err(std::io::Error::other)
                .map_err(io)?;
            w.write_all(b"\n").map_err(io)?;
        }
        Ok(entries.len())
    }

    /// Adds every image of an export in ONE transaction: either all lines are taken or, on any
    /// refused or malformed line, none. Images already present are skipped and reported.
    pub fn import(&mut self, r: impl BufRead) -> Result<ImportOutcome> {
        let mut fps = Vec::new();
        for (n, line) in r.lines().enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            let at = |m: String| {
                CorpusError::Fwsim(crate::Error::Invalid(format!("line {}: {m}", n + 1)))
            };
            let l: LineIn = serde_json::from_str(&line)
                .map_err(|e| at(format!("not a corpus export line: {e}")))?;
            let fp =
                Fingerprint::from_json(&l.fingerprint.to_string(), self.params()).map_err(|e| {
                    match e {
                        crate::Error::Refused(m) => CorpusError::Fwsim(crate::Error::Refused(
                            format!("line {}: {m}", n + 1),
                        )),
                        other => at(other.to_string()),
                    }
                })?;
            fps.push((l.labels, l.family, fp));
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = ImportOutcome::default();
        for (labels, family, fp) in &fps {
            match add_in(&tx, fp, labels, family.as_deref())? {
                AddOutcome::Added(id) => out.added.push(id),
                AddOutcome::AlreadyPresent(id) => out.already_present.push(id),
            }
        }
        tx.commit()?;
        Ok(out)
    }
}

fn io(source: std::io::Error) -> CorpusError {
    CorpusError::Fwsim(crate::Error::Io {
        path: "(export)".into(),
        source,
    })
}

/// The extraction parameters of the first fingerprint of an export, to create a new corpus for
/// it (`None` when the text holds no readable line).
pub fn first_params(text: &str) -> Option<crate::fingerprint::Params> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let l: LineIn = serde_json::from_str(line).ok()?;
    serde_json::from_value(l.fingerprint.get("params")?.clone()).ok()
}
