//! Hikvision upgrade packages: `digicap.dav` built in code round-trips (obfuscated and plain
//! headers, both entry field orders, each rule that decides the order) and agree with hiktools'
//! reading, the real DS-K2602 package unpacks to what its header lists (decoded independently
//! here), and lying headers and tables give clear errors without panics.

use bytes::Bytes;
use fwsim::synth::hikvision::{Package, PackageFile};
use fwsim::synth::{Firmware, Options};
use fwsim::unpack::formats::hikvision::{FieldOrder, HeaderForm, Hikvision};
use fwsim::unpack::{Budget, Ctx, Format, Limits, Node, Tree, UnpackError, unpack};
use serde_json::json;

use crate::common;

/// The public key, written out here rather than taken from the code under test.
const KEY: [u8; 16] = [
    0xBA, 0xCD, 0xBC, 0xFE, 0xD6, 0xCA, 0xDD, 0xD3, 0xBA, 0xB9, 0xA3, 0xAB, 0xBF, 0xCB, 0xB5, 0xBE,
];

/// Decodes an obfuscated header the way hiktools documents it.
fn hiktools_decode(raw: &[u8]) -> Vec<u8> {
    raw.iter()
        .enumerate()
        .map(|(i, b)| b ^ KEY[(i + (i >> 4)) & 0xF])
        .collect()
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// A table entry as decoded independently: (name, first field, second field, checksum).
fn entries(header: &[u8]) -> Vec<(String, u32, u32, u32)> {
    let count = le32(header, 12) as usize;
    (0..count)
        .map(|i| {
            let e = &header[64 + 44 * i..64 + 44 * (i + 1)];
            let name = e[..32].split(|&b| b == 0).next().unwrap();
            (
                String::from_utf8(name.to_vec()).unwrap(),
                le32(e, 32),
                le32(e, 36),
                le32(e, 40),
            )
        })
        .collect()
}

fn sum(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |a, &b| a.wrapping_add(u32::from(b)))
}

fn children(tree: &Tree, id: usize) -> Vec<&Node> {
    tree.nodes()[id]
        .children
        .iter()
        .map(|&c| tree.get(c).unwrap())
        .collect()
}

fn name_of(n: &Node) -> String {
    String::from_utf8_lossy(n.path.rsplit(|&b| b == b'/').next().unwrap()).into_owned()
}

