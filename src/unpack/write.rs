//! The one safe writer behind `unpack --out DIR`: lays a [`Tree`] out under a folder so that
//! nothing lands outside it and no link is ever followed while writing; every entry that is not
//! written comes back in the [`Report`] with its reason.
//!
//! # Layout
//! The image's entries go directly into the folder. A directory entry is a folder; a file that is
//! also a container (`kernel.img` with entries of its own) is written as the file plus a
//! `kernel.img.extracted/` folder holding its entries; carved regions keep their
//! `<offset>.<format>` names. Names keep their bytes exactly (newlines and bytes that are not UTF-8
//! included) except NUL, written `%00`; leading `/` and `.` components are dropped.
//!
//! # Rules
//! - An entry whose name has a `..` component is not written (nor anything inside it).
//! - Every folder is entered with `openat(O_NOFOLLOW | O_DIRECTORY)` from the output folder's
//!   descriptor, one component at a time; files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`,
//!   so nothing existing is overwritten and no link is followed.
//! - Symlinks are written last. An absolute target is resolved against the root of the filesystem
//!   that holds the link, as it sits in the output folder (the folder itself for a top-level
//!   filesystem image), and written as a relative link; a relative target is kept as stored. Every
//!   link is then resolved against a model of everything written (following the other links, as
//!   the kernel would, at most 40 hops): links that would leave the folder, loop, or climb out of
//!   an entry that does not exist are dropped and reported.
//! - Hard links are written as copies of their target when it is a file of the same container.
//! - Device nodes, FIFOs and sockets are skipped and reported.
//! - Two entries with the same name (or, on a folder that ignores case, names equal but for case)
//!   collide: the first is written, the second reported.
//!
//! The model folds case (Unicode lower case) when a probe shows the folder ignores it, but does not
//! model Unicode normalisation (macOS treats NFC and NFD spellings as one name). Such a clash makes
//! the second write fail with "exists" (reported, never overwritten), and a `..` after a name the
//! model does not hold as a folder is refused, so a mismatch cannot lead a link outside.
//!
//! This follows the approach of GNU tar's and libarchive's secure extraction (refuse `..`, never
//! follow a link while writing) and binwalk's rule of rebasing absolute link targets onto the
//! extraction folder.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rayon::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::display_name;
use super::tree::{EntryKind, Node, Tree, escape_name};
use crate::error::Error;

/// How many symlinks one resolution may follow (Linux's `MAXSYMLINKS`).
const MAX_HOPS: usize = 40;
/// Longest symlink target written, in bytes (Linux's `PATH_MAX` less the NUL).
const MAX_TARGET_BYTES: usize = 4095;
/// How many hard links to hard links are followed to reach a file.
const MAX_HARDLINK_HOPS: usize = 8;

/// What the writer did with the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Entries written, in the order they were written.
    pub written: Vec<Written>,
    /// Entries not written, with the reason.
    pub skipped: Vec<Skipped>,
    /// Whether the output folder ignores case (names equal but for case then collide).
    pub case_insensitive: bool,
}

impl Report {
    /// Regular files written (hard-link copies included).
    pub fn files(&self) -> usize {
        self.count(|k| {
            matches!(
                k,
                WrittenKind::File { .. } | WrittenKind::HardlinkCopy { .. }
            )
        })
    }

    /// Folders written for directory entries.
    pub fn dirs(&self) -> usize {
        self.count(|k| matches!(k, WrittenKind::Dir))
    }

    /// Symlinks written.
    pub fn symlinks(&self) -> usize {
        self.count(|k| matches!(k, WrittenKind::Symlink { .. }))
    }

    /// Bytes of file data written.
    pub fn bytes(&self) -> u64 {
        self.written
            .iter()
            .map(|w| match w.kind {
                WrittenKind::File { bytes } | WrittenKind::HardlinkCopy { bytes, .. } => bytes,
                _ => 0,
            })
            .sum()
    }

    /// What happened to each node the writer handled: written (`Ok`) or skipped (`Err`). The
    /// image itself is not in it.
    pub fn by_node(&self) -> HashMap<usize, Result<&Written, &Skipped>> {
        let mut m: HashMap<usize, Result<&Written, &Skipped>> = HashMap::new();
        for w in &self.written {
            m.insert(w.node, Ok(w));
        }
        for s in &self.skipped {
            m.insert(s.node, Err(s));
        }
        m
    }

    fn count(&self, f: impl Fn(&WrittenKind) -> bool) -> usize {
        self.written.iter().filter(|w| f(&w.kind)).count()
    }
}

/// One entry written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The tree node.
    pub node: usize,
    /// Where it was written, relative to the output folder, `/`-separated.
    pub path: Vec<u8>,
    /// What was written.
    pub kind: WrittenKind,
}

/// What was written for an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WrittenKind {
    /// A regular file of `bytes` bytes.
    File {
        /// Its size.
        bytes: u64,
    },
    /// A folder, for a directory entry.
    Dir,
    /// A symlink, with the (relative) target actually written.
    Symlink {
        /// The target as written.
        target: Vec<u8>,
    },
    /// A hard link, written as a copy of node `of`.
    HardlinkCopy {
        /// The node whose bytes were copied.
        of: usize,
        /// Its size.
        bytes: u64,
    },
}

/// One entry not written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The tree node.
    pub node: usize,
    /// Why it was not written.
    pub reason: SkipReason,
}

