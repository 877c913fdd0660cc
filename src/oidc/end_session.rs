//! RP-Initiated Logout 1.0. With a valid `id_token_hint` for the current session the user
//! is signed out at once; otherwise they confirm first, so a stray link cannot sign them out.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;
use url::Url;

use crate::crypto::jwt::{self, Expectations};
use crate::error::PageError;
use crate::login::session;
use crate::model::Client;
use crate::state::AppState;
use crate::web::params::Params;
use crate::web::templates::{LogoutPage, SignedOutPage};
use crate::web::{csrf, render, see_other};

#[derive(Deserialize)]
struct HintClaims {
    sub: String,
    aud: serde_json::Value,
}

pub async fn get_logout(State(app): State<AppState>, session: Session, RawQuery(query): RawQuery) -> Response {
    logout(&app, &session, query.unwrap_or_default().as_bytes(), false).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn post_logout(State(app): State<AppState>, session: Session, body: Bytes) -> Response {
    logout(&app, &session, &body, true).await.unwrap_or_else(IntoResponse::into_response)
}

async fn logout(app: &AppState, session: &Session, raw: &[u8], is_post: bool) -> Result<Response, PageError> {
    let params = Params::parse(raw).map_err(|e| PageError::bad_request(format!("The logout request is malformed: {e}.")))?;
    let (client, hint_sub) = identify_client(app, &params).await?;
    let redirect = match params.get("post_logout_redirect_uri") {
        Some(uri) => {
            let client = client.as_ref().ok_or_else(|| {
                PageError::bad_request("post_logout_redirect_uri needs an id_token_hint or client_id.")
            })?;
            // Exact match only: this is a redirect, and must not become an open one.
            if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
                return Err(PageError::bad_request("The post_logout_redirect_uri is not registered for this application."));
            }
            Some(uri.to_string())
        }
        None => None,
    };

    let current = session::current(session).await?;
    let confirmed = is_post && params.get("confirm") == Some("yes");
    if confirmed {
        csrf::verify(session, params.get("csrf_token")).await?;
    }
    // The hint names the signed-in user (or nobody is signed in): no need to ask.
    let hint_matches = match (&current, &client, &hint_sub) {
        (None, _, _) => true,
        (Some(auth), Some(client), Some(sub)) => app.subject(client, &auth.user_id) == *sub,
        _ => false,
    };
    if !confirmed && !hint_matches {
        let token = csrf::token(session).await?;
        let mut fields = Vec::new();
        for name in ["post_logout_redirect_uri", "state", "client_id", "id_token_hint"] {
            if let Some(value) = params.get(name) {
                fields.push((name, value));
            }
        }
        let page = render(&LogoutPage { csrf_token: &token, client_name: client.as_ref().map(|c| c.name.as_str()), fields });
        return Ok(match &redirect {
            Some(uri) => crate::web::allow_form_redirect_to(page, uri),
            None => page,
        });
    }

    if let Some(auth) = current {
        app.store.revoke_grants_of_session(&auth.sid, app.now()).await?;
    }
    session::sign_out(session).await?;
    match redirect {
        Some(uri) => {
            let mut url = Url::parse(&uri).map_err(|_| PageError::bad_request("The post_logout_redirect_uri is invalid."))?;
            if let Some(state) = params.get("state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            Ok(see_other(url.as_str()))
        }
        None => Ok(render(&SignedOutPage)),
    }
}

/// The client named by `id_token_hint` (an ID token we issued, possibly expired) and/or
/// `client_id`; they must agree.
async fn identify_client(app: &AppState, params: &Params) -> Result<(Option<Client>, Option<String>), PageError> {
    let mut hinted: Option<(String, String)> = None;
    if let Some(hint) = params.get("id_token_hint") {
        let ring = app.keys.ring();
        let expect = Expectations { issuer: app.issuer(), typ: None, check_expiry: false, now: app.now() };
        let claims: HintClaims = jwt::verify(&ring, hint, &expect)
            .map_err(|_| PageError::bad_request("The id_token_hint is not a valid ID token from this server."))?;
        let aud = match &claims.aud {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a.first().and_then(|v| v.as_str()).unwrap_or_default().to_string(),
            _ => String::new(),
        };
        hinted = Some((aud, claims.sub));
    }
    let client_id = match (params.get("client_id"), &hinted) {
        (Some(id), Some((aud, _))) if id != aud => {
            return Err(PageError::bad_request("client_id does not match the id_token_hint."));
        }
        (Some(id), _) => Some(id.to_string()),
        (None, Some((aud, _))) => Some(aud.clone()),
        (None, None) => None,
    };
    let client = match client_id {
        Some(id) => Some(app.store.client(&id).await?.ok_or_else(|| PageError::bad_request("The application is not known."))?),
        None => None,
    };
    Ok((client, hinted.map(|(_, sub)| sub)))
}
