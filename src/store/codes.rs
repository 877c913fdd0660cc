use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::grants::{NewGrant, bind_grant};
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

pub(super) fn code_from_row(code_hash: &str, row: &AnyRow) -> Result<NewCode> {
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
    /// `false` (nothing stored) when the user's account was erased meanwhile.
    pub async fn insert_code(&self, code: &NewCode) -> Result<bool> {
        let stored = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr, sid, expires_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE {}",
            self.user_still_exists(3)
        )))
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
        .await?
        .rows_affected();
        Ok(stored == 1)
    }

    /// Consumes a code: marks it used and names the grant `grant_id` in it, lets `decide`
    /// check it (client, redirect URI, PKCE, expiry) and, if it passes, stores the grant
    /// `decide` returns (with that id). A failed check still consumes the code. Concurrent
    /// redemptions serialise on the row, so exactly one sees it unused; a replay revokes the
    /// grant the code names and unnames it, and a grant is stored only while its code names
    /// it, so no replay leaves a grant behind.
    ///
    /// On SQLite both steps, and `decide` between them, run in the redemption thread
    /// (`store/redemption_batch.rs`), which runs the redemptions waiting at the same moment
    /// together. On PostgreSQL the code is read first (what `decide` checks never changes)
    /// and then consumed together with storing the grant, in one statement ([`redeem_pg`]):
    /// two round trips and one commit, where a transaction around the two steps took five
    /// round trips.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        grant_id: &GrantId,
        now: Timestamp,
        decide: impl FnOnce(&NewCode) -> Option<NewGrant> + Send + 'static,
    ) -> Result<CodeRedemption> {
        if let Some(batcher) = &self.redemptions {
            return match batcher.redeem(code_hash, grant_id, now, Box::new(decide)).await? {
                Some((code, true)) => Ok(CodeRedemption::Redeemed(Box::new(code))),
                // Replayed by another process between the two statements.
                Some((_, false)) => Ok(CodeRedemption::Reused),
                None => self.revoke_replayed(code_hash, now).await,
            };
        }
        let consumed = {
            let mut conn = self.pool.acquire().await?;
            let Some((code, unused)) = read_code(&mut conn, code_hash).await? else { return Ok(CodeRedemption::Unknown) };
            let consumed = match (unused, decide(&code)) {
                (false, _) => false,
                (true, Some(grant)) => redeem_pg(&mut conn, code_hash, &grant).await?,
                (true, None) => consume_pg(&mut conn, code_hash, grant_id, now).await?,
            };
            consumed.then_some(code)
        };
        match consumed {
            Some(code) => Ok(CodeRedemption::Redeemed(Box::new(code))),
            // Used before, or by a concurrent redemption since it was read.
            None => self.revoke_replayed(code_hash, now).await,
        }
    }

    /// A code that was used before (RFC 6749 §4.1.2): the grant it names is revoked, and the
    /// code no longer names it. One transaction (opened by [`Store::begin`], so that a
    /// dropped request leaves none open), on SQLite in the write turn.
    async fn revoke_replayed(&self, code_hash: &str, now: Timestamp) -> Result<CodeRedemption> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        let used = sqlx::query("SELECT grant_id FROM authorization_codes WHERE code_hash = $1").bind(code_hash).fetch_optional(&mut *tx).await?;
        let Some(row) = used else { return Ok(CodeRedemption::Unknown) };
        if let Some(grant_id) = row.try_get::<Option<String>, _>("grant_id")? {
            // The code's row first, then the grant's: the order the redemption itself takes
            // them in, so that on PostgreSQL concurrent replays and the redemption cannot
            // deadlock.
            sqlx::query("UPDATE authorization_codes SET grant_id = NULL WHERE code_hash = $1").bind(code_hash).execute(&mut *tx).await?;
            super::grants::revoke_grant_in(&mut tx, &GrantId(grant_id), now).await?;
        }
        tx.commit().await?;
        Ok(CodeRedemption::Reused)
    }
}

/// The code as stored and whether it is still unused; `None` if unknown.
async fn read_code(conn: &mut AnyConnection, code_hash: &str) -> Result<Option<(NewCode, bool)>> {
    let row = sqlx::query(
        "SELECT used_at, client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr, sid, expires_at
         FROM authorization_codes WHERE code_hash = $1",
    )
    .bind(code_hash)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Some((code_from_row(code_hash, &row)?, row.try_get::<Option<i64>, _>("used_at")?.is_none()))),
        None => Ok(None),
    }
}

/// PostgreSQL only (data-modifying `WITH`, which SQLite lacks; PostgreSQL runs each such
/// part once, read or not): marks the code used and naming `grant`, and stores the grant
/// with its refresh token, in one statement, so the grant exists exactly when the code was
/// consumed for it. False if the code was used (or deleted) meanwhile: the row lock makes a
/// concurrent redemption wait and then find it used.
async fn redeem_pg(conn: &mut AnyConnection, code_hash: &str, grant: &NewGrant) -> Result<bool> {
    let refresh = grant.refresh.as_ref();
    let statement = sqlx::query(
        "WITH consumed AS (
             UPDATE authorization_codes SET used_at = $8, grant_id = $1 WHERE code_hash = $9 AND used_at IS NULL RETURNING code_hash
         ), granted AS (
             INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, sid, created_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM consumed
             RETURNING id
         ), refreshed AS (
             INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, expires_at)
             SELECT $10, id, $2, $11, $8, $12 FROM granted WHERE $10 IS NOT NULL
         )
         SELECT COUNT(*) AS granted FROM granted",
    );
    let row = bind_grant(statement, grant)
        .bind(code_hash)
        .bind(refresh.map(|r| r.token_hash.clone()))
        .bind(refresh.map(|r| r.scope.clone()))
        .bind(refresh.map(|r| r.expires_at))
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get::<i64, _>("granted")? == 1)
}

/// PostgreSQL, for a code whose check failed: marks it used at `now` and naming `grant_id`
/// (a grant that will not exist), as the redemption that passes does; false if it was used
/// (or deleted) meanwhile.
async fn consume_pg(conn: &mut AnyConnection, code_hash: &str, grant_id: &GrantId, now: Timestamp) -> Result<bool> {
    let consumed = sqlx::query("UPDATE authorization_codes SET used_at = $1, grant_id = $2 WHERE code_hash = $3 AND used_at IS NULL")
        .bind(now)
        .bind(grant_id.as_str())
        .bind(code_hash)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(consumed == 1)
}
