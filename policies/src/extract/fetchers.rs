//! Init containers that fetch an artifact at start-up ("fetchers"): what they will pull becomes an artifact
//! to verify and pin; a source that cannot be known or is not an OCI reference, and a KitOps init container
//! with its own verification off, become [`FetcherProblem`]s.
//!
//! Recognised by image (profiles: the KitOps init container, configured [`super::FetcherProfile`]s) or, on
//! any image, by command line: `kit unpack|pull REF`, `oras pull REF`, `skopeo copy docker://REF DEST`,
//! and model downloads by generic tools (`curl`/`wget` of a model, `huggingface-cli download`, `git clone`
//! of a model repository, `aws s3 cp`, `gsutil cp`, `ollama pull`, `python -c` with `huggingface_hub`,
//! configured [`super::DownloaderPattern`]s; see [`downloads`]), also inside `sh -c` / `bash -c` scripts
//! (best effort, see the `shell` module).

use std::sync::OnceLock;

use serde_json::Value;
use vouch_attest::reference::ArtifactRef;

use super::config::{
    CompiledDownloader, CompiledExtraction, CompiledFetcher, ReferenceSource, VerificationCheck,
};
use super::json::{list, name_of, object_at, optional_object, string_at, walk, Object};
use super::shell;
use super::{artifact, ExtractError, Extracted, FetcherProblem, FetcherProblemKind, MAX_LIST_ENTRIES};
use crate::decision::{ArtifactKind, ArtifactLocation};
use crate::glob::Glob;

pub mod downloads;

/// Name of the built-in KitOps init container profile.
pub const KITOPS_INIT_PROFILE: &str = "kitops-init";
/// The KitOps init container's environment variable naming the ModelKit.
pub const KITOPS_INIT_REF_ENV: &str = "MODELKIT_REF";

/// The built-in profiles (the KitOps init container, under its own registry or mirrored anywhere).
fn builtin_profiles() -> &'static [CompiledFetcher] {
    static PROFILES: OnceLock<Vec<CompiledFetcher>> = OnceLock::new();
    PROFILES.get_or_init(|| {
        ["ghcr.io/kitops-ml/kitops-init", "**/kitops-init"]
            .into_iter()
            .filter_map(|g| Glob::new(g).ok())
            .map(|image| CompiledFetcher {
                name: KITOPS_INIT_PROFILE.into(),
                image,
                source: ReferenceSource::Env(KITOPS_INIT_REF_ENV.into()),
                prefix: String::new(),
                verification: VerificationCheck::KitopsInit,
            })
            .collect()
    })
}

/// One init container being looked at.
struct Container<'a> {
    entry: &'a Object,
    pointer: String,
    name: String,
    image: String,
}

impl Container<'_> {
    fn location(&self) -> ArtifactLocation {
        ArtifactLocation {
            kind: ArtifactKind::InitContainer,
            name: self.name.clone(),
            pointer: self.pointer.clone(),
        }
    }

    fn problem(&self, out: &mut Extracted, profile: &str, kind: FetcherProblemKind, what: String) {
        out.fetcher_problems.push(FetcherProblem {
            location: self.location(),
            fetcher_image: self.image.clone(),
            profile: profile.to_owned(),
            message: format!("init container {} ({profile}): {what}", self.name),
            kind,
        });
    }
}

/// Fetchers among the init containers of the pod spec at `spec_pointer`.
pub(crate) fn from_init_containers(
    object: &Value,
    spec_pointer: &str,
    config: &CompiledExtraction,
    out: &mut Extracted,
) -> Result<(), ExtractError> {
    let Some(spec) = walk(object, spec_pointer)? else {
        return Ok(());
    };
    let list_pointer = format!("{spec_pointer}/initContainers");
    for (i, entry) in list(spec.get("initContainers"), &list_pointer)?.iter().enumerate() {
        let pointer = format!("{list_pointer}/{i}");
        let entry = object_at(entry, &pointer)?;
        let c = Container {
            name: name_of(entry, &pointer, i)?,
            image: string_at(entry.get("image"), &format!("{pointer}/image"))?.unwrap_or_default().to_owned(),
            entry,
            pointer,
        };
        let repository = c.image.parse::<ArtifactRef>().ok().map(|r| r.repository_name());
        let profile = repository.as_deref().and_then(|repo| {
            config.fetchers.iter().chain(builtin_profiles()).find(|p| p.image.is_match(repo))
        });
        match profile {
            Some(p) => by_profile(&c, p, out)?,
            None => by_command(&c, repository.as_deref(), &config.downloaders, out)?,
        }
    }
    Ok(())
}