/// Why an entry was not written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// The name climbs with `..`.
    #[error("name has a `..` component")]
    DotDot,
    /// The name is empty (or only `/` and `.`) for something that is not a folder.
    #[error("empty name")]
    EmptyName,
    /// The container holding the entry could not be placed.
    #[error("its container was not written")]
    ParentSkipped,
    /// The entry could not be extracted, so there are no bytes to write.
    #[error("not extracted: {0}")]
    NotExtracted(String),
    /// Character or block device, FIFO or socket.
    #[error("device node, FIFO or socket")]
    Device,
    /// A symlink with an empty target.
    #[error("symlink with an empty target")]
    SymlinkEmpty,
    /// A symlink whose target is longer than a path may be.
    #[error("symlink target longer than {MAX_TARGET_BYTES} bytes")]
    SymlinkTooLong,
    /// A symlink that would point outside the output folder.
    #[error("symlink to `{}` would leave the output folder", escape_name(target))]
    SymlinkEscapes {
        /// The target as stored in the container.
        target: Vec<u8>,
    },
    /// A symlink whose resolution loops or needs too many hops.
    #[error(
        "symlink to `{}` loops or chains more than {MAX_HOPS} links",
        escape_name(target)
    )]
    SymlinkLoop {
        /// The target as stored in the container.
        target: Vec<u8>,
    },
    /// A hard link whose target is not a file of the same container.
    #[error(
        "hard link to `{}`, which is not a written file of the same container",
        escape_name(target)
    )]
    HardlinkTarget {
        /// The target as stored in the container.
        target: Vec<u8>,
    },
    /// The name is already taken by an earlier entry (or by a folder the earlier entries need).
    #[error(
        "name collides with the {holder} `{}` written before",
        escape_name(other)
    )]
    Collision {
        /// The path (relative to the output folder) that holds the name.
        other: Vec<u8>,
        /// What holds it: `folder`, `file` or `symlink`.
        holder: &'static str,
    },
    /// The filesystem refused the write.
    #[error("write failed: {0}")]
    Io(String),
}

/// Writes `tree` under `dir` (created when missing; it must be empty).
pub fn write(tree: &Tree, dir: &Path) -> crate::Result<Report> {
    write_with_progress(tree, dir, &|_, _| {})
}

/// As [`write()`], calling `progress(done, total)` every few hundred entries.
pub fn write_with_progress(
    tree: &Tree,
    dir: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> crate::Result<Report> {
    let io_err = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_err)?;
    if std::fs::read_dir(dir).map_err(io_err)?.next().is_some() {
        return Err(Error::Invalid(format!(
            "output folder {} is not empty",
            dir.display()
        )));
    }
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(e.into()))?;
    let fold = ignores_case(root.as_fd()).map_err(io_err)?;
    let plan = plan(tree, fold);
    Ok(execute(tree, &plan, root.as_fd(), fold, progress))
}

/// Whether the (empty) folder behind `root` treats names equal but for case as the same name.
fn ignores_case(root: BorrowedFd<'_>) -> io::Result<bool> {
    const PROBE: &str = ".fwsim-case-probe";
    const PROBE_UPPER: &str = ".FWSIM-CASE-PROBE";
    rustix::fs::mkdirat(root, PROBE, Mode::from_raw_mode(0o700))?;
    let folded = rustix::fs::statat(root, PROBE_UPPER, AtFlags::SYMLINK_NOFOLLOW).is_ok();
    rustix::fs::unlinkat(root, PROBE, AtFlags::REMOVEDIR)?;
    Ok(folded)
}

/// One name component, folded when the folder ignores case; a path is a list of them.
type Key = Vec<u8>;

/// What a path of the output holds, in the model the plan builds.
#[derive(Clone, Debug)]
enum Claim {
    /// A folder (for a directory entry, a container's `.extracted`, or a folder on the way).
    Dir,
    /// A regular file.
    File,
    /// A symlink with the target as it will be written.
    Link(Vec<u8>),
}

/// Everything the output will hold: a trie of name components (folded when the folder ignores
/// case), so that placing or resolving a path costs one step per component. Node 0 is the output
/// folder itself.
struct Model {
    fold: bool,
    nodes: Vec<Place>,
}

/// One path of the output in the model.
struct Place {
    parent: usize,
    /// The component as written (not folded).
    name: Vec<u8>,
    children: HashMap<Key, usize>,
    /// What the path holds; `None` for a path only looked at, never claimed.
    claim: Option<Claim>,
}

impl Model {
    fn new(fold: bool) -> Self {
        Self {
            fold,
            nodes: vec![Place {
                parent: 0,
                name: Vec::new(),
                children: HashMap::new(),
                claim: Some(Claim::Dir),
            }],
        }
    }

    /// The child of `at` named `name`, created (unclaimed) when missing.
    fn child(&mut self, at: usize, name: &[u8]) -> usize {
        let key = fold_name(name, self.fold);
        if let Some(&n) = self
            .nodes
            .get(at)
            .and_then(|p| p.children.get(key.as_ref()))
        {
            return n;
        }
        let n = self.nodes.len();
        self.nodes.push(Place {
            parent: at,
            name: name.to_vec(),
            children: HashMap::new(),
            claim: None,
        });
        if let Some(p) = self.nodes.get_mut(at) {
            p.children.insert(key.into_owned(), n);
        }
        n
    }

    /// The child of `at` named `name`, if the model has it.
    fn lookup(&self, at: usize, name: &[u8]) -> Option<usize> {
        let key = fold_name(name, self.fold);
        self.nodes.get(at)?.children.get(key.as_ref()).copied()
    }

