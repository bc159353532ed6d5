//! Compiling one policy resource (its authorities, identities, requirements, match fields) and trust
//! roots, collecting every problem at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vouch_attest::notation::{
    CrlStore, Level, NotationAuthority, TrustStore, TrustStoreKind, TrustedIdentity,
};
use vouch_attest::registry::Credentials;
use vouch_attest::sigstore_verify::{Authority, CertificateIdentity, Claim, Matcher};
use vouch_attest::trust_root::TrustRoot as SigstoreTrustRoot;
use vouch_attest::PublicKey;

use vouch_attest::ArtifactRef;

use crate::crd::{
    AuthoritySpec, IdentitySpec, NotationLevel, NotationSpec, NotationTrustStoreSpec, NotationTrustStoreType,
    PolicySpec, SecretKeyRef, SignatureFormat, SignatureRequirement, TrustRoot,
};
use crate::glob::Glob;
use crate::rego::RegoCondition;
use crate::selector;

use super::resources::read_capped;
use super::{
    CompiledAuthority, CompiledPolicy, CompiledRequirement, CompiledTrustRoot, Secrets, SignedAnnotation,
};

pub(super) struct Context<'a> {
    pub(super) secrets: &'a Secrets,
    pub(super) trust_roots: &'a BTreeMap<String, CompiledTrustRoot>,
    pub(super) bad_roots: &'a BTreeMap<String, String>,
    pub(super) base_dir: Option<&'a Path>,
}

/// The secret's bytes, enforcing that a namespaced policy reads only its own namespace.
pub(super) fn secret<'a>(
    ctx: &Context<'a>,
    r: &SecretKeyRef,
    policy_ns: Option<&str>,
    default_key: &str,
    field: &str,
) -> Result<&'a [u8], String> {
    let ns = match (policy_ns, r.namespace.as_deref()) {
        (Some(own), None) => own,
        (Some(own), Some(ns)) if ns == own => own,
        (Some(own), Some(ns)) => {
            return Err(format!("{field}: namespace {ns:?} is not the policy's namespace {own:?}"))
        }
        (None, Some(ns)) => ns,
        (None, None) => return Err(format!("{field}: namespace is required for a cluster-scoped policy")),
    };
    let key = r.key.as_deref().unwrap_or(default_key);
    ctx.secrets.get(ns, &r.name, key).map_err(|e| format!("{field}: {e}"))
}

