//! The compression formats (gzip, zlib, xz, LZMA-alone, bzip2, zstd, lz4, lzop): round trips of
//! streams built with each format's writer, whole and embedded (true extents), concatenated,
//! truncated and corrupted; false-positive resistance of the weak magics; the real samples,
//! compared with the Debian tools.

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use fwsim::unpack::{Limits, Node, Tree, UnpackError, unpack};

use crate::common::{self, streams};

fn run(data: Vec<u8>, name: &str) -> Tree {
    unpack(Bytes::from(data), name.as_bytes(), &Limits::default())
}

fn children<'a>(tree: &'a Tree, node: &Node) -> Vec<&'a Node> {
    node.children
        .iter()
        .map(|&c| tree.get(c).unwrap())
        .collect()
}

type Builder = fn(&[u8]) -> Vec<u8>;

/// Every format with its writer and whether it carries a checksum of its output.
fn codecs() -> Vec<(&'static str, Builder, bool)> {
    vec![
        ("gzip", streams::gzip as Builder, true),
        ("zlib", streams::zlib, true),
        ("xz", streams::xz, true),
        ("lzma", |d| streams::lzma(d, false), false),
        ("bzip2", streams::bzip2, true),
        ("zstd", streams::zstd, true),
        ("lz4", streams::lz4, true),
        (
            "lzop",
            |d| streams::lzop("", d, 64 << 10, streams::LZOP_ADLER),
            true,
        ),
    ]
}

#[test]
fn every_codec_round_trips_as_a_whole_file() {
    for (i, (name, build, _)) in codecs().into_iter().enumerate() {
        let data = streams::text(300_000, i as u32);
        let tree = run(build(&data), "blob");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some(name), "{name}");
        assert!(root.error.is_none(), "{name}: {:?}", root.error);
        let kids = children(&tree, root);
        assert_eq!(kids.len(), 1, "{name}");
        assert_eq!(&kids[0].data[..], &data[..], "{name}: output differs");
        assert_eq!(kids[0].path, b"blob/data", "{name}");
    }
}

#[test]
fn embedded_streams_are_carved_to_their_true_extent() {
    let prefix = streams::text(1000, 99);
    let suffix = streams::text(777, 98);
    for (i, (name, build, _)) in codecs().into_iter().enumerate() {
        let data = streams::text(50_000, 10 + i as u32);
        let stream = build(&data);
        let mut blob = prefix.clone();
        blob.extend_from_slice(&stream);
        blob.extend_from_slice(&suffix);
        let tree = run(blob, "fw.bin");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("carve"), "{name}");
        let region_path = format!("fw.bin/0x3e8.{name}");
        let region = tree
            .nodes()
            .iter()
            .find(|n| n.path == region_path.as_bytes())
            .unwrap_or_else(|| panic!("{name}: no region {region_path}"));
        assert!(region.error.is_none(), "{name}: {:?}", region.error);
        assert_eq!(region.data.len(), stream.len(), "{name}: extent");
        let kids = children(&tree, region);
        assert_eq!(&kids[0].data[..], &data[..], "{name}");
        // The bytes after the stream are a gap, not part of it.
        let last = root.gaps.last().unwrap();
        assert_eq!(last.offset, 1000 + stream.len() as u64, "{name}");
        assert_eq!(last.len, 777, "{name}");
    }
}

