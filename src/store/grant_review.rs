//! Admin review of scope grants: counts per client and scope, grants per user. Every
//! filter has an index (see migrations/0003), checked by `grant_query_plans`.

use sqlx::Row;

use super::{Result, Store};
use crate::clock::Timestamp;
use crate::model::{ClientId, UserId};

/// How many users granted one scope to one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeCount {
    pub scope: String,
    pub users: i64,
}

/// One scope a user granted to one client, since when.
#[derive(Clone, Debug)]
pub struct UserGrant {
    pub client_id: ClientId,
    pub scope: String,
    pub granted_at: Timestamp,
}

const COUNT_BY_CLIENT: &str = "SELECT scope, COUNT(*) AS users FROM granted_scopes WHERE client_id = $1 GROUP BY scope ORDER BY scope";
const GRANTS_OF_USER: &str =
    "SELECT client_id, scope, granted_at FROM granted_scopes WHERE user_id = $1 ORDER BY client_id, scope";
const CLIENTS_WITH_SCOPE: &str =
    "SELECT client_id, COUNT(*) AS users FROM granted_scopes WHERE scope = $1 GROUP BY client_id ORDER BY client_id LIMIT $2 OFFSET $3";

impl Store {
    pub async fn scope_counts(&self, client: &ClientId) -> Result<Vec<ScopeCount>> {
        let rows = sqlx::query(COUNT_BY_CLIENT).bind(client.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(ScopeCount { scope: r.try_get("scope")?, users: r.try_get("users")? })).collect()
    }

    pub async fn grants_of_user(&self, user: &UserId) -> Result<Vec<UserGrant>> {
        let rows = sqlx::query(GRANTS_OF_USER).bind(user.as_str()).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok(UserGrant { client_id: ClientId(r.try_get("client_id")?), scope: r.try_get("scope")?, granted_at: r.try_get("granted_at")? }))
            .collect()
    }

    /// Clients that hold `scope` from at least one user, with the number of users.
    pub async fn clients_with_scope(&self, scope: &str, limit: i64, offset: i64) -> Result<Vec<(ClientId, i64)>> {
        let rows = sqlx::query(CLIENTS_WITH_SCOPE).bind(scope).bind(limit).bind(offset).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((ClientId(r.try_get("client_id")?), r.try_get("users")?))).collect()
    }

    /// The database's plan for each grant-review query, so a test can show they use indexes.
    /// On PostgreSQL sequential scans are discouraged for the check: on small test tables
    /// the planner would rightly prefer them.
    pub async fn grant_query_plans(&self) -> Result<Vec<(&'static str, String)>> {
        let mut conn = self.pool.acquire().await?;
        let sqlite = conn.backend_name().eq_ignore_ascii_case("sqlite");
        let prefix = if sqlite { "EXPLAIN QUERY PLAN " } else { "EXPLAIN " };
        if !sqlite {
            sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await?;
        }
        let mut plans = Vec::new();
        for (name, sql, binds) in [
            ("count by client", COUNT_BY_CLIENT, 1),
            ("grants of user", GRANTS_OF_USER, 1),
            ("clients with scope", CLIENTS_WITH_SCOPE, 3),
        ] {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("{prefix}{sql}"))).bind("x");
            if binds == 3 {
                query = query.bind(10_i64).bind(0_i64);
            }
            let rows = query.fetch_all(&mut *conn).await?;
            let text: Vec<String> = rows
                .iter()
                .map(|r| {
                    // SQLite: (id, parent, notused, detail); PostgreSQL: one text column.
                    r.try_get::<String, _>(if sqlite { 3 } else { 0 }).unwrap_or_default()
                })
                .collect();
            plans.push((name, text.join("\n")));
        }
        if !sqlite {
            sqlx::query("RESET enable_seqscan").execute(&mut *conn).await?;
        }
        Ok(plans)
    }
}
