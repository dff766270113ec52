//! U-Boot legacy images (uImage): a 64-byte big-endian header (magic 0x27051956, header and data
//! CRC-32, OS, architecture, image type, compression, a 32-byte name) and a payload, decompressed
//! per the compression byte. Multi-file images (type 4) carry a zero-terminated table of sizes and
//! each file padded to 4 bytes. Field values follow U-Boot's `include/image.h`.

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{Endian, Reader, c_string};
use crate::unpack::codec::{self, Codec};
use crate::unpack::tree::{Child, Unpacked};

/// U-Boot legacy uImage.
pub struct UImage;

/// Header size.
pub const HEADER_LEN: usize = 64;
/// Header magic.
pub const MAGIC: u32 = 0x2705_1956;
const TYPE_MULTI: u8 = 4;

/// A decoded uImage header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// CRC-32 of the header with this field zeroed.
    pub header_crc: u32,
    /// Creation time (Unix seconds).
    pub time: u32,
    /// Payload size.
    pub size: u32,
    /// Load address.
    pub load: u32,
    /// Entry point.
    pub entry: u32,
    /// CRC-32 of the payload.
    pub data_crc: u32,
    /// Operating system code.
    pub os: u8,
    /// CPU architecture code.
    pub arch: u8,
    /// Image type code.
    pub image_type: u8,
    /// Compression code.
    pub compression: u8,
    /// Image name (up to 32 bytes).
    pub name: String,
}

impl Header {
    /// Parses the 64-byte header at the start of `data` (without checking CRCs).
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        let mut r = Reader::with_endian(data, Endian::Big);
        let magic = r.u32("uImage magic")?;
        if magic != MAGIC {
            return Err(UnpackError::Corrupt(format!(
                "uImage: bad magic {magic:#x}"
            )));
        }
        Ok(Header {
            header_crc: r.u32("uImage header CRC")?,
            time: r.u32("uImage time")?,
            size: r.u32("uImage size")?,
            load: r.u32("uImage load address")?,
            entry: r.u32("uImage entry point")?,
            data_crc: r.u32("uImage data CRC")?,
            os: r.u8("uImage OS")?,
            arch: r.u8("uImage arch")?,
            image_type: r.u8("uImage type")?,
            compression: r.u8("uImage compression")?,
            name: c_string(r.bytes(32, "uImage name")?),
        })
    }

    /// Serialises the header, computing the header CRC.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        h[8..12].copy_from_slice(&self.time.to_be_bytes());
        h[12..16].copy_from_slice(&self.size.to_be_bytes());
        h[16..20].copy_from_slice(&self.load.to_be_bytes());
        h[20..24].copy_from_slice(&self.entry.to_be_bytes());
        h[24..28].copy_from_slice(&self.data_crc.to_be_bytes());
        h[28] = self.os;
        h[29] = self.arch;
        h[30] = self.image_type;
        h[31] = self.compression;
        for (dst, src) in h[32..].iter_mut().zip(self.name.bytes()) {
            *dst = src;
        }
        let crc = crc32fast::hash(&h);
        h[4..8].copy_from_slice(&crc.to_be_bytes());
        h
    }
}

/// Builds a complete uImage around `payload` (the project's own writer, used by the demo and the
/// tests).
pub fn build(
    name: &str,
    os: u8,
    arch: u8,
    image_type: u8,
    compression: u8,
    payload: &[u8],
) -> Vec<u8> {
    let header = Header {
        header_crc: 0,
        time: 1_600_000_000,
        size: u32::try_from(payload.len()).unwrap_or(u32::MAX),
        load: 0x8000_8000,
        entry: 0x8000_8000,
        data_crc: crc32fast::hash(payload),
        os,
        arch,
        image_type,
        compression,
        name: name.to_owned(),
    };
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn header_crc_ok(h: &[u8]) -> bool {
    let Some(&[a, b, c, d]) = h.get(4..8) else {
        return false;
    };
    let stored = u32::from_be_bytes([a, b, c, d]);
    let mut copy = [0u8; HEADER_LEN];
    match h.get(..HEADER_LEN) {
        Some(src) => copy.copy_from_slice(src),
        None => return false,
    }
    copy[4..8].fill(0);
    crc32fast::hash(&copy) == stored
}

/// Name of an OS code (U-Boot `IH_OS_*`).
pub fn os_name(code: u8) -> &'static str {
    match code {
        0 => "invalid",
        1 => "openbsd",
        2 => "netbsd",
        3 => "freebsd",
        4 => "4_4bsd",
        5 => "linux",
        6 => "svr4",
        7 => "esix",
        8 => "solaris",
        9 => "irix",
        10 => "sco",
        11 => "dell",
        12 => "ncr",
        13 => "lynxos",
        14 => "vxworks",
        15 => "psos",
        16 => "qnx",
        17 => "u-boot",
        18 => "rtems",
        19 => "artos",
        20 => "unity",
        21 => "integrity",
        22 => "ose",
        23 => "plan9",
        24 => "openrtos",
        25 => "arm-trusted-firmware",
        26 => "tee",
        27 => "opensbi",
        28 => "efi",
        _ => "unknown",
    }
}

