//! UBI images (raw NAND volumes): erase-counter and volume-id headers, the layout volume's volume
//! table, and the PEB→LEB mapping; every user volume becomes one child. Layouts follow Linux
//! `drivers/mtd/ubi/ubi-media.h`; PEB-size discovery and volume assembly follow ubi_reader.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use rayon::prelude::*;

use super::{Ctx, Format, Magic, path_escapes};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{Endian, Reader};
use crate::unpack::tree::{Child, Unpacked};

/// UBI.
pub struct Ubi;

/// Magic of the erase-counter header that starts every PEB.
pub const EC_MAGIC: &[u8; 4] = b"UBI#";
/// Magic of the volume-id header.
pub const VID_MAGIC: &[u8; 4] = b"UBI!";
/// Size of either header.
pub const HEADER_LEN: usize = 64;
/// Volume id of the layout volume (the volume table, stored twice).
pub const LAYOUT_VOLUME_ID: u32 = 0x7FFF_EFFF;
/// First internal volume id; ids from here on are UBI's own.
pub const INTERNAL_VOLUME_START: u32 = 0x7FFF_EFFF;
/// Size of one volume-table record.
pub const VTBL_RECORD_LEN: usize = 172;
/// Most volumes a volume table holds.
pub const MAX_VOLUMES: usize = 128;
/// `vol_type` of a dynamic volume.
pub const VOLUME_DYNAMIC: u8 = 1;
/// `vol_type` of a static volume.
pub const VOLUME_STATIC: u8 = 2;

/// Smallest PEB size considered (NOR flash with 1-byte I/O still uses at least this).
const MIN_PEB: usize = 512;
/// Largest PEB size considered.
const MAX_PEB: usize = 16 << 20;
/// Valid erase-counter headers used to discover the PEB size.
const PEB_PROBE_HEADERS: usize = 16;
/// Consecutive PEBs that are neither ours nor erased after which the image is taken to have ended.
const MAX_FOREIGN_RUN: usize = 8;

/// CRC-32 as UBI and UBIFS store it: initial value `0xFFFFFFFF`, no final inversion.
pub fn crc32(data: &[u8]) -> u32 {
    !crc32fast::hash(data)
}

fn corrupt(what: impl std::fmt::Display) -> UnpackError {
    UnpackError::Corrupt(format!("ubi: {what}"))
}

/// The erase-counter header of one PEB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcHeader {
    /// Format version (1).
    pub version: u8,
    /// Erase counter.
    pub ec: u64,
    /// Offset of the VID header in the PEB.
    pub vid_hdr_offset: u32,
    /// Offset of the LEB data in the PEB.
    pub data_offset: u32,
    /// Image sequence number, shared by all PEBs of one image.
    pub image_seq: u32,
}

impl EcHeader {
    /// Parses and CRC-checks the header at the start of `data`.
    pub fn parse(data: &[u8]) -> Option<Self> {
        let h = data.get(..HEADER_LEN)?;
        if h.get(..4)? != EC_MAGIC || be32_at(h, 60)? != crc32(h.get(..60)?) {
            return None;
        }
        Some(Self {
            version: *h.get(4)?,
            ec: u64::from_be_bytes(h.get(8..16)?.try_into().ok()?),
            vid_hdr_offset: be32_at(h, 16)?,
            data_offset: be32_at(h, 20)?,
            image_seq: be32_at(h, 24)?,
        })
    }
}

/// The volume-id header of a mapped PEB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VidHeader {
    /// Dynamic (1) or static (2).
    pub vol_type: u8,
    /// Set when the PEB was written by wear-levelling (a copy of another PEB).
    pub copy_flag: u8,
    /// Compatibility flags of internal volumes.
    pub compat: u8,
    /// Volume id.
    pub vol_id: u32,
    /// Logical erase block number inside the volume.
    pub lnum: u32,
    /// Bytes of data in this LEB (static volumes and copies).
    pub data_size: u32,
    /// LEBs the static volume uses.
    pub used_ebs: u32,
    /// Bytes left unused at the end of every PEB of the volume.
    pub data_pad: u32,
    /// CRC of the `data_size` data bytes (static volumes and copies).
    pub data_crc: u32,
    /// Global sequence number: the higher of two PEBs for one LEB is the newer.
    pub sqnum: u64,
}

