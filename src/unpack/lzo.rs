//! LZO1X decompression, bounded and panic-free: every read and back-reference is checked, and the
//! output goes straight into a caller's slice that it never writes past (16-byte chunk copies only
//! where the slice has room for them). Encoding as documented by lzokay (Jack Andersen, MIT).

use super::UnpackError;

/// Decompresses one LZO1X block (LZO1X-1, -1_15 and -999 share the format) that must expand to
/// at most `max_out` bytes and must use all of `input`.
pub fn decompress(input: &[u8], max_out: usize) -> Result<Vec<u8>, UnpackError> {
    // Start from a guess bounded by the input (a hostile `max_out` allocates nothing up front) and
    // double while the stream needs more room, up to `max_out`.
    let mut size = max_out.min(input.len().saturating_mul(4).clamp(64 << 10, 64 << 20));
    loop {
        let mut out = vec![0u8; size];
        match decode(input, &mut out) {
            Ok(n) => {
                out.truncate(n);
                return Ok(out);
            }
            Err(Stop::Full) if size < max_out => size = size.saturating_mul(2).min(max_out),
            Err(e) => return Err(e.into_error(max_out)),
        }
    }
}

/// As [`decompress`], straight into `out` (at most `out.len()` bytes, no allocation): the output
/// is `out[..n]` for the returned `n`; bytes of `out` past `n` may have been overwritten.
pub fn decompress_to(input: &[u8], out: &mut [u8]) -> Result<usize, UnpackError> {
    decode(input, out).map_err(|e| e.into_error(out.len()))
}

/// Why decoding stopped early.
#[derive(Debug)]
enum Stop {
    /// The output slice is full.
    Full,
    /// The input ends inside the stream.
    Truncated,
    /// A malformed stream.
    Corrupt(String),
}

impl Stop {
    fn into_error(self, max_out: usize) -> UnpackError {
        match self {
            Stop::Full => {
                UnpackError::Corrupt(format!("lzo: output exceeds the announced {max_out} bytes"))
            }
            Stop::Truncated => UnpackError::Truncated("lzo: input ends inside the stream".into()),
            Stop::Corrupt(what) => UnpackError::Corrupt(what),
        }
    }
}

/// The chunk that literal runs and far matches are copied in where both sides have room.
const WIDE: usize = 16;

/// Decodes `input` into `out`, returning the output length; the whole input must be used.
fn decode(input: &[u8], out: &mut [u8]) -> Result<usize, Stop> {
    let mut d = Decoder {
        input,
        ip: 0,
        out,
        op: 0,
    };
    d.run()?;
    if d.ip != input.len() {
        return Err(Stop::Corrupt(format!(
            "lzo: stream ends after {} of {} input bytes",
            d.ip,
            input.len()
        )));
    }
    Ok(d.op)
}

/// The decoder's state: input read up to `ip`, output written up to `op`.
struct Decoder<'i, 'o> {
    input: &'i [u8],
    ip: usize,
    out: &'o mut [u8],
    op: usize,
}

/// Copies `N` bytes of `buf` from `from` to `to` through a register-sized local (so the two
/// ranges may overlap and no call to `memmove` is made), refusing a range outside `buf`.
#[inline(always)]
fn copy_chunk<const N: usize>(buf: &mut [u8], from: usize, to: usize) -> Result<(), Stop> {
    let chunk: [u8; N] = buf
        .get(from..from.wrapping_add(N))
        .and_then(|s| s.try_into().ok())
        .ok_or(Stop::Full)?;
    let dst: &mut [u8; N] = buf
        .get_mut(to..to.wrapping_add(N))
        .and_then(|d| d.try_into().ok())
        .ok_or(Stop::Full)?;
    *dst = chunk;
    Ok(())
}

impl Decoder<'_, '_> {
    #[inline(always)]
    fn byte(&mut self) -> Result<usize, Stop> {
        let b = *self.input.get(self.ip).ok_or(Stop::Truncated)?;
        self.ip += 1;
        Ok(usize::from(b))
    }

