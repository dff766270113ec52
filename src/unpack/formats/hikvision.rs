//! Hikvision upgrade packages (`digicap.dav`, `digicap.mav`, access-controller `.bin`): a 64-byte
//! little-endian `SWKH` header, XOR-obfuscated with a public 16-byte key or plain, then a table of
//! 44-byte file entries (name, offset and length in either order, byte-sum checksum) and the files.
//!
//! Byte-level facts, from public sources:
//! - Hikvision's own `upgrade_file.h` (quoted in Akagi201/akcode): `FIRMWARE_HEADER` is magic
//!   `0x484b5753`, header checksum "computed from the file_nums field on", header length, file
//!   count, language (1 English, 2 Chinese), device class, OEM code (1 = Hikvision) and 36 reserved
//!   bytes; `UPGRADE_FILE_HEADER` is a 32-byte name, start offset, length and the file's checksum.
//! - MatrixEditor/hiktools (`hiktools/fmod/digicap.py`): the XOR key and its index
//!   `(i + (i >> 4)) & 0xF`, the fields at 28 (signature/version) and 32 (features), the table at
//!   0x40 — but it reads each entry as *length, offset*, the other way round.
//! - An EZVIZ unpack/repack script and a digicap script handling the newer `02KH`/`03KH` variants
//!   (both public on GitHub): the header checksum is the byte sum of the decoded header from offset
//!   12 to the header length, a file's checksum is the byte sum of its bytes, entries are *offset,
//!   length*, `02KH`/`03KH` packages (same first 16 bytes) have AES-encrypted tables: they are
//!   recognised and reported unsupported, with the variant named.
//! - The DS-K2602 access-controller firmware (V2.0.5, a real sample): its own upgrade-header check,
//!   disassembled, tests the magic, device class 0x352, the language (0xff accepted) and compares
//!   the entry's *second* field with the embedded image's length — offset, length — without
//!   reading the entry checksum, which in that package is not the byte sum of the file (reported
//!   as a mismatch, the file still listed).
//!
//! Because the sources disagree on the entry order, each entry is read both ways and the reading
//! that validates wins: the one that fits the package, else the one whose checksum matches, else
//! the one that starts where the previous file ends. An entry that no rule decides is reported as
//! ambiguous, never guessed. The header length counts the table in `digicap.dav` but not in the
//! DS-K2602 access-controller packages (64, the fixed part only); both are accepted.

use bytes::Bytes;

use super::{Ctx, Format, Magic, path_escapes};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{Reader, c_string};
use crate::unpack::tree::{Child, Unpacked, escape_name};

/// Hikvision upgrade package.
pub struct Hikvision;

/// The public XOR key of the header (the same in every Hikvision package of this generation).
pub const KEY: [u8; 16] = [
    0xBA, 0xCD, 0xBC, 0xFE, 0xD6, 0xCA, 0xDD, 0xD3, 0xBA, 0xB9, 0xA3, 0xAB, 0xBF, 0xCB, 0xB5, 0xBE,
];
/// The header magic, decoded.
pub const MAGIC: [u8; 4] = *b"SWKH";
/// Magics of the newer packages whose file table is AES-encrypted with a device key: recognised
/// and reported unsupported, with the variant named.
pub const ENCRYPTED_MAGICS: [[u8; 4]; 2] = [*b"02KH", *b"03KH"];
/// The fixed part of the header, before the file table.
pub const FIXED_HEADER_LEN: usize = 64;
/// One file-table entry.
pub const ENTRY_LEN: usize = 44;
/// The name field of an entry.
pub const NAME_LEN: usize = 32;
/// Offset of the header-checksum coverage (from the file-count field to the end of the header).
const CHECKSUM_FROM: usize = 12;
/// Bytes summed between two time checks.
const SUM_CHUNK: usize = 1 << 20;

/// How the header is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderForm {
    /// XOR-obfuscated with [`KEY`] (`digicap.dav`, `.mav`).
    Obfuscated,
    /// Stored as is (DS-K2602 access-controller packages).
    Plain,
}

