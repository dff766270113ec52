//! Hostile input against the whole engine: decompression bombs, a deep container chain,
//! self-similar carving traps and magic floods all stop at a named limit within a time bound; the
//! real samples, truncated and bit-flipped a few hundred ways, never panic and always give a tree.
//! The measured suite runs the binary on hostile images built in code and asserts its wall time
//! and peak memory.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::unpack::{LimitError, Limits, Tree, UnpackError, unpack};

use crate::common::measure;
use crate::common::mutate::{self, XorShift};
use crate::common::{self, streams};

/// Wall-clock bound for every trap in a debug build on a shared machine.
const QUICK: Duration = Duration::from_secs(5);

fn timed(data: Vec<u8>, limits: &Limits) -> (Tree, Duration) {
    let start = Instant::now();
    let tree = unpack(Bytes::from(data), b"hostile", limits);
    (tree, start.elapsed())
}

/// The limit errors anywhere in the tree.
fn limits_hit(tree: &Tree) -> Vec<LimitError> {
    tree.errors()
        .filter_map(|n| match &n.error {
            Some(UnpackError::Limit(l)) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn gzip_bomb_stops_at_the_ratio_limit() {
    let bomb = streams::gzip_zero_bomb(64 << 20);
    assert!(bomb.len() < 80_000, "{}", bomb.len());
    let (tree, took) = timed(bomb, &Limits::default());
    assert!(took < QUICK, "{took:?}");
    let err = tree
        .root()
        .unwrap()
        .error
        .clone()
        .expect("an error on the bomb");
    assert!(
        matches!(err, UnpackError::Limit(LimitError::Ratio { max: 1000, .. })),
        "{err}"
    );
    assert!(err.to_string().contains("expansion ratio limit"), "{err}");
}

#[test]
fn large_gzip_bomb_stops_at_the_file_size_limit_from_the_cli() {
    // 4 GiB of zeros in 4 MiB; the per-file limit is set the way a user would.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.gz");
    std::fs::write(&path, streams::gzip_zero_bomb(4 << 30)).unwrap();
    let start = Instant::now();
    let entries = common::unpack_json(&path, &["--max-file-size", "16M"]);
    assert!(start.elapsed() < QUICK, "{:?}", start.elapsed());
    let root = &entries[0];
    assert_eq!(root["format"], "gzip");
    assert_eq!(
        root["error"], "file size limit reached (16777216 bytes)",
        "{root}"
    );
}

#[test]
fn xz_lzma_bzip2_zstd_bombs_stop_at_the_ratio_limit() {
    let zeros = vec![0u8; 16 << 20];
    let bombs: [(&str, Vec<u8>); 4] = [
        ("xz", streams::xz(&zeros)),
        ("lzma", streams::lzma(&zeros, false)),
        ("bzip2", streams::bzip2(&zeros)),
        ("zstd", streams::zstd(&zeros)),
    ];
    for (name, bomb) in bombs {
        // Repeat the stream: concatenated streams share the blob's ratio budget.
        let mut blob = Vec::new();
        for _ in 0..8 {
            blob.extend_from_slice(&bomb);
        }
        let blob_len = blob.len() as u64;
        let (tree, took) = timed(blob, &Limits::default());
        assert!(took < QUICK, "{name}: {took:?}");
        let hit = limits_hit(&tree);
        assert!(
            hit.iter().any(|l| matches!(l, LimitError::Ratio { .. })),
            "{name}: {hit:?}"
        );
        // All that was decoded from the blob stays within 1000 times its size (or the floor).
        let decoded: usize = tree
            .nodes()
            .iter()
            .filter(|n| n.origin.as_ref().is_some_and(|o| o.container != "carve"))
            .map(|n| n.data.len())
            .sum();
        assert!(
            decoded as u64 <= (blob_len * 1000).max(4 << 20),
            "{name}: {decoded}"
        );
    }
}

#[test]
fn gzip_nested_200_deep_stops_at_the_depth_limit() {
    let mut data = b"the innermost file".to_vec();
    for _ in 0..200 {
        data = streams::gzip(&data);
    }
    let (tree, took) = timed(data, &Limits::default());
    assert!(took < QUICK, "{took:?}");
    let deepest = tree.nodes().iter().map(|n| n.depth).max().unwrap();
    assert_eq!(deepest, 24);
    let stopped = tree
        .errors()
        .find(|n| matches!(n.error, Some(UnpackError::Limit(_))))
        .expect("a limit error");
    assert_eq!(stopped.depth, 24);
    let msg = stopped.error.as_ref().unwrap().to_string();
    assert_eq!(msg, "nesting depth limit reached (24 levels)");
}

#[test]
fn thousands_of_copies_of_a_small_gzip_stop_at_the_candidate_limit() {
    let one = streams::gzip(b"x");
    let blob: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * 50_000)
        .collect();
    let (tree, took) = timed(blob, &Limits::default());
    assert!(took < QUICK, "{took:?}");
    let root = tree.root().unwrap();
    assert_eq!(
        root.error,
        Some(UnpackError::Limit(LimitError::CarveCandidates {
            max: 20_000
        }))
    );
    assert_eq!(
        root.error.as_ref().unwrap().to_string(),
        "carving candidate limit reached (20000 candidates)"
    );
    // The identical payloads were analysed once and shared.
    assert!(tree.nodes().iter().filter(|n| n.same_as.is_some()).count() > 10_000);
}

#[test]
fn magic_floods_stop_quickly() {
    // Stream heads that pass `detect` and then fail, and weak magics, back to back.
    let text = streams::text(4000, 1);
    let floods: [(&str, Vec<u8>); 5] = [
        ("bzip2", streams::bzip2(&text)[..40].to_vec()),
        ("gzip", streams::gzip(&text)[..30].to_vec()),
        ("xz", streams::xz(&text)[..40].to_vec()),
        ("zlib", vec![0x78, 0x9C]),
        (
            "lzma",
            vec![0x5D, 0x00, 0x00, 0x80, 0x00, 0xFF, 0xFF, 0xFF, 0xFF],
        ),
    ];
    // Failing candidates here read little each; keep their budget small anyway.
    let limits = Limits {
        max_failed_carve_bytes: 4 << 20,
        ..Limits::default()
    };
    for (name, unit) in floods {
        let blob: Vec<u8> = unit.iter().copied().cycle().take(256 << 10).collect();
        let (tree, took) = timed(blob, &limits);
        eprintln!("{name} flood: {took:?}, {} nodes", tree.nodes().len());
        assert!(took < QUICK, "{name}: {took:?}");
        let root = tree.root().unwrap();
        // Either a limit stopped the scan, or the blob is taken as the broken stream it starts
        // with (its own error, its own format name).
        let head_failure = root.format == Some(name)
            && matches!(
                root.error,
                Some(UnpackError::Truncated(_) | UnpackError::Corrupt(_))
            );
        assert!(
            head_failure
                || matches!(
                    root.error,
                    None | Some(UnpackError::Limit(
                        LimitError::CarveCandidates { .. } | LimitError::FailedCarveBytes { .. }
                    ))
                ),
            "{name}: {:?} {:?}",
            root.format,
            root.error
        );
    }
}

/// A zlib stream that is also the continuation of the stream before it: each copy is a valid
/// zlib header plus a stored block reaching the next copy, and the same bytes read as stored
/// blocks by a stream that started earlier. Every candidate decodes to the end, then fails.
fn self_chaining_zlib(copies: usize) -> Vec<u8> {
    const COPY: usize = 7 + 0xFF63;
    let mut one = vec![0u8; COPY];
    // Read fresh: zlib header, stored block of 0xFF63 bytes (LEN 63 FF, NLEN 9C 00).
    one[..7].copy_from_slice(&[0x78, 0x9C, 0x00, 0x63, 0xFF, 0x9C, 0x00]);
    // Read as a continuation: 0x78 starts a stored block of 0x9C bytes (LEN 9C 00, NLEN 63 FF),
    // then at +161 another stored block runs to the next copy.
    let rest = (COPY - 161 - 5) as u16;
    one[161] = 0x00;
    one[162..164].copy_from_slice(&rest.to_le_bytes());
    one[164..166].copy_from_slice(&(!rest).to_le_bytes());
    for (i, b) in one[166..].iter_mut().enumerate() {
        *b = (i % 251) as u8 | 1;
    }
    one.repeat(copies)
}

#[test]
fn self_chaining_streams_stop_at_the_failed_candidate_limit() {
    let blob = self_chaining_zlib(100);
    assert_eq!(blob.len(), 100 * 65_386);
    // Without the limit each of the 100 candidates would read and inflate the rest of the blob:
    // on average 3.3 MB read and as much written, some 650 MB of work in all.
    let limits = Limits {
        max_failed_carve_bytes: 16 << 20,
        ..Limits::default()
    };
    let (tree, took) = timed(blob, &limits);
    assert!(took < QUICK, "{took:?}");
    let root = tree.root().unwrap();
    assert_eq!(
        root.error,
        Some(UnpackError::Limit(LimitError::FailedCarveBytes {
            max: 16 << 20
        }))
    );
    assert!(
        root.error
            .as_ref()
            .unwrap()
            .to_string()
            .contains("failed-candidate")
    );
}

/// Wave-1 samples: every compression format, uImages, squashfs, cramfs, zip, tar, cpio.
const WAVE1: &[&str] = &[
    "ReFirmLabs__binwalk/tests/inputs/gzip.bin",
    "ReFirmLabs__binwalk/tests/inputs/bzip2.bin",
    "ReFirmLabs__binwalk/testing/tests/input-vectors/foobar.lzma",
    "ReFirmLabs__binwalk/tests/inputs/squashfs.bin",
    "ReFirmLabs__binwalk/tests/inputs/cramfs.bin",
    "ReFirmLabs__binwalk/tests/inputs/zip.bin",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/sevenz/test/data/test.gz",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/sevenz/test/data/test.xz",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/patool/test/data/test.lzo",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/patool/test/data/test.lz4",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/patool/test/data/test.zst",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/patool/test/data/test.tar.bz2",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/patool/test/data/test.tar",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/patool/test/data/test.cpio",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/generic_carver/test/data/zlib_carving_test",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/uboot/test/data/uboot.image_with_header",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/dahua/test/data/dh.bin",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/sevenz/test/data/cramfs.img",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/gzip.sqfs",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/xz.sqfs",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/lzo.sqfs",
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/squashFS/test/data/zstd.sqfs",
    "BotoX__DH_IPC-HX4XXX-Themis/dhboot-min.bin.img",
    "BotoX__DH_IPC-HX4XXX-Themis/partition-x.cramfs.img.raw",
];

#[test]
fn truncated_and_bit_flipped_samples_never_panic() {
    let mut samples = Vec::new();
    for rel in WAVE1 {
        let Some(path) = common::sample(rel) else {
            return;
        };
        samples.push((rel, std::fs::read(path).unwrap()));
    }
    let limits = Limits {
        time_budget: Duration::from_secs(20),
        ..Limits::default()
    };
    let mut rng = XorShift(0x5EED_F00D_CAFE_BABE);
    let mut variants = 0;
    let start = Instant::now();
    for (rel, data) in &samples {
        let mut mutants: Vec<Vec<u8>> = mutate::truncations(data);
        // Bit flips: some in the first 256 bytes (headers), some anywhere, some bursts.
        for k in 0..8 {
            let mut m = data.clone();
            let flips = 1 + k % 4;
            for _ in 0..flips {
                let at = if k < 4 {
                    rng.below(data.len().min(256))
                } else {
                    rng.below(data.len())
                };
                m[at] ^= 1 << rng.below(8);
            }
            mutants.push(m);
        }
        // Sizes and counts set to extremes: overwrite a random aligned word with 0xFF.. / 0.
        for fill in [0xFFu8, 0x00, 0x7F] {
            let mut m = data.clone();
            let at = rng.below(data.len().min(512)) & !3;
            for b in m.iter_mut().skip(at).take(4) {
                *b = fill;
            }
            mutants.push(m);
        }
        for m in mutants {
            let t0 = Instant::now();
            let tree = unpack(Bytes::from(m), b"mutant", &limits);
            assert!(tree.root().is_some(), "{rel}: no tree");
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{rel}: variant {variants} took {:?}",
                t0.elapsed()
            );
            variants += 1;
        }
    }
    assert!(variants >= 400, "{variants}");
    eprintln!("{variants} mutants in {:?}", start.elapsed());
}

// ---------------------------------------------------------------------------------------------
// The measured suite: each hostile image is given to the real binary (`fwsim unpack --json`) as
// a child process, whose wall time and peak resident memory (GNU time's `ru_maxrss`) are
// asserted, as is a clear error in its (valid) JSON output.
// ---------------------------------------------------------------------------------------------

/// Wall-clock bound of every measured case: a debug build on a 2-core machine shared with
/// other builds (each case takes a few seconds at most unloaded; see the README for figures).
const SUITE_WALL: Duration = Duration::from_secs(90);

/// Runs `fwsim unpack --json --quiet ARGS IMAGE` on `image` written as `name`, asserting success,
/// the wall bound and `max_rss_mib`; `None` when GNU time is missing (outside CI).
fn measured(
    name: &str,
    image: &[u8],
    args: &[&str],
    max_rss_mib: u64,
) -> Option<Vec<serde_json::Value>> {
    if !measure::available() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, image).unwrap();
    let mut argv: Vec<&OsStr> = ["unpack", "--json", "--quiet"]
        .iter()
        .map(OsStr::new)
        .collect();
    argv.extend(args.iter().map(OsStr::new));
    argv.push(path.as_os_str());
    let m = measure::fwsim(dir.path(), &argv);
    eprintln!(
        "hostile suite: {name}: {:.2} s wall, {} MiB peak RSS",
        m.wall.as_secs_f64(),
        m.peak_rss_mib
    );
    assert!(
        m.success,
        "{name}: fwsim failed: {}",
        String::from_utf8_lossy(&m.stderr)
    );
    assert!(m.wall < SUITE_WALL, "{name}: took {:?}", m.wall);
    assert!(
        m.peak_rss_mib <= max_rss_mib,
        "{name}: peak RSS {} MiB > {max_rss_mib} MiB",
        m.peak_rss_mib
    );
    Some(m.json_lines())
}

