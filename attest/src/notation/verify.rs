//! The checker: one envelope, the manifest it must name, and a [`NotationAuthority`] in; the verified
//! signer with the outcome of every check out — or the first enforced check that failed.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::envelope::{Envelope, SigningScheme};
use super::level::{Check, CheckAction, Level};
use super::payload::{self, ExpectedTarget, TargetArtifact};
use super::revocation::{self, CrlStore, Revocation};
use super::trust::{DistinguishedName, TrustStore, TrustStoreKind, TrustedIdentity};
use super::{cose, jws, NotationError};
use crate::digest::Digest;
use crate::sigstore_verify::certificate::{verify_leaf, ParsedAuthority, ParsedCert, EKU_CODE_SIGNING};
use crate::sigstore_verify::timestamp;
use crate::trust_root::Validity;

pub use super::cose::MEDIA_TYPE as COSE_MEDIA_TYPE;
pub use super::jws::MEDIA_TYPE as JWS_MEDIA_TYPE;

/// Who may sign, as a Notation trust policy statement says it.
#[derive(Debug, Clone)]
pub struct NotationAuthority {
    /// The `ca` (or `signingAuthority`) store the signing chain must lead to.
    pub trust_store: TrustStore,
    /// The `tsa` store for RFC 3161 countersignatures; without it a timestamp is not used.
    pub tsa_trust_store: Option<TrustStore>,
    /// CRLs of the signing (and TSA) chains' issuers; empty: revocation is not checked.
    pub crls: CrlStore,
    /// Accepted signers (any may match); at least one.
    pub identities: Vec<TrustedIdentity>,
    /// What each check's failure does.
    pub level: Level,
}

impl NotationAuthority {
    /// A stable string naming the authority, for cache keys.
    pub fn fingerprint(&self) -> String {
        let mut ids: Vec<String> = self.identities.iter().map(ToString::to_string).collect();
        ids.sort();
        ids.dedup();
        format!(
            "notation:level={};store={};tsa={};crls=[{}];identities=[{}]",
            self.level,
            self.trust_store.fingerprint(),
            self.tsa_trust_store.as_ref().map(TrustStore::fingerprint).unwrap_or_default(),
            self.crls.fingerprint(),
            ids.join("|")
        )
    }
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckResult {
    /// It ran and held.
    Passed,
    /// It failed, and the level only records the failure.
    FailedLogged,
    /// It was not run.
    Skipped,
}

/// One check's outcome, with the reason when it did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutcome {
    /// Which check.
    pub check: Check,
    /// How it ended.
    pub result: CheckResult,
    /// Why it failed or was skipped; for a passed revocation check, what it was checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A signature that verified under the authority's level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNotation {
    /// The signing certificate's subject DN (RFC 4514).
    pub subject: String,
    /// SHA-256 of the signing certificate's DER.
    pub fingerprint: Digest,
    /// The authentic signing time (a verified timestamp or a signing authority's), if one was established.
    pub signing_time: Option<DateTime<Utc>>,
    /// What the payload names.
    pub target: TargetArtifact,
    /// Every check and how it ended (revocation is skipped unless CRLs were given: see [`revocation`]).
    pub checks: Vec<CheckOutcome>,
    /// The first moment after the verification at which a check could end otherwise by time alone: the
    /// signature's expiry, the validity of certificates checked at the time of verification (no authentic
    /// signing time), a CRL of either chain becoming current or going out of date. `None`: no such moment.
    pub valid_until: Option<DateTime<Utc>>,
}

/// Why revocation is not checked when the authority carries no CRL.
pub const REVOCATION_NOT_CHECKED: &str =
    "no CRLs given, and vouch reaches no OCSP responder or CRL distribution point";

struct Outcomes {
    level: Level,
    list: Vec<CheckOutcome>,
}

impl Outcomes {
    /// Record `result` for `check`; an enforced failure is returned as the error.
    fn record(&mut self, check: Check, result: Result<(), NotationError>) -> Result<(), NotationError> {
        let (result, reason) = match (result, self.level.action(check)) {
            (_, CheckAction::Skip) => (CheckResult::Skipped, Some(format!("level {}", self.level))),
            (Ok(()), _) => (CheckResult::Passed, None),
            (Err(e), CheckAction::Enforce) => return Err(e),
            (Err(e), CheckAction::Log) => (CheckResult::FailedLogged, Some(e.to_string())),
        };
        self.list.push(CheckOutcome { check, result, reason });
        Ok(())
    }

    /// Record the revocation check: a failure as the level says, a check that could not be made as
    /// skipped with its reason (never as passed), a pass with what it was checked against.
    fn record_revocation(&mut self, revocation: Revocation) -> Result<(), NotationError> {
        let (result, reason) = match revocation {
            Revocation::Failed(e) => return self.record(Check::Revocation, Err(e)),
            _ if self.level.action(Check::Revocation) == CheckAction::Skip => {
                (CheckResult::Skipped, format!("level {}", self.level))
            }
            Revocation::NotChecked { reason } => (CheckResult::Skipped, reason),
            Revocation::NotRevoked { detail } => (CheckResult::Passed, detail),
        };
        self.list.push(CheckOutcome { check: Check::Revocation, result, reason: Some(reason) });
        Ok(())
    }
}

/// Parse an envelope of `media_type`.
pub fn parse_envelope(media_type: &str, bytes: &[u8]) -> Result<Envelope, NotationError> {
    if bytes.len() > super::MAX_ENVELOPE_BYTES {
        return Err(super::malformed(
            "envelope",
            format!("{} bytes exceed the limit of {}", bytes.len(), super::MAX_ENVELOPE_BYTES),
        ));
    }
    match media_type {
        jws::MEDIA_TYPE => jws::parse(bytes),
        cose::MEDIA_TYPE => cose::parse(bytes),
        other => Err(NotationError::UnsupportedMediaType(other.to_owned())),
    }
}

