//! What goes inside a synthetic firmware: the [`Rootfs`] tree the filesystem writers take, and
//! deterministic generators for its files — ARM ELF executables, libraries and kernel modules with
//! code-like bodies and real string tables, a zImage-style kernel, scripts, configs and web pages.

use std::collections::BTreeMap;
use std::io::Write;

/// What one entry of a [`Rootfs`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryData {
    /// A directory.
    Dir,
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target, as stored.
    Symlink(String),
}

/// One entry: its data, permission bits and modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Directory, file or symlink.
    pub data: EntryData,
    /// Permission bits (`0o755` …), without the file-type bits.
    pub mode: u16,
    /// Modification time, Unix seconds.
    pub mtime: u32,
}

/// A filesystem tree to write: paths are `/`-separated and relative (`bin/busybox`), sorted, and
/// every parent directory exists (adding an entry creates missing parents with mode `0o755`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rootfs {
    entries: BTreeMap<String, Entry>,
    mtime: u32,
}

/// The fixed build time of generated images (2016-12-09, like the Dahua samples), so output is
/// reproducible.
pub const BUILD_TIME: u32 = 1_481_290_344;

impl Rootfs {
    /// An empty tree whose entries carry [`BUILD_TIME`].
    pub fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            mtime: BUILD_TIME,
        }
    }

    fn clean(path: &str) -> String {
        path.split('/')
            .filter(|c| !c.is_empty() && *c != "." && *c != "..")
            .collect::<Vec<_>>()
            .join("/")
    }

    fn parents(&mut self, path: &str) {
        let mut prefix = String::new();
        let comps: Vec<&str> = path.split('/').collect();
        for comp in comps.iter().take(comps.len().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            self.entries.entry(prefix.clone()).or_insert(Entry {
                data: EntryData::Dir,
                mode: 0o755,
                mtime: self.mtime,
            });
        }
    }

    fn put(&mut self, path: &str, data: EntryData, mode: u16) -> &mut Self {
        let path = Self::clean(path);
        if path.is_empty() {
            return self;
        }
        self.parents(&path);
        let mtime = self.mtime;
        self.entries.insert(path, Entry { data, mode, mtime });
        self
    }

    /// Adds a directory (and its parents). `..` and `.` components are dropped.
    pub fn dir(&mut self, path: &str, mode: u16) -> &mut Self {
        self.put(path, EntryData::Dir, mode)
    }

    /// Adds a regular file (and its parents).
    pub fn file(&mut self, path: &str, data: impl Into<Vec<u8>>, mode: u16) -> &mut Self {
        self.put(path, EntryData::File(data.into()), mode)
    }

    /// Adds a symbolic link `path` → `target` (and the link's parents).
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.put(path, EntryData::Symlink(target.to_owned()), 0o777)
    }

    /// Every entry, sorted by path (parents before their children).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// Regular files and their bytes, sorted by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().filter_map(|(p, e)| match &e.data {
            EntryData::File(d) => Some((p.as_str(), d.as_slice())),
            _ => None,
        })
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(&Self::clean(path))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes of all regular files.
    pub fn file_bytes(&self) -> u64 {
        self.files().map(|(_, d)| d.len() as u64).sum()
    }
}

/// A small deterministic generator (SplitMix64): the same seed always gives the same firmware.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator seeded from a name (FNV-1a), so every generated file differs.
    pub fn named(name: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Self(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// One element of a non-empty slice (`None` when it is empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let i = usize::try_from(self.below(items.len() as u64)).ok()?;
        items.get(i)
    }
}

/// What kind of ELF file to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfKind {
    /// A dynamically linked executable (`ET_EXEC`).
    Executable,
    /// A shared library (`ET_DYN`).
    SharedObject,
    /// A kernel module (`ET_REL`).
    KernelModule,
}

/// ARM instruction skeletons (condition AL) whose register and immediate fields are filled at
/// random: the result has the byte statistics of compiled code, so it compresses like real code.
const ARM_OPS: &[u32] = &[
    0xe59f_0000, // ldr rX, [pc, #imm]
    0xe590_0000, // ldr rX, [rN, #imm]
    0xe580_0000, // str rX, [rN, #imm]
    0xe1a0_0000, // mov rX, rM
    0xe3a0_0000, // mov rX, #imm
    0xe080_0000, // add rX, rN, rM
    0xe280_0000, // add rX, rN, #imm
    0xe240_0000, // sub rX, rN, #imm
    0xe350_0000, // cmp rN, #imm
    0xe150_0000, // cmp rN, rM
    0xe000_0000, // and rX, rN, rM
    0xe180_0000, // orr rX, rN, rM
    0xe5d0_0000, // ldrb rX, [rN, #imm]
    0xe5c0_0000, // strb rX, [rN, #imm]
];

