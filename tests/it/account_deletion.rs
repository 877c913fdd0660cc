//! Deleting an account (`/account/delete`): real erasure, proved by scanning every table of
//! the database for the user's id and email; the guards (recent sign-in, CSRF, typed
//! confirmation, last admin); the user's tokens and the tokens of the clients they
//! registered stop working; the address can be used again.

use serde_json::Value;
use sluis::admin::{self, Actor, NewClientSpec, NewUserSpec};
use sluis::clock::Clock as _;
use sluis::login::events::{self, AccountEvent, Origin};
use sluis::model::{Client, User};
use sqlx::Row;

use crate::support::*;

const ADA: &str = "ada@example.com";
const BOB: &str = "bob@example.com";

/// Signs `email` in through `client` in `browser` (consenting) and exchanges the code.
async fn tokens_through(app: &TestApp, browser: &Browser, client: &Client, secret: &str, email: &str) -> Value {
    let (verifier, challenge) = pkce();
    let scope = "openid email profile offline_access";
    let callback = browser.sign_in_and_consent(&app.authorize_url(client, scope, &challenge, &[]), email, PASSWORD).await;
    let code = query_param(&callback, "code").expect("code in callback");
    app.exchange(client, secret, &code, &verifier).await
}

async fn userinfo(app: &TestApp, tokens: &Value) -> reqwest::Response {
    app.http().get(app.url("/userinfo")).bearer_auth(tokens["access_token"].as_str().unwrap()).send().await.unwrap()
}

async fn refresh(app: &TestApp, client: &Client, secret: &str, tokens: &Value) -> reqwest::Response {
    app.token(client, Some(secret), &[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())]).await
}

