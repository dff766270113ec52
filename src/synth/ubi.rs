//! A UBI image writer (what `ubinize` does): erase-counter and volume-id headers on every PEB, the
//! layout volume holding the volume table twice, then each volume's LEBs, static or dynamic.
//! Header layouts from Linux `ubi-media.h`, as read by [`crate::unpack::formats::ubi`].

use crate::unpack::formats::ubi::{
    EC_MAGIC, HEADER_LEN, LAYOUT_VOLUME_ID, MAX_VOLUMES, VID_MAGIC, VOLUME_DYNAMIC, VOLUME_STATIC,
    VTBL_RECORD_LEN, crc32,
};

use super::SynthError;

/// Static (read-only, sized to its data, CRC-checked) or dynamic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeKind {
    /// Dynamic: every LEB is `leb_size` bytes.
    Dynamic,
    /// Static: `used_ebs` LEBs, the last one partly filled, each with a data CRC.
    Static,
}

/// One volume to write.
#[derive(Clone, Debug)]
pub struct Volume {
    /// Volume id (index in the volume table, below 128).
    pub id: u32,
    /// Name.
    pub name: String,
    /// Static or dynamic.
    pub kind: VolumeKind,
    /// Contents.
    pub data: Vec<u8>,
    /// PEBs reserved in the volume table (at least the LEBs the data needs).
    pub reserved_pebs: Option<u32>,
    /// Whether the autoresize flag is set.
    pub autoresize: bool,
}

impl Volume {
    /// A dynamic volume (typically holding UBIFS).
    pub fn dynamic(id: u32, name: &str, data: Vec<u8>) -> Self {
        Self {
            id,
            name: name.into(),
            kind: VolumeKind::Dynamic,
            data,
            reserved_pebs: None,
            autoresize: false,
        }
    }

    /// A static volume (a kernel, a squashfs).
    pub fn fixed(id: u32, name: &str, data: Vec<u8>) -> Self {
        Self {
            kind: VolumeKind::Static,
            ..Self::dynamic(id, name, data)
        }
    }
}

/// Flash geometry.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Physical erase block size.
    pub peb_size: usize,
    /// Minimum I/O unit (NAND page): the VID header sits at this offset, data one unit later.
    pub min_io: usize,
    /// Image sequence number.
    pub image_seq: u32,
}

impl Default for Geometry {
    /// 128 KiB PEBs with 2 KiB pages, the most common NAND in cameras.
    fn default() -> Self {
        Self {
            peb_size: 128 << 10,
            min_io: 2048,
            image_seq: 0x1234_5678,
        }
    }
}

impl Geometry {
    /// Offset of the VID header in a PEB.
    pub fn vid_hdr_offset(&self) -> usize {
        self.min_io.max(HEADER_LEN)
    }

    /// Offset of the data in a PEB.
    pub fn data_offset(&self) -> usize {
        (self.vid_hdr_offset() + HEADER_LEN).next_multiple_of(self.min_io.max(1))
    }

    /// Usable bytes per LEB.
    pub fn leb_size(&self) -> usize {
        self.peb_size.saturating_sub(self.data_offset())
    }
}

/// The fields of a volume-id header.
#[derive(Clone, Copy, Debug, Default)]
pub struct Vid {
    /// Dynamic (1) or static (2).
    pub vol_type: u8,
    /// Copy flag.
    pub copy_flag: u8,
    /// Compatibility flags.
    pub compat: u8,
    /// Volume id.
    pub vol_id: u32,
    /// LEB number.
    pub lnum: u32,
    /// Data bytes in the LEB (static volumes and copies).
    pub data_size: u32,
    /// LEBs used by a static volume.
    pub used_ebs: u32,
    /// Unused bytes at the end of the PEB.
    pub data_pad: u32,
    /// CRC of the data.
    pub data_crc: u32,
    /// Sequence number.
    pub sqnum: u64,
}

/// Appends the CRC of everything so far (big-endian), completing a header or record.
fn seal(mut h: Vec<u8>) -> Vec<u8> {
    let crc = crc32(&h);
    h.extend_from_slice(&crc.to_be_bytes());
    h
}

/// An erase-counter header.
pub fn ec_header(geometry: &Geometry, ec: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(EC_MAGIC);
    h.extend_from_slice(&[1, 0, 0, 0]);
    h.extend_from_slice(&ec.to_be_bytes());
    h.extend_from_slice(&(geometry.vid_hdr_offset() as u32).to_be_bytes());
    h.extend_from_slice(&(geometry.data_offset() as u32).to_be_bytes());
    h.extend_from_slice(&geometry.image_seq.to_be_bytes());
    h.resize(HEADER_LEN - 4, 0);
    seal(h)
}

/// A volume-id header.
pub fn vid_header(v: &Vid) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(VID_MAGIC);
    h.extend_from_slice(&[1, v.vol_type, v.copy_flag, v.compat]);
    for word in [
        v.vol_id,
        v.lnum,
        0,
        v.data_size,
        v.used_ebs,
        v.data_pad,
        v.data_crc,
        0,
    ] {
        h.extend_from_slice(&word.to_be_bytes());
    }
    h.extend_from_slice(&v.sqnum.to_be_bytes());
    h.resize(HEADER_LEN - 4, 0);
    seal(h)
}

