//! tar archives, read in-house from the POSIX `ustar` and pax definitions and GNU tar's manual:
//! ustar prefixes, GNU long names and link names (`L`/`K`), base-256 numbers, pax `x` records
//! (`path`, `linkpath`, `size`), hard and symbolic links, devices; the true extent runs to the
//! end-of-archive zero blocks. File data are slices of the archive (no copy).

use bytes::Bytes;

use super::{Ctx, Format, Magic, path_escapes};
use crate::unpack::UnpackError;
use crate::unpack::tree::{Child, EntryKind, Unpacked};

/// tar (ustar, GNU, pax).
pub struct Tar;

const BLOCK: u64 = 512;

impl Format for Tar {
    fn name(&self) -> &'static str {
        "tar"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic {
            bytes: b"ustar",
            offset: 257,
        }];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        data.get(..512).is_some_and(checksum_ok)
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        read(data, ctx)
    }
}

/// Field of a header block.
fn field(block: &[u8], start: usize, len: usize) -> &[u8] {
    block
        .get(start..start.saturating_add(len))
        .unwrap_or_default()
}

/// A NUL-terminated field's bytes.
fn text(block: &[u8], start: usize, len: usize) -> Vec<u8> {
    let f = field(block, start, len);
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    f.get(..end).unwrap_or_default().to_vec()
}

/// A numeric field: octal ASCII (space or NUL padded) or GNU base-256 (high bit set).
pub fn number(f: &[u8]) -> Option<u64> {
    match f.first() {
        Some(&first) if first & 0x80 != 0 => {
            if first == 0xFF {
                return None; // negative
            }
            let mut v = u64::from(first & 0x7F);
            for &b in f.get(1..).unwrap_or_default() {
                v = v.checked_mul(256)?.checked_add(u64::from(b))?;
            }
            Some(v)
        }
        _ => {
            let mut v = 0u64;
            let mut digits = f
                .iter()
                .skip_while(|&&b| b == b' ' || b == 0)
                .take_while(|&&b| b != b' ' && b != 0)
                .peekable();
            digits.peek()?;
            for &b in digits {
                if !(b'0'..=b'7').contains(&b) {
                    return None;
                }
                v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
            }
            Some(v)
        }
    }
}

/// Whether a header block's checksum matches (unsigned, or the signed sum some old tars wrote).
fn checksum_ok(block: &[u8]) -> bool {
    let Some(stored) = number(field(block, 148, 8)) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().take(512).enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// pax keywords fwsim uses.
#[derive(Clone, Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    sparse: bool,
}

impl Pax {
    /// Reads `"<len> <key>=<value>\n"` records.
    fn parse(mut data: &[u8], into: &mut Pax, ctx: &Ctx<'_>) -> Result<(), UnpackError> {
        while !data.is_empty() {
            ctx.check()?;
            let Some(space) = data.iter().position(|&b| b == b' ') else {
                break;
            };
            let len = std::str::from_utf8(data.get(..space).unwrap_or_default())
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|&l| l > space && l <= data.len())
                .ok_or_else(|| UnpackError::Corrupt("tar: malformed pax record".into()))?;
            let record = data.get(space + 1..len).unwrap_or_default();
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(eq) = record.iter().position(|&b| b == b'=') {
                let key = record.get(..eq).unwrap_or_default();
                let value = record.get(eq + 1..).unwrap_or_default();
                match key {
                    b"path" => into.path = Some(value.to_vec()),
                    b"linkpath" => into.linkpath = Some(value.to_vec()),
                    b"size" => {
                        into.size = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
                    }
                    k if k.starts_with(b"GNU.sparse.") => into.sparse = true,
                    _ => {}
                }
            }
            data = data.get(len..).unwrap_or_default();
        }
        Ok(())
    }
}

