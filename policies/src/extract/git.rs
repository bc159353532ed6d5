//! Git repository URLs in every form git accepts (git-clone(1), "GIT URLS"), told apart from OCI references:
//! a field or fetcher source naming a git repository names something vouch cannot verify (a `NotOci`
//! source), and must not be read as an image reference (`git@github.com:org/repo.git` would otherwise be
//! refused as a malformed reference, a misleading message).

/// Whether `s` is a git repository URL rather than an OCI reference:
/// - a URL with a scheme git uses (`ssh://`, `git://`, `git+ssh://`, `ssh+git://`, `git+https://`,
///   `file://`, …) or any `scheme://` URL whose path ends in `.git`;
/// - scp-like `[user@]host:path` (`git@github.com:org/repo.git`, `github.com:org/repo`), which no image
///   reference can be: `host:port/…` has digits after the colon, `name@sha256:…` a digest;
/// - a path ending in `.git` (`github.com/org/repo.git`), which is how git URLs are written but no tag or
///   digest reference ends.
pub(crate) fn is_git_url(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() || s.contains(char::is_whitespace) {
        return false;
    }
    if let Some((scheme, _)) = s.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        let git_scheme = scheme == "git"
            || scheme == "ssh"
            || scheme == "file"
            || scheme.starts_with("git+")
            || scheme.ends_with("+git");
        return git_scheme || ends_in_git(s);
    }
    if ends_in_git(s) {
        return true;
    }
    scp_like(s)
}

/// The path (without a query or fragment) ends in `.git` or `.git/`.
fn ends_in_git(s: &str) -> bool {
    let path = s.split(['?', '#']).next().unwrap_or(s);
    let path = path.strip_suffix('/').unwrap_or(path);
    path.len() > 4 && path.to_ascii_lowercase().ends_with(".git")
}

/// `[user@]host:path` as git reads it (no slash before the first colon), when it cannot be an image
/// reference: the part after the colon is not a port (`host:5000/…`), a tag (`name:1.2`) or a digest.
fn scp_like(s: &str) -> bool {
    let Some(colon) = s.find(':') else { return false };
    let (before, after) = (&s[..colon], &s[colon + 1..]);
    if before.contains('/') || after.is_empty() {
        return false;
    }
    let (user, host) = match before.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, before),
    };
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
        return false;
    }
    match user {
        // `name@sha256:hex` is a digest reference, not user@host.
        Some(_) if is_digest(host, after) => false,
        Some(user) => !user.is_empty() && !user.contains(['/', ':']),
        // `host:5000/repo` is a registry with a port; `name:tag` is a tag (no slash in a tag).
        None => {
            let first = after.split('/').next().unwrap_or_default();
            let port = !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit());
            after.contains('/') && !port
        }
    }
}

/// `algorithm:hex` of a digest (`sha256:…`, `sha512:…`).
fn is_digest(algorithm: &str, value: &str) -> bool {
    let known = algorithm.starts_with("sha") || algorithm.contains('+');
    known && value.len() >= 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_git_url_is_recognised() {
        for url in [
            "git@github.com:org/repo.git",
            "git@github.com:org/repo",
            "deploy@git.internal:repo",
            "github.com:org/repo",
            "github.com:org/repo.git",
            "ssh://git@github.com/org/repo.git",
            "ssh://git@host:2222/org/repo",
            "git://git.kernel.org/pub/scm/git/git.git",
            "git+ssh://git@github.com/org/repo",
            "git+https://github.com/org/repo",
            "file:///srv/git/repo.git",
            "https://github.com/org/repo.git",
            "https://dev.azure.com/org/project/_git/repo.git/",
            "github.com/org/repo.git",
            "HTTPS://GitHub.com/Org/Repo.GIT",
        ] {
            assert!(is_git_url(url), "{url}");
        }
    }

    #[test]
    fn image_references_and_other_urls_are_not_git() {
        for reference in [
            "ghcr.io/org/app:1.0",
            "localhost:5000/app",
            "registry.example.com:5000/org/app:2",
            "nginx:1.25",
            "app",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "ghcr.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "ghcr.io/org/app:1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/app",
            "https://github.com/org/repo",
            "hf://org/model",
            "",
            "a b:c/d",
        ] {
            assert!(!is_git_url(reference), "{reference}");
        }
    }
}
