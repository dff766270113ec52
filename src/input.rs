//! Opening an image: memory-map the file so that every later stage borrows its bytes instead of
//! copying them. This is the crate's one `unsafe` block.

use std::fs::File;
use std::path::Path;

use bytes::Bytes;

use crate::error::{Error, Result};

/// Memory-maps `path` read-only and returns its bytes as shared, cheaply clonable [`Bytes`].
///
/// Empty files cannot be mapped on every platform, so they come back as empty `Bytes`.
pub fn open(path: &Path) -> Result<Bytes> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_file() {
        // Pipes and devices cannot be mapped; read them instead.
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(Bytes::from(data));
    }
    if meta.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only and private to this process. The one hazard of a file mapping
    // is another process truncating or rewriting the file while we read it, which would make
    // reads fault or change under us. fwsim only reads firmware images that the user hands it;
    // like ripgrep and every other mmap-based reader we accept that a concurrent writer can make
    // the process die with SIGBUS, and document it. No reference into the map outlives the
    // `Mmap`, because `Bytes::from_owner` keeps the map alive as long as any slice of it exists.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Bytes::from_owner(map))
}
