//! One image from its plan: the root filesystem (Debian's binaries, configs, init scripts), the
//! application partition (the vendor's generated programs and libraries, its SDK library, the
//! open-source library rebuilt with its flags, web UI, keys, device tree), a bootloader and a
//! kernel, packed with fwsim's own writers into the planned container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use fwsim::synth::content::{self, Rootfs};
use fwsim::synth::{Compression, dahua, flash, squashfs, tarball};
use fwsim::unpack::formats::uimage;

use crate::cgen::{self, ProgramSpec, VendorStrings, mix, seed_of};
use crate::inputs::{self, CompileJob, KeyPair};
use crate::plan::{Compressor, Container, ImagePlan, Plan, Transform};

/// What every image of one architecture shares: Debian's files by package.
pub struct DebianFiles {
    /// Package → (file name → bytes).
    pub files: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

/// Include directory of the open-source headers (stb, jsmn) Debian ships.
pub struct OpenSource {
    /// `-I` directories.
    pub includes: Vec<PathBuf>,
}

/// The file names taken from each Debian package.
pub fn wanted(package: &str, name: &str) -> bool {
    match package {
        "busybox-static" => name == "busybox",
        "dropbear-bin" => name == "dropbear" || name == "dbclient",
        "libssl3" => name == "libssl.so.3" || name == "libcrypto.so.3",
        "zlib1g" => name.starts_with("libz.so.1."),
        "libc6" => {
            ["libc.so.6", "libm.so.6", "libresolv.so.2"].contains(&name)
                || name.starts_with("ld-linux")
                || name == "ld.so.1"
        }
        "lighttpd" => name == "lighttpd",
        _ => false,
    }
}

/// The image's bytes and what the manifest records about its parts.
pub struct Built {
    /// The image.
    pub bytes: Vec<u8>,
    /// SHA-256 of the certificate it carries.
    pub cert_sha256: String,
}

fn compression(c: Compressor) -> Compression {
    match c {
        Compressor::Gzip => Compression::Gzip,
        Compressor::Xz => Compression::Xz,
        Compressor::Zstd => Compression::Zstd,
        Compressor::Lz4 => Compression::Lz4,
    }
}

/// Builds `img` of `plan`.
pub fn build(
    root: &Path,
    plan: &Plan,
    img: &ImagePlan,
    debian: &DebianFiles,
    open: &OpenSource,
) -> Result<Built> {
    // A binary patch rebrand is its original built as such, then patched byte for byte.
    let patch = img.transformations.contains(&Transform::BinaryPatch);
    let (src_img, strings) = match (&img.rebrand_of, patch) {
        (Some(orig), true) => {
            let o = plan.image(orig).ok_or_else(|| anyhow!("no image {orig}"))?;
            (o, o.strings.clone())
        }
        _ => (img, img.strings.clone()),
    };
    let sdk = img.sdk.as_deref().and_then(|s| plan.sdk(s));
    let soc = sdk.map_or_else(
        || format!("{}-{}", img.arch.debian(), src_img.family),
        |s| s.soc.clone(),
    );
    let tag = strings.tag.to_ascii_lowercase();
    let compile = |spec: &ProgramSpec, s: &VendorStrings, includes: &[PathBuf]| {
        inputs::compile(
            root,
            &CompileJob {
                arch: img.arch,
                cflags: img.cflags.clone(),
                shared_lib: spec.shared_lib,
                source: cgen::generate(spec, s),
                includes: includes.to_vec(),
            },
        )
    };
    let program = |name: &str, functions: usize, shared_lib: bool, subdir: &str| ProgramSpec {
        name: name.into(),
        seed: mix(img.seed, seed_of(name)),
        functions,
        added_per_version: functions / 12,
        version: img.version,
        shared_lib,
        subdir: subdir.into(),
    };

    // The application partition.
    let mut app = Rootfs::new();
    let app_name = img.app.clone();
    let progs = [
        (
            format!("bin/{app_name}"),
            program(&app_name, 220, false, "src/app"),
        ),
        ("bin/webd".to_owned(), program("webd", 90, false, "src/web")),
        (
            "bin/cfgtool".to_owned(),
            program("cfgtool", 50, false, "src/tools"),
        ),
        (
            "lib/libvnet.so".to_owned(),
            program("libvnet.so", 120, true, "src/net"),
        ),
    ];
    for (path, spec) in &progs {
        app.file(path, compile(spec, &strings, &[])?, 0o755);
    }
    if img.transformations.contains(&Transform::Additions) {
        let extra = ProgramSpec {
            seed: seed_of(&format!("{}-cloudagent", img.name)),
            ..program("cloudagent", 70, false, "src/cloud")
        };
        app.file("bin/cloudagent", compile(&extra, &strings, &[])?, 0o755);
        app.file(
            "web/cloud.html",
            content::html_page(&format!("{} Cloud", strings.product), &strings.vendor, &[]),
            0o644,
        );
    }
    if let Some(sdk) = sdk {
        let spec = ProgramSpec {
            name: sdk.lib_name.clone(),
            seed: sdk.seed,
            functions: 160,
            added_per_version: 0,
            version: 1,
            shared_lib: true,
            subdir: "mpp/src".into(),
        };
        app.file(
            &format!("lib/{}", sdk.lib_name),
            compile(&spec, &sdk.strings, &[])?,
            0o755,
        );
    }
    // Open-source parts rebuilt from Debian's sources with the vendor's flags.
    let third = format!(
        "#line 1 \"{}/third_party/imgutil.c\"\n#define STB_IMAGE_IMPLEMENTATION\n#define STBI_NO_STDIO\n#include <stb/stb_image.h>\n#define JSMN_STATIC\n#include <jsmn.h>\n\
         int imgutil_parse_json(const char *js, unsigned int len, jsmntok_t *t, unsigned int n) {{ jsmn_parser p; jsmn_init(&p); return jsmn_parse(&p, js, len, t, n); }}\n\
         unsigned char *imgutil_load(const unsigned char *b, int len, int *x, int *y, int *c) {{ return stbi_load_from_memory(b, len, x, y, c, 0); }}\n",
        strings.build_root
    );
    let third_bin = inputs::compile(
        root,
        &CompileJob {
            arch: img.arch,
            cflags: img.cflags.clone(),
            shared_lib: true,
            source: third,
            includes: open.includes.clone(),
        },
    )?;
    app.file("lib/libimgutil.so", third_bin, 0o755);

    // Web UI, configs, keys, device tree.
    // The web UI is the family's: the same scripts across versions and rebrands, new ones added.
    let mut modules = vec!["live", "playback", "setup", "alarm", "network", "system"];
    if img.version >= 2 {
        modules.push("smart");
    }
    if img.version >= 3 {
        modules.push("cloud");
    }
    let mut scripts = Vec::new();
    for m in modules {
        let mut rng = content::Rng::new(mix(img.seed, seed_of(m)));
        let js = content::javascript(&mut rng, m, 6_000);
        let js = format!(
            "/* {} web UI {} — {} */\n{js}",
            strings.vendor, strings.fw_version, strings.url
        );
        scripts.push(format!("js/{m}.js"));
        app.file(&format!("web/js/{m}.js"), js, 0o644);
    }
    app.file(
        "web/index.html",
        content::html_page(
            &format!("{} {}", strings.vendor, strings.product),
            &strings.vendor,
            &scripts,
        ),
        0o644,
    );
    app.file(
        "web/logo.png",
        content::png(
            &mut content::Rng::named(&format!("logo-{}", strings.tag)),
            120,
            40,
        ),
        0o644,
    );
    app.file(
        "etc/app.ini",
        format!(
            "[device]\nvendor={}\nmodel={}\nversion={}\nsupport={}\n[stream]\nmain.bitrate=4096\nsub.bitrate=512\n[cloud]\nserver=p2p.{tag}-cloud.com\n",
            strings.vendor, strings.product, strings.fw_version, strings.email
        ),
        0o644,
    );
    // The key belongs to the family (its first image's strings name it), or to this image alone.
    let key_strings = plan
        .images
        .iter()
        .find(|i| i.family == img.key_owner)
        .map_or(&img.strings, |i| &i.strings);
    let KeyPair { key_pem, cert_pem } = inputs::keys(
        root,
        &img.key_owner,
        &key_strings.vendor,
        &key_strings.product,
    )?;
    let cert_sha256 = inputs::sha256_hex(&cert_pem);
    app.file("etc/ssl/server.pem", cert_pem, 0o644);
    app.file("etc/ssl/server.key", key_pem, 0o600);
    let chip_vendor = sdk
        .map_or("generic", |s| s.strings.tag.as_str())
        .to_ascii_lowercase();
    let dts = format!(
        "/dts-v1/;\n/ {{\n\tmodel = \"{} {}\";\n\tcompatible = \"{tag},{}\", \"{chip_vendor},{soc}\";\n\t#address-cells = <1>;\n\t#size-cells = <1>;\n\tchosen {{ bootargs = \"console=ttyS0,115200 mem=64M root=/dev/mtdblock2 rootfstype=squashfs\"; }};\n\tmemory@80000000 {{ device_type = \"memory\"; reg = <0x80000000 0x4000000>; }};\n\tsoc {{\n\t\tcompatible = \"simple-bus\";\n\t\t#address-cells = <1>;\n\t\t#size-cells = <1>;\n\t\tranges;\n\t\tuart@12040000 {{ compatible = \"{chip_vendor},{soc}-uart\"; reg = <0x12040000 0x1000>; }};\n\t}};\n}};\n",
        strings.vendor,
        strings.product,
        strings.product.to_ascii_lowercase(),
    );
    let dtb = inputs::dtb(root, &dts)?;
    app.file(&format!("dtb/{soc}.dtb"), dtb.clone(), 0o644);

    // The root filesystem: Debian's binaries and the vendor's /etc.
    let mut rootfs = Rootfs::new();
    for d in ["dev", "proc", "sys", "tmp", "var", "mnt/app", "mnt/sd"] {
        rootfs.dir(d, 0o755);
    }
    for p in &img.packages {
        let files = debian
            .files
            .get(p)
            .with_context(|| format!("package {p} not prepared"))?;
        for (name, data) in files {
            let dir = match p.as_str() {
                "busybox-static" => "bin",
                "dropbear-bin" | "lighttpd" => "usr/sbin",
                "libssl3" => "usr/lib",
                _ => "lib",
            };
            rootfs.file(&format!("{dir}/{name}"), data.clone(), 0o755);
        }
    }
    for a in [
        "sh", "ls", "cat", "mount", "ifconfig", "udhcpc", "telnetd", "vi",
    ] {
        rootfs.symlink(&format!("bin/{a}"), "busybox");
    }
    rootfs
        .file(
            "etc/passwd",
            format!("root:x:0:0:root:/root:/bin/sh\n{tag}:x:500:500:{}:/home:/bin/sh\n", strings.vendor),
            0o644,
        )
        .file(
            "etc/shadow",
            format!("root:$1${}$hQ0Gq2m1e0dwZy3G1mI8W/:18000:0:99999:7:::\n", &tag),
            0o600,
        )
        .file("etc/hostname", format!("{}\n", strings.product), 0o644)
        .file(
            "etc/init.d/rcS",
            format!(
                "#!/bin/sh\n# {} {} startup\nmount -a\nmount -t squashfs /dev/mtdblock3 /mnt/app\nexport LD_LIBRARY_PATH=/lib:/usr/lib:/mnt/app/lib\n/mnt/app/bin/webd &\n/mnt/app/bin/{app_name} &\n",
                strings.vendor, strings.product
            ),
            0o755,
        )
        .file(
            "etc/version",
            format!("{} {} {}\n", strings.product, strings.fw_version, strings.tag),
            0o644,
        );
    if img.packages.iter().any(|p| p == "lighttpd") {
        rootfs.file(
            "etc/lighttpd.conf",
            "server.document-root = \"/mnt/app/web\"\nserver.port = 80\nserver.modules = (\"mod_cgi\")\n",
            0o644,
        );
    }

    if patch {
        let orig = &src_img.strings;
        let subs = [
            (orig.vendor.as_str(), img.strings.vendor.as_str()),
            (orig.product.as_str(), img.strings.product.as_str()),
            (orig.url.as_str(), img.strings.url.as_str()),
            (orig.email.as_str(), img.strings.email.as_str()),
        ];
        app = patched(&app, &subs);
        rootfs = patched(&rootfs, &subs);
    }

    // Boot chain.
    let mut brng = content::Rng::new(mix(img.seed, 0xb007));
    let mut boot = content::arm_code(&mut brng, 96 * 1024);
    boot.extend_from_slice(
        format!(
            "U-Boot 2016.11 ({} build) for {soc}\0bootargs=console=ttyS0,115200 mem=64M\0{} {}\0",
            strings.tag, strings.vendor, strings.product
        )
        .as_bytes(),
    );
    let user = strings
        .build_root
        .split('/')
        .nth(2)
        .unwrap_or("build")
        .to_owned();
    let mut kernel = content::kernel_image(
        &format!(
            "Linux version 4.9.37 ({user}@{tag}-build) (gcc version 8.3.0 ({soc} SDK toolchain)) #1 SMP PREEMPT"
        ),
        256 * 1024,
    );
    kernel.extend_from_slice(&dtb);

    let comp = compression(img.compressor);
    let rootfs_img = squashfs::build(&rootfs, comp, 0x2_0000)?;
    let app_img = squashfs::build(&app, comp, 0x2_0000)?;
    let arch = img.arch.uimage_arch();
    let parts: Vec<(&str, Vec<u8>)> = vec![
        ("boot", uimage::build("u-boot", 17, arch, 5, 0, &boot)),
        (
            "kernel",
            uimage::build(&format!("Linux-{soc}"), 5, arch, 2, 0, &kernel),
        ),
        (
            "rootfs",
            uimage::build("rootfs", 5, arch, 1, 0, &rootfs_img),
        ),
        ("app", uimage::build("app", 5, arch, 1, 0, &app_img)),
    ];
    let bytes = match img.container {
        Container::DahuaBin => {
            let mut members = vec![dahua::Member::new(
                "Install",
                dahua::install_manifest(
                    &parts.iter().map(|(n, _)| (*n, *n)).collect::<Vec<_>>(),
                    &[(strings.product.as_str(), "1.00")],
                    &strings.tag,
                ),
            )];
            for (n, d) in &parts {
                members.push(dahua::Member::new(&format!("{n}.img"), d.clone()));
            }
            dahua::build(&members)?
        }
        Container::TarGz => {
            let mut r = Rootfs::new();
            for (n, d) in &parts {
                r.file(&format!("{n}.img"), d.clone(), 0o644);
            }
            tarball::tar_gz(&r, Some("update.tar"))?
        }
        Container::FlashDump => {
            let refs: Vec<(&str, &[u8])> = parts.iter().map(|(n, d)| (*n, d.as_slice())).collect();
            let need: u64 = refs
                .iter()
                .map(|(_, d)| (d.len() as u64).div_ceil(0x1_0000) * 0x1_0000)
                .sum();
            flash::dump(&refs, 0x1_0000, Some(need.next_power_of_two()))?.0
        }
    };
    Ok(Built { bytes, cert_sha256 })
}

/// `fs` with every occurrence of each `(old, new)` replaced in every file (same lengths).
fn patched(fs: &Rootfs, subs: &[(&str, &str)]) -> Rootfs {
    let mut out = Rootfs::new();
    for (path, entry) in fs.entries() {
        match &entry.data {
            content::EntryData::Dir => {
                out.dir(path, entry.mode);
            }
            content::EntryData::Symlink(t) => {
                out.symlink(path, t);
            }
            content::EntryData::File(data) => {
                let mut d = data.clone();
                for (old, new) in subs {
                    replace_all(&mut d, old.as_bytes(), new.as_bytes());
                }
                out.file(path, d, entry.mode);
            }
        }
    }
    out
}

/// Replaces `old` by `new` (of the same length) everywhere in `data`.
fn replace_all(data: &mut [u8], old: &[u8], new: &[u8]) {
    if old.is_empty() || old.len() != new.len() || old == new {
        return;
    }
    let mut i = 0;
    while let Some(window) = data.get(i..i + old.len()) {
        if window == old {
            if let Some(w) = data.get_mut(i..i + old.len()) {
                w.copy_from_slice(new);
            }
            i += old.len();
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_all_patches_every_occurrence_in_place() {
        let mut d = b"xxVendorAyyVendorA".to_vec();
        replace_all(&mut d, b"VendorA", b"BrandB ");
        assert_eq!(d, b"xxBrandB yyBrandB ");
        let mut d = b"abc".to_vec();
        replace_all(&mut d, b"abc", b"ab");
        assert_eq!(d, b"abc");
    }

    #[test]
    fn debian_files_taken_by_package() {
        assert!(wanted("libc6", "libc.so.6"));
        assert!(wanted("libc6", "ld-linux-armhf.so.3"));
        assert!(wanted("zlib1g", "libz.so.1.2.13"));
        assert!(!wanted("libc6", "libBrokenLocale.so.1"));
        assert!(!wanted("busybox-static", "README"));
    }
}
