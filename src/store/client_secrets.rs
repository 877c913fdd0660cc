//! Client secrets: several per client (rotation without downtime), each labelled, with an
//! optional expiry, revocable. Only their SHA-256 is stored.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, on_conflict};
use crate::clock::Timestamp;
use crate::model::ClientId;

/// One secret as its owner sees it: never the secret, nor its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSecret {
    pub id: String,
    pub client_id: ClientId,
    pub label: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ClientSecret {
    /// Whether it authenticates the client at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A secret to add; `secret_hash` is the [`crate::crypto::token_hash`] of the secret.
pub struct NewClientSecret<'a> {
    pub id: &'a str,
    pub client_id: &'a ClientId,
    pub label: &'a str,
    pub secret_hash: &'a str,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

fn secret_from_row(row: &AnyRow) -> Result<ClientSecret> {
    Ok(ClientSecret {
        id: row.try_get("id")?,
        client_id: ClientId(row.try_get("client_id")?),
        label: row.try_get("label")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Inserts one secret; shared with client creation, which adds the first in its transaction.
pub(super) async fn insert_secret(conn: &mut sqlx::AnyConnection, secret: &NewClientSecret<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO client_secrets (id, client_id, label, secret_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(secret.id)
    .bind(secret.client_id.as_str())
    .bind(secret.label)
    .bind(secret.secret_hash)
    .bind(secret.created_at)
    .bind(secret.expires_at)
    .execute(conn)
    .await
    .map_err(on_conflict)?;
    Ok(())
}

impl Store {
    pub async fn add_client_secret(&self, secret: &NewClientSecret<'_>) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_secret(&mut conn, secret).await?;
        self.clients_changed().await;
        Ok(())
    }

    /// Every secret of a client, revoked and expired ones included, newest first.
    pub async fn client_secrets(&self, client: &ClientId) -> Result<Vec<ClientSecret>> {
        let rows = sqlx::query(
            "SELECT id, client_id, label, created_at, expires_at, revoked_at FROM client_secrets
             WHERE client_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(client.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(secret_from_row).collect()
    }

    /// The hashes of the secrets that authenticate the client at `now`.
    pub async fn active_client_secret_hashes(&self, client: &ClientId, now: Timestamp) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT secret_hash FROM client_secrets
             WHERE client_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(client.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("secret_hash")?)).collect()
    }

    /// Revokes one secret of `client`; false if there is no such unrevoked secret.
    pub async fn revoke_client_secret(&self, client: &ClientId, secret_id: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query("UPDATE client_secrets SET revoked_at = $3 WHERE client_id = $1 AND id = $2 AND revoked_at IS NULL")
            .bind(client.as_str())
            .bind(secret_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        self.clients_changed().await;
        Ok(done.rows_affected() == 1)
    }
}
