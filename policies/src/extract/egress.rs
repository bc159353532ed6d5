//! Declared egress and the allowlists that must cover it: the annotations `vouch.dev/egress-allowlist`
//! (a reference) and `vouch.dev/egress` (endpoints) on a workload and its pod template, fields of custom
//! kinds found by configured JSONPath extractors (which may also name model references; references and
//! endpoints may be objects named by their parts, as kars's `allowlistRef` and `allowedEndpoints`), and the
//! `ipBlock` peers of NetworkPolicy egress rules (checked against the namespace's allowlist).

use serde_json::Value;

use super::config::{CompiledEndpoints, CompiledExtractor, CompiledReference, ReferencePartsOf};
use super::git::is_git_url;
use super::json::{list, map, object_at, string_at, type_name, wrong};
use super::{
    artifact, escape_pointer_segment, CompiledPath, EgressDeclaration, ExtractError, Extracted, Hit,
};
use super::{FetcherProblem, FetcherProblemKind, MAX_LIST_ENTRIES};
use crate::decision::{ArtifactKind, ArtifactLocation};
use crate::reason::field_path;

/// Annotation naming the signed egress allowlist of a workload.
pub const EGRESS_ALLOWLIST_ANNOTATION: &str = "vouch.dev/egress-allowlist";
/// Annotation listing a workload's egress endpoints, separated by commas or white space.
pub const EGRESS_ANNOTATION: &str = "vouch.dev/egress";
/// Longest endpoint accepted.
pub const MAX_ENDPOINT_LEN: usize = 1024;
/// A port range (`port`..`endPort`) wider than this is declared as "any port" (stricter, never looser).
const MAX_PORT_RANGE: u32 = 32;

/// Whether the kind is a NetworkPolicy.
pub(crate) fn is_network_policy(group: &str, kind: &str) -> bool {
    group == "networking.k8s.io" && kind == "NetworkPolicy"
}

/// Egress annotations of the object's metadata and, for workloads, of the pod template's metadata.
pub(crate) fn annotations(
    object: &Value,
    template_metadata: Option<&str>,
    out: &mut Extracted,
) -> Result<(), ExtractError> {
    let places = [("/metadata", "annotation")]
        .into_iter()
        .chain(template_metadata.map(|t| (t, "pod template annotation")));
    // Per place: allowlist artifact indices, and the endpoints declared (with where).
    let mut found: Vec<(Vec<usize>, Option<Declared>)> = Vec::new();
    for (metadata, label) in places {
        let mut allowlists = Vec::new();
        let mut endpoints = None;
        // Pointers are written only where an annotation is (most places have neither) or an error is.
        let at = |annotation: &str| format!("{metadata}/annotations/{}", escape_pointer_segment(annotation));
        let annotations = match super::json::walk(object, metadata)? {
            Some(m) => map(m.get("annotations"), || format!("{metadata}/annotations"))?,
            None => None,
        };
        if let Some(annotations) = annotations {
            let allowlist = annotations.get(EGRESS_ALLOWLIST_ANNOTATION);
            if let Some(v) = string_at(allowlist, || at(EGRESS_ALLOWLIST_ANNOTATION))? {
                let name = format!("{label} {EGRESS_ALLOWLIST_ANNOTATION}");
                if let Some(i) = push_allowlist(out, name, at(EGRESS_ALLOWLIST_ANNOTATION), v)? {
                    allowlists.push(i);
                }
            }
            if let Some(v) = string_at(annotations.get(EGRESS_ANNOTATION), || at(EGRESS_ANNOTATION))? {
                let list = split_endpoints(v, &at(EGRESS_ANNOTATION))?;
                if !list.is_empty() {
                    endpoints = Some((format!("{label} {EGRESS_ANNOTATION}"), list));
                }
            }
        }
        found.push((allowlists, endpoints));
    }
    for (i, (own, endpoints)) in found.iter().enumerate() {
        let Some((location, endpoints)) = endpoints else {
            continue;
        };
        // The same place's allowlist, else the other place's (object vs pod template), else the namespace's.
        let allowlists = if own.is_empty() {
            found.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, (a, _))| a.clone()).collect()
        } else {
            own.clone()
        };
        declare(out, location, endpoints, &allowlists);
    }
    Ok(())
}

