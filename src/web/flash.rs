//! One-shot messages for the page after a form's redirect (POST, then 303, then GET),
//! kept in the session so nothing a user typed ends up in a URL.

use tower_sessions::Session;

use crate::error::PageError;

const KEY: &str = "flash";

/// Keeps `message` for the next page that calls [`take`].
pub async fn set(session: &Session, message: &str) -> Result<(), PageError> {
    session.insert(KEY, message).await.map_err(|e| PageError::internal(&e))
}

/// The pending message, if any; it is shown once.
pub async fn take(session: &Session) -> Result<Option<String>, PageError> {
    session.remove::<String>(KEY).await.map_err(|e| PageError::internal(&e))
}
