//! cpio archives, read in-house from the formats documented in GNU cpio's manual and `cpio(5)`:
//! "newc" (`070701`), "crc" (`070702`, whose per-file checksum is verified and reported), portable
//! "odc" (`070707`) and the old binary format (both byte orders). The archive ends with the
//! `TRAILER!!!` entry; file data are slices of the archive (no copy).

use std::collections::HashMap;

use bytes::Bytes;

use super::{Ctx, Format, Magic, path_escapes};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{Endian, Reader};
use crate::unpack::tree::{Child, EntryKind, Unpacked};

/// cpio (newc, crc, odc, old binary).
pub struct Cpio;

/// Longest entry name accepted (the kernel's `PATH_MAX`).
const MAX_NAME: u64 = 4096;
const TRAILER: &[u8] = b"TRAILER!!!";

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
/// FIFO, character device, directory, block device, regular file, symlink, socket.
const KNOWN_TYPES: [u32; 7] = [
    0o010_000, 0o020_000, 0o040_000, 0o060_000, 0o100_000, 0o120_000, 0o140_000,
];

impl Format for Cpio {
    fn name(&self) -> &'static str {
        "cpio"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[
            Magic::at0(b"070701"),
            Magic::at0(b"070702"),
            Magic::at0(b"070707"),
            Magic::at0(&[0xC7, 0x71]),
            Magic::at0(&[0x71, 0xC7]),
        ];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        Header::parse(data, 0).is_ok_and(|h| {
            let binary = matches!(h.variant, Variant::BinaryLe | Variant::BinaryBe);
            // Two-byte binary magics occur by chance: also want a known file type, a printable
            // name and a second header of the same kind right after the first entry.
            !binary
                || (KNOWN_TYPES.contains(&(h.mode & S_IFMT))
                    && h.name.iter().all(|&b| b >= 0x20 && b != 0x7F)
                    && align(h.data_start.saturating_add(h.size), 2)
                        .and_then(|next| Header::parse(data, next).ok())
                        .is_some_and(|n| n.variant == h.variant))
        })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        read(data, ctx)
    }
}

/// The header formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// SVR4 "newc" (`070701`), hexadecimal fields, 4-byte alignment.
    Newc,
    /// SVR4 with checksum (`070702`).
    Crc,
    /// POSIX portable "odc" (`070707`), octal fields, no alignment.
    Odc,
    /// Old binary, little-endian.
    BinaryLe,
    /// Old binary, big-endian.
    BinaryBe,
}

impl Variant {
    /// Name used in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Newc => "newc",
            Variant::Crc => "crc",
            Variant::Odc => "odc",
            Variant::BinaryLe => "binary-le",
            Variant::BinaryBe => "binary-be",
        }
    }

    /// Alignment of the name and data ends.
    fn align(self) -> u64 {
        match self {
            Variant::Newc | Variant::Crc => 4,
            Variant::Odc => 1,
            Variant::BinaryLe | Variant::BinaryBe => 2,
        }
    }
}

/// One decoded header with its name.
struct Header {
    variant: Variant,
    ino: u64,
    mode: u32,
    uid: u64,
    gid: u64,
    nlink: u64,
    mtime: u64,
    size: u64,
    rdev: (u64, u64),
    check: u64,
    name: Vec<u8>,
    /// Offset of the data (after the name and its padding).
    data_start: u64,
}

fn align(v: u64, to: u64) -> Option<u64> {
    v.checked_add(to - 1).map(|x| x / to * to)
}

/// Parses `n` ASCII digits of `radix`.
fn digits(r: &mut Reader<'_>, n: u64, radix: u32, what: &str) -> Result<u64, UnpackError> {
    let b = r.bytes(n, what)?;
    let s = std::str::from_utf8(b)
        .map_err(|_| UnpackError::Corrupt(format!("cpio: {what} is not a number")))?;
    u64::from_str_radix(s, radix)
        .map_err(|_| UnpackError::Corrupt(format!("cpio: {what} is not a number")))
}

