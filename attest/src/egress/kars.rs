//! kars egress allowlists (`application/vnd.kars.egress-allowlist.v1+yaml`): the signed allowlist of Azure
//! kars's `KarsSandbox.spec.networkPolicy.allowlistRef`, read as kars's own consumer reads it.
//!
//! The document is canonical YAML (kars `docs/api/policy-canonical-format.md` §0 and §1): block style only,
//! fixed key order, LF line endings with one trailing newline, two-space indentation, plain scalars,
//! endpoints sorted by `(host, port, protocol)` without duplicates, `apiVersion: kars.dev/v1alpha1` and
//! `kind: EgressAllowlist` first, a positive `metadata.generation`:
//!
//! ```yaml
//! apiVersion: kars.dev/v1alpha1
//! kind: EgressAllowlist
//! metadata:
//!   name: sandbox-foo
//!   generation: 3
//! spec:
//!   endpoints:
//!     - host: api.github.com
//!       port: 443
//!     - host: telegram.org
//!       port: 443
//! ```
//!
//! Every byte is checked: a document that is not canonical is refused with the rule it breaks
//! ([`CanonicalRule`]), since producer and consumer must agree byte for byte on what was signed. Hosts match
//! by parent domain (an entry `telegram.org` covers `telegram.org` and every name under it, as kars's
//! router matches), ports exactly; an endpoint declared without a port means every port and is never
//! covered.

use std::fmt;

use super::allowlist::{uncovered_by, Uncovered, MAX_DOCUMENT_BYTES, MAX_ENTRIES};
use super::endpoint::{shorten, split_wildcard, Endpoint};
use super::EgressError;

/// `artifactType` of a kars egress allowlist (also the media type of its one layer).
pub const KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE: &str = "application/vnd.kars.egress-allowlist.v1+yaml";
/// The pinned `apiVersion` of kars's signed policy documents.
pub const KARS_API_VERSION: &str = "kars.dev/v1alpha1";
/// The pinned `kind` of an egress allowlist.
pub const KARS_KIND: &str = "EgressAllowlist";
/// Longest `metadata.name` or host name.
const MAX_NAME_LEN: usize = 253;
/// Longest `protocol`.
const MAX_PROTOCOL_LEN: usize = 32;

/// A parsed, canonical kars egress allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KarsAllowlist {
    /// `metadata.name`: optional (kars's `kars egress --sign` has written allowlists without it).
    pub name: Option<String>,
    /// `metadata.generation` (positive).
    pub generation: u64,
    /// `spec.endpoints`, in their canonical order.
    pub endpoints: Vec<KarsEndpoint>,
}

/// One allowed destination: a host (and every name under it) on one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KarsEndpoint {
    /// Lower-case ASCII (IDNs in their `xn--` form), no wildcard.
    pub host: String,
    /// 1–65535.
    pub port: u16,
    /// Optional; read and kept, not compared (declared endpoints carry no protocol).
    pub protocol: Option<String>,
}

/// A rule of kars's canonical format (`docs/api/policy-canonical-format.md`) a document can break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanonicalRule {
    /// §0.1: no flow style, anchors, aliases, tags, block scalars, comments, or document-end marker.
    BlockStyle,
    /// §0.2: keys in the kind's fixed order.
    KeyOrder,
    /// §0.3: UTF-8, LF line endings, one trailing newline, no control characters.
    Encoding,
    /// §0.4: no tabs, exactly two spaces per level, no blank lines or trailing spaces.
    Whitespace,
    /// §0.5: integers as plain digits, strings as plain scalars a YAML parser reads as strings.
    Scalars,
    /// §0.6: endpoints sorted by `(host, port, protocol)`, no duplicates.
    ListOrder,
    /// §0.7: `apiVersion: kars.dev/v1alpha1` and `kind: EgressAllowlist` as the first two keys.
    Header,
    /// §0.8: `metadata.generation`, a positive integer.
    Generation,
    /// §1: host normalisation (lower-case `[a-z0-9.-]`, no leading or trailing dot, no `..`, no wildcard).
    Host,
    /// §1 and §7: the v1 fields only (`metadata.name`, endpoints `host`, `port` 1–65535, `protocol`).
    Fields,
}

