//! Squashfs 2.x inodes and directory listings: no inode numbers, 24-bit directory block
//! addresses, 32-bit fragment pointers; bitfields decoded per endianness. Layout: squashfs-tools'
//! `squashfs_compat.h` (`squashfs_*_inode_header_2`, `squashfs_dir_*_2`) and 7-Zip's handler.

use super::legacy::{Body, DirEntry, Fields, Inode, NO_FRAGMENT, file_blocks};
use crate::unpack::UnpackError;
use crate::unpack::bytes::Endian;

/// A 24-bit field stored in the three bytes after `off` of a 32-bit read at `off`.
fn low24(f: &Fields<'_>, off: usize) -> Result<u32, UnpackError> {
    let t = f.u32(off)?;
    Ok(match f.e {
        Endian::Little => t >> 8,
        Endian::Big => t & 0xFF_FFFF,
    })
}

/// Parses the inode at the start of `p`, returning it and its length in bytes.
pub(super) fn inode(p: &[u8], e: Endian, block_log: u16) -> Result<(Inode, usize), UnpackError> {
    let f = Fields { p, e };
    let t = f.u16(0)?;
    let (ty, mode) = match e {
        Endian::Little => ((t & 0xF) as u8, t >> 4),
        Endian::Big => ((t >> 12) as u8, t & 0xFFF),
    };
    let mut inode = Inode {
        ty,
        mode,
        uid: f.u8(2)?,
        gid: f.u8(3)?,
        mtime: 0,
        number: None,
        body: Body::Ipc,
    };
    let len = match ty {
        1 => {
            let t = f.u32(4)?;
            let (size, offset) = match e {
                Endian::Little => (t & 0x7FFFF, t >> 19),
                Endian::Big => (t >> 13, t & 0x1FFF),
            };
            inode.mtime = f.u32(8)?;
            inode.body = Body::Dir {
                size,
                block: low24(&f, 11)?,
                offset: offset as u16,
            };
            15
        }
        8 => {
            let t = f.u32(4)?;
            let t2 = f.u16(7)?;
            let (size, offset) = match e {
                Endian::Little => (t & 0x7FF_FFFF, t2 >> 3),
                Endian::Big => (t >> 5, t2 & 0x1FFF),
            };
            inode.mtime = f.u32(9)?;
            inode.body = Body::Dir {
                size,
                block: low24(&f, 12)?,
                offset,
            };
            let mut pos = 18usize;
            for _ in 0..f.u16(16)? {
                let name = usize::from(f.u8(pos + 7)?) + 1;
                pos = pos.saturating_add(8 + name);
            }
            f.bytes(0, pos)?;
            pos
        }
        2 => {
            inode.mtime = f.u32(4)?;
            let start = u64::from(f.u32(8)?);
            let frag = f.u32(12)?;
            let frag_offset = f.u32(16)?;
            let size = u64::from(f.u32(20)?);
            let blocks = file_blocks(&f, 24, size, frag, block_log)?;
            let len = 24 + blocks.len() * 4;
            inode.body = Body::File {
                start,
                fragment: (frag != NO_FRAGMENT).then_some((frag, frag_offset)),
                size,
                blocks,
            };
            len
        }
        3 => {
            let n = usize::from(f.u16(4)?);
            inode.body = Body::Symlink(super::legacy::symlink_target(&f, 6, n)?);
            6 + n
        }
        4 | 5 => {
            inode.body = Body::Device(u32::from(f.u16(4)?));
            6
        }
        6 | 7 => 4,
        other => {
            return Err(UnpackError::Corrupt(format!(
                "squashfs 2: inode type {other}"
            )));
        }
    };
    Ok((inode, len))
}

/// Parses a directory listing (4-byte headers of count and 24-bit block, then the entries).
pub(super) fn listing(p: &[u8], e: Endian) -> Result<Vec<DirEntry>, UnpackError> {
    let f = Fields { p, e };
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < p.len() {
        let count = usize::from(f.u8(pos)?) + 1;
        let t = f.u32(pos)?;
        let block = match e {
            Endian::Little => t >> 8,
            Endian::Big => t & 0xFF_FFFF,
        };
        pos += 4;
        for _ in 0..count {
            let t = f.u16(pos)?;
            let offset = match e {
                Endian::Little => t & 0x1FFF,
                Endian::Big => t >> 3,
            };
            let n = usize::from(f.u8(pos + 2)?) + 1;
            let name = f.bytes(pos + 3, n)?.to_vec();
            pos += 3 + n;
            out.push(DirEntry {
                name,
                block,
                offset,
            });
        }
    }
    Ok(out)
}
