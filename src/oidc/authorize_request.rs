//! The authorization request (OpenID Connect Core §3.1.2.1, RFC 6749 §4.1.1, RFC 7636),
//! parsed once into a typed value. Pure: no I/O.

use serde::{Deserialize, Serialize};

use crate::crypto::pkce;
use crate::error::ErrorCode;
use crate::model::{Acr, Client};
use crate::privacy::{self, Catalogue, ScopeSet};
use crate::web::params::Params;

use super::redirect_uri;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseMode {
    Query,
    FormPost,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A validated request, kept server-side while the user signs in and consents.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
    /// The requested scopes this client may receive (others are dropped, RFC 6749 §3.3).
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The least authentication class `acr_values` accepts, when it names one we know.
    #[serde(default)]
    pub acr: Option<Acr>,
    /// Set once the user approved this very request (so prompt=consent asks only once).
    #[serde(default)]
    pub consent_given: bool,
    /// Set when the user signed in on the login page for this very request, which is what
    /// prompt=login and max_age=0 ask for (a same-second timestamp cannot tell). Not stored:
    /// it comes from the browser session (`login::session::was_signed_in_for`).
    #[serde(skip)]
    pub login_done: bool,
}

/// Where an invalid request is answered.
#[derive(Debug)]
pub enum Rejection {
    /// Client or redirect URI not trusted: show a page, never redirect (RFC 6749 §4.1.2.1).
    Page(&'static str),
    /// Redirect URI trusted: send the error back to the client.
    Redirect { redirect_uri: String, response_mode: ResponseMode, state: Option<String>, code: ErrorCode, description: &'static str },
}

/// Step 1: which client and where to answer. Must pass before any redirect.
pub fn trusted_redirect<'a>(params: &'a Params, client: Option<&Client>) -> Result<(&'a str, Option<&'a str>), Rejection> {
    let client = client.ok_or(Rejection::Page("The application that sent you here is not known to this sign-in service."))?;
    // OpenID Connect Core §3.1.2.1: redirect_uri is required.
    let uri = params.get("redirect_uri").ok_or(Rejection::Page("The request has no redirect_uri."))?;
    if !redirect_uri::matches(&client.redirect_uris, uri) {
        return Err(Rejection::Page("The redirect_uri is not registered for this application."));
    }
    Ok((uri, params.get("state")))
}

/// Step 2: with a trusted redirect URI, validate everything else.
pub fn parse(params: &Params, client: &Client, catalogue: &Catalogue) -> Result<AuthorizationRequest, Rejection> {
    let (redirect_uri, state) = trusted_redirect(params, Some(client))?;
    let mode = match params.get("response_mode") {
        None | Some("query") => Ok(ResponseMode::Query),
        Some("form_post") => Ok(ResponseMode::FormPost),
        Some(_) => Err("unsupported response_mode"),
    };
    let reject = |code: ErrorCode, description: &'static str| Rejection::Redirect {
        redirect_uri: redirect_uri.to_string(),
        response_mode: *mode.as_ref().unwrap_or(&ResponseMode::Query),
        state: state.map(str::to_string),
        code,
        description,
    };
    let response_mode = mode.map_err(|d| reject(ErrorCode::InvalidRequest, d))?;

