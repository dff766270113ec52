//! One pass over a file for every extractor: a single case-insensitive Aho-Corasick automaton
//! (built once) finds every trigger — text cues such as `Copyright` or `/home/`, and binary magics
//! such as the FDT header — and text extractors then read the printable run around each hit.

use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::Params;

/// What a trigger pattern announces (each extractor asks for its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `Copyright`.
    Copyright,
    /// A company-form phrase: `Co., Ltd`, `Inc.`, `GmbH`, `Technology` …
    Company,
    /// `http://`, `https://`, `www.`.
    Url,
    /// `@` (e-mail addresses).
    Email,
    /// `/home/`.
    HomePath,
    /// `/opt/` or `/usr/local/`.
    ToolPath,
    /// `:\` (Windows paths).
    WindowsPath,
    /// `GCC` (compiler identification strings).
    Gcc,
    /// `-linux` (target triplets such as `arm-hisiv300-linux`).
    Triplet,
    /// Buildroot, OpenWrt, crosstool-NG, Linaro, Yocto/Poky.
    BuildSystem,
    /// `Linux version ` (kernel banner).
    LinuxBanner,
    /// `-----BEGIN ` (PEM).
    PemBegin,
    /// `ssh-rsa `, `ssh-ed25519 `, `ecdsa-sha2-` … (OpenSSH public keys).
    SshKey,
    /// `30 82` (a DER SEQUENCE with a two-byte length: certificates).
    Der,
    /// A crypt(3) hash prefix (`$1$`, `$6$` …) or a passwd/shadow line ending.
    Passwd,
    /// `d0 0d fe ed` (flattened device tree).
    Fdt,
    /// `IKCFG_ST` (embedded kernel configuration).
    Ikconfig,
    /// `U-Boot `.
    UBoot,
    /// A chip or chip-vendor name (`hi35…`, `gk72…`, `ingenic`, `libmi_` …).
    Soc,
}

/// Every trigger pattern (matched ASCII-case-insensitively) and what it announces.
const TRIGGERS: &[(&[u8], Trigger)] = &[
    (b"copyright", Trigger::Copyright),
    (b"co.,", Trigger::Company),
    (b"co. ltd", Trigger::Company),
    (b"co.ltd", Trigger::Company),
    (b" inc.", Trigger::Company),
    (b" inc,", Trigger::Company),
    (b"gmbh", Trigger::Company),
    (b"technolog", Trigger::Company),
    (b"corporation", Trigger::Company),
    (b"limited", Trigger::Company),
    (b"http://", Trigger::Url),
    (b"https://", Trigger::Url),
    (b"www.", Trigger::Url),
    (b"@", Trigger::Email),
    (b"/home/", Trigger::HomePath),
    (b"/opt/", Trigger::ToolPath),
    (b"/usr/local/", Trigger::ToolPath),
    (b":\\", Trigger::WindowsPath),
    (b"gcc", Trigger::Gcc),
    (b"-linux", Trigger::Triplet),
    (b"buildroot", Trigger::BuildSystem),
    (b"openwrt", Trigger::BuildSystem),
    (b"crosstool", Trigger::BuildSystem),
    (b"linaro", Trigger::BuildSystem),
    (b"poky", Trigger::BuildSystem),
    (b"linux version ", Trigger::LinuxBanner),
    (b"-----begin ", Trigger::PemBegin),
    (b"ssh-rsa ", Trigger::SshKey),
    (b"ssh-dss ", Trigger::SshKey),
    (b"ssh-ed25519 ", Trigger::SshKey),
    (b"ecdsa-sha2-nistp", Trigger::SshKey),
    (b"\x30\x82", Trigger::Der),
    (b"$1$", Trigger::Passwd),
    (b"$2a$", Trigger::Passwd),
    (b"$2b$", Trigger::Passwd),
    (b"$2y$", Trigger::Passwd),
    (b"$5$", Trigger::Passwd),
    (b"$6$", Trigger::Passwd),
    (b"$y$", Trigger::Passwd),
    (b"$apr1$", Trigger::Passwd),
    (b":/bin/", Trigger::Passwd),
    (b":/sbin/", Trigger::Passwd),
    (b":::", Trigger::Passwd),
    (b"\xd0\x0d\xfe\xed", Trigger::Fdt),
    (b"ikcfg_st", Trigger::Ikconfig),
    (b"u-boot ", Trigger::UBoot),
    (b"hi35", Trigger::Soc),
    (b"hi36", Trigger::Soc),
    (b"hi37", Trigger::Soc),
    (b"hi39", Trigger::Soc),
    (b"gk71", Trigger::Soc),
    (b"gk72", Trigger::Soc),
    (b"gk76", Trigger::Soc),
    (b"ak37", Trigger::Soc),
    (b"ak39", Trigger::Soc),
    (b"ssc3", Trigger::Soc),
    (b"ssd2", Trigger::Soc),
    (b"nt98", Trigger::Soc),
    (b"na51", Trigger::Soc),
    (b"fh88", Trigger::Soc),
    (b"rv11", Trigger::Soc),
    (b"rk3", Trigger::Soc),
    (b"gm81", Trigger::Soc),
    (b"rts39", Trigger::Soc),
    (b"libimp", Trigger::Soc),
    (b"libmi_", Trigger::Soc),
    (b"libak_", Trigger::Soc),
    (b"libgk_", Trigger::Soc),
    (b"isvp", Trigger::Soc),
    (b"hisilicon", Trigger::Soc),
    (b"goke", Trigger::Soc),
    (b"ingenic", Trigger::Soc),
    (b"anyka", Trigger::Soc),
    (b"sigmastar", Trigger::Soc),
    (b"novatek", Trigger::Soc),
    (b"ambarella", Trigger::Soc),
    (b"fullhan", Trigger::Soc),
    (b"rockchip", Trigger::Soc),
    (b"allwinner", Trigger::Soc),
];

