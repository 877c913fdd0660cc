use sqlx::Row;
use sqlx::any::AnyRow;

use super::grants::{NewGrant, insert_grant};
use super::{Result, Store};
use crate::clock::Timestamp;
use crate::model::{Authentication, ClientId, GrantId};

/// An authorization code as stored: only its hash, with everything it is bound to.
#[derive(Clone, Debug)]
pub struct NewCode {
    pub code_hash: String,
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth: Authentication,
    pub expires_at: Timestamp,
}

pub enum CodeRedemption {
    /// The code was unused; it is now consumed, and the grant (if the caller issued one)
    /// exists.
    Redeemed(Box<NewCode>),
    /// The code was used before; the grant issued from it has been revoked (RFC 6749 §4.1.2).
    Reused,
    Unknown,
}

fn code_from_row(code_hash: &str, row: &AnyRow) -> Result<NewCode> {
    Ok(NewCode {
        code_hash: code_hash.to_string(),
        client_id: ClientId(row.try_get("client_id")?),
        redirect_uri: row.try_get("redirect_uri")?,
        scope: row.try_get("scope")?,
        nonce: row.try_get("nonce")?,
        code_challenge: row.try_get("code_challenge")?,
        auth: super::auth_from_row(row)?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl Store {
    pub async fn insert_code(&self, code: &NewCode) -> Result<()> {
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr, sid, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&code.code_hash)
        .bind(code.client_id.as_str())
        .bind(code.auth.user_id.as_str())
        .bind(&code.redirect_uri)
        .bind(&code.scope)
        .bind(code.nonce.clone())
        .bind(code.code_challenge.clone())
        .bind(code.auth.auth_time)
        .bind(code.auth.amr.join(" "))
        .bind(&code.auth.sid)
        .bind(code.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Consumes a code in one transaction: marks it used, lets `decide` check it (client,
    /// redirect URI, PKCE, expiry) and, if it passes, stores the grant `decide` returns.
    /// A failed check still consumes the code. Concurrent redemptions serialise on the row,
    /// so exactly one sees it unused.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        now: Timestamp,
        decide: impl FnOnce(&NewCode) -> Option<NewGrant>,
    ) -> Result<CodeRedemption> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE authorization_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL
             RETURNING client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr, sid, expires_at",
        )
        .bind(code_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match row {
            Some(row) => {
                let code = code_from_row(code_hash, &row)?;
                if let Some(grant) = decide(&code) {
                    insert_grant(&mut tx, &grant).await?;
                    sqlx::query("UPDATE authorization_codes SET grant_id = $2 WHERE code_hash = $1")
                        .bind(code_hash)
                        .bind(grant.id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                CodeRedemption::Redeemed(Box::new(code))
            }
            None => {
                let used = sqlx::query("SELECT grant_id FROM authorization_codes WHERE code_hash = $1")
                    .bind(code_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
                match used {
                    Some(row) => {
                        if let Some(grant_id) = row.try_get::<Option<String>, _>("grant_id")? {
                            super::grants::revoke_grant_in(&mut tx, &GrantId(grant_id), now).await?;
                        }
                        CodeRedemption::Reused
                    }
                    None => CodeRedemption::Unknown,
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}
