//! romfs writers: Linux romfs laid out as genromfs lays it out (`.` and `..` first in every
//! directory, 16-byte aligned headers with checksums, the image padded to 1 KiB) and Ambarella's
//! ROMFS (2 KiB header, 128-byte entries, data padded by 2 KiB steps), for round-trip tests.

use std::collections::{HashMap, VecDeque};

use super::SynthError;

/// One entry of a Linux romfs image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RomfsNode {
    /// A directory (parents of other entries are created implicitly).
    Dir,
    /// A regular file; `exec` sets the executable bit.
    File {
        /// Contents.
        data: Vec<u8>,
        /// Whether the file is executable.
        exec: bool,
    },
    /// A symbolic link to a target.
    Symlink(Vec<u8>),
    /// A block device (major, minor).
    BlockDevice(u16, u16),
    /// A character device (major, minor).
    CharDevice(u16, u16),
    /// A named pipe.
    Fifo,
    /// A hard link to the entry at another path of the same image.
    Hardlink(String),
}

struct Node {
    name: Vec<u8>,
    kind: RomfsNode,
    parent: usize,
    children: Vec<usize>,
}

fn pad16(n: usize) -> usize {
    n.div_ceil(16) * 16
}

fn data_of(kind: &RomfsNode) -> &[u8] {
    match kind {
        RomfsNode::File { data, .. } => data,
        RomfsNode::Symlink(t) => t,
        _ => &[],
    }
}

/// Sets the checksum word at `at + 12` (zero until then) so the big-endian words of `range` sum
/// to zero.
fn checksum(img: &mut [u8], range: std::ops::Range<usize>, at: usize) {
    let sum = img
        .get(range)
        .unwrap_or_default()
        .chunks_exact(4)
        .filter_map(|w| <[u8; 4]>::try_from(w).ok())
        .map(u32::from_be_bytes)
        .fold(0u32, u32::wrapping_add);
    if let Some(w) = img.get_mut(at + 12..at + 16) {
        w.copy_from_slice(&0u32.wrapping_sub(sum).to_be_bytes());
    }
}

fn put(img: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(w) = img.get_mut(at..at + bytes.len()) {
        w.copy_from_slice(bytes);
    }
}

/// Writes a Linux romfs image named `volume` holding `entries` (paths relative to the root,
/// `/`-separated), in the order given within each directory.
pub fn build(volume: &str, entries: &[(&str, RomfsNode)]) -> Result<Vec<u8>, SynthError> {
    let mut nodes = vec![Node {
        name: Vec::new(),
        kind: RomfsNode::Dir,
        parent: 0,
        children: Vec::new(),
    }];
    let mut by_path: HashMap<String, usize> = HashMap::from([(String::new(), 0)]);
    for (path, kind) in entries {
        let mut parent = 0usize;
        let mut so_far = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, dirs)) = parts.split_last() else {
            return Err(SynthError::Invalid(format!("empty romfs path {path:?}")));
        };
        for (i, part) in dirs.iter().chain(std::iter::once(last)).enumerate() {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(part);
            let is_last = i == dirs.len();
            if let Some(&n) = by_path.get(&so_far) {
                if is_last {
                    return Err(SynthError::Invalid(format!("romfs path {path:?} twice")));
                }
                parent = n;
                continue;
            }
            let n = nodes.len();
            nodes.push(Node {
                name: part.as_bytes().to_vec(),
                kind: if is_last {
                    kind.clone()
                } else {
                    RomfsNode::Dir
                },
                parent,
                children: Vec::new(),
            });
            if let Some(p) = nodes.get_mut(parent) {
                p.children.push(n);
            }
            by_path.insert(so_far.clone(), n);
            parent = n;
        }
    }

    // Pass 1: where every header goes. Each directory's listing (".", "..", its entries) is
    // contiguous; listings follow one another breadth first.
    let entry_len = |name: &[u8], data: &[u8]| 16 + pad16(name.len() + 1) + pad16(data.len());
    let mut cursor = 16 + pad16(volume.len() + 1);
    let mut listing_at = vec![0usize; nodes.len()];
    let mut header_at = vec![0usize; nodes.len()];
    let mut order = Vec::new();
    let mut queue = VecDeque::from([0usize]);
    while let Some(d) = queue.pop_front() {
        order.push(d);
        if let Some(l) = listing_at.get_mut(d) {
            *l = cursor;
        }
        cursor += entry_len(b".", &[]) + entry_len(b"..", &[]);
        for &c in nodes
            .get(d)
            .map(|n| n.children.as_slice())
            .unwrap_or_default()
        {
            let n = nodes
                .get(c)
                .ok_or_else(|| SynthError::Invalid("node".into()))?;
            if let Some(h) = header_at.get_mut(c) {
                *h = cursor;
            }
            cursor += entry_len(&n.name, data_of(&n.kind));
            if n.kind == RomfsNode::Dir {
                queue.push_back(c);
            }
        }
    }
    let full = cursor;
    let mut img = vec![0u8; full.div_ceil(1024) * 1024];

    // Pass 2: the headers, names and data.
    for &d in &order {
        let dir = nodes
            .get(d)
            .ok_or_else(|| SynthError::Invalid("node".into()))?;
        let here = listing_at.get(d).copied().unwrap_or(0);
        let parent_listing = listing_at.get(dir.parent).copied().unwrap_or(0);
        let mut list: Vec<(Vec<u8>, u32, u32, &[u8])> = vec![
            (b".".to_vec(), 0x9, here as u32, &[]),
            (b"..".to_vec(), 0x0, parent_listing as u32, &[]),
        ];
        for &c in &dir.children {
            let n = nodes
                .get(c)
                .ok_or_else(|| SynthError::Invalid("node".into()))?;
            let (ty, info) = match &n.kind {
                RomfsNode::Dir => (0x9, listing_at.get(c).copied().unwrap_or(0) as u32),
                RomfsNode::File { exec, .. } => (if *exec { 0xA } else { 0x2 }, 0),
                RomfsNode::Symlink(_) => (0x3, 0),
                RomfsNode::BlockDevice(ma, mi) => (0x4, u32::from(*ma) << 16 | u32::from(*mi)),
                RomfsNode::CharDevice(ma, mi) => (0x5, u32::from(*ma) << 16 | u32::from(*mi)),
                RomfsNode::Fifo => (0x7, 0),
                RomfsNode::Hardlink(target) => {
                    let t = by_path.get(target.trim_matches('/')).ok_or_else(|| {
                        SynthError::Invalid(format!("hard link to missing {target:?}"))
                    })?;
                    (0x0, header_at.get(*t).copied().unwrap_or(0) as u32)
                }
            };
            list.push((n.name.clone(), ty, info, data_of(&n.kind)));
        }
        let mut at = here;
        for (i, (name, ty, info, data)) in list.iter().enumerate() {
            let len = entry_len(name, data);
            let next = if i + 1 < list.len() { at + len } else { 0 };
            put(&mut img, at, &((next as u32) | ty).to_be_bytes());
            put(&mut img, at + 4, &info.to_be_bytes());
            put(&mut img, at + 8, &(data.len() as u32).to_be_bytes());
            put(&mut img, at + 16, name);
            let data_at = at + 16 + pad16(name.len() + 1);
            checksum(&mut img, at..data_at, at);
            put(&mut img, data_at, data);
            at += len;
        }
    }

    put(&mut img, 0, b"-rom1fs-");
    put(&mut img, 8, &(full as u32).to_be_bytes());
    put(&mut img, 16, volume.as_bytes());
    checksum(&mut img, 0..full.min(512), 0);
    Ok(img)
}