impl HeaderForm {
    /// The name used in metadata.
    pub fn name(self) -> &'static str {
        match self {
            HeaderForm::Obfuscated => "xor",
            HeaderForm::Plain => "plain",
        }
    }
}

/// The order of the two 32-bit fields after an entry's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOrder {
    /// Offset, then length (Hikvision's `upgrade_file.h`, the EZVIZ script, the real samples).
    OffsetLength,
    /// Length, then offset (as hiktools reads the table).
    LengthOffset,
}

impl FieldOrder {
    /// The name used in metadata.
    pub fn name(self) -> &'static str {
        match self {
            FieldOrder::OffsetLength => "offset_length",
            FieldOrder::LengthOffset => "length_offset",
        }
    }
}

/// XORs `buf` with the header key, byte `i` with `KEY[(i + (i >> 4)) & 0xF]` (its own inverse:
/// it both obfuscates and decodes a header that starts at `buf[0]`).
pub fn xor_header(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= KEY.get((i + (i >> 4)) & 0xF).copied().unwrap_or(0);
    }
}

/// The wrapping byte sum Hikvision uses for its header and file checksums.
pub fn byte_sum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)))
}

/// A 4-byte magic as it appears at the start of an obfuscated header.
const fn obfuscated(m: [u8; 4]) -> [u8; 4] {
    [m[0] ^ KEY[0], m[1] ^ KEY[1], m[2] ^ KEY[2], m[3] ^ KEY[3]]
}

/// The variant name, header size and file count of an obfuscated `02KH`/`03KH` header at
/// `data[0]` (its first 16 bytes are magic, checksum, size and count, as in `SWKH`).
fn encrypted_variant(data: &[u8]) -> Option<(&'static str, u32, u32)> {
    let mut head = [0u8; 16];
    head.copy_from_slice(data.get(..16)?);
    xor_header(&mut head);
    let variant = match head.get(..4)? {
        b"02KH" => "02KH",
        b"03KH" => "03KH",
        _ => return None,
    };
    let word = |at: usize| {
        head.get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
    };
    Some((variant, word(8)?, word(12)?))
}

/// The byte sum of `data`, checking the time budget between chunks.
fn checked_sum(data: &[u8], ctx: &Ctx<'_>) -> Result<u32, UnpackError> {
    let mut sum = 0u32;
    for chunk in data.chunks(SUM_CHUNK) {
        ctx.check()?;
        sum = sum.wrapping_add(byte_sum(chunk));
    }
    Ok(sum)
}

/// The fixed part of a package header, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Obfuscated or plain.
    pub form: HeaderForm,
    /// Stored header checksum (0 when the packer left it unset).
    pub checksum: u32,
    /// Stored header length (the fixed part with or without the table).
    pub header_length: u32,
    /// Number of table entries.
    pub file_count: u32,
    /// Language code (1 English/multi-language, 2 Chinese).
    pub language: u32,
    /// Device class code (provenance: which product line the package targets).
    pub device_class: u32,
    /// OEM code (provenance: 1 is Hikvision itself; OEM rebrands carry their own).
    pub oem_code: u32,
    /// Firmware version word (hiktools calls it "signature").
    pub version: u32,
    /// Feature flags word.
    pub features: u32,
}

impl Header {
    /// How the header at `data[0]` is stored, if it is one.
    pub fn form_of(data: &[u8]) -> Option<HeaderForm> {
        let head = data.get(..4)?;
        if head == MAGIC {
            return Some(HeaderForm::Plain);
        }
        let mut m = [0u8; 4];
        m.copy_from_slice(head);
        xor_header(&mut m);
        (m == MAGIC).then_some(HeaderForm::Obfuscated)
    }

