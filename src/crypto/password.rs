//! argon2id password hashing on a bounded blocking pool, so a login flood waits for a
//! hashing slot instead of starving token and userinfo traffic.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use super::random_bytes;

/// OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed")]
    Hash,
    #[error("the password hashing pool is shut down")]
    Pool,
}

#[derive(Clone, Debug)]
pub struct PasswordHasher {
    slots: Arc<Semaphore>,
    /// Verified against when the account does not exist, so both cases cost the same.
    dummy_hash: Arc<String>,
}

impl PasswordHasher {
    pub fn new(workers: usize) -> Self {
        let workers = if workers == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { workers };
        let dummy_hash = hash_blocking("not a real password, only spends time").expect("hash");
        Self { slots: Arc::new(Semaphore::new(workers)), dummy_hash: Arc::new(dummy_hash) }
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let _slot = self.slots.acquire().await.map_err(|_| PasswordError::Pool)?;
        tokio::task::spawn_blocking(move || hash_blocking(&password)).await.map_err(|_| PasswordError::Pool)?
    }

    /// Verifies `password` against `hash`, or against a dummy hash when there is no
    /// account, so the answer takes comparable time either way.
    pub async fn verify(&self, hash: Option<String>, password: String) -> Result<bool, PasswordError> {
        let _slot = self.slots.acquire().await.map_err(|_| PasswordError::Pool)?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let ok = tokio::task::spawn_blocking(move || verify_blocking(&hash, &password))
            .await
            .map_err(|_| PasswordError::Pool)?;
        Ok(known && ok)
    }
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|_| PasswordError::Hash)?;
    argon2().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|_| PasswordError::Hash)
}

fn verify_blocking(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = PasswordHasher::new(1);
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify(Some(hash.clone()), "correct horse".into()).await.unwrap());
        assert!(!hasher.verify(Some(hash), "wrong".into()).await.unwrap());
        assert!(!hasher.verify(None, "not a real password, only spends time".into()).await.unwrap());
    }
}
