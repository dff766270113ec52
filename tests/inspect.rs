//! `fwsim inspect`: the analyst's summary of the real Dahua Themis parts (bootloader, kernel and
//! raw squashfs partitions, packed by the test into one tar, as an update bundle would be), checked against facts read independently from the
//! parts' own bytes.

use std::path::Path;

use fwsim::features::{self, FeatureParams};
use fwsim::fingerprint::Fingerprint;
use fwsim::inspect;
use fwsim::unpack::{Limits, unpack};

use crate::common;

/// The Themis partitions (raw squashfs, kernel and bootloader uImages, Install) as a tar.
fn themis_tar(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for name in [
        "Install",
        "dhboot.bin.img",
        "kernel.img",
        "romfs-x.squashfs.img.raw",
        "web-x.squashfs.img.raw",
        "pd-x.squashfs.img.raw",
    ] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn themis_summary_names_vendor_platform_kernel_and_components() {
    let Some(root) = common::realdata() else {
        return;
    };
    let dir = root.join("BotoX__DH_IPC-HX4XXX-Themis");
    let tar = themis_tar(&dir);
    let tree = unpack(bytes::Bytes::from(tar), b"themis.tar", &Limits::default());
    let fp = features::fingerprint(&tree, &FeatureParams::default());
    let s = inspect::summarize(&tree, &fp, 10);

    // The kernel release: kernel.img is a uImage named "kernel" wrapping a second uImage whose
    // name field (bytes 32..64 of the inner header, at offset 64) reads "Linux-<release>".
    let kernel = std::fs::read(dir.join("kernel.img")).unwrap();
    assert_eq!(&kernel[64..68], &[0x27, 0x05, 0x19, 0x56]);
    let name = String::from_utf8_lossy(&kernel[96..128]);
    let release = name
        .trim_end_matches('\0')
        .trim_start_matches("Linux-")
        .to_string();
    assert!(
        s.system
            .iter()
            .any(|e| e.kind.as_str() == "kernel_version" && e.value == release),
        "kernel {release} not in {:?}",
        s.system
    );
    // Every product the summary names is a model string of the Install manifest.
    let install = std::fs::read_to_string(dir.join("Install")).unwrap();
    assert!(!s.products.is_empty());
    for p in &s.products {
        assert!(install.contains(p.as_str()), "{p} not in Install");
    }
    // The squashfs partitions are listed as containers.
    let squashfs: Vec<_> = s
        .containers
        .iter()
        .filter(|c| c.format == "squashfs")
        .collect();
    assert_eq!(squashfs.len(), 3, "{:?}", s.containers);
    // The vendor: the top candidate is Dahua (its domains and certificate), the SoC Ambarella (the
    // S2L build paths and Ambarella toolchain of these parts).
    assert!(
        s.vendors
            .first()
            .is_some_and(|v| v.display.to_lowercase().contains("dahua")),
        "{:?}",
        s.vendors.iter().map(|v| &v.display).collect::<Vec<_>>()
    );
    assert_eq!(
        s.platform.as_ref().map(|p| p.vendor.as_str()),
        Some("Ambarella")
    );
    assert!(s.architectures.keys().any(|a| a.starts_with("ARM")));
    assert!(s.components.iter().any(|c| c.component == "busybox"));
    assert!(s.build.contains_key("toolchain"));
    // Binaries no component explains are ELF files, largest first.
    assert!(s.vendor_binaries.windows(2).all(|w| w[0].size >= w[1].size));

    // The fingerprint carries the evidence and reads back with it.
    assert!(!fp.evidence.is_empty());
    let mut json = Vec::new();
    fp.write_to(&mut json).unwrap();
    let back = Fingerprint::from_json(
        std::str::from_utf8(&json).unwrap(),
        &FeatureParams::default().recorded(),
    )
    .unwrap();
    assert_eq!(back.evidence, fp.evidence);

    // The text form says the same things.
    let text = s.to_string();
    assert!(text.contains("platform: Ambarella"), "{text}");
    assert!(text.contains(&release));
}

#[test]
fn inspect_command_prints_text_and_json() {
    let Some(root) = common::realdata() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("themis.tar");
    std::fs::write(
        &input,
        themis_tar(&root.join("BotoX__DH_IPC-HX4XXX-Themis")),
    )
    .unwrap();
    let out = common::fwsim(&["inspect", "--quiet", input.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("coverage:") && text.contains("vendor candidates:"));
    let out = common::fwsim(&[
        "inspect",
        "--quiet",
        "--json",
        "--top",
        "3",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["vendors"].as_array().unwrap().len() <= 3);
    assert!(v["coverage"]["image_bytes"].as_u64().unwrap() > 0);
}
