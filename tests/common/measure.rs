//! Runs the `fwsim` binary as a child under GNU time (`/usr/bin/time -f %M`, installed by
//! `.ci/run`) and reports what it printed, its wall time and its peak resident memory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One measured run.
pub struct Measured {
    /// Exit status was success.
    pub success: bool,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Wall-clock time of the child.
    pub wall: Duration,
    /// Peak resident set size of the child, in MiB (`ru_maxrss`).
    pub peak_rss_mib: u64,
}

impl Measured {
    /// The JSON Lines of `unpack --json`, each parsed (a line that is not valid JSON fails).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.stdout.clone())
            .expect("utf-8 output")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON {e}: {l}")))
            .collect()
    }
}

/// Whether GNU time is available (`None`-style skip with a printed reason; a failure under
/// `CI=true`).
pub fn available() -> bool {
    super::tool("time")
}

/// Runs `fwsim args…` under GNU time; `scratch` holds time's report.
pub fn fwsim(scratch: &Path, args: &[&std::ffi::OsStr]) -> Measured {
    let report = scratch.join(format!("time-{}.txt", std::process::id()));
    let start = Instant::now();
    let out = Command::new("time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_fwsim"))
        .args(args)
        .output()
        .expect("run fwsim under time");
    let wall = start.elapsed();
    let text = std::fs::read_to_string(&report).expect("time's report");
    // A failing child adds a "Command exited with non-zero status" line before the figure.
    let kib: u64 = text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {text:?}"));
    Measured {
        success: out.status.success(),
        stdout: out.stdout,
        stderr: out.stderr,
        wall,
        peak_rss_mib: kib / 1024,
    }
}

/// The peak resident set size of this process so far, in MiB (`VmHWM`).
pub fn own_peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .expect("VmHWM")
}
