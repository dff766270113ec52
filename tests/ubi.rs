//! UBI and UBIFS: round trips through fwsim's writers and through `mkfs.ubifs`/`ubinize`; the real
//! samples listed exactly as ubi_reader extracts them; volumes carved from a NAND dump; stale,
//! erased and bad PEBs; hostile UBIFS (cyclic index, huge sizes, bad CRCs, truncation).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use fwsim::synth::content::{Rng, Rootfs};
use fwsim::synth::ubi::{self as ubi_writer, Geometry, Vid, Volume};
use fwsim::synth::ubifs::{self as ubifs_writer, Compressor, Device, Options};
use fwsim::unpack::formats::ubi::crc32;
use fwsim::unpack::{EntryKind, LimitError, Limits, Tree, UnpackError, unpack};
use sha2::{Digest, Sha256};

use crate::common::{self, sample};

/// What one entry is, as compared with a reference: kind, and for files size and SHA-256, for
/// links their target.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Dir,
    File(u64, String),
    Symlink(String),
    Other(&'static str),
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Every entry under `prefix/` in the tree, by its path below `prefix`. Hard links are listed as
/// the file they name (what an extraction writes).
fn listing(tree: &Tree, prefix: &str) -> BTreeMap<String, Seen> {
    let prefix = format!("{prefix}/");
    let mut out = BTreeMap::new();
    for n in tree.nodes() {
        let path = String::from_utf8_lossy(&n.path).into_owned();
        let Some(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        let seen = match &n.kind {
            EntryKind::Dir => Seen::Dir,
            EntryKind::File => Seen::File(n.data.len() as u64, sha(&n.data)),
            EntryKind::Symlink { target } => {
                Seen::Symlink(String::from_utf8_lossy(target).into_owned())
            }
            EntryKind::Hardlink { target } => {
                let t = format!("{prefix}{}", String::from_utf8_lossy(target));
                let target = tree.find(&t).expect("hard link target listed");
                Seen::File(target.data.len() as u64, sha(&target.data))
            }
            EntryKind::Device => Seen::Other("device"),
        };
        out.insert(rel.to_owned(), seen);
    }
    out
}

/// Only the entries directly produced by the filesystem (not what fwsim found inside files).
fn fs_listing(tree: &Tree, prefix: &str, format: &str) -> BTreeMap<String, Seen> {
    let depth = prefix.matches('/').count() + 1;
    listing(tree, prefix)
        .into_iter()
        .filter(|(rel, _)| {
            let full = format!("{prefix}/{rel}");
            tree.nodes().iter().any(|n| {
                n.path == full.as_bytes()
                    && n.origin.as_ref().map(|o| o.container) == Some(format)
                    && n.depth as usize >= depth
            })
        })
        .collect()
}

/// What a folder on disk holds, in the same form.
fn disk_listing(dir: &Path) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let seen = if meta.is_symlink() {
                Seen::Symlink(
                    std::fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                )
            } else if meta.is_dir() {
                stack.push(p.clone());
                Seen::Dir
            } else if meta.is_file() {
                let data = std::fs::read(&p).unwrap();
                Seen::File(data.len() as u64, sha(&data))
            } else {
                Seen::Other("device")
            };
            out.insert(rel, seen);
        }
    }
    out
}

/// What a `Rootfs` holds, in the same form.
fn rootfs_listing(root: &Rootfs) -> BTreeMap<String, Seen> {
    root.entries()
        .map(|(path, e)| {
            let seen = match &e.data {
                fwsim::synth::EntryData::Dir => Seen::Dir,
                fwsim::synth::EntryData::File(d) => Seen::File(d.len() as u64, sha(d)),
                fwsim::synth::EntryData::Symlink(t) => Seen::Symlink(t.clone()),
            };
            (path.to_owned(), seen)
        })
        .collect()
}

fn unpack_vec(data: Vec<u8>, name: &str) -> Tree {
    unpack(Bytes::from(data), name.as_bytes(), &Limits::default())
}

