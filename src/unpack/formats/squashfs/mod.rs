//! SquashFS. Versions 2 and 3 (both endiannesses, zlib and vendor LZMA) are read by our own
//! reader (`legacy`, `v2`, `v3`, [`lzma`]); version 4 (little-endian, big-endian and AVM's
//! big-endian with little-endian metadata lengths) is parsed with the backhand crate (superblock,
//! inode and directory tables, fragment and id tables); file data is decompressed here, in
//! parallel, through the shared budget.
//!
//! Every compressor reaches backhand through our own [`CompressionAction`] ([`Codecs`]), so its
//! metadata reads are bounded too and LZO (our own decoder, [`crate::unpack::lzo`]) and LZMA
//! (the standard and the vendor block layouts, [`lzma`]) work without backhand's GPL `lzo`
//! feature. Before backhand sees an image its superblock is checked against the bytes present and
//! the metadata blocks are counted, so a lying header cannot make it allocate or loop. Version 1
//! is recognised and reported as unsupported. Layout: squashfs-tools' `squashfs_fs.h` and the
//! kernel's `Documentation/filesystems/squashfs.rst`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Cursor;

use backhand::compression::{CompressionAction, Compressor};
use backhand::kind::{self, Kind};
use backhand::v4::inode::{Inode, InodeInner};
use backhand::{BackhandError, DataSize, FilesystemCompressor, SuperBlock};
use bytes::Bytes;
use rayon::prelude::*;

use super::{Ctx, Format, Magic};

mod legacy;
pub mod lzma;
mod v2;
mod v3;
use crate::unpack::bytes::{Endian, Reader};
use crate::unpack::lzo;
use crate::unpack::tree::{Child, EntryKind, Unpacked};
use crate::unpack::{LimitError, UnpackError};

/// SquashFS (all versions are recognised; version 4 is read).
pub struct Squashfs;

/// Size of the version 4 superblock.
const SUPERBLOCK_LEN: u64 = 96;
/// Largest uncompressed metadata block.
const METADATA_MAX: usize = 8192;
/// `frag_index` of a file without a fragment.
const NO_FRAGMENT: u32 = 0xFFFF_FFFF;
/// A table pointer that is not set.
const NOT_SET: u64 = u64::MAX;
/// Memory an xz or lzma block decoder may use (squashfs dictionaries are at most 1 MiB).
const LZMA_MEMLIMIT: u64 = 64 << 20;
/// Files with more blocks than this have their blocks decompressed in parallel.
const PARALLEL_BLOCKS: usize = 8;
/// Flag: an NFS export table is present.
const FLAG_EXPORTABLE: u16 = 0x0080;

const S_IFIFO: u32 = 0o010000;
const S_IFCHR: u32 = 0o020000;
const S_IFDIR: u32 = 0o040000;
const S_IFBLK: u32 = 0o060000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFSOCK: u32 = 0o140000;

/// Name of a squashfs 4 compressor id.
fn compressor_name(id: u16) -> &'static str {
    match id {
        1 => "gzip",
        2 => "lzma",
        3 => "lzo",
        4 => "xz",
        5 => "lz4",
        6 => "zstd",
        _ => "unknown",
    }
}

fn compressor_of(id: u16) -> Option<Compressor> {
    Some(match id {
        0 => Compressor::Uncompressed,
        1 => Compressor::Gzip,
        2 => Compressor::Lzma,
        3 => Compressor::Lzo,
        4 => Compressor::Xz,
        5 => Compressor::Lz4,
        6 => Compressor::Zstd,
        _ => return None,
    })
}

fn corrupt(what: impl std::fmt::Display) -> UnpackError {
    UnpackError::Corrupt(format!("squashfs: {what}"))
}

/// Decompresses one squashfs block (data or metadata) into at most `max_out` bytes.
pub fn decompress_block(
    compressor: Compressor,
    input: &[u8],
    max_out: usize,
) -> Result<Vec<u8>, UnpackError> {
    let mut out = Vec::new();
    decompress_block_into(compressor, input, max_out, &mut out)?;
    Ok(out)
}

