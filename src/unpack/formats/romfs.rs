//! Linux romfs (`-rom1fs-`: big-endian, 16-byte aligned headers linked per directory, checksums,
//! hard links, symlinks, devices) and Ambarella's ROMFS (a 2 KiB header, a table of 128-byte
//! entries, 2 KiB-aligned data). Layout: the kernel's `Documentation/filesystems/romfs.rst` and
//! genromfs; for Ambarella, the `amba_romfs.py` tool of dji-firmware-tools (used by FACT).

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;

use super::{Ctx, Format, Magic, path_escapes};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{be32, le32};
use crate::unpack::tree::{Child, EntryKind, Unpacked};

/// Linux romfs.
pub struct Romfs;

/// Ambarella ROMFS.
pub struct AmbaRomfs;

/// Longest file name read (the format has no limit; this bounds a scan for the terminator).
const MAX_NAME: usize = 4096;
/// Ambarella: the main header's magic, its size, one entry's size and the entries' magic.
const AMBA_MAGIC: u32 = 0x66FC_328A;
const AMBA_HEADER: u64 = 2048;
const AMBA_ENTRY: u64 = 128;
const AMBA_ENTRY_MAGIC: u32 = 0x2387_AB76;
/// Ambarella: most files a header may announce.
const AMBA_MAX_FILES: u32 = 16 * 1024;

fn corrupt(what: impl std::fmt::Display) -> UnpackError {
    UnpackError::Corrupt(format!("romfs: {what}"))
}

/// Rounds up to the romfs alignment of 16 bytes.
fn pad16(n: u64) -> u64 {
    n.saturating_add(15) & !15
}

/// The sum of big-endian 32-bit words of `b` (a trailing partial word is ignored).
fn word_sum(b: &[u8]) -> u32 {
    b.chunks_exact(4)
        .filter_map(|w| <[u8; 4]>::try_from(w).ok())
        .map(u32::from_be_bytes)
        .fold(0u32, u32::wrapping_add)
}

/// The superblock: the size it states and whether its checksum holds.
fn superblock(data: &[u8]) -> Option<(u64, bool)> {
    if data.get(..8)? != b"-rom1fs-" {
        return None;
    }
    let full = u64::from(be32(data, 8, "").ok()?);
    let covered = usize::try_from(full.min(512)).ok()? & !3;
    let ok = data.get(..covered).is_some_and(|b| word_sum(b) == 0);
    Some((full, ok))
}

/// One file header.
struct Header {
    next: u64,
    ty: u8,
    exec: bool,
    info: u64,
    size: u64,
    name: Vec<u8>,
    data_at: u64,
    checksum_ok: bool,
}

fn header(fs: &[u8], off: u64) -> Result<Header, UnpackError> {
    if !off.is_multiple_of(16) {
        return Err(corrupt(format!(
            "header at {off:#x} is not 16-byte aligned"
        )));
    }
    let word = |at: u64| be32(fs, at, "romfs file header");
    let next = word(off)?;
    let info = u64::from(word(off + 4)?);
    let size = u64::from(word(off + 8)?);
    let name_at = usize::try_from(off + 16).map_err(|_| corrupt("offset"))?;
    let rest = fs
        .get(name_at..)
        .ok_or_else(|| UnpackError::Truncated(format!("romfs: name at {name_at:#x}")))?;
    let len = rest
        .iter()
        .take(MAX_NAME)
        .position(|&b| b == 0)
        .ok_or_else(|| corrupt(format!("unterminated name at {name_at:#x}")))?;
    let name = rest.get(..len).unwrap_or_default().to_vec();
    let data_at = pad16(off + 16 + len as u64 + 1);
    let meta = usize::try_from(off)
        .ok()
        .zip(usize::try_from(data_at).ok())
        .and_then(|(a, b)| fs.get(a..b));
    Ok(Header {
        next: u64::from(next & !15),
        ty: (next & 7) as u8,
        exec: next & 8 != 0,
        info,
        size,
        name,
        data_at,
        checksum_ok: meta.is_some_and(|m| word_sum(m) == 0),
    })
}

