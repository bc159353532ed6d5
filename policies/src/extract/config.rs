//! Where references are found beyond the built-in places: JSONPath extractors for custom kinds and extra
//! fetcher profiles, read from a file or Helm values (`--extraction-config FILE`), validated and compiled once.

use serde::{Deserialize, Serialize};

use super::jsonpath::CompiledPath;
use crate::glob::Glob;

/// Configuration of where references are found beyond the built-in places (`--extraction-config FILE`, Helm value `extraction`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtractionConfig {
    /// Custom kinds and the fields naming references in them.
    #[serde(default)]
    pub extractors: Vec<FieldExtractor>,
    /// Fetcher profiles, tried before the built-in ones.
    #[serde(default)]
    pub fetchers: Vec<FetcherProfile>,
    /// More download commands that make an init container a fetcher of an unverifiable source, beside the
    /// built-in ones (curl/wget of a model, huggingface-cli, git clone of a model repository, aws s3 cp, ...).
    #[serde(default)]
    pub downloaders: Vec<DownloaderPattern>,
}

/// A command that downloads a model from outside any OCI registry, e.g. `mc cp` (MinIO client).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DownloaderPattern {
    /// Name used in messages.
    pub name: String,
    /// The program, matched against the command word's base name (`mc` matches `/usr/bin/mc`).
    pub command: String,
    /// Operands that must follow the program, in order (flags skipped), e.g. `[cp]`.
    #[serde(default)]
    pub subcommands: Vec<String>,
}

/// The fields of one kind that name references, egress allowlists and egress endpoints.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldExtractor {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    /// The kind, e.g. `ModelDeployment`.
    pub kind: String,
    /// References: JSONPath expressions of reference fields (`$.spec.model.uri`), or of objects naming a
    /// reference by its parts ([`ReferenceParts`]).
    #[serde(default)]
    pub paths: Vec<ReferencePath>,
    /// Text every reference field starts with, stripped before verifying (e.g. `oci://`); not used for
    /// references made of parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The egress allowlist the endpoints must be covered by: fields naming it, or objects naming it by
    /// its parts.
    #[serde(default)]
    pub egress_allowlist_paths: Vec<ReferencePath>,
    /// Egress endpoints: fields listing them (a string or a list of strings), or objects naming one by
    /// its parts ([`EndpointParts`]).
    #[serde(default)]
    pub egress_endpoint_paths: Vec<EndpointPath>,
}

/// Where references are: a JSONPath of string fields, or a JSONPath of objects and the names of their
/// parts. In YAML a plain string, or `{path, registry, repository, digest, artifactType}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ReferencePath {
    /// JSONPath of fields holding a reference each, e.g. `$.spec.adapters[*].ref`.
    Field(String),
    /// JSONPath of objects holding a reference in parts, e.g. kars's `allowlistRef`.
    Parts(ReferenceParts),
}

/// The parts of an object that make a reference (each the name of one of its string fields).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceParts {
    /// JSONPath of the objects, e.g. `$.spec.networkPolicy.allowlistRef`.
    pub path: String,
    /// Field holding the registry host (`myacr.azurecr.io`, `localhost:5000`); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Field holding the repository path (`kars/policies/sandbox-foo`).
    pub repository: String,
    /// Field holding the digest (`sha256:…`).
    pub digest: String,
    /// Field holding the artifact type the artifact's manifest must declare; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// Where egress endpoints are: a JSONPath of string (or list of strings) fields, or a JSONPath of objects
/// and the names of their host and port fields. In YAML a plain string, or `{path, host, port}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EndpointPath {
    /// JSONPath of fields listing endpoints (`api.example.com:443, 10.0.0.0/8`).
    Field(String),
    /// JSONPath of objects naming one endpoint each by its parts.
    Parts(EndpointParts),
}

/// The parts of an object that make an endpoint: `host:port` (`host` alone, meaning every port, when the
/// object has no port).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointParts {
    /// JSONPath of the objects, e.g. `$.spec.networkPolicy.allowedEndpoints[*]`.
    pub path: String,
    /// Field holding the host name or IP address.
    pub host: String,
    /// Field holding the port (a number or a numeric string); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

impl From<&str> for ReferencePath {
    fn from(s: &str) -> Self {
        Self::Field(s.to_owned())
    }
}

impl From<String> for ReferencePath {
    fn from(s: String) -> Self {
        Self::Field(s)
    }
}

