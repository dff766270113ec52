//! 7-Zip archives: the signature header gives the true extent; what the next header claims (its
//! decoded size, coders, dictionaries) is checked against the limits before the `sevenz-rust2`
//! crate reads it, and each entry streams through a bounded sink. Encrypted entries are refused.
//!
//! Field layout from 7-Zip's `DOC/7zFormat.txt`; header parsing and decoding by `sevenz-rust2`.

use std::collections::HashSet;
use std::io::{Cursor, Read};
use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use sevenz_rust2::{Archive, ArchiveEntry, BlockDecoder, Coder, EncoderMethod, Password};

use super::{Ctx, Format, Magic, path_escapes};
use crate::unpack::UnpackError;
use crate::unpack::bytes::Reader;
use crate::unpack::codec;
use crate::unpack::limits::LimitError;
use crate::unpack::tree::{Child, Unpacked};

/// 7-Zip archive.
pub struct SevenZip;

/// The 7z signature.
pub const MAGIC: &[u8; 6] = b"7z\xBC\xAF\x27\x1C";
/// Signature header length.
pub const HEADER_LEN: usize = 32;

/// Property ids of the header (7zFormat.txt).
const K_END: u8 = 0x00;
const K_HEADER: u8 = 0x01;
const K_PACK_INFO: u8 = 0x06;
const K_UNPACK_INFO: u8 = 0x07;
const K_SIZE: u8 = 0x09;
const K_CRC: u8 = 0x0A;
const K_FOLDER: u8 = 0x0B;
const K_CODERS_UNPACK_SIZE: u8 = 0x0C;
const K_ENCODED_HEADER: u8 = 0x17;

/// The most coders (or streams of one coder) a folder may have; 7-Zip itself allows 64.
const MAX_CODERS: u64 = 64;
/// Windows attribute bit saying the high 16 bits hold a unix mode (p7zip, 7-Zip 21+).
const UNIX_EXTENSION: u32 = 0x8000;
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
/// Part of the memory budget that the crate's in-memory header (one `ArchiveEntry` per entry it
/// claims, up to one per header byte) may take: the rest stays for the entries' data.
const HEADER_MEMORY_SHARE: u64 = 8;
/// Part of the memory budget one decoder's dictionary may take.
const DICTIONARY_MEMORY_SHARE: u64 = 4;

/// A decoded signature header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    /// Format version (major, minor).
    pub version: (u8, u8),
    /// CRC-32 of the 20 bytes after it.
    pub start_crc: u32,
    /// Offset of the next header after the signature header.
    pub next_offset: u64,
    /// Size of the next header.
    pub next_size: u64,
    /// CRC-32 of the next header.
    pub next_crc: u32,
}

impl SignatureHeader {
    /// Parses the signature header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        if !data.starts_with(MAGIC) {
            return Err(UnpackError::Corrupt("7z: bad signature".into()));
        }
        let mut r = Reader::new(data);
        r.seek(6, "7z version")?;
        Ok(Self {
            version: (r.u8("7z major version")?, r.u8("7z minor version")?),
            start_crc: r.u32("7z start header CRC")?,
            next_offset: r.u64("7z next header offset")?,
            next_size: r.u64("7z next header size")?,
            next_crc: r.u32("7z next header CRC")?,
        })
    }

    /// Whether the start-header CRC matches the 20 bytes it covers in `data`.
    pub fn start_crc_ok(&self, data: &[u8]) -> bool {
        data.get(12..HEADER_LEN)
            .is_some_and(|b| crc32fast::hash(b) == self.start_crc)
    }

    /// The archive's extent, if it fits in a `u64`.
    pub fn extent(&self) -> Option<u64> {
        (HEADER_LEN as u64)
            .checked_add(self.next_offset)?
            .checked_add(self.next_size)
    }
}

