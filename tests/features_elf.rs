//! ELF features on real camera binaries: symbols against binutils, section digests that ignore
//! debug info and patched strings, and malformed ELF files that must never panic.

use std::collections::BTreeSet;
use std::process::Command;

use fwsim::features::elf::{ElfParams, extract};
use goblin::elf::Elf;

use crate::common::{sample, tool};

const LIBDVR: &str = "nikitos1550__XM_ipcam_crypto_generator/rootfs_toburn/usr/lib/libdvr.so";

/// Symbol names `nm` prints for `args` (the last column of each line).
fn nm(args: &[&str], path: &std::path::Path) -> BTreeSet<String> {
    let out = Command::new("nm").args(args).arg(path).output().unwrap();
    assert!(out.status.success(), "nm failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

#[test]
fn xm_libdvr_symbols_match_binutils() {
    let Some(path) = sample(LIBDVR) else { return };
    let data = std::fs::read(&path).unwrap();
    let f = extract(&data, &ElfParams::default());
    assert_eq!(f.error, None);
    assert_eq!(
        (&*f.machine, &*f.class, &*f.endianness, &*f.elf_type),
        ("ARM", "elf32", "little", "DYN")
    );
    assert!(!f.stripped, "libdvr.so carries a .symtab");
    assert!(f.exports.iter().any(|s| s == "AlarmCreate"));
    assert!(f.imports.iter().any(|s| s == "__ctype_b"));
    assert!(f.code_comparable && f.packer.is_none());
    assert!(f.identifier_digest.is_some() && f.identifier_count > 300);
    assert!(
        f.comments.iter().any(|c| c.starts_with("GCC: (")),
        "{:?}",
        f.comments
    );
    if !tool("nm") {
        return;
    }
    // Exports: the defined dynamic symbols plus the global/weak ones of the static table.
    let mut defined = nm(&["-D", "--defined-only"], &path);
    defined.extend(nm(&["-g", "--defined-only"], &path));
    let exports: BTreeSet<String> = f.exports.iter().cloned().collect();
    assert_eq!(exports, defined);
    let mut undefined = nm(&["-D", "--undefined-only"], &path);
    undefined.extend(nm(&["--undefined-only"], &path));
    let imports: BTreeSet<String> = f.imports.iter().cloned().collect();
    assert_eq!(imports, undefined);
    if tool("readelf") {
        let out = Command::new("readelf")
            .args(["-dW"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let needed: Vec<String> = text
            .lines()
            .filter(|l| l.contains("(NEEDED)"))
            .filter_map(|l| l.split('[').nth(1)?.split(']').next().map(str::to_string))
            .collect();
        assert!(!needed.is_empty());
        assert_eq!(f.needed, needed);
    }
}

/// File offset and size of section `name`.
fn section(data: &[u8], name: &str) -> (usize, usize) {
    let elf = Elf::parse(data).unwrap();
    let sh = elf
        .section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(name))
        .unwrap_or_else(|| panic!("no section {name}"));
    (sh.sh_offset as usize, sh.sh_size as usize)
}

fn digest_of<'a>(f: &'a fwsim::features::elf::ElfFeatures, name: &str) -> &'a str {
    &f.sections.iter().find(|s| s.name == name).unwrap().sha256
}

#[test]
fn section_digests_ignore_debug_info_and_patched_strings() {
    let Some(path) = sample(LIBDVR) else { return };
    let original = std::fs::read(&path).unwrap();
    let params = ElfParams::default();
    let base = extract(&original, &params);

    // Different debug info and compiler notes: .debug_info zeroed, .comment rewritten.
    let mut debug = original.clone();
    let (off, len) = section(&debug, ".debug_info");
    debug[off..off + len].fill(0);
    let (off, len) = section(&debug, ".comment");
    debug[off..off + len].fill(b'x');
    let redebugged = extract(&debug, &params);
    assert_ne!(original, debug);
    assert_eq!(
        redebugged.sections, base.sections,
        "allocated sections unchanged"
    );
    assert_eq!(redebugged.identifier_digest, base.identifier_digest);
    assert_ne!(redebugged.comments, base.comments);

    // One string patched in .rodata: .text identical, .rodata different.
    let mut patched = original.clone();
    let (off, len) = section(&patched, ".rodata");
    let ro = &patched[off..off + len];
    let at = ro
        .windows(6)
        .position(|w| w.iter().all(|b| b.is_ascii_alphabetic()))
        .unwrap();
    patched[off + at] ^= 0x20; // flip the case of one letter
    let p = extract(&patched, &params);
    assert_eq!(digest_of(&p, ".text"), digest_of(&base, ".text"));
    assert_ne!(digest_of(&p, ".rodata"), digest_of(&base, ".rodata"));
    let text = base.sections.iter().find(|s| s.name == ".text").unwrap();
    assert!(
        text.ssdeep.is_some() && text.tlsh.is_some(),
        "large sections get fuzzy digests"
    );
    let tiny = base.sections.iter().find(|s| s.name == ".init").unwrap();
    assert!(tiny.size < params.section_floor && tiny.ssdeep.is_none() && tiny.tlsh.is_none());
}

#[test]
fn malformed_elf_never_panics() {
    let Some(path) = sample(LIBDVR) else { return };
    let original = std::fs::read(&path).unwrap();
    // SHA-256 only for sections: the parsing is what is under test here.
    let params = ElfParams {
        section_floor: u64::MAX,
        ..ElfParams::default()
    };
    // Truncations at many lengths, header bytes included.
    let mut errors = 0;
    for len in (0..64).chain((64..original.len()).step_by(4093)) {
        let f = extract(&original[..len], &params);
        errors += usize::from(f.error.is_some());
    }
    assert!(errors > 40, "truncated files record errors ({errors})");
    // Every header byte and every section-header byte set to 0xff, then to 0x00; and bit flips
    // spread over the file.
    let elf = Elf::parse(&original).unwrap();
    let shoff = elf.header.e_shoff as usize;
    let shdrs = elf.header.e_shnum as usize * elf.header.e_shentsize as usize;
    let phoff = elf.header.e_phoff as usize;
    let phdrs = elf.header.e_phnum as usize * elf.header.e_phentsize as usize;
    let positions: Vec<usize> = (0..52)
        .chain((phoff..phoff + phdrs).step_by(3))
        .chain((shoff..shoff + shdrs).step_by(3))
        .chain((0..original.len()).step_by(4099))
        .collect();
    for &at in &positions {
        for v in [0xff, 0x00, original[at] ^ 0x80] {
            let mut bad = original.clone();
            bad[at] = v;
            let _ = extract(&bad, &params);
        }
    }
    // Counts that claim far more entries than the file could hold.
    let mut huge = original.clone();
    huge[48..50].copy_from_slice(&u16::MAX.to_le_bytes()); // e_shnum
    huge[44..46].copy_from_slice(&u16::MAX.to_le_bytes()); // e_phnum
    let f = extract(&huge, &params);
    assert!(f.error.is_some());
    assert_eq!(f.machine, "ARM", "header facts survive");
}

#[test]
fn upx_packed_binary_is_flagged_and_kept_out_of_code_scores() {
    let Some(path) = sample(LIBDVR) else { return };
    let mut data = std::fs::read(&path).unwrap();
    // UPX writes its `UPX!` marker right after the program headers.
    let elf = Elf::parse(&data).unwrap();
    let at =
        elf.header.e_phoff as usize + elf.header.e_phnum as usize * elf.header.e_phentsize as usize;
    data[at..at + 4].copy_from_slice(b"UPX!");
    let f = extract(&data, &ElfParams::default());
    assert_eq!(f.packer.as_deref(), Some("upx"));
    assert!(!f.code_comparable);
}

/// The whole-file TLSH of every real ELF sample, assembled from its section digests' bucket
/// counts as the fingerprint does, equals hashing the whole file (in-house generator and the
/// `fast-tlsh` crate's), and the section states are those of hashing each section alone.
#[test]
fn whole_file_tlsh_assembled_from_sections_equals_hashing_the_file() {
    use fast_tlsh::prelude::*;
    use fwsim::features::elf::extract_with_tlsh;
    use fwsim::hash::{TlshHasher, tlsh};
    let Some(dir) = crate::common::realdata() else {
        return;
    };
    let mut elf_files = 0;
    let mut with_sections = 0;
    let mut sections_checked = 0;
    for row in crate::common::read_tsv(&dir.join("SOURCES.tsv")) {
        let data = std::fs::read(dir.join(&row[0])).unwrap();
        if !data.starts_with(b"\x7fELF") {
            continue;
        }
        elf_files += 1;
        let (features, sections) = extract_with_tlsh(&data, &ElfParams::default());
        assert_eq!(
            features,
            extract(&data, &ElfParams::default()),
            "{}",
            row[0]
        );
        if !sections.is_empty() {
            with_sections += 1;
        }
        // (Samples goblin's strict parse refuses are checked by the assembly alone.)
        let headers = Elf::parse(&data)
            .map(|e| e.section_headers)
            .unwrap_or_default();
        for (offset, state) in &sections {
            // The digested section at that offset (allocated, with file bytes, above the floor).
            let Some(sh) = headers.iter().find(|sh| {
                sh.sh_offset as usize == *offset
                    && sh.sh_size >= 512
                    && sh.sh_type != goblin::elf::section_header::SHT_NOBITS
                    && sh.sh_flags & u64::from(goblin::elf::section_header::SHF_ALLOC) != 0
            }) else {
                continue;
            };
            let mut alone = TlshHasher::new();
            alone.update(&data[*offset..*offset + sh.sh_size as usize]);
            assert_eq!(&alone, state, "{} section at {offset}", row[0]);
            sections_checked += 1;
        }
        let parts: Vec<(usize, &TlshHasher)> = sections.iter().map(|(o, h)| (*o, h)).collect();
        let assembled = TlshHasher::assembled(&data, &parts).finish();
        assert_eq!(assembled, tlsh::hash(&data), "{}", row[0]);
        let mut crate_gen = fast_tlsh::TlshGenerator::new();
        crate_gen.update(&data);
        let want = crate_gen.finalize().ok().map(|t| t.to_string());
        assert_eq!(assembled.map(|t| t.to_string()), want, "{}", row[0]);
    }
    assert!(
        elf_files >= 10 && with_sections >= 10,
        "{elf_files} ELF samples"
    );
    assert!(
        sections_checked >= 50,
        "{sections_checked} sections checked"
    );
}
