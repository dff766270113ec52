//! The build: prepare Debian's packages and sources, assemble every planned image in parallel,
//! fingerprint each with fwsim, and write `manifest.json`, `pairs.json`/`pairs.tsv` and the
//! background document-frequency table (`background-df.json`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fwsim::compare::rarity::{self, DocFreq};
use fwsim::features::{self, FeatureParams};
use fwsim::fingerprint::Fingerprint;
use fwsim::unpack::{self, Limits};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::assemble::{self, DebianFiles, OpenSource};
use crate::inputs::{self, DebRecord};
use crate::plan::{Config, ImagePlan, Pair, Plan};

/// The manifest: inputs and every image with its labels.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// `small` or `full`.
    pub config: String,
    /// Debian packages used (binaries and sources), with versions and hashes.
    pub debian_packages: Vec<DebRecord>,
    /// Cross compilers: triplet → version line.
    pub compilers: BTreeMap<String, String>,
    /// Chip SDKs.
    pub sdks: Vec<crate::plan::Sdk>,
    /// Images.
    pub images: Vec<ImageRecord>,
}

/// One image of the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The plan it was built from (family, vendor, version, arch, rebrand-of, transformations…).
    #[serde(flatten)]
    pub plan: ImagePlan,
    /// SHA-256 of the image.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the TLS certificate inside.
    pub cert_sha256: String,
}

/// Folder layout under the corpus root.
pub fn images_dir(root: &Path) -> PathBuf {
    root.join("images")
}

/// Where the fingerprint of image `name` is kept.
pub fn fingerprint_path(root: &Path, name: &str) -> PathBuf {
    root.join("fingerprints").join(format!("{name}.json"))
}

const PACKAGES: &[&str] = &[
    "busybox-static",
    "dropbear-bin",
    "libssl3",
    "zlib1g",
    "libc6",
    "lighttpd",
];

/// Builds `config` under `root`; returns the manifest (also written there).
pub fn build(root: &Path, config: Config, log: &(dyn Fn(&str) + Sync)) -> Result<Manifest> {
    let plan = Plan::new(config);
    fs::create_dir_all(images_dir(root))?;
    fs::create_dir_all(root.join("fingerprints"))?;

    // Debian: binaries per architecture, and the open-source headers rebuilt per vendor.
    let mut records = Vec::new();
    let mut debian: BTreeMap<&'static str, DebianFiles> = BTreeMap::new();
    let archs: BTreeSet<&'static str> = plan.images.iter().map(|i| i.arch.debian()).collect();
    for arch in &archs {
        let mut files = BTreeMap::new();
        for p in PACKAGES {
            log(&format!("debian {p}:{arch}"));
            let deb = inputs::deb(root, p, arch)?;
            let picked = inputs::pick_files(&deb.dir, &|n| assemble::wanted(p, n))?;
            files.insert((*p).to_owned(), picked);
            records.push(deb.record);
        }
        debian.insert(arch, DebianFiles { files });
    }
    let mut includes = Vec::new();
    for p in ["libstb-dev", "libjsmn-dev"] {
        log(&format!("debian source {p}"));
        let deb = inputs::deb(root, p, "native")?;
        includes.push(deb.dir.join("usr/include"));
        records.push(deb.record);
    }
    let open = OpenSource { includes };
    let mut compilers = BTreeMap::new();
    for i in &plan.images {
        if !compilers.contains_key(i.arch.triplet()) {
            compilers.insert(
                i.arch.triplet().to_owned(),
                inputs::compiler_version(i.arch)?,
            );
        }
    }

    // Images, in parallel.
    let images: Vec<ImageRecord> = plan
        .images
        .par_iter()
        .map(|img| -> Result<ImageRecord> {
            let path = images_dir(root).join(&img.name);
            let debs = debian
                .get(img.arch.debian())
                .with_context(|| format!("no packages for {}", img.arch.debian()))?;
            let built = assemble::build(root, &plan, img, debs, &open)
                .with_context(|| format!("building {}", img.name))?;
            fs::write(&path, &built.bytes)?;
            log(&format!("image {} ({} bytes)", img.name, built.bytes.len()));
            Ok(ImageRecord {
                plan: img.clone(),
                sha256: inputs::sha256_hex(&built.bytes),
                size: built.bytes.len() as u64,
                cert_sha256: built.cert_sha256,
            })
        })
        .collect::<Result<_>>()?;

    let manifest = Manifest {
        config: match config {
            Config::Small => "small".into(),
            Config::Full => "full".into(),
        },
        debian_packages: records,
        compilers,
        sdks: plan.sdks.clone(),
        images,
    };
    fs::write(
        root.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    let pairs = plan.pairs();
    fs::write(
        root.join("pairs.json"),
        serde_json::to_string_pretty(&pairs)?,
    )?;
    fs::write(root.join("pairs.tsv"), pairs_tsv(&pairs))?;

    // Fingerprints (cached by image hash) and the background document frequencies.
    let fps: Vec<(String, Fingerprint)> = manifest
        .images
        .par_iter()
        .map(|r| -> Result<(String, Fingerprint)> {
            log(&format!("fingerprint {}", r.plan.name));
            Ok((
                r.plan.family.clone(),
                fingerprint(root, &r.plan.name, &r.sha256)?,
            ))
        })
        .collect::<Result<_>>()?;
    let df = background_df(&fps);
    fs::write(root.join("background-df.json"), serde_json::to_string(&df)?)?;
    Ok(manifest)
}

/// The pairs as TSV: a, b, split, relation, transformations.
pub fn pairs_tsv(pairs: &[Pair]) -> String {
    let mut s = String::from("a\tb\tsplit\trelation\ttransformations\n");
    for p in pairs {
        let t: Vec<&str> = p.transformations.iter().map(|t| t.name()).collect();
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            p.a,
            p.b,
            p.split,
            p.relation.name(),
            t.join(",")
        ));
    }
    s
}

