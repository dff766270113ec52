//! A whole IP-camera firmware in the layout of Dahua's HiSilicon cameras: a bootloader, a kernel
//! and five squashfs partitions (romfs, user, web, pd, custom), each wrapped in a uImage, packed
//! as a Dahua `.bin`, a raw flash dump or a tar.gz update.

use rayon::prelude::*;

use super::SynthError;
use super::content::{self, ElfKind, Rng, Rootfs, arm_elf};
use super::squashfs::{self, Compression};
use super::vendor::{Soc, Software};
use super::{dahua, flash, hikvision, tarball};
use crate::unpack::formats::uimage;

/// Who the firmware claims to come from: the strings a rebrand changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Brand {
    /// Company name as printed in copyright lines and the web UI.
    pub vendor: String,
    /// Model number (also the first `hwid`).
    pub product: String,
    /// Firmware version string.
    pub version: String,
    /// User name in the build paths left in the binaries.
    pub build_user: String,
}

impl Default for Brand {
    /// A fictional vendor (the layout is Dahua's, the names are not).
    fn default() -> Self {
        Self {
            vendor: "Vistacam Technology Co., Ltd.".into(),
            product: "IPC-HFW4431R-Z".into(),
            version: "V2.622.0000000.18.R".into(),
            build_user: "jenkins".into(),
        }
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct Options {
    /// Vendor strings.
    pub brand: Brand,
    /// Size of generated binaries in percent of a typical camera's (100 ≈ 3 MiB of files).
    pub size_percent: u32,
    /// Compressor of the romfs, user and pd partitions.
    pub rootfs_compression: Compression,
    /// Compressor of the web and custom partitions.
    pub web_compression: Compression,
    /// Extra files for the user partition (path inside it, bytes), e.g. real binaries.
    pub extra_user_files: Vec<(String, Vec<u8>)>,
    /// Mark squashfs partitions' uImage headers "gzip" although their payload is stored as is,
    /// as Dahua's real packages do ("Standalone Program (gzip)" around a raw squashfs).
    pub dahua_gzip_quirk: bool,
    /// Whose software the image carries. `None`: the writer's original fixed content (every
    /// program seeded by its file name alone, HiSilicon SDK). `Some`: the vendor's programs, web
    /// scripts, key and password hashes drawn from the profile, its chip SDK, and OpenSSL
    /// libraries and a TLS key added.
    pub software: Option<Software>,
}

impl Options {
    /// The demo camera: about 3 MiB of files, xz and gzip partitions.
    pub fn demo() -> Self {
        Self {
            brand: Brand::default(),
            size_percent: 100,
            rootfs_compression: Compression::Xz,
            web_compression: Compression::Gzip,
            extra_user_files: Vec::new(),
            dahua_gzip_quirk: false,
            software: None,
        }
    }

    /// The same layout with small files, for quick tests.
    pub fn tiny() -> Self {
        Self {
            size_percent: 5,
            ..Self::demo()
        }
    }
}

/// What a partition holds.
#[derive(Clone, Debug)]
pub enum Payload {
    /// A squashfs image of `rootfs`.
    Squashfs {
        /// The files put in.
        rootfs: Rootfs,
        /// Its compressor.
        compression: Compression,
        /// The squashfs image.
        image: Vec<u8>,
    },
    /// Raw bytes (bootloader, kernel, checksum list).
    Raw(Vec<u8>),
}

impl Payload {
    /// The bytes inside the uImage.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Payload::Squashfs { image, .. } => image,
            Payload::Raw(b) => b,
        }
    }
}

/// One partition image of the package.
#[derive(Clone, Debug)]
pub struct Partition {
    /// File name inside the package (`romfs-x.squashfs.img`).
    pub file_name: String,
    /// The uImage header's name (`romfs`).
    pub uimage_name: String,
    /// The flash partition the `Install` manifest burns it to.
    pub burn_target: String,
    /// U-Boot image type code of its header.
    pub image_type: u8,
    /// What it holds.
    pub payload: Payload,
    /// The complete uImage (header + payload).
    pub uimage: Vec<u8>,
}

impl Partition {
    fn new(file: &str, name: &str, target: &str, image_type: u8, payload: Payload) -> Self {
        Self::with_compression(file, name, target, image_type, 0, payload)
    }

