//! cramfs, both endiannesses: superblock, inode tree, zlib-compressed 4 KiB pages, holes, symlinks
//! and devices, read from the layout of Linux's `include/uapi/linux/cramfs_fs.h` (a 76-byte
//! superblock ending in the root inode; 12-byte inodes of bitfields; per-file block pointer
//! tables of end offsets). Also [`build`], a small writer for tests and demos.

use std::collections::HashSet;
use std::io::Write;

use bytes::Bytes;
use rayon::prelude::*;

use super::{Ctx, Format, Magic};
use crate::unpack::bytes::{Endian, Reader, c_string, slice};
use crate::unpack::tree::{Child, EntryKind, Unpacked};
use crate::unpack::{LimitError, UnpackError};

/// cramfs.
pub struct Cramfs;

/// Superblock magic.
pub const MAGIC: u32 = 0x28CD_3D45;
/// Signature at offset 16.
pub const SIGNATURE: &[u8; 16] = b"Compressed ROMFS";
/// Page (block) size of file data.
pub const PAGE: usize = 4096;
/// Superblock size, root inode included.
pub const SUPERBLOCK_LEN: usize = 76;

const FLAG_FSID_VERSION_2: u32 = 0x1;
const FLAG_SORTED_DIRS: u32 = 0x2;
const FLAG_HOLES: u32 = 0x100;
const FLAG_WRONG_SIGNATURE: u32 = 0x200;
const FLAG_SHIFTED_ROOT_OFFSET: u32 = 0x400;
const FLAG_EXT_BLOCK_POINTERS: u32 = 0x800;
const SUPPORTED_FLAGS: u32 =
    0xFF | FLAG_HOLES | FLAG_WRONG_SIGNATURE | FLAG_SHIFTED_ROOT_OFFSET | FLAG_EXT_BLOCK_POINTERS;

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

fn corrupt(what: impl std::fmt::Display) -> UnpackError {
    UnpackError::Corrupt(format!("cramfs: {what}"))
}

/// One 12-byte cramfs inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inode {
    /// Mode bits (type and permissions).
    pub mode: u32,
    /// Owner (16 bits).
    pub uid: u32,
    /// Size in bytes (24 bits); the device number for devices.
    pub size: u32,
    /// Group (8 bits).
    pub gid: u32,
    /// Name length in bytes (a multiple of 4).
    pub name_len: u32,
    /// Offset of the data or directory entries, in bytes.
    pub offset: u32,
}

impl Inode {
    fn parse(r: &mut Reader<'_>, endian: Endian) -> Result<Self, UnpackError> {
        let w0 = r.u32("cramfs inode")?;
        let w1 = r.u32("cramfs inode")?;
        let w2 = r.u32("cramfs inode")?;
        // C bitfields: allocated from the low bits on little-endian hosts, the high bits on
        // big-endian ones.
        Ok(match endian {
            Endian::Little => Inode {
                mode: w0 & 0xFFFF,
                uid: w0 >> 16,
                size: w1 & 0xFF_FFFF,
                gid: w1 >> 24,
                name_len: (w2 & 0x3F) * 4,
                offset: (w2 >> 6) * 4,
            },
            Endian::Big => Inode {
                mode: w0 >> 16,
                uid: w0 & 0xFFFF,
                size: w1 >> 8,
                gid: w1 & 0xFF,
                name_len: (w2 >> 26) * 4,
                offset: (w2 & 0x03FF_FFFF) * 4,
            },
        })
    }

    fn to_bytes(self, endian: Endian) -> [u8; 12] {
        let (w0, w1, w2) = match endian {
            Endian::Little => (
                (self.mode & 0xFFFF) | (self.uid << 16),
                (self.size & 0xFF_FFFF) | (self.gid << 24),
                ((self.name_len / 4) & 0x3F) | ((self.offset / 4) << 6),
            ),
            Endian::Big => (
                (self.mode << 16) | (self.uid & 0xFFFF),
                (self.size << 8) | (self.gid & 0xFF),
                ((self.name_len / 4) << 26) | ((self.offset / 4) & 0x03FF_FFFF),
            ),
        };
        let mut out = [0u8; 12];
        for (chunk, w) in out.chunks_exact_mut(4).zip([w0, w1, w2]) {
            chunk.copy_from_slice(&match endian {
                Endian::Little => w.to_le_bytes(),
                Endian::Big => w.to_be_bytes(),
            });
        }
        out
    }
}

