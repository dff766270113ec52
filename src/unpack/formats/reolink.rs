//! Reolink (and Swann) `.pak` firmware: a little-endian header (magic 0x32725913, CRC-32, type), a
//! table of sections (name, version, offset, length) and a table of MTD partitions, then the
//! sections. 64-bit devices widen the header and section offsets to 8 bytes.
//!
//! Layout and CRC rule from the public pakler tool (vmallet/pakler, MIT) and the Kaitai Struct
//! `reolink_pak` description derived from it.

use bytes::Bytes;

use super::{Ctx, Format, Magic, path_escapes};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{Reader, c_string};
use crate::unpack::tree::{Child, Unpacked};

/// Reolink / Swann `.pak`.
pub struct Reolink;

/// The magic as a number.
pub const MAGIC: u32 = 0x3272_5913;
/// Section entry: name (32), version (24), offset and length (4 each; 8 each in 64-bit paks).
pub const SECTION_LEN_32: usize = 64;
/// Section entry of a 64-bit pak.
pub const SECTION_LEN_64: usize = 72;
/// MTD partition entry: name (32), a word, MTD name (32), start, length.
pub const PARTITION_LEN: usize = 76;
/// Bytes CRC-32 also covers between the sections' data and the section table (pakler's constant).
pub const CRC_FILLER: [u8; 4] = [2, 0, 0, 0];

/// One section of a pak.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Section name (`uboot`, `kernel`, `fs`, `app` …).
    pub name: String,
    /// Version string.
    pub version: String,
    /// Offset from the start of the pak.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// A decoded pak header and section table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pak {
    /// Whether the header and section fields are 8 bytes wide.
    pub is64: bool,
    /// Stored CRC-32.
    pub crc: u32,
    /// Board/type word.
    pub board: u64,
    /// The sections, in table order.
    pub sections: Vec<Section>,
    /// Size of the header plus the section table (what the CRC covers after the data).
    pub header_len: usize,
}

impl Pak {
    /// Parses the header and section table at the start of `data`; the section count follows from
    /// where the first section starts (header, then per section one section and one partition
    /// entry).
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        let mut r = Reader::new(data);
        if r.u32("pak magic")? != MAGIC {
            return Err(UnpackError::Corrupt("pak: bad magic".into()));
        }
        // pakler: 64-bit paks have zero high halves where a 32-bit pak has its CRC and the first
        // section name's start.
        let is64 = [4usize, 12, 20].iter().all(|&o| {
            data.get(o..o + 4)
                .is_some_and(|b| b.iter().all(|&x| x == 0))
        });
        let mut r = Reader::new(data);
        let (crc, board, header, entry) = if is64 {
            let _ = r.u64("pak magic")?;
            let crc = r.u64("pak CRC")?;
            let board = r.u64("pak type")?;
            (crc as u32, board, 24usize, SECTION_LEN_64)
        } else {
            let _ = r.u32("pak magic")?;
            let crc = r.u32("pak CRC")?;
            let board = u64::from(r.u32("pak type")?);
            (crc, board, 12usize, SECTION_LEN_32)
        };
        let first = read_section(data, header, is64)?;
        let per = (entry + PARTITION_LEN) as u64;
        let meta = first.offset.checked_sub(header as u64).ok_or_else(|| {
            UnpackError::Corrupt(format!(
                "pak: first section at {:#x} inside the header",
                first.offset
            ))
        })?;
        if meta == 0 || meta % per != 0 {
            return Err(UnpackError::Corrupt(format!(
                "pak: first section at {:#x} does not follow whole section and partition tables",
                first.offset
            )));
        }
        let count = meta / per;
        // Every section entry must be present: this caps the count by the input.
        if (header as u64).saturating_add(count.saturating_mul(entry as u64)) > data.len() as u64 {
            return Err(UnpackError::Truncated(format!(
                "pak: {count} section entries do not fit in {} bytes",
                data.len()
            )));
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let mut sections = Vec::with_capacity(count);
        for i in 0..count {
            sections.push(read_section(data, header + i * entry, is64)?);
        }
        Ok(Self {
            is64,
            crc,
            board,
            sections,
            header_len: header + count * entry,
        })
    }

    /// Where the pak ends: the furthest section end.
    pub fn extent(&self) -> u64 {
        self.sections
            .iter()
            .map(|s| s.offset.saturating_add(s.len))
            .max()
            .unwrap_or(0)
    }
}

