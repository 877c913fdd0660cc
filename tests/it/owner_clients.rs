//! Client owners' self-service at `/account/clients` (issue 3): registration as allowed by
//! the config, unverified clients with requested scopes and a purpose, several secrets at
//! once (shown once, revocable, expiring), ownership, validation, CSRF and the audit log.

use serde_json::Value;
use sluis::admin::{self, NewUserSpec};
use sluis::clock::Clock as _;
use sluis::config::ClientRegistration;
use sluis::model::{Client, ClientStatus, ScopeState, User};

use crate::support::*;

const ADA: &str = "ada@example.com";
const BOB: &str = "bob@example.com";
const ADMIN: &str = "admin@example.com";
const PURPOSE: &str = "To email order receipts";

async fn open_registration() -> TestApp {
    // The 2FA policy for admins is tested in tests/it/second_factor.rs.
    TestApp::start_with(|c| {
        c.client_registration = ClientRegistration::Users;
        c.require_2fa_for_admins = false;
    })
    .await
}

async fn admin_user(app: &TestApp) -> User {
    let spec = NewUserSpec { email: ADMIN.into(), name: None, is_admin: true, password: PASSWORD.into() };
    admin::create_user(&app.state.store, &app.state.passwords, spec, app.clock.now()).await.unwrap()
}

/// A browser signed in to Sluis directly, with the session's CSRF token.
struct Owner {
    browser: Browser,
    csrf: String,
}

async fn signed_in(app: &TestApp, email: &str) -> Owner {
    let browser = app.browser();
    let html = browser.get("/login").await.text().await.unwrap();
    let response = browser.submit(&html, &[("email", email), ("password", PASSWORD)]).await;
    assert_eq!(location(&response).as_deref(), Some("/account"), "sign-in failed");
    let account = browser.get("/account").await.text().await.unwrap();
    let csrf = value_of(&account, "csrf_token").expect("a CSRF token on the account page");
    Owner { browser, csrf }
}

impl Owner {
    async fn get(&self, path: &str) -> (u16, String) {
        let response = self.browser.get(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// POSTs a form with the CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.post_raw(path, &form).await
    }

    async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.browser.http.post(format!("{}{path}", self.browser.base)).form(fields).send().await.unwrap()
    }

    /// Registers a confidential client with the default URIs, plus/overridden by `extra`.
    async fn register(&self, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = vec![
            ("name", "Ada's Recipes"),
            ("redirect_uris", REDIRECT_URI),
            ("post_logout_redirect_uris", POST_LOGOUT_URI),
            ("client_type", "confidential"),
        ];
        for (k, v) in extra {
            fields.retain(|(name, _)| name != k);
            fields.push((k, v));
        }
        self.post("/account/clients", &fields).await
    }

    /// Registers and returns the client (as stored), its first secret and the page.
    async fn registered(&self, app: &TestApp, extra: &[(&str, &str)]) -> (Client, Option<String>, String) {
        let response = self.register(extra).await;
        assert_eq!(response.status(), 200);
        let html = response.text().await.unwrap();
        let id = element_text(&html, "code id=\"client-id\"").expect("the client id on the page");
        let client = app.state.store.client(&id).await.unwrap().expect("the client is stored");
        (client, element_text(&html, "code id=\"new-secret\""), html)
    }
}

/// The value of the first input named `name`.
fn value_of(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    Some(html[at..at + html[at..].find('"')?].to_string())
}

/// The text of the first element whose opening tag starts with `<{open}`.
fn element_text(html: &str, open: &str) -> Option<String> {
    let start = html.find(&format!("<{open}"))?;
    let inner = start + html[start..].find('>')? + 1;
    Some(html[inner..inner + html[inner..].find('<')?].to_string())
}

/// The page's text as a person reads it: no tags, entities decoded, whitespace collapsed.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out.replace("&#34;", "\"").replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn client_credentials(app: &TestApp, client: &Client, secret: &str) -> reqwest::Response {
    app.token(client, Some(secret), &[("grant_type", "client_credentials")]).await
}