/// The superblock.
#[derive(Clone, Debug)]
struct Super {
    endian: Endian,
    size: u32,
    flags: u32,
    crc: u32,
    edition: u32,
    blocks: u32,
    files: u32,
    name: String,
    root: Inode,
}

fn endian_of(data: &[u8]) -> Option<Endian> {
    match data.get(..4)? {
        [0x45, 0x3D, 0xCD, 0x28] => Some(Endian::Little),
        [0x28, 0xCD, 0x3D, 0x45] => Some(Endian::Big),
        _ => None,
    }
}

impl Super {
    fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        let endian = endian_of(data).ok_or_else(|| corrupt("bad magic"))?;
        let mut r = Reader::with_endian(data, endian);
        let what = "cramfs superblock";
        r.skip(4, what)?;
        let size = r.u32(what)?;
        let flags = r.u32(what)?;
        r.skip(4, what)?;
        let signature = r.bytes(16, what)?;
        if signature != SIGNATURE && flags & FLAG_WRONG_SIGNATURE == 0 {
            return Err(corrupt("bad signature"));
        }
        let crc = r.u32(what)?;
        let edition = r.u32(what)?;
        let blocks = r.u32(what)?;
        let files = r.u32(what)?;
        let name = c_string(r.bytes(16, what)?);
        let root = Inode::parse(&mut r, endian)?;
        Ok(Super {
            endian,
            size,
            flags,
            crc,
            edition,
            blocks,
            files,
            name,
            root,
        })
    }
}

/// CRC-32 of the image with its CRC field zeroed (what `mkcramfs` stores).
fn crc_of(image: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(image.get(..32).unwrap_or_default());
    h.update(&[0u8; 4]);
    h.update(image.get(36..).unwrap_or_default());
    h.finalize()
}

impl Format for Cramfs {
    fn name(&self) -> &'static str {
        "cramfs"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[
            Magic::at0(&[0x45, 0x3D, 0xCD, 0x28]),
            Magic::at0(&[0x28, 0xCD, 0x3D, 0x45]),
        ];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        Super::parse(data)
            .is_ok_and(|s| s.size as usize >= SUPERBLOCK_LEN && s.root.mode & S_IFMT == S_IFDIR)
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let sb = Super::parse(data)?;
        let endian_name = match sb.endian {
            Endian::Little => "little-endian",
            Endian::Big => "big-endian",
        };
        if (sb.size as usize) < SUPERBLOCK_LEN {
            return Err(corrupt(format!(
                "size {} is smaller than a superblock",
                sb.size
            )));
        }
        if data.len() < sb.size as usize {
            return Err(UnpackError::Truncated(format!(
                "cramfs ({endian_name}): superblock says {} bytes, {} present",
                sb.size,
                data.len()
            )));
        }
        if sb.flags & !SUPPORTED_FLAGS != 0 {
            return Err(UnpackError::Unsupported(format!(
                "cramfs flags {:#x}",
                sb.flags
            )));
        }
        if sb.flags & FLAG_EXT_BLOCK_POINTERS != 0 {
            return Err(UnpackError::Unsupported(
                "cramfs with extended block pointers".into(),
            ));
        }
        let image = data.slice(..sb.size as usize);
        let version2 = sb.flags & FLAG_FSID_VERSION_2 != 0;
        let mut out = Unpacked::new(u64::from(sb.size))
            .meta("endian", endian_name)
            .meta("name", sb.name.clone())
            .meta("edition", sb.edition)
            .meta("flags", format!("{:#x}", sb.flags))
            .meta("sorted_dirs", sb.flags & FLAG_SORTED_DIRS != 0)
            .meta("version", if version2 { 2 } else { 1 });
        if version2 {
            out = out
                .meta("blocks", sb.blocks)
                .meta("files", sb.files)
                .meta("crc_ok", crc_of(&image) == sb.crc);
        }
        if sb.root.mode & S_IFMT != S_IFDIR {
            return Err(corrupt("root is not a directory"));
        }
        let listed = list(&image, &sb, ctx)?;
        out.children = read_files(&image, sb.endian, listed, ctx)?;
        Ok(out)
    }
}