fn read_section(data: &[u8], at: usize, is64: bool) -> Result<Section, UnpackError> {
    let mut r = Reader::new(data);
    r.seek(at as u64, "pak section entry")?;
    let name = c_string(r.bytes(32, "pak section name")?);
    let version = c_string(r.bytes(24, "pak section version")?);
    let (offset, len) = if is64 {
        (r.u64("pak section offset")?, r.u64("pak section length")?)
    } else {
        (
            u64::from(r.u32("pak section offset")?),
            u64::from(r.u32("pak section length")?),
        )
    };
    Ok(Section {
        name,
        version,
        offset,
        len,
    })
}

/// The pak's checksum as pakler computes it: CRC-32 (reflected, polynomial 0xEDB88320) with the
/// register starting at 0 and no final inversion, over the data from the first section to `end`,
/// the filler word, then the section table.
pub fn pak_crc(data: &[u8], pak: &Pak, end: usize) -> Option<u32> {
    let first = usize::try_from(pak.sections.first()?.offset).ok()?;
    let header = if pak.is64 { 24 } else { 12 };
    Some(crc_zero_init(&[
        data.get(first..end)?,
        &CRC_FILLER,
        data.get(header..pak.header_len)?,
    ]))
}

/// CRC-32 of the concatenated `parts` with a zero initial register and no final inversion (what
/// pakler's `zlib.crc32(chunk, 0xffffffff)` chain followed by `^ 0xffffffff` amounts to).
pub fn crc_zero_init(parts: &[&[u8]]) -> u32 {
    // crc32fast takes the previous *finalised* value: !0 means a zero register.
    let mut h = crc32fast::Hasher::new_with_initial(0xFFFF_FFFF);
    for p in parts {
        h.update(p);
    }
    !h.finalize()
}

impl Format for Reolink {
    fn name(&self) -> &'static str {
        "reolink_pak"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(&[0x13, 0x59, 0x72, 0x32])];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        Pak::parse(data).is_ok_and(|p| {
            p.sections
                .iter()
                .all(|s| s.name.chars().all(|c| !c.is_control()))
        })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let pak = Pak::parse(data)?;
        let extent = pak.extent();
        let present = extent.min(data.len() as u64);
        let mut out = Unpacked::new(present.max(pak.header_len as u64))
            .meta("word_size", if pak.is64 { 64 } else { 32 })
            .meta("type", format!("{:#x}", pak.board))
            .meta("crc", format!("{:#010x}", pak.crc))
            .meta("sections", pak.sections.len());
        if present == extent {
            ctx.check()?;
            let end = usize::try_from(extent).unwrap_or(usize::MAX);
            out = out.meta(
                "crc_ok",
                pak_crc(data, &pak, end).is_some_and(|c| c == pak.crc),
            );
        }
        let kept: Vec<(usize, &Section)> = pak
            .sections
            .iter()
            .enumerate()
            .filter(|(_, s)| s.len > 0)
            .collect();
        ctx.entries(kept.len() as u64)?;
        for (i, s) in kept {
            ctx.check()?;
            let clean = s.name.replace(['/', '\\'], "_");
            let name = if clean.is_empty() || path_escapes(clean.as_bytes()) {
                format!("{i:02}")
            } else {
                format!("{i:02}_{clean}")
            };
            let end = s.offset.saturating_add(s.len);
            let child = match (usize::try_from(s.offset), usize::try_from(end)) {
                (Ok(a), Ok(b)) if b <= data.len() && a >= pak.header_len => {
                    Child::file(name, data.slice(a..b))
                }
                _ => Child::file(name, Bytes::new()).with_error(UnpackError::Truncated(format!(
                    "pak section '{}' at {:#x} ({} bytes) runs past the input ({} bytes)",
                    s.name,
                    s.offset,
                    s.len,
                    data.len()
                ))),
            };
            out.children.push(
                child
                    .with_offset(s.offset)
                    .with_meta("section", s.name.clone())
                    .with_meta("version", s.version.clone()),
            );
        }
        if present < extent {
            out = out.partial(UnpackError::Truncated(format!(
                "pak sections reach {extent} bytes, {present} present"
            )));
        }
        Ok(out)
    }
}