/// Writes an Ambarella ROMFS image of `files` (flat names, at most 115 bytes each).
pub fn ambarella(files: &[(&str, &[u8])]) -> Result<Vec<u8>, SynthError> {
    // Every region is followed by padding up to the next 2 KiB, a whole 2 KiB when aligned.
    let padded = |end: usize| end + 2048 - end % 2048;
    let mut img = vec![0xFFu8; 2048];
    put(&mut img, 0, &(files.len() as u32).to_le_bytes());
    put(&mut img, 4, &0x66FC_328Au32.to_le_bytes());
    let mut offset = padded(2048 + files.len() * 128);
    for (name, data) in files {
        if name.len() > 115 {
            return Err(SynthError::Invalid(format!("name {name:?} too long")));
        }
        let mut entry = vec![0u8; 128];
        put(&mut entry, 0, name.as_bytes());
        put(&mut entry, 116, &(offset as u32).to_le_bytes());
        put(&mut entry, 120, &(data.len() as u32).to_le_bytes());
        put(&mut entry, 124, &0x2387_AB76u32.to_le_bytes());
        img.extend_from_slice(&entry);
        offset = padded(offset + data.len());
    }
    for (_, data) in files {
        let start = padded(img.len());
        img.resize(start, 0xFF);
        img.extend_from_slice(data);
    }
    let end = padded(img.len());
    img.resize(end, 0xFF);
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_checksum_to_zero_and_the_image_is_aligned() {
        let img = build(
            "vol",
            &[
                (
                    "bin/sh",
                    RomfsNode::File {
                        data: b"#!".to_vec(),
                        exec: true,
                    },
                ),
                ("etc", RomfsNode::Dir),
            ],
        )
        .unwrap();
        assert_eq!(&img[..8], b"-rom1fs-");
        assert_eq!(img.len() % 1024, 0);
        let full = u32::from_be_bytes(img[8..12].try_into().unwrap()) as usize;
        let sum = img[..full.min(512)]
            .chunks_exact(4)
            .map(|w| u32::from_be_bytes(w.try_into().unwrap()))
            .fold(0u32, u32::wrapping_add);
        assert_eq!(sum, 0);
        // The root listing starts at 32 with "." (a directory pointing at itself).
        assert_eq!(
            u32::from_be_bytes(img[32..36].try_into().unwrap()) & 0xF,
            0x9
        );
        assert_eq!(u32::from_be_bytes(img[36..40].try_into().unwrap()), 32);
        assert!(build("v", &[("a", RomfsNode::Hardlink("missing".into()))]).is_err());
    }

    #[test]
    fn ambarella_data_is_padded_by_whole_blocks() {
        let img = ambarella(&[("a.bin", &[1u8; 2048]), ("b.bin", b"xyz")]).unwrap();
        // Header, table padded to 4096, a.bin at 4096..6144 then a whole block of padding.
        assert_eq!(img[4096], 1);
        assert_eq!(&img[8192..8195], b"xyz");
        assert_eq!(img.len(), 10240);
    }
}
