//! From scanned nodes to entries, as the kernel builds its in-memory tree: the highest-version
//! dirent per (parent, name) wins and an inode number of 0 deletes; an inode's fragments apply in
//! version order (newest first here, so shadowed fragments are never decompressed) and its latest
//! node gives the metadata and size. Hard links, orphans and cycles are resolved without recursion.

use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use rayon::prelude::*;

use super::Scan;
use super::nodes::{self, Dirent, Inode, compr};
use crate::unpack::bytes::Endian;
use crate::unpack::formats::{Ctx, path_escapes};
use crate::unpack::tree::{Child, EntryKind};
use crate::unpack::{LimitError, UnpackError};

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;

const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;
const DT_LNK: u8 = 10;

/// The root directory's inode number.
const ROOT_INO: u32 = 1;

/// Longest path built (Linux's `PATH_MAX`); deeper entries are listed under `lost+found/<ino>`.
const PATH_MAX: usize = 4096;

/// The entries of an image and what resolving them found.
pub(crate) struct Resolved {
    /// Entries sorted by path.
    pub children: Vec<Child>,
    /// Names whose latest dirent deletes them.
    pub deleted: u64,
    /// Entries listed as hard links to an earlier one.
    pub hardlinks: u64,
    /// Entries whose parent chain does not reach the root (missing parent or a cycle).
    pub orphans: u64,
    /// Inode nodes per compression method.
    pub compression: serde_json::Map<String, serde_json::Value>,
    /// A limit that stopped reading some contents.
    pub stopped: Option<UnpackError>,
}

fn name_of<'a>(image: &'a [u8], d: &Dirent) -> &'a [u8] {
    let start = d.name_at as usize;
    image
        .get(start..start.saturating_add(usize::from(d.name_len)))
        .unwrap_or_default()
}

/// Directory paths, memoised, computed by walking parent links iteratively.
struct Paths<'a> {
    image: &'a [u8],
    dirents: &'a [Dirent],
    /// The dirent naming each directory inode.
    dir_dirent: HashMap<u32, usize>,
    /// Path of each directory inode resolved so far, and whether it is orphaned.
    memo: HashMap<u32, (Vec<u8>, bool)>,
}

impl Paths<'_> {
    /// `parent/name`, or a `lost+found/<ino>` path when it would be too long.
    fn join(parent: &[u8], name: &[u8], ino: u32) -> (Vec<u8>, bool) {
        if parent.len() + 1 + name.len() > PATH_MAX {
            return (format!("lost+found/{ino}").into_bytes(), true);
        }
        let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
        if !parent.is_empty() {
            p.extend_from_slice(parent);
            p.push(b'/');
        }
        p.extend_from_slice(name);
        (p, false)
    }

    /// The path of directory `ino` ("" for the root) and whether it is orphaned.
    fn dir(&mut self, ino: u32, ctx: &Ctx<'_>) -> Result<(Vec<u8>, bool), UnpackError> {
        if ino == ROOT_INO {
            return Ok((Vec::new(), false));
        }
        let mut chain = Vec::new();
        let mut visiting = HashSet::new();
        let mut cur = ino;
        let (mut path, mut orphan) = loop {
            if cur == ROOT_INO {
                break (Vec::new(), false);
            }
            if let Some(known) = self.memo.get(&cur) {
                break known.clone();
            }
            let Some(&d) = self.dir_dirent.get(&cur) else {
                // The parent directory is not in the image.
                break (format!("lost+found/{cur}").into_bytes(), true);
            };
            if !visiting.insert(cur) {
                // A cycle of directories: none of them reaches the root.
                break (format!("lost+found/{cur}").into_bytes(), true);
            }
            chain.push((cur, d));
            cur = self.dirents.get(d).map_or(0, |d| d.pino);
        };
        for (dir_ino, d) in chain.into_iter().rev() {
            let name = self
                .dirents
                .get(d)
                .map(|d| name_of(self.image, d))
                .unwrap_or_default();
            let (p, deep) = Self::join(&path, name, dir_ino);
            ctx.output(p.len() as u64)?;
            path = p;
            orphan |= deep;
            self.memo.insert(dir_ino, (path.clone(), orphan));
        }
        Ok((path, orphan))
    }
}

/// One listed name before its contents are read.
struct Record {
    path: Vec<u8>,
    dirent: usize,
    orphan: bool,
}