#[test]
fn truncated_and_corrupted_streams_are_errors() {
    for (i, (name, build, checked)) in codecs().into_iter().enumerate() {
        let data = streams::text(100_000, 20 + i as u32);
        let stream = build(&data);
        for cut in [stream.len() / 3, stream.len() - 5] {
            let tree = run(stream[..cut].to_vec(), "cut");
            let root = tree.root().unwrap();
            assert!(
                tree.nodes().iter().all(|n| n.data[..] != data[..]),
                "{name} cut at {cut}: full output from a truncated stream"
            );
            assert!(
                tree.errors().next().is_some(),
                "{name} cut at {cut}: no error ({:?})",
                root.format
            );
        }
        if checked {
            let mut bad = stream.clone();
            let at = bad.len() / 2;
            bad[at] ^= 0x10;
            let tree = run(bad, "bad");
            assert!(
                tree.nodes().iter().all(|n| n.data[..] != data[..]),
                "{name}: corrupted stream decoded as if intact"
            );
            let err = tree.errors().next().and_then(|n| n.error.clone());
            assert!(
                matches!(
                    err,
                    Some(UnpackError::Corrupt(_) | UnpackError::Truncated(_))
                ),
                "{name}: {err:?}"
            );
        }
    }
}

#[test]
fn concatenated_streams_decode_into_one_child() {
    let a = streams::text(40_000, 1);
    let b = streams::text(30_000, 2);
    let mut both = a.clone();
    both.extend_from_slice(&b);
    for (name, build) in [
        ("xz", streams::xz as Builder),
        ("bzip2", streams::bzip2),
        ("zstd", streams::zstd),
        ("lz4", streams::lz4),
    ] {
        let mut blob = build(&a);
        blob.extend_from_slice(&build(&b));
        let tree = run(blob, "cat");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some(name), "{name}");
        assert_eq!(&children(&tree, root)[0].data[..], &both[..], "{name}");
    }
}

#[test]
fn lzma_with_known_size_and_end_marker() {
    let data = streams::text(70_000, 5);
    for known in [true, false] {
        let tree = run(streams::lzma(&data, known), "k.lzma");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("lzma"));
        assert_eq!(root.format_meta["end_marker"], !known);
        assert_eq!(&tree.find("k.lzma/k").unwrap().data[..], &data[..]);
    }
}

#[test]
fn lzop_blocks_checksums_and_names() {
    // Incompressible data makes stored blocks; text makes LZO1X blocks; CRC-32 and Adler-32.
    let mut data = streams::text(200_000, 7);
    let mut x = 1u32;
    data.extend((0..70_000).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as u8
    }));
    for flags in [streams::LZOP_ADLER, streams::LZOP_CRC, 0] {
        let file = streams::lzop("dir/rootfs.img", &data, 32 << 10, flags);
        let tree = run(file.clone(), "x.lzo");
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("lzop"));
        assert_eq!(root.format_meta["original_name"], "dir/rootfs.img");
        let child = tree
            .find("x.lzo/rootfs.img")
            .expect("named after the header");
        assert_eq!(&child.data[..], &data[..]);
        if flags != 0 {
            // Flip one byte of the first block's data: its checksum must catch it.
            let mut bad = file.clone();
            let header_len = 9 + 2 + 2 + 2 + 1 + 1 + 4 + 4 + 4 + 4 + 1 + 14 + 4;
            bad[header_len + 8 + 8 + 100] ^= 1;
            let tree = run(bad, "bad.lzo");
            let err = tree.root().unwrap().error.clone().unwrap();
            assert!(err.to_string().contains("checksum"), "{err}");
        }
    }
}

#[test]
fn lz4_legacy_frames_are_read() {
    let data = streams::text(300_000, 3);
    let mut blob = streams::lz4_legacy(&data);
    let len = blob.len();
    blob.extend_from_slice(&[0xFF; 4096]);
    let tree = run(blob, "Image.lz4");
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("lz4"), "{:?}", root.error);
    assert_eq!(root.format_meta["frame"], "legacy");
    assert_eq!(root.gaps[0].offset, len as u64);
    assert_eq!(&tree.find("Image.lz4/Image").unwrap().data[..], &data[..]);
}

#[test]
fn uimage_lzo_payloads_are_decoded() {
    let kernel = streams::text(150_000, 11);
    let payload = streams::lzop("Image", &kernel, 256 << 10, streams::LZOP_ADLER);
    let img = fwsim::unpack::formats::uimage::build("Linux-4.9", 5, 2, 2, 4, &payload);
    let tree = run(img, "uImage");
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("uimage"));
    assert_eq!(root.format_meta["compression"], "lzo");
    assert!(root.error.is_none(), "{:?}", root.error);
    assert_eq!(
        &tree.find("uImage/Linux-4.9").unwrap().data[..],
        &kernel[..]
    );
}

