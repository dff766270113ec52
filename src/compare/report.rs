//! A [`Comparison`] as terminal text: score and verdict, the labels used, sub-scores, coverage,
//! and the strongest findings with both paths and their numbers. Names from the images are
//! escaped (JSON output keeps them exact).

use std::io::{self, Write};

use super::score::{Category, Comparison, Finding, Side};
use super::verdict::LabelSource;
use crate::unpack::tree::escape_name;

fn esc(s: &str) -> String {
    escape_name(s.as_bytes())
}

fn label(s: &Side) -> String {
    let from = match s.label.source {
        LabelSource::Given => "given",
        LabelSource::Evidence => "from evidence",
        LabelSource::None => "unknown",
    };
    match &s.label.vendor {
        Some(v) => format!("{} ({from})", esc(v)),
        None => "vendor unknown".to_owned(),
    }
}

/// What the verdict means, in one line.
fn meaning(c: &Comparison) -> &'static str {
    use super::verdict::Verdict::*;
    match c.verdict {
        Rebrand => "the same software under a different vendor label",
        SameVendor => "the same software from the same vendor (another product or version)",
        SharedSdk => "only a chip vendor's SDK and common components in common",
        Unrelated => "nothing of weight in common beyond common open-source components",
        Inconclusive => "too little of one image could be unpacked to judge",
    }
}

fn numbers(f: &Finding) -> String {
    let mut parts = Vec::new();
    if f.what.starts_with("shared_") {
        if let Some(v) = &f.value {
            parts.push(esc(v));
        }
    } else {
        parts.push(format!("similarity {:.2}", f.similarity));
        if let Some(s) = f.ssdeep {
            parts.push(format!("ssdeep {s}"));
        }
        if let Some(t) = f.tlsh {
            parts.push(format!("tlsh {t}"));
        }
        if let Some(t) = f.identifier_tlsh {
            parts.push(format!("identifiers tlsh {t}"));
        }
        for s in f.sections.iter().take(3) {
            parts.push(if s.identical {
                format!("{} identical", esc(&s.name))
            } else {
                format!("{} {:.2}", esc(&s.name), s.similarity)
            });
        }
        if let Some(v) = &f.value {
            parts.push(format!("component {}", esc(v)));
        }
        if f.packed {
            parts.push("packed (not scored as code)".into());
        }
    }
    parts.push(format!("rarity {:.2}", f.rarity));
    parts.join(", ")
}

/// Writes `c` as text, with at most `top` findings.
pub fn write_text(c: &Comparison, top: usize, w: &mut impl Write) -> io::Result<()> {
    writeln!(w, "A  {}  {}", esc(&c.a.name), label(&c.a))?;
    writeln!(w, "B  {}  {}", esc(&c.b.name), label(&c.b))?;
    writeln!(w)?;
    writeln!(w, "score    {:.1} / 100", c.score)?;
    writeln!(w, "verdict  {}: {}", c.verdict.as_str(), meaning(c))?;
    writeln!(w)?;
    write!(w, "sub-scores")?;
    for cat in Category::ALL {
        match c.sub_scores.get(cat) {
            Some(v) => write!(w, "  {} {:.1}", cat.as_str(), v)?,
            None => write!(w, "  {} -", cat.as_str())?,
        }
    }
    writeln!(w)?;
    writeln!(
        w,
        "files     A {} ({} matched), B {} ({} matched); {} identical, {} similar; sdk share {:.2}",
        c.a.files,
        c.a.matched_files,
        c.b.files,
        c.b.matched_files,
        c.identical_files,
        c.similar_files,
        c.sdk_share
    )?;
    writeln!(
        w,
        "coverage  A {:.0}%, B {:.0}% of the non-padding bytes identified; rarity from {}{}",
        c.a.identified_content_share * 100.0,
        c.b.identified_content_share * 100.0,
        c.rarity_source,
        if c.shared_secret {
            "; a private key or certificate is shared"
        } else {
            ""
        }
    )?;
    if c.evidence.is_empty() {
        return Ok(());
    }
    writeln!(w)?;
    writeln!(
        w,
        "evidence (strongest first, {} of {}):",
        top.min(c.evidence.len()),
        c.evidence.len()
    )?;
    for f in c.evidence.iter().take(top) {
        writeln!(
            w,
            "  {:5.2}  {:<10} {}",
            f.strength,
            f.category.as_str(),
            f.what.replace('_', " ")
        )?;
        if f.a_path == f.b_path {
            writeln!(w, "         A, B  {}", esc(&f.a_path))?;
        } else {
            writeln!(w, "         A  {}", esc(&f.a_path))?;
            writeln!(w, "         B  {}", esc(&f.b_path))?;
        }
        writeln!(w, "         {}", numbers(f))?;
    }
    Ok(())
}