/// Every `error` string in a listing.
fn json_errors(entries: &[serde_json::Value]) -> Vec<&str> {
    entries.iter().filter_map(|e| e["error"].as_str()).collect()
}

fn json_entry<'e>(entries: &'e [serde_json::Value], path: &str) -> &'e serde_json::Value {
    entries
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no entry {path}"))
}

#[test]
fn measured_gzip_bomb_of_8_gib_stops_at_the_memory_limit() {
    // 8 GiB of zeros in 8 MiB: the ratio (1000x) and file (2 GiB) limits would let 2 GiB through;
    // the memory budget stops it at 256 MiB.
    let bomb = streams::gzip_zero_bomb(8 << 30);
    let Some(entries) = measured("bomb8g.gz", &bomb, &["--max-memory", "256M"], 400) else {
        return;
    };
    assert_eq!(entries[0]["format"], "gzip");
    assert_eq!(
        entries[0]["error"],
        "memory limit reached (268435456 bytes held)"
    );
}

#[test]
fn measured_gzip_xz_lzma_bzip2_zstd_bombs_stop_at_the_ratio_limit() {
    let zeros = vec![0u8; 16 << 20];
    let bombs: [(&str, Vec<u8>); 5] = [
        ("bomb.gz", streams::gzip_zero_bomb(64 << 20)),
        ("bomb.xz", streams::xz(&zeros).repeat(8)),
        ("bomb.lzma", streams::lzma(&zeros, false).repeat(8)),
        ("bomb.bz2", streams::bzip2(&zeros).repeat(8)),
        ("bomb.zst", streams::zstd(&zeros).repeat(8)),
    ];
    for (name, bomb) in bombs {
        let Some(entries) = measured(name, &bomb, &[], 200) else {
            return;
        };
        let errors = json_errors(&entries);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("expansion ratio limit reached (1000x of")),
            "{name}: {errors:?}"
        );
    }
}

