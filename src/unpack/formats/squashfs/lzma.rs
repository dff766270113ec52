//! The LZMA block layouts of squashfs images: the 13-byte `.lzma` header, vendor 5-byte headers
//! without the size, and headerless streams with fixed properties (lc=3, lp=0, pb=2), decoded by
//! liblzma into a bounded buffer. Layouts: squashfs-tools, sasquatch and 7-Zip's squashfs handler.

use crate::unpack::UnpackError;

/// Memory the decoder may allocate (vendor dictionaries are at most a few MiB).
const MEMLIMIT: u64 = 64 << 20;
/// Properties byte of the headerless layout: lc=3, lp=0, pb=2.
const FIXED_PROPS: u8 = 0x5D;
/// Largest valid properties byte ((pb * 5 + lp) * 9 + lc with pb, lp <= 4, lc <= 8).
const MAX_PROPS: u8 = 224;

/// How one compressed block stores its LZMA stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Properties, dictionary size and 8-byte uncompressed size (the `.lzma` header).
    Alone,
    /// Properties and dictionary size only; the stream follows at byte 5.
    PropsOnly,
    /// No header: properties 0x5D and a dictionary of the filesystem's block size.
    Raw,
}

impl Layout {
    /// Name used in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Alone => "lzma",
            Layout::PropsOnly => "lzma (5-byte header)",
            Layout::Raw => "lzma (headerless)",
        }
    }
}

fn corrupt(what: impl std::fmt::Display) -> UnpackError {
    UnpackError::Corrupt(format!("squashfs lzma: {what}"))
}

/// Classifies a block by its first bytes; `None` when it cannot be LZMA. A range-coded stream
/// always starts with a zero byte, which is what tells a header from a headerless stream.
pub fn classify(input: &[u8], max_out: usize) -> Option<Layout> {
    let first = *input.first()?;
    if first == 0 {
        Some(Layout::Raw)
    } else if first > MAX_PROPS {
        None
    } else if has_size(input, max_out) {
        Some(Layout::Alone)
    } else if input.get(5) == Some(&0) {
        Some(Layout::PropsOnly)
    } else {
        None
    }
}

/// Whether bytes 5..13 hold a plausible uncompressed size and a stream starts at byte 13.
fn has_size(input: &[u8], max_out: usize) -> bool {
    let Some(size) = input
        .get(5..13)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
    else {
        return false;
    };
    (size == u64::MAX || size <= max_out as u64) && input.get(13) == Some(&0)
}

