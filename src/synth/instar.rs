//! INSTAR update writers: an HD update (a ZIP written by the `zip` crate whose record signatures
//! are then altered the INSTAR way) and a `BNEG` two-partition update.

use std::io::Write;

use super::SynthError;
use crate::unpack::formats::instar::{CENTRAL, END, LOCAL};

/// A ZIP of `files` (name, contents; deflated) with INSTAR HD signatures.
pub fn instar_hd(files: &[(&str, &[u8])]) -> Result<Vec<u8>, SynthError> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        w.start_file(*name, opts)
            .map_err(|e| SynthError::Zip(e.to_string()))?;
        w.write_all(data)
            .map_err(|e| SynthError::Zip(e.to_string()))?;
    }
    let mut zip = w
        .finish()
        .map_err(|e| SynthError::Zip(e.to_string()))?
        .into_inner();
    alter_signatures(&mut zip)?;
    Ok(zip)
}

fn u32_at(data: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(b)).ok()
}

fn u16_at(data: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 2] = data.get(at..at + 2)?.try_into().ok()?;
    Some(usize::from(u16::from_le_bytes(b)))
}

fn set(data: &mut [u8], at: usize, sig: &[u8; 4]) -> Option<()> {
    data.get_mut(at..at + 4)?.copy_from_slice(sig);
    Some(())
}

/// Rewrites the end record, every central header and every local header it points to.
fn alter_signatures(zip: &mut [u8]) -> Result<(), SynthError> {
    let bad = || SynthError::Zip("unexpected ZIP layout".into());
    let end = zip.len().checked_sub(22).ok_or_else(bad)?;
    if zip.get(end..end + 4) != Some(&b"PK\x05\x06"[..]) {
        return Err(bad());
    }
    let entries = u16_at(zip, end + 10).ok_or_else(bad)?;
    let mut pos = u32_at(zip, end + 16).ok_or_else(bad)?;
    set(zip, end, END).ok_or_else(bad)?;
    for _ in 0..entries {
        let local = u32_at(zip, pos + 42).ok_or_else(bad)?;
        let skip = u16_at(zip, pos + 28).ok_or_else(bad)?
            + u16_at(zip, pos + 30).ok_or_else(bad)?
            + u16_at(zip, pos + 32).ok_or_else(bad)?;
        set(zip, pos, CENTRAL).ok_or_else(bad)?;
        set(zip, local, LOCAL).ok_or_else(bad)?;
        pos += 46 + skip;
    }
    Ok(())
}

/// A `BNEG` update of two partitions.
pub fn bneg(part1: &[u8], part2: &[u8]) -> Result<Vec<u8>, SynthError> {
    let size = |d: &[u8]| {
        u32::try_from(d.len()).map_err(|_| SynthError::Invalid("BNEG part too big".into()))
    };
    let mut out = Vec::with_capacity(20 + part1.len() + part2.len());
    out.extend_from_slice(b"BNEG");
    for v in [1, 1, size(part1)?, size(part2)?] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(part1);
    out.extend_from_slice(part2);
    Ok(out)
}
