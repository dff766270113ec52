//! The ground truth: which vendor families, versions and rebrands a configuration builds (all
//! decided before anything is compiled), and the expected relation of every pair of images.

use serde::{Deserialize, Serialize};

use crate::cgen::{VendorStrings, mix, seed_of};

/// A target architecture: Debian's name, the cross compiler's triplet, and the U-Boot arch code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// ARMv7 hard-float (`arm-linux-gnueabihf`).
    Armhf,
    /// ARMv5 soft-float (`arm-linux-gnueabi`).
    Armel,
    /// 32-bit little-endian MIPS (`mipsel-linux-gnu`).
    Mipsel,
}

impl Arch {
    /// Debian's architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Armhf => "armhf",
            Arch::Armel => "armel",
            Arch::Mipsel => "mipsel",
        }
    }

    /// The GNU triplet of the cross compiler.
    pub fn triplet(self) -> &'static str {
        match self {
            Arch::Armhf => "arm-linux-gnueabihf",
            Arch::Armel => "arm-linux-gnueabi",
            Arch::Mipsel => "mipsel-linux-gnu",
        }
    }

    /// U-Boot `IH_ARCH_*` code.
    pub fn uimage_arch(self) -> u8 {
        match self {
            Arch::Armhf | Arch::Armel => 2,
            Arch::Mipsel => 5,
        }
    }
}

/// How the partitions are packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Container {
    /// Dahua-style `.bin` (zip with a `DH` magic) of uImage partitions.
    DahuaBin,
    /// tar.gz update of uImage partitions.
    TarGz,
    /// Raw flash dump: uImages at erase-block boundaries on 0xFF.
    FlashDump,
}

/// squashfs compressor of the filesystem partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compressor {
    /// zlib.
    Gzip,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
    /// lz4.
    Lz4,
}

/// A chip vendor's SDK library, shared (as source, each builds its own) by unrelated vendors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sdk {
    /// Name (`hsoc-mpp`).
    pub name: String,
    /// Library file name (`libmpi.so`).
    pub lib_name: String,
    /// SoC named in device trees and banners.
    pub soc: String,
    /// The chip vendor's strings in the library.
    pub strings: VendorStrings,
    /// Source seed.
    pub seed: u64,
}

/// One vendor family: one software line (the same code across versions and rebrands).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    /// Family id, unique in the corpus (`s1-falcon`).
    pub id: String,
    /// Split: `fit` (thresholds are fitted here) or `score` (figures are reported here).
    pub split: String,
    /// The vendor's strings.
    pub strings: VendorStrings,
    /// Software seed.
    pub seed: u64,
    /// Architecture.
    pub arch: Arch,
    /// SDK used, by name.
    pub sdk: Option<String>,
    /// Compiler flags of the vendor's builds.
    pub cflags: Vec<String>,
    /// Container and compressor.
    pub container: Container,
    /// squashfs compressor.
    pub compressor: Compressor,
    /// Debian packages the vendor ships.
    pub packages: Vec<String>,
    /// Versions built (1, 2 …).
    pub versions: Vec<u32>,
    /// Name of the main application.
    pub app: String,
}

/// What a rebrand changes relative to its original.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// Vendor strings replaced and programs rebuilt from source with them.
    Strings,
    /// Vendor strings patched into the original binaries (same length), nothing rebuilt.
    BinaryPatch,
    /// Repacked into another container.
    Container,
    /// Another squashfs compressor.
    Compressor,
    /// Programs rebuilt with other compiler flags.
    Flags,
    /// Rebuilt for another architecture after a SoC change.
    Arch,
    /// An older version of the original, rebranded.
    OldVersion,
    /// Extra programs and files added.
    Additions,
    /// New TLS key and certificate.
    NewKeys,
}

impl Transform {
    /// The kebab-case name used in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Transform::Strings => "strings",
            Transform::BinaryPatch => "binary-patch",
            Transform::Container => "container",
            Transform::Compressor => "compressor",
            Transform::Flags => "flags",
            Transform::Arch => "arch",
            Transform::OldVersion => "old-version",
            Transform::Additions => "additions",
            Transform::NewKeys => "new-keys",
        }
    }
}

