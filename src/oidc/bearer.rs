//! Access tokens presented to our own resources (RFC 6750): extraction and validation.

use axum::http::{HeaderMap, header};

use super::token::issue::AccessClaims;
use crate::crypto::jwt::{self, Expectations};
use crate::error::BearerError;
use crate::model::{Client, ClientStatus, GrantId};
use crate::state::AppState;
use crate::store::{AccessRecord, ReleaseSubject, StoredGrant};
use crate::web::params::Params;

/// RFC 6750 §2.1 (header) or §2.2 (form body); never both, never the query string.
pub fn extract(headers: &HeaderMap, form: Option<&Params>) -> Result<String, BearerError> {
    let from_header = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().map_err(|_| BearerError::invalid_request("malformed Authorization header"))?;
            match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                    Some(token.trim().to_string())
                }
                _ => return Err(BearerError::invalid_request("use the Bearer scheme")),
            }
        }
        None => None,
    };
    let from_body = form.and_then(|f| f.get("access_token")).map(str::to_string);
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(BearerError::invalid_request("send the token only once")),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (None, None) => Err(BearerError::missing()),
    }
}

/// A valid, unrevoked access token, with its client and (for user tokens) its grant and
/// the release facts about the grant's user.
pub struct ValidAccess {
    pub claims: AccessClaims,
    pub client: Client,
    pub grant: Option<StoredGrant>,
    pub subject: Option<ReleaseSubject>,
}

/// Verifies the signature, then reads the token's state (`Store::access_record`): the client
/// as the client cache has it, the rest in one round trip, uncached, so a revocation counts
/// at once on every node.
pub async fn validate(app: &AppState, token: &str) -> Result<ValidAccess, BearerError> {
    let ring = app.keys.ring();
    let expect = Expectations { issuer: app.issuer(), typ: Some("at+jwt"), check_expiry: true, now: app.now() };
    let claims: AccessClaims = jwt::verify(&ring, token, &expect).map_err(|_| BearerError::invalid_token("the access token is invalid or expired"))?;
    if claims.aud != app.issuer() {
        return Err(BearerError::invalid_token("the access token is not meant for this server"));
    }
    let gid = claims.gid.clone().map(GrantId);
    let record = app.store.access_record(&claims.jti, &claims.client_id, gid.as_ref()).await?;
    let Some(AccessRecord { revoked, client, grant, subject }) = record else {
        return Err(BearerError::invalid_token("the client no longer exists"));
    };
    if revoked {
        return Err(BearerError::invalid_token("the access token was revoked"));
    }
    if client.status == ClientStatus::Suspended {
        return Err(BearerError::invalid_token("the client is suspended"));
    }
    let grant = match gid {
        Some(_) => match grant {
            Some(g) if !g.revoked && g.client_id == client.id => Some(g),
            _ => return Err(BearerError::invalid_token("the access token was revoked")),
        },
        None => None,
    };
    Ok(ValidAccess { claims, client, grant, subject })
}