#[test]
fn measured_zip_bombs_overlapping_and_many_entries_stop_with_clear_errors() {
    use common::archives::{self, RawEntry, RawZip};
    // Fifield's overlap: 5,000 central-directory records all pointing at one 64 MiB kernel.
    let kernel = vec![0u8; 64 << 20];
    let packed = archives::deflate(&kernel);
    let overlap = RawZip {
        entries: vec![RawEntry::new("kernel", 8, &kernel, packed)],
        aliases_of_first: 5_000,
        comment: Vec::new(),
    }
    .build();
    let Some(entries) = measured("overlap.zip", &overlap, &[], 200) else {
        return;
    };
    assert!(entries.len() > 5_000, "{}", entries.len());
    let alias = json_entry(&entries, "overlap.zip/alias4999");
    assert!(
        alias["error"].as_str().unwrap().contains("overlaps"),
        "{alias}"
    );

    // 1,000 separate entries of 4 MiB of zeros each (every one under the ratio floor, 4 GB in
    // all) and a text file last: the memory budget cuts the entries off, the text is still read.
    let plain = vec![0u8; 4 << 20];
    let packed = archives::deflate(&plain);
    let mut members: Vec<RawEntry> = (0..1000)
        .map(|i| RawEntry::new(&format!("zeros{i:04}"), 8, &plain, packed.clone()))
        .collect();
    let note = b"the last entry of the archive".to_vec();
    members.push(RawEntry::new("note.txt", 0, &note, note.clone()));
    let many = RawZip {
        entries: members,
        aliases_of_first: 0,
        comment: Vec::new(),
    }
    .build();
    let Some(entries) = measured("many.zip", &many, &["--max-memory", "128M"], 300) else {
        return;
    };
    let memory = "memory limit reached (134217728 bytes held)";
    let errors = json_errors(&entries);
    // The entry that hit the limit, and the archive's node, say so; every later entry is listed
    // as not extracted for that reason.
    assert_eq!(
        errors.iter().filter(|e| **e == memory).count(),
        2,
        "{errors:?}"
    );
    let later = format!("unsupported: not extracted: {memory}");
    let not_extracted = errors.iter().filter(|e| **e == later).count();
    assert!(not_extracted > 950, "{not_extracted}: {errors:?}");
    let kept = entries.iter().filter(|e| e["size"] == (4u64 << 20)).count();
    assert!((16..=32).contains(&kept), "{kept}");
    assert_eq!(kept + not_extracted + 1, 1001);
    let note = json_entry(&entries, "many.zip/note.txt");
    assert_eq!(note["error"], later.as_str());
}