    #[inline(always)]
    fn le16(&mut self) -> Result<usize, Stop> {
        let s: [u8; 2] = self
            .input
            .get(self.ip..self.ip.wrapping_add(2))
            .and_then(|s| s.try_into().ok())
            .ok_or(Stop::Truncated)?;
        self.ip += 2;
        Ok(usize::from(u16::from_le_bytes(s)))
    }

    /// A length continued by zero bytes (each worth 255) and a final non-zero byte.
    fn long_length(&mut self, base: usize) -> Result<usize, Stop> {
        let rest = self.input.get(self.ip..).unwrap_or_default();
        let zeros = rest.iter().take_while(|&&b| b == 0).count();
        self.ip += zeros;
        let last = self.byte()?;
        zeros
            .checked_mul(255)
            .and_then(|z| z.checked_add(base))
            .and_then(|z| z.checked_add(last))
            .ok_or_else(|| Stop::Corrupt("lzo: length overflows".into()))
    }

    /// Copies `n` literal bytes from the input.
    #[inline(always)]
    fn literals(&mut self, n: usize) -> Result<(), Stop> {
        let (ip, op) = (self.ip, self.op);
        let src_end = ip.checked_add(n).ok_or(Stop::Truncated)?;
        let dst_end = op.checked_add(n).ok_or(Stop::Full)?;
        if src_end > self.input.len() {
            return Err(Stop::Truncated);
        }
        if dst_end > self.out.len() {
            return Err(Stop::Full);
        }
        if n <= WIDE
            && let (Some(src), Some(dst)) = (
                self.input.get(ip..ip + WIDE),
                self.out.get_mut(op..op + WIDE),
            )
        {
            // One whole chunk: the bytes past `n` are overwritten by what follows (or lie past
            // the end of a stream that then fails, or past its final length).
            dst.copy_from_slice(src);
        } else if let (Some(src), Some(dst)) =
            (self.input.get(ip..src_end), self.out.get_mut(op..dst_end))
        {
            dst.copy_from_slice(src);
        }
        self.ip = src_end;
        self.op = dst_end;
        Ok(())
    }

    /// Copies `len` bytes from `dist` bytes back in the output.
    #[inline(always)]
    fn copy_match(&mut self, dist: usize, len: usize) -> Result<(), Stop> {
        let op = self.op;
        if dist == 0 || dist > op {
            return Err(Stop::Corrupt(format!(
                "lzo: back-reference {dist} bytes behind {op} bytes of output"
            )));
        }
        let end = op.checked_add(len).ok_or(Stop::Full)?;
        if end > self.out.len() {
            return Err(Stop::Full);
        }
        let from = op - dist;
        // Whole chunks may run up to 15 bytes past `end` (overwritten later or cut off) where the
        // output has room. A chunk never reads a byte it writes while it is no longer than the
        // distance: it only copies output that is already final.
        let room = self.out.len() - op;
        let buf = &mut *self.out;
        if dist >= WIDE && len.next_multiple_of(WIDE) <= room {
            let mut i = 0;
            while i < len {
                copy_chunk::<WIDE>(buf, from + i, op + i)?;
                i += WIDE;
            }
        } else if dist >= 8 && len.next_multiple_of(8) <= room {
            let mut i = 0;
            while i < len {
                copy_chunk::<8>(buf, from + i, op + i)?;
                i += 8;
            }
        } else if dist >= len {
            buf.copy_within(from..end - dist, op);
        } else if len <= 32 {
            // A short run with a period under its length: byte by byte.
            let window = buf.get_mut(from..end).ok_or(Stop::Full)?;
            for k in dist..window.len() {
                let b = window.get(k - dist).copied().unwrap_or_default();
                if let Some(d) = window.get_mut(k) {
                    *d = b;
                }
            }
        } else {
            // Overlapping: the output repeats with period `dist` from `from` on, so everything
            // written since `from` (a whole number of periods) can be copied again at once.
            let mut dst = op;
            while dst < end {
                let n = (dst - from).min(end - dst);
                buf.copy_within(from..from + n, dst);
                dst += n;
            }
        }
        self.op = end;
        Ok(())
    }

