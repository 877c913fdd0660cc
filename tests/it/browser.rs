//! A real Chromium (headless, through chromedriver and WebDriver) on Sluis' pages: sign in,
//! consent, the redirect back; a wrong password; the form_post response mode under the strict
//! CSP (its page has no inline script).

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use url::Url;

use crate::support::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// chromedriver on a free port, in its own process group with the browsers it starts, so
/// dropping it ends all of them; plus the WebDriver session.
pub(crate) struct Chromium {
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub(crate) async fn start() -> Self {
        for path in [CHROMEDRIVER, CHROMIUM] {
            assert!(std::path::Path::new(path).exists(), "{path} is missing: run ./scripts/test.sh to install test dependencies");
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut chromium = Self { client: None, driver, _profile: profile };
        let webdriver = format!("http://127.0.0.1:{port}");

        // Wait (bounded) for chromedriver to answer.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Ok(r) = http.get(format!("{webdriver}/status")).send().await
                && r.status() == 200
            {
                break;
            }
            if let Some(status) = chromium.driver.try_wait().unwrap() {
                panic!("chromedriver exited with {status}");
            }
            assert!(Instant::now() < deadline, "chromedriver not ready after {STEP_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", chromium._profile.path().display()),
        ];
        // Downloads (the admin's CSV export) land in the profile, without a prompt.
        let downloads = chromium._profile.path().join("downloads");
        let prefs = serde_json::json!({ "download.default_directory": downloads, "download.prompt_for_download": false });
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args, "prefs": prefs },
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        // Several rustls backends are linked; pick one (a no-op if another test already did).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = ClientBuilder::rustls().expect("rustls connector");
        let connect = builder.capabilities(capabilities).connect(&webdriver);
        let client = tokio::time::timeout(Duration::from_secs(60), connect)
            .await
            .expect("WebDriver session not created within 60 s")
            .expect("WebDriver session");
        chromium.client = Some(client);
        chromium
    }

    pub(crate) fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Ends the session (closing the browser) before chromedriver is killed.
    pub(crate) async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
    }

    pub(crate) async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client().wait().at_most(STEP_TIMEOUT).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no {css} on {}: {e}", self.page_text().await),
        }
    }

    /// Waits (bounded) for the download `name` to complete, and returns its content.
    async fn downloaded(&self, name: &str) -> String {
        let path = self._profile.path().join("downloads").join(name);
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            // Chromium writes `<name>.crdownload` and renames it once complete.
            if let Ok(text) = std::fs::read_to_string(&path) {
                return text;
            }
            assert!(Instant::now() < deadline, "{name} was not downloaded; now at {}", self.page_text().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn page_text(&self) -> String {
        let url = self.client().current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let body = match self.client().find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        format!("{url}: {body}")
    }

    /// Waits (bounded) until the browser's URL starts with `prefix`, and returns it.
    pub(crate) async fn wait_for_url(&self, prefix: &str) -> Url {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let url = self.client().current_url().await.expect("current_url");
            if url.as_str().starts_with(prefix) {
                return url;
            }
            assert!(Instant::now() < deadline, "browser did not reach {prefix}; now at {}", self.page_text().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fills the login form and submits it with its button, as a user would.
    async fn sign_in(&self, email: &str, password: &str) {
        self.find("input[name=email]").await.send_keys(email).await.unwrap();
        self.find("input[name=password]").await.send_keys(password).await.unwrap();
        self.find("form[action='/login'] button[type=submit]").await.click().await.unwrap();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.driver.id())]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Replaces (or adds) one query parameter of `url`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().filter(|(k, _)| k != name).map(|(k, v)| (k.into(), v.into())).collect();
    url.query_pairs_mut().clear().extend_pairs(pairs).append_pair(name, value);
    url.to_string()
}

#[tokio::test]
async fn chromium_signs_in_consents_and_returns_a_working_code() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let (verifier, challenge) = pkce();
    let chromium = Chromium::start().await;

    chromium.client().goto(&app.authorize_url(&client, "openid email", &challenge, &[])).await.unwrap();
    chromium.wait_for_url(&app.url("/login")).await;
    assert!(chromium.find("main").await.text().await.unwrap().contains("Example Shop"), "login page names the client");
    chromium.sign_in("ada@example.com", PASSWORD).await;

    // The consent page lists what the client will receive.
    chromium.wait_for_url(&app.url("/consent")).await;
    let email_scope = chromium.find("li[data-scope=email]").await;
    assert!(email_scope.is_displayed().await.unwrap(), "the email scope is visible");
    assert_eq!(email_scope.text().await.unwrap(), "Your email address");
    let listed: Vec<String> = {
        let mut names = Vec::new();
        for li in chromium.client().find_all(Locator::Css("ul.scopes li")).await.unwrap() {
            names.push(li.attr("data-scope").await.unwrap().unwrap_or_default());
        }
        names
    };
    assert_eq!(listed, ["email", "openid"], "exactly the requested scopes are listed");
    assert!(chromium.find("main").await.text().await.unwrap().contains("ada@example.com"), "consent shows who is signed in");
    chromium.find("button[name=decision][value=allow]").await.click().await.unwrap();

    // Back at the client (nothing listens there; the error page is fine).
    let callback = chromium.wait_for_url(REDIRECT_URI).await;
    assert_eq!(query_param(&callback, "state").as_deref(), Some("st"));
    assert_eq!(query_param(&callback, "iss").as_deref(), Some(app.base.as_str()));
    let code = query_param(&callback, "code").expect("code in the callback");

    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], client.id.as_str());
    assert_eq!(id["nonce"], "n");

    // Signing in again (prompt=login) with consent remembered: the login form's submission
    // ends directly at the client, which the login page's CSP must allow.
    let (verifier, challenge) = pkce();
    let url = with_param(&app.authorize_url(&client, "openid email", &challenge, &[("prompt", "login")]), "state", "again");
    chromium.client().goto(&url).await.unwrap();
    chromium.wait_for_url(&app.url("/login")).await;
    chromium.sign_in("ada@example.com", PASSWORD).await;
    let callback = chromium.wait_for_url(REDIRECT_URI).await;
    assert_eq!(query_param(&callback, "state").as_deref(), Some("again"));
    let code = query_param(&callback, "code").expect("code in the second callback");
    app.exchange(&client, &secret, &code, &verifier).await;

    // RP-initiated logout without an id_token_hint asks for confirmation; confirming returns
    // to the client's post-logout URI with its state.
    let mut logout = Url::parse(&app.url("/logout")).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("client_id", client.id.as_str())
        .append_pair("post_logout_redirect_uri", POST_LOGOUT_URI)
        .append_pair("state", "bye-state");
    chromium.client().goto(logout.as_str()).await.unwrap();
    chromium.find("button[name=confirm][value=yes]").await.click().await.unwrap();
    let back = chromium.wait_for_url(POST_LOGOUT_URI).await;
    assert_eq!(query_param(&back, "state").as_deref(), Some("bye-state"));
    // Signed out: the next authorization asks for the password again.
    chromium.client().goto(&app.authorize_url(&client, "openid", &pkce().1, &[])).await.unwrap();
    chromium.wait_for_url(&app.url("/login")).await;
    chromium.close().await;
}

