//! One image against many: the corpus index gives exactly the pairwise matches, the TLSH index
//! exactly the linear scan (on digests of real firmware), `scan` ranks a rebrand first, `matrix`
//! writes every pair as JSON and CSV, and clustering groups the families built in code.

use std::path::Path;

use bytes::Bytes;
use fwsim::compare::cluster::{ScoreMatrix, average_linkage};
use fwsim::compare::index::CorpusIndex;
use fwsim::compare::matching::prepare;
use fwsim::compare::rarity::DocFreq;
use fwsim::compare::{
    Discount, FileMatch, MatchKind, ScoreContext, Thresholds, file_similarity, pair, score,
};
use fwsim::corpus::{Entry, Labels};
use fwsim::features::{FeatureParams, fingerprint};
use fwsim::fingerprint::Fingerprint;
use fwsim::hash::tlsh_index::linear_within;
use fwsim::hash::{Tlsh, TlshIndex, tlsh};
use fwsim::synth::content::{ElfKind, arm_elf};
use fwsim::synth::{Compression, Rootfs, squashfs, tarball};
use fwsim::unpack::{Limits, unpack};

use crate::common::{fwsim, realdata};

/// Flips every `every`-th byte from `from` on and appends `tail`: a new build of the same source.
fn edit(mut data: Vec<u8>, from: usize, every: usize, tail: &[u8]) -> Vec<u8> {
    let mut i = from;
    while i < data.len() {
        data[i] ^= 0x21;
        i += every;
    }
    data.extend_from_slice(tail);
    data
}

/// The files of one software family as `vendor` ships it; `version` 2 is a new build (code
/// edited here and there). Every family also carries the same busybox and C library.
fn rootfs(family: &str, vendor: &str, version: u32) -> Rootfs {
    let mut r = Rootfs::new();
    r.dir("bin", 0o755).dir("lib", 0o755).dir("etc", 0o755);
    r.file(
        "bin/busybox",
        arm_elf(
            ElfKind::Executable,
            "busybox-1.31.1",
            90_000,
            &["BusyBox v1.31.1 (2020-06-01 10:00:00 CST) multi-call binary."],
        ),
        0o755,
    );
    r.file(
        "lib/libuClibc-0.9.33.2.so",
        arm_elf(
            ElfKind::SharedObject,
            "uclibc-0.9.33.2",
            60_000,
            &["uClibc 0.9.33.2"],
        ),
        0o755,
    );
    let copyright = format!("Copyright (c) 2019 {vendor}. All rights reserved.");
    let build = format!("/home/build/{family}/src/app/main.c");
    for k in 0..6usize {
        let name = format!("{family}-daemon{k}");
        let mut elf = arm_elf(
            if k % 2 == 0 {
                ElfKind::Executable
            } else {
                ElfKind::SharedObject
            },
            &name,
            12_000 + 5_000 * k,
            &[&copyright, &build, &format!("{family} service {k}")],
        );
        if version > 1 && k % 2 == 0 {
            elf = edit(elf, 600 + 37 * k, 997, b"v2 patch");
        }
        let path = if k % 2 == 0 {
            format!("bin/{family}d{k}")
        } else {
            format!("lib/lib{family}{k}.so")
        };
        r.file(&path, elf, 0o755);
    }
    let mut conf = String::new();
    for k in 0..200 {
        conf.push_str(&format!("{family}.option{k}={}\n", (k * 7919) % 1000));
    }
    r.file("etc/app.conf", conf, 0o644);
    r.file(
        "etc/vendor.txt",
        format!("{vendor}\nversion {version}\n"),
        0o644,
    );
    r
}

/// An image holding `rootfs`: squashfs (xz) or tar.gz.
fn image(r: &Rootfs, tar: bool) -> Vec<u8> {
    if tar {
        tarball::tar_gz(r, None).unwrap()
    } else {
        squashfs::build(r, Compression::Xz, 128 << 10).unwrap()
    }
}

fn fp_of(name: &str, data: Vec<u8>) -> Fingerprint {
    let tree = unpack(Bytes::from(data), name.as_bytes(), &Limits::default());
    fingerprint(&tree, &FeatureParams::default())
}

