//! The crate's top-level error type. Stage-specific errors (for example
//! [`crate::unpack::UnpackError`], which is data recorded on a blob rather than a failure of the
//! run) live beside their stage.

use std::path::PathBuf;

/// Errors that stop an operation as a whole (as opposed to a blob that could not be unpacked,
/// which is recorded in the tree and does not fail the run).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The input is not usable at all (for example an invalid option value).
    #[error("{0}")]
    Invalid(String),
    /// A stored result made by another version or with other parameters: refused, to be
    /// recomputed, never mixed with current ones.
    #[error("refused: {0}")]
    Refused(String),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
