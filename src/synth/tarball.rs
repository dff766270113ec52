//! tar.gz update packages (the shape OpenIPC and many vendors ship: a gzip-compressed ustar
//! archive of partition images or of a root filesystem), written with the `tar` and `flate2`
//! crates.

use std::io::Write;

use super::SynthError;
use super::content::{EntryData, Rootfs};

/// A ustar archive of `rootfs` (directories, files and symlinks with their modes), gzip-compressed
/// with `name` as the gzip header's original file name when given.
pub fn tar_gz(rootfs: &Rootfs, name: Option<&str>) -> Result<Vec<u8>, SynthError> {
    let tar = tar(rootfs)?;
    let mut b = flate2::GzBuilder::new().mtime(super::content::BUILD_TIME);
    if let Some(n) = name {
        b = b.filename(n);
    }
    let mut gz = b.write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)
        .and_then(|()| gz.finish())
        .map_err(|e| SynthError::Tar(e.to_string()))
}

/// A ustar archive of `rootfs`.
pub fn tar(rootfs: &Rootfs) -> Result<Vec<u8>, SynthError> {
    let terr = |p: &str, e: std::io::Error| SynthError::Tar(format!("{p}: {e}"));
    let mut b = tar::Builder::new(Vec::new());
    for (path, entry) in rootfs.entries() {
        let mut h = tar::Header::new_ustar();
        h.set_mode(u32::from(entry.mode));
        h.set_mtime(u64::from(entry.mtime));
        h.set_uid(0);
        h.set_gid(0);
        match &entry.data {
            EntryData::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{path}/"), std::io::empty())
                    .map_err(|e| terr(path, e))?;
            }
            EntryData::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_slice())
                    .map_err(|e| terr(path, e))?;
            }
            EntryData::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, target)
                    .map_err(|e| terr(path, e))?;
            }
        }
    }
    b.into_inner().map_err(|e| terr("archive", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn tar_gz_round_trips_through_the_tar_crate() {
        let mut r = Rootfs::new();
        r.file("uImage.hi3516ev300", vec![9u8; 3000], 0o644)
            .symlink("latest", "uImage.hi3516ev300")
            .file("a/b/c.txt", b"hello".to_vec(), 0o600);
        let gz = tar_gz(&r, Some("update.tar")).unwrap();
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 0x08]);
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut tar_bytes)
            .unwrap();
        assert_eq!(&tar_bytes[257..262], b"ustar");
        let mut a = tar::Archive::new(&tar_bytes[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            seen.push((p, e.header().mode().unwrap(), data, link));
        }
        assert_eq!(seen.len(), r.len());
        let c = seen.iter().find(|s| s.0 == "a/b/c.txt").unwrap();
        assert_eq!((c.1, &c.2[..]), (0o600, &b"hello"[..]));
        let l = seen.iter().find(|s| s.0 == "latest").unwrap();
        assert_eq!(l.3.as_deref(), Some("uImage.hi3516ev300"));
        let u = seen.iter().find(|s| s.0 == "uImage.hi3516ev300").unwrap();
        assert_eq!(u.2, vec![9u8; 3000]);
    }
}
