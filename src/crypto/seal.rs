//! Encryption at rest (AES-256-GCM) under a key derived from the instance secret.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::random_bytes;

#[derive(Debug, thiserror::Error)]
#[error("sealed data could not be opened (wrong instance secret or corrupted data)")]
pub struct SealError;

/// Seals and opens data for one purpose; the purpose is part of the key so a value sealed
/// for one use cannot be opened as another.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(instance_secret: &str, purpose: &str) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"sluis seal v1\0");
        ctx.update(purpose.as_bytes());
        ctx.update(b"\0");
        ctx.update(instance_secret.as_bytes());
        let key = UnboundKey::new(&AES_256_GCM, ctx.finish().as_ref()).expect("32-byte key");
        Self { key: LessSafeKey::new(key) }
    }

    /// Returns base64(nonce || ciphertext || tag).
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let nonce = random_bytes::<12>();
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .expect("AES-GCM seal");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = STANDARD.decode(sealed).map_err(|_| SealError)?;
        if raw.len() < 12 + 16 {
            return Err(SealError);
        }
        let (nonce, body) = raw.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut body = body.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::empty(), &mut body).map_err(|_| SealError)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let a = Sealer::new("secret-one-secret-one-secret-one!", "keys");
        let sealed = a.seal(b"hello");
        assert_eq!(a.open(&sealed).unwrap(), b"hello");
        assert!(Sealer::new("secret-two-secret-two-secret-two!", "keys").open(&sealed).is_err());
        assert!(Sealer::new("secret-one-secret-one-secret-one!", "other").open(&sealed).is_err());
        assert!(a.open("garbage").is_err());
    }
}
