//! A small UBIFS writer: superblock, two master nodes and a valid index B-tree over inode,
//! directory-entry and data nodes (hard links, devices and holes included). The log, LPT and orphan
//! areas are left erased: readers that walk the index (fwsim, ubi_reader) need nothing more.

use std::collections::BTreeMap;
use std::io::Write;

use rayon::prelude::*;

use crate::unpack::formats::ubi::crc32;
use crate::unpack::formats::ubifs::{
    BLOCK_SIZE, COMMON_HEADER_LEN, NODE_MAGIC, ROOT_INO, compr, node,
};

use super::SynthError;
use super::content::{EntryData, Rootfs};

/// How data blocks are compressed (a block is stored when compression does not make it smaller).
#[derive(Clone, Copy, Debug)]
pub enum Compressor {
    /// Stored.
    None,
    /// Raw deflate.
    Zlib,
    /// Zstandard.
    Zstd,
    /// Another compressor with its UBIFS type code (tests use an LZO compressor this way).
    Custom {
        /// The `compr_type` written to each data node.
        code: u16,
        /// Compresses one block.
        compress: fn(&[u8]) -> Vec<u8>,
    },
}

/// A character or block device to add.
#[derive(Clone, Debug)]
pub struct Device {
    /// Path.
    pub path: String,
    /// Character (`true`) or block device.
    pub char: bool,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

/// What to write.
#[derive(Clone, Debug)]
pub struct Options {
    /// LEB size (the UBI volume's, e.g. 126976 for 128 KiB PEBs with 2 KiB pages).
    pub leb_size: usize,
    /// Minimum I/O unit.
    pub min_io: u32,
    /// Data compression.
    pub compressor: Compressor,
    /// Branches per index node.
    pub fanout: usize,
    /// Extra names for existing files: `(link path, target path)`.
    pub hard_links: Vec<(String, String)>,
    /// Device nodes.
    pub devices: Vec<Device>,
    /// Leave all-zero blocks out (holes), as `mkfs.ubifs` does.
    pub holes: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            leb_size: 126_976,
            min_io: 2048,
            compressor: Compressor::Zlib,
            fanout: 8,
            hard_links: Vec::new(),
            devices: Vec::new(),
            holes: true,
        }
    }
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const ITYPE_REG: u8 = 0;
const ITYPE_DIR: u8 = 1;
const ITYPE_LNK: u8 = 2;
const ITYPE_BLK: u8 = 3;
const ITYPE_CHR: u8 = 4;
/// Log, LPT and orphan LEBs (left erased) between the master LEBs and the main area.
const LOG_LEBS: u32 = 2;
const LPT_LEBS: u32 = 2;
const ORPH_LEBS: u32 = 1;
const FIRST_INO: u32 = 64;

/// The key hash of a directory entry name (`key_r5_hash` in Linux `fs/ubifs/key.h`).
pub fn r5_hash(name: &[u8]) -> u32 {
    let mut a: u32 = 0;
    for &b in name {
        let c = i32::from(b as i8);
        a = a.wrapping_add((c << 4) as u32);
        a = a.wrapping_add((c >> 4) as u32);
        a = a.wrapping_mul(11);
    }
    a &= 0x1FFF_FFFF;
    if a <= 2 { a + 3 } else { a }
}

/// A node: the common header (CRC, sequence number, length, type) before `body`.
fn node_bytes(ty: u8, sqnum: u64, body: &[u8]) -> Vec<u8> {
    let len = COMMON_HEADER_LEN + body.len();
    let mut n = Vec::with_capacity(len);
    n.extend_from_slice(&NODE_MAGIC);
    n.extend_from_slice(&[0; 4]);
    n.extend_from_slice(&sqnum.to_le_bytes());
    n.extend_from_slice(&(len as u32).to_le_bytes());
    n.extend_from_slice(&[ty, 0, 0, 0]);
    n.extend_from_slice(body);
    let crc = crc32(n.get(8..).unwrap_or_default());
    n.splice(4..8, crc.to_le_bytes());
    n
}

