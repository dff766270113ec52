//! Platform: flattened device trees (parsed in-house, bounded: `model`, `compatible`, unit-address
//! node names), Linux version banners, embedded kernel configurations (IKCONFIG), U-Boot banners,
//! and system-on-chip names in file names and strings — folded by [`guess`] into a platform guess
//! with its evidence and a confidence. The FDT layout follows the Devicetree Specification
//! (v0.4, chapter 5) as `dtc`/libfdt read it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::scan::{Run, Scan, Trigger, find_all_ci};
use super::{Evidence, EvidenceExtractor, Kind, Params};
use crate::unpack::codec::{self, Codec};
use crate::unpack::{Budget, Ctx, Limits};

/// The platform extractor.
#[derive(Clone, Copy, Debug)]
pub struct Platform;

impl EvidenceExtractor for Platform {
    fn name(&self) -> &'static str {
        "platform"
    }

    fn extract(&self, scan: &Scan<'_>, params: &Params, out: &mut Vec<Evidence>) {
        let path = scan.path;
        for off in scan.hits(Trigger::Fdt) {
            if let Some(dt) = scan.bytes.get(off..).and_then(parse_fdt) {
                device_tree(path, off as u64, &dt, out);
            }
        }
        for off in scan.hits(Trigger::Ikconfig) {
            kernel_config(scan, off, params, out);
        }
        for run in scan.runs(&[Trigger::LinuxBanner]) {
            kernel_versions(path, &run, out);
        }
        for run in scan.runs(&[Trigger::UBoot]) {
            uboot(path, &run, out);
        }
        for run in scan.runs(&[Trigger::Soc]) {
            for (i, soc) in soc_names(run.text) {
                out.push(soc.evidence(path, run.at(i), "string"));
            }
        }
        if let Some(soc) = soc_from_file_name(scan.file_name()) {
            out.push(soc.evidence(path, 0, "file_name"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Linux and U-Boot banners

/// The parts of a `Linux version 3.4.35 (user@host) (gcc …) #1 SMP Fri Dec 9 … 2016` banner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxBanner<'a> {
    /// Kernel release (`3.4.35`).
    pub release: &'a str,
    /// Build user.
    pub user: Option<&'a str>,
    /// Build host.
    pub host: Option<&'a str>,
    /// Compiler description (`gcc version 4.8.3 …`).
    pub compiler: Option<&'a str>,
    /// Build number and flags (`#1 SMP`).
    pub build: Option<&'a str>,
    /// Build date (`Fri Dec 9 16:08:20 CST 2016`).
    pub date: Option<&'a str>,
    /// The whole banner line.
    pub line: &'a str,
}

/// The text inside the parenthesis that opens `s` (nesting respected) and what follows it.
fn parenthesised(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('(')?;
    let mut depth = 1usize;
    for (i, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((body.get(..i)?, body.get(i + 1..)?));
                }
            }
            _ => {}
        }
    }
    None
}

const WEEKDAYS: &[&str] = &["Mon ", "Tue ", "Wed ", "Thu ", "Fri ", "Sat ", "Sun "];

/// Parses a kernel banner starting at `Linux version ` (case-insensitive). Format strings
/// (`%s`) are refused.
pub fn linux_banner(text: &str) -> Option<LinuxBanner<'_>> {
    let head = text.get(..14)?;
    if !head.eq_ignore_ascii_case("linux version ") {
        return None;
    }
    let line = text.split(['\n', '\r']).next().unwrap_or(text).trim_end();
    let rest = line.get(14..)?;
    let release = rest.split_whitespace().next()?;
    if release.contains('%')
        || !release.chars().next().is_some_and(|c| c.is_ascii_digit())
        || !release.contains('.')
    {
        return None;
    }
    let mut b = LinuxBanner {
        release,
        user: None,
        host: None,
        compiler: None,
        build: None,
        date: None,
        line,
    };
    let mut after = rest.get(release.len()..)?.trim_start();
    if let Some((who, tail)) = parenthesised(after) {
        if let Some((u, h)) = who.split_once('@') {
            b.user = Some(u).filter(|u| !u.is_empty() && !u.contains('%'));
            b.host = Some(h).filter(|h| !h.is_empty() && !h.contains('%'));
        }
        after = tail.trim_start();
        if let Some((compiler, tail)) = parenthesised(after) {
            b.compiler = Some(compiler.trim()).filter(|c| !c.is_empty() && !c.contains('%'));
            after = tail.trim_start();
        }
    }
    if after.starts_with('#') {
        let date_at = WEEKDAYS.iter().filter_map(|d| after.find(d)).min();
        match date_at {
            Some(d) => {
                b.build = after.get(..d).map(str::trim).filter(|s| !s.is_empty());
                b.date = after.get(d..).map(str::trim);
            }
            None => b.build = Some(after.trim()),
        }
    }
    Some(b)
}

