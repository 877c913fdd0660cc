//! The pages a person sees: security headers, the session cookie, sign-in behaviour.

use crate::support::*;

const EMAIL: &str = "ada@example.com";

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap().to_string()
}

/// The headers every page of ours must carry.
fn assert_security_headers(response: &reqwest::Response, what: &str) {
    let csp = header(response, "content-security-policy");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'none'") || csp.contains("default-src 'self'"), "{what}: {csp}");
    assert_eq!(header(response, "x-content-type-options"), "nosniff", "{what}");
    let referrer = header(response, "referrer-policy");
    // Our URLs carry request ids and codes: never leak them to other sites.
    assert!(["no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"].contains(&referrer.as_str()), "{what}: {referrer}");
}

/// The session cookie's `name=value` and attributes from a response, if it sets one.
fn session_cookie(response: &reqwest::Response) -> Option<(String, String)> {
    response.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().unwrap();
        let (pair, attributes) = v.split_once(';').unwrap_or((v, ""));
        pair.contains("session").then(|| (pair.trim().to_string(), attributes.to_string()))
    })
}

async fn login_page(browser: &Browser) -> (reqwest::Response, String) {
    let response = browser.get("/login").await;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response).map(|c| c.0).expect("the login page starts a session for its CSRF token");
    (response, cookie)
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, _) = app.client().await;
    let browser = app.browser();
    let (login, _) = login_page(&browser).await;
    assert_security_headers(&login, "login page");
    assert!(header(&login, "content-type").starts_with("text/html"));
    assert_security_headers(&browser.get("/no/such/page").await, "404 page");
    assert_security_headers(&browser.get("/authorize").await, "authorize error page");
    assert_security_headers(&browser.get("/logout").await, "logout page");

    // The consent page, reached by signing in for a client.
    let (_, challenge) = pkce();
    let mut response = browser.get(&app.authorize_url(&client, "openid", &challenge, &[])).await;
    let page = browser.get(&location(&response).unwrap()).await.text().await.unwrap();
    response = browser.submit(&page, &[("email", EMAIL), ("password", PASSWORD)]).await;
    response = browser.get(&location(&response).unwrap()).await;
    let consent = browser.get(&location(&response).unwrap()).await;
    assert_eq!(consent.status(), 200);
    assert_security_headers(&consent, "consent page");
    let account = browser.get("/account").await;
    assert_eq!(account.status(), 200);
    assert_security_headers(&account, "account page");
}

#[tokio::test]
async fn session_cookie_is_http_only_and_same_site_lax() {
    let app = TestApp::start().await;
    let browser = app.browser();
    let response = browser.get("/login").await;
    let (pair, attributes) = session_cookie(&response).expect("session cookie");
    let attributes = attributes.to_ascii_lowercase();
    assert!(attributes.contains("httponly"), "{pair}; {attributes}");
    assert!(attributes.contains("samesite=lax"), "{pair}; {attributes}");
    assert!(attributes.contains("path=/"), "{pair}; {attributes}");
    // The value is a random id, not data.
    let value = pair.split_once('=').unwrap().1;
    assert!(value.len() >= 16, "{value}");
    assert!(!value.contains(EMAIL) && !value.contains("csrf"), "{value}");
}

#[tokio::test]
async fn with_an_https_issuer_the_cookie_is_secure_and_host_prefixed() {
    // Served over plain http here, but configured as an https issuer (behind a TLS proxy).
    let app = TestApp::start_with(|c| c.issuer = c.issuer.replace("http://127.0.0.1", "https://localhost")).await;
    let response = app.browser().get("/login").await;
    let (pair, attributes) = session_cookie(&response).expect("session cookie");
    assert!(pair.starts_with("__Host-"), "{pair}");
    let attributes = attributes.to_ascii_lowercase();
    assert!(attributes.contains("secure"), "{attributes}");
    assert!(attributes.contains("path=/"), "{attributes}");
    assert!(!attributes.contains("domain="), "__Host- cookies must not name a domain: {attributes}");
    let plain = TestApp::start().await.browser().get("/login").await;
    let (_, attributes) = session_cookie(&plain).expect("session cookie");
    assert!(!attributes.to_ascii_lowercase().contains("secure"), "{attributes}");
}

