//! UBIFS file trees: superblock, master node, the index B-tree walked from its root (bounded,
//! cycles refused), inodes, directory entries and 4 KiB data nodes (none/LZO/zlib/zstd), with
//! node CRCs checked. Layouts from Linux `fs/ubifs/ubifs-media.h`; extraction as ubi_reader does.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use rayon::prelude::*;

use super::ubi::crc32;
use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::bytes::slice;
use crate::unpack::lzo;
use crate::unpack::tree::{Child, EntryKind, Unpacked};

/// UBIFS.
pub struct Ubifs;

/// The magic that starts every node (`0x06101831`, little-endian).
pub const NODE_MAGIC: [u8; 4] = [0x31, 0x18, 0x10, 0x06];
/// Size of the common node header.
pub const COMMON_HEADER_LEN: usize = 24;
/// Size of a data block: every data node holds at most this much uncompressed data.
pub const BLOCK_SIZE: usize = 4096;
/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;

/// Node types (`enum` in `ubifs-media.h`).
pub mod node {
    /// Inode node.
    pub const INO: u8 = 0;
    /// Data node.
    pub const DATA: u8 = 1;
    /// Directory entry node.
    pub const DENT: u8 = 2;
    /// Extended attribute entry node.
    pub const XENT: u8 = 3;
    /// Truncation node (journal only).
    pub const TRUN: u8 = 4;
    /// Padding node.
    pub const PAD: u8 = 5;
    /// Superblock node.
    pub const SB: u8 = 6;
    /// Master node.
    pub const MST: u8 = 7;
    /// Index node.
    pub const IDX: u8 = 9;
}

/// Compression types of data nodes.
pub mod compr {
    /// Stored.
    pub const NONE: u16 = 0;
    /// LZO1X.
    pub const LZO: u16 = 1;
    /// Raw deflate.
    pub const ZLIB: u16 = 2;
    /// Zstandard.
    pub const ZSTD: u16 = 3;
}

/// Key types (the top 3 bits of a simple key's second word).
const KEY_INO: u32 = 0;
const KEY_DATA: u32 = 1;
const KEY_DENT: u32 = 2;
const KEY_BLOCK_MASK: u32 = 0x1FFF_FFFF;

const SB_NODE_LEN: usize = 4096;
const MST_NODE_LEN: usize = 512;
const INO_NODE_LEN: usize = 160;
const DENT_NODE_LEN: usize = 56;
const DATA_NODE_LEN: usize = 48;
const IDX_NODE_LEN: usize = 28;
const BRANCH_LEN: usize = 20;
/// Deepest index the kernel allows (`UBIFS_MAX_LEVELS`).
const MAX_LEVELS: u16 = 512;
/// Smallest LEB the kernel accepts (`UBIFS_MIN_LEB_SZ`).
const MIN_LEB: u32 = 15 * 1024;
/// Largest LEB considered.
const MAX_LEB: u32 = 16 << 20;
/// Master-node LEB (the second copy follows it).
const MST_LNUM: u32 = 1;
const FLG_ENCRYPTION: u32 = 0x10;

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
/// Directory-entry types (`UBIFS_ITYPE_*`), used when an inode's mode has no type.
const ITYPE_MODES: [u32; 7] = [
    S_IFREG, S_IFDIR, S_IFLNK, S_IFBLK, S_IFCHR, 0o010000, 0o140000,
];

fn corrupt(what: impl std::fmt::Display) -> UnpackError {
    UnpackError::Corrupt(format!("ubifs: {what}"))
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn le16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// A node whose header and CRC checked out: its type, sequence number and bytes (header included).
struct Node<'a> {
    ty: u8,
    sqnum: u64,
    bytes: &'a [u8],
}

/// Reads and CRC-checks the node at `data[0..]`, which must lie within `room` bytes.
fn node_at(data: &[u8], room: usize) -> Result<Node<'_>, UnpackError> {
    let hdr = slice(data, 0, COMMON_HEADER_LEN as u64, "ubifs node header")?;
    if hdr.get(..4) != Some(&NODE_MAGIC[..]) {
        return Err(corrupt("bad node magic"));
    }
    let len = le32(hdr, 16) as usize;
    if len < COMMON_HEADER_LEN || len > room {
        return Err(corrupt(format!("node length {len} out of range")));
    }
    let bytes = slice(data, 0, len as u64, "ubifs node")?;
    if le32(bytes, 4) != crc32(bytes.get(8..).unwrap_or_default()) {
        return Err(corrupt("node CRC mismatch"));
    }
    Ok(Node {
        ty: hdr.get(20).copied().unwrap_or(0xFF),
        sqnum: le64(hdr, 8),
        bytes,
    })
}

