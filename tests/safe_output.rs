//! `unpack --out DIR`: the safe writer against every escape trick (`..`, absolute names, links
//! out, files through links, hard links out, devices, odd names, duplicates), checked by scanning
//! the folder around DIR before and after, and the `--out` CLI end to end.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use fwsim::unpack::write::{self, Report, SkipReason, WrittenKind};
use fwsim::unpack::{Child, EntryKind, Tree};

use crate::common;

/// Every path under `dir` (links listed, never followed).
fn scan(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

/// A sandbox: `out/` (not yet created) beside `victim/secret`, which nothing may touch, six
/// folders deep inside a temporary folder that is scanned whole, so that an escape of up to six
/// `..` would be seen.
struct Sandbox {
    tmp: tempfile::TempDir,
}

const DEPTH: &str = "1/2/3/4/5/6";

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join(DEPTH).join("victim")).unwrap();
        std::fs::write(tmp.path().join(DEPTH).join("victim/secret"), b"keep me").unwrap();
        Self { tmp }
    }

    fn base(&self) -> PathBuf {
        self.tmp.path().join(DEPTH)
    }

    fn out(&self) -> PathBuf {
        self.base().join("out")
    }

    /// Writes `tree` to `out/` and checks that nothing changed outside it and that every link
    /// written resolves inside it (or to nothing).
    fn write(&self, tree: &Tree) -> Report {
        let before = scan(self.tmp.path());
        let report = write::write(tree, &self.out()).unwrap();
        self.check_contained(&before);
        report
    }

    fn check_contained(&self, before: &BTreeSet<PathBuf>) {
        let out = self.out();
        let after = scan(self.tmp.path());
        let outside: Vec<&PathBuf> = after
            .difference(before)
            .filter(|p| !p.starts_with(&out))
            .collect();
        assert!(
            outside.is_empty(),
            "written outside the output: {outside:?}"
        );
        assert_eq!(
            std::fs::read(self.base().join("victim/secret")).unwrap(),
            b"keep me"
        );
        let root = out.canonicalize().unwrap();
        for p in after.iter().filter(|p| p.starts_with(&out)) {
            if std::fs::symlink_metadata(p).unwrap().is_symlink()
                && let Ok(real) = p.canonicalize()
            {
                assert!(real.starts_with(&root), "{p:?} resolves to {real:?}");
            }
        }
    }
}

fn file(name: &[u8], data: &'static [u8]) -> Child {
    Child::file(name, Bytes::from_static(data))
}

fn hardlink(name: &[u8], target: &[u8]) -> Child {
    Child::new(
        name,
        EntryKind::Hardlink {
            target: target.to_vec(),
        },
        Bytes::new(),
    )
}

/// The skip reason of the entry at tree path `path`.
fn skipped(tree: &Tree, report: &Report, path: &[u8]) -> Option<SkipReason> {
    let id = tree.nodes().iter().position(|n| n.path == path)?;
    report
        .skipped
        .iter()
        .find(|s| s.node == id)
        .map(|s| s.reason.clone())
}

#[test]
fn zip_slip_and_absolute_names_stay_inside() {
    let sb = Sandbox::new();
    let tree = Tree::from_children(
        b"evil.zip",
        "zip",
        &[
            file(b"../../x", b"slip"),
            file(b"../victim/secret", b"overwritten"),
            file(b"a/../../../y", b"slip"),
            file(b"/etc/x", b"absolute"),
            file(b"//abs//double", b"absolute"),
        ],
    );
    let report = sb.write(&tree);
    let out = sb.out();
    assert_eq!(std::fs::read(out.join("etc/x")).unwrap(), b"absolute");
    assert_eq!(std::fs::read(out.join("abs/double")).unwrap(), b"absolute");
    for p in [
        &b"evil.zip/../../x"[..],
        b"evil.zip/../victim/secret",
        b"evil.zip/a/../../../y",
    ] {
        assert_eq!(skipped(&tree, &report, p), Some(SkipReason::DotDot));
    }
    assert_eq!(report.files(), 2);
}

