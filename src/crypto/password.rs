//! argon2id password hashing on a bounded blocking pool, so a login flood waits for a
//! hashing slot instead of starving token and userinfo traffic.
//!
//! Each slot keeps its 19 MiB of argon2 memory and reuses it: allocating it per hash let
//! glibc's malloc (whose mmap threshold rises after the first large free) keep a copy per
//! thread arena, and the server grew to hundreds of MB under a login load (bench/compare).

use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use super::random_bytes;

/// OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
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
    /// Argon2 memory of the slots, allocated on first use and kept (at most one per slot).
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Verified against when the account does not exist, so both cases cost the same.
    dummy_hash: Arc<String>,
}

impl PasswordHasher {
    pub fn new(workers: usize) -> Self {
        let workers = if workers == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { workers };
        let dummy_hash = hash_blocking("not a real password, only spends time", &mut Vec::new()).expect("hash");
        Self { slots: Arc::new(Semaphore::new(workers)), memory: Arc::default(), dummy_hash: Arc::new(dummy_hash) }
    }

    /// Runs `work` on the blocking pool in a slot, with that slot's memory.
    async fn in_slot<T: Send + 'static>(&self, work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static) -> Result<T, PasswordError> {
        let _slot = self.slots.acquire().await.map_err(|_| PasswordError::Pool)?;
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_default();
        let (out, memory) = tokio::task::spawn_blocking(move || (work(&mut memory), memory)).await.map_err(|_| PasswordError::Pool)?;
        self.memory.lock().unwrap_or_else(PoisonError::into_inner).push(memory);
        Ok(out)
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.in_slot(move |memory| hash_blocking(&password, memory)).await?
    }

    /// Verifies `password` against `hash`, or against a dummy hash when there is no
    /// account, so the answer takes comparable time either way.
    pub async fn verify(&self, hash: Option<String>, password: String) -> Result<bool, PasswordError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let ok = self.in_slot(move |memory| verify_blocking(&hash, &password, memory)).await?;
        Ok(known && ok)
    }
}

/// Hashes into `memory`, grown to what `params` need (hashes made with other parameters).
fn hash_into(argon2: &Argon2<'_>, params: &Params, password: &str, salt: &[u8], out: &mut [u8], memory: &mut Vec<Block>) -> Result<(), argon2::Error> {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    argon2.hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..params.block_count()])
}

fn hash_blocking(password: &str, memory: &mut Vec<Block>) -> Result<String, PasswordError> {
    let salt = random_bytes::<16>();
    let params = params();
    let mut out = [0u8; 32];
    hash_into(&Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()), &params, password, &salt, &mut out, memory).map_err(|_| PasswordError::Hash)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| PasswordError::Hash)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|_| PasswordError::Hash)?),
    };
    Ok(phc.to_string())
}

/// What `argon2`'s own verifier does, with the slot's memory: the parameters, salt and
/// length come from the stored hash; `Output` compares in constant time.
fn verify_blocking(hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let mut verify = || -> Option<bool> {
        let parsed = PasswordHash::new(hash).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = parsed.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
        let params = Params::try_from(&parsed).ok()?;
        let expected = parsed.hash?;
        let mut salt = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
        let mut out = vec![0u8; expected.len()];
        hash_into(&Argon2::new(algorithm, version, params.clone()), &params, password, salt, &mut out, memory).ok()?;
        Some(Output::new(&out).ok()? == expected)
    };
    verify().unwrap_or(false)
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

    #[tokio::test]
    async fn reads_and_writes_the_argon2_crates_hashes_whatever_their_parameters() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(1);
        for params in [params(), Params::new(8 * 1024, 1, 1, None).unwrap(), Params::new(32 * 1024, 3, 2, None).unwrap()] {
            let salt = SaltString::encode_b64(&random_bytes::<16>()).unwrap();
            let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password(b"correct horse", &salt).unwrap().to_string();
            assert!(hasher.verify(Some(hash.clone()), "correct horse".into()).await.unwrap());
            assert!(!hasher.verify(Some(hash), "wrong".into()).await.unwrap());
        }
        let ours = hasher.hash("correct horse".into()).await.unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &PasswordHash::new(&ours).unwrap()).is_ok());
        assert!(!hasher.verify(Some("not a hash".into()), "correct horse".into()).await.unwrap());
    }
}