/// Verify the envelope `bytes` (of `media_type`) for the manifest `expected` under `authority` at `now`.
/// Integrity and the payload's target are always enforced; the level decides the rest. A `skip` level is
/// refused here: it verifies nothing, so the caller does not call this.
pub fn verify(
    media_type: &str,
    bytes: &[u8],
    expected: &ExpectedTarget,
    authority: &NotationAuthority,
    now: DateTime<Utc>,
) -> Result<VerifiedNotation, NotationError> {
    if authority.level == Level::Skip {
        return Err(NotationError::Config("level skip verifies no signature".into()));
    }
    if authority.identities.is_empty() {
        return Err(NotationError::Config("no trusted identities".into()));
    }
    let mut outcomes = Outcomes { level: authority.level, list: Vec::with_capacity(5) };

    // Integrity: the envelope parses, its signature verifies with the signing certificate's key, and the
    // payload names the manifest being verified.
    let envelope = parse_envelope(media_type, bytes)?;
    let chain = envelope
        .certificates
        .iter()
        .map(|der| ParsedCert::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NotationError::Integrity(format!("certificate chain: {e}")))?;
    let leaf = chain.first().ok_or_else(|| NotationError::Integrity("no signing certificate".into()))?;
    let key = leaf.public_key().map_err(|e| NotationError::Integrity(e.to_string()))?;
    envelope.algorithm.verify(&key, &envelope.signing_input, &envelope.signature)?;
    let target = payload::check(&envelope.payload, expected)?;
    outcomes.record(Check::Integrity, Ok(()))?;

    // Authenticity: the chain leads to the trust store and the signer is a trusted identity.
    let anchor = chain.iter().position(|c| authority.trust_store.contains(&c.der));
    let subject = DistinguishedName::of_subject(leaf);
    outcomes
        .record(Check::Authenticity, authenticity(&envelope, &chain, anchor, subject.as_ref(), authority))?;

    // Authentic timestamp: the certificates (up to the trust anchor) were valid when the signature was made.
    let AuthenticTime { signing_time, valid_at: time_check, tsa_revocation, tsa_crl_change } =
        authentic_time(&envelope, authority, now);
    let upto = anchor.unwrap_or(chain.len().saturating_sub(1));
    let checked_at_now = matches!(time_check, Ok(t) if t == now);
    let time_check = time_check.and_then(|t| {
        for cert in chain.iter().take(upto + 1) {
            cert.check_valid_at(t).map_err(|e| NotationError::AuthenticTimestamp(e.to_string()))?;
        }
        Ok(())
    });
    outcomes.record(Check::AuthenticTimestamp, time_check)?;

    // Expiry of the signature itself.
    let expiry = match envelope.attributes.expiry {
        Some(expiry) if now > expiry => Err(NotationError::Expired { expiry }),
        _ => Ok(()),
    };
    outcomes.record(Check::Expiry, expiry)?;

    // Revocation of the signing chain against the CRLs given (the TSA chain's was checked with the
    // timestamp); what could not be checked is said, never claimed.
    let signing = revocation::check_chain(&chain, &authority.trust_store, &authority.crls, signing_time, now);
    outcomes.record_revocation(combine_revocation(signing, tsa_revocation))?;

    // What has passed stays passed (an expired signature stays expired): only later moments count.
    let certificate_changes =
        chain.iter().take(upto + 1).filter(|_| checked_at_now).flat_map(|c| [c.not_before(), c.not_after()]);
    let valid_until = [envelope.attributes.expiry, authority.crls.next_change(&chain, now), tsa_crl_change]
        .into_iter()
        .flatten()
        .chain(certificate_changes)
        .filter(|t| *t > now)
        .min();
    Ok(VerifiedNotation {
        subject: leaf.cert.tbs_certificate.subject.to_string(),
        fingerprint: Digest::sha256_of(&leaf.der),
        signing_time,
        target,
        checks: outcomes.list,
        valid_until,
    })
}

/// The chain up to its trust anchor checks out (signatures, CA constraints, code-signing usage) and the
/// signer is a trusted identity. Validity in time is the authentic-timestamp check's, so the chain is
/// checked at a moment inside every certificate's validity.
fn authenticity(
    envelope: &Envelope,
    chain: &[ParsedCert],
    anchor: Option<usize>,
    subject: Result<&DistinguishedName, &String>,
    authority: &NotationAuthority,
) -> Result<(), NotationError> {
    let wanted = match envelope.attributes.signing_scheme {
        SigningScheme::X509 => TrustStoreKind::Ca,
        SigningScheme::X509SigningAuthority => TrustStoreKind::SigningAuthority,
    };
    if authority.trust_store.kind != wanted {
        return Err(NotationError::Authenticity(format!(
            "the signing scheme is {}, which needs a {} trust store, not {}",
            envelope.attributes.signing_scheme.as_str(),
            wanted.as_str(),
            authority.trust_store.kind.as_str()
        )));
    }
    let (Some(anchor), Some(leaf)) = (anchor, chain.first()) else {
        return Err(NotationError::Authenticity(
            "no certificate of the signature's chain is in the trust store".into(),
        ));
    };
    let trusted = if anchor == 0 { &chain[..1] } else { &chain[1..=anchor] };
    let authority_chain =
        ParsedAuthority::new("Notation trust store".into(), trusted.to_vec(), Validity::default());
    let moment = chain[..=anchor].iter().map(ParsedCert::not_before).max().unwrap_or_default();
    verify_leaf(
        leaf,
        std::slice::from_ref(&authority_chain),
        &[moment],
        "Notation trust store",
        (EKU_CODE_SIGNING, "codeSigning"),
    )
    .map_err(|e| NotationError::Authenticity(e.to_string()))?;
    let subject =
        subject.map_err(|e| NotationError::Authenticity(format!("signing certificate subject: {e}")))?;
    if !authority.identities.iter().any(|id| id.matches(subject)) {
        let ids: Vec<String> = authority.identities.iter().map(ToString::to_string).collect();
        return Err(NotationError::Authenticity(format!(
            "signer {} is not a trusted identity (trusted: {})",
            leaf.cert.tbs_certificate.subject,
            ids.join("; ")
        )));
    }
    Ok(())
}

