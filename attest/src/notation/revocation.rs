//! Revocation from CRLs the authority carries. vouch reaches no OCSP responder and downloads no CRL, so a
//! certificate is checked only against CRLs given as files (`authorities[].notation.crls`,
//! `vouch verify --notation-crl`); a certificate whose issuer has no CRL there is *not checked*, and the
//! finding says so — never "passed".
//!
//! What is checked follows the Notary Project trust policy specification
//! (`specs/trust-store-trust-policy.md`, "Certificate Revocation Evaluation" and "Revocation Checking with
//! CRL"):
//! - every certificate of the chain except the self-issued root (a root is never revoked by a CRL);
//! - a CRL counts for a certificate when its issuer is the certificate's issuer, its signature verifies
//!   under the issuing certificate's key (which must allow `cRLSign`) and it is current (`thisUpdate` ≤ now
//!   ≤ `nextUpdate`; a CRL without `nextUpdate` is not current);
//! - the serial listed means revoked, except that with an authentic signing time (a verified timestamp or
//!   a signing authority's) before the entry's `invalidityDate` the signature was made before the key was
//!   compromised and the certificate counts as not revoked; `certificateHold` counts as revoked;
//! - a CRL that is out of date but lists the serial for a reason other than `certificateHold` still
//!   revokes it (the specification's rule for expired CRLs);
//! - a CRL given for the issuer that cannot be used (wrong signer, out of date, not yet valid) makes the
//!   status "revocation unavailable", which the specification treats as a failure of the check.
//!
//! Delta CRLs and partial CRLs (`onlySomeReasons`, indirect CRLs, attribute-certificate CRLs) are refused
//! when the CRLs are loaded: a full CRL from the issuing CA is needed.

use chrono::{DateTime, Utc};
use const_oid::db::rfc5280;
use der::asn1::GeneralizedTime;
use der::Decode;
use x509_cert::crl::{CertificateList, RevokedCert};
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::{CrlReason, KeyUsages};
use x509_cert::time::Time;

use super::trust::TrustStore;
use super::NotationError;
use crate::digest::Digest;
use crate::keys::pem_decode_all;
use crate::sigstore_verify::certificate::{tbs_bytes, verify_signature, ParsedCert};

/// Most CRLs one authority carries.
pub const MAX_CRLS: usize = 64;

/// CRL extensions vouch understands (and which may therefore be critical).
const UNDERSTOOD_CRL_EXTENSIONS: [const_oid::ObjectIdentifier; 3] = [
    rfc5280::ID_CE_ISSUING_DISTRIBUTION_POINT,
    rfc5280::ID_CE_CRL_NUMBER,
    rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
];

/// Which certificates a CRL speaks about (its issuing distribution point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    EndEntitiesOnly,
    CasOnly,
}

/// One parsed CRL, kept with its DER (its signature is over the TBS bytes).
#[derive(Debug, Clone)]
pub struct Crl {
    list: CertificateList,
    der: Vec<u8>,
    scope: Scope,
}

impl Crl {
    /// Parse a DER CRL; delta, partial and indirect CRLs and unknown critical extensions are refused.
    pub fn from_der(der: &[u8]) -> Result<Self, NotationError> {
        let bad = |why: String| NotationError::Config(format!("CRL: {why}"));
        let list = CertificateList::from_der(der).map_err(|e| bad(format!("not a DER CRL: {e}")))?;
        let tbs = &list.tbs_cert_list;
        let issuer = tbs.issuer.to_string();
        let mut scope = Scope::All;
        for e in tbs.crl_extensions.iter().flatten() {
            if e.extn_id == rfc5280::ID_CE_DELTA_CRL_INDICATOR {
                return Err(bad(format!("the CRL from {issuer} is a delta CRL; give the full CRL")));
            }
            if e.extn_id == rfc5280::ID_CE_ISSUING_DISTRIBUTION_POINT {
                let idp = IssuingDistributionPoint::from_der(e.extn_value.as_bytes())
                    .map_err(|err| bad(format!("the CRL from {issuer}: issuingDistributionPoint: {err}")))?;
                if idp.only_some_reasons.is_some() || idp.indirect_crl || idp.only_contains_attribute_certs {
                    return Err(bad(format!(
                        "the CRL from {issuer} is partial or indirect (issuingDistributionPoint); give the full CRL"
                    )));
                }
                scope = match (idp.only_contains_user_certs, idp.only_contains_ca_certs) {
                    (true, false) => Scope::EndEntitiesOnly,
                    (false, true) => Scope::CasOnly,
                    (false, false) => Scope::All,
                    (true, true) => {
                        return Err(bad(format!(
                            "the CRL from {issuer} is for user and CA certificates only"
                        )))
                    }
                };
            } else if e.critical && !UNDERSTOOD_CRL_EXTENSIONS.contains(&e.extn_id) {
                return Err(bad(format!(
                    "the CRL from {issuer} has an unknown critical extension {}",
                    e.extn_id
                )));
            }
        }
        Ok(Self { list, der: der.to_vec(), scope })
    }

