//! Raw ustar archives with any names and link targets: the `tar` crate's Builder refuses `..` and
//! absolute paths, which is exactly what hostile-archive tests need to write.

/// One ustar member: `typeflag` as in POSIX (`b'0'` file, `b'1'` hard link, `b'2'` symlink, `b'3'`
/// char device, `b'4'` block device, `b'5'` directory, `b'6'` FIFO). `name` and `link` go in the
/// 100-byte fields (at most 100 bytes each).
pub fn member(name: &[u8], typeflag: u8, link: &[u8], data: &[u8]) -> Vec<u8> {
    assert!(
        name.len() <= 100 && link.len() <= 100,
        "name or link too long for ustar"
    );
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    let mode: &[u8] = if typeflag == b'5' {
        b"0000755\0"
    } else {
        b"0000644\0"
    };
    h[100..108].copy_from_slice(mode);
    h[108..116].copy_from_slice(b"0001750\0");
    h[116..124].copy_from_slice(b"0001750\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"14115044140\0");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..268].copy_from_slice(b"eve");
    h[297..300].copy_from_slice(b"eve");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A whole archive: the members, then the two zero blocks that end it.
pub fn archive(members: &[Vec<u8>]) -> Vec<u8> {
    let mut out = members.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}