pub(super) fn compile_policy(
    spec: &PolicySpec,
    name: &str,
    namespace: Option<&str>,
    generation: Option<i64>,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Option<CompiledPolicy> {
    let before = problems.len();
    let mut images = Vec::new();
    if spec.images.is_empty() {
        problems.push("images: at least one glob is required".into());
    }
    for (i, g) in spec.images.iter().enumerate() {
        match Glob::new(g) {
            Ok(glob) if !glob.names_registry() => problems.push(format!(
                "images[{i}]: {g:?} does not name a registry; globs match normalised references such as docker.io/library/nginx"
            )),
            Ok(glob) => images.push(glob),
            Err(e) => problems.push(format!("images[{i}]: {e}")),
        }
    }
    let m = &spec.match_;
    let mut namespaces = Vec::new();
    for (i, g) in m.namespaces.iter().enumerate() {
        match Glob::new(g) {
            Ok(glob) => namespaces.push(glob),
            Err(e) => problems.push(format!("match.namespaces[{i}]: {e}")),
        }
    }
    for (field, sel) in [("namespaceSelector", &m.namespace_selector), ("objectSelector", &m.object_selector)]
    {
        if let Some(s) = sel {
            problems.extend(selector::validate(s).into_iter().map(|p| format!("match.{field}: {p}")));
        }
    }
    // Whether what the policy matches is known (then a policy with other problems is kept as broken).
    let matchable = problems.len() == before && !images.is_empty();
    // After `matchable`: a bad exclusion keeps the policy in force as broken (it then covers more, not less).
    let mut exclude_images = Vec::new();
    for (i, g) in spec.exclude_images.iter().enumerate() {
        match Glob::new(g) {
            Ok(glob) if !glob.names_registry() => problems.push(format!(
                "excludeImages[{i}]: {g:?} does not name a registry; globs match normalised references such as docker.io/library/nginx"
            )),
            Ok(glob) => exclude_images.push(glob),
            Err(e) => problems.push(format!("excludeImages[{i}]: {e}")),
        }
    }
    let mut authorities = Vec::new();
    if spec.authorities.is_empty() {
        problems.push("authorities: at least one authority is required".into());
    }
    let mut names = BTreeSet::new();
    for (i, a) in spec.authorities.iter().enumerate() {
        if !names.insert(a.name.as_str()) {
            problems.push(format!("authorities[{i}]: name {:?} is used twice", a.name));
        }
        if let Some(c) = compile_authority(a, &format!("authorities[{i}]"), namespace, ctx, problems) {
            authorities.push(c);
        }
    }
    let r = &spec.requirements;
    let mut requirements = Vec::new();
    let declared: Vec<&str> = spec.authorities.iter().map(|a| a.name.as_str()).collect();
    let eligible = |names: &[String], field: &str, problems: &mut Vec<String>| {
        eligible_authorities(name, &declared, names, field, problems)
    };
    match &r.signature {
        SignatureRequirement::Required(false) => {}
        SignatureRequirement::Required(true) => requirements.push(CompiledRequirement::Signature {
            authorities: None,
            min_authorities: 1,
            annotations: Vec::new(),
        }),
        SignatureRequirement::Rules(rules) => {
            let field = "requirements.signature";
            let authorities = eligible(&rules.authorities, field, problems);
            let count = authorities.as_ref().map_or(declared.len(), BTreeSet::len);
            let min_authorities = match rules.min_authorities {
                None => 1,
                Some(n) if n >= 1 && (n as usize) <= count => n as usize,
                Some(n) => {
                    problems.push(format!(
                        "{field}.minAuthorities: {n} is not between 1 and the {count} eligible authorities"
                    ));
                    1
                }
            };
            let annotations = signed_annotations(&rules.annotations, field, problems);
            requirements.push(CompiledRequirement::Signature { authorities, min_authorities, annotations });
        }
        SignatureRequirement::Invalid { problem, .. } => {
            problems.push(format!("requirements.signature: {problem}"));
        }
    }
    for (i, att) in r.attestations.iter().enumerate() {
        let field = format!("requirements.attestations[{i}]");
        if att.predicate_type.is_empty() {
            problems.push(format!("{field}: predicateType is empty"));
        }
        let authorities = eligible(&att.authorities, &field, problems);
        let condition = match &att.condition {
            None => None,
            Some(module) => {
                let module_name = format!("{name}/attestations[{i}].rego");
                match RegoCondition::compile(&module_name, module) {
                    Ok(c) => Some(Box::new(c)),
                    Err(e) => {
                        problems.push(format!("{field}.condition: {e}"));
                        None
                    }
                }
            }
        };
        requirements.push(CompiledRequirement::Attestation {
            predicate_type: att.predicate_type.clone(),
            condition,
            authorities,
        });
    }
    if r.sbom.as_ref().is_some_and(|s| s.required) {
        requirements.push(CompiledRequirement::Sbom);
    }
    // A policy may exist only to assign a compliance profile, judge fetchers, or name an egress allowlist.
    let other_duties = spec.compliance_profile.is_some()
        || spec.fetchers.is_some()
        || spec.egress.is_some()
        || spec.require_digest;
    // (An invalid signature value is reported as such, not as nothing required.)
    if requirements.is_empty() && !other_duties && !r.signature.is_required() {
        problems.push(
            "requirements: nothing is required (set signature, attestations or sbom, or complianceProfile, \
             fetchers, egress or requireDigest)"
                .into(),
        );
    }
    let credentials = spec.credentials.as_ref().and_then(|c| {
        let bytes: Result<Vec<u8>, String> = match (&c.secret_ref, &c.path) {
            (Some(r), None) => {
                secret(ctx, r, namespace, ".dockerconfigjson", "credentials.secretRef").map(<[u8]>::to_vec)
            }
            (None, Some(p)) => {
                let path = ctx.base_dir.map_or_else(|| PathBuf::from(p), |d| d.join(p));
                read_capped(&path).map(String::into_bytes).map_err(|e| format!("credentials.path {p:?}: {e}"))
            }
            _ => Err("credentials: exactly one of secretRef or path is required".into()),
        };
        match bytes
            .and_then(|b| Credentials::from_docker_config_json(&b).map_err(|e| format!("credentials: {e}")))
        {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(e);
                None
            }
        }
    });
    if let Some(p) = &spec.compliance_profile {
        if p.is_empty() {
            problems.push("complianceProfile: the name is empty".into());
        }
    }
    let egress_allowlist = spec.egress.as_ref().and_then(|e| e.allowlist.as_ref()).and_then(|r| {
        match r.parse::<ArtifactRef>() {
            Ok(r) => Some(r),
            Err(e) => {
                problems.push(format!("egress.allowlist: {r:?} is not a valid reference: {}", e.reason));
                None
            }
        }
    });
    matchable.then(|| CompiledPolicy {
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
        generation,
        images,
        exclude_images,
        require_digest: spec.require_digest,
        namespaces,
        namespace_selector: m.namespace_selector.clone(),
        object_selector: m.object_selector.clone(),
        kinds: m.kinds.clone(),
        authorities,
        requirements,
        mode: spec.mode,
        failure_policy: spec.failure_policy,
        credentials,
        compliance_profile: spec.compliance_profile.clone(),
        fetchers: spec.fetchers.clone().unwrap_or_default(),
        egress: spec.egress.is_some(),
        egress_allowlist,
        broken: None,
    })
}