    /// The issuer's name (RFC 4514).
    pub fn issuer(&self) -> String {
        self.list.tbs_cert_list.issuer.to_string()
    }

    fn this_update(&self) -> DateTime<Utc> {
        to_chrono(self.list.tbs_cert_list.this_update)
    }

    fn next_update(&self) -> Option<DateTime<Utc>> {
        self.list.tbs_cert_list.next_update.map(to_chrono)
    }

    /// Whether `issuer` signed this CRL and may sign CRLs.
    fn check_signed_by(&self, issuer: &ParsedCert) -> Result<(), String> {
        if self.list.tbs_cert_list.signature != self.list.signature_algorithm {
            return Err("its signatureAlgorithm differs from the algorithm inside the signed list".into());
        }
        issuer.check_key_usage(KeyUsages::CRLSign, "cRLSign").map_err(|e| e.to_string())?;
        let tbs = tbs_bytes(&self.der).map_err(|e| e.to_string())?;
        let sig = self.list.signature.as_bytes().ok_or("its signature is not a whole number of bytes")?;
        let key = issuer.public_key().map_err(|e| e.to_string())?;
        verify_signature(&key, &self.list.signature_algorithm.oid, tbs, sig)
            .map_err(|e| format!("its signature does not verify with {}'s key: {e}", issuer.subject()))
    }

    fn covers(&self, cert: &ParsedCert) -> bool {
        match self.scope {
            Scope::All => true,
            Scope::EndEntitiesOnly => !cert.is_ca(),
            Scope::CasOnly => cert.is_ca(),
        }
    }

    fn entry(&self, cert: &ParsedCert) -> Option<&RevokedCert> {
        let serial = &cert.cert.tbs_certificate.serial_number;
        self.list.tbs_cert_list.revoked_certificates.iter().flatten().find(|r| r.serial_number == *serial)
    }
}

/// The CRLs an authority carries (possibly none: then revocation is not checked).
#[derive(Debug, Clone, Default)]
pub struct CrlStore {
    crls: Vec<Crl>,
}