fn kernel_versions(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for at in find_all_ci(run.text, "linux version ") {
        if let Some(b) = linux_banner(run.text.get(at..).unwrap_or_default()) {
            out.push(Evidence::new(
                Kind::KernelVersion,
                b.release,
                json!({ "source": "kernel_banner", "banner": b.line }),
                path,
                run.at(at),
            ));
        }
    }
}

/// `U-Boot 2016.11 (Aug 27 2020 - 05:22:29 +0000)` → version and date.
fn uboot(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for (at, _) in run.text.match_indices("U-Boot ") {
        let rest = run.text.get(at + 7..).unwrap_or_default();
        let version = rest.split_whitespace().next().unwrap_or_default();
        if !version.chars().next().is_some_and(|c| c.is_ascii_digit())
            || !version.contains('.')
            || version.contains('%')
        {
            continue;
        }
        let after = rest.get(version.len()..).unwrap_or_default().trim_start();
        let date = parenthesised(after)
            .map(|(d, _)| d.trim())
            .filter(|d| !d.contains('%'));
        out.push(Evidence::new(
            Kind::Bootloader,
            version,
            json!({ "source": "uboot_banner", "date": date, "banner": run.text.get(at..) }),
            path,
            run.at(at),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Flattened device trees

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Deepest node nesting followed.
const FDT_MAX_DEPTH: usize = 64;
/// Most distinct compatible strings and node names kept.
const FDT_MAX_NAMES: usize = 512;

/// What a device tree says about the hardware.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceTree {
    /// Root `model`.
    pub model: Option<String>,
    /// Root `description` (FIT images).
    pub description: Option<String>,
    /// Root `compatible` list, in order.
    pub compatible: Vec<String>,
    /// Every `compatible` string of every node, sorted and de-duplicated.
    pub node_compatibles: Vec<String>,
    /// Names of nodes with a unit address (`uart@12080000`), sorted and de-duplicated.
    pub unit_nodes: Vec<String>,
    /// Number of nodes.
    pub node_count: usize,
    /// `totalsize` from the header.
    pub size: u32,
    /// Format version.
    pub version: u32,
    /// The structure block ended before its `FDT_END` token (truncated or corrupt blob); what
    /// was read before is kept.
    pub truncated: bool,
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

fn cstr(b: &[u8], off: usize) -> Option<&[u8]> {
    let rest = b.get(off..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    rest.get(..end)
}

fn printable(s: &[u8]) -> Option<String> {
    if s.is_empty() || !s.iter().all(|&c| (0x20..0x7f).contains(&c)) {
        return None;
    }
    String::from_utf8(s.to_vec()).ok()
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// Parses the flattened device tree at the start of `b` (the header's `totalsize` bounds it;
/// a blob cut short is read as far as it goes). `None` when the header is not plausible.
pub fn parse_fdt(b: &[u8]) -> Option<DeviceTree> {
    if be32(b, 0)? != FDT_MAGIC {
        return None;
    }
    let total = be32(b, 4)?;
    let off_struct = usize::try_from(be32(b, 8)?).ok()?;
    let off_strings = usize::try_from(be32(b, 12)?).ok()?;
    let version = be32(b, 20)?;
    let last_comp = be32(b, 24)?;
    let size_strings = usize::try_from(be32(b, 32)?).ok()?;
    let total_us = usize::try_from(total).ok()?;
    if !(16..=64).contains(&version) || last_comp > 17 || total_us < 40 {
        return None;
    }
    let size_struct = if version >= 17 {
        usize::try_from(be32(b, 36)?).ok()?
    } else {
        total_us.checked_sub(off_struct)?
    };
    let struct_end = off_struct.checked_add(size_struct)?;
    let strings_end = off_strings.checked_add(size_strings)?;
    if off_struct < 40 || struct_end > total_us || strings_end > total_us || off_strings < 40 {
        return None;
    }
    let blob = b.get(..total_us.min(b.len()))?;
    let structure = blob.get(off_struct..struct_end.min(blob.len()))?;
    let strings = blob
        .get(off_strings..strings_end.min(blob.len()))
        .unwrap_or_default();

    let mut dt = DeviceTree {
        size: total,
        version,
        truncated: true,
        ..DeviceTree::default()
    };
    let mut compat: BTreeSet<String> = BTreeSet::new();
    let mut units: BTreeSet<String> = BTreeSet::new();
    let mut depth = 0usize;
    let mut pos = 0usize;
    while let Some(token) = be32(structure, pos) {
        pos += 4;
        match token {
            FDT_BEGIN_NODE => {
                let Some(name) = cstr(structure, pos) else {
                    break;
                };
                let Some(next) = align4(pos + name.len() + 1) else {
                    break;
                };
                pos = next;
                depth += 1;
                if depth > FDT_MAX_DEPTH {
                    break;
                }
                dt.node_count += 1;
                if name.contains(&b'@')
                    && units.len() < FDT_MAX_NAMES
                    && let Some(n) = printable(name)
                {
                    units.insert(n);
                }
            }
            FDT_END_NODE => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            FDT_PROP => {
                let (Some(len), Some(nameoff)) = (be32(structure, pos), be32(structure, pos + 4))
                else {
                    break;
                };
                let Ok(len) = usize::try_from(len) else { break };
                let start = pos + 8;
                let Some(value) = start
                    .checked_add(len)
                    .and_then(|end| structure.get(start..end))
                else {
                    break;
                };
                let Some(next) = align4(start + len) else {
                    break;
                };
                pos = next;
                let name = usize::try_from(nameoff)
                    .ok()
                    .and_then(|o| cstr(strings, o))
                    .unwrap_or_default();
                property(&mut dt, &mut compat, depth, name, value);
            }
            FDT_NOP => {}
            FDT_END => {
                dt.truncated = false;
                break;
            }
            _ => break,
        }
    }
    dt.node_compatibles = compat.into_iter().collect();
    dt.unit_nodes = units.into_iter().collect();
    Some(dt)
}

fn string_list(value: &[u8]) -> Vec<String> {
    value
        .split(|&c| c == 0)
        .filter_map(printable)
        .take(64)
        .collect()
}

fn property(
    dt: &mut DeviceTree,
    compat: &mut BTreeSet<String>,
    depth: usize,
    name: &[u8],
    value: &[u8],
) {
    match name {
        b"compatible" => {
            let list = string_list(value);
            if depth == 1 && dt.compatible.is_empty() {
                dt.compatible = list.clone();
            }
            for s in list {
                if compat.len() < FDT_MAX_NAMES {
                    compat.insert(s);
                }
            }
        }
        b"model" if depth == 1 => dt.model = string_list(value).into_iter().next(),
        b"description" if depth == 1 => dt.description = string_list(value).into_iter().next(),
        _ => {}
    }
}

fn device_tree(path: &str, offset: u64, dt: &DeviceTree, out: &mut Vec<Evidence>) {
    let value = dt
        .model
        .clone()
        .or_else(|| dt.compatible.first().cloned())
        .or_else(|| dt.description.clone())
        .or_else(|| dt.node_compatibles.first().cloned())
        .unwrap_or_else(|| "fdt".to_owned());
    let detail = serde_json::to_value(dt)
        .ok()
        .and_then(|mut v| {
            v.as_object_mut()?.insert("source".into(), "fdt".into());
            Some(v)
        })
        .unwrap_or_else(|| json!({ "source": "fdt" }));
    out.push(Evidence::new(Kind::DeviceTree, value, detail, path, offset));
    let mut named = dt.compatible.clone();
    named.extend(dt.model.clone());
    for s in named {
        for (_, soc) in soc_names(&s) {
            out.push(soc.evidence(path, offset, "device_tree"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Embedded kernel configuration

/// Configuration keys kept in the evidence (prefixes, then exact names).
const CONFIG_PREFIXES: &[&str] = &[
    "CONFIG_ARCH_",
    "CONFIG_MACH_",
    "CONFIG_SOC_",
    "CONFIG_PLAT_",
];
const CONFIG_KEYS: &[&str] = &[
    "CONFIG_LOCALVERSION",
    "CONFIG_CROSS_COMPILE",
    "CONFIG_DEFAULT_HOSTNAME",
    "CONFIG_CC_VERSION_TEXT",
    "CONFIG_CMDLINE",
];
const CONFIG_MAX_KEYS: usize = 64;

/// `IKCFG_ST` followed by a gzip stream: the kernel's `.config`.
fn kernel_config(scan: &Scan<'_>, off: usize, params: &Params, out: &mut Vec<Evidence>) {
    if scan.bytes.get(off..off + 8) != Some(b"IKCFG_ST".as_slice()) {
        return;
    }
    let Some(stream) = scan.bytes.get(off + 8..) else {
        return;
    };
    let limits = Limits {
        max_output_bytes: params.max_config_bytes,
        max_file_bytes: params.max_config_bytes,
        ..Limits::default()
    };
    let budget = Budget::new(limits);
    let Ok(decoded) = codec::decode(Codec::Gzip, stream, &Ctx::new(&budget)) else {
        return;
    };
    let text = String::from_utf8_lossy(&decoded.data);
    let mut options = 0usize;
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if !k.starts_with("CONFIG_") {
            continue;
        }
        options += 1;
        let wanted = CONFIG_KEYS.contains(&k)
            || CONFIG_PREFIXES.iter().any(|p| k.starts_with(p)) && v == "y";
        if wanted && keys.len() < CONFIG_MAX_KEYS {
            keys.insert(k.to_owned(), v.trim_matches('"').to_owned());
        }
    }
    if options == 0 {
        return;
    }
    let digest = hex::encode(Sha256::digest(&decoded.data));
    for k in keys.keys() {
        let name = k.trim_start_matches("CONFIG_").to_ascii_lowercase();
        for (_, soc) in soc_names(&name) {
            out.push(soc.evidence(scan.path, off as u64, "kernel_config"));
        }
    }
    out.push(Evidence::new(
        Kind::KernelConfig,
        digest,
        json!({ "source": "ikconfig", "options": options, "keys": keys }),
        scan.path,
        off as u64,
    ));
}

// ---------------------------------------------------------------------------------------------
// System-on-chip names

/// A chip or chip vendor named somewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocName {
    /// The chip vendor (`HiSilicon`, `Goke`, `Ingenic` …).
    pub vendor: &'static str,
    /// The chip family (`hi3516ev200`), when a chip name was seen.
    pub family: Option<String>,
    /// How strongly the name points at the platform (chip names in file names weigh most).
    pub strength: Strength,
}

/// How specific a SoC name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// A vendor word or a library prefix that clones also ship (`hisilicon`, `libhi_`).
    Weak,
    /// A vendor-specific library prefix (`libgk_`, `libimp`, `libmi_`).
    Library,
    /// A chip name (`hi3516ev200`, `gk7205v200`).
    Chip,
}

impl SocName {
    fn evidence(&self, path: &str, offset: u64, source: &str) -> Evidence {
        let value = self
            .family
            .clone()
            .unwrap_or_else(|| self.vendor.to_owned());
        Evidence::new(
            Kind::Soc,
            value,
            json!({
                "source": source,
                "vendor": self.vendor,
                "family": self.family,
                "strength": self.strength,
            }),
            path,
            offset,
        )
    }
}

/// Chip-name prefixes: the prefix, how many digits must follow it, and the vendor.
const CHIPS: &[(&str, usize, &str)] = &[
    ("hi3", 3, "HiSilicon"),
    ("gk7", 3, "Goke"),
    ("ak37", 2, "Anyka"),
    ("ak39", 2, "Anyka"),
    ("ssc3", 2, "SigmaStar"),
    ("ssd2", 2, "SigmaStar"),
    ("nt98", 3, "Novatek"),
    ("na51", 3, "Novatek"),
    ("fh88", 2, "Fullhan"),
    ("rv11", 2, "Rockchip"),
    ("rk3", 3, "Rockchip"),
    ("gm81", 2, "Grain Media"),
    ("rts39", 2, "Realtek"),
];

/// Vendor words and library prefixes.
const WORDS: &[(&str, &str, Strength)] = &[
    ("hisilicon", "HiSilicon", Strength::Weak),
    ("goke", "Goke", Strength::Weak),
    ("ingenic", "Ingenic", Strength::Weak),
    ("isvp", "Ingenic", Strength::Weak),
    ("anyka", "Anyka", Strength::Weak),
    ("sigmastar", "SigmaStar", Strength::Weak),
    ("novatek", "Novatek", Strength::Weak),
    ("ambarella", "Ambarella", Strength::Weak),
    ("fullhan", "Fullhan", Strength::Weak),
    ("rockchip", "Rockchip", Strength::Weak),
    ("allwinner", "Allwinner", Strength::Weak),
    ("libimp", "Ingenic", Strength::Library),
    ("libmi_", "SigmaStar", Strength::Library),
    ("libak_", "Anyka", Strength::Library),
    ("libgk_", "Goke", Strength::Library),
];

/// A chip name starting at `lower` (already lower-case): the prefix, the required digits, then
/// letters and digits (`hi3516ev200`), at most 16 characters.
fn chip_at(lower: &str) -> Option<SocName> {
    for &(prefix, digits, vendor) in CHIPS {
        let Some(rest) = lower.strip_prefix(prefix) else {
            continue;
        };
        if rest.len() < digits || !rest.bytes().take(digits).all(|b| b.is_ascii_digit()) {
            continue;
        }
        let len = prefix.len()
            + rest
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                .count();
        if len > 16 {
            continue;
        }
        return Some(SocName {
            vendor,
            family: lower.get(..len).map(str::to_owned),
            strength: Strength::Chip,
        });
    }
    None
}

fn word_at(lower: &str) -> Option<SocName> {
    WORDS.iter().find_map(|&(w, vendor, strength)| {
        lower.starts_with(w).then_some(SocName {
            vendor,
            family: None,
            strength,
        })
    })
}

/// Chip and vendor names in a string, each where it starts. A name must start a word (the
/// character before it is not a letter or digit, or it follows `lib`).
pub fn soc_names(text: &str) -> Vec<(usize, SocName)> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let bytes = lower.as_bytes();
    for i in 0..bytes.len() {
        let boundary = i == 0
            || bytes.get(i - 1).is_some_and(|b| !b.is_ascii_alphanumeric())
            || lower.get(..i).is_some_and(|s| s.ends_with("lib"));
        if !boundary {
            continue;
        }
        let Some(rest) = lower.get(i..) else { continue };
        if let Some(s) = chip_at(rest).or_else(|| word_at(rest)) {
            out.push((i, s));
        }
    }
    out
}

/// A SoC named by a file name: a chip-name prefix (`hi3516ev200_base.ko`, `gk7205v200_isp.ko`),
/// a vendor library prefix (`libgk_api.so`, `libmi_sys.so`, `libimp.so`), or a vendor's module
/// naming (`amba_*.ko` Ambarella, `nvt_*` Novatek, `hi_*`/`libhi_*` HiSilicon — weak, as clones
/// ship them too).
pub fn soc_from_file_name(name: &str) -> Option<SocName> {
    let lower = name.to_ascii_lowercase();
    let stem = lower.strip_prefix("lib").unwrap_or(&lower);
    if let Some(s) = chip_at(stem) {
        return Some(s);
    }
    if let Some(s) = word_at(&lower) {
        return Some(SocName {
            strength: s.strength.max(Strength::Library),
            ..s
        });
    }
    let weak = |vendor| {
        Some(SocName {
            vendor,
            family: None,
            strength: Strength::Weak,
        })
    };
    if lower.starts_with("amba_") && lower.ends_with(".ko") {
        return Some(SocName {
            vendor: "Ambarella",
            family: None,
            strength: Strength::Library,
        });
    }
    if lower.starts_with("nvt_") || lower.starts_with("libnvt") {
        return Some(SocName {
            vendor: "Novatek",
            family: None,
            strength: Strength::Library,
        });
    }
    if lower.starts_with("hi_") || lower.starts_with("libhi_") || lower.starts_with("lib_hi") {
        return weak("HiSilicon");
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The platform guess

/// The most likely system-on-chip vendor and family, with what supports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlatformGuess {
    /// Chip vendor.
    pub vendor: String,
    /// Chip family, when chip names were seen (the best-supported one).
    pub family: Option<String>,
    /// 0–1: the vendor's share of all SoC weight, damped when little evidence supports it.
    pub confidence: f64,
    /// Total weight for the vendor.
    pub score: f64,
    /// Weight of every other vendor seen, highest first.
    pub alternatives: Vec<(String, f64)>,
    /// The SoC items supporting the guess (at most 32, strongest first).
    pub evidence: Vec<Evidence>,
}

fn soc_weight(e: &Evidence) -> f64 {
    let strength = e.detail_str("strength").unwrap_or("weak");
    let source = e.detail_str("source").unwrap_or("string");
    match (source, strength) {
        ("device_tree" | "kernel_config", _) => 4.0,
        ("file_name", "chip") => 3.0,
        ("file_name", "library") => 2.0,
        ("file_name", _) => 1.0,
        ("image_name", _) => 2.0,
        (_, "chip") => 1.0,
        (_, "library") => 1.0,
        _ => 0.25,
    }
}

/// Folds every SoC item of `evidence` (and the chip names in uImage names) into a platform
/// guess. Each item weighs by source and specificity (device tree and kernel config 4, a chip in
/// a file name 3, a vendor library name 2, a chip in a string 1, a vendor word 0.25);
/// `confidence` = vendor share × (1 − e^(−score/5)). `None` without SoC evidence.
pub fn guess(evidence: &[Evidence]) -> Option<PlatformGuess> {
    let mut derived = Vec::new();
    for e in evidence.iter().filter(|e| e.kind == Kind::ImageName) {
        for (_, soc) in soc_names(&e.value) {
            derived.push(soc.evidence(&e.path, e.offset, "image_name"));
        }
    }
    let items: Vec<&Evidence> = evidence
        .iter()
        .filter(|e| e.kind == Kind::Soc)
        .chain(derived.iter())
        .collect();
    let mut vendors: BTreeMap<&str, f64> = BTreeMap::new();
    let mut families: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for e in &items {
        let Some(v) = e.detail_str("vendor") else {
            continue;
        };
        let w = soc_weight(e);
        *vendors.entry(v).or_insert(0.0) += w;
        if let Some(f) = e.detail_str("family") {
            *families.entry((v, f)).or_insert(0.0) += w;
        }
    }
    let total: f64 = vendors.values().sum();
    let (&vendor, &score) = vendors
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))?;
    let family = families
        .iter()
        .filter(|((v, _), _)| *v == vendor)
        .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.1.cmp(a.0.1)))
        .map(|((_, f), _)| (*f).to_owned());
    let confidence = if total > 0.0 {
        score / total * (1.0 - (-score / 5.0).exp())
    } else {
        0.0
    };
    let mut alternatives: Vec<(String, f64)> = vendors
        .iter()
        .filter(|(v, _)| **v != vendor)
        .map(|(v, s)| ((*v).to_owned(), *s))
        .collect();
    alternatives.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut support: Vec<&Evidence> = items
        .iter()
        .copied()
        .filter(|e| e.detail_str("vendor") == Some(vendor))
        .collect();
    support.sort_by(|a, b| soc_weight(b).total_cmp(&soc_weight(a)));
    Some(PlatformGuess {
        vendor: vendor.to_owned(),
        family,
        confidence: (confidence * 100.0).round() / 100.0,
        score,
        alternatives,
        evidence: support.into_iter().take(32).cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device tree written by hand the way dtc lays it out: header, empty reservation map,
    /// structure block, strings block.
    fn fdt() -> Vec<u8> {
        let mut strings = Vec::new();
        let mut name_off = |n: &str| {
            let o = strings.len() as u32;
            strings.extend_from_slice(n.as_bytes());
            strings.push(0);
            o
        };
        let (compat, model) = (name_off("compatible"), name_off("model"));
        let mut st = Vec::new();
        let pad = |v: &mut Vec<u8>| {
            while !v.len().is_multiple_of(4) {
                v.push(0);
            }
        };
        let node = |st: &mut Vec<u8>, name: &str| {
            st.extend_from_slice(&FDT_BEGIN_NODE.to_be_bytes());
            st.extend_from_slice(name.as_bytes());
            st.push(0);
            pad(st);
        };
        let prop = |st: &mut Vec<u8>, off: u32, value: &[u8]| {
            st.extend_from_slice(&FDT_PROP.to_be_bytes());
            st.extend_from_slice(&(value.len() as u32).to_be_bytes());
            st.extend_from_slice(&off.to_be_bytes());
            st.extend_from_slice(value);
            pad(st);
        };
        node(&mut st, "");
        prop(&mut st, model, b"Acme Cam\0");
        prop(&mut st, compat, b"acme,cam\0hisilicon,hi3516ev200\0");
        node(&mut st, "uart@12040000");
        prop(&mut st, compat, b"arm,pl011\0arm,primecell\0");
        st.extend_from_slice(&FDT_END_NODE.to_be_bytes());
        st.extend_from_slice(&FDT_END_NODE.to_be_bytes());
        st.extend_from_slice(&FDT_END.to_be_bytes());
        let off_rsv = 40u32;
        let off_struct = off_rsv + 16;
        let off_strings = off_struct + st.len() as u32;
        let total = off_strings + strings.len() as u32;
        let mut b = Vec::new();
        for v in [
            FDT_MAGIC,
            total,
            off_struct,
            off_strings,
            off_rsv,
            17,
            16,
            0,
            strings.len() as u32,
            st.len() as u32,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&st);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn device_tree_fields() {
        let dt = parse_fdt(&fdt()).unwrap();
        assert_eq!(dt.model.as_deref(), Some("Acme Cam"));
        assert_eq!(dt.compatible, ["acme,cam", "hisilicon,hi3516ev200"]);
        assert_eq!(
            dt.node_compatibles,
            [
                "acme,cam",
                "arm,pl011",
                "arm,primecell",
                "hisilicon,hi3516ev200"
            ]
        );
        assert_eq!(dt.unit_nodes, ["uart@12040000"]);
        assert_eq!(dt.node_count, 2);
        assert!(!dt.truncated);
    }

    #[test]
    fn device_tree_evidence_and_soc() {
        let mut data = b"junk".to_vec();
        data.extend(fdt());
        let scan = Scan::new("boot/dtb", &data, &Params::default());
        let mut out = Vec::new();
        Platform.extract(&scan, &Params::default(), &mut out);
        let dt = out.iter().find(|e| e.kind == Kind::DeviceTree).unwrap();
        assert_eq!(dt.value, "Acme Cam");
        assert_eq!(dt.offset, 4);
        let socs: Vec<_> = out
            .iter()
            .filter(|e| e.kind == Kind::Soc && e.detail_str("source") == Some("device_tree"))
            .map(|e| e.value.as_str())
            .collect();
        assert_eq!(socs, ["HiSilicon", "hi3516ev200"]);
    }

    #[test]
    fn every_truncation_and_corruption_of_a_device_tree_is_survived() {
        let good = fdt();
        let struct_end = (u32::from_be_bytes(good[8..12].try_into().unwrap())
            + u32::from_be_bytes(good[36..40].try_into().unwrap()))
            as usize;
        for cut in 0..good.len() {
            if let Some(dt) = parse_fdt(&good[..cut]) {
                assert_eq!(dt.truncated, cut < struct_end, "cut at {cut}");
            }
        }
        for i in 0..good.len() {
            for v in [0x00, 0xff, 0x7f, 0x01] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = parse_fdt(&bad);
            }
        }
        // A huge totalsize: read as a blob cut short, never beyond the bytes present.
        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(parse_fdt(&bad).unwrap().node_count, 2);
        // A huge property length (the first property's length field follows the root node's
        // token and its empty, padded name): the walk stops there.
        let mut bad = good.clone();
        bad[56 + 12..56 + 16].copy_from_slice(&u32::MAX.to_be_bytes());
        let dt = parse_fdt(&bad).unwrap();
        assert!(dt.truncated);
        assert_eq!((dt.node_count, dt.model), (1, None));
    }

    #[test]
    fn embedded_kernel_config() {
        use std::io::Write;
        let config = "# Linux/arm 4.9.37 Kernel Configuration\nCONFIG_ARM=y\nCONFIG_ARCH_HI3516EV200=y\n# CONFIG_ARCH_HI3519 is not set\nCONFIG_LOCALVERSION=\"-acme\"\nCONFIG_HZ=100\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(config.as_bytes()).unwrap();
        let mut data = b"kernel code".to_vec();
        data.extend_from_slice(b"IKCFG_ST");
        data.extend(gz.finish().unwrap());
        data.extend_from_slice(b"IKCFG_ED");
        let scan = Scan::new("zImage", &data, &Params::default());
        let mut out = Vec::new();
        Platform.extract(&scan, &Params::default(), &mut out);
        let cfg = out.iter().find(|e| e.kind == Kind::KernelConfig).unwrap();
        assert_eq!(cfg.offset, 11);
        assert_eq!(cfg.value, hex::encode(Sha256::digest(config.as_bytes())));
        assert_eq!(cfg.detail["options"], 4);
        assert_eq!(
            cfg.detail["keys"],
            json!({ "CONFIG_ARCH_HI3516EV200": "y", "CONFIG_LOCALVERSION": "-acme" })
        );
        let soc = out.iter().find(|e| e.kind == Kind::Soc).unwrap();
        assert_eq!(soc.value, "hi3516ev200");
        assert_eq!(soc.detail_str("source"), Some("kernel_config"));
        // A truncated stream yields nothing, and no panic.
        for cut in 0..data.len() {
            let scan = Scan::new("zImage", &data[..cut], &Params::default());
            let mut out = Vec::new();
            Platform.extract(&scan, &Params::default(), &mut out);
        }
    }

    #[test]
    fn banner_parsing() {
        let b = linux_banner(
            "Linux version 3.10.14__isvp_swan_1.0__ (root@osboxes) (gcc version 4.7.2 (Ingenic r2.3.3 2016.12) ) #2 PREEMPT Wed Jul 13 15:01:29 CST 2022",
        )
        .unwrap();
        assert_eq!(b.release, "3.10.14__isvp_swan_1.0__");
        assert_eq!((b.user, b.host), (Some("root"), Some("osboxes")));
        assert_eq!(
            b.compiler,
            Some("gcc version 4.7.2 (Ingenic r2.3.3 2016.12)")
        );
        assert_eq!(b.build, Some("#2 PREEMPT"));
        assert_eq!(b.date, Some("Wed Jul 13 15:01:29 CST 2022"));
        assert!(linux_banner("Linux version %s (%s@%s) (%s) %s").is_none());
        assert!(linux_banner("Linux version ").is_none());
        let bare = linux_banner("Linux version 2.6.21 (x@y").unwrap();
        assert_eq!(bare.release, "2.6.21");
        assert_eq!(bare.user, None);
    }

    #[test]
    fn uboot_banner() {
        let scan = Scan::new(
            "boot",
            b"\0U-Boot 2016.11 (Aug 27 2020 - 05:22:29 +0000)\0U-Boot %s\0",
            &Params::default(),
        );
        let mut out = Vec::new();
        Platform.extract(&scan, &Params::default(), &mut out);
        let b: Vec<_> = out.iter().filter(|e| e.kind == Kind::Bootloader).collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].value, "2016.11");
        assert_eq!(b[0].detail["date"], "Aug 27 2020 - 05:22:29 +0000");
    }

    #[test]
    fn soc_names_in_strings_and_file_names() {
        let names: Vec<_> = soc_names("load hi3516ev200_base.ko; libgk_api.so; chi3516x; Ingenic")
            .into_iter()
            .map(|(_, s)| (s.vendor, s.family))
            .collect();
        assert_eq!(
            names,
            [
                ("HiSilicon", Some("hi3516ev200".to_owned())),
                ("Goke", None),
                ("Ingenic", None),
            ]
        );
        let f = soc_from_file_name("gk7205v200_isp.ko").unwrap();
        assert_eq!(
            (f.vendor, f.family.as_deref()),
            ("Goke", Some("gk7205v200"))
        );
        assert_eq!(soc_from_file_name("libimp.so").unwrap().vendor, "Ingenic");
        assert_eq!(
            soc_from_file_name("libmi_sys.so").unwrap().vendor,
            "SigmaStar"
        );
        assert_eq!(
            soc_from_file_name("amba_video.ko").unwrap().vendor,
            "Ambarella"
        );
        assert_eq!(
            soc_from_file_name("hi_osal.ko").unwrap().strength,
            Strength::Weak
        );
        assert!(soc_from_file_name("busybox").is_none());
    }

    #[test]
    fn guess_weighs_file_names_over_stray_strings() {
        let mut ev = Vec::new();
        for f in [
            "gk7205v200_isp.ko",
            "gk7205v200_sys.ko",
            "libgk_api.so",
            "libhi_isp.so",
        ] {
            ev.push(soc_from_file_name(f).unwrap().evidence(f, 0, "file_name"));
        }
        for (_, s) in soc_names("hi3516e hisilicon") {
            ev.push(s.evidence("x", 0, "string"));
        }
        let g = guess(&ev).unwrap();
        assert_eq!(g.vendor, "Goke");
        assert_eq!(g.family.as_deref(), Some("gk7205v200"));
        // Goke 3 + 3 + 2 = 8; HiSilicon 1 (libhi_) + 1 (chip string) + 0.25 (word) = 2.25.
        assert_eq!(g.score, 8.0);
        assert_eq!(g.alternatives, [("HiSilicon".to_owned(), 2.25)]);
        let expected = 8.0 / 10.25 * (1.0 - (-8.0f64 / 5.0).exp());
        assert!((g.confidence - (expected * 100.0).round() / 100.0).abs() < 1e-9);
        assert!(guess(&[]).is_none());
    }
}