/// Reads a tar archive starting at `data[0]`.
fn read(data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
    let len = data.len() as u64;
    let mut children: Vec<Child> = Vec::new();
    let mut pos = 0u64;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let mut pax = Pax::default();
    // Global (`g`) records are parsed for validity but not applied: a path, link or size shared
    // by every later entry has no sensible meaning, and applying one would rename them all.
    let mut global = Pax::default();
    let mut label: Option<Vec<u8>> = None;
    let mut end_marker = false;
    let mut failure: Option<UnpackError> = None;
    loop {
        ctx.check()?;
        let Some(block) = slice(data, pos, BLOCK) else {
            if pos < len {
                failure = Some(UnpackError::Truncated(format!(
                    "tar: header at offset {pos:#x} is cut ({} of 512 bytes)",
                    len - pos
                )));
                pos = len;
            }
            break;
        };
        if block.iter().all(|&b| b == 0) {
            // End of archive: two zero blocks (one is tolerated, as GNU tar does).
            end_marker = true;
            pos += BLOCK;
            if slice(data, pos, BLOCK).is_some_and(|b| b.iter().all(|&x| x == 0)) {
                pos += BLOCK;
            }
            break;
        }
        if !checksum_ok(block) {
            let e =
                UnpackError::Corrupt(format!("tar: header checksum mismatch at offset {pos:#x}"));
            if children.is_empty() && label.is_none() {
                return Err(e);
            }
            failure = Some(e);
            break;
        }
        let typeflag = block.get(156).copied().unwrap_or(0);
        let size = match pax.size {
            Some(s) if !matches!(typeflag, b'x' | b'g') => s,
            _ => number(field(block, 124, 12)).ok_or_else(|| {
                UnpackError::Corrupt(format!("tar: bad size field at offset {pos:#x}"))
            })?,
        };
        // Links and devices carry no data whatever their size field says.
        let size = if matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6') {
            0
        } else {
            size
        };
        let data_start = pos + BLOCK;
        let data_end = data_start.saturating_add(size);
        let next = data_end
            .checked_add(BLOCK - 1)
            .map(|e| e / BLOCK * BLOCK)
            .unwrap_or(u64::MAX);
        let body = slice(data, data_start, size);
        let Some(body) = body else {
            let name = entry_name(block, long_name.take(), &pax);
            let available = len.saturating_sub(data_start);
            let e = UnpackError::Truncated(format!(
                "tar: entry '{}' needs {size} bytes at offset {data_start:#x}, {available} present",
                String::from_utf8_lossy(&name)
            ));
            let partial = usize::try_from(data_start)
                .ok()
                .filter(|&s| s <= data.len())
                .map_or_else(Bytes::new, |s| data.slice(s..));
            ctx.entries(1)?;
            children.push(
                Child::file(name, partial)
                    .with_offset(data_start)
                    .with_error(e.clone()),
            );
            failure = Some(e);
            pos = len;
            break;
        };
        match typeflag {
            b'L' => long_name = Some(trim_nul(body)),
            b'K' => long_link = Some(trim_nul(body)),
            b'x' => Pax::parse(body, &mut pax, ctx)?,
            b'g' => Pax::parse(body, &mut global, ctx)?,
            b'V' => label = Some(text(block, 0, 100)),
            _ => {
                ctx.entries(1)?;
                let name = entry_name(block, long_name.take(), &pax);
                let link = long_link
                    .take()
                    .or_else(|| pax.linkpath.clone())
                    .unwrap_or_else(|| text(block, 157, 100));
                let sparse = pax.sparse;
                let file = data.slice(to_usize(data_start)?..to_usize(data_end)?);
                children.push(entry(block, typeflag, name, link, file, sparse, data_start));
                pax = Pax::default();
            }
        }
        pos = next.min(len);
    }
    if children.is_empty() {
        return Err(failure.unwrap_or_else(|| UnpackError::Corrupt("tar: no entries".into())));
    }
    let mut out = Unpacked::new(pos)
        .meta("entries", children.len())
        .meta("end_marker", end_marker);
    if let Some(l) = label {
        out = out.meta("volume_label", String::from_utf8_lossy(&l).into_owned());
    }
    if let Some(e) = failure {
        out = out.partial(e);
    }
    out.children = children;
    Ok(out)
}

fn slice(data: &[u8], at: u64, len: u64) -> Option<&[u8]> {
    crate::unpack::bytes::slice(data, at, len, "tar").ok()
}

fn to_usize(v: u64) -> Result<usize, UnpackError> {
    usize::try_from(v).map_err(|_| UnpackError::Corrupt("tar: offset beyond address space".into()))
}

