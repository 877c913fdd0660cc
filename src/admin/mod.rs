//! Administration: operations on users and clients, used by the CLI and the admin pages.

mod api;
mod grants;
pub mod guard;
mod logins;
mod pages;
mod users;

pub use users::{SecondFactorReset, reset_second_factor};

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// The admin pages, all behind [`guard::require_admin`].
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin", get(pages::get_admin_home))
        .route("/admin/clients", get(pages::get_clients))
        .route("/admin/clients/{id}", get(pages::get_client).post(pages::post_client))
        .route("/admin/audit", get(pages::get_audit))
        .route("/admin/grants", get(grants::get_grants))
        .route("/api/admin/grants", get(grants::get_grants_json))
        .route("/admin/logins", get(logins::get_logins))
        .route("/admin/logins.csv", get(logins::get_logins_csv))
        .route("/api/admin/logins", get(logins::get_logins_json))
        .route("/api/admin/clients", get(api::get_clients))
        .route("/api/admin/clients/{id}", get(api::get_client).post(api::post_client))
        .route_layer(axum::middleware::from_fn_with_state(state, guard::require_admin))
}

use crate::clock::Timestamp;
use crate::crypto::password::PasswordHasher;
use crate::crypto::{random_token, token_hash};
use crate::model::{Client, ClientId, ClientStatus, GrantType, ScopeState, SigningAlg, User, UserId};
use crate::oidc::redirect_uri;
use crate::privacy::{Catalogue, ScopeSet};
use crate::store::{AuditEntry, NewUser, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user with this email already exists")]
    DuplicateEmail,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct NewUserSpec {
    pub email: String,
    pub name: Option<String>,
    pub is_admin: bool,
    pub password: String,
}

pub async fn create_user(store: &Store, hasher: &PasswordHasher, spec: NewUserSpec, now: Timestamp) -> Result<User, AdminError> {
    let email = spec.email.trim();
    // A deliberately loose check: one @, something on both sides, no spaces.
    let valid = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.contains('@'));
    if !valid {
        return Err(AdminError::Invalid(format!("{email:?} is not an email address")));
    }
    check_password(&spec.password)?;
    let hash = hasher.hash(spec.password).await.map_err(|e| AdminError::Invalid(e.to_string()))?;
    let new = NewUser { email: email.to_string(), name: spec.name, password_hash: Some(hash), is_admin: spec.is_admin };
    store.create_user(new, now).await.map_err(|e| match e {
        StoreError::Conflict => AdminError::DuplicateEmail,
        e => AdminError::Store(e),
    })
}

/// The rules for a new password, wherever it is set (CLI, the password page).
pub fn check_password(password: &str) -> Result<(), AdminError> {
    if password.chars().count() < 8 {
        return Err(AdminError::Invalid("the password must have at least 8 characters".into()));
    }
    if password.len() > 1024 {
        return Err(AdminError::Invalid("the password is longer than 1024 bytes".into()));
    }
    Ok(())
}

/// Who performs an admin action, for the audit log.
#[derive(Clone, Debug)]
pub struct Actor {
    /// `cli` for the operator's command line, `user:<id>` for an admin on the web.
    pub name: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn cli() -> Self {
        Self { name: "cli".into(), ip: None }
    }
}

pub(crate) async fn audit(store: &Store, actor: &Actor, action: &str, target: &str, details: serde_json::Value, now: Timestamp) -> Result<(), AdminError> {
    let entry = AuditEntry {
        at: now,
        actor: actor.name.clone(),
        ip: actor.ip.clone(),
        action: action.into(),
        target: target.into(),
        details: details.to_string(),
    };
    store.append_audit(&entry).await?;
    Ok(())
}

pub struct NewClientSpec {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub scopes: Vec<String>,
    pub grant_types: Vec<String>,
    pub signing_alg: Option<String>,
    /// Created by an admin who vouches for it: verified, its sensitive scopes approved.
    /// Otherwise it starts unverified with its sensitive scopes `requested`.
    pub verified: bool,
}

/// The checks on what a client's owner may also edit later: the name (returned trimmed)
/// and every redirect and post-logout redirect URI.
pub(crate) fn check_client_fields<'a>(name: &'a str, redirect_uris: &[String], post_logout_redirect_uris: &[String]) -> Result<&'a str, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(AdminError::Invalid("the client name must have 1 to 200 characters".into()));
    }
    for uri in redirect_uris.iter().chain(post_logout_redirect_uris) {
        redirect_uri::check_registration(uri).map_err(AdminError::Invalid)?;
    }
    Ok(name)
}

/// Registers a client. Returns it with its secret (confidential clients), shown once:
/// only its hash is stored (as the client's first secret, labelled `initial`).
pub async fn create_client(
    store: &Store,
    catalogue: &Catalogue,
    spec: NewClientSpec,
    actor: &Actor,
    now: Timestamp,
) -> Result<(Client, Option<String>), AdminError> {
    create_owned_client(store, catalogue, spec, None, actor, now).await
}

