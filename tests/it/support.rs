//! Test support: a Sluis on an ephemeral 127.0.0.1 port with a fixed clock, on SQLite or
//! (when TEST_POSTGRES_URL is set) on a fresh PostgreSQL database per test; a cookie-keeping
//! HTTP "browser" that can sign in and consent; PKCE helpers.

#![allow(dead_code)]

use std::sync::Arc;

use reqwest::redirect::Policy;
use sluis::admin::{self, NewClientSpec, NewUserSpec};
use sluis::clock::{Clock, FixedClock, SystemClock};
use sluis::config::Config;
use sluis::model::{Client, User};
use sluis::state::AppState;
use url::Url;

pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
pub const POST_LOGOUT_URI: &str = "http://127.0.0.1:9/bye";
pub const PASSWORD: &str = "correct horse battery staple";

/// A database for one test: a SQLite file in `dir`, or a new PostgreSQL database.
pub async fn database_url(dir: &std::path::Path) -> String {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let name = format!("sluis_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::AnyConnection::connect(&admin_url).await.expect("connect to TEST_POSTGRES_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create test database");
            let mut url = Url::parse(&admin_url).expect("TEST_POSTGRES_URL is a URL");
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
        _ => format!("sqlite://{}?mode=rwc", dir.join("sluis.db").display()),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub clock: FixedClock,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let mut config = Config {
            issuer: base.clone(),
            data_dir: dir.path().join("data"),
            database_url: Some(database_url(dir.path()).await),
            password_hash_workers: 2,
            ..Config::default()
        };
        adjust(&mut config);
        // Start at the real time so relying-party libraries accept our timestamps.
        let clock = FixedClock::new(SystemClock.now());
        let state = sluis::build_state(config, Arc::new(clock.clone())).await.expect("state");
        let app = sluis::app(state.clone());
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
        Self { base, state, clock, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn user(&self, email: &str) -> User {
        let spec = NewUserSpec { email: email.into(), name: Some("Ada Lovelace".into()), is_admin: false, password: PASSWORD.into() };
        admin::create_user(&self.state.store, &self.state.passwords, spec, self.clock.now()).await.unwrap()
    }

    /// A browser signed in on the plain login page (no client involved) with [`PASSWORD`].
    pub async fn signed_in(&self, email: &str) -> Browser {
        let browser = self.browser();
        let page = browser.get("/login").await.text().await.unwrap();
        let response = browser.submit(&page, &[("email", email), ("password", PASSWORD)]).await;
        assert_eq!(location(&response).as_deref(), Some("/account"), "sign-in of {email}");
        browser
    }

    /// A confidential client (secret returned) with the default redirect URIs.
    pub async fn client(&self) -> (Client, String) {
        let (client, secret) = self.client_with(|_| {}).await;
        (client, secret.unwrap())
    }

    pub async fn public_client(&self) -> Client {
        self.client_with(|s| s.public = true).await.0
    }

    pub async fn client_with(&self, adjust: impl FnOnce(&mut NewClientSpec)) -> (Client, Option<String>) {
        let mut spec = NewClientSpec {
            name: "Example Shop".into(),
            redirect_uris: vec![REDIRECT_URI.into()],
            post_logout_redirect_uris: vec![POST_LOGOUT_URI.into()],
            public: false,
            scopes: vec![],
            grant_types: vec!["authorization_code".into(), "refresh_token".into(), "client_credentials".into()],
            signing_alg: None,
            verified: true,
        };
        adjust(&mut spec);
        if spec.public {
            spec.grant_types.retain(|g| g != "client_credentials");
        }
        admin::create_client(&self.state.store, &self.state.scopes, spec, &admin::Actor::cli(), self.clock.now()).await.unwrap()
    }

    pub fn browser(&self) -> Browser {
        Browser {
            http: reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().unwrap(),
            base: self.base.clone(),
        }
    }

    /// A plain HTTP client without cookies or redirects, as a backend would be.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
    }

    /// An authorization URL for `client` with PKCE, state `st` and nonce `n`.
    pub fn authorize_url(&self, client: &Client, scope: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
        let mut url = Url::parse(&self.url("/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client.id.as_str())
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", scope)
            .append_pair("state", "st")
            .append_pair("nonce", "n")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            url.query_pairs_mut().append_pair(k, v);
        }
        url.to_string()
    }

    /// Signs `email` in through a fresh browser and returns a code for `client`, with its verifier.
    pub async fn code_for(&self, client: &Client, email: &str, scope: &str) -> (String, String) {
        let (verifier, challenge) = pkce();
        let browser = self.browser();
        let callback = browser.sign_in_and_consent(&self.authorize_url(client, scope, &challenge, &[]), email, PASSWORD).await;
        (query_param(&callback, "code").expect("code in callback"), verifier)
    }

    /// POSTs a form to the token endpoint with client_secret_basic.
    pub async fn token(&self, client: &Client, secret: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http().post(self.url("/token")).form(form);
        match secret {
            Some(secret) => request = request.basic_auth(client.id.as_str(), Some(secret)),
            None => {
                let mut with_id: Vec<(&str, &str)> = form.to_vec();
                with_id.push(("client_id", client.id.as_str()));
                request = self.http().post(self.url("/token")).form(&with_id);
            }
        }
        request.send().await.unwrap()
    }

    /// Exchanges a code and returns the parsed token response (asserting 200).
    pub async fn exchange(&self, client: &Client, secret: &str, code: &str, verifier: &str) -> serde_json::Value {
        let response = self
            .token(client, Some(secret), &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT_URI), ("code_verifier", verifier)])
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

impl Browser {
    pub async fn get(&self, url: &str) -> reqwest::Response {
        let url = if url.starts_with('/') { format!("{}{url}", self.base) } else { url.to_string() };
        self.http.get(url).send().await.unwrap()
    }

    /// Follows redirects within Sluis, submitting the login form and allowing consent, until
    /// a redirect leaves for the client. Returns that URL.
    pub async fn sign_in_and_consent(&self, start: &str, email: &str, password: &str) -> Url {
        let mut response = self.get(start).await;
        for _ in 0..10 {
            if let Some(location) = location(&response) {
                if !location.starts_with(&self.base) && !location.starts_with('/') {
                    return Url::parse(&location).unwrap();
                }
                response = self.get(&location).await;
                continue;
            }
            let status = response.status();
            let html = response.text().await.unwrap();
            assert_eq!(status, 200, "unexpected page: {html}");
            let (action, mut fields) = form(&html).unwrap_or_else(|| panic!("no form on page: {html}"));
            if fields.iter().any(|(n, _)| n == "password") {
                set(&mut fields, "email", email);
                set(&mut fields, "password", password);
            } else if html.contains("name=\"decision\"") {
                fields.push(("decision".into(), "allow".into()));
            }
            response = self.http.post(format!("{}{action}", self.base)).form(&fields).send().await.unwrap();
        }
        panic!("too many steps");
    }

    /// Submits the first form of `html` with extra fields.
    pub async fn submit(&self, html: &str, extra: &[(&str, &str)]) -> reqwest::Response {
        let (action, mut fields) = form(html).expect("form");
        for (k, v) in extra {
            set(&mut fields, k, v);
        }
        self.http.post(format!("{}{action}", self.base)).form(&fields).send().await.unwrap()
    }
}

fn set(fields: &mut Vec<(String, String)>, name: &str, value: &str) {
    fields.retain(|(n, _)| n != name);
    fields.push((name.into(), value.into()));
}

pub fn location(response: &reqwest::Response) -> Option<String> {
    response.headers().get("location").map(|v| v.to_str().unwrap().to_string())
}

pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].replace("&amp;", "&").replace("&quot;", "\"").replace("&#x2f;", "/").replace("&lt;", "<").replace("&gt;", ">"))
}

/// The first form's action and its named inputs (a minimal parser for our own pages).
pub fn form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let end = html[start..].find("</form>")? + start;
    let body = &html[start..end];
    let action = attr(&body[..body.find('>')?], "action")?;
    let mut fields = Vec::new();
    for piece in body.split("<input").skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        if let Some(name) = attr(tag, "name") {
            fields.push((name, attr(tag, "value").unwrap_or_default()));
        }
    }
    Some((action, fields))
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    use base64::Engine;
    let verifier = sluis::crypto::random_token();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// Decodes a JWT's payload without verifying it (tests verify signatures separately).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Whether `check` holds after another process changed a client: a running server follows
/// such a change at once on SQLite (its change marker is read before every cached lookup),
/// and on PostgreSQL once the change's notification has reached the server's listener, about
/// a millisecond later, so there `check` is repeated for up to two seconds.
pub async fn after_a_client_change_elsewhere<F, Fut>(database_url: &str, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let patient = database_url.starts_with("postgres");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        if check().await {
            return true;
        }
        if !patient || std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