/// The delete page's HTML (asserting 200).
async fn delete_page(browser: &Browser) -> String {
    let response = browser.get("/account/delete").await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// Submits the delete form with `confirm` typed in.
async fn confirm_deletion(browser: &Browser, confirm: &str) -> reqwest::Response {
    browser.submit(&delete_page(browser).await, &[("confirm", confirm)]).await
}

async fn user_exists(app: &TestApp, email: &str) -> bool {
    app.state.store.user_credentials(email).await.unwrap().is_some()
}

/// A direct connection to the test's database, for the scans; whether it is SQLite.
async fn database(app: &TestApp) -> (sqlx::AnyPool, bool) {
    sqlx::any::install_default_drivers();
    let url = app.state.config.database_url.clone().unwrap();
    (sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap(), url.starts_with("sqlite:"))
}

/// Every table of the database and its columns, read from the catalogue.
async fn tables(db: &sqlx::AnyPool, sqlite: bool) -> Vec<(String, Vec<String>)> {
    let names_sql = if sqlite {
        "SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    } else {
        "SELECT CAST(table_name AS TEXT) AS t FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
    };
    let mut out = Vec::new();
    for row in sqlx::query(names_sql).fetch_all(db).await.unwrap() {
        let table: String = row.try_get("t").unwrap();
        let columns_sql = if sqlite {
            "SELECT name AS c FROM pragma_table_info($1)"
        } else {
            "SELECT CAST(column_name AS TEXT) AS c FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1"
        };
        let columns = sqlx::query(columns_sql).bind(&table).fetch_all(db).await.unwrap().iter().map(|r| r.try_get("c").unwrap()).collect();
        out.push((table, columns));
    }
    out
}

/// The tables with a row that mentions any of `needles` (case-insensitively) in any column,
/// with the number of such rows.
async fn tables_mentioning(db: &(sqlx::AnyPool, bool), needles: &[&str]) -> Vec<(String, i64)> {
    let (db, sqlite) = db;
    let mut found = Vec::new();
    for (table, columns) in tables(db, *sqlite).await {
        let mut conditions = Vec::new();
        for column in &columns {
            for n in 1..=needles.len() {
                conditions.push(format!("LOWER(CAST(\"{column}\" AS TEXT)) LIKE ${n}"));
            }
        }
        let sql = format!("SELECT COUNT(*) AS n FROM \"{table}\" WHERE {}", conditions.join(" OR "));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for needle in needles {
            query = query.bind(format!("%{}%", needle.to_lowercase()));
        }
        let count: i64 = query.fetch_one(db).await.unwrap().try_get("n").unwrap();
        if count > 0 {
            found.push((table, count));
        }
    }
    found
}

#[tokio::test]
async fn deletion_erases_every_row_naming_the_user_and_their_clients() {
    let app = TestApp::start_with(|c| c.rate_limit_login_per_minute = 0).await;
    let ada = app.user(ADA).await;
    let bob = app.user(BOB).await;
    let now = app.clock.now();
    let (shop, shop_secret) = app.client().await;

    // Ada's client, registered by herself (audit entry with her id, owner column).
    let ada_actor = Actor { name: format!("user:{}", ada.id), ip: Some("203.0.113.7".into()) };
    let spec = NewClientSpec {
        name: "Ada's Notebook".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        post_logout_redirect_uris: vec![],
        public: false,
        scopes: vec![],
        grant_types: vec![],
        signing_alg: None,
        verified: true,
    };
    let (notebook, notebook_secret) = admin::create_owned_client(&app.state.store, &app.state.scopes, spec, Some(&ada.id), &ada_actor, now).await.unwrap();
    let notebook_secret = notebook_secret.unwrap();
    // A decision Ada took as an admin on another client names her too.
    let (other, _) = app.client_with(|s| s.name = "Other".into()).await;
    admin::reject_scope(&app.state.store, other.id.as_str(), "email", &format!("asked by {ADA}"), &ada_actor, now).await.unwrap();

    // Ada: a failed then a good sign-in, tokens at the shop (grant, refresh token, code,
    // consent, link, granted scopes, data-access event at userinfo), a second factor, an
    // account event, a pending authorization request naming her address.
    let wrong = app.browser();
    let html = wrong.get("/login").await.text().await.unwrap();
    wrong.submit(&html, &[("email", ADA), ("password", "not the password")]).await;
    let browser = app.signed_in(ADA).await;
    let ada_tokens = tokens_through(&app, &browser, &shop, &shop_secret, ADA).await;
    assert_eq!(userinfo(&app, &ada_tokens).await.status(), 200);
    let store = &app.state.store;
    store.put_pending_totp(&ada.id, "sealed-secret", now).await.unwrap();
    store.replace_recovery_codes(&ada.id, &["hash-1".into(), "hash-2".into()], now).await.unwrap();
    events::record_account_event(store, &ada.id, AccountEvent::PasswordChanged, None, &Origin::default(), now).await.unwrap();
    let change = sluis::store::NewEmailChange { token_hash: "change-hash", user_id: &ada.id, new_email: "ada.new@example.com", created_at: now, expires_at: now + 86_400 };
    assert!(store.put_email_change(&change, now).await.unwrap());
    store.link_upstream_identity("google", ada.id.as_str(), &ada.id, now).await.unwrap();
    // A code issued before the deletion and exchanged after it.
    let (unused_code, unused_verifier) = app.code_for(&shop, ADA, "openid").await;
    let (_, challenge) = pkce();
    let pending = app.browser().get(&app.authorize_url(&shop, "openid", &challenge, &[("login_hint", "ADA@example.com")])).await;
    assert!(pending.status().is_redirection());

    // Bob signs in to Ada's client and to the shop.
    let bob_browser = app.browser();
    let bob_at_notebook = tokens_through(&app, &bob_browser, &notebook, &notebook_secret, BOB).await;
    let bob_at_shop = tokens_through(&app, &bob_browser, &shop, &shop_secret, BOB).await;
    assert_eq!(userinfo(&app, &bob_at_notebook).await.status(), 200);

    let db = database(&app).await;
    let before = tables_mentioning(&db, &[ada.id.as_str(), ADA]).await;
    for table in ["users", "sessions", "user_sessions", "grants", "authorization_codes", "consents", "granted_scopes", "client_user_links", "totp_factors", "recovery_codes", "login_events", "account_events", "data_access_events", "login_throttle", "authorization_requests", "email_changes", "upstream_identities", "audit_log", "client_scopes", "clients"] {
        assert!(before.iter().any(|(t, _)| t == table), "the setup puts Ada into {table}: {before:?}");
    }

    // The page says what goes, the client by name; then the deletion.
    let html = delete_page(&browser).await;
    assert!(html.contains("Ada&#39;s Notebook"), "{html}");
    assert!(html.contains("id=\"erase-clients\"") && html.contains(ADA), "{html}");
    let response = confirm_deletion(&browser, " Ada@Example.com ").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    assert!(html.contains("Your account is deleted") && html.contains("client you registered was deleted"), "{html}");

    // Nothing in any table names Ada any more.
    assert_eq!(tables_mentioning(&db, &[ada.id.as_str(), ADA]).await, vec![], "rows still naming Ada");
    assert!(tables_mentioning(&db, &[notebook.id.as_str()]).await.iter().all(|(t, _)| ["audit_log", "login_events", "data_access_events"].contains(&t.as_str())));
    assert_eq!(location(&browser.get("/account").await).as_deref(), Some("/login"), "the browser is signed out");

    // The audit log keeps its entries, pseudonymised, and says the account was deleted.
    let audit = store.audit_entries(100).await.unwrap();
    let created = audit.iter().find(|e| e.action == "client.create" && e.target == notebook.id.as_str()).expect("the client's creation is still audited");
    assert!(created.actor.starts_with("user:erased-") && created.ip.is_none(), "{created:?}");
    let deleted = audit.iter().find(|e| e.action == "account.delete").expect("an account.delete entry");
    assert_eq!((deleted.actor.as_str(), deleted.ip.as_deref()), (created.actor.as_str(), None));
    assert!(audit.iter().any(|e| e.action == "client.scope.reject" && e.details.contains("[erased]")), "{audit:?}");

    // Ada's tokens are dead; so are Bob's at her deleted client. Bob's own account is whole.
    let response = userinfo(&app, &ada_tokens).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let response = refresh(&app, &shop, &shop_secret, &ada_tokens).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let exchange = [("grant_type", "authorization_code"), ("code", unused_code.as_str()), ("redirect_uri", REDIRECT_URI), ("code_verifier", unused_verifier.as_str())];
    let response = app.token(&shop, Some(&shop_secret), &exchange).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let response = userinfo(&app, &bob_at_notebook).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let response = app.token(&notebook, Some(&notebook_secret), &[("grant_type", "client_credentials")]).await;
    assert_eq!(response.status(), 401, "the deleted client cannot authenticate");
    assert_eq!(userinfo(&app, &bob_at_shop).await.status(), 200);
    assert_eq!(refresh(&app, &shop, &shop_secret, &bob_at_shop).await.status(), 200);
    assert!(store.user(&bob.id).await.unwrap().is_some());
    assert_eq!(location(&bob_browser.get("/account").await), None, "Bob stays signed in");
}

#[tokio::test]
async fn the_user_api_answers_not_found_for_a_deleted_user() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (shop, secret) = app.client().await;
    let browser = app.browser();
    let tokens = tokens_through(&app, &browser, &shop, &secret, ADA).await;
    let sub = jwt_claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_string();
    let response = app.token(&shop, Some(&secret), &[("grant_type", "client_credentials")]).await;
    let client_token = response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    let api = || app.http().get(app.url(&format!("/api/users/{sub}"))).bearer_auth(&client_token).send();
    assert_eq!(api().await.unwrap().status(), 200);

    assert_eq!(confirm_deletion(&browser, ADA).await.status(), 200);
    let response = api().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "not_found");
}

