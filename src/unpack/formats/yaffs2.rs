//! YAFFS2 NAND images: the page geometry, endianness and tag position are found by trying the
//! usual layouts and validating object headers; objects and data chunks are resolved latest first.
//! Layout: Aleph One's yaffs2 (`yaffs_guts.h`, `yaffs_packedtags2.c`); detection after unblob's
//! yaffs handler (page and spare sizes tried, tags at the spare's start or after a 2-byte marker).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::{Ctx, Format, Magic, path_escapes};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{Endian, Reader};
use crate::unpack::tree::{Child, EntryKind, Unpacked};

/// YAFFS2.
pub struct Yaffs2;

/// Page (chunk) sizes tried, in bytes.
const PAGE_SIZES: [u64; 5] = [512, 1024, 2048, 4096, 8192];
/// Spare (OOB) sizes tried, in bytes.
const SPARE_SIZES: [u64; 5] = [16, 32, 64, 128, 256];
/// Size of the packed tags (sequence number, object id, chunk id, byte count).
const TAGS: u64 = 16;
/// Size of an object header.
const HEADER: u64 = 512;
/// Sequence numbers a block may carry (`YAFFS_LOWEST/HIGHEST_SEQUENCE_NUMBER`).
const SEQ_MIN: u32 = 0x1000;
const SEQ_MAX: u32 = 0xEFFF_FF00;
/// Chunk-id flag of packed tags that carry extra header information instead of a chunk id.
const EXTRA_HEADER_INFO: u32 = 0x8000_0000;
/// Object-id bits that carry the object type in such tags.
const EXTRA_TYPE_MASK: u32 = 0xF000_0000;
/// Well-known object ids: the root, and the pseudo-directories of unlinked and deleted objects.
const ROOT: u32 = 1;
const UNLINKED: u32 = 3;
const DELETED: u32 = 4;
/// Pages looked at when scoring a candidate layout.
const PROBE_PAGES: u64 = 64;
/// Deepest directory nesting followed when building paths (a longer chain is a cycle).
const MAX_DEPTH: usize = 256;

fn corrupt(what: impl std::fmt::Display) -> UnpackError {
    UnpackError::Corrupt(format!("yaffs2: {what}"))
}

/// Where a page's packed tags are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TagsAt {
    /// In the spare area that follows each page, this many bytes in.
    Spare { size: u64, offset: u64 },
    /// In the last 16 bytes of the page itself (in-band tags; no spare area).
    Inband,
}

/// One candidate layout.
#[derive(Clone, Copy, Debug)]
struct Layout {
    page: u64,
    tags: TagsAt,
    endian: Endian,
}

impl Layout {
    fn stride(&self) -> u64 {
        match self.tags {
            TagsAt::Spare { size, .. } => self.page + size,
            TagsAt::Inband => self.page,
        }
    }

    /// Data bytes a chunk holds.
    fn chunk_bytes(&self) -> u64 {
        match self.tags {
            TagsAt::Spare { .. } => self.page,
            TagsAt::Inband => self.page - TAGS,
        }
    }

    fn tags_at(&self, page_start: u64) -> u64 {
        match self.tags {
            TagsAt::Spare { offset, .. } => page_start + self.page + offset,
            TagsAt::Inband => page_start + self.page - TAGS,
        }
    }

    fn candidates() -> impl Iterator<Item = Layout> {
        [Endian::Little, Endian::Big]
            .into_iter()
            .flat_map(|endian| {
                PAGE_SIZES.into_iter().flat_map(move |page| {
                    let spare = SPARE_SIZES.into_iter().flat_map(move |size| {
                        [0, 2]
                            .into_iter()
                            .filter(move |&offset| offset + TAGS <= size)
                            .map(move |offset| Layout {
                                page,
                                tags: TagsAt::Spare { size, offset },
                                endian,
                            })
                    });
                    spare.chain(std::iter::once(Layout {
                        page,
                        tags: TagsAt::Inband,
                        endian,
                    }))
                })
            })
    }
}

/// The packed tags of one page.
#[derive(Clone, Copy, Debug)]
struct Tags {
    seq: u32,
    obj: u32,
    chunk: u32,
    bytes: u32,
}

