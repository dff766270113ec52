//! The content class of a file (ELF executable, shared object, kernel module, kernel image,
//! script, web asset, config, certificate/key, device tree, other), decided from its first bytes,
//! a few markers and its name.

use serde::{Deserialize, Serialize};

/// What a file is, for weighting and reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentClass {
    /// ELF executable (`ET_EXEC`, or `ET_DYN` with an interpreter and no `.so` name: a PIE).
    ElfExecutable,
    /// ELF shared object (`ET_DYN` named `*.so*`, or without an interpreter).
    ElfSharedObject,
    /// Linux kernel module (`ET_REL` with a `.modinfo` section or a `.ko` name).
    ElfKernelModule,
    /// Any other ELF (relocatable object, core file …).
    ElfOther,
    /// A kernel: uImage of type kernel, zImage, arm64 or x86 boot image, `vmlinux`, or a raw
    /// image carrying a `Linux version` banner.
    KernelImage,
    /// Script with a `#!` line.
    Script,
    /// Web content: HTML, JavaScript, CSS, images, fonts.
    WebAsset,
    /// Configuration: `/etc` text, `.conf`/`.ini`/`.json`/`.xml`/`.cfg` …
    Config,
    /// PEM or DER certificate or key.
    Certificate,
    /// Flattened device tree blob (`0xd00dfeed`).
    DeviceTree,
    /// Anything else.
    Other,
}

impl ContentClass {
    /// Whether the class is an ELF file.
    pub fn is_elf(self) -> bool {
        matches!(
            self,
            Self::ElfExecutable | Self::ElfSharedObject | Self::ElfKernelModule | Self::ElfOther
        )
    }
}

const ET_REL: u16 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_INTERP: u32 = 3;
/// Program headers looked at for `PT_INTERP`.
const MAX_PHDRS: usize = 256;
/// Bytes searched for a `Linux version` banner in a raw image (real banners sit in the first few
/// MiB of the decompressed kernel's read-only data).
const BANNER_WINDOW: usize = 16 << 20;
/// Smallest raw image taken for a kernel on the strength of its banner alone.
const MIN_RAW_KERNEL: usize = 512 << 10;

/// The class of `data`, named `name` (its path; only the last component and the extension are
/// used).
///
/// ```
/// use fwsim::features::class::{classify, ContentClass};
/// assert_eq!(classify(b"#!/bin/sh\necho hi\n", b"etc/init.d/rcS"), ContentClass::Script);
/// assert_eq!(classify(&[0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 0x40], b"x.dtb"), ContentClass::DeviceTree);
/// ```
pub fn classify(data: &[u8], name: &[u8]) -> ContentClass {
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    let ext = extension(base);
    if data.starts_with(b"\x7fELF") {
        return classify_elf(data, base);
    }
    if data.starts_with(&[0x27, 0x05, 0x19, 0x56]) && data.get(30) == Some(&2) {
        return ContentClass::KernelImage;
    }
    if read_u32_le(data, 0x24) == Some(0x016f_2818)
        || data.get(0x38..0x3c) == Some(b"ARMd")
        || data.get(0x202..0x206) == Some(b"HdrS")
    {
        return ContentClass::KernelImage;
    }
    if data.starts_with(&[0xd0, 0x0d, 0xfe, 0xed]) {
        return ContentClass::DeviceTree;
    }
    if data.starts_with(b"#!") {
        return ContentClass::Script;
    }
    let head = data.get(..data.len().min(512)).unwrap_or_default();
    let trimmed = head.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN ") || is_der_sequence(data) && is_key_ext(&ext) {
        return ContentClass::Certificate;
    }
    if is_key_ext(&ext) && memchr::memmem::find(head, b"-----BEGIN ").is_some() {
        return ContentClass::Certificate;
    }
    if is_web_magic(data, trimmed) || is_web_ext(&ext) {
        return ContentClass::WebAsset;
    }
    if is_config(base, &ext, name, head) {
        return ContentClass::Config;
    }
    if data.len() >= MIN_RAW_KERNEL && has_linux_banner(data) {
        return ContentClass::KernelImage;
    }
    ContentClass::Other
}

/// Lower-case extension of a file name (without the dot), empty when there is none.
fn extension(base: &[u8]) -> Vec<u8> {
    match base.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => base.get(i + 1..).unwrap_or_default().to_ascii_lowercase(),
        _ => Vec::new(),
    }
}

fn read_u16(data: &[u8], at: usize, le: bool) -> Option<u16> {
    let b: [u8; 2] = data.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if le {
        u16::from_le_bytes(b)
    } else {
        u16::from_be_bytes(b)
    })
}

fn read_u32(data: &[u8], at: usize, le: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    })
}

fn read_u32_le(data: &[u8], at: usize) -> Option<u32> {
    read_u32(data, at, true)
}

fn read_u64(data: &[u8], at: usize, le: bool) -> Option<u64> {
    let b: [u8; 8] = data.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(if le {
        u64::from_le_bytes(b)
    } else {
        u64::from_be_bytes(b)
    })
}