impl From<&str> for EndpointPath {
    fn from(s: &str) -> Self {
        Self::Field(s.to_owned())
    }
}

impl From<String> for EndpointPath {
    fn from(s: String) -> Self {
        Self::Field(s)
    }
}

/// A string (`string`), or an object read as `P` (so its own errors, such as an unknown or missing field,
/// are reported as they are) and wrapped by `parts`.
fn string_or_parts<'de, D, T, P>(
    deserializer: D,
    what: &'static str,
    string: fn(String) -> T,
    parts: fn(P) -> T,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    P: Deserialize<'de>,
{
    struct Visitor<T, P> {
        what: &'static str,
        string: fn(String) -> T,
        parts: fn(P) -> T,
    }
    impl<'de, T, P: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T, P> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a JSONPath string or {}", self.what)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            Ok((self.string)(v.to_owned()))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            P::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(self.parts)
        }
    }
    deserializer.deserialize_any(Visitor { what, string, parts })
}

impl<'de> Deserialize<'de> for ReferencePath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_parts(
            deserializer,
            "an object {path, registry, repository, digest, artifactType}",
            Self::Field,
            Self::Parts,
        )
    }
}

impl<'de> Deserialize<'de> for EndpointPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_parts(deserializer, "an object {path, host, port}", Self::Field, Self::Parts)
    }
}

/// An init-container image that fetches an artifact, and where its reference is.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetcherProfile {
    /// Name used in messages.
    pub name: String,
    /// Glob over the normalised image repository, e.g. `registry.example.com/tools/puller` or `**/puller`.
    pub image: String,
    /// The reference is the value of this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The reference is this entry of the container's `args` (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<usize>,
    /// The reference is the value of this flag in `command` + `args` (`--from REF` or `--from=REF`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// Text the reference starts with, stripped before verifying (e.g. `oci://`); a value without it is
    /// not an OCI reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Largest configuration file read.
const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
/// Most extractors or fetcher profiles in one configuration.
const MAX_CONFIG_ENTRIES: usize = 256;
/// Most JSONPath expressions per extractor field.
const MAX_PATHS: usize = 64;
/// Longest name, prefix or environment variable accepted.
const MAX_NAME_LEN: usize = 253;

impl ExtractionConfig {
    /// Read a configuration from YAML (or JSON); unknown fields are errors, so typos do not go unnoticed.
    pub fn from_yaml_str(s: &str) -> Result<Self, String> {
        serde_yaml::from_str(s).map_err(|e| format!("extraction configuration: {e}"))
    }

    /// Read and check a configuration file (`--extraction-config`): bounded in size, every problem listed.
    pub fn read_file(path: &std::path::Path) -> Result<Self, String> {
        use std::io::Read;
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let mut text = String::new();
        file.take(MAX_CONFIG_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if text.len() as u64 > MAX_CONFIG_FILE_BYTES {
            return Err(format!("{shown} is larger than {MAX_CONFIG_FILE_BYTES} bytes"));
        }
        let config = Self::from_yaml_str(&text).map_err(|e| format!("{shown}: {e}"))?;
        config.validate().map_err(|problems| format!("{shown}: {}", problems.join("; ")))?;
        Ok(config)
    }

    /// Every problem of the configuration at once (bad JSONPath, bad glob, ambiguous profile, ...).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        self.compile().map(drop)
    }

    /// Validate and compile once: JSONPath expressions parsed, globs compiled.
    pub fn compile(&self) -> Result<CompiledExtraction, Vec<String>> {
        let mut problems = Vec::new();
        if self.extractors.len() > MAX_CONFIG_ENTRIES {
            problems.push(format!("more than {MAX_CONFIG_ENTRIES} extractors"));
        }
        if self.fetchers.len() > MAX_CONFIG_ENTRIES {
            problems.push(format!("more than {MAX_CONFIG_ENTRIES} fetcher profiles"));
        }
        let mut extractors = Vec::new();
        for (i, e) in self.extractors.iter().enumerate().take(MAX_CONFIG_ENTRIES) {
            let at = format!("extractors[{i}] ({} {})", e.api_version, e.kind);
            if let Some(x) = compile_extractor(e, &at, &mut problems) {
                extractors.push(x);
            }
        }
        let mut fetchers = Vec::new();
        for (i, f) in self.fetchers.iter().enumerate().take(MAX_CONFIG_ENTRIES) {
            let at = format!("fetchers[{i}] ({})", f.name);
            if let Some(x) = compile_fetcher(f, &at, &mut problems) {
                fetchers.push(x);
            }
        }
        if self.downloaders.len() > MAX_CONFIG_ENTRIES {
            problems.push(format!("more than {MAX_CONFIG_ENTRIES} downloaders"));
        }
        let mut downloaders = Vec::new();
        for (i, d) in self.downloaders.iter().enumerate().take(MAX_CONFIG_ENTRIES) {
            let at = format!("downloaders[{i}] ({})", d.name);
            if let Some(x) = compile_downloader(d, &at, &mut problems) {
                downloaders.push(x);
            }
        }
        if problems.is_empty() {
            Ok(CompiledExtraction { extractors, fetchers, downloaders })
        } else {
            Err(problems)
        }
    }
}

