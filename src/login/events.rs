//! The login history and account events (DESIGN §3 step 2): every sign-in attempt, on
//! every path and every outcome, and every change to an account, with where it came from.
//!
//! Sign-in steps call [`record_attempt`]; account changes call [`record_account_event`].
//! Both take the request's [`Origin`] (an extractor: client IP and user agent).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::{ip, user_agent};
use crate::clock::Timestamp;
use crate::model::{ClientId, UserId};
use crate::state::AppState;
use crate::store::{NewAccountEvent, NewLoginEvent, Store, StoreError, StoredOrigin};
use crate::web::client_ip::ClientIp;

/// Where a request came from: the client's IP address (see [`ClientIp`]: the peer, or what
/// trusted proxies report) and its `User-Agent` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, app).await?;
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| user_agent::clip(ua).to_string());
        Ok(Self { ip, user_agent })
    }
}

impl Origin {
    /// As stored: the address normalised (IPv4-mapped IPv6 as IPv4) with its key, and the
    /// user agent parsed.
    pub fn stored(&self) -> StoredOrigin {
        let addr = self.ip.as_deref().and_then(ip::parse);
        let described = user_agent::describe(self.user_agent.as_deref());
        StoredOrigin {
            ip: addr.map(|a| a.to_string()),
            ip_key: addr.map(|a| ip::key(&a)),
            user_agent: self.user_agent.clone(),
            device: described.device,
            os: described.os,
            browser: described.browser,
        }
    }
}

/// How a sign-in step proved (or tried to prove) who the user is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Password,
    Totp,
    RecoveryCode,
    /// An upstream (social) provider, by its configured id.
    Upstream(String),
}

/// How an upstream method is stored: `upstream:{provider id}`.
pub const UPSTREAM_PREFIX: &str = "upstream:";

impl Method {
    /// The kind of method (`upstream` for every provider).
    pub fn as_str(&self) -> &str {
        match self {
            Method::Password => "password",
            Method::Totp => "totp",
            Method::RecoveryCode => "recovery_code",
            Method::Upstream(_) => "upstream",
        }
    }

    /// As the login history stores it: the kind, and for upstream providers their id.
    pub fn stored(&self) -> String {
        match self {
            Method::Upstream(id) => format!("{UPSTREAM_PREFIX}{id}"),
            other => other.as_str().to_string(),
        }
    }
}

/// Why an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    WrongPassword,
    /// No account has this email address.
    UnknownAccount,
    /// Refused unchecked: the account or the client's address is locked after too many
    /// failures (see `throttle`).
    Locked,
    /// Refused unchecked: too soon after the previous failures (see `throttle`).
    Throttled,
    /// A wrong TOTP or recovery code.
    WrongCode,
    /// The user cancelled at the upstream provider.
    UpstreamCancelled,
    /// The upstream provider answered with an error, or could not be reached.
    UpstreamFailed,
    /// The upstream answer failed validation: unknown or replayed `state`, or an ID token
    /// with a bad signature, issuer, audience, nonce or time.
    UpstreamInvalid,
    /// An unknown upstream identity, and registration is closed.
    RegistrationClosed,
    /// An unknown upstream identity whose email address an account already has.
    AccountExists,
    /// An unknown upstream identity without an email address.
    NoEmail,
    /// A re-authentication through an upstream identity that is not the account's.
    WrongAccount,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::WrongPassword => "wrong_password",
            Failure::UnknownAccount => "unknown_account",
            Failure::Locked => "locked",
            Failure::Throttled => "throttled",
            Failure::WrongCode => "wrong_code",
            Failure::UpstreamCancelled => "cancelled",
            Failure::UpstreamFailed => "upstream_error",
            Failure::UpstreamInvalid => "invalid_response",
            Failure::RegistrationClosed => "registration_closed",
            Failure::AccountExists => "account_exists",
            Failure::NoEmail => "no_email",
            Failure::WrongAccount => "wrong_account",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(Failure),
}

/// One sign-in attempt (one step: a password, a code, an upstream answer).
#[derive(Clone, Debug)]
pub struct Attempt<'a> {
    /// The account, when known (not for an unknown email).
    pub user: Option<&'a UserId>,
    /// The client of the authorization request the attempt belongs to, if any.
    pub client: Option<&'a ClientId>,
    pub method: Method,
    pub outcome: Outcome,
}

