use sqlx::Row;

use super::{Result, Store};
use crate::clock::Timestamp;

pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub private_sealed: String,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

impl Store {
    /// Keys in use or retired after `retired_after` (still needed to verify tokens).
    pub async fn signing_keys(&self, retired_after: Timestamp) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_sealed, created_at, retired_at FROM signing_keys
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid",
        )
        .bind(retired_after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredKey {
                    kid: row.try_get("kid")?,
                    alg: row.try_get("alg")?,
                    private_sealed: row.try_get("private_sealed")?,
                    created_at: row.try_get("created_at")?,
                    retired_at: row.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Adds a key; earlier unretired keys of the same algorithm retire now.
    pub async fn add_signing_key(&self, kid: &str, alg: &str, private_sealed: &str, public_jwk: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $2 WHERE alg = $1 AND retired_at IS NULL")
            .bind(alg)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_sealed, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(kid)
        .bind(alg)
        .bind(private_sealed)
        .bind(public_jwk)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
