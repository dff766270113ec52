//! Device trees and FIT images: FITs built in code (inline and external data, every hash kind,
//! compressed images) give every image as a child with its hash checked; a plain device tree is
//! recognised and described; the real `fit.itb` and `uboot.dtb` agree with dtc's `fdtget`; damaged
//! and hostile trees stop with an error, never a panic.

use std::io::Write;
use std::process::Command;

use bytes::Bytes;
use fwsim::synth::fdt::{self, FitImage, Hash, Node, Value};
use fwsim::unpack::{Limits, Tree, unpack};

use crate::common::{self, sample};

const FIT: &str =
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/uboot/test/data/fit.itb";
const DTB: &str =
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/uboot/test/data/uboot.dtb";

fn unpack_bytes(data: Vec<u8>, name: &str) -> Tree {
    unpack(Bytes::from(data), name.as_bytes(), &Limits::default())
}

fn node<'t>(tree: &'t Tree, path: &str) -> &'t fwsim::unpack::Node {
    tree.nodes()
        .iter()
        .find(|n| n.path == path.as_bytes())
        .unwrap_or_else(|| panic!("{path} not listed"))
}

fn by_suffix<'t>(tree: &'t Tree, suffix: &str) -> &'t fwsim::unpack::Node {
    tree.nodes()
        .iter()
        .find(|n| n.path.ends_with(suffix.as_bytes()))
        .unwrap_or_else(|| panic!("no path ending in {suffix}"))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn kernel_bytes() -> Vec<u8> {
    let mut k = b"Linux version 4.9.37 (builder@host) (gcc version 6.3.0) #1 SMP\n".to_vec();
    k.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    k
}

fn images() -> (Vec<FitImage>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let kernel = kernel_bytes();
    let dtb = fdt::board_dtb(
        "Acme IPC board",
        &["acme,ipc-v2", "hisilicon,hi3516ev200"],
        "hisilicon,hi3516ev200-soc",
    );
    let ramdisk: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let imgs = vec![
        FitImage {
            name: "kernel".into(),
            kind: "kernel".into(),
            compression: "gzip".into(),
            data: gzip(&kernel),
            hash: Hash::Sha256,
        },
        FitImage {
            name: "fdt-1".into(),
            kind: "flat_dt".into(),
            compression: "none".into(),
            data: dtb.clone(),
            hash: Hash::Crc32,
        },
        FitImage {
            name: "ramdisk".into(),
            kind: "ramdisk".into(),
            compression: "none".into(),
            data: ramdisk.clone(),
            hash: Hash::Sha256,
        },
    ];
    (imgs, kernel, dtb, ramdisk)
}

