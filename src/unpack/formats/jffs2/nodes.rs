//! The JFFS2 on-flash node layout of Linux's `include/uapi/linux/jffs2.h` (common header, dirent and
//! inode nodes), its CRC (CRC-32 with initial value 0 and no final xor, the kernel's `crc32(0, …)`)
//! and the per-node decompressors: none, zero, rtime (in-house), zlib (libdeflate), LZO1X and LZMA.

use crate::unpack::UnpackError;
use crate::unpack::bytes::Endian;
use crate::unpack::codec;

/// Node magic (`JFFS2_MAGIC_BITMASK`).
pub const MAGIC: u16 = 0x1985;
/// Set in the node type of every node still valid; cleared on flash when a node is obsoleted.
pub const NODE_ACCURATE: u16 = 0x2000;
/// Directory entry node.
pub const DIRENT: u16 = 0xE001;
/// Inode (metadata and one data fragment) node.
pub const INODE: u16 = 0xE002;
/// Marks an erase block as cleanly erased.
pub const CLEANMARKER: u16 = 0x2003;
/// Fills the rest of an erase block.
pub const PADDING: u16 = 0x2004;
/// Erase-block summary (written by `sumtool` or the kernel with CONFIG_JFFS2_SUMMARY).
pub const SUMMARY: u16 = 0x2006;
/// Extended attribute.
pub const XATTR: u16 = 0xE008;
/// Extended attribute reference.
pub const XREF: u16 = 0xE009;

/// Common header: magic, node type, total length, header CRC.
pub const HEADER_LEN: usize = 12;
/// `struct jffs2_raw_dirent` before the name.
pub const DIRENT_LEN: usize = 40;
/// `struct jffs2_raw_inode` before the data.
pub const INODE_LEN: usize = 68;
/// Largest data fragment accepted in one inode node. The kernel writes at most one page (4 KiB,
/// 64 KiB on some architectures); anything larger is treated as a bad node, except holes.
pub const MAX_NODE_DATA: u32 = 64 * 1024;

/// Compression method ids (`JFFS2_COMPR_*`).
pub mod compr {
    /// Stored.
    pub const NONE: u8 = 0x00;
    /// A run of zeros (a hole); nothing stored.
    pub const ZERO: u8 = 0x01;
    /// The kernel's "real-time" byte-repeat coder.
    pub const RTIME: u8 = 0x02;
    /// Rubin (MIPS variant).
    pub const RUBINMIPS: u8 = 0x03;
    /// Copy (never used on flash).
    pub const COPY: u8 = 0x04;
    /// Dynamic Rubin.
    pub const DYNRUBIN: u8 = 0x05;
    /// zlib stream (RFC 1950).
    pub const ZLIB: u8 = 0x06;
    /// LZO1X.
    pub const LZO: u8 = 0x07;
    /// Raw LZMA with lc=0, lp=0, pb=0 and an 8 KiB dictionary (OpenWrt's patch).
    pub const LZMA: u8 = 0x08;
    /// Vendor variant: an LZMA stream that keeps its 5 property bytes (jefferson's `0x15`).
    pub const LZMA_NO_SIZE: u8 = 0x15;

    /// Name for metadata.
    pub fn name(id: u8) -> &'static str {
        match id {
            NONE => "none",
            ZERO => "zero",
            RTIME => "rtime",
            RUBINMIPS => "rubinmips",
            COPY => "copy",
            DYNRUBIN => "dynrubin",
            ZLIB => "zlib",
            LZO => "lzo",
            LZMA => "lzma",
            LZMA_NO_SIZE => "lzma-props",
            _ => "unknown",
        }
    }
}

/// The CRC JFFS2 stores: CRC-32 (reflected, polynomial 0xEDB88320) with initial value 0 and no
/// final inversion.
pub fn crc(data: &[u8]) -> u32 {
    // crc32fast keeps the finalised (inverted) value as its state: an initial state of !0 is a
    // register of 0, and inverting the result undoes the final xor.
    let mut h = crc32fast::Hasher::new_with_initial(0xFFFF_FFFF);
    h.update(data);
    !h.finalize()
}

