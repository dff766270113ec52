//! Kernel images and vendor packs: ARM zImage and arm64 Image (the compressed kernel and its
//! initramfs found by carving), Novatek NVTPACK/CKSM/BCL1, Reolink `.pak` and the INSTAR variants,
//! built in code and round-tripped, checksums recomputed here independently, the real zImage
//! sample, and truncated or bit-flipped copies that must fail cleanly.

use bytes::Bytes;
use fwsim::synth::instar::{bneg, instar_hd};
use fwsim::synth::kernel::build_zimage;
use fwsim::synth::novatek::{Bcl1Algorithm, bcl1, cksm, lz77_compress, pack};
use fwsim::synth::reolink::{PakSection, pak};
use fwsim::unpack::{LimitError, Limits, Node, Tree, UnpackError, unpack};
use serde_json::json;

use crate::common;
use crate::common::archives::{CpioKind, cpio, cpio_entries, sample_items};
use crate::common::streams::{gzip, text, xz};

fn children(tree: &Tree, id: usize) -> Vec<&Node> {
    tree.nodes()[id]
        .children
        .iter()
        .map(|&c| tree.get(c).unwrap())
        .collect()
}

fn node_with_format<'a>(tree: &'a Tree, format: &str) -> Vec<&'a Node> {
    tree.nodes()
        .iter()
        .filter(|n| n.format == Some(format))
        .collect()
}

fn busybox() -> Vec<u8> {
    match &sample_items()[2] {
        common::archives::Item::File(_, d, _) => d.clone(),
        _ => unreachable!(),
    }
}

/// A fake kernel: text, an embedded gzip'd cpio newc initramfs, more text.
fn fake_kernel() -> Vec<u8> {
    let initramfs = gzip(&cpio(CpioKind::Newc, &cpio_entries(&sample_items())));
    let mut k = text(150_000, 1);
    k.extend_from_slice(&[0u8; 64]);
    k.extend_from_slice(&initramfs);
    k.extend_from_slice(&[0u8; 64]);
    k.extend_from_slice(&text(50_000, 2));
    k
}

/// A zImage payload: "decompressor" bytes, the gzip'd kernel and its little-endian length.
fn zimage_payload(kernel: &[u8]) -> Vec<u8> {
    let mut p = vec![0x5Au8; 4000];
    p.extend_from_slice(&gzip(kernel));
    p.extend_from_slice(&(kernel.len() as u32).to_le_bytes());
    p
}

/// The containers that produced the first node whose path ends with `suffix`.
fn chain_of(tree: &Tree, suffix: &str) -> Vec<&'static str> {
    let id = tree
        .nodes()
        .iter()
        .position(|n| n.path.ends_with(suffix.as_bytes()))
        .unwrap();
    tree.chain(id).iter().map(|(f, _)| *f).collect()
}

fn assert_initramfs_found(tree: &Tree) {
    let bb = tree
        .find("bin/busybox")
        .expect("busybox from the initramfs");
    assert_eq!(&bb.data[..], &busybox()[..]);
    let chain = chain_of(tree, "bin/busybox");
    assert!(chain.contains(&"cpio"), "{chain:?}");
}

#[test]
fn zimage_kernel_and_initramfs_are_carved_in_both_endiannesses() {
    let kernel = fake_kernel();
    for big in [false, true] {
        let img = build_zimage(&zimage_payload(&kernel), big);
        let tree = unpack(Bytes::from(img.clone()), b"zImage", &Limits::default());
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("zimage"));
        assert_eq!(
            root.format_meta["endianness"],
            json!(if big { "big" } else { "little" })
        );
        assert_eq!(root.format_meta["size"], json!(img.len()));
        assert!(root.error.is_none(), "{:?}", root.error);
        // The kernel decompressed intact.
        assert!(
            tree.nodes().iter().any(|n| n.data[..] == kernel[..]),
            "decompressed kernel not in the tree"
        );
        assert_initramfs_found(&tree);
        // zImage payload -> carved gzip (the kernel) -> carved gzip (the initramfs) -> cpio.
        let chain = chain_of(&tree, "bin/busybox");
        assert_eq!(chain.first(), Some(&"zimage"), "{chain:?}");
        assert_eq!(
            chain.iter().filter(|f| **f == "gzip").count(),
            2,
            "{chain:?}"
        );
    }
}

