//! `/account/apps`: the apps holding a link to the user, what the release rule lets each
//! receive now, and withdrawing one (DESIGN §4: the link and consent end, the client's
//! tokens for the user are revoked at once).
//!
//! Withdrawn apps stay listed, marked withdrawn: after pressing Withdraw a user expects to
//! see that it took effect, and the link row is kept anyway (signing in again revives it).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use super::SignedIn;
use crate::clock::Timestamp;
use crate::error::PageError;
use crate::login::events::{self, AccountEvent, Origin};
use crate::model::{ClientId, ClientStatus, UserId};
use crate::privacy::{self, Catalogue, Link, ReleaseFacts, ScopeSet};
use crate::state::AppState;
use crate::store::{Store, StoreError};
use crate::web::params::Params;
use crate::web::templates::{AppsPage, ConnectedAppLine, WithdrawnAppLine, utc_machine, utc_minute};
use crate::web::{csrf, flash, render, see_other};

/// Shown for a link whose client was removed from the registry.
const REMOVED_APP: &str = "A removed app";

/// One app holding a link to the user.
#[derive(Clone, Debug)]
pub struct ConnectedApp {
    pub client_id: ClientId,
    pub name: String,
    /// What `privacy::releasable` allows now: the scopes granted at sign-in, narrowed by the
    /// client's policy and the user's consent. Empty once withdrawn.
    pub receives: ScopeSet,
    pub suspended: bool,
    pub first_signin_at: Timestamp,
    pub last_signin_at: Timestamp,
    pub withdrawn_at: Option<Timestamp>,
}

/// The user's apps, most recent sign-in first, withdrawn ones included.
pub async fn connected_apps(store: &Store, catalogue: &Catalogue, user: &UserId) -> Result<Vec<ConnectedApp>, StoreError> {
    let links = store.links_of_user(user).await?;
    let consents: HashMap<ClientId, ScopeSet> = store
        .consents_of_user(user)
        .await?
        .into_iter()
        .filter_map(|(client, scope)| Some((client, ScopeSet::parse(&scope)?)))
        .collect();
    let mut apps = Vec::with_capacity(links.len());
    for link in links {
        let client = store.client(link.client_id.as_str()).await?;
        let granted = ScopeSet::parse(&link.scope).unwrap_or_default();
        let receives = match &client {
            // The same rule `privacy::release` applies to a token carrying the granted scopes.
            Some(client) => privacy::releasable(&ReleaseFacts {
                policy: client.policy(catalogue),
                token_scope: &granted,
                consent: consents.get(&link.client_id),
                link: if link.withdrawn_at.is_some() { Link::Withdrawn } else { Link::Active },
            }),
            None => ScopeSet::default(),
        };
        apps.push(ConnectedApp {
            name: client.as_ref().map_or_else(|| REMOVED_APP.to_string(), |c| c.name.clone()),
            suspended: client.as_ref().is_some_and(|c| c.status == ClientStatus::Suspended),
            client_id: link.client_id,
            receives,
            first_signin_at: link.first_signin_at,
            last_signin_at: link.last_signin_at,
            withdrawn_at: link.withdrawn_at,
        });
    }
    Ok(apps)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Withdrawal {
    Withdrawn { app_name: String },
    /// Withdrawn before (a second click); consent and tokens were cleared again anyway.
    AlreadyWithdrawn { app_name: String },
    /// The user never signed in to this client (or it does not exist).
    NotConnected,
}

/// The user withdraws an app: `store.withdraw_link` ends link and consent and revokes the
/// client's refresh and access tokens for the user in one transaction. The next sign-in
/// to that client asks for consent again, as there is none. A withdrawal is an account
/// event in the user's history.
pub async fn withdraw(store: &Store, user: &UserId, client: &ClientId, origin: &Origin, now: Timestamp) -> Result<Withdrawal, StoreError> {
    if store.link(user, client).await?.is_none() {
        return Ok(Withdrawal::NotConnected);
    }
    let newly = store.withdraw_link(user, client, now).await?;
    if newly {
        events::record_account_event(store, user, AccountEvent::AppWithdrawn, Some(client.as_str()), origin, now).await?;
    }
    let app_name = store.client(client.as_str()).await?.map_or_else(|| REMOVED_APP.to_string(), |c| c.name);
    Ok(if newly { Withdrawal::Withdrawn { app_name } } else { Withdrawal::AlreadyWithdrawn { app_name } })
}

/// Catalogue scopes first, in the catalogue's order (who you are, then profile, email, …),
/// then any others.
fn in_catalogue_order<'a>(catalogue: &'a Catalogue, scopes: &'a ScopeSet) -> impl Iterator<Item = &'a str> {
    let known = catalogue.iter().map(|s| s.name).filter(|name| scopes.contains(name));
    known.chain(scopes.iter().filter(|name| catalogue.get(name).is_none()))
}

/// The consent page's wording for a scope, so the user reads the same words in both places.
pub fn describe_scope(catalogue: &Catalogue, name: &str) -> String {
    catalogue.get(name).map_or_else(|| format!("Access named “{name}”"), |s| s.description.to_string())
}

pub async fn get_apps(State(app): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let apps = connected_apps(&app.store, &app.scopes, &me.user.id).await?;
    let notice = flash::take(&me.session).await?;
    let token = csrf::token(&me.session).await?;
    let (withdrawn, active): (Vec<_>, Vec<_>) = apps.into_iter().partition(|a| a.withdrawn_at.is_some());
    Ok(render(&AppsPage {
        csrf_token: &token,
        notice: notice.as_deref(),
        active: active.iter().map(|a| active_line(a, &app.scopes)).collect(),
        withdrawn: withdrawn.iter().map(withdrawn_line).collect(),
    }))
}

pub async fn post_withdraw(State(app): State<AppState>, me: SignedIn, origin: Origin, body: Bytes) -> Result<Response, PageError> {
    let form = Params::parse(&body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(&me.session, form.get("csrf_token")).await?;
    let client = ClientId(form.get("client_id").ok_or_else(|| PageError::bad_request("Choose an app to withdraw."))?.to_string());
    let message = match withdraw(&app.store, &me.user.id, &client, &origin, app.now()).await? {
        Withdrawal::Withdrawn { app_name } => {
            format!("{app_name} was withdrawn: it receives no more data about you. Signing in to it again asks for your consent first.")
        }
        Withdrawal::AlreadyWithdrawn { app_name } => format!("{app_name} was already withdrawn."),
        Withdrawal::NotConnected => "That app is not connected to your account.".to_string(),
    };
    flash::set(&me.session, &message).await?;
    Ok(see_other("/account/apps"))
}

fn active_line(app: &ConnectedApp, catalogue: &Catalogue) -> ConnectedAppLine {
    ConnectedAppLine {
        client_id: app.client_id.to_string(),
        name: app.name.clone(),
        receives: in_catalogue_order(catalogue, &app.receives).map(|s| describe_scope(catalogue, s)).collect(),
        note: app.suspended.then_some("The administrators suspended this app: it receives nothing until they lift that."),
        since: utc_minute(app.first_signin_at),
        since_iso: utc_machine(app.first_signin_at),
        last_signin: utc_minute(app.last_signin_at),
        last_signin_iso: utc_machine(app.last_signin_at),
    }
}

fn withdrawn_line(app: &ConnectedApp) -> WithdrawnAppLine {
    let at = app.withdrawn_at.unwrap_or(app.last_signin_at);
    WithdrawnAppLine {
        client_id: app.client_id.to_string(),
        name: app.name.clone(),
        withdrawn: utc_minute(at),
        withdrawn_iso: utc_machine(at),
    }
}
