//! The egress allowlist document: parsed, checked against its schema and the rules beyond it, and asked
//! whether it covers an endpoint.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use ipnet::IpNet;
use jsonschema::{Draft, Validator};

use super::endpoint::{
    normalise_host, normalise_net, parse_net, shorten, split_wildcard, Endpoint, Wildcard,
};
use super::EgressError;

/// The `apiVersion` of version 1 documents.
pub const API_VERSION: &str = "vouch.dev/egress/v1";
/// Largest document read.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Most entries (hosts and CIDRs together) in one document.
pub const MAX_ENTRIES: usize = 10_000;
/// Schema violations reported at most.
const REPORTED_VIOLATIONS: usize = 5;
/// The JSON schema, as published beside the code.
pub const SCHEMA: &str = include_str!("../../schemas/egress-allowlist.v1.schema.json");

/// A parsed and validated egress allowlist.
///
/// Fields are public so that lists can be built in code; [`super::push_allowlist`] re-reads what it
/// publishes, so an invalid list built that way is refused before it reaches a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    /// Name, used in messages.
    pub name: String,
    /// What the list is for.
    pub description: Option<String>,
    /// Host names (normalised, possibly `*.` / `**.` wildcards) that may be reached.
    pub hosts: Vec<HostRule>,
    /// Networks that may be reached.
    pub cidrs: Vec<CidrRule>,
}

/// One allowed host name or wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    /// Normalised host (lower case, no trailing dot); `*.base` or `**.base` for wildcards.
    pub host: String,
    /// Allowed ports; `None` = every port.
    pub ports: Option<BTreeSet<u16>>,
}

/// One allowed network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrRule {
    /// The network (no host bits; IPv4-mapped IPv6 as IPv4).
    pub cidr: IpNet,
    /// Allowed ports; `None` = every port.
    pub ports: Option<BTreeSet<u16>>,
}

/// A declared endpoint the allowlist does not cover, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncovered {
    /// The endpoint as written (shortened when very long).
    pub endpoint: String,
    /// Why: not in the list, or not a readable endpoint.
    pub reason: String,
}

/// The endpoints, as written, that `covers` does not allow, each with `why_not`'s reason; unreadable ones are
/// never covered (their reason is the parser's). Shared by both allowlist formats.
pub(crate) fn uncovered_by<S: AsRef<str>>(
    written: &[S],
    covers: impl Fn(&Endpoint) -> bool,
    why_not: impl Fn(&Endpoint) -> String,
) -> Vec<Uncovered> {
    written
        .iter()
        .filter_map(|w| {
            let w = w.as_ref();
            match w.parse::<Endpoint>() {
                Ok(e) if covers(&e) => None,
                Ok(e) => Some(Uncovered { endpoint: shorten(w.trim()), reason: why_not(&e) }),
                Err(e) => Some(Uncovered { endpoint: shorten(w.trim()), reason: e.reason }),
            }
        })
        .collect()
}

/// The document as it is written (serde view).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    api_version: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    hosts: Vec<HostEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cidrs: Vec<CidrEntry>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ports: Option<Vec<u16>>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CidrEntry {
    cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ports: Option<Vec<u16>>,
}