/// As [`decompress_block`], appending to `out` (gzip and xz decode straight into its spare
/// room, so file data is not copied a second time). On error `out` is left as it was.
pub fn decompress_block_into(
    compressor: Compressor,
    input: &[u8],
    max_out: usize,
    out: &mut Vec<u8>,
) -> Result<(), UnpackError> {
    let start = out.len();
    let too_big = || corrupt(format!("block expands past {max_out} bytes"));
    // gzip and xz fill the vector's spare capacity, which may exceed `max_out` when `out` was
    // reserved for a whole file: an overlong block is caught by the length check below.
    let result = match compressor {
        Compressor::Uncompressed => {
            if input.len() > max_out {
                Err(too_big())
            } else {
                out.extend_from_slice(input);
                Ok(())
            }
        }
        Compressor::Gzip => {
            out.reserve(max_out);
            let mut z = flate2::Decompress::new(true);
            match z.decompress_vec(input, out, flate2::FlushDecompress::Finish) {
                Ok(flate2::Status::StreamEnd) => Ok(()),
                Ok(_) if out.len() - start >= max_out => Err(too_big()),
                Ok(_) => Err(corrupt("zlib block ends early")),
                Err(e) => Err(corrupt(format!("zlib: {e}"))),
            }
        }
        Compressor::Xz => {
            out.reserve(max_out);
            match liblzma::stream::Stream::new_stream_decoder(LZMA_MEMLIMIT, 0) {
                Err(e) => Err(corrupt(format!("xz: {e}"))),
                Ok(mut stream) => {
                    match stream.process_vec(input, out, liblzma::stream::Action::Finish) {
                        Ok(liblzma::stream::Status::StreamEnd) => Ok(()),
                        Ok(_) if out.len() - start >= max_out => Err(too_big()),
                        Ok(_) => Err(corrupt("xz block ends early")),
                        Err(e) => Err(corrupt(format!("xz: {e}"))),
                    }
                }
            }
        }
        // The standard 13-byte header or a vendor layout (5-byte header, or none).
        Compressor::Lzma => {
            let dict = u32::try_from(max_out).unwrap_or(u32::MAX);
            lzma::decode_any(input, max_out, None, dict).map(|(_, d)| out.extend_from_slice(&d))
        }
        Compressor::Lzo => lzo::decompress(input, max_out).map(|d| out.extend_from_slice(&d)),
        Compressor::Lz4 => {
            let mut buf = vec![0u8; max_out];
            lz4_flex::block::decompress_into(input, &mut buf)
                .map_err(|e| corrupt(format!("lz4: {e}")))
                .map(|n| out.extend_from_slice(buf.get(..n).unwrap_or_default()))
        }
        Compressor::Zstd => {
            let mut buf = Vec::with_capacity(max_out);
            zstd::bulk::Decompressor::new()
                .and_then(|mut z| z.decompress_to_buffer(input, &mut buf))
                .map_err(|e| corrupt(format!("zstd: {e}")))
                .map(|_| out.extend_from_slice(&buf))
        }
    };
    if result.is_ok() && out.len() - start > max_out {
        out.truncate(start);
        return Err(too_big());
    }
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// The decompressors handed to backhand for its metadata reads: every block is bounded to one
/// metadata block, LZO and LZMA are ours, and nothing is ever compressed.
pub struct Codecs;

/// The one instance backhand's [`Kind`] refers to.
pub static CODECS: Codecs = Codecs;

impl CompressionAction for Codecs {
    type Error = BackhandError;
    type Compressor = Compressor;
    type FilesystemCompressor = FilesystemCompressor;
    type SuperBlock = SuperBlock;

    fn decompress(
        &self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        compressor: Compressor,
    ) -> Result<(), BackhandError> {
        let data = decompress_block(compressor, bytes, METADATA_MAX)
            .map_err(|_| BackhandError::CorruptedOrInvalidSquashfs)?;
        out.extend_from_slice(&data);
        Ok(())
    }

    fn compress(
        &self,
        _bytes: &[u8],
        _fc: FilesystemCompressor,
        _block_size: u32,
    ) -> Result<Vec<u8>, BackhandError> {
        Err(BackhandError::UnsupportedCompression(
            "fwsim reads squashfs only".into(),
        ))
    }
}

/// The fields of a version 4 superblock that fwsim checks or reports.
#[derive(Clone, Copy, Debug)]
struct Super {
    endian: Endian,
    inode_count: u32,
    mod_time: u32,
    block_size: u32,
    frag_count: u32,
    compressor: u16,
    block_log: u16,
    flags: u16,
    id_count: u16,
    bytes_used: u64,
    id_table: u64,
    xattr_table: u64,
    inode_table: u64,
    dir_table: u64,
    frag_table: u64,
    export_table: u64,
}

/// Endianness from the magic, and the version fields.
fn version(data: &[u8]) -> Option<(Endian, u16, u16)> {
    let endian = match data.get(..4)? {
        b"hsqs" => Endian::Little,
        b"sqsh" => Endian::Big,
        _ => return None,
    };
    let mut r = Reader::with_endian(data, endian);
    r.seek(28, "").ok()?;
    let major = r.u16("").ok()?;
    let minor = r.u16("").ok()?;
    Some((endian, major, minor))
}

fn endian_name(e: Endian) -> &'static str {
    match e {
        Endian::Little => "little-endian",
        Endian::Big => "big-endian",
    }
}

impl Super {
    fn parse(data: &[u8], endian: Endian) -> Result<Self, UnpackError> {
        let mut r = Reader::with_endian(data, endian);
        r.skip(4, "squashfs magic")?;
        let what = "squashfs superblock";
        let inode_count = r.u32(what)?;
        let mod_time = r.u32(what)?;
        let block_size = r.u32(what)?;
        let frag_count = r.u32(what)?;
        let compressor = r.u16(what)?;
        let block_log = r.u16(what)?;
        let flags = r.u16(what)?;
        let id_count = r.u16(what)?;
        r.skip(4, what)?;
        let _root_inode = r.u64(what)?;
        Ok(Super {
            endian,
            inode_count,
            mod_time,
            block_size,
            frag_count,
            compressor,
            block_log,
            flags,
            id_count,
            bytes_used: r.u64(what)?,
            id_table: r.u64(what)?,
            xattr_table: r.u64(what)?,
            inode_table: r.u64(what)?,
            dir_table: r.u64(what)?,
            frag_table: r.u64(what)?,
            export_table: r.u64(what)?,
        })
    }

