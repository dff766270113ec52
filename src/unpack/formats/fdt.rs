//! Flattened device trees (magic `d00dfeed`) and the U-Boot FIT images built on them. A plain
//! device tree is a leaf: recognised, sized by its header's `totalsize`, and described by its
//! root `model` and `compatible`. A FIT (a tree with an `/images` node) becomes a container:
//! every image under `/images` is a child, its data taken inline (`data`) or from after the tree
//! (`data-offset` from the 4-byte-aligned end of the tree, or `data-position` from its start,
//! with `data-size`), decompressed per its `compression`, and checked against its `hash-*` nodes
//! (crc32, sha1, sha256; others reported unchecked).
//!
//! Layout from the Devicetree Specification (v0.4, chapter 5) and U-Boot's
//! `doc/usage/fit/source_file_format.rst`.

use bytes::Bytes;
use sha2::Digest;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::codec::{self, Codec};
use crate::unpack::tree::{Child, Unpacked};

/// Flattened device tree or FIT image.
pub struct Fdt;

/// Header magic.
pub const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
/// Deepest node nesting followed.
const MAX_DEPTH: usize = 64;

/// The header fields that locate the blocks.
#[derive(Clone, Copy, Debug)]
struct Header {
    total: usize,
    off_struct: usize,
    off_strings: usize,
    size_strings: usize,
    size_struct: usize,
    version: u32,
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

fn header(b: &[u8]) -> Option<Header> {
    if be32(b, 0)? != MAGIC {
        return None;
    }
    let word = |i: usize| be32(b, i * 4).and_then(|v| usize::try_from(v).ok());
    let total = word(1)?;
    let off_struct = word(2)?;
    let off_strings = word(3)?;
    let off_rsvmap = word(4)?;
    let version = be32(b, 20)?;
    let last_comp = be32(b, 24)?;
    let size_strings = word(8)?;
    if !(16..=17).contains(&version) || last_comp > 17 || total < HEADER_LEN {
        return None;
    }
    let size_struct = if version >= 17 {
        word(9)?
    } else {
        total.checked_sub(off_struct)?
    };
    let struct_end = off_struct.checked_add(size_struct)?;
    let strings_end = off_strings.checked_add(size_strings)?;
    let min_off = if version >= 17 { HEADER_LEN } else { 36 };
    if off_struct < min_off
        || off_strings < min_off
        || off_rsvmap < min_off
        || off_rsvmap >= total
        || struct_end > total
        || strings_end > total
        || size_struct < 8
        || off_struct % 4 != 0
    {
        return None;
    }
    Some(Header {
        total,
        off_struct,
        off_strings,
        size_strings,
        size_struct,
        version,
    })
}

/// A node's properties as read, with its path.
#[derive(Debug, Default)]
struct RawNode<'a> {
    path: Vec<&'a [u8]>,
    /// (name, value, offset of the value inside the blob).
    props: Vec<(&'a [u8], &'a [u8], usize)>,
}

impl<'a> RawNode<'a> {
    fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.props
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, v, _)| v)
    }

    fn offset_of(&self, name: &[u8]) -> Option<usize> {
        self.props
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, _, o)| o)
    }

    fn string(&self, name: &[u8]) -> Option<String> {
        let v = self.get(name)?;
        let v = v.split(|&c| c == 0).next()?;
        std::str::from_utf8(v).ok().map(str::to_owned)
    }

    fn u32(&self, name: &[u8]) -> Option<u32> {
        let v = self.get(name)?;
        be32(v, 0).filter(|_| v.len() == 4)
    }
}

