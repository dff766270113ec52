//! [`Corpus`]: the corpus database file — create or open (refusing anything that is not a fwsim
//! corpus, without writing to it), add and remove images in one transaction each, move images
//! between families, and load entries and document frequencies for comparison.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::schema::{self, prefix};
use super::{Entry, Labels};
use crate::compare::rarity::DocFreq;
use crate::fingerprint::{Fingerprint, Params};

/// How long a writer waits for another writer's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest fingerprint (uncompressed JSON) read back from a database: a corpus file may come from
/// someone else, and its blobs are decompressed only up to this size.
pub const MAX_FINGERPRINT_BYTES: usize = 1 << 30;

/// zstd level of stored fingerprints.
const ZSTD_LEVEL: i32 = 3;

/// Errors of the corpus database.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The file is not a fwsim corpus (or one this version cannot read); it was not modified.
    #[error("{}: not a fwsim corpus database: {reason}", path.display())]
    NotACorpus {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A fingerprint or request refused (other parameters, missing file …), or a file error.
    #[error(transparent)]
    Fwsim(#[from] crate::Error),
    /// No image with this id.
    #[error("no image with id {0} in the corpus")]
    NoSuchImage(i64),
    /// A stored fingerprint could not be read back.
    #[error("image {id}: stored fingerprint unreadable: {reason}")]
    BadRecord {
        /// The image id.
        id: i64,
        /// Why.
        reason: String,
    },
    /// SQLite failed.
    #[error("corpus database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Result of the corpus stage.
pub type Result<T, E = CorpusError> = std::result::Result<T, E>;

/// What [`Corpus::add`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "id")]
pub enum AddOutcome {
    /// Added under this id.
    Added(i64),
    /// An image with the same SHA-256 was already there, under this id; nothing changed.
    AlreadyPresent(i64),
}

impl AddOutcome {
    /// The image's id either way.
    pub fn id(self) -> i64 {
        match self {
            AddOutcome::Added(id) | AddOutcome::AlreadyPresent(id) => id,
        }
    }
}

/// One image as [`Corpus::list`] shows it (without its fingerprint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRow {
    /// Database id.
    pub id: i64,
    /// SHA-256 of the image.
    pub sha256: String,
    /// Its name when fingerprinted.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Labels given when added.
    pub labels: Labels,
    /// Its family.
    pub family: String,
    /// When it was added (UTC, ISO 8601).
    pub added: String,
    /// Number of unique files in its fingerprint.
    pub files: u64,
}

/// The corpus database: fingerprints with labels and families, postings for `find`, and
/// document frequencies over families. See the module doc of [`crate::corpus`] for the tables.
#[derive(Debug)]
pub struct Corpus {
    pub(super) conn: Connection,
    params: Params,
    path: PathBuf,
}

impl Corpus {
    /// Creates a new, empty corpus at `path` for fingerprints made with `params`. Fails when
    /// anything exists at `path` (never overwrites).
    pub fn create(path: &Path, params: &Params) -> Result<Self> {
        let io = |source| crate::Error::Io {
            path: path.to_path_buf(),
            source,
        };
        // `create_new` is atomic: of two processes creating the same path, one fails here.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    crate::Error::Invalid(format!(
                        "{}: already exists (a corpus is created only at a new path)",
                        path.display()
                    ))
                } else {
                    io(e)
                }
            })?;
        let mut conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(crate::Error::Invalid(format!(
                "{}: the file system does not support SQLite's WAL mode (got {mode})",
                path.display()
            ))
            .into());
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let params_json = serde_json::to_string(params)
            .map_err(|e| crate::Error::Invalid(format!("parameters: {e}")))?;
        let tx = conn.transaction()?;
        tx.execute_batch(schema::CREATE)?;
        tx.pragma_update(None, "application_id", schema::APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", schema::SCHEMA_VERSION)?;
        let mut put = tx.prepare("INSERT INTO meta(name, value) VALUES (?1, ?2)")?;
        put.execute(params![schema::META_PARAMS, params_json])?;
        put.execute(params![
            schema::META_FINGERPRINT_SCHEMA,
            crate::fingerprint::SCHEMA_VERSION.to_string()
        ])?;
        put.execute(params![
            schema::META_CREATED_BY,
            concat!("fwsim ", env!("CARGO_PKG_VERSION"))
        ])?;
        drop(put);
        tx.commit()?;
        Ok(Self {
            conn,
            params: params.clone(),
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing corpus. Anything else — a missing file, a text file, a corrupt file,
    /// another application's SQLite database, a corpus of a newer layout or with fingerprints of
    /// another schema — is refused with the reason, and the file is left exactly as it was.
    pub fn open(path: &Path) -> Result<Self> {
        schema::check_header(path)?;
        let not = |reason: String| CorpusError::NotACorpus {
            path: path.to_path_buf(),
            reason,
        };
        // Read-write without create: nothing below writes until the checks passed.
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| not(format!("SQLite cannot open it: {e}")))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let app: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| not(format!("corrupt or unreadable: {e}")))?;
        if app != schema::APPLICATION_ID {
            return Err(not(format!(
                "an SQLite database of another application (application_id {app:#x})"
            )));
        }
        let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > schema::SCHEMA_VERSION {
            return Err(not(format!(
                "made by a newer fwsim (corpus layout {version}; this fwsim reads layout {})",
                schema::SCHEMA_VERSION
            )));
        }
        if version != schema::SCHEMA_VERSION {
            return Err(not(format!("unknown corpus layout {version}")));
        }
        let meta = |name: &str| -> Result<Option<String>> {
            conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| not(format!("corrupt: {e}")))
        };
        let params: Params = meta(schema::META_PARAMS)?
            .ok_or_else(|| not("no extraction parameters recorded".into()))
            .and_then(|j| {
                serde_json::from_str(&j)
                    .map_err(|e| not(format!("extraction parameters unreadable: {e}")))
            })?;
        let fp_schema = meta(schema::META_FINGERPRINT_SCHEMA)?;
        let current = crate::fingerprint::SCHEMA_VERSION.to_string();
        if fp_schema.as_deref() != Some(current.as_str()) {
            return Err(crate::Error::Refused(format!(
                "{}: the corpus holds fingerprints of schema {}, this fwsim makes schema {current}: \
                 build a new corpus from the images",
                path.display(),
                fp_schema.as_deref().unwrap_or("(none)")
            ))
            .into());
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Self {
            conn,
            params,
            path: path.to_path_buf(),
        })
    }

    /// The extraction parameters every fingerprint of this corpus was made with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses a fingerprint of another schema or with other parameters than the corpus'.
    pub fn check_fingerprint(&self, fp: &Fingerprint) -> Result<()> {
        if fp.schema_version != crate::fingerprint::SCHEMA_VERSION {
            return Err(crate::Error::Refused(format!(
                "{}: fingerprint schema version {} is not {}: recompute it from the image",
                fp.image.name,
                fp.schema_version,
                crate::fingerprint::SCHEMA_VERSION
            ))
            .into());
        }
        if fp.params != self.params {
            return Err(crate::Error::Refused(format!(
                "{}: fingerprint made with other extraction parameters than the corpus \
                 ({:?}; the corpus holds {:?}): recompute it with the corpus' parameters",
                fp.image.name, fp.params, self.params
            ))
            .into());
        }
        Ok(())
    }

    /// Adds one image in one transaction: its fingerprint, labels, postings, and the document
    /// frequencies of its items. `family` names its family; `None` gives it a family of its own,
    /// named from its SHA-256 (`img-<first 12 hex digits>`). An image already present (same
    /// SHA-256) is left as it is.
    pub fn add(
        &mut self,
        fp: &Fingerprint,
        labels: &Labels,
        family: Option<&str>,
    ) -> Result<AddOutcome> {
        self.check_fingerprint(fp)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let outcome = add_in(&tx, fp, labels, family)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Removes an image in one transaction, lowering the document frequency of each of its items
    /// whose family no other image holds it in. An emptied family is removed.
    pub fn remove(&mut self, id: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        remove_in(&tx, id)?;
        tx.commit()?;
        Ok(())
    }

    /// Moves an image to the family `name` (created when new) in one transaction, updating the
    /// document frequencies: an item counts once for each family holding it. The hook for
    /// assigning families by similarity.
    pub fn assign_family(&mut self, id: i64, name: &str) -> Result<()> {
        let name = family_name(name)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let old = image_family(&tx, id)?;
        let new = family_id(&tx, name)?;
        if old != new {
            leave_family(&tx, id, old)?;
            tx.execute(
                "UPDATE images SET family_id = ?1 WHERE id = ?2",
                params![new, id],
            )?;
            join_family(&tx, id, new)?;
            drop_empty_family(&tx, old)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every image without its fingerprint, by id.
    pub fn list(&self) -> Result<Vec<ImageRow>> {
        let tags = self.tags()?;
        let mut stmt = self.conn.prepare(
            "SELECT i.id, i.sha256, i.name, i.size, i.vendor, i.product, i.fw_version, f.name,
                    i.added, i.files
             FROM images i JOIN families f ON f.id = i.family_id ORDER BY i.id",
        )?;
        let rows = stmt.query_map([], |r| {
            let id: i64 = r.get(0)?;
            Ok(ImageRow {
                id,
                sha256: r.get(1)?,
                name: r.get(2)?,
                size: uint(r.get(3)?),
                labels: Labels {
                    vendor: r.get(4)?,
                    product: r.get(5)?,
                    fw_version: r.get(6)?,
                    tags: tags.get(&id).cloned().unwrap_or_default(),
                },
                family: r.get(7)?,
                added: r.get(8)?,
                files: uint(r.get(9)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Number of images.
    pub fn len(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM images", [], |r| r.get(0))?;
        Ok(uint(n))
    }

    /// Whether the corpus holds no image.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every image with its fingerprint, by id; the fingerprints are decoded in parallel.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let tx = self.conn.unchecked_transaction()?; // one snapshot for all queries
        let raw = raw_entries(&tx)?;
        tx.finish()?;
        decode_all(raw)
    }

    /// [`Corpus::entries`] and [`Corpus::doc_freq`] read from one snapshot, so that they agree
    /// even while another process adds: what the comparison stage loads.
    pub fn load(&self) -> Result<(Vec<Entry>, DocFreq)> {
        let tx = self.conn.unchecked_transaction()?;
        let raw = raw_entries(&tx)?;
        // Fingerprints decode on the thread pool while this thread reads the frequencies.
        let (entries, df) = std::thread::scope(|s| {
            let decoding = s.spawn(|| decode_all(raw));
            let df = doc_freq_in(&tx);
            (decoding.join(), df)
        });
        let df = df?;
        tx.finish()?;
        let entries = entries.map_err(|_| CorpusError::BadRecord {
            id: 0,
            reason: "decoding stopped".into(),
        })??;
        Ok((entries, df))
    }

    /// The fingerprint of one image.
    pub fn fingerprint(&self, id: i64) -> Result<Fingerprint> {
        let (len, blob): (i64, Vec<u8>) = self
            .conn
            .query_row(
                "SELECT fp_len, fingerprint FROM images WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(CorpusError::NoSuchImage(id))?;
        decode(id, len, &blob)
    }

    /// The stored document frequencies over families (kept current by every add, removal and
    /// family move; read, never recomputed).
    pub fn doc_freq(&self) -> Result<DocFreq> {
        let tx = self.conn.unchecked_transaction()?;
        let df = doc_freq_in(&tx)?;
        tx.finish()?;
        Ok(df)
    }

    /// Runs SQLite's `PRAGMA integrity_check`: the problems found, none when the file is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }

    fn tags(&self) -> Result<HashMap<i64, Vec<String>>> {
        tags_in(&self.conn)
    }
}

/// An image row with its compressed fingerprint, before decoding.
type RawEntry = (i64, Labels, String, i64, Vec<u8>);

fn raw_entries(conn: &Connection) -> Result<Vec<RawEntry>> {
    let tags = tags_in(conn)?;
    let mut stmt = conn.prepare(
        "SELECT i.id, i.vendor, i.product, i.fw_version, f.name, i.fp_len, i.fingerprint
         FROM images i JOIN families f ON f.id = i.family_id ORDER BY i.id",
    )?;
    let rows = stmt.query_map([], |r| {
        let id: i64 = r.get(0)?;
        Ok((
            id,
            Labels {
                vendor: r.get(1)?,
                product: r.get(2)?,
                fw_version: r.get(3)?,
                tags: tags.get(&id).cloned().unwrap_or_default(),
            },
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn decode_all(raw: Vec<RawEntry>) -> Result<Vec<Entry>> {
    raw.into_par_iter()
        .map(|(id, labels, family, len, blob)| {
            Ok(Entry {
                id,
                labels,
                family,
                fingerprint: decode(id, len, &blob)?,
            })
        })
        .collect()
}

fn doc_freq_in(conn: &Connection) -> Result<DocFreq> {
    let families: u32 = conn.query_row("SELECT COUNT(*) FROM families", [], |r| r.get(0))?;
    let mut counts = HashMap::new();
    let mut stmt = conn.prepare("SELECT key, families FROM keys WHERE families > 0")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        counts.insert(r.get::<_, String>(0)?, r.get::<_, u32>(1)?);
    }
    Ok(DocFreq { families, counts })
}

/// Tags of every image, sorted.
fn tags_in(conn: &Connection) -> Result<HashMap<i64, Vec<String>>> {
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    let mut stmt = conn.prepare("SELECT image_id, tag FROM tags ORDER BY image_id, tag")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        out.entry(r.get(0)?).or_default().push(r.get(1)?);
    }
    Ok(out)
}

/// Decompresses and parses a stored fingerprint, at most [`MAX_FINGERPRINT_BYTES`].
fn decode(id: i64, len: i64, blob: &[u8]) -> Result<Fingerprint> {
    let bad = |reason: String| CorpusError::BadRecord { id, reason };
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_FINGERPRINT_BYTES {
        return Err(bad(format!("claims {len} bytes")));
    }
    let json = zstd::bulk::decompress(blob, len).map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))
}

/// A count or size as SQLite stores it (saturating at `i64::MAX`).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored count or size (a negative one, possible only in a tampered file, reads as 0).
fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Checks a family name given by a user.
fn family_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() {
        return Err(crate::Error::Invalid("a family name cannot be empty".into()).into());
    }
    Ok(name)
}

/// The id of family `name`, created when new.
pub(super) fn family_id(tx: &Transaction<'_>, name: &str) -> Result<i64> {
    tx.execute(
        "INSERT INTO families(name) VALUES (?1) ON CONFLICT(name) DO NOTHING",
        [name],
    )?;
    Ok(
        tx.query_row("SELECT id FROM families WHERE name = ?1", [name], |r| {
            r.get(0)
        })?,
    )
}

fn image_family(tx: &Transaction<'_>, id: i64) -> Result<i64> {
    tx.query_row("SELECT family_id FROM images WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or(CorpusError::NoSuchImage(id))
}

/// Raises by one the document frequency of every counted key of image `id` that no other image
/// of family `fam` posts. Run after the image joined the family. The other images of the family
/// are walked (index on `family_id`) and each probed by primary key, so the cost grows with the
/// family's size, not with how many images of the whole corpus post a common key.
fn join_family(tx: &Transaction<'_>, id: i64, fam: i64) -> Result<()> {
    tx.execute(
        "UPDATE keys SET families = families + 1 WHERE counted AND id IN (
             SELECT DISTINCT p.key_id FROM postings p WHERE p.image_id = ?1
             AND NOT EXISTS (SELECT 1 FROM images m WHERE m.family_id = ?2 AND m.id <> ?1
                             AND EXISTS (SELECT 1 FROM postings q
                                         WHERE q.key_id = p.key_id AND q.image_id = m.id)))",
        params![id, fam],
    )?;
    Ok(())
}

/// Lowers by one the document frequency of every counted key of image `id` that no other image
/// of family `fam` posts. Run before the image leaves the family.
fn leave_family(tx: &Transaction<'_>, id: i64, fam: i64) -> Result<()> {
    tx.execute(
        "UPDATE keys SET families = families - 1 WHERE counted AND id IN (
             SELECT DISTINCT p.key_id FROM postings p WHERE p.image_id = ?1
             AND NOT EXISTS (SELECT 1 FROM images m WHERE m.family_id = ?2 AND m.id <> ?1
                             AND EXISTS (SELECT 1 FROM postings q
                                         WHERE q.key_id = p.key_id AND q.image_id = m.id)))",
        params![id, fam],
    )?;
    Ok(())
}

fn drop_empty_family(tx: &Transaction<'_>, fam: i64) -> Result<()> {
    tx.execute(
        "DELETE FROM families WHERE id = ?1
         AND NOT EXISTS (SELECT 1 FROM images WHERE family_id = ?1)",
        [fam],
    )?;
    Ok(())
}

/// One row of the postings table before insertion: key, path, detail.
pub(super) type Posting = (String, String, String);

/// The postings of a fingerprint: every key `find` looks up (see [`schema::prefix`]) with the
/// path it was found at and a detail (section name, evidence offset).
pub(super) fn postings(fp: &Fingerprint) -> Vec<Posting> {
    let mut out = Vec::new();
    for f in &fp.files {
        for p in &f.paths {
            let p = p.as_str();
            if f.unpacked {
                out.push((
                    format!("{}{}", prefix::CONTAINER, f.sha256),
                    p.into(),
                    "".into(),
                ));
                continue;
            }
            out.push((format!("{}{}", prefix::FILE, f.sha256), p.into(), "".into()));
            out.push((format!("{}{p}", prefix::PATH), p.into(), "".into()));
            if let Some(d) = &f.digests.ssdeep {
                out.push((format!("{}{d}", prefix::SSDEEP), p.into(), "".into()));
            }
            if let Some(d) = &f.digests.tlsh {
                out.push((format!("{}{d}", prefix::TLSH), p.into(), "".into()));
            }
            if let Some(elf) = &f.elf {
                // The same sections as `rarity::items`: those with a fuzzy digest.
                for s in elf
                    .sections
                    .iter()
                    .filter(|s| s.ssdeep.is_some() || s.tlsh.is_some())
                {
                    out.push((
                        format!("{}{}", prefix::SECTION, s.sha256),
                        p.into(),
                        s.name.clone(),
                    ));
                }
            }
        }
    }
    for e in &fp.evidence {
        out.push((
            format!("{}{}:{}", prefix::EVIDENCE, e.kind.as_str(), e.value),
            e.path.clone(),
            format!("offset {}", e.offset),
        ));
    }
    out
}

/// [`Corpus::add`] inside a transaction.
pub(super) fn add_in(
    tx: &Transaction<'_>,
    fp: &Fingerprint,
    labels: &Labels,
    family: Option<&str>,
) -> Result<AddOutcome> {
    if let Some(id) = tx
        .query_row(
            "SELECT id FROM images WHERE sha256 = ?1",
            [&fp.image.sha256],
            |r| r.get(0),
        )
        .optional()?
    {
        return Ok(AddOutcome::AlreadyPresent(id));
    }
    let family = match family {
        Some(f) => family_name(f)?.to_owned(),
        None => format!(
            "img-{}",
            fp.image.sha256.get(..12).unwrap_or(&fp.image.sha256)
        ),
    };
    let fam = family_id(tx, &family)?;
    let json =
        serde_json::to_vec(fp).map_err(|e| crate::Error::Invalid(format!("fingerprint: {e}")))?;
    let blob = zstd::bulk::compress(&json, ZSTD_LEVEL).map_err(|e| crate::Error::Io {
        path: PathBuf::from("(zstd)"),
        source: e,
    })?;
    tx.execute(
        "INSERT INTO images(sha256, name, size, vendor, product, fw_version, family_id, added,
                            files, fp_len, fingerprint)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?8, ?9, ?10)",
        params![
            fp.image.sha256,
            fp.image.name,
            int(fp.image.size),
            labels.vendor,
            labels.product,
            labels.fw_version,
            fam,
            int(fp.files.len() as u64),
            int(json.len() as u64),
            blob
        ],
    )?;
    let id = tx.last_insert_rowid();
    {
        let mut tag =
            tx.prepare_cached("INSERT OR IGNORE INTO tags(image_id, tag) VALUES (?1, ?2)")?;
        for t in &labels.tags {
            tag.execute(params![id, t])?;
        }
    }
    insert_postings(tx, id, &postings(fp))?;
    join_family(tx, id, fam)?;
    Ok(AddOutcome::Added(id))
}

fn insert_postings(tx: &Transaction<'_>, id: i64, rows: &[Posting]) -> Result<()> {
    let mut new_key = tx.prepare_cached(
        "INSERT INTO keys(key, counted) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
    )?;
    let mut key_id = tx.prepare_cached("SELECT id FROM keys WHERE key = ?1")?;
    let mut post = tx.prepare_cached(
        "INSERT INTO postings(key_id, image_id, path, detail) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut ids: HashMap<&str, i64> = HashMap::new();
    let mut seen: HashSet<&Posting> = HashSet::with_capacity(rows.len());
    for row in rows {
        if !seen.insert(row) {
            continue;
        }
        let (key, path, detail) = row;
        let kid = match ids.get(key.as_str()) {
            Some(k) => *k,
            None => {
                new_key.execute(params![key, prefix::counted(key)])?;
                let k: i64 = key_id.query_row([key], |r| r.get(0))?;
                ids.insert(key, k);
                k
            }
        };
        post.execute(params![kid, id, path, detail])?;
    }
    Ok(())
}

/// [`Corpus::remove`] inside a transaction.
pub(super) fn remove_in(tx: &Transaction<'_>, id: i64) -> Result<()> {
    let fam = image_family(tx, id)?;
    leave_family(tx, id, fam)?;
    let keys: Vec<i64> = {
        let mut stmt = tx.prepare("SELECT DISTINCT key_id FROM postings WHERE image_id = ?1")?;
        stmt.query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    tx.execute("DELETE FROM postings WHERE image_id = ?1", [id])?;
    {
        let mut gone = tx.prepare_cached(
            "DELETE FROM keys WHERE id = ?1 AND families = 0
             AND NOT EXISTS (SELECT 1 FROM postings WHERE key_id = ?1)",
        )?;
        for k in keys {
            gone.execute([k])?;
        }
    }
    tx.execute("DELETE FROM tags WHERE image_id = ?1", [id])?;
    tx.execute("DELETE FROM images WHERE id = ?1", [id])?;
    drop_empty_family(tx, fam)?;
    Ok(())
}

/// Groups rows by image id, keeping order (used by `find`).
pub(super) fn group<T>(rows: Vec<(i64, T)>) -> BTreeMap<i64, Vec<T>> {
    let mut out: BTreeMap<i64, Vec<T>> = BTreeMap::new();
    for (id, t) in rows {
        out.entry(id).or_default().push(t);
    }
    out
}