#[test]
fn weak_magics_in_random_data_make_no_regions() {
    // 2 MiB of noise salted with every zlib header and the LZMA-alone magic every 997 bytes.
    let mut x = 0x9E37_79B9u32;
    let mut blob: Vec<u8> = (0..2 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let salts: [&[u8]; 6] = [
        &[0x78, 0x01],
        &[0x78, 0x5E],
        &[0x78, 0x9C],
        &[0x78, 0xDA],
        &[0x5D, 0, 0, 0x80, 0],
        &[
            0x5D, 0, 0, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0,
        ],
    ];
    let mut at = 0;
    let mut i = 0;
    while at + 16 < blob.len() {
        let s = salts[i % salts.len()];
        blob[at..at + s.len()].copy_from_slice(s);
        at += 997;
        i += 1;
    }
    let start = std::time::Instant::now();
    let tree = run(blob, "noise");
    assert_eq!(tree.nodes().len(), 1, "regions found in noise");
    assert!(tree.root().unwrap().error.is_none());
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}

/// Output of a Debian tool reading `input` on stdin, or `None` (skipped) when it is missing.
fn tool_output(tool: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    if !common::tool(tool) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in");
    std::fs::write(&path, input).unwrap();
    let out = Command::new(tool)
        .args(args)
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    Some(out.stdout)
}

fn sample_tree(rel: &str) -> Option<(Vec<u8>, Tree)> {
    let path = common::sample(rel)?;
    let data = std::fs::read(&path).unwrap();
    let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
    Some((data.clone(), run(data, name)))
}

const FACT: &str = "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking";

#[test]
fn real_single_stream_samples_match_the_debian_tools() {
    let cases: &[(&str, &str, &str, &str, &[&str])] = &[
        (
            "ReFirmLabs__binwalk/tests/inputs/gzip.bin",
            "gzip",
            "lsb-release",
            "gzip",
            &["-dc"],
        ),
        (
            "ReFirmLabs__binwalk/testing/tests/input-vectors/foobar.lzma",
            "lzma",
            "foobar",
            "xz",
            &["--format=lzma", "-dc"],
        ),
        (
            &const_format(FACT, "/sevenz/test/data/test.gz"),
            "gzip",
            "test.data",
            "gzip",
            &["-dc"],
        ),
        (
            &const_format(FACT, "/sevenz/test/data/test.xz"),
            "xz",
            "test",
            "xz",
            &["-dc"],
        ),
        (
            &const_format(FACT, "/patool/test/data/test.lzo"),
            "lzop",
            "test.data",
            "lzop",
            &["-dc"],
        ),
        (
            &const_format(FACT, "/patool/test/data/test.lz4"),
            "lz4",
            "test",
            "lz4",
            &["-dc"],
        ),
        (
            &const_format(FACT, "/patool/test/data/test.zst"),
            "zstd",
            "test",
            "zstd",
            &["-dc"],
        ),
        (
            &const_format(FACT, "/patool/test/data/test.tar.bz2"),
            "bzip2",
            "test.tar",
            "bzip2",
            &["-dc"],
        ),
    ];
    for (rel, format, child, tool, args) in cases {
        let Some((data, tree)) = sample_tree(rel) else {
            return;
        };
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some(*format), "{rel}");
        assert!(root.error.is_none(), "{rel}: {:?}", root.error);
        let kid = children(&tree, root)[0];
        assert!(kid.path.ends_with(format!("/{child}").as_bytes()), "{rel}");
        if let Some(expected) = tool_output(tool, args, &data) {
            assert!(!expected.is_empty(), "{tool} produced nothing for {rel}");
            assert_eq!(&kid.data[..], &expected[..], "{rel} differs from {tool}");
        }
    }
}

