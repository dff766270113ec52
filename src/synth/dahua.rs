//! Dahua update packages (`.bin`): a ZIP archive, written with the `zip` crate, whose first local
//! file header signature is then patched from `PK\x03\x04` to `DH\x03\x04` (as Dahua's tools do),
//! plus the `Install` and `hwid` JSON manifests the real packages carry (format as seen in the
//! Dahua IPC-HX4XXX samples and Dahua-Firmware-Mod-Kit).

use std::io::{Cursor, Write};

use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

use super::SynthError;

/// How one archive member is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Stored as is.
    Stored,
    /// Deflate (what Dahua's packages use).
    Deflated,
}

/// One member of the package.
#[derive(Clone, Debug)]
pub struct Member {
    /// Name inside the archive (`kernel.img`, `Install` …).
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
    /// How it is stored.
    pub method: Method,
}

impl Member {
    /// A deflated member.
    pub fn new(name: &str, data: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.to_owned(),
            data: data.into(),
            method: Method::Deflated,
        }
    }
}

/// The local file header signature of an ordinary ZIP.
pub const PK_SIGNATURE: &[u8; 4] = b"PK\x03\x04";
/// The signature Dahua writes in place of the first one.
pub const DH_SIGNATURE: &[u8; 4] = b"DH\x03\x04";

/// Writes `members` as a ZIP and patches its first local header to `DH\x03\x04`. Every other
/// signature (later local headers, central directory, end record) stays `PK`.
pub fn build(members: &[Member]) -> Result<Vec<u8>, SynthError> {
    let mut out = zip_archive(members)?;
    match out.get_mut(..4) {
        Some(sig) if sig == PK_SIGNATURE => sig.copy_from_slice(DH_SIGNATURE),
        _ => {
            return Err(SynthError::Zip(
                "the archive does not start with a local file header".into(),
            ));
        }
    }
    Ok(out)
}

/// Writes `members` as an ordinary ZIP archive (fixed timestamps, Unix permissions 0644).
pub fn zip_archive(members: &[Member]) -> Result<Vec<u8>, SynthError> {
    let zerr = |e: zip::result::ZipError| SynthError::Zip(e.to_string());
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let time = zip::DateTime::from_date_and_time(2016, 12, 9, 13, 32, 24)
        .map_err(|e| SynthError::Zip(e.to_string()))?;
    for m in members {
        let opts = SimpleFileOptions::default()
            .compression_method(match m.method {
                Method::Stored => CompressionMethod::Stored,
                Method::Deflated => CompressionMethod::Deflated,
            })
            .last_modified_time(time)
            .unix_permissions(0o644)
            .large_file(m.data.len() >= 0xffff_ffff);
        w.start_file(m.name.as_str(), opts).map_err(zerr)?;
        w.write_all(&m.data)
            .map_err(|e| SynthError::Zip(format!("{}: {e}", m.name)))?;
    }
    Ok(w.finish().map_err(zerr)?.into_inner())
}

/// The `Install` manifest: the burn commands (`burn <file> <partition>`), the supported device
/// families with their versions, and the vendor, as 3-space indented JSON like Dahua's.
pub fn install_manifest(burns: &[(&str, &str)], devices: &[(&str, &str)], vendor: &str) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let commands: Vec<String> = burns
        .iter()
        .map(|(file, part)| format!("      {}", q(&format!("burn {file} {part}"))))
        .collect();
    let devices: Vec<String> = devices
        .iter()
        .map(|(d, ver)| format!("      [ {}, {} ]", q(d), q(ver)))
        .collect();
    format!(
        "{{\n   \"Commands\" : [\n{}\n   ],\n   \"Devices\" : [\n{}\n   ],\n   \"Vendor\" : {}\n}}\n",
        commands.join(",\n"),
        devices.join(",\n"),
        q(vendor)
    )
}

/// The `hwid` manifest: the hardware ids (`MODEL:field:field…`) the package may be installed on,
/// preceded by the comment line Dahua writes.
pub fn hwid_manifest(models: &[&str]) -> String {
    let mut s = String::from("//IPC_RestoreDefault\n\n{\n\"hwid\" : [\n");
    let lines: Vec<String> = models
        .iter()
        .map(|m| {
            format!("\"{m}:01:02:02:23:1A:00:01:00:00:00:00:258:00:00:00:00:00:01:00:00:100\"")
        })
        .collect();
    s.push_str(&lines.join(",\n"));
    s.push_str("\n]\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn only_the_first_signature_is_patched() {
        let members = [
            Member::new("Install", b"{}".to_vec()),
            Member {
                name: "kernel.img".into(),
                data: vec![1u8; 5000],
                method: Method::Stored,
            },
        ];
        let bin = build(&members).unwrap();
        assert_eq!(&bin[..4], DH_SIGNATURE);
        let count = |sig: &[u8]| bin.windows(4).filter(|w| *w == sig).count();
        assert_eq!(count(PK_SIGNATURE), 1, "second local header");
        assert_eq!(count(b"PK\x01\x02"), 2, "central directory entries");
        assert_eq!(count(b"PK\x05\x06"), 1, "end of central directory");

        // Undo the patch and read it with the zip crate's reader: members intact.
        let mut fixed = bin.clone();
        fixed[..4].copy_from_slice(PK_SIGNATURE);
        let mut z = zip::ZipArchive::new(Cursor::new(fixed)).unwrap();
        let mut got = Vec::new();
        z.by_name("kernel.img")
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, vec![1u8; 5000]);
        assert_eq!(
            z.by_name("Install").unwrap().compression(),
            CompressionMethod::Deflated
        );
    }

    #[test]
    fn manifests_look_like_dahuas() {
        let install = install_manifest(
            &[("kernel.img", "kernel"), ("romfs-x.squashfs.img", "rootfs")],
            &[("IPC-HX4XXX", "1.00")],
            "General",
        );
        assert!(
            install.starts_with("{\n   \"Commands\" : [\n      \"burn kernel.img kernel\""),
            "{install}"
        );
        let v: serde_json::Value = serde_json::from_str(&install).unwrap();
        assert_eq!(v["Devices"][0][0], "IPC-HX4XXX");
        assert_eq!(v["Vendor"], "General");

        let hwid = hwid_manifest(&["IPC-HFW4431R-Z", "IPC-HDW4431C"]);
        let json = hwid.split_once("\n\n").unwrap().1;
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert!(
            v["hwid"][1]
                .as_str()
                .unwrap()
                .starts_with("IPC-HDW4431C:01:")
        );
    }
}