impl CanonicalRule {
    /// The rule as kars's document numbers and names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::BlockStyle => "§0.1 block style only",
            Self::KeyOrder => "§0.2 fixed key order",
            Self::Encoding => "§0.3 UTF-8, LF line endings, single trailing newline",
            Self::Whitespace => "§0.4 no tabs, two-space indentation",
            Self::Scalars => "§0.5 integer and scalar normalisation",
            Self::ListOrder => "§0.6 list ordering",
            Self::Header => "§0.7 pinned apiVersion and kind",
            Self::Generation => "§0.8 generation",
            Self::Host => "§1 host normalisation",
            Self::Fields => "§1 EgressAllowlist v1 fields",
        }
    }
}

impl fmt::Display for CanonicalRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl KarsAllowlist {
    /// Read a document: at most [`MAX_DOCUMENT_BYTES`], canonical in every byte, at most [`MAX_ENTRIES`]
    /// endpoints; the first rule broken is named ([`EgressError::NonCanonical`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, EgressError> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(EgressError::TooLarge { size: bytes.len() as u64, limit: MAX_DOCUMENT_BYTES });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            non_canonical(CanonicalRule::Encoding, line_of(bytes, e.valid_up_to()), "not UTF-8".into())
        })?;
        let lines = lines(text)?;
        let list = Reader { lines: &lines, at: 0 }.document()?;
        if list.endpoints.len() > MAX_ENTRIES {
            return Err(EgressError::TooManyEntries { count: list.endpoints.len(), limit: MAX_ENTRIES });
        }
        check_order(&list, &lines)?;
        cross_check(text, &list)?;
        Ok(list)
    }

    /// The name used in messages: `metadata.name`, else `generation N`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("generation {}", self.generation),
        }
    }

    /// Whether the list allows `endpoint`: a host when an entry is the host itself or a parent domain of
    /// it (for a wildcard endpoint, of its base name), with the same port; a single IPv4 address when an
    /// entry names that address, with the same port. Networks, IPv6 and endpoints without a port (every
    /// port) are never covered.
    pub fn covers(&self, endpoint: &Endpoint) -> bool {
        match endpoint {
            Endpoint::Host { port: None, .. } | Endpoint::Net { port: None, .. } => false,
            Endpoint::Host { host, port: Some(p) } => {
                let (_, base) = split_wildcard(host);
                self.endpoints.iter().any(|e| e.port == *p && under(base, &e.host))
            }
            Endpoint::Net { net, port: Some(p) } => {
                let single = net.prefix_len() == net.max_prefix_len();
                single && net.addr().is_ipv4() && {
                    let address = net.addr().to_string();
                    self.endpoints.iter().any(|e| e.port == *p && e.host == address)
                }
            }
        }
    }

    /// The endpoints, as written, that the list does not cover; unreadable ones are never covered.
    pub fn uncovered<S: AsRef<str>>(&self, written: &[S]) -> Vec<Uncovered> {
        let why_not = |e: &Endpoint| match e.port() {
            None => format!(
                "no port, so every port; kars egress allowlist {} allows one port per entry",
                self.label()
            ),
            Some(_) => format!("not in egress allowlist {}", self.label()),
        };
        uncovered_by(written, |e| self.covers(e), why_not)
    }

    /// The canonical document (what [`Self::parse`] reads back): for tests and publishing.
    pub fn to_canonical_yaml(&self) -> String {
        let mut out = format!("apiVersion: {KARS_API_VERSION}\nkind: {KARS_KIND}\nmetadata:\n");
        if let Some(n) = &self.name {
            out.push_str(&format!("  name: {n}\n"));
        }
        out.push_str(&format!("  generation: {}\nspec:\n", self.generation));
        if self.endpoints.is_empty() {
            out.push_str("  endpoints: []\n");
            return out;
        }
        out.push_str("  endpoints:\n");
        for e in &self.endpoints {
            out.push_str(&format!("    - host: {}\n      port: {}\n", e.host, e.port));
            if let Some(p) = &e.protocol {
                out.push_str(&format!("      protocol: {p}\n"));
            }
        }
        out
    }
}