impl CrlStore {
    /// CRLs from `bytes`: PEM text of one or more `X509 CRL` blocks, or one DER CRL.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NotationError> {
        let mut store = Self::default();
        store.add_bytes(bytes)?;
        Ok(store)
    }

    /// Add the CRLs in `bytes` (as [`CrlStore::from_bytes`] reads them).
    pub fn add_bytes(&mut self, bytes: &[u8]) -> Result<(), NotationError> {
        match std::str::from_utf8(bytes) {
            Ok(text) if text.contains("-----BEGIN") => {
                let blocks =
                    pem_decode_all(text).map_err(|e| NotationError::Config(format!("CRL PEM: {e}")))?;
                if blocks.is_empty() {
                    return Err(NotationError::Config("CRL PEM holds no X509 CRL block".into()));
                }
                for (label, der) in blocks {
                    if label != "X509 CRL" {
                        return Err(NotationError::Config(format!(
                            "CRL PEM holds a {label:?} block; only X509 CRL blocks are CRLs"
                        )));
                    }
                    self.push(Crl::from_der(&der)?)?;
                }
                Ok(())
            }
            _ => self.push(Crl::from_der(bytes)?),
        }
    }

    fn push(&mut self, crl: Crl) -> Result<(), NotationError> {
        if self.crls.len() >= MAX_CRLS {
            return Err(NotationError::Config(format!("more than {MAX_CRLS} CRLs for one authority")));
        }
        self.crls.push(crl);
        Ok(())
    }

    /// Whether no CRL was given.
    pub fn is_empty(&self) -> bool {
        self.crls.is_empty()
    }

    /// The CRLs.
    pub fn crls(&self) -> &[Crl] {
        &self.crls
    }

    /// The first moment after `now` at which a CRL for an issuer in `chain` becomes current
    /// (`thisUpdate`) or goes out of date (`nextUpdate`): until then a revocation check of `chain` at a
    /// later time ends as it did at `now`. `None` when no such CRL changes in the future.
    pub fn next_change(&self, chain: &[ParsedCert], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.crls
            .iter()
            .filter(|crl| {
                chain.iter().any(|c| c.cert.tbs_certificate.issuer == crl.list.tbs_cert_list.issuer)
            })
            .flat_map(|crl| [Some(crl.this_update()), crl.next_update()])
            .flatten()
            .filter(|t| *t > now)
            .min()
    }

    /// A stable name for cache keys: the SHA-256 of each CRL, sorted (empty when there is none).
    pub fn fingerprint(&self) -> String {
        let mut crls: Vec<String> = self.crls.iter().map(|c| Digest::sha256_of(&c.der).to_string()).collect();
        crls.sort();
        crls.dedup();
        crls.join(",")
    }
}

/// How the revocation check of a chain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Every certificate that can be revoked was checked against a current CRL of its issuer: none is.
    NotRevoked {
        /// What was checked, for the finding: `checked against the CRL from <issuer>, not revoked; …`.
        detail: String,
    },
    /// Not every certificate could be checked (no CRL for its issuer), and none checked is revoked.
    NotChecked {
        /// Which issuers had no CRL, and what was checked.
        reason: String,
    },
    /// A certificate is revoked, or a CRL given for its issuer cannot be used (revocation unavailable).
    Failed(NotationError),
}

/// One certificate's status.
enum Status {
    NotRevoked { issuer: String },
    NoCrl { issuer: String },
    Revoked(String),
    Unavailable(String),
}

/// Check `chain` (leaf first) against `crls` at `now`; `signing_time` is the authentic signing time, if one
/// was established. An issuer outside the chain is looked up in `trust_store` by name.
pub fn check_chain(
    chain: &[ParsedCert],
    trust_store: &TrustStore,
    crls: &CrlStore,
    signing_time: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Revocation {
    if crls.is_empty() {
        return Revocation::NotChecked { reason: super::verify::REVOCATION_NOT_CHECKED.into() };
    }
    // The specification walks from the root to the leaf; the first failure found that way is reported.
    let statuses: Vec<Status> = chain
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, cert)| !cert.is_self_issued())
        .map(|(i, cert)| {
            let issuer_name = &cert.cert.tbs_certificate.issuer;
            let issuer =
                chain.get(i + 1).filter(|c| c.cert.tbs_certificate.subject == *issuer_name).or_else(|| {
                    trust_store.certificates().iter().find(|c| c.cert.tbs_certificate.subject == *issuer_name)
                });
            certificate_status(cert, issuer, crls, signing_time, now)
        })
        .collect();
    if let Some(failure) = statuses.iter().find_map(|s| match s {
        Status::Revoked(why) => Some(why),
        _ => None,
    }) {
        return Revocation::Failed(NotationError::Revocation(failure.clone()));
    }
    if let Some(failure) = statuses.iter().find_map(|s| match s {
        Status::Unavailable(why) => Some(why),
        _ => None,
    }) {
        return Revocation::Failed(NotationError::Revocation(failure.clone()));
    }
    let mut checked: Vec<&str> = Vec::new();
    let mut missing: Vec<&str> = Vec::new();
    for s in &statuses {
        match s {
            Status::NotRevoked { issuer } if !checked.contains(&issuer.as_str()) => checked.push(issuer),
            Status::NoCrl { issuer } if !missing.contains(&issuer.as_str()) => missing.push(issuer),
            _ => {}
        }
    }
    let checked_text = checked
        .iter()
        .map(|i| format!("checked against the CRL from {i}, not revoked"))
        .collect::<Vec<_>>()
        .join("; ");
    if missing.is_empty() {
        if checked.is_empty() {
            // Only a self-issued certificate: nothing a CRL could revoke.
            return Revocation::NotChecked {
                reason: "the chain is a single self-issued certificate, which no CRL can revoke".into(),
            };
        }
        return Revocation::NotRevoked { detail: checked_text };
    }
    let missing_text = missing.iter().map(|i| format!("no CRL for {i}")).collect::<Vec<_>>().join("; ");
    let reason = if checked.is_empty() { missing_text } else { format!("{missing_text} ({checked_text})") };
    Revocation::NotChecked { reason }
}

