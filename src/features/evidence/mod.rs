//! Evidence that survives a rebrand — vendor names, build environment, keys and certificates,
//! platform — each item carrying the file and byte offset it came from. One module per kind of
//! evidence, all listed once in [`EXTRACTORS`]; [`extract`] runs them on one file, [`extract_tree`]
//! on every unique file of an unpacked tree.

pub mod build;
pub mod crypto;
pub mod platform;
pub mod scan;
pub mod vendor;

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::unpack::{EntryKind, GapKind, Meta, Tree};

pub use scan::Scan;

/// What an evidence item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A vendor or brand candidate (copyright holder, company name, web or e-mail domain, a
    /// manifest's `Vendor` field, an OEM code); `detail.source` says which, `detail.normalized`
    /// is the folded name used to group candidates.
    Vendor,
    /// A product or device-class name stated by a manifest (Dahua `Devices`, `hwid` models).
    Product,
    /// The name field of a uImage header (`kernel`, `Linux-3.4.35`, `romfs` …).
    ImageName,
    /// A path of the machine the firmware was built on (`/home/<user>/…`, `/opt/…`, `C:\…`).
    BuildPath,
    /// The user name in a build path or a kernel banner.
    BuildUser,
    /// `user@host` of a kernel build, from its version banner.
    BuildHost,
    /// The build date of a kernel, from its version banner.
    BuildDate,
    /// A toolchain or SDK: `GCC: (…) 4.9.4`, a target triplet, Buildroot, OpenWrt, crosstool-NG.
    Toolchain,
    /// An X.509 certificate (subject, issuer, validity, serial, SPKI SHA-256 in `detail`).
    Certificate,
    /// A public key; `value` is the SHA-256 of its public part (SPKI DER or OpenSSH blob).
    PublicKey,
    /// A private key (flagged; the secret is never recorded). `value` is the SHA-256 of its
    /// public part where the key holds it, else the key type.
    PrivateKey,
    /// A password hash from a passwd/shadow-format line (`detail`: user and scheme).
    PasswordHash,
    /// A flattened device tree (`value`: model or first compatible; `detail`: compatibles, nodes).
    DeviceTree,
    /// A Linux kernel version banner (`value`: the release, `detail.banner`: the whole line).
    KernelVersion,
    /// An embedded kernel configuration (IKCONFIG): `value` is the SHA-256 of the config text.
    KernelConfig,
    /// A U-Boot version banner (`value`: the version, `detail.date` where present).
    Bootloader,
    /// A system-on-chip family or vendor named by a file name, a string or a device tree.
    Soc,
}

impl Kind {
    /// The name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vendor => "vendor",
            Kind::Product => "product",
            Kind::ImageName => "image_name",
            Kind::BuildPath => "build_path",
            Kind::BuildUser => "build_user",
            Kind::BuildHost => "build_host",
            Kind::BuildDate => "build_date",
            Kind::Toolchain => "toolchain",
            Kind::Certificate => "certificate",
            Kind::PublicKey => "public_key",
            Kind::PrivateKey => "private_key",
            Kind::PasswordHash => "password_hash",
            Kind::DeviceTree => "device_tree",
            Kind::KernelVersion => "kernel_version",
            Kind::KernelConfig => "kernel_config",
            Kind::Bootloader => "bootloader",
            Kind::Soc => "soc",
        }
    }
}

/// One piece of evidence and where it was found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// What it is.
    pub kind: Kind,
    /// The value compared across images (a name, a path, a fingerprint …).
    pub value: String,
    /// Kind-specific facts (always a JSON object; `source` names the rule that found it).
    pub detail: serde_json::Value,
    /// Path of the file it came from (the unpacked tree's path).
    pub path: String,
    /// Byte offset inside that file.
    pub offset: u64,
}

impl Evidence {
    /// A new item.
    pub fn new(
        kind: Kind,
        value: impl Into<String>,
        detail: serde_json::Value,
        path: &str,
        offset: u64,
    ) -> Self {
        Self {
            kind,
            value: value.into(),
            detail,
            path: path.to_owned(),
            offset,
        }
    }

    /// A string field of `detail`, if present.
    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.detail.get(key).and_then(serde_json::Value::as_str)
    }
}

