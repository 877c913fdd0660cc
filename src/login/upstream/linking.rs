//! Linking an upstream identity to an existing account, two ways:
//! - at sign-in, when the identity is unknown and an account has the same address, verified
//!   on both sides: the identity waits in the session ([`PendingLink`]: single use, ten
//!   minutes, bound to that account) while the user signs in to the account the usual way
//!   (password, then the second factor); only a completed sign-in to that very account
//!   links it ([`complete`]). Any other sign-in in the meantime drops it.
//! - from `/account/security` while signed in (recent sign-in), through the provider in
//!   link mode ([`link_signed_in`]).
//!
//! Either way the link is an account event the history shows.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::Identity;
use super::provider::Provider;
use crate::clock::Timestamp;
use crate::error::PageError;
use crate::login::events::{self, AccountEvent, Origin};
use crate::login::session;
use crate::model::{Authentication, User, UserId};
use crate::state::AppState;
use crate::store::StoreError;
use crate::web::params::Params;
use crate::web::{csrf, flash, see_other};

const PENDING_LINK: &str = "upstream_link";
/// How long the user may take to prove the account.
pub const LINK_TTL: i64 = 10 * 60;

/// An identity waiting to be linked to `user_id` once the user proves that account.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PendingLink {
    provider_id: String,
    subject: String,
    user_id: UserId,
    started_at: Timestamp,
}

fn login_url(request_id: &str) -> String {
    if request_id.is_empty() {
        return "/login".into();
    }
    format!("/login?request_id={}", url::form_urlencoded::byte_serialize(request_id.as_bytes()).collect::<String>())
}

/// Keeps the identity for linking and sends the user to the sign-in page, which then
/// explains the offer (see [`notice`]).
pub async fn offer(app: &AppState, session: &Session, provider: &Provider, identity: &Identity, user: &User, request_id: &str) -> Result<Response, PageError> {
    let link = PendingLink { provider_id: provider.config.id.clone(), subject: identity.subject.clone(), user_id: user.id.clone(), started_at: app.now() };
    session.insert(PENDING_LINK, &link).await.map_err(|e| PageError::internal(&e))?;
    Ok(see_other(&login_url(request_id)))
}

async fn pending(app: &AppState, session: &Session) -> Result<Option<PendingLink>, PageError> {
    let link = session.get::<PendingLink>(PENDING_LINK).await.map_err(|e| PageError::internal(&e))?;
    Ok(link.filter(|l| app.now() - l.started_at <= LINK_TTL))
}

/// What the sign-in page says about a link under way.
pub struct LinkNotice {
    pub message: String,
    /// The address of the account to sign in to.
    pub email: String,
}

pub async fn notice(app: &AppState, session: &Session) -> Result<Option<LinkNotice>, PageError> {
    let Some(link) = pending(app, session).await? else { return Ok(None) };
    let Some(user) = app.store.user(&link.user_id).await? else { return Ok(None) };
    let name = app.upstreams.display_name(&link.provider_id);
    // An account made through another provider has no password: it proves itself there.
    let how = if app.store.password_hash(&user.id).await?.is_some() { "with its password" } else { "the way you usually do" };
    let message = format!(
        "You already have an account here with the address {email}, which {name} also confirms. To link {name} to it, sign in to \
         that account below ({how}, then your second factor if you have one). From then on, either way signs you in.",
        email = user.email
    );
    Ok(Some(LinkNotice { message, email: user.email }))
}

/// `POST /login/link/cancel`: forget the link under way.
pub async fn post_cancel(State(_app): State<AppState>, session: Session, body: Bytes) -> Response {
    let result = async {
        let form = Params::parse(&body).map_err(|_| PageError::bad_request("The form could not be read."))?;
        csrf::verify(&session, form.get("csrf_token")).await?;
        session.remove_value(PENDING_LINK).await.map_err(|e| PageError::internal(&e))?;
        Ok::<_, PageError>(see_other(&login_url(form.get("request_id").unwrap_or(""))))
    };
    match result.await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// After a completed sign-in: links the waiting identity if the user proved the account it
/// waits for. The pending link is gone afterwards whatever happened.
pub async fn complete(app: &AppState, session: &Session, origin: &Origin, auth: &Authentication) -> Result<(), PageError> {
    let Some(link) = session.remove::<PendingLink>(PENDING_LINK).await.map_err(|e| PageError::internal(&e))? else { return Ok(()) };
    let name = app.upstreams.display_name(&link.provider_id).to_string();
    let now = app.now();
    if now - link.started_at > LINK_TTL {
        tracing::info!(provider = %link.provider_id, outcome = "expired", "upstream link not completed");
        return flash::set(session, &format!("Linking {name} took too long and was not done. Sign in with {name} again to link it.")).await;
    }
    if link.user_id != auth.user_id {
        tracing::info!(provider = %link.provider_id, outcome = "other_account", "upstream link not completed");
        return flash::set(session, &format!("You signed in to another account than the one with the address {name} confirms, so {name} was not linked.")).await;
    }
    let message = link_identity(app, &link.provider_id, &link.subject, &auth.user_id, origin, now).await?.message(&name);
    flash::set(session, &message).await
}

/// How linking went.
enum Linked {
    Done,
    /// Linked to this account already.
    Already,
    /// Linked to another account.
    Elsewhere,
}

impl Linked {
    fn message(&self, name: &str) -> String {
        match self {
            Linked::Done => format!("{name} is linked to your account: you can sign in with it."),
            Linked::Already => format!("{name} was already linked to your account."),
            Linked::Elsewhere => format!("This {name} account is linked to another account here, so it was not linked to yours."),
        }
    }
}

async fn link_identity(app: &AppState, provider_id: &str, subject: &str, user: &UserId, origin: &Origin, now: Timestamp) -> Result<Linked, PageError> {
    match app.store.link_upstream_identity(provider_id, subject, user, now).await {
        Ok(false) => Err(crate::oidc::authorize::account_gone_page()),
        Ok(true) => {
            events::record_account_event(&app.store, user, AccountEvent::UpstreamLinked, Some(provider_id), origin, now).await?;
            tracing::info!(provider = provider_id, outcome = "linked", "upstream identity linked");
            Ok(Linked::Done)
        }
        Err(StoreError::Conflict) => {
            let owner = app.store.upstream_identity_owner(provider_id, subject).await?;
            Ok(if owner.as_ref() == Some(user) { Linked::Already } else { Linked::Elsewhere })
        }
        Err(e) => Err(e.into()),
    }
}

/// The callback of a link started from `/account/security` by `user_id`: links the
/// identity to that account, if it is still the one signed in and the identity is not
/// another account's.
pub async fn link_signed_in(app: &AppState, session: &Session, origin: &Origin, provider: &Provider, identity: &Identity, user_id: &UserId) -> Result<Response, PageError> {
    let Some(auth) = session::current(session).await? else { return Ok(see_other("/login")) };
    if auth.user_id != *user_id {
        return Err(PageError::bad_request("You signed in to another account since you started linking. Start again from the Security page."));
    }
    let name = &provider.config.name;
    match link_identity(app, &provider.config.id, &identity.subject, user_id, origin, app.now()).await? {
        Linked::Elsewhere => Err(PageError::new(
            StatusCode::CONFLICT,
            "Already linked to another account",
            format!("This {name} account is linked to another account here. To link it to this one, sign in to the other account with {name} and unlink it there first."),
        )),
        linked => {
            flash::set(session, &linked.message(name)).await?;
            Ok(see_other("/account/security"))
        }
    }
}