fn certificate_status(
    cert: &ParsedCert,
    issuer: Option<&ParsedCert>,
    crls: &CrlStore,
    signing_time: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Status {
    let issuer_name = cert.cert.tbs_certificate.issuer.to_string();
    let subject = cert.subject();
    let candidates: Vec<&Crl> = crls
        .crls()
        .iter()
        .filter(|c| c.list.tbs_cert_list.issuer == cert.cert.tbs_certificate.issuer && c.covers(cert))
        .collect();
    if candidates.is_empty() {
        return Status::NoCrl { issuer: issuer_name };
    }
    let Some(issuer) = issuer else {
        return Status::Unavailable(format!(
            "revocation unavailable for {subject}: the certificate of its issuer {issuer_name}, which a CRL is \
             needed to verify, is neither in the chain nor in the trust store"
        ));
    };
    let mut unusable = Vec::new();
    let mut current = false;
    for crl in candidates {
        if let Err(why) = crl.check_signed_by(issuer) {
            unusable.push(format!("a CRL naming {issuer_name} is not trusted: {why}"));
            continue;
        }
        let up_to_date = match crl.next_update() {
            _ if crl.this_update() > now => {
                Err(format!("the CRL from {issuer_name} is not valid before {}", crl.this_update()))
            }
            None => Err(format!("the CRL from {issuer_name} has no nextUpdate, so it is never current")),
            Some(next) if now > next => {
                Err(format!("the CRL from {issuer_name} is out of date (its nextUpdate {next} has passed)"))
            }
            Some(_) => Ok(()),
        };
        if let Some(entry) = crl.entry(cert) {
            match revoked_by(entry, signing_time) {
                Ok(Some(how)) if up_to_date.is_ok() || how.reason != Some(CrlReason::CertificateHold) => {
                    return Status::Revoked(format!(
                        "certificate {subject} (serial {}) is revoked: {how} according to the CRL from {issuer_name}",
                        cert.cert.tbs_certificate.serial_number
                    ));
                }
                Ok(_) => {}
                Err(why) => {
                    unusable.push(format!("the CRL from {issuer_name} lists {subject} with {why}"));
                    continue;
                }
            }
        }
        match up_to_date {
            Ok(()) => current = true,
            Err(why) => unusable.push(why),
        }
    }
    if current {
        return Status::NotRevoked { issuer: issuer_name };
    }
    Status::Unavailable(format!("revocation unavailable for {subject}: {}", unusable.join("; ")))
}

/// How an entry revokes.
struct Revoked {
    at: DateTime<Utc>,
    reason: Option<CrlReason>,
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "revoked at {}", self.at.to_rfc3339())?;
        match self.reason {
            Some(CrlReason::CertificateHold) => f.write_str(" (on hold)"),
            Some(r) => write!(f, " (reason {})", reason_name(r)),
            None => Ok(()),
        }
    }
}