/// `name` is `parent` or a name under it.
fn under(name: &str, parent: &str) -> bool {
    name == parent || name.strip_suffix(parent).is_some_and(|front| front.ends_with('.') && front.len() > 1)
}

fn non_canonical(rule: CanonicalRule, line: usize, detail: String) -> EgressError {
    EgressError::NonCanonical { rule, line, detail }
}

/// The 1-based line of byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes.get(..offset).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) + 1
}

/// One line: its number, indentation (spaces) and content after it.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    number: usize,
    indent: usize,
    content: &'a str,
}

/// The lines of the document after the byte-level rules (§0.3, §0.4, comments of §0.1); an optional
/// leading `---` is dropped.
fn lines(text: &str) -> Result<Vec<Line<'_>>, EgressError> {
    use CanonicalRule::{BlockStyle, Encoding, Whitespace};
    if text.starts_with('\u{feff}') {
        return Err(non_canonical(Encoding, 1, "starts with a byte order mark".into()));
    }
    if let Some(i) = text.find('\r') {
        return Err(non_canonical(Encoding, line_of(text.as_bytes(), i), "CR line ending (LF only)".into()));
    }
    let Some(body) = text.strip_suffix('\n') else {
        let n = text.lines().count().max(1);
        return Err(non_canonical(Encoding, n, "no trailing newline".into()));
    };
    let mut out = Vec::new();
    for (i, raw) in body.split('\n').enumerate() {
        let number = i + 1;
        if let Some(c) = raw.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(non_canonical(Encoding, number, format!("control character {c:?}")));
        }
        if raw.contains('\t') {
            return Err(non_canonical(Whitespace, number, "tab character".into()));
        }
        if raw.trim().is_empty() {
            let what = if raw.is_empty() { "blank line (one trailing newline only)" } else { "blank line" };
            return Err(non_canonical(Whitespace, number, what.into()));
        }
        if raw.ends_with(' ') {
            return Err(non_canonical(Whitespace, number, "trailing space".into()));
        }
        let content = raw.trim_start_matches(' ');
        let indent = raw.len() - content.len();
        if content.starts_with('#') {
            return Err(non_canonical(BlockStyle, number, "comment".into()));
        }
        if content == "---" && indent == 0 {
            if number == 1 {
                continue;
            }
            return Err(non_canonical(BlockStyle, number, "a second document".into()));
        }
        if content.starts_with("...") && indent == 0 {
            return Err(non_canonical(BlockStyle, number, "document-end marker (...)".into()));
        }
        if indent % 2 != 0 {
            return Err(non_canonical(Whitespace, number, format!("indented by {indent} spaces")));
        }
        out.push(Line { number, indent, content });
    }
    Ok(out)
}

/// A `key: value` (or `key:` opening a block) at a known indentation.
struct Entry<'a> {
    line: Line<'a>,
    key: &'a str,
    value: Option<&'a str>,
}

/// Reads the canonical grammar line by line.
struct Reader<'l, 'a> {
    lines: &'l [Line<'a>],
    at: usize,
}

