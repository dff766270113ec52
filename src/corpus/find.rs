//! `find`: which images of the corpus hold a file or section SHA-256, a digest similar to a given
//! ssdeep or TLSH digest, a key or certificate fingerprint, a build path or a string — and at
//! which paths.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::Labels;
use super::db::{Corpus, CorpusError, Result, group};
use super::schema::prefix;
use crate::hash::ssdeep::Ssdeep;
use crate::hash::tlsh::Tlsh;

/// Default lowest ssdeep score (0–100) of a `find` hit.
pub const DEFAULT_MIN_SSDEEP: u32 = 50;
/// Default largest TLSH distance (with the length term) of a `find` hit.
pub const DEFAULT_MAX_TLSH: u32 = 100;

/// What to look for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// A SHA-256 (hex): of an image, a file, a container or an ELF section.
    Sha256(String),
    /// Files whose ssdeep digest scores at least `min_score` against `digest`.
    Ssdeep {
        /// The digest.
        digest: String,
        /// Lowest score kept.
        min_score: u32,
    },
    /// Files whose TLSH digest lies at most `max_distance` from `digest`.
    Tlsh {
        /// The digest.
        digest: String,
        /// Largest distance kept.
        max_distance: u32,
    },
    /// A public or private key by the SHA-256 of its public part (as evidence records it).
    Key(String),
    /// A certificate by its SHA-256 (as evidence records it).
    Cert(String),
    /// Build paths containing this text.
    BuildPath(String),
    /// Evidence values of any kind, and file paths, containing this text (ASCII case ignored).
    Text(String),
}

/// One thing that matched in an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindMatch {
    /// The matched key: `file:<sha256>`, `section:<sha256>`, `container:<sha256>`,
    /// `image:<sha256>`, `ssdeep:<digest>`, `tlsh:<digest>`, `path:<path>` or
    /// `ev:<kind>:<value>`.
    pub key: String,
    /// Where in the image: the file's path (the evidence's file for `ev:` keys).
    pub path: String,
    /// Section name, evidence offset, or empty.
    pub detail: String,
    /// ssdeep score or TLSH distance, for similarity queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u32>,
}

/// An image holding what was looked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindHit {
    /// Database id.
    pub id: i64,
    /// Image name.
    pub name: String,
    /// Image SHA-256.
    pub sha256: String,
    /// Its labels.
    pub labels: Labels,
    /// Its family.
    pub family: String,
    /// What matched, sorted by path then key.
    pub matches: Vec<FindMatch>,
}