/// One image to build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePlan {
    /// File name (`s1-falcon-v2.bin`), unique.
    pub name: String,
    /// Family (software line) it belongs to.
    pub family: String,
    /// Split of its family.
    pub split: String,
    /// Vendor label it carries.
    pub vendor: String,
    /// Version of the software.
    pub version: u32,
    /// Architecture.
    pub arch: Arch,
    /// SDK used.
    pub sdk: Option<String>,
    /// Strings it carries.
    pub strings: VendorStrings,
    /// Compiler flags.
    pub cflags: Vec<String>,
    /// Container.
    pub container: Container,
    /// squashfs compressor.
    pub compressor: Compressor,
    /// Debian packages shipped.
    pub packages: Vec<String>,
    /// The image it is a rebrand of.
    pub rebrand_of: Option<String>,
    /// What the rebrand changed.
    pub transformations: Vec<Transform>,
    /// Software seed of the family.
    pub seed: u64,
    /// Main application's name.
    pub app: String,
    /// Whose keys it carries (family id or image name).
    pub key_owner: String,
}

/// Expected relation of two images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    /// Same software, different vendor label.
    Rebrand,
    /// Same software (another version or product), same vendor label.
    SameVendor,
    /// Different software sharing a chip SDK.
    SharedSdk,
    /// Different software; at most common open-source parts shared.
    Unrelated,
}

impl Relation {
    /// The verdict name fwsim uses for it.
    pub fn name(self) -> &'static str {
        match self {
            Relation::Rebrand => "rebrand",
            Relation::SameVendor => "same-vendor",
            Relation::SharedSdk => "shared-sdk",
            Relation::Unrelated => "unrelated",
        }
    }

    /// Same software (the positive class of the AUC).
    pub fn same_family(self) -> bool {
        matches!(self, Relation::Rebrand | Relation::SameVendor)
    }
}

/// One pair of the ground truth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    /// First image (file name).
    pub a: String,
    /// Second image.
    pub b: String,
    /// Split of both.
    pub split: String,
    /// Expected relation.
    pub relation: Relation,
    /// For a rebrand and its original: the transformations applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transformations: Vec<Transform>,
}

/// A corpus configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// One family, two versions and one rebrand (CI).
    Small,
    /// Two splits of six families each, with five kinds of rebrand.
    Full,
}

/// Everything to build: SDKs, families, images.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Chip SDKs.
    pub sdks: Vec<Sdk>,
    /// Vendor families.
    pub families: Vec<Family>,
    /// Images, in build order.
    pub images: Vec<ImagePlan>,
}

const VENDOR_NAMES: &[(&str, &str)] = &[
    ("Falconeye Security Technology Co., Ltd.", "FLCN"),
    ("Norwin Vision Systems Inc.", "NRWN"),
    ("Kestrel Digital Imaging GmbH", "KSTR"),
    ("Orbisec Electronics Co., Ltd.", "ORBS"),
    ("Lumetra Smart Home Ltd.", "LMTR"),
    ("Brightwatch Technologies", "BRWT"),
    ("Cindral Optronics Co., Ltd.", "CNDR"),
    ("Vexor Surveillance Ltd.", "VXOR"),
    ("Tarnby Networks AB", "TRNB"),
    ("Yuhang Zhitong Electronics", "YHZT"),
    ("Marlow Camera Works", "MRLW"),
    ("Quenta Vision Co., Ltd.", "QNTA"),
];

const REBRANDER_NAMES: &[(&str, &str)] = &[
    ("Acmevision Trading Ltd.", "ACMV"),
    ("Sentrix Home Security", "SNTX"),
    ("Polarview Systems", "PLRV"),
    ("Guardix Corp.", "GRDX"),
    ("Omnicam Solutions", "OMNC"),
    ("Zentek Imaging", "ZNTK"),
    ("Hawklink Electronics", "HWKL"),
    ("Clearpath Video", "CLPV"),
    ("Nordcam AS", "NRDC"),
    ("Safeline Devices", "SFLD"),
];