/// Lists every entry breadth first (a work queue), refusing to enter a directory twice.
fn list(
    image: &[u8],
    sb: &Super,
    ctx: &Ctx<'_>,
) -> Result<Vec<(Child, Option<Inode>)>, UnpackError> {
    let mut out = Vec::new();
    let mut seen: HashSet<u32> = HashSet::new();
    seen.insert(sb.root.offset);
    let mut queue = std::collections::VecDeque::new();
    queue.push_back((Vec::<u8>::new(), sb.root));
    while let Some((dir_path, dir)) = queue.pop_front() {
        ctx.check()?;
        let listing = slice(
            image,
            u64::from(dir.offset),
            u64::from(dir.size),
            "cramfs directory",
        )?;
        let mut r = Reader::with_endian(listing, sb.endian);
        while r.remaining() > 0 {
            ctx.check()?;
            let inode = Inode::parse(&mut r, sb.endian)?;
            let raw_name = r.bytes(u64::from(inode.name_len), "cramfs name")?;
            let end = raw_name
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(raw_name.len());
            let name = raw_name.get(..end).unwrap_or_default();
            if name.is_empty() {
                return Err(corrupt("entry without a name"));
            }
            ctx.entries(1)?;
            let mut path = dir_path.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name);
            let ty = inode.mode & S_IFMT;
            let kind = match ty {
                S_IFDIR => EntryKind::Dir,
                S_IFREG => EntryKind::File,
                S_IFLNK => EntryKind::Symlink { target: Vec::new() },
                _ => EntryKind::Device,
            };
            let mut child = Child::new(path.clone(), kind, Bytes::new())
                .with_mode(inode.mode)
                .with_meta("uid", inode.uid)
                .with_meta("gid", inode.gid);
            let mut data = None;
            match ty {
                S_IFDIR => {
                    // An empty directory has offset 0 and size 0.
                    if inode.size > 0 {
                        if seen.insert(inode.offset) {
                            queue.push_back((path, inode));
                        } else {
                            child.error =
                                Some(corrupt("directory listed twice (a cycle in the tree)"));
                        }
                    }
                }
                S_IFREG | S_IFLNK => data = Some(inode),
                _ => {
                    child = child.with_meta("device", inode.size);
                }
            }
            out.push((child, data));
        }
    }
    Ok(out)
}

/// Decompresses file and symlink contents in parallel.
fn read_files(
    image: &[u8],
    endian: Endian,
    listed: Vec<(Child, Option<Inode>)>,
    ctx: &Ctx<'_>,
) -> Result<Vec<Child>, UnpackError> {
    // Every file must fit the expansion allowed for this image.
    let limits = ctx.budget().limits();
    let claimed: u64 = listed
        .iter()
        .filter_map(|(_, d)| d.map(|i| u64::from(i.size)))
        .sum();
    let allowed = (image.len() as u64)
        .saturating_mul(limits.max_ratio)
        .max(limits.ratio_floor_bytes);
    if claimed > allowed {
        return Err(UnpackError::Limit(LimitError::Ratio {
            max: limits.max_ratio,
            input: image.len() as u64,
        }));
    }
    let contents: Vec<Option<Result<Vec<u8>, UnpackError>>> = listed
        .par_iter()
        .map(|(_, d)| d.map(|i| read_file(image, endian, &i, ctx)))
        .collect();
    let mut children = Vec::with_capacity(listed.len());
    for ((mut child, _), content) in listed.into_iter().zip(contents) {
        match content {
            Some(Ok(bytes)) => {
                if let EntryKind::Symlink { target } = &mut child.kind {
                    child.meta.insert(
                        "target".into(),
                        String::from_utf8_lossy(&bytes).into_owned().into(),
                    );
                    *target = bytes;
                } else {
                    child.data = Bytes::from(bytes);
                }
            }
            Some(Err(e)) if super::squashfs::is_global(&e) => return Err(e),
            Some(Err(e)) => child.error = Some(e),
            None => {}
        }
        children.push(child);
    }
    Ok(children)
}

