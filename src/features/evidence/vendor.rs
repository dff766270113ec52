//! Vendor and brand candidates: copyright holders, company-form phrases (`Co., Ltd`, `Inc.`,
//! `GmbH`, `Technology`), web and e-mail domains, manifest fields (Dahua `Install` `Vendor` and
//! `Devices`, `hwid` models), header OEM codes and uImage names — found generically, never from a
//! list of known brands — and [`candidates`], which folds and scores them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::scan::{Run, Scan, Trigger, find_all_ci};
use super::{Evidence, EvidenceExtractor, Kind, Params};
use crate::unpack::Meta;
use crate::unpack::formats::uimage;

/// The vendor extractor.
#[derive(Clone, Copy, Debug)]
pub struct Vendor;

impl EvidenceExtractor for Vendor {
    fn name(&self) -> &'static str {
        "vendor"
    }

    fn extract(&self, scan: &Scan<'_>, params: &Params, out: &mut Vec<Evidence>) {
        for run in scan.runs(&[Trigger::Copyright]) {
            copyright(scan.path, &run, out);
        }
        for run in scan.runs(&[Trigger::Company]) {
            companies(scan.path, &run, out);
        }
        for run in scan.runs(&[Trigger::Url]) {
            urls(scan.path, &run, out);
        }
        for run in scan.runs(&[Trigger::Email]) {
            emails(scan.path, &run, out);
        }
        manifest(scan, params, out);
        uimage_name(scan, out);
    }
}

/// The name of a uImage header at the start of the file (with a valid header CRC), even when
/// its payload is missing and the unpacker could not open it.
fn uimage_name(scan: &Scan<'_>, out: &mut Vec<Evidence>) {
    let Some(head) = scan.bytes.get(..uimage::HEADER_LEN) else {
        return;
    };
    let Ok(h) = uimage::Header::parse(head) else {
        return;
    };
    if h.to_bytes().as_slice() != head || h.name.trim().is_empty() {
        return;
    }
    out.push(image_name(scan.path, h.name.trim()));
}

fn image_name(path: &str, name: &str) -> Evidence {
    Evidence::new(
        Kind::ImageName,
        name,
        json!({ "source": "uimage", "format": "uimage" }),
        path,
        32,
    )
}

/// A vendor item with its folded name.
fn vendor(path: &str, offset: u64, raw: &str, source: &str, normalized: &str) -> Evidence {
    Evidence::new(
        Kind::Vendor,
        raw,
        json!({ "source": source, "normalized": normalized }),
        path,
        offset,
    )
}

/// Legal forms and generic company words dropped when folding a name.
const COMPANY_WORDS: &[&str] = &[
    "co",
    "ltd",
    "inc",
    "gmbh",
    "corp",
    "corporation",
    "limited",
    "llc",
    "technology",
    "technologies",
    "tech",
    "company",
    "plc",
    "ag",
    "sa",
    "bv",
    "nv",
    "pty",
    "kk",
    "srl",
    "sas",
    "oy",
    "ab",
    "incorporated",
    "all",
    "rights",
    "reserved",
];

/// City and province names that prefix many company names (dropped when more words follow).
const PLACE_WORDS: &[&str] = &[
    "shenzhen",
    "hangzhou",
    "zhejiang",
    "beijing",
    "shanghai",
    "guangzhou",
    "guangdong",
    "xiamen",
    "fujian",
    "wuhan",
    "jiangsu",
    "nanjing",
    "suzhou",
    "ningbo",
    "chengdu",
    "dongguan",
    "zhuhai",
    "foshan",
    "hefei",
    "qingdao",
    "tianjin",
    "hong",
    "kong",
    "taipei",
    "taiwan",
];

/// Folds a name for grouping: lower case, punctuation to spaces, legal forms and generic company
/// words dropped, a leading place name dropped (`Zhejiang Dahua Technology Co., Ltd.` → `dahua`).
pub fn normalize(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && !COMPANY_WORDS.contains(w))
        .collect();
    let skip = words
        .iter()
        .take_while(|w| PLACE_WORDS.contains(w))
        .count()
        .min(words.len().saturating_sub(1));
    words.get(skip..).unwrap_or_default().join(" ")
}

