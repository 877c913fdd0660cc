use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::grants::{NewGrant, insert_grants};
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
    /// grant the code names and unnames it, and a grant is stored only while its code names
    /// it, so a replay between the two steps leaves no grant behind.
    ///
    /// On PostgreSQL this is one transaction. On SQLite both steps go through the
    /// redemption task (`store/redemption_batch.rs`), which runs the redemptions waiting at
    /// the same moment together.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        grant_id: &GrantId,
        now: Timestamp,
        decide: impl FnOnce(&NewCode) -> Option<NewGrant>,
    ) -> Result<CodeRedemption> {
        if let Some(batcher) = &self.redemptions {
            let Some((code, decision)) = batcher.consume(code_hash, grant_id, now).await? else {
                let _turn = self.write_turn().await;
                return revoke_replayed(&mut *self.pool.acquire().await?, code_hash, now).await;
            };
            let stored = decision.decide(decide(&code)).await?;
            return Ok(if stored { CodeRedemption::Redeemed(Box::new(code)) } else { CodeRedemption::Reused });
        }
        let mut tx = self.begin().await?;
        let consumed = consume_codes(&mut tx, &[(code_hash.to_string(), grant_id.clone(), now)]).await?.pop().flatten();
        let outcome = match consumed {
            Some(code) => {
                let stored = match decide(&code) {
                    Some(grant) => insert_grants(&mut tx, &[(grant, code_hash.to_string())]).await?.pop().unwrap_or(false),
                    None => true,
                };
                if stored { CodeRedemption::Redeemed(Box::new(code)) } else { CodeRedemption::Reused }
            }
            None => revoke_replayed(&mut tx, code_hash, now).await?,
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

/// Marks each `(code hash, grant id, now)` used at `now` and naming that grant, in one
/// statement for all; each code as it was, in order, or `None` if it was unknown or already
/// used (of two redemptions of one code in the same statement, the first wins).
pub(super) async fn consume_codes(conn: &mut AnyConnection, codes: &[(String, GrantId, Timestamp)]) -> Result<Vec<Option<NewCode>>> {
    // $1…$n the hashes, then the grant ids, then the times, each in the order of `codes`.
    let n = codes.len();
    let whens = |offset: usize| (1..=n).map(|i| format!("WHEN ${i} THEN ${}", i + offset)).collect::<Vec<_>>().join(" ");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE authorization_codes SET used_at = CASE code_hash {} END, grant_id = CASE code_hash {} END
         WHERE code_hash IN ({}) AND used_at IS NULL
         RETURNING code_hash, grant_id, client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr, sid, expires_at",
        whens(2 * n),
        whens(n),
        super::placeholders(1, n)
    )))
    // Each group size is its own statement text: only the one-code form is kept prepared.
    .persistent(n == 1);
    for (code_hash, _, _) in codes {
        query = query.bind(code_hash);
    }
    for (_, grant_id, _) in codes {
        query = query.bind(grant_id.as_str());
    }
    for (_, _, now) in codes {
        query = query.bind(*now);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    codes
        .iter()
        .map(|(code_hash, grant_id, _)| {
            let mut won = rows.iter().filter(|row| {
                row.try_get::<String, _>("code_hash").is_ok_and(|h| h == *code_hash)
                    && row.try_get::<Option<String>, _>("grant_id").is_ok_and(|g| g.as_deref() == Some(grant_id.as_str()))
            });
            won.next().map(|row| code_from_row(code_hash, row)).transpose()
        })
        .collect()
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
