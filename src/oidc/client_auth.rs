//! Client authentication at the token, revocation and introspection endpoints
//! (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`, or `none` for public clients.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;

use crate::crypto::{constant_time_eq, token_hash};
use crate::error::{ErrorCode, OAuthError};
use crate::model::{Client, ClientStatus};
use crate::state::AppState;
use crate::web::params::Params;

enum Presented {
    Secret { client_id: String, secret: String },
    PublicId(String),
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined and base64'd.
fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let Some((scheme, encoded)) = value.split_once(' ') else { return Err(OAuthError::invalid_client()) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(OAuthError::invalid_client)?;
    let unescape = |s: &str| {
        percent_decode_str(&s.replace('+', " ")).decode_utf8().map(|c| c.into_owned()).map_err(|_| OAuthError::invalid_client())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

fn presented(headers: &HeaderMap, params: &Params) -> Result<Presented, OAuthError> {
    let basic = basic(headers)?;
    let post = params.get("client_secret");
    match (basic, post) {
        // RFC 6749 §2.3: a client must not use more than one method in one request.
        (Some(_), Some(_)) => Err(OAuthError::invalid_request("use only one client authentication method")),
        (Some((client_id, secret)), None) => {
            if params.get("client_id").is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request("client_id does not match the authenticated client"));
            }
            Ok(Presented::Secret { client_id, secret })
        }
        (None, Some(secret)) => {
            let client_id = params.get("client_id").ok_or_else(OAuthError::invalid_client)?;
            Ok(Presented::Secret { client_id: client_id.to_string(), secret: secret.to_string() })
        }
        (None, None) => match params.get("client_id") {
            Some(id) => Ok(Presented::PublicId(id.to_string())),
            None => Err(OAuthError::invalid_client()),
        },
    }
}

pub async fn authenticate(app: &AppState, headers: &HeaderMap, params: &Params) -> Result<Arc<Client>, OAuthError> {
    let presented = presented(headers, params)?;
    let id = match &presented {
        Presented::Secret { client_id, .. } | Presented::PublicId(client_id) => client_id,
    };
    let (client, secret_hashes) = app.store.client_with_secret_hashes(id, app.now()).await?.ok_or_else(OAuthError::invalid_client)?;
    // A suspended client's credentials stop working at once (it still exists, for the audit).
    if client.status == ClientStatus::Suspended {
        return Err(OAuthError::new(ErrorCode::InvalidClient, "this client is suspended"));
    }
    match (&presented, client.is_public()) {
        (Presented::Secret { secret, .. }, false) if secret_matches(&secret_hashes, secret) => Ok(client),
        (Presented::PublicId(_), true) => Ok(client),
        _ => Err(OAuthError::invalid_client()),
    }
}

/// Whether `secret` is one of the client's unrevoked, unexpired secrets (it may hold several
/// while rotating). Secrets are 256-bit random values, so a SHA-256 and a constant-time
/// compare suffice; every secret is compared, so the time taken does not tell which matched.
fn secret_matches(hashes: &[String], secret: &str) -> bool {
    let presented = token_hash(secret);
    hashes.iter().fold(false, |matched, hash| constant_time_eq(&presented, hash) | matched)
}