    fn claim_of(&self, at: usize) -> Option<&Claim> {
        self.nodes.get(at)?.claim.as_ref()
    }

    /// Claims every folder on the way to `comps` and `comps` itself for `claim`; a folder may be
    /// claimed again, anything else only once.
    fn claim(&mut self, comps: &[Vec<u8>], claim: Claim) -> Result<(), SkipReason> {
        let mut at = 0;
        let Some((last, parents)) = comps.split_last() else {
            return Err(SkipReason::EmptyName);
        };
        for c in parents {
            at = self.child(at, c);
            self.claim_one(at, Claim::Dir)?;
        }
        at = self.child(at, last);
        self.claim_one(at, claim)
    }

    fn claim_one(&mut self, at: usize, claim: Claim) -> Result<(), SkipReason> {
        let current = self.nodes.get(at).and_then(|p| p.claim.as_ref());
        match current {
            None => {
                if let Some(p) = self.nodes.get_mut(at) {
                    p.claim = Some(claim);
                }
                Ok(())
            }
            Some(Claim::Dir) if matches!(claim, Claim::Dir) => Ok(()),
            Some(held) => Err(SkipReason::Collision {
                other: self.path_of(at),
                holder: match held {
                    Claim::Dir => "folder",
                    Claim::File => "file",
                    Claim::Link(_) => "symlink",
                },
            }),
        }
    }

    /// The path of `at` as written, `/`-separated.
    fn path_of(&self, mut at: usize) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = Vec::new();
        while at != 0 {
            let Some(p) = self.nodes.get(at) else { break };
            parts.push(&p.name);
            at = p.parent;
        }
        parts.reverse();
        parts.join(&b'/')
    }
}

/// Folds a name for comparison on a folder that ignores case.
fn fold_name(name: &[u8], fold: bool) -> Cow<'_, [u8]> {
    if !fold {
        return Cow::Borrowed(name);
    }
    Cow::Owned(match std::str::from_utf8(name) {
        Ok(s) => s.to_lowercase().into_bytes(),
        Err(_) => name.to_ascii_lowercase(),
    })
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

/// One thing to write.
#[derive(Debug)]
struct Action {
    node: usize,
    /// Path components under the output folder, as written.
    comps: Vec<Vec<u8>>,
    what: What,
}

#[derive(Debug)]
enum What {
    Dir,
    /// A file with the bytes of node `of` (the node itself, or a hard link's target).
    File {
        of: usize,
    },
    /// A symlink with its final target.
    Link {
        target: Vec<u8>,
    },
}

/// The writes to make, in order (folders and files, then symlinks), and what is skipped.
#[derive(Debug, Default)]
struct Plan {
    actions: Vec<Action>,
    skipped: Vec<Skipped>,
}

/// A symlink waiting for every other entry to be placed.
struct PendingLink {
    node: usize,
    comps: Vec<Vec<u8>>,
    /// Where the filesystem holding the link has its root.
    fs_root: Vec<Vec<u8>>,
    stored: Vec<u8>,
}

