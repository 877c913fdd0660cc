//! `/account/sessions`: where the user is signed in (device, address, last activity), the
//! current browser marked; ending any other session signs it out at its next request and
//! revokes the refresh tokens issued in it.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use super::SignedIn;
use crate::clock::Timestamp;
use crate::error::PageError;
use crate::login::events::{self, AccountEvent, Origin};
use crate::login::session;
use crate::login::user_agent::Described;
use crate::model::UserId;
use crate::state::AppState;
use crate::store::{Store, StoreError, UserSession};
use crate::web::params::Params;
use crate::web::templates::{utc_machine, utc_minute};
use crate::web::{csrf, flash, render, see_other};

/// The device of a session in one phrase.
pub fn device(s: &UserSession) -> String {
    Described { device: s.device.clone(), os: s.os.clone(), browser: s.browser.clone() }.summary()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Ended; the session's device, for the confirmation.
    Ended { device: String },
    /// The session of this very request: that is signing out, not ending a session.
    Current,
    /// No such session of this user (already ended, or someone else's).
    NotFound,
}

/// Ends the user's session `sid` from the session `current`: its index row and browser
/// session are deleted (the next request with that cookie is signed out), the refresh
/// tokens issued in it revoked, and the account event recorded.
pub async fn end(store: &Store, user: &UserId, sid: &str, current: &str, origin: &Origin, now: Timestamp) -> Result<Ending, StoreError> {
    if sid == current {
        return Ok(Ending::Current);
    }
    let Some(ended) = store.end_user_session(user, sid).await? else { return Ok(Ending::NotFound) };
    store.revoke_grants_of_session(sid, now).await?;
    let device = device(&ended);
    events::record_account_event(store, user, AccountEvent::SessionEnded, Some(&device), origin, now).await?;
    Ok(Ending::Ended { device })
}

pub struct Line {
    pub sid: String,
    pub device: String,
    pub ip: String,
    pub since: String,
    pub since_iso: String,
    pub last_seen: String,
    pub last_seen_iso: String,
    pub current: bool,
}

#[derive(askama::Template)]
#[template(path = "account_sessions.html")]
struct SessionsPage<'a> {
    csrf_token: &'a str,
    notice: Option<&'a str>,
    sessions: Vec<Line>,
}

pub async fn get_sessions(State(app): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let current = session::current(&me.session).await?.map(|a| a.sid).unwrap_or_default();
    let mut sessions = app.store.user_sessions(&me.user.id, app.now(), i64::from(app.config.session_ttl)).await?;
    // The current one first, then by last activity.
    sessions.sort_by_key(|s| s.sid != current);
    let lines = sessions
        .iter()
        .map(|s| Line {
            sid: s.sid.clone(),
            device: device(s),
            ip: s.ip.clone().unwrap_or_else(|| "unknown".into()),
            since: utc_minute(s.created_at),
            since_iso: utc_machine(s.created_at),
            last_seen: utc_minute(s.last_seen_at),
            last_seen_iso: utc_machine(s.last_seen_at),
            current: s.sid == current,
        })
        .collect();
    let notice = flash::take(&me.session).await?;
    let token = csrf::token(&me.session).await?;
    Ok(render(&SessionsPage { csrf_token: &token, notice: notice.as_deref(), sessions: lines }))
}

pub async fn post_end(State(app): State<AppState>, me: SignedIn, origin: Origin, body: Bytes) -> Result<Response, PageError> {
    let form = Params::parse(&body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(&me.session, form.get("csrf_token")).await?;
    let sid = form.get("sid").ok_or_else(|| PageError::bad_request("Choose a session to end."))?;
    let current = session::current(&me.session).await?.map(|a| a.sid).unwrap_or_default();
    let message = match end(&app.store, &me.user.id, sid, &current, &origin, app.now()).await? {
        Ending::Ended { device } => format!("The session on {device} was ended: it is signed out, and apps it signed in to lose access."),
        Ending::Current => "That is this browser: use Sign out to end it.".to_string(),
        Ending::NotFound => "That session has already ended.".to_string(),
    };
    flash::set(&me.session, &message).await?;
    Ok(see_other("/account/sessions"))
}
