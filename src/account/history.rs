//! `/account/security/history`: the user's own sign-in attempts and account events in one
//! list, newest first, each in plain words with the device, system, browser and IP address
//! it came from. Paginated by `(time, id)`, so older pages cost what the first does.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::SignedIn;
use crate::clock::Timestamp;
use crate::error::PageError;
use crate::login::events::AccountEvent;
use crate::model::UserId;
use crate::state::AppState;
use crate::store::{Cursor, LoginEventFilter, Store, StoreError};
use crate::web::render;
use crate::web::templates::{utc_machine, utc_minute};

pub const PAGE_SIZE: usize = 50;

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: Timestamp,
    pub id: String,
    /// What happened, in plain words.
    pub what: String,
    /// Whether it went as the user would want: false for failed or refused sign-ins.
    pub ok: bool,
    pub device: String,
    pub os: String,
    pub browser: String,
    pub ip: Option<String>,
}

#[derive(Clone, Debug)]
pub struct HistoryPage {
    pub entries: Vec<Entry>,
    /// Where the next (older) page starts, if there is one.
    pub next: Option<Cursor>,
}

/// A sign-in attempt in plain words; `provider` names an upstream provider's id.
pub fn describe_attempt(method: &str, result: &str, reason: Option<&str>, app: Option<&str>, provider: &dyn Fn(&str) -> Option<String>) -> String {
    let factor = match method {
        "password" => "Password",
        "totp" => "Authenticator code",
        "recovery_code" => "Recovery code",
        other => {
            let id = other.strip_prefix(crate::login::events::UPSTREAM_PREFIX).unwrap_or(other);
            return upstream(&provider(id).unwrap_or_else(|| id.to_string()), result, reason, app);
        }
    };
    let what = match (result, reason) {
        ("success", _) => format!("{factor} accepted"),
        (_, Some("wrong_password")) => "Wrong password".to_string(),
        (_, Some("wrong_code")) => format!("Wrong {}", factor.to_lowercase()),
        (_, Some("locked")) => "Sign-in refused: locked after too many failed attempts".to_string(),
        (_, Some("throttled")) => "Sign-in refused: too many attempts in a short time".to_string(),
        (_, Some("unknown_account")) => "No account with this email address".to_string(),
        (_, Some(other)) => format!("{factor} refused ({other})"),
        (_, None) => format!("{factor} refused"),
    };
    match app {
        Some(app) => format!("{what}, signing in to {app}"),
        None => what,
    }
}

fn upstream(provider: &str, result: &str, reason: Option<&str>, app: Option<&str>) -> String {
    let what = match (result, reason) {
        ("success", _) => format!("Signed in with {provider}"),
        (_, Some("cancelled")) => format!("Sign-in with {provider} cancelled"),
        (_, Some("registration_closed" | "account_exists" | "no_email")) => format!("Sign-in with {provider} refused: no account linked"),
        (_, Some("invalid_response")) => format!("Sign-in with {provider} refused: its answer was not valid"),
        (_, Some("wrong_account")) => format!("Confirmation with {provider} refused: another {provider} account"),
        _ => format!("Sign-in with {provider} failed"),
    };
    match app {
        Some(app) => format!("{what}, signing in to {app}"),
        None => what,
    }
}

/// An account event in plain words; `named` is the app's name for a withdrawal, the
/// provider's for a link.
pub fn describe_account_event(kind: &str, detail: Option<&str>, named: Option<&str>) -> String {
    let Some(kind) = AccountEvent::parse(kind) else { return format!("Account change: {kind}") };
    match kind {
        AccountEvent::PasswordChanged => "Your password was changed".into(),
        AccountEvent::EmailChanged => "Your email address was changed".into(),
        AccountEvent::SecondFactorAdded => "Two-factor authentication was turned on".into(),
        AccountEvent::SecondFactorRemoved => "Two-factor authentication was turned off".into(),
        AccountEvent::RecoveryCodeUsed => match detail.and_then(|d| d.parse::<u32>().ok()) {
            Some(left) => format!("A recovery code was used ({left} left)"),
            None => "A recovery code was used".into(),
        },
        AccountEvent::RecoveryCodesRegenerated => "New recovery codes were made (the old ones no longer work)".into(),
        AccountEvent::SessionEnded => match detail {
            Some(device) => format!("You ended a session ({device})"),
            None => "You ended a session".into(),
        },
        AccountEvent::AppWithdrawn => format!("You withdrew {}", named.unwrap_or("an app")),
        AccountEvent::UpstreamLinked => format!("You linked {} for signing in", named.or(detail).unwrap_or("a sign-in provider")),
        AccountEvent::UpstreamUnlinked => format!("You unlinked {}", named.or(detail).unwrap_or("a sign-in provider")),
        AccountEvent::SecondFactorReset => "An administrator turned off two-factor authentication and ended your sessions".into(),
    }
}

async fn app_name(store: &Store, names: &mut HashMap<String, String>, client: &str) -> Result<String, StoreError> {
    if let Some(name) = names.get(client) {
        return Ok(name.clone());
    }
    let name = store.client(client).await?.map_or_else(|| "a removed app".to_string(), |c| c.name);
    names.insert(client.to_string(), name.clone());
    Ok(name)
}

