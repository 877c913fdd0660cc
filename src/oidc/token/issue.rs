//! Minting access tokens (RFC 9068 JWT profile) and ID tokens (OpenID Connect Core §2).

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::crypto::{b64url, jwt, random_id};
use crate::error::OAuthError;
use crate::model::{Authentication, Client, GrantId, SigningAlg};
use crate::privacy::{self, ScopeSet};
use crate::state::AppState;

/// Claims of our access tokens. `gid` ties a user token to its grant, so revoking the
/// grant (logout, code replay, refresh replay) stops the token at once.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: Timestamp,
    pub iat: Timestamp,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// What a user token is about. The user (`auth.user_id`) is not read again at issuance: a
/// code, grant or refresh token row exists only while its user does (erasure deletes them in
/// the same transaction as the user), so having found one is proof enough.
pub struct UserGrant<'a> {
    pub auth: &'a Authentication,
    pub grant: &'a GrantId,
    pub scope: &'a str,
}

pub fn access_token(app: &AppState, client: &Client, subject: &str, grant: Option<&UserGrant<'_>>, scope: &str) -> Result<String, OAuthError> {
    let now = app.now();
    let claims = AccessClaims {
        iss: app.issuer().to_string(),
        sub: subject.to_string(),
        aud: app.issuer().to_string(),
        exp: now + i64::from(app.config.access_token_ttl),
        iat: now,
        jti: random_id(),
        client_id: client.id.to_string(),
        scope: scope.to_string(),
        auth_time: grant.map(|g| g.auth.auth_time),
        gid: grant.map(|g| g.grant.to_string()),
    };
    let ring = app.keys.ring();
    let key = ring.current(client.signing_alg).ok_or_else(|| OAuthError::server_error(&"no signing key"))?;
    Ok(jwt::sign(key, "at+jwt", &claims))
}

/// OpenID Connect Core §3.1.3.6: left half of the hash of the access token, with the
/// hash of the signing algorithm (SHA-512 for Ed25519, as the RP libraries expect).
fn at_hash(alg: SigningAlg, access_token: &str) -> String {
    let algorithm = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => &digest::SHA256,
        SigningAlg::EdDSA => &digest::SHA512,
    };
    let hash = digest::digest(algorithm, access_token.as_bytes());
    let bytes = hash.as_ref();
    b64url(&bytes[..bytes.len() / 2])
}

/// Claims of our ID tokens (OpenID Connect Core §2), borrowed from what they are made of.
#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: Timestamp,
    iat: Timestamp,
    auth_time: Timestamp,
    amr: &'a [String],
    acr: &'a str,
    sid: &'a str,
    at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

pub fn id_token(app: &AppState, client: &Client, subject: &str, grant: &UserGrant<'_>, nonce: Option<&str>, access_token: &str) -> Result<String, OAuthError> {
    let now = app.now();
    let claims = IdClaims {
        iss: app.issuer(),
        sub: subject,
        aud: client.id.as_str(),
        exp: now + i64::from(app.config.id_token_ttl),
        iat: now,
        auth_time: grant.auth.auth_time,
        amr: &grant.auth.amr,
        acr: grant.auth.acr().as_str(),
        sid: &grant.auth.sid,
        at_hash: at_hash(client.signing_alg, access_token),
        nonce,
    };
    let ring = app.keys.ring();
    let key = ring.current(client.signing_alg).ok_or_else(|| OAuthError::server_error(&"no signing key"))?;
    Ok(jwt::sign(key, "JWT", &claims))
}

/// Access token, and an ID token when `openid` was granted.
pub fn user_tokens(
    app: &AppState,
    client: &Client,
    grant: &UserGrant<'_>,
    nonce: Option<&str>,
    refresh_token: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    // DESIGN §4 rules 1–2, applied again at issuance: a scope an admin rejected (or that is
    // no longer enabled) since the code or refresh token was issued is not granted any more,
    // and the response says so (RFC 6749 §3.3).
    let granted = ScopeSet::parse(grant.scope).unwrap_or_default();
    let scope = privacy::grantable(&client.policy(&app.scopes), &granted).to_string();
    let grant = &UserGrant { scope: &scope, ..*grant };
    let subject = app.subject(client, &grant.auth.user_id);
    let access = access_token(app, client, &subject, Some(grant), grant.scope)?;
    let openid = grant.scope.split(' ').any(|s| s == "openid");
    let id = if openid { Some(id_token(app, client, &subject, grant, nonce, &access)?) } else { None };
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: i64::from(app.config.access_token_ttl),
        scope: grant.scope.to_string(),
        refresh_token,
        id_token: id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_spec_example_shape() {
        // Left-most 128 bits of SHA-256, base64url: 22 characters.
        assert_eq!(at_hash(SigningAlg::RS256, "token").len(), 22);
        assert_eq!(at_hash(SigningAlg::EdDSA, "token").len(), 43);
        assert_ne!(at_hash(SigningAlg::RS256, "a"), at_hash(SigningAlg::RS256, "b"));
    }
}
