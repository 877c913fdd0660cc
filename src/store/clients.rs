use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, join, on_conflict, split};
use crate::model::{Client, ClientId, GrantType, SigningAlg};
use crate::privacy::ScopeSet;

fn client_from_row(row: &AnyRow) -> Result<Client> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("client {id}: {what}"));
    let scopes: String = row.try_get("scopes")?;
    let grant_types: String = row.try_get("grant_types")?;
    let alg: String = row.try_get("signing_alg")?;
    Ok(Client {
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        redirect_uris: split(&row.try_get::<String, _>("redirect_uris")?),
        post_logout_redirect_uris: split(&row.try_get::<String, _>("post_logout_redirect_uris")?),
        scopes: ScopeSet::parse(&scopes).ok_or_else(|| corrupt("scopes"))?,
        grant_types: grant_types
            .split(' ')
            .filter(|g| !g.is_empty())
            .map(|g| GrantType::parse(g).ok_or_else(|| corrupt("grant_types")))
            .collect::<Result<_>>()?,
        signing_alg: SigningAlg::parse(&alg).ok_or_else(|| corrupt("signing_alg"))?,
        created_at: row.try_get("created_at")?,
        id: ClientId(id),
    })
}

impl Store {
    pub async fn create_client(&self, client: &Client) -> Result<()> {
        let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, grant_types, signing_alg, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(client.id.as_str())
        .bind(&client.name)
        .bind(client.secret_hash.clone())
        .bind(join(&client.redirect_uris))
        .bind(join(&client.post_logout_redirect_uris))
        .bind(client.scopes.to_string())
        .bind(grants.join(" "))
        .bind(client.signing_alg.as_str())
        .bind(client.created_at)
        .execute(&self.pool)
        .await
        .map_err(on_conflict)?;
        Ok(())
    }

    pub async fn client(&self, id: &str) -> Result<Option<Client>> {
        let row = sqlx::query(
            "SELECT id, name, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, grant_types, signing_alg, created_at
             FROM clients WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    pub async fn set_client_signing_alg(&self, id: &ClientId, alg: SigningAlg) -> Result<bool> {
        let done = sqlx::query("UPDATE clients SET signing_alg = $1 WHERE id = $2")
            .bind(alg.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
