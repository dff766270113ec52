//! JFFS2 images written node by node, as `mkfs.jffs2` lays them out (a cleanmarker opening each
//! erase block, nodes never crossing a block, 0xFF padding), with the history a live file system
//! accumulates: several versions of a file, truncations, deletions, renames and hard links.

use std::collections::HashMap;
use std::io::Write;

use super::SynthError;
use super::content::{BUILD_TIME, EntryData, Rootfs};
use crate::unpack::bytes::Endian;
use crate::unpack::formats::jffs2::{compr, crc};

/// How data fragments are compressed. A fragment that does not shrink is stored (as
/// `mkfs.jffs2` does).
#[derive(Clone, Copy, Debug)]
pub enum Compression {
    /// Stored.
    None,
    /// zlib, level 6 (the kernel's default).
    Zlib,
    /// The kernel's rtime coder.
    Rtime,
    /// Raw LZMA, lc=0 lp=0 pb=0, 8 KiB dictionary (OpenWrt's JFFS2 LZMA).
    Lzma,
    /// LZO1X through a compressor the caller supplies (fwsim itself only decodes LZO).
    Lzo(fn(&[u8]) -> Vec<u8>),
}

impl Compression {
    /// The stored method and bytes for `data`.
    fn apply(self, data: &[u8]) -> Result<(u8, Vec<u8>), SynthError> {
        let packed = match self {
            Compression::None => None,
            Compression::Zlib => {
                let mut z =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                z.write_all(data)
                    .and_then(|()| z.finish())
                    .map(|v| (compr::ZLIB, v))
                    .ok()
            }
            Compression::Rtime => Some((compr::RTIME, rtime_compress(data))),
            Compression::Lzma => Some((compr::LZMA, lzma_compress(data)?)),
            Compression::Lzo(f) => Some((compr::LZO, f(data))),
        };
        Ok(match packed {
            Some((id, bytes)) if bytes.len() < data.len() => (id, bytes),
            _ => (compr::NONE, data.to_vec()),
        })
    }
}

/// The kernel's rtime compressor (`fs/jffs2/compr_rtime.c`): each byte, then how many following
/// bytes repeat what followed its previous occurrence (at most 255).
pub fn rtime_compress(data: &[u8]) -> Vec<u8> {
    let mut positions = [0usize; 256];
    let mut out = Vec::with_capacity(data.len() * 2);
    let mut pos = 0;
    while let Some(&value) = data.get(pos) {
        out.push(value);
        pos += 1;
        let Some(slot) = positions.get_mut(usize::from(value)) else {
            break;
        };
        let mut back = *slot;
        *slot = pos;
        let mut run = 0u8;
        while back < pos && run < 255 && data.get(pos).is_some() && data.get(pos) == data.get(back)
        {
            pos += 1;
            back += 1;
            run += 1;
        }
        out.push(run);
    }
    out
}

fn lzma_compress(data: &[u8]) -> Result<Vec<u8>, SynthError> {
    let err = |e: liblzma::stream::Error| SynthError::Invalid(format!("lzma: {e}"));
    let mut opts = liblzma::stream::LzmaOptions::new_preset(6).map_err(err)?;
    opts.literal_context_bits(0)
        .literal_position_bits(0)
        .position_bits(0)
        .dict_size(0x2000);
    let mut filters = liblzma::stream::Filters::new();
    filters.lzma1(&opts);
    let stream = liblzma::stream::Stream::new_raw_encoder(&filters).map_err(err)?;
    let mut w = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    w.write_all(data)
        .and_then(|()| w.finish())
        .map_err(|e| SynthError::Invalid(format!("lzma: {e}")))
}

/// Layout and compression of an image.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Byte order of every field.
    pub endian: Endian,
    /// Erase-block size: a power of two from 4 KiB to 256 KiB.
    pub erase_size: u32,
    /// Compression of data fragments.
    pub compression: Compression,
    /// Whether each erase block opens with a cleanmarker (`mkfs.jffs2` without `-n`).
    pub cleanmarkers: bool,
    /// Largest data fragment (the kernel's page size; 4 KiB).
    pub page_size: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            endian: Endian::Little,
            erase_size: 64 << 10,
            compression: Compression::Zlib,
            cleanmarkers: true,
            page_size: 4096,
        }
    }
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFMT: u32 = 0o170000;

/// What the writer remembers of an inode to write its next node.
#[derive(Clone, Copy, Debug)]
struct InodeState {
    mode: u32,
    isize: u32,
    version: u32,
}

/// Writes a JFFS2 image one operation at a time. Inode 1 is the root directory.
#[derive(Debug)]
pub struct Writer {
    opts: Options,
    out: Vec<u8>,
    next_ino: u32,
    inodes: HashMap<u32, InodeState>,
}

/// The root directory's inode number.
pub const ROOT: u32 = 1;

const DIRENT_LEN: usize = 40;
const INODE_LEN: usize = 68;

