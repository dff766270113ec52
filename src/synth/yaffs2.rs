//! YAFFS2 writer: object headers and data chunks with packed tags in the spare area (at a chosen
//! offset) or in-band, either byte order, laid out as mkyaffs2image lays them out, plus the
//! low-level calls that rewrite or delete objects, for round-trip and log-replay tests.

use std::collections::HashMap;

use super::SynthError;

/// Where the packed tags of each page go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tags {
    /// In a spare area of `size` bytes after each page, `offset` bytes in (2 leaves room for the
    /// bad-block marker, as the Linux MTD layouts do).
    Spare {
        /// Spare bytes per page.
        size: usize,
        /// Offset of the tags inside the spare area.
        offset: usize,
    },
    /// In the last 16 bytes of each page (no spare area).
    Inband,
}

/// NAND geometry and byte order of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Page (chunk) size in bytes.
    pub page: usize,
    /// Tag placement.
    pub tags: Tags,
    /// Big-endian headers and tags.
    pub big_endian: bool,
    /// Pages per erase block (each block gets the next sequence number).
    pub pages_per_block: usize,
}

impl Geometry {
    /// 2 KiB pages with a 64-byte spare, tags after the bad-block marker: common camera NAND.
    pub fn nand2k(big_endian: bool) -> Self {
        Self {
            page: 2048,
            tags: Tags::Spare {
                size: 64,
                offset: 2,
            },
            big_endian,
            pages_per_block: 64,
        }
    }

    fn chunk_bytes(&self) -> usize {
        match self.tags {
            Tags::Spare { .. } => self.page,
            Tags::Inband => self.page - 16,
        }
    }
}

/// An object's type and what its header carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file of the given size.
    File(u64),
    /// A symbolic link to the given target.
    Symlink(Vec<u8>),
    /// A directory.
    Dir,
    /// A hard link to the object with the given id.
    Hardlink(u32),
    /// A device, FIFO or socket: full mode (with type bits) and Linux `dev_t`.
    Special {
        /// `st_mode` including the file type.
        mode: u32,
        /// `st_rdev`.
        rdev: u32,
    },
}

/// An image being written, page by page.
#[derive(Debug)]
pub struct Writer {
    geo: Geometry,
    img: Vec<u8>,
    seq: u32,
    pages_in_block: usize,
}

/// The object id of the root directory.
pub const ROOT: u32 = 1;
/// The pseudo-directory of deleted objects.
pub const DELETED: u32 = 4;

impl Writer {
    /// A writer for `geo` (pages of 512 bytes at least, spare large enough for the tags).
    pub fn new(geo: Geometry) -> Result<Self, SynthError> {
        let ok = match geo.tags {
            Tags::Spare { size, offset } => offset + 16 <= size,
            Tags::Inband => true,
        };
        if !ok || geo.page < 512 || geo.pages_per_block == 0 {
            return Err(SynthError::Invalid(format!("yaffs2 geometry {geo:?}")));
        }
        Ok(Self {
            geo,
            img: Vec::new(),
            seq: 0x1000,
            pages_in_block: 0,
        })
    }