async fn assert_invalid_client(app: &TestApp, client: &Client, secret: &str) {
    let response = client_credentials(app, client, secret).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

fn secret_path(client: &Client) -> String {
    format!("/account/clients/{}/secrets", client.id)
}

#[tokio::test]
async fn registration_is_for_admins_unless_the_config_opens_it() {
    let app = TestApp::start_with(|c| c.require_2fa_for_admins = false).await;
    app.user(ADA).await;
    admin_user(&app).await;
    let ada = signed_in(&app, ADA).await;
    let (status, html) = ada.get("/account/clients").await;
    assert_eq!(status, 403);
    assert!(text(&html).contains("only administrators register clients"), "a readable page: {html}");
    assert_eq!(ada.register(&[]).await.status(), 403);
    assert_eq!(ada.get("/account/clients/anything").await.0, 403);
    assert!(!ada.get("/account").await.1.contains("/account/clients"), "no link to a page she may not use");
    assert!(app.state.store.list_clients(None, 10, 0).await.unwrap().is_empty());

    // Admins always may.
    let admin = signed_in(&app, ADMIN).await;
    assert!(admin.get("/account").await.1.contains("href=\"/account/clients\""));
    assert_eq!(admin.get("/account/clients").await.0, 200);
    let (client, _, _) = admin.registered(&app, &[]).await;
    assert_eq!(client.status, ClientStatus::Unverified, "self-registered, even by an admin");

    // Opened to users.
    let app = open_registration().await;
    app.user(ADA).await;
    let ada = signed_in(&app, ADA).await;
    assert!(ada.get("/account").await.1.contains("href=\"/account/clients\""));
    let (status, html) = ada.get("/account/clients").await;
    assert_eq!(status, 200);
    assert!(text(&html).contains("You have not registered a client yet"), "{html}");

    // Not signed in: the sign-in page.
    let anonymous = app.browser().get("/account/clients").await;
    assert_eq!(anonymous.status(), 303);
    assert_eq!(location(&anonymous).as_deref(), Some("/login"));
}

#[tokio::test]
async fn registering_creates_an_unverified_client_owned_by_the_user() {
    let app = open_registration().await;
    let ada_user = app.user(ADA).await;
    let ada = signed_in(&app, ADA).await;
    let response = ada.register(&[("scope_email", "on"), ("scope_profile", "on"), ("purpose", PURPOSE)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store", "the page with the secret is never cached");
    let html = response.text().await.unwrap();
    let secret = element_text(&html, "code id=\"new-secret\"").expect("the secret, shown once");
    assert_eq!(secret.len(), 43, "256 random bits");
    assert!(text(&html).contains("Copy it now: it is shown only this once"), "{html}");

    let owned = app.state.store.clients_of_owner(&ada_user.id).await.unwrap();
    assert_eq!(owned.len(), 1);
    let client = &owned[0];
    assert_eq!(client.name, "Ada's Recipes");
    assert_eq!(client.status, ClientStatus::Unverified);
    assert!(!client.is_public());
    assert_eq!(client.scopes.to_string(), "email openid profile");
    assert_eq!(client.redirect_uris, [REDIRECT_URI]);
    assert_eq!(client.post_logout_redirect_uris, [POST_LOGOUT_URI]);
    let decisions = app.state.store.scope_decisions(&client.id).await.unwrap();
    for scope in ["email", "profile"] {
        let d = decisions.iter().find(|d| d.scope == scope).unwrap_or_else(|| panic!("{scope}: {decisions:?}"));
        assert_eq!(d.state, ScopeState::Requested);
        assert_eq!(d.purpose.as_deref(), Some(PURPOSE));
        assert_eq!(d.decided_by, None);
    }
    let secrets = app.state.store.client_secrets(&client.id).await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].label, "initial");
    assert_eq!(client_credentials(&app, client, &secret).await.status(), 200, "the secret works");

    // The secret is never shown again, on either page.
    for path in ["/account/clients".to_string(), format!("/account/clients/{}", client.id)] {
        let (status, html) = ada.get(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!html.contains(&secret), "{path} shows the secret again");
        assert!(!html.contains("new-secret\""), "{path}");
    }
    // The list shows the client, its status and each scope's state.
    let (_, html) = ada.get("/account/clients").await;
    let words = text(&html);
    assert!(html.contains(&format!("data-client=\"{}\"", client.id)), "{html}");
    assert!(words.contains("waiting for an administrator's review"), "{words}");
    assert!(words.contains("email: waiting for review") && words.contains("openid: no review needed"), "{words}");

    // The admins see the request and its purpose.
    admin_user(&app).await;
    let admin = signed_in(&app, ADMIN).await;
    let (status, page) = admin.get(&format!("/admin/clients/{}", client.id)).await;
    assert_eq!(status, 200);
    assert!(page.contains(PURPOSE), "{page}");
}

#[tokio::test]
async fn a_self_registered_client_gets_only_openid_until_verified() {
    let app = open_registration().await;
    app.user(ADA).await;
    let ada = signed_in(&app, ADA).await;
    let (client, secret, _) = ada.registered(&app, &[("scope_email", "on"), ("purpose", PURPOSE)]).await;
    let (code, verifier) = app.code_for(&client, ADA, "openid email").await;
    let tokens = app.exchange(&client, &secret.unwrap(), &code, &verifier).await;
    // RFC 6749 §3.3: the response says what was granted.
    assert_eq!(tokens["scope"], "openid");
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert!(id.get("email").is_none(), "{id}");
}

#[tokio::test]
async fn a_public_client_has_no_secret() {
    let app = open_registration().await;
    app.user(ADA).await;
    let ada = signed_in(&app, ADA).await;
    let (client, secret, html) = ada.registered(&app, &[("client_type", "public")]).await;
    assert!(client.is_public());
    assert_eq!(secret, None);
    assert!(text(&html).contains("This is a public client"), "{html}");
    assert!(app.state.store.client_secrets(&client.id).await.unwrap().is_empty());
    let response = ada.post(&secret_path(&client), &[("label", "nope")]).await;
    assert_eq!(response.status(), 400);
    assert!(text(&response.text().await.unwrap()).contains("public client: it has no secrets"));
}

#[tokio::test]
async fn secrets_rotate_without_downtime_and_stop_when_revoked_or_expired() {
    let app = open_registration().await;
    app.user(ADA).await;
    let ada = signed_in(&app, ADA).await;
    let (client, first, _) = ada.registered(&app, &[]).await;
    let first = first.unwrap();

    // A second secret, shown once on the resulting page.
    let response = ada.post(&secret_path(&client), &[("label", "rotation 2026")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    let second = element_text(&html, "code id=\"new-secret\"").expect("the new secret");
    assert_ne!(first, second);
    assert!(text(&html).contains("The secret “rotation 2026” is ready"), "{html}");
    let (_, page) = ada.get(&format!("/account/clients/{}", client.id)).await;
    assert!(!page.contains(&second) && !page.contains(&first), "never shown again");
    assert!(text(&page).contains("rotation 2026"), "listed by its label: {page}");

    // Both work at once.
    assert_eq!(client_credentials(&app, &client, &first).await.status(), 200);
    assert_eq!(client_credentials(&app, &client, &second).await.status(), 200);
    assert_invalid_client(&app, &client, "not-a-secret").await;

    // Revoking the first: it stops at once; the second keeps working.
    let secrets = app.state.store.client_secrets(&client.id).await.unwrap();
    let initial = secrets.iter().find(|s| s.label == "initial").unwrap();
    let revoke = format!("/account/clients/{}/secrets/{}/revoke", client.id, initial.id);
    assert!(page.contains(&format!("action=\"{revoke}\"")), "a revoke button: {page}");
    let response = ada.post(&revoke, &[]).await;
    assert_eq!(response.status(), 303);
    assert_invalid_client(&app, &client, &first).await;
    assert_eq!(client_credentials(&app, &client, &second).await.status(), 200);
    let (_, page) = ada.get(&format!("/account/clients/{}", client.id)).await;
    assert!(text(&page).contains("The secret “initial” is revoked"), "{page}");
    assert!(page.contains("class=\"secret-revoked\""), "{page}");
    assert!(!page.contains(&format!("action=\"{revoke}\"")), "no revoke button for a revoked secret");
    // Revoking it again says so.
    ada.post(&revoke, &[]).await;
    assert!(text(&ada.get(&format!("/account/clients/{}", client.id)).await.1).contains("already revoked"));

    // A secret that expires after a day works until then, not after.
    let response = ada.post(&secret_path(&client), &[("label", "short-lived"), ("expires_in_days", "1")]).await;
    let expiring = element_text(&response.text().await.unwrap(), "code id=\"new-secret\"").unwrap();
    let stored = app.state.store.client_secrets(&client.id).await.unwrap();
    let short = stored.iter().find(|s| s.label == "short-lived").unwrap();
    assert_eq!(short.expires_at, Some(app.clock.now() + 24 * 3600));
    assert_eq!(client_credentials(&app, &client, &expiring).await.status(), 200);
    app.clock.advance(24 * 3600);
    assert_invalid_client(&app, &client, &expiring).await;
    assert_eq!(client_credentials(&app, &client, &second).await.status(), 200, "no expiry, still valid");
}

/// Answers `client_credentials` with `status` (401: `invalid_client`) after another process
/// changed the client (see `after_a_client_change_elsewhere`).
async fn answers_after_a_change_elsewhere(app: &TestApp, client: &Client, secret: &str, status: u16, what: &str) {
    let answers = || async {
        let response = client_credentials(app, client, secret).await;
        let code = response.status().as_u16();
        code == status && (status != 401 || response.json::<Value>().await.unwrap()["error"] == "invalid_client")
    };
    assert!(after_a_client_change_elsewhere(&app.state.config.database_url(), answers).await, "{what}: not {status}");
}

/// Another process on the same database (the CLI, a second server) adds and revokes
/// secrets and suspends the client: the running server, which keeps the clients it
/// authenticated in memory, follows each change at once.
#[tokio::test]
async fn changes_made_by_another_process_count_at_once() {
    let app = TestApp::start().await;
    let (client, first) = app.client().await;
    assert_eq!(client_credentials(&app, &client, &first).await.status(), 200);
    let other = sluis::store::Store::connect(&app.state.config.database_url()).await.unwrap();

    let second = "a second secret of 256 bits, for this test only";
    let added = sluis::store::NewClientSecret {
        id: "second",
        client_id: &client.id,
        label: "second",
        secret_hash: &sluis::crypto::token_hash(second),
        created_at: app.clock.now(),
        expires_at: None,
    };
    other.add_client_secret(&added).await.unwrap();
    answers_after_a_change_elsewhere(&app, &client, second, 200, "a secret added elsewhere works at once").await;

    let initial = other.client_secrets(&client.id).await.unwrap().into_iter().find(|s| s.label == "initial").unwrap();
    assert!(other.revoke_client_secret(&client.id, &initial.id, app.clock.now()).await.unwrap());
    answers_after_a_change_elsewhere(&app, &client, &first, 401, "a secret revoked elsewhere").await;
    assert_eq!(client_credentials(&app, &client, second).await.status(), 200);

    assert!(other.set_client_status(&client.id, ClientStatus::Suspended).await.unwrap());
    answers_after_a_change_elsewhere(&app, &client, second, 401, "a suspension made elsewhere").await;
    assert!(other.set_client_status(&client.id, ClientStatus::Verified).await.unwrap());
    answers_after_a_change_elsewhere(&app, &client, second, 200, "lifting the suspension counts at once too").await;
}

/// A SQLite database whose change marker cannot be created (here a directory is in its way)
/// still serves, without the client cache: another process' change counts at once all the same.
#[tokio::test]
async fn without_its_change_marker_the_server_reads_clients_from_the_database() {
    let blocked = tempfile::tempdir().unwrap();
    std::fs::create_dir(blocked.path().join("sluis.db-clients-changed")).unwrap();
    let url = format!("sqlite://{}?mode=rwc", blocked.path().join("sluis.db").display());
    let app = TestApp::start_with(|config| {
        if config.database_url.as_deref().is_some_and(|u| u.starts_with("sqlite:")) {
            config.database_url = Some(url.clone());
        }
    })
    .await;
    let (client, secret) = app.client().await;
    assert_eq!(client_credentials(&app, &client, &secret).await.status(), 200);
    let other = sluis::store::Store::connect(&app.state.config.database_url()).await.unwrap();
    assert!(other.set_client_status(&client.id, ClientStatus::Suspended).await.unwrap());
    answers_after_a_change_elsewhere(&app, &client, &secret, 401, "a suspension made elsewhere").await;
}

/// The backends listening for client changes in the test's database, as PostgreSQL lists
/// them (SQLite has none).
async fn client_listeners(url: &str) -> Vec<i32> {
    use sqlx::Row;
    if !url.starts_with("postgres") {
        return Vec::new();
    }
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.unwrap();
    let rows = sqlx::query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN \"sluis_clients_changed\"'")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.iter().map(|row| row.get::<i32, _>("pid")).collect()
}

/// On PostgreSQL other processes' changes arrive as notifications, which are lost while the
/// listening connection is down. A change made just after that connection was cut, whose
/// notification nobody hears, counts all the same; and once the server listens again
/// (a new connection), later changes reach it as before. On SQLite the same changes count,
/// through the change marker.
#[tokio::test]
async fn changes_made_while_the_change_listener_is_cut_off_count_all_the_same() {
    let app = TestApp::start().await;
    let url = app.state.config.database_url();
    let (client, secret) = app.client().await;
    let other = sluis::store::Store::connect(&url).await.unwrap();
    let postgres = url.starts_with("postgres");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Both stores listen once they have connected (the server's is the one that matters).
    while postgres && client_listeners(&url).await.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the server never listened for client changes");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(client_credentials(&app, &client, &secret).await.status(), 200, "the client is cached now");

    let cut = client_listeners(&url).await;
    if postgres {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.unwrap();
        for pid in &cut {
            sqlx::query("SELECT pg_terminate_backend($1) AS done").bind(pid).execute(&mut conn).await.unwrap();
        }
    }
    assert!(other.set_client_status(&client.id, ClientStatus::Suspended).await.unwrap());
    // The server notices within a moment that its connection was cut, and from then on reads
    // the database: the suspension counts then, not after the cache's one-minute limit.
    answers_after_a_change_elsewhere(&app, &client, &secret, 401, "a suspension made while the listener was cut off").await;

    // Listening again on new connections, the server follows the next change at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while postgres && client_listeners(&url).await.iter().filter(|pid| !cut.contains(pid)).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "the server never listened again");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(other.set_client_status(&client.id, ClientStatus::Verified).await.unwrap());
    answers_after_a_change_elsewhere(&app, &client, &secret, 200, "lifting the suspension, once listening again").await;
    assert!(other.set_client_status(&client.id, ClientStatus::Suspended).await.unwrap());
    answers_after_a_change_elsewhere(&app, &client, &secret, 401, "suspending again, once listening again").await;
}

/// Sets a client's status with plain SQL, as no Sluis process would: nobody is told.
async fn set_status_unannounced(url: &str, client: &Client, status: &str) {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.unwrap();
    sqlx::query("UPDATE clients SET status = $1 WHERE id = $2").bind(status).bind(client.id.as_str()).execute(&mut conn).await.unwrap();
}

/// The server keeps the clients it authenticates in memory (issue 6), on SQLite and on
/// PostgreSQL alike, and reads them again when a change is announced (the change marker, or
/// the notification). A row changed behind Sluis' back is therefore served as it was, until
/// any change to clients is announced.
#[tokio::test]
async fn clients_are_kept_in_memory_until_a_change_is_announced() {
    let app = TestApp::start().await;
    let url = app.state.config.database_url();
    let (client, secret) = app.client().await;
    let (bystander, _) = app.client().await;
    // Another process, connected before the server keeps anything (on PostgreSQL it
    // probes its own listener, which must not count as a change).
    let other = sluis::store::Store::connect(&url).await.unwrap();
    // On PostgreSQL the cache is used once the server's listener has heard its own probe.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        assert_eq!(client_credentials(&app, &client, &secret).await.status(), 200);
        set_status_unannounced(&url, &client, "suspended").await;
        if client_credentials(&app, &client, &secret).await.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the server never kept the client in memory");
        set_status_unannounced(&url, &client, "verified").await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(client_credentials(&app, &client, &secret).await.status(), 200, "served from memory");

    // Any announced change to clients makes the server read them again: here another
    // client's, made by another process.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(client_credentials(&app, &client, &secret).await.status(), 200, "still served from memory");
    assert!(other.set_client_status(&bystander.id, ClientStatus::Suspended).await.unwrap());
    answers_after_a_change_elsewhere(&app, &client, &secret, 401, "the suspension written behind Sluis' back, once a change is announced").await;
}

#[tokio::test]
async fn clients_created_by_the_operator_keep_their_initial_secret_in_the_table() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let secrets = app.state.store.client_secrets(&client.id).await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].label, "initial");
    assert_eq!(secrets[0].expires_at, None);
    assert_eq!(client_credentials(&app, &client, &secret).await.status(), 200);
    assert!(app.public_client().await.is_public());
}