/// Decides where every node goes and which are skipped, without touching the disk.
fn plan(tree: &Tree, fold: bool) -> Plan {
    let nodes = tree.nodes();
    let mut out = Plan::default();
    let mut model = Model::new(fold);
    // Where each node's entries go (`None`: the node cannot hold entries, or was refused).
    let mut base: Vec<Option<Vec<Vec<u8>>>> = vec![None; nodes.len()];
    if let Some(b) = base.get_mut(0) {
        *b = Some(Vec::new());
    }
    let mut is_file = vec![false; nodes.len()];
    let mut hardlinks = Vec::new();
    let mut links = Vec::new();

    for id in tree.dfs().into_iter().skip(1) {
        let Some(node) = nodes.get(id) else { continue };
        let Some(parent) = node.parent else { continue };
        let skip = |out: &mut Plan, reason| out.skipped.push(Skipped { node: id, reason });
        let Some(parent_base) = base.get(parent).cloned().flatten() else {
            skip(&mut out, SkipReason::ParentSkipped);
            continue;
        };
        let comps = match components(relative_name(tree, node)) {
            Ok(c) => c,
            Err(reason) => {
                skip(&mut out, reason);
                continue;
            }
        };
        let mut path = parent_base;
        path.extend(comps.iter().cloned());
        if comps.is_empty() && node.kind != EntryKind::Dir {
            skip(&mut out, SkipReason::EmptyName);
            continue;
        }
        if let Some(b) = base.get_mut(id) {
            *b = match node.kind {
                EntryKind::Dir => Some(path.clone()),
                EntryKind::File if !node.children.is_empty() => {
                    let mut extracted = path.clone();
                    if let Some(last) = extracted.last_mut() {
                        last.extend_from_slice(b".extracted");
                    }
                    Some(extracted)
                }
                _ => None,
            };
        }
        match &node.kind {
            EntryKind::Dir => {
                if comps.is_empty() {
                    continue;
                }
                let r = model.claim(&path, Claim::Dir);
                match r {
                    Ok(()) => out.actions.push(Action {
                        node: id,
                        comps: path,
                        what: What::Dir,
                    }),
                    Err(reason) => skip(&mut out, reason),
                }
            }
            EntryKind::File if node.data.is_empty() && node.error.is_some() => {
                let why = node.error.as_ref().map(ToString::to_string);
                skip(&mut out, SkipReason::NotExtracted(why.unwrap_or_default()));
            }
            EntryKind::File => {
                let r = model.claim(&path, Claim::File);
                match r {
                    Ok(()) => {
                        if let Some(f) = is_file.get_mut(id) {
                            *f = true;
                        }
                        out.actions.push(Action {
                            node: id,
                            comps: path,
                            what: What::File { of: id },
                        });
                    }
                    Err(reason) => skip(&mut out, reason),
                }
            }
            EntryKind::Hardlink { target } => hardlinks.push((id, path, target.clone())),
            EntryKind::Symlink { target } => {
                let fs_root = container_root(tree, parent, &base);
                links.push(PendingLink {
                    node: id,
                    comps: path,
                    fs_root,
                    stored: target.clone(),
                });
            }
            EntryKind::Device => skip(&mut out, SkipReason::Device),
        }
    }

    // Hard links, once every file is placed: a copy of a file of the same container.
    let mut by_name: HashMap<(usize, Vec<u8>), usize> = HashMap::new();
    if !hardlinks.is_empty() {
        for (id, node) in nodes.iter().enumerate() {
            if let Some(p) = node.parent {
                by_name
                    .entry((p, relative_name(tree, node).to_vec()))
                    .or_insert(id);
            }
        }
    }
    for (id, path, target) in hardlinks {
        let of = hardlink_target(tree, &by_name, id, &target)
            .filter(|&t| is_file.get(t).copied().unwrap_or(false));
        let Some(of) = of else {
            out.skipped.push(Skipped {
                node: id,
                reason: SkipReason::HardlinkTarget { target },
            });
            continue;
        };
        let r = model.claim(&path, Claim::File);
        match r {
            Ok(()) => out.actions.push(Action {
                node: id,
                comps: path,
                what: What::File { of },
            }),
            Err(reason) => out.skipped.push(Skipped { node: id, reason }),
        }
    }

    // Symlinks: placed after everything else, then each checked against the full model.
    let mut claimed = Vec::new();
    for link in links {
        let r = link_target(&link).and_then(|target| {
            model.claim(&link.comps, Claim::Link(target.clone()))?;
            Ok(target)
        });
        match r {
            Ok(target) => claimed.push((link, target)),
            Err(reason) => out.skipped.push(Skipped {
                node: link.node,
                reason,
            }),
        }
    }
    for (link, target) in claimed {
        let dir = link.comps.get(..link.comps.len().saturating_sub(1));
        match resolve(&model, dir.unwrap_or_default(), &target) {
            Ok(()) => out.actions.push(Action {
                node: link.node,
                comps: link.comps,
                what: What::Link { target },
            }),
            Err(Unsafe::Escapes) => out.skipped.push(Skipped {
                node: link.node,
                reason: SkipReason::SymlinkEscapes {
                    target: link.stored,
                },
            }),
            Err(Unsafe::Loops) => out.skipped.push(Skipped {
                node: link.node,
                reason: SkipReason::SymlinkLoop {
                    target: link.stored,
                },
            }),
        }
    }
    out
}

/// A node's name inside its parent (its path without the parent's path).
fn relative_name<'t>(tree: &Tree, node: &'t Node) -> &'t [u8] {
    let parent = node.parent.and_then(|p| tree.get(p));
    parent
        .and_then(|p| node.path.strip_prefix(p.path.as_slice()))
        .and_then(|rest| rest.strip_prefix(b"/"))
        .unwrap_or_else(|| node.path.rsplit(|&b| b == b'/').next().unwrap_or_default())
}

/// Splits a name into components: empty and `.` dropped, `..` refused, NUL written `%00`.
fn components(name: &[u8]) -> Result<Vec<Vec<u8>>, SkipReason> {
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(SkipReason::DotDot),
            _ => out.push(escape_nul(c)),
        }
    }
    Ok(out)
}

fn escape_nul(c: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(c.len());
    for &b in c {
        if b == 0 {
            out.extend_from_slice(b"%00");
        } else {
            out.push(b);
        }
    }
    out
}

/// The folder where the filesystem (or archive) holding entries of `container` has its root:
/// the entry folder of the nearest ancestor that is not itself a directory entry.
fn container_root(tree: &Tree, container: usize, base: &[Option<Vec<Vec<u8>>>]) -> Vec<Vec<u8>> {
    let mut id = container;
    for _ in 0..tree.nodes().len() {
        match tree.get(id) {
            Some(n) if n.kind == EntryKind::Dir => match n.parent {
                Some(p) => id = p,
                None => break,
            },
            _ => break,
        }
    }
    base.get(id).cloned().flatten().unwrap_or_default()
}

/// The node a hard link names: an entry of the same container, following hard links to hard
/// links a few times.
fn hardlink_target(
    tree: &Tree,
    by_name: &HashMap<(usize, Vec<u8>), usize>,
    id: usize,
    target: &[u8],
) -> Option<usize> {
    let mut parent = tree.get(id)?.parent?;
    let mut name = display_name(target);
    for _ in 0..MAX_HARDLINK_HOPS {
        if name.split(|&b| b == b'/').any(|c| c == b"..") {
            return None;
        }
        let t = *by_name.get(&(parent, name))?;
        let node = tree.get(t)?;
        match &node.kind {
            EntryKind::File => return Some(t),
            EntryKind::Hardlink { target } if t != id => {
                parent = node.parent?;
                name = display_name(target);
            }
            _ => return None,
        }
    }
    None
}

