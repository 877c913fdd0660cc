//! Second factors (issue 4): TOTP enrolment and sign-in, single use under concurrency,
//! recovery codes, amr/acr in the ID token, acr_values step-up (and with prompt=none),
//! step-up for sensitive actions after `reauth_max_age`, and the 2FA policy for admins and
//! all users. Codes are computed from the secret at the fixed clock's time.

use sluis::clock::Clock;
use sluis::config::Config;
use sluis::model::Client;
use url::Url;

use crate::support::*;

const ADA: &str = "ada@example.com";
const TWO_FA: &str = "urn:sluis:acr:2fa";

/// The TOTP code for `secret` at `at` (RFC 6238: SHA-1, six digits, 30 s), as an app shows it.
fn code_at(secret: &[u8], at: i64) -> String {
    let totp = totp_rs::Builder::new().with_secret(secret.to_vec()).build().unwrap();
    totp.generate(u64::try_from(at).unwrap()).to_string()
}

fn now(app: &TestApp) -> i64 {
    app.clock.now()
}

/// The value of the first input named `name`.
fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let start = tag.find(" value=\"")? + 8;
    Some(tag[start..start + tag[start..].find('"')?].to_string())
}

/// The text of the element whose opening tag contains `marker` (no nested tags).
fn text_of(html: &str, marker: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[at..].find('>')? + at + 1;
    let end = html[start..].find('<')? + start;
    Some(html[start..end].to_string())
}

/// The recovery codes shown on the page.
fn recovery_codes(html: &str) -> Vec<String> {
    let Some(list) = html.find("id=\"recovery-codes\"") else { return Vec::new() };
    let end = html[list..].find("</ul>").unwrap() + list;
    html[list..end].split("<code>").skip(1).map(|s| s[..s.find("</code>").unwrap()].to_string()).collect()
}

async fn page(browser: &Browser, path: &str) -> (u16, String) {
    let response = browser.get(path).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

/// POSTs `fields` with the CSRF token read from `path`.
async fn post_from(browser: &Browser, path: &str, action: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let (_, html) = page(browser, path).await;
    let csrf = input_value(&html, "csrf_token").unwrap_or_else(|| panic!("no CSRF token on {path}: {html}"));
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    browser.http.post(format!("{}{action}", browser.base)).form(&form).send().await.unwrap()
}

/// Submits the password on the plain login page; returns where it leads.
async fn password_step(browser: &Browser, email: &str, password: &str) -> Option<String> {
    let response = post_from(browser, "/login", "/login", &[("email", email), ("password", password)]).await;
    location(&response)
}

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let browser = app.browser();
    assert_eq!(password_step(&browser, email, PASSWORD).await.as_deref(), Some("/account"));
    browser
}

/// Sends a code on the second-factor page.
async fn second_factor(browser: &Browser, code: &str) -> reqwest::Response {
    post_from(browser, "/login/second-factor", "/login/second-factor", &[("code", code)]).await
}

/// Sets up TOTP from the security page as a person would: start, read the key, enter a
/// code. Returns the secret and the recovery codes shown.
async fn enrol(app: &TestApp, browser: &Browser) -> (Vec<u8>, Vec<String>) {
    let response = post_from(browser, "/account/security", "/account/security", &[("action", "start")]).await;
    assert_eq!(location(&response).as_deref(), Some("/account/security"));
    let (_, html) = page(browser, "/account/security").await;
    let key = text_of(&html, "id=\"totp-key\"").expect("the key as text");
    let secret = totp_rs::Secret::try_from_base32(key.replace(' ', "")).unwrap().as_bytes().to_vec();
    let response = post_from(browser, "/account/security", "/account/security", &[("action", "confirm"), ("code", &code_at(&secret, now(app)))]).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let codes = recovery_codes(&html);
    assert_eq!(codes.len(), 10, "{html}");
    (secret, codes)
}

async fn has_factor(app: &TestApp, email: &str) -> bool {
    let user = app.state.store.user_credentials(email).await.unwrap().unwrap().0;
    app.state.store.has_second_factor(&user.id).await.unwrap()
}

