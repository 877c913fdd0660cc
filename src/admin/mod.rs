//! Administration: operations on users and clients, used by the CLI (and later the admin pages).

use crate::clock::Timestamp;
use crate::crypto::password::PasswordHasher;
use crate::crypto::{random_id, random_token, token_hash};
use crate::model::{Client, ClientId, GrantType, SigningAlg, User};
use crate::oidc::redirect_uri;
use crate::privacy::{ScopeSet, scope_info};
use crate::store::{NewUser, Store, StoreError};

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
    if spec.password.chars().count() < 8 {
        return Err(AdminError::Invalid("the password must have at least 8 characters".into()));
    }
    if spec.password.len() > 1024 {
        return Err(AdminError::Invalid("the password is longer than 1024 bytes".into()));
    }
    let hash = hasher.hash(spec.password).await.map_err(|e| AdminError::Invalid(e.to_string()))?;
    let new = NewUser { email: email.to_string(), name: spec.name, password_hash: Some(hash), is_admin: spec.is_admin };
    store.create_user(new, now).await.map_err(|e| match e {
        StoreError::Conflict => AdminError::DuplicateEmail,
        e => AdminError::Store(e),
    })
}

pub struct NewClientSpec {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub scopes: Vec<String>,
    pub grant_types: Vec<String>,
    pub signing_alg: Option<String>,
}

/// Registers a client. Returns it with its secret (confidential clients), shown once:
/// only its hash is stored.
pub async fn create_client(store: &Store, spec: NewClientSpec, now: Timestamp) -> Result<(Client, Option<String>), AdminError> {
    let name = spec.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(AdminError::Invalid("the client name must have 1 to 200 characters".into()));
    }
    for uri in spec.redirect_uris.iter().chain(&spec.post_logout_redirect_uris) {
        redirect_uri::check_registration(uri).map_err(AdminError::Invalid)?;
    }
    let scopes = if spec.scopes.is_empty() {
        ScopeSet::parse("openid profile email offline_access").unwrap_or_default()
    } else {
        let joined = spec.scopes.join(" ");
        let set = ScopeSet::parse(&joined).ok_or_else(|| AdminError::Invalid(format!("invalid scope in {joined:?}")))?;
        if let Some(unknown) = set.iter().find(|s| scope_info(s).is_none()) {
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
    let client = Client {
        id: ClientId(random_id()),
        name: name.to_string(),
        secret_hash: secret.as_deref().map(token_hash),
        redirect_uris: spec.redirect_uris,
        post_logout_redirect_uris: spec.post_logout_redirect_uris,
        scopes,
        grant_types,
        signing_alg,
        created_at: now,
    };
    store.create_client(&client).await?;
    Ok((client, secret))
}
