//! Build environment: paths of the build machine (`/home/<user>/…`, toolchain prefixes under
//! `/opt/` and `/usr/local/`, Windows `C:\…`), toolchain and SDK strings (`GCC: (…)`, target
//! triplets such as `arm-hisiv300-linux`, Buildroot, OpenWrt, crosstool-NG, Linaro), and the
//! user, host, compiler and date of Linux kernel banners.

use serde_json::json;

use super::platform::linux_banner;
use super::scan::{Run, Scan, Trigger, find_all_ci};
use super::{Evidence, EvidenceExtractor, Kind, Params};

/// The build-environment extractor.
#[derive(Clone, Copy, Debug)]
pub struct Build;

impl EvidenceExtractor for Build {
    fn name(&self) -> &'static str {
        "build"
    }

    fn extract(&self, scan: &Scan<'_>, _params: &Params, out: &mut Vec<Evidence>) {
        let path = scan.path;
        for run in scan.runs(&[Trigger::HomePath]) {
            home_paths(path, &run, out);
        }
        for run in scan.runs(&[Trigger::ToolPath]) {
            tool_paths(path, &run, out);
        }
        for run in scan.runs(&[Trigger::WindowsPath]) {
            windows_paths(path, &run, out);
        }
        for run in scan.runs(&[Trigger::Gcc]) {
            gcc_comments(path, &run, out);
        }
        for run in scan.runs(&[Trigger::Triplet]) {
            triplets(path, &run, out);
        }
        for run in scan.runs(&[Trigger::BuildSystem]) {
            build_systems(path, &run, out);
        }
        for run in scan.runs(&[Trigger::LinuxBanner]) {
            banners(path, &run, out);
        }
    }
}

/// Characters that end a Unix path inside a string.
fn ends_path(c: char) -> bool {
    c.is_whitespace() || "\"'<>|;,()[]{}`$*?=".contains(c)
}

/// File name endings of sources and build products (the `__FILE__` and object paths compilers
/// leave behind).
const SOURCE_ENDINGS: &[&str] = &[
    ".c", ".cc", ".cpp", ".cxx", ".h", ".hpp", ".s", ".o", ".a", ".ko", ".mk",
];

fn has_source_ending(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    SOURCE_ENDINGS.iter().any(|e| lower.ends_with(e))
}

/// Words that mark a path under `/opt` or `/usr/local` as a toolchain or SDK location.
const TOOL_HINTS: &[&str] = &[
    "gcc",
    "toolchain",
    "cross",
    "linux-gnu",
    "uclibc",
    "musl",
    "sdk",
    "buildroot",
    "crosstool",
    "hisi",
    "himix",
    "arm-",
    "mips",
    "aarch64",
    "x86_64-",
    "/bin/../",
    "linaro",
];

fn path_at(text: &str, at: usize) -> &str {
    let rest = text.get(at..).unwrap_or_default();
    let end = rest.find(ends_path).unwrap_or(rest.len());
    rest.get(..end)
        .unwrap_or_default()
        .trim_end_matches(['.', ':'])
}

/// `/home/<user>/…` paths deep enough (or naming a source file) to be from a build machine.
fn home_paths(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for at in find_all_ci(run.text, "/home/") {
        if !run.text.get(at..).is_some_and(|s| s.starts_with("/home/")) {
            continue;
        }
        let p = path_at(run.text, at);
        let mut parts = p.split('/').skip(2);
        let Some(user) = parts.next() else { continue };
        let deeper = parts.filter(|s| !s.is_empty()).count();
        let user_ok = !user.is_empty()
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !user_ok || (deeper < 2 && !has_source_ending(p)) {
            continue;
        }
        out.push(Evidence::new(
            Kind::BuildPath,
            p,
            json!({ "source": "home", "user": user }),
            path,
            run.at(at),
        ));
        out.push(Evidence::new(
            Kind::BuildUser,
            user,
            json!({ "source": "home_path" }),
            path,
            run.at(at),
        ));
    }
}

