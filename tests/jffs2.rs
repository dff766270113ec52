//! JFFS2: the real fact_extractor samples listed exactly as jefferson extracts them, images from
//! fwsim's writer read back by jefferson and by fwsim alike, `mkfs.jffs2` images of a fixture tree
//! (every compressor it has, both endiannesses, several erase sizes), carving out of a flash dump,
//! and hostile images stopping at their limits through the CLI.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use fwsim::synth::jffs2::{Compression, Options, ROOT, Writer};
use fwsim::unpack::bytes::Endian;
use fwsim::unpack::{EntryKind, Limits, Tree, unpack};
use sha2::{Digest, Sha256};

use crate::common::fs_images::{self, Item};
use crate::common::{self, sample};

/// One listed entry: kind, and for files their size and SHA-256 (symlinks: their target).
type Listing = BTreeMap<String, (String, u64, String)>;

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The entries fwsim's jffs2 reader produced directly under the image.
fn fwsim_listing(tree: &Tree) -> Listing {
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("jffs2"), "{:?}", root.error);
    let prefix = format!("{}/", String::from_utf8_lossy(&root.path));
    tree.nodes()
        .iter()
        .filter(|n| n.parent == Some(0))
        .map(|n| {
            let rel = String::from_utf8_lossy(&n.path)
                .strip_prefix(&prefix)
                .unwrap()
                .to_owned();
            let v = match &n.kind {
                EntryKind::File => ("file".into(), n.data.len() as u64, sha(&n.data)),
                EntryKind::Symlink { target } => (
                    "symlink".into(),
                    0,
                    String::from_utf8_lossy(target).into_owned(),
                ),
                k => (k.as_str().into(), 0, String::new()),
            };
            (rel, v)
        })
        .collect()
}

/// What `jefferson -d` writes for `img`, listed the same way (`None` when jefferson is missing).
fn jefferson_listing(img: &Path) -> Option<Listing> {
    if !common::tool("jefferson") {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = Command::new("jefferson")
        .arg("-d")
        .arg(&out)
        .arg(img)
        .output()
        .expect("run jefferson");
    assert!(
        run.status.success(),
        "jefferson failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut listing = Listing::new();
    let mut stack = vec![out.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let v = if meta.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                ("symlink".into(), 0, t.to_string_lossy().into_owned())
            } else if meta.is_dir() {
                stack.push(p.clone());
                ("dir".into(), 0, String::new())
            } else {
                let data = std::fs::read(&p).unwrap();
                ("file".into(), data.len() as u64, sha(&data))
            };
            listing.insert(rel, v);
        }
    }
    Some(listing)
}

const SAMPLES: &str = "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/jffs2/test/data";

#[test]
fn real_samples_list_exactly_what_jefferson_extracts() {
    for (name, endian) in [
        ("jffs2_be.img", "big-endian"),
        ("jffs2_le.img", "little-endian"),
    ] {
        let Some(path) = sample(&format!("{SAMPLES}/{name}")) else {
            return;
        };
        let data = std::fs::read(&path).unwrap();
        let len = data.len() as u64;
        let tree = unpack(Bytes::from(data), name.as_bytes(), &Limits::default());
        let root = tree.root().unwrap();
        let meta = &root.format_meta;
        assert_eq!(meta["endian"], endian, "{name}");
        assert_eq!(meta["bad_nodes"], 0, "{name}");
        assert!(root.gaps.iter().all(|g| g.offset + g.len <= len), "{name}");
        let ours = fwsim_listing(&tree);
        // Known content, independent of any tool: four entries, three small text files.
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            [
                "generic folder",
                "generic folder/test file 3_.txt",
                "testfile1",
                "testfile2"
            ],
            "{name}"
        );
        let Some(theirs) = jefferson_listing(&path) else {
            return;
        };
        assert_eq!(ours, theirs, "{name}: fwsim and jefferson differ");
    }
}

