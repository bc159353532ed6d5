//! Egress endpoints as workloads declare them: a host name (exact or wildcard) or an IP network, each
//! with an optional port. Also the host-name rules shared with allowlist entries.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// Longest endpoint text accepted (a host name is at most 253 bytes; the rest is port and brackets).
const MAX_ENDPOINT_LEN: usize = 512;
/// Longest host name (RFC 1035), wildcard prefix included.
const MAX_HOST_LEN: usize = 253;
/// Longest label of a host name (RFC 1035).
const MAX_LABEL_LEN: usize = 63;
/// Characters IDNA maps to a full stop: refused, so that one name cannot be read as two.
const IDEOGRAPHIC_STOPS: [char; 3] = ['\u{3002}', '\u{FF0E}', '\u{FF61}'];

/// One declared egress destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A host name, normalised (ASCII lower case, no trailing dot); may start with `*.` (exactly one
    /// more label) or `**.` (one or more labels).
    Host {
        /// The normalised host name or wildcard.
        host: String,
        /// The port; `None` = every port.
        port: Option<u16>,
    },
    /// An IP network (a single address is a /32 or /128); host bits cleared, IPv4-mapped IPv6 as IPv4.
    Net {
        /// The network.
        net: IpNet,
        /// The port; `None` = every port.
        port: Option<u16>,
    },
}

/// An endpoint (or allowlist host) that cannot be read; keeps the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid egress endpoint {endpoint:?}: {reason}")]
pub struct EndpointError {
    /// The text as written (shortened when very long).
    pub endpoint: String,
    /// What is wrong with it.
    pub reason: String,
}

impl EndpointError {
    fn new(endpoint: &str, reason: impl Into<String>) -> Self {
        Self { endpoint: shorten(endpoint), reason: reason.into() }
    }
}

impl Endpoint {
    /// The port, if one was given.
    pub fn port(&self) -> Option<u16> {
        match self {
            Self::Host { port, .. } | Self::Net { port, .. } => *port,
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    /// `api.example.com`, `api.example.com:443`, `*.example.com:443`, `**.example.com`, `10.1.2.3`,
    /// `10.0.0.0/8`, `10.0.0.0/8:5432`, `2001:db8::1`, `[2001:db8::1]:443`, `2001:db8::/32`,
    /// `[2001:db8::/32]:443`.
    fn from_str(written: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| EndpointError::new(written, reason);
        let s = written.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.len() > MAX_ENDPOINT_LEN {
            return Err(err(&format!("longer than {MAX_ENDPOINT_LEN} bytes")));
        }
        if s.contains("://") {
            return Err(err(
                "a URL, not host[:port] (write api.example.com:443, not https://api.example.com)",
            ));
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| err("'[' without a closing ']'"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    parse_port(after.strip_prefix(':').ok_or_else(|| err("text after ']' is not :port"))?)
                        .map_err(|r| err(&r))?,
                ),
            };
            let net = parse_net(inside).map_err(|r| err(&r))?;
            if !matches!(net, IpNet::V6(_)) {
                return Err(err("brackets are for IPv6 addresses only"));
            }
            return Ok(Self::Net { net: normalise_net(net), port });
        }
        // Two or more colons: an IPv6 address or network without a port (a port needs brackets).
        if s.matches(':').count() >= 2 {
            return parse_net(s).map(|net| Self::Net { net: normalise_net(net), port: None }).map_err(|r| {
                err(&format!("{r} (an IPv6 address with a port is written in brackets: [2001:db8::1]:443)"))
            });
        }
        let (target, port) = match s.split_once(':') {
            Some((target, port)) => (target, Some(parse_port(port).map_err(|r| err(&r))?)),
            None => (s, None),
        };
        if target.is_empty() {
            return Err(err("no host before the port"));
        }
        if target.contains('/') || target.parse::<IpAddr>().is_ok() {
            let net = parse_net(target).map_err(|r| err(&r))?;
            return Ok(Self::Net { net: normalise_net(net), port });
        }
        let host = normalise_host(target).map_err(|r| err(&r))?;
        Ok(Self::Host { host, port })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host { host, port: None } => f.write_str(host),
            Self::Host { host, port: Some(p) } => write!(f, "{host}:{p}"),
            Self::Net { net, port } => {
                let text = if net.prefix_len() == net.max_prefix_len() {
                    net.addr().to_string()
                } else {
                    net.to_string()
                };
                match (net, port) {
                    (_, None) => f.write_str(&text),
                    (IpNet::V4(_), Some(p)) => write!(f, "{text}:{p}"),
                    (IpNet::V6(_), Some(p)) => write!(f, "[{text}]:{p}"),
                }
            }
        }
    }
}