/// `false`: the account the attempt names was erased meanwhile, and nothing was recorded.
pub async fn record_attempt(store: &Store, attempt: &Attempt<'_>, origin: &Origin, now: Timestamp) -> Result<bool, StoreError> {
    store.insert_login_event(&login_event(attempt, origin, now)).await
}

/// The attempt as the login history stores it (to record with a throttle's settlement,
/// see `throttle::Ticket::succeeded`).
pub fn login_event(attempt: &Attempt<'_>, origin: &Origin, now: Timestamp) -> NewLoginEvent {
    let (result, reason) = match attempt.outcome {
        Outcome::Success => ("success", None),
        Outcome::Failure(f) => ("failure", Some(f.as_str().to_string())),
    };
    NewLoginEvent {
        at: now,
        user_id: attempt.user.cloned(),
        client_id: attempt.client.cloned(),
        method: attempt.method.stored(),
        result: result.to_string(),
        reason,
        origin: origin.stored(),
    }
}

/// A change to an account, as the user's history lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountEvent {
    PasswordChanged,
    EmailChanged,
    /// Detail: which factor (`totp`).
    SecondFactorAdded,
    SecondFactorRemoved,
    /// Detail: how many codes remain.
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    /// Detail: the session's device, e.g. "Firefox 128 on Linux (computer)".
    SessionEnded,
    /// Detail: the app's client id.
    AppWithdrawn,
    /// An administrator removed the second factors (a lost authenticator); the sessions ended.
    SecondFactorReset,
    /// Detail: the upstream provider's id.
    UpstreamLinked,
    /// Detail: the upstream provider's id.
    UpstreamUnlinked,
}

impl AccountEvent {
    pub const ALL: [AccountEvent; 11] = [
        AccountEvent::PasswordChanged,
        AccountEvent::EmailChanged,
        AccountEvent::SecondFactorAdded,
        AccountEvent::SecondFactorRemoved,
        AccountEvent::RecoveryCodeUsed,
        AccountEvent::RecoveryCodesRegenerated,
        AccountEvent::SessionEnded,
        AccountEvent::AppWithdrawn,
        AccountEvent::SecondFactorReset,
        AccountEvent::UpstreamLinked,
        AccountEvent::UpstreamUnlinked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountEvent::PasswordChanged => "password_changed",
            AccountEvent::EmailChanged => "email_changed",
            AccountEvent::SecondFactorAdded => "second_factor_added",
            AccountEvent::SecondFactorRemoved => "second_factor_removed",
            AccountEvent::RecoveryCodeUsed => "recovery_code_used",
            AccountEvent::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            AccountEvent::SessionEnded => "session_ended",
            AccountEvent::AppWithdrawn => "app_withdrawn",
            AccountEvent::SecondFactorReset => "second_factor_reset",
            AccountEvent::UpstreamLinked => "upstream_linked",
            AccountEvent::UpstreamUnlinked => "upstream_unlinked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

pub async fn record_account_event(
    store: &Store,
    user: &UserId,
    kind: AccountEvent,
    detail: Option<&str>,
    origin: &Origin,
    now: Timestamp,
) -> Result<(), StoreError> {
    store
        .insert_account_event(&NewAccountEvent {
            at: now,
            user_id: user.clone(),
            kind: kind.as_str().to_string(),
            detail: detail.map(str::to_string),
            origin: origin.stored(),
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_stored_normalised_and_parsed() {
        let origin = Origin { ip: Some("::ffff:203.0.113.9".into()), user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into()) };
        let stored = origin.stored();
        assert_eq!(stored.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(stored.ip_key.as_deref(), Some("4cb007109"));
        assert_eq!((stored.device.as_str(), stored.browser.as_str()), ("Computer", "Firefox 128"));
        let nothing = Origin::default().stored();
        assert_eq!((nothing.ip, nothing.ip_key, nothing.device.as_str()), (None, None, "Unknown device"));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in AccountEvent::ALL {
            assert_eq!(AccountEvent::parse(kind.as_str()), Some(kind));
        }
    }
}