    /// A partition whose uImage header states `compression` (U-Boot `IH_COMP_*`) for `payload`,
    /// which is written as given.
    fn with_compression(
        file: &str,
        name: &str,
        target: &str,
        image_type: u8,
        compression: u8,
        payload: Payload,
    ) -> Self {
        // U-Boot codes: OS linux (5), arch arm (2).
        let uimage = uimage::build(name, 5, 2, image_type, compression, payload.bytes());
        Self {
            file_name: file.into(),
            uimage_name: name.into(),
            burn_target: target.into(),
            image_type,
            payload,
            uimage,
        }
    }

    /// The files put into its filesystem, when it has one.
    pub fn rootfs(&self) -> Option<&Rootfs> {
        match &self.payload {
            Payload::Squashfs { rootfs, .. } => Some(rootfs),
            Payload::Raw(_) => None,
        }
    }
}

/// A complete camera firmware: its partitions, ready to be packed.
#[derive(Clone, Debug)]
pub struct Firmware {
    /// Vendor strings used throughout.
    pub brand: Brand,
    /// Partitions in flash order.
    pub partitions: Vec<Partition>,
    /// Hardware ids the package declares.
    pub hwids: Vec<String>,
}

/// BusyBox applets linked to the one binary.
const APPLETS: &[&str] = &[
    "ash", "cat", "chmod", "cp", "date", "dd", "df", "dmesg", "echo", "grep", "gunzip", "gzip",
    "hostname", "kill", "ln", "ls", "mkdir", "mknod", "mount", "mv", "netstat", "ping", "ps", "rm",
    "sed", "sh", "sleep", "sync", "tar", "touch", "umount", "uname", "vi",
];
const SBIN_APPLETS: &[&str] = &[
    "halt", "ifconfig", "init", "insmod", "klogd", "lsmod", "mdev", "reboot", "rmmod", "route",
    "syslogd", "udhcpc",
];

/// uClibc libraries: (file, soname link, size in KiB at 100 %).
const LIBS: &[(&str, &str, usize)] = &[
    ("ld-uClibc-0.9.33.2.so", "ld-uClibc.so.0", 26),
    ("libuClibc-0.9.33.2.so", "libc.so.0", 300),
    ("libpthread-0.9.33.2.so", "libpthread.so.0", 80),
    ("libm-0.9.33.2.so", "libm.so.0", 43),
    ("libdl-0.9.33.2.so", "libdl.so.0", 10),
    ("librt-0.9.33.2.so", "librt.so.0", 11),
    ("libcrypt-0.9.33.2.so", "libcrypt.so.0", 10),
    ("libstdc++.so.6.0.19", "libstdc++.so.6", 500),
    ("libgcc_s.so.1", "libgcc_s.so", 116),
];

