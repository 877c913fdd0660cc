//! Per-client-IP rate limits on the endpoints worth guessing at or flooding: sign-in,
//! token (and revocation, introspection), userinfo and the user API. Counted in memory
//! per node (GCRA via `governor`): cheap on the hot path; the login lockout that must hold
//! across nodes is kept in the database by the login code.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;

use super::client_ip::client_ip;
use crate::config::Config;
use crate::error::PageError;
use crate::state::AppState;

#[derive(Debug)]
pub struct RateLimits {
    login: Option<DefaultKeyedRateLimiter<IpAddr>>,
    token: Option<DefaultKeyedRateLimiter<IpAddr>>,
    api: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

fn limiter(quota: Option<Quota>) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    quota.map(RateLimiter::keyed)
}

impl RateLimits {
    pub fn new(config: &Config) -> Self {
        // Per-second limits allow bursts of twice the rate, so a client retrying at once is not refused.
        let per_minute = NonZeroU32::new(config.rate_limit_login_per_minute).map(Quota::per_minute);
        let per_second = |n: u32| {
            NonZeroU32::new(n).map(|n| Quota::per_second(n).allow_burst(NonZeroU32::new(n.get().saturating_mul(2)).unwrap_or(n)))
        };
        Self {
            login: limiter(per_minute),
            token: limiter(per_second(config.rate_limit_token_per_second)),
            api: limiter(per_second(config.rate_limit_api_per_second)),
        }
    }

    /// Forgets idle clients, so the tables do not grow without bound.
    pub fn shrink(&self) {
        for l in [&self.login, &self.token, &self.api].into_iter().flatten() {
            l.retain_recent();
        }
    }
}

enum Kind {
    Login,
    Token,
    Api,
}

fn classify(method: &Method, path: &str) -> Option<Kind> {
    if method == Method::POST && (path == "/login" || path.starts_with("/login/")) {
        return Some(Kind::Login);
    }
    // Upstream sign-in is two GETs (start, callback), each costing the provider a request.
    if method == Method::GET && path.starts_with("/login/upstream/") {
        return Some(Kind::Login);
    }
    match path {
        "/token" | "/revoke" | "/introspect" => Some(Kind::Token),
        "/userinfo" => Some(Kind::Api),
        p if p.starts_with("/api/users/") => Some(Kind::Api),
        _ => None,
    }
}

/// Middleware around the pages (outside the session layer) and the protocol routes; the
/// requests it does not classify pass untouched.
pub async fn limit(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Some(kind) = classify(request.method(), request.uri().path()) else { return next.run(request).await };
    let limiter = match kind {
        Kind::Login => &app.limits.login,
        Kind::Token => &app.limits.token,
        Kind::Api => &app.limits.api,
    };
    let Some(limiter) = limiter else { return next.run(request).await };
    let ip = client_ip(request.extensions(), request.headers(), &app.config.trusted_proxies).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    match limiter.check_key(&ip) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            too_many(kind, seconds.max(1))
        }
    }
}

/// RFC 6585 §4: 429 with `Retry-After`.
fn too_many(kind: Kind, seconds: u64) -> Response {
    let mut response = match kind {
        Kind::Login => {
            PageError::new(StatusCode::TOO_MANY_REQUESTS, "Slow down", format!("Too many attempts from your network. Wait {seconds} seconds and try again.")).into_response()
        }
        Kind::Token | Kind::Api => (
            StatusCode::TOO_MANY_REQUESTS,
            crate::error::no_store(),
            Json(json!({"error": "rate_limited", "error_description": format!("too many requests; retry after {seconds} seconds")})),
        )
            .into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