#[tokio::test]
async fn enrolment_needs_a_valid_code_and_the_secret_is_sealed() {
    let app = TestApp::start().await;
    let ada = app.user(ADA).await;
    let browser = signed_in(&app, ADA).await;
    let (status, html) = page(&browser, "/account/security").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-state=\"off\""), "{html}");

    let response = post_from(&browser, "/account/security", "/account/security", &[("action", "start")]).await;
    assert_eq!(response.status(), 303);
    let response = browser.get("/account/security").await;
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    // The QR code is inline SVG, so the strict CSP needs no data: images.
    assert!(html.contains("<svg role=\"img\"") && !html.contains("<?xml"), "{html}");
    assert!(!csp.contains("data:"), "{csp}");
    let key = text_of(&html, "id=\"totp-key\"").unwrap().replace(' ', "");
    let link = html[html.find("id=\"otpauth-link\" href=\"").unwrap() + 24..].split('"').next().unwrap().replace("&amp;", "&");
    assert!(link.starts_with("otpauth://totp/127.0.0.1:ada%40example.com?secret="), "{link}");
    assert!(link.contains(&format!("secret={key}")), "{link}");
    let secret = totp_rs::Secret::try_from_base32(&key).unwrap().as_bytes().to_vec();

    // Not active before a valid code; a wrong code is refused.
    assert!(!has_factor(&app, ADA).await);
    let wrong = format!("{:06}", (code_at(&secret, now(&app)).parse::<u32>().unwrap() + 1) % 1_000_000);
    let response = post_from(&browser, "/account/security", "/account/security", &[("action", "confirm"), ("code", &wrong)]).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("That code is not valid"));
    assert!(!has_factor(&app, ADA).await);
    // Signing in still needs only the password meanwhile.
    signed_in(&app, ADA).await;

    let response = post_from(&browser, "/account/security", "/account/security", &[("action", "confirm"), ("code", &code_at(&secret, now(&app)))]).await;
    let html = response.text().await.unwrap();
    assert!(has_factor(&app, ADA).await);
    let codes = recovery_codes(&html);
    assert_eq!(codes.len(), 10);
    // Shown once: the page no longer lists them, only how many are left.
    let (_, html) = page(&browser, "/account/security").await;
    assert!(recovery_codes(&html).is_empty() && !html.contains(&codes[0]));
    assert_eq!(text_of(&html, "id=\"recovery-left\"").as_deref(), Some("10"));
    assert!(html.contains("data-state=\"on\""));

    // At rest the secret is sealed, and opens only with the TOTP sealer.
    let stored = app.state.store.totp_factor(&ada.id).await.unwrap().unwrap();
    assert!(!stored.secret_sealed.contains(&key));
    assert_eq!(app.state.secrets.totp_sealer.open(&stored.secret_sealed).unwrap(), secret);
    assert!(app.state.secrets.key_sealer.open(&stored.secret_sealed).is_err());
}

#[tokio::test]
async fn sign_in_asks_for_the_code_and_refuses_wrong_and_replayed_ones() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (secret, _) = enrol(&app, &signed_in(&app, ADA).await).await;
    app.clock.advance(30);

    let browser = app.browser();
    assert_eq!(password_step(&browser, ADA, PASSWORD).await.as_deref(), Some("/login/second-factor"));
    // Half signed in is not signed in.
    assert_eq!(location(&browser.get("/account").await).as_deref(), Some("/login"));
    let (_, html) = page(&browser, "/login/second-factor").await;
    assert!(html.contains("autocomplete=\"one-time-code\""), "{html}");

    let code = code_at(&secret, now(&app));
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let response = second_factor(&browser, &wrong).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("That code is not valid"));
    assert_eq!(location(&browser.get("/account/security").await).as_deref(), Some("/login"), "still not signed in");

    let response = second_factor(&browser, &code).await;
    assert_eq!(location(&response).as_deref(), Some("/account"));
    assert_eq!(browser.get("/account").await.status(), 200);

    // The same code again, from another browser with the right password: refused.
    let other = app.browser();
    assert_eq!(password_step(&other, ADA, PASSWORD).await.as_deref(), Some("/login/second-factor"));
    let response = second_factor(&other, &code).await;
    assert_eq!(response.status(), 200, "a replayed code is refused");
    assert_eq!(location(&other.get("/account").await).as_deref(), Some("/login"));
    // Still refused a step later, while it is inside the ±1 step window; the new code works.
    app.clock.advance(30);
    assert_eq!(code_at(&secret, now(&app) - 30), code);
    let response = second_factor(&other, &code).await;
    assert_eq!(response.status(), 200);
    let response = second_factor(&other, &code_at(&secret, now(&app))).await;
    assert_eq!(location(&response).as_deref(), Some("/account"));
}

