//! squashfs 3.1 images (either endianness, zlib or stored blocks, fragments) written the way
//! mksquashfs 3 lays them out: data, inode table, directory table, fragment table, id tables. For
//! round trips of fwsim's version 3 reader and for hostile variants of it; `unsquashfs` reads them.

use std::io::Write;

use super::SynthError;

/// One entry of a squashfs 3 image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sq3Node {
    /// A directory with its permission bits (parents are created implicitly with 0o755).
    Dir(u16),
    /// A regular file with its permission bits.
    File(Vec<u8>, u16),
    /// A symbolic link to a target.
    Symlink(Vec<u8>),
    /// A character device (major, minor).
    CharDevice(u8, u8),
    /// A block device (major, minor).
    BlockDevice(u8, u8),
    /// A named pipe.
    Fifo,
}

/// How to write the image.
#[derive(Clone, Copy, Debug)]
pub struct Sq3Options {
    /// Big-endian (MSB-first bitfields) instead of little-endian.
    pub big_endian: bool,
    /// zlib-compress metadata and data blocks (else every block is stored).
    pub zlib: bool,
    /// Data block size: a power of two from 4 KiB to 64 KiB.
    pub block_size: u32,
    /// Creation time, also every inode's mtime.
    pub mkfs_time: u32,
}

impl Default for Sq3Options {
    fn default() -> Self {
        Self {
            big_endian: false,
            zlib: true,
            block_size: 65536,
            mkfs_time: 1_700_000_000,
        }
    }
}

const METADATA: usize = 8192;
const SUPERBLOCK: usize = 119;

struct Enc {
    be: bool,
}

impl Enc {
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u64(&self, v: u64) -> [u8; 8] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
}

fn zlib(data: &[u8]) -> Result<Vec<u8>, SynthError> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data)
        .and_then(|()| e.finish())
        .map_err(|e| SynthError::Squashfs(e.to_string()))
}

/// A metadata table written block by block, so a position is known when something is written.
struct Meta<'e> {
    enc: &'e Enc,
    zlib: bool,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Meta<'_> {
    /// (start of the current block relative to the table, offset in it).
    fn pos(&self) -> (u32, u16) {
        (self.out.len() as u32, self.buf.len() as u16)
    }
    fn write(&mut self, b: &[u8]) -> Result<(), SynthError> {
        self.buf.extend_from_slice(b);
        while self.buf.len() >= METADATA {
            let block: Vec<u8> = self.buf.drain(..METADATA).collect();
            self.flush_block(&block)?;
        }
        Ok(())
    }
    fn flush_block(&mut self, block: &[u8]) -> Result<(), SynthError> {
        let packed = if self.zlib { zlib(block)? } else { Vec::new() };
        if self.zlib && packed.len() < block.len() {
            self.out
                .extend_from_slice(&self.enc.u16(packed.len() as u16));
            self.out.extend_from_slice(&packed);
        } else {
            self.out
                .extend_from_slice(&self.enc.u16(block.len() as u16 | 0x8000));
            self.out.extend_from_slice(block);
        }
        Ok(())
    }
    fn finish(mut self) -> Result<Vec<u8>, SynthError> {
        if !self.buf.is_empty() {
            let block = std::mem::take(&mut self.buf);
            self.flush_block(&block)?;
        }
        Ok(self.out)
    }
}

struct Node {
    name: Vec<u8>,
    kind: Sq3Node,
    children: Vec<usize>,
    number: u32,
}