/// The superblock fields the reader uses.
#[derive(Clone, Debug)]
struct Super {
    leb_size: u32,
    leb_cnt: u32,
    min_io: u32,
    max_leb_cnt: u32,
    flags: u32,
    key_hash: u8,
    key_fmt: u8,
    fmt_version: u32,
    default_compr: u16,
    fanout: u32,
    uuid: [u8; 16],
}

impl Super {
    fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        let n = node_at(data, SB_NODE_LEN)?;
        if n.ty != node::SB || n.bytes.len() < 124 {
            return Err(corrupt("first node is not a superblock"));
        }
        let b = n.bytes;
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(b.get(108..124).unwrap_or(&[0u8; 16]));
        Ok(Self {
            key_hash: b.get(26).copied().unwrap_or(0),
            key_fmt: b.get(27).copied().unwrap_or(0),
            flags: le32(b, 28),
            min_io: le32(b, 32),
            leb_size: le32(b, 36),
            leb_cnt: le32(b, 40),
            max_leb_cnt: le32(b, 44),
            fanout: le32(b, 72),
            fmt_version: le32(b, 80),
            default_compr: le16(b, 84),
            uuid,
        })
    }
}

/// The master node fields the reader uses.
#[derive(Clone, Copy, Debug)]
struct Master {
    sqnum: u64,
    highest_inum: u64,
    cmt_no: u64,
    root_lnum: u32,
    root_offs: u32,
    root_len: u32,
}

/// The valid master node with the highest sequence number in either master LEB, and how many
/// valid master nodes there were.
fn master(img: &[u8], leb: usize, ctx: &Ctx<'_>) -> Result<(Master, u64), UnpackError> {
    let mut best: Option<Master> = None;
    let mut valid = 0u64;
    for lnum in [MST_LNUM, MST_LNUM + 1] {
        let start = lnum as usize * leb;
        let Some(area) = img.get(start..start.saturating_add(leb).min(img.len())) else {
            continue;
        };
        // Master nodes sit at 8-byte aligned offsets (every `ALIGN(512, min_io)` bytes).
        let mut off = 0usize;
        while off + MST_NODE_LEN <= area.len() {
            if off.is_multiple_of(4096) {
                ctx.check()?;
            }
            let here = area.get(off..).unwrap_or_default();
            if here.starts_with(&NODE_MAGIC)
                && let Ok(n) = node_at(here, area.len() - off)
            {
                if n.ty == node::MST && n.bytes.len() >= 64 {
                    valid += 1;
                    let m = Master {
                        sqnum: n.sqnum,
                        highest_inum: le64(n.bytes, 24),
                        cmt_no: le64(n.bytes, 32),
                        root_lnum: le32(n.bytes, 48),
                        root_offs: le32(n.bytes, 52),
                        root_len: le32(n.bytes, 56),
                    };
                    if best.is_none_or(|b| m.sqnum > b.sqnum) {
                        best = Some(m);
                    }
                }
                off += n.bytes.len().next_multiple_of(8);
                continue;
            }
            off += 8;
        }
    }
    best.map(|m| (m, valid))
        .ok_or_else(|| corrupt("no valid master node"))
}

/// An inode as its node states it.
#[derive(Clone, Debug)]
struct Inode {
    size: u64,
    nlink: u32,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: u64,
    /// Inline data: a symlink's target or a device number.
    data: Vec<u8>,
}

/// A directory entry.
#[derive(Clone, Debug)]
struct Dent {
    parent: u64,
    inum: u64,
    ty: u8,
    name: Vec<u8>,
}

/// Where one data block sits.
#[derive(Clone, Copy, Debug)]
struct Block {
    block: u32,
    /// Uncompressed size.
    size: u32,
    compr: u16,
    /// Offset and length of the payload in the image.
    start: usize,
    len: usize,
}

/// What the index leads to.
#[derive(Default)]
struct Leaves {
    inodes: HashMap<u64, Inode>,
    dents: Vec<Dent>,
    blocks: HashMap<u64, Vec<Block>>,
    /// Leaves that could not be read, by the key their branch states: inode nodes, and data
    /// blocks by inode.
    bad_inodes: HashSet<u64>,
    bad_blocks: HashMap<u64, Vec<u32>>,
    index_nodes: u64,
    bad_nodes: u64,
    xattr_entries: u64,
}