#[tokio::test]
async fn other_users_clients_are_not_found() {
    let app = open_registration().await;
    app.user(ADA).await;
    app.user(BOB).await;
    let ada = signed_in(&app, ADA).await;
    let (client, secret, _) = ada.registered(&app, &[]).await;
    let secret_id = app.state.store.client_secrets(&client.id).await.unwrap()[0].id.clone();
    let bob = signed_in(&app, BOB).await;

    let page = format!("/account/clients/{}", client.id);
    assert_eq!(bob.get(&page).await.0, 404);
    assert_eq!(bob.get("/account/clients/no-such-client").await.0, 404);
    let (_, list) = bob.get("/account/clients").await;
    assert!(!list.contains(client.id.as_str()) && !list.contains("Ada's Recipes"), "{list}");
    let attempts = [
        (page.clone(), vec![("name", "Bob's now"), ("redirect_uris", REDIRECT_URI)]),
        (format!("{page}/secrets"), vec![("label", "mine")]),
        (format!("{page}/secrets/{secret_id}/revoke"), vec![]),
        (format!("{page}/verification"), vec![("scope_email", "on"), ("purpose", "mine")]),
    ];
    for (path, fields) in &attempts {
        assert_eq!(bob.post(path, fields).await.status(), 404, "{path}");
    }
    // Nothing changed.
    let stored = app.state.store.client(client.id.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.name, "Ada's Recipes");
    assert_eq!(app.state.store.client_secrets(&client.id).await.unwrap().len(), 1);
    assert!(app.state.store.scope_decisions(&client.id).await.unwrap().is_empty());
    assert_eq!(client_credentials(&app, &client, &secret.unwrap()).await.status(), 200);
}