impl<'a> Reader<'_, 'a> {
    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.at).copied()
    }

    fn last_line(&self) -> usize {
        self.lines.last().map_or(1, |l| l.number)
    }

    /// The next line as `key: value` at `indent` (after `prefix`, e.g. `- `), where `key` is expected.
    fn entry(&mut self, indent: usize, prefix: &str, expected: &str) -> Result<Entry<'a>, EgressError> {
        let Some(line) = self.peek() else {
            return Err(non_canonical(
                CanonicalRule::Fields,
                self.last_line(),
                format!("{expected} is missing (the document ends)"),
            ));
        };
        if line.indent < indent {
            let why = format!("{expected} is missing");
            return Err(non_canonical(CanonicalRule::Fields, line.number, why));
        }
        if line.indent != indent {
            return Err(non_canonical(
                CanonicalRule::Whitespace,
                line.number,
                format!("indented by {} spaces where {expected} belongs at {indent}", line.indent),
            ));
        }
        let Some(rest) = line.content.strip_prefix(prefix) else {
            return Err(non_canonical(
                CanonicalRule::Fields,
                line.number,
                format!("expected {expected}, found {:?}", shorten(line.content)),
            ));
        };
        let entry = split_entry(line, rest)?;
        self.at += 1;
        Ok(entry)
    }

    fn document(mut self) -> Result<KarsAllowlist, EgressError> {
        use CanonicalRule::{Fields, Generation, Header, KeyOrder};
        let api = self.entry(0, "", "apiVersion")?;
        if api.key != "apiVersion" {
            let why = format!("the first key is {}, not apiVersion", api.key);
            return Err(non_canonical(Header, api.line.number, why));
        }
        if api.value != Some(KARS_API_VERSION) {
            let why = format!("apiVersion is {}, not {KARS_API_VERSION}", shown(api.value));
            return Err(non_canonical(Header, api.line.number, why));
        }
        let kind = self.entry(0, "", "kind")?;
        if kind.key != "kind" {
            return Err(non_canonical(
                Header,
                kind.line.number,
                format!("the second key is {}, not kind", kind.key),
            ));
        }
        if kind.value != Some(KARS_KIND) {
            let why = format!("kind is {}, not {KARS_KIND}", shown(kind.value));
            return Err(non_canonical(Header, kind.line.number, why));
        }
        let metadata = self.entry(0, "", "metadata")?;
        expect_block(&metadata, "metadata", &["spec"])?;
        let mut name = None;
        let generation_missing =
            |line: usize| non_canonical(Generation, line, "metadata.generation is missing".into());
        if self.peek().is_none_or(|l| l.indent < 2) {
            return Err(generation_missing(self.peek().map_or(self.last_line(), |l| l.number)));
        }
        let mut entry = self.entry(2, "", "metadata.generation")?;
        if entry.key == "name" {
            let value = scalar(&entry, "metadata.name")?;
            check_name(value, entry.line.number)?;
            name = Some(value.to_owned());
            if self.peek().is_none_or(|l| l.indent < 2) {
                return Err(generation_missing(self.peek().map_or(self.last_line(), |l| l.number)));
            }
            entry = self.entry(2, "", "metadata.generation")?;
        }
        let generation = match entry.key {
            "generation" => integer(&entry, "metadata.generation", Generation)?,
            "name" => {
                return Err(non_canonical(Fields, entry.line.number, "metadata.name appears twice".into()))
            }
            other => return Err(unexpected(&entry, other, "metadata", &["name", "generation"])),
        };
        if generation == 0 {
            return Err(non_canonical(Generation, entry.line.number, "metadata.generation is 0".into()));
        }
        if let Some(next) = self.peek().filter(|l| l.indent >= 2) {
            let e = split_entry(next, next.content)?;
            return Err(match e.key {
                "name" => non_canonical(KeyOrder, next.number, "metadata.name comes after generation".into()),
                "generation" => {
                    non_canonical(Fields, next.number, "metadata.generation appears twice".into())
                }
                other => unexpected(&e, other, "metadata", &["name", "generation"]),
            });
        }
        let spec = self.entry(0, "", "spec")?;
        expect_block(&spec, "spec", &["apiVersion", "kind", "metadata"])?;
        let endpoints_entry = self.entry(2, "", "spec.endpoints")?;
        if endpoints_entry.key != "endpoints" {
            return Err(unexpected(&endpoints_entry, endpoints_entry.key, "spec", &["endpoints"]));
        }
        let endpoints = match endpoints_entry.value {
            // What kars's producer writes for an empty list (the one flow form it uses).
            Some("[]") => Vec::new(),
            Some(v) => return Err(value_style(endpoints_entry.line.number, v, "spec.endpoints")),
            None => self.endpoints()?,
        };
        if let Some(extra) = self.peek() {
            let e = split_entry(extra, extra.content.strip_prefix("- ").unwrap_or(extra.content))?;
            let rule = if ["apiVersion", "kind", "metadata", "spec", "endpoints"].contains(&e.key) {
                KeyOrder
            } else {
                Fields
            };
            let why = format!("unexpected {:?} after spec.endpoints", shorten(extra.content));
            return Err(non_canonical(rule, extra.number, why));
        }
        Ok(KarsAllowlist { name, generation, endpoints })
    }

    fn endpoints(&mut self) -> Result<Vec<KarsEndpoint>, EgressError> {
        use CanonicalRule::{Fields, KeyOrder};
        let mut out = Vec::new();
        while self.peek().is_some_and(|l| l.indent >= 4) {
            let i = out.len();
            let at = |field: &str| format!("spec.endpoints[{i}].{field}");
            let first = self.entry(4, "- ", &format!("spec.endpoints[{i}] (- host: …)"))?;
            if first.key != "host" {
                let rule = if ["port", "protocol"].contains(&first.key) { KeyOrder } else { Fields };
                let why = format!("spec.endpoints[{i}] starts with {}, not host", first.key);
                return Err(non_canonical(rule, first.line.number, why));
            }
            let host = scalar(&first, &at("host"))?;
            check_host(host, first.line.number)?;
            let port_entry = self.entry(6, "", &at("port"))?;
            if port_entry.key != "port" {
                let rule = if port_entry.key == "protocol" { KeyOrder } else { Fields };
                let why = format!("{} comes before {}", port_entry.key, at("port"));
                return Err(non_canonical(rule, port_entry.line.number, why));
            }
            let port = integer(&port_entry, &at("port"), Fields)?;
            let port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| {
                non_canonical(Fields, port_entry.line.number, format!("{} {port} is not 1–65535", at("port")))
            })?;
            let mut protocol = None;
            if self.peek().is_some_and(|l| l.indent == 6) {
                let e = self.entry(6, "", &at("protocol"))?;
                match e.key {
                    "protocol" => {
                        let p = scalar(&e, &at("protocol"))?;
                        check_protocol(p, e.line.number)?;
                        protocol = Some(p.to_owned());
                    }
                    "host" | "port" => {
                        let why = format!("{} appears twice", at(e.key));
                        return Err(non_canonical(Fields, e.line.number, why));
                    }
                    other => {
                        return Err(unexpected(
                            &e,
                            other,
                            &format!("spec.endpoints[{i}]"),
                            &["host", "port", "protocol"],
                        ))
                    }
                }
            }
            if let Some(next) = self.peek().filter(|l| l.indent > 4) {
                let e = split_entry(next, next.content)?;
                let rule = if ["host", "port", "protocol"].contains(&e.key) { KeyOrder } else { Fields };
                let why = format!("unexpected {:?} in spec.endpoints[{i}]", shorten(next.content));
                return Err(non_canonical(rule, next.number, why));
            }
            out.push(KarsEndpoint { host: host.to_owned(), port, protocol });
        }
        if out.is_empty() {
            let line = self.peek().map_or(self.last_line(), |l| l.number);
            let why = "spec.endpoints opens a block but lists nothing (write endpoints: [])".to_owned();
            return Err(non_canonical(Fields, line, why));
        }
        Ok(out)
    }
}