fn strings(seed: u64, name: &str, tag: &str, product_no: u64) -> VendorStrings {
    let domain: String = tag.to_ascii_lowercase();
    let user = ["jenkins", "build", "rd", "sdk", "dev"]
        .get((seed % 5) as usize)
        .copied()
        .unwrap_or("build");
    VendorStrings {
        vendor: name.into(),
        tag: tag.into(),
        product: format!("{tag}-IPC{}", 1000 + product_no % 9000),
        fw_version: "V1.0.0".into(),
        build_root: format!("/home/{user}/{domain}_ipc"),
        url: format!("http://www.{domain}-security.com"),
        email: format!("support@{domain}-security.com"),
    }
}

fn flags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

const ALL_PACKAGES: &[&str] = &[
    "busybox-static",
    "dropbear-bin",
    "libssl3",
    "zlib1g",
    "libc6",
    "lighttpd",
];

impl Plan {
    /// The plan of `config`.
    pub fn new(config: Config) -> Self {
        let splits: &[(&str, u64)] = match config {
            Config::Small => &[("fit", 1)],
            Config::Full => &[("fit", 1), ("score", 2)],
        };
        let mut plan = Plan {
            sdks: Vec::new(),
            families: Vec::new(),
            images: Vec::new(),
        };
        for &(split, seed) in splits {
            plan.add_split(config, split, seed);
        }
        plan
    }