#[tokio::test]
async fn deletion_needs_a_recent_sign_in() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let browser = app.signed_in(ADA).await;
    let form = delete_page(&browser).await;
    app.clock.advance(i64::from(app.state.config.reauth_max_age) + 1);
    let reauth = "/login/reauth?next=%2Faccount%2Fdelete";
    assert_eq!(location(&browser.get("/account/delete").await).as_deref(), Some(reauth));
    let response = browser.submit(&form, &[("confirm", ADA)]).await;
    assert_eq!(location(&response).as_deref(), Some(reauth), "the form is refused too");
    assert!(user_exists(&app, ADA).await);

    // After the password again, the deletion goes through.
    let html = browser.get(reauth).await.text().await.unwrap();
    let response = browser.submit(&html, &[("password", PASSWORD)]).await;
    assert_eq!(location(&response).as_deref(), Some("/account/delete"));
    assert_eq!(confirm_deletion(&browser, ADA).await.status(), 200);
    assert!(!user_exists(&app, ADA).await);
}

#[tokio::test]
async fn a_wrong_confirmation_or_a_missing_csrf_token_deletes_nothing() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    app.user(BOB).await;
    let browser = app.signed_in(ADA).await;
    for typed in ["", BOB, "ada", "DELETE"] {
        let response = confirm_deletion(&browser, typed).await;
        assert_eq!(response.status(), 200, "{typed:?}");
        let html = response.text().await.unwrap();
        assert!(html.contains("role=\"alert\"") && html.contains("Nothing was deleted"), "{typed:?}: {html}");
    }
    assert!(user_exists(&app, ADA).await);

    let response = browser.http.post(app.url("/account/delete")).form(&[("confirm", ADA)]).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let response = browser.http.post(app.url("/account/delete")).form(&[("confirm", ADA), ("csrf_token", "forged")]).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let response = browser.http.post(app.url("/account/delete")).body("confirm=a&confirm=b").header("content-type", "application/x-www-form-urlencoded").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(user_exists(&app, ADA).await);
    // Not signed in: the sign-in page.
    let response = app.browser().get("/account/delete").await;
    assert_eq!(location(&response).as_deref(), Some("/login"));
}