/// `key: value` or `key:` of one line (after any `- `).
fn split_entry<'a>(line: Line<'a>, rest: &'a str) -> Result<Entry<'a>, EgressError> {
    let (key, value) = match rest.split_once(':') {
        Some((k, "")) => (k, None),
        Some((k, v)) => match v.strip_prefix(' ') {
            Some(v) if !v.starts_with(' ') => (k, Some(v)),
            _ => {
                let why = format!("{k}: needs exactly one space after the colon");
                return Err(non_canonical(CanonicalRule::Whitespace, line.number, why));
            }
        },
        None => {
            let why = format!("{:?} is not a key: value line", shorten(rest));
            return Err(non_canonical(CanonicalRule::Fields, line.number, why));
        }
    };
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        let rule = if key.starts_with(['"', '\'']) {
            CanonicalRule::Scalars
        } else if key.starts_with(['{', '[', '&', '*', '!', '?']) {
            CanonicalRule::BlockStyle
        } else {
            CanonicalRule::Fields
        };
        return Err(non_canonical(rule, line.number, format!("key {:?}", shorten(key))));
    }
    Ok(Entry { line, key, value })
}

/// A `key:` line opening a block (`metadata:`, `spec:`); the keys that would be out of order here.
fn expect_block(e: &Entry<'_>, key: &str, out_of_order: &[&str]) -> Result<(), EgressError> {
    if e.key != key {
        let rule = if out_of_order.contains(&e.key) || ["apiVersion", "kind"].contains(&e.key) {
            CanonicalRule::KeyOrder
        } else {
            CanonicalRule::Fields
        };
        return Err(non_canonical(rule, e.line.number, format!("expected {key}:, found {}", e.key)));
    }
    match e.value {
        None => Ok(()),
        Some(v) => Err(value_style(e.line.number, v, key)),
    }
}

