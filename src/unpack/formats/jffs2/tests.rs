//! Unit tests of the JFFS2 reader on images from the project's writer (`synth::jffs2`): every
//! layout and compression, a file system's history (versions, truncation, deletion, links), and
//! hostile images (version storms, cyclic directories, lying sizes, flipped bytes).

use super::*;
use crate::synth::jffs2::{Compression, Options, ROOT, Writer};
use crate::unpack::tree::EntryKind;
use crate::unpack::{Budget, LimitError, Limits};

fn text(n: usize) -> Vec<u8> {
    (0..n as u32)
        .flat_map(|i| format!("line {i}: camera.conf value={}\n", i % 97).into_bytes())
        .take(n)
        .collect()
}

fn lzo(data: &[u8]) -> Vec<u8> {
    lzokay_native::compress(data).unwrap()
}

fn unpack_image(img: Vec<u8>) -> Unpacked {
    let budget = Budget::new(Limits::default());
    Jffs2.unpack(&Bytes::from(img), &Ctx::new(&budget)).unwrap()
}

fn child<'a>(u: &'a Unpacked, path: &str) -> &'a crate::unpack::Child {
    u.children
        .iter()
        .find(|c| c.name == path.as_bytes())
        .unwrap_or_else(|| panic!("{path} missing from {:?}", names(u)))
}

fn names(u: &Unpacked) -> Vec<String> {
    u.children
        .iter()
        .map(|c| String::from_utf8_lossy(&c.name).into_owned())
        .collect()
}

/// A small tree with a history: two versions of a config, a truncated log regrown with a hole, a
/// deleted file, a renamed file, a hard link, a symlink and a device.
fn history(opts: Options) -> Vec<u8> {
    let mut w = Writer::new(opts).unwrap();
    let etc = w.dir(ROOT, "etc", 0o755);
    let conf = w.file(etc, "camera.conf", &text(10_000), 0o644).unwrap();
    // Version 2 of bytes 4096..4196 and an append.
    w.write(conf, 4096, &[b'X'; 100]).unwrap();
    w.write(conf, 10_000, b"appended\n").unwrap();
    let log = w.file(ROOT, "log", &text(9000), 0o600).unwrap();
    w.truncate(log, 100);
    w.truncate(log, 5000);
    w.file(ROOT, "gone", b"deleted later", 0o644).unwrap();
    w.unlink(ROOT, "gone");
    let old = w.file(ROOT, "old-name", b"renamed", 0o644).unwrap();
    w.link(etc, "new-name", old);
    w.unlink(ROOT, "old-name");
    let bb = w.file(ROOT, "busybox", &text(5000), 0o755).unwrap();
    w.link(ROOT, "sh", bb);
    w.symlink(ROOT, "init", "/bin/busybox");
    w.device(etc, "console", 0o020600, 5, 1);
    w.finish()
}

/// Compares contents without dumping them: lengths, then the first differing offset.
fn same(got: &[u8], want: &[u8], what: &str) {
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first.is_none(),
        "{what}: {} bytes, {} expected, first difference at {first:?}",
        got.len(),
        want.len()
    );
}

fn expected_conf() -> Vec<u8> {
    let mut c = text(10_000);
    c[4096..4196].fill(b'X');
    c.extend_from_slice(b"appended\n");
    c
}

fn check_history(u: &Unpacked, what: &str) {
    assert_eq!(
        child(u, "etc/camera.conf").data[..],
        expected_conf()[..],
        "{what}"
    );
    assert_eq!(child(u, "etc/camera.conf").mode, Some(0o100644), "{what}");
    let mut log = text(100);
    log.resize(5000, 0);
    same(&child(u, "log").data, &log, what);
    assert_eq!(child(u, "etc/new-name").data[..], b"renamed"[..], "{what}");
    same(&child(u, "busybox").data, &text(5000), what);
    assert_eq!(
        child(u, "sh").kind,
        EntryKind::Hardlink {
            target: b"busybox".to_vec()
        },
        "{what}"
    );
    assert_eq!(
        child(u, "init").kind,
        EntryKind::Symlink {
            target: b"/bin/busybox".to_vec()
        },
        "{what}"
    );
    let console = child(u, "etc/console");
    assert_eq!(console.kind, EntryKind::Device, "{what}");
    assert_eq!(
        (console.meta["major"].clone(), console.meta["minor"].clone()),
        (5.into(), 1.into())
    );
    assert_eq!(
        names(u),
        [
            "busybox",
            "etc",
            "etc/camera.conf",
            "etc/console",
            "etc/new-name",
            "init",
            "log",
            "sh"
        ],
        "{what}: deleted and renamed-away names are gone"
    );
    assert_eq!(u.meta["deleted_dirents"], 2, "{what}");
    assert_eq!(u.meta["hardlinks"], 1, "{what}");
    assert_eq!(u.meta["bad_nodes"], 0, "{what}");
    assert!(u.error.is_none(), "{what}: {:?}", u.error);
}

