//! ELF anatomy with goblin: header facts, dynamic linking, symbols, build-id, `.comment`, digests
//! of each allocated section, the identifier digest and UPX detection. A malformed ELF yields
//! partial features and a recorded error, never a panic.

use std::collections::BTreeSet;

use goblin::elf::header::{self, Header};
use goblin::elf::section_header::{SHF_ALLOC, SHF_STRINGS, SHT_NOBITS, SHT_SYMTAB};
use goblin::elf::sym::{STB_GLOBAL, STB_WEAK};
use goblin::elf::{Elf, Symtab};
use goblin::options::{ParseMode, ParseOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::strings;
use crate::hash::{self, TlshHasher};

/// How the identifier digest is computed. Stored in every fingerprint's parameters: a fingerprint
/// made with another recipe is refused rather than compared.
pub const IDENTIFIER_RECIPE: &str = "tlsh(sorted-unique: ascii strings >= min_len of allocated \
     .rodata*/.dynstr/SHF_STRINGS sections (whole file when there are no sections) + dynamic \
     symbol names (else global symtab names), joined \\n) v1";

/// Sections digested (the rest are counted in `sections_dropped`).
const MAX_SECTIONS: usize = 1024;
/// Notes looked at for the build-id.
const MAX_NOTES: usize = 64;
/// `.comment` strings kept, and their longest length.
const MAX_COMMENTS: usize = 64;
const MAX_COMMENT_LEN: usize = 256;
/// NT_GNU_BUILD_ID.
const NT_GNU_BUILD_ID: u32 = 3;
/// Bytes at each end of the file searched for the `UPX!` marker.
const UPX_WINDOW: usize = 4096;

/// Extraction parameters for ELF files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElfParams {
    /// Sections smaller than this get only a SHA-256 (fuzzy digests of tiny inputs mean nothing).
    pub section_floor: u64,
    /// Minimum length of a string that enters the identifier digest.
    pub string_min_len: usize,
    /// Most imported (and, separately, exported) symbol names kept.
    pub max_symbols: usize,
    /// Most strings read per file for the identifier digest.
    pub max_strings: usize,
}

impl Default for ElfParams {
    fn default() -> Self {
        Self {
            section_floor: 512,
            string_min_len: 6,
            max_symbols: 100_000,
            max_strings: 1_000_000,
        }
    }
}

/// Digests of one allocated section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionDigest {
    /// Section name (lossy UTF-8).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// ssdeep (sections at or above the floor only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssdeep: Option<String>,
    /// TLSH (sections at or above the floor only, and where TLSH gives a digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlsh: Option<String>,
}

/// What an ELF file says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElfFeatures {
    /// Machine (`ARM`, `MIPS`, `X86_64` …, goblin's names).
    pub machine: String,
    /// `elf32` or `elf64`.
    pub class: String,
    /// `little` or `big`.
    pub endianness: String,
    /// `ET_EXEC`, `ET_DYN`, `ET_REL` …
    pub elf_type: String,
    /// No `SHT_SYMTAB` section.
    pub stripped: bool,
    /// `PT_INTERP`.
    pub interpreter: Option<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// Undefined symbols (dynamic and, when present, static symbol table), sorted, unique.
    pub imports: Vec<String>,
    /// Defined global or weak symbols (dynamic and static tables), sorted, unique.
    pub exports: Vec<String>,
    /// GNU build-id, hex.
    pub build_id: Option<String>,
    /// `.comment` strings (compiler and toolchain versions), unique, in file order.
    pub comments: Vec<String>,
    /// Allocated sections with file contents, in section order.
    pub sections: Vec<SectionDigest>,
    /// Sections beyond the cap, not digested.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sections_dropped: usize,
    /// TLSH of the identifiers (see [`IDENTIFIER_RECIPE`]).
    pub identifier_digest: Option<String>,
    /// Number of distinct identifiers that went into it.
    pub identifier_count: usize,
    /// Packer detected (`upx`); its sections are compressed code.
    pub packer: Option<String>,
    /// False when the code cannot be compared (packed): comparison must leave this binary out of
    /// code scores and say so.
    pub code_comparable: bool,
    /// Why parsing stopped short (the other fields are what could be read).
    pub error: Option<String>,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// The features of one ELF file. Never fails: what cannot be read is missing, and `error` says
/// why.
pub fn extract(data: &[u8], params: &ElfParams) -> ElfFeatures {
    extract_with_tlsh(data, params).0
}

