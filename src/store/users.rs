use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, flag, on_conflict};
use crate::clock::Timestamp;
use crate::model::{User, UserId};

pub struct NewUser {
    pub email: String,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub is_admin: bool,
}

/// Emails compare case-insensitively; the address is stored as given.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A new user row (`$8` is both the creation and the update time).
pub(super) const INSERT_USER: &str = "INSERT INTO users (id, email, email_norm, email_verified, name, password_hash, is_admin, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";

/// An account as a password sign-in sees it.
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
    /// A confirmed second factor, which the sign-in must ask for (as `has_second_factor`).
    pub has_second_factor: bool,
}

const COLUMNS: &str = "id, email, email_verified, name, is_admin, created_at, updated_at";

fn user_from_row(row: &AnyRow) -> Result<User> {
    user_from_columns(row, "")
}

/// A user from the [`COLUMNS`] of `row`, each named with `prefix` (a query that joins users
/// to other tables aliases them).
pub(super) fn user_from_columns(row: &AnyRow, prefix: &str) -> Result<User> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(User {
        id: UserId(row.try_get(col("id").as_str())?),
        email: row.try_get(col("email").as_str())?,
        email_verified: row.try_get::<i64, _>(col("email_verified").as_str())? != 0,
        name: row.try_get(col("name").as_str())?,
        is_admin: row.try_get::<i64, _>(col("is_admin").as_str())? != 0,
        created_at: row.try_get(col("created_at").as_str())?,
        updated_at: row.try_get(col("updated_at").as_str())?,
    })
}

impl Store {
    pub async fn create_user(&self, user: NewUser, now: Timestamp) -> Result<User> {
        let id = UserId(uuid::Uuid::new_v4().to_string());
        sqlx::query(INSERT_USER)
            .bind(id.as_str())
            .bind(user.email.trim())
            .bind(normalise_email(&user.email))
            .bind(flag(false))
            .bind(user.name.clone())
            .bind(user.password_hash)
            .bind(flag(user.is_admin))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(on_conflict)?;
        self.user(&id).await?.ok_or_else(|| StoreError::Corrupt("user vanished after insert".into()))
    }

    pub async fn user(&self, id: &UserId) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Sets a new password hash (already argon2id). `updated_at` stays: it is the profile
    /// claim clients see, and a password is not part of the profile.
    pub async fn set_password_hash(&self, id: &UserId, hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user's password hash, for re-authentication.
    pub async fn password_hash(&self, id: &UserId) -> Result<Option<String>> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1").bind(id.as_str()).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(row) => row.try_get("password_hash")?,
            None => None,
        })
    }

    /// The user and their password hash.
    pub async fn user_credentials(&self, email: &str) -> Result<Option<(User, Option<String>)>> {
        Ok(self.sign_in_credentials(email).await?.map(|c| (c.user, c.password_hash)))
    }

    /// What a password sign-in needs to know of the account, in one query: a sign-in is a
    /// dozen statements, and each is a round trip to the database.
    pub async fn sign_in_credentials(&self, email: &str) -> Result<Option<Credentials>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, password_hash,
                    (SELECT COUNT(*) FROM totp_factors t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL) AS second_factors
             FROM users WHERE email_norm = $1"
        )))
        .bind(normalise_email(email))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(Credentials {
                user: user_from_row(&row)?,
                password_hash: row.try_get("password_hash")?,
                has_second_factor: row.try_get::<i64, _>("second_factors")? > 0,
            })),
            None => Ok(None),
        }
    }
}