#[tokio::test]
async fn one_code_submitted_twice_at_once_signs_in_exactly_once() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (secret, _) = enrol(&app, &signed_in(&app, ADA).await).await;
    for round in 0..3 {
        app.clock.advance(30);
        let code = code_at(&secret, now(&app));
        let (a, b) = (app.browser(), app.browser());
        for browser in [&a, &b] {
            assert_eq!(password_step(browser, ADA, PASSWORD).await.as_deref(), Some("/login/second-factor"));
        }
        let (ra, rb) = tokio::join!(second_factor(&a, &code), second_factor(&b, &code));
        let outcomes = [location(&ra), location(&rb)];
        let won = outcomes.iter().filter(|l| l.as_deref() == Some("/account")).count();
        assert_eq!(won, 1, "round {round}: exactly one of two concurrent uses wins: {outcomes:?}");
    }
}

#[tokio::test]
async fn a_recovery_code_works_once_and_the_count_drops() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (_, codes) = enrol(&app, &signed_in(&app, ADA).await).await;

    let browser = app.browser();
    assert_eq!(password_step(&browser, ADA, PASSWORD).await.as_deref(), Some("/login/second-factor"));
    // Typed in capitals, without dashes: still the same code.
    let typed = codes[3].replace('-', "").to_uppercase();
    let response = second_factor(&browser, &typed).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert_eq!(text_of(&html, "id=\"recovery-left\"").as_deref(), Some("9"), "{html}");
    assert!(html.contains("href=\"/account\""), "{html}");
    assert_eq!(browser.get("/account").await.status(), 200, "signed in");

    let other = app.browser();
    assert_eq!(password_step(&other, ADA, PASSWORD).await.as_deref(), Some("/login/second-factor"));
    let response = second_factor(&other, &codes[3]).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("That code is not valid"), "used once only");
    let (_, html) = page(&browser, "/account/security").await;
    assert_eq!(text_of(&html, "id=\"recovery-left\"").as_deref(), Some("9"));

    // Regenerating replaces the set: an old unused code stops working.
    let response = post_from(&browser, "/account/security", "/account/security", &[("action", "regenerate")]).await;
    let fresh = recovery_codes(&response.text().await.unwrap());
    assert_eq!(fresh.len(), 10);
    let response = second_factor(&other, &codes[4]).await;
    assert!(response.text().await.unwrap().contains("That code is not valid"));
    let response = second_factor(&other, &fresh[0]).await;
    assert!(response.text().await.unwrap().contains("id=\"recovery-left\">9<"));
}

#[tokio::test]
async fn too_many_wrong_codes_end_the_attempt() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (secret, _) = enrol(&app, &signed_in(&app, ADA).await).await;
    app.clock.advance(30);
    let browser = app.browser();
    password_step(&browser, ADA, PASSWORD).await;
    for _ in 0..4 {
        let response = second_factor(&browser, "000000").await;
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains("That code is not valid"));
        // Past the login throttle's growing delay, which would answer first.
        app.clock.advance(61);
    }
    assert_eq!(second_factor(&browser, "000000").await.status(), 403);
    // The pending state is gone: even the right code now needs the password first.
    let page = browser.get("/login/second-factor").await;
    assert_eq!(location(&page).as_deref(), Some("/login"));
    let response = browser.http.post(format!("{}/login/second-factor", app.base)).form(&[("code", code_at(&secret, now(&app)))]).send().await.unwrap();
    assert_ne!(location(&response).as_deref(), Some("/account"));
}

