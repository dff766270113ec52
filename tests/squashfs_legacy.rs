//! squashfs 2.x and 3.x (both endiannesses, zlib and the vendor LZMA layouts) and vendor LZMA in
//! squashfs 4: images written in code (checked by `unsquashfs` too), every real sample listed
//! against `unsquashfs -lls` where it can read them and against hand-established facts where no
//! Debian tool can, and hostile variants (directory cycles, huge claims, damage).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::synth::squashfs3::{self, Sq3Node, Sq3Options};
use fwsim::unpack::{EntryKind, Limits, Tree, UnpackError, unpack};

use crate::common::{self, sample};

const FACT: &str = "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/";

/// One listed entry: kind, size (regular files) and `ls`-style permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    size: Option<u64>,
    perm: String,
}

/// `ls -l` permissions of a mode (`drwxr-xr-x`, `crw-r-----` …).
fn perm_string(mode: u32) -> String {
    let ty = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::from(ty);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        let bit = 0o400 >> i;
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (set, special) {
            (true, true) if i == 8 => 't',
            (false, true) if i == 8 => 'T',
            (true, true) => 's',
            (false, true) => 'S',
            (true, false) => c,
            (false, false) => '-',
        });
    }
    s
}

fn unpack_bytes(data: Vec<u8>) -> Tree {
    unpack(Bytes::from(data), b"img", &Limits::default())
}

/// The squashfs entries directly under the root, by path inside the filesystem.
fn ours(tree: &Tree) -> BTreeMap<String, Seen> {
    tree.nodes()
        .iter()
        .filter(|n| n.parent == Some(0))
        .filter(|n| n.origin.as_ref().map(|o| o.container) == Some("squashfs"))
        .map(|n| {
            let rel = String::from_utf8_lossy(&n.path)
                .strip_prefix("img/")
                .unwrap()
                .to_owned();
            let seen = Seen {
                kind: n.kind.as_str(),
                size: (n.kind == EntryKind::File).then_some(n.data.len() as u64),
                perm: perm_string(n.mode.unwrap()),
            };
            (rel, seen)
        })
        .collect()
}

/// The contents of every regular file the squashfs lists.
fn our_files(tree: &Tree) -> BTreeMap<String, Vec<u8>> {
    tree.nodes()
        .iter()
        .filter(|n| n.parent == Some(0) && n.kind == EntryKind::File)
        .filter(|n| n.origin.as_ref().map(|o| o.container) == Some("squashfs"))
        .map(|n| {
            let rel = String::from_utf8_lossy(&n.path)[4..].to_owned();
            (rel, n.data.to_vec())
        })
        .collect()
}

/// `unsquashfs -lls`: path → kind, size and permissions.
fn unsquashfs_listing(path: &Path) -> BTreeMap<String, Seen> {
    let out = Command::new("unsquashfs")
        .arg("-lls")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "unsquashfs -lls {}", path.display());
    let mut m = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(at) = line.find(" squashfs-root/") else {
            continue;
        };
        let mut rel = &line[at + " squashfs-root/".len()..];
        let perm = line.split_whitespace().next().unwrap().to_owned();
        let kind = match perm.as_bytes()[0] {
            b'd' => "dir",
            b'-' => "file",
            b'l' => "symlink",
            _ => "device",
        };
        if kind == "symlink" {
            rel = rel.split(" -> ").next().unwrap();
        }
        let size =
            (kind == "file").then(|| line.split_whitespace().nth(2).unwrap().parse().unwrap());
        m.insert(rel.to_owned(), Seen { kind, size, perm });
    }
    m
}

/// The regular files `unsquashfs -d` extracts, by path.
fn unsquashfs_files(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("x");
    let out = Command::new("unsquashfs")
        .args(["-no-xattrs", "-d"])
        .arg(&root)
        .arg(path)
        .output()
        .unwrap();
    // Devices cannot be created without root: unsquashfs says so and fails; files are still there.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("superuser"),
        "unsquashfs -d {}: {}",
        path.display(),
        stderr
    );
    let mut m = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e
                    .path()
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                m.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    m
}

fn node<'t>(tree: &'t Tree, rel: &str) -> &'t fwsim::unpack::Node {
    let path = format!("img/{rel}");
    tree.nodes()
        .iter()
        .find(|n| n.path == path.as_bytes())
        .unwrap_or_else(|| panic!("{rel} not listed"))
}

