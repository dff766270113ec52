//! Differential test against the reference tools: the `ssdeep` CLI (libfuzzy 2.14.1) for ssdeep
//! digests and scores (`ssdeep -a -x` on signature files), py-tlsh for TLSH digests and distances.
//! Thousands of generated inputs (random, edited, low-entropy, text; 0 B–8 MiB) plus every real
//! sample; every digest and every score must be identical.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fwsim::hash::{Digests, digests_par};

use crate::common;

/// Reference side in python: TLSH digests of files and TLSH distances of pairs.
const REFERENCE_PY: &str = r#"
import sys, tlsh
mode = sys.argv[1]
out = []
if mode == "tlsh":
    for line in sys.stdin:
        with open(line.rstrip("\n"), "rb") as f:
            out.append(tlsh.hash(f.read()))
else:
    for line in sys.stdin:
        ta, tb = line.rstrip("\n").split("\t")
        if ta == "TNULL" or tb == "TNULL":
            out.append("NA\tNA")
        else:
            out.append("%d\t%d" % (tlsh.diff(ta, tb), tlsh.diffxlen(ta, tb)))
sys.stdout.write("\n".join(out) + ("\n" if out else ""))
"#;

fn tools_present() -> bool {
    // Evaluate both so that a missing tool is reported (or fails under CI) even if the other is.
    let ssdeep = common::tool("ssdeep");
    let tlsh = common::python_module("tlsh");
    ssdeep && tlsh
}

fn python(mode: &str, input: &str) -> Vec<String> {
    let mut child = Command::new("python3")
        .args(["-c", REFERENCE_PY, mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "reference python failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `ssdeep -s -l` on `names` (relative to `dir`): digest per name.
fn ssdeep_cli(dir: &Path, names: &[String]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for batch in names.chunks(500) {
        let out = Command::new("ssdeep")
            .arg("-s")
            .arg("-l")
            .args(batch)
            .current_dir(dir)
            .output()
            .expect("run ssdeep");
        assert!(out.status.success(), "ssdeep failed");
        for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
            let (digest, quoted) = line.split_once(",\"").expect("ssdeep line");
            let name = quoted.strip_suffix('"').expect("quoted name");
            map.insert(name.to_string(), digest.to_string());
        }
    }
    map
}

/// Reference digests (ssdeep, TLSH) of files under `dir` and ours; returns the mismatches.
fn check_files(dir: &Path, names: &[String]) -> (Vec<Digests>, Vec<String>) {
    let ref_ss = ssdeep_cli(dir, names);
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let list: String = paths
        .iter()
        .map(|p| format!("{}\n", p.to_str().unwrap()))
        .collect();
    let ref_tl = python("tlsh", &list);
    assert_eq!(ref_tl.len(), names.len());
    let data: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let ours = digests_par(&data);
    let mut bad = Vec::new();
    for ((name, d), want_tl) in names.iter().zip(&ours).zip(&ref_tl) {
        let got_ss = d.ssdeep.as_ref().unwrap().to_string();
        match ref_ss.get(name) {
            Some(want) if *want == got_ss => {}
            want => bad.push(format!("{name}: ssdeep {got_ss}, reference {want:?}")),
        }
        let got_tl = d
            .tlsh
            .map_or_else(|| "TNULL".to_string(), |t| t.to_string());
        if got_tl != *want_tl {
            bad.push(format!("{name}: tlsh {got_tl}, reference {want_tl}"));
        }
    }
    (ours, bad)
}

/// splitmix64: a small deterministic generator for the inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    /// Log-uniform size in `lo..hi`.
    fn log_size(&mut self, lo: usize, hi: usize) -> usize {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let x = l + (h - l) * (self.below(1 << 30) as f64 / (1u64 << 30) as f64);
        (x.exp() as usize).clamp(lo, hi)
    }
}

/// Low-entropy data: runs over a small alphabet, a repeated pattern with noise, or sparse bytes.
fn low_entropy(r: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    match r.below(3) {
        0 => {
            let k = 2 + r.below(7) as u8;
            while v.len() < n {
                let c = b'A' + r.below(u64::from(k)) as u8;
                let run = 1 + r.below(40) as usize;
                v.extend(std::iter::repeat_n(c, run));
            }
        }
        1 => {
            let len = 1 + r.below(64) as usize;
            let pat = r.bytes(len);
            while v.len() < n {
                v.extend_from_slice(&pat);
                if r.below(8) == 0 {
                    v.push(r.next() as u8);
                }
            }
        }
        _ => {
            v.resize(n, 0);
            let hits = n / (16 + r.below(200) as usize) + 1;
            for _ in 0..hits {
                let i = r.below(n as u64) as usize;
                if let Some(b) = v.get_mut(i) {
                    *b = r.next() as u8;
                }
            }
        }
    }
    v.truncate(n);
    v
}

/// Text: numbered lines of words from a small vocabulary.
fn text(r: &mut Rng, n: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "camera", "firmware", "stream", "config", "network", "device", "sensor", "video", "user",
        "admin", "password", "update", "module", "kernel", "socket", "error", "init", "daemon",
        "onvif", "rtsp", "http", "telnet", "flash", "image", "boot", "loader", "vendor", "model",
    ];
    let mut v = Vec::with_capacity(n + 64);
    let mut line = 0u64;
    while v.len() < n {
        line += 1;
        v.extend_from_slice(format!("{line:05} ").as_bytes());
        for _ in 0..(3 + r.below(9)) {
            v.extend_from_slice(WORDS[r.below(WORDS.len() as u64) as usize].as_bytes());
            v.push(b' ');
        }
        v.push(b'\n');
    }
    v.truncate(n);
    v
}

