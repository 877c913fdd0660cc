//! The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2, RFC 7636,
//! RFC 8252, RFC 9207, RFC 9700): untrusted requests get a page, trusted ones a redirect.

use sluis::clock::Clock;
use url::Url;

use crate::support::*;

/// An authorization URL with exactly these parameters, in this order.
fn url_with(app: &TestApp, pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.to_string()
}

/// The parameters of a good request for `client`, to be varied by a test.
fn good(client_id: &str, challenge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", client_id.into()),
        ("redirect_uri", REDIRECT_URI.into()),
        ("scope", "openid email".into()),
        ("state", "st".into()),
        ("nonce", "n".into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

fn with(mut params: Vec<(&'static str, String)>, name: &'static str, value: Option<&str>) -> Vec<(&'static str, String)> {
    params.retain(|(n, _)| *n != name);
    if let Some(v) = value {
        params.push((name, v.to_string()));
    }
    params
}

fn url_of(app: &TestApp, params: &[(&'static str, String)]) -> String {
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    url_with(app, &pairs)
}

/// RFC 6749 §4.1.2.1: an untrusted client or redirect URI gets a readable page, never a redirect.
async fn assert_error_page(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 400, "{what}");
    assert!(response.headers().get("location").is_none(), "{what}: must not redirect");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/html"), "{what}: {content_type}");
    let html = response.text().await.unwrap();
    assert!(html.contains("<h1>"), "{what}: {html}");
}

/// The redirect back to the client, asserting it went to REDIRECT_URI with state and iss.
fn client_redirect(app: &TestApp, response: &reqwest::Response) -> Url {
    assert_eq!(response.status(), 303, "expected a redirect to the client");
    let location = location(response).expect("Location");
    assert!(location.starts_with(&format!("{REDIRECT_URI}?")), "{location}");
    let url = Url::parse(&location).unwrap();
    assert_eq!(query_param(&url, "state").as_deref(), Some("st"), "{location}");
    // RFC 9207 §2: iss on every authorization response, errors included.
    assert_eq!(query_param(&url, "iss").as_deref(), Some(app.base.as_str()), "{location}");
    url
}

fn assert_error_redirect(app: &TestApp, response: &reqwest::Response, error: &str) {
    let url = client_redirect(app, response);
    assert_eq!(query_param(&url, "error").as_deref(), Some(error), "{url}");
    assert!(query_param(&url, "code").is_none(), "{url}");
}

/// A browser signed in as ada@example.com that consented to `scope` for `client`.
async fn signed_in(app: &TestApp, client: &sluis::model::Client, scope: &str) -> Browser {
    let (_, challenge) = pkce();
    let browser = app.browser();
    let callback = browser.sign_in_and_consent(&app.authorize_url(client, scope, &challenge, &[]), "ada@example.com", PASSWORD).await;
    assert!(query_param(&callback, "code").is_some());
    browser
}

fn is_login_redirect(response: &reqwest::Response) -> bool {
    response.status() == 303 && location(response).is_some_and(|l| l.starts_with("/login?request_id="))
}

#[tokio::test]
async fn unknown_or_missing_client_id_shows_a_page() {
    let app = TestApp::start().await;
    let (_, challenge) = pkce();
    let http = app.http();
    let unknown = good("no-such-client", &challenge);
    assert_error_page(http.get(url_of(&app, &unknown)).send().await.unwrap(), "unknown client_id").await;
    let missing = with(good("x", &challenge), "client_id", None);
    assert_error_page(http.get(url_of(&app, &missing)).send().await.unwrap(), "missing client_id").await;
}

#[tokio::test]
async fn unregistered_or_modified_redirect_uri_shows_a_page() {
    let app = TestApp::start().await;
    let (client, _) = app.client().await;
    let (_, challenge) = pkce();
    let http = app.http();
    let base = good(client.id.as_str(), &challenge);
    assert_error_page(http.get(url_of(&app, &with(base.clone(), "redirect_uri", None))).send().await.unwrap(), "missing redirect_uri").await;
    for bad in [
        "https://evil.example/cb",
        "http://127.0.0.1:9/cb/",
        "http://127.0.0.1:9/cbx",
        "http://127.0.0.1:9/c",
        "http://127.0.0.1:9/cb?x=1",
        "http://127.0.0.1:9/cb#frag",
        "http://127.0.0.1:9/CB",
        "https://127.0.0.1:9/cb",
        "http://localhost:9/cb",
        "http://127.0.0.1:9/cb/../cb",
        "http://127.0.0.1:9/other",
        "http://127.0.0.1:9",
    ] {
        // Even an otherwise broken request must not redirect to an untrusted URI.
        let params = with(with(base.clone(), "redirect_uri", Some(bad)), "response_type", Some("token"));
        assert_error_page(http.get(url_of(&app, &params)).send().await.unwrap(), bad).await;
    }
}

#[tokio::test]
async fn response_type_errors_redirect_with_state_and_iss() {
    let app = TestApp::start().await;
    let (client, _) = app.client().await;
    let (_, challenge) = pkce();
    let http = app.http();
    let base = good(client.id.as_str(), &challenge);
    let missing = http.get(url_of(&app, &with(base.clone(), "response_type", None))).send().await.unwrap();
    assert_error_redirect(&app, &missing, "invalid_request");
    for unsupported in ["token", "id_token", "code id_token", "code token"] {
        let response = http.get(url_of(&app, &with(base.clone(), "response_type", Some(unsupported)))).send().await.unwrap();
        assert_error_redirect(&app, &response, "unsupported_response_type");
    }
}

#[tokio::test]
async fn public_client_without_pkce_is_refused() {
    let app = TestApp::start().await;
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let params = with(with(good(client.id.as_str(), &challenge), "code_challenge", None), "code_challenge_method", None);
    let response = app.http().get(url_of(&app, &params)).send().await.unwrap();
    assert_error_redirect(&app, &response, "invalid_request");
}

#[tokio::test]
async fn plain_or_missing_code_challenge_method_is_refused() {
    let app = TestApp::start().await;
    let (client, _) = app.client().await;
    let (verifier, challenge) = pkce();
    let http = app.http();
    let base = good(client.id.as_str(), &challenge);
    // RFC 9700 §2.1.1: only S256; `plain` (also the default when the method is absent) is refused.
    let plain = with(with(base.clone(), "code_challenge", Some(&verifier)), "code_challenge_method", Some("plain"));
    assert_error_redirect(&app, &http.get(url_of(&app, &plain)).send().await.unwrap(), "invalid_request");
    let implicit_plain = with(base.clone(), "code_challenge_method", None);
    assert_error_redirect(&app, &http.get(url_of(&app, &implicit_plain)).send().await.unwrap(), "invalid_request");
    let malformed = with(base, "code_challenge", Some("too-short"));
    assert_error_redirect(&app, &http.get(url_of(&app, &malformed)).send().await.unwrap(), "invalid_request");
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let app = TestApp::start().await;
    let (client, _) = app.client().await;
    let (_, challenge) = pkce();
    let params = with(good(client.id.as_str(), &challenge), "prompt", Some("none"));
    let response = app.browser().get(&url_of(&app, &params)).await;
    assert_error_redirect(&app, &response, "login_required");
}

#[tokio::test]
async fn prompt_none_signed_in_without_consent_is_consent_required() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (first, _) = app.client().await;
    let (second, _) = app.client().await;
    let browser = signed_in(&app, &first, "openid email").await;
    let (_, challenge) = pkce();
    // Signed in, but never consented to the second client.
    let params = with(good(second.id.as_str(), &challenge), "prompt", Some("none"));
    let response = browser.get(&url_of(&app, &params)).await;
    assert_error_redirect(&app, &response, "consent_required");
    // Asking for more than was consented to is the same for the first client.
    let params = with(with(good(first.id.as_str(), &challenge), "prompt", Some("none")), "scope", Some("openid email profile"));
    assert_error_redirect(&app, &browser.get(&url_of(&app, &params)).await, "consent_required");
}

#[tokio::test]
async fn prompt_none_signed_in_with_consent_issues_a_code_silently() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let browser = signed_in(&app, &client, "openid email").await;
    let (verifier, challenge) = pkce();
    let params = with(good(client.id.as_str(), &challenge), "prompt", Some("none"));
    let response = browser.get(&url_of(&app, &params)).await;
    let callback = client_redirect(&app, &response);
    assert!(query_param(&callback, "error").is_none(), "{callback}");
    let code = query_param(&callback, "code").expect("code");
    app.exchange(&client, &secret, &code, &verifier).await;
}

#[tokio::test]
async fn bad_max_age_prompt_and_request_objects_redirect_with_errors() {
    let app = TestApp::start().await;
    let (client, _) = app.client().await;
    let (_, challenge) = pkce();
    let http = app.http();
    let base = good(client.id.as_str(), &challenge);
    for (name, value, error) in [
        ("max_age", "abc", "invalid_request"),
        ("max_age", "-1", "invalid_request"),
        ("max_age", "1.5", "invalid_request"),
        ("prompt", "none login", "invalid_request"),
        ("prompt", "sometimes", "invalid_request"),
        ("response_mode", "fragment", "invalid_request"),
        // OpenID Connect Core §6: request objects are not supported, said with the spec's codes.
        ("request", "eyJhbGciOiJub25lIn0.e30.", "request_not_supported"),
        ("request_uri", "https://app.example/request.jwt", "request_uri_not_supported"),
        ("scope", "phone", "invalid_scope"),
    ] {
        let response = http.get(url_of(&app, &with(base.clone(), name, Some(value)))).send().await.unwrap();
        let url = client_redirect(&app, &response);
        assert_eq!(query_param(&url, "error").as_deref(), Some(error), "{name}={value}: {url}");
    }
    let no_scope = http.get(url_of(&app, &with(base, "scope", None))).send().await.unwrap();
    assert_error_redirect(&app, &no_scope, "invalid_scope");
}

#[tokio::test]
async fn repeated_parameters_are_refused_with_a_page() {
    let app = TestApp::start().await;
    let (client, _) = app.client().await;
    let (_, challenge) = pkce();
    let http = app.http();
    let mut base = good(client.id.as_str(), &challenge);
    for name in ["client_id", "redirect_uri", "state", "scope", "code_challenge"] {
        let value = base.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        base.push((name, value));
        // RFC 6749 §3.1: parameters must not be included more than once.
        let response = http.get(url_of(&app, &base)).send().await.unwrap();
        assert_error_page(response, &format!("repeated {name}")).await;
        base.pop();
    }
    // POST to the authorization endpoint follows the same rules.
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    body.extend_pairs(base.iter().map(|(k, v)| (*k, v.as_str())));
    body.append_pair("state", "again");
    let response = http
        .post(app.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.finish())
        .send()
        .await
        .unwrap();
    assert_error_page(response, "repeated state in POST").await;
}

#[tokio::test]
async fn invalid_utf8_and_giant_values_are_refused_never_500() {
    let app = TestApp::start().await;
    let (client, _) = app.client().await;
    let (_, challenge) = pkce();
    let http = app.http();
    let good_query = url_of(&app, &good(client.id.as_str(), &challenge));
    for raw in ["&state=%FF", "&nonce=%C3%28", "&%FF=x", "&state=%E2%82"] {
        let response = http.get(format!("{good_query}{raw}")).send().await.unwrap();
        assert_error_page(response, raw).await;
    }
    let giant = "x".repeat(9 * 1024);
    let response = http.get(url_of(&app, &with(good(client.id.as_str(), &challenge), "state", Some(&giant)))).send().await.unwrap();
    assert_error_page(response, "9 KiB state").await;
    let response = http.get(url_of(&app, &with(good(client.id.as_str(), &challenge), "client_id", Some(&giant)))).send().await.unwrap();
    assert_error_page(response, "9 KiB client_id").await;
}

#[tokio::test]
async fn success_redirects_with_code_state_and_iss() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let (verifier, challenge) = pkce();
    let callback = app
        .browser()
        .sign_in_and_consent(&app.authorize_url(&client, "openid", &challenge, &[]), "ada@example.com", PASSWORD)
        .await;
    assert!(callback.as_str().starts_with(&format!("{REDIRECT_URI}?")), "{callback}");
    assert_eq!(query_param(&callback, "state").as_deref(), Some("st"));
    assert_eq!(query_param(&callback, "iss").as_deref(), Some(app.base.as_str()));
    assert!(query_param(&callback, "error").is_none());
    let code = query_param(&callback, "code").unwrap();
    assert!(code.len() >= 32, "code is too guessable: {code}");
    app.exchange(&client, &secret, &code, &verifier).await;
}

#[tokio::test]
async fn form_post_posts_code_state_and_iss_to_the_client() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let browser = signed_in(&app, &client, "openid email").await;
    let (verifier, challenge) = pkce();
    let params = with(good(client.id.as_str(), &challenge), "response_mode", Some("form_post"));
    let response = browser.get(&url_of(&app, &params)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("location").is_none());
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(response.headers()["cache-control"], "no-store");
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert!(csp.contains("form-action http://127.0.0.1:9"), "the form must be allowed to post to the client: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script>"), "inline script: {html}");
    assert!(html.contains("method=\"post\""), "{html}");
    let (action, fields) = form(&html).expect("a form");
    assert_eq!(action, REDIRECT_URI);
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(field("state").as_deref(), Some("st"));
    assert_eq!(field("iss").as_deref(), Some(app.base.as_str()));
    let code = field("code").expect("code field");
    app.exchange(&client, &secret, &code, &verifier).await;
}

