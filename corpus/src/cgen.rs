//! The seeded C program generator: a vendor's "proprietary" programs and libraries (many
//! functions, lookup tables, config parsers, log lines with vendor strings and build paths) as C
//! source, the same for the same seed, changing a few functions per version.

use std::fmt::Write as _;

/// The strings a vendor puts into its programs: what a rebrand replaces.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VendorStrings {
    /// Company name (`Vistacam Technology Co., Ltd.`).
    pub vendor: String,
    /// Short tag used in log prefixes and identifiers (`VSTC`).
    pub tag: String,
    /// Product model (`IPC-HFW4431R`).
    pub product: String,
    /// Firmware version string.
    pub fw_version: String,
    /// Root of the build tree the `__FILE__` paths start with (`/home/jenkins/vstc_ipc`).
    pub build_root: String,
    /// Support URL.
    pub url: String,
    /// Support e-mail address.
    pub email: String,
}

/// One program or library to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    /// File name it is installed under (`ipc_server`, `libvnet.so`).
    pub name: String,
    /// The software's identity: the same seed is the same code.
    pub seed: u64,
    /// Functions in version 1.
    pub functions: usize,
    /// Functions added by every later version.
    pub added_per_version: usize,
    /// Version of the software (1, 2 …): each later version rewrites about a tenth of the
    /// functions and adds `added_per_version`.
    pub version: u32,
    /// A shared library (exported functions, no `main`) rather than an executable.
    pub shared_lib: bool,
    /// Source directory under the build root (`src/app`).
    pub subdir: String,
}

/// splitmix64: the seed mixer of the generator.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed from a name.
pub fn seed_of(name: &str) -> u64 {
    name.bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| mix(h, u64::from(b)))
}

/// A small deterministic generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0, 0)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }

    /// One of `items` (the first when the draw fails, "" when empty).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = self.below(items.len());
        items.get(i).copied().unwrap_or("")
    }
}

const WORDS: &[&str] = &[
    "stream", "encoder", "channel", "alarm", "motion", "ptz", "onvif", "rtsp", "snapshot",
    "record", "upgrade", "network", "wifi", "sensor", "isp", "osd", "audio", "storage", "sdcard",
    "cloud", "p2p", "user", "login", "session", "config", "ntp", "ddns", "smtp", "ftp", "upnp",
    "privacy", "mask", "ircut", "daynight", "exposure", "whitebal", "bitrate", "gop", "profile",
    "event", "schedule", "watchdog", "led", "button", "reset", "factory", "license", "token",
];

const VERBS: &[&str] = &[
    "init", "start", "stop", "open", "close", "parse", "load", "save", "apply", "check", "update",
    "query", "set", "get", "reset", "notify", "register", "dispatch", "encode", "decode",
];

const MESSAGES: &[&str] = &[
    "failed to open %s, errno %d",
    "invalid parameter %s=%d",
    "%s: timeout after %d ms",
    "channel %d state changed to %s",
    "cannot allocate %d bytes for %s",
    "%s ready (%d)",
    "unsupported %s mode %d",
    "retry %d of %s",
    "config key %s out of range: %d",
    "session %d closed by %s",
];

/// The generated source of one program.
pub fn generate(spec: &ProgramSpec, v: &VendorStrings) -> String {
    let mut src = String::new();
    let file = format!("{}/{}/{}.c", v.build_root, spec.subdir, stem(&spec.name));
    let _ = writeln!(src, "/* {} — {} */", spec.name, v.vendor);
    let _ = writeln!(src, "#line 1 \"{file}\"");
    src.push_str("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n");
    let _ = writeln!(src, "#define VENDOR_TAG \"{}\"", c_escape(&v.tag));
    let _ = writeln!(
        src,
        "static const char vendor_banner[] = \"{} {} {} — {}\";",
        c_escape(&v.vendor),
        c_escape(&v.product),
        c_escape(&v.fw_version),
        c_escape(&v.url)
    );
    let _ = writeln!(
        src,
        "static const char vendor_copyright[] = \"Copyright (c) 2015-2021 {}. All rights reserved. Contact {}\";\n",
        c_escape(&v.vendor),
        c_escape(&v.email)
    );
    let n = spec.functions.saturating_add(
        spec.added_per_version
            .saturating_mul(spec.version.saturating_sub(1) as usize),
    );
    let prefix = if spec.shared_lib {
        format!("{}_", ident(&stem(&spec.name)))
    } else {
        String::new()
    };
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let rev = revision(spec.seed, i, spec.version);
        let mut rng = Rng::new(mix(mix(spec.seed, i as u64), u64::from(rev)));
        // The name stays across revisions: it comes from the function's identity only.
        let mut name_rng = Rng::new(mix(spec.seed, i as u64 ^ 0x5a5a));
        let name = format!(
            "{prefix}{}_{}_{i}",
            name_rng.pick(WORDS),
            name_rng.pick(VERBS)
        );
        let linkage = if spec.shared_lib { "" } else { "static " };
        function(&mut src, &mut rng, linkage, &name, v);
        names.push(name);
    }
    let _ = writeln!(
        src,
        "typedef int (*handler_fn)(int, const char *);\n{}const handler_fn handlers[{}] = {{",
        if spec.shared_lib { "" } else { "static " },
        names.len().max(1)
    );
    for name in &names {
        let _ = writeln!(src, "    {name},");
    }
    if names.is_empty() {
        src.push_str("    0,\n");
    }
    src.push_str("};\n\n");
    if spec.shared_lib {
        let _ = writeln!(
            src,
            "const char *{prefix}version(void) {{ return vendor_banner; }}\nconst char *{prefix}copyright(void) {{ return vendor_copyright; }}"
        );
    } else {
        let _ = writeln!(
            src,
            "int main(int argc, char **argv)\n{{\n    int acc = argc;\n    unsigned int i;\n    \
             if (argc > 1 && strcmp(argv[1], \"--version\") == 0) {{ puts(vendor_banner); puts(vendor_copyright); return 0; }}\n    \
             for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)\n        \
             acc += handlers[i](acc, argc > 1 ? argv[1] : \"{}\");\n    \
             printf(\"[%s] exit %d\\n\", VENDOR_TAG, acc);\n    return acc & 0x7f;\n}}",
            c_escape(&v.product)
        );
    }
    src
}