fn trim_nul(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
    b.get(..end).unwrap_or_default().to_vec()
}

/// The entry's name: GNU long name, pax `path`, else the ustar prefix and name.
fn entry_name(block: &[u8], long: Option<Vec<u8>>, pax: &Pax) -> Vec<u8> {
    if let Some(n) = long.or_else(|| pax.path.clone()) {
        return n;
    }
    let name = text(block, 0, 100);
    // The prefix field exists in POSIX ustar only; old GNU headers keep times there.
    if field(block, 257, 6) == b"ustar\0" {
        let prefix = text(block, 345, 155);
        if !prefix.is_empty() {
            let mut full = prefix;
            full.push(b'/');
            full.extend_from_slice(&name);
            return full;
        }
    }
    name
}

/// One listed entry.
fn entry(
    block: &[u8],
    typeflag: u8,
    name: Vec<u8>,
    link: Vec<u8>,
    file: Bytes,
    sparse: bool,
    offset: u64,
) -> Child {
    let perm = number(field(block, 100, 8)).unwrap_or(0) as u32 & 0o7777;
    let escapes = path_escapes(&name);
    let (mut child, kind_bits) = match typeflag {
        b'1' => (
            Child::new(name, EntryKind::Hardlink { target: link }, Bytes::new()),
            0o100_000,
        ),
        b'2' => (Child::symlink(name, link), 0o120_000),
        b'3' | b'4' | b'6' => {
            let major = number(field(block, 329, 8)).unwrap_or(0);
            let minor = number(field(block, 337, 8)).unwrap_or(0);
            let bits = match typeflag {
                b'3' => 0o020_000,
                b'4' => 0o060_000,
                _ => 0o010_000,
            };
            (
                Child::new(name, EntryKind::Device, Bytes::new())
                    .with_meta("major", major)
                    .with_meta("minor", minor),
                bits,
            )
        }
        b'5' | b'D' => (Child::dir(name), 0o040_000),
        b'\0' if name.ends_with(b"/") => (Child::dir(name), 0o040_000),
        b'S' => (
            Child::file(name, Bytes::new()).with_error(UnpackError::Unsupported(
                "tar: GNU sparse file (old format)".into(),
            )),
            0o100_000,
        ),
        b'M' => (
            Child::file(name, Bytes::new()).with_error(UnpackError::Unsupported(
                "tar: multi-volume continuation".into(),
            )),
            0o100_000,
        ),
        _ if sparse => (
            Child::file(name, Bytes::new())
                .with_error(UnpackError::Unsupported("tar: pax sparse file".into())),
            0o100_000,
        ),
        _ => (Child::file(name, file), 0o100_000),
    };
    child = child
        .with_mode(kind_bits | perm)
        .with_offset(offset)
        .with_meta("uid", number(field(block, 108, 8)).unwrap_or(0))
        .with_meta("gid", number(field(block, 116, 8)).unwrap_or(0))
        .with_meta("mtime", number(field(block, 136, 12)).unwrap_or(0));
    for (key, start) in [("uname", 265), ("gname", 297)] {
        let v = text(block, start, 32);
        if !v.is_empty() {
            child = child.with_meta(key, String::from_utf8_lossy(&v).into_owned());
        }
    }
    if escapes {
        child = child.with_meta("unsafe_path", true);
    }
    child
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_octal_and_base256() {
        assert_eq!(number(b"0000644\0"), Some(0o644));
        assert_eq!(number(b"   755 \0"), Some(0o755));
        assert_eq!(
            number(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            Some(1 << 32)
        );
        assert_eq!(number(&[0xFF; 12]), None);
        assert_eq!(number(b"0009\0"), None);
        assert_eq!(number(b"\0\0\0"), None);
    }

    #[test]
    fn pax_records_parse() {
        let budget = crate::unpack::Budget::new(crate::unpack::Limits::default());
        let ctx = Ctx::new(&budget);
        let mut p = Pax::default();
        Pax::parse(b"19 path=some/where\n12 size=999\n", &mut p, &ctx).unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"some/where"[..]));
        assert_eq!(p.size, Some(999));
        assert!(Pax::parse(b"99 path=x\n", &mut Pax::default(), &ctx).is_err());
    }
}
