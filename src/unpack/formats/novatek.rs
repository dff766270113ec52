//! Novatek firmware (dash and IP cameras on NT966xx/NT9856x SoCs): the `NVTPACK_FW_HDR2` pack (a
//! GUID, a partition table of offset/size/ID, a 16-bit "NVT sum" over the whole file), `CKSM`
//! wrapped partitions (64-byte header, checksum over header, data and padding) and `BCL1`
//! compressed blocks (Basic Compression Library LZ77, LZMA or zlib).
//!
//! Byte-level facts from the public NTKFWinfo tool (EgorKin/Novatek-FW-info) and Novatek's
//! `nvtpack.h`/`nvtpack.c` as shipped in vendor U-Boot trees; the LZ77 stream is Marcus Geelnard's
//! Basic Compression Library format (a marker byte, then literals and marker-introduced matches).

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{Endian, Reader};
use crate::unpack::codec::{self, Codec};
use crate::unpack::limits::LimitError;
use crate::unpack::tree::{Child, Unpacked};

/// `NVTPACK_FW_HDR2` firmware pack.
pub struct Novatek;

/// `CKSM`-wrapped Novatek partition.
pub struct NovatekCksm;

/// `BCL1` compressed block.
pub struct Bcl1;

/// GUID {D6012E07-10BC-4F91-B28A-352F82261A50} as stored (first three fields little-endian).
pub const FW_HDR2_GUID: [u8; 16] = [
    0x07, 0x2E, 0x01, 0xD6, 0xBC, 0x10, 0x91, 0x4F, 0xB2, 0x8A, 0x35, 0x2F, 0x82, 0x26, 0x1A, 0x50,
];
/// `NVTPACK_FW_HDR2_VERSION`.
pub const FW_HDR2_VERSION: u32 = 0x1607_1515;
/// `sizeof(NVTPACK_FW_HDR2)`.
pub const FW_HDR2_LEN: usize = 128;
/// Offset of the pack's checksum field.
pub const FW_HDR2_CHECKSUM_OFFSET: usize = 0x24;
/// Bytes per partition-table entry (offset, size, ID).
pub const PARTITION_ENTRY_LEN: usize = 12;
/// `NVTPACK_CHKSUM_HDR_VERSION`.
pub const CKSM_VERSION: u32 = 0x1604_0719;
/// `sizeof(NVTPACK_CHKSUM_HDR)`.
pub const CKSM_LEN: usize = 64;
/// Offset of the CKSM checksum field.
pub const CKSM_CHECKSUM_OFFSET: usize = 0x0C;
/// `BCL1` header length.
pub const BCL1_LEN: usize = 16;
/// Offset of the BCL1 16-bit checksum.
pub const BCL1_CHECKSUM_OFFSET: usize = 4;
/// BCL1 algorithm: Basic Compression Library LZ77.
pub const ALGO_LZ77: u16 = 0x09;
/// BCL1 algorithm: LZMA ("alone" stream with its 13-byte header).
pub const ALGO_LZMA: u16 = 0x0B;
/// BCL1 algorithm: zlib.
pub const ALGO_ZLIB: u16 = 0x0C;

/// The "NVT sum": every little-endian 16-bit word plus its index, modulo 2^16. A block whose
/// checksum field holds `(!sum + 1) & 0xFFFF` (computed with the field zero) sums to 0.
pub fn nvt_sum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for (i, w) in data.chunks_exact(2).enumerate() {
        let word = u32::from(u16::from_le_bytes([
            w.first().copied().unwrap_or(0),
            w.get(1).copied().unwrap_or(0),
        ]));
        sum = sum.wrapping_add(word).wrapping_add(i as u32);
    }
    (sum & 0xFFFF) as u16
}

/// The value to store in a zeroed checksum field so that [`nvt_sum`] of the block is 0.
pub fn nvt_checksum(data_with_zero_field: &[u8]) -> u16 {
    (!nvt_sum(data_with_zero_field)).wrapping_add(1)
}

/// Name of a BCL1 algorithm code (Basic Compression Library numbering).
pub fn algorithm_name(code: u16) -> &'static str {
    match code {
        0x01 => "rle",
        0x02 => "huffman",
        0x03 => "rice8",
        0x04 => "rice16",
        0x05 => "rice32",
        0x06 => "rice8s",
        0x07 => "rice16s",
        0x08 => "rice32s",
        ALGO_LZ77 => "lz77",
        0x0A => "shannon-fano",
        ALGO_LZMA => "lzma",
        ALGO_ZLIB => "zlib",
        _ => "unknown",
    }
}

