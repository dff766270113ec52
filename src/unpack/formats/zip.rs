//! ZIP archives and the Dahua update `.bin` (a ZIP whose signatures may read `DH` instead of `PK`),
//! read in-house from PKWARE's APPNOTE.TXT: end record (with comment, ZIP64), central directory
//! cross-checked against local headers, bounded decompression, CRC-32 per entry, true extent.
//!
//! The central directory is the authority (names, sizes, unix modes). Entries whose byte ranges
//! overlap (David Fifield's overlapping-entry bomb) are listed but never decompressed, and the
//! whole archive may expand at most [`Budget::max_expansion`] of its own size (entries whose claimed
//! sizes fit it are decompressed in parallel; deflate entries of known size go through libdeflate
//! in one call, [`codec::inflate_exact`]). Without an end record (a truncated archive) the local
//! headers are walked instead and the archive is reported truncated with whatever entries were
//! complete. The `zip` crate was not used: it cannot read `DH`
//! signatures without rewriting the bytes, which would corrupt stored nested images.
//!
//! [`Budget::max_expansion`]: crate::unpack::Budget::max_expansion

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use bytes::Bytes;
use rayon::prelude::*;

use super::{Ctx, Format, Magic, path_escapes};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{Reader, slice};
use crate::unpack::codec::{self, Codec};
use crate::unpack::limits::LimitError;
use crate::unpack::tree::{Child, EntryKind, Unpacked};

/// Plain ZIP (`PK\x03\x04`).
pub struct Zip;

/// Dahua firmware update `.bin`: a ZIP whose first local header reads `DH\x03\x04`.
pub struct Dahua;

impl Format for Zip {
    fn name(&self) -> &'static str {
        "zip"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(b"PK\x03\x04")];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        plausible_local_header(data)
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        read(data, ctx)
    }
}

impl Format for Dahua {
    fn name(&self) -> &'static str {
        "dahua"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(b"DH\x03\x04")];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        plausible_local_header(data)
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        read(data, ctx)
    }
}

/// The second half of each signature; the first half is `PK` (or `DH` in Dahua files).
const LOCAL: [u8; 2] = [3, 4];
const CENTRAL: [u8; 2] = [1, 2];
const END: [u8; 2] = [5, 6];
const END64: [u8; 2] = [6, 6];
const LOCATOR64: [u8; 2] = [6, 7];
const DESCRIPTOR: [u8; 2] = [7, 8];

const CENTRAL_LEN: u64 = 46;
const END_LEN: u64 = 22;
const LOCATOR64_LEN: u64 = 20;
/// How far past the walked entries (beyond five times their size) an end record is looked for.
const SEARCH_SLACK: u64 = 64 << 10;

const FLAG_ENCRYPTED: u16 = 1;
const FLAG_LZMA_EOS: u16 = 1 << 1;
const FLAG_DESCRIPTOR: u16 = 1 << 3;
const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;
const METHOD_AES: u16 = 99;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFIFO: u32 = 0o010_000;
const S_IFSOCK: u32 = 0o140_000;
const HOST_UNIX: u16 = 3;

/// Whether `data` starts with signature `kind` in its `PK` or `DH` spelling.
fn sig_at(data: &[u8], offset: u64, kind: [u8; 2]) -> bool {
    let Ok(o) = usize::try_from(offset) else {
        return false;
    };
    matches!(
        data.get(o..).and_then(|d| d.get(..4)),
        Some([b'P', b'K', a, b] | [b'D', b'H', a, b]) if [*a, *b] == kind
    )
}

/// A cheap structural check of the first local header: a known method, a name without control
/// characters, and (when the header states its size) data that fit and are followed by another
/// ZIP record. `PK\x03\x04` occurs by chance in code and compressed data; this keeps such hits from
/// becoming error regions.
fn plausible_local_header(data: &[u8]) -> bool {
    let Ok(h) = LocalHeader::parse(data, 0) else {
        return false;
    };
    // Version needed: low byte is the spec version (at most 6.3 today), high byte a host code.
    let version_ok = (h.version & 0xFF) <= 100;
    let name_ok = h.name_len > 0 && h.name_len <= 4096 && h.name.iter().all(|&b| b >= 0x20);
    let method_ok = matches!(h.method, 0..=10 | 12 | 14 | 18 | 19 | 93..=99);
    if !(version_ok && name_ok && method_ok && h.data_start <= data.len() as u64) {
        return false;
    }
    if h.flags & FLAG_DESCRIPTOR != 0 && h.compressed == 0 {
        return true; // sizes follow the data: nothing cheap to check
    }
    let Some(end) = h.data_start.checked_add(h.compressed) else {
        return false;
    };
    let next = skip_descriptor(data, h.flags, end);
    [LOCAL, CENTRAL, END, DESCRIPTOR]
        .into_iter()
        .any(|kind| sig_at(data, next, kind))
}

/// A local file header.
struct LocalHeader {
    version: u16,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    name_len: u64,
    name: Vec<u8>,
    /// Offset (from the archive start) of the entry's data.
    data_start: u64,
}

impl LocalHeader {
    fn parse(data: &[u8], at: u64) -> Result<Self, UnpackError> {
        if !sig_at(data, at, LOCAL) {
            return Err(UnpackError::Corrupt(format!(
                "zip: no local header at offset {at:#x}"
            )));
        }
        let mut r = Reader::new(data);
        r.seek(at.saturating_add(4), "zip local header")?;
        let version = r.u16("zip local header")?;
        let flags = r.u16("zip local header")?;
        let method = r.u16("zip local header")?;
        r.skip(4, "zip local header")?;
        let crc = r.u32("zip local header")?;
        let compressed = u64::from(r.u32("zip local header")?);
        let uncompressed = u64::from(r.u32("zip local header")?);
        let name_len = u64::from(r.u16("zip local header")?);
        let extra_len = u64::from(r.u16("zip local header")?);
        let name = r.bytes(name_len, "zip local file name")?.to_vec();
        let extra = r.bytes(extra_len, "zip local extra field")?;
        let mut sizes = Zip64Sizes {
            uncompressed,
            compressed,
            local: 0,
        };
        sizes.apply_extra(extra, false);
        Ok(Self {
            version,
            flags,
            method,
            crc,
            compressed: sizes.compressed,
            uncompressed: sizes.uncompressed,
            name_len,
            name,
            data_start: r.pos() as u64,
        })
    }
}