/// Endpoints declared in one place, with the place's name.
type Declared = (String, Vec<String>);

/// One declaration per allowlist (each must cover every endpoint), or one for the namespace's allowlist.
fn declare(out: &mut Extracted, location: &str, endpoints: &[String], allowlists: &[usize]) {
    if allowlists.is_empty() {
        out.egress.push(EgressDeclaration {
            location: location.to_owned(),
            endpoints: endpoints.to_vec(),
            allowlist: None,
        });
    }
    for &a in allowlists {
        out.egress.push(EgressDeclaration {
            location: location.to_owned(),
            endpoints: endpoints.to_vec(),
            allowlist: Some(a),
        });
    }
}

/// Add an allowlist reference (surrounding white space kept in prefix/suffix); its index.
fn push_allowlist(
    out: &mut Extracted,
    name: String,
    pointer: String,
    value: &str,
) -> Result<Option<usize>, ExtractError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let start = value.len() - value.trim_start().len();
    let prefix = value.get(..start).unwrap_or_default();
    let suffix = value.get(start + trimmed.len()..).unwrap_or_default();
    out.artifacts.push(artifact(ArtifactKind::EgressAllowlist, name, pointer, trimmed, prefix, suffix)?);
    Ok(Some(out.artifacts.len() - 1))
}

/// Endpoints separated by commas or white space, each bounded, at most [`MAX_LIST_ENTRIES`].
fn split_endpoints(v: &str, pointer: &str) -> Result<Vec<String>, ExtractError> {
    let mut endpoints = Vec::new();
    for e in v.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty()) {
        if e.len() > MAX_ENDPOINT_LEN {
            return Err(ExtractError::ValueTooLong { pointer: pointer.to_owned(), max: MAX_ENDPOINT_LEN });
        }
        endpoints.push(e.to_owned());
        if endpoints.len() > MAX_LIST_ENTRIES {
            return Err(ExtractError::TooMany {
                pointer: pointer.to_owned(),
                count: endpoints.len(),
                max: MAX_LIST_ENTRIES,
            });
        }
    }
    Ok(endpoints)
}

/// NetworkPolicy `spec.egress[].to[].ipBlock.cidr` with the rule's ports; a rule without `to` allows every
/// destination (`0.0.0.0/0`, `::/0`). Peers by pod or namespace selector stay in the cluster: not egress.
pub(crate) fn network_policy(object: &Value, out: &mut Extracted) -> Result<(), ExtractError> {
    let Some(spec) = super::json::walk(object, "/spec")? else {
        return Ok(());
    };
    for (i, rule) in list(spec.get("egress"), "/spec/egress")?.iter().enumerate() {
        let at = format!("/spec/egress/{i}");
        let rule = object_at(rule, &at)?;
        let ports = ports(rule.get("ports"), &format!("{at}/ports"))?;
        let peers = list(rule.get("to"), &format!("{at}/to"))?;
        if peers.is_empty() {
            let endpoints = with_ports(&["0.0.0.0/0", "::/0"], &ports);
            declare(out, &format!("NetworkPolicy egress[{i}]"), &endpoints, &[]);
            continue;
        }
        for (j, peer) in peers.iter().enumerate() {
            let peer_at = format!("{at}/to/{j}");
            let peer = object_at(peer, &peer_at)?;
            let Some(block) = peer.get("ipBlock").filter(|v| !v.is_null()) else {
                continue;
            };
            let block = object_at(block, &format!("{peer_at}/ipBlock"))?;
            let cidr_at = format!("{peer_at}/ipBlock/cidr");
            let Some(cidr) = string_at(block.get("cidr"), &cidr_at)? else {
                continue;
            };
            if cidr.len() > MAX_ENDPOINT_LEN {
                return Err(ExtractError::ValueTooLong { pointer: cidr_at, max: MAX_ENDPOINT_LEN });
            }
            // `except` only narrows the block: the whole CIDR is checked (stricter, never looser).
            let endpoints = with_ports(&[cidr], &ports);
            declare(out, &format!("NetworkPolicy egress[{i}].to[{j}]"), &endpoints, &[]);
        }
    }
    Ok(())
}

