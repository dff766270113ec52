//! squashfs and cramfs: round trips through backhand's writer, `mksquashfs` and fwsim's cramfs
//! writer; every real v4 squashfs and cramfs sample listed exactly as `unsquashfs -lls` and
//! `fsck.cramfs -v --extract` list it; superblock-only copies, truncated and bit-flipped images.
//! Versions 2 and 3 and vendor LZMA are tested in `squashfs_legacy`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use backhand::compression::Compressor;
use bytes::Bytes;
use fwsim::unpack::bytes::Endian;
use fwsim::unpack::formats::cramfs;
use fwsim::unpack::{EntryKind, Limits, Tree, UnpackError, unpack};

use crate::common::fs_images::{self, Item};
use crate::common::{self, sample};

/// What one listed entry is: kind, size (files) and mode bits.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    size: Option<u64>,
}

/// The entries `format` produced directly under the root, by path relative to the filesystem.
fn listing(tree: &Tree, format: &str) -> BTreeMap<String, Seen> {
    let root = tree.root().unwrap();
    let prefix = format!("{}/", String::from_utf8_lossy(&root.path));
    tree.nodes()
        .iter()
        .filter(|n| n.origin.as_ref().map(|o| o.container) == Some(format))
        .filter(|n| n.parent == Some(0))
        .map(|n| {
            let path = String::from_utf8_lossy(&n.path);
            let rel = path.strip_prefix(&prefix).unwrap().to_owned();
            let size = (n.kind == EntryKind::File).then_some(n.data.len() as u64);
            (
                rel,
                Seen {
                    kind: n.kind.as_str(),
                    size,
                },
            )
        })
        .collect()
}

fn unpack_bytes(data: Vec<u8>, name: &str) -> Tree {
    unpack(Bytes::from(data), name.as_bytes(), &Limits::default())
}

fn node<'t>(tree: &'t Tree, path: &str) -> &'t fwsim::unpack::Node {
    tree.nodes()
        .iter()
        .find(|n| n.path == path.as_bytes())
        .unwrap_or_else(|| panic!("{path} not listed"))
}

/// Every item of the fixture is listed under `img` with its bytes, kind and mode.
fn assert_round_trip(tree: &Tree, img: &str, items: &[Item], check_modes: bool) {
    assert!(
        tree.root().unwrap().error.is_none(),
        "{:?}",
        tree.root().unwrap().error
    );
    for item in items {
        match item {
            Item::Dir(p, m) => {
                let n = node(tree, &format!("{img}/{p}"));
                assert_eq!(n.kind, EntryKind::Dir, "{p}");
                if check_modes {
                    assert_eq!(n.mode, Some(0o040000 | u32::from(*m)), "{p}");
                }
            }
            Item::File(p, m, data) => {
                let n = node(tree, &format!("{img}/{p}"));
                assert_eq!(n.kind, EntryKind::File, "{p}");
                assert!(n.error.is_none(), "{p}: {:?}", n.error);
                assert_eq!(n.data.len(), data.len(), "{p}");
                assert!(n.data[..] == data[..], "{p}: bytes differ");
                if check_modes {
                    assert_eq!(n.mode, Some(0o100000 | u32::from(*m)), "{p}");
                }
            }
            Item::Symlink(p, t) => {
                let n = node(tree, &format!("{img}/{p}"));
                assert_eq!(
                    n.kind,
                    EntryKind::Symlink {
                        target: t.as_bytes().to_vec()
                    },
                    "{p}"
                );
            }
            Item::CharDevice(p, _) => {
                if let Some(n) = tree
                    .nodes()
                    .iter()
                    .find(|n| n.path == format!("{img}/{p}").as_bytes())
                {
                    assert_eq!(n.kind, EntryKind::Device, "{p}");
                }
            }
        }
    }
}

fn real_elf() -> Option<Vec<u8>> {
    let p = common::realdata()?
        .join("BotoX__DH_IPC-HX4XXX-Eos/romfs-x.squashfs.img.extracted/bin/busybox");
    std::fs::read(p).ok()
}

