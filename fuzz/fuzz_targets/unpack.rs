//! The whole engine: carving, every format through the work queue, de-duplication and the
//! limits, with tight limits so that one input costs at most a moment.
#![no_main]

use bytes::Bytes;
use fwsim::unpack::{Limits, unpack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_depth: 8,
        max_output_bytes: 64 << 20,
        max_file_bytes: 16 << 20,
        ratio_floor_bytes: 1 << 20,
        max_entries: 50_000,
        max_carve_candidates: 2_000,
        max_failed_carve_bytes: 8 << 20,
        time_budget: std::time::Duration::from_secs(3),
        ..Limits::default()
    };
    let tree = unpack(Bytes::copy_from_slice(data), b"fuzz", &limits);
    // Walking the tree touches every node the engine linked.
    assert_eq!(tree.dfs().len(), tree.nodes().len());
});
