//! Signing keys: generated on first start, private parts sealed in the database, parsed
//! once and kept (signing is on the hot path), published as a prebuilt JWKS.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use jsonwebtoken::DecodingKey;
use serde_json::{Value, json};

use super::b64url;
use crate::clock::Timestamp;
use crate::model::SigningAlg;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("stored key {0} is unreadable")]
    Corrupt(String),
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed signing key, ready to sign without re-parsing.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub public_jwk: Value,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    signer: Signer,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// A fresh key: the PKCS#8 document (to be sealed and stored) and its public JWK.
pub struct GeneratedKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub pkcs8: Vec<u8>,
    pub public_jwk: Value,
}

pub fn generate(alg: SigningAlg) -> Result<GeneratedKey, KeyError> {
    let kid = super::random_id();
    let pkcs8 = match alg {
        SigningAlg::RS256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
            pair.as_der().map_err(|_| KeyError::Generate)?.as_ref().to_vec()
        }
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| KeyError::Generate)?
            .as_ref()
            .to_vec(),
        SigningAlg::EdDSA => {
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?.as_ref().to_vec()
        }
    };
    let parsed = parse(&kid, alg, &pkcs8, 0, None)?;
    Ok(GeneratedKey { kid, alg, pkcs8, public_jwk: parsed.public_jwk })
}

/// Parses a stored key and derives its public JWK (RFC 7517/7518/8037).
pub fn parse(
    kid: &str,
    alg: SigningAlg,
    pkcs8: &[u8],
    created_at: Timestamp,
    retired_at: Option<Timestamp>,
) -> Result<SigningKey, KeyError> {
    let corrupt = || KeyError::Corrupt(kid.to_string());
    let (signer, public_jwk, decoding) = match alg {
        SigningAlg::RS256 => {
            let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| corrupt())?;
            let public = pair.public_key();
            let n = public.modulus().big_endian_without_leading_zero().to_vec();
            let e = public.exponent().big_endian_without_leading_zero().to_vec();
            let jwk = json!({"kty": "RSA", "n": b64url(&n), "e": b64url(&e)});
            (Signer::Rsa(pair), jwk, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        SigningAlg::ES256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(|_| corrupt())?;
            // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
            let point = pair.public_key().as_ref();
            if point.len() != 65 {
                return Err(corrupt());
            }
            let (x, y) = (b64url(&point[1..33]), b64url(&point[33..]));
            let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|_| corrupt())?;
            (Signer::Ec(pair), json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}), decoding)
        }
        SigningAlg::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| corrupt())?;
            let x = b64url(pair.public_key().as_ref());
            let decoding = DecodingKey::from_ed_components(&x).map_err(|_| corrupt())?;
            (Signer::Ed(pair), json!({"kty": "OKP", "crv": "Ed25519", "x": x}), decoding)
        }
    };
    let mut jwk = public_jwk;
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.as_str());
    jwk["use"] = json!("sig");
    Ok(SigningKey { kid: kid.to_string(), alg, public_jwk: jwk, created_at, retired_at, signer, decoding })
}

impl SigningKey {
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        // Signing with a key we parsed ourselves only fails if the RNG or the library is broken.
        match &self.signer {
            Signer::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig).expect("RSA signing");
                sig
            }
            Signer::Ec(pair) => pair.sign(&rng, message).expect("ECDSA signing").as_ref().to_vec(),
            Signer::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// The keys in use: the newest unretired key per algorithm signs; retired keys stay
/// published until tokens they signed have expired.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<Arc<SigningKey>>,
    jwks: bytes::Bytes,
}

impl KeyRing {
    pub fn new(mut keys: Vec<SigningKey>) -> Self {
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.kid.cmp(&b.kid)));
        let jwks = json!({"keys": keys.iter().map(|k| &k.public_jwk).collect::<Vec<_>>()});
        let jwks = bytes::Bytes::from(serde_json::to_vec(&jwks).expect("JWKS serialises"));
        Self { keys: keys.into_iter().map(Arc::new).collect(), jwks }
    }

    pub fn current(&self, alg: SigningAlg) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.alg == alg && k.retired_at.is_none())
    }

    pub fn by_kid(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn jwks(&self) -> bytes::Bytes {
        self.jwks.clone()
    }

    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_parses_and_publishes_public_parts_only() {
        for alg in SigningAlg::ALL {
            let key = generate(alg).unwrap();
            let parsed = parse(&key.kid, alg, &key.pkcs8, 1, None).unwrap();
            let jwk = &parsed.public_jwk;
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["kid"], key.kid.as_str());
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(jwk.get(private).is_none(), "{alg:?} publishes {private}");
            }
            assert!(!parsed.sign(b"message").is_empty());
        }
    }

    #[test]
    fn current_skips_retired_keys() {
        let old = generate(SigningAlg::ES256).unwrap();
        let new = generate(SigningAlg::ES256).unwrap();
        let ring = KeyRing::new(vec![
            parse(&old.kid, SigningAlg::ES256, &old.pkcs8, 1, Some(5)).unwrap(),
            parse(&new.kid, SigningAlg::ES256, &new.pkcs8, 5, None).unwrap(),
        ]);
        assert_eq!(ring.current(SigningAlg::ES256).unwrap().kid, new.kid);
        assert!(ring.by_kid(&old.kid).is_some());
        assert!(ring.current(SigningAlg::RS256).is_none());
    }
}