/// Sizes and offset that a ZIP64 extra field (id 1) may replace.
struct Zip64Sizes {
    uncompressed: u64,
    compressed: u64,
    local: u64,
}

impl Zip64Sizes {
    /// Replaces the fields stored as 0xFFFFFFFF by their ZIP64 values, in the spec's order.
    fn apply_extra(&mut self, mut extra: &[u8], has_offset: bool) {
        while let (Some(&[a, b, c, d]), rest) = (extra.get(..4), extra.get(4..).unwrap_or_default())
        {
            let id = u16::from_le_bytes([a, b]);
            let len = usize::from(u16::from_le_bytes([c, d]));
            let body = rest.get(..len).unwrap_or(rest);
            if id == 1 {
                let mut r = Reader::new(body);
                if self.uncompressed == u64::from(u32::MAX) {
                    match r.u64("zip64 extra") {
                        Ok(v) => self.uncompressed = v,
                        Err(_) => return,
                    }
                }
                if self.compressed == u64::from(u32::MAX) {
                    match r.u64("zip64 extra") {
                        Ok(v) => self.compressed = v,
                        Err(_) => return,
                    }
                }
                if has_offset
                    && self.local == u64::from(u32::MAX)
                    && let Ok(v) = r.u64("zip64 extra")
                {
                    self.local = v;
                }
                return;
            }
            extra = rest.get(len..).unwrap_or_default();
        }
    }
}

/// One central directory record.
struct CentralEntry {
    made_by: u16,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    name: Vec<u8>,
    external: u32,
    local: u64,
}

/// Where the central directory is and what the end record says.
struct Directory {
    cd_offset: u64,
    cd_size: u64,
    entries: u64,
    /// End of the archive: after the end record and its comment.
    end: u64,
    comment: Vec<u8>,
    zip64: bool,
    /// How much larger the recorded offsets are than offsets from the archive's first byte.
    shift: u64,
}

static END_SCANNER: LazyLock<Option<AhoCorasick>> =
    LazyLock::new(|| AhoCorasick::new([b"PK\x05\x06", b"DH\x05\x06"]).ok());

static DESCRIPTOR_SCANNER: LazyLock<Option<AhoCorasick>> =
    LazyLock::new(|| AhoCorasick::new([b"PK\x07\x08", b"DH\x07\x08"]).ok());

/// Finds the first end record before `reach` (searching forward from the archive start, so a ZIP
/// inside a larger blob ends where its own directory ends) whose directory sits right before it.
fn find_directory(
    data: &[u8],
    reach: u64,
    ctx: &Ctx<'_>,
) -> Result<Option<Directory>, UnpackError> {
    let Some(ac) = END_SCANNER.as_ref() else {
        return Ok(None);
    };
    // The record's signature must start before `reach`; the record itself may run past it.
    let window = usize::try_from(reach.saturating_add(3))
        .ok()
        .and_then(|end| data.get(..end.min(data.len())))
        .unwrap_or(data);
    for (i, m) in ac.find_iter(window).enumerate() {
        if i % 256 == 0 {
            ctx.check()?;
        }
        if let Some(dir) = directory_at(data, m.start() as u64) {
            return Ok(Some(dir));
        }
    }
    Ok(None)
}

/// Parses the end record at `at` and accepts it when its directory ends right before it (or before
/// the ZIP64 end record it points to).
fn directory_at(data: &[u8], at: u64) -> Option<Directory> {
    let mut r = Reader::new(data);
    r.seek(at.checked_add(4)?, "").ok()?;
    let disk = r.u16("").ok()?;
    let cd_disk = r.u16("").ok()?;
    let _entries_here = r.u16("").ok()?;
    let entries = r.u16("").ok()?;
    let cd_size = r.u32("").ok()?;
    let cd_offset = r.u32("").ok()?;
    let comment_len = u64::from(r.u16("").ok()?);
    let comment_start = at.checked_add(END_LEN)?;
    let end = comment_start
        .checked_add(comment_len)?
        .min(data.len() as u64);
    let comment = slice(data, comment_start, end.saturating_sub(comment_start), "")
        .ok()?
        .to_vec();
    let wants64 =
        entries == u16::MAX || cd_size == u32::MAX || cd_offset == u32::MAX || disk == u16::MAX;
    if wants64 && let Some(dir) = directory64(data, at, end, comment.clone()) {
        return Some(dir);
    }
    if disk != 0 || cd_disk != 0 {
        return None;
    }
    let (cd_offset, cd_size) = (u64::from(cd_offset), u64::from(cd_size));
    let cd_start = at.checked_sub(cd_size)?;
    // Offsets count from the archive's start, or, for an archive appended to other data with its
    // offsets adjusted (self-extracting, `zip -A`), from that data's start, `shift` bytes earlier.
    // Never from a later point: that is the end record of an archive stored inside this one.
    let shift = cd_offset.checked_sub(cd_start)?;
    if shift != 0 && !sig_at(data, cd_start, CENTRAL) {
        return None;
    }
    Some(Directory {
        cd_offset: cd_start,
        cd_size,
        entries: u64::from(entries),
        end,
        comment,
        zip64: false,
        shift,
    })
}