/// Whether a word is a company-form token (`Co.,`, `Ltd.`, `Inc`, `GmbH`, `Technology` …).
fn is_company_token(word: &str) -> bool {
    let w = word
        .trim_end_matches(['.', ',', ';', ':', ')'])
        .to_ascii_lowercase();
    matches!(
        w.as_str(),
        "co" | "co.,ltd"
            | "co.ltd"
            | "co.,"
            | "ltd"
            | "inc"
            | "gmbh"
            | "corp"
            | "corporation"
            | "limited"
            | "llc"
            | "technology"
            | "technologies"
    )
}

fn is_capitalised(word: &str) -> bool {
    word.chars().next().is_some_and(|c| c.is_ascii_uppercase()) || word == "&"
}

/// `Copyright (C) 2005-2016 Holder Name Co., Ltd. All rights reserved.` → the holder.
fn copyright(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for at in find_all_ci(run.text, "copyright") {
        if run
            .text
            .get(..at)
            .and_then(|s| s.chars().last())
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            continue;
        }
        let rest = run.text.get(at + "copyright".len()..).unwrap_or_default();
        let Some(holder) = copyright_holder(rest) else {
            continue;
        };
        let normalized = normalize(&holder);
        if normalized.len() >= 2 {
            out.push(vendor(path, run.at(at), &holder, "copyright", &normalized));
        }
    }
}

/// The holder named after the word `Copyright`.
fn copyright_holder(rest: &str) -> Option<String> {
    let mut words = rest.split_whitespace().peekable();
    // Skip "(c)", "©", years, ranges and "by".
    while let Some(w) = words.peek() {
        let lw = w.to_ascii_lowercase();
        let skippable = lw == "(c)"
            || lw == "c)"
            || lw == "by"
            || lw == ":"
            || lw
                .chars()
                .all(|c| c.is_ascii_digit() || ",-~:().".contains(c));
        if !skippable {
            break;
        }
        words.next();
    }
    let mut holder: Vec<&str> = Vec::new();
    for w in words {
        if holder.len() >= 8
            || w.contains('@')
            || w.contains('<')
            || w.starts_with('(')
            || w.to_ascii_lowercase().starts_with("http")
            || w.eq_ignore_ascii_case("all")
        {
            break;
        }
        if w.ends_with(['.', ';']) && !is_company_token(w) {
            holder.push(w.trim_end_matches(['.', ';']));
            break;
        }
        holder.push(w);
    }
    let text = holder
        .join(" ")
        .trim_end_matches([',', '.', ';', ' ', '-'])
        .to_owned();
    let first = text.chars().next()?;
    if !first.is_ascii_uppercase() || text.chars().filter(|c| c.is_ascii_alphabetic()).count() < 2 {
        return None;
    }
    Some(text)
}

/// Company-form phrases: the capitalised words around a company token.
fn companies(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    let words: Vec<(usize, &str)> = word_spans(run.text);
    let mut last_end = 0usize;
    for (k, &(_, w)) in words.iter().enumerate() {
        if k < last_end || !is_company_token(w) || !is_capitalised(w) {
            continue;
        }
        let mut start = k;
        while start > 0
            && k - start < 6
            && words.get(start - 1).is_some_and(|&(_, p)| {
                is_capitalised(p) && !p.ends_with(['.', ';', ':']) || is_company_token(p)
            })
        {
            start -= 1;
        }
        let mut end = k + 1;
        while end < words.len()
            && end - k < 3
            && words.get(end).is_some_and(|&(_, n)| is_company_token(n))
        {
            end += 1;
        }
        last_end = end;
        let Some(phrase) = words.get(start..end) else {
            continue;
        };
        if phrase.iter().all(|&(_, w)| is_company_token(w)) {
            continue;
        }
        let (Some(&(s, _)), Some(&(e, last))) = (phrase.first(), phrase.last()) else {
            continue;
        };
        let Some(raw) = run.text.get(s..e + last.len()) else {
            continue;
        };
        let raw = raw.trim_end_matches([',', ';', ':', ' ']);
        let normalized = normalize(raw);
        if normalized.len() >= 2 {
            out.push(vendor(path, run.at(s), raw, "company", &normalized));
        }
    }
}

