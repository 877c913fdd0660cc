//! Sign-in through upstream providers: OpenID Connect ones (Google, Microsoft, any issuer)
//! and GitHub (OAuth 2.0 and its REST API, `github`).
//!
//! `GET /login/upstream/{id}` starts: the provider's discovery document (cached, see
//! `provider`) gives the authorization endpoint; `state`, `nonce` and the PKCE verifier stay
//! in the session, bound to this browser, single use, for ten minutes. `GET
//! /login/upstream/{id}/callback` finishes: the state is taken from the session, the code
//! exchanged, the ID token validated (`flow`), and the identity, keyed by (provider,
//! subject) and never by email, leads to an account (`accounts`). Then the usual path:
//! the second factor if the account has one, `amr` `fed`. The same flow, started while
//! signed in, links a provider to the account (`linking`) or re-authenticates an account
//! without a password (`reauth`).

mod accounts;
mod flow;
mod github;
pub mod linking;
pub mod microsoft;
pub mod provider;
mod reauth;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

pub use flow::{Identity, Purpose};
pub use provider::Providers;

use self::accounts::Resolved;
use self::flow::PendingUpstream;
use self::provider::Provider;
use super::events::{self, Attempt, Failure, Method, Origin, Outcome};
use crate::clock::Timestamp;
use crate::config::UpstreamKind;
use crate::error::{ErrorCode, PageError};
use crate::model::ClientId;
use crate::oidc::authorize::{error_response, expired_page, load_pending};
use crate::state::AppState;
use crate::web::params::Params;
use crate::web::see_other;

/// Session key of the upstream sign-ins under way.
const PENDING: &str = "upstream_logins";
/// At most this many at once (several tabs); the oldest gives way.
const MAX_PENDING: usize = 3;

/// What can go wrong with a provider.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Discovery, keys or the token endpoint cannot be reached or make no sense.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The token endpoint refused the code.
    #[error("provider refused: {0}")]
    Refused(String),
    /// The answer fails validation.
    #[error("invalid answer: {0}")]
    Invalid(String),
    /// The ID token names a key we do not have (yet).
    #[error("unknown signing key")]
    UnknownKey,
}

/// The redirect URI to register at the provider.
pub fn callback_uri(app: &AppState, provider_id: &str) -> String {
    format!("{}/login/upstream/{provider_id}/callback", app.issuer())
}

fn provider<'a>(app: &'a AppState, id: &str) -> Result<&'a Provider, PageError> {
    app.upstreams.get(id).ok_or_else(PageError::not_found)
}

fn unavailable(provider: &Provider, error: &UpstreamError) -> PageError {
    tracing::warn!(provider = %provider.config.id, "upstream sign-in failed: {error}");
    let name = &provider.config.name;
    PageError::new(
        StatusCode::BAD_GATEWAY,
        "Sign-in could not be completed",
        format!("Signing in with {name} did not work this time. Go back and try again, or sign in another way."),
    )
}

#[derive(Deserialize)]
pub struct StartQuery {
    request_id: Option<String>,
}

