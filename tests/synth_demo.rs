//! The project's own image writers (`fwsim::synth`) round-trip through `fwsim unpack`: every file
//! put in is listed with the right bytes, kind and format chain; and `fwsim demo` works.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use fwsim::synth::{EntryData, Firmware, Options, Payload, Rootfs, squashfs};
use serde_json::Value;

use crate::common;

fn sha(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Whether every format in `names` is registered. The writers here reach past the formats this
/// module owns (squashfs, zip/dahua, tar are other modules' readers): until they are registered
/// the round trip through them cannot run, and says so.
fn formats_registered(names: &[&str]) -> bool {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| fwsim::unpack::formats::by_name(n).is_none())
        .collect();
    if !missing.is_empty() {
        eprintln!("skipped: formats not registered: {missing:?}");
    }
    missing.is_empty()
}

fn by_path(entries: &[Value]) -> HashMap<&str, &Value> {
    entries
        .iter()
        .map(|e| (e["path"].as_str().expect("path"), e))
        .collect()
}

/// Every entry of `rootfs` is listed under `prefix` with its kind, and every file with its size,
/// SHA-256 and the format chain `chain`.
fn assert_rootfs_listed(
    entries: &HashMap<&str, &Value>,
    prefix: &str,
    rootfs: &Rootfs,
    chain: &[&str],
) {
    assert!(!rootfs.is_empty());
    for (path, entry) in rootfs.entries() {
        let full = format!("{prefix}/{path}");
        let e = entries
            .get(full.as_str())
            .unwrap_or_else(|| panic!("{full} not listed"));
        match &entry.data {
            EntryData::File(data) => {
                assert_eq!(e["kind"], "file", "{full}");
                assert_eq!(e["size"], data.len(), "{full}");
                assert_eq!(e["sha256"], sha(data), "{full}");
                assert_eq!(e["formats"], serde_json::json!(chain), "{full}");
            }
            EntryData::Dir => assert_eq!(e["kind"], "dir", "{full}"),
            EntryData::Symlink(target) => {
                assert_eq!(e["kind"], "symlink", "{full}");
                assert_eq!(e["target"], target.as_str(), "{full}");
            }
        }
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn dahua_bin_round_trips_through_unpack() {
    if !formats_registered(&["dahua", "uimage", "squashfs"]) {
        return;
    }
    let fw = Firmware::camera(&Options::tiny()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = write(dir.path(), "fw.bin", &fw.dahua_bin().unwrap());
    let entries = common::unpack_json(&img, &[]);
    let map = by_path(&entries);
    assert_eq!(entries[0]["format"], "dahua");
    let errors: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("error").is_some())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    for (name, text) in [
        ("Install", fw.install_manifest()),
        ("hwid", fw.hwid_manifest()),
    ] {
        let e = map[format!("fw.bin/{name}").as_str()];
        assert_eq!(e["sha256"], sha(text.as_bytes()), "{name}");
        assert_eq!(e["formats"], serde_json::json!(["dahua"]));
    }
    for p in &fw.partitions {
        let member = format!("fw.bin/{}", p.file_name);
        let e = map
            .get(member.as_str())
            .unwrap_or_else(|| panic!("{member} not listed"));
        assert_eq!(e["sha256"], sha(&p.uimage), "{member}");
        assert_eq!(e["format"], "uimage", "{member}");
        assert_eq!(e["format_meta"]["name"], p.uimage_name.as_str());
        assert_eq!(e["format_meta"]["data_crc_ok"], true);
        let payload = format!("{member}/{}", p.uimage_name);
        assert_eq!(
            map[payload.as_str()]["sha256"],
            sha(p.payload.bytes()),
            "{payload}"
        );
        if let Payload::Squashfs { rootfs, .. } = &p.payload {
            assert_eq!(map[payload.as_str()]["format"], "squashfs", "{payload}");
            assert_rootfs_listed(&map, &payload, rootfs, &["dahua", "uimage", "squashfs"]);
        }
    }
}

#[test]
fn dahua_partitions_labelled_gzip_over_raw_squashfs_still_unpack() {
    // Real Dahua packages (the Eos samples' uImage headers) say "gzip" around a raw squashfs.
    let opts = Options {
        dahua_gzip_quirk: true,
        ..Options::tiny()
    };
    let fw = Firmware::camera(&opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = write(dir.path(), "quirk.bin", &fw.dahua_bin().unwrap());
    let entries = common::unpack_json(&img, &[]);
    let map = by_path(&entries);
    let mut squashfs_partitions = 0;
    for p in &fw.partitions {
        let Payload::Squashfs { rootfs, .. } = &p.payload else {
            continue;
        };
        squashfs_partitions += 1;
        let member = format!("quirk.bin/{}", p.file_name);
        let e = map[member.as_str()];
        assert_eq!(e["format_meta"]["compression"], "gzip", "{member}");
        assert!(
            e["format_meta"]["compression_mismatch"]
                .as_str()
                .is_some_and(|m| m.contains("taken as stored")),
            "{member}: {e}"
        );
        assert!(e.get("error").is_none(), "{member}: {e}");
        let payload = format!("{member}/{}", p.uimage_name);
        assert_eq!(map[payload.as_str()]["format"], "squashfs", "{payload}");
        assert_rootfs_listed(&map, &payload, rootfs, &["dahua", "uimage", "squashfs"]);
    }
    assert!(squashfs_partitions >= 3);
}

#[test]
fn flash_dump_round_trips_through_unpack() {
    if !formats_registered(&["uimage", "squashfs"]) {
        return;
    }
    let fw = Firmware::camera(&Options::tiny()).unwrap();
    let (dump, placed) = fw.flash_dump().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = write(dir.path(), "flash.bin", &dump);
    let entries = common::unpack_json(&img, &[]);
    let map = by_path(&entries);
    assert_eq!(placed.len(), fw.partitions.len());
    for (p, at) in fw.partitions.iter().zip(&placed) {
        assert_eq!(at.offset % 0x1_0000, 0);
        let payload = format!("flash.bin/{:#x}.uimage/{}", at.offset, p.uimage_name);
        let e = map
            .get(payload.as_str())
            .unwrap_or_else(|| panic!("{payload} not listed"));
        assert_eq!(e["sha256"], sha(p.payload.bytes()), "{payload}");
        if let Some(rootfs) = p.rootfs() {
            assert_rootfs_listed(&map, &payload, rootfs, &["carve", "uimage", "squashfs"]);
        }
    }
}

#[test]
fn tar_gz_update_round_trips_through_unpack() {
    if !formats_registered(&["gzip", "tar", "uimage", "squashfs"]) {
        return;
    }
    let fw = Firmware::camera(&Options::tiny()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = write(dir.path(), "update.tgz", &fw.tar_gz().unwrap());
    let entries = common::unpack_json(&img, &[]);
    let map = by_path(&entries);
    for p in &fw.partitions {
        let member = format!("update.tgz/update.tar/{}", p.file_name);
        assert_eq!(map[member.as_str()]["sha256"], sha(&p.uimage), "{member}");
        if let Some(rootfs) = p.rootfs() {
            let payload = format!("{member}/{}", p.uimage_name);
            assert_rootfs_listed(
                &map,
                &payload,
                rootfs,
                &["gzip", "tar", "uimage", "squashfs"],
            );
        }
    }
}

/// Runs today with only the engine's own formats: the kernel partition is a uImage whose payload
/// carries the gzip-compressed kernel at 0x4000, found by carving.
#[test]
fn kernel_partition_unpacks_to_its_compressed_image() {
    let fw = Firmware::camera(&Options::tiny()).unwrap();
    let kernel = fw.partition("kernel.img").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = write(dir.path(), "kernel.img", &kernel.uimage);
    let entries = common::unpack_json(&img, &[]);
    let map = by_path(&entries);
    assert_eq!(map["kernel.img"]["format_meta"]["type"], "kernel");
    assert_eq!(map["kernel.img"]["format_meta"]["arch"], "arm");
    assert_eq!(
        map["kernel.img/kernel"]["sha256"],
        sha(kernel.payload.bytes())
    );

    // The reference: decompress the stream ourselves with flate2.
    let payload = kernel.payload.bytes();
    let mut image = Vec::new();
    flate2::read::GzDecoder::new(&payload[0x4000..])
        .read_to_end(&mut image)
        .unwrap();
    assert!(image.windows(14).any(|w| w == b"Linux version "));
    let e = map["kernel.img/kernel/0x4000.gzip/data"];
    assert_eq!(e["sha256"], sha(&image));
    assert_eq!(e["formats"], serde_json::json!(["uimage", "carve", "gzip"]));
}

/// The squashfs writer against the reference tool: `unsquashfs -lls` lists every path with the
/// size, type and permissions that were put in.
#[test]
fn squashfs_images_match_unsquashfs() {
    if !common::tool("unsquashfs") {
        return;
    }
    let fw = Firmware::camera(&Options::tiny()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for p in &fw.partitions {
        let Payload::Squashfs {
            rootfs,
            compression,
            image,
        } = &p.payload
        else {
            continue;
        };
        let img = write(dir.path(), &p.file_name, image);
        let out = std::process::Command::new("unsquashfs")
            .args(["-lls", "-d", "", img.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        let mut seen = 0;
        for line in listing.lines() {
            // drwxr-xr-x root/root  45 2016-12-09 13:32 /bin
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 6 || !cols[0].starts_with(['-', 'd', 'l']) {
                continue;
            }
            let path = cols[5].trim_start_matches('/');
            if path.is_empty() {
                continue;
            }
            let entry = rootfs
                .get(path)
                .unwrap_or_else(|| panic!("{}: unsquashfs lists {path}, not put in", p.file_name));
            seen += 1;
            match &entry.data {
                EntryData::File(d) => {
                    assert!(cols[0].starts_with('-'), "{path}");
                    assert_eq!(cols[2].parse::<usize>().unwrap(), d.len(), "{path}");
                }
                EntryData::Dir => assert!(cols[0].starts_with('d'), "{path}"),
                EntryData::Symlink(t) => {
                    assert!(cols[0].starts_with('l'), "{path}");
                    assert_eq!(cols.get(7), Some(&t.as_str()), "{path}");
                }
            }
            if !matches!(entry.data, EntryData::Symlink(_)) {
                assert_eq!(
                    mode_string(entry.mode),
                    cols[0][1..],
                    "{}: {path} permissions",
                    p.file_name
                );
            }
        }
        assert_eq!(seen, rootfs.len(), "{}: every entry listed", p.file_name);
        let sb_compressor = u16::from_le_bytes([image[20], image[21]]);
        let want = match compression {
            squashfs::Compression::Gzip => 1,
            squashfs::Compression::Xz => 4,
            squashfs::Compression::Lz4 => 5,
            squashfs::Compression::Zstd => 6,
        };
        assert_eq!(sb_compressor, want, "{}", p.file_name);
    }
}

/// `rwxr-xr-x` for 0o755 (with `t` for the sticky bit), as `ls` prints it.
fn mode_string(mode: u16) -> String {
    let mut s = String::new();
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        if shift == 0 && mode & 0o1000 != 0 {
            s.push(if x { 't' } else { 'T' });
        } else {
            s.push(if x { 'x' } else { '-' });
        }
    }
    s
}

#[test]
fn demo_finds_the_rebrand() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let out = common::fwsim(&["demo", "--keep", keep.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = std::fs::read(keep.join("vistacam-IPC-HFW4431R-Z-v1.bin")).unwrap();
    assert_eq!(&bin[..4], b"DH\x03\x04");
    assert!(keep.join("northwind-NV-C2040-flash.bin").is_file());
    // The known images went into a corpus database beside them, with their labels and families.
    let db = keep.join("demo-corpus.db");
    let list = common::fwsim(&["corpus", "list", "--db", db.to_str().unwrap(), "--json"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["labels"]["vendor"], "Vistacam");
    assert_eq!(rows[0]["family"], rows[1]["family"]);
    assert_ne!(rows[0]["family"], rows[2]["family"]);
    assert!(stdout.contains("rarity from corpus"), "{stdout}");
    // The scan ranks vendor A's two versions first, as rebrands; vendor B is unrelated.
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("scan of "))
        .skip(2)
        .take(3)
        .collect();
    assert_eq!(table.len(), 3, "{stdout}");
    assert!(
        table[0].contains("rebrand") && table[0].contains("Vistacam"),
        "{stdout}"
    );
    assert!(
        table[1].contains("rebrand") && table[1].contains("Vistacam"),
        "{stdout}"
    );
    assert!(
        table[2].contains("unrelated") && table[2].contains("Kestrel"),
        "{stdout}"
    );
    for want in [
        "verdict  rebrand",
        "Northwind Vision Ltd (from evidence)",
        "Vistacam (given)",
        "shared private key",
        "/user/bin/sonia",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
}