/// Code-like bytes: functions of a prologue, a body of ARM instructions, branches and calls, and
/// an epilogue.
pub fn arm_code(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        out.extend_from_slice(&0xe92d_4ff0u32.to_le_bytes()); // push {r4-r11, lr}
        let body = 4 + rng.below(40);
        for _ in 0..body {
            let word = match rng.below(10) {
                0 => 0xeb00_0000 | (rng.next_u64() as u32 & 0x0000_ffff), // bl
                1 => 0x1a00_0000 | (rng.below(64) as u32),                // bne
                _ => {
                    let op = rng.pick(ARM_OPS).copied().unwrap_or(0xe1a0_0000);
                    let rd = (rng.below(12) as u32) << 12;
                    let rn = (rng.below(12) as u32) << 16;
                    let low = if rng.below(3) == 0 {
                        rng.below(12) as u32
                    } else {
                        (rng.below(64) as u32) << 2
                    };
                    op | rd | rn | low
                }
            };
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&0xe8bd_8ff0u32.to_le_bytes()); // pop {r4-r11, pc}
    }
    out.truncate(len);
    out
}

/// Generic strings every C program carries, mixed into generated string tables.
const COMMON_STRINGS: &[&str] = &[
    "%s: %s\n",
    "cannot open %s",
    "out of memory",
    "/dev/null",
    "/proc/self/exe",
    "Usage: %s [OPTION]... [FILE]...",
    "invalid argument",
    "GLIBC_2.4",
    "libc.so.0",
    "__libc_start_main",
    "pthread_create",
    "socket",
    "connect",
    "select",
    "ioctl",
    "malloc",
    "free",
    "memcpy",
    "strlen",
    "snprintf",
];

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A 32-bit little-endian ARM (EABI5) ELF file named `name`: ELF header, one `PT_LOAD` program
/// header (none for modules), a `.text` of `text_len` bytes of code, a `.rodata` holding
/// `strings` plus common C strings, a `.comment` with the compiler banner, and section headers.
/// The same name always gives the same bytes.
pub fn arm_elf(kind: ElfKind, name: &str, text_len: usize, strings: &[&str]) -> Vec<u8> {
    let mut rng = Rng::named(name);
    let text = arm_code(&mut rng, text_len.max(64) & !3);
    let mut rodata = Vec::new();
    for s in strings {
        rodata.extend_from_slice(s.as_bytes());
        rodata.push(0);
    }
    for _ in 0..(8 + text_len / 2048) {
        if let Some(s) = rng.pick(COMMON_STRINGS) {
            rodata.extend_from_slice(s.as_bytes());
            rodata.push(0);
        }
    }
    let comment = b"GCC: (Hisilicon_v300) 4.9.4 20150629 (prerelease)\0";
    let shstrtab = b"\0.text\0.rodata\0.comment\0.shstrtab\0";
    // Name offsets inside shstrtab.
    let (n_text, n_rodata, n_comment, n_shstrtab) = (1u32, 7u32, 15u32, 24u32);

    let has_phdr = kind != ElfKind::KernelModule;
    let text_off = 0x80usize;
    let rodata_off = (text_off + text.len() + 3) & !3;
    let comment_off = (rodata_off + rodata.len() + 3) & !3;
    let shstr_off = comment_off + comment.len();
    let sh_off = (shstr_off + shstrtab.len() + 3) & !3;
    let load_end = comment_off;
    let vaddr: u32 = match kind {
        ElfKind::Executable => 0x0000_8000,
        _ => 0,
    };

    let mut v = Vec::with_capacity(sh_off + 5 * 40);
    v.extend_from_slice(b"\x7fELF\x01\x01\x01\x00");
    v.extend_from_slice(&[0u8; 8]);
    put16(
        &mut v,
        match kind {
            ElfKind::Executable => 2,
            ElfKind::SharedObject => 3,
            ElfKind::KernelModule => 1,
        },
    );
    put16(&mut v, 40); // EM_ARM
    put32(&mut v, 1);
    put32(
        &mut v,
        if kind == ElfKind::Executable {
            vaddr + u32_of(text_off)
        } else {
            0
        },
    );
    put32(&mut v, if has_phdr { 52 } else { 0 });
    put32(&mut v, u32_of(sh_off));
    put32(&mut v, 0x0500_0200); // EABI5, soft-float
    put16(&mut v, 52);
    put16(&mut v, 32);
    put16(&mut v, u16::from(has_phdr));
    put16(&mut v, 40);
    put16(&mut v, 5);
    put16(&mut v, 4);
    if has_phdr {
        put32(&mut v, 1); // PT_LOAD
        put32(&mut v, 0);
        put32(&mut v, vaddr);
        put32(&mut v, vaddr);
        put32(&mut v, u32_of(load_end));
        put32(&mut v, u32_of(load_end));
        put32(&mut v, 5); // R+X
        put32(&mut v, 0x8000);
    }
    v.resize(text_off, 0);
    v.extend_from_slice(&text);
    pad4(&mut v);
    v.extend_from_slice(&rodata);
    pad4(&mut v);
    v.extend_from_slice(comment);
    v.extend_from_slice(shstrtab);
    pad4(&mut v);
    // Section headers: null, .text, .rodata, .comment, .shstrtab.
    v.extend_from_slice(&[0u8; 40]);
    let sections = [
        (n_text, 1u32, 6u32, text_off, text.len(), 4u32),
        (n_rodata, 1, 2, rodata_off, rodata.len(), 4),
        (n_comment, 1, 0x30, comment_off, comment.len(), 1),
        (n_shstrtab, 3, 0, shstr_off, shstrtab.len(), 1),
    ];
    for (name_off, ty, flags, off, size, align) in sections {
        put32(&mut v, name_off);
        put32(&mut v, ty);
        put32(&mut v, flags);
        put32(
            &mut v,
            if flags & 2 != 0 {
                vaddr + u32_of(off)
            } else {
                0
            },
        );
        put32(&mut v, u32_of(off));
        put32(&mut v, u32_of(size));
        put32(&mut v, 0);
        put32(&mut v, 0);
        put32(&mut v, align);
        put32(&mut v, u32::from(flags == 0x30));
    }
    v
}