/// The TLSH state of each section that got a TLSH digest, with the section's file offset: the
/// whole file's TLSH is assembled from them ([`TlshHasher::assembled`]) instead of hashing the
/// section bytes a second time.
pub type SectionTlsh = Vec<(usize, TlshHasher)>;

/// [`extract`], also giving the [`SectionTlsh`] of the digested sections.
pub fn extract_with_tlsh(data: &[u8], params: &ElfParams) -> (ElfFeatures, SectionTlsh) {
    let mut tlsh = SectionTlsh::new();
    let f = extract_into(data, params, &mut tlsh);
    (f, tlsh)
}

fn extract_into(data: &[u8], params: &ElfParams, tlsh: &mut SectionTlsh) -> ElfFeatures {
    let mut f = ElfFeatures {
        code_comparable: true,
        ..ElfFeatures::default()
    };
    let hdr = match Elf::parse_header(data) {
        Ok(h) => h,
        Err(e) => {
            f.error = Some(format!("ELF header: {e}"));
            f.code_comparable = false;
            return f;
        }
    };
    header_facts(&hdr, &mut f);
    if has_upx_marker(data) {
        f.packer = Some("upx".into());
    }
    let elf = match parse(data, ParseMode::Strict) {
        Ok(elf) => elf,
        Err(strict) => {
            f.error = Some(strict);
            match parse(data, ParseMode::Permissive) {
                Ok(elf) => elf,
                Err(_) => {
                    f.stripped = true;
                    f.code_comparable = f.packer.is_none();
                    f.identifier_digest = identifier_digest(
                        &file_strings(data, params),
                        &BTreeSet::new(),
                        &mut f.identifier_count,
                    );
                    return f;
                }
            }
        }
    };
    body_facts(&elf, data, params, &mut f, tlsh);
    if elf.section_headers.iter().any(|s| {
        let n = elf.shdr_strtab.get_at(s.sh_name).unwrap_or_default();
        n.starts_with("UPX") || n.starts_with(".upx")
    }) {
        f.packer = Some("upx".into());
    }
    f.code_comparable = f.packer.is_none();
    f
}

/// goblin's parse, with a panic in goblin (a bug on some hostile input) turned into an error.
fn parse(data: &[u8], mode: ParseMode) -> Result<Elf<'_>, String> {
    let opts = match mode {
        ParseMode::Permissive => ParseOptions::permissive(),
        _ => ParseOptions::strict(),
    };
    match std::panic::catch_unwind(|| Elf::parse_with_opts(data, &opts)) {
        Ok(Ok(elf)) => Ok(elf),
        Ok(Err(e)) => Err(format!("ELF: {e}")),
        Err(_) => Err("ELF: parser failed on malformed input".into()),
    }
}

fn header_facts(h: &Header, f: &mut ElfFeatures) {
    f.machine = header::machine_to_str(h.e_machine).to_owned();
    f.class = match h.e_ident.get(header::EI_CLASS) {
        Some(&header::ELFCLASS64) => "elf64",
        Some(&header::ELFCLASS32) => "elf32",
        _ => "unknown",
    }
    .into();
    f.endianness = match h.e_ident.get(header::EI_DATA) {
        Some(&header::ELFDATA2MSB) => "big",
        Some(&header::ELFDATA2LSB) => "little",
        _ => "unknown",
    }
    .into();
    f.elf_type = header::et_to_str(h.e_type).to_owned();
}