/// A port: decimal digits only, 1 to 65535.
pub(crate) fn parse_port(s: &str) -> Result<u16, String> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {:?} is not a number from 1 to 65535", shorten(s)));
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port {s} is not a number from 1 to 65535")),
        Ok(p) => Ok(p),
    }
}

/// An address (`10.1.2.3`, `2001:db8::1`) or network (`10.0.0.0/8`) as written, host bits kept.
/// Addresses are read by the standard library, which refuses leading zeros (no octal surprises).
pub(crate) fn parse_net(s: &str) -> Result<IpNet, String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| format!("{:?} is not an IP address", shorten(addr)))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("prefix length /{p} exceeds {max}"))?,
        Some(p) => return Err(format!("prefix length {:?} is not a number", shorten(p))),
    };
    IpNet::new(addr, prefix).map_err(|e| e.to_string())
}

/// Host bits cleared (what a network policy for `10.1.2.3/8` allows is 10.0.0.0/8), and IPv4-mapped IPv6
/// (`::ffff:10.0.0.0/104`) read as the IPv4 network it is, so one destination has one spelling.
pub(crate) fn normalise_net(net: IpNet) -> IpNet {
    let net = net.trunc();
    if let IpNet::V6(v6) = net {
        if let Some(v4) = mapped_v4(v6.addr()).filter(|_| v6.prefix_len() >= 96) {
            if let Ok(n) = IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96) {
                return n;
            }
        }
    }
    net
}

fn mapped_v4(a: Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    match a.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(a.to_ipv4_mapped()).flatten(),
        _ => None,
    }
}

/// How a host pattern matches names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wildcard {
    /// Only the name itself.
    Exact,
    /// `*.base`: exactly one more label in front of `base`.
    OneLabel,
    /// `**.base`: one or more labels in front of `base`.
    AnyDepth,
}

/// A normalised host name split into its wildcard and base name.
pub(crate) fn split_wildcard(host: &str) -> (Wildcard, &str) {
    if let Some(base) = host.strip_prefix("**.") {
        (Wildcard::AnyDepth, base)
    } else if let Some(base) = host.strip_prefix("*.") {
        (Wildcard::OneLabel, base)
    } else {
        (Wildcard::Exact, host)
    }
}

/// Check a host name or wildcard and normalise it: ASCII lower case, one trailing dot dropped.
/// Non-ASCII (IDN U-labels) is kept as written: `xn--` and Unicode spellings are different names.
pub(crate) fn normalise_host(raw: &str) -> Result<String, String> {
    let host = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if host.is_empty() {
        return Err("empty host name".to_owned());
    }
    if host.len() > MAX_HOST_LEN {
        return Err(format!("host name longer than {MAX_HOST_LEN} bytes"));
    }
    let (wildcard, base) = split_wildcard(&host);
    if base.contains('*') {
        return Err("'*' may only be the whole first label (*.example.com or **.example.com)".to_owned());
    }
    let labels: Vec<&str> = base.split('.').collect();
    for label in &labels {
        check_label(label)?;
    }
    if wildcard != Wildcard::Exact && labels.len() < 2 {
        return Err("a wildcard needs at least two labels after it (*.example.com, not *.com)".to_owned());
    }
    if let Some(last) = labels.last() {
        let hex = last.strip_prefix("0x").is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        if hex || last.bytes().all(|b| b.is_ascii_digit()) {
            return Err("ends in a number but is not an IP address".to_owned());
        }
    }
    Ok(host)
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty label (two dots in a row, or a leading dot)".to_owned());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(format!("label {:?} is longer than {MAX_LABEL_LEN} bytes", shorten(label)));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label {label:?} starts or ends with '-'"));
    }
    for c in label.chars() {
        let fine = c.is_ascii_alphanumeric()
            || c == '-'
            || c == '_'
            || (!c.is_ascii() && !c.is_whitespace() && !c.is_control() && !IDEOGRAPHIC_STOPS.contains(&c));
        if !fine {
            return Err(format!("character {c:?} is not allowed in a host name"));
        }
    }
    Ok(())
}