/// What a branch of the index points at.
#[derive(Clone, Copy)]
enum Target {
    /// An index node, at the stated level (unknown for the root).
    Index(Option<u16>),
    /// A leaf node, with the key its branch states (inode number, type and block or hash).
    Leaf(u32, u32),
}

/// Walks the index B-tree from the root. A node reached twice (a cycle or a shared subtree), a
/// level that does not step down by one, or an unreadable index node stops the walk with an
/// error; a damaged leaf is counted and skipped.
fn walk(
    img: &[u8],
    leb: usize,
    leb_cnt: u32,
    m: &Master,
    ctx: &Ctx<'_>,
) -> (Leaves, Option<UnpackError>) {
    let mut leaves = Leaves::default();
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    let mut stack = vec![(m.root_lnum, m.root_offs, m.root_len, Target::Index(None))];
    while let Some((lnum, offs, len, target)) = stack.pop() {
        if let Err(e) = ctx.check() {
            return (leaves, Some(e));
        }
        if !seen.insert((lnum, offs)) {
            if matches!(target, Target::Index(_)) {
                return (
                    leaves,
                    Some(corrupt(format!(
                        "index node at LEB {lnum}:{offs} is reached twice (a cyclic index)"
                    ))),
                );
            }
            leaves.bad_nodes += 1;
            continue;
        }
        let at = (lnum as usize)
            .checked_mul(leb)
            .and_then(|s| s.checked_add(offs as usize));
        let room = leb.saturating_sub(offs as usize);
        let read = match at {
            Some(at) if lnum < leb_cnt && at < img.len() => {
                node_at(img.get(at..).unwrap_or_default(), room).map(|n| (at, n))
            }
            _ => Err(corrupt(format!(
                "branch to LEB {lnum}:{offs} is outside the image"
            ))),
        };
        let read = read.and_then(|(at, n)| {
            if n.bytes.len() == len as usize {
                Ok((at, n))
            } else {
                Err(corrupt(format!(
                    "node at LEB {lnum}:{offs} is {} bytes, its branch says {len}",
                    n.bytes.len()
                )))
            }
        });
        let (at, n) = match (read, target) {
            (Ok(ok), _) => ok,
            (Err(e), Target::Index(_)) => return (leaves, Some(e)),
            (Err(_), Target::Leaf(inum, word)) => {
                leaves.bad_nodes += 1;
                match word >> 29 {
                    KEY_INO => {
                        leaves.bad_inodes.insert(u64::from(inum));
                    }
                    KEY_DATA => leaves
                        .bad_blocks
                        .entry(u64::from(inum))
                        .or_default()
                        .push(word & KEY_BLOCK_MASK),
                    _ => {}
                }
                continue;
            }
        };
        match target {
            Target::Index(expected) => {
                if n.ty != node::IDX {
                    return (
                        leaves,
                        Some(corrupt(format!("LEB {lnum}:{offs} is not an index node"))),
                    );
                }
                let count = usize::from(le16(n.bytes, 24));
                let level = le16(n.bytes, 26);
                if level >= MAX_LEVELS || expected.is_some_and(|e| e != level) {
                    return (
                        leaves,
                        Some(corrupt(format!(
                            "index node at LEB {lnum}:{offs} has level {level}, expected {}",
                            expected.map_or("a level below 512".to_owned(), |e| e.to_string())
                        ))),
                    );
                }
                let body = n.bytes.len() - IDX_NODE_LEN.min(n.bytes.len());
                let branch_len = body.checked_div(count).unwrap_or(BRANCH_LEN);
                if count > 0 && branch_len < BRANCH_LEN {
                    return (
                        leaves,
                        Some(corrupt(format!(
                            "index node at LEB {lnum}:{offs} is too short for {count} branches"
                        ))),
                    );
                }
                leaves.index_nodes += 1;
                // Pushed in reverse so the walk visits branches in key order.
                for i in (0..count).rev() {
                    let b = IDX_NODE_LEN + i * branch_len;
                    let child = if level == 0 {
                        Target::Leaf(le32(n.bytes, b + 12), le32(n.bytes, b + 16))
                    } else {
                        Target::Index(Some(level - 1))
                    };
                    stack.push((
                        le32(n.bytes, b),
                        le32(n.bytes, b + 4),
                        le32(n.bytes, b + 8),
                        child,
                    ));
                }
            }
            Target::Leaf(..) => leaf(&n, at, &mut leaves),
        }
    }
    (leaves, None)
}