/// A value that names what to fetch, and where it sits.
#[derive(Debug, Clone)]
struct Source {
    value: String,
    pointer: String,
    /// Text before `value` in the field.
    prefix: String,
    /// Text after `value` in the field.
    suffix: String,
    /// Expanded at run time (`$(VAR)` by the kubelet, `$VAR` by a shell): unknown at admission.
    dynamic: bool,
    /// `value` appears literally in the field (a script word with mixed quoting does not).
    in_place: bool,
}

impl Source {
    fn literal(value: &str, pointer: String) -> Self {
        Self {
            dynamic: value.contains("$("),
            value: value.to_owned(),
            pointer,
            prefix: String::new(),
            suffix: String::new(),
            in_place: true,
        }
    }
}

/// What a fetcher's source turned out to be.
enum Outcome {
    /// An OCI reference: verify `source.value` minus `scheme`, pin in place.
    Reference { source: Source, scheme: &'static str },
    /// Something else.
    NotOci(String),
    /// Cannot be known at admission.
    Unknown(String),
}

/// Classify a source: expansions are unknown, `<scheme>://` and paths are not OCI, the rest is a reference.
fn classify(source: Source, required_prefix: &str) -> Outcome {
    if source.dynamic {
        return Outcome::Unknown(format!(
            "its source {:?} is expanded at run time, which admission cannot see",
            source.value
        ));
    }
    if !source.in_place {
        return Outcome::Unknown(format!(
            "its source {:?} is quoted in a way that cannot be pinned",
            source.value
        ));
    }
    if source.value.trim().is_empty() {
        return Outcome::Unknown("its source is empty".into());
    }
    if !required_prefix.is_empty() {
        return match source.value.strip_prefix(required_prefix) {
            Some(rest) if !rest.contains("://") && !rest.is_empty() && !super::git::is_git_url(rest) => {
                let value = rest.to_owned();
                let prefix = format!("{}{required_prefix}", source.prefix);
                Outcome::Reference { source: Source { value, prefix, ..source }, scheme: "" }
            }
            _ => Outcome::NotOci(source.value),
        };
    }
    let git = super::git::is_git_url(&source.value);
    if git || source.value.contains("://") || source.value.starts_with(['/', '.', '~']) {
        return Outcome::NotOci(source.value);
    }
    Outcome::Reference { source, scheme: "" }
}

fn record(
    c: &Container<'_>,
    profile: &str,
    outcome: Outcome,
    out: &mut Extracted,
) -> Result<(), ExtractError> {
    match outcome {
        Outcome::Reference { source, scheme } => {
            let prefix = format!("{}{scheme}", source.prefix);
            out.artifacts.push(artifact(
                ArtifactKind::Fetcher,
                c.name.clone(),
                source.pointer,
                &source.value,
                &prefix,
                &source.suffix,
            )?);
        }
        Outcome::NotOci(s) => {
            let what = format!("fetches {s:?}, which is not an OCI reference and cannot be verified");
            c.problem(out, profile, FetcherProblemKind::NotOci { source: s }, what);
        }
        Outcome::Unknown(why) => c.problem(out, profile, FetcherProblemKind::UnknownSource, why),
    }
    Ok(())
}

/// An environment variable of the container as admission sees it.
enum EnvVar {
    /// `value:` (may be empty).
    Literal(Source),
    /// `valueFrom:` a Secret, ConfigMap or field; `optional` ones may be unset.
    ValueFrom { optional: bool },
    /// Not in `env` (`env_from`: the container has `envFrom`, which may set it).
    Absent { env_from: bool },
    /// Listed more than once.
    Duplicate,
}

fn env_var(c: &Container<'_>, name: &str) -> Result<EnvVar, ExtractError> {
    let env_pointer = format!("{}/env", c.pointer);
    let mut found = None;
    for (j, e) in list(c.entry.get("env"), &env_pointer)?.iter().enumerate() {
        let at = format!("{env_pointer}/{j}");
        let e = object_at(e, &at)?;
        if string_at(e.get("name"), &format!("{at}/name"))? != Some(name) {
            continue;
        }
        if found.is_some() {
            return Ok(EnvVar::Duplicate);
        }
        let value_pointer = format!("{at}/value");
        found = Some(match optional_object(e.get("valueFrom"), &format!("{at}/valueFrom"))? {
            Some(from) => EnvVar::ValueFrom {
                optional: from
                    .values()
                    .filter_map(Value::as_object)
                    .any(|r| r.get("optional").and_then(Value::as_bool) == Some(true)),
            },
            None => {
                let value = string_at(e.get("value"), &value_pointer)?.unwrap_or_default();
                EnvVar::Literal(Source::literal(value, value_pointer))
            }
        });
    }
    let env_from = !list(c.entry.get("envFrom"), &format!("{}/envFrom", c.pointer))?.is_empty();
    Ok(found.unwrap_or(EnvVar::Absent { env_from }))
}

/// A container matched by a profile's image glob.
fn by_profile(c: &Container<'_>, p: &CompiledFetcher, out: &mut Extracted) -> Result<(), ExtractError> {
    let outcome = match &p.source {
        ReferenceSource::Env(var) => match env_var(c, var)? {
            EnvVar::Literal(s) if s.value.is_empty() => Outcome::Unknown(format!("{var} is empty")),
            EnvVar::Literal(s) => classify(s, &p.prefix),
            EnvVar::ValueFrom { .. } => Outcome::Unknown(format!(
                "{var} comes from valueFrom (a Secret, ConfigMap or field), which admission cannot read"
            )),
            EnvVar::Absent { env_from: true } => Outcome::Unknown(format!(
                "{var} is not in env; it may come from envFrom, which admission cannot read"
            )),
            EnvVar::Absent { env_from: false } => Outcome::Unknown(format!("{var} is not set")),
            EnvVar::Duplicate => Outcome::Unknown(format!("{var} is set more than once")),
        },
        ReferenceSource::Arg(n) => {
            let args = strings(c, "args")?;
            match args.into_iter().nth(*n) {
                Some(s) => classify(s, &p.prefix),
                None => Outcome::Unknown(format!("it has no args[{n}]")),
            }
        }
        ReferenceSource::Flag(flag) => {
            let argv: Vec<Source> = strings(c, "command")?.into_iter().chain(strings(c, "args")?).collect();
            match flag_value(&argv, flag) {
                Some(s) => classify(s, &p.prefix),
                None => Outcome::Unknown(format!("its command line has no {flag}")),
            }
        }
    };
    record(c, &p.name, outcome, out)?;
    if p.verification == VerificationCheck::KitopsInit {
        if let Some(how) = kitops_verification_off(c)? {
            let what = format!("signature verification is switched off: {how}");
            c.problem(out, &p.name, FetcherProblemKind::VerificationDisabled { how }, what);
        }
    }
    Ok(())
}

/// The KitOps init entrypoint verifies with `cosign verify --key $COSIGN_KEY` when COSIGN_KEY is non-empty,
/// else keyless when both COSIGN_CERT_IDENTITY and COSIGN_CERT_OIDC_ISSUER are non-empty, else prints
/// "Signature verification is disabled" and unpacks anyway. `Some(how)` when it will not verify (or
/// admission cannot tell that it will).
fn kitops_verification_off(c: &Container<'_>) -> Result<Option<String>, ExtractError> {
    let set = |name: &str| -> Result<bool, ExtractError> {
        Ok(match env_var(c, name)? {
            EnvVar::Literal(s) => !s.value.trim().is_empty(),
            EnvVar::ValueFrom { optional } => !optional,
            EnvVar::Absent { .. } | EnvVar::Duplicate => false,
        })
    };
    if set("COSIGN_KEY")? || set("COSIGN_CERT_IDENTITY")? && set("COSIGN_CERT_OIDC_ISSUER")? {
        return Ok(None);
    }
    let mut how = if set("COSIGN_CERT_IDENTITY")? {
        "COSIGN_CERT_IDENTITY is set without COSIGN_CERT_OIDC_ISSUER, and COSIGN_KEY is not set".to_owned()
    } else {
        "neither COSIGN_KEY nor COSIGN_CERT_IDENTITY with COSIGN_CERT_OIDC_ISSUER is set".to_owned()
    };
    if matches!(env_var(c, "COSIGN_KEY")?, EnvVar::Absent { env_from: true }) {
        how.push_str(" (envFrom is not read at admission)");
    }
    Ok(Some(how))
}

/// `command` or `args` as sources (each entry a string).
fn strings(c: &Container<'_>, field: &str) -> Result<Vec<Source>, ExtractError> {
    let at = format!("{}/{field}", c.pointer);
    list(c.entry.get(field), &at)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let pointer = format!("{at}/{i}");
            match v {
                Value::String(s) => Ok(Source::literal(s, pointer)),
                other => Err(super::json::wrong(&pointer, "a string", other)),
            }
        })
        .collect()
}