#[tokio::test]
async fn bad_input_is_refused_with_a_message() {
    let app = open_registration().await;
    let ada_user = app.user(ADA).await;
    let ada = signed_in(&app, ADA).await;

    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("redirect_uris", "http://app.example/cb")], "must use https"),
        (&[("redirect_uris", "https://app.example/cb#frag")], "must not contain a fragment"),
        (&[("redirect_uris", "not a uri")], "is not an absolute URI"),
        (&[("redirect_uris", "")], "Enter at least one redirect URI"),
        (&[("name", "   ")], "name must have 1 to 200 characters"),
        (&[("scope_email", "on"), ("purpose", " ")], "Say what your app needs these scopes for"),
    ];
    for (fields, message) in cases {
        let response = ada.register(fields).await;
        assert_eq!(response.status(), 400, "{fields:?}");
        let html = response.text().await.unwrap();
        assert!(text(&html).contains(message), "{fields:?}: {message:?} in {html}");
        assert!(html.contains("role=\"alert\""), "{html}");
    }
    // What was typed is kept.
    let html = ada.register(&[("redirect_uris", "http://app.example/cb"), ("scope_phone", "on"), ("purpose", "calls")]).await.text().await.unwrap();
    assert!(html.contains("value=\"Ada&#39;s Recipes\"") || html.contains("value=\"Ada&#x27;s Recipes\""), "{html}");
    assert!(html.contains(">http://app.example/cb</textarea>"), "{html}");
    assert!(html.contains("name=\"scope_phone\" value=\"on\" checked"), "{html}");
    assert!(app.state.store.clients_of_owner(&ada_user.id).await.unwrap().is_empty(), "nothing registered");

    // The same rules when editing, and on the other forms.
    let (client, _, _) = ada.registered(&app, &[]).await;
    let page = format!("/account/clients/{}", client.id);
    let response = ada.post(&page, &[("name", "Renamed"), ("redirect_uris", "http://evil.example/cb")]).await;
    assert_eq!(response.status(), 400);
    let html = response.text().await.unwrap();
    assert!(text(&html).contains("must use https"), "{html}");
    assert!(html.contains(">http://evil.example/cb</textarea>"), "kept: {html}");
    let stored = app.state.store.client(client.id.as_str()).await.unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.redirect_uris.as_slice()), ("Ada's Recipes", [REDIRECT_URI.to_string()].as_slice()));

    for (path, fields, message) in [
        (format!("{page}/secrets"), vec![("label", "x"), ("expires_in_days", "soon")], "whole number of days"),
        (format!("{page}/secrets"), vec![("label", "x"), ("expires_in_days", "0")], "from 1 to 3650 days"),
        (format!("{page}/secrets"), vec![("expires_in_days", "3")], "Give the secret a label"),
        (format!("{page}/verification"), vec![("purpose", "why not")], "Choose at least one scope"),
        (format!("{page}/verification"), vec![("scope_email", "on")], "Say what your app needs these scopes for"),
    ] {
        let response = ada.post(&path, &fields).await;
        assert_eq!(response.status(), 400, "{path} {fields:?}");
        let html = response.text().await.unwrap();
        assert!(text(&html).contains(message), "{message:?} in {html}");
    }
    assert_eq!(app.state.store.client_secrets(&client.id).await.unwrap().len(), 1);

    // A valid edit is saved.
    let response = ada.post(&page, &[("name", "Renamed"), ("redirect_uris", "https://app.example/cb\nhttp://127.0.0.1:8080/cb")]).await;
    assert_eq!(response.status(), 303);
    let stored = app.state.store.client(client.id.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.name, "Renamed");
    assert_eq!(stored.redirect_uris, ["https://app.example/cb", "http://127.0.0.1:8080/cb"]);
    assert!(stored.post_logout_redirect_uris.is_empty());
    assert!(text(&ada.get(&page).await.1).contains("Your changes are saved"));
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let app = open_registration().await;
    let ada_user = app.user(ADA).await;
    let ada = signed_in(&app, ADA).await;
    let (client, _, _) = ada.registered(&app, &[]).await;
    let secret_id = app.state.store.client_secrets(&client.id).await.unwrap()[0].id.clone();
    let page = format!("/account/clients/{}", client.id);
    let attempts = [
        ("/account/clients".to_string(), vec![("name", "Another"), ("redirect_uris", REDIRECT_URI)]),
        (page.clone(), vec![("name", "Renamed"), ("redirect_uris", REDIRECT_URI)]),
        (format!("{page}/secrets"), vec![("label", "sneaky")]),
        (format!("{page}/secrets/{secret_id}/revoke"), vec![]),
        (format!("{page}/verification"), vec![("scope_email", "on"), ("purpose", "sneaky")]),
    ];
    for (path, fields) in &attempts {
        assert_eq!(ada.post_raw(path, fields).await.status(), 403, "{path} without a token");
        let mut wrong = fields.clone();
        wrong.push(("csrf_token", "not-the-token"));
        assert_eq!(ada.post_raw(path, &wrong).await.status(), 403, "{path} with a wrong token");
    }
    assert_eq!(app.state.store.clients_of_owner(&ada_user.id).await.unwrap().len(), 1);
    let stored = app.state.store.client(client.id.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.name, "Ada's Recipes");
    let secrets = app.state.store.client_secrets(&client.id).await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].revoked_at, None);
    assert!(app.state.store.scope_decisions(&client.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn verification_requests_reach_the_admins_and_rejections_reach_the_owner() {
    let app = open_registration().await;
    app.user(ADA).await;
    let admin = admin_user(&app).await;
    let ada = signed_in(&app, ADA).await;
    let (client, _, _) = ada.registered(&app, &[]).await;
    assert_eq!(client.scopes.to_string(), "openid");
    let page = format!("/account/clients/{}", client.id);

    let response = ada.post(&format!("{page}/verification"), &[("scope_email", "on"), ("scope_phone", "on"), ("purpose", PURPOSE)]).await;
    assert_eq!(response.status(), 303);
    assert!(text(&ada.get(&page).await.1).contains("Verification of email, phone is requested"));
    let stored = app.state.store.client(client.id.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.scopes.to_string(), "email openid phone", "now enabled, not yet approved");
    assert!(stored.approved_scopes.is_empty());
    let decisions = app.state.store.scope_decisions(&client.id).await.unwrap();
    assert!(decisions.iter().all(|d| d.state == ScopeState::Requested && d.purpose.as_deref() == Some(PURPOSE)), "{decisions:?}");
    assert_eq!(decisions.len(), 2);

    // An admin approves email and rejects phone with a note, which the owner reads.
    let actor = admin::Actor { name: format!("user:{}", admin.id), ip: None };
    admin::verify_client(&app.state.store, client.id.as_str(), &["email".into()], &actor, app.clock.now()).await.unwrap();
    admin::reject_scope(&app.state.store, client.id.as_str(), "phone", "Receipts need no phone number", &actor, app.clock.now()).await.unwrap();
    let (_, list) = ada.get("/account/clients").await;
    let words = text(&list);
    assert!(words.contains("phone: rejected. Note from the administrators: Receipts need no phone number"), "{words}");
    assert!(words.contains("email: approved"), "{words}");
    assert!(words.contains("verified: it may receive the scopes approved for it"), "{words}");
    assert!(text(&ada.get(&page).await.1).contains("Receipts need no phone number"));

    // An approved scope cannot be requested again; a rejected one goes back in the queue.
    let response = ada.post(&format!("{page}/verification"), &[("scope_email", "on"), ("purpose", "again")]).await;
    assert_eq!(response.status(), 400);
    assert!(text(&response.text().await.unwrap()).contains("“email” is already approved"));
    let response = ada.post(&format!("{page}/verification"), &[("scope_phone", "on"), ("purpose", "For delivery updates by text")]).await;
    assert_eq!(response.status(), 303);
    let decisions = app.state.store.scope_decisions(&client.id).await.unwrap();
    let phone = decisions.iter().find(|d| d.scope == "phone").unwrap();
    assert_eq!(phone.state, ScopeState::Requested);
    assert_eq!(phone.purpose.as_deref(), Some("For delivery updates by text"));
    assert_eq!(phone.note, None);
    let email = decisions.iter().find(|d| d.scope == "email").unwrap();
    assert_eq!(email.state, ScopeState::Approved, "untouched");
}

#[tokio::test]
async fn every_change_is_in_the_audit_log() {
    let app = open_registration().await;
    let ada_user = app.user(ADA).await;
    let ada = signed_in(&app, ADA).await;
    let (client, _, _) = ada.registered(&app, &[("scope_email", "on"), ("purpose", PURPOSE)]).await;
    let page = format!("/account/clients/{}", client.id);
    assert_eq!(ada.post(&page, &[("name", "Renamed"), ("redirect_uris", REDIRECT_URI)]).await.status(), 303);
    assert_eq!(ada.post(&format!("{page}/secrets"), &[("label", "second")]).await.status(), 200);
    let initial = app.state.store.client_secrets(&client.id).await.unwrap().into_iter().find(|s| s.label == "initial").unwrap();
    assert_eq!(ada.post(&format!("{page}/secrets/{}/revoke", initial.id), &[]).await.status(), 303);
    assert_eq!(ada.post(&format!("{page}/verification"), &[("scope_profile", "on"), ("purpose", "Greeting by name")]).await.status(), 303);

    let audit = app.state.store.audit_entries(50).await.unwrap();
    let actor = format!("user:{}", ada_user.id);
    let find = |action: &str, needle: &str| {
        audit
            .iter()
            .find(|e| e.action == action && e.details.contains(needle))
            .unwrap_or_else(|| panic!("{action} with {needle:?} missing: {audit:?}"))
    };
    for (action, needle) in [
        ("client.create", "Ada's Recipes"),
        ("client.scopes.request", PURPOSE),
        ("client.update", "Renamed"),
        ("client.secret.add", "second"),
        ("client.secret.revoke", "initial"),
        ("client.scopes.request", "Greeting by name"),
    ] {
        let entry = find(action, needle);
        assert_eq!(entry.actor, actor, "{action}");
        assert_eq!(entry.target, client.id.as_str(), "{action}");
        assert_eq!(entry.ip.as_deref(), Some("127.0.0.1"), "{action}");
    }
    let created: Value = serde_json::from_str(&find("client.create", "Ada's Recipes").details).unwrap();
    assert_eq!(created["owner"], ada_user.id.as_str());
    assert_eq!(created["status"], "unverified");
    // Secrets never reach the log, only their labels and ids.
    let added = find("client.secret.add", "second");
    let details: Value = serde_json::from_str(&added.details).unwrap();
    let mut keys: Vec<&String> = details.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["expires_at", "label", "secret_id"]);
}

/// Migration 0004 copies each existing confidential client's secret into `client_secrets`.
#[tokio::test]
async fn migration_keeps_existing_secrets_working() {
    use sqlx::migrate::Migrator;
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(dir.path()).await;
    // The schema as it was before 0004, with one confidential and one public client.
    let before = dir.path().join("before");
    std::fs::create_dir(&before).unwrap();
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&migrations).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().as_ref() < "0004" {
            std::fs::copy(entry.path(), before.join(entry.file_name())).unwrap();
        }
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    Migrator::new(before.as_path()).await.unwrap().run(&pool).await.unwrap();
    let secret = "an-old-secret-from-before-rotation-existed";
    for (id, hash) in [("old-confidential", Some(sluis::crypto::token_hash(secret))), ("old-public", None)] {
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, grant_types, signing_alg, created_at, status)
             VALUES ($1, 'Old', $2, '', '', 'openid', 'client_credentials', 'RS256', 1, 'verified')",
        )
        .bind(id)
        .bind(hash)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = sluis::store::Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let client = store.client("old-confidential").await.unwrap().unwrap();
    let secrets = store.client_secrets(&client.id).await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!((secrets[0].label.as_str(), secrets[0].created_at, secrets[0].expires_at), ("initial", 1, None));
    assert_eq!(store.active_client_secret_hashes(&client.id, 2).await.unwrap(), [sluis::crypto::token_hash(secret)]);
    let public = store.client("old-public").await.unwrap().unwrap();
    assert!(public.is_public());
    assert!(store.client_secrets(&public.id).await.unwrap().is_empty());
}