/// The rule's ports: `None` = any port (no ports, a named port, a wide range).
fn ports(v: Option<&Value>, pointer: &str) -> Result<Vec<Option<u16>>, ExtractError> {
    let entries = list(v, pointer)?;
    if entries.is_empty() {
        return Ok(vec![None]);
    }
    let mut out = Vec::new();
    for (k, p) in entries.iter().enumerate() {
        let at = format!("{pointer}/{k}");
        let p = object_at(p, &at)?;
        let number = |field: &str| -> Result<Option<u16>, ExtractError> {
            match p.get(field) {
                None | Some(Value::Null) | Some(Value::String(_)) => Ok(None),
                Some(Value::Number(n)) => {
                    Ok(n.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|&n| n > 0))
                }
                Some(other) => Err(wrong(&format!("{at}/{field}"), "a number or a name", other)),
            }
        };
        match (number("port")?, number("endPort")?) {
            (Some(start), Some(end)) if end >= start && u32::from(end - start) < MAX_PORT_RANGE => {
                out.extend((start..=end).map(Some));
            }
            (Some(_), Some(_)) => out.push(None),
            (port, _) => out.push(port),
        }
        if out.len() > MAX_LIST_ENTRIES {
            return Err(ExtractError::TooMany {
                pointer: pointer.to_owned(),
                count: out.len(),
                max: MAX_LIST_ENTRIES,
            });
        }
    }
    out.dedup();
    Ok(out)
}

/// `cidr` or `cidr:port` (IPv6 with a port: `[cidr]:port`) for every port; "any port" wins over the others.
fn with_ports(cidrs: &[&str], ports: &[Option<u16>]) -> Vec<String> {
    let any = ports.contains(&None);
    cidrs
        .iter()
        .flat_map(|cidr| {
            let cidr = *cidr;
            let list: Vec<String> = if any {
                vec![cidr.to_owned()]
            } else {
                ports
                    .iter()
                    .flatten()
                    .map(|p| if cidr.contains(':') { format!("[{cidr}]:{p}") } else { format!("{cidr}:{p}") })
                    .collect()
            };
            list
        })
        .collect()
}

/// A custom kind's configured fields: references, egress allowlists, egress endpoints. Every allowlist
/// found is checked: against the endpoints declared, or with none declared, as a document of its own.
pub(crate) fn custom_kind(
    object: &Value,
    e: &CompiledExtractor,
    out: &mut Extracted,
) -> Result<(), ExtractError> {
    for reference in &e.paths {
        match reference {
            CompiledReference::Field(path) => reference_fields(object, e, path, out)?,
            CompiledReference::Parts(parts) => {
                composite_artifacts(object, parts, ArtifactKind::Field, out)?;
            }
        }
    }
    let mut allowlists = Vec::new();
    for reference in &e.allowlists {
        match reference {
            CompiledReference::Field(path) => allowlist_fields(object, path, out, &mut allowlists)?,
            CompiledReference::Parts(parts) => {
                allowlists.extend(composite_artifacts(object, parts, ArtifactKind::EgressAllowlist, out)?);
            }
        }
    }
    let declared_before = out.egress.len();
    for endpoints in &e.endpoints {
        match endpoints {
            CompiledEndpoints::Field(path) => endpoint_fields(object, path, out, &allowlists)?,
            CompiledEndpoints::Parts { path, host, port } => {
                // One declaration for every endpoint the path selects (a list of objects, one each).
                let mut all = Vec::new();
                for hit in path.query(object)? {
                    if let Some(endpoint) = composite_endpoint(&hit, path.as_str(), host, port.as_deref())? {
                        all.push(endpoint);
                    }
                }
                if !all.is_empty() {
                    let location = path.as_str().strip_prefix("$.").unwrap_or(path.as_str());
                    declare(out, location, &all, &allowlists);
                }
            }
        }
    }
    // An allowlist no declaration of this object uses is still fetched and checked (its signature, its
    // artifactType, its document): a declaration without endpoints.
    for &a in &allowlists {
        if !out.egress[declared_before..].iter().any(|d| d.allowlist == Some(a)) {
            let location = out.artifacts.get(a).map(|x| x.location.name.clone()).unwrap_or_default();
            out.egress.push(EgressDeclaration { location, endpoints: Vec::new(), allowlist: Some(a) });
        }
    }
    Ok(())
}