fn files() -> Vec<PackageFile> {
    vec![
        PackageFile::new("_cfgUpgClass", b"[upgrade]\nversion=V5.4.5\n".to_vec()),
        PackageFile::new(
            "uImage",
            (0..5000u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>(),
        ),
        PackageFile::new("hroot.img", vec![0x5Au8; 3000]),
    ]
}

/// Unpacks with the format directly (no engine), for header-level errors.
fn direct(data: &[u8]) -> Result<fwsim::unpack::Unpacked, UnpackError> {
    let budget = Budget::new(Limits::default());
    Hikvision.unpack(&Bytes::copy_from_slice(data), &Ctx::new(&budget))
}

#[test]
fn camera_digicap_round_trips_with_decoded_header() {
    let fw = Firmware::camera(&Options::tiny()).unwrap();
    let input = fw.hikvision_files().unwrap();
    let dav = fw.hikvision_dav().unwrap();

    // The header, decoded independently, says what the writer was asked to write.
    assert_ne!(&dav[..4], b"SWKH", "the header is obfuscated");
    let header = hiktools_decode(&dav[..64 + 44 * input.len()]);
    assert_eq!(&header[..4], b"SWKH");
    assert_eq!(le32(&header, 8) as usize, 64 + 44 * input.len());
    assert_eq!(le32(&header, 12) as usize, input.len());
    assert_eq!(le32(&header, 4), sum(&header[12..]), "header checksum");
    let table = entries(&header);
    let mut offset = 64 + 44 * input.len() as u32;
    for ((name, first, second, checksum), f) in table.iter().zip(&input) {
        assert_eq!(name, &f.name);
        assert_eq!((*first, *second), (offset, f.data.len() as u32));
        assert_eq!(*checksum, sum(&f.data));
        offset += f.data.len() as u32;
    }
    assert_eq!(offset as usize, dav.len());

    let tree = unpack(Bytes::from(dav), b"digicap.dav", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("hikvision"));
    assert!(root.error.is_none(), "{:?}", root.error);
    let m = &root.format_meta;
    assert_eq!(m["header_form"], "xor");
    assert_eq!(m["magic"], "SWKH");
    assert_eq!(m["header_checksum_ok"], true);
    assert_eq!(m["file_count"], 4);
    assert_eq!(m["language"], 1);
    assert_eq!(m["language_name"], "english");
    assert_eq!(m["oem_code"], 1);
    assert_eq!(m["device_class"], 2);
    assert_eq!(m["version"], "0x05040005");
    assert_eq!(m["files_checksum_ok"], true);
    assert_eq!(m["field_orders"], json!(["offset_length"]));

    let kids = children(&tree, 0);
    let names: Vec<String> = kids.iter().map(|n| name_of(n)).collect();
    assert_eq!(names, ["_cfgUpgClass", "uImage", "hroot.img", "app.img"]);
    for (n, f) in kids.iter().zip(&input) {
        assert_eq!(&n.data[..], &f.data[..], "{}", f.name);
        assert_eq!(n.meta["checksum_ok"], true);
        assert_eq!(n.meta["field_order"], "offset_length");
    }
    // The files are unpacked in turn: the kernel uImage and the squashfs root filesystem.
    assert_eq!(
        tree.find("digicap.dav/uImage").unwrap().format,
        Some("uimage")
    );
    let hroot = tree.find("digicap.dav/hroot.img").unwrap();
    assert_eq!(hroot.format, Some("squashfs"));
    let rootfs = fw
        .partition("romfs-x.squashfs.img")
        .unwrap()
        .rootfs()
        .unwrap();
    let mut checked = 0;
    for (path, data) in rootfs.files().take(20) {
        let node = tree
            .find(&format!("digicap.dav/hroot.img/{path}"))
            .unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(&node.data[..], data, "{path}");
        checked += 1;
    }
    assert!(checked >= 5, "{checked}");
}

#[test]
fn length_offset_tables_round_trip() {
    let mut p = Package::digicap(files());
    p.order = FieldOrder::LengthOffset;
    let dav = p.build().unwrap();
    let header = hiktools_decode(&dav[..64 + 44 * 3]);
    let (_, first, second, _) = entries(&header)[0].clone();
    let len = files()[0].data.len() as u32;
    assert_eq!(
        (first, second),
        (len, 64 + 44 * 3),
        "length first, as hiktools reads it"
    );

    let tree = unpack(Bytes::from(dav), b"digicap.dav", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("hikvision"));
    assert_eq!(root.format_meta["field_orders"], json!(["length_offset"]));
    for (n, f) in children(&tree, 0).iter().zip(files()) {
        assert_eq!(name_of(n), f.name);
        assert_eq!(&n.data[..], &f.data[..]);
        assert_eq!(n.meta["field_order"], "length_offset");
        assert_eq!(n.meta["checksum_ok"], true);
    }
}

#[test]
fn plain_access_controller_form_round_trips() {
    let image: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let bin = Package::access_controller(vec![PackageFile::new("", image.clone())])
        .build()
        .unwrap();
    assert_eq!(&bin[..4], b"SWKH");
    assert_eq!(le32(&bin, 8), 64, "the header length leaves the table out");
    assert_eq!(le32(&bin, 4), 0, "header checksum unset");
    let tree = unpack(Bytes::from(bin), b"acs.bin", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("hikvision"));
    let m = &root.format_meta;
    assert_eq!(m["header_form"], "plain");
    assert_eq!(m["header_length_covers_table"], false);
    assert_eq!(m["header_checksum_unset"], true);
    assert_eq!(m["device_class"], 0x352);
    let kid = &children(&tree, 0)[0];
    assert_eq!(name_of(kid), "0", "an unnamed file is named by its index");
    assert_eq!(kid.meta["listed_name"], "");
    assert_eq!(kid.origin.as_ref().unwrap().offset, Some(108));
    assert_eq!(&kid.data[..], &image[..]);
    assert_eq!(kid.meta["checksum_ok"], true);
}

/// A one-file plain package whose entry fits the package in both field orders: the file sits right
/// after the table (108) and is at least 108 bytes long, so (offset, length) and (length, offset)
/// both end exactly at the end.
fn both_orders_fit(order: FieldOrder, good_checksum: bool, gap: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..4000u32).map(|i| (i * 13 % 256) as u8).collect();
    let mut p = Package::access_controller(vec![PackageFile::new("firmware", body)]);
    p.order = order;
    let mut bin = p.build().unwrap();
    if gap > 0 {
        // Move the file `gap` bytes further, shortening it so it still ends at the end.
        let (o, l) = (108 + gap as u32, 4000 - gap as u32);
        bin.splice(108..108, vec![0u8; gap]);
        bin.truncate(108 + gap + l as usize);
        let (a, b) = match order {
            FieldOrder::OffsetLength => (o, l),
            FieldOrder::LengthOffset => (l, o),
        };
        bin[96..100].copy_from_slice(&a.to_le_bytes());
        bin[100..104].copy_from_slice(&b.to_le_bytes());
    }
    if !good_checksum {
        bin[104..108].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    }
    bin
}

