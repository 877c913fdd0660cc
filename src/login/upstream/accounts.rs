//! From an upstream identity to a Sluis account. The link is (provider, subject), never the
//! email address: an address at one provider says nothing about who owns the Sluis account
//! with the same address, so an unknown identity is never linked to it silently.

use axum::http::StatusCode;

use super::Identity;
use super::provider::Provider;
use crate::clock::Timestamp;
use crate::config::Registration;
use crate::error::PageError;
use crate::login::events::Failure;
use crate::model::User;
use crate::state::AppState;
use crate::store::{NewUpstreamUser, StoreError};

/// Why an identity leads to no account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An account has the address the provider asserts as verified.
    AccountExists,
    /// An account may have the address, which the provider does not assert as verified:
    /// say no more than that no account was made.
    NotCreated,
    RegistrationClosed,
    /// A new account needs an email address the provider did not give.
    NoEmail,
}

impl Refusal {
    pub fn reason(self) -> Failure {
        match self {
            Refusal::AccountExists | Refusal::NotCreated => Failure::AccountExists,
            Refusal::RegistrationClosed => Failure::RegistrationClosed,
            Refusal::NoEmail => Failure::NoEmail,
        }
    }

    pub fn page(self, name: &str) -> PageError {
        let (status, title, message) = match self {
            Refusal::AccountExists => (
                StatusCode::CONFLICT,
                "You already have an account",
                format!(
                    "An account with the email address you use at {name} already exists here. It was not connected to {name}: \
                     sign in to that account first (with its password), then link {name} from the Security page of your account."
                ),
            ),
            Refusal::NotCreated => (
                StatusCode::CONFLICT,
                "No account was created",
                format!("An account could not be created from your {name} sign-in. If you already have an account here, sign in to it another way."),
            ),
            Refusal::RegistrationClosed => (
                StatusCode::FORBIDDEN,
                "No account for this sign-in",
                format!("No account here is linked to your {name} sign-in, and new accounts cannot be created this way. If you have an account, sign in to it another way."),
            ),
            Refusal::NoEmail => (
                StatusCode::FORBIDDEN,
                "An email address is needed",
                format!("{name} did not share an email address, which a new account needs. Allow {name} to share it, or sign in another way."),
            ),
        };
        PageError { status, title: title.into(), message: message.into() }
    }
}

/// The account the identity signs in to: the linked one, or a new one when registration is
/// open and nothing stands in the way.
pub async fn resolve(app: &AppState, provider: &Provider, identity: &Identity, now: Timestamp) -> Result<Result<User, Refusal>, PageError> {
    let provider_id = &provider.config.id;
    if let Some(user_id) = app.store.use_upstream_identity(provider_id, &identity.subject, now).await? {
        return Ok(match app.store.user(&user_id).await? {
            Some(user) => Ok(user),
            None => {
                tracing::warn!(provider = %provider_id, "upstream identity names a missing user");
                Err(Refusal::NotCreated)
            }
        });
    }
    if let Some(email) = &identity.email
        && app.store.user_credentials(email).await?.is_some()
    {
        return Ok(Err(if identity.email_verified { Refusal::AccountExists } else { Refusal::NotCreated }));
    }
    if app.config.registration == Registration::Closed {
        return Ok(Err(Refusal::RegistrationClosed));
    }
    let Some(email) = identity.email.as_deref().filter(|e| e.len() <= 254 && e.contains('@')) else { return Ok(Err(Refusal::NoEmail)) };
    let new = NewUpstreamUser { provider_id, subject: &identity.subject, email, email_verified: identity.email_verified, name: identity.name.as_deref() };
    match app.store.create_upstream_user(&new, now).await {
        Ok(user) => {
            tracing::info!(provider = %provider_id, "account created from an upstream sign-in");
            Ok(Ok(user))
        }
        // Someone took the address (or the same identity signed up) a moment ago.
        Err(StoreError::Conflict) => Ok(Err(if identity.email_verified { Refusal::AccountExists } else { Refusal::NotCreated })),
        Err(e) => Err(e.into()),
    }
}