/// The user's history after `before` (newest first): both lists read one page ahead and
/// merged on `(at, id)`.
pub async fn history(store: &Store, user: &UserId, before: Option<&Cursor>, limit: usize, provider: &(dyn Fn(&str) -> Option<String> + Sync)) -> Result<HistoryPage, StoreError> {
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let filter = LoginEventFilter { user_id: Some(user.clone()), ..Default::default() };
    let attempts = store.login_events(&filter, before, fetch).await?;
    let changes = store.account_events(user, before, fetch).await?;
    let mut names = HashMap::new();
    let mut entries = Vec::with_capacity(attempts.len() + changes.len());
    for a in attempts {
        let app = match &a.client_id {
            Some(c) => Some(app_name(store, &mut names, c.as_str()).await?),
            None => None,
        };
        entries.push(Entry {
            what: describe_attempt(&a.method, &a.result, a.reason.as_deref(), app.as_deref(), provider),
            ok: a.result == "success",
            at: a.at,
            id: a.id,
            device: a.device,
            os: a.os,
            browser: a.browser,
            ip: a.ip,
        });
    }
    for c in changes {
        let named = match (c.kind.as_str(), &c.detail) {
            ("app_withdrawn", Some(client)) => Some(app_name(store, &mut names, client).await?),
            ("upstream_linked" | "upstream_unlinked", Some(id)) => provider(id),
            _ => None,
        };
        entries.push(Entry {
            what: describe_account_event(&c.kind, c.detail.as_deref(), named.as_deref()),
            ok: true,
            at: c.at,
            id: c.id,
            device: c.device,
            os: c.os,
            browser: c.browser,
            ip: c.ip,
        });
    }
    entries.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next = if more { entries.last().map(|e| Cursor { at: e.at, id: e.id.clone() }) } else { None };
    Ok(HistoryPage { entries, next })
}

/// `before=<at>.<id>` in page links.
pub fn cursor_param(cursor: &Cursor) -> String {
    format!("{}.{}", cursor.at, cursor.id)
}

pub fn parse_cursor(param: &str) -> Option<Cursor> {
    let (at, id) = param.split_once('.')?;
    Some(Cursor { at: at.parse().ok()?, id: id.to_string() })
}

pub struct Line {
    pub when: String,
    pub when_iso: String,
    pub what: String,
    pub ok: bool,
    pub device: String,
    pub ip: String,
}

#[derive(askama::Template)]
#[template(path = "account_history.html")]
struct HistoryTemplate {
    lines: Vec<Line>,
    older: Option<String>,
    paged: bool,
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    before: Option<String>,
}

pub async fn get_history(State(app): State<AppState>, me: SignedIn, Query(q): Query<HistoryQuery>) -> Result<Response, PageError> {
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        Some(b) => Some(parse_cursor(b).ok_or_else(|| PageError::bad_request("This page link is not valid."))?),
        None => None,
    };
    let provider_name = |id: &str| app.upstreams.name(id).map(str::to_string);
    let page = history(&app.store, &me.user.id, before.as_ref(), PAGE_SIZE, &provider_name).await?;
    let lines = page
        .entries
        .into_iter()
        .map(|e| Line {
            when: utc_minute(e.at),
            when_iso: utc_machine(e.at),
            device: crate::login::user_agent::Described { device: e.device, os: e.os, browser: e.browser }.summary(),
            ip: e.ip.unwrap_or_else(|| "unknown".into()),
            what: e.what,
            ok: e.ok,
        })
        .collect();
    let older = page.next.as_ref().map(cursor_param);
    Ok(render(&HistoryTemplate { lines, older, paged: before.is_some() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_in_plain_words() {
        let none = |_: &str| None;
        assert_eq!(describe_attempt("password", "success", None, None, &none), "Password accepted");
        assert_eq!(describe_attempt("password", "success", None, Some("Example Shop"), &none), "Password accepted, signing in to Example Shop");
        assert_eq!(describe_attempt("password", "failure", Some("wrong_password"), None, &none), "Wrong password");
        assert_eq!(describe_attempt("totp", "failure", Some("wrong_code"), None, &none), "Wrong authenticator code");
        assert_eq!(describe_attempt("password", "failure", Some("locked"), None, &none), "Sign-in refused: locked after too many failed attempts");
        let names = |id: &str| (id == "google").then(|| "Google".to_string());
        assert_eq!(describe_attempt("upstream:google", "success", None, None, &names), "Signed in with Google");
        assert_eq!(describe_attempt("upstream:gone", "failure", Some("cancelled"), None, &names), "Sign-in with gone cancelled");
        assert_eq!(describe_attempt("upstream:google", "failure", Some("invalid_response"), Some("Shop"), &names), "Sign-in with Google refused: its answer was not valid, signing in to Shop");
    }

    #[test]
    fn account_events_in_plain_words() {
        assert_eq!(describe_account_event("app_withdrawn", Some("c1"), Some("Example Shop")), "You withdrew Example Shop");
        assert_eq!(describe_account_event("recovery_code_used", Some("7"), None), "A recovery code was used (7 left)");
        assert_eq!(describe_account_event("session_ended", Some("Firefox 128 on Linux (computer)"), None), "You ended a session (Firefox 128 on Linux (computer))");
        assert_eq!(describe_account_event("something_new", None, None), "Account change: something_new");
        assert_eq!(describe_account_event("upstream_linked", Some("google"), Some("Google")), "You linked Google for signing in");
        assert_eq!(describe_account_event("upstream_unlinked", Some("gone"), None), "You unlinked gone");
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor { at: 1_700_000_000, id: "a-b_c".into() };
        assert_eq!(parse_cursor(&cursor_param(&c)), Some(c));
        assert_eq!(parse_cursor("nonsense"), None);
    }
}
