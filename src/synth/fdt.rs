//! Flattened device trees and U-Boot FIT images, written in code: a minimal FDT serialiser
//! (header v17, structure block, strings block, empty reservation map) and a FIT builder whose
//! images carry their data inline (`data`) or after the tree (`data-offset`/`data-size`, as
//! `mkimage -E` writes them), each with a hash node.

use sha2::{Digest, Sha256};

const FDT_MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const END: u32 = 9;

/// A device-tree property value.
#[derive(Clone, Debug)]
pub enum Value {
    /// A zero-terminated string.
    Str(String),
    /// A list of zero-terminated strings (`compatible`).
    Strs(Vec<String>),
    /// One big-endian 32-bit cell.
    U32(u32),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl Value {
    fn encode(&self) -> Vec<u8> {
        match self {
            Value::Str(s) => {
                let mut v = s.as_bytes().to_vec();
                v.push(0);
                v
            }
            Value::Strs(list) => list
                .iter()
                .flat_map(|s| s.bytes().chain(std::iter::once(0)))
                .collect(),
            Value::U32(n) => n.to_be_bytes().to_vec(),
            Value::Bytes(b) => b.clone(),
        }
    }
}

/// A device-tree node: properties, then children.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// Node name (`""` for the root, `uart@12080000` …).
    pub name: String,
    /// Properties in order.
    pub props: Vec<(String, Value)>,
    /// Child nodes in order.
    pub children: Vec<Node>,
}

impl Node {
    /// An empty node.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// Adds a property.
    pub fn prop(mut self, name: &str, value: Value) -> Self {
        self.props.push((name.to_owned(), value));
        self
    }

    /// Adds a child node.
    pub fn child(mut self, node: Node) -> Self {
        self.children.push(node);
        self
    }
}

fn align4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn put(v: &mut Vec<u8>, n: u32) {
    v.extend_from_slice(&n.to_be_bytes());
}

fn emit(node: &Node, structure: &mut Vec<u8>, strings: &mut Vec<u8>) {
    put(structure, BEGIN_NODE);
    structure.extend_from_slice(node.name.as_bytes());
    structure.push(0);
    align4(structure);
    for (name, value) in &node.props {
        let needle: Vec<u8> = name.bytes().chain(std::iter::once(0)).collect();
        let off = strings
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
            .unwrap_or_else(|| {
                let at = strings.len();
                strings.extend_from_slice(&needle);
                at
            });
        let data = value.encode();
        put(structure, PROP);
        put(structure, u32::try_from(data.len()).unwrap_or(u32::MAX));
        put(structure, u32::try_from(off).unwrap_or(u32::MAX));
        structure.extend_from_slice(&data);
        align4(structure);
    }
    for child in &node.children {
        emit(child, structure, strings);
    }
    put(structure, END_NODE);
}

/// Serialises `root` as a flattened device tree (version 17).
pub fn write(root: &Node) -> Vec<u8> {
    let mut structure = Vec::new();
    let mut strings = Vec::new();
    emit(root, &mut structure, &mut strings);
    put(&mut structure, END);
    let header_len = 40u32;
    let rsvmap = vec![0u8; 16];
    let off_rsvmap = header_len;
    let off_struct = off_rsvmap + rsvmap.len() as u32;
    let off_strings = off_struct + structure.len() as u32;
    let total = off_strings + strings.len() as u32;
    let mut out = Vec::with_capacity(total as usize);
    for v in [
        FDT_MAGIC,
        total,
        off_struct,
        off_strings,
        off_rsvmap,
        17,
        16,
        0,
        strings.len() as u32,
        structure.len() as u32,
    ] {
        put(&mut out, v);
    }
    out.extend_from_slice(&rsvmap);
    out.extend_from_slice(&structure);
    out.extend_from_slice(&strings);
    out
}

/// A device tree naming a board and its SoC, as vendors ship them.
pub fn board_dtb(model: &str, compatible: &[&str], soc_compatible: &str) -> Vec<u8> {
    let root = Node::new("")
        .prop("model", Value::Str(model.to_owned()))
        .prop(
            "compatible",
            Value::Strs(compatible.iter().map(|s| (*s).to_owned()).collect()),
        )
        .prop("#address-cells", Value::U32(1))
        .child(
            Node::new("soc")
                .prop("compatible", Value::Strs(vec![soc_compatible.to_owned()]))
                .child(
                    Node::new("uart@12080000")
                        .prop("compatible", Value::Strs(vec!["arm,pl011".into()]))
                        .prop("reg", Value::Bytes(vec![0x12, 0x08, 0, 0, 0, 0, 0x10, 0])),
                ),
        );
    write(&root)
}

/// How a FIT image's hash node is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    /// `algo = "crc32"`.
    Crc32,
    /// `algo = "sha256"`.
    Sha256,
}

/// One image of a FIT.
#[derive(Clone, Debug)]
pub struct FitImage {
    /// Node name under `/images` (`kernel`, `fdt-1` …).
    pub name: String,
    /// `type` (`kernel`, `ramdisk`, `flat_dt` …).
    pub kind: String,
    /// `compression` (`none`, `gzip`, `lzma` …) — the data is stored as given.
    pub compression: String,
    /// The stored data (already compressed when `compression` says so).
    pub data: Vec<u8>,
    /// Hash node.
    pub hash: Hash,
}

/// Builds a FIT image. With `external`, image data follows the tree (4-byte aligned) and each
/// image says where with `data-offset` (from the end of the tree) and `data-size`.
pub fn fit(description: &str, images: &[FitImage], external: bool) -> Vec<u8> {
    let mut blobs = Vec::new();
    let mut nodes = Vec::new();
    for img in images {
        let digest = match img.hash {
            Hash::Crc32 => crc32fast::hash(&img.data).to_be_bytes().to_vec(),
            Hash::Sha256 => Sha256::digest(&img.data).to_vec(),
        };
        let algo = match img.hash {
            Hash::Crc32 => "crc32",
            Hash::Sha256 => "sha256",
        };
        let mut node = Node::new(&img.name)
            .prop("description", Value::Str(format!("{} image", img.name)))
            .prop("type", Value::Str(img.kind.clone()))
            .prop("arch", Value::Str("arm".into()))
            .prop("os", Value::Str("linux".into()))
            .prop("compression", Value::Str(img.compression.clone()));
        if external {
            while blobs.len() % 4 != 0 {
                blobs.push(0);
            }
            node = node
                .prop("data-offset", Value::U32(blobs.len() as u32))
                .prop("data-size", Value::U32(img.data.len() as u32));
            blobs.extend_from_slice(&img.data);
        } else {
            node = node.prop("data", Value::Bytes(img.data.clone()));
        }
        node = node.child(
            Node::new("hash-1")
                .prop("value", Value::Bytes(digest))
                .prop("algo", Value::Str(algo.into())),
        );
        nodes.push(node);
    }
    let mut images_node = Node::new("images");
    images_node.children = nodes;
    let root = Node::new("")
        .prop("timestamp", Value::U32(1_700_000_000))
        .prop("description", Value::Str(description.to_owned()))
        .prop("#address-cells", Value::U32(1))
        .child(images_node)
        .child(
            Node::new("configurations")
                .prop("default", Value::Str("conf-1".into()))
                .child(Node::new("conf-1").prop("kernel", Value::Str("kernel".into()))),
        );
    let mut out = write(&root);
    if external {
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(&blobs);
    }
    out
}
