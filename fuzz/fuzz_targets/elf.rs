//! The ELF feature extractor (sections, digests, symbols, identifier, notes) on any bytes.
#![no_main]

use fwsim::features::elf::{ElfParams, extract};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = ElfParams {
        section_floor: 64,
        ..ElfParams::default()
    };
    let _ = extract(data, &params);
});
