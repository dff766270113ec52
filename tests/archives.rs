//! Archives (zip and Dahua `.bin`, tar, cpio): round trips of fixtures built in code, the real
//! samples checked against the reference tools' listings, bombs stopped at their limits, zip-slip
//! names flagged, and truncated or bit-flipped archives that never panic.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::unpack::{EntryKind, LimitError, Limits, Node, Tree, UnpackError, unpack};

use crate::common::{
    self,
    archives::{self, CpioKind, Item, RawEntry, RawZip},
};

fn run(data: Vec<u8>, name: &str) -> Tree {
    unpack(Bytes::from(data), name.as_bytes(), &Limits::default())
}

/// The entries of the container at `path` (a container's entries are its direct children, named
/// relative to it).
fn listing<'t>(tree: &'t Tree, path: &str) -> BTreeMap<String, &'t Node> {
    let parent = tree
        .nodes()
        .iter()
        .find(|n| n.path == path.as_bytes())
        .unwrap_or_else(|| panic!("no node {path}"));
    let prefix = format!("{path}/");
    parent
        .children
        .iter()
        .map(|&c| {
            let n = tree.get(c).unwrap();
            let p = String::from_utf8_lossy(&n.path).into_owned();
            (p.strip_prefix(&prefix).unwrap().to_owned(), n)
        })
        .collect()
}

fn target(n: &Node) -> &[u8] {
    match &n.kind {
        EntryKind::Symlink { target } | EntryKind::Hardlink { target } => target,
        other => panic!(
            "{} is {other:?}, not a link",
            String::from_utf8_lossy(&n.path)
        ),
    }
}

/// The fixture items, checked against what was listed under `root` (directories may be listed
/// without their trailing `/`).
fn assert_items(tree: &Tree, root: &str, items: &[Item], modes: bool) {
    let list = listing(tree, root);
    for item in items {
        match item {
            Item::File(name, data, mode) => {
                let n = list
                    .get(*name)
                    .unwrap_or_else(|| panic!("{name} missing: {list:?}"));
                assert_eq!(n.kind, EntryKind::File, "{name}");
                assert_eq!(&n.data[..], &data[..], "{name} bytes");
                assert!(n.error.is_none(), "{name}: {:?}", n.error);
                if modes {
                    assert_eq!(n.mode.map(|m| m & 0o7777), Some(*mode), "{name} mode");
                }
            }
            Item::Dir(name) => {
                let n = list
                    .get(name.trim_end_matches('/'))
                    .unwrap_or_else(|| panic!("{name} missing: {list:?}"));
                assert_eq!(n.kind, EntryKind::Dir, "{name}");
            }
            Item::Symlink(name, to) => {
                let n = list.get(*name).unwrap_or_else(|| panic!("{name} missing"));
                assert_eq!(target(n), to.as_bytes(), "{name} target");
            }
        }
    }
}

// ---------------------------------------------------------------- zip

#[test]
fn zip_round_trips_names_bytes_modes_and_links() {
    let items = archives::sample_items();
    for deflate in [false, true] {
        let z = archives::zip_with_crate(&items, deflate, "built by the zip crate");
        let tree = run(z, "fw.zip");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("zip"));
        assert!(root.error.is_none(), "{:?}", root.error);
        assert_eq!(root.format_meta["entries"], 5);
        assert_eq!(root.format_meta["comment"], "built by the zip crate");
        assert_eq!(root.format_meta["signature"], "PK");
        assert_items(&tree, "fw.zip", &items, true);
        let busybox = tree.find("fw.zip/bin/busybox").unwrap();
        assert_eq!(
            busybox.meta["method"],
            if deflate { "deflate" } else { "stored" }
        );
        assert_eq!(busybox.meta["crc_ok"], true);
        assert_eq!(busybox.origin.as_ref().unwrap().container, "zip");
    }
}