/// Follows an authorization through Sluis' pages: the password, the second-factor page
/// (with `secret`'s current code), consent. Returns the redirect to the client.
async fn authorize_through(app: &TestApp, browser: &Browser, url: &str, secret: Option<&[u8]>) -> Url {
    let mut response = browser.get(url).await;
    for _ in 0..12 {
        let location = location(&response).unwrap_or_else(|| panic!("no redirect: {}", response.status()));
        if location.starts_with(REDIRECT_URI) {
            return Url::parse(&location).unwrap();
        }
        if location.starts_with("/login?") {
            let html = browser.get(&location).await.text().await.unwrap();
            response = browser.submit(&html, &[("email", ADA), ("password", PASSWORD)]).await;
        } else if location == "/login/second-factor" {
            app.clock.advance(30);
            let code = code_at(secret.expect("a second factor is asked for"), now(app));
            response = second_factor(browser, &code).await;
        } else if location.starts_with("/consent") {
            let html = browser.get(&location).await.text().await.unwrap();
            response = browser.submit(&html, &[("decision", "allow")]).await;
        } else {
            response = browser.get(&location).await;
        }
    }
    panic!("too many steps");
}

async fn id_token(app: &TestApp, client: &Client, secret: &str, callback: &Url, verifier: &str) -> serde_json::Value {
    let code = query_param(callback, "code").unwrap_or_else(|| panic!("no code: {callback}"));
    let tokens = app.exchange(client, secret, &code, verifier).await;
    jwt_claims(tokens["id_token"].as_str().unwrap())
}

#[tokio::test]
async fn the_id_token_says_how_the_user_signed_in() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (client, client_secret) = app.client().await;

    // Password only.
    let (verifier, challenge) = pkce();
    let callback = authorize_through(&app, &app.browser(), &app.authorize_url(&client, "openid", &challenge, &[]), None).await;
    let id = id_token(&app, &client, &client_secret, &callback, &verifier).await;
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert_eq!(id["acr"], "urn:sluis:acr:1fa");

    // With a second factor.
    let (secret, _) = enrol(&app, &signed_in(&app, ADA).await).await;
    let (verifier, challenge) = pkce();
    let callback = authorize_through(&app, &app.browser(), &app.authorize_url(&client, "openid", &challenge, &[]), Some(&secret)).await;
    let id = id_token(&app, &client, &client_secret, &callback, &verifier).await;
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(id["acr"], TWO_FA);

    let discovery: serde_json::Value = app.http().get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(discovery["acr_values_supported"], serde_json::json!(["urn:sluis:acr:1fa", TWO_FA]));
    assert!(discovery["claims_supported"].as_array().unwrap().contains(&serde_json::json!("acr")));
}

