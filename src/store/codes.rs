use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::grants::{NewGrant, insert_grant_for_code};
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

    /// Consumes a code: marks it used and names the grant `grant_id` in it, lets `decide`
    /// check it (client, redirect URI, PKCE, expiry) and, if it passes, stores the grant
    /// `decide` returns (with that id). A failed check still consumes the code. Concurrent
    /// redemptions serialise on the row, so exactly one sees it unused; a replay revokes the
    /// grant the code names and unnames it, so a grant not yet stored never will be.
    ///
    /// On PostgreSQL this is one transaction. On SQLite the statements run one by one inside
    /// this process' write turn, which already keeps other redemptions out: each statement is
    /// then one hand-off to sqlx's connection thread instead of four for a transaction, and
    /// SQLite's single writer has the next exchange waiting on exactly that (issue 6). The
    /// guard in [`insert_grant_for_code`] covers another process replaying the code between
    /// the two statements.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        grant_id: &GrantId,
        now: Timestamp,
        decide: impl FnOnce(&NewCode) -> Option<NewGrant>,
    ) -> Result<CodeRedemption> {
        // Held to the end: on SQLite, the statements below are one step for this process.
        let turn = self.write_turn().await;
        let mut steps = match turn.is_some() {
            true => Steps::OneByOne(self.pool.acquire().await?),
            false => Steps::Transaction(self.pool.begin().await?),
        };
        let conn = steps.connection();
        let row = sqlx::query(
            "UPDATE authorization_codes SET used_at = $2, grant_id = $3 WHERE code_hash = $1 AND used_at IS NULL
             RETURNING client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr, sid, expires_at",
        )
        .bind(code_hash)
        .bind(now)
        .bind(grant_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        let outcome = match row {
            Some(row) => {
                let code = code_from_row(code_hash, &row)?;
                match decide(&code) {
                    Some(grant) if !insert_grant_for_code(conn, &grant, code_hash).await? => CodeRedemption::Reused,
                    _ => CodeRedemption::Redeemed(Box::new(code)),
                }
            }
            None => revoke_replayed(conn, code_hash, now).await?,
        };
        if let Steps::Transaction(tx) = steps {
            tx.commit().await?;
        }
        Ok(outcome)
    }
}

/// How [`Store::redeem_code`] runs its statements (see there).
enum Steps {
    Transaction(sqlx::Transaction<'static, sqlx::Any>),
    OneByOne(sqlx::pool::PoolConnection<sqlx::Any>),
}

impl Steps {
    fn connection(&mut self) -> &mut AnyConnection {
        match self {
            Steps::Transaction(tx) => tx,
            Steps::OneByOne(conn) => conn,
        }
    }
}

/// A code that was used before (RFC 6749 §4.1.2): the grant it names is revoked, and the
/// code no longer names it. One transaction (a savepoint inside the PostgreSQL one).
async fn revoke_replayed(conn: &mut AnyConnection, code_hash: &str, now: Timestamp) -> Result<CodeRedemption> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    let used = sqlx::query("SELECT grant_id FROM authorization_codes WHERE code_hash = $1").bind(code_hash).fetch_optional(&mut *tx).await?;
    let Some(row) = used else { return Ok(CodeRedemption::Unknown) };
    if let Some(grant_id) = row.try_get::<Option<String>, _>("grant_id")? {
        // The code's row first, then the grant's: the order the redemption itself takes them
        // in, so that on PostgreSQL concurrent replays and the redemption cannot deadlock.
        sqlx::query("UPDATE authorization_codes SET grant_id = NULL WHERE code_hash = $1").bind(code_hash).execute(&mut *tx).await?;
        super::grants::revoke_grant_in(&mut tx, &GrantId(grant_id), now).await?;
    }
    tx.commit().await?;
    Ok(CodeRedemption::Reused)
}