impl Format for SevenZip {
    fn name(&self) -> &'static str {
        "7z"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(MAGIC)];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        SignatureHeader::parse(data)
            .is_ok_and(|h| h.version.0 == 0 && h.start_crc_ok(data) && h.extent().is_some())
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let h = SignatureHeader::parse(data)?;
        if !h.start_crc_ok(data) {
            return Err(UnpackError::Corrupt("7z: start header CRC mismatch".into()));
        }
        let extent = h
            .extent()
            .ok_or_else(|| UnpackError::Corrupt("7z: next header beyond 2^64".into()))?;
        if extent > data.len() as u64 {
            return Err(UnpackError::Truncated(format!(
                "7z: next header ends at {extent}, input has {}",
                data.len()
            )));
        }
        let start = usize::try_from(HEADER_LEN as u64 + h.next_offset).unwrap_or(usize::MAX);
        let end = usize::try_from(extent).unwrap_or(usize::MAX);
        let next = data.get(start..end).unwrap_or_default();
        let next_ok = crc32fast::hash(next) == h.next_crc;
        let out = Unpacked::new(extent)
            .meta("version", format!("{}.{}", h.version.0, h.version.1))
            .meta("next_header_crc_ok", next_ok);
        if !next_ok {
            return Ok(out.partial(UnpackError::Corrupt("7z: next header CRC mismatch".into())));
        }
        if next.is_empty() {
            // An archive without entries has an empty next header.
            return Ok(out.meta("entries", 0));
        }
        ctx.charge_read(extent);
        // The crate is hardened against hostile headers, but a panic in it must stay this
        // archive's error rather than end the whole run.
        let archive = data.slice(..end);
        std::panic::catch_unwind(AssertUnwindSafe(|| read_contents(&archive, next, out, ctx)))
            .unwrap_or_else(|_| {
                Err(UnpackError::Corrupt(
                    "7z: the 7z reader failed on this archive (panicked)".into(),
                ))
            })
    }
}

/// What the raw next header claims, read before the crate allocates for it.
#[derive(Debug, Default)]
struct HeaderClaim {
    /// Whether the header is itself compressed (`kEncodedHeader`).
    encoded: bool,
    /// The size the header has once decoded (its raw size when it is not encoded): the crate
    /// allocates up to one entry per byte of it.
    decoded_bytes: u64,
    /// The coders that decode an encoded header.
    coders: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads a 7z variable-length number: the leading one bits of the first byte count the extra
/// little-endian bytes; the first byte's remaining bits are the high part.
fn number(r: &mut Reader<'_>) -> Result<u64, UnpackError> {
    let first = r.u8("7z number")?;
    let mut mask = 0x80u8;
    let mut value = 0u64;
    for i in 0..8u32 {
        if first & mask == 0 {
            let high = u64::from(first & mask.wrapping_sub(1));
            return Ok(value | high.checked_shl(8 * i).unwrap_or(0));
        }
        value |= u64::from(r.u8("7z number")?) << (8 * i);
        mask >>= 1;
    }
    Ok(value)
}

/// Reads a count and refuses one larger than the bytes left could describe.
fn count(r: &mut Reader<'_>, what: &str) -> Result<u64, UnpackError> {
    let n = number(r)?;
    if n > r.remaining() as u64 {
        return Err(UnpackError::Corrupt(format!(
            "7z: {what} count {n} exceeds the {} header bytes left",
            r.remaining()
        )));
    }
    Ok(n)
}

/// Skips a digest list for `n` streams.
fn skip_digests(r: &mut Reader<'_>, n: u64) -> Result<(), UnpackError> {
    let all_defined = r.u8("7z digests")?;
    let defined = if all_defined == 0 {
        let bits = r.bytes(n.div_ceil(8), "7z digest bits")?;
        bits.iter().map(|b| u64::from(b.count_ones())).sum()
    } else {
        n
    };
    r.skip(defined.saturating_mul(4), "7z digests")
}

impl HeaderClaim {
    /// Reads the claim of the raw next header `next`.
    fn read(next: &[u8]) -> Result<Self, UnpackError> {
        let mut r = Reader::new(next);
        match r.u8("7z next header")? {
            K_HEADER => Ok(Self {
                encoded: false,
                decoded_bytes: next.len() as u64,
                coders: Vec::new(),
            }),
            K_ENCODED_HEADER => Self::read_encoded(&mut r),
            id => Err(UnpackError::Corrupt(format!(
                "7z: next header starts with property {id:#04x}, not a header"
            ))),
        }
    }

