//! 7z: archives written in code (LZMA, LZMA2, copy; solid and not; folders, empty files) round
//! trip; one is carved from a firmware blob with its exact extent; hostile headers (huge
//! dictionaries, a billion files, encryption) are refused quickly; mutations never panic; the real
//! samples match `7z`'s listing and extraction.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::unpack::{EntryKind, LimitError, Limits, Tree, UnpackError, unpack};
use serde_json::json;

use crate::common::{
    self,
    mutate::{XorShift, mutate, truncations},
    sevenz::{Item, Method, assemble, build, files_info, number, single_file_header},
};

fn run(data: Vec<u8>, name: &str) -> Tree {
    unpack(Bytes::from(data), name.as_bytes(), &Limits::default())
}

/// Bytes that compress, but not to nothing.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift(seed | 1);
    (0..len)
        .map(|i| {
            if i % 7 == 0 {
                b'a' + (rng.next() % 26) as u8
            } else {
                b"firmware "[i % 9]
            }
        })
        .collect()
}

fn items() -> Vec<Item> {
    vec![
        Item::Dir("etc"),
        Item::Dir("etc/init.d"),
        Item::File("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n".to_vec()),
        Item::File("etc/init.d/rcS", text(1, 70_000)),
        Item::File("bin/busybox", text(2, 300_000)),
        Item::File("empty", Vec::new()),
        Item::Dir("var/empty-dir"),
    ]
}

fn assert_round_trip(tree: &Tree, root: &str, items: &[Item]) {
    let node = tree.root().unwrap();
    assert_eq!(node.format, Some("7z"));
    assert!(node.error.is_none(), "{:?}", node.error);
    assert_eq!(node.format_meta["entries"], json!(items.len()));
    for item in items {
        match item {
            Item::File(name, data) => {
                let n = tree
                    .find(&format!("{root}/{name}"))
                    .unwrap_or_else(|| panic!("{name} missing"));
                assert_eq!(n.kind, EntryKind::File, "{name}");
                assert!(n.error.is_none(), "{name}: {:?}", n.error);
                assert_eq!(&n.data[..], &data[..], "{name}");
                assert_eq!(n.meta["size"], json!(data.len()), "{name}");
            }
            Item::Dir(name) => {
                let n = tree
                    .find(&format!("{root}/{name}"))
                    .unwrap_or_else(|| panic!("{name} missing"));
                assert_eq!(n.kind, EntryKind::Dir, "{name}");
            }
        }
    }
}

#[test]
fn lzma_lzma2_and_copy_archives_round_trip_solid_or_not() {
    let items = items();
    for (method, name) in [
        (Method::Lzma2(6), "lzma2"),
        (Method::Lzma(1 << 20), "lzma"),
        (Method::Copy, "copy"),
    ] {
        for solid in [false, true] {
            let archive = build(&items, method, solid);
            let tree = run(archive.clone(), "a.7z");
            assert_round_trip(&tree, "a.7z", &items);
            let root = tree.root().unwrap();
            assert_eq!(root.format_meta["methods"], json!([name]), "{name}");
            assert_eq!(
                root.format_meta["solid"],
                json!(solid),
                "{name} solid={solid}"
            );
            // Provenance: the method of the file's block and its declared size.
            let busybox = tree.find("a.7z/bin/busybox").unwrap();
            assert_eq!(busybox.meta["method"], json!(name));
            assert_eq!(busybox.meta["size"], json!(300_000));
            if !matches!(method, Method::Copy) {
                assert!(archive.len() < 300_000, "{name} did not compress");
            }
        }
    }
}

#[test]
fn archive_without_entries_is_empty_not_an_error() {
    let archive = build(&[], Method::Lzma2(6), false);
    let tree = run(archive, "e.7z");
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("7z"));
    assert!(root.error.is_none(), "{:?}", root.error);
    assert_eq!(root.children.len(), 0);
}

