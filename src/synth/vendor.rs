//! Vendor software profiles for the camera writer: whose programs, web pages, keys and password
//! hashes an image carries, on which chip SDK, at which release. Two profiles with different
//! names share only the open-source parts (BusyBox, uClibc, OpenSSL) and common data; the same
//! profile under another [`super::Brand`] is a rebrand; a later release is a new version.

use base64::Engine;

use super::content::Rng;

/// The chip whose vendor SDK (libraries, kernel modules, toolchain) the image is built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Soc {
    /// HiSilicon Hi3516A (the camera writer's default layout).
    Hi3516a,
    /// Ingenic T31.
    IngenicT31,
}

impl Soc {
    /// Folder name of the SDK in build paths, and seed of the SDK's binaries.
    pub fn sdk_dir(self) -> &'static str {
        match self {
            Soc::Hi3516a => "hi3516a",
            Soc::IngenicT31 => "ingenic-t31",
        }
    }

    /// SDK libraries: (file name, size in KiB at 100 %).
    pub fn libraries(self) -> &'static [(&'static str, usize)] {
        match self {
            Soc::Hi3516a => &[
                ("libmpi.so", 400),
                ("libisp.so", 120),
                ("libsns_imx290.so", 40),
                ("libdvr.so", 300),
                ("libaudio.so", 90),
                ("libhi_cipher.so", 30),
            ],
            Soc::IngenicT31 => &[
                ("libimp.so", 450),
                ("libsysutils.so", 60),
                ("libalog.so", 30),
                ("libaudioProcess.so", 150),
            ],
        }
    }

    /// SDK kernel modules: (file name, size in KiB at 100 %).
    pub fn modules(self) -> &'static [(&'static str, usize)] {
        match self {
            Soc::Hi3516a => &[
                ("hi3516a_base.ko", 20),
                ("hi3516a_sys.ko", 60),
                ("hi_mipi.ko", 40),
                ("sensor.ko", 55),
                ("spf.ko", 50),
            ],
            Soc::IngenicT31 => &[
                ("tx-isp-t31.ko", 200),
                ("sensor_gc2053_t31.ko", 30),
                ("avpu.ko", 40),
                ("audio.ko", 60),
            ],
        }
    }

    /// The SDK's version string, compiled into its libraries.
    pub fn sdk_string(self) -> &'static str {
        match self {
            Soc::Hi3516a => "HiSilicon MPP V2.0.5.0",
            Soc::IngenicT31 => "Ingenic IMP SDK 1.1.5 (t31)",
        }
    }

    /// Kernel release and toolchain of the SDK.
    pub fn kernel(self) -> (&'static str, &'static str) {
        match self {
            Soc::Hi3516a => (
                "3.18.20",
                "gcc version 4.9.4 20150629 (prerelease) (Hisilicon_v300)",
            ),
            Soc::IngenicT31 => (
                "3.10.14__isvp_swan_1.0__",
                "gcc version 4.7.2 (Ingenic r2.3.3 2016.12)",
            ),
        }
    }
}

/// One vendor's software.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Software {
    /// Seeds the vendor's own programs, web scripts, key and password hashes.
    pub name: String,
    /// Support domain compiled into the programs (a rebrand that keeps the programs keeps it).
    pub domain: String,
    /// Chip SDK.
    pub soc: Soc,
    /// Release number: each step adds about 4 % code to the vendor's programs (later versions
    /// extend the same code).
    pub release: u32,
}

impl Software {
    /// A profile on `soc`, release 0, with domain `<name>.example`.
    pub fn new(name: &str, soc: Soc) -> Self {
        Self {
            name: name.to_owned(),
            domain: format!("{}.example", name.to_ascii_lowercase()),
            soc,
            release: 0,
        }
    }

    /// Seed name of a vendor program or asset.
    pub fn seed(&self, what: &str) -> String {
        format!("{}/{what}", self.name)
    }

    /// Size of a vendor program of `kib` KiB at this release.
    pub fn program_len(&self, len: usize) -> usize {
        let r = usize::try_from(self.release).unwrap_or(0);
        len.saturating_mul(100 + 4 * r) / 100
    }

    /// `/etc/shadow` with crypt(3) MD5 hashes that depend on the profile only.
    pub fn shadow(&self) -> String {
        let mut rng = Rng::named(&self.seed("shadow"));
        let mut hash = |n: usize| -> String {
            const ALPHABET: &[u8] =
                b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            (0..n)
                .map(|_| {
                    let i = usize::try_from(rng.below(64)).unwrap_or(0);
                    char::from(ALPHABET.get(i).copied().unwrap_or(b'.'))
                })
                .collect()
        };
        let (s1, h1, s2, h2) = (hash(8), hash(22), hash(8), hash(22));
        format!("root:$1${s1}${h1}:16000:0:99999:7:::\nadmin:$1${s2}${h2}:16000:0:99999:7:::\n")
    }

    /// The vendor's TLS server key: a PEM `RSA PRIVATE KEY` (PKCS#1 layout, 1024-bit modulus)
    /// whose numbers are drawn from the profile's seed — structurally a key, not a usable one.
    pub fn private_key_pem(&self) -> String {
        let mut rng = Rng::named(&self.seed("tls-key"));
        let mut int = |len: usize| -> Vec<u8> {
            let mut v: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if let Some(first) = v.first_mut() {
                *first |= 0x80;
            }
            // Positive INTEGER: a leading zero before a set high bit.
            let mut body = vec![0u8];
            body.append(&mut v);
            tlv(0x02, &body)
        };
        let mut seq = tlv(0x02, &[0]);
        seq.extend(int(128)); // n
        seq.extend(tlv(0x02, &[0x01, 0x00, 0x01])); // e
        seq.extend(int(128)); // d
        for _ in 0..5 {
            seq.extend(int(64)); // p, q, dp, dq, qinv
        }
        let der = tlv(0x30, &seq);
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END RSA PRIVATE KEY-----\n");
        pem
    }
}

/// A DER element (definite length).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::evidence::{self, Kind, Params};

    #[test]
    fn key_is_found_as_a_private_key_with_its_public_part() {
        let a = Software::new("Vistacam", Soc::Hi3516a);
        let pem = a.private_key_pem();
        let ev = evidence::extract("etc/ssl/server.key", pem.as_bytes(), &Params::default());
        let key = ev.iter().find(|e| e.kind == Kind::PrivateKey).unwrap();
        assert_eq!(key.value.len(), 64, "SHA-256 of the public part: {key:?}");
        let other = Software::new("Northgate", Soc::Hi3516a).private_key_pem();
        assert_ne!(pem, other);
        assert_eq!(pem, a.private_key_pem(), "deterministic");
    }

    #[test]
    fn shadow_hashes_depend_on_the_profile() {
        let a = Software::new("Vistacam", Soc::Hi3516a);
        let b = Software::new("Northgate", Soc::IngenicT31);
        assert_ne!(a.shadow(), b.shadow());
        assert!(a.shadow().starts_with("root:$1$"));
        assert_eq!(a.program_len(1000), 1000);
        let next = Software { release: 2, ..a };
        assert_eq!(next.program_len(1000), 1080);
    }
}