/// The target a symlink is written with: absolute targets rebased onto the root of the
/// filesystem that holds the link and made relative to the link's folder, NUL written `%00`.
fn link_target(link: &PendingLink) -> Result<Vec<u8>, SkipReason> {
    let stored = &link.stored;
    if stored.is_empty() {
        return Err(SkipReason::SymlinkEmpty);
    }
    if stored.len() > MAX_TARGET_BYTES {
        return Err(SkipReason::SymlinkTooLong);
    }
    if !stored.starts_with(b"/") {
        let written = escape_nul(stored);
        if written.len() > MAX_TARGET_BYTES {
            return Err(SkipReason::SymlinkTooLong);
        }
        return Ok(written);
    }
    // Inside the filesystem `..` at its root stays at its root, as in a chroot.
    let mut to = link.fs_root.clone();
    let floor = to.len();
    for c in stored.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if to.len() > floor {
                    to.pop();
                }
            }
            _ => to.push(escape_nul(c)),
        }
    }
    let from = link.comps.get(..link.comps.len().saturating_sub(1));
    let written = relative_path(from.unwrap_or_default(), &to);
    if written.len() > MAX_TARGET_BYTES {
        return Err(SkipReason::SymlinkTooLong);
    }
    Ok(written)
}

/// The relative path from folder `from` to `to` (both under the output folder).
fn relative_path(from: &[Vec<u8>], to: &[Vec<u8>]) -> Vec<u8> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&[u8]> = vec![b".."; from.len().saturating_sub(common)];
    for c in to.iter().skip(common) {
        parts.push(c);
    }
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

/// Why a link is not safe.
#[derive(Debug, PartialEq, Eq)]
enum Unsafe {
    Escapes,
    Loops,
}

/// Resolves relative `target` from folder `dir` through the model, following links as the kernel
/// would. Safe when it never climbs above the output folder; a `..` after an entry the model does
/// not have as a folder is refused, since what is really there cannot be known.
fn resolve(model: &Model, dir: &[Vec<u8>], target: &[u8]) -> Result<(), Unsafe> {
    if target.starts_with(b"/") {
        return Err(Unsafe::Escapes);
    }
    // The places from the output folder down to the current folder (the folder itself excluded).
    let mut cur: Vec<usize> = Vec::with_capacity(dir.len());
    for c in dir {
        match model.lookup(cur.last().copied().unwrap_or(0), c) {
            Some(n) => cur.push(n),
            None => return Err(Unsafe::Escapes),
        }
    }
    let mut pending: Vec<Vec<u8>> = split_rev(target);
    let mut hops = 0usize;
    let mut below_missing = false;
    while let Some(c) = pending.pop() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                if below_missing || cur.pop().is_none() {
                    return Err(Unsafe::Escapes);
                }
                continue;
            }
            _ => {}
        }
        if below_missing {
            continue;
        }
        let Some(n) = model.lookup(cur.last().copied().unwrap_or(0), &c) else {
            below_missing = true;
            continue;
        };
        match model.claim_of(n) {
            Some(Claim::Dir) => cur.push(n),
            None | Some(Claim::File) => below_missing = true,
            Some(Claim::Link(t)) => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(Unsafe::Loops);
                }
                if t.starts_with(b"/") {
                    return Err(Unsafe::Escapes);
                }
                pending.extend(split_rev(t));
            }
        }
    }
    Ok(())
}

/// A path's components, last first (so that popping yields them in order).
fn split_rev(path: &[u8]) -> Vec<Vec<u8>> {
    path.rsplit(|&b| b == b'/').map(<[u8]>::to_vec).collect()
}

/// Files written by one task of the parallel phase: consecutive actions usually share a folder,
/// so one task keeps that folder's descriptor open across them.
const FILES_PER_TASK: usize = 32;