/// One file's contents: its block pointer table, then each zlib page (or hole).
fn read_file(
    image: &[u8],
    endian: Endian,
    inode: &Inode,
    ctx: &Ctx<'_>,
) -> Result<Vec<u8>, UnpackError> {
    let size = inode.size as usize;
    if size == 0 {
        return Ok(Vec::new());
    }
    let blocks = size.div_ceil(PAGE);
    let table = slice(
        image,
        u64::from(inode.offset),
        blocks as u64 * 4,
        "cramfs block pointers",
    )?;
    let mut r = Reader::with_endian(table, endian);
    let mut start = u64::from(inode.offset) + blocks as u64 * 4;
    let mut sink = ctx.sink(image.len() as u64);
    sink.reserve_claimed(inode.size.into());
    for i in 0..blocks {
        ctx.check()?;
        let end = u64::from(r.u32("cramfs block pointer")?);
        let want = (size - i * PAGE).min(PAGE);
        let page = if end == start {
            // A hole: the page is zeros and nothing is stored.
            vec![0u8; want]
        } else {
            if end < start {
                return Err(corrupt(format!("block pointer {end:#x} goes backwards")));
            }
            let stored = slice(image, start, end - start, "cramfs block")?;
            let page = inflate_page(stored)?;
            start = end;
            page
        };
        if page.len() != want {
            return Err(corrupt(format!(
                "page {i} holds {} bytes, {want} expected",
                page.len()
            )));
        }
        sink.write_all(&page)
            .map_err(|e| UnpackError::from_io(&e, "cramfs file"))?;
    }
    Ok(sink.into_inner())
}

/// Inflates one zlib page of at most 4 KiB.
fn inflate_page(stored: &[u8]) -> Result<Vec<u8>, UnpackError> {
    let mut out = Vec::with_capacity(PAGE);
    let mut z = flate2::Decompress::new(true);
    match z.decompress_vec(stored, &mut out, flate2::FlushDecompress::Finish) {
        Ok(flate2::Status::StreamEnd) => Ok(out),
        Ok(_) if out.len() >= PAGE => Err(corrupt("page expands past 4 KiB")),
        Ok(_) => Err(corrupt("page ends early")),
        Err(e) => Err(corrupt(format!("zlib: {e}"))),
    }
}

/// An entry for [`build`].
#[derive(Clone, Debug)]
pub enum Entry {
    /// A directory at this path.
    Dir(String, u32),
    /// A regular file: path, mode bits (permissions), contents.
    File(String, u32, Vec<u8>),
    /// A symbolic link: path, target.
    Symlink(String, String),
    /// A character device: path, device number.
    CharDevice(String, u32),
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Dir(p, _)
            | Entry::File(p, _, _)
            | Entry::Symlink(p, _)
            | Entry::CharDevice(p, _) => p,
        }
    }
}

