//! romfs and Ambarella ROMFS: images from fwsim's writers and from genromfs round-trip, the real
//! samples list what they are known to hold, and hostile variants (cycles, lies, damage) stop.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::synth::romfs::{self, RomfsNode};
use fwsim::unpack::{EntryKind, Limits, Tree, UnpackError, unpack};

use crate::common::{self, sample};

fn unpack_bytes(data: Vec<u8>, name: &str) -> Tree {
    unpack(Bytes::from(data), name.as_bytes(), &Limits::default())
}

fn node<'t>(tree: &'t Tree, path: &str) -> &'t fwsim::unpack::Node {
    tree.nodes()
        .iter()
        .find(|n| n.path == path.as_bytes())
        .unwrap_or_else(|| panic!("{path} not listed"))
}

/// Entries `format` listed directly under the root: path → (kind, size of files).
fn listing(tree: &Tree, format: &str) -> BTreeMap<String, (&'static str, Option<usize>)> {
    let root = tree.root().unwrap();
    let prefix = format!("{}/", String::from_utf8_lossy(&root.path));
    tree.nodes()
        .iter()
        .filter(|n| n.parent == Some(0))
        .filter(|n| n.origin.as_ref().map(|o| o.container) == Some(format))
        .map(|n| {
            let rel = String::from_utf8_lossy(&n.path)
                .strip_prefix(&prefix)
                .unwrap()
                .to_owned();
            let size = (n.kind == EntryKind::File).then_some(n.data.len());
            (rel, (n.kind.as_str(), size))
        })
        .collect()
}

fn assert_clean(tree: &Tree, format: &str) {
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some(format), "{:?}", root.error);
    assert!(root.error.is_none(), "{:?}", root.error);
    for n in tree.nodes().iter().filter(|n| n.parent == Some(0)) {
        assert!(
            n.error.is_none(),
            "{}: {:?}",
            String::from_utf8_lossy(&n.path),
            n.error
        );
    }
}

fn fixture() -> Vec<(&'static str, RomfsNode)> {
    let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    vec![
        (
            "bin/busybox",
            RomfsNode::File {
                data: big,
                exec: true,
            },
        ),
        ("bin/sh", RomfsNode::Symlink(b"busybox".to_vec())),
        (
            "etc/passwd",
            RomfsNode::File {
                data: b"root:x:0:0::/root:/bin/sh\n".to_vec(),
                exec: false,
            },
        ),
        (
            "etc/empty",
            RomfsNode::File {
                data: Vec::new(),
                exec: false,
            },
        ),
        // Names whose terminator falls exactly on, and just past, a 16-byte boundary.
        (
            "etc/fifteen_chars",
            RomfsNode::File {
                data: b"15".to_vec(),
                exec: false,
            },
        ),
        (
            "etc/sixteen_chars_",
            RomfsNode::File {
                data: b"16".to_vec(),
                exec: false,
            },
        ),
        ("etc/passwd.lnk", RomfsNode::Hardlink("etc/passwd".into())),
        ("dev/console", RomfsNode::CharDevice(5, 1)),
        ("dev/mtdblock3", RomfsNode::BlockDevice(31, 3)),
        ("dev/initctl", RomfsNode::Fifo),
        ("var/empty", RomfsNode::Dir),
    ]
}