/// What a page is, judged from its tags.
enum Page {
    /// Never written (tags all 0xFF).
    Erased,
    /// Marked bad by the 2-byte marker before the tags.
    Bad,
    /// An object header for `obj`.
    Header(Tags),
    /// Data chunk `chunk` (from 1) of `obj`.
    Data(Tags),
    /// Not a YAFFS2 page under this layout.
    Invalid,
}

fn u32_at(data: &[u8], at: u64, endian: Endian) -> Option<u32> {
    let mut r = Reader::with_endian(data, endian);
    r.seek(at, "").ok()?;
    r.u32("").ok()
}

fn classify(data: &[u8], layout: &Layout, page_start: u64) -> Page {
    let at = layout.tags_at(page_start);
    let Some(raw) = usize::try_from(at)
        .ok()
        .and_then(|a| data.get(a..a.checked_add(TAGS as usize)?))
    else {
        return Page::Invalid;
    };
    if raw.iter().all(|&b| b == 0xFF) {
        return Page::Erased;
    }
    if let TagsAt::Spare { offset: 2, .. } = layout.tags {
        let marker = usize::try_from(page_start + layout.page)
            .ok()
            .and_then(|m| data.get(m));
        if marker.is_some_and(|&b| b != 0xFF) {
            return Page::Bad;
        }
    }
    let word = |i: u64| u32_at(data, at + 4 * i, layout.endian).unwrap_or(0);
    let mut t = Tags {
        seq: word(0),
        obj: word(1),
        chunk: word(2),
        bytes: word(3),
    };
    if !(SEQ_MIN..=SEQ_MAX).contains(&t.seq) {
        return Page::Invalid;
    }
    let header = t.chunk == 0 || t.chunk & EXTRA_HEADER_INFO != 0;
    if t.chunk & EXTRA_HEADER_INFO != 0 {
        t.obj &= !EXTRA_TYPE_MASK;
        t.chunk = 0;
    }
    if t.obj == 0 || t.obj > 0x3FFFF {
        return Page::Invalid;
    }
    if header {
        if object_header(data, layout, page_start).is_some() {
            Page::Header(t)
        } else {
            Page::Invalid
        }
    } else if u64::from(t.bytes) <= layout.chunk_bytes() {
        Page::Data(t)
    } else {
        Page::Invalid
    }
}

/// An object header, as stored.
#[derive(Clone, Debug)]
struct ObjectHeader {
    ty: u32,
    parent: u32,
    name: Vec<u8>,
    mode: u32,
    size: u64,
    equiv: u32,
    alias: Vec<u8>,
    rdev: u32,
}

fn c_field(b: &[u8]) -> Option<Vec<u8>> {
    let end = b.iter().position(|&c| c == 0)?;
    Some(b.get(..end)?.to_vec())
}

/// Parses and validates the object header in the page at `page_start`.
fn object_header(data: &[u8], layout: &Layout, page_start: u64) -> Option<ObjectHeader> {
    let start = usize::try_from(page_start).ok()?;
    let h = data.get(start..start.checked_add(HEADER as usize)?)?;
    let w = |at: u64| u32_at(h, at, layout.endian);
    let ty = w(0)?;
    let parent = w(4)?;
    if !(1..=5).contains(&ty) || parent == 0 || h.get(8..10)? != [0xFF, 0xFF] {
        return None;
    }
    let name = c_field(h.get(10..10 + 256)?)?;
    // Only symlinks fill the alias; other objects may leave it erased (0xFF).
    let alias = if ty == 2 {
        c_field(h.get(0x12C..0x12C + 160)?)?
    } else {
        Vec::new()
    };
    let low = w(0x124)?;
    let high = w(0x1F0)?;
    let size = match (high, low) {
        (0xFFFF_FFFF, 0xFFFF_FFFF) => 0,
        (0xFFFF_FFFF, l) => u64::from(l),
        (h, l) => (u64::from(h) << 32) | u64::from(l),
    };
    Some(ObjectHeader {
        ty,
        parent,
        name,
        mode: w(0x10C)?,
        size,
        equiv: w(0x128)?,
        alias,
        rdev: w(0x1CC)?,
    })
}