    /// Parses the fixed 64-byte header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        let form = Self::form_of(data)
            .ok_or_else(|| UnpackError::Corrupt("Hikvision: no SWKH magic".into()))?;
        let fixed = decoded(data, FIXED_HEADER_LEN, form, "Hikvision header")?;
        let mut r = Reader::new(&fixed);
        r.skip(4, "Hikvision magic")?;
        Ok(Header {
            form,
            checksum: r.u32("Hikvision header checksum")?,
            header_length: r.u32("Hikvision header length")?,
            file_count: r.u32("Hikvision file count")?,
            language: r.u32("Hikvision language")?,
            device_class: r.u32("Hikvision device class")?,
            oem_code: r.u32("Hikvision OEM code")?,
            version: r.u32("Hikvision version")?,
            features: r.u32("Hikvision features")?,
        })
    }

    /// Where the file table ends, if the count is representable.
    fn table_end(&self) -> Option<u64> {
        u64::from(self.file_count)
            .checked_mul(ENTRY_LEN as u64)?
            .checked_add(FIXED_HEADER_LEN as u64)
    }
}

/// The first `len` bytes of `data`, decoded per `form`.
fn decoded(data: &[u8], len: usize, form: HeaderForm, what: &str) -> Result<Vec<u8>, UnpackError> {
    let mut out = crate::unpack::bytes::slice(data, 0, len as u64, what)?.to_vec();
    if form == HeaderForm::Obfuscated {
        xor_header(&mut out);
    }
    Ok(out)
}

/// Name of a language code.
pub fn language_name(code: u32) -> Option<&'static str> {
    match code {
        1 => Some("english"),
        2 => Some("chinese"),
        _ => None,
    }
}

/// One decoded file-table entry, its two 32-bit fields not yet interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Name as stored (up to the first NUL).
    pub name: Vec<u8>,
    /// The field after the name.
    pub first: u32,
    /// The field after that.
    pub second: u32,
    /// Stored checksum of the file.
    pub checksum: u32,
}

impl Entry {
    fn parse(raw: &[u8]) -> Result<Self, UnpackError> {
        let mut r = Reader::new(raw);
        let name = r.bytes(NAME_LEN as u64, "Hikvision entry name")?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Ok(Entry {
            name: name.get(..end).unwrap_or_default().to_vec(),
            first: r.u32("Hikvision entry field")?,
            second: r.u32("Hikvision entry field")?,
            checksum: r.u32("Hikvision entry checksum")?,
        })
    }

    /// The (offset, length) the entry states under `order`.
    pub fn span(&self, order: FieldOrder) -> (u64, u64) {
        match order {
            FieldOrder::OffsetLength => (u64::from(self.first), u64::from(self.second)),
            FieldOrder::LengthOffset => (u64::from(self.second), u64::from(self.first)),
        }
    }

    /// How messages name the entry: its index and, escaped for a terminal, its name.
    fn display(&self, index: usize) -> String {
        if self.name.is_empty() {
            format!("#{index}")
        } else {
            format!("#{index} '{}'", escape_name(&self.name))
        }
    }
}

/// Where a file was found to be, and why that reading was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Placement {
    offset: u64,
    len: u64,
    order: FieldOrder,
    /// The rule that decided: `bounds`, `checksum` or `layout`.
    basis: &'static str,
    computed: u32,
}

