//! Writes benchmark images with fwsim's own writers: a Dahua-style update (`camera.bin`), the same
//! members as a plain ZIP (`camera.zip`), a raw flash dump (`flash.bin`), a tar.gz update
//! (`update.tgz`) and a Hikvision `digicap.dav` of one camera firmware, plus `partitions.tsv`
//! (where each partition sits in the flash dump). Used by `benches/peers.sh`.
//!
//! `cargo run --release --example synth_image -- OUT_DIR [--size-percent N]
//! [--host-elfs DIR]... [--host-elf-mib N]`
//!
//! `--host-elfs` adds real ELF files from this machine's own system folders (read at run time,
//! never stored in the repository) to the user partition, so the content compresses like real
//! binaries do.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fwsim::synth::{Firmware, Options};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let mut opts = Options::demo();
    let mut elf_dirs: Vec<PathBuf> = Vec::new();
    let mut elf_mib: u64 = 16;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size-percent" => {
                opts.size_percent = args.next().context("--size-percent N")?.parse()?;
            }
            "--host-elfs" => elf_dirs.push(args.next().context("--host-elfs DIR")?.into()),
            "--host-elf-mib" => elf_mib = args.next().context("--host-elf-mib N")?.parse()?,
            s if s.starts_with('-') => bail!("unknown option {s}"),
            s => out = Some(s.into()),
        }
    }
    let Some(out) = out else {
        bail!(
            "usage: synth_image OUT_DIR [--size-percent N] [--host-elfs DIR]... [--host-elf-mib N]"
        )
    };
    std::fs::create_dir_all(&out)?;
    opts.extra_user_files = host_elfs(&elf_dirs, elf_mib << 20)?;

    let fw = Firmware::camera(&opts)?;
    let files: u64 = fw
        .partitions
        .iter()
        .filter_map(|p| p.rootfs())
        .map(|r| r.file_bytes())
        .sum();
    let bin = fw.dahua_bin()?;
    std::fs::write(out.join("camera.bin"), &bin)?;
    std::fs::write(
        out.join("camera.zip"),
        fwsim::synth::dahua::zip_archive(&fw.dahua_members())?,
    )?;
    let (flash, placed) = fw.flash_dump()?;
    std::fs::write(out.join("flash.bin"), &flash)?;
    let tgz = fw.tar_gz()?;
    std::fs::write(out.join("update.tgz"), &tgz)?;
    std::fs::write(out.join("digicap.dav"), fw.hikvision_dav()?)?;
    let mut tsv = String::from("partition\toffset\tlength\n");
    for p in &placed {
        tsv.push_str(&format!("{}\t{:#x}\t{}\n", p.name, p.offset, p.len));
    }
    std::fs::write(out.join("partitions.tsv"), tsv)?;
    println!(
        "wrote {}: camera.bin {} bytes, flash.bin {} bytes, update.tgz {} bytes; {} partitions, {} bytes of filesystem files ({} host ELF files)",
        out.display(),
        bin.len(),
        flash.len(),
        tgz.len(),
        fw.partitions.len(),
        files,
        opts.extra_user_files.len()
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
            if !data.starts_with(b"\x7fELF") {
                continue;
            }
            if total + data.len() as u64 > max_bytes {
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