/// Name of an architecture code (U-Boot `IH_ARCH_*`).
pub fn arch_name(code: u8) -> &'static str {
    match code {
        0 => "invalid",
        1 => "alpha",
        2 => "arm",
        3 => "x86",
        4 => "ia64",
        5 => "mips",
        6 => "mips64",
        7 => "ppc",
        8 => "s390",
        9 => "sh",
        10 => "sparc",
        11 => "sparc64",
        12 => "m68k",
        13 => "nios",
        14 => "microblaze",
        15 => "nios2",
        16 => "blackfin",
        17 => "avr32",
        18 => "st200",
        19 => "sandbox",
        20 => "nds32",
        21 => "openrisc",
        22 => "arm64",
        23 => "arc",
        24 => "x86_64",
        25 => "xtensa",
        26 => "riscv",
        _ => "unknown",
    }
}

/// Name of an image type code (U-Boot `IH_TYPE_*`).
pub fn type_name(code: u8) -> &'static str {
    match code {
        0 => "invalid",
        1 => "standalone",
        2 => "kernel",
        3 => "ramdisk",
        4 => "multi",
        5 => "firmware",
        6 => "script",
        7 => "filesystem",
        8 => "flat_dt",
        9 => "kwbimage",
        10 => "imximage",
        11 => "ublimage",
        12 => "omapimage",
        13 => "aisimage",
        14 => "kernel_noload",
        15 => "pblimage",
        16 => "mxsimage",
        17 => "gpimage",
        18 => "atmelimage",
        19 => "socfpgaimage",
        20 => "x86_setup",
        21 => "lpc32xximage",
        22 => "loadable",
        23 => "rkimage",
        24 => "rksd",
        25 => "rkspi",
        26 => "zynqimage",
        27 => "zynqmpimage",
        _ => "unknown",
    }
}

/// Name of a compression code (U-Boot `IH_COMP_*`).
pub fn compression_name(code: u8) -> &'static str {
    match code {
        0 => "none",
        1 => "gzip",
        2 => "bzip2",
        3 => "lzma",
        4 => "lzo",
        5 => "lz4",
        6 => "zstd",
        _ => "unknown",
    }
}

fn codec_of(code: u8) -> Result<Option<Codec>, UnpackError> {
    Ok(match code {
        0 => None,
        1 => Some(Codec::Gzip),
        2 => Some(Codec::Bzip2),
        3 => Some(Codec::Lzma),
        5 => Some(Codec::Lz4),
        6 => Some(Codec::Zstd),
        4 => Some(Codec::Lzo),
        other => {
            return Err(UnpackError::Unsupported(format!(
                "uImage compression code {other}"
            )));
        }
    })
}

impl Format for UImage {
    fn name(&self) -> &'static str {
        "uimage"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(&[0x27, 0x05, 0x19, 0x56])];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        let Some(h) = data.get(..HEADER_LEN) else {
            return false;
        };
        if header_crc_ok(h) {
            return true;
        }
        // A damaged header CRC is still a uImage when every field is plausible.
        Header::parse(h).is_ok_and(|hd| {
            os_name(hd.os) != "unknown"
                && arch_name(hd.arch) != "unknown"
                && type_name(hd.image_type) != "unknown"
                && compression_name(hd.compression) != "unknown"
                && hd.os != 0
                && hd.arch != 0
                && hd.image_type != 0
        })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let header = Header::parse(data)?;
        let header_ok = header_crc_ok(data);
        let size = u64::from(header.size);
        let end = (HEADER_LEN as u64).saturating_add(size);
        let mut out = Unpacked::new(end.min(data.len() as u64))
            .meta("name", header.name.clone())
            .meta("os", os_name(header.os))
            .meta("arch", arch_name(header.arch))
            .meta("type", type_name(header.image_type))
            .meta("compression", compression_name(header.compression))
            .meta("time", header.time)
            .meta("load_address", format!("{:#010x}", header.load))
            .meta("entry_point", format!("{:#010x}", header.entry))
            .meta("size", header.size)
            .meta("header_crc_ok", header_ok);
        let available = data.len().saturating_sub(HEADER_LEN) as u64;
        if available < size {
            return Err(UnpackError::Truncated(format!(
                "uImage '{}': header announces {size} payload bytes, {available} present",
                header.name
            )));
        }
        let start = HEADER_LEN;
        let stop = usize::try_from(end).map_err(|_| UnpackError::Corrupt("uImage size".into()))?;
        let payload = data.slice(start..stop);
        let data_ok = crc32fast::hash(&payload) == header.data_crc;
        out = out.meta("data_crc_ok", data_ok);

        let codec = codec_of(header.compression)?;
        let parts: Vec<(Vec<u8>, Bytes, u64)> = if header.image_type == TYPE_MULTI {
            split_multi(&payload, ctx)?
                .into_iter()
                .enumerate()
                .map(|(i, (off, b))| (format!("{i}").into_bytes(), b, HEADER_LEN as u64 + off))
                .collect()
        } else {
            vec![(payload_name(&header), payload, HEADER_LEN as u64)]
        };
        ctx.entries(parts.len() as u64)?;
        for (name, bytes, offset) in parts {
            let child_data = match codec {
                None => bytes,
                Some(c) => match codec::decode(c, &bytes, ctx) {
                    Ok(d) => Bytes::from(d.data),
                    // Dahua (and others) label raw squashfs/cramfs partitions "gzip": when the
                    // payload does not decode but is plainly another known structure, take it
                    // as stored and say so.
                    Err(e) if !matches!(e, UnpackError::Limit(_)) && is_known_structure(&bytes) => {
                        out = out.meta(
                            "compression_mismatch",
                            format!(
                                "header says {} but the payload is not {} data; taken as stored",
                                compression_name(header.compression),
                                c.name()
                            ),
                        );
                        bytes
                    }
                    Err(e) => return Err(e),
                },
            };
            out.children
                .push(Child::file(name, child_data).with_offset(offset));
        }
        Ok(out)
    }
}

