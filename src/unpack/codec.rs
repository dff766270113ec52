//! Stream decompressors shared by the compression formats and by containers that compress their
//! payloads (uImage, zip, cpio …). Every decoder writes through the budget's bounded [`Sink`]
//! in chunks, checking the time budget between chunks, and reports how many input bytes the
//! stream really used, so carving learns the stream's true extent. A deflate stream whose size a
//! container states may instead be inflated in one libdeflate call ([`inflate_exact`]).
//!
//! [`Sink`]: super::limits::Sink

use std::io::{Read, Write};

use super::UnpackError;
use super::formats::Ctx;

/// A compression method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// gzip (RFC 1952), one member.
    Gzip,
    /// zlib (RFC 1950).
    Zlib,
    /// Raw deflate (RFC 1951).
    Deflate,
    /// bzip2, one stream.
    Bzip2,
    /// LZMA "alone" (`.lzma`, 13-byte header).
    Lzma,
    /// xz, one stream.
    Xz,
    /// Zstandard, one or more frames.
    Zstd,
    /// LZ4 frame format.
    Lz4,
    /// An lzop file of LZO1X blocks (what U-Boot calls "lzo").
    Lzo,
}

impl Codec {
    /// Name used in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zlib => "zlib",
            Codec::Deflate => "deflate",
            Codec::Bzip2 => "bzip2",
            Codec::Lzma => "lzma",
            Codec::Xz => "xz",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
            Codec::Lzo => "lzo",
        }
    }
}

/// A decompressed stream.
#[derive(Debug)]
pub struct Decoded {
    /// The output.
    pub data: Vec<u8>,
    /// Input bytes the stream occupied (its compressed extent).
    pub consumed: u64,
}

/// Memory the LZMA/xz decoders may allocate for their dictionary.
const LZMA_MEMLIMIT: u64 = 512 << 20;

/// Decompresses one stream of `codec` from the start of `input`.
pub fn decode(codec: Codec, input: &[u8], ctx: &Ctx<'_>) -> Result<Decoded, UnpackError> {
    let what = codec.name();
    match codec {
        Codec::Gzip => {
            let mut d = flate2::bufread::GzDecoder::new(input);
            let data = pump(&mut d, input.len(), ctx, what);
            let rest = d.into_inner().len();
            finish(data, input.len(), rest, ctx)
        }
        Codec::Zlib => {
            let mut d = flate2::bufread::ZlibDecoder::new(input);
            let data = pump(&mut d, input.len(), ctx, what);
            let rest = d.into_inner().len();
            finish(data, input.len(), rest, ctx)
        }
        Codec::Deflate => {
            let mut d = flate2::bufread::DeflateDecoder::new(input);
            let data = pump(&mut d, input.len(), ctx, what);
            let rest = d.into_inner().len();
            finish(data, input.len(), rest, ctx)
        }
        Codec::Bzip2 => {
            let mut d = bzip2::bufread::BzDecoder::new(input);
            let data = pump(&mut d, input.len(), ctx, what);
            let rest = d.into_inner().len();
            finish(data, input.len(), rest, ctx)
        }
        Codec::Xz => {
            let stream = liblzma::stream::Stream::new_stream_decoder(LZMA_MEMLIMIT, 0)
                .map_err(|e| UnpackError::Corrupt(format!("xz: {e}")))?;
            let mut d = liblzma::bufread::XzDecoder::new_stream(input, stream);
            let data = pump(&mut d, input.len(), ctx, what);
            let rest = d.into_inner().len();
            finish(data, input.len(), rest, ctx)
        }
        Codec::Lzma => {
            let stream = liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMLIMIT)
                .map_err(|e| UnpackError::Corrupt(format!("lzma: {e}")))?;
            let mut d = liblzma::bufread::XzDecoder::new_stream(input, stream);
            let data = pump(&mut d, input.len(), ctx, what);
            let rest = d.into_inner().len();
            finish(data, input.len(), rest, ctx)
        }
        Codec::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| UnpackError::from_io(&e, what))?
                .single_frame();
            let data = pump(&mut d, input.len(), ctx, what);
            let rest = d.finish().len();
            finish(data, input.len(), rest, ctx)
        }
        Codec::Lz4 => {
            let mut cursor = input;
            let mut d = lz4_flex::frame::FrameDecoder::new(&mut cursor);
            let data = pump(&mut d, input.len(), ctx, what);
            drop(d);
            let rest = cursor.len();
            finish(data, input.len(), rest, ctx)
        }
        Codec::Lzo => super::formats::lzop::decode(input, ctx).map(|(d, _)| d),
    }
}

thread_local! {
    /// One libdeflate decompressor per thread (no streaming state: each call decodes a whole
    /// stream), reused across calls.
    static INFLATE: std::cell::RefCell<libdeflater::Decompressor> =
        std::cell::RefCell::new(libdeflater::Decompressor::new());
}

/// How a whole deflate stream given to [`inflate_into`] is wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrap {
    /// Raw deflate (ZIP entries).
    Raw,
    /// A zlib header and Adler-32 trailer around the deflate data (JFFS2 fragments).
    Zlib,
}

