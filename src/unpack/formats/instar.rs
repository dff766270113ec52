//! INSTAR camera updates. HD models ship ordinary ZIP archives whose record signatures are
//! altered (`PK\x03\x07` local, `PK\x01\x08` central, `PK\x05\x09` end record): nothing is
//! encrypted, so the records the end record and central directory point at are put back to their
//! standard spelling in a copy and read by the ZIP reader. Older models wrap two partitions in a
//! 20-byte `BNEG` header (magic, major 1, minor 1, two little-endian sizes).
//!
//! Both variants as documented by unblob's `instar_hd` and `bneg` handlers (onekey-sec/unblob).

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::bytes::Reader;
use crate::unpack::tree::{Child, Unpacked};

/// INSTAR HD update: a ZIP with altered signatures.
pub struct InstarHd;

/// INSTAR `BNEG` two-partition update.
pub struct Bneg;

/// Local file header signature in INSTAR HD archives.
pub const LOCAL: &[u8; 4] = b"PK\x03\x07";
/// Central directory header signature in INSTAR HD archives.
pub const CENTRAL: &[u8; 4] = b"PK\x01\x08";
/// End of central directory signature in INSTAR HD archives.
pub const END: &[u8; 4] = b"PK\x05\x09";
const LOCAL_STD: &[u8; 4] = b"PK\x03\x04";
const CENTRAL_STD: &[u8; 4] = b"PK\x01\x02";
const END_STD: &[u8; 4] = b"PK\x05\x06";
const END_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
/// BNEG header length.
pub const BNEG_LEN: usize = 20;

static END_SCANNER: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| AhoCorasick::new([END]).ok());

/// Where the archive's records are, found from its end record.
struct Layout {
    end_record: usize,
    extent: usize,
    central: Vec<usize>,
    locals: Vec<usize>,
}

fn u16_at(data: &[u8], at: usize) -> Option<usize> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(usize::from(u16::from_le_bytes([*b.first()?, *b.get(1)?])))
}

fn u32_at(data: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(b)).ok()
}

/// Reads the end record at `at` and walks the central directory it points to; every record must
/// carry its INSTAR signature.
fn layout_at(data: &[u8], at: usize, ctx: &Ctx<'_>) -> Result<Option<Layout>, UnpackError> {
    let (Some(entries), Some(cd_size), Some(cd_offset), Some(comment)) = (
        u16_at(data, at + 10),
        u32_at(data, at + 12),
        u32_at(data, at + 16),
        u16_at(data, at + 20),
    ) else {
        return Ok(None);
    };
    let extent = at + END_LEN + comment;
    if extent > data.len() || cd_offset.checked_add(cd_size) != Some(at) {
        return Ok(None);
    }
    // Each entry needs 46 bytes of directory: cap the count by the directory's size.
    if entries.saturating_mul(CENTRAL_LEN) > cd_size {
        return Ok(None);
    }
    let mut central = Vec::with_capacity(entries);
    let mut locals = Vec::with_capacity(entries);
    let mut pos = cd_offset;
    for _ in 0..entries {
        ctx.check()?;
        if data.get(pos..pos + 4) != Some(&CENTRAL[..]) {
            return Ok(None);
        }
        let (Some(n), Some(m), Some(k), Some(local)) = (
            u16_at(data, pos + 28),
            u16_at(data, pos + 30),
            u16_at(data, pos + 32),
            u32_at(data, pos + 42),
        ) else {
            return Ok(None);
        };
        if local + LOCAL_LEN > cd_offset || data.get(local..local + 4) != Some(&LOCAL[..]) {
            return Ok(None);
        }
        central.push(pos);
        locals.push(local);
        pos = pos + CENTRAL_LEN + n + m + k;
        if pos > at {
            return Ok(None);
        }
    }
    Ok(Some(Layout {
        end_record: at,
        extent,
        central,
        locals,
    }))
}

/// Finds the first INSTAR end record whose directory checks out.
fn find_layout(data: &[u8], ctx: &Ctx<'_>) -> Result<Option<Layout>, UnpackError> {
    let Some(ac) = END_SCANNER.as_ref() else {
        return Ok(None);
    };
    let mut scanned = data.len();
    let mut found = None;
    for (i, m) in ac.find_iter(data).enumerate() {
        if i % 256 == 0 {
            ctx.check()?;
        }
        if let Some(l) = layout_at(data, m.start(), ctx)? {
            scanned = l.extent;
            found = Some(l);
            break;
        }
    }
    // The scan is work a failing candidate costs: charge it so floods of local headers stop at
    // the failed-candidate limit instead of rescanning the blob for each one.
    ctx.charge_read(scanned as u64);
    Ok(found)
}

