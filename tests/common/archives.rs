//! Fixture builders for archives: ZIP through the `zip` crate's writer and through a small raw
//! writer (methods the crate lacks, hostile layouts), Dahua `.bin` by patching a ZIP's signatures,
//! tar through the `tar` crate's `Builder` (plus a hand-made pax header), cpio newc/crc/odc.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;

/// What goes into a fixture archive.
#[derive(Clone, Debug)]
pub enum Item {
    /// A regular file with its mode bits.
    File(&'static str, Vec<u8>, u32),
    /// A directory.
    Dir(&'static str),
    /// A symbolic link and its target.
    Symlink(&'static str, &'static str),
}

/// The standard fixture content: nested files (one compressible, one executable), a directory and
/// a symlink.
pub fn sample_items() -> Vec<Item> {
    vec![
        Item::Dir("etc/"),
        Item::File(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
            0o644,
        ),
        Item::File("bin/busybox", b"\x7fELF fake busybox ".repeat(200), 0o755),
        Item::File("empty", Vec::new(), 0o600),
        Item::Symlink("bin/sh", "busybox"),
    ]
}

/// A ZIP written by the `zip` crate; files deflated when `deflate`, else stored.
pub fn zip_with_crate(items: &[Item], deflate: bool, comment: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    for item in items {
        match item {
            Item::File(name, data, mode) => {
                let o = SimpleFileOptions::default()
                    .compression_method(method)
                    .unix_permissions(*mode);
                w.start_file(*name, o).unwrap();
                w.write_all(data).unwrap();
            }
            Item::Dir(name) => w
                .add_directory(*name, SimpleFileOptions::default())
                .unwrap(),
            Item::Symlink(name, target) => w
                .add_symlink(*name, *target, SimpleFileOptions::default())
                .unwrap(),
        }
    }
    w.set_comment(comment);
    w.finish().unwrap().into_inner()
}

/// A Dahua `.bin`: the ZIP with its first local header's `PK` turned into `DH`, and, with
/// `all_signatures`, every central directory record and the end record too.
pub fn dahua_from_zip(zip: &[u8], all_signatures: bool) -> Vec<u8> {
    let mut out = zip.to_vec();
    assert_eq!(&out[..4], b"PK\x03\x04");
    out[..2].copy_from_slice(b"DH");
    if all_signatures {
        let eocd = zip.len() - 22 - comment_len(zip);
        assert_eq!(&zip[eocd..eocd + 4], b"PK\x05\x06");
        let cd = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        let mut pos = cd;
        while pos < eocd {
            assert_eq!(&zip[pos..pos + 4], b"PK\x01\x02");
            out[pos..pos + 2].copy_from_slice(b"DH");
            let n = u16::from_le_bytes([zip[pos + 28], zip[pos + 29]]) as usize;
            let e = u16::from_le_bytes([zip[pos + 30], zip[pos + 31]]) as usize;
            let c = u16::from_le_bytes([zip[pos + 32], zip[pos + 33]]) as usize;
            pos += 46 + n + e + c;
        }
        out[eocd..eocd + 2].copy_from_slice(b"DH");
    }
    out
}

fn comment_len(zip: &[u8]) -> usize {
    // Walk back to the end record whose comment length reaches the end of the file.
    (0..zip.len().saturating_sub(21))
        .rev()
        .find(|&p| {
            &zip[p..p + 4] == b"PK\x05\x06"
                && p + 22 + u16::from_le_bytes([zip[p + 20], zip[p + 21]]) as usize == zip.len()
        })
        .map(|p| zip.len() - p - 22)
        .unwrap()
}

/// One entry of a [`RawZip`].
#[derive(Clone, Debug)]
pub struct RawEntry {
    /// Name as stored.
    pub name: Vec<u8>,
    /// Compression method code.
    pub method: u16,
    /// General-purpose flags.
    pub flags: u16,
    /// The stored (compressed) bytes.
    pub data: Vec<u8>,
    /// CRC-32 to record.
    pub crc: u32,
    /// Uncompressed size to record.
    pub size: u32,
    /// Unix mode (recorded with a unix "made by" host).
    pub mode: u32,
}

impl RawEntry {
    /// An entry whose data are compressed by the caller; CRC and size computed from `plain`.
    pub fn new(name: &str, method: u16, plain: &[u8], data: Vec<u8>) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            method,
            flags: 0,
            data,
            crc: crc32fast::hash(plain),
            size: plain.len() as u32,
            mode: 0o100_644,
        }
    }
}

