//! The builder's outside inputs, each cached under the corpus folder: Debian's foreign-architecture
//! packages (`apt-get download`, `dpkg-deb -x`), cross-compiled programs (keyed by compiler,
//! flags and source), TLS keys (`openssl`) and device trees (`dtc`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::Arch;

/// One Debian package used, as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebRecord {
    /// Package name.
    pub package: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub architecture: String,
    /// The .deb's file name.
    pub file: String,
    /// SHA-256 of the .deb.
    pub sha256: String,
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (is it installed? see corpus/setup.sh)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// A Debian package downloaded and unpacked under `root/debs/<arch>/`.
pub struct Deb {
    /// What the manifest records.
    pub record: DebRecord,
    /// Where its contents were unpacked.
    pub dir: PathBuf,
}

/// Downloads (once) and unpacks `package` for `arch` (`armhf`, `mipsel`, … or `native`).
pub fn deb(root: &Path, package: &str, arch: &str) -> Result<Deb> {
    let dir = root.join("debs").join(arch);
    fs::create_dir_all(&dir)?;
    let find = || -> Result<Option<PathBuf>> {
        for e in fs::read_dir(&dir)? {
            let p = e?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(&format!("{package}_")) && name.ends_with(".deb") {
                return Ok(Some(p));
            }
        }
        Ok(None)
    };
    let path = match find()? {
        Some(p) => p,
        None => {
            let spec = if arch == "native" {
                package.to_owned()
            } else {
                format!("{package}:{arch}")
            };
            run(Command::new("apt-get")
                .arg("download")
                .arg("-q")
                .arg(&spec)
                .current_dir(&dir))
            .with_context(|| {
                format!("downloading {spec} (corpus/setup.sh adds the architectures)")
            })?;
            find()?.with_context(|| format!("apt-get download left no {package}_*.deb"))?
        }
    };
    let bytes = fs::read(&path)?;
    let field = |f: &str| -> Result<String> {
        let out = run(Command::new("dpkg-deb").arg("-f").arg(&path).arg(f))?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    };
    let record = DebRecord {
        package: field("Package")?,
        version: field("Version")?,
        architecture: field("Architecture")?,
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: sha256_hex(&bytes),
    };
    let x = dir.join("x").join(package);
    if !x.join(".done").exists() {
        let _ = fs::remove_dir_all(&x);
        fs::create_dir_all(&x)?;
        run(Command::new("dpkg-deb").arg("-x").arg(&path).arg(&x))?;
        fs::write(x.join(".done"), &record.sha256)?;
    }
    Ok(Deb { record, dir: x })
}

/// The regular files of an unpacked package whose names `want` accepts, outside `etc/` and
/// `share/` (configs, init scripts, documentation): name → bytes.
pub fn pick_files(dir: &Path, want: &dyn Fn(&str) -> bool) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let ty = e.file_type()?;
            let p = e.path();
            if ty.is_dir() {
                let skip = ["etc", "share", "systemd", "tmpfiles.d"];
                if !skip.contains(&e.file_name().to_string_lossy().as_ref()) {
                    stack.push(p);
                }
            } else if ty.is_file() {
                let name = e.file_name().to_string_lossy().into_owned();
                if want(&name) {
                    out.insert(name, fs::read(&p)?);
                }
            }
        }
    }
    Ok(out)
}

/// A program to cross-compile.
#[derive(Clone, Debug)]
pub struct CompileJob {
    /// Target architecture.
    pub arch: Arch,
    /// Compiler flags (optimisation etc.).
    pub cflags: Vec<String>,
    /// A shared library rather than an executable.
    pub shared_lib: bool,
    /// The C source.
    pub source: String,
    /// Include directories.
    pub includes: Vec<PathBuf>,
}

/// Cross-compiles `job` (stripped), or takes it from the cache under `root/cc/`.
pub fn compile(root: &Path, job: &CompileJob) -> Result<Vec<u8>> {
    let cc = format!("{}-gcc", job.arch.triplet());
    let mut args: Vec<String> = job.cflags.clone();
    if job.shared_lib {
        args.extend(["-shared".into(), "-fPIC".into()]);
    }
    args.extend(["-s".into(), "-DNDEBUG".into(), "-w".into()]);
    let abs_root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    // Paths of this machine must not reach the binaries.
    args.push(format!("-ffile-prefix-map={}=/usr/src", abs_root.display()));
    let mut key = Sha256::new();
    key.update(cc.as_bytes());
    for a in &args {
        key.update(a.as_bytes());
        key.update([0]);
    }
    for i in &job.includes {
        key.update(i.to_string_lossy().as_bytes());
    }
    key.update(job.source.as_bytes());
    let key = hex::encode(key.finalize());
    let dir = root.join("cc");
    fs::create_dir_all(&dir)?;
    let out = dir.join(format!("{key}.elf"));
    if let Ok(b) = fs::read(&out) {
        return Ok(b);
    }
    let src = dir.join(format!("{key}.c"));
    fs::write(&src, &job.source)?;
    let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
    let mut cmd = Command::new(&cc);
    cmd.args(&args);
    for i in &job.includes {
        cmd.arg("-I").arg(i);
    }
    cmd.arg("-o").arg(&tmp).arg(&src);
    run(&mut cmd).with_context(|| format!("compiling with {cc}"))?;
    fs::rename(&tmp, &out)?;
    Ok(fs::read(&out)?)
}

/// The compiler's version line, for the manifest.
pub fn compiler_version(arch: Arch) -> Result<String> {
    let out = run(Command::new(format!("{}-gcc", arch.triplet())).arg("--version"))?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned())
}

/// A TLS key and self-signed certificate.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// Private key, PEM.
    pub key_pem: Vec<u8>,
    /// Certificate, PEM.
    pub cert_pem: Vec<u8>,
}

/// The key pair of `owner` (made once with `openssl req`, then cached: openssl cannot be seeded,
/// so the manifest records the certificate's SHA-256).
pub fn keys(root: &Path, owner: &str, org: &str, cn: &str) -> Result<KeyPair> {
    let dir = root.join("keys").join(owner);
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    if !cert.exists() {
        fs::create_dir_all(&dir)?;
        let tmp_key = dir.join("key.pem.tmp");
        let tmp_cert = dir.join("cert.pem.tmp");
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            ])
            .arg("-subj")
            .arg(format!("/C=CN/O={}/CN={}", org.replace('/', " "), cn))
            .arg("-keyout")
            .arg(&tmp_key)
            .arg("-out")
            .arg(&tmp_cert))?;
        fs::rename(&tmp_key, &key)?;
        fs::rename(&tmp_cert, &cert)?;
    }
    Ok(KeyPair {
        key_pem: fs::read(&key)?,
        cert_pem: fs::read(&cert)?,
    })
}

/// A device tree blob compiled from `dts` with `dtc` (cached by the source's hash).
pub fn dtb(root: &Path, dts: &str) -> Result<Vec<u8>> {
    let dir = root.join("dtb");
    fs::create_dir_all(&dir)?;
    let key = sha256_hex(dts.as_bytes());
    let out = dir.join(format!("{key}.dtb"));
    if let Ok(b) = fs::read(&out) {
        return Ok(b);
    }
    let src = dir.join(format!("{key}.dts"));
    fs::write(&src, dts)?;
    let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
    run(Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(&tmp)
        .arg(&src))?;
    fs::rename(&tmp, &out)?;
    Ok(fs::read(&out)?)
}
