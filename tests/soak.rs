//! The mutation soak: every real sample (up to 4 MiB) and fixtures built in code, truncated,
//! bit-flipped, zeroed in ranges, set to extremes and spliced — thousands of seeded variants —
//! never panic, never run past the time budget, hold memory within the budget, and always give
//! a fingerprint that is valid JSON and reads back; every 40th also goes through the binary,
//! whose JSON listing must parse and whose peak memory is asserted. Ignored by default: `.ci/run`
//! runs it in short mode (`FWSIM_SOAK_SECS=180`).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::features::{self, FeatureParams};
use fwsim::fingerprint::Fingerprint;
use fwsim::unpack::{Limits, unpack};

use crate::common::archives::{self, CpioKind};
use backhand::compression::Compressor;

use crate::common::fs_images;
use crate::common::mutate::{self, Kind, XorShift};
use crate::common::{self, measure, streams};

/// Memory budget of every variant, and the RSS bounds asserted around it.
const MEMORY: u64 = 256 << 20;
/// Time budget of every variant; a variant running past it plus slack is a hang.
const BUDGET: Duration = Duration::from_secs(10);
const HANG: Duration = Duration::from_secs(60);

fn limits() -> Limits {
    Limits {
        max_memory_bytes: MEMORY,
        time_budget: BUDGET,
        ..Limits::default()
    }
}

/// Fixtures built in code: camera images from `synth`, archives, filesystems and streams.
fn fixtures() -> Vec<(String, Vec<u8>)> {
    let fw = fwsim::synth::Firmware::camera(&fwsim::synth::Options::tiny()).unwrap();
    let text = streams::text(20_000, 7);
    let items = fs_images::rootfs(None);
    vec![
        ("camera.bin".into(), fw.dahua_bin().unwrap()),
        ("camera.tar.gz".into(), fw.tar_gz().unwrap()),
        ("camera.dav".into(), fw.hikvision_dav().unwrap()),
        ("flash.img".into(), fw.flash_dump().unwrap().0),
        (
            "rootfs.sqfs".into(),
            fs_images::squashfs(&items, Compressor::Xz, false),
        ),
        (
            "rootfs.cramfs".into(),
            fwsim::unpack::formats::cramfs::build(
                &fs_images::cramfs_entries(&items),
                fwsim::unpack::bytes::Endian::Big,
            ),
        ),
        (
            "a.zip".into(),
            archives::zip_with_crate(&archives::sample_items(), true, "comment"),
        ),
        (
            "a.cpio".into(),
            archives::cpio(
                CpioKind::Newc,
                &archives::cpio_entries(&archives::sample_items()),
            ),
        ),
        ("t.gz".into(), streams::gzip(&text)),
        ("t.xz".into(), streams::xz(&text)),
        ("t.bz2".into(), streams::bzip2(&text)),
        ("t.zst".into(), streams::zstd(&text)),
        ("t.lz4".into(), streams::lz4(&text)),
        ("t.lzo".into(), streams::lzop("t", &text, 16 << 10, 0)),
        ("t.lzma".into(), streams::lzma(&text, true)),
    ]
}

/// Every real sample of at most 4 MiB, by its path inside the realdata folder.
fn samples() -> Option<Vec<(String, Vec<u8>)>> {
    let dir = common::realdata()?;
    let mut out = Vec::new();
    for row in common::read_tsv(&dir.join("SOURCES.tsv")) {
        let rel = &row[0];
        let path = dir.join(rel);
        let len = std::fs::metadata(&path).unwrap().len();
        if len <= 4 << 20 {
            out.push((rel.clone(), std::fs::read(&path).unwrap()));
        }
    }
    Some(out)
}

/// Unpacks and fingerprints one variant; panics (with the variant named) on any failure.
fn check(label: &str, data: Vec<u8>, params: &FeatureParams) {
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let tree = unpack(Bytes::from(data), b"mutant", &limits());
        let fp = features::fingerprint(&tree, params);
        let mut json = Vec::new();
        fp.write_to(&mut json).unwrap();
        let text = std::str::from_utf8(&json).unwrap();
        serde_json::from_str::<serde_json::Value>(text).unwrap();
        Fingerprint::from_json(text, &params.recorded()).unwrap();
    }));
    if let Err(e) = outcome {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("{label}: panicked: {msg}");
    }
    let took = started.elapsed();
    assert!(took < BUDGET * 3, "{label}: took {took:?}");
}

#[test]
#[ignore = "slow: the mutation soak, run by .ci/run (FWSIM_SOAK_SECS caps its time)"]
fn slow_mutation_soak() {
    let secs: u64 = std::env::var("FWSIM_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(240);
    let mut inputs = fixtures();
    if let Some(real) = samples() {
        inputs.extend(real);
    }
    let params = FeatureParams::default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let scratch = tempfile::tempdir().unwrap();
    let use_cli = measure::available();

    // A watchdog: a variant running past HANG is reported, then the process is aborted.
    let (beat, watch) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut current = String::from("(start)");
        loop {
            match watch.recv_timeout(HANG) {
                Ok(label) => current = label,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!("soak: hang past {HANG:?} on {current}");
                    std::process::abort();
                }
            }
        }
    });

    let mut rng = XorShift(0x50AC_5EED_0000_0001);
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut cli_runs = 0;
    let mut worst_cli_rss = 0;
    let mut variants = 0usize;
    let started = Instant::now();
    // Round after round over every input, one variant each, until the time is up.
    'rounds: loop {
        for i in 0..inputs.len() {
            if Instant::now() > deadline {
                break 'rounds;
            }
            let (name, data) = &inputs[i];
            let other = &inputs[rng.below(inputs.len())].1;
            let (kind, m) = mutate::mutate(data, other, &mut rng);
            let label = format!("{name} variant {variants} ({kind:?}, {} bytes)", m.len());
            beat.send(label.clone()).unwrap();
            *counts.entry(kind).or_default() += 1;
            if use_cli && variants.is_multiple_of(40) {
                let path = scratch.path().join("mutant.bin");
                std::fs::write(&path, &m).unwrap();
                let r = measure::fwsim(
                    scratch.path(),
                    &[
                        OsStr::new("unpack"),
                        OsStr::new("--json"),
                        OsStr::new("--quiet"),
                        OsStr::new("--max-memory"),
                        OsStr::new("256M"),
                        OsStr::new("--time-budget"),
                        OsStr::new("10"),
                        path.as_os_str(),
                    ],
                );
                assert!(r.success, "{label}: {}", String::from_utf8_lossy(&r.stderr));
                assert!(!r.json_lines().is_empty(), "{label}");
                assert!(r.peak_rss_mib <= 600, "{label}: {} MiB", r.peak_rss_mib);
                assert!(r.wall < BUDGET * 3, "{label}: {:?}", r.wall);
                worst_cli_rss = worst_cli_rss.max(r.peak_rss_mib);
                cli_runs += 1;
            }
            check(&label, m, &params);
            variants += 1;
        }
    }
    drop(beat);
    let peak = measure::own_peak_rss_mib();
    eprintln!(
        "soak: {variants} variants of {} inputs in {:.0} s ({counts:?}); {cli_runs} through the \
         binary (worst peak RSS {worst_cli_rss} MiB); this process's peak RSS {peak} MiB",
        inputs.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(variants >= 1000 || secs < 60, "only {variants} variants");
    // The budget holds 256 MiB per unpack; the rest is the inputs, trees and fingerprints.
    assert!(peak <= 1536, "peak RSS {peak} MiB");
}
