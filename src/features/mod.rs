//! Features of an unpacked tree's files (class, ELF anatomy, strings, components, evidence that
//! survives a rebrand), one module each; the drivers [`fingerprint`] (unique files in parallel,
//! coverage) and [`unpack_and_fingerprint`] (each file's features started while unpacking).

pub mod class;
pub mod components;
pub mod elf;
pub mod evidence;
pub mod strings;

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::fingerprint::{
    Coverage, FileDigests, FileFeatures, Fingerprint, ImageInfo, NodeError, OpaqueStretch, Params,
    SCHEMA_VERSION,
};
use crate::hash;
use crate::unpack::{self, Analysis, EntryKind, GapKind, Limits, Node, Progress, Tree};
use class::ContentClass;
use components::ComponentMatch;

/// Extraction parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureParams {
    /// Minimum length of a string (ASCII characters or UTF-16 code units).
    pub string_min_len: usize,
    /// Most strings read from one file.
    pub max_strings: usize,
    /// ELF sections below this many bytes get only a SHA-256.
    pub section_floor: u64,
    /// Most imported (and exported) symbol names kept per ELF file.
    pub max_symbols: usize,
    /// Parameters of the evidence extractors.
    pub evidence: evidence::Params,
}

impl Default for FeatureParams {
    fn default() -> Self {
        Self {
            string_min_len: 6,
            max_strings: 1_000_000,
            section_floor: 512,
            max_symbols: 100_000,
            evidence: evidence::Params::default(),
        }
    }
}

impl FeatureParams {
    /// The parameters as a fingerprint records them.
    pub fn recorded(&self) -> Params {
        Params {
            string_min_len: self.string_min_len,
            max_strings: self.max_strings,
            section_floor: self.section_floor,
            identifier_recipe: elf::IDENTIFIER_RECIPE.to_owned(),
            evidence: self.evidence.clone(),
        }
    }

    fn elf(&self) -> elf::ElfParams {
        elf::ElfParams {
            section_floor: self.section_floor,
            string_min_len: self.string_min_len,
            max_symbols: self.max_symbols,
            max_strings: self.max_strings,
        }
    }
}

/// Opaque stretches listed in a fingerprint (the largest); the rest are counted.
const MAX_OPAQUE_LISTED: usize = 100;
/// Unpack errors listed in a fingerprint; the rest are counted.
const MAX_ERRORS_LISTED: usize = 100;

/// Formats whose output is one anonymous stream or payload rather than named entries: a file
/// they produce is "identified" only if its content class is known.
const STREAM_FORMATS: &[&str] = &[
    "gzip", "bzip2", "xz", "lzma", "zstd", "lz4", "lzop", "zlib", "uimage", "carve",
];

/// One unique file: its bytes, every node holding them, and whether it sits in a kernel uImage.
struct Unique<'t> {
    sha256: [u8; 32],
    node: &'t Node,
    paths: Vec<String>,
    in_kernel_image: bool,
    /// Its bytes were unpacked as an archive, filesystem, stream or payload wrapper.
    container: bool,
}

/// The fingerprint of an unpacked image: features of every unique file (files nothing was
/// unpacked from), computed in parallel, and the image's coverage.
pub fn fingerprint(tree: &Tree, params: &FeatureParams) -> Fingerprint {
    fingerprint_with(tree, params, HashMap::new(), HashMap::new())
}

