//! Globs over normalised references (`registry/repository`) and namespace names: `*` matches within one
//! path segment, `**` across segments, `?` one character other than `/`; everything else is literal.
//! Compiled to an anchored regular expression, so matching is linear in the input.

use std::fmt;

/// A glob that did not compile, with the glob as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob {glob:?}: {reason}")]
pub struct GlobError {
    /// The glob as written.
    pub glob: String,
    /// What is wrong.
    pub reason: String,
}

/// A compiled glob.
#[derive(Clone)]
pub struct Glob {
    text: String,
    regex: regex::Regex,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Longest glob accepted.
const MAX_GLOB_LEN: usize = 1024;

impl Glob {
    /// Compile `text`.
    pub fn new(text: &str) -> Result<Self, GlobError> {
        let err = |reason: &str| GlobError { glob: text.to_owned(), reason: reason.to_owned() };
        if text.is_empty() {
            return Err(err("empty"));
        }
        if text.len() > MAX_GLOB_LEN {
            return Err(err("longer than 1024 characters"));
        }
        if text.contains("***") {
            return Err(err("`***` is not a wildcard; use `*` (one segment) or `**` (any depth)"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("contains whitespace or control characters"));
        }
        let mut pattern = String::from("^");
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("**") {
                pattern.push_str(".*");
                rest = after;
            } else {
                match c {
                    '*' => pattern.push_str("[^/]*"),
                    '?' => pattern.push_str("[^/]"),
                    _ => pattern.push_str(&regex::escape(&c.to_string())),
                }
                rest = &rest[c.len_utf8()..];
            }
        }
        pattern.push('$');
        let regex = regex::Regex::new(&pattern).map_err(|e| err(&e.to_string()))?;
        Ok(Self { text: text.to_owned(), regex })
    }

    /// Whether `s` matches the whole glob.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the glob's first segment could be a registry host (`ghcr.io`, `localhost:5000`,
    /// `localhost`) or is a wildcard; `nginx` or `library/nginx` cannot match a normalised reference.
    pub fn names_registry(&self) -> bool {
        let first = self.text.split('/').next().unwrap_or_default();
        first.contains(['.', ':', '*', '?']) || first == "localhost"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, s: &str) -> bool {
        Glob::new(glob).unwrap().is_match(s)
    }

    #[test]
    fn single_star_stays_within_a_segment() {
        assert!(m("ghcr.io/acme/*", "ghcr.io/acme/app"));
        assert!(!m("ghcr.io/acme/*", "ghcr.io/acme/team/app"));
        assert!(m("ghcr.io/*/app", "ghcr.io/acme/app"));
        assert!(!m("ghcr.io/*/app", "ghcr.io/a/b/app"));
        assert!(m("ghcr.io/acme/app-*", "ghcr.io/acme/app-web"));
        assert!(!m("ghcr.io/acme/*", "ghcr.io/acme"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(m("ghcr.io/acme/**", "ghcr.io/acme/app"));
        assert!(m("ghcr.io/acme/**", "ghcr.io/acme/team/app"));
        assert!(!m("ghcr.io/acme/**", "ghcr.io/acmecorp/app"));
        assert!(m("**", "docker.io/library/nginx"));
        assert!(m("**/nginx", "docker.io/library/nginx"));
    }

    #[test]
    fn everything_else_is_literal() {
        assert!(m("localhost:5000/app", "localhost:5000/app"));
        assert!(!m("ghcr.io/acme/app", "ghcrxio/acme/app"), "a dot is not a regex wildcard");
        assert!(!m("ghcr.io/acme/app", "ghcr.io/acme/app2"), "anchored at the end");
        assert!(!m("ghcr.io/acme/app", "evil.com/ghcr.io/acme/app"), "anchored at the start");
        assert!(m("ghcr.io/acme/ap?", "ghcr.io/acme/app"));
        assert!(!m("ghcr.io/acme/ap?", "ghcr.io/acme/ap/"));
        assert!(m("a+b/(c)", "a+b/(c)"));
    }

    #[test]
    fn bad_globs_are_named() {
        let e = Glob::new("ghcr.io/***").unwrap_err();
        assert_eq!(e.glob, "ghcr.io/***");
        assert!(e.to_string().contains("`***`"), "{e}");
        assert!(Glob::new("").is_err());
        assert!(Glob::new("a b").is_err());
        assert!(Glob::new(&"a".repeat(2000)).is_err());
    }

    #[test]
    fn registry_naming_is_recognised() {
        assert!(Glob::new("ghcr.io/acme/**").unwrap().names_registry());
        assert!(Glob::new("localhost:5000/x").unwrap().names_registry());
        assert!(Glob::new("**").unwrap().names_registry());
        assert!(!Glob::new("nginx").unwrap().names_registry());
        assert!(!Glob::new("library/nginx").unwrap().names_registry());
    }
}
