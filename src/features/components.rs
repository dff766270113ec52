//! Known open-source components and their versions, recognised from their own identifying strings
//! (and, for a few libraries, their file names): a table of (component, keyword, regex) rules in
//! the manner of cve-bin-tool's checkers; the patterns here are written for fwsim.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

use super::strings::{Encoding, Run};

/// One rule: when a string contains `keyword` (and the file contains `requires`, if given), the
/// regex is tried on it; its first capture group, if any, is the version.
struct Rule {
    component: &'static str,
    keyword: &'static str,
    pattern: &'static str,
    requires: Option<&'static str>,
}

const fn rule(component: &'static str, keyword: &'static str, pattern: &'static str) -> Rule {
    Rule {
        component,
        keyword,
        pattern,
        requires: None,
    }
}

const fn rule_if(
    component: &'static str,
    keyword: &'static str,
    pattern: &'static str,
    requires: &'static str,
) -> Rule {
    Rule {
        component,
        keyword,
        pattern,
        requires: Some(requires),
    }
}

/// Version-bearing strings of each component (content rules).
const RULES: &[Rule] = &[
    rule("busybox", "BusyBox v", r"BusyBox v([0-9]+\.[0-9]+\.[0-9]+)"),
    rule(
        "openssl",
        "OpenSSL ",
        r"OpenSSL ([0-9]+\.[0-9]+\.[0-9]+[a-z]{0,2})(?:-[A-Za-z0-9]+)?\s+[0-9]{1,2} [A-Z][a-z]{2} [0-9]{4}",
    ),
    rule_if(
        "uclibc",
        "NPTL ",
        r"^NPTL ([0-9]+\.[0-9]+\.[0-9]+)$",
        "uClibc",
    ),
    rule(
        "uclibc",
        "uClibc",
        r"uClibc(?:-ng)? (?:version )?v?([0-9]+\.[0-9]+\.[0-9]+(?:\.[0-9]+)?)",
    ),
    rule(
        "glibc",
        "GNU C Library",
        r"GNU C Library[^\n]*? (?:release )?version ([0-9]+\.[0-9]+(?:\.[0-9]+)?)",
    ),
    rule(
        "musl",
        "musl libc",
        r"musl libc(?: \(([0-9]+\.[0-9]+\.[0-9]+)\))?",
    ),
    rule("dropbear", "dropbear_", r"dropbear_(20[0-9]{2}\.[0-9]+)"),
    rule(
        "dropbear",
        "Dropbear",
        r"Dropbear (?:SSH|sshd|server|multi-purpose)[^\n]*? v(20[0-9]{2}\.[0-9]+)",
    ),
    rule(
        "openssh",
        "OpenSSH_",
        r"OpenSSH_([0-9]+\.[0-9]+(?:p[0-9]+)?)",
    ),
    rule(
        "lighttpd",
        "lighttpd/",
        r"lighttpd/([0-9]+\.[0-9]+\.[0-9]+)",
    ),
    rule("boa", "Boa/", r"Boa/([0-9]+\.[0-9]+\.[0-9]+(?:rc[0-9]+)?)"),
    rule("thttpd", "thttpd/", r"thttpd/([0-9]+\.[0-9]+[a-z]?)"),
    rule(
        "zlib",
        "flate ",
        r"(?:in|de)flate ([0-9]+\.[0-9]+\.[0-9]+(?:\.[0-9]+)?) Copyright",
    ),
    rule("curl", "libcurl/", r"libcurl/([0-9]+\.[0-9]+\.[0-9]+)"),
    rule("curl", "curl ", r"^curl ([0-9]+\.[0-9]+\.[0-9]+) \("),
    rule(
        "libpng",
        "libpng version ",
        r"libpng version ([0-9]+\.[0-9]+\.[0-9]+)",
    ),
    rule(
        "libjpeg-turbo",
        "libjpeg-turbo version ",
        r"libjpeg-turbo version ([0-9]+\.[0-9]+\.[0-9]+)",
    ),
    rule_if(
        "libjpeg",
        "-",
        r"^([0-9]+[a-z]?)  [0-9]{1,2}-[A-Z][a-z]{2}-[0-9]{4}$",
        "Independent JPEG Group",
    ),
    rule(
        "linux",
        "Linux version ",
        r"Linux version ([0-9]+\.[0-9]+(?:\.[0-9]+)?)[^ ]* \(",
    ),
    rule(
        "linux",
        "vermagic=",
        r"vermagic=([0-9]+\.[0-9]+(?:\.[0-9]+)?)",
    ),
    rule(
        "u-boot",
        "U-Boot ",
        r"U-Boot (20[0-9]{2}\.[0-9]{2}(?:\.[0-9]+)?|1\.[0-9]\.[0-9]+)",
    ),
    rule(
        "mbedtls",
        "bed TLS ",
        r"[Mm]bed TLS ([0-9]+\.[0-9]+\.[0-9]+)",
    ),
    rule(
        "polarssl",
        "PolarSSL ",
        r"PolarSSL ([0-9]+\.[0-9]+\.[0-9]+)",
    ),
    rule(
        "wolfssl",
        "wolfSSL",
        r"wolfSSL(?: version)? v?([0-9]+\.[0-9]+\.[0-9]+)",
    ),
    rule_if(
        "sqlite",
        ".",
        r"^(3\.[0-9]+\.[0-9]+(?:\.[0-9]+)?)$",
        "SQLite format 3",
    ),
    rule(
        "ffmpeg",
        "FFmpeg version ",
        r"FFmpeg version n?([0-9]+\.[0-9]+(?:\.[0-9]+)?)",
    ),
    rule("ffmpeg", "Lavc", r"Lavc([0-9]+\.[0-9]+\.[0-9]+)"),
    rule("ffmpeg", "Lavf", r"Lavf([0-9]+\.[0-9]+\.[0-9]+)"),
    rule(
        "live555",
        "LIVE555 Streaming Media v",
        r"LIVE555 Streaming Media v(20[0-9]{2}\.[0-9]{2}\.[0-9]{2})",
    ),
    rule("gsoap", "gSOAP", r"gSOAP[/ ]([0-9]+\.[0-9]+(?:\.[0-9]+)?)"),
    rule(
        "libupnp",
        "Portable SDK for UPnP devices/",
        r"Portable SDK for UPnP devices/([0-9]+\.[0-9]+\.[0-9]+)",
    ),
    rule("dnsmasq", "dnsmasq-", r"dnsmasq-([0-9]+\.[0-9]+)"),
    rule(
        "wpa_supplicant",
        "wpa_supplicant v",
        r"wpa_supplicant v([0-9]+\.[0-9]+(?:\.[0-9]+)?)",
    ),
    rule(
        "hostapd",
        "hostapd v",
        r"hostapd v([0-9]+\.[0-9]+(?:\.[0-9]+)?)",
    ),
    rule(
        "iptables",
        "iptables v",
        r"iptables v([0-9]+\.[0-9]+\.[0-9]+)",
    ),
    rule("libxml2", "libxml2-", r"libxml2-([0-9]+\.[0-9]+\.[0-9]+)"),
    rule("expat", "expat_", r"expat_([0-9]+\.[0-9]+\.[0-9]+)"),
];