#[tokio::test]
async fn the_last_admin_cannot_delete_their_account() {
    let app = TestApp::start_with(|c| c.require_2fa_for_admins = false).await;
    let admin_user = |email: &str| NewUserSpec { email: email.into(), name: None, is_admin: true, password: PASSWORD.into() };
    admin::create_user(&app.state.store, &app.state.passwords, admin_user("root@example.com"), app.clock.now()).await.unwrap();
    let browser = app.signed_in("root@example.com").await;
    let html = delete_page(&browser).await;
    assert!(html.contains("id=\"refused\"") && html.contains("only administrator"), "{html}");
    assert!(!html.contains("name=\"confirm\""), "no form: {html}");
    // A form sent anyway (the session's token, from the sign-out form) is refused the same way.
    let account = browser.get("/account").await.text().await.unwrap();
    let token = form(&account).unwrap().1.into_iter().find(|(n, _)| n == "csrf_token").unwrap().1;
    let response = browser.http.post(app.url("/account/delete")).form(&[("csrf_token", token.as_str()), ("confirm", "root@example.com")]).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("only administrator"));
    assert!(user_exists(&app, "root@example.com").await);

    // With a second admin, the first may go.
    admin::create_user(&app.state.store, &app.state.passwords, admin_user("second@example.com"), app.clock.now()).await.unwrap();
    assert_eq!(confirm_deletion(&browser, "root@example.com").await.status(), 200);
    assert!(!user_exists(&app, "root@example.com").await);
    assert_eq!(app.state.store.admin_count().await.unwrap(), 1);
}

#[tokio::test]
async fn the_address_can_be_used_again_after_deletion() {
    let app = TestApp::start().await;
    let old: User = app.user(ADA).await;
    let browser = app.signed_in(ADA).await;
    assert_eq!(confirm_deletion(&browser, ADA).await.status(), 200);
    let login = app.browser();
    let html = login.get("/login").await.text().await.unwrap();
    let response = login.submit(&html, &[("email", ADA), ("password", PASSWORD)]).await;
    assert_ne!(location(&response).as_deref(), Some("/account"), "the old password signs nobody in");

    let new = app.user(ADA).await;
    assert_ne!(new.id, old.id);
    let again = app.signed_in(ADA).await;
    let history = again.get("/account/security/history").await.text().await.unwrap();
    assert_eq!(history.matches("Password accepted").count(), 1, "the new account starts with an empty history: {history}");
    assert_eq!(location(&browser.get("/account").await).as_deref(), Some("/login"), "the old session stays signed out");
}

