//! The unpacked tree: what a format hands back ([`Unpacked`], [`Child`]) and what the engine builds
//! from it ([`Tree`], [`Node`]), with every node's provenance (the chain of formats and offsets that
//! produced it and what each container said about it).

use bytes::Bytes;
use serde::Serialize;

use super::UnpackError;

/// Free-form facts a container states about itself or an entry (uImage name, CRC ok, zip method …).
pub type Meta = serde_json::Map<String, serde_json::Value>;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Regular file (also: a stream or carved region, which has bytes).
    File,
    /// Directory.
    Dir,
    /// Symbolic link to `target` (raw bytes, as stored).
    Symlink {
        /// Link target as stored in the container.
        #[serde(skip)]
        target: Vec<u8>,
    },
    /// Hard link to another entry of the same container (`target` is that entry's name).
    Hardlink {
        /// Name of the linked entry inside the container.
        #[serde(skip)]
        target: Vec<u8>,
    },
    /// Character or block device, FIFO or socket: listed, never written.
    Device,
}

impl EntryKind {
    /// The name used in JSON output.
    pub fn as_str(&self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::Hardlink { .. } => "hardlink",
            EntryKind::Device => "device",
        }
    }
}

/// One entry produced by a format's `unpack`.
#[derive(Clone, Debug)]
pub struct Child {
    /// Name inside the container, `/`-separated; may be non-UTF-8.
    pub name: Vec<u8>,
    /// Entry type.
    pub kind: EntryKind,
    /// File contents (empty for non-files). Slices of the parent share its memory.
    pub data: Bytes,
    /// Unix permission bits and type, where the container records them.
    pub mode: Option<u32>,
    /// Offset of the entry's bytes inside the container, where meaningful.
    pub offset: Option<u64>,
    /// What the container said about this entry.
    pub meta: Meta,
    /// A failure confined to this entry (the rest of the container is fine).
    pub error: Option<UnpackError>,
}

impl Child {
    /// A regular file.
    pub fn file(name: impl Into<Vec<u8>>, data: Bytes) -> Self {
        Self::new(name, EntryKind::File, data)
    }

    /// A directory.
    pub fn dir(name: impl Into<Vec<u8>>) -> Self {
        Self::new(name, EntryKind::Dir, Bytes::new())
    }

    /// A symbolic link.
    pub fn symlink(name: impl Into<Vec<u8>>, target: impl Into<Vec<u8>>) -> Self {
        Self::new(
            name,
            EntryKind::Symlink {
                target: target.into(),
            },
            Bytes::new(),
        )
    }

    /// An entry of any kind.
    pub fn new(name: impl Into<Vec<u8>>, kind: EntryKind, data: Bytes) -> Self {
        Self {
            name: name.into(),
            kind,
            data,
            mode: None,
            offset: None,
            meta: Meta::new(),
            error: None,
        }
    }

    /// Sets the mode bits.
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Sets the offset inside the container.
    pub fn with_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    /// Records a failure confined to this entry.
    pub fn with_error(mut self, error: UnpackError) -> Self {
        self.error = Some(error);
        self
    }

    /// Adds a fact about the entry.
    pub fn with_meta(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.meta.insert(key.to_owned(), value.into());
        self
    }
}

/// What a format's `unpack` returns for one structure.
#[derive(Clone, Debug, Default)]
pub struct Unpacked {
    /// True extent of the structure in bytes from its start (trailing data is not part of it).
    pub consumed: u64,
    /// What the structure's header said (names, versions, compression, checksum results …).
    pub meta: Meta,
    /// The entries, in the container's order.
    pub children: Vec<Child>,
    /// A failure that stopped the structure partway (a truncated archive, a bomb caught at its
    /// limit): the entries before it are still listed and analysed, and the error is recorded on
    /// the structure's node.
    pub error: Option<UnpackError>,
}

impl Unpacked {
    /// An empty result of the given extent.
    pub fn new(consumed: u64) -> Self {
        Self {
            consumed,
            ..Self::default()
        }
    }

    /// Records a failure that stopped the structure partway (see [`Unpacked::error`]).
    pub fn partial(mut self, error: UnpackError) -> Self {
        self.error = Some(error);
        self
    }

    /// Adds a fact about the structure.
    pub fn meta(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.meta.insert(key.to_owned(), value.into());
        self
    }
}

/// How a stretch of a blob that no format claimed looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// Erased flash or zero fill (all 0xFF or all 0x00).
    Padding,
    /// Anything else: unknown or encrypted data.
    Opaque,
}

/// A stretch of a blob that no format claimed.
#[derive(Clone, Debug, Serialize)]
pub struct Gap {
    /// Offset inside the blob.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Padding or opaque.
    pub kind: GapKind,
}

