//! Open-source components recognised in real camera binaries, their versions cross-checked
//! against what `strings` shows in the same files.

use std::process::Command;

use fwsim::features::components::{ComponentMatch, Source, detect};
use fwsim::features::strings::extract;

use crate::common::{sample, tool};

fn components(rel: &str) -> Option<(Vec<u8>, Vec<ComponentMatch>)> {
    let path = sample(rel)?;
    let data = std::fs::read(&path).unwrap();
    let found = detect(&extract(&data, 6, 1_000_000).runs, rel.as_bytes());
    Some((data, found))
}

/// The first line of `strings -a` output on `rel` that starts with `prefix`, if `strings` is
/// installed.
fn strings_line(rel: &str, prefix: &str) -> Option<String> {
    if !tool("strings") {
        return None;
    }
    let out = Command::new("strings")
        .args(["-a", "-n", "6"])
        .arg(sample(rel)?)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_string)
}

fn version_of<'a>(found: &'a [ComponentMatch], component: &str, source: Source) -> Option<&'a str> {
    found
        .iter()
        .find(|m| m.component == component && m.source == source)
        .and_then(|m| m.version.as_deref())
}

#[test]
fn busybox_versions_from_two_real_rootfs() {
    for (rel, version) in [
        ("gadonline__escam_pvr008/rootfs/bin/busybox", "1.26.2"),
        (
            "nikitos1550__XM_ipcam_crypto_generator/rootfs_toburn/bin/busybox",
            "1.16.1",
        ),
    ] {
        let Some((data, found)) = components(rel) else {
            return;
        };
        assert_eq!(
            version_of(&found, "busybox", Source::Content),
            Some(version),
            "{rel}"
        );
        // The reported offset points at the banner in the file.
        let m = found.iter().find(|m| m.component == "busybox").unwrap();
        let at = m.offset as usize;
        assert_eq!(&data[at..at + 10], b"BusyBox v1");
        if let Some(line) = strings_line(rel, "BusyBox v") {
            assert!(line.starts_with(&format!("BusyBox v{version} ")), "{line}");
        }
    }
}

#[test]
fn uclibc_versions_from_content_and_name() {
    for (rel, content, name) in [
        (
            "gadonline__escam_pvr008/rootfs/lib/libuClibc-0.9.33.2.so",
            "0.9.33",
            "0.9.33.2",
        ),
        (
            "nikitos1550__XM_ipcam_crypto_generator/rootfs_toburn/lib/libuClibc-0.9.32.1.so",
            "0.9.32",
            "0.9.32.1",
        ),
    ] {
        let Some((_, found)) = components(rel) else {
            return;
        };
        assert_eq!(
            version_of(&found, "uclibc", Source::Content),
            Some(content),
            "{rel}: {found:?}"
        );
        assert_eq!(
            version_of(&found, "uclibc", Source::Name),
            Some(name),
            "{rel}"
        );
        // uClibc's NPTL carries the library's version (three parts of it).
        if let Some(line) = strings_line(rel, "NPTL ") {
            assert_eq!(line, format!("NPTL {content}"));
            assert!(name.starts_with(content));
        }
    }
}

#[test]
fn vendor_library_is_not_mistaken_for_a_component() {
    let Some((_, found)) =
        components("nikitos1550__XM_ipcam_crypto_generator/rootfs_toburn/usr/lib/libdvr.so")
    else {
        return;
    };
    assert!(
        found
            .iter()
            .all(|m| m.component != "busybox" && m.component != "uclibc"),
        "{found:?}"
    );
}
