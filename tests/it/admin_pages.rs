//! The admin pages: the guard, the verification queue, decisions and the audit log.

use crate::support::*;
use sluis::admin::{self, NewUserSpec};
use sluis::clock::Clock;
use sluis::model::{ClientStatus, ScopeState};

const ADMIN: &str = "admin@example.com";

async fn admin_user(app: &TestApp) -> sluis::model::User {
    let spec = NewUserSpec { email: ADMIN.into(), name: None, is_admin: true, password: PASSWORD.into() };
    admin::create_user(&app.state.store, &app.state.passwords, spec, app.clock.now()).await.unwrap()
}

/// These tests are about the admin pages, not the 2FA policy (tests/it/second_factor.rs).
async fn start() -> TestApp {
    TestApp::start_with(|c| c.require_2fa_for_admins = false).await
}

/// Signs in on the plain login page (no client involved).
async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let browser = app.browser();
    let page = browser.get("/login").await.text().await.unwrap();
    let response = browser.submit(&page, &[("email", email), ("password", PASSWORD)]).await;
    assert_eq!(location(&response).as_deref(), Some("/account"), "sign-in failed");
    browser
}

async fn client_page(browser: &Browser, id: &str) -> String {
    let response = browser.get(&format!("/admin/clients/{id}")).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn admin_pages_need_an_admin() {
    let app = start().await;
    app.user("ada@example.com").await;
    let anonymous = app.browser();
    for path in ["/admin/clients", "/admin/audit", "/admin"] {
        let response = anonymous.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response).as_deref(), Some("/login"));
    }
    let user = signed_in(&app, "ada@example.com").await;
    for path in ["/admin/clients", "/admin/audit"] {
        assert_eq!(user.get(path).await.status(), 403, "{path}");
    }
    admin_user(&app).await;
    let admin = signed_in(&app, ADMIN).await;
    assert_eq!(admin.get("/admin/clients").await.status(), 200);
    assert_eq!(admin.get("/admin/audit").await.status(), 200);
    assert_eq!(admin.get("/admin/clients/no-such-client").await.status(), 404);
    assert_eq!(admin.get("/admin/clients?status=bogus").await.status(), 400);
}

