//! Recovery codes: ten single-use codes for when the authenticator is lost. Each has 80
//! random bits, written as 16 base32 letters and digits in groups of four.

use crate::crypto::{random_bytes, token_hash};
use crate::model::UserId;

pub const COUNT: usize = 10;
const LEN: usize = 16;
/// RFC 4648 base32 in lower case: no 0/1/8/9, so no O/0 or l/1 to confuse.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new set of codes, formatted for people: `abcd-efgh-ijkl-mnop`.
pub fn generate() -> Vec<String> {
    (0..COUNT).map(|_| format_code(&random_bytes::<10>())).collect()
}

fn format_code(bytes: &[u8; 10]) -> String {
    let bits = bytes.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let mut out = String::with_capacity(LEN + 3);
    for i in 0..LEN {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let index = (bits >> (5 * (LEN - 1 - i))) & 31;
        out.push(char::from(ALPHABET[index as usize]));
    }
    out
}

/// The code as stored: lower case, without dashes or spaces. `None` if it cannot be one.
pub fn normalise(input: &str) -> Option<String> {
    let code: String = input.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_lowercase()).collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// What is stored of a code: bound to its user, so one guess cannot match anyone's code.
pub fn hash(user: &UserId, normalised: &str) -> String {
    token_hash(&format!("{}\0{normalised}", user.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_read_back() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 19, "{code}");
            assert_eq!(normalise(code).unwrap().len(), 16);
            assert_eq!(normalise(&code.to_uppercase()), normalise(code));
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
    }

    #[test]
    fn encoding_uses_every_bit() {
        assert_eq!(format_code(&[0; 10]), "aaaa-aaaa-aaaa-aaaa");
        assert_eq!(format_code(&[0xff; 10]), "7777-7777-7777-7777");
        assert_eq!(format_code(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), "aaaa-aaaa-aaaa-aaab");
    }

    #[test]
    fn hashes_are_per_user() {
        let code = normalise("abcd-efgh-ijkl-mnop").unwrap();
        assert_ne!(hash(&UserId("a".into()), &code), hash(&UserId("b".into()), &code));
        assert!(normalise("abcd-efgh-ijkl-mno1").is_none(), "1 is not in the alphabet");
        assert!(normalise("abcd").is_none());
    }
}