#[tokio::test]
async fn session_id_changes_at_login_and_the_old_one_is_dead() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let browser = app.browser();
    let (_, before) = login_page(&browser).await;
    let html = browser.get("/login").await.text().await.unwrap();
    let signed_in = browser.submit(&html, &[("email", EMAIL), ("password", PASSWORD)]).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(location(&signed_in).as_deref(), Some("/account"));
    let (after, attributes) = session_cookie(&signed_in).expect("a new session cookie at login");
    assert!(attributes.to_ascii_lowercase().contains("httponly"));
    assert_ne!(before, after, "session fixation: the session id did not change at login");
    assert_eq!(browser.get("/account").await.status(), 200);

    // Someone holding the pre-login cookie (a fixation attacker) is not signed in.
    let old = app.http().get(app.url("/account")).header("cookie", &before).send().await.unwrap();
    assert_eq!(old.status(), 303);
    assert_eq!(location(&old).as_deref(), Some("/login"));
    let new = app.http().get(app.url("/account")).header("cookie", &after).send().await.unwrap();
    assert_eq!(new.status(), 200);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let mut messages = Vec::new();
    for (email, password) in [("nobody@example.com", PASSWORD), (EMAIL, "wrong password!")] {
        let browser = app.browser();
        let html = browser.get("/login").await.text().await.unwrap();
        let response = browser.submit(&html, &[("email", email), ("password", password)]).await;
        assert_eq!(response.status(), 200, "{email}");
        assert!(location(&response).is_none());
        let page = response.text().await.unwrap();
        let start = page.find("role=\"alert\">").unwrap_or_else(|| panic!("no error shown: {page}"));
        let message = page[start..page[start..].find("</p>").unwrap() + start].to_string();
        messages.push(message);
        // Still not signed in.
        assert_eq!(browser.get("/account").await.status(), 303);
    }
    assert_eq!(messages[0], messages[1], "the answer tells whether an account exists");
}

#[tokio::test]
async fn login_post_without_csrf_token_is_forbidden() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let browser = app.browser();
    let _ = login_page(&browser).await;
    for fields in [
        vec![("email", EMAIL), ("password", PASSWORD)],
        vec![("email", EMAIL), ("password", PASSWORD), ("csrf_token", "guess")],
    ] {
        let response = browser.http.post(app.url("/login")).form(&fields).send().await.unwrap();
        assert_eq!(response.status(), 403);
        assert!(location(&response).is_none());
        assert_security_headers(&response, "403 page");
    }
    // And without any session at all.
    let response = app.http().post(app.url("/login")).form(&[("email", EMAIL), ("password", PASSWORD)]).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(browser.get("/account").await.status(), 303, "signed in despite the CSRF failure");
}

#[tokio::test]
async fn unknown_path_is_a_404_page() {
    let app = TestApp::start().await;
    for path in ["/no/such/page", "/.well-known/nothing", "/oauth2/token"] {
        let response = app.http().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(header(&response, "content-type").starts_with("text/html"), "{path}");
        assert_security_headers(&response, path);
        let html = response.text().await.unwrap();
        assert!(html.contains("Not found"), "{html}");
    }
}

#[tokio::test]
async fn wrong_method_is_not_a_server_error() {
    let app = TestApp::start().await;
    let http = app.http();
    let token = http.get(app.url("/token")).send().await.unwrap();
    assert_eq!(token.status(), 405);
    let jwks = http.post(app.url("/jwks")).send().await.unwrap();
    assert_eq!(jwks.status(), 405);
}

#[tokio::test]
async fn the_login_page_escapes_what_was_typed() {
    let app = TestApp::start().await;
    let browser = app.browser();
    let html = browser.get("/login").await.text().await.unwrap();
    let typed = "\"><script>alert(1)</script>@example.com";
    let response = browser.submit(&html, &[("email", typed), ("password", "whatever it is")]).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(!page.contains("<script>alert(1)"), "{page}");
}
