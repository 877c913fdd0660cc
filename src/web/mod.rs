//! Web glue: templates, CSRF, flash messages, security headers, strict parameter parsing.

pub mod client_ip;
pub mod csrf;
pub mod flash;
pub mod params;
pub mod rate_limit;
pub mod templates;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

/// Renders a template; a template failure is an internal error, logged with an id.
pub fn render<T: askama::Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            let id = crate::error::log_internal(&e);
            (StatusCode::INTERNAL_SERVER_ERROR, format!("Internal error {id}")).into_response()
        }
    }
}

/// Content-Security-Policy for our pages: no inline script, nothing framed, forms post
/// only back to us. Pages that need more (form_post) set their own.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The CSP source a form may target to reach `uri`: its origin (http, https) or its
/// private-use scheme (`com.example.app:`). `None` if `uri` is not a URL.
pub fn form_target_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    Some(match url.scheme() {
        "http" | "https" => url.origin().ascii_serialization(),
        scheme => format!("{scheme}:"),
    })
}

/// [`CSP`] with `form-action` set to `sources` instead of `'self'`.
pub fn csp_with_form_action(sources: &str) -> String {
    CSP.replace("form-action 'self'", &format!("form-action {sources}"))
}

/// For a page whose form ends in a redirect to the client (sign-in, consent, logout
/// confirmation): browsers check `form-action` against every redirect that follows a form
/// submission, so the client's origin is allowed next to `'self'`.
pub fn allow_form_redirect_to(mut response: Response, redirect_uri: &str) -> Response {
    if let Some(source) = form_target_source(redirect_uri)
        && let Ok(value) = HeaderValue::from_str(&csp_with_form_action(&format!("'self' {source}")))
    {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// Wraps every route of `router` (and its fallback) in what every request gets: the body
/// size limit and the security headers every response carries unless a handler set its
/// own. One layer of plain services, not boxed middleware: it wraps the hot requests too,
/// and each `Router::layer` call adds a boxed service per route.
pub fn with_common_layers<S: Clone + Send + Sync + 'static>(router: Router<S>, max_body: usize) -> Router<S> {
    let header = |name: header::HeaderName, value: &'static str| SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value));
    router.layer(
        ServiceBuilder::new()
            .layer(DefaultBodyLimit::max(max_body))
            .layer(header(header::CONTENT_SECURITY_POLICY, CSP))
            .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .layer(header(header::REFERRER_POLICY, "no-referrer"))
            .layer(header(header::X_FRAME_OPTIONS, "DENY"))
            .layer(header(header::HeaderName::from_static("cross-origin-opener-policy"), "same-origin")),
    )
}

/// A timestamp as people read it: `2026-11-23 14:02 UTC`.
pub fn format_time(at: crate::clock::Timestamp) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(at) else { return at.to_string() };
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// A 303 redirect (RFC 9700 §4.11: never 307 after a form post with credentials).
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => crate::error::PageError::bad_request("The redirect address is invalid.").into_response(),
    }
}