#[test]
fn symlinks_out_are_dropped_and_files_never_go_through_links() {
    let sb = Sandbox::new();
    let tree = Tree::from_children(
        b"evil.tar",
        "tar",
        &[
            Child::symlink(b"root", b"/"),
            Child::symlink(b"up", b"../../.."),
            Child::symlink(b"victim", b"../victim"),
            file(b"victim/secret", b"through the link"),
            Child::symlink(b"link", b"/etc"),
            file(b"link/passwd", b"through the link"),
            Child::symlink(b"chain", b"root/.."),
        ],
    );
    let report = sb.write(&tree);
    let out = sb.out();
    // `/` is the archive's root, which is the output folder.
    assert_eq!(
        std::fs::read_link(out.join("root")).unwrap(),
        Path::new(".")
    );
    assert!(!out.join("up").exists());
    assert!(matches!(
        skipped(&tree, &report, b"evil.tar/up"),
        Some(SkipReason::SymlinkEscapes { .. })
    ));
    assert!(matches!(
        skipped(&tree, &report, b"evil.tar/chain"),
        Some(SkipReason::SymlinkEscapes { .. })
    ));
    // The files landed in real folders; the links that would have held them collide.
    for (dir, f) in [("victim", "victim/secret"), ("link", "link/passwd")] {
        let meta = std::fs::symlink_metadata(out.join(dir)).unwrap();
        assert!(meta.is_dir() && !meta.is_symlink(), "{dir}");
        assert_eq!(std::fs::read(out.join(f)).unwrap(), b"through the link");
    }
    assert!(matches!(
        skipped(&tree, &report, b"evil.tar/link"),
        Some(SkipReason::Collision { .. })
    ));
    assert_eq!(report.symlinks(), 1);
}

#[test]
fn binwalk_dirtraversal_listing_as_a_tree() {
    // The entries of binwalk's `dirtraversal.tar` test vector (`tar tv`), as a tar reader lists
    // them; the archive itself is tested through the binary once the tar reader exists.
    let sb = Sandbox::new();
    let tree = Tree::from_children(
        b"dirtraversal.tar",
        "tar",
        &[
            Child::symlink(b"bar", b"/etc/passwd"),
            Child::symlink(b"foo", b"../../"),
            file(b"ls", b"\x7fELF"),
            Child::symlink(b"README2_link", b"subdir/README2.txt"),
            file(b"README.txt", b"readme\n"),
            Child::dir(b"subdir/"),
            Child::symlink(b"subdir/foo2", b"../../../../"),
            file(b"subdir/README2.txt", b"readme 2\n"),
            Child::symlink(b"subdir/README_link", b"../README.txt"),
            Child::symlink(b"subdir/bar2", b"/etc/shadow"),
            file(b"subdir/ls2", b"\x7fELF"),
        ],
    );
    let report = sb.write(&tree);
    let out = sb.out();
    let link = |p: &str| std::fs::read_link(out.join(p)).unwrap();
    assert_eq!(link("bar"), Path::new("etc/passwd"));
    assert_eq!(link("subdir/bar2"), Path::new("../etc/shadow"));
    assert_eq!(link("README2_link"), Path::new("subdir/README2.txt"));
    assert_eq!(
        std::fs::read(out.join("subdir/README_link")).unwrap(),
        b"readme\n"
    );
    for p in ["foo", "subdir/foo2"] {
        assert!(std::fs::symlink_metadata(out.join(p)).is_err(), "{p}");
    }
    assert_eq!(report.skipped.len(), 2);
    assert_eq!(report.files(), 4);
    assert_eq!(report.dirs(), 1);
}

#[test]
fn hard_links_are_copies_of_files_inside() {
    let sb = Sandbox::new();
    let tree = Tree::from_children(
        b"links.tar",
        "tar",
        &[
            file(b"bin/busybox", b"BUSYBOX"),
            hardlink(b"bin/ls", b"bin/busybox"),
            hardlink(b"passwd", b"/etc/passwd"),
            hardlink(b"secret", b"../victim/secret"),
        ],
    );
    let report = sb.write(&tree);
    let out = sb.out();
    assert_eq!(std::fs::read(out.join("bin/ls")).unwrap(), b"BUSYBOX");
    assert!(
        !std::fs::symlink_metadata(out.join("bin/ls"))
            .unwrap()
            .is_symlink()
    );
    for p in [&b"links.tar/passwd"[..], b"links.tar/secret"] {
        assert!(matches!(
            skipped(&tree, &report, p),
            Some(SkipReason::HardlinkTarget { .. })
        ));
    }
    assert!(!out.join("passwd").exists() && !out.join("secret").exists());
}

#[test]
fn device_nodes_are_skipped_and_reported() {
    let sb = Sandbox::new();
    let tree = Tree::from_children(
        b"rootfs.cpio",
        "cpio",
        &[
            Child::dir(b"dev"),
            Child::new(b"dev/console", EntryKind::Device, Bytes::new()).with_mode(0o20600),
            Child::new(b"dev/initctl", EntryKind::Device, Bytes::new()).with_mode(0o10600),
        ],
    );
    let report = sb.write(&tree);
    assert!(sb.out().join("dev").is_dir());
    assert_eq!(std::fs::read_dir(sb.out().join("dev")).unwrap().count(), 0);
    assert_eq!(
        report
            .skipped
            .iter()
            .filter(|s| s.reason == SkipReason::Device)
            .count(),
        2
    );
}