/// Builds a cramfs image (version 2, sorted directories, CRC set) of `entries`, whose parent
/// directories must be listed before them. Pages of zeros are stored as holes (zero-length
/// blocks, which readers accept without the `HOLES` flag).
/// The project's own writer, used by tests and demos.
pub fn build(entries: &[Entry], endian: Endian) -> Vec<u8> {
    // Children of each directory, by path ("" is the root), sorted by name.
    let mut dirs: Vec<(String, Vec<&Entry>)> = vec![(String::new(), Vec::new())];
    for e in entries {
        if let Entry::Dir(p, _) = e {
            dirs.push((p.clone(), Vec::new()));
        }
    }
    for e in entries {
        let (parent, _) = e.path().rsplit_once('/').unwrap_or(("", e.path()));
        if let Some((_, kids)) = dirs.iter_mut().find(|(p, _)| p == parent) {
            kids.push(e);
        }
    }
    for (_, kids) in &mut dirs {
        kids.sort_by(|a, b| a.path().cmp(b.path()));
    }
    let name_len = |e: &Entry| {
        let n = e.path().rsplit('/').next().unwrap_or_default().len();
        n.div_ceil(4) * 4
    };
    let listing_len = |kids: &Vec<&Entry>| kids.iter().map(|e| 12 + name_len(e)).sum::<usize>();

    // Layout: superblock, then every directory listing (breadth first), then file data.
    let mut dir_offset = std::collections::HashMap::new();
    let mut pos = SUPERBLOCK_LEN;
    for (p, kids) in &dirs {
        dir_offset.insert(p.clone(), if kids.is_empty() { 0 } else { pos });
        pos += listing_len(kids);
    }
    let mut data_offset = std::collections::HashMap::new();
    let mut data = Vec::new();
    let mut blocks = 0u32;
    for e in entries {
        let bytes: Vec<u8> = match e {
            Entry::File(_, _, b) => b.clone(),
            Entry::Symlink(_, t) => t.as_bytes().to_vec(),
            _ => continue,
        };
        if bytes.is_empty() {
            data_offset.insert(e.path().to_owned(), 0);
            continue;
        }
        let start = pos + data.len();
        data_offset.insert(e.path().to_owned(), start);
        let pages: Vec<&[u8]> = bytes.chunks(PAGE).collect();
        let mut body = Vec::new();
        let mut ptrs = Vec::new();
        let table_end = start + pages.len() * 4;
        for page in &pages {
            if page.iter().all(|&b| b == 0) {
                // hole
            } else {
                let mut z =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
                let _ = z.write_all(page);
                body.extend_from_slice(&z.finish().unwrap_or_default());
            }
            ptrs.push((table_end + body.len()) as u32);
            blocks += 1;
        }
        for p in ptrs {
            data.extend_from_slice(&match endian {
                Endian::Little => p.to_le_bytes(),
                Endian::Big => p.to_be_bytes(),
            });
        }
        data.extend_from_slice(&body);
        while data.len() % 4 != 0 {
            data.push(0);
        }
    }
    let inode_of = |e: &Entry| -> Inode {
        let (mode, size, offset) = match e {
            Entry::Dir(p, m) => {
                let kids = dirs.iter().find(|(d, _)| d == p).map(|(_, k)| k);
                let size = kids.map(listing_len).unwrap_or(0);
                (
                    S_IFDIR | m,
                    size as u32,
                    dir_offset.get(p).copied().unwrap_or(0) as u32,
                )
            }
            Entry::File(p, m, b) => (
                S_IFREG | m,
                b.len() as u32,
                data_offset.get(p).copied().unwrap_or(0) as u32,
            ),
            Entry::Symlink(p, t) => (
                S_IFLNK | 0o777,
                t.len() as u32,
                data_offset.get(p).copied().unwrap_or(0) as u32,
            ),
            Entry::CharDevice(_, dev) => (0o020000 | 0o644, *dev, 0),
        };
        Inode {
            mode,
            uid: 0,
            size,
            gid: 0,
            name_len: name_len(e) as u32,
            offset,
        }
    };

    let mut image = vec![0u8; SUPERBLOCK_LEN];
    for (_, kids) in &dirs {
        for e in kids {
            image.extend_from_slice(&inode_of(e).to_bytes(endian));
            let name = e.path().rsplit('/').next().unwrap_or_default();
            let mut n = name.as_bytes().to_vec();
            n.resize(name_len(e), 0);
            image.extend_from_slice(&n);
        }
    }
    image.extend_from_slice(&data);
    // Pad to 4 KiB as mkcramfs does.
    image.resize(image.len().div_ceil(PAGE) * PAGE, 0);

    let word = |v: u32| match endian {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    };
    let root_kids = dirs.first().map(|(_, k)| k.clone()).unwrap_or_default();
    let root = Inode {
        mode: S_IFDIR | 0o755,
        uid: 0,
        size: listing_len(&root_kids) as u32,
        gid: 0,
        name_len: 0,
        offset: if root_kids.is_empty() {
            0
        } else {
            SUPERBLOCK_LEN as u32
        },
    };
    let size = image.len() as u32;
    put(&mut image, 0, &word(MAGIC));
    put(&mut image, 4, &word(size));
    put(&mut image, 8, &word(FLAG_FSID_VERSION_2 | FLAG_SORTED_DIRS));
    put(&mut image, 16, SIGNATURE);
    put(&mut image, 36, &word(0));
    put(&mut image, 40, &word(blocks));
    put(&mut image, 44, &word(entries.len() as u32 + 1));
    put(&mut image, 48, b"fwsim test\0\0\0\0\0\0");
    put(&mut image, 64, &root.to_bytes(endian));
    let crc = crc_of(&image);
    put(&mut image, 32, &word(crc));
    image
}

