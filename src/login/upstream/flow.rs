//! One upstream sign-in: the authorization request (code flow, PKCE S256, `state`,
//! `nonce`) and, on the way back, the code exchange and every check OpenID Connect Core
//! §3.1.3.7 asks of an ID token before its identity is trusted. A re-authentication asks
//! the provider to sign the user in again (`prompt=login`, `max_age=0`, Core §3.1.2.1) and
//! checks `auth_time`.

use base64::Engine;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreTokenResponse,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use url::Url;

use super::UpstreamError;
use super::microsoft;
use super::provider::{Discovered, Provider};
use crate::clock::Timestamp;
use crate::config::UpstreamKind;
use crate::model::UserId;

/// How long the user may take at the provider.
pub const PENDING_TTL: i64 = 10 * 60;
/// Clock difference tolerated for an ID token's `iat` in the future.
const MAX_SKEW: i64 = 5 * 60;
/// Signature algorithms accepted: asymmetric only (a MAC under the client secret would let
/// anyone who learns the secret mint identities).
const ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// What an upstream sign-in is for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// Signing in (for the pending `request_id`, if any).
    #[default]
    SignIn,
    /// Linking the identity to the signed-in account (`/account/security`).
    Link { user_id: UserId },
    /// Proving again who the signed-in user is, for a sensitive page at `next`.
    Reauth { user_id: UserId, next: String },
}

/// An upstream sign-in under way, kept in the session until its callback (single use).
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingUpstream {
    pub provider_id: String,
    pub state: String,
    /// Empty for GitHub (OAuth 2.0 has no nonce).
    pub(super) nonce: String,
    pub(super) pkce_verifier: String,
    /// The Sluis authorization request the sign-in is for (empty: none).
    pub request_id: String,
    pub started_at: Timestamp,
    #[serde(default)]
    pub purpose: Purpose,
}

/// The nonce and verifier never print.
impl std::fmt::Debug for PendingUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingUpstream")
            .field("provider_id", &self.provider_id)
            .field("request_id", &self.request_id)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// Who the provider says the user is, once every check passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    /// Only when the provider asserts it (`email_verified: true`).
    pub email_verified: bool,
    pub name: Option<String>,
    /// When the provider last signed the user in, if it says.
    pub auth_time: Option<Timestamp>,
}

/// Core §3.1.2.1: after `max_age=0` the provider must have signed the user in during this
/// request; an `auth_time` from before it started (beyond clock skew) means it did not.
pub fn signed_in_again(auth_time: Option<Timestamp>, started_at: Timestamp) -> Result<(), String> {
    match auth_time {
        Some(at) if at < started_at - MAX_SKEW => Err(format!("auth_time {at} is before the re-authentication began")),
        _ => Ok(()),
    }
}

fn client(provider: &Provider, metadata: &CoreProviderMetadata, redirect_uri: &str) -> Result<CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>, UpstreamError> {
    let redirect = RedirectUrl::new(redirect_uri.to_string()).map_err(|e| UpstreamError::Unavailable(format!("redirect URI: {e}")))?;
    Ok(CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(provider.config.client_id.clone()),
        Some(ClientSecret::new(provider.config.client_secret.clone())),
    )
    .set_redirect_uri(redirect))
}

/// The provider's authorization URL for a new sign-in, and what to keep until it returns.
pub fn start(provider: &Provider, discovered: &Discovered, redirect_uri: &str, request_id: &str, purpose: Purpose, now: Timestamp) -> Result<(Url, PendingUpstream), UpstreamError> {
    let client = client(provider, &discovered.metadata, redirect_uri)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
    // openidconnect adds `openid` itself.
    for scope in provider.config.scopes().into_iter().filter(|s| s != "openid") {
        request = request.add_scope(Scope::new(scope));
    }
    if matches!(purpose, Purpose::Reauth { .. }) {
        request = request.add_prompt(CoreAuthPrompt::Login).set_max_age(std::time::Duration::ZERO);
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let pending = PendingUpstream {
        provider_id: provider.config.id.clone(),
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        request_id: request_id.to_string(),
        started_at: now,
        purpose,
    };
    Ok((url, pending))
}

/// Exchanges the code and validates the ID token: the identity, or why not.
pub async fn finish(
    provider: &Provider,
    http: &openidconnect::reqwest::Client,
    discovered: Discovered,
    pending: &PendingUpstream,
    code: &str,
    redirect_uri: &str,
    now: Timestamp,
) -> Result<Identity, UpstreamError> {
    let client = client(provider, &discovered.metadata, redirect_uri)?;
    let request = client.exchange_code(AuthorizationCode::new(code.to_string())).map_err(|e| UpstreamError::Unavailable(e.to_string()))?;
    let response = request.set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone())).request_async(http).await.map_err(|e| match e {
        RequestTokenError::ServerResponse(r) => UpstreamError::Refused(format!("token endpoint: {}", r.error())),
        other => UpstreamError::Unavailable(format!("token endpoint: {other}")),
    })?;
    let id_token = response.id_token().ok_or_else(|| UpstreamError::Invalid("the token response has no ID token".into()))?;
    match validate(provider, &discovered, id_token, &response, pending, now) {
        Err(UpstreamError::UnknownKey) => {
            // The provider may have rotated its keys since we fetched them.
            let Some(fresh) = provider.refetch_keys(http, now).await? else {
                return Err(UpstreamError::Invalid("the ID token is signed with an unknown key".into()));
            };
            match validate(provider, &fresh, id_token, &response, pending, now) {
                Err(UpstreamError::UnknownKey) => Err(UpstreamError::Invalid("the ID token is signed with an unknown key".into())),
                other => other,
            }
        }
        other => other,
    }
}