/// The value of `flag` (`--from REF` or `--from=REF`).
fn flag_value(argv: &[Source], flag: &str) -> Option<Source> {
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a.value == "--" {
            return None;
        }
        if a.value == flag {
            return it.next().cloned();
        }
        if let Some(rest) = a.value.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            let prefix = format!("{}{flag}=", a.prefix);
            return Some(Source { value: rest.to_owned(), prefix, ..a.clone() });
        }
    }
    None
}

/// Tools whose image runs them as entrypoint, so `args` alone is their command line: by the last segment
/// of the repository (`curlimages/curl`, `ollama/ollama`, `amazon/aws-cli`).
const TOOL_IMAGES: [(&str, &str); 7] = [
    ("kit", "kit"),
    ("kitops", "kit"),
    ("oras", "oras"),
    ("skopeo", "skopeo"),
    ("curl", "curl"),
    ("ollama", "ollama"),
    ("aws-cli", "aws"),
];
/// Repositories of skopeo's own images (`quay.io/skopeo/stable`, `…/upstream`, `…/testing`).
const SKOPEO_IMAGE_NAMESPACE: &str = "quay.io/skopeo/";

/// The tool an image runs as its entrypoint, when it is one of the fetch tools.
fn entrypoint_tool(repository: &str) -> Option<&'static str> {
    if repository.starts_with(SKOPEO_IMAGE_NAMESPACE) {
        return Some("skopeo");
    }
    let last = repository.rsplit('/').next().unwrap_or_default();
    TOOL_IMAGES.iter().find(|(image, _)| *image == last).map(|(_, tool)| *tool)
}

