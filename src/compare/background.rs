//! The background document-frequency table shipped with fwsim: rarity weights for comparisons
//! made without a corpus. Stored as zstd-compressed JSON (`background.df.zst`, only items held by
//! at least two families), written by `fwsim background-table` from the families the generator
//! script `scripts/background-table.sh` lists: the reference corpus's `fit` split, fwsim's
//! synthetic vendor families and the real samples.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::rarity::DocFreq;

/// The shipped table's bytes.
const SHIPPED: &[u8] = include_bytes!("background.df.zst");

/// Largest decompressed table read (the shipped one is far smaller).
const MAX_TABLE_BYTES: u64 = 64 << 20;

/// The table's file layout: counts sorted by item, plus the families it was built from.
#[derive(Debug, Serialize, Deserialize)]
struct Table {
    /// Names of the families counted.
    families: Vec<String>,
    /// Item → families holding it (only items held by two or more).
    counts: BTreeMap<String, u32>,
}

/// Why a table could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// zstd or I/O failure.
    #[error("background table: {0}")]
    Io(#[from] std::io::Error),
    /// Not the expected JSON.
    #[error("background table: {0}")]
    Json(#[from] serde_json::Error),
    /// Larger than 64 MiB once decompressed.
    #[error("background table: larger than {MAX_TABLE_BYTES} bytes")]
    TooLarge,
}

/// The shipped background table (decoded once; empty if it cannot be read, which the tests
/// rule out).
pub fn background() -> &'static DocFreq {
    static TABLE: OnceLock<DocFreq> = OnceLock::new();
    TABLE.get_or_init(|| read(SHIPPED).map(|(df, _)| df).unwrap_or_default())
}

/// The names of the families the shipped table counts.
pub fn background_families() -> Vec<String> {
    read(SHIPPED).map(|(_, f)| f).unwrap_or_default()
}

/// Reads a table written by [`write()`]: the document frequencies and the family names.
pub fn read(compressed: &[u8]) -> Result<(DocFreq, Vec<String>), TableError> {
    let mut text = Vec::new();
    let mut dec = zstd::stream::read::Decoder::new(compressed)?;
    let n = std::io::copy(
        &mut std::io::Read::take(&mut dec, MAX_TABLE_BYTES + 1),
        &mut text,
    )?;
    if n > MAX_TABLE_BYTES {
        return Err(TableError::TooLarge);
    }
    let t: Table = serde_json::from_slice(&text)?;
    let df = DocFreq {
        families: u32::try_from(t.families.len()).unwrap_or(u32::MAX),
        counts: t.counts.into_iter().collect(),
    };
    Ok((df, t.families))
}

/// Writes `df` (built from the families named `families`) as a table, keeping only items held by
/// two or more families; deterministic for the same input.
pub fn write(df: &DocFreq, families: &[String], w: impl Write) -> Result<(), TableError> {
    let counts: BTreeMap<String, u32> = df
        .counts
        .iter()
        .filter(|&(_, &n)| n >= 2)
        .map(|(k, &n)| (k.clone(), n))
        .collect();
    let mut families = families.to_vec();
    families.sort();
    let table = Table { families, counts };
    let mut enc = zstd::stream::write::Encoder::new(w, 19)?;
    serde_json::to_writer(&mut enc, &table)?;
    enc.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_items_of_two_or_more_families() {
        let mut df = DocFreq {
            families: 3,
            ..DocFreq::default()
        };
        df.counts.insert("file:a".into(), 3);
        df.counts.insert("file:b".into(), 1);
        let names = vec!["z".to_owned(), "x".to_owned(), "y".to_owned()];
        let mut buf = Vec::new();
        write(&df, &names, &mut buf).unwrap();
        let (back, fams) = read(&buf).unwrap();
        assert_eq!(back.families, 3);
        assert_eq!(back.get("file:a"), 3);
        assert_eq!(back.get("file:b"), 0);
        assert_eq!(fams, ["x", "y", "z"]);
        assert!(read(b"not zstd").is_err());
    }

    #[test]
    fn shipped_table_reads() {
        let (df, families) = read(SHIPPED).unwrap();
        assert!(df.families >= 2, "{families:?}");
        assert_eq!(df.families as usize, families.len());
    }
}
