//! Squashfs 3.x inodes and directory listings. Big-endian images pack their bitfields from the
//! most significant bit, so every packed field is decoded per endianness. Layout: squashfs-tools'
//! `squashfs_compat.h` (`squashfs_*_inode_header_3`, `squashfs_dir_*_3`) and 7-Zip's handler.

use super::legacy::{Body, DirEntry, Fields, Inode, NO_FRAGMENT, file_blocks};
use crate::unpack::UnpackError;
use crate::unpack::bytes::Endian;

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
        mtime: f.u32(4)?,
        number: Some(f.u32(8)?),
        body: Body::Ipc,
    };
    let len = match ty {
        1 => {
            let t = f.u32(16)?;
            let (size, offset) = match e {
                Endian::Little => (t & 0x7FFFF, t >> 19),
                Endian::Big => (t >> 13, t & 0x1FFF),
            };
            inode.body = Body::Dir {
                size,
                block: f.u32(20)?,
                offset: offset as u16,
            };
            28
        }
        8 => {
            let t = f.u32(16)?;
            let t2 = f.u16(19)?;
            let (size, offset) = match e {
                Endian::Little => (t & 0x7FF_FFFF, t2 >> 3),
                Endian::Big => (t >> 5, t2 & 0x1FFF),
            };
            inode.body = Body::Dir {
                size,
                block: f.u32(21)?,
                offset,
            };
            let mut pos = 31usize;
            for _ in 0..f.u16(25)? {
                let name = usize::from(f.u8(pos + 8)?) + 1;
                pos = pos.saturating_add(9 + name);
            }
            f.bytes(0, pos)?;
            pos
        }
        2 | 9 => {
            let (start, frag, frag_offset, size, header) = if ty == 2 {
                (
                    f.u64(12)?,
                    f.u32(20)?,
                    f.u32(24)?,
                    u64::from(f.u32(28)?),
                    32,
                )
            } else {
                (f.u64(16)?, f.u32(24)?, f.u32(28)?, f.u64(32)?, 40)
            };
            let blocks = file_blocks(&f, header, size, frag, block_log)?;
            let len = header + blocks.len() * 4;
            inode.body = Body::File {
                start,
                fragment: (frag != NO_FRAGMENT).then_some((frag, frag_offset)),
                size,
                blocks,
            };
            len
        }
        3 => {
            let n = usize::from(f.u16(16)?);
            inode.body = Body::Symlink(super::legacy::symlink_target(&f, 18, n)?);
            18 + n
        }
        4 | 5 => {
            inode.body = Body::Device(u32::from(f.u16(16)?));
            18
        }
        6 | 7 => 16,
        other => {
            return Err(UnpackError::Corrupt(format!(
                "squashfs 3: inode type {other}"
            )));
        }
    };
    Ok((inode, len))
}

/// Parses a directory listing (headers of up to 256 entries, then the entries).
pub(super) fn listing(p: &[u8], e: Endian) -> Result<Vec<DirEntry>, UnpackError> {
    let f = Fields { p, e };
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < p.len() {
        let count = usize::from(f.u8(pos)?) + 1;
        let block = f.u32(pos + 1)?;
        pos += 9;
        for _ in 0..count {
            let t = f.u16(pos)?;
            let offset = match e {
                Endian::Little => t & 0x1FFF,
                Endian::Big => t >> 3,
            };
            let n = usize::from(f.u8(pos + 2)?) + 1;
            let name = f.bytes(pos + 5, n)?.to_vec();
            pos += 5 + n;
            out.push(DirEntry {
                name,
                block,
                offset,
            });
        }
    }
    Ok(out)
}