fn lzo(block: &[u8]) -> Vec<u8> {
    lzokay_native::compress(block).unwrap()
}

/// A tree with the shapes that matter: empty, sub-block, exact-block and multi-block files, a
/// sparse file with a hole in the middle and a zero tail, incompressible data, nested folders and
/// symlinks.
fn sample_tree() -> Rootfs {
    let mut rng = Rng::new(7);
    let random: Vec<u8> = (0..20_000).map(|_| rng.next_u64() as u8).collect();
    let mut sparse = vec![0u8; 5 * 4096 + 100];
    sparse[..300].copy_from_slice(&[b'a'; 300]);
    sparse[3 * 4096..3 * 4096 + 50].copy_from_slice(&[b'z'; 50]);
    let text: Vec<u8> = (0..30_000u32)
        .flat_map(|i| format!("line {i} of the config\n").into_bytes())
        .collect();
    let mut root = Rootfs::new();
    root.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        0o644,
    )
    .file("etc/empty", Vec::new(), 0o600)
    .file("etc/block", vec![b'b'; 4096], 0o644)
    .file("etc/block1", vec![b'c'; 4097], 0o644)
    .file("usr/share/big.txt", text, 0o644)
    .file("usr/lib/random.bin", random, 0o755)
    .file("var/sparse", sparse, 0o644)
    .symlink("bin/sh", "busybox")
    .file("bin/busybox", b"\x7fELF pretend".to_vec(), 0o755)
    .dir("mnt/empty", 0o755);
    root
}

fn options(compressor: Compressor) -> Options {
    Options {
        compressor,
        hard_links: vec![("bin/ls".into(), "bin/busybox".into())],
        devices: vec![
            Device {
                path: "dev/console".into(),
                char: true,
                major: 5,
                minor: 1,
            },
            Device {
                path: "dev/mtdblock300".into(),
                char: false,
                major: 31,
                minor: 300,
            },
        ],
        ..Options::default()
    }
}

fn with_links(root: &Rootfs) -> BTreeMap<String, Seen> {
    let mut want = rootfs_listing(root);
    want.insert("bin/ls".into(), want["bin/busybox"].clone());
    want.insert("dev".into(), Seen::Dir);
    want.insert("dev/console".into(), Seen::Other("device"));
    want.insert("dev/mtdblock300".into(), Seen::Other("device"));
    want
}

#[test]
fn ubifs_round_trips_with_every_compression() {
    let mut root = sample_tree();
    root.dir("dev", 0o755);
    for (name, c) in [
        ("none", Compressor::None),
        ("zlib", Compressor::Zlib),
        ("zstd", Compressor::Zstd),
        (
            "lzo",
            Compressor::Custom {
                code: 1,
                compress: lzo,
            },
        ),
    ] {
        let img = ubifs_writer::build(&root, &options(c)).unwrap();
        let tree = unpack_vec(img, "fs.ubifs");
        let fs = tree.root().unwrap();
        assert_eq!(fs.format, Some("ubifs"), "{name}");
        assert!(
            tree.errors().next().is_none(),
            "{name}: {:?}",
            tree.errors().next()
        );
        assert_eq!(
            fs_listing(&tree, "fs.ubifs", "ubifs"),
            with_links(&root),
            "{name}"
        );
        let ls = tree.find("fs.ubifs/bin/ls").unwrap();
        assert_eq!(
            ls.kind,
            EntryKind::Hardlink {
                target: b"bin/busybox".to_vec()
            }
        );
        let console = tree.find("fs.ubifs/dev/console").unwrap();
        assert_eq!(console.meta["device"], "5,1");
        assert_eq!(console.mode.map(|m| m & 0o170000), Some(0o020000));
        let mtd = tree.find("fs.ubifs/dev/mtdblock300").unwrap();
        assert_eq!(mtd.meta["device"], "31,300");
        assert_eq!(fs.format_meta["default_compression"], name);
    }
}