/// Unpacks `data` (named `name`) within `limits` and fingerprints it, exactly as [`unpack()`]
/// then [`fingerprint`] would, but faster: each file's content features (and, for a file nothing
/// is unpacked from, its evidence) are computed as soon as the unpacker has analysed it, on the
/// same thread pool, while the rest of the image is still being unpacked. `progress` is called after each level of unpacking.
///
/// [`unpack()`]: crate::unpack::unpack
pub fn unpack_and_fingerprint(
    data: Bytes,
    name: &[u8],
    limits: &Limits,
    params: &FeatureParams,
    progress: &(dyn Fn(Progress) + Sync),
) -> (Tree, Fingerprint) {
    let elf_params = params.elf();
    let done: Mutex<HashMap<[u8; 32], Content>> = Mutex::new(HashMap::new());
    let found: Mutex<EarlyEvidence> = Mutex::new(HashMap::new());
    let tree = rayon::scope(|scope| {
        let analysed = |tree: &Tree, id: usize, sha: &[u8; 32], a: &Analysis| {
            let Some(node) = tree.get(id).filter(|n| wants_content(tree, n, a)) else {
                return;
            };
            let (data, sha, elf_params, done) = (node.data.clone(), *sha, &elf_params, &done);
            // A file nothing will be unpacked from is searched for evidence whole: do it now too.
            let whole = unpacks_nothing(a).then(|| (lossy(&node.path), &found));
            scope.spawn(move |_| {
                let c = content(&data, params, elf_params);
                if let Ok(mut map) = done.lock() {
                    map.insert(sha, c);
                }
                if let Some((path, found)) = whole {
                    let items = evidence::extract_within(
                        &path,
                        &data,
                        std::slice::from_ref(&(0..data.len())),
                        &params.evidence,
                    );
                    if let Ok(mut map) = found.lock() {
                        map.insert(sha, (path, items));
                    }
                }
            });
        };
        unpack::unpack_observed(data, name, limits, progress, &analysed)
    });
    let done = done.into_inner().unwrap_or_default();
    let found = found.into_inner().unwrap_or_default();
    let fp = fingerprint_with(&tree, params, done, found);
    (tree, fp)
}

/// Whether a blob just analysed as `a` will be a unique file of the fingerprint that is not a
/// container (so that its content features are wanted): nothing unpacked from it, or an entry a
/// container names whose inner structures were only carved.
fn wants_content(tree: &Tree, n: &Node, a: &Analysis) -> bool {
    if n.kind != EntryKind::File || n.data.is_empty() {
        return false;
    }
    match a {
        Analysis::Leaf { .. } => true,
        Analysis::Whole { result: Ok(u), .. } => u.children.is_empty(),
        Analysis::Whole { result: Err(_), .. } => true,
        Analysis::Carved { regions, .. } => regions.is_empty() || named_entry(tree, n),
    }
}

/// Evidence found while unpacking, by SHA-256: the path it was found under and the items.
type EarlyEvidence = HashMap<[u8; 32], (String, Vec<evidence::Evidence>)>;

/// Whether a blob analysed as `a` gets no entries (so the evidence scan reads all of it).
fn unpacks_nothing(a: &Analysis) -> bool {
    match a {
        Analysis::Leaf { .. } | Analysis::Whole { result: Err(_), .. } => true,
        Analysis::Whole { result: Ok(u), .. } => u.children.is_empty(),
        Analysis::Carved { regions, .. } => regions.is_empty(),
    }
}