    /// Structural checks that need no bytes beyond the superblock.
    fn plausible(&self) -> bool {
        self.block_size.is_power_of_two()
            && (4096..=1 << 20).contains(&self.block_size)
            && u32::from(self.block_log) == self.block_size.trailing_zeros()
            && compressor_of(self.compressor).is_some()
            && self.bytes_used >= SUPERBLOCK_LEN
            && self.inode_count > 0
            && self.inode_table < self.dir_table
            && self.dir_table <= self.bytes_used
            && self.id_table < self.bytes_used
            && [self.xattr_table, self.frag_table, self.export_table]
                .iter()
                .all(|&t| t == NOT_SET || t < self.bytes_used)
    }

    /// The extent as squashfs pads it.
    fn extent(&self, data: &[u8]) -> u64 {
        padded_extent(data, self.bytes_used)
    }
}

/// The extent as squashfs pads it: `bytes_used` rounded up to 4 KiB when the padding is there.
fn padded_extent(data: &[u8], bytes_used: u64) -> u64 {
    let padded = bytes_used.div_ceil(4096).saturating_mul(4096);
    let pad = usize::try_from(bytes_used)
        .ok()
        .zip(usize::try_from(padded).ok())
        .and_then(|(a, b)| data.get(a..b));
    match pad {
        Some(p) if p.iter().all(|&b| b == 0) => padded,
        _ => bytes_used,
    }
}

/// Names a squashfs that fwsim does not read, as precisely as the header allows.
fn variant_name(data: &[u8], endian: Endian, major: u16, minor: u16) -> String {
    let comp = if major >= 4 {
        "vendor lzma"
    } else {
        // Versions 1–3 have no compressor field: zlib unless the first block says otherwise.
        let window = data.get(56..512).unwrap_or_default();
        let zlib = window
            .windows(2)
            .any(|w| matches!(w, [0x78, b] if (0x7800 | u16::from(*b)) % 31 == 0));
        let lzma_header = window.windows(3).any(|w| w == [0x5d, 0, 0]);
        if lzma_header || minor > 1 && !zlib {
            "lzma"
        } else if zlib {
            "zlib"
        } else {
            "unknown compression"
        }
    };
    format!("squashfs {major}.{minor} {} ({comp})", endian_name(endian))
}

/// Walks the metadata block headers from `start` to `end`, returning how many blocks there are;
/// `None` when a header is impossible or the walk does not land on `end`.
fn count_metadata(data: &[u8], start: u64, end: u64, len_endian: Endian) -> Option<u64> {
    let mut pos = start;
    let mut blocks = 0u64;
    while pos < end {
        let mut r = Reader::with_endian(data, len_endian);
        r.seek(pos, "").ok()?;
        let raw = r.u16("").ok()?;
        let len = u64::from(raw & 0x7FFF);
        if len == 0 || len > METADATA_MAX as u64 {
            return None;
        }
        pos = pos.checked_add(2 + len)?;
        blocks += 1;
    }
    (pos == end).then_some(blocks)
}

impl Format for Squashfs {
    fn name(&self) -> &'static str {
        "squashfs"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(b"hsqs"), Magic::at0(b"sqsh")];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        match version(data) {
            Some((endian, 4, 0)) => Super::parse(data, endian).is_ok_and(|s| s.plausible()),
            Some((endian, 2 | 3, _)) => legacy::detect(data, endian),
            Some((_, 1, minor)) => minor < 100,
            _ => false,
        }
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let (endian, major, minor) =
            version(data).ok_or_else(|| corrupt("no squashfs superblock"))?;
        if matches!(major, 2 | 3) {
            return legacy::unpack(data, endian, ctx);
        }
        if major != 4 || minor != 0 {
            if data.len() < 96 {
                return Err(UnpackError::Truncated(format!(
                    "squashfs {major}.{minor}: only {} bytes",
                    data.len()
                )));
            }
            return Err(UnpackError::Unsupported(variant_name(
                data, endian, major, minor,
            )));
        }
        let sb = Super::parse(data, endian)?;
        if !sb.plausible() {
            return Err(corrupt("impossible superblock"));
        }
        if (data.len() as u64) < sb.bytes_used {
            return Err(UnpackError::Truncated(format!(
                "squashfs 4.0 {}: superblock says {} bytes, {} present",
                endian_name(endian),
                sb.bytes_used,
                data.len()
            )));
        }
        let compressor = compressor_of(sb.compressor).ok_or_else(|| corrupt("compressor id"))?;
        let image = data.slice(..usize::try_from(sb.bytes_used).map_err(|_| corrupt("size"))?);
        let (kind, len_endian) = choose_kind(&image, &sb)?;
        // A first inode block that does not decode: vendor LZMA, or a damaged image.
        let (stored, block) = first_metadata_block(&image, sb.inode_table, len_endian)?;
        if !stored && let Err(e) = decompress_block(compressor, block, METADATA_MAX) {
            if compressor == Compressor::Lzma {
                return Err(UnpackError::Unsupported(format!(
                    "squashfs 4.0 {} (vendor lzma)",
                    endian_name(endian)
                )));
            }
            return Err(e);
        }

        check_metadata_budget(&image, &sb, compressor, len_endian, ctx)?;

        ctx.check()?;
        let fs =
            backhand::Squashfs::from_reader_with_offset_and_kind(Cursor::new(&image[..]), 0, kind)
                .map_err(|e| corrupt(format!("tables: {e}")))?;
        ctx.check()?;

        let mut out = Unpacked::new(sb.extent(data))
            .meta("version", format!("{major}.{minor}"))
            .meta("endian", endian_name(endian))
            .meta("compressor", compressor_name(sb.compressor))
            .meta("block_size", sb.block_size)
            .meta("inode_count", sb.inode_count)
            .meta("mkfs_time", sb.mod_time)
            .meta("bytes_used", sb.bytes_used);
        if len_endian != endian {
            out = out.meta("variant", "avm");
        }
        let listing = list(&fs, sb.endian, ctx)?;
        out.children = read_files(&image, &fs, &sb, compressor, listing, ctx)?;
        Ok(out)
    }
}

