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
