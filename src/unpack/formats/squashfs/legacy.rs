//! Squashfs 2.x and 3.x in process: superblock, metadata tables, the directory walk (a work queue
//! that enters no directory twice), fragments and file data; zlib or vendor LZMA told apart block
//! by block. Layout: squashfs-tools' `squashfs_compat.h`, sasquatch and 7-Zip's squashfs handler.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};

use backhand::compression::Compressor;
use bytes::Bytes;
use rayon::prelude::*;

use super::lzma::{self, Layout};
use super::{decompress_block, device_string, endian_name, is_global, padded_extent, v2, v3};
use crate::unpack::bytes::{Endian, Reader};
use crate::unpack::formats::Ctx;
use crate::unpack::tree::{Child, EntryKind, Unpacked};
use crate::unpack::{LimitError, UnpackError};

/// `fragment` of a file without one.
pub(super) const NO_FRAGMENT: u32 = 0xFFFF_FFFF;
/// Largest uncompressed metadata block.
const METADATA_MAX: usize = 8192;
/// Superblock flag: every metadata block length is followed by a check byte.
const FLAG_CHECK: u8 = 0x04;
/// Data and fragment block sizes: this bit set means stored uncompressed.
const BLOCK_UNCOMPRESSED: u32 = 1 << 24;
/// `guid` index meaning "same as the uid".
const GUID_SAME: u8 = 0xFF;

fn corrupt(what: impl std::fmt::Display) -> UnpackError {
    UnpackError::Corrupt(format!("squashfs: {what}"))
}