/// [`create_client`] for a client that `owner` registers and manages themselves.
pub async fn create_owned_client(
    store: &Store,
    catalogue: &Catalogue,
    spec: NewClientSpec,
    owner: Option<&UserId>,
    actor: &Actor,
    now: Timestamp,
) -> Result<(Client, Option<String>), AdminError> {
    let name = check_client_fields(&spec.name, &spec.redirect_uris, &spec.post_logout_redirect_uris)?;
    let scopes = if spec.scopes.is_empty() {
        ScopeSet::parse("openid profile email offline_access").unwrap_or_default()
    } else {
        let joined = spec.scopes.join(" ");
        let set = ScopeSet::parse(&joined).ok_or_else(|| AdminError::Invalid(format!("invalid scope in {joined:?}")))?;
        if let Some(unknown) = set.iter().find(|s| catalogue.get(s).is_none()) {
            return Err(AdminError::Invalid(format!("unknown scope {unknown:?}")));
        }
        set
    };
    let grant_types = if spec.grant_types.is_empty() {
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    } else {
        spec.grant_types
            .iter()
            .map(|g| GrantType::parse(g).ok_or_else(|| AdminError::Invalid(format!("unknown grant type {g:?}"))))
            .collect::<Result<Vec<_>, _>>()?
    };
    if spec.public && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(AdminError::Invalid("a public client cannot use client_credentials".into()));
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && spec.redirect_uris.is_empty() {
        return Err(AdminError::Invalid("the authorization_code grant needs at least one --redirect-uri".into()));
    }
    let signing_alg = match &spec.signing_alg {
        Some(a) => SigningAlg::parse(a).ok_or_else(|| AdminError::Invalid(format!("unknown signing algorithm {a:?}")))?,
        None => SigningAlg::RS256,
    };
    let secret = (!spec.public).then(random_token);
    let sensitive = ScopeSet::from_iter(scopes.iter().filter(|s| catalogue.is_sensitive(s)));
    let client = Client {
        status: if spec.verified { ClientStatus::Verified } else { ClientStatus::Unverified },
        approved_scopes: if spec.verified { sensitive.clone() } else { ScopeSet::default() },
        public_subject: false,
        // Letters and digits only: ids go on command lines and into URLs, where a leading
        // `-` or a `_` would trip people (and argument parsers) up.
        id: ClientId(uuid::Uuid::new_v4().simple().to_string()),
        name: name.to_string(),
        secret_hash: secret.as_deref().map(token_hash),
        redirect_uris: spec.redirect_uris,
        post_logout_redirect_uris: spec.post_logout_redirect_uris,
        scopes,
        grant_types,
        signing_alg,
        created_at: now,
    };
    store.create_owned_client(&client, owner).await?;
    let state = if spec.verified { ScopeState::Approved } else { ScopeState::Requested };
    let decided_by = spec.verified.then_some(actor.name.as_str());
    for scope in sensitive.iter() {
        store.set_scope_state(&client.id, scope, state, None, decided_by, now).await?;
    }
    let details = serde_json::json!({
        "name": client.name, "status": client.status.as_str(), "scope": client.scopes.to_string(),
        "redirect_uris": client.redirect_uris, "owner": owner,
    });
    audit(store, actor, "client.create", client.id.as_str(), details, now).await?;
    Ok((client, secret))
}

async fn existing_client(store: &Store, client_id: &str) -> Result<Client, AdminError> {
    store.client(client_id).await?.ok_or_else(|| AdminError::Invalid(format!("no client {client_id:?}")))
}

/// Verifies a client and approves the given sensitive scopes (which must be enabled for it).
pub async fn verify_client(store: &Store, client_id: &str, scopes: &[String], actor: &Actor, now: Timestamp) -> Result<Client, AdminError> {
    let client = existing_client(store, client_id).await?;
    for scope in scopes {
        if !client.scopes.contains(scope) {
            return Err(AdminError::Invalid(format!("scope {scope:?} is not enabled for client {client_id:?}")));
        }
    }
    for scope in scopes {
        store.set_scope_state(&client.id, scope, ScopeState::Approved, None, Some(&actor.name), now).await?;
    }
    store.set_client_status(&client.id, ClientStatus::Verified).await?;
    // Verifying a suspended client reinstates it; the audit says from what.
    let details = serde_json::json!({"approved": scopes, "previous": client.status.as_str()});
    audit(store, actor, "client.verify", client.id.as_str(), details, now).await?;
    existing_client(store, client_id).await
}

/// Rejects a scope for a client, with a note the client owner will read.
pub async fn reject_scope(store: &Store, client_id: &str, scope: &str, note: &str, actor: &Actor, now: Timestamp) -> Result<(), AdminError> {
    let client = existing_client(store, client_id).await?;
    if !client.scopes.contains(scope) {
        return Err(AdminError::Invalid(format!("scope {scope:?} is not enabled for client {client_id:?}")));
    }
    store.set_scope_state(&client.id, scope, ScopeState::Rejected, Some(note), Some(&actor.name), now).await?;
    audit(store, actor, "client.scope.reject", client.id.as_str(), serde_json::json!({"scope": scope, "note": note}), now).await
}

/// Sets public or pairwise subjects for a client. Only admins may: public subjects let
/// clients correlate users.
pub async fn set_subject_type(store: &Store, client_id: &str, public: bool, actor: &Actor, now: Timestamp) -> Result<(), AdminError> {
    let client = existing_client(store, client_id).await?;
    store.set_client_public_subject(&client.id, public).await?;
    let details = serde_json::json!({"subject_type": if public { "public" } else { "pairwise" }});
    audit(store, actor, "client.subject_type", client.id.as_str(), details, now).await
}

/// Suspends a client: it cannot sign anyone in, and its tokens stop working at once.
pub async fn suspend_client(store: &Store, client_id: &str, actor: &Actor, now: Timestamp) -> Result<(), AdminError> {
    let client = existing_client(store, client_id).await?;
    store.set_client_status(&client.id, ClientStatus::Suspended).await?;
    audit(store, actor, "client.suspend", client.id.as_str(), serde_json::json!({"previous": client.status.as_str()}), now).await
}