fn compile_extractor(e: &FieldExtractor, at: &str, problems: &mut Vec<String>) -> Option<CompiledExtractor> {
    let before = problems.len();
    let (group, version) = match e.api_version.split_once('/') {
        Some((g, v)) if !g.is_empty() && !v.is_empty() && !v.contains('/') => (g.to_owned(), v.to_owned()),
        None if !e.api_version.is_empty() => (String::new(), e.api_version.clone()),
        _ => {
            problems.push(format!("{at}: apiVersion must be group/version or v1"));
            (String::new(), String::new())
        }
    };
    if e.kind.is_empty() || e.kind.len() > MAX_NAME_LEN {
        problems.push(format!("{at}: kind must be set"));
    }
    if e.paths.is_empty() && e.egress_allowlist_paths.is_empty() && e.egress_endpoint_paths.is_empty() {
        problems.push(format!("{at}: names no paths"));
    }
    if !e.egress_allowlist_paths.is_empty() && e.egress_endpoint_paths.is_empty() {
        problems.push(format!("{at}: egressAllowlistPaths without egressEndpointPaths check nothing"));
    }
    check_prefix(e.prefix.as_deref(), at, problems);
    for (field, count) in [
        ("paths", e.paths.len()),
        ("egressAllowlistPaths", e.egress_allowlist_paths.len()),
        ("egressEndpointPaths", e.egress_endpoint_paths.len()),
    ] {
        if count > MAX_PATHS {
            problems.push(format!("{at}: {field}: more than {MAX_PATHS} paths"));
        }
    }
    let mut path = |field: &str, text: &str| -> Option<CompiledPath> {
        CompiledPath::new(text).map_err(|e| problems.push(format!("{at}: {field}: {e}"))).ok()
    };
    let mut references = |field: &str, paths: &[ReferencePath]| -> Vec<CompiledReference> {
        paths
            .iter()
            .take(MAX_PATHS)
            .filter_map(|p| match p {
                ReferencePath::Field(text) => path(field, text).map(CompiledReference::Field),
                ReferencePath::Parts(parts) => path(field, &parts.path).map(|path| {
                    CompiledReference::Parts(ReferencePartsOf {
                        path,
                        registry: parts.registry.clone(),
                        repository: parts.repository.clone(),
                        digest: parts.digest.clone(),
                        artifact_type: parts.artifact_type.clone(),
                    })
                }),
            })
            .collect()
    };
    let paths = references("paths", &e.paths);
    let allowlists = references("egressAllowlistPaths", &e.egress_allowlist_paths);
    let endpoints: Vec<CompiledEndpoints> = e
        .egress_endpoint_paths
        .iter()
        .take(MAX_PATHS)
        .filter_map(|p| match p {
            EndpointPath::Field(text) => path("egressEndpointPaths", text).map(CompiledEndpoints::Field),
            EndpointPath::Parts(parts) => path("egressEndpointPaths", &parts.path).map(|path| {
                CompiledEndpoints::Parts { path, host: parts.host.clone(), port: parts.port.clone() }
            }),
        })
        .collect();
    for (field, parts) in e.paths.iter().chain(&e.egress_allowlist_paths).filter_map(|p| match p {
        ReferencePath::Parts(parts) => Some(("reference", parts)),
        ReferencePath::Field(_) => None,
    }) {
        let names = [
            ("registry", parts.registry.as_deref()),
            ("repository", Some(parts.repository.as_str())),
            ("digest", Some(parts.digest.as_str())),
            ("artifactType", parts.artifact_type.as_deref()),
        ];
        check_part_names(&names, &format!("{at}: {field} {}", parts.path), problems);
    }
    for parts in e.egress_endpoint_paths.iter().filter_map(|p| match p {
        EndpointPath::Parts(parts) => Some(parts),
        EndpointPath::Field(_) => None,
    }) {
        let names = [("host", Some(parts.host.as_str())), ("port", parts.port.as_deref())];
        check_part_names(&names, &format!("{at}: endpoint {}", parts.path), problems);
    }
    (problems.len() == before).then(|| CompiledExtractor {
        group,
        version,
        kind: e.kind.clone(),
        paths,
        prefix: e.prefix.clone().unwrap_or_default(),
        allowlists,
        endpoints,
    })
}