impl Format for Romfs {
    fn name(&self) -> &'static str {
        "romfs"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(b"-rom1fs-")];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        superblock(data).is_some_and(|(full, ok)| ok && full >= 32)
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let (full, checksum_ok) = superblock(data).ok_or_else(|| corrupt("no superblock"))?;
        if full < 32 {
            return Err(corrupt(format!("image of {full} bytes")));
        }
        if full > data.len() as u64 {
            return Err(UnpackError::Truncated(format!(
                "romfs: superblock says {full} bytes, {} present",
                data.len()
            )));
        }
        let fs = data.slice(..usize::try_from(full).map_err(|_| corrupt("size"))?);
        let volume_len = fs
            .get(16..)
            .and_then(|r| r.iter().take(MAX_NAME).position(|&b| b == 0))
            .ok_or_else(|| corrupt("unterminated volume name"))?;
        let volume = fs.get(16..16 + volume_len).unwrap_or_default();
        let first = pad16(16 + volume_len as u64 + 1);

        let mut children: Vec<Child> = Vec::new();
        let mut links: Vec<(usize, u64)> = Vec::new();
        let mut path_of: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut bad_checksums = 0u64;
        let mut queue: VecDeque<(Vec<u8>, u64)> = VecDeque::from([(Vec::new(), first)]);
        let mut error = None;
        'dirs: while let Some((dir, mut off)) = queue.pop_front() {
            path_of.entry(off).or_insert_with(|| dir.clone());
            while off != 0 {
                ctx.check()?;
                if !seen.insert(off) {
                    error = Some(corrupt(format!(
                        "header at {off:#x} reached twice (a cycle in the file chain)"
                    )));
                    break 'dirs;
                }
                let h = match header(&fs, off) {
                    Ok(h) => h,
                    Err(e) => {
                        error = Some(e);
                        break 'dirs;
                    }
                };
                if !h.checksum_ok {
                    bad_checksums += 1;
                }
                let this = off;
                off = h.next;
                let dot = h.name == b"." || h.name == b"..";
                if dot && matches!(h.ty, 0 | 1) {
                    if h.name == b"." {
                        path_of.entry(this).or_insert_with(|| dir.clone());
                    }
                    continue;
                }
                ctx.entries(1)?;
                let mut path = dir.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(&h.name);
                path_of.insert(this, path.clone());
                let perm = if h.exec { 0o755 } else { 0o644 };
                let body = crate::unpack::bytes::slice(&fs, h.data_at, h.size, "romfs file data")
                    .map(|_| {
                        let start = usize::try_from(h.data_at).unwrap_or(usize::MAX);
                        let end = usize::try_from(h.data_at + h.size).unwrap_or(usize::MAX);
                        fs.slice(start..end)
                    });
                let mut child = match h.ty {
                    1 => {
                        if h.info != 0 {
                            queue.push_back((path.clone(), h.info));
                        }
                        Child::dir(path).with_mode(0o040755)
                    }
                    2 => match body {
                        Ok(b) => Child::file(path, b)
                            .with_mode(0o100000 | perm)
                            .with_offset(h.data_at),
                        Err(e) => Child::file(path, Bytes::new()).with_error(e),
                    },
                    3 => match body {
                        Ok(b) => Child::symlink(path, b.to_vec())
                            .with_mode(0o120777)
                            .with_meta("target", String::from_utf8_lossy(&b).into_owned()),
                        Err(e) => Child::symlink(path, Vec::new()).with_error(e),
                    },
                    4 | 5 => {
                        let ty = if h.ty == 4 { 0o060000 } else { 0o020000 };
                        Child::new(path, EntryKind::Device, Bytes::new())
                            .with_mode(ty | perm)
                            .with_meta("device", format!("{},{}", h.info >> 16, h.info & 0xFFFF))
                    }
                    6 | 7 => {
                        let ty = if h.ty == 6 { 0o140000 } else { 0o010000 };
                        Child::new(path, EntryKind::Device, Bytes::new()).with_mode(ty | perm)
                    }
                    _ => {
                        links.push((children.len(), h.info));
                        Child::new(
                            path,
                            EntryKind::Hardlink { target: Vec::new() },
                            Bytes::new(),
                        )
                    }
                };
                if !h.checksum_ok {
                    child = child.with_meta("checksum_ok", false);
                }
                // A name is one path component: a separator or `..` in it is a hostile image.
                if path_escapes(&h.name) || h.name.contains(&b'/') {
                    child = child.with_meta("unsafe_path", true);
                }
                children.push(child);
            }
        }
        for (i, target) in links {
            let resolved = path_of.get(&target).cloned();
            if let Some(c) = children.get_mut(i) {
                match resolved {
                    Some(t) => {
                        c.meta.insert(
                            "target".into(),
                            String::from_utf8_lossy(&t).into_owned().into(),
                        );
                        c.kind = EntryKind::Hardlink { target: t };
                    }
                    None => {
                        c.error = Some(corrupt(format!(
                            "hard link to {target:#x}, which no directory lists"
                        )));
                    }
                }
            }
        }
        let padded = full.div_ceil(1024).saturating_mul(1024);
        let pad_zero = usize::try_from(full)
            .ok()
            .zip(usize::try_from(padded).ok())
            .and_then(|(a, b)| data.get(a..b))
            .is_some_and(|p| p.iter().all(|&b| b == 0));
        let mut out = Unpacked::new(if pad_zero { padded } else { full })
            .meta("volume", String::from_utf8_lossy(volume).into_owned())
            .meta("size", full)
            .meta("checksum_ok", checksum_ok)
            .meta("bad_file_checksums", bad_checksums);
        out.children = children;
        if let Some(e) = error {
            out = out.partial(e);
        }
        Ok(out)
    }
}

