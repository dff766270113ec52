//! The corpus database: add / list / remove / export→import round trip, duplicates, refused
//! fingerprints and files, document frequencies over families, `find` by every key type, a reader
//! beside a writer, the `fwsim corpus` commands, and durability under `kill -9`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::compare::rarity::{DocFreq, items};
use fwsim::corpus::{AddOutcome, Corpus, CorpusError, Entry, FindHit, Labels, Query};
use fwsim::features::{self, FeatureParams};
use fwsim::fingerprint::Fingerprint;
use fwsim::synth::{Brand, Firmware, Options};
use fwsim::unpack::{Limits, unpack};

use crate::common::fwsim;

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Fingerprints an image exactly as `fwsim fingerprint` does (unpack with the default limits,
/// then the feature driver with the default parameters).
fn fingerprint_of(image: Vec<u8>, name: &str, params: &FeatureParams) -> Fingerprint {
    let tree = unpack(Bytes::from(image), name.as_bytes(), &Limits::default());
    features::fingerprint(&tree, params)
}

/// The images of these tests, built once.
struct Fixtures {
    /// Vistacam camera (Dahua .bin) carrying a certificate and a key.
    vista: Fingerprint,
    /// The same software rebranded and repacked as tar.gz.
    rebrand: Fingerprint,
    /// Another Vistacam version (other version string and build paths), flash dump.
    vista2: Fingerprint,
    /// The image bytes of `vista`, for the CLI.
    vista_bin: Vec<u8>,
    /// SHA-256 of the certificate's DER and of the key's SubjectPublicKeyInfo.
    cert_sha: String,
    spki_sha: String,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData};
        let key = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(vec!["cam.vistacam.test".to_owned()]).unwrap();
        cp.distinguished_name
            .push(DnType::OrganizationName, "Vistacam Technology Co., Ltd.");
        let cert = cp.self_signed(&key).unwrap();
        let cert_sha = sha256_hex(cert.der());
        let spki_sha = sha256_hex(&key.subject_public_key_info());

        let mut a = Options::tiny();
        a.extra_user_files = vec![
            ("etc/ssl/cam.crt".into(), cert.pem().into_bytes()),
            ("etc/ssl/cam.key".into(), key.serialize_pem().into_bytes()),
        ];
        let vista_fw = Firmware::camera(&a).unwrap();
        let vista_bin = vista_fw.dahua_bin().unwrap();

        let mut b = Options::tiny();
        b.brand = Brand {
            vendor: "Northwind Security Ltd.".into(),
            product: "NW-CAM-200".into(),
            version: "V2.622.0000000.18.R".into(),
            build_user: "jenkins".into(),
        };
        let rebrand = Firmware::camera(&b).unwrap().tar_gz().unwrap();

        let mut c = Options::tiny();
        c.brand.version = "V2.800.0000000.3.R".into();
        let (vista2, _) = Firmware::camera(&c).unwrap().flash_dump().unwrap();

        let p = FeatureParams::default();
        let (vista, (rebrand, vista2)) = rayon::join(
            || fingerprint_of(vista_bin.clone(), "vista.bin", &p),
            || {
                rayon::join(
                    || fingerprint_of(rebrand, "northwind.tar.gz", &p),
                    || fingerprint_of(vista2, "vista2.flash", &p),
                )
            },
        );
        Fixtures {
            vista,
            rebrand,
            vista2,
            vista_bin,
            cert_sha,
            spki_sha,
        }
    })
}

fn new_db(dir: &Path) -> (PathBuf, Corpus) {
    let path = dir.join("corpus.db");
    let db = Corpus::create(&path, &FeatureParams::default().recorded()).unwrap();
    (path, db)
}

fn labels(vendor: &str) -> Labels {
    Labels {
        vendor: Some(vendor.into()),
        product: Some("IPC".into()),
        fw_version: Some("1.0".into()),
        tags: vec!["test".into(), "camera".into()],
    }
}