impl Writer {
    /// An empty file system.
    pub fn new(opts: Options) -> Result<Self, SynthError> {
        if !(4096..=256 << 10).contains(&opts.erase_size) || !opts.erase_size.is_power_of_two() {
            return Err(SynthError::Invalid(format!(
                "jffs2 erase block size {} is not a power of two from 4 KiB to 256 KiB",
                opts.erase_size
            )));
        }
        if opts.page_size == 0 || opts.page_size > 64 << 10 {
            return Err(SynthError::Invalid(format!(
                "jffs2 page size {} is not between 1 byte and 64 KiB",
                opts.page_size
            )));
        }
        let mut inodes = HashMap::new();
        inodes.insert(
            ROOT,
            InodeState {
                mode: S_IFDIR | 0o755,
                isize: 0,
                version: 0,
            },
        );
        Ok(Self {
            opts,
            out: Vec::new(),
            next_ino: ROOT + 1,
            inodes,
        })
    }

    fn u16(&self, v: u16) -> [u8; 2] {
        match self.opts.endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }

    fn u32(&self, v: u32) -> [u8; 4] {
        match self.opts.endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }

    /// A common header for a node of `totlen` bytes.
    fn header(&self, nodetype: u16, totlen: usize) -> Vec<u8> {
        let mut h = Vec::with_capacity(totlen + 3);
        h.extend_from_slice(&self.u16(0x1985));
        h.extend_from_slice(&self.u16(nodetype));
        h.extend_from_slice(&self.u32(totlen as u32));
        let c = crc(&h);
        h.extend_from_slice(&self.u32(c));
        h
    }

    /// Appends a node, opening a new erase block (padded with 0xFF) when it does not fit.
    fn emit(&mut self, mut node: Vec<u8>) {
        while !node.len().is_multiple_of(4) {
            node.push(0);
        }
        let erase = self.opts.erase_size as usize;
        let used = self.out.len() % erase;
        if used != 0 && used + node.len() > erase {
            self.out.resize(self.out.len() + erase - used, 0xFF);
        }
        if self.out.len().is_multiple_of(erase) && self.opts.cleanmarkers {
            let marker = self.header(0x2003, 12);
            self.out.extend_from_slice(&marker);
        }
        self.out.extend_from_slice(&node);
    }

    /// The most data one node may carry so that it fits in an empty erase block.
    fn max_fragment(&self) -> usize {
        let room = self.opts.erase_size as usize - 12 - INODE_LEN - 4;
        (self.opts.page_size as usize).min(room)
    }

    fn bump(&mut self, ino: u32) -> u32 {
        let st = self.inodes.entry(ino).or_insert(InodeState {
            mode: 0,
            isize: 0,
            version: 0,
        });
        st.version += 1;
        st.version
    }

    /// An inode node of `ino` at its next version carrying `stored` (method `method`), which
    /// expands to `dsize` bytes at `offset`.
    fn inode_node(&mut self, ino: u32, offset: u32, method: u8, stored: &[u8], dsize: u32) {
        let version = self.bump(ino);
        let st = self.inodes.get(&ino).copied().unwrap_or(InodeState {
            mode: 0,
            isize: 0,
            version,
        });
        let mut n = self.header(0xE002, INODE_LEN + stored.len());
        for v in [ino, version, st.mode] {
            n.extend_from_slice(&self.u32(v));
        }
        n.extend_from_slice(&self.u16(0));
        n.extend_from_slice(&self.u16(0));
        for v in [
            st.isize,
            BUILD_TIME,
            BUILD_TIME,
            BUILD_TIME,
            offset,
            stored.len() as u32,
            dsize,
        ] {
            n.extend_from_slice(&self.u32(v));
        }
        n.extend_from_slice(&[method, 0]);
        n.extend_from_slice(&self.u16(0));
        // The node CRC covers the 60 bytes before the two CRCs.
        let node_crc = crc(&n);
        let data_crc = crc(stored);
        n.extend_from_slice(&self.u32(data_crc));
        n.extend_from_slice(&self.u32(node_crc));
        n.extend_from_slice(stored);
        self.emit(n);
    }

    /// A dirent `name` in `parent` pointing at `ino` (0 deletes the name).
    fn dirent(&mut self, parent: u32, name: &str, ino: u32, dtype: u8) {
        let version = self.bump(parent);
        let mut n = self.header(0xE001, DIRENT_LEN + name.len());
        for v in [parent, version, ino, BUILD_TIME] {
            n.extend_from_slice(&self.u32(v));
        }
        n.extend_from_slice(&[name.len().min(255) as u8, dtype, 0, 0]);
        let node_crc = crc(&n);
        n.extend_from_slice(&self.u32(node_crc));
        let name_crc = crc(name.as_bytes());
        n.extend_from_slice(&self.u32(name_crc));
        n.extend_from_slice(name.as_bytes());
        self.emit(n);
    }