#[tokio::test]
async fn form_post_carries_errors_too() {
    let app = TestApp::start().await;
    let (client, _) = app.client().await;
    let (_, challenge) = pkce();
    let params = with(with(good(client.id.as_str(), &challenge), "response_mode", Some("form_post")), "prompt", Some("none"));
    let response = app.browser().get(&url_of(&app, &params)).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let (action, fields) = form(&html).expect("a form");
    assert_eq!(action, REDIRECT_URI);
    assert!(fields.contains(&("error".into(), "login_required".into())), "{fields:?}");
    assert!(fields.contains(&("state".into(), "st".into())), "{fields:?}");
    assert!(fields.contains(&("iss".into(), app.base.clone())), "{fields:?}");
}

#[tokio::test]
async fn signed_in_and_consented_gets_a_code_without_pages() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, _) = app.client().await;
    let browser = signed_in(&app, &client, "openid email").await;
    let (_, challenge) = pkce();
    let response = browser.get(&url_of(&app, &good(client.id.as_str(), &challenge))).await;
    let callback = client_redirect(&app, &response);
    assert!(query_param(&callback, "code").is_some(), "{callback}");
}

#[tokio::test]
async fn prompt_login_forces_the_login_page_for_a_signed_in_user() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let browser = signed_in(&app, &client, "openid email").await;
    let (verifier, challenge) = pkce();
    // No time passes: the user signed in this very second, and must still sign in again.
    let url = url_of(&app, &with(good(client.id.as_str(), &challenge), "prompt", Some("login")));
    let response = browser.get(&url).await;
    assert!(is_login_redirect(&response), "prompt=login did not ask to sign in: {:?} {:?}", response.status(), location(&response));

    // Signing in again completes the request (no consent page: consent was given before).
    app.clock.advance(5);
    let callback = browser.sign_in_and_consent(&url, "ada@example.com", PASSWORD).await;
    let code = query_param(&callback, "code").expect("code after re-login");
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["auth_time"], app.clock.now(), "auth_time must be the new sign-in");
}

