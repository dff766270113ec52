//! JFFS2 (both endiannesses, erase blocks of 4–256 KiB): a node-by-node scan with every CRC
//! checked, then the file tree rebuilt the way the kernel's `jffs2_build_filesystem` does. Layout
//! from Linux's `include/uapi/linux/jffs2.h`; cross-checked against jefferson's reader.

mod nodes;
mod resolve;

pub use nodes::{compr, crc};

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::bytes::Endian;
use crate::unpack::tree::Unpacked;

/// JFFS2.
pub struct Jffs2;

/// Erase-block sizes considered when the image does not state one (it never does).
const ERASE_SIZES: [u32; 7] = [
    4 << 10,
    8 << 10,
    16 << 10,
    32 << 10,
    64 << 10,
    128 << 10,
    256 << 10,
];

/// Bytes of data that is neither a node nor erased flash after which the scan stops: the file
/// system has ended (the largest erase block, so a partly written block is still read through).
const MAX_JUNK: usize = 256 << 10;

/// What the scan counted, reported in the structure's metadata.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counts {
    pub dirents: u64,
    pub inodes: u64,
    pub cleanmarkers: u64,
    pub padding: u64,
    pub summary: u64,
    pub xattr: u64,
    pub unknown: u64,
    pub obsolete: u64,
    /// Nodes whose header CRC held but whose node, name or data CRC (or length) did not.
    pub bad_nodes: u64,
    /// Magics followed by a header whose CRC failed.
    pub bad_headers: u64,
    /// Nodes running past the end of the data.
    pub truncated: u64,
}

/// Every valid node of an image.
pub(crate) struct Scan {
    pub endian: Endian,
    pub dirents: Vec<nodes::Dirent>,
    pub inodes: Vec<nodes::Inode>,
    pub counts: Counts,
    /// End of the last valid node.
    pub last_end: usize,
    /// Offsets of cleanmarkers.
    cleanmarkers: Vec<u32>,
    /// For each of [`ERASE_SIZES`]: whether no node crossed one of its boundaries.
    fits: [bool; ERASE_SIZES.len()],
    /// For each of [`ERASE_SIZES`]: whether a node started on one of its boundaries right after
    /// skipped space (0xFF fill or a padding node): the writer moved on to a new block.
    padded: [bool; ERASE_SIZES.len()],
}

fn pad4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// Scans `data` node by node from its first byte.
fn scan(data: &[u8], endian: Endian, ctx: &Ctx<'_>) -> Result<Scan, UnpackError> {
    let mut s = Scan {
        endian,
        dirents: Vec::new(),
        inodes: Vec::new(),
        counts: Counts::default(),
        last_end: 0,
        cleanmarkers: Vec::new(),
        fits: [true; ERASE_SIZES.len()],
        padded: [false; ERASE_SIZES.len()],
    };
    // Whether space was skipped since the last valid node.
    let mut skipped = false;
    let limit = u32::try_from(data.len()).unwrap_or(u32::MAX) as usize;
    let data = data.get(..limit).unwrap_or(data);
    let mut pos = 0usize;
    let mut junk = 0usize;
    let mut steps = 0u32;
    while pos.saturating_add(nodes::HEADER_LEN) <= data.len() {
        steps = steps.wrapping_add(1);
        if steps.is_multiple_of(1024) {
            ctx.check()?;
        }
        let magic = nodes::u16_at(data, pos, endian).unwrap_or(0);
        if magic != nodes::MAGIC {
            if magic == 0xFFFF || magic == 0 {
                // Erased flash (or zeroed space): skip the whole run at once.
                let fill = if magic == 0 { 0 } else { 0xFF };
                let run = data
                    .get(pos..)
                    .unwrap_or_default()
                    .iter()
                    .position(|&b| b != fill)
                    .unwrap_or(data.len() - pos);
                pos = pos.saturating_add((run & !3).max(4));
                skipped = true;
            } else {
                skipped = true;
                junk += 4;
                pos += 4;
                if junk > MAX_JUNK {
                    break;
                }
            }
            continue;
        }
        let header = match nodes::header(data, pos, endian) {
            Ok(h) => h,
            Err(nodes::HeaderFault::Short) => break,
            Err(_) => {
                s.counts.bad_headers += 1;
                junk += 4;
                pos += 4;
                continue;
            }
        };
        let Some(end) = pos
            .checked_add(header.totlen as usize)
            .filter(|&e| e <= data.len())
        else {
            s.counts.truncated += 1;
            pos += 4;
            continue;
        };
        let node = data.get(pos..end).unwrap_or_default();
        let at = pos as u32;
        let mut valid = true;
        if !header.accurate {
            s.counts.obsolete += 1;
        } else {
            match header.nodetype {
                nodes::DIRENT => match nodes::dirent(node, at, endian) {
                    Ok(d) => {
                        s.counts.dirents += 1;
                        s.dirents.push(d);
                    }
                    Err(_) => valid = false,
                },
                nodes::INODE => match nodes::inode(node, at, endian) {
                    Ok(i) => {
                        s.counts.inodes += 1;
                        s.inodes.push(i);
                    }
                    Err(_) => valid = false,
                },
                nodes::CLEANMARKER => {
                    s.counts.cleanmarkers += 1;
                    s.cleanmarkers.push(at);
                }
                nodes::PADDING => s.counts.padding += 1,
                nodes::SUMMARY => s.counts.summary += 1,
                nodes::XATTR | nodes::XREF => s.counts.xattr += 1,
                _ => s.counts.unknown += 1,
            }
        }
        if !valid {
            s.counts.bad_nodes += 1;
        }
        // A node whose header holds is skipped whole even when its body is bad (as the kernel
        // does): its length is covered by the header CRC.
        s.last_end = end;
        junk = 0;
        for ((fits, padded), size) in s.fits.iter_mut().zip(&mut s.padded).zip(ERASE_SIZES) {
            let size = size as usize;
            if pos / size != (end - 1) / size {
                *fits = false;
            }
            if skipped && pos.is_multiple_of(size) && pos > 0 {
                *padded = true;
            }
        }
        skipped = valid && header.accurate && header.nodetype == nodes::PADDING;
        pos = pad4(end);
    }
    Ok(s)
}

