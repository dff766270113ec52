//! TLSH: the digest parser on every input line, both distances on each pair, and the hasher on
//! the raw bytes (its digest must parse back to itself).
#![no_main]

use fwsim::hash::{Tlsh, tlsh};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parsed: Vec<Tlsh> = text
        .lines()
        .take(16)
        .filter_map(|l| l.parse::<Tlsh>().ok())
        .collect();
    if let Some(own) = tlsh::hash(data) {
        let again: Tlsh = own.to_string().parse().expect("own digest parses");
        assert_eq!(again.diff(&own), 0);
        parsed.push(own);
    }
    for a in &parsed {
        for b in &parsed {
            let _ = a.diff(b);
            let _ = a.diff_no_len(b);
        }
    }
});
