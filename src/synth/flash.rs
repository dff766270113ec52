//! Raw flash dumps: partitions laid out at erase-block boundaries on erased (0xFF) flash, the way
//! a dump of a camera's SPI NOR or NAND chip looks.

use super::SynthError;

/// Where one partition landed in a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The partition's name (as given).
    pub name: String,
    /// Its offset in the dump (a multiple of the erase block).
    pub offset: u64,
    /// Its length in bytes (without the padding after it).
    pub len: u64,
}

/// Lays `parts` out one after the other, each at the next multiple of `erase_block` bytes, with
/// 0xFF padding between them and up to `chip_size` (or up to the next erase block when `None`).
pub fn dump(
    parts: &[(&str, &[u8])],
    erase_block: u64,
    chip_size: Option<u64>,
) -> Result<(Vec<u8>, Vec<Placed>), SynthError> {
    if erase_block == 0 || !erase_block.is_power_of_two() {
        return Err(SynthError::Invalid(format!(
            "erase block {erase_block} is not a power of two"
        )));
    }
    let align = |n: u64| n.div_ceil(erase_block).saturating_mul(erase_block);
    let mut placed = Vec::with_capacity(parts.len());
    let mut end = 0u64;
    for (name, data) in parts {
        let offset = align(end);
        placed.push(Placed {
            name: (*name).to_owned(),
            offset,
            len: data.len() as u64,
        });
        end = offset.saturating_add(data.len() as u64);
    }
    let size = match chip_size {
        Some(s) if s < end => {
            return Err(SynthError::Invalid(format!(
                "partitions need {end} bytes, the chip has {s}"
            )));
        }
        Some(s) => s,
        None => align(end),
    };
    let size = usize::try_from(size)
        .map_err(|_| SynthError::Invalid(format!("a {size}-byte dump does not fit in memory")))?;
    let mut out = vec![0xFFu8; size];
    for (p, (_, data)) in placed.iter().zip(parts) {
        let start = usize::try_from(p.offset).unwrap_or(usize::MAX);
        let stop = start.saturating_add(data.len());
        match out.get_mut(start..stop) {
            Some(dst) => dst.copy_from_slice(data),
            None => return Err(SynthError::Invalid(format!("{} does not fit", p.name))),
        }
    }
    Ok((out, placed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_sit_on_erase_blocks_between_ff_padding() {
        let (img, placed) = dump(
            &[
                ("boot", &[1u8; 100]),
                ("kernel", &[2u8; 0x10001]),
                ("rootfs", &[3u8; 5]),
            ],
            0x1_0000,
            Some(0x10_0000),
        )
        .unwrap();
        assert_eq!(img.len(), 0x10_0000);
        let offsets: Vec<u64> = placed.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, [0, 0x1_0000, 0x3_0000]);
        assert!(img[100..0x1_0000].iter().all(|&b| b == 0xFF));
        assert_eq!(img[0x1_0000], 2);
        assert_eq!(img[0x2_0000], 2);
        assert_eq!(img[0x2_0001], 0xFF);
        assert_eq!(&img[0x3_0000..0x3_0005], &[3u8; 5]);
        assert!(img[0x3_0005..].iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn a_chip_too_small_is_an_error() {
        assert!(dump(&[("a", &[0u8; 10])], 8, Some(4)).is_err());
        assert!(dump(&[("a", &[0u8; 10])], 3, None).is_err());
        assert_eq!(dump(&[("a", &[0u8; 10])], 8, None).unwrap().0.len(), 16);
    }
}