#[test]
fn odd_names_keep_their_bytes_and_nul_is_escaped() {
    let sb = Sandbox::new();
    let tree = Tree::from_children(
        b"names.tar",
        "tar",
        &[
            file(b"nul\0name", b"1"),
            file(b"new\nline", b"2"),
            file(b"latin1-\xe9t\xe9", b"3"),
            file(b"%00", b"4"),
            Child::file("x".repeat(300), Bytes::from_static(b"5")),
        ],
    );
    let report = sb.write(&tree);
    let long = report.skipped.iter().find(|s| s.node == 5).unwrap();
    assert!(
        matches!(&long.reason, SkipReason::Io(e) if e.contains("too long")),
        "{:?}",
        long.reason
    );
    let out = sb.out();
    assert_eq!(std::fs::read(out.join("nul%00name")).unwrap(), b"1");
    assert_eq!(std::fs::read(out.join("new\nline")).unwrap(), b"2");
    let latin1 = out.join(OsStr::from_bytes(b"latin1-\xe9t\xe9"));
    assert_eq!(std::fs::read(latin1).unwrap(), b"3");
    assert_eq!(std::fs::read(out.join("%00")).unwrap(), b"4");
    let written: BTreeSet<Vec<u8>> = report.written.iter().map(|w| w.path.clone()).collect();
    assert!(written.contains(b"latin1-\xe9t\xe9".as_slice()));
}

#[test]
fn duplicates_keep_the_first_and_report_the_rest() {
    let sb = Sandbox::new();
    let tree = Tree::from_children(
        b"dups.zip",
        "zip",
        &[
            file(b"config", b"first"),
            file(b"config", b"second"),
            file(b"./config", b"third"),
            Child::dir(b"config"),
            Child::symlink(b"config", b"/etc/shadow"),
        ],
    );
    let report = sb.write(&tree);
    assert_eq!(std::fs::read(sb.out().join("config")).unwrap(), b"first");
    let collisions = report
        .skipped
        .iter()
        .filter(|s| matches!(&s.reason, SkipReason::Collision { other, .. } if other == b"config"))
        .count();
    assert_eq!(collisions, 4);
}

#[test]
fn output_folder_must_be_empty() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.out()).unwrap();
    std::fs::write(sb.out().join("old"), b"x").unwrap();
    let tree = Tree::from_children(b"a.tar", "tar", &[file(b"old", b"new")]);
    let err = write::write(&tree, &sb.out()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(std::fs::read(sb.out().join("old")).unwrap(), b"x");
}

/// A uImage around a gzip of `hello.txt`: `rootfs` is a file and a container.
fn nested_image(dir: &Path) -> PathBuf {
    use std::io::Write;
    let mut gz = flate2::GzBuilder::new()
        .filename("hello.txt")
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(b"hello firmware\n").unwrap();
    let payload = gz.finish().unwrap();
    let img = fwsim::unpack::formats::uimage::build("rootfs", 5, 2, 7, 0, &payload);
    let path = dir.join("img.bin");
    std::fs::write(&path, img).unwrap();
    path
}

