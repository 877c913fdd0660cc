//! Sign-in through GitHub (OAuth 2.0 and its REST API, not OpenID Connect), against a small
//! local server that speaks GitHub's documented authorize, token, `/user` and
//! `/user/emails` endpoints, bound to 127.0.0.1 and stopped when the test ends. Which
//! person "approves" at its authorize endpoint is set by the test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use sluis::config::{Config, Registration, UpstreamConfig, UpstreamKind};

use crate::support::*;
use crate::upstream::{attempts, authorize, drive, id_token_of};

const CLIENT_ID: &str = "gh-client";
const CLIENT_SECRET: &str = "gh-secret";

#[derive(Default)]
struct Fake {
    /// Who approves at the next authorization.
    person: String,
    /// Issued codes: person, PKCE challenge, redirect URI.
    codes: HashMap<String, (String, String, String)>,
    /// What the API saw last: the headers GitHub requires.
    api_headers: Vec<HeaderMap>,
}

type Shared = Arc<Mutex<Fake>>;

/// The fake GitHub; stops when dropped.
struct FakeGithub {
    base: String,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGithub {
    async fn start() -> Self {
        let state = Shared::default();
        let router = axum::Router::new()
            .route("/login/oauth/authorize", get(authorize_endpoint))
            .route("/login/oauth/access_token", post(token_endpoint))
            .route("/api/user", get(user_endpoint))
            .route("/api/user/emails", get(emails_endpoint))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { base, state, task }
    }

    fn approve_as(&self, person: &str) {
        self.state.lock().unwrap().person = person.into();
    }
}

/// An address at GitHub: address, primary, verified.
type GithubEmail = (&'static str, bool, bool);

/// GitHub users by login: id, name, emails.
fn person(login: &str) -> Option<(u64, &'static str, Vec<GithubEmail>)> {
    Some(match login {
        "octocat" => (583231, "The Octocat", vec![("octo@example.com", true, true), ("other@example.com", false, true)]),
        // The same user after renaming the login: the id stays.
        "octocat-renamed" => (583231, "The Octocat", vec![("octo@example.com", true, true)]),
        "unverified" => (1002, "Una", vec![("una@example.com", true, false), ("una-old@example.com", false, true)]),
        "taken" => (1003, "Not Ada", vec![("ada@example.com", true, false)]),
        "bad-code" | "user-error" => (1004, "Broken", vec![("broken@example.com", true, true)]),
        _ => return None,
    })
}

async fn authorize_endpoint(State(state): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID || get("code_challenge_method") != "S256" || !get("scope").split(' ').any(|s| s == "user:email") {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let mut fake = state.lock().unwrap();
    let redirect = get("redirect_uri");
    let state_param = url::form_urlencoded::byte_serialize(get("state").as_bytes()).collect::<String>();
    if fake.person == "deny" {
        return Redirect::to(&format!("{redirect}?error=access_denied&error_description=The+user+has+denied+your+application+access.&state={state_param}")).into_response();
    }
    let code = format!("code-{}", sluis::crypto::random_id());
    let person = fake.person.clone();
    fake.codes.insert(code.clone(), (person, get("code_challenge"), redirect.clone()));
    Redirect::to(&format!("{redirect}?code={code}&state={state_param}")).into_response()
}

async fn token_endpoint(State(state): State<Shared>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    assert_eq!(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()), Some("application/json"), "Sluis asks for JSON");
    let error = |code: &str| axum::Json(json!({ "error": code, "error_description": "refused", "error_uri": "https://docs.github.com" })).into_response();
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return error("incorrect_client_credentials");
    }
    let Some((person, challenge, redirect)) = state.lock().unwrap().codes.remove(&get("code")) else { return error("bad_verification_code") };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, get("code_verifier").as_bytes());
    let ok = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()) == challenge && redirect == get("redirect_uri");
    if !ok || person == "bad-code" {
        return error("bad_verification_code");
    }
    axum::Json(json!({ "access_token": format!("gho_{person}"), "token_type": "bearer", "scope": "read:user,user:email" })).into_response()
}

