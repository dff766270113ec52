//! The one integration-test binary: each module tests one part of fwsim through its public API or
//! the `fwsim` binary, on images built in code (`common/`) and on real samples.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

mod archives;
mod compression;
mod features_components;
mod features_elf;
mod fingerprint;
mod hash_differential;
mod hash_golden;
mod hash_index;
mod hostile;
mod safe_output;
mod squashfs_cramfs;
mod synth_demo;
mod unpack_basics;
