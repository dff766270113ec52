//! An analyst's summary of one image, from its unpacked tree and fingerprint: partitions and
//! formats, coverage, files by class, architectures, platform guess, vendor candidates, open-source
//! components with versions, build environment, keys and certificates, and the largest binaries
//! no open-source component explains. `fwsim inspect` prints it as text or JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::features::evidence::{Evidence, Kind, platform, vendor};
use crate::fingerprint::{Coverage, Fingerprint, ImageInfo};
use crate::unpack::Tree;

/// Containers listed at most (in tree order).
const MAX_CONTAINERS: usize = 64;

/// Compression streams: listed only where they wrap a partition or image, not when carving finds
/// them inside a file of a filesystem or archive (the zlib streams of every PNG, say).
const STREAMS: &[&str] = &["gzip", "zlib", "lzma", "xz", "bzip2", "zstd", "lz4", "lzop"];

/// Whether an ancestor of `n` is a filesystem or archive that names its entries.
fn inside_filesystem(tree: &Tree, n: &crate::unpack::Node) -> bool {
    let mut cur = n.parent.and_then(|p| tree.get(p));
    let mut steps = 0u32;
    while let Some(a) = cur {
        if a.format.is_some_and(|f| {
            !STREAMS.contains(&f) && !matches!(f, "carve" | "uimage" | "zimage" | "arm64_image")
        }) && a.parent.is_some()
        {
            return true;
        }
        steps += 1;
        if steps > 4096 {
            break;
        }
        cur = a.parent.and_then(|p| tree.get(p));
    }
    false
}

/// One container found in the image (a partition, archive, filesystem or stream).
#[derive(Clone, Debug, Serialize)]
pub struct Container {
    /// Its path in the tree.
    pub path: String,
    /// The format it was unpacked as.
    pub format: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its entries.
    pub entries: usize,
    /// Why it could not be (fully) unpacked, if so.
    pub error: Option<String>,
}

/// An open-source component and the versions seen.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentSummary {
    /// Component name.
    pub component: String,
    /// Versions seen (sorted).
    pub versions: Vec<String>,
    /// Files it was recognised in.
    pub files: usize,
}

/// A binary no open-source component explains: the vendor's own code, most likely.
#[derive(Clone, Debug, Serialize)]
pub struct VendorBinary {
    /// First path it occurs at.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// ELF machine.
    pub machine: String,
    /// SHA-256 (hex).
    pub sha256: String,
}

/// What `fwsim inspect` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The image.
    pub image: ImageInfo,
    /// Containers in tree order (at most 64).
    pub containers: Vec<Container>,
    /// How much of the image was unpacked and identified.
    pub coverage: Coverage,
    /// Unique files per content class.
    pub classes: BTreeMap<String, usize>,
    /// ELF files per "machine class endianness".
    pub architectures: BTreeMap<String, usize>,
    /// The SoC platform guess, with its supporting items.
    pub platform: Option<platform::PlatformGuess>,
    /// Vendor candidates, best first.
    pub vendors: Vec<vendor::Candidate>,
    /// Products or device classes stated by manifests.
    pub products: Vec<String>,
    /// Open-source components and their versions.
    pub components: Vec<ComponentSummary>,
    /// Build paths, users, hosts, dates and toolchains (distinct values per kind).
    pub build: BTreeMap<String, Vec<String>>,
    /// Certificates, public and private keys and password hashes, as extracted.
    pub crypto: Vec<Evidence>,
    /// Kernel, bootloader and device-tree facts.
    pub system: Vec<Evidence>,
    /// The largest ELF files no open-source component explains.
    pub vendor_binaries: Vec<VendorBinary>,
}