/// Resolves the scanned nodes of `image` into entries.
pub(crate) fn resolve(image: &[u8], s: &Scan, ctx: &Ctx<'_>) -> Result<Resolved, UnpackError> {
    // The latest dirent of every (parent, name).
    let mut latest: HashMap<(u32, &[u8]), usize> = HashMap::with_capacity(s.dirents.len());
    for (i, d) in s.dirents.iter().enumerate() {
        if i % 4096 == 4095 {
            ctx.check()?;
        }
        match latest.entry((d.pino, name_of(image, d))) {
            Slot::Occupied(mut o) => {
                let newer = s
                    .dirents
                    .get(*o.get())
                    .is_none_or(|old| d.version >= old.version);
                if newer {
                    o.insert(i);
                }
            }
            Slot::Vacant(v) => {
                v.insert(i);
            }
        }
    }
    let mut live: Vec<usize> = Vec::with_capacity(latest.len());
    let mut deleted = 0u64;
    for &i in latest.values() {
        match s.dirents.get(i) {
            Some(d) if d.ino == 0 => deleted += 1,
            Some(_) => live.push(i),
            None => {}
        }
    }
    live.sort_unstable();

    // Every inode's nodes in version order (flash order among equal versions).
    let mut by_ino: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut methods: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (i, n) in s.inodes.iter().enumerate() {
        by_ino.entry(n.ino).or_default().push(i);
        *methods.entry(compr::name(n.compr)).or_default() += 1;
    }
    for list in by_ino.values_mut() {
        list.sort_by_key(|&i| s.inodes.get(i).map(|n| (n.version, n.at)));
    }
    let latest_inode = |ino: u32| -> Option<&Inode> {
        by_ino
            .get(&ino)
            .and_then(|l| l.last())
            .and_then(|&i| s.inodes.get(i))
    };
    let is_dir = |d: &Dirent| match latest_inode(d.ino) {
        Some(n) => n.mode & S_IFMT == S_IFDIR,
        None => d.dtype == DT_DIR,
    };

    // The name of each directory: its newest live dirent.
    let mut dir_dirent: HashMap<u32, usize> = HashMap::new();
    for &i in &live {
        let Some(d) = s.dirents.get(i) else { continue };
        if !is_dir(d) {
            continue;
        }
        match dir_dirent.entry(d.ino) {
            Slot::Occupied(mut o) => {
                if s.dirents
                    .get(*o.get())
                    .is_none_or(|old| d.version >= old.version)
                {
                    o.insert(i);
                }
            }
            Slot::Vacant(v) => {
                v.insert(i);
            }
        }
    }
    let mut paths = Paths {
        image,
        dirents: &s.dirents,
        dir_dirent,
        memo: HashMap::new(),
    };
    let mut records = Vec::with_capacity(live.len());
    for (n, &i) in live.iter().enumerate() {
        if n % 1024 == 1023 {
            ctx.check()?;
        }
        let Some(d) = s.dirents.get(i) else { continue };
        let (parent, orphan) = paths.dir(d.pino, ctx)?;
        let (path, deep) = Paths::join(&parent, name_of(image, d), d.ino);
        ctx.output(path.len() as u64)?;
        records.push(Record {
            path,
            dirent: i,
            orphan: orphan || deep,
        });
    }
    records.sort_by(|a, b| a.path.cmp(&b.path).then(a.dirent.cmp(&b.dirent)));
    ctx.entries(records.len() as u64)?;

    // Kinds, hard links and which contents to read.
    let mut first_name: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut hardlinks = 0u64;
    let mut orphans = 0u64;
    let mut children = Vec::with_capacity(records.len());
    let mut wanted: Vec<Option<u32>> = Vec::with_capacity(records.len());
    for r in records {
        let Some(d) = s.dirents.get(r.dirent) else {
            continue;
        };
        let name = name_of(image, d);
        let unsafe_name = name.is_empty() || name == b"." || name == b".." || name.contains(&b'/');
        let node = latest_inode(d.ino);
        let mode = node.map(|n| n.mode);
        let ty = mode.map_or(
            match d.dtype {
                DT_DIR => S_IFDIR,
                DT_REG => S_IFREG,
                DT_LNK => S_IFLNK,
                _ => 0,
            },
            |m| m & S_IFMT,
        );
        let kind = match ty {
            S_IFDIR => EntryKind::Dir,
            S_IFREG => EntryKind::File,
            S_IFLNK => EntryKind::Symlink { target: Vec::new() },
            _ => EntryKind::Device,
        };
        // A file's bytes are scattered over its fragments: no single offset, but where its name
        // was written.
        let mut child = Child::new(r.path.clone(), kind, Bytes::new())
            .with_meta("dirent_offset", d.at)
            .with_meta("ino", d.ino);
        if let Some(n) = node {
            child = child
                .with_mode(n.mode)
                .with_meta("uid", n.uid)
                .with_meta("gid", n.gid)
                .with_meta("mtime", n.mtime)
                .with_meta("version", n.version)
                .with_meta("nodes", by_ino.get(&d.ino).map_or(0, |l| l.len() as u64));
        } else {
            child = child.with_error(UnpackError::Corrupt(format!(
                "jffs2: no inode node for ino {}",
                d.ino
            )));
        }
        if unsafe_name || path_escapes(&r.path) {
            child = child.with_meta("unsafe_path", true);
        }
        if r.orphan {
            orphans += 1;
            child = child.with_meta("orphan", true);
        }
        let mut want = None;
        if ty == S_IFDIR {
            if paths.dir_dirent.get(&d.ino) != Some(&r.dirent) {
                child = child.with_error(UnpackError::Corrupt(format!(
                    "jffs2: directory ino {} has more than one name",
                    d.ino
                )));
            }
        } else if let Some(first) = first_name.get(&d.ino) {
            child.kind = EntryKind::Hardlink {
                target: first.clone(),
            };
            hardlinks += 1;
        } else {
            first_name.insert(d.ino, r.path);
            if node.is_some() {
                want = Some(d.ino);
            }
        }
        children.push(child);
        wanted.push(want);
    }

    // Contents, in parallel.
    let contents: Vec<Option<(Vec<u8>, Option<UnpackError>)>> = wanted
        .par_iter()
        .zip(children.par_iter())
        .map(|(want, child)| {
            let ino = (*want)?;
            let list = by_ino.get(&ino)?;
            Some(match child.kind {
                EntryKind::Device => device(image, s, list),
                _ => match assemble(image, s, list, ctx) {
                    Ok(done) => done,
                    Err(e) => (Vec::new(), Some(e)),
                },
            })
        })
        .collect();
    let mut stopped = None;
    for (child, content) in children.iter_mut().zip(contents) {
        let Some((bytes, error)) = content else {
            continue;
        };
        if let Some(e) = error {
            if matches!(e, UnpackError::Limit(_)) && stopped.is_none() {
                stopped = Some(e.clone());
            }
            child.error = Some(e);
        }
        match &mut child.kind {
            EntryKind::Symlink { target } => {
                child.meta.insert(
                    "target".into(),
                    String::from_utf8_lossy(&bytes).into_owned().into(),
                );
                *target = bytes;
            }
            EntryKind::Device => {
                if let Some((major, minor)) = device_number(&bytes, s.endian) {
                    child.meta.insert("major".into(), major.into());
                    child.meta.insert("minor".into(), minor.into());
                }
            }
            _ => child.data = Bytes::from(bytes),
        }
    }
    Ok(Resolved {
        children,
        deleted,
        hardlinks,
        orphans,
        compression: methods
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect(),
        stopped,
    })
}