impl Placement {
    fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

/// Decides how entry `e` is to be read: see the module documentation. `Ok(Err(_))` is a failure
/// confined to this entry; `Err(_)` stops the package (the time budget).
fn place(
    e: &Entry,
    index: usize,
    data: &[u8],
    data_start: u64,
    expected: Option<u64>,
    ctx: &Ctx<'_>,
) -> Result<Result<Placement, UnpackError>, UnpackError> {
    let orders: &[FieldOrder] = if e.first == e.second {
        &[FieldOrder::OffsetLength]
    } else {
        &[FieldOrder::OffsetLength, FieldOrder::LengthOffset]
    };
    let total = data.len() as u64;
    let fits = |(off, len): (u64, u64)| off >= data_start && off.saturating_add(len) <= total;
    let in_bounds: Vec<FieldOrder> = orders
        .iter()
        .copied()
        .filter(|&o| fits(e.span(o)))
        .collect();
    let sum_of = |o: FieldOrder| -> Result<u32, UnpackError> {
        let (off, len) = e.span(o);
        checked_sum(
            crate::unpack::bytes::slice(data, off, len, "Hikvision file")?,
            ctx,
        )
    };
    let placement = |o: FieldOrder, basis: &'static str, computed: u32| {
        let (offset, len) = e.span(o);
        Placement {
            offset,
            len,
            order: o,
            basis,
            computed,
        }
    };
    match in_bounds.as_slice() {
        [] => Ok(Err(UnpackError::Truncated(format!(
            "Hikvision file {}: fields {:#x} and {:#x} place it outside the package data \
             ({data_start:#x}..{total:#x}) in either order",
            e.display(index),
            e.first,
            e.second
        )))),
        [only] => Ok(Ok(placement(*only, "bounds", sum_of(*only)?))),
        _ => {
            let mut sums = Vec::with_capacity(in_bounds.len());
            for &o in &in_bounds {
                sums.push((o, sum_of(o)?));
            }
            let matching: Vec<(FieldOrder, u32)> = sums
                .iter()
                .copied()
                .filter(|&(_, s)| s == e.checksum)
                .collect();
            if let [(o, s)] = matching.as_slice() {
                return Ok(Ok(placement(*o, "checksum", *s)));
            }
            let contiguous: Vec<(FieldOrder, u32)> = sums
                .iter()
                .copied()
                .filter(|&(o, _)| Some(e.span(o).0) == expected)
                .collect();
            if let [(o, s)] = contiguous.as_slice() {
                return Ok(Ok(placement(*o, "layout", *s)));
            }
            Ok(Err(UnpackError::Corrupt(format!(
                "Hikvision file {}: fields {:#x} and {:#x} fit the package in both orders and \
                 neither checksum nor layout tells them apart",
                e.display(index),
                e.first,
                e.second
            ))))
        }
    }
}

