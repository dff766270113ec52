//! Resource limits for unpacking ([`Limits`]) and the shared, thread-safe account of what has been
//! spent against them ([`Budget`]). Every decompressor writes through a [`Sink`], which checks the
//! per-file size, the expansion ratio, the total output, the memory held and the time budget on
//! every write, so a bomb stops at its limit instead of exhausting memory.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Explicit bounds on one unpack run. All of them are configurable from the CLI.
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    /// Deepest nesting of containers (the image itself is depth 0).
    pub max_depth: u32,
    /// Total bytes that decompression and extraction may produce for one image.
    pub max_output_bytes: u64,
    /// Most bytes one unpack may hold at once: what decoders have written and not discarded
    /// (buffers kept in the tree, and sinks still filling). Unlike [`Limits::max_output_bytes`]
    /// the output of a candidate that failed is given back.
    pub max_memory_bytes: u64,
    /// Largest expansion ratio (output bytes per input byte) of one blob. Outputs below
    /// [`Limits::ratio_floor_bytes`] are never refused for their ratio.
    pub max_ratio: u64,
    /// Output size below which the ratio is not checked (tiny inputs legitimately expand a lot).
    pub ratio_floor_bytes: u64,
    /// Most entries (files, directories, links, carved regions) in one tree.
    pub max_entries: u64,
    /// Largest single file or decompressed stream.
    pub max_file_bytes: u64,
    /// Wall-clock budget for unpacking one image.
    pub time_budget: Duration,
    /// Most carving candidates validated in one blob (guards against magic-byte floods).
    pub max_carve_candidates: usize,
    /// Most bytes that candidates which then fail may read or produce in one blob (guards
    /// against self-similar blobs where every candidate decodes to the end before failing).
    pub max_failed_carve_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 24,
            max_output_bytes: 8 << 30,
            max_memory_bytes: 4 << 30,
            max_ratio: 1000,
            ratio_floor_bytes: 4 << 20,
            max_entries: 2_000_000,
            max_file_bytes: 2 << 30,
            time_budget: Duration::from_secs(600),
            max_carve_candidates: 20_000,
            max_failed_carve_bytes: 64 << 20,
        }
    }
}

/// Which limit was hit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum LimitError {
    /// Nesting deeper than [`Limits::max_depth`].
    #[error("nesting depth limit reached ({max} levels)")]
    Depth {
        /// The limit.
        max: u32,
    },
    /// Bytes held at once above [`Limits::max_memory_bytes`].
    #[error("memory limit reached ({max} bytes held)")]
    Memory {
        /// The limit.
        max: u64,
    },
    /// Total output above [`Limits::max_output_bytes`].
    #[error("total unpacked size limit reached ({max} bytes)")]
    OutputBytes {
        /// The limit.
        max: u64,
    },
    /// One blob expanded more than [`Limits::max_ratio`] times.
    #[error("expansion ratio limit reached ({max}x of {input} input bytes)")]
    Ratio {
        /// The limit.
        max: u64,
        /// Size of the compressed input.
        input: u64,
    },
    /// More entries than [`Limits::max_entries`].
    #[error("entry count limit reached ({max} entries)")]
    Entries {
        /// The limit.
        max: u64,
    },
    /// One file larger than [`Limits::max_file_bytes`].
    #[error("file size limit reached ({max} bytes)")]
    FileBytes {
        /// The limit.
        max: u64,
    },
    /// The run took longer than [`Limits::time_budget`].
    #[error("time budget exhausted ({} s)", *millis as f64 / 1000.0)]
    Time {
        /// The budget in milliseconds.
        millis: u64,
    },
    /// Too many carving candidates in one blob.
    #[error("carving candidate limit reached ({max} candidates)")]
    CarveCandidates {
        /// The limit.
        max: usize,
    },
    /// Candidates that failed decoded more than [`Limits::max_failed_carve_bytes`] in one blob.
    #[error(
        "failed-candidate decoding limit reached ({max} bytes decoded by candidates that failed)"
    )]
    FailedCarveBytes {
        /// The limit.
        max: u64,
    },
}