/// The parts of a composite path name fields of the object it selects: plain, distinct field names.
fn check_part_names(names: &[(&str, Option<&str>)], at: &str, problems: &mut Vec<String>) {
    let mut seen: Vec<&str> = Vec::new();
    for (part, name) in names {
        let Some(name) = name else { continue };
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            problems.push(format!("{at}: {part} must name a field (at most {MAX_NAME_LEN} characters)"));
        } else if name.starts_with('$') || name.contains(['.', '[', ']', '*']) {
            problems.push(format!(
                "{at}: {part} {name:?} must be the name of a field of the selected object, not a path"
            ));
        } else if seen.contains(name) {
            problems.push(format!("{at}: {part} {name:?} names the same field as another part"));
        }
        seen.push(name);
    }
}

fn compile_fetcher(f: &FetcherProfile, at: &str, problems: &mut Vec<String>) -> Option<CompiledFetcher> {
    let before = problems.len();
    if f.name.is_empty() || f.name.len() > MAX_NAME_LEN {
        problems.push(format!("{at}: name must be set (at most {MAX_NAME_LEN} characters)"));
    }
    let image = Glob::new(&f.image).map_err(|e| problems.push(format!("{at}: image: {e}"))).ok();
    if let Some(g) = &image {
        if !g.names_registry() {
            problems.push(format!(
                "{at}: image {:?} does not name a registry; globs match normalised repositories such as \
                 docker.io/library/busybox (use **/{} for any registry)",
                f.image, f.image
            ));
        }
    }
    let source = match (&f.env, f.arg, &f.flag) {
        (Some(env), None, None) if valid_env_name(env) => Some(ReferenceSource::Env(env.clone())),
        (Some(env), None, None) => {
            problems.push(format!("{at}: env {env:?} is not an environment variable name"));
            None
        }
        (None, Some(n), None) if n < super::MAX_LIST_ENTRIES => Some(ReferenceSource::Arg(n)),
        (None, Some(n), None) => {
            problems.push(format!("{at}: arg {n} is beyond the {} arguments read", super::MAX_LIST_ENTRIES));
            None
        }
        (None, None, Some(flag)) if flag.starts_with('-') && flag.len() > 1 && !flag.contains(['=', ' ']) => {
            Some(ReferenceSource::Flag(flag.clone()))
        }
        (None, None, Some(flag)) => {
            problems.push(format!("{at}: flag {flag:?} must start with '-' and contain no '=' or space"));
            None
        }
        _ => {
            problems.push(format!("{at}: set exactly one of env, arg and flag"));
            None
        }
    };
    check_prefix(f.prefix.as_deref(), at, problems);
    match (image, source) {
        (Some(image), Some(source)) if problems.len() == before => Some(CompiledFetcher {
            name: f.name.clone(),
            image,
            source,
            prefix: f.prefix.clone().unwrap_or_default(),
            verification: VerificationCheck::None,
        }),
        _ => None,
    }
}

/// A plain word: non-empty, bounded, no whitespace, no `/`, not a flag.
fn plain_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && !s.starts_with('-')
        && !s.contains(|c: char| c.is_whitespace() || c == '/')
}

fn compile_downloader(
    d: &DownloaderPattern,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<CompiledDownloader> {
    let before = problems.len();
    if d.name.is_empty() || d.name.len() > MAX_NAME_LEN {
        problems.push(format!("{at}: name must be set (at most {MAX_NAME_LEN} characters)"));
    }
    if !plain_word(&d.command) {
        problems.push(format!(
            "{at}: command {:?} must be a program name (no path, no spaces, not a flag)",
            d.command
        ));
    }
    if d.subcommands.len() > 8 {
        problems.push(format!("{at}: more than 8 subcommands"));
    }
    if let Some(bad) = d.subcommands.iter().find(|s| !plain_word(s)) {
        problems.push(format!("{at}: subcommand {bad:?} must be a plain word"));
    }
    (problems.len() == before).then(|| CompiledDownloader {
        name: d.name.clone(),
        command: d.command.clone(),
        subcommands: d.subcommands.clone(),
    })
}

fn check_prefix(prefix: Option<&str>, at: &str, problems: &mut Vec<String>) {
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > MAX_NAME_LEN {
            problems.push(format!("{at}: prefix must be non-empty and at most {MAX_NAME_LEN} characters"));
        }
    }
}