    fn word(&self, v: u32) -> [u8; 4] {
        if self.geo.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn page(&mut self, body: &[u8], obj: u32, chunk: u32, n_bytes: u32) {
        if self.pages_in_block == self.geo.pages_per_block {
            self.seq += 1;
            self.pages_in_block = 0;
        }
        self.pages_in_block += 1;
        let mut page = vec![0xFFu8; self.geo.page];
        let n = body.len().min(self.geo.chunk_bytes());
        if let (Some(dst), Some(src)) = (page.get_mut(..n), body.get(..n)) {
            dst.copy_from_slice(src);
        }
        let mut tags = Vec::with_capacity(16);
        for v in [self.seq, obj, chunk, n_bytes] {
            tags.extend_from_slice(&self.word(v));
        }
        match self.geo.tags {
            Tags::Spare { size, offset } => {
                let mut spare = vec![0xFFu8; size];
                if let Some(dst) = spare.get_mut(offset..offset + 16) {
                    dst.copy_from_slice(&tags);
                }
                self.img.extend_from_slice(&page);
                self.img.extend_from_slice(&spare);
            }
            Tags::Inband => {
                let at = self.geo.page - 16;
                if let Some(dst) = page.get_mut(at..) {
                    dst.copy_from_slice(&tags);
                }
                self.img.extend_from_slice(&page);
            }
        }
    }

    /// Writes an object header for object `id` in directory `parent`.
    pub fn header(&mut self, id: u32, parent: u32, name: &[u8], kind: &Kind, mode: u32) {
        let mut h = vec![0u8; 512];
        let (ty, full_mode) = match kind {
            Kind::File(_) => (1u32, 0o100000 | mode),
            Kind::Symlink(_) => (2, 0o120000 | mode),
            Kind::Dir => (3, 0o040000 | mode),
            Kind::Hardlink(_) => (4, 0),
            Kind::Special { mode, .. } => (5, *mode),
        };
        let w = |v: u32| self.word(v);
        let mut put = |at: usize, b: &[u8]| {
            if let Some(dst) = h.get_mut(at..at + b.len()) {
                dst.copy_from_slice(b);
            }
        };
        put(0, &w(ty));
        put(4, &w(parent));
        put(8, &[0xFF, 0xFF]);
        put(10, name.get(..255).unwrap_or(name));
        put(0x10A, &[0xFF, 0xFF]);
        put(0x10C, &w(full_mode));
        put(0x124, &[0xFF; 4]);
        put(0x128, &[0xFF; 4]);
        put(0x12C, &[0xFF; 160]);
        put(0x1F0, &[0xFF; 4]);
        match kind {
            Kind::File(size) => {
                put(0x124, &w(*size as u32));
                put(0x1F0, &w((*size >> 32) as u32));
            }
            Kind::Symlink(t) => {
                let mut a = t.get(..159).unwrap_or(t).to_vec();
                a.push(0);
                put(0x12C, &a);
            }
            Kind::Hardlink(to) => put(0x128, &w(*to)),
            Kind::Special { rdev, .. } => put(0x1CC, &w(*rdev)),
            Kind::Dir => {}
        }
        self.page(&h, id, 0, 0);
    }

    /// Writes data chunk `chunk` (from 1) of object `id`.
    pub fn data(&mut self, id: u32, chunk: u32, bytes: &[u8]) {
        self.page(bytes, id, chunk, bytes.len() as u32);
    }

    /// Writes a file's header and all its data chunks.
    pub fn file(&mut self, id: u32, parent: u32, name: &[u8], data: &[u8], mode: u32) {
        self.header(id, parent, name, &Kind::File(data.len() as u64), mode);
        for (i, c) in data.chunks(self.geo.chunk_bytes()).enumerate() {
            self.data(id, i as u32 + 1, c);
        }
    }

    /// Starts a new erase block (the next pages carry a higher sequence number).
    pub fn next_block(&mut self) {
        while self.pages_in_block != 0 && self.pages_in_block < self.geo.pages_per_block {
            self.erased_page();
        }
    }

    fn erased_page(&mut self) {
        let stride = match self.geo.tags {
            Tags::Spare { size, .. } => self.geo.page + size,
            Tags::Inband => self.geo.page,
        };
        self.img.resize(self.img.len() + stride, 0xFF);
        self.pages_in_block += 1;
    }

    /// The image, its last block filled with erased pages.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_block();
        self.img
    }
}

/// One entry of an image built by [`build`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Yaffs2Node {
    /// A directory (parents of other entries are created implicitly).
    Dir,
    /// A regular file with mode bits.
    File(Vec<u8>, u32),
    /// A symbolic link.
    Symlink(Vec<u8>),
    /// A hard link to the entry at another path.
    Hardlink(String),
    /// A device, FIFO or socket (full mode with type bits, Linux `dev_t`).
    Special(u32, u32),
}

/// Writes an image holding `entries` (paths relative to the root, `/`-separated; a hard link's
/// target must come before it), with object ids from 257 as mkyaffs2image numbers them.
pub fn build(geo: Geometry, entries: &[(&str, Yaffs2Node)]) -> Result<Vec<u8>, SynthError> {
    let mut w = Writer::new(geo)?;
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut next = 257u32;
    for (path, node) in entries {
        let parts: Vec<&str> = path.split('/').collect();
        let mut parent = ROOT;
        let mut prefix = String::new();
        for (i, part) in parts.iter().enumerate() {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let last = i + 1 == parts.len();
            if let Some(&id) = ids.get(&prefix) {
                if last {
                    return Err(SynthError::Invalid(format!("{path} listed twice")));
                }
                parent = id;
                continue;
            }
            let id = next;
            next += 1;
            ids.insert(prefix.clone(), id);
            let name = part.as_bytes();
            match (last, node) {
                (false, _) | (true, Yaffs2Node::Dir) => {
                    w.header(id, parent, name, &Kind::Dir, 0o755)
                }
                (true, Yaffs2Node::File(data, mode)) => w.file(id, parent, name, data, *mode),
                (true, Yaffs2Node::Symlink(t)) => {
                    w.header(id, parent, name, &Kind::Symlink(t.clone()), 0o777)
                }
                (true, Yaffs2Node::Hardlink(t)) => {
                    let to = *ids
                        .get(t)
                        .ok_or_else(|| SynthError::Invalid(format!("link to unknown {t}")))?;
                    w.header(id, parent, name, &Kind::Hardlink(to), 0)
                }
                (true, Yaffs2Node::Special(mode, rdev)) => w.header(
                    id,
                    parent,
                    name,
                    &Kind::Special {
                        mode: *mode,
                        rdev: *rdev,
                    },
                    0,
                ),
            }
            parent = id;
        }
    }
    Ok(w.finish())
}