/// What the VID area of a PEB holds.
enum Vid {
    /// A valid header.
    Mapped(VidHeader),
    /// Nothing written (all 0xFF): a free PEB.
    Free,
    /// Something else: a bad magic or CRC.
    Bad,
}

impl VidHeader {
    fn parse(data: &[u8]) -> Vid {
        let Some(h) = data.get(..HEADER_LEN) else {
            return Vid::Bad;
        };
        if h.iter().all(|&b| b == 0xFF) {
            return Vid::Free;
        }
        Self::parse_checked(h).map_or(Vid::Bad, Vid::Mapped)
    }

    fn parse_checked(h: &[u8]) -> Option<Self> {
        if h.get(..4)? != VID_MAGIC || be32_at(h, 60)? != crc32(h.get(..60)?) {
            return None;
        }
        Some(Self {
            vol_type: *h.get(5)?,
            copy_flag: *h.get(6)?,
            compat: *h.get(7)?,
            vol_id: be32_at(h, 8)?,
            lnum: be32_at(h, 12)?,
            data_size: be32_at(h, 20)?,
            used_ebs: be32_at(h, 24)?,
            data_pad: be32_at(h, 28)?,
            data_crc: be32_at(h, 32)?,
            sqnum: u64::from_be_bytes(h.get(40..48)?.try_into().ok()?),
        })
    }
}

/// One record of the volume table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VtblRecord {
    /// Index in the table (the volume id).
    pub vol_id: u32,
    /// PEBs reserved for the volume.
    pub reserved_pebs: u32,
    /// Alignment of LEBs.
    pub alignment: u32,
    /// Bytes unused at the end of every PEB.
    pub data_pad: u32,
    /// Dynamic (1) or static (2).
    pub vol_type: u8,
    /// Set while an update was interrupted.
    pub upd_marker: u8,
    /// Volume name.
    pub name: Vec<u8>,
    /// Flags (`1` = autoresize).
    pub flags: u8,
}

/// Parses one copy of the volume table: the records in use, and whether every record's CRC held.
fn parse_vtbl(leb: &[u8]) -> (Vec<VtblRecord>, bool) {
    let mut out = Vec::new();
    let mut all_ok = true;
    for (i, rec) in leb
        .chunks_exact(VTBL_RECORD_LEN)
        .take(MAX_VOLUMES)
        .enumerate()
    {
        let Some(stored) = be32_at(rec, 168) else {
            continue;
        };
        if stored != crc32(rec.get(..168).unwrap_or_default()) {
            all_ok = false;
            continue;
        }
        let mut r = Reader::with_endian(rec, Endian::Big);
        let (Ok(reserved_pebs), Ok(alignment), Ok(data_pad), Ok(vol_type), Ok(upd_marker)) = (
            r.u32("vtbl"),
            r.u32("vtbl"),
            r.u32("vtbl"),
            r.u8("vtbl"),
            r.u8("vtbl"),
        ) else {
            continue;
        };
        let name_len = usize::from(r.u16("vtbl").unwrap_or(0)).min(127);
        let name = rec.get(16..16 + name_len).unwrap_or_default().to_vec();
        let flags = rec.get(144).copied().unwrap_or(0);
        if reserved_pebs == 0 {
            continue;
        }
        out.push(VtblRecord {
            vol_id: u32::try_from(i).unwrap_or(u32::MAX),
            reserved_pebs,
            alignment,
            data_pad,
            vol_type,
            upd_marker,
            name,
            flags,
        });
    }
    (out, all_ok)
}

fn be32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Greatest common divisor.
fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The PEB size: the greatest common divisor of the offsets of the first valid erase-counter
/// headers of the image (found at 512-byte steps), so erased or bad PEBs between them do not
/// mislead it.
fn peb_size(data: &[u8], first: &EcHeader, ctx: &Ctx<'_>) -> Result<usize, UnpackError> {
    let mut size = 0usize;
    let mut found = 0usize;
    let mut off = MIN_PEB;
    while off < data.len() && found < PEB_PROBE_HEADERS && (found > 0 || off <= MAX_PEB) {
        if off.is_multiple_of(64 * MIN_PEB) {
            ctx.check()?;
        }
        let tail = data.get(off..).unwrap_or_default();
        if tail.starts_with(EC_MAGIC)
            && let Some(h) = EcHeader::parse(tail)
            && h.image_seq == first.image_seq
            && h.vid_hdr_offset == first.vid_hdr_offset
            && h.data_offset == first.data_offset
        {
            size = gcd(size, off);
            found += 1;
        }
        off += MIN_PEB;
    }
    if found == 0 || !(MIN_PEB..=MAX_PEB).contains(&size) {
        return Err(corrupt(
            "no second erase-counter header: cannot tell the PEB size",
        ));
    }
    Ok(size)
}

