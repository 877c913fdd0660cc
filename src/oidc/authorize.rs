//! Authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2): validates the
//! request, keeps it server-side while the user signs in and consents, then answers with
//! a code. Every answer to a trusted redirect URI carries `iss` (RFC 9207).

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;
use url::Url;

use super::authorize_request::{self, AuthorizationRequest, Rejection, ResponseMode};
use crate::clock::Timestamp;
use crate::crypto::{random_token, token_hash};
use crate::error::{ErrorCode, PageError};
use crate::login::session as login_session;
use crate::model::{Authentication, ClientId};
use crate::privacy::ScopeSet;
use crate::state::AppState;
use crate::store::NewCode;
use crate::web::params::Params;
use crate::web::templates::FormPostPage;

/// How long a user may take to sign in and consent.
const PENDING_TTL: i64 = 30 * 60;
/// RFC 6749 §4.1.2 recommends at most 10 minutes; 60 seconds is plenty for a redirect.
pub const CODE_TTL: i64 = 60;

pub async fn get_authorize(State(app): State<AppState>, session: Session, RawQuery(query): RawQuery) -> Response {
    authorize(&app, &session, query.unwrap_or_default().as_bytes()).await
}

pub async fn post_authorize(State(app): State<AppState>, session: Session, body: Bytes) -> Response {
    authorize(&app, &session, &body).await
}

async fn authorize(app: &AppState, session: &Session, raw: &[u8]) -> Response {
    let params = match Params::parse(raw) {
        Ok(p) => p,
        // Parameters we cannot read cannot tell us a trusted redirect URI either.
        Err(e) => return PageError::bad_request(format!("The request is malformed: {e}.")).into_response(),
    };
    let client = match params.get("client_id") {
        Some(id) => match app.store.client(id).await {
            Ok(c) => c,
            Err(e) => return PageError::from(e).into_response(),
        },
        None => return PageError::bad_request("The request has no client_id.").into_response(),
    };
    let request = match client.as_ref().map(|c| authorize_request::parse(&params, c, &app.scopes)) {
        Some(Ok(r)) => r,
        Some(Err(rejection)) => return reject(app, rejection),
        None => return reject(app, authorize_request::trusted_redirect(&params, None).unwrap_err()),
    };
    let id = random_token();
    let payload = match serde_json::to_string(&request) {
        Ok(p) => p,
        Err(e) => return PageError::internal(&e).into_response(),
    };
    if let Err(e) = app.store.put_auth_request(&id, &payload, app.now(), PENDING_TTL).await {
        return PageError::from(e).into_response();
    }
    proceed(app, session, &id, request, app.now()).await
}

#[derive(Deserialize)]
pub struct ResumeQuery {
    request_id: String,
}

/// Where the login and consent pages send the browser back to.
pub async fn get_resume(State(app): State<AppState>, session: Session, Query(q): Query<ResumeQuery>) -> Response {
    match load_pending(&app, &q.request_id).await {
        Ok(Some((request, created_at))) => proceed(&app, &session, &q.request_id, request, created_at).await,
        Ok(None) => expired_page().into_response(),
        Err(e) => e.into_response(),
    }
}

pub fn expired_page() -> PageError {
    PageError::bad_request("This sign-in request has expired or was already completed. Go back to the application and start again.")
}

/// A pending request and when it was made.
pub async fn load_pending(app: &AppState, id: &str) -> Result<Option<(AuthorizationRequest, Timestamp)>, PageError> {
    let Some(stored) = app.store.auth_request(id, app.now()).await? else { return Ok(None) };
    let request = serde_json::from_str(&stored.payload).map_err(|e| PageError::internal(&e))?;
    Ok(Some((request, stored.created_at)))
}

/// What the authorization endpoint does next for a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Login,
    Consent,
    IssueCode,
    Fail(ErrorCode),
}