/// Document frequencies recomputed from scratch from the stored entries (never read from the
/// database's own table).
fn recomputed_df(entries: &[Entry]) -> DocFreq {
    let mut holders: HashMap<String, HashSet<&str>> = HashMap::new();
    for e in entries {
        for item in items(&e.fingerprint) {
            holders.entry(item).or_default().insert(&e.family);
        }
    }
    let families: HashSet<&str> = entries.iter().map(|e| e.family.as_str()).collect();
    DocFreq {
        families: families.len() as u32,
        counts: holders
            .into_iter()
            .map(|(k, f)| (k, f.len() as u32))
            .collect(),
    }
}

fn assert_df_consistent(db: &Corpus) {
    let (entries, stored) = db.load().unwrap();
    let fresh = recomputed_df(&entries);
    assert_eq!(stored.families, fresh.families, "number of families");
    if stored.counts != fresh.counts {
        let mut diff: Vec<_> = fresh
            .counts
            .iter()
            .filter(|(k, v)| stored.counts.get(*k) != Some(v))
            .take(5)
            .collect();
        diff.sort();
        panic!(
            "stored df differs from recomputed ({} vs {} keys), e.g. {diff:?}",
            stored.counts.len(),
            fresh.counts.len()
        );
    }
}

/// A file (by item key) every fingerprint holds.
fn shared_file(fps: &[&Fingerprint]) -> String {
    let mut all = items(fps[0]);
    for fp in &fps[1..] {
        let other = items(fp);
        all.retain(|k| other.contains(k));
    }
    all.into_iter()
        .find(|k| k.starts_with("file:"))
        .expect("the images share a file")
}

#[test]
fn add_list_remove_and_export_import_round_trip() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let (_, mut db) = new_db(dir.path());
    let a = db
        .add(&f.vista, &labels("Vistacam"), Some("vistacam"))
        .unwrap();
    let b = db.add(&f.rebrand, &Labels::default(), None).unwrap();
    let (AddOutcome::Added(a), AddOutcome::Added(b)) = (a, b) else {
        panic!("both added: {a:?} {b:?}");
    };
    let rows = db.list().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].id, a);
    assert_eq!(rows[0].sha256, f.vista.image.sha256);
    assert_eq!(rows[0].name, "vista.bin");
    assert_eq!(rows[0].family, "vistacam");
    assert_eq!(rows[0].labels.vendor.as_deref(), Some("Vistacam"));
    assert_eq!(rows[0].labels.tags, vec!["camera", "test"], "tags sorted");
    assert_eq!(rows[0].files, f.vista.files.len() as u64);
    assert_eq!(rows[0].size, f.vista.image.size);
    assert_eq!(rows[1].id, b);
    // Without --family: a family of its own, named from the image's SHA-256.
    assert_eq!(
        rows[1].family,
        format!("img-{}", &f.rebrand.image.sha256[..12])
    );
    assert_eq!(rows[1].labels, Labels::default());

    let entries = db.entries().unwrap();
    assert_eq!(entries[0].fingerprint, f.vista);
    assert_eq!(entries[1].fingerprint, f.rebrand);

    // Export → import into a new corpus: the same fingerprints, labels and families.
    let mut jsonl = Vec::new();
    assert_eq!(db.export(&mut jsonl).unwrap(), 2);
    assert_eq!(jsonl.iter().filter(|&&c| c == b'\n').count(), 2);
    let dir2 = tempfile::tempdir().unwrap();
    let (_, mut db2) = new_db(dir2.path());
    let done = db2.import(&jsonl[..]).unwrap();
    assert_eq!(done.added.len(), 2);
    assert!(done.already_present.is_empty());
    let back = db2.entries().unwrap();
    assert_eq!(back.len(), 2);
    for (x, y) in entries.iter().zip(&back) {
        assert_eq!(x.fingerprint, y.fingerprint);
        assert_eq!(x.labels, y.labels);
        assert_eq!(x.family, y.family);
    }
    assert_eq!(db2.doc_freq().unwrap(), db.doc_freq().unwrap());
    // Importing again adds nothing.
    let again = db2.import(&jsonl[..]).unwrap();
    assert!(again.added.is_empty());
    assert_eq!(again.already_present.len(), 2);

    // Remove: gone from list, entries, and find.
    db.remove(a).unwrap();
    let rows = db.list().unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b]);
    assert!(matches!(db.remove(a), Err(CorpusError::NoSuchImage(_))));
    let hits = db
        .find(&Query::Sha256(f.vista.image.sha256.clone()))
        .unwrap();
    assert!(hits.is_empty());
    assert_df_consistent(&db);
}