/// Makes the plan's writes under `root`, never following a link, in three phases: every folder
/// (the plan's folders and those its files sit in) in plan order; then the files, in parallel
/// (each created with `O_EXCL` in a folder entered with `O_NOFOLLOW`, and no link exists yet, so
/// the order between them changes nothing the model allowed); then the symlinks, in plan order.
/// The report lists the writes in plan order.
fn execute(
    tree: &Tree,
    plan: &Plan,
    root: BorrowedFd<'_>,
    fold: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Report {
    let mut report = Report {
        skipped: plan.skipped.clone(),
        case_insensitive: fold,
        ..Report::default()
    };
    let total = plan.actions.len();
    let mut results: Vec<Option<io::Result<WrittenKind>>> = Vec::new();
    results.resize_with(total, || None);
    let is_file = |a: &Action| matches!(a.what, What::File { .. });

    // Folders first: a file whose folder cannot be made fails here, as it would have when written.
    let mut cursor = Cursor { root, cur: None };
    for (action, slot) in plan.actions.iter().zip(results.iter_mut()) {
        if matches!(action.what, What::Link { .. }) {
            continue;
        }
        let made = match action.what {
            What::Dir => write_one(tree, &mut cursor, action),
            _ => action
                .comps
                .split_last()
                .map_or(Ok(()), |(_, parents)| cursor.enter(parents).map(|_| ()))
                .map(|()| WrittenKind::Dir),
        };
        if !is_file(action) || made.is_err() {
            *slot = Some(made);
        }
    }
    progress(0, total);

    // Files, in parallel, each task over a run of consecutive actions.
    let done = std::sync::atomic::AtomicUsize::new(0);
    plan.actions
        .par_chunks(FILES_PER_TASK)
        .zip(results.par_chunks_mut(FILES_PER_TASK))
        .for_each(|(actions, slots)| {
            let mut cursor = Cursor { root, cur: None };
            for (action, slot) in actions.iter().zip(slots.iter_mut()) {
                if is_file(action) && slot.is_none() {
                    *slot = Some(write_one(tree, &mut cursor, action));
                }
            }
            let n = done.fetch_add(actions.len(), std::sync::atomic::Ordering::Relaxed);
            if n / 256 != (n + actions.len()) / 256 {
                progress(n + actions.len(), total);
            }
        });

    // Symlinks last, in order.
    let mut cursor = Cursor { root, cur: None };
    for (action, slot) in plan.actions.iter().zip(results.iter_mut()) {
        if slot.is_none() {
            *slot = Some(write_one(tree, &mut cursor, action));
        }
    }
    progress(total, total);

    for (action, result) in plan.actions.iter().zip(results) {
        match result {
            Some(Ok(kind)) => report.written.push(Written {
                node: action.node,
                path: join(&action.comps),
                kind,
            }),
            Some(Err(e)) => report.skipped.push(Skipped {
                node: action.node,
                reason: SkipReason::Io(format!("{}: {e}", escape_name(&join(&action.comps)))),
            }),
            None => {}
        }
    }
    report.skipped.sort_by_key(|s| s.node);
    report
}

fn write_one(tree: &Tree, cursor: &mut Cursor<'_>, action: &Action) -> io::Result<WrittenKind> {
    // The plan never produces such components; refusing them here keeps this function safe on
    // its own.
    let bad = |c: &Vec<u8>| c.is_empty() || c == b"." || c == b".." || c.contains(&b'/');
    let Some((name, parents)) = action.comps.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
    };
    if action.comps.iter().any(bad) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "unsafe name component",
        ));
    }
    match &action.what {
        What::Dir => {
            cursor.enter(&action.comps)?;
            Ok(WrittenKind::Dir)
        }
        What::File { of } => {
            let node = tree
                .get(*of)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "node"))?;
            let mode = node.mode.map_or(0o644, |m| (m & 0o755) | 0o600);
            let dir = cursor.enter(parents)?;
            let fd = rustix::fs::openat(
                dir,
                name.as_slice(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            )?;
            let mut f = File::from(fd);
            f.write_all(&node.data)?;
            let bytes = node.data.len() as u64;
            Ok(if *of == action.node {
                WrittenKind::File { bytes }
            } else {
                WrittenKind::HardlinkCopy { of: *of, bytes }
            })
        }
        What::Link { target } => {
            let dir = cursor.enter(parents)?;
            rustix::fs::symlinkat(target.as_slice(), dir, name.as_slice())?;
            Ok(WrittenKind::Symlink {
                target: target.clone(),
            })
        }
    }
}

/// The folder writes currently go to, entered from the output folder's descriptor one component
/// at a time with `O_NOFOLLOW | O_DIRECTORY` (created on the way when missing). One descriptor is
/// kept besides the root, so deep trees need no more.
struct Cursor<'r> {
    root: BorrowedFd<'r>,
    cur: Option<(Vec<Vec<u8>>, OwnedFd)>,
}