#[test]
fn the_checksum_decides_when_both_orders_fit() {
    for order in [FieldOrder::OffsetLength, FieldOrder::LengthOffset] {
        let bin = both_orders_fit(order, true, 0);
        let tree = unpack(Bytes::from(bin.clone()), b"p.bin", &Limits::default());
        let kid = &children(&tree, 0)[0];
        assert_eq!(kid.meta["field_order"], order.name(), "{order:?}");
        assert_eq!(kid.meta["field_order_basis"], "checksum");
        assert_eq!(&kid.data[..], &bin[108..]);
    }
}

#[test]
fn the_layout_decides_when_no_checksum_matches() {
    for order in [FieldOrder::OffsetLength, FieldOrder::LengthOffset] {
        let bin = both_orders_fit(order, false, 0);
        let tree = unpack(Bytes::from(bin.clone()), b"p.bin", &Limits::default());
        let root = tree.root().unwrap();
        assert_eq!(root.format_meta["files_checksum_ok"], false);
        let kid = &children(&tree, 0)[0];
        assert_eq!(kid.meta["field_order"], order.name(), "{order:?}");
        assert_eq!(kid.meta["field_order_basis"], "layout");
        assert_eq!(kid.meta["checksum_ok"], false, "a bad checksum is reported");
        assert_eq!(kid.meta["checksum"], "0x12345678");
        assert_eq!(&kid.data[..], &bin[108..], "and the file still listed");
    }
}

#[test]
fn an_undecidable_entry_is_reported_not_guessed() {
    // Both orders fit, neither checksum matches, and the file does not start where the table ends.
    let bin = both_orders_fit(FieldOrder::OffsetLength, false, 200);
    let tree = unpack(Bytes::from(bin), b"p.bin", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("hikvision"));
    let err = root
        .error
        .clone()
        .expect("the package says a file is missing");
    assert!(err.to_string().contains("1 of 1 files"), "{err}");
    let kid = &children(&tree, 0)[0];
    assert!(kid.data.is_empty());
    let e = kid.error.clone().unwrap().to_string();
    assert!(e.contains("both orders") && e.contains("'firmware'"), "{e}");
}