/// The references made of parts that `parts` selects, as artifacts of `kind`; their indices.
fn composite_artifacts(
    object: &Value,
    parts: &ReferencePartsOf,
    kind: ArtifactKind,
    out: &mut Extracted,
) -> Result<Vec<usize>, ExtractError> {
    let mut added = Vec::new();
    for hit in parts.path.query(object)? {
        if let Some((image, artifact_type)) = composite_reference(&hit, parts)? {
            let mut a = artifact(kind, field_path(&hit.pointer), hit.pointer, &image, "", "")?;
            a.artifact_type = artifact_type;
            out.artifacts.push(a);
            added.push(out.artifacts.len() - 1);
        }
    }
    Ok(added)
}

/// Allowlist reference fields (strings); their indices into `allowlists`.
fn allowlist_fields(
    object: &Value,
    path: &CompiledPath,
    out: &mut Extracted,
    allowlists: &mut Vec<usize>,
) -> Result<(), ExtractError> {
    for hit in path.query(object)? {
        match hit.value {
            Value::Null => {}
            Value::String(s) => {
                if let Some(i) = push_allowlist(out, field_path(&hit.pointer), hit.pointer.clone(), s)? {
                    allowlists.push(i);
                }
            }
            other => return Err(hit_type(&hit.pointer, path.as_str(), "a string", other)),
        }
    }
    Ok(())
}

/// Endpoint fields (a string, or a list of strings): one declaration per match.
fn endpoint_fields(
    object: &Value,
    path: &CompiledPath,
    out: &mut Extracted,
    allowlists: &[usize],
) -> Result<(), ExtractError> {
    for hit in path.query(object)? {
        let endpoints = match hit.value {
            Value::Null => continue,
            Value::String(s) => split_endpoints(s, &hit.pointer)?,
            Value::Array(items) => {
                list(Some(hit.value), &hit.pointer)?;
                let mut all = Vec::new();
                for (k, item) in items.iter().enumerate() {
                    let at = format!("{}/{k}", hit.pointer);
                    match item {
                        Value::String(s) => all.extend(split_endpoints(s, &at)?),
                        other => return Err(hit_type(&at, path.as_str(), "a string", other)),
                    }
                }
                all
            }
            other => {
                return Err(hit_type(&hit.pointer, path.as_str(), "a string or a list of strings", other))
            }
        };
        if !endpoints.is_empty() {
            declare(out, &field_path(&hit.pointer), &endpoints, allowlists);
        }
    }
    Ok(())
}