#[test]
fn squashfs_round_trips_every_backhand_compressor_and_both_endiannesses() {
    let items = fs_images::rootfs(real_elf());
    for compressor in [
        Compressor::Xz,
        Compressor::Gzip,
        Compressor::Zstd,
        Compressor::Lz4,
    ] {
        for big_endian in [false, true] {
            let img = fs_images::squashfs(&items, compressor, big_endian);
            let tree = unpack_bytes(img, "rootfs.sqfs");
            let root = tree.root().unwrap();
            assert_eq!(root.format, Some("squashfs"), "{compressor:?}");
            let meta = &root.format_meta;
            assert_eq!(meta["version"], "4.0");
            assert_eq!(
                meta["endian"],
                if big_endian {
                    "big-endian"
                } else {
                    "little-endian"
                }
            );
            assert_eq!(meta["mkfs_time"], 1_700_000_000);
            assert_eq!(meta["block_size"], 131_072);
            assert_round_trip(&tree, "rootfs.sqfs", &items, true);
            // Owner ids come from the id table.
            let passwd = node(&tree, "rootfs.sqfs/etc/passwd");
            assert_eq!(passwd.meta["uid"], 1000);
            assert_eq!(passwd.meta["gid"], 100);
        }
    }
}

#[test]
fn squashfs_lzo_lzma_and_others_from_mksquashfs_round_trip() {
    let items = fs_images::rootfs(real_elf());
    for comp in ["lzo", "lzma", "xz", "gzip", "lz4", "zstd"] {
        let Some(img) = fs_images::mksquashfs(&items, comp, &["-b", "64K"]) else {
            return;
        };
        let tree = unpack_bytes(img, "m.sqfs");
        let root = tree.root().unwrap();
        assert_eq!(root.format_meta["compressor"], comp, "{:?}", root.error);
        assert_eq!(root.format_meta["block_size"], 65_536);
        assert_round_trip(&tree, "m.sqfs", &items, true);
    }
}

#[test]
fn squashfs_inside_a_uimage_is_found_with_its_extent() {
    let items = fs_images::rootfs(None);
    let sqfs = fs_images::squashfs(&items, Compressor::Xz, false);
    assert_eq!(sqfs.len() % 4096, 0, "backhand pads to 4 KiB");
    // A boot loader stand-in, then the uImage, then erased flash.
    let mut flash: Vec<u8> = (0..0x200u32).map(|i| (i * 7 + 3) as u8).collect();
    flash.extend(fwsim::unpack::formats::uimage::build(
        "rootfs", 5, 2, 7, 0, &sqfs,
    ));
    flash.extend_from_slice(&[0xFF; 8192]);
    let tree = unpack_bytes(flash, "flash.bin");
    assert_round_trip(&tree, "flash.bin/0x200.uimage/rootfs", &items, true);
    let fs = node(&tree, "flash.bin/0x200.uimage/rootfs");
    assert_eq!(fs.format, Some("squashfs"));
    assert_eq!(fs.format_meta["compressor"], "xz");
}