#[tokio::test]
async fn chromium_wrong_password_shows_the_error_and_keeps_the_email() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, _) = app.client().await;
    let (_, challenge) = pkce();
    let chromium = Chromium::start().await;

    chromium.client().goto(&app.authorize_url(&client, "openid", &challenge, &[])).await.unwrap();
    chromium.wait_for_url(&app.url("/login")).await;
    chromium.sign_in("ada@example.com", "not the password").await;

    let alert = chromium.find("[role=alert]").await;
    assert!(alert.is_displayed().await.unwrap());
    assert_eq!(alert.text().await.unwrap(), "The email address or password is incorrect.");
    // Still the login page, email kept, password cleared, no code issued.
    let url = chromium.client().current_url().await.unwrap();
    assert!(url.as_str().starts_with(&app.url("/login")), "still on the login page: {url}");
    assert_eq!(chromium.find("input[name=email]").await.prop("value").await.unwrap().as_deref(), Some("ada@example.com"));
    assert_eq!(chromium.find("input[name=password]").await.prop("value").await.unwrap().as_deref(), Some(""));

    // The right password then works from the same page.
    chromium.find("input[name=email]").await.clear().await.unwrap();
    chromium.sign_in("ada@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/consent")).await;
    chromium.close().await;
}

#[tokio::test]
async fn chromium_form_post_response_mode_posts_the_code_to_the_client() {
    use axum::routing::post;
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let (verifier, challenge) = pkce();

    // The "client": a listener on 127.0.0.1 that receives the POSTed authorization response.
    // Its port differs from the registered loopback redirect URI's, which RFC 8252 §7.3 allows.
    let (sender, mut received) = tokio::sync::mpsc::channel::<HashMap<String, String>>(1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://127.0.0.1:{}/cb", listener.local_addr().unwrap().port());
    let router = axum::Router::new().route(
        "/cb",
        post(move |axum::Form(fields): axum::Form<HashMap<String, String>>| {
            let sender = sender.clone();
            async move {
                let _ = sender.send(fields).await;
                axum::response::Html("<p id=received>received</p>")
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let chromium = Chromium::start().await;
    let url = app.authorize_url(&client, "openid email", &challenge, &[("response_mode", "form_post")]);
    chromium.client().goto(&with_param(&url, "redirect_uri", &callback)).await.unwrap();
    chromium.wait_for_url(&app.url("/login")).await;
    chromium.sign_in("ada@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/consent")).await;
    chromium.find("button[name=decision][value=allow]").await.click().await.unwrap();

    // The auto-submitting page (script from /static, no inline script) posts to the listener.
    let fields = tokio::time::timeout(STEP_TIMEOUT, received.recv())
        .await
        .unwrap_or_else(|_| panic!("no form post within {STEP_TIMEOUT:?}"))
        .expect("a posted form");
    assert_eq!(fields.get("state").map(String::as_str), Some("st"));
    assert_eq!(fields.get("iss").map(String::as_str), Some(app.base.as_str()));
    let code = fields.get("code").expect("code posted").clone();
    chromium.wait_for_url(&callback).await;
    assert_eq!(chromium.find("#received").await.text().await.unwrap(), "received");
    chromium.close().await;

    // The code is bound to the redirect URI actually used.
    let response = app
        .token(&client, Some(&secret), &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &callback), ("code_verifier", &verifier)])
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}


#[tokio::test]
async fn chromium_withdraws_an_app_and_reads_the_data_access_log() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let (verifier, challenge) = pkce();
    let chromium = Chromium::start().await;

    // Sign in through the client and consent; the client redeems the code and calls userinfo.
    chromium.client().goto(&app.authorize_url(&client, "openid email", &challenge, &[])).await.unwrap();
    chromium.wait_for_url(&app.url("/login")).await;
    chromium.sign_in("ada@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/consent")).await;
    chromium.find("button[name=decision][value=allow]").await.click().await.unwrap();
    let callback = chromium.wait_for_url(REDIRECT_URI).await;
    let code = query_param(&callback, "code").expect("code in the callback");
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let userinfo = app.http().get(app.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(userinfo.status(), 200);
    let read_at = sluis::web::templates::utc_minute(sluis::clock::Clock::now(&app.clock));

    // From the account page to the connected apps, which lists the client and what it gets.
    chromium.client().goto(&app.url("/account")).await.unwrap();
    chromium.find("main a[href='/account/apps']").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/account/apps")).await;
    let entry = format!("li.app[data-client='{}']", client.id);
    assert_eq!(chromium.find(&format!("{entry} h2")).await.text().await.unwrap(), "Example Shop");
    let receives = chromium.find(&format!("{entry} ul.scopes")).await.text().await.unwrap();
    assert!(receives.contains("Your email address"), "{receives}");

    // Withdraw: a confirmation, and the app listed as withdrawn.
    chromium.find(&format!("{entry} button[type=submit]")).await.click().await.unwrap();
    let notice = chromium.find("[role=status]").await.text().await.unwrap();
    assert!(notice.starts_with("Example Shop was withdrawn"), "{notice}");
    let withdrawn = chromium.find(&format!("li.app.withdrawn[data-client='{}']", client.id)).await.text().await.unwrap();
    assert!(withdrawn.contains("Example Shop") && withdrawn.contains("withdrawn"), "{withdrawn}");
    assert!(chromium.client().find_all(Locator::Css("form[action='/account/apps/withdraw']")).await.unwrap().is_empty());
    let refused = app.http().get(app.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(refused.status(), 401, "the access token was revoked with the withdrawal");

    // The data-access log, reached from the apps page, says what the client read, in plain words.
    chromium.find("nav a[href='/account/activity']").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/account/activity")).await;
    let line = chromium.find("ul.activity li").await.text().await.unwrap();
    assert_eq!(line, format!("Example Shop read your email address on {read_at} (userinfo)"));
    chromium.close().await;
}

#[tokio::test]
async fn chromium_admin_reviews_grants_approves_a_scope_and_reads_the_audit_log() {
    // The 2FA policy for admins is tested in tests/it/second_factor.rs.
    let app = TestApp::start_with(|c| c.require_2fa_for_admins = false).await;
    let admin = sluis::admin::NewUserSpec { email: "admin@example.com".into(), name: None, is_admin: true, password: PASSWORD.into() };
    sluis::admin::create_user(&app.state.store, &app.state.passwords, admin, sluis::clock::Clock::now(&app.clock)).await.unwrap();
    app.user("ada@example.com").await;
    let (shop, _) = app.client().await;
    let (pending, _) = app
        .client_with(|s| {
            s.name = "Pending App".into();
            s.verified = false;
            s.scopes = vec!["openid".into(), "email".into()];
        })
        .await;
    app.code_for(&shop, "ada@example.com", "openid email").await;

    let chromium = Chromium::start().await;
    chromium.client().goto(&app.url("/login")).await.unwrap();
    chromium.sign_in("admin@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/account")).await;

    // Grants: the shop's email scope is approved and one user granted it.
    chromium.client().goto(&app.url("/admin/grants")).await.unwrap();
    let row = chromium.find(&format!("tr[data-client='{}'] span[data-scope='email']", shop.id)).await.text().await.unwrap();
    assert_eq!(row, "email: approved, 1 users");
    // Filter by user, with the page's own form.
    chromium.find("input[name=user]").await.send_keys("ada@example.com").await.unwrap();
    chromium.find("form[action='/admin/grants'] button[type=submit]").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/admin/grants?user=")).await;
    let text = chromium.page_text().await;
    assert!(text.contains("What ada@example.com granted") && text.contains("Example Shop"), "{text}");

    // The queue: the pending client, approve its email scope.
    chromium.client().goto(&app.url("/admin/clients?status=unverified")).await.unwrap();
    chromium.find(&format!("tr[data-client='{}'] a", pending.id)).await.click().await.unwrap();
    chromium.wait_for_url(&app.url(&format!("/admin/clients/{}", pending.id))).await;
    chromium.find("tr[data-scope='email'] button[value=approve]").await.click().await.unwrap();
    let state = chromium.find("tr[data-scope='email'] td.state-approved").await.text().await.unwrap();
    assert!(state.starts_with("approved"), "{state}");
    assert!(chromium.find("strong.status-verified").await.text().await.unwrap().contains("verified"));

    // The audit log shows it, with who and from where.
    chromium.find("nav.admin a[href='/admin/audit']").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/admin/audit")).await;
    let log = chromium.page_text().await;
    assert!(log.contains("client.verify") && log.contains(pending.id.as_str()) && log.contains("127.0.0.1"), "{log}");
    chromium.close().await;
}

/// Waits (bounded) until the first element matching `css` contains `needle`; returns its text.
async fn wait_for_text(chromium: &Chromium, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Ok(element) = chromium.client().find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
            && text.contains(needle)
        {
            return text;
        }
        assert!(Instant::now() < deadline, "no {css} with {needle:?}; now at {}", chromium.page_text().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn chromium_owner_registers_a_client_rotates_its_secret_and_reads_the_rejection() {
    let app = TestApp::start_with(|c| {
        c.client_registration = sluis::config::ClientRegistration::Users;
        c.require_2fa_for_admins = false;
    })
    .await;
    app.user("ada@example.com").await;
    let admin = sluis::admin::NewUserSpec { email: "admin@example.com".into(), name: None, is_admin: true, password: PASSWORD.into() };
    sluis::admin::create_user(&app.state.store, &app.state.passwords, admin, sluis::clock::Clock::now(&app.clock)).await.unwrap();
    let chromium = Chromium::start().await;

    // Ada registers a client from her account page.
    chromium.client().goto(&app.url("/login")).await.unwrap();
    chromium.sign_in("ada@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/account")).await;
    chromium.find("main a[href='/account/clients']").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/account/clients")).await;
    chromium.find("form.register input[name=name]").await.send_keys("Ada's Recipes").await.unwrap();
    chromium.find("form.register textarea[name=redirect_uris]").await.send_keys(REDIRECT_URI).await.unwrap();
    chromium.find("form.register button[type=submit]").await.click().await.unwrap();
    let first = chromium.find("#new-secret").await.text().await.unwrap();
    let client_id = chromium.find("#client-id").await.text().await.unwrap();
    assert!(chromium.find("main").await.text().await.unwrap().contains("shown only this once"));
    let client = app.state.store.client(&client_id).await.unwrap().expect("the client is stored");

    // A second secret, for rotation: shown once, and both work at once.
    chromium.find("form.new-secret-form input[name=label]").await.send_keys("rotation").await.unwrap();
    chromium.find("form.new-secret-form button[type=submit]").await.click().await.unwrap();
    wait_for_text(&chromium, "[role=status]", "“rotation” is ready").await;
    let second = chromium.find("#new-secret").await.text().await.unwrap();
    assert_ne!(first, second);
    for secret in [&first, &second] {
        let response = app.token(&client, Some(secret), &[("grant_type", "client_credentials")]).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let labels: Vec<String> = {
        let mut labels = Vec::new();
        for row in chromium.client().find_all(Locator::Css("table.secrets tbody tr td:first-child")).await.unwrap() {
            labels.push(row.text().await.unwrap());
        }
        labels
    };
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert!(labels.contains(&"initial".to_string()) && labels.contains(&"rotation".to_string()), "{labels:?}");

    // Ada asks for email, saying why.
    chromium.find("form.verification input[name=scope_email]").await.click().await.unwrap();
    chromium.find("form.verification textarea[name=purpose]").await.send_keys("To email order receipts").await.unwrap();
    chromium.find("form.verification button[type=submit]").await.click().await.unwrap();
    wait_for_text(&chromium, "[role=status]", "Verification of email is requested").await;
    assert!(chromium.client().find_all(Locator::Css("#new-secret")).await.unwrap().is_empty(), "the secret is gone");

    // An admin rejects it with a note.
    chromium.client().delete_all_cookies().await.unwrap();
    chromium.client().goto(&app.url("/login")).await.unwrap();
    chromium.sign_in("admin@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/account")).await;
    chromium.client().goto(&app.url(&format!("/admin/clients/{client_id}"))).await.unwrap();
    let purpose = chromium.find("tr[data-scope='email'] td:nth-child(3)").await.text().await.unwrap();
    assert_eq!(purpose, "To email order receipts");
    chromium.find("tr[data-scope='email'] input[name=note]").await.send_keys("Use your own sign-up form for receipts").await.unwrap();
    chromium.find("tr[data-scope='email'] button[value=reject]").await.click().await.unwrap();
    let state = chromium.find("tr[data-scope='email'] td.state-rejected").await.text().await.unwrap();
    assert!(state.starts_with("rejected"), "{state}");

    // Ada reads the note on her clients page.
    chromium.client().delete_all_cookies().await.unwrap();
    chromium.client().goto(&app.url("/login")).await.unwrap();
    chromium.sign_in("ada@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/account")).await;
    chromium.client().goto(&app.url("/account/clients")).await.unwrap();
    let line = chromium.find(&format!("li.client[data-client='{client_id}'] li[data-scope='email']")).await.text().await.unwrap();
    assert_eq!(line, "email: rejected. Note from the administrators: Use your own sign-up form for receipts");
    chromium.close().await;
}

/// The TOTP code an authenticator app shows for `secret` at `at` (SHA-1, six digits, 30 s).
fn totp_code(secret: &[u8], at: i64) -> String {
    let totp = totp_rs::Builder::new().with_secret(secret.to_vec()).build().unwrap();
    totp.generate(u64::try_from(at).unwrap()).to_string()
}

#[tokio::test]
async fn chromium_sets_up_totp_signs_in_with_a_code_is_refused_a_replay_and_uses_a_recovery_code() {
    use sluis::clock::Clock as _;
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let chromium = Chromium::start().await;

    // From the account page to the security page: set up an authenticator app.
    chromium.client().goto(&app.url("/login")).await.unwrap();
    chromium.sign_in("ada@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/account")).await;
    chromium.find("main a[href='/account/security']").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/account/security")).await;
    chromium.find("form.start button[type=submit]").await.click().await.unwrap();
    let qr = chromium.find(".qr svg").await;
    assert!(qr.is_displayed().await.unwrap(), "the QR code shows (inline SVG under the strict CSP)");
    let key = chromium.find("#totp-key").await.text().await.unwrap().replace(' ', "");
    let totp_secret = totp_rs::Secret::try_from_base32(&key).expect("a base32 key on the page").as_bytes().to_vec();
    chromium.find("form.confirm input[name=code]").await.send_keys(&totp_code(&totp_secret, app.clock.now())).await.unwrap();
    chromium.find("form.confirm button[type=submit]").await.click().await.unwrap();
    wait_for_text(&chromium, "[role=status]", "Two-factor authentication is on").await;
    let mut codes = Vec::new();
    for code in chromium.client().find_all(Locator::Css("#recovery-codes code")).await.unwrap() {
        codes.push(code.text().await.unwrap());
    }
    assert_eq!(codes.len(), 10, "{codes:?}");

    // Sign out, then sign in to the client: password, then the current code.
    let sign_out = async || {
        chromium.client().goto(&app.url("/account")).await.unwrap();
        chromium.find("form[action='/logout'] button[type=submit]").await.click().await.unwrap();
        wait_for_text(&chromium, "h1", "You are signed out").await;
    };
    sign_out().await;
    let (verifier, challenge) = pkce();
    chromium.client().goto(&app.authorize_url(&client, "openid", &challenge, &[])).await.unwrap();
    chromium.wait_for_url(&app.url("/login")).await;
    chromium.sign_in("ada@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/login/second-factor")).await;
    assert!(chromium.find("main").await.text().await.unwrap().contains("Example Shop"), "the page names the client");
    app.clock.advance(30);
    let code = totp_code(&totp_secret, app.clock.now());
    chromium.find("input[name=code]").await.send_keys(&code).await.unwrap();
    chromium.find("form[action='/login/second-factor'] button[type=submit]").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/consent")).await;
    chromium.find("button[name=decision][value=allow]").await.click().await.unwrap();
    let callback = chromium.wait_for_url(REDIRECT_URI).await;
    let tokens = app.exchange(&client, &secret, &query_param(&callback, "code").expect("a code"), &verifier).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "urn:sluis:acr:2fa");
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));

    // Signed out again, the same code is refused: each code works once.
    sign_out().await;
    chromium.client().goto(&app.url("/login")).await.unwrap();
    chromium.sign_in("ada@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/login/second-factor")).await;
    chromium.find("input[name=code]").await.send_keys(&code).await.unwrap();
    chromium.find("form[action='/login/second-factor'] button[type=submit]").await.click().await.unwrap();
    let alert = wait_for_text(&chromium, "[role=alert]", "not valid").await;
    assert!(alert.contains("already used"), "{alert}");
    assert!(chromium.client().current_url().await.unwrap().as_str().starts_with(&app.url("/login/second-factor")));

    // A recovery code works instead, and the page says how many are left.
    chromium.find("input[name=code]").await.send_keys(&codes[0]).await.unwrap();
    chromium.find("form[action='/login/second-factor'] button[type=submit]").await.click().await.unwrap();
    assert_eq!(chromium.find("#recovery-left").await.text().await.unwrap(), "9");
    chromium.find("a#continue").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/account")).await;
    chromium.find("main a[href='/account/security']").await.click().await.unwrap();
    assert_eq!(chromium.find("#recovery-left").await.text().await.unwrap(), "9");
    chromium.close().await;
}

