//! Fingerprints of images built in code from real camera binaries: unique files with all their
//! paths, classes, components, coverage of padding and opaque data, JSON round trip, refusal of a
//! stale fingerprint, and the `fwsim fingerprint` command.

use backhand::compression::Compressor;
use bytes::Bytes;
use fwsim::features::class::ContentClass;
use fwsim::features::{FeatureParams, fingerprint};
use fwsim::fingerprint::{Fingerprint, SCHEMA_VERSION};
use fwsim::unpack::{Limits, unpack};

use crate::common::fs_images::{Item, squashfs};
use crate::common::{fwsim, sample};

const XM: &str = "nikitos1550__XM_ipcam_crypto_generator/rootfs_toburn";

/// Bytes that look random (no structure, entropy near 8).
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}

fn pem(kind: &str, body: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    let mut out = format!("-----BEGIN {kind}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {kind}-----\n"));
    out.into_bytes()
}

/// A squashfs rootfs of real XM binaries (busybox twice, under two names), a script, a config, a
/// certificate and a key; returns the image (32 KiB of noise, the squashfs, 64 KiB of zeros), the
/// squashfs' size as its superblock records it, and that size padded to 4 KiB.
fn image() -> Option<(Vec<u8>, u64, u64)> {
    let read = |rel: &str| std::fs::read(sample(&format!("{XM}/{rel}"))?).ok();
    let busybox = read("bin/busybox")?;
    let uclibc = read("lib/libuClibc-0.9.32.1.so")?;
    let libdvr = read("usr/lib/libdvr.so")?;
    let items = vec![
        Item::Dir("bin", 0o755),
        Item::Dir("lib", 0o755),
        Item::Dir("etc", 0o755),
        Item::Dir("etc/ssl", 0o755),
        Item::Dir("usr", 0o755),
        Item::Dir("usr/lib", 0o755),
        Item::File("bin/busybox", 0o755, busybox.clone()),
        Item::File("bin/busybox.bak", 0o755, busybox),
        Item::File("lib/libuClibc-0.9.32.1.so", 0o755, uclibc),
        Item::File("usr/lib/libdvr.so", 0o755, libdvr),
        Item::File("etc/init.d.sh", 0o755, b"#!/bin/sh\nmount -a\n".to_vec()),
        Item::File(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        ),
        Item::File("etc/ssl/ca.crt", 0o644, pem("CERTIFICATE", &noise(700, 1))),
        Item::File(
            "etc/ssl/server.key",
            0o600,
            pem("PRIVATE KEY", &noise(1200, 2)),
        ),
    ];
    let fs = squashfs(&items, Compressor::Xz, false);
    // The filesystem proper: `bytes_used` (backhand leaves more bytes after it), padded with
    // zeros to 4 KiB as mksquashfs does.
    let bytes_used = u64::from_le_bytes(fs[40..48].try_into().unwrap());
    let padded = bytes_used.div_ceil(4096) * 4096;
    let mut img = noise(32 << 10, 7);
    img.extend_from_slice(&fs[..bytes_used as usize]);
    img.extend(std::iter::repeat_n(
        0u8,
        (padded - bytes_used) as usize + (64 << 10),
    ));
    Some((img, bytes_used, padded))
}

fn fingerprint_of(img: &[u8]) -> Fingerprint {
    let tree = unpack(
        Bytes::copy_from_slice(img),
        b"camera.bin",
        &Limits::default(),
    );
    fingerprint(&tree, &FeatureParams::default())
}

#[test]
fn fingerprint_of_a_rootfs_of_real_binaries() {
    let Some((img, bytes_used, padded)) = image() else {
        return;
    };
    let fp = fingerprint_of(&img);
    assert_eq!(fp.schema_version, SCHEMA_VERSION);
    assert_eq!(fp.image.size, img.len() as u64);
    let by_suffix = |s: &str| {
        fp.files
            .iter()
            .find(|f| f.paths.iter().any(|p| p.ends_with(s)))
            .unwrap_or_else(|| panic!("no file {s}"))
    };
    // One entry for busybox, with both paths.
    let bb = by_suffix("bin/busybox");
    assert_eq!(bb.paths.len(), 2, "{:?}", bb.paths);
    assert_eq!(bb.class, ContentClass::ElfExecutable);
    assert!(
        bb.components
            .iter()
            .any(|c| c.component == "busybox" && c.version.as_deref() == Some("1.16.1"))
    );
    assert!(bb.digests.ssdeep.is_some() && bb.digests.tlsh.is_some());
    assert!(bb.strings > 1000);
    assert_eq!(
        bb.elf.as_ref().unwrap().interpreter.as_deref(),
        Some("/lib/ld-uClibc.so.0")
    );
    let uc = by_suffix("libuClibc-0.9.32.1.so");
    assert_eq!(uc.class, ContentClass::ElfSharedObject);
    assert!(uc.components.iter().any(|c| c.component == "uclibc"));
    let dvr = by_suffix("usr/lib/libdvr.so");
    assert!(
        dvr.elf
            .as_ref()
            .unwrap()
            .exports
            .iter()
            .any(|s| s == "AlarmCreate")
    );
    assert_eq!(by_suffix("etc/init.d.sh").class, ContentClass::Script);
    assert_eq!(by_suffix("etc/passwd").class, ContentClass::Config);
    assert_eq!(by_suffix("etc/ssl/ca.crt").class, ContentClass::Certificate);
    assert_eq!(
        by_suffix("etc/ssl/server.key").class,
        ContentClass::Certificate
    );
    // Unique by content: no two entries share a sha256.
    let mut shas: Vec<&str> = fp.files.iter().map(|f| f.sha256.as_str()).collect();
    shas.sort_unstable();
    shas.dedup();
    assert_eq!(shas.len(), fp.files.len());

    // Coverage: the noise is opaque (high entropy), the squashfs identified, the rest padding.
    let c = &fp.coverage;
    assert_eq!(c.image_bytes, img.len() as u64);
    assert_eq!(
        c.identified_bytes + c.padding_bytes + c.opaque_bytes,
        c.image_bytes
    );
    assert_eq!(c.opaque_bytes, 32 << 10, "{c:#?}");
    // The squashfs claims its 4 KiB-padded extent; the zeros after it are padding.
    assert!(padded >= bytes_used);
    assert_eq!(c.identified_bytes, padded);
    assert_eq!(c.padding_bytes, 64 << 10);
    assert_eq!(c.opaque.len(), 1);
    assert_eq!((c.opaque[0].offset, c.opaque[0].len), (0, 32 << 10));
    assert!(c.opaque[0].entropy > 7.9, "{}", c.opaque[0].entropy);
    assert!((c.identified_share + c.padding_share + c.opaque_share - 1.0).abs() < 1e-5);
}