impl Cursor<'_> {
    /// Enters `comps` (relative to the output folder) and returns its descriptor.
    fn enter(&mut self, comps: &[Vec<u8>]) -> io::Result<BorrowedFd<'_>> {
        let reuse = matches!(&self.cur, Some((p, _)) if comps.starts_with(p));
        let (mut fd, start) = match self.cur.take() {
            Some((p, fd)) if reuse => (Some(fd), p.len()),
            _ => (None, 0),
        };
        for c in comps.iter().skip(start) {
            let parent = fd.as_ref().map_or(self.root, |f| f.as_fd());
            match rustix::fs::mkdirat(parent, c.as_slice(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            let next = rustix::fs::openat(
                parent,
                c.as_slice(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            fd = Some(next);
        }
        self.cur = fd.map(|f| (comps.to_vec(), f));
        Ok(self.cur.as_ref().map_or(self.root, |(_, f)| f.as_fd()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{Budget, Child, Limits};
    use bytes::Bytes;

    fn tree(children: &[Child]) -> Tree {
        Tree::from_children(b"img", "test", children)
    }

    /// Attaches `children` under node `parent`, as a container format would.
    fn graft(tree: &mut Tree, parent: usize, children: &[Child]) {
        let budget = Budget::new(Limits::default());
        crate::unpack::add_children(
            tree,
            parent,
            "test",
            children,
            Some(&budget),
            &mut Vec::new(),
        );
    }

    fn id_of(tree: &Tree, path: &[u8]) -> usize {
        tree.nodes().iter().position(|n| n.path == path).unwrap()
    }

    fn reason(plan: &Plan, tree: &Tree, path: &[u8]) -> Option<SkipReason> {
        let id = id_of(tree, path);
        plan.skipped
            .iter()
            .find(|s| s.node == id)
            .map(|s| s.reason.clone())
    }

    fn link_of(plan: &Plan, tree: &Tree, path: &[u8]) -> Option<Vec<u8>> {
        let id = id_of(tree, path);
        plan.actions.iter().find_map(|a| match &a.what {
            What::Link { target } if a.node == id => Some(target.clone()),
            _ => None,
        })
    }

    fn file(name: &[u8]) -> Child {
        Child::file(name, Bytes::from_static(b"data"))
    }

    #[test]
    fn dotdot_names_are_refused_and_absolute_names_made_relative() {
        let t = tree(&[file(b"../../x"), file(b"a/../../y"), file(b"/etc/x")]);
        let p = plan(&t, false);
        assert_eq!(reason(&p, &t, b"img/../../x"), Some(SkipReason::DotDot));
        assert_eq!(reason(&p, &t, b"img/a/../../y"), Some(SkipReason::DotDot));
        let a = p.actions.iter().find(|a| a.node == id_of(&t, b"img/etc/x"));
        assert_eq!(a.unwrap().comps, vec![b"etc".to_vec(), b"x".to_vec()]);
    }

    #[test]
    fn absolute_link_targets_are_rebased_on_the_filesystem_root() {
        let mut t = tree(&[Child::new(b"fs.img", EntryKind::File, Bytes::new())]);
        graft(
            &mut t,
            1,
            &[
                Child::dir(b"bin"),
                file(b"bin/busybox"),
                Child::symlink(b"bin/sh", b"/bin/busybox"),
                Child::symlink(b"etc/init", b"/../../../bin/busybox"),
                Child::symlink(b"root", b"/"),
            ],
        );
        let p = plan(&t, false);
        assert_eq!(link_of(&p, &t, b"img/fs.img/bin/sh").unwrap(), b"busybox");
        assert_eq!(
            link_of(&p, &t, b"img/fs.img/etc/init").unwrap(),
            b"../bin/busybox"
        );
        assert_eq!(link_of(&p, &t, b"img/fs.img/root").unwrap(), b".");
        let busybox = p
            .actions
            .iter()
            .find(|a| a.node == id_of(&t, b"img/fs.img/bin/busybox"))
            .unwrap();
        assert_eq!(busybox.comps[0], b"fs.img.extracted");
    }

    #[test]
    fn relative_links_that_climb_out_are_dropped() {
        let t = tree(&[
            Child::symlink(b"foo", b"../../"),
            Child::symlink(b"subdir/foo2", b"../../../../"),
            Child::symlink(b"subdir/ok", b"../README"),
            Child::symlink(b"subdir/up", b".."),
        ]);
        let p = plan(&t, false);
        assert!(matches!(
            reason(&p, &t, b"img/foo"),
            Some(SkipReason::SymlinkEscapes { .. })
        ));
        assert!(matches!(
            reason(&p, &t, b"img/subdir/foo2"),
            Some(SkipReason::SymlinkEscapes { .. })
        ));
        assert_eq!(link_of(&p, &t, b"img/subdir/ok").unwrap(), b"../README");
        assert_eq!(link_of(&p, &t, b"img/subdir/up").unwrap(), b"..");
    }

    #[test]
    fn links_are_resolved_through_other_links() {
        // Lexically `d/..` is the output folder itself, but `d` is a link to the folder: following
        // it first and then `..` climbs out of it.
        let t = tree(&[
            Child::symlink(b"d", b"."),
            Child::symlink(b"e", b"d/.."),
            Child::symlink(b"sub/f", b"../d/sub"),
        ]);
        let p = plan(&t, false);
        assert!(link_of(&p, &t, b"img/d").is_some());
        assert!(matches!(
            reason(&p, &t, b"img/e"),
            Some(SkipReason::SymlinkEscapes { .. })
        ));
        assert_eq!(link_of(&p, &t, b"img/sub/f").unwrap(), b"../d/sub");
    }

    #[test]
    fn loops_and_climbs_out_of_missing_entries_are_dropped() {
        let t = tree(&[
            Child::symlink(b"l1", b"l2"),
            Child::symlink(b"l2", b"l1"),
            Child::symlink(b"self", b"self/x"),
            Child::symlink(b"m", b"nowhere/../x"),
            Child::symlink(b"dangling", b"nowhere/x"),
        ]);
        let p = plan(&t, false);
        for l in [&b"img/l1"[..], b"img/l2", b"img/self"] {
            assert!(
                matches!(reason(&p, &t, l), Some(SkipReason::SymlinkLoop { .. })),
                "{}",
                escape_name(l)
            );
        }
        assert!(matches!(
            reason(&p, &t, b"img/m"),
            Some(SkipReason::SymlinkEscapes { .. })
        ));
        assert!(link_of(&p, &t, b"img/dangling").is_some());
    }

    #[test]
    fn a_file_through_a_link_makes_a_folder_and_the_link_collides() {
        let t = tree(&[
            Child::symlink(b"link", b"/"),
            file(b"link/etc/passwd"),
            Child::symlink(b"link/inner", b"x"),
        ]);
        let p = plan(&t, false);
        assert!(matches!(
            reason(&p, &t, b"img/link"),
            Some(SkipReason::Collision { .. })
        ));
        assert_eq!(link_of(&p, &t, b"img/link/inner").unwrap(), b"x");
        let f = p
            .actions
            .iter()
            .find(|a| a.node == id_of(&t, b"img/link/etc/passwd"))
            .unwrap();
        assert_eq!(f.comps.len(), 3);
    }

    #[test]
    fn links_inside_links_collide() {
        let t = tree(&[
            Child::symlink(b"a", b"sub"),
            Child::symlink(b"a/b", b"../../x"),
        ]);
        let p = plan(&t, false);
        assert_eq!(
            reason(&p, &t, b"img/a/b"),
            Some(SkipReason::Collision {
                other: b"a".to_vec(),
                holder: "symlink"
            })
        );
    }

    #[test]
    fn hard_links_copy_files_of_the_same_container_only() {
        let t = tree(&[
            Child::file(b"bin/busybox", Bytes::from_static(b"ELF")),
            Child::new(
                b"bin/ls",
                EntryKind::Hardlink {
                    target: b"bin/busybox".to_vec(),
                },
                Bytes::new(),
            ),
            Child::new(
                b"bin/ls2",
                EntryKind::Hardlink {
                    target: b"/bin/ls".to_vec(),
                },
                Bytes::new(),
            ),
            Child::new(
                b"passwd",
                EntryKind::Hardlink {
                    target: b"/etc/passwd".to_vec(),
                },
                Bytes::new(),
            ),
            Child::new(
                b"shadow",
                EntryKind::Hardlink {
                    target: b"../../etc/shadow".to_vec(),
                },
                Bytes::new(),
            ),
        ]);
        let p = plan(&t, false);
        let busybox = id_of(&t, b"img/bin/busybox");
        for l in [&b"img/bin/ls"[..], b"img/bin/ls2"] {
            let a = p.actions.iter().find(|a| a.node == id_of(&t, l)).unwrap();
            assert!(matches!(a.what, What::File { of } if of == busybox));
        }
        for l in [&b"img/passwd"[..], b"img/shadow"] {
            assert!(matches!(
                reason(&p, &t, l),
                Some(SkipReason::HardlinkTarget { .. })
            ));
        }
    }

    #[test]
    fn entries_that_failed_without_bytes_are_not_written() {
        let broken = Child::file(b"broken", Bytes::new())
            .with_error(crate::unpack::UnpackError::Truncated("cut".into()));
        let partial = Child::file(b"partial", Bytes::from_static(b"some"))
            .with_error(crate::unpack::UnpackError::Truncated("cut".into()));
        let t = tree(&[broken, partial, file(b"empty-but-fine")]);
        let p = plan(&t, false);
        assert_eq!(
            reason(&p, &t, b"img/broken"),
            Some(SkipReason::NotExtracted("truncated: cut".into()))
        );
        assert!(reason(&p, &t, b"img/partial").is_none());
        assert!(reason(&p, &t, b"img/empty-but-fine").is_none());
    }

    #[test]
    fn devices_are_skipped_and_names_keep_their_bytes() {
        let t = tree(&[
            Child::new(b"dev/console", EntryKind::Device, Bytes::new()),
            file(b"a\0b"),
            file(b"new\nline"),
            file(b"\xff\xfe.bin"),
        ]);
        let p = plan(&t, false);
        assert_eq!(reason(&p, &t, b"img/dev/console"), Some(SkipReason::Device));
        let names: Vec<Vec<u8>> = p.actions.iter().map(|a| join(&a.comps)).collect();
        assert!(names.contains(&b"a%00b".to_vec()));
        assert!(names.contains(&b"new\nline".to_vec()));
        assert!(names.contains(&b"\xff\xfe.bin".to_vec()));
    }

    #[test]
    fn duplicates_collide_and_case_collides_only_when_folded() {
        let children = [
            file(b"dup"),
            file(b"dup"),
            file(b"README"),
            file(b"readme"),
            Child::dir(b"etc"),
            Child::symlink(b"ETC", b"/"),
            Child::dir(b"dup"),
        ];
        let t = tree(&children);
        let p = plan(&t, false);
        let dup2 = t.nodes()[2..]
            .iter()
            .position(|n| n.path == b"img/dup")
            .unwrap()
            + 2;
        assert!(p.skipped.iter().any(|s| s.node == dup2
            && s.reason
                == SkipReason::Collision {
                    other: b"dup".to_vec(),
                    holder: "file"
                }));
        assert!(reason(&p, &t, b"img/readme").is_none());
        assert!(link_of(&p, &t, b"img/ETC").is_some());

        let p = plan(&t, true);
        assert_eq!(
            reason(&p, &t, b"img/readme"),
            Some(SkipReason::Collision {
                other: b"README".to_vec(),
                holder: "file"
            })
        );
        assert!(matches!(
            reason(&p, &t, b"img/ETC"),
            Some(SkipReason::Collision { .. })
        ));
    }

    #[test]
    fn deep_names_and_long_targets_stay_cheap() {
        // 1,000 entries 1,000 folders deep: quadratic work per entry would take minutes.
        let deep = b"d/".repeat(1000);
        let children: Vec<Child> = (0..1000)
            .map(|i| {
                let mut name = deep.clone();
                name.extend_from_slice(format!("f{i}").as_bytes());
                file(&name)
            })
            .chain([
                Child::symlink(b"long", b"x/".repeat(3000)),
                Child::symlink(b"climb", [&deep[..1000], &b"../".repeat(501)].concat()),
            ])
            .collect();
        let t = tree(&children);
        let started = std::time::Instant::now();
        let p = plan(&t, false);
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
        assert_eq!(p.actions.len(), 1000);
        assert_eq!(
            reason(&p, &t, b"img/long"),
            Some(SkipReason::SymlinkTooLong)
        );
        assert!(matches!(
            reason(&p, &t, b"img/climb"),
            Some(SkipReason::SymlinkEscapes { .. })
        ));
    }

    #[test]
    fn relative_paths_between_folders() {
        let p = |s: &str| -> Vec<Vec<u8>> {
            s.split('/')
                .filter(|c| !c.is_empty())
                .map(|c| c.as_bytes().to_vec())
                .collect()
        };
        assert_eq!(relative_path(&p("a/b"), &p("a/c/d")), b"../c/d");
        assert_eq!(relative_path(&p(""), &p("x")), b"x");
        assert_eq!(relative_path(&p("a"), &p("")), b"..");
        assert_eq!(relative_path(&p("a"), &p("a")), b".");
    }
}