#[tokio::test]
async fn chromium_reads_the_sign_in_history_ends_a_session_and_filters_the_admin_log() {
    let app = TestApp::start_with(|c| {
        c.require_2fa_for_admins = false;
        c.rate_limit_login_per_minute = 0;
    })
    .await;
    app.user("ada@example.com").await;
    let admin = sluis::admin::NewUserSpec { email: "admin@example.com".into(), name: None, is_admin: true, password: PASSWORD.into() };
    sluis::admin::create_user(&app.state.store, &app.state.passwords, admin, sluis::clock::Clock::now(&app.clock)).await.unwrap();
    // Ada's other device: a session of its own, with a browser name the pages can show.
    let other = Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
            .build()
            .unwrap(),
        base: app.base.clone(),
    };
    let login = other.get("/login").await.text().await.unwrap();
    assert_eq!(location(&other.submit(&login, &[("email", "ada@example.com"), ("password", PASSWORD)]).await).as_deref(), Some("/account"));
    app.clock.advance(60);

    let chromium = Chromium::start().await;
    chromium.client().goto(&app.url("/login")).await.unwrap();
    chromium.sign_in("ada@example.com", "not the password").await;
    chromium.find("[role=alert]").await;
    chromium.find("input[name=email]").await.clear().await.unwrap();
    chromium.sign_in("ada@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/account")).await;

    // The history, from the account menu: newest first, in plain words, with device and address.
    chromium.find("main a[href='/account/security/history']").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/account/security/history")).await;
    let mut lines = Vec::new();
    for row in chromium.client().find_all(Locator::Css("table.history tbody tr")).await.unwrap() {
        lines.push(row.text().await.unwrap());
    }
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("Password accepted") && lines[0].contains("Chrome") && lines[0].contains("127.0.0.1"), "{lines:?}");
    assert!(lines[1].contains("Wrong password"), "{lines:?}");
    assert!(lines[2].contains("Password accepted") && lines[2].contains("Firefox 128 on Linux (computer)"), "{lines:?}");
    let failed = chromium.find("tr.result-failed").await;
    assert!(failed.text().await.unwrap().contains("Wrong password"));

    // Sessions: this browser marked, the other one ended with its button.
    chromium.find("nav a[href='/account/sessions']").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/account/sessions")).await;
    let current = chromium.find("table.sessions tr.current").await.text().await.unwrap();
    assert!(current.contains("This browser") && current.contains("Chrome"), "{current}");
    let rows = chromium.client().find_all(Locator::Css("table.sessions tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 2);
    chromium.find("table.sessions tr:not(.current) button[type=submit]").await.click().await.unwrap();
    let notice = wait_for_text(&chromium, "[role=status]", "was ended").await;
    assert!(notice.contains("Firefox 128 on Linux (computer)"), "{notice}");
    assert_eq!(chromium.client().find_all(Locator::Css("table.sessions tbody tr")).await.unwrap().len(), 1);
    assert_eq!(location(&other.get("/account").await).as_deref(), Some("/login"), "the other device is signed out");

    // The admin log: filter by address prefix and result with the page's own form.
    chromium.client().delete_all_cookies().await.unwrap();
    chromium.client().goto(&app.url("/login")).await.unwrap();
    chromium.sign_in("admin@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/account")).await;
    chromium.client().goto(&app.url("/admin/logins")).await.unwrap();
    assert_eq!(chromium.client().find_all(Locator::Css("table.logins tbody tr")).await.unwrap().len(), 4);
    chromium.find("form.filters input[name=ip]").await.send_keys("127.0.0.").await.unwrap();
    chromium.find("form.filters select[name=result] option[value=failure]").await.click().await.unwrap();
    chromium.find("form.filters button[type=submit]").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/admin/logins?")).await;
    let rows = chromium.client().find_all(Locator::Css("table.logins tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = rows[0].text().await.unwrap();
    assert!(row.contains("ada@example.com") && row.contains("failure: wrong_password") && row.contains("127.0.0.1"), "{row}");
    let csv = chromium.find("a.csv").await.attr("href").await.unwrap().unwrap_or_default();
    assert!(csv.starts_with("/admin/logins.csv?") && csv.contains("ip=127.0.0.") && csv.contains("result=failure"), "{csv}");

    // The export, as the admin gets it: the link clicked in this session downloads the
    // filtered rows only. (The pages' CSP has no connect-src, so a script could not fetch it.)
    chromium.find("a.csv").await.click().await.unwrap();
    let file = chromium.downloaded("sluis-logins.csv").await;
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 2, "the header and the one filtered row: {file}");
    assert!(lines[0].starts_with("time,user_email,user_id,client_id,method,result,reason,ip,"), "{file}");
    assert!(lines[1].contains("ada@example.com") && lines[1].contains(",failure,wrong_password,127.0.0.1,"), "{file}");
    chromium.close().await;

    // The same link through plain HTTP, for the headers a browser acts on.
    let admin_http = app.browser();
    let login = admin_http.get("/login").await.text().await.unwrap();
    assert_eq!(location(&admin_http.submit(&login, &[("email", "admin@example.com"), ("password", PASSWORD)]).await).as_deref(), Some("/account"));
    let response = admin_http.get(&csv).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(response.headers()["content-disposition"], "attachment; filename=\"sluis-logins.csv\"");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.text().await.unwrap(), file, "the same rows as the browser's download");
}