/// Every node of the tree with its path and properties, in structure order.
fn nodes<'a>(blob: &'a [u8], h: &Header, ctx: &Ctx<'_>) -> Result<Vec<RawNode<'a>>, UnpackError> {
    let corrupt = |m: &str| UnpackError::Corrupt(format!("device tree: {m}"));
    let structure = blob
        .get(h.off_struct..h.off_struct + h.size_struct)
        .ok_or_else(|| corrupt("structure block outside the blob"))?;
    let strings = blob
        .get(h.off_strings..h.off_strings + h.size_strings)
        .ok_or_else(|| corrupt("strings block outside the blob"))?;
    let mut out: Vec<RawNode<'a>> = Vec::new();
    // Indices into `out` of the open nodes.
    let mut open: Vec<usize> = Vec::new();
    let mut pos = 0usize;
    loop {
        ctx.check()?;
        let token = be32(structure, pos).ok_or_else(|| corrupt("structure block ends early"))?;
        pos += 4;
        match token {
            BEGIN_NODE => {
                let rest = structure.get(pos..).unwrap_or_default();
                let len = rest
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or_else(|| corrupt("unterminated node name"))?;
                let name = rest.get(..len).unwrap_or_default();
                pos = (pos + len + 1 + 3) & !3;
                if open.len() >= MAX_DEPTH {
                    return Err(corrupt("nodes nested too deep"));
                }
                let mut path = open
                    .last()
                    .and_then(|&i| out.get(i))
                    .map(|n| n.path.clone())
                    .unwrap_or_default();
                path.push(name);
                open.push(out.len());
                out.push(RawNode {
                    path,
                    props: Vec::new(),
                });
            }
            END_NODE => {
                open.pop()
                    .ok_or_else(|| corrupt("unbalanced end of node"))?;
            }
            PROP => {
                let len = be32(structure, pos).ok_or_else(|| corrupt("property cut short"))?;
                let nameoff =
                    be32(structure, pos + 4).ok_or_else(|| corrupt("property cut short"))?;
                let len = usize::try_from(len).map_err(|_| corrupt("property length"))?;
                let start = pos + 8;
                let value = start
                    .checked_add(len)
                    .and_then(|end| structure.get(start..end))
                    .ok_or_else(|| corrupt("property value beyond the structure block"))?;
                let name = usize::try_from(nameoff)
                    .ok()
                    .and_then(|o| strings.get(o..))
                    .and_then(|s| s.split(|&c| c == 0).next())
                    .ok_or_else(|| corrupt("property name outside the strings block"))?;
                pos = start
                    .checked_add(len)
                    .and_then(|e| e.checked_add(3))
                    .ok_or_else(|| corrupt("property length"))?
                    & !3;
                let node = open
                    .last()
                    .and_then(|&i| out.get_mut(i))
                    .ok_or_else(|| corrupt("property outside any node"))?;
                node.props.push((name, value, h.off_struct + start));
            }
            NOP => {}
            END => {
                if !open.is_empty() {
                    return Err(corrupt("end of structure inside a node"));
                }
                return Ok(out);
            }
            other => return Err(corrupt(&format!("unknown token {other:#x}"))),
        }
    }
}

fn codec_of(name: &str) -> Result<Option<Codec>, UnpackError> {
    Ok(match name {
        "none" => None,
        "gzip" => Some(Codec::Gzip),
        "bzip2" => Some(Codec::Bzip2),
        "lzma" => Some(Codec::Lzma),
        "lzo" => Some(Codec::Lzo),
        "lz4" => Some(Codec::Lz4),
        "zstd" => Some(Codec::Zstd),
        other => {
            return Err(UnpackError::Unsupported(format!(
                "FIT compression '{other}'"
            )));
        }
    })
}

/// Checks `data` against a hash node: `Some(ok)` for a known algorithm, `None` otherwise.
fn hash_ok(algo: &str, value: &[u8], data: &[u8]) -> Option<bool> {
    Some(match algo {
        "crc32" => value == crc32fast::hash(data).to_be_bytes(),
        "sha1" => value == sha1::Sha1::digest(data).as_slice(),
        "sha256" => value == sha2::Sha256::digest(data).as_slice(),
        _ => return None,
    })
}

/// A usable child name from a node name.
fn child_name(name: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = name
        .iter()
        .map(|&c| if c == b'/' || c < 0x20 { b'_' } else { c })
        .collect();
    if clean.is_empty() || clean == b"." || clean == b".." {
        b"image".to_vec()
    } else {
        clean
    }
}

