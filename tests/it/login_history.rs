//! The login history and what is built on it: the user's `/account/security/history` and
//! `/account/sessions` (ending a session signs it out and revokes its refresh tokens), the
//! admin's `/admin/logins` with its filters, JSON and CSV, and the retention purge.

use reqwest::redirect::Policy;
use serde_json::Value;
use sluis::admin::{self, NewUserSpec};
use sluis::clock::Clock as _;
use sluis::login::events::{self, Attempt, Failure, Method, Origin, Outcome};
use sluis::model::Client;

use crate::login_protection::{alert, app_with, browser_from, sign_in};
use crate::served::{ServedSluis, run_bounded, stdout};
use crate::support::*;

const ADA: &str = "ada@example.com";
const BOB: &str = "bob@example.com";
const ADMIN: &str = "admin@example.com";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

fn browser_with_agent(app: &TestApp, user_agent: &str) -> Browser {
    Browser {
        http: reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).user_agent(user_agent).build().unwrap(),
        base: app.base.clone(),
    }
}

async fn admin_user(app: &TestApp) {
    let spec = NewUserSpec { email: ADMIN.into(), name: None, is_admin: true, password: PASSWORD.into() };
    admin::create_user(&app.state.store, &app.state.passwords, spec, app.clock.now()).await.unwrap();
}

/// The page's text without tags, whitespace collapsed.
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
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `<tbody>` rows of the first table, as text.
fn rows(html: &str) -> Vec<String> {
    let Some(start) = html.find("<tbody>") else { return vec![] };
    let end = html[start..].find("</tbody>").unwrap() + start;
    html[start..end].split("<tr").skip(1).map(|row| text(&format!("<tr{row}"))).collect()
}

async fn page(browser: &Browser, path: &str) -> String {
    let response = browser.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

/// Signs `email` in through `client` and returns the tokens (with a refresh token).
async fn tokens_through(app: &TestApp, browser: &Browser, client: &Client, secret: &str, email: &str) -> Value {
    let (verifier, challenge) = pkce();
    let callback = browser.sign_in_and_consent(&app.authorize_url(client, "openid email", &challenge, &[]), email, PASSWORD).await;
    let code = query_param(&callback, "code").expect("code");
    app.exchange(client, secret, &code, &verifier).await
}

#[tokio::test]
async fn the_history_lists_attempts_and_account_events_in_plain_words() {
    let app = app_with(|_| {}).await;
    app.user(ADA).await;
    app.user(BOB).await;
    let (client, secret) = app.client().await;
    let browser = browser_with_agent(&app, FIREFOX);
    assert!(sign_in(&browser, ADA, "not it").await.is_err());
    app.clock.advance(60);
    tokens_through(&app, &browser, &client, &secret, ADA).await;
    app.clock.advance(60);
    // Bob's attempts are not Ada's business.
    assert!(sign_in(&app.browser(), BOB, "not it either").await.is_err());
    // Withdrawing the app is an account event.
    let apps = page(&browser, "/account/apps").await;
    let response = browser.submit(&apps, &[("client_id", client.id.as_str())]).await;
    assert_eq!(response.status(), 303);

    let html = page(&browser, "/account/security/history").await;
    let lines = rows(&html);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("You withdrew Example Shop"), "newest first: {lines:?}");
    assert!(lines[1].contains("Password accepted, signing in to Example Shop"), "{lines:?}");
    assert!(lines[2].contains("Wrong password"), "{lines:?}");
    for line in &lines {
        assert!(line.contains("Firefox 128 on Linux (computer)") && line.contains("127.0.0.1"), "{line}");
    }
    assert!(html.contains("class=\"result-failed\""), "failures stand out");
    assert!(html.contains("href=\"/account/security/history\""), "linked from the account menu");
    // Anonymous visitors are sent to sign in.
    assert_eq!(location(&app.browser().get("/account/security/history").await).as_deref(), Some("/login"));
}