/// One PEB: headers, data, 0xFF after.
pub fn peb(geometry: &Geometry, ec: u64, vid: &Vid, data: &[u8]) -> Vec<u8> {
    let mut out = ec_header(geometry, ec);
    out.resize(geometry.vid_hdr_offset(), 0xFF);
    out.extend_from_slice(&vid_header(vid));
    out.resize(geometry.data_offset(), 0xFF);
    out.extend(data.iter().take(geometry.leb_size()));
    out.resize(geometry.peb_size, 0xFF);
    out
}

/// The volume table as stored in each layout LEB.
fn volume_table(geometry: &Geometry, volumes: &[Volume], lebs: &[u32]) -> Vec<u8> {
    let records = MAX_VOLUMES.min(geometry.leb_size() / VTBL_RECORD_LEN);
    let mut out = Vec::with_capacity(records * VTBL_RECORD_LEN);
    for i in 0..records {
        let mut r = Vec::with_capacity(VTBL_RECORD_LEN);
        if let Some((v, &need)) = volumes.iter().zip(lebs).find(|(v, _)| v.id as usize == i) {
            let reserved = v.reserved_pebs.unwrap_or(need).max(need).max(1);
            r.extend_from_slice(&reserved.to_be_bytes());
            r.extend_from_slice(&1u32.to_be_bytes());
            r.extend_from_slice(&0u32.to_be_bytes());
            r.push(match v.kind {
                VolumeKind::Dynamic => VOLUME_DYNAMIC,
                VolumeKind::Static => VOLUME_STATIC,
            });
            r.push(0);
            let name: Vec<u8> = v.name.bytes().take(127).collect();
            r.extend_from_slice(&(name.len() as u16).to_be_bytes());
            r.extend_from_slice(&name);
            r.resize(144, 0);
            r.push(u8::from(v.autoresize));
        }
        r.resize(VTBL_RECORD_LEN - 4, 0);
        out.extend_from_slice(&seal(r));
    }
    out
}

/// Writes a UBI image holding `volumes`: PEBs 0 and 1 carry the layout volume, then each
/// volume's LEBs in order. Sequence numbers rise in writing order.
pub fn build(volumes: &[Volume], geometry: &Geometry) -> Result<Vec<u8>, SynthError> {
    let leb = geometry.leb_size();
    if geometry.min_io == 0 || leb < VTBL_RECORD_LEN || !geometry.peb_size.is_multiple_of(512) {
        return Err(SynthError::Invalid(format!(
            "UBI geometry {geometry:?} leaves no room for data"
        )));
    }
    if volumes.iter().any(|v| v.id as usize >= MAX_VOLUMES) {
        return Err(SynthError::Invalid("UBI volume id above 127".into()));
    }
    let lebs: Vec<u32> = volumes
        .iter()
        .map(|v| v.data.len().div_ceil(leb) as u32)
        .collect();
    let table = volume_table(geometry, volumes, &lebs);
    let mut out = Vec::new();
    let mut sqnum = 0u64;
    for lnum in 0..2 {
        sqnum += 1;
        let vid = Vid {
            vol_type: VOLUME_DYNAMIC,
            compat: 5,
            vol_id: LAYOUT_VOLUME_ID,
            lnum,
            sqnum,
            ..Vid::default()
        };
        out.extend_from_slice(&peb(geometry, 0, &vid, &table));
    }
    for (v, &count) in volumes.iter().zip(&lebs) {
        for (lnum, chunk) in v.data.chunks(leb).enumerate() {
            sqnum += 1;
            let vid = match v.kind {
                VolumeKind::Dynamic => Vid {
                    vol_type: VOLUME_DYNAMIC,
                    vol_id: v.id,
                    lnum: lnum as u32,
                    sqnum,
                    ..Vid::default()
                },
                VolumeKind::Static => Vid {
                    vol_type: VOLUME_STATIC,
                    vol_id: v.id,
                    lnum: lnum as u32,
                    data_size: chunk.len() as u32,
                    used_ebs: count,
                    data_crc: crc32(chunk),
                    sqnum,
                    ..Vid::default()
                },
            };
            out.extend_from_slice(&peb(geometry, 0, &vid, chunk));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::formats::ubi::EcHeader;

    #[test]
    fn headers_carry_the_crc_the_reader_checks() {
        let g = Geometry::default();
        let h = ec_header(&g, 7);
        let parsed = EcHeader::parse(&h).unwrap();
        assert_eq!(parsed.ec, 7);
        assert_eq!(parsed.vid_hdr_offset, 2048);
        assert_eq!(parsed.data_offset, 4096);
        let mut bad = h.clone();
        bad[9] ^= 1;
        assert!(EcHeader::parse(&bad).is_none());
    }
}
