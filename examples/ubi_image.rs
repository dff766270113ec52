//! Writes a NAND-style UBI image with fwsim's own writers (`src/synth/ubi.rs`, `ubifs.rs`): one
//! dynamic UBIFS volume holding every partition tree of a generated camera firmware plus real ELF
//! files copied at run time from this machine's system folders. Used by `benches/ubi.sh`.
//!
//! `cargo run --release --example ubi_image -- OUT_FILE [--size-percent N] [--host-elfs DIR]...
//! [--host-elf-mib N] [--compression lzo|zlib|zstd|none]`

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fwsim::synth::content::Rootfs;
use fwsim::synth::ubi::{Geometry, Volume};
use fwsim::synth::ubifs::{self, Compressor, Options as UbifsOptions};
use fwsim::synth::{EntryData, Firmware, Options};

fn lzo(block: &[u8]) -> Vec<u8> {
    lzokay_native::compress(block).unwrap_or_else(|_| block.to_vec())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let mut opts = Options::demo();
    let mut elf_dirs: Vec<PathBuf> = Vec::new();
    let mut elf_mib: u64 = 64;
    let mut compressor = Compressor::Custom {
        code: 1,
        compress: lzo,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size-percent" => {
                opts.size_percent = args.next().context("--size-percent N")?.parse()?;
            }
            "--host-elfs" => elf_dirs.push(args.next().context("--host-elfs DIR")?.into()),
            "--host-elf-mib" => elf_mib = args.next().context("--host-elf-mib N")?.parse()?,
            "--compression" => {
                compressor = match args.next().context("--compression NAME")?.as_str() {
                    "lzo" => Compressor::Custom {
                        code: 1,
                        compress: lzo,
                    },
                    "zlib" => Compressor::Zlib,
                    "zstd" => Compressor::Zstd,
                    "none" => Compressor::None,
                    other => bail!("unknown compression {other}"),
                }
            }
            s if s.starts_with('-') => bail!("unknown option {s}"),
            s => out = Some(s.into()),
        }
    }
    let Some(out) = out else {
        bail!(
            "usage: ubi_image OUT_FILE [--size-percent N] [--host-elfs DIR]... [--host-elf-mib N] [--compression lzo|zlib|zstd|none]"
        )
    };

    // Every partition's tree under its partition name, then the host ELF files.
    let fw = Firmware::camera(&opts)?;
    let mut root = Rootfs::new();
    for p in &fw.partitions {
        let Some(tree) = p.rootfs() else { continue };
        let prefix = p.file_name.trim_end_matches(".img");
        for (path, e) in tree.entries() {
            let full = format!("{prefix}/{path}");
            match &e.data {
                EntryData::Dir => root.dir(&full, e.mode),
                EntryData::File(d) => root.file(&full, d.clone(), e.mode),
                EntryData::Symlink(t) => root.symlink(&full, t),
            };
        }
    }
    for (path, data) in host_elfs(&elf_dirs, elf_mib << 20)? {
        root.file(&path, data, 0o755);
    }
    let fs = ubifs::build(
        &root,
        &UbifsOptions {
            compressor,
            ..UbifsOptions::default()
        },
    )?;
    let img = fwsim::synth::ubi::build(&[Volume::dynamic(0, "rootfs", fs)], &Geometry::default())?;
    std::fs::write(&out, &img)?;
    println!(
        "wrote {}: {} bytes, {} entries, {} bytes of files",
        out.display(),
        img.len(),
        root.len(),
        root.file_bytes()
    );
    Ok(())
}

/// Regular ELF files from `dirs` (sorted by name, not following symlinks), up to `max_bytes`,
/// each as `opt/<folder>/<name>`.
fn host_elfs(dirs: &[PathBuf], max_bytes: u64) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut total = 0u64;
    for (i, dir) in dirs.iter().enumerate() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| dir.display().to_string())?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect();
        names.sort();
        for p in names {
            let Ok(data) = std::fs::read(&p) else {
                continue;
            };
            if !data.starts_with(b"\x7fELF") || total + data.len() as u64 > max_bytes {
                continue;
            }
            total += data.len() as u64;
            out.push((format!("opt/{i}/{}", file_name(&p)), data));
        }
    }
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