/// How many of the first pages read as YAFFS2 under `layout` (0 unless the first is a header).
fn score(data: &[u8], layout: &Layout) -> u64 {
    if !matches!(classify(data, layout, 0), Page::Header(_)) {
        return 0;
    }
    let stride = layout.stride();
    let mut good = 0;
    for i in 0..PROBE_PAGES {
        let at = i * stride;
        if at.saturating_add(stride) > data.len() as u64 {
            break;
        }
        match classify(data, layout, at) {
            Page::Header(_) | Page::Data(_) => good += 1,
            Page::Erased | Page::Bad => {}
            Page::Invalid => break,
        }
    }
    good
}

/// The layout under which most leading pages validate.
fn best_layout(data: &[u8]) -> Option<Layout> {
    let mut best: Option<(u64, Layout)> = None;
    for l in Layout::candidates() {
        let s = score(data, &l);
        if s > 0 && best.is_none_or(|(b, _)| s > b) {
            best = Some((s, l));
        }
    }
    best.map(|(_, l)| l)
}

/// The latest version of an object's header.
struct Object {
    key: (u32, u64),
    page_start: u64,
    header: ObjectHeader,
}

/// The latest version of one data chunk.
struct Chunk {
    key: (u32, u64),
    page_start: u64,
    bytes: u32,
}

const MAGICS: &[Magic] = &[
    Magic::at0(b"\x01\x00\x00\x00\x01\x00\x00\x00\xFF\xFF"),
    Magic::at0(b"\x02\x00\x00\x00\x01\x00\x00\x00\xFF\xFF"),
    Magic::at0(b"\x03\x00\x00\x00\x01\x00\x00\x00\xFF\xFF"),
    Magic::at0(b"\x04\x00\x00\x00\x01\x00\x00\x00\xFF\xFF"),
    Magic::at0(b"\x05\x00\x00\x00\x01\x00\x00\x00\xFF\xFF"),
    Magic::at0(b"\x00\x00\x00\x01\x00\x00\x00\x01\xFF\xFF"),
    Magic::at0(b"\x00\x00\x00\x02\x00\x00\x00\x01\xFF\xFF"),
    Magic::at0(b"\x00\x00\x00\x03\x00\x00\x00\x01\xFF\xFF"),
    Magic::at0(b"\x00\x00\x00\x04\x00\x00\x00\x01\xFF\xFF"),
    Magic::at0(b"\x00\x00\x00\x05\x00\x00\x00\x01\xFF\xFF"),
];

impl Format for Yaffs2 {
    /// YAFFS2 starts on a NAND page: 512 bytes is the smallest page size.
    fn carve_alignment(&self) -> usize {
        512
    }