#[test]
fn romfs_round_trips_every_entry_kind() {
    let items = fixture();
    let img = romfs::build("camera rootfs", &items).unwrap();
    let tree = unpack_bytes(img, "r.img");
    assert_clean(&tree, "romfs");
    let meta = &tree.root().unwrap().format_meta;
    assert_eq!(meta["volume"], "camera rootfs");
    assert_eq!(meta["checksum_ok"], true);
    assert_eq!(meta["bad_file_checksums"], 0);
    for (path, item) in &items {
        let n = node(&tree, &format!("r.img/{path}"));
        match item {
            RomfsNode::Dir => assert_eq!(n.mode, Some(0o040755), "{path}"),
            RomfsNode::File { data, exec } => {
                assert!(n.data[..] == data[..], "{path}");
                assert_eq!(
                    n.mode,
                    Some(if *exec { 0o100755 } else { 0o100644 }),
                    "{path}"
                );
            }
            RomfsNode::Symlink(t) => {
                assert_eq!(n.kind, EntryKind::Symlink { target: t.clone() }, "{path}")
            }
            RomfsNode::CharDevice(ma, mi) | RomfsNode::BlockDevice(ma, mi) => {
                assert_eq!(n.kind, EntryKind::Device, "{path}");
                assert_eq!(n.meta["device"], format!("{ma},{mi}"), "{path}");
            }
            RomfsNode::Fifo => assert_eq!(n.mode, Some(0o010644), "{path}"),
            RomfsNode::Hardlink(t) => {
                assert_eq!(
                    n.kind,
                    EntryKind::Hardlink {
                        target: t.as_bytes().to_vec()
                    },
                    "{path}"
                )
            }
        }
    }
    // Directories that were only implied are listed too, and "." and ".." are not.
    let l = listing(&tree, "romfs");
    assert_eq!(l["bin"], ("dir", None));
    assert!(
        !l.keys()
            .any(|k| k.ends_with("/.") || k.ends_with("/..") || k == ".")
    );
    assert_eq!(
        l.len(),
        items.len() + 4,
        "bin, etc, dev and var are implied"
    );
}

/// genromfs is an independent writer (Debian's `genromfs`): a tree written to disk and packed by
/// it must list exactly as written, hard links included.
#[test]
fn genromfs_images_list_as_built() {
    if !common::tool("genromfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc/init.d")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    let big: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_be_bytes()).collect();
    std::fs::write(root.join("bin/app"), &big).unwrap();
    std::fs::write(root.join("etc/init.d/rcS"), b"#!/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/passwd"), b"root::0:0::/:/bin/sh\n").unwrap();
    std::fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd.bak")).unwrap();
    std::os::unix::fs::symlink("app", root.join("bin/sh")).unwrap();
    let img = dir.path().join("r.img");
    let out = Command::new("genromfs")
        .args(["-V", "fwsim test", "-f"])
        .arg(&img)
        .arg("-d")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = unpack_bytes(std::fs::read(&img).unwrap(), "g.img");
    assert_clean(&tree, "romfs");
    assert_eq!(tree.root().unwrap().format_meta["volume"], "fwsim test");
    assert_eq!(&node(&tree, "g.img/bin/app").data[..], &big[..]);
    assert_eq!(
        &node(&tree, "g.img/etc/init.d/rcS").data[..],
        b"#!/bin/sh\n"
    );
    assert_eq!(
        node(&tree, "g.img/bin/sh").kind,
        EntryKind::Symlink {
            target: b"app".to_vec()
        }
    );
    // One of the two names holds the data; genromfs writes the other as a hard link to it.
    let a = node(&tree, "g.img/etc/passwd");
    let b = node(&tree, "g.img/etc/passwd.bak");
    let (file_name, file, link) = if a.kind == EntryKind::File {
        ("etc/passwd", a, b)
    } else {
        ("etc/passwd.bak", b, a)
    };
    assert_eq!(&file.data[..], b"root::0:0::/:/bin/sh\n");
    assert_eq!(
        link.kind,
        EntryKind::Hardlink {
            target: file_name.as_bytes().to_vec()
        }
    );
    let l = listing(&tree, "romfs");
    assert_eq!(l.len(), 8, "{l:?}");
}