/// Disjoint covered ranges of a file, keyed by start.
#[derive(Default)]
struct Coverage(BTreeMap<u64, u64>);

impl Coverage {
    /// The parts of `start..end` not yet covered, in order.
    fn uncovered(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut overlapping: Vec<(u64, u64)> = self
            .0
            .range(..end)
            .rev()
            .take_while(|&(_, &e)| e > start)
            .map(|(&s, &e)| (s, e))
            .collect();
        overlapping.reverse();
        let mut gaps = Vec::new();
        let mut cur = start;
        for (s, e) in overlapping {
            if s > cur {
                gaps.push((cur, s));
            }
            cur = cur.max(e);
        }
        if cur < end {
            gaps.push((cur, end));
        }
        gaps
    }

    /// Marks `start..end` covered, merging with touching ranges.
    fn insert(&mut self, start: u64, end: u64) {
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=end)
            .rev()
            .take_while(|&(_, &e)| e >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        let (mut s, mut e) = (start, end);
        for (ts, te) in touching {
            self.0.remove(&ts);
            s = s.min(ts);
            e = e.max(te);
        }
        self.0.insert(s, e);
    }
}

/// One fragment's bytes, decompressed and charged to the budget.
fn fragment(image: &[u8], n: &Inode, ctx: &Ctx<'_>) -> Result<Vec<u8>, UnpackError> {
    let at = n.data_at();
    let stored = image
        .get(at..at.saturating_add(n.csize as usize))
        .ok_or_else(|| UnpackError::Truncated("jffs2: fragment past the end".into()))?;
    ctx.charge_read(u64::from(n.csize));
    let data = nodes::decompress(n.compr, stored, n.dsize)?;
    ctx.output(data.len() as u64)?;
    Ok(data)
}

