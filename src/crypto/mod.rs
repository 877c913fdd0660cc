//! Keys, tokens and hashing. Everything secret is compared in constant time.

pub mod jwt;
pub mod keys;
pub mod password;
pub mod pkce;
pub mod rotation;
pub mod seal;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG failing leaves no safe way to continue.
    SystemRandom::new().fill(&mut buf).expect("system random number generator failed");
    buf
}

/// A random, URL-safe token with 256 bits of entropy (codes, refresh tokens, secrets).
pub fn random_token() -> String {
    b64url(&random_bytes::<32>())
}

/// A random id that is unique but not secret (key ids, `sid`).
pub fn random_id() -> String {
    b64url(&random_bytes::<16>())
}

/// A unique, not secret id that sorts by creation time (UUIDv7, RFC 9562 §5.7, 32 hex
/// digits), for rows written on every code exchange (grants): the indexes keyed by it grow
/// at their end, so a commit writes a few pages there instead of one page at a random place
/// of each index per row.
pub fn sortable_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Hash of a high-entropy secret (code, refresh token, client secret). These have 256 bits
/// of entropy, so a fast hash suffices; only passwords need argon2id.
pub fn token_hash(token: &str) -> String {
    b64url(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(constant_time_eq(&token_hash(&a), &token_hash(&a)));
        assert!(!constant_time_eq("abc", "abd"));
    }

    #[test]
    fn sortable_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| sortable_id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "each id sorts after the one made before it");
        assert!(ids.iter().all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
