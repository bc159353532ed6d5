//! Model downloads by generic tools in init containers: `curl`/`wget` of a model URL, `huggingface-cli
//! download` / `hf download`, `git clone` of a Hugging Face repository or with Git LFS, `aws s3 cp|sync`,
//! `gsutil cp|rsync` / `gcloud storage cp|rsync`, `ollama pull`, `python -c` with `huggingface_hub` or
//! `from_pretrained`, and the configured [`CompiledDownloader`] patterns. Each is a fetcher of a source that
//! is not an OCI reference ([`Outcome::NotOci`]; [`Outcome::Unknown`] when the source is expanded at run
//! time), judged like `oras pull https://…`.
//!
//! `curl` and `wget` fetch many things (health checks, configuration); they count only when a URL or the
//! output file looks like a model: host `huggingface.co` / `hf.co` (or a subdomain), or a path ending in
//! one of [`MODEL_EXTENSIONS`]. Only commands count: the words of a comment or of `echo` are not commands.

use super::{basename, parse_cli, Outcome, Source};
use crate::extract::config::CompiledDownloader;

/// Hosts whose URLs are model repositories (subdomains such as `cdn-lfs.huggingface.co` included).
pub const MODEL_HOSTS: [&str; 2] = ["huggingface.co", "hf.co"];
/// File extensions of model weights and model files (compared without regard to case).
pub const MODEL_EXTENSIONS: [&str; 12] = [
    ".safetensors",
    ".gguf",
    ".ggml",
    ".bin",
    ".pt",
    ".pth",
    ".onnx",
    ".ckpt",
    ".h5",
    ".keras",
    ".tflite",
    ".mlmodel",
];
/// Markers of a Hugging Face download in `python -c` code.
const PYTHON_MARKERS: [&str; 4] =
    ["from_pretrained", "snapshot_download", "hf_hub_download", "huggingface_hub"];

/// What the script around a command has set up (`git lfs install` makes a later `git clone` fetch LFS
/// objects).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ScriptState {
    pub(super) lfs_installed: bool,
}

/// Whether `argv` is `git lfs install` (which makes clones in the same script fetch large files).
pub(super) fn is_lfs_install(argv: &[Source]) -> bool {
    argv.first().is_some_and(|a| basename(&a.value) == "git")
        && argv
            .iter()
            .skip(1)
            .map(|a| a.value.as_str())
            .filter(|v| !v.starts_with('-'))
            .take(2)
            .eq(["lfs", "install"])
}

/// A model download in `argv`: the profile name (for messages) and what it fetches.
pub(super) fn detect(
    argv: &[Source],
    state: ScriptState,
    extra: &[CompiledDownloader],
) -> Option<(String, Outcome)> {
    let first = argv.first()?;
    let rest = argv.get(1..).unwrap_or_default();
    let program = basename(&first.value);
    if let Some(d) = extra.iter().find(|d| d.command == program) {
        return configured(d, rest);
    }
    let found = match program {
        "curl" => http(rest, &["-o", "--output"], 'o').map(|o| ("curl", o)),
        "wget" => http(rest, &["-O", "--output-document"], 'O').map(|o| ("wget", o)),
        "huggingface-cli" | "hf" => hugging_face(rest).map(|o| ("huggingface-cli download", o)),
        "git" => git(rest, state),
        "aws" => {
            object_store(rest, AWS_BOOL_FLAGS, &["s3"], &["cp", "sync", "mv"], "s3://").map(|o| ("aws s3", o))
        }
        "gsutil" => {
            object_store(rest, GSUTIL_BOOL_FLAGS, &[], &["cp", "rsync"], "gs://").map(|o| ("gsutil", o))
        }
        "gcloud" => object_store(rest, GSUTIL_BOOL_FLAGS, &["storage"], &["cp", "rsync"], "gs://")
            .map(|o| ("gcloud storage", o)),
        "ollama" => ollama(rest).map(|o| ("ollama pull", o)),
        p if p == "python" || p.starts_with("python3") || p == "python2" => {
            python(rest).map(|o| ("python -c", o))
        }
        _ => None,
    };
    found.map(|(p, o)| (p.to_owned(), o))
}