#[test]
fn zip_methods_bzip2_lzma_zstd_xz_decode() {
    let plain = b"camera firmware payload ".repeat(500);
    let bz = {
        use std::io::Write;
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        e.write_all(&plain).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let xz = {
        use std::io::Write;
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(&plain).unwrap();
        e.finish().unwrap()
    };
    let mut lzma = RawEntry::new("m14.bin", 14, &plain, archives::zip_lzma(&plain));
    lzma.flags = 1 << 1;
    let z = RawZip {
        entries: vec![
            RawEntry::new("m8.bin", 8, &plain, archives::deflate(&plain)),
            RawEntry::new("m12.bin", 12, &plain, bz),
            lzma,
            RawEntry::new("m93.bin", 93, &plain, zst),
            RawEntry::new("m95.bin", 95, &plain, xz),
            RawEntry::new("m9.bin", 9, &plain, vec![1, 2, 3]),
        ],
        aliases_of_first: 0,
        comment: Vec::new(),
    }
    .build();
    let tree = run(z, "m.zip");
    for (name, method) in [
        ("m8.bin", "deflate"),
        ("m12.bin", "bzip2"),
        ("m14.bin", "lzma"),
        ("m93.bin", "zstd"),
        ("m95.bin", "xz"),
    ] {
        let n = tree.find(&format!("m.zip/{name}")).unwrap();
        assert!(n.error.is_none(), "{name}: {:?}", n.error);
        assert_eq!(&n.data[..], &plain[..], "{name}");
        assert_eq!(n.meta["method"], method);
        assert_eq!(n.meta["crc_ok"], true);
    }
    let d64 = tree.find("m.zip/m9.bin").unwrap();
    assert!(
        matches!(&d64.error, Some(UnpackError::Unsupported(m)) if m.contains("deflate64")),
        "{:?}",
        d64.error
    );
    assert!(tree.root().unwrap().error.is_none());
}

#[test]
fn zip64_entries_are_read_through_their_extra_fields() {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    w.start_file("big-in-spirit.bin", o).unwrap();
    w.write_all(&b"zip64 sized entry ".repeat(100)).unwrap();
    let z = w.finish().unwrap().into_inner();
    // The fixture really is ZIP64: a local header carrying a ZIP64 extra field (id 1).
    let extra_len = u16::from_le_bytes([z[28], z[29]]) as usize;
    let name_len = u16::from_le_bytes([z[26], z[27]]) as usize;
    assert!(extra_len >= 20 && z[30 + name_len..32 + name_len] == [1, 0]);
    let tree = run(z, "z64.zip");
    let root = tree.root().unwrap();
    assert!(root.error.is_none(), "{:?}", root.error);
    let n = tree.find("z64.zip/big-in-spirit.bin").unwrap();
    assert!(n.error.is_none(), "{:?}", n.error);
    assert_eq!(&n.data[..], &b"zip64 sized entry ".repeat(100)[..]);
}

#[test]
fn dahua_bin_is_a_zip_with_dh_signatures() {
    let items = archives::sample_items();
    let z = archives::zip_with_crate(&items, true, "");
    for all in [false, true] {
        let bin = archives::dahua_from_zip(&z, all);
        assert_eq!(&bin[..4], b"DH\x03\x04");
        let tree = run(bin, "update.bin");
        let root = tree.root().unwrap();
        assert_eq!(
            root.format,
            Some("dahua"),
            "provenance names the Dahua flavour"
        );
        assert_eq!(root.format_meta["signature"], "DH");
        assert_eq!(root.format_meta["central_directory"], true);
        assert!(root.error.is_none(), "{:?}", root.error);
        assert_items(&tree, "update.bin", &items, true);
        assert_eq!(
            tree.find("update.bin/etc/passwd")
                .unwrap()
                .origin
                .as_ref()
                .unwrap()
                .container,
            "dahua"
        );
    }
}

#[test]
fn zip_inside_a_larger_blob_is_carved_to_its_true_extent() {
    let items = archives::sample_items();
    let z = archives::zip_with_crate(&items, true, "trailing comment");
    let mut blob = vec![0x5Au8; 0x300];
    blob.extend_from_slice(&z);
    blob.extend_from_slice(&[0xA5; 0x200]);
    let tree = run(blob, "flash.bin");
    let region = tree
        .find("flash.bin/0x300.zip")
        .expect("zip carved at its offset");
    assert_eq!(
        region.data.len(),
        z.len(),
        "extent ends after the end record and comment"
    );
    assert_eq!(&region.data[..], &z[..]);
    assert_items(&tree, "flash.bin/0x300.zip", &items, true);
}

#[test]
fn zip_appended_with_adjusted_offsets_is_read() {
    // As `zip -A` leaves a self-extracting archive: offsets count from the outer file's start.
    let d = b"appended payload".to_vec();
    let z = RawZip {
        entries: vec![
            RawEntry::new("one", 0, &d, d.clone()),
            RawEntry::new("two", 8, &d, archives::deflate(&d)),
        ],
        aliases_of_first: 0,
        comment: Vec::new(),
    }
    .build();
    let prefix = 0x200usize;
    let mut blob = vec![0x5Au8; prefix];
    blob.extend_from_slice(&z);
    let eocd = blob.len() - 22;
    let cd = u32::from_le_bytes(blob[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    blob[eocd + 16..eocd + 20].copy_from_slice(&((cd + prefix) as u32).to_le_bytes());
    let mut pos = prefix + cd;
    while &blob[pos..pos + 4] == b"PK\x01\x02" {
        let off = u32::from_le_bytes(blob[pos + 42..pos + 46].try_into().unwrap()) as usize;
        blob[pos + 42..pos + 46].copy_from_slice(&((off + prefix) as u32).to_le_bytes());
        let n = u16::from_le_bytes([blob[pos + 28], blob[pos + 29]]) as usize;
        pos += 46 + n;
    }
    let tree = run(blob, "sfx.bin");
    let region = tree.find("sfx.bin/0x200.zip").expect("zip carved");
    assert!(region.error.is_none(), "{:?}", region.error);
    assert_eq!(region.format_meta["offset_shift"], 0x200);
    assert_eq!(region.format_meta["central_directory"], true);
    for name in ["one", "two"] {
        let n = tree.find(&format!("sfx.bin/0x200.zip/{name}")).unwrap();
        assert_eq!(&n.data[..], &d[..], "{name}");
    }
}

#[test]
fn zip_bad_crc_is_an_entry_error_not_a_failed_archive() {
    let good = b"good entry".to_vec();
    let mut bad = RawEntry::new("bad.txt", 0, b"original", b"tampered".to_vec());
    bad.mode = 0o100_600;
    let z = RawZip {
        entries: vec![RawEntry::new("good.txt", 0, &good, good.clone()), bad],
        aliases_of_first: 0,
        comment: Vec::new(),
    }
    .build();
    let tree = run(z, "c.zip");
    assert!(tree.root().unwrap().error.is_none());
    let g = tree.find("c.zip/good.txt").unwrap();
    assert_eq!(g.meta["crc_ok"], true);
    assert!(g.error.is_none());
    let b = tree.find("c.zip/bad.txt").unwrap();
    assert_eq!(b.meta["crc_ok"], false);
    assert!(
        matches!(&b.error, Some(UnpackError::Corrupt(m)) if m.contains("CRC-32")),
        "{:?}",
        b.error
    );
}

#[test]
fn encrypted_entries_are_unsupported_per_entry() {
    let mut enc = RawEntry::new("secret.bin", 8, b"x", vec![0xEE; 40]);
    enc.flags = 1;
    let plain = b"readable".to_vec();
    let z = RawZip {
        entries: vec![enc, RawEntry::new("readme", 0, &plain, plain.clone())],
        aliases_of_first: 0,
        comment: Vec::new(),
    }
    .build();
    let tree = run(z, "e.zip");
    let s = tree.find("e.zip/secret.bin").unwrap();
    assert!(
        matches!(&s.error, Some(UnpackError::Unsupported(m)) if m.contains("encrypted")),
        "{:?}",
        s.error
    );
    assert_eq!(s.meta["encrypted"], true);
    assert_eq!(&tree.find("e.zip/readme").unwrap().data[..], b"readable");
}

#[test]
fn zip_slip_names_are_listed_as_is_but_flagged() {
    let d = b"x".to_vec();
    let z = RawZip {
        entries: vec![
            RawEntry::new("../../etc/passwd", 0, &d, d.clone()),
            RawEntry::new("/abs/path", 0, &d, d.clone()),
            RawEntry::new("fine/name", 0, &d, d.clone()),
        ],
        aliases_of_first: 0,
        comment: Vec::new(),
    }
    .build();
    let tree = run(z, "slip.zip");
    let up = tree
        .find("slip.zip/../../etc/passwd")
        .expect("listed as the archive says");
    assert_eq!(up.meta["unsafe_path"], true);
    assert_eq!(
        tree.find("slip.zip/abs/path").unwrap().meta["unsafe_path"],
        true
    );
    assert!(
        tree.find("slip.zip/fine/name")
            .unwrap()
            .meta
            .get("unsafe_path")
            .is_none()
    );
}

#[test]
fn zip_bomb_stops_quickly_at_the_ratio_limit() {
    // 16 MiB of zeros deflated (about 16 KiB): once with an honest size in the directory, once
    // claiming 1000 bytes, so both the pre-check and the bounded decoder are exercised.
    let zeros = vec![0u8; 16 << 20];
    let packed = archives::deflate(&zeros);
    let mut liar = RawEntry::new("liar", 8, &zeros, packed.clone());
    liar.size = 1000;
    let honest = RawEntry::new("honest", 8, &zeros, packed);
    drop(zeros);
    let limits = Limits {
        max_ratio: 10,
        ratio_floor_bytes: 1 << 20,
        ..Limits::default()
    };
    for (first, second) in [(&liar, &honest), (&honest, &liar)] {
        let z = RawZip {
            entries: vec![first.clone(), second.clone()],
            aliases_of_first: 0,
            comment: Vec::new(),
        }
        .build();
        let t = Instant::now();
        let tree = unpack(Bytes::from(z), b"bomb.zip", &limits);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let root = tree.root().unwrap();
        assert!(
            matches!(
                root.error,
                Some(UnpackError::Limit(LimitError::Ratio { max: 10, .. }))
            ),
            "{:?}",
            root.error
        );
        for name in ["liar", "honest"] {
            let n = tree.find(&format!("bomb.zip/{name}")).unwrap();
            assert!(n.error.is_some(), "{name}");
            assert!(n.data.is_empty(), "{name}");
        }
        let first_error = &tree
            .find(&format!(
                "bomb.zip/{}",
                String::from_utf8_lossy(&first.name)
            ))
            .unwrap()
            .error;
        assert!(
            matches!(
                first_error,
                Some(UnpackError::Limit(LimitError::Ratio { .. }))
            ),
            "{first_error:?}"
        );
    }
}

#[test]
fn overlapping_entry_bomb_is_refused_without_decompressing() {
    // One deflated kernel that every central directory record points at (Fifield's overlap).
    let kernel = vec![0u8; 8 << 20];
    let packed = archives::deflate(&kernel);
    let mut e = RawEntry::new("kernel", 8, &kernel, packed);
    e.crc = crc32fast::hash(&kernel);
    let z = RawZip {
        entries: vec![e],
        aliases_of_first: 250,
        comment: Vec::new(),
    }
    .build();
    let t = Instant::now();
    let tree = run(z, "overlap.zip");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let root = tree.root().unwrap();
    assert!(
        matches!(&root.error, Some(UnpackError::Corrupt(m)) if m.contains("overlap")),
        "{:?}",
        root.error
    );
    let alias = tree.find("overlap.zip/alias7").unwrap();
    assert!(alias.data.is_empty());
    assert!(matches!(&alias.error, Some(UnpackError::Corrupt(m)) if m.contains("overlaps")));
    // The aliases never reached the decompressor: at most the first entry was inflated.
    let total: usize = tree.nodes().iter().skip(1).map(|n| n.data.len()).sum();
    assert!(total <= 8 << 20, "{total}");
}

#[test]
fn a_million_claimed_entries_are_capped_by_the_directory_size() {
    let d = b"x".to_vec();
    let mut z = RawZip {
        entries: vec![RawEntry::new("a", 0, &d, d.clone())],
        aliases_of_first: 0,
        comment: Vec::new(),
    }
    .build();
    // Claim 1e6 entries (ZIP64) in a 20-byte record: rewrite the end record as a ZIP64 one.
    let eocd = z.len() - 22;
    let cd_size = u32::from_le_bytes(z[eocd + 12..eocd + 16].try_into().unwrap()) as u64;
    let cd = u32::from_le_bytes(z[eocd + 16..eocd + 20].try_into().unwrap()) as u64;
    let tail = z.split_off(eocd);
    let rec64 = z.len() as u64;
    z.extend_from_slice(b"PK\x06\x06");
    z.extend_from_slice(&44u64.to_le_bytes());
    z.extend_from_slice(&[45, 3, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend_from_slice(&1_000_000u64.to_le_bytes());
    z.extend_from_slice(&1_000_000u64.to_le_bytes());
    z.extend_from_slice(&cd_size.to_le_bytes());
    z.extend_from_slice(&cd.to_le_bytes());
    z.extend_from_slice(b"PK\x06\x07\0\0\0\0");
    z.extend_from_slice(&rec64.to_le_bytes());
    z.extend_from_slice(&1u32.to_le_bytes());
    let mut end = tail;
    end[8..10].copy_from_slice(&[0xFF, 0xFF]);
    end[10..12].copy_from_slice(&[0xFF, 0xFF]);
    z.extend_from_slice(&end);
    let t = Instant::now();
    let tree = run(z, "many.zip");
    assert!(t.elapsed() < Duration::from_secs(2));
    let root = tree.root().unwrap();
    assert!(
        matches!(&root.error, Some(UnpackError::Corrupt(m)) if m.contains("1000000 entries")),
        "{:?}",
        root.error
    );
}

#[test]
fn entry_floods_stop_at_the_entry_limit() {
    let d = Vec::new();
    let entries = (0..5000)
        .map(|i| {
            let mut e = RawEntry::new("f", 0, &d, Vec::new());
            e.name = format!("f{i}").into_bytes();
            e
        })
        .collect();
    let z = RawZip {
        entries,
        aliases_of_first: 0,
        comment: Vec::new(),
    }
    .build();
    let limits = Limits {
        max_entries: 1000,
        ..Limits::default()
    };
    let tree = unpack(Bytes::from(z), b"flood.zip", &limits);
    let root = tree.root().unwrap();
    assert!(
        matches!(
            root.error,
            Some(UnpackError::Limit(LimitError::Entries { max: 1000 }))
        ),
        "{:?}",
        root.error
    );
    assert!(tree.nodes().len() <= 1001);
}

#[test]
fn a_flood_of_local_headers_without_directory_stays_linear() {
    // 3000 plausible one-entry "archives" separated by junk and no end record anywhere: each
    // candidate looks for its directory only as far as its own entries reach.
    let mut blob = Vec::new();
    let mut x = 12345u32;
    for i in 0..3000 {
        let d = b"hello".to_vec();
        let e = RawEntry::new(&format!("f{i}"), 0, &d, d.clone());
        let z = RawZip {
            entries: vec![e],
            aliases_of_first: 0,
            comment: Vec::new(),
        }
        .build();
        // The entry, then a directory record with empty name (so each candidate passes
        // `detect`), then junk.
        let local_len = 30 + format!("f{i}").len() + 5;
        blob.extend_from_slice(&z[..local_len]);
        blob.extend_from_slice(b"PK\x01\x02");
        blob.extend_from_slice(&[0; 42]);
        for _ in 0..4000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            blob.push(b'a' + (x >> 16) as u8 % 16);
        }
    }
    let t = Instant::now();
    let tree = run(blob, "flood.bin");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let zips = tree
        .nodes()
        .iter()
        .filter(|n| n.format == Some("zip"))
        .count();
    assert_eq!(zips, 3000);
    assert!(tree.find("flood.bin/0x0.zip/f0").unwrap().error.is_none());
}

#[test]
fn nested_zips_stop_at_the_depth_limit() {
    let mut z = archives::zip_with_crate(
        &[Item::File("core", b"innermost".to_vec(), 0o644)],
        false,
        "",
    );
    for i in 0..12 {
        let name: &'static str = Box::leak(format!("level{i}.zip").into_boxed_str());
        z = archives::zip_with_crate(&[Item::File(name, z, 0o644)], false, "");
    }
    let limits = Limits {
        max_depth: 6,
        ..Limits::default()
    };
    let tree = unpack(Bytes::from(z), b"nest.zip", &limits);
    let deepest = tree.nodes().iter().map(|n| n.depth).max().unwrap();
    assert_eq!(deepest, 6);
    assert!(
        tree.errors().any(|n| matches!(
            n.error,
            Some(UnpackError::Limit(LimitError::Depth { max: 6 }))
        )),
        "the depth limit is reported"
    );
}

// ---------------------------------------------------------------- tar

const LONG: &str = "very/long/directory/name/that/does/not/fit/in/the/hundred/bytes/of/a/ustar/header/field/at/all/file.txt";
const PAX: &str = "pax/named/file.bin";

#[test]
fn tar_round_trips_long_names_pax_links_and_devices() {
    let items = archives::sample_items();
    let t = archives::tar_with_crate(&items, LONG, PAX);
    let tree = run(t.clone(), "rootfs.tar");
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("tar"));
    assert!(root.error.is_none(), "{:?}", root.error);
    assert_eq!(root.format_meta["end_marker"], true);
    assert_items(&tree, "rootfs.tar", &items, true);
    let list = listing(&tree, "rootfs.tar");
    assert_eq!(&list[LONG].data[..], b"long name");
    assert_eq!(&list[PAX].data[..], b"pax data");
    assert!(!list.contains_key("placeholder"));
    let hard = &list["etc/passwd.hard"];
    assert_eq!(target(hard), b"etc/passwd");
    let dev = &list["dev/console"];
    assert_eq!(dev.kind, EntryKind::Device);
    assert_eq!(
        (dev.meta["major"].clone(), dev.meta["minor"].clone()),
        (5.into(), 1.into())
    );
    assert_eq!(dev.mode, Some(0o020_600));
}

#[test]
fn tar_extent_includes_the_two_zero_blocks() {
    let items = archives::sample_items();
    let t = archives::tar_with_crate(&items, LONG, PAX);
    assert!(t[t.len() - 1024..].iter().all(|&b| b == 0));
    let mut blob = vec![0x11u8; 1000];
    blob.extend_from_slice(&t);
    blob.extend_from_slice(b"not part of the archive, and not zero either");
    let tree = run(blob, "blob");
    let region = tree.find("blob/0x3e8.tar").expect("tar carved");
    assert_eq!(region.data.len(), t.len());
}

#[test]
fn truncated_tar_lists_what_came_before_the_cut() {
    let items = archives::sample_items();
    let t = archives::tar_with_crate(&items, LONG, PAX);
    // Cut inside bin/busybox's data (its header is the third block group).
    let cut = t.windows(11).position(|w| w == b"\x7fELF fake b").unwrap() + 100;
    let tree = run(t[..cut].to_vec(), "cut.tar");
    let root = tree.root().unwrap();
    assert!(
        matches!(root.error, Some(UnpackError::Truncated(_))),
        "{:?}",
        root.error
    );
    assert_eq!(
        &tree.find("cut.tar/etc/passwd").unwrap().data[..],
        b"root:x:0:0:root:/root:/bin/sh\n"
    );
    assert!(matches!(
        tree.find("cut.tar/bin/busybox").unwrap().error,
        Some(UnpackError::Truncated(_))
    ));
}

#[test]
fn tar_with_a_corrupted_header_keeps_the_entries_around_it() {
    let items = archives::sample_items();
    let mut t = archives::tar_with_crate(&items, LONG, PAX);
    // Damage the header of bin/busybox (a name byte, so only the checksum can tell).
    let at = t.windows(11).position(|w| w == b"bin/busybox").unwrap();
    t[at] = b'B';
    let tree = run(t, "bad.tar");
    assert_eq!(tree.root().unwrap().format, Some("carve"));
    // The archive up to the damaged header, with the error on it...
    let first = tree.find("bad.tar/0x0.tar").unwrap();
    assert!(
        matches!(&first.error, Some(UnpackError::Corrupt(m)) if m.contains("checksum")),
        "{:?}",
        first.error
    );
    assert!(tree.find("bad.tar/0x0.tar/etc/passwd").is_some());
    assert!(!tree.nodes().iter().any(|n| n.path.ends_with(b"busybox")));
    // ...and carving picks the archive up again at the next intact header.
    let rest = tree
        .nodes()
        .iter()
        .find(|n| n.path.ends_with(b"/empty"))
        .expect("entries after the damage are recovered");
    let region = tree.get(rest.parent.unwrap()).unwrap();
    assert_eq!(region.format, Some("tar"));
    assert!(region.error.is_none());
    assert!(
        tree.nodes()
            .iter()
            .any(|n| n.path.ends_with(PAX.as_bytes()))
    );
}

// ---------------------------------------------------------------- cpio

#[test]
fn cpio_newc_crc_odc_round_trip() {
    let items = archives::sample_items();
    for (kind, variant) in [
        (CpioKind::Newc, "newc"),
        (CpioKind::Crc, "crc"),
        (CpioKind::Odc, "odc"),
    ] {
        let c = archives::cpio(kind, &archives::cpio_entries(&items));
        let tree = run(c, "initramfs.cpio");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("cpio"), "{variant}");
        assert!(root.error.is_none(), "{variant}: {:?}", root.error);
        assert_eq!(root.format_meta["variant"], variant);
        assert_eq!(root.format_meta["trailer"], true);
        assert_items(&tree, "initramfs.cpio", &items, true);
        if kind == CpioKind::Crc {
            assert_eq!(root.format_meta["bad_checksums"], 0);
            let f = tree.find("initramfs.cpio/etc/passwd").unwrap();
            assert_eq!(f.meta["checksum_ok"], true);
        }
    }
}

#[test]
fn cpio_crc_mismatch_is_reported_on_the_entry() {
    let mut entries = archives::cpio_entries(&archives::sample_items());
    entries.truncate(3);
    let mut c = archives::cpio(CpioKind::Crc, &entries);
    let at = c.windows(4).position(|w| w == b"root").unwrap();
    c[at] = b'R';
    let tree = run(c, "x.cpio");
    let root = tree.root().unwrap();
    assert_eq!(root.format_meta["bad_checksums"], 1);
    let f = tree.find("x.cpio/etc/passwd").unwrap();
    assert_eq!(f.meta["checksum_ok"], false);
    assert!(matches!(&f.error, Some(UnpackError::Corrupt(m)) if m.contains("checksum")));
    assert!(tree.find("x.cpio/bin/busybox").unwrap().error.is_none());
}

#[test]
fn cpio_extent_ends_after_the_trailer_and_hardlinks_resolve() {
    let mut entries = archives::cpio_entries(&[
        Item::File("a", Vec::new(), 0o644),
        Item::File("b", b"shared".to_vec(), 0o644),
    ]);
    for e in &mut entries {
        e.ino = 7;
        e.nlink = 2;
    }
    let mut c = archives::cpio(CpioKind::Newc, &entries);
    let end = c.windows(10).position(|w| w == b"TRAILER!!!").unwrap() + 12;
    let end = end.next_multiple_of(4);
    c.truncate(end);
    let mut blob = c.clone();
    blob.extend_from_slice(b"JUNKJUNKJUNK");
    let tree = run(blob, "blob");
    let region = tree.find("blob/0x0.cpio").expect("cpio carved");
    assert_eq!(region.data.len(), c.len());
    let a = tree.find("blob/0x0.cpio/a").unwrap();
    assert_eq!(target(a), b"b");
    assert_eq!(&tree.find("blob/0x0.cpio/b").unwrap().data[..], b"shared");
}

#[test]
fn truncated_cpio_lists_what_came_before_the_cut() {
    let items = archives::sample_items();
    let c = archives::cpio(CpioKind::Newc, &archives::cpio_entries(&items));
    let cut = c.windows(11).position(|w| w == b"\x7fELF fake b").unwrap() + 50;
    let tree = run(c[..cut].to_vec(), "cut.cpio");
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("cpio"));
    assert!(
        matches!(root.error, Some(UnpackError::Truncated(_))),
        "{:?}",
        root.error
    );
    assert_eq!(root.format_meta["trailer"], false);
    assert_eq!(
        &tree.find("cut.cpio/etc/passwd").unwrap().data[..],
        b"root:x:0:0:root:/root:/bin/sh\n"
    );
    assert!(matches!(
        tree.find("cut.cpio/bin/busybox").unwrap().error,
        Some(UnpackError::Truncated(_))
    ));
}

// ---------------------------------------------------------------- hostile: truncation, bit flips

#[test]
fn truncated_and_bit_flipped_archives_never_panic() {
    let items = archives::sample_items();
    let z = archives::zip_with_crate(&items, true, "c");
    let fixtures = [
        z.clone(),
        archives::dahua_from_zip(&z, true),
        archives::tar_with_crate(&items, LONG, PAX),
        archives::cpio(CpioKind::Newc, &archives::cpio_entries(&items)),
        archives::cpio(CpioKind::Crc, &archives::cpio_entries(&items)),
        archives::cpio(CpioKind::Odc, &archives::cpio_entries(&items)),
    ];
    let limits = Limits {
        time_budget: Duration::from_secs(5),
        ..Limits::default()
    };
    for f in &fixtures {
        let step = (f.len() / 150).max(1);
        for cut in (0..f.len()).step_by(step) {
            let _ = unpack(Bytes::copy_from_slice(&f[..cut]), b"t", &limits);
        }
        for (i, pos) in (0..f.len()).step_by(step).enumerate() {
            let mut g = f.clone();
            g[pos] ^= 1 << (i % 8);
            let _ = unpack(Bytes::from(g), b"f", &limits);
            let mut g = f.clone();
            g[pos] = 0xFF;
            let _ = unpack(Bytes::from(g), b"f", &limits);
        }
    }
}

// ---------------------------------------------------------------- real samples

const FACT: &str = "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking";

fn load(rel: &str) -> Option<(Vec<u8>, std::path::PathBuf)> {
    let p = common::sample(rel)?;
    Some((std::fs::read(&p).unwrap(), p))
}

fn names(tree: &Tree, root: &str) -> Vec<String> {
    listing(tree, root).keys().cloned().collect()
}

/// `unzip -Z1` names (directories without their `/`), sorted.
fn unzip_names(path: &Path) -> Vec<String> {
    let out = Command::new("unzip").arg("-Z1").arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn real_dahua_dh_bin_matches_unzip_listing() {
    let Some((data, _)) = load(&format!("{FACT}/dahua/test/data/dh.bin")) else {
        return;
    };
    let tree = run(data.clone(), "dh.bin");
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("dahua"));
    assert!(root.error.is_none(), "{:?}", root.error);
    let ours = names(&tree, "dh.bin");
    assert_eq!(
        ours,
        [
            "get_files_test",
            "get_files_test/generic folder",
            "get_files_test/generic folder/test file 3_.txt",
            "get_files_test/testfile1",
            "get_files_test/testfile2"
        ]
    );
    if common::tool("unzip") {
        // unzip reads it once the first signature says PK again.
        let dir = tempfile::tempdir().unwrap();
        let pk = dir.path().join("dh.zip");
        let mut patched = data;
        patched[..2].copy_from_slice(b"PK");
        std::fs::write(&pk, patched).unwrap();
        assert_eq!(ours, unzip_names(&pk));
    }
    for n in listing(&tree, "dh.bin").values() {
        if n.kind == EntryKind::File {
            assert_eq!(n.meta["crc_ok"], true);
        }
    }
}

#[test]
fn real_product_zips_match_unzip_listing() {
    for rel in [
        "BotoX__DH_IPC-HX4XXX-Eos/pd-x.squashfs.img.extracted/product.zip",
        "BotoX__DH_IPC-HX4XXX-Themis/pd-x.squashfs.img.extracted/product.zip",
    ] {
        let Some((data, path)) = load(rel) else {
            return;
        };
        let tree = run(data, "product.zip");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("zip"), "{rel}");
        assert!(root.error.is_none(), "{rel}: {:?}", root.error);
        let list = listing(&tree, "product.zip");
        assert!(list.len() > 90, "{rel}: {}", list.len());
        assert!(list.values().all(|n| n.error.is_none()), "{rel}");
        if common::tool("unzip") {
            assert_eq!(
                list.keys().cloned().collect::<Vec<_>>(),
                unzip_names(&path),
                "{rel}"
            );
        }
    }
}