/// The backhand kind for this image and the endianness of its metadata block lengths: AVM's
/// big-endian images store those lengths little-endian.
fn choose_kind(image: &[u8], sb: &Super) -> Result<(Kind, Endian), UnpackError> {
    let fits = |e| count_metadata(image, sb.inode_table, sb.dir_table, e).is_some();
    match sb.endian {
        Endian::Little if fits(Endian::Little) => Ok((Kind::new_v4(&CODECS), Endian::Little)),
        Endian::Big if fits(Endian::Big) => {
            Ok((Kind::new_v4_with_const(&CODECS, kind::BE_V4_0), Endian::Big))
        }
        Endian::Big if fits(Endian::Little) => Ok((
            Kind::new_v4_with_const(&CODECS, kind::AVM_BE_V4_0),
            Endian::Little,
        )),
        _ => Err(corrupt("inode table is not a chain of metadata blocks")),
    }
}

/// Bounds what backhand will read before it reads it: the inode and directory tables must be
/// chains of metadata blocks ending exactly where backhand stops (for the directory table, the
/// first block of the fragment, export or id table, as backhand takes it), every lookup table must
/// fit the image, and all of it, at 8 KiB per block, must fit the blob's expansion allowance.
/// Then the inode table is decompressed and walked once so that no inode claims more block
/// sizes than the table holds (backhand would allocate for the claim before reading it).
fn check_metadata_budget(
    image: &[u8],
    sb: &Super,
    compressor: Compressor,
    len_endian: Endian,
    ctx: &Ctx<'_>,
) -> Result<(), UnpackError> {
    let inode_blocks = count_metadata(image, sb.inode_table, sb.dir_table, len_endian)
        .ok_or_else(|| corrupt("inode table is not a chain of metadata blocks"))?;
    let max_inodes = inode_blocks.saturating_mul(METADATA_MAX as u64) / 20;
    if u64::from(sb.inode_count) > max_inodes {
        return Err(corrupt(format!(
            "{} inodes cannot fit {inode_blocks} metadata blocks",
            sb.inode_count
        )));
    }
    let pointer_at = |table: u64| -> Result<u64, UnpackError> {
        let mut r = Reader::with_endian(image, sb.endian);
        r.seek(table, "squashfs table index")?;
        r.u64("squashfs table index")
    };
    let per_block =
        |entries: u64, size: u64| entries.saturating_mul(size).div_ceil(METADATA_MAX as u64);
    let fragments = sb.frag_count != 0 && sb.frag_table != NOT_SET;
    let exports = sb.flags & FLAG_EXPORTABLE != 0 && sb.export_table != NOT_SET;
    let frag_blocks = if fragments {
        per_block(u64::from(sb.frag_count), 16)
    } else {
        0
    };
    let export_blocks = if exports {
        per_block(u64::from(sb.inode_count), 8)
    } else {
        0
    };
    let id_blocks = per_block(u64::from(sb.id_count), 4);
    // Every table block is at least 3 bytes of the image.
    if frag_blocks
        .saturating_add(export_blocks)
        .saturating_add(id_blocks)
        .saturating_mul(3)
        > sb.bytes_used
    {
        return Err(corrupt("lookup tables larger than the image"));
    }
    let dir_end = if fragments {
        pointer_at(sb.frag_table)?
    } else if exports {
        pointer_at(sb.export_table)?
    } else {
        pointer_at(sb.id_table)?
    };
    let dir_blocks = count_metadata(image, sb.dir_table, dir_end, len_endian)
        .ok_or_else(|| corrupt("directory table is not a chain of metadata blocks"))?;
    let metadata = inode_blocks
        .saturating_add(dir_blocks)
        .saturating_add(frag_blocks)
        .saturating_add(export_blocks)
        .saturating_add(id_blocks)
        .saturating_mul(METADATA_MAX as u64);
    let allowed = ctx.budget().max_expansion(sb.bytes_used);
    if metadata > allowed {
        return Err(UnpackError::Limit(LimitError::Ratio {
            max: ctx.budget().limits().max_ratio,
            input: sb.bytes_used,
        }));
    }
    let table = read_metadata(
        image,
        sb.inode_table,
        sb.dir_table,
        compressor,
        len_endian,
        ctx,
    )?;
    check_inodes(&table, sb)
}

/// Decompresses the chain of metadata blocks from `start` to `end` (already counted).
fn read_metadata(
    image: &[u8],
    start: u64,
    end: u64,
    compressor: Compressor,
    len_endian: Endian,
    ctx: &Ctx<'_>,
) -> Result<Vec<u8>, UnpackError> {
    let mut out = Vec::new();
    let mut r = Reader::with_endian(image, len_endian);
    r.seek(start, "squashfs metadata")?;
    while (r.pos() as u64) < end {
        ctx.check()?;
        let raw = r.u16("squashfs metadata length")?;
        let block = r.bytes(u64::from(raw & 0x7FFF), "squashfs metadata block")?;
        if raw & 0x8000 != 0 {
            out.extend_from_slice(block);
        } else {
            out.extend_from_slice(&decompress_block(compressor, block, METADATA_MAX)?);
        }
    }
    Ok(out)
}