#[tokio::test]
async fn a_sign_in_for_one_prompt_login_request_counts_for_that_request_only() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let browser = signed_in(&app, &client, "openid email").await;
    let (verifier, challenge) = pkce();
    // The clock stands still throughout: only what the sign-in was for can tell.
    let first = url_of(&app, &with(good(client.id.as_str(), &challenge), "prompt", Some("login")));
    let response = browser.get(&first).await;
    assert!(is_login_redirect(&response), "prompt=login did not ask to sign in: {:?} {:?}", response.status(), location(&response));
    let page = browser.get(&location(&response).unwrap()).await.text().await.unwrap();
    let after = browser.submit(&page, &[("email", "ada@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(after.status(), 303);
    let resumed = browser.get(&location(&after).unwrap()).await;
    let code = query_param(&client_redirect(&app, &resumed), "code").expect("a code for the request signed in for, in the same second");
    assert!(app.exchange(&client, &secret, &code, &verifier).await["id_token"].is_string());

    // A second prompt=login request, still in that second, asks again.
    let (_, challenge) = pkce();
    let second = url_of(&app, &with(good(client.id.as_str(), &challenge), "prompt", Some("login")));
    let response = browser.get(&second).await;
    assert!(is_login_redirect(&response), "a sign-in for another request counted: {:?} {:?}", response.status(), location(&response));
}

#[tokio::test]
async fn max_age_zero_forces_a_new_login() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let browser = signed_in(&app, &client, "openid email").await;
    let (verifier, challenge) = pkce();
    // OpenID Connect Core §3.1.2.1: max_age=0 is equivalent to prompt=login.
    let url = url_of(&app, &with(good(client.id.as_str(), &challenge), "max_age", Some("0")));
    let response = browser.get(&url).await;
    assert!(is_login_redirect(&response), "max_age=0 did not ask to sign in: {:?} {:?}", response.status(), location(&response));
    // Completing the sign-in must not loop back to the login page, even if a second passes.
    let login = location(&response).unwrap();
    let page = browser.get(&login).await.text().await.unwrap();
    let after = browser.submit(&page, &[("email", "ada@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(after.status(), 303);
    app.clock.advance(1);
    let resumed = browser.get(&location(&after).unwrap()).await;
    let callback = client_redirect(&app, &resumed);
    let code = query_param(&callback, "code").expect("code after re-login");
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    assert!(jwt_claims(tokens["id_token"].as_str().unwrap())["auth_time"].is_i64());
}

#[tokio::test]
async fn max_age_is_honoured() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, _) = app.client().await;
    let browser = signed_in(&app, &client, "openid email").await;
    let (_, challenge) = pkce();
    app.clock.advance(100);
    let fresh = browser.get(&url_of(&app, &with(good(client.id.as_str(), &challenge), "max_age", Some("300")))).await;
    assert!(query_param(&client_redirect(&app, &fresh), "code").is_some());
    let stale = browser.get(&url_of(&app, &with(good(client.id.as_str(), &challenge), "max_age", Some("60")))).await;
    assert!(is_login_redirect(&stale), "{:?}", location(&stale));
    // Silently, too old a sign-in is login_required.
    let silent = with(with(good(client.id.as_str(), &challenge), "max_age", Some("60")), "prompt", Some("none"));
    assert_error_redirect(&app, &browser.get(&url_of(&app, &silent)).await, "login_required");
}

#[tokio::test]
async fn prompt_consent_asks_again() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, _) = app.client().await;
    let browser = signed_in(&app, &client, "openid email").await;
    let (_, challenge) = pkce();
    let url = url_of(&app, &with(good(client.id.as_str(), &challenge), "prompt", Some("consent")));
    let response = browser.get(&url).await;
    assert_eq!(response.status(), 303);
    let consent = location(&response).unwrap();
    assert!(consent.starts_with("/consent?request_id="), "{consent}");
    let page = browser.get(&consent).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"decision\""), "{html}");
    assert!(html.contains("data-scope=\"email\""), "{html}");
    // Allowing it ends in a code, not another consent page.
    let allowed = browser.submit(&html, &[("decision", "allow")]).await;
    let resumed = browser.get(&location(&allowed).unwrap()).await;
    assert!(query_param(&client_redirect(&app, &resumed), "code").is_some());
}

