//! Unpacking: bytes → [`Tree`]. A work queue processes the tree level by level (never native
//! recursion per nesting level); each level's blobs are hashed, de-duplicated by SHA-256 and
//! analysed in parallel with rayon. Every limit hit is recorded on the blob it concerns and the
//! rest of the image is still unpacked.

pub mod bytes;
pub mod carve;
pub mod codec;
pub mod formats;
pub mod limits;
pub mod lzo;
pub mod tree;
pub mod write;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ::bytes::Bytes;
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use carve::Analysis;
pub use formats::{Ctx, FORMATS, Format, Magic};
pub use limits::{Budget, LimitError, Limits};
pub use tree::{Child, EntryKind, Gap, GapKind, Meta, Node, Origin, Tree, Unpacked};

/// Why a blob or entry could not be (fully) unpacked. This is data recorded in the tree, not a
/// failure of the run.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum UnpackError {
    /// The structure ends before its header says it does.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The structure is internally inconsistent (bad checksum, impossible field, bad stream).
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// A recognised variant that fwsim cannot read.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A resource limit stopped the work.
    #[error("{0}")]
    Limit(LimitError),
}

impl UnpackError {
    /// Classifies an I/O error from a decoder: limit errors travel through `io::Error`, an
    /// unexpected end means truncation, anything else is corruption.
    pub fn from_io(e: &std::io::Error, what: &str) -> Self {
        if let Some(limit) = limits::limit_of(e) {
            return UnpackError::Limit(limit);
        }
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => UnpackError::Truncated(format!("{what}: {e}")),
            _ => UnpackError::Corrupt(format!("{what}: {e}")),
        }
    }
}

impl From<LimitError> for UnpackError {
    fn from(e: LimitError) -> Self {
        UnpackError::Limit(e)
    }
}

/// Progress of a running unpack, reported after each level of the tree.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Nodes in the tree so far.
    pub nodes: usize,
    /// Nodes still waiting to be analysed.
    pub pending: usize,
    /// Decompressed or extracted bytes so far.
    pub output_bytes: u64,
}

/// Unpacks `data` (named `name`) completely within `limits`.
pub fn unpack(data: Bytes, name: &[u8], limits: &Limits) -> Tree {
    unpack_with_progress(data, name, limits, Hashing::All, &|_| {})
}

/// Which blobs the engine hashes with SHA-256.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hashing {
    /// Every blob: every file's [`Node::sha256`] is set (listings, fingerprints).
    #[default]
    All,
    /// Only what finding identical blobs needs: a blob whose length no other blob of the image
    /// has cannot be a copy, so it keeps `sha256: None` until a later blob of its length
    /// appears; carved regions are not hashed. For output that shows no digests (`unpack`
    /// without `--json`): the tree is otherwise the same as under [`Hashing::All`].
    Dedupe,
}

/// As [`unpack`], hashing what `hashing` asks for and calling `progress` after each level.
pub fn unpack_with_progress(
    data: Bytes,
    name: &[u8],
    limits: &Limits,
    hashing: Hashing,
    progress: &(dyn Fn(Progress) + Sync),
) -> Tree {
    run(data, name, limits, hashing, progress, &|_, _, _, _| {})
}

/// Called with every blob as soon as it is analysed (the tree so far, the blob's node id, its
/// SHA-256 and what analysis found), on the worker that analysed it; once per distinct blob.
pub type Analysed<'a> = dyn Fn(&Tree, usize, &[u8; 32], &Analysis) + Sync + 'a;

/// As [`unpack_with_progress`], also calling `analysed` for every distinct blob right after its
/// analysis, while the rest of the image is still being unpacked (the fingerprint starts on a
/// file's features there).
pub fn unpack_observed(
    data: Bytes,
    name: &[u8],
    limits: &Limits,
    progress: &(dyn Fn(Progress) + Sync),
    analysed: &Analysed<'_>,
) -> Tree {
    run(data, name, limits, Hashing::All, progress, analysed)
}