#[test]
fn archive_inside_a_firmware_blob_is_carved_with_its_extent() {
    let items = items();
    let archive = build(&items, Method::Lzma2(6), true);
    let mut blob = vec![0xFFu8; 0x2000];
    blob[..16].copy_from_slice(b"VENDOR-FW-HEADER");
    blob.extend_from_slice(&archive);
    blob.extend_from_slice(&[0x5A; 3000]);
    let tree = run(blob, "fw.bin");
    let region = tree.find("fw.bin/0x2000.7z").expect("carved 7z region");
    assert_eq!(region.data.len(), archive.len());
    assert_eq!(&region.data[..], &archive[..]);
    assert_round_trip_under(&tree, "fw.bin/0x2000.7z", &items);
}

/// As [`assert_round_trip`], for an archive that is not the root.
fn assert_round_trip_under(tree: &Tree, root: &str, items: &[Item]) {
    for item in items {
        if let Item::File(name, data) = item {
            let n = tree.find(&format!("{root}/{name}")).unwrap();
            assert_eq!(&n.data[..], &data[..], "{name}");
        }
    }
}

/// An LZMA2 dictionary of 4 GiB (property 40) and an LZMA one of 4 GiB over a claimed 5 GiB
/// file are refused from the header, before any decoder is built.
#[test]
fn huge_dictionaries_are_refused_quickly() {
    let lzma2 = assemble(
        &[0u8; 64],
        &single_file_header("big", 64, 1 << 20, &[0x21], &[40]),
    );
    let mut lzma_props = vec![0x5D];
    lzma_props.extend_from_slice(&u32::MAX.to_le_bytes());
    let lzma = assemble(
        &[0u8; 64],
        &single_file_header("big", 64, 5 << 30, &[3, 1, 1], &lzma_props),
    );
    for (name, archive) in [("lzma2", lzma2), ("lzma", lzma)] {
        let start = Instant::now();
        let tree = run(archive, "d.7z");
        assert!(start.elapsed() < Duration::from_secs(2), "{name}");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("7z"), "{name}");
        let child = tree
            .find("d.7z/big")
            .unwrap_or_else(|| panic!("{name}: {:?}", root.error));
        assert!(
            matches!(
                child.error,
                Some(UnpackError::Limit(LimitError::Memory { .. }))
            ),
            "{name}: {:?}",
            child.error
        );
        assert!(child.data.is_empty());
        assert!(
            matches!(
                root.error,
                Some(UnpackError::Limit(LimitError::Memory { .. }))
            ),
            "{name}: {:?}",
            root.error
        );
    }
}

/// A plain header that claims a billion files in a few bytes, and an encoded header that claims
/// to decode to a gigabyte (room for a billion entries), are both refused before allocation.
#[test]
fn billion_file_claims_are_refused_quickly() {
    let mut plain = vec![0x01, 0x05];
    plain.extend(number(1_000_000_000));
    plain.extend([0x00, 0x00]);
    let plain = assemble(&[], &plain);

    let mut encoded = vec![0x17, 0x06];
    encoded.extend(number(0));
    encoded.extend(number(1));
    encoded.push(0x09);
    encoded.extend(number(16));
    encoded.extend([0x00, 0x07, 0x0B]);
    encoded.extend(number(1));
    encoded.push(0);
    encoded.extend(number(1));
    encoded.extend([0x23, 3, 1, 1, 5, 0x5D, 0, 0, 1, 0]); // LZMA, 64 KiB dictionary
    encoded.push(0x0C);
    encoded.extend(number(1_000_000_000));
    encoded.extend([0x00, 0x00]);
    let encoded = assemble(&[0u8; 16], &encoded);

    for (name, archive, memory) in [("plain", plain, false), ("encoded", encoded, true)] {
        let start = Instant::now();
        let tree = run(archive, "b.7z");
        assert!(start.elapsed() < Duration::from_secs(2), "{name}");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("7z"), "{name}");
        assert_eq!(root.children.len(), 0, "{name}");
        if memory {
            assert!(
                matches!(
                    root.error,
                    Some(UnpackError::Limit(LimitError::Memory { .. }))
                ),
                "{name}: {:?}",
                root.error
            );
        } else {
            assert!(
                matches!(root.error, Some(UnpackError::Corrupt(_))),
                "{name}: {:?}",
                root.error
            );
        }
    }
}

