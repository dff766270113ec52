//! Linux kernel image writers: a zImage-like blob (ARM no-ops, the zImage header, a payload) for
//! the tests of the `zimage` format and of carving the kernel and initramfs inside it.

use crate::unpack::formats::zimage::{ZIMAGE_ENDIAN_FLAG, ZIMAGE_HEADER_LEN, ZIMAGE_MAGIC};

/// Builds a zImage-like blob: ARM no-op code, the header, then `payload` (the compressed kernel,
/// with whatever decompressor bytes the caller puts around it). Little-endian unless `big`.
pub fn build_zimage(payload: &[u8], big: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(ZIMAGE_HEADER_LEN + 4 + payload.len());
    let word = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    for _ in 0..8 {
        out.extend_from_slice(&word(0xe1a0_0000)); // mov r0, r0
    }
    out.extend_from_slice(&word(0xea00_0002)); // b 1f
    out.extend_from_slice(&word(ZIMAGE_MAGIC));
    out.extend_from_slice(&word(0));
    let total = ZIMAGE_HEADER_LEN + 4 + payload.len();
    out.extend_from_slice(&word(u32::try_from(total).unwrap_or(u32::MAX)));
    out.extend_from_slice(&word(ZIMAGE_ENDIAN_FLAG));
    out.extend_from_slice(payload);
    out
}