/// Reads a 16-bit field (`None` past the end).
pub fn u16_at(data: &[u8], at: usize, endian: Endian) -> Option<u16> {
    let b: [u8; 2] = data.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(match endian {
        Endian::Little => u16::from_le_bytes(b),
        Endian::Big => u16::from_be_bytes(b),
    })
}

/// Reads a 32-bit field (`None` past the end).
pub fn u32_at(data: &[u8], at: usize, endian: Endian) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(match endian {
        Endian::Little => u32::from_le_bytes(b),
        Endian::Big => u32::from_be_bytes(b),
    })
}

/// The endianness whose magic starts `data`, if any.
pub fn endian_of(data: &[u8]) -> Option<Endian> {
    match data.get(..2)? {
        [0x85, 0x19] => Some(Endian::Little),
        [0x19, 0x85] => Some(Endian::Big),
        _ => None,
    }
}

/// A common node header whose CRC matched.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// Node type with [`NODE_ACCURATE`] forced on.
    pub nodetype: u16,
    /// Whether the node is still valid (the accurate bit was set on flash).
    pub accurate: bool,
    /// Total node length in bytes (the next node starts 4-aligned after it).
    pub totlen: u32,
}

/// Why a header at a magic was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderFault {
    /// Fewer than 12 bytes left.
    Short,
    /// Header CRC mismatch.
    Crc,
    /// Total length smaller than a header.
    Length,
}

/// Parses the header at `at` (the magic has been seen there). The CRC covers the first 8 bytes
/// with the node type's accurate bit set, so obsoleted nodes still verify.
pub fn header(data: &[u8], at: usize, endian: Endian) -> Result<Header, HeaderFault> {
    let end = at.checked_add(HEADER_LEN).ok_or(HeaderFault::Short)?;
    let raw = data.get(at..end).ok_or(HeaderFault::Short)?;
    let nodetype = u16_at(raw, 2, endian).ok_or(HeaderFault::Short)?;
    let totlen = u32_at(raw, 4, endian).ok_or(HeaderFault::Short)?;
    let stored = u32_at(raw, 8, endian).ok_or(HeaderFault::Short)?;
    let mut first = [0u8; 8];
    first.copy_from_slice(raw.get(..8).ok_or(HeaderFault::Short)?);
    let accurate_type = nodetype | NODE_ACCURATE;
    let t = match endian {
        Endian::Little => accurate_type.to_le_bytes(),
        Endian::Big => accurate_type.to_be_bytes(),
    };
    first[2] = t[0];
    first[3] = t[1];
    if crc(&first) != stored {
        return Err(HeaderFault::Crc);
    }
    if (totlen as usize) < HEADER_LEN {
        return Err(HeaderFault::Length);
    }
    Ok(Header {
        nodetype: accurate_type,
        accurate: nodetype & NODE_ACCURATE != 0,
        totlen,
    })
}

/// A directory entry node whose CRCs matched.
#[derive(Clone, Copy, Debug)]
pub struct Dirent {
    /// Offset of the node in the image.
    pub at: u32,
    /// Parent directory inode number (1 is the root).
    pub pino: u32,
    /// Version within the parent's node sequence: the highest wins.
    pub version: u32,
    /// Target inode number; 0 marks a deletion (unlink).
    pub ino: u32,
    /// `DT_*` type of the target.
    pub dtype: u8,
    /// Where the name sits in the image.
    pub name_at: u32,
    /// Name length.
    pub name_len: u8,
}

/// Why a node whose header was fine was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeFault {
    /// The node is shorter than its fixed part plus its name or data.
    Length,
    /// The node CRC (over the fixed part) failed.
    NodeCrc,
    /// The name or data CRC failed.
    DataCrc,
    /// A data fragment larger than [`MAX_NODE_DATA`].
    TooLarge,
}

