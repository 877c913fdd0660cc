//! GitHub, which speaks OAuth 2.0 and a REST API rather than OpenID Connect: the
//! authorization code flow with `state` and PKCE S256, the token exchange at
//! `{issuer}/login/oauth/access_token`, then `GET {api}/user` (the numeric `id` is the
//! subject: the `login` can be renamed and reused) and `GET {api}/user/emails` (the primary
//! address, verified only when GitHub says so). No ID token, so no `nonce`, no `auth_time`.

use openidconnect::reqwest;
use openidconnect::{CsrfToken, PkceCodeChallenge};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::UpstreamError;
use super::flow::{Identity, PendingUpstream, Purpose};
use super::provider::{Provider, success_body};
use crate::clock::Timestamp;

/// The REST API version we speak (GitHub's `X-GitHub-Api-Version`).
const API_VERSION: &str = "2022-11-28";

/// The provider's authorization URL for a new sign-in, and what to keep until it returns.
pub fn start(provider: &Provider, redirect_uri: &str, request_id: &str, purpose: Purpose, now: Timestamp) -> Result<(Url, PendingUpstream), UpstreamError> {
    let config = &provider.config;
    let endpoint = format!("{}/login/oauth/authorize", config.issuer());
    let mut url = Url::parse(&endpoint).map_err(|e| UpstreamError::Unavailable(format!("{endpoint}: {e}")))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = CsrfToken::new_random();
    url.query_pairs_mut()
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &config.scopes().join(" "))
        .append_pair("state", state.secret())
        .append_pair("code_challenge", challenge.as_str())
        .append_pair("code_challenge_method", "S256");
    let pending = PendingUpstream {
        provider_id: config.id.clone(),
        state: state.secret().clone(),
        nonce: String::new(),
        pkce_verifier: verifier.secret().clone(),
        request_id: request_id.to_string(),
        started_at: now,
        purpose,
    };
    Ok((url, pending))
}

/// The token endpoint's answer: GitHub reports errors with status 200 and an `error` field.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    token_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

/// Exchanges the code and reads who the user is: the identity, or why not.
pub async fn finish(provider: &Provider, http: &reqwest::Client, pending: &PendingUpstream, code: &str, redirect_uri: &str) -> Result<Identity, UpstreamError> {
    let config = &provider.config;
    let url = format!("{}/login/oauth/access_token", config.issuer());
    let form = [
        ("client_id", config.client_id.as_str()),
        ("client_secret", config.client_secret.as_str()),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", pending.pkce_verifier.as_str()),
    ];
    let response = http.post(&url).header("accept", "application/json").form(&form).send().await;
    let answer: TokenAnswer = json(&url, response).await?;
    if let Some(error) = answer.error {
        return Err(UpstreamError::Refused(format!("token endpoint: {}", clip(&error))));
    }
    let Some(token) = answer.access_token.filter(|t| !t.is_empty()) else {
        return Err(UpstreamError::Invalid("the token response has no access token".into()));
    };
    if !answer.token_type.is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
        return Err(UpstreamError::Invalid("the token response is not a bearer token".into()));
    }
    let api = config.api_url();
    let user: GithubUser = api_get(http, &format!("{api}/user"), &token).await?;
    let emails: Vec<GithubEmail> = api_get(http, &format!("{api}/user/emails"), &token).await?;
    let primary = emails.into_iter().find(|e| e.primary);
    Ok(Identity {
        subject: user.id.to_string(),
        email_verified: primary.as_ref().is_some_and(|e| e.verified),
        email: primary.map(|e| e.email.trim().to_string()).filter(|e| !e.is_empty()),
        name: user.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()),
        auth_time: None,
    })
}

/// A GET of the REST API with the user's token and the headers GitHub asks for (it refuses
/// requests without a `User-Agent`, which the shared client sets).
async fn api_get<T: DeserializeOwned>(http: &reqwest::Client, url: &str, token: &str) -> Result<T, UpstreamError> {
    let response = http
        .get(url)
        .bearer_auth(token)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION)
        .send()
        .await;
    json(url, response).await
}

async fn json<T: DeserializeOwned>(url: &str, response: Result<reqwest::Response, reqwest::Error>) -> Result<T, UpstreamError> {
    let bytes = success_body(url, response).await?;
    serde_json::from_slice(&bytes).map_err(|e| UpstreamError::Invalid(format!("{url}: {e}")))
}

/// An error code for the log: a short token of printable ASCII.
fn clip(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}