impl Header {
    fn parse(data: &[u8], at: u64) -> Result<Self, UnpackError> {
        let mut r = Reader::new(data);
        r.seek(at, "cpio header")?;
        let magic = r.bytes(
            6.min(data.len().saturating_sub(r.pos())) as u64,
            "cpio magic",
        )?;
        let mut h = match magic {
            b"070701" | b"070702" => {
                let variant = if magic == b"070701" {
                    Variant::Newc
                } else {
                    Variant::Crc
                };
                let mut hex = |what| digits(&mut r, 8, 16, what);
                let ino = hex("ino")?;
                let mode = hex("mode")?;
                let uid = hex("uid")?;
                let gid = hex("gid")?;
                let nlink = hex("nlink")?;
                let mtime = hex("mtime")?;
                let size = hex("filesize")?;
                let _devmajor = hex("devmajor")?;
                let _devminor = hex("devminor")?;
                let rmajor = hex("rdevmajor")?;
                let rminor = hex("rdevminor")?;
                let namesize = hex("namesize")?;
                let check = hex("check")?;
                Self::with_name(
                    variant,
                    [
                        ino, mode, uid, gid, nlink, mtime, size, rmajor, rminor, check,
                    ],
                    namesize,
                    &mut r,
                )?
            }
            b"070707" => {
                let mut oct = |n, what| digits(&mut r, n, 8, what);
                let _dev = oct(6, "dev")?;
                let ino = oct(6, "ino")?;
                let mode = oct(6, "mode")?;
                let uid = oct(6, "uid")?;
                let gid = oct(6, "gid")?;
                let nlink = oct(6, "nlink")?;
                let rdev = oct(6, "rdev")?;
                let mtime = oct(11, "mtime")?;
                let namesize = oct(6, "namesize")?;
                let size = oct(11, "filesize")?;
                Self::with_name(
                    Variant::Odc,
                    [
                        ino,
                        mode,
                        uid,
                        gid,
                        nlink,
                        mtime,
                        size,
                        rdev >> 8,
                        rdev & 0xFF,
                        0,
                    ],
                    namesize,
                    &mut r,
                )?
            }
            [0xC7, 0x71, ..] | [0x71, 0xC7, ..] => {
                let (variant, endian) = if magic.first() == Some(&0xC7) {
                    (Variant::BinaryLe, Endian::Little)
                } else {
                    (Variant::BinaryBe, Endian::Big)
                };
                let mut b = Reader::with_endian(data, endian);
                b.seek(at.saturating_add(2), "cpio header")?;
                let mut f = [0u64; 12];
                for v in &mut f {
                    *v = u64::from(b.u16("cpio binary header")?);
                }
                let [
                    _dev,
                    ino,
                    mode,
                    uid,
                    gid,
                    nlink,
                    rdev,
                    mt_hi,
                    mt_lo,
                    namesize,
                    sz_hi,
                    sz_lo,
                ] = f;
                Self::with_name(
                    variant,
                    [
                        ino,
                        mode,
                        uid,
                        gid,
                        nlink,
                        (mt_hi << 16) | mt_lo,
                        (sz_hi << 16) | sz_lo,
                        rdev >> 8,
                        rdev & 0xFF,
                        0,
                    ],
                    namesize,
                    &mut b,
                )?
            }
            _ => {
                return Err(UnpackError::Corrupt(format!(
                    "cpio: no header at offset {at:#x}"
                )));
            }
        };
        h.data_start = align(h.data_start, h.variant.align())
            .ok_or_else(|| UnpackError::Corrupt("cpio: offset overflow".into()))?;
        Ok(h)
    }

    /// Reads the NUL-terminated name that follows the fixed fields.
    fn with_name(
        variant: Variant,
        f: [u64; 10],
        namesize: u64,
        r: &mut Reader<'_>,
    ) -> Result<Self, UnpackError> {
        let [
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            size,
            rmajor,
            rminor,
            check,
        ] = f;
        if namesize == 0 || namesize > MAX_NAME {
            return Err(UnpackError::Corrupt(format!(
                "cpio: name size {namesize} out of range"
            )));
        }
        let raw = r.bytes(namesize, "cpio name")?;
        let (last, name) = raw
            .split_last()
            .ok_or_else(|| UnpackError::Corrupt("cpio: empty name".into()))?;
        if *last != 0 || name.contains(&0) {
            return Err(UnpackError::Corrupt(
                "cpio: name is not NUL-terminated".into(),
            ));
        }
        Ok(Self {
            variant,
            ino,
            mode: u32::try_from(mode).unwrap_or(0),
            uid,
            gid,
            nlink,
            mtime,
            size,
            rdev: (rmajor, rminor),
            check,
            name: name.to_vec(),
            data_start: r.pos() as u64,
        })
    }
}

