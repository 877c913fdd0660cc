//! Sign-in through upstream providers, against a real OpenID provider: node `oidc-provider`
//! (tests/upstream/node/provider.mjs), one process for the whole test binary, serving a
//! Google-like issuer, a Microsoft-shaped one (multi-tenant discovery with a `{tenantid}`
//! issuer, tokens with the tenant's issuer and `tid`) and clients whose ID tokens it tampers
//! with. Most flows are driven over HTTP; one runs in a real Chromium.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::json;
use sluis::config::{Config, Registration, UpstreamConfig, UpstreamKind};
use sluis::store::LoginEventFilter;
use url::Url;

use crate::support::*;

const NODE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/upstream/node");
const TENANT: &str = "6d4c5a8e-0d5f-4e0c-9a43-1f2b3c4d5e6f";
const OTHER_TENANT: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const TAMPERED: [&str; 3] = ["tamper-nonce", "tamper-aud", "tamper-sig"];

/// The provider process, shared: it exits when its stdin closes, i.e. with this process.
pub(crate) struct Idp {
    pub(crate) base: String,
    _process: Mutex<(Child, ChildStdin)>,
    _config: tempfile::NamedTempFile,
}

pub(crate) fn idp() -> &'static Idp {
    static IDP: OnceLock<Idp> = OnceLock::new();
    IDP.get_or_init(start_idp)
}

fn start_idp() -> Idp {
    assert!(std::path::Path::new(NODE_DIR).join("node_modules/oidc-provider").exists(), "run scripts/install-test-deps.sh first");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let callbacks = |ids: &[&str]| ids.iter().map(|id| format!("http://127.0.0.1/login/upstream/{id}/callback")).collect::<Vec<_>>();
    let google_ids = ["google", "tamper-nonce", "tamper-aud", "tamper-sig"];
    let person = |sub: &str, email: Option<&str>, verified: bool, tid: &str| {
        let mut p = json!({ "sub": sub, "name": format!("{sub} person"), "tid": tid });
        if let Some(email) = email {
            p["email"] = json!(email);
            p["email_verified"] = json!(verified);
        }
        p
    };
    let accounts = json!({
        "alice": person("alice-sub", Some("alice@example.com"), true, TENANT),
        "carol": person("carol-sub", Some("carol@example.com"), true, TENANT),
        "ada": person("ada-sub", Some("ada@example.com"), true, TENANT),
        "ada-unverified": person("ada-unverified-sub", Some("ada@example.com"), false, TENANT),
        "noemail": person("noemail-sub", None, false, TENANT),
        "mallory": person("mallory-sub", Some("mallory@example.com"), true, OTHER_TENANT),
    });
    let mut google_clients = vec![json!({ "client_id": "sluis", "client_secret": "s3cret", "redirect_uris": callbacks(&google_ids) })];
    for id in TAMPERED {
        google_clients.push(json!({ "client_id": id, "client_secret": "s3cret", "redirect_uris": callbacks(&google_ids) }));
    }
    let config = json!({
        "port": port,
        "providers": [
            {
                "prefix": "/google",
                "claims": { "openid": ["sub"], "email": ["email", "email_verified"], "profile": ["name"] },
                "clients": google_clients,
                "accounts": accounts,
                "tamper": { "tamper-nonce": "nonce", "tamper-aud": "aud", "tamper-sig": "signature" },
            },
            {
                // Microsoft: tokens name the tenant's issuer and carry `tid`; no email_verified.
                "prefix": format!("/{TENANT}/v2.0"),
                "claims": { "openid": ["sub", "tid"], "email": ["email"], "profile": ["name"] },
                "template": { "prefix": "/common/v2.0", "issuer": format!("{base}/{{tenantid}}/v2.0") },
                "clients": [{ "client_id": "sluis", "client_secret": "s3cret", "redirect_uris": callbacks(&["work"]) }],
                "accounts": accounts,
            },
        ],
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), config.to_string()).unwrap();
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .arg(file.path())
        .current_dir(NODE_DIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node provider.mjs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "provider.mjs did not start");
    let stdin = child.stdin.take().unwrap();
    Idp { base, _process: Mutex::new((child, stdin)), _config: file }
}

fn upstream(id: &str, name: &str, kind: UpstreamKind, issuer: String, client_id: &str) -> UpstreamConfig {
    UpstreamConfig {
        id: id.into(),
        name: name.into(),
        kind,
        issuer: Some(issuer),
        tenant: None,
        api_url: None,
        client_id: client_id.into(),
        client_secret: "s3cret".into(),
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
    }
}