/// Decodes one block laid out as `layout`. `expect` is the exact output size when the caller
/// knows it (data blocks); `dict` is the dictionary size for headerless streams.
pub fn decode(
    layout: Layout,
    input: &[u8],
    max_out: usize,
    expect: Option<usize>,
    dict: u32,
) -> Result<Vec<u8>, UnpackError> {
    let header_len = match layout {
        Layout::Alone => 13,
        Layout::PropsOnly => 5,
        Layout::Raw => 0,
    };
    let (props, dict_bytes) = if header_len == 0 {
        (FIXED_PROPS, dict.max(4096).to_le_bytes())
    } else {
        let [props, d0, d1, d2, d3] = input
            .get(..5)
            .and_then(|b| <[u8; 5]>::try_from(b).ok())
            .ok_or_else(|| corrupt("block shorter than its header"))?;
        (props, [d0, d1, d2, d3])
    };
    if layout == Layout::Alone {
        let size = input
            .get(5..13)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| corrupt("block shorter than its header"))?;
        if size != u64::MAX && size > max_out as u64 {
            return Err(corrupt(format!(
                "block claims {size} bytes, at most {max_out}"
            )));
        }
    }
    let stream = input.get(header_len..);
    let stream = stream.unwrap_or_default();
    if props > MAX_PROPS {
        return Err(corrupt(format!("properties byte {props:#x}")));
    }
    let size = expect.map_or(u64::MAX, |n| n as u64);
    let mut framed = Vec::with_capacity(13 + stream.len());
    framed.push(props);
    framed.extend_from_slice(&dict_bytes);
    framed.extend_from_slice(&size.to_le_bytes());
    framed.extend_from_slice(stream);

    let mut dec =
        liblzma::stream::Stream::new_lzma_decoder(MEMLIMIT).map_err(|e| corrupt(e.to_string()))?;
    let mut out = Vec::with_capacity(expect.unwrap_or(max_out).min(max_out));
    let mut pos = 0usize;
    loop {
        let rest = framed.get(pos..).unwrap_or_default();
        let (in_before, out_before) = (dec.total_in(), dec.total_out());
        let status = dec.process_vec(rest, &mut out, liblzma::stream::Action::Finish);
        pos = usize::try_from(dec.total_in()).unwrap_or(usize::MAX);
        let stalled = dec.total_in() == in_before && dec.total_out() == out_before;
        match status {
            Ok(liblzma::stream::Status::StreamEnd) => break,
            // A stream without an end marker simply stops: liblzma then makes no progress, or
            // reports a buffer error (`MemNeeded`), with all the input read.
            Ok(_) if stalled || pos >= framed.len() => {
                if out.len() >= max_out && pos < framed.len() {
                    return Err(corrupt(format!("block expands past {max_out} bytes")));
                }
                if pos < framed.len() || expect.is_some() {
                    return Err(corrupt("stream ends early"));
                }
                if stalled {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => return Err(corrupt(e.to_string())),
        }
    }
    if let Some(n) = expect
        && out.len() != n
    {
        return Err(corrupt(format!(
            "block holds {} bytes, {n} expected",
            out.len()
        )));
    }
    if out.is_empty() {
        return Err(corrupt("empty block"));
    }
    Ok(out)
}

/// Classifies and decodes one block.
pub fn decode_any(
    input: &[u8],
    max_out: usize,
    expect: Option<usize>,
    dict: u32,
) -> Result<(Layout, Vec<u8>), UnpackError> {
    let layout = classify(input, max_out).ok_or_else(|| corrupt("not an lzma block"))?;
    let first = decode(layout, input, max_out, expect, dict);
    match (first, layout) {
        (Ok(out), _) => Ok((layout, out)),
        // A 13-byte header whose "size" happened to look plausible: try the 5-byte layout.
        (Err(_), Layout::Alone) => {
            decode(Layout::PropsOnly, input, max_out, expect, dict).map(|o| (Layout::PropsOnly, o))
        }
        (Err(e), _) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alone(data: &[u8], props: u32) -> Vec<u8> {
        let mut opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
        opts.dict_size(1 << 16)
            .literal_context_bits(props % 9)
            .literal_position_bits(props / 9 % 5)
            .position_bits(props / 45);
        let enc = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
        let mut out = Vec::with_capacity(data.len() * 2 + 64);
        let mut enc = enc;
        enc.process_vec(data, &mut out, liblzma::stream::Action::Finish)
            .unwrap();
        out
    }

    fn sample() -> Vec<u8> {
        (0..20_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_layout_decodes() {
        let data = sample();
        let full = alone(&data, 0x5D);
        assert_eq!(full[0], 0x5D);
        // The encoder writes an unknown size and an end marker; write the real size as mksquashfs.
        let mut sized = full.clone();
        sized[5..13].copy_from_slice(&(data.len() as u64).to_le_bytes());
        let (l, out) = decode_any(&sized, 1 << 20, None, 0).unwrap();
        assert_eq!((l, out.as_slice()), (Layout::Alone, data.as_slice()));

        let mut props_only = full[..5].to_vec();
        props_only.extend_from_slice(&full[13..]);
        let (l, out) = decode_any(&props_only, 1 << 20, Some(data.len()), 0).unwrap();
        assert_eq!((l, out.as_slice()), (Layout::PropsOnly, data.as_slice()));

        let raw = full[13..].to_vec();
        let (l, out) = decode_any(&raw, 1 << 20, None, 1 << 16).unwrap();
        assert_eq!((l, out.as_slice()), (Layout::Raw, data.as_slice()));
    }

    #[test]
    fn a_block_larger_than_allowed_is_refused() {
        let data = sample();
        let raw = alone(&data, 0x5D)[13..].to_vec();
        assert!(decode_any(&raw, 1000, None, 1 << 16).is_err());
        assert!(decode_any(&[0u8; 3], 1000, None, 1 << 16).is_err());
        assert!(decode_any(&[], 1000, None, 1 << 16).is_err());
    }
}