    fn new_inode(&mut self, mode: u32, isize: u32) -> u32 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            InodeState {
                mode,
                isize,
                version: 0,
            },
        );
        ino
    }

    fn dtype(mode: u32) -> u8 {
        ((mode & S_IFMT) >> 12) as u8
    }

    /// Creates directory `name` in `parent`; returns its inode number.
    pub fn dir(&mut self, parent: u32, name: &str, perm: u32) -> u32 {
        let mode = S_IFDIR | (perm & 0o7777);
        let ino = self.new_inode(mode, 0);
        self.inode_node(ino, 0, compr::NONE, &[], 0);
        self.dirent(parent, name, ino, Self::dtype(mode));
        ino
    }

    /// Creates regular file `name` in `parent` holding `data`; returns its inode number.
    pub fn file(
        &mut self,
        parent: u32,
        name: &str,
        data: &[u8],
        perm: u32,
    ) -> Result<u32, SynthError> {
        let mode = S_IFREG | (perm & 0o7777);
        let ino = self.new_inode(mode, 0);
        if data.is_empty() {
            self.inode_node(ino, 0, compr::NONE, &[], 0);
        } else {
            self.write(ino, 0, data)?;
        }
        self.dirent(parent, name, ino, Self::dtype(mode));
        Ok(ino)
    }

    /// Writes `data` at `offset` of file `ino` as new nodes (a later version of those bytes).
    pub fn write(&mut self, ino: u32, offset: u32, data: &[u8]) -> Result<(), SynthError> {
        let step = self.max_fragment();
        for (k, chunk) in data.chunks(step).enumerate() {
            let at = offset + (k * step) as u32;
            if let Some(st) = self.inodes.get_mut(&ino) {
                st.isize = st.isize.max(at + chunk.len() as u32);
            }
            let (method, stored) = self.opts.compression.apply(chunk)?;
            self.inode_node(ino, at, method, &stored, chunk.len() as u32);
        }
        Ok(())
    }

    /// Sets the size of file `ino`: shrinking writes a node with the new size and no data; growing
    /// writes a hole node (`JFFS2_COMPR_ZERO`), as the kernel's `jffs2_do_setattr` does.
    pub fn truncate(&mut self, ino: u32, size: u32) {
        let old = self.inodes.get(&ino).map_or(0, |s| s.isize);
        if let Some(st) = self.inodes.get_mut(&ino) {
            st.isize = size;
        }
        if size > old {
            self.inode_node(ino, old, compr::ZERO, &[], size - old);
        } else {
            self.inode_node(ino, size, compr::NONE, &[], 0);
        }
    }

    /// Creates symbolic link `name` → `target` in `parent`.
    pub fn symlink(&mut self, parent: u32, name: &str, target: &str) -> u32 {
        let mode = S_IFLNK | 0o777;
        let ino = self.new_inode(mode, target.len() as u32);
        self.inode_node(ino, 0, compr::NONE, target.as_bytes(), target.len() as u32);
        self.dirent(parent, name, ino, Self::dtype(mode));
        ino
    }

    /// Creates a device node (`mode` holds `S_IFCHR` or `S_IFBLK` and permissions) storing the
    /// device number in Linux's `new_encode_dev` form.
    pub fn device(&mut self, parent: u32, name: &str, mode: u32, major: u32, minor: u32) -> u32 {
        let ino = self.new_inode(mode, 0);
        let dev = (minor & 0xFF) | ((major & 0xFFF) << 8) | ((minor & !0xFF) << 12);
        let bytes = self.u32(dev);
        self.inode_node(ino, 0, compr::NONE, &bytes, 4);
        self.dirent(parent, name, ino, Self::dtype(mode));
        ino
    }

    /// Adds another name for inode `ino` (a hard link).
    pub fn link(&mut self, parent: u32, name: &str, ino: u32) {
        let mode = self.inodes.get(&ino).map_or(S_IFREG, |s| s.mode);
        self.dirent(parent, name, ino, Self::dtype(mode));
    }

    /// Deletes `name` from `parent` (a dirent with inode 0 and a newer version).
    pub fn unlink(&mut self, parent: u32, name: &str) {
        self.dirent(parent, name, 0, 0);
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The image, padded with 0xFF to a whole erase block.
    pub fn finish(mut self) -> Vec<u8> {
        let erase = self.opts.erase_size as usize;
        let len = self.out.len().div_ceil(erase) * erase;
        self.out.resize(len, 0xFF);
        self.out
    }
}

/// Writes `rootfs` as a JFFS2 image (what `mkfs.jffs2 -r` would make of the same tree).
pub fn build(rootfs: &Rootfs, opts: Options) -> Result<Vec<u8>, SynthError> {
    let mut w = Writer::new(opts)?;
    let mut dirs: HashMap<&str, u32> = HashMap::new();
    for (path, entry) in rootfs.entries() {
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (dirs.get(p).copied().unwrap_or(ROOT), n),
            None => (ROOT, path),
        };
        let perm = u32::from(entry.mode);
        match &entry.data {
            EntryData::Dir => {
                let ino = w.dir(parent, name, perm);
                dirs.insert(path, ino);
            }
            EntryData::File(data) => {
                w.file(parent, name, data, perm)?;
            }
            EntryData::Symlink(target) => {
                w.symlink(parent, name, target);
            }
        }
    }
    Ok(w.finish())
}