/// An edited copy of `base`: byte flips, an insertion, a deletion, a cut, an extension (the last
/// two move the block size by 2x), or a prefix.
fn edit(r: &mut Rng, base: &[u8], kind: u64) -> Vec<u8> {
    let n = base.len();
    let mut v = base.to_vec();
    match kind % 7 {
        0 => {
            for _ in 0..(1 + r.below(1 + n as u64 / 2000)) {
                if n > 0 {
                    let i = r.below(n as u64) as usize;
                    v[i] ^= 0xFF;
                }
            }
        }
        1 => {
            let at = r.below(n as u64 + 1) as usize;
            let len = 1 + r.below(1 + n as u64 / 20) as usize;
            let ins = r.bytes(len);
            v.splice(at..at, ins);
        }
        2 => {
            let at = r.below(n as u64 + 1) as usize;
            let len = (r.below(1 + n as u64 / 15) as usize).min(n - at);
            v.drain(at..at + len);
        }
        3 => v.truncate(n * (40 + r.below(25) as usize) / 100),
        4 => {
            let extra = n * (70 + r.below(60) as usize) / 100;
            let tail = r.bytes(extra);
            v.extend_from_slice(&tail);
        }
        5 => {
            let len = 1 + r.below(1 + n as u64 / 10) as usize;
            let mut p = r.bytes(len);
            p.extend_from_slice(&v);
            v = p;
        }
        _ => {
            let at = r.below(n as u64 + 1) as usize;
            let len = (r.below(1 + n as u64 / 8) as usize).min(n - at);
            let new = r.bytes(len);
            v[at..at + len].copy_from_slice(&new);
        }
    }
    v
}

/// A family: a base input and edited variants of it (pairs are scored within a family).
fn base(r: &mut Rng, n: usize) -> Vec<u8> {
    match r.below(4) {
        0 | 1 => r.bytes(n),
        2 => low_entropy(r, n),
        _ => text(r, n),
    }
}