/// The authorities a requirement names (`None`: it names none, so any of the policy's may satisfy it).
/// A name the policy does not declare is a problem naming the policy and the name.
fn eligible_authorities(
    policy: &str,
    declared: &[&str],
    names: &[String],
    field: &str,
    problems: &mut Vec<String>,
) -> Option<BTreeSet<String>> {
    if names.is_empty() {
        return None;
    }
    let mut out = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        if !declared.contains(&n.as_str()) {
            problems.push(format!(
                "{field}.authorities[{i}]: policy {policy} has no authority named {n:?} (it has {})",
                declared.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>().join(", ")
            ));
        } else if !out.insert(n.clone()) {
            problems.push(format!("{field}.authorities[{i}]: {n:?} is named twice"));
        }
    }
    Some(out)
}

/// `annotations` of a signature requirement: a value written `^…$` is a regular expression the whole
/// value must match, any other value is matched exactly.
fn signed_annotations(
    annotations: &BTreeMap<String, String>,
    field: &str,
    problems: &mut Vec<String>,
) -> Vec<SignedAnnotation> {
    let mut out = Vec::new();
    for (key, value) in annotations {
        if key.is_empty() {
            problems.push(format!("{field}.annotations: an annotation key is empty"));
            continue;
        }
        let is_regex = value.len() >= 2 && value.starts_with('^') && value.ends_with('$');
        let matcher = if is_regex { Matcher::regex(value) } else { Ok(Matcher::Exact(value.clone())) };
        match matcher {
            Ok(value) => out.push(SignedAnnotation { key: key.clone(), value }),
            Err(e) => problems.push(format!("{field}.annotations.{key}: {e}")),
        }
    }
    out
}

fn compile_authority(
    a: &AuthoritySpec,
    field: &str,
    namespace: Option<&str>,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Option<CompiledAuthority> {
    if a.name.is_empty() {
        problems.push(format!("{field}.name is empty"));
    }
    if let Some(n) = &a.notation {
        if a.key.is_some() || a.keyless.is_some() {
            problems.push(format!("{field}: exactly one of key, keyless or notation is required"));
            return None;
        }
        if a.signature_format != SignatureFormat::Cosign {
            problems.push(format!("{field}.signatureFormat: a notation authority signs images, not models"));
            return None;
        }
        let authority = compile_notation(n, &format!("{field}.notation"), namespace, ctx, problems)?;
        return Some(CompiledAuthority {
            name: a.name.clone(),
            label: format!("notation {}", a.name),
            authority: Authority::Notation(Arc::new(authority)),
            require_tlog: true,
            trust_root: None,
            format: a.signature_format,
        });
    }
    match (&a.key, &a.keyless) {
        (Some(k), None) => {
            let pem: Result<String, String> = match (&k.pem, &k.secret_ref) {
                (Some(p), None) => Ok(p.clone()),
                (None, Some(r)) => secret(ctx, r, namespace, "cosign.pub", &format!("{field}.key.secretRef"))
                    .and_then(|b| {
                        String::from_utf8(b.to_vec()).map_err(|_| format!("{field}.key: not UTF-8 PEM"))
                    }),
                _ => Err(format!("{field}.key: exactly one of pem or secretRef is required")),
            };
            let key = pem.and_then(|p| {
                PublicKey::from_pem(&p).map_err(|e| format!("{field}.key: not a usable public key: {e}"))
            });
            match key {
                Ok(key) => Some(CompiledAuthority {
                    name: a.name.clone(),
                    label: format!("key {}", a.name),
                    authority: Authority::Key(key),
                    require_tlog: k.require_tlog,
                    trust_root: None,
                    format: a.signature_format,
                }),
                Err(e) => {
                    problems.push(e);
                    None
                }
            }
        }
        (None, Some(kl)) => {
            let before = problems.len();
            if kl.identities.is_empty() {
                problems.push(format!("{field}.keyless.identities: at least one identity is required"));
            }
            let identities: Vec<CertificateIdentity> = kl
                .identities
                .iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    compile_identity(id, &format!("{field}.keyless.identities[{i}]"), problems)
                })
                .collect();
            if let Some(tr) = &kl.trust_root_ref {
                if let Some(why) = ctx.bad_roots.get(tr) {
                    problems
                        .push(format!("{field}.keyless.trustRootRef: trust root {tr:?} is invalid: {why}"));
                } else if !ctx.trust_roots.contains_key(tr) {
                    problems.push(format!("{field}.keyless.trustRootRef: unknown trust root {tr:?}"));
                }
            }
            (problems.len() == before).then(|| CompiledAuthority {
                name: a.name.clone(),
                label: format!("keyless {}", a.name),
                authority: Authority::Keyless { identities },
                require_tlog: true,
                trust_root: kl.trust_root_ref.clone(),
                format: a.signature_format,
            })
        }
        _ => {
            problems.push(format!("{field}: exactly one of key, keyless or notation is required"));
            None
        }
    }
}