/// An entry whose block is AES-encrypted is listed with a clear error, not decoded.
#[test]
fn encrypted_entries_are_refused_with_a_clear_error() {
    let aes = [0x06, 0xF1, 0x07, 0x01];
    let archive = assemble(
        &[0x42; 32],
        &single_file_header("secret.bin", 32, 32, &aes, &[0x13, 0x00]),
    );
    let tree = run(archive, "s.7z");
    let child = tree
        .find("s.7z/secret.bin")
        .unwrap_or_else(|| panic!("not listed: {:?}", tree.root().unwrap().error));
    match &child.error {
        Some(UnpackError::Unsupported(m)) => assert!(m.contains("encrypted"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(child.data.is_empty());
}

/// A stored entry named to escape the extraction root is listed as named and flagged.
#[test]
fn escaping_names_are_flagged() {
    let data = b"#!/bin/sh\necho pwned\n";
    let archive = assemble(
        data,
        &single_file_header(
            "../../etc/rc.local",
            data.len() as u64,
            data.len() as u64,
            &[0],
            &[],
        ),
    );
    let tree = run(archive, "z.7z");
    let child = tree
        .nodes()
        .iter()
        .find(|n| n.path.ends_with(b"rc.local"))
        .unwrap_or_else(|| panic!("not listed: {:?}", tree.root().unwrap().error));
    assert_eq!(&child.data[..], data);
    assert_eq!(child.meta["unsafe_path"], json!(true));
}

/// 256 MiB of zeros in a tiny LZMA2 archive stop at the ratio limit, not at memory.
#[test]
fn decompression_bomb_stops_at_the_ratio_limit() {
    let archive = build(
        &[Item::File("zeros", vec![0u8; 256 << 20])],
        Method::Lzma2(1),
        false,
    );
    assert!(archive.len() < 256 << 10, "{}", archive.len());
    let limits = Limits {
        max_ratio: 100,
        ratio_floor_bytes: 1 << 20,
        ..Limits::default()
    };
    let tree = unpack(Bytes::from(archive), b"bomb.7z", &limits);
    let child = tree.find("bomb.7z/zeros").unwrap();
    assert!(
        matches!(
            child.error,
            Some(UnpackError::Limit(LimitError::Ratio { .. }))
        ),
        "{:?}",
        child.error
    );
    assert!(child.data.is_empty());
}

/// A file set in the header holds more entries than the entry limit allows: refused as a whole.
#[test]
fn entry_limit_applies_to_the_header() {
    let names: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut header = vec![0x01];
    let mut files = files_info(&names);
    // Every entry empty: kEmptyStream with all bits set, before the names.
    let bits = vec![0xFFu8; names.len().div_ceil(8)];
    let mut empty = vec![0x0E];
    empty.extend(number(bits.len() as u64));
    empty.extend(&bits);
    let at = 1 + number(names.len() as u64).len();
    files.splice(at..at, empty);
    header.extend(files);
    header.push(0x00);
    let archive = assemble(&[], &header);
    let ok = run(archive.clone(), "n.7z");
    assert!(
        ok.root().unwrap().error.is_none(),
        "{:?}",
        ok.root().unwrap().error
    );
    assert_eq!(ok.root().unwrap().children.len(), 50);
    let limits = Limits {
        max_entries: 20,
        ..Limits::default()
    };
    let tree = unpack(Bytes::from(archive), b"n.7z", &limits);
    assert!(
        matches!(
            tree.root().unwrap().error,
            Some(UnpackError::Limit(LimitError::Entries { .. }))
        ),
        "{:?}",
        tree.root().unwrap().error
    );
}

/// Truncated and mutated archives never panic or hang; a cut archive is reported truncated.
#[test]
fn truncated_and_bit_flipped_archives_never_panic() {
    let items = items();
    let archives = [
        build(&items, Method::Lzma2(6), true),
        build(&items, Method::Lzma(1 << 16), false),
        build(&items, Method::Copy, false),
    ];
    for archive in &archives {
        for cut in truncations(archive) {
            let len = cut.len();
            let start = Instant::now();
            let tree = run(cut, "t.7z");
            assert!(start.elapsed() < Duration::from_secs(5), "cut at {len}");
            assert!(tree.root().is_some());
        }
        let mut rng = XorShift(0x7A7A_1C27);
        for i in 0..200 {
            let (kind, m) = mutate(archive, &archives[0], &mut rng);
            let start = Instant::now();
            let tree = run(m, "m.7z");
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "mutation {i} ({kind:?})"
            );
            assert!(tree.root().is_some());
        }
    }
    let whole = &archives[0];
    let tree = run(whole[..whole.len() - 1].to_vec(), "t.7z");
    assert!(
        matches!(tree.root().unwrap().error, Some(UnpackError::Truncated(_))),
        "{:?}",
        tree.root().unwrap().error
    );
    // One flipped bit in the packed data: the CRC catches it on the entry it lands in.
    let mut flipped = archives[2].clone();
    flipped[40] ^= 0x10;
    let tree = run(flipped, "f.7z");
    assert!(tree.nodes().iter().any(|n| n.error.is_some()));
}

/// The real samples: every entry `7z l -slt` lists is there with its size and, once `7z x` has
/// extracted it, its bytes; in a flash dump the archive is carved with its exact extent.
#[test]
fn real_7z_archives_match_7z() {
    for rel in [
        "ReFirmLabs__binwalk/tests/inputs/7z.bin",
        "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/sevenz/test/data/test.7z",
    ] {
        let Some(p) = common::sample(rel) else {
            return;
        };
        let data = std::fs::read(&p).unwrap();
        let tree = run(data.clone(), "a.7z");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("7z"), "{rel}");
        assert!(root.error.is_none(), "{rel}: {:?}", root.error);
        if common::tool("7z") {
            let listing = Command::new("7z")
                .arg("l")
                .arg("-slt")
                .arg(&p)
                .output()
                .unwrap();
            assert!(listing.status.success());
            let text = String::from_utf8_lossy(&listing.stdout);
            let body = text.split("----------\n").nth(1).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let x = Command::new("7z")
                .arg("x")
                .arg(format!("-o{}", dir.path().display()))
                .arg(&p)
                .output()
                .unwrap();
            assert!(x.status.success());
            let mut listed = 0;
            for block in body.split("\n\n").filter(|b| b.contains("Path = ")) {
                let field = |k: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{k} = ")))
                        .unwrap()
                };
                let path = field("Path");
                let node = tree
                    .find(&format!("a.7z/{path}"))
                    .unwrap_or_else(|| panic!("{rel}: {path} missing"));
                if field("Attributes").starts_with('D') {
                    assert_eq!(node.kind, EntryKind::Dir, "{rel}: {path}");
                } else {
                    let size: usize = field("Size").parse().unwrap();
                    assert_eq!(node.data.len(), size, "{rel}: {path}");
                    let want = std::fs::read(dir.path().join(path)).unwrap();
                    assert_eq!(&node.data[..], &want[..], "{rel}: {path}");
                }
                listed += 1;
            }
            assert!(listed > 0);
            assert_eq!(root.children.len(), listed, "{rel}");
        }
        // Inside a flash dump: carved with its exact extent, bytes after it left alone.
        let mut flash = vec![0xFFu8; 4096];
        flash.extend_from_slice(&data);
        flash.extend_from_slice(&[0xFF; 4096]);
        let tree = run(flash, "f");
        assert_eq!(tree.find("f/0x1000.7z").unwrap().data.len(), data.len());
    }
}
