//! The "Sign-in providers" part of `/account/security`: the upstream identities linked to
//! the account, a way to link each configured provider not linked yet (through the
//! provider, in link mode), and unlinking, which never removes the last way to sign in.

use crate::clock::Timestamp;
use crate::error::PageError;
use crate::login::events::{self, AccountEvent, Origin};
use crate::login::upstream::{self, Purpose};
use crate::model::UserId;
use crate::state::AppState;
use crate::web::templates::{utc_minute, utc_machine};
use axum::response::Response;
use tower_sessions::Session;

/// A linked provider, as the page lists it.
pub struct LinkedProvider {
    pub id: String,
    pub name: String,
    pub since: String,
    pub since_iso: String,
    pub last_used: String,
    pub last_used_iso: String,
}

/// A configured provider the account may link.
pub struct LinkableProvider {
    pub id: String,
    pub name: String,
}

pub struct Providers {
    pub linked: Vec<LinkedProvider>,
    pub linkable: Vec<LinkableProvider>,
    /// Unlinking is refused when it would leave no way to sign in.
    pub can_unlink: bool,
}

fn when(at: Timestamp) -> (String, String) {
    (utc_minute(at), utc_machine(at))
}

pub async fn providers(app: &AppState, user: &UserId) -> Result<Providers, PageError> {
    let identities = app.store.upstream_identities(user).await?;
    let has_password = app.store.password_hash(user).await?.is_some();
    let linked: Vec<LinkedProvider> = identities
        .iter()
        .map(|i| {
            let (since, since_iso) = when(i.created_at);
            let (last_used, last_used_iso) = when(i.last_used_at);
            // A provider removed from the configuration still shows, by its id.
            let name = app.upstreams.display_name(&i.provider_id).to_string();
            LinkedProvider { id: i.provider_id.clone(), name, since, since_iso, last_used, last_used_iso }
        })
        .collect();
    let linkable = app
        .upstreams
        .all()
        .filter(|p| !identities.iter().any(|i| i.provider_id == p.config.id))
        .map(|p| LinkableProvider { id: p.config.id.clone(), name: p.config.name.clone() })
        .collect();
    Ok(Providers { can_unlink: has_password || linked.len() > 1, linked, linkable })
}

/// Starts linking `provider_id` (the caller checked the recent sign-in and the form).
pub async fn link(app: &AppState, session: &Session, user: &UserId, provider_id: &str) -> Result<Response, PageError> {
    if app.upstreams.get(provider_id).is_none() {
        return Err(PageError::bad_request("There is no such sign-in provider."));
    }
    upstream::begin(app, session, provider_id, "", Purpose::Link { user_id: user.clone() }).await
}

/// Unlinks `provider_id`: the words for the page, a notice or (`Err`) a refusal.
pub async fn unlink(app: &AppState, user: &UserId, provider_id: &str, origin: &Origin) -> Result<Result<String, String>, PageError> {
    let name = app.upstreams.display_name(provider_id).to_string();
    let linked = app.store.upstream_identities(user).await?.iter().any(|i| i.provider_id == provider_id);
    if !linked {
        return Ok(Err(format!("{name} is not linked to your account.")));
    }
    let now = app.now();
    if !app.store.unlink_upstream_identity(provider_id, user).await? {
        return Ok(Err(format!(
            "{name} is the only way you sign in, so it cannot be unlinked. Link another provider first (or set a password), then unlink {name}."
        )));
    }
    events::record_account_event(&app.store, user, AccountEvent::UpstreamUnlinked, Some(provider_id), origin, now).await?;
    tracing::info!(provider = provider_id, outcome = "unlinked", "upstream identity unlinked");
    Ok(Ok(format!("{name} is unlinked: it no longer signs you in here.")))
}
