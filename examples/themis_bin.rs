//! Packs the real Dahua "Themis" firmware parts from the sample folder into one Dahua-style `.bin`
//! with fwsim's own writer (`synth::dahua`): the benchmark input for `fwsim fingerprint` against
//! `fwsim unpack` (see `benches/README.md`).
//!
//! `cargo run --release --example themis_bin -- REALDATA_DIR OUT.bin`
//!
//! Partitions stored as a 64-byte uImage header plus its payload are joined back; the `user`
//! partition, kept only as extracted files, is rebuilt as an xz squashfs in a new uImage.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fwsim::synth::Rootfs;
use fwsim::synth::dahua::{self, Member};
use fwsim::synth::squashfs::{self, Compression};
use fwsim::unpack::formats::uimage;

const THEMIS: &str = "BotoX__DH_IPC-HX4XXX-Themis";

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [realdata, out] = args.as_slice() else {
        bail!("usage: themis_bin REALDATA_DIR OUT.bin");
    };
    let dir = realdata.join(THEMIS);
    let read = |name: &str| std::fs::read(dir.join(name)).with_context(|| name.to_string());
    let mut members = vec![Member::new("Install", read("Install")?)];
    for name in ["dhboot.bin.img", "kernel.img"] {
        members.push(Member::new(name, read(name)?));
    }
    for part in [
        "check.img",
        "custom-x.squashfs.img",
        "partition-x.cramfs.img",
        "pd-x.squashfs.img",
        "romfs-x.squashfs.img",
        "web-x.squashfs.img",
    ] {
        let mut data = read(&format!("{part}.uImage"))?;
        data.extend(read(&format!("{part}.raw"))?);
        members.push(Member::new(part, data));
    }
    let header = uimage::Header::parse(&read("user-x.squashfs.img.uImage")?)
        .map_err(|e| anyhow::anyhow!("user-x uImage header: {e}"))?;
    let mut rootfs = Rootfs::new();
    add_tree(&dir.join("user-x.squashfs.img.extracted"), "", &mut rootfs)?;
    let fs = squashfs::build(&rootfs, Compression::Xz, 128 << 10)?;
    members.push(Member::new(
        "user-x.squashfs.img",
        uimage::build(
            &header.name,
            header.os,
            header.arch,
            header.image_type,
            header.compression,
            &fs,
        ),
    ));
    let bin = dahua::build(&members)?;
    std::fs::write(out, &bin).with_context(|| out.display().to_string())?;
    println!(
        "wrote {}: {} bytes, {} members",
        out.display(),
        bin.len(),
        members.len()
    );
    Ok(())
}

/// Adds the files and folders under `dir` to `rootfs` at `prefix` (symlinks are not followed).
fn add_tree(dir: &Path, prefix: &str, rootfs: &mut Rootfs) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        let kind = e.file_type()?;
        if kind.is_dir() {
            rootfs.dir(&name, 0o755);
            add_tree(&e.path(), &format!("{name}/"), rootfs)?;
        } else if kind.is_file() {
            rootfs.file(&name, std::fs::read(e.path())?, 0o755);
        }
    }
    Ok(())
}