/// Summarises `tree` and its fingerprint `fp`, keeping `top` items in the ranked lists.
pub fn summarize(tree: &Tree, fp: &Fingerprint, top: usize) -> Summary {
    let containers = tree
        .dfs()
        .into_iter()
        .filter_map(|id| tree.get(id))
        .filter(|n| !n.children.is_empty() && n.format.is_some_and(|f| f != "carve"))
        .filter(|n| !(n.format.is_some_and(|f| STREAMS.contains(&f)) && inside_filesystem(tree, n)))
        .take(MAX_CONTAINERS)
        .map(|n| Container {
            path: String::from_utf8_lossy(&n.path).into_owned(),
            format: n.format.unwrap_or_default().to_owned(),
            size: n.data.len() as u64,
            entries: n.children.len(),
            error: n.error.as_ref().map(ToString::to_string),
        })
        .collect();

    let mut classes = BTreeMap::new();
    let mut architectures = BTreeMap::new();
    let mut components: BTreeMap<String, (BTreeSet<String>, usize)> = BTreeMap::new();
    let mut vendor_binaries = Vec::new();
    for f in fp.files.iter().filter(|f| !f.unpacked) {
        let class = serde_json::to_value(f.class)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *classes.entry(class).or_insert(0usize) += 1;
        let mut seen = BTreeSet::new();
        for c in &f.components {
            let entry = components.entry(c.component.clone()).or_default();
            if let Some(v) = &c.version {
                entry.0.insert(v.clone());
            }
            if seen.insert(c.component.clone()) {
                entry.1 += 1;
            }
        }
        if let Some(elf) = &f.elf {
            let arch = format!("{} {} {}", elf.machine, elf.class, elf.endianness);
            *architectures.entry(arch).or_insert(0usize) += 1;
            if f.components.is_empty() {
                vendor_binaries.push(VendorBinary {
                    path: f.paths.first().cloned().unwrap_or_default(),
                    size: f.size,
                    machine: elf.machine.clone(),
                    sha256: f.sha256.clone(),
                });
            }
        }
    }
    vendor_binaries.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    vendor_binaries.truncate(top);

    let ev = &fp.evidence;
    let of = |kinds: &[Kind]| -> Vec<Evidence> {
        ev.iter()
            .filter(|e| kinds.contains(&e.kind))
            .cloned()
            .collect()
    };
    let mut build: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in ev.iter().filter(|e| {
        matches!(
            e.kind,
            Kind::BuildPath | Kind::BuildUser | Kind::BuildHost | Kind::BuildDate | Kind::Toolchain
        )
    }) {
        let values = build.entry(e.kind.as_str().to_owned()).or_default();
        if !values.contains(&e.value) && values.len() < top.max(1) {
            values.push(e.value.clone());
        }
    }
    let products: BTreeSet<String> = ev
        .iter()
        .filter(|e| e.kind == Kind::Product)
        .map(|e| e.value.clone())
        .collect();
    let mut vendors = vendor::candidates(ev);
    vendors.truncate(top);

    Summary {
        image: fp.image.clone(),
        containers,
        coverage: fp.coverage.clone(),
        classes,
        architectures,
        platform: platform::guess(ev),
        vendors,
        products: products.into_iter().take(top.max(1) * 4).collect(),
        components: components
            .into_iter()
            .map(|(component, (versions, files))| ComponentSummary {
                component,
                versions: versions.into_iter().collect(),
                files,
            })
            .collect(),
        build,
        crypto: of(&[
            Kind::Certificate,
            Kind::PublicKey,
            Kind::PrivateKey,
            Kind::PasswordHash,
        ]),
        system: of(&[
            Kind::KernelVersion,
            Kind::KernelConfig,
            Kind::Bootloader,
            Kind::DeviceTree,
        ]),
        vendor_binaries,
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

fn evidence_line(f: &mut fmt::Formatter<'_>, e: &Evidence) -> fmt::Result {
    writeln!(
        f,
        "  {:<13} {}  ({} @ {:#x})",
        e.kind.as_str(),
        e.value,
        e.path,
        e.offset
    )
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.coverage;
        writeln!(
            f,
            "{}  {} bytes  sha256 {}",
            self.image.name, self.image.size, self.image.sha256
        )?;
        writeln!(
            f,
            "coverage: {:.1} % identified, {:.1} % padding, {:.1} % opaque ({} opaque stretches, {} unpack errors)",
            c.identified_share * 100.0,
            c.padding_share * 100.0,
            c.opaque_share * 100.0,
            c.opaque_count,
            c.error_count
        )?;
        writeln!(f, "\ncontainers:")?;
        for k in &self.containers {
            write!(
                f,
                "  {:<10} {:>9.2} MiB {:>6} entries  {}",
                k.format,
                mib(k.size),
                k.entries,
                k.path
            )?;
            match &k.error {
                Some(e) => writeln!(f, "  [{e}]")?,
                None => writeln!(f)?,
            }
        }
        let counts = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "\nfiles by class: {}", counts(&self.classes))?;
        writeln!(f, "architectures: {}", counts(&self.architectures))?;
        match &self.platform {
            Some(p) => writeln!(
                f,
                "platform: {}{} (confidence {:.2}; {} supporting items)",
                p.vendor,
                p.family
                    .as_ref()
                    .map(|x| format!(" {x}"))
                    .unwrap_or_default(),
                p.confidence,
                p.evidence.len()
            )?,
            None => writeln!(f, "platform: no SoC evidence")?,
        }
        writeln!(f, "\nvendor candidates:")?;
        for v in &self.vendors {
            let sources = v
                .sources
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            writeln!(
                f,
                "  {:<24} score {:>6.1}  in {} files  ({sources})",
                v.display, v.score, v.files
            )?;
        }
        if !self.products.is_empty() {
            writeln!(f, "products: {}", self.products.join(", "))?;
        }
        writeln!(f, "\nopen-source components:")?;
        for k in &self.components {
            writeln!(
                f,
                "  {:<16} {:<24} in {} files",
                k.component,
                k.versions.join(" "),
                k.files
            )?;
        }
        writeln!(f, "\nbuild environment:")?;
        for (kind, values) in &self.build {
            for v in values {
                writeln!(f, "  {kind:<10} {v}")?;
            }
        }
        writeln!(f, "\nkernel, bootloader, device tree:")?;
        for e in &self.system {
            evidence_line(f, e)?;
        }
        writeln!(f, "\nkeys, certificates, password hashes:")?;
        for e in &self.crypto {
            evidence_line(f, e)?;
        }
        writeln!(f, "\nlargest binaries no open-source component explains:")?;
        for b in &self.vendor_binaries {
            writeln!(f, "  {:>9.2} MiB  {:<8} {}", mib(b.size), b.machine, b.path)?;
        }
        Ok(())
    }
}