/// A Sluis with the test provider's issuers configured.
pub(crate) async fn app(registration: Registration) -> TestApp {
    app_with(registration, |_| {}).await
}

pub(crate) async fn app_with(registration: Registration, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let base = &idp().base;
    TestApp::start_with(|c: &mut Config| {
        c.registration = registration;
        c.upstreams = vec![
            upstream("google", "Google", UpstreamKind::Google, format!("{base}/google"), "sluis"),
            upstream("work", "Work account", UpstreamKind::Microsoft, format!("{base}/common/v2.0"), "sluis"),
        ];
        for id in TAMPERED {
            c.upstreams.push(upstream(id, id, UpstreamKind::Oidc, format!("{base}/google"), id));
        }
        adjust(c);
    })
    .await
}

/// Where a driven flow ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Redirected to the client.
    Client(Url),
    /// Redirected to Sluis' callback (when asked to stop there).
    Callback(Url),
    /// A page that is not a form the driver fills.
    Page { status: u16, url: String, body: String },
}

impl End {
    pub(crate) fn client(self) -> Url {
        match self {
            End::Client(url) => url,
            other => panic!("expected a redirect to the client, got {other:?}"),
        }
    }

    pub(crate) fn page(self) -> (u16, String, String) {
        match self {
            End::Page { status, url, body } => (status, url, body),
            other => panic!("expected a page, got {other:?}"),
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&").replace("&#x2f;", "/").replace("&#x2F;", "/")
}

/// Follows a sign-in as a browser would: on Sluis' sign-in page it takes the `provider`
/// button, at the provider it signs in as `login` and consents, at Sluis' consent page it
/// allows. Stops at the client, at the first other page (the sign-in page too when it
/// offers linking), or (`stop_at_callback`) at Sluis' callback.
pub(crate) async fn drive(browser: &Browser, start: &str, provider: &str, login: &str, stop_at_callback: bool) -> End {
    let mut url = Url::parse(start).unwrap();
    let mut response = browser.http.get(url.clone()).send().await.unwrap();
    for _ in 0..25 {
        if let Some(location) = location(&response) {
            url = url.join(&location).unwrap();
            if url.as_str().starts_with(REDIRECT_URI) {
                return End::Client(url);
            }
            if stop_at_callback && url.as_str().starts_with(&browser.base) && url.path().ends_with("/callback") {
                return End::Callback(url);
            }
            response = browser.http.get(url.clone()).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
            continue;
        }
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        let at_sluis = url.as_str().starts_with(&browser.base);
        if status == 200 && at_sluis && body.contains("action=\"/login\"") && !body.contains("id=\"link-offer\"") {
            let marker = format!("href=\"/login/upstream/{provider}");
            let start = body.find(&marker).unwrap_or_else(|| panic!("no {provider} button: {body}")) + 6;
            let end = body[start..].find('"').unwrap() + start;
            url = url.join(&unescape(&body[start..end])).unwrap();
            response = browser.http.get(url.clone()).send().await.unwrap();
        } else if status == 200 && at_sluis && body.contains("name=\"decision\"") {
            let (action, mut fields) = form(&body).unwrap();
            fields.push(("decision".into(), "allow".into()));
            url = url.join(&action).unwrap();
            response = browser.http.post(url.clone()).form(&fields).send().await.unwrap();
        } else if status == 200 && !at_sluis && body.contains("name=\"prompt\" value=\"login\"") {
            let (action, _) = form(&body).unwrap();
            url = url.join(&unescape(&action)).unwrap();
            response = browser.http.post(url.clone()).form(&[("prompt", "login"), ("login", login), ("password", "any")]).send().await.unwrap();
        } else if status == 200 && !at_sluis && body.contains("name=\"prompt\" value=\"consent\"") {
            let (action, _) = form(&body).unwrap();
            url = url.join(&unescape(&action)).unwrap();
            response = browser.http.post(url.clone()).form(&[("prompt", "consent")]).send().await.unwrap();
        } else {
            return End::Page { status, url: url.to_string(), body };
        }
    }
    panic!("too many steps");
}

/// An authorization request of `client` and its PKCE verifier.
pub(crate) fn authorize(app: &TestApp, client: &sluis::model::Client, extra: &[(&str, &str)]) -> (String, String) {
    let (verifier, challenge) = pkce();
    (app.authorize_url(client, "openid email", &challenge, extra), verifier)
}

pub(crate) async fn id_token_of(app: &TestApp, client: &sluis::model::Client, secret: &str, callback: &Url, verifier: &str) -> serde_json::Value {
    let code = query_param(callback, "code").expect("code");
    let tokens = app.exchange(client, secret, &code, verifier).await;
    jwt_claims(tokens["id_token"].as_str().unwrap())
}

pub(crate) async fn attempts(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    let events = app.state.store.login_events(&LoginEventFilter::default(), None, 100).await.unwrap();
    events.into_iter().map(|e| (e.method, e.result, e.reason)).collect()
}

/// In Chromium: from `url` to Sluis' sign-in page, its Google button, and oidc-provider's own
/// sign-in (as `login`) and consent pages, until the provider sends the browser back.
pub(crate) async fn chromium_through_google(chromium: &crate::browser::Chromium, app: &TestApp, url: &str, login: &str) {
    chromium.client().goto(url).await.unwrap();
    chromium.wait_for_url(&app.url("/login")).await;
    chromium.find("a.upstream[href^='/login/upstream/google']").await.click().await.unwrap();
    chromium.wait_for_url(&idp().base).await;
    chromium.find("input[name=login]").await.send_keys(login).await.unwrap();
    chromium.find("input[name=password]").await.send_keys("anything").await.unwrap();
    chromium.find("button[type=submit]").await.click().await.unwrap();
    chromium.find("input[name=prompt][value=consent]").await;
    chromium.find("button[type=submit]").await.click().await.unwrap();
}

#[tokio::test]
async fn chromium_signs_up_through_a_google_like_upstream_and_back_in_to_the_same_account() {
    use crate::browser::Chromium;
    let app = app(Registration::Open).await;
    let (client, secret) = app.client().await;
    let chromium = Chromium::start().await;

    let (url, verifier) = authorize(&app, &client, &[]);
    chromium_through_google(&chromium, &app, &url, "alice").await;
    // Back at Sluis: consent for the client, then the client.
    chromium.wait_for_url(&app.url("/consent")).await;
    assert!(chromium.find("main").await.text().await.unwrap().contains("alice@example.com"), "the new account has the upstream email");
    chromium.find("button[name=decision][value=allow]").await.click().await.unwrap();
    let callback = chromium.wait_for_url(REDIRECT_URI).await;
    let first = id_token_of(&app, &client, &secret, &callback, &verifier).await;
    assert_eq!(first["amr"], json!(["fed"]), "{first}");

    let (user, _) = app.state.store.user_credentials("alice@example.com").await.unwrap().expect("account created");
    assert!(user.email_verified, "Google-like provider asserted the address");
    assert_eq!(user.name.as_deref(), Some("alice-sub person"));
    assert_eq!(app.state.store.password_hash(&user.id).await.unwrap(), None, "no password");
    let identities = app.state.store.upstream_identities(&user.id).await.unwrap();
    assert_eq!((identities.len(), identities[0].provider_id.as_str(), identities[0].subject.as_str()), (1, "google", "alice"), "keyed by the provider's sub");

    // Again, forced to sign in: the provider remembers the browser, Sluis the identity.
    let (url, verifier) = authorize(&app, &client, &[("prompt", "login")]);
    chromium.client().goto(&url).await.unwrap();
    chromium.wait_for_url(&app.url("/login")).await;
    chromium.find("a.upstream[href^='/login/upstream/google']").await.click().await.unwrap();
    // No password at the provider this time; it confirms consent for native clients always.
    chromium.find("input[name=prompt][value=consent]").await;
    chromium.find("button[type=submit]").await.click().await.unwrap();
    let callback = chromium.wait_for_url(REDIRECT_URI).await;
    let second = id_token_of(&app, &client, &secret, &callback, &verifier).await;
    assert_eq!(second["sub"], first["sub"], "the same account, the same pairwise sub");

    // The history names the provider.
    chromium.client().goto(&app.url("/account/security/history")).await.unwrap();
    let text = chromium.find("main").await.text().await.unwrap();
    assert!(text.contains("Signed in with Google, signing in to Example Shop"), "{text}");
    chromium.close().await;
}

#[tokio::test]
async fn a_user_with_totp_is_asked_for_the_code_after_upstream_sign_in() {
    let app = app(Registration::Open).await;
    let (client, secret) = app.client().await;
    let (url, _) = authorize(&app, &client, &[]);
    drive(&app.browser(), &url, "google", "carol", false).await.client();
    let (carol, _) = app.state.store.user_credentials("carol@example.com").await.unwrap().unwrap();
    let totp = [7u8; 20];
    let sealed = app.state.secrets.totp_sealer.seal(&totp);
    let now = sluis::clock::Clock::now(&app.clock);
    assert!(app.state.store.put_pending_totp(&carol.id, &sealed, now).await.unwrap());
    assert!(app.state.store.confirm_totp(&carol.id, &sealed, 0, now).await.unwrap());

    let browser = app.browser();
    let (url, verifier) = authorize(&app, &client, &[]);
    let (status, at, html) = drive(&browser, &url, "google", "carol", false).await.page();
    assert_eq!(status, 200);
    assert!(at.ends_with("/login/second-factor"), "{at}: {html}");
    let code = totp_rs::Builder::new().with_secret(totp.to_vec()).build().unwrap().generate(u64::try_from(now).unwrap()).to_string();
    let response = browser.submit(&html, &[("code", &code)]).await;
    let next = location(&response).expect("signed in");
    let callback = drive(&browser, &app.url(&next), "google", "carol", false).await.client();
    let claims = id_token_of(&app, &client, &secret, &callback, &verifier).await;
    assert_eq!(claims["amr"], json!(["fed", "otp", "mfa"]), "{claims}");
}

#[tokio::test]
async fn microsoft_tenant_issuers_are_checked_against_tid() {
    let app = app(Registration::Open).await;
    let (client, secret) = app.client().await;
    let (url, verifier) = authorize(&app, &client, &[]);
    let callback = drive(&app.browser(), &url, "work", "alice", false).await.client();
    let claims = id_token_of(&app, &client, &secret, &callback, &verifier).await;
    assert_eq!(claims["amr"], json!(["fed"]));
    let (alice, _) = app.state.store.user_credentials("alice@example.com").await.unwrap().unwrap();
    assert!(!alice.email_verified, "Microsoft does not assert email_verified");

    // A token whose `tid` is another tenant than its issuer's.
    let (url, _) = authorize(&app, &client, &[]);
    let (status, _, body) = drive(&app.browser(), &url, "work", "mallory", false).await.page();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("Signing in with Work account did not work"), "{body}");
    assert!(app.state.store.user_credentials("mallory@example.com").await.unwrap().is_none());
    assert!(attempts(&app).await.contains(&("upstream:work".into(), "failure".into(), Some("invalid_response".into()))));
}

#[tokio::test]
async fn id_tokens_with_a_wrong_nonce_audience_or_signature_are_refused() {
    let app = app(Registration::Open).await;
    let (client, _) = app.client().await;
    for id in TAMPERED {
        let (url, _) = authorize(&app, &client, &[]);
        let (status, _, body) = drive(&app.browser(), &url, id, "alice", false).await.page();
        assert_eq!(status, 502, "{id}: {body}");
        assert!(body.contains("did not work this time"), "{id}: {body}");
    }
    assert!(app.state.store.user_credentials("alice@example.com").await.unwrap().is_none(), "no account from a tampered token");
    let failures = attempts(&app).await.into_iter().filter(|(m, r, reason)| m.starts_with("upstream:tamper") && r == "failure" && reason.as_deref() == Some("invalid_response")).count();
    assert_eq!(failures, 3);
    // The untampered client of the same provider works.
    let (url, _) = authorize(&app, &client, &[]);
    drive(&app.browser(), &url, "google", "alice", false).await.client();
}

#[tokio::test]
async fn callbacks_are_single_use_and_bound_to_the_browser() {
    let app = app(Registration::Open).await;
    let (client, _) = app.client().await;
    let (url, _) = authorize(&app, &client, &[]);
    let browser = app.browser();
    let End::Callback(callback) = drive(&browser, &url, "google", "alice", true).await else { panic!("no callback") };

    // Another browser (no session) cannot use it.
    let other = app.browser().get(callback.as_str()).await;
    assert_eq!(other.status(), 400);
    assert!(other.text().await.unwrap().contains("started in another browser"));
    // A forged state neither.
    let forged = browser.get(&app.url("/login/upstream/google/callback?code=x&state=forged")).await;
    assert_eq!(forged.status(), 400);
    // Its own browser once.
    let first = browser.get(callback.as_str()).await;
    assert_eq!(first.status(), 303, "{:?}", first.text().await);
    let again = browser.get(callback.as_str()).await;
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("already used"));
    // Bad inputs: an unknown provider, an expired request, a malformed answer.
    assert_eq!(browser.get(&app.url("/login/upstream/nope")).await.status(), 404);
    assert_eq!(browser.get(&app.url("/login/upstream/nope/callback?state=x")).await.status(), 404);
    assert_eq!(browser.get(&app.url("/login/upstream/google?request_id=gone")).await.status(), 400);
    assert_eq!(browser.get(&app.url("/login/upstream/google/callback?state=a&state=b")).await.status(), 400);
}

