//! ext2, ext3 and ext4, read-only: the superblock is checked here (detection, extent = block
//! count × block size), the tree is read by the `ext4-view` crate over the image's bytes, walked
//! breadth first with every entry, file size and step charged to the budget.

use std::collections::VecDeque;

use bytes::Bytes;
use ext4_view::{Ext4, Ext4Read, FileType};

use super::{Ctx, Format, Magic, path_escapes};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{le16, le32};
use crate::unpack::tree::{Child, EntryKind, Unpacked};

/// ext2/3/4.
pub struct Ext;

/// The superblock sits 1 KiB into the filesystem; its magic 0x38 bytes into it.
const SB: u64 = 1024;
const MAGIC_AT: usize = 0x438;
/// Deepest directory nesting walked (a deeper tree is a directory cycle).
const MAX_DEPTH: usize = 128;
/// Bytes read from a file per step (the time budget is checked between steps).
const READ_STEP: usize = 1 << 20;

fn corrupt(what: impl std::fmt::Display) -> UnpackError {
    UnpackError::Corrupt(format!("ext: {what}"))
}

/// What the superblock says.
#[derive(Clone, Copy, Debug)]
struct Superblock {
    block_size: u64,
    blocks: u64,
    /// `ext2`, `ext3` (a journal) or `ext4` (extents, 64-bit or flex groups).
    version: &'static str,
    /// The filesystem's size in bytes.
    size: u64,
}

fn superblock(data: &[u8]) -> Option<Superblock> {
    let r32 = |at: u64| le32(data, SB + at, "").ok();
    let r16 = |at: u64| le16(data, SB + at, "").ok();
    if r16(0x38)? != 0xEF53 {
        return None;
    }
    let inodes = r32(0)?;
    let log = r32(0x18)?;
    let first_data_block = r32(0x14)?;
    let blocks_per_group = r32(0x20)?;
    let inodes_per_group = r32(0x28)?;
    let rev = r32(0x4C)?;
    if log > 6 || inodes == 0 || inodes_per_group == 0 || rev > 1 {
        return None;
    }
    let block_size = 1024u64 << log;
    if u64::from(blocks_per_group) == 0 || u64::from(blocks_per_group) > 8 * block_size {
        return None;
    }
    if u64::from(first_data_block) != u64::from(block_size == 1024) {
        return None;
    }
    let compat = r32(0x5C)?;
    let incompat = if rev == 1 { r32(0x60)? } else { 0 };
    if rev == 1 {
        let inode_size = u64::from(r16(0x58)?);
        if inode_size < 128 || !inode_size.is_power_of_two() || inode_size > block_size {
            return None;
        }
    }
    let mut blocks = u64::from(r32(4)?);
    // INCOMPAT_64BIT: the high half of the block count.
    if incompat & 0x80 != 0 {
        blocks |= u64::from(r32(0x150)?) << 32;
    }
    if blocks == 0 {
        return None;
    }
    // INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG; COMPAT_HAS_JOURNAL.
    let version = if incompat & (0x40 | 0x80 | 0x200) != 0 {
        "ext4"
    } else if compat & 0x4 != 0 {
        "ext3"
    } else {
        "ext2"
    };
    Some(Superblock {
        block_size,
        blocks,
        version,
        size: blocks.checked_mul(block_size)?,
    })
}

/// The image's bytes as `ext4-view` reads them.
struct Image(Bytes);

impl Ext4Read for Image {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        let src = crate::unpack::bytes::slice(&self.0, start_byte, dst.len() as u64, "ext read")?;
        dst.copy_from_slice(src);
        Ok(())
    }
}

fn ext_err(e: ext4_view::Ext4Error) -> UnpackError {
    corrupt(e)
}

impl Format for Ext {
    /// An ext file system starts on a disk sector (its superblock sits 1024 bytes in).
    fn carve_alignment(&self) -> usize {
        512
    }