/// Name of a CKSM embedded-type code (Novatek SDK `PartitionInfo.h`).
pub fn emb_type_name(code: u32) -> &'static str {
    match code {
        0x00 => "unknown",
        0x01 => "uitron",
        0x02 => "ecos",
        0x03 => "uboot",
        0x04 => "linux",
        0x05 => "dsp",
        0x06 => "pstore",
        0x07 => "fat",
        0x08 => "exfat",
        0x09 => "ubifs",
        0x0A => "ramfs",
        0x0B => "uenv",
        _ => "other",
    }
}

fn to_usize(v: u64, what: &str) -> Result<usize, UnpackError> {
    usize::try_from(v).map_err(|_| UnpackError::Corrupt(format!("{what}: {v} does not fit")))
}

/// One entry of the pack's partition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Offset from the start of the pack.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// Partition ID (the index into the device's partition map).
    pub id: u32,
}

/// A decoded `NVTPACK_FW_HDR2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackHeader {
    /// Header version (`NVTPACK_FW_HDR2_VERSION`).
    pub version: u32,
    /// Header size (where the partition table starts).
    pub header_size: u32,
    /// Number of partitions.
    pub partitions: u32,
    /// Size of the whole pack.
    pub total_size: u32,
    /// Checksum method (0: NVT sum).
    pub check_method: u32,
    /// Checksum value.
    pub check_value: u32,
}

impl PackHeader {
    /// Parses the header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        if data.get(..16) != Some(&FW_HDR2_GUID[..]) {
            return Err(UnpackError::Corrupt("Novatek pack: bad GUID".into()));
        }
        let mut r = Reader::with_endian(data, Endian::Little);
        r.seek(16, "Novatek pack header")?;
        Ok(Self {
            version: r.u32("Novatek pack version")?,
            header_size: r.u32("Novatek pack header size")?,
            partitions: r.u32("Novatek pack partition count")?,
            total_size: r.u32("Novatek pack total size")?,
            check_method: r.u32("Novatek pack checksum method")?,
            check_value: r.u32("Novatek pack checksum")?,
        })
    }

    fn plausible(&self) -> bool {
        self.version == FW_HDR2_VERSION
            && (0x30..=4096).contains(&self.header_size)
            && self.partitions > 0
            && u64::from(self.header_size) + u64::from(self.partitions) * PARTITION_ENTRY_LEN as u64
                <= u64::from(self.total_size)
    }
}

impl Format for Novatek {
    fn name(&self) -> &'static str {
        "novatek"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(&FW_HDR2_GUID)];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        PackHeader::parse(data).is_ok_and(|h| h.plausible())
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let h = PackHeader::parse(data)?;
        if h.version != FW_HDR2_VERSION {
            return Err(UnpackError::Unsupported(format!(
                "Novatek pack header version {:#x}",
                h.version
            )));
        }
        if !h.plausible() {
            return Err(UnpackError::Corrupt(format!(
                "Novatek pack: {} partitions after a {}-byte header do not fit in {} bytes",
                h.partitions, h.header_size, h.total_size
            )));
        }
        let total = u64::from(h.total_size);
        let present = total.min(data.len() as u64);
        let mut out = Unpacked::new(present)
            .meta("header_version", format!("{:#x}", h.version))
            .meta("partitions", h.partitions)
            .meta("total_size", h.total_size)
            .meta("checksum_method", h.check_method)
            .meta("checksum", format!("{:#06x}", h.check_value));
        // The table must be present; its count is capped by the bytes that hold it.
        let table_len = u64::from(h.partitions) * PARTITION_ENTRY_LEN as u64;
        let mut r = Reader::with_endian(data, Endian::Little);
        r.seek(u64::from(h.header_size), "Novatek partition table")?;
        let table = r.bytes(table_len, "Novatek partition table")?;
        let whole = data
            .get(..to_usize(present, "Novatek pack size")?)
            .unwrap_or_default();
        if present == total {
            ctx.check()?;
            out = out.meta("checksum_ok", nvt_sum(whole) == 0);
        }
        ctx.entries(u64::from(h.partitions))?;
        let mut seen_ids = std::collections::HashSet::new();
        for (i, e) in table.chunks_exact(PARTITION_ENTRY_LEN).enumerate() {
            ctx.check()?;
            let mut er = Reader::with_endian(e, Endian::Little);
            let p = Partition {
                offset: er.u32("Novatek partition offset")?,
                size: er.u32("Novatek partition size")?,
                id: er.u32("Novatek partition ID")?,
            };
            let name = if seen_ids.insert(p.id) {
                format!("partition_{}", p.id)
            } else {
                format!("partition_{}_{i}", p.id)
            };
            let start = u64::from(p.offset);
            let end = start.saturating_add(u64::from(p.size));
            let child = if end > total
                || end > data.len() as u64
                || start < u64::from(h.header_size) + table_len
            {
                Child::file(name, Bytes::new()).with_error(UnpackError::Truncated(format!(
                    "Novatek partition {} at {start:#x} ({} bytes) runs past the pack ({} bytes present)",
                    p.id,
                    p.size,
                    data.len()
                )))
            } else {
                let (s, e) = (to_usize(start, "offset")?, to_usize(end, "end")?);
                Child::file(name, data.slice(s..e))
            };
            out.children.push(
                child
                    .with_offset(start)
                    .with_meta("partition_id", p.id)
                    .with_meta("size", p.size),
            );
        }
        if present < total {
            out = out.partial(UnpackError::Truncated(format!(
                "Novatek pack announces {total} bytes, {present} present"
            )));
        }
        Ok(out)
    }
}