/// A camera-like tree written with history: a config rewritten in place, nested directories,
/// binaries, a symlink.
fn written_image(opts: Options) -> Vec<u8> {
    let mut w = Writer::new(opts).unwrap();
    let etc = w.dir(ROOT, "etc", 0o755);
    let conf: Vec<u8> = (0..3000u32)
        .flat_map(|i| format!("param{i}={}\n", i * 7 % 1000).into_bytes())
        .collect();
    let ino = w.file(etc, "camera.conf", &conf, 0o644).unwrap();
    w.write(ino, 5000, b"param_rewritten=1\n").unwrap();
    let bin = w.dir(ROOT, "bin", 0o755);
    let mut rng = fwsim::synth::content::Rng::named("jffs2 test");
    let code = fwsim::synth::content::arm_code(&mut rng, 50_000);
    w.file(bin, "sonia", &code, 0o755).unwrap();
    w.symlink(bin, "sh", "busybox");
    let web = w.dir(ROOT, "web", 0o755);
    let js = fwsim::synth::content::javascript(&mut rng, "player", 20_000);
    w.file(web, "player.js", js.as_bytes(), 0o644).unwrap();
    w.file(ROOT, "empty", b"", 0o600).unwrap();
    w.finish()
}

fn lzo(data: &[u8]) -> Vec<u8> {
    lzokay_native::compress(data).unwrap()
}

#[test]
fn writer_images_read_the_same_in_jefferson_and_fwsim() {
    let tmp = tempfile::tempdir().unwrap();
    for endian in [Endian::Little, Endian::Big] {
        for (compression, method) in [
            (Compression::None, "none"),
            (Compression::Zlib, "zlib"),
            (Compression::Rtime, "rtime"),
            (Compression::Lzma, "lzma"),
            (Compression::Lzo(lzo), "lzo"),
        ] {
            // Every erase size with zlib; one for the others (each jefferson run costs a second).
            let sizes: &[u32] = match compression {
                Compression::Zlib => &[8 << 10, 64 << 10, 256 << 10],
                _ => &[64 << 10],
            };
            for &erase_size in sizes {
                let what = format!("{endian:?} {method} {erase_size}");
                let img = written_image(Options {
                    endian,
                    erase_size,
                    compression,
                    ..Options::default()
                });
                assert_eq!(img.len() % erase_size as usize, 0, "{what}");
                let tree = unpack(Bytes::from(img.clone()), b"fs.jffs2", &Limits::default());
                let ours = fwsim_listing(&tree);
                assert_eq!(ours.len(), 8, "{what}: {:?}", ours.keys());
                assert_eq!(ours["etc/camera.conf"].0, "file", "{what}");
                assert_eq!(ours["bin/sh"].2, "busybox", "{what}");
                let path = tmp
                    .path()
                    .join(format!("{method}-{erase_size}-{endian:?}.img"));
                std::fs::write(&path, &img).unwrap();
                let Some(theirs) = jefferson_listing(&path) else {
                    return;
                };
                assert_eq!(ours, theirs, "{what}: fwsim and jefferson differ");
            }
        }
    }
}

