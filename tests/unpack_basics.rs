//! The unpack engine end to end through the binary: JSON Lines fields, nesting, carving.

use std::io::Write;

use crate::common;

#[test]
fn json_lines_carry_the_contract_fields() {
    let dir = tempfile::tempdir().unwrap();
    let mut gz = flate2::GzBuilder::new()
        .filename("hello.txt")
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(b"hello firmware\n").unwrap();
    let payload = gz.finish().unwrap();
    let img = fwsim::unpack::formats::uimage::build("rootfs", 5, 2, 7, 0, &payload);
    let path = dir.path().join("img.bin");
    std::fs::write(&path, &img).unwrap();

    let entries = common::unpack_json(&path, &[]);
    let leaf = entries
        .iter()
        .find(|e| e["path"] == "img.bin/rootfs/hello.txt")
        .expect("nested file listed");
    assert_eq!(leaf["size"], 15);
    assert_eq!(leaf["kind"], "file");
    assert_eq!(leaf["formats"], serde_json::json!(["uimage", "gzip"]));
    assert_eq!(leaf["sha256"], hex_sha256(b"hello firmware\n"));
    let root = &entries[0];
    assert_eq!(root["path"], "img.bin");
    assert_eq!(root["format"], "uimage");
    assert_eq!(root["format_meta"]["name"], "rootfs");
    assert_eq!(root["format_meta"]["data_crc_ok"], true);
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[test]
fn carving_finds_partitions_between_padding() {
    let dir = tempfile::tempdir().unwrap();
    let mut flash = vec![0xFFu8; 0x10000];
    let a = fwsim::unpack::formats::uimage::build("boot", 17, 2, 5, 0, b"BOOTLOADER CODE");
    let b = fwsim::unpack::formats::uimage::build("kernel", 5, 2, 2, 0, b"KERNEL CODE");
    flash[0x1000..0x1000 + a.len()].copy_from_slice(&a);
    flash[0x8000..0x8000 + b.len()].copy_from_slice(&b);
    let path = dir.path().join("flash.bin");
    std::fs::write(&path, &flash).unwrap();
    let entries = common::unpack_json(&path, &[]);
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"flash.bin/0x1000.uimage/boot"), "{paths:?}");
    assert!(
        paths.contains(&"flash.bin/0x8000.uimage/kernel"),
        "{paths:?}"
    );
    let k = entries
        .iter()
        .find(|e| e["path"] == "flash.bin/0x8000.uimage/kernel")
        .unwrap();
    assert_eq!(k["formats"], serde_json::json!(["carve", "uimage"]));
    assert_eq!(k["offsets"], serde_json::json!([0x8000, 64]));
}

/// The id of the one node whose path ends with `suffix`.
fn id_of(tree: &fwsim::unpack::Tree, suffix: &str) -> usize {
    let ids: Vec<usize> = (0..tree.nodes().len())
        .filter(|&i| tree.get(i).unwrap().path.ends_with(suffix.as_bytes()))
        .collect();
    assert_eq!(ids.len(), 1, "{suffix}: {ids:?}");
    ids[0]
}

#[test]
fn hashing_only_to_dedupe_finds_every_copy_and_builds_the_same_tree() {
    use common::streams;
    use fwsim::unpack::{Hashing, Limits, unpack_with_progress};
    use sha2::Digest;

    let tar = |files: &[(&str, &[u8])]| -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    };
    // A gzip member at depth 1 and an identical one at depth 2 (inside a tar), whose contents
    // then meet at depths 2 and 3; two identical files and two same-length different ones in
    // one level; a file whose length nothing else has.
    let shared = streams::gzip(&streams::text(20_000, 7));
    let inner = tar(&[
        ("copy.gz", &shared),
        ("unique.bin", &streams::text(3_001, 9)),
    ]);
    let outer = tar(&[
        ("first.gz", &shared),
        ("inner.tar", &inner),
        ("pair-1", &streams::text(6_007, 3)),
        ("pair-2", &streams::text(6_007, 3)),
        ("twin-1", &streams::text(5_003, 4)),
        ("twin-2", &streams::text(5_003, 5)),
    ]);
    let run = |h| {
        unpack_with_progress(
            outer.clone().into(),
            b"outer.tar",
            &Limits::default(),
            h,
            &|_| {},
        )
    };
    let all = run(Hashing::All);
    let lazy = run(Hashing::Dedupe);
    let sha = |d: &[u8]| -> [u8; 32] { sha2::Sha256::digest(d).into() };

    // The same tree: every node, in order, with the same bytes, format, copy and error.
    assert_eq!(all.nodes().len(), lazy.nodes().len());
    for (a, l) in all.nodes().iter().zip(lazy.nodes()) {
        assert_eq!(a.path, l.path);
        assert_eq!(a.data, l.data, "{}", String::from_utf8_lossy(&a.path));
        assert_eq!(a.format, l.format);
        assert_eq!(a.same_as, l.same_as, "{}", String::from_utf8_lossy(&a.path));
        assert_eq!(a.error, l.error);
        if a.kind == fwsim::unpack::EntryKind::File {
            assert_eq!(a.sha256, Some(sha(&a.data)));
        }
        if let Some(h) = l.sha256 {
            assert_eq!(Some(h), a.sha256);
        }
    }

    // Copies found across levels (the earlier blob hashed late) and inside one level.
    for tree in [&all, &lazy] {
        let first = id_of(tree, "/first.gz");
        let copy = id_of(tree, "/copy.gz");
        assert_eq!(tree.get(copy).unwrap().same_as, Some(first));
        assert_eq!(
            tree.get(id_of(tree, "/copy.gz/copy")).unwrap().same_as,
            Some(id_of(tree, "/first.gz/first"))
        );
        let pair = id_of(tree, "/pair-1");
        assert_eq!(
            tree.get(id_of(tree, "/pair-2")).unwrap().same_as,
            Some(pair)
        );
        assert_eq!(tree.get(id_of(tree, "/twin-2")).unwrap().same_as, None);
    }
    let node = |suffix| lazy.get(id_of(&lazy, suffix)).unwrap();
    assert_eq!(node("/first.gz").sha256, Some(sha(&shared)));
    assert_eq!(node("/copy.gz").sha256, Some(sha(&shared)));
    assert!(node("/twin-1").sha256.is_some() && node("/twin-2").sha256.is_some());
    // What no other blob could equal is left unhashed.
    assert_eq!(node("/unique.bin").sha256, None);
    assert_eq!(lazy.root().unwrap().sha256, None);
    assert_eq!(node("/inner.tar").sha256, None);
}