impl Allowlist {
    /// Read a document: at most [`MAX_DOCUMENT_BYTES`], JSON, valid against the schema, at most
    /// [`MAX_ENTRIES`] entries, every host name and network well-formed.
    pub fn parse(bytes: &[u8]) -> Result<Self, EgressError> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(EgressError::TooLarge { size: bytes.len() as u64, limit: MAX_DOCUMENT_BYTES });
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| EgressError::NotJson { reason: e.to_string() })?;
        let validator = validator().map_err(|reason| EgressError::Schema { violations: vec![reason] })?;
        if !validator.is_valid(&value) {
            let violations = validator
                .iter_errors(&value)
                .take(REPORTED_VIOLATIONS)
                .map(|e| {
                    let at = e.instance_path.to_string();
                    format!("{}: {}", if at.is_empty() { "/" } else { &at }, shorten(&e.to_string()))
                })
                .collect();
            return Err(EgressError::Schema { violations });
        }
        // Read again from the bytes, not the value: a JSON value keeps the last of duplicate keys silently,
        // while the typed read refuses them, so a reviewer's tool and vouch cannot see two different lists.
        let doc: Document = serde_json::from_slice(bytes)
            .map_err(|e| EgressError::Schema { violations: vec![format!("/: {e}")] })?;
        let count = doc.hosts.len() + doc.cidrs.len();
        if count > MAX_ENTRIES {
            return Err(EgressError::TooManyEntries { count, limit: MAX_ENTRIES });
        }
        let invalid = |pointer: String, value: &str, reason: String| EgressError::InvalidEntry {
            pointer,
            value: shorten(value),
            reason,
        };
        let mut hosts = Vec::with_capacity(doc.hosts.len());
        for (i, h) in doc.hosts.iter().enumerate() {
            let host =
                normalise_host(&h.host).map_err(|r| invalid(format!("/hosts/{i}/host"), &h.host, r))?;
            hosts.push(HostRule { host, ports: port_set(h.ports.as_deref()) });
        }
        let mut cidrs = Vec::with_capacity(doc.cidrs.len());
        for (i, c) in doc.cidrs.iter().enumerate() {
            let at = || format!("/cidrs/{i}/cidr");
            let net = parse_net(&c.cidr).map_err(|r| invalid(at(), &c.cidr, r))?;
            if net.trunc() != net {
                // A signed list says exactly what it means: 10.1.2.3/8 is most likely a typo.
                let reason = format!("host bits are set (the network is {})", net.trunc());
                return Err(invalid(at(), &c.cidr, reason));
            }
            cidrs.push(CidrRule { cidr: normalise_net(net), ports: port_set(c.ports.as_deref()) });
        }
        Ok(Self { name: doc.name, description: doc.description, hosts, cidrs })
    }

    /// Read a document file (at most [`MAX_DOCUMENT_BYTES`] are read) and [`Self::parse`] it.
    pub fn read_file(path: &std::path::Path) -> Result<Self, EgressError> {
        use std::io::Read as _;
        let io =
            |e: std::io::Error| EgressError::Io { path: path.display().to_string(), reason: e.to_string() };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        // One byte more than allowed, so that a larger file is refused rather than cut short.
        file.take(MAX_DOCUMENT_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
        Self::parse(&bytes)
    }

    /// Whether the list allows `endpoint`: a host by a host entry (exact name, or a wildcard that matches
    /// every name the endpoint may stand for), a network by a CIDR that contains it wholly; the port must be
    /// allowed, and an endpoint without a port needs an entry that allows every port.
    pub fn covers(&self, endpoint: &Endpoint) -> bool {
        match endpoint {
            Endpoint::Host { host, port } => {
                self.hosts.iter().any(|r| ports_cover(r.ports.as_ref(), *port) && host_covers(&r.host, host))
            }
            Endpoint::Net { net, port } => {
                let net = normalise_net(*net);
                self.cidrs.iter().any(|r| ports_cover(r.ports.as_ref(), *port) && r.cidr.contains(&net))
            }
        }
    }

    /// The endpoints, as written, that the list does not cover; unreadable ones are never covered.
    pub fn uncovered<S: AsRef<str>>(&self, written: &[S]) -> Vec<Uncovered> {
        uncovered_by(written, |e| self.covers(e), |_| format!("not in egress allowlist {}", self.name))
    }

    /// The document as JSON (pretty, fields in schema order, ports sorted); what [`Self::parse`] reads.
    pub fn to_json(&self) -> Vec<u8> {
        let ports = |p: &Option<BTreeSet<u16>>| p.as_ref().map(|s| s.iter().copied().collect());
        let doc = Document {
            api_version: API_VERSION.to_owned(),
            name: self.name.clone(),
            description: self.description.clone(),
            hosts: self
                .hosts
                .iter()
                .map(|h| HostEntry { host: h.host.clone(), ports: ports(&h.ports) })
                .collect(),
            cidrs: self
                .cidrs
                .iter()
                .map(|c| CidrEntry { cidr: c.cidr.to_string(), ports: ports(&c.ports) })
                .collect(),
        };
        // Serialising plain strings and numbers cannot fail; an empty document would fail to parse anyway.
        let mut json = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        json.push(b'\n');
        json
    }
}

