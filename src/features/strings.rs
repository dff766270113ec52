//! Printable strings of a file: ASCII runs and UTF-16LE runs (code units below 0x80), each with its
//! offset, found in one pass over the bytes, at most a given number per file.

use std::borrow::Cow;

/// How a string was encoded in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// One byte per character.
    Ascii,
    /// Two bytes per character, little-endian, high byte zero.
    Utf16Le,
}

/// One run of printable characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run<'a> {
    /// Offset of the first byte in the file.
    pub offset: u64,
    /// How it was encoded.
    pub encoding: Encoding,
    /// The characters (borrowed for ASCII runs).
    pub text: Cow<'a, str>,
}

impl<'a> Run<'a> {
    /// The text of an ASCII run, borrowed from the buffer (`None` for a UTF-16LE run).
    pub fn ascii(&self) -> Option<&'a str> {
        match (self.encoding, &self.text) {
            (Encoding::Ascii, Cow::Borrowed(t)) => Some(t),
            _ => None,
        }
    }
}

/// The strings of one buffer.
#[derive(Clone, Debug, Default)]
pub struct Strings<'a> {
    /// Runs in the order their last byte appears in the buffer (ASCII and UTF-16LE interleaved).
    pub runs: Vec<Run<'a>>,
    /// Whether runs were dropped because `max_count` was reached.
    pub truncated: bool,
}

/// Printable for `strings`: space to tilde, and tab.
#[inline]
fn printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) || b == b'\t'
}

/// Every run of at least `min_len` printable ASCII characters, and every run of at least `min_len`
/// UTF-16LE code units whose high byte is zero and low byte printable, in `data`; at most
/// `max_count` runs (the rest are dropped and `truncated` is set).
///
/// ```
/// use fwsim::features::strings::{extract, Encoding};
/// let s = extract(b"\x00\x01BusyBox v1.26.2\x00\xffW\x00i\x00d\x00e\x001\x006\x00\x00\x00", 6, 10);
/// assert_eq!(s.runs[0].text, "BusyBox v1.26.2");
/// assert_eq!((s.runs[1].offset, s.runs[1].encoding), (19, Encoding::Utf16Le));
/// assert_eq!(s.runs[1].text, "Wide16");
/// ```
pub fn extract(data: &[u8], min_len: usize, max_count: usize) -> Strings<'_> {
    let min_len = min_len.max(1);
    let mut out = Strings::default();
    // Start of the current ASCII run.
    let mut ascii_start = 0usize;
    // Per parity of the offset: start of the current UTF-16LE run and its length in code units.
    let mut wide_start = [0usize; 2];
    let mut wide_units = [0usize; 2];
    let n = data.len();
    let mut i = 0usize;
    while i < n {
        // Nothing open: a non-printable byte only moves the ASCII start, so skip them all at once
        // (most bytes of code and compressed data).
        if ascii_start == i && wide_units == [0, 0] {
            let rest = data.get(i..).unwrap_or_default();
            match rest.iter().position(|&b| printable(b)) {
                Some(k) => {
                    i += k;
                    ascii_start = i;
                }
                None => {
                    ascii_start = n;
                    break;
                }
            }
        }
        // Inside an ASCII run with no UTF-16LE run open: a printable byte followed by another
        // printable byte neither ends the run nor starts a code unit (its high byte is not
        // zero), so jump to the last printable byte of the stretch.
        if ascii_start < i && wide_units == [0, 0] {
            let rest = data.get(i..).unwrap_or_default();
            let stretch = rest
                .iter()
                .position(|&b| !printable(b))
                .unwrap_or(rest.len());
            i += stretch.saturating_sub(1);
        }
        let b = data.get(i).copied().unwrap_or(0);
        let is_printable = printable(b);
        if !is_printable {
            if i - ascii_start >= min_len && !push_ascii(&mut out, data, ascii_start, i, max_count)
            {
                return out;
            }
            ascii_start = i + 1;
        }
        // A UTF-16LE unit starting at i: printable low byte, zero high byte.
        let p = i & 1;
        let unit = is_printable && data.get(i + 1) == Some(&0);
        if let (Some(units), Some(start)) = (wide_units.get_mut(p), wide_start.get_mut(p)) {
            if unit {
                if *units == 0 {
                    *start = i;
                }
                *units += 1;
            } else if *units > 0 {
                let (s, u) = (*start, *units);
                *units = 0;
                if u >= min_len && !push_wide(&mut out, data, s, u, max_count) {
                    return out;
                }
            }
        }
        i += 1;
    }
    if n - ascii_start.min(n) >= min_len && !push_ascii(&mut out, data, ascii_start, n, max_count) {
        return out;
    }
    for p in 0..2 {
        if let (Some(&s), Some(&u)) = (wide_start.get(p), wide_units.get(p))
            && u >= min_len
            && !push_wide(&mut out, data, s, u, max_count)
        {
            return out;
        }
    }
    out
}