/// A file's contents: its latest size, each byte from the newest fragment covering it, holes as
/// zeros. A fragment that cannot be decompressed reads as zeros and its error is returned.
fn assemble(
    image: &[u8],
    s: &Scan,
    list: &[usize],
    ctx: &Ctx<'_>,
) -> Result<(Vec<u8>, Option<UnpackError>), UnpackError> {
    let Some(latest) = list.last().and_then(|&i| s.inodes.get(i)) else {
        return Ok((Vec::new(), None));
    };
    let size = u64::from(latest.isize);
    ctx.claimed_size(size)?;
    let mut covered = Coverage::default();
    let mut fragments: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut pieces: Vec<(u64, u64, usize)> = Vec::new();
    let mut first_error = None;
    for (k, n) in list
        .iter()
        .rev()
        .filter_map(|&i| s.inodes.get(i))
        .enumerate()
    {
        if k % 256 == 255 {
            ctx.check()?;
        }
        let start = u64::from(n.offset);
        let end = start.saturating_add(u64::from(n.dsize)).min(size);
        if start >= end {
            continue;
        }
        let gaps = covered.uncovered(start, end);
        if gaps.is_empty() {
            continue;
        }
        covered.insert(start, end);
        if n.compr == compr::ZERO {
            continue;
        }
        match fragment(image, n, ctx) {
            Ok(data) => {
                let idx = fragments.len();
                fragments.push((start, data));
                pieces.extend(gaps.into_iter().map(|(a, b)| (a, b, idx)));
            }
            Err(e @ UnpackError::Limit(_)) => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    pieces.sort_unstable_by_key(|p| p.0);
    let stored: u64 = pieces.iter().map(|&(a, b, _)| b - a).sum();
    ctx.output(size.saturating_sub(stored))?;
    let size = usize::try_from(size).map_err(|_| LimitError::FileBytes { max: size })?;
    let mut out = Vec::with_capacity(size);
    for (a, b, idx) in pieces {
        let Some((start, data)) = fragments.get(idx) else {
            continue;
        };
        let from = usize::try_from(a - start).unwrap_or(usize::MAX);
        let to = usize::try_from(b - start).unwrap_or(usize::MAX);
        out.resize(usize::try_from(a).unwrap_or(size), 0);
        out.extend_from_slice(data.get(from..to).unwrap_or_default());
    }
    out.resize(size, 0);
    Ok((out, first_error))
}

/// A device node's data: the device number, as the latest node stores it.
fn device(image: &[u8], s: &Scan, list: &[usize]) -> (Vec<u8>, Option<UnpackError>) {
    let Some(n) = list.last().and_then(|&i| s.inodes.get(i)) else {
        return (Vec::new(), None);
    };
    if n.mode & S_IFMT != S_IFCHR && n.mode & S_IFMT != S_IFBLK {
        return (Vec::new(), None);
    }
    let at = n.data_at();
    match image.get(at..at.saturating_add(n.csize as usize)) {
        Some(stored) => match nodes::decompress(n.compr, stored, n.dsize.min(8)) {
            Ok(d) => (d, None),
            Err(e) => (Vec::new(), Some(e)),
        },
        None => (Vec::new(), None),
    }
}

/// (major, minor) of a stored device number, in the image's byte order: 2 bytes in the old
/// encoding, 4 in Linux's `new_encode_dev`.
fn device_number(bytes: &[u8], endian: Endian) -> Option<(u32, u32)> {
    match bytes.len() {
        2 => {
            let v = nodes::u16_at(bytes, 0, endian)?;
            Some((u32::from(v >> 8), u32::from(v & 0xFF)))
        }
        4 => {
            let v = nodes::u32_at(bytes, 0, endian)?;
            Some(((v & 0xFFF00) >> 8, (v & 0xFF) | ((v >> 12) & 0xFFF00)))
        }
        _ => None,
    }
}
