//! Image-vs-image comparison: pairs built in code with fwsim's writers (rebrand, new version,
//! unrelated vendors sharing open-source parts, an opaque image) and real samples, through the
//! library and the `fwsim compare` command.

use std::sync::OnceLock;

use bytes::Bytes;
use fwsim::compare::{
    self, Comparison, Discount, LabelSource, ScoreContext, Thresholds, Verdict, background,
};
use fwsim::features::{FeatureParams, fingerprint};
use fwsim::fingerprint::Fingerprint;
use fwsim::synth::{Brand, Compression, Firmware, Options, Soc, Software};
use fwsim::unpack::{Limits, unpack};

use crate::common;

pub fn fingerprint_of(img: &[u8], name: &str) -> Fingerprint {
    let tree = unpack(
        Bytes::copy_from_slice(img),
        name.as_bytes(),
        &Limits::default(),
    );
    fingerprint(&tree, &FeatureParams::default())
}

fn vistacam() -> Options {
    Options {
        size_percent: 10,
        software: Some(Software::new("Vistacam", Soc::Hi3516a)),
        ..Options::demo()
    }
}

/// The images of the synthetic pairs, built once.
struct Built {
    a1: Fingerprint,
    a2: Fingerprint,
    rebrand: Fingerprint,
    other: Fingerprint,
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let a1 = Firmware::camera(&vistacam()).unwrap().dahua_bin().unwrap();
        let mut v2 = vistacam();
        v2.brand.version = "V2.640.0000000.3.R".into();
        v2.software.as_mut().unwrap().release = 3;
        let a2 = Firmware::camera(&v2).unwrap().dahua_bin().unwrap();
        let rebrand = Options {
            brand: Brand {
                vendor: "Northwind Vision Ltd.".into(),
                product: "NV-C2040".into(),
                ..Brand::default()
            },
            rootfs_compression: Compression::Zstd,
            web_compression: Compression::Lz4,
            ..vistacam()
        };
        let (rebrand, _) = Firmware::camera(&rebrand).unwrap().flash_dump().unwrap();
        let other = Options {
            brand: Brand {
                vendor: "Kestrel Security Inc.".into(),
                product: "KS-IPC3".into(),
                version: "3.1.7".into(),
                build_user: "builder".into(),
            },
            software: Some(Software::new("Kestrel", Soc::IngenicT31)),
            ..vistacam()
        };
        let other = Firmware::camera(&other).unwrap().tar_gz().unwrap();
        Built {
            a1: fingerprint_of(&a1, "vistacam-v1.bin"),
            a2: fingerprint_of(&a2, "vistacam-v2.bin"),
            rebrand: fingerprint_of(&rebrand, "northwind-flash.bin"),
            other: fingerprint_of(&other, "kestrel-update.tar.gz"),
        }
    })
}

fn ctx_cmp(a: &Fingerprint, b: &Fingerprint, t: &Thresholds, d: &Discount) -> Comparison {
    compare::compare(
        a,
        b,
        &ScoreContext::new(background::background(), "background", t, d),
    )
}

/// Compares with the shipped background table, default thresholds, no discount list: what
/// `fwsim compare` does.
fn cmp(a: &Fingerprint, b: &Fingerprint) -> Comparison {
    ctx_cmp(a, b, &Thresholds::default(), &Discount::default())
}

fn show(c: &Comparison) -> String {
    let mut s = format!(
        "{} vs {}: score {} verdict {:?} sub {:?} sdk {} labels {:?} / {:?}\n",
        c.a.name,
        c.b.name,
        c.score,
        c.verdict,
        c.sub_scores,
        c.sdk_share,
        c.a.label.vendor,
        c.b.label.vendor
    );
    for f in c.evidence.iter().take(15) {
        s.push_str(&format!(
            "  {:6.2} {:?} {} {} <-> {} sim {:.2} rar {:.2} cf {:.2} {:?} ssdeep {:?} tlsh {:?} id {:?}\n",
            f.strength, f.category, f.what, f.a_path, f.b_path, f.similarity, f.rarity, f.component_factor, f.value, f.ssdeep, f.tlsh, f.identifier_tlsh
        ));
    }
    s
}