fn port_set(ports: Option<&[u16]>) -> Option<BTreeSet<u16>> {
    ports.map(|p| p.iter().copied().collect())
}

fn ports_cover(allowed: Option<&BTreeSet<u16>>, port: Option<u16>) -> bool {
    match (allowed, port) {
        (None, _) => true,
        (Some(set), Some(p)) => set.contains(&p),
        (Some(_), None) => false,
    }
}

/// Whether every name `endpoint` may stand for is matched by `allowed` (both normalised).
fn host_covers(allowed: &str, endpoint: &str) -> bool {
    let (a_kind, a_base) = split_wildcard(allowed);
    let (e_kind, e_base) = split_wildcard(endpoint);
    match (a_kind, e_kind) {
        (Wildcard::Exact, Wildcard::Exact) => a_base == e_base,
        (Wildcard::Exact, _) => false,
        (Wildcard::OneLabel, Wildcard::Exact) => labels_above(e_base, a_base) == Some(1),
        (Wildcard::OneLabel, Wildcard::OneLabel) => e_base == a_base,
        (Wildcard::OneLabel, Wildcard::AnyDepth) => false,
        (Wildcard::AnyDepth, Wildcard::Exact) => labels_above(e_base, a_base).is_some_and(|n| n >= 1),
        (Wildcard::AnyDepth, _) => e_base == a_base || labels_above(e_base, a_base).is_some_and(|n| n >= 1),
    }
}

/// How many labels `name` has in front of `base` (`Some(0)` when equal), `None` when not under it.
fn labels_above(name: &str, base: &str) -> Option<usize> {
    if name == base {
        return Some(0);
    }
    let front = name.strip_suffix(base)?.strip_suffix('.')?;
    (!front.is_empty()).then(|| front.split('.').count())
}