#[test]
fn zimage_is_carved_from_a_flash_dump() {
    let img = build_zimage(&zimage_payload(&fake_kernel()), false);
    let mut flash = vec![0xFFu8; 0x10000];
    flash.extend_from_slice(&img);
    flash.resize(flash.len() + 0x8000, 0xFF);
    let tree = unpack(Bytes::from(flash), b"flash.bin", &Limits::default());
    let region = tree
        .find("flash.bin/0x10000.zimage")
        .expect("zImage region");
    assert_eq!(region.data.len(), img.len());
    assert_initramfs_found(&tree);
}

#[test]
fn arm64_image_and_its_xz_initramfs() {
    let initramfs = xz(&cpio(CpioKind::Newc, &cpio_entries(&sample_items())));
    let mut body = text(60_000, 3);
    body.extend_from_slice(&initramfs);
    body.extend_from_slice(&text(10_000, 4));
    let mut img = vec![0u8; 64];
    img[0..4].copy_from_slice(&0x1400_0000u32.to_le_bytes()); // b
    img[8..16].copy_from_slice(&0x80000u64.to_le_bytes());
    let size = (64 + body.len() + 0x10000) as u64; // file plus BSS
    img[16..24].copy_from_slice(&size.to_le_bytes());
    img[24..32].copy_from_slice(&0b1010u64.to_le_bytes());
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    img.extend_from_slice(&body);
    let tree = unpack(Bytes::from(img), b"Image", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("arm64_image"));
    assert_eq!(root.format_meta["endianness"], json!("little"));
    assert_eq!(root.format_meta["text_offset"], json!("0x80000"));
    assert_initramfs_found(&tree);
}

#[test]
fn real_big_endian_zimage_is_recognised_and_reported_truncated() {
    let Some(p) = common::sample(
        "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/linuxkernel/test/data/zImage_be32",
    ) else {
        return;
    };
    let data = std::fs::read(&p).unwrap();
    // Independently: the magic at 0x24 big-endian, end address at 0x2c.
    assert_eq!(&data[0x24..0x28], &[0x01, 0x6f, 0x28, 0x18]);
    let end = u32::from_be_bytes(data[0x2c..0x30].try_into().unwrap());
    let tree = unpack(
        Bytes::from(data.clone()),
        b"zImage_be32",
        &Limits::default(),
    );
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("zimage"));
    assert_eq!(root.format_meta["endianness"], json!("big"));
    assert_eq!(root.format_meta["size"], json!(end));
    assert!(
        matches!(root.error, Some(UnpackError::Truncated(_))),
        "{:?}",
        root.error
    );
    assert_eq!(children(&tree, 0).len(), 1);
    assert_eq!(children(&tree, 0)[0].data.len(), data.len() - 0x30);
}

// ---------------------------------------------------------------- Novatek

/// The NVT sum as nvtpack.c computes it, written out here.
fn nvt_sum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for i in 0..data.len() / 2 {
        let w = u16::from_le_bytes([data[2 * i], data[2 * i + 1]]) as u32;
        sum = sum.wrapping_add(w + i as u32);
    }
    sum as u16
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

struct NovatekFixture {
    image: Vec<u8>,
    uitron: Vec<u8>,
    linux: Vec<u8>,
    rootfs: Vec<u8>,
    uboot: Vec<u8>,
}

fn novatek_fixture() -> NovatekFixture {
    let mut uitron = text(120_000, 7);
    // Marker-heavy and run-heavy stretches exercise the LZ77 escapes and overlapping matches.
    uitron.extend(std::iter::repeat_n(0u8, 5000));
    uitron.extend((0..=255u8).cycle().take(3000));
    let linux = fake_kernel();
    let rootfs = cpio(CpioKind::Newc, &cpio_entries(&sample_items()));
    let uboot = text(20_001, 9);
    let image = pack(&[
        (0, bcl1(&uitron, Bcl1Algorithm::Lz77, true).unwrap()),
        (1, uboot.clone()),
        (
            2,
            cksm(&bcl1(&linux, Bcl1Algorithm::Lzma, true).unwrap(), 4).unwrap(),
        ),
        (
            3,
            cksm(&bcl1(&rootfs, Bcl1Algorithm::Zlib, false).unwrap(), 9).unwrap(),
        ),
    ])
    .unwrap();
    NovatekFixture {
        image,
        uitron,
        linux,
        rootfs,
        uboot,
    }
}