/// binwalk's romfs vector holds one file, an Ubuntu `lsb-release` (read off the image by hand:
/// the header at 0x60 names it, 104 bytes of text follow at 0x80).
#[test]
fn binwalk_romfs_sample_holds_lsb_release() {
    let Some(p) = sample("ReFirmLabs__binwalk/tests/inputs/romfs.bin") else {
        return;
    };
    let tree = unpack_bytes(std::fs::read(p).unwrap(), "romfs.bin");
    assert_clean(&tree, "romfs");
    assert_eq!(tree.root().unwrap().format_meta["volume"], "rom 67269c23");
    assert_eq!(listing(&tree, "romfs").len(), 1);
    assert_eq!(
        &node(&tree, "romfs.bin/lsb-release").data[..],
        &b"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\n\
           DISTRIB_DESCRIPTION=\"Ubuntu 22.04.5 LTS\"\n"[..]
    );
    // No carved remainder: the image (240 bytes) is padded with zeros to 1 KiB.
    assert_eq!(tree.nodes().len(), 2);
}

/// FACT's romfs test image holds its shared test set, the same files its squashfs test images
/// hold (`unsquashfs` extracts these exact bytes from `zlib_le.sqfs3`).
#[test]
fn fact_romfs_sample_holds_facts_test_files() {
    let Some(p) = sample(
        "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/generic_fs/test/data/romfs.img",
    ) else {
        return;
    };
    let tree = unpack_bytes(std::fs::read(p).unwrap(), "r");
    assert_clean(&tree, "romfs");
    let l = listing(&tree, "romfs");
    assert_eq!(
        l,
        BTreeMap::from([
            ("generic folder".to_owned(), ("dir", None)),
            (
                "generic folder/test file 3_.txt".to_owned(),
                ("file", Some(20))
            ),
            ("testfile1".to_owned(), ("file", Some(62))),
            ("testfile2".to_owned(), ("file", Some(28))),
        ])
    );
    assert_eq!(
        &node(&tree, "r/testfile1").data[..],
        b"test file:\ncontent: MyTestRule 1.2.3\nVersion: Program 0.0.0.0\n"
    );
    assert_eq!(
        &node(&tree, "r/testfile2").data[..],
        b"This is the second test file"
    );
    assert_eq!(
        &node(&tree, "r/generic folder/test file 3_.txt").data[..],
        b"The third test file!"
    );
}

/// The Xiongmai burner rootfs: the upstream repository also ships 20 of its binaries extracted
/// (`rootfs_toburn/`); each must come out byte for byte. The counts of directories, symlinks and
/// files were established on the image (every header checksum verifies, so each entry is one the
/// image really holds).
#[test]
fn xiongmai_romfs_matches_its_extracted_binaries() {
    let Some(p) = sample("nikitos1550__XM_ipcam_crypto_generator/rootfs.romfs") else {
        return;
    };
    let dir = p.parent().unwrap().join("rootfs_toburn");
    let tree = unpack_bytes(std::fs::read(&p).unwrap(), "rootfs.romfs");
    assert_clean(&tree, "romfs");
    let meta = &tree.root().unwrap().format_meta;
    assert_eq!(meta["checksum_ok"], true);
    assert_eq!(meta["bad_file_checksums"], 0);
    assert_eq!(meta["volume"], "rom 58b8f712");
    let l = listing(&tree, "romfs");
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, _) in l.values() {
        *kinds.entry(k).or_default() += 1;
    }
    assert_eq!(
        kinds,
        BTreeMap::from([("dir", 26), ("file", 59), ("symlink", 343)])
    );
    assert_eq!(
        node(&tree, "rootfs.romfs/init").kind,
        EntryKind::Symlink {
            target: b"sbin/init".to_vec()
        }
    );
    let mut compared = 0;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
                continue;
            }
            let rel = e
                .path()
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ours = node(&tree, &format!("rootfs.romfs/{rel}"));
            assert!(
                ours.data[..] == std::fs::read(e.path()).unwrap()[..],
                "{rel}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 20);
}