/// Parses a dirent node `node` (exactly `totlen` bytes) found at offset `at`.
pub fn dirent(node: &[u8], at: u32, endian: Endian) -> Result<Dirent, NodeFault> {
    let r32 = |o| u32_at(node, o, endian).ok_or(NodeFault::Length);
    let fixed = node.get(..DIRENT_LEN).ok_or(NodeFault::Length)?;
    let name_len = *node.get(28).ok_or(NodeFault::Length)?;
    let name = node
        .get(DIRENT_LEN..DIRENT_LEN + usize::from(name_len))
        .ok_or(NodeFault::Length)?;
    if crc(fixed.get(..DIRENT_LEN - 8).unwrap_or_default()) != r32(32)? {
        return Err(NodeFault::NodeCrc);
    }
    if crc(name) != r32(36)? {
        return Err(NodeFault::DataCrc);
    }
    Ok(Dirent {
        at,
        pino: r32(12)?,
        version: r32(16)?,
        ino: r32(20)?,
        dtype: *node.get(29).ok_or(NodeFault::Length)?,
        name_at: at.saturating_add(DIRENT_LEN as u32),
        name_len,
    })
}

/// An inode node whose CRCs matched: the inode's metadata at this version and one data fragment.
#[derive(Clone, Copy, Debug)]
pub struct Inode {
    /// Offset of the node in the image.
    pub at: u32,
    /// Inode number.
    pub ino: u32,
    /// Version: fragments apply in version order, the highest gives the metadata.
    pub version: u32,
    /// Mode bits (type and permissions).
    pub mode: u32,
    /// Owner.
    pub uid: u16,
    /// Group.
    pub gid: u16,
    /// File size at this version.
    pub isize: u32,
    /// Modification time.
    pub mtime: u32,
    /// Offset of the fragment in the file.
    pub offset: u32,
    /// Stored (compressed) length of the fragment.
    pub csize: u32,
    /// Decompressed length of the fragment.
    pub dsize: u32,
    /// Compression method ([`compr`]).
    pub compr: u8,
}

impl Inode {
    /// Where the stored fragment starts in the image.
    pub fn data_at(&self) -> usize {
        (self.at as usize).saturating_add(INODE_LEN)
    }
}

/// Parses an inode node `node` (exactly `totlen` bytes) found at offset `at`.
pub fn inode(node: &[u8], at: u32, endian: Endian) -> Result<Inode, NodeFault> {
    let r32 = |o| u32_at(node, o, endian).ok_or(NodeFault::Length);
    let r16 = |o| u16_at(node, o, endian).ok_or(NodeFault::Length);
    let fixed = node.get(..INODE_LEN).ok_or(NodeFault::Length)?;
    if crc(fixed.get(..INODE_LEN - 8).unwrap_or_default()) != r32(64)? {
        return Err(NodeFault::NodeCrc);
    }
    let csize = r32(48)?;
    let dsize = r32(52)?;
    let data = usize::try_from(csize)
        .ok()
        .and_then(|c| node.get(INODE_LEN..INODE_LEN.checked_add(c)?))
        .ok_or(NodeFault::Length)?;
    if crc(data) != r32(60)? {
        return Err(NodeFault::DataCrc);
    }
    let compr = *node.get(56).ok_or(NodeFault::Length)?;
    // Hole nodes (`ZERO`) may span any size: the kernel writes one per extending truncate.
    if csize > MAX_NODE_DATA || (dsize > MAX_NODE_DATA && compr != compr::ZERO) {
        return Err(NodeFault::TooLarge);
    }
    Ok(Inode {
        at,
        ino: r32(12)?,
        version: r32(16)?,
        mode: r32(20)?,
        uid: r16(24)?,
        gid: r16(26)?,
        isize: r32(28)?,
        mtime: r32(36)?,
        offset: r32(44)?,
        csize,
        dsize,
        compr,
    })
}

fn corrupt(method: u8, what: impl std::fmt::Display) -> UnpackError {
    UnpackError::Corrupt(format!("jffs2 {}: {what}", compr::name(method)))
}