#[test]
fn real_binwalk_zip_bin_unpacks_and_recurses() {
    let Some((data, path)) = load("ReFirmLabs__binwalk/tests/inputs/zip.bin") else {
        return;
    };
    let tree = run(data, "zip.bin");
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("zip"));
    assert!(root.error.is_none());
    let inner = tree.find("zip.bin/CH-sys-48.53.64.67.bin").unwrap();
    assert_eq!(inner.data.len(), 612_699);
    assert_eq!(inner.meta["crc_ok"], true);
    assert_eq!(inner.meta["method"], "deflate");
    if common::tool("unzip") {
        assert_eq!(names(&tree, "zip.bin"), unzip_names(&path));
    }
}

#[test]
fn real_truncated_zip_is_a_clear_error_and_the_rest_is_analysed() {
    let Some((data, _)) = load("ReFirmLabs__binwalk/tests/inputs/zip_truncated.bin") else {
        return;
    };
    let len = data.len();
    let tree = run(data, "zip_truncated.bin");
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("zip"));
    assert!(
        matches!(&root.error, Some(UnpackError::Truncated(m)) if m.contains("central directory")),
        "{:?}",
        root.error
    );
    assert_eq!(root.format_meta["central_directory"], false);
    let exe = tree
        .find("zip_truncated.bin/AfuLnx64/AfuLnx64/afulnx_64")
        .unwrap();
    assert!(exe.error.is_none());
    assert_eq!(exe.meta["crc_ok"], true);
    assert!(
        !exe.children.is_empty(),
        "the recovered file is analysed further"
    );
    assert!(root.gaps.iter().all(|g| g.offset + g.len <= len as u64));
}