#[test]
fn measured_squashfs_with_a_cyclic_directory_table_stops_with_an_error() {
    use fwsim::synth::squashfs3::{Sq3Node, Sq3Options, build};
    // Inodes are written children first: "a/b" (28 bytes), then "a", then the root. Point b's
    // listing (size, offset, start block) at a's listing, which lists b.
    let items = vec![("a/b", Sq3Node::Dir(0o755))];
    let opts = Sq3Options {
        zlib: false,
        ..Sq3Options::default()
    };
    let mut img = build(&items, &opts).unwrap();
    let t = u64::from_le_bytes(img[87..95].try_into().unwrap()) as usize + 2;
    let a_listing: Vec<u8> = img[t + 28 + 16..t + 28 + 24].to_vec();
    img[t + 16..t + 24].copy_from_slice(&a_listing);
    let Some(entries) = measured("cyclic.sqfs", &img, &[], 100) else {
        return;
    };
    let again = json_entry(&entries, "cyclic.sqfs/a/b/b");
    assert!(
        again["error"].as_str().unwrap().contains("cycle"),
        "{again}"
    );
}

#[test]
fn measured_cramfs_with_huge_claimed_sizes_stops_with_errors() {
    use fwsim::unpack::bytes::Endian;
    use fwsim::unpack::formats::cramfs::{self, Entry};
    // 200 files of 100 bytes; every inode then claims 16 MiB - 1 (the 24-bit maximum), 3.2 GB
    // in all, and the superblock claims a 4 GiB image.
    let entries: Vec<Entry> = (0..200)
        .map(|i| Entry::File(format!("f{i:03}"), 0o644, vec![b'a' + (i % 26) as u8; 100]))
        .collect();
    let mut img = cramfs::build(&entries, Endian::Little);
    let mut at = 76;
    for _ in 0..200 {
        let w1 = u32::from_le_bytes(img[at + 4..at + 8].try_into().unwrap());
        img[at + 4..at + 8].copy_from_slice(&(w1 | 0x00FF_FFFF).to_le_bytes());
        let w2 = u32::from_le_bytes(img[at + 8..at + 12].try_into().unwrap());
        at += 12 + ((w2 & 0x3F) * 4) as usize;
    }
    img[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let Some(listing) = measured("huge.cramfs", &img, &[], 100) else {
        return;
    };
    let errors = json_errors(&listing);
    assert!(!errors.is_empty(), "no error for lying sizes");
    // Nothing of the claimed 3.2 GB was produced.
    let produced: u64 = listing.iter().filter_map(|e| e["size"].as_u64()).sum();
    assert!(produced < (8 << 20) + img.len() as u64, "{produced}");
}

#[test]
fn measured_cpio_with_200_000_entries_is_listed_whole() {
    use common::archives::{CpioEntry, CpioKind, cpio};
    let entries: Vec<CpioEntry> = (0..200_000u32)
        .map(|i| CpioEntry {
            name: format!("d/f{i:06}").into_bytes(),
            mode: 0o100_644,
            data: Vec::new(),
            ino: i + 2,
            nlink: 1,
        })
        .collect();
    let img = cpio(CpioKind::Newc, &entries);
    let Some(listing) = measured("many.cpio", &img, &[], 700) else {
        return;
    };
    assert_eq!(listing.len(), 200_001);
    assert!(json_errors(&listing).is_empty());
    json_entry(&listing, "many.cpio/d/f199999");
}

#[test]
fn measured_overlapping_uimages_give_disjoint_regions() {
    use fwsim::unpack::formats::uimage;
    // 1,000 valid uImages 128 bytes apart, each claiming 64 KiB: every one overlaps the next
    // 500. Written from the last to the first so that each data CRC covers the final bytes.
    // Carving keeps the first and finds the next inside its payload, one level down.
    const N: usize = 1000;
    const STEP: usize = 128;
    const SIZE: usize = 64 << 10;
    let total = (N - 1) * STEP + 64 + SIZE;
    let mut img: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    for i in (0..N).rev() {
        let at = i * STEP;
        let payload = img[at + 64..at + 64 + SIZE].to_vec();
        let one = uimage::build(&format!("part{i}"), 5, 2, 5, 0, &payload);
        img[at..at + 64].copy_from_slice(&one[..64]);
    }
    let Some(listing) = measured("overlap.img", &img, &[], 100) else {
        return;
    };
    // At every level the carved regions are disjoint.
    let mut by_parent: std::collections::BTreeMap<String, Vec<(u64, u64)>> = Default::default();
    for e in &listing {
        let path = e["path"].as_str().unwrap();
        if let (Some((parent, _)), Some(off)) = (path.rsplit_once('/'), e["offsets"].as_array())
            && e["formats"].as_array().unwrap().last() == Some(&"carve".into())
        {
            let start = off.last().unwrap().as_u64().unwrap();
            let end = start + e["size"].as_u64().unwrap();
            by_parent
                .entry(parent.to_owned())
                .or_default()
                .push((start, end));
        }
    }
    assert!(!by_parent.is_empty());
    for (parent, mut regions) in by_parent {
        regions.sort();
        for w in regions.windows(2) {
            assert!(w[0].1 <= w[1].0, "{parent}: {w:?}");
        }
    }
    // Each nested header claims past its parent's end: a clear truncation error.
    let errors = json_errors(&listing);
    assert!(
        errors.contains(
            &"truncated: uImage 'part1': header announces 65536 payload bytes, 65408 present"
        ),
        "{errors:?}"
    );
}

#[test]
fn measured_gzip_nested_1000_deep_is_unpacked_to_the_bottom() {
    let mut data = b"the innermost file".to_vec();
    for _ in 0..1000 {
        data = streams::gzip(&data);
    }
    let Some(listing) = measured("deep.gz", &data, &["--max-depth", "1000"], 100) else {
        return;
    };
    assert_eq!(listing.len(), 1001);
    let bottom = listing.last().unwrap();
    assert_eq!(bottom["size"], 18);
    assert_eq!(bottom["formats"].as_array().unwrap().len(), 1000);
    // With the default limit the same image stops at 24 levels with a clear error.
    let listing = measured("deep.gz", &data, &[], 100).unwrap();
    assert!(json_errors(&listing).contains(&"nesting depth limit reached (24 levels)"));
}

#[test]
fn measured_symlink_loops_finish_and_write_nothing_outside() {
    use common::rawtar::{archive, member};
    if !measure::available() {
        return;
    }
    let tar = archive(&[
        member(b"a", b'2', b"b", b""),
        member(b"b", b'2', b"a", b""),
        member(b"self", b'2', b"self", b""),
        member(b"down", b'2', b"down/down", b""),
        member(b"dot", b'2', b".", b""),
        member(b"up", b'2', b"..", b""),
        member(b"a/through", b'0', b"", b"through a loop"),
        member(b"self/x", b'0', b"", b"through self"),
        member(b"dot/dot/dot/file", b'0', b"", b"through dot"),
        member(b"up/escaped", b'0', b"", b"through up"),
        member(b"plain", b'0', b"", b"plain file"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    std::fs::create_dir(&base).unwrap();
    let image = dir.path().join("loops.tar");
    std::fs::write(&image, tar).unwrap();
    let out = base.join("out");
    let before = walk(dir.path());
    let m = measure::fwsim(
        dir.path(),
        &[
            OsStr::new("unpack"),
            OsStr::new("--json"),
            OsStr::new("--quiet"),
            OsStr::new("--out"),
            out.as_os_str(),
            image.as_os_str(),
        ],
    );
    eprintln!(
        "hostile suite: loops.tar --out: {:.2} s wall, {} MiB peak RSS",
        m.wall.as_secs_f64(),
        m.peak_rss_mib
    );
    assert!(m.success, "{}", String::from_utf8_lossy(&m.stderr));
    assert!(m.wall < SUITE_WALL && m.peak_rss_mib <= 100);
    let listing = m.json_lines();
    let after = walk(dir.path());
    for p in after.difference(&before) {
        let time_report = p.parent() == Some(dir.path());
        assert!(
            p.starts_with(&out) || time_report,
            "written outside the output folder: {}",
            p.display()
        );
    }
    // Folders win over links of the same name; every file written sits in real folders.
    for p in after.iter().filter(|p| p.starts_with(&out)) {
        if std::fs::symlink_metadata(p).unwrap().is_file() {
            for dir in p.ancestors().skip(1).take_while(|d| d.starts_with(&out)) {
                assert!(
                    std::fs::symlink_metadata(dir).unwrap().is_dir(),
                    "{} lies under a link",
                    p.display()
                );
            }
        }
    }
    assert_eq!(std::fs::read(out.join("plain")).unwrap(), b"plain file");
    assert_eq!(std::fs::read_link(out.join("b")).unwrap(), Path::new("a"));
    let down = json_entry(&listing, "loops.tar/down");
    assert!(
        down["not_written"].as_str().unwrap().contains("loops"),
        "{down}"
    );
    for link in ["a", "self", "dot", "up"] {
        let e = json_entry(&listing, &format!("loops.tar/{link}"));
        assert!(
            e["not_written"]
                .as_str()
                .unwrap()
                .contains("collides with the folder"),
            "{e}"
        );
    }
}

/// Every path under `dir` (links listed, never followed).
fn walk(dir: &Path) -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

/// An Ambarella ROMFS whose one entry is the whole image: a blob that holds a copy of itself.
/// Copies are unpacked once and their entries reused; at the depth limit a copy must stop there
/// with the limit error instead of nesting on until the entry limit (with paths growing at every
/// level, that had taken gigabytes).
#[test]
fn a_blob_holding_a_copy_of_itself_stops_at_the_depth_limit() {
    let mut img = vec![0u8; 2048 + 128];
    img[0..4].copy_from_slice(&1u32.to_le_bytes());
    img[4..8].copy_from_slice(&0x66FC_328Au32.to_le_bytes());
    img[2048..2056].copy_from_slice(b"self.bin");
    let len = img.len() as u32;
    img[2048 + 116..2048 + 120].copy_from_slice(&0u32.to_le_bytes());
    img[2048 + 120..2048 + 124].copy_from_slice(&len.to_le_bytes());
    img[2048 + 124..2048 + 128].copy_from_slice(&0x2387_AB76u32.to_le_bytes());
    let limits = Limits {
        max_depth: 6,
        ..Limits::default()
    };
    let (tree, took) = timed(img, &limits);
    assert!(took < QUICK, "{took:?}");
    // The image and one copy a level, down to the limit.
    assert_eq!(tree.nodes().len(), 7, "{}", tree.nodes().len());
    let deepest = tree.nodes().iter().max_by_key(|n| n.depth).unwrap();
    assert_eq!(deepest.depth, 6);
    assert!(deepest.same_as.is_some());
    assert_eq!(
        deepest.error,
        Some(UnpackError::Limit(LimitError::Depth { max: 6 }))
    );
}