/// Extraction parameters (recorded in a fingerprint so that a stale one is recomputed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Shortest printable run considered as text.
    pub min_string_len: usize,
    /// Longest value kept (longer ones are cut at a character boundary).
    pub max_value_len: usize,
    /// Most items kept per file and kind (a file listing ten thousand paths is one fact).
    pub max_items_per_kind: usize,
    /// Largest embedded kernel configuration inflated, in bytes.
    pub max_config_bytes: u64,
    /// Largest file read as a JSON manifest, in bytes.
    pub max_manifest_bytes: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            min_string_len: 6,
            max_value_len: 512,
            max_items_per_kind: 256,
            max_config_bytes: 4 << 20,
            max_manifest_bytes: 1 << 20,
        }
    }
}

/// One kind of evidence extractor: reads a prepared [`Scan`] of one file and appends items.
pub trait EvidenceExtractor: Sync {
    /// Short name (for reports and benchmarks).
    fn name(&self) -> &'static str;
    /// Appends what this extractor finds in `scan`.
    fn extract(&self, scan: &Scan<'_>, params: &Params, out: &mut Vec<Evidence>);
}

/// Every extractor, in the order they run.
pub const EXTRACTORS: &[&dyn EvidenceExtractor] = &[
    &vendor::Vendor,
    &build::Build,
    &crypto::Crypto,
    &platform::Platform,
];

/// Runs every extractor on one file. Items are de-duplicated per (kind, value, source) — the
/// first offset is kept and `detail.occurrences` counts the rest — capped per kind, and sorted by
/// offset.
pub fn extract(path: &str, bytes: &[u8], params: &Params) -> Vec<Evidence> {
    extract_within(path, bytes, std::slice::from_ref(&(0..bytes.len())), params)
}

/// [`extract`] with triggers looked for only in `ranges` of `bytes` (see [`Scan::within`]).
pub fn extract_within(
    path: &str,
    bytes: &[u8],
    ranges: &[Range<usize>],
    params: &Params,
) -> Vec<Evidence> {
    let scan = Scan::within(path, bytes, ranges, params);
    let mut out = Vec::new();
    for x in EXTRACTORS {
        x.extract(&scan, params, &mut out);
    }
    finish_file(out, params)
}

/// Evidence stated by a container's header rather than by bytes: the uImage name (`format` is
/// `uimage`, key `name`), a Hikvision `oem_code` and `device_class`. `meta` is a node's
/// `format_meta`.
pub fn extract_meta(path: &str, format: Option<&str>, meta: &Meta) -> Vec<Evidence> {
    let mut out = Vec::new();
    vendor::from_meta(path, format, meta, &mut out);
    out
}

/// Runs [`extract`] on every unique file of `tree` (identical contents are read once, under the
/// first path in depth-first order) in parallel — for a container, only over the opaque stretches
/// none of its entries claimed — adds [`extract_meta`] for every node, and drops an item from a
/// container when an entry inside it yields the same (kind, value): the entry's path and offset
/// say more. Sorted by path, offset, kind and value.
pub fn extract_tree(tree: &Tree, params: &Params) -> Vec<Evidence> {
    extract_tree_with(tree, params, HashMap::new())
}

/// [`extract_tree`], with the evidence of some files already found while the image was being
/// unpacked: by SHA-256, the path it was found under and what [`extract_within`] returned over the
/// whole file. Used for a file nothing was unpacked from whose first path is that path; any other
/// file is read here.
pub fn extract_tree_with(
    tree: &Tree,
    params: &Params,
    mut found: HashMap<[u8; 32], (String, Vec<Evidence>)>,
) -> Vec<Evidence> {
    let order = tree.dfs();
    let mut early: Vec<(usize, Evidence)> = Vec::new();
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    let mut work = Vec::new();
    for &id in &order {
        let Some(node) = tree.get(id) else { continue };
        if node.kind != EntryKind::File || node.data.is_empty() || node.same_as.is_some() {
            continue;
        }
        if let Some(sha) = node.sha256
            && !seen.insert(sha)
        {
            continue;
        }
        // A container's entries are read on their own: of its own bytes, only the stretches
        // no entry claimed (headers, a FIT's device tree, trailing data) are searched.
        let ranges: Vec<Range<usize>> = if node.children.is_empty() {
            if let Some(sha) = node.sha256
                && let Some((path, items)) = found.remove(&sha)
                && path.as_bytes() == &node.path[..]
            {
                early.extend(items.into_iter().map(|e| (id, e)));
                continue;
            }
            let whole = 0..node.data.len();
            vec![whole]
        } else {
            node.gaps
                .iter()
                .filter(|g| g.kind == GapKind::Opaque)
                .filter_map(|g| {
                    let start = usize::try_from(g.offset).ok()?;
                    let end = start.checked_add(usize::try_from(g.len).ok()?)?;
                    Some(start..end.min(node.data.len()))
                })
                .collect()
        };
        work.push((id, ranges));
    }
    let mut items: Vec<(usize, Evidence)> = work
        .par_iter()
        .flat_map_iter(|(id, ranges)| {
            let id = *id;
            let found = tree.get(id).map(|node| {
                let path = String::from_utf8_lossy(&node.path);
                extract_within(&path, &node.data, ranges, params)
            });
            found.unwrap_or_default().into_iter().map(move |e| (id, e))
        })
        .collect();
    items.extend(early);
    for &id in &order {
        let Some(node) = tree.get(id) else { continue };
        let path = String::from_utf8_lossy(&node.path);
        items.extend(
            extract_meta(&path, node.format, &node.format_meta)
                .into_iter()
                .map(|e| (id, e)),
        );
    }
    // A uImage name comes from both the header bytes and the node's metadata: keep one.
    let mut seen_items: HashSet<(usize, Kind, String, String)> = HashSet::new();
    items.retain(|(id, e)| {
        seen_items.insert((
            *id,
            e.kind,
            e.value.clone(),
            e.detail_str("source").unwrap_or_default().to_owned(),
        ))
    });
    let items = drop_container_echoes(tree, items);
    let mut out: Vec<Evidence> = items.into_iter().map(|(_, e)| e).collect();
    out.sort_by(|a, b| {
        (&a.path, a.offset, a.kind, &a.value).cmp(&(&b.path, b.offset, b.kind, &b.value))
    });
    out
}

/// Drops items of a node when one of its descendants yields the same (kind, value).
fn drop_container_echoes(tree: &Tree, items: Vec<(usize, Evidence)>) -> Vec<(usize, Evidence)> {
    let mut shadowed: HashSet<(usize, Kind, &str)> = HashSet::new();
    for (id, e) in &items {
        let mut cur = tree.get(*id).and_then(|n| n.parent);
        let mut steps = 0usize;
        while let Some(p) = cur {
            if !shadowed.insert((p, e.kind, e.value.as_str())) || steps > tree.nodes().len() {
                break;
            }
            steps += 1;
            cur = tree.get(p).and_then(|n| n.parent);
        }
    }
    let keep: Vec<bool> = items
        .iter()
        .map(|(id, e)| !shadowed.contains(&(*id, e.kind, e.value.as_str())))
        .collect();
    items
        .into_iter()
        .zip(keep)
        .filter_map(|(item, k)| k.then_some(item))
        .collect()
}

/// Per-file clean-up: one item per (kind, value, source) with an occurrence count, at most
/// `max_items_per_kind` per kind, sorted by offset.
fn finish_file(items: Vec<Evidence>, params: &Params) -> Vec<Evidence> {
    let mut index: HashMap<(Kind, String, String), usize> = HashMap::new();
    let mut per_kind: HashMap<Kind, usize> = HashMap::new();
    let mut out: Vec<Evidence> = Vec::new();
    for mut e in items {
        e.value = clip(&e.value, params.max_value_len);
        let key = (
            e.kind,
            e.value.clone(),
            e.detail_str("source").unwrap_or_default().to_owned(),
        );
        if let Some(&i) = index.get(&key) {
            if let Some(first) = out.get_mut(i) {
                bump_occurrences(first, e.offset);
            }
            continue;
        }
        let n = per_kind.entry(e.kind).or_insert(0);
        if *n >= params.max_items_per_kind {
            continue;
        }
        *n += 1;
        index.insert(key, out.len());
        out.push(e);
    }
    out.sort_by(|a, b| (a.offset, a.kind, &a.value).cmp(&(b.offset, b.kind, &b.value)));
    out
}

fn bump_occurrences(first: &mut Evidence, offset: u64) {
    if offset < first.offset {
        first.offset = offset;
    }
    if let Some(obj) = first.detail.as_object_mut() {
        let n = obj
            .get("occurrences")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1);
        obj.insert("occurrences".into(), (n + 1).into());
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_in_one_file_are_counted_once() {
        let data = b"\0Copyright (c) 2016 Acme Vision Co., Ltd.\0\0Copyright (c) 2016 Acme Vision Co., Ltd.\0";
        let ev = extract("f", data, &Params::default());
        let copyright: Vec<_> = ev
            .iter()
            .filter(|e| e.kind == Kind::Vendor && e.detail_str("source") == Some("copyright"))
            .collect();
        assert_eq!(copyright.len(), 1, "{ev:#?}");
        assert_eq!(copyright[0].offset, 1);
        assert_eq!(copyright[0].detail["occurrences"], 2);
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("abcdé", 5), "abcd");
        assert_eq!(clip("abc", 5), "abc");
    }
}
