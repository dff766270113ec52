//! Golden vectors: every input in `../shared/golden` must give exactly the reference tools'
//! ssdeep and TLSH digests (libfuzzy 2.14.1, py-tlsh 5.0.0), and every pair their scores.

use std::collections::HashMap;

use fwsim::hash::{Digests, digests, ssdeep};

use crate::common;

/// The golden inputs hashed, by name, with their reference row.
fn hashed(dir: &std::path::Path) -> Vec<(Vec<String>, Digests)> {
    common::read_tsv(&dir.join("golden.tsv"))
        .into_iter()
        .map(|row| {
            let data = std::fs::read(dir.join("inputs").join(&row[0])).expect("golden input");
            let d = digests(&data);
            (row, d)
        })
        .collect()
}

#[test]
fn golden_inputs_hash_exactly() {
    let Some(dir) = common::golden() else { return };
    let rows = hashed(&dir);
    assert_eq!(rows.len(), 31, "golden.tsv should list 31 inputs");
    let mut bad = Vec::new();
    for (row, d) in &rows {
        let (name, size, sha, ss, tl) = (&row[0], &row[1], &row[2], &row[3], &row[4]);
        assert_eq!(d.size.to_string(), *size, "{name}: size");
        assert_eq!(hex::encode(d.sha256), *sha, "{name}: sha256");
        let got_ss = d.ssdeep.as_ref().unwrap().to_string();
        let got_tl = d
            .tlsh
            .map_or_else(|| "TNULL".to_string(), |t| t.to_string());
        if got_ss != *ss || got_tl != *tl {
            bad.push(format!(
                "{name}: ssdeep {got_ss} (want {ss}), tlsh {got_tl} (want {tl})"
            ));
        }
    }
    assert!(bad.is_empty(), "mismatches:\n{}", bad.join("\n"));
}

#[test]
fn golden_digest_strings_round_trip() {
    let Some(dir) = common::golden() else { return };
    for row in common::read_tsv(&dir.join("golden.tsv")) {
        let d: ssdeep::Ssdeep = row[3].parse().expect("parse ssdeep");
        assert_eq!(d.to_string(), row[3]);
        if row[4] != "TNULL" {
            let t: fwsim::hash::Tlsh = row[4].parse().expect("parse tlsh");
            assert_eq!(t.to_string(), row[4]);
        }
    }
}

#[test]
fn golden_pairs_score_exactly() {
    let Some(dir) = common::golden() else { return };
    let by_name: HashMap<String, Digests> = hashed(&dir)
        .into_iter()
        .map(|(row, d)| (row[0].clone(), d))
        .collect();
    let pairs = common::read_tsv(&dir.join("golden_pairs.tsv"));
    assert_eq!(pairs.len(), 15, "golden_pairs.tsv should list 15 pairs");
    let mut bad = Vec::new();
    for p in &pairs {
        let (a, b) = (&by_name[&p[0]], &by_name[&p[1]]);
        let s = a.prepare().compare(&b.prepare());
        // The reference prints 0 for incomparable block sizes.
        let got = (
            s.ssdeep.unwrap_or(0).to_string(),
            s.tlsh_diff.map_or("NA".into(), |v| v.to_string()),
            s.tlsh_diff_no_len.map_or("NA".into(), |v| v.to_string()),
        );
        let want = (p[2].clone(), p[3].clone(), p[4].clone());
        if got != want {
            bad.push(format!("{} vs {}: got {got:?}, want {want:?}", p[0], p[1]));
        }
        // Symmetric, and the string-level API agrees with the prepared one.
        let back = b.prepare().compare(&a.prepare());
        assert_eq!(back, s, "{} vs {} not symmetric", p[0], p[1]);
        let sa = a.ssdeep.as_ref().unwrap();
        let sb = b.ssdeep.as_ref().unwrap();
        assert_eq!(ssdeep::compare(sa, sb), s.ssdeep);
    }
    assert!(bad.is_empty(), "mismatches:\n{}", bad.join("\n"));
}

#[test]
fn incomparable_block_sizes_are_distinguished_from_zero() {
    let Some(dir) = common::golden() else { return };
    let read = |n: &str| digests(&std::fs::read(dir.join("inputs").join(n)).unwrap()).prepare();
    // 1536 vs 24576: 16x apart.
    assert_eq!(read("rand_65536").compare(&read("rand_1MiB")).ssdeep, None);
    // 96 vs 96 with nothing in common: comparable, score 0.
    assert_eq!(
        read("rand_4096").compare(&read("rand_4097")).ssdeep,
        Some(0)
    );
}