/// A UBI image of a dynamic UBIFS volume and a static raw volume.
fn ubi_image(root: &Rootfs) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let fs = ubifs_writer::build(root, &options(Compressor::Zlib)).unwrap();
    let mut rng = Rng::new(3);
    let kernel: Vec<u8> = (0..300_000).map(|_| rng.next_u64() as u8).collect();
    let img = ubi_writer::build(
        &[
            Volume::fixed(0, "kernel", kernel.clone()),
            Volume::dynamic(1, "rootfs", fs.clone()),
        ],
        &Geometry::default(),
    )
    .unwrap();
    (img, kernel, fs)
}

#[test]
fn ubi_volumes_round_trip() {
    let mut root = sample_tree();
    root.dir("dev", 0o755);
    let (img, kernel, fs) = ubi_image(&root);
    let tree = unpack_vec(img.clone(), "nand.ubi");
    let top = tree.root().unwrap();
    assert_eq!(top.format, Some("ubi"));
    assert_eq!(top.format_meta["peb_size"], 131072);
    assert_eq!(top.format_meta["leb_size"], 126976);
    assert_eq!(top.format_meta["volume_table"], "ok");
    let k = tree.find("nand.ubi/kernel").unwrap();
    assert_eq!(&k.data[..], &kernel[..]);
    assert_eq!(k.meta["vol_type"], "static");
    assert_eq!(k.meta["data_crc_ok"], true);
    let r = tree.find("nand.ubi/rootfs").unwrap();
    assert_eq!(&r.data[..], &fs[..]);
    assert_eq!(r.meta["vol_type"], "dynamic");
    assert_eq!(r.format, Some("ubifs"));
    assert_eq!(
        fs_listing(&tree, "nand.ubi/rootfs", "ubifs"),
        with_links(&root)
    );
    assert!(tree.errors().next().is_none());
}

/// The PEBs of an image, and one PEB rewritten with new VID fields and data.
fn pebs(img: &[u8]) -> Vec<Vec<u8>> {
    img.chunks(131072).map(<[u8]>::to_vec).collect()
}

#[test]
fn newest_copy_of_a_leb_wins_and_damaged_pebs_are_tolerated() {
    let g = Geometry::default();
    let leb = g.leb_size();
    let old: Vec<u8> = vec![b'o'; leb + 100];
    let img = ubi_writer::build(&[Volume::fixed(0, "blob", old.clone())], &g).unwrap();
    let mut blocks = pebs(&img);
    // A newer copy of LEB 0 (higher sqnum) and an older one (lower sqnum), after the originals.
    let newer = vec![b'n'; leb];
    let vid = |data: &[u8], sqnum| Vid {
        vol_type: 2,
        vol_id: 0,
        lnum: 0,
        data_size: data.len() as u32,
        used_ebs: 2,
        data_crc: crc32(data),
        sqnum,
        ..Vid::default()
    };
    blocks.push(ubi_writer::peb(&g, 1, &vid(&newer, 100), &newer));
    let stale = vec![b's'; leb];
    blocks.insert(2, ubi_writer::peb(&g, 1, &vid(&stale, 0), &stale));
    // An erased PEB and a bad one (garbage) in the middle.
    blocks.insert(3, vec![0xFF; 131072]);
    blocks.insert(4, vec![0x5A; 131072]);
    // A PEB whose VID header CRC is wrong.
    let mut broken = ubi_writer::peb(&g, 1, &vid(&stale, 200), &stale);
    broken[2048 + 20] ^= 0xFF;
    blocks.insert(5, broken);
    let img: Vec<u8> = blocks.concat();
    let tree = unpack_vec(img.clone(), "nand.ubi");
    let top = tree.root().unwrap();
    assert_eq!(top.format, Some("ubi"), "{:?}", top.error);
    assert_eq!(top.format_meta["erased_pebs"], 1);
    assert_eq!(top.format_meta["stale_pebs"], 2);
    assert_eq!(top.format_meta["bad_vid_headers"], 1);
    let v = tree.find("nand.ubi/blob").unwrap();
    let mut want = newer.clone();
    want.extend_from_slice(&old[leb..]);
    assert_eq!(v.data.len(), want.len());
    assert!(
        v.data[..] == want[..],
        "newest LEB 0 and the original LEB 1"
    );
    assert!(v.error.is_none());
}