#[test]
fn cli_out_writes_containers_as_file_plus_extracted_folder() {
    let sb = Sandbox::new();
    let img = nested_image(&sb.base());
    let before = scan(sb.tmp.path());
    let out = sb.out();
    let run = common::fwsim(&[
        "unpack",
        "--out",
        out.to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{run:?}");
    sb.check_contained(&before);
    let payload = std::fs::read(&img).unwrap()[64..].to_vec();
    assert_eq!(std::fs::read(out.join("rootfs")).unwrap(), payload);
    assert_eq!(
        std::fs::read(out.join("rootfs.extracted/hello.txt")).unwrap(),
        b"hello firmware\n"
    );
    // Without --json, stdout stays empty; the summary goes to stderr, with no progress drawing
    // (stderr is not a terminal here).
    assert!(run.stdout.is_empty());
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(
        stderr.starts_with("wrote 2 files (") && stderr.contains("0 entries not written"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
}

#[test]
fn cli_out_with_json_still_lists_and_says_where_each_entry_went() {
    let sb = Sandbox::new();
    let img = nested_image(&sb.base());
    let out = sb.out();
    let entries = common::unpack_json(&img, &["--out", out.to_str().unwrap()]);
    let by_path = |p: &str| entries.iter().find(|e| e["path"] == p).unwrap();
    assert_eq!(by_path("img.bin/rootfs")["out"], "rootfs");
    assert_eq!(
        by_path("img.bin/rootfs/hello.txt")["out"],
        "rootfs.extracted/hello.txt"
    );
    assert!(by_path("img.bin").get("out").is_none());
}

#[test]
fn cli_refuses_a_non_empty_output_folder() {
    let sb = Sandbox::new();
    let img = nested_image(&sb.base());
    std::fs::create_dir(sb.out()).unwrap();
    std::fs::write(sb.out().join("rootfs"), b"precious").unwrap();
    let run = common::fwsim(&[
        "unpack",
        "--out",
        sb.out().to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stderr).contains("not empty"));
    assert_eq!(std::fs::read(sb.out().join("rootfs")).unwrap(), b"precious");
}

#[test]
fn written_kinds_match_the_tree() {
    let sb = Sandbox::new();
    let tree = Tree::from_children(
        b"fs.img",
        "squashfs",
        &[
            Child::dir(b"bin"),
            file(b"bin/busybox", b"BB"),
            Child::symlink(b"bin/sh", b"/bin/busybox"),
        ],
    );
    let report = sb.write(&tree);
    let kinds: Vec<&WrittenKind> = report.written.iter().map(|w| &w.kind).collect();
    assert_eq!(
        kinds,
        [
            &WrittenKind::Dir,
            &WrittenKind::File { bytes: 2 },
            &WrittenKind::Symlink {
                target: b"busybox".to_vec()
            }
        ]
    );
    assert_eq!(std::fs::read(sb.out().join("bin/sh")).unwrap(), b"BB");
}

/// Runs `fwsim unpack --json --out` on `image` inside the sandbox, checks that nothing landed
/// outside the output folder, and returns the JSON entries.
fn unpack_out(sb: &Sandbox, image: &Path) -> Vec<serde_json::Value> {
    let before = scan(sb.tmp.path());
    let entries = common::unpack_json(image, &["--out", sb.out().to_str().unwrap()]);
    sb.check_contained(&before);
    entries
}

fn entry<'e>(entries: &'e [serde_json::Value], path: &str) -> &'e serde_json::Value {
    entries
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("{path} not listed"))
}

fn not_written(entries: &[serde_json::Value], path: &str) -> String {
    entry(entries, path)["not_written"]
        .as_str()
        .unwrap_or_else(|| panic!("{path} was written"))
        .to_owned()
}

#[test]
fn binwalk_dirtraversal_tar_writes_nothing_outside() {
    let Some(tar) =
        common::sample("ReFirmLabs__binwalk/testing/tests/input-vectors/dirtraversal.tar")
    else {
        return;
    };
    let sb = Sandbox::new();
    let entries = unpack_out(&sb, &tar);
    let out = sb.out();
    let link = |p: &str| std::fs::read_link(out.join(p)).unwrap();
    // Absolute targets point into the archive's root, which is the output folder.
    assert_eq!(link("bar"), Path::new("etc/passwd"));
    assert_eq!(link("subdir/bar2"), Path::new("../etc/shadow"));
    assert_eq!(link("subdir/README_link"), Path::new("../README.txt"));
    assert_eq!(
        std::fs::read(out.join("README2_link")).unwrap(),
        std::fs::read(out.join("subdir/README2.txt")).unwrap()
    );
    for p in ["foo", "subdir/foo2"] {
        assert!(std::fs::symlink_metadata(out.join(p)).is_err(), "{p}");
        let why = not_written(&entries, &format!("dirtraversal.tar/{p}"));
        assert!(why.contains("would leave the output folder"), "{why}");
    }
    assert_eq!(std::fs::metadata(out.join("ls")).unwrap().len(), 133_792);
    assert_eq!(
        std::fs::metadata(out.join("subdir/ls2")).unwrap().len(),
        133_792
    );
}

/// A tar with every trick, written with raw headers.
fn hostile_tar(dir: &Path) -> PathBuf {
    use common::rawtar::member;
    let tar = common::rawtar::archive(&[
        member(b"../../x", b'0', b"", b"slip"),
        member(b"a/../../../y", b'0', b"", b"slip"),
        member(b"/etc/x", b'0', b"", b"absolute"),
        member(b"link", b'2', b"/", b""),
        member(b"link/etc/passwd", b'0', b"", b"through link"),
        member(b"up", b'2', b"../../..", b""),
        member(b"up/evil", b'0', b"", b"through up"),
        member(b"victim", b'2', b"../victim", b""),
        member(b"victim/secret", b'0', b"", b"owned"),
        member(b"hl_abs", b'1', b"/etc/passwd", b""),
        member(b"hl_up", b'1', b"../victim/secret", b""),
        member(b"hl_ok", b'1', b"etc/x", b""),
        member(b"dev/console", b'3', b"", b""),
        member(b"dev/initctl", b'6', b"", b""),
        member(b"new\nline", b'0', b"", b"newline"),
        member(b"bytes-\xff\xfe", b'0', b"", b"not utf-8"),
        member(b"dup", b'0', b"", b"first"),
        member(b"dup", b'0', b"", b"second"),
        member(b"odd_link", b'2', b"target-\xff", b""),
    ]);
    let path = dir.join("hostile.tar");
    std::fs::write(&path, tar).unwrap();
    path
}

#[test]
fn hostile_tar_writes_nothing_outside_and_the_right_things_inside() {
    let sb = Sandbox::new();
    let tar = hostile_tar(&sb.base());
    let entries = unpack_out(&sb, &tar);
    let out = sb.out();
    let read = |p: &str| std::fs::read(out.join(p)).unwrap();
    for p in ["../../x", "a/../../../y"] {
        let why = not_written(&entries, &format!("hostile.tar/{p}"));
        assert!(why.contains(".."), "{why}");
    }
    assert_eq!(read("etc/x"), b"absolute");
    // Files named through a link land in real folders; the links collide.
    assert_eq!(read("link/etc/passwd"), b"through link");
    assert_eq!(read("up/evil"), b"through up");
    assert_eq!(read("victim/secret"), b"owned");
    for p in ["link", "up", "victim"] {
        assert!(!std::fs::symlink_metadata(out.join(p)).unwrap().is_symlink());
        assert!(not_written(&entries, &format!("hostile.tar/{p}")).contains("collides"));
    }
    assert_eq!(read("hl_ok"), b"absolute");
    for p in ["hl_abs", "hl_up"] {
        assert!(not_written(&entries, &format!("hostile.tar/{p}")).contains("hard link"));
        assert!(!out.join(p).exists());
    }
    for p in ["dev/console", "dev/initctl"] {
        assert!(not_written(&entries, &format!("hostile.tar/{p}")).contains("device"));
        assert!(std::fs::symlink_metadata(out.join(p)).is_err());
    }
    assert_eq!(read("new\nline"), b"newline");
    let odd = entries
        .iter()
        .find(|e| e["path_bytes"].is_string())
        .expect("non-UTF-8 name listed with path_bytes");
    assert_eq!(odd["out"], "bytes-\u{fffd}\u{fffd}");
    assert_eq!(
        std::fs::read(out.join(OsStr::from_bytes(b"bytes-\xff\xfe"))).unwrap(),
        b"not utf-8"
    );
    let odd_link = entry(&entries, "hostile.tar/odd_link");
    assert_eq!(odd_link["target_bytes"], "dGFyZ2V0Lf8=");
    assert_eq!(
        std::fs::read_link(out.join("odd_link"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"target-\xff"
    );
    assert_eq!(read("dup"), b"first");
    let dups: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["path"] == "hostile.tar/dup")
        .collect();
    assert_eq!(dups.len(), 2);
    assert!(
        dups[1]["not_written"]
            .as_str()
            .unwrap()
            .contains("collides")
    );
}

#[test]
fn hostile_zip_writes_nothing_outside_and_the_right_things_inside() {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    let sb = Sandbox::new();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default();
    for (name, data) in [
        ("../../zipslip", &b"slip"[..]),
        ("/abs/zip", b"absolute"),
        ("nul\0name", b"nul"),
        ("ok/file", b"fine"),
    ] {
        w.start_file(name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.add_symlink("escape", "../../../", opts).unwrap();
    w.add_symlink("inside", "ok/file", opts).unwrap();
    w.add_symlink("root", "/ok", opts).unwrap();
    let zip = w.finish().unwrap().into_inner();
    let path = sb.base().join("evil.zip");
    std::fs::write(&path, zip).unwrap();

    let entries = unpack_out(&sb, &path);
    let out = sb.out();
    assert!(not_written(&entries, "evil.zip/../../zipslip").contains(".."));
    assert_eq!(std::fs::read(out.join("abs/zip")).unwrap(), b"absolute");
    assert_eq!(std::fs::read(out.join("nul%00name")).unwrap(), b"nul");
    assert!(not_written(&entries, "evil.zip/escape").contains("would leave"));
    assert_eq!(std::fs::read(out.join("inside")).unwrap(), b"fine");
    assert_eq!(
        std::fs::read_link(out.join("root")).unwrap(),
        Path::new("ok")
    );
}

/// Every real sample: written under a fresh folder, nothing lands outside it, every written file
/// holds exactly the bytes the listing's SHA-256 names, and every link resolves inside.
#[test]
fn slow_every_real_sample_writes_inside_and_matches_the_listing() {
    use sha2::Digest;
    let Some(root) = common::realdata() else {
        return;
    };
    let sources = std::fs::read_to_string(root.join("SOURCES.tsv")).unwrap();
    let sb = Sandbox::new();
    let mut files = 0usize;
    for line in sources.lines().skip(1) {
        let rel = line.split('\t').next().unwrap();
        let image = root.join(rel);
        let data = fwsim::input::open(&image).unwrap();
        let name = image.file_name().unwrap().as_encoded_bytes().to_vec();
        let tree = fwsim::unpack::unpack(data, &name, &fwsim::unpack::Limits::default());
        let report = sb.write(&tree);
        for w in &report.written {
            let path = sb.out().join(OsStr::from_bytes(&w.path));
            match &w.kind {
                WrittenKind::File { .. } | WrittenKind::HardlinkCopy { .. } => {
                    let of = match w.kind {
                        WrittenKind::HardlinkCopy { of, .. } => of,
                        _ => w.node,
                    };
                    let node = tree.get(of).unwrap();
                    let on_disk: [u8; 32] =
                        sha2::Sha256::digest(std::fs::read(&path).unwrap()).into();
                    let listed = node
                        .sha256
                        .unwrap_or_else(|| sha2::Sha256::digest(&node.data).into());
                    assert_eq!(on_disk, listed, "{rel}: {}", path.display());
                    files += 1;
                }
                WrittenKind::Dir => assert!(path.is_dir(), "{rel}: {}", path.display()),
                WrittenKind::Symlink { target } => {
                    assert_eq!(
                        std::fs::read_link(&path).unwrap().as_os_str().as_bytes(),
                        target
                    );
                }
            }
        }
        std::fs::remove_dir_all(sb.out()).unwrap();
    }
    assert!(files > 0);
}

#[test]
fn absolute_links_in_a_nested_filesystem_point_into_its_extracted_folder() {
    use common::rawtar::member;
    let sb = Sandbox::new();
    let rootfs = common::rawtar::archive(&[
        member(b"bin/", b'5', b"", b""),
        member(b"bin/busybox", b'0', b"", b"BUSYBOX"),
        member(b"bin/sh", b'2', b"/bin/busybox", b""),
        member(b"lib", b'2', b"/", b""),
        member(b"clamped", b'2', b"/../../../bin/sh", b""),
        member(b"to_image_root", b'2', b"../", b""),
        member(b"out_of_image", b'2', b"../../", b""),
    ]);
    let img = fwsim::unpack::formats::uimage::build("rootfs", 5, 2, 5, 0, &rootfs);
    let path = sb.base().join("cam.bin");
    std::fs::write(&path, img).unwrap();
    let entries = unpack_out(&sb, &path);
    let out = sb.out();
    let link = |p: &str| std::fs::read_link(out.join("rootfs.extracted").join(p)).unwrap();
    assert_eq!(link("bin/sh"), Path::new("busybox"));
    assert_eq!(link("lib"), Path::new("."));
    assert_eq!(link("clamped"), Path::new("bin/sh"));
    assert_eq!(
        std::fs::read(out.join("rootfs.extracted/clamped")).unwrap(),
        b"BUSYBOX"
    );
    // Relative targets are kept while they stay inside the output folder.
    assert_eq!(link("to_image_root"), Path::new("../"));
    assert!(not_written(&entries, "cam.bin/rootfs/out_of_image").contains("would leave"));
    assert_eq!(std::fs::read(out.join("rootfs")).unwrap(), rootfs);
}

/// Runs `fwsim ARGS` under a pseudo-terminal (util-linux `script`) and returns what it drew.
fn on_a_terminal(args: &str) -> String {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_fwsim"));
    let run = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    String::from_utf8_lossy(&run.stdout).into_owned()
}

#[test]
fn progress_is_drawn_on_a_terminal_unless_quiet() {
    if !common::tool("script") {
        return;
    }
    let sb = Sandbox::new();
    let img = nested_image(&sb.base());
    let out = sb.out();
    let drawn = on_a_terminal(&format!("unpack --out {} {}", out.display(), img.display()));
    assert!(
        drawn.contains("unpacking") && drawn.contains("writing"),
        "{drawn:?}"
    );
    assert!(drawn.contains("wrote 2 files"), "{drawn:?}");
    std::fs::remove_dir_all(&out).unwrap();
    let quiet = on_a_terminal(&format!(
        "unpack --quiet --out {} {}",
        out.display(),
        img.display()
    ));
    assert!(quiet.contains("wrote 2 files"), "{quiet:?}");
    assert!(
        !quiet.contains("unpacking") && !quiet.contains('\x1b'),
        "{quiet:?}"
    );
}

#[test]
fn hostile_initramfs_cpio_writes_nothing_outside() {
    use common::archives::{CpioEntry, CpioKind, cpio};
    let e = |name: &[u8], mode: u32, data: &[u8], ino: u32, nlink: u32| CpioEntry {
        name: name.to_vec(),
        mode,
        data: data.to_vec(),
        ino,
        nlink,
    };
    let sb = Sandbox::new();
    let archive = cpio(
        CpioKind::Newc,
        &[
            e(b"bin", 0o040_755, b"", 1, 2),
            // newc hard links: the data sits with the last link; the first becomes a link to it.
            e(b"bin/ls", 0o100_755, b"", 2, 2),
            e(b"bin/busybox", 0o104_755, b"BUSYBOX", 2, 2),
            e(b"bin/sh", 0o120_777, b"/bin/busybox", 3, 1),
            e(b"dev/console", 0o020_600, b"", 4, 1),
            e(b"dev/null", 0o020_666, b"", 5, 1),
            e(b"run/initctl", 0o010_600, b"", 6, 1),
            e(b"../../../evil", 0o100_644, b"slip", 7, 1),
            e(b"lib", 0o120_777, b"../../../../", 8, 1),
            e(b"lib/libc.so", 0o100_644, b"through lib", 9, 1),
        ],
    );
    let path = sb.base().join("initramfs.cpio");
    std::fs::write(&path, archive).unwrap();
    let entries = unpack_out(&sb, &path);
    let out = sb.out();
    assert_eq!(std::fs::read(out.join("bin/ls")).unwrap(), b"BUSYBOX");
    assert_eq!(
        std::fs::read_link(out.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    for p in ["dev/console", "dev/null", "run/initctl"] {
        assert!(not_written(&entries, &format!("initramfs.cpio/{p}")).contains("device"));
        assert!(std::fs::symlink_metadata(out.join(p)).is_err());
    }
    assert!(not_written(&entries, "initramfs.cpio/../../../evil").contains(".."));
    assert_eq!(
        std::fs::read(out.join("lib/libc.so")).unwrap(),
        b"through lib"
    );
    assert!(
        !std::fs::symlink_metadata(out.join("lib"))
            .unwrap()
            .is_symlink()
    );
    // Executable bits survive; setuid (busybox is 4755 here) does not.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("bin/busybox"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o7100, 0o100);
}

/// xorshift64*: a small deterministic generator, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A path of 1-4 components from `parts`, absolute one time in four.
    fn path(&mut self, parts: &[&[u8]]) -> Vec<u8> {
        let mut p = Vec::new();
        if self.below(4) == 0 {
            p.push(b'/');
        }
        let n = 1 + self.below(4);
        for i in 0..n {
            if i > 0 {
                p.push(b'/');
            }
            p.extend_from_slice(parts[self.below(parts.len() as u64) as usize]);
        }
        p
    }

    /// An entry name: a few names (so that entries meet), rarely `.`, `..` or empty.
    fn name(&mut self) -> Vec<u8> {
        const PARTS: &[&[u8]] = &[
            b"a", b"b", b"c", b"a", b"b", b"c", b"A", b"a", b"b", b"c", b"a", b"b", b"c", b"..",
            b".", b"",
        ];
        self.path(PARTS)
    }

    /// A link target: the same names, with `.`, `..` and empty components often.
    fn target(&mut self) -> Vec<u8> {
        const PARTS: &[&[u8]] = &[b"a", b"b", b"c", b"A", b"..", b"..", b".", b""];
        self.path(PARTS)
    }
}

#[test]
fn random_trees_never_lead_outside() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let n = 1 + rng.below(24);
        let children: Vec<Child> = (0..n)
            .map(|_| {
                let name = rng.name();
                match rng.below(6) {
                    0 => Child::dir(name),
                    1..=3 => Child::symlink(name, rng.target()),
                    4 => hardlink(&name, &rng.name()),
                    _ => file(&name, b"data"),
                }
            })
            .collect();
        let tree = Tree::from_children(b"random.tar", "tar", &children);
        let sb = Sandbox::new();
        let before = scan(sb.tmp.path());
        let report = write::write(&tree, &sb.out()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        sb.check_contained(&before);
        // Every entry is written or skipped, except directory entries that name the container's
        // own folder (`/`, `.`).
        let own_folder = tree
            .nodes()
            .iter()
            .filter(|n| n.path == b"random.tar/." && n.kind == EntryKind::Dir)
            .count();
        assert_eq!(
            report.written.len() + report.skipped.len(),
            tree.nodes().len() - 1 - own_folder,
            "seed {seed}: every entry is accounted for"
        );
    }
}

#[test]
fn case_variants_links_and_odd_zip_names_stay_inside() {
    use common::archives::{RawEntry, RawZip};
    use common::rawtar::member;
    let sb = Sandbox::new();
    // Names equal but for case, one of them a link out, one a link in, files through each.
    let tar = common::rawtar::archive(&[
        member(b"Etc", b'2', b"../victim", b""),
        member(b"etc/passwd", b'0', b"", b"lower"),
        member(b"ETC/passwd", b'0', b"", b"upper"),
        member(b"Etc/secret", b'0', b"", b"through the link out"),
        member(b"lib", b'5', b"", b""),
        member(b"LIB", b'2', b"lib", b""),
        member(b"LIB/x", b'0', b"", b"through the link in"),
    ]);
    // Zip names may hold any byte: NUL, newline, invalid UTF-8, a backslash climb. (The first
    // is plain: carving takes a zip whose first name holds control bytes for noise.)
    let entry = |name: &[u8], data: &[u8]| {
        let mut e = RawEntry::new("x", 0, data, data.to_vec());
        e.name = name.to_vec();
        e
    };
    let zip = RawZip {
        entries: vec![
            entry(b"plain.txt", b"0"),
            entry(b"nul\0zip", b"1"),
            entry(b"new\nzip", b"2"),
            entry(b"bytes-\xff\xfe.zip", b"3"),
            entry(b"..\\..\\win", b"4"),
        ],
        aliases_of_first: 0,
        comment: Vec::new(),
    }
    .build();
    let mut image = tar;
    image.truncate(image.len() - 1024); // drop the end marker: the zip follows the members
    image.extend_from_slice(&common::rawtar::member(b"names.zip", b'0', b"", &zip));
    image.extend_from_slice(&[0u8; 1024]);
    let path = sb.tmp.path().join("case.tar");
    std::fs::write(&path, image).unwrap();
    let entries = unpack_out(&sb, &path);
    let out = sb.out();
    let read = |p: &[u8]| std::fs::read(out.join(OsStr::from_bytes(p))).unwrap();
    // This folder tells case apart: every variant is its own name, none goes through a link.
    assert_eq!(read(b"etc/passwd"), b"lower");
    assert_eq!(read(b"ETC/passwd"), b"upper");
    assert_eq!(read(b"Etc/secret"), b"through the link out");
    assert!(
        !std::fs::symlink_metadata(out.join("Etc"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(read(b"LIB/x"), b"through the link in");
    assert!(
        !std::fs::symlink_metadata(out.join("LIB"))
            .unwrap()
            .is_symlink()
    );
    assert!(not_written(&entries, "case.tar/LIB").contains("collides"));
    // Inside the zip (written as a folder beside the archive file).
    let nul_out = entries
        .iter()
        .find(|e| e["path"] == "case.tar/names.zip/nul\u{0}zip")
        .map(|e| e["out"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| {
            let paths: Vec<_> = entries
                .iter()
                .map(|e| (&e["path"], &e["out"], &e["not_written"]))
                .collect();
            panic!("the NUL name not listed: {paths:?}")
        });
    assert!(!nul_out.contains('\0'), "{nul_out}");
    assert_eq!(std::fs::read(out.join(&nul_out)).unwrap(), b"1");
    let parent = Path::new(&nul_out).parent().unwrap().to_path_buf();
    assert_eq!(
        std::fs::read(out.join(&parent).join("new\nzip")).unwrap(),
        b"2"
    );
    assert_eq!(
        std::fs::read(
            out.join(&parent)
                .join(OsStr::from_bytes(b"bytes-\xff\xfe.zip"))
        )
        .unwrap(),
        b"3"
    );
    // On this system `\\` is no separator: the climb is one odd name, written inside.
    assert_eq!(
        std::fs::read(out.join(&parent).join("..\\..\\win")).unwrap(),
        b"4"
    );
}
