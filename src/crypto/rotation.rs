//! Creating, rotating and loading signing keys (the part of key handling that needs the store).

use super::keys::{self, KeyError, KeyRing};
use super::seal::Sealer;
use crate::clock::Timestamp;
use crate::model::SigningAlg;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Adds a new key for `alg`; the previous one retires now but stays published for
/// `publish_retired_for` seconds (see [`load`]).
pub async fn rotate(store: &Store, sealer: &Sealer, alg: SigningAlg, now: Timestamp) -> Result<String, RotationError> {
    let key = keys::generate(alg)?;
    let sealed = sealer.seal(&key.pkcs8);
    store.add_signing_key(&key.kid, alg.as_str(), &sealed, &key.public_jwk.to_string(), now).await?;
    Ok(key.kid)
}

/// Loads the key ring, generating a key for every algorithm that has none (first start).
pub async fn load(
    store: &Store,
    sealer: &Sealer,
    now: Timestamp,
    publish_retired_for: i64,
) -> Result<KeyRing, RotationError> {
    let mut stored = store.signing_keys(now - publish_retired_for).await?;
    let missing: Vec<SigningAlg> = SigningAlg::ALL
        .into_iter()
        .filter(|alg| !stored.iter().any(|k| k.alg == alg.as_str() && k.retired_at.is_none()))
        .collect();
    if !missing.is_empty() {
        for alg in missing {
            rotate(store, sealer, alg, now).await?;
        }
        stored = store.signing_keys(now - publish_retired_for).await?;
    }
    let mut parsed = Vec::with_capacity(stored.len());
    for key in stored {
        let alg = SigningAlg::parse(&key.alg).ok_or_else(|| KeyError::Corrupt(key.kid.clone()))?;
        let pkcs8 = sealer.open(&key.private_sealed).map_err(|_| KeyError::Corrupt(key.kid.clone()))?;
        parsed.push(keys::parse(&key.kid, alg, &pkcs8, key.created_at, key.retired_at)?);
    }
    Ok(KeyRing::new(parsed))
}