fn const_format(a: &str, b: &str) -> String {
    format!("{a}{b}")
}

#[test]
fn real_bzip2_with_trailing_garbage_is_carved_at_its_extent() {
    let Some((data, tree)) = sample_tree("ReFirmLabs__binwalk/tests/inputs/bzip2.bin") else {
        return;
    };
    let region = tree.find("bzip2.bin/0x0.bzip2").expect("bzip2 region");
    assert!(region.error.is_none());
    let kid = children(&tree, region)[0];
    // bzip2 itself ignores the trailing garbage ("trailing garbage after EOF ignored").
    if let Some(expected) = tool_output("bzip2", &["-dc"], &data) {
        assert_eq!(&kid.data[..], &expected[..]);
    }
    // The stream ends where the next stream would start: re-compressing is not needed to know,
    // the region is followed by an opaque gap.
    assert!(region.data.len() < data.len());
    assert_eq!(
        tree.root().unwrap().gaps[0].offset,
        region.data.len() as u64
    );
}

#[test]
fn real_zlib_streams_at_offsets_match_python_zlib() {
    let rel = const_format(FACT, "/generic_carver/test/data/zlib_carving_test");
    let Some((data, tree)) = sample_tree(&rel) else {
        return;
    };
    let regions: Vec<&Node> = children(&tree, tree.root().unwrap())
        .into_iter()
        .filter(|n| n.format == Some("zlib"))
        .collect();
    assert!(!regions.is_empty());
    assert_eq!(regions[0].origin.as_ref().unwrap().offset, Some(0x80));
    if !common::tool("python3") {
        return;
    }
    for r in regions {
        assert!(r.error.is_none(), "{:?}", r.error);
        let off = r.origin.as_ref().unwrap().offset.unwrap() as usize;
        let script = "import sys,zlib\nd=sys.stdin.buffer.read()\no=zlib.decompressobj()\n\
                      x=o.decompress(d)\nassert o.eof\nsys.stdout.buffer.write(x)\n\
                      sys.stderr.write(str(len(d)-len(o.unused_data)))";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z");
        std::fs::write(&path, &data[off..]).unwrap();
        let out = Command::new("python3")
            .args(["-c", script])
            .stdin(std::fs::File::open(&path).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let extent: usize = String::from_utf8_lossy(&out.stderr).trim().parse().unwrap();
        assert_eq!(r.data.len(), extent, "extent at {off:#x}");
        assert_eq!(
            &children(&tree, r)[0].data[..],
            &out.stdout[..],
            "at {off:#x}"
        );
    }
}

#[test]
fn real_uimage_with_lzma_payload() {
    let rel = const_format(FACT, "/uboot/test/data/uboot.image_with_header");
    let Some((data, tree)) = sample_tree(&rel) else {
        return;
    };
    let img = tree
        .find("uboot.image_with_header/0x0.uimage")
        .expect("uImage at 0");
    assert_eq!(img.format_meta["compression"], "lzma");
    assert_eq!(img.format_meta["data_crc_ok"], true);
    let payload = children(&tree, img)[0];
    assert_eq!(
        payload.path,
        b"uboot.image_with_header/0x0.uimage/u-boot image"
    );
    let size = u32::from_be_bytes(data[12..16].try_into().unwrap()) as usize;
    if let Some(expected) = tool_output("xz", &["--format=lzma", "-dc"], &data[64..64 + size]) {
        assert_eq!(&payload.data[..], &expected[..]);
    }
    // The rest of the sample holds the start of a kernel whose LZMA stream is cut off (the
    // sample is a truncated image): reported as truncated, as `xz -dc` reports it.
    let cut = tree
        .nodes()
        .iter()
        .find(|n| n.format == Some("lzma"))
        .expect("the cut-off kernel");
    assert!(
        matches!(cut.error, Some(UnpackError::Truncated(_))),
        "{:?}",
        cut.error
    );
}
