//! squashfs v4 (little-endian) images of a [`Rootfs`], written with backhand's `FilesystemWriter`
//! (the reader fwsim unpacks them with is separate code, so round trips test both sides).

use std::io::Cursor;

use backhand::compression::{CompressionOptions, Compressor, Lz4};
use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};

use super::SynthError;
use super::content::{EntryData, Rootfs};

/// The compressors fwsim can write (those backhand is built with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// zlib/deflate (squashfs "gzip").
    Gzip,
    /// xz, the usual choice of camera firmware.
    Xz,
    /// zstd.
    Zstd,
    /// lz4.
    Lz4,
}

impl Compression {
    /// The name squashfs-tools and fwsim use for it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }

    fn compressor(self) -> Result<FilesystemCompressor, SynthError> {
        // backhand's defaults (xz and gzip at level 9 with a block-sized dictionary) are what
        // mksquashfs writes; lz4 needs its options spelled out.
        let (id, options) = match self {
            Compression::Gzip => (Compressor::Gzip, None),
            Compression::Xz => (Compressor::Xz, None),
            Compression::Zstd => (Compressor::Zstd, None),
            Compression::Lz4 => (
                Compressor::Lz4,
                Some(CompressionOptions::Lz4(Lz4 {
                    version: 1,
                    flags: 0,
                })),
            ),
        };
        FilesystemCompressor::new(id, options).map_err(|e| SynthError::Squashfs(e.to_string()))
    }
}

/// Writes `rootfs` as a squashfs v4 image with `compression` and `block_size` (a power of two
/// from 4 KiB to 1 MiB; 128 KiB is the mksquashfs default). The image is padded to 4 KiB.
pub fn build(
    rootfs: &Rootfs,
    compression: Compression,
    block_size: u32,
) -> Result<Vec<u8>, SynthError> {
    if !(backhand::MIN_BLOCK_SIZE..=backhand::MAX_BLOCK_SIZE).contains(&block_size)
        || !block_size.is_power_of_two()
    {
        return Err(SynthError::Invalid(format!(
            "squashfs block size {block_size} is not a power of two between 4 KiB and 1 MiB"
        )));
    }
    let mut fs = FilesystemWriter::default();
    fs.set_block_size(block_size);
    fs.set_time(super::content::BUILD_TIME);
    fs.set_root_mode(0o755);
    fs.set_compressor(compression.compressor()?);
    let err = |path: &str, e: backhand::BackhandError| SynthError::Squashfs(format!("{path}: {e}"));
    for (path, entry) in rootfs.entries() {
        let header = NodeHeader::new(entry.mode, 0, 0, entry.mtime);
        match &entry.data {
            EntryData::Dir => fs.push_dir(path, header).map_err(|e| err(path, e))?,
            EntryData::File(data) => fs
                .push_file(Cursor::new(data.as_slice()), path, header)
                .map_err(|e| err(path, e))?,
            EntryData::Symlink(target) => fs
                .push_symlink(target.as_str(), path, header)
                .map_err(|e| err(path, e))?,
        }
    }
    let mut out = Cursor::new(Vec::new());
    fs.write(&mut out)
        .map_err(|e| SynthError::Squashfs(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhand::{FilesystemReader, InnerNode};
    use std::collections::BTreeMap;
    use std::io::Read;

    fn sample() -> Rootfs {
        let mut r = Rootfs::new();
        r.file("bin/busybox", vec![0x7f; 300_000], 0o755)
            .symlink("bin/sh", "busybox")
            .file(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
                0o644,
            )
            .dir("tmp", 0o1777);
        r
    }

    /// Reads an image back with backhand's reader: path → (kind, bytes or target, mode).
    fn read_back(img: &[u8]) -> BTreeMap<String, (String, Vec<u8>, u16)> {
        let fs = FilesystemReader::from_reader(Cursor::new(img.to_vec())).unwrap();
        let mut out = BTreeMap::new();
        for node in fs.files() {
            let path = node
                .fullpath
                .to_string_lossy()
                .trim_start_matches('/')
                .to_owned();
            if path.is_empty() {
                continue;
            }
            let mode = node.header.permissions;
            let v = match &node.inner {
                InnerNode::File(f) => {
                    let mut buf = Vec::new();
                    fs.file(f).reader().read_to_end(&mut buf).unwrap();
                    ("file".to_owned(), buf, mode)
                }
                InnerNode::Dir(_) => ("dir".to_owned(), Vec::new(), mode),
                InnerNode::Symlink(s) => (
                    "symlink".to_owned(),
                    s.link.to_string_lossy().as_bytes().to_vec(),
                    mode,
                ),
                _ => ("other".to_owned(), Vec::new(), mode),
            };
            out.insert(path, v);
        }
        out
    }

    #[test]
    fn every_compressor_round_trips_through_backhands_reader() {
        let rootfs = sample();
        for c in [
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
            Compression::Lz4,
        ] {
            let img = build(&rootfs, c, 0x2_0000).unwrap();
            assert_eq!(&img[..4], b"hsqs", "{c:?}");
            assert_eq!(img.len() % 4096, 0, "{c:?}: padded to 4 KiB");
            // Superblock compressor id (offset 20): gzip 1, xz 4, lz4 5, zstd 6.
            let id = u16::from_le_bytes([img[20], img[21]]);
            let want = match c {
                Compression::Gzip => 1,
                Compression::Xz => 4,
                Compression::Lz4 => 5,
                Compression::Zstd => 6,
            };
            assert_eq!(id, want, "{c:?}");
            let back = read_back(&img);
            assert_eq!(back["bin/busybox"].1, vec![0x7f; 300_000], "{c:?}");
            assert_eq!(back["bin/busybox"].2, 0o755);
            assert_eq!(
                back["bin/sh"],
                ("symlink".into(), b"busybox".to_vec(), 0o777)
            );
            assert_eq!(back["tmp"].0, "dir");
            assert_eq!(back["tmp"].2, 0o1777);
            assert_eq!(back.len(), rootfs.len(), "{c:?}: {:?}", back.keys());
        }
    }

    #[test]
    fn bad_block_sizes_are_refused_not_panicked_on() {
        assert!(matches!(
            build(&sample(), Compression::Xz, 1000),
            Err(SynthError::Invalid(_))
        ));
    }
}