/// What one PEB turned out to be.
struct Mapped {
    peb: usize,
    vid: VidHeader,
}

impl Format for Ubi {
    fn name(&self) -> &'static str {
        "ubi"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(EC_MAGIC)];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        EcHeader::parse(data).is_some_and(|h| {
            h.version == 1
                && (h.vid_hdr_offset as usize) >= HEADER_LEN
                && h.data_offset > h.vid_hdr_offset
                && (h.data_offset as usize) < MAX_PEB
                && data
                    .get(h.vid_hdr_offset as usize..)
                    .is_some_and(|v| matches!(VidHeader::parse(v), Vid::Mapped(_) | Vid::Free))
        })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let first = EcHeader::parse(data).ok_or_else(|| corrupt("bad erase-counter header"))?;
        if first.version != 1 {
            return Err(UnpackError::Unsupported(format!(
                "ubi version {}",
                first.version
            )));
        }
        let peb = peb_size(data, &first, ctx)?;
        let vid_off = first.vid_hdr_offset as usize;
        let data_off = first.data_offset as usize;
        if vid_off < HEADER_LEN
            || vid_off.saturating_add(HEADER_LEN) > peb
            || data_off <= vid_off
            || data_off >= peb
        {
            return Err(corrupt(format!(
                "headers at {vid_off}/{data_off} do not fit a {peb}-byte PEB"
            )));
        }
        let leb_size = peb - data_off;

        // Classify every PEB until the image ends.
        let mut mapped: Vec<Mapped> = Vec::new();
        let (mut ours, mut erased, mut free, mut bad_ec, mut bad_vid) = (0u64, 0u64, 0u64, 0u64, 0);
        let mut end = 0usize;
        let mut foreign_run = 0usize;
        let mut index = 0usize;
        loop {
            ctx.check()?;
            let Some(start) = index.checked_mul(peb) else {
                break;
            };
            let Some(block) = start.checked_add(peb).and_then(|e| data.get(start..e)) else {
                break;
            };
            index += 1;
            let ec = EcHeader::parse(block);
            match ec {
                Some(h) if h.image_seq != first.image_seq => break,
                Some(_) => {}
                None if block
                    .get(..HEADER_LEN)
                    .is_some_and(|h| h.iter().all(|&b| b == 0xFF)) =>
                {
                    erased += 1;
                    foreign_run = 0;
                    continue;
                }
                None if block.starts_with(EC_MAGIC) => bad_ec += 1,
                None => {
                    foreign_run += 1;
                    if foreign_run > MAX_FOREIGN_RUN {
                        break;
                    }
                    continue;
                }
            }
            foreign_run = 0;
            ours += 1;
            end = start + peb;
            match VidHeader::parse(block.get(vid_off..).unwrap_or_default()) {
                Vid::Mapped(vid) => mapped.push(Mapped {
                    peb: index - 1,
                    vid,
                }),
                Vid::Free => free += 1,
                Vid::Bad => bad_vid += 1,
            }
        }

        let leb_of = |m: &Mapped| -> &[u8] {
            let start = m.peb * peb + data_off;
            data.get(start..start + leb_size).unwrap_or_default()
        };

        // The volume table: the first copy whose records all check out.
        let mut layout: Vec<&Mapped> = mapped
            .iter()
            .filter(|m| m.vid.vol_id == LAYOUT_VOLUME_ID && m.vid.lnum < 2)
            .collect();
        layout.sort_by_key(|m| (m.vid.lnum, std::cmp::Reverse(m.vid.sqnum)));
        let mut vtbl: Option<(Vec<VtblRecord>, bool)> = None;
        for m in &layout {
            let (records, ok) = parse_vtbl(leb_of(m));
            if ok {
                vtbl = Some((records, true));
                break;
            }
            if vtbl.is_none() {
                vtbl = Some((records, false));
            }
        }
        let vtbl_ok = vtbl.as_ref().is_some_and(|(_, ok)| *ok);
        let records: BTreeMap<u32, VtblRecord> = vtbl
            .map(|(r, _)| r.into_iter().map(|r| (r.vol_id, r)).collect())
            .unwrap_or_default();

        // PEB→LEB: the highest sequence number wins, unless it is a copy whose data is damaged.
        let mut by_leb: HashMap<(u32, u32), Vec<&Mapped>> = HashMap::new();
        let mut out_of_range = 0u64;
        for m in &mapped {
            if m.vid.vol_id >= INTERNAL_VOLUME_START {
                continue;
            }
            if let Some(r) = records.get(&m.vid.vol_id)
                && m.vid.lnum >= r.reserved_pebs
            {
                out_of_range += 1;
                continue;
            }
            by_leb
                .entry((m.vid.vol_id, m.vid.lnum))
                .or_default()
                .push(m);
        }
        let mut volumes: BTreeMap<u32, BTreeMap<u32, &Mapped>> = BTreeMap::new();
        let mut stale = 0u64;
        for ((vol, lnum), mut cands) in by_leb {
            ctx.check()?;
            cands.sort_by_key(|m| std::cmp::Reverse(m.vid.sqnum));
            stale += cands.len().saturating_sub(1) as u64;
            let pick = cands
                .iter()
                .find(|m| m.vid.copy_flag == 0 || data_crc_ok(m, leb_of(m)))
                .or(cands.first());
            if let Some(m) = pick {
                volumes.entry(vol).or_default().insert(lnum, *m);
            }
        }
        for id in records.keys() {
            volumes.entry(*id).or_default();
        }

        let mut out = Unpacked::new(end as u64)
            .meta("peb_size", peb)
            .meta("leb_size", leb_size)
            .meta("vid_hdr_offset", vid_off)
            .meta("data_offset", data_off)
            .meta("image_seq", first.image_seq)
            .meta("pebs", ours)
            .meta("erased_pebs", erased)
            .meta("free_pebs", free)
            .meta("bad_ec_headers", bad_ec)
            .meta("bad_vid_headers", bad_vid)
            .meta("stale_pebs", stale)
            .meta("out_of_range_pebs", out_of_range)
            .meta(
                "volume_table",
                if layout.is_empty() {
                    "missing"
                } else if vtbl_ok {
                    "ok"
                } else {
                    "bad crc"
                },
            );
        ctx.entries(volumes.len() as u64)?;
        for (vol_id, lebs) in volumes {
            ctx.check()?;
            let record = records.get(&vol_id);
            out.children
                .push(volume(vol_id, record, &lebs, &leb_of, leb_size, ctx)?);
        }
        Ok(out)
    }
}

