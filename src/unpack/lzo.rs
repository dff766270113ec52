//! A bounded, panic-free LZO1X decompressor (the block format squashfs's `lzo` compressor writes).
//! Written from the instruction encoding documented in the Linux kernel's
//! `lib/lzo/lzo1x_decompress_safe.c` and in lzokay; every read and back-reference is checked and
//! the output never exceeds the caller's maximum.

use super::UnpackError;

fn corrupt(what: &str) -> UnpackError {
    UnpackError::Corrupt(format!("lzo: {what}"))
}

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<u8, UnpackError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| corrupt("input ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    fn le16(&mut self) -> Result<usize, UnpackError> {
        let lo = self.byte()?;
        let hi = self.byte()?;
        Ok(usize::from(u16::from_le_bytes([lo, hi])))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], UnpackError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| corrupt("length overflow"))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| corrupt("input ends early"))?;
        self.pos = end;
        Ok(s)
    }

    /// A run length continued by zero bytes (each worth 255) and a final non-zero byte.
    fn long_length(&mut self, base: usize, max: usize) -> Result<usize, UnpackError> {
        let mut len = base;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return len
                    .checked_add(usize::from(b))
                    .filter(|&l| l <= max)
                    .ok_or_else(|| corrupt("run longer than the output"));
            }
            len = len.saturating_add(255);
            if len > max {
                return Err(corrupt("run longer than the output"));
            }
        }
    }
}

/// Decompresses one LZO1X block, producing at most `max_out` bytes.
pub fn decompress(input: &[u8], max_out: usize) -> Result<Vec<u8>, UnpackError> {
    let mut out: Vec<u8> = Vec::with_capacity(max_out.min(1 << 20));
    let mut ip = Input {
        data: input,
        pos: 0,
    };
    let push_literals = |out: &mut Vec<u8>, ip: &mut Input<'_>, n: usize| {
        if out.len().saturating_add(n) > max_out {
            return Err(corrupt("output larger than allowed"));
        }
        out.extend_from_slice(ip.take(n)?);
        Ok(())
    };
    let mut state: usize = 0;
    let first = *input.first().ok_or_else(|| corrupt("empty input"))?;
    if first >= 22 {
        ip.pos = 1;
        push_literals(&mut out, &mut ip, usize::from(first - 17))?;
        state = 4;
    } else if first >= 18 {
        ip.pos = 1;
        let n = usize::from(first - 17);
        push_literals(&mut out, &mut ip, n)?;
        state = n;
    }
    loop {
        let inst = ip.byte()?;
        let (len, distance, next);
        if inst >= 64 {
            // M2: 3–8 bytes within 2 KiB.
            let h = usize::from(ip.byte()?);
            len = usize::from(inst >> 5) + 1;
            distance = (h << 3) + usize::from((inst >> 2) & 7) + 1;
            next = usize::from(inst & 3);
        } else if inst >= 32 {
            // M3: within 16 KiB.
            let mut l = usize::from(inst & 31) + 2;
            if l == 2 {
                l = ip.long_length(31 + 2, max_out)?;
            }
            let d = ip.le16()?;
            len = l;
            distance = (d >> 2) + 1;
            next = d & 3;
        } else if inst >= 16 {
            // M4: within 16–48 KiB, or the end of the stream.
            let mut l = usize::from(inst & 7) + 2;
            if l == 2 {
                l = ip.long_length(7 + 2, max_out)?;
            }
            let d = ip.le16()?;
            let far = (usize::from(inst & 8) << 11) + (d >> 2);
            if far == 0 {
                if ip.pos != input.len() {
                    return Err(corrupt("data after the end marker"));
                }
                return Ok(out);
            }
            len = l;
            distance = far + 16384;
            next = d & 3;
        } else if state == 0 {
            // A literal run of 4 or more bytes.
            let n = if inst == 0 {
                ip.long_length(15 + 3, max_out)?
            } else {
                usize::from(inst) + 3
            };
            push_literals(&mut out, &mut ip, n)?;
            state = 4;
            continue;
        } else if state < 4 {
            let h = usize::from(ip.byte()?);
            len = 2;
            distance = (h << 2) + usize::from(inst >> 2) + 1;
            next = usize::from(inst & 3);
        } else {
            let h = usize::from(ip.byte()?);
            len = 3;
            distance = (h << 2) + usize::from(inst >> 2) + 2049;
            next = usize::from(inst & 3);
        }
        let start = out
            .len()
            .checked_sub(distance)
            .ok_or_else(|| corrupt("back-reference before the start"))?;
        if out.len().saturating_add(len) > max_out {
            return Err(corrupt("output larger than allowed"));
        }
        if distance >= len {
            out.extend_from_within(start..start + len);
        } else {
            for i in 0..len {
                let b = out.get(start + i).copied().unwrap_or_default();
                out.push(b);
            }
        }
        push_literals(&mut out, &mut ip, next)?;
        state = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_lzokay_output() {
        let text: Vec<u8> = (0..20000u32)
            .flat_map(|i| format!("line {} of {}\n", i % 97, i / 13).into_bytes())
            .collect();
        let packed = lzokay_native::compress(&text).unwrap();
        assert!(packed.len() < text.len() / 2);
        assert_eq!(decompress(&packed, text.len()).unwrap(), text);
        // One byte short of the real size is refused, never truncated silently.
        assert!(decompress(&packed, text.len() - 1).is_err());
    }

    #[test]
    fn hostile_input_never_panics() {
        let text = b"abcabcabcabcabcabcabcabc hello hello hello".repeat(50);
        let packed = lzokay_native::compress(&text).unwrap();
        for i in 0..packed.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = packed.clone();
                bad[i] ^= flip;
                let _ = decompress(&bad, 1 << 16);
            }
            let _ = decompress(&packed[..i], 1 << 16);
        }
    }
}