#[test]
fn an_image_already_present_is_not_added_twice() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let (_, mut db) = new_db(dir.path());
    let first = db.add(&f.vista, &labels("Vistacam"), None).unwrap();
    let df = db.doc_freq().unwrap();
    let second = db.add(&f.vista, &labels("Other"), Some("x")).unwrap();
    assert_eq!(second, AddOutcome::AlreadyPresent(first.id()));
    assert_eq!(db.len().unwrap(), 1);
    assert_eq!(
        db.list().unwrap()[0].labels.vendor.as_deref(),
        Some("Vistacam")
    );
    assert_eq!(db.doc_freq().unwrap(), df);
}

#[test]
fn fingerprints_with_other_parameters_are_refused() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let (_, mut db) = new_db(dir.path());
    let other = FeatureParams {
        string_min_len: 9,
        ..FeatureParams::default()
    };
    let mut opts = Options::tiny();
    opts.brand.vendor = "Params Test Inc.".into();
    let image = Firmware::camera(&opts).unwrap().tar_gz().unwrap();
    let fp = fingerprint_of(image, "other-params.tar.gz", &other);
    let err = db.add(&fp, &Labels::default(), None).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, CorpusError::Fwsim(fwsim::Error::Refused(_))),
        "{msg}"
    );
    assert!(msg.contains("other extraction parameters"), "{msg}");
    assert!(db.is_empty().unwrap());

    // The same refusal through an import line: nothing of the file is taken.
    let mut line = serde_json::to_vec(&serde_json::json!({
        "labels": Labels::default(), "family": "x", "fingerprint": f.vista,
    }))
    .unwrap();
    line.push(b'\n');
    line.extend(serde_json::to_vec(&serde_json::json!({"fingerprint": fp})).unwrap());
    let err = db.import(&line[..]).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(db.is_empty().unwrap(), "an import is one transaction");

    // A stale schema version is refused too.
    let mut stale = f.vista.clone();
    stale.schema_version = 1;
    assert!(matches!(
        db.add(&stale, &Labels::default(), None),
        Err(CorpusError::Fwsim(fwsim::Error::Refused(_)))
    ));
}