#[test]
fn novatek_pack_round_trips_with_checksums_verified() {
    let f = novatek_fixture();
    // The layout, read independently: GUID, version, table at 128, whole-file sum zero.
    assert_eq!(le32(&f.image, 0), 0xD601_2E07);
    assert_eq!(le32(&f.image, 16), 0x1607_1515);
    assert_eq!(le32(&f.image, 0x18), 4);
    assert_eq!(le32(&f.image, 0x1C) as usize, f.image.len());
    assert_eq!(nvt_sum(&f.image), 0);

    let tree = unpack(
        Bytes::from(f.image.clone()),
        b"FW96660A.bin",
        &Limits::default(),
    );
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("novatek"));
    assert_eq!(root.format_meta["checksum_ok"], json!(true));
    let parts = children(&tree, 0);
    let names: Vec<String> = parts
        .iter()
        .map(|n| String::from_utf8_lossy(&n.path).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "FW96660A.bin/partition_0",
            "FW96660A.bin/partition_1",
            "FW96660A.bin/partition_2",
            "FW96660A.bin/partition_3"
        ]
    );
    assert_eq!(&parts[1].data[..], &f.uboot[..]);
    for n in node_with_format(&tree, "novatek_cksm") {
        assert_eq!(n.format_meta["checksum_ok"], json!(true), "{:?}", n.path);
    }
    let bcl = node_with_format(&tree, "bcl1");
    assert_eq!(bcl.len(), 3);
    let algos: Vec<_> = bcl
        .iter()
        .map(|n| n.format_meta["algorithm"].clone())
        .collect();
    assert_eq!(algos, [json!("lz77"), json!("lzma"), json!("zlib")]);
    assert_eq!(bcl[0].format_meta["checksum_ok"], json!(true));
    assert_eq!(bcl[2].format_meta["checksum"], json!("none"));
    let outputs: Vec<&[u8]> = bcl
        .iter()
        .map(|n| {
            &children(
                &tree,
                tree.nodes()
                    .iter()
                    .position(|m| std::ptr::eq(m, *n))
                    .unwrap(),
            )[0]
            .data[..]
        })
        .collect();
    assert_eq!(outputs[0], &f.uitron[..]);
    assert_eq!(outputs[1], &f.linux[..]);
    assert_eq!(outputs[2], &f.rootfs[..]);
    // The cpio inside partition 3 and the initramfs inside the kernel were unpacked too.
    assert!(
        tree.nodes()
            .iter()
            .filter(|n| n.path.ends_with(b"bin/busybox"))
            .count()
            >= 2
    );
}

#[test]
fn novatek_lz77_round_trips_awkward_inputs() {
    let inputs: Vec<Vec<u8>> = vec![
        vec![7],
        vec![0u8; 100_000],
        (0..=255u8).cycle().take(70_000).collect(),
        b"abcabcabcabcabcabcabcabcabcabcabcabc".repeat(1000),
        text(300_000, 11),
    ];
    for data in inputs {
        let block = bcl1(&data, Bcl1Algorithm::Lz77, true).unwrap();
        let tree = unpack(Bytes::from(block), b"b.bcl", &Limits::default());
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("bcl1"), "{} bytes", data.len());
        assert_eq!(root.format_meta["checksum_ok"], json!(true));
        assert_eq!(&children(&tree, 0)[0].data[..], &data[..]);
    }
    // The compressor really compresses what repeats.
    assert!(lz77_compress(&vec![0u8; 100_000]).len() < 100);
}

#[test]
fn novatek_damage_is_reported_not_fatal() {
    let f = novatek_fixture();
    // A flipped byte inside partition 1 (stored): the pack checksum fails, the rest unpacks.
    let p1 = le32(&f.image, 128 + 12) as usize;
    let mut img = f.image.clone();
    img[p1 + 10] ^= 0x40;
    let tree = unpack(Bytes::from(img), b"fw.bin", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("novatek"));
    assert_eq!(root.format_meta["checksum_ok"], json!(false));
    assert_eq!(node_with_format(&tree, "bcl1").len(), 3);

    // Truncated: partitions past the end carry errors, the pack says truncated.
    let cut = f.image[..f.image.len() / 2].to_vec();
    let tree = unpack(Bytes::from(cut), b"fw.bin", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("novatek"));
    assert!(matches!(root.error, Some(UnpackError::Truncated(_))));
    assert!(children(&tree, 0).iter().any(|n| n.error.is_some()));

    // A partition count the file cannot hold is refused before any allocation.
    let mut img = f.image.clone();
    img[0x18..0x1C].copy_from_slice(&0x4000_0000u32.to_le_bytes());
    let tree = unpack(Bytes::from(img), b"fw.bin", &Limits::default());
    assert!(tree.nodes().len() < 50);
}