impl Format for Fdt {
    fn name(&self) -> &'static str {
        "fdt"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(&[0xd0, 0x0d, 0xfe, 0xed])];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        header(data).is_some_and(|h| {
            // The structure block must open with the root node's BEGIN_NODE and an empty name.
            be32(data, h.off_struct) == Some(BEGIN_NODE) && data.get(h.off_struct + 4) == Some(&0)
        })
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let h = header(data).ok_or_else(|| UnpackError::Corrupt("device tree header".into()))?;
        if h.total > data.len() {
            return Err(UnpackError::Truncated(format!(
                "device tree: header says {} bytes, {} present",
                h.total,
                data.len()
            )));
        }
        let blob = data.get(..h.total).unwrap_or_default();
        let all = nodes(blob, &h, ctx)?;
        let root = all.first();
        let mut out = Unpacked::new(h.total as u64).meta("version", h.version);
        if let Some(root) = root {
            if let Some(m) = root.string(b"model") {
                out = out.meta("model", m);
            }
            if let Some(d) = root.string(b"description") {
                out = out.meta("description", d);
            }
            if let Some(c) = root.get(b"compatible") {
                let list: Vec<String> = c
                    .split(|&b| b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect();
                out = out.meta("compatible", list);
            }
        }
        out = out.meta("node_count", all.len());
        let images: Vec<&RawNode<'_>> = all
            .iter()
            .filter(|n| n.path.len() == 3 && n.path.get(1) == Some(&&b"images"[..]))
            .collect();
        if images.is_empty() {
            return Ok(out.meta("kind", "device_tree"));
        }
        out = out.meta("kind", "fit").meta("image_count", images.len());
        ctx.entries(images.len() as u64)?;
        // External data starts after the tree, 4-byte aligned.
        let data_base = (h.total as u64 + 3) & !3;
        let mut extent = h.total as u64;
        for img in images {
            ctx.check()?;
            let name = img.path.last().copied().unwrap_or_default();
            let mut child_meta = serde_json::Map::new();
            for key in ["description", "type", "arch", "os", "compression"] {
                if let Some(v) = img.string(key.as_bytes()) {
                    child_meta.insert(key.to_owned(), v.into());
                }
            }
            let inline = img.get(b"data").zip(img.offset_of(b"data"));
            let stored: Result<(Bytes, u64), UnpackError> = if let Some((v, off)) = inline {
                Ok((data.slice(off..off + v.len()), off as u64))
            } else {
                let size = img.u32(b"data-size").map(u64::from);
                let start = img
                    .u32(b"data-position")
                    .map(u64::from)
                    .or_else(|| img.u32(b"data-offset").map(|o| data_base + u64::from(o)));
                match (start, size) {
                    (Some(start), Some(size)) => {
                        let end = start.saturating_add(size);
                        match (usize::try_from(start), usize::try_from(end)) {
                            (Ok(s), Ok(e)) if e <= data.len() => {
                                extent = extent.max(end);
                                Ok((data.slice(s..e), start))
                            }
                            _ => Err(UnpackError::Truncated(format!(
                                "FIT image '{}': external data {start}..{end} beyond the input ({} bytes)",
                                String::from_utf8_lossy(name),
                                data.len()
                            ))),
                        }
                    }
                    _ => Err(UnpackError::Corrupt(format!(
                        "FIT image '{}' has neither data nor data-size with data-offset/position",
                        String::from_utf8_lossy(name)
                    ))),
                }
            };
            let (stored, offset) = match stored {
                Ok(s) => s,
                Err(e) => {
                    let mut child = Child::file(child_name(name), Bytes::new()).with_error(e);
                    child.meta = child_meta;
                    out.children.push(child);
                    continue;
                }
            };
            // Hash nodes are the image's direct children named hash*.
            let mut hashes = Vec::new();
            for hn in all.iter().filter(|n| {
                n.path.len() == img.path.len() + 1
                    && n.path.starts_with(&img.path)
                    && n.path.last().is_some_and(|l| l.starts_with(b"hash"))
            }) {
                let algo = hn.string(b"algo").unwrap_or_default();
                let ok = hn.get(b"value").and_then(|v| hash_ok(&algo, v, &stored));
                hashes.push(serde_json::json!({ "algo": algo, "ok": ok }));
            }
            if !hashes.is_empty() {
                child_meta.insert("hashes".into(), hashes.into());
            }
            let compression = img.string(b"compression").unwrap_or_else(|| "none".into());
            let (bytes, error) = match codec_of(&compression) {
                Ok(None) => (stored, None),
                Ok(Some(c)) => match codec::decode(c, &stored, ctx) {
                    Ok(d) => (Bytes::from(d.data), None),
                    Err(e @ UnpackError::Limit(_)) => return Err(e),
                    Err(e) => (stored, Some(e)),
                },
                Err(e) => (stored, Some(e)),
            };
            let mut child = Child::file(child_name(name), bytes).with_offset(offset);
            child.meta = child_meta;
            if let Some(e) = error {
                child = child.with_error(e);
            }
            out.children.push(child);
        }
        out.consumed = extent;
        Ok(out)
    }
}