/// Walks the decompressed inode table, checking that each inode's variable part (block sizes,
/// symlink target, directory index) fits in the bytes that remain.
fn check_inodes(table: &[u8], sb: &Super) -> Result<(), UnpackError> {
    let mut r = Reader::with_endian(table, sb.endian);
    let bs = u64::from(sb.block_size);
    let blocks = |size: u64, frag: u32| {
        if frag == NO_FRAGMENT {
            size.div_ceil(bs)
        } else {
            size / bs
        }
    };
    let what = "squashfs inode";
    while r.remaining() > 0 {
        let ty = r.u16(what)?;
        r.skip(14, what)?;
        let variable: u64 = match ty {
            1 => {
                r.skip(16, what)?;
                0
            }
            2 => {
                r.skip(4, what)?;
                let frag = r.u32(what)?;
                r.skip(4, what)?;
                let size = u64::from(r.u32(what)?);
                blocks(size, frag).saturating_mul(4)
            }
            3 | 10 => {
                r.skip(4, what)?;
                let target = u64::from(r.u32(what)?);
                if ty == 10 {
                    target.saturating_add(4)
                } else {
                    target
                }
            }
            4 | 5 => 8,
            6 | 7 => 4,
            8 => {
                r.skip(16, what)?;
                let index_count = r.u16(what)?;
                r.skip(6, what)?;
                for _ in 0..index_count {
                    r.skip(8, what)?;
                    let name = u64::from(r.u32(what)?);
                    r.skip(name.saturating_add(1), what)?;
                }
                0
            }
            9 => {
                r.skip(8, what)?;
                let size = r.u64(what)?;
                r.skip(12, what)?;
                let frag = r.u32(what)?;
                r.skip(8, what)?;
                blocks(size, frag).saturating_mul(4)
            }
            11 | 12 => 12,
            13 | 14 => 8,
            other => return Err(corrupt(format!("inode type {other}"))),
        };
        if variable > r.remaining() as u64 {
            return Err(corrupt(format!(
                "inode of type {ty} claims {variable} bytes, the inode table has {} left",
                r.remaining()
            )));
        }
        r.skip(variable, what)?;
    }
    Ok(())
}

/// The first metadata block at `pos`: (stored uncompressed?, its bytes).
fn first_metadata_block(
    image: &[u8],
    pos: u64,
    len_endian: Endian,
) -> Result<(bool, &[u8]), UnpackError> {
    let mut r = Reader::with_endian(image, len_endian);
    r.seek(pos, "squashfs inode table")?;
    let raw = r.u16("squashfs metadata length")?;
    let block = r.bytes(u64::from(raw & 0x7FFF), "squashfs metadata block")?;
    Ok((raw & 0x8000 != 0, block))
}

/// Where a regular file's data lies.
#[derive(Clone, Debug)]
struct FileData {
    blocks_start: u64,
    file_size: u64,
    block_sizes: Vec<DataSize>,
    fragment: Option<(u32, u32)>,
}

/// One entry of the listing: the child, and for regular files where their data is.
struct Listed {
    child: Child,
    data: Option<(u32, FileData)>,
}

/// Type bits and permissions of an inode.
fn mode_of(inode: &Inode) -> u32 {
    let ty = match &inode.inner {
        InodeInner::BasicDirectory(_) | InodeInner::ExtendedDirectory(_) => S_IFDIR,
        InodeInner::BasicFile(_) | InodeInner::ExtendedFile(_) => S_IFREG,
        InodeInner::BasicSymlink(_) | InodeInner::ExtendedSymlink(_) => S_IFLNK,
        InodeInner::BasicBlockDevice(_) | InodeInner::ExtendedBlockDevice(_) => S_IFBLK,
        InodeInner::BasicCharacterDevice(_) | InodeInner::ExtendedCharacterDevice(_) => S_IFCHR,
        InodeInner::BasicNamedPipe(_) | InodeInner::ExtendedNamedPipe(_) => S_IFIFO,
        InodeInner::BasicSocket(_) | InodeInner::ExtendedSocket(_) => S_IFSOCK,
    };
    ty | u32::from(inode.header.permissions & 0o7777)
}