/// Whitespace-separated words with their byte offsets.
fn word_spans(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take()
                && let Some(w) = text.get(s..i)
            {
                out.push((s, w));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start
        && let Some(w) = text.get(s..)
    {
        out.push((s, w));
    }
    out
}

/// Second-level labels under which country domains register names (`example.com.cn`).
const SECOND_LEVEL: &[&str] = &[
    "com", "net", "org", "co", "gov", "edu", "ac", "ne", "or", "go", "gob", "mil", "nic",
];

/// The registrable part of a host name, by a public-suffix-free heuristic: the last two labels,
/// or three under a two-letter country code with a generic second level (`a.b.com.cn` →
/// `b.com.cn`). `None` for IP addresses and names that are not host names.
pub fn registrable(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return None;
    }
    let tld = labels.last()?;
    if tld.len() < 2 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let n = labels.len();
    let take = if n >= 3
        && tld.len() == 2
        && labels.get(n - 2).is_some_and(|l| SECOND_LEVEL.contains(l))
    {
        3
    } else {
        2
    };
    Some(labels.get(n - take..)?.join("."))
}

/// The first label of a registrable domain (`dahuasecurity.com` → `dahuasecurity`).
fn domain_label(domain: &str) -> &str {
    domain.split('.').next().unwrap_or(domain)
}

fn host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

/// Hosts of `http://`, `https://` and `www.` URLs.
fn urls(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    let mut starts: BTreeSet<usize> = BTreeSet::new();
    for prefix in ["http://", "https://"] {
        starts.extend(find_all_ci(run.text, prefix).map(|i| i + prefix.len()));
    }
    for i in find_all_ci(run.text, "www.") {
        let after_scheme = run.text.get(..i).is_some_and(|s| s.ends_with("//"));
        let word_start = run
            .text
            .get(..i)
            .and_then(|s| s.chars().last())
            .is_none_or(|c| !host_char(c));
        if !after_scheme && word_start {
            starts.insert(i);
        }
    }
    for s in starts {
        let rest = run.text.get(s..).unwrap_or_default();
        let host: String = rest.chars().take_while(|&c| host_char(c)).collect();
        if let Some(domain) = registrable(&host) {
            let label = domain_label(&domain).to_owned();
            out.push(vendor(path, run.at(s), &domain, "url", &label));
        }
    }
}

/// Domains of e-mail addresses.
fn emails(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for (i, _) in run.text.match_indices('@') {
        let before = run.text.get(..i).unwrap_or_default();
        let local_len = before
            .chars()
            .rev()
            .take_while(|&c| c.is_ascii_alphanumeric() || "._%+-".contains(c))
            .count();
        if local_len == 0 {
            continue;
        }
        let after = run.text.get(i + 1..).unwrap_or_default();
        let host: String = after.chars().take_while(|&c| host_char(c)).collect();
        let Some(domain) = registrable(&host) else {
            continue;
        };
        let start = i - local_len;
        let address = run.text.get(start..i + 1 + host.len()).unwrap_or_default();
        let label = domain_label(&domain).to_owned();
        let mut e = vendor(path, run.at(start), &domain, "email", &label);
        if let Some(obj) = e.detail.as_object_mut() {
            obj.insert("address".into(), address.into());
        }
        out.push(e);
    }
}

/// Keys whose string value names a vendor in a JSON manifest (compared case-insensitively).
const VENDOR_KEYS: &[&str] = &[
    "vendor",
    "brand",
    "manufacturer",
    "oem",
    "oemname",
    "oem_name",
    "company",
];

/// JSON manifests (Dahua `Install`, `hwid`, any small JSON file): vendor keys, device lists and
/// hardware-id model names. Leading `//` comment lines are skipped, as Dahua writes them.
fn manifest(scan: &Scan<'_>, params: &Params, out: &mut Vec<Evidence>) {
    let bytes = scan.bytes;
    if bytes.len() > params.max_manifest_bytes {
        return;
    }
    let mut body = bytes;
    loop {
        let trimmed = body.trim_ascii_start();
        if trimmed.starts_with(b"//") {
            let nl = trimmed.iter().position(|&b| b == b'\n');
            body = nl.and_then(|n| trimmed.get(n + 1..)).unwrap_or_default();
        } else {
            body = trimmed;
            break;
        }
    }
    if !body.starts_with(b"{") {
        return;
    }
    // The first JSON value; Dahua appends a `//` comment line after it too.
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let Some(Ok(value)) = values.next() else {
        return;
    };
    let mut found = Vec::new();
    walk_manifest(&value, 0, &mut found);
    for (kind, key, text, source) in found.into_iter().take(params.max_items_per_kind) {
        let offset = find_quoted(bytes, &text).unwrap_or(0);
        let e = match kind {
            Kind::Vendor => {
                let normalized = normalize(&text);
                let mut e = vendor(scan.path, offset, &text, source, &normalized);
                if let Some(obj) = e.detail.as_object_mut() {
                    obj.insert("key".into(), key.into());
                }
                e
            }
            _ => Evidence::new(
                kind,
                text,
                json!({ "source": source, "key": key }),
                scan.path,
                offset,
            ),
        };
        out.push(e);
    }
}

