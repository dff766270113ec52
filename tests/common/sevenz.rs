//! 7z fixtures: archives written by `sevenz-rust2`'s writer (LZMA, LZMA2, copy; solid or one block
//! per file) and hand-assembled archives whose raw header claims what a test needs.

use std::io::Cursor;

use sevenz_rust2::encoder_options::{EncoderOptions, Lzma2Options, LzmaOptions};
use sevenz_rust2::{
    ArchiveEntry, ArchiveWriter, EncoderConfiguration, EncoderMethod, SourceReader,
};

/// One entry of an archive to build.
#[derive(Clone, Debug)]
pub enum Item {
    /// A file and its bytes.
    File(&'static str, Vec<u8>),
    /// A directory.
    Dir(&'static str),
}

/// The content method of an archive to build.
#[derive(Clone, Copy, Debug)]
pub enum Method {
    /// Stored.
    Copy,
    /// LZMA with this dictionary size.
    Lzma(u32),
    /// LZMA2 at this preset level.
    Lzma2(u32),
}

fn config(method: Method) -> EncoderConfiguration {
    match method {
        Method::Copy => EncoderConfiguration::new(EncoderMethod::COPY),
        Method::Lzma(dict) => {
            let mut o = LzmaOptions::from_level(6);
            o.set_dictionary_size(dict);
            EncoderConfiguration::new(EncoderMethod::LZMA).with_options(EncoderOptions::Lzma(o))
        }
        Method::Lzma2(level) => EncoderConfiguration::new(EncoderMethod::LZMA2)
            .with_options(Lzma2Options::from_level(level).into()),
    }
}

/// A 7z archive of `items` written by the crate's writer: one block per file, or every file in one
/// solid block.
pub fn build(items: &[Item], method: Method, solid: bool) -> Vec<u8> {
    let mut w = ArchiveWriter::new(Cursor::new(Vec::new())).unwrap();
    w.set_content_methods(vec![config(method)]);
    let mut solid_entries = Vec::new();
    let mut solid_readers = Vec::new();
    for item in items {
        match item {
            Item::Dir(name) => {
                w.push_archive_entry::<&[u8]>(ArchiveEntry::new_directory(name), None)
                    .unwrap();
            }
            Item::File(name, data) if data.is_empty() || !solid => {
                w.push_archive_entry(ArchiveEntry::new_file(name), Some(data.as_slice()))
                    .unwrap();
            }
            Item::File(name, data) => {
                solid_entries.push(ArchiveEntry::new_file(name));
                solid_readers.push(SourceReader::new(Cursor::new(data.clone())));
            }
        }
    }
    if !solid_entries.is_empty() {
        w.push_archive_entries(solid_entries, solid_readers)
            .unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A 7z variable-length number (7zFormat.txt): the leading one bits of the first byte count the
/// extra little-endian bytes.
pub fn number(v: u64) -> Vec<u8> {
    for extra in 0..8u32 {
        let high_bits = 7 - extra; // bits left in the first byte
        if v >> (8 * extra) < (1u64 << high_bits) {
            let mask = !(0xFFu8 >> extra); // `extra` leading ones
            let first = mask | (v >> (8 * extra)) as u8;
            let mut out = vec![first];
            out.extend_from_slice(&v.to_le_bytes()[..extra as usize]);
            return out;
        }
    }
    let mut out = vec![0xFF];
    out.extend_from_slice(&v.to_le_bytes());
    out
}

/// An archive from its packed streams and raw next header, with both CRCs right.
pub fn assemble(packed: &[u8], next_header: &[u8]) -> Vec<u8> {
    let mut start = Vec::new();
    start.extend_from_slice(&(packed.len() as u64).to_le_bytes());
    start.extend_from_slice(&(next_header.len() as u64).to_le_bytes());
    start.extend_from_slice(&crc32fast::hash(next_header).to_le_bytes());
    let mut out = b"7z\xBC\xAF\x27\x1C\x00\x04".to_vec();
    out.extend_from_slice(&crc32fast::hash(&start).to_le_bytes());
    out.extend_from_slice(&start);
    out.extend_from_slice(packed);
    out.extend_from_slice(next_header);
    out
}

/// A plain (not encoded) header for one file `name` of `unpack_size` bytes held in one packed
/// stream of `packed_len` bytes, decoded by one coder (`id`, `props`).
pub fn single_file_header(
    name: &str,
    packed_len: u64,
    unpack_size: u64,
    id: &[u8],
    props: &[u8],
) -> Vec<u8> {
    let mut h = vec![0x01, 0x04, 0x06];
    h.extend(number(0)); // pack position
    h.extend(number(1));
    h.push(0x09);
    h.extend(number(packed_len));
    h.push(0x00);
    h.extend([0x07, 0x0B]);
    h.extend(number(1)); // folders
    h.push(0); // not external
    h.extend(number(1)); // coders
    let flags = id.len() as u8 | if props.is_empty() { 0 } else { 0x20 };
    h.push(flags);
    h.extend_from_slice(id);
    if !props.is_empty() {
        h.extend(number(props.len() as u64));
        h.extend_from_slice(props);
    }
    h.push(0x0C);
    h.extend(number(unpack_size));
    h.push(0x00); // end of unpack info
    h.extend([0x08, 0x00]); // sub-streams info: one stream per folder
    h.push(0x00); // end of streams info
    h.extend(files_info(&[name]));
    h.push(0x00); // end of header
    h
}

/// A files-info property for `names` (all with data).
pub fn files_info(names: &[&str]) -> Vec<u8> {
    let mut h = vec![0x05];
    h.extend(number(names.len() as u64));
    let mut blob = vec![0u8]; // not external
    for n in names {
        for u in n.encode_utf16() {
            blob.extend_from_slice(&u.to_le_bytes());
        }
        blob.extend_from_slice(&[0, 0]);
    }
    h.push(0x11);
    h.extend(number(blob.len() as u64));
    h.extend(blob);
    h.push(0x00);
    h
}