/// ELF by `e_type`, `PT_INTERP` and the name.
fn classify_elf(data: &[u8], base: &[u8]) -> ContentClass {
    let is64 = data.get(4) == Some(&2);
    let le = data.get(5) != Some(&2);
    let Some(e_type) = read_u16(data, 16, le) else {
        return ContentClass::ElfOther;
    };
    if base.starts_with(b"vmlinux") && e_type == ET_EXEC {
        return ContentClass::KernelImage;
    }
    match e_type {
        ET_EXEC => ContentClass::ElfExecutable,
        ET_DYN => {
            // Libraries may carry an interpreter too (uClibc's and glibc's libc do): a `.so` name
            // wins; otherwise an interpreter means a position-independent executable.
            let so_name = memchr::memmem::find(base, b".so").is_some();
            if !so_name && has_interp(data, is64, le) {
                ContentClass::ElfExecutable
            } else {
                ContentClass::ElfSharedObject
            }
        }
        ET_REL => {
            let modinfo = memchr::memmem::find(data, b"\0.modinfo\0").is_some();
            if base.ends_with(b".ko") || modinfo {
                ContentClass::ElfKernelModule
            } else {
                ContentClass::ElfOther
            }
        }
        _ => ContentClass::ElfOther,
    }
}

/// Whether the program headers include `PT_INTERP` (at most [`MAX_PHDRS`] are read).
fn has_interp(data: &[u8], is64: bool, le: bool) -> bool {
    let (phoff, entsize, num) = if is64 {
        (
            read_u64(data, 32, le).and_then(|v| usize::try_from(v).ok()),
            read_u16(data, 54, le),
            read_u16(data, 56, le),
        )
    } else {
        (
            read_u32(data, 28, le).and_then(|v| usize::try_from(v).ok()),
            read_u16(data, 42, le),
            read_u16(data, 44, le),
        )
    };
    let (Some(phoff), Some(entsize), Some(num)) = (phoff, entsize, num) else {
        return false;
    };
    (0..usize::from(num).min(MAX_PHDRS)).any(|i| {
        i.checked_mul(usize::from(entsize))
            .and_then(|o| o.checked_add(phoff))
            .and_then(|at| read_u32(data, at, le))
            == Some(PT_INTERP)
    })
}

/// A DER SEQUENCE whose long-form length covers the whole buffer (certificates, keys).
fn is_der_sequence(data: &[u8]) -> bool {
    match (data.first(), data.get(1)) {
        (Some(0x30), Some(0x82)) => {
            read_u16(data, 2, false).is_some_and(|len| usize::from(len) + 4 == data.len())
        }
        (Some(0x30), Some(0x81)) => data
            .get(2)
            .is_some_and(|&len| usize::from(len) + 3 == data.len()),
        _ => false,
    }
}

fn is_key_ext(ext: &[u8]) -> bool {
    matches!(
        ext,
        b"pem" | b"crt" | b"cer" | b"der" | b"key" | b"pub" | b"p12" | b"pfx" | b"csr"
    )
}

fn is_web_magic(data: &[u8], trimmed: &[u8]) -> bool {
    let lower = trimmed
        .get(..trimmed.len().min(15))
        .unwrap_or_default()
        .to_ascii_lowercase();
    data.starts_with(b"\x89PNG\r\n\x1a\n")
        || data.starts_with(&[0xff, 0xd8, 0xff])
        || data.starts_with(b"GIF87a")
        || data.starts_with(b"GIF89a")
        || data.starts_with(b"wOFF")
        || data.starts_with(b"wOF2")
        || lower.starts_with(b"<!doctype html")
        || lower.starts_with(b"<html")
}

fn is_web_ext(ext: &[u8]) -> bool {
    matches!(
        ext,
        b"html"
            | b"htm"
            | b"shtml"
            | b"asp"
            | b"cgi"
            | b"js"
            | b"css"
            | b"png"
            | b"jpg"
            | b"jpeg"
            | b"gif"
            | b"ico"
            | b"svg"
            | b"bmp"
            | b"woff"
            | b"woff2"
            | b"ttf"
            | b"eot"
            | b"swf"
            | b"map"
    )
}

/// Configuration: a config extension, a well-known `/etc` name, or printable text under `etc/`.
fn is_config(base: &[u8], ext: &[u8], path: &[u8], head: &[u8]) -> bool {
    if matches!(
        ext,
        b"conf" | b"cfg" | b"ini" | b"json" | b"xml" | b"yaml" | b"yml" | b"config" | b"prop"
    ) {
        return true;
    }
    if matches!(
        base,
        b"passwd"
            | b"shadow"
            | b"group"
            | b"fstab"
            | b"inittab"
            | b"profile"
            | b"hosts"
            | b"services"
            | b"protocols"
            | b"resolv.conf"
            | b"Install"
            | b"hwid"
    ) {
        return true;
    }
    let in_etc = path.starts_with(b"etc/") || memchr::memmem::find(path, b"/etc/").is_some();
    in_etc
        && !head.is_empty()
        && head
            .iter()
            .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace())
}