/// Most hits kept per trigger in one file (a file of a million `@` is not a million e-mails).
const MAX_HITS_PER_TRIGGER: usize = 20_000;
/// Widest stretch of text read on either side of a hit.
const MAX_RUN_SIDE: usize = 4096;

static AUTOMATON: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(TRIGGERS.iter().map(|(p, _)| *p))
        .ok()
});

/// A printable text run (or a window of one, for very long runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run<'a> {
    /// Offset of the run's first byte in the file.
    pub offset: u64,
    /// The text.
    pub text: &'a str,
}

impl Run<'_> {
    /// File offset of byte `i` of the run.
    pub fn at(&self, i: usize) -> u64 {
        self.offset.saturating_add(i as u64)
    }
}

/// One file, scanned once for every trigger.
#[derive(Debug)]
pub struct Scan<'a> {
    /// Path of the file (as in the unpacked tree).
    pub path: &'a str,
    /// Its bytes.
    pub bytes: &'a [u8],
    min_len: usize,
    hits: Vec<(Trigger, usize)>,
}

/// Whether `b` belongs to a text run (printable ASCII or a tab).
pub fn is_text(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\t'
}

impl<'a> Scan<'a> {
    /// Scans `bytes` for every trigger.
    pub fn new(path: &'a str, bytes: &'a [u8], params: &Params) -> Self {
        Self::within(path, bytes, std::slice::from_ref(&(0..bytes.len())), params)
    }

    /// Scans only `ranges` of `bytes` for triggers (a container's unclaimed stretches); what a
    /// hit announces is still read from the whole of `bytes`.
    pub fn within(
        path: &'a str,
        bytes: &'a [u8],
        ranges: &[Range<usize>],
        params: &Params,
    ) -> Self {
        let mut hits = Vec::new();
        let mut counts = [0usize; 32];
        if let Some(ac) = AUTOMATON.as_ref() {
            for range in ranges {
                let Some(part) = bytes.get(range.clone()) else {
                    continue;
                };
                for m in ac.find_iter(part) {
                    let Some(&(_, t)) = TRIGGERS.get(m.pattern().as_usize()) else {
                        continue;
                    };
                    if let Some(c) = counts.get_mut(t as usize) {
                        if *c >= MAX_HITS_PER_TRIGGER {
                            continue;
                        }
                        *c += 1;
                    }
                    hits.push((t, range.start + m.start()));
                }
            }
        }
        Self {
            path,
            bytes,
            min_len: params.min_string_len.max(1),
            hits,
        }
    }