#[tokio::test]
async fn the_history_is_paginated_newest_first() {
    let app = app_with(|_| {}).await;
    let ada = app.user(ADA).await;
    let browser = app.browser();
    assert_eq!(sign_in(&browser, ADA, PASSWORD).await, Ok("/account".into()));
    let origin = Origin { ip: Some("203.0.113.9".into()), user_agent: None };
    let start = app.clock.now() - 10_000;
    for i in 0..60 {
        let outcome = if i % 2 == 0 { Outcome::Failure(Failure::WrongPassword) } else { Outcome::Success };
        let attempt = Attempt { user: Some(&ada.id), client: None, method: Method::Password, outcome };
        events::record_attempt(&app.state.store, &attempt, &origin, start + i / 3).await.unwrap();
    }
    let first = page(&browser, "/account/security/history").await;
    assert_eq!(rows(&first).len(), 50);
    let older = first.split("href=\"/account/security/history?before=").nth(1).expect("an Older link");
    let older = &older[..older.find('"').unwrap()];
    let second = page(&browser, &format!("/account/security/history?before={older}")).await;
    // 60 recorded plus the real sign-in, none twice.
    assert_eq!(rows(&second).len(), 11);
    assert!(!second.contains("rel=\"next\""), "the last page");
    assert!(rows(&first)[0].contains("Password accepted") && rows(&first)[0].contains("127.0.0.1"), "the real sign-in is the newest");
    assert!(rows(&second).iter().all(|r| r.contains("203.0.113.9")));
    assert_eq!(browser.get("/account/security/history?before=garbage").await.status(), 400);
}