#[test]
fn rebrand_in_another_container_and_compressor_is_found() {
    let b = built();
    let c = cmp(&b.a1, &b.rebrand);
    assert_eq!(c.verdict, Verdict::Rebrand, "{}", show(&c));
    assert!(
        c.score >= Thresholds::default().same_software,
        "{}",
        show(&c)
    );
    // Labels came from evidence, and differ.
    assert_eq!(c.a.label.source, LabelSource::Evidence);
    assert_eq!(
        c.a.label.normalized.as_deref(),
        Some("vistacam"),
        "{:?}",
        c.a.label
    );
    assert_eq!(
        c.b.label.normalized.as_deref(),
        Some("northwind vision"),
        "{:?}",
        c.b.label
    );
    // The vendor's main program: its code is the same, its strings were patched.
    let sonia = c
        .evidence
        .iter()
        .find(|f| f.a_path.ends_with("/user/bin/sonia"))
        .unwrap_or_else(|| panic!("{}", show(&c)));
    assert!(sonia.a_path.starts_with("vistacam-v1.bin/"), "{sonia:?}");
    assert!(
        sonia.b_path.starts_with("northwind-flash.bin/"),
        "{sonia:?}"
    );
    assert!(sonia.b_path.ends_with("/user/bin/sonia"), "{sonia:?}");
    let text = sonia.sections.iter().find(|s| s.name == ".text").unwrap();
    assert!(text.identical, "{sonia:?}");
    let rodata = sonia.sections.iter().find(|s| s.name == ".rodata").unwrap();
    assert!(!rodata.identical && rodata.similarity > 0.3, "{sonia:?}");
    // The TLS key travelled with the software: a shared private key, both paths named.
    let key = c
        .evidence
        .iter()
        .find(|f| f.what == "shared_private_key")
        .unwrap_or_else(|| panic!("{}", show(&c)));
    assert!(
        key.a_path.ends_with("etc/ssl/private/server.key"),
        "{key:?}"
    );
    assert!(key.b_path.starts_with("northwind-flash.bin/"), "{key:?}");
    assert!(c.shared_secret);
    // Strongest first.
    assert!(
        c.evidence
            .windows(2)
            .all(|w| w[0].strength >= w[1].strength)
    );
}

#[test]
fn new_version_of_the_same_software_is_same_vendor() {
    let b = built();
    let c = cmp(&b.a2, &b.a1);
    assert_eq!(c.verdict, Verdict::SameVendor, "{}", show(&c));
    // The vendor's programs grew: similar, not identical; the SDK libraries did not change.
    let sonia = c
        .evidence
        .iter()
        .find(|f| f.a_path.ends_with("/user/bin/sonia"))
        .unwrap();
    assert_eq!(sonia.what, "similar_file");
    assert!(sonia.ssdeep.unwrap() > 50, "{sonia:?}");
    assert!(
        c.evidence
            .iter()
            .any(|f| f.what == "identical_file" && f.a_path.ends_with("/user/lib/libmpi.so"))
    );
}

#[test]
fn unrelated_vendors_sharing_open_source_parts_are_unrelated() {
    let b = built();
    let c = cmp(&b.a1, &b.other);
    assert_eq!(c.verdict, Verdict::Unrelated, "{}", show(&c));
    assert!(c.score < 40.0, "{}", show(&c));
    // Their code has nothing in common beyond the open-source parts (common data files such as
    // time-zone tables still count for something in `data`).
    assert!(c.sub_scores.code.unwrap() < 10.0, "{}", show(&c));
    assert!(
        c.sdk_share < Thresholds::default().sdk_share,
        "{}",
        show(&c)
    );
    // They do share BusyBox, uClibc and OpenSSL: found, and counted for little.
    for part in [
        "/lib/libuClibc-0.9.33.2.so",
        "/lib/libcrypto.so.1.0.2k",
        "/bin/busybox",
    ] {
        let f = c
            .evidence
            .iter()
            .find(|f| f.a_path.ends_with(part))
            .unwrap_or_else(|| panic!("{part} not matched:\n{}", show(&c)));
        assert!(f.similarity > 0.9, "{f:?}");
        assert!(f.component_factor < 0.1, "{f:?}");
    }
    assert!(c.evidence.iter().all(|f| f.what != "shared_private_key"));
}

#[test]
fn mostly_opaque_image_is_inconclusive() {
    let b = built();
    let mut r = fwsim::synth::Rootfs::new();
    r.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("etc/hostname", "cam\n", 0o644);
    let mut img = fwsim::synth::tarball::tar(&r).unwrap();
    // Four MiB of encrypted-looking data after it.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    img.extend((0..4 << 20).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 32) as u8
    }));
    let opaque = fingerprint_of(&img, "encrypted.bin");
    assert!(
        opaque.coverage.identified_share < 0.05,
        "{:?}",
        opaque.coverage
    );
    let c = cmp(&opaque, &b.a1);
    assert_eq!(c.verdict, Verdict::Inconclusive, "{}", show(&c));
    assert!(c.a.identified_content_share < Thresholds::default().min_identified_share);
}