/// Reads a cpio archive starting at `data[0]`.
fn read(data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
    let len = data.len() as u64;
    let first = Header::parse(data, 0)?;
    let variant = first.variant;
    let mut children: Vec<Child> = Vec::new();
    // For newc/crc hard links: (ino, nlink) of each child, to point empty links at the one that
    // carries the data.
    let mut inodes: Vec<(u64, u64)> = Vec::new();
    let mut pos = 0u64;
    let mut next = Some(first);
    let mut failure = None;
    let mut trailer = false;
    let mut bad_checksums = 0u64;
    loop {
        ctx.check()?;
        let h = match next.take() {
            Some(h) => h,
            None => match Header::parse(data, pos) {
                Ok(h) => h,
                Err(e) => {
                    failure = Some(match e {
                        UnpackError::Truncated(m) => UnpackError::Truncated(m),
                        _ if cut_magic(data, pos) => UnpackError::Truncated(format!(
                            "cpio: archive ends at offset {pos:#x} without its {} entry",
                            String::from_utf8_lossy(TRAILER)
                        )),
                        other => other,
                    });
                    break;
                }
            },
        };
        let data_end = h.data_start.saturating_add(h.size);
        if h.name == TRAILER {
            trailer = true;
            pos = align(data_end, h.variant.align()).unwrap_or(len).min(len);
            break;
        }
        let Some(body) = usize::try_from(h.data_start)
            .ok()
            .zip(usize::try_from(data_end).ok())
            .filter(|&(_, e)| e <= data.len())
            .map(|(s, e)| data.slice(s..e))
        else {
            let e = UnpackError::Truncated(format!(
                "cpio: entry '{}' needs {} bytes at offset {:#x}, input has {len}",
                String::from_utf8_lossy(&h.name),
                h.size,
                h.data_start
            ));
            ctx.entries(1)?;
            children.push(Child::file(h.name.clone(), Bytes::new()).with_error(e.clone()));
            failure = Some(e);
            pos = len;
            break;
        };
        ctx.entries(1)?;
        let (child, checksum_ok) = entry(&h, body);
        if checksum_ok == Some(false) {
            bad_checksums += 1;
        }
        inodes.push((h.ino, h.nlink));
        children.push(child);
        pos = align(data_end, h.variant.align()).unwrap_or(len);
    }
    if children.is_empty() && !trailer {
        return Err(failure.unwrap_or_else(|| UnpackError::Corrupt("cpio: no entries".into())));
    }
    if matches!(variant, Variant::Newc | Variant::Crc) {
        link_hardlinks(&mut children, &inodes);
    }
    let mut out = Unpacked::new(pos.max(1))
        .meta("variant", variant.name())
        .meta("entries", children.len())
        .meta("trailer", trailer);
    if variant == Variant::Crc {
        out = out.meta("bad_checksums", bad_checksums);
    }
    if let Some(e) = failure {
        out = out.partial(e);
    }
    out.children = children;
    Ok(out)
}

/// Whether the input ends at `pos`, or inside what starts like a cpio magic.
fn cut_magic(data: &[u8], pos: u64) -> bool {
    let rest = usize::try_from(pos)
        .ok()
        .and_then(|p| data.get(p..))
        .unwrap_or_default();
    rest.len() < 6
        && [&b"070701"[..], b"070702", b"070707"]
            .iter()
            .any(|m| m.starts_with(rest))
}

/// One listed entry, and for the crc variant whether its checksum matched.
fn entry(h: &Header, body: Bytes) -> (Child, Option<bool>) {
    let name = h.name.clone();
    let escapes = path_escapes(&name);
    let mut checksum = None;
    let mut child = match h.mode & S_IFMT {
        S_IFDIR => Child::dir(name),
        S_IFLNK => Child::symlink(name, body.to_vec()),
        S_IFREG | 0 => {
            let mut c = Child::file(name, body.clone());
            if h.variant == Variant::Crc {
                let sum = body
                    .iter()
                    .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)));
                let ok = u64::from(sum) == h.check;
                checksum = Some(ok);
                c = c.with_meta("checksum_ok", ok);
                if !ok {
                    c = c.with_error(UnpackError::Corrupt(format!(
                        "cpio: checksum mismatch (stored {:#010x}, computed {sum:#010x})",
                        h.check
                    )));
                }
            }
            c
        }
        _ => Child::new(name, EntryKind::Device, Bytes::new())
            .with_meta("major", h.rdev.0)
            .with_meta("minor", h.rdev.1),
    };
    child = child
        .with_mode(h.mode)
        .with_offset(h.data_start)
        .with_meta("uid", h.uid)
        .with_meta("gid", h.gid)
        .with_meta("mtime", h.mtime);
    if escapes {
        child = child.with_meta("unsafe_path", true);
    }
    (child, checksum)
}