#[test]
fn static_volume_with_a_bad_data_crc_is_flagged() {
    let g = Geometry::default();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut img = ubi_writer::build(&[Volume::fixed(0, "kernel", data)], &g).unwrap();
    img[3 * 131072 + 4096 + 10] ^= 1; // LEB 1 of the volume
    let tree = unpack_vec(img, "k.ubi");
    let v = tree.find("k.ubi/kernel").unwrap();
    assert_eq!(v.meta["data_crc_ok"], false);
    assert!(matches!(&v.error, Some(UnpackError::Corrupt(m)) if m.contains("CRC")));
}

#[test]
fn ubi_is_carved_from_a_nand_dump_with_its_true_extent() {
    let mut root = sample_tree();
    root.dir("dev", 0o755);
    let (ubi, kernel, _) = ubi_image(&root);
    let mut rng = Rng::new(11);
    let mut dump: Vec<u8> = (0..3 * 131072).map(|_| rng.next_u64() as u8).collect();
    let at = dump.len();
    dump.extend_from_slice(&ubi);
    dump.extend(std::iter::repeat_n(0xFF, 4 * 131072));
    dump.extend((0..50_000).map(|_| rng.next_u64() as u8));
    let tree = unpack_vec(dump, "nand.bin");
    let top = tree.root().unwrap();
    assert_eq!(top.format, Some("carve"));
    let region = tree
        .nodes()
        .iter()
        .find(|n| n.format == Some("ubi"))
        .expect("UBI region carved");
    assert_eq!(region.origin.as_ref().unwrap().offset, Some(at as u64));
    assert_eq!(region.data.len(), ubi.len(), "true extent");
    let k = tree
        .nodes()
        .iter()
        .find(|n| n.path.ends_with(b"/kernel"))
        .unwrap();
    assert_eq!(&k.data[..], &kernel[..]);
    assert!(
        tree.nodes()
            .iter()
            .any(|n| n.path.ends_with(b"/rootfs/usr/share/big.txt"))
    );
}

/// The image's master node (first copy) and the root index node's offset in the image.
fn root_index(img: &[u8]) -> (usize, usize) {
    let leb = u32::from_le_bytes(img[36..40].try_into().unwrap()) as usize;
    let mst = leb;
    let lnum = u32::from_le_bytes(img[mst + 48..mst + 52].try_into().unwrap()) as usize;
    let offs = u32::from_le_bytes(img[mst + 52..mst + 56].try_into().unwrap()) as usize;
    let len = u32::from_le_bytes(img[mst + 56..mst + 60].try_into().unwrap()) as usize;
    (lnum * leb + offs, len)
}

