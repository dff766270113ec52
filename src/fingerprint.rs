//! The fingerprint of one image: every unique file's class, digests, ELF anatomy and components,
//! plus how much of the image was unpacked and identified. What every later stage reads instead
//! of the image; JSON with a schema version and the extraction parameters, so that a stale one is
//! refused, never mixed with fresh ones.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::class::ContentClass;
use crate::features::components::ComponentMatch;
use crate::features::elf::ElfFeatures;

/// Version of the fingerprint layout; bumped whenever a field changes meaning.
pub const SCHEMA_VERSION: u32 = 2;

/// The extraction parameters a fingerprint was made with. Two fingerprints are comparable only
/// when these are equal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Minimum length of a string.
    pub string_min_len: usize,
    /// Most strings read from one file.
    pub max_strings: usize,
    /// ELF sections below this size get only a SHA-256.
    pub section_floor: u64,
    /// How the ELF identifier digest is made ([`crate::features::elf::IDENTIFIER_RECIPE`]).
    pub identifier_recipe: String,
    /// Parameters of the evidence extractors.
    pub evidence: crate::features::evidence::Params,
}

/// The image itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Its name as given (lossy UTF-8).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A stretch no format claimed and no file explains: unknown or encrypted data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpaqueStretch {
    /// Path of the blob it lies in.
    pub path: String,
    /// Offset inside that blob.
    pub offset: u64,
    /// Length inside that blob.
    pub len: u64,
    /// The share of the image's bytes it stands for (equal to `len` for stretches of the image
    /// itself or of stored containers; scaled for stretches inside compressed data).
    pub image_bytes: u64,
    /// Shannon entropy in bits per byte (near 8: compressed or encrypted).
    pub entropy: f32,
}

/// A blob that could not be (fully) unpacked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeError {
    /// Its path.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

/// How much of the image was unpacked and identified, and what stayed opaque. The three byte
/// counts add up to `image_bytes`; bytes inside a compressed container count in proportion to
/// the container's share of the image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Size of the image.
    pub image_bytes: u64,
    /// Bytes that ended up in identified files (entries of archives and filesystems, or files of
    /// a known class).
    pub identified_bytes: u64,
    /// Erased-flash or zero padding.
    pub padding_bytes: u64,
    /// Unknown or high-entropy data nothing explained.
    pub opaque_bytes: u64,
    /// `identified_bytes / image_bytes`, to six decimals (1 for an empty image).
    pub identified_share: f64,
    /// `padding_bytes / image_bytes`.
    pub padding_share: f64,
    /// `opaque_bytes / image_bytes`.
    pub opaque_share: f64,
    /// The largest opaque stretches, largest first.
    pub opaque: Vec<OpaqueStretch>,
    /// How many opaque stretches there were in all.
    pub opaque_count: usize,
    /// Blobs that could not be fully unpacked (the first ones, in tree order).
    pub errors: Vec<NodeError>,
    /// How many blobs could not be fully unpacked.
    pub error_count: usize,
}

/// Digests of a whole file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigests {
    /// ssdeep.
    pub ssdeep: Option<String>,
    /// TLSH (`None` where TLSH gives no digest).
    pub tlsh: Option<String>,
}

/// One unique file (by SHA-256) of the image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileFeatures {
    /// SHA-256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Every path where these bytes occur, in tree order (lossy UTF-8).
    pub paths: Vec<String>,
    /// Content class.
    pub class: ContentClass,
    /// Fuzzy digests of the whole file.
    pub digests: FileDigests,
    /// How many strings the file holds (capped at `params.max_strings`).
    pub strings: usize,
    /// The file is a container (archive, filesystem, compressed stream, uImage) whose entries
    /// are listed as files of their own: it carries only its SHA-256 and class, no fuzzy digests,
    /// strings or components.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpacked: bool,
    /// ELF anatomy, for ELF files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elf: Option<ElfFeatures>,
    /// Open-source components recognised in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentMatch>,
}

/// Everything fwsim knows about one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// [`SCHEMA_VERSION`] when made.
    pub schema_version: u32,
    /// Extraction parameters.
    pub params: Params,
    /// The image.
    pub image: ImageInfo,
    /// Unpacked and identified share of the image.
    pub coverage: Coverage,
    /// Unique files, in tree order of their first occurrence.
    pub files: Vec<FileFeatures>,
    /// What survives a rebrand, each item with the file and offset it came from: vendor
    /// candidates, build environment, keys and certificates, platform facts (sorted by kind).
    pub evidence: Vec<crate::features::evidence::Evidence>,
}

impl Fingerprint {
    /// Writes the fingerprint as JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut w = std::io::BufWriter::new(file);
        self.write_to(&mut w).map_err(io)?;
        std::io::Write::flush(&mut w).map_err(io)
    }

    /// Writes the fingerprint as JSON to any writer.
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *w, self).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    }

    /// Reads a fingerprint written by [`Fingerprint::write`], refusing one made with another
    /// schema version or other parameters than `expected` ([`Error::Refused`]).
    pub fn read(path: &Path, expected: &Params) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, expected).map_err(|e| match e {
            Error::Refused(m) => Error::Refused(format!("{}: {m}", path.display())),
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses JSON, refusing another schema version or other parameters than `expected`.
    pub fn from_json(text: &str, expected: &Params) -> Result<Self> {
        // The version first, so that an old layout is refused as stale rather than as malformed.
        let version = serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| Error::Invalid(format!("not a fingerprint: {e}")))?
            .get("schema_version")
            .and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(SCHEMA_VERSION)) {
            return Err(Error::Refused(format!(
                "fingerprint schema version {} is not {SCHEMA_VERSION}: recompute it from the image",
                version.map_or_else(|| "(none)".to_string(), |v| v.to_string())
            )));
        }
        let fp: Self = serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("not a fingerprint: {e}")))?;
        if &fp.params != expected {
            return Err(Error::Refused(format!(
                "fingerprint made with other parameters ({:?}, expected {:?}): recompute it from the image",
                fp.params, expected
            )));
        }
        Ok(fp)
    }
}