/// Decompresses one stored fragment to exactly `dsize` bytes (at most [`MAX_NODE_DATA`]).
/// `ZERO` fragments are handled by the caller without allocating.
pub fn decompress(method: u8, stored: &[u8], dsize: u32) -> Result<Vec<u8>, UnpackError> {
    let want = dsize.min(MAX_NODE_DATA) as usize;
    let out = match method {
        compr::NONE => stored.get(..want).map(<[u8]>::to_vec).unwrap_or_default(),
        compr::ZERO => vec![0; want],
        compr::RTIME => rtime_decompress(stored, want)?,
        compr::ZLIB => {
            // The fragment's size is known: libdeflate decodes the whole stream straight into a
            // buffer of exactly that size and refuses (never overruns) a stream that expands past
            // it; a shorter stream shows as a wrong length below.
            let mut out = vec![0u8; want];
            let decoded = codec::inflate_into(codec::Wrap::Zlib, stored, &mut out);
            match decoded {
                Ok(n) => out.truncate(n),
                Err(libdeflater::DecompressionError::InsufficientSpace) => {
                    return Err(corrupt(method, format!("expands past {want} bytes")));
                }
                Err(libdeflater::DecompressionError::BadData) => {
                    return Err(corrupt(method, "bad or truncated stream"));
                }
            }
            out
        }
        compr::LZO => crate::unpack::lzo::decompress(stored, want)?,
        compr::LZMA => {
            // The kernel's fixed properties: lc=0, lp=0, pb=0, 8 KiB dictionary, raw stream.
            let mut header = [0u8; 13];
            header[1..5].copy_from_slice(&0x2000u32.to_le_bytes());
            header[5..13].copy_from_slice(&u64::from(dsize).to_le_bytes());
            lzma(&header, stored, want)?
        }
        compr::LZMA_NO_SIZE => {
            let props = stored
                .get(..5)
                .ok_or_else(|| corrupt(method, "no property bytes"))?;
            let mut header = [0u8; 13];
            header[..5].copy_from_slice(props);
            header[5..13].copy_from_slice(&u64::from(dsize).to_le_bytes());
            lzma(&header, stored.get(5..).unwrap_or_default(), want)?
        }
        _ => {
            return Err(UnpackError::Unsupported(format!(
                "jffs2 compression {} ({method:#04x})",
                compr::name(method)
            )));
        }
    };
    if out.len() != want {
        return Err(corrupt(
            method,
            format!("fragment holds {} bytes, {want} expected", out.len()),
        ));
    }
    Ok(out)
}

/// Dictionary memory an LZMA fragment may ask for (the kernel's is 8 KiB).
const LZMA_MEMLIMIT: u64 = 16 << 20;

/// Decodes a raw LZMA stream behind a constructed `.lzma` header, into at most `want` bytes.
fn lzma(header: &[u8; 13], stored: &[u8], want: usize) -> Result<Vec<u8>, UnpackError> {
    let method = compr::LZMA;
    let mut stream =
        liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMLIMIT).map_err(|e| corrupt(method, e))?;
    // One extra byte of room tells an overlong stream from an exact one.
    let mut out = Vec::with_capacity(want + 1);
    for part in [&header[..], stored] {
        let mut input = part;
        while !input.is_empty() {
            let before = stream.total_in();
            let status = stream
                .process_vec(input, &mut out, liblzma::stream::Action::Run)
                .map_err(|e| corrupt(method, e))?;
            let used = usize::try_from(stream.total_in() - before).unwrap_or(usize::MAX);
            input = input.get(used..).unwrap_or_default();
            if status == liblzma::stream::Status::StreamEnd {
                return Ok(out);
            }
            if used == 0 {
                break;
            }
        }
    }
    let status = stream
        .process_vec(&[], &mut out, liblzma::stream::Action::Finish)
        .map_err(|e| corrupt(method, e))?;
    if status == liblzma::stream::Status::StreamEnd || out.len() == want {
        Ok(out)
    } else {
        Err(corrupt(method, "stream ends early"))
    }
}

