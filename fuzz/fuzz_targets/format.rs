//! Every format's `detect` and `unpack` on its own, outside the carver. The first byte selects
//! the format (`FORMATS[data[0] % FORMATS.len()]`, so every format is reached) and the rest is
//! its input; besides, every format whose magic sits at its offset in the whole input is run on
//! it, so real samples used as seeds exercise their own format without a selector byte.
#![no_main]

use bytes::Bytes;
use fwsim::unpack::{Budget, Ctx, FORMATS, Format, Limits};
use libfuzzer_sys::fuzz_target;

/// Tight limits: a fuzz input must not spend more than a moment or a few MiB.
fn limits() -> Limits {
    Limits {
        max_depth: 4,
        max_output_bytes: 64 << 20,
        max_file_bytes: 16 << 20,
        ratio_floor_bytes: 1 << 20,
        max_entries: 20_000,
        time_budget: std::time::Duration::from_secs(2),
        ..Limits::default()
    }
}

fn run(format: &dyn Format, data: &Bytes) {
    let budget = Budget::new(limits());
    let ctx = Ctx::new(&budget);
    let _ = format.detect(data);
    let _ = format.unpack(data, &ctx);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let whole = Bytes::copy_from_slice(data);
    if let Some(format) = FORMATS.get(usize::from(selector) % FORMATS.len()) {
        run(*format, &Bytes::copy_from_slice(rest));
    }
    for format in FORMATS {
        let at_offset = format
            .magics()
            .iter()
            .any(|m| data.get(m.offset..m.offset.saturating_add(m.bytes.len())) == Some(m.bytes));
        if at_offset {
            run(*format, &whole);
        }
    }
});