    /// The streams info of an encoded header: pack info, then one or more folders with their
    /// coders and unpack sizes.
    fn read_encoded(r: &mut Reader<'_>) -> Result<Self, UnpackError> {
        let mut claim = Self {
            encoded: true,
            ..Self::default()
        };
        let mut id = r.u8("7z encoded header")?;
        if id == K_PACK_INFO {
            number(r)?; // pack position
            let streams = count(r, "pack stream")?;
            loop {
                match r.u8("7z pack info")? {
                    K_END => break,
                    K_SIZE => {
                        for _ in 0..streams {
                            number(r)?;
                        }
                    }
                    K_CRC => skip_digests(r, streams)?,
                    other => {
                        return Err(UnpackError::Corrupt(format!(
                            "7z: property {other:#04x} in the encoded header's pack info"
                        )));
                    }
                }
            }
            id = r.u8("7z encoded header")?;
        }
        if id != K_UNPACK_INFO || r.u8("7z unpack info")? != K_FOLDER {
            return Err(UnpackError::Corrupt(
                "7z: encoded header without folder information".into(),
            ));
        }
        let folders = count(r, "folder")?;
        if r.u8("7z folder external flag")? != 0 {
            return Err(UnpackError::Unsupported(
                "7z: encoded header's folders stored externally".into(),
            ));
        }
        let mut outputs = Vec::new();
        for _ in 0..folders {
            outputs.push(claim.read_folder(r)?);
        }
        if r.u8("7z unpack sizes")? != K_CODERS_UNPACK_SIZE {
            return Err(UnpackError::Corrupt(
                "7z: encoded header without unpack sizes".into(),
            ));
        }
        for n in outputs {
            for _ in 0..n {
                claim.decoded_bytes = claim.decoded_bytes.max(number(r)?);
            }
        }
        Ok(claim)
    }