/// Sends the browser to the provider. The pending authorization request, if any, must exist.
pub async fn get_start(State(app): State<AppState>, session: Session, Path(id): Path<String>, Query(q): Query<StartQuery>) -> Response {
    match begin(&app, &session, &id, q.request_id.as_deref().unwrap_or(""), Purpose::SignIn).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Sends the browser to provider `id` for `purpose` (linking and re-authentication start
/// here too, from their own guarded forms).
pub async fn begin(app: &AppState, session: &Session, id: &str, request_id: &str, purpose: Purpose) -> Result<Response, PageError> {
    let provider = provider(app, id)?;
    if !request_id.is_empty() && load_pending(app, request_id).await?.is_none() {
        return Err(expired_page());
    }
    let now = app.now();
    let redirect_uri = callback_uri(app, id);
    let started = match provider.config.kind {
        UpstreamKind::Github => github::start(provider, &redirect_uri, request_id, purpose, now),
        _ => {
            let discovered = provider.discovered(app.upstreams.http(), now).await.map_err(|e| unavailable(provider, &e))?;
            flow::start(provider, &discovered, &redirect_uri, request_id, purpose, now)
        }
    };
    let (url, pending) = started.map_err(|e| unavailable(provider, &e))?;
    let mut all = pendings(session).await?;
    all.retain(|p| now - p.started_at <= flow::PENDING_TTL);
    all.push(pending);
    let excess = all.len().saturating_sub(MAX_PENDING);
    all.drain(..excess);
    session.insert(PENDING, &all).await.map_err(|e| PageError::internal(&e))?;
    Ok(see_other(url.as_str()))
}

async fn pendings(session: &Session) -> Result<Vec<PendingUpstream>, PageError> {
    Ok(session.get::<Vec<PendingUpstream>>(PENDING).await.map_err(|e| PageError::internal(&e))?.unwrap_or_default())
}

/// The pending sign-in with this `state`, removed from the session whatever follows.
async fn take_pending(session: &Session, state: &str) -> Result<Option<PendingUpstream>, PageError> {
    let mut all = pendings(session).await?;
    let Some(at) = all.iter().position(|p| !state.is_empty() && crate::crypto::constant_time_eq(&p.state, state)) else { return Ok(None) };
    let pending = all.remove(at);
    session.insert(PENDING, &all).await.map_err(|e| PageError::internal(&e))?;
    Ok(Some(pending))
}

/// The provider's answer: a code, or an error (RFC 6749 §4.1.2.1).
pub async fn get_callback(State(app): State<AppState>, session: Session, origin: Origin, Path(id): Path<String>, RawQuery(query): RawQuery) -> Response {
    match callback(&app, &session, &origin, &id, query.unwrap_or_default().as_bytes()).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn callback(app: &AppState, session: &Session, origin: &Origin, id: &str, query: &[u8]) -> Result<Response, PageError> {
    let provider = provider(app, id)?;
    let name = provider.config.name.clone();
    let now = app.now();
    let params = Params::parse(query).map_err(|_| PageError::bad_request("The answer from the sign-in provider could not be read."))?;
    let method = Method::Upstream(id.to_string());
    let pending = take_pending(session, params.get("state").unwrap_or("")).await?;
    let pending = pending.filter(|p| p.provider_id == id && now - p.started_at <= flow::PENDING_TTL);
    let client = match &pending {
        Some(p) if !p.request_id.is_empty() => load_pending(app, &p.request_id).await?.map(|(r, _)| ClientId(r.client_id)),
        _ => None,
    };
    let record = |outcome| {
        let attempt = Attempt { user: None, client: client.as_ref(), method: method.clone(), outcome };
        async move { events::record_attempt(&app.store, &attempt, origin, now).await.map(|_| ()) }
    };
    let Some(pending) = pending else {
        // A replayed, forged or stale callback, or one from another browser.
        record(Outcome::Failure(Failure::UpstreamInvalid)).await?;
        tracing::info!(provider = id, outcome = "failed", "upstream callback without a matching sign-in");
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Sign-in could not be completed",
            format!("This sign-in with {name} has expired, was already used, or was started in another browser. Go back and start again."),
        ));
    };
    if let Some(error) = params.get("error") {
        return upstream_error(app, provider, &pending, error, params.get("error_description"), record).await;
    }
    let identity = match exchange(app, provider, &pending, &params, now).await {
        Ok(identity) => identity,
        Err(e) => {
            let reason = if matches!(e, UpstreamError::Invalid(_) | UpstreamError::UnknownKey) { Failure::UpstreamInvalid } else { Failure::UpstreamFailed };
            record(Outcome::Failure(reason)).await?;
            return Err(unavailable(provider, &e));
        }
    };
    match &pending.purpose {
        Purpose::SignIn => {}
        Purpose::Link { user_id } => return linking::link_signed_in(app, session, origin, provider, &identity, user_id).await,
        Purpose::Reauth { user_id, next } => return reauth::finish(app, session, origin, provider, &identity, user_id, next).await,
    }
    let user = match accounts::resolve(app, provider, &identity, now).await? {
        Resolved::Account(user) => user,
        Resolved::Offer(user) => {
            // Not a sign-in: the user may link after proving the existing account.
            record(Outcome::Failure(Failure::AccountExists)).await?;
            tracing::info!(provider = id, outcome = "link_offered", "upstream sign-in matches an account's verified address");
            return linking::offer(app, session, provider, &identity, &user, &pending.request_id).await;
        }
        Resolved::Refused(refusal) => {
            record(Outcome::Failure(refusal.reason())).await?;
            tracing::info!(provider = id, outcome = "refused", reason = refusal.reason().as_str(), "upstream sign-in without an account");
            return Err(refusal.page(&name));
        }
    };
    let attempt = Attempt { user: Some(&user.id), client: client.as_ref(), method: method.clone(), outcome: Outcome::Success };
    events::record_attempt(&app.store, &attempt, origin, now).await?;
    tracing::info!(provider = id, outcome = "ok", "upstream sign-in");
    let has_second_factor = app.store.has_second_factor(&user.id).await?;
    super::second_factor::after_first_factor(app, session, origin, &user, has_second_factor, vec!["fed".into()], &pending.request_id).await
}

/// The code exchanged for the identity, as the provider's kind does it.
async fn exchange(app: &AppState, provider: &Provider, pending: &PendingUpstream, params: &Params, now: Timestamp) -> Result<Identity, UpstreamError> {
    let code = params.get("code").unwrap_or("");
    if code.is_empty() {
        return Err(UpstreamError::Invalid("no code".into()));
    }
    let redirect_uri = callback_uri(app, &provider.config.id);
    let http = app.upstreams.http();
    if provider.config.kind == UpstreamKind::Github {
        return github::finish(provider, http, pending, code, &redirect_uri).await;
    }
    let discovered = provider.discovered(http, now).await?;
    if !flow::response_issuer_fits(&discovered, params.get("iss")) {
        return Err(UpstreamError::Invalid("an authorization response from another issuer".into()));
    }
    flow::finish(provider, http, discovered, pending, code, &redirect_uri, now).await
}

/// The provider answered with an error. The user gave up (`access_denied`): the client,
/// if one waits, hears `access_denied`; anything else is a page.
async fn upstream_error<F, Fut>(app: &AppState, provider: &Provider, pending: &PendingUpstream, error: &str, description: Option<&str>, record: F) -> Result<Response, PageError>
where
    F: Fn(Outcome) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::store::StoreError>>,
{
    let name = &provider.config.name;
    tracing::info!(provider = %provider.config.id, error, description = description.unwrap_or(""), "upstream answered with an error");
    if error == "access_denied" {
        record(Outcome::Failure(Failure::UpstreamCancelled)).await?;
        if !pending.request_id.is_empty()
            && let Some((request, _)) = load_pending(app, &pending.request_id).await?
        {
            app.store.delete_auth_request(&pending.request_id).await?;
            let description = format!("the user cancelled signing in with {name}");
            return Ok(error_response(app, &request.redirect_uri, request.response_mode, request.state.as_deref(), ErrorCode::AccessDenied, Some(&description)));
        }
        return Err(PageError::new(StatusCode::BAD_REQUEST, "Sign-in cancelled", format!("Signing in with {name} was cancelled.")));
    }
    record(Outcome::Failure(Failure::UpstreamFailed)).await?;
    // The error code is a token of RFC 6749's alphabet; the description is the provider's
    // words and stays in the log.
    let code: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
    Err(PageError::new(
        StatusCode::BAD_GATEWAY,
        "Sign-in could not be completed",
        format!("{name} could not sign you in ({code}). Go back and try again, or sign in another way."),
    ))
}

/// One button per configured provider on the sign-in page.
pub struct Button {
    pub name: String,
    pub href: String,
}

pub fn buttons(app: &AppState, request_id: &str) -> Vec<Button> {
    app.upstreams
        .all()
        .map(|p| {
            let mut href = format!("/login/upstream/{}", p.config.id);
            if !request_id.is_empty() {
                href.push_str("?request_id=");
                href.extend(url::form_urlencoded::byte_serialize(request_id.as_bytes()));
            }
            Button { name: p.config.name.clone(), href }
        })
        .collect()
}
