//! From an upstream identity to a Sluis account. The link is (provider, subject), never the
//! email address: an address at one provider says nothing about who owns the Sluis account
//! with the same address, so an unknown identity is never linked to it silently. Only when
//! both sides have the address verified is linking offered, after the user proves the
//! account (`linking`).

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

/// Where an identity leads.
#[derive(Debug)]
pub enum Resolved {
    /// The linked account, or a new one.
    Account(User),
    /// No account is linked, and this one has the address verified, as the provider does:
    /// the user may link after proving it.
    Offer(User),
    Refused(Refusal),
}

/// Why an identity leads to no account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An account has the address the provider asserts as verified; the account's own
    /// address is not verified, so no linking is offered.
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
        PageError::new(status, title, message)
    }
}

/// The account the identity signs in to: the linked one, or a new one when registration is
/// open and nothing stands in the way.
pub async fn resolve(app: &AppState, provider: &Provider, identity: &Identity, now: Timestamp) -> Result<Resolved, PageError> {
    let provider_id = &provider.config.id;
    if let Some(user_id) = app.store.use_upstream_identity(provider_id, &identity.subject, now).await? {
        return Ok(match app.store.user(&user_id).await? {
            Some(user) => Resolved::Account(user),
            None => {
                tracing::warn!(provider = %provider_id, "upstream identity names a missing user");
                Resolved::Refused(Refusal::NotCreated)
            }
        });
    }
    if let Some(resolved) = same_address(app, identity).await? {
        return Ok(resolved);
    }
    if app.config.registration == Registration::Closed {
        return Ok(Resolved::Refused(Refusal::RegistrationClosed));
    }
    let Some(email) = identity.email.as_deref().filter(|e| e.len() <= 254 && e.contains('@')) else { return Ok(Resolved::Refused(Refusal::NoEmail)) };
    let new = NewUpstreamUser { provider_id, subject: &identity.subject, email, email_verified: identity.email_verified, name: identity.name.as_deref() };
    match app.store.create_upstream_user(&new, now).await {
        Ok(user) => {
            tracing::info!(provider = %provider_id, "account created from an upstream sign-in");
            Ok(Resolved::Account(user))
        }
        // Someone took the address (or the same identity signed up) a moment ago.
        Err(StoreError::Conflict) => Ok(same_address(app, identity).await?.unwrap_or(Resolved::Refused(Refusal::NotCreated))),
        Err(e) => Err(e.into()),
    }
}

/// What an account with the identity's address means: a linking offer when both sides
/// have it verified; otherwise a refusal that says no more than the provider's assertion
/// allows.
async fn same_address(app: &AppState, identity: &Identity) -> Result<Option<Resolved>, PageError> {
    let Some(email) = &identity.email else { return Ok(None) };
    let Some((existing, _)) = app.store.user_credentials(email).await? else { return Ok(None) };
    Ok(Some(match (identity.email_verified, existing.email_verified) {
        (true, true) => Resolved::Offer(existing),
        (true, false) => Resolved::Refused(Refusal::AccountExists),
        (false, _) => Resolved::Refused(Refusal::NotCreated),
    }))
}