/// Records one leaf node found through the index (`at`: its offset in the image).
fn leaf(n: &Node<'_>, at: usize, leaves: &mut Leaves) {
    let b = n.bytes;
    let inum = u64::from(le32(b, 24));
    let key_type = le32(b, 28) >> 29;
    match n.ty {
        node::INO if b.len() >= INO_NODE_LEN && key_type == KEY_INO => {
            let data_len = le32(b, 112) as usize;
            let Some(data) = b.get(INO_NODE_LEN..INO_NODE_LEN.saturating_add(data_len)) else {
                leaves.bad_nodes += 1;
                return;
            };
            leaves.inodes.insert(
                inum,
                Inode {
                    size: le64(b, 48),
                    mtime: le64(b, 72),
                    nlink: le32(b, 92),
                    uid: le32(b, 96),
                    gid: le32(b, 100),
                    mode: le32(b, 104),
                    data: data.to_vec(),
                },
            );
        }
        node::DENT if b.len() >= DENT_NODE_LEN && key_type == KEY_DENT => {
            let nlen = usize::from(le16(b, 50));
            let Some(name) = b.get(DENT_NODE_LEN..DENT_NODE_LEN.saturating_add(nlen)) else {
                leaves.bad_nodes += 1;
                return;
            };
            leaves.dents.push(Dent {
                parent: inum,
                inum: le64(b, 40),
                ty: b.get(49).copied().unwrap_or(0),
                name: name.to_vec(),
            });
        }
        node::DATA if b.len() >= DATA_NODE_LEN && key_type == KEY_DATA => {
            leaves.blocks.entry(inum).or_default().push(Block {
                block: le32(b, 28) & KEY_BLOCK_MASK,
                size: le32(b, 40),
                compr: le16(b, 44),
                start: at + DATA_NODE_LEN,
                len: b.len() - DATA_NODE_LEN,
            });
        }
        node::XENT => leaves.xattr_entries += 1,
        _ => leaves.bad_nodes += 1,
    }
}

impl Format for Ubifs {
    fn name(&self) -> &'static str {
        "ubifs"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(&NODE_MAGIC)];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        // Every node starts with the magic: only a superblock starts an image.
        data.get(20) == Some(&node::SB)
            && Super::parse(data).is_ok_and(|s| {
                (MIN_LEB..=MAX_LEB).contains(&s.leb_size) && s.leb_cnt > MST_LNUM + 1
            })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let sb = Super::parse(data)?;
        if !(MIN_LEB..=MAX_LEB).contains(&sb.leb_size) || sb.leb_cnt <= MST_LNUM + 1 {
            return Err(corrupt(format!(
                "LEB size {} or count {} out of range",
                sb.leb_size, sb.leb_cnt
            )));
        }
        if sb.key_fmt != 0 {
            return Err(UnpackError::Unsupported(format!(
                "ubifs key format {}",
                sb.key_fmt
            )));
        }
        if sb.flags & FLG_ENCRYPTION != 0 {
            return Err(UnpackError::Unsupported("encrypted ubifs".into()));
        }
        let leb = sb.leb_size as usize;
        let extent = (sb.leb_cnt as usize).saturating_mul(leb).min(data.len());
        let img = data.slice(..extent);
        let (m, masters) = master(&img, leb, ctx)?;
        let (leaves, walk_error) = walk(&img, leb, sb.leb_cnt, &m, ctx);
        let mut out = Unpacked::new(extent as u64)
            .meta("leb_size", sb.leb_size)
            .meta("leb_cnt", sb.leb_cnt)
            .meta("max_leb_cnt", sb.max_leb_cnt)
            .meta("min_io_size", sb.min_io)
            .meta("fmt_version", sb.fmt_version)
            .meta("fanout", sb.fanout)
            .meta("key_hash", sb.key_hash)
            .meta("default_compression", compression_name(sb.default_compr))
            .meta("uuid", hex::encode(sb.uuid))
            .meta("master_sqnum", m.sqnum)
            .meta("master_nodes_valid", masters)
            .meta("commit_number", m.cmt_no)
            .meta("highest_inum", m.highest_inum)
            .meta("index_nodes", leaves.index_nodes)
            .meta("inodes", leaves.inodes.len())
            .meta("bad_nodes", leaves.bad_nodes)
            .meta("xattr_entries", leaves.xattr_entries);
        out.error = walk_error;
        let (children, bad_names) = assemble(&img, leaves, ctx)?;
        out.children = children;
        Ok(out.meta("bad_names", bad_names))
    }
}

fn compression_name(c: u16) -> String {
    match c {
        compr::NONE => "none".into(),
        compr::LZO => "lzo".into(),
        compr::ZLIB => "zlib".into(),
        compr::ZSTD => "zstd".into(),
        other => format!("unknown ({other})"),
    }
}