/// `tar -tvf` as (name, size or link target).
fn tar_listing(path: &Path) -> Vec<(String, String)> {
    let out = Command::new("tar").arg("-tvf").arg(path).output().unwrap();
    assert!(out.status.success());
    let mut v: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let rest = cols[5..].join(" ");
            match rest
                .split_once(" -> ")
                .or_else(|| rest.split_once(" link to "))
            {
                Some((name, to)) => (name.trim_end_matches('/').to_owned(), to.to_owned()),
                None => (rest.trim_end_matches('/').to_owned(), cols[2].to_owned()),
            }
        })
        .collect();
    v.sort();
    v
}

fn our_tar_listing(tree: &Tree, root: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = listing(tree, root)
        .into_iter()
        .map(|(name, n)| {
            let second = match &n.kind {
                EntryKind::Symlink { target } | EntryKind::Hardlink { target } => {
                    String::from_utf8_lossy(target).into_owned()
                }
                _ => n.data.len().to_string(),
            };
            (name, second)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn real_fact_tar_and_cpio_match_the_tools_and_each_other() {
    let Some((tar_data, tar_path)) = load(&format!("{FACT}/patool/test/data/test.tar")) else {
        return;
    };
    let Some((cpio_data, cpio_path)) = load(&format!("{FACT}/patool/test/data/test.cpio")) else {
        return;
    };
    let t = run(tar_data, "test.tar");
    assert_eq!(t.root().unwrap().format, Some("tar"));
    assert!(t.root().unwrap().error.is_none());
    if common::tool("tar") {
        assert_eq!(our_tar_listing(&t, "test.tar"), tar_listing(&tar_path));
    }
    let c = run(cpio_data, "test.cpio");
    let croot = c.root().unwrap();
    assert_eq!(croot.format, Some("cpio"));
    assert_eq!(croot.format_meta["variant"], "binary-le");
    assert!(croot.error.is_none());
    if common::tool("cpio") {
        let out = Command::new("cpio")
            .arg("-it")
            .stdin(std::fs::File::open(&cpio_path).unwrap())
            .output()
            .unwrap();
        let mut theirs: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim_end_matches('/').to_owned())
            .collect();
        theirs.sort();
        assert_eq!(names(&c, "test.cpio"), theirs);
    }
    // Both archives hold the same files: same bytes.
    let tl = listing(&t, "test.tar");
    for (name, n) in listing(&c, "test.cpio") {
        assert_eq!(tl[&name].kind, n.kind, "{name}");
        assert_eq!(tl[&name].data, n.data, "{name}");
    }
}

#[test]
fn real_dirtraversal_tar_is_listed_as_is() {
    let Some((data, path)) =
        load("ReFirmLabs__binwalk/testing/tests/input-vectors/dirtraversal.tar")
    else {
        return;
    };
    let tree = run(data, "dirtraversal.tar");
    assert!(tree.root().unwrap().error.is_none());
    let ours = our_tar_listing(&tree, "dirtraversal.tar");
    assert!(ours.contains(&("foo".to_owned(), "../../".to_owned())));
    assert!(ours.contains(&("bar".to_owned(), "/etc/passwd".to_owned())));
    if common::tool("tar") {
        assert_eq!(ours, tar_listing(&path));
    }
}

#[test]
fn cli_json_names_the_dahua_flavour_and_entry_facts() {
    let Some(path) = common::sample(&format!("{FACT}/dahua/test/data/dh.bin")) else {
        return;
    };
    let entries = common::unpack_json(&path, &[]);
    assert_eq!(entries[0]["format"], "dahua");
    assert_eq!(entries[0]["format_meta"]["signature"], "DH");
    let f = entries
        .iter()
        .find(|e| e["path"] == "dh.bin/get_files_test/testfile1")
        .unwrap();
    assert_eq!(f["formats"], serde_json::json!(["dahua"]));
    assert_eq!(f["size"], 62);
    assert_eq!(f["meta"]["method"], "deflate");
    assert_eq!(f["meta"]["crc_ok"], true);
}