#[tokio::test]
async fn acr_values_asking_for_two_factors_steps_a_password_session_up() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (client, client_secret) = app.client().await;
    // A password-only session, then a second factor set up elsewhere.
    let browser = signed_in(&app, ADA).await;
    let (secret, _) = enrol(&app, &signed_in(&app, ADA).await).await;
    let sid_before = {
        let (verifier, challenge) = pkce();
        let callback = authorize_through(&app, &browser, &app.authorize_url(&client, "openid", &challenge, &[]), None).await;
        let id = id_token(&app, &client, &client_secret, &callback, &verifier).await;
        assert_eq!(id["acr"], "urn:sluis:acr:1fa", "without acr_values the session serves as it is");
        id["sid"].clone()
    };

    let (verifier, challenge) = pkce();
    let url = app.authorize_url(&client, "openid", &challenge, &[("acr_values", TWO_FA)]);
    let response = browser.get(&url).await;
    assert_eq!(location(&response).as_deref(), Some("/login/second-factor"), "only the second factor is asked");
    let callback = authorize_through(&app, &browser, &url, Some(&secret)).await;
    let id = id_token(&app, &client, &client_secret, &callback, &verifier).await;
    assert_eq!(id["acr"], TWO_FA);
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(id["sid"], sid_before, "a step-up keeps the session");
    assert_eq!(id["auth_time"], now(&app));

    // max_age still forces a fresh sign-in, password and code.
    app.clock.advance(120);
    let (verifier, challenge) = pkce();
    let url = app.authorize_url(&client, "openid", &challenge, &[("max_age", "60")]);
    assert!(location(&browser.get(&url).await).unwrap().starts_with("/login?request_id="));
    let callback = authorize_through(&app, &browser, &url, Some(&secret)).await;
    let id = id_token(&app, &client, &client_secret, &callback, &verifier).await;
    assert_eq!(id["auth_time"], now(&app));
    assert_eq!(id["acr"], TWO_FA);
}

#[tokio::test]
async fn acr_values_without_a_factor_or_with_prompt_none_answer_with_an_error() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (client, client_secret) = app.client().await;
    let browser = signed_in(&app, ADA).await;
    let (_, challenge) = pkce();

    // Consent first, so prompt=none could otherwise succeed.
    authorize_through(&app, &browser, &app.authorize_url(&client, "openid", &challenge, &[]), None).await;

    // No second factor at all: the client's demand cannot be met.
    let callback = authorize_through(&app, &browser, &app.authorize_url(&client, "openid", &challenge, &[("acr_values", TWO_FA)]), None).await;
    assert_eq!(query_param(&callback, "error").as_deref(), Some("access_denied"), "{callback}");
    assert_eq!(query_param(&callback, "state").as_deref(), Some("st"));

    // prompt=none with a password-only session: interaction_required, with or without a factor.
    let silent = [("acr_values", TWO_FA), ("prompt", "none")];
    let callback = authorize_through(&app, &browser, &app.authorize_url(&client, "openid", &challenge, &silent), None).await;
    assert_eq!(query_param(&callback, "error").as_deref(), Some("interaction_required"), "{callback}");
    let (secret, _) = enrol(&app, &signed_in(&app, ADA).await).await;
    let callback = authorize_through(&app, &browser, &app.authorize_url(&client, "openid", &challenge, &silent), None).await;
    assert_eq!(query_param(&callback, "error").as_deref(), Some("interaction_required"), "{callback}");

    // A two-factor session passes silently; acr_values naming 1fa too asks for nothing more.
    let two = app.browser();
    authorize_through(&app, &two, &app.authorize_url(&client, "openid", &challenge, &[]), Some(&secret)).await;
    let (verifier, challenge2) = pkce();
    let callback = authorize_through(&app, &two, &app.authorize_url(&client, "openid", &challenge2, &silent), None).await;
    let id = id_token(&app, &client, &client_secret, &callback, &verifier).await;
    assert_eq!(id["acr"], TWO_FA);
    let either = [("acr_values", "urn:sluis:acr:1fa urn:sluis:acr:2fa"), ("prompt", "none")];
    let callback = authorize_through(&app, &browser, &app.authorize_url(&client, "openid", &challenge, &either), None).await;
    assert!(query_param(&callback, "code").is_some(), "{callback}");
}