    /// Reads one folder's coders (keeping their ids and properties); returns its output count.
    fn read_folder(&mut self, r: &mut Reader<'_>) -> Result<u64, UnpackError> {
        let coders = number(r)?;
        if coders == 0 || coders > MAX_CODERS {
            return Err(UnpackError::Corrupt(format!(
                "7z: folder with {coders} coders"
            )));
        }
        let (mut inputs, mut outputs) = (0u64, 0u64);
        for _ in 0..coders {
            let flags = r.u8("7z coder")?;
            let id = r.bytes(u64::from(flags & 0x0F), "7z coder id")?.to_vec();
            let (ins, outs) = if flags & 0x10 != 0 {
                (number(r)?, number(r)?)
            } else {
                (1, 1)
            };
            if ins > MAX_CODERS || outs > MAX_CODERS {
                return Err(UnpackError::Corrupt(format!(
                    "7z: coder with {ins} inputs and {outs} outputs"
                )));
            }
            let props = if flags & 0x20 != 0 {
                let n = count(r, "coder property byte")?;
                r.bytes(n, "7z coder properties")?.to_vec()
            } else {
                Vec::new()
            };
            self.coders.push((id, props));
            inputs += ins;
            outputs += outs;
        }
        let bind_pairs = outputs
            .checked_sub(1)
            .ok_or_else(|| UnpackError::Corrupt("7z: folder whose coders have no output".into()))?;
        for _ in 0..bind_pairs {
            number(r)?;
            number(r)?;
        }
        let packed = inputs.checked_sub(bind_pairs).ok_or_else(|| {
            UnpackError::Corrupt("7z: folder with more bind pairs than inputs".into())
        })?;
        if packed > 1 {
            for _ in 0..packed {
                number(r)?;
            }
        }
        Ok(outputs)
    }
}

/// The most memory one decoder's dictionary or model may take.
fn dictionary_cap(ctx: &Ctx<'_>) -> u64 {
    ctx.budget().limits().max_memory_bytes / DICTIONARY_MEMORY_SHARE
}

/// The dictionary (or model) memory a coder needs, from its properties; `unpack_size` bounds an
/// LZMA dictionary (the decoder allocates no more than the output it can produce).
fn dictionary_bytes(id: &[u8], props: &[u8], unpack_size: u64) -> Result<u64, UnpackError> {
    let le32 = |p: &[u8]| -> Result<u64, UnpackError> {
        match p.get(1..5) {
            Some(&[a, b, c, d]) => Ok(u64::from(u32::from_le_bytes([a, b, c, d]))),
            _ => Err(UnpackError::Corrupt(format!(
                "7z: {}-byte coder properties",
                p.len()
            ))),
        }
    };
    if id == EncoderMethod::ID_LZMA {
        Ok(le32(props)?.min(unpack_size))
    } else if id == EncoderMethod::ID_LZMA2 {
        match props.first() {
            Some(&p) if p < 40 => Ok((2 | u64::from(p & 1)) << (p / 2 + 11)),
            Some(40) => Ok(u64::from(u32::MAX)),
            _ => Err(UnpackError::Corrupt(
                "7z: LZMA2 dictionary property out of range".into(),
            )),
        }
    } else if id == EncoderMethod::ID_PPMD {
        le32(props)
    } else {
        Ok(0)
    }
}

/// The display name of a coder method.
fn method_name(id: &[u8]) -> String {
    EncoderMethod::by_id(id).map_or_else(
        || format!("unknown-{}", hex::encode(id)),
        |m| m.name().to_ascii_lowercase(),
    )
}

/// Why a block's coders cannot be decoded here, if they cannot: encryption, a method the crate
/// is built without, or a dictionary larger than the memory budget allows. Otherwise the largest
/// dictionary they need.
fn refuse_coders<'c>(
    coders: impl IntoIterator<Item = (&'c [u8], &'c [u8])>,
    unpack_size: u64,
    ctx: &Ctx<'_>,
) -> Result<u64, UnpackError> {
    const DECODED: &[&[u8]] = &[
        EncoderMethod::ID_COPY,
        EncoderMethod::ID_LZMA,
        EncoderMethod::ID_LZMA2,
        EncoderMethod::ID_DELTA,
        EncoderMethod::ID_BCJ_X86,
        EncoderMethod::ID_BCJ_PPC,
        EncoderMethod::ID_BCJ_IA64,
        EncoderMethod::ID_BCJ_ARM,
        EncoderMethod::ID_BCJ_ARM64,
        EncoderMethod::ID_BCJ_ARM_THUMB,
        EncoderMethod::ID_BCJ_SPARC,
        EncoderMethod::ID_BCJ_RISCV,
    ];
    let cap = dictionary_cap(ctx);
    let mut largest = 0;
    for (id, props) in coders {
        if id == EncoderMethod::ID_AES256_SHA256 {
            return Err(UnpackError::Unsupported(
                "7z: encrypted (AES-256); fwsim does not decrypt".into(),
            ));
        }
        if !DECODED.contains(&id) {
            return Err(UnpackError::Unsupported(format!(
                "7z: coder method {} is not decoded",
                method_name(id)
            )));
        }
        let dict = dictionary_bytes(id, props, unpack_size)?;
        if dict > cap {
            return Err(UnpackError::Limit(LimitError::Memory { max: cap }));
        }
        largest = largest.max(dict);
    }
    Ok(largest)
}

/// Checks what the raw next header claims before the crate allocates for it: its decoded size
/// (the crate holds one `ArchiveEntry` per entry, and may allocate one per header byte) and the
/// coders of an encoded header.
fn check_claim(claim: &HeaderClaim, ctx: &Ctx<'_>) -> Result<(), UnpackError> {
    let limits = ctx.budget().limits();
    let per_byte = (std::mem::size_of::<ArchiveEntry>() as u64).saturating_add(1);
    let cap = limits.max_memory_bytes / HEADER_MEMORY_SHARE;
    if claim.decoded_bytes.saturating_mul(per_byte) > cap {
        return Err(UnpackError::Limit(LimitError::Memory { max: cap }));
    }
    if claim.encoded {
        refuse_coders(
            claim
                .coders
                .iter()
                .map(|(i, p)| (i.as_slice(), p.as_slice())),
            claim.decoded_bytes,
            ctx,
        )
        .map_err(|e| match e {
            UnpackError::Unsupported(m) => UnpackError::Unsupported(format!("header: {m}")),
            other => other,
        })?;
    }
    Ok(())
}

/// The memory limit the crate is given, in KiB: the larger of the header and dictionary caps
/// (each was already checked against its own).
fn crate_memory_kb(claim: &HeaderClaim, ctx: &Ctx<'_>) -> usize {
    let header = claim.decoded_bytes.saturating_add(1);
    let kb = header.max(dictionary_cap(ctx)).div_ceil(1024);
    usize::try_from(kb).unwrap_or(usize::MAX)
}