#[test]
fn every_endianness_compression_and_erase_size_round_trips() {
    for endian in [Endian::Little, Endian::Big] {
        for (compression, method) in [
            (Compression::None, "none"),
            (Compression::Zlib, "zlib"),
            (Compression::Rtime, "rtime"),
            (Compression::Lzma, "lzma"),
            (Compression::Lzo(lzo), "lzo"),
        ] {
            for erase_size in [4 << 10, 16 << 10, 64 << 10, 256 << 10] {
                let what = format!("{endian:?} {method} {erase_size}");
                let opts = Options {
                    endian,
                    erase_size,
                    compression,
                    ..Options::default()
                };
                let mut img = history(opts);
                let len = img.len();
                // Trailing data after the file system is not part of it.
                img.extend_from_slice(&[0x5A; 1000]);
                assert!(Jffs2.detect(&img), "{what}");
                let u = unpack_image(img);
                check_history(&u, &what);
                assert_eq!(u.consumed, len as u64, "{what}");
                assert_eq!(u.meta["erase_block_size"], erase_size, "{what}");
                let from = if len > erase_size as usize {
                    "cleanmarkers"
                } else {
                    "largest consistent"
                };
                assert_eq!(u.meta["erase_block_size_from"], from, "{what}");
                if method != "none" {
                    assert!(
                        u.meta["compression"][method].as_u64().unwrap() > 0,
                        "{what}"
                    );
                }
            }
        }
    }
}

#[test]
fn erase_size_without_cleanmarkers_comes_from_the_layout() {
    let opts = Options {
        erase_size: 16 << 10,
        cleanmarkers: false,
        compression: Compression::None,
        ..Options::default()
    };
    let mut w = Writer::new(opts).unwrap();
    for i in 0..20 {
        w.file(ROOT, &format!("f{i}"), &text(3000 + i * 100), 0o644)
            .unwrap();
    }
    let img = w.finish();
    let u = unpack_image(img.clone());
    assert_eq!(u.meta["erase_block_size"], 16 << 10);
    assert_eq!(u.meta["erase_block_size_from"], "padded blocks");
    assert_eq!(u.consumed, img.len() as u64);
    assert_eq!(u.children.len(), 20);
}

#[test]
fn crc_failures_are_skipped_and_counted() {
    let mut w = Writer::new(Options {
        compression: Compression::None,
        ..Options::default()
    })
    .unwrap();
    let a = w.file(ROOT, "a", b"first version", 0o644).unwrap();
    w.write(a, 0, b"SECOND").unwrap();
    w.file(ROOT, "b", b"bee", 0o644).unwrap();
    let mut img = w.finish();
    // Flip a byte of the data of "a"'s second version: that node is dropped, the first stands.
    let pos = img.windows(6).position(|w| w == b"SECOND").unwrap();
    img[pos] ^= 0x20;
    let u = unpack_image(img);
    assert_eq!(&child(&u, "a").data[..], b"first version");
    assert_eq!(&child(&u, "b").data[..], b"bee");
    assert_eq!(u.meta["bad_nodes"], 1);
}

#[test]
fn flipped_and_truncated_images_never_panic() {
    let img = history(Options {
        erase_size: 4096,
        ..Options::default()
    });
    let budget = Budget::new(Limits::default());
    let ctx = Ctx::new(&budget);
    for cut in [13, 100, 1000, img.len() / 2] {
        let _ = Jffs2.unpack(&Bytes::copy_from_slice(&img[..cut]), &ctx);
    }
    for i in (0..img.len().min(6000)).step_by(7) {
        let mut bad = img.clone();
        bad[i] ^= 0xA5;
        let _ = Jffs2.unpack(&Bytes::from(bad), &ctx);
    }
}

