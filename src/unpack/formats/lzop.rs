//! lzop files (`\x89LZO\0\r\n\x1a\n`): a header (checked by its Adler-32 or CRC-32) and LZO1X
//! blocks, each with optional Adler-32/CRC-32 checksums of its compressed and decompressed bytes,
//! ended by a zero length. U-Boot's "lzo" uImage payloads use the same container. The layout
//! follows lzop's `p_header`/`x_decompress` as described by lzop 1.04 and U-Boot's `lzop_decompress`.

use std::io::Write;

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{Endian, Reader};
use crate::unpack::codec::Decoded;
use crate::unpack::lzo;
use crate::unpack::tree::{Child, Unpacked};

/// lzop.
pub struct Lzop;

/// The 9-byte lzop magic.
pub const MAGIC: &[u8; 9] = b"\x89LZO\x00\r\n\x1a\n";

const F_ADLER32_D: u32 = 0x1;
const F_ADLER32_C: u32 = 0x2;
const F_H_EXTRA_FIELD: u32 = 0x40;
const F_CRC32_D: u32 = 0x100;
const F_CRC32_C: u32 = 0x200;
const F_H_FILTER: u32 = 0x800;
const F_H_CRC32: u32 = 0x1000;
/// Flags lzop knows (the top byte holds the OS and character set).
const F_KNOWN: u32 = 0x0000_3FFF;
/// lzop refuses blocks larger than this.
const MAX_BLOCK: u32 = 64 << 20;

/// What an lzop header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// lzop version that wrote the file.
    pub version: u16,
    /// Compression method (1, 2, 3: LZO1X-1, LZO1X-1(15), LZO1X-999).
    pub method: u8,
    /// Compression level (0 for files older than version 0.94).
    pub level: u8,
    /// Header flags.
    pub flags: u32,
    /// Unix mode of the original file.
    pub mode: u32,
    /// Modification time (Unix seconds).
    pub mtime: u64,
    /// Original file name, as stored.
    pub name: Vec<u8>,
    /// Length of the header, magic included.
    pub len: usize,
}

/// Adler-32 as lzop uses it (initial value 1).
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

fn method_name(m: u8) -> Option<&'static str> {
    match m {
        1 => Some("LZO1X-1"),
        2 => Some("LZO1X-1(15)"),
        3 => Some("LZO1X-999"),
        _ => None,
    }
}

/// Parses and checks the header at the start of `data`.
pub fn parse_header(data: &[u8]) -> Result<Header, UnpackError> {
    let mut r = Reader::with_endian(data, Endian::Big);
    if r.bytes(9, "lzop magic")? != MAGIC {
        return Err(UnpackError::Corrupt("lzop: bad magic".into()));
    }
    let version = r.u16("lzop version")?;
    let _lib_version = r.u16("lzop library version")?;
    if version < 0x0900 {
        return Err(UnpackError::Unsupported(format!(
            "lzop: version {version:#x} is too old"
        )));
    }
    if version >= 0x0940 {
        let needed = r.u16("lzop version needed")?;
        if !(0x0900..=0x1FFF).contains(&needed) {
            return Err(UnpackError::Unsupported(format!(
                "lzop: needs version {needed:#x} to extract"
            )));
        }
    }
    let method = r.u8("lzop method")?;
    let level = if version >= 0x0940 {
        r.u8("lzop level")?
    } else {
        0
    };
    let flags = r.u32("lzop flags")?;
    if flags & !(F_KNOWN | 0xFF00_0000) != 0 {
        return Err(UnpackError::Corrupt(format!(
            "lzop: unknown flags {flags:#x}"
        )));
    }
    if flags & F_H_FILTER != 0 {
        r.u32("lzop filter")?;
    }
    let mode = r.u32("lzop mode")?;
    let mtime_low = r.u32("lzop mtime")?;
    let mtime_high = if version >= 0x0940 {
        r.u32("lzop mtime high")?
    } else {
        0
    };
    let name_len = r.u8("lzop name length")?;
    let name = r.bytes(u64::from(name_len), "lzop name")?.to_vec();
    let covered = data.get(9..r.pos()).unwrap_or_default();
    let computed = if flags & F_H_CRC32 != 0 {
        crc32fast::hash(covered)
    } else {
        adler32(covered)
    };
    let stored = r.u32("lzop header checksum")?;
    if stored != computed {
        return Err(UnpackError::Corrupt(format!(
            "lzop: header checksum {stored:#010x}, computed {computed:#010x}"
        )));
    }
    if flags & F_H_EXTRA_FIELD != 0 {
        let n = r.u32("lzop extra field length")?;
        r.skip(u64::from(n), "lzop extra field")?;
        r.u32("lzop extra field checksum")?;
    }
    if method_name(method).is_none() {
        return Err(UnpackError::Unsupported(format!(
            "lzop: compression method {method}"
        )));
    }
    Ok(Header {
        version,
        method,
        level,
        flags,
        mode,
        mtime: (u64::from(mtime_high) << 32) | u64::from(mtime_low),
        name,
        len: r.pos(),
    })
}

fn check(
    kind: &str,
    block: u64,
    stored: Option<u32>,
    computed: impl Fn() -> u32,
) -> Result<(), UnpackError> {
    match stored {
        Some(s) if s != computed() => Err(UnpackError::Corrupt(format!(
            "lzop: block {block}: {kind} checksum mismatch"
        ))),
        _ => Ok(()),
    }
}