/// A `mkfs.jffs2` image of `items` with `args` (`None` when the tool is missing).
fn mkfs_jffs2(items: &[Item], args: &[&str]) -> Option<Vec<u8>> {
    if !common::tool("mkfs.jffs2") {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    fs_images::write_tree(items, &root);
    let img = tmp.path().join("fs.jffs2");
    let run = Command::new("mkfs.jffs2")
        .arg("-r")
        .arg(&root)
        .arg("-o")
        .arg(&img)
        .args(args)
        .output()
        .expect("run mkfs.jffs2");
    assert!(
        run.status.success(),
        "mkfs.jffs2 {args:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    Some(std::fs::read(img).unwrap())
}

#[test]
fn mkfs_jffs2_images_round_trip_every_compressor_endianness_and_erase_size() {
    let items = fs_images::rootfs(None);
    for (compressors, method) in [
        (&["-m", "none"][..], "none"),
        (&[][..], "zlib"),
        (&["-X", "rtime", "-x", "zlib"][..], "rtime"),
        (&["-X", "lzo", "-x", "zlib"][..], "lzo"),
    ] {
        for endian in ["-l", "-b"] {
            for erase in ["0x2000", "0x10000", "0x40000"] {
                let mut args = vec![endian, "-e", erase, "-p"];
                args.extend_from_slice(compressors);
                let Some(img) = mkfs_jffs2(&items, &args) else {
                    return;
                };
                let what = format!("{args:?}");
                let erase_size = u64::from_str_radix(&erase[2..], 16).unwrap();
                let len = img.len() as u64;
                let tree = unpack(Bytes::from(img), b"fs.jffs2", &Limits::default());
                let root = tree.root().unwrap();
                assert!(root.error.is_none(), "{what}: {:?}", root.error);
                let meta = &root.format_meta;
                assert_eq!(meta["bad_nodes"], 0, "{what}");
                if len > erase_size {
                    assert_eq!(meta["erase_block_size"], erase_size, "{what}");
                }
                if method != "none" {
                    assert!(
                        meta["compression"][method].as_u64().unwrap_or(0) > 0,
                        "{what}: {}",
                        meta["compression"]
                    );
                }
                for item in &items {
                    let find = |p: &str| {
                        tree.nodes()
                            .iter()
                            .find(|n| n.path == format!("fs.jffs2/{p}").as_bytes())
                            .unwrap_or_else(|| panic!("{what}: {p} missing"))
                    };
                    match item {
                        Item::Dir(p, m) => {
                            let n = find(p);
                            assert_eq!(n.kind, EntryKind::Dir, "{what} {p}");
                            assert_eq!(n.mode, Some(0o040000 | u32::from(*m)), "{what} {p}");
                        }
                        Item::File(p, m, data) => {
                            let n = find(p);
                            assert_eq!(n.kind, EntryKind::File, "{what} {p}");
                            assert_eq!(n.mode, Some(0o100000 | u32::from(*m)), "{what} {p}");
                            assert_eq!(n.data.len(), data.len(), "{what} {p}");
                            assert!(n.data[..] == data[..], "{what} {p}: bytes differ");
                        }
                        Item::Symlink(p, t) => {
                            let n = find(p);
                            assert_eq!(
                                n.kind,
                                EntryKind::Symlink {
                                    target: t.as_bytes().to_vec()
                                },
                                "{what} {p}"
                            );
                        }
                        Item::CharDevice(..) => {}
                    }
                }
            }
        }
    }
}

#[test]
fn jffs2_is_carved_from_a_flash_dump_with_its_true_extent() {
    let fs = written_image(Options::default());
    let mut rng = fwsim::synth::content::Rng::named("bootloader");
    let mut dump = fwsim::synth::content::arm_code(&mut rng, 0x1_0000);
    dump.resize(0x2_0000, 0xFF);
    let fs_at = dump.len();
    dump.extend_from_slice(&fs);
    let gz_at = dump.len();
    dump.extend_from_slice(&common::streams::gzip(
        b"a config archive after the file system",
    ));
    dump.resize(dump.len() + 0x1000, 0xFF);
    let tree = unpack(Bytes::from(dump), b"flash.bin", &Limits::default());
    let region = |at: usize, fmt: &str| {
        tree.nodes()
            .iter()
            .find(|n| n.path == format!("flash.bin/{at:#x}.{fmt}").as_bytes())
            .unwrap_or_else(|| {
                panic!(
                    "{fmt} at {at:#x} missing: {:?}",
                    tree.nodes()
                        .iter()
                        .map(|n| String::from_utf8_lossy(&n.path).into_owned())
                        .take(12)
                        .collect::<Vec<_>>()
                )
            })
    };
    let r = region(fs_at, "jffs2");
    assert_eq!(
        r.data.len(),
        fs.len(),
        "the region ends with the last erase block"
    );
    assert_eq!(r.format_meta["erase_block_size"], 65536);
    region(gz_at, "gzip");
    assert!(
        tree.nodes()
            .iter()
            .any(|n| n.path.ends_with(b".jffs2/etc/camera.conf"))
    );
}

fn write_temp(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn hostile_images_stop_at_their_limits_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();

    // A file claiming 3 GiB (one hole node): the per-file limit, on that file only.
    let mut w = Writer::new(Options::default()).unwrap();
    let ino = w.file(ROOT, "huge", b"x", 0o644).unwrap();
    w.truncate(ino, 3 << 30);
    w.file(ROOT, "ok", b"fine", 0o644).unwrap();
    let p = write_temp(tmp.path(), "huge.jffs2", &w.finish());
    let lines = common::unpack_json(&p, &[]);
    let huge = lines
        .iter()
        .find(|l| l["path"] == "huge.jffs2/huge")
        .unwrap();
    assert!(
        huge["error"]
            .as_str()
            .unwrap()
            .contains("file size limit reached"),
        "{huge}"
    );
    let ok = lines.iter().find(|l| l["path"] == "huge.jffs2/ok").unwrap();
    assert_eq!(ok["size"], 4);

    // A version storm: 30,000 rewrites of one page; the time budget is not needed, only the
    // newest fragment is decompressed.
    let mut w = Writer::new(Options::default()).unwrap();
    let ino = w.file(ROOT, "storm", &[1u8; 4096], 0o644).unwrap();
    for v in 0..30_000u32 {
        w.write(ino, 0, &v.to_le_bytes().repeat(1024)).unwrap();
    }
    let p = write_temp(tmp.path(), "storm.jffs2", &w.finish());
    let started = std::time::Instant::now();
    let lines = common::unpack_json(&p, &["--time-budget", "20"]);
    let storm = lines
        .iter()
        .find(|l| l["path"] == "storm.jffs2/storm")
        .unwrap();
    assert_eq!(storm["sha256"], sha(&29_999u32.to_le_bytes().repeat(1024)));
    assert!(started.elapsed().as_secs() < 20);

    // Directories naming each other as parents: listed once under lost+found, no loop.
    let mut w = Writer::new(Options::default()).unwrap();
    let a = w.dir(ROOT, "a", 0o755);
    let b = w.dir(a, "b", 0o755);
    w.file(b, "inside", b"cycle", 0o644).unwrap();
    w.unlink(ROOT, "a");
    w.link(b, "a", a);
    let p = write_temp(tmp.path(), "cycle.jffs2", &w.finish());
    let lines = common::unpack_json(&p, &[]);
    let inside = lines
        .iter()
        .find(|l| l["path"].as_str().unwrap().ends_with("/inside"))
        .unwrap();
    assert!(
        inside["path"]
            .as_str()
            .unwrap()
            .starts_with("cycle.jffs2/lost+found/"),
        "{inside}"
    );
    assert_eq!(inside["meta"]["orphan"], true);

    // Holes far beyond the expansion ratio: the structure records the limit.
    let mut w = Writer::new(Options::default()).unwrap();
    for i in 0..8 {
        let ino = w.file(ROOT, &format!("sparse{i}"), b"x", 0o644).unwrap();
        w.truncate(ino, 1 << 30);
    }
    let p = write_temp(tmp.path(), "sparse.jffs2", &w.finish());
    let lines = common::unpack_json(&p, &["--max-ratio", "100"]);
    let root = &lines[0];
    assert_eq!(root["format"], "jffs2");
    assert!(
        root["error"]
            .as_str()
            .unwrap()
            .contains("expansion ratio limit reached"),
        "{root}"
    );
}

#[test]
fn erase_block_summaries_from_sumtool_are_skipped() {
    let items = fs_images::rootfs(None);
    let Some(plain) = mkfs_jffs2(&items, &["-b", "-e", "0x4000", "-p"]) else {
        return;
    };
    if !common::tool("sumtool") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = write_temp(tmp.path(), "plain.jffs2", &plain);
    let output = tmp.path().join("summed.jffs2");
    let run = Command::new("sumtool")
        .arg("-i")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .args(["-e", "0x4000", "-b", "-p"])
        .output()
        .expect("run sumtool");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summed = std::fs::read(&output).unwrap();
    let plain_tree = unpack(Bytes::from(plain), b"fs.jffs2", &Limits::default());
    let summed_tree = unpack(Bytes::from(summed), b"fs.jffs2", &Limits::default());
    let meta = &summed_tree.root().unwrap().format_meta;
    assert!(meta["summary_nodes"].as_u64().unwrap() > 0, "{meta:?}");
    assert_eq!(meta["bad_nodes"], 0);
    assert_eq!(meta["erase_block_size"], 0x4000);
    assert_eq!(fwsim_listing(&summed_tree), fwsim_listing(&plain_tree));
}