/// A Notation authority: trust stores read (inline or from secrets), identities parsed, every problem
/// reported.
fn compile_notation(
    n: &NotationSpec,
    field: &str,
    namespace: Option<&str>,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Option<NotationAuthority> {
    let before = problems.len();
    let mut store = |s: &NotationTrustStoreSpec, kind: TrustStoreKind, field: &str| {
        let pem: Result<String, String> = match (&s.pem, &s.secret_ref) {
            (Some(p), None) => Ok(p.clone()),
            (None, Some(r)) => secret(ctx, r, namespace, "ca.crt", &format!("{field}.secretRef"))
                .and_then(|b| String::from_utf8(b.to_vec()).map_err(|_| format!("{field}: not UTF-8 PEM"))),
            _ => Err(format!("{field}: exactly one of pem or secretRef is required")),
        };
        match pem.and_then(|p: String| TrustStore::from_pem_as(kind, &p).map_err(|e| format!("{field}: {e}")))
        {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(e);
                None
            }
        }
    };
    let kind = match n.trust_store.store_type {
        NotationTrustStoreType::Ca => TrustStoreKind::Ca,
        NotationTrustStoreType::SigningAuthority => TrustStoreKind::SigningAuthority,
    };
    let trust_store = store(&n.trust_store, kind, &format!("{field}.trustStore"));
    let tsa_trust_store =
        n.tsa_trust_store.as_ref().map(|s| store(s, TrustStoreKind::Tsa, &format!("{field}.tsaTrustStore")));
    let crls = match &n.crls {
        None => Some(CrlStore::default()),
        Some(c) => {
            let field = format!("{field}.crls");
            let bytes: Result<Vec<u8>, String> = match (&c.pem, &c.secret_ref) {
                (Some(p), None) => Ok(p.clone().into_bytes()),
                (None, Some(r)) => {
                    secret(ctx, r, namespace, "crl.pem", &format!("{field}.secretRef")).map(|b| b.to_vec())
                }
                _ => Err(format!("{field}: exactly one of pem or secretRef is required")),
            };
            match bytes.and_then(|b| CrlStore::from_bytes(&b).map_err(|e| format!("{field}: {e}"))) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(e);
                    None
                }
            }
        }
    };
    if n.trusted_identities.is_empty() {
        problems.push(format!("{field}.trustedIdentities: at least one identity (or \"*\") is required"));
    }
    let mut identities = Vec::with_capacity(n.trusted_identities.len());
    for (i, id) in n.trusted_identities.iter().enumerate() {
        match id.parse::<TrustedIdentity>() {
            Ok(id) => identities.push(id),
            Err(e) => problems.push(format!("{field}.trustedIdentities[{i}]: {e}")),
        }
    }
    let level = match n.level {
        NotationLevel::Strict => Level::Strict,
        NotationLevel::Permissive => Level::Permissive,
        NotationLevel::Audit => Level::Audit,
        NotationLevel::Skip => Level::Skip,
    };
    if problems.len() != before {
        return None;
    }
    Some(NotationAuthority {
        trust_store: trust_store?,
        tsa_trust_store: tsa_trust_store.flatten(),
        crls: crls?,
        identities,
        level,
    })
}