#[tokio::test]
async fn ending_another_session_signs_it_out_and_revokes_its_refresh_tokens() {
    let app = app_with(|_| {}).await;
    app.user(ADA).await;
    let (client, secret) = app.client().await;
    let laptop = browser_with_agent(&app, FIREFOX);
    assert_eq!(sign_in(&laptop, ADA, PASSWORD).await, Ok("/account".into()));
    app.clock.advance(120);
    let phone = browser_with_agent(&app, CHROME);
    let tokens = tokens_through(&app, &phone, &client, &secret, ADA).await;
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token").to_string();

    let html = page(&laptop, "/account/sessions").await;
    let lines = rows(&html);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("Firefox 128 on Linux (computer)") && lines[0].contains("This browser"), "current first: {lines:?}");
    assert!(lines[1].contains("Chrome 126 on Windows 10 (computer)") && !lines[1].contains("This browser"), "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("127.0.0.1")), "{lines:?}");
    // Only the other session can be ended from here.
    assert_eq!(html.matches("action=\"/account/sessions/end\"").count(), 1);
    let sid_of = |html: &str, n: usize| {
        let piece = html.split("data-sid=\"").nth(n).unwrap();
        piece[..piece.find('"').unwrap()].to_string()
    };
    let (laptop_sid, phone_sid) = (sid_of(&html, 1), sid_of(&html, 2));

    // Without the CSRF token: refused.
    let forged = laptop.http.post(app.url("/account/sessions/end")).form(&[("sid", phone_sid.as_str())]).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    // The current session cannot be ended here, another user's session cannot be named.
    let response = laptop.submit(&html, &[("sid", laptop_sid.as_str())]).await;
    assert_eq!(location(&response).as_deref(), Some("/account/sessions"));
    assert!(text(&page(&laptop, "/account/sessions").await).contains("That is this browser: use Sign out to end it."));
    app.user(BOB).await;
    let bobs = browser_with_agent(&app, CHROME);
    assert_eq!(sign_in(&bobs, BOB, PASSWORD).await, Ok("/account".into()));
    let bob_sid = sid_of(&page(&bobs, "/account/sessions").await, 1);
    let html = page(&laptop, "/account/sessions").await;
    let response = laptop.submit(&html, &[("sid", bob_sid.as_str())]).await;
    assert_eq!(location(&response).as_deref(), Some("/account/sessions"));
    assert_eq!(bobs.get("/account").await.status(), 200, "another user's session is not ended by naming it");

    let html = page(&laptop, "/account/sessions").await;
    let response = laptop.submit(&html, &[("sid", phone_sid.as_str())]).await;
    assert_eq!(location(&response).as_deref(), Some("/account/sessions"));
    let after = page(&laptop, "/account/sessions").await;
    assert!(text(&after).contains("The session on Chrome 126 on Windows 10 (computer) was ended"), "{}", text(&after));
    assert_eq!(rows(&after).len(), 1);

    // The phone is signed out at its next request, and its refresh token is dead.
    let response = phone.get("/account").await;
    assert_eq!(location(&response).as_deref(), Some("/login"));
    let refreshed = app.token(&client, Some(&secret), &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(refreshed.status(), 400);
    assert_eq!(refreshed.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // It is in the history.
    let history = text(&page(&laptop, "/account/security/history").await);
    assert!(history.contains("You ended a session (Chrome 126 on Windows 10 (computer))"), "{history}");

    // Signing out removes the session from the list.
    let account = page(&laptop, "/account").await;
    let token = account.split("name=\"csrf_token\" value=\"").nth(1).unwrap();
    let token = &token[..token.find('"').unwrap()];
    let response = laptop.http.post(app.url("/logout")).form(&[("csrf_token", token), ("confirm", "yes")]).send().await.unwrap();
    assert_eq!(response.status(), 200, "signed out");
    let ada = app.state.store.user_credentials(ADA).await.unwrap().unwrap().0;
    assert!(app.state.store.user_sessions(&ada.id, app.clock.now(), 43_200).await.unwrap().is_empty());
}

/// Records an attempt directly, at `at`, from `ip` with `user_agent`.
async fn recorded(app: &TestApp, user: Option<&sluis::model::UserId>, client: Option<&sluis::model::ClientId>, outcome: Outcome, ip: &str, user_agent: &str, at: i64) {
    let attempt = Attempt { user, client, method: Method::Password, outcome };
    let origin = Origin { ip: Some(ip.into()), user_agent: Some(user_agent.into()) };
    events::record_attempt(&app.state.store, &attempt, &origin, at).await.unwrap();
}

async fn api(browser: &Browser, query: &str) -> Value {
    let response = browser.get(&format!("/api/admin/logins?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

fn ids(body: &Value) -> Vec<String> {
    body["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_admin_log_filters_pages_and_exports() {
    let app = app_with(|c| c.require_2fa_for_admins = false).await;
    admin_user(&app).await;
    let ada = app.user(ADA).await;
    let bob = app.user(BOB).await;
    let (client, secret) = app.client().await;
    let t0 = app.clock.now();
    recorded(&app, Some(&ada.id), None, Outcome::Failure(Failure::WrongPassword), "203.0.113.7", FIREFOX, t0 - 7200).await;
    recorded(&app, Some(&ada.id), Some(&client.id), Outcome::Success, "203.0.113.8", FIREFOX, t0 - 3600).await;
    recorded(&app, Some(&bob.id), None, Outcome::Failure(Failure::Locked), "2001:db8:1::5", "=cmd|' /C calc'!A0", t0 - 1800).await;
    recorded(&app, None, None, Outcome::Failure(Failure::UnknownAccount), "198.51.100.4", CHROME, t0 - 900).await;
    // And real ones: Bob through the client from 127.0.0.1, then the admin.
    tokens_through(&app, &app.browser(), &client, &secret, BOB).await;
    let admin = app.browser();
    assert_eq!(sign_in(&admin, ADMIN, PASSWORD).await, Ok("/account".into()));

    // Only admins.
    assert_eq!(location(&app.browser().get("/admin/logins").await).as_deref(), Some("/login"));
    let user = browser_from(&app, "127.0.0.2");
    sign_in(&user, ADA, PASSWORD).await.unwrap();
    assert_eq!(user.get("/api/admin/logins").await.status(), 403);
    assert_eq!(user.get("/admin/logins.csv").await.status(), 403);

    let all = api(&admin, "").await;
    assert_eq!(all["events"].as_array().unwrap().len(), 7, "{all}");
    assert!(all["next"].is_null());
    let by_user = api(&admin, "user=ada@example.com").await;
    assert!(by_user["events"].as_array().unwrap().iter().all(|e| e["user_email"] == ADA), "{by_user}");
    assert_eq!(by_user["events"].as_array().unwrap().len(), 3);
    assert!(api(&admin, "user=nobody@example.com").await["events"].as_array().unwrap().is_empty());
    let prefix = api(&admin, "ip=203.0.113.").await;
    assert_eq!(prefix["events"].as_array().unwrap().len(), 2, "{prefix}");
    assert_eq!(api(&admin, "ip=203.0.113.0/24").await["events"], prefix["events"]);
    assert_eq!(api(&admin, "ip=203.0.113.7").await["events"].as_array().unwrap().len(), 1);
    let v6 = api(&admin, "ip=2001:db8:").await;
    assert_eq!(v6["events"][0]["reason"], "locked");
    assert_eq!(v6["events"][0]["user_email"], BOB);
    let by_client = api(&admin, &format!("client={}", client.id)).await;
    assert_eq!(by_client["events"].as_array().unwrap().len(), 2, "{by_client}");
    assert!(by_client["events"].as_array().unwrap().iter().all(|e| e["result"] == "success"));
    let failures = api(&admin, "result=failure").await;
    assert_eq!(failures["events"].as_array().unwrap().len(), 3);
    let unknown = failures["events"].as_array().unwrap().iter().find(|e| e["reason"] == "unknown_account").unwrap();
    assert!(unknown["user_id"].is_null() && unknown["user_email"].is_null());
    assert_eq!(unknown["browser"], "Chrome 126");
    let range = api(&admin, &format!("from={}&to={}", t0 - 3600, t0 - 900)).await;
    assert_eq!(range["events"].as_array().unwrap().len(), 2, "from inclusive, to exclusive: {range}");
    let combined = api(&admin, &format!("user=ada@example.com&result=success&ip=203.0.113.&client={}", client.id)).await;
    assert_eq!(combined["events"].as_array().unwrap().len(), 1);

    // Keyset pages: newest first, each event once.
    let mut seen = Vec::new();
    let mut query = "limit=3".to_string();
    loop {
        let body = api(&admin, &query).await;
        seen.extend(ids(&body));
        match body["next"].as_str() {
            Some(next) => query = format!("limit=3&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids(&all));
    let times: Vec<i64> = all["events"].as_array().unwrap().iter().map(|e| e["at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    // Bad filters are explained.
    for bad in ["ip=bogus", "result=maybe", "from=yesterday", "limit=0", "before=x"] {
        let response = admin.get(&format!("/api/admin/logins?{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_request");
    }

    // The CSV export: the whole filtered list, spreadsheet formulas defused.
    let response = admin.get("/admin/logins.csv?result=failure").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("attachment"));
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "time,user_email,user_id,client_id,method,result,reason,ip,device,os,browser,user_agent");
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines.iter().skip(1).all(|l| l.contains(",failure,")), "{csv}");
    assert!(csv.contains("\"'=cmd|' /C calc'!A0\""), "a formula is defused: {csv}");
    assert!(csv.contains(&format!(",{},", ada.id)) && csv.contains("203.0.113.7"), "{csv}");
    let empty = admin.get("/admin/logins.csv?user=nobody@example.com").await.text().await.unwrap();
    assert_eq!(empty.lines().count(), 1, "only the header: {empty}");

    // The page: the same filters, a CSV link carrying them, errors in words.
    let html = page(&admin, "/admin/logins?ip=203.0.113.&result=failure").await;
    let lines = rows(&html);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(ADA) && lines[0].contains("failure: wrong_password") && lines[0].contains("203.0.113.7"), "{lines:?}");
    let csv_link = html.replace("&#38;", "&amp;");
    assert!(csv_link.contains("href=\"/admin/logins.csv?ip=203.0.113.&amp;result=failure\""), "{html}");
    let response = admin.get("/admin/logins?ip=bogus").await;
    assert_eq!(response.status(), 400);
    assert!(alert(&response.text().await.unwrap()).unwrap().contains("is not an IP address"));
    assert!(text(&page(&admin, "/admin/logins?user=nobody@example.com").await).contains("No user has this email address."));
    assert!(page(&admin, "/admin/clients").await.contains("href=\"/admin/logins\""), "in the admin menu");
}

#[tokio::test]
async fn admin_log_queries_use_indexes() {
    let app = TestApp::start().await;
    let plans = app.state.store.login_query_plans().await.unwrap();
    assert_eq!(plans.len(), 7);
    for (name, plan) in plans {
        println!("{name}:\n{plan}\n");
        let lower = plan.to_lowercase();
        assert!(lower.contains("index"), "{name} does not use an index:\n{plan}");
        assert!(!lower.contains("seq scan on login_events") && !lower.contains("scan e\n") && !lower.ends_with("scan e"), "{name}:\n{plan}");
    }
}

#[tokio::test]
async fn the_retention_purge_deletes_old_records_and_truncates_addresses() {
    const DAY: i64 = 86_400;
    let app = app_with(|c| c.session_ttl = 100 * 24 * 3600).await;
    let ada = app.user(ADA).await;
    let (client, _) = app.client().await;
    let browser = browser_with_agent(&app, FIREFOX);
    assert_eq!(sign_in(&browser, ADA, PASSWORD).await, Ok("/account".into()));
    let now = app.clock.now();
    let outcome = Outcome::Success;
    recorded(&app, Some(&ada.id), None, outcome, "203.0.113.1", FIREFOX, now - 91 * DAY).await;
    recorded(&app, Some(&ada.id), Some(&client.id), outcome, "203.0.113.77", FIREFOX, now - 31 * DAY).await;
    recorded(&app, Some(&ada.id), None, outcome, "2001:db8:1:2:3::9", FIREFOX, now - 31 * DAY).await;
    recorded(&app, Some(&ada.id), None, outcome, "198.51.100.23", FIREFOX, now - 29 * DAY).await;
    let origin = Origin { ip: Some("203.0.113.200".into()), user_agent: None };
    events::record_account_event(&app.state.store, &ada.id, events::AccountEvent::PasswordChanged, None, &origin, now - 95 * DAY).await.unwrap();
    events::record_account_event(&app.state.store, &ada.id, events::AccountEvent::SessionEnded, None, &origin, now - 40 * DAY).await.unwrap();

    let report = sluis::login::retention::purge(&app.state.store, &app.state.config, now).await.unwrap();
    assert_eq!((report.login_events_deleted, report.account_events_deleted), (1, 1), "{report:?}");
    assert_eq!(report.ips_truncated, 3, "{report:?}");
    let ips: Vec<Option<String>> = crate::login_protection::events(&app).await.into_iter().map(|e| e.ip).collect();
    // Newest first: the real sign-in (today), 29, 31 and 31 days old.
    assert_eq!(ips[0].as_deref(), Some("127.0.0.1"));
    assert_eq!(ips[1].as_deref(), Some("198.51.100.23"), "younger than ip_days: kept whole");
    let old: Vec<&str> = ips[2..].iter().map(|i| i.as_deref().unwrap()).collect();
    assert!(old.contains(&"203.0.113.0") && old.contains(&"2001:db8:1::"), "{old:?}");
    // Truncated addresses still match their prefix filter.
    let filter = sluis::store::LoginEventFilter { ip_keys: Some({ let r = sluis::login::ip::parse_filter("203.0.113.").unwrap(); (r.low, r.high) }), ..Default::default() };
    assert_eq!(app.state.store.login_events(&filter, None, 10).await.unwrap().len(), 1);
    let changes = app.state.store.account_events(&ada.id, None, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].ip.as_deref(), Some("203.0.113.0"));

    // A second run finds nothing left to do.
    let again = sluis::login::retention::purge(&app.state.store, &app.state.config, now).await.unwrap();
    assert_eq!((again.login_events_deleted, again.ips_truncated), (0, 0), "{again:?}");

    // Weeks later the session's address is old too; the session itself is still listed.
    app.clock.advance(31 * DAY);
    let later = sluis::login::retention::purge(&app.state.store, &app.state.config, app.clock.now()).await.unwrap();
    assert!(later.ips_truncated >= 2, "the session's and the sign-in's: {later:?}");
    let sessions = app.state.store.user_sessions(&ada.id, app.clock.now(), 100 * DAY).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].ip.as_deref(), Some("127.0.0.0"));
}

#[tokio::test]
async fn sluis_purge_applies_the_configured_retention() {
    let sluis = ServedSluis::prepare().await;
    sluis.create_user(ADA, "Ada");
    let store = sluis::store::Store::connect(&sluis.database_url).await.unwrap();
    let now = sluis::clock::SystemClock.now();
    let attempt = Attempt { user: None, client: None, method: Method::Password, outcome: Outcome::Failure(Failure::UnknownAccount) };
    let origin = Origin { ip: Some("203.0.113.5".into()), user_agent: None };
    events::record_attempt(&store, &attempt, &origin, now - 10 * 86_400).await.unwrap();
    events::record_attempt(&store, &attempt, &origin, now - 3 * 86_400).await.unwrap();
    // A nested key from the environment: SLUIS_RETENTION__LOGIN_DAYS is retention.login_days.
    let mut command = sluis.command();
    command.env("SLUIS_RETENTION__LOGIN_DAYS", "7").env("SLUIS_RETENTION__IP_DAYS", "1").arg("purge");
    let output = run_bounded(&mut command, None, std::time::Duration::from_secs(60));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(report["login_events_deleted"], 1, "{report}");
    assert_eq!(report["ips_truncated"], 1, "{report}");
}

/// The purge reads a batch of addresses that are due, then truncates them. A session used
/// again in between has a fresh address, recorded today: it must keep it.
#[tokio::test]
async fn an_address_renewed_while_the_purge_runs_is_kept_whole() {
    const DAY: i64 = 86_400;
    let app = app_with(|c| c.session_ttl = 100 * 24 * 3600).await;
    let ada = app.user(ADA).await;
    assert_eq!(sign_in(&browser_with_agent(&app, FIREFOX), ADA, PASSWORD).await, Ok("/account".into()));
    app.clock.advance(31 * DAY);
    let (store, now) = (&app.state.store, app.clock.now());
    let cutoff = now - i64::from(app.state.config.retention.ip_days) * DAY;
    let due = store.ips_to_truncate(sluis::store::IpTable::UserSessions, cutoff).await.unwrap();
    assert_eq!(due.len(), 1, "the session's 31 days old address");
    let sid = store.user_sessions(&ada.id, now, 100 * DAY).await.unwrap()[0].sid.clone();
    store.touch_user_session(&sid, now, None, Some("198.51.100.7")).await.unwrap();

    let rows: Vec<String> = due.into_iter().map(|d| d.row_id).collect();
    store.set_truncated_ip(sluis::store::IpTable::UserSessions, &rows, Some("127.0.0.0"), None, cutoff).await.unwrap();
    let sessions = store.user_sessions(&ada.id, now, 100 * DAY).await.unwrap();
    assert_eq!(sessions[0].ip.as_deref(), Some("198.51.100.7"));
    // And the next purge leaves it too: it is recent (the sign-in's own record, 31 days old,
    // is truncated).
    assert_eq!(sluis::login::retention::purge(store, &app.state.config, now).await.unwrap().ips_truncated, 1);
    assert_eq!(store.user_sessions(&ada.id, now, 100 * DAY).await.unwrap()[0].ip.as_deref(), Some("198.51.100.7"));
}