type Found = (Kind, String, String, &'static str);

fn walk_manifest(v: &Value, depth: usize, found: &mut Vec<Found>) {
    if depth > 16 || found.len() > 4096 {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                let lk = k.to_ascii_lowercase();
                match val {
                    Value::String(s)
                        if VENDOR_KEYS.contains(&lk.as_str()) && !s.trim().is_empty() =>
                    {
                        found.push((Kind::Vendor, k.clone(), s.trim().to_owned(), "manifest"));
                    }
                    Value::Array(items) if lk == "devices" => {
                        for item in items {
                            let name = match item {
                                Value::Array(a) => a.first().and_then(Value::as_str),
                                Value::String(s) => Some(s.as_str()),
                                _ => None,
                            };
                            if let Some(name) = name.filter(|n| !n.trim().is_empty()) {
                                found.push((
                                    Kind::Product,
                                    k.clone(),
                                    name.trim().to_owned(),
                                    "manifest_devices",
                                ));
                            }
                        }
                    }
                    Value::Array(items) if lk == "hwid" => {
                        for item in items.iter().filter_map(Value::as_str) {
                            let model = item.split(':').next().unwrap_or(item).trim();
                            if !model.is_empty() {
                                found.push((Kind::Product, k.clone(), model.to_owned(), "hwid"));
                            }
                        }
                    }
                    _ => walk_manifest(val, depth + 1, found),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk_manifest(item, depth + 1, found);
            }
        }
        _ => {}
    }
}

/// Offset of `"text` (the opening quote excluded) in `bytes`.
fn find_quoted(bytes: &[u8], text: &str) -> Option<u64> {
    let needle = format!("\"{text}");
    let n = needle.as_bytes();
    bytes
        .windows(n.len())
        .position(|w| w == n)
        .map(|p| p as u64 + 1)
}