/// The built corpus: three families (acme, zenith, orbit), acme with a second version; and
/// the probe, acme's software rebranded as "Nordlicht" and repacked as tar.gz.
struct Built {
    corpus: Vec<Entry>,
    rebrand: Fingerprint,
}

fn built() -> Built {
    let specs = [
        ("acme-1", "acme", "Acme Vision Ltd.", 1, false),
        ("zenith-1", "zenith", "Zenith Security Inc.", 1, false),
        ("acme-2", "acme", "Acme Vision Ltd.", 2, true),
        ("orbit-1", "orbit", "Orbit Cam GmbH", 1, false),
        ("zenith-2", "zenith", "Zenith Security Inc.", 2, false),
    ];
    let corpus = specs
        .iter()
        .enumerate()
        .map(|(i, &(name, family, vendor, version, tar))| Entry {
            id: i as i64 + 1,
            labels: Labels {
                vendor: Some(vendor.into()),
                ..Labels::default()
            },
            family: family.into(),
            fingerprint: fp_of(name, image(&rootfs(family, vendor, version), tar)),
        })
        .collect();
    let rebrand = fp_of(
        "nordlicht.tar.gz",
        image(&rootfs("acme", "Nordlicht Kameras AG", 1), true),
    );
    Built { corpus, rebrand }
}

fn docfreq(entries: &[Entry]) -> DocFreq {
    use std::collections::{BTreeMap, BTreeSet};
    let mut fam: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for e in entries {
        fam.entry(&e.family)
            .or_default()
            .extend(fwsim::compare::rarity::items(&e.fingerprint));
    }
    let mut df = DocFreq {
        families: fam.len() as u32,
        ..DocFreq::default()
    };
    for set in fam.into_values() {
        for item in set {
            *df.counts.entry(item).or_default() += 1;
        }
    }
    df
}

/// Every pair of a matrix equals `score(pair)` of its two images, labels included.
fn assert_pairs_as_scored_one_by_one(
    entries: &[Entry],
    pairs: &[fwsim::compare::index::PairScore],
    ctx: &ScoreContext<'_>,
    t: &Thresholds,
) {
    for p in pairs {
        let (ea, eb) = (&entries[p.a], &entries[p.b]);
        let direct = score(
            &ea.fingerprint,
            &eb.fingerprint,
            &pair(&ea.fingerprint, &eb.fingerprint, t),
            &ScoreContext {
                labels_a: Some(&ea.labels),
                labels_b: Some(&eb.labels),
                ..*ctx
            },
        );
        assert_eq!(p.comparison, direct, "{} vs {}", p.a, p.b);
    }
}

#[test]
fn index_equals_pairwise_on_built_images() {
    let b = built();
    let t = Thresholds::default();
    let index = CorpusIndex::new(&b.corpus);
    let stats = index.stats();
    assert_eq!(stats.images, 5);
    assert!(stats.files >= 5 * 10, "{stats:?}");
    let mut probes: Vec<&Fingerprint> = b.corpus.iter().map(|e| &e.fingerprint).collect();
    probes.push(&b.rebrand);
    let mut fuzzy = 0;
    for probe in probes {
        let hits = index.query(probe, &t);
        for (i, e) in b.corpus.iter().enumerate() {
            let expected = pair(probe, &e.fingerprint, &t);
            let got = hits
                .iter()
                .find(|h| h.image == i)
                .map(|h| h.matches.clone())
                .unwrap_or_default();
            assert_eq!(
                got, expected,
                "{} vs {}",
                probe.image.name, e.fingerprint.image.name
            );
            fuzzy += expected
                .iter()
                .filter(|m| m.kind == fwsim::compare::MatchKind::Fuzzy)
                .count();
        }
        // Every family shares busybox: every image answers.
        assert_eq!(hits.len(), b.corpus.len());
    }
    // The rebrand and the second versions make fuzzy matches: the equality is not only about
    // identical files.
    assert!(fuzzy >= 10, "{fuzzy}");
}