    /// The last component of the path.
    pub fn file_name(&self) -> &'a str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }

    /// Offsets of the hits of `trigger`, in file order.
    pub fn hits(&self, trigger: Trigger) -> impl Iterator<Item = usize> + '_ {
        self.hits
            .iter()
            .filter(move |(t, _)| *t == trigger)
            .map(|&(_, off)| off)
    }

    /// The distinct text runs holding a hit of any of `triggers`, in file order.
    pub fn runs(&self, triggers: &[Trigger]) -> Vec<Run<'a>> {
        let mut out: Vec<Run<'a>> = Vec::new();
        for &(t, off) in &self.hits {
            if !triggers.contains(&t) {
                continue;
            }
            if out
                .last()
                .is_some_and(|r| off >= r.offset as usize && off < r.offset as usize + r.text.len())
            {
                continue;
            }
            if let Some(run) = self.run_at(off)
                && !out.iter().rev().take(8).any(|r| r.offset == run.offset)
            {
                out.push(run);
            }
        }
        out.sort_by_key(|r| r.offset);
        out.dedup_by_key(|r| r.offset);
        out
    }

    /// The text run around offset `off`, if it is at least the minimum string length.
    pub fn run_at(&self, off: usize) -> Option<Run<'a>> {
        let bytes = self.bytes;
        if !bytes.get(off).copied().is_some_and(is_text) {
            return None;
        }
        let floor = off.saturating_sub(MAX_RUN_SIDE);
        let mut start = off;
        while start > floor && bytes.get(start - 1).copied().is_some_and(is_text) {
            start -= 1;
        }
        let ceil = off.saturating_add(MAX_RUN_SIDE).min(bytes.len());
        let mut end = off;
        while end < ceil && bytes.get(end).copied().is_some_and(is_text) {
            end += 1;
        }
        if end - start < self.min_len {
            return None;
        }
        let text = std::str::from_utf8(bytes.get(start..end)?).ok()?;
        Some(Run {
            offset: start as u64,
            text,
        })
    }
}

/// Finds `needle` in `hay` ignoring ASCII case; the byte index of the first match.
pub fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if n.is_empty() || n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| {
        h.get(i..i + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
    })
}

/// Every index where `needle` occurs in `hay`, ignoring ASCII case.
pub fn find_all_ci<'h>(hay: &'h str, needle: &'h str) -> impl Iterator<Item = usize> + 'h {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    let last = if n.is_empty() || n.len() > h.len() {
        0
    } else {
        h.len() - n.len() + 1
    };
    (0..last).filter(move |&i| {
        h.get(i..i + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_is_found_with_its_run() {
        let data = b"\x01\x02Copyright 2019 Foo\x00\xd0\x0d\xfe\xed\x00/home/bob/src/a.c\x00";
        let scan = Scan::new("dir/file.bin", data, &Params::default());
        assert_eq!(scan.file_name(), "file.bin");
        assert_eq!(scan.hits(Trigger::Copyright).collect::<Vec<_>>(), [2]);
        assert_eq!(scan.hits(Trigger::Fdt).collect::<Vec<_>>(), [21]);
        let runs = scan.runs(&[Trigger::HomePath]);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].text, "/home/bob/src/a.c");
        assert_eq!(runs[0].offset, 26);
    }

    #[test]
    fn ranges_limit_the_hits_not_the_reads() {
        let data = b"\0Copyright Foo\0\0/home/bob/src/a.c\0";
        let home = 16..22;
        let scan = Scan::within("f", data, std::slice::from_ref(&home), &Params::default());
        assert_eq!(scan.hits(Trigger::Copyright).count(), 0);
        let runs = scan.runs(&[Trigger::HomePath]);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].text, "/home/bob/src/a.c");
    }

    #[test]
    fn short_runs_are_ignored() {
        let scan = Scan::new("f", b"\0@x\0", &Params::default());
        assert!(scan.runs(&[Trigger::Email]).is_empty());
    }

    #[test]
    fn case_insensitive_find() {
        assert_eq!(find_ci("abc COPYRIGHT", "copyright"), Some(4));
        assert_eq!(find_all_ci("aXaxa", "xa").collect::<Vec<_>>(), [1, 3]);
        assert_eq!(find_ci("", "x"), None);
    }
}