/// Inflates one whole stream into `out` in a single call with this thread's libdeflate
/// decompressor, returning how many bytes it wrote. libdeflate never writes past `out`: a stream
/// that expands further fails with `InsufficientSpace`, a bad or truncated one with `BadData`.
/// For streams whose uncompressed size a container states; the input extent is not reported.
pub fn inflate_into(
    wrap: Wrap,
    input: &[u8],
    out: &mut [u8],
) -> Result<usize, libdeflater::DecompressionError> {
    INFLATE.with_borrow_mut(|z| match wrap {
        Wrap::Raw => z.deflate_decompress(input, out),
        Wrap::Zlib => z.zlib_decompress(input, out),
    })
}

/// Inflates a raw deflate stream whose uncompressed size a container states (a ZIP entry) in
/// one call, with libdeflate (about twice as fast as the streaming decoder), straight into a
/// buffer of exactly `size` bytes admitted through the budget's [`Sink`](super::limits::Sink).
///
/// `None` when this fast path does not apply or does not succeed: a size above what the sink
/// would reserve (the per-blob ratio, 64 MiB, the memory left), a bad or truncated stream, or a
/// stream that ends short of `size` or runs past it. The caller then decodes with [`decode`],
/// whose output and errors are the reference; libdeflate never writes past the buffer.
pub fn inflate_exact(
    input: &[u8],
    size: u64,
    ctx: &Ctx<'_>,
) -> Option<Result<Vec<u8>, UnpackError>> {
    let want = usize::try_from(size).ok()?;
    if let Err(e) = ctx.check() {
        return Some(Err(e));
    }
    let mut sink = ctx.sink(input.len() as u64);
    sink.reserve_claimed(size);
    let filled = sink.append_with(|buf: &mut Vec<u8>| {
        if buf.capacity() < want {
            return Err(Attempt::Declined);
        }
        buf.resize(want, 0);
        match inflate_into(Wrap::Raw, input, buf) {
            Ok(n) if n == want => Ok(()),
            _ => Err(Attempt::Declined),
        }
    });
    match filled {
        Ok(()) => {
            ctx.charge_read(input.len() as u64);
            Some(Ok(sink.into_inner()))
        }
        Err(Attempt::Limit(e)) => Some(Err(UnpackError::Limit(e))),
        Err(Attempt::Declined) => None,
    }
}

/// Why [`inflate_exact`]'s single call gave no output.
enum Attempt {
    /// The fast path does not apply; the streaming decoder decides.
    Declined,
    /// Admitting the output broke a limit.
    Limit(super::LimitError),
}

impl From<super::LimitError> for Attempt {
    fn from(e: super::LimitError) -> Self {
        Attempt::Limit(e)
    }
}

/// Decodes consecutive streams the way `bzip2 -dc`, `xz -dc` or `zstd -dc` do: after each stream,
/// another follows while `starts_stream` accepts the bytes after it. A later stream that fails
/// ends the run there (carving then reports it on its own); the first must succeed.
pub fn decode_concatenated(
    codec: Codec,
    input: &[u8],
    ctx: &Ctx<'_>,
    starts_stream: fn(&[u8]) -> bool,
) -> Result<Decoded, UnpackError> {
    let first = decode(codec, input, ctx)?;
    let mut data = first.data;
    let mut consumed = first.consumed;
    loop {
        ctx.check()?;
        let Some(rest) = usize::try_from(consumed).ok().and_then(|c| input.get(c..)) else {
            break;
        };
        if consumed == 0 || !starts_stream(rest) {
            break;
        }
        let next = match decode(codec, rest, ctx) {
            Ok(d) if d.consumed > 0 => d,
            Ok(_) => break,
            Err(e @ UnpackError::Limit(_)) => return Err(e),
            Err(_) => break,
        };
        let total = (data.len() as u64).saturating_add(next.data.len() as u64);
        ctx.claimed_size(total)?;
        data.extend_from_slice(&next.data);
        consumed = consumed.saturating_add(next.consumed);
    }
    Ok(Decoded { data, consumed })
}

/// The decoded stream and its extent; the input read is charged to the blob either way, so the
/// engine can bound what failing candidates cost.
fn finish(
    data: Result<Vec<u8>, UnpackError>,
    total: usize,
    rest: usize,
    ctx: &Ctx<'_>,
) -> Result<Decoded, UnpackError> {
    let consumed = total.saturating_sub(rest) as u64;
    ctx.charge_read(consumed);
    Ok(Decoded {
        data: data?,
        consumed,
    })
}