/// The last two administrators delete their accounts at the same moment: one of them must
/// stay. On PostgreSQL each deletion's check for another administrator saw the other one
/// still there, and both went.
#[tokio::test]
async fn two_last_admins_deleting_at_once_leave_one() {
    for _ in 0..5 {
        let app = TestApp::start_with(|c| c.require_2fa_for_admins = false).await;
        let admin_user = |email: &str| NewUserSpec { email: email.into(), name: None, is_admin: true, password: PASSWORD.into() };
        let (store, passwords, now) = (&app.state.store, &app.state.passwords, app.clock.now());
        let first = admin::create_user(store, passwords, admin_user("root@example.com"), now).await.unwrap();
        let second = admin::create_user(store, passwords, admin_user("op@example.com"), now).await.unwrap();
        let (a, b) = tokio::join!(
            sluis::account::deletion::delete_account(store, &first, now),
            sluis::account::deletion::delete_account(store, &second, now)
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        let erased = outcomes.iter().filter(|o| matches!(o, sluis::store::ErasureOutcome::Erased { .. })).count();
        assert_eq!(erased, 1, "{outcomes:?}");
        assert_eq!(store.admin_count().await.unwrap(), 1);
    }
}

/// An owner's app asking for scopes while the owner erases the account: either the request
/// comes first and the erasure then removes it with the app, or the app is gone and the
/// request writes nothing (it used to leave its scope rows behind, purpose and all). Both
/// orders happen here on both databases.
#[tokio::test]
async fn a_scope_request_while_its_owner_is_erased_leaves_nothing_behind() {
    let app = TestApp::start().await;
    let (store, now) = (&app.state.store, app.clock.now());
    for round in 0..12 {
        let owner = app.user(&format!("owner{round}@example.com")).await;
        let registration = sluis::account::clients::Registration {
            name: format!("App {round}"),
            redirect_uris: vec![REDIRECT_URI.into()],
            post_logout_redirect_uris: vec![],
            public: false,
            scopes: vec!["phone".into()],
            purpose: "Calls about orders".into(),
        };
        let (client, _) = sluis::account::clients::register(store, &app.state.scopes, &owner, registration, &Actor::cli(), now).await.unwrap();
        let enabled = client.scopes.union(&sluis::privacy::ScopeSet::from_iter(["phone", "address"]));
        let (request, erasure) =
            tokio::join!(store.request_scopes(&client.id, &enabled, &["phone", "address"], "Deliveries", now), sluis::account::deletion::delete_account(store, &owner, now));
        assert!(matches!(erasure.unwrap(), sluis::store::ErasureOutcome::Erased { .. }), "round {round}");
        // Written before the erasure (true) or refused after it (false), never an error.
        request.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(store.client(client.id.as_str()).await.unwrap().is_none(), "round {round}: the app went with its owner");
        assert!(store.scope_decisions(&client.id).await.unwrap().is_empty(), "round {round}: its scope requests went with it");
    }
}

/// A user withdrawing an app while their account is erased: both go through, on
/// PostgreSQL too, where the two used to take the user's rows for that app in opposite
/// orders (the withdrawal its link first, the erasure its link last).
#[tokio::test]
async fn withdrawing_an_app_while_the_account_is_erased_never_deadlocks() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    for round in 0..10 {
        let email = format!("withdraws{round}@example.com");
        let user = app.user(&email).await;
        // A link, a consent, a grant with its refresh token, and an unredeemed code.
        let (code, verifier) = app.code_for(&client, &email, "openid").await;
        app.exchange(&client, &secret, &code, &verifier).await;
        app.code_for(&client, &email, "openid").await;
        let now = app.clock.now();
        let (withdrawal, erasure) = tokio::join!(app.state.store.withdraw_link(&user.id, &client.id, now), sluis::account::deletion::delete_account(&app.state.store, &user, now));
        withdrawal.unwrap_or_else(|e| panic!("round {round}: the withdrawal failed: {e}"));
        let erasure = erasure.unwrap_or_else(|e| panic!("round {round}: the erasure failed: {e}"));
        assert!(matches!(erasure, sluis::store::ErasureOutcome::Erased { .. }), "round {round}");
    }
}

/// A sign-in whose password is still being checked when the account is erased (in another
/// browser) leaves nothing of the account behind: no history row, no session, nothing that
/// names it.
#[tokio::test]
async fn a_sign_in_in_flight_while_the_account_is_erased_leaves_nothing_behind() {
    let app = TestApp::start_with(|c| c.rate_limit_login_per_minute = 0).await;
    let db = database(&app).await;
    for round in 0..6 {
        let email = format!("signing{round}@example.com");
        let user = app.user(&email).await;
        let browser = app.browser();
        let page = browser.get("/login").await.text().await.unwrap();
        let fields = [("email", email.as_str()), ("password", PASSWORD)];
        let signing_in = browser.submit(&page, &fields);
        let erasing = async {
            // The sign-in has read the account and is hashing the password by now.
            tokio::time::sleep(std::time::Duration::from_millis(5 + 3 * round)).await;
            sluis::account::deletion::delete_account(&app.state.store, &user, app.clock.now()).await.unwrap()
        };
        let (response, erasure) = tokio::join!(signing_in, erasing);
        assert!(matches!(erasure, sluis::store::ErasureOutcome::Erased { .. }), "round {round}");
        assert_ne!(response.status().as_u16(), 500, "round {round}");
        assert_eq!(location(&browser.get("/account").await).as_deref(), Some("/login"), "round {round}: the browser is not signed in");
        assert_eq!(tables_mentioning(&db, &[user.id.as_str(), &email]).await, vec![], "round {round}: rows still naming the erased account");
        // What a sign-in writes after its password check refuses an erased account too.
        let origin = Origin { ip: Some("203.0.113.7".into()), user_agent: None }.stored();
        assert!(!app.state.store.insert_user_session(&format!("sid-{round}"), &user.id, &origin, app.clock.now()).await.unwrap());
        let attempt = events::Attempt { user: Some(&user.id), client: None, method: events::Method::Password, outcome: events::Outcome::Failure(events::Failure::WrongPassword) };
        assert!(!events::record_attempt(&app.state.store, &attempt, &Origin { ip: None, user_agent: None }, app.clock.now()).await.unwrap());
        assert_eq!(tables_mentioning(&db, &[user.id.as_str(), &email]).await, vec![], "round {round}: rows written after the erasure");
    }
}