/// An environment variable name as Kubernetes accepts it (C identifiers, plus `.` and `-`).
pub(crate) fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A validated [`ExtractionConfig`], built by [`ExtractionConfig::compile`].
#[derive(Debug, Clone, Default)]
pub struct CompiledExtraction {
    pub(crate) extractors: Vec<CompiledExtractor>,
    pub(crate) fetchers: Vec<CompiledFetcher>,
    pub(crate) downloaders: Vec<CompiledDownloader>,
}

/// A compiled [`DownloaderPattern`].
#[derive(Debug, Clone)]
pub(crate) struct CompiledDownloader {
    pub(crate) name: String,
    pub(crate) command: String,
    pub(crate) subcommands: Vec<String>,
}

impl CompiledExtraction {
    /// The extractors configured for a kind.
    pub(crate) fn extractors_for<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a CompiledExtractor> + 'a {
        self.extractors.iter().filter(move |e| e.group == group && e.version == version && e.kind == kind)
    }
}

/// A compiled [`FieldExtractor`].
#[derive(Debug, Clone)]
pub(crate) struct CompiledExtractor {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) kind: String,
    pub(crate) paths: Vec<CompiledReference>,
    pub(crate) prefix: String,
    pub(crate) allowlists: Vec<CompiledReference>,
    pub(crate) endpoints: Vec<CompiledEndpoints>,
}

/// A compiled [`ReferencePath`].
#[derive(Debug, Clone)]
pub(crate) enum CompiledReference {
    /// String fields.
    Field(CompiledPath),
    /// Objects and the names of their parts.
    Parts(ReferencePartsOf),
}

/// A compiled [`ReferenceParts`].
#[derive(Debug, Clone)]
pub(crate) struct ReferencePartsOf {
    pub(crate) path: CompiledPath,
    pub(crate) registry: Option<String>,
    pub(crate) repository: String,
    pub(crate) digest: String,
    pub(crate) artifact_type: Option<String>,
}

/// A compiled [`EndpointPath`].
#[derive(Debug, Clone)]
pub(crate) enum CompiledEndpoints {
    /// Fields listing endpoints.
    Field(CompiledPath),
    /// Objects naming one endpoint each.
    Parts { path: CompiledPath, host: String, port: Option<String> },
}

/// A compiled [`FetcherProfile`] (configured or built in).
#[derive(Debug, Clone)]
pub(crate) struct CompiledFetcher {
    pub(crate) name: String,
    pub(crate) image: Glob,
    pub(crate) source: ReferenceSource,
    pub(crate) prefix: String,
    pub(crate) verification: VerificationCheck,
}

/// Where a fetcher profile finds the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReferenceSource {
    /// An environment variable.
    Env(String),
    /// An entry of `args`.
    Arg(usize),
    /// A flag of `command` + `args`.
    Flag(String),
}

/// How a profile tells whether the fetcher verifies what it fetches itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerificationCheck {
    /// Not known for this fetcher: nothing is flagged.
    None,
    /// The KitOps init container's entrypoint (COSIGN_KEY, or COSIGN_CERT_IDENTITY + COSIGN_CERT_OIDC_ISSUER).
    KitopsInit,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
extractors:
  - apiVersion: ml.example.com/v1alpha1
    kind: ModelDeployment
    paths: ["$.spec.model.uri", "$.spec.adapters[*].ref"]
    prefix: "oci://"
    egressAllowlistPaths: ["$.spec.egress.allowlist"]
    egressEndpointPaths: ["$.spec.egress.allowedEndpoints"]
fetchers:
  - name: puller
    image: registry.example.com/tools/puller
    flag: --from
    prefix: oci://