/// The running account of one unpack: shared by every worker thread.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    output_bytes: AtomicU64,
    held_bytes: AtomicU64,
    entries: AtomicU64,
    deadline: Instant,
}

impl Budget {
    /// Starts the clock on a new budget.
    pub fn new(limits: Limits) -> Self {
        let deadline = Instant::now()
            .checked_add(limits.time_budget)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
        Self {
            limits,
            output_bytes: AtomicU64::new(0),
            held_bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            deadline,
        }
    }

    /// The limits this budget enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Fails once the time budget is spent. Call it in every loop that parses or decompresses.
    pub fn check_time(&self) -> Result<(), LimitError> {
        if Instant::now() > self.deadline {
            Err(LimitError::Time {
                millis: u64::try_from(self.limits.time_budget.as_millis()).unwrap_or(u64::MAX),
            })
        } else {
            Ok(())
        }
    }

    /// Accounts for `n` more entries.
    pub fn add_entries(&self, n: u64) -> Result<(), LimitError> {
        let before = self.entries.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.limits.max_entries {
            Err(LimitError::Entries {
                max: self.limits.max_entries,
            })
        } else {
            Ok(())
        }
    }

    /// Accounts for `n` more output bytes (decompressed or extracted data).
    pub fn add_output(&self, n: u64) -> Result<(), LimitError> {
        let before = self.output_bytes.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.limits.max_output_bytes {
            Err(LimitError::OutputBytes {
                max: self.limits.max_output_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// Accounts for `n` more bytes held; on failure nothing is held.
    pub fn hold(&self, n: u64) -> Result<(), LimitError> {
        let before = self.held_bytes.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.limits.max_memory_bytes {
            self.release(n);
            Err(LimitError::Memory {
                max: self.limits.max_memory_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// Gives back `n` bytes held (a buffer that was discarded).
    pub fn release(&self, n: u64) {
        // Never below zero: a release without its hold is a bug, not a reason to wrap around.
        let _ = self
            .held_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(n))
            });
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes.load(Ordering::Relaxed)
    }

    /// Fails when `n` more entries would exceed the limit, without accounting for them (formats
    /// call this before building a large entry list; the engine accounts as it adds them).
    pub fn check_entries(&self, n: u64) -> Result<(), LimitError> {
        if self.entries().saturating_add(n) > self.limits.max_entries {
            Err(LimitError::Entries {
                max: self.limits.max_entries,
            })
        } else {
            Ok(())
        }
    }

    /// Output bytes accounted so far.
    pub fn output_bytes(&self) -> u64 {
        self.output_bytes.load(Ordering::Relaxed)
    }

    /// Entries accounted so far.
    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// The most bytes one blob of `input_len` compressed bytes may expand to: the smallest of the
    /// per-file limit and the ratio limit (never below the ratio floor).
    pub fn max_expansion(&self, input_len: u64) -> u64 {
        let by_ratio = input_len
            .saturating_mul(self.limits.max_ratio)
            .max(self.limits.ratio_floor_bytes);
        by_ratio.min(self.limits.max_file_bytes)
    }

    /// A bounded output buffer for decompressing `input_len` bytes.
    pub fn sink(&self, input_len: u64) -> Sink<'_> {
        self.sink_for(input_len, None)
    }

    /// As [`Budget::sink`], also charging what is written to a blob's account.
    pub fn sink_for<'b>(&'b self, input_len: u64, blob: Option<&'b BlobAccount>) -> Sink<'b> {
        Sink {
            buf: Vec::new(),
            budget: self,
            blob,
            input_len,
            max_len: self.max_expansion(input_len),
            writes: 0,
            held: 0,
        }
    }
}

/// What the analysis of one blob has produced, across all its candidates and regions: the
/// per-blob expansion ratio holds for their sum, so many small streams (concatenated, or carved
/// one by one) cannot add up to more than one large stream could.
#[derive(Debug)]
pub struct BlobAccount {
    input_len: u64,
    max_len: u64,
    max_ratio: u64,
    produced: AtomicU64,
    read: AtomicU64,
}

impl BlobAccount {
    /// A fresh account for a blob of `input_len` bytes.
    pub fn new(budget: &Budget, input_len: u64) -> Self {
        let l = budget.limits();
        Self {
            input_len,
            max_len: input_len
                .saturating_mul(l.max_ratio)
                .max(l.ratio_floor_bytes),
            max_ratio: l.max_ratio,
            produced: AtomicU64::new(0),
            read: AtomicU64::new(0),
        }
    }

    /// Bytes produced so far.
    pub fn produced(&self) -> u64 {
        self.produced.load(Ordering::Relaxed)
    }

    /// Notes `n` input bytes read by a decoder.
    pub fn add_read(&self, n: u64) {
        self.read.fetch_add(n, Ordering::Relaxed);
    }

    /// Work done on the blob so far: bytes produced plus input bytes read by decoders.
    pub fn work(&self) -> u64 {
        self.produced()
            .saturating_add(self.read.load(Ordering::Relaxed))
    }

    /// Whether the blob has produced all its ratio allows: every further attempt would fail.
    pub fn exhausted(&self) -> bool {
        self.produced() >= self.max_len
    }

    /// Accounts for `n` more bytes produced from this blob.
    pub fn add(&self, n: u64) -> Result<(), LimitError> {
        let before = self.produced.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.max_len {
            Err(LimitError::Ratio {
                max: self.max_ratio,
                input: self.input_len,
            })
        } else {
            Ok(())
        }
    }
}

/// A `Vec<u8>` that refuses to grow past its limits. Writing past a limit returns an
/// [`io::Error`] wrapping the [`LimitError`]; recover it with [`limit_of`].
///
/// What it holds counts against [`Limits::max_memory_bytes`] until it is dropped; the bytes taken
/// out with [`Sink::into_inner`] stay counted (they are kept in the tree).
#[derive(Debug)]
pub struct Sink<'b> {
    buf: Vec<u8>,
    budget: &'b Budget,
    blob: Option<&'b BlobAccount>,
    input_len: u64,
    max_len: u64,
    writes: u32,
    /// Bytes this sink holds against the memory budget.
    held: u64,
}

impl Sink<'_> {
    /// The bytes written so far. They stay counted as held: the caller keeps them.
    pub fn into_inner(mut self) -> Vec<u8> {
        self.held = 0;
        std::mem::take(&mut self.buf)
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reserves room for an output whose size a header claims, capped by the sink's limit and the
    /// memory left so a lying header cannot make us allocate.
    pub fn reserve_claimed(&mut self, claimed: u64) {
        let memory_left = self
            .budget
            .limits()
            .max_memory_bytes
            .saturating_sub(self.budget.held_bytes());
        let cap = claimed.min(self.max_len).min(64 << 20).min(memory_left);
        self.buf.reserve(usize::try_from(cap).unwrap_or(0));
    }

    /// Appends in place: `fill` appends to the buffer (a decoder writing straight into it), then
    /// what it added is admitted like a write, and removed again if that breaks a limit. `fill`
    /// must bound what it appends itself (one block, say); on its error the buffer is restored.
    pub fn append_with<E: From<LimitError>>(
        &mut self,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.buf.len();
        let filled = fill(&mut self.buf);
        let added = self.buf.len().saturating_sub(start);
        let admitted = filled.and_then(|()| self.admit_at(start, added).map_err(E::from));
        if admitted.is_err() {
            self.buf.truncate(start);
        }
        admitted
    }

    fn admit(&mut self, n: usize) -> Result<(), LimitError> {
        self.admit_at(self.buf.len(), n)
    }

    /// Admits `n` bytes written after the first `base` bytes of the buffer.
    fn admit_at(&mut self, base: usize, n: usize) -> Result<(), LimitError> {
        let n64 = n as u64;
        let new_len = (base as u64).saturating_add(n64);
        if new_len > self.max_len {
            let limits = self.budget.limits();
            return Err(if new_len > limits.max_file_bytes {
                LimitError::FileBytes {
                    max: limits.max_file_bytes,
                }
            } else {
                LimitError::Ratio {
                    max: limits.max_ratio,
                    input: self.input_len,
                }
            });
        }
        if let Some(blob) = self.blob {
            blob.add(n64)?;
        }
        self.budget.add_output(n64)?;
        self.budget.hold(n64)?;
        self.held = self.held.saturating_add(n64);
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(16) {
            self.budget.check_time()?;
        }
        Ok(())
    }
}

impl Drop for Sink<'_> {
    fn drop(&mut self) {
        self.budget.release(self.held);
    }
}

impl io::Write for Sink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.admit(data.len()).map_err(limit_to_io)?;
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Wraps a limit error in an `io::Error` so it can travel through `Read`/`Write` based decoders.
pub fn limit_to_io(e: LimitError) -> io::Error {
    io::Error::other(e)
}

/// Recovers a [`LimitError`] that travelled through an `io::Error` (see [`limit_to_io`]).
pub fn limit_of(e: &io::Error) -> Option<LimitError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitError>())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sink_stops_at_ratio() {
        let limits = Limits {
            max_ratio: 10,
            ratio_floor_bytes: 100,
            ..Limits::default()
        };
        let budget = Budget::new(limits);
        let mut sink = budget.sink(20);
        assert!(sink.write_all(&[0u8; 200]).is_ok());
        let err = sink.write_all(&[0u8; 1]).unwrap_err();
        assert_eq!(
            limit_of(&err),
            Some(LimitError::Ratio { max: 10, input: 20 })
        );
    }