/// Adds an ASCII run; false when the cap is reached.
fn push_ascii<'a>(
    out: &mut Strings<'a>,
    data: &'a [u8],
    start: usize,
    end: usize,
    max: usize,
) -> bool {
    if out.runs.len() >= max {
        out.truncated = true;
        return false;
    }
    if let Some(text) = data
        .get(start..end)
        .and_then(|b| std::str::from_utf8(b).ok())
    {
        out.runs.push(Run {
            offset: start as u64,
            encoding: Encoding::Ascii,
            text: Cow::Borrowed(text),
        });
    }
    true
}

/// Adds a UTF-16LE run of `units` code units at `start`; false when the cap is reached.
fn push_wide(out: &mut Strings<'_>, data: &[u8], start: usize, units: usize, max: usize) -> bool {
    if out.runs.len() >= max {
        out.truncated = true;
        return false;
    }
    let end = start.saturating_add(units.saturating_mul(2));
    let text: String = data
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .step_by(2)
        .map(|&b| char::from(b))
        .collect();
    out.runs.push(Run {
        offset: start as u64,
        encoding: Encoding::Utf16Le,
        text: Cow::Owned(text),
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &Strings<'_>) -> Vec<(u64, Encoding, String)> {
        s.runs
            .iter()
            .map(|r| (r.offset, r.encoding, r.text.to_string()))
            .collect()
    }

    #[test]
    fn ascii_runs_with_offsets_and_minimum() {
        let data = b"abc\0hello world\x01\x02tiny\xffLast string at end";
        let s = extract(data, 5, 100);
        assert_eq!(
            texts(&s),
            vec![
                (4, Encoding::Ascii, "hello world".into()),
                (22, Encoding::Ascii, "Last string at end".into()),
            ]
        );
        assert!(!s.truncated);
        // Minimum 3 keeps the short ones too.
        assert_eq!(extract(data, 3, 100).runs.len(), 4);
    }

    #[test]
    fn utf16le_runs_at_either_parity() {
        let mut data = vec![0xffu8];
        let wide = |s: &str| s.bytes().flat_map(|b| [b, 0]).collect::<Vec<u8>>();
        data.extend(wide("Hikvision"));
        data.extend([0xff, 0xff, 0xfe]);
        data.extend(wide("Copyright"));
        let s = extract(&data, 6, 100);
        let w: Vec<_> = texts(&s)
            .into_iter()
            .filter(|r| r.1 == Encoding::Utf16Le)
            .collect();
        assert_eq!(
            w,
            vec![
                (1, Encoding::Utf16Le, "Hikvision".into()),
                (22, Encoding::Utf16Le, "Copyright".into()),
            ]
        );
    }

    #[test]
    fn count_is_capped() {
        let data = b"first1\0second\0third3\0fourth\0".repeat(10);
        let s = extract(&data, 6, 7);
        assert_eq!(s.runs.len(), 7);
        assert!(s.truncated);
        assert_eq!(s.runs[4].text, "first1");
    }

    /// The scan as it was before the skip of non-printable stretches: the reference.
    fn reference(data: &[u8], min_len: usize, max_count: usize) -> Strings<'_> {
        let min_len = min_len.max(1);
        let mut out = Strings::default();
        let mut ascii_start = 0usize;
        let mut wide_start = [0usize; 2];
        let mut wide_units = [0usize; 2];
        let n = data.len();
        for i in 0..n {
            let b = data[i];
            if !printable(b) {
                if i - ascii_start >= min_len
                    && !push_ascii(&mut out, data, ascii_start, i, max_count)
                {
                    return out;
                }
                ascii_start = i + 1;
            }
            let p = i & 1;
            if printable(b) && data.get(i + 1) == Some(&0) {
                if wide_units[p] == 0 {
                    wide_start[p] = i;
                }
                wide_units[p] += 1;
            } else if wide_units[p] > 0 {
                let (s, u) = (wide_start[p], wide_units[p]);
                wide_units[p] = 0;
                if u >= min_len && !push_wide(&mut out, data, s, u, max_count) {
                    return out;
                }
            }
        }
        if n - ascii_start.min(n) >= min_len
            && !push_ascii(&mut out, data, ascii_start, n, max_count)
        {
            return out;
        }
        for p in 0..2 {
            if wide_units[p] >= min_len
                && !push_wide(&mut out, data, wide_start[p], wide_units[p], max_count)
            {
                return out;
            }
        }
        out
    }

    #[test]
    fn same_runs_as_the_plain_byte_scan() {
        // Text, UTF-16LE, zeros and high bytes mixed in short stretches, so that every state
        // (ASCII run open, wide run open at either parity, nothing open) meets every byte class.
        let mut x = 0x9e37_79b9u32;
        let mut data = Vec::new();
        while data.len() < 200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = (x >> 24) as usize % 24;
            match x % 5 {
                0 => data
                    .extend((0..len).map(|k| b'a' + ((x >> 3) as u8).wrapping_add(k as u8) % 26)),
                1 => data.extend((0..len).flat_map(|k| [b'A' + (k as u8 % 26), 0])),
                2 => data.extend(std::iter::repeat_n(0u8, len)),
                3 => data.extend((0..len).map(|k| 0x80 | (x >> (k % 8)) as u8)),
                _ => data.push((x >> 9) as u8),
            }
        }
        // Long ASCII runs (the jump to the end of a printable stretch) ending in a code unit,
        // in a zero, in a high byte and at the end of the buffer.
        let mut long = Vec::new();
        for k in 0..200usize {
            long.extend((0..(k * 7) % 300).map(|j| b' ' + (j % 90) as u8));
            match k % 4 {
                0 => long.extend(b"W\0i\0d\0e\0s\0t\0r\0"),
                1 => long.push(0),
                2 => long.extend([0x80, 0xfe]),
                _ => long.extend(b"x\0"),
            }
        }
        long.extend(b"trailing text at the very end");
        let bufs: [&[u8]; 6] = [&data, &long, b"", b"\0", b"abcdef", b"a\0b\0c\0d\0e\0f\0"];
        for buf in bufs {
            for min_len in [1, 2, 4, 6] {
                for max in [3, 1_000_000] {
                    let (a, b) = (extract(buf, min_len, max), reference(buf, min_len, max));
                    assert_eq!(texts(&a), texts(&b), "min_len {min_len}, max {max}");
                    assert_eq!(a.truncated, b.truncated);
                }
            }
        }
    }

    #[test]
    fn edge_inputs() {
        assert!(extract(b"", 6, 10).runs.is_empty());
        assert!(extract(&[0u8; 1000], 6, 10).runs.is_empty());
        assert_eq!(extract(b"abcdef", 6, 10).runs.len(), 1);
        assert_eq!(extract(b"abcdef", 0, 10).runs.len(), 1);
    }
}
