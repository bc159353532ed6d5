//! OCI references: `registry/repository[:tag][@digest]`, normalised as the Docker CLI does.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry that short names (`nginx`, `library/nginx`) resolve to.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// Why a string is not a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference {input:?}: {reason}")]
pub struct ReferenceError {
    /// The rejected input (cut to 256 characters).
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed reference to an artifact in a registry.
///
/// ```
/// use vouch_attest::reference::ArtifactRef;
/// let r: ArtifactRef = "nginx:1.27".parse().unwrap();
/// assert_eq!(r.registry(), "docker.io");
/// assert_eq!(r.repository(), "library/nginx");
/// assert_eq!(r.tag(), Some("1.27"));
/// assert_eq!(r.to_string(), "docker.io/library/nginx:1.27");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ArtifactRef {
    /// A reference from its parts; the parts are validated as in parsing.
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Self, ReferenceError> {
        let mut s = format!("{registry}/{repository}");
        if let Some(t) = tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s.parse()
    }

    /// Registry host (and port), e.g. `ghcr.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Repository path within the registry.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same reference pinned to `digest`, keeping the tag for readability (`name:tag@sha256:…`).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self { digest: Some(digest), ..self.clone() }
    }

    /// `registry/repository@digest`, dropping the tag; `None` when the reference has no digest.
    pub fn pinned(&self) -> Option<Self> {
        self.digest.as_ref().map(|d| Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(d.clone()),
        })
    }

    /// The same repository with another tag and no digest (used for cosign's `sha256-<hex>.sig` tags).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        Self::new(&self.registry, &self.repository, Some(tag), None)
    }

    /// `registry/repository` without tag or digest.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

fn valid_registry(r: &str) -> bool {
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (r, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if host.starts_with('[') && host.ends_with(']') {
        return host[1..host.len() - 1].parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl FromStr for ArtifactRef {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ReferenceError {
            input: input.chars().take(256).collect(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(err("empty"));
        }
        if input.len() > 4096 {
            return Err(err("longer than 4096 bytes"));
        }
        if input.contains("://") {
            return Err(err("a URL, not an OCI reference (drop the scheme)"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>().map_err(|e| err(e.reason))?)),
            None => (input, None),
        };
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(err("invalid tag"));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.starts_with('[') =>
            {
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
        };
        if !valid_registry(&registry) {
            return Err(err("invalid registry host"));
        }
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DEFAULT_REGISTRY.to_owned()
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if repository.len() > 255 {
            return Err(err("repository longer than 255 characters"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(err(
                "invalid repository path (lower-case letters, digits and single separators only)",
            ));
        }
        Ok(Self { registry, repository, tag: tag.map(str::to_owned), digest })
    }
}

impl serde::Serialize for ArtifactRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ArtifactRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("busybox", "docker.io", "library/busybox", None),
            ("user/app:v1", "docker.io", "user/app", Some("v1")),
            ("index.docker.io/user/app", "docker.io", "user/app", None),
            ("ghcr.io/org/team/app:1.0-rc.1", "ghcr.io", "org/team/app", Some("1.0-rc.1")),
            ("localhost/app", "localhost", "app", None),
            ("127.0.0.1:5000/a/b:latest", "127.0.0.1:5000", "a/b", Some("latest")),
            ("[::1]:5000/app:x", "[::1]:5000", "app", Some("x")),
        ];
        for (input, reg, repo, tag) in cases {
            let r: ArtifactRef = input.parse().unwrap();
            assert_eq!((r.registry(), r.repository(), r.tag()), (reg, repo, tag), "{input}");
        }
    }

    #[test]
    fn keeps_tag_and_digest_and_round_trips() {
        let s = format!("reg.example:443/app:1.2@{D}");
        let r: ArtifactRef = s.parse().unwrap();
        assert_eq!(r.tag(), Some("1.2"));
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.to_string(), s);
        assert_eq!(r.pinned().unwrap().to_string(), format!("reg.example:443/app@{D}"));
        let sig = r.with_tag(&format!("{}.sig", r.digest().unwrap().cosign_tag_stem())).unwrap();
        assert!(sig.to_string().ends_with(".sig"));
    }

    #[test]
    fn rejects_bad_references_with_reasons() {
        for input in [
            "",
            "Upper/Case",
            "app:",
            "app:-bad",
            "app@sha256:short",
            "https://reg.example/app",
            "reg.example/app//x",
            "reg.example:99999999/app",
            "a..b/app",
        ] {
            assert!(input.parse::<ArtifactRef>().is_err(), "{input:?} should be rejected");
        }
    }
}