#[tokio::test]
async fn cancelling_at_the_provider_sends_access_denied_to_the_client() {
    let app = app(Registration::Open).await;
    let (client, _) = app.client().await;
    let browser = app.browser();
    let (url, _) = authorize(&app, &client, &[]);
    // Stop at the provider's sign-in page and take its Cancel link.
    let mut at = Url::parse(&url).unwrap();
    let mut response = browser.http.get(at.clone()).send().await.unwrap();
    let body = loop {
        match location(&response) {
            Some(l) => {
                at = at.join(&l).unwrap();
                response = browser.http.get(at.clone()).send().await.unwrap();
            }
            None => {
                let body = response.text().await.unwrap();
                if !at.as_str().starts_with(&idp().base) {
                    let start = body.find("href=\"/login/upstream/google").unwrap() + 6;
                    at = at.join(&unescape(&body[start..body[start..].find('"').unwrap() + start])).unwrap();
                    response = browser.http.get(at.clone()).send().await.unwrap();
                    continue;
                }
                break body;
            }
        }
    };
    let end = body.find("\">[ Cancel ]").expect("cancel link");
    let start = body[..end].rfind("href=\"").unwrap() + 6;
    let cancel = at.join(&unescape(&body[start..end])).unwrap();
    let back = drive(&browser, cancel.as_str(), "google", "alice", false).await.client();
    assert_eq!(query_param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&back, "state").as_deref(), Some("st"));
    assert_eq!(query_param(&back, "iss").as_deref(), Some(app.base.as_str()));
    assert!(attempts(&app).await.contains(&("upstream:google".into(), "failure".into(), Some("cancelled".into()))));
}