/// A zImage-style ARM kernel: a decompressor stub with the zImage magic at 0x24, followed by the
/// gzip-compressed kernel proper, which holds `banner` (the `Linux version …` line) among code.
pub fn kernel_image(banner: &str, image_len: usize) -> Vec<u8> {
    let mut rng = Rng::named(banner);
    let mut stub = arm_code(&mut rng, 0x4000);
    // zImage header: magic, start and end addresses at 0x24..0x30.
    if let Some(h) = stub.get_mut(0x24..0x30) {
        h.fill(0);
        if let Some(m) = h.get_mut(0..4) {
            m.copy_from_slice(&0x016f_2818u32.to_le_bytes());
        }
    }
    let mut image = arm_code(&mut rng, image_len);
    image.extend_from_slice(banner.as_bytes());
    image.extend_from_slice(b"\n\0");
    for s in [
        "Booting Linux on physical CPU 0x0",
        "Kernel command line: %s",
        "VFS: Mounted root (%s filesystem)%s on device %u:%u.",
        "Freeing unused kernel memory: %ldK",
        "squashfs: version 4.0 (2009/01/31) Phillip Lougher",
    ] {
        image.extend_from_slice(s.as_bytes());
        image.push(0);
    }
    image.extend_from_slice(&arm_code(&mut rng, image_len / 4));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(&image);
    let compressed = gz.finish().unwrap_or_default();
    stub.extend_from_slice(&compressed);
    pad4(&mut stub);
    stub
}