/// How many times function `i` was rewritten up to `version`.
fn revision(seed: u64, i: usize, version: u32) -> u32 {
    (2..=version)
        .filter(|&ver| mix(mix(seed, i as u64), u64::from(ver) ^ 0xdead_beef) % 100 < 10)
        .count() as u32
}

fn function(src: &mut String, rng: &mut Rng, linkage: &str, name: &str, v: &VendorStrings) {
    let kind = rng.below(6);
    match kind {
        0 | 1 => {
            // Table walk: constants land in .rodata.
            let k = 16 + rng.below(48);
            let _ = write!(src, "static const unsigned int tbl_{name}[{k}] = {{");
            for j in 0..k {
                if j % 8 == 0 {
                    src.push_str("\n    ");
                }
                let _ = write!(src, "0x{:08x}u, ", rng.next_u64() as u32);
            }
            src.push_str("\n};\n");
            let (a, b, c) = (rng.below(31) + 1, rng.below(29) + 1, rng.next_u64() as u32);
            let _ = write!(
                src,
                "{linkage}int {name}(int x, const char *s)\n{{\n    unsigned int acc = 0x{c:08x}u ^ (unsigned int)x;\n    unsigned int i;\n    \
                 for (i = 0; i < {k}; i++) {{\n        acc = (acc << {a}) | (acc >> (32 - {a}));\n        acc ^= tbl_{name}[(i + (unsigned int)x) % {k}] + (unsigned int)(s ? s[i % 4] : 0);\n        acc += {b}u * i;\n    }}\n    return (int)(acc & 0x7fffffff);\n}}\n\n"
            );
        }
        2 => {
            // Log line with vendor strings and the source position.
            let msg = rng.pick(MESSAGES);
            let what = format!("{}_{}", rng.pick(WORDS), rng.pick(WORDS));
            let extra = match rng.below(4) {
                0 => format!("{} {}", v.vendor, v.product),
                1 => format!("see {}", v.url),
                2 => format!("mail {}", v.email),
                _ => format!("{} fw {}", v.product, v.fw_version),
            };
            let _ = write!(
                src,
                "{linkage}int {name}(int x, const char *s)\n{{\n    char buf[256];\n    int n = snprintf(buf, sizeof buf, \"[%s] %s:%d {msg}\", VENDOR_TAG, __FILE__, __LINE__, s ? s : \"{what}\", x);\n    \
                 if (x < 0) fprintf(stderr, \"%s ({})\\n\", buf);\n    return n + (int)buf[n > 8 ? 8 : 0];\n}}\n\n",
                c_escape(&extra)
            );
        }
        3 => {
            // Config parser: key comparisons and scaled values.
            let keys: Vec<String> = (0..3 + rng.below(5))
                .map(|_| format!("{}.{}", rng.pick(WORDS), rng.pick(WORDS)))
                .collect();
            let _ = write!(
                src,
                "{linkage}int {name}(int x, const char *s)\n{{\n    if (!s) return x;\n"
            );
            for key in &keys {
                let mul = rng.below(997) + 3;
                let _ = writeln!(
                    src,
                    "    if (strncmp(s, \"{key}=\", {}) == 0) return atoi(s + {}) * {mul} + x;",
                    key.len() + 1,
                    key.len() + 1
                );
            }
            let _ = write!(src, "    return x ^ {};\n}}\n\n", rng.below(65_536));
        }
        4 => {
            // State machine.
            let cases = 4 + rng.below(8);
            let _ = write!(
                src,
                "{linkage}int {name}(int x, const char *s)\n{{\n    int st = x & 15, i;\n    for (i = 0; i < 8; i++) {{\n        switch (st) {{\n"
            );
            for c in 0..cases {
                let _ = writeln!(
                    src,
                    "        case {c}: x = x * {} + {}; st = (x >> {}) & 15; break;",
                    rng.below(97) + 2,
                    rng.below(10_000),
                    rng.below(8) + 1
                );
            }
            let _ = write!(
                src,
                "        default: x ^= {}; st = {}; break;\n        }}\n    }}\n    return x + (s ? (int)strlen(s) : 0);\n}}\n\n",
                rng.next_u64() as u16,
                rng.below(cases)
            );
        }
        _ => {
            // CRC-like checksum.
            let poly = rng.next_u64() as u32 | 1;
            let _ = write!(
                src,
                "{linkage}int {name}(int x, const char *s)\n{{\n    unsigned int crc = 0x{:08x}u ^ (unsigned int)x;\n    const char *p = s ? s : \"{}\";\n    \
                 while (*p) {{\n        int k;\n        crc ^= (unsigned char)*p++;\n        for (k = 0; k < 8; k++)\n            crc = (crc >> 1) ^ (0x{poly:08x}u & (0u - (crc & 1u)));\n    }}\n    return (int)(crc >> 1);\n}}\n\n",
                rng.next_u64() as u32,
                rng.pick(WORDS)
            );
        }
    }
}