/// Toolchain and SDK paths under `/opt/` and `/usr/local/`.
fn tool_paths(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for prefix in ["/opt/", "/usr/local/"] {
        for at in run.text.match_indices(prefix).map(|(i, _)| i) {
            let p = path_at(run.text, at);
            let lower = p.to_ascii_lowercase();
            if !TOOL_HINTS.iter().any(|h| lower.contains(h)) && !has_source_ending(p) {
                continue;
            }
            let source = if prefix == "/opt/" {
                "opt"
            } else {
                "usr_local"
            };
            out.push(Evidence::new(
                Kind::BuildPath,
                p,
                json!({ "source": source }),
                path,
                run.at(at),
            ));
        }
    }
}

/// `C:\…` paths with at least two components.
fn windows_paths(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for (i, _) in run.text.match_indices(":\\") {
        let Some(drive_at) = i.checked_sub(1) else {
            continue;
        };
        let drive = run.text.get(drive_at..i).unwrap_or_default();
        let before = run.text.get(..drive_at).and_then(|s| s.chars().last());
        // An upper-case drive letter starting a word (`\d\d:\d\d` in a regular expression
        // is not a path).
        if !drive.bytes().all(|b| b.is_ascii_uppercase())
            || before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '\\')
        {
            continue;
        }
        let rest = run.text.get(drive_at..).unwrap_or_default();
        let end = rest
            .find(|c: char| "\"<>|*?;\t".contains(c) || c.is_control())
            .unwrap_or(rest.len());
        let p = rest.get(..end).unwrap_or_default().trim_end();
        let p = p
            .split("  ")
            .next()
            .unwrap_or(p)
            .trim_end_matches(['.', ' ']);
        // At least two components, the first two names of two or more characters.
        let mut parts = p.split('\\').skip(1).filter(|c| !c.is_empty());
        let named = |c: Option<&str>| {
            c.is_some_and(|c| c.len() >= 2 && c.chars().next().is_some_and(char::is_alphanumeric))
        };
        if !named(parts.next()) || !named(parts.next()) {
            continue;
        }
        out.push(Evidence::new(
            Kind::BuildPath,
            p,
            json!({ "source": "windows" }),
            path,
            run.at(drive_at),
        ));
    }
}

/// `GCC: (…) 4.9.4` compiler identification strings (`.comment` sections).
fn gcc_comments(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for (at, _) in run.text.match_indices("GCC: (") {
        let value = run.text.get(at..).unwrap_or_default().trim_end();
        out.push(Evidence::new(
            Kind::Toolchain,
            value,
            json!({ "source": "gcc_comment" }),
            path,
            run.at(at),
        ));
    }
}

/// First components of target triplets.
const ARCHES: &[&str] = &[
    "arm", "armeb", "armel", "armhf", "aarch64", "mips", "mipsel", "mips64", "mips64el", "x86_64",
    "i386", "i486", "i586", "i686", "powerpc", "ppc", "riscv32", "riscv64", "csky", "xtensa",
    "arc", "sh4", "nds32le",
];

/// Last components of target triplets.
const ABIS: &[&str] = &[
    "gnu",
    "gnueabi",
    "gnueabihf",
    "uclibc",
    "uclibcgnueabi",
    "uclibcgnueabihf",
    "musl",
    "musleabi",
    "musleabihf",
    "android",
    "androideabi",
];