/// `major,minor` of a device number as UBIFS stores it: 4 bytes (the kernel's `new_encode_dev`)
/// or 8 (`mkfs.ubifs`, glibc's `makedev`; the same bits for small numbers).
fn device_string(data: &[u8]) -> String {
    let dev = if data.len() >= 8 {
        le64(data, 0)
    } else {
        u64::from(le32(data, 0))
    };
    let major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & !0xFFF);
    let minor = (dev & 0xFF) | ((dev >> 12) & 0xFFFF_FF00);
    format!("{major},{minor}")
}

/// Builds the entries from the root directory down (breadth first, names sorted), then reads
/// the regular files in parallel. Returns the entries and how many names were refused.
fn assemble(img: &Bytes, leaves: Leaves, ctx: &Ctx<'_>) -> Result<(Vec<Child>, u64), UnpackError> {
    let Leaves {
        inodes,
        dents,
        mut blocks,
        bad_inodes,
        mut bad_blocks,
        ..
    } = leaves;
    let mut by_parent: HashMap<u64, Vec<Dent>> = HashMap::new();
    for d in dents {
        by_parent.entry(d.parent).or_default().push(d);
    }
    let mut children: Vec<Child> = Vec::new();
    let mut jobs: Vec<(usize, u64)> = Vec::new();
    let mut first_path: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut dirs_seen: HashSet<u64> = HashSet::from([ROOT_INO]);
    let mut bad_names = 0u64;
    let mut queue: VecDeque<(u64, Vec<u8>)> = VecDeque::from([(ROOT_INO, Vec::new())]);
    while let Some((dir, prefix)) = queue.pop_front() {
        ctx.check()?;
        let Some(mut entries) = by_parent.remove(&dir) else {
            continue;
        };
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        ctx.entries(entries.len() as u64)?;
        for d in entries {
            ctx.check()?;
            if d.name.is_empty() || d.name.contains(&b'/') || d.name == b"." || d.name == b".." {
                bad_names += 1;
                continue;
            }
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&d.name);
            let Some(ino) = inodes.get(&d.inum) else {
                children.push(
                    Child::file(path, Bytes::new())
                        .with_meta("inum", d.inum)
                        .with_error(corrupt(if bad_inodes.contains(&d.inum) {
                            format!("inode {} is unreadable (bad node)", d.inum)
                        } else {
                            format!("inode {} is not in the index", d.inum)
                        })),
                );
                continue;
            };
            let ty = match ino.mode & S_IFMT {
                0 => ITYPE_MODES
                    .get(usize::from(d.ty))
                    .copied()
                    .unwrap_or(S_IFREG),
                t => t,
            };
            let kind = match ty {
                S_IFDIR => EntryKind::Dir,
                S_IFREG => match first_path.get(&d.inum) {
                    Some(target) => EntryKind::Hardlink {
                        target: target.clone(),
                    },
                    None => EntryKind::File,
                },
                S_IFLNK => EntryKind::Symlink {
                    target: ino.data.clone(),
                },
                _ => EntryKind::Device,
            };
            let mut child = Child::new(path.clone(), kind.clone(), Bytes::new())
                .with_mode(ino.mode)
                .with_meta("inum", d.inum)
                .with_meta("uid", ino.uid)
                .with_meta("gid", ino.gid)
                .with_meta("mtime", ino.mtime)
                .with_meta("nlink", ino.nlink);
            match kind {
                EntryKind::Dir => {
                    if dirs_seen.insert(d.inum) {
                        queue.push_back((d.inum, path));
                    } else {
                        child.error = Some(corrupt(format!(
                            "directory inode {} is entered twice (a cycle in the tree)",
                            d.inum
                        )));
                    }
                }
                EntryKind::File => {
                    first_path.insert(d.inum, path);
                    jobs.push((children.len(), d.inum));
                }
                EntryKind::Symlink { target } => {
                    child =
                        child.with_meta("target", String::from_utf8_lossy(&target).into_owned());
                }
                EntryKind::Hardlink { target } => {
                    child =
                        child.with_meta("target", String::from_utf8_lossy(&target).into_owned());
                }
                EntryKind::Device => {
                    if matches!(ty, S_IFCHR | S_IFBLK) {
                        child = child.with_meta("device", device_string(&ino.data));
                    }
                }
            }
            children.push(child);
        }
    }
    let work: Vec<(usize, &Inode, Vec<Block>, Vec<u32>)> = jobs
        .into_iter()
        .filter_map(|(i, inum)| {
            let ino = inodes.get(&inum)?;
            Some((
                i,
                ino,
                blocks.remove(&inum).unwrap_or_default(),
                bad_blocks.remove(&inum).unwrap_or_default(),
            ))
        })
        .collect();
    let contents: Vec<(usize, FileResult)> = work
        .into_par_iter()
        .map(|(i, ino, blocks, bad)| {
            let mut read = read_file(img, ino, blocks, ctx);
            if let (Ok((_, error @ None)), Some(b)) = (&mut read, bad.iter().min()) {
                *error = Some(corrupt(format!("block {b} is unreadable (bad node)")));
            }
            (i, read)
        })
        .collect();
    for (i, content) in contents {
        let Some(child) = children.get_mut(i) else {
            continue;
        };
        match content {
            Ok((bytes, error)) => {
                child.data = Bytes::from(bytes);
                child.error = error;
            }
            Err(e) if super::squashfs::is_global(&e) => return Err(e),
            Err(e) => child.error = Some(e),
        }
    }
    Ok((children, bad_names))
}

