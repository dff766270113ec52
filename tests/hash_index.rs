//! The ssdeep candidate index against pairwise comparison on the digests of every ELF file in the
//! real samples, all-against-all (the pairwise scores are themselves checked against libfuzzy by
//! the golden and differential tests).

use std::path::Path;

use fwsim::hash::{self, SsdeepIndex, SsdeepPrepared};

use crate::common;

/// Every ELF file under `dir`, read whole, in sorted path order.
fn elves(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            elves(&e.path(), out);
        } else if ft.is_file() {
            let data = std::fs::read(e.path()).unwrap();
            if data.starts_with(b"\x7fELF") {
                out.push(data);
            }
        }
    }
}

#[test]
fn ssdeep_index_equals_pairwise_compare_on_real_elves() {
    let Some(dir) = common::realdata() else {
        return;
    };
    let mut files = Vec::new();
    elves(&dir, &mut files);
    assert!(files.len() > 100, "only {} ELF files", files.len());
    let digests: Vec<SsdeepPrepared> = hash::digests_par(&files)
        .iter()
        .map(|d| d.ssdeep.as_ref().unwrap().prepare())
        .collect();
    let index = SsdeepIndex::new(digests.clone());
    let (mut none, mut zero, mut mid, mut hundred) = (0, 0, 0, 0);
    let mut expected_pairs = Vec::new();
    for (i, a) in digests.iter().enumerate() {
        let expected: Vec<Option<u32>> = digests.iter().map(|b| a.compare(b)).collect();
        assert_eq!(index.compare_all(a), expected, "row {i}");
        let positive: Vec<(usize, u32)> = expected
            .iter()
            .enumerate()
            .filter_map(|(j, s)| s.filter(|&s| s > 0).map(|s| (j, s)))
            .collect();
        assert_eq!(index.matches(a), positive, "matches of {i}");
        for (j, s) in expected.iter().enumerate() {
            match s {
                None => none += 1,
                Some(0) => zero += 1,
                Some(100) => hundred += 1,
                Some(_) => mid += 1,
            }
            if let Some(s) = s.filter(|&s| s > 0 && j > i) {
                expected_pairs.push((i, j, s));
            }
        }
    }
    assert_eq!(index.all_pairs(), expected_pairs);
    // The real set exercises every outcome.
    assert!(
        none > 0 && zero > 0 && mid > 100 && hundred > digests.len(),
        "{none} {zero} {mid} {hundred}"
    );
}
