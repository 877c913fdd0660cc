//! Synchroniser-token CSRF protection: one random token per session, sent back in every
//! form and compared in constant time.

use tower_sessions::Session;

use crate::crypto::{constant_time_eq, random_token};
use crate::error::PageError;

const KEY: &str = "csrf";

/// The session's CSRF token, created on first use.
pub async fn token(session: &Session) -> Result<String, PageError> {
    if let Some(token) = session.get::<String>(KEY).await.map_err(|e| PageError::internal(&e))? {
        return Ok(token);
    }
    let token = random_token();
    session.insert(KEY, &token).await.map_err(|e| PageError::internal(&e))?;
    Ok(token)
}

pub async fn verify(session: &Session, submitted: Option<&str>) -> Result<(), PageError> {
    let expected = session.get::<String>(KEY).await.map_err(|e| PageError::internal(&e))?;
    match (expected, submitted) {
        (Some(expected), Some(submitted)) if constant_time_eq(&expected, submitted) => Ok(()),
        _ => Err(PageError::forbidden(
            "This form has expired or was not sent from this site. Go back, reload the page and try again.",
        )),
    }
}
