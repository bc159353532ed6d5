//! The Notation unit tests' own PKI: a root and a code-signing leaf (serial 07) it issued, valid over
//! [0, 2e9] in Unix seconds.

use crate::keys::SigningKey;
use crate::notation::trust::{TrustStore, TrustStoreKind};
use crate::sigstore_verify::certificate::{ParsedCert, EKU_CODE_SIGNING};
use crate::sigstore_verify::testutil::{basic_constraints, eku, make_cert_with_serial};

pub(crate) struct TestPki {
    pub(crate) root_key: SigningKey,
    pub(crate) root: ParsedCert,
    pub(crate) leaf_key: SigningKey,
    pub(crate) leaf: ParsedCert,
}

impl TestPki {
    /// A root named `root` (a DN) and the leaf `CN=release,O=vouch-test,ST=WA,C=US` it issued.
    pub(crate) fn new(root: &str) -> Self {
        let (root_key, leaf_key) = (SigningKey::generate(), SigningKey::generate());
        let root_cert = make_cert_with_serial(
            &[1],
            root,
            root,
            &root_key,
            &root_key,
            0,
            2_000_000_000,
            vec![basic_constraints(true)],
        );
        let leaf = make_cert_with_serial(
            &[7],
            "CN=release,O=vouch-test,ST=WA,C=US",
            root,
            &leaf_key,
            &root_key,
            0,
            2_000_000_000,
            vec![basic_constraints(false), eku(EKU_CODE_SIGNING)],
        );
        Self { root_key, root: root_cert, leaf_key, leaf }
    }

    /// Leaf first, then the root.
    pub(crate) fn chain(&self) -> Vec<ParsedCert> {
        vec![self.leaf.clone(), self.root.clone()]
    }

    /// A CA trust store holding the root.
    pub(crate) fn store(&self) -> TrustStore {
        TrustStore::from_certificates(TrustStoreKind::Ca, vec![self.root.clone()]).unwrap()
    }
}