/// FACT's Ambarella sample: its test expects 4 files; the table (read by hand at 0x800) names
/// four warp tables of 0xC00 bytes at 0x1000, 0x2000, 0x3000 and 0x4000, and the image ends at
/// 0x5000 after the last file's padding.
#[test]
fn ambarella_sample_lists_its_four_warp_tables() {
    let Some(p) = sample(
        "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/ambarella/test/data/ambarella_rom.fs",
    ) else {
        return;
    };
    let tree = unpack_bytes(std::fs::read(p).unwrap(), "a.fs");
    assert_clean(&tree, "ambarella-romfs");
    assert_eq!(tree.root().unwrap().format_meta["file_count"], 4);
    assert_eq!(tree.root().unwrap().format_meta["bad_entry_magics"], 0);
    for (i, name) in [
        "SuperViewWarpTable_1440p3024_h.bin",
        "SuperViewWarpTable_1440p3024_v.bin",
        "SuperViewWarpTable_4kp30_h.bin",
        "SuperViewWarpTable_4kp30_v.bin",
    ]
    .iter()
    .enumerate()
    {
        let n = node(&tree, &format!("a.fs/{name}"));
        assert_eq!(n.data.len(), 0xC00, "{name}");
        assert_eq!(
            n.origin.as_ref().unwrap().offset,
            Some(0x1000 * (i as u64 + 1)),
            "{name}"
        );
    }
    assert_eq!(tree.nodes().len(), 5, "nothing left over to carve");
}

#[test]
fn ambarella_round_trips_and_bad_entries_are_entry_errors() {
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("file{i}.bin"), vec![i as u8; 1000 + i * 1500]))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let img = romfs::ambarella(&refs).unwrap();
    let tree = unpack_bytes(img.clone(), "a");
    assert_clean(&tree, "ambarella-romfs");
    for (name, data) in &files {
        assert_eq!(&node(&tree, &format!("a/{name}")).data[..], &data[..]);
    }
    // An entry pointing past the end is an error on that entry alone.
    let mut bad = img.clone();
    let at = 2048 + 2 * 128 + 116;
    bad[at..at + 4].copy_from_slice(&0x00F0_0000u32.to_le_bytes());
    let tree = unpack_bytes(bad, "a");
    assert!(tree.root().unwrap().error.is_none());
    assert!(matches!(
        node(&tree, "a/file2.bin").error,
        Some(UnpackError::Truncated(_))
    ));
    assert!(node(&tree, "a/file3.bin").error.is_none());
    // A header announcing 4 billion files is not taken for Ambarella ROMFS.
    let mut lie = img;
    lie[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let tree = unpack_bytes(lie, "a");
    assert_ne!(tree.root().unwrap().format, Some("ambarella-romfs"));
}

/// Recomputes the superblock checksum after a test edited the first 512 bytes, so the image is
/// still taken for romfs and the damage is what the reader meets.
fn reseal(img: &mut [u8]) {
    let full = u32::from_be_bytes(img[8..12].try_into().unwrap()) as usize;
    img[12..16].fill(0);
    let sum = img[..full.min(512)]
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes(w.try_into().unwrap()))
        .fold(0u32, u32::wrapping_add);
    img[12..16].copy_from_slice(&0u32.wrapping_sub(sum).to_be_bytes());
}

/// Offset of the header of `name` in an image from our writer (found by its padded name).
fn header_of(img: &[u8], name: &[u8]) -> usize {
    let mut padded = name.to_vec();
    padded.push(0);
    (0..img.len())
        .step_by(16)
        .find(|&h| img[h + 16..].starts_with(&padded))
        .unwrap()
}