/// Whether a listed entry revokes: `None` when the signature was made (authentically) before the entry's
/// invalidity date, or the entry only takes a certificate off hold; an error for an entry that cannot be
/// read (an unknown critical entry extension).
fn revoked_by(entry: &RevokedCert, signing_time: Option<DateTime<Utc>>) -> Result<Option<Revoked>, String> {
    let mut reason = None;
    let mut invalidity = None;
    for e in entry.crl_entry_extensions.iter().flatten() {
        if e.extn_id == rfc5280::ID_CE_CRL_REASONS {
            reason = Some(
                CrlReason::from_der(e.extn_value.as_bytes())
                    .map_err(|err| format!("a bad reasonCode: {err}"))?,
            );
        } else if e.extn_id == rfc5280::ID_CE_INVALIDITY_DATE {
            let t = GeneralizedTime::from_der(e.extn_value.as_bytes())
                .map_err(|err| format!("a bad invalidityDate: {err}"))?;
            invalidity = Some(to_chrono(Time::GeneralTime(t)));
        } else if e.critical {
            return Err(format!("an unknown critical entry extension {}", e.extn_id));
        }
    }
    if reason == Some(CrlReason::RemoveFromCRL) {
        return Ok(None);
    }
    // "If the invalidity date is before the timestamping date, the certificate is considered revoked":
    // signed (authentically) before the invalidity date, the signature stands.
    if let (Some(signed), Some(invalid)) = (signing_time, invalidity) {
        if signed < invalid {
            return Ok(None);
        }
    }
    Ok(Some(Revoked { at: to_chrono(entry.revocation_date), reason }))
}

fn reason_name(r: CrlReason) -> &'static str {
    match r {
        CrlReason::Unspecified => "unspecified",
        CrlReason::KeyCompromise => "keyCompromise",
        CrlReason::CaCompromise => "cACompromise",
        CrlReason::AffiliationChanged => "affiliationChanged",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessationOfOperation",
        CrlReason::CertificateHold => "certificateHold",
        CrlReason::RemoveFromCRL => "removeFromCRL",
        CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        CrlReason::AaCompromise => "aACompromise",
    }
}

