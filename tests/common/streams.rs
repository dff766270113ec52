//! Fixture builders for compressed streams, each made with the format's own writer (flate2,
//! liblzma, bzip2, zstd, lz4_flex, lzokay-native for lzop blocks), plus a few hand-built inputs:
//! lz4 legacy frames, lzop files and a cheap deflate bomb.

use std::io::Write;

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// zlib of `data`.
pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// xz of `data` (preset 6, CRC-64).
pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// LZMA-alone of `data`; with `known_size` the header carries the size, else an end marker.
pub fn lzma(data: &[u8], known_size: bool) -> Vec<u8> {
    let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
    let stream = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
    let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    e.write_all(data).unwrap();
    let mut out = e.finish().unwrap();
    if known_size {
        // liblzma writes "unknown size" and an end marker; a known size plus the end marker is a
        // valid .lzma file too (the decoder stops at the size and the marker is allowed).
        out[5..13].copy_from_slice(&(data.len() as u64).to_le_bytes());
    }
    out
}

/// bzip2 of `data` (level 9).
pub fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Zstandard of `data` (level 3, with checksum).
pub fn zstd(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An LZ4 frame of `data` with content checksum.
pub fn lz4(data: &[u8]) -> Vec<u8> {
    let info = lz4_flex::frame::FrameInfo::new()
        .content_checksum(true)
        .block_checksums(true);
    let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An LZ4 legacy frame (`lz4 -l`): the magic, then 8 MiB chunks as `[size][block]`.
pub fn lz4_legacy(data: &[u8]) -> Vec<u8> {
    let mut out = 0x184C_2102u32.to_le_bytes().to_vec();
    for chunk in data.chunks(8 << 20) {
        let block = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

/// lzop flags: Adler-32 of each block's decompressed and compressed bytes.
pub const LZOP_ADLER: u32 = 0x1 | 0x2;
/// lzop flags: CRC-32 of each block's decompressed and compressed bytes.
pub const LZOP_CRC: u32 = 0x100 | 0x200;

/// An lzop file as lzop 1.04 writes it: LZO1X-1 blocks of `block` bytes, checksums per `flags`.
pub fn lzop(name: &str, data: &[u8], block: usize, flags: u32) -> Vec<u8> {
    let mut out = b"\x89LZO\x00\r\n\x1a\n".to_vec();
    let mut h = Vec::new();
    h.extend_from_slice(&0x1040u16.to_be_bytes()); // version
    h.extend_from_slice(&0x20a0u16.to_be_bytes()); // library version
    h.extend_from_slice(&0x0940u16.to_be_bytes()); // version needed
    h.push(1); // LZO1X-1
    h.push(5); // level
    h.extend_from_slice(&(flags | 0x0300_0000).to_be_bytes()); // flags, OS = Unix
    h.extend_from_slice(&0o100644u32.to_be_bytes());
    h.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.push(name.len() as u8);
    h.extend_from_slice(name.as_bytes());
    let sum = fwsim::unpack::formats::lzop::adler32(&h);
    out.extend_from_slice(&h);
    out.extend_from_slice(&sum.to_be_bytes());
    for chunk in data.chunks(block) {
        let packed = lzokay_native::compress(chunk).unwrap();
        let stored = packed.len() >= chunk.len();
        let body: &[u8] = if stored { chunk } else { &packed };
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        if flags & 0x1 != 0 {
            out.extend_from_slice(&fwsim::unpack::formats::lzop::adler32(chunk).to_be_bytes());
        }
        if flags & 0x100 != 0 {
            out.extend_from_slice(&crc32fast::hash(chunk).to_be_bytes());
        }
        if !stored && flags & 0x2 != 0 {
            out.extend_from_slice(&fwsim::unpack::formats::lzop::adler32(body).to_be_bytes());
        }
        if !stored && flags & 0x200 != 0 {
            out.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
        }
        out.extend_from_slice(body);
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

/// Text-like data that compresses a little (different for each `seed`).
pub fn text(len: usize, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(format!("entry {} value {:08x}\n", x % 977, x).as_bytes());
    }
    out.truncate(len);
    out
}

/// A gzip member that inflates to `zeros` zero bytes (a multiple of 1 MiB), built in a few
/// milliseconds: one compressed MiB of zeros is byte-aligned by a sync flush and repeated (every
/// repetition after the first sees the same window, so its bytes are identical).
pub fn gzip_zero_bomb(zeros: u64) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    const MIB: usize = 1 << 20;
    let chunk = vec![0u8; MIB];
    let mut c = Compress::new(Compression::best(), false);
    let piece = |c: &mut Compress, flush| {
        let mut out = Vec::with_capacity(MIB);
        let before = c.total_in();
        let input: &[u8] = if flush == FlushCompress::Finish {
            &[]
        } else {
            &chunk
        };
        loop {
            let consumed = (c.total_in() - before) as usize;
            c.compress_vec(&input[consumed..], &mut out, flush).unwrap();
            if (c.total_in() - before) as usize == input.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(MIB);
        }
        out
    };
    let first = piece(&mut c, FlushCompress::Sync);
    let second = piece(&mut c, FlushCompress::Sync);
    let third = piece(&mut c, FlushCompress::Sync);
    assert_eq!(second, third, "steady-state chunks must repeat");
    let count = zeros / MIB as u64;
    assert!(count >= 3);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3];
    out.extend_from_slice(&first);
    for _ in 1..count {
        out.extend_from_slice(&second);
    }
    out.extend_from_slice(&piece(&mut c, FlushCompress::Finish));
    // CRC-32 of the zeros, by combining the CRC of one MiB `count` times.
    let one = {
        let mut h = crc32fast::Hasher::new();
        h.update(&chunk);
        h
    };
    let mut crc = crc32fast::Hasher::new();
    for _ in 0..count {
        crc.combine(&one);
    }
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&(zeros as u32).to_le_bytes());
    out
}
