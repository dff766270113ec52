//! Linux kernel images: the 32-bit ARM `zImage` (magic 0x016f2818 at 0x24, start and end addresses
//! after it, either endianness) and the arm64 `Image` (magic `ARM\x64` at 0x38). The format names
//! the container and its extent; the compressed kernel and any initramfs inside are found by carving.
//!
//! Field layout from the kernel's `arch/arm/boot/compressed/head.S` and
//! `Documentation/arch/arm64/booting.rst`.

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::bytes::{Endian, Reader};
use crate::unpack::tree::{Child, Unpacked};

/// 32-bit ARM self-decompressing `zImage`.
pub struct ZImage;

/// arm64 `Image` (uncompressed kernel with a 64-byte boot header).
pub struct Arm64Image;

/// Offset of the zImage magic.
pub const ZIMAGE_MAGIC_OFFSET: usize = 0x24;
/// The zImage magic as a number (stored in the kernel's byte order).
pub const ZIMAGE_MAGIC: u32 = 0x016f_2818;
/// Bytes of the zImage header this format reads (the code before it included).
pub const ZIMAGE_HEADER_LEN: usize = 0x30;
/// Value of the optional endianness word at 0x30, read in the kernel's byte order.
pub const ZIMAGE_ENDIAN_FLAG: u32 = 0x0403_0201;
/// Largest zImage accepted (real kernels are a few MiB).
const ZIMAGE_MAX: u64 = 256 << 20;

/// arm64 header length.
pub const ARM64_HEADER_LEN: usize = 64;
/// Offset of the arm64 magic.
pub const ARM64_MAGIC_OFFSET: usize = 0x38;
/// The arm64 magic.
pub const ARM64_MAGIC: &[u8; 4] = b"ARM\x64";

/// A decoded zImage header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZHeader {
    /// Byte order of the kernel.
    pub endian: Endian,
    /// Start address (0 for position-independent images).
    pub start: u32,
    /// End address: `end - start` is the image size.
    pub end: u32,
    /// Whether the optional endianness word at 0x30 is present.
    pub endian_flag: bool,
}

impl ZHeader {
    /// Parses the zImage header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        let magic = data
            .get(ZIMAGE_MAGIC_OFFSET..ZIMAGE_MAGIC_OFFSET + 4)
            .ok_or_else(|| UnpackError::Truncated("zImage: header cut short".into()))?;
        let endian = if magic == ZIMAGE_MAGIC.to_le_bytes() {
            Endian::Little
        } else if magic == ZIMAGE_MAGIC.to_be_bytes() {
            Endian::Big
        } else {
            return Err(UnpackError::Corrupt("zImage: bad magic".into()));
        };
        let mut r = Reader::with_endian(data, endian);
        r.seek(0x28, "zImage start address")?;
        let start = r.u32("zImage start address")?;
        let end = r.u32("zImage end address")?;
        let endian_flag = r.u32("zImage endianness word").ok() == Some(ZIMAGE_ENDIAN_FLAG);
        Ok(Self {
            endian,
            start,
            end,
            endian_flag,
        })
    }

    /// Image size from the header (`end - start`), if the addresses are ordered.
    pub fn size(&self) -> Option<u64> {
        self.end.checked_sub(self.start).map(u64::from)
    }
}

fn endian_name(e: Endian) -> &'static str {
    match e {
        Endian::Little => "little",
        Endian::Big => "big",
    }
}

impl Format for ZImage {
    fn name(&self) -> &'static str {
        "zimage"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[
            Magic {
                bytes: &[0x18, 0x28, 0x6f, 0x01],
                offset: ZIMAGE_MAGIC_OFFSET,
            },
            Magic {
                bytes: &[0x01, 0x6f, 0x28, 0x18],
                offset: ZIMAGE_MAGIC_OFFSET,
            },
        ];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        ZHeader::parse(data).is_ok_and(|h| {
            h.size()
                .is_some_and(|s| s > ZIMAGE_HEADER_LEN as u64 && s <= ZIMAGE_MAX)
        })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let h = ZHeader::parse(data)?;
        let size = h
            .size()
            .filter(|&s| s > ZIMAGE_HEADER_LEN as u64)
            .ok_or_else(|| {
                UnpackError::Corrupt(format!(
                    "zImage: end address {:#x} not after start {:#x}",
                    h.end, h.start
                ))
            })?;
        let present = (data.len() as u64).min(size);
        let stop = usize::try_from(present)
            .map_err(|_| UnpackError::Corrupt("zImage: size does not fit in memory".into()))?;
        let mut out = Unpacked::new(present)
            .meta("type", "arm_zimage")
            .meta("endianness", endian_name(h.endian))
            .meta("start_address", format!("{:#010x}", h.start))
            .meta("end_address", format!("{:#010x}", h.end))
            .meta("size", size)
            .meta("endianness_word", h.endian_flag);
        ctx.entries(1)?;
        out.children.push(
            Child::file(b"payload".to_vec(), data.slice(ZIMAGE_HEADER_LEN..stop))
                .with_offset(ZIMAGE_HEADER_LEN as u64),
        );
        if present < size {
            out = out.partial(UnpackError::Truncated(format!(
                "zImage: header announces {size} bytes, {present} present"
            )));
        }
        Ok(out)
    }
}