/// File-name rules: libraries that put their version in their name.
const NAME_RULES: &[(&str, &str)] = &[
    (
        "uclibc",
        r"^(?:ld|lib[a-z_]*)-?uClibc-([0-9]+\.[0-9]+\.[0-9]+(?:\.[0-9]+)?)\.so$",
    ),
    ("glibc", r"^(?:libc|ld)-([0-9]+\.[0-9]+)\.so$"),
    ("musl", r"^ld-musl-[a-z0-9_]+\.so\.1$"),
    (
        "openssl",
        r"^lib(?:ssl|crypto)\.so\.([0-9]+\.[0-9]+\.[0-9]+[a-z]?)$",
    ),
    ("zlib", r"^libz\.so\.([0-9]+\.[0-9]+\.[0-9]+(?:\.[0-9]+)?)$"),
    ("libpng", r"^libpng[0-9]*\.so\.[0-9]+\.([0-9]+\.[0-9]+)$"),
    ("curl", r"^libcurl\.so\.[0-9]+\.([0-9]+\.[0-9]+)$"),
    ("sqlite", r"^libsqlite3\.so\.0\.8\.6$"),
];

/// Where a component was recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A string inside the file.
    Content,
    /// The file's name.
    Name,
}

/// A component recognised in one file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ComponentMatch {
    /// Component name (`busybox`, `openssl`, `uclibc` …).
    pub component: String,
    /// Version, where the identifying string carries one.
    pub version: Option<String>,
    /// How it was recognised.
    pub source: Source,
    /// Offset of the string in the file (0 for name matches).
    pub offset: u64,
    /// The text that matched (at most 120 characters).
    pub evidence: String,
}