#[test]
fn cramfs_round_trips_both_endiannesses_and_fsck_accepts_our_writer() {
    let items = fs_images::rootfs(None);
    // cramfs files are at most 16 MiB and its test writer keeps everything small.
    for endian in [Endian::Little, Endian::Big] {
        let img = cramfs::build(&fs_images::cramfs_entries(&items), endian);
        if common::tool("fsck.cramfs") {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.img");
            std::fs::write(&p, &img).unwrap();
            let out = Command::new("fsck.cramfs").arg(&p).output().unwrap();
            assert!(
                out.status.success(),
                "fsck.cramfs rejects our writer ({endian:?}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let tree = unpack_bytes(img, "c.img");
        assert_eq!(tree.root().unwrap().format, Some("cramfs"));
        assert_eq!(tree.root().unwrap().format_meta["crc_ok"], true);
        assert_round_trip(&tree, "c.img", &items, true);
    }
}

/// `unsquashfs -lls` of an image: path → (kind, size of regular files).
fn unsquashfs_listing(path: &Path) -> BTreeMap<String, Seen> {
    let out = Command::new("unsquashfs")
        .arg("-lls")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "unsquashfs -lls {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let Some(at) = line.find(" squashfs-root/") else {
            continue;
        };
        let mut rel = &line[at + " squashfs-root/".len()..];
        let perms = line.split_whitespace().next().unwrap();
        let kind = match perms.as_bytes()[0] {
            b'd' => "dir",
            b'-' => "file",
            b'l' => "symlink",
            _ => "device",
        };
        if kind == "symlink" {
            rel = rel.split(" -> ").next().unwrap();
        }
        let size = (kind == "file").then(|| {
            line.split_whitespace()
                .nth(2)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        });
        m.insert(rel.to_owned(), Seen { kind, size });
    }
    m
}

const SQUASHFS_V4: &[&str] = &[
    "ReFirmLabs__binwalk/tests/inputs/squashfs.bin",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/gzip.sqfs",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/lzma.sqfs",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/lzo.sqfs",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/xz.sqfs",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/lz4.sqfs",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/zstd.sqfs",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/avm_le.sqfs4",
    "BotoX__DH_IPC-HX4XXX-Themis/custom-x.squashfs.img.raw",
    "BotoX__DH_IPC-HX4XXX-Themis/pd-x.squashfs.img.raw",
    "BotoX__DH_IPC-HX4XXX-Themis/romfs-x.squashfs.img.raw",
    "BotoX__DH_IPC-HX4XXX-Themis/web-x.squashfs.img.raw",
    "warren-bank__mirror-firmware-lightbulb-camera-Anyka-ak3918-by-Gergely-Palfi/newroot/mtdblock4.bin",
];

#[test]
fn real_squashfs_v4_samples_list_like_unsquashfs() {
    if !common::tool("unsquashfs") {
        return;
    }
    for rel in SQUASHFS_V4 {
        let Some(p) = sample(rel) else { return };
        let tree = unpack_bytes(std::fs::read(&p).unwrap(), "img");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("squashfs"), "{rel}: {:?}", root.error);
        assert!(root.error.is_none(), "{rel}: {:?}", root.error);
        let ours = listing(&tree, "squashfs");
        let theirs = unsquashfs_listing(&p);
        assert!(!theirs.is_empty(), "{rel}");
        assert_eq!(ours, theirs, "{rel}");
        for n in tree.nodes().iter().filter(|n| n.parent == Some(0)) {
            assert!(n.error.is_none(), "{rel}: {:?}", n.error);
        }
    }
}

