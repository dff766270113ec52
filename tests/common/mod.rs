//! Shared helpers for the integration tests: where the real samples are, how to run the binary,
//! and the fixture builders that assemble firmware images in code.
#![allow(dead_code)]

pub mod archives;
pub mod fs_images;
pub mod measure;
pub mod mutate;
pub mod sevenz;
pub mod streams;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod rawtar;

/// The folder of real firmware samples: `$FWSIM_REALDATA`, else `../shared/realdata` beside the
/// checkout. `None` (with the reason printed) when it is missing — except under `CI=true`, where a
/// missing folder fails the test.
pub fn realdata() -> Option<PathBuf> {
    let dir = std::env::var_os("FWSIM_REALDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdata"));
    if dir.join("SOURCES.tsv").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "real samples missing at {} (CI=true requires them)",
            dir.display()
        );
    }
    eprintln!("skipped: real samples not found at {}", dir.display());
    None
}

/// The folder of ssdeep/TLSH golden vectors: `$FWSIM_GOLDEN`, else `../shared/golden` beside the
/// checkout. `None` (with the reason printed) when it is missing — except under `CI=true`.
pub fn golden() -> Option<PathBuf> {
    let dir = std::env::var_os("FWSIM_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/golden"));
    if dir.join("golden.tsv").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "golden vectors missing at {} (CI=true requires them)",
            dir.display()
        );
    }
    eprintln!("skipped: golden vectors not found at {}", dir.display());
    None
}

/// Reads a tab-separated file with a header line into rows of fields (header dropped).
pub fn read_tsv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// A real sample by its path inside the realdata folder (`None` when the folder is missing).
pub fn sample(rel: &str) -> Option<PathBuf> {
    let p = realdata()?.join(rel);
    assert!(
        p.is_file(),
        "sample listed in SOURCES.tsv is missing: {}",
        p.display()
    );
    Some(p)
}

/// Whether an external reference tool is on PATH; under `CI=true` a missing tool is a failure.
pub fn tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("reference tool `{name}` missing (CI=true requires it; .ci/run installs it)");
        }
        eprintln!("skipped: reference tool `{name}` not on PATH");
    }
    found
}

/// Whether `python3` can import `module`; under `CI=true` a missing module is a failure.
pub fn python_module(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python module `{module}` missing (CI=true requires it; .ci/run installs it)");
        }
        eprintln!("skipped: python module `{module}` not importable by python3");
    }
    ok
}

/// Runs the `fwsim` binary with `args`.
pub fn fwsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fwsim"))
        .args(args)
        .output()
        .expect("run fwsim")
}

/// Runs `fwsim unpack --json` on `path` and parses every line.
pub fn unpack_json(path: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["unpack", "--json", "--quiet"];
    args.extend_from_slice(extra);
    let p = path.to_str().expect("utf-8 path");
    args.push(p);
    let out = fwsim(&args);
    assert!(
        out.status.success(),
        "fwsim unpack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 json")
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}