/// String reference fields of a custom kind: a reference (prefix stripped), or a non-OCI source (a URL,
/// a git repository in any form, a value without the configured prefix).
fn reference_fields(
    object: &Value,
    e: &CompiledExtractor,
    path: &CompiledPath,
    out: &mut Extracted,
) -> Result<(), ExtractError> {
    for hit in path.query(object)? {
        let value = match hit.value {
            Value::Null => continue,
            Value::String(s) if s.is_empty() => continue,
            Value::String(s) => s,
            other => return Err(hit_type(&hit.pointer, path.as_str(), "a string", other)),
        };
        let name = field_path(&hit.pointer);
        match value.strip_prefix(&e.prefix) {
            Some(reference) if is_git_url(reference) || is_git_url(value) => {
                out.fetcher_problems.push(FetcherProblem {
                    message: format!(
                        "{} field {name} names the git repository {value:?}, which is not an OCI reference and \
                         cannot be verified",
                        e.kind
                    ),
                    location: ArtifactLocation { kind: ArtifactKind::Field, name, pointer: hit.pointer },
                    fetcher_image: String::new(),
                    profile: format!("extractor {}", e.kind),
                    kind: FetcherProblemKind::NotOci { source: value.chars().take(super::MAX_IMAGE_LEN).collect() },
                });
            }
            Some(reference) if !reference.contains("://") && !reference.is_empty() => {
                out.artifacts.push(artifact(
                    ArtifactKind::Field,
                    name,
                    hit.pointer,
                    reference,
                    &e.prefix,
                    "",
                )?);
            }
            _ => out.fetcher_problems.push(FetcherProblem {
                message: format!(
                    "{} field {name} names {value:?}, which is not an OCI reference{} and cannot be verified",
                    e.kind,
                    if e.prefix.is_empty() { String::new() } else { format!(" (expected {}…)", e.prefix) }
                ),
                location: ArtifactLocation { kind: ArtifactKind::Field, name, pointer: hit.pointer },
                fetcher_image: String::new(),
                profile: format!("extractor {}", e.kind),
                kind: FetcherProblemKind::NotOci {
                    source: value.chars().take(super::MAX_IMAGE_LEN).collect(),
                },
            }),
        }
    }
    Ok(())
}

/// The reference an object names by its parts, `registry/repository@digest`, and its declared artifact
/// type; `None` for a null. Parts that would change what the reference means (a registry with a path, a
/// repository with a tag or digest) are refused.
fn composite_reference(
    hit: &Hit<'_>,
    parts: &ReferencePartsOf,
) -> Result<Option<(String, Option<String>)>, ExtractError> {
    let fields = match hit.value {
        Value::Null => return Ok(None),
        Value::Object(fields) => fields,
        other => return Err(hit_type(&hit.pointer, parts.path.as_str(), "an object", other)),
    };
    let part = |name: &str| -> Result<Option<&str>, ExtractError> {
        let at = format!("{}/{}", hit.pointer, escape_pointer_segment(name));
        string_at(fields.get(name), &at)
    };
    let required = |name: &str| -> Result<&str, ExtractError> {
        part(name)?.ok_or_else(|| ExtractError::MissingPart {
            pointer: format!("{}/{}", hit.pointer, escape_pointer_segment(name)),
            path: parts.path.as_str().to_owned(),
        })
    };
    let invalid = |name: &str, reason: String| ExtractError::InvalidPart {
        pointer: format!("{}/{}", hit.pointer, escape_pointer_segment(name)),
        reason,
    };
    let repository = required(&parts.repository)?;
    let digest = required(&parts.digest)?;
    let registry = match &parts.registry {
        Some(name) => Some((name, required(name)?)),
        None => None,
    };
    let artifact_type = match &parts.artifact_type {
        Some(name) => Some(required(name)?.to_owned()),
        None => None,
    };
    if let Some((name, registry)) = registry {
        let host_like = registry.contains(['.', ':']) || registry == "localhost";
        let clean =
            registry.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !clean || !host_like {
            return Err(invalid(
                name,
                format!(
                    "registry {:?} is not a registry host (host[:port] with a dot or a port, or localhost)",
                    shorten(registry)
                ),
            ));
        }
    }
    let repository_ok = !repository.starts_with('/')
        && !repository.ends_with('/')
        && !repository.contains("//")
        && repository
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/'));
    if !repository_ok {
        return Err(invalid(
            &parts.repository,
            format!(
                "repository {:?} is not a repository path (lower case, no tag or digest)",
                shorten(repository)
            ),
        ));
    }
    if digest.parse::<vouch_attest::Digest>().is_err() {
        return Err(invalid(
            &parts.digest,
            format!("{:?} is not a digest (sha256:<64 hex>)", shorten(digest)),
        ));
    }
    let image = match registry {
        Some((_, registry)) => format!("{registry}/{repository}@{digest}"),
        None => format!("{repository}@{digest}"),
    };
    Ok(Some((image, artifact_type)))
}

