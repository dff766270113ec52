//! YAFFS2: images from fwsim's writer round-trip in every usual geometry and both byte orders,
//! the log is replayed (latest chunk wins, deleted objects vanish, sizes are honoured), the real
//! samples list what their sources hold, and hostile variants stop without panicking.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::synth::yaffs2::{self, DELETED, Geometry, Kind, ROOT, Tags, Writer, Yaffs2Node};
use fwsim::unpack::{EntryKind, Limits, Node, Tree, unpack};

use crate::common::sample;

fn unpack_bytes(data: Vec<u8>, name: &str) -> Tree {
    unpack(Bytes::from(data), name.as_bytes(), &Limits::default())
}

fn node<'t>(tree: &'t Tree, path: &str) -> &'t Node {
    tree.nodes()
        .iter()
        .find(|n| n.path == path.as_bytes())
        .unwrap_or_else(|| panic!("{path} not listed"))
}

/// Entries listed directly under the root: path → (kind, size of files).
fn listing(tree: &Tree) -> BTreeMap<String, (&'static str, Option<usize>)> {
    let root = tree.root().unwrap();
    let prefix = format!("{}/", String::from_utf8_lossy(&root.path));
    tree.nodes()
        .iter()
        .filter(|n| n.parent == Some(0))
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

fn assert_yaffs2(tree: &Tree) {
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("yaffs2"), "{:?}", root.error);
    assert!(root.error.is_none(), "{:?}", root.error);
    for n in tree.nodes().iter().filter(|n| n.parent == Some(0)) {
        assert!(n.error.is_none(), "{:?}", n.error);
    }
}

fn fixture() -> Vec<(&'static str, Yaffs2Node)> {
    let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    vec![
        ("bin/busybox", Yaffs2Node::File(big, 0o755)),
        ("bin/sh", Yaffs2Node::Symlink(b"busybox".to_vec())),
        (
            "etc/passwd",
            Yaffs2Node::File(b"root:x:0:0::/root:/bin/sh\n".to_vec(), 0o644),
        ),
        ("etc/empty", Yaffs2Node::File(Vec::new(), 0o600)),
        // Exactly one 512-byte chunk: the boundary case of the smallest geometry.
        ("etc/one_chunk", Yaffs2Node::File(vec![0x5A; 512], 0o644)),
        ("etc/passwd.lnk", Yaffs2Node::Hardlink("etc/passwd".into())),
        // ttyS0 (4, 64) and mtdblock3 (31, 3) as the kernel's dev_t; a FIFO.
        ("dev/ttyS0", Yaffs2Node::Special(0o020620, 4 << 8 | 64)),
        ("dev/mtdblock3", Yaffs2Node::Special(0o060640, 31 << 8 | 3)),
        ("dev/initctl", Yaffs2Node::Special(0o010600, 0)),
        ("var/run", Yaffs2Node::Dir),
    ]
}

fn geometries() -> Vec<Geometry> {
    let mut out = Vec::new();
    for big_endian in [false, true] {
        for (page, tags) in [
            (
                512,
                Tags::Spare {
                    size: 16,
                    offset: 0,
                },
            ),
            (
                2048,
                Tags::Spare {
                    size: 64,
                    offset: 0,
                },
            ),
            (
                2048,
                Tags::Spare {
                    size: 64,
                    offset: 2,
                },
            ),
            (
                4096,
                Tags::Spare {
                    size: 128,
                    offset: 2,
                },
            ),
            (2048, Tags::Inband),
        ] {
            out.push(Geometry {
                page,
                tags,
                big_endian,
                pages_per_block: 64,
            });
        }
    }
    out
}

#[test]
fn yaffs2_round_trips_every_kind_in_every_geometry() {
    let items = fixture();
    for geo in geometries() {
        let img = yaffs2::build(geo, &items).unwrap();
        let tree = unpack_bytes(img.clone(), "y.img");
        assert_yaffs2(&tree);
        let meta = &tree.root().unwrap().format_meta;
        let (spare, inband) = match geo.tags {
            Tags::Spare { size, .. } => (size, false),
            Tags::Inband => (0, true),
        };
        assert_eq!(meta["page_size"], geo.page, "{geo:?}");
        assert_eq!(meta["spare_size"], spare, "{geo:?}");
        assert_eq!(meta["inband_tags"], inband, "{geo:?}");
        assert_eq!(
            meta["endian"],
            if geo.big_endian { "big" } else { "little" }
        );
        // The image is the filesystem: nothing is left over to carve.
        assert!(tree.root().unwrap().gaps.is_empty(), "{geo:?}");
        for (path, item) in &items {
            let n = node(&tree, &format!("y.img/{path}"));
            match item {
                Yaffs2Node::Dir => assert_eq!(n.mode, Some(0o040755), "{path}"),
                Yaffs2Node::File(data, mode) => {
                    assert!(n.data[..] == data[..], "{path} in {geo:?}");
                    assert_eq!(n.mode, Some(0o100000 | mode), "{path}");
                }
                Yaffs2Node::Symlink(t) => {
                    assert_eq!(n.kind, EntryKind::Symlink { target: t.clone() })
                }
                Yaffs2Node::Hardlink(t) => assert_eq!(
                    n.kind,
                    EntryKind::Hardlink {
                        target: t.as_bytes().to_vec()
                    }
                ),
                Yaffs2Node::Special(mode, _) => {
                    assert_eq!(n.kind, EntryKind::Device, "{path}");
                    assert_eq!(n.mode, Some(*mode), "{path}");
                }
            }
        }
        assert_eq!(node(&tree, "y.img/dev/ttyS0").meta["device"], "4,64");
        assert_eq!(node(&tree, "y.img/dev/mtdblock3").meta["device"], "31,3");
        let l = listing(&tree);
        assert_eq!(l["bin"], ("dir", None));
        assert_eq!(
            l.len(),
            items.len() + 4,
            "bin, etc, dev and var are implied"
        );
    }
}