/// Lists every entry breadth first from the root (a work queue, not recursion), refusing to enter
/// a directory twice.
fn list(
    fs: &backhand::Squashfs<'_>,
    endian: Endian,
    ctx: &Ctx<'_>,
) -> Result<Vec<Listed>, UnpackError> {
    let ids: Vec<u32> = fs.id.iter().map(|i| i.num).collect();
    let mut out: Vec<Listed> = Vec::new();
    let mut seen_dirs: HashSet<u32> = HashSet::new();
    seen_dirs.insert(fs.root_inode.header.inode_number);
    let mut queue: VecDeque<(Vec<u8>, &Inode)> = VecDeque::new();
    queue.push_back((Vec::new(), &fs.root_inode));
    while let Some((dir_path, dir)) = queue.pop_front() {
        ctx.check()?;
        let entries = read_dir(fs, dir, endian)?;
        ctx.entries(entries.len() as u64)?;
        for (name, inode_number) in entries {
            let mut path = dir_path.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            let Some(inode) = fs.inodes.get(&inode_number) else {
                out.push(Listed {
                    child: with_error(
                        Child::new(path, EntryKind::File, Bytes::new()),
                        corrupt(format!("entry names missing inode {inode_number}")),
                    ),
                    data: None,
                });
                continue;
            };
            let h = inode.header;
            let kind = match &inode.inner {
                InodeInner::BasicDirectory(_) | InodeInner::ExtendedDirectory(_) => EntryKind::Dir,
                InodeInner::BasicFile(_) | InodeInner::ExtendedFile(_) => EntryKind::File,
                InodeInner::BasicSymlink(s) => EntryKind::Symlink {
                    target: s.target_path.clone(),
                },
                InodeInner::ExtendedSymlink(s) => EntryKind::Symlink {
                    target: s.target_path.clone(),
                },
                _ => EntryKind::Device,
            };
            let mut child = Child::new(path.clone(), kind, Bytes::new())
                .with_mode(mode_of(inode))
                .with_meta("mtime", h.mtime)
                .with_meta("inode", h.inode_number);
            if let Some(uid) = ids.get(usize::from(h.uid)) {
                child = child.with_meta("uid", *uid);
            }
            if let Some(gid) = ids.get(usize::from(h.gid)) {
                child = child.with_meta("gid", *gid);
            }
            let mut data = None;
            match &inode.inner {
                InodeInner::BasicDirectory(_) | InodeInner::ExtendedDirectory(_) => {
                    if seen_dirs.insert(inode_number) {
                        queue.push_back((path, inode));
                    } else {
                        child = with_error(
                            child,
                            corrupt("directory listed twice (a cycle in the directory table)"),
                        );
                    }
                }
                InodeInner::BasicFile(f) => {
                    data = Some(FileData {
                        blocks_start: u64::from(f.blocks_start),
                        file_size: u64::from(f.file_size),
                        block_sizes: f.block_sizes.clone(),
                        fragment: (f.frag_index != NO_FRAGMENT)
                            .then_some((f.frag_index, f.block_offset)),
                    });
                }
                InodeInner::ExtendedFile(f) => {
                    data = Some(FileData {
                        blocks_start: f.blocks_start,
                        file_size: f.file_size,
                        block_sizes: f.block_sizes.clone(),
                        fragment: (f.frag_index != NO_FRAGMENT)
                            .then_some((f.frag_index, f.block_offset)),
                    });
                }
                InodeInner::BasicSymlink(s) => {
                    child = child.with_meta("target", String::from_utf8_lossy(&s.target_path));
                }
                InodeInner::ExtendedSymlink(s) => {
                    child = child.with_meta("target", String::from_utf8_lossy(&s.target_path));
                }
                InodeInner::BasicBlockDevice(d) | InodeInner::BasicCharacterDevice(d) => {
                    child = child.with_meta("device", device_string(d.device_number));
                }
                InodeInner::ExtendedBlockDevice(d) | InodeInner::ExtendedCharacterDevice(d) => {
                    child = child.with_meta("device", device_string(d.device_number));
                }
                _ => {}
            }
            out.push(Listed {
                child,
                data: data.map(|d| (inode_number, d)),
            });
        }
    }
    Ok(out)
}

/// Whether `e` is a limit shared by the whole run rather than one file's.
pub(crate) fn is_global(e: &UnpackError) -> bool {
    matches!(
        e,
        UnpackError::Limit(
            LimitError::Time { .. } | LimitError::OutputBytes { .. } | LimitError::Entries { .. }
        )
    )
}

fn with_error(mut child: Child, e: UnpackError) -> Child {
    child.error = Some(e);
    child
}

/// `major,minor` of a Linux device number as squashfs stores it.
fn device_string(n: u32) -> String {
    let major = (n >> 8) & 0xFFF;
    let minor = (n & 0xFF) | ((n >> 12) & 0xFFF00);
    format!("{major},{minor}")
}

/// The entries of one directory: (name, inode number).
fn read_dir(
    fs: &backhand::Squashfs<'_>,
    dir: &Inode,
    endian: Endian,
) -> Result<Vec<(Vec<u8>, u32)>, UnpackError> {
    let (block_index, block_offset, file_size) = match &dir.inner {
        InodeInner::BasicDirectory(d) => (
            u64::from(d.block_index),
            u64::from(d.block_offset),
            u64::from(d.file_size),
        ),
        InodeInner::ExtendedDirectory(d) => (
            u64::from(d.block_index),
            u64::from(d.block_offset),
            u64::from(d.file_size),
        ),
        _ => return Err(corrupt("directory entry points at a non-directory")),
    };
    // A directory's size counts 3 bytes more than its listing (the `.` and `..` squashfs omits).
    if file_size <= 3 {
        return Ok(Vec::new());
    }
    let start = fs
        .dir_blocks
        .0
        .get(&block_index)
        .ok_or_else(|| corrupt("directory points outside the directory table"))?;
    let table = &fs.dir_blocks.1;
    let listing = crate::unpack::bytes::slice(
        table,
        start.saturating_add(block_offset),
        file_size - 3,
        "squashfs directory listing",
    )?;
    let mut r = Reader::with_endian(listing, endian);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let count = r.u32("squashfs directory header")?;
        let _start = r.u32("squashfs directory header")?;
        let base = r.u32("squashfs directory header")?;
        if count >= 256 {
            return Err(corrupt("directory header with more than 256 entries"));
        }
        for _ in 0..=count {
            let _offset = r.u16("squashfs directory entry")?;
            let delta = r.u16("squashfs directory entry")? as i16;
            let _ty = r.u16("squashfs directory entry")?;
            let name_len = u64::from(r.u16("squashfs directory entry")?) + 1;
            let name = r.bytes(name_len, "squashfs directory entry name")?;
            let number = i64::from(base) + i64::from(delta);
            let number = u32::try_from(number).map_err(|_| corrupt("inode number"))?;
            out.push((name.to_vec(), number));
        }
    }
    Ok(out)
}