impl Gap {
    /// The gap's bytes inside `blob` (the blob it was found in); empty when it lies outside.
    pub fn bytes<'a>(&self, blob: &'a [u8]) -> &'a [u8] {
        usize::try_from(self.offset)
            .ok()
            .zip(usize::try_from(self.offset.saturating_add(self.len)).ok())
            .and_then(|(s, e)| blob.get(s..e))
            .unwrap_or_default()
    }

    /// Shannon entropy of the gap's bytes in bits per byte (0–8), `blob` being the blob it was
    /// found in. Computed on demand: only the fingerprint reads it.
    pub fn entropy(&self, blob: &[u8]) -> f32 {
        crate::unpack::carve::entropy(self.bytes(blob))
    }
}

/// Where a node came from inside its parent.
#[derive(Clone, Debug, Serialize)]
pub struct Origin {
    /// The format of the parent that produced this node (`carve` for a region found by scanning).
    pub container: &'static str,
    /// Offset of this node's bytes inside the parent's bytes, where meaningful.
    pub offset: Option<u64>,
}

/// One entry of the unpacked tree.
#[derive(Clone, Debug)]
pub struct Node {
    /// Full path: the image name, then each container's entry names, joined with `/`.
    pub path: Vec<u8>,
    /// Parent node index (`None` for the root).
    pub parent: Option<usize>,
    /// Children indices, in container order.
    pub children: Vec<usize>,
    /// Nesting depth (the image is 0).
    pub depth: u32,
    /// Entry type.
    pub kind: EntryKind,
    /// Bytes of the entry (files and carved regions).
    pub data: Bytes,
    /// SHA-256 of `data`, for files.
    pub sha256: Option<[u8; 32]>,
    /// Unix mode bits, where known.
    pub mode: Option<u32>,
    /// How this node was produced (`None` for the root).
    pub origin: Option<Origin>,
    /// What the parent container said about this entry.
    pub meta: Meta,
    /// The format this node's bytes were unpacked as (`carve` when regions were found inside it).
    pub format: Option<&'static str>,
    /// What this node's own format header said.
    pub format_meta: Meta,
    /// Unclaimed stretches of this blob, when it was carved or has trailing data.
    pub gaps: Vec<Gap>,
    /// Why this blob (or entry) could not be fully unpacked.
    pub error: Option<UnpackError>,
    /// Index of an earlier node with identical bytes whose unpacking this one reuses.
    pub same_as: Option<usize>,
}

impl Node {
    /// The root of a tree: the image itself, named `name`, nothing known about it yet.
    pub fn root(name: &[u8], data: Bytes) -> Self {
        Node {
            path: name.to_vec(),
            parent: None,
            children: Vec::new(),
            depth: 0,
            kind: EntryKind::File,
            data,
            sha256: None,
            mode: None,
            origin: None,
            meta: Meta::new(),
            format: None,
            format_meta: Meta::new(),
            gaps: Vec::new(),
            error: None,
            same_as: None,
        }
    }
}

/// The result of unpacking one image: a flat arena of nodes, root first.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub(crate) nodes: Vec<Node>,
}

impl Tree {
    /// All nodes, in creation order (breadth first; the root is index 0).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The root node (the image itself).
    pub fn root(&self) -> Option<&Node> {
        self.nodes.first()
    }

    /// Node by index.
    pub fn get(&self, id: usize) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// Node indices in depth-first pre-order (a container, then its entries, recursively).
    pub fn dfs(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack = Vec::new();
        if !self.nodes.is_empty() {
            stack.push(0usize);
        }
        while let Some(id) = stack.pop() {
            out.push(id);
            if let Some(n) = self.nodes.get(id) {
                stack.extend(n.children.iter().rev().copied());
            }
        }
        out
    }

    /// The chain of formats that produced node `id`, from the image down, each with the offset at
    /// which the next step was found (where meaningful).
    pub fn chain(&self, id: usize) -> Vec<(&'static str, Option<u64>)> {
        let mut out = Vec::new();
        let mut cur = self.nodes.get(id);
        while let Some(n) = cur {
            if let Some(origin) = &n.origin {
                out.push((origin.container, origin.offset));
            }
            cur = n.parent.and_then(|p| self.nodes.get(p));
        }
        out.reverse();
        out
    }

    /// Nodes that carry an error.
    pub fn errors(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.error.is_some())
    }

    /// Nodes whose path ends with `suffix` (a convenience for tests and scripts).
    pub fn find(&self, suffix: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.path.ends_with(suffix.as_bytes()))
    }
}

/// A name from untrusted data made safe for a terminal: control characters escaped (`\n`,
/// `\u{0}` …) and bytes that are not UTF-8 shown as `\xNN`. JSON output keeps names exact instead.
pub fn escape_name(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                s.extend(c.escape_default());
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}
