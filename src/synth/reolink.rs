//! Reolink `.pak` writer: header, section table, MTD partition table and sections, with the
//! CRC-32 pakler checks, in the 32-bit or 64-bit layout.

use super::SynthError;
use crate::unpack::formats::reolink::{
    CRC_FILLER, MAGIC, PARTITION_LEN, SECTION_LEN_32, SECTION_LEN_64, crc_zero_init,
};

/// One section to write.
#[derive(Clone, Debug)]
pub struct PakSection {
    /// Section name (at most 31 bytes).
    pub name: String,
    /// Version string (at most 23 bytes).
    pub version: String,
    /// Contents.
    pub data: Vec<u8>,
}

fn fixed(s: &str, len: usize) -> Result<Vec<u8>, SynthError> {
    if s.len() >= len {
        return Err(SynthError::Invalid(format!(
            "pak string '{s}' longer than {len} bytes"
        )));
    }
    let mut v = s.as_bytes().to_vec();
    v.resize(len, 0);
    Ok(v)
}

/// Builds a pak of `sections` (type word `board`); `is64` selects the 64-bit layout.
pub fn pak(sections: &[PakSection], board: u32, is64: bool) -> Result<Vec<u8>, SynthError> {
    let (header, entry) = if is64 {
        (24, SECTION_LEN_64)
    } else {
        (12, SECTION_LEN_32)
    };
    let meta = header + sections.len() * (entry + PARTITION_LEN);
    let mut table = Vec::with_capacity(sections.len() * entry);
    let mut parts = Vec::with_capacity(sections.len() * PARTITION_LEN);
    let mut body = Vec::new();
    for s in sections {
        let offset = (meta + body.len()) as u64;
        let len = s.data.len() as u64;
        table.extend_from_slice(&fixed(&s.name, 32)?);
        table.extend_from_slice(&fixed(&s.version, 24)?);
        if is64 {
            table.extend_from_slice(&offset.to_le_bytes());
            table.extend_from_slice(&len.to_le_bytes());
        } else {
            let o = u32::try_from(offset).map_err(|_| SynthError::Invalid("pak too big".into()))?;
            let l = u32::try_from(len).map_err(|_| SynthError::Invalid("pak too big".into()))?;
            table.extend_from_slice(&o.to_le_bytes());
            table.extend_from_slice(&l.to_le_bytes());
        }
        // The MTD partition entry: name, a word, the MTD device name, start, length.
        parts.extend_from_slice(&fixed(&s.name, 32)?);
        parts.extend_from_slice(&0u32.to_le_bytes());
        parts.extend_from_slice(&fixed("spi0.0", 32)?);
        parts.extend_from_slice(&0u32.to_le_bytes());
        parts.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        body.extend_from_slice(&s.data);
    }
    let crc = crc_zero_init(&[&body, &CRC_FILLER, &table]);
    let mut out = Vec::with_capacity(meta + body.len());
    if is64 {
        out.extend_from_slice(&u64::from(MAGIC).to_le_bytes());
        out.extend_from_slice(&u64::from(crc).to_le_bytes());
        out.extend_from_slice(&u64::from(board).to_le_bytes());
    } else {
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&board.to_le_bytes());
    }
    out.extend_from_slice(&table);
    out.extend_from_slice(&parts);
    out.extend_from_slice(&body);
    Ok(out)
}