/// The ZIP64 end record that the locator before the end record at `at` points to.
fn directory64(data: &[u8], at: u64, end: u64, comment: Vec<u8>) -> Option<Directory> {
    let locator = at.checked_sub(LOCATOR64_LEN)?;
    if !sig_at(data, locator, LOCATOR64) {
        return None;
    }
    let mut r = Reader::new(data);
    r.seek(locator + 8, "").ok()?;
    let record = r.u64("").ok()?;
    if !sig_at(data, record, END64) {
        return None;
    }
    r.seek(record.checked_add(24)?, "").ok()?;
    let _entries_here = r.u64("").ok()?;
    let entries = r.u64("").ok()?;
    let cd_size = r.u64("").ok()?;
    let cd_offset = r.u64("").ok()?;
    (cd_offset.checked_add(cd_size)? == record).then_some(Directory {
        cd_offset,
        cd_size,
        entries,
        end,
        comment,
        zip64: true,
        shift: 0,
    })
}

/// Reads the central directory records.
fn read_central(
    data: &[u8],
    dir: &Directory,
    ctx: &Ctx<'_>,
) -> Result<Vec<CentralEntry>, UnpackError> {
    // Every record takes at least 46 bytes: cap the count by what the directory could hold.
    if dir.entries > dir.cd_size / CENTRAL_LEN {
        return Err(UnpackError::Corrupt(format!(
            "zip: end record announces {} entries, a {}-byte central directory holds at most {}",
            dir.entries,
            dir.cd_size,
            dir.cd_size / CENTRAL_LEN
        )));
    }
    ctx.entries(dir.entries)?;
    let cd = slice(data, dir.cd_offset, dir.cd_size, "zip central directory")?;
    let mut out = Vec::with_capacity(usize::try_from(dir.entries).unwrap_or(0));
    let mut r = Reader::new(cd);
    // Read every record the directory holds: writers that overflow the 16-bit count without
    // ZIP64 announce fewer entries than they wrote.
    let mut i = 0u64;
    while r.remaining() > 0 {
        ctx.check()?;
        let at = r.pos() as u64;
        if i >= dir.entries {
            if !sig_at(cd, at, CENTRAL) {
                break; // a digital signature record or padding after the announced entries
            }
            ctx.entries(1)?;
        }
        if !sig_at(cd, at, CENTRAL) {
            return Err(UnpackError::Corrupt(format!(
                "zip: central directory record {i} at offset {:#x} has no signature",
                dir.cd_offset.saturating_add(at)
            )));
        }
        i += 1;
        r.skip(4, "zip central directory")?;
        let made_by = r.u16("zip central directory")?;
        let _needed = r.u16("zip central directory")?;
        let flags = r.u16("zip central directory")?;
        let method = r.u16("zip central directory")?;
        r.skip(4, "zip central directory")?;
        let crc = r.u32("zip central directory")?;
        let compressed = u64::from(r.u32("zip central directory")?);
        let uncompressed = u64::from(r.u32("zip central directory")?);
        let name_len = u64::from(r.u16("zip central directory")?);
        let extra_len = u64::from(r.u16("zip central directory")?);
        let comment_len = u64::from(r.u16("zip central directory")?);
        r.skip(4, "zip central directory")?;
        let external = r.u32("zip central directory")?;
        let local = u64::from(r.u32("zip central directory")?);
        let name = r.bytes(name_len, "zip central file name")?.to_vec();
        let extra = r.bytes(extra_len, "zip central extra field")?;
        r.skip(comment_len, "zip central file comment")?;
        let mut sizes = Zip64Sizes {
            uncompressed,
            compressed,
            local,
        };
        sizes.apply_extra(extra, true);
        out.push(CentralEntry {
            made_by,
            flags,
            method,
            crc,
            compressed: sizes.compressed,
            uncompressed: sizes.uncompressed,
            name,
            external,
            local: sizes.local.checked_sub(dir.shift).unwrap_or(u64::MAX),
        });
    }
    Ok(out)
}

/// Reads a ZIP (or Dahua `.bin`) starting at `data[0]`.
fn read(data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
    let first = LocalHeader::parse(data, 0)?;
    let signature = if data.starts_with(b"DH") { "DH" } else { "PK" };
    // The end record is searched for only as far as the archive can reach: past the entries the
    // local headers delimit, room for a directory of that size and for stray bytes. A scan to the
    // end of the input for every candidate would make a flood of local headers quadratic.
    let walk = walk(data, first, ctx)?;
    let reach = walk
        .end
        .saturating_mul(5)
        .saturating_add(SEARCH_SLACK)
        .min(data.len() as u64);
    match find_directory(data, reach, ctx)? {
        Some(dir) => read_with_directory(data, &dir, ctx, signature),
        None => read_local_headers(data, walk, ctx, signature),
    }
}

/// An entry's place in the archive: from its local header to the end of its data.
struct Span {
    start: u64,
    data_start: u64,
    data_end: u64,
}

