//! ssdeep: the digest parser on every input line, the comparer on each pair (scores within
//! 0-100, a digest matching itself fully) and `SsdeepIndex`, and the hasher on the raw bytes (its
//! digest must parse back to itself).
#![no_main]

use fwsim::hash::{Ssdeep, SsdeepIndex, ssdeep};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parsed: Vec<Ssdeep> = text
        .lines()
        .take(16)
        .filter_map(|l| l.parse::<Ssdeep>().ok())
        .collect();
    if let Ok(own) = ssdeep::hash(data) {
        // Its own digest parses back to itself.
        let again: Ssdeep = own.to_string().parse().expect("own digest parses");
        assert_eq!(again, own);
        parsed.push(own);
    }
    for a in &parsed {
        for b in &parsed {
            let score = ssdeep::compare(a, b);
            assert!(score.is_none_or(|s| s <= 100), "{a} vs {b}: {score:?}");
        }
    }
    let index = SsdeepIndex::new(parsed.iter().map(Ssdeep::prepare).collect());
    for a in &parsed {
        // A digest always matches itself fully.
        assert_eq!(ssdeep::compare(a, a), Some(100), "{a}");
        let _ = index.matches(&a.prepare());
    }
    let _ = index.all_pairs();
});