fn assert_clean(tree: &Tree, what: &str) {
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("squashfs"), "{what}: {:?}", root.error);
    assert!(root.error.is_none(), "{what}: {:?}", root.error);
    for n in tree.nodes().iter().filter(|n| n.parent == Some(0)) {
        assert!(
            n.error.is_none(),
            "{what}: {}: {:?}",
            String::from_utf8_lossy(&n.path),
            n.error
        );
    }
}

/// A filesystem that exercises every part of the format: nested directories, a file of several
/// blocks with a fragment tail, a file of exactly two blocks, small files sharing a fragment
/// block, an empty file, enough entries for several directory headers and metadata blocks, a
/// symlink and devices.
fn fixture() -> Vec<(String, Sq3Node)> {
    let log: Vec<u8> = (0..9000u32)
        .flat_map(|i| format!("{i:06} camera log line\n").into_bytes())
        .collect();
    let noise: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut items = vec![
        ("bin".to_owned(), Sq3Node::Dir(0o755)),
        ("bin/busybox".to_owned(), Sq3Node::File(log.clone(), 0o4755)),
        ("bin/sh".to_owned(), Sq3Node::Symlink(b"busybox".to_vec())),
        (
            "etc/init.d/rcS".to_owned(),
            Sq3Node::File(b"#!/bin/sh\nmount -a\n".to_vec(), 0o755),
        ),
        (
            "etc/passwd".to_owned(),
            Sq3Node::File(b"root:x:0:0:root:/root:/bin/sh\n".to_vec(), 0o644),
        ),
        ("etc/empty".to_owned(), Sq3Node::File(Vec::new(), 0o600)),
        ("lib/blob".to_owned(), Sq3Node::File(noise.repeat(2), 0o644)),
        ("dev/console".to_owned(), Sq3Node::CharDevice(5, 1)),
        ("dev/mtdblock0".to_owned(), Sq3Node::BlockDevice(31, 0)),
        ("dev/initctl".to_owned(), Sq3Node::Fifo),
        ("var".to_owned(), Sq3Node::Dir(0o1777)),
    ];
    for i in 0..300 {
        items.push((
            format!("www/page{i:03}.html"),
            Sq3Node::File(
                format!("<html>{i}</html>\n").repeat(i % 7 + 1).into_bytes(),
                0o644,
            ),
        ));
    }
    items
}

fn build(items: &[(String, Sq3Node)], opts: &Sq3Options) -> Vec<u8> {
    let refs: Vec<(&str, Sq3Node)> = items.iter().map(|(p, n)| (p.as_str(), n.clone())).collect();
    squashfs3::build(&refs, opts).unwrap()
}

fn check_fixture(tree: &Tree, items: &[(String, Sq3Node)], what: &str) {
    assert_clean(tree, what);
    for (path, item) in items {
        let n = node(tree, path);
        match item {
            Sq3Node::Dir(m) => {
                assert_eq!(n.kind, EntryKind::Dir, "{what} {path}");
                assert_eq!(n.mode, Some(0o040000 | u32::from(*m)), "{what} {path}");
            }
            Sq3Node::File(data, m) => {
                assert_eq!(n.kind, EntryKind::File, "{what} {path}");
                assert!(n.data[..] == data[..], "{what} {path}: bytes differ");
                assert_eq!(n.mode, Some(0o100000 | u32::from(*m)), "{what} {path}");
            }
            Sq3Node::Symlink(t) => {
                assert_eq!(
                    n.kind,
                    EntryKind::Symlink { target: t.clone() },
                    "{what} {path}"
                );
            }
            Sq3Node::CharDevice(ma, mi) | Sq3Node::BlockDevice(ma, mi) => {
                assert_eq!(n.kind, EntryKind::Device, "{what} {path}");
                assert_eq!(n.meta["device"], format!("{ma},{mi}"), "{what} {path}");
            }
            Sq3Node::Fifo => assert_eq!(n.mode, Some(0o010644), "{what} {path}"),
        }
    }
}