/// The compiled schema, built on first use.
fn validator() -> Result<&'static Validator, String> {
    static VALIDATOR: OnceLock<Result<Validator, String>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            let schema: serde_json::Value = serde_json::from_str(SCHEMA)
                .map_err(|e| format!("embedded egress schema is not JSON: {e}"))?;
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .build(&schema)
                .map_err(|e| format!("embedded egress schema does not compile: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(hosts: &[(&str, Option<&[u16]>)], cidrs: &[(&str, Option<&[u16]>)]) -> Allowlist {
        let doc = serde_json::json!({
            "apiVersion": API_VERSION,
            "name": "test-egress",
            "hosts": hosts.iter().map(|(h, p)| match p {
                Some(p) => serde_json::json!({"host": h, "ports": p}),
                None => serde_json::json!({"host": h}),
            }).collect::<Vec<_>>(),
            "cidrs": cidrs.iter().map(|(c, p)| match p {
                Some(p) => serde_json::json!({"cidr": c, "ports": p}),
                None => serde_json::json!({"cidr": c}),
            }).collect::<Vec<_>>(),
        });
        Allowlist::parse(&serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    fn covers(l: &Allowlist, endpoint: &str) -> bool {
        l.covers(&endpoint.parse().unwrap())
    }

    fn parse_err(doc: serde_json::Value) -> EgressError {
        Allowlist::parse(&serde_json::to_vec(&doc).unwrap()).unwrap_err()
    }

    #[test]
    fn the_example_document_parses() {
        let l = Allowlist::parse(
            br#"{"apiVersion": "vouch.dev/egress/v1", "name": "payments-egress", "description": "payments",
                 "hosts": [{"host": "api.stripe.com", "ports": [443]}, {"host": "*.s3.amazonaws.com", "ports": [443]}],
                 "cidrs": [{"cidr": "10.20.0.0/16", "ports": [5432]}]}"#,
        )
        .unwrap();
        assert_eq!(l.name, "payments-egress");
        assert_eq!(l.description.as_deref(), Some("payments"));
        assert_eq!(l.hosts.len(), 2);
        assert_eq!(l.cidrs[0].cidr, "10.20.0.0/16".parse::<IpNet>().unwrap());
        assert_eq!(l.cidrs[0].ports, Some(BTreeSet::from([5432])));
    }

    #[test]
    fn ports_must_be_allowed_and_a_portless_endpoint_needs_an_any_port_entry() {
        let l = list(&[("api.example.com", Some(&[443, 8443])), ("open.example.com", None)], &[]);
        assert!(covers(&l, "api.example.com:443"));
        assert!(covers(&l, "api.example.com:8443"));
        assert!(!covers(&l, "api.example.com:80"));
        assert!(!covers(&l, "api.example.com"), "no port = every port, but only 443 and 8443 are allowed");
        assert!(covers(&l, "open.example.com"));
        assert!(covers(&l, "open.example.com:1"));
        assert!(covers(&l, "open.example.com:65535"));
    }

    #[test]
    fn exact_hosts_match_case_insensitively_and_ignore_a_trailing_dot() {
        let l = list(&[("API.Example.com.", None)], &[]);
        assert_eq!(l.hosts[0].host, "api.example.com");
        assert!(covers(&l, "api.example.com"));
        assert!(covers(&l, "Api.EXAMPLE.com.:443"));
        assert!(!covers(&l, "example.com"));
        assert!(!covers(&l, "x.api.example.com"));
        assert!(!covers(&l, "api.example.com.evil.net"));
        assert!(!covers(&l, "evilapi.example.com"));
        assert!(!covers(&l, "*.example.com"), "a wildcard endpoint names more than one host");
    }

    #[test]
    fn one_label_wildcards_match_exactly_one_more_label() {
        let l = list(&[("*.example.com", None)], &[]);
        assert!(covers(&l, "a.example.com"));
        assert!(covers(&l, "A.Example.Com:443"));
        assert!(!covers(&l, "example.com"), "the base name itself is not matched");
        assert!(!covers(&l, "a.b.example.com"), "two labels are not one");
        assert!(!covers(&l, "aexample.com"));
        assert!(!covers(&l, "a.example.com.evil.net"));
        assert!(covers(&l, "*.example.com"), "the same wildcard");
        assert!(!covers(&l, "*.a.example.com"), "names two labels deep");
        assert!(!covers(&l, "**.example.com"), "names any depth");
    }

    #[test]
    fn any_depth_wildcards_match_one_or_more_labels() {
        let l = list(&[("**.example.com", Some(&[443]))], &[]);
        assert!(covers(&l, "a.example.com:443"));
        assert!(covers(&l, "a.b.c.example.com:443"));
        assert!(!covers(&l, "example.com:443"), "the base name itself is not matched");
        assert!(!covers(&l, "a.example.com:80"));
        assert!(!covers(&l, "a.example.org:443"));
        assert!(!covers(&l, "badexample.com:443"));
        assert!(covers(&l, "*.example.com:443"));
        assert!(covers(&l, "*.a.example.com:443"));
        assert!(covers(&l, "**.example.com:443"));
        assert!(covers(&l, "**.a.example.com:443"));
        assert!(!covers(&l, "**.example.org:443"));
        let deeper = list(&[("**.a.example.com", None)], &[]);
        assert!(covers(&deeper, "x.y.a.example.com"));
        assert!(!covers(&deeper, "**.example.com"), "names hosts outside a.example.com");
        assert!(!covers(&deeper, "*.example.com"));
        assert!(!covers(&deeper, "a.example.com"));
    }

    #[test]
    fn ip_literals_are_covered_only_by_cidrs_and_hosts_only_by_hosts() {
        let l = list(&[("10.0.0.1.nip.io", None)], &[("10.0.0.0/8", None)]);
        assert!(covers(&l, "10.1.2.3"));
        assert!(covers(&l, "10.1.2.3:5432"));
        assert!(!covers(&l, "11.0.0.1"));
        let hosts_only = list(&[("example.com", None)], &[]);
        assert!(!covers(&hosts_only, "93.184.216.34"));
        let cidrs_only = list(&[], &[("0.0.0.0/0", None), ("::/0", None)]);
        assert!(
            !covers(&cidrs_only, "example.com"),
            "a name may resolve anywhere: only host entries cover it"
        );
    }

    #[test]
    fn a_network_is_covered_only_when_wholly_inside_an_allowed_cidr() {
        let l = list(&[], &[("10.20.0.0/16", Some(&[5432])), ("2001:db8::/32", None)]);
        assert!(covers(&l, "10.20.0.0/16:5432"));
        assert!(covers(&l, "10.20.3.0/24:5432"));
        assert!(covers(&l, "10.20.255.255:5432"));
        assert!(!covers(&l, "10.0.0.0/8:5432"), "wider than allowed");
        assert!(!covers(&l, "10.20.0.0/15:5432"), "overlaps but spills out");
        assert!(!covers(&l, "10.21.0.0/24:5432"));
        assert!(!covers(&l, "10.20.3.0/24"), "no port = every port; only 5432 is allowed");
        assert!(!covers(&l, "10.20.3.0/24:5433"));
        assert!(covers(&l, "[2001:db8:1::/48]:443"));
        assert!(covers(&l, "2001:db8::1"));
        assert!(!covers(&l, "2001:db9::1"));
        assert!(!covers(&l, "2001::/16"));
        assert!(!covers(&l, "::ffff:10.20.0.1"), "only port 5432 is allowed for 10.20.0.0/16");
        assert!(covers(&l, "[::ffff:10.20.0.1]:5432"), "an IPv4-mapped address is its IPv4 address");
    }

    #[test]
    fn ipv4_and_ipv6_never_cover_each_other() {
        let l = list(&[], &[("::/0", None)]);
        assert!(!covers(&l, "10.1.2.3"));
        assert!(!covers(&l, "::ffff:10.1.2.3"), "mapped addresses are IPv4, not inside ::/0");
        let l = list(&[], &[("0.0.0.0/0", None)]);
        assert!(!covers(&l, "2001:db8::1"));
        assert!(covers(&l, "[::ffff:1.2.3.4]:443"));
    }

    #[test]
    fn uncovered_names_every_endpoint_not_allowed_and_unreadable_ones() {
        let l = list(&[("api.example.com", Some(&[443]))], &[("10.0.0.0/8", None)]);
        let out = l.uncovered(&[
            "api.example.com:443",
            "api.example.com:80",
            "10.1.1.1",
            "https://x.y",
            " 192.168.0.1 ",
        ]);
        let names: Vec<_> = out.iter().map(|u| u.endpoint.as_str()).collect();
        assert_eq!(names, ["api.example.com:80", "https://x.y", "192.168.0.1"]);
        assert_eq!(out[0].reason, "not in egress allowlist test-egress");
        assert!(out[1].reason.contains("a URL"), "{}", out[1].reason);
        assert!(l.uncovered::<&str>(&[]).is_empty());
    }

    #[test]
    fn an_empty_list_covers_nothing() {
        let l = Allowlist::parse(br#"{"apiVersion":"vouch.dev/egress/v1","name":"none"}"#).unwrap();
        assert!(!covers(&l, "example.com"));
        assert!(!covers(&l, "10.0.0.1"));
    }

    #[test]
    fn to_json_round_trips_and_validates() {
        let l = list(
            &[("**.example.com", Some(&[8443, 443])), ("b.example.org", None)],
            &[("10.0.0.0/8", Some(&[5432])), ("2001:db8::/32", None), ("::ffff:10.0.0.0/104", None)],
        );
        let json = l.to_json();
        let again = Allowlist::parse(&json).unwrap();
        assert_eq!(again, l);
        let text = String::from_utf8(json).unwrap();
        assert!(text.contains("\"cidr\": \"10.0.0.0/8\""), "mapped IPv6 is written as IPv4: {text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["hosts"][0]["ports"], serde_json::json!([443, 8443]), "ports sorted");
        assert!(value["hosts"][1].get("ports").is_none(), "any port = no ports field");
    }

    #[test]
    fn the_schema_refuses_what_is_not_the_format() {
        let cases = [
            (serde_json::json!({"name": "x"}), "apiVersion"),
            (serde_json::json!({"apiVersion": "vouch.dev/egress/v2", "name": "x"}), "/apiVersion"),
            (serde_json::json!({"apiVersion": API_VERSION}), "name"),
            (serde_json::json!({"apiVersion": API_VERSION, "name": "Has Spaces"}), "/name"),
            (serde_json::json!({"apiVersion": API_VERSION, "name": "x", "extra": 1}), "extra"),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": [{"host": "a.b", "port": 443}]}),
                "/hosts/0",
            ),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": [{"ports": [443]}]}),
                "/hosts/0",
            ),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": [{"host": "a.b", "ports": [0]}]}),
                "/hosts/0/ports/0",
            ),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": [{"host": "a.b", "ports": [65536]}]}),
                "/hosts/0/ports/0",
            ),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": [{"host": "a.b", "ports": []}]}),
                "/hosts/0/ports",
            ),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": [{"host": "a.b", "ports": [443, 443]}]}),
                "/hosts/0/ports",
            ),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": [{"host": "a.b", "ports": ["443"]}]}),
                "/hosts/0/ports/0",
            ),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": [{"host": "https://a.b"}]}),
                "/hosts/0/host",
            ),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": [{"host": "a.b:443"}]}),
                "/hosts/0/host",
            ),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "cidrs": [{"cidr": "ten/8"}]}),
                "/cidrs/0/cidr",
            ),
            (serde_json::json!({"apiVersion": API_VERSION, "name": "x", "cidrs": "10.0.0.0/8"}), "/cidrs"),
            (
                serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": [{"host": "a b.example"}]}),
                "/hosts/0/host",
            ),
            (serde_json::json!([]), "/"),
        ];
        for (doc, at) in cases {
            let e = parse_err(doc.clone());
            let EgressError::Schema { violations } = &e else { panic!("{doc}: not a schema error: {e}") };
            assert!(violations.iter().any(|v| v.contains(at)), "{doc}: {violations:?}");
            assert!(e
                .to_string()
                .starts_with("egress allowlist does not match the egress-allowlist v1 schema"));
        }
    }

    #[test]
    fn entries_the_schema_admits_but_that_are_not_valid_are_refused_with_their_pointer() {
        let cases = [
            (
                serde_json::json!({"hosts": [{"host": "ok.example"}, {"host": "*.com"}]}),
                "/hosts/1/host",
                "at least two labels",
            ),
            (serde_json::json!({"hosts": [{"host": "a..b"}]}), "/hosts/0/host", "empty label"),
            (
                serde_json::json!({"hosts": [{"host": "-a.example.com"}]}),
                "/hosts/0/host",
                "starts or ends with '-'",
            ),
            (serde_json::json!({"hosts": [{"host": "1.2.3.4"}]}), "/hosts/0/host", "ends in a number"),
            (
                serde_json::json!({"cidrs": [{"cidr": "10.1.2.3/8"}]}),
                "/cidrs/0/cidr",
                "host bits are set (the network is 10.0.0.0/8)",
            ),
            (serde_json::json!({"cidrs": [{"cidr": "10.0.0.0/40"}]}), "/cidrs/0/cidr", "exceeds 32"),
            (serde_json::json!({"cidrs": [{"cidr": "1.2.3"}]}), "/cidrs/0/cidr", "not an IP address"),
            (serde_json::json!({"cidrs": [{"cidr": "010.0.0.0/8"}]}), "/cidrs/0/cidr", "not an IP address"),
        ];
        for (mut doc, pointer, reason) in cases {
            doc["apiVersion"] = API_VERSION.into();
            doc["name"] = "x".into();
            let e = parse_err(doc.clone());
            let EgressError::InvalidEntry { pointer: p, reason: r, .. } = &e else { panic!("{doc}: {e}") };
            assert_eq!(p, pointer, "{doc}");
            assert!(r.contains(reason), "{doc}: {r}");
        }
    }

    #[test]
    fn size_entry_count_and_json_are_bounded() {
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(Allowlist::parse(&big), Err(EgressError::TooLarge { .. })));
        assert!(matches!(Allowlist::parse(b"{not json"), Err(EgressError::NotJson { .. })));
        let hosts: Vec<_> =
            (0..6000).map(|i| serde_json::json!({"host": format!("h{i}.example.com")})).collect();
        let cidrs: Vec<_> = (0..5000)
            .map(|i| serde_json::json!({"cidr": format!("10.{}.{}.0/24", i / 256, i % 256)}))
            .collect();
        let e = parse_err(
            serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": hosts, "cidrs": cidrs}),
        );
        assert!(matches!(e, EgressError::TooManyEntries { count: 11_000, limit: MAX_ENTRIES }), "{e}");
        let many: Vec<_> =
            (0..10_001).map(|i| serde_json::json!({"host": format!("h{i}.example.com")})).collect();
        let e = parse_err(serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": many}));
        assert!(matches!(e, EgressError::Schema { .. }), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused_not_silently_resolved() {
        let docs: [&[u8]; 3] = [
            br#"{"apiVersion":"vouch.dev/egress/v1","name":"d","hosts":[{"host":"a.example"}],"hosts":[{"host":"evil.example"}]}"#,
            br#"{"apiVersion":"vouch.dev/egress/v1","name":"d","hosts":[{"host":"a.example","host":"evil.example"}]}"#,
            br#"{"apiVersion":"vouch.dev/egress/v1","name":"d","name":"e"}"#,
        ];
        for doc in docs {
            let e = Allowlist::parse(doc).unwrap_err();
            assert!(e.to_string().contains("duplicate field"), "{e}");
        }
    }

    #[test]
    fn files_are_read_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        std::fs::write(
            &good,
            br#"{"apiVersion":"vouch.dev/egress/v1","name":"f","hosts":[{"host":"a.example"}]}"#,
        )
        .unwrap();
        assert_eq!(Allowlist::read_file(&good).unwrap().hosts[0].host, "a.example");
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_DOCUMENT_BYTES + 10]).unwrap();
        assert!(matches!(
            Allowlist::read_file(&big),
            Err(EgressError::TooLarge { size, .. }) if size == MAX_DOCUMENT_BYTES as u64 + 1
        ));
        let missing = Allowlist::read_file(&dir.path().join("missing.json")).unwrap_err();
        assert!(
            matches!(&missing, EgressError::Io { path, .. } if path.ends_with("missing.json")),
            "{missing}"
        );
    }

    #[test]
    fn schema_violations_are_few_and_short() {
        let hosts: Vec<_> = (0..50).map(|_| serde_json::json!({"host": 7})).collect();
        let EgressError::Schema { violations } =
            parse_err(serde_json::json!({"apiVersion": API_VERSION, "name": "x", "hosts": hosts}))
        else {
            panic!("not a schema error")
        };
        assert_eq!(violations.len(), REPORTED_VIOLATIONS);
    }
}
