//! What the resource endpoints (userinfo, the user API, introspection) read about an access
//! token and the user it speaks for, in one round trip each. The client comes from the
//! client cache, whose changes count as they do at the token endpoint (store/client_cache.rs);
//! nothing else here is cached: a revocation or a withdrawal takes effect at the next
//! request, on every node.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::consents::link_from_columns;
use super::users::user_from_columns;
use super::grants::StoredGrant;
use super::{Result, Store, StoredLink, auth_from_row};
use crate::model::{Client, ClientId, GrantId, User};

/// An access token's state: whether its `jti` was revoked, its client (with the approved
/// scopes) and, for a user token, its grant and what the release rule needs about the user.
#[derive(Clone, Debug)]
pub struct AccessRecord {
    pub revoked: bool,
    pub client: Client,
    pub grant: Option<StoredGrant>,
    /// The grant's user at the token's client (`None` when there is no grant or no such user).
    pub subject: Option<ReleaseSubject>,
}

/// The user and the facts of the release rule that depend on them for one client.
#[derive(Clone, Debug)]
pub struct ReleaseSubject {
    pub user: User,
    /// The scopes consented to, as stored.
    pub consent: Option<String>,
    pub link: Option<StoredLink>,
}

/// The subject columns, from `users u`, `consents co` and `client_user_links l` (aliased so
/// they do not clash with the client's or the grant's).
const SUBJECT_COLUMNS: &str = "u.id AS u_id, u.email AS u_email, u.email_verified AS u_email_verified, u.name AS u_name, u.is_admin AS u_is_admin,
    u.created_at AS u_created_at, u.updated_at AS u_updated_at, co.scope AS consent_scope,
    l.user_id AS l_user_id, l.client_id AS l_client_id, l.sub AS l_sub, l.scope AS l_scope, l.first_signin_at AS l_first_signin_at,
    l.last_signin_at AS l_last_signin_at, l.withdrawn_at AS l_withdrawn_at";

fn subject_from_row(row: &AnyRow) -> Result<Option<ReleaseSubject>> {
    if row.try_get::<Option<String>, _>("u_id")?.is_none() {
        return Ok(None);
    }
    let link = match row.try_get::<Option<String>, _>("l_user_id")? {
        Some(_) => Some(link_from_columns(row, "l_")?),
        None => None,
    };
    Ok(Some(ReleaseSubject { user: user_from_columns(row, "u_")?, consent: row.try_get("consent_scope")?, link }))
}

impl Store {
    /// Everything needed to accept an access token with `jti`, issued to `client_id` for
    /// grant `gid` (none for a client's own token), and to release claims about the grant's
    /// user: the client (with its approved scopes) as [`Store::client`] has it, and one query
    /// over primary keys for the rest. `None` when the client does not exist.
    pub async fn access_record(&self, jti: &str, client_id: &str, gid: Option<&GrantId>) -> Result<Option<AccessRecord>> {
        let Some(client) = self.client(client_id).await? else { return Ok(None) };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = $1) AS revoked,
                    g.id AS grant_id, g.client_id AS grant_client_id, g.scope AS grant_scope, g.user_id, g.auth_time, g.amr, g.sid, g.revoked_at,
                    {SUBJECT_COLUMNS}
             FROM (SELECT 1 AS one) AS token
             LEFT JOIN grants g ON g.id = $2
             LEFT JOIN users u ON u.id = g.user_id
             LEFT JOIN consents co ON co.user_id = g.user_id AND co.client_id = $3
             LEFT JOIN client_user_links l ON l.user_id = g.user_id AND l.client_id = $3"
        )))
        .bind(jti)
        .bind(gid.map_or("", GrantId::as_str))
        .bind(client_id)
        .fetch_one(&self.pool)
        .await?;
        let grant = match row.try_get::<Option<String>, _>("grant_id")? {
            Some(id) => Some(StoredGrant {
                id: GrantId(id),
                client_id: ClientId(row.try_get("grant_client_id")?),
                scope: row.try_get("grant_scope")?,
                auth: auth_from_row(&row)?,
                revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            }),
            None => None,
        };
        Ok(Some(AccessRecord {
            revoked: row.try_get::<i64, _>("revoked")? != 0,
            client,
            grant,
            subject: subject_from_row(&row)?,
        }))
    }

    /// The user a client knows by `sub`, with the release facts for that client (the user
    /// API): one query. `None` when no link carries that `sub` at the client.
    pub async fn release_subject_by_sub(&self, client: &ClientId, sub: &str) -> Result<Option<ReleaseSubject>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBJECT_COLUMNS}
             FROM client_user_links l
             JOIN users u ON u.id = l.user_id
             LEFT JOIN consents co ON co.user_id = l.user_id AND co.client_id = l.client_id
             WHERE l.client_id = $1 AND l.sub = $2"
        )))
        .bind(client.as_str())
        .bind(sub)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => subject_from_row(&row),
            None => Ok(None),
        }
    }
}