/// YAFFS2 is a log: a rewritten chunk in a later block replaces the earlier one, a header written
/// later with a smaller size truncates the file, and an object moved to the deleted directory is
/// gone, whatever order the pages come in.
#[test]
fn the_log_is_replayed_latest_first() {
    let geo = Geometry {
        pages_per_block: 8,
        ..Geometry::nand2k(false)
    };
    let mut w = Writer::new(geo).unwrap();
    w.header(257, ROOT, b"etc", &Kind::Dir, 0o755);
    let v1: Vec<u8> = vec![b'1'; 5000];
    w.file(258, 257, b"config", &v1, 0o644);
    w.file(259, 257, b"gone", b"deleted soon", 0o644);
    w.file(260, ROOT, b"log", &[b'L'; 3000], 0o644);
    w.next_block();
    // Chunk 2 of config rewritten, then its header with the size cut to 3000 bytes.
    w.data(258, 2, &[b'2'; 2048]);
    w.header(258, 257, b"config", &Kind::File(3000), 0o600);
    w.header(259, DELETED, b"deleted", &Kind::File(0), 0o644);
    // log renamed into etc.
    w.header(260, 257, b"log.old", &Kind::File(3000), 0o644);
    let img = w.finish();

    let tree = unpack_bytes(img, "y");
    assert_yaffs2(&tree);
    let mut want = vec![b'1'; 2048];
    want.extend_from_slice(&[b'2'; 952]);
    let config = node(&tree, "y/etc/config");
    assert!(config.data[..] == want[..]);
    assert_eq!(config.mode, Some(0o100600));
    assert_eq!(&node(&tree, "y/etc/log.old").data[..], &[b'L'; 3000][..]);
    let l = listing(&tree);
    assert_eq!(
        l.keys().collect::<Vec<_>>(),
        ["etc", "etc/config", "etc/log.old"]
    );
    assert_eq!(tree.root().unwrap().format_meta["skipped_deleted"], 1);
}

/// A YAFFS2 partition inside a flash dump is carved at its offset.
#[test]
fn yaffs2_is_carved_from_a_flash_dump() {
    let fs = yaffs2::build(Geometry::nand2k(true), &fixture()).unwrap();
    let mut dump: Vec<u8> = (0..0x2_0000u32).map(|i| (i % 13) as u8 + 0x20).collect();
    let at = dump.len() as u64;
    dump.extend_from_slice(&fs);
    let tree = unpack_bytes(dump, "flash.bin");
    let region = node(&tree, &format!("flash.bin/{at:#x}.yaffs2"));
    assert_eq!(region.format, Some("yaffs2"));
    assert_eq!(region.data.len(), fs.len());
    assert_eq!(
        &node(&tree, &format!("flash.bin/{at:#x}.yaffs2/etc/passwd")).data[..],
        b"root:x:0:0::/root:/bin/sh\n"
    );
}