#[test]
fn slow_generated_inputs_and_pairs_match_reference_tools() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng(0x5EED_F00D);
    let mut names: Vec<String> = Vec::new();
    let mut families: Vec<Vec<usize>> = Vec::new();
    let mut total = 0usize;
    // (families, variants per family, size range)
    let plan: &[(usize, usize, usize, usize)] = &[
        (300, 3, 0, 2048),
        (250, 3, 2048, 256 << 10),
        (12, 2, 256 << 10, 8 << 20),
    ];
    for &(count, variants, lo, hi) in plan {
        for _ in 0..count {
            let n = if lo == 0 {
                r.below(hi as u64) as usize
            } else {
                r.log_size(lo, hi)
            };
            let b = base(&mut r, n);
            let mut members = vec![b.clone()];
            for _ in 0..variants {
                let kind = r.below(7);
                let mut e = edit(&mut r, &b, kind);
                e.truncate(8 << 20);
                members.push(e);
            }
            let mut fam = Vec::new();
            for m in members {
                let name = format!("in{:05}", names.len());
                std::fs::write(dir.path().join(&name), &m).unwrap();
                total += m.len();
                fam.push(names.len());
                names.push(name);
            }
            families.push(fam);
        }
    }
    // The extremes of the size range.
    for (n, fill) in [(8usize << 20, 0u8), (8 << 20, 1), (0, 0)] {
        let data = if fill == 0 { vec![0u8; n] } else { r.bytes(n) };
        let name = format!("in{:05}", names.len());
        std::fs::write(dir.path().join(&name), &data).unwrap();
        total += data.len();
        names.push(name);
    }
    assert!(total < 300 << 20, "generated {total} bytes");
    assert!(names.len() >= 2000, "{} inputs", names.len());

    let (ours, bad) = check_files(dir.path(), &names);
    assert!(
        bad.is_empty(),
        "{} of {} generated inputs differ ({total} bytes):\n{}",
        bad.len(),
        names.len(),
        bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );

    // Every ordered pair inside a family plus the next family's base, scored by `ssdeep -a -x`
    // on one signature file per family.
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut ref_scores: Vec<u32> = Vec::new();
    let sigs = tempfile::tempdir().unwrap();
    for (f, fam) in families.iter().enumerate() {
        let mut members = fam.clone();
        if let Some(next) = families.get(f + 1) {
            members.push(next[0]);
        }
        let mut text = String::from("ssdeep,1.1--blocksize:hash:hash,filename\n");
        for &m in &members {
            text += &format!("{},\"{}\"\n", ours[m].ssdeep.as_ref().unwrap(), names[m]);
        }
        std::fs::write(sigs.path().join("f.txt"), text).unwrap();
        let out = Command::new("ssdeep")
            .args(["-a", "-x", "f.txt"])
            .current_dir(sigs.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        let index: HashMap<&str, usize> = members.iter().map(|&m| (names[m].as_str(), m)).collect();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // f.txt:in00001 matches f.txt:in00002 (83)
            let Some((a, rest)) = line.split_once(" matches ") else {
                continue;
            };
            let (b, score) = rest.rsplit_once(" (").unwrap();
            let score: u32 = score.trim_end_matches(')').parse().unwrap();
            let strip = |x: &str| x.rsplit_once(':').unwrap().1.to_string();
            pairs.push((index[strip(a).as_str()], index[strip(b).as_str()]));
            ref_scores.push(score);
        }
    }
    let tl = |d: &Digests| {
        d.tlsh
            .map_or_else(|| "TNULL".to_string(), |t| t.to_string())
    };
    let input: String = pairs
        .iter()
        .map(|&(a, b)| format!("{}\t{}\n", tl(&ours[a]), tl(&ours[b])))
        .collect();
    let ref_tlsh = python("compare", &input);
    assert_eq!(ref_tlsh.len(), pairs.len());
    let reference: Vec<String> = ref_scores
        .iter()
        .zip(&ref_tlsh)
        .map(|(s, t)| format!("{s}\t{t}"))
        .collect();
    let prepared: Vec<_> = ours.iter().map(Digests::prepare).collect();
    let (mut mid, mut equal_bs, mut double_bs, mut small_bs) = (0, 0, 0, 0);
    let mut bad = Vec::new();
    for (&(a, b), want) in pairs.iter().zip(&reference) {
        let s = prepared[a].compare(&prepared[b]);
        let na = |v: Option<u32>| v.map_or_else(|| "NA".to_string(), |v| v.to_string());
        let got = format!(
            "{}\t{}\t{}",
            s.ssdeep.unwrap_or(0),
            na(s.tlsh_diff),
            na(s.tlsh_diff_no_len)
        );
        if got != *want {
            bad.push(format!(
                "{} vs {} ({} / {}): got {got}, reference {want}",
                names[a],
                names[b],
                ours[a].ssdeep.as_ref().unwrap(),
                ours[b].ssdeep.as_ref().unwrap()
            ));
        }
        let score: u32 = want.split('\t').next().unwrap().parse().unwrap();
        if (1..=99).contains(&score) {
            mid += 1;
            let (ba, bb) = (
                ours[a].ssdeep.as_ref().unwrap().block_size(),
                ours[b].ssdeep.as_ref().unwrap().block_size(),
            );
            if ba == bb {
                equal_bs += 1;
            } else {
                double_bs += 1;
            }
            if ba.min(bb) < 45 {
                small_bs += 1;
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} pairs differ:\n{}",
        bad.len(),
        pairs.len(),
        bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "{} inputs ({total} bytes), {} pairs: {mid} scored 1..99 ({equal_bs} equal block \
         sizes, {double_bs} 2x apart, {small_bs} under the small-block cap)",
        names.len(),
        pairs.len()
    );
    assert!(mid >= 1000, "only {mid} pairs scored 1..99");
    assert!(equal_bs >= 200 && double_bs >= 100 && small_bs >= 100);
}