#[tokio::test]
async fn changing_the_password_needs_a_recent_sign_in() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let browser = signed_in(&app, ADA).await;
    assert_eq!(browser.get("/account/password").await.status(), 200, "just signed in");

    app.clock.advance(901);
    let response = browser.get("/account/password").await;
    assert_eq!(location(&response).as_deref(), Some("/login/reauth?next=%2Faccount%2Fpassword"));
    let response = post_from(&browser, "/account/security", "/account/password", &[("new_password", "x"), ("confirm_password", "x")]).await;
    assert_eq!(location(&response).as_deref(), Some("/login/reauth?next=%2Faccount%2Fpassword"), "the form is refused too");

    let reauth = "/login/reauth?next=%2Faccount%2Fpassword";
    let response = post_from(&browser, reauth, "/login/reauth", &[("password", "wrong password"), ("next", "/account/password")]).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("The password is incorrect."));
    let response = post_from(&browser, reauth, "/login/reauth", &[("password", PASSWORD), ("next", "/account/password")]).await;
    assert_eq!(location(&response).as_deref(), Some("/account/password"));

    let new = "a brand new passphrase";
    let response = post_from(&browser, "/account/password", "/account/password", &[("new_password", new), ("confirm_password", "different")]).await;
    assert!(response.text().await.unwrap().contains("The two passwords differ."));
    let response = post_from(&browser, "/account/password", "/account/password", &[("new_password", "short"), ("confirm_password", "short")]).await;
    assert!(response.text().await.unwrap().contains("at least 8 characters"));
    let response = post_from(&browser, "/account/password", "/account/password", &[("new_password", new), ("confirm_password", new)]).await;
    assert_eq!(location(&response).as_deref(), Some("/account/security"));
    assert!(browser.get("/account/security").await.text().await.unwrap().contains("Your password was changed."));

    assert_eq!(password_step(&app.browser(), ADA, PASSWORD).await.as_deref(), None, "the old password fails");
    assert_eq!(password_step(&app.browser(), ADA, new).await.as_deref(), Some("/account"));

    // `next` stays on this site.
    let response = post_from(&browser, reauth, "/login/reauth", &[("password", new), ("next", "//evil.example/x")]).await;
    assert_eq!(location(&response).as_deref(), Some("/account"));
}

#[tokio::test]
async fn turning_off_two_factor_needs_password_and_code_when_stale() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let browser = signed_in(&app, ADA).await;
    let (secret, _) = enrol(&app, &browser).await;

    app.clock.advance(901);
    let response = post_from(&browser, "/account/security", "/account/security", &[("action", "disable")]).await;
    assert_eq!(location(&response).as_deref(), Some("/login/reauth?next=%2Faccount%2Fsecurity"));
    let response = post_from(&browser, "/account/security", "/account/security", &[("action", "regenerate")]).await;
    assert_eq!(location(&response).as_deref(), Some("/login/reauth?next=%2Faccount%2Fsecurity"));
    assert!(has_factor(&app, ADA).await);

    let reauth = "/login/reauth?next=%2Faccount%2Fsecurity";
    let response = post_from(&browser, reauth, "/login/reauth", &[("password", PASSWORD), ("next", "/account/security")]).await;
    assert_eq!(location(&response).as_deref(), Some("/login/second-factor"), "then the second factor");
    let response = second_factor(&browser, &code_at(&secret, now(&app))).await;
    assert_eq!(location(&response).as_deref(), Some("/account/security"));

    let response = post_from(&browser, "/account/security", "/account/security", &[("action", "disable")]).await;
    assert_eq!(location(&response).as_deref(), Some("/account/security"));
    assert!(!has_factor(&app, ADA).await);
    assert!(browser.get("/account/security").await.text().await.unwrap().contains("Two-factor authentication is off"));
    assert_eq!(password_step(&app.browser(), ADA, PASSWORD).await.as_deref(), Some("/account"));
}

async fn admin(app: &TestApp) {
    let spec = sluis::admin::NewUserSpec { email: "admin@example.com".into(), name: None, is_admin: true, password: PASSWORD.into() };
    sluis::admin::create_user(&app.state.store, &app.state.passwords, spec, now(app)).await.unwrap();
}

