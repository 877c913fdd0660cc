//! The one mapping from errors to HTTP: OAuth JSON errors (RFC 6749 §5.2), bearer-token
//! errors (RFC 6750 §3) and readable HTML error pages. Internal details are logged with
//! an id and never sent.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// Error codes of RFC 6749, 6750, 7009 and OpenID Connect Core §3.1.2.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    ServerError,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    RegistrationNotSupported,
    InvalidToken,
    InsufficientScope,
    UnsupportedTokenType,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::RegistrationNotSupported => "registration_not_supported",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Logs an internal error under a fresh id and returns the id, which is all the caller
/// may show.
pub fn log_internal(error: &dyn std::fmt::Display) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(error_id = %id, "{error}");
    id
}

/// An error of a token-style endpoint (token, revocation, introspection): JSON body.
#[derive(Debug)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self { code, description: description.into() }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }

    pub fn server_error(error: &dyn std::fmt::Display) -> Self {
        let id = log_internal(error);
        Self::new(ErrorCode::ServerError, format!("internal error {id}"))
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        Self::server_error(&e)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self.code {
            // RFC 6749 §5.2: 401 for a failed client authentication, with a challenge.
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({"error": self.code.as_str(), "error_description": self.description});
        let mut response = (status, no_store(), Json(body)).into_response();
        if self.code == ErrorCode::InvalidClient {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"sluis\""));
        }
        response
    }
}

/// RFC 6749 §5.1 and RFC 6750: token-bearing responses must not be cached.
pub fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// An error of a protected resource (userinfo, user API): RFC 6750 §3.
#[derive(Debug)]
pub struct BearerError {
    /// `None` when the request carried no token at all (§3.1: then no error code).
    pub code: Option<ErrorCode>,
    pub description: Cow<'static, str>,
}

impl BearerError {
    pub fn missing() -> Self {
        Self { code: None, description: Cow::Borrowed("") }
    }

    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self { code: Some(ErrorCode::InvalidToken), description: description.into() }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self { code: Some(ErrorCode::InvalidRequest), description: description.into() }
    }

    pub fn insufficient_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self { code: Some(ErrorCode::InsufficientScope), description: description.into() }
    }

    pub fn server_error(error: &dyn std::fmt::Display) -> Self {
        let id = log_internal(error);
        Self { code: Some(ErrorCode::ServerError), description: Cow::Owned(format!("internal error {id}")) }
    }
}

impl From<StoreError> for BearerError {
    fn from(e: StoreError) -> Self {
        Self::server_error(&e)
    }
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let (status, challenge) = match self.code {
            None => (StatusCode::UNAUTHORIZED, "Bearer realm=\"sluis\"".to_string()),
            Some(code) => {
                let status = match code {
                    ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
                    ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
                    ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::UNAUTHORIZED,
                };
                // Descriptions are ours and never contain quotes or backslashes.
                (status, format!("Bearer realm=\"sluis\", error=\"{code}\", error_description=\"{}\"", self.description))
            }
        };
        let mut response = match self.code {
            None => (status, no_store()).into_response(),
            Some(code) => {
                (status, no_store(), Json(json!({"error": code.as_str(), "error_description": self.description})))
                    .into_response()
            }
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// An error shown to a person as a readable page.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub title: Cow<'static, str>,
    pub message: Cow<'static, str>,
}

impl PageError {
    pub fn new(status: StatusCode, title: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, title: title.into(), message: message.into() }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, title: Cow::Borrowed("This request cannot be completed"), message: message.into() }
    }

    pub fn not_found() -> Self {
        Self { status: StatusCode::NOT_FOUND, title: Cow::Borrowed("Not found"), message: Cow::Borrowed("There is no page at this address.") }
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self { status: StatusCode::FORBIDDEN, title: Cow::Borrowed("Not allowed"), message: message.into() }
    }

    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        let id = log_internal(error);
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: Cow::Borrowed("Something went wrong"),
            message: Cow::Owned(format!("Please try again later. If it keeps happening, quote error {id}.")),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        Self::internal(&e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = crate::web::templates::ErrorPage { title: &self.title, message: &self.message };
        let mut response = crate::web::render(&page);
        *response.status_mut() = self.status;
        response
    }
}