/// The engine. `analysed` is called only under [`Hashing::All`] (it is given every blob's hash).
fn run(
    data: Bytes,
    name: &[u8],
    limits: &Limits,
    hashing: Hashing,
    progress: &(dyn Fn(Progress) + Sync),
    analysed: &Analysed<'_>,
) -> Tree {
    let budget = Budget::new(limits.clone());
    let ctx = Ctx::new(&budget).hashing(hashing);
    let hash_all = hashing == Hashing::All;
    let mut tree = Tree::default();
    tree.nodes.push(Node::root(name, data));
    let _ = budget.add_entries(1);

    // Analyses already computed, by the SHA-256 of the blob, and the first node that had it.
    let mut seen: HashMap<[u8; 32], (usize, Arc<Analysis>)> = HashMap::new();
    // The lengths of those blobs: a blob whose length no other blob has cannot be a duplicate,
    // so it is analysed while it is hashed instead of after.
    let mut seen_lens: HashSet<usize> = HashSet::new();
    // Under `Hashing::Dedupe`, the blobs analysed without a hash, by length: at most one a
    // length, since a blob whose length was seen before is always hashed.
    let mut unhashed: HashMap<usize, (usize, Arc<Analysis>)> = HashMap::new();
    let max_depth = limits.max_depth;
    let mut frontier: Vec<usize> = vec![0];
    while !frontier.is_empty() {
        let mut len_count: HashMap<usize, usize> = HashMap::new();
        for n in frontier.iter().filter_map(|&id| tree.nodes.get(id)) {
            *len_count.entry(n.data.len()).or_default() += 1;
        }
        let distinct = |len: usize| len_count.get(&len) == Some(&1) && !seen_lens.contains(&len);
        // An earlier blob left unhashed now has a blob of its length in this level: hash it,
        // so that a copy of it is still found.
        let late: Vec<(usize, Arc<Analysis>)> = frontier
            .iter()
            .filter_map(|&id| tree.nodes.get(id))
            .filter_map(|n| unhashed.remove(&n.data.len()))
            .collect();
        let late_hashes: Vec<[u8; 32]> = late
            .par_iter()
            .map(|(id, _)| sha256(tree.nodes.get(*id).map_or(&[][..], |n| &n.data)))
            .collect();
        for ((id, a), h) in late.into_iter().zip(late_hashes) {
            if let Some(n) = tree.nodes.get_mut(id) {
                n.sha256 = Some(h);
            }
            seen.entry(h).or_insert((id, a));
        }
        // Hash every file of this level in parallel (under `Hashing::Dedupe`, only those that
        // could be copies), analysing the distinct ones meanwhile.
        let first_pass: Vec<(Option<[u8; 32]>, Option<Analysis>)> = frontier
            .par_iter()
            .map(|&id| {
                let Some(node) = tree.nodes.get(id) else {
                    return (Some(sha256(&[])), None);
                };
                if !distinct(node.data.len()) {
                    (Some(sha256(&node.data)), None)
                } else if hash_all {
                    let (h, a) =
                        rayon::join(|| sha256(&node.data), || analyse(node, &ctx, max_depth));
                    analysed(&tree, id, &h, &a);
                    (Some(h), Some(a))
                } else {
                    (None, Some(analyse(node, &ctx, max_depth)))
                }
            })
            .collect();
        let mut hashes: Vec<Option<[u8; 32]>> = Vec::with_capacity(frontier.len());
        // Blobs not seen before and not analysed yet, once each.
        let mut todo: Vec<(usize, [u8; 32])> = Vec::new();
        let mut queued: HashSet<[u8; 32]> = HashSet::new();
        for (&id, (h, early)) in frontier.iter().zip(first_pass) {
            hashes.push(h);
            let len = tree.nodes.get(id).map_or(0, |n| n.data.len());
            if let Some(n) = tree.nodes.get_mut(id) {
                n.sha256 = h;
                seen_lens.insert(len);
            }
            match (h, early) {
                (Some(h), Some(a)) => {
                    seen.insert(h, (id, Arc::new(a)));
                }
                (None, Some(a)) => {
                    unhashed.insert(len, (id, Arc::new(a)));
                }
                (Some(h), None) => {
                    if !seen.contains_key(&h) && queued.insert(h) {
                        todo.push((id, h));
                    }
                }
                (None, None) => {}
            }
        }
        let analysed: Vec<(usize, [u8; 32], Analysis)> = todo
            .par_iter()
            .map(|&(id, h)| {
                let analysis = match tree.nodes.get(id) {
                    Some(node) => analyse(node, &ctx, max_depth),
                    None => Analysis::Leaf { gaps: Vec::new() },
                };
                analysed(&tree, id, &h, &analysis);
                (id, h, analysis)
            })
            .collect();
        for (id, h, a) in analysed {
            seen.insert(h, (id, Arc::new(a)));
        }

        // Expand every node of the level, in order, so the tree is deterministic.
        let mut next = Vec::new();
        for (&id, h) in frontier.iter().zip(&hashes) {
            let found = match h {
                Some(h) => seen.get(h),
                None => tree.nodes.get(id).and_then(|n| unhashed.get(&n.data.len())),
            };
            let Some((first, analysis)) = found.map(|(f, a)| (*f, Arc::clone(a))) else {
                continue;
            };
            if first != id
                && let Some(n) = tree.nodes.get_mut(id)
            {
                n.same_as = Some(first);
            }
            // A copy met at the depth limit gets what analysing it there gives (the limit error
            // when it holds structure), not the entries of the shallower original: a blob that
            // holds a copy of itself would otherwise nest until the entry limit.
            if first != id
                && let Some(n) = tree.nodes.get(id)
                && n.depth >= max_depth
            {
                let limited = analyse(n, &ctx, max_depth);
                expand(&mut tree, id, &limited, &budget, true, &mut next);
                continue;
            }
            expand(&mut tree, id, &analysis, &budget, first != id, &mut next);
        }
        frontier = next;
        progress(Progress {
            nodes: tree.nodes.len(),
            pending: frontier.len(),
            output_bytes: budget.output_bytes(),
        });
    }
    tree
}

