//! Novatek firmware writers: `BCL1` blocks (Basic Compression Library LZ77, LZMA or zlib), `CKSM`
//! wrapped partitions and `NVTPACK_FW_HDR2` packs, each with its NVT-sum checksum, laid out the way
//! Novatek's `nvtpack_make_parition_pkg` does (partitions 4-byte aligned after the table).

use std::io::Write;

use super::SynthError;
use crate::unpack::formats::novatek::{
    ALGO_LZ77, ALGO_LZMA, ALGO_ZLIB, BCL1_CHECKSUM_OFFSET, CKSM_CHECKSUM_OFFSET, CKSM_LEN,
    CKSM_VERSION, FW_HDR2_CHECKSUM_OFFSET, FW_HDR2_GUID, FW_HDR2_LEN, FW_HDR2_VERSION,
    PARTITION_ENTRY_LEN, nvt_checksum,
};

/// How a `BCL1` block is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bcl1Algorithm {
    /// Basic Compression Library LZ77.
    Lz77,
    /// LZMA "alone" stream.
    Lzma,
    /// zlib stream.
    Zlib,
}

fn len32(n: usize) -> Result<u32, SynthError> {
    u32::try_from(n)
        .map_err(|_| SynthError::Invalid(format!("{n} bytes do not fit a Novatek field")))
}

fn put_var(out: &mut Vec<u8>, mut v: usize) {
    let mut groups = Vec::new();
    loop {
        groups.push((v & 0x7F) as u8);
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    let last = groups.len().saturating_sub(1);
    for (i, g) in groups.iter().rev().enumerate() {
        out.push(if i < last { g | 0x80 } else { *g });
    }
}

/// Compresses `data` as a BCL LZ77 stream: the rarest byte is the marker, matches of 8 or more
/// bytes found through a hash of 4-byte prefixes become marker, length, offset.
pub fn lz77_compress(data: &[u8]) -> Vec<u8> {
    let mut counts = [0usize; 256];
    for &b in data {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let marker = (0..=255u8)
        .min_by_key(|&b| counts.get(usize::from(b)).copied().unwrap_or(0))
        .unwrap_or(0);
    let mut out = vec![marker];
    let mut table = vec![usize::MAX; 1 << 16];
    let mut i = 0;
    while let Some(&byte) = data.get(i) {
        let mut best = (0usize, 0usize);
        if let Some(&[a, b, c, d]) = data.get(i..i + 4) {
            let h = (u32::from_le_bytes([a, b, c, d]).wrapping_mul(2_654_435_761) >> 16) as usize;
            if let Some(slot) = table.get_mut(h) {
                let cand = *slot;
                *slot = i;
                if cand != usize::MAX {
                    let len = data
                        .get(cand..)
                        .unwrap_or_default()
                        .iter()
                        .zip(data.get(i..).unwrap_or_default())
                        .take_while(|(x, y)| x == y)
                        .count();
                    best = (len, i - cand);
                }
            }
        }
        if best.0 >= 8 {
            out.push(marker);
            put_var(&mut out, best.0);
            put_var(&mut out, best.1);
            i += best.0;
        } else {
            out.push(byte);
            if byte == marker {
                out.push(0);
            }
            i += 1;
        }
    }
    out
}

/// Writes `bytes` at `at` in `out` (which is long enough by construction).
fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = out.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// A `BCL1` block around `data` compressed with `algorithm`; the 16-bit checksum is filled in
/// unless `checksum` is false (boot loaders leave it zero).
pub fn bcl1(data: &[u8], algorithm: Bcl1Algorithm, checksum: bool) -> Result<Vec<u8>, SynthError> {
    let (code, packed) = match algorithm {
        Bcl1Algorithm::Lz77 => (ALGO_LZ77, lz77_compress(data)),
        Bcl1Algorithm::Lzma => {
            let opts = liblzma::stream::LzmaOptions::new_preset(6)
                .map_err(|e| SynthError::Invalid(format!("lzma: {e}")))?;
            let stream = liblzma::stream::Stream::new_lzma_encoder(&opts)
                .map_err(|e| SynthError::Invalid(format!("lzma: {e}")))?;
            let mut w = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
            w.write_all(data)
                .map_err(|e| SynthError::Invalid(format!("lzma: {e}")))?;
            let packed = w
                .finish()
                .map_err(|e| SynthError::Invalid(format!("lzma: {e}")))?;
            (ALGO_LZMA, packed)
        }
        Bcl1Algorithm::Zlib => {
            let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            w.write_all(data)
                .map_err(|e| SynthError::Invalid(format!("zlib: {e}")))?;
            let packed = w
                .finish()
                .map_err(|e| SynthError::Invalid(format!("zlib: {e}")))?;
            (ALGO_ZLIB, packed)
        }
    };
    let mut out = Vec::with_capacity(16 + packed.len());
    out.extend_from_slice(b"BCL1");
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&len32(data.len())?.to_be_bytes());
    out.extend_from_slice(&len32(packed.len())?.to_be_bytes());
    out.extend_from_slice(&packed);
    if checksum {
        let c = nvt_checksum(&out);
        put(&mut out, BCL1_CHECKSUM_OFFSET, &c.to_le_bytes());
    }
    Ok(out)
}

/// A `CKSM` partition wrapping `data` (embedded type `emb_type`), padded to 4 bytes.
pub fn cksm(data: &[u8], emb_type: u32) -> Result<Vec<u8>, SynthError> {
    let padding = (4 - data.len() % 4) % 4;
    let mut out = Vec::with_capacity(CKSM_LEN + data.len() + padding);
    out.extend_from_slice(b"CKSM");
    for v in [
        CKSM_VERSION,
        0,
        0,
        len32(CKSM_LEN)?,
        len32(data.len())?,
        len32(padding)?,
        emb_type,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.resize(CKSM_LEN, 0);
    out.extend_from_slice(data);
    out.resize(out.len() + padding, 0);
    let c = u32::from(nvt_checksum(&out));
    put(&mut out, CKSM_CHECKSUM_OFFSET, &c.to_le_bytes());
    Ok(out)
}

/// An `NVTPACK_FW_HDR2` pack of `(partition ID, bytes)` in the given order.
pub fn pack(partitions: &[(u32, Vec<u8>)]) -> Result<Vec<u8>, SynthError> {
    let mut out = Vec::new();
    out.extend_from_slice(&FW_HDR2_GUID);
    for v in [
        FW_HDR2_VERSION,
        len32(FW_HDR2_LEN)?,
        len32(partitions.len())?,
        0, // total size, below
        0, // checksum method: NVT sum
        0, // checksum, below
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.resize(FW_HDR2_LEN, 0);
    let table_at = out.len();
    out.resize(table_at + PARTITION_ENTRY_LEN * partitions.len(), 0);
    for (i, (id, data)) in partitions.iter().enumerate() {
        let offset = len32(out.len())?;
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
        let e = table_at + i * PARTITION_ENTRY_LEN;
        put(&mut out, e, &offset.to_le_bytes());
        put(&mut out, e + 4, &len32(data.len())?.to_le_bytes());
        put(&mut out, e + 8, &id.to_le_bytes());
    }
    let total = len32(out.len())?;
    put(&mut out, 0x1C, &total.to_le_bytes());
    let c = u32::from(nvt_checksum(&out));
    put(&mut out, FW_HDR2_CHECKSUM_OFFSET, &c.to_le_bytes());
    Ok(out)
}