/// A decoded `NVTPACK_CHKSUM_HDR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CksmHeader {
    /// Header version (`NVTPACK_CHKSUM_HDR_VERSION`).
    pub version: u32,
    /// Checksum method (0: NVT sum).
    pub check_method: u32,
    /// Checksum value.
    pub check_value: u32,
    /// Where the wrapped data starts.
    pub data_offset: u32,
    /// Size of the wrapped data.
    pub data_size: u32,
    /// Padding after the data, covered by the checksum.
    pub padding: u32,
    /// Embedded type (`EMBTYPE_*`).
    pub emb_type: u32,
}

impl CksmHeader {
    /// Parses the header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        if !data.starts_with(b"CKSM") {
            return Err(UnpackError::Corrupt("CKSM: bad magic".into()));
        }
        let mut r = Reader::with_endian(data, Endian::Little);
        r.seek(4, "CKSM header")?;
        Ok(Self {
            version: r.u32("CKSM version")?,
            check_method: r.u32("CKSM checksum method")?,
            check_value: r.u32("CKSM checksum")?,
            data_offset: r.u32("CKSM data offset")?,
            data_size: r.u32("CKSM data size")?,
            padding: r.u32("CKSM padding")?,
            emb_type: r.u32("CKSM embedded type")?,
        })
    }

    /// The extent: header, data and padding.
    pub fn extent(&self) -> u64 {
        u64::from(self.data_offset) + u64::from(self.data_size) + u64::from(self.padding)
    }
}

impl Format for NovatekCksm {
    fn name(&self) -> &'static str {
        "novatek_cksm"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(b"CKSM")];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        CksmHeader::parse(data).is_ok_and(|h| {
            h.version == CKSM_VERSION && h.data_offset as usize >= CKSM_LEN && h.data_size > 0
        })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let h = CksmHeader::parse(data)?;
        if h.version != CKSM_VERSION {
            return Err(UnpackError::Unsupported(format!(
                "CKSM header version {:#x}",
                h.version
            )));
        }
        if (h.data_offset as usize) < CKSM_LEN {
            return Err(UnpackError::Corrupt(format!(
                "CKSM data offset {:#x} inside the header",
                h.data_offset
            )));
        }
        let extent = h.extent();
        let data_end = u64::from(h.data_offset) + u64::from(h.data_size);
        if data_end > data.len() as u64 {
            return Err(UnpackError::Truncated(format!(
                "CKSM announces {} data bytes at {:#x}, input has {}",
                h.data_size,
                h.data_offset,
                data.len()
            )));
        }
        let present = extent.min(data.len() as u64);
        let mut out = Unpacked::new(present)
            .meta("emb_type", emb_type_name(h.emb_type))
            .meta("checksum_method", h.check_method)
            .meta("checksum", format!("{:#06x}", h.check_value))
            .meta("data_size", h.data_size)
            .meta("padding", h.padding);
        if present == extent {
            ctx.check()?;
            let region = data
                .get(..to_usize(extent, "CKSM extent")?)
                .unwrap_or_default();
            out = out.meta("checksum_ok", nvt_sum(region) == 0);
        }
        ctx.entries(1)?;
        let (s, e) = (
            to_usize(u64::from(h.data_offset), "CKSM data offset")?,
            to_usize(data_end, "CKSM data end")?,
        );
        out.children.push(
            Child::file(b"data".to_vec(), data.slice(s..e)).with_offset(u64::from(h.data_offset)),
        );
        Ok(out)
    }
}