/// Copies a decoder's output into a bounded sink, 64 KiB at a time.
pub fn pump<R: Read + ?Sized>(
    reader: &mut R,
    input_len: usize,
    ctx: &Ctx<'_>,
    what: &str,
) -> Result<Vec<u8>, UnpackError> {
    let mut sink = ctx.sink(input_len as u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(UnpackError::from_io(&e, what)),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        sink.write_all(chunk)
            .map_err(|e| UnpackError::from_io(&e, what))?;
        ctx.check()?;
    }
    Ok(sink.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{Budget, LimitError, Limits};

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn inflate_exact_equals_the_streaming_decoder() {
        let plain: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 1013).to_le_bytes())
            .collect();
        let input = deflate(&plain);
        let budget = Budget::new(Limits::default());
        let ctx = Ctx::new(&budget);
        let fast = inflate_exact(&input, plain.len() as u64, &ctx)
            .unwrap()
            .unwrap();
        let reference = decode(Codec::Deflate, &input, &ctx).unwrap().data;
        assert_eq!(fast, reference);
        assert_eq!(fast, plain);
        // Many calls on one thread's decompressor, with failures between them.
        for round in 0..50u64 {
            let short = inflate_exact(&input, plain.len() as u64 - 1 - round, &ctx);
            assert!(short.is_none(), "a size too small is declined");
            let long = inflate_exact(&input, plain.len() as u64 + 1 + round, &ctx);
            assert!(long.is_none(), "a size too large is declined");
            let again = inflate_exact(&input, plain.len() as u64, &ctx);
            assert_eq!(again.unwrap().unwrap(), plain);
        }
    }

    #[test]
    fn inflate_exact_declines_what_the_reference_must_judge() {
        let plain = vec![7u8; 100_000];
        let input = deflate(&plain);
        let budget = Budget::new(Limits {
            max_ratio: 10,
            ratio_floor_bytes: 1024,
            ..Limits::default()
        });
        let ctx = Ctx::new(&budget);
        // Beyond the ratio the sink allows: declined before anything is allocated.
        assert!(inflate_exact(&input, plain.len() as u64, &ctx).is_none());
        // The reference decoder reports the limit.
        assert!(matches!(
            decode(Codec::Deflate, &input, &ctx),
            Err(UnpackError::Limit(LimitError::Ratio { .. }))
        ));
        // A claimed size no memory could hold is declined, not allocated.
        let budget = Budget::new(Limits::default());
        let ctx = Ctx::new(&budget);
        assert!(inflate_exact(&input, u64::MAX, &ctx).is_none());
        // Truncated and corrupted streams are declined.
        assert!(inflate_exact(&input[..input.len() / 2], plain.len() as u64, &ctx).is_none());
        let mut bad = input.clone();
        bad[0] ^= 0xFF;
        assert!(inflate_exact(&bad, plain.len() as u64, &ctx).is_none());
        assert_eq!(budget.held_bytes(), 0, "nothing stays held after declining");
    }

    #[test]
    fn inflate_into_reads_raw_and_zlib_streams_with_one_decompressor() {
        let plain: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let raw = deflate(&plain);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&plain).unwrap();
        let zlib = z.finish().unwrap();
        let mut out = vec![0u8; plain.len()];
        // Alternating wrappings on this thread's one decompressor.
        for _ in 0..3 {
            out.fill(0);
            assert_eq!(inflate_into(Wrap::Zlib, &zlib, &mut out), Ok(plain.len()));
            assert_eq!(out, plain);
            out.fill(0);
            assert_eq!(inflate_into(Wrap::Raw, &raw, &mut out), Ok(plain.len()));
            assert_eq!(out, plain);
        }
        // The wrong wrapping, a short buffer, a cut stream: errors, never a write past `out`.
        assert_eq!(
            inflate_into(Wrap::Zlib, &raw, &mut out),
            Err(libdeflater::DecompressionError::BadData)
        );
        let mut short = vec![0u8; plain.len() + 8];
        assert_eq!(
            inflate_into(Wrap::Zlib, &zlib, &mut short[..plain.len() - 1]),
            Err(libdeflater::DecompressionError::InsufficientSpace)
        );
        assert!(short[plain.len() - 1..].iter().all(|&b| b == 0));
        assert!(inflate_into(Wrap::Zlib, &zlib[..zlib.len() / 2], &mut out).is_err());
    }

    #[test]
    fn gzip_reports_its_extent() {
        let mut input = gz(b"hello hello hello");
        let len = input.len();
        input.extend_from_slice(b"trailing junk");
        let budget = Budget::new(Limits::default());
        let d = decode(Codec::Gzip, &input, &Ctx::new(&budget)).unwrap();
        assert_eq!(d.data, b"hello hello hello");
        assert_eq!(d.consumed, len as u64);
    }

    #[test]
    fn gzip_bomb_stops_at_ratio() {
        let input = gz(&vec![0u8; 64 << 20]);
        let budget = Budget::new(Limits {
            max_ratio: 100,
            ratio_floor_bytes: 1 << 20,
            ..Limits::default()
        });
        let e = decode(Codec::Gzip, &input, &Ctx::new(&budget)).unwrap_err();
        assert!(
            matches!(e, UnpackError::Limit(LimitError::Ratio { .. })),
            "{e}"
        );
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let input = gz(&(0..10000u32)
            .flat_map(|i| i.to_le_bytes())
            .collect::<Vec<_>>());
        let cut = &input[..input.len() / 2];
        let budget = Budget::new(Limits::default());
        assert!(decode(Codec::Gzip, cut, &Ctx::new(&budget)).is_err());
    }
}
