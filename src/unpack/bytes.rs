//! Bounds-checked reading of untrusted bytes: every read returns a `Result` naming what was being
//! read and where, so a format parser never slices out of bounds and never panics.

use super::UnpackError;

/// Endianness of multi-byte fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

/// Returns `data[offset..offset + len]` or a "truncated" error naming `what`.
pub fn slice<'a>(
    data: &'a [u8],
    offset: u64,
    len: u64,
    what: &str,
) -> Result<&'a [u8], UnpackError> {
    let start = usize::try_from(offset).ok();
    let end = offset
        .checked_add(len)
        .and_then(|e| usize::try_from(e).ok());
    match (start, end) {
        (Some(s), Some(e)) if e <= data.len() => data
            .get(s..e)
            .ok_or_else(|| trunc(what, offset, len, data.len())),
        _ => Err(trunc(what, offset, len, data.len())),
    }
}

fn trunc(what: &str, offset: u64, len: u64, available: usize) -> UnpackError {
    UnpackError::Truncated(format!(
        "{what}: needs {len} bytes at offset {offset:#x}, input has {available}"
    ))
}

/// A cursor over untrusted bytes with checked, endian-aware reads.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    endian: Endian,
}

impl<'a> Reader<'a> {
    /// A little-endian reader at offset 0.
    pub fn new(data: &'a [u8]) -> Self {
        Self::with_endian(data, Endian::Little)
    }

    /// A reader with the given endianness at offset 0.
    pub fn with_endian(data: &'a [u8], endian: Endian) -> Self {
        Self {
            data,
            pos: 0,
            endian,
        }
    }

    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the cursor.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// Moves the cursor to `pos` (which may be the end, not past it).
    pub fn seek(&mut self, pos: u64, what: &str) -> Result<(), UnpackError> {
        match usize::try_from(pos) {
            Ok(p) if p <= self.data.len() => {
                self.pos = p;
                Ok(())
            }
            _ => Err(trunc(what, pos, 0, self.data.len())),
        }
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: u64, what: &str) -> Result<&'a [u8], UnpackError> {
        let out = slice(self.data, self.pos as u64, n, what)?;
        self.pos += out.len();
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: u64, what: &str) -> Result<(), UnpackError> {
        self.bytes(n, what).map(|_| ())
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], UnpackError> {
        let b = self.bytes(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &str) -> Result<u8, UnpackError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a 16-bit integer in the reader's endianness.
    pub fn u16(&mut self, what: &str) -> Result<u16, UnpackError> {
        let a = self.array::<2>(what)?;
        Ok(match self.endian {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        })
    }

    /// Reads a 32-bit integer in the reader's endianness.
    pub fn u32(&mut self, what: &str) -> Result<u32, UnpackError> {
        let a = self.array::<4>(what)?;
        Ok(match self.endian {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        })
    }

    /// Reads a 64-bit integer in the reader's endianness.
    pub fn u64(&mut self, what: &str) -> Result<u64, UnpackError> {
        let a = self.array::<8>(what)?;
        Ok(match self.endian {
            Endian::Little => u64::from_le_bytes(a),
            Endian::Big => u64::from_be_bytes(a),
        })
    }
}

/// Reads a big-endian `u32` at `offset`.
pub fn be32(data: &[u8], offset: u64, what: &str) -> Result<u32, UnpackError> {
    let mut r = Reader::with_endian(data, Endian::Big);
    r.seek(offset, what)?;
    r.u32(what)
}

/// Reads a little-endian `u32` at `offset`.
pub fn le32(data: &[u8], offset: u64, what: &str) -> Result<u32, UnpackError> {
    let mut r = Reader::new(data);
    r.seek(offset, what)?;
    r.u32(what)
}

/// Reads a little-endian `u16` at `offset`.
pub fn le16(data: &[u8], offset: u64, what: &str) -> Result<u16, UnpackError> {
    let mut r = Reader::new(data);
    r.seek(offset, what)?;
    r.u16(what)
}

/// A NUL-terminated (or field-filling) string from a fixed-size field, lossily decoded.
pub fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(field.get(..end).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_end_are_errors() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("x").unwrap(), 0x0201);
        assert!(matches!(r.u16("y"), Err(UnpackError::Truncated(_))));
        assert!(slice(&[0; 4], u64::MAX, 2, "z").is_err());
    }
}