fn read_with_directory(
    data: &Bytes,
    dir: &Directory,
    ctx: &Ctx<'_>,
    signature: &str,
) -> Result<Unpacked, UnpackError> {
    let entries = read_central(data, dir, ctx)?;
    let mut out = Unpacked::new(dir.end)
        .meta("signature", signature)
        .meta("entries", entries.len())
        .meta(
            "comment",
            String::from_utf8_lossy(&dir.comment).into_owned(),
        )
        .meta("zip64", dir.zip64)
        .meta("offset_shift", dir.shift)
        .meta("central_directory", true);
    if entries.len() as u64 != dir.entries {
        out = out.meta("entries_announced", dir.entries);
    }

    // Where each entry's bytes are, checked against its local header.
    let mut spans: Vec<Result<Span, UnpackError>> = Vec::with_capacity(entries.len());
    for e in &entries {
        ctx.check()?;
        spans.push(span_of(data, e, dir.cd_offset));
    }
    let overlaps = find_overlaps(&spans, &entries);
    if let Some(first) = overlaps.iter().flatten().next() {
        out = out.partial(UnpackError::Corrupt(format!(
            "zip: {first}; entries that share bytes are an overlapping-entry zip bomb, not extracted"
        )));
    }

    let allowance = ctx.budget().max_expansion(dir.end);
    // The entries to decompress, with their bytes.
    let mut jobs: Vec<Option<(Entry<'_>, Bytes)>> = Vec::with_capacity(entries.len());
    for ((e, span), overlap) in entries.iter().zip(&spans).zip(&overlaps) {
        jobs.push(match (span, overlap) {
            (Ok(span), None) => {
                let raw = data.slice(to_usize(span.data_start)?..to_usize(span.data_end)?);
                Some((Entry::of(e), raw))
            }
            _ => None,
        });
    }
    let mut early = decode_in_parallel(&jobs, allowance, ctx);
    let mut produced = 0u64;
    let mut stop: Option<UnpackError> = None;
    for (((e, span), overlap), (job, early)) in entries
        .iter()
        .zip(spans)
        .zip(overlaps)
        .zip(jobs.iter().zip(early.iter_mut()))
    {
        ctx.check()?;
        let mode = unix_mode(e);
        let mut child = match (span, overlap, job) {
            (Err(err), _, _) => Child::file(e.name.clone(), Bytes::new()).with_error(err),
            (Ok(span), Some(why), _) => Child::file(e.name.clone(), Bytes::new())
                .with_offset(span.data_start)
                .with_error(UnpackError::Corrupt(format!("zip: {why}"))),
            // Every entry with a clean span has a job; this arm only completes the match.
            (Ok(span), None, None) => {
                Child::file(e.name.clone(), Bytes::new()).with_offset(span.data_start)
            }
            (Ok(span), None, Some((entry, raw))) => match &stop {
                Some(limit) => Child::file(e.name.clone(), Bytes::new())
                    .with_error(UnpackError::Unsupported(format!("not extracted: {limit}"))),
                None => {
                    let c = extract(
                        entry,
                        raw,
                        ctx,
                        &mut produced,
                        allowance,
                        dir.end,
                        early.take(),
                    );
                    if let Some(UnpackError::Limit(l)) = &c.error {
                        stop = Some(UnpackError::Limit(l.clone()));
                    }
                    c
                }
            }
            .with_offset(span.data_start),
        };
        child = child
            .with_meta("method", method_name(e.method))
            .with_meta("compressed_size", e.compressed);
        if let Some(m) = mode {
            child.mode = Some(m);
        }
        out.children.push(child);
    }
    if let Some(limit) = stop
        && out.error.is_none()
    {
        out = out.partial(limit);
    }
    Ok(out)
}

/// Locates an entry's data through its local header; the data must end before the directory.
fn span_of(data: &[u8], e: &CentralEntry, cd_offset: u64) -> Result<Span, UnpackError> {
    let local = LocalHeader::parse(data, e.local).map_err(|err| match err {
        UnpackError::Truncated(m) => UnpackError::Truncated(m),
        _ => UnpackError::Corrupt(format!(
            "zip: entry's local header at offset {:#x} is missing",
            e.local
        )),
    })?;
    let data_end = local
        .data_start
        .checked_add(e.compressed)
        .ok_or_else(|| UnpackError::Corrupt("zip: entry size overflows".into()))?;
    if data_end > cd_offset {
        return Err(UnpackError::Corrupt(format!(
            "zip: entry data {:#x}..{data_end:#x} runs into the central directory at {cd_offset:#x}",
            local.data_start
        )));
    }
    Ok(Span {
        start: e.local,
        data_start: local.data_start,
        data_end,
    })
}

/// For each entry, a description of the earlier entry its bytes overlap, if any.
fn find_overlaps(
    spans: &[Result<Span, UnpackError>],
    entries: &[CentralEntry],
) -> Vec<Option<String>> {
    let mut order: Vec<usize> = (0..spans.len())
        .filter(|&i| matches!(spans.get(i), Some(Ok(_))))
        .collect();
    let start = |i: usize| match spans.get(i) {
        Some(Ok(s)) => (s.start, s.data_end),
        _ => (0, 0),
    };
    order.sort_by_key(|&i| start(i));
    let mut out = vec![None; spans.len()];
    let mut reach: Option<(u64, usize)> = None;
    for i in order {
        let (s, end) = start(i);
        if let Some((prev_end, prev)) = reach {
            if s < prev_end {
                let name = |k: usize| {
                    entries
                        .get(k)
                        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                        .unwrap_or_default()
                };
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(format!(
                        "entry '{}' overlaps the bytes of entry '{}'",
                        name(i),
                        name(prev)
                    ));
                }
            }
            if end > prev_end {
                reach = Some((end, i));
            }
        } else {
            reach = Some((end, i));
        }
    }
    out
}

fn to_usize(v: u64) -> Result<usize, UnpackError> {
    usize::try_from(v).map_err(|_| UnpackError::Corrupt("zip: offset beyond address space".into()))
}

/// What extraction needs to know about one entry.
struct Entry<'a> {
    name: &'a [u8],
    flags: u16,
    method: u16,
    crc: u32,
    uncompressed: u64,
    mode: Option<u32>,
}

impl<'a> Entry<'a> {
    fn of(e: &'a CentralEntry) -> Self {
        Entry {
            name: &e.name,
            flags: e.flags,
            method: e.method,
            crc: e.crc,
            uncompressed: e.uncompressed,
            mode: unix_mode(e),
        }
    }

    fn is_dir(&self) -> bool {
        self.name.ends_with(b"/") || self.mode.map(|m| m & S_IFMT) == Some(S_IFDIR)
    }