/// A file's bytes and the first block that failed, or why the file could not be read at all.
type FileResult = Result<(Vec<u8>, Option<UnpackError>), UnpackError>;

/// Blocks of one file decoded by one task: a file larger than this (1 MiB) is cut into stretches
/// of this many blocks, decoded in parallel into their own part of the file's buffer, so one
/// large binary does not keep a single core busy while the other has nothing left to do.
const BLOCKS_PER_TASK: usize = 256;

/// One file: its blocks in order, holes and the tail up to the inode's size as zeros. The size is
/// checked against the per-file limit and accounted (total output, the blob's expansion ratio)
/// before its buffer is allocated; each block then decodes in place. A block that cannot be decoded
/// reads as zeros and the first such failure (in block order) is returned beside the data.
fn read_file(img: &[u8], ino: &Inode, mut blocks: Vec<Block>, ctx: &Ctx<'_>) -> FileResult {
    ctx.claimed_size(ino.size)?;
    let size = usize::try_from(ino.size).map_err(|_| corrupt("file size beyond memory"))?;
    ctx.output(ino.size)?;
    let mut file = vec![0u8; size];
    blocks.sort_unstable_by_key(|b| b.block);
    // A block number indexed twice is read once (the first in sorted order).
    blocks.dedup_by_key(|b| b.block);
    let stretch = BLOCKS_PER_TASK * BLOCK_SIZE;
    let error = if blocks.len() > BLOCKS_PER_TASK {
        let errors: Vec<Option<UnpackError>> = file
            .par_chunks_mut(stretch)
            .enumerate()
            .map(|(k, area)| {
                let lo = k.saturating_mul(BLOCKS_PER_TASK);
                let hi = lo.saturating_add(BLOCKS_PER_TASK);
                let from = blocks.partition_point(|b| (b.block as usize) < lo);
                let to = blocks.partition_point(|b| (b.block as usize) < hi);
                let mine = blocks.get(from..to).unwrap_or_default();
                read_blocks(img, mine, area, lo.saturating_mul(BLOCK_SIZE), ctx)
            })
            .collect::<Result<_, _>>()?;
        errors.into_iter().flatten().next()
    } else {
        read_blocks(img, &blocks, &mut file, 0, ctx)?
    };
    Ok((file, error))
}

/// Decodes `blocks` (sorted, distinct) into `area`, the part of the file that starts at byte
/// `base`; returns the first block that failed. Blocks past the end of `area` are ignored.
fn read_blocks(
    img: &[u8],
    blocks: &[Block],
    area: &mut [u8],
    base: usize,
    ctx: &Ctx<'_>,
) -> Result<Option<UnpackError>, UnpackError> {
    let mut decoder = Decoder::default();
    let mut tail = [0u8; BLOCK_SIZE];
    let mut error = None;
    for &b in blocks {
        ctx.check()?;
        let start = (b.block as usize)
            .saturating_mul(BLOCK_SIZE)
            .saturating_sub(base);
        let end = area.len().min(start.saturating_add(BLOCK_SIZE));
        let Some(dest) = area.get_mut(start..end) else {
            break;
        };
        let payload = img.get(b.start..b.start + b.len).unwrap_or_default();
        let decoded = if dest.len() == BLOCK_SIZE {
            decoder.decode(b, payload, dest)
        } else {
            // The last, partial block: decode aside, keep what the size covers.
            decoder.decode(b, payload, &mut tail).inspect(|&n| {
                let k = n.min(dest.len());
                dest.get_mut(..k)
                    .unwrap_or_default()
                    .copy_from_slice(tail.get(..k).unwrap_or_default());
            })
        };
        if let Err(e) = decoded {
            dest.fill(0);
            error.get_or_insert(e);
        }
    }
    Ok(error)
}

