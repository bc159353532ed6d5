//! Single flags and groups of flags of `vouch serve`, each parsed and checked, problems reported through
//! `bad` (so every problem is reported at once).

use super::*;

impl RawServeConfig {
    /// `--shared-cache*`: a Redis URL (never echoed with its password) and the HMAC key file it needs.
    pub(super) fn shared_cache_settings(
        &self,
        bad: &mut impl FnMut(&'static str, String),
    ) -> Option<SharedCacheSettings> {
        let timeout = duration_in(
            self.shared_cache_timeout.as_deref(),
            DEFAULT_SHARED_CACHE_TIMEOUT,
            (MIN_SHARED_CACHE_TIMEOUT, MAX_SHARED_CACHE_TIMEOUT),
            "--shared-cache-timeout",
            bad,
        );
        let Some(url) = self.shared_cache.as_deref().filter(|u| !u.is_empty()) else {
            for (set, field) in [
                (self.shared_cache_key_file.is_some(), "--shared-cache-key-file"),
                (self.shared_cache_timeout.is_some(), "--shared-cache-timeout"),
                (self.shared_cache_ca_file.is_some(), "--shared-cache-ca-file"),
            ] {
                if set {
                    bad(field, "given without --shared-cache".into());
                }
            }
            return None;
        };
        if let Err(reason) = vouch_attest::shared_cache::check_url(url) {
            bad("--shared-cache", reason);
        }
        if self.bundle.is_some() {
            // A bundle's verdicts come from the bundle's contents, not the registry's: never mix them.
            bad(
                "--shared-cache",
                "cannot be used with --bundle (verdicts from a bundle are not shared)".into(),
            );
        }
        let Some(key_file) = self.shared_cache_key_file.clone() else {
            bad(
                "--shared-cache-key-file",
                "required with --shared-cache: the HMAC key all replicas share (e.g. 48 random bytes, base64)"
                    .into(),
            );
            return None;
        };
        optional_file(Some(&key_file), "--shared-cache-key-file", bad);
        let ca_file = self.shared_cache_ca_file.clone();
        optional_file(ca_file.as_deref(), "--shared-cache-ca-file", bad);
        if ca_file.is_some() && !vouch_attest::shared_cache::uses_tls(url) {
            bad("--shared-cache-ca-file", "needs a rediss:// (TLS) --shared-cache URL".into());
        }
        Some(SharedCacheSettings { url: url.to_owned(), key_file, timeout: timeout?, ca_file })
    }

    /// `--tuf-*`: a mirror excludes `--trusted-root` and `--bundle`; a private one needs `--tuf-root`.
    pub(super) fn tuf_settings(
        &self,
        with_bundle: bool,
        bad: &mut impl FnMut(&'static str, String),
    ) -> Option<TufSettings> {
        let refresh = duration_in(
            self.tuf_refresh.as_deref(),
            DEFAULT_TUF_REFRESH,
            (MIN_TUF_REFRESH, MAX_TUF_REFRESH),
            "--tuf-refresh",
            bad,
        );
        let Some(mirror) = &self.tuf_mirror else {
            for (set, field) in [
                (self.tuf_root.is_some(), "--tuf-root"),
                (self.tuf_cache.is_some(), "--tuf-cache"),
                (self.tuf_refresh.is_some(), "--tuf-refresh"),
            ] {
                if set {
                    bad(field, "given without --tuf-mirror".into());
                }
            }
            return None;
        };
        if self.trusted_root.is_some() {
            bad("--tuf-mirror", "cannot be used with --trusted-root (one source of trusted root)".into());
        }
        if with_bundle {
            bad("--tuf-mirror", "cannot be used with --bundle (a bundle carries its trusted root)".into());
        }
        optional_file(self.tuf_root.as_deref(), "--tuf-root", bad);
        let public_good = mirror == vouch_attest::tuf::PUBLIC_GOOD_NAME;
        if !public_good && self.tuf_root.is_none() {
            bad(
                "--tuf-root",
                format!("required with --tuf-mirror {mirror} (the root.json it is trusted from)"),
            );
        }
        let cache_dir = self.tuf_cache.clone().or_else(default_tuf_cache);
        if cache_dir.is_none() {
            bad("--tuf-cache", "required: neither XDG_CACHE_HOME nor HOME is set".into());
        }
        Some(TufSettings {
            mirror: if public_good { vouch_attest::tuf::PUBLIC_GOOD_MIRROR.into() } else { mirror.clone() },
            root: self.tuf_root.clone(),
            cache_dir: cache_dir?,
            refresh: refresh?,
        })
    }
}

/// `--bundle` with its key: a key is required unless unsigned bundles are explicitly allowed, because the
/// bundle's policies decide what is admitted.
pub(super) fn bundle_source(
    bundle: Option<PathBuf>,
    key: Option<PathBuf>,
    allow_unsigned: bool,
    bad: &mut impl FnMut(&'static str, String),
) -> Option<BundleSource> {
    let Some(path) = bundle else {
        if key.is_some() {
            bad("--bundle-key", "given without --bundle".into());
        }
        return None;
    };
    if !path.is_file() {
        bad("--bundle", format!("{} is not a readable file", path.display()));
    }
    optional_file(key.as_deref(), "--bundle-key", bad);
    if key.is_none() && !allow_unsigned {
        bad(
            "--bundle-key",
            "required with --bundle (the bundle's public key); --bundle-allow-unsigned accepts a bundle \
             without checking who made it"
                .into(),
        );
    }
    Some(BundleSource { path, key, allow_unsigned })
}

pub(super) fn address(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("{s:?} is not an address of the form IP:PORT (e.g. 0.0.0.0:8443)"))
}

pub(super) fn required_file(
    p: Option<PathBuf>,
    field: &'static str,
    bad: &mut impl FnMut(&'static str, String),
) -> Option<PathBuf> {
    match p {
        None => {
            bad(field, "required (the webhooks are served over HTTPS only)".into());
            None
        }
        Some(p) if !p.is_file() => {
            bad(field, format!("{} is not a readable file", p.display()));
            None
        }
        Some(p) => Some(p),
    }
}

pub(super) fn optional_file(
    p: Option<&Path>,
    field: &'static str,
    bad: &mut impl FnMut(&'static str, String),
) {
    if let Some(p) = p {
        if !p.is_file() {
            bad(field, format!("{} is not a readable file", p.display()));
        }
    }
}

pub(super) fn registry_host(r: &str) -> Result<(), String> {
    let ok = !r.is_empty()
        && !r.contains("://")
        && !r.contains('/')
        && r.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(format!("{r:?}: expected host[:port], without scheme or path"))
    }
}

/// `8s`, `500ms`, `2m`, `1h` or plain seconds (`8`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 8s, 500ms, 2m)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs).ok_or_else(|| format!("{s:?} is too long")),
        "h" => n.checked_mul(3600).map(Duration::from_secs).ok_or_else(|| format!("{s:?} is too long")),
        _ => Err(format!("{s:?} is not a duration (e.g. 8s, 500ms, 2m, 1h)")),
    }
}

pub(super) fn duration_in(
    s: Option<&str>,
    default: Duration,
    (min, max): (Duration, Duration),
    field: &'static str,
    bad: &mut impl FnMut(&'static str, String),
) -> Option<Duration> {
    let Some(s) = s else { return Some(default) };
    match parse_duration(s) {
        Ok(d) if d >= min && d <= max => Some(d),
        Ok(_) => {
            bad(field, format!("{s}: must be between {min:?} and {max:?}"));
            None
        }
        Err(m) => {
            bad(field, m);
            None
        }
    }
}
