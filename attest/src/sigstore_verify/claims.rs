//! Claims: the Fulcio certificate extensions (OIDs `1.3.6.1.4.1.57264.1.*`) that say which repository, ref,
//! workflow and runner a keyless signature came from, as Fulcio's `docs/oid-info.md` defines them.
//!
//! Two encodings: `.2`–`.6` (the deprecated GitHub Workflow extensions) hold the raw UTF-8 string as the
//! extension value; `.9` onward hold a DER UTF8String. Each is read only in its own encoding.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use const_oid::ObjectIdentifier;
use der::Decode;
use x509_cert::Certificate;

/// How an extension's value is encoded (Fulcio `docs/oid-info.md`, "Extension values").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// `.1`–`.6`: the raw string bytes, no DER.
    Raw,
    /// `.8`–`.24`: a DER UTF8String.
    Utf8String,
}

macro_rules! claims {
    ($($(#[$doc:meta])* $variant:ident = $arc:literal, $name:literal, $enc:ident;)*) => {
        /// A Fulcio certificate extension a keyless identity may constrain, named as in policies.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Claim {
            $($(#[$doc])* $variant,)*
        }

        impl Claim {
            /// Every claim, in OID order.
            pub const ALL: &'static [Claim] = &[$(Claim::$variant,)*];

            /// The name used in policies (`sourceRepositoryRef`).
            pub fn name(self) -> &'static str {
                match self { $(Claim::$variant => $name,)* }
            }

            /// The certificate extension's OID (`1.3.6.1.4.1.57264.1.<arc>`, checked at compile time).
            pub fn oid(self) -> ObjectIdentifier {
                match self {
                    $(Claim::$variant => {
                        const OID: ObjectIdentifier =
                            ObjectIdentifier::new_unwrap(concat!("1.3.6.1.4.1.57264.1.", $arc));
                        OID
                    })*
                }
            }

            /// The claim whose OID ends with the arc `arc` under Fulcio's.
            fn from_arc(arc: u32) -> Option<Claim> {
                match arc { $($arc => Some(Claim::$variant),)* _ => None }
            }

            fn encoding(self) -> Encoding {
                match self { $(Claim::$variant => Encoding::$enc,)* }
            }
        }
    };
}

claims! {
    /// `.2` GitHub Workflow Trigger (deprecated; `event_name`).
    GithubWorkflowTrigger = 2, "githubWorkflowTrigger", Raw;
    /// `.3` GitHub Workflow SHA (deprecated; `sha`).
    GithubWorkflowSha = 3, "githubWorkflowSha", Raw;
    /// `.4` GitHub Workflow Name (deprecated; `workflow`).
    GithubWorkflowName = 4, "githubWorkflowName", Raw;
    /// `.5` GitHub Workflow Repository (deprecated; `repository`, `owner/name`).
    GithubWorkflowRepository = 5, "githubWorkflowRepository", Raw;
    /// `.6` GitHub Workflow Ref (deprecated; `ref`).
    GithubWorkflowRef = 6, "githubWorkflowRef", Raw;
    /// `.9` Build Signer URI (for GitHub: the reusable workflow that signed).
    BuildSignerUri = 9, "buildSignerURI", Utf8String;
    /// `.10` Build Signer Digest.
    BuildSignerDigest = 10, "buildSignerDigest", Utf8String;
    /// `.11` Runner Environment (`github-hosted`, `self-hosted`).
    RunnerEnvironment = 11, "runnerEnvironment", Utf8String;
    /// `.12` Source Repository URI.
    SourceRepositoryUri = 12, "sourceRepositoryURI", Utf8String;
    /// `.13` Source Repository Digest.
    SourceRepositoryDigest = 13, "sourceRepositoryDigest", Utf8String;
    /// `.14` Source Repository Ref.
    SourceRepositoryRef = 14, "sourceRepositoryRef", Utf8String;
    /// `.15` Source Repository Identifier.
    SourceRepositoryIdentifier = 15, "sourceRepositoryIdentifier", Utf8String;
    /// `.16` Source Repository Owner URI.
    SourceRepositoryOwnerUri = 16, "sourceRepositoryOwnerURI", Utf8String;
    /// `.17` Source Repository Owner Identifier.
    SourceRepositoryOwnerIdentifier = 17, "sourceRepositoryOwnerIdentifier", Utf8String;
    /// `.18` Build Config URI (the top-level workflow).
    BuildConfigUri = 18, "buildConfigURI", Utf8String;
    /// `.19` Build Config Digest.
    BuildConfigDigest = 19, "buildConfigDigest", Utf8String;
    /// `.20` Build Trigger.
    BuildTrigger = 20, "buildTrigger", Utf8String;
    /// `.21` Run Invocation URI.
    RunInvocationUri = 21, "runInvocationURI", Utf8String;
    /// `.22` Source Repository Visibility At Signing (`public`, `private`).
    SourceRepositoryVisibilityAtSigning = 22, "sourceRepositoryVisibilityAtSigning", Utf8String;
    /// `.23` Deployment Environment.
    DeploymentEnvironment = 23, "deploymentEnvironment", Utf8String;
    /// `.24` Token Subject (the OIDC token's raw `sub`).
    TokenSubject = 24, "tokenSubject", Utf8String;
}

impl Claim {
    /// The claim whose extension has this OID, if any.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        // Claims are the arcs right under Fulcio's. An OID's encoding starts with its parent's, so most
        // extensions are told apart by comparing bytes, and the last arc is read from what follows: one
        // base-128 number (every byte but its last has the high bit set).
        const FULCIO_ARC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1");
        let last = oid.as_bytes().strip_prefix(FULCIO_ARC.as_bytes())?;
        let (end, continued) = last.split_last()?;
        if end & 0x80 != 0 || continued.iter().any(|b| b & 0x80 == 0) {
            return None;
        }
        let arc =
            last.iter().try_fold(0u32, |arc, b| arc.checked_mul(128)?.checked_add(u32::from(b & 0x7f)))?;
        Self::from_arc(arc)
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A claim name that is not one of [`Claim::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown claim {name:?} (known: {})", Claim::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownClaim {
    /// The name as given.
    pub name: String,
}

impl FromStr for Claim {
    type Err = UnknownClaim;

    /// Exact, case-sensitive names: a near miss is a typo to report, not to guess at.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|c| c.name() == s).ok_or_else(|| UnknownClaim { name: s.to_owned() })
    }
}

/// A claim's value as read from a certificate: the string, or why it could not be read. A malformed
/// extension only matters to a policy that names its claim, so it is kept rather than failing the parse.
pub type ClaimValue = Result<String, String>;

/// Read every claim extension of `cert`, each in its own encoding.
pub fn read_claims(cert: &Certificate) -> BTreeMap<Claim, ClaimValue> {
    let mut out = BTreeMap::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let Some(claim) = Claim::from_oid(&ext.extn_id) else { continue };
        let bytes = ext.extn_value.as_bytes();
        let value = match claim.encoding() {
            Encoding::Raw => std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| e.to_string()),
            Encoding::Utf8String => der::asn1::Utf8StringRef::from_der(bytes)
                .map(|s| s.as_str().to_owned())
                .map_err(|e| format!("not a DER UTF8String: {e}")),
        };
        // RFC 5280 4.2: an extension appears at most once; a second one would let readers disagree.
        let value =
            if out.contains_key(&claim) { Err("the extension appears twice".to_owned()) } else { value };
        out.insert(claim, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_oids_follow_fulcio_oid_info() {
        // Spot checks against docs/oid-info.md, both encodings.
        assert_eq!(Claim::GithubWorkflowTrigger.oid().to_string(), "1.3.6.1.4.1.57264.1.2");
        assert_eq!(Claim::GithubWorkflowRef.oid().to_string(), "1.3.6.1.4.1.57264.1.6");
        assert_eq!(Claim::BuildSignerUri.oid().to_string(), "1.3.6.1.4.1.57264.1.9");
        assert_eq!(Claim::SourceRepositoryRef.oid().to_string(), "1.3.6.1.4.1.57264.1.14");
        assert_eq!(Claim::SourceRepositoryVisibilityAtSigning.oid().to_string(), "1.3.6.1.4.1.57264.1.22");
        assert_eq!(Claim::TokenSubject.oid().to_string(), "1.3.6.1.4.1.57264.1.24");
        assert_eq!(Claim::GithubWorkflowSha.encoding(), Encoding::Raw);
        assert_eq!(Claim::BuildTrigger.encoding(), Encoding::Utf8String);
        // Names and OIDs round-trip, and no two claims share either.
        for c in Claim::ALL {
            assert_eq!(c.name().parse::<Claim>().unwrap(), *c);
            assert_eq!(Claim::from_oid(&c.oid()), Some(*c));
        }
        let mut oids: Vec<String> = Claim::ALL.iter().map(|c| c.oid().to_string()).collect();
        oids.sort();
        oids.dedup();
        assert_eq!(oids.len(), Claim::ALL.len());
        // The issuer (.1, .8) and the OtherName SAN (.7) are matched as issuer and subject, not as claims.
        for not_a_claim in ["1.3.6.1.4.1.57264.1.1", "1.3.6.1.4.1.57264.1.7", "1.3.6.1.4.1.57264.1.8"] {
            assert_eq!(Claim::from_oid(&ObjectIdentifier::new_unwrap(not_a_claim)), None);
        }
        assert_eq!(Claim::from_oid(&ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.2.14")), None);
    }

    #[test]
    fn only_arcs_right_under_fulcios_are_claims() {
        let claim = |oid: &str| Claim::from_oid(&ObjectIdentifier::new_unwrap(oid));
        // The arc itself, grandchildren of claims, Fulcio's parent arc and its other children, another OID.
        for not_a_claim in [
            "1.3.6.1.4.1.57264.1",
            "1.3.6.1.4.1.57264.1.14.1",
            // Bytes 0x00 0x0e: read as one number they would be 14 (sourceRepositoryRef).
            "1.3.6.1.4.1.57264.1.0.14",
            "1.3.6.1.4.1.57264.1.14.9.9",
            "1.3.6.1.4.1.57264",
            "1.3.6.1.4.1.57264.10.14",
            "1.3.6.1.4.1.57264.128.14",
            "2.5.29.17",
        ] {
            assert_eq!(claim(not_a_claim), None, "{not_a_claim}");
        }
        // Arcs of two bytes and more are read whole: 142 is not 14, and no claim has a large arc.
        for unknown in
            ["1.3.6.1.4.1.57264.1.142", "1.3.6.1.4.1.57264.1.1806", "1.3.6.1.4.1.57264.1.4294967295"]
        {
            assert_eq!(claim(unknown), None, "{unknown}");
        }
        // The same answer as comparing the parent and the last arc, for every arc up to three bytes long.
        let fulcio = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1");
        for arc in (0..300u32).chain([16_383, 16_384, 2_097_151]) {
            let oid = fulcio.push_arc(arc).unwrap();
            let expected = Claim::ALL.iter().copied().find(|c| c.oid() == oid);
            assert_eq!(Claim::from_oid(&oid), expected, "{oid}");
        }
    }

    #[test]
    fn unknown_names_are_refused_with_the_known_ones() {
        let err = "sourceRepoRef".parse::<Claim>().unwrap_err();
        assert_eq!(err.name, "sourceRepoRef");
        assert!(err.to_string().contains("sourceRepositoryRef"), "{err}");
        // Case matters: `sourceRepositoryUri` is not `sourceRepositoryURI`.
        assert!("sourceRepositoryUri".parse::<Claim>().is_err());
    }
}