#[test]
fn version_storm_decompresses_only_the_newest_fragment() {
    // 20,000 versions of the same 4 KiB: only the newest is read.
    let mut w = Writer::new(Options::default()).unwrap();
    let ino = w.file(ROOT, "storm", &[0u8; 4096], 0o644).unwrap();
    for v in 0..20_000u32 {
        w.write(ino, 0, &[(v % 251) as u8; 4096]).unwrap();
    }
    let img = w.finish();
    let budget = Budget::new(Limits::default());
    let u = Jffs2.unpack(&Bytes::from(img), &Ctx::new(&budget)).unwrap();
    same(
        &child(&u, "storm").data,
        &[(19_999 % 251) as u8; 4096],
        "storm",
    );
    assert_eq!(u.meta["inode_nodes"], 20_001);
    // One fragment decompressed (4 KiB) plus the name, not 80 MB.
    assert!(budget.output_bytes() < 8192, "{}", budget.output_bytes());
}

#[test]
fn cyclic_directories_are_listed_as_orphans() {
    // Directory 2 named "a" inside directory 3, and 3 named "b" inside 2: neither reaches the root.
    let mut w = Writer::new(Options::default()).unwrap();
    let a = w.dir(ROOT, "a", 0o755);
    let b = w.dir(a, "b", 0o755);
    w.file(b, "f", b"in the loop", 0o644).unwrap();
    w.unlink(ROOT, "a");
    w.link(b, "a", a);
    let u = unpack_image(w.finish());
    assert_eq!(u.meta["orphans"], 3, "{:?}", names(&u));
    let f = u.children.iter().find(|c| c.name.ends_with(b"/f")).unwrap();
    assert!(f.name.starts_with(b"lost+found/"), "{:?}", names(&u));
    assert_eq!(&f.data[..], b"in the loop");
}

#[test]
fn huge_claimed_sizes_stop_at_the_limits() {
    // A file whose latest node claims 3 GiB: over the per-file limit.
    let mut w = Writer::new(Options::default()).unwrap();
    let ino = w.file(ROOT, "big", b"x", 0o644).unwrap();
    w.truncate(ino, 3 << 30);
    w.file(ROOT, "small", b"fine", 0o644).unwrap();
    let u = unpack_image(w.finish());
    let big = child(&u, "big");
    assert!(
        matches!(
            big.error,
            Some(UnpackError::Limit(LimitError::FileBytes { .. }))
        ),
        "{:?}",
        big.error
    );
    assert_eq!(&child(&u, "small").data[..], b"fine");

    // 200 MiB of holes from a 64 KiB image: over the expansion ratio, reported on the structure.
    let mut w = Writer::new(Options::default()).unwrap();
    let ino = w.file(ROOT, "sparse", b"x", 0o644).unwrap();
    w.truncate(ino, 200 << 20);
    let img = Bytes::from(w.finish());
    let budget = Budget::new(Limits {
        max_ratio: 100,
        ..Limits::default()
    });
    // The engine charges a blob's output to its account, which holds the ratio.
    let account = crate::unpack::limits::BlobAccount::new(&budget, img.len() as u64);
    let u = Jffs2
        .unpack(&img, &Ctx::new(&budget).for_blob(&account))
        .unwrap();
    assert!(
        matches!(u.error, Some(UnpackError::Limit(LimitError::Ratio { .. }))),
        "{:?}",
        u.error
    );
}

#[test]
fn entry_limit_is_honoured() {
    let mut w = Writer::new(Options::default()).unwrap();
    for i in 0..50 {
        w.file(ROOT, &format!("f{i}"), b"x", 0o644).unwrap();
    }
    let budget = Budget::new(Limits {
        max_entries: 10,
        ..Limits::default()
    });
    let e = Jffs2
        .unpack(&Bytes::from(w.finish()), &Ctx::new(&budget))
        .unwrap_err();
    assert!(
        matches!(e, UnpackError::Limit(LimitError::Entries { max: 10 })),
        "{e}"
    );
}

#[test]
fn rtime_writer_and_reader_agree() {
    for data in [
        text(4096),
        vec![7u8; 4096],
        (0..=255u8).cycle().take(3000).collect(),
    ] {
        let packed = crate::synth::jffs2::rtime_compress(&data);
        assert_eq!(nodes::rtime_decompress(&packed, data.len()).unwrap(), data);
    }
}