/// The matching rule before radii were derived, written out plainly: the best counterpart of
/// every file of `a` in `b` among the identical file, else every file of the same class that
/// scores above 0 on ssdeep, lies below `tlsh_zero` on whole-file or identifier TLSH, or shares
/// an ELF section — first in file order among equals.
fn unpruned_pair(a: &Fingerprint, b: &Fingerprint, t: &Thresholds) -> Vec<FileMatch> {
    let pb = prepare(b);
    let mut out = Vec::new();
    for (ai, fa) in prepare(a) {
        if let Some((bi, fb)) = pb.iter().find(|(_, f)| f.file.sha256 == fa.file.sha256) {
            let mut m = file_similarity(&fa, fb, t).unwrap();
            (m.a, m.b) = (ai, *bi);
            out.push(m);
            continue;
        }
        let below = |x: Option<&Tlsh>, y: Option<&Tlsh>| matches!((x, y), (Some(x), Some(y)) if x.diff(y) < t.tlsh_zero);
        let mut best: Option<FileMatch> = None;
        for (bi, fb) in &pb {
            let ssdeep = match (&fa.ssdeep, &fb.ssdeep) {
                (Some(x), Some(y)) => x.compare(y).is_some_and(|s| s > 0),
                _ => false,
            };
            let candidate = ssdeep
                || (fb.class() == fa.class()
                    && (below(fa.tlsh.as_ref(), fb.tlsh.as_ref())
                        || below(fa.identifier.as_ref(), fb.identifier.as_ref())
                        || fa.sections.iter().any(|s| {
                            s.size > 0 && fb.sections.iter().any(|o| o.sha256 == s.sha256)
                        })));
            if !candidate {
                continue;
            }
            if let Some(mut m) = file_similarity(&fa, fb, t)
                && m.similarity >= t.file_match_min
                && best.as_ref().is_none_or(|x| m.similarity > x.similarity)
            {
                (m.a, m.b) = (ai, *bi);
                best = Some(m);
            }
        }
        out.extend(best);
    }
    out
}

#[test]
fn derived_radii_and_matrix_pruning_change_no_match_and_no_score() {
    let b = built();
    let df = docfreq(&b.corpus);
    let t = Thresholds::default();
    let d = Discount::default();
    let ctx = ScoreContext::new(&df, "corpus", &t, &d);
    let mut entries = b.corpus.clone();
    entries.push(Entry {
        id: 6,
        labels: Labels::default(),
        family: "nordlicht".into(),
        fingerprint: b.rebrand.clone(),
    });
    // Whole-file radii are derived from the thresholds: a stricter match minimum prunes more,
    // and must still leave every match in place.
    let strict = Thresholds {
        file_match_min: 0.5,
        ..Thresholds::default()
    };
    let mut fuzzy = 0;
    for t in [&t, &strict] {
        for x in &entries {
            for y in &entries {
                let expected = unpruned_pair(&x.fingerprint, &y.fingerprint, t);
                fuzzy += expected
                    .iter()
                    .filter(|m| m.kind == MatchKind::Fuzzy)
                    .count();
                assert_eq!(
                    pair(&x.fingerprint, &y.fingerprint, t),
                    expected,
                    "{} vs {}",
                    x.fingerprint.image.name,
                    y.fingerprint.image.name
                );
            }
        }
    }
    assert!(fuzzy >= 20, "{fuzzy}");
    // The matrix queries each image against the later ones only and scores pairs sharing
    // nothing without matches: every pair as `score(pair)` gives it.
    let index = CorpusIndex::new(&entries);
    let pairs = index.all_pairs(&ctx);
    assert_eq!(pairs.len(), 6 * 5 / 2);
    assert_pairs_as_scored_one_by_one(&entries, &pairs, &ctx, &t);
}

#[test]
fn scan_ranks_the_rebrand_first() {
    let b = built();
    let df = docfreq(&b.corpus);
    let t = Thresholds::default();
    let d = Discount::default();
    let ctx = ScoreContext::new(&df, "corpus", &t, &d);
    let index = CorpusIndex::new(&b.corpus);
    let ranked = index.scan(&b.rebrand, &ctx);
    let families: Vec<&str> = ranked
        .iter()
        .map(|r| b.corpus[r.image].family.as_str())
        .collect();
    assert_eq!(&families[..2], &["acme", "acme"], "{families:?}");
    let best = &ranked[0].comparison;
    assert_eq!(
        best.b.name, "acme-1",
        "the same version ranks above the new one"
    );
    assert!(best.score > ranked[2].comparison.score + 20.0, "{ranked:?}");
    assert!(!best.evidence.is_empty());
    // Scores are the pairwise ones.
    let direct = fwsim::compare::score(
        &b.rebrand,
        &b.corpus[0].fingerprint,
        &pair(&b.rebrand, &b.corpus[0].fingerprint, &t),
        &ScoreContext {
            labels_b: Some(&b.corpus[0].labels),
            ..ctx
        },
    );
    assert_eq!(&direct, best);
}

