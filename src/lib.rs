//! Sluis: a privacy-aware OpenID Connect / OAuth 2.0 identity provider.

pub mod account;
pub mod admin;
pub mod api;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod login;
pub mod mail;
pub mod model;
pub mod oidc;
pub mod privacy;
pub mod state;
pub mod store;
pub mod web;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::password::PasswordHasher;
use crate::state::{AppState, InstanceSecrets, KeyCache};
use crate::store::{SessionStore, Store};

/// Largest request body accepted; protocol parameters have their own, smaller limit.
const MAX_BODY: usize = 1024 * 1024;

/// The whole HTTP application. Tests call this directly, without a port.
pub fn app(state: AppState) -> Router {
    let cookie_name = if state.config.https() { "__Host-sluis_session" } else { "sluis_session" };
    let sessions = SessionManagerLayer::new(SessionStore::new(state.store.clone(), state.clock.clone()))
        .with_name(cookie_name)
        .with_secure(state.config.https())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(i64::from(state.config.session_ttl))));
    // Pages: the browser session is read and written around them.
    let browser = Router::new()
        .merge(oidc::browser_router())
        .merge(login::router())
        .merge(account::router())
        .merge(admin::router(state.clone()))
        // Inside the session layer: keeps `user_sessions` in step and signs ended sessions out.
        .layer(axum::middleware::from_fn_with_state(state.clone(), login::session::track))
        .layer(sessions)
        // Before the session layer: a refused sign-in costs no database round trip.
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::rate_limit::limit));
    // Requests that sign or check tokens: password hashing yields to them when they contend.
    let protocol = Router::new()
        .merge(oidc::client_router())
        .merge(api::router())
        // One layer (each `route_layer` call adds a boxed service per route); the limit first:
        // a refused request is no load.
        .route_layer(
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(state.clone(), web::rate_limit::limit))
                .layer(axum::middleware::from_fn_with_state(state.clone(), count_protocol_load)),
        );
    // Protocol endpoints, the user API and static files never see the session: a cookie a
    // client app happens to send is ignored, and the hot paths skip the session machinery.
    let clients = Router::new()
        .merge(protocol)
        .merge(oidc::metadata_router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/static/sluis.css", get(|| async { static_file("text/css", include_str!("../static/sluis.css")) }))
        .route("/static/form_post.js", get(|| async { static_file("text/javascript", include_str!("../static/form_post.js")) }));
    let app = Router::new()
        .merge(browser)
        .merge(clients)
        .fallback(|| async { error::PageError::not_found() });
    web::with_common_layers(app, MAX_BODY).with_state(state)
}

async fn count_protocol_load(State(app): State<AppState>, request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    app.passwords.protocol_load().measure(next.run(request)).await
}

fn static_file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        body,
    )
}

async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}

/// Connects to the database (creating the SQLite file and data directory if needed).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    if url.starts_with("sqlite:") && config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    }
    Store::connect(&url).await.context("cannot open the database")
}

/// The instance secret: configured, or generated once into the data directory.
pub fn instance_secret(config: &Config) -> anyhow::Result<String> {
    if let Some(secret) = &config.instance_secret {
        return Ok(secret.clone());
    }
    let path = config.data_dir.join("instance.secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => Ok(s.trim().to_string()),
        Ok(_) => anyhow::bail!("{} is too short; remove it to generate a new one (existing signing keys become unreadable)", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
            let secret = crypto::random_token();
            write_private(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// How long a retired key stays published: past the life of anything it signed.
pub fn retired_key_publication(config: &Config) -> i64 {
    i64::from(config.access_token_ttl.max(config.id_token_ttl)) + 300
}

/// Opens the database, migrates, loads (or creates) keys: everything `app` needs.
pub async fn build_state(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let store = open_store(&config).await?;
    store.migrate().await.context("cannot apply database migrations")?;
    let secrets = InstanceSecrets::new(&instance_secret(&config)?);
    let ring = crypto::rotation::load(&store, &secrets.key_sealer, clock.now(), retired_key_publication(&config))
        .await
        .context("cannot load signing keys")?;
    let scopes = privacy::Catalogue::with_custom(&config.scopes).map_err(|e| anyhow::anyhow!("configuration: key `scopes`: {e}"))?;
    let mailer = mail::Mailer::from_config(&config.mail).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    Ok(AppState::new(state::Shared {
        mailer,
        passwords: PasswordHasher::new(config.password_hash_workers),
        keys: Arc::new(KeyCache::new(ring)),
        secrets: Arc::new(secrets),
        discovery: oidc::discovery_document(&config, &scopes),
        scopes: Arc::new(scopes),
        limits: Arc::new(web::rate_limit::RateLimits::new(&config)),
        upstreams: Arc::new(login::upstream::Providers::new(&config.upstreams).context("cannot set up the upstream providers' HTTP client")?),
        config: Arc::new(config),
        store,
        clock,
    }))
}

/// Periodic work of a running server: pick up rotated keys, drop expired rows; and, hourly
/// in a task of its own (a first purge of a large backlog may take a while), the
/// retention purge of the login history.
pub fn spawn_maintenance(state: AppState) {
    let retention = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match login::retention::purge(&retention.store, &retention.config, retention.now()).await {
                Ok(report) => tracing::info!(?report, "retention purge"),
                Err(e) => tracing::warn!("retention purge failed: {e}"),
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let now = state.now();
            match crypto::rotation::load(&state.store, &state.secrets.key_sealer, now, retired_key_publication(&state.config)).await {
                Ok(ring) => state.keys.replace(ring),
                Err(e) => tracing::warn!("key reload failed: {e}"),
            }
            state.limits.shrink();
            if let Err(e) = state.store.purge_expired(now).await {
                tracing::warn!("purge failed: {e}");
            }
        }
    });
}