fn validate(provider: &Provider, discovered: &Discovered, id_token: &CoreIdToken, response: &CoreTokenResponse, pending: &PendingUpstream, now: Timestamp) -> Result<Identity, UpstreamError> {
    let config = &provider.config;
    let issuer = discovered.metadata.issuer().as_str();
    let tenant_template = config.kind == UpstreamKind::Microsoft;
    let client = client(provider, &discovered.metadata, "http://unused.invalid/")?;
    let verifier = client
        .id_token_verifier()
        // §3.1.3.7 step 2 for Microsoft is checked below against the token's tenant.
        .require_issuer_match(!tenant_template)
        .set_allowed_algs(ALGS)
        .set_time_fn(move || chrono::DateTime::from_timestamp(now, 0).unwrap_or_default())
        .set_issue_time_verifier_fn(move |iat| {
            let iat = iat.timestamp();
            if iat > now + MAX_SKEW {
                Err(format!("issued in the future ({iat})"))
            } else if now - iat > PENDING_TTL + MAX_SKEW {
                Err(format!("issued too long ago ({iat})"))
            } else {
                Ok(())
            }
        });
    let reauth = matches!(pending.purpose, Purpose::Reauth { .. });
    let started_at = pending.started_at;
    let verifier = verifier.set_auth_time_verifier_fn(move |at: Option<chrono::DateTime<chrono::Utc>>| {
        if reauth { signed_in_again(at.map(|a| a.timestamp()), started_at) } else { Ok(()) }
    });
    let nonce = Nonce::new(pending.nonce.clone());
    let claims = match id_token.claims(&verifier, &nonce) {
        Ok(claims) => claims,
        Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => return Err(UpstreamError::UnknownKey),
        Err(e) => return Err(UpstreamError::Invalid(format!("ID token: {e}"))),
    };
    // §3.1.3.7 steps 4-5: with several audiences an `azp` must name us; if present it must.
    let several = claims.audiences().len() > 1;
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != config.client_id => return Err(UpstreamError::Invalid(format!("ID token: azp is {}", azp.as_str()))),
        None if several => return Err(UpstreamError::Invalid("ID token: several audiences and no azp".into())),
        _ => {}
    }
    // §3.2.2.9 / §3.1.3.8: when at_hash is present it must match the access token.
    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token.signing_alg().map_err(|e| UpstreamError::Invalid(format!("ID token: {e}")))?;
        let key = id_token.signing_key(&verifier).map_err(|e| UpstreamError::Invalid(format!("ID token: {e}")))?;
        let actual = AccessTokenHash::from_token(response.access_token(), alg, key).map_err(|e| UpstreamError::Invalid(format!("at_hash: {e}")))?;
        if actual != *expected {
            return Err(UpstreamError::Invalid("ID token: at_hash does not match the access token".into()));
        }
    }
    if tenant_template {
        let tid = payload_claim(id_token, "tid");
        let expected = microsoft::expected_issuer(issuer, tid.as_deref())
            .ok_or_else(|| UpstreamError::Invalid("ID token: no usable tid claim".into()))?;
        if claims.issuer().as_str() != expected {
            return Err(UpstreamError::Invalid(format!("ID token: iss {} is not {expected}", claims.issuer().as_str())));
        }
    }
    Ok(Identity {
        subject: claims.subject().as_str().to_string(),
        email: claims.email().map(|e| e.as_str().trim().to_string()).filter(|e| !e.is_empty()),
        email_verified: claims.email_verified() == Some(true),
        name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().trim().to_string()).filter(|n| !n.is_empty()),
        auth_time: claims.auth_time().map(|t| t.timestamp()),
    })
}

/// A claim openidconnect's standard set does not carry (Microsoft's `tid`), read from the
/// payload of a token whose signature was already checked.
fn payload_claim(id_token: &CoreIdToken, name: &str) -> Option<String> {
    let raw = id_token.to_string();
    let payload = raw.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get(name)?.as_str().map(str::to_string)
}

/// The `iss` of an authorization response (RFC 9207), when the provider sends one, must be
/// its issuer: it tells responses of two providers apart (mix-up attacks).
pub fn response_issuer_fits(discovered: &Discovered, iss: Option<&str>) -> bool {
    let issuer = discovered.metadata.issuer().as_str();
    match iss {
        None => true,
        // Microsoft's template cannot be compared; the ID token's check covers it.
        Some(_) if issuer.contains(microsoft::TENANT_PLACEHOLDER) => true,
        Some(iss) => iss == issuer,
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reauthentication_needs_a_fresh_auth_time_when_there_is_one() {
        assert!(signed_in_again(None, 1000).is_ok(), "absent: nothing to check");
        assert!(signed_in_again(Some(1010), 1000).is_ok());
        assert!(signed_in_again(Some(1000 - MAX_SKEW), 1000).is_ok(), "within clock skew");
        assert!(signed_in_again(Some(1000 - MAX_SKEW - 1), 1000).is_err(), "an older sign-in at the provider");
    }
}
