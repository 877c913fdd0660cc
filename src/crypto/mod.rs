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

/// A random, URL-safe token with 256 bits of entropy (secrets; codes and refresh tokens are
/// [`stored_token`]s, which start with their time digits).
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

/// Hex digits of the time a [`stored_token`] was made (milliseconds since 1970; 48 bits).
const TIME_DIGITS: usize = 12;

/// Characters of a [`random_token`]: 32 bytes in base64url without padding.
const RANDOM_TOKEN_CHARS: usize = 43;

/// An authorization code or refresh token: [`TIME_DIGITS`] hex digits of the time it was made,
/// then a [`random_token`] (256 random bits). It is stored under [`stored_token_key`], which
/// starts with the same digits, so the index keyed by it grows at its end: a group of
/// exchanges writes a page or two there instead of a page at a random place per token, and a
/// code redeemed soon after it was issued finds its page still cached (issue 6). The time is
/// no secret from the client it is issued to.
pub fn stored_token() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{millis:0width$x}{}", random_token(), width = TIME_DIGITS)
}

/// The key a [`stored_token`] is stored and looked up under: its time digits, then its
/// [`token_hash`]. Anything else presented as one (a token issued before tokens had the
/// digits, or a forgery) is keyed by its hash alone.
pub fn stored_token_key(token: &str) -> String {
    let digits = token.as_bytes().get(..TIME_DIGITS).unwrap_or_default();
    let timed = token.len() == TIME_DIGITS + RANDOM_TOKEN_CHARS && digits.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match timed {
        true => format!("{}{}", &token[..TIME_DIGITS], token_hash(token)),
        false => token_hash(token),
    }
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
    fn stored_tokens_sort_by_time_and_keep_their_entropy() {
        let (a, b) = (stored_token(), stored_token());
        assert_eq!(a.len(), TIME_DIGITS + 43);
        assert_ne!(a[TIME_DIGITS..], b[TIME_DIGITS..], "the random part differs");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = stored_token();
        assert!(stored_token_key(&a)[..TIME_DIGITS] < stored_token_key(&later)[..TIME_DIGITS], "a later token's key sorts after");
        assert_eq!(stored_token_key(&a), format!("{}{}", &a[..TIME_DIGITS], token_hash(&a)));
        assert_ne!(stored_token_key(&a), stored_token_key(&b));
    }

    #[test]
    fn tokens_without_time_digits_are_keyed_by_their_hash() {
        let old = random_token();
        assert_eq!(stored_token_key(&old), token_hash(&old));
        // Not hex, wrong length, or multi-byte characters where the digits would be.
        for odd in ["", "abc", &"Z".repeat(55), &format!("é{}", "a".repeat(53)), &format!("{}{}", "g".repeat(12), "a".repeat(43))] {
            assert_eq!(stored_token_key(odd), token_hash(odd), "{odd}");
        }
    }

    #[test]
    fn sortable_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| sortable_id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "each id sorts after the one made before it");
        assert!(ids.iter().all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
