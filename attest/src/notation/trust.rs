//! Trust as Notation's trust policy has it: a trust store of certificates (type `ca`, `signingAuthority` or
//! `tsa`) and trusted identities, `x509.subject: C=…, ST=…, O=…, CN=…` matched as a set of RDN attributes
//! against the signing certificate's subject, or `*`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::NotationError;
use crate::digest::Digest;
use crate::keys::pem_decode_all;
use crate::sigstore_verify::certificate::ParsedCert;

/// What a trust store's certificates may vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrustStoreKind {
    /// Certificate authorities of `notary.x509` signatures.
    Ca,
    /// Signing authorities of `notary.x509.signingAuthority` signatures.
    SigningAuthority,
    /// Timestamp authorities of RFC 3161 countersignatures.
    Tsa,
}

impl TrustStoreKind {
    /// The trust policy's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ca => "ca",
            Self::SigningAuthority => "signingAuthority",
            Self::Tsa => "tsa",
        }
    }
}

impl FromStr for TrustStoreKind {
    type Err = NotationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ca" => Ok(Self::Ca),
            "signingAuthority" => Ok(Self::SigningAuthority),
            "tsa" => Ok(Self::Tsa),
            other => Err(NotationError::Config(format!(
                "trust store type {other:?} is not one of ca, signingAuthority, tsa"
            ))),
        }
    }
}

/// Certificates trusted for one purpose.
#[derive(Debug, Clone)]
pub struct TrustStore {
    /// The store's type.
    pub kind: TrustStoreKind,
    certificates: Vec<ParsedCert>,
}

impl TrustStore {
    /// A `ca` store from PEM text (one or more `CERTIFICATE` blocks; anything else is refused).
    pub fn from_pem(pem: &str) -> Result<Self, NotationError> {
        Self::from_pem_as(TrustStoreKind::Ca, pem)
    }

    /// A store of `kind` from PEM text.
    pub fn from_pem_as(kind: TrustStoreKind, pem: &str) -> Result<Self, NotationError> {
        let blocks =
            pem_decode_all(pem).map_err(|e| NotationError::Config(format!("trust store PEM: {e}")))?;
        let mut certificates = Vec::with_capacity(blocks.len());
        for (label, der) in blocks {
            if label != "CERTIFICATE" {
                return Err(NotationError::Config(format!(
                    "trust store PEM holds a {label:?} block; only CERTIFICATE blocks belong in a trust store"
                )));
            }
            let cert = ParsedCert::from_der(&der)
                .map_err(|e| NotationError::Config(format!("trust store certificate: {e}")))?;
            certificates.push(cert);
        }
        Self::from_certificates(kind, certificates)
    }

    /// A store of `kind` from parsed certificates (at least one).
    pub fn from_certificates(
        kind: TrustStoreKind,
        certificates: Vec<ParsedCert>,
    ) -> Result<Self, NotationError> {
        if certificates.is_empty() {
            return Err(NotationError::Config("a trust store needs at least one certificate".into()));
        }
        Ok(Self { kind, certificates })
    }

    /// The certificates.
    pub fn certificates(&self) -> &[ParsedCert] {
        &self.certificates
    }

    /// Whether `der` is one of the store's certificates (byte for byte).
    pub fn contains(&self, der: &[u8]) -> bool {
        self.certificates.iter().any(|c| c.der == der)
    }

    /// A stable name for cache keys: the type and the SHA-256 of each certificate, sorted.
    pub fn fingerprint(&self) -> String {
        let mut certs: Vec<String> =
            self.certificates.iter().map(|c| Digest::sha256_of(&c.der).to_string()).collect();
        certs.sort();
        certs.dedup();
        format!("{}[{}]", self.kind.as_str(), certs.join(","))
    }
}

/// A distinguished name as a set of attributes (`ST` for `S`; no attribute twice, no multi-valued RDNs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DistinguishedName(BTreeMap<String, String>);