/// OpenID Connect Core §3.1.2.3–4: sign in again when asked (prompt=login, max_age),
/// ask for consent when not given or asked (prompt=consent), and with prompt=none fail
/// instead of showing anything.
pub fn next_step(
    request: &AuthorizationRequest,
    requested_at: Timestamp,
    auth: Option<&Authentication>,
    consented: Option<&ScopeSet>,
    now: Timestamp,
) -> Step {
    let fresh_enough = auth.is_some_and(|a| {
        if request.login_done {
            return a.auth_time >= requested_at;
        }
        // max_age=0 is prompt=login (OpenID Connect Core §3.1.2.1).
        let must_log_in = request.prompt.login || request.max_age == Some(0);
        !must_log_in && request.max_age.is_none_or(|max| now - a.auth_time <= max)
    });
    if !fresh_enough {
        return if request.prompt.none { Step::Fail(ErrorCode::LoginRequired) } else { Step::Login };
    }
    let scope = ScopeSet::parse(&request.scope).unwrap_or_default();
    let covered = consented.is_some_and(|c| scope.is_subset(c));
    if !request.consent_given && (request.prompt.consent || !covered) {
        return if request.prompt.none { Step::Fail(ErrorCode::ConsentRequired) } else { Step::Consent };
    }
    Step::IssueCode
}

async fn proceed(app: &AppState, session: &Session, id: &str, request: AuthorizationRequest, requested_at: Timestamp) -> Response {
    let auth = match login_session::current(session).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let client_id = ClientId(request.client_id.clone());
    let consented = match &auth {
        Some(a) => match app.store.consent(&a.user_id, &client_id).await {
            Ok(c) => c.and_then(|s| ScopeSet::parse(&s)),
            Err(e) => return PageError::from(e).into_response(),
        },
        None => None,
    };
    let now = app.now();
    match next_step(&request, requested_at, auth.as_ref(), consented.as_ref(), now) {
        Step::Login => crate::web::see_other(&format!("/login?request_id={id}")),
        Step::Consent => crate::web::see_other(&format!("/consent?request_id={id}")),
        Step::Fail(code) => {
            let _ = app.store.delete_auth_request(id).await;
            error_response(app, &request.redirect_uri, request.response_mode, request.state.as_deref(), code, None)
        }
        Step::IssueCode => {
            let auth = auth.expect("IssueCode implies a signed-in user");
            match issue_code(app, &request, auth, now).await {
                Ok(code) => {
                    let _ = app.store.delete_auth_request(id).await;
                    respond(app, &request.redirect_uri, request.response_mode, &[("code", &code), ("state", request.state.as_deref().unwrap_or(""))])
                }
                Err(e) => e.into_response(),
            }
        }
    }
}

async fn issue_code(app: &AppState, request: &AuthorizationRequest, auth: Authentication, now: Timestamp) -> Result<String, PageError> {
    let code = random_token();
    let client = app.store.client(&request.client_id).await?.ok_or_else(expired_page)?;
    let client_id = client.id.clone();
    app.store.touch_link(&auth.user_id, &client_id, &app.subject(&client, &auth.user_id), &request.scope, now).await?;
    app.store
        .insert_code(&NewCode {
            code_hash: token_hash(&code),
            client_id,
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth,
            expires_at: now + CODE_TTL,
        })
        .await?;
    Ok(code)
}

/// The user refused consent, or a check failed after the redirect URI was trusted.
pub fn error_response(
    app: &AppState,
    redirect_uri: &str,
    mode: ResponseMode,
    state: Option<&str>,
    code: ErrorCode,
    description: Option<&str>,
) -> Response {
    respond(
        app,
        redirect_uri,
        mode,
        &[("error", code.as_str()), ("error_description", description.unwrap_or("")), ("state", state.unwrap_or(""))],
    )
}

fn reject(app: &AppState, rejection: Rejection) -> Response {
    match rejection {
        Rejection::Page(message) => PageError::bad_request(message).into_response(),
        Rejection::Redirect { redirect_uri, response_mode, state, code, description } => {
            error_response(app, &redirect_uri, response_mode, state.as_deref(), code, Some(description))
        }
    }
}