/// `Linux version ` followed by a digit, within the first [`BANNER_WINDOW`] bytes.
fn has_linux_banner(data: &[u8]) -> bool {
    let window = data
        .get(..data.len().min(BANNER_WINDOW))
        .unwrap_or_default();
    memchr::memmem::find_iter(window, b"Linux version ")
        .take(64)
        .any(|i| window.get(i + 14).is_some_and(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 32-bit little-endian ELF header of type `e_type`, with one program header of
    /// type `ptype` right after it.
    fn elf32(e_type: u16, ptype: u32) -> Vec<u8> {
        let mut h = vec![0u8; 52 + 32];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 1;
        h[5] = 1;
        h[6] = 1;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&40u16.to_le_bytes()); // EM_ARM
        h[28..32].copy_from_slice(&52u32.to_le_bytes());
        h[42..44].copy_from_slice(&32u16.to_le_bytes());
        h[44..46].copy_from_slice(&1u16.to_le_bytes());
        h[52..56].copy_from_slice(&ptype.to_le_bytes());
        h
    }

    #[test]
    fn elf_kinds() {
        assert_eq!(
            classify(&elf32(2, 1), b"bin/sh"),
            ContentClass::ElfExecutable
        );
        assert_eq!(
            classify(&elf32(3, PT_INTERP), b"usr/bin/pie"),
            ContentClass::ElfExecutable
        );
        assert_eq!(
            classify(&elf32(3, 1), b"lib/libc.so.0"),
            ContentClass::ElfSharedObject
        );
        assert_eq!(
            classify(&elf32(3, PT_INTERP), b"lib/libuClibc-0.9.33.2.so"),
            ContentClass::ElfSharedObject
        );
        assert_eq!(
            classify(&elf32(1, 0), b"lib/modules/x.ko"),
            ContentClass::ElfKernelModule
        );
        let mut m = elf32(1, 0);
        m.extend_from_slice(b"\0.modinfo\0");
        assert_eq!(classify(&m, b"drv"), ContentClass::ElfKernelModule);
        assert_eq!(classify(&elf32(1, 0), b"a.o"), ContentClass::ElfOther);
        assert_eq!(
            classify(&elf32(2, 0), b"boot/vmlinux"),
            ContentClass::KernelImage
        );
        // A header cut short is still an ELF, of unknown kind.
        assert_eq!(classify(b"\x7fELF\x01\x01", b"x"), ContentClass::ElfOther);
    }

    #[test]
    fn kernels() {
        let mut z = vec![0u8; 0x40];
        z[0x24..0x28].copy_from_slice(&0x016f_2818u32.to_le_bytes());
        assert_eq!(classify(&z, b"zImage"), ContentClass::KernelImage);
        let mut u = vec![0u8; 64];
        u[..4].copy_from_slice(&[0x27, 0x05, 0x19, 0x56]);
        u[30] = 2;
        assert_eq!(classify(&u, b"uImage"), ContentClass::KernelImage);
        u[30] = 5;
        assert_eq!(classify(&u, b"uImage"), ContentClass::Other);
        let mut raw = vec![0x11u8; MIN_RAW_KERNEL];
        raw[1000..1000 + 20].copy_from_slice(b"Linux version 3.10.0");
        assert_eq!(classify(&raw, b"data"), ContentClass::KernelImage);
        raw[1000 + 14] = b'x';
        assert_eq!(classify(&raw, b"data"), ContentClass::Other);
    }

    #[test]
    fn text_kinds() {
        assert_eq!(
            classify(b"\n-----BEGIN CERTIFICATE-----\nMIIB", b"etc/ssl/ca.pem"),
            ContentClass::Certificate
        );
        assert_eq!(
            classify(b"-----BEGIN RSA PRIVATE KEY-----\n", b"key"),
            ContentClass::Certificate
        );
        let mut der = vec![0x30, 0x82, 0x01, 0x00];
        der.resize(0x104, 0x02);
        assert_eq!(classify(&der, b"server.der"), ContentClass::Certificate);
        assert_eq!(classify(&der, b"server.bin"), ContentClass::Other);
        assert_eq!(
            classify(b"<!DOCTYPE html><html>", b"web/index"),
            ContentClass::WebAsset
        );
        assert_eq!(
            classify(b"function f(){}", b"web/a.js"),
            ContentClass::WebAsset
        );
        assert_eq!(
            classify(b"\x89PNG\r\n\x1a\n....", b"logo"),
            ContentClass::WebAsset
        );
        assert_eq!(
            classify(b"root:x:0:0:root:/root:/bin/sh\n", b"etc/passwd"),
            ContentClass::Config
        );
        assert_eq!(
            classify(b"option=1\n", b"rootfs/etc/app/settings"),
            ContentClass::Config
        );
        assert_eq!(classify(b"{\"a\":1}", b"Install"), ContentClass::Config);
        assert_eq!(
            classify(b"\x00\x01binary", b"etc/blob"),
            ContentClass::Other
        );
        assert_eq!(classify(b"", b""), ContentClass::Other);
    }
}
