//! The signed-in state kept in the browser session.

use tower_sessions::Session;

use crate::error::PageError;
use crate::model::Authentication;

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

/// Ends the session: its record is deleted and the cookie cleared.
pub async fn sign_out(session: &Session) -> Result<(), PageError> {
    session.flush().await.map_err(|e| PageError::internal(&e))
}