#[tokio::test]
async fn an_admin_without_two_factor_is_sent_to_set_it_up() {
    let app = TestApp::start().await;
    admin(&app).await;
    let browser = app.browser();
    assert_eq!(password_step(&browser, "admin@example.com", PASSWORD).await.as_deref(), Some("/account/security"));
    let html = browser.get("/account/security").await.text().await.unwrap();
    assert!(html.contains("Two-factor authentication is required for your account"), "{html}");
    for path in ["/admin", "/admin/clients"] {
        assert_eq!(location(&browser.get(path).await).as_deref(), Some("/account/security"), "{path}");
    }
    let api = browser.get("/api/admin/clients").await;
    assert_eq!(api.status(), 401);
    assert_eq!(api.json::<serde_json::Value>().await.unwrap()["error"], "insufficient_user_authentication");

    let (secret, _) = enrol(&app, &browser).await;
    assert_eq!(browser.get("/admin/clients").await.status(), 200, "the setup counts as the second factor");
    assert_eq!(browser.get("/api/admin/clients").await.status(), 200);

    // Admin pages are sensitive: after reauth_max_age, password and code again.
    app.clock.advance(901);
    assert_eq!(location(&browser.get("/admin/clients?status=unverified").await).as_deref(), Some("/login/reauth?next=%2Fadmin%2Fclients%3Fstatus%3Dunverified"));
    assert_eq!(browser.get("/api/admin/clients").await.status(), 401);
    let next = "/admin/clients?status=unverified";
    let response = post_from(&browser, "/login/reauth?next=%2Fadmin", "/login/reauth", &[("password", PASSWORD), ("next", next)]).await;
    assert_eq!(location(&response).as_deref(), Some("/login/second-factor"));
    let response = second_factor(&browser, &code_at(&secret, now(&app))).await;
    assert_eq!(location(&response).as_deref(), Some(next));
    assert_eq!(browser.get(next).await.status(), 200);

    // Without the policy an admin needs no second factor (but still a recent sign-in).
    let relaxed = TestApp::start_with(|c: &mut Config| c.require_2fa_for_admins = false).await;
    admin(&relaxed).await;
    let browser = relaxed.browser();
    assert_eq!(password_step(&browser, "admin@example.com", PASSWORD).await.as_deref(), Some("/account"));
    assert_eq!(browser.get("/admin/clients").await.status(), 200);
}

#[tokio::test]
async fn requiring_two_factor_for_all_leads_users_to_set_it_up_during_authorization() {
    let app = TestApp::start_with(|c: &mut Config| c.require_2fa_for_all = true).await;
    app.user(ADA).await;
    let (client, client_secret) = app.client().await;
    let browser = app.browser();
    let (verifier, challenge) = pkce();
    let url = app.authorize_url(&client, "openid", &challenge, &[]);
    let login = location(&browser.get(&url).await).unwrap();
    let html = browser.get(&login).await.text().await.unwrap();
    let response = browser.submit(&html, &[("email", ADA), ("password", PASSWORD)]).await;
    let resume = location(&response).unwrap();
    assert!(resume.starts_with("/authorize/resume"), "{resume}");
    assert_eq!(location(&browser.get(&resume).await).as_deref(), Some("/account/security"), "led to set up a factor");

    let (secret, _) = {
        let response = post_from(&browser, "/account/security", "/account/security", &[("action", "start")]).await;
        assert_eq!(response.status(), 303);
        let html = browser.get("/account/security").await.text().await.unwrap();
        let key = text_of(&html, "id=\"totp-key\"").unwrap().replace(' ', "");
        let secret = totp_rs::Secret::try_from_base32(key).unwrap().as_bytes().to_vec();
        let response = post_from(&browser, "/account/security", "/account/security", &[("action", "confirm"), ("code", &code_at(&secret, now(&app)))]).await;
        let html = response.text().await.unwrap();
        // The page offers to continue the waiting authorization.
        let continue_to = html[html.find("id=\"continue\" href=\"").expect("a continue link") + 20..].split('"').next().unwrap().replace("&amp;", "&");
        assert_eq!(continue_to, resume);
        (secret, recovery_codes(&html))
    };
    let callback = authorize_through(&app, &browser, &resume, Some(&secret)).await;
    let id = id_token(&app, &client, &client_secret, &callback, &verifier).await;
    assert_eq!(id["acr"], TWO_FA);
}