#[test]
fn novatek_lz77_bomb_stops_at_the_ratio_limit() {
    // Marker, one literal, then matches of 2^28 bytes at offset 1, declared 1 GiB.
    let mut stream = vec![0xFFu8, b'a'];
    for _ in 0..8 {
        stream.extend_from_slice(&[0xFF, 0x81, 0x80, 0x80, 0x80, 0x00, 0x01]);
    }
    let mut block = b"BCL1\0\0\0\x09".to_vec();
    block.extend_from_slice(&(1u32 << 30).to_be_bytes());
    block.extend_from_slice(&(stream.len() as u32).to_be_bytes());
    block.extend_from_slice(&stream);
    let tree = unpack(Bytes::from(block), b"bomb.bcl", &Limits::default());
    let err = tree.root().unwrap().error.clone().expect("stopped");
    assert!(
        matches!(
            err,
            UnpackError::Limit(LimitError::Ratio { .. } | LimitError::FileBytes { .. })
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------- Reolink

fn pak_sections() -> Vec<PakSection> {
    vec![
        PakSection {
            name: "uboot1".into(),
            version: "v1.0.0.1".into(),
            data: text(30_000, 21),
        },
        PakSection {
            name: String::new(),
            version: String::new(),
            data: Vec::new(),
        },
        PakSection {
            name: "kernel".into(),
            version: "v1.0.0.1".into(),
            data: build_zimage(&zimage_payload(&fake_kernel()), false),
        },
        PakSection {
            name: "fs".into(),
            version: "v1.0.0.442".into(),
            data: gzip(&cpio(CpioKind::Newc, &cpio_entries(&sample_items()))),
        },
    ]
}

/// Reflected CRC-32 (0xEDB88320), register starting at 0, no final inversion: bit by bit.
fn bitwise_crc_zero_init(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[test]
fn reolink_pak_round_trips_in_both_layouts() {
    for is64 in [false, true] {
        let sections = pak_sections();
        let img = pak(&sections, 0x2302, is64).unwrap();
        // pakler's CRC rule, recomputed here: data from the first section, 02 00 00 00, table.
        let (hdr, entry) = if is64 { (24, 72) } else { (12, 64) };
        let first = hdr + sections.len() * (entry + 76);
        let mut covered = img[first..].to_vec();
        covered.extend_from_slice(&[2, 0, 0, 0]);
        covered.extend_from_slice(&img[hdr..hdr + sections.len() * entry]);
        assert_eq!(
            bitwise_crc_zero_init(&covered),
            le32(&img, if is64 { 8 } else { 4 })
        );

        let tree = unpack(Bytes::from(img.clone()), b"IPC.pak", &Limits::default());
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("reolink_pak"), "is64 {is64}");
        assert_eq!(root.format_meta["crc_ok"], json!(true));
        assert_eq!(
            root.format_meta["word_size"],
            json!(if is64 { 64 } else { 32 })
        );
        assert_eq!(root.format_meta["sections"], json!(4));
        let kids = children(&tree, 0);
        let names: Vec<_> = kids
            .iter()
            .map(|n| String::from_utf8_lossy(&n.path).into_owned())
            .collect();
        assert_eq!(
            names,
            ["IPC.pak/00_uboot1", "IPC.pak/02_kernel", "IPC.pak/03_fs"]
        );
        assert_eq!(&kids[0].data[..], &sections[0].data[..]);
        assert_eq!(kids[2].meta["version"], json!("v1.0.0.442"));
        assert_eq!(kids[1].format, Some("zimage"));
        assert_initramfs_found(&tree);

        let mut bad = img.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let tree = unpack(Bytes::from(bad), b"IPC.pak", &Limits::default());
        assert_eq!(tree.root().unwrap().format_meta["crc_ok"], json!(false));
    }
}

#[test]
fn reolink_lying_tables_fail_cleanly() {
    let img = pak(&pak_sections(), 1, false).unwrap();
    // First section offset claiming millions of table entries.
    let mut bad = img.clone();
    bad[12 + 56..12 + 60].copy_from_slice(&(12 + 140 * 10_000_000u32).to_le_bytes());
    let tree = unpack(Bytes::from(bad), b"x.pak", &Limits::default());
    assert_ne!(tree.root().unwrap().format, Some("reolink_pak"));
    // A section running past the end.
    let mut bad = img.clone();
    let kernel_len_at = 12 + 2 * 64 + 60;
    bad[kernel_len_at..kernel_len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let tree = unpack(Bytes::from(bad), b"x.pak", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("reolink_pak"));
    assert!(matches!(root.error, Some(UnpackError::Truncated(_))));
    assert!(children(&tree, 0).iter().any(|n| n.error.is_some()));
}

// ---------------------------------------------------------------- INSTAR

#[test]
fn instar_hd_zip_is_read_and_carved_past_vendor_bytes() {
    let rootfs = gzip(&cpio(CpioKind::Newc, &cpio_entries(&sample_items())));
    let script = b"#!/bin/sh\nflash_eraseall /dev/mtd3\n".to_vec();
    let archive = instar_hd(&[("update/rootfs.img", &rootfs), ("update/run.sh", &script)]).unwrap();
    // Independently: altered signatures, none of the standard ones left.
    let count = |pat: &[u8]| archive.windows(4).filter(|w| *w == pat).count();
    assert_eq!(count(b"PK\x03\x07"), 2);
    assert_eq!(count(b"PK\x01\x08"), 2);
    assert_eq!(count(b"PK\x05\x09"), 1);
    assert_eq!(
        count(b"PK\x03\x04") + count(b"PK\x01\x02") + count(b"PK\x05\x06"),
        0
    );

    let tree = unpack(
        Bytes::from(archive.clone()),
        b"update.pkg",
        &Limits::default(),
    );
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("instar_hd"));
    assert_eq!(
        &tree.find("update.pkg/update/run.sh").unwrap().data[..],
        &script[..]
    );
    assert_eq!(
        &tree.find("update/rootfs.img").unwrap().data[..],
        &rootfs[..]
    );
    assert!(tree.find("bin/busybox").is_some());

    // Vendor prefix and trailer: carving finds the archive and its exact extent.
    let mut wrapped = b"INSTAR-HD-1.2.3\0".repeat(16);
    let at = wrapped.len();
    wrapped.extend_from_slice(&archive);
    wrapped.extend_from_slice(&text(999, 5));
    let tree = unpack(Bytes::from(wrapped), b"fw.bin", &Limits::default());
    let region = tree
        .find(&format!("fw.bin/{at:#x}.instar_hd"))
        .expect("carved INSTAR archive");
    assert_eq!(region.data.len(), archive.len());
    assert!(tree.find("update/run.sh").is_some());
}

#[test]
fn instar_bneg_round_trips_and_truncation_is_reported() {
    let p1 = build_zimage(&zimage_payload(&fake_kernel()), false);
    let p2 = text(5000, 8);
    let img = bneg(&p1, &p2).unwrap();
    let tree = unpack(Bytes::from(img.clone()), b"fw.bneg", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("instar_bneg"));
    assert_eq!(&tree.find("fw.bneg/part1").unwrap().data[..], &p1[..]);
    assert_eq!(&tree.find("fw.bneg/part2").unwrap().data[..], &p2[..]);
    assert_initramfs_found(&tree);
    let tree = unpack(
        Bytes::from(img[..img.len() - 1].to_vec()),
        b"b",
        &Limits::default(),
    );
    assert!(matches!(
        tree.root().unwrap().error,
        Some(UnpackError::Truncated(_))
    ));
}

// ---------------------------------------------------------------- hostile

/// Every prefix at a spread of lengths and every single-bit flip in the first 512 bytes: no
/// panic, and the tree always has its root.
#[test]
fn truncated_and_bit_flipped_vendor_images_never_panic() {
    let f = novatek_fixture();
    let small_kernel = {
        let mut k = text(2000, 1);
        k.extend_from_slice(&gzip(&cpio(CpioKind::Newc, &cpio_entries(&sample_items()))));
        k
    };
    let images: Vec<(&str, Vec<u8>)> = vec![
        (
            "zimage",
            build_zimage(&zimage_payload(&small_kernel), false),
        ),
        (
            "novatek",
            pack(&[
                (0, bcl1(&small_kernel, Bcl1Algorithm::Lz77, true).unwrap()),
                (1, cksm(&small_kernel, 4).unwrap()),
            ])
            .unwrap(),
        ),
        ("reolink", pak(&pak_sections()[..2], 7, false).unwrap()),
        (
            "instar",
            instar_hd(&[("a", b"hello hello hello"), ("b/c", &small_kernel)]).unwrap(),
        ),
        ("bneg", bneg(b"first part", &small_kernel).unwrap()),
        ("bcl1", f.image[..2000].to_vec()),
    ];
    let limits = Limits {
        time_budget: std::time::Duration::from_secs(20),
        ..Limits::default()
    };
    for (name, img) in &images {
        let step = (img.len() / 97).max(1);
        for cut in (0..img.len()).step_by(step) {
            let tree = unpack(Bytes::from(img[..cut].to_vec()), b"t", &limits);
            assert!(tree.root().is_some(), "{name} cut {cut}");
        }
        for bit in 0..img.len().min(512) * 8 {
            let mut m = img.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            let tree = unpack(Bytes::from(m), b"t", &limits);
            assert!(tree.root().is_some(), "{name} bit {bit}");
        }
    }
}

/// pakler (the public Reolink/Swann tool, installed by `.ci/run`) reads our paks the way we do:
/// same sections, offsets, lengths, and the CRC it computes equals the stored one.
#[test]
fn reolink_pak_agrees_with_pakler() {
    if !common::python_module("pakler") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for is64 in [false, true] {
        let img = pak(&pak_sections(), 0x2302, is64).unwrap();
        let path = dir.path().join(format!("fw{is64}.pak"));
        std::fs::write(&path, &img).unwrap();
        let script = "import sys, pakler\n\
                      p = pakler.PAK.from_file(sys.argv[1])\n\
                      print(p.is64, p.crc == p.calc_crc())\n\
                      for s in p.sections: print(repr(s.name), s.start, s.len)\n";
        let out = std::process::Command::new("python3")
            .args(["-c", script, path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = String::from_utf8(out.stdout).unwrap();
        let tree = unpack(Bytes::from(img), b"fw.pak", &Limits::default());
        let root = tree.root().unwrap();
        let mut ours = format!(
            "{} {}\n",
            if is64 { "True" } else { "False" },
            if root.format_meta["crc_ok"] == json!(true) {
                "True"
            } else {
                "False"
            }
        );
        // Our children skip empty sections; pakler lists them all: rebuild its listing from the
        // section table fields we report.
        let kids = children(&tree, 0);
        let mut k = kids.iter();
        for (i, s) in pak_sections().iter().enumerate() {
            if s.data.is_empty() {
                let prev_end = theirs
                    .lines()
                    .nth(i)
                    .unwrap()
                    .rsplit(' ')
                    .take(2)
                    .map(|v| v.parse::<u64>().unwrap())
                    .sum::<u64>();
                ours.push_str(&format!("{:?} {} 0\n", s.name, prev_end));
                continue;
            }
            let n = k.next().unwrap();
            ours.push_str(&format!(
                "'{}' {} {}\n",
                n.meta["section"].as_str().unwrap(),
                tree.chain(
                    tree.nodes()
                        .iter()
                        .position(|m| std::ptr::eq(m, *n))
                        .unwrap()
                )[0]
                .1
                .unwrap(),
                n.data.len()
            ));
        }
        assert_eq!(ours.replace('"', "'"), theirs, "is64 {is64}");
    }
}

/// Chained INSTAR local headers with no end record, and floods of the other new magics: the
/// scan stops quickly (the end-record search is charged to the failed-candidate budget).
#[test]
fn vendor_magic_floods_stop_quickly() {
    let mut unit = b"PK\x03\x07".to_vec();
    unit.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version .. crc
    unit.extend_from_slice(&0u32.to_le_bytes()); // compressed size
    unit.extend_from_slice(&0u32.to_le_bytes()); // uncompressed size
    unit.extend_from_slice(&1u16.to_le_bytes()); // name length
    unit.extend_from_slice(&0u16.to_le_bytes()); // extra length
    unit.push(b'a');
    let floods: Vec<(&str, Vec<u8>)> = vec![
        ("instar_hd", unit),
        (
            "bcl1",
            b"BCL1\0\0\0\x09\0\0\0\x10\0\0\0\x04\xFFabc".to_vec(),
        ),
        ("cksm", {
            let mut c = b"CKSM".to_vec();
            for v in [0x1604_0719u32, 0, 0, 64, 0x100, 0, 9] {
                c.extend_from_slice(&v.to_le_bytes());
            }
            c
        }),
    ];
    let limits = Limits {
        max_failed_carve_bytes: 4 << 20,
        ..Limits::default()
    };
    for (name, unit) in floods {
        let blob: Vec<u8> = unit.iter().copied().cycle().take(4 << 20).collect();
        let start = std::time::Instant::now();
        let tree = unpack(Bytes::from(blob), b"flood", &limits);
        let took = start.elapsed();
        assert!(
            took < std::time::Duration::from_secs(10),
            "{name}: {took:?}"
        );
        assert!(tree.root().is_some());
    }
}