#[test]
fn avm_big_endian_sample_lists_like_its_little_endian_twin() {
    let (Some(be), Some(le)) = (
        sample(
            "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/avm_be.sqfs4",
        ),
        sample(
            "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/avm_le.sqfs4",
        ),
    ) else {
        return;
    };
    let be = unpack_bytes(std::fs::read(be).unwrap(), "img");
    let le = unpack_bytes(std::fs::read(le).unwrap(), "img");
    assert_eq!(be.root().unwrap().format_meta["variant"], "avm");
    let files = |t: &Tree| {
        t.nodes()
            .iter()
            .filter(|n| n.parent == Some(0))
            .map(|n| (n.path.clone(), n.kind.as_str(), n.data.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(files(&be), files(&le));
    assert!(files(&be).len() >= 4);
}

/// `fsck.cramfs -v --extract` of an image: path → (kind, size of regular files).
fn fsck_cramfs_listing(path: &Path) -> BTreeMap<String, Seen> {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("x");
    let out = Command::new("fsck.cramfs")
        .arg("-v")
        .arg(format!("--extract={}", out_dir.display()))
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "fsck.cramfs {}", path.display());
    let prefix = format!(" {}/", out_dir.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let Some(at) = line.find(&prefix) else {
            continue;
        };
        let mut rel = &line[at + prefix.len()..];
        let kind = match line.as_bytes()[0] {
            b'd' => "dir",
            b'f' => "file",
            b'l' => "symlink",
            _ => "device",
        };
        if kind == "symlink" {
            rel = rel.split(" -> ").next().unwrap();
        }
        let size = (kind == "file").then(|| {
            line.split_whitespace()
                .nth(2)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        });
        m.insert(rel.to_owned(), Seen { kind, size });
    }
    m
}

#[test]
fn real_cramfs_samples_list_like_fsck_cramfs() {
    if !common::tool("fsck.cramfs") {
        return;
    }
    for rel in [
        "ReFirmLabs__binwalk/tests/inputs/cramfs.bin",
        "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/sevenz/test/data/cramfs.img",
        "BotoX__DH_IPC-HX4XXX-Themis/partition-x.cramfs.img.raw",
    ] {
        let Some(p) = sample(rel) else { return };
        let tree = unpack_bytes(std::fs::read(&p).unwrap(), "img");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("cramfs"), "{rel}: {:?}", root.error);
        assert!(root.error.is_none(), "{rel}: {:?}", root.error);
        assert_eq!(root.format_meta["crc_ok"], true, "{rel}");
        let ours = listing(&tree, "cramfs");
        let theirs = fsck_cramfs_listing(&p);
        assert!(!theirs.is_empty(), "{rel}");
        assert_eq!(ours, theirs, "{rel}");
    }
}

#[test]
fn eos_superblock_copies_are_reported_truncated() {
    for rel in [
        "custom-x.squashfs.img.raw",
        "pd-x.squashfs.img.raw",
        "romfs-x.squashfs.img.raw",
        "user-x.squashfs.img.raw",
        "web-x.squashfs.img.raw",
        "partition-x.cramfs.img.raw",
    ] {
        let Some(p) = sample(&format!("BotoX__DH_IPC-HX4XXX-Eos/{rel}")) else {
            return;
        };
        let tree = unpack_bytes(std::fs::read(&p).unwrap(), rel);
        let root = tree.root().unwrap();
        match &root.error {
            Some(UnpackError::Truncated(msg)) => {
                assert!(msg.contains("1024 present"), "{rel}: {msg}")
            }
            other => panic!("{rel}: expected truncated, got {other:?}"),
        }
    }
}

/// Unpacks damaged copies of `img` under a short time budget: none may panic or overrun.
fn damage(img: &[u8], name: &str) {
    let limits = Limits {
        time_budget: Duration::from_secs(20),
        ..Limits::default()
    };
    let started = Instant::now();
    let step = (img.len() / 64).max(1);
    for cut in (0..img.len()).step_by(step) {
        let _ = unpack(
            Bytes::copy_from_slice(&img[..cut]),
            name.as_bytes(),
            &limits,
        );
    }
    // Flip bytes all over, densely in the superblock and the tables at the end.
    let mut positions: Vec<usize> = (0..200.min(img.len())).collect();
    positions.extend((0..img.len()).step_by((img.len() / 300).max(1)));
    positions.extend(img.len().saturating_sub(600)..img.len());
    for (i, pos) in positions.into_iter().enumerate() {
        let mut bad = img.to_vec();
        bad[pos] ^= [0x01, 0x80, 0xFF, 0x10][i % 4];
        let _ = unpack(Bytes::from(bad), name.as_bytes(), &limits);
    }
    assert!(started.elapsed() < Duration::from_secs(240));
}

#[test]
fn truncated_and_bit_flipped_squashfs_never_panic() {
    let items = vec![
        Item::Dir("d", 0o755),
        Item::File("d/a", 0o644, b"alpha".repeat(3000)),
        Item::File("d/b", 0o644, b"beta".to_vec()),
        Item::Symlink("l", "d/a"),
    ];
    for c in [Compressor::Xz, Compressor::Gzip] {
        damage(&fs_images::squashfs(&items, c, false), "s.sqfs");
    }
    if let Some(img) = fs_images::mksquashfs(&items, "lzo", &[]) {
        damage(&img, "lzo.sqfs");
    }
}

#[test]
fn truncated_and_bit_flipped_cramfs_never_panic() {
    let items = vec![
        Item::Dir("d", 0o755),
        Item::File("d/a", 0o644, b"alpha".repeat(3000)),
        Item::Symlink("l", "d/a"),
    ];
    for endian in [Endian::Little, Endian::Big] {
        damage(
            &cramfs::build(&fs_images::cramfs_entries(&items), endian),
            "c.img",
        );
    }
}

#[test]
fn cramfs_directory_cycle_is_an_entry_error_not_a_hang() {
    let items = vec![
        Item::Dir("a", 0o755),
        Item::File("a/f", 0o644, b"x".to_vec()),
    ];
    let mut img = cramfs::build(&fs_images::cramfs_entries(&items), Endian::Little);
    // The root listing starts at 76 with entry "a": point a's listing back at the root's.
    let w2 = u32::from_le_bytes(img[84..88].try_into().unwrap());
    let patched = (w2 & 0x3F) | ((76 / 4) << 6);
    img[84..88].copy_from_slice(&patched.to_le_bytes());
    let tree = unpack_bytes(img, "cyc.img");
    let a = node(&tree, "cyc.img/a");
    assert!(
        matches!(&a.error, Some(UnpackError::Corrupt(m)) if m.contains("cycle")),
        "{:?}",
        a.error
    );
}

#[test]
fn squashfs_claiming_more_than_the_ratio_allows_stops_at_the_limit() {
    // 4 MiB of zeros compress to almost nothing: with a tight ratio limit the image is refused
    // before anything is decompressed.
    let items = vec![Item::File("zeros", 0o644, vec![0u8; 4 << 20])];
    let img = fs_images::squashfs(&items, Compressor::Xz, false);
    let limits = Limits {
        max_ratio: 10,
        ratio_floor_bytes: 1 << 20,
        ..Limits::default()
    };
    let tree = unpack(Bytes::from(img), b"z.sqfs", &limits);
    let err = tree.root().unwrap().error.clone();
    assert!(
        matches!(err, Some(UnpackError::Limit(_))),
        "expected a limit error, got {err:?}"
    );
}

#[test]
fn squashfs_inode_claiming_a_huge_file_is_refused_before_allocation() {
    // Uncompressed inodes (`-noI`) let the test patch a file size in place.
    let size = 150_001usize;
    let items = vec![Item::File("f", 0o644, vec![7u8; size])];
    let Some(mut img) = fs_images::mksquashfs(&items, "gzip", &["-noI"]) else {
        return;
    };
    let inode_table = u64::from_le_bytes(img[64..72].try_into().unwrap()) as usize;
    let dir_table = u64::from_le_bytes(img[72..80].try_into().unwrap()) as usize;
    let needle = (size as u32).to_le_bytes();
    let at = img[inode_table..dir_table]
        .windows(4)
        .position(|w| w == needle)
        .expect("file size in the inode table")
        + inode_table;
    img[at..at + 4].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let tree = unpack_bytes(img, "huge.sqfs");
    let err = tree.root().unwrap().error.clone();
    assert!(
        matches!(&err, Some(UnpackError::Corrupt(m)) if m.contains("claims")),
        "{err:?}"
    );
}

#[test]
fn damaged_real_squashfs_and_cramfs_samples_never_panic() {
    let mut names: Vec<&str> = SQUASHFS_V4
        .iter()
        .copied()
        .filter(|p| p.contains("fact_extractor"))
        .collect();
    names.push("ReFirmLabs__binwalk/tests/inputs/squashfs.bin");
    names.push("ReFirmLabs__binwalk/tests/inputs/cramfs.bin");
    names.push(
        "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/sevenz/test/data/cramfs.img",
    );
    for rel in names {
        let Some(p) = sample(rel) else { return };
        damage(&std::fs::read(p).unwrap(), "real.img");
    }
}