/// A copy of the archive with its records' signatures put back to the standard spelling (only at
/// the records the directory points to: compressed data is left untouched).
fn restore(data: &[u8], l: &Layout) -> Option<Vec<u8>> {
    let mut out = data.get(..l.extent)?.to_vec();
    let mut put = |at: usize, sig: &[u8; 4]| -> Option<()> {
        out.get_mut(at..at + 4)?.copy_from_slice(sig);
        Some(())
    };
    put(l.end_record, END_STD)?;
    for &c in &l.central {
        put(c, CENTRAL_STD)?;
    }
    for &p in &l.locals {
        put(p, LOCAL_STD)?;
    }
    Some(out)
}

impl Format for InstarHd {
    fn name(&self) -> &'static str {
        "instar_hd"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(LOCAL)];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        // A plausible local header: version, a known method, a printable name that fits.
        let (Some(version), Some(method), Some(n)) =
            (u16_at(data, 4), u16_at(data, 8), u16_at(data, 26))
        else {
            return false;
        };
        let name_ok = n > 0
            && data
                .get(LOCAL_LEN..LOCAL_LEN + n)
                .is_some_and(|name| name.iter().all(|&b| b >= 0x20));
        if !((version & 0xFF) <= 100 && matches!(method, 0 | 8 | 9 | 12 | 14 | 93 | 95) && name_ok)
        {
            return false;
        }
        // Unless sizes follow the data (flag bit 3), another record must follow this entry.
        let (Some(flags), Some(compressed), Some(extra)) =
            (u16_at(data, 6), u32_at(data, 18), u16_at(data, 28))
        else {
            return false;
        };
        if flags & 8 != 0 {
            return true;
        }
        let next = LOCAL_LEN + n + extra + compressed;
        matches!(
            data.get(next..next + 4),
            Some(sig) if sig == LOCAL || sig == CENTRAL
        )
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let layout = find_layout(data, ctx)?.ok_or_else(|| {
            UnpackError::Truncated(
                "INSTAR HD archive: no end record whose directory checks out".into(),
            )
        })?;
        ctx.claimed_size(layout.extent as u64)?;
        let fixed = restore(data, &layout)
            .ok_or_else(|| UnpackError::Corrupt("INSTAR HD archive: record out of range".into()))?;
        let mut inner = super::zip::Zip.unpack(&Bytes::from(fixed), ctx)?;
        inner.consumed = layout.extent as u64;
        inner = inner
            .meta("variant", "instar_hd")
            .meta("signatures_restored", layout.central.len() * 2 + 1);
        Ok(inner)
    }
}

/// A decoded BNEG header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BnegHeader {
    /// Major version (1).
    pub major: u32,
    /// Minor version (1).
    pub minor: u32,
    /// Size of the first partition.
    pub part1: u32,
    /// Size of the second partition.
    pub part2: u32,
}

impl BnegHeader {
    /// Parses the header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        if !data.starts_with(b"BNEG") {
            return Err(UnpackError::Corrupt("BNEG: bad magic".into()));
        }
        let mut r = Reader::new(data);
        r.seek(4, "BNEG header")?;
        Ok(Self {
            major: r.u32("BNEG major")?,
            minor: r.u32("BNEG minor")?,
            part1: r.u32("BNEG partition 1 size")?,
            part2: r.u32("BNEG partition 2 size")?,
        })
    }
}

impl Format for Bneg {
    fn name(&self) -> &'static str {
        "instar_bneg"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(b"BNEG")];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        BnegHeader::parse(data)
            .is_ok_and(|h| h.major == 1 && h.minor == 1 && h.part1 > 0 && h.part2 > 0)
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let h = BnegHeader::parse(data)?;
        let (p1, p2) = (u64::from(h.part1), u64::from(h.part2));
        let extent = BNEG_LEN as u64 + p1 + p2;
        if extent > data.len() as u64 {
            return Err(UnpackError::Truncated(format!(
                "BNEG announces partitions of {p1} and {p2} bytes, {} present",
                data.len().saturating_sub(BNEG_LEN)
            )));
        }
        let a = BNEG_LEN;
        let b = a + usize::try_from(p1).unwrap_or(usize::MAX);
        let c = usize::try_from(extent).unwrap_or(usize::MAX);
        let mut out = Unpacked::new(extent)
            .meta("version", format!("{}.{}", h.major, h.minor))
            .meta("partition_1_size", h.part1)
            .meta("partition_2_size", h.part2);
        ctx.entries(2)?;
        out.children
            .push(Child::file(b"part1".to_vec(), data.slice(a..b)).with_offset(a as u64));
        out.children
            .push(Child::file(b"part2".to_vec(), data.slice(b..c)).with_offset(b as u64));
        Ok(out)
    }
}
