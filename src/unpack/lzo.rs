//! LZO1X decompression, bounded and panic-free: every read and back-reference is checked and the
//! output never grows past the size the container announced (short copies move 16 bytes into slack
//! past the end). Encoding as documented by lzokay (Jack Andersen, MIT), via `lzokay-native`.

use super::UnpackError;

/// Decompresses one LZO1X block (LZO1X-1, -1_15 and -999 share the format) that must expand to
/// at most `max_out` bytes and must use all of `input`.
pub fn decompress(input: &[u8], max_out: usize) -> Result<Vec<u8>, UnpackError> {
    let mut out = Vec::new();
    let n = decompress_into(input, max_out, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// As [`decompress`], into `buf` (reused across calls: no allocation once it has grown to a
/// block): the output is `buf[..n]` for the returned `n`; bytes after it are scratch.
pub fn decompress_into(
    input: &[u8],
    max_out: usize,
    buf: &mut Vec<u8>,
) -> Result<usize, UnpackError> {
    let initial = max_out.min(input.len().saturating_mul(4)).min(64 << 20);
    let mut out = std::mem::take(buf);
    if out.len() < initial {
        out.resize(initial, 0);
    }
    let mut d = Decoder {
        input,
        pos: 0,
        out,
        op: 0,
        max_out,
    };
    let ran = d.run();
    let (pos, op) = (d.pos, d.op);
    *buf = d.out;
    ran?;
    if pos != input.len() {
        return Err(UnpackError::Corrupt(format!(
            "lzo: stream ends after {pos} of {} input bytes",
            input.len()
        )));
    }
    Ok(op)
}

/// The decoder's state. Output goes to `out[..op]`; what `out` holds past `op` is scratch; it grows
/// (doubling, never past `max_out`) as the stream needs room, so writes are plain slice copies.
/// Bytes kept writable past the output's end, for fixed-size short copies.
const SLACK: usize = 32;
/// The chunk that literal runs and matches from at least this far back are copied in.
const WIDE: usize = 16;

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    op: usize,
    max_out: usize,
}

/// `buf.copy_within(from..from + len, to)`, refusing (instead of panicking on) a range outside
/// `buf`.
#[inline(always)]
fn copy_within(buf: &mut [u8], from: usize, len: usize, to: usize) -> Result<(), UnpackError> {
    let fits = |start: usize| start.checked_add(len).is_some_and(|e| e <= buf.len());
    if fits(from) && fits(to) {
        buf.copy_within(from..from + len, to);
        Ok(())
    } else {
        Err(UnpackError::Corrupt("lzo: copy outside the output".into()))
    }
}

/// Copies `N` bytes of `buf` from `from` to `to` through a register-sized local (so the two
/// ranges may overlap, and no call to `memmove` is made), refusing a range outside `buf`.
#[inline(always)]
fn copy_chunk<const N: usize>(buf: &mut [u8], from: usize, to: usize) -> Result<(), UnpackError> {
    let chunk: [u8; N] = from
        .checked_add(N)
        .and_then(|end| buf.get(from..end))
        .and_then(|s| s.try_into().ok())
        .ok_or_else(outside)?;
    store(buf, to, chunk)
}

/// Writes `chunk` at `to`, refusing a range outside `buf`.
#[inline(always)]
fn store<const N: usize>(buf: &mut [u8], to: usize, chunk: [u8; N]) -> Result<(), UnpackError> {
    let dst: &mut [u8; N] = to
        .checked_add(N)
        .and_then(|end| buf.get_mut(to..end))
        .and_then(|d| d.try_into().ok())
        .ok_or_else(outside)?;
    *dst = chunk;
    Ok(())
}

fn outside() -> UnpackError {
    UnpackError::Corrupt("lzo: copy outside the output".into())
}

fn truncated() -> UnpackError {
    UnpackError::Truncated("lzo: input ends inside the stream".into())
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<u8, UnpackError> {
        let b = *self.input.get(self.pos).ok_or_else(truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn le16(&mut self) -> Result<usize, UnpackError> {
        let lo = self.byte()?;
        let hi = self.byte()?;
        Ok(usize::from(u16::from_le_bytes([lo, hi])))
    }

    /// A length continued by zero bytes (each worth 255) and a final non-zero byte.
    fn long_length(&mut self, base: usize) -> Result<usize, UnpackError> {
        let mut zeros = 0usize;
        while self.input.get(self.pos) == Some(&0) {
            zeros += 1;
            self.pos += 1;
        }
        let last = usize::from(self.byte()?);
        zeros
            .checked_mul(255)
            .and_then(|z| z.checked_add(base))
            .and_then(|z| z.checked_add(last))
            .ok_or_else(|| UnpackError::Corrupt("lzo: length overflows".into()))
    }

    /// Makes room for `n` more output bytes, refusing output past `max_out`; returns the end.
    #[inline(always)]
    fn room(&mut self, n: usize) -> Result<usize, UnpackError> {
        let end = self
            .op
            .checked_add(n)
            .filter(|&e| e <= self.max_out)
            .ok_or_else(|| {
                UnpackError::Corrupt(format!(
                    "lzo: output exceeds the announced {} bytes",
                    self.max_out
                ))
            })?;
        // Keep `SLACK` bytes beyond `end` so short copies can move a fixed 16 bytes at once.
        if end.saturating_add(SLACK) > self.out.len() {
            let grown = self
                .out
                .len()
                .saturating_mul(2)
                .clamp(end, self.max_out)
                .saturating_add(SLACK);
            self.out.resize(grown, 0);
        }
        Ok(end)
    }

    #[inline(always)]
    fn literals(&mut self, n: usize) -> Result<(), UnpackError> {
        let end = self.room(n)?;
        let src_end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let src = self.input.get(self.pos..src_end).ok_or_else(truncated)?;
        // Where the input has 15 bytes to spare after the run, copy whole 16-byte chunks (the
        // extra bytes land in the slack and are overwritten or cut off later).
        if src_end.saturating_add(WIDE) <= self.input.len() {
            let mut i = 0;
            while i < n {
                let at = self.pos + i;
                let chunk: [u8; WIDE] = self
                    .input
                    .get(at..at + WIDE)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(truncated)?;
                store(&mut self.out, self.op + i, chunk)?;
                i += WIDE;
            }
        } else if let Some(dst) = self.out.get_mut(self.op..end) {
            dst.copy_from_slice(src);
        }
        self.op = end;
        self.pos = src_end;
        Ok(())
    }

    #[inline(always)]
    fn copy_match(&mut self, dist: usize, len: usize) -> Result<(), UnpackError> {
        if dist == 0 || dist > self.op {
            return Err(UnpackError::Corrupt(format!(
                "lzo: back-reference {dist} bytes behind {} bytes of output",
                self.op
            )));
        }
        let end = self.room(len)?;
        let from = self.op - dist;
        // In bounds: `from < op`, and `room` left `SLACK` (16+) bytes after `end`, so whole
        // chunks may run up to 15 bytes past it. A chunk never reads a byte it writes while the
        // chunk is no longer than the distance: it only copies output that is already final.
        if dist >= WIDE {
            let mut i = 0;
            while i < len {
                copy_chunk::<WIDE>(&mut self.out, from + i, self.op + i)?;
                i += WIDE;
            }
        } else if dist >= 8 {
            let mut i = 0;
            while i < len {
                copy_chunk::<8>(&mut self.out, from + i, self.op + i)?;
                i += 8;
            }
        } else if len <= 32 {
            // A short run with a period under 8 bytes: byte by byte.
            let window = self.out.get_mut(from..end).ok_or_else(outside)?;
            for k in dist..window.len() {
                let b = window.get(k - dist).copied().unwrap_or_default();
                if let Some(d) = window.get_mut(k) {
                    *d = b;
                }
            }
        } else {
            // Overlapping: the output repeats with period `dist` from `from` on, so everything
            // written since `from` (a whole number of periods) can be copied again at once.
            let mut dst = self.op;
            while dst < end {
                let n = (dst - from).min(end - dst);
                copy_within(&mut self.out, from, n, dst)?;
                dst += n;
            }
        }
        self.op = end;
        Ok(())
    }

    fn run(&mut self) -> Result<(), UnpackError> {
        let mut state = 0usize;
        let first = *self.input.first().ok_or_else(truncated)?;
        if first >= 22 {
            self.pos = 1;
            self.literals(usize::from(first) - 17)?;
            state = 4;
        } else if first >= 18 {
            self.pos = 1;
            state = usize::from(first) - 17;
            self.literals(state)?;
        }
        loop {
            let inst = self.byte()?;
            let (dist, len, next_state);
            if inst & 0xC0 != 0 {
                // M2: 3..8 bytes within 2 KiB.
                let h = usize::from(self.byte()?);
                dist = (h << 3) + usize::from((inst >> 2) & 7) + 1;
                len = usize::from(inst >> 5) + 1;
                next_state = usize::from(inst & 3);
            } else if inst & 0x20 != 0 {
                // M3: within 16 KiB.
                len = match usize::from(inst & 0x1F) {
                    0 => self.long_length(31)? + 2,
                    l => l + 2,
                };
                let d = self.le16()?;
                dist = (d >> 2) + 1;
                next_state = d & 3;
            } else if inst & 0x10 != 0 {
                // M4: 16..48 KiB, or the end of the stream.
                len = match usize::from(inst & 7) {
                    0 => self.long_length(7)? + 2,
                    l => l + 2,
                };
                let d = self.le16()?;
                let far = (usize::from(inst & 8) << 11) + (d >> 2);
                if far == 0 {
                    return if len == 3 {
                        Ok(())
                    } else {
                        Err(UnpackError::Corrupt("lzo: malformed end marker".into()))
                    };
                }
                dist = far + 16384;
                next_state = d & 3;
            } else if state == 0 {
                // A run of 4 or more literals.
                let n = match usize::from(inst) {
                    0 => self.long_length(15)? + 3,
                    l => l + 3,
                };
                self.literals(n)?;
                state = 4;
                continue;
            } else if state != 4 {
                // M1: 2 bytes within 1 KiB after 1..3 literals.
                let h = usize::from(self.byte()?);
                dist = (usize::from(inst) >> 2) + (h << 2) + 1;
                len = 2;
                next_state = usize::from(inst & 3);
            } else {
                // M1 after a literal run: 3 bytes at 2..3 KiB.
                let h = usize::from(self.byte()?);
                dist = (usize::from(inst) >> 2) + (h << 2) + 2049;
                len = 3;
                next_state = usize::from(inst & 3);
            }
            self.copy_match(dist, len)?;
            state = next_state;
            self.literals(next_state)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut x = 0x2545_F491u32;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        };
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
            let mut buf = vec![0xAA; 7];
            let n = decompress_into(&packed, d.len(), &mut buf).unwrap();
            assert_eq!(&buf[..n], &d[..], "tail {tail}, reused buffer");
        }
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
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = decompress(&junk, 1 << 16);
        }
    }
}