#[tokio::test]
async fn chromium_deletes_an_account() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let chromium = Chromium::start().await;
    chromium.client().goto(&app.url("/login")).await.unwrap();
    chromium.sign_in("ada@example.com", PASSWORD).await;
    chromium.wait_for_url(&app.url("/account")).await;
    chromium.find("main a[href='/account/security']").await.click().await.unwrap();
    chromium.find("a#delete-account").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/account/delete")).await;
    let page = chromium.page_text().await;
    assert!(page.contains("cannot be undone") && page.contains("signed out everywhere"), "{page}");

    // A wrong address first: refused, nothing deleted.
    chromium.find("input#confirm").await.send_keys("someone@example.com").await.unwrap();
    chromium.find("form.delete-account button[type=submit]").await.click().await.unwrap();
    wait_for_text(&chromium, "[role=alert]", "Nothing was deleted").await;
    chromium.find("input#confirm").await.send_keys("ada@example.com").await.unwrap();
    chromium.find("form.delete-account button[type=submit]").await.click().await.unwrap();
    wait_for_text(&chromium, "#deleted", "erased").await;
    assert!(app.state.store.user_credentials("ada@example.com").await.unwrap().is_none());
    chromium.client().goto(&app.url("/account")).await.unwrap();
    chromium.wait_for_url(&app.url("/login")).await;
    chromium.close().await;
}

