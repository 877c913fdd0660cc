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

/// A random id that is unique but not secret (grant ids, key ids, `sid`).
pub fn random_id() -> String {
    b64url(&random_bytes::<16>())
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
}
