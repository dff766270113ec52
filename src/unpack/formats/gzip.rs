//! gzip streams (RFC 1952): one member is one child, named after the header's original file name
//! when it has one. Multi-member files appear as consecutive carved regions.

use bytes::Bytes;

use super::{Ctx, Format, Magic};
use crate::unpack::UnpackError;
use crate::unpack::codec::{self, Codec};
use crate::unpack::tree::{Child, Unpacked};

/// gzip.
pub struct Gzip;

const FTEXT_RESERVED: u8 = 0xE0;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;

impl Format for Gzip {
    fn name(&self) -> &'static str {
        "gzip"
    }

    fn magics(&self) -> &'static [Magic] {
        const MAGICS: &[Magic] = &[Magic::at0(&[0x1f, 0x8b, 0x08])];
        MAGICS
    }

    fn detect(&self, data: &[u8]) -> bool {
        match data.get(..10) {
            Some(&[_, _, _, flags, _, _, _, _, xfl, os]) => {
                data.len() >= 18
                    && flags & FTEXT_RESERVED == 0
                    && matches!(xfl, 0 | 2 | 4)
                    && (os <= 13 || os == 255)
            }
            _ => false,
        }
    }

    fn unpack(&self, data: &Bytes, ctx: &Ctx<'_>) -> Result<Unpacked, UnpackError> {
        let name = original_name(data);
        let decoded = codec::decode(Codec::Gzip, data, ctx)?;
        ctx.entries(1)?;
        let mtime = data
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0);
        let mut out = Unpacked::new(decoded.consumed).meta("mtime", mtime);
        if let Some(n) = &name {
            out = out.meta("original_name", String::from_utf8_lossy(n).into_owned());
        }
        let child_name = name
            .as_deref()
            .and_then(|n| n.rsplit(|&b| b == b'/').next())
            .filter(|n| !n.is_empty() && *n != b"." && *n != b"..")
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        out.children
            .push(Child::file(child_name, Bytes::from(decoded.data)));
        Ok(out)
    }
}

/// The FNAME field of a gzip header, if present.
fn original_name(data: &[u8]) -> Option<Vec<u8>> {
    let flags = *data.get(3)?;
    if flags & FNAME == 0 {
        return None;
    }
    let mut pos = 10usize;
    if flags & FEXTRA != 0 {
        let xlen = u16::from_le_bytes([*data.get(10)?, *data.get(11)?]) as usize;
        pos = pos.checked_add(2)?.checked_add(xlen)?;
    }
    let rest = data.get(pos..)?;
    let end = rest.iter().take(4096).position(|&b| b == 0)?;
    Some(rest.get(..end)?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{Limits, unpack};
    use std::io::Write;

    #[test]
    fn gzip_with_name_round_trips() {
        let mut e = flate2::GzBuilder::new()
            .filename("rootfs.tar")
            .write(Vec::new(), flate2::Compression::best());
        e.write_all(b"payload bytes").unwrap();
        let gz = e.finish().unwrap();
        let tree = unpack(Bytes::from(gz), b"img.gz", &Limits::default());
        let child = tree.find("img.gz/rootfs.tar").expect("child listed");
        assert_eq!(&child.data[..], b"payload bytes");
        assert_eq!(tree.root().unwrap().format, Some("gzip"));
    }
}