/// Whether `data` starts with a structure some registered format recognises.
fn is_known_structure(data: &[u8]) -> bool {
    super::FORMATS.iter().any(|f| {
        f.name() != "uimage"
            && f.magics()
                .iter()
                .any(|m| m.offset == 0 && data.starts_with(m.bytes))
            && f.detect(data)
    })
}

/// The child name: the image name when it is a usable file name, else `payload`.
fn payload_name(h: &Header) -> Vec<u8> {
    let clean: String = h
        .name
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        b"payload".to_vec()
    } else {
        clean.as_bytes().to_vec()
    }
}

/// Splits a multi-file payload into its files (offset inside the payload, bytes).
fn split_multi(payload: &Bytes, ctx: &Ctx<'_>) -> Result<Vec<(u64, Bytes)>, UnpackError> {
    let mut r = Reader::with_endian(payload, Endian::Big);
    let mut sizes = Vec::new();
    loop {
        ctx.check()?;
        let s = r.u32("uImage multi-file size table")?;
        if s == 0 {
            break;
        }
        // Each entry needs 4 bytes of table plus its data: cap the count by what fits.
        if sizes.len() >= payload.len() / 4 {
            return Err(UnpackError::Corrupt(
                "uImage multi-file table has no end".into(),
            ));
        }
        sizes.push(u64::from(s));
    }
    let mut pos = r.pos() as u64;
    let mut out = Vec::with_capacity(sizes.len());
    for s in sizes {
        let end = pos.saturating_add(s);
        if end > payload.len() as u64 {
            return Err(UnpackError::Truncated(format!(
                "uImage multi-file part of {s} bytes at {pos:#x} runs past the payload"
            )));
        }
        let (a, b) = (
            usize::try_from(pos).unwrap_or(usize::MAX),
            usize::try_from(end).unwrap_or(usize::MAX),
        );
        out.push((pos, payload.slice(a..b)));
        pos = end.saturating_add(3) & !3;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{Limits, unpack};

    #[test]
    fn header_round_trips() {
        let img = build("kernel", 5, 2, 2, 0, b"abcdef");
        let h = Header::parse(&img).unwrap();
        assert_eq!(h.name, "kernel");
        assert!(header_crc_ok(&img));
        let tree = unpack(Bytes::from(img), b"k.img", &Limits::default());
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("uimage"));
        assert_eq!(root.format_meta["data_crc_ok"], true);
        assert_eq!(&tree.find("k.img/kernel").unwrap().data[..], b"abcdef");
    }

    #[test]
    fn truncated_payload_is_reported() {
        let mut img = build("rootfs", 5, 2, 7, 0, &[7u8; 1000]);
        img.truncate(500);
        let tree = unpack(Bytes::from(img), b"r.img", &Limits::default());
        let err = tree.root().unwrap().error.clone().unwrap();
        assert!(matches!(err, UnpackError::Truncated(_)), "{err}");
    }

    #[test]
    fn multi_file_images_split() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&3u32.to_be_bytes());
        payload.extend_from_slice(&5u32.to_be_bytes());
        payload.extend_from_slice(&0u32.to_be_bytes());
        payload.extend_from_slice(b"abc\0");
        payload.extend_from_slice(b"defgh");
        let img = build("multi", 5, 2, TYPE_MULTI, 0, &payload);
        let tree = unpack(Bytes::from(img), b"m.img", &Limits::default());
        assert_eq!(&tree.find("m.img/0").unwrap().data[..], b"abc");
        assert_eq!(&tree.find("m.img/1").unwrap().data[..], b"defgh");
    }
}
