//! Evidence extractors on real firmware (Dahua manifests and uImages, kernels, device trees,
//! HiSilicon and Goke module sets), on keys and certificates generated here and packed in a
//! squashfs, and on hostile input.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use fwsim::features::evidence::{self, Evidence, Kind, Params, platform, vendor};
use fwsim::synth::{Compression, Rootfs, squashfs};
use fwsim::unpack::{Limits, Tree, unpack};
use sha2::{Digest, Sha256};

use crate::common;

const DAHUA: [&str; 2] = ["BotoX__DH_IPC-HX4XXX-Eos", "BotoX__DH_IPC-HX4XXX-Themis"];

fn of_kind(ev: &[Evidence], kind: Kind) -> Vec<&Evidence> {
    ev.iter().filter(|e| e.kind == kind).collect()
}

fn tree_evidence(path: &Path) -> Vec<Evidence> {
    unpacked_evidence(path).1
}

fn unpacked_evidence(path: &Path) -> (Tree, Vec<Evidence>) {
    let data = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().as_encoded_bytes().to_vec();
    let tree = unpack(Bytes::from(data), &name, &Limits::default());
    let ev = evidence::extract_tree(&tree, &Params::default());
    (tree, ev)
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn dahua_install_and_hwid_yield_vendor_and_models() {
    let Some(root) = common::realdata() else {
        return;
    };
    for part in DAHUA {
        let install = root.join(part).join("Install");
        let data = std::fs::read(&install).unwrap();
        // Eos appends a `//` comment after the JSON object: read the first value only.
        let json: serde_json::Value = serde_json::Deserializer::from_slice(&data)
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        let expected_vendor = json["Vendor"].as_str().unwrap();
        let ev = evidence::extract("Install", &data, &Params::default());
        let vendors: Vec<_> = of_kind(&ev, Kind::Vendor)
            .into_iter()
            .filter(|e| e.detail_str("source") == Some("manifest"))
            .collect();
        assert_eq!(vendors.len(), 1, "{part}: {ev:#?}");
        assert_eq!(vendors[0].value, expected_vendor);
        let at = vendors[0].offset as usize;
        assert_eq!(
            &data[at..at + expected_vendor.len()],
            expected_vendor.as_bytes()
        );
        let devices: Vec<_> = json["Devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d[0].as_str().unwrap())
            .collect();
        let products: Vec<_> = of_kind(&ev, Kind::Product)
            .iter()
            .map(|e| e.value.as_str())
            .collect();
        assert_eq!(products, devices, "{part}");
        let candidates = vendor::candidates(&ev);
        assert_eq!(candidates[0].display, expected_vendor);
    }
    // Eos also ships `hwid`: a comment line, then JSON listing `MODEL:hardware-id` strings.
    let hwid = root.join(DAHUA[0]).join("hwid");
    let data = std::fs::read(&hwid).unwrap();
    let text = String::from_utf8(data.clone()).unwrap();
    let expected: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"'))
        .filter_map(|l| l.split(':').next())
        .filter(|m| m.starts_with("IPC-"))
        .collect();
    assert!(expected.len() > 10);
    let ev = evidence::extract("hwid", &data, &Params::default());
    let models: BTreeSet<&str> = of_kind(&ev, Kind::Product)
        .iter()
        .map(|e| e.value.as_str())
        .collect();
    assert_eq!(models, expected);
}

#[test]
fn dahua_partitions_yield_their_uimage_names() {
    let Some(root) = common::realdata() else {
        return;
    };
    let mut checked = 0;
    for part in DAHUA {
        for entry in std::fs::read_dir(root.join(part)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if !(name.ends_with(".uImage") || name.ends_with(".img")) {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            // The uImage header's name field: bytes 32..64, NUL-padded.
            let field = &data[32..64];
            let expected =
                String::from_utf8_lossy(&field[..field.iter().position(|&b| b == 0).unwrap_or(32)])
                    .into_owned();
            let ev = tree_evidence(&path);
            let names: Vec<_> = of_kind(&ev, Kind::ImageName)
                .into_iter()
                .filter(|e| e.path == name)
                .collect();
            assert_eq!(names.len(), 1, "{part}/{name}: {ev:#?}");
            assert_eq!(names[0].value, expected, "{part}/{name}");
            assert_eq!(names[0].offset, 32);
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} partitions");
}

#[test]
fn kernel_uimages_yield_linux_version_banners() {
    let Some(root) = common::realdata() else {
        return;
    };
    for rel in [
        "BotoX__DH_IPC-HX4XXX-Eos/kernel.img",
        "BotoX__DH_IPC-HX4XXX-Themis/kernel.img",
        "gtxaspec__wz_mini_hacks/SD_ROOT/factory_t31_ZMC6tiIDQN",
    ] {
        let path = root.join(rel);
        let (tree, ev) = unpacked_evidence(&path);
        // The innermost uImage is named `Linux-<release>` by the kernel's build.
        let image_release = of_kind(&ev, Kind::ImageName)
            .iter()
            .find_map(|e| e.value.strip_prefix("Linux-"))
            .unwrap()
            .to_owned();
        let versions = of_kind(&ev, Kind::KernelVersion);
        assert_eq!(versions.len(), 1, "{rel}: {versions:#?}");
        let v = versions[0];
        assert_eq!(v.value, image_release, "{rel}");
        let banner = v.detail_str("banner").unwrap();
        assert!(
            banner.starts_with(&format!("Linux version {image_release} (")),
            "{banner}"
        );
        // Found in the decompressed kernel, at the offset given.
        let node = tree
            .nodes()
            .iter()
            .find(|n| n.path == v.path.as_bytes())
            .unwrap();
        assert!(node.origin.is_some(), "{}", v.path);
        assert!(node.data[v.offset as usize..].starts_with(b"Linux version "));
        let hosts = of_kind(&ev, Kind::BuildHost);
        assert_eq!(hosts.len(), 1, "{rel}");
        assert!(
            banner.contains(&format!("({})", hosts[0].value)),
            "{banner}"
        );
        assert_eq!(of_kind(&ev, Kind::BuildDate).len(), 1, "{rel}");
    }
}

/// The compatible strings `dtc` reads from the device tree in `blob`.
fn dtc_compatibles(blob: &[u8]) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob.dtb");
    std::fs::write(&file, blob).unwrap();
    let out = Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dts = String::from_utf8(out.stdout).unwrap();
    let mut set = BTreeSet::new();
    for line in dts.lines() {
        let Some(list) = line.trim().strip_prefix("compatible = ") else {
            continue;
        };
        // A list is printed `"a", "b"`, or `"a\0b"` when dtc prefers one escaped string.
        for s in list.trim_end_matches(';').split("\", \"") {
            for part in s.trim_matches('"').split("\\0") {
                set.insert(part.to_owned());
            }
        }
    }
    set
}

fn device_trees(rel: &str) -> Option<(Vec<u8>, Vec<Evidence>)> {
    let path = common::sample(rel)?;
    let data = std::fs::read(path).unwrap();
    let ev = evidence::extract(rel, &data, &Params::default());
    let dts = ev
        .into_iter()
        .filter(|e| e.kind == Kind::DeviceTree)
        .collect();
    Some((data, dts))
}

const DTB: &str =
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/uboot/test/data/uboot.dtb";
const FIT: &str =
    "fkie-cad__fact_extractor/fact_extractor/plugins/unpacking/uboot/test/data/fit.itb";

#[test]
fn device_tree_blob_yields_compatible_strings_as_dtc_reads_them() {
    let Some((data, dts)) = device_trees(DTB) else {
        return;
    };
    // A kernel uImage with its device tree appended.
    assert_eq!(dts.len(), 1, "{dts:#?}");
    let dt = &dts[0];
    assert_eq!(&data[dt.offset as usize..][..4], b"\xd0\x0d\xfe\xed");
    let root: Vec<&str> = dt.detail["compatible"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!root.is_empty());
    assert_eq!(dt.value, dt.detail["model"].as_str().unwrap_or(root[0]));
    let ours: BTreeSet<String> = dt.detail["node_compatibles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(ours.len() > 20, "{ours:?}");
    assert!(ours.iter().any(|c| c.starts_with("arm,cortex-a9")));
    let units = dt.detail["unit_nodes"].as_array().unwrap();
    assert!(
        units
            .iter()
            .any(|u| u.as_str().unwrap().starts_with("serial@"))
    );
    if common::tool("dtc") {
        let size = dt.detail["size"].as_u64().unwrap() as usize;
        let blob = &data[dt.offset as usize..dt.offset as usize + size];
        assert_eq!(ours, dtc_compatibles(blob));
    }
}

#[test]
fn fit_image_yields_its_device_trees() {
    let Some((data, dts)) = device_trees(FIT) else {
        return;
    };
    // The FIT itself (an FDT) and the device tree it carries as its `fdt` image.
    let values: Vec<&str> = dts.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(values, ["FACT Test FIT Image", "Test Device Tree for FACT"]);
    assert_eq!(dts[0].offset, 0);
    let fit_units: Vec<&str> = dts[0].detail["unit_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(fit_units.is_empty(), "{fit_units:?}");
    assert_eq!(dts[0].detail["node_count"], 5);
    if common::tool("dtc") {
        // Neither declares a `compatible` property: dtc agrees on both (empty) sets.
        for dt in &dts {
            let size = dt.detail["size"].as_u64().unwrap() as usize;
            let blob = &data[dt.offset as usize..dt.offset as usize + size];
            let ours: BTreeSet<String> = dt.detail["node_compatibles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(ours, dtc_compatibles(blob));
        }
    }
}

/// Evidence of every file of a module set, under its path in the set.
fn module_set(dirs: &[&str]) -> Option<Vec<Evidence>> {
    let root = common::realdata()?;
    let mut ev = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = format!("{dir}/{}", path.file_name().unwrap().to_str().unwrap());
            ev.extend(evidence::extract(
                &name,
                &std::fs::read(&path).unwrap(),
                &Params::default(),
            ));
        }
    }
    Some(ev)
}

#[test]
fn hisilicon_module_set_is_guessed_hi3516ev200() {
    let Some(ev) =
        module_set(&["OpenIPC__firmware/general/package/hisilicon-osdrv-hi3516ev200/files/kmod"])
    else {
        return;
    };
    let g = platform::guess(&ev).unwrap();
    assert_eq!(g.vendor, "HiSilicon", "{g:#?}");
    assert_eq!(g.family.as_deref(), Some("hi3516ev200"));
    assert!(g.confidence > 0.9, "{}", g.confidence);
    assert!(
        g.evidence
            .iter()
            .any(|e| e.detail_str("source") == Some("file_name")
                && e.path.ends_with("hi3516ev200_sys.ko"))
    );
}

#[test]
fn goke_module_set_is_guessed_goke_despite_hisilicon_compatible_names() {
    let Some(ev) = module_set(&[
        "OpenIPC__firmware/general/package/goke-osdrv-gk7205v200/files/kmod",
        "OpenIPC__firmware/general/package/goke-osdrv-gk7205v200/files/lib",
    ]) else {
        return;
    };
    let g = platform::guess(&ev).unwrap();
    assert_eq!(g.vendor, "Goke", "{g:#?}");
    assert_eq!(g.family.as_deref(), Some("gk7205v200"));
    // Goke ships `libhi_*` compatibility libraries: HiSilicon is seen, but far behind.
    assert!(g.alternatives.iter().any(|(v, _)| v == "HiSilicon"));
    assert!(
        g.alternatives.iter().all(|(_, s)| *s < g.score / 4.0),
        "{g:#?}"
    );
    // The build machine's paths survive in the modules.
    let users: BTreeSet<&str> = of_kind(&ev, Kind::BuildUser)
        .iter()
        .map(|e| e.value.as_str())
        .collect();
    assert!(users.contains("devin"), "{users:?}");
}

/// Runs a command, returning its standard output (panics on failure).
fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn generated_certificate_and_keys_are_found_in_a_squashfs_and_fingerprinted() {
    use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData};

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["cam.fwsim.test".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "fwsim test camera");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Fwsim Test Vision Co., Ltd.");
    let cert = params.self_signed(&key).unwrap();
    let cert_der: &[u8] = cert.der();
    let spki_sha = sha256_hex(&key.subject_public_key_info());
    let cert_sha = sha256_hex(cert_der);

    // A binary carrying the certificate as raw DER between code-like bytes.
    let mut app = vec![0xe5u8; 3000];
    app.extend_from_slice(cert_der);
    app.extend(std::iter::repeat_n(0x1e, 2000));

    let mut rootfs = Rootfs::new();
    rootfs
        .file("etc/ssl/cam.crt", cert.pem().into_bytes(), 0o644)
        .file("etc/ssl/cam.key", key.serialize_pem().into_bytes(), 0o600)
        .file("bin/app", app, 0o755);

    // Keys and hashes made by the reference tools, checked against their own fingerprints.
    let dir = tempfile::tempdir().unwrap();
    let mut ssh_expected = None;
    if common::tool("ssh-keygen") {
        let id = dir.path().join("id_ed25519");
        run(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "builder@factory",
                "-f",
            ])
            .arg(&id));
        let listing = run(Command::new("ssh-keygen")
            .arg("-lf")
            .arg(id.with_extension("pub")));
        let fp = String::from_utf8(listing).unwrap();
        ssh_expected = Some(fp.split_whitespace().nth(1).unwrap().to_owned());
        rootfs
            .file("root/.ssh/id_ed25519", std::fs::read(&id).unwrap(), 0o600)
            .file(
                "root/.ssh/authorized_keys",
                std::fs::read(id.with_extension("pub")).unwrap(),
                0o600,
            );
    }
    let mut rsa_expected = None;
    let mut ec_expected = None;
    let mut shadow_expected = None;
    if common::tool("openssl") {
        let pkcs8 = dir.path().join("rsa.pem");
        run(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
                "-out",
            ])
            .arg(&pkcs8));
        let traditional = run(Command::new("openssl")
            .args(["rsa", "-traditional", "-in"])
            .arg(&pkcs8));
        let spki = run(Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&pkcs8));
        rsa_expected = Some(sha256_hex(&spki));
        rootfs.file("etc/rsa_traditional.pem", traditional, 0o600);
        // A SEC1 `EC PRIVATE KEY` and its `PUBLIC KEY`.
        let ec = run(Command::new("openssl").args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
        ]));
        let ec_file = dir.path().join("ec.pem");
        std::fs::write(&ec_file, &ec).unwrap();
        let ec_pub = run(Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&ec_file));
        let ec_spki = run(Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&ec_file));
        ec_expected = Some(sha256_hex(&ec_spki));
        rootfs
            .file("etc/ec.pem", ec, 0o600)
            .file("etc/ec_pub.pem", ec_pub, 0o644);
        // The independent SPKI hash of the generated certificate's key, too.
        let crt = dir.path().join("cam.crt");
        std::fs::write(&crt, cert.pem()).unwrap();
        let pubkey = run(Command::new("openssl")
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(&crt));
        let pem = dir.path().join("pub.pem");
        std::fs::write(&pem, pubkey).unwrap();
        let der = run(Command::new("openssl")
            .args(["pkey", "-pubin", "-outform", "DER", "-in"])
            .arg(&pem));
        assert_eq!(sha256_hex(&der), spki_sha);
        let hash =
            run(Command::new("openssl").args(["passwd", "-6", "-salt", "fwsimsalt", "s3cret"]));
        let hash = String::from_utf8(hash).unwrap().trim().to_owned();
        rootfs.file(
            "etc/shadow",
            format!("root:{hash}:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"),
            0o600,
        );
        shadow_expected = Some(hash);
    }

    let image = squashfs::build(&rootfs, Compression::Xz, 131_072).unwrap();
    let tree = unpack(Bytes::from(image), b"rootfs.sqfs", &Limits::default());
    let ev = evidence::extract_tree(&tree, &Params::default());
    let at = |suffix: &str, kind: Kind| -> Vec<&Evidence> {
        ev.iter()
            .filter(|e| e.kind == kind && e.path.ends_with(suffix))
            .collect()
    };

    for file in ["etc/ssl/cam.crt", "bin/app"] {
        let certs = at(file, Kind::Certificate);
        assert_eq!(certs.len(), 1, "{file}: {ev:#?}");
        let c = certs[0];
        assert_eq!(c.value, cert_sha, "{file}");
        assert_eq!(c.detail["spki_sha256"], spki_sha.as_str());
        assert_eq!(c.detail["subject"], c.detail["issuer"]);
        assert_eq!(c.detail["self_signed"], true);
        assert!(
            c.detail["subject"]
                .as_str()
                .unwrap()
                .contains("CN=fwsim test camera")
        );
        let keys = at(file, Kind::PublicKey);
        assert_eq!(keys[0].value, spki_sha);
    }
    assert_eq!(at("bin/app", Kind::Certificate)[0].offset, 3000);
    let private = at("etc/ssl/cam.key", Kind::PrivateKey);
    assert_eq!(private.len(), 1);
    assert_eq!(private[0].value, spki_sha);
    assert_eq!(private[0].detail["key_type"], "ec");
    // The vendor named in the certificate's organisation is a candidate.
    assert!(
        vendor::candidates(&ev)
            .iter()
            .any(|c| c.name == "fwsim test vision"),
        "{:#?}",
        vendor::candidates(&ev)
    );

    if let Some(fp) = ssh_expected {
        let private = at("root/.ssh/id_ed25519", Kind::PrivateKey);
        assert_eq!(private.len(), 1);
        assert_eq!(private[0].detail["ssh_fingerprint"], fp.as_str());
        assert_eq!(private[0].detail["encrypted"], false);
        let public = at("root/.ssh/authorized_keys", Kind::PublicKey);
        assert_eq!(public.len(), 1);
        assert_eq!(public[0].detail["ssh_fingerprint"], fp.as_str());
        assert_eq!(public[0].value, private[0].value);
        assert_eq!(public[0].detail["comment"], "builder@factory");
    }
    if let Some(expected) = rsa_expected {
        let private = at("etc/rsa_traditional.pem", Kind::PrivateKey);
        assert_eq!(private.len(), 1);
        assert_eq!(private[0].detail["label"], "RSA PRIVATE KEY");
        assert_eq!(private[0].value, expected);
    }
    if let Some(expected) = ec_expected {
        let private = at("etc/ec.pem", Kind::PrivateKey);
        assert_eq!(private.len(), 1);
        assert_eq!(private[0].detail["label"], "EC PRIVATE KEY");
        assert_eq!(private[0].value, expected);
        let public = at("etc/ec_pub.pem", Kind::PublicKey);
        assert_eq!(public.len(), 1);
        assert_eq!(public[0].value, expected);
    }
    if let Some(expected) = shadow_expected {
        let hashes = at("etc/shadow", Kind::PasswordHash);
        assert_eq!(hashes.len(), 1, "{hashes:#?}");
        assert_eq!(hashes[0].value, expected);
        assert_eq!(hashes[0].detail["user"], "root");
        assert_eq!(hashes[0].detail["scheme"], "sha512crypt");
    }
    // No secret is ever recorded.
    let json = serde_json::to_string(&ev).unwrap();
    let secret_b64 = key.serialize_pem();
    let secret_line = secret_b64.lines().nth(1).unwrap();
    assert!(!json.contains(secret_line));
}

