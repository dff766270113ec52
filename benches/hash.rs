//! Criterion benchmarks of the hash module: ssdeep, TLSH, SHA-256 and the fused pass on random
//! data, the fused pass across files with rayon, and comparison of pre-parsed digests of every
//! ELF in the real samples all-against-all (pairs counted as n² ordered pairs, self-pairs
//! included; `ssdeep_indexed` answers the same n² through [`fwsim::hash::SsdeepIndex`]).
//!
//! Run on one core: `taskset -c 0 cargo bench --bench hash`. Peers, side by side in the same run
//! (200 MiB random file on tmpfs; see the README's table for measured figures):
//! ```text
//! head -c 200M /dev/urandom > /dev/shm/r200 && cargo build --release
//! hyperfine -w 1 -r 5 'taskset -c 0 target/release/fwsim hash --ssdeep /dev/shm/r200' \
//!                     'taskset -c 0 ssdeep /dev/shm/r200'
//! taskset -c 0 python3 -m timeit -n 3 -s "import tlsh; d=open('/dev/shm/r200','rb').read()" \
//!     "tlsh.hash(d)"      # against bench tlsh/hash below (MB/s on the same machine)
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fwsim::hash::{self, ssdeep, tlsh};
use sha2::{Digest, Sha256};

/// Deterministic pseudo-random bytes (splitmix64).
fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        v.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    v.truncate(n);
    v
}

fn single_buffer(c: &mut Criterion) {
    let data = random(32 << 20, 1);
    let mut g = c.benchmark_group("one_core_32MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("ssdeep", |b| b.iter(|| ssdeep::hash(black_box(&data))));
    g.bench_function("tlsh", |b| b.iter(|| tlsh::hash(black_box(&data))));
    g.bench_function("sha256", |b| b.iter(|| Sha256::digest(black_box(&data))));
    g.bench_function("fused", |b| b.iter(|| hash::digests(black_box(&data))));
    g.finish();
}

fn across_files(c: &mut Criterion) {
    let files: Vec<Vec<u8>> = (0..64).map(|i| random(1 << 20, 100 + i)).collect();
    let mut g = c.benchmark_group("fused_64x1MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(64 << 20));
    g.bench_function("sequential", |b| {
        b.iter(|| files.iter().map(|f| hash::digests(f)).collect::<Vec<_>>())
    });
    g.bench_function("rayon", |b| b.iter(|| hash::digests_par(black_box(&files))));
    g.finish();
}

/// Every ELF file under the real samples (empty when they are missing).
fn real_elves() -> Vec<Vec<u8>> {
    let dir = std::env::var_os("FWSIM_REALDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdata"));
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(data) = std::fs::read(&p)
                && data.starts_with(b"\x7fELF")
            {
                out.push(data);
            }
        }
    }
    out
}

fn comparison(c: &mut Criterion) {
    let elves = real_elves();
    if elves.is_empty() {
        eprintln!("skipped comparison benchmarks: no real samples");
        return;
    }
    let digests = hash::digests_par(&elves);
    let ss: Vec<ssdeep::SsdeepPrepared> = digests
        .iter()
        .filter_map(|d| d.ssdeep.as_ref().ok().map(ssdeep::Ssdeep::prepare))
        .collect();
    let tl: Vec<tlsh::Tlsh> = digests.iter().filter_map(|d| d.tlsh).collect();
    let mut g = c.benchmark_group("compare_all_pairs_real_elves");
    g.throughput(Throughput::Elements((ss.len() * ss.len()) as u64));
    g.bench_function("ssdeep", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for x in &ss {
                for y in &ss {
                    acc = acc.wrapping_add(x.compare(y).unwrap_or(0));
                }
            }
            acc
        })
    });
    // The index answers the same n² ordered pairs (one `compare_all` row per probe, no use of
    // symmetry): once with the index built beforehand, once with its build inside the timing.
    let index = hash::SsdeepIndex::new(ss.clone());
    let rows = |index: &hash::SsdeepIndex| {
        let mut acc = 0u32;
        for x in &ss {
            for s in index.compare_all(x) {
                acc = acc.wrapping_add(s.unwrap_or(0));
            }
        }
        acc
    };
    g.bench_function("ssdeep_indexed", |b| b.iter(|| rows(black_box(&index))));
    g.bench_function("ssdeep_indexed_with_build", |b| {
        b.iter(|| rows(&hash::SsdeepIndex::new(black_box(&ss).clone())))
    });
    g.throughput(Throughput::Elements((tl.len() * tl.len()) as u64));
    g.bench_function("tlsh", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for x in &tl {
                for y in &tl {
                    acc = acc.wrapping_add(x.diff(y));
                }
            }
            acc
        })
    });
    g.finish();
}

criterion_group!(benches, single_buffer, across_files, comparison);
criterion_main!(benches);
