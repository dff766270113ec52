//! The corpus database's layout: the SQL that creates it, the identifiers that mark a file as a
//! fwsim corpus (`application_id`, `user_version`), and the checks that refuse any other file
//! before SQLite is asked to write to it.

use std::io::Read;
use std::path::Path;

use super::db::CorpusError;

/// `PRAGMA application_id` of a fwsim corpus: "fwsc" in ASCII.
pub const APPLICATION_ID: i32 = 0x6677_7363;

/// `PRAGMA user_version`: the layout of the tables below. Bumped whenever a table changes; a
/// database of a newer layout is refused, never rewritten.
pub const SCHEMA_VERSION: i32 = 1;

/// Key prefixes of the `keys` table. Those counted in document frequencies are exactly the items
/// of [`crate::compare::rarity::items`]; the others serve `find` only.
pub mod prefix {
    /// SHA-256 of a file that is not a container (counted).
    pub const FILE: &str = "file:";
    /// SHA-256 of an ELF section at or above the section floor (counted).
    pub const SECTION: &str = "section:";
    /// An evidence item, `ev:<kind>:<value>` (counted).
    pub const EVIDENCE: &str = "ev:";
    /// SHA-256 of a container (archive, filesystem, stream) that was unpacked.
    pub const CONTAINER: &str = "container:";
    /// ssdeep digest of a file.
    pub const SSDEEP: &str = "ssdeep:";
    /// TLSH digest of a file.
    pub const TLSH: &str = "tlsh:";
    /// A path of a file in the unpacked tree.
    pub const PATH: &str = "path:";

    /// Whether a key with this text is counted in document frequencies.
    pub fn counted(key: &str) -> bool {
        key.starts_with(FILE) || key.starts_with(SECTION) || key.starts_with(EVIDENCE)
    }

    /// The keys starting with `prefix`, as a half-open range for `key >= ?1 AND key < ?2`
    /// (every prefix ends in `:`, whose successor is `;`).
    pub fn range(prefix: &str) -> (String, String) {
        let upper = match prefix.strip_suffix(':') {
            Some(stem) => format!("{stem};"),
            None => format!("{prefix}\u{10FFFF}"),
        };
        (prefix.to_owned(), upper)
    }
}

/// The tables. `keys.families` is the stored document frequency of a counted key: in how many
/// families at least one image posts it. It is changed only by adds, removals and family moves.
pub const CREATE: &str = "
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE families (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE images (
    id          INTEGER PRIMARY KEY,
    sha256      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    vendor      TEXT,
    product     TEXT,
    fw_version  TEXT,
    family_id   INTEGER NOT NULL REFERENCES families(id),
    added       TEXT NOT NULL,
    files       INTEGER NOT NULL,
    fp_len      INTEGER NOT NULL,
    fingerprint BLOB NOT NULL
);
CREATE INDEX images_family ON images(family_id);

CREATE TABLE tags (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (image_id, tag)
) WITHOUT ROWID;

CREATE TABLE keys (
    id       INTEGER PRIMARY KEY,
    key      TEXT NOT NULL UNIQUE,
    counted  INTEGER NOT NULL,
    families INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE postings (
    key_id   INTEGER NOT NULL REFERENCES keys(id),
    image_id INTEGER NOT NULL REFERENCES images(id),
    path     TEXT NOT NULL,
    detail   TEXT NOT NULL,
    PRIMARY KEY (key_id, image_id, path, detail)
) WITHOUT ROWID;
CREATE INDEX postings_image ON postings(image_id);
";

/// Meta row: the fingerprint [`crate::fingerprint::Params`] as JSON.
pub const META_PARAMS: &str = "params";
/// Meta row: the fingerprint schema version of the stored fingerprints.
pub const META_FINGERPRINT_SCHEMA: &str = "fingerprint_schema";
/// Meta row: the fwsim version that created the database.
pub const META_CREATED_BY: &str = "created_by";

/// The first bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Refuses a file that is not an SQLite database by its first 100 bytes, without SQLite touching
/// it. A fwsim corpus whose header is intact passes; the rest is checked through SQLite.
pub fn check_header(path: &Path) -> Result<(), CorpusError> {
    let not = |reason: &str| CorpusError::NotACorpus {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let mut f = std::fs::File::open(path).map_err(|source| crate::Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut head = Vec::with_capacity(100);
    f.by_ref()
        .take(100)
        .read_to_end(&mut head)
        .map_err(|source| crate::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if head.is_empty() {
        return Err(not("the file is empty"));
    }
    if head.len() < 100 || !head.starts_with(SQLITE_MAGIC) {
        return Err(not("not an SQLite database"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_exactly_a_prefix() {
        let (lo, hi) = prefix::range(prefix::SSDEEP);
        assert_eq!((lo.as_str(), hi.as_str()), ("ssdeep:", "ssdeep;"));
        let inside = "ssdeep:96:abc:def";
        assert!(inside >= lo.as_str() && inside < hi.as_str());
        assert!("ssdeepx" >= hi.as_str() || "ssdeepx" < lo.as_str());
        assert!(prefix::counted("ev:vendor:Acme"));
        assert!(!prefix::counted("path:/bin/sh"));
    }
}