/// Writes `bytes` at `offset` of `image` (which is long enough by construction).
fn put(image: &mut [u8], offset: usize, bytes: &[u8]) {
    if let Some(dst) = image.get_mut(offset..offset + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{Budget, Limits};

    fn sample() -> Vec<Entry> {
        let text: Vec<u8> = (0..3000u32)
            .flat_map(|i| format!("{i},").into_bytes())
            .collect();
        let mut sparse = vec![0u8; 3 * PAGE];
        sparse[2 * PAGE + 7] = 9;
        vec![
            Entry::Dir("etc".into(), 0o755),
            Entry::File("etc/passwd".into(), 0o644, b"root:x:0:0\n".to_vec()),
            Entry::File("big".into(), 0o755, text),
            Entry::File("sparse".into(), 0o600, sparse),
            Entry::File("empty".into(), 0o644, Vec::new()),
            Entry::Symlink("sh".into(), "/bin/busybox".into()),
            Entry::CharDevice("console".into(), 0x0501),
            Entry::Dir("var".into(), 0o700),
        ]
    }

    #[test]
    fn both_endiannesses_round_trip() {
        for endian in [Endian::Little, Endian::Big] {
            let img = Bytes::from(build(&sample(), endian));
            assert!(Cramfs.detect(&img));
            let budget = Budget::new(Limits::default());
            let u = Cramfs.unpack(&img, &Ctx::new(&budget)).unwrap();
            assert_eq!(u.meta["crc_ok"], true);
            assert_eq!(u.consumed, img.len() as u64);
            let get = |n: &str| u.children.iter().find(|c| c.name == n.as_bytes()).unwrap();
            assert_eq!(&get("etc/passwd").data[..], b"root:x:0:0\n");
            assert_eq!(get("etc/passwd").mode, Some(0o100644));
            assert_eq!(get("big").data.len(), sample_len());
            let sparse = &get("sparse").data;
            assert_eq!(sparse.len(), 3 * PAGE);
            assert_eq!(sparse[2 * PAGE + 7], 9);
            assert!(get("empty").data.is_empty());
            assert_eq!(
                get("sh").kind,
                EntryKind::Symlink {
                    target: b"/bin/busybox".to_vec()
                }
            );
            assert_eq!(get("console").kind, EntryKind::Device);
            assert_eq!(get("var").kind, EntryKind::Dir);
        }
    }

    fn sample_len() -> usize {
        (0..3000u32).map(|i| format!("{i},").len()).sum()
    }

    #[test]
    fn truncated_and_flipped_never_panic() {
        let img = build(&sample(), Endian::Little);
        let budget = Budget::new(Limits::default());
        let ctx = Ctx::new(&budget);
        let e = Cramfs
            .unpack(&Bytes::copy_from_slice(&img[..1024]), &ctx)
            .unwrap_err();
        assert!(matches!(e, UnpackError::Truncated(_)), "{e}");
        for i in (0..img.len().min(2048)).step_by(3) {
            let mut bad = img.clone();
            bad[i] ^= 0x5A;
            let _ = Cramfs.unpack(&Bytes::from(bad), &ctx);
        }
    }
}