/// A container recognised by its command line (any image).
fn by_command(
    c: &Container<'_>,
    repository: Option<&str>,
    downloaders: &[CompiledDownloader],
    out: &mut Extracted,
) -> Result<(), ExtractError> {
    let command = strings(c, "command")?;
    let args = strings(c, "args")?;
    let mut argv = command.clone();
    if command.is_empty() {
        // No command: the image's entrypoint runs with `args`; for the tools' own images that is the tool.
        if let Some(tool) = repository.and_then(entrypoint_tool) {
            let mut entry = Source::literal(tool, String::new());
            entry.in_place = false;
            argv.push(entry);
        }
    }
    argv.extend(args);
    for (profile, outcome) in detect(&argv, downloaders) {
        record(c, &profile, outcome, out)?;
    }
    Ok(())
}

/// Fetch commands in an argv: the tool itself, or a shell running a script.
fn detect(argv: &[Source], downloaders: &[CompiledDownloader]) -> Vec<(String, Outcome)> {
    let argv = skip_wrappers(argv);
    let Some(first) = argv.first() else {
        return Vec::new();
    };
    let tool = basename(&first.value);
    if matches!(tool, "sh" | "bash" | "ash" | "dash" | "zsh" | "ksh") {
        return script(argv.get(1..).unwrap_or_default(), downloaders);
    }
    detect_one(argv, downloads::ScriptState::default(), downloaders).into_iter().collect()
}

/// One command: an OCI fetch tool, else a model download by a generic tool.
fn detect_one(
    argv: &[Source],
    state: downloads::ScriptState,
    downloaders: &[CompiledDownloader],
) -> Option<(String, Outcome)> {
    detect_tool(argv).map(|(p, o)| (p.to_owned(), o)).or_else(|| downloads::detect(argv, state, downloaders))
}

