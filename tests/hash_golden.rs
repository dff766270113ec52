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

#[test]
fn cli_hash_json_and_compare_give_the_golden_values() {
    let Some(dir) = common::golden() else { return };
    let inputs = dir.join("inputs");
    let p = |n: &str| inputs.join(n).to_str().unwrap().to_string();
    let out = common::fwsim(&["hash", "--json", &p("rand_50"), &p("empty")]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["path"], p("rand_50"));
    assert_eq!(lines[0]["size"], 50);
    assert_eq!(lines[0]["ssdeep"], "3:3iyEQm8aWd:SXQRaW");
    assert_eq!(
        lines[0]["tlsh"],
        "T19F9002153E185F464045524534A5195908199406E6007587640C025B24564325D51571"
    );
    assert_eq!(lines[1]["ssdeep"], "3::");
    assert!(lines[1]["tlsh"].is_null());
    assert_eq!(
        lines[1]["sha256"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );

    let out = common::fwsim(&[
        "hash",
        "--compare",
        &p("rand_1MiB"),
        &p("rand_1MiB_10edits"),
    ]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "ssdeep\t83\ntlsh_diff\t1\ntlsh_diff_no_len\t1\n"
    );
    let out = common::fwsim(&[
        "hash",
        "--compare",
        "--json",
        &p("rand_65536"),
        &p("rand_1MiB"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ssdeep"], 0);
    assert_eq!(v["ssdeep_comparable"], false);
    assert_eq!(v["tlsh_diff"], 597);
    assert_eq!(v["tlsh_diff_no_len"], 249);

    // Usage errors: --compare needs two files; a missing file is exit 1.
    assert_eq!(
        common::fwsim(&["hash", "--compare", &p("empty")])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        common::fwsim(&["hash", "/nonexistent/x"]).status.code(),
        Some(1)
    );
}