#[tokio::test]
async fn changing_the_password_signs_out_the_other_sessions() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let here = signed_in(&app, ADA).await;
    let elsewhere = signed_in(&app, ADA).await;
    assert_eq!(elsewhere.get("/account").await.status(), 200);

    let new = "a brand new passphrase";
    let response = post_from(&here, "/account/password", "/account/password", &[("new_password", new), ("confirm_password", new)]).await;
    assert_eq!(location(&response).as_deref(), Some("/account/security"));
    let page = here.get("/account/security").await.text().await.unwrap();
    assert!(page.contains("your other session was signed out"), "{page}");

    // The other browser is signed out; this one is not.
    let response = elsewhere.get("/account").await;
    assert_eq!(location(&response).as_deref(), Some("/login"), "the other session survived the password change");
    assert_eq!(here.get("/account").await.status(), 200);
}

/// The same proof through a real relying-party library (rust `openidconnect`): it builds
/// the requests, checks the ID token (signature against the JWKS, issuer, audience, nonce)
/// and reads `amr` and `acr` from it.
#[tokio::test]
async fn a_real_relying_party_sees_amr_and_acr_step_up_and_max_age() {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
    use openidconnect::{AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, RedirectUrl, TokenResponse};

    let app = TestApp::start().await;
    app.user(ADA).await;
    let (registered, client_secret) = app.client().await;
    let http = openidconnect::reqwest::ClientBuilder::new().redirect(openidconnect::reqwest::redirect::Policy::none()).build().unwrap();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http).await.expect("discovery");
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new(registered.id.to_string()), Some(ClientSecret::new(client_secret)))
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_string()).unwrap());
    let browser = app.browser();

    // One complete flow; returns (acr, amr, auth_time) from the verified ID token.
    let flow = |extra: Vec<(&'static str, String)>, secret: Option<Vec<u8>>| {
        let (client, http, browser, app) = (&client, &http, &browser, &app);
        async move {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            let mut request = client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random).set_pkce_challenge(challenge);
            for (name, value) in &extra {
                if *name == "acr_values" {
                    request = request.add_auth_context_value(AuthenticationContextClass::new(value.clone()));
                } else {
                    request = request.add_extra_param(*name, value.clone());
                }
            }
            let (url, _state, nonce) = request.url();
            let callback = authorize_through(app, browser, url.as_str(), secret.as_deref()).await;
            let code = query_param(&callback, "code").unwrap_or_else(|| panic!("no code: {callback}"));
            let tokens = client.exchange_code(AuthorizationCode::new(code)).unwrap().set_pkce_verifier(verifier).request_async(http).await.expect("code exchange");
            let claims = tokens.id_token().expect("an ID token").claims(&client.id_token_verifier(), &nonce).expect("a valid ID token").clone();
            let acr = claims.auth_context_ref().map(|a| a.to_string()).unwrap_or_default();
            let amr: Vec<String> = claims.auth_method_refs().map(|v| v.iter().map(|m| m.to_string()).collect()).unwrap_or_default();
            (acr, amr, claims.auth_time().map(|t| t.timestamp()))
        }
    };

    // Password only.
    let (acr, amr, first_auth) = flow(vec![], None).await;
    assert_eq!((acr.as_str(), amr.clone()), ("urn:sluis:acr:1fa", vec!["pwd".to_string()]));

    // The user sets up a second factor elsewhere; asking for two factors steps this session up.
    let (secret, _) = enrol(&app, &signed_in(&app, ADA).await).await;
    let (acr, amr, _) = flow(vec![("acr_values", TWO_FA.to_string())], Some(secret.clone())).await;
    assert_eq!(acr, TWO_FA);
    assert_eq!(amr, ["pwd", "otp", "mfa"]);

    // max_age=0 forces a fresh sign-in: a later auth_time.
    app.clock.advance(60);
    let (acr, _, auth_time) = flow(vec![("max_age", "0".to_string())], Some(secret)).await;
    assert_eq!(acr, TWO_FA, "a fresh sign-in with the factor");
    assert!(auth_time > first_auth, "{auth_time:?} after {first_auth:?}");
}
