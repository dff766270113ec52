//! Crypto material: X.509 certificates in PEM and DER (subject, issuer, validity, serial, SPKI
//! SHA-256, parsed with `x509-parser`), public and private keys (PEM RSA/EC/PKCS#8, OpenSSH) with
//! the SHA-256 of their public part — SPKI DER, or the OpenSSH wire blob as `ssh-keygen -l` hashes
//! it — private keys flagged and never recorded, and crypt(3) hashes of passwd/shadow lines.
//! Layouts: RFC 5280 (SPKI), RFC 8017 (PKCS#1), RFC 5958 (PKCS#8), RFC 5915 (SEC1), OpenSSH's
//! `PROTOCOL.key` and RFC 4253 §6.6 (wire blobs).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};

use super::scan::{Run, Scan, Trigger};
use super::{Evidence, EvidenceExtractor, Kind, Params};

/// The crypto-material extractor.
#[derive(Clone, Copy, Debug)]
pub struct Crypto;

impl EvidenceExtractor for Crypto {
    fn name(&self) -> &'static str {
        "crypto"
    }

    fn extract(&self, scan: &Scan<'_>, _params: &Params, out: &mut Vec<Evidence>) {
        for off in scan.hits(Trigger::PemBegin) {
            pem(scan, off, out);
        }
        let mut next_free = 0usize;
        for off in scan.hits(Trigger::Der) {
            if off >= next_free
                && let Some(end) = der_object(scan, off, out)
            {
                next_free = end;
            }
        }
        for run in scan.runs(&[Trigger::SshKey]) {
            ssh_public_keys(scan.path, &run, out);
        }
        for run in scan.runs(&[Trigger::Passwd]) {
            password_hash(scan.path, &run, out);
        }
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

// ---------------------------------------------------------------------------------------------
// DER

/// One DER element at the start of `b`: (tag, contents, whole element).
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2usize)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, b.get(header..end)?, b.get(..end)?))
}

/// The elements of a constructed value, in order (at most 16).
fn der_items(mut b: &[u8]) -> Vec<(u8, &[u8], &[u8])> {
    let mut out = Vec::new();
    while !b.is_empty() && out.len() < 16 {
        let Some(item) = der(b) else { break };
        b = b.get(item.2.len()..).unwrap_or_default();
        out.push(item);
    }
    out
}

