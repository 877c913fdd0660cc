//! The configured upstream providers and what they publish: the discovery document and
//! the signing keys, fetched on first use and kept for [`METADATA_TTL`]. A token signed
//! with a key id we do not know makes us fetch the keys again (the provider rotated), at
//! most once per [`KEY_REFETCH_INTERVAL`].

use std::time::Duration;

use openidconnect::core::{CoreJsonWebKeySet, CoreProviderMetadata};
use openidconnect::reqwest;
use tokio::sync::Mutex;
use url::Url;

use super::UpstreamError;
use super::microsoft;
use crate::clock::Timestamp;
use crate::config::{UpstreamConfig, UpstreamKind, secure_or_local};

/// How long a discovery document and its keys are trusted before they are fetched again.
pub const METADATA_TTL: i64 = 3600;
/// The shortest time between two key fetches caused by unknown key ids.
pub const KEY_REFETCH_INTERVAL: i64 = 60;
/// Discovery documents and key sets are small; anything bigger is refused.
const MAX_DOCUMENT: usize = 512 * 1024;

/// Every configured provider, by id, with one HTTP client for them all.
#[derive(Debug)]
pub struct Providers {
    list: Vec<Provider>,
    http: reqwest::Client,
}

#[derive(Debug)]
pub struct Provider {
    pub config: UpstreamConfig,
    cache: Mutex<Option<Discovered>>,
}

/// A discovery document with its keys (`jwks` set in the metadata), as fetched.
#[derive(Clone, Debug)]
pub struct Discovered {
    pub metadata: CoreProviderMetadata,
    fetched_at: Timestamp,
    keys_fetched_at: Timestamp,
}

impl Providers {
    pub fn new(configs: &[UpstreamConfig]) -> Result<Self, reqwest::Error> {
        // No redirects: an endpoint answering with one is a misconfiguration or an attack
        // (openidconnect's advice against SSRF), and every URL we follow is checked first.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("sluis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let list = configs.iter().map(|c| Provider { config: c.clone(), cache: Mutex::new(None) }).collect();
        Ok(Self { list, http })
    }

