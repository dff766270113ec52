//! Fixture builders for filesystem images: squashfs through backhand's writer (any compressor it
//! writes, either endianness) or squashfs-tools' `mksquashfs` (for LZO and LZMA, which backhand
//! writes only with GPL code), and cramfs through fwsim's own writer.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use backhand::compression::{CompressionOptions, Compressor, Lz4};
use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};

/// One entry of a fixture filesystem.
#[derive(Clone, Debug)]
pub enum Item {
    /// Directory with permissions.
    Dir(&'static str, u16),
    /// Regular file with permissions and contents.
    File(&'static str, u16, Vec<u8>),
    /// Symbolic link to a target.
    Symlink(&'static str, &'static str),
    /// Character device with a device number.
    CharDevice(&'static str, u32),
}

/// A small root filesystem: nested directories, a multi-block file with a fragment tail, small
/// files that share a fragment, an empty file, a file of zeros (stored sparse), a symlink and a
/// device; `elf` (a real binary, when one is available) is stored as `bin/busybox`.
pub fn rootfs(elf: Option<Vec<u8>>) -> Vec<Item> {
    let text: Vec<u8> = (0..60_000u32)
        .flat_map(|i| format!("{i:08x} log line\n").into_bytes())
        .collect();
    let elf = elf.unwrap_or_else(|| {
        let mut b = b"\x7fELF\x01\x01\x01".to_vec();
        b.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        b
    });
    vec![
        Item::Dir("bin", 0o755),
        Item::Dir("etc", 0o755),
        Item::Dir("etc/init.d", 0o700),
        Item::Dir("var", 0o1777),
        Item::File("bin/busybox", 0o4755, elf),
        Item::Symlink("bin/sh", "busybox"),
        Item::File(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        ),
        Item::File("etc/init.d/rcS", 0o755, b"#!/bin/sh\nmount -a\n".to_vec()),
        Item::File("etc/empty", 0o600, Vec::new()),
        Item::File("var/log.txt", 0o640, text),
        Item::File("var/zeros", 0o644, vec![0u8; 300_000]),
        Item::CharDevice("console", 0x0501),
    ]
}

/// backhand's options for `compressor` (lz4 needs explicit options).
fn fs_compressor(compressor: Compressor) -> FilesystemCompressor {
    let options = (compressor == Compressor::Lz4).then_some(CompressionOptions::Lz4(Lz4 {
        version: 1,
        flags: 0,
    }));
    FilesystemCompressor::new(compressor, options).expect("valid compressor")
}

/// A squashfs 4 image of `items` written by backhand with `compressor`, little-endian or
/// big-endian.
pub fn squashfs(items: &[Item], compressor: Compressor, big_endian: bool) -> Vec<u8> {
    let mut w = FilesystemWriter::default();
    w.set_time(1_700_000_000);
    w.set_compressor(fs_compressor(compressor));
    if big_endian {
        w.set_kind(backhand::kind::Kind::from_const(backhand::kind::BE_V4_0).expect("kind"));
    }
    for item in items {
        match item {
            Item::Dir(p, m) => w.push_dir(p, NodeHeader::new(*m, 0, 0, 1_700_000_000)),
            Item::File(p, m, data) => w.push_file(
                Cursor::new(data.clone()),
                p,
                NodeHeader::new(*m, 1000, 100, 1_700_000_000),
            ),
            Item::Symlink(p, t) => w.push_symlink(t, p, NodeHeader::new(0o777, 0, 0, 0)),
            Item::CharDevice(p, dev) => {
                w.push_char_device(*dev, p, NodeHeader::new(0o600, 0, 0, 0))
            }
        }
        .expect("push entry");
    }
    let mut out = Cursor::new(Vec::new());
    w.write(&mut out).expect("write squashfs");
    out.into_inner()
}

/// Writes `items` under `dir` (devices skipped: creating them needs privileges).
pub fn write_tree(items: &[Item], dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for item in items {
        match item {
            Item::Dir(p, _) => std::fs::create_dir_all(dir.join(p)).unwrap(),
            Item::File(p, m, data) => {
                std::fs::write(dir.join(p), data).unwrap();
                std::fs::set_permissions(
                    dir.join(p),
                    std::fs::Permissions::from_mode(u32::from(*m)),
                )
                .unwrap();
            }
            Item::Symlink(p, t) => std::os::unix::fs::symlink(t, dir.join(p)).unwrap(),
            Item::CharDevice(..) => {}
        }
    }
    for item in items {
        if let Item::Dir(p, m) = item {
            std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(u32::from(*m)))
                .unwrap();
        }
    }
}

/// A squashfs image of `items` made by `mksquashfs -comp <comp>` (`None` when the tool is missing).
pub fn mksquashfs(items: &[Item], comp: &str, extra: &[&str]) -> Option<Vec<u8>> {
    if !super::tool("mksquashfs") {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    write_tree(items, &root);
    let img = tmp.path().join("img.sqfs");
    let status = Command::new("mksquashfs")
        .arg(&root)
        .arg(&img)
        .args(["-comp", comp, "-noappend", "-quiet", "-no-progress"])
        .args(extra)
        .status()
        .expect("run mksquashfs");
    assert!(status.success(), "mksquashfs -comp {comp} failed");
    Some(std::fs::read(img).unwrap())
}

/// The same entries for fwsim's cramfs writer.
pub fn cramfs_entries(items: &[Item]) -> Vec<fwsim::unpack::formats::cramfs::Entry> {
    use fwsim::unpack::formats::cramfs::Entry;
    items
        .iter()
        .map(|i| match i {
            Item::Dir(p, m) => Entry::Dir((*p).into(), u32::from(*m)),
            Item::File(p, m, d) => Entry::File((*p).into(), u32::from(*m), d.clone()),
            Item::Symlink(p, t) => Entry::Symlink((*p).into(), (*t).into()),
            Item::CharDevice(p, d) => Entry::CharDevice((*p).into(), *d),
        })
        .collect()
}