struct Compiled {
    keywords: Option<AhoCorasick>,
    /// For keyword pattern `i`: the rules that use it.
    by_keyword: Vec<Vec<usize>>,
    /// Requirement literals (pattern ids `keywords.len()..`).
    requires: Vec<&'static str>,
    regexes: Vec<Option<Regex>>,
    names: Vec<(&'static str, Option<Regex>)>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| {
    let mut kw: Vec<&'static str> = Vec::new();
    let mut by_keyword: Vec<Vec<usize>> = Vec::new();
    for (i, r) in RULES.iter().enumerate() {
        match kw.iter().position(|k| *k == r.keyword) {
            Some(p) => {
                if let Some(v) = by_keyword.get_mut(p) {
                    v.push(i);
                }
            }
            None => {
                kw.push(r.keyword);
                by_keyword.push(vec![i]);
            }
        }
    }
    let requires: Vec<&'static str> = RULES
        .iter()
        .filter_map(|r| r.requires)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut patterns = kw.clone();
    patterns.extend(requires.iter().copied());
    Compiled {
        keywords: AhoCorasick::new(&patterns).ok(),
        by_keyword,
        requires,
        regexes: RULES.iter().map(|r| Regex::new(r.pattern).ok()).collect(),
        names: NAME_RULES
            .iter()
            .map(|(c, p)| (*c, Regex::new(p).ok()))
            .collect(),
    }
});

/// Longest evidence text kept.
const MAX_EVIDENCE: usize = 120;

