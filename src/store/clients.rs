use std::sync::Arc;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::client_cache::{ClientCredentials, StoredSecret};
use super::client_secrets::{NewClientSecret, insert_secret};
use super::{Result, Store, StoreError, join, on_conflict, split};
use crate::clock::Timestamp;
use crate::model::{Client, ClientId, ClientStatus, GrantType, ScopeState, SigningAlg, UserId};
use crate::privacy::ScopeSet;

/// An admin's decision (or a pending request) on one scope of a client.
#[derive(Clone, Debug)]
pub struct ScopeDecision {
    pub scope: String,
    pub state: ScopeState,
    /// Why the client owner wants it.
    pub purpose: Option<String>,
    /// The admin's note (why it was rejected).
    pub note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
}

/// The columns [`client_from_row`] reads, from `clients c`.
const CLIENT_COLUMNS: &str =
    "c.id, c.name, c.secret_hash, c.redirect_uris, c.post_logout_redirect_uris, c.scopes, c.grant_types, c.signing_alg, c.created_at, c.status, c.subject_type";

fn client_from_row(row: &AnyRow) -> Result<Client> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("client {id}: {what}"));
    let scopes: String = row.try_get("scopes")?;
    let grant_types: String = row.try_get("grant_types")?;
    let alg: String = row.try_get("signing_alg")?;
    let status: String = row.try_get("status")?;
    let subject_type: String = row.try_get("subject_type")?;
    Ok(Client {
        status: ClientStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        public_subject: subject_type == "public",
        approved_scopes: ScopeSet::default(),
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
        self.create_owned_client(client, None).await
    }

    /// Inserts a client owned by `owner` (a user who registered it themselves; `None` for
    /// one an admin or the operator registered). A confidential client's `secret_hash`
    /// also becomes its first secret, labelled `initial`, in the same transaction.
    pub async fn create_owned_client(&self, client: &Client, owner: Option<&UserId>) -> Result<()> {
        let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, grant_types, signing_alg, created_at, status, subject_type, owner_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .bind(client.status.as_str())
        .bind(if client.public_subject { "public" } else { "pairwise" })
        .bind(owner.map(UserId::to_string))
        .execute(&mut *tx)
        .await
        .map_err(on_conflict)?;
        if let Some(hash) = &client.secret_hash {
            // The same id the 0004 migration gave the secrets it copied.
            let id = format!("initial-{}", client.id);
            let secret = NewClientSecret {
                id: &id,
                client_id: &client.id,
                label: "initial",
                secret_hash: hash,
                created_at: client.created_at,
                expires_at: None,
            };
            insert_secret(&mut tx, &secret).await?;
        }
        tx.commit().await?;
        self.clients_changed().await;
        Ok(())
    }

    /// The client `id` with its approved scopes, from the client cache when it holds it (see
    /// `store/client_cache.rs`: every write, in any process, empties it).
    pub async fn client(&self, id: &str) -> Result<Option<Client>> {
        Ok(self.client_credentials(id).await?.map(|credentials| Arc::unwrap_or_clone(credentials.client)))
    }

    /// The client with the hashes of the secrets that authenticate it at `now` (the token
    /// endpoint's hot path), cached as [`Store::client`] is.
    pub async fn client_with_secret_hashes(&self, id: &str, now: Timestamp) -> Result<Option<(Arc<Client>, Vec<String>)>> {
        Ok(self.client_credentials(id).await?.map(|credentials| (Arc::clone(&credentials.client), credentials.active_hashes(now))))
    }

    async fn client_credentials(&self, id: &str) -> Result<Option<ClientCredentials>> {
        let Some(cache) = &self.client_cache else { return self.client_rows(id).await };
        if let Some(credentials) = cache.get(id) {
            return Ok(Some(credentials));
        }
        let read_at = cache.generation();
        let Some(credentials) = self.client_rows(id).await? else { return Ok(None) };
        cache.put(id, read_at, credentials.clone());
        Ok(Some(credentials))
    }

    /// Called after each committed write to clients, their scopes or secrets.
    pub(super) async fn clients_changed(&self) {
        if let Some(cache) = &self.client_cache {
            cache.changed();
        }
        if let Some(listener) = &self.client_listener {
            listener.announce(&self.pool).await;
        }
    }

    /// One query: the client row joined with its approved scopes and its unrevoked secrets,
    /// one per row (`kind` says which; none: one row of NULLs).
    async fn client_rows(&self, id: &str) -> Result<Option<ClientCredentials>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CLIENT_COLUMNS}, x.kind, x.value, x.expires_at AS secret_expires_at
             FROM clients c LEFT JOIN (
                 SELECT 'scope' AS kind, scope AS value, NULL AS expires_at FROM client_scopes WHERE client_id = $1 AND state = 'approved'
                 UNION ALL
                 SELECT 'secret' AS kind, secret_hash AS value, expires_at FROM client_secrets
                 WHERE client_id = $1 AND revoked_at IS NULL
             ) x ON 1 = 1
             WHERE c.id = $1"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else { return Ok(None) };
        let mut client = client_from_row(first)?;
        let (mut approved, mut secrets) = (Vec::new(), Vec::new());
        for row in &rows {
            let kind: Option<String> = row.try_get("kind")?;
            let value: Option<String> = row.try_get("value")?;
            match (kind.as_deref(), value) {
                (Some("scope"), Some(scope)) => approved.push(scope),
                (Some("secret"), Some(hash)) => secrets.push(StoredSecret { hash, expires_at: row.try_get("secret_expires_at")? }),
                _ => {}
            }
        }
        client.approved_scopes = ScopeSet::from_iter(approved.iter().map(String::as_str));
        Ok(Some(ClientCredentials { client: Arc::new(client), secrets: secrets.into() }))
    }

    /// Clients, newest first, optionally only those in one status.
    pub async fn list_clients(&self, status: Option<ClientStatus>, limit: i64, offset: i64) -> Result<Vec<Client>> {
        let rows = sqlx::query(
            "SELECT id, name, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, grant_types, signing_alg, created_at, status, subject_type
             FROM clients WHERE ($1 = '' OR status = $1) ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
        )
        .bind(status.map_or("", ClientStatus::as_str))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// The verification state of every scope of a client that has one (no row: `requested`).
    pub async fn scope_decisions(&self, client: &ClientId) -> Result<Vec<ScopeDecision>> {
        let rows = sqlx::query(
            "SELECT scope, state, purpose, note, decided_by, decided_at FROM client_scopes WHERE client_id = $1 ORDER BY scope",
        )
        .bind(client.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(ScopeDecision {
                    scope: r.try_get("scope")?,
                    state: ScopeState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("scope state {state:?}")))?,
                    purpose: r.try_get("purpose")?,
                    note: r.try_get("note")?,
                    decided_by: r.try_get("decided_by")?,
                    decided_at: r.try_get("decided_at")?,
                })
            })
            .collect()
    }

    pub async fn set_client_status(&self, id: &ClientId, status: ClientStatus) -> Result<bool> {
        let done = sqlx::query("UPDATE clients SET status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        self.clients_changed().await;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_client_public_subject(&self, id: &ClientId, public: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE clients SET subject_type = $1 WHERE id = $2")
            .bind(if public { "public" } else { "pairwise" })
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        self.clients_changed().await;
        Ok(done.rows_affected() == 1)
    }

    /// Records an admin's decision (or a request) on one scope of a client.
    pub async fn set_scope_state(
        &self,
        client: &ClientId,
        scope: &str,
        state: ScopeState,
        note: Option<&str>,
        decided_by: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        let decided_at = decided_by.map(|_| now);
        sqlx::query(
            "INSERT INTO client_scopes (client_id, scope, state, note, decided_by, decided_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (client_id, scope) DO UPDATE SET state = excluded.state, note = excluded.note,
                 decided_by = excluded.decided_by, decided_at = excluded.decided_at, updated_at = excluded.updated_at",
        )
        .bind(client.as_str())
        .bind(scope)
        .bind(state.as_str())
        .bind(note.map(str::to_string))
        .bind(decided_by.map(str::to_string))
        .bind(decided_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.clients_changed().await;
        Ok(())
    }

    pub async fn set_client_signing_alg(&self, id: &ClientId, alg: SigningAlg) -> Result<bool> {
        let done = sqlx::query("UPDATE clients SET signing_alg = $1 WHERE id = $2")
            .bind(alg.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        self.clients_changed().await;
        Ok(done.rows_affected() == 1)
    }
}

/// Clients their owners registered themselves (`/account/clients`).
impl Store {
    /// The clients `owner` registered, newest first. (Like [`Store::list_clients`], without
    /// `approved_scopes`: read [`Store::scope_decisions`] for those.)
    pub async fn clients_of_owner(&self, owner: &UserId) -> Result<Vec<Client>> {
        let rows = sqlx::query(
            "SELECT id, name, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, grant_types, signing_alg, created_at, status, subject_type
             FROM clients WHERE owner_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(owner.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// The client `id` if `owner` owns it; `None` for anyone else's, as for a missing one.
    pub async fn owned_client(&self, id: &str, owner: &UserId) -> Result<Option<Client>> {
        let owned = sqlx::query("SELECT id FROM clients WHERE id = $1 AND owner_id = $2")
            .bind(id)
            .bind(owner.as_str())
            .fetch_optional(&self.pool)
            .await?;
        match owned {
            Some(_) => self.client(id).await,
            None => Ok(None),
        }
    }

    /// Replaces what an owner may edit: the name and both lists of redirect URIs.
    pub async fn update_client_registration(
        &self,
        id: &ClientId,
        name: &str,
        redirect_uris: &[String],
        post_logout_redirect_uris: &[String],
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE clients SET name = $1, redirect_uris = $2, post_logout_redirect_uris = $3 WHERE id = $4")
            .bind(name)
            .bind(join(redirect_uris))
            .bind(join(post_logout_redirect_uris))
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        self.clients_changed().await;
        Ok(done.rows_affected() == 1)
    }

    /// An owner's verification request, in one transaction: the client's enabled scopes
    /// become `enabled`, and each of `requested` goes (back) to `requested` with the
    /// owner's `purpose`, clearing an earlier decision and its note. `false` (nothing
    /// written) when the client is gone, e.g. erased with its owner a moment before.
    pub async fn request_scopes(
        &self,
        client: &ClientId,
        enabled: &ScopeSet,
        requested: &[&str],
        purpose: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        // The client's row first (locked until the commit on PostgreSQL): scope rows are
        // never written for a client that is gone.
        let found = sqlx::query("UPDATE clients SET scopes = $1 WHERE id = $2")
            .bind(enabled.to_string())
            .bind(client.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found == 0 {
            return Ok(false);
        }
        for scope in requested {
            sqlx::query(
                "INSERT INTO client_scopes (client_id, scope, state, purpose, note, decided_by, decided_at, updated_at)
                 VALUES ($1, $2, $3, $4, NULL, NULL, NULL, $5)
                 ON CONFLICT (client_id, scope) DO UPDATE SET state = excluded.state, purpose = excluded.purpose,
                     note = NULL, decided_by = NULL, decided_at = NULL, updated_at = excluded.updated_at",
            )
            .bind(client.as_str())
            .bind(scope.to_string())
            .bind(ScopeState::Requested.as_str())
            .bind(purpose)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.clients_changed().await;
        Ok(true)
    }
}