fn hashes_ok(n: &fwsim::unpack::Node) -> Vec<(String, Option<bool>)> {
    n.meta["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["algo"].as_str().unwrap().to_owned(), h["ok"].as_bool()))
        .collect()
}

fn check_fit_tree(tree: &Tree, root: &str, kernel: &[u8], dtb: &[u8], ramdisk: &[u8]) {
    let fit = node(tree, root);
    assert_eq!(fit.format, Some("fdt"), "{:?}", fit.error);
    assert!(fit.error.is_none(), "{:?}", fit.error);
    assert_eq!(fit.format_meta["kind"], "fit");
    assert_eq!(fit.format_meta["image_count"], 3);
    assert_eq!(fit.format_meta["description"], "Acme camera FIT");
    let k = node(tree, &format!("{root}/kernel"));
    assert_eq!(&k.data[..], kernel, "kernel decompressed per `compression`");
    assert_eq!(k.meta["compression"], "gzip");
    assert_eq!(k.meta["type"], "kernel");
    assert_eq!(hashes_ok(k), [("sha256".to_owned(), Some(true))]);
    let d = node(tree, &format!("{root}/fdt-1"));
    assert_eq!(&d.data[..], dtb);
    assert_eq!(hashes_ok(d), [("crc32".to_owned(), Some(true))]);
    // The device tree inside is itself recognised and described.
    assert_eq!(d.format, Some("fdt"));
    assert_eq!(d.format_meta["kind"], "device_tree");
    assert_eq!(d.format_meta["model"], "Acme IPC board");
    assert_eq!(
        d.format_meta["compatible"],
        serde_json::json!(["acme,ipc-v2", "hisilicon,hi3516ev200"])
    );
    let r = node(tree, &format!("{root}/ramdisk"));
    assert_eq!(&r.data[..], ramdisk);
}

#[test]
fn fit_with_inline_data_gives_every_image() {
    let (imgs, kernel, dtb, ramdisk) = images();
    let fit = fdt::fit("Acme camera FIT", &imgs, false);
    let tree = unpack_bytes(fit, "fw.itb");
    check_fit_tree(&tree, "fw.itb", &kernel, &dtb, &ramdisk);
}

#[test]
fn fit_with_external_data_is_sized_past_the_tree_when_carved() {
    let (imgs, kernel, dtb, ramdisk) = images();
    let fit = fdt::fit("Acme camera FIT", &imgs, true);
    // Inside a flash dump: erased flash before, junk after.
    let mut flash = vec![0xffu8; 0x10000];
    flash.extend_from_slice(&fit);
    let fit_end = flash.len();
    flash.extend_from_slice(&[0x5a; 4096]);
    let tree = unpack_bytes(flash, "flash.bin");
    let region = tree
        .nodes()
        .iter()
        .find(|n| n.format == Some("fdt") && n.depth == 1)
        .expect("FIT carved");
    assert_eq!(region.origin.as_ref().unwrap().offset, Some(0x10000));
    assert_eq!(
        region.data.len(),
        fit_end - 0x10000,
        "extent covers the external data"
    );
    let root = String::from_utf8_lossy(&region.path).into_owned();
    check_fit_tree(&tree, &root, &kernel, &dtb, &ramdisk);
}

#[test]
fn fit_hash_mismatch_is_reported_and_the_image_kept() {
    let (mut imgs, ..) = images();
    // Damage the ramdisk's stored bytes (the last thing in an external-data FIT).
    let fit = fdt::fit("Acme camera FIT", &imgs, true);
    let ramdisk_len = imgs[2].data.len();
    let mut bad = fit.clone();
    let at = bad.len() - ramdisk_len / 2;
    bad[at] ^= 0xff;
    let tree = unpack_bytes(bad, "bad.itb");
    let r = node(&tree, "bad.itb/ramdisk");
    assert_eq!(hashes_ok(r), [("sha256".to_owned(), Some(false))]);
    assert_eq!(r.data.len(), ramdisk_len);
    // An algorithm fwsim does not check is reported as unchecked, not as bad.
    imgs.truncate(1);
    let fit = fdt::fit("Acme camera FIT", &imgs, false);
    let fit = replace_once(&fit, b"sha256\0", b"md5\0\0\0\0");
    let tree = unpack_bytes(fit, "md5.itb");
    let k = node(&tree, "md5.itb/kernel");
    assert_eq!(hashes_ok(k), [("md5".to_owned(), None)]);
}

fn replace_once(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = hay
        .windows(from.len())
        .position(|w| w == from)
        .expect("needle present");
    let mut out = hay.to_vec();
    out[at..at + from.len()].copy_from_slice(to);
    out
}

#[test]
fn fit_with_missing_external_data_keeps_the_other_images() {
    let (imgs, ..) = images();
    let fit = fdt::fit("Acme camera FIT", &imgs, true);
    // Cut inside the last image's data: the first two are whole.
    let cut = fit.len() - 1000;
    let tree = unpack_bytes(fit[..cut].to_vec(), "cut.itb");
    // The FIT no longer reaches the end of the input: it is carved as a region of its own.
    let k = by_suffix(&tree, ".fdt/kernel");
    assert!(k.error.is_none());
    let r = by_suffix(&tree, ".fdt/ramdisk");
    let err = r.error.as_ref().expect("ramdisk cut short").to_string();
    assert!(err.contains("beyond the input"), "{err}");
}

#[test]
fn plain_device_tree_is_a_described_leaf() {
    let dtb = fdt::board_dtb(
        "Goke GK7205V200 demo board",
        &["goke,gk7205v200"],
        "goke,gk7205v200-soc",
    );
    let mut blob = dtb.clone();
    blob.extend_from_slice(&[0u8; 64]);
    let tree = unpack_bytes(blob, "board.bin");
    let dt = tree.root().unwrap();
    assert_eq!(dt.format, Some("fdt"));
    // Sized by `totalsize`: the zeros after it are a padding gap, not part of the tree.
    assert_eq!(dt.gaps.len(), 1, "{:?}", dt.gaps);
    assert_eq!(dt.gaps[0].offset, dtb.len() as u64);
    assert_eq!(dt.gaps[0].len, 64);
    assert_eq!(dt.format_meta["kind"], "device_tree");
    assert_eq!(dt.format_meta["model"], "Goke GK7205V200 demo board");
    assert_eq!(dt.format_meta["node_count"], 3);
    assert!(dt.children.is_empty());
    if common::tool("dtc") {
        // dtc reads our writer's output back to the same model.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.dtb");
        std::fs::write(&p, &dtb).unwrap();
        let out = Command::new("fdtget")
            .arg(&p)
            .args(["/", "model"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "Goke GK7205V200 demo board"
        );
    }
}

#[test]
fn hostile_trees_stop_with_an_error() {
    // Nodes nested far deeper than any real tree.
    let mut n = Node::new("leaf").prop("x", Value::U32(1));
    for i in 0..200 {
        n = Node::new(&format!("n{i}")).child(n);
    }
    let deep = fdt::write(&Node::new("").child(n));
    let tree = unpack_bytes(deep, "deep.dtb");
    let root = tree.root().unwrap();
    assert!(
        root.error
            .as_ref()
            .is_some_and(|e| e.to_string().contains("nested too deep")),
        "{:?}",
        root.error
    );
    // A FIT image claiming data far beyond the input.
    let (imgs, ..) = images();
    let fit = fdt::fit("Acme camera FIT", &imgs[..1], true);
    let size = (imgs[0].data.len() as u32).to_be_bytes();
    let fit = replace_once(&fit, &size, &0x7fff_fff0u32.to_be_bytes());
    let tree = unpack_bytes(fit, "huge.itb");
    let k = by_suffix(&tree, "/kernel");
    assert!(k.error.is_some());
    // Every truncation and many bit flips of a FIT: no panic, and the tree always lists the root.
    let (imgs, ..) = images();
    let fit = fdt::fit("Acme camera FIT", &imgs, false);
    let head = &fit[..2048.min(fit.len())];
    for cut in (0..head.len()).step_by(7) {
        let t = unpack_bytes(fit[..cut].to_vec(), "t.itb");
        assert!(t.root().is_some());
    }
    for i in (0..head.len()).step_by(3) {
        let mut m = head.to_vec();
        m[i] ^= 0x41;
        let t = unpack_bytes(m, "m.itb");
        assert!(t.root().is_some());
    }
}

fn fdtget_list(path: &std::path::Path, node: &str) -> Vec<String> {
    let out = Command::new("fdtget")
        .arg("-l")
        .arg(path)
        .arg(node)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn real_fit_lists_the_images_fdtget_lists() {
    let Some(path) = sample(FIT) else {
        return;
    };
    let data = std::fs::read(&path).unwrap();
    let tree = unpack_bytes(data, "fit.itb");
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("fdt"));
    assert_eq!(root.format_meta["description"], "FACT Test FIT Image");
    let ours: Vec<String> = tree
        .nodes()
        .iter()
        .filter(|n| n.parent == Some(0))
        .map(|n| {
            String::from_utf8_lossy(&n.path)
                .strip_prefix("fit.itb/")
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected = if common::tool("fdtget") {
        fdtget_list(&path, "/images")
    } else {
        vec!["kernel".into(), "fdt".into(), "rootfs".into()]
    };
    assert_eq!(ours, expected);
    // The gzip kernel is decompressed; the squashfs root file system inside is opened.
    let k = node(&tree, "fit.itb/kernel");
    assert_eq!(k.meta["compression"], "gzip");
    assert_eq!(k.data.len(), 1 << 20);
    assert!(
        tree.nodes()
            .iter()
            .any(|n| n.path == b"fit.itb/rootfs/root/random-data")
    );
}

#[test]
fn real_uboot_dtb_gives_the_model_fdtget_reads() {
    let Some(path) = sample(DTB) else {
        return;
    };
    let data = std::fs::read(&path).unwrap();
    let tree = unpack_bytes(data.clone(), "uboot.dtb");
    let dt = tree
        .nodes()
        .iter()
        .find(|n| n.format == Some("fdt"))
        .expect("device tree carved out of the image");
    assert_eq!(dt.format_meta["kind"], "device_tree");
    assert_eq!(dt.format_meta["model"], "Manufac XYZ1234ABC");
    if common::tool("fdtget") {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inner.dtb");
        std::fs::write(&p, &dt.data).unwrap();
        let out = Command::new("fdtget")
            .arg(&p)
            .args(["/", "model"])
            .output()
            .unwrap();
        assert!(out.status.success(), "fdtget reads the carved blob whole");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "Manufac XYZ1234ABC"
        );
    }
}
