//! Whole-blob carving: one multi-pattern scan (an Aho–Corasick automaton over every format's
//! magics, built once) finds candidates at any offset; each is validated by its format's `detect`,
//! then unpacked to learn its true extent. Regions that do not overlap become children, and the
//! stretches between them are classified as padding or opaque data.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};
use bytes::Bytes;
use rayon::prelude::*;

use super::UnpackError;
use super::formats::{Ctx, FORMATS};
use super::limits::{BlobAccount, LimitError};
use super::tree::{Gap, GapKind, Unpacked};

/// Magics shorter than this are searched byte by byte rather than through the automaton: the
/// automaton's prefilter (Teddy) filters on as many leading bytes as its shortest pattern has,
/// and two bytes let far too many positions through.
const AUTOMATON_MIN_LEN: usize = 3;

/// How every registered magic is searched for. Formats that only ever start on a flash page or
/// block boundary ([`Format::carve_alignment`] above 1: YAFFS2, ext) are checked directly at the
/// aligned offsets, since their magics begin with bytes (zeros, a 2-byte word) that occur
/// everywhere; magics of fewer than [`AUTOMATON_MIN_LEN`] bytes are found with `memchr` on
/// their first byte; all others go through one Aho-Corasick automaton.
struct Scanner {
    automaton: Option<AhoCorasick>,
    /// Automaton magics by first byte: (index into `FORMATS`, magic offset, magic bytes).
    by_first: Vec<Vec<(usize, usize, &'static [u8])>>,
    /// Short magics: (index into `FORMATS`, magic offset, magic bytes).
    short: Vec<(usize, usize, &'static [u8])>,
    /// Aligned magics: (index into `FORMATS`, magic offset, magic bytes, alignment).
    aligned: Vec<(usize, usize, &'static [u8], usize)>,
}

static SCANNER: LazyLock<Scanner> = LazyLock::new(|| {
    let mut automaton_magics: Vec<&'static [u8]> = Vec::new();
    let mut by_first: Vec<Vec<(usize, usize, &'static [u8])>> = vec![Vec::new(); 256];
    let mut short = Vec::new();
    let mut aligned = Vec::new();
    for (fi, f) in FORMATS.iter().enumerate() {
        let align = f.carve_alignment();
        for m in f.magics().iter().filter(|m| !m.bytes.is_empty()) {
            if align > 1 {
                aligned.push((fi, m.offset, m.bytes, align));
            } else if m.bytes.len() < AUTOMATON_MIN_LEN {
                short.push((fi, m.offset, m.bytes));
            } else {
                automaton_magics.push(m.bytes);
                if let Some(list) = m
                    .bytes
                    .first()
                    .and_then(|&b| by_first.get_mut(usize::from(b)))
                {
                    list.push((fi, m.offset, m.bytes));
                }
            }
        }
    }
    // Leftmost matching lets `scan` restart one byte after each hit's start (see there); a DFA
    // keeps the per-byte cost low where the prefilter cannot skip.
    let automaton = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&automaton_magics)
        .ok();
    Scanner {
        automaton,
        by_first,
        short,
        aligned,
    }
});

/// A place where a format's magic was seen: the structure would start at `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    /// Offset where the structure would start.
    pub start: usize,
    /// Index into [`FORMATS`].
    pub format: usize,
}

/// All candidates in `data`, sorted by offset and then by registry priority, without duplicates.
pub fn scan(data: &[u8]) -> Vec<Candidate> {
    scan_capped(data, usize::MAX).0
}

/// Hits of one search, at most `cap` of them, in offset order.
struct Hits {
    found: Vec<Candidate>,
    cap: usize,
    capped: bool,
}

impl Hits {
    fn new(cap: usize) -> Self {
        Self {
            found: Vec::new(),
            cap,
            capped: false,
        }
    }

    /// Records a magic seen at `hit`; false once the cap is reached.
    fn push(&mut self, hit: usize, format: usize, magic_offset: usize) -> bool {
        if self.found.len() >= self.cap {
            self.capped = true;
            return false;
        }
        if let Some(start) = hit.checked_sub(magic_offset) {
            self.found.push(Candidate { start, format });
        }
        true
    }
}

/// As [`scan`], keeping at most `cap` magic hits (a blob made of magics would otherwise cost
/// memory in proportion to its size); the flag says whether hits were dropped.
pub fn scan_capped(data: &[u8], cap: usize) -> (Vec<Candidate>, bool) {
    scan_capped_from(data, 0, cap)
}

/// As [`scan_capped`], looking only at magics from offset `from` on (a structure unpacked from
/// offset 0 already claimed everything before it). Offsets stay those of `data`; aligned magics
/// keep their alignment to `data`'s start.
pub fn scan_capped_from(data: &[u8], from: usize, cap: usize) -> (Vec<Candidate>, bool) {
    let scanner = &*SCANNER;
    let mut searches = [Hits::new(cap), Hits::new(cap), Hits::new(cap)];
    let [auto, short, aligned] = &mut searches;
    if let Some(ac) = &scanner.automaton {
        scan_automaton(scanner, ac, data, from, auto);
    }
    scan_short(scanner, data, from, short);
    scan_aligned(scanner, data, from, aligned);
    let capped = searches.iter().any(|h| h.capped);
    let mut out: Vec<Candidate> = searches.into_iter().flat_map(|h| h.found).collect();
    out.sort_unstable();
    out.dedup();
    // Each search kept its first `cap` hits; of the union, keep the first `cap` by offset.
    let capped = capped || out.len() > cap;
    out.truncate(cap);
    (out, capped)
}

/// Leftmost search from just after the previous hit's start: every position where some magic
/// starts is visited once (the automaton's prefilter skips the rest), and there every automaton
/// magic with that first byte is checked, so overlapping and same-offset magics are all found.
fn scan_automaton(scanner: &Scanner, ac: &AhoCorasick, data: &[u8], from: usize, hits: &mut Hits) {
    let mut pos = from;
    while pos < data.len() {
        let Some(m) = ac.find(Input::new(data).span(pos..data.len())) else {
            break;
        };
        let hit = m.start();
        let tail = data.get(hit..).unwrap_or_default();
        let same_first = tail
            .first()
            .and_then(|&b| scanner.by_first.get(usize::from(b)))
            .map_or(&[][..], Vec::as_slice);
        for &(format, magic_offset, magic) in same_first {
            if has_prefix(tail, magic) && !hits.push(hit, format, magic_offset) {
                return;
            }
        }
        pos = hit + 1;
    }
}

/// Whether `tail` starts with `magic`, compared inline: magics are a few bytes and checked at
/// every hit of their first byte, where a call to `memcmp` per check cost more than the check.
#[inline(always)]
fn has_prefix(tail: &[u8], magic: &[u8]) -> bool {
    tail.len() >= magic.len() && tail.iter().zip(magic).all(|(a, b)| a == b)
}

/// Short magics: every occurrence of their first bytes (three at a time with `memchr3`), then
/// the rest of the magic.
fn scan_short(scanner: &Scanner, data: &[u8], from: usize, hits: &mut Hits) {
    let rest = data.get(from..).unwrap_or_default();
    let mut firsts: Vec<u8> = scanner
        .short
        .iter()
        .filter_map(|m| m.2.first().copied())
        .collect();
    firsts.sort_unstable();
    firsts.dedup();
    for group in firsts.chunks(3) {
        let (a, b, c) = match *group {
            [a] => (a, a, a),
            [a, b] => (a, b, b),
            [a, b, c] => (a, b, c),
            _ => continue,
        };
        for hit in memchr::memchr3_iter(a, b, c, rest) {
            let hit = hit + from;
            let tail = data.get(hit..).unwrap_or_default();
            for &(format, magic_offset, magic) in &scanner.short {
                if has_prefix(tail, magic) && !hits.push(hit, format, magic_offset) {
                    return;
                }
            }
        }
    }
    hits.found.sort_unstable();
}

/// Aligned magics: checked only where the structure would start on its alignment.
fn scan_aligned(scanner: &Scanner, data: &[u8], from: usize, hits: &mut Hits) {
    for &(format, magic_offset, magic, align) in &scanner.aligned {
        // The first aligned start whose magic lies at or after `from`.
        let mut start = from
            .saturating_sub(magic_offset)
            .div_ceil(align)
            .saturating_mul(align);
        while let Some(at) = start.checked_add(magic_offset) {
            let Some(tail) = data.get(at..) else { break };
            if tail.len() < magic.len() {
                break;
            }
            if has_prefix(tail, magic) && !hits.push(at, format, magic_offset) {
                return;
            }
            let Some(next) = start.checked_add(align) else {
                break;
            };
            start = next;
        }
    }
    hits.found.sort_unstable();
}

/// Magic hits kept per blob, per allowed candidate: most hits fail `detect` cheaply.
const HITS_PER_CANDIDATE: usize = 16;

/// One structure found inside a blob.
#[derive(Debug)]
pub struct Region {
    /// Offset of the structure in the blob.
    pub offset: u64,
    /// Its extent (0 when unpacking failed before the extent was known).
    pub len: u64,
    /// The format it was unpacked as.
    pub format: &'static str,
    /// Its entries, or why it could not be unpacked.
    pub result: Result<Unpacked, UnpackError>,
    /// Its bytes: `len` bytes from `offset`, or, for a failed region (whose extent is unknown),
    /// up to the next region or the end of the blob. Set when the analysis is `Carved`.
    pub data: Bytes,
    /// SHA-256 of `data`, computed with the other regions' in parallel. Set with `data` unless
    /// the engine hashes only for deduplication ([`Hashing::Dedupe`](super::Hashing)).
    pub sha256: Option<[u8; 32]>,
}

/// What the engine learned about one blob.
#[derive(Debug)]
pub enum Analysis {
    /// Nothing recognised inside.
    Leaf {
        /// The whole blob as one opaque or padding stretch (empty for empty blobs).
        gaps: Vec<Gap>,
    },
    /// The blob is one structure from offset 0 (possibly followed by padding).
    Whole {
        /// The format.
        format: &'static str,
        /// Its entries or its error.
        result: Result<Unpacked, UnpackError>,
        /// Padding after the structure, if any.
        gaps: Vec<Gap>,
    },
    /// Structures at offsets inside the blob.
    Carved {
        /// Regions in offset order, non-overlapping.
        regions: Vec<Region>,
        /// Stretches no region claimed.
        gaps: Vec<Gap>,
        /// A limit that stopped the scan early, if any.
        stopped: Option<UnpackError>,
    },
}

/// Whether a format would claim something in `data` (used at the depth limit, where nothing is
/// unpacked but a container must still be reported).
pub fn has_structure(data: &[u8]) -> bool {
    scan_capped(data, 4096).0.into_iter().take(64).any(|c| {
        FORMATS
            .get(c.format)
            .zip(data.get(c.start..))
            .is_some_and(|(f, d)| f.detect(d))
    })
}

/// The first format (in priority order) whose magic sits where a structure starting at offset 0
/// would have it and whose `detect` accepts `data`, and what unpacking it gave: exactly what the
/// scan's candidate group at offset 0 would try first.
fn first_at_start(data: &Bytes, ctx: &Ctx<'_>) -> Option<(usize, Result<Unpacked, UnpackError>)> {
    let (index, format) = FORMATS.iter().enumerate().find(|(_, f)| {
        f.magics().iter().any(|m| {
            data.get(m.offset..)
                .is_some_and(|tail| tail.starts_with(m.bytes))
        }) && f.detect(data)
    })?;
    Some((index, format.unpack(data, ctx)))
}

/// Finds and unpacks every structure in `data`.
pub fn analyze(data: &Bytes, ctx: &Ctx<'_>) -> Analysis {
    let limits = ctx.budget().limits();
    let max_tries = limits.max_carve_candidates;
    let max_failed = limits.max_failed_carve_bytes;
    // Everything decoded from this blob, by any candidate, counts against its expansion ratio.
    let account = BlobAccount::new(ctx.budget(), data.len() as u64);
    let ctx = &ctx.for_blob(&account);
    // A structure at offset 0 that spans the whole blob (a filesystem image, a UBI volume) leaves
    // nothing to carve: skip the scan, whose every other candidate would lie inside it.
    let mut at_start = first_at_start(data, ctx);
    if let Some((index, Ok(u))) = &at_start
        && u.consumed == data.len() as u64
        && let (Some(format), Some((_, result))) = (FORMATS.get(*index), at_start.take())
    {
        return Analysis::Whole {
            format: format.name(),
            result,
            gaps: Vec::new(),
        };
    }
    let mut regions: Vec<Region> = Vec::new();
    let mut cursor = 0usize;
    // A structure unpacked from offset 0 claims its extent: every candidate inside it would be
    // skipped, so only the bytes after it are scanned (a filesystem followed by a trailer, say).
    let mut tries = 0usize;
    if let Some((index, Ok(u))) = &at_start
        && max_tries > 0
        && let Some(format) = FORMATS.get(*index)
        && let Some(len) = usize::try_from(u.consumed)
            .ok()
            .filter(|&l| l > 0 && l < data.len())
        && let Some((_, result)) = at_start.take()
    {
        regions.push(Region {
            offset: 0,
            len: len as u64,
            format: format.name(),
            result,
            data: Bytes::new(),
            sha256: None,
        });
        cursor = len;
        tries = 1;
    }
    let (candidates, capped) =
        scan_capped_from(data, cursor, max_tries.saturating_mul(HITS_PER_CANDIDATE));
    let mut failed_bytes = 0u64;
    let mut exhausted = false;
    let mut stopped = None;
    let mut i = 0usize;
    while let Some(&first) = candidates.get(i) {
        // All candidates that start at the same offset form one group, tried in priority order.
        let group_end = candidates
            .iter()
            .skip(i)
            .position(|c| c.start != first.start)
            .map_or(candidates.len(), |p| i + p);
        let group = candidates.get(i..group_end).unwrap_or_default();
        i = group_end;
        if first.start < cursor {
            continue;
        }
        let Some(tail) = data.get(first.start..) else {
            continue;
        };
        let mut failure: Option<(&'static str, UnpackError)> = None;
        let mut claimed = false;
        for c in group {
            let Some(format) = FORMATS.get(c.format).copied() else {
                continue;
            };
            if !format.detect(tail) {
                continue;
            }
            tries += 1;
            if tries > max_tries {
                stopped = Some(UnpackError::Limit(LimitError::CarveCandidates {
                    max: max_tries,
                }));
                break;
            }
            if let Err(e) = ctx.check() {
                stopped = Some(e);
                break;
            }
            let slice = data.slice(first.start..);
            let work_before = account.work();
            // The structure at offset 0 was already unpacked above.
            let result = match at_start.take_if(|(index, _)| first.start == 0 && *index == c.format)
            {
                Some((_, result)) => result,
                None => format.unpack(&slice, ctx),
            };
            match result {
                Ok(u) => {
                    let len = u.consumed.clamp(1, slice.len() as u64);
                    regions.push(Region {
                        offset: first.start as u64,
                        len,
                        format: format.name(),
                        result: Ok(u),
                        data: Bytes::new(),
                        sha256: None,
                    });
                    cursor = first
                        .start
                        .saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
                    claimed = true;
                    break;
                }
                Err(e) => {
                    let global = matches!(
                        e,
                        UnpackError::Limit(
                            LimitError::Time { .. }
                                | LimitError::OutputBytes { .. }
                                | LimitError::Entries { .. }
                        )
                    );
                    if failure.is_none() {
                        failure = Some((format.name(), e.clone()));
                    }
                    if global {
                        stopped = Some(e);
                        break;
                    }
                    if account.exhausted() {
                        // The blob's ratio is spent: nothing after this can be decoded. Say so
                        // on the blob only when other candidates are left untried.
                        if candidates.get(i).is_some() {
                            stopped = Some(e);
                        }
                        exhausted = true;
                        break;
                    }
                    failed_bytes =
                        failed_bytes.saturating_add(account.work().saturating_sub(work_before));
                    if failed_bytes > max_failed {
                        stopped = Some(UnpackError::Limit(LimitError::FailedCarveBytes {
                            max: max_failed,
                        }));
                        break;
                    }
                }
            }
        }
        if !claimed && let Some((format, e)) = failure {
            regions.push(Region {
                offset: first.start as u64,
                len: 0,
                format,
                result: Err(e),
                data: Bytes::new(),
                sha256: None,
            });
        }
        if stopped.is_some() || exhausted {
            break;
        }
    }
    if capped && stopped.is_none() {
        stopped = Some(UnpackError::Limit(LimitError::CarveCandidates {
            max: max_tries,
        }));
    }

    let gaps = gaps_between(data, &regions);
    let only_padding = gaps.iter().all(|g| g.kind == GapKind::Padding);
    if stopped.is_none()
        && regions.len() == 1
        && let Some(r) = regions.pop()
    {
        // One structure from offset 0 followed by nothing but padding, or one failed attempt
        // at offset 0 and nothing else: the blob *is* that structure.
        if r.offset == 0 && (only_padding || r.result.is_err()) {
            return Analysis::Whole {
                format: r.format,
                result: r.result,
                gaps,
            };
        }
        regions.push(r);
    }
    if regions.is_empty() && stopped.is_none() {
        return Analysis::Leaf { gaps };
    }
    attach_bytes(data, &mut regions, ctx.hashes_all());
    Analysis::Carved {
        regions,
        gaps,
        stopped,
    }
}

/// Gives every region its bytes and, when `hash` is set, their SHA-256, hashing the regions in
/// parallel (the engine would otherwise hash them one after another while it attaches them to
/// the tree).
fn attach_bytes(data: &Bytes, regions: &mut [Region], hash: bool) {
    let ends: Vec<usize> = (0..regions.len())
        .map(|i| {
            let Some(r) = regions.get(i) else { return 0 };
            if r.result.is_ok() {
                usize::try_from(r.offset.saturating_add(r.len)).unwrap_or(usize::MAX)
            } else {
                // A failed region has no known extent: it runs to the next region (or the end),
                // so the failed regions of a blob never hold more than the blob's bytes between
                // them (hashing each to the end would be quadratic in a magic flood).
                regions
                    .get(i + 1)
                    .and_then(|n| usize::try_from(n.offset).ok())
                    .unwrap_or(data.len())
            }
            .min(data.len())
        })
        .collect();
    regions.par_iter_mut().zip(ends).for_each(|(r, end)| {
        let start = usize::try_from(r.offset).unwrap_or(usize::MAX);
        r.data = if start <= end {
            data.slice(start..end)
        } else {
            Bytes::new()
        };
        r.sha256 = hash.then(|| super::sha256(&r.data));
    });
}

/// The stretches of `data` outside every successful region, classified.
fn gaps_between(data: &[u8], regions: &[Region]) -> Vec<Gap> {
    let mut gaps = Vec::new();
    let mut pos = 0u64;
    let total = data.len() as u64;
    for r in regions.iter().filter(|r| r.result.is_ok()) {
        if r.offset > pos {
            push_gap(&mut gaps, data, pos, r.offset - pos);
        }
        pos = pos.max(r.offset.saturating_add(r.len));
    }
    if total > pos {
        push_gap(&mut gaps, data, pos, total - pos);
    }
    gaps
}

fn push_gap(gaps: &mut Vec<Gap>, data: &[u8], offset: u64, len: u64) {
    let mut gap = Gap {
        offset,
        len,
        kind: GapKind::Opaque,
    };
    let bytes = gap.bytes(data);
    if bytes.iter().all(|&b| b == 0) || bytes.iter().all(|&b| b == 0xFF) {
        gap.kind = GapKind::Padding;
    }
    gaps.push(gap);
}

/// Shannon entropy of `data` in bits per byte.
pub fn entropy(data: &[u8]) -> f32 {
    if data.is_empty() {
        return 0.0;
    }
    let counts = histogram(data);
    let n = data.len() as f64;
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    h as f32
}

/// How often each byte value occurs in `data`. Four tables filled in turn keep a run of equal
/// bytes (zeros in an executable) from serialising every increment on the one before.
fn histogram(data: &[u8]) -> [u64; 256] {
    let mut tables = [[0u32; 256]; 4];
    let mut counts = [0u64; 256];
    // Flushed to `counts` before a `u32` could overflow.
    for part in data.chunks(1 << 30) {
        let mut quads = part.chunks_exact(4);
        for q in &mut quads {
            for (t, &b) in tables.iter_mut().zip(q) {
                if let Some(c) = t.get_mut(usize::from(b)) {
                    *c += 1;
                }
            }
        }
        if let Some(first) = tables.first_mut() {
            for &b in quads.remainder() {
                if let Some(c) = first.get_mut(usize::from(b)) {
                    *c += 1;
                }
            }
        }
        for t in &mut tables {
            for (total, c) in counts.iter_mut().zip(t.iter_mut()) {
                *total += u64::from(std::mem::take(c));
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_every_magic_even_back_to_back_and_overlapping() {
        // Every magic of every format, packed with no gap, then the same with each magic also
        // starting one byte into the previous one where they share that byte.
        let mut data = vec![0u8; 300];
        let mut expected = Vec::new();
        for (fi, f) in FORMATS.iter().enumerate() {
            if f.carve_alignment() > 1 {
                continue; // see `aligned_magics_are_found_only_on_their_alignment`
            }
            for m in f.magics() {
                let at = data.len();
                data.extend_from_slice(m.bytes);
                if let Some(start) = at.checked_sub(m.offset) {
                    expected.push(Candidate { start, format: fi });
                }
            }
        }
        let found = scan(&data);
        for e in &expected {
            assert!(
                found.contains(e),
                "missing {e:?} ({})",
                FORMATS[e.format].name()
            );
        }
        // Same-offset and nested magics: gzip's `1f 8b 08` and a zlib `78 9c` inside a longer run.
        let nested = [0x1f, 0x8b, 0x08, 0x78, 0x9c, 0x1f, 0x8b, 0x08];
        let hits = scan(&nested);
        let starts: Vec<usize> = hits.iter().map(|c| c.start).collect();
        assert!(
            starts.contains(&0) && starts.contains(&3) && starts.contains(&5),
            "{hits:?}"
        );
    }

    #[test]
    fn aligned_magics_are_found_only_on_their_alignment() {
        for (fi, f) in FORMATS.iter().enumerate() {
            let align = f.carve_alignment();
            if align == 1 {
                continue;
            }
            for m in f.magics() {
                // The structure starts at 3 × align (found) and at 5 × align + 4 (not looked at).
                let mut data = vec![0x5au8; 8 * align + m.offset + m.bytes.len()];
                let on = 3 * align + m.offset;
                data[on..on + m.bytes.len()].copy_from_slice(m.bytes);
                let off = 5 * align + 4 + m.offset;
                data[off..off + m.bytes.len()].copy_from_slice(m.bytes);
                let starts: Vec<usize> = scan(&data)
                    .into_iter()
                    .filter(|c| c.format == fi)
                    .map(|c| c.start)
                    .collect();
                assert_eq!(starts, [3 * align], "{}", f.name());
            }
        }
    }

    #[test]
    fn scan_from_an_offset_finds_what_the_full_scan_finds_there() {
        // Every registered magic at several offsets, some aligned, some not, back to back.
        let mut data = vec![0x5au8; 1 << 20];
        let mut at = 100usize;
        for f in FORMATS.iter() {
            let align = f.carve_alignment();
            for m in f.magics().iter().filter(|m| !m.bytes.is_empty()) {
                let start = at.div_ceil(align) * align;
                let Some(slot) = data.get_mut(start + m.offset..start + m.offset + m.bytes.len())
                else {
                    continue;
                };
                slot.copy_from_slice(m.bytes);
                at = start + m.offset + m.bytes.len() + 777;
            }
        }
        let full = scan(&data);
        assert!(full.len() > 20, "the fixture holds magics");
        for from in [0, 1, 99, 4096, 65_536, 300_001, data.len() / 2, data.len()] {
            let tail: Vec<Candidate> = scan_capped_from(&data, from, usize::MAX)
                .0
                .into_iter()
                .filter(|c| c.start >= from)
                .collect();
            let expected: Vec<Candidate> =
                full.iter().copied().filter(|c| c.start >= from).collect();
            assert_eq!(tail, expected, "from {from}");
        }
    }

    #[test]
    fn a_structure_at_the_start_is_not_rescanned_but_what_follows_is() {
        use std::io::Write;
        // A tar whose member holds a gzip stream, then a gzip stream after the archive.
        let gz = |text: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        };
        let inner = gz(b"inside the archive");
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(inner.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, "inner.gz", &inner[..]).unwrap();
        let mut data = t.into_inner().unwrap();
        let tar_len = data.len();
        data.extend_from_slice(&gz(b"after the archive"));
        let budget = crate::unpack::Budget::new(crate::unpack::Limits::default());
        let a = analyze(&Bytes::from(data), &Ctx::new(&budget));
        let Analysis::Carved {
            regions, stopped, ..
        } = a
        else {
            panic!("expected carved regions, got {a:?}");
        };
        assert!(stopped.is_none());
        let found: Vec<(u64, &str)> = regions.iter().map(|r| (r.offset, r.format)).collect();
        assert_eq!(found, [(0, "tar"), (tar_len as u64, "gzip")]);
        let Ok(gzip) = &regions[1].result else {
            panic!("gzip after the tar failed");
        };
        assert_eq!(&gzip.children[0].data[..], b"after the archive");
    }

    #[test]
    fn capped_scan_keeps_the_first_hits_by_offset() {
        // gzip magics (automaton) and zlib magics (memchr) interleaved.
        let mut data = Vec::new();
        for _ in 0..100 {
            data.extend_from_slice(&[0x1f, 0x8b, 0x08, 0, 0x78, 0x9c, 0, 0]);
        }
        let (all, capped) = scan_capped(&data, usize::MAX);
        assert!(!capped);
        assert_eq!(all.len(), 200);
        let (first, capped) = scan_capped(&data, 10);
        assert!(capped);
        assert_eq!(first, all[..10]);
    }

    #[test]
    fn histogram_counts_every_byte_once() {
        // Lengths around the 4-byte stride, runs of one value and every value.
        let mut x = 0x9E37_79B9u32;
        for len in [0usize, 1, 3, 4, 5, 7, 8, 1000, 4099] {
            let data: Vec<u8> = (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    if i % 3 == 0 { 0 } else { x as u8 }
                })
                .collect();
            let mut naive = [0u64; 256];
            for &b in &data {
                naive[b as usize] += 1;
            }
            assert_eq!(histogram(&data), naive, "length {len}");
        }
    }

    #[test]
    fn entropy_bounds() {
        assert_eq!(entropy(&[]), 0.0);
        assert_eq!(entropy(&[7; 100]), 0.0);
        let all: Vec<u8> = (0..=255).collect();
        assert!((entropy(&all) - 8.0).abs() < 1e-4);
    }

    #[test]
    fn gaps_are_classified_and_their_entropy_read_from_their_own_bytes() {
        // Opaque bytes (all 256 values), a padding run, opaque again (two values).
        let mut data: Vec<u8> = (0..=255).collect();
        data.extend_from_slice(&[0xFF; 300]);
        data.extend_from_slice(&[1, 2].repeat(50));
        let mut gaps = Vec::new();
        push_gap(&mut gaps, &data, 0, 256);
        push_gap(&mut gaps, &data, 256, 300);
        push_gap(&mut gaps, &data, 556, 100);
        let kinds: Vec<GapKind> = gaps.iter().map(|g| g.kind).collect();
        assert_eq!(kinds, [GapKind::Opaque, GapKind::Padding, GapKind::Opaque]);
        assert!((gaps[0].entropy(&data) - 8.0).abs() < 1e-4);
        assert_eq!(gaps[1].entropy(&data), 0.0);
        assert!((gaps[2].entropy(&data) - 1.0).abs() < 1e-4);
        // Read against the wrong (shorter) blob: no bytes, no entropy, no panic.
        assert_eq!(gaps[2].bytes(&data[..600]), b"");
        assert_eq!(gaps[2].entropy(&data[..600]), 0.0);
    }
}