/// Decompresses every regular file's data (in parallel across files and, for large files,
/// across blocks) and returns the finished children in listing order.
fn read_files(
    image: &Bytes,
    fs: &backhand::Squashfs<'_>,
    sb: &Super,
    compressor: Compressor,
    listing: Vec<Listed>,
    ctx: &Ctx<'_>,
) -> Result<Vec<Child>, UnpackError> {
    // Hard links share an inode: decompress each inode once.
    let mut jobs: Vec<&FileData> = Vec::new();
    let mut job_of_inode: HashMap<u32, usize> = HashMap::new();
    let mut job_of_entry: Vec<Option<usize>> = Vec::with_capacity(listing.len());
    let mut claimed = 0u64;
    for l in &listing {
        job_of_entry.push(l.data.as_ref().map(|(inode, d)| {
            *job_of_inode.entry(*inode).or_insert_with(|| {
                jobs.push(d);
                claimed = claimed.saturating_add(d.file_size);
                jobs.len() - 1
            })
        }));
    }
    // What the inodes claim must fit the expansion allowed for this image.
    let limits = ctx.budget().limits();
    let allowed = sb
        .bytes_used
        .saturating_mul(limits.max_ratio)
        .max(limits.ratio_floor_bytes);
    if claimed > allowed {
        return Err(UnpackError::Limit(crate::unpack::LimitError::Ratio {
            max: limits.max_ratio,
            input: sb.bytes_used,
        }));
    }

    // Fragment blocks: each used one is decompressed once.
    let used: HashSet<u32> = jobs
        .iter()
        .filter_map(|d| d.fragment.map(|(i, _)| i))
        .collect();
    let fragments = fs.fragments.as_deref().unwrap_or_default();
    let block_size = usize::try_from(sb.block_size).unwrap_or(1 << 20);
    let frag_data: HashMap<u32, Result<Bytes, UnpackError>> = used
        .into_par_iter()
        .map(|i| {
            let r = (|| {
                ctx.check()?;
                let f = fragments
                    .get(usize::try_from(i).unwrap_or(usize::MAX))
                    .ok_or_else(|| corrupt(format!("fragment {i} not in the table")))?;
                let stored = crate::unpack::bytes::slice(
                    image,
                    f.start,
                    u64::from(f.size.size()),
                    "squashfs fragment block",
                )?;
                let data = if f.size.uncompressed() {
                    stored.to_vec()
                } else {
                    decompress_block(compressor, stored, block_size)?
                };
                Ok(Bytes::from(data))
            })();
            (i, r)
        })
        .collect();

    let contents: Vec<Result<Bytes, UnpackError>> = jobs
        .par_iter()
        .map(|d| read_file(image, d, block_size, compressor, &frag_data, ctx))
        .collect();
    // A shared limit (time, total output, entries) stops the image: the rest would hit it too.
    // A file over its own limits (size, ratio) is an error on that file only.
    for c in &contents {
        if let Err(e) = c
            && is_global(e)
        {
            return Err(e.clone());
        }
    }

    let mut children = Vec::with_capacity(listing.len());
    for (l, job) in listing.into_iter().zip(job_of_entry) {
        let mut child = l.child;
        if let Some(j) = job {
            match contents.get(j) {
                Some(Ok(b)) => child.data = b.clone(),
                Some(Err(e)) => child.error = Some(e.clone()),
                None => {}
            }
        }
        children.push(child);
    }
    Ok(children)
}