/// The endpoint an object names by its parts: `host:port` (`[host]:port` for IPv6), `host` alone (every
/// port) without a port; `None` for a null.
fn composite_endpoint(
    hit: &Hit<'_>,
    path: &str,
    host: &str,
    port: Option<&str>,
) -> Result<Option<String>, ExtractError> {
    let fields = match hit.value {
        Value::Null => return Ok(None),
        Value::Object(fields) => fields,
        other => return Err(hit_type(&hit.pointer, path, "an object", other)),
    };
    let host_at = format!("{}/{}", hit.pointer, escape_pointer_segment(host));
    let Some(host_value) = string_at(fields.get(host), &host_at)? else {
        return Err(ExtractError::MissingPart { pointer: host_at, path: path.to_owned() });
    };
    if host_value.len() > MAX_ENDPOINT_LEN {
        return Err(ExtractError::ValueTooLong { pointer: host_at, max: MAX_ENDPOINT_LEN });
    }
    let port_value = match port {
        None => None,
        Some(name) => {
            let at = format!("{}/{}", hit.pointer, escape_pointer_segment(name));
            match fields.get(name) {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::String(s)) if s.len() <= 8 => Some(s.clone()),
                Some(other) => return Err(wrong(&at, "a port number", other)),
            }
        }
    };
    let host_value = host_value.trim();
    Ok(Some(match port_value {
        None => host_value.to_owned(),
        Some(p) if host_value.contains(':') && !host_value.starts_with('[') => format!("[{host_value}]:{p}"),
        Some(p) => format!("{host_value}:{p}"),
    }))
}

fn hit_type(pointer: &str, path: &str, expected: &'static str, found: &Value) -> ExtractError {
    ExtractError::WrongType {
        pointer: format!("{pointer} (matched by {path})"),
        expected,
        found: type_name(found),
    }
}

/// Text for messages: at most 100 characters.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_read_as_dotted_paths() {
        assert_eq!(field_path("/spec/adapters/0/ref"), "spec.adapters[0].ref");
        assert_eq!(
            field_path("/metadata/annotations/vouch.dev~1egress"),
            "metadata.annotations.vouch.dev/egress"
        );
    }

    #[test]
    fn port_ranges_expand_when_small_and_mean_any_port_when_wide() {
        let p = ports(Some(&json!([{"port": 5000, "endPort": 5002}, {"port": 443}])), "/p").unwrap();
        assert_eq!(p, vec![Some(5000), Some(5001), Some(5002), Some(443)]);
        assert_eq!(ports(Some(&json!([{"port": 1000, "endPort": 9000}])), "/p").unwrap(), vec![None]);
        assert_eq!(ports(Some(&json!([{"port": "https"}])), "/p").unwrap(), vec![None]);
        assert_eq!(ports(Some(&json!([{"protocol": "UDP"}])), "/p").unwrap(), vec![None]);
        assert!(ports(Some(&json!([{"port": true}])), "/p").is_err());
        assert_eq!(with_ports(&["10.0.0.0/8"], &[Some(1), None]), vec!["10.0.0.0/8"]);
        assert_eq!(with_ports(&["2001:db8::/32"], &[Some(443)]), vec!["[2001:db8::/32]:443"]);
    }
}