/// Decompresses the lzop file at the start of `data`, returning its output, its extent and its
/// header.
pub fn decode(data: &[u8], ctx: &Ctx<'_>) -> Result<(Decoded, Header), UnpackError> {
    let header = parse_header(data)?;
    let f = header.flags;
    let mut r = Reader::with_endian(data, Endian::Big);
    r.seek(header.len as u64, "lzop blocks")?;
    let mut sink = ctx.sink(data.len() as u64);
    let mut block = 0u64;
    loop {
        ctx.check()?;
        let ulen = r.u32("lzop block size")?;
        if ulen == 0 {
            break;
        }
        let clen = r.u32("lzop compressed block size")?;
        if ulen > MAX_BLOCK || clen > ulen {
            return Err(UnpackError::Corrupt(format!(
                "lzop: block {block}: {clen} compressed bytes for {ulen}"
            )));
        }
        let read_if =
            |r: &mut Reader<'_>, on: bool, what: &str| -> Result<Option<u32>, UnpackError> {
                if on { r.u32(what).map(Some) } else { Ok(None) }
            };
        let d_adler = read_if(&mut r, f & F_ADLER32_D != 0, "lzop block Adler-32")?;
        let d_crc = read_if(&mut r, f & F_CRC32_D != 0, "lzop block CRC-32")?;
        let packed = clen < ulen;
        let c_adler = read_if(
            &mut r,
            packed && f & F_ADLER32_C != 0,
            "lzop block Adler-32",
        )?;
        let c_crc = read_if(&mut r, packed && f & F_CRC32_C != 0, "lzop block CRC-32")?;
        let src = r.bytes(u64::from(clen), "lzop block data")?;
        check("compressed Adler-32", block, c_adler, || adler32(src))?;
        check("compressed CRC-32", block, c_crc, || crc32fast::hash(src))?;
        ctx.claimed_size((sink.len() as u64).saturating_add(u64::from(ulen)))?;
        let owned;
        let out: &[u8] = if packed {
            owned = lzo::decompress(src, ulen as usize).map_err(|e| with_block(e, block))?;
            if owned.len() != ulen as usize {
                return Err(UnpackError::Corrupt(format!(
                    "lzop: block {block}: {} bytes decoded, {ulen} announced",
                    owned.len()
                )));
            }
            &owned
        } else {
            src
        };
        check("Adler-32", block, d_adler, || adler32(out))?;
        check("CRC-32", block, d_crc, || crc32fast::hash(out))?;
        sink.write_all(out)
            .map_err(|e| UnpackError::from_io(&e, "lzop"))?;
        block += 1;
    }
    Ok((
        Decoded {
            data: sink.into_inner(),
            consumed: r.pos() as u64,
        },
        header,
    ))
}

fn with_block(e: UnpackError, block: u64) -> UnpackError {
    match e {
        UnpackError::Corrupt(m) => UnpackError::Corrupt(format!("block {block}: {m}")),
        UnpackError::Truncated(m) => UnpackError::Corrupt(format!("block {block}: {m}")),
        other => other,
    }
}

impl Format for Lzop {
    fn name(&self) -> &'static str {
        "lzop"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(MAGIC)];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        parse_header(data).is_ok()
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let (decoded, h) = decode(data, ctx)?;
        ctx.entries(1)?;
        let mut out = Unpacked::new(decoded.consumed)
            .meta("version", format!("{:#06x}", h.version))
            .meta("method", method_name(h.method).unwrap_or("unknown"))
            .meta("level", h.level)
            .meta("mtime", h.mtime)
            .meta("mode", format!("{:o}", h.mode))
            .meta(
                "checksum",
                match (
                    h.flags & (F_ADLER32_D | F_CRC32_D) != 0,
                    h.flags & F_CRC32_D != 0,
                ) {
                    (false, _) => "none",
                    (true, true) => "crc32",
                    (true, false) => "adler32",
                },
            );
        if !h.name.is_empty() {
            out = out.meta(
                "original_name",
                String::from_utf8_lossy(&h.name).into_owned(),
            );
        }
        let child_name = h
            .name
            .rsplit(|&b| b == b'/')
            .next()
            .filter(|n| !n.is_empty() && *n != b"." && *n != b"..")
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let mut child = Child::file(child_name, Bytes::from(decoded.data));
        if h.mode != 0 {
            child = child.with_mode(h.mode);
        }
        out.children.push(child);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{Budget, Limits};

    #[test]
    fn adler32_matches_the_reference_value() {
        // RFC 1950's example: Adler-32 of "Wikipedia" is 0x11E60398.
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
    }

    #[test]
    fn header_checksum_is_verified() {
        let mut h = Vec::new();
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&[0x10, 0x40, 0x20, 0xa0, 0x09, 0x40, 1, 5]);
        h.extend_from_slice(&0x0300_0001u32.to_be_bytes());
        h.extend_from_slice(&0o100644u32.to_be_bytes());
        h.extend_from_slice(&[0; 8]);
        h.push(1);
        h.push(b'x');
        let sum = adler32(&h[9..]);
        h.extend_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(&[0; 4]);
        let parsed = parse_header(&h).unwrap();
        assert_eq!(parsed.name, b"x");
        assert_eq!(parsed.len, h.len() - 4);
        let budget = Budget::new(Limits::default());
        let (d, _) = decode(&h, &Ctx::new(&budget)).unwrap();
        assert!(d.data.is_empty());
        assert_eq!(d.consumed, h.len() as u64);
        h[20] ^= 1;
        assert!(parse_header(&h).is_err());
    }
}