#[tokio::test]
async fn chromium_changes_the_email_address_through_the_mailed_link() {
    let smtp = crate::mail_support::SmtpReceiver::start().await;
    let smtp_url = smtp.url();
    let app = TestApp::start_with(move |c| {
        c.mail.smtp_url = Some(smtp_url);
        c.mail.from = Some("Sluis <no-reply@sluis.test>".into());
    })
    .await;
    app.user("ada@example.com").await;
    let chromium = Chromium::start().await;
    chromium.client().goto(&app.url("/login")).await.unwrap();
    chromium.sign_in("ada@example.com", PASSWORD).await;
    wait_for_text(&chromium, "#account-email", "ada@example.com").await;

    // From the account page to the form; the answer says where to look.
    chromium.find("main a[href='/account/email']").await.click().await.unwrap();
    chromium.find("input[name=new_email]").await.send_keys("nora@example.com").await.unwrap();
    chromium.find("form[action='/account/email'] button[type=submit]").await.click().await.unwrap();
    wait_for_text(&chromium, "[role=status]", "Check your inbox at nora@example.com").await;

    // The link from the mail, opened in the same browser: a page with a button.
    let mail = smtp.wait_for("nora@example.com", 1).await;
    let link = mail[0].body.lines().find(|l| l.contains("/account/email/confirm?token=")).expect("a link in the mail").trim().to_string();
    chromium.client().goto(&link).await.unwrap();
    assert_eq!(chromium.find("#new-email").await.text().await.unwrap(), "nora@example.com");
    chromium.find("form[action='/account/email/confirm'] button[type=submit]").await.click().await.unwrap();
    wait_for_text(&chromium, "[role=status]", "Your email address is now nora@example.com.").await;
    assert_eq!(chromium.find("#account-email").await.text().await.unwrap(), "nora@example.com");

    // The history lists the change.
    chromium.find("main a[href='/account/security/history']").await.click().await.unwrap();
    wait_for_text(&chromium, "main", "Your email address was changed").await;
    chromium.close().await;
}