/// The name without a `lib` prefix and extension (`libvnet.so` → `vnet`).
fn stem(name: &str) -> String {
    let base = name.strip_prefix("lib").unwrap_or(name);
    base.split('.').next().unwrap_or(base).to_owned()
}

fn ident(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn c_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            _ => out.push('_'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(vendor: &str) -> VendorStrings {
        VendorStrings {
            vendor: vendor.into(),
            tag: "VSTC".into(),
            product: "IPC-1".into(),
            fw_version: "V1.0".into(),
            build_root: "/home/jenkins/vstc".into(),
            url: "http://www.example.com".into(),
            email: "support@example.com".into(),
        }
    }

    fn spec(seed: u64, version: u32) -> ProgramSpec {
        ProgramSpec {
            name: "ipc_server".into(),
            seed,
            functions: 40,
            added_per_version: 4,
            version,
            shared_lib: false,
            subdir: "src/app".into(),
        }
    }

    #[test]
    fn same_seed_same_source() {
        let a = generate(&spec(7, 2), &strings("Vistacam"));
        let b = generate(&spec(7, 2), &strings("Vistacam"));
        assert_eq!(a, b);
        assert!(a.contains("int main(int argc"));
        assert!(a.contains("#line 1 \"/home/jenkins/vstc/src/app/ipc_server.c\""));
    }

    #[test]
    fn other_seed_other_source() {
        let a = generate(&spec(7, 1), &strings("Vistacam"));
        let b = generate(&spec(8, 1), &strings("Vistacam"));
        assert_ne!(a, b);
    }

    #[test]
    fn rebrand_changes_only_vendor_strings() {
        let a = generate(&spec(7, 1), &strings("Vistacam"));
        let b = generate(&spec(7, 1), &strings("Acmevision"));
        assert_ne!(a, b);
        assert_eq!(a.replace("Vistacam", "Acmevision"), b);
    }

    #[test]
    fn a_new_version_keeps_most_functions_and_adds_some() {
        let v1 = generate(&spec(7, 1), &strings("V"));
        let v3 = generate(&spec(7, 3), &strings("V"));
        let fns = |s: &str| -> Vec<String> {
            s.split("\n\n")
                .filter(|b| b.contains("(int x, const char *s)"))
                .map(str::to_owned)
                .collect()
        };
        let (f1, f3) = (fns(&v1), fns(&v3));
        assert_eq!(f1.len(), 40);
        assert_eq!(f3.len(), 48);
        let kept = f1.iter().filter(|f| f3.contains(f)).count();
        assert!((28..40).contains(&kept), "kept {kept} of 40");
    }

    #[test]
    fn libraries_export_prefixed_functions() {
        let mut s = spec(9, 1);
        s.shared_lib = true;
        s.name = "libvnet.so".into();
        let src = generate(&s, &strings("V"));
        assert!(!src.contains("int main("));
        assert!(src.contains("const char *vnet_version(void)"));
        assert!(src.contains("\nint vnet_"));
    }
}