impl Firmware {
    /// Builds the partitions of a camera firmware as `opts` describe. Deterministic.
    pub fn camera(opts: &Options) -> Result<Self, SynthError> {
        let b = &opts.brand;
        let pct = opts.size_percent.max(1) as usize;
        let kib = |k: usize| (k * 1024 * pct / 100).max(512);
        let soc = opts.software.as_ref().map_or(Soc::Hi3516a, |s| s.soc);
        let build_path = format!("/home/{}/{}/sdk/{}", b.build_user, b.version, soc.sdk_dir());
        let copyright = format!("Copyright (c) 2016 {}", b.vendor);

        let boot_seed = match soc {
            Soc::Hi3516a => "dhboot",
            Soc::IngenicT31 => "ingenic-t31/boot",
        };
        let boot = content::arm_code(&mut Rng::named(boot_seed), kib(180))
            .into_iter()
            .chain(format!("U-Boot 2010.06-svn (Dec 09 2016 - 13:20:01)\0{copyright}\0bootargs=mem=128M console=ttyAMA0,115200 root=/dev/mtdblock3 rootfstype=squashfs\0").into_bytes())
            .collect::<Vec<u8>>();
        let (release, gcc) = soc.kernel();
        let kernel = content::kernel_image(
            &format!(
                "Linux version {release} ({}@build) ({gcc} ) #1 SMP Fri Dec 9 13:21:44 CST 2016",
                b.build_user
            ),
            kib(1200),
        );

        let romfs = Self::romfs(opts, &kib, &build_path, &copyright);
        let user = Self::user(opts, &kib, &build_path, &copyright);
        let web = Self::web(opts, &kib);
        let mut pd = Rootfs::new();
        pd.file(
            "product.json",
            format!(
                "{{\n  \"Vendor\" : \"{}\",\n  \"DeviceType\" : \"{}\",\n  \"Version\" : \"{}\",\n  \"SerialPrefix\" : \"5K0\"\n}}\n",
                b.vendor, b.product, b.version
            ),
            0o644,
        )
        .file("config/VideoInDefault", "Brightness=50\nContrast=50\nSaturation=50\nSharpness=50\nMirror=0\nFlip=0\n", 0o644)
        .file("config/NetDefault", "DHCP=1\nHttpPort=80\nRtspPort=554\nOnvif=1\n", 0o644);
        let mut custom = Rootfs::new();
        custom
            .file(
                "CustomConfig",
                format!(
                    "{{ \"Logo\" : \"logo.png\", \"Manufacturer\" : \"{}\" }}\n",
                    b.vendor
                ),
                0o644,
            )
            .file(
                "logo.png",
                content::png(&mut Rng::named("logo"), 96, 32),
                0o644,
            );

        let hwids = vec![
            b.product.clone(),
            format!("{}-AS", b.product),
            "IPC-HDW4431C".to_owned(),
        ];
        // Squashfs partitions (file, uImage name, burn target, files, compressor), compressed in
        // parallel: type standalone (1), compression none or, with the quirk, "gzip".
        let filesystems = vec![
            (
                "romfs-x.squashfs.img",
                "romfs",
                "rootfs",
                romfs,
                opts.rootfs_compression,
            ),
            (
                "user-x.squashfs.img",
                "user",
                "user",
                user,
                opts.rootfs_compression,
            ),
            (
                "web-x.squashfs.img",
                "web",
                "web",
                web,
                opts.web_compression,
            ),
            ("pd-x.squashfs.img", "pd", "pd", pd, opts.rootfs_compression),
            (
                "custom-x.squashfs.img",
                "custom",
                "custom",
                custom,
                opts.web_compression,
            ),
        ];
        let quirk = u8::from(opts.dahua_gzip_quirk);
        let squashfs_parts = filesystems
            .into_par_iter()
            .map(|(file, name, target, rootfs, compression)| {
                let image = squashfs::build(&rootfs, compression, 0x2_0000)?;
                let payload = Payload::Squashfs {
                    rootfs,
                    compression,
                    image,
                };
                Ok(Partition::with_compression(
                    file, name, target, 1, quirk, payload,
                ))
            })
            .collect::<Result<Vec<_>, SynthError>>()?;
        let mut partitions = vec![
            Partition::new(
                "dhboot.bin.img",
                "boot",
                "bootloader",
                5,
                Payload::Raw(boot),
            ),
            Partition::new("kernel.img", "kernel", "kernel", 2, Payload::Raw(kernel)),
        ];
        partitions.extend(squashfs_parts);
        let check = format!(
            "{{\n   \"DefaultLanguage\" : \"English\",\n   \"hwid\" : [\n{}\n   ]\n}}\n",
            hwids
                .iter()
                .map(|h| format!(
                    "      \"{h}:01:02:02:23:1A:00:01:00:00:00:00:258:00:00:00:00:00:01:00:00:100\""
                ))
                .collect::<Vec<_>>()
                .join(",\n")
        );
        partitions.push(Partition::new(
            "check.img",
            "check",
            "check",
            5,
            Payload::Raw(check.into_bytes()),
        ));
        Ok(Self {
            brand: b.clone(),
            partitions,
            hwids,
        })
    }