/// newc stores a hard-linked file's data once, with its last link: the earlier, empty links become
/// hard links to it.
fn link_hardlinks(children: &mut [Child], inodes: &[(u64, u64)]) {
    let mut holder: HashMap<u64, Vec<u8>> = HashMap::new();
    for (c, &(ino, nlink)) in children.iter().zip(inodes) {
        if nlink > 1 && c.kind == EntryKind::File && !c.data.is_empty() {
            holder.insert(ino, c.name.clone());
        }
    }
    for (c, &(ino, nlink)) in children.iter_mut().zip(inodes) {
        if nlink > 1
            && c.kind == EntryKind::File
            && c.data.is_empty()
            && let Some(target) = holder.get(&ino)
        {
            c.kind = EntryKind::Hardlink {
                target: target.clone(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newc(name: &[u8], mode: u32, data: &[u8]) -> Vec<u8> {
        let mut h = format!(
            "070701{:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        )
        .into_bytes();
        h.extend_from_slice(name);
        h.push(0);
        while h.len() % 4 != 0 {
            h.push(0);
        }
        h.extend_from_slice(data);
        while h.len() % 4 != 0 {
            h.push(0);
        }
        h
    }

    #[test]
    fn newc_header_parses() {
        let a = newc(b"etc/passwd", 0o100_644, b"root:x:0:0\n");
        let h = Header::parse(&a, 0).unwrap();
        assert_eq!(h.variant, Variant::Newc);
        assert_eq!(h.name, b"etc/passwd");
        assert_eq!(h.size, 11);
        assert_eq!(h.data_start % 4, 0);
        assert!(Cpio.detect(&a));
    }

    #[test]
    fn bad_names_are_rejected() {
        let mut a = newc(b"x", 0o100_644, b"");
        // namesize 0
        a[94..102].copy_from_slice(b"00000000");
        assert!(Header::parse(&a, 0).is_err());
        assert!(!Cpio.detect(&[0xC7, 0x71, 0, 0]));
    }

    #[test]
    fn a_cut_inside_the_next_magic_is_truncation() {
        let mut a = newc(b"etc/passwd", 0o100_644, b"root:x:0:0\n");
        a.extend_from_slice(b"0707");
        let budget = crate::unpack::Budget::new(crate::unpack::Limits::default());
        let out = read(&Bytes::from(a), &Ctx::new(&budget)).unwrap();
        assert!(
            matches!(out.error, Some(UnpackError::Truncated(_))),
            "{:?}",
            out.error
        );
        assert_eq!(out.children.len(), 1);
    }

    fn binary_le(name: &[u8], mode: u16, data: &[u8]) -> Vec<u8> {
        let namesize = name.len() as u16 + 1;
        let size = data.len() as u32;
        let fields = [
            0x71C7,
            0,
            1,
            mode,
            0,
            0,
            1,
            0,
            0,
            0,
            namesize,
            (size >> 16) as u16,
            size as u16,
        ];
        let mut out: Vec<u8> = fields.iter().flat_map(|f| f.to_le_bytes()).collect();
        out.extend_from_slice(name);
        out.push(0);
        if !out.len().is_multiple_of(2) {
            out.push(0);
        }
        out.extend_from_slice(data);
        if !out.len().is_multiple_of(2) {
            out.push(0);
        }
        out
    }

    #[test]
    fn binary_magic_needs_a_second_header() {
        let mut a = binary_le(b"bin/sh", 0o100_755, b"abc");
        assert!(!Cpio.detect(&a), "a lone header is not enough");
        a.extend_from_slice(&binary_le(b"TRAILER!!!", 0, b""));
        assert!(Cpio.detect(&a));
        let h = Header::parse(&a, 0).unwrap();
        assert_eq!(
            (h.variant, h.size, h.mode),
            (Variant::BinaryLe, 3, 0o100_755)
        );
    }
}