    fn name(&self) -> &'static str {
        "yaffs2"
    }

    /// An object header of any type whose parent is the root, in either byte order.
    fn magics(&self) -> &'static [Magic] {
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        best_layout(data).is_some()
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let layout = best_layout(data).ok_or_else(|| corrupt("no page layout validates"))?;
        let stride = layout.stride();
        let pages = data.len() as u64 / stride;
        let mut objects: HashMap<u32, Object> = HashMap::new();
        let mut chunks: HashMap<(u32, u32), Chunk> = HashMap::new();
        let (mut end, mut bad_pages, mut used) = (0u64, 0u64, 0u64);
        for i in 0..pages {
            ctx.check()?;
            let at = i * stride;
            match classify(data, &layout, at) {
                Page::Invalid => break,
                Page::Bad => bad_pages += 1,
                Page::Erased => {}
                Page::Header(t) => {
                    let key = (t.seq, i);
                    let newer = objects.get(&t.obj).is_none_or(|o| key > o.key);
                    if newer && let Some(header) = object_header(data, &layout, at) {
                        objects.insert(
                            t.obj,
                            Object {
                                key,
                                page_start: at,
                                header,
                            },
                        );
                    }
                    used += 1;
                }
                Page::Data(t) => {
                    let key = (t.seq, i);
                    let slot = chunks.entry((t.obj, t.chunk)).or_insert(Chunk {
                        key,
                        page_start: at,
                        bytes: t.bytes,
                    });
                    if key > slot.key {
                        *slot = Chunk {
                            key,
                            page_start: at,
                            bytes: t.bytes,
                        };
                    }
                    used += 1;
                }
            }
            end = at + stride;
        }

        // Paths: an object is listed when its parents lead to the root; the unlinked and
        // deleted pseudo-directories (and anything below them) are skipped.
        let mut paths: HashMap<u32, Option<Vec<u8>>> = HashMap::new();
        let mut ids: Vec<u32> = objects.keys().copied().collect();
        ids.sort_unstable();
        for &id in &ids {
            ctx.check()?;
            resolve(id, &objects, &mut paths);
        }

        let mut children = Vec::new();
        let (mut skipped, mut orphans) = (0u64, 0u64);
        let mut by_obj: HashMap<u32, Vec<(u32, &Chunk)>> = HashMap::new();
        for (&(obj, chunk), c) in &chunks {
            by_obj.entry(obj).or_default().push((chunk, c));
        }
        for &id in &ids {
            ctx.check()?;
            let Some(o) = objects.get(&id) else { continue };
            if id == ROOT || [UNLINKED, DELETED].contains(&o.header.parent) {
                skipped += u64::from(id != ROOT);
                continue;
            }
            let Some(Some(path)) = paths.get(&id).cloned() else {
                if dead(id, &objects) {
                    skipped += 1;
                } else {
                    orphans += 1;
                }
                continue;
            };
            ctx.entries(1)?;
            let h = &o.header;
            let perm = h.mode & 0o7777;
            let mut child = match h.ty {
                1 => {
                    let mut parts = by_obj.remove(&id).unwrap_or_default();
                    parts.sort_unstable_by_key(|&(n, _)| n);
                    match file_data(data, &layout, h.size, &parts, ctx) {
                        Ok(b) => Child::file(path.clone(), b),
                        Err(e @ UnpackError::Limit(_)) => return Err(e),
                        Err(e) => Child::file(path.clone(), Bytes::new()).with_error(e),
                    }
                    .with_mode(0o100000 | perm)
                    .with_meta("size", h.size)
                }
                2 => Child::symlink(path.clone(), h.alias.clone())
                    .with_mode(0o120000 | perm)
                    .with_meta("target", String::from_utf8_lossy(&h.alias).into_owned()),
                3 => Child::dir(path.clone()).with_mode(0o040000 | perm),
                4 => match paths.get(&h.equiv).cloned().flatten() {
                    Some(t) => Child::new(
                        path.clone(),
                        EntryKind::Hardlink { target: t.clone() },
                        Bytes::new(),
                    )
                    .with_meta("target", String::from_utf8_lossy(&t).into_owned()),
                    None => Child::new(
                        path.clone(),
                        EntryKind::Hardlink { target: Vec::new() },
                        Bytes::new(),
                    )
                    .with_error(corrupt(format!(
                        "hard link to object {}, which is not listed",
                        h.equiv
                    ))),
                },
                _ => {
                    let mut c =
                        Child::new(path.clone(), EntryKind::Device, Bytes::new()).with_mode(h.mode);
                    if matches!(h.mode & 0o170000, 0o020000 | 0o060000) {
                        let (major, minor) = linux_dev(h.rdev);
                        c = c.with_meta("device", format!("{major},{minor}"));
                    }
                    c
                }
            };
            child = child
                .with_meta("object_id", id)
                .with_meta("header_offset", o.page_start);
            if path_escapes(&h.name) || h.name.contains(&b'/') || h.name.is_empty() {
                child = child.with_meta("unsafe_path", true);
            }
            children.push(child);
        }
        children.sort_by(|a, b| a.name.cmp(&b.name));

        let endian = match layout.endian {
            Endian::Little => "little",
            Endian::Big => "big",
        };
        let (spare, tags_offset) = match layout.tags {
            TagsAt::Spare { size, offset } => (size, Some(offset)),
            TagsAt::Inband => (0, None),
        };
        let mut out = Unpacked::new(end)
            .meta("endian", endian)
            .meta("page_size", layout.page)
            .meta("spare_size", spare)
            .meta("inband_tags", tags_offset.is_none())
            .meta("pages_used", used)
            .meta("bad_pages", bad_pages)
            .meta("objects", objects.len() as u64)
            .meta("skipped_deleted", skipped)
            .meta("orphans", orphans);
        if let Some(o) = tags_offset {
            out = out.meta("tags_offset", o);
        }
        out.children = children;
        Ok(out)
    }
}