/// Components recognised in a file from its strings (`runs`, as [`super::strings::extract`]
/// returns them) and its path `name`; one match per (component, version, source), the first in
/// the file, sorted.
///
/// ```
/// use fwsim::features::{components, strings};
/// let data = b"\0BusyBox v1.26.2 (2019-05-18 14:13:51 CST)\0";
/// let found = components::detect(&strings::extract(data, 6, 100).runs, b"bin/busybox");
/// assert_eq!(found[0].component, "busybox");
/// assert_eq!(found[0].version.as_deref(), Some("1.26.2"));
/// assert_eq!(found[0].offset, 1);
/// ```
pub fn detect(runs: &[Run<'_>], name: &[u8]) -> Vec<ComponentMatch> {
    with_name(detect_content(runs), name)
}

/// The content half of [`detect`]: components recognised from the strings alone (one match per
/// (component, version), the first in the file), in no particular order. It depends only on the
/// file's bytes, so it can be computed once per SHA-256 and completed by [`with_name`].
pub fn detect_content(runs: &[Run<'_>]) -> Vec<ComponentMatch> {
    let c = &*COMPILED;
    let nkw = c.by_keyword.len();
    // Pass 1: which rules each string may satisfy, and which requirement literals the file holds.
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    let mut present = vec![false; c.requires.len()];
    for (ri, run) in runs.iter().enumerate() {
        if run.encoding != Encoding::Ascii {
            continue;
        }
        let Some(keywords) = &c.keywords else { break };
        for m in keywords.find_overlapping_iter(run.text.as_bytes()) {
            let p = m.pattern().as_usize();
            if let Some(rules) = c.by_keyword.get(p) {
                candidates.extend(rules.iter().map(|&rule| (rule, ri)));
            } else if let Some(flag) = present.get_mut(p - nkw) {
                *flag = true;
            }
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (rule_idx, ri) in candidates {
        let (Some(rule), Some(Some(re)), Some(run)) =
            (RULES.get(rule_idx), c.regexes.get(rule_idx), runs.get(ri))
        else {
            continue;
        };
        if let Some(req) = rule.requires {
            let ok = c
                .requires
                .iter()
                .position(|r| *r == req)
                .and_then(|i| present.get(i).copied())
                .unwrap_or(false);
            if !ok {
                continue;
            }
        }
        let Some(caps) = re.captures(run.text.as_bytes()) else {
            continue;
        };
        let version = caps
            .get(1)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let whole = caps.get(0).map_or(&b""[..], |m| m.as_bytes());
        let start = caps.get(0).map_or(0, |m| m.start()) as u64;
        push(
            &mut out,
            &mut seen,
            ComponentMatch {
                component: rule.component.to_owned(),
                version,
                source: Source::Content,
                offset: run.offset.saturating_add(start),
                evidence: evidence(whole),
            },
        );
    }
    out
}

/// Completes [`detect_content`]'s matches with the components recognised from the path `name`,
/// sorted: `with_name(detect_content(runs), name) == detect(runs, name)`.
pub fn with_name(mut out: Vec<ComponentMatch>, name: &[u8]) -> Vec<ComponentMatch> {
    let c = &*COMPILED;
    let mut seen: BTreeSet<(String, Option<String>, Source)> = out
        .iter()
        .map(|m| (m.component.clone(), m.version.clone(), m.source))
        .collect();
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    for (component, re) in &c.names {
        let Some(caps) = re.as_ref().and_then(|re| re.captures(base)) else {
            continue;
        };
        push(
            &mut out,
            &mut seen,
            ComponentMatch {
                component: (*component).to_owned(),
                version: caps
                    .get(1)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                source: Source::Name,
                offset: 0,
                evidence: evidence(base),
            },
        );
    }
    out.sort_by(|a, b| {
        (&a.component, &a.source, &a.version, a.offset).cmp(&(
            &b.component,
            &b.source,
            &b.version,
            b.offset,
        ))
    });
    out
}

/// Keeps the first match of each (component, version, source) (candidates arrive in rule order,
/// so the earliest offset is kept by comparing).
fn push(
    out: &mut Vec<ComponentMatch>,
    seen: &mut BTreeSet<(String, Option<String>, Source)>,
    m: ComponentMatch,
) {
    let key = (m.component.clone(), m.version.clone(), m.source);
    if seen.insert(key) {
        out.push(m);
    } else if let Some(prev) = out
        .iter_mut()
        .find(|p| p.component == m.component && p.version == m.version && p.source == m.source)
        && m.offset < prev.offset
    {
        *prev = m;
    }
}

fn evidence(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.chars()
        .take(MAX_EVIDENCE)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::strings::extract;

    fn found(data: &[u8], name: &str) -> Vec<(String, Option<String>, Source)> {
        detect(&extract(data, 6, 10_000).runs, name.as_bytes())
            .into_iter()
            .map(|m| (m.component, m.version, m.source))
            .collect()
    }

    fn one(c: &str, v: &str) -> (String, Option<String>, Source) {
        (c.into(), Some(v.into()), Source::Content)
    }

    #[test]
    fn every_rule_compiles() {
        let c = &*COMPILED;
        assert!(c.keywords.is_some());
        assert!(c.regexes.iter().all(Option::is_some));
        assert!(c.names.iter().all(|(_, r)| r.is_some()));
    }

    #[test]
    fn version_strings_of_common_components() {
        let cases: &[(&[u8], &str, &str)] = &[
            (b"OpenSSL 1.0.2k  26 Jan 2017", "openssl", "1.0.2k"),
            (b"OpenSSL 3.0.2 15 Mar 2022", "openssl", "3.0.2"),
            (
                b" deflate 1.2.11 Copyright 1995-2017 Jean-loup Gailly and Mark Adler ",
                "zlib",
                "1.2.11",
            ),
            (b"SSH-2.0-dropbear_2019.78", "dropbear", "2019.78"),
            (b"Server: lighttpd/1.4.35", "lighttpd", "1.4.35"),
            (b"Boa/0.94.14rc21", "boa", "0.94.14rc21"),
            (b"thttpd/2.25b 29dec2003", "thttpd", "2.25b"),
            (b"libcurl/7.64.0 OpenSSL/1.1.1", "curl", "7.64.0"),
            (
                b"libpng version 1.6.37 - April 14, 2019",
                "libpng",
                "1.6.37",
            ),
            (
                b"Linux version 3.10.14 (builder@host) (gcc version 4.9.4) #1 SMP",
                "linux",
                "3.10.14",
            ),
            (b"vermagic=3.4.35 mod_unload ARMv7 p2v8 ", "linux", "3.4.35"),
            (
                b"U-Boot 2010.06-svn (Jun 01 2015 - 10:00:00)",
                "u-boot",
                "2010.06",
            ),
            (b"mbed TLS 2.16.3", "mbedtls", "2.16.3"),
            (
                b"LIVE555 Streaming Media v2018.08.28",
                "live555",
                "2018.08.28",
            ),
            (b"gSOAP/2.8", "gsoap", "2.8"),
            (b"Lavc58.54.100", "ffmpeg", "58.54.100"),
            (
                b"GNU C Library (GNU libc) stable release version 2.28.",
                "glibc",
                "2.28",
            ),
        ];
        for (text, comp, ver) in cases {
            let mut data = b"\0\x01".to_vec();
            data.extend_from_slice(text);
            data.push(0);
            assert_eq!(
                found(&data, "x"),
                vec![one(comp, ver)],
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn required_markers_gate_generic_patterns() {
        // "NPTL 0.9.33" means uClibc only in a file that also says uClibc.
        assert_eq!(found(b"\0NPTL 0.9.33\0", "x"), vec![]);
        assert_eq!(
            found(b"\0NPTL 0.9.33\0__uClibc_main\0", "x"),
            vec![one("uclibc", "0.9.33")]
        );
        assert_eq!(found(b"\x003.31.1\0", "x"), vec![]);
        assert_eq!(
            found(b"\x003.31.1\0SQLite format 3\0", "x"),
            vec![one("sqlite", "3.31.1")]
        );
    }

    #[test]
    fn names_and_offsets() {
        let m = detect(
            &extract(b"", 6, 10).runs,
            b"rootfs/lib/libuClibc-0.9.33.2.so",
        );
        assert_eq!(m.len(), 1);
        assert_eq!(
            (
                m[0].component.as_str(),
                m[0].version.as_deref(),
                m[0].source
            ),
            ("uclibc", Some("0.9.33.2"), Source::Name)
        );
        let data = b"xx\0BusyBox v1.16.1 (2014)\0syslogd started: BusyBox v1.16.1\0";
        let m = detect(&extract(data, 6, 100).runs, b"bin/busybox");
        assert_eq!(m.len(), 1, "one match per version, the first kept");
        assert_eq!(m[0].offset, 3);
        assert_eq!(m[0].evidence, "BusyBox v1.16.1");
    }
}