    #[test]
    fn total_output_is_shared_between_sinks() {
        let limits = Limits {
            max_output_bytes: 1000,
            ..Limits::default()
        };
        let budget = Budget::new(limits);
        let mut a = budget.sink(1 << 20);
        let mut b = budget.sink(1 << 20);
        a.write_all(&[1u8; 600]).unwrap();
        let err = b.write_all(&[1u8; 600]).unwrap_err();
        assert_eq!(limit_of(&err), Some(LimitError::OutputBytes { max: 1000 }));
    }

    #[test]
    fn memory_is_given_back_when_a_sink_is_dropped_and_kept_when_taken() {
        let budget = Budget::new(Limits {
            max_memory_bytes: 1000,
            ..Limits::default()
        });
        let mut a = budget.sink(1 << 20);
        a.write_all(&[1u8; 700]).unwrap();
        assert_eq!(budget.held_bytes(), 700);
        let mut b = budget.sink(1 << 20);
        let err = b.write_all(&[1u8; 400]).unwrap_err();
        assert_eq!(limit_of(&err), Some(LimitError::Memory { max: 1000 }));
        assert!(b.is_empty());
        drop(a);
        assert_eq!(budget.held_bytes(), 0);
        b.write_all(&[1u8; 400]).unwrap();
        let kept = b.into_inner();
        assert_eq!(kept.len(), 400);
        assert_eq!(budget.held_bytes(), 400);
        // The total output is never given back: it counts every byte ever produced, the
        // refused write included.
        assert_eq!(budget.output_bytes(), 700 + 400 + 400);
    }

    #[test]
    fn time_budget_expires() {
        let budget = Budget::new(Limits {
            time_budget: Duration::from_millis(0),
            ..Limits::default()
        });
        std::thread::sleep(Duration::from_millis(2));
        assert!(matches!(budget.check_time(), Err(LimitError::Time { .. })));
    }
}