#[test]
fn hostile_inputs_never_panic() {
    let params = Params::default();
    // Truncations of a real device tree and of a FIT image's header region.
    if let Some(path) = common::sample(DTB) {
        let data = std::fs::read(path).unwrap();
        let dt = &data[2432..];
        for cut in (0..dt.len()).step_by(97) {
            let _ = evidence::extract("cut.dtb", &dt[..cut], &params);
            let _ = platform::parse_fdt(&dt[..cut]);
        }
        // Every header field set to a huge value, one at a time.
        for field in 1..10 {
            let mut bad = dt.to_vec();
            bad[field * 4..field * 4 + 4].copy_from_slice(&u32::MAX.to_be_bytes());
            let _ = evidence::extract("bad.dtb", &bad, &params);
        }
    }
    // Floods of every trigger: bounded work, no panic.
    let mut flood = Vec::new();
    for _ in 0..2000 {
        flood.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        flood.extend_from_slice(&[0x30, 0x82, 0xff, 0xff, 0x30, 0x82, 0xff, 0x00]);
        flood.extend_from_slice(b"\xd0\x0d\xfe\xed\xff\xff\xff\xffIKCFG_ST\x1f\x8b\x08\x00");
        flood.extend_from_slice(b"ssh-rsa AAAA root:$1$$:0 Linux version ( U-Boot 1. @ www. ");
    }
    let started = std::time::Instant::now();
    let ev = evidence::extract("flood", &flood, &params);
    assert!(started.elapsed().as_secs() < 20);
    assert!(ev.iter().all(|e| e.kind != Kind::Certificate));
    // Random bytes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let _ = evidence::extract("noise", &noise, &params);
}