/// A decoded arm64 `Image` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arm64Header {
    /// Image load offset from the start of RAM.
    pub text_offset: u64,
    /// Effective image size (file plus BSS); 0 in kernels before 3.17.
    pub image_size: u64,
    /// Informative flags: bit 0 is the kernel's endianness (1 = big).
    pub flags: u64,
}

impl Arm64Header {
    /// Parses the 64-byte header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, UnpackError> {
        let magic = data.get(ARM64_MAGIC_OFFSET..ARM64_MAGIC_OFFSET + 4);
        if magic != Some(&ARM64_MAGIC[..]) {
            return Err(UnpackError::Corrupt("arm64 Image: bad magic".into()));
        }
        let mut r = Reader::new(data);
        r.seek(8, "arm64 Image text offset")?;
        Ok(Self {
            text_offset: r.u64("arm64 Image text offset")?,
            image_size: r.u64("arm64 Image size")?,
            flags: r.u64("arm64 Image flags")?,
        })
    }
}

impl Format for Arm64Image {
    fn name(&self) -> &'static str {
        "arm64_image"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic {
            bytes: ARM64_MAGIC,
            offset: ARM64_MAGIC_OFFSET,
        }];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        // Reserved fields 0x20..0x38 are zero; text_offset is small and 4 KiB aligned in practice.
        let reserved_zero = data
            .get(0x20..0x38)
            .is_some_and(|r| r.iter().all(|&b| b == 0));
        reserved_zero
            && Arm64Header::parse(data).is_ok_and(|h| {
                h.text_offset % 4096 == 0
                    && h.text_offset < (1 << 30)
                    && h.image_size <= ZIMAGE_MAX * 4
                    && h.flags < 16
            })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let h = Arm64Header::parse(data)?;
        // image_size counts the BSS too, so the file is at most that long; 0 means unknown.
        let extent = if h.image_size == 0 {
            data.len() as u64
        } else {
            (data.len() as u64).min(h.image_size)
        };
        let stop = usize::try_from(extent)
            .map_err(|_| UnpackError::Corrupt("arm64 Image: size does not fit in memory".into()))?;
        let endian = if h.flags & 1 == 1 { "big" } else { "little" };
        let mut out = Unpacked::new(extent.max(ARM64_HEADER_LEN as u64))
            .meta("type", "arm64_image")
            .meta("endianness", endian)
            .meta("text_offset", format!("{:#x}", h.text_offset))
            .meta("image_size", h.image_size)
            .meta("flags", h.flags);
        if stop > ARM64_HEADER_LEN {
            ctx.entries(1)?;
            out.children.push(
                Child::file(b"payload".to_vec(), data.slice(ARM64_HEADER_LEN..stop))
                    .with_offset(ARM64_HEADER_LEN as u64),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::kernel::build_zimage;
    use crate::unpack::{Limits, unpack};

    #[test]
    fn both_endiannesses_parse() {
        for big in [false, true] {
            let img = build_zimage(&[0x55; 100], big);
            let h = ZHeader::parse(&img).unwrap();
            assert_eq!(h.endian, if big { Endian::Big } else { Endian::Little });
            assert_eq!(h.size(), Some(img.len() as u64));
            assert!(h.endian_flag);
            assert!(ZImage.detect(&img));
        }
    }

    #[test]
    fn end_before_start_is_rejected() {
        let mut img = build_zimage(&[0x55; 100], false);
        img[0x28..0x2c].copy_from_slice(&0x1000u32.to_le_bytes());
        img[0x2c..0x30].copy_from_slice(&0x10u32.to_le_bytes());
        assert!(!ZImage.detect(&img));
        let tree = unpack(Bytes::from(img), b"z", &Limits::default());
        assert_eq!(tree.root().unwrap().format, None);
    }
}
