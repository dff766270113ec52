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
mod compare;
mod compression;
mod corpus_db;
mod evidence;
mod ext;
mod fdt_fit;
mod features_components;
mod features_elf;
mod fingerprint;
mod hash_differential;
mod hash_golden;
mod hash_index;
mod hikvision;
mod hostile;
mod inspect;
mod jffs2;
mod romfs;
mod safe_output;
mod scan_matrix;
mod sevenz;
mod soak;
mod squashfs_cramfs;
mod squashfs_legacy;
mod synth_demo;
mod ubi;
mod unpack_basics;
mod vendor_formats;
mod yaffs2;