impl Corpus {
    /// The images holding what `query` describes, by id, each with every path it matched at.
    pub fn find(&self, query: &Query) -> Result<Vec<FindHit>> {
        let tx = self.conn.unchecked_transaction()?;
        // (key id, key, score) of every matching key.
        let mut keys: Vec<(i64, String, Option<u32>)> = Vec::new();
        let mut image_matches: Vec<(i64, FindMatch)> = Vec::new();
        match query {
            Query::Sha256(h) => {
                let h = hex_arg(h, "SHA-256", 64)?;
                for p in [prefix::FILE, prefix::SECTION, prefix::CONTAINER] {
                    keys.extend(exact(&tx, &format!("{p}{h}"))?);
                }
                let mut stmt = tx.prepare("SELECT id, name FROM images WHERE sha256 = ?1")?;
                let rows = stmt.query_map([&h], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)))?;
                for row in rows {
                    let (id, name) = row?;
                    image_matches.push((
                        id,
                        FindMatch {
                            key: format!("image:{h}"),
                            path: name,
                            detail: String::new(),
                            score: None,
                        },
                    ));
                }
            }
            Query::Key(h) => {
                let h = hex_arg(h, "key fingerprint", 64)?;
                for kind in ["public_key", "private_key"] {
                    keys.extend(exact(&tx, &format!("{}{kind}:{h}", prefix::EVIDENCE))?);
                }
            }
            Query::Cert(h) => {
                let h = hex_arg(h, "certificate fingerprint", 64)?;
                keys.extend(exact(&tx, &format!("{}certificate:{h}", prefix::EVIDENCE))?);
            }
            Query::BuildPath(p) => {
                let pre = format!("{}build_path:", prefix::EVIDENCE);
                scan(
                    &tx,
                    &pre,
                    |k| {
                        k.strip_prefix(pre.as_str())
                            .is_some_and(|v| v.contains(p.as_str()))
                            .then_some(None)
                    },
                    &mut keys,
                )?;
            }
            Query::Text(s) => {
                let needle = s.to_ascii_lowercase();
                for pre in [prefix::EVIDENCE, prefix::PATH] {
                    scan(
                        &tx,
                        pre,
                        |k| {
                            let value = k.strip_prefix(pre)?;
                            // `ev:<kind>:<value>`: match the value, not the kind.
                            let value = if pre == prefix::EVIDENCE {
                                value.split_once(':').map_or(value, |(_, v)| v)
                            } else {
                                value
                            };
                            value.to_ascii_lowercase().contains(&needle).then_some(None)
                        },
                        &mut keys,
                    )?;
                }
            }
            Query::Ssdeep { digest, min_score } => {
                let q: Ssdeep = digest
                    .trim()
                    .parse()
                    .map_err(|e| crate::Error::Invalid(format!("not an ssdeep digest: {e}")))?;
                let q = q.prepare();
                scan(
                    &tx,
                    prefix::SSDEEP,
                    |k| {
                        let d: Ssdeep = k.strip_prefix(prefix::SSDEEP)?.parse().ok()?;
                        let score = q.compare(&d.prepare())?;
                        (score >= *min_score && score > 0).then_some(Some(score))
                    },
                    &mut keys,
                )?;
            }
            Query::Tlsh {
                digest,
                max_distance,
            } => {
                let q: Tlsh = digest
                    .trim()
                    .parse()
                    .map_err(|e| crate::Error::Invalid(format!("{e}")))?;
                scan(
                    &tx,
                    prefix::TLSH,
                    |k| {
                        let d: Tlsh = k.strip_prefix(prefix::TLSH)?.parse().ok()?;
                        let dist = q.diff(&d);
                        (dist <= *max_distance).then_some(Some(dist))
                    },
                    &mut keys,
                )?;
            }
        }
        let mut rows = image_matches;
        {
            let mut post =
                tx.prepare_cached("SELECT image_id, path, detail FROM postings WHERE key_id = ?1")?;
            for (kid, key, score) in &keys {
                let found = post.query_map(params![kid], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        FindMatch {
                            key: key.clone(),
                            path: r.get(1)?,
                            detail: r.get(2)?,
                            score: *score,
                        },
                    ))
                })?;
                for f in found {
                    rows.push(f?);
                }
            }
        }
        let grouped: BTreeMap<i64, Vec<FindMatch>> = group(rows);
        let mut hits = Vec::with_capacity(grouped.len());
        {
            let mut img = tx.prepare_cached(
                "SELECT i.name, i.sha256, i.vendor, i.product, i.fw_version, f.name
                 FROM images i JOIN families f ON f.id = i.family_id WHERE i.id = ?1",
            )?;
            let mut tags =
                tx.prepare_cached("SELECT tag FROM tags WHERE image_id = ?1 ORDER BY tag")?;
            for (id, mut matches) in grouped {
                matches.sort_by(|a, b| {
                    (&a.path, &a.key, &a.detail).cmp(&(&b.path, &b.key, &b.detail))
                });
                matches.dedup();
                let tag_list: Vec<String> = tags
                    .query_map([id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let hit = img.query_row([id], |r| {
                    Ok(FindHit {
                        id,
                        name: r.get(0)?,
                        sha256: r.get(1)?,
                        labels: Labels {
                            vendor: r.get(2)?,
                            product: r.get(3)?,
                            fw_version: r.get(4)?,
                            tags: tag_list,
                        },
                        family: r.get(5)?,
                        matches,
                    })
                })?;
                hits.push(hit);
            }
        }
        tx.finish()?;
        Ok(hits)
    }
}

/// A hex argument, lower-cased, of `len` digits.
fn hex_arg(h: &str, what: &str, len: usize) -> Result<String> {
    let h = h.trim().to_ascii_lowercase();
    if h.len() != len || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CorpusError::Fwsim(crate::Error::Invalid(format!(
            "a {what} is {len} hex digits: '{h}'"
        ))));
    }
    Ok(h)
}

/// The key `key`, if present.
fn exact(tx: &rusqlite::Transaction<'_>, key: &str) -> Result<Option<(i64, String, Option<u32>)>> {
    use rusqlite::OptionalExtension;
    Ok(tx
        .query_row("SELECT id FROM keys WHERE key = ?1", [key], |r| r.get(0))
        .optional()?
        .map(|id| (id, key.to_owned(), None)))
}

/// Every key starting with `pre` for which `keep` returns `Some(score)`.
fn scan(
    tx: &rusqlite::Transaction<'_>,
    pre: &str,
    keep: impl Fn(&str) -> Option<Option<u32>>,
    out: &mut Vec<(i64, String, Option<u32>)>,
) -> Result<()> {
    let (lo, hi) = prefix::range(pre);
    let mut stmt = tx.prepare("SELECT id, key FROM keys WHERE key >= ?1 AND key < ?2")?;
    let mut rows = stmt.query(params![lo, hi])?;
    while let Some(r) = rows.next()? {
        let key: String = r.get(1)?;
        if let Some(score) = keep(&key) {
            out.push((r.get(0)?, key, score));
        }
    }
    Ok(())
}