/// Opening each file fails with "not a fwsim corpus" (or a refusal) and leaves it byte for byte
/// as it was; the same through `fwsim corpus add` and `list`.
#[test]
fn foreign_corrupt_text_and_newer_files_are_refused_unchanged() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let text = d.join("notes.txt");
    std::fs::write(
        &text,
        "these are not the fingerprints you are looking for\n",
    )
    .unwrap();

    let empty = d.join("empty.db");
    std::fs::write(&empty, b"").unwrap();

    let foreign = d.join("foreign.sqlite");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch(
            "CREATE TABLE images(id INTEGER, x TEXT); INSERT INTO images VALUES (1, 'a');",
        )
        .unwrap();
    }

    // A real corpus, then copies of it: one with its pages overwritten, one truncated, one whose
    // layout claims a newer version.
    let (good, mut db) = new_db(d);
    db.add(&f.vista, &Labels::default(), None).unwrap();
    drop(db);
    assert!(
        !good.with_extension("db-wal").exists(),
        "checkpointed on close"
    );
    let bytes = std::fs::read(&good).unwrap();
    assert!(bytes.len() > 8192);

    let corrupt = d.join("corrupt.db");
    let mut c = bytes.clone();
    for (i, b) in c.iter_mut().enumerate().skip(100) {
        *b = (i as u8).wrapping_mul(31) ^ 0x5a;
    }
    std::fs::write(&corrupt, &c).unwrap();

    let truncated = d.join("truncated.db");
    std::fs::write(&truncated, &bytes[..60]).unwrap();

    let newer = d.join("newer.db");
    std::fs::write(&newer, &bytes).unwrap();
    {
        let c = rusqlite::Connection::open(&newer).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }

    let fp_json = d.join("fp.json");
    f.vista.write(&fp_json).unwrap();

    for (path, expect) in [
        (&text, "not an SQLite database"),
        (&empty, "empty"),
        (&foreign, "another application"),
        (&corrupt, "not a fwsim corpus"),
        (&truncated, "not an SQLite database"),
        (&newer, "newer fwsim"),
    ] {
        let before = std::fs::read(path).unwrap();
        let siblings = |p: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(p.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let listing = siblings(path);
        let err = Corpus::open(path).unwrap_err().to_string();
        assert!(err.contains(expect), "{}: {err}", path.display());
        assert!(err.contains("not a fwsim corpus"), "{err}");

        let p = path.to_str().unwrap();
        let out = fwsim(&["corpus", "add", "--db", p, fp_json.to_str().unwrap(), "-q"]);
        assert_eq!(out.status.code(), Some(1), "{}", path.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a fwsim corpus"), "{stderr}");
        let out = fwsim(&["corpus", "list", "--db", p]);
        assert_eq!(out.status.code(), Some(1));

        assert_eq!(
            std::fs::read(path).unwrap(),
            before,
            "{} modified",
            path.display()
        );
        assert_eq!(
            siblings(path),
            listing,
            "files appeared beside {}",
            path.display()
        );
    }
    // The intact corpus still opens.
    assert_eq!(Corpus::open(&good).unwrap().len().unwrap(), 1);
    // And create never overwrites.
    let err = Corpus::create(&text, &FeatureParams::default().recorded()).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn document_frequencies_count_families_and_follow_adds_removals_and_moves() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let (_, mut db) = new_db(dir.path());
    let shared = shared_file(&[&f.vista, &f.vista2, &f.rebrand]);
    let others: BTreeSet<String> = items(&f.vista2)
        .union(&items(&f.rebrand))
        .cloned()
        .collect();
    let only_vista: String = items(&f.vista)
        .difference(&others)
        .find(|k| k.starts_with("ev:certificate:"))
        .cloned()
        .expect("the certificate is only in vista");

    // One image: exactly its items, each held by one family.
    let a = db
        .add(&f.vista, &labels("Vistacam"), Some("vistacam"))
        .unwrap()
        .id();
    let df = db.doc_freq().unwrap();
    assert_eq!(df.families, 1);
    let keys: BTreeSet<String> = df.counts.keys().cloned().collect();
    assert_eq!(keys, items(&f.vista));
    assert!(df.counts.values().all(|&c| c == 1));

    // A second image of the same family sharing the file: still 1.
    let b = db
        .add(&f.vista2, &labels("Vistacam"), Some("vistacam"))
        .unwrap()
        .id();
    let df = db.doc_freq().unwrap();
    assert_eq!((df.families, df.get(&shared)), (1, 1));

    // Another family holding it: 2.
    let c = db
        .add(&f.rebrand, &labels("Northwind"), Some("northwind"))
        .unwrap()
        .id();
    let df = db.doc_freq().unwrap();
    assert_eq!(
        (df.families, df.get(&shared), df.get(&only_vista)),
        (2, 2, 1)
    );
    assert_df_consistent(&db);

    // Removing one of the two vistacam images changes nothing for the shared file.
    db.remove(b).unwrap();
    assert_eq!(db.doc_freq().unwrap().get(&shared), 2);
    // Removing the other family's only image lowers it and drops the family.
    db.remove(c).unwrap();
    let df = db.doc_freq().unwrap();
    assert_eq!((df.families, df.get(&shared)), (1, 1));
    assert_df_consistent(&db);

    // Family moves: put vista2 back, then move it to a family of its own → 2; back → 1.
    let b = db
        .add(&f.vista2, &Labels::default(), Some("vistacam"))
        .unwrap()
        .id();
    db.assign_family(b, "vistacam-v2").unwrap();
    let df = db.doc_freq().unwrap();
    assert_eq!((df.families, df.get(&shared)), (2, 2));
    assert_df_consistent(&db);
    db.assign_family(b, "vistacam").unwrap();
    let df = db.doc_freq().unwrap();
    assert_eq!((df.families, df.get(&shared)), (1, 1));
    assert!(matches!(
        db.assign_family(999, "x"),
        Err(CorpusError::NoSuchImage(999))
    ));
    db.remove(a).unwrap();
    db.remove(b).unwrap();
    let df = db.doc_freq().unwrap();
    assert_eq!(df, DocFreq::default(), "an empty corpus counts nothing");
}

fn hit_paths(hits: &[FindHit], id: i64) -> Vec<&str> {
    hits.iter()
        .find(|h| h.id == id)
        .map(|h| h.matches.iter().map(|m| m.path.as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn find_by_each_key_type_names_images_and_paths() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let (_, mut db) = new_db(dir.path());
    let a = db
        .add(&f.vista, &labels("Vistacam"), Some("vistacam"))
        .unwrap()
        .id();
    let c = db
        .add(&f.rebrand, &labels("Northwind"), Some("northwind"))
        .unwrap()
        .id();
    let ids = |hits: &[FindHit]| hits.iter().map(|h| h.id).collect::<Vec<_>>();

    // SHA-256 of a file both hold: both images, at the file's paths.
    let shared = shared_file(&[&f.vista, &f.rebrand]);
    let sha = shared.strip_prefix("file:").unwrap();
    let hits = db.find(&Query::Sha256(sha.to_uppercase())).unwrap();
    assert_eq!(ids(&hits), vec![a, c]);
    let file = f.vista.files.iter().find(|x| x.sha256 == sha).unwrap();
    let mut expected: Vec<&str> = file.paths.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(hit_paths(&hits, a), expected);
    assert_eq!(hits[0].family, "vistacam");
    assert_eq!(hits[0].labels.vendor.as_deref(), Some("Vistacam"));

    // The image's own SHA-256, and an ELF section's.
    let hits = db
        .find(&Query::Sha256(f.rebrand.image.sha256.clone()))
        .unwrap();
    assert_eq!(ids(&hits), vec![c]);
    assert_eq!(
        hits[0].matches[0].key,
        format!("image:{}", f.rebrand.image.sha256)
    );
    let (elf_file, section) = f
        .vista
        .files
        .iter()
        .filter_map(|x| {
            let s = x
                .elf
                .as_ref()?
                .sections
                .iter()
                .find(|s| s.ssdeep.is_some())?;
            Some((x, s))
        })
        .next()
        .expect("an ELF with a digested section");
    let hits = db.find(&Query::Sha256(section.sha256.clone())).unwrap();
    let m = &hits.iter().find(|h| h.id == a).unwrap().matches;
    assert!(
        m.iter()
            .any(|m| m.detail == section.name && elf_file.paths.contains(&m.path)),
        "{m:?}"
    );

    // ssdeep and TLSH: the file's own digest finds it with the top score / distance 0.
    let big = f
        .vista
        .files
        .iter()
        .filter(|x| x.digests.tlsh.is_some() && x.digests.ssdeep.is_some() && !x.unpacked)
        .max_by_key(|x| x.size)
        .unwrap();
    let hits = db
        .find(&Query::Ssdeep {
            digest: big.digests.ssdeep.clone().unwrap(),
            min_score: 90,
        })
        .unwrap();
    let m = hits.iter().find(|h| h.id == a).unwrap();
    assert!(
        m.matches
            .iter()
            .any(|m| m.score == Some(100) && big.paths.contains(&m.path)),
        "{m:?}"
    );
    let hits = db
        .find(&Query::Tlsh {
            digest: big.digests.tlsh.clone().unwrap(),
            max_distance: 30,
        })
        .unwrap();
    let m = hits.iter().find(|h| h.id == a).unwrap();
    assert!(
        m.matches
            .iter()
            .any(|m| m.score == Some(0) && big.paths.contains(&m.path))
    );
    assert!(matches!(
        db.find(&Query::Tlsh {
            digest: "T1xyz".into(),
            max_distance: 1
        }),
        Err(CorpusError::Fwsim(fwsim::Error::Invalid(_)))
    ));

    // Certificate and key: only the vistacam image, at the files put in.
    let hits = db.find(&Query::Cert(f.cert_sha.clone())).unwrap();
    assert_eq!(ids(&hits), vec![a]);
    assert!(
        hit_paths(&hits, a)
            .iter()
            .all(|p| p.ends_with("etc/ssl/cam.crt"))
    );
    let hits = db.find(&Query::Key(f.spki_sha.clone())).unwrap();
    assert_eq!(ids(&hits), vec![a]);
    assert!(
        hit_paths(&hits, a)
            .iter()
            .any(|p| p.ends_with("etc/ssl/cam.key")),
        "{hits:?}"
    );

    // Build path: both images were built under /home/jenkins.
    let hits = db.find(&Query::BuildPath("/home/jenkins/".into())).unwrap();
    assert_eq!(ids(&hits), vec![a, c]);
    assert!(
        db.find(&Query::BuildPath("/home/nobody/".into()))
            .unwrap()
            .is_empty()
    );

    // A string: the vendor name, any case, only where it occurs.
    let hits = db.find(&Query::Text("NORTHWIND SECURITY".into())).unwrap();
    assert_eq!(ids(&hits), vec![c]);
    assert!(
        hits[0]
            .matches
            .iter()
            .all(|m| m.key.to_lowercase().contains("northwind security"))
    );
    let hits = db.find(&Query::Text("cam.crt".into())).unwrap();
    assert_eq!(ids(&hits), vec![a], "file paths are searched too");
}

#[test]
fn a_reader_sees_whole_images_while_a_writer_adds() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let (path, mut db) = new_db(dir.path());
    db.add(&f.vista, &Labels::default(), Some("f0")).unwrap();
    let copies: Vec<Fingerprint> = (1..=6)
        .map(|i| {
            let mut fp = if i % 2 == 0 {
                f.rebrand.clone()
            } else {
                f.vista2.clone()
            };
            fp.image.sha256 = sha256_hex(format!("copy {i}").as_bytes());
            fp
        })
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let r = Corpus::open(&path).unwrap();
            let mut seen = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let n = r.entries().unwrap().len();
                assert_df_consistent(&r);
                seen.push(n);
                if finished {
                    break;
                }
            }
            seen
        });
        for (i, fp) in copies.iter().enumerate() {
            db.add(fp, &Labels::default(), Some(&format!("f{}", i % 3)))
                .unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = reader.join().unwrap();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert_eq!(*seen.last().unwrap(), 7);
    });
}