/// Checked reads of packed fields at fixed offsets, in the image's byte order.
pub(super) struct Fields<'a> {
    /// The bytes.
    pub p: &'a [u8],
    /// Their byte order.
    pub e: Endian,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, off: usize) -> Result<[u8; N], UnpackError> {
        off.checked_add(N)
            .and_then(|end| self.p.get(off..end))
            .and_then(|b| <[u8; N]>::try_from(b).ok())
            .ok_or_else(|| corrupt("inode or directory entry runs past its table"))
    }
    pub(super) fn u8(&self, off: usize) -> Result<u8, UnpackError> {
        Ok(self.array::<1>(off)?[0])
    }
    pub(super) fn u16(&self, off: usize) -> Result<u16, UnpackError> {
        let b = self.array(off)?;
        Ok(match self.e {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }
    pub(super) fn u32(&self, off: usize) -> Result<u32, UnpackError> {
        let b = self.array(off)?;
        Ok(match self.e {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }
    pub(super) fn u64(&self, off: usize) -> Result<u64, UnpackError> {
        let b = self.array(off)?;
        Ok(match self.e {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }
    pub(super) fn bytes(&self, off: usize, n: usize) -> Result<&[u8], UnpackError> {
        off.checked_add(n)
            .and_then(|end| self.p.get(off..end))
            .ok_or_else(|| corrupt("inode or directory entry runs past its table"))
    }
}

/// An inode of either version.
#[derive(Clone, Debug)]
pub(super) struct Inode {
    /// Squashfs inode type (1 dir, 2 file, 3 symlink, 4 block, 5 char, 6 fifo, 7 socket,
    /// 8 long dir, 9 long file).
    pub ty: u8,
    /// Permission bits (12 bits).
    pub mode: u16,
    /// Index into the uid table.
    pub uid: u8,
    /// Index into the gid table (0xFF: same as the uid).
    pub gid: u8,
    /// Modification time (0 where version 2 stores none).
    pub mtime: u32,
    /// Inode number (version 3 only).
    pub number: Option<u32>,
    /// What the inode describes.
    pub body: Body,
}

/// The type-specific part of an inode.
#[derive(Clone, Debug)]
pub(super) enum Body {
    /// A directory: its listing's size as stored and where the listing starts.
    Dir { size: u32, block: u32, offset: u16 },
    /// A regular file: first block, fragment (index, offset), size and block sizes.
    File {
        start: u64,
        fragment: Option<(u32, u32)>,
        size: u64,
        blocks: Vec<u32>,
    },
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
    /// A block or character device number.
    Device(u32),
    /// A FIFO or socket.
    Ipc,
}

/// One directory entry: its name and where its inode is.
#[derive(Clone, Debug)]
pub(super) struct DirEntry {
    pub name: Vec<u8>,
    pub block: u32,
    pub offset: u16,
}

/// Longest symlink target accepted (Linux's `PATH_MAX`).
const MAX_TARGET: usize = 4096;

/// A symlink's target of `n` bytes at `off`, refused beyond `PATH_MAX`.
pub(super) fn symlink_target(f: &Fields<'_>, off: usize, n: usize) -> Result<Vec<u8>, UnpackError> {
    if n > MAX_TARGET {
        return Err(corrupt(format!("symlink target of {n} bytes")));
    }
    Ok(f.bytes(off, n)?.to_vec())
}

/// Reads a file inode's block sizes, counted from its size and capped by the bytes present.
pub(super) fn file_blocks(
    f: &Fields<'_>,
    header: usize,
    size: u64,
    frag: u32,
    block_log: u16,
) -> Result<Vec<u32>, UnpackError> {
    let bs = 1u64 << block_log;
    let count = if frag == NO_FRAGMENT {
        size.div_ceil(bs)
    } else {
        size / bs
    };
    let left = f.p.len().saturating_sub(header) as u64;
    if count.saturating_mul(4) > left {
        return Err(corrupt(format!(
            "file of {size} bytes needs {count} block sizes, the inode table has {left} bytes left"
        )));
    }
    let count = usize::try_from(count).map_err(|_| corrupt("block count"))?;
    (0..count).map(|i| f.u32(header + i * 4)).collect()
}

/// The superblock fields of versions 2 and 3.
#[derive(Clone, Copy, Debug)]
struct Super {
    endian: Endian,
    major: u16,
    minor: u16,
    inodes: u32,
    bytes_used: u64,
    uid_start: u64,
    guid_start: u64,
    inode_table: u64,
    dir_table: u64,
    frag_table: u64,
    block_size: u32,
    block_log: u16,
    flags: u8,
    no_uids: u8,
    no_guids: u8,
    mkfs_time: u32,
    root_inode: u64,
    fragments: u32,
}

impl Super {
    fn parse(data: &[u8], endian: Endian) -> Result<Self, UnpackError> {
        let f = Fields { p: data, e: endian };
        let short = |_| UnpackError::Truncated("squashfs 2/3 superblock".into());
        let major = f.u16(28).map_err(short)?;
        let mut sb = Super {
            endian,
            major,
            minor: f.u16(30).map_err(short)?,
            inodes: f.u32(4).map_err(short)?,
            bytes_used: u64::from(f.u32(8).map_err(short)?),
            uid_start: u64::from(f.u32(12).map_err(short)?),
            guid_start: u64::from(f.u32(16).map_err(short)?),
            inode_table: u64::from(f.u32(20).map_err(short)?),
            dir_table: u64::from(f.u32(24).map_err(short)?),
            block_log: f.u16(34).map_err(short)?,
            flags: f.u8(36).map_err(short)?,
            no_uids: f.u8(37).map_err(short)?,
            no_guids: f.u8(38).map_err(short)?,
            mkfs_time: f.u32(39).map_err(short)?,
            root_inode: f.u64(43).map_err(short)?,
            block_size: f.u32(51).map_err(short)?,
            fragments: f.u32(55).map_err(short)?,
            frag_table: u64::from(f.u32(59).map_err(short)?),
        };
        if major == 3 {
            sb.bytes_used = f.u64(63).map_err(short)?;
            sb.uid_start = f.u64(71).map_err(short)?;
            sb.guid_start = f.u64(79).map_err(short)?;
            sb.inode_table = f.u64(87).map_err(short)?;
            sb.dir_table = f.u64(95).map_err(short)?;
            sb.frag_table = f.u64(103).map_err(short)?;
        }
        Ok(sb)
    }

    /// Bytes of the superblock itself.
    fn len(&self) -> u64 {
        if self.major == 3 { 119 } else { 63 }
    }

    fn plausible(&self) -> bool {
        matches!(self.major, 2 | 3)
            && (12..=20).contains(&self.block_log)
            && self.block_size == 1 << self.block_log
            && self.inodes > 0
            && self.bytes_used >= self.len()
            && self.len() <= self.inode_table
            && self.inode_table < self.dir_table
            && self.dir_table < self.bytes_used
            && [self.uid_start, self.guid_start, self.frag_table]
                .iter()
                .all(|&t| t <= self.bytes_used)
    }

    /// Bytes taken by one fragment table entry and one index pointer.
    fn frag_entry_len(&self) -> u64 {
        if self.major == 3 { 16 } else { 8 }
    }
    fn frag_pointer_len(&self) -> u64 {
        if self.major == 3 { 8 } else { 4 }
    }
}

/// Whether `data` starts with a plausible version 2 or 3 superblock.
pub(super) fn detect(data: &[u8], endian: Endian) -> bool {
    Super::parse(data, endian).is_ok_and(|s| s.plausible())
}

/// Decodes blocks, zlib or LZMA in any vendor layout, and remembers which layouts it met.
struct Blocks {
    dict: u32,
    seen: AtomicU8,
}

impl Blocks {
    fn decode(
        &self,
        input: &[u8],
        max_out: usize,
        expect: Option<usize>,
    ) -> Result<Vec<u8>, UnpackError> {
        let zlib = matches!(input, [cmf, flg, ..]
            if cmf & 0x0F == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0);
        let (bit, out) = if zlib {
            (1u8, decompress_block(Compressor::Gzip, input, max_out)?)
        } else {
            let (layout, out) = lzma::decode_any(input, max_out, expect, self.dict)?;
            let bit = match layout {
                Layout::Alone => 2,
                Layout::PropsOnly => 4,
                Layout::Raw => 8,
            };
            (bit, out)
        };
        self.seen.fetch_or(bit, Ordering::Relaxed);
        Ok(out)
    }

    /// The compressions met, for the metadata.
    fn names(&self) -> String {
        let seen = self.seen.load(Ordering::Relaxed);
        let names: Vec<&str> = [
            (1, "zlib"),
            (2, Layout::Alone.name()),
            (4, Layout::PropsOnly.name()),
            (8, Layout::Raw.name()),
        ]
        .iter()
        .filter(|(bit, _)| seen & bit != 0)
        .map(|(_, n)| *n)
        .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(" + ")
        }
    }
}

/// A decompressed metadata table and where each of its blocks starts: block offset relative to
/// the table start → offset in `data`.
struct Table {
    data: Vec<u8>,
    starts: HashMap<u64, usize>,
}

impl Table {
    /// The bytes from `(block, offset)` to the end of the table.
    fn at(&self, block: u64, offset: u16) -> Result<&[u8], UnpackError> {
        let start = self
            .starts
            .get(&block)
            .ok_or_else(|| corrupt(format!("no metadata block starts at {block}")))?;
        start
            .checked_add(usize::from(offset))
            .and_then(|p| self.data.get(p..))
            .ok_or_else(|| corrupt(format!("offset {offset} past metadata block {block}")))
    }
}

/// Reads the chain of metadata blocks from `start` up to `end` (the first block that would cross
/// `end` ends the table).
fn read_table(
    image: &[u8],
    sb: &Super,
    start: u64,
    end: u64,
    blocks: &Blocks,
    ctx: &Ctx<'_>,
) -> Result<Table, UnpackError> {
    let check = u64::from(sb.flags & FLAG_CHECK != 0);
    // First walk the headers: the count bounds the output before anything is decompressed.
    let mut headers = Vec::new();
    let mut pos = start;
    while pos < end {
        ctx.check()?;
        let mut r = Reader::with_endian(image, sb.endian);
        r.seek(pos, "squashfs metadata")?;
        let raw = r.u16("squashfs metadata length")?;
        let len = u64::from(raw & 0x7FFF);
        let data_at = pos.saturating_add(2 + check);
        let next = data_at.saturating_add(len);
        if len == 0 || len > METADATA_MAX as u64 + 16 || next > end || next > image.len() as u64 {
            break;
        }
        headers.push((pos, data_at, len, raw & 0x8000 != 0));
        pos = next;
    }
    if headers.is_empty() {
        return Err(corrupt(format!("no metadata block at {start}")));
    }
    let allowed = ctx.budget().max_expansion(sb.bytes_used);
    if (headers.len() as u64).saturating_mul(METADATA_MAX as u64) > allowed.max(1 << 20) {
        return Err(UnpackError::Limit(LimitError::Ratio {
            max: ctx.budget().limits().max_ratio,
            input: sb.bytes_used,
        }));
    }
    let mut data = Vec::new();
    let mut starts = HashMap::new();
    for (pos, data_at, len, stored) in headers {
        ctx.check()?;
        let raw = crate::unpack::bytes::slice(image, data_at, len, "squashfs metadata block")?;
        starts.insert(pos - start, data.len());
        if stored {
            data.extend_from_slice(raw);
        } else {
            data.extend_from_slice(&blocks.decode(raw, METADATA_MAX, None)?);
        }
    }
    Ok(Table { data, starts })
}

/// Reads the one metadata block at `pos`.
fn read_block(image: &[u8], sb: &Super, pos: u64, blocks: &Blocks) -> Result<Vec<u8>, UnpackError> {
    let mut r = Reader::with_endian(image, sb.endian);
    r.seek(pos, "squashfs metadata")?;
    let raw = r.u16("squashfs metadata length")?;
    if sb.flags & FLAG_CHECK != 0 {
        r.skip(1, "squashfs metadata check byte")?;
    }
    let block = r.bytes(u64::from(raw & 0x7FFF), "squashfs metadata block")?;
    if raw & 0x8000 != 0 {
        Ok(block.to_vec())
    } else {
        blocks.decode(block, METADATA_MAX, None)
    }
}

/// The fragment table: (start, stored size word) per fragment.
fn read_fragments(
    image: &[u8],
    sb: &Super,
    blocks: &Blocks,
    ctx: &Ctx<'_>,
) -> Result<Vec<(u64, u32)>, UnpackError> {
    if sb.fragments == 0 {
        return Ok(Vec::new());
    }
    let per_block = METADATA_MAX as u64 / sb.frag_entry_len();
    let index_len = u64::from(sb.fragments).div_ceil(per_block);
    let index = crate::unpack::bytes::slice(
        image,
        sb.frag_table,
        index_len.saturating_mul(sb.frag_pointer_len()),
        "squashfs fragment index",
    )?;
    let f = Fields {
        p: index,
        e: sb.endian,
    };
    let mut entries = Vec::new();
    for i in 0..index_len {
        ctx.check()?;
        let i = usize::try_from(i).map_err(|_| corrupt("fragment index"))?;
        let ptr = if sb.major == 3 {
            f.u64(i * 8)?
        } else {
            u64::from(f.u32(i * 4)?)
        };
        let block = read_block(image, sb, ptr, blocks)?;
        let block = block.as_slice();
        let t = Fields {
            p: block,
            e: sb.endian,
        };
        let mut pos = 0usize;
        while pos + sb.frag_entry_len() as usize <= block.len()
            && (entries.len() as u64) < u64::from(sb.fragments)
        {
            let (start, size) = if sb.major == 3 {
                (t.u64(pos)?, t.u32(pos + 8)?)
            } else {
                (u64::from(t.u32(pos)?), t.u32(pos + 4)?)
            };
            entries.push((start, size));
            pos += sb.frag_entry_len() as usize;
        }
    }
    if entries.len() as u64 != u64::from(sb.fragments) {
        return Err(corrupt(format!(
            "fragment table holds {} of {} fragments",
            entries.len(),
            sb.fragments
        )));
    }
    Ok(entries)
}

/// Reads a uid or gid table (plain 32-bit ids).
fn read_ids(image: &[u8], sb: &Super, start: u64, count: u8) -> Vec<u32> {
    let mut r = Reader::with_endian(image, sb.endian);
    if r.seek(start, "").is_err() {
        return Vec::new();
    }
    (0..count).map_while(|_| r.u32("").ok()).collect()
}

/// A regular file found by the walk: where its data is.
struct FileJob {
    start: u64,
    fragment: Option<(u32, u32)>,
    size: u64,
    blocks: Vec<u32>,
}

/// Unpacks a version 2 or 3 image.
pub(super) fn unpack(data: &Bytes, endian: Endian, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
    let sb = Super::parse(data, endian)?;
    let version = format!("{}.{}", sb.major, sb.minor);
    if !sb.plausible() {
        return Err(corrupt(format!("impossible {version} superblock")));
    }
    if (data.len() as u64) < sb.bytes_used {
        return Err(UnpackError::Truncated(format!(
            "squashfs {version} {}: superblock says {} bytes, {} present",
            endian_name(endian),
            sb.bytes_used,
            data.len()
        )));
    }
    let image = data.slice(..usize::try_from(sb.bytes_used).map_err(|_| corrupt("size"))?);
    let blocks = Blocks {
        dict: sb.block_size,
        seen: AtomicU8::new(0),
    };
    let inodes = read_table(&image, &sb, sb.inode_table, sb.dir_table, &blocks, ctx)?;
    // Every inode takes at least 4 bytes, and mksquashfs writes no fragment block without a
    // file in it: counts beyond these are lies, refused before anything is allocated for them.
    if u64::from(sb.inodes) > inodes.data.len() as u64 / 4 || sb.fragments > sb.inodes {
        return Err(corrupt(format!(
            "{} inodes and {} fragments claimed, the inode table holds {} bytes",
            sb.inodes,
            sb.fragments,
            inodes.data.len()
        )));
    }
    // The directory table ends where the next table starts.
    let frags = read_fragments(&image, &sb, &blocks, ctx)?;
    let dir_end = [sb.frag_table, sb.uid_start, sb.guid_start, sb.bytes_used]
        .into_iter()
        .filter(|&t| t > sb.dir_table)
        .min()
        .unwrap_or(sb.bytes_used);
    let dirs = read_table(&image, &sb, sb.dir_table, dir_end, &blocks, ctx)?;
    let uids = read_ids(&image, &sb, sb.uid_start, sb.no_uids);
    let gids = read_ids(&image, &sb, sb.guid_start, sb.no_guids);

    let parse = |block: u64, offset: u16| -> Result<Inode, UnpackError> {
        let p = inodes.at(block, offset)?;
        let (inode, _) = if sb.major == 3 {
            v3::inode(p, sb.endian, sb.block_log)?
        } else {
            v2::inode(p, sb.endian, sb.block_log)?
        };
        Ok(inode)
    };

    let root_ref = (sb.root_inode >> 16, (sb.root_inode & 0xFFFF) as u16);
    let root = parse(root_ref.0, root_ref.1)?;
    let mut children: Vec<Child> = Vec::new();
    let mut jobs: Vec<FileJob> = Vec::new();
    let mut job_of_child: Vec<Option<usize>> = Vec::new();
    let mut job_of_inode: HashMap<(u64, u16), usize> = HashMap::new();
    let mut cache: HashMap<(u64, u16), Inode> = HashMap::new();
    let mut seen_dirs: HashSet<(u64, u16)> = HashSet::from([root_ref]);
    let mut queue: VecDeque<(Vec<u8>, Inode)> = VecDeque::from([(Vec::new(), root)]);
    while let Some((dir_path, dir)) = queue.pop_front() {
        ctx.check()?;
        let Body::Dir {
            size,
            block,
            offset,
        } = dir.body
        else {
            continue;
        };
        let len = if sb.major == 3 {
            size.checked_sub(3)
                .ok_or_else(|| corrupt("directory smaller than its . and .."))?
        } else {
            size
        };
        let entries = if len == 0 {
            Vec::new()
        } else {
            let p = dirs.at(u64::from(block), offset)?;
            let p = p
                .get(..len as usize)
                .ok_or_else(|| corrupt("directory listing runs past the directory table"))?;
            if sb.major == 3 {
                v3::listing(p, sb.endian)?
            } else {
                v2::listing(p, sb.endian)?
            }
        };
        ctx.entries(entries.len() as u64)?;
        for e in entries {
            ctx.check()?;
            let mut path = dir_path.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&e.name);
            let key = (u64::from(e.block), e.offset);
            // Each inode is parsed once, however many entries name it (hard links, or a hostile
            // listing naming one inode a million times); a file's block list moves to its job.
            let inode = if let Some(i) = cache.get(&key) {
                i.clone()
            } else {
                match parse(key.0, key.1) {
                    Ok(mut i) => {
                        if let Body::File {
                            start,
                            fragment,
                            size,
                            blocks,
                        } = &mut i.body
                        {
                            jobs.push(FileJob {
                                start: *start,
                                fragment: *fragment,
                                size: *size,
                                blocks: std::mem::take(blocks),
                            });
                            job_of_inode.insert(key, jobs.len() - 1);
                        }
                        cache.insert(key, i.clone());
                        i
                    }
                    Err(err) => {
                        children
                            .push(Child::new(path, EntryKind::File, Bytes::new()).with_error(err));
                        job_of_child.push(None);
                        continue;
                    }
                }
            };
            let type_bits: u32 = match inode.ty {
                1 | 8 => 0o040000,
                2 | 9 => 0o100000,
                3 => 0o120000,
                4 => 0o060000,
                5 => 0o020000,
                6 => 0o010000,
                _ => 0o140000,
            };
            let kind = match &inode.body {
                Body::Dir { .. } => EntryKind::Dir,
                Body::File { .. } => EntryKind::File,
                Body::Symlink(t) => EntryKind::Symlink { target: t.clone() },
                Body::Device(_) | Body::Ipc => EntryKind::Device,
            };
            let mut child = Child::new(path.clone(), kind, Bytes::new())
                .with_mode(type_bits | u32::from(inode.mode & 0o7777));
            if sb.major == 3 || inode.mtime != 0 {
                child = child.with_meta("mtime", inode.mtime);
            }
            if let Some(n) = inode.number {
                child = child.with_meta("inode", n);
            }
            if let Some(uid) = uids.get(usize::from(inode.uid)) {
                child = child.with_meta("uid", *uid);
            }
            let gid = if inode.gid == GUID_SAME {
                uids.get(usize::from(inode.uid))
            } else {
                gids.get(usize::from(inode.gid))
            };
            if let Some(gid) = gid {
                child = child.with_meta("gid", *gid);
            }
            let mut job = None;
            match inode.body {
                Body::Dir { .. } => {
                    if seen_dirs.insert(key) {
                        queue.push_back((path, inode));
                    } else {
                        child = child.with_error(corrupt(
                            "directory listed twice (a cycle in the directory table)",
                        ));
                    }
                }
                Body::File { .. } => job = job_of_inode.get(&key).copied(),
                Body::Symlink(t) => {
                    child = child.with_meta("target", String::from_utf8_lossy(&t).into_owned());
                }
                Body::Device(rdev) => {
                    child = child.with_meta("device", device_string(rdev));
                }
                Body::Ipc => {}
            }
            children.push(child);
            job_of_child.push(job);
        }
    }

    // What the inodes claim must fit the expansion allowed for this image.
    let claimed = jobs.iter().fold(0u64, |acc, j| acc.saturating_add(j.size));
    let limits = ctx.budget().limits();
    let allowed = sb
        .bytes_used
        .saturating_mul(limits.max_ratio)
        .max(limits.ratio_floor_bytes);
    if claimed > allowed {
        return Err(UnpackError::Limit(LimitError::Ratio {
            max: limits.max_ratio,
            input: sb.bytes_used,
        }));
    }

    let block_size = usize::try_from(sb.block_size).map_err(|_| corrupt("block size"))?;
    let used: HashSet<u32> = jobs
        .iter()
        .filter_map(|j| j.fragment.map(|(i, _)| i))
        .collect();
    let frag_data: HashMap<u32, Result<Bytes, UnpackError>> = used
        .into_par_iter()
        .map(|i| {
            let r = (|| {
                ctx.check()?;
                let (start, word) = frags
                    .get(usize::try_from(i).unwrap_or(usize::MAX))
                    .copied()
                    .ok_or_else(|| corrupt(format!("fragment {i} not in the table")))?;
                let len = u64::from(word & !BLOCK_UNCOMPRESSED);
                let stored = crate::unpack::bytes::slice(&image, start, len, "squashfs fragment")?;
                let out = if word & BLOCK_UNCOMPRESSED != 0 {
                    stored.to_vec()
                } else {
                    blocks.decode(stored, block_size, None)?
                };
                Ok(Bytes::from(out))
            })();
            (i, r)
        })
        .collect();

    let contents: Vec<Result<Bytes, UnpackError>> = jobs
        .par_iter()
        .map(|j| read_file(&image, j, block_size, &blocks, &frag_data, ctx))
        .collect();
    for c in &contents {
        if let Err(e) = c
            && is_global(e)
        {
            return Err(e.clone());
        }
    }
    for (child, job) in children.iter_mut().zip(&job_of_child) {
        match job.and_then(|j| contents.get(j)) {
            Some(Ok(b)) => child.data = b.clone(),
            Some(Err(e)) => child.error = Some(e.clone()),
            None => {}
        }
    }

    let mut out = Unpacked::new(padded_extent(data, sb.bytes_used))
        .meta("version", version)
        .meta("endian", endian_name(endian))
        .meta("compressor", blocks.names())
        .meta("block_size", sb.block_size)
        .meta("inode_count", sb.inodes)
        .meta("mkfs_time", sb.mkfs_time)
        .meta("bytes_used", sb.bytes_used);
    out.children = children;
    Ok(out)
}

/// One file's bytes: its blocks, then its tail from a fragment.
fn read_file(
    image: &[u8],
    j: &FileJob,
    block_size: usize,
    blocks: &Blocks,
    frags: &HashMap<u32, Result<Bytes, UnpackError>>,
    ctx: &Ctx<'_>,
) -> Result<Bytes, UnpackError> {
    use std::io::Write;
    ctx.claimed_size(j.size)?;
    let bs = block_size as u64;
    let stored_total = j.blocks.iter().fold(0u64, |acc, w| {
        acc.saturating_add(u64::from(w & !BLOCK_UNCOMPRESSED))
    });
    let mut sink = ctx.sink(stored_total.saturating_add(bs).max(1));
    sink.reserve_claimed(j.size);
    let mut pos = j.start;
    for (i, &word) in j.blocks.iter().enumerate() {
        ctx.check()?;
        let want = j.size.saturating_sub((i as u64).saturating_mul(bs)).min(bs);
        let want = usize::try_from(want).map_err(|_| corrupt("block size"))?;
        let len = u64::from(word & !BLOCK_UNCOMPRESSED);
        let out = if len == 0 {
            vec![0u8; want]
        } else {
            let stored = crate::unpack::bytes::slice(image, pos, len, "squashfs data block")?;
            if word & BLOCK_UNCOMPRESSED != 0 {
                stored.to_vec()
            } else {
                blocks.decode(stored, block_size, Some(want))?
            }
        };
        if out.len() != want {
            return Err(corrupt(format!(
                "data block at {pos:#x} holds {} bytes, {want} expected",
                out.len()
            )));
        }
        sink.write_all(&out)
            .map_err(|e| UnpackError::from_io(&e, "squashfs file"))?;
        pos = pos.saturating_add(len);
    }
    let done = (j.blocks.len() as u64).saturating_mul(bs);
    let tail = j.size.saturating_sub(done);
    if tail > 0 {
        let (index, offset) = j
            .fragment
            .ok_or_else(|| corrupt("file is longer than its blocks and has no fragment"))?;
        let frag = match frags.get(&index) {
            Some(Ok(f)) => f,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(corrupt(format!("fragment {index} missing"))),
        };
        let bytes = crate::unpack::bytes::slice(frag, u64::from(offset), tail, "squashfs fragment")
            .map_err(|_| {
                corrupt(format!(
                    "file tail of {tail} bytes at {offset} runs past fragment {index}"
                ))
            })?;
        sink.write_all(bytes)
            .map_err(|e| UnpackError::from_io(&e, "squashfs file"))?;
    }
    Ok(Bytes::from(sink.into_inner()))
}