/// A PNG of `w`×`h` whose pixel data is noise (stored uncompressed-looking, as photos are).
pub fn png(rng: &mut Rng, w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, ty: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32_of(data.len()).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(ty);
        crc.update(data);
        out.extend_from_slice(ty);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let n = usize::try_from(u64::from(w) * u64::from(h) / 2).unwrap_or(0);
    let idat: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// JavaScript of about `len` bytes: functions built from a vocabulary of UI words.
pub fn javascript(rng: &mut Rng, module: &str, len: usize) -> String {
    const WORDS: &[&str] = &[
        "video", "channel", "stream", "encode", "config", "network", "user", "password", "record",
        "snapshot", "motion", "alarm", "storage", "ptz", "preset", "osd", "login", "session",
        "device", "firmware", "upgrade", "time", "ntp", "rtsp", "onvif", "bitrate",
    ];
    let mut s = format!("/* {module}.js */\nvar {module} = {module} || {{}};\n");
    while s.len() < len {
        let a = rng.pick(WORDS).copied().unwrap_or("x");
        let b = rng.pick(WORDS).copied().unwrap_or("y");
        let n = rng.below(100);
        s.push_str(&format!(
            "{module}.get{a}{b}{n} = function (cb) {{\n    RPC.call(\"{a}Manager.get{b}\", {{ channel: {n} }}, function (r) {{\n        if (r.result) {{ cb(r.params.{b}); }} else {{ ui.error(\"{a}.{b}\"); }}\n    }});\n}};\n"
        ));
    }
    s
}

/// An HTML page with a title and a list of script includes.
pub fn html_page(title: &str, vendor: &str, scripts: &[String]) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<link rel=\"stylesheet\" href=\"css/main.css\">\n"
    );
    for sc in scripts {
        s.push_str(&format!("<script src=\"{sc}\"></script>\n"));
    }
    s.push_str(&format!(
        "</head>\n<body>\n<div id=\"login\">\n<input id=\"username\" type=\"text\">\n<input id=\"password\" type=\"password\">\n<button onclick=\"login()\">Login</button>\n</div>\n<div class=\"footer\">Copyright {vendor}. All rights reserved.</div>\n</body>\n</html>\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_creates_parents_and_drops_dotdot() {
        let mut r = Rootfs::new();
        r.file("/usr/bin/../x", b"a".to_vec(), 0o644);
        let paths: Vec<&str> = r.entries().map(|(p, _)| p).collect();
        assert_eq!(paths, ["usr", "usr/bin", "usr/bin/x"]);
        assert_eq!(r.get("usr").unwrap().data, EntryData::Dir);
        assert_eq!(r.file_bytes(), 1);
    }

    #[test]
    fn elf_headers_are_well_formed() {
        let e = arm_elf(ElfKind::Executable, "busybox", 10_000, &["BusyBox v1.22.1"]);
        assert_eq!(&e[..4], b"\x7fELF");
        assert_eq!(e[4], 1, "ELFCLASS32");
        assert_eq!(u16::from_le_bytes([e[16], e[17]]), 2, "ET_EXEC");
        assert_eq!(u16::from_le_bytes([e[18], e[19]]), 40, "EM_ARM");
        let shoff = u32::from_le_bytes(e[32..36].try_into().unwrap()) as usize;
        assert_eq!(shoff + 5 * 40, e.len(), "section headers end the file");
        // .shstrtab (section 4) names ".text" for section 1.
        let sh = |i: usize, f: usize| {
            let o = shoff + i * 40 + f * 4;
            u32::from_le_bytes(e[o..o + 4].try_into().unwrap()) as usize
        };
        let strtab = sh(4, 4);
        assert_eq!(&e[strtab + sh(1, 0)..strtab + sh(1, 0) + 5], b".text");
        let rodata = &e[sh(2, 4)..sh(2, 4) + sh(2, 5)];
        assert!(rodata.windows(15).any(|w| w == b"BusyBox v1.22.1"));
        // Deterministic per name, different across names.
        assert_eq!(
            e,
            arm_elf(ElfKind::Executable, "busybox", 10_000, &["BusyBox v1.22.1"])
        );
        assert_ne!(e, arm_elf(ElfKind::Executable, "other", 10_000, &[]));
    }

    #[test]
    fn kernel_carries_a_gzip_stream_with_the_banner() {
        let k = kernel_image("Linux version 3.18.20 (test)", 50_000);
        assert_eq!(&k[0x24..0x28], &0x016f_2818u32.to_le_bytes());
        let gz = k.windows(3).position(|w| w == [0x1f, 0x8b, 0x08]).unwrap();
        let mut d = flate2::read::GzDecoder::new(&k[gz..]);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut out).unwrap();
        assert!(
            out.windows(28)
                .any(|w| w == b"Linux version 3.18.20 (test)")
        );
    }

    #[test]
    fn png_chunks_have_valid_crcs() {
        let p = png(&mut Rng::new(1), 8, 8);
        let ihdr = &p[8..8 + 8 + 13 + 4];
        let crc = crc32fast::hash(&ihdr[4..4 + 4 + 13]);
        assert_eq!(&ihdr[21..25], &crc.to_be_bytes());
    }
}