    pub fn get(&self, id: &str) -> Option<&Provider> {
        self.list.iter().find(|p| p.config.id == id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Provider> {
        self.list.iter()
    }

    /// The display name of a provider id, if it is still configured.
    pub fn name(&self, id: &str) -> Option<&str> {
        self.get(id).map(|p| p.config.name.as_str())
    }

    /// The name to show for provider `id`: its configured name, or the id itself for a
    /// provider since removed from the configuration.
    pub fn display_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.name(id).unwrap_or(id)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

impl Provider {
    /// The provider's metadata with its keys, from the cache while fresh.
    pub async fn discovered(&self, http: &reqwest::Client, now: Timestamp) -> Result<Discovered, UpstreamError> {
        let mut cache = self.cache.lock().await;
        if let Some(d) = cache.as_ref().filter(|d| now - d.fetched_at < METADATA_TTL && d.fetched_at <= now) {
            return Ok(d.clone());
        }
        let discovered = self.fetch(http, now).await?;
        *cache = Some(discovered.clone());
        Ok(discovered)
    }

    /// After a token named a key we do not have: the keys fetched again, unless that
    /// happened moments ago (then `None`).
    pub async fn refetch_keys(&self, http: &reqwest::Client, now: Timestamp) -> Result<Option<Discovered>, UpstreamError> {
        let mut cache = self.cache.lock().await;
        let Some(current) = cache.as_mut() else { return Ok(None) };
        if now - current.keys_fetched_at < KEY_REFETCH_INTERVAL {
            return Ok(None);
        }
        let keys = fetch_keys(http, &current.metadata).await?;
        current.metadata = current.metadata.clone().set_jwks(keys);
        current.keys_fetched_at = now;
        Ok(Some(current.clone()))
    }

    async fn fetch(&self, http: &reqwest::Client, now: Timestamp) -> Result<Discovered, UpstreamError> {
        let issuer = self.config.issuer();
        let url = format!("{issuer}/.well-known/openid-configuration");
        let body = get(http, &url).await?;
        let metadata: CoreProviderMetadata =
            serde_json::from_slice(&body).map_err(|e| UpstreamError::Unavailable(format!("discovery document at {url}: {e}")))?;
        check_discovered_issuer(self.config.kind, &issuer, metadata.issuer().as_str()).map_err(UpstreamError::Unavailable)?;
        for endpoint in [Some(metadata.authorization_endpoint().url()), metadata.token_endpoint().map(|t| t.url())].into_iter().flatten() {
            if !secure_or_local(endpoint) {
                return Err(UpstreamError::Unavailable(format!("endpoint {endpoint} is not https")));
            }
        }
        if metadata.token_endpoint().is_none() {
            return Err(UpstreamError::Unavailable("the discovery document names no token endpoint".into()));
        }
        let keys = fetch_keys(http, &metadata).await?;
        tracing::info!(provider = %self.config.id, "upstream discovery fetched");
        Ok(Discovered { metadata: metadata.set_jwks(keys), fetched_at: now, keys_fetched_at: now })
    }
}

/// OpenID Connect Discovery §4.3: the issuer in the document is the one configured, exactly;
/// Microsoft's multi-tenant documents name a per-tenant template instead (see `microsoft`).
pub fn check_discovered_issuer(kind: UpstreamKind, configured: &str, discovered: &str) -> Result<(), String> {
    if discovered == configured || (kind == UpstreamKind::Microsoft && microsoft::issuer_fits(configured, discovered)) {
        return Ok(());
    }
    Err(format!("the discovery document names issuer {discovered}, not {configured}"))
}

async fn fetch_keys(http: &reqwest::Client, metadata: &CoreProviderMetadata) -> Result<CoreJsonWebKeySet, UpstreamError> {
    let url = metadata.jwks_uri().url().as_str();
    let body = get(http, url).await?;
    serde_json::from_slice(&body).map_err(|e| UpstreamError::Unavailable(format!("key set at {url}: {e}")))
}

/// A GET of a JSON document over https (http only to this machine), size-limited.
async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, UpstreamError> {
    let parsed = Url::parse(url).map_err(|e| UpstreamError::Unavailable(format!("{url}: {e}")))?;
    if !secure_or_local(&parsed) {
        return Err(UpstreamError::Unavailable(format!("{url} is not https")));
    }
    success_body(url, http.get(parsed).header("accept", "application/json").send().await).await
}

/// The body of a successful answer from `url`, or why there is none.
pub(super) async fn success_body(url: &str, sent: Result<reqwest::Response, reqwest::Error>) -> Result<Vec<u8>, UpstreamError> {
    let response = sent.map_err(|e| UpstreamError::Unavailable(format!("{url}: {e}")))?;
    if !response.status().is_success() {
        return Err(UpstreamError::Unavailable(format!("{url} answered {}", response.status())));
    }
    body(url, response).await
}

/// A response's body, at most [`MAX_DOCUMENT`] bytes (a provider's answers are small).
async fn body(url: &str, mut response: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    let unavailable = |e: reqwest::Error| UpstreamError::Unavailable(format!("{url}: {e}"));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT {
            return Err(UpstreamError::Unavailable(format!("{url} is larger than {MAX_DOCUMENT} bytes")));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovered_issuer_must_be_the_configured_one() {
        let google = "https://accounts.google.com";
        assert!(check_discovered_issuer(UpstreamKind::Google, google, google).is_ok());
        assert!(check_discovered_issuer(UpstreamKind::Oidc, "https://sso.example.com", "https://sso.example.com/").is_err(), "exactly");
        assert!(check_discovered_issuer(UpstreamKind::Oidc, "https://sso.example.com", "https://evil.example").is_err());
        let common = "https://login.microsoftonline.com/common/v2.0";
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(check_discovered_issuer(UpstreamKind::Microsoft, common, template).is_ok());
        assert!(check_discovered_issuer(UpstreamKind::Oidc, common, template).is_err(), "the template only for Microsoft");
    }
}