/// binwalk's vector is a YAFFS2 image (2 KiB pages, 64-byte spare, tags at its start) of the
/// yaffs2 utilities' own sources; the names and sizes are those its object headers state, and
/// every file is the complete C source (it opens with the licence comment and ends its last line).
#[test]
fn binwalk_yaffs2_sample_holds_the_yaffs_utils_sources() {
    let Some(p) = sample("ReFirmLabs__binwalk/tests/inputs/yaffs2.bin") else {
        return;
    };
    let tree = unpack_bytes(std::fs::read(p).unwrap(), "y.bin");
    assert_yaffs2(&tree);
    let meta = &tree.root().unwrap().format_meta;
    assert_eq!(meta["page_size"], 2048);
    assert_eq!(meta["spare_size"], 64);
    assert_eq!(meta["tags_offset"], 0);
    let want: BTreeMap<String, (&str, Option<usize>)> = [
        ("mkyaffs2image.c", 15107),
        ("mkyaffsimage.c", 13967),
        ("yaffs_ecc.c", 7143),
        ("yaffs_ecc.h", 1440),
        ("yaffs_guts.h", 27266),
        ("yaffs_hweight.c", 1689),
        ("yaffs_hweight.h", 656),
        ("yaffs_list.h", 3086),
        ("yaffs_packedtags2.c", 5169),
        ("yaffs_packedtags2.h", 1447),
        ("yaffs_trace.h", 1769),
        ("yportenv.h", 4903),
        ("yutilsenv.h", 844),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_owned(), ("file", Some(s))))
    .collect();
    assert_eq!(listing(&tree), want);
    for name in want.keys() {
        let n = node(&tree, &format!("y.bin/{name}"));
        let text = std::str::from_utf8(&n.data).unwrap();
        assert!(text.starts_with("/*"), "{name}");
        assert!(text.ends_with('\n'), "{name}");
    }
    assert!(
        std::str::from_utf8(&node(&tree, "y.bin/yaffs_packedtags2.h").data)
            .unwrap()
            .contains("struct yaffs_packed_tags2_tags_only")
    );
}

/// FACT's two YAFFS2 images (little- and big-endian, tags after the bad-block marker) hold its
/// shared test set, the same files its romfs and squashfs test images hold.
#[test]
fn fact_yaffs2_samples_hold_facts_test_files_in_both_byte_orders() {
    for (file, endian) in [("yaffs2_le.img", "little"), ("yaffs2_be.img", "big")] {
        let Some(p) = sample(&format!(
            "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/yaffs/test/data/{file}"
        )) else {
            return;
        };
        let tree = unpack_bytes(std::fs::read(p).unwrap(), "r");
        assert_yaffs2(&tree);
        let meta = &tree.root().unwrap().format_meta;
        assert_eq!(meta["endian"], endian);
        assert_eq!(meta["tags_offset"], 2);
        assert_eq!(
            listing(&tree),
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
            &node(&tree, "r/generic folder/test file 3_.txt").data[..],
            b"The third test file!"
        );
    }
}

#[test]
fn yaffs2_lies_and_cycles_are_contained() {
    let geo = Geometry::nand2k(false);
    let mut w = Writer::new(geo).unwrap();
    w.file(257, ROOT, b"ok", b"fine", 0o644);
    // A file claiming 4 GiB with one chunk present.
    w.header(258, ROOT, b"huge", &Kind::File(1 << 32), 0o644);
    w.data(258, 1, b"x");
    // Two directories that are each other's parent, with a file inside.
    w.header(259, 260, b"a", &Kind::Dir, 0o755);
    w.header(260, 259, b"b", &Kind::Dir, 0o755);
    w.file(261, 259, b"inside", b"lost", 0o644);
    // A hard link to an object that does not exist; a name that escapes.
    w.header(262, ROOT, b"link", &Kind::Hardlink(9999), 0);
    w.file(263, ROOT, b"..", b"up", 0o644);
    let img = w.finish();
    let started = Instant::now();
    let tree = unpack_bytes(img, "y");
    assert!(started.elapsed() < Duration::from_secs(5));
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("yaffs2"));
    assert_eq!(&node(&tree, "y/ok").data[..], b"fine");
    assert!(node(&tree, "y/huge").error.is_some());
    assert!(node(&tree, "y/link").error.is_some());
    assert_eq!(node(&tree, "y/..").meta["unsafe_path"], true);
    assert_eq!(root.format_meta["orphans"], 3, "a, b and inside");
}

#[test]
fn truncated_and_bit_flipped_yaffs2_never_panic() {
    let limits = Limits {
        time_budget: Duration::from_secs(20),
        ..Limits::default()
    };
    let small: Vec<(&str, Yaffs2Node)> = vec![
        ("a", Yaffs2Node::File(b"alpha".to_vec(), 0o644)),
        ("d/b", Yaffs2Node::File(vec![7u8; 3000], 0o644)),
        ("d/l", Yaffs2Node::Symlink(b"../a".to_vec())),
    ];
    for geo in [
        Geometry::nand2k(false),
        Geometry {
            page: 512,
            tags: Tags::Spare {
                size: 16,
                offset: 0,
            },
            big_endian: true,
            pages_per_block: 32,
        },
    ] {
        let img = yaffs2::build(geo, &small).unwrap();
        let started = Instant::now();
        for cut in (0..img.len()).step_by((img.len() / 64).max(1)) {
            let _ = unpack(Bytes::copy_from_slice(&img[..cut]), b"d", &limits);
        }
        for (i, pos) in (0..img.len()).step_by((img.len() / 400).max(1)).enumerate() {
            let mut bad = img.clone();
            bad[pos] ^= [0x01, 0x80, 0xFF, 0x10][i % 4];
            let _ = unpack(Bytes::from(bad), b"d", &limits);
        }
        assert!(started.elapsed() < Duration::from_secs(120));
    }
}