/// The rule: sub-scores are harmonic means of both sides' matched shares, so swapping A and B
/// changes a score only where best counterparts differ by direction: within 2 points here, and
/// never the verdict.
#[test]
fn scores_are_symmetric_within_two_points() {
    let b = built();
    for (x, y) in [(&b.a1, &b.rebrand), (&b.a1, &b.a2), (&b.a1, &b.other)] {
        let (c1, c2) = (cmp(x, y), cmp(y, x));
        assert!(
            (c1.score - c2.score).abs() <= 2.0,
            "{}\n{}",
            show(&c1),
            show(&c2)
        );
        assert_eq!(c1.verdict, c2.verdict);
    }
}

#[test]
fn thresholds_file_and_discount_list_change_the_outcome() {
    let b = built();
    let strict = Thresholds::from_json(r#"{"same_software": 99.9, "sdk_share": 1.1}"#).unwrap();
    let c = ctx_cmp(&b.a1, &b.rebrand, &strict, &Discount::default());
    assert_eq!(c.verdict, Verdict::Unrelated, "{}", show(&c));
    // Discounting the shared key: no longer a shared secret.
    let base = cmp(&b.a1, &b.rebrand);
    let key = base
        .evidence
        .iter()
        .find(|f| f.what == "shared_private_key")
        .unwrap();
    let d = Discount::parse(&format!(
        "# vendor SDK demo key\n{}\n",
        key.value.as_ref().unwrap()
    ));
    let c = ctx_cmp(&b.a1, &b.rebrand, &Thresholds::default(), &d);
    assert!(!c.shared_secret);
    let key2 = c
        .evidence
        .iter()
        .find(|f| f.what == "shared_private_key")
        .unwrap();
    assert!(key2.rarity < 0.1, "{key2:?}");
    assert!(key2.strength < key.strength);
}

#[test]
fn compare_command_text_and_json() {
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a.json"), dir.path().join("b.json"));
    b.a1.write(&pa).unwrap();
    b.rebrand.write(&pb).unwrap();
    let out = common::fwsim(&["compare", pa.to_str().unwrap(), pb.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("verdict  rebrand"), "{text}");
    assert!(
        text.contains("A  vistacam-v1.bin/user-x.squashfs.img/user/bin/sonia"),
        "{text}"
    );
    assert!(text.contains("shared private key"), "{text}");
    let out = common::fwsim(&[
        "compare",
        "--json",
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "rebrand");
    assert_eq!(v["a"]["name"], "vistacam-v1.bin");
    assert_eq!(v["b"]["label"]["source"], "evidence");
    assert!(v["score"].as_f64().unwrap() >= 55.0);
    assert!(v["sub_scores"]["code"].as_f64().unwrap() > 80.0);
    assert!(v["evidence"][0]["a_path"].is_string() && v["evidence"][0]["b_path"].is_string());
    assert!(v["a"]["identified_share"].is_number());
    // A thresholds file with a misspelt field is a usage error.
    let bad = dir.path().join("t.json");
    std::fs::write(&bad, r#"{"same_sofware": 10}"#).unwrap();
    let out = common::fwsim(&[
        "compare",
        "--thresholds",
        bad.to_str().unwrap(),
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A folder of real files, fingerprinted as one image (an in-memory tar of its files).
fn folder(rel: &[&str]) -> Option<Fingerprint> {
    let root = common::realdata()?;
    let mut r = fwsim::synth::Rootfs::new();
    for dir in rel {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let name = p
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    r.file(&name, std::fs::read(&p).unwrap(), 0o755);
                }
            }
        }
    }
    let tar = fwsim::synth::tarball::tar(&r).unwrap();
    Some(fingerprint_of(
        &tar,
        rel[0].rsplit('/').nth(1).unwrap_or("set"),
    ))
}

#[test]
fn hisilicon_and_goke_sdk_sets_share_an_sdk() {
    let o = "OpenIPC__firmware/general/package";
    let Some(hi) = folder(&[&format!("{o}/hisilicon-osdrv-hi3516ev200/files")]) else {
        return;
    };
    let gk = folder(&[&format!("{o}/goke-osdrv-gk7205v200/files")]).unwrap();
    let c = cmp(&hi, &gk);
    assert_eq!(c.verdict, Verdict::SharedSdk, "{}", show(&c));
}

#[test]
fn escam_and_openipc_hisilicon_kernel_modules_share_an_sdk() {
    // Both folders hold nothing but HiSilicon's Hi3516EV200 SDK kernel modules, similar builds.
    let Some(escam) = folder(&["gadonline__escam_pvr008/rootfs/ko"]) else {
        return;
    };
    let openipc =
        folder(&["OpenIPC__firmware/general/package/hisilicon-osdrv-hi3516ev200/files/kmod"])
            .unwrap();
    let c = cmp(&escam, &openipc);
    assert!(c.similar_files + c.identical_files >= 20, "{}", show(&c));
    // The modules are platform material: no code sub-score, and they carry `sdk_share`.
    assert_eq!(c.sub_scores.code, None, "{}", show(&c));
    assert!(c.sub_scores.platform.is_some(), "{}", show(&c));
    let t = Thresholds::default();
    assert!(c.sdk_share >= t.sdk_share, "{}", show(&c));
    assert!(c.score < t.same_software, "{}", show(&c));
    assert_eq!(c.verdict, Verdict::SharedSdk, "{}", show(&c));
}

#[test]
fn dahua_and_xiongmai_are_not_the_same_software() {
    // The Dahua romfs as extracted (the raw partition in the sample set is cut at 1 KiB).
    let Some(dh) = folder(&["BotoX__DH_IPC-HX4XXX-Eos/romfs-x.squashfs.img.extracted"]) else {
        return;
    };
    let xm = common::sample("nikitos1550__XM_ipcam_crypto_generator/rootfs.romfs").unwrap();
    let xm = fingerprint_of(&std::fs::read(xm).unwrap(), "xiongmai-rootfs.romfs");
    let c = cmp(&dh, &xm);
    // A real comparison: both sides identified, their uClibc libraries found similar.
    assert!(
        c.a.identified_content_share > 0.9 && c.b.identified_content_share > 0.9,
        "{}",
        show(&c)
    );
    assert!(c.similar_files + c.identical_files > 0, "{}", show(&c));
    assert!(
        !matches!(
            c.verdict,
            Verdict::Rebrand | Verdict::SameVendor | Verdict::Inconclusive
        ),
        "{}",
        show(&c)
    );
    assert!(
        c.score < Thresholds::default().same_software,
        "{}",
        show(&c)
    );
}

#[test]
fn compare_weighs_rarity_with_a_corpus_when_given_one() {
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, p2) = (
        dir.path().join("a.json"),
        dir.path().join("b.json"),
        dir.path().join("a2.json"),
    );
    b.a1.write(&pa).unwrap();
    b.rebrand.write(&pb).unwrap();
    b.a2.write(&p2).unwrap();
    let db = dir.path().join("c.db");
    let db_s = db.to_str().unwrap();
    // Three families that all hold the software A and the rebrand share: in this corpus those
    // items are common, so they weigh less than in the background table, where they are rare.
    for (family, p) in [("f1", &pa), ("f2", &p2), ("f3", &pb)] {
        let out = common::fwsim(&[
            "corpus",
            "add",
            "--db",
            db_s,
            "--family",
            family,
            p.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json = |extra: &[&str]| {
        let mut args = vec!["compare", "--json"];
        args.extend_from_slice(extra);
        args.extend([pa.to_str().unwrap(), pb.to_str().unwrap()]);
        let out = common::fwsim(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let background = json(&[]);
    let corpus = json(&["--db", db_s]);
    assert_eq!(background["rarity_source"], "background");
    assert_eq!(corpus["rarity_source"], "corpus");
    // The shared private key is rare in the background table and held by every family here.
    let key_rarity = |v: &serde_json::Value| {
        v["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["what"] == "shared_private_key")
            .map(|e| e["rarity"].as_f64().unwrap())
            .unwrap()
    };
    let (rb, rc) = (key_rarity(&background), key_rarity(&corpus));
    assert!(rb > 0.5, "background rarity {rb}");
    assert!(rc < 0.2, "corpus rarity {rc} (background {rb})");
    // A file that is not a corpus is refused as `--db`, and left as it was.
    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, "not a database\n").unwrap();
    let out = common::fwsim(&[
        "compare",
        "--db",
        foreign.to_str().unwrap(),
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(&foreign).unwrap(), b"not a database\n");
}