    fn is_encrypted(&self) -> bool {
        self.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) != 0 || self.method == METHOD_AES
    }

    /// Whether [`extract`] decompresses this entry.
    fn is_decoded(&self) -> bool {
        !self.is_dir() && !self.is_encrypted()
    }
}

/// Decompresses an entry as [`extract`] does, without the archive-wide accounting.
fn decode_checked(e: &Entry<'_>, raw: &Bytes, ctx: &Ctx<'_>) -> Result<Bytes, UnpackError> {
    ctx.claimed_size(e.uncompressed)
        .and_then(|()| decode(e, raw, ctx))
}

/// Decompresses the entries of `jobs` in parallel when their sizes together fit the archive's
/// `allowance`, so one large member does not keep the other core idle; the sequential pass then
/// only checks and attaches the results. When the claims exceed the allowance (a bomb, or lying
/// sizes) nothing is decoded here: the sequential pass decodes entry by entry and stops at the
/// first that breaks the allowance, exactly as before.
fn decode_in_parallel(
    jobs: &[Option<(Entry<'_>, Bytes)>],
    allowance: u64,
    ctx: &Ctx<'_>,
) -> Vec<Option<Result<Bytes, UnpackError>>> {
    let claimed = jobs
        .iter()
        .flatten()
        .filter(|(e, _)| e.method != 0 && e.is_decoded())
        .fold(0u64, |sum, (e, _)| sum.saturating_add(e.uncompressed));
    let worth = jobs
        .iter()
        .flatten()
        .filter(|(e, _)| e.method != 0 && e.is_decoded())
        .count()
        > 1;
    if claimed > allowance || !worth {
        return jobs.iter().map(|_| None).collect();
    }
    jobs.par_iter()
        .map(|job| match job {
            Some((e, raw)) if e.is_decoded() => Some(decode_checked(e, raw, ctx)),
            _ => None,
        })
        .collect()
}

/// Decompresses and checks one entry; every failure stays on the entry.
fn extract(
    e: &Entry<'_>,
    raw: &Bytes,
    ctx: &Ctx<'_>,
    produced: &mut u64,
    allowance: u64,
    archive_len: u64,
    early: Option<Result<Bytes, UnpackError>>,
) -> Child {
    let kind = e.mode.map(|m| m & S_IFMT);
    let mut child = if e.is_dir() {
        Child::dir(e.name.to_vec())
    } else if e.is_encrypted() {
        Child::file(e.name.to_vec(), Bytes::new())
            .with_meta("encrypted", true)
            .with_error(UnpackError::Unsupported(format!(
                "zip: entry is encrypted ({})",
                method_name(e.method)
            )))
    } else {
        let ratio_error = || {
            UnpackError::Limit(LimitError::Ratio {
                max: ctx.budget().limits().max_ratio,
                input: archive_len,
            })
        };
        let decoded = if e.method != 0 && produced.saturating_add(e.uncompressed) > allowance {
            Err(ratio_error())
        } else {
            early.unwrap_or_else(|| decode_checked(e, raw, ctx))
        };
        let decoded = decoded.and_then(|d| {
            if e.method != 0 {
                *produced = produced.saturating_add(d.len() as u64);
                if *produced > allowance {
                    return Err(ratio_error());
                }
            }
            Ok(d)
        });
        match decoded {
            Err(err) => Child::file(e.name.to_vec(), Bytes::new()).with_error(err),
            Ok(bytes) => {
                let crc_ok = crc32fast::hash(&bytes) == e.crc;
                let size_ok = bytes.len() as u64 == e.uncompressed;
                let mut c = if kind == Some(S_IFLNK) {
                    Child::symlink(e.name.to_vec(), bytes.to_vec())
                } else if matches!(kind, Some(S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK)) {
                    Child::new(e.name.to_vec(), EntryKind::Device, Bytes::new())
                } else {
                    Child::file(e.name.to_vec(), bytes.clone())
                };
                c = c.with_meta("crc_ok", crc_ok);
                if !crc_ok {
                    c = c.with_error(UnpackError::Corrupt(format!(
                        "zip: CRC-32 mismatch (stored {:#010x}, computed {:#010x})",
                        e.crc,
                        crc32fast::hash(&bytes)
                    )));
                } else if !size_ok {
                    c = c.with_error(UnpackError::Corrupt(format!(
                        "zip: entry holds {} bytes, the directory says {}",
                        bytes.len(),
                        e.uncompressed
                    )));
                }
                c
            }
        }
    };
    if path_escapes(e.name) {
        child = child.with_meta("unsafe_path", true);
    }
    child
}

/// Decompresses one entry's data per its method.
fn decode(e: &Entry<'_>, raw: &Bytes, ctx: &Ctx<'_>) -> Result<Bytes, UnpackError> {
    let run = |codec: Codec, input: &[u8]| -> Result<Bytes, UnpackError> {
        Ok(Bytes::from(codec::decode(codec, input, ctx)?.data))
    };
    match e.method {
        0 => Ok(raw.clone()),
        8 => match codec::inflate_exact(raw, e.uncompressed, ctx) {
            Some(decoded) => decoded.map(Bytes::from),
            None => run(Codec::Deflate, raw),
        },
        12 => run(Codec::Bzip2, raw),
        14 => {
            // ZIP's LZMA: version (2), properties size (2), properties (5), raw stream. Rebuilt as
            // an `.lzma` ("alone") header so the shared decoder can read it.
            let mut r = Reader::new(raw);
            r.skip(2, "zip lzma header")?;
            let props_len = u64::from(r.u16("zip lzma header")?);
            if props_len != 5 {
                return Err(UnpackError::Corrupt(format!(
                    "zip lzma: {props_len}-byte properties (expected 5)"
                )));
            }
            let props = r.bytes(5, "zip lzma properties")?;
            let stream = raw.get(r.pos()..).unwrap_or_default();
            let size = if e.flags & FLAG_LZMA_EOS != 0 {
                u64::MAX
            } else {
                e.uncompressed
            };
            let mut alone = Vec::with_capacity(13usize.saturating_add(stream.len()));
            alone.extend_from_slice(props);
            alone.extend_from_slice(&size.to_le_bytes());
            alone.extend_from_slice(stream);
            run(Codec::Lzma, &alone)
        }
        93 => run(Codec::Zstd, raw),
        95 => run(Codec::Xz, raw),
        m => Err(UnpackError::Unsupported(format!(
            "zip: compression method {m} ({})",
            method_name(m)
        ))),
    }
}

/// Unix mode bits from the external attributes, when the archive was made on a unix host (or says
/// so anyway).
fn unix_mode(e: &CentralEntry) -> Option<u32> {
    let mode = e.external >> 16;
    ((e.made_by >> 8) == HOST_UNIX || mode != 0)
        .then_some(mode)
        .filter(|&m| m != 0)
}

/// Name of a compression method (APPNOTE 4.4.5).
pub fn method_name(method: u16) -> &'static str {
    match method {
        0 => "stored",
        1 => "shrunk",
        2..=5 => "reduced",
        6 => "imploded",
        8 => "deflate",
        9 => "deflate64",
        10 => "pkware-implode",
        12 => "bzip2",
        14 => "lzma",
        18 => "ibm-terse",
        19 => "lz77",
        93 => "zstd",
        95 => "xz",
        96 => "jpeg",
        97 => "wavpack",
        98 => "ppmd",
        99 => "aes",
        _ => "unknown",
    }
}

/// One entry found by walking the local headers.
struct Walked {
    header: LocalHeader,
    compressed: u64,
    uncompressed: u64,
    crc: u32,
}

/// The local headers, followed from the first one by their sizes.
struct Walk {
    entries: Vec<Walked>,
    /// Where the walk stopped: the end of the last complete entry (or of the input when the last
    /// entry is cut).
    end: u64,
    /// The entry that could not be delimited, and why.
    cut: Option<(LocalHeader, UnpackError)>,
}

/// Follows the local headers from `first` as far as their sizes lead. Costs what the archive's
/// own headers cost, never a scan of the rest of the input.
fn walk(data: &[u8], first: LocalHeader, ctx: &Ctx<'_>) -> Result<Walk, UnpackError> {
    let mut entries = Vec::new();
    let mut pos = 0u64;
    let mut header = Some(first);
    while let Some(h) = header.take() {
        ctx.check()?;
        match local_extent(data, &h, ctx) {
            Ok((compressed, uncompressed, crc, end)) => {
                entries.push(Walked {
                    header: h,
                    compressed,
                    uncompressed,
                    crc,
                });
                pos = end;
                header = LocalHeader::parse(data, pos).ok();
            }
            Err(err) => {
                return Ok(Walk {
                    entries,
                    end: data.len() as u64,
                    cut: Some((h, err)),
                });
            }
        }
    }
    Ok(Walk {
        entries,
        end: pos,
        cut: None,
    })
}

/// Without an end record: lists every entry the local headers delimit and reports the archive as
/// truncated.
fn read_local_headers(
    data: &Bytes,
    walk: Walk,
    ctx: &Ctx<'_>,
    signature: &str,
) -> Result<Unpacked, UnpackError> {
    let recovered = walk.entries.len();
    let mut pos = walk.end;
    let mut why = match &walk.cut {
        Some((h, err)) => {
            let name = String::from_utf8_lossy(&h.name).into_owned();
            let detail = match err {
                UnpackError::Truncated(_) => format!("zip: archive cut inside entry '{name}'"),
                _ => format!("zip: entry '{name}' cannot be delimited: {err}"),
            };
            UnpackError::Truncated(format!(
                "{detail}; no central directory, {recovered} entries recovered from local headers"
            ))
        }
        None => cut_reason(data, pos, recovered),
    };
    if recovered == 0 && walk.cut.is_none() {
        return Err(why);
    }
    let mut children = Vec::new();
    let mut produced = 0u64;
    let allowance = ctx.budget().max_expansion(data.len() as u64);
    for w in &walk.entries {
        ctx.check()?;
        ctx.entries(1)?;
        let h = &w.header;
        let raw = data
            .slice(to_usize(h.data_start)?..to_usize(h.data_start.saturating_add(w.compressed))?);
        let entry = Entry {
            name: &h.name,
            flags: h.flags,
            method: h.method,
            crc: w.crc,
            uncompressed: w.uncompressed,
            mode: None,
        };
        let child = extract(
            &entry,
            &raw,
            ctx,
            &mut produced,
            allowance,
            data.len() as u64,
            None,
        )
        .with_offset(h.data_start)
        .with_meta("method", method_name(h.method))
        .with_meta("compressed_size", w.compressed);
        let limit = match &child.error {
            Some(UnpackError::Limit(l)) => Some(l.clone()),
            _ => None,
        };
        children.push(child);
        if let Some(l) = limit {
            why = UnpackError::Limit(l);
            break;
        }
    }
    if let Some((h, err)) = walk.cut {
        ctx.entries(1)?;
        children.push(Child::file(h.name, Bytes::new()).with_error(err));
    }
    pos = directory_records_end(data, pos, ctx)?;
    let mut out = Unpacked::new(pos.max(1))
        .meta("signature", signature)
        .meta("entries", children.len())
        .meta("zip64", false)
        .meta("central_directory", false)
        .partial(why);
    out.children = children;
    Ok(out)
}

/// Where the central directory records that start at `pos` end, when no end record follows them:
/// after the last whole record, or at the end of the input when the last record is cut there.
fn directory_records_end(data: &[u8], mut pos: u64, ctx: &Ctx<'_>) -> Result<u64, UnpackError> {
    let len = data.len() as u64;
    while sig_at(data, pos, CENTRAL) {
        ctx.check()?;
        let mut r = Reader::new(data);
        let lengths = r
            .seek(pos.saturating_add(28), "zip central directory")
            .and_then(|()| {
                let n = u64::from(r.u16("zip central directory")?);
                let e = u64::from(r.u16("zip central directory")?);
                let c = u64::from(r.u16("zip central directory")?);
                Ok(n + e + c)
            });
        let Ok(variable) = lengths else {
            return Ok(len);
        };
        let next = pos.saturating_add(CENTRAL_LEN).saturating_add(variable);
        if next > len {
            return Ok(len);
        }
        pos = next;
    }
    Ok(pos)
}

/// Why the local-header walk ended at `pos`, and how far the archive really goes: a directory
/// record there means the directory was cut, anything else that the archive ends.
fn cut_reason(data: &[u8], pos: u64, recovered: usize) -> UnpackError {
    let what = if sig_at(data, pos, CENTRAL) {
        format!("the central directory at offset {pos:#x} is cut before its end record")
    } else {
        format!("no central directory follows the last entry (offset {pos:#x})")
    };
    UnpackError::Truncated(format!(
        "zip: {what}; {recovered} entries recovered from local headers"
    ))
}

/// A local entry's compressed size, uncompressed size, CRC and end, using its data descriptor
/// when the header defers them.
fn local_extent(
    data: &[u8],
    h: &LocalHeader,
    ctx: &Ctx<'_>,
) -> Result<(u64, u64, u32, u64), UnpackError> {
    if h.flags & FLAG_DESCRIPTOR == 0 || h.compressed != 0 {
        let end = h
            .data_start
            .checked_add(h.compressed)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| {
                UnpackError::Truncated(format!(
                    "zip entry '{}': needs {} bytes at offset {:#x}, input has {}",
                    String::from_utf8_lossy(&h.name),
                    h.compressed,
                    h.data_start,
                    data.len()
                ))
            })?;
        let end = skip_descriptor(data, h.flags, end);
        return Ok((h.compressed, h.uncompressed, h.crc, end));
    }
    // Sizes follow the data: find a descriptor whose compressed size matches its distance.
    let Some(ac) = DESCRIPTOR_SCANNER.as_ref() else {
        return Err(UnpackError::Unsupported("zip: descriptor search".into()));
    };
    let start = to_usize(h.data_start)?;
    let tail = data.get(start..).unwrap_or_default();
    for (i, m) in ac.find_iter(tail).enumerate() {
        if i % 256 == 0 {
            ctx.check()?;
        }
        let at = h.data_start.saturating_add(m.start() as u64);
        let mut r = Reader::new(data);
        if r.seek(at.saturating_add(4), "zip data descriptor").is_err() {
            continue;
        }
        let (Ok(crc), Ok(csize), Ok(usize_)) = (
            r.u32("zip data descriptor"),
            r.u32("zip data descriptor"),
            r.u32("zip data descriptor"),
        ) else {
            continue;
        };
        if u64::from(csize) == m.start() as u64 {
            return Ok((
                u64::from(csize),
                u64::from(usize_),
                crc,
                at.saturating_add(16),
            ));
        }
    }
    Err(UnpackError::Truncated(format!(
        "zip entry '{}': its data descriptor was not found",
        String::from_utf8_lossy(&h.name)
    )))
}