/// Recomputes a node's CRC after an edit.
fn reseal(img: &mut [u8], at: usize) {
    let len = u32::from_le_bytes(img[at + 16..at + 20].try_into().unwrap()) as usize;
    let crc = crc32(&img[at + 8..at + len]);
    img[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
}

fn big_tree() -> Rootfs {
    let mut root = Rootfs::new();
    for i in 0..200 {
        root.file(
            &format!("d{}/f{i}", i % 7),
            format!("file {i}\n").repeat(i + 1).into_bytes(),
            0o644,
        );
    }
    root
}

#[test]
fn cyclic_and_shared_index_stop_with_an_error() {
    let img = ubifs_writer::build(&big_tree(), &Options::default()).unwrap();
    let (root_at, root_len) = root_index(&img);
    let level = u16::from_le_bytes(img[root_at + 26..root_at + 28].try_into().unwrap());
    assert!(level >= 1, "a tree with several levels");
    let leb = 126_976;
    // Branch 0 of the root points back at the root.
    let mut cyclic = img.clone();
    let (lnum, offs) = ((root_at / leb) as u32, (root_at % leb) as u32);
    cyclic[root_at + 28..root_at + 32].copy_from_slice(&lnum.to_le_bytes());
    cyclic[root_at + 32..root_at + 36].copy_from_slice(&offs.to_le_bytes());
    cyclic[root_at + 36..root_at + 40].copy_from_slice(&(root_len as u32).to_le_bytes());
    reseal(&mut cyclic, root_at);
    // Branch 1 of the root repeats branch 0 (a shared subtree).
    let mut shared = img.clone();
    shared.copy_within(root_at + 28..root_at + 48, root_at + 48);
    reseal(&mut shared, root_at);
    for (name, bad) in [("cyclic", cyclic), ("shared", shared)] {
        let tree = unpack_vec(bad, "fs.ubifs");
        let fs = tree.root().unwrap();
        assert_eq!(fs.format, Some("ubifs"), "{name}");
        match &fs.error {
            Some(UnpackError::Corrupt(m)) => assert!(m.contains("reached twice"), "{name}: {m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn bad_node_crcs_are_counted_and_named() {
    let root = big_tree();
    let stored = Options {
        compressor: Compressor::None,
        ..Options::default()
    };
    let img = ubifs_writer::build(&root, &stored).unwrap();
    // The data node of d3/f3's first block: find its text in the image and damage it.
    let needle = b"file 3\nfile 3\nfile 3\nfile 3\n";
    let at = img.windows(needle.len()).position(|w| w == needle).unwrap();
    let mut bad = img.clone();
    bad[at] ^= 0x20;
    let tree = unpack_vec(bad, "fs.ubifs");
    let fs = tree.root().unwrap();
    assert_eq!(fs.format_meta["bad_nodes"], 1);
    let f = tree.find("fs.ubifs/d3/f3").unwrap();
    assert!(
        matches!(&f.error, Some(UnpackError::Corrupt(m)) if m.contains("block 0")),
        "{:?}",
        f.error
    );
    assert_eq!(
        tree.find("fs.ubifs/d4/f4").unwrap().data.len(),
        "file 4\n".len() * 5
    );

    // A damaged superblock is not UBIFS; one damaged master copy leaves the other.
    let mut sb = img.clone();
    sb[100] ^= 1;
    assert_ne!(unpack_vec(sb, "x").root().unwrap().format, Some("ubifs"));
    let mut mst = img.clone();
    mst[126_976 + 60] ^= 1;
    let tree = unpack_vec(mst, "fs.ubifs");
    assert_eq!(tree.root().unwrap().format_meta["master_nodes_valid"], 1);
    assert!(tree.errors().next().is_none());
    assert_eq!(
        fs_listing(&tree, "fs.ubifs", "ubifs"),
        rootfs_listing(&root)
    );
}

#[test]
fn huge_claimed_sizes_stop_at_the_file_limit() {
    let mut root = Rootfs::new();
    root.file("small", b"fine".to_vec(), 0o644)
        .file("huge", b"claims a terabyte".to_vec(), 0o644);
    let mut img = ubifs_writer::build(&root, &Options::default()).unwrap();
    // Find the inode node of `huge` (inode 64: inode numbers follow path order from 64) and give
    // it a 1 TiB size.
    let leb = 126_976;
    let mut at = 8 * leb;
    let mut patched = false;
    while at + 24 < img.len() && img[at..at + 4] == [0x31, 0x18, 0x10, 0x06] {
        let len = u32::from_le_bytes(img[at + 16..at + 20].try_into().unwrap()) as usize;
        let inum = u32::from_le_bytes(img[at + 24..at + 28].try_into().unwrap());
        if img[at + 20] == 0 && inum == 64 {
            img[at + 48..at + 56].copy_from_slice(&(1u64 << 40).to_le_bytes());
            reseal(&mut img, at);
            patched = true;
        }
        at += len.next_multiple_of(8);
    }
    assert!(patched);
    let tree = unpack_vec(img, "fs.ubifs");
    let huge = tree.find("fs.ubifs/huge").unwrap();
    assert!(
        matches!(
            huge.error,
            Some(UnpackError::Limit(LimitError::FileBytes { .. }))
        ),
        "{:?}",
        huge.error
    );
    assert_eq!(&tree.find("fs.ubifs/small").unwrap().data[..], b"fine");
}

#[test]
fn a_leb_number_far_past_the_data_stops_at_a_limit() {
    let g = Geometry::default();
    let data = vec![b'd'; 1000];
    for (lnum, name) in [(1_000_000u32, "file size"), (3_000, "expansion ratio")] {
        let mut img = ubi_writer::build(&[Volume::dynamic(0, "v", data.clone())], &g).unwrap();
        let vid = Vid {
            vol_type: 1,
            vol_id: 0,
            lnum,
            sqnum: 9,
            ..Vid::default()
        };
        img.extend_from_slice(&ubi_writer::peb(&g, 0, &vid, &data));
        // The volume table says 1 PEB: the reader drops the LEB as out of range.
        let tree = unpack_vec(img.clone(), "v.ubi");
        assert_eq!(tree.root().unwrap().format_meta["out_of_range_pebs"], 1);
        // Without a volume table entry the LEB number stands, and a limit stops the volume.
        let mut no_table = img.clone();
        no_table.drain(..2 * 131072);
        let tree = unpack_vec(no_table, "v.ubi");
        let v = tree.find("v.ubi/vol0").unwrap();
        assert!(
            matches!(
                v.error,
                Some(UnpackError::Limit(
                    LimitError::FileBytes { .. } | LimitError::Ratio { .. }
                ))
            ),
            "{name}: {:?}",
            v.error
        );
        assert!(v.data.is_empty());
    }
}

#[test]
fn truncated_and_bit_flipped_images_never_panic() {
    let mut root = sample_tree();
    root.dir("dev", 0o755);
    let (img, _, fs) = ubi_image(&root);
    let mut rng = Rng::new(99);
    for cut in [
        100,
        4096,
        131072,
        2 * 131072 + 5000,
        img.len() / 2,
        img.len() - 1,
    ] {
        let _ = unpack_vec(img[..cut].to_vec(), "cut.ubi");
    }
    for cut in [30, 4096, 126_976 + 100, fs.len() / 3, fs.len() - 7] {
        let _ = unpack_vec(fs[..cut].to_vec(), "cut.ubifs");
    }
    for _ in 0..60 {
        let mut bad = fs.clone();
        for _ in 0..8 {
            let i = rng.below(bad.len() as u64) as usize;
            bad[i] ^= 1 << rng.below(8);
        }
        let _ = unpack_vec(bad, "flip.ubifs");
    }
    // Flips inside UBIFS nodes with their CRC recomputed, so the parsers see hostile fields.
    let nodes: Vec<usize> = (0..fs.len() - 24)
        .step_by(8)
        .filter(|&at| fs[at..at + 4] == [0x31, 0x18, 0x10, 0x06])
        .collect();
    for _ in 0..150 {
        let mut bad = fs.clone();
        let at = nodes[rng.below(nodes.len() as u64) as usize];
        let len = u32::from_le_bytes(bad[at + 16..at + 20].try_into().unwrap()) as usize;
        let i = at + 8 + rng.below((len - 8) as u64) as usize;
        bad[i] ^= 1 << rng.below(8);
        if i >= at + 16 && i < at + 20 {
            continue; // a changed length would make the CRC cover other bytes
        }
        reseal(&mut bad, at);
        let _ = unpack_vec(bad, "resealed.ubifs");
    }
    // Flips in the UBI headers (the first 4 KiB of each PEB), recomputing no CRC.
    for _ in 0..30 {
        let mut bad = img.clone();
        for _ in 0..4 {
            let peb = rng.below((bad.len() / 131072) as u64) as usize;
            let i = peb * 131072 + rng.below(4096) as usize;
            bad[i] ^= 1 << rng.below(8);
        }
        let _ = unpack_vec(bad, "flip.ubi");
    }
}

const SAMPLES: &str = "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/ubi/test/data";

/// Runs a ubi_reader script, returning whether it succeeded.
fn ubi_reader(script: &str, args: &[&str]) -> bool {
    Command::new(script)
        .args(args)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn real_ubifs_lists_what_ubi_reader_extracts() {
    let Some(path) = sample(&format!("{SAMPLES}/test.ubifs")) else {
        return;
    };
    let data = std::fs::read(&path).unwrap();
    let tree = unpack_vec(data, "test.ubifs");
    let fs = tree.root().unwrap();
    assert_eq!(fs.format, Some("ubifs"));
    assert_eq!(fs.format_meta["default_compression"], "lzo");
    assert!(tree.errors().next().is_none());
    let ours = fs_listing(&tree, "test.ubifs", "ubifs");
    assert_eq!(ours.len(), 4);
    if !common::tool("ubireader_extract_files") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("x");
    assert!(ubi_reader(
        "ubireader_extract_files",
        &["-o", dir.to_str().unwrap(), path.to_str().unwrap()]
    ));
    assert_eq!(ours, disk_listing(&dir));
}

#[test]
fn real_ubi_volume_and_files_match_ubi_reader() {
    let Some(path) = sample(&format!("{SAMPLES}/ubi.img")) else {
        return;
    };
    let data = std::fs::read(&path).unwrap();
    let tree = unpack_vec(data, "ubi.img");
    let top = tree.root().unwrap();
    assert_eq!(top.format, Some("ubi"));
    assert_eq!(top.format_meta["peb_size"], 1024);
    assert_eq!(top.format_meta["leb_size"], 896);
    let vol = tree.find("ubi.img/rootfs").unwrap();
    assert_eq!(vol.meta["vol_type"], "static");
    assert_eq!(vol.format, Some("ubifs"));
    assert!(tree.errors().next().is_none());
    let ours = fs_listing(&tree, "ubi.img/rootfs", "ubifs");
    assert_eq!(ours.len(), 4);
    if !common::tool("ubireader_extract_images") {
        return;
    }
    // This image's UBI LEB (896 bytes) differs from its UBIFS LEB (128 KiB), which
    // `ubireader_extract_files` cannot follow; ubi_reader extracts the volume, then its files.
    let out = tempfile::tempdir().unwrap();
    let images = out.path().join("images");
    assert!(ubi_reader(
        "ubireader_extract_images",
        &["-o", images.to_str().unwrap(), path.to_str().unwrap()]
    ));
    let volume = images.join("ubi.img/img-778639563_vol-rootfs.ubifs");
    let theirs = std::fs::read(&volume).unwrap();
    assert_eq!(sha(&vol.data), sha(&theirs));
    let files = out.path().join("files");
    assert!(ubi_reader(
        "ubireader_extract_files",
        &["-o", files.to_str().unwrap(), volume.to_str().unwrap()]
    ));
    assert_eq!(ours, disk_listing(&files));
}

#[test]
fn ubi_reader_reads_what_our_writers_write() {
    if !common::tool("ubireader_extract_files") {
        return;
    }
    let mut root = sample_tree();
    root.dir("dev", 0o755);
    // One UBIFS volume: ubi_reader stops at a volume that is not UBIFS.
    let fs = ubifs_writer::build(&root, &options(Compressor::Zlib)).unwrap();
    let img = ubi_writer::build(&[Volume::dynamic(0, "rootfs", fs)], &Geometry::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("nand.ubi");
    std::fs::write(&file, &img).unwrap();
    let dir = out.path().join("x");
    assert!(ubi_reader(
        "ubireader_extract_files",
        &["-o", dir.to_str().unwrap(), file.to_str().unwrap()]
    ));
    // ubi_reader puts each UBIFS volume under a folder named after the image sequence number.
    let vol_dir = dir.join(format!("{}", Geometry::default().image_seq));
    let theirs = disk_listing(&vol_dir.join("rootfs"));
    let tree = unpack_vec(img, "nand.ubi");
    assert_eq!(fs_listing(&tree, "nand.ubi/rootfs", "ubifs"), theirs);
}

/// Writes `root` to a folder.
fn write_folder(root: &Rootfs, dir: &Path) {
    for (path, e) in root.entries() {
        let p = dir.join(path);
        match &e.data {
            fwsim::synth::EntryData::Dir => std::fs::create_dir_all(&p).unwrap(),
            fwsim::synth::EntryData::File(d) => {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, d).unwrap();
            }
            fwsim::synth::EntryData::Symlink(t) => {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(t, &p).unwrap();
            }
        }
    }
}

/// Checks the name hash in the key of every directory-entry node `mkfs.ubifs` wrote against our
/// writer's `r5_hash`; returns how many were checked.
fn dent_hashes_match(img: &[u8]) -> usize {
    let mut checked = 0;
    for at in (0..img.len() - 56).step_by(8) {
        if img[at..at + 4] != [0x31, 0x18, 0x10, 0x06] || img[at + 20] != 2 {
            continue;
        }
        let word = u32::from_le_bytes(img[at + 28..at + 32].try_into().unwrap());
        let nlen = u16::from_le_bytes(img[at + 50..at + 52].try_into().unwrap()) as usize;
        let name = &img[at + 56..at + 56 + nlen];
        assert_eq!(word >> 29, 2);
        assert_eq!(
            word & 0x1FFF_FFFF,
            ubifs_writer::r5_hash(name),
            "{}",
            String::from_utf8_lossy(name)
        );
        checked += 1;
    }
    checked
}

#[test]
fn mkfs_ubifs_and_ubinize_images_round_trip() {
    if !common::tool("mkfs.ubifs") || !common::tool("ubinize") {
        return;
    }
    let root = sample_tree();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("root");
    std::fs::create_dir_all(&src).unwrap();
    write_folder(&root, &src);
    let want = disk_listing(&src);
    for comp in ["lzo", "zlib", "zstd", "none"] {
        let fs = work.path().join(format!("{comp}.ubifs"));
        let status = Command::new("mkfs.ubifs")
            .args(["-r", src.to_str().unwrap(), "-m", "2048", "-e", "126976"])
            .args(["-c", "256", "-x", comp, "-o", fs.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success(), "mkfs.ubifs -x {comp}");
        let cfg = work.path().join("ubinize.cfg");
        std::fs::write(
            &cfg,
            format!(
                "[rootfs]\nmode=ubi\nimage={}\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\nvol_flags=autoresize\n",
                fs.display()
            ),
        )
        .unwrap();
        let ubi = work.path().join(format!("{comp}.ubi"));
        let status = Command::new("ubinize")
            .args(["-o", ubi.to_str().unwrap(), "-m", "2048", "-p", "128KiB"])
            .arg(&cfg)
            .status()
            .unwrap();
        assert!(status.success(), "ubinize");
        let image = std::fs::read(&fs).unwrap();
        assert!(dent_hashes_match(&image) > 10, "{comp}");
        let tree = unpack_vec(image, "fs.ubifs");
        assert_eq!(tree.root().unwrap().format, Some("ubifs"), "{comp}");
        assert!(tree.errors().next().is_none(), "{comp}");
        assert_eq!(fs_listing(&tree, "fs.ubifs", "ubifs"), want, "{comp}");
        let tree = unpack_vec(std::fs::read(&ubi).unwrap(), "nand.ubi");
        assert_eq!(tree.root().unwrap().format, Some("ubi"), "{comp}");
        assert!(tree.errors().next().is_none(), "{comp}");
        assert_eq!(
            fs_listing(&tree, "nand.ubi/rootfs", "ubifs"),
            want,
            "{comp} in UBI"
        );
    }
}