"#;

    #[test]
    fn read_file_names_the_file_and_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, EXAMPLE).unwrap();
        assert_eq!(
            ExtractionConfig::read_file(&good).unwrap(),
            ExtractionConfig::from_yaml_str(EXAMPLE).unwrap()
        );

        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "extractors:\n  - apiVersion: a/b/c\n    kind: X\n    paths: ['$[']\n").unwrap();
        let e = ExtractionConfig::read_file(&bad).unwrap_err();
        assert!(e.starts_with(&format!("{}: ", bad.display())), "{e}");
        assert!(e.contains("apiVersion must be group/version"), "{e}");

        let typo = dir.path().join("typo.yaml");
        std::fs::write(&typo, "extractor: []\n").unwrap();
        assert!(ExtractionConfig::read_file(&typo).unwrap_err().contains("unknown field `extractor`"));

        let huge = dir.path().join("huge.yaml");
        std::fs::write(&huge, vec![b'#'; (MAX_CONFIG_FILE_BYTES + 1) as usize]).unwrap();
        assert!(ExtractionConfig::read_file(&huge).unwrap_err().contains("larger than"));

        let missing = dir.path().join("missing.yaml");
        assert!(ExtractionConfig::read_file(&missing).unwrap_err().starts_with("cannot read "));
    }

    #[test]
    fn the_documented_example_parses_and_compiles() {
        let c = ExtractionConfig::from_yaml_str(EXAMPLE).unwrap();
        assert_eq!(c.extractors[0].kind, "ModelDeployment");
        assert_eq!(c.extractors[0].prefix.as_deref(), Some("oci://"));
        assert_eq!(c.fetchers[0].flag.as_deref(), Some("--from"));
        let compiled = c.compile().unwrap();
        assert_eq!(compiled.extractors[0].group, "ml.example.com");
        assert_eq!(compiled.extractors[0].version, "v1alpha1");
        assert_eq!(compiled.extractors[0].paths.len(), 2);
        assert_eq!(compiled.extractors_for("ml.example.com", "v1alpha1", "ModelDeployment").count(), 1);
        assert_eq!(compiled.extractors_for("ml.example.com", "v1", "ModelDeployment").count(), 0);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = ExtractionConfig::from_yaml_str(
            "extractors:\n  - apiVersion: v1\n    kind: X\n    path: [\"$.a\"]\n",
        )
        .unwrap_err();
        assert!(e.contains("unknown field `path`"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let c = ExtractionConfig {
            extractors: vec![FieldExtractor {
                api_version: "a/b/c".into(),
                kind: "X".into(),
                paths: vec!["$.spec[".into(), "$..uri".into()],
                ..Default::default()
            }],
            fetchers: vec![
                FetcherProfile {
                    name: "two".into(),
                    image: "ghcr.io/x/y".into(),
                    env: Some("A".into()),
                    flag: Some("--from".into()),
                    ..Default::default()
                },
                FetcherProfile {
                    name: "short".into(),
                    image: "puller".into(),
                    arg: Some(0),
                    ..Default::default()
                },
                FetcherProfile {
                    name: "badenv".into(),
                    image: "ghcr.io/x/y".into(),
                    env: Some("A B".into()),
                    ..Default::default()
                },
            ],
            downloaders: vec![
                DownloaderPattern { name: "path".into(), command: "/usr/bin/mc".into(), subcommands: vec![] },
                DownloaderPattern {
                    name: "flag".into(),
                    command: "mc".into(),
                    subcommands: vec!["--cp".into()],
                },
            ],
        };
        let problems = c.validate().unwrap_err();
        let all = problems.join("\n");
        assert!(all.contains("apiVersion must be group/version"), "{all}");
        assert!(all.contains("$.spec["), "{all}");
        assert!(all.contains("descendant"), "{all}");
        assert!(all.contains("exactly one of env, arg and flag"), "{all}");
        assert!(all.contains("does not name a registry"), "{all}");
        assert!(all.contains("not an environment variable name"), "{all}");
        assert!(
            all.contains("downloaders[0] (path): command \"/usr/bin/mc\" must be a program name"),
            "{all}"
        );
        assert!(all.contains("downloaders[1] (flag): subcommand \"--cp\" must be a plain word"), "{all}");
        assert_eq!(problems.len(), 8, "{all}");
    }

    #[test]
    fn downloaders_are_read_from_yaml() {
        let c = ExtractionConfig::from_yaml_str(
            "downloaders:\n- name: minio-client\n  command: mc\n  subcommands: [cp]\n",
        )
        .unwrap();
        let compiled = c.compile().unwrap();
        assert_eq!(compiled.downloaders[0].command, "mc");
        assert_eq!(compiled.downloaders[0].subcommands, vec!["cp".to_owned()]);
        assert!(ExtractionConfig::from_yaml_str("downloaders:\n- name: x\n  cmd: mc\n").is_err());
    }
}