fn triplet_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Parses a target triplet out of a token such as `arm-hisiv300-linux-gcc`:
/// (`arm-hisiv300-linux`, vendor `hisiv300`).
fn triplet(token: &str) -> Option<(String, Option<&str>)> {
    let parts: Vec<&str> = token.split('-').collect();
    let arch = *parts.first()?;
    let arch_ok = ARCHES.contains(&arch) || arch.starts_with("armv") || arch.starts_with("mipsisa");
    if !arch_ok {
        return None;
    }
    let linux = parts.iter().position(|p| *p == "linux")?;
    if !(1..=2).contains(&linux) {
        return None;
    }
    let vendor = if linux == 2 {
        parts.get(1).copied()
    } else {
        None
    };
    let mut end = linux + 1;
    if parts.get(end).is_some_and(|p| ABIS.contains(p)) {
        end += 1;
    }
    Some((
        parts.get(..end)?.join("-"),
        vendor.filter(|v| !v.is_empty()),
    ))
}

/// Target triplets (`arm-hisiv300-linux`, `mipsel-linux-uclibc`, `arm-himix200-linux` …).
fn triplets(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for (i, _) in run.text.match_indices("-linux") {
        let before = run.text.get(..i).unwrap_or_default();
        let start = before
            .char_indices()
            .rev()
            .take_while(|&(_, c)| triplet_char(c))
            .last()
            .map_or(i, |(s, _)| s);
        let rest = run.text.get(start..).unwrap_or_default();
        let token = rest
            .get(..rest.find(|c: char| !triplet_char(c)).unwrap_or(rest.len()))
            .unwrap_or_default();
        let lower = token.to_ascii_lowercase();
        let Some((value, vendor)) = triplet(&lower) else {
            continue;
        };
        out.push(Evidence::new(
            Kind::Toolchain,
            value,
            json!({ "source": "triplet", "vendor": vendor }),
            path,
            run.at(start),
        ));
    }
}

/// Build systems and toolchain distributions, with the version that follows their name.
const BUILD_SYSTEMS: &[(&str, &str)] = &[
    ("buildroot", "buildroot"),
    ("openwrt", "openwrt"),
    ("crosstool-ng", "crosstool-ng"),
    ("linaro gcc", "linaro"),
    ("poky", "yocto"),
];

/// `Buildroot 2019.02.1`, `OpenWrt 18.06.2`, `crosstool-NG 1.20.0`, `Linaro GCC 4.9-2017.01` …
fn build_systems(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for &(name, source) in BUILD_SYSTEMS {
        for at in find_all_ci(run.text, name) {
            if run
                .text
                .get(..at)
                .and_then(|s| s.chars().last())
                .is_some_and(|c| c.is_ascii_alphanumeric())
            {
                continue;
            }
            let after = run.text.get(at + name.len()..).unwrap_or_default();
            let after = after.strip_prefix(['-', ' ']).unwrap_or(after);
            let version: &str = after
                .get(
                    ..after
                        .find(|c: char| c.is_whitespace() || c == ')' || c == ',' || c == '"')
                        .unwrap_or(after.len()),
                )
                .unwrap_or_default();
            let versioned = version.chars().next().is_some_and(|c| c.is_ascii_digit())
                || version.starts_with("SNAPSHOT")
                || version.starts_with('v')
                    && version.chars().nth(1).is_some_and(|c| c.is_ascii_digit());
            if !versioned {
                continue;
            }
            let written = run.text.get(at..at + name.len()).unwrap_or(name);
            out.push(Evidence::new(
                Kind::Toolchain,
                format!("{written} {version}"),
                json!({ "source": source }),
                path,
                run.at(at),
            ));
        }
    }
}