/// What a container header says: the uImage name, an OEM code (Hikvision `oem_code`), a vendor
/// or brand field, a device class (Hikvision `device_class`, as a product item).
pub fn from_meta(path: &str, format: Option<&str>, meta: &Meta, out: &mut Vec<Evidence>) {
    if format == Some("uimage")
        && let Some(name) = meta.get("name").and_then(Value::as_str)
        && !name.trim().is_empty()
    {
        out.push(image_name(path, name.trim()));
    }
    for (key, value) in meta {
        let lk = key.to_ascii_lowercase();
        if lk == "device_class" {
            let class = match value {
                Value::String(s) => s.trim().to_owned(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            out.push(Evidence::new(
                Kind::Product,
                class,
                json!({ "source": "header", "key": key, "format": format }),
                path,
                0,
            ));
            continue;
        }
        let source = if lk == "oem_code" || lk == "oem" {
            "oem_code"
        } else if VENDOR_KEYS.contains(&lk.as_str()) {
            "header"
        } else {
            continue;
        };
        let text = match value {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        if text.is_empty() {
            continue;
        }
        let normalized = normalize(&text);
        let mut e = vendor(path, 0, &text, source, &normalized);
        if let Some(obj) = e.detail.as_object_mut() {
            obj.insert("key".into(), key.clone().into());
            if let Some(f) = format {
                obj.insert("format".into(), f.into());
            }
        }
        out.push(e);
    }
}

/// A vendor candidate: every vendor item with the same folded name, scored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// The folded name shared by the items.
    pub name: String,
    /// The most frequent spelling of the name itself.
    pub display: String,
    /// Longer one-word names grouped under this one (`dahuatech` under `dahua`).
    pub aliases: Vec<String>,
    /// Score: each source's weight times `1 + ln(files it was found in)`, summed.
    pub score: f64,
    /// Items per source (`manifest`, `copyright`, `company`, `url`, `email`, `oem_code` …).
    pub sources: BTreeMap<String, usize>,
    /// Distinct files it was found in.
    pub files: usize,
    /// Where it was first found (path, offset).
    pub first: (String, u64),
}

/// Copyright holders, organisations and domains of open-source projects, standards bodies,
/// certificate authorities and free mail services: evidence, but never a vendor candidate.
const NOT_VENDORS: &[&str] = &[
    "free software foundation",
    "fsf",
    "regents of the university of california",
    "the regents of the university of california",
    "linus torvalds",
    "red hat",
    "the openssl project",
    "openssl project",
    "eric young",
    "jean loup gailly",
    "jean loup gailly and mark adler",
    "mark adler",
    "erik andersen",
    "rob landley",
    "denys vlasenko",
    "daniel stenberg",
    "igor pavlov",
    "julian r seward",
    "the apache software foundation",
    "apache software foundation",
    "x consortium",
    "the open group",
    "sun microsystems",
    "w3",
    "gnu",
    "kernel",
    "busybox",
    "openssl",
    "apache",
    "mozilla",
    "microsoft",
    "adobe",
    "xmlsoap",
    "onvif",
    "ietf",
    "iana",
    "purl",
    "sourceforge",
    "github",
    "google",
    "googleapis",
    "jquery",
    "jqueryui",
    "json",
    "python",
    "perl",
    "freedesktop",
    "example",
    "openssh",
    "haxx",
    "curl",
    "zlib",
    "libpng",
    "ijg",
    "videolan",
    "ffmpeg",
    "live555",
    "sqlite",
    "openwrt",
    "buildroot",
    "uclibc",
    "digicert",
    "verisign",
    "globalsign",
    "letsencrypt",
    "symantec",
    "thawte",
    "entrust",
    "usertrust",
    "comodoca",
    "sectigo",
    "godaddy",
    "amazontrust",
    "launchpad",
    "debian",
    "ubuntu",
    "freebsd",
    "netbsd",
    "openbsd",
    "codepoet",
    "dkuug",
    "gnome",
    "kde",
    "isc",
    "samba",
    "xiph",
    "gmail",
    "qq",
    "163",
    "126",
    "hotmail",
    "outlook",
    "yahoo",
    "sina",
    "foxmail",
    "sohu",
    "yeah",
    "139",
];

fn weight(source: &str) -> f64 {
    match source {
        "manifest" | "oem_code" | "header" => 5.0,
        "company" | "copyright" | "certificate" => 3.0,
        "email" => 2.0,
        "url" => 1.5,
        _ => 1.0,
    }
}

/// Groups the vendor items of `evidence` by folded name (a one-word name extending a shorter one
/// joins it as an alias) and scores them, best first. Names of
/// open-source projects, standards bodies, certificate authorities and free mail services are
/// left out.
pub fn candidates(evidence: &[Evidence]) -> Vec<Candidate> {
    struct Acc<'e> {
        spellings: BTreeMap<&'e str, usize>,
        aliases: BTreeSet<&'e str>,
        per_source: BTreeMap<&'e str, (usize, BTreeSet<&'e str>)>,
        files: BTreeSet<&'e str>,
        first: (&'e str, u64),
    }
    let items: Vec<(&str, &Evidence)> = evidence
        .iter()
        .filter(|e| e.kind == Kind::Vendor)
        .filter_map(|e| {
            let name = e.detail_str("normalized").filter(|n| !n.is_empty())?;
            let stop = NOT_VENDORS
                .iter()
                .any(|n| name == *n || name.starts_with(&format!("{n} ")));
            (!stop).then_some((name, e))
        })
        .collect();
    // One-word names that extend a shorter one-word name of at least four characters join it
    // (`dahuatech`, `dahuap2p` → `dahua`): vendors prefix their service domains with their name.
    let words: BTreeSet<&str> = items
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !n.contains(' '))
        .collect();
    let group_of = |name: &str| -> String {
        if name.contains(' ') {
            return name.to_owned();
        }
        words
            .iter()
            .filter(|w| w.len() >= 4 && w.len() < name.len() && name.starts_with(**w))
            .min_by_key(|w| w.len())
            .map_or_else(|| name.to_owned(), |w| (*w).to_owned())
    };
    let mut groups: BTreeMap<String, Acc<'_>> = BTreeMap::new();
    for &(name, e) in &items {
        let source = e.detail_str("source").unwrap_or("other");
        let key = group_of(name);
        let own = key == name;
        let acc = groups.entry(key).or_insert_with(|| Acc {
            spellings: BTreeMap::new(),
            aliases: BTreeSet::new(),
            per_source: BTreeMap::new(),
            files: BTreeSet::new(),
            first: (&e.path, e.offset),
        });
        if own {
            *acc.spellings.entry(&e.value).or_insert(0) += 1;
        } else {
            acc.aliases.insert(name);
        }
        let s = acc.per_source.entry(source).or_insert((0, BTreeSet::new()));
        s.0 += 1;
        s.1.insert(&e.path);
        acc.files.insert(&e.path);
    }
    let mut out: Vec<Candidate> = groups
        .into_iter()
        .map(|(name, acc)| {
            let score = acc
                .per_source
                .iter()
                .map(|(src, (_, files))| weight(src) * (1.0 + (files.len() as f64).ln()))
                .sum::<f64>();
            let display = acc
                .spellings
                .iter()
                .max_by_key(|&(s, n)| (*n, std::cmp::Reverse(*s)))
                .map(|(s, _)| (*s).to_owned())
                .unwrap_or_default();
            Candidate {
                display,
                aliases: acc.aliases.iter().map(|a| (*a).to_owned()).collect(),
                name,
                score: (score * 100.0).round() / 100.0,
                sources: acc
                    .per_source
                    .iter()
                    .map(|(s, (n, _))| ((*s).to_owned(), *n))
                    .collect(),
                files: acc.files.len(),
                first: (acc.first.0.to_owned(), acc.first.1),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(data: &[u8]) -> Vec<Evidence> {
        let scan = Scan::new("fw/bin/app", data, &Params::default());
        let mut out = Vec::new();
        Vendor.extract(&scan, &Params::default(), &mut out);
        out
    }

    fn by_source<'e>(ev: &'e [Evidence], source: &str) -> Vec<&'e Evidence> {
        ev.iter()
            .filter(|e| e.detail_str("source") == Some(source))
            .collect()
    }

    #[test]
    fn copyright_holders_keep_company_forms() {
        let ev = run_on(
            b"\0Copyright (C) 2005-2016 Zhejiang Acmevision Technology Co., Ltd. All rights reserved.\0",
        );
        let c = by_source(&ev, "copyright");
        assert_eq!(c.len(), 1, "{ev:#?}");
        assert_eq!(c[0].value, "Zhejiang Acmevision Technology Co., Ltd");
        assert_eq!(c[0].detail_str("normalized"), Some("acmevision"));
        assert_eq!(c[0].offset, 1);
        let co = by_source(&ev, "company");
        assert_eq!(co.len(), 1, "{ev:#?}");
        assert_eq!(co[0].value, "Zhejiang Acmevision Technology Co., Ltd.");
        assert_eq!(co[0].detail_str("normalized"), Some("acmevision"));
    }

    #[test]
    fn copyright_noise_is_not_a_holder() {
        for text in [
            &b"\0copyright notice and this permission\0"[..],
            b"\0Copyright (c) %s\0",
            b"\0xcopyright Foo Bar\0",
        ] {
            assert!(by_source(&run_on(text), "copyright").is_empty(), "{text:?}");
        }
    }

    #[test]
    fn company_phrases() {
        let ev = run_on(b"\0Made by Foocam GmbH in Berlin\0\0Barvision Inc. 2012\0");
        let names: Vec<_> = by_source(&ev, "company")
            .iter()
            .map(|e| e.value.as_str())
            .collect();
        assert_eq!(names, ["Foocam GmbH", "Barvision Inc."]);
    }

    #[test]
    fn url_and_email_domains() {
        let ev = run_on(
            b"\0see http://www.foocam.com.cn/support or www.barcam.de\0\0mail: support@mail.bazvision.com\0",
        );
        let urls: Vec<_> = by_source(&ev, "url")
            .iter()
            .map(|e| e.value.as_str())
            .collect();
        assert_eq!(urls, ["foocam.com.cn", "barcam.de"]);
        let mails = by_source(&ev, "email");
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].value, "bazvision.com");
        assert_eq!(mails[0].detail_str("normalized"), Some("bazvision"));
        assert_eq!(
            mails[0].detail_str("address"),
            Some("support@mail.bazvision.com")
        );
    }

    #[test]
    fn registrable_domains() {
        assert_eq!(
            registrable("a.b.example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(registrable("www.foo.co.uk").as_deref(), Some("foo.co.uk"));
        assert_eq!(registrable("192.168.1.1"), None);
        assert_eq!(registrable("localhost"), None);
        assert_eq!(registrable("a..b"), None);
    }

    #[test]
    fn dahua_style_manifest() {
        let data = b"//IPC_RestoreDefault\n{\n \"Devices\" : [ [ \"IPC-HX3XXX\", \"1.00\" ] ],\n \"Vendor\" : \"General\",\n \"hwid\" : [ \"IPC-HFW4231B:01:02\" ]\n}\n//IPC_RestoreDefault\n";
        let ev = run_on(data);
        let v = by_source(&ev, "manifest");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].value, "General");
        assert_eq!(&data[v[0].offset as usize..][..7], b"General");
        let d = by_source(&ev, "manifest_devices");
        assert_eq!(d[0].value, "IPC-HX3XXX");
        assert_eq!(d[0].kind, Kind::Product);
        let h = by_source(&ev, "hwid");
        assert_eq!(h[0].value, "IPC-HFW4231B");
    }

    #[test]
    fn broken_manifests_yield_nothing() {
        for data in [&b"{\"Vendor\": "[..], b"{", b"//\n//\n", b"{\"Vendor\": 3}"] {
            assert!(by_source(&run_on(data), "manifest").is_empty());
        }
    }

    #[test]
    fn meta_names_and_oem_codes() {
        let mut meta = Meta::new();
        meta.insert("name".into(), "Linux-3.4.35".into());
        meta.insert("oem_code".into(), 7.into());
        meta.insert("device_class".into(), 5.into());
        let mut out = Vec::new();
        from_meta("k.img", Some("uimage"), &meta, &mut out);
        assert_eq!(out.len(), 3);
        let class = out.iter().find(|e| e.kind == Kind::Product).unwrap();
        assert_eq!(class.value, "5");
        out.retain(|e| e.kind != Kind::Product);
        assert_eq!(out[0].kind, Kind::ImageName);
        assert_eq!(out[0].value, "Linux-3.4.35");
        assert_eq!(out[1].kind, Kind::Vendor);
        assert_eq!(out[1].value, "7");
        assert_eq!(out[1].detail_str("source"), Some("oem_code"));
    }

    #[test]
    fn candidates_fold_and_rank() {
        let mut ev = Vec::new();
        for (path, raw, source) in [
            ("a", "Acmevision Co., Ltd", "company"),
            ("b", "ACMEVISION CO.,LTD.", "company"),
            ("c", "acmevision.com", "url"),
            ("d", "Free Software Foundation", "copyright"),
            ("e", "Othercam Inc.", "company"),
            ("f", "acmevisionp2p.com", "url"),
        ] {
            let norm = if source == "url" {
                raw.trim_end_matches(".com").to_owned()
            } else {
                normalize(raw)
            };
            ev.push(vendor(path, 0, raw, source, &norm));
        }
        let c = candidates(&ev);
        assert_eq!(c.len(), 2, "{c:#?}");
        assert_eq!(c[0].name, "acmevision");
        assert_eq!(c[0].aliases, ["acmevisionp2p"]);
        assert_eq!(c[0].display, "ACMEVISION CO.,LTD.");
        assert_eq!(c[0].files, 4);
        assert_eq!(c[0].sources["company"], 2);
        assert_eq!(c[0].sources["url"], 2);
        // company: 3 × (1 + ln 2); url: 1.5 × (1 + ln 2).
        let expected = 3.0 * (1.0 + 2f64.ln()) + 1.5 * (1.0 + 2f64.ln());
        assert!((c[0].score - expected).abs() < 0.01, "{}", c[0].score);
        assert_eq!(c[1].name, "othercam");
    }
}