/// `sh [options] -c SCRIPT`: the script is the first operand after options that include `c`.
fn script(args: &[Source], downloaders: &[CompiledDownloader]) -> Vec<(String, Outcome)> {
    let mut with_c = false;
    let mut rest = args.iter();
    let script = loop {
        match rest.next() {
            Some(a) if a.value.starts_with(['-', '+']) && a.value != "-" && a.value != "--" => {
                with_c |= !a.value.starts_with("--") && a.value.contains('c');
            }
            Some(a) if a.value == "--" => break rest.next(),
            other => break other,
        }
    };
    let (true, Some(script)) = (with_c, script) else {
        return Vec::new();
    };
    let commands = match shell::split(&script.value) {
        Ok(c) => c,
        Err(e) if mentions_tool(&script.value) => {
            return vec![(
                "sh -c".into(),
                Outcome::Unknown(format!("its script cannot be followed: {}", e.0)),
            )];
        }
        Err(_) => return Vec::new(),
    };
    let mut found = Vec::new();
    let mut state = downloads::ScriptState::default();
    for words in commands {
        let sources: Vec<Source> = words
            .into_iter()
            .map(|w| {
                let (prefix, suffix, in_place) = match w.span {
                    Some((s, e)) => (
                        format!("{}{}", script.prefix, script.value.get(..s).unwrap_or_default()),
                        format!("{}{}", script.value.get(e..).unwrap_or_default(), script.suffix),
                        script.in_place,
                    ),
                    None => (String::new(), String::new(), false),
                };
                Source {
                    value: w.value,
                    pointer: script.pointer.clone(),
                    prefix,
                    suffix,
                    dynamic: w.dynamic || script.dynamic,
                    in_place,
                }
            })
            .collect();
        let argv = skip_wrappers(&sources);
        if downloads::is_lfs_install(argv) {
            state.lfs_installed = true;
        }
        if let Some(d) = detect_one(argv, state, downloaders) {
            found.push(d);
        }
    }
    found
}

/// Whether a script that cannot be followed names a fetch tool (or a model host), so that it counts as a
/// fetcher of an unknown source rather than as no fetcher.
fn mentions_tool(script: &str) -> bool {
    script.contains("huggingface.co")
        || script
            .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | '/'))
            .any(|w| matches!(w, "kit" | "oras" | "skopeo" | "huggingface-cli" | "ollama"))
}