/// Skips the data descriptor (with or without its optional signature) after an entry's data.
fn skip_descriptor(data: &[u8], flags: u16, end: u64) -> u64 {
    if flags & FLAG_DESCRIPTOR == 0 {
        return end;
    }
    if sig_at(data, end, DESCRIPTOR) {
        // Signature, CRC, sizes (4 or 8 bytes each): the next local header tells which.
        for len in [16u64, 24] {
            let next = end.saturating_add(len);
            if sig_at(data, next, LOCAL) || sig_at(data, next, CENTRAL) {
                return next;
            }
        }
        end.saturating_add(16)
    } else {
        end.saturating_add(12)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{Limits, unpack};

    fn local(name: &[u8], method: u16, crc: u32, csize: u32, usize_: u32) -> Vec<u8> {
        let mut h = b"PK\x03\x04".to_vec();
        h.extend_from_slice(&20u16.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&method.to_le_bytes());
        h.extend_from_slice(&[0; 4]);
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&csize.to_le_bytes());
        h.extend_from_slice(&usize_.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(name);
        h
    }

    /// A ZIP of deflated members (the `zip` crate's writer), with what each holds.
    fn deflated(members: usize) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let mut put = Vec::new();
        for i in 0..members {
            let name = format!("part{i}.bin");
            // Text-like runs with a counter: compressible, different per member.
            let body: Vec<u8> = (0..20_000 + 7_919 * i)
                .flat_map(|k| format!("line {k} of member {i}\n").into_bytes())
                .collect();
            w.start_file(name.as_str(), opts).unwrap();
            w.write_all(&body).unwrap();
            put.push((name, body));
        }
        (w.finish().unwrap().into_inner(), put)
    }

    #[test]
    fn members_decoded_in_parallel_equal_the_serial_decode() {
        let (z, put) = deflated(6);
        let data = Bytes::from(z);
        let budget = crate::unpack::Budget::new(Limits::default());
        let ctx = Ctx::new(&budget);
        let dir = find_directory(&data, data.len() as u64, &ctx)
            .unwrap()
            .unwrap();
        let entries = read_central(&data, &dir, &ctx).unwrap();
        let jobs: Vec<Option<(Entry<'_>, Bytes)>> = entries
            .iter()
            .map(|e| {
                let span = span_of(&data, e, dir.cd_offset).unwrap();
                let raw = data.slice(span.data_start as usize..span.data_end as usize);
                Some((Entry::of(e), raw))
            })
            .collect();
        let parallel = decode_in_parallel(&jobs, u64::MAX, &ctx);
        assert_eq!(parallel.len(), put.len());
        for ((job, early), (name, body)) in jobs.iter().zip(&parallel).zip(&put) {
            let (e, raw) = job.as_ref().unwrap();
            let serial = decode_checked(e, raw, &ctx).unwrap();
            let early = early.as_ref().unwrap().as_ref().unwrap();
            assert_eq!(early, &serial, "{name}");
            assert_eq!(&early[..], &body[..], "{name}");
        }
        // Claims beyond the allowance: nothing is decoded up front.
        let claimed: u64 = put.iter().map(|(_, b)| b.len() as u64).sum();
        let none = decode_in_parallel(&jobs, claimed - 1, &ctx);
        assert!(none.iter().all(Option::is_none));
        // The whole archive through the engine: every member listed with its bytes.
        let u = Zip.unpack(&data, &ctx).unwrap();
        assert_eq!(u.children.len(), put.len());
        for (c, (name, body)) in u.children.iter().zip(&put) {
            assert_eq!(c.name, name.as_bytes());
            assert_eq!(&c.data[..], &body[..], "{name}");
            assert!(c.error.is_none(), "{name}: {:?}", c.error);
        }
    }

    /// Rewrites the uncompressed size of every member, in its local header and the directory.
    fn claim_size(z: &mut [u8], size: u32) {
        for sig in [&b"PK\x03\x04"[..], b"PK\x01\x02"] {
            let at: Vec<usize> = z
                .windows(4)
                .enumerate()
                .filter(|(_, w)| *w == sig)
                .map(|(i, _)| i)
                .collect();
            let field = if sig[2] == 3 { 22 } else { 24 };
            for i in at {
                z[i + field..i + field + 4].copy_from_slice(&size.to_le_bytes());
            }
        }
    }

    #[test]
    fn lying_sizes_give_the_streaming_decoders_errors() {
        let (mut z, put) = deflated(3);
        claim_size(&mut z, 100);
        let data = Bytes::from(z);
        let budget = crate::unpack::Budget::new(Limits::default());
        let u = Zip.unpack(&data, &Ctx::new(&budget)).unwrap();
        for (c, (name, body)) in u.children.iter().zip(&put) {
            let e = c.error.as_ref().unwrap().to_string();
            assert_eq!(
                e,
                format!(
                    "corrupt: zip: entry holds {} bytes, the directory says 100",
                    body.len()
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn bit_flipped_members_error_cleanly() {
        let (z, _) = deflated(4);
        // Flip bytes inside the first member's deflate data, one at a time.
        let start = LocalHeader::parse(&z, 0).unwrap().data_start as usize;
        for k in [0usize, 5, 40, 200] {
            let mut bad = z.clone();
            bad[start + k] ^= 0x55;
            let data = Bytes::from(bad);
            let budget = crate::unpack::Budget::new(Limits::default());
            let u = Zip.unpack(&data, &Ctx::new(&budget)).unwrap();
            let first = &u.children[0];
            assert!(first.error.is_some(), "flip at {k} went unnoticed");
            // The other members are untouched.
            assert!(u.children[1..].iter().all(|c| c.error.is_none()));
        }
    }

    #[test]
    fn method_names_follow_appnote() {
        assert_eq!(method_name(8), "deflate");
        assert_eq!(method_name(14), "lzma");
        assert_eq!(method_name(93), "zstd");
        assert_eq!(method_name(7), "unknown");
    }

    #[test]
    fn detect_rejects_implausible_headers() {
        let mut good = local(b"a.txt", 0, crc32fast::hash(b"abc"), 3, 3);
        good.extend_from_slice(b"abcPK\x01\x02");
        assert!(plausible_local_header(&good));
        assert!(!plausible_local_header(&good[..20]));
        assert!(
            !plausible_local_header(&good[..good.len() - 4]),
            "nothing after the data"
        );
        let mut nameless = local(b"", 0, 0, 0, 0);
        nameless.extend_from_slice(b"PK\x01\x02");
        assert!(!plausible_local_header(&nameless));
        let mut control = local(b"a\0b", 0, 0, 0, 0);
        control.extend_from_slice(b"PK\x01\x02");
        assert!(!plausible_local_header(&control));
        let mut method = local(b"a", 200, 0, 0, 0);
        method.extend_from_slice(b"PK\x01\x02");
        assert!(!plausible_local_header(&method));
        let mut huge = local(b"a", 0, 0, 0x7FFF_0001, 0x7FFF_0001);
        huge.extend_from_slice(b"PK\x01\x02");
        assert!(!plausible_local_header(&huge));
    }

    #[test]
    fn archive_without_directory_is_truncated_but_listed() {
        let mut z = local(b"a.txt", 0, crc32fast::hash(b"hello"), 5, 5);
        z.extend_from_slice(b"hello");
        z.extend_from_slice(&local(b"b.txt", 0, 0, 100, 100));
        z.extend_from_slice(b"only part");
        let tree = unpack(Bytes::from(z), b"t.zip", &Limits::default());
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("zip"));
        assert!(
            matches!(root.error, Some(UnpackError::Truncated(_))),
            "{:?}",
            root.error
        );
        assert_eq!(&tree.find("t.zip/a.txt").unwrap().data[..], b"hello");
        assert!(tree.find("t.zip/b.txt").unwrap().error.is_some());
    }

    #[test]
    fn end_record_must_point_at_its_directory() {
        // An end record whose directory would start before the archive is not accepted.
        let mut z = vec![0u8; 10];
        z.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0\x2e\0\0\0\x40\0\0\0\0\0");
        assert!(directory_at(&z, 10).is_none());
    }
}
