//! `/account/delete`: the user erases their account for real (GDPR art. 17), after a recent
//! sign-in and typing their email address. What goes and what stays is listed on the page
//! and in `docs/privacy.md`; the SQL is `store::erasure`.
//!
//! The clients the user registered are deleted with the account, as GitHub does with a
//! user's OAuth apps: a client nobody owns any more could not rotate its secrets or answer
//! an admin's questions, and keeping it would keep the owner's link to it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::security::Recent;
use crate::clock::Timestamp;
use crate::error::PageError;
use crate::login::{session, throttle};
use crate::model::User;
use crate::state::AppState;
use crate::store::{Erasure, ErasureOutcome, Store, StoreError, normalise_email};
use crate::web::params::Params;
use crate::web::{csrf, render};

/// Shown instead of the form to the only administrator.
const LAST_ADMIN: &str = "You are the only administrator of this Sluis, so your account cannot be deleted: make another user an administrator first (sluis user create --admin), then delete this account.";

/// Whether `typed` confirms deleting `user`: their email address, as email addresses
/// compare (case and surrounding spaces aside).
pub fn confirms(user: &User, typed: &str) -> bool {
    !typed.trim().is_empty() && normalise_email(typed) == normalise_email(&user.email)
}

/// Erases `user`'s account and the clients they registered (see [`Store::erase_user`]).
pub async fn delete_account(store: &Store, user: &User, now: Timestamp) -> Result<ErasureOutcome, StoreError> {
    let pseudonym = format!("erased-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let throttle_keys = throttle::account_keys(&user.id, &user.email);
    let outcome = store.erase_user(&Erasure { user: &user.id, email: &user.email, pseudonym: &pseudonym, throttle_keys: &throttle_keys, now }).await?;
    if let ErasureOutcome::Erased { clients } = &outcome {
        // Only the pseudonym: the log must not undo the erasure.
        tracing::info!(pseudonym, clients_deleted = clients.len(), "account deleted");
    }
    Ok(outcome)
}

#[derive(askama::Template)]
#[template(path = "account_delete.html")]
struct DeletePage<'a> {
    csrf_token: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    /// Why the account cannot be deleted (then there is no form).
    refused: Option<&'a str>,
    apps: usize,
    clients: Vec<String>,
}

#[derive(askama::Template)]
#[template(path = "account_deleted.html")]
struct DeletedPage {
    clients: usize,
}

pub async fn get_delete(State(app): State<AppState>, recent: Recent) -> Result<Response, PageError> {
    page(&app, &recent, None).await
}

async fn page(app: &AppState, recent: &Recent, error: Option<&str>) -> Result<Response, PageError> {
    let user = &recent.me.user;
    let last_admin = user.is_admin && app.store.admin_count().await? <= 1;
    let apps = app.store.links_of_user(&user.id).await?.iter().filter(|l| l.withdrawn_at.is_none()).count();
    let clients = app.store.clients_of_owner(&user.id).await?.into_iter().map(|c| c.name).collect();
    let token = csrf::token(&recent.me.session).await?;
    Ok(render(&DeletePage { csrf_token: &token, email: &user.email, error, refused: last_admin.then_some(LAST_ADMIN), apps, clients }))
}

pub async fn post_delete(State(app): State<AppState>, recent: Recent, body: Bytes) -> Result<Response, PageError> {
    let form = Params::parse(&body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(&recent.me.session, form.get("csrf_token")).await?;
    if !confirms(&recent.me.user, form.get("confirm").unwrap_or("")) {
        return page(&app, &recent, Some("Type your email address exactly as shown to confirm. Nothing was deleted.")).await;
    }
    match delete_account(&app.store, &recent.me.user, app.now()).await? {
        ErasureOutcome::Erased { clients } => {
            // The session record is already gone with the others; this clears the cookie.
            session::sign_out(&recent.me.session).await?;
            let mut response = render(&DeletedPage { clients: clients.len() });
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
        ErasureOutcome::LastAdmin => page(&app, &recent, Some(LAST_ADMIN)).await,
        // Erased meanwhile (a second click): the session is signed out on its next request.
        ErasureOutcome::NotFound => Ok(render(&DeletedPage { clients: 0 })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserId;

    #[test]
    fn only_the_email_address_confirms() {
        let user = User {
            id: UserId("u1".into()),
            email: "Ada@Example.com".into(),
            email_verified: false,
            name: None,
            is_admin: false,
            created_at: 0,
            updated_at: 0,
        };
        assert!(confirms(&user, "ada@example.com"));
        assert!(confirms(&user, "  ADA@EXAMPLE.COM "));
        for wrong in ["", "   ", "ada", "ada@example.org", "delete"] {
            assert!(!confirms(&user, wrong), "{wrong:?}");
        }
    }
}
