//! ext2/3/4: images built by e2fsprogs' `mke2fs -d` from a folder the test writes list and read
//! back exactly as written (in every version and block size), are carved from a flash dump, and
//! truncated or bit-flipped images stop without panicking.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::unpack::{EntryKind, Limits, Node, Tree, UnpackError, unpack};

use crate::common;

fn node<'t>(tree: &'t Tree, path: &str) -> &'t Node {
    tree.nodes()
        .iter()
        .find(|n| n.path == path.as_bytes())
        .unwrap_or_else(|| panic!("{path} not listed"))
}

/// A camera-like root: binaries, configuration, links, devices, a deep directory and, when
/// `sparse`, a file with a hole (ext4-view reads holes only in extent-mapped files: a hole in an
/// ext2/3 block map is an error on that file).
fn write_root(root: &Path, sparse: bool) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut put = |rel: &str, data: Vec<u8>| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &data).unwrap();
        files.insert(rel.to_owned(), data);
    };
    put(
        "bin/busybox",
        (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect(),
    );
    put("etc/passwd", b"root:x:0:0::/root:/bin/sh\n".to_vec());
    put("etc/empty", Vec::new());
    put("a/b/c/d/e/f/deep.txt", b"deep".to_vec());
    std::fs::create_dir_all(root.join("var")).unwrap();
    if sparse {
        // A file with a hole: 5 MiB, data only at both ends.
        let f = std::fs::File::create(root.join("var/sparse.bin")).unwrap();
        f.set_len(5 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", (5 << 20) - 4).unwrap();
        let mut want = vec![0u8; 5 << 20];
        want[..4].copy_from_slice(b"head");
        want[(5 << 20) - 4..].copy_from_slice(b"tail");
        files.insert("var/sparse.bin".to_owned(), want);
    }
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    // A long symlink target (stored in a block rather than in the inode).
    std::os::unix::fs::symlink("x".repeat(200), root.join("bin/long")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    let fifo = root.join("dev/initctl");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    files
}

fn mke2fs(version: &str, block_size: u32, root: &Path, img: &Path, size: &str) {
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-L", "camroot", "-t", version, "-b"])
        .arg(block_size.to_string())
        .arg("-d")
        .arg(root)
        .arg(img)
        .arg(size)
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mke2fs_images_round_trip_in_every_version() {
    if !common::tool("mke2fs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (version, block_size) in [
        ("ext2", 1024),
        ("ext3", 2048),
        ("ext4", 4096),
        ("ext4", 1024),
    ] {
        let root = dir.path().join(format!("root-{version}-{block_size}"));
        let files = write_root(&root, version == "ext4");
        let img = dir.path().join(format!("{version}-{block_size}.img"));
        mke2fs(version, block_size, &root, &img, "16M");
        let data = std::fs::read(&img).unwrap();
        let tree = unpack(Bytes::from(data), b"fs", &Limits::default());
        let r = tree.root().unwrap();
        assert_eq!(r.format, Some("ext"), "{version}: {:?}", r.error);
        assert!(r.error.is_none(), "{version}: {:?}", r.error);
        assert_eq!(r.format_meta["version"], version);
        assert_eq!(r.format_meta["block_size"], block_size);
        assert_eq!(r.format_meta["label"], "camroot");
        assert_eq!(
            r.format_meta["blocks"].as_u64().unwrap() * u64::from(block_size),
            16 << 20
        );
        for (rel, want) in &files {
            let n = node(&tree, &format!("fs/{rel}"));
            assert!(n.error.is_none(), "{rel}: {:?}", n.error);
            assert!(n.data[..] == want[..], "{version}/{block_size}: {rel}");
            assert_eq!(n.kind, EntryKind::File);
        }
        assert_eq!(
            node(&tree, "fs/bin/sh").kind,
            EntryKind::Symlink {
                target: b"busybox".to_vec()
            }
        );
        assert_eq!(
            node(&tree, "fs/bin/long").kind,
            EntryKind::Symlink {
                target: "x".repeat(200).into_bytes()
            }
        );
        let fifo = node(&tree, "fs/dev/initctl");
        assert_eq!(fifo.kind, EntryKind::Device);
        assert_eq!(fifo.mode.map(|m| m & 0o170000), Some(0o010000));
        assert_eq!(node(&tree, "fs/a/b/c/d/e/f").kind, EntryKind::Dir);
        // Everything listed: the files, symlinks, fifo, lost+found and each directory.
        let listed: Vec<&Node> = tree
            .nodes()
            .iter()
            .filter(|n| n.origin.as_ref().map(|o| o.container) == Some("ext"))
            .collect();
        let dirs = ["bin", "etc", "a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e"];
        let dirs = dirs.len() + ["a/b/c/d/e/f", "var", "dev", "lost+found"].len();
        assert_eq!(listed.len(), files.len() + 3 + dirs, "{version}");
    }
}

#[test]
fn ext_is_carved_from_a_flash_dump() {
    if !common::tool("mke2fs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("version"), b"V5.5.0 build 231012\n").unwrap();
    let img = dir.path().join("data.img");
    mke2fs("ext4", 1024, &root, &img, "1M");
    let fs = std::fs::read(&img).unwrap();
    let mut dump = vec![0x5Au8; 0x1_0000];
    dump.extend_from_slice(&fs);
    dump.extend_from_slice(&[0xFF; 0x4000]);
    let tree = unpack(Bytes::from(dump), b"flash.bin", &Limits::default());
    let region = node(&tree, "flash.bin/0x10000.ext");
    assert_eq!(
        region.data.len(),
        fs.len(),
        "the extent is blocks × block size"
    );
    assert_eq!(
        &node(&tree, "flash.bin/0x10000.ext/version").data[..],
        b"V5.5.0 build 231012\n"
    );
}

#[test]
fn truncated_and_bit_flipped_ext_never_panic() {
    if !common::tool("mke2fs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc/init.d")).unwrap();
    std::fs::write(root.join("etc/init.d/rcS"), b"#!/bin/sh\nmount -a\n").unwrap();
    std::fs::write(root.join("etc/big"), vec![7u8; 40_000]).unwrap();
    std::os::unix::fs::symlink("rcS", root.join("etc/init.d/S01")).unwrap();
    let limits = Limits {
        time_budget: Duration::from_secs(20),
        ..Limits::default()
    };
    for version in ["ext2", "ext4"] {
        let path = dir.path().join(format!("{version}.img"));
        mke2fs(version, 1024, &root, &path, "256K");
        let img = std::fs::read(&path).unwrap();
        let started = Instant::now();
        // Cut short: the superblock's block count is more than is present.
        let tree = unpack(Bytes::copy_from_slice(&img[..img.len() / 2]), b"d", &limits);
        assert!(
            matches!(tree.root().unwrap().error, Some(UnpackError::Truncated(_))),
            "{:?}",
            tree.root().unwrap().error
        );
        for cut in (0..img.len()).step_by(img.len() / 32) {
            let _ = unpack(Bytes::copy_from_slice(&img[..cut]), b"d", &limits);
        }
        // The metadata lives in the first blocks: flip bytes there densely, the rest sparsely.
        let mut positions: Vec<usize> = (0..0x6000).step_by(61).collect();
        positions.extend((0x6000..img.len()).step_by(img.len() / 64));
        for (i, pos) in positions.into_iter().enumerate() {
            let mut bad = img.clone();
            bad[pos] ^= [0x01, 0x80, 0xFF, 0x10][i % 4];
            let _ = unpack(Bytes::from(bad), b"d", &limits);
        }
        assert!(started.elapsed() < Duration::from_secs(120));
    }
}
