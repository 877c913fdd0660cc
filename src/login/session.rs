//! The signed-in state kept in the browser session.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use super::events::Origin;
use crate::error::PageError;
use crate::model::Authentication;
use crate::state::AppState;

const AUTH: &str = "auth";

pub async fn current(session: &Session) -> Result<Option<Authentication>, PageError> {
    session.get::<Authentication>(AUTH).await.map_err(|e| PageError::internal(&e))
}

/// Records a successful sign-in under a new session id (no session fixation) and a new
/// CSRF token.
pub async fn sign_in(session: &Session, auth: &Authentication) -> Result<(), PageError> {
    session.cycle_id().await.map_err(|e| PageError::internal(&e))?;
    session.remove_value("csrf").await.map_err(|e| PageError::internal(&e))?;
    session.insert(AUTH, auth).await.map_err(|e| PageError::internal(&e))
}

const SIGNED_IN_FOR: &str = "signed_in_for";

/// Notes that this sign-in was made on the login page for the pending authorization request
/// `request_id`, which is what prompt=login and max_age=0 ask for (a same-second timestamp
/// cannot tell). Kept in the browser session, which a sign-in writes anyway: the request is
/// only ever resumed in the browser that made it.
pub async fn signed_in_for(session: &Session, request_id: &str) -> Result<(), PageError> {
    session.insert(SIGNED_IN_FOR, request_id).await.map_err(|e| PageError::internal(&e))
}

/// Whether the last sign-in in this session was made for the pending request `request_id`.
pub async fn was_signed_in_for(session: &Session, request_id: &str) -> Result<bool, PageError> {
    let noted = session.get::<String>(SIGNED_IN_FOR).await.map_err(|e| PageError::internal(&e))?;
    Ok(noted.as_deref() == Some(request_id))
}

const RETURN_TO: &str = "return_to";

/// After the next sign-in in this session that is not for an app, go to `path` (a local
/// path, e.g. a link from a mail that needs the account) rather than the account page.
pub async fn return_after_sign_in(session: &Session, path: &str) -> Result<(), PageError> {
    session.insert(RETURN_TO, path).await.map_err(|e| PageError::internal(&e))
}

/// The path [`return_after_sign_in`] kept, once, if it is still a local one.
pub async fn take_return_after_sign_in(session: &Session) -> Result<Option<String>, PageError> {
    let path = session.remove::<String>(RETURN_TO).await.map_err(|e| PageError::internal(&e))?;
    Ok(path.filter(|p| super::step_up::safe_next(p).is_some()))
}

/// Ends the session: its record is deleted and the cookie cleared.
pub async fn sign_out(session: &Session) -> Result<(), PageError> {
    session.flush().await.map_err(|e| PageError::internal(&e))
}

/// A session's "last active" time is written at most this often (seconds).
const TOUCH_EVERY: i64 = 60;

/// Keeps the per-user session index (`user_sessions`, for `/account/sessions`) in step with
/// the browser session, around every request, whichever path signed in or out:
/// - before the handler, a signed-in session whose row is gone was ended from another
///   browser: it is signed out, so the handler sees nobody; otherwise its last activity,
///   address and record id are refreshed (at most once a minute);
/// - after it, a new sign-in (a new `sid`) gets its row, and a sign-out or a replaced
///   sign-in loses its own.
pub async fn track(State(app): State<AppState>, session: Session, origin: Origin, request: Request, next: Next) -> Response {
    let before = match still_valid(&app, &session, &origin).await {
        Ok(auth) => auth,
        Err(e) => return e.into_response(),
    };
    let response = next.run(request).await;
    let after = match current(&session).await {
        Ok(auth) => auth,
        Err(e) => return e.into_response(),
    };
    let (old, new) = (before.map(|a| a.sid), after.as_ref().map(|a| &a.sid));
    if old.as_ref() != new {
        let result = async {
            if let Some(old) = &old {
                app.store.delete_user_session(old).await?;
            }
            match &after {
                Some(auth) => app.store.insert_user_session(&auth.sid, &auth.user_id, &origin.stored(), app.now()).await,
                None => Ok(true),
            }
        };
        match result.await {
            Ok(true) => {}
            // The account was erased while this request signed it in: no session remains.
            Ok(false) => {
                if let Err(e) = sign_out(&session).await {
                    return e.into_response();
                }
            }
            Err(e) => return PageError::from(e).into_response(),
        }
    }
    response
}

/// The session's sign-in, if it is still valid; an ended one is signed out here.
async fn still_valid(app: &AppState, session: &Session, origin: &Origin) -> Result<Option<Authentication>, PageError> {
    let Some(auth) = current(session).await? else { return Ok(None) };
    let Some(mark) = app.store.user_session_mark(&auth.sid).await? else {
        sign_out(session).await?;
        return Ok(None);
    };
    let now = app.now();
    let record = session.id().map(|id| id.to_string());
    if now - mark.last_seen_at >= TOUCH_EVERY || (record.is_some() && record != mark.record_id) {
        let ip = origin.stored().ip;
        app.store.touch_user_session(&auth.sid, now, record.as_deref(), ip.as_deref()).await?;
    }
    Ok(Some(auth))
}