    // OpenID Connect Core §6: request objects are optional; we say so with the spec's codes.
    if params.contains("request") {
        return Err(reject(ErrorCode::RequestNotSupported, "request objects are not supported"));
    }
    if params.contains("request_uri") {
        return Err(reject(ErrorCode::RequestUriNotSupported, "request_uri is not supported"));
    }
    if params.contains("registration") {
        return Err(reject(ErrorCode::RegistrationNotSupported, "registration is not supported"));
    }
    match params.get("response_type") {
        Some("code") => {}
        None => return Err(reject(ErrorCode::InvalidRequest, "response_type is required")),
        Some(_) => return Err(reject(ErrorCode::UnsupportedResponseType, "only response_type=code is supported")),
    }
    if client.status == crate::model::ClientStatus::Suspended {
        return Err(reject(ErrorCode::UnauthorizedClient, "this client is suspended"));
    }
    if !client.allows_grant(crate::model::GrantType::AuthorizationCode) {
        return Err(reject(ErrorCode::UnauthorizedClient, "this client may not use the authorization code flow"));
    }
    let requested = match params.get("scope") {
        Some(s) => ScopeSet::parse(s).ok_or_else(|| reject(ErrorCode::InvalidScope, "scope has invalid characters"))?,
        None => return Err(reject(ErrorCode::InvalidScope, "scope is required")),
    };
    // DESIGN §4 rules 1–2: only enabled scopes, and sensitive ones only once an admin
    // approved them for a verified client. The token response's `scope` says what was granted.
    let scope = privacy::grantable(&client.policy(catalogue), &requested);
    if scope.is_empty() {
        return Err(reject(ErrorCode::InvalidScope, "none of the requested scopes is available to this client"));
    }

    // RFC 7636 + RFC 9700 §2.1.1: S256 only; required for public clients.
    let code_challenge = match (params.get("code_challenge"), params.get("code_challenge_method")) {
        (None, None) if client.is_public() => {
            return Err(reject(ErrorCode::InvalidRequest, "PKCE (code_challenge with S256) is required for public clients"));
        }
        (None, None) => None,
        (None, Some(_)) => return Err(reject(ErrorCode::InvalidRequest, "code_challenge_method without code_challenge")),
        (Some(_), None | Some("plain")) => {
            return Err(reject(ErrorCode::InvalidRequest, "code_challenge_method must be S256"));
        }
        (Some(challenge), Some("S256")) if pkce::is_valid_s256_challenge(challenge) => Some(challenge.to_string()),
        (Some(_), Some("S256")) => return Err(reject(ErrorCode::InvalidRequest, "code_challenge is malformed")),
        (Some(_), Some(_)) => return Err(reject(ErrorCode::InvalidRequest, "code_challenge_method must be S256")),
    };