#[test]
fn real_ds_k2602_package_unpacks_to_its_table() {
    let Some(net) = common::sample(
        "Vusal0013__Hikvision-firmwares/Firmwares/DS-K2602P/V2.0.5_190301/net/ACS_DS-K260X_GML_GM_V2.0.5_build190301_Net.bin",
    ) else {
        return;
    };
    let serial = common::sample(
        "Vusal0013__Hikvision-firmwares/Firmwares/DS-K2602P/V2.0.5_190301/serial/ACS_DS-K260X_GML_GM_V2.0.5_build190301_Serial.bin",
    )
    .unwrap();
    let bytes = std::fs::read(&net).unwrap();
    let serial = std::fs::read(&serial).unwrap();

    // What the header says, read here from the raw bytes (the plain form: no XOR).
    assert_eq!(&bytes[..4], b"SWKH");
    assert_eq!(le32(&bytes, 8), 64);
    let table = entries(&bytes[..108]);
    assert_eq!(table.len(), 1);
    let (name, offset, length, checksum) = table[0].clone();
    assert_eq!(name, "");
    assert_eq!((offset, length), (108, 726_172));
    assert_eq!(offset as usize + length as usize, bytes.len());
    // The embedded Cortex-M image carries its own big-endian header: its length and the byte sum
    // of everything after its 20 bytes, and it is byte for byte the separately published serial
    // image — the file is intact. The package's entry checksum is not that image's byte sum.
    let file = &bytes[108..];
    assert_eq!(file, &serial[..]);
    assert_eq!(u32::from_be_bytes(file[12..16].try_into().unwrap()), length);
    assert_eq!(
        u32::from_be_bytes(file[16..20].try_into().unwrap()),
        sum(&file[20..])
    );
    assert_ne!(checksum, sum(file));

    let tree = unpack(Bytes::from(bytes.clone()), b"net.bin", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("hikvision"));
    assert!(root.error.is_none(), "{:?}", root.error);
    let m = &root.format_meta;
    assert_eq!(m["header_form"], "plain");
    assert_eq!(m["file_count"], 1);
    assert_eq!(m["device_class"], 0x352);
    assert_eq!(m["oem_code"], le32(&bytes, 24));
    assert_eq!(m["language"], 0xff);
    assert_eq!(m["header_checksum_unset"], true);
    let kids = children(&tree, 0);
    assert_eq!(kids.len(), 1);
    let kid = kids[0];
    assert_eq!(kid.meta["listed_name"], name);
    assert_eq!(kid.origin.as_ref().unwrap().offset, Some(u64::from(offset)));
    assert_eq!(&kid.data[..], file);
    assert_eq!(kid.meta["field_order"], "offset_length");
    // Both readings end exactly at the end of the file and neither checksum matches: the file
    // starting where the table ends decides.
    assert_eq!(kid.meta["field_order_basis"], "layout");
    assert_eq!(kid.meta["checksum"], format!("{checksum:#010x}"));
    assert_eq!(kid.meta["checksum_ok"], false);
    // The "SWKH" strings inside the image's code are not taken for packages.
    assert!(
        tree.nodes()
            .iter()
            .skip(1)
            .all(|n| n.format != Some("hikvision")),
        "no package inside the image"
    );
}

#[test]
fn other_hikvision_samples_are_not_taken_for_packages() {
    for rel in [
        "Vusal0013__Hikvision-firmwares/Firmwares/DS-K2602P/V2.0.5_190301/serial/ACS_DS-K260X_GML_GM_V2.0.5_build190301_Serial.bin",
        "MatrixEditor__hiktools/gists/libsadp.so",
    ] {
        let Some(p) = common::sample(rel) else {
            return;
        };
        let tree = unpack(
            Bytes::from(std::fs::read(&p).unwrap()),
            b"s",
            &Limits::default(),
        );
        assert!(
            tree.nodes().iter().all(|n| n.format != Some("hikvision")),
            "{rel}"
        );
    }
}

/// A three-file digicap with its decoded header patched by `patch` (then obfuscated again).
fn patched(patch: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut dav = Package::digicap(files()).build().unwrap();
    let n = 64 + 44 * 3;
    let mut header = hiktools_decode(&dav[..n]);
    patch(&mut header);
    dav[..n].copy_from_slice(&hiktools_decode(&header));
    dav
}

fn root_error(data: Vec<u8>) -> (Tree, String) {
    let tree = unpack(Bytes::from(data), b"bad.dav", &Limits::default());
    let root = tree.root().unwrap();
    assert_eq!(root.format, Some("hikvision"));
    let e = root
        .error
        .clone()
        .expect("an error on the package")
        .to_string();
    (tree, e)
}