    /// The 0..=3 literals that follow a match (the low bits of its last byte).
    #[inline(always)]
    fn trailing(&mut self, n: usize) -> Result<(), Stop> {
        if n == 0 {
            return Ok(());
        }
        let (ip, op) = (self.ip, self.op);
        if let (Some(src), Some(dst)) = (self.input.get(ip..ip + 4), self.out.get_mut(op..op + 4)) {
            // Four bytes at once; only `n` of them count.
            dst.copy_from_slice(src);
            self.ip = ip + n;
            self.op = op + n;
            Ok(())
        } else {
            self.literals(n)
        }
    }

    fn run(&mut self) -> Result<(), Stop> {
        let mut state;
        let first = *self.input.first().ok_or(Stop::Truncated)?;
        if first >= 22 {
            self.ip = 1;
            self.literals(usize::from(first) - 17)?;
            state = 4;
        } else if first >= 18 {
            self.ip = 1;
            state = usize::from(first) - 17;
            self.literals(state)?;
        } else {
            state = 0;
        }
        loop {
            let inst = self.byte()?;
            let (dist, len, next_state);
            if inst >= 64 {
                // M2: 3..8 bytes within 2 KiB.
                let h = self.byte()?;
                dist = (h << 3) + ((inst >> 2) & 7) + 1;
                len = (inst >> 5) + 1;
                next_state = inst & 3;
            } else if inst >= 32 {
                // M3: within 16 KiB.
                len = match inst & 0x1F {
                    0 => self.long_length(31)? + 2,
                    l => l + 2,
                };
                let d = self.le16()?;
                dist = (d >> 2) + 1;
                next_state = d & 3;
            } else if inst >= 16 {
                // M4: 16..48 KiB, or the end of the stream.
                len = match inst & 7 {
                    0 => self.long_length(7)? + 2,
                    l => l + 2,
                };
                let d = self.le16()?;
                let far = ((inst & 8) << 11) + (d >> 2);
                if far == 0 {
                    return if len == 3 {
                        Ok(())
                    } else {
                        Err(Stop::Corrupt("lzo: malformed end marker".into()))
                    };
                }
                dist = far + 16384;
                next_state = d & 3;
            } else if state == 0 {
                // A run of 4 or more literals.
                let n = match inst {
                    0 => self.long_length(15)? + 3,
                    l => l + 3,
                };
                self.literals(n)?;
                state = 4;
                continue;
            } else if state != 4 {
                // M1: 2 bytes within 1 KiB after 1..3 literals.
                let h = self.byte()?;
                dist = (inst >> 2) + (h << 2) + 1;
                len = 2;
                next_state = inst & 3;
            } else {
                // M1 after a literal run: 3 bytes at 2..3 KiB.
                let h = self.byte()?;
                dist = (inst >> 2) + (h << 2) + 2049;
                len = 3;
                next_state = inst & 3;
            }
            self.copy_match(dist, len)?;
            state = next_state;
            self.trailing(next_state)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A xorshift32 byte source seeded with `seed`: each call returns the next `n` bytes.
    fn xorshift(seed: u32) -> impl FnMut(usize) -> Vec<u8> {
        let mut x = seed;
        move |n| {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        }
    }

    fn sample_text() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..5000u32 {
            v.extend_from_slice(format!("line {i}: the quick brown fox {}\n", i % 17).as_bytes());
        }
        v.extend(std::iter::repeat_n(0u8, 70_000));
        v.extend((0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        v
    }

    #[test]
    fn round_trips_lzokay_output() {
        let data = sample_text();
        let packed = lzokay_native::compress(&data).unwrap();
        assert_eq!(decompress(&packed, data.len()).unwrap(), data);
    }

    #[test]
    fn periodic_runs_and_short_matches_round_trip() {
        // Every period from 1 to 40 (overlapping matches), runs of each length around the
        // 16-byte fast paths, and the exact output size as the limit.
        let mut data = Vec::new();
        for period in 1..=40u8 {
            let unit: Vec<u8> = (0..period).map(|i| i.wrapping_mul(37) ^ period).collect();
            for len in [1usize, 2, 3, 15, 16, 17, 33, 300] {
                data.extend(unit.iter().cycle().take(len));
                data.extend_from_slice(b"|sep|");
            }
        }
        for cut in [5usize, 100, 4096, data.len()] {
            let part = &data[..cut];
            let packed = lzokay_native::compress(part).unwrap();
            assert_eq!(decompress(&packed, part.len()).unwrap(), part, "cut {cut}");
        }
    }

    #[test]
    fn long_literal_runs_and_matches_at_every_distance_round_trip() {
        // Incompressible runs of many lengths (whole 16-byte chunks and the exact copy near the
        // end of the input), then matches at distances 1..=70 of lengths up to 200, so every copy
        // path (byte loop, 8- and 16-byte chunks, period doubling) meets every alignment.
        let mut noise = xorshift(0x2545_F491u32);
        let mut data = Vec::new();
        for dist in 1..=70usize {
            for len in [2usize, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 200] {
                let unit = noise(dist);
                data.extend(unit.iter().cycle().take(dist + len));
                let run = noise(len % 37 + 1);
                data.extend_from_slice(&run);
            }
        }
        for tail in [0usize, 1, 15, 16, 17, 300] {
            let mut d = data.clone();
            d.extend(noise(tail));
            let packed = lzokay_native::compress(&d).unwrap();
            assert_eq!(decompress(&packed, d.len()).unwrap(), d, "tail {tail}");
            // Reusing one buffer across blocks gives the same bytes.
            let mut buf = vec![0xAA; d.len() + 40];
            let n = decompress_to(&packed, &mut buf).unwrap();
            assert_eq!(&buf[..n], &d[..], "tail {tail}, reused buffer");
            // Into a slice of exactly the output's size (no room for chunk copies at the end).
            let mut exact = vec![0u8; d.len()];
            assert_eq!(decompress_to(&packed, &mut exact).unwrap(), d.len());
            assert!(exact == d, "tail {tail}, exact slice");
        }
    }

    /// Decodes `packed` every way the API allows and checks all agree with `data`.
    fn check_all_ways(packed: &[u8], data: &[u8], what: &str) {
        assert_eq!(decompress(packed, data.len()).unwrap(), data, "{what}");
        // A slice of exactly the output's size: no room for chunk copies at the very end.
        let mut exact = vec![0u8; data.len()];
        assert_eq!(
            decompress_to(packed, &mut exact).unwrap(),
            data.len(),
            "{what}"
        );
        assert!(exact == data, "{what}: exact slice");
        // A larger, dirty slice.
        let mut roomy = vec![0x5A; data.len() + 100];
        let n = decompress_to(packed, &mut roomy).unwrap();
        assert!(roomy[..n] == *data, "{what}: roomy slice");
        // One byte too small: refused, never a panic or a short success.
        if !data.is_empty() {
            let mut short = vec![0u8; data.len() - 1];
            assert!(
                decompress_to(packed, &mut short).is_err(),
                "{what}: short slice"
            );
        }
    }

    #[test]
    fn every_token_shape_round_trips_into_exact_and_roomy_slices() {
        let mut noise = xorshift(0x0BAD_5EEDu32);
        let mut shapes: Vec<(&str, Vec<u8>)> = Vec::new();
        // Long runs: lengths continued by zero bytes (M3/M4 long lengths).
        shapes.push(("zero run", vec![0u8; 200_000]));
        // Incompressible: long literal runs (the zero-continued literal length).
        shapes.push(("noise", noise(70_000)));
        // Overlapping matches at distances 1..=16, each repeated past 16 bytes.
        let mut periodic = Vec::new();
        for dist in 1..=16usize {
            let unit = noise(dist);
            for len in [3usize, 4, 9, 16, 17, 40, 100, 1000] {
                periodic.extend(unit.iter().cycle().take(dist + len));
                periodic.extend(noise(5));
            }
        }
        shapes.push(("periodic", periodic));
        // Far matches (M4: 16..48 KiB back) and near ones (M2/M3), with short literal runs
        // between them (the 1..3 trailing literals and M1).
        let block = noise(3000);
        let mut far = Vec::new();
        for i in 0..20usize {
            far.extend_from_slice(&block[i * 7..i * 7 + 500]);
            far.extend(noise(i % 4));
            far.extend(noise(20_000));
            far.extend_from_slice(&block[..(i * 13) % 200 + 3]);
            far.extend(noise(1 + i % 3));
        }
        shapes.push(("far and near", far));
        // Text: many short M1/M2 matches.
        let text: Vec<u8> = (0..3000)
            .flat_map(|i| format!("key{}=value{};\n", i % 97, i % 13).into_bytes())
            .collect();
        shapes.push(("text", text));
        for (what, data) in &shapes {
            let packed = lzokay_native::compress(data).unwrap();
            check_all_ways(&packed, data, what);
            // Every cut of the stream fails cleanly.
            for cut in (0..packed.len()).step_by(packed.len() / 97 + 1) {
                let mut out = vec![0u8; data.len()];
                assert!(
                    decompress_to(&packed[..cut], &mut out).is_err(),
                    "{what} cut {cut}"
                );
            }
            // Corrupt bytes never panic and never write past the slice.
            for at in (0..packed.len()).step_by(packed.len() / 61 + 1) {
                let mut bad = packed.clone();
                bad[at] ^= 0xA5;
                let mut out = vec![0u8; data.len()];
                if let Ok(n) = decompress_to(&bad, &mut out) {
                    assert!(n <= data.len());
                }
            }
        }
    }

    #[test]
    fn hand_built_streams_cover_m1_and_the_first_byte_forms() {
        // First byte 17 + 4: four literals, then M1 after a literal run (3 bytes, 2049+ back) is
        // out of range here, so: "abcd", M2 (dist 4, len 3) with 2 trailing literals, M1 (2 bytes,
        // dist 1 + (inst >> 2) + (h << 2)) after them, then the end marker.
        let stream = [
            21,
            b'a',
            b'b',
            b'c',
            b'd', // 4 literals, state 4
            0x40 | (3 << 2) | 2,
            0x00, // M2: len 3, dist 4, 2 trailing literals
            b'x',
            b'y', // the trailing literals
            0x04,
            0x00, // M1 (state 2): len 2, dist 2
            0x11,
            0x00,
            0x00, // end
        ];
        assert_eq!(decompress(&stream, 64).unwrap(), b"abcdabcxyxy");
        check_all_ways(&stream, b"abcdabcxyxy", "hand-built");
        // First byte 18..21: 1..4 literals and that state.
        let stream = [18, b'z', 0x00, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(decompress(&stream, 64).unwrap(), b"zzz");
        // A malformed end marker and trailing garbage are errors.
        assert!(decompress(&[21, 1, 2, 3, 4, 0x12, 0x00, 0x00], 64).is_err());
        assert!(decompress(&[21, 1, 2, 3, 4, 0x11, 0x00, 0x00, 9], 64).is_err());
        // A back-reference further than the output so far.
        assert!(
            decompress(
                &[21, 1, 2, 3, 4, 0x40 | (7 << 2), 0x00, 0x11, 0x00, 0x00],
                64
            )
            .is_err()
        );
    }

    #[test]
    fn output_past_the_announced_size_is_refused() {
        let data = vec![7u8; 100_000];
        let packed = lzokay_native::compress(&data).unwrap();
        let e = decompress(&packed, 50_000).unwrap_err();
        assert!(matches!(e, UnpackError::Corrupt(_)), "{e}");
    }

    #[test]
    fn truncation_and_garbage_are_errors_not_panics() {
        let data = sample_text();
        let packed = lzokay_native::compress(&data).unwrap();
        for cut in [0, 1, 2, 10, packed.len() / 2, packed.len() - 1] {
            assert!(decompress(&packed[..cut], data.len()).is_err(), "cut {cut}");
        }
        // A back-reference before any output (lzokay-native itself would underflow here).
        assert!(decompress(&[0x40, 0x00, 0x11, 0x00, 0x00], 100).is_err());
        let mut junk = xorshift(0x1234_5678);
        for _ in 0..2000 {
            let _ = decompress(&junk(64), 1 << 16);
        }
    }
}
