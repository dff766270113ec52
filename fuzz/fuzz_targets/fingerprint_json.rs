//! The fingerprint JSON reader: any text is refused with an error or read into a fingerprint
//! that writes back out as JSON.
#![no_main]

use fwsim::features::FeatureParams;
use fwsim::fingerprint::Fingerprint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let params = FeatureParams::default().recorded();
    if let Ok(fp) = Fingerprint::from_json(text, &params) {
        let mut out = Vec::new();
        fp.write_to(&mut out)
            .expect("a fingerprint read back writes out");
        let again = Fingerprint::from_json(std::str::from_utf8(&out).expect("utf-8"), &params)
            .expect("what we wrote reads back");
        let _ = again;
    }
});
