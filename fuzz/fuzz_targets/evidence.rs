//! Every evidence extractor (vendor, build, crypto, platform) on any bytes, and the text parsers
//! they use (kernel banner, device tree, SoC names, host names) on the input read as text.
#![no_main]

use fwsim::features::evidence::{self, Params, platform, vendor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = Params {
        max_config_bytes: 1 << 20,
        ..Params::default()
    };
    let found = evidence::extract("rootfs/usr/bin/fuzzed", data, &params);
    let _ = vendor::candidates(&found);
    let _ = platform::guess(&found);
    let _ = platform::parse_fdt(data);
    let text = String::from_utf8_lossy(data);
    let _ = platform::linux_banner(&text);
    let _ = platform::soc_names(&text);
    let head: String = text.chars().take(128).collect();
    let _ = platform::soc_from_file_name(&head);
    let _ = vendor::normalize(&head);
    let _ = vendor::registrable(&head);
});