    fn romfs(opts: &Options, kib: &dyn Fn(usize) -> usize, build: &str, copyright: &str) -> Rootfs {
        let b = &opts.brand;
        let mut r = Rootfs::new();
        for d in [
            "dev", "proc", "sys", "var", "mnt/mtd", "mnt/sd", "home", "root", "usr/etc",
        ] {
            r.dir(d, 0o755);
        }
        r.dir("tmp", 0o1777);
        r.file(
            "bin/busybox",
            arm_elf(
                ElfKind::Executable,
                "busybox",
                kib(400),
                &[
                    "BusyBox v1.22.1 (2016-12-09 13:20:11 CST) multi-call binary.",
                    "Usage: busybox [function [arguments]...]",
                    &format!("{build}/busybox-1.22.1/libbb/appletlib.c"),
                ],
            ),
            0o755,
        );
        for a in APPLETS {
            r.symlink(&format!("bin/{a}"), "busybox");
        }
        for a in SBIN_APPLETS {
            r.symlink(&format!("sbin/{a}"), "../bin/busybox");
        }
        for (file, link, size) in LIBS {
            let kind = ElfKind::SharedObject;
            r.file(
                &format!("lib/{file}"),
                arm_elf(kind, file, kib(*size), &[link, "uClibc 0.9.33.2"]),
                0o755,
            );
            r.symlink(&format!("lib/{link}"), file);
        }
        r.file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nadmin:x:500:500:admin:/home:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            0o644,
        )
        .file(
            "etc/shadow",
            opts.software.as_ref().map_or_else(
                || "root:$1$RYIwEiRA$d5iRRVQ5ZeRTrJwGjRy.B0:16000:0:99999:7:::\nadmin:$1$9Dl0Vx1F$1bQ9aUgh2F0CkLjv0Y1B/.:16000:0:99999:7:::\n".to_owned(),
                Software::shadow,
            ),
            0o600,
        )
        .file("etc/group", "root:x:0:\nadmin:x:500:\nnobody:x:65534:\n", 0o644)
        .file("etc/hosts", "127.0.0.1\tlocalhost\n", 0o644)
        .file("etc/hostname", format!("{}\n", b.product), 0o644)
        .file(
            "etc/fstab",
            "proc\t/proc\tproc\tdefaults\t0 0\nsysfs\t/sys\tsysfs\tdefaults\t0 0\ntmpfs\t/tmp\ttmpfs\tsize=8m\t0 0\n",
            0o644,
        )
        .file(
            "etc/inittab",
            "::sysinit:/etc/init.d/rcS\n::respawn:-/bin/sh\n::ctrlaltdel:/sbin/reboot\n::shutdown:/bin/umount -a -r\n",
            0o644,
        )
        .file(
            "etc/profile",
            "export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport LD_LIBRARY_PATH=/lib:/usr/lib\nulimit -s 1024\n",
            0o644,
        )
        .file(
            "etc/init.d/rcS",
            format!(
                "#!/bin/sh\n# {copyright}\n/bin/mount -a\n/sbin/mdev -s\n\
                 mount -t squashfs /dev/mtdblock4 /usr\nmount -t squashfs /dev/mtdblock5 /usr/web\n\
                 mount -t squashfs /dev/mtdblock6 /mnt/pd\nmount -t squashfs /dev/mtdblock7 /mnt/custom\n\
                 mount -t jffs2 /dev/mtdblock8 /mnt/mtd\n\
                 /etc/init.d/S80network start\n/usr/bin/sonia &\n"
            ),
            0o755,
        )
        .file(
            "etc/init.d/S80network",
            "#!/bin/sh\ncase \"$1\" in\nstart)\n  ifconfig lo 127.0.0.1 up\n  ifconfig eth0 up\n  udhcpc -i eth0 -b -q\n  ;;\nstop)\n  ifconfig eth0 down\n  ;;\nesac\n",
            0o755,
        )
        .file(
            "etc/version",
            format!("{} {} build {}\n", b.product, b.version, "2016-12-09"),
            0o644,
        )
        .symlink("etc/resolv.conf", "/var/resolv.conf")
        .symlink("etc/localtime", "/usr/share/zoneinfo/Asia/Shanghai")
        .symlink("etc/mtab", "/proc/mounts");
        if let Some(sw) = &opts.software {
            r.file("etc/ssl/private/server.key", sw.private_key_pem(), 0o600);
        }
        Self::romfs_data(&mut r);
        r
    }

    /// Init scripts and time-zone files: the many small files of a real root filesystem.
    fn romfs_data(r: &mut Rootfs) {
        let mut rng = Rng::named("romfs-data");
        for (i, svc) in [
            "sysctl", "mdev", "syslog", "watchdog", "network", "ntp", "rtsp", "onvif", "upnp",
            "telnet", "sd", "cron", "upgrade", "led",
        ]
        .iter()
        .enumerate()
        {
            r.file(
                &format!("etc/init.d/S{:02}{svc}", 10 + 5 * i),
                format!(
                    "#!/bin/sh\n# {svc}\ncase \"$1\" in\nstart) echo \"Starting {svc}\"; /usr/sbin/{svc}d & ;;\nstop) killall {svc}d ;;\nesac\n"
                ),
                0o755,
            );
        }
        for region in ["Africa", "America", "Asia", "Europe", "Pacific"] {
            for city in 0..24 {
                // TZif2 header and transition data.
                let mut tz = b"TZif2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
                tz.extend((0..200 + rng.below(1800)).map(|_| (rng.next_u64() % 16) as u8));
                r.file(
                    &format!("usr/share/zoneinfo/{region}/City{city:02}"),
                    tz,
                    0o644,
                );
            }
        }
        r.file(
            "usr/share/zoneinfo/Asia/Shanghai",
            b"TZif2\0CST-8\n".to_vec(),
            0o644,
        );
    }

    fn user(opts: &Options, kib: &dyn Fn(usize) -> usize, build: &str, copyright: &str) -> Rootfs {
        let b = &opts.brand;
        let mut r = Rootfs::new();
        let sw = opts.software.as_ref();
        let domain = sw.map_or("vistacam.example", |s| s.domain.as_str());
        let app = |name: &str, size: usize, extra: &[&str]| {
            let mut strings = vec![
                copyright.to_owned(),
                format!("{build}/src/{name}/main.cpp"),
                format!("{} {}", b.product, b.version),
                format!("http://www.{domain}/support"),
            ];
            strings.extend(extra.iter().map(|s| (*s).to_owned()));
            let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
            match sw {
                None => arm_elf(ElfKind::Executable, name, kib(size), &refs),
                Some(sw) => arm_elf(
                    ElfKind::Executable,
                    &sw.seed(name),
                    sw.program_len(kib(size)),
                    &refs,
                ),
            }
        };
        r.file(
            "bin/sonia",
            app(
                "sonia",
                1400,
                &["RTSP/1.0 200 OK", "onvif://", "/mnt/mtd/Config/Account1"],
            ),
            0o755,
        )
        .file("bin/upgraded", app("upgraded", 35, &["burn %s %s"]), 0o755)
        .file("bin/systools", app("systools", 60, &[]), 0o755)
        .file("bin/load_ucode", app("load_ucode", 5, &[]), 0o755);
        let soc = sw.map_or(Soc::Hi3516a, |s| s.soc);
        // SDK binaries are seeded by the SDK (the same bytes for every vendor on that chip), the
        // original content by file name alone.
        let sdk_seed = |name: &str| match sw {
            None => name.to_owned(),
            Some(_) => format!("{}/{name}", soc.sdk_dir()),
        };
        for &(lib, size) in soc.libraries() {
            let strings = [copyright, soc.sdk_string()];
            r.file(
                &format!("lib/{lib}"),
                arm_elf(ElfKind::SharedObject, &sdk_seed(lib), kib(size), &strings),
                0o755,
            );
        }
        let vermagic = format!(
            "vermagic={} SMP preempt mod_unload ARMv7 p2v8 ",
            soc.kernel().0
        );
        for &(m, size) in soc.modules() {
            let strings = [vermagic.as_str(), "license=Proprietary"];
            r.file(
                &format!("lib/modules/{m}"),
                arm_elf(ElfKind::KernelModule, &sdk_seed(m), kib(size), &strings),
                0o644,
            );
        }
        if sw.is_some() {
            // OpenSSL, as most camera firmware ships it: the same bytes for every vendor.
            for (lib, size) in [("libssl.so.1.0.2k", 300), ("libcrypto.so.1.0.2k", 1500)] {
                let strings = [
                    "OpenSSL 1.0.2k  26 Jan 2017",
                    "SSLv3 part of OpenSSL 1.0.2k  26 Jan 2017",
                ];
                r.file(
                    &format!("lib/{lib}"),
                    arm_elf(ElfKind::SharedObject, lib, kib(size), &strings),
                    0o755,
                );
            }
        }
        r.file(
            "etc/Config/Default",
            format!(
                "{{\n  \"General\" : {{ \"MachineName\" : \"{}\", \"Vendor\" : \"{}\" }},\n  \"Network\" : {{ \"HttpPort\" : 80, \"RtspPort\" : 554 }}\n}}\n",
                b.product, b.vendor
            ),
            0o644,
        );
        for (path, data) in &opts.extra_user_files {
            r.file(path, data.clone(), 0o755);
        }
        r
    }

    fn web(opts: &Options, kib: &dyn Fn(usize) -> usize) -> Rootfs {
        let b = &opts.brand;
        let mut rng = Rng::named(
            &opts
                .software
                .as_ref()
                .map_or_else(|| "web".to_owned(), |s| s.seed("web")),
        );
        let mut r = Rootfs::new();
        let modules = [
            "base", "login", "video", "network", "storage", "system", "ptz", "event",
        ];
        let scripts: Vec<String> = modules.iter().map(|m| format!("js/{m}.js")).collect();
        r.file(
            "index.html",
            content::html_page(&format!("{} WEB SERVICE", b.product), &b.vendor, &scripts),
            0o644,
        );
        for (m, s) in modules.iter().zip(&scripts) {
            r.file(s, content::javascript(&mut rng, m, kib(40)), 0o644);
        }
        // Real web partitions hold a few hundred small files: a page, a script and icons per
        // settings screen.
        for m in modules {
            for page in 0..10 {
                let name = format!("{m}{page}");
                let script = format!("js/{m}/{name}.js");
                r.file(&script, content::javascript(&mut rng, &name, kib(6)), 0o644);
                r.file(
                    &format!("html/{m}/{name}.html"),
                    content::html_page(&name, &b.vendor, std::slice::from_ref(&script)),
                    0o644,
                );
                r.file(
                    &format!("images/{m}/{name}.png"),
                    content::png(&mut rng, 16, 16),
                    0o644,
                );
            }
        }
        r.file(
            "css/main.css",
            "body { font-family: Arial, sans-serif; margin: 0; }\n#login { width: 320px; margin: 120px auto; }\n.footer { color: #888; text-align: center; }\n",
            0o644,
        );
        for i in 0..6u32 {
            r.file(
                &format!("images/icon{i}.png"),
                content::png(&mut rng, 24 + 8 * i, 24),
                0o644,
            );
        }
        r.file(
            "images/background.png",
            content::png(&mut rng, 320, u32::try_from(kib(300) / 160).unwrap_or(100)),
            0o644,
        );
        for lang in [
            "English",
            "SimpChinese",
            "TradChinese",
            "French",
            "German",
            "Italian",
            "Japanese",
            "Korean",
            "Polish",
            "Portuguese",
            "Russian",
            "Spanish",
            "Turkish",
        ] {
            let mut t = String::new();
            for (i, m) in modules.iter().enumerate() {
                t.push_str(&format!("{m}.title={lang} {m} {i}\n"));
            }
            r.file(&format!("lang/{lang}.txt"), t, 0o644);
        }
        r
    }

    /// The partition whose package file name is `file_name`.
    pub fn partition(&self, file_name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.file_name == file_name)
    }

    /// The `Install` manifest of the package.
    pub fn install_manifest(&self) -> String {
        let burns: Vec<(&str, &str)> = self
            .partitions
            .iter()
            .filter(|p| p.burn_target != "check")
            .map(|p| (p.file_name.as_str(), p.burn_target.as_str()))
            .collect();
        dahua::install_manifest(
            &burns,
            &[("IPC-HX4XXX", "1.00"), ("IPC-HX5XXX", "1.00")],
            "General",
        )
    }

    /// The `hwid` manifest of the package.
    pub fn hwid_manifest(&self) -> String {
        let ids: Vec<&str> = self.hwids.iter().map(String::as_str).collect();
        dahua::hwid_manifest(&ids)
    }

    /// The members of the Dahua package: `Install`, `hwid`, then every partition image, all
    /// deflated.
    pub fn dahua_members(&self) -> Vec<dahua::Member> {
        let mut m = vec![
            dahua::Member::new("Install", self.install_manifest()),
            dahua::Member::new("hwid", self.hwid_manifest()),
        ];
        for p in &self.partitions {
            m.push(dahua::Member::new(&p.file_name, p.uimage.clone()));
        }
        m
    }

    /// The Dahua update package (`.bin`).
    pub fn dahua_bin(&self) -> Result<Vec<u8>, SynthError> {
        dahua::build(&self.dahua_members())
    }

    /// A raw dump of the camera's flash: every partition's uImage at a 64 KiB erase-block
    /// boundary, erased (0xFF) flash between them, up to the next power-of-two chip size.
    pub fn flash_dump(&self) -> Result<(Vec<u8>, Vec<flash::Placed>), SynthError> {
        let parts: Vec<(&str, &[u8])> = self
            .partitions
            .iter()
            .map(|p| (p.burn_target.as_str(), p.uimage.as_slice()))
            .collect();
        let need: u64 = parts
            .iter()
            .map(|(_, d)| (d.len() as u64).div_ceil(0x1_0000) * 0x1_0000)
            .sum();
        flash::dump(
            &parts,
            0x1_0000,
            Some(need.next_power_of_two().max(0x10_0000)),
        )
    }

    /// A Hikvision `digicap.dav` of this camera: an `_cfgUpgClass` list, the kernel as `uImage`
    /// (the uImage partition), the root filesystem as `hroot.img` and the user partition as
    /// `app.img` (their bare squashfs images), behind an obfuscated header with checksums.
    pub fn hikvision_dav(&self) -> Result<Vec<u8>, SynthError> {
        hikvision::Package::digicap(self.hikvision_files()?).build()
    }

    /// The files [`Firmware::hikvision_dav`] packs, in package order.
    pub fn hikvision_files(&self) -> Result<Vec<hikvision::PackageFile>, SynthError> {
        let part = |file: &str| {
            self.partition(file)
                .ok_or_else(|| SynthError::Invalid(format!("no partition {file}")))
        };
        let kernel = part("kernel.img")?;
        let root = part("romfs-x.squashfs.img")?;
        let user = part("user-x.squashfs.img")?;
        let class = format!(
            "[upgrade]\nproduct={}\nversion={}\nfiles=uImage,hroot.img,app.img\n",
            self.brand.product, self.brand.version
        );
        Ok(vec![
            hikvision::PackageFile::new("_cfgUpgClass", class),
            hikvision::PackageFile::new("uImage", kernel.uimage.clone()),
            hikvision::PackageFile::new("hroot.img", root.payload.bytes()),
            hikvision::PackageFile::new("app.img", user.payload.bytes()),
        ])
    }

    /// A tar.gz update holding every partition image under its package file name.
    pub fn tar_gz(&self) -> Result<Vec<u8>, SynthError> {
        let mut r = Rootfs::new();
        for p in &self.partitions {
            r.file(&p.file_name, p.uimage.clone(), 0o644);
        }
        tarball::tar_gz(&r, Some("update.tar"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_camera_has_the_dahua_layout() {
        let fw = Firmware::camera(&Options::tiny()).unwrap();
        let names: Vec<&str> = fw.partitions.iter().map(|p| p.file_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dhboot.bin.img",
                "kernel.img",
                "romfs-x.squashfs.img",
                "user-x.squashfs.img",
                "web-x.squashfs.img",
                "pd-x.squashfs.img",
                "custom-x.squashfs.img",
                "check.img"
            ]
        );
        let romfs = fw.partition("romfs-x.squashfs.img").unwrap();
        assert_eq!(&romfs.uimage[..4], &[0x27, 0x05, 0x19, 0x56]);
        assert_eq!(&romfs.uimage[64..68], b"hsqs");
        let files = romfs.rootfs().unwrap();
        assert!(files.get("bin/busybox").is_some());
        assert!(files.get("etc/init.d/rcS").is_some());
        let web = fw.partition("web-x.squashfs.img").unwrap();
        // Superblock compressor id 1 = gzip.
        assert_eq!(web.uimage[64 + 20], 1);
        let install = fw.install_manifest();
        assert!(
            install.contains("\"burn romfs-x.squashfs.img rootfs\""),
            "{install}"
        );
        assert!(!install.contains("check"), "check.img is not burnt");
    }

    #[test]
    fn the_dahua_quirk_marks_raw_squashfs_as_gzip() {
        let opts = Options {
            dahua_gzip_quirk: true,
            ..Options::tiny()
        };
        let fw = Firmware::camera(&opts).unwrap();
        let romfs = fw.partition("romfs-x.squashfs.img").unwrap();
        let h = crate::unpack::formats::uimage::Header::parse(&romfs.uimage).unwrap();
        assert_eq!((h.image_type, h.compression), (1, 1), "standalone, gzip");
        assert_eq!(&romfs.uimage[64..68], b"hsqs", "payload stored as is");
        let kernel = fw.partition("kernel.img").unwrap();
        let h = crate::unpack::formats::uimage::Header::parse(&kernel.uimage).unwrap();
        assert_eq!(h.compression, 0, "the kernel is not affected");
    }

    #[test]
    fn same_options_same_bytes() {
        let a = Firmware::camera(&Options::tiny())
            .unwrap()
            .dahua_bin()
            .unwrap();
        let b = Firmware::camera(&Options::tiny())
            .unwrap()
            .dahua_bin()
            .unwrap();
        assert_eq!(a, b);
    }
}