/// A value where a block belongs: flow style, or an unexpected scalar.
fn value_style(line: usize, value: &str, key: &str) -> EgressError {
    if value.starts_with(['{', '[']) {
        non_canonical(CanonicalRule::BlockStyle, line, format!("{key} in flow style ({})", shorten(value)))
    } else {
        non_canonical(CanonicalRule::Fields, line, format!("{key} must be a block, not {:?}", shorten(value)))
    }
}

/// A plain scalar value: no quotes (no value of this kind needs them), no flow, anchors, aliases, tags,
/// block scalars or trailing comments.
fn scalar<'a>(e: &Entry<'a>, what: &str) -> Result<&'a str, EgressError> {
    let Some(v) = e.value else {
        return Err(non_canonical(CanonicalRule::Fields, e.line.number, format!("{what} has no value")));
    };
    let style = |why: &str| non_canonical(CanonicalRule::BlockStyle, e.line.number, format!("{what}: {why}"));
    match v.as_bytes().first() {
        Some(b'"' | b'\'') => {
            let why = format!("{what} is quoted; values of this kind are plain scalars");
            return Err(non_canonical(CanonicalRule::Scalars, e.line.number, why));
        }
        Some(b'{' | b'[') => return Err(style("flow style")),
        Some(b'&') => return Err(style("an anchor")),
        Some(b'*') if what.ends_with("host") => {}
        Some(b'*') => return Err(style("an alias")),
        Some(b'!') => return Err(style("a tag")),
        Some(b'|' | b'>') => return Err(style("a block scalar")),
        _ => {}
    }
    if v.contains(" #") {
        return Err(style("a comment"));
    }
    Ok(v)
}

/// A plain positive decimal integer (no sign, no leading zero, no other base).
fn integer(e: &Entry<'_>, what: &str, range_rule: CanonicalRule) -> Result<u64, EgressError> {
    let v = scalar(e, what)?;
    let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    if !digits || (v.len() > 1 && v.starts_with('0')) {
        let why = format!("{what} is {:?}, not an integer in plain digits", shorten(v));
        return Err(non_canonical(CanonicalRule::Scalars, e.line.number, why));
    }
    v.parse::<u64>()
        .map_err(|_| non_canonical(range_rule, e.line.number, format!("{what} {} is too large", shorten(v))))
}

/// §1 host normalisation, as kars's producer applies it.
fn check_host(host: &str, line: usize) -> Result<(), EgressError> {
    let bad =
        |why: String| non_canonical(CanonicalRule::Host, line, format!("host {:?}: {why}", shorten(host)));
    if host.is_empty() {
        return Err(bad("empty".into()));
    }
    if host.len() > MAX_NAME_LEN {
        return Err(bad(format!("longer than {MAX_NAME_LEN} bytes")));
    }
    if host.contains('*') {
        return Err(bad("wildcards are not allowed (a parent domain covers the names under it)".into()));
    }
    if host.starts_with('.') || host.ends_with('.') {
        return Err(bad("leading or trailing dot".into()));
    }
    if host.contains("..") {
        return Err(bad("two dots in a row".into()));
    }
    if host.starts_with('-') {
        return Err(bad("starts with '-'".into()));
    }
    if let Some(c) =
        host.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        let why = if c.is_ascii_uppercase() {
            "upper case (hosts are lower case)".to_owned()
        } else if !c.is_ascii() {
            "not ASCII (IDNs are written in their xn-- form)".to_owned()
        } else {
            format!("character {c:?} is outside [a-z0-9.-]")
        };
        return Err(bad(why));
    }
    Ok(())
}

fn check_name(name: &str, line: usize) -> Result<(), EgressError> {
    let slug = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    if slug {
        Ok(())
    } else {
        let why = format!("metadata.name {:?} is not a lower-case slug", shorten(name));
        Err(non_canonical(CanonicalRule::Fields, line, why))
    }
}