/// A 16-byte key field (simple key format: inode number, then type and hash or block).
fn key(inum: u32, ty: u32, low: u32) -> [u8; 16] {
    let mut k = [0u8; 16];
    let word = (ty << 29) | (low & 0x1FFF_FFFF);
    for (d, s) in k
        .iter_mut()
        .zip(inum.to_le_bytes().into_iter().chain(word.to_le_bytes()))
    {
        *d = s;
    }
    k
}

/// One inode to write.
struct Ino {
    inum: u32,
    mode: u32,
    size: u64,
    nlink: u32,
    mtime: u64,
    inline: Vec<u8>,
}

fn ino_body(i: &Ino, compr_type: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(160);
    b.extend_from_slice(&key(i.inum, 0, 0));
    b.extend_from_slice(&0u64.to_le_bytes()); // creat_sqnum
    b.extend_from_slice(&i.size.to_le_bytes());
    for _ in 0..3 {
        b.extend_from_slice(&i.mtime.to_le_bytes()); // atime, ctime, mtime
    }
    b.extend_from_slice(&[0; 12]); // nanoseconds
    for w in [i.nlink, 0, 0, i.mode, 0, i.inline.len() as u32, 0, 0, 0, 0] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    b.extend_from_slice(&compr_type.to_le_bytes());
    b.resize(160 - COMMON_HEADER_LEN, 0);
    b.extend_from_slice(&i.inline);
    b
}