#[test]
fn squashfs3_written_in_code_round_trips_in_both_endiannesses() {
    let items = fixture();
    for big_endian in [false, true] {
        for zlib in [true, false] {
            for block_size in [4096, 65536] {
                let opts = Sq3Options {
                    big_endian,
                    zlib,
                    block_size,
                    ..Sq3Options::default()
                };
                let img = build(&items, &opts);
                assert_eq!(img.len() % 4096, 0);
                let what = format!("be={big_endian} zlib={zlib} bs={block_size}");
                let tree = unpack_bytes(img.clone());
                check_fixture(&tree, &items, &what);
                let meta = &tree.root().unwrap().format_meta;
                assert_eq!(meta["version"], "3.1", "{what}");
                assert_eq!(
                    meta["compressor"],
                    if zlib { "zlib" } else { "none" },
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn unsquashfs_reads_our_squashfs3_writer_as_we_do() {
    if !common::tool("unsquashfs") {
        return;
    }
    let items = fixture();
    for big_endian in [false, true] {
        let opts = Sq3Options {
            big_endian,
            block_size: 4096,
            ..Sq3Options::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.sqfs");
        std::fs::write(&path, build(&items, &opts)).unwrap();
        let tree = unpack_bytes(std::fs::read(&path).unwrap());
        assert_eq!(ours(&tree), unsquashfs_listing(&path), "be={big_endian}");
        assert_eq!(our_files(&tree), unsquashfs_files(&path), "be={big_endian}");
    }
}

#[test]
fn real_zlib_v3_images_read_like_unsquashfs() {
    if !common::tool("unsquashfs") {
        return;
    }
    for name in ["zlib_le.sqfs3", "zlib_be.sqfs3"] {
        let Some(p) = sample(&format!("{FACT}{name}")) else {
            return;
        };
        let tree = unpack_bytes(std::fs::read(&p).unwrap());
        assert_clean(&tree, name);
        let listing = ours(&tree);
        assert_eq!(listing.len(), 4, "{name}");
        assert_eq!(listing, unsquashfs_listing(&p), "{name}");
        assert_eq!(our_files(&tree), unsquashfs_files(&p), "{name}");
        let meta = &tree.root().unwrap().format_meta;
        assert_eq!(meta["version"], "3.1");
        assert_eq!(meta["compressor"], "zlib");
    }
}

/// FACT's LZMA test images hold the same four files as its zlib images (its tests expect the same
/// extraction from all of them); 7-Zip, which reads this LZMA layout, lists the same four entries
/// with the same sizes. No Debian tool reads them, so the zlib twin, read by `unsquashfs`, is the
/// reference for their listing and contents.
#[test]
fn real_lzma_v2_and_v3_images_hold_the_files_of_their_zlib_twin() {
    if !common::tool("unsquashfs") {
        return;
    }
    let Some(twin) = sample(&format!("{FACT}zlib_le.sqfs3")) else {
        return;
    };
    let listing = unsquashfs_listing(&twin);
    let files = unsquashfs_files(&twin);
    assert_eq!(
        files["generic folder/test file 3_.txt"],
        b"The third test file!".to_vec()
    );
    for (name, version) in [
        ("lzma_le.sqfs2", "2.76"),
        ("lzma_be.sqfs2", "2.76"),
        ("lzma1_le.sqfs3", "3.76"),
        ("lzma1_be.sqfs3", "3.76"),
    ] {
        let Some(p) = sample(&format!("{FACT}{name}")) else {
            return;
        };
        let tree = unpack_bytes(std::fs::read(&p).unwrap());
        assert_clean(&tree, name);
        let kinds = |m: &BTreeMap<String, Seen>| -> BTreeMap<String, (&'static str, Option<u64>)> {
            m.iter()
                .map(|(k, v)| (k.clone(), (v.kind, v.size)))
                .collect()
        };
        assert_eq!(kinds(&ours(&tree)), kinds(&listing), "{name}");
        assert_eq!(our_files(&tree), files, "{name}");
        let meta = &tree.root().unwrap().format_meta;
        assert_eq!(meta["version"], version, "{name}");
        assert_eq!(meta["compressor"], "lzma (headerless)", "{name}");
    }
}

/// binwalk's squashfs 2.0 big-endian image: its metadata blocks are stored uncompressed, so
/// `unsquashfs -lls` lists it (and is the reference for the listing), but its data blocks are LZMA
/// with a 5-byte header, which no Debian tool reads. Contents are checked by what they must be: a
/// big-endian MIPS router root filesystem.
#[test]
fn binwalk_squashfs_v2_lzma_image_lists_like_unsquashfs_and_reads() {
    let Some(p) = sample("ReFirmLabs__binwalk/tests/inputs/squashfs_v2.bin") else {
        return;
    };
    let tree = unpack_bytes(std::fs::read(&p).unwrap());
    assert_clean(&tree, "squashfs_v2.bin");
    let meta = &tree.root().unwrap().format_meta;
    assert_eq!(meta["version"], "2.0");
    assert_eq!(meta["endian"], "big-endian");
    assert_eq!(meta["compressor"], "lzma (5-byte header)");
    let listing = ours(&tree);
    assert_eq!(listing.len(), 430);
    if common::tool("unsquashfs") {
        assert_eq!(listing, unsquashfs_listing(&p));
    }
    for elf in ["bin/busybox", "bin/cfm"] {
        let d = &node(&tree, elf).data;
        // ELF, 32-bit, big-endian, machine 8 (MIPS).
        assert_eq!(&d[..6], b"\x7fELF\x01\x02", "{elf}");
        assert_eq!(&d[18..20], &[0, 8], "{elf}");
    }
    assert!(
        node(&tree, "etc/inittab")
            .data
            .starts_with(b"::sysinit:/etc/init.d/rcS\n")
    );
    assert!(node(&tree, "webs/1px.gif").data.starts_with(b"GIF8"));
    assert_eq!(
        node(&tree, "linuxrc").kind,
        EntryKind::Symlink {
            target: b"bin/busybox".to_vec()
        }
    );
    assert_eq!(node(&tree, "dev/mem").meta["device"], "1,1");
}

/// binwalk's `firmware.squashfs` (a TRENDnet TEW-733GR root filesystem) is squashfs 4.0 whose
/// LZMA blocks carry a 5-byte header with non-default properties (lc=1, lp=2, pb=2, 8 MiB
/// dictionary) and no size. No Debian tool reads it; the facts checked here hold independently of
/// our reader: every one of the 1811 inodes the superblock counts is reached exactly once, the
/// build date file agrees with the superblock's creation time (2013-09-17), the firmware
/// signature names the model, and the binaries are little-endian MIPS ELF files.
#[test]
fn binwalk_vendor_lzma_squashfs4_reads() {
    let Some(p) = sample("ReFirmLabs__binwalk/testing/tests/input-vectors/firmware.squashfs")
    else {
        return;
    };
    let tree = unpack_bytes(std::fs::read(&p).unwrap());
    assert_clean(&tree, "firmware.squashfs");
    let meta = &tree.root().unwrap().format_meta;
    assert_eq!(meta["inode_count"], 1811);
    assert_eq!(meta["mkfs_time"], 1_379_400_202);
    let listing = ours(&tree);
    assert_eq!(listing.len(), 1810);
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for s in listing.values() {
        *kinds.entry(s.kind).or_default() += 1;
    }
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("device", 76),
            ("dir", 98),
            ("file", 1476),
            ("symlink", 160)
        ])
    );
    assert_eq!(
        &node(&tree, "etc/config/builddate").data[..],
        b"Tue 17 Sep 2013\n"
    );
    assert!(
        node(&tree, "etc/config/image_sign")
            .data
            .starts_with(b"wrgn80_trendnet_tew733gr")
    );
    let busybox = &node(&tree, "bin/busybox").data;
    assert_eq!(busybox.len(), 499_376);
    // ELF, 32-bit, little-endian, machine 8 (MIPS).
    assert_eq!(&busybox[..6], b"\x7fELF\x01\x01");
    assert_eq!(&busybox[18..20], &[8, 0]);
    assert_eq!(
        node(&tree, "lib/libc.so.0").kind,
        EntryKind::Symlink {
            target: b"libuClibc-0.9.30.1.so".to_vec()
        }
    );
    assert!(
        node(&tree, "etc/services/HTTP/hnapasswd.php")
            .data
            .starts_with(b"<?\n")
    );
}

/// Offset of the inode table in a version 3 image (stored metadata: data follow 2 length bytes).
fn inode_table(img: &[u8], big_endian: bool) -> usize {
    let b: [u8; 8] = img[87..95].try_into().unwrap();
    let at = if big_endian {
        u64::from_be_bytes(b)
    } else {
        u64::from_le_bytes(b)
    };
    at as usize + 2
}

#[test]
fn squashfs3_directory_cycle_is_an_entry_error_not_a_hang() {
    // Inodes are written children first: "a/b" (28 bytes), then "a", then the root.
    let items = vec![("a/b".to_owned(), Sq3Node::Dir(0o755))];
    for big_endian in [false, true] {
        let opts = Sq3Options {
            big_endian,
            zlib: false,
            ..Sq3Options::default()
        };
        let mut img = build(&items, &opts);
        let t = inode_table(&img, big_endian);
        // Point b's listing (size, offset, start block) at a's listing, which lists b.
        let a_listing: Vec<u8> = img[t + 28 + 16..t + 28 + 24].to_vec();
        img[t + 16..t + 24].copy_from_slice(&a_listing);
        let started = Instant::now();
        let tree = unpack_bytes(img);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(tree.root().unwrap().error.is_none());
        let again = node(&tree, "a/b/b");
        assert!(
            matches!(&again.error, Some(UnpackError::Corrupt(m)) if m.contains("cycle")),
            "{:?}",
            again.error
        );
    }
}

#[test]
fn squashfs3_file_claiming_four_gib_is_refused_before_allocation() {
    let items = vec![("f".to_owned(), Sq3Node::File(b"tiny".to_vec(), 0o644))];
    let opts = Sq3Options {
        zlib: false,
        ..Sq3Options::default()
    };
    let mut img = build(&items, &opts);
    let t = inode_table(&img, false);
    // The file inode comes first; its size is at 28.
    assert_eq!(&img[t + 28..t + 32], &4u32.to_le_bytes());
    img[t + 28..t + 32].copy_from_slice(&u32::MAX.to_le_bytes());
    let started = Instant::now();
    let tree = unpack_bytes(img);
    assert!(started.elapsed() < Duration::from_secs(5));
    let f = node(&tree, "f");
    assert!(f.data.is_empty());
    assert!(
        matches!(&f.error, Some(UnpackError::Corrupt(m)) if m.contains("block sizes")),
        "{:?}",
        f.error
    );
}

#[test]
fn squashfs3_superblock_claiming_more_than_present_is_truncated() {
    let img = build(&fixture(), &Sq3Options::default());
    let cut = img[..img.len() / 2].to_vec();
    let tree = unpack_bytes(cut);
    assert!(
        matches!(tree.root().unwrap().error, Some(UnpackError::Truncated(_))),
        "{:?}",
        tree.root().unwrap().error
    );
}

/// Unpacks cut and bit-flipped copies of `img` under a short time budget: none may panic.
fn damage(img: &[u8]) {
    let limits = Limits {
        time_budget: Duration::from_secs(20),
        ..Limits::default()
    };
    let started = Instant::now();
    for cut in (0..img.len()).step_by((img.len() / 48).max(1)) {
        let _ = unpack(Bytes::copy_from_slice(&img[..cut]), b"d", &limits);
    }
    let mut positions: Vec<usize> = (0..160.min(img.len())).collect();
    positions.extend((0..img.len()).step_by((img.len() / 200).max(1)));
    for (i, pos) in positions.into_iter().enumerate() {
        let mut bad = img.to_vec();
        bad[pos] ^= [0x01, 0x80, 0xFF, 0x10][i % 4];
        let _ = unpack(Bytes::from(bad), b"d", &limits);
    }
    assert!(started.elapsed() < Duration::from_secs(240));
}

#[test]
fn truncated_and_bit_flipped_v2_v3_images_never_panic() {
    let small = vec![
        (
            "d/a".to_owned(),
            Sq3Node::File(b"alpha".repeat(3000), 0o644),
        ),
        ("d/b".to_owned(), Sq3Node::File(b"beta".to_vec(), 0o644)),
        ("l".to_owned(), Sq3Node::Symlink(b"d/a".to_vec())),
    ];
    for big_endian in [false, true] {
        for zlib in [true, false] {
            let opts = Sq3Options {
                big_endian,
                zlib,
                block_size: 4096,
                ..Sq3Options::default()
            };
            damage(&build(&small, &opts));
        }
    }
    for name in [
        "lzma_le.sqfs2",
        "lzma_be.sqfs2",
        "lzma1_le.sqfs3",
        "zlib_be.sqfs3",
    ] {
        let Some(p) = sample(&format!("{FACT}{name}")) else {
            return;
        };
        damage(&std::fs::read(p).unwrap());
    }
}

#[test]
fn squashfs3_inode_and_fragment_counts_beyond_the_tables_are_refused() {
    let img = build(&fixture(), &Sq3Options::default());
    // The superblock's inode count sits at 4, its fragment count at 55.
    for at in [4usize, 55] {
        let mut bad = img.clone();
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let started = Instant::now();
        let tree = unpack_bytes(bad);
        assert!(started.elapsed() < Duration::from_secs(5));
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("squashfs"));
        assert!(
            matches!(&root.error, Some(UnpackError::Corrupt(m)) if m.contains("claimed")),
            "{at}: {:?}",
            root.error
        );
    }
}