#[test]
fn a_huge_file_count_is_a_clear_error() {
    let (_, e) = root_error(patched(|h| {
        h[12..16].copy_from_slice(&u32::MAX.to_le_bytes())
    }));
    assert!(e.contains("file count 4294967295"), "{e}");
    // In the plain form the engine does not take it for a package; the format still says why.
    let mut plain = Package::access_controller(files()).build().unwrap();
    plain[12..16].copy_from_slice(&0x1000_0000u32.to_le_bytes());
    let tree = unpack(Bytes::from(plain.clone()), b"p", &Limits::default());
    assert_ne!(tree.root().unwrap().format, Some("hikvision"));
    let e = direct(&plain).unwrap_err();
    assert!(matches!(e, UnpackError::Truncated(_)), "{e}");
}

#[test]
fn header_length_lies_are_clear_errors() {
    // Shorter than the table, longer than the file, shorter than the fixed header.
    let (_, e) = root_error(patched(|h| h[8..12].copy_from_slice(&100u32.to_le_bytes())));
    assert!(e.contains("cuts the table of 3 entries"), "{e}");
    let (_, e) = root_error(patched(|h| {
        h[8..12].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes())
    }));
    assert!(e.contains("runs past the input"), "{e}");
    let short = patched(|h| h[8..12].copy_from_slice(&10u32.to_le_bytes()));
    let e = direct(&short).unwrap_err().to_string();
    assert!(e.contains("shorter than the fixed header"), "{e}");
}

#[test]
fn offsets_past_the_end_are_reported_per_file() {
    let dav = patched(|h| {
        // The second entry (uImage): both fields far past the end.
        let e = 64 + 44;
        h[e + 32..e + 36].copy_from_slice(&0x7FFF_0000u32.to_le_bytes());
        h[e + 36..e + 40].copy_from_slice(&0x10u32.to_le_bytes());
    });
    let (tree, e) = root_error(dav);
    assert!(e.contains("1 of 3 files could not be placed"), "{e}");
    let kids = children(&tree, 0);
    assert_eq!(kids.len(), 3);
    let bad = kids[1].error.clone().unwrap();
    assert!(matches!(bad, UnpackError::Truncated(_)), "{bad}");
    assert!(bad.to_string().contains("'uImage'"), "{bad}");
    assert!(kids[1].data.is_empty());
    assert_eq!(
        &kids[2].data[..],
        &files()[2].data[..],
        "the others are intact"
    );

    // A package cut in its last file: that file cannot be placed, the rest are listed.
    let mut cut = Package::digicap(files()).build().unwrap();
    cut.truncate(cut.len() - 100);
    let (tree, e) = root_error(cut);
    assert!(e.contains("1 of 3"), "{e}");
    assert!(children(&tree, 0)[2].error.is_some());
    assert_eq!(&children(&tree, 0)[1].data[..], &files()[1].data[..]);
}

#[test]
fn overlapping_files_are_refused() {
    let dav = patched(|h| {
        // The third entry starts inside the second file and runs to the end of the package,
        // with a checksum that matches that place, so the order is not in doubt.
        let (second, third) = (64 + 44, 64 + 88);
        let off = le32(h, second + 32) + 100;
        let dav = Package::digicap(files()).build().unwrap();
        let len = dav.len() as u32 - off;
        h[third + 32..third + 36].copy_from_slice(&off.to_le_bytes());
        h[third + 36..third + 40].copy_from_slice(&len.to_le_bytes());
        h[third + 40..third + 44].copy_from_slice(&sum(&dav[off as usize..]).to_le_bytes());
    });
    let (tree, e) = root_error(dav);
    assert!(e.contains("1 of 3"), "{e}");
    let kids = children(&tree, 0);
    let bad = kids[2].error.clone().unwrap().to_string();
    assert!(
        bad.contains("'hroot.img'") && bad.contains("overlaps file #1 'uImage'"),
        "{bad}"
    );
    assert!(kids[2].data.is_empty());
    assert_eq!(&kids[1].data[..], &files()[1].data[..]);
}