    fn add_split(&mut self, config: Config, split: &str, seed: u64) {
        let s = |x: &str| mix(seed, seed_of(x));
        let sdk = |name: &str, lib: &str, soc: &str, chip: &str, tag: &str| Sdk {
            name: format!("s{seed}-{name}"),
            lib_name: lib.into(),
            soc: soc.into(),
            strings: VendorStrings {
                vendor: chip.into(),
                tag: tag.into(),
                product: soc.to_ascii_uppercase(),
                fw_version: format!("SDK V{}.0.{}", 1 + seed, 3 + seed),
                build_root: format!("/home/sdk_build/{soc}_sdk_v{seed}"),
                url: format!("http://www.{}.com", tag.to_ascii_lowercase()),
                email: format!("fae@{}.com", tag.to_ascii_lowercase()),
            },
            seed: s(name),
        };
        let (hsoc, isoc) = if seed == 1 {
            (
                sdk(
                    "hsoc",
                    "libmpi.so",
                    "hs3516ev300",
                    "Hisense Microchip",
                    "HSMC",
                ),
                sdk("isoc", "libimp.so", "ix31", "Ixora Semiconductor", "IXSC"),
            )
        } else {
            (
                sdk(
                    "gsoc",
                    "libgk_api.so",
                    "gk7205v300",
                    "Gokan Microsystems",
                    "GKMS",
                ),
                sdk(
                    "asoc",
                    "libak_mpi.so",
                    "ak3918ev300",
                    "Anhe Microelectronics",
                    "ANHE",
                ),
            )
        };
        let offset = if seed == 1 { 0 } else { 5 };
        // Five vendors per split, then one more each from the end of the list.
        let vendor = |i: usize| {
            let idx = if i < 5 { i + offset } else { 10 + offset / 5 };
            VENDOR_NAMES.get(idx).copied().unwrap_or(("Vendor", "VNDR"))
        };
        let rebrander = |i: usize| {
            REBRANDER_NAMES
                .get(i + offset)
                .copied()
                .unwrap_or(("Rebrand", "RBND"))
        };
        let fam = |i: usize,
                   key: &str,
                   arch: Arch,
                   sdk: Option<&Sdk>,
                   cflags: &[&str],
                   container: Container,
                   compressor: Compressor,
                   skip: &[&str],
                   versions: &[u32],
                   app: &str| {
            let (name, tag) = vendor(i);
            let fseed = s(key);
            Family {
                id: format!("s{seed}-{key}"),
                split: split.into(),
                strings: strings(fseed, name, tag, fseed),
                seed: fseed,
                arch,
                sdk: sdk.map(|x| x.name.clone()),
                cflags: flags(cflags),
                container,
                compressor,
                packages: ALL_PACKAGES
                    .iter()
                    .filter(|p| !skip.contains(p))
                    .map(|p| (*p).to_owned())
                    .collect(),
                versions: versions.to_vec(),
                app: app.into(),
            }
        };
        let a = fam(
            0,
            "alpha",
            Arch::Armhf,
            Some(&hsoc),
            &["-O2"],
            Container::DahuaBin,
            Compressor::Xz,
            &[],
            &[1, 2, 3],
            "ipc_server",
        );
        let mut families = vec![a];
        self.sdks.push(hsoc.clone());
        if config == Config::Full {
            self.sdks.push(isoc.clone());
            families.push(fam(
                1,
                "bravo",
                Arch::Mipsel,
                Some(&isoc),
                &["-Os"],
                Container::TarGz,
                Compressor::Gzip,
                &["lighttpd"],
                &[1, 2],
                "avserver",
            ));
            families.push(fam(
                2,
                "charlie",
                Arch::Armel,
                None,
                &["-O2", "-fno-omit-frame-pointer"],
                Container::FlashDump,
                Compressor::Xz,
                &["libssl3"],
                &[1, 2],
                "camd",
            ));
            families.push(fam(
                3,
                "delta",
                Arch::Armhf,
                Some(&hsoc),
                &["-O1"],
                Container::FlashDump,
                Compressor::Zstd,
                &["dropbear-bin"],
                &[1, 2],
                "dvrmain",
            ));
            families.push(fam(
                4,
                "echo",
                Arch::Mipsel,
                Some(&isoc),
                &["-O2"],
                Container::DahuaBin,
                Compressor::Lz4,
                &[],
                &[1, 2],
                "netcam",
            ));
            // Unrelated to alpha and delta, on the same architecture without their SDK: it
            // shares only Debian's binaries with them, byte for byte.
            families.push(fam(
                5,
                "foxtrot",
                Arch::Armhf,
                None,
                &["-O2", "-fstack-protector-strong"],
                Container::TarGz,
                Compressor::Xz,
                &["lighttpd"],
                &[1, 2],
                "ipcamd",
            ));
        }
        for f in &families {
            for &v in &f.versions {
                let mut st = f.strings.clone();
                st.fw_version = format!("V{v}.{}.{}", 2 + v, 100 + v * 7);
                self.images.push(ImagePlan {
                    name: format!("{}-v{v}.bin", f.id),
                    family: f.id.clone(),
                    split: split.into(),
                    vendor: f.strings.vendor.clone(),
                    version: v,
                    arch: f.arch,
                    sdk: f.sdk.clone(),
                    strings: st,
                    cflags: f.cflags.clone(),
                    container: f.container,
                    compressor: f.compressor,
                    packages: f.packages.clone(),
                    rebrand_of: None,
                    transformations: Vec::new(),
                    seed: f.seed,
                    app: f.app.clone(),
                    key_owner: f.id.clone(),
                });
            }
        }
        // Rebrands: (index of rebrander, family key, version, what changes).
        use Transform as T;
        let mut rebrands: Vec<(usize, &str, u32, Vec<Transform>)> =
            vec![(0, "alpha", 2, vec![T::Strings, T::Container, T::Compressor])];
        if config == Config::Full {
            rebrands.extend([
                (1, "bravo", 1, vec![T::Strings, T::Flags, T::NewKeys]),
                (2, "charlie", 2, vec![T::Strings, T::Arch]),
                (3, "delta", 1, vec![T::Strings, T::OldVersion, T::Additions]),
                (4, "alpha", 3, vec![T::BinaryPatch]),
            ]);
        }
        for (ri, key, version, transformations) in rebrands {
            let family = format!("s{seed}-{key}");
            let Some(orig) = self
                .images
                .iter()
                .find(|i| i.family == family && i.version == version)
                .cloned()
            else {
                continue;
            };
            let (name, tag) = rebrander(ri);
            let rseed = s(&format!("rebrand-{key}"));
            let mut st = strings(rseed, name, tag, rseed);
            st.fw_version = orig.strings.fw_version.clone();
            if transformations.contains(&T::BinaryPatch) {
                // Same-length replacements, so the binaries can be patched in place.
                st = patched_strings(&orig.strings, name, tag);
            }
            let mut img = orig.clone();
            img.name = format!("s{seed}-{}-{key}-v{version}.bin", tag.to_ascii_lowercase());
            img.vendor = st.vendor.clone();
            img.strings = st;
            img.rebrand_of = Some(orig.name.clone());
            for t in &transformations {
                match t {
                    T::Container => {
                        img.container = match orig.container {
                            Container::DahuaBin => Container::TarGz,
                            Container::TarGz => Container::FlashDump,
                            Container::FlashDump => Container::DahuaBin,
                        }
                    }
                    T::Compressor => {
                        img.compressor = match orig.compressor {
                            Compressor::Xz => Compressor::Gzip,
                            _ => Compressor::Xz,
                        }
                    }
                    T::Flags => {
                        img.cflags = if orig.cflags.iter().any(|f| f == "-Os") {
                            flags(&["-O2"])
                        } else {
                            flags(&["-Os"])
                        }
                    }
                    T::Arch => {
                        img.arch = match orig.arch {
                            Arch::Mipsel => Arch::Armhf,
                            _ => Arch::Mipsel,
                        }
                    }
                    T::NewKeys => img.key_owner = img.name.clone(),
                    _ => {}
                }
            }
            img.transformations = transformations;
            self.images.push(img);
        }
        self.families.extend(families);
    }