/// Decoders for one file's blocks. Every block is at most [`BLOCK_SIZE`] bytes by format and
/// decodes into a [`BLOCK_SIZE`] slice of the file, so no block can expand further than that.
#[derive(Default)]
struct Decoder {
    inflate: Option<flate2::Decompress>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

impl Decoder {
    fn decode(&mut self, b: Block, payload: &[u8], out: &mut [u8]) -> Result<usize, UnpackError> {
        let want = b.size as usize;
        if want > BLOCK_SIZE {
            return Err(corrupt(format!(
                "block {} claims {want} bytes (more than a block)",
                b.block
            )));
        }
        let n = match b.compr {
            compr::NONE => {
                let src = payload
                    .get(..want)
                    .ok_or_else(|| corrupt(format!("stored block {} is short", b.block)))?;
                out.get_mut(..want).unwrap_or_default().copy_from_slice(src);
                want
            }
            compr::LZO => {
                // Straight into the file's buffer; `out` is one block, so the stream cannot
                // expand past it.
                let n = lzo::decompress_to(payload, out)?;
                if n == want {
                    // Chunk copies may have written past the end of a short block: the rest of
                    // the block reads as zeros, as if only `n` bytes had been copied in.
                    out.get_mut(n..).unwrap_or_default().fill(0);
                }
                n
            }
            compr::ZLIB => {
                let z = self
                    .inflate
                    .get_or_insert_with(|| flate2::Decompress::new(false));
                z.reset(false);
                let status = z
                    .decompress(payload, out, flate2::FlushDecompress::Finish)
                    .map_err(|e| corrupt(format!("zlib block {}: {e}", b.block)))?;
                if status != flate2::Status::StreamEnd {
                    return Err(corrupt(format!(
                        "zlib block {} does not end within a block",
                        b.block
                    )));
                }
                usize::try_from(z.total_out()).unwrap_or(usize::MAX)
            }
            compr::ZSTD => {
                if self.zstd.is_none() {
                    self.zstd = Some(
                        zstd::bulk::Decompressor::new()
                            .map_err(|e| UnpackError::from_io(&e, "zstd"))?,
                    );
                }
                let z = self
                    .zstd
                    .as_mut()
                    .ok_or_else(|| corrupt("zstd decoder unavailable"))?;
                z.decompress_to_buffer(payload, out)
                    .map_err(|e| corrupt(format!("zstd block {}: {e}", b.block)))?
            }
            other => {
                return Err(UnpackError::Unsupported(format!(
                    "ubifs compression {other}"
                )));
            }
        };
        if n != want {
            return Err(corrupt(format!(
                "block {} decodes to {n} bytes, its node says {want}",
                b.block
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_file_decodes_in_parallel_stretches_exactly_as_in_one_pass() {
        use crate::unpack::{Budget, Limits};
        // 700 blocks (three stretches): LZO and stored blocks, a hole (block 300), a block
        // indexed twice, an undecodable block in the second and third stretch, a partial last
        // block and a block past the end of the file.
        let size = 699 * BLOCK_SIZE + 1000;
        let mut img = Vec::new();
        let mut blocks = Vec::new();
        let mut x = 0x9E37_79B9u32;
        for n in (0..701u32).filter(|&n| n != 300) {
            let len = if n == 699 { 1000 } else { BLOCK_SIZE };
            let data: Vec<u8> = (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    if i % 5 == 0 { x as u8 } else { n as u8 }
                })
                .collect();
            let (compr, payload) = match n {
                400 | 650 => (compr::LZO, vec![0x11, 0x00]),
                _ if n % 3 == 0 => (compr::NONE, data.clone()),
                _ => (compr::LZO, lzokay_native::compress(&data).unwrap()),
            };
            let block = Block {
                block: n,
                size: len as u32,
                compr,
                start: img.len(),
                len: payload.len(),
            };
            img.extend_from_slice(&payload);
            blocks.push(block);
            if n == 10 {
                blocks.push(block);
            }
        }
        blocks.reverse();
        let ino = Inode {
            size: size as u64,
            nlink: 1,
            uid: 0,
            gid: 0,
            mode: S_IFREG | 0o644,
            mtime: 0,
            data: Vec::new(),
        };
        let budget = Budget::new(Limits::default());
        let ctx = Ctx::new(&budget);
        let (parallel, error) = read_file(&img, &ino, blocks.clone(), &ctx).unwrap();
        let mut serial = vec![0u8; size];
        let mut sorted = blocks;
        sorted.sort_unstable_by_key(|b| b.block);
        sorted.dedup_by_key(|b| b.block);
        let serial_error = read_blocks(&img, &sorted, &mut serial, 0, &ctx).unwrap();
        assert_eq!(parallel.len(), size);
        assert!(parallel == serial, "parallel and serial decoding differ");
        assert_eq!(error, serial_error);
        assert!(error.is_some());
        // The hole and the failed blocks read as zeros; the others hold their data.
        for zero in [300usize, 400, 650] {
            assert!(
                parallel[zero * BLOCK_SIZE..(zero + 1) * BLOCK_SIZE]
                    .iter()
                    .all(|&b| b == 0)
            );
        }
        assert_eq!(parallel[301 * BLOCK_SIZE + 1], 45);
        assert_eq!(parallel[699 * BLOCK_SIZE + 999], 699u32 as u8);
    }

    #[test]
    fn a_short_lzo_block_inside_a_file_leaves_zeros_after_its_data() {
        use crate::unpack::{Budget, Limits};
        // Block 0 holds 77 bytes of a 2-block file (a file extended after a write): the rest
        // of the block reads as zeros although the decoder writes whole chunks into the file.
        // 40 distinct bytes, then 37 of them again: a match whose 16-byte chunk copies run past
        // the block's 77 bytes.
        let mut short: Vec<u8> = (0..40u32).map(|i| (i * 7 + 1) as u8).collect();
        short.extend_from_slice(&short.clone()[..37]);
        let mut scratch = [0u8; BLOCK_SIZE];
        let packed = lzokay_native::compress(&short).unwrap();
        assert_eq!(lzo::decompress_to(&packed, &mut scratch).unwrap(), 77);
        assert!(
            scratch[77..].iter().any(|&b| b != 0),
            "the decoder writes past the data here, so the fill matters"
        );
        let full: Vec<u8> = (0..BLOCK_SIZE as u32).map(|i| (i % 251) as u8).collect();
        let mut img = Vec::new();
        let mut blocks = Vec::new();
        for (n, data) in [(0u32, &short), (1, &full)] {
            let payload = lzokay_native::compress(data).unwrap();
            blocks.push(Block {
                block: n,
                size: data.len() as u32,
                compr: compr::LZO,
                start: img.len(),
                len: payload.len(),
            });
            img.extend_from_slice(&payload);
        }
        let mut file = vec![0u8; 2 * BLOCK_SIZE];
        let budget = Budget::new(Limits::default());
        let ctx = Ctx::new(&budget);
        let error = read_blocks(&img, &blocks, &mut file, 0, &ctx).unwrap();
        assert!(error.is_none(), "{error:?}");
        assert_eq!(&file[..77], &short[..]);
        assert!(file[77..BLOCK_SIZE].iter().all(|&b| b == 0));
        assert_eq!(&file[BLOCK_SIZE..], &full[..]);
    }

    #[test]
    fn device_numbers_decode_in_both_encodings() {
        // The kernel's 4-byte `new_encode_dev(MKDEV(5, 1))`.
        assert_eq!(device_string(&[0x01, 0x05, 0, 0]), "5,1");
        // glibc's 8-byte `makedev(259, 70000)` = 0x11110370, as mkfs.ubifs writes it.
        assert_eq!(
            device_string(&[0x70, 0x03, 0x11, 0x11, 0, 0, 0, 0]),
            "259,70000"
        );
    }

    #[test]
    fn only_a_superblock_with_a_good_crc_is_detected() {
        let mut sb = vec![0u8; SB_NODE_LEN];
        sb[..4].copy_from_slice(&NODE_MAGIC);
        sb[16..20].copy_from_slice(&(SB_NODE_LEN as u32).to_le_bytes());
        sb[20] = node::SB;
        sb[36..40].copy_from_slice(&126_976u32.to_le_bytes());
        sb[40..44].copy_from_slice(&20u32.to_le_bytes());
        let crc = crc32(&sb[8..]);
        sb[4..8].copy_from_slice(&crc.to_le_bytes());
        assert!(Ubifs.detect(&sb));
        let mut bad = sb.clone();
        bad[100] = 1;
        assert!(!Ubifs.detect(&bad), "CRC mismatch");
        let mut other = sb.clone();
        other[20] = node::INO;
        assert!(!Ubifs.detect(&other), "not a superblock");
        assert!(!Ubifs.detect(&sb[..100]), "truncated");
    }
}
