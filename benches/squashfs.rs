//! squashfs-xz rootfs: fwsim's in-memory unpack against `unsquashfs -d` writing to tmpfs, in one
//! run. The image is built at bench time with `mksquashfs -comp xz` over real binaries of this
//! machine (`/usr/bin`, `/usr/lib`), so the figure is about real executable code.
//!
//! Run: `cargo bench --bench squashfs` (`FWSIM_BENCH_MIB` sets the rootfs size, default 48;
//! `FWSIM_BENCH_RUNS` the runs per tool, default 5). Needs squashfs-tools; tmpfs at /dev/shm.
//! The whole binary against unsquashfs on any image, with hyperfine:
//! `hyperfine -w1 -r3 -p 'rm -rf /dev/shm/x' 'unsquashfs -q -no-progress -d /dev/shm/x IMG'
//! 'target/release/fwsim unpack --quiet IMG'`. On a shared, loaded machine a tool with more
//! threads (unsquashfs runs reader, inflater and writer threads) gets more of the CPU: compare
//! user times too.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fwsim::unpack::formats::{Ctx, Format, squashfs::Squashfs};
use fwsim::unpack::{Budget, Limits, unpack};

/// Copies regular files from `sources` into `dest` until `budget` bytes are taken.
fn collect(sources: &[&str], dest: &Path, budget: u64) -> (u64, usize) {
    let mut taken = 0u64;
    let mut files = 0usize;
    let mut stack: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if taken >= budget {
                return (taken, files);
            }
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let Ok(meta) = e.metadata() else { continue };
                if meta.len() == 0 || meta.len() > 16 << 20 {
                    continue;
                }
                let rel = path.strip_prefix("/").unwrap_or(&path);
                let target = dest.join(rel);
                if let Some(parent) = target.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                if std::fs::copy(&path, &target).is_ok() {
                    taken += meta.len();
                    files += 1;
                }
            }
        }
    }
    (taken, files)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs benches with no argument and wants speed.
    if !std::env::args().any(|a| a == "--bench") {
        println!("squashfs bench: run with `cargo bench --bench squashfs`");
        return;
    }
    let mib: u64 = std::env::var("FWSIM_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let runs: usize = std::env::var("FWSIM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let work = tempfile::tempdir().expect("temp dir");
    let root = work.path().join("rootfs");
    let (bytes, files) = collect(&["/usr/bin", "/usr/lib"], &root, mib << 20);
    let img = work.path().join("rootfs.sqfs");
    let status = Command::new("mksquashfs")
        .arg(&root)
        .arg(&img)
        .args(["-comp", "xz", "-noappend", "-quiet", "-no-progress"])
        .status()
        .expect("mksquashfs (squashfs-tools) must be installed");
    assert!(status.success(), "mksquashfs failed");
    let data = Bytes::from(std::fs::read(&img).expect("read image"));
    println!(
        "rootfs: {files} files, {:.1} MiB → squashfs-xz {:.1} MiB; {} threads",
        bytes as f64 / 1048576.0,
        data.len() as f64 / 1048576.0,
        rayon::current_num_threads()
    );

    // fwsim, the squashfs format alone: every file decompressed into memory.
    let mut ours = Vec::new();
    for _ in 0..runs {
        let budget = Budget::new(Limits::default());
        let t = Instant::now();
        let u = Squashfs.unpack(&data, &Ctx::new(&budget)).expect("unpack");
        ours.push(t.elapsed());
        let total: usize = u.children.iter().map(|c| c.data.len()).sum();
        assert_eq!(total as u64, bytes, "every byte unpacked");
    }
    // fwsim, the whole engine: the squashfs, then every file inside scanned for more formats.
    let mut full = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let tree = unpack(data.clone(), b"rootfs.sqfs", &Limits::default());
        full.push(t.elapsed());
        assert!(tree.nodes().len() > files);
    }
    // unsquashfs, writing to tmpfs.
    let shm = tempfile::tempdir_in("/dev/shm").expect("tmpfs at /dev/shm");
    let mut theirs = Vec::new();
    for i in 0..runs {
        let out = shm.path().join(format!("x{i}"));
        let t = Instant::now();
        let status = Command::new("unsquashfs")
            .args(["-q", "-no-progress", "-d"])
            .arg(&out)
            .arg(&img)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("unsquashfs");
        theirs.push(t.elapsed());
        assert!(status.success());
        let _ = std::fs::remove_dir_all(&out);
    }
    let (o, f, t) = (median(ours), median(full), median(theirs));
    println!("fwsim squashfs unpack (in memory), median of {runs}: {o:?}");
    println!("fwsim full unpack tree (in memory), median of {runs}: {f:?}");
    println!("unsquashfs -d /dev/shm, median of {runs}: {t:?}");
    println!(
        "ratio unsquashfs / fwsim: {:.2}x (squashfs format), {:.2}x (full engine)",
        t.as_secs_f64() / o.as_secs_f64(),
        t.as_secs_f64() / f.as_secs_f64()
    );
}