/// Where a literal source is not OCI; a dynamic one is unknown.
fn not_oci(source: &Source, what: &str) -> Outcome {
    if source.dynamic {
        Outcome::Unknown(format!("{what} from {:?}, which is expanded at run time", source.value))
    } else {
        Outcome::NotOci(source.value.clone())
    }
}

/// The host of `scheme://[user@]host[:port]/…`, lower case.
fn host(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn is_model_host(url: &str) -> bool {
    host(url).is_some_and(|h| MODEL_HOSTS.iter().any(|m| h == *m || h.ends_with(&format!(".{m}"))))
}

/// A file name (or a URL's path, without query and fragment) ending in a model extension.
fn is_model_file(path_or_url: &str) -> bool {
    let path = match path_or_url.split_once("://") {
        Some((_, rest)) => rest.split(['?', '#']).next().unwrap_or_default(),
        None => path_or_url,
    };
    let lower = path.to_ascii_lowercase();
    MODEL_EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

/// `curl`/`wget`: URLs are the words with `://`; the output file follows `output_flags`, `--flag=FILE`, or a
/// short-flag cluster ending in `cluster_letter` (`-sSLo FILE`).
fn http(args: &[Source], output_flags: &[&str], cluster_letter: char) -> Option<Outcome> {
    let mut urls: Vec<&Source> = Vec::new();
    let mut outputs: Vec<&Source> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = a.value.as_str();
        let takes_output = output_flags.contains(&v)
            || v.len() > 2 && v.starts_with('-') && !v.starts_with("--") && v.ends_with(cluster_letter);
        if takes_output {
            if let Some(file) = it.next() {
                outputs.push(file);
            }
        } else if let Some((_, file)) = v.split_once('=').filter(|(f, _)| output_flags.contains(f)) {
            if is_model_file(file) {
                outputs.push(a);
            }
        } else if v.contains("://") || a.dynamic && !v.starts_with('-') {
            urls.push(a);
        }
    }
    let model_url = urls.iter().find(|u| !u.dynamic && (is_model_host(&u.value) || is_model_file(&u.value)));
    if let Some(u) = model_url {
        return Some(Outcome::NotOci(u.value.clone()));
    }
    let model_output = outputs.iter().find(|o| is_model_file(&o.value))?;
    Some(match urls.first() {
        Some(u) => not_oci(u, &format!("downloads the model file {:?}", model_output.value)),
        None => Outcome::Unknown(format!(
            "downloads the model file {:?} from a URL that is not visible at admission",
            model_output.value
        )),
    })
}

const HF_BOOL_FLAGS: &[&str] =
    &["--quiet", "-q", "--force-download", "--resume-download", "--dry-run", "-h", "--help"];

/// `huggingface-cli download REPO [FILES…]`, `hf download REPO`.
fn hugging_face(args: &[Source]) -> Option<Outcome> {
    let (_, positionals) = parse_cli(args, HF_BOOL_FLAGS);
    let (sub, operands) = positionals.split_first()?;
    if sub.value != "download" {
        return None;
    }
    Some(match operands.first() {
        Some(repo) if repo.dynamic => Outcome::Unknown(format!(
            "downloads the Hugging Face repository {:?}, expanded at run time",
            repo.value
        )),
        Some(repo) => Outcome::NotOci(format!("hf://{}", repo.value)),
        None => Outcome::Unknown("downloads from Hugging Face, but its repository is not visible".into()),
    })
}

const GIT_BOOL_FLAGS: &[&str] = &[
    "--single-branch",
    "--no-single-branch",
    "--recursive",
    "--recurse-submodules",
    "--no-checkout",
    "-n",
    "-q",
    "--quiet",
    "--progress",
    "--bare",
    "--mirror",
    "--no-tags",
    "--shallow-submodules",
    "-v",
    "--verbose",
    "--sparse",
    "-l",
    "--local",
    "--no-hardlinks",
    "-s",
    "--shared",
    "-I",
    "--include",
    "-X",
    "--exclude",
];

/// `git clone URL` of a Hugging Face repository (or after `git lfs install`), `git lfs clone|pull|fetch`.
fn git(args: &[Source], state: ScriptState) -> Option<(&'static str, Outcome)> {
    let (_, positionals) = parse_cli(args, GIT_BOOL_FLAGS);
    let (sub, operands) = positionals.split_first()?;
    match sub.value.as_str() {
        "clone" => {
            let url = operands.first()?;
            if is_model_host(&url.value) || state.lfs_installed {
                return Some(("git clone", not_oci(url, "clones a model repository")));
            }
            None
        }
        "lfs" => {
            let (lfs_sub, lfs_operands) = operands.split_first()?;
            match lfs_sub.value.as_str() {
                "clone" => {
                    Some(("git lfs clone", not_oci(lfs_operands.first()?, "clones a model repository")))
                }
                "pull" | "fetch" => Some((
                    "git lfs",
                    Outcome::NotOci(format!("git lfs {} (the repository's large files)", lfs_sub.value)),
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

const AWS_BOOL_FLAGS: &[&str] = &[
    "--recursive",
    "--no-sign-request",
    "--debug",
    "--no-verify-ssl",
    "--no-paginate",
    "--quiet",
    "--no-progress",
    "--only-show-errors",
    "--dryrun",
    "--follow-symlinks",
    "--no-follow-symlinks",
    "--delete",
    "--exact-timestamps",
    "--size-only",
    "--force-glacier-transfer",
    "--ignore-glacier-warnings",
    "--no-guess-mime-type",
];
const GSUTIL_BOOL_FLAGS: &[&str] = &[
    "-m",
    "-q",
    "-r",
    "-R",
    "-n",
    "-c",
    "-e",
    "-U",
    "-v",
    "-d",
    "-D",
    "--recursive",
    "--no-clobber",
    "--quiet",
];

/// `<program> [groups…] cp|sync SRC… DST`: a download when a source (every operand but the last) is in the
/// object store (`scheme`).
fn object_store(
    args: &[Source],
    bool_flags: &[&str],
    groups: &[&str],
    subcommands: &[&str],
    scheme: &str,
) -> Option<Outcome> {
    let (_, positionals) = parse_cli(args, bool_flags);
    let mut words = positionals.iter();
    for g in groups {
        if words.next()?.value != *g {
            return None;
        }
    }
    let sub = words.next()?;
    if !subcommands.contains(&sub.value.as_str()) {
        return None;
    }
    let operands: Vec<&&Source> = words.collect();
    let (_, sources) = operands.split_last()?;
    let source = sources.iter().find(|s| s.value.starts_with(scheme) || s.dynamic)?;
    Some(not_oci(source, "copies from object storage"))
}

/// `ollama pull MODEL`.
fn ollama(args: &[Source]) -> Option<Outcome> {
    let (_, positionals) = parse_cli(args, &["--insecure", "-h", "--help"]);
    let (sub, operands) = positionals.split_first()?;
    if sub.value != "pull" {
        return None;
    }
    let model = operands.first()?;
    Some(if model.dynamic {
        Outcome::Unknown(format!("pulls the Ollama model {:?}, expanded at run time", model.value))
    } else {
        Outcome::NotOci(format!("ollama://{}", model.value))
    })
}

/// `python -c CODE` whose code downloads from Hugging Face; the source is the first string literal after
/// `from_pretrained(` / `snapshot_download(` / `hf_hub_download(` when there is one.
fn python(args: &[Source]) -> Option<Outcome> {
    let mut it = args.iter();
    let code = loop {
        let a = it.next()?;
        if a.value == "-c" {
            break it.next()?;
        }
        if !a.value.starts_with('-') {
            return None; // a script file: not read
        }
    };
    let marker = PYTHON_MARKERS.iter().find(|m| code.value.contains(*m))?;
    let repo = ["from_pretrained(", "snapshot_download(", "hf_hub_download("]
        .iter()
        .find_map(|call| first_string_after(&code.value, call));
    Some(match repo {
        Some(r) if !code.dynamic => Outcome::NotOci(format!("hf://{r}")),
        _ => Outcome::Unknown(format!(
            "its python code downloads with {marker}, from a source not visible at admission"
        )),
    })
}

/// The first `"…"` or `'…'` literal right after `call` (keyword arguments such as `repo_id=` allowed).
fn first_string_after(code: &str, call: &str) -> Option<String> {
    let at = code.find(call)? + call.len();
    let rest = code.get(at..)?.trim_start();
    let rest = match rest.split_once('=') {
        Some((name, value)) if name.trim().chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            value.trim_start()
        }
        _ => rest,
    };
    let quote = rest.chars().next().filter(|c| matches!(c, '"' | '\''))?;
    let body = rest.get(1..)?;
    let end = body.find(quote)?;
    let s = body.get(..end)?;
    (!s.is_empty() && s.len() <= 200).then(|| s.to_owned())
}

/// A configured pattern: `command [subcommands…]`; the source reported is the first operand with `://`, else
/// the first operand, else the pattern's name.
fn configured(d: &CompiledDownloader, args: &[Source]) -> Option<(String, Outcome)> {
    let operands: Vec<&Source> = args.iter().filter(|a| !a.value.starts_with('-')).collect();
    let mut words = operands.iter();
    for sub in &d.subcommands {
        if words.next()?.value != *sub {
            return None;
        }
    }
    let rest: Vec<&&Source> = words.collect();
    let source = rest.iter().find(|s| s.value.contains("://")).or(rest.first());
    let outcome = match source {
        Some(s) => not_oci(s, &format!("downloads ({})", d.name)),
        None => Outcome::NotOci(d.name.clone()),
    };
    Some((d.name.clone(), outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Source> {
        words.iter().enumerate().map(|(i, w)| Source::literal(w, format!("/command/{i}"))).collect()
    }

    /// "NOT:source", "UNKNOWN" or "-" (not a download).
    fn got(words: &[&str]) -> String {
        got_in(words, ScriptState::default())
    }

    fn got_in(words: &[&str], state: ScriptState) -> String {
        match detect(&argv(words), state, &[]) {
            Some((_, Outcome::NotOci(s))) => format!("NOT:{s}"),
            Some((_, Outcome::Unknown(_))) => "UNKNOWN".into(),
            Some((_, Outcome::Reference { source, .. })) => format!("REF:{}", source.value),
            None => "-".into(),
        }
    }

    #[test]
    fn curl_and_wget_count_only_for_model_urls_or_model_files() {
        let hf = "https://huggingface.co/org/m/resolve/main/model.safetensors";
        assert_eq!(got(&["curl", "-fsSL", hf, "-o", "/models/m"]), format!("NOT:{hf}"));
        assert_eq!(
            got(&["curl", "-L", "https://cdn-lfs.hf.co/x?sig=1"]),
            "NOT:https://cdn-lfs.hf.co/x?sig=1",
            "a subdomain of a model host"
        );
        assert_eq!(
            got(&["curl", "-sSLo", "/models/llama.GGUF", "https://files.example.com/dl?id=7"]),
            "NOT:https://files.example.com/dl?id=7",
            "the output file names a model (short-flag cluster, upper case)"
        );
        assert_eq!(
            got(&["wget", "-q", "https://example.com/w/resnet50.onnx?x=1"]),
            "NOT:https://example.com/w/resnet50.onnx?x=1"
        );
        assert_eq!(got(&["wget", "-O", "/m/model.pt", "$(MODEL_URL)"]), "UNKNOWN");
        assert_eq!(got(&["curl", "--output=/m/model.bin", "$URL"]), "UNKNOWN");
        // Not models: a health check, a configuration file, a model-looking word that is not the output.
        assert_eq!(got(&["curl", "-fsS", "http://db:8080/healthz"]), "-");
        assert_eq!(got(&["wget", "-O", "/etc/app/config.yaml", "https://cfg.example.com/app.yaml"]), "-");
        assert_eq!(got(&["curl", "-H", "X-Name: model.bin", "https://api.example.com/ready"]), "-");
        assert_eq!(got(&["curl", "https://evilhuggingface.co/x"]), "-", "not a subdomain");
    }

    #[test]
    fn hugging_face_cli_downloads() {
        assert_eq!(
            got(&["huggingface-cli", "download", "meta/llama", "--local-dir", "/m"]),
            "NOT:hf://meta/llama"
        );
        assert_eq!(got(&["hf", "download", "--revision", "v1", "org/m", "config.json"]), "NOT:hf://org/m");
        assert_eq!(got(&["hf", "download", "$(REPO)"]), "UNKNOWN");
        assert_eq!(got(&["huggingface-cli", "login", "--token", "x"]), "-");
        assert_eq!(got(&["huggingface-cli", "upload", "org/m", "."]), "-");
    }

    #[test]
    fn git_clones_of_model_repositories_and_lfs() {
        let url = "https://huggingface.co/org/m";
        assert_eq!(got(&["git", "clone", "--depth", "1", url, "/m"]), format!("NOT:{url}"));
        assert_eq!(
            got(&["git", "-C", "/w", "lfs", "pull"]),
            "NOT:git lfs pull (the repository's large files)"
        );
        assert_eq!(
            got(&["git", "lfs", "clone", "https://git.example.com/m.git"]),
            "NOT:https://git.example.com/m.git"
        );
        let code = "https://github.com/acme/app.git";
        assert_eq!(got(&["git", "clone", code]), "-", "a source repository is not a model");
        assert_eq!(
            got_in(&["git", "clone", code], ScriptState { lfs_installed: true }),
            format!("NOT:{code}")
        );
        assert_eq!(got(&["git", "lfs", "install"]), "-");
        assert!(is_lfs_install(&argv(&["git", "lfs", "install", "--skip-repo"])));
        assert!(!is_lfs_install(&argv(&["git", "lfs", "pull"])));
    }

    #[test]
    fn object_store_copies_in_the_download_direction() {
        assert_eq!(
            got(&["aws", "--region", "eu-west-1", "s3", "cp", "--recursive", "s3://b/models/", "/m"]),
            "NOT:s3://b/models/"
        );
        assert_eq!(got(&["aws", "s3", "sync", "s3://b/m", "/m"]), "NOT:s3://b/m");
        assert_eq!(got(&["aws", "s3", "cp", "/out/report.json", "s3://b/r.json"]), "-", "an upload");
        assert_eq!(got(&["aws", "s3", "ls", "s3://b"]), "-");
        assert_eq!(got(&["gsutil", "-m", "cp", "-r", "gs://b/m", "/m"]), "NOT:gs://b/m");
        assert_eq!(got(&["gsutil", "cp", "/tmp/x", "gs://b/x"]), "-");
        assert_eq!(got(&["gcloud", "storage", "cp", "gs://b/m.gguf", "/m"]), "NOT:gs://b/m.gguf");
    }

    #[test]
    fn ollama_and_python() {
        assert_eq!(got(&["ollama", "pull", "llama3:8b"]), "NOT:ollama://llama3:8b");
        assert_eq!(got(&["ollama", "serve"]), "-");
        assert_eq!(
            got(&["python3", "-c", "from transformers import AutoModel; AutoModel.from_pretrained('org/m')"]),
            "NOT:hf://org/m"
        );
        assert_eq!(
            got(&["python", "-u", "-c", "from huggingface_hub import snapshot_download as s; s(repo_id=x)"]),
            "UNKNOWN"
        );
        assert_eq!(
            got(&["python3.11", "-c", "import huggingface_hub as h; h.snapshot_download(repo_id=\"a/b\")"]),
            "NOT:hf://a/b"
        );
        assert_eq!(got(&["python3", "-c", "print('hello')"]), "-");
        assert_eq!(got(&["python3", "download_model.py"]), "-", "a script file is not read");
    }

    #[test]
    fn configured_patterns() {
        let mc = CompiledDownloader {
            name: "minio-client".into(),
            command: "mc".into(),
            subcommands: vec!["cp".into()],
        };
        let run = |words: &[&str]| detect(&argv(words), ScriptState::default(), std::slice::from_ref(&mc));
        match run(&["/usr/bin/mc", "cp", "--recursive", "minio://models/m", "/m"]) {
            Some((name, Outcome::NotOci(s))) => {
                assert_eq!((name.as_str(), s.as_str()), ("minio-client", "minio://models/m"))
            }
            _ => panic!("mc cp is a configured downloader"),
        }
        assert!(run(&["mc", "ls", "minio://models"]).is_none());
        assert!(matches!(run(&["mc", "cp", "$(SRC)", "/m"]), Some((_, Outcome::Unknown(_)))));
    }
}