/// A ZIP written by hand: local headers with the given data, a central directory that may point
/// anywhere (`local_offsets` overrides where each record says its local header is), an end record.
pub struct RawZip {
    /// The entries.
    pub entries: Vec<RawEntry>,
    /// Extra central-directory records that reuse entry 0's local header (overlap bombs).
    pub aliases_of_first: usize,
    /// Archive comment.
    pub comment: Vec<u8>,
}

impl RawZip {
    /// Serialises the archive.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for e in &self.entries {
            offsets.push(out.len() as u32);
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&e.flags.to_le_bytes());
            out.extend_from_slice(&e.method.to_le_bytes());
            out.extend_from_slice(&[0, 0, 0x21, 0]); // time, date
            out.extend_from_slice(&e.crc.to_le_bytes());
            out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&e.name);
            out.extend_from_slice(&e.data);
        }
        let cd = out.len() as u32;
        let mut records = 0u16;
        let record = |out: &mut Vec<u8>, e: &RawEntry, name: &[u8], offset: u32| {
            out.extend_from_slice(b"PK\x01\x02");
            out.extend_from_slice(&(0x0300u16 | 20).to_le_bytes());
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&e.flags.to_le_bytes());
            out.extend_from_slice(&e.method.to_le_bytes());
            out.extend_from_slice(&[0, 0, 0x21, 0]);
            out.extend_from_slice(&e.crc.to_le_bytes());
            out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
            out.extend_from_slice(&(e.mode << 16).to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(name);
        };
        for (e, &off) in self.entries.iter().zip(&offsets) {
            record(&mut out, e, &e.name, off);
            records += 1;
        }
        for i in 0..self.aliases_of_first {
            let e = &self.entries[0];
            let name = format!("alias{i}");
            record(&mut out, e, name.as_bytes(), offsets[0]);
            records += 1;
        }
        let cd_size = out.len() as u32 - cd;
        out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
        out.extend_from_slice(&records.to_le_bytes());
        out.extend_from_slice(&records.to_le_bytes());
        out.extend_from_slice(&cd_size.to_le_bytes());
        out.extend_from_slice(&cd.to_le_bytes());
        out.extend_from_slice(&(self.comment.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.comment);
        out
    }
}

/// Raw deflate of `data`.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// ZIP's LZMA (method 14): a 4-byte header (version, properties size) then properties and the raw
/// stream, made from an `.lzma` ("alone") stream with an end marker (so flag bit 1 is set).
pub fn zip_lzma(data: &[u8]) -> Vec<u8> {
    let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
    let stream = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
    let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    e.write_all(data).unwrap();
    let alone = e.finish().unwrap();
    let mut out = vec![16, 2, 5, 0];
    out.extend_from_slice(&alone[..5]);
    out.extend_from_slice(&alone[13..]);
    out
}