/// Maps a crate error: an I/O error that carries a limit becomes that limit, an early end a
/// truncation, anything else corruption.
fn crate_error(e: sevenz_rust2::Error, what: &str) -> UnpackError {
    match e {
        sevenz_rust2::Error::Io(io, _) => UnpackError::from_io(&io, what),
        sevenz_rust2::Error::UnsupportedCompressionMethod(m) => {
            UnpackError::Unsupported(format!("{what}: compression method {m}"))
        }
        sevenz_rust2::Error::Other(m) => UnpackError::Corrupt(format!("{what}: {m}")),
        other => UnpackError::Corrupt(format!("{what}: {other}")),
    }
}

/// Reads the header with the crate, then decodes every block through bounded sinks.
fn read_contents(
    archive_bytes: &Bytes,
    next: &[u8],
    out: Unpacked,
    ctx: &Ctx<'_>,
) -> Result<Unpacked, UnpackError> {
    let claim = HeaderClaim::read(next)?;
    check_claim(&claim, ctx)?;
    let memory_kb = crate_memory_kb(&claim, ctx);
    let mut source = Cursor::new(archive_bytes.as_ref());
    let archive = Archive::read_with_memory_limit(&mut source, &Password::empty(), memory_kb)
        .map_err(|e| crate_error(e, "7z header"))?;
    ctx.check()?;
    ctx.entries(archive.files.len() as u64)?;
    let extent = archive_bytes.len() as u64;
    let mut state = Extraction {
        ctx,
        archive_len: extent,
        allowance: ctx.budget().max_expansion(extent),
        produced: 0,
        children: Vec::new(),
        seen: HashSet::new(),
        stop: None,
        failed_blocks: 0,
    };
    for block in 0..archive.blocks.len() {
        ctx.check()?;
        state.block(&archive, block, &mut source, memory_kb);
        if state.stop.is_some() {
            break;
        }
    }
    if state.stop.is_none() {
        // Entries without data (empty files, directories) belong to no block.
        for (index, entry) in archive.files.iter().enumerate() {
            if !state.seen.contains(&index) && !entry.is_anti_item {
                ctx.check()?;
                state.seen.insert(index);
                state.children.push(entry_child(entry, Bytes::new(), ""));
            }
        }
    }
    let methods: Vec<String> = archive
        .blocks
        .iter()
        .map(|b| block_methods(b.coders.iter()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = out
        .meta("entries", archive.files.len())
        .meta("blocks", archive.blocks.len())
        .meta("solid", archive.is_solid)
        .meta("methods", methods)
        .meta("header_encoded", claim.encoded)
        .meta("unpacked_bytes", state.produced);
    if let Some(e) = state.stop {
        out = out.partial(e);
    } else if state.failed_blocks > 0 {
        out = out.partial(UnpackError::Corrupt(format!(
            "7z: {} of {} blocks could not be decoded",
            state.failed_blocks,
            archive.blocks.len()
        )));
    }
    out.children = state.children;
    Ok(out)
}

/// The methods of a block's coders, in order, joined by `+` (`bcj_arm+lzma2`).
fn block_methods<'c>(coders: impl Iterator<Item = &'c Coder>) -> String {
    coders
        .map(|c| method_name(c.encoder_method_id()))
        .collect::<Vec<_>>()
        .join("+")
}

/// A child for an entry: a directory, a symbolic link (p7zip stores the target as the data of
/// an entry whose unix mode says link) or a file.
fn entry_child(entry: &ArchiveEntry, data: Bytes, methods: &str) -> Child {
    let name = entry.name.as_bytes().to_vec();
    let attrs = entry.windows_attributes;
    let mode = (entry.has_windows_attributes && attrs & UNIX_EXTENSION != 0)
        .then_some(attrs >> 16)
        .filter(|&m| m != 0);
    let mut child = if entry.is_directory {
        Child::dir(name)
    } else if mode.is_some_and(|m| m & S_IFMT == S_IFLNK) {
        Child::symlink(name, data.to_vec())
    } else {
        Child::file(name, data)
    };
    if let Some(m) = mode {
        child = child.with_mode(m);
    }
    child = child.with_meta("size", entry.size);
    if !methods.is_empty() {
        child = child.with_meta("method", methods);
    }
    if path_escapes(entry.name.as_bytes()) {
        child = child.with_meta("unsafe_path", true);
    }
    child
}

/// The running state of an extraction.
struct Extraction<'a, 'b> {
    ctx: &'a Ctx<'b>,
    archive_len: u64,
    /// The most the whole archive may expand to.
    allowance: u64,
    produced: u64,
    children: Vec<Child>,
    /// Indices of the entries already given a child.
    seen: HashSet<usize>,
    /// A limit that ends the extraction.
    stop: Option<UnpackError>,
    failed_blocks: usize,
}

impl Extraction<'_, '_> {
    /// Decodes one block, giving each of its entries a child (with an error when the block or
    /// the entry could not be decoded).
    fn block(
        &mut self,
        archive: &Archive,
        block: usize,
        source: &mut Cursor<&[u8]>,
        memory_kb: usize,
    ) {
        let Some(b) = archive.blocks.get(block) else {
            return;
        };
        let methods = block_methods(b.coders.iter());
        let packed: u64 = archive
            .stream_map
            .block_first_pack_stream_index()
            .get(block)
            .and_then(|&i| archive.pack_sizes().get(i))
            .copied()
            .unwrap_or(0);
        let first = archive
            .stream_map
            .block_first_file_index
            .get(block)
            .copied()
            .unwrap_or(0);
        let password = Password::empty();
        let decoder =
            BlockDecoder::new_with_memory_limit(1, memory_kb, block, archive, &password, source);
        let count = decoder.entry_count();
        let refused = refuse_coders(
            b.coders
                .iter()
                .map(|c| (c.encoder_method_id(), c.properties())),
            b.get_unpack_size(),
            self.ctx,
        );
        // The decoder's dictionary is held against the memory budget while it decodes.
        let budget = self.ctx.budget();
        let dictionary = refused.and_then(|d| {
            budget.hold(d).map_err(UnpackError::Limit)?;
            Ok(d)
        });
        let dictionary = match dictionary {
            Ok(d) => d,
            Err(e) => {
                if matches!(e, UnpackError::Limit(_)) {
                    self.stop = Some(e.clone());
                }
                self.failed_blocks += 1;
                self.fail_rest(archive, first, count, 0, &e, &methods);
                return;
            }
        };
        let mut k = 0usize;
        let mut failure: Option<UnpackError> = None;
        let result =
            decoder.for_each_entries(&mut |entry: &ArchiveEntry, reader: &mut dyn Read| {
                let index = first.saturating_add(k);
                k = k.saturating_add(1);
                if entry.is_anti_item {
                    self.seen.insert(index);
                    return Ok(true);
                }
                match self.read_entry(entry, reader) {
                    Ok(data) => {
                        let child = entry_child(entry, data, &methods)
                            .with_meta("block", block)
                            .with_meta("block_packed_size", packed);
                        self.seen.insert(index);
                        self.children.push(child);
                        Ok(true)
                    }
                    Err(e) => {
                        failure = Some(e);
                        Err(sevenz_rust2::Error::Other("entry failed".into()))
                    }
                }
            });
        budget.release(dictionary);
        let error = match (failure, result) {
            (Some(e), _) => Some(e),
            (None, Err(e)) => Some(crate_error(e, "7z block")),
            (None, Ok(_)) => None,
        };
        if let Some(e) = error {
            if matches!(e, UnpackError::Limit(_)) {
                self.stop = Some(e.clone());
            }
            self.failed_blocks += 1;
            // The entry that failed, then those of the block after it.
            let failed_at = k.saturating_sub(1);
            self.fail_rest(archive, first, count, failed_at, &e, &methods);
        }
    }

    /// Gives the entries `from..count` of a block that starts at entry `first` a child carrying
    /// `error` (those that already have one keep it).
    fn fail_rest(
        &mut self,
        archive: &Archive,
        first: usize,
        count: usize,
        from: usize,
        error: &UnpackError,
        methods: &str,
    ) {
        for k in from..count {
            let index = first.saturating_add(k);
            let Some(entry) = archive.files.get(index) else {
                break;
            };
            if !self.seen.insert(index) || entry.is_anti_item {
                continue;
            }
            let err = if k == from {
                error.clone()
            } else {
                UnpackError::Corrupt(format!(
                    "7z: not decoded, an earlier entry of its block failed ({error})"
                ))
            };
            self.children
                .push(entry_child(entry, Bytes::new(), methods).with_error(err));
        }
    }

    /// Streams one entry's bytes into a bounded sink.
    fn read_entry(
        &mut self,
        entry: &ArchiveEntry,
        reader: &mut dyn Read,
    ) -> Result<Bytes, UnpackError> {
        if entry.size == 0 && !entry.has_stream {
            return Ok(Bytes::new());
        }
        self.ctx.claimed_size(entry.size)?;
        let left = self.allowance.saturating_sub(self.produced);
        if entry.size > left {
            return Err(UnpackError::Limit(LimitError::Ratio {
                max: self.ctx.budget().limits().max_ratio,
                input: self.archive_len,
            }));
        }
        let what = format!("7z entry '{}'", entry.name);
        let data = codec::pump(
            reader,
            usize::try_from(self.archive_len).unwrap_or(usize::MAX),
            self.ctx,
            &what,
        )?;
        self.produced = self.produced.saturating_add(data.len() as u64);
        if data.len() as u64 != entry.size {
            return Err(UnpackError::Corrupt(format!(
                "{what}: {} bytes decoded, the header says {}",
                data.len(),
                entry.size
            )));
        }
        Ok(Bytes::from(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_7zformat() {
        for (bytes, want) in [
            (&[0x05][..], 5u64),
            (&[0x7F], 0x7F),
            (&[0x80, 0x80], 0x80),
            (&[0xBF, 0xFF], 0x3FFF),
            (&[0xC0, 0x00, 0x40], 0x4000),
            (&[0xFF, 1, 0, 0, 0, 0, 0, 0, 0x80], 0x8000_0000_0000_0001),
        ] {
            assert_eq!(number(&mut Reader::new(bytes)).unwrap(), want, "{bytes:x?}");
        }
        assert!(number(&mut Reader::new(&[0xC0, 0x00])).is_err());
    }

    #[test]
    fn dictionaries_come_from_coder_properties() {
        // LZMA2 property 24 is 16 MiB, 40 is 4 GiB - 1 (7zFormat.txt / xz's lzma2 property).
        assert_eq!(dictionary_bytes(&[0x21], &[24], 0).unwrap(), 16 << 20);
        assert_eq!(dictionary_bytes(&[0x21], &[25], 0).unwrap(), 24 << 20);
        assert_eq!(
            dictionary_bytes(&[0x21], &[40], 0).unwrap(),
            u64::from(u32::MAX)
        );
        assert!(dictionary_bytes(&[0x21], &[41], 0).is_err());
        // LZMA: the little-endian u32 after lc/lp/pb, bounded by the output it can produce.
        let props = [0x5D, 0, 0, 0, 4];
        assert_eq!(
            dictionary_bytes(&[3, 1, 1], &props, u64::MAX).unwrap(),
            64 << 20
        );
        assert_eq!(dictionary_bytes(&[3, 1, 1], &props, 1000).unwrap(), 1000);
        assert!(dictionary_bytes(&[3, 1, 1], &props[..3], 10).is_err());
        assert_eq!(dictionary_bytes(&[0], &[], 10).unwrap(), 0);
    }

    #[test]
    fn encoded_header_claims_are_read_before_decoding() {
        // Pack info (1 stream of 16 bytes), one folder with one LZMA coder, unpack size 300.
        let raw = [
            0x17, 0x06, 0x00, 0x01, 0x09, 0x10, 0x00, 0x07, 0x0B, 0x01, 0x00, 0x01, 0x23, 3, 1, 1,
            5, 0x5D, 0, 0, 1, 0, 0x0C, 0x81, 0x2C, 0x00, 0x00,
        ];
        let claim = HeaderClaim::read(&raw).unwrap();
        assert!(claim.encoded);
        assert_eq!(claim.decoded_bytes, 300);
        assert_eq!(claim.coders, vec![(vec![3, 1, 1], vec![0x5D, 0, 0, 1, 0])]);
        // A folder count larger than the header could describe is refused.
        let mut many = raw;
        many[9] = 0x7F;
        assert!(HeaderClaim::read(&many).is_err());
        assert!(HeaderClaim::read(&[0x42]).is_err());
    }
}