#[tokio::test]
async fn closed_registration_and_taken_addresses_create_and_link_nothing() {
    let app = app(Registration::Closed).await;
    let (client, _) = app.client().await;
    let (url, _) = authorize(&app, &client, &[]);
    let (status, _, body) = drive(&app.browser(), &url, "google", "alice", false).await.page();
    assert_eq!(status, 403);
    assert!(body.contains("new accounts cannot be created this way"), "{body}");
    assert!(app.state.store.user_credentials("alice@example.com").await.unwrap().is_none());

    // Open registration; an account with the address exists.
    let app = self::app(Registration::Open).await;
    let (client, _) = app.client().await;
    let ada = app.user("ada@example.com").await;
    let (url, _) = authorize(&app, &client, &[]);
    let (status, _, body) = drive(&app.browser(), &url, "google", "ada", false).await.page();
    assert_eq!(status, 409);
    assert!(body.contains("An account with the email address you use at Google already exists"), "{body}");
    assert!(body.contains("sign in to that account first"), "{body}");
    // Unverified at the provider: no more said than that nothing was created.
    let (url, _) = authorize(&app, &client, &[]);
    let (status, _, body) = drive(&app.browser(), &url, "google", "ada-unverified", false).await.page();
    assert_eq!(status, 409);
    assert!(body.contains("could not be created") && !body.contains("already exists"), "{body}");
    assert!(app.state.store.upstream_identities(&ada.id).await.unwrap().is_empty(), "nothing linked");
    // Without an address, no account.
    let (url, _) = authorize(&app, &client, &[]);
    let (status, _, body) = drive(&app.browser(), &url, "google", "noemail", false).await.page();
    assert_eq!(status, 403);
    assert!(body.contains("did not share an email address"), "{body}");
    // The password account still signs in as before.
    app.code_for(&client, "ada@example.com", "openid").await;
    let reasons: Vec<_> = attempts(&app).await.into_iter().filter_map(|(m, _, r)| (m == "upstream:google").then_some(r).flatten()).collect();
    assert_eq!(reasons, ["no_email", "account_exists", "account_exists"]);
}

#[tokio::test]
async fn an_unreachable_provider_is_a_readable_page() {
    let port = free_port();
    let app = TestApp::start_with(|c: &mut Config| {
        c.upstreams = vec![upstream("down", "Down", UpstreamKind::Oidc, format!("http://127.0.0.1:{port}"), "x")];
    })
    .await;
    let login = app.browser().get("/login").await.text().await.unwrap();
    assert!(login.contains("Sign in with Down"), "{login}");
    let response = app.browser().get("/login/upstream/down").await;
    assert_eq!(response.status(), 502);
    assert!(response.text().await.unwrap().contains("Signing in with Down did not work"));
}