fn dent_body(parent: u32, name: &[u8], inum: u32, itype: u8) -> Vec<u8> {
    let mut b = Vec::with_capacity(40 + name.len());
    b.extend_from_slice(&key(parent, 2, r5_hash(name)));
    b.extend_from_slice(&u64::from(inum).to_le_bytes());
    b.push(0);
    b.push(itype);
    b.extend_from_slice(&(name.len() as u16).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(name);
    b.push(0);
    b
}

/// Node sequence numbers, in writing order.
struct Seq(u64);

impl Seq {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Packs nodes into LEBs, each 8-byte aligned, none crossing a LEB boundary.
struct Area {
    leb_size: usize,
    first_lnum: u32,
    lebs: Vec<Vec<u8>>,
}

impl Area {
    fn add(&mut self, n: &[u8]) -> Result<(u32, u32), SynthError> {
        if n.len() > self.leb_size {
            return Err(SynthError::Invalid("UBIFS node larger than a LEB".into()));
        }
        let fits = self
            .lebs
            .last()
            .is_some_and(|l| l.len().next_multiple_of(8) + n.len() <= self.leb_size);
        if !fits {
            self.lebs.push(Vec::with_capacity(self.leb_size));
        }
        let lnum = self.first_lnum + self.lebs.len() as u32 - 1;
        let Some(leb) = self.lebs.last_mut() else {
            return Err(SynthError::Invalid("UBIFS area without a LEB".into()));
        };
        leb.resize(leb.len().next_multiple_of(8), 0);
        let offs = leb.len() as u32;
        leb.extend_from_slice(n);
        Ok((lnum, offs))
    }

    /// Starts a fresh LEB (index nodes live apart from leaves).
    fn close(&mut self) {
        if self.lebs.last().is_some_and(|l| !l.is_empty()) {
            self.lebs.push(Vec::with_capacity(self.leb_size));
        }
    }
}

/// A leaf or index node already placed: where, how long, and its key's first 8 bytes.
#[derive(Clone, Copy)]
struct Placed {
    lnum: u32,
    offs: u32,
    len: u32,
    key: [u8; 8],
}

/// Writes `root` as a UBIFS image of whole LEBs.
pub fn build(root: &Rootfs, opts: &Options) -> Result<Vec<u8>, SynthError> {
    let leb = opts.leb_size;
    if !(15 * 1024..=(16 << 20)).contains(&leb) || !leb.is_multiple_of(8) || opts.fanout < 3 {
        return Err(SynthError::Invalid(format!(
            "UBIFS LEB size {leb} or fanout {} unusable",
            opts.fanout
        )));
    }
    let default_compr = match opts.compressor {
        Compressor::None => compr::NONE,
        Compressor::Zlib => compr::ZLIB,
        Compressor::Zstd => compr::ZSTD,
        Compressor::Custom { code, .. } => code,
    };

    // Inodes: the root, then every entry in path order.
    let mut inums: BTreeMap<String, u32> = BTreeMap::new();
    let mut inodes: BTreeMap<u32, Ino> = BTreeMap::new();
    let mut dents: Vec<(u32, Vec<u8>, u32, u8)> = Vec::new();
    let mut files: Vec<(u32, &[u8])> = Vec::new();
    inodes.insert(
        ROOT_INO as u32,
        Ino {
            inum: ROOT_INO as u32,
            mode: S_IFDIR | 0o755,
            size: 0,
            nlink: 2,
            mtime: u64::from(super::content::BUILD_TIME),
            inline: Vec::new(),
        },
    );
    let mut next = FIRST_INO;
    let parent_of =
        |path: &str, inums: &BTreeMap<String, u32>| -> Result<(u32, String), SynthError> {
            match path.rsplit_once('/') {
                Some((dir, name)) => inums
                    .get(dir)
                    .map(|&p| (p, name.to_owned()))
                    .ok_or_else(|| SynthError::Invalid(format!("no directory for {path}"))),
                None => Ok((ROOT_INO as u32, path.to_owned())),
            }
        };
    for (path, entry) in root.entries() {
        let inum = next;
        next += 1;
        let (parent, name) = parent_of(path, &inums)?;
        let mtime = u64::from(entry.mtime);
        let perm = u32::from(entry.mode) & 0o7777;
        let (mode, itype, size, inline) = match &entry.data {
            EntryData::Dir => (S_IFDIR | perm, ITYPE_DIR, 0, Vec::new()),
            EntryData::File(bytes) => {
                files.push((inum, bytes));
                (S_IFREG | perm, ITYPE_REG, bytes.len() as u64, Vec::new())
            }
            EntryData::Symlink(t) => (
                S_IFLNK | 0o777,
                ITYPE_LNK,
                t.len() as u64,
                t.as_bytes().to_vec(),
            ),
        };
        if itype == ITYPE_DIR
            && let Some(p) = inodes.get_mut(&parent)
        {
            p.nlink += 1;
        }
        inodes.insert(
            inum,
            Ino {
                inum,
                mode,
                size,
                nlink: if itype == ITYPE_DIR { 2 } else { 1 },
                mtime,
                inline,
            },
        );
        inums.insert(path.to_owned(), inum);
        dents.push((parent, name.into_bytes(), inum, itype));
    }
    for d in &opts.devices {
        let inum = next;
        next += 1;
        let (parent, name) = parent_of(&d.path, &inums)?;
        // 8 bytes, glibc's `makedev` encoding, as `mkfs.ubifs` writes devices.
        let (major, minor) = (u64::from(d.major), u64::from(d.minor));
        let dev = (minor & 0xFF)
            | ((major & 0xFFF) << 8)
            | ((minor & !0xFF) << 12)
            | ((major & !0xFFF) << 32);
        let (ty, itype) = if d.char {
            (S_IFCHR, ITYPE_CHR)
        } else {
            (S_IFBLK, ITYPE_BLK)
        };
        inodes.insert(
            inum,
            Ino {
                inum,
                mode: ty | 0o660,
                size: 0,
                nlink: 1,
                mtime: u64::from(super::content::BUILD_TIME),
                inline: dev.to_le_bytes().to_vec(),
            },
        );
        dents.push((parent, name.into_bytes(), inum, itype));
    }
    for (link, target) in &opts.hard_links {
        let &inum = inums
            .get(target.as_str())
            .ok_or_else(|| SynthError::Invalid(format!("hard link to missing {target}")))?;
        let (parent, name) = parent_of(link, &inums)?;
        if let Some(i) = inodes.get_mut(&inum) {
            i.nlink += 1;
        }
        dents.push((parent, name.into_bytes(), inum, ITYPE_REG));
    }
    for (parent, name, _, _) in &dents {
        if let Some(p) = inodes.get_mut(parent) {
            p.size += (56 + name.len() as u64 + 1).next_multiple_of(8);
        }
    }

    // Data blocks, compressed in parallel.
    let compressor = opts.compressor;
    let holes = opts.holes;
    let blocks: Vec<(u32, u32, &[u8])> = files
        .iter()
        .flat_map(|&(inum, bytes)| {
            bytes
                .chunks(BLOCK_SIZE)
                .enumerate()
                .map(move |(i, c)| (inum, i as u32, c))
        })
        .filter(|(_, _, c)| !(holes && c.iter().all(|&b| b == 0)))
        .collect();
    let compressed: Vec<(u16, Vec<u8>)> = blocks
        .par_iter()
        .map(|(_, _, chunk)| compress(compressor, chunk))
        .collect::<Result<_, _>>()?;

    // Leaves in key order: (inode number, key type, hash or block).
    let mut leaves: Vec<((u32, u32), u8, Vec<u8>)> = Vec::new();
    for i in inodes.values() {
        leaves.push(((i.inum, 0), node::INO, ino_body(i, default_compr)));
    }
    for (parent, name, inum, itype) in &dents {
        leaves.push((
            (*parent, (2 << 29) | r5_hash(name)),
            node::DENT,
            dent_body(*parent, name, *inum, *itype),
        ));
    }
    for ((inum, block, chunk), (code, data)) in blocks.iter().zip(compressed) {
        let mut b = Vec::with_capacity(24 + data.len());
        b.extend_from_slice(&key(*inum, 1, *block));
        b.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        b.extend_from_slice(&code.to_le_bytes());
        b.extend_from_slice(&[0; 2]);
        b.extend_from_slice(&data);
        leaves.push(((*inum, (1 << 29) | block), node::DATA, b));
    }
    leaves.sort_by_key(|l| l.0);

    let main_first = 3 + LOG_LEBS + LPT_LEBS + ORPH_LEBS;
    let mut area = Area {
        leb_size: leb,
        first_lnum: main_first,
        lebs: Vec::new(),
    };
    let mut seq = Seq(0);
    let mut level: Vec<Placed> = Vec::with_capacity(leaves.len());
    for ((inum, word), ty, body) in &leaves {
        let n = node_bytes(*ty, seq.next(), body);
        let (lnum, offs) = area.add(&n)?;
        let mut k = [0u8; 8];
        for (d, s) in k
            .iter_mut()
            .zip(inum.to_le_bytes().into_iter().chain(word.to_le_bytes()))
        {
            *d = s;
        }
        level.push(Placed {
            lnum,
            offs,
            len: n.len() as u32,
            key: k,
        });
    }

    // The index, bottom up; the last node written is the root.
    area.close();
    let first_idx_leb = area.first_lnum + area.lebs.len() as u32 - 1;
    let mut index_size = 0u64;
    let mut height = 0u16;
    let root = loop {
        let mut up = Vec::with_capacity(level.len().div_ceil(opts.fanout));
        for group in level.chunks(opts.fanout) {
            let mut b = Vec::with_capacity(4 + group.len() * 20);
            b.extend_from_slice(&(group.len() as u16).to_le_bytes());
            b.extend_from_slice(&height.to_le_bytes());
            for p in group {
                for w in [p.lnum, p.offs, p.len] {
                    b.extend_from_slice(&w.to_le_bytes());
                }
                b.extend_from_slice(&p.key);
            }
            let n = node_bytes(node::IDX, seq.next(), &b);
            index_size += (n.len() as u64).next_multiple_of(8);
            let (lnum, offs) = area.add(&n)?;
            up.push(Placed {
                lnum,
                offs,
                len: n.len() as u32,
                key: group.first().map_or([0; 8], |p| p.key),
            });
        }
        if up.len() <= 1 {
            break up.pop();
        }
        level = up;
        height += 1;
    };
    let root = root.ok_or_else(|| SynthError::Invalid("UBIFS index without a root".into()))?;
    let main_lebs = area.lebs.len() as u32;
    let leb_cnt = main_first + main_lebs;
    let ihead = area
        .lebs
        .last()
        .map_or(0, |l| l.len().next_multiple_of(8) as u32);
    let idx_lebs = main_first + main_lebs - first_idx_leb;

    let mut sb = Vec::with_capacity(4096);
    sb.extend_from_slice(&[0, 0, 0, 0]); // padding, key_hash (r5), key_fmt (simple)
    for w in [0, opts.min_io, leb as u32, leb_cnt, leb_cnt.max(2048)] {
        sb.extend_from_slice(&w.to_le_bytes());
    }
    sb.extend_from_slice(&(u64::from(main_lebs) * leb as u64).to_le_bytes()); // max_bud_bytes
    for w in [LOG_LEBS, LPT_LEBS, ORPH_LEBS, 1, opts.fanout as u32, 256, 4] {
        sb.extend_from_slice(&w.to_le_bytes());
    }
    sb.extend_from_slice(&default_compr.to_le_bytes());
    sb.extend_from_slice(&[0; 2]);
    sb.extend_from_slice(&[0; 16]); // rp_uid, rp_gid, rp_size
    sb.extend_from_slice(&1_000_000_000u32.to_le_bytes());
    sb.extend_from_slice(b"fwsim-ubifs-uuid");
    sb.resize(4096 - COMMON_HEADER_LEN, 0);
    let sb = node_bytes(node::SB, seq.next(), &sb);

    let mut mst = Vec::with_capacity(512);
    mst.extend_from_slice(&u64::from(next - 1).to_le_bytes()); // highest_inum
    mst.extend_from_slice(&0u64.to_le_bytes()); // cmt_no
    let gc_lnum = leb_cnt.saturating_sub(1);
    for w in [
        2, 3, root.lnum, root.offs, root.len, gc_lnum, root.lnum, ihead,
    ] {
        mst.extend_from_slice(&w.to_le_bytes());
    }
    let used: u64 = area.lebs.iter().map(|l| l.len() as u64).sum();
    for q in [index_size, 0, 0, used, 0, 0] {
        mst.extend_from_slice(&q.to_le_bytes()); // index_size, free, dirty, used, dead, dark
    }
    let lpt = 3 + LOG_LEBS;
    for w in [
        lpt, 0, lpt, 0, lpt, 0, lpt, 0, main_first, 0, idx_lebs, leb_cnt,
    ] {
        mst.extend_from_slice(&w.to_le_bytes());
    }
    mst.resize(512 - COMMON_HEADER_LEN, 0);
    let mst = node_bytes(node::MST, seq.next(), &mst);

    let mut img = Vec::with_capacity(leb_cnt as usize * leb);
    let mut push_leb = |bytes: &[u8]| {
        let start = img.len();
        img.extend_from_slice(bytes);
        img.resize(start + leb, 0xFF);
    };
    push_leb(&sb);
    push_leb(&mst);
    push_leb(&mst);
    for _ in 3..main_first {
        push_leb(&[]);
    }
    for l in &area.lebs {
        push_leb(l);
    }
    Ok(img)
}

/// One block as a data node payload: compressed when that makes it smaller.
fn compress(c: Compressor, chunk: &[u8]) -> Result<(u16, Vec<u8>), SynthError> {
    let packed = match c {
        Compressor::None => None,
        Compressor::Zlib => {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(chunk)
                .and_then(|()| e.finish())
                .map(|d| (compr::ZLIB, d))
                .map_err(|e| SynthError::Invalid(format!("deflate: {e}")))
                .map(Some)?
        }
        Compressor::Zstd => zstd::bulk::compress(chunk, 3)
            .map(|d| Some((compr::ZSTD, d)))
            .map_err(|e| SynthError::Invalid(format!("zstd: {e}")))?,
        Compressor::Custom { code, compress } => Some((code, compress(chunk))),
    };
    Ok(match packed {
        Some((code, d)) if d.len() < chunk.len() => (code, d),
        _ => (compr::NONE, chunk.to_vec()),
    })
}
