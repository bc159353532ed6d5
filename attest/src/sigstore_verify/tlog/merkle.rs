//! RFC 6962 / RFC 9162 Merkle inclusion proofs.

use sha2::{Digest as _, Sha256};

use super::{InclusionProof, TlogError, MAX_PROOF_HASHES};

/// SHA-256 output length, the only hash Rekor trees use.
const HASH_LEN: usize = 32;

/// The leaf hash of an entry: SHA-256(0x00 || body).
pub fn leaf_hash(body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(body);
    h.finalize().into()
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Recompute the root hash from a leaf hash, its index, the tree size and the audit path
/// (RFC 9162 section 2.1.3.2). Fails when the path has the wrong length for the position.
pub fn root_from_inclusion_proof(
    leaf: &[u8; 32],
    index: u64,
    tree_size: u64,
    hashes: &[Vec<u8>],
) -> Result<[u8; 32], TlogError> {
    let bad = |r: String| TlogError::BadInclusionProof(r);
    if index >= tree_size {
        return Err(bad(format!("leaf index {index} is not below tree size {tree_size}")));
    }
    if hashes.len() > MAX_PROOF_HASHES {
        return Err(bad(format!("{} hashes, more than {MAX_PROOF_HASHES}", hashes.len())));
    }
    let mut fn_ = index;
    let mut sn = tree_size - 1;
    let mut r = *leaf;
    for p in hashes {
        if p.len() != HASH_LEN {
            return Err(bad(format!("a path hash is {} bytes, not {HASH_LEN}", p.len())));
        }
        if sn == 0 {
            return Err(bad("audit path is longer than the tree is deep".into()));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(bad("audit path is shorter than the tree is deep".into()));
    }
    Ok(r)
}

/// Check that `proof` leads from `leaf` to `proof.root_hash`.
pub(crate) fn verify_inclusion(leaf: &[u8; 32], proof: &InclusionProof) -> Result<(), TlogError> {
    let index =
        u64::try_from(proof.log_index).map_err(|_| TlogError::BadInclusionProof("negative index".into()))?;
    let size = u64::try_from(proof.tree_size)
        .map_err(|_| TlogError::BadInclusionProof("negative tree size".into()))?;
    if proof.root_hash.len() != HASH_LEN {
        return Err(TlogError::BadInclusionProof(format!(
            "root hash is {} bytes, not {HASH_LEN}",
            proof.root_hash.len()
        )));
    }
    let root = root_from_inclusion_proof(leaf, index, size, &proof.hashes)?;
    if root.as_slice() != proof.root_hash.as_slice() {
        return Err(TlogError::BadInclusionProof("the audit path does not reproduce the root hash".into()));
    }
    Ok(())
}

/// Reference implementations of RFC 6962 section 2.1 (tree hash and audit path), for tests.
#[cfg(test)]
pub(crate) mod reference {
    use super::{leaf_hash, node_hash};
    use sha2::{Digest as _, Sha256};

    fn split(n: usize) -> usize {
        let k = n.next_power_of_two() / 2;
        if k == n {
            n / 2
        } else {
            k
        }
    }

    /// Merkle tree hash over leaf bodies.
    pub(crate) fn mth(leaves: &[Vec<u8>]) -> [u8; 32] {
        match leaves {
            [] => Sha256::digest([]).into(),
            [one] => leaf_hash(one),
            _ => {
                let k = split(leaves.len());
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// Audit path for leaf `m`.
    pub(crate) fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
        if leaves.len() <= 1 {
            return vec![];
        }
        let k = split(leaves.len());
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]).to_vec());
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]).to_vec());
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reference::{mth, path};
    use super::*;

    #[test]
    fn every_leaf_of_trees_up_to_33_proves_and_tampering_fails() {
        for n in 1..=33usize {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("leaf {i}").into_bytes()).collect();
            let root = mth(&leaves);
            for m in 0..n {
                let p = path(m, &leaves);
                let leaf = leaf_hash(&leaves[m]);
                assert_eq!(
                    root_from_inclusion_proof(&leaf, m as u64, n as u64, &p).unwrap(),
                    root,
                    "n={n} m={m}"
                );
                // Wrong index, wrong size, flipped hash, truncated and extended paths all fail to give the root.
                if n > 1 {
                    let other = (m + 1) % n;
                    assert_ne!(root_from_inclusion_proof(&leaf, other as u64, n as u64, &p).ok(), Some(root));
                    let mut flipped = p.clone();
                    flipped[0][0] ^= 1;
                    assert_ne!(
                        root_from_inclusion_proof(&leaf, m as u64, n as u64, &flipped).ok(),
                        Some(root)
                    );
                    assert!(root_from_inclusion_proof(&leaf, m as u64, n as u64, &p[..p.len() - 1]).is_err());
                }
                let mut longer = p.clone();
                longer.push(vec![0; 32]);
                assert!(root_from_inclusion_proof(&leaf, m as u64, n as u64, &longer).is_err());
            }
        }
    }

    #[test]
    fn rejects_index_outside_tree_and_bad_hash_lengths() {
        let leaf = leaf_hash(b"x");
        assert!(root_from_inclusion_proof(&leaf, 1, 1, &[]).is_err());
        assert!(root_from_inclusion_proof(&leaf, 0, 0, &[]).is_err());
        assert!(root_from_inclusion_proof(&leaf, 0, 2, &[vec![0; 31]]).is_err());
        assert_eq!(root_from_inclusion_proof(&leaf, 0, 1, &[]).unwrap(), leaf);
    }
}