#[test]
fn every_corrupted_header_byte_gives_a_tree() {
    // Each byte of the header and table, XORed with a few patterns: never a panic, always a root.
    let dav = Package::digicap(files()).build().unwrap();
    for at in 0..64 + 44 * 3 {
        for x in [0x01u8, 0x80, 0xFF] {
            let mut bad = dav.clone();
            bad[at] ^= x;
            let tree = unpack(Bytes::from(bad), b"x", &Limits::default());
            assert!(tree.root().is_some(), "byte {at} ^ {x:#x}");
        }
    }
}

#[test]
fn the_entry_limit_stops_a_big_table() {
    let many: Vec<PackageFile> = (0..200)
        .map(|i| PackageFile::new(&format!("f{i}"), vec![i as u8; 10]))
        .collect();
    let dav = Package::digicap(many).build().unwrap();
    let limits = Limits {
        max_entries: 50,
        ..Limits::default()
    };
    let tree = unpack(Bytes::from(dav), b"many.dav", &limits);
    let e = tree.root().unwrap().error.clone().expect("limit error");
    assert!(matches!(e, UnpackError::Limit(_)), "{e}");
}

#[test]
fn obfuscated_and_plain_headers_are_told_apart() {
    let dav = Package::digicap(files()).build().unwrap();
    let plain = Package {
        form: HeaderForm::Plain,
        ..Package::digicap(files())
    }
    .build()
    .unwrap();
    assert!(Hikvision.detect(&dav) && Hikvision.detect(&plain));
    // Same tables, same files; only the header bytes differ.
    let n = 64 + 44 * 3;
    assert!(dav[n..] == plain[n..]);
    assert!(dav[..n] != plain[..n]);
    let a = direct(&dav).unwrap();
    let b = direct(&plain).unwrap();
    assert_eq!(a.meta["header_form"], "xor");
    assert_eq!(b.meta["header_form"], "plain");
    assert_eq!(a.children.len(), b.children.len());
}

#[test]
fn a_package_inside_a_flash_image_is_carved() {
    // Erased flash, the obfuscated package at 64 KiB, erased flash again.
    let dav = Package::digicap(files()).build().unwrap();
    let mut flash = vec![0xFFu8; 0x1_0000];
    flash.extend_from_slice(&dav);
    flash.resize(0x4_0000, 0xFF);
    let tree = unpack(Bytes::from(flash), b"flash.bin", &Limits::default());
    let pkg = tree
        .find("flash.bin/0x10000.hikvision")
        .expect("package carved");
    assert_eq!(pkg.format, Some("hikvision"));
    assert_eq!(
        pkg.data.len(),
        dav.len(),
        "its extent ends with its last file"
    );
    for f in files() {
        let n = tree
            .find(&format!("flash.bin/0x10000.hikvision/{}", f.name))
            .unwrap();
        assert_eq!(&n.data[..], &f.data[..]);
    }
}

#[test]
fn encrypted_variants_are_named_unsupported() {
    for magic in [b"02KH", b"03KH"] {
        // The common first 16 bytes (magic, checksum, header size, file count), obfuscated, then
        // an encrypted body.
        let mut head = Vec::new();
        head.extend_from_slice(magic);
        for w in [0u32, 0x200, 3] {
            head.extend_from_slice(&w.to_le_bytes());
        }
        let mut data = hiktools_decode(&head);
        data.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        let tree = unpack(Bytes::from(data), b"digicap.dav", &Limits::default());
        let root = tree.root().unwrap();
        assert_eq!(root.format, Some("hikvision"));
        let e = root.error.clone().unwrap();
        assert!(matches!(e, UnpackError::Unsupported(_)), "{e}");
        let name = std::str::from_utf8(magic).unwrap();
        assert!(
            e.to_string().contains(&format!("{name} package (3 files)")),
            "{e}"
        );
    }
}