#[test]
fn fingerprint_json_round_trip_and_stale_refusal() {
    let Some((img, _, _)) = image() else { return };
    let fp = fingerprint_of(&img);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fp.json");
    fp.write(&path).unwrap();
    let params = FeatureParams::default().recorded();
    let back = Fingerprint::read(&path, &params).unwrap();
    assert_eq!(back, fp);

    // Another schema version: refused as stale.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["schema_version"] = (SCHEMA_VERSION + 1).into();
    let err = Fingerprint::from_json(&v.to_string(), &params).unwrap_err();
    assert!(matches!(err, fwsim::Error::Refused(_)), "{err}");
    v.as_object_mut().unwrap().remove("schema_version");
    assert!(matches!(
        Fingerprint::from_json(&v.to_string(), &params),
        Err(fwsim::Error::Refused(_))
    ));
    // Other parameters: refused.
    let other = FeatureParams {
        string_min_len: 4,
        ..FeatureParams::default()
    }
    .recorded();
    let err = Fingerprint::read(&path, &other).unwrap_err();
    assert!(matches!(err, fwsim::Error::Refused(_)), "{err}");
    assert!(err.to_string().starts_with("refused: "));
    // Not a fingerprint at all: invalid, not refused.
    let bare = format!(
        "{{\"schema_version\": {}}}",
        fwsim::fingerprint::SCHEMA_VERSION
    );
    assert!(matches!(
        Fingerprint::from_json(&bare, &params),
        Err(fwsim::Error::Invalid(_))
    ));
}

#[test]
fn fingerprint_command_writes_a_readable_fingerprint() {
    let Some((img, _, _)) = image() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("camera.bin");
    std::fs::write(&input, &img).unwrap();
    let out_path = dir.path().join("camera.fp.json");
    let out = fwsim(&[
        "fingerprint",
        "--quiet",
        input.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let fp = Fingerprint::read(&out_path, &FeatureParams::default().recorded()).unwrap();
    assert_eq!(fp, fingerprint_of(&img));
    // To stdout, with another string minimum: recorded in the parameters.
    let out = fwsim(&[
        "fingerprint",
        "-q",
        "--string-min-len",
        "8",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["params"]["string_min_len"], 8);
    let bad = fwsim(&["fingerprint", dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
}

/// The JSON of a fingerprint, as `fwsim fingerprint` writes it.
fn json(fp: &Fingerprint) -> String {
    let mut out = Vec::new();
    fp.write_to(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Fingerprinting while unpacking (features of each file computed as soon as it is analysed)
/// gives exactly the tree and the fingerprint of unpacking first: on the synthetic camera in
/// three packagings (nested uImages and squashfs, tar.gz, a flash dump with carved partitions)
/// and on the rootfs of real binaries (duplicate files, padding, noise).
#[test]
fn fingerprint_while_unpacking_equals_unpack_then_fingerprint() {
    use fwsim::synth::{Firmware, Options};
    let fw = Firmware::camera(&Options::tiny()).unwrap();
    let mut images = vec![
        ("camera.bin", fw.dahua_bin().unwrap()),
        ("update.tgz", fw.tar_gz().unwrap()),
        ("flash.bin", fw.flash_dump().unwrap().0),
    ];
    match image() {
        Some((img, _, _)) => images.push(("rootfs.bin", img)),
        None => eprintln!("skipping the real-binary image: sample missing"),
    }
    let params = FeatureParams::default();
    for (name, img) in images {
        let data = Bytes::from(img);
        let tree = unpack(data.clone(), name.as_bytes(), &Limits::default());
        let expected = fingerprint(&tree, &params);
        let levels = std::sync::atomic::AtomicUsize::new(0);
        let (tree2, fp) = fwsim::features::unpack_and_fingerprint(
            data,
            name.as_bytes(),
            &Limits::default(),
            &params,
            &|_| {
                levels.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
        );
        assert!(
            levels.into_inner() >= 2,
            "{name}: progress after each level"
        );
        let paths = |t: &fwsim::unpack::Tree| -> Vec<Vec<u8>> {
            t.nodes().iter().map(|n| n.path.clone()).collect()
        };
        assert_eq!(paths(&tree2), paths(&tree), "{name}");
        assert!(
            expected.files.len() > 5,
            "{name}: {} files",
            expected.files.len()
        );
        assert!(expected.files.iter().any(|f| f.elf.is_some()), "{name}");
        // Evidence found while unpacking is the evidence found afterwards.
        assert!(!expected.evidence.is_empty(), "{name}: no evidence");
        assert_eq!(json(&fp), json(&expected), "{name}");
    }
}