/// User, host, compiler and date of `Linux version …` banners.
fn banners(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for at in find_all_ci(run.text, "linux version ") {
        let Some(b) = linux_banner(run.text.get(at..).unwrap_or_default()) else {
            continue;
        };
        let offset = run.at(at);
        let detail = json!({ "source": "kernel_banner", "release": b.release });
        if let (Some(user), Some(host)) = (b.user, b.host) {
            out.push(Evidence::new(
                Kind::BuildHost,
                format!("{user}@{host}"),
                detail.clone(),
                path,
                offset,
            ));
            out.push(Evidence::new(
                Kind::BuildUser,
                user,
                detail.clone(),
                path,
                offset,
            ));
        }
        if let Some(c) = b.compiler {
            out.push(Evidence::new(
                Kind::Toolchain,
                c,
                detail.clone(),
                path,
                offset,
            ));
        }
        if let Some(d) = b.date {
            out.push(Evidence::new(Kind::BuildDate, d, detail, path, offset));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(data: &[u8]) -> Vec<Evidence> {
        let scan = Scan::new("fw/lib/x.ko", data, &Params::default());
        let mut out = Vec::new();
        Build.extract(&scan, &Params::default(), &mut out);
        out
    }

    fn values(ev: &[Evidence], kind: Kind) -> Vec<&str> {
        ev.iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.value.as_str())
            .collect()
    }

    #[test]
    fn build_paths() {
        let ev = run_on(
            b"\0f=/^(\\d\\d:\\d\\d)-(\\d\\d:\\d\\d)/\0\0C:\\a\\\0/home/devin/vision_release/sdk_org/sdk/vpss.o\0\0/home/admin\0\0/opt/app/run.sh\0\0/opt/hisi-linux/x86-arm/arm-hisiv300-linux/bin/arm-hisiv300-linux-gcc\0\0D:\\work\\ipc\\src\\main.cpp\0\0/usr/local/bin/x\0",
        );
        assert_eq!(
            values(&ev, Kind::BuildPath),
            [
                "/home/devin/vision_release/sdk_org/sdk/vpss.o",
                "/opt/hisi-linux/x86-arm/arm-hisiv300-linux/bin/arm-hisiv300-linux-gcc",
                "D:\\work\\ipc\\src\\main.cpp",
            ]
        );
        assert_eq!(values(&ev, Kind::BuildUser), ["devin"]);
        let home = &ev[0];
        assert_eq!(home.offset, 37);
        assert_eq!(home.detail_str("user"), Some("devin"));
    }

    #[test]
    fn toolchains() {
        let ev = run_on(
            b"\0GCC: (GNU) 4.9.4 20160726 (prerelease)\0\0arm-himix200-linux-gcc\0\0mipsel-linux-uclibc-strip\0\0Buildroot 2019.02.1\0\0(crosstool-NG 1.20.0) \0\0not-linux here\0",
        );
        let t = values(&ev, Kind::Toolchain);
        assert!(
            t.contains(&"GCC: (GNU) 4.9.4 20160726 (prerelease)"),
            "{t:?}"
        );
        assert!(t.contains(&"arm-himix200-linux"), "{t:?}");
        assert!(t.contains(&"mipsel-linux-uclibc"), "{t:?}");
        assert!(t.contains(&"Buildroot 2019.02.1"), "{t:?}");
        assert!(t.contains(&"crosstool-NG 1.20.0"), "{t:?}");
        assert_eq!(t.len(), 5, "{t:?}");
        let himix = ev.iter().find(|e| e.value == "arm-himix200-linux").unwrap();
        assert_eq!(himix.detail["vendor"], "himix200");
    }

    #[test]
    fn kernel_banner_fields() {
        let ev = run_on(
            b"\0Linux version 3.4.35 (jenkins@build-07) (gcc version 4.8.3 20131202 (prerelease) (Hisilicon_v300) ) #1 SMP Fri Dec 9 16:08:20 CST 2016\n\0",
        );
        assert_eq!(values(&ev, Kind::BuildHost), ["jenkins@build-07"]);
        assert_eq!(values(&ev, Kind::BuildUser), ["jenkins"]);
        assert_eq!(
            values(&ev, Kind::Toolchain),
            ["gcc version 4.8.3 20131202 (prerelease) (Hisilicon_v300)"]
        );
        assert_eq!(
            values(&ev, Kind::BuildDate),
            ["Fri Dec 9 16:08:20 CST 2016"]
        );
    }
}