    /// The plan of the image named `name`.
    pub fn image(&self, name: &str) -> Option<&ImagePlan> {
        self.images.iter().find(|i| i.name == name)
    }

    /// The SDK named `name`.
    pub fn sdk(&self, name: &str) -> Option<&Sdk> {
        self.sdks.iter().find(|s| s.name == name)
    }

    /// Expected relation of two images.
    pub fn relation(a: &ImagePlan, b: &ImagePlan) -> Relation {
        if a.family == b.family {
            if a.vendor == b.vendor {
                Relation::SameVendor
            } else {
                Relation::Rebrand
            }
        } else if a.sdk.is_some() && a.sdk == b.sdk {
            Relation::SharedSdk
        } else {
            Relation::Unrelated
        }
    }

    /// Every unordered pair of images of the same split, in image order.
    pub fn pairs(&self) -> Vec<Pair> {
        let mut out = Vec::new();
        for (i, a) in self.images.iter().enumerate() {
            for b in self.images.iter().skip(i + 1) {
                if a.split != b.split {
                    continue;
                }
                let transformations = if b.rebrand_of.as_deref() == Some(a.name.as_str()) {
                    b.transformations.clone()
                } else if a.rebrand_of.as_deref() == Some(b.name.as_str()) {
                    a.transformations.clone()
                } else {
                    Vec::new()
                };
                out.push(Pair {
                    a: a.name.clone(),
                    b: b.name.clone(),
                    split: a.split.clone(),
                    relation: Self::relation(a, b),
                    transformations,
                });
            }
        }
        out
    }
}

