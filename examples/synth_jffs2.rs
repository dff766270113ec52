//! Writes a JFFS2 benchmark image with fwsim's own writer (`synth::jffs2`): camera-like content
//! (ARM executables, libraries and kernel modules, web UI scripts and pages, configuration files,
//! symlinks) in firmware "releases" until the image reaches the requested size, zlib compressed,
//! 64 KiB erase blocks. Used by `benches/jffs2.sh`.
//!
//! `cargo run --release --example synth_jffs2 -- OUT.jffs2 [--min-mib N] [--big-endian]`

use anyhow::{Context, bail};
use fwsim::synth::content::{ElfKind, Rng, arm_elf, html_page, javascript};
use fwsim::synth::jffs2::{Compression, Options, ROOT, Writer};
use fwsim::unpack::bytes::Endian;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut out = None;
    let mut min_mib: usize = 64;
    let mut endian = Endian::Little;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--min-mib" => min_mib = args.next().context("--min-mib N")?.parse()?,
            "--big-endian" => endian = Endian::Big,
            s if s.starts_with('-') => bail!("unknown option {s}"),
            s => out = Some(s.to_owned()),
        }
    }
    let Some(out) = out else {
        bail!("usage: synth_jffs2 OUT.jffs2 [--min-mib N] [--big-endian]")
    };
    let mut w = Writer::new(Options {
        endian,
        erase_size: 64 << 10,
        compression: Compression::Zlib,
        ..Options::default()
    })?;
    let mut files = 0usize;
    let mut raw = 0usize;
    let mut release = 0u32;
    while w.len() < min_mib << 20 {
        release += 1;
        let top = w.dir(ROOT, &format!("release-{release}"), 0o755);
        let mut rng = Rng::named(&format!("jffs2 bench {release}"));
        let bin = w.dir(top, "bin", 0o755);
        let lib = w.dir(top, "lib", 0o755);
        let modules = w.dir(lib, "modules", 0o755);
        let web = w.dir(top, "web", 0o755);
        let etc = w.dir(top, "etc", 0o755);
        for i in 0..12 {
            let name = format!("app{i}-r{release}");
            let len = 40_000 + rng.below(400_000) as usize;
            let elf = arm_elf(
                ElfKind::Executable,
                &name,
                len,
                &[
                    "Usage: %s [options]",
                    "/mnt/mtd/Config",
                    "rtsp://%s:%d/cam/realmonitor",
                ],
            );
            raw += elf.len();
            w.file(bin, &name, &elf, 0o755)?;
            w.symlink(bin, &format!("alias{i}"), &name);
        }
        for i in 0..8 {
            let name = format!("libcam{i}.so.r{release}");
            let elf = arm_elf(
                ElfKind::SharedObject,
                &name,
                100_000 + rng.below(300_000) as usize,
                &["GLIBC_2.4", "libc.so.6"],
            );
            raw += elf.len();
            w.file(lib, &name, &elf, 0o755)?;
        }
        for i in 0..6 {
            let name = format!("drv{i}-r{release}.ko");
            let elf = arm_elf(ElfKind::KernelModule, &name, 30_000, &["vermagic=3.18.20"]);
            raw += elf.len();
            w.file(modules, &name, &elf, 0o644)?;
        }
        let mut scripts = Vec::new();
        for i in 0..10 {
            let module = format!("page{i}");
            let len = 10_000 + rng.below(60_000) as usize;
            let js = javascript(&mut rng, &module, len);
            raw += js.len();
            w.file(web, &format!("{module}.js"), js.as_bytes(), 0o644)?;
            scripts.push(format!("{module}.js"));
        }
        let page = html_page("IP Camera", "fwsim", &scripts);
        raw += page.len();
        w.file(web, "index.html", page.as_bytes(), 0o644)?;
        let conf: String = (0..2000)
            .map(|i| format!("Video.Channel[{}].Bitrate={}\n", i % 16, 512 + i * 3 % 4096))
            .collect();
        raw += conf.len();
        w.file(etc, "config.ini", conf.as_bytes(), 0o600)?;
        files += 12 + 8 + 6 + 10 + 2;
    }
    let img = w.finish();
    std::fs::write(&out, &img).with_context(|| format!("write {out}"))?;
    println!(
        "{out}: {} bytes, {files} files, {raw} bytes of file data, {release} releases",
        img.len()
    );
    Ok(())
}