impl Format for AmbaRomfs {
    fn name(&self) -> &'static str {
        "ambarella-romfs"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic {
            bytes: &[0x8A, 0x32, 0xFC, 0x66],
            offset: 4,
        }];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        let (Ok(count), Ok(magic)) = (le32(data, 0, ""), le32(data, 4, "")) else {
            return false;
        };
        magic == AMBA_MAGIC
            && (1..=AMBA_MAX_FILES).contains(&count)
            && le32(data, AMBA_HEADER + AMBA_ENTRY - 4, "") == Ok(AMBA_ENTRY_MAGIC)
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let count = le32(data, 0, "ambarella romfs header")?;
        if le32(data, 4, "ambarella romfs header")? != AMBA_MAGIC {
            return Err(corrupt("no ambarella header"));
        }
        let table_end = u64::from(count)
            .saturating_mul(AMBA_ENTRY)
            .saturating_add(AMBA_HEADER);
        if count == 0 || count > AMBA_MAX_FILES {
            return Err(corrupt(format!("ambarella header announces {count} files")));
        }
        if table_end > data.len() as u64 {
            return Err(UnpackError::Truncated(format!(
                "ambarella romfs: {count} entries need {table_end} bytes, {} present",
                data.len()
            )));
        }
        ctx.entries(u64::from(count))?;
        // Data is padded to 2 KiB after each file, by a whole 2 KiB when already aligned.
        let padded = |end: u64| end.saturating_add(2048 - end % 2048);
        let mut extent = padded(table_end);
        let mut children = Vec::with_capacity(count as usize);
        let mut bad_magic = 0u64;
        for i in 0..u64::from(count) {
            ctx.check()?;
            let at = AMBA_HEADER + i * AMBA_ENTRY;
            let name_field = crate::unpack::bytes::slice(data, at, 116, "ambarella entry")?;
            let name = name_field
                .iter()
                .position(|&b| b == 0)
                .map_or(name_field, |n| name_field.get(..n).unwrap_or_default())
                .to_vec();
            let offset = u64::from(le32(data, at + 116, "ambarella entry")?);
            let length = u64::from(le32(data, at + 120, "ambarella entry")?);
            let magic_ok = le32(data, at + 124, "ambarella entry")? == AMBA_ENTRY_MAGIC;
            let mut child =
                match crate::unpack::bytes::slice(data, offset, length, "ambarella file") {
                    Ok(_) => {
                        let start = usize::try_from(offset).unwrap_or(usize::MAX);
                        let end = usize::try_from(offset + length).unwrap_or(usize::MAX);
                        extent = extent.max(padded(offset + length));
                        Child::file(name.clone(), data.slice(start..end)).with_offset(offset)
                    }
                    Err(e) => Child::file(name.clone(), Bytes::new()).with_error(e),
                };
            if !magic_ok {
                bad_magic += 1;
                child = child.with_meta("magic_ok", false);
            }
            if path_escapes(&name) {
                child = child.with_meta("unsafe_path", true);
            }
            children.push(child);
        }
        let mut out = Unpacked::new(extent.min(data.len() as u64))
            .meta("file_count", count)
            .meta("bad_entry_magics", bad_magic);
        out.children = children;
        Ok(out)
    }
}