/// The person whose token the request carries, if GitHub would answer it at all.
fn api_person(state: &Shared, headers: &HeaderMap) -> Result<String, Box<Response>> {
    state.lock().unwrap().api_headers.push(headers.clone());
    if headers.get(header::USER_AGENT).is_none() {
        return Err(Box::new((StatusCode::FORBIDDEN, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header").into_response()));
    }
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer gho_"));
    match bearer {
        Some("user-error") => Err(Box::new((StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response())),
        Some(login) if person(login).is_some() => Ok(login.to_string()),
        _ => Err(Box::new((StatusCode::UNAUTHORIZED, axum::Json(json!({ "message": "Bad credentials" }))).into_response())),
    }
}

async fn user_endpoint(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match api_person(&state, &headers) {
        Ok(login) => {
            let (id, name, _) = person(&login).unwrap();
            axum::Json(json!({ "login": login, "id": id, "name": name, "email": null, "type": "User" })).into_response()
        }
        Err(r) => *r,
    }
}

async fn emails_endpoint(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match api_person(&state, &headers) {
        Ok(login) => {
            let emails: Vec<Value> = person(&login).unwrap().2.into_iter().map(|(email, primary, verified)| json!({ "email": email, "primary": primary, "verified": verified, "visibility": "private" })).collect();
            axum::Json(Value::Array(emails)).into_response()
        }
        Err(r) => *r,
    }
}

async fn app(github: &FakeGithub) -> TestApp {
    let base = github.base.clone();
    TestApp::start_with(|c: &mut Config| {
        c.registration = Registration::Open;
        c.upstreams = vec![UpstreamConfig {
            id: "github".into(),
            name: "GitHub".into(),
            kind: UpstreamKind::Github,
            issuer: Some(base.clone()),
            tenant: None,
            api_url: Some(format!("{base}/api")),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scopes: vec![],
        }];
    })
    .await
}

#[tokio::test]
async fn github_signs_up_and_back_in_to_the_same_account_by_its_numeric_id() {
    let github = FakeGithub::start().await;
    let app = app(&github).await;
    let (client, secret) = app.client().await;

    github.approve_as("octocat");
    let (url, verifier) = authorize(&app, &client, &[]);
    let callback = drive(&app.browser(), &url, "github", "", false).await.client();
    let first = id_token_of(&app, &client, &secret, &callback, &verifier).await;
    assert_eq!(first["amr"], json!(["fed"]), "{first}");
    let (user, _) = app.state.store.user_credentials("octo@example.com").await.unwrap().expect("account from the primary address");
    assert!(user.email_verified, "primary and verified at GitHub");
    assert_eq!(user.name.as_deref(), Some("The Octocat"));
    let identities = app.state.store.upstream_identities(&user.id).await.unwrap();
    assert_eq!((identities.len(), identities[0].provider_id.as_str(), identities[0].subject.as_str()), (1, "github", "583231"));

    // Renamed at GitHub: the id is the same, so is the account.
    github.approve_as("octocat-renamed");
    let (url, verifier) = authorize(&app, &client, &[]);
    let callback = drive(&app.browser(), &url, "github", "", false).await.client();
    assert_eq!(id_token_of(&app, &client, &secret, &callback, &verifier).await["sub"], first["sub"]);

    // GitHub's required headers went with every API call.
    for headers in &github.state.lock().unwrap().api_headers {
        assert_eq!(headers.get("accept").unwrap(), "application/vnd.github+json");
        assert_eq!(headers.get("x-github-api-version").unwrap(), "2022-11-28");
        assert!(headers.get("user-agent").unwrap().to_str().unwrap().starts_with("sluis/"));
    }
    let login = app.browser().get("/login").await.text().await.unwrap();
    assert!(login.contains("Sign in with GitHub"), "{login}");
}

#[tokio::test]
async fn an_unverified_primary_address_is_not_trusted() {
    let github = FakeGithub::start().await;
    let app = app(&github).await;
    let (client, _) = app.client().await;

    // A new account, its address unverified (a verified secondary address does not count).
    github.approve_as("unverified");
    let (url, _) = authorize(&app, &client, &[]);
    drive(&app.browser(), &url, "github", "", false).await.client();
    let (una, _) = app.state.store.user_credentials("una@example.com").await.unwrap().expect("account");
    assert!(!una.email_verified);
    assert!(app.state.store.user_credentials("una-old@example.com").await.unwrap().is_none());

    // An account has the address: nothing created, nothing linked, no offer.
    let ada = app.user("ada@example.com").await;
    github.approve_as("taken");
    let (url, _) = authorize(&app, &client, &[]);
    let (status, _, body) = drive(&app.browser(), &url, "github", "", false).await.page();
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("could not be created") && !body.contains("link-offer"), "{body}");
    assert!(app.state.store.upstream_identities(&ada.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn github_errors_are_readable_pages_and_a_denial_reaches_the_client() {
    let github = FakeGithub::start().await;
    let app = app(&github).await;
    let (client, _) = app.client().await;

    for (person, reason) in [("bad-code", "upstream_error"), ("user-error", "upstream_error")] {
        github.approve_as(person);
        let (url, _) = authorize(&app, &client, &[]);
        let (status, _, body) = drive(&app.browser(), &url, "github", "", false).await.page();
        assert_eq!(status, 502, "{person}: {body}");
        assert!(body.contains("Signing in with GitHub did not work this time"), "{person}: {body}");
        assert!(attempts(&app).await.contains(&("upstream:github".into(), "failure".into(), Some(reason.into()))), "{person}");
    }
    assert!(app.state.store.user_credentials("broken@example.com").await.unwrap().is_none());

    // The user denies at GitHub: the client hears access_denied.
    github.approve_as("deny");
    let (url, _) = authorize(&app, &client, &[]);
    let back = drive(&app.browser(), &url, "github", "", false).await.client();
    assert_eq!(query_param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&back, "state").as_deref(), Some("st"));

    // A state that is not this browser's.
    github.approve_as("octocat");
    let browser = app.browser();
    let crate::upstream::End::Callback(callback) = drive(&browser, &app.url("/login/upstream/github"), "github", "", true).await else { panic!("no callback") };
    let code = query_param(&callback, "code").unwrap();
    let forged = browser.get(&format!("/login/upstream/github/callback?code={code}&state=forged")).await;
    assert_eq!(forged.status(), 400);
    assert!(forged.text().await.unwrap().contains("started in another browser"));
    assert!(app.state.store.user_credentials("octo@example.com").await.unwrap().is_none(), "nothing signed up");
    // Without a code.
    let again = browser.get(&format!("/login/upstream/github/callback?state={}", query_param(&callback, "state").unwrap())).await;
    assert_eq!(again.status(), 502);
}