#[tokio::test]
async fn an_admin_approves_and_rejects_scopes_and_the_audit_log_shows_it() {
    let app = start().await;
    let admin = admin_user(&app).await;
    let (client, _) = app.client_with(|s| {
        s.verified = false;
        s.scopes = vec!["openid".into(), "email".into(), "phone".into()];
    })
    .await;
    let browser = signed_in(&app, ADMIN).await;

    let list = browser.get("/admin/clients?status=unverified").await.text().await.unwrap();
    assert!(list.contains(client.id.as_str()), "the unverified client is in the queue");
    let page = client_page(&browser, client.id.as_str()).await;
    assert!(page.contains("email: requested") || page.contains(">requested<"), "{page}");

    // Approve email.
    let response = browser.submit(&page, &[("scope", "email"), ("action", "approve")]).await;
    assert_eq!(response.status(), 303);
    let stored = app.state.store.client(client.id.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.status, ClientStatus::Verified);
    assert!(stored.approved_scopes.contains("email"));
    assert!(!stored.approved_scopes.contains("phone"));

    // Rejecting needs a note; with one, the note is kept and shown.
    let page = client_page(&browser, client.id.as_str()).await;
    let form = reject_form(&page, "phone");
    let response = browser.submit(&form, &[("action", "reject")]).await;
    assert_eq!(response.status(), 200, "without a note the page explains");
    assert!(response.text().await.unwrap().contains("Write a note"));
    let response = browser.submit(&form, &[("action", "reject"), ("note", "Not needed for a shop")]).await;
    assert_eq!(response.status(), 303);
    let decisions = app.state.store.scope_decisions(&client.id).await.unwrap();
    let phone = decisions.iter().find(|d| d.scope == "phone").unwrap();
    assert_eq!(phone.state, ScopeState::Rejected);
    assert_eq!(phone.note.as_deref(), Some("Not needed for a shop"));
    assert!(client_page(&browser, client.id.as_str()).await.contains("Not needed for a shop"));

    // Suspend.
    let page = client_page(&browser, client.id.as_str()).await;
    let response = browser.submit(&page, &[("action", "suspend")]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(app.state.store.client(client.id.as_str()).await.unwrap().unwrap().status, ClientStatus::Suspended);

    // Every action is in the audit log, with who and from where.
    let audit = app.state.store.audit_entries(20).await.unwrap();
    let actor = format!("user:{}", admin.id);
    for action in ["client.verify", "client.scope.reject", "client.suspend"] {
        let entry = audit.iter().find(|e| e.action == action).unwrap_or_else(|| panic!("{action} missing: {audit:?}"));
        assert_eq!(entry.actor, actor);
        assert_eq!(entry.target, client.id.as_str());
        assert_eq!(entry.ip.as_deref(), Some("127.0.0.1"));
    }
    let page = browser.get("/admin/audit").await.text().await.unwrap();
    assert!(page.contains("client.scope.reject") && page.contains("Not needed for a shop"), "{page}");
}

#[tokio::test]
async fn decisions_need_the_csrf_token() {
    let app = start().await;
    admin_user(&app).await;
    let (client, _) = app.client_with(|s| s.verified = false).await;
    let browser = signed_in(&app, ADMIN).await;
    let response = browser
        .http
        .post(format!("{}/admin/clients/{}", app.base, client.id))
        .form(&[("action", "suspend")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(app.state.store.client(client.id.as_str()).await.unwrap().unwrap().status, ClientStatus::Unverified);
}

/// The page cut down to the reject form of one scope, so `Browser::submit` picks it.
fn reject_form(page: &str, scope: &str) -> String {
    let row = &page[page.find(&format!("data-scope=\"{scope}\"")).expect("scope row")..];
    let start = row.find("<form").unwrap();
    let second = row[start + 5..].find("<form").unwrap() + start + 5;
    let end = row[second..].find("</form>").unwrap() + second + 7;
    row[second..end].to_string()
}

#[tokio::test]
async fn grant_review_counts_users_per_scope_and_lists_a_users_grants() {
    let app = start().await;
    admin_user(&app).await;
    app.user("ada@example.com").await;
    app.user("grace@example.com").await;
    let (shop, _) = app.client().await;
    let (other, _) = app.client_with(|s| s.name = "Other App".into()).await;
    app.code_for(&shop, "ada@example.com", "openid email").await;
    app.code_for(&shop, "grace@example.com", "openid").await;
    app.code_for(&other, "grace@example.com", "openid email profile").await;
    let browser = signed_in(&app, ADMIN).await;

    let all: serde_json::Value = browser.get("/api/admin/grants").await.json().await.unwrap();
    assert_eq!(all["view"], "clients");
    let shop_row = all["clients"].as_array().unwrap().iter().find(|c| c["client_id"] == shop.id.as_str()).unwrap().clone();
    let users = |row: &serde_json::Value, scope: &str| row["scopes"].as_array().unwrap().iter().find(|s| s["scope"] == scope).unwrap()["users"].clone();
    assert_eq!(users(&shop_row, "openid"), 2);
    assert_eq!(users(&shop_row, "email"), 1);
    assert_eq!(users(&shop_row, "profile"), 0);

    let grace: serde_json::Value = browser.get("/api/admin/grants?user=grace@example.com").await.json().await.unwrap();
    assert_eq!(grace["view"], "user");
    let held: Vec<(String, String)> = grace["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["client_name"].as_str().unwrap().to_string(), g["scope"].as_str().unwrap().to_string()))
        .collect();
    assert!(held.contains(&("Other App".into(), "profile".into())), "{held:?}");
    assert!(held.contains(&("Example Shop".into(), "openid".into())), "{held:?}");
    assert!(!held.contains(&("Example Shop".into(), "email".into())), "grace never gave email to the shop: {held:?}");

    let one: serde_json::Value = browser.get(&format!("/api/admin/grants?client={}", other.id)).await.json().await.unwrap();
    let rows = one["clients"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(users(&rows[0], "profile"), 1);
    let none: serde_json::Value = browser.get("/api/admin/grants?client=nope").await.json().await.unwrap();
    assert!(none["clients"].as_array().unwrap().is_empty());

    let email: serde_json::Value = browser.get("/api/admin/grants?scope=email").await.json().await.unwrap();
    let holders: Vec<&str> = email["clients"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    assert_eq!(holders.len(), 2, "{email}");

    // Withdrawal takes the grants away.
    let ada = app.state.store.user_credentials("ada@example.com").await.unwrap().unwrap().0;
    app.state.store.withdraw_link(&ada.id, &shop.id, app.clock.now()).await.unwrap();
    let counts = app.state.store.scope_counts(&shop.id).await.unwrap();
    assert!(!counts.iter().any(|c| c.scope == "email"), "{counts:?}");

    // The page renders the same views.
    let page = browser.get("/admin/grants?user=grace@example.com").await.text().await.unwrap();
    assert!(page.contains("Other App") && page.contains("profile"), "{page}");
    let page = browser.get("/admin/grants").await.text().await.unwrap();
    assert!(page.contains("Example Shop"), "{page}");
    // Non-admins get nothing.
    let ada_browser = signed_in(&app, "ada@example.com").await;
    assert_eq!(ada_browser.get("/api/admin/grants").await.status(), 403);
}

#[tokio::test]
async fn grant_review_queries_use_indexes() {
    let app = start().await;
    let plans = app.state.store.grant_query_plans().await.unwrap();
    assert_eq!(plans.len(), 3);
    for (name, plan) in plans {
        println!("{name}:\n{plan}\n");
        let lower = plan.to_lowercase();
        assert!(lower.contains("index"), "{name} does not use an index:\n{plan}");
        // SQLite says SCAN for a full table scan, PostgreSQL "Seq Scan".
        assert!(!lower.contains("seq scan") && !lower.contains("scan granted_scopes\n") && !lower.ends_with("scan granted_scopes"), "{name}:\n{plan}");
    }
}

#[tokio::test]
async fn the_json_admin_api_verifies_rejects_and_suspends() {
    let app = start().await;
    admin_user(&app).await;
    app.user("ada@example.com").await;
    let (client, _) = app.client_with(|s| {
        s.verified = false;
        s.scopes = vec!["openid".into(), "email".into(), "phone".into()];
    })
    .await;
    let url = format!("{}/api/admin/clients/{}", app.base, client.id);

    // Anonymous: 401 JSON, not a redirect; a plain user: 403.
    let anonymous = app.http().get(format!("{}/api/admin/clients", app.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.json::<serde_json::Value>().await.unwrap()["error"], "unauthenticated");
    let ada = signed_in(&app, "ada@example.com").await;
    assert_eq!(ada.get("/api/admin/clients").await.status(), 403);

    let admin = signed_in(&app, ADMIN).await;
    let listed: serde_json::Value = admin.get("/api/admin/clients").await.json().await.unwrap();
    assert!(listed["clients"].as_array().unwrap().iter().any(|c| c["client_id"] == client.id.as_str() && c["status"] == "unverified"));

    // A form post (what a cross-site page could send) is refused.
    let form = admin.http.post(&url).form(&[("action", "suspend")]).send().await.unwrap();
    assert_eq!(form.status(), 415);

    let verified: serde_json::Value = admin.http.post(&url).json(&serde_json::json!({"action": "verify", "scopes": ["email"]})).send().await.unwrap().json().await.unwrap();
    assert_eq!(verified["status"], "verified");
    let email = verified["scopes"].as_array().unwrap().iter().find(|s| s["scope"] == "email").unwrap().clone();
    assert_eq!(email["state"], "approved");

    let no_note = admin.http.post(&url).json(&serde_json::json!({"action": "reject", "scope": "phone", "note": " "})).send().await.unwrap();
    assert_eq!(no_note.status(), 400);
    let rejected: serde_json::Value = admin
        .http
        .post(&url)
        .json(&serde_json::json!({"action": "reject", "scope": "phone", "note": "not needed"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let phone = rejected["scopes"].as_array().unwrap().iter().find(|s| s["scope"] == "phone").unwrap().clone();
    assert_eq!((phone["state"].as_str(), phone["note"].as_str()), (Some("rejected"), Some("not needed")));

    let not_enabled = admin.http.post(&url).json(&serde_json::json!({"action": "verify", "scopes": ["address"]})).send().await.unwrap();
    assert_eq!(not_enabled.status(), 400);
    let unknown = admin
        .http
        .post(format!("{}/api/admin/clients/nope", app.base))
        .json(&serde_json::json!({"action": "suspend"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let garbage = admin.http.post(&url).header("content-type", "application/json").body("{\"action\":\"explode\"}").send().await.unwrap();
    assert_eq!(garbage.status(), 400);

    let suspended: serde_json::Value = admin.http.post(&url).json(&serde_json::json!({"action": "suspend"})).send().await.unwrap().json().await.unwrap();
    assert_eq!(suspended["status"], "suspended");
    let actions: Vec<String> = app.state.store.audit_entries(20).await.unwrap().into_iter().map(|e| e.action).collect();
    for action in ["client.verify", "client.scope.reject", "client.suspend"] {
        assert!(actions.iter().any(|a| a == action), "{action} not audited: {actions:?}");
    }
}
