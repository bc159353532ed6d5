//! JUnit XML, as CI systems read test reports: one `<testsuite>` per manifest file, one `<testcase>` per
//! object: a `<failure>` when denied (or warned, with `--fail-on-warn`), `<skipped>` for kinds that name
//! no images, warnings and audit findings in `<system-out>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::report::{CheckReport, ObjectReport, Outcome};

/// Render `report` as a JUnit XML document.
pub fn render(report: &CheckReport, fail_on_warn: bool) -> String {
    let mut files: BTreeMap<&str, Vec<&ObjectReport>> = BTreeMap::new();
    for o in &report.objects {
        files.entry(o.file.as_str()).or_default().push(o);
    }
    let failures = report.objects.iter().filter(|o| o.fails(fail_on_warn)).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"vouch check\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{}\">",
        report.objects.len(),
        report.summary.skipped
    );
    for (file, objects) in files {
        let failures = objects.iter().filter(|o| o.fails(fail_on_warn)).count();
        let skipped = objects.iter().filter(|o| o.outcome == Outcome::Skipped).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
            escape(file),
            objects.len()
        );
        for o in objects {
            testcase(&mut out, o, fail_on_warn);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn testcase(out: &mut String, o: &ObjectReport, fail_on_warn: bool) {
    let name = format!("{} ({})", o.label(), o.location());
    let _ =
        write!(out, "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"", escape(&o.file), escape(&name));
    let mut body = String::new();
    match o.outcome {
        Outcome::Skipped => {
            let why = o.skip_reason.as_deref().unwrap_or_default();
            let _ = writeln!(body, "      <skipped message=\"{}\"/>", escape(why));
        }
        Outcome::Denied => {
            let message = o.decision.message.as_deref().unwrap_or("denied");
            let details: Vec<String> = o.failed_findings().map(ToString::to_string).collect();
            let _ = writeln!(
                body,
                "      <failure type=\"denied\" message=\"{}\">{}</failure>",
                escape(message),
                escape(&details.join("\n"))
            );
        }
        Outcome::Warned if fail_on_warn => {
            let _ = writeln!(
                body,
                "      <failure type=\"warning\" message=\"{}\">{}</failure>",
                escape(o.decision.warnings.first().map(String::as_str).unwrap_or("warning")),
                escape(&o.decision.warnings.join("\n"))
            );
        }
        Outcome::Allowed | Outcome::Warned => {}
    }
    let mut lines: Vec<String> = o.decision.warnings.iter().map(|w| format!("warning: {w}")).collect();
    lines.extend(o.decision.audit.iter().map(|a| format!("audit: {}", a)));
    lines.extend(o.decision.findings.iter().map(|f| format!("{}: {}", f.result, f)));
    if !lines.is_empty() {
        let _ = writeln!(body, "      <system-out>{}</system-out>", escape(&lines.join("\n")));
    }
    if body.is_empty() {
        out.push_str("/>\n");
    } else {
        out.push_str(">\n");
        out.push_str(&body);
        out.push_str("    </testcase>\n");
    }
}

/// Escape for XML text and attribute values; characters XML 1.0 cannot carry are replaced.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;\u{fffd}");
        assert_eq!(escape("x\ny"), "x&#10;y");
    }
}