/// The fingerprint of image `name` (whose SHA-256 is `sha256`), from the cache or made now.
pub fn fingerprint(root: &Path, name: &str, sha256: &str) -> Result<Fingerprint> {
    let path = fingerprint_path(root, name);
    let params = FeatureParams::default();
    if let Ok(fp) = Fingerprint::read(&path, &params.recorded())
        && fp.image.sha256 == sha256
    {
        return Ok(fp);
    }
    let fp = fingerprint_file(&images_dir(root).join(name))?;
    fp.write(&path)?;
    Ok(fp)
}

/// Unpacks and fingerprints the file at `path` with fwsim's defaults.
pub fn fingerprint_file(path: &Path) -> Result<Fingerprint> {
    let data = fwsim::input::open(path)?;
    let name = path
        .file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_default();
    let tree = unpack::unpack(data, &name, &Limits::default());
    Ok(features::fingerprint(&tree, &FeatureParams::default()))
}

/// Document frequencies over families: each item counted once per family holding it.
pub fn background_df(fps: &[(String, Fingerprint)]) -> DocFreq {
    let mut per_family: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (family, fp) in fps {
        per_family
            .entry(family.as_str())
            .or_default()
            .extend(rarity::items(fp));
    }
    let mut df = DocFreq {
        families: u32::try_from(per_family.len()).unwrap_or(u32::MAX),
        ..DocFreq::default()
    };
    for items in per_family.values() {
        for item in items {
            *df.counts.entry(item.clone()).or_insert(0) += 1;
        }
    }
    df
}

#[cfg(test)]
mod tests {
    use fwsim::synth::{Rootfs, tarball};

    use super::*;
    use crate::plan::{Relation, Transform};

    fn image(dir: &Path, name: &str, files: &[(&str, &str)]) -> Fingerprint {
        let mut r = Rootfs::new();
        for (path, text) in files {
            r.file(path, text.repeat(200), 0o644);
        }
        let path = dir.join(name);
        fs::write(&path, tarball::tar_gz(&r, Some("u.tar")).unwrap()).unwrap();
        fingerprint_file(&path).unwrap()
    }

    #[test]
    fn background_df_counts_families_not_images() {
        let dir = std::env::temp_dir().join(format!("fwsim-corpus-df-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let shared = ("etc/common.conf", "common open-source config line\n");
        let a1 = image(
            &dir,
            "a1.tgz",
            &[shared, ("bin/a", "vendor a program v1\n")],
        );
        let a2 = image(
            &dir,
            "a2.tgz",
            &[shared, ("bin/a", "vendor a program v1\n")],
        );
        let b1 = image(&dir, "b1.tgz", &[shared, ("bin/b", "vendor b program\n")]);
        fs::remove_dir_all(&dir).unwrap();
        let sha = |s: &str| inputs::sha256_hex(s.repeat(200).as_bytes());
        let df = background_df(&[("a".into(), a1), ("a".into(), a2), ("b".into(), b1)]);
        assert_eq!(df.families, 2);
        // Held by both families (three images): 2. Held by family a's two images: 1.
        assert_eq!(df.get(&format!("file:{}", sha(shared.1))), 2);
        assert_eq!(df.get(&format!("file:{}", sha("vendor a program v1\n"))), 1);
        assert_eq!(df.get(&format!("file:{}", sha("vendor b program\n"))), 1);
        assert_eq!(df.get("file:0000"), 0);
    }

    #[test]
    fn pairs_tsv_has_one_line_per_pair() {
        let pairs = vec![Pair {
            a: "x.bin".into(),
            b: "y.bin".into(),
            split: "fit".into(),
            relation: Relation::Rebrand,
            transformations: vec![Transform::Strings, Transform::Flags],
        }];
        assert_eq!(
            pairs_tsv(&pairs),
            "a\tb\tsplit\trelation\ttransformations\nx.bin\ty.bin\tfit\trebrand\tstrings,flags\n"
        );
    }
}