#[test]
fn clusters_group_the_built_families() {
    let b = built();
    let df = docfreq(&b.corpus);
    let t = Thresholds::default();
    let d = Discount::default();
    let ctx = ScoreContext::new(&df, "corpus", &t, &d);
    let mut entries = b.corpus.clone();
    entries.push(Entry {
        id: 6,
        labels: Labels::default(),
        family: "nordlicht".into(),
        fingerprint: b.rebrand.clone(),
    });
    let index = CorpusIndex::new(&entries);
    let pairs = index.all_pairs(&ctx);
    assert_eq!(pairs.len(), 6 * 5 / 2);
    let mut m = ScoreMatrix::new(entries.len());
    for p in &pairs {
        m.set(p.a, p.b, p.comparison.score);
    }
    let clusters = average_linkage(&m, t.same_software);
    let groups: Vec<Vec<usize>> = clusters.iter().map(|c| c.members.clone()).collect();
    // acme-1, acme-2 and the rebrand; zenith-1 and zenith-2; orbit alone.
    assert_eq!(
        groups,
        vec![vec![0, 2, 5], vec![1, 4], vec![3]],
        "{pairs:#?}"
    );
}

/// TLSH digests of real firmware: windows of every sample file of a few sizes, and copies of
/// them with bytes flipped, so that near neighbours exist as they do in a corpus.
fn real_digests(dir: &Path, want: usize) -> Vec<Tlsh> {
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut children: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        children.sort();
        for c in children {
            if c.is_dir() {
                stack.push(c);
            } else if c.metadata().is_ok_and(|m| m.len() >= 4096) {
                files.push(c);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    let mut j = 0usize;
    'files: for f in files {
        let Ok(data) = std::fs::read(&f) else {
            continue;
        };
        // Windows of many lengths (512 B to 256 KiB), as the files of a corpus have.
        let mut at = 0usize;
        loop {
            let len = (512usize << (j % 10)) + (j * 37) % 500;
            j += 1;
            if at + len > data.len().min(4 << 20) {
                break;
            }
            let w = &data[at..at + len];
            out.extend(tlsh::hash(w));
            out.extend(tlsh::hash(&edit(w.to_vec(), 13 + j % 7, 61 + j % 50, b"x")));
            if out.len() >= want {
                break 'files;
            }
            at += len;
        }
    }
    out
}

#[test]
fn tlsh_index_equals_linear_scan_on_real_digests() {
    let Some(dir) = realdata() else { return };
    let digests = real_digests(&dir, 6000);
    assert!(digests.len() >= 3000, "{}", digests.len());
    let index = TlshIndex::new(digests.clone());
    let mut scanned = 0usize;
    let mut found = 0usize;
    for radius in [0, 30, 99, 200] {
        for probe in digests.iter().step_by(37) {
            let got = index.within(probe, radius);
            assert_eq!(
                got,
                linear_within(&digests, probe, radius),
                "radius {radius}"
            );
            found += got.len();
            if radius == 99 {
                scanned += index.scanned(probe, radius);
            }
        }
    }
    assert!(found > 0);
    // At the matching radius (tlsh_zero - 1) the header cells skip most digests.
    let probes = digests.len().div_ceil(37);
    assert!(
        scanned * 2 < probes * digests.len(),
        "scored {scanned} of {}",
        probes * digests.len()
    );
}

#[test]
fn matrix_and_scan_commands_write_every_pair() {
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let fps = dir.path().join("fps");
    std::fs::create_dir(&fps).unwrap();
    for (i, e) in b.corpus.iter().enumerate() {
        e.fingerprint
            .write(&fps.join(format!("{i}-{}.json", e.fingerprint.image.name)))
            .unwrap();
    }
    let probe = dir.path().join("probe.json");
    b.rebrand.write(&probe).unwrap();

    let out = fwsim(&["matrix", fps.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 5);
    let pairs = v["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 10);
    for p in pairs {
        for key in ["a", "b", "score", "verdict", "evidence"] {
            assert!(p.get(key).is_some(), "{key} missing in {p}");
        }
        assert!(p["a_index"].as_u64().unwrap() < p["b_index"].as_u64().unwrap());
    }
    let clusters: Vec<Vec<u64>> = v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(clusters, vec![vec![0, 2], vec![1, 4], vec![3]]);

    let out = fwsim(&["matrix", fps.to_str().unwrap(), "--csv"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "a,b,score,verdict,identical_files,similar_files,evidence"
    );
    assert_eq!(lines.len(), 11);
    assert!(lines[1].starts_with("acme-1,zenith-1,"), "{}", lines[1]);

    let out = fwsim(&["matrix", fps.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("2 families of more than one image"), "{text}");

    let out = fwsim(&[
        "scan",
        probe.to_str().unwrap(),
        "--corpus",
        fps.to_str().unwrap(),
        "--json",
        "--top",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["b"]["name"], "acme-1");
    assert_eq!(results[0]["rank"], 1);
    for key in ["a", "b", "score", "verdict", "evidence"] {
        assert!(results[0].get(key).is_some(), "{key}");
    }

    let out = fwsim(&[
        "scan",
        probe.to_str().unwrap(),
        "--corpus",
        fps.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().nth(2).unwrap();
    assert!(
        first.contains("acme-1") && first.trim_start().starts_with('1'),
        "{text}"
    );

    // The same through a corpus database, with the analysts' labels and families.
    let db = dir.path().join("corpus.db");
    for (i, e) in b.corpus.iter().enumerate() {
        let path = fps.join(format!("{i}-{}.json", e.fingerprint.image.name));
        let out = fwsim(&[
            "corpus",
            "add",
            "--db",
            db.to_str().unwrap(),
            path.to_str().unwrap(),
            "--vendor",
            e.labels.vendor.as_deref().unwrap(),
            "--family",
            &e.family,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = fwsim(&[
        "scan",
        probe.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rarity_source"], "corpus");
    assert_eq!(v["corpus_images"], 5);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results[0]["b"]["name"], "acme-1");
    assert_eq!(results[0]["family"], "acme");
    assert_eq!(results[0]["verdict"], "rebrand", "{}", results[0]);
    assert_eq!(results[1]["family"], "acme");
    let out = fwsim(&[
        "matrix",
        fps.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rarity_source"], "corpus");
    assert_eq!(v["pairs"].as_array().unwrap().len(), 10);

    // No corpus at all is a usage error.
    let out = fwsim(&["scan", probe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn corpus_cluster_puts_the_same_software_into_one_family() {
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let db_s = db.to_str().unwrap();
    // acme-1 carries the analyst's family name; the others are added without one.
    for (i, e) in b.corpus.iter().enumerate() {
        let p = dir.path().join(format!("{i}.json"));
        e.fingerprint.write(&p).unwrap();
        let mut args = vec!["corpus", "add", "--db", db_s, p.to_str().unwrap()];
        if i == 0 {
            args.extend(["--family", "acme-ipc"]);
        }
        let out = fwsim(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let probe = dir.path().join("probe.json");
    b.rebrand.write(&probe).unwrap();
    let out = fwsim(&["corpus", "add", "--db", db_s, probe.to_str().unwrap()]);
    assert!(out.status.success());
    let families = || -> Vec<String> {
        let out = fwsim(&["corpus", "list", "--db", db_s, "--json"]);
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["family"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = families();
    assert_eq!(before.iter().filter(|f| f.starts_with("img-")).count(), 5);
    // A dry run changes nothing.
    let out = fwsim(&["corpus", "cluster", "--db", db_s, "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("would move"));
    assert_eq!(families(), before);
    let out = fwsim(&["corpus", "cluster", "--db", db_s]);
    assert!(out.status.success());
    let after = families();
    // Ids in add order: acme-1, zenith-1, acme-2, orbit-1, zenith-2, the rebrand.
    assert_eq!(after[0], "acme-ipc");
    assert_eq!(after[2], "acme-ipc", "{after:?}");
    assert_eq!(after[5], "acme-ipc", "{after:?}");
    assert_eq!(after[1], after[4], "{after:?}");
    assert_ne!(after[1], "acme-ipc");
    assert_ne!(after[3], after[1]);
    assert_ne!(after[3], "acme-ipc");
    // Clustering again moves nothing.
    let out = fwsim(&["corpus", "cluster", "--db", db_s]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no image changes family"));
}

/// `scan_top` is the first `top` of `scan` — same images, order, scores, verdicts and evidence —
/// for every probe, with `top` from 1 to beyond the corpus, on a corpus holding exact duplicates
/// (equal scores, ranked by image number); every reported score is the pairwise one.
#[test]
fn two_stage_scan_equals_scoring_everything() {
    let b = built();
    let mut entries = b.corpus.clone();
    // Duplicates of acme-1 and zenith-1 under other ids: ties on every probe.
    for (k, i) in [0usize, 1].into_iter().enumerate() {
        let mut e = b.corpus[i].clone();
        e.id = 10 + k as i64;
        entries.push(e);
    }
    let df = docfreq(&entries);
    let t = Thresholds::default();
    let d = Discount::default();
    let ctx = ScoreContext::new(&df, "corpus", &t, &d);
    let index = CorpusIndex::new(&entries);
    let mut probes: Vec<&Fingerprint> = entries.iter().map(|e| &e.fingerprint).collect();
    probes.push(&b.rebrand);
    let mut pruned = 0;
    let mut ties = 0;
    for probe in probes {
        let all = index.scan(probe, &ctx);
        assert!(!all.is_empty());
        ties += all
            .windows(2)
            .filter(|w| w[0].comparison.score == w[1].comparison.score)
            .count();
        for r in &all {
            let e = &entries[r.image];
            let direct = score(
                probe,
                &e.fingerprint,
                &pair(probe, &e.fingerprint, &t),
                &ScoreContext {
                    labels_b: Some(&e.labels),
                    ..ctx
                },
            );
            assert_eq!(r.comparison, direct);
        }
        for top in [1, 2, 3, 4, 7, 8, 100] {
            let (got, stats) = index.scan_top_counted(probe, &ctx, top);
            let want = &all[..top.min(all.len())];
            assert_eq!(got.len(), want.len(), "{} top {top}", probe.image.name);
            for (g, w) in got.iter().zip(want) {
                assert_eq!(g.image, w.image, "{} top {top}", probe.image.name);
                assert_eq!(g.comparison, w.comparison);
            }
            assert!(stats.matched <= stats.bounded);
            assert!(stats.bounded >= all.len());
            if stats.matched < stats.bounded {
                pruned += 1;
            }
        }
        assert!(index.scan_top(probe, &ctx, 0).is_empty());
    }
    assert!(ties >= 2, "{ties}");
    // The bound proves images out of the top: the second stage does not score everything.
    assert!(pruned >= 5, "{pruned}");
}

/// An ELF file sharing with the probe only sections too light to lift it to `file_match_min`
/// (a 16-byte `.fini`) is no candidate, in `pair` and in the index alike; sections that can —
/// `.text`, or `.rodata` and `.data` together though neither alone — make one.
#[test]
fn light_shared_sections_make_no_candidate() {
    use fwsim::features::class::ContentClass;
    use fwsim::features::elf::{ElfFeatures, SectionDigest};
    use fwsim::fingerprint::{FileDigests, FileFeatures};
    use sha2::Digest;
    let sha = |s: &str| hex::encode(sha2::Sha256::digest(s.as_bytes()));
    let elf = |name: &str, sections: &[(&str, u64, &str)]| FileFeatures {
        sha256: sha(name),
        size: 40_000,
        paths: vec![format!("bin/{name}")],
        class: ContentClass::ElfExecutable,
        digests: FileDigests {
            ssdeep: None,
            tlsh: None,
        },
        strings: 0,
        unpacked: false,
        elf: Some(ElfFeatures {
            code_comparable: true,
            sections: sections
                .iter()
                .map(|&(n, size, key)| SectionDigest {
                    name: n.into(),
                    size,
                    sha256: sha(key),
                    ssdeep: None,
                    tlsh: None,
                })
                .collect(),
            ..ElfFeatures::default()
        }),
        components: Vec::new(),
    };
    let b = built();
    let image = |name: &str, files: Vec<FileFeatures>| {
        let mut fp = b.corpus[0].fingerprint.clone();
        fp.image.name = name.into();
        fp.image.sha256 = sha(name);
        fp.evidence.clear();
        fp.files = files;
        fp
    };
    let probe = image(
        "probe",
        vec![elf(
            "app",
            &[
                (".text", 10_000, "text-p"),
                (".rodata", 3_000, "rodata-p"),
                (".data", 4_000, "data-p"),
                (".fini", 16, "fini"),
            ],
        )],
    );
    let fini_only = elf(
        "other",
        &[
            (".text", 10_000, "text-o"),
            (".rodata", 3_000, "rodata-o"),
            (".fini", 16, "fini"),
        ],
    );
    let same_text = elf(
        "rebuilt",
        &[
            (".text", 10_000, "text-p"),
            (".rodata", 3_000, "rodata-x"),
            (".fini", 16, "fini"),
        ],
    );
    let data_parts = elf(
        "tables",
        &[
            (".text", 10_000, "text-y"),
            (".rodata", 3_000, "rodata-p"),
            (".data", 4_000, "data-p"),
        ],
    );
    let rodata_only = elf(
        "strings",
        &[
            (".text", 10_000, "text-z"),
            (".rodata", 3_000, "rodata-p"),
            (".data", 4_000, "data-z"),
        ],
    );
    let t = Thresholds::default();
    let entries: Vec<Entry> = [fini_only, same_text, data_parts, rodata_only]
        .into_iter()
        .enumerate()
        .map(|(i, f)| Entry {
            id: i as i64 + 1,
            labels: Labels::default(),
            family: format!("f{i}"),
            fingerprint: image(&format!("img{i}"), vec![f]),
        })
        .collect();
    let index = CorpusIndex::new(&entries);
    let hits = index.query(&probe, &t);
    let mut matched = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let expected = pair(&probe, &e.fingerprint, &t);
        let got = hits
            .iter()
            .find(|h| h.image == i)
            .map(|h| h.matches.clone())
            .unwrap_or_default();
        assert_eq!(got, expected, "img{i}");
        matched.push(expected.len());
    }
    // Of 15,001.6 weighted bytes, .text (10,000) and .rodata + .data (3,000 + 4,000 × 0.5)
    // reach 0.3; .fini (16 × 0.1) and .rodata alone do not.
    assert_eq!(matched, vec![0, 1, 1, 0]);
    let m = &pair(&probe, &entries[2].fingerprint, &t)[0];
    assert!((m.similarity - 5_000.0 / 15_001.6).abs() < 1e-9, "{m:?}");
}

/// The index parses and posts each distinct digest once for all the files carrying it: a corpus
/// with an exact duplicate image and with fingerprints that disagree about one file (the same
/// SHA-256, other digests) still gets `score(pair)` for every pair of the matrix.
#[test]
fn matrix_equals_pairwise_with_duplicates_and_disagreeing_files() {
    let b = built();
    let mut entries = b.corpus.clone();
    // An exact duplicate of an image, and a copy whose first digested file claims another
    // ssdeep digest and TLSH under the same SHA-256.
    let mut dup = entries[0].clone();
    dup.id = 10;
    entries.push(dup);
    let mut odd = entries[2].clone();
    odd.id = 11;
    let f = odd
        .fingerprint
        .files
        .iter_mut()
        .find(|f| !f.unpacked && f.digests.ssdeep.is_some())
        .unwrap();
    f.digests.ssdeep = Some("3:abcdefghijk:abcdefg".into());
    f.digests.tlsh = None;
    entries.push(odd);
    let df = docfreq(&entries);
    let t = Thresholds::default();
    let d = Discount::default();
    let ctx = ScoreContext::new(&df, "corpus", &t, &d);
    let index = CorpusIndex::new(&entries);
    let pairs = index.all_pairs(&ctx);
    assert_eq!(pairs.len(), 7 * 6 / 2);
    assert_pairs_as_scored_one_by_one(&entries, &pairs, &ctx, &t);
}