/// A DER element: `tag`, length, `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut out = vec![tag];
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let len = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | len.len() as u8);
        out.extend_from_slice(len);
    }
    out.extend_from_slice(content);
    out
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// SubjectPublicKeyInfo DER for an algorithm identifier's contents and a public key.
fn spki(alg_contents: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(key);
    let mut body = tlv(0x30, alg_contents);
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

fn rsa_spki(pkcs1_public: &[u8]) -> Vec<u8> {
    let mut alg = tlv(0x06, OID_RSA);
    alg.extend_from_slice(&[0x05, 0x00]);
    spki(&alg, pkcs1_public)
}

fn ec_spki(curve_tlv: &[u8], point: &[u8]) -> Vec<u8> {
    let mut alg = tlv(0x06, OID_EC);
    alg.extend_from_slice(curve_tlv);
    spki(&alg, point)
}

/// PKCS#1 RSAPrivateKey → SPKI of its public half (modulus, exponent).
fn rsa_private_public(pkcs1: &[u8]) -> Option<Vec<u8>> {
    let (tag, body, _) = der(pkcs1)?;
    let items = der_items(body);
    let (n, e) = (items.get(1)?, items.get(2)?);
    if tag != 0x30 || n.0 != 0x02 || e.0 != 0x02 {
        return None;
    }
    let mut public = n.2.to_vec();
    public.extend_from_slice(e.2);
    Some(rsa_spki(&tlv(0x30, &public)))
}

/// SEC1 ECPrivateKey → SPKI of its public point (needs the curve, from the key or `curve`).
fn ec_private_public(sec1: &[u8], curve: Option<&[u8]>) -> Option<Vec<u8>> {
    let (tag, body, _) = der(sec1)?;
    if tag != 0x30 {
        return None;
    }
    let items = der_items(body);
    let mut curve_tlv = curve.map(<[u8]>::to_vec);
    let mut point = None;
    for (t, content, _) in items.iter().skip(2) {
        match t {
            0xa0 => curve_tlv = der(content).map(|(_, _, whole)| whole.to_vec()),
            0xa1 => {
                let (bt, bits, _) = der(content)?;
                if bt == 0x03 {
                    point = bits.get(1..);
                }
            }
            _ => {}
        }
    }
    Some(ec_spki(&curve_tlv?, point?))
}

/// PKCS#8 PrivateKeyInfo / OneAsymmetricKey → (algorithm name, SPKI of the public part if the
/// key holds it).
fn pkcs8_public(der_key: &[u8]) -> Option<(&'static str, Option<Vec<u8>>)> {
    let (tag, body, _) = der(der_key)?;
    if tag != 0x30 {
        return None;
    }
    let items = der_items(body);
    let (alg_tag, alg, _) = *items.get(1)?;
    let (key_tag, key, _) = *items.get(2)?;
    if alg_tag != 0x30 || key_tag != 0x04 {
        return None;
    }
    let alg_items = der_items(alg);
    let (oid_tag, oid, _) = *alg_items.first()?;
    if oid_tag != 0x06 {
        return None;
    }
    if oid == OID_RSA {
        Some(("rsa", rsa_private_public(key)))
    } else if oid == OID_EC {
        let curve = alg_items.get(1).map(|c| c.2);
        Some(("ec", ec_private_public(key, curve)))
    } else if oid == OID_ED25519 {
        let public = items
            .iter()
            .find(|i| i.0 == 0x81)
            .and_then(|(_, bits, _)| bits.get(1..))
            .map(|point| spki(&tlv(0x06, OID_ED25519), point));
        Some(("ed25519", public))
    } else {
        Some(("other", None))
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A UTC timestamp as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian calendar).
fn iso8601(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parses a certificate at the start of `der_bytes`: its DER length and its evidence (the
/// certificate, and the public key it carries).
fn certificate(
    der_bytes: &[u8],
    path: &str,
    offset: u64,
    source: &str,
) -> Option<(usize, Vec<Evidence>)> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der_bytes).ok()?;
    let len = der_bytes.len() - rest.len();
    let whole = der_bytes.get(..len)?;
    let spki_raw = cert.public_key().raw;
    let spki_sha256 = sha256_hex(spki_raw);
    let validity = cert.validity();
    let algorithm = cert.public_key().algorithm.algorithm.to_id_string();
    let detail = json!({
        "source": source,
        "subject": cert.subject().to_string(),
        "issuer": cert.issuer().to_string(),
        "serial": cert.raw_serial_as_string(),
        "not_before": iso8601(validity.not_before.timestamp()),
        "not_after": iso8601(validity.not_after.timestamp()),
        "self_signed": cert.subject().as_raw() == cert.issuer().as_raw(),
        "key_algorithm": algorithm,
        "spki_sha256": spki_sha256,
    });
    let cert_ev = Evidence::new(Kind::Certificate, sha256_hex(whole), detail, path, offset);
    let key_ev = Evidence::new(
        Kind::PublicKey,
        spki_sha256,
        json!({ "source": "certificate", "key_algorithm": algorithm }),
        path,
        offset,
    );
    let mut items = vec![cert_ev, key_ev];
    // The subject's organisation names a vendor candidate.
    for org in cert.subject().iter_organization() {
        if let Ok(name) = org.as_str() {
            let normalized = super::vendor::normalize(name);
            if normalized.len() >= 2 {
                items.push(Evidence::new(
                    Kind::Vendor,
                    name,
                    json!({ "source": "certificate", "normalized": normalized }),
                    path,
                    offset,
                ));
            }
        }
    }
    Some((len, items))
}

/// A DER certificate or SubjectPublicKeyInfo at `off` (a `30 82` hit). Returns where it ends.
fn der_object(scan: &Scan<'_>, off: usize, out: &mut Vec<Evidence>) -> Option<usize> {
    let b = scan.bytes.get(off..)?;
    let outer = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
    let total = outer.checked_add(4)?;
    if total > b.len() || outer < 64 {
        return None;
    }
    let candidate = b.get(..total)?;
    if b.get(4..6) == Some(&[0x30, 0x82]) {
        let inner = usize::from(u16::from_be_bytes([*b.get(6)?, *b.get(7)?]));
        if inner.checked_add(4)? >= outer {
            return None;
        }
        let (len, items) = certificate(candidate, scan.path, off as u64, "der")?;
        out.extend(items);
        return off.checked_add(len);
    }
    if b.get(4..7) == Some(&[0x30, 0x0d, 0x06]) || b.get(4..7) == Some(&[0x30, 0x13, 0x06]) {
        let (rest, key) = SubjectPublicKeyInfo::from_der(candidate).ok()?;
        if !rest.is_empty() {
            return None;
        }
        out.push(Evidence::new(
            Kind::PublicKey,
            sha256_hex(key.raw),
            json!({ "source": "der", "key_algorithm": key.algorithm.algorithm.to_id_string() }),
            scan.path,
            off as u64,
        ));
        return off.checked_add(total);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// PEM

/// Longest PEM block read.
const PEM_MAX: usize = 256 << 10;

/// The PEM block starting at `off` (`-----BEGIN LABEL-----`).
fn pem(scan: &Scan<'_>, off: usize, out: &mut Vec<Evidence>) {
    let Some(rest) = scan.bytes.get(off..) else {
        return;
    };
    if !rest.starts_with(b"-----BEGIN ") {
        return;
    }
    let Some(label_end) = rest
        .get(11..11 + 64.min(rest.len().saturating_sub(11)))
        .and_then(|s| s.windows(5).position(|w| w == b"-----"))
    else {
        return;
    };
    let Some(label) = rest
        .get(11..11 + label_end)
        .and_then(|l| std::str::from_utf8(l).ok())
    else {
        return;
    };
    if label.is_empty()
        || !label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
    {
        return;
    }
    let body_start = 11 + label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let window = rest.get(body_start..(body_start + PEM_MAX).min(rest.len()));
    let Some(body_len) = window.and_then(|w| {
        w.windows(end_marker.len())
            .position(|x| x == end_marker.as_bytes())
    }) else {
        return;
    };
    let Some(body) = rest.get(body_start..body_start + body_len) else {
        return;
    };
    let Ok(body) = std::str::from_utf8(body) else {
        return;
    };
    let mut encrypted = false;
    let mut b64 = String::new();
    for line in body.lines() {
        let line = line.trim();
        if line.contains(':') {
            encrypted |= line.starts_with("Proc-Type") && line.contains("ENCRYPTED");
            continue;
        }
        b64.push_str(line);
    }
    let Ok(der_bytes) = STANDARD.decode(b64.as_bytes()) else {
        return;
    };
    let path = scan.path;
    let offset = off as u64;
    match label {
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
            if let Some((_, items)) = certificate(&der_bytes, path, offset, "pem") {
                out.extend(items);
            }
        }
        "PUBLIC KEY" => {
            if let Ok((_, key)) = SubjectPublicKeyInfo::from_der(&der_bytes) {
                out.push(Evidence::new(
                    Kind::PublicKey,
                    sha256_hex(key.raw),
                    json!({ "source": "pem", "label": label,
                            "key_algorithm": key.algorithm.algorithm.to_id_string() }),
                    path,
                    offset,
                ));
            }
        }
        "RSA PUBLIC KEY" if der(&der_bytes).is_some_and(|(t, _, _)| t == 0x30) => {
            out.push(Evidence::new(
                Kind::PublicKey,
                sha256_hex(&rsa_spki(&der_bytes)),
                json!({ "source": "pem", "label": label, "key_algorithm": "rsa" }),
                path,
                offset,
            ));
        }
        "OPENSSH PRIVATE KEY" => openssh_private(&der_bytes, path, offset, out),
        _ if label.ends_with("PRIVATE KEY") => {
            let (key_type, public) = if encrypted || label == "ENCRYPTED PRIVATE KEY" {
                (label_key_type(label), None)
            } else {
                match label {
                    "PRIVATE KEY" => pkcs8_public(&der_bytes).unwrap_or(("unknown", None)),
                    "RSA PRIVATE KEY" => ("rsa", rsa_private_public(&der_bytes)),
                    "EC PRIVATE KEY" => ("ec", ec_private_public(&der_bytes, None)),
                    _ => (label_key_type(label), None),
                }
            };
            private_key(
                label,
                key_type,
                encrypted,
                public.as_deref(),
                path,
                offset,
                out,
            );
        }
        _ => {}
    }
}

fn label_key_type(label: &str) -> &'static str {
    match label {
        "RSA PRIVATE KEY" => "rsa",
        "EC PRIVATE KEY" => "ec",
        "DSA PRIVATE KEY" => "dsa",
        _ => "unknown",
    }
}

/// A private-key item: the public part's SHA-256 when known (else a description); never the
/// secret.
fn private_key(
    label: &str,
    key_type: &str,
    encrypted: bool,
    public_spki: Option<&[u8]>,
    path: &str,
    offset: u64,
    out: &mut Vec<Evidence>,
) {
    let encrypted = encrypted || label == "ENCRYPTED PRIVATE KEY";
    let public_sha256 = public_spki.map(sha256_hex);
    let value = public_sha256
        .clone()
        .unwrap_or_else(|| format!("{label}{}", if encrypted { " (encrypted)" } else { "" }));
    out.push(Evidence::new(
        Kind::PrivateKey,
        value,
        json!({
            "source": "pem",
            "label": label,
            "key_type": key_type,
            "encrypted": encrypted,
            "public_sha256": public_sha256,
        }),
        path,
        offset,
    ));
}

// ---------------------------------------------------------------------------------------------
// OpenSSH

/// One SSH wire-format string (u32 big-endian length, bytes) and the rest.
fn ssh_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = usize::try_from(u32::from_be_bytes(b.get(..4)?.try_into().ok()?)).ok()?;
    let end = 4usize.checked_add(len)?;
    Some((b.get(4..end)?, b.get(end..)?))
}

fn ssh_fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// `openssh-key-v1`: the public blob is stored in clear even when the key is encrypted.
fn openssh_private(data: &[u8], path: &str, offset: u64, out: &mut Vec<Evidence>) {
    let Some(rest) = data.strip_prefix(b"openssh-key-v1\0") else {
        return;
    };
    let parsed = (|| {
        let (cipher, rest) = ssh_string(rest)?;
        let (_kdf, rest) = ssh_string(rest)?;
        let (_kdf_options, rest) = ssh_string(rest)?;
        let nkeys = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let (blob, _) = ssh_string(rest.get(4..)?)?;
        let (key_type, _) = ssh_string(blob)?;
        Some((cipher, nkeys, blob, key_type))
    })();
    let Some((cipher, nkeys, blob, key_type)) = parsed else {
        return;
    };
    let cipher = String::from_utf8_lossy(cipher).into_owned();
    out.push(Evidence::new(
        Kind::PrivateKey,
        sha256_hex(blob),
        json!({
            "source": "openssh",
            "label": "OPENSSH PRIVATE KEY",
            "key_type": String::from_utf8_lossy(key_type),
            "encrypted": cipher != "none",
            "cipher": cipher,
            "keys": nkeys,
            "public_sha256": sha256_hex(blob),
            "ssh_fingerprint": ssh_fingerprint(blob),
        }),
        path,
        offset,
    ));
}

const SSH_KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
];