/// A tar written by the `tar` crate: GNU headers (long names), plus a pax-named file, a hard link
/// and a character device.
pub fn tar_with_crate(items: &[Item], long_name: &str, pax_name: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match item {
            Item::File(name, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, &data[..]).unwrap();
            }
            Item::Dir(name) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
            Item::Symlink(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    // A name longer than 100 bytes: the crate writes a GNU `L` record.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(9);
    b.append_data(&mut h, long_name, &b"long name"[..]).unwrap();
    // A pax `path` record overriding a short placeholder name.
    let record = pax_record("path", pax_name);
    let mut x = tar::Header::new_ustar();
    x.set_entry_type(tar::EntryType::XHeader);
    x.set_path("PaxHeaders/x").unwrap();
    x.set_size(record.len() as u64);
    x.set_mode(0o644);
    x.set_cksum();
    b.append(&x, &record[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path("placeholder").unwrap();
    h.set_mode(0o644);
    h.set_size(8);
    h.set_cksum();
    b.append(&h, &b"pax data"[..]).unwrap();
    // A hard link to the first regular file, and a character device.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_mode(0o644);
    h.set_size(0);
    b.append_link(&mut h, "etc/passwd.hard", "etc/passwd")
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_mode(0o600);
    h.set_size(0);
    h.set_device_major(5).unwrap();
    h.set_device_minor(1).unwrap();
    b.append_data(&mut h, "dev/console", &[][..]).unwrap();
    b.into_inner().unwrap()
}

/// One pax record: `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
pub fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}").len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

/// cpio header formats the builder writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioKind {
    /// `070701`.
    Newc,
    /// `070702` with the per-file byte-sum checksum.
    Crc,
    /// `070707`, octal.
    Odc,
}

/// One cpio member: name, mode (with type bits), data (for symlinks: the target), inode, links.
pub struct CpioEntry {
    /// Name as stored.
    pub name: Vec<u8>,
    /// `st_mode`.
    pub mode: u32,
    /// Contents.
    pub data: Vec<u8>,
    /// Inode number.
    pub ino: u32,
    /// Link count.
    pub nlink: u32,
}

/// The [`Item`]s as cpio members (directories without their trailing `/`).
pub fn cpio_entries(items: &[Item]) -> Vec<CpioEntry> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let (name, mode, data) = match item {
                Item::File(n, d, m) => (n.to_string(), 0o100_000 | m, d.clone()),
                Item::Dir(n) => (n.trim_end_matches('/').to_string(), 0o040_755, Vec::new()),
                Item::Symlink(n, t) => (n.to_string(), 0o120_777, t.as_bytes().to_vec()),
            };
            CpioEntry {
                name: name.into_bytes(),
                mode,
                data,
                ino: 100 + i as u32,
                nlink: 1,
            }
        })
        .collect()
}

/// A cpio archive of `entries` and the trailer, padded to 512 bytes as cpio(1) does.
pub fn cpio(kind: CpioKind, entries: &[CpioEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let trailer = CpioEntry {
        name: b"TRAILER!!!".to_vec(),
        mode: 0,
        data: Vec::new(),
        ino: 0,
        nlink: 1,
    };
    for e in entries.iter().chain(std::iter::once(&trailer)) {
        let namesize = e.name.len() + 1;
        match kind {
            CpioKind::Newc | CpioKind::Crc => {
                let (magic, check) = if kind == CpioKind::Newc {
                    ("070701", 0u32)
                } else {
                    (
                        "070702",
                        e.data.iter().fold(0u32, |a, &b| a.wrapping_add(b as u32)),
                    )
                };
                let fields = [
                    e.ino,
                    e.mode,
                    0,
                    0,
                    e.nlink,
                    1_600_000_000,
                    e.data.len() as u32,
                    0,
                    0,
                    0,
                    0,
                    namesize as u32,
                    check,
                ];
                out.extend_from_slice(magic.as_bytes());
                for f in fields {
                    out.extend_from_slice(format!("{f:08x}").as_bytes());
                }
                out.extend_from_slice(&e.name);
                out.push(0);
                while out.len() % 4 != 0 {
                    out.push(0);
                }
                out.extend_from_slice(&e.data);
                while out.len() % 4 != 0 {
                    out.push(0);
                }
            }
            CpioKind::Odc => {
                out.extend_from_slice(
                    format!(
                        "070707{:06o}{:06o}{:06o}{:06o}{:06o}{:06o}{:06o}{:011o}{:06o}{:011o}",
                        0,
                        e.ino,
                        e.mode,
                        0,
                        0,
                        e.nlink,
                        0,
                        1_600_000_000u64,
                        namesize,
                        e.data.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(&e.name);
                out.push(0);
                out.extend_from_slice(&e.data);
            }
        }
    }
    while out.len() % 512 != 0 {
        out.push(0);
    }
    out
}