/// A decoded `BCL1` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bcl1Header {
    /// 16-bit NVT sum check value (0 in boot loaders, which carry none).
    pub checksum: u16,
    /// Compression algorithm.
    pub algorithm: u16,
    /// Uncompressed size (may exceed the data: the rest is zero fill).
    pub unpacked_size: u32,
    /// Compressed size after the header.
    pub packed_size: u32,
}

impl Bcl1Header {
    /// Parses the 16-byte header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        if !data.starts_with(b"BCL1") {
            return Err(UnpackError::Corrupt("BCL1: bad magic".into()));
        }
        let mut r = Reader::with_endian(data, Endian::Little);
        r.seek(4, "BCL1 header")?;
        let checksum = r.u16("BCL1 checksum")?;
        let mut r = Reader::with_endian(data, Endian::Big);
        r.seek(6, "BCL1 header")?;
        Ok(Self {
            checksum,
            algorithm: r.u16("BCL1 algorithm")?,
            unpacked_size: r.u32("BCL1 unpacked size")?,
            packed_size: r.u32("BCL1 packed size")?,
        })
    }
}

impl Format for Bcl1 {
    fn name(&self) -> &'static str {
        "bcl1"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(b"BCL1")];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        Bcl1Header::parse(data).is_ok_and(|h| {
            algorithm_name(h.algorithm) != "unknown"
                && h.packed_size > 0
                && h.unpacked_size > 0
                && (BCL1_LEN as u64 + u64::from(h.packed_size)) <= data.len() as u64
        })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let h = Bcl1Header::parse(data)?;
        let extent = BCL1_LEN as u64 + u64::from(h.packed_size);
        if extent > data.len() as u64 {
            return Err(UnpackError::Truncated(format!(
                "BCL1 announces {} packed bytes, input has {}",
                h.packed_size,
                data.len().saturating_sub(BCL1_LEN)
            )));
        }
        let stop = to_usize(extent, "BCL1 extent")?;
        let block = data.get(..stop).unwrap_or_default();
        let payload = data.get(BCL1_LEN..stop).unwrap_or_default();
        let mut out = Unpacked::new(extent)
            .meta("algorithm", algorithm_name(h.algorithm))
            .meta("unpacked_size", h.unpacked_size)
            .meta("packed_size", h.packed_size);
        out = if h.checksum == 0 {
            out.meta("checksum", "none")
        } else {
            out.meta("checksum", format!("{:#06x}", h.checksum))
                .meta("checksum_ok", nvt_sum(block) == 0)
        };
        ctx.claimed_size(u64::from(h.unpacked_size))?;
        let mut decoded = match h.algorithm {
            ALGO_LZ77 => lz77_decode(payload, u64::from(h.unpacked_size), ctx)?,
            ALGO_LZMA => codec::decode(Codec::Lzma, payload, ctx)?.data,
            ALGO_ZLIB => codec::decode(Codec::Zlib, payload, ctx)?.data,
            other => {
                return Err(UnpackError::Unsupported(format!(
                    "BCL1 algorithm {other:#x} ({})",
                    algorithm_name(other)
                )));
            }
        };
        let declared = usize::try_from(h.unpacked_size).unwrap_or(usize::MAX);
        if decoded.len() > declared {
            decoded.truncate(declared);
        } else if decoded.len() < declared {
            // NTKFWinfo: the declared size may exceed the data; the loader zero-fills the rest.
            out = out.meta("decoded_size", decoded.len());
        }
        ctx.entries(1)?;
        out.children
            .push(Child::file(Vec::new(), Bytes::from(decoded)).with_offset(BCL1_LEN as u64));
        Ok(out)
    }
}

