//! LZO1X decompression, bounded and panic-free: every read and back-reference is checked and the
//! output may never grow past the size the container announced. The instruction encoding follows
//! the documentation of lzokay (Jack Andersen, MIT) as carried by the `lzokay-native` crate.

use super::UnpackError;

/// Decompresses one LZO1X block (LZO1X-1, -1_15 and -999 share the format) that must expand to
/// at most `max_out` bytes and must use all of `input`.
pub fn decompress(input: &[u8], max_out: usize) -> Result<Vec<u8>, UnpackError> {
    let mut d = Decoder {
        input,
        pos: 0,
        out: Vec::with_capacity(max_out.min(input.len().saturating_mul(4)).min(64 << 20)),
        max_out,
    };
    d.run()?;
    if d.pos != input.len() {
        return Err(UnpackError::Corrupt(format!(
            "lzo: stream ends after {} of {} input bytes",
            d.pos,
            input.len()
        )));
    }
    Ok(d.out)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    max_out: usize,
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

    fn room(&self, n: usize) -> Result<(), UnpackError> {
        if self
            .out
            .len()
            .checked_add(n)
            .is_some_and(|e| e <= self.max_out)
        {
            Ok(())
        } else {
            Err(UnpackError::Corrupt(format!(
                "lzo: output exceeds the announced {} bytes",
                self.max_out
            )))
        }
    }

    fn literals(&mut self, n: usize) -> Result<(), UnpackError> {
        self.room(n)?;
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let src = self.input.get(self.pos..end).ok_or_else(truncated)?;
        self.out.extend_from_slice(src);
        self.pos = end;
        Ok(())
    }

    fn copy_match(&mut self, dist: usize, len: usize) -> Result<(), UnpackError> {
        if dist == 0 || dist > self.out.len() {
            return Err(UnpackError::Corrupt(format!(
                "lzo: back-reference {dist} bytes behind {} bytes of output",
                self.out.len()
            )));
        }
        self.room(len)?;
        let start = self.out.len() - dist;
        if dist >= len {
            self.out.extend_from_within(start..start + len);
        } else {
            for i in 0..len {
                let b = self.out.get(start + i).copied().unwrap_or(0);
                self.out.push(b);
            }
        }
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