impl Tree {
    /// A tree of one container named `name` (its format `format`) holding `children`, exactly as
    /// the engine would attach them, without analysing anything further. For tests of code that
    /// reads trees (the safe writer) before the formats that produce such entries exist.
    #[doc(hidden)]
    pub fn from_children(name: &[u8], format: &'static str, children: &[Child]) -> Tree {
        let budget = Budget::new(Limits::default());
        let mut tree = Tree::default();
        tree.nodes.push(Node {
            format: Some(format),
            ..Node::root(name, Bytes::new())
        });
        add_children(
            &mut tree,
            0,
            format,
            children,
            Some(&budget),
            &mut Vec::new(),
        );
        tree
    }
}

/// What one blob holds: nothing for an empty blob, only whether it holds structure at the depth
/// limit, else everything carving finds.
fn analyse(node: &Node, ctx: &Ctx<'_>, max_depth: u32) -> Analysis {
    if node.data.is_empty() {
        Analysis::Leaf { gaps: Vec::new() }
    } else if node.depth >= max_depth {
        if carve::has_structure(&node.data) {
            Analysis::Carved {
                regions: Vec::new(),
                gaps: Vec::new(),
                stopped: Some(UnpackError::Limit(LimitError::Depth { max: max_depth })),
            }
        } else {
            Analysis::Leaf { gaps: Vec::new() }
        }
    } else {
        carve::analyze(&node.data, ctx)
    }
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Attaches the result of analysing node `id` to the tree, queueing new file nodes in `next`.
///
/// Formats account for the entries they return; the engine counts carved regions, and the entries
/// of an analysis `reused` from an identical blob (which no format counted for this node).
fn expand(
    tree: &mut Tree,
    id: usize,
    analysis: &Analysis,
    budget: &Budget,
    reused: bool,
    next: &mut Vec<usize>,
) {
    match analysis {
        Analysis::Leaf { gaps } => {
            if let Some(n) = tree.nodes.get_mut(id) {
                n.gaps.clone_from(gaps);
            }
        }
        Analysis::Whole {
            format,
            result,
            gaps,
        } => {
            if let Some(n) = tree.nodes.get_mut(id) {
                n.format = Some(format);
                n.gaps.clone_from(gaps);
            }
            match result {
                Ok(u) => {
                    if let Some(n) = tree.nodes.get_mut(id) {
                        n.format_meta.clone_from(&u.meta);
                        if n.error.is_none() {
                            n.error.clone_from(&u.error);
                        }
                    }
                    add_children(
                        tree,
                        id,
                        format,
                        &u.children,
                        reused.then_some(budget),
                        next,
                    );
                }
                Err(e) => {
                    if let Some(n) = tree.nodes.get_mut(id) {
                        n.error = Some(e.clone());
                    }
                }
            }
        }
        Analysis::Carved {
            regions,
            gaps,
            stopped,
        } => {
            let Some(parent) = tree.nodes.get_mut(id) else {
                return;
            };
            parent.format = Some("carve");
            parent.gaps.clone_from(gaps);
            if let Some(e) = stopped {
                parent.error = Some(e.clone());
            }
            // A structure that starts at offset 0 and fails is what this blob *is* (a truncated
            // filesystem, a damaged archive): the node takes its format and error, and whatever
            // else carving recovered from the bytes is still listed below it.
            let mut regions: &[carve::Region] = regions;
            if let Some((head, rest)) = regions.split_first()
                && let (0, Err(e)) = (head.offset, &head.result)
            {
                parent.format = Some(head.format);
                if parent.error.is_none() {
                    parent.error = Some(e.clone());
                }
                regions = rest;
            }
            let parent_path = parent.path.clone();
            let depth = parent.depth + 1;
            for r in regions {
                if let Err(e) = budget.add_entries(1) {
                    set_error(tree, id, UnpackError::Limit(e));
                    return;
                }
                let mut path = parent_path.clone();
                path.extend_from_slice(format!("/{:#x}.{}", r.offset, r.format).as_bytes());
                let rid = tree.nodes.len();
                let (format_meta, error) = match &r.result {
                    Ok(u) => (u.meta.clone(), u.error.clone()),
                    Err(e) => (Meta::new(), Some(e.clone())),
                };
                tree.nodes.push(Node {
                    sha256: r.sha256,
                    path,
                    parent: Some(id),
                    children: Vec::new(),
                    depth,
                    kind: EntryKind::File,
                    data: r.data.clone(),
                    mode: None,
                    origin: Some(Origin {
                        container: "carve",
                        offset: Some(r.offset),
                    }),
                    meta: Meta::new(),
                    format: Some(r.format),
                    format_meta,
                    gaps: Vec::new(),
                    error,
                    same_as: None,
                });
                if let Some(p) = tree.nodes.get_mut(id) {
                    p.children.push(rid);
                }
                if let Ok(u) = &r.result {
                    add_children(
                        tree,
                        rid,
                        r.format,
                        &u.children,
                        reused.then_some(budget),
                        next,
                    );
                }
            }
        }
    }
}

fn set_error(tree: &mut Tree, id: usize, e: UnpackError) {
    if let Some(n) = tree.nodes.get_mut(id)
        && n.error.is_none()
    {
        n.error = Some(e);
    }
}

/// Adds a container's entries under `parent`; files are queued for analysis.
pub(crate) fn add_children(
    tree: &mut Tree,
    parent: usize,
    format: &'static str,
    children: &[Child],
    count_in: Option<&Budget>,
    next: &mut Vec<usize>,
) {
    let Some(p) = tree.nodes.get(parent) else {
        return;
    };
    let parent_path = p.path.clone();
    let depth = p.depth + 1;
    for c in children {
        if let Some(Err(e)) = count_in.map(|b| b.add_entries(1)) {
            set_error(tree, parent, UnpackError::Limit(e));
            return;
        }
        let mut path = parent_path.clone();
        path.push(b'/');
        if c.name.is_empty() {
            path.extend_from_slice(&derived_name(&parent_path));
        } else {
            path.extend_from_slice(&display_name(&c.name));
        }
        let id = tree.nodes.len();
        let is_file = c.kind == EntryKind::File;
        tree.nodes.push(Node {
            path,
            parent: Some(parent),
            children: Vec::new(),
            depth,
            kind: c.kind.clone(),
            data: c.data.clone(),
            sha256: None,
            mode: c.mode,
            origin: Some(Origin {
                container: format,
                offset: c.offset,
            }),
            meta: c.meta.clone(),
            format: None,
            format_meta: Meta::new(),
            gaps: Vec::new(),
            error: c.error.clone(),
            same_as: None,
        });
        if let Some(p) = tree.nodes.get_mut(parent) {
            p.children.push(id);
        }
        if is_file && c.error.is_none() {
            next.push(id);
        }
    }
}

/// An entry name as shown in paths: leading `/` and `./` removed, repeated `/` collapsed. `..`
/// components are kept (they are what the container says); the safe writer refuses them.
pub fn display_name(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for comp in name.split(|&b| b == b'/') {
        if comp.is_empty() || comp == b"." {
            continue;
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(comp);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// The name of a decompressed stream that carries no name of its own: the container's name
/// without its compression suffix (`rootfs.tar.gz` → `rootfs.tar`), else `data`.
fn derived_name(parent_path: &[u8]) -> Vec<u8> {
    let last = parent_path
        .rsplit(|&b| b == b'/')
        .next()
        .unwrap_or_default();
    const SUFFIXES: &[(&[u8], &[u8])] = &[
        (b".tgz", b".tar"),
        (b".gz", b""),
        (b".xz", b""),
        (b".txz", b".tar"),
        (b".lzma", b""),
        (b".bz2", b""),
        (b".zst", b""),
        (b".lz4", b""),
        (b".lzo", b""),
        (b".z", b""),
        (b".Z", b""),
    ];
    for (suffix, replacement) in SUFFIXES {
        if let Some(stem) = last.strip_suffix(*suffix)
            && !stem.is_empty()
        {
            let mut out = stem.to_vec();
            out.extend_from_slice(replacement);
            return out;
        }
    }
    b"data".to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_but_dotdot_kept() {
        assert_eq!(display_name(b"/a//b/./c"), b"a/b/c");
        assert_eq!(display_name(b"../../etc/passwd"), b"../../etc/passwd");
        assert_eq!(display_name(b"/"), b".");
    }

    #[test]
    fn stream_names_drop_the_suffix() {
        assert_eq!(derived_name(b"a/rootfs.tar.gz"), b"rootfs.tar");
        assert_eq!(derived_name(b"a/x.tgz"), b"x.tar");
        assert_eq!(derived_name(b"a/0x40.gzip"), b"data");
    }

    #[test]
    fn plain_bytes_are_a_leaf() {
        let tree = unpack(Bytes::from_static(b"hello world"), b"x", &Limits::default());
        assert_eq!(tree.nodes().len(), 1);
        assert!(tree.root().unwrap().error.is_none());
    }
}