/// What a request already past its session check writes for the account (a second factor,
/// recovery codes, an address change, a linked upstream identity, an account event, a
/// data-access line) writes nothing once the account is erased: such a request finishing
/// just after an erasure in another browser would leave rows naming the account.
#[tokio::test]
async fn writes_for_an_erased_account_leave_nothing_behind() {
    use sluis::model::ClientId;
    use sluis::store::{DataAccess, NewEmailChange};
    let app = TestApp::start().await;
    let db = database(&app).await;
    let store = &app.state.store;
    let email = "erased-writer@example.com";
    let user = app.user(email).await;
    let now = app.clock.now();
    let erased = sluis::account::deletion::delete_account(store, &user, now).await.unwrap();
    assert!(matches!(erased, sluis::store::ErasureOutcome::Erased { .. }));
    assert_eq!(tables_mentioning(&db, &[user.id.as_str(), email]).await, vec![], "the erasure left rows");

    assert!(!store.put_pending_totp(&user.id, "sealed-secret", now).await.unwrap(), "a pending authenticator was stored");
    store.replace_recovery_codes(&user.id, &["recovery-hash-1".to_string(), "recovery-hash-2".to_string()], now).await.unwrap();
    let change = NewEmailChange { token_hash: "change-hash", user_id: &user.id, new_email: "new-address@example.com", created_at: now, expires_at: now + 3600 };
    assert!(!store.put_email_change(&change, now).await.unwrap(), "an address change was stored");
    assert!(!store.link_upstream_identity("corp", "upstream-subject", &user.id, now).await.unwrap(), "an identity was linked");
    let origin = Origin { ip: Some("203.0.113.9".into()), user_agent: Some("Firefox".into()) };
    events::record_account_event(store, &user.id, AccountEvent::PasswordChanged, None, &origin, now).await.unwrap();
    let line = DataAccess { at: now, user_id: user.id.clone(), client_id: ClientId("some-app".into()), endpoint: "userinfo".into(), claims: "email".into() };
    store.record_data_access(&line).await.unwrap();

    let needles = [user.id.as_str(), email, "new-address@example.com", "recovery-hash-1", "upstream-subject", "203.0.113.9"];
    assert_eq!(tables_mentioning(&db, &needles).await, vec![], "rows written for the erased account");
}

/// What an authorization writes for the signed-in account (its link to the app, its
/// consent, the code) is refused once the account is erased: an authorization that was on
/// its way when the account was erased in another browser leaves nothing behind, and the
/// page says why.
#[tokio::test]
async fn an_authorization_for_an_erased_account_writes_nothing() {
    use sluis::model::{Authentication, ClientId};
    let app = TestApp::start().await;
    let db = database(&app).await;
    let (client, _) = app.client().await;
    let email = "authorizing@example.com";
    let user = app.user(email).await;
    let now = app.clock.now();
    let erased = sluis::account::deletion::delete_account(&app.state.store, &user, now).await.unwrap();
    assert!(matches!(erased, sluis::store::ErasureOutcome::Erased { .. }));

    let store = &app.state.store;
    let client_id = ClientId(client.id.to_string());
    assert!(!store.touch_link(&user.id, &client_id, "pairwise-sub", "openid", now).await.unwrap());
    let scope = sluis::privacy::ScopeSet::parse("openid email").unwrap();
    assert!(!store.put_consent(&user.id, &client_id, &scope, now).await.unwrap());
    let auth = Authentication { user_id: user.id.clone(), auth_time: now, amr: vec!["pwd".into()], sid: "sid-erased".into() };
    let code = sluis::store::NewCode {
        code_hash: "code-of-an-erased-account".into(),
        client_id,
        redirect_uri: REDIRECT_URI.into(),
        scope: "openid".into(),
        nonce: None,
        code_challenge: None,
        auth,
        expires_at: now + 60,
    };
    assert!(!store.insert_code(&code).await.unwrap());
    assert_eq!(tables_mentioning(&db, &[user.id.as_str(), email]).await, vec![], "rows written for the erased account");
}
