//! JSON Web Tokens. Signing is done here with keys parsed once (RFC 7515 compact form);
//! verification goes through `jsonwebtoken`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::{KeyRing, SigningKey};
use crate::model::SigningAlg;

/// A JWS header (RFC 7515 §4.1), in the order serde_json's maps sort keys.
#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

/// Signs `claims` as a compact JWS with the key's `alg` and `kid`, encoding each part into
/// the one string it ends in (tokens are issued on every exchange: issue 6).
/// Serialising cannot fail here: header and claims are plain structs or JSON values with
/// string keys, so the `expect`s only guard against a programming error.
pub fn sign<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> String {
    let header = serde_json::to_vec(&Header { alg: key.alg.as_str(), kid: &key.kid, typ }).expect("header serialises");
    let claims = serde_json::to_vec(claims).expect("claims serialise");
    // Base64 makes four characters of every three bytes; an RSA-2048 signature is 256 bytes.
    let mut out = String::with_capacity((header.len() + claims.len() + 256) * 4 / 3 + 8);
    URL_SAFE_NO_PAD.encode_string(&header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&claims, &mut out);
    let signature = key.sign(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
    out
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("wrong token type")]
    WrongType,
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

pub struct Expectations<'a> {
    pub issuer: &'a str,
    /// Expected `typ` header (`at+jwt` for access tokens, RFC 9068 §2.1), if any.
    pub typ: Option<&'a str>,
    /// Check `exp`. Off for `id_token_hint`, which may have expired (RP-Initiated Logout §2).
    pub check_expiry: bool,
    pub now: i64,
}

/// Verifies signature (with a key of ours, by `kid`), `iss`, and optionally `typ` and `exp`.
pub fn verify<C: DeserializeOwned>(ring: &KeyRing, token: &str, expect: &Expectations<'_>) -> Result<C, VerifyError> {
    if token.len() > 16 * 1024 || token.split('.').count() != 3 {
        return Err(VerifyError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if let Some(typ) = expect.typ
        && !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ))
    {
        return Err(VerifyError::WrongType);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let key = ring.by_kid(&kid).ok_or(VerifyError::UnknownKey)?;
    let alg = match key.alg {
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    };
    // The algorithm comes from our key, never from the token's header.
    if header.alg != alg {
        return Err(VerifyError::Malformed);
    }
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[expect.issuer]);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "exp"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(token, key.decoding_key(), &validation)?;
    if expect.check_expiry {
        let exp = data.claims.get("exp").and_then(|v| v.as_i64()).ok_or(VerifyError::Malformed)?;
        if exp <= expect.now {
            return Err(VerifyError::Invalid(jsonwebtoken::errors::ErrorKind::ExpiredSignature.into()));
        }
    }
    serde_json::from_value(data.claims).map_err(|_| VerifyError::Malformed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crypto::{b64url, keys};

    fn ring() -> KeyRing {
        KeyRing::new(
            SigningAlg::ALL
                .into_iter()
                .map(|alg| {
                    let k = keys::generate(alg).unwrap();
                    keys::parse(&k.kid, alg, &k.pkcs8, 1, None).unwrap()
                })
                .collect(),
        )
    }

    fn expect(now: i64) -> Expectations<'static> {
        Expectations { issuer: "https://idp.example", typ: Some("at+jwt"), check_expiry: true, now }
    }

    #[test]
    fn signs_and_verifies_with_every_algorithm() {
        let ring = ring();
        for alg in SigningAlg::ALL {
            let token = sign(ring.current(alg).unwrap(), "at+jwt", &json!({"iss": "https://idp.example", "exp": 100}));
            let claims: serde_json::Value = verify(&ring, &token, &expect(50)).unwrap();
            assert_eq!(claims["exp"], 100);
            assert!(verify::<serde_json::Value>(&ring, &token, &expect(100)).is_err(), "expired");
        }
    }

    #[test]
    fn rejects_tampering_wrong_issuer_and_type() {
        let ring = ring();
        let key = ring.current(SigningAlg::RS256).unwrap();
        let token = sign(key, "at+jwt", &json!({"iss": "https://idp.example", "exp": 100, "sub": "a"}));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64url(br#"{"iss":"https://idp.example","exp":100,"sub":"b"}"#);
        parts[1] = &forged;
        assert!(verify::<serde_json::Value>(&ring, &parts.join("."), &expect(50)).is_err());

        let other = sign(key, "at+jwt", &json!({"iss": "https://evil.example", "exp": 100}));
        assert!(verify::<serde_json::Value>(&ring, &other, &expect(50)).is_err());

        let id_token = sign(key, "JWT", &json!({"iss": "https://idp.example", "exp": 100}));
        assert!(matches!(verify::<serde_json::Value>(&ring, &id_token, &expect(50)), Err(VerifyError::WrongType)));
        assert!(verify::<serde_json::Value>(&ring, "a.b", &expect(50)).is_err());
    }
}