#[tokio::test]
async fn deny_on_the_consent_page_is_access_denied() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, _) = app.client().await;
    let browser = app.browser();
    let (_, challenge) = pkce();
    let mut response = browser.get(&url_of(&app, &good(client.id.as_str(), &challenge))).await;
    assert!(is_login_redirect(&response));
    let login = browser.get(&location(&response).unwrap()).await.text().await.unwrap();
    response = browser.submit(&login, &[("email", "ada@example.com"), ("password", PASSWORD)]).await;
    response = browser.get(&location(&response).unwrap()).await;
    let consent = location(&response).unwrap();
    assert!(consent.starts_with("/consent?"), "{consent}");
    let html = browser.get(&consent).await.text().await.unwrap();
    let denied = browser.submit(&html, &[("decision", "deny")]).await;
    assert_error_redirect(&app, &denied, "access_denied");
    // The pending request is gone: allowing afterwards cannot revive it.
    let again = browser.submit(&html, &[("decision", "allow")]).await;
    assert_eq!(again.status(), 400);
    assert!(location(&again).is_none());
}

#[tokio::test]
async fn consent_post_without_csrf_token_is_forbidden() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, _) = app.client().await;
    let browser = signed_in(&app, &client, "openid").await;
    let (_, challenge) = pkce();
    let response = browser.get(&url_of(&app, &with(good(client.id.as_str(), &challenge), "prompt", Some("consent")))).await;
    let html = browser.get(&location(&response).unwrap()).await.text().await.unwrap();
    let (_, fields) = form(&html).unwrap();
    let request_id = fields.iter().find(|(n, _)| n == "request_id").unwrap().1.clone();
    let forged = browser
        .http
        .post(app.url("/consent"))
        .form(&[("request_id", request_id.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(location(&forged).is_none());
}

#[tokio::test]
async fn loopback_redirect_uri_may_use_another_port() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let (verifier, challenge) = pkce();
    // RFC 8252 §7.3: native apps listen on an ephemeral port of the loopback interface.
    let native = "http://127.0.0.1:54321/cb";
    let url = url_of(&app, &with(good(client.id.as_str(), &challenge), "redirect_uri", Some(native)));
    let callback = app.browser().sign_in_and_consent(&url, "ada@example.com", PASSWORD).await;
    assert!(callback.as_str().starts_with(&format!("{native}?")), "{callback}");
    assert_eq!(query_param(&callback, "iss").as_deref(), Some(app.base.as_str()));
    let code = query_param(&callback, "code").unwrap();
    // The token request must repeat the port actually used.
    let wrong = app
        .token(&client, Some(&secret), &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT_URI), ("code_verifier", &verifier)])
        .await;
    assert_eq!(wrong.status(), 400);
    let (code, verifier) = {
        let (verifier, challenge) = pkce();
        let url = url_of(&app, &with(good(client.id.as_str(), &challenge), "redirect_uri", Some(native)));
        let callback = app.browser().sign_in_and_consent(&url, "ada@example.com", PASSWORD).await;
        (query_param(&callback, "code").unwrap(), verifier)
    };
    let ok = app
        .token(&client, Some(&secret), &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", native), ("code_verifier", &verifier)])
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn unknown_pending_request_shows_a_page() {
    let app = TestApp::start().await;
    let response = app.browser().get("/authorize/resume?request_id=nope").await;
    assert_eq!(response.status(), 400);
    assert!(location(&response).is_none());
}

#[tokio::test]
async fn a_pending_request_expires() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, _) = app.client().await;
    let browser = app.browser();
    let (_, challenge) = pkce();
    let response = browser.get(&url_of(&app, &good(client.id.as_str(), &challenge))).await;
    let login = location(&response).unwrap();
    let html = browser.get(&login).await.text().await.unwrap();
    // Half an hour at the login page is too long.
    app.clock.advance(31 * 60);
    let after = browser.submit(&html, &[("email", "ada@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(after.status(), 400);
    assert!(location(&after).is_none());
}

#[tokio::test]
async fn error_redirect_keeps_the_registered_query() {
    let app = TestApp::start().await;
    let with_query = "https://app.example/cb?tenant=1";
    let (client, _) = app.client_with(|s| s.redirect_uris = vec![with_query.into()]).await;
    let (_, challenge) = pkce();
    let params = with(with(good(client.id.as_str(), &challenge), "redirect_uri", Some(with_query)), "prompt", Some("none"));
    let response = app.http().get(url_of(&app, &params)).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let url = Url::parse(&location(&response).unwrap()).unwrap();
    assert_eq!((url.host_str(), url.path()), (Some("app.example"), "/cb"));
    // RFC 6749 §3.1.2: the registered query component is retained.
    assert_eq!(query_param(&url, "tenant").as_deref(), Some("1"));
    assert_eq!(query_param(&url, "error").as_deref(), Some("login_required"));
    assert_eq!(query_param(&url, "iss").as_deref(), Some(app.base.as_str()));
}

#[tokio::test]
async fn error_pages_escape_what_the_request_said() {
    let app = TestApp::start().await;
    let response = app.http().get(app.url("/authorize?%3Cscript%3E=1&%3Cscript%3E=2")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
}