/// Reads a Basic Compression Library variable-size integer: 7-bit groups, most significant first,
/// the top bit set on every byte but the last.
fn read_var(input: &[u8], pos: &mut usize) -> Result<u64, UnpackError> {
    let mut v = 0u64;
    for _ in 0..10 {
        let b = *input.get(*pos).ok_or_else(|| {
            UnpackError::Truncated("BCL1 LZ77: stream ends inside a match".into())
        })?;
        *pos += 1;
        v = (v << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(UnpackError::Corrupt("BCL1 LZ77: overlong length".into()))
}

/// Decodes a BCL LZ77 stream into at most `declared` bytes, bounded by the budget's expansion
/// limit for `input`.
pub fn lz77_decode(input: &[u8], declared: u64, ctx: &Ctx<'_>) -> Result<Vec<u8>, UnpackError> {
    let cap = ctx.budget().max_expansion(input.len() as u64);
    let limit = declared.min(cap);
    let limit_usize = to_usize(limit, "BCL1 unpacked size")?;
    let Some((&marker, _)) = input.split_first() else {
        return Ok(Vec::new());
    };
    let mut out: Vec<u8> = Vec::with_capacity(limit_usize.min(64 << 20));
    let mut pos = 1usize;
    let mut steps = 0u32;
    while pos < input.len() && (out.len() as u64) < declared {
        steps = steps.wrapping_add(1);
        if steps.is_multiple_of(4096) {
            ctx.check()?;
        }
        let Some(&symbol) = input.get(pos) else { break };
        pos += 1;
        if symbol != marker {
            if out.len() >= limit_usize {
                return Err(over_limit(declared, cap, ctx));
            }
            out.push(symbol);
            continue;
        }
        if input.get(pos) == Some(&0) {
            pos += 1;
            if out.len() >= limit_usize {
                return Err(over_limit(declared, cap, ctx));
            }
            out.push(marker);
            continue;
        }
        let length = read_var(input, &mut pos)?;
        let offset = read_var(input, &mut pos)?;
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        if offset == 0 || offset > out.len() {
            return Err(UnpackError::Corrupt(format!(
                "BCL1 LZ77: match offset {offset} before the start of the output ({} bytes)",
                out.len()
            )));
        }
        // A match never runs past the declared size (the decoder stops there).
        let room = declared.saturating_sub(out.len() as u64);
        let length = length.min(room);
        if (out.len() as u64).saturating_add(length) > limit {
            return Err(over_limit(declared, cap, ctx));
        }
        let length = to_usize(length, "BCL1 match length")?;
        let from = out.len() - offset;
        if offset >= length {
            out.extend_from_within(from..from + length);
        } else {
            for k in 0..length {
                let b = out.get(from + k).copied().unwrap_or(0);
                out.push(b);
            }
        }
    }
    ctx.charge_read(pos as u64);
    ctx.output(out.len() as u64)?;
    Ok(out)
}

fn over_limit(declared: u64, cap: u64, ctx: &Ctx<'_>) -> UnpackError {
    let limits = ctx.budget().limits();
    if declared > limits.max_file_bytes || cap >= limits.max_file_bytes {
        UnpackError::Limit(LimitError::FileBytes {
            max: limits.max_file_bytes,
        })
    } else {
        UnpackError::Limit(LimitError::Ratio {
            max: limits.max_ratio,
            input: cap / limits.max_ratio.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::Budget;
    use crate::unpack::Limits;

    #[test]
    fn nvt_sum_of_a_checksummed_block_is_zero() {
        let mut block: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
        block[4..6].fill(0);
        let c = nvt_checksum(&block);
        block[4..6].copy_from_slice(&c.to_le_bytes());
        assert_eq!(nvt_sum(&block), 0);
    }

    #[test]
    fn lz77_hand_made_stream() {
        // marker 0xFF; "abc", match len 6 offset 3, literal marker, "z".
        let stream = [0xFF, b'a', b'b', b'c', 0xFF, 6, 3, 0xFF, 0, b'z'];
        let budget = Budget::new(Limits::default());
        let out = lz77_decode(&stream, 100, &Ctx::new(&budget)).unwrap();
        assert_eq!(out, b"abcabcabc\xFFz");
        let bad = [0xFF, b'a', 0xFF, 2, 5];
        assert!(lz77_decode(&bad, 100, &Ctx::new(&budget)).is_err());
    }
}