/// hiktools' reading of a package: its header fields and, per entry, (name, length, position,
/// checksum) — the two middle fields as hiktools names them.
fn hiktools_listing(dav: &[u8]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digicap.dav");
    std::fs::write(&path, dav).unwrap();
    let script = r#"
import json, sys
from hiktools import fmod
with fmod.DigiCap(sys.argv[1]) as d:
    h = d.head
    print(json.dumps({
        "magic": h.magic, "header_length": h.header_length, "files": h.files,
        "language": h.language, "device_class": h.device_class, "oem_code": h.oem_code,
        "signature": h.signature, "features": h.features, "entries": [list(f) for f in d],
    }))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn hiktools_reads_the_same_header_and_table() {
    if !common::python_module("hiktools.fmod") {
        return;
    }
    let fw = Firmware::camera(&Options::tiny()).unwrap();
    for order in [FieldOrder::OffsetLength, FieldOrder::LengthOffset] {
        let mut p = Package::digicap(fw.hikvision_files().unwrap());
        p.order = order;
        let dav = p.build().unwrap();
        let reference = hiktools_listing(&dav);
        let tree = unpack(Bytes::from(dav), b"digicap.dav", &Limits::default());
        let root = tree.root().unwrap();
        let m = &root.format_meta;
        assert_eq!(reference["magic"], u32::from_le_bytes(*b"SWKH"));
        for (ours, theirs) in [
            ("header_length", "header_length"),
            ("file_count", "files"),
            ("language", "language"),
            ("device_class", "device_class"),
            ("oem_code", "oem_code"),
        ] {
            assert_eq!(m[ours], reference[theirs], "{ours}");
        }
        let version = reference["signature"].as_u64().unwrap();
        assert_eq!(m["version"], format!("{version:#010x}"));
        let kids = children(&tree, 0);
        let listed = reference["entries"].as_array().unwrap();
        assert_eq!(kids.len(), listed.len());
        for (n, e) in kids.iter().zip(listed) {
            let (name, length, pos, checksum) = (
                e[0].as_str().unwrap(),
                e[1].as_u64().unwrap(),
                e[2].as_u64().unwrap(),
                e[3].as_u64().unwrap(),
            );
            assert_eq!(name_of(n), name);
            assert_eq!(n.meta["checksum"], format!("{checksum:#010x}"));
            assert_eq!(n.meta["checksum_ok"], true);
            // hiktools reads (length, position): right for length-offset tables, swapped for
            // offset-length ones; either way the same two numbers.
            let (offset, size) = match order {
                FieldOrder::LengthOffset => (pos, length),
                FieldOrder::OffsetLength => (length, pos),
            };
            assert_eq!(n.origin.as_ref().unwrap().offset, Some(offset), "{name}");
            assert_eq!(n.data.len() as u64, size, "{name}");
        }
    }
}

#[test]
fn only_kept_files_make_later_ones_overlap() {
    // Three 1000-byte files; B is moved into A (refused), C into B's new place but clear of A:
    // C is kept, since the bytes B would have covered were never given to B.
    let three: Vec<PackageFile> = (0..3u8)
        .map(|i| PackageFile::new(&format!("{}", (b'A' + i) as char), vec![i + 1; 1000]))
        .collect();
    let mut bin = Package::access_controller(three).build().unwrap();
    let body = bin.clone();
    for (entry, off) in [(1usize, 696u32), (2, 1296)] {
        let e = 64 + 44 * entry;
        let region = &body[off as usize..off as usize + 1000];
        bin[e + 32..e + 36].copy_from_slice(&off.to_le_bytes());
        bin[e + 40..e + 44].copy_from_slice(&sum(region).to_le_bytes());
    }
    let u = direct(&bin).unwrap();
    let err = |i: usize| u.children[i].error.as_ref().map(ToString::to_string);
    assert_eq!(err(0), None);
    assert!(
        err(1).unwrap().contains("overlaps file #0 'A'"),
        "{:?}",
        err(1)
    );
    assert_eq!(err(2), None);
    assert_eq!(u.children[2].offset, Some(1296));
    assert_eq!(&u.children[2].data[..], &body[1296..2296]);
    assert_eq!(u.children[2].meta["field_order_basis"], "checksum");
}