#[test]
fn romfs_cycles_stop_with_an_error() {
    let items = vec![
        (
            "d/a",
            RomfsNode::File {
                data: b"a".to_vec(),
                exec: false,
            },
        ),
        (
            "d/b",
            RomfsNode::File {
                data: b"b".to_vec(),
                exec: false,
            },
        ),
        (
            "d/sub/c",
            RomfsNode::File {
                data: b"c".to_vec(),
                exec: false,
            },
        ),
    ];
    let img = romfs::build("v", &items).unwrap();
    // 1: the last entry of d links back to its first (a chain that loops).
    let mut looped = img.clone();
    let sub = header_of(&looped, b"sub");
    let a = header_of(&looped, b"a") as u32;
    let ty = u32::from_be_bytes(looped[sub..sub + 4].try_into().unwrap()) & 0xF;
    looped[sub..sub + 4].copy_from_slice(&(a | ty).to_be_bytes());
    reseal(&mut looped);
    // 2: sub's listing is d's listing (a directory inside itself).
    let mut nested = img.clone();
    let d = header_of(&nested, b"d");
    let d_info: [u8; 4] = nested[d + 4..d + 8].try_into().unwrap();
    nested[sub + 4..sub + 8].copy_from_slice(&d_info);
    reseal(&mut nested);
    for bad in [looped, nested] {
        let started = Instant::now();
        let tree = unpack_bytes(bad, "r");
        assert!(started.elapsed() < Duration::from_secs(5));
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("romfs"));
        assert!(
            matches!(&root.error, Some(UnpackError::Corrupt(m)) if m.contains("cycle")),
            "{:?}",
            root.error
        );
        // What came before the cycle is still listed.
        assert_eq!(&node(&tree, "r/d/a").data[..], b"a");
    }
}

#[test]
fn romfs_lies_are_reported() {
    let img = romfs::build("v", &fixture()).unwrap();
    // Cut short: the superblock's size is more than is present.
    let tree = unpack_bytes(img[..img.len() / 2].to_vec(), "r");
    assert!(
        matches!(tree.root().unwrap().error, Some(UnpackError::Truncated(_))),
        "{:?}",
        tree.root().unwrap().error
    );
    // A damaged name: the header's checksum no longer holds, which is reported on the entry.
    let mut bad = img.clone();
    let h = header_of(&bad, b"fifteen_chars");
    bad[h + 16] = b'F';
    reseal(&mut bad);
    let tree = unpack_bytes(bad, "r");
    assert_eq!(tree.root().unwrap().format_meta["bad_file_checksums"], 1);
    assert_eq!(
        node(&tree, "r/etc/Fifteen_chars").meta["checksum_ok"],
        false
    );
    // A name that is not one path component is flagged (the safe writer refuses it).
    let mut bad = img.clone();
    let h = header_of(&bad, b"fifteen_chars");
    bad[h + 16..h + 24].copy_from_slice(b"../../x\0");
    reseal(&mut bad);
    let tree = unpack_bytes(bad, "r");
    assert_eq!(node(&tree, "r/etc/../../x").meta["unsafe_path"], true);
    // A file claiming more bytes than the image holds is an error on that file.
    let mut bad = img;
    let h = header_of(&bad, b"passwd");
    bad[h + 8..h + 12].copy_from_slice(&0x0FFF_FFFFu32.to_be_bytes());
    reseal(&mut bad);
    let tree = unpack_bytes(bad, "r");
    assert!(node(&tree, "r/etc/passwd").error.is_some());
    assert!(node(&tree, "r/etc/empty").error.is_none());
}

#[test]
fn truncated_and_bit_flipped_romfs_never_panic() {
    let limits = Limits {
        time_budget: Duration::from_secs(20),
        ..Limits::default()
    };
    let files: Vec<(&str, &[u8])> = vec![("a", b"alpha"), ("b", &[7u8; 3000])];
    for img in [
        romfs::build("v", &fixture()).unwrap(),
        romfs::ambarella(&files).unwrap(),
    ] {
        let started = Instant::now();
        for cut in (0..img.len()).step_by((img.len() / 64).max(1)) {
            let _ = unpack(Bytes::copy_from_slice(&img[..cut]), b"d", &limits);
        }
        let mut positions: Vec<usize> = (0..600.min(img.len())).collect();
        positions.extend((0..img.len()).step_by((img.len() / 300).max(1)));
        for (i, pos) in positions.into_iter().enumerate() {
            let mut bad = img.clone();
            bad[pos] ^= [0x01, 0x80, 0xFF, 0x10][i % 4];
            let _ = unpack(Bytes::from(bad), b"d", &limits);
        }
        assert!(started.elapsed() < Duration::from_secs(120));
    }
}