/// Writes a squashfs 3.1 image of `entries` (paths relative to the root).
pub fn build(entries: &[(&str, Sq3Node)], opts: &Sq3Options) -> Result<Vec<u8>, SynthError> {
    if !opts.block_size.is_power_of_two() || !(4096..=65536).contains(&opts.block_size) {
        return Err(SynthError::Invalid(format!(
            "squashfs 3 block size {}",
            opts.block_size
        )));
    }
    let enc = Enc {
        be: opts.big_endian,
    };
    let bs = opts.block_size as usize;
    let mut nodes = vec![Node {
        name: Vec::new(),
        kind: Sq3Node::Dir(0o755),
        children: Vec::new(),
        number: 0,
    }];
    for (path, kind) in entries {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut at = 0usize;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let found = nodes.get(at).and_then(|n| {
                n.children
                    .iter()
                    .copied()
                    .find(|&c| nodes.get(c).is_some_and(|c| c.name == part.as_bytes()))
            });
            match found {
                Some(_) if last => {
                    return Err(SynthError::Invalid(format!("path {path:?} twice")));
                }
                Some(c) => at = c,
                None => {
                    let n = nodes.len();
                    nodes.push(Node {
                        name: part.as_bytes().to_vec(),
                        kind: if last {
                            kind.clone()
                        } else {
                            Sq3Node::Dir(0o755)
                        },
                        children: Vec::new(),
                        number: 0,
                    });
                    if let Some(p) = nodes.get_mut(at) {
                        p.children.push(n);
                    }
                    at = n;
                }
            }
        }
    }
    // Entries sorted by name, inode numbers in the order inodes are written (children first).
    let names: Vec<Vec<u8>> = nodes.iter().map(|n| n.name.clone()).collect();
    for n in &mut nodes {
        n.children.sort_by(|a, b| names.get(*a).cmp(&names.get(*b)));
    }
    let mut post = Vec::new();
    let mut stack = vec![(0usize, false)];
    while let Some((n, done)) = stack.pop() {
        if done {
            post.push(n);
            continue;
        }
        stack.push((n, true));
        for &c in nodes
            .get(n)
            .map(|n| n.children.as_slice())
            .unwrap_or_default()
            .iter()
            .rev()
        {
            stack.push((c, false));
        }
    }
    for (i, &n) in post.iter().enumerate() {
        if let Some(node) = nodes.get_mut(n) {
            node.number = i as u32 + 1;
        }
    }
    let mut parent_of = vec![0usize; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for &c in &n.children {
            if let Some(p) = parent_of.get_mut(c) {
                *p = i;
            }
        }
    }

    let mut data: Vec<u8> = Vec::new();
    let mut frag_buf: Vec<u8> = Vec::new();
    let mut frags: Vec<(u64, u32)> = Vec::new();
    let mut inodes = Meta {
        enc: &enc,
        zlib: opts.zlib,
        out: Vec::new(),
        buf: Vec::new(),
    };
    let mut dirs = Meta {
        enc: &enc,
        zlib: opts.zlib,
        out: Vec::new(),
        buf: Vec::new(),
    };
    // (inode ref block, offset) and type of each written node.
    let mut refs = vec![(0u32, 0u16, 0u8); nodes.len()];
    let store_block = |data: &mut Vec<u8>, block: &[u8]| -> Result<u32, SynthError> {
        let packed = if opts.zlib { zlib(block)? } else { Vec::new() };
        if opts.zlib && packed.len() < block.len() {
            data.extend_from_slice(&packed);
            Ok(packed.len() as u32)
        } else {
            data.extend_from_slice(block);
            Ok(block.len() as u32 | 1 << 24)
        }
    };
    let type_mode = |ty: u8, mode: u16| -> [u8; 2] {
        let mode = mode & 0xFFF;
        enc.u16(if enc.be {
            u16::from(ty) << 12 | mode
        } else {
            mode << 4 | u16::from(ty)
        })
    };
    for &n in &post {
        let node = nodes
            .get(n)
            .ok_or_else(|| SynthError::Invalid("node".into()))?;
        let number = node.number;
        let parent_number = nodes
            .get(*parent_of.get(n).unwrap_or(&0))
            .map_or(0, |p| p.number);
        let mut ino: Vec<u8> = Vec::new();
        let base = |ino: &mut Vec<u8>, ty: u8, mode: u16| {
            ino.extend_from_slice(&type_mode(ty, mode));
            ino.extend_from_slice(&[0, 0]);
            ino.extend_from_slice(&enc.u32(opts.mkfs_time));
            ino.extend_from_slice(&enc.u32(number));
        };
        let ty = match &node.kind {
            Sq3Node::Dir(mode) => {
                // The listing: headers group entries whose inodes share a metadata block.
                let (block, offset) = dirs.pos();
                let mut listing: Vec<u8> = Vec::new();
                let mut group: Vec<usize> = Vec::new();
                let flush = |group: &mut Vec<usize>, listing: &mut Vec<u8>| {
                    let Some(&first) = group.first() else { return };
                    let (b, _, _) = refs.get(first).copied().unwrap_or_default();
                    let base_no = nodes.get(first).map_or(0, |c| c.number);
                    listing.push((group.len() - 1) as u8);
                    listing.extend_from_slice(&enc.u32(b));
                    listing.extend_from_slice(&enc.u32(base_no));
                    for &c in group.iter() {
                        let (_, off, ty) = refs.get(c).copied().unwrap_or_default();
                        let child = nodes.get(c);
                        let name = child.map(|c| c.name.as_slice()).unwrap_or_default();
                        let packed = if enc.be {
                            off << 3 | u16::from(ty)
                        } else {
                            off | u16::from(ty) << 13
                        };
                        listing.extend_from_slice(&enc.u16(packed));
                        listing.push((name.len() - 1) as u8);
                        let delta = child.map_or(0, |c| c.number) as i64 - i64::from(base_no);
                        listing.extend_from_slice(&enc.u16(delta as i16 as u16));
                        listing.extend_from_slice(name);
                    }
                    group.clear();
                };
                for &c in &node.children {
                    let same_block = group
                        .first()
                        .is_some_and(|&f| refs.get(f).map(|r| r.0) == refs.get(c).map(|r| r.0));
                    if !same_block || group.len() == 256 {
                        flush(&mut group, &mut listing);
                    }
                    group.push(c);
                }
                flush(&mut group, &mut listing);
                dirs.write(&listing)?;
                base(&mut ino, 1, *mode);
                ino.extend_from_slice(&enc.u32(2 + node.children.len() as u32));
                let size = listing.len() as u32 + 3;
                let offset = u32::from(offset);
                ino.extend_from_slice(&enc.u32(if enc.be {
                    size << 13 | offset
                } else {
                    size | offset << 19
                }));
                ino.extend_from_slice(&enc.u32(block));
                ino.extend_from_slice(&enc.u32(parent_number));
                1
            }
            Sq3Node::File(bytes, mode) => {
                let start = (SUPERBLOCK + data.len()) as u64;
                let full = bytes.len() / bs;
                let mut sizes = Vec::new();
                for i in 0..full {
                    let block = bytes.get(i * bs..(i + 1) * bs).unwrap_or_default();
                    sizes.push(store_block(&mut data, block)?);
                }
                let tail = bytes.get(full * bs..).unwrap_or_default();
                let (frag, frag_off) = if tail.is_empty() {
                    (0xFFFF_FFFF, 0)
                } else {
                    if frag_buf.len() + tail.len() > bs {
                        let at = (SUPERBLOCK + data.len()) as u64;
                        let word = store_block(&mut data, &frag_buf)?;
                        frags.push((at, word));
                        frag_buf.clear();
                    }
                    let off = frag_buf.len() as u32;
                    frag_buf.extend_from_slice(tail);
                    (frags.len() as u32, off)
                };
                base(&mut ino, 2, *mode);
                ino.extend_from_slice(&enc.u64(start));
                ino.extend_from_slice(&enc.u32(frag));
                ino.extend_from_slice(&enc.u32(frag_off));
                ino.extend_from_slice(&enc.u32(bytes.len() as u32));
                for s in sizes {
                    ino.extend_from_slice(&enc.u32(s));
                }
                2
            }
            Sq3Node::Symlink(target) => {
                base(&mut ino, 3, 0o777);
                ino.extend_from_slice(&enc.u32(1));
                ino.extend_from_slice(&enc.u16(target.len() as u16));
                ino.extend_from_slice(target);
                3
            }
            Sq3Node::BlockDevice(ma, mi) | Sq3Node::CharDevice(ma, mi) => {
                let ty = if matches!(node.kind, Sq3Node::BlockDevice(..)) {
                    4
                } else {
                    5
                };
                base(&mut ino, ty, 0o660);
                ino.extend_from_slice(&enc.u32(1));
                ino.extend_from_slice(&enc.u16(u16::from(*ma) << 8 | u16::from(*mi)));
                ty
            }
            Sq3Node::Fifo => {
                base(&mut ino, 6, 0o644);
                ino.extend_from_slice(&enc.u32(1));
                6
            }
        };
        let (b, o) = inodes.pos();
        if let Some(r) = refs.get_mut(n) {
            *r = (b, o, ty);
        }
        inodes.write(&ino)?;
    }
    if !frag_buf.is_empty() {
        let at = (SUPERBLOCK + data.len()) as u64;
        let word = store_block(&mut data, &frag_buf)?;
        frags.push((at, word));
    }
    let (root_block, root_offset, _) = refs.first().copied().unwrap_or_default();
    let inode_table = inodes.finish()?;
    let dir_table = dirs.finish()?;

    let mut img = vec![0u8; SUPERBLOCK];
    img.extend_from_slice(&data);
    let inode_start = img.len() as u64;
    img.extend_from_slice(&inode_table);
    let dir_start = img.len() as u64;
    img.extend_from_slice(&dir_table);
    // Fragment entries in metadata blocks, then the index of those blocks.
    let mut pointers = Vec::new();
    for chunk in frags.chunks(METADATA / 16) {
        let mut m = Meta {
            enc: &enc,
            zlib: opts.zlib,
            out: Vec::new(),
            buf: Vec::new(),
        };
        for (start, word) in chunk {
            m.write(&enc.u64(*start))?;
            m.write(&enc.u32(*word))?;
            m.write(&[0; 4])?;
        }
        pointers.push(img.len() as u64);
        img.extend_from_slice(&m.finish()?);
    }
    let frag_start = img.len() as u64;
    for p in pointers {
        img.extend_from_slice(&enc.u64(p));
    }
    let uid_start = img.len() as u64;
    img.extend_from_slice(&enc.u32(0));
    let guid_start = img.len() as u64;
    img.extend_from_slice(&enc.u32(0));
    let bytes_used = img.len() as u64;

    let mut sb: Vec<u8> = Vec::with_capacity(SUPERBLOCK);
    sb.extend_from_slice(if enc.be { b"sqsh" } else { b"hsqs" });
    sb.extend_from_slice(&enc.u32(nodes.len() as u32));
    for v in [bytes_used, uid_start, guid_start, inode_start, dir_start] {
        sb.extend_from_slice(&enc.u32(v as u32));
    }
    sb.extend_from_slice(&enc.u16(3));
    sb.extend_from_slice(&enc.u16(1));
    sb.extend_from_slice(&enc.u16(opts.block_size.min(0xFFFF) as u16));
    sb.extend_from_slice(&enc.u16(opts.block_size.trailing_zeros() as u16));
    sb.extend_from_slice(&[0, 1, 1]);
    sb.extend_from_slice(&enc.u32(opts.mkfs_time));
    sb.extend_from_slice(&enc.u64(u64::from(root_block) << 16 | u64::from(root_offset)));
    sb.extend_from_slice(&enc.u32(opts.block_size));
    sb.extend_from_slice(&enc.u32(frags.len() as u32));
    sb.extend_from_slice(&enc.u32(frag_start as u32));
    for v in [
        bytes_used,
        uid_start,
        guid_start,
        inode_start,
        dir_start,
        frag_start,
        u64::MAX,
    ] {
        sb.extend_from_slice(&enc.u64(v));
    }
    if let Some(head) = img.get_mut(..SUPERBLOCK) {
        head.copy_from_slice(&sb);
    }
    img.resize(img.len().div_ceil(4096) * 4096, 0);
    Ok(img)
}
