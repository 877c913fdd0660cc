//! Page templates (askama, compiled in; HTML-escaped by default).

use askama::Template;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::clock::Timestamp;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub csrf_token: &'a str,
    pub request_id: &'a str,
    pub client_name: Option<&'a str>,
    pub email: &'a str,
    pub error: Option<&'a str>,
    /// One "Sign in with …" link per upstream provider.
    pub upstreams: Vec<crate::login::upstream::Button>,
    /// An upstream identity waits to be linked to the account signed in to here.
    pub linking: Option<&'a str>,
}

pub struct ScopeLine {
    pub name: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub csrf_token: &'a str,
    pub request_id: &'a str,
    pub client_name: &'a str,
    pub user_email: &'a str,
    pub scopes: Vec<ScopeLine>,
}

#[derive(Template)]
#[template(path = "form_post.html")]
pub struct FormPostPage<'a> {
    pub action: &'a str,
    pub fields: Vec<(&'a str, &'a str)>,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    pub csrf_token: &'a str,
    pub client_name: Option<&'a str>,
    /// Hidden fields carried through the confirmation (post_logout_redirect_uri, state, …).
    pub fields: Vec<(&'a str, &'a str)>,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOutPage;

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    pub csrf_token: &'a str,
    pub email: &'a str,
    pub name: Option<&'a str>,
    /// Whether to link to `/account/clients` (the user may register clients).
    pub clients: bool,
    /// A confirmation from the previous action (a changed email address).
    pub notice: Option<&'a str>,
}

/// A time as people read it, in UTC to the minute: `2026-11-23 14:02 UTC`.
pub fn utc_minute(at: Timestamp) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(at).ok().and_then(|t| t.format(format).ok()).unwrap_or_else(|| at.to_string())
}

/// A time for `<time datetime>` (HTML's global date and time string, RFC 3339 in UTC).
pub fn utc_machine(at: Timestamp) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(at).ok().and_then(|t| t.format(format).ok()).unwrap_or_default()
}

/// An app that may receive the user's data now.
pub struct ConnectedAppLine {
    pub client_id: String,
    pub name: String,
    /// Plain-words descriptions of what it may receive (catalogue wording).
    pub receives: Vec<String>,
    /// Why it receives less than it was granted (a suspended client), if so.
    pub note: Option<&'static str>,
    pub since: String,
    pub since_iso: String,
    pub last_signin: String,
    pub last_signin_iso: String,
}

/// An app the user withdrew.
pub struct WithdrawnAppLine {
    pub client_id: String,
    pub name: String,
    pub withdrawn: String,
    pub withdrawn_iso: String,
}

#[derive(Template)]
#[template(path = "account_apps.html")]
pub struct AppsPage<'a> {
    pub csrf_token: &'a str,
    /// A confirmation from the previous action (a withdrawal).
    pub notice: Option<&'a str>,
    pub active: Vec<ConnectedAppLine>,
    pub withdrawn: Vec<WithdrawnAppLine>,
}

/// One release of data about the user, in a sentence.
pub struct ActivityLine {
    pub app_name: String,
    /// What it did, e.g. "read your email address".
    pub summary: String,
    pub when: String,
    pub when_iso: String,
    /// Through which door, e.g. "userinfo".
    pub channel: String,
}

#[derive(Template)]
#[template(path = "account_activity.html")]
pub struct ActivityPage {
    pub events: Vec<ActivityLine>,
    /// Set when the list was cut at this many events.
    pub truncated_at: Option<usize>,
}

#[derive(Template)]
#[template(path = "login_second_factor.html")]
pub struct SecondFactorPage<'a> {
    pub csrf_token: &'a str,
    pub client_name: Option<&'a str>,
    /// Why the code is asked for, e.g. "to finish signing in".
    pub reason: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "login_reauth.html")]
pub struct ReauthPage<'a> {
    pub csrf_token: &'a str,
    pub email: &'a str,
    /// The local path to return to.
    pub next: &'a str,
    pub error: Option<&'a str>,
    /// Without a password, the account confirms through a linked provider.
    pub has_password: bool,
    pub upstreams: Vec<ReauthChoice>,
}

/// A linked upstream provider to confirm with.
pub struct ReauthChoice {
    pub id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "recovery_used.html")]
pub struct RecoveryUsedPage<'a> {
    pub remaining: i64,
    pub next: &'a str,
}

/// A TOTP key being set up: shown until the user enters a valid code.
pub struct TotpSetup {
    pub key: String,
    pub url: String,
    /// Inline `<svg>` markup from our QR renderer (rectangles only, no text).
    pub qr_svg: String,
}

#[derive(Template)]
#[template(path = "account_security.html")]
pub struct SecurityPage<'a> {
    pub csrf_token: &'a str,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    /// A confirmed authenticator protects the account.
    pub enabled: bool,
    pub recovery_left: i64,
    /// The configuration requires a second factor for this user.
    pub required: bool,
    pub setup: Option<TotpSetup>,
    /// Recovery codes just created, shown this once.
    pub new_codes: Vec<String>,
    /// Where to continue after setting up (an authorization waiting for it).
    pub continue_to: Option<String>,
    /// Linked and linkable upstream providers.
    pub providers: crate::account::linked::Providers,
}

#[derive(Template)]
#[template(path = "account_password.html")]
pub struct PasswordPage<'a> {
    pub csrf_token: &'a str,
    pub error: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        // 2026-11-23 14:02:30 UTC
        assert_eq!(utc_minute(1_795_442_550), "2026-11-23 14:02 UTC");
        assert_eq!(utc_machine(1_795_442_550), "2026-11-23T14:02:30Z");
    }
}