/// The kernel's rtime decoder (`fs/jffs2/compr_rtime.c`): pairs of (literal byte, repeat count),
/// the repeat copying from just after the previous occurrence of that byte. Bounded by `want`.
pub fn rtime_decompress(input: &[u8], want: usize) -> Result<Vec<u8>, UnpackError> {
    let mut positions = [0usize; 256];
    let mut out = Vec::with_capacity(want);
    let mut pairs = input.chunks_exact(2);
    while out.len() < want {
        let Some(&[value, repeat]) = pairs.next() else {
            return Err(UnpackError::Truncated(
                "jffs2 rtime: input ends before the fragment is complete".into(),
            ));
        };
        out.push(value);
        let slot = positions
            .get_mut(usize::from(value))
            .ok_or_else(|| corrupt(compr::RTIME, "bad byte"))?;
        let back = *slot;
        *slot = out.len();
        let repeat = usize::from(repeat);
        if out.len() + repeat > want {
            return Err(corrupt(compr::RTIME, "repeat runs past the fragment"));
        }
        // `back` is always behind the end of `out`, so the copy may overlap what it writes.
        for src in back..back + repeat {
            let b = *out
                .get(src)
                .ok_or_else(|| corrupt(compr::RTIME, "bad back-reference"))?;
            out.push(b);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_init_zero_without_final_xor() {
        // The raw register of the reflected CRC-32 from 0: an empty input stays 0, and one zero
        // byte stays 0 (the table entry for index 0 is 0) — the standard CRC-32 gives neither.
        assert_eq!(crc(b""), 0);
        assert_eq!(crc(&[0]), 0);
        // Relation to the standard CRC-32 of the same bytes: crc32 = !raw(!init …); for a single
        // byte b the raw register from 0 is the table entry T[b]; T[1] = 0x77073096.
        assert_eq!(crc(&[1]), 0x7707_3096);
    }

    #[test]
    fn zlib_fragments_decode_to_exactly_their_size() {
        use std::io::Write;
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        let packed = z.finish().unwrap();
        assert_eq!(decompress(compr::ZLIB, &packed, 4096).unwrap(), data);
        // Trailing bytes after the stream are ignored, as zlib's own inflate does.
        let mut padded = packed.clone();
        padded.extend_from_slice(&[0xFF; 8]);
        assert_eq!(decompress(compr::ZLIB, &padded, 4096).unwrap(), data);
        // A stream that expands past the node's size, one that stops short of it, a truncated
        // stream and a flipped byte are errors, never an overrun or a panic.
        let past = decompress(compr::ZLIB, &packed, 4000).unwrap_err();
        assert!(past.to_string().contains("expands past 4000"), "{past}");
        let short = decompress(compr::ZLIB, &packed, 4097).unwrap_err();
        assert!(short.to_string().contains("4097 expected"), "{short}");
        for cut in [0, 1, 2, packed.len() / 2, packed.len() - 1] {
            assert!(
                decompress(compr::ZLIB, &packed[..cut], 4096).is_err(),
                "cut {cut}"
            );
        }
        for at in 0..packed.len() {
            let mut bad = packed.clone();
            bad[at] ^= 0x55;
            if let Ok(out) = decompress(compr::ZLIB, &bad, 4096) {
                // Only a flip the checksum cannot see may pass, and then with the right size.
                assert_eq!(out.len(), 4096);
            }
        }
    }

    #[test]
    fn rtime_repeats_overlap() {
        // 'a' then repeat 3 from position 0: the run copies bytes as it writes them.
        assert_eq!(rtime_decompress(&[b'a', 0, b'a', 3], 5).unwrap(), b"aaaaa");
        assert!(rtime_decompress(&[b'a', 9], 4).is_err());
        assert!(rtime_decompress(b"a", 4).is_err());
    }
}