fn check_protocol(p: &str, line: usize) -> Result<(), EgressError> {
    let ok = !p.is_empty()
        && p.len() <= MAX_PROTOCOL_LEN
        && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        let why = format!("protocol {:?} is not a lower-case word", shorten(p));
        Err(non_canonical(CanonicalRule::Fields, line, why))
    }
}

fn unexpected(e: &Entry<'_>, key: &str, parent: &str, known: &[&str]) -> EgressError {
    let why = format!(
        "{parent} has no field {key} in v1 (fields: {}; anything else needs a new artifactType)",
        known.join(", ")
    );
    non_canonical(CanonicalRule::Fields, e.line.number, why)
}

fn shown(v: Option<&str>) -> String {
    v.map_or_else(|| "empty".to_owned(), |v| format!("{:?}", shorten(v)))
}

/// §0.6: endpoints strictly increasing by `(host, port, protocol or "")`.
fn check_order(list: &KarsAllowlist, lines: &[Line<'_>]) -> Result<(), EgressError> {
    // The line of endpoint i is the i-th line starting with "- ".
    let item_lines: Vec<usize> =
        lines.iter().filter(|l| l.indent == 4 && l.content.starts_with("- ")).map(|l| l.number).collect();
    let key = |e: &KarsEndpoint| (e.host.clone(), e.port, e.protocol.clone().unwrap_or_default());
    for (i, pair) in list.endpoints.windows(2).enumerate() {
        let (a, b) = (key(&pair[0]), key(&pair[1]));
        let line = item_lines.get(i + 1).copied().unwrap_or(0);
        let shown = |e: &KarsEndpoint| match &e.protocol {
            Some(p) => format!("{}:{} ({p})", e.host, e.port),
            None => format!("{}:{}", e.host, e.port),
        };
        if a == b {
            let why = format!("endpoint {} is listed twice", shown(&pair[1]));
            return Err(non_canonical(CanonicalRule::ListOrder, line, why));
        }
        if a > b {
            let why = format!(
                "endpoint {} comes after {} (sorted by host, port, protocol)",
                shown(&pair[1]),
                shown(&pair[0])
            );
            return Err(non_canonical(CanonicalRule::ListOrder, line, why));
        }
    }
    Ok(())
}

/// What a YAML parser (kars's consumer uses one) reads must be what the line reader read: a host such as
/// `true`, `null` or `0x1f` would be a string to one and a boolean, null or number to the other.
fn cross_check(text: &str, list: &KarsAllowlist) -> Result<(), EgressError> {
    use serde_yaml::Value;
    let scalars = |why: String| non_canonical(CanonicalRule::Scalars, 0, why);
    let doc: Value = serde_yaml::from_str(text).map_err(|e| scalars(format!("not YAML: {e}")))?;
    let get = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let metadata = get(&doc, "metadata");
    if let Some(n) = &list.name {
        if get(&metadata, "name").as_str() != Some(n) {
            return Err(scalars(format!("YAML does not read metadata.name {n:?} as that string")));
        }
    }
    if get(&metadata, "generation").as_u64() != Some(list.generation) {
        return Err(scalars("YAML does not read metadata.generation as that integer".into()));
    }
    let endpoints = get(&get(&doc, "spec"), "endpoints");
    let items = endpoints.as_sequence().map(Vec::as_slice).unwrap_or_default();
    if items.len() != list.endpoints.len() {
        return Err(scalars("YAML reads another number of endpoints".into()));
    }
    for (i, (item, e)) in items.iter().zip(&list.endpoints).enumerate() {
        if get(item, "host").as_str() != Some(e.host.as_str()) {
            let why = format!("spec.endpoints[{i}].host {:?} is not read as a string by YAML", e.host);
            return Err(scalars(why));
        }
        if get(item, "port").as_u64() != Some(u64::from(e.port)) {
            return Err(scalars(format!("spec.endpoints[{i}].port is not read as that integer by YAML")));
        }
        if let Some(p) = &e.protocol {
            if get(item, "protocol").as_str() != Some(p.as_str()) {
                return Err(scalars(format!("spec.endpoints[{i}].protocol is not read as a string by YAML")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
