//! Hostile input against the whole engine: decompression bombs, a deep container chain,
//! self-similar carving traps and magic floods all stop at a named limit within a time bound; the
//! real samples, truncated and bit-flipped a few hundred ways, never panic and always give a tree.

use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::unpack::{LimitError, Limits, Tree, UnpackError, unpack};

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

/// Small deterministic PRNG for the mutation test.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
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
        let mut mutants: Vec<Vec<u8>> = Vec::new();
        // Truncations: inside the first header, at fixed fractions, one byte short.
        for cut in [
            1,
            13,
            65,
            data.len() / 4,
            data.len() / 2,
            data.len() * 3 / 4,
            data.len() - 1,
        ] {
            mutants.push(data[..cut.min(data.len())].to_vec());
        }
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