impl Format for Hikvision {
    fn name(&self) -> &'static str {
        "hikvision"
    }

    fn magics(&self) -> &'static [Magic] {
        // "SWKH" as stored and obfuscated; the encrypted variants' magics obfuscated.
        const MAGICS: &[Magic] = &[
            Magic::at0(&MAGIC),
            Magic::at0(&obfuscated(MAGIC)),
            Magic::at0(&obfuscated(ENCRYPTED_MAGICS[0])),
            Magic::at0(&obfuscated(ENCRYPTED_MAGICS[1])),
        ];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        if let Some((_, size, count)) = encrypted_variant(data) {
            return size >= 16 && count >= 1;
        }
        let Ok(h) = Header::parse(data) else {
            return false;
        };
        if (h.header_length as usize) < FIXED_HEADER_LEN || h.file_count == 0 {
            return false;
        }
        match h.form {
            // Four obfuscated bytes are strong evidence: a header that lies about its length or
            // count is still claimed, so `unpack` reports what is wrong with it.
            HeaderForm::Obfuscated => true,
            // Plain "SWKH" also occurs in code (the upgrade routine's own magic check and its
            // messages): only a header whose table and length fit the input is a package.
            HeaderForm::Plain => {
                let total = data.len() as u64;
                let length = u64::from(h.header_length);
                h.table_end().is_some_and(|end| {
                    end <= total
                        && length <= total
                        && (length == FIXED_HEADER_LEN as u64 || length >= end)
                })
            }
        }
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        if let Some((variant, _, count)) = encrypted_variant(data) {
            return Err(UnpackError::Unsupported(format!(
                "Hikvision {variant} package ({count} files): its file table is AES-encrypted \
                 with a device key"
            )));
        }
        let h = Header::parse(data)?;
        let total = data.len() as u64;
        let header_length = u64::from(h.header_length);
        let mut out = Unpacked::new(0)
            .meta("magic", "SWKH")
            .meta("header_form", h.form.name())
            .meta("header_length", h.header_length)
            .meta("file_count", h.file_count)
            .meta("language", h.language)
            .meta("device_class", h.device_class)
            .meta("oem_code", h.oem_code)
            .meta("version", format!("{:#010x}", h.version))
            .meta("features", format!("{:#010x}", h.features));
        if let Some(l) = language_name(h.language) {
            out = out.meta("language_name", l);
        }
        if header_length < FIXED_HEADER_LEN as u64 {
            return Err(UnpackError::Corrupt(format!(
                "Hikvision header length {header_length} is shorter than the fixed header ({FIXED_HEADER_LEN})"
            )));
        }
        // The count is capped by the bytes that could hold its table before anything is read.
        let table_end = h.table_end().unwrap_or(u64::MAX);
        if table_end > total {
            return Err(UnpackError::Truncated(format!(
                "Hikvision file count {} needs a table up to {table_end:#x}, the input has {total} bytes",
                h.file_count
            )));
        }
        if header_length > total {
            return Err(UnpackError::Truncated(format!(
                "Hikvision header length {header_length:#x} runs past the input ({total} bytes)"
            )));
        }
        let covers_table = header_length >= table_end;
        if header_length != FIXED_HEADER_LEN as u64 && !covers_table {
            return Err(UnpackError::Corrupt(format!(
                "Hikvision header length {header_length:#x} cuts the table of {} entries (ends at {table_end:#x})",
                h.file_count
            )));
        }
        out = out.meta("header_length_covers_table", covers_table);
        let data_start = header_length.max(table_end);
        let header_len = usize::try_from(data_start)
            .map_err(|_| UnpackError::Corrupt("Hikvision header".into()))?;
        let header = decoded(data, header_len, h.form, "Hikvision header")?;
        ctx.check()?;

        let covered = usize::try_from(header_length).unwrap_or(usize::MAX);
        let computed = byte_sum(header.get(CHECKSUM_FROM..covered).unwrap_or_default());
        out = out
            .meta("header_checksum", format!("{:#010x}", h.checksum))
            .meta("header_checksum_computed", format!("{computed:#010x}"))
            .meta("header_checksum_ok", computed == h.checksum);
        if h.checksum == 0 {
            out = out.meta("header_checksum_unset", true);
        }

        let count = usize::try_from(h.file_count)
            .map_err(|_| UnpackError::Corrupt("Hikvision file count".into()))?;
        ctx.entries(h.file_count.into())?;
        let mut placed: Vec<(usize, Entry, Result<Placement, UnpackError>)> =
            Vec::with_capacity(count);
        let mut expected = Some(data_start);
        for index in 0..count {
            ctx.check()?;
            let raw_at = FIXED_HEADER_LEN.saturating_add(index.saturating_mul(ENTRY_LEN));
            let raw = header
                .get(raw_at..raw_at.saturating_add(ENTRY_LEN))
                .ok_or_else(|| UnpackError::Truncated("Hikvision file table".into()))?;
            let e = Entry::parse(raw)?;
            let p = place(&e, index, data, data_start, expected, ctx)?;
            expected = p.as_ref().ok().map(Placement::end);
            placed.push((index, e, p));
        }

        // Files must not overlap: each byte of the package is analysed once (a table of entries
        // all pointing at the same large region would otherwise multiply the work).
        let mut by_offset: Vec<(u64, u64, usize)> = placed
            .iter()
            .filter_map(|(i, _, p)| p.as_ref().ok().map(|p| (p.offset, p.end(), *i)))
            .filter(|&(s, e, _)| e > s)
            .collect();
        by_offset.sort_unstable();
        let mut overlaps: Vec<(usize, usize)> = Vec::new();
        // The first file in offset order keeps its bytes; a later one reaching into them is
        // refused, and only kept files extend the covered range.
        let mut reach: Option<(u64, usize)> = None;
        for &(start, end, i) in &by_offset {
            match reach {
                Some((r, owner)) if start < r => overlaps.push((i, owner)),
                _ => reach = Some((end, i)),
            }
        }
        for (i, owner) in overlaps {
            let owner_name = placed
                .get(owner)
                .map(|(_, e, _)| e.display(owner))
                .unwrap_or_default();
            if let Some((_, e, p)) = placed.get_mut(i)
                && let Ok(pl) = p
            {
                *p = Err(UnpackError::Corrupt(format!(
                    "Hikvision file {} ({:#x}..{:#x}) overlaps file {owner_name}",
                    e.display(i),
                    pl.offset,
                    pl.end()
                )));
            }
        }

        let mut end = data_start;
        let mut failed = 0usize;
        let mut mismatched = 0usize;
        let mut orders: Vec<&'static str> = Vec::new();
        for (index, e, p) in placed {
            let name = if e.name.is_empty() {
                index.to_string().into_bytes()
            } else {
                e.name.clone()
            };
            let mut child = match &p {
                Ok(pl) => {
                    let (s, t) = (
                        usize::try_from(pl.offset).unwrap_or(usize::MAX),
                        usize::try_from(pl.end()).unwrap_or(usize::MAX),
                    );
                    let bytes = data.get(s..t).map(|_| data.slice(s..t)).unwrap_or_default();
                    Child::file(name, bytes).with_offset(pl.offset)
                }
                Err(_) => Child::file(name, Bytes::new()),
            };
            child = child
                .with_meta("listed_name", c_string(&e.name))
                .with_meta("index", index)
                .with_meta("checksum", format!("{:#010x}", e.checksum));
            if path_escapes(&e.name) {
                child = child.with_meta("unsafe_path", true);
            }
            match p {
                Ok(pl) => {
                    let ok = pl.computed == e.checksum;
                    mismatched += usize::from(!ok);
                    end = end.max(pl.end());
                    orders.push(pl.order.name());
                    child = child
                        .with_meta("field_order", pl.order.name())
                        .with_meta("field_order_basis", pl.basis)
                        .with_meta("size", pl.len)
                        .with_meta("checksum_computed", format!("{:#010x}", pl.computed))
                        .with_meta("checksum_ok", ok);
                }
                Err(err) => {
                    failed += 1;
                    // A file that cannot be listed still tells how far the package reaches: as
                    // far as its fields point inside the input, in either order.
                    for o in [FieldOrder::OffsetLength, FieldOrder::LengthOffset] {
                        let (off, len) = e.span(o);
                        if off >= data_start && off < total {
                            end = end.max(off.saturating_add(len).min(total));
                        }
                    }
                    child = child
                        .with_meta("fields", format!("{:#010x} {:#010x}", e.first, e.second))
                        .with_error(err);
                }
            }
            out.children.push(child);
        }
        orders.sort_unstable();
        orders.dedup();
        out.consumed = end;
        out = out
            .meta("field_orders", orders)
            .meta("files_checksum_ok", mismatched == 0 && failed == 0)
            .meta("files_checksum_mismatches", mismatched);
        if failed > 0 {
            out = out.partial(UnpackError::Corrupt(format!(
                "Hikvision package: {failed} of {count} files could not be placed"
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_index_follows_the_documented_formula() {
        // Byte 16 uses key[(16 + 1) & 15] = key[1]; byte 31 uses key[(31 + 1) & 15] = key[0].
        let mut buf = [0u8; 48];
        xor_header(&mut buf);
        assert_eq!(buf[0], 0xBA);
        assert_eq!(buf[15], 0xBE);
        assert_eq!(buf[16], 0xCD);
        assert_eq!(buf[31], 0xBA);
        assert_eq!(buf[32], 0xBC);
        // The magic, obfuscated: 'S'^0xBA, 'W'^0xCD, 'K'^0xBC, 'H'^0xFE.
        let mut m = *b"SWKH";
        xor_header(&mut m);
        assert_eq!(m, [0xE9, 0x9A, 0xF7, 0xB6]);
    }

    #[test]
    fn byte_sum_wraps() {
        assert_eq!(byte_sum(&[0xFF, 0xFF, 2]), 0x200);
        assert_eq!(byte_sum(&[]), 0);
    }
}