/// Every regular file under `dir`, relative, sorted.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(rel))
        .unwrap()
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            walk(dir, &r, out);
        } else if ft.is_file() {
            out.push(r.to_str().expect("utf-8 sample name").to_string());
        }
    }
}

#[test]
fn slow_real_samples_match_reference_tools() {
    let Some(dir) = common::realdata() else {
        return;
    };
    if !tools_present() {
        return;
    }
    let mut names = Vec::new();
    walk(&dir, Path::new(""), &mut names);
    assert!(names.len() > 100, "{} real samples", names.len());
    let (_, bad) = check_files(&dir, &names);
    assert!(
        bad.is_empty(),
        "{} of {} real samples differ:\n{}",
        bad.len(),
        names.len(),
        bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn cli_ssdeep_output_is_the_ssdeep_tools_output() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng(7);
    let mut names = Vec::new();
    for (i, n) in [0usize, 1, 49, 4096, 70_000, 300_000]
        .into_iter()
        .enumerate()
    {
        let name = format!("f{i}.bin");
        std::fs::write(dir.path().join(&name), r.bytes(n)).unwrap();
        names.push(name);
    }
    let ours = Command::new(env!("CARGO_BIN_EXE_fwsim"))
        .args(["hash", "--ssdeep"])
        .args(&names)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(ours.status.success());
    let theirs = Command::new("ssdeep")
        .arg("-l")
        .args(&names)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout)
    );
    // And the ssdeep tool reads our output as a known-hashes file: every file matches itself.
    std::fs::write(dir.path().join("known.txt"), &ours.stdout).unwrap();
    let m = Command::new("ssdeep")
        .args(["-l", "-m", "known.txt"])
        .args(&names)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(m.status.success());
    let matched = String::from_utf8_lossy(&m.stdout);
    assert!(
        matched.contains("f5.bin matches known.txt:f5.bin (100)"),
        "{matched}"
    );
}