#[test]
fn corpus_commands_add_list_find_set_family_export_import_remove() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("c.db");
    let db_s = db.to_str().unwrap();
    let image = d.join("vista.bin");
    std::fs::write(&image, &f.vista_bin).unwrap();
    let fp2 = d.join("rebrand.json");
    f.rebrand.write(&fp2).unwrap();
    let ok = |args: &[&str]| {
        let out = fwsim(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    // An image (unpacked and fingerprinted like `fwsim fingerprint`) and a fingerprint file.
    let out = ok(&[
        "corpus",
        "add",
        "--db",
        db_s,
        image.to_str().unwrap(),
        "--vendor",
        "Vistacam",
        "--product",
        "IPC-HFW4431R-Z",
        "--fw-version",
        "2.622",
        "--tag",
        "a",
        "--tag",
        "b",
        "--family",
        "vistacam",
        "-q",
    ]);
    assert!(out.starts_with("added #1 "), "{out}");
    let out = ok(&["corpus", "add", "--db", db_s, fp2.to_str().unwrap(), "-q"]);
    assert!(out.starts_with("added #2 "), "{out}");
    let out = ok(&["corpus", "add", "--db", db_s, image.to_str().unwrap(), "-q"]);
    assert!(out.starts_with("already present as #1"), "{out}");

    // The image path gives the same fingerprint as the library path.
    let opened = Corpus::open(&db).unwrap();
    assert_eq!(opened.fingerprint(1).unwrap().files, f.vista.files);
    drop(opened);

    let text = ok(&["corpus", "list", "--db", db_s]);
    assert!(text.lines().next().unwrap().starts_with("ID"), "{text}");
    assert!(
        text.contains("vistacam") && text.contains("IPC-HFW4431R-Z"),
        "{text}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["corpus", "list", "--db", db_s, "--json"])).unwrap();
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["labels"]["vendor"], "Vistacam");
    assert_eq!(list[0]["labels"]["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(list[1]["sha256"], f.rebrand.image.sha256);

    let hits: serde_json::Value = serde_json::from_str(&ok(&[
        "corpus",
        "find",
        "--db",
        db_s,
        "--cert",
        &f.cert_sha,
        "--json",
    ]))
    .unwrap();
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert_eq!(hits[0]["id"], 1);
    let text = ok(&["corpus", "find", "--db", db_s, "--string", "northwind"]);
    assert!(text.starts_with("#2 northwind.tar.gz"), "{text}");
    let text = ok(&["corpus", "find", "--db", db_s, "--sha256", &"0".repeat(64)]);
    assert_eq!(text.trim(), "no image holds it");
    // Two queries at once, or none: usage errors.
    let out = fwsim(&[
        "corpus", "find", "--db", db_s, "--cert", "aa", "--key", "bb",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = fwsim(&["corpus", "find", "--db", db_s, "--sha256", "xyz"]);
    assert_eq!(out.status.code(), Some(1));

    ok(&["corpus", "set-family", "--db", db_s, "2", "vistacam"]);
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["corpus", "list", "--db", db_s, "--json"])).unwrap();
    assert_eq!(list[1]["family"], "vistacam");

    let export = d.join("export.jsonl");
    ok(&[
        "corpus",
        "export",
        "--db",
        db_s,
        "-o",
        export.to_str().unwrap(),
    ]);
    let db2 = d.join("c2.db");
    let out = ok(&[
        "corpus",
        "import",
        "--db",
        db2.to_str().unwrap(),
        export.to_str().unwrap(),
    ]);
    assert_eq!(out.trim(), "imported 2 image(s), 0 already present");
    let a = Corpus::open(&db).unwrap().entries().unwrap();
    let b = Corpus::open(&db2).unwrap().entries().unwrap();
    assert_eq!(a, b);

    ok(&["corpus", "remove", "--db", db_s, "1"]);
    let out = fwsim(&["corpus", "remove", "--db", db_s, "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no image with id 1"));
    let out = fwsim(&[
        "corpus",
        "list",
        "--db",
        d.join("missing.db").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!d.join("missing.db").exists(), "list never creates");
}

/// A small seeded generator for the kill moments.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `kill -9` of `fwsim corpus add` at random moments: the database always opens, passes SQLite's
/// integrity check, and holds exactly the earlier images or exactly those plus the new one, with
/// document frequencies equal to ones recomputed from scratch and no posting of a missing image.
/// Trials: `FWSIM_KILL_TRIALS` (default 30); seed: `FWSIM_KILL_SEED`.
#[test]
fn killing_corpus_add_leaves_the_earlier_images_or_all_of_the_new_one() {
    let f = fixtures();
    let trials: usize = std::env::var("FWSIM_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("FWSIM_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f1e5);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A corpus of three images, closed (checkpointed) so that a copy of the file is the corpus.
    let (base, mut db) = new_db(d);
    db.add(&f.vista, &labels("Vistacam"), Some("vistacam"))
        .unwrap();
    db.add(&f.vista2, &labels("Vistacam"), Some("vistacam"))
        .unwrap();
    db.add(&f.rebrand, &labels("Northwind"), None).unwrap();
    let before: Vec<String> = db.list().unwrap().into_iter().map(|r| r.sha256).collect();
    drop(db);
    let base_bytes = std::fs::read(&base).unwrap();

    // The new image: the rebrand with thousands more files, so that its transaction is long.
    let mut big = f.rebrand.clone();
    big.image.sha256 = sha256_hex(b"the big new image");
    big.image.name = "big.bin".into();
    let template = big.files[0].clone();
    for i in 0..6000u32 {
        let mut file = template.clone();
        file.sha256 = sha256_hex(&i.to_le_bytes());
        file.paths = vec![format!("big.bin/extra/{i:05}/file")];
        file.unpacked = false;
        big.files.push(file);
    }
    let new_sha = big.image.sha256.clone();
    let marker = big.files.last().unwrap().sha256.clone();
    let big_json = d.join("big.json");
    big.write(&big_json).unwrap();

    let trial_db = d.join("trial.db");
    let fresh = || {
        for ext in ["db", "db-wal", "db-shm"] {
            let _ = std::fs::remove_file(trial_db.with_extension(ext));
        }
        std::fs::write(&trial_db, &base_bytes).unwrap();
    };
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_fwsim"))
            .args(["corpus", "add", "--db"])
            .arg(&trial_db)
            .arg(&big_json)
            .args(["--family", "big", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long an add takes when left alone.
    fresh();
    let t0 = Instant::now();
    assert!(spawn().wait().unwrap().success());
    let full = t0.elapsed();
    assert_eq!(Corpus::open(&trial_db).unwrap().len().unwrap(), 4);

    let mut rng = XorShift(seed | 1);
    let (mut old, mut new) = (0, 0);
    for trial in 0..trials {
        fresh();
        let at = Duration::from_micros(rng.next() % (full.as_micros() as u64 * 11 / 10 + 1));
        let mut child = spawn();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL on Unix
        child.wait().unwrap();

        let db = Corpus::open(&trial_db)
            .unwrap_or_else(|e| panic!("trial {trial} (kill at {at:?}): {e}"));
        assert_eq!(
            db.integrity_check().unwrap(),
            Vec::<String>::new(),
            "trial {trial}"
        );
        let now: Vec<String> = db.list().unwrap().into_iter().map(|r| r.sha256).collect();
        let hits = db.find(&Query::Sha256(marker.clone())).unwrap();
        if now == before {
            old += 1;
            assert!(
                hits.is_empty(),
                "trial {trial}: postings of an image not added"
            );
        } else {
            new += 1;
            let mut expected = before.clone();
            expected.push(new_sha.clone());
            assert_eq!(now, expected, "trial {trial}");
            assert_eq!(hits.len(), 1, "trial {trial}");
            assert_eq!(db.fingerprint(4).unwrap(), big);
        }
        assert_df_consistent(&db);
        let c = rusqlite::Connection::open(&trial_db).unwrap();
        let orphans: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM postings WHERE image_id NOT IN (SELECT id FROM images)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0, "trial {trial}");
    }
    eprintln!(
        "kill -9 trials: {trials} (add alone takes {full:?}): {old} left the earlier images, {new} \
         the new one too"
    );
}