/// The erase-block size, with how it was found: the spacing of the cleanmarkers when there are
/// several; else the smallest size no node crosses on whose boundaries the writer visibly started
/// new blocks; else (an upper bound) the largest size no node crosses whose rounding past the last
/// node covers only erased bytes.
fn erase_size(data: &[u8], s: &Scan) -> Option<(u32, &'static str)> {
    let gcd = s
        .cleanmarkers
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => b.checked_sub(*a),
            _ => None,
        })
        .fold(0u32, gcd);
    if ERASE_SIZES.contains(&gcd) {
        return Some((gcd, "cleanmarkers"));
    }
    let evident = ERASE_SIZES
        .iter()
        .zip(s.fits)
        .zip(s.padded)
        .find(|&((_, fits), padded)| fits && padded)
        .map(|((&size, _), _)| size);
    if let Some(size) = evident {
        return Some((size, "padded blocks"));
    }
    ERASE_SIZES
        .iter()
        .zip(s.fits)
        .rev()
        .filter(|&(_, fits)| fits)
        .map(|(&size, _)| size)
        .find(|&size| {
            let end = round_up(s.last_end, size).min(data.len());
            data.get(pad4(s.last_end).min(end)..end)
                .is_some_and(|t| t.iter().all(|&b| b == 0xFF) || t.iter().all(|&b| b == 0))
        })
        .map(|size| (size, "largest consistent"))
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn round_up(n: usize, to: u32) -> usize {
    let to = to as usize;
    n.div_ceil(to).saturating_mul(to)
}

impl Format for Jffs2 {
    fn name(&self) -> &'static str {
        "jffs2"
    }

    fn magics(&self) -> &'static [Magic] {
        // The first node of an image: a cleanmarker, a dirent, an inode or padding.
        const MAGICS: &[Magic] = &[
            Magic::at0(&[0x85, 0x19, 0x03, 0x20]),
            Magic::at0(&[0x85, 0x19, 0x01, 0xE0]),
            Magic::at0(&[0x85, 0x19, 0x02, 0xE0]),
            Magic::at0(&[0x85, 0x19, 0x04, 0x20]),
            Magic::at0(&[0x19, 0x85, 0x20, 0x03]),
            Magic::at0(&[0x19, 0x85, 0xE0, 0x01]),
            Magic::at0(&[0x19, 0x85, 0xE0, 0x02]),
            Magic::at0(&[0x19, 0x85, 0x20, 0x04]),
        ];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        nodes::endian_of(data)
            .and_then(|e| nodes::header(data, 0, e).ok())
            .is_some_and(|h| {
                h.accurate
                    && matches!(
                        h.nodetype,
                        nodes::CLEANMARKER | nodes::DIRENT | nodes::INODE | nodes::PADDING
                    )
                    && h.totlen as usize <= data.len()
            })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let endian = nodes::endian_of(data)
            .ok_or_else(|| UnpackError::Corrupt("jffs2: no node magic".into()))?;
        let s = scan(data, endian, ctx)?;
        if s.last_end == 0 {
            return Err(UnpackError::Corrupt("jffs2: no valid node".into()));
        }
        let erase = erase_size(data, &s);
        let consumed = match erase {
            Some((size, _)) => round_up(s.last_end, size).min(data.len()),
            None => pad4(s.last_end).min(data.len()),
        };
        let image: &[u8] = data.as_ref();
        let resolved = resolve::resolve(image, &s, ctx)?;
        let c = &s.counts;
        let mut out = Unpacked::new(consumed as u64)
            .meta(
                "endian",
                match endian {
                    Endian::Little => "little-endian",
                    Endian::Big => "big-endian",
                },
            )
            .meta("dirent_nodes", c.dirents)
            .meta("inode_nodes", c.inodes)
            .meta("cleanmarkers", c.cleanmarkers)
            .meta("padding_nodes", c.padding)
            .meta("summary_nodes", c.summary)
            .meta("xattr_nodes", c.xattr)
            .meta("unknown_nodes", c.unknown)
            .meta("obsolete_nodes", c.obsolete)
            .meta("bad_nodes", c.bad_nodes)
            .meta("bad_headers", c.bad_headers)
            .meta("truncated_nodes", c.truncated)
            .meta("deleted_dirents", resolved.deleted)
            .meta("hardlinks", resolved.hardlinks)
            .meta("orphans", resolved.orphans)
            .meta("compression", resolved.compression.clone());
        if let Some((size, how)) = erase {
            out = out
                .meta("erase_block_size", size)
                .meta("erase_block_size_from", how);
        }
        out.children = resolved.children;
        if let Some(e) = resolved.stopped {
            out = out.partial(e);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