fn body_facts(
    elf: &Elf<'_>,
    data: &[u8],
    params: &ElfParams,
    f: &mut ElfFeatures,
    tlsh: &mut SectionTlsh,
) {
    f.stripped = !elf.section_headers.iter().any(|s| s.sh_type == SHT_SYMTAB);
    f.interpreter = elf.interpreter.map(str::to_owned);
    f.soname = elf.soname.map(str::to_owned);
    f.needed = elf
        .libraries
        .iter()
        .take(params.max_symbols)
        .map(|s| (*s).to_owned())
        .collect();

    let mut imports = BTreeSet::new();
    let mut exports = BTreeSet::new();
    let mut ids = BTreeSet::new();
    collect_symbols(
        &elf.dynsyms,
        &elf.dynstrtab,
        params,
        &mut imports,
        &mut exports,
    );
    // Identifiers: the dynamic symbols if any, else the global static ones (a module, a static
    // binary): stable across stripping.
    let dynamic_names = imports.len() + exports.len();
    collect_symbols(&elf.syms, &elf.strtab, params, &mut imports, &mut exports);
    if dynamic_names > 0 {
        let (mut di, mut de) = (BTreeSet::new(), BTreeSet::new());
        collect_symbols(&elf.dynsyms, &elf.dynstrtab, params, &mut di, &mut de);
        ids.extend(di);
        ids.extend(de);
    } else {
        ids.extend(imports.iter().cloned());
        ids.extend(exports.iter().cloned());
    }
    f.imports = imports.into_iter().collect();
    f.exports = exports.into_iter().collect();

    f.build_id = build_id(elf, data);
    let mut string_bytes: Vec<&[u8]> = Vec::new();
    for (i, sh) in elf.section_headers.iter().enumerate() {
        let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or_default();
        let offset = usize::try_from(sh.sh_offset).ok();
        let bytes = offset
            .zip(usize::try_from(sh.sh_size).ok())
            .and_then(|(o, n)| data.get(o..o.checked_add(n)?));
        if name == ".comment"
            && let Some(b) = bytes
        {
            f.comments = comments(b);
        }
        let alloc = sh.sh_flags & u64::from(SHF_ALLOC) != 0;
        if !alloc || sh.sh_type == SHT_NOBITS || sh.sh_size == 0 {
            continue;
        }
        let Some(b) = bytes else {
            if f.error.is_none() {
                f.error = Some(format!("section {i} ({name}) lies outside the file"));
            }
            continue;
        };
        if name.starts_with(".rodata")
            || name == ".dynstr"
            || sh.sh_flags & u64::from(SHF_STRINGS) != 0
        {
            string_bytes.push(b);
        }
        if f.sections.len() >= MAX_SECTIONS {
            f.sections_dropped += 1;
            continue;
        }
        let (digest, state) = section_digest(name, b, params.section_floor);
        f.sections.push(digest);
        if let (Some(o), Some(state)) = (offset, state) {
            tlsh.push((o, state));
        }
    }
    let strings = if elf.section_headers.is_empty() {
        file_strings(data, params)
    } else {
        let mut all = Vec::new();
        for b in string_bytes {
            let left = params.max_strings.saturating_sub(all.len());
            all.extend(
                strings::extract(b, params.string_min_len, left)
                    .runs
                    .into_iter()
                    .filter_map(|r| r.ascii()),
            );
        }
        all
    };
    f.identifier_digest = identifier_digest(&strings, &ids, &mut f.identifier_count);
}

/// ASCII strings of the whole file (for ELF files without section headers).
fn file_strings<'a>(data: &'a [u8], params: &ElfParams) -> Vec<&'a str> {
    strings::extract(data, params.string_min_len, params.max_strings)
        .runs
        .into_iter()
        .filter_map(|r| r.ascii())
        .collect()
}

/// Imported (undefined) and exported (defined global/weak) names of one symbol table.
fn collect_symbols(
    syms: &Symtab<'_>,
    strtab: &goblin::strtab::Strtab<'_>,
    params: &ElfParams,
    imports: &mut BTreeSet<String>,
    exports: &mut BTreeSet<String>,
) {
    for sym in syms.iter() {
        if imports.len() >= params.max_symbols && exports.len() >= params.max_symbols {
            break;
        }
        let Some(name) = strtab.get_at(sym.st_name).filter(|n| !n.is_empty()) else {
            continue;
        };
        let bind = sym.st_bind();
        if sym.st_shndx == 0 {
            if imports.len() < params.max_symbols {
                imports.insert(name.to_owned());
            }
        } else if (bind == STB_GLOBAL || bind == STB_WEAK) && exports.len() < params.max_symbols {
            exports.insert(name.to_owned());
        }
    }
}

/// The GNU build-id note, hex.
fn build_id(elf: &Elf<'_>, data: &[u8]) -> Option<String> {
    let notes = elf
        .iter_note_sections(data, None)
        .or_else(|| elf.iter_note_headers(data))?;
    notes
        .take(MAX_NOTES)
        .filter_map(Result::ok)
        .find(|n| n.n_type == NT_GNU_BUILD_ID && n.name == "GNU" && !n.desc.is_empty())
        .map(|n| hex::encode(n.desc))
}