/// One file's bytes: its full blocks, then its tail from a fragment.
fn read_file(
    image: &[u8],
    d: &FileData,
    block_size: usize,
    compressor: Compressor,
    fragments: &HashMap<u32, Result<Bytes, UnpackError>>,
    ctx: &Ctx<'_>,
) -> Result<Bytes, UnpackError> {
    ctx.claimed_size(d.file_size)?;
    let bs = block_size as u64;
    // Where each block lies, and how long its output must be.
    let mut pos = d.blocks_start;
    let mut spans = Vec::with_capacity(d.block_sizes.len());
    let mut stored_total = 0u64;
    for (i, s) in d.block_sizes.iter().enumerate() {
        let done = (i as u64).saturating_mul(bs);
        let want = d.file_size.saturating_sub(done).min(bs);
        spans.push((pos, *s, want));
        pos = pos.saturating_add(u64::from(s.size()));
        stored_total = stored_total.saturating_add(u64::from(s.size()));
    }
    let tail_start = (d.block_sizes.len() as u64).saturating_mul(bs);
    let tail_len = d.file_size.saturating_sub(tail_start);
    if tail_len > 0 && d.fragment.is_none() {
        return Err(corrupt(
            "file is longer than its blocks and has no fragment",
        ));
    }
    let block = |(pos, size, want): (u64, DataSize, u64)| -> Result<Vec<u8>, UnpackError> {
        ctx.check()?;
        let want_us = usize::try_from(want).map_err(|_| corrupt("block size"))?;
        if size.size() == 0 {
            // A hole: a block of zeros that is not stored.
            return Ok(vec![0u8; want_us]);
        }
        let stored =
            crate::unpack::bytes::slice(image, pos, u64::from(size.size()), "squashfs data block")?;
        let out = if size.uncompressed() {
            stored.to_vec()
        } else {
            decompress_block(compressor, stored, block_size)?
        };
        if out.len() != want_us {
            return Err(corrupt(format!(
                "data block at {pos:#x} holds {} bytes, {want} expected",
                out.len()
            )));
        }
        Ok(out)
    };

    let mut sink = ctx.sink(stored_total.saturating_add(tail_len).max(1));
    sink.reserve_claimed(d.file_size);
    let write = |sink: &mut crate::unpack::limits::Sink<'_>, b: &[u8]| {
        use std::io::Write;
        sink.write_all(b)
            .map_err(|e| UnpackError::from_io(&e, "squashfs file"))
    };
    if spans.len() > PARALLEL_BLOCKS {
        // Decompress in windows so a large file never holds all its blocks twice.
        for window in spans.chunks(PARALLEL_BLOCKS * 4) {
            let blocks: Vec<Result<Vec<u8>, UnpackError>> =
                window.par_iter().map(|s| block(*s)).collect();
            for b in blocks {
                write(&mut sink, &b?)?;
            }
        }
    } else {
        // Small files: each block is decoded straight into the file's buffer.
        for &(pos, size, want) in &spans {
            if size.size() == 0 {
                write(&mut sink, &block((pos, size, want))?)?;
                continue;
            }
            ctx.check()?;
            let want_us = usize::try_from(want).map_err(|_| corrupt("block size"))?;
            let stored = crate::unpack::bytes::slice(
                image,
                pos,
                u64::from(size.size()),
                "squashfs data block",
            )?;
            let codec = if size.uncompressed() {
                Compressor::Uncompressed
            } else {
                compressor
            };
            sink.append_with(|buf: &mut Vec<u8>| {
                let before = buf.len();
                decompress_block_into(codec, stored, block_size, buf)?;
                if buf.len() - before != want_us {
                    let got = buf.len() - before;
                    buf.truncate(before);
                    return Err(corrupt(format!(
                        "data block at {pos:#x} holds {got} bytes, {want} expected"
                    )));
                }
                Ok(())
            })?;
        }
    }
    if let Some((index, offset)) = d.fragment
        && tail_len > 0
    {
        let frag = match fragments.get(&index) {
            Some(Ok(f)) => f,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(corrupt(format!("fragment {index} missing"))),
        };
        let tail =
            crate::unpack::bytes::slice(frag, u64::from(offset), tail_len, "squashfs fragment")
                .map_err(|_| {
                    corrupt(format!(
                        "file tail of {tail_len} bytes at {offset} runs past fragment {index}"
                    ))
                })?;
        write(&mut sink, tail)?;
    }
    let data = sink.into_inner();
    if data.len() as u64 != d.file_size {
        return Err(corrupt(format!(
            "file holds {} bytes, its inode says {}",
            data.len(),
            d.file_size
        )));
    }
    Ok(Bytes::from(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{Budget, Limits};

    fn image(compressor: Compressor) -> Vec<u8> {
        let mut w = backhand::FilesystemWriter::default();
        w.set_time(1_700_000_000);
        let options = (compressor == Compressor::Lz4).then_some(
            backhand::compression::CompressionOptions::Lz4(backhand::compression::Lz4 {
                version: 1,
                flags: 0,
            }),
        );
        w.set_compressor(FilesystemCompressor::new(compressor, options).unwrap());
        let h = backhand::NodeHeader::new(0o755, 0, 0, 1_700_000_000);
        w.push_dir("bin", h).unwrap();
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        w.push_file(Cursor::new(big), "bin/big", h).unwrap();
        w.push_file(Cursor::new(b"tail".to_vec()), "bin/small", h)
            .unwrap();
        w.push_symlink("big", "bin/link", h).unwrap();
        let mut out = Cursor::new(Vec::new());
        w.write(&mut out).unwrap();
        out.into_inner()
    }

    #[test]
    fn backhand_images_unpack() {
        for c in [
            Compressor::Xz,
            Compressor::Gzip,
            Compressor::Zstd,
            Compressor::Lz4,
        ] {
            let img = Bytes::from(image(c));
            assert!(Squashfs.detect(&img));
            let budget = Budget::new(Limits::default());
            let u = Squashfs.unpack(&img, &Ctx::new(&budget)).unwrap();
            let big = u.children.iter().find(|c| c.name == b"bin/big").unwrap();
            assert_eq!(big.data.len(), 1_200_000, "{c:?}");
            assert_eq!(&big.data[4..8], &1u32.to_le_bytes());
            let small = u.children.iter().find(|c| c.name == b"bin/small").unwrap();
            assert_eq!(&small.data[..], b"tail");
            assert_eq!(u.consumed % 4096, 0);
        }
    }

    #[test]
    fn truncated_image_says_so() {
        let img = image(Compressor::Xz);
        let cut = Bytes::copy_from_slice(&img[..1024]);
        let budget = Budget::new(Limits::default());
        let e = Squashfs.unpack(&cut, &Ctx::new(&budget)).unwrap_err();
        assert!(matches!(e, UnpackError::Truncated(_)), "{e}");
    }
}
