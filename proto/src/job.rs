//! The job key: the same decision made twice is the same job (design §3).

use sha2::{Digest, Sha256};

/// hex SHA-256 of (object_key, from_tier, to_tier, generation).
///
/// Each string is length-prefixed so that no two different tuples share an
/// encoding (`("ab","c")` and `("a","bc")` hash differently).
pub fn job_key(object_key: &str, from_tier: &str, to_tier: &str, generation: u64) -> String {
    let mut hasher = Sha256::new();
    for part in [object_key, from_tier, to_tier] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(generation.to_be_bytes());
    hex::encode(hasher.finalize())
}

/// The key of a decision's `retry`-th retry after FAILED outcomes: the
/// [`job_key`] itself for retry 0, a new key for each retry after it.
pub fn retry_job_key(
    object_key: &str,
    from_tier: &str,
    to_tier: &str,
    generation: u64,
    retry: u32,
) -> String {
    if retry == 0 {
        return job_key(object_key, from_tier, to_tier, generation);
    }
    let mut hasher = Sha256::new();
    hasher.update(job_key(object_key, from_tier, to_tier, generation).as_bytes());
    hasher.update(b"/retry/");
    hasher.update(retry.to_be_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_is_a_new_key_and_retry_zero_is_the_decision_key() {
        let key = job_key("a/b", "hot", "warm", 3);
        assert_eq!(retry_job_key("a/b", "hot", "warm", 3, 0), key);
        let first = retry_job_key("a/b", "hot", "warm", 3, 1);
        assert_ne!(first, key);
        assert_eq!(first, retry_job_key("a/b", "hot", "warm", 3, 1));
        assert_ne!(first, retry_job_key("a/b", "hot", "warm", 3, 2));
        assert_ne!(first, retry_job_key("a/b", "hot", "warm", 4, 1));
    }

    #[test]
    fn keys_match_the_layout_readme_gives_to_other_clients() {
        // Computed with README's Python (hashlib), not with this code.
        assert_eq!(
            job_key("reports/q1.csv", "hot", "cold", 0),
            "9478c04762eba19f11c6fb610debdbd64ce3b85593576038bcf200bc11e56c10"
        );
        assert_eq!(
            retry_job_key("reports/q1.csv", "hot", "cold", 0, 2),
            "76defc141e870ea15a71584708fde55a36dc61f44eff9a2fd76a3b77f37e49bb"
        );
    }

    #[test]
    fn same_decision_same_key_and_any_change_differs() {
        let key = job_key("a/b", "hot", "warm", 3);
        assert_eq!(key, job_key("a/b", "hot", "warm", 3));
        assert_eq!(key.len(), 64);
        assert_ne!(key, job_key("a/b", "hot", "warm", 4));
        assert_ne!(key, job_key("a/b", "hot", "cold", 3));
        assert_ne!(key, job_key("a/b", "warm", "hot", 3));
        assert_ne!(job_key("ab", "c", "d", 0), job_key("a", "bc", "d", 0));
    }
}