/// The signing chain's revocation outcome with the TSA chain's (when a timestamp was used): passed only
/// when both passed; a chain that could not be checked makes the whole check not checked.
fn combine_revocation(signing: Revocation, tsa: Option<Revocation>) -> Revocation {
    match (signing, tsa) {
        (failed @ Revocation::Failed(_), _) => failed,
        (signing, None) => signing,
        (_, Some(Revocation::Failed(e))) => Revocation::Failed(e),
        (Revocation::NotRevoked { detail }, Some(Revocation::NotRevoked { detail: tsa })) => {
            Revocation::NotRevoked { detail: format!("{detail}; TSA chain: {tsa}") }
        }
        (Revocation::NotChecked { reason }, Some(_)) if reason == REVOCATION_NOT_CHECKED => {
            Revocation::NotChecked { reason }
        }
        (signing, Some(tsa)) => {
            let text = |r: Revocation| match r {
                Revocation::NotRevoked { detail } => detail,
                Revocation::NotChecked { reason } => reason,
                Revocation::Failed(e) => e.to_string(),
            };
            Revocation::NotChecked { reason: format!("{}; TSA chain: {}", text(signing), text(tsa)) }
        }
    }
}

/// When a signature was made, as far as it can be established.
struct AuthenticTime {
    /// The authentic signing time, if one was established.
    signing_time: Option<DateTime<Utc>>,
    /// The time the certificates must be valid at, or why none could be established.
    valid_at: Result<DateTime<Utc>, NotationError>,
    /// The TSA chain's revocation status, when a timestamp was used.
    tsa_revocation: Option<Revocation>,
    /// When a CRL of the TSA chain next changes (see [`revocation::CrlStore::next_change`]).
    tsa_crl_change: Option<DateTime<Utc>>,
}

/// The authentic signing time and the time the certificates must be valid at: a signing authority's
/// `authenticSigningTime`; a verified RFC 3161 timestamp; else now. A revoked TSA chain (or one whose CRL
/// cannot be used) fails the timestamp: the specification always enforces TSA revocation once a timestamp
/// is used.
fn authentic_time(envelope: &Envelope, authority: &NotationAuthority, now: DateTime<Utc>) -> AuthenticTime {
    let at = |t: Option<DateTime<Utc>>, valid_at| AuthenticTime {
        signing_time: t,
        valid_at,
        tsa_revocation: None,
        tsa_crl_change: None,
    };
    if let Some(t) = envelope.attributes.authentic_signing_time {
        return at(Some(t), Ok(t));
    }
    let (Some(token), Some(tsa)) = (&envelope.timestamp, &authority.tsa_trust_store) else {
        return at(None, Ok(now));
    };
    let failed = |why: String| at(None, Err(NotationError::AuthenticTimestamp(why)));
    match verify_countersignature(token, &envelope.signature, tsa) {
        Ok(v) if v.time > now + chrono::Duration::minutes(1) => {
            failed(format!("timestamp {} lies in the future", v.time))
        }
        Ok(v) => {
            let chain = v.chain.iter().filter_map(|der| ParsedCert::from_der(der).ok()).collect::<Vec<_>>();
            match revocation::check_chain(&chain, tsa, &authority.crls, None, now) {
                Revocation::Failed(e) => failed(format!("timestamp countersignature: TSA {e}")),
                tsa_revocation => AuthenticTime {
                    signing_time: Some(v.time),
                    valid_at: Ok(v.time),
                    tsa_revocation: Some(tsa_revocation),
                    tsa_crl_change: authority.crls.next_change(&chain, now),
                },
            }
        }
        Err(e) => failed(format!("timestamp countersignature: {e}")),
    }
}