/// Drop `VAR=value` assignments and `exec`/`command`/`nohup`/`env`/`busybox` before the command name.
fn skip_wrappers(argv: &[Source]) -> &[Source] {
    let mut i = 0;
    while let Some(a) = argv.get(i) {
        let is_assignment = a.value.split_once('=').is_some_and(|(n, _)| super::config::valid_env_name(n));
        let is_keyword = matches!(
            basename(&a.value),
            "exec" | "command" | "nohup" | "env" | "busybox" | "then" | "do" | "else" | "!" | "{" | "time"
        );
        if !(is_assignment || is_keyword) {
            break;
        }
        i += 1;
    }
    argv.get(i..).unwrap_or_default()
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Flags that take no value, per tool; every other flag is assumed to take one, so an unknown flag can
/// only swallow the reference (leaving the command unrecognisable: unknown source), never make some other
/// word pass for the reference.
const KIT_BOOL_FLAGS: &[&str] = &[
    "-o",
    "--overwrite",
    "--plain-http",
    "--tls-verify",
    "-v",
    "--verbose",
    "--ignore-existing",
    "-h",
    "--help",
    "-q",
    "--quiet",
];
const ORAS_BOOL_FLAGS: &[&str] = &[
    "--plain-http",
    "-k",
    "--insecure",
    "--password-stdin",
    "--identity-token-stdin",
    "--include-subject",
    "--allow-path-traversal",
    "--keep-old-files",
    "--oci-layout",
    "-v",
    "--verbose",
    "-d",
    "--debug",
    "--no-tty",
    "-h",
    "--help",
];
const SKOPEO_BOOL_FLAGS: &[&str] = &[
    "-a",
    "--all",
    "-q",
    "--quiet",
    "--remove-signatures",
    "--preserve-digests",
    "--src-no-creds",
    "--dest-no-creds",
    "--src-tls-verify",
    "--dest-tls-verify",
    "--tls-verify",
    "--insecure-policy",
    "--debug",
    "--dest-compress",
    "--dest-precompute-digests",
    "--dest-oci-accept-uncompressed-layers",
    "--dest-decompress",
    "-h",
    "--help",
];

/// `kit unpack|pull REF`, `oras pull REF`, `skopeo copy docker://REF DEST`.
fn detect_tool(argv: &[Source]) -> Option<(&'static str, Outcome)> {
    let first = argv.first()?;
    let rest = argv.get(1..).unwrap_or_default();
    let (subcommands, bool_flags): (&[(&str, &'static str)], &[&str]) = match basename(&first.value) {
        "kit" => (&[("unpack", "kit unpack"), ("pull", "kit pull")], KIT_BOOL_FLAGS),
        "oras" => (&[("pull", "oras pull")], ORAS_BOOL_FLAGS),
        "skopeo" => (&[("copy", "skopeo copy")], SKOPEO_BOOL_FLAGS),
        _ => return None,
    };
    let (flags, positionals) = parse_cli(rest, bool_flags);
    let (sub, operands) = positionals.split_first()?;
    let &(_, profile) = subcommands.iter().find(|(name, _)| *name == sub.value)?;
    let outcome = match profile {
        "skopeo copy" => match operands {
            [source, _destination] => match source.value.strip_prefix("docker://") {
                Some(rest) => {
                    let prefix = format!("{}docker://", source.prefix);
                    let s = Source { value: rest.to_owned(), prefix, ..(*source).clone() };
                    classify(s, "")
                }
                None if source.dynamic => classify((*source).clone(), ""),
                None => Outcome::NotOci(source.value.clone()),
            },
            _ => Outcome::Unknown(format!(
                "expected a source and a destination after `skopeo copy`, found {} arguments",
                operands.len()
            )),
        },
        _ => match operands {
            [reference] if profile == "oras pull" && flags.iter().any(|f| f.starts_with("--oci-layout")) => {
                Outcome::NotOci(reference.value.clone())
            }
            [reference] => classify((*reference).clone(), ""),
            _ => Outcome::Unknown(format!(
                "expected one reference after `{profile}`, found {} arguments",
                operands.len()
            )),
        },
    };
    Some((profile, outcome))
}

/// Split arguments into flags and positionals; flags not in `bool_flags` take a value unless written
/// `--flag=value`.
fn parse_cli<'a>(args: &'a [Source], bool_flags: &[&str]) -> (Vec<&'a str>, Vec<&'a Source>) {
    let mut flags = Vec::new();
    let mut positionals = Vec::new();
    let mut it = args.iter().take(MAX_LIST_ENTRIES);
    while let Some(a) = it.next() {
        let v = a.value.as_str();
        if v == "--" {
            positionals.extend(it.by_ref());
            break;
        }
        if v.len() > 1 && v.starts_with('-') {
            flags.push(v);
            if !v.contains('=') && !bool_flags.contains(&v) {
                it.next();
            }
        } else {
            positionals.push(a);
        }
    }
    (flags, positionals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Source> {
        words.iter().enumerate().map(|(i, w)| Source::literal(w, format!("/args/{i}"))).collect()
    }

    /// (profile, reference or "NOT:source" or "UNKNOWN", pointer)
    fn run(words: &[&str]) -> Vec<(String, String, String)> {
        detect(&argv(words), &[])
            .into_iter()
            .map(|(profile, o)| match o {
                Outcome::Reference { source, .. } => (profile, source.value, source.pointer),
                Outcome::NotOci(s) => (profile, format!("NOT:{s}"), String::new()),
                Outcome::Unknown(_) => (profile, "UNKNOWN".into(), String::new()),
            })
            .collect()
    }

    fn one(words: &[&str]) -> (String, String) {
        let got = run(words);
        assert_eq!(got.len(), 1, "{words:?}: {got:?}");
        (got[0].0.clone(), got[0].1.clone())
    }

    #[test]
    fn global_flags_subcommands_and_double_dash() {
        assert_eq!(one(&["kit", "-v", "pull", "ghcr.io/a/m:1"]), ("kit pull".into(), "ghcr.io/a/m:1".into()));
        assert_eq!(
            one(&[
                "skopeo",
                "--insecure-policy",
                "--override-arch",
                "arm64",
                "copy",
                "docker://r.io/a:1",
                "dir:/m"
            ]),
            ("skopeo copy".into(), "r.io/a:1".into())
        );
        assert_eq!(one(&["oras", "pull", "--", "-weird:1"]).1, "-weird:1");
        assert!(run(&["kit", "version"]).is_empty());
        assert!(run(&["oras", "push", "r.io/a:1", "file"]).is_empty());
        assert!(run(&["/bin/migrate", "pull", "r.io/a:1"]).is_empty());
    }

    #[test]
    fn tool_images_run_the_tool_as_entrypoint() {
        assert_eq!(entrypoint_tool("quay.io/skopeo/stable"), Some("skopeo"));
        assert_eq!(entrypoint_tool("ghcr.io/oras-project/oras"), Some("oras"));
        assert_eq!(entrypoint_tool("ghcr.io/kitops-ml/kitops"), Some("kit"));
        assert_eq!(entrypoint_tool("docker.io/library/alpine"), None);
        assert_eq!(entrypoint_tool("ghcr.io/acme/oras-helper"), None);
    }

    #[test]
    fn wrappers_and_shells() {
        assert_eq!(one(&["env", "HOME=/tmp", "/usr/bin/oras", "pull", "r.io/a:1"]).1, "r.io/a:1");
        assert_eq!(one(&["busybox", "sh", "-c", "exec oras pull r.io/a:1"]).1, "r.io/a:1");
        let got = run(&["bash", "-euxc", "oras pull r.io/a:1 -o /m\nif true; then kit unpack r.io/b:2; fi"]);
        let refs: Vec<_> = got.iter().map(|g| g.1.as_str()).collect();
        assert_eq!(refs, vec!["r.io/a:1", "r.io/b:2"]);
        assert!(got.iter().all(|g| g.2 == "/args/2"), "script references point at the script");
        assert!(run(&["sh", "/scripts/fetch.sh"]).is_empty(), "a script file is not read");
    }

    #[test]
    fn model_downloads_in_scripts_count_and_comments_echo_and_here_documents_do_not() {
        let hf = "https://huggingface.co/org/m/resolve/main/model.safetensors";
        let script = format!(
            "set -e\n# curl -o /m/model.gguf https://huggingface.co/a/b\necho 'huggingface-cli download org/m'\n\
             printf '%s\\n' \"ollama pull llama3\"\ncat > /m/NOTES <<'EOF'\ngsutil cp gs://b/m.gguf /m\nEOF\n\
             mkdir -p /m && curl -fsSL {hf} -o /m/model.safetensors\n"
        );
        let got = run(&["sh", "-c", &script]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].0.as_str(), got[0].1.as_str()), ("curl", format!("NOT:{hf}").as_str()));
        // `git lfs install` earlier in the script makes a clone fetch large files.
        let got = run(&["bash", "-c", "git lfs install\ngit clone https://github.com/acme/weights /m"]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, "NOT:https://github.com/acme/weights");
        assert!(run(&["sh", "-c", "git clone https://github.com/acme/app /src"]).is_empty());
        assert!(run(&["sh", "-c", "until curl -fsS http://db:5432/health; do sleep 1; done"]).is_empty());
        // A here-document a shell may run is not followed: a fetcher of an unknown source, as for `kit`.
        assert_eq!(run(&["sh", "-c", "sh <<EOF\nollama pull llama3\nEOF"])[0].1, "UNKNOWN");
        // Generic tools in argv, not only in scripts; the curl image runs curl.
        assert_eq!(one(&["huggingface-cli", "download", "org/m"]).1, "NOT:hf://org/m");
        assert_eq!(entrypoint_tool("docker.io/curlimages/curl"), Some("curl"));
        assert_eq!(entrypoint_tool("docker.io/ollama/ollama"), Some("ollama"));
    }

    #[test]
    fn sources_that_are_not_references() {
        for (words, expect) in [
            (vec!["oras", "pull", "./layout"], "NOT:./layout"),
            (vec!["oras", "pull", "/data/x"], "NOT:/data/x"),
            (vec!["kit", "unpack", "hf://org/model"], "NOT:hf://org/model"),
            (vec!["kit", "unpack", "$(REF)"], "UNKNOWN"),
            (vec!["kit", "unpack"], "UNKNOWN"),
            (vec!["kit", "unpack", "a:1", "b:1"], "UNKNOWN"),
            (vec!["skopeo", "copy", "docker://a:1"], "UNKNOWN"),
            (vec!["skopeo", "copy", "containers-storage:a:1", "dir:/m"], "NOT:containers-storage:a:1"),
        ] {
            assert_eq!(one(&words).1, expect, "{words:?}");
        }
    }
}