    let mut prompt = Prompt::default();
    if let Some(p) = params.get("prompt") {
        for value in p.split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                // We have one account per session, so there is nothing to select.
                "select_account" => {}
                _ => return Err(reject(ErrorCode::InvalidRequest, "unknown prompt value")),
            }
        }
        // OpenID Connect Core §3.1.2.1: none must stand alone.
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(reject(ErrorCode::InvalidRequest, "prompt=none cannot be combined with other values"));
        }
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => return Err(reject(ErrorCode::InvalidRequest, "max_age must be a non-negative integer")),
        },
    };
    // OpenID Connect Core §3.1.2.1: acr_values lists acceptable classes in order of
    // preference. We honour it as a requirement: the least class listed that we know must be
    // met. Unknown values are ignored, as acr is a voluntary claim.
    let acr = params.get("acr_values").and_then(|v| v.split(' ').filter_map(Acr::parse).min());
    // Without openid this is plain OAuth 2.0; a nonce only makes sense with an ID token.
    let nonce = params.get("nonce").map(str::to_string);

    Ok(AuthorizationRequest {
        client_id: client.id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        response_mode,
        state: state.map(str::to_string),
        scope: scope.to_string(),
        nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint: params.get("login_hint").map(str::to_string),
        acr,
        consent_given: false,
        login_done: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClientId, GrantType, SigningAlg};

    fn client(public: bool) -> Client {
        Client {
            id: ClientId("c1".into()),
            name: "App".into(),
            secret_hash: (!public).then(|| "h".into()),
            redirect_uris: vec!["https://app.example/cb".into()],
            post_logout_redirect_uris: vec![],
            scopes: ScopeSet::parse("openid email profile").unwrap(),
            approved_scopes: ScopeSet::parse("email profile").unwrap(),
            status: crate::model::ClientStatus::Verified,
            public_subject: false,
            grant_types: vec![GrantType::AuthorizationCode],
            signing_alg: SigningAlg::RS256,
            created_at: 0,
        }
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn params(extra: &str) -> Params {
        Params::parse(format!("client_id=c1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=code&scope=openid+email&state=s{extra}").as_bytes()).unwrap()
    }

    fn code_of(r: Result<AuthorizationRequest, Rejection>) -> ErrorCode {
        match r {
            Err(Rejection::Redirect { code, state, .. }) => {
                assert_eq!(state.as_deref(), Some("s"));
                code
            }
            other => panic!("expected redirect error, got {other:?}"),
        }
    }

    #[test]
    fn a_good_request_parses() {
        let req = parse(&params(&format!("&code_challenge={CHALLENGE}&code_challenge_method=S256&nonce=n&max_age=60")), &client(true), &Catalogue::default()).unwrap();
        assert_eq!(req.scope, "email openid");
        assert_eq!(req.max_age, Some(60));
        assert_eq!(req.code_challenge.as_deref(), Some(CHALLENGE));
        assert_eq!(req.acr, None);
    }

    #[test]
    fn acr_values_ask_for_the_least_known_class() {
        let c = client(false);
        let acr = |extra: &str| parse(&params(extra), &c, &Catalogue::default()).unwrap().acr;
        assert_eq!(acr("&acr_values=urn%3Asluis%3Aacr%3A2fa"), Some(Acr::TwoFactor));
        assert_eq!(acr("&acr_values=urn%3Asluis%3Aacr%3A2fa+urn%3Asluis%3Aacr%3A1fa"), Some(Acr::OneFactor));
        assert_eq!(acr("&acr_values=urn%3Aother+urn%3Asluis%3Aacr%3A2fa"), Some(Acr::TwoFactor));
        assert_eq!(acr("&acr_values=urn%3Aother"), None);
    }

    #[test]
    fn unknown_client_or_redirect_uri_gives_a_page() {
        assert!(matches!(trusted_redirect(&params(""), None), Err(Rejection::Page(_))));
        let other = Params::parse(b"client_id=c1&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&response_type=code").unwrap();
        assert!(matches!(parse(&other, &client(false), &Catalogue::default()), Err(Rejection::Page(_))));
    }

    #[test]
    fn pkce_rules() {
        assert_eq!(code_of(parse(&params(""), &client(true), &Catalogue::default())), ErrorCode::InvalidRequest);
        assert!(parse(&params(""), &client(false), &Catalogue::default()).is_ok());
        let plain = format!("&code_challenge={CHALLENGE}&code_challenge_method=plain");
        assert_eq!(code_of(parse(&params(&plain), &client(false), &Catalogue::default())), ErrorCode::InvalidRequest);
        let implicit_plain = format!("&code_challenge={CHALLENGE}");
        assert_eq!(code_of(parse(&params(&implicit_plain), &client(false), &Catalogue::default())), ErrorCode::InvalidRequest);
    }

    #[test]
    fn other_errors_use_the_spec_codes() {
        let c = client(false);
        let p = Params::parse(b"client_id=c1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=token&scope=openid&state=s").unwrap();
        assert_eq!(code_of(parse(&p, &c, &Catalogue::default())), ErrorCode::UnsupportedResponseType);
        assert_eq!(code_of(parse(&params("&request=x"), &c, &Catalogue::default())), ErrorCode::RequestNotSupported);
        assert_eq!(code_of(parse(&params("&prompt=none+login"), &c, &Catalogue::default())), ErrorCode::InvalidRequest);
        assert_eq!(code_of(parse(&params("&max_age=-1"), &c, &Catalogue::default())), ErrorCode::InvalidRequest);
        let p = Params::parse(b"client_id=c1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=code&scope=phone&state=s").unwrap();
        assert_eq!(code_of(parse(&p, &c, &Catalogue::default())), ErrorCode::InvalidScope);
    }
}