fn to_chrono(t: Time) -> DateTime<Utc> {
    let secs = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Encode `t` as X.509 does (UTCTime before 2050, GeneralizedTime after).
pub(crate) fn x509_time(t: DateTime<Utc>) -> Result<Time, der::Error> {
    let since = std::time::Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0));
    if t.timestamp() < 2_524_608_000 {
        Ok(Time::UtcTime(der::asn1::UtcTime::from_unix_duration(since)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_unix_duration(since)?))
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use der::Encode as _;

    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;

    use super::*;
    use crate::keys::SigningKey;
    use crate::notation::sign::{sign_crl, CrlEntry};
    use crate::notation::test_pki::TestPki;
    use crate::sigstore_verify::testutil::at;

    const ROOT: &str = "CN=crl test root,O=vouch-test,ST=WA,C=US";

    /// What these tests ask of their PKI (made with the root [`ROOT`]).
    impl TestPki {
        /// A CRL from the root signed by `key`, valid over [this, next], listing `entries`.
        fn crl(&self, key: &SigningKey, this: i64, next: Option<i64>, entries: &[CrlEntry]) -> CrlStore {
            let der = sign_crl(key, &Name::from_str(ROOT).unwrap(), at(this), next.map(at), entries).unwrap();
            CrlStore::from_bytes(&der).unwrap()
        }

        fn leaf_entry(&self, reason: Option<CrlReason>, invalidity: Option<i64>) -> CrlEntry {
            CrlEntry {
                serial: self.leaf.cert.tbs_certificate.serial_number.clone(),
                revoked_at: at(1_600_000_000),
                reason,
                invalidity_date: invalidity.map(at),
            }
        }

        fn check(&self, crls: &CrlStore, signing_time: Option<i64>) -> Revocation {
            check_chain(&self.chain(), &self.store(), crls, signing_time.map(at), at(NOW))
        }
    }

    const NOW: i64 = 1_700_000_000;
    const DAY: i64 = 86_400;

    fn failure(r: Revocation) -> String {
        match r {
            Revocation::Failed(e) => e.to_string(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_current_crl_of_the_issuer_not_listing_the_leaf_passes_and_says_what_it_checked() {
        let pki = TestPki::new(ROOT);
        let other = CrlEntry {
            serial: SerialNumber::new(&[9]).unwrap(),
            revoked_at: at(NOW - DAY),
            reason: None,
            invalidity_date: None,
        };
        let r = pki.check(&pki.crl(&pki.root_key, NOW - DAY, Some(NOW + DAY), &[other]), None);
        assert_eq!(
            r,
            Revocation::NotRevoked { detail: format!("checked against the CRL from {ROOT}, not revoked") }
        );
    }

    #[test]
    fn the_next_change_is_the_first_future_this_or_next_update_of_the_chains_issuers() {
        let pki = TestPki::new(ROOT);
        let chain = pki.chain();
        let mut crls = pki.crl(&pki.root_key, NOW - DAY, Some(NOW + 3 * DAY), &[]);
        assert_eq!(crls.next_change(&chain, at(NOW)), Some(at(NOW + 3 * DAY)));
        // A CRL current from tomorrow: its thisUpdate comes first.
        let tomorrow =
            sign_crl(&pki.root_key, &Name::from_str(ROOT).unwrap(), at(NOW + DAY), None, &[]).unwrap();
        crls.add_bytes(&tomorrow).unwrap();
        assert_eq!(crls.next_change(&chain, at(NOW)), Some(at(NOW + DAY)));
        // Past moments do not count, nor do CRLs of issuers outside the chain.
        assert_eq!(crls.next_change(&chain, at(NOW + 2 * DAY)), Some(at(NOW + 3 * DAY)));
        assert_eq!(crls.next_change(&chain, at(NOW + 4 * DAY)), None);
        let other = TestPki::new("CN=another root,O=vouch-test,ST=WA,C=US");
        assert_eq!(crls.next_change(&other.chain(), at(NOW)), None);
    }

    #[test]
    fn a_listed_leaf_is_revoked_with_time_and_reason() {
        let pki = TestPki::new(ROOT);
        let entry = pki.leaf_entry(Some(CrlReason::KeyCompromise), None);
        let err = failure(pki.check(&pki.crl(&pki.root_key, NOW - DAY, Some(NOW + DAY), &[entry]), None));
        assert!(err.starts_with("revocation: certificate CN=release"), "{err}");
        assert!(
            err.contains(
                "(serial 07) is revoked: revoked at 2020-09-13T12:26:40+00:00 (reason keyCompromise)"
            ),
            "{err}"
        );
        assert!(err.contains(&format!("according to the CRL from {ROOT}")), "{err}");
        // On hold counts as revoked; taken off hold does not.
        let hold = pki.leaf_entry(Some(CrlReason::CertificateHold), None);
        let err = failure(pki.check(&pki.crl(&pki.root_key, NOW - DAY, Some(NOW + DAY), &[hold]), None));
        assert!(err.contains("(on hold)"), "{err}");
        let removed = pki.leaf_entry(Some(CrlReason::RemoveFromCRL), None);
        let r = pki.check(&pki.crl(&pki.root_key, NOW - DAY, Some(NOW + DAY), &[removed]), None);
        assert!(matches!(r, Revocation::NotRevoked { .. }), "{r:?}");
    }

    #[test]
    fn an_authentic_signing_time_before_the_invalidity_date_keeps_the_signature() {
        let pki = TestPki::new(ROOT);
        let entry = pki.leaf_entry(Some(CrlReason::KeyCompromise), Some(NOW - 10 * DAY));
        let crls = pki.crl(&pki.root_key, NOW - DAY, Some(NOW + DAY), &[entry]);
        let r = pki.check(&crls, Some(NOW - 20 * DAY));
        assert!(matches!(r, Revocation::NotRevoked { .. }), "signed before the compromise: {r:?}");
        failure(pki.check(&crls, Some(NOW - 5 * DAY)));
        // Without an authentic signing time the invalidity date cannot help.
        failure(pki.check(&crls, None));
    }

    #[test]
    fn a_crl_signed_by_another_key_is_not_trusted() {
        let pki = TestPki::new(ROOT);
        let forged = pki.crl(&SigningKey::generate(), NOW - DAY, Some(NOW + DAY), &[]);
        let err = failure(pki.check(&forged, None));
        assert!(err.contains("revocation unavailable for CN=release"), "{err}");
        assert!(err.contains("is not trusted: its signature does not verify"), "{err}");
        // Nor does a forged CRL listing the leaf count as its revocation: it is unavailable all the same.
        let forged =
            pki.crl(&SigningKey::generate(), NOW - DAY, Some(NOW + DAY), &[pki.leaf_entry(None, None)]);
        assert!(failure(pki.check(&forged, None)).contains("revocation unavailable"));
    }

    #[test]
    fn an_out_of_date_crl_is_not_passed_but_still_revokes_what_it_lists() {
        let pki = TestPki::new(ROOT);
        let stale = pki.crl(&pki.root_key, NOW - 10 * DAY, Some(NOW - DAY), &[]);
        let err = failure(pki.check(&stale, None));
        assert!(err.contains("is out of date (its nextUpdate"), "{err}");
        let future = pki.crl(&pki.root_key, NOW + DAY, Some(NOW + 2 * DAY), &[]);
        assert!(failure(pki.check(&future, None)).contains("is not valid before"));
        let no_next = pki.crl(&pki.root_key, NOW - DAY, None, &[]);
        assert!(failure(pki.check(&no_next, None)).contains("has no nextUpdate"));
        // Listed for a reason other than certificateHold: revoked even though the CRL is out of date.
        let stale_listing =
            pki.crl(&pki.root_key, NOW - 10 * DAY, Some(NOW - DAY), &[pki.leaf_entry(None, None)]);
        assert!(failure(pki.check(&stale_listing, None)).contains("is revoked"));
        let stale_hold = pki.crl(
            &pki.root_key,
            NOW - 10 * DAY,
            Some(NOW - DAY),
            &[pki.leaf_entry(Some(CrlReason::CertificateHold), None)],
        );
        assert!(failure(pki.check(&stale_hold, None)).contains("revocation unavailable"));
    }

    #[test]
    fn no_crl_for_the_issuer_is_not_checked_and_says_whose_crl_is_missing() {
        let pki = TestPki::new(ROOT);
        let r = pki.check(&CrlStore::default(), None);
        assert_eq!(r, Revocation::NotChecked { reason: super::super::verify::REVOCATION_NOT_CHECKED.into() });
        let other = TestPki::new(ROOT);
        let other_root_crl = {
            let name = Name::from_str("CN=another root,O=vouch-test,ST=WA,C=US").unwrap();
            CrlStore::from_bytes(
                &sign_crl(&other.root_key, &name, at(NOW - DAY), Some(at(NOW + DAY)), &[]).unwrap(),
            )
            .unwrap()
        };
        let r = pki.check(&other_root_crl, None);
        assert_eq!(r, Revocation::NotChecked { reason: format!("no CRL for {ROOT}") });
    }

    #[test]
    fn crl_files_that_cannot_be_used_are_refused_when_loaded() {
        let pki = TestPki::new(ROOT);
        let der = sign_crl(&pki.root_key, &Name::from_str(ROOT).unwrap(), at(NOW), Some(at(NOW + DAY)), &[])
            .unwrap();
        let pem = crate::keys::pem_encode("X509 CRL", &der);
        assert_eq!(CrlStore::from_bytes(format!("{pem}{pem}").as_bytes()).unwrap().crls().len(), 2);
        for (bad, expected) in [
            (b"garbage".to_vec(), "not a DER CRL"),
            (crate::keys::pem_encode("CERTIFICATE", &pki.root.der).into_bytes(), "only X509 CRL blocks"),
            (b"-----BEGIN nothing".to_vec(), "CRL PEM"),
        ] {
            let err = CrlStore::from_bytes(&bad).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        // A delta CRL.
        let mut list = CertificateList::from_der(&der).unwrap();
        list.tbs_cert_list.crl_extensions = Some(vec![x509_cert::ext::Extension {
            extn_id: rfc5280::ID_CE_DELTA_CRL_INDICATOR,
            critical: true,
            extn_value: der::asn1::OctetString::new(vec![2, 1, 1]).unwrap(),
        }]);
        let err = Crl::from_der(&list.to_der().unwrap()).unwrap_err().to_string();
        assert!(err.contains("is a delta CRL"), "{err}");
        // The fingerprint changes with the CRLs, and is empty without any.
        assert_eq!(CrlStore::default().fingerprint(), "");
        assert_ne!(
            CrlStore::from_bytes(&der).unwrap().fingerprint(),
            pki.crl(&pki.root_key, NOW, None, &[]).fingerprint()
        );
    }
}