/// Sends an authorization response with `iss` (RFC 9207) by redirect or form post.
fn respond(app: &AppState, redirect_uri: &str, mode: ResponseMode, fields: &[(&str, &str)]) -> Response {
    let mut fields: Vec<(&str, &str)> = fields.iter().copied().filter(|(_, v)| !v.is_empty()).collect();
    fields.push(("iss", app.issuer()));
    match mode {
        ResponseMode::Query => {
            let Ok(mut url) = Url::parse(redirect_uri) else {
                return PageError::bad_request("The redirect address is invalid.").into_response();
            };
            url.query_pairs_mut().extend_pairs(fields);
            crate::web::see_other(url.as_str())
        }
        ResponseMode::FormPost => {
            let mut response = crate::web::render(&FormPostPage { action: redirect_uri, fields });
            // The form goes to the client, so this page's form-action names it.
            let target = crate::web::form_target_source(redirect_uri).unwrap_or_default();
            let csp = crate::web::csp_with_form_action(&target);
            if let Ok(value) = HeaderValue::from_str(&csp) {
                response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
            }
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::authorize_request::Prompt;
    use crate::model::UserId;

    fn request(prompt: Prompt, max_age: Option<i64>) -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: "c".into(),
            redirect_uri: "https://app.example/cb".into(),
            response_mode: ResponseMode::Query,
            state: None,
            scope: "email openid".into(),
            nonce: None,
            code_challenge: None,
            prompt,
            max_age,
            login_hint: None,
            consent_given: false,
            login_done: false,
        }
    }

    fn auth(at: Timestamp) -> Authentication {
        Authentication { user_id: UserId("u".into()), auth_time: at, amr: vec!["pwd".into()], sid: "s".into() }
    }

    #[test]
    fn steps() {
        let all = ScopeSet::parse("openid email profile").unwrap();
        let none = Prompt::default();
        let r = request(none.clone(), None);
        assert_eq!(next_step(&r, 100, None, None, 100), Step::Login);
        assert_eq!(next_step(&r, 100, Some(&auth(50)), None, 100), Step::Consent);
        assert_eq!(next_step(&r, 100, Some(&auth(50)), Some(&all), 100), Step::IssueCode);
        let partial = ScopeSet::parse("openid").unwrap();
        assert_eq!(next_step(&r, 100, Some(&auth(50)), Some(&partial), 100), Step::Consent);

        let silent = request(Prompt { none: true, ..Prompt::default() }, None);
        assert_eq!(next_step(&silent, 100, None, None, 100), Step::Fail(ErrorCode::LoginRequired));
        assert_eq!(next_step(&silent, 100, Some(&auth(50)), None, 100), Step::Fail(ErrorCode::ConsentRequired));

        let login = request(Prompt { login: true, ..Prompt::default() }, None);
        assert_eq!(next_step(&login, 100, Some(&auth(50)), Some(&all), 100), Step::Login);
        assert_eq!(next_step(&login, 100, Some(&auth(100)), Some(&all), 100), Step::Login, "same second is not enough");
        let logged_in = AuthorizationRequest { login_done: true, ..login };
        assert_eq!(next_step(&logged_in, 100, Some(&auth(100)), Some(&all), 101), Step::IssueCode);

        let consent = request(Prompt { consent: true, ..Prompt::default() }, None);
        assert_eq!(next_step(&consent, 100, Some(&auth(50)), Some(&all), 100), Step::Consent);
        let approved = AuthorizationRequest { consent_given: true, ..consent };
        assert_eq!(next_step(&approved, 100, Some(&auth(50)), Some(&all), 100), Step::IssueCode);

        let max_age = request(none.clone(), Some(0));
        assert_eq!(next_step(&max_age, 100, Some(&auth(100)), Some(&all), 100), Step::Login);
        let max_age = AuthorizationRequest { login_done: true, ..max_age };
        assert_eq!(next_step(&max_age, 100, Some(&auth(100)), Some(&all), 100), Step::IssueCode);
        let max_age = request(none, Some(60));
        assert_eq!(next_step(&max_age, 100, Some(&auth(50)), Some(&all), 100), Step::IssueCode);
        assert_eq!(next_step(&max_age, 100, Some(&auth(50)), Some(&all), 120), Step::Login);
    }
}