impl DistinguishedName {
    /// Parse an RFC 4514 string.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut attrs = BTreeMap::new();
        for rdn in split_unescaped(s, ',') {
            if split_unescaped(&rdn, '+').len() > 1 {
                return Err(format!("{s:?} has a multi-valued RDN ({rdn:?}), which is not supported"));
            }
            let (ty, value) =
                rdn.split_once('=').ok_or_else(|| format!("{s:?}: {rdn:?} is not TYPE=value"))?;
            let mut ty = ty.trim().to_ascii_uppercase();
            if ty == "S" {
                ty = "ST".into();
            }
            let value = unescape(value.trim());
            if ty.is_empty() || value.is_empty() {
                return Err(format!("{s:?}: {rdn:?} has an empty type or value"));
            }
            if value.starts_with('#') {
                return Err(format!("{s:?}: hex-encoded values (#...) are not supported"));
            }
            if attrs.insert(ty.clone(), value).is_some() {
                return Err(format!("{s:?} has {ty} twice"));
            }
        }
        if attrs.is_empty() {
            return Err("empty distinguished name".into());
        }
        Ok(Self(attrs))
    }

    /// The name of a certificate's subject.
    pub fn of_subject(cert: &ParsedCert) -> Result<Self, String> {
        Self::parse(&cert.cert.tbs_certificate.subject.to_string())
    }

    /// Whether every attribute of `self` is in `other` with the same value.
    pub fn is_subset_of(&self, other: &Self) -> bool {
        self.0.iter().all(|(k, v)| other.0.get(k) == Some(v))
    }
}

/// The order Notation's documentation writes identities in; other attributes follow alphabetically.
const DISPLAY_ORDER: [&str; 6] = ["C", "ST", "L", "O", "OU", "CN"];

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rank = |k: &str| DISPLAY_ORDER.iter().position(|o| *o == k).unwrap_or(DISPLAY_ORDER.len());
        let mut attrs: Vec<(&String, &String)> = self.0.iter().collect();
        attrs.sort_by_key(|(k, _)| rank(k));
        let parts: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// Split on `sep` where it is not escaped with a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                if let Some(last) = out.last_mut() {
                    last.push('\\');
                    last.push(c);
                }
            }
            '\\' => escaped = true,
            c if c == sep => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// Who may have signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrustedIdentity {
    /// `*`: any signer the trust store vouches for.
    Any,
    /// `x509.subject: DN`: a signing certificate whose subject holds every attribute of the DN.
    Subject(DistinguishedName),
}

impl TrustedIdentity {
    /// Whether the signing certificate's subject matches.
    pub fn matches(&self, subject: &DistinguishedName) -> bool {
        match self {
            Self::Any => true,
            Self::Subject(dn) => dn.is_subset_of(subject),
        }
    }
}

impl FromStr for TrustedIdentity {
    type Err = NotationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "*" {
            return Ok(Self::Any);
        }
        let bad = |why: String| NotationError::Config(format!("trusted identity {s:?}: {why}"));
        let dn = s
            .strip_prefix("x509.subject:")
            .ok_or_else(|| bad("expected \"*\" or \"x509.subject: C=…, ST=…, O=…\"".into()))?;
        let dn = DistinguishedName::parse(dn.trim()).map_err(bad)?;
        for required in ["C", "ST", "O"] {
            if !dn.0.contains_key(required) {
                return Err(bad(format!("must name at least C, ST (or S) and O; {required} is missing")));
            }
        }
        Ok(Self::Subject(dn))
    }
}

impl fmt::Display for TrustedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Subject(dn) => write!(f, "x509.subject: {dn}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_as_attribute_sets_and_match_subsets() {
        let id: TrustedIdentity =
            "x509.subject: C=US, S=WA, O=Notary, CN=Notation Test Root".parse().unwrap();
        let subject =
            DistinguishedName::parse("CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US").unwrap();
        assert!(id.matches(&subject), "order does not matter, S is ST, L need not be named");
        let other = DistinguishedName::parse("CN=Other,O=Notary,L=Seattle,ST=WA,C=US").unwrap();
        assert!(!id.matches(&other));
        assert!(TrustedIdentity::Any.matches(&other));
        let escaped = DistinguishedName::parse(r"CN=a\, b,O=x,ST=y,C=z").unwrap();
        assert_eq!(escaped.0.get("CN").map(String::as_str), Some("a, b"));
    }

    #[test]
    fn bad_identities_are_refused_with_the_input_named() {
        for bad in [
            "CN=x",
            "x509.subject: CN=only",
            "x509.subject: C=US, ST=WA, O=a, O=b",
            "x509.subject: C=US+ST=WA, O=a",
            "x509.subject: C=US, ST=WA, O=#0403",
            "x509.subject: ",
        ] {
            let err = bad.parse::<TrustedIdentity>().unwrap_err().to_string();
            assert!(err.contains("trusted identity"), "{bad}: {err}");
        }
    }

    #[test]
    fn trust_stores_take_only_certificates() {
        assert!(TrustStore::from_pem("").is_err());
        let key = crate::keys::SigningKey::generate().public_key().to_pem();
        let err = TrustStore::from_pem(&key).unwrap_err().to_string();
        assert!(err.contains("only CERTIFICATE blocks"), "{err}");
    }
}