/// Text for messages: at most 100 characters.
pub(crate) fn shorten(s: &str) -> String {
    const KEEP: usize = 100;
    match s.char_indices().nth(KEEP) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str, port: Option<u16>) -> Endpoint {
        Endpoint::Host { host: h.to_owned(), port }
    }

    fn net(n: &str, port: Option<u16>) -> Endpoint {
        Endpoint::Net { net: n.parse().unwrap(), port }
    }

    #[test]
    fn parses_every_documented_form() {
        let cases = [
            ("api.example.com", host("api.example.com", None)),
            ("api.example.com:443", host("api.example.com", Some(443))),
            ("*.example.com:443", host("*.example.com", Some(443))),
            ("**.example.com", host("**.example.com", None)),
            ("localhost:8080", host("localhost", Some(8080))),
            ("10.1.2.3", net("10.1.2.3/32", None)),
            ("10.1.2.3:80", net("10.1.2.3/32", Some(80))),
            ("10.0.0.0/8", net("10.0.0.0/8", None)),
            ("10.0.0.0/8:5432", net("10.0.0.0/8", Some(5432))),
            ("2001:db8::1", net("2001:db8::1/128", None)),
            ("[2001:db8::1]:443", net("2001:db8::1/128", Some(443))),
            ("[2001:db8::1]", net("2001:db8::1/128", None)),
            ("2001:db8::/32", net("2001:db8::/32", None)),
            ("[2001:db8::/32]:443", net("2001:db8::/32", Some(443))),
            ("  api.example.com  ", host("api.example.com", None)),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Endpoint>().unwrap(), want, "{text}");
        }
    }

    #[test]
    fn hosts_are_lower_cased_and_lose_one_trailing_dot_but_idns_stay_as_written() {
        assert_eq!("API.Example.COM.:443".parse::<Endpoint>().unwrap(), host("api.example.com", Some(443)));
        assert_eq!("Bücher.example".parse::<Endpoint>().unwrap(), host("bücher.example", None));
        assert_eq!("xn--bcher-kva.example".parse::<Endpoint>().unwrap(), host("xn--bcher-kva.example", None));
        assert_ne!("Bücher.example".parse::<Endpoint>().unwrap(), "xn--bcher-kva.example".parse().unwrap());
    }

    #[test]
    fn networks_lose_host_bits_and_mapped_ipv6_is_ipv4() {
        assert_eq!("10.1.2.3/8".parse::<Endpoint>().unwrap(), net("10.0.0.0/8", None));
        assert_eq!("::ffff:10.1.2.3".parse::<Endpoint>().unwrap(), net("10.1.2.3/32", None));
        assert_eq!("[::ffff:10.0.0.0/104]:5432".parse::<Endpoint>().unwrap(), net("10.0.0.0/8", Some(5432)));
        // Wider than the mapped range: stays IPv6.
        assert_eq!("::/0".parse::<Endpoint>().unwrap(), net("::/0", None));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "api.example.com",
            "api.example.com:443",
            "*.example.com:443",
            "10.1.2.3",
            "10.1.2.3:80",
            "10.0.0.0/8:5432",
            "2001:db8::1",
            "[2001:db8::1]:443",
            "[2001:db8::/32]:443",
            "2001:db8::/32",
        ] {
            let e: Endpoint = text.parse().unwrap();
            assert_eq!(e.to_string(), text);
            assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e);
        }
    }

    #[test]
    fn malformed_endpoints_are_refused_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("https://api.example.com", "a URL"),
            ("api.example.com:0", "not a number from 1 to 65535"),
            ("api.example.com:65536", "not a number from 1 to 65535"),
            ("api.example.com:+443", "not a number"),
            ("api.example.com:", "not a number"),
            ("api.example.com:https", "not a number"),
            (":443", "no host before the port"),
            ("2001:db8::1:443x", "brackets"),
            ("[2001:db8::1", "closing ']'"),
            ("[2001:db8::1]443", "not :port"),
            ("[10.1.2.3]:443", "IPv6 addresses only"),
            ("10.0.0.0/33", "exceeds 32"),
            ("2001:db8::/129", "exceeds 128"),
            ("10.0.0.0/x", "not a number"),
            ("10.0.0.0/", "not a number"),
            ("010.1.2.3/8", "not an IP address"),
            ("1.2.3", "ends in a number"),
            ("example.0x1f", "ends in a number"),
            ("api..example.com", "empty label"),
            (".example.com", "empty label"),
            ("-api.example.com", "starts or ends with '-'"),
            ("api example.com", "not allowed"),
            ("api/example.com", "not an IP address"),
            ("api@example.com", "not allowed"),
            ("api\u{3002}example.com", "not allowed"),
            ("*.com", "at least two labels"),
            ("*", "whole first label"),
            ("a*.example.com", "whole first label"),
            ("api.*.example.com", "whole first label"),
            ("***.example.com", "whole first label"),
        ];
        for (text, reason) in cases {
            let e = text.parse::<Endpoint>().unwrap_err();
            assert!(e.reason.contains(reason), "{text:?}: {e}");
            assert!(e.to_string().starts_with("invalid egress endpoint"), "{e}");
        }
        let long = format!("{}.example.com", "a".repeat(64));
        assert!(long.parse::<Endpoint>().unwrap_err().reason.contains("longer than 63"));
        let longer = vec!["abcdefgh"; 30].join(".");
        assert!(longer.parse::<Endpoint>().unwrap_err().reason.contains("longer than 253"));
        let huge = "a".repeat(10_000);
        let e = huge.parse::<Endpoint>().unwrap_err();
        assert!(e.endpoint.chars().count() <= 101, "the message does not carry 10 kB of input");
    }
}