/// Verify an RFC 3161 token over `signature` with a TSA trust store: the token's embedded intermediates are
/// put between the TSA signer and each trusted certificate they lead to.
fn verify_countersignature(
    token: &[u8],
    signature: &[u8],
    tsa: &TrustStore,
) -> Result<timestamp::VerifiedTimestamp, timestamp::TimestampError> {
    let embedded = timestamp::embedded_certificates(token)?;
    let authorities: Vec<ParsedAuthority> = tsa
        .certificates()
        .iter()
        .map(|root| {
            let mut chain = vec![root.clone()];
            while chain.len() < 5 {
                let top = &chain[0];
                let next = embedded.iter().find(|c| {
                    c.is_ca()
                        && c.cert.tbs_certificate.issuer == top.cert.tbs_certificate.subject
                        && !chain.iter().any(|k| k.der == c.der)
                });
                match next {
                    Some(c) => chain.insert(0, c.clone()),
                    None => break,
                }
            }
            ParsedAuthority::new("Notation TSA trust store".into(), chain, Validity::default())
        })
        .collect();
    timestamp::verify_timestamp(token, signature, &authorities)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/notation");
    const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
    const NOTARY_ID: &str = "x509.subject: C=US, ST=WA, L=Seattle, O=Notary, CN=Notation Test Root";

    fn read(path: &str) -> Vec<u8> {
        std::fs::read(format!("{DATA}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn store(kind: TrustStoreKind, file: &str) -> TrustStore {
        TrustStore::from_pem_as(kind, &String::from_utf8(read(&format!("truststore/{file}"))).unwrap())
            .unwrap()
    }

    fn authority(file: &str, identity: &str, level: Level) -> NotationAuthority {
        NotationAuthority {
            trust_store: store(TrustStoreKind::Ca, file),
            tsa_trust_store: None,
            crls: CrlStore::default(),
            identities: vec![identity.parse().unwrap()],
            level,
        }
    }

    /// The manifest the `*_sig_env.json` vectors sign.
    fn mock_target() -> ExpectedTarget {
        ExpectedTarget {
            media_type: DOCKER_V2.into(),
            digest: "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e"
                .parse()
                .unwrap(),
            size: 528,
        }
    }

    /// The manifest the timestamp vectors sign.
    fn timestamp_target() -> ExpectedTarget {
        ExpectedTarget {
            media_type: DOCKER_V2.into(),
            digest: "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda"
                .parse()
                .unwrap(),
            size: 528,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn result(v: &VerifiedNotation, check: Check) -> CheckResult {
        v.checks.iter().find(|c| c.check == check).map(|c| c.result).unwrap()
    }

    /// Rewrite a JWS envelope's JSON (the signature then no longer covers a changed protected header).
    fn edit_jws(bytes: &[u8], f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn upstream_jws_verifies_strictly_and_names_the_signer() {
        let a = authority("NotationTestRoot.pem", NOTARY_ID, Level::Strict);
        let v = verify(JWS_MEDIA_TYPE, &read("envelopes/ca_valid_sig_env.json"), &mock_target(), &a, now())
            .unwrap();
        assert_eq!(v.subject, "CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US");
        assert_eq!(v.target.size, 528);
        assert_eq!(v.signing_time, None, "notary.x509 without a timestamp has no authentic signing time");
        for check in [Check::Integrity, Check::Authenticity, Check::AuthenticTimestamp, Check::Expiry] {
            assert_eq!(result(&v, check), CheckResult::Passed, "{check:?}");
        }
        // Revocation is never claimed.
        assert_eq!(result(&v, Check::Revocation), CheckResult::Skipped);
        // Any identity, and `*`.
        let any = authority("NotationTestRoot.pem", "*", Level::Strict);
        verify(JWS_MEDIA_TYPE, &read("envelopes/ca_valid_sig_env.json"), &mock_target(), &any, now())
            .unwrap();
    }

    #[test]
    fn tampered_payload_or_signature_fails_integrity_at_every_level() {
        for level in [Level::Strict, Level::Permissive, Level::Audit] {
            let a = authority("NotationTestRoot.pem", NOTARY_ID, level);
            // Upstream's invalid envelope: another payload (with base64 padding, which JWS forbids).
            let err =
                verify(JWS_MEDIA_TYPE, &read("envelopes/ca_invalid_sig_env.json"), &mock_target(), &a, now())
                    .unwrap_err();
            assert!(matches!(err, NotationError::Malformed { .. }), "{level}: {err}");
            // The same signature over a payload that names the same artifact with one more annotation.
            let tampered = edit_jws(&read("envelopes/ca_valid_sig_env.json"), |v| {
                let mut p: serde_json::Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(v["payload"].as_str().unwrap()).unwrap())
                        .unwrap();
                p["targetArtifact"]["annotations"] = serde_json::json!({"approved": "yes"});
                v["payload"] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&p).unwrap()).into();
            });
            let err = verify(JWS_MEDIA_TYPE, &tampered, &mock_target(), &a, now()).unwrap_err();
            assert!(matches!(err, NotationError::Integrity(_)), "{level}: {err}");
            let flipped = edit_jws(&read("envelopes/ca_valid_sig_env.json"), |v| {
                let mut sig = URL_SAFE_NO_PAD.decode(v["signature"].as_str().unwrap()).unwrap();
                sig[10] ^= 1;
                v["signature"] = URL_SAFE_NO_PAD.encode(sig).into();
            });
            let err = verify(JWS_MEDIA_TYPE, &flipped, &mock_target(), &a, now()).unwrap_err();
            assert!(err.to_string().starts_with("integrity: PS384 signature"), "{err}");
        }
    }

    #[test]
    fn wrong_trust_store_or_identity_fails_authenticity_unless_the_level_only_logs_it() {
        let env = read("envelopes/ca_valid_sig_env.json");
        let wrong_store = authority("wabbit-networks.io.crt", NOTARY_ID, Level::Strict);
        let err = verify(JWS_MEDIA_TYPE, &env, &mock_target(), &wrong_store, now()).unwrap_err();
        assert!(
            err.to_string().contains("no certificate of the signature's chain is in the trust store"),
            "{err}"
        );
        let wrong_id = authority(
            "NotationTestRoot.pem",
            "x509.subject: C=US, ST=WA, O=Notary, CN=someone else",
            Level::Permissive,
        );
        let err = verify(JWS_MEDIA_TYPE, &env, &mock_target(), &wrong_id, now()).unwrap_err();
        assert!(err.to_string().contains("is not a trusted identity"), "{err}");
        // audit only records authenticity.
        let audit = NotationAuthority { level: Level::Audit, ..wrong_store };
        let v = verify(JWS_MEDIA_TYPE, &env, &mock_target(), &audit, now()).unwrap();
        assert_eq!(result(&v, Check::Authenticity), CheckResult::FailedLogged);
        // A signing-authority store does not vouch for a notary.x509 signature.
        let sa = NotationAuthority {
            trust_store: store(TrustStoreKind::SigningAuthority, "NotationTestRoot.pem"),
            ..authority("NotationTestRoot.pem", NOTARY_ID, Level::Strict)
        };
        let err = verify(JWS_MEDIA_TYPE, &env, &mock_target(), &sa, now()).unwrap_err();
        assert!(err.to_string().contains("needs a ca trust store"), "{err}");
    }

    #[test]
    fn signing_authority_signatures_carry_an_authentic_signing_time() {
        let a = NotationAuthority {
            trust_store: store(TrustStoreKind::SigningAuthority, "NotationTestRoot.pem"),
            ..authority("NotationTestRoot.pem", NOTARY_ID, Level::Strict)
        };
        let v = verify(JWS_MEDIA_TYPE, &read("envelopes/sa_valid_sig_env.json"), &mock_target(), &a, now())
            .unwrap();
        assert_eq!(v.signing_time, Some("2020-11-09T07:00:00Z".parse().unwrap()));
        let ca = authority("NotationTestRoot.pem", NOTARY_ID, Level::Strict);
        let err =
            verify(JWS_MEDIA_TYPE, &read("envelopes/sa_valid_sig_env.json"), &mock_target(), &ca, now())
                .unwrap_err();
        assert!(err.to_string().contains("needs a signingAuthority trust store"), "{err}");
    }

    #[test]
    fn expired_signatures_are_refused_strictly_and_logged_permissively() {
        let env = read("envelopes/ca_expired_sig_env.json");
        let strict = authority("NotationTestRoot.pem", NOTARY_ID, Level::Strict);
        let err = verify(JWS_MEDIA_TYPE, &env, &mock_target(), &strict, now()).unwrap_err();
        assert_eq!(err, NotationError::Expired { expiry: "2022-07-29T23:59:00Z".parse().unwrap() });
        let permissive = NotationAuthority { level: Level::Permissive, ..strict.clone() };
        let v = verify(JWS_MEDIA_TYPE, &env, &mock_target(), &permissive, now()).unwrap();
        assert_eq!(result(&v, Check::Expiry), CheckResult::FailedLogged);
        // Before its expiry it verifies strictly.
        verify(JWS_MEDIA_TYPE, &env, &mock_target(), &strict, "2022-07-29T12:00:00Z".parse().unwrap())
            .unwrap();
    }

    #[test]
    fn the_payload_must_name_the_manifest_verified() {
        let a = authority("NotationTestRoot.pem", NOTARY_ID, Level::Audit);
        let env = read("envelopes/ca_valid_sig_env.json");
        let other_digest = ExpectedTarget { digest: Digest::sha256_of(b"other"), ..mock_target() };
        let err = verify(JWS_MEDIA_TYPE, &env, &other_digest, &a, now()).unwrap_err();
        assert!(matches!(err, NotationError::TargetMismatch { field: "digest", .. }), "{err}");
        let other_size = ExpectedTarget { size: 529, ..mock_target() };
        let err = verify(JWS_MEDIA_TYPE, &env, &other_size, &a, now()).unwrap_err();
        assert!(matches!(err, NotationError::TargetMismatch { field: "size", .. }), "{err}");
        let other_type = ExpectedTarget {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            ..mock_target()
        };
        let err = verify(JWS_MEDIA_TYPE, &env, &other_type, &a, now()).unwrap_err();
        assert!(matches!(err, NotationError::TargetMismatch { field: "mediaType", .. }), "{err}");
    }

    #[test]
    fn unknown_critical_headers_and_bad_envelopes_are_refused() {
        let a = authority("NotationTestRoot.pem", NOTARY_ID, Level::Audit);
        let env = read("envelopes/ca_valid_sig_env.json");
        let with_plugin = edit_jws(&env, |v| {
            let mut h: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(v["protected"].as_str().unwrap()).unwrap())
                    .unwrap();
            h["crit"].as_array_mut().unwrap().push("io.cncf.notary.verificationPlugin".into());
            h["io.cncf.notary.verificationPlugin"] = "some-plugin".into();
            v["protected"] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap()).into();
        });
        let err = verify(JWS_MEDIA_TYPE, &with_plugin, &mock_target(), &a, now()).unwrap_err();
        assert_eq!(err, NotationError::UnknownCriticalHeader("io.cncf.notary.verificationPlugin".into()));
        let not_critical = edit_jws(&env, |v| {
            let mut h: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(v["protected"].as_str().unwrap()).unwrap())
                    .unwrap();
            h["crit"] = serde_json::json!(["io.cncf.notary.signingScheme"]);
            v["protected"] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap()).into();
        });
        let err = verify(JWS_MEDIA_TYPE, &not_critical, &mock_target(), &a, now()).unwrap_err();
        assert!(err.to_string().contains("\"io.cncf.notary.expiry\" is not marked critical"), "{err}");
        for bad in [&b"{}"[..], b"not json", b"[]"] {
            let err = verify(JWS_MEDIA_TYPE, bad, &mock_target(), &a, now()).unwrap_err();
            assert!(matches!(err, NotationError::Malformed { .. }), "{err}");
        }
        let err = verify("application/json", &env, &mock_target(), &a, now()).unwrap_err();
        assert!(matches!(err, NotationError::UnsupportedMediaType(_)), "{err}");
    }

    /// A trust store holding the envelope's own (self-signed) signing certificate.
    fn own_leaf_store(media_type: &str, env: &[u8]) -> TrustStore {
        let der = parse_envelope(media_type, env).unwrap().certificates.remove(0);
        TrustStore::from_certificates(TrustStoreKind::Ca, vec![ParsedCert::from_der(&der).unwrap()]).unwrap()
    }

    #[test]
    fn timestamps_make_expired_certificates_acceptable() {
        let env = read("envelopes/jwsExpiredWithTimestamp.sig");
        let tsa = store(TrustStoreKind::Tsa, "tsa-globalsignRoot.pem");
        let with_tsa = NotationAuthority {
            trust_store: own_leaf_store(JWS_MEDIA_TYPE, &env),
            tsa_trust_store: Some(tsa.clone()),
            crls: CrlStore::default(),
            identities: vec![TrustedIdentity::Any],
            level: Level::Strict,
        };
        let v = verify(JWS_MEDIA_TYPE, &env, &timestamp_target(), &with_tsa, now()).unwrap();
        let t = v.signing_time.unwrap();
        let (from, to): (DateTime<Utc>, DateTime<Utc>) =
            ("2024-06-18T07:20:31Z".parse().unwrap(), "2024-06-18T07:30:31Z".parse().unwrap());
        assert!(t > from && t < to, "{t}");
        // Without a TSA store the timestamp is not used: the certificate expired long before now.
        let without_tsa = NotationAuthority { tsa_trust_store: None, ..with_tsa.clone() };
        let err = verify(JWS_MEDIA_TYPE, &env, &timestamp_target(), &without_tsa, now()).unwrap_err();
        assert!(matches!(err, NotationError::AuthenticTimestamp(_)), "{err}");
        // Nor does it verify with the timestamp removed.
        let stripped = edit_jws(&env, |v| {
            v["header"].as_object_mut().unwrap().remove("io.cncf.notary.timestampSignature");
        });
        let err = verify(JWS_MEDIA_TYPE, &stripped, &timestamp_target(), &with_tsa, now()).unwrap_err();
        assert!(err.to_string().contains("is not valid at"), "{err}");
        // A timestamp from a TSA outside the store does not count.
        let wrong_tsa = NotationAuthority {
            tsa_trust_store: Some(store(TrustStoreKind::Tsa, "GlobalSignRootCA.crt")),
            ..with_tsa
        };
        let err = verify(JWS_MEDIA_TYPE, &env, &timestamp_target(), &wrong_tsa, now()).unwrap_err();
        assert!(err.to_string().contains("timestamp countersignature"), "{err}");
    }

    #[test]
    fn a_valid_certificate_with_a_timestamp_verifies_against_the_upstream_trust_store() {
        let env = read("envelopes/jwsWithTimestamp.sig");
        let a = NotationAuthority {
            trust_store: store(TrustStoreKind::Ca, "TestTimestamp.crt"),
            tsa_trust_store: Some(store(TrustStoreKind::Tsa, "tsa-globalsignRoot.pem")),
            crls: CrlStore::default(),
            identities: vec!["x509.subject: C=US, ST=WA, O=Notary, CN=alpine".parse().unwrap()],
            level: Level::Strict,
        };
        let v = verify(JWS_MEDIA_TYPE, &env, &timestamp_target(), &a, now()).unwrap();
        assert!(v.signing_time.is_some());
        let plain = read("envelopes/withoutTimestamp.sig");
        let v = verify(JWS_MEDIA_TYPE, &plain, &timestamp_target(), &a, now()).unwrap();
        assert_eq!(v.signing_time, None);
    }

    #[test]
    fn upstream_cose_envelopes_verify_and_their_expired_certificates_need_the_timestamp() {
        let tsa = store(TrustStoreKind::Tsa, "tsa-globalsignRoot.pem");
        let env = read("envelopes/coseWithTimestamp.sig");
        let a = NotationAuthority {
            trust_store: store(TrustStoreKind::Ca, "TestTimestamp.crt"),
            tsa_trust_store: Some(tsa.clone()),
            crls: CrlStore::default(),
            identities: vec!["x509.subject: C=US, ST=WA, O=Notary, CN=alpine".parse().unwrap()],
            level: Level::Strict,
        };
        let v = verify(COSE_MEDIA_TYPE, &env, &timestamp_target(), &a, now()).unwrap();
        assert_eq!(v.subject, "CN=alpine,O=Notary,L=Seattle,ST=WA,C=US");
        assert!(v.signing_time.is_some(), "the timestamp verified");

        let expired = read("envelopes/coseExpiredWithTimestamp.sig");
        let with_tsa = NotationAuthority {
            trust_store: own_leaf_store(COSE_MEDIA_TYPE, &expired),
            tsa_trust_store: Some(tsa),
            crls: CrlStore::default(),
            identities: vec![TrustedIdentity::Any],
            level: Level::Strict,
        };
        verify(COSE_MEDIA_TYPE, &expired, &timestamp_target(), &with_tsa, now()).unwrap();
        let without_tsa = NotationAuthority { tsa_trust_store: None, ..with_tsa };
        let err = verify(COSE_MEDIA_TYPE, &expired, &timestamp_target(), &without_tsa, now()).unwrap_err();
        assert!(matches!(err, NotationError::AuthenticTimestamp(_)), "{err}");

        // notation-go's plain COSE signature of an OCI layout's manifest.
        let plain = read("envelopes/cose_signature.sig");
        let target = ExpectedTarget {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0"
                .parse()
                .unwrap(),
            size: 481,
        };
        let own = NotationAuthority {
            trust_store: own_leaf_store(COSE_MEDIA_TYPE, &plain),
            tsa_trust_store: None,
            crls: CrlStore::default(),
            identities: vec![TrustedIdentity::Any],
            level: Level::Strict,
        };
        verify(COSE_MEDIA_TYPE, &plain, &target, &own, now()).unwrap();
        // Its JWS twin verifies the same way.
        let jws = read("envelopes/jws_signature.sig");
        let own = NotationAuthority { trust_store: own_leaf_store(JWS_MEDIA_TYPE, &jws), ..own };
        verify(JWS_MEDIA_TYPE, &jws, &target, &own, now()).unwrap();
        // A flipped signature byte, a flipped payload byte, and bytes that are not COSE.
        let mut bad = plain.clone();
        let n = bad.len();
        bad[n - 5] ^= 1;
        let err = verify(COSE_MEDIA_TYPE, &bad, &target, &own_cose(&plain), now()).unwrap_err();
        assert!(matches!(err, NotationError::Integrity(_)), "{err}");
        let err = verify(COSE_MEDIA_TYPE, b"\xd2\x84", &target, &own_cose(&plain), now()).unwrap_err();
        assert!(matches!(err, NotationError::Malformed { .. }), "{err}");
        // The JWS envelope given as COSE is refused as malformed, not misread.
        let err = verify(COSE_MEDIA_TYPE, &jws, &target, &own_cose(&plain), now()).unwrap_err();
        assert!(matches!(err, NotationError::Malformed { .. }), "{err}");
    }

    fn own_cose(env: &[u8]) -> NotationAuthority {
        NotationAuthority {
            trust_store: own_leaf_store(COSE_MEDIA_TYPE, env),
            tsa_trust_store: None,
            crls: CrlStore::default(),
            identities: vec![TrustedIdentity::Any],
            level: Level::Strict,
        }
    }

    #[test]
    fn authority_fingerprints_change_with_every_input() {
        let a = authority("NotationTestRoot.pem", NOTARY_ID, Level::Strict);
        let fps = [
            a.fingerprint(),
            NotationAuthority { level: Level::Permissive, ..a.clone() }.fingerprint(),
            authority("wabbit-networks.io.crt", NOTARY_ID, Level::Strict).fingerprint(),
            authority("NotationTestRoot.pem", "*", Level::Strict).fingerprint(),
            NotationAuthority {
                tsa_trust_store: Some(store(TrustStoreKind::Tsa, "tsa-globalsignRoot.pem")),
                ..a.clone()
            }
            .fingerprint(),
            NotationAuthority { crls: own_pki().authority(Level::Strict, &[]).crls, ..a.clone() }
                .fingerprint(),
        ];
        for (i, x) in fps.iter().enumerate() {
            for y in &fps[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
    }

    /// A PKI of our own and a JWS its leaf signed for the mock target.
    struct OwnPki {
        pki: crate::notation::test_pki::TestPki,
        envelope: Vec<u8>,
    }

    fn own_pki() -> OwnPki {
        let pki = crate::notation::test_pki::TestPki::new("CN=own root,O=vouch-test,ST=WA,C=US");
        let envelope = sign_for_mock_target(&pki, None);
        OwnPki { pki, envelope }
    }

    /// A JWS by `pki`'s leaf over the mock target, signed a day before [`now`], expiring at `expiry`.
    fn sign_for_mock_target(
        pki: &crate::notation::test_pki::TestPki,
        expiry: Option<DateTime<Utc>>,
    ) -> Vec<u8> {
        let t = mock_target();
        let target = TargetArtifact {
            media_type: t.media_type,
            digest: t.digest.to_string(),
            size: t.size,
            annotations: Default::default(),
        };
        super::super::sign::sign_jws(
            &pki.leaf_key,
            &[pki.leaf.der.clone(), pki.root.der.clone()],
            &target,
            now() - chrono::Duration::days(1),
            expiry,
        )
    }

    impl OwnPki {
        fn authority(&self, level: Level, revoked: &[&ParsedCert]) -> NotationAuthority {
            use super::super::sign::{sign_crl, CrlEntry};
            let entries: Vec<CrlEntry> = revoked
                .iter()
                .map(|c| CrlEntry {
                    serial: c.cert.tbs_certificate.serial_number.clone(),
                    revoked_at: now() - chrono::Duration::hours(1),
                    reason: Some(x509_cert::ext::pkix::CrlReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect();
            let crl = sign_crl(
                &self.pki.root_key,
                &self.pki.root.cert.tbs_certificate.subject,
                now() - chrono::Duration::days(1),
                Some(now() + chrono::Duration::days(1)),
                &entries,
            )
            .unwrap();
            NotationAuthority {
                trust_store: self.pki.store(),
                tsa_trust_store: None,
                crls: CrlStore::from_bytes(&crl).unwrap(),
                identities: vec![TrustedIdentity::Any],
                level,
            }
        }
    }

    fn revocation(v: &VerifiedNotation) -> &CheckOutcome {
        v.checks.iter().find(|c| c.check == Check::Revocation).unwrap()
    }

    #[test]
    fn a_revoked_signing_certificate_is_refused_strictly_and_logged_by_permissive_and_audit() {
        let pki = own_pki();
        let v =
            verify(JWS_MEDIA_TYPE, &pki.envelope, &mock_target(), &pki.authority(Level::Strict, &[]), now())
                .unwrap();
        let r = revocation(&v);
        assert_eq!(r.result, CheckResult::Passed);
        assert_eq!(
            r.reason.as_deref(),
            Some("checked against the CRL from CN=own root,O=vouch-test,ST=WA,C=US, not revoked")
        );
        let err = verify(
            JWS_MEDIA_TYPE,
            &pki.envelope,
            &mock_target(),
            &pki.authority(Level::Strict, &[&pki.pki.leaf]),
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, NotationError::Revocation(_)), "{err}");
        assert!(
            err.to_string()
                .contains("is revoked: revoked at 2025-12-31T23:00:00+00:00 (reason keyCompromise)"),
            "{err}"
        );
        for level in [Level::Permissive, Level::Audit] {
            let v = verify(
                JWS_MEDIA_TYPE,
                &pki.envelope,
                &mock_target(),
                &pki.authority(level, &[&pki.pki.leaf]),
                now(),
            )
            .unwrap();
            let r = revocation(&v);
            assert_eq!(r.result, CheckResult::FailedLogged, "{level}");
            assert!(r.reason.as_deref().unwrap_or_default().contains("is revoked"), "{level}: {r:?}");
        }
        // Without CRLs the check is recorded as not made, with the reason.
        let none = NotationAuthority { crls: CrlStore::default(), ..pki.authority(Level::Strict, &[]) };
        let v = verify(JWS_MEDIA_TYPE, &pki.envelope, &mock_target(), &none, now()).unwrap();
        assert_eq!(revocation(&v).result, CheckResult::Skipped);
        assert_eq!(revocation(&v).reason.as_deref(), Some(REVOCATION_NOT_CHECKED));
    }

    #[test]
    fn a_verification_holds_until_the_first_moment_a_check_could_end_otherwise() {
        let pki = own_pki();
        let day = chrono::Duration::days(1);
        let certificates_end: DateTime<Utc> = "2033-05-18T03:33:20Z".parse().unwrap(); // 2e9 s
                                                                                       // Checked at now (no authentic signing time): until the chain's certificates expire.
        let no_crls = NotationAuthority { crls: CrlStore::default(), ..pki.authority(Level::Strict, &[]) };
        let v = verify(JWS_MEDIA_TYPE, &pki.envelope, &mock_target(), &no_crls, now()).unwrap();
        assert_eq!(v.valid_until, Some(certificates_end));
        // With a CRL: until its nextUpdate.
        let v =
            verify(JWS_MEDIA_TYPE, &pki.envelope, &mock_target(), &pki.authority(Level::Strict, &[]), now())
                .unwrap();
        assert_eq!(v.valid_until, Some(now() + day));
        // A CRL that becomes current later counts from its thisUpdate.
        let later = super::super::sign::sign_crl(
            &pki.pki.root_key,
            &pki.pki.root.cert.tbs_certificate.subject,
            now() + chrono::Duration::hours(2),
            Some(now() + day * 2),
            &[],
        )
        .unwrap();
        let mut crls = pki.authority(Level::Strict, &[]).crls;
        crls.add_bytes(&later).unwrap();
        let both = NotationAuthority { crls, ..pki.authority(Level::Strict, &[]) };
        let v = verify(JWS_MEDIA_TYPE, &pki.envelope, &mock_target(), &both, now()).unwrap();
        assert_eq!(v.valid_until, Some(now() + chrono::Duration::hours(2)));
        // A signature expiring sooner: until its expiry.
        let expiry = now() + chrono::Duration::minutes(3);
        let expiring = sign_for_mock_target(&pki.pki, Some(expiry));
        let v = verify(JWS_MEDIA_TYPE, &expiring, &mock_target(), &pki.authority(Level::Strict, &[]), now())
            .unwrap();
        assert_eq!(v.valid_until, Some(expiry));
        // What has already passed stays passed: an expired signature an audit level admits holds as long as
        // the rest does.
        let audit = pki.authority(Level::Audit, &[]);
        let v = verify(JWS_MEDIA_TYPE, &expiring, &mock_target(), &audit, expiry + day / 2).unwrap();
        assert_eq!(result(&v, Check::Expiry), CheckResult::FailedLogged);
        assert_eq!(v.valid_until, Some(now() + day));
        // Certificates checked at a verified timestamp, not now, and no CRLs: nothing ends it.
        let env = read("envelopes/jwsWithTimestamp.sig");
        let stamped = NotationAuthority {
            trust_store: store(TrustStoreKind::Ca, "TestTimestamp.crt"),
            tsa_trust_store: Some(store(TrustStoreKind::Tsa, "tsa-globalsignRoot.pem")),
            crls: CrlStore::default(),
            identities: vec![TrustedIdentity::Any],
            level: Level::Strict,
        };
        let v = verify(JWS_MEDIA_TYPE, &env, &timestamp_target(), &stamped, now()).unwrap();
        assert!(v.signing_time.is_some());
        assert_eq!(v.valid_until, None);
    }

    #[test]
    fn a_tsa_chain_whose_crl_cannot_be_used_makes_the_timestamp_fail() {
        use super::super::sign::sign_crl;
        let env = read("envelopes/jwsWithTimestamp.sig");
        let token = parse_envelope(JWS_MEDIA_TYPE, &env).unwrap().timestamp.unwrap();
        let signer = timestamp::embedded_certificates(&token)
            .unwrap()
            .into_iter()
            .find(|c| !c.is_ca())
            .expect("the TSA signer is embedded");
        // A CRL naming the TSA signer's issuer, signed by a key that is not the issuer's.
        let forged = sign_crl(
            &crate::keys::SigningKey::generate(),
            &signer.cert.tbs_certificate.issuer,
            now() - chrono::Duration::days(1),
            Some(now() + chrono::Duration::days(1)),
            &[],
        )
        .unwrap();
        let a = NotationAuthority {
            trust_store: store(TrustStoreKind::Ca, "TestTimestamp.crt"),
            tsa_trust_store: Some(store(TrustStoreKind::Tsa, "tsa-globalsignRoot.pem")),
            crls: CrlStore::from_bytes(&forged).unwrap(),
            identities: vec![TrustedIdentity::Any],
            level: Level::Strict,
        };
        let err = verify(JWS_MEDIA_TYPE, &env, &timestamp_target(), &a, now()).unwrap_err();
        assert!(matches!(err, NotationError::AuthenticTimestamp(_)), "{err}");
        assert!(err.to_string().contains("TSA revocation: revocation unavailable"), "{err}");
        // The same CRLs without the TSA store: no timestamp is used, and the self-signed leaf has nothing a
        // CRL could revoke.
        let plain = NotationAuthority { tsa_trust_store: None, ..a };
        let v = verify(
            JWS_MEDIA_TYPE,
            &read("envelopes/withoutTimestamp.sig"),
            &timestamp_target(),
            &plain,
            now(),
        )
        .unwrap();
        assert_eq!(revocation(&v).result, CheckResult::Skipped, "{:?}", revocation(&v));
    }
}
