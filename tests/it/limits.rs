//! Rate limits (429 with Retry-After) and the client IP behind trusted proxies.

use crate::support::*;

async fn post_login(app: &TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app.http().post(app.url("/login")).form(&[("email", "ada@example.com"), ("password", "wrong")]);
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers().get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_ip() {
    let app = TestApp::start_with(|c| c.rate_limit_login_per_minute = 3).await;
    for _ in 0..3 {
        // No CSRF token: refused, but counted.
        assert_eq!(post_login(&app, None).await.status(), 403);
    }
    let limited = post_login(&app, None).await;
    assert_eq!(limited.status(), 429);
    let wait = retry_after(&limited);
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(limited.text().await.unwrap().contains("Too many attempts"));
    // Pages other than the sign-in POST are not affected.
    assert_eq!(app.http().get(app.url("/login")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_token_endpoint_answers_429_with_json_when_flooded() {
    let app = TestApp::start_with(|c| c.rate_limit_token_per_second = 2).await;
    let (client, secret) = app.client().await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = app.token(&client, Some(&secret), &[("grant_type", "client_credentials")]).await;
        if response.status() == 429 {
            assert!(retry_after(&response) >= 1);
            assert_eq!(response.headers()["cache-control"], "no-store");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert!(statuses.contains(&200) && statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    // Behind a trusted proxy, each forwarded client has its own budget.
    let app = TestApp::start_with(|c| {
        c.rate_limit_login_per_minute = 2;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for _ in 0..2 {
        assert_eq!(post_login(&app, Some("203.0.113.5")).await.status(), 403);
    }
    assert_eq!(post_login(&app, Some("203.0.113.5")).await.status(), 429);
    assert_eq!(post_login(&app, Some("198.51.100.9")).await.status(), 403, "another client behind the proxy");

    // Without trusting the proxy, the header is ignored: everyone is the peer.
    let app = TestApp::start_with(|c| c.rate_limit_login_per_minute = 2).await;
    for _ in 0..2 {
        assert_eq!(post_login(&app, Some("203.0.113.5")).await.status(), 403);
    }
    assert_eq!(post_login(&app, Some("198.51.100.9")).await.status(), 429, "a forged header must not buy a new budget");
}

#[tokio::test]
async fn zero_turns_a_limit_off() {
    let app = TestApp::start_with(|c| c.rate_limit_login_per_minute = 0).await;
    for _ in 0..40 {
        assert_eq!(post_login(&app, None).await.status(), 403);
    }
}