/// Major and minor numbers from a Linux `dev_t` as the kernel stores it in a header.
fn linux_dev(rdev: u32) -> (u32, u32) {
    (
        (rdev >> 8) & 0xFFF,
        (rdev & 0xFF) | ((rdev >> 12) & 0xFFF00),
    )
}

/// Whether an object's parents lead to the unlinked or deleted pseudo-directory.
fn dead(id: u32, objects: &HashMap<u32, Object>) -> bool {
    let mut cur = id;
    for _ in 0..MAX_DEPTH {
        match objects.get(&cur) {
            Some(o) if [UNLINKED, DELETED].contains(&o.header.parent) => return true,
            Some(o) => cur = o.header.parent,
            None => return false,
        }
    }
    false
}

/// Fills `paths` with the path of `id` (`None` when it does not lead to the root).
fn resolve(id: u32, objects: &HashMap<u32, Object>, paths: &mut HashMap<u32, Option<Vec<u8>>>) {
    let mut chain = Vec::new();
    let mut seen = HashSet::new();
    let mut cur = id;
    let base: Option<Vec<u8>> = loop {
        if cur == ROOT {
            break Some(Vec::new());
        }
        if let Some(p) = paths.get(&cur) {
            break p.clone();
        }
        if !seen.insert(cur) || chain.len() >= MAX_DEPTH {
            break None;
        }
        match objects.get(&cur) {
            Some(o) if o.header.ty == 3 || cur == id => {
                chain.push(cur);
                cur = o.header.parent;
            }
            _ => break None,
        }
    };
    let mut path = base;
    for &obj in chain.iter().rev() {
        path = path.and_then(|mut p| {
            let o = objects.get(&obj)?;
            if [UNLINKED, DELETED].contains(&o.header.parent) {
                return None;
            }
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(&o.header.name);
            Some(p)
        });
        paths.insert(obj, path.clone());
    }
    for obj in seen {
        paths.entry(obj).or_insert(None);
    }
}

/// Assembles a file of `size` bytes from its data chunks (numbered from 1); chunks past the size
/// are ignored, and missing ones read as zeros (holes).
fn file_data(
    data: &Bytes,
    layout: &Layout,
    size: u64,
    parts: &[(u32, &Chunk)],
    ctx: &Ctx<'_>,
) -> Result<Bytes, UnpackError> {
    let per = layout.chunk_bytes();
    let present = parts
        .iter()
        .map(|(n, c)| {
            u64::from(*n)
                .saturating_sub(1)
                .saturating_mul(per)
                .saturating_add(u64::from(c.bytes))
        })
        .max()
        .unwrap_or(0);
    // A file whose chunks are all in one run is sliced from the image without copying.
    if let [(1, c)] = parts
        && size <= u64::from(c.bytes)
    {
        let start = usize::try_from(c.page_start).map_err(|_| corrupt("offset"))?;
        let len = usize::try_from(size).map_err(|_| corrupt("size"))?;
        return data
            .get(start..start.saturating_add(len))
            .map(|_| data.slice(start..start + len))
            .ok_or_else(|| corrupt("chunk past the end"));
    }
    if size > present.saturating_add(per.saturating_mul(64)) {
        // Far more claimed than the chunks hold: honour the chunks, not the claim.
        return Err(corrupt(format!(
            "file of {size} bytes has data chunks for {present}"
        )));
    }
    ctx.claimed_size(size)?;
    ctx.output(size)?;
    let mut out = vec![0u8; usize::try_from(size).map_err(|_| corrupt("size"))?];
    for &(n, c) in parts {
        ctx.check()?;
        let Some(pos) = u64::from(n).checked_sub(1).map(|k| k.saturating_mul(per)) else {
            continue;
        };
        if pos >= size {
            continue;
        }
        let len = u64::from(c.bytes).min(size - pos);
        let src = crate::unpack::bytes::slice(data, c.page_start, len, "yaffs2 data chunk")?;
        let (p, l) = (pos as usize, len as usize);
        if let Some(dst) = out.get_mut(p..p + l) {
            dst.copy_from_slice(src);
        }
    }
    Ok(Bytes::from(out))
}