/// The NUL-separated strings of a `.comment` section, trimmed, unique, in order.
fn comments(bytes: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in bytes.split(|&b| b == 0) {
        let s = String::from_utf8_lossy(
            part.get(..part.len().min(MAX_COMMENT_LEN))
                .unwrap_or_default(),
        );
        let s = s.trim();
        if s.is_empty() || out.iter().any(|o| o == s) {
            continue;
        }
        if out.len() >= MAX_COMMENTS {
            break;
        }
        out.push(s.to_owned());
    }
    out
}

/// The digests of one section, and its TLSH state (sections at or above the floor).
fn section_digest(name: &str, bytes: &[u8], floor: u64) -> (SectionDigest, Option<TlshHasher>) {
    let size = bytes.len() as u64;
    if size < floor {
        let d = SectionDigest {
            name: name.to_owned(),
            size,
            sha256: hex::encode(Sha256::digest(bytes)),
            ssdeep: None,
            tlsh: None,
        };
        return (d, None);
    }
    let mut h = hash::DigestHasher::with_len(size);
    h.update(bytes);
    let (d, state) = h.finish_with_tlsh();
    let d = SectionDigest {
        name: name.to_owned(),
        size,
        sha256: hex::encode(d.sha256),
        ssdeep: d.ssdeep.ok().map(|s| s.to_string()),
        tlsh: d.tlsh.map(|t| t.to_string()),
    };
    (d, Some(state))
}

/// TLSH of the sorted, de-duplicated `strings` and `symbols`, joined by `\n`.
fn identifier_digest(
    strings: &[&str],
    symbols: &BTreeSet<String>,
    count: &mut usize,
) -> Option<String> {
    let mut all: BTreeSet<&str> = symbols.iter().map(String::as_str).collect();
    all.extend(strings.iter().copied());
    *count = all.len();
    let mut h = hash::TlshHasher::new();
    for (i, s) in all.iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(s.as_bytes());
    }
    h.finish().map(|t| t.to_string())
}

/// `UPX!` near the start or the end of the file (UPX writes it after the program headers and in
/// the trailer).
fn has_upx_marker(data: &[u8]) -> bool {
    let head = data.get(..data.len().min(UPX_WINDOW)).unwrap_or_default();
    let tail = data
        .get(data.len().saturating_sub(UPX_WINDOW)..)
        .unwrap_or_default();
    memchr::memmem::find(head, b"UPX!").is_some() || memchr::memmem::find(tail, b"UPX!").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_an_elf_is_an_error_not_a_panic() {
        let f = extract(b"\x7fELF", &ElfParams::default());
        assert!(f.error.is_some());
        assert!(!f.code_comparable);
        let f = extract(b"", &ElfParams::default());
        assert!(f.error.is_some());
    }

    #[test]
    fn comments_are_split_trimmed_and_unique() {
        let c = comments(b"\0GCC: (Buildroot) 4.9.4\0GCC: (Buildroot) 4.9.4\0 x \0\0");
        assert_eq!(
            c,
            vec!["GCC: (Buildroot) 4.9.4".to_string(), "x".to_string()]
        );
    }

    #[test]
    fn identifier_digest_ignores_order_and_duplicates() {
        let words: Vec<String> = (0..200)
            .map(|i| format!("identifier_{i:04}_{}", i * 7))
            .collect();
        let mut shuffled = words.clone();
        shuffled.reverse();
        shuffled.extend(words.iter().take(50).cloned());
        let (mut a, mut b) = (0, 0);
        let words_ref: Vec<&str> = words.iter().map(String::as_str).collect();
        let shuffled_ref: Vec<&str> = shuffled.iter().map(String::as_str).collect();
        let da = identifier_digest(&words_ref, &BTreeSet::new(), &mut a);
        let db = identifier_digest(&shuffled_ref, &BTreeSet::new(), &mut b);
        assert!(da.is_some());
        assert_eq!(da, db);
        assert_eq!((a, b), (200, 200));
        // The recipe joins with '\n': the digest equals TLSH of that exact text.
        let mut sorted = words.clone();
        sorted.sort();
        let text = sorted.join("\n");
        assert_eq!(da, hash::tlsh::hash(text.as_bytes()).map(|t| t.to_string()));
    }

    #[test]
    fn upx_marker_at_either_end() {
        let mut d = vec![0u8; 10_000];
        assert!(!has_upx_marker(&d));
        d[9_990..9_994].copy_from_slice(b"UPX!");
        assert!(has_upx_marker(&d));
    }
}