    fn name(&self) -> &'static str {
        "ext"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic {
            bytes: &[0x53, 0xEF],
            offset: MAGIC_AT,
        }];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        superblock(data).is_some()
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let sb = superblock(data).ok_or_else(|| corrupt("no valid superblock"))?;
        if sb.size > data.len() as u64 {
            return Err(UnpackError::Truncated(format!(
                "ext: superblock says {} blocks of {} bytes, {} bytes present",
                sb.blocks,
                sb.block_size,
                data.len()
            )));
        }
        let end = usize::try_from(sb.size).map_err(|_| corrupt("size"))?;
        let fs = Ext4::load(Box::new(Image(data.slice(..end)))).map_err(ext_err)?;
        let label = fs.label().display().to_string();

        let mut children = Vec::new();
        let mut error = None;
        let mut queue: VecDeque<(ext4_view::PathBuf, usize)> =
            VecDeque::from([(ext4_view::PathBuf::new("/"), 0)]);
        'walk: while let Some((dir, depth)) = queue.pop_front() {
            ctx.check()?;
            let entries = match fs.read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    error = Some(ext_err(e));
                    break;
                }
            };
            for entry in entries {
                ctx.check()?;
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        error = Some(ext_err(e));
                        break 'walk;
                    }
                };
                let name = entry.file_name();
                let name = name.as_ref();
                if name == b"." || name == b".." {
                    continue;
                }
                ctx.entries(1)?;
                let path = entry.path();
                let rel = path
                    .as_ref()
                    .strip_prefix(b"/")
                    .unwrap_or(path.as_ref())
                    .to_vec();
                let child = match entry.metadata() {
                    Ok(meta) => {
                        let mode = u32::from(meta.mode());
                        match meta.file_type() {
                            FileType::Directory => {
                                if depth + 1 >= MAX_DEPTH {
                                    error = Some(corrupt(format!(
                                        "directories nested deeper than {MAX_DEPTH} (a cycle?)"
                                    )));
                                    break 'walk;
                                }
                                queue.push_back((path.clone(), depth + 1));
                                Child::dir(rel).with_mode(0o040000 | mode)
                            }
                            FileType::Regular => match read_file(&fs, &path, meta.len(), ctx) {
                                Ok(b) => Child::file(rel, b),
                                Err(e @ UnpackError::Limit(_)) => return Err(e),
                                Err(e) => Child::file(rel, Bytes::new()).with_error(e),
                            }
                            .with_mode(0o100000 | mode),
                            FileType::Symlink => match fs.read_link(&path) {
                                Ok(t) => {
                                    let t = t.as_ref().to_vec();
                                    Child::symlink(rel, t.clone()).with_meta(
                                        "target",
                                        String::from_utf8_lossy(&t).into_owned(),
                                    )
                                }
                                Err(e) => Child::symlink(rel, Vec::new()).with_error(ext_err(e)),
                            }
                            .with_mode(0o120000 | mode),
                            other => {
                                let ty = match other {
                                    FileType::BlockDevice => 0o060000,
                                    FileType::CharacterDevice => 0o020000,
                                    FileType::Fifo => 0o010000,
                                    _ => 0o140000,
                                };
                                Child::new(rel, EntryKind::Device, Bytes::new())
                                    .with_mode(ty | mode)
                            }
                        }
                    }
                    Err(e) => Child::file(rel, Bytes::new()).with_error(ext_err(e)),
                };
                let child = if path_escapes(name) || name.contains(&b'/') {
                    child.with_meta("unsafe_path", true)
                } else {
                    child
                };
                children.push(child);
            }
        }
        let mut out = Unpacked::new(sb.size)
            .meta("version", sb.version)
            .meta("block_size", sb.block_size)
            .meta("blocks", sb.blocks)
            .meta("label", label);
        out.children = children;
        if let Some(e) = error {
            out = out.partial(e);
        }
        Ok(out)
    }
}

/// Reads a whole file after charging its size to the budget.
fn read_file(
    fs: &Ext4,
    path: &ext4_view::PathBuf,
    len: u64,
    ctx: &Ctx<'_>,
) -> Result<Bytes, UnpackError> {
    ctx.claimed_size(len)?;
    ctx.output(len)?;
    let mut file = fs.open(path).map_err(ext_err)?;
    let mut out = vec![0u8; usize::try_from(len).map_err(|_| corrupt("file size"))?];
    let mut at = 0usize;
    while at < out.len() {
        ctx.check()?;
        let end = at.saturating_add(READ_STEP).min(out.len());
        let buf = out.get_mut(at..end).ok_or_else(|| corrupt("read"))?;
        let n = file.read_bytes(buf).map_err(ext_err)?;
        if n == 0 {
            return Err(UnpackError::Truncated(format!(
                "ext: file ended at {at} of {len} bytes"
            )));
        }
        at += n;
    }
    Ok(Bytes::from(out))
}