/// Whether a PEB's data matches the CRC its VID header states (for static volumes and copies).
fn data_crc_ok(m: &Mapped, leb: &[u8]) -> bool {
    leb.get(..m.vid.data_size as usize)
        .is_some_and(|d| crc32(d) == m.vid.data_crc)
}

/// One user volume as a child: its LEBs concatenated (unmapped LEBs of a dynamic volume read as
/// 0xFF, as the kernel returns them); a static volume is cut to `used_ebs` LEBs and the last one
/// to its `data_size`, and every LEB's data CRC is checked.
fn volume<'a>(
    vol_id: u32,
    record: Option<&VtblRecord>,
    lebs: &BTreeMap<u32, &'a Mapped>,
    leb_of: &dyn Fn(&Mapped) -> &'a [u8],
    peb_leb_size: usize,
    ctx: &Ctx<'_>,
) -> Result<Child, UnpackError> {
    let first = lebs.values().next().map(|m| m.vid);
    let vol_type = record
        .map(|r| r.vol_type)
        .or(first.map(|v| v.vol_type))
        .unwrap_or(VOLUME_DYNAMIC);
    let data_pad = record
        .map(|r| r.data_pad)
        .or(first.map(|v| v.data_pad))
        .unwrap_or(0) as usize;
    let leb_size = peb_leb_size.saturating_sub(data_pad);
    let name = match record {
        Some(r) if !r.name.is_empty() && !path_escapes(&r.name) && !r.name.contains(&b'/') => {
            r.name.clone()
        }
        _ => format!("vol{vol_id}").into_bytes(),
    };
    let mut child = Child::file(name, Bytes::new())
        .with_meta("vol_id", vol_id)
        .with_meta(
            "vol_type",
            if vol_type == VOLUME_STATIC {
                "static"
            } else {
                "dynamic"
            },
        )
        .with_meta("mapped_lebs", lebs.len());
    if let Some(r) = record {
        child = child
            .with_meta("name", String::from_utf8_lossy(&r.name).into_owned())
            .with_meta("reserved_pebs", r.reserved_pebs)
            .with_meta("alignment", r.alignment)
            .with_meta("data_pad", r.data_pad)
            .with_meta("autoresize", r.flags & 1 != 0)
            .with_meta("update_interrupted", r.upd_marker != 0);
    } else {
        child = child.with_meta("in_volume_table", false);
    }
    let mut error = None;
    let count = if vol_type == VOLUME_STATIC {
        let used = first.map_or(0, |v| v.used_ebs);
        child = child.with_meta("used_ebs", used);
        used
    } else {
        lebs.keys().next_back().map_or(0, |l| l.saturating_add(1))
    };
    // The whole volume is accounted (size limit, total output, the image's expansion ratio)
    // before anything is allocated: a LEB number far past the data cannot make us fill gigabytes.
    let total = u64::from(count).saturating_mul(leb_size as u64);
    if let Err(e) = ctx.claimed_size(total).and_then(|()| ctx.output(total)) {
        if super::squashfs::is_global(&e) {
            return Err(e);
        }
        return Ok(child.with_error(e));
    }
    // Where each LEB's bytes come from (unmapped LEBs of a dynamic volume read as 0xFF), then
    // one buffer of the exact size filled in parallel: the copies and the page faults of a large
    // volume are spread over the cores.
    let mut parts: Vec<Option<&[u8]>> = Vec::with_capacity(lebs.len());
    let mut len = 0usize;
    let mut bad_crc = 0u64;
    for lnum in 0..count {
        ctx.check()?;
        let Some(m) = lebs.get(&lnum) else {
            if vol_type == VOLUME_STATIC && error.is_none() {
                error = Some(corrupt(format!(
                    "static volume {vol_id}: LEB {lnum} missing"
                )));
            }
            parts.push(None);
            len = len.saturating_add(leb_size);
            continue;
        };
        let leb = leb_of(m);
        let part = if vol_type == VOLUME_STATIC {
            if !data_crc_ok(m, leb) {
                bad_crc += 1;
            }
            leb.get(..(m.vid.data_size as usize).min(leb_size))
                .unwrap_or_default()
        } else {
            leb.get(..leb_size).unwrap_or_default()
        };
        parts.push(Some(part));
        len = len.saturating_add(part.len());
    }
    let mut bytes = vec![0u8; len];
    let mut slots: Vec<(&mut [u8], Option<&[u8]>)> = Vec::with_capacity(parts.len());
    let mut rest = bytes.as_mut_slice();
    for part in parts {
        let n = part.map_or(leb_size, <[u8]>::len).min(rest.len());
        let (slot, tail) = std::mem::take(&mut rest).split_at_mut(n);
        slots.push((slot, part));
        rest = tail;
    }
    slots.into_par_iter().for_each(|(slot, part)| match part {
        Some(p) => {
            let n = slot.len().min(p.len());
            if let (Some(dst), Some(src)) = (slot.get_mut(..n), p.get(..n)) {
                dst.copy_from_slice(src);
            }
        }
        None => slot.fill(0xFF),
    });
    if vol_type == VOLUME_STATIC {
        child = child.with_meta("data_crc_ok", bad_crc == 0);
        if bad_crc > 0 && error.is_none() {
            error = Some(corrupt(format!(
                "static volume {vol_id}: {bad_crc} LEBs fail their data CRC"
            )));
        }
    }
    child.data = Bytes::from(bytes);
    child.error = error;
    Ok(child)
}