/// `ssh-rsa AAAA… comment` lines (authorized_keys, known_hosts, `.pub` files).
fn ssh_public_keys(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    for &key_type in SSH_KEY_TYPES {
        for (at, _) in run.text.match_indices(key_type) {
            let rest = run.text.get(at + key_type.len()..).unwrap_or_default();
            let Some(rest) = rest.strip_prefix(' ') else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let Some(b64) = words.next() else { continue };
            let Ok(blob) = STANDARD.decode(b64) else {
                continue;
            };
            // The type, then at least one key field (exponent, point …).
            let fields = ssh_string(&blob).and_then(|(t, rest)| Some((t, ssh_string(rest)?)));
            if fields.map(|(t, _)| t) != Some(key_type.as_bytes()) {
                continue;
            }
            let comment: Vec<&str> = words.collect();
            out.push(Evidence::new(
                Kind::PublicKey,
                sha256_hex(&blob),
                json!({
                    "source": "openssh",
                    "key_type": key_type,
                    "ssh_fingerprint": ssh_fingerprint(&blob),
                    "comment": comment.join(" "),
                }),
                path,
                run.at(at),
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Password hashes

fn is_crypt64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'/'
}

/// The crypt(3) scheme of a hash field, if it is one.
pub fn hash_scheme(hash: &str) -> Option<&'static str> {
    let b = hash.as_bytes();
    let scheme = if hash.starts_with("$1$") {
        "md5crypt"
    } else if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        "bcrypt"
    } else if hash.starts_with("$5$") {
        "sha256crypt"
    } else if hash.starts_with("$6$") {
        "sha512crypt"
    } else if hash.starts_with("$y$") {
        "yescrypt"
    } else if hash.starts_with("$apr1$") {
        "apr1"
    } else if b.len() == 13 && b.iter().copied().all(is_crypt64) {
        return Some("des");
    } else {
        return None;
    };
    // A `$id$…$hash` field: the part after the last `$` must be a crypt-base64 digest.
    let digest = hash.rsplit('$').next().unwrap_or_default();
    (digest.len() >= 16 && digest.bytes().all(is_crypt64)).then_some(scheme)
}

/// A passwd (7 fields) or shadow (9 fields) line whose password field holds a hash.
fn password_hash(path: &str, run: &Run<'_>, out: &mut Vec<Evidence>) {
    let fields: Vec<&str> = run.text.split(':').collect();
    let format = match fields.len() {
        7 => "passwd",
        9 => "shadow",
        _ => return,
    };
    let (Some(user), Some(field)) = (fields.first(), fields.get(1)) else {
        return;
    };
    let user_ok = !user.is_empty()
        && user.len() <= 32
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !user_ok {
        return;
    }
    let locked = field.starts_with('!');
    let hash = field.trim_start_matches('!');
    let Some(scheme) = hash_scheme(hash) else {
        return;
    };
    out.push(Evidence::new(
        Kind::PasswordHash,
        hash,
        json!({ "source": format, "user": user, "scheme": scheme, "locked": locked }),
        path,
        run.offset,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(data: &[u8]) -> Vec<Evidence> {
        let scan = Scan::new("etc/x", data, &Params::default());
        let mut out = Vec::new();
        Crypto.extract(&scan, &Params::default(), &mut out);
        out
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn der_lengths_and_reencoding() {
        assert_eq!(tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(der(&long).unwrap().1.len(), 300);
        assert!(der(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(der(&[0x30, 0x82, 0xff]).is_none());
        assert!(der(&[0x30, 0x05, 0]).is_none());
    }

    #[test]
    fn password_lines() {
        let ev = run_on(
            b"root:$1$abcdefgh$0123456789abcdefghijkl:0:0:root:/root:/bin/sh\nadmin:ab01FAX.bQRSU:10933:0:99999:7:::\nuser:x:1000:1000::/home/user:/bin/sh\nnobody:*:65534:65534:nobody:/:/bin/false\n",
        );
        let got: Vec<_> = ev
            .iter()
            .map(|e| {
                (
                    e.detail["user"].as_str().unwrap(),
                    e.detail["scheme"].as_str().unwrap(),
                    e.value.as_str(),
                    e.detail["source"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "root",
                    "md5crypt",
                    "$1$abcdefgh$0123456789abcdefghijkl",
                    "passwd"
                ),
                ("admin", "des", "ab01FAX.bQRSU", "shadow"),
            ]
        );
        assert_eq!(ev[1].offset, 63);
    }

    #[test]
    fn garbage_pem_and_der_never_panic() {
        let mut data = Vec::new();
        data.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        data.extend_from_slice(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        data.extend_from_slice(b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n");
        data.extend_from_slice(b"-----BEGIN RSA PRIVATE KEY-----\nMAA=\n");
        data.extend_from_slice(b"-----BEGIN \xff-----");
        data.extend_from_slice(&[0x30, 0x82, 0xff, 0xff, 0x30, 0x82, 0x00, 0x10]);
        data.extend_from_slice(&[0x30, 0x82, 0x00, 0x50, 0x30, 0x82, 0x00, 0x40]);
        data.extend(std::iter::repeat_n(0x30, 0x50));
        data.extend_from_slice(b"ssh-rsa AAAAB3NzaC1yc2E= trunc\n");
        let ev = run_on(&data);
        // Only the unparsable private key's flag survives: never a certificate or fingerprint.
        assert_eq!(ev.len(), 1, "{ev:#?}");
        assert_eq!(ev[0].kind, Kind::PrivateKey);
        assert_eq!(ev[0].value, "PRIVATE KEY");
        for cut in 0..data.len() {
            let _ = run_on(&data[..cut]);
        }
    }
}