/// [`fingerprint`], with the content features and the evidence of some files already computed
/// (by SHA-256).
fn fingerprint_with(
    tree: &Tree,
    params: &FeatureParams,
    mut done: HashMap<[u8; 32], Content>,
    found: EarlyEvidence,
) -> Fingerprint {
    let uniques = unique_files(tree);
    let elf_params = params.elf();
    let work: Vec<(&Unique<'_>, Option<Content>)> = uniques
        .iter()
        .map(|u| (u, (!u.container).then(|| done.remove(&u.sha256)).flatten()))
        .collect();
    let (files, evidence): (Vec<FileFeatures>, _) = rayon::join(
        || features_largest_first(work, params, &elf_params),
        || evidence::extract_tree_with(tree, &params.evidence, found),
    );
    // Files whose content is recognised: a known class or a known component.
    let known: HashMap<&str, bool> = files
        .iter()
        .map(|f| {
            let known = f.class != ContentClass::Other || !f.components.is_empty();
            (f.sha256.as_str(), known)
        })
        .collect();
    let coverage = coverage(tree, &known);
    let image = tree.root().map_or_else(
        || ImageInfo {
            name: String::new(),
            size: 0,
            sha256: hex::encode(Sha256::digest(b"")),
        },
        |r| ImageInfo {
            name: lossy(&r.path),
            size: r.data.len() as u64,
            sha256: hex::encode(r.sha256.unwrap_or_else(|| Sha256::digest(&r.data).into())),
        },
    );
    Fingerprint {
        schema_version: SCHEMA_VERSION,
        params: params.recorded(),
        image,
        coverage,
        files,
        evidence,
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The files of an image, grouped by SHA-256, in depth-first order of first occurrence: every
/// entry an archive or filesystem names (a PNG or an ELF file stays one file even when carving
/// finds a stream inside it), and every blob nothing was unpacked from.
fn unique_files(tree: &Tree) -> Vec<Unique<'_>> {
    let order = tree.dfs();
    let leaves: Vec<usize> = order
        .into_iter()
        .filter(|&id| {
            tree.get(id).is_some_and(|n| {
                n.kind == EntryKind::File
                    && !n.data.is_empty()
                    && (n.children.is_empty() || named_entry(tree, n))
            })
        })
        .collect();
    // Files whose entry failed were never hashed by the engine.
    let hashes: Vec<[u8; 32]> = leaves
        .par_iter()
        .map(|&id| match tree.get(id) {
            Some(n) => n.sha256.unwrap_or_else(|| Sha256::digest(&n.data).into()),
            None => [0; 32],
        })
        .collect();
    let mut index: HashMap<[u8; 32], usize> = HashMap::new();
    let mut out: Vec<Unique<'_>> = Vec::new();
    for (&id, h) in leaves.iter().zip(hashes) {
        let Some(node) = tree.get(id) else { continue };
        let in_kernel = in_kernel_image(tree, node);
        match index.get(&h).and_then(|&i| out.get_mut(i)) {
            Some(u) => {
                u.paths.push(lossy(&node.path));
                u.in_kernel_image |= in_kernel;
            }
            None => {
                index.insert(h, out.len());
                out.push(Unique {
                    sha256: h,
                    node,
                    paths: vec![lossy(&node.path)],
                    in_kernel_image: in_kernel,
                    container: !node.children.is_empty()
                        && node.format.is_some_and(|f| f != "carve"),
                });
            }
        }
    }
    out
}

/// Whether a container named this entry (its parent is an archive or filesystem, not a stream,
/// a payload wrapper or a carved region).
fn named_entry(tree: &Tree, n: &Node) -> bool {
    n.parent
        .and_then(|p| tree.get(p))
        .and_then(|p| p.format)
        .is_some_and(|f| !STREAM_FORMATS.contains(&f))
}

/// Whether an ancestor is a uImage of type kernel.
fn in_kernel_image(tree: &Tree, node: &Node) -> bool {
    let mut cur = node.parent.and_then(|p| tree.get(p));
    let mut steps = 0u32;
    while let Some(n) = cur {
        if n.format == Some("uimage")
            && n.format_meta.get("type").and_then(|v| v.as_str()) == Some("kernel")
        {
            return true;
        }
        steps += 1;
        if steps > 1024 {
            break;
        }
        cur = n.parent.and_then(|p| tree.get(p));
    }
    false
}

/// [`file_features`] of every unique file, in order, computing the missing content features of
/// the largest files first so that both cores stay busy to the end.
fn features_largest_first(
    work: Vec<(&Unique<'_>, Option<Content>)>,
    params: &FeatureParams,
    elf_params: &elf::ElfParams,
) -> Vec<FileFeatures> {
    let mut order: Vec<usize> = (0..work.len()).collect();
    order.sort_by_key(|&i| {
        work.get(i)
            .map_or(0, |(u, c)| if c.is_some() { 0 } else { u.node.data.len() })
    });
    order.reverse();
    let mut slots: Vec<Option<(&Unique<'_>, Option<Content>)>> =
        work.into_iter().map(Some).collect();
    let jobs: Vec<(usize, &Unique<'_>, Option<Content>)> = order
        .iter()
        .filter_map(|&i| {
            let (u, c) = slots.get_mut(i)?.take()?;
            Some((i, u, c))
        })
        .collect();
    let mut out: Vec<(usize, FileFeatures)> = jobs
        .into_par_iter()
        .with_max_len(1)
        .map(|(i, u, c)| (i, file_features(u, c, params, elf_params)))
        .collect();
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, f)| f).collect()
}

/// What a file's bytes alone determine: computed once per SHA-256, possibly while the image is
/// still being unpacked ([`unpack_and_fingerprint`]).
struct Content {
    digests: FileDigests,
    strings: usize,
    /// Components recognised from the strings (the path's are added per file).
    components: Vec<ComponentMatch>,
    elf: Option<elf::ElfFeatures>,
}

fn content(data: &[u8], params: &FeatureParams, elf_params: &elf::ElfParams) -> Content {
    let (elf, sections) = if data.starts_with(b"\x7fELF") {
        let (f, sections) = elf::extract_with_tlsh(data, elf_params);
        (Some(f), sections)
    } else {
        (None, Vec::new())
    };
    let digests = fuzzy_digests(data, &sections);
    let strings = strings::extract(data, params.string_min_len, params.max_strings);
    Content {
        digests,
        strings: strings.runs.len(),
        components: components::detect_content(&strings.runs),
        elf,
    }
}

fn file_features(
    u: &Unique<'_>,
    done: Option<Content>,
    params: &FeatureParams,
    elf_params: &elf::ElfParams,
) -> FileFeatures {
    let data = &u.node.data[..];
    let name = &u.node.path[..];
    let mut class = class::classify(data, name);
    if class == ContentClass::Other && u.in_kernel_image {
        class = ContentClass::KernelImage;
    }
    let mut f = FileFeatures {
        sha256: hex::encode(u.sha256),
        size: data.len() as u64,
        paths: u.paths.clone(),
        class,
        digests: FileDigests {
            ssdeep: None,
            tlsh: None,
        },
        strings: 0,
        unpacked: u.container,
        elf: None,
        components: Vec::new(),
    };
    if u.container {
        // A filesystem or archive image: its entries are files of their own, and fuzzy digests
        // or strings of compressed container bytes say nothing the entries do not.
        return f;
    }
    let c = done.unwrap_or_else(|| content(data, params, elf_params));
    f.digests = c.digests;
    f.strings = c.strings;
    f.components = components::with_name(c.components, name);
    f.elf = c.elf;
    f
}

/// ssdeep and TLSH in one pass (the SHA-256 is already known from unpacking). The TLSH bucket
/// counts of `sections` (an ELF file's section digests) are reused, not counted again.
fn fuzzy_digests(data: &[u8], sections: &elf::SectionTlsh) -> FileDigests {
    let mut ssdeep = hash::SsdeepHasher::with_len(data.len() as u64);
    let tlsh = if sections.is_empty() {
        let mut tlsh = hash::TlshHasher::new();
        for chunk in data.chunks(hash::digests::CHUNK) {
            ssdeep.update(chunk);
            tlsh.update(chunk);
        }
        tlsh
    } else {
        ssdeep.update(data);
        let parts: Vec<(usize, &hash::TlshHasher)> =
            sections.iter().map(|(o, h)| (*o, h)).collect();
        hash::TlshHasher::assembled(data, &parts)
    };
    FileDigests {
        ssdeep: ssdeep.finish().ok().map(|s| s.to_string()),
        tlsh: tlsh.finish().map(|t| t.to_string()),
    }
}

/// Running totals of the coverage walk, in image bytes (fractional while walking).
#[derive(Default)]
struct Tally {
    identified: f64,
    padding: f64,
    opaque: f64,
    stretches: Vec<OpaqueStretch>,
}

/// How the image's bytes divide into identified files, padding and opaque data: each container
/// passes its weight (image bytes) to its gaps and, in proportion to their sizes, to its entries;
/// a recognised file (`known`, by SHA-256) is identified as a whole.
fn coverage(tree: &Tree, known: &HashMap<&str, bool>) -> Coverage {
    let Some(root) = tree.root() else {
        return Coverage::default();
    };
    let image_bytes = root.data.len() as u64;
    let mut t = Tally::default();
    // Explicit stack: (node, weight).
    let mut stack: Vec<(usize, f64)> = vec![(0, image_bytes as f64)];
    while let Some((id, weight)) = stack.pop() {
        let Some(n) = tree.get(id) else { continue };
        let size = n.data.len() as f64;
        if weight <= 0.0 || size <= 0.0 {
            continue;
        }
        let recognised = n
            .sha256
            .map(hex::encode)
            .and_then(|h| known.get(h.as_str()).copied())
            .unwrap_or(false);
        if recognised && n.error.is_none() {
            t.identified += weight;
            continue;
        }
        let files: Vec<(usize, f64)> = n
            .children
            .iter()
            .filter_map(|&c| tree.get(c).map(|cn| (c, cn.data.len() as f64)))
            .filter(|(_, len)| *len > 0.0)
            .collect();
        if n.children.is_empty() || files.is_empty() && n.format.is_none() {
            leaf(tree, n, weight, &mut t);
            continue;
        }
        let mut gap_bytes = 0.0;
        for g in &n.gaps {
            let len = (g.len as f64).min(size - gap_bytes).max(0.0);
            gap_bytes += len;
            add_gap(
                &mut t,
                n,
                g.kind,
                g.offset,
                g.len,
                g.entropy(&n.data),
                weight * len / size,
            );
        }
        let claimed = weight * (1.0 - gap_bytes / size).max(0.0);
        let total: f64 = files.iter().map(|(_, l)| l).sum();
        if total <= 0.0 {
            t.identified += claimed;
        } else {
            stack.extend(files.iter().map(|&(c, l)| (c, claimed * l / total)));
        }
    }
    let errors: Vec<&Node> = tree.errors().collect();
    let mut stretches = std::mem::take(&mut t.stretches);
    let opaque_count = stretches.len();
    stretches.sort_by(|a, b| {
        b.image_bytes
            .cmp(&a.image_bytes)
            .then_with(|| a.path.cmp(&b.path))
            .then(a.offset.cmp(&b.offset))
    });
    stretches.truncate(MAX_OPAQUE_LISTED);
    // Round so that the three counts add up to the image size exactly.
    let padding = t.padding.round() as u64;
    let opaque = (t.opaque.round() as u64).min(image_bytes.saturating_sub(padding));
    let identified = image_bytes.saturating_sub(padding).saturating_sub(opaque);
    // Shares to six decimals: exact through a JSON round trip.
    let share = |v: u64| {
        if image_bytes == 0 {
            0.0
        } else {
            (v as f64 / image_bytes as f64 * 1e6).round() / 1e6
        }
    };
    Coverage {
        image_bytes,
        identified_bytes: identified,
        padding_bytes: padding,
        opaque_bytes: opaque,
        identified_share: if image_bytes == 0 {
            1.0
        } else {
            share(identified)
        },
        padding_share: share(padding),
        opaque_share: share(opaque),
        opaque: stretches,
        opaque_count,
        error_count: errors.len(),
        errors: errors
            .iter()
            .take(MAX_ERRORS_LISTED)
            .map(|n| NodeError {
                path: lossy(&n.path),
                error: n
                    .error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            })
            .collect(),
    }
}

/// Entropy above which a file of unknown content counts as opaque (compressed or encrypted data
/// nothing could open) even when a container names it.
const OPAQUE_ENTROPY: f32 = 7.5;

/// A blob nothing was unpacked from and whose content is not recognised. The carver describes
/// such a blob as one padding or opaque stretch: an entry a container names is identified unless
/// it is padding or high-entropy; an anonymous stream or payload is what its stretches say.
fn leaf(tree: &Tree, n: &Node, weight: f64, t: &mut Tally) {
    let named = named_entry(tree, n) && n.error.is_none();
    let size = n.data.len() as f64;
    if n.gaps.is_empty() {
        let entropy = crate::unpack::carve::entropy(&n.data);
        let padding = n.data.iter().all(|&b| b == 0) || n.data.iter().all(|&b| b == 0xff);
        let kind = if padding {
            GapKind::Padding
        } else {
            GapKind::Opaque
        };
        if named && kind == GapKind::Opaque && entropy < OPAQUE_ENTROPY {
            t.identified += weight;
        } else {
            add_gap(t, n, kind, 0, n.data.len() as u64, entropy, weight);
        }
        return;
    }
    let mut used = 0.0;
    for g in &n.gaps {
        let len = (g.len as f64).min(size - used).max(0.0);
        used += len;
        let w = weight * len / size;
        let entropy = g.entropy(&n.data);
        if named && g.kind == GapKind::Opaque && entropy < OPAQUE_ENTROPY {
            t.identified += w;
        } else {
            add_gap(t, n, g.kind, g.offset, g.len, entropy, w);
        }
    }
    t.identified += weight * (1.0 - used / size).max(0.0);
}

fn add_gap(t: &mut Tally, n: &Node, kind: GapKind, offset: u64, len: u64, entropy: f32, w: f64) {
    match kind {
        GapKind::Padding => t.padding += w,
        GapKind::Opaque => {
            t.opaque += w;
            t.stretches.push(OpaqueStretch {
                path: lossy(&n.path),
                offset,
                len,
                image_bytes: w.round() as u64,
                entropy,
            });
        }
    }
}