/// Vendor strings of the same byte lengths as `orig`'s, with the new name and tag, so they can
/// be patched over the original binaries.
pub fn patched_strings(orig: &VendorStrings, name: &str, tag: &str) -> VendorStrings {
    let fit = |new: &str, old: &str| -> String {
        let mut s: String = new.chars().filter(char::is_ascii).take(old.len()).collect();
        while s.len() < old.len() {
            s.push(' ');
        }
        s
    };
    let lower = tag.to_ascii_lowercase();
    let old_lower = orig.tag.to_ascii_lowercase();
    VendorStrings {
        vendor: fit(name, &orig.vendor),
        tag: fit(tag, &orig.tag),
        product: orig.product.replace(&orig.tag, &fit(tag, &orig.tag)),
        fw_version: orig.fw_version.clone(),
        build_root: orig.build_root.clone(),
        url: orig.url.replace(&old_lower, &fit(&lower, &old_lower)),
        email: orig.email.replace(&old_lower, &fit(&lower, &old_lower)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    #[test]
    fn full_plan_has_the_ground_truth_the_issue_asks_for() {
        let plan = Plan::new(Config::Full);
        let fams: BTreeSet<&str> = plan.families.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(fams.len(), 12);
        let archs: BTreeSet<Arch> = plan.images.iter().map(|i| i.arch).collect();
        assert_eq!(archs.len(), 3);
        assert!(plan.families.iter().all(|f| f.versions.len() >= 2));
        let rebrands: Vec<&ImagePlan> = plan
            .images
            .iter()
            .filter(|i| i.rebrand_of.is_some())
            .collect();
        assert_eq!(rebrands.len(), 10);
        let kinds: BTreeSet<Transform> = rebrands
            .iter()
            .flat_map(|i| i.transformations.iter().copied())
            .collect();
        for t in [
            Transform::Strings,
            Transform::BinaryPatch,
            Transform::Container,
            Transform::Compressor,
            Transform::Flags,
            Transform::Arch,
            Transform::OldVersion,
            Transform::Additions,
        ] {
            assert!(kinds.contains(&t), "{t:?}");
        }
    }

    #[test]
    fn names_are_unique_and_rebrands_point_at_images_of_their_family() {
        let plan = Plan::new(Config::Full);
        let names: BTreeSet<&str> = plan.images.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names.len(), plan.images.len());
        for img in &plan.images {
            if let Some(orig) = &img.rebrand_of {
                let o = plan.image(orig).unwrap();
                assert_eq!(o.family, img.family);
                assert_ne!(o.vendor, img.vendor);
                assert!(o.rebrand_of.is_none());
            }
            if let Some(sdk) = &img.sdk {
                assert!(plan.sdk(sdk).is_some());
            }
        }
    }

    #[test]
    fn pairs_cover_every_pair_of_a_split_once_with_consistent_relations() {
        let plan = Plan::new(Config::Full);
        let pairs = plan.pairs();
        let mut per_split: BTreeMap<&str, usize> = BTreeMap::new();
        for i in &plan.images {
            *per_split.entry(i.split.as_str()).or_default() += 1;
        }
        let expected: usize = per_split.values().map(|n| n * (n - 1) / 2).sum();
        assert_eq!(pairs.len(), expected);
        let mut seen = BTreeSet::new();
        for p in &pairs {
            assert!(seen.insert((p.a.clone(), p.b.clone())));
            assert!(!seen.contains(&(p.b.clone(), p.a.clone())));
            let (a, b) = (plan.image(&p.a).unwrap(), plan.image(&p.b).unwrap());
            assert_eq!(a.split, b.split);
            match p.relation {
                Relation::Rebrand => {
                    assert_eq!(a.family, b.family);
                    assert_ne!(a.vendor, b.vendor);
                }
                Relation::SameVendor => {
                    assert_eq!(a.family, b.family);
                    assert_eq!(a.vendor, b.vendor);
                }
                Relation::SharedSdk => {
                    assert_ne!(a.family, b.family);
                    assert_eq!(a.sdk, b.sdk);
                }
                Relation::Unrelated => assert_ne!(a.family, b.family),
            }
            if !p.transformations.is_empty() {
                assert_eq!(p.relation, Relation::Rebrand);
            }
        }
        // The trap: unrelated families on one architecture (sharing Debian's binaries).
        for split in ["fit", "score"] {
            assert!(pairs.iter().any(|p| {
                let (a, b) = (plan.image(&p.a).unwrap(), plan.image(&p.b).unwrap());
                p.split == split && p.relation == Relation::Unrelated && a.arch == b.arch
            }));
        }
        // Every relation occurs in each split.
        for split in ["fit", "score"] {
            let rel: BTreeSet<Relation> = pairs
                .iter()
                .filter(|p| p.split == split)
                .map(|p| p.relation)
                .collect();
            assert_eq!(rel.len(), 4, "{split}: {rel:?}");
        }
    }

    #[test]
    fn small_plan_is_one_family_with_a_rebrand() {
        let plan = Plan::new(Config::Small);
        assert_eq!(plan.families.len(), 1);
        assert_eq!(plan.images.len(), 4);
        assert!(plan.images.iter().any(|i| i.rebrand_of.is_some()));
    }

    #[test]
    fn patched_strings_keep_lengths() {
        let plan = Plan::new(Config::Full);
        let img = plan
            .images
            .iter()
            .find(|i| i.transformations.contains(&Transform::BinaryPatch))
            .unwrap();
        let orig = plan.image(img.rebrand_of.as_deref().unwrap()).unwrap();
        assert_eq!(img.strings.vendor.len(), orig.strings.vendor.len());
        assert_ne!(img.strings.vendor, orig.strings.vendor);
        assert_eq!(img.strings.url.len(), orig.strings.url.len());
        assert_eq!(img.strings.product.len(), orig.strings.product.len());
    }
}