fn compile_identity(
    id: &IdentitySpec,
    field: &str,
    problems: &mut Vec<String>,
) -> Option<CertificateIdentity> {
    let mut one = |exact: &Option<String>, regex: &Option<String>, what: &str| -> Option<Matcher> {
        match (exact, regex) {
            (Some(s), None) if !s.is_empty() => Some(Matcher::Exact(s.clone())),
            (None, Some(r)) => match Matcher::regex(r) {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.push(format!("{field}.{what}RegExp: {e}"));
                    None
                }
            },
            _ => {
                problems.push(format!("{field}: exactly one of {what} or {what}RegExp is required"));
                None
            }
        }
    };
    let subject = one(&id.subject, &id.subject_reg_exp, "subject");
    let issuer = one(&id.issuer, &id.issuer_reg_exp, "issuer");
    let claims = compile_claims(id, field, problems);
    let mut identity = CertificateIdentity::new(subject?, issuer?);
    identity.claims = claims?;
    Some(identity)
}

/// `claims` and `claimsRegExp`: every name must be a known claim (a typo is a problem, never a claim
/// silently not checked), named once, with a non-empty exact value or a compiling regular expression.
fn compile_claims(
    id: &IdentitySpec,
    field: &str,
    problems: &mut Vec<String>,
) -> Option<BTreeMap<Claim, Matcher>> {
    let before = problems.len();
    let mut claims = BTreeMap::new();
    for (n, value) in &id.claims {
        let claim = match n.parse::<Claim>() {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{field}.claims: {e}"));
                continue;
            }
        };
        if value.is_empty() {
            problems
                .push(format!("{field}.claims.{n}: empty value (give the value, or leave the claim out)"));
            continue;
        }
        claims.insert(claim, Matcher::Exact(value.clone()));
    }
    for (n, pattern) in &id.claims_reg_exp {
        let claim = match n.parse::<Claim>() {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{field}.claimsRegExp: {e}"));
                continue;
            }
        };
        if id.claims.contains_key(n) {
            problems.push(format!("{field}: claim {n} is named in both claims and claimsRegExp"));
            continue;
        }
        match Matcher::regex(pattern) {
            Ok(m) => {
                claims.insert(claim, m);
            }
            Err(e) => problems.push(format!("{field}.claimsRegExp.{n}: {e}")),
        }
    }
    (problems.len() == before).then_some(claims)
}

pub(super) fn compile_trust_root(
    t: &TrustRoot,
    secrets: &Secrets,
    from_tuf: Option<&Result<Vec<u8>, String>>,
) -> Result<SigstoreTrustRoot, Vec<String>> {
    let mut problems = Vec::new();
    if t.metadata.name.as_deref().unwrap_or_default().is_empty() {
        problems.push("metadata.name is missing".to_owned());
    }
    let bytes: Option<Vec<u8>> = match (&t.spec.trusted_root_json, &t.spec.secret_ref, &t.spec.tuf) {
        (Some(j), None, None) => Some(j.clone().into_bytes()),
        (None, Some(r), None) => match &r.namespace {
            None => {
                problems.push("secretRef: namespace is required".into());
                None
            }
            Some(ns) => match secrets.get(ns, &r.name, r.key.as_deref().unwrap_or("trusted_root.json")) {
                Ok(b) => Some(b.to_vec()),
                Err(e) => {
                    problems.push(format!("secretRef: {e}"));
                    None
                }
            },
        },
        (None, None, Some(tuf)) => match from_tuf {
            Some(Ok(b)) => Some(b.clone()),
            Some(Err(e)) => {
                problems.push(format!("tuf: {e}"));
                None
            }
            None => {
                problems.push(format!(
                    "tuf: the repository {} was not consulted (no TUF client here)",
                    tuf.mirror
                ));
                None
            }
        },
        _ => {
            problems.push("exactly one of trustedRootJSON, secretRef or tuf is required".into());
            None
        }
    };
    let root = bytes.and_then(|b| match SigstoreTrustRoot::from_json(&b) {
        Ok(r) => Some(r),
        Err(e) => {
            problems.push(format!("not a usable trusted root: {e}"));
            None
        }
    });
    match root {
        Some(r) if problems.is_empty() => Ok(r),
        _ => Err(problems),
    }
}
