//! The operator's interface: the `sluis` binary's commands, their output and their errors.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::served::{ServedSluis, single_json, stderr, stdout};
use crate::support::{PASSWORD, after_a_client_change_elsewhere};

/// A failed command: non-zero exit and exactly one non-empty line on stderr, returned.
#[track_caller]
fn one_line_failure(output: &Output, what: &str) -> String {
    let err = stderr(output);
    assert!(!output.status.success(), "{what}: expected failure, got success; stdout: {}", stdout(output));
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: expected one line on stderr, got: {err:?}");
    lines[0].to_string()
}

#[track_caller]
fn assert_no_password(output: &Output) {
    for text in [stdout(output), stderr(output)] {
        assert!(!text.contains(PASSWORD), "a command printed the user's password: {text}");
    }
}

#[tokio::test]
async fn unknown_flag_and_missing_arguments_fail_with_one_line() {
    let sluis = ServedSluis::prepare().await;
    let line = one_line_failure(&sluis.run(&["--bogus"], None), "sluis --bogus");
    assert!(line.contains("--bogus"), "{line}");

    let line = one_line_failure(&sluis.run(&["user", "create"], None), "user create without flags");
    assert!(line.contains("--email"), "the reason names the missing flag: {line}");

    let line = one_line_failure(&sluis.run(&["user", "create", "--email", "x@example.com"], None), "user create without --password-stdin");
    assert!(line.contains("--password-stdin"), "{line}");

    let line = one_line_failure(&sluis.run(&["keys", "rotate", "--alg"], None), "keys rotate --alg without value");
    assert!(line.contains("--alg"), "{line}");
    // Nothing was created by failed invocations.
    assert!(!sluis.data_dir().exists(), "a failed argument parse touched the data directory");
}

#[tokio::test]
async fn user_create_prints_json_and_refuses_duplicates() {
    let sluis = ServedSluis::prepare().await;
    let input = format!("{PASSWORD}\n");
    let args = ["user", "create", "--email", "ada@example.com", "--name", "Ada Lovelace", "--password-stdin"];
    let output = sluis.run_ok(&args, Some(&input));
    assert_no_password(&output);
    let user = single_json(&output);
    assert_eq!(user["email"], "ada@example.com");
    assert!(user["id"].as_str().is_some_and(|id| !id.is_empty()), "{user}");
    assert_eq!(user["admin"], false);

    let output = sluis.run(&args, Some(&input));
    assert_no_password(&output);
    let line = one_line_failure(&output, "duplicate email");
    assert!(line.contains("already exists") && line.contains("email"), "{line}");
    assert!(stdout(&output).is_empty(), "nothing on stdout for a failure");

    // Case and surrounding spaces do not make a new account either.
    let output = sluis.run(&["user", "create", "--email", "ADA@example.com", "--password-stdin"], Some(&input));
    let line = one_line_failure(&output, "duplicate email in other case");
    assert!(line.contains("already exists"), "{line}");

    let output = sluis.run(&["user", "create", "--email", "bob@example.com", "--password-stdin"], Some("short\n"));
    assert_no_password(&output);
    let line = one_line_failure(&output, "short password");
    assert!(line.contains("8 characters"), "{line}");

    let output = sluis.run(&["user", "create", "--email", "not-an-email", "--password-stdin"], Some(&input));
    let line = one_line_failure(&output, "invalid email");
    assert!(line.contains("not-an-email"), "{line}");
}

#[tokio::test]
async fn client_create_prints_one_json_object() {
    let sluis = ServedSluis::prepare().await;
    let confidential = sluis.create_client(&[]);
    assert!(confidential["client_id"].as_str().is_some_and(|s| !s.is_empty()), "{confidential}");
    let secret = confidential["client_secret"].as_str().expect("a confidential client gets a secret");
    assert!(secret.len() >= 32, "secret too short: {secret}");
    assert_eq!(confidential["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(confidential["id_token_signed_response_alg"], "RS256");

    let public = sluis.create_client(&["--public", "--signing-alg", "ES256"]);
    assert!(public["client_id"].as_str().is_some_and(|s| !s.is_empty()), "{public}");
    assert!(public.get("client_secret").is_none(), "a public client has no secret: {public}");
    assert_eq!(public["token_endpoint_auth_method"], "none");
    assert_eq!(public["id_token_signed_response_alg"], "ES256");
    assert_ne!(public["client_id"], confidential["client_id"]);

    let output = sluis.run(&["client", "create", "--name", "X", "--redirect-uri", "https://app.example/cb", "--signing-alg", "HS256"], None);
    let line = one_line_failure(&output, "client with HS256");
    assert!(line.contains("HS256"), "{line}");

    // Client ids are letters and digits, so they never look like a flag on a command line.
    for client in [&confidential, &public] {
        let id = client["client_id"].as_str().unwrap();
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
    }
}

#[tokio::test]
async fn client_create_refuses_malformed_redirect_uris() {
    let sluis = ServedSluis::prepare().await;
    for (uri, why) in [
        ("not a uri", "not an absolute URI"),
        ("/cb", "not an absolute URI"),
        ("http://example.com/cb", "https"),
        ("https://app.example/cb#fragment", "fragment"),
        ("javascript:alert(1)", "scheme"),
    ] {
        for flag in ["--redirect-uri", "--post-logout-redirect-uri"] {
            let mut args = vec!["client", "create", "--name", "Shop"];
            if flag != "--redirect-uri" {
                args.extend(["--redirect-uri", "https://app.example/cb"]);
            }
            args.extend([flag, uri]);
            let output = sluis.run(&args, None);
            let line = one_line_failure(&output, &format!("{flag} {uri:?}"));
            assert!(line.contains(why), "{flag} {uri:?}: the reason should say {why:?}: {line}");
            assert!(stdout(&output).is_empty(), "no client printed for {uri:?}");
        }
    }
    // And the well-formed kinds are accepted: https, loopback http, private-use scheme.
    for uri in ["https://app.example/cb", "http://127.0.0.1:8400/cb", "http://localhost/cb", "com.example.app:/cb"] {
        sluis.run_ok(&["client", "create", "--name", "Shop", "--redirect-uri", uri], None);
    }
}

#[tokio::test]
async fn unreachable_database_fails_with_one_line() {
    let sluis = ServedSluis::prepare().await;
    for command in [&["migrate"][..], &["serve"][..], &["user", "create", "--email", "a@example.com", "--password-stdin"][..]] {
        let mut cmd = sluis.command();
        cmd.env("SLUIS_DATABASE_URL", "postgres://127.0.0.1:1/none").args(command);
        let started = Instant::now();
        let output = crate::served::run_bounded(&mut cmd, Some(&format!("{PASSWORD}\n")), Duration::from_secs(60));
        let line = one_line_failure(&output, &format!("{command:?} with an unreachable database"));
        assert!(line.contains("database"), "{command:?}: the reason should mention the database: {line}");
        assert!(line.contains("refused"), "{command:?}: the reason should be the real one (connection refused): {line}");
        assert!(started.elapsed() < Duration::from_secs(5), "{command:?} took {:?} to give up", started.elapsed());
    }
    // A SQLite file that cannot be opened: the reason once, not repeated down the chain.
    let mut cmd = sluis.command();
    cmd.env("SLUIS_DATABASE_URL", "sqlite:///nonexistent/dir/sluis.db").arg("migrate");
    let output = crate::served::run_bounded(&mut cmd, None, Duration::from_secs(30));
    let line = one_line_failure(&output, "unopenable SQLite file");
    assert_eq!(line.matches("unable to open").count(), 1, "{line}");
}

#[tokio::test]
async fn bad_configuration_names_the_key() {
    let sluis = ServedSluis::prepare().await;
    // An unknown key in ./sluis.toml (the command runs in the instance directory).
    std::fs::write(sluis.dir.path().join("sluis.toml"), "bogus = 1\n").unwrap();
    let line = one_line_failure(&sluis.run(&["migrate"], None), "unknown key in sluis.toml");
    assert!(line.contains("bogus"), "{line}");
    let line = one_line_failure(&sluis.run(&["serve"], None), "serve with an unknown key");
    assert!(line.contains("bogus"), "{line}");
    std::fs::remove_file(sluis.dir.path().join("sluis.toml")).unwrap();

    // The same through --config FILE, and a missing --config file.
    let file = sluis.dir.path().join("other.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9\"\nbogus = 1\n").unwrap();
    let line = one_line_failure(&sluis.run(&["--config", file.to_str().unwrap(), "migrate"], None), "unknown key in --config");
    assert!(line.contains("bogus"), "{line}");
    let line = one_line_failure(&sluis.run(&["--config", "/nonexistent/sluis.toml", "migrate"], None), "missing --config");
    assert!(line.contains("/nonexistent/sluis.toml"), "{line}");

    // Invalid values from the environment.
    for (key, value, name) in [
        ("SLUIS_LISTEN", "not-an-address", "listen"),
        ("SLUIS_ISSUER", "http://example.com", "issuer"),
        ("SLUIS_ACCESS_TOKEN_TTL", "0", "access_token_ttl"),
        ("SLUIS_DATABASE_URL", "mysql://localhost/x", "database_url"),
    ] {
        let mut command = sluis.command();
        command.env(key, value).arg("serve");
        let output = crate::served::run_bounded(&mut command, None, Duration::from_secs(30));
        let line = one_line_failure(&output, &format!("{key}={value}"));
        assert!(line.contains(name), "{key}={value}: the reason should name `{name}`: {line}");
    }
}

#[tokio::test]
async fn migrate_creates_the_sqlite_file_in_the_data_dir() {
    let sluis = ServedSluis::prepare().await;
    // No SLUIS_DATABASE_URL: the default is a SQLite file in the data directory.
    let mut command = sluis.command();
    command.env_remove("SLUIS_DATABASE_URL").arg("migrate");
    let output = crate::served::run_bounded(&mut command, None, Duration::from_secs(60));
    assert!(output.status.success(), "migrate failed: {}", stderr(&output));
    assert!(stdout(&output).is_empty(), "migrate prints nothing on stdout: {}", stdout(&output));
    let db = sluis.data_dir().join("sluis.db");
    let size = std::fs::metadata(&db).unwrap_or_else(|e| panic!("{} not created: {e}", db.display())).len();
    assert!(size > 0, "{} is empty", db.display());
    // Running it again is harmless.
    let mut command = sluis.command();
    command.env_remove("SLUIS_DATABASE_URL").arg("migrate");
    let output = crate::served::run_bounded(&mut command, None, Duration::from_secs(60));
    assert!(output.status.success(), "second migrate failed: {}", stderr(&output));
}

fn kids(jwks: &serde_json::Value, alg: &str) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .filter(|k| k["alg"] == alg)
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

#[tokio::test]
async fn keys_rotate_adds_a_key_that_is_served_next_to_the_old_one() {
    let mut sluis = ServedSluis::start().await;
    let before = sluis.jwks().await;
    let old_es = kids(&before, "ES256");
    assert_eq!(old_es.len(), 1, "one ES256 key on first start: {before}");
    let old_rs = kids(&before, "RS256");
    sluis.stop();

    let output = sluis.run_ok(&["keys", "rotate", "--alg", "ES256"], None);
    let rotated = single_json(&output);
    assert_eq!(rotated["alg"], "ES256");
    let new_kid = rotated["kid"].as_str().expect("kid printed").to_string();
    assert_ne!(new_kid, old_es[0]);

    let refused = sluis.run(&["keys", "rotate", "--alg", "HS256"], None);
    let line = one_line_failure(&refused, "keys rotate --alg HS256");
    assert!(line.contains("HS256"), "{line}");

    sluis.serve().await;
    let after = sluis.jwks().await;
    let es = kids(&after, "ES256");
    assert!(es.contains(&old_es[0]), "the old ES256 key is still published: {after}");
    assert!(es.contains(&new_kid), "the new ES256 key is published: {after}");
    assert_eq!(es.len(), 2, "{after}");
    assert_eq!(kids(&after, "RS256"), old_rs, "other algorithms untouched");
    assert!(after["keys"].as_array().unwrap().iter().all(|k| k.get("d").is_none()), "no private parts in the JWKS");

    // New ES256 tokens are signed with the new key.
    sluis.create_user("ada@example.com", "Ada Lovelace");
    let client = sluis.create_client(&["--signing-alg", "ES256"]);
    let browser = crate::support::Browser {
        http: reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        base: sluis.base.clone(),
    };
    let (verifier, challenge) = crate::support::pkce();
    let mut url = url::Url::parse(&sluis.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client["client_id"].as_str().unwrap())
        .append_pair("redirect_uri", crate::support::REDIRECT_URI)
        .append_pair("scope", "openid")
        .append_pair("state", "st")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let callback = browser.sign_in_and_consent(url.as_str(), "ada@example.com", PASSWORD).await;
    let code = crate::support::query_param(&callback, "code").expect("code");
    let response = reqwest::Client::new()
        .post(sluis.url("/token"))
        .basic_auth(client["client_id"].as_str().unwrap(), client["client_secret"].as_str())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", crate::support::REDIRECT_URI),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: serde_json::Value = response.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    use base64::Engine;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id_token.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], new_kid.as_str(), "signed with the rotated key");
    assert!(!sluis.server_log().contains(PASSWORD), "the server log contains the user's password");
}

#[tokio::test]
async fn client_verify_refuses_unknown_clients_and_scopes_not_enabled() {
    let sluis = ServedSluis::prepare().await;
    let client = sluis.create_client(&["--unverified", "--scope", "openid", "--scope", "email"]);
    assert_eq!(client["status"], "unverified", "{client}");
    let id = client["client_id"].as_str().unwrap();

    let output = sluis.run(&["client", "verify", "no-such-client", "--scope", "email"], None);
    let line = one_line_failure(&output, "verify an unknown client");
    assert!(line.contains("no-such-client"), "the reason names the client: {line}");
    assert!(stdout(&output).is_empty(), "nothing on stdout for a failure");

    let output = sluis.run(&["client", "verify", id, "--scope", "phone"], None);
    let line = one_line_failure(&output, "verify a scope not enabled");
    assert!(line.contains("phone") && line.contains("not enabled"), "{line}");
    // A scope given together with a good one: nothing is approved, the client stays unverified.
    let output = sluis.run(&["client", "verify", id, "--scope", "email", "--scope", "phone"], None);
    one_line_failure(&output, "verify a good and a bad scope");
    let output = sluis.run(&["client", "verify", id, "--scope"], None);
    one_line_failure(&output, "verify --scope without a value");

    let verified = single_json(&sluis.run_ok(&["client", "verify", id, "--scope", "email"], None));
    assert_eq!(verified["client_id"], id);
    assert_eq!(verified["status"], "verified");
    assert_eq!(verified["approved"], "email", "exactly the approved scope, nothing from the failed attempts: {verified}");
}

#[tokio::test]
async fn client_reject_needs_a_note() {
    let sluis = ServedSluis::prepare().await;
    let client = sluis.create_client(&["--unverified"]);
    let id = client["client_id"].as_str().unwrap();

    let output = sluis.run(&["client", "reject", id, "--scope", "email"], None);
    let line = one_line_failure(&output, "reject without --note");
    assert!(line.contains("--note"), "the reason names the missing flag: {line}");

    let output = sluis.run(&["client", "reject", "no-such-client", "--scope", "email", "--note", "why"], None);
    let line = one_line_failure(&output, "reject for an unknown client");
    assert!(line.contains("no-such-client"), "{line}");
    let output = sluis.run(&["client", "reject", id, "--scope", "phone", "--note", "why"], None);
    let line = one_line_failure(&output, "reject a scope not enabled");
    assert!(line.contains("phone"), "{line}");

    let rejected = single_json(&sluis.run_ok(&["client", "reject", id, "--scope", "email", "--note", "no purpose given"], None));
    assert_eq!(rejected["client_id"], id);
    assert_eq!(rejected["rejected"], "email");
}

#[tokio::test]
async fn client_suspend_makes_the_served_server_refuse_the_client() {
    let sluis = ServedSluis::start().await;
    let client = sluis.create_client(&["--grant-type", "client_credentials"]);
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let token_request = || async {
        reqwest::Client::new()
            .post(sluis.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
    };
    assert_eq!(token_request().await.status(), 200, "before suspension");

    let output = sluis.run(&["client", "suspend", "no-such-client"], None);
    let line = one_line_failure(&output, "suspend an unknown client");
    assert!(line.contains("no-such-client"), "{line}");

    // The CLI writes to the database the running server reads: no restart needed.
    let suspended = single_json(&sluis.run_ok(&["client", "suspend", id], None));
    assert_eq!(suspended["client_id"], id);
    assert_eq!(suspended["status"], "suspended");
    let refused = || async {
        let response = token_request().await;
        response.status() == 401 && response.json::<serde_json::Value>().await.unwrap()["error"] == "invalid_client"
    };
    assert!(after_a_client_change_elsewhere(&sluis.database_url, refused).await, "a suspended client's token request is refused with invalid_client");
}

/// A cookie-keeping client signed in to the served Sluis with the support password; the
/// answer to the password step (`/account`, or the second-factor page).
async fn password_sign_in(sluis: &ServedSluis, email: &str) -> (crate::support::Browser, Option<String>) {
    let http = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let browser = crate::support::Browser { http, base: sluis.base.clone() };
    let html = browser.get("/login").await.text().await.unwrap();
    let response = browser.submit(&html, &[("email", email), ("password", PASSWORD)]).await;
    let next = crate::support::location(&response);
    (browser, next)
}

#[tokio::test]
async fn user_reset_2fa_removes_the_factor_ends_the_sessions_and_is_recorded() {
    let sluis = ServedSluis::start().await;
    let ada = sluis.create_user("ada@example.com", "Ada Lovelace");
    let user = sluis::model::UserId(ada["id"].as_str().unwrap().to_string());
    let (old_session, next) = password_sign_in(&sluis, "ada@example.com").await;
    assert_eq!(next.as_deref(), Some("/account"));
    // An authenticator and recovery codes, as enrolment leaves them.
    let store = sluis::store::Store::connect(&sluis.database_url).await.unwrap();
    let now = sluis::clock::Clock::now(&sluis::clock::SystemClock);
    store.put_pending_totp(&user, "sealed", now).await.unwrap();
    assert!(store.confirm_totp(&user, "sealed", now / 30, now).await.unwrap());
    store.replace_recovery_codes(&user, &["h1".into(), "h2".into()], now).await.unwrap();
    assert_eq!(password_sign_in(&sluis, "ada@example.com").await.1.as_deref(), Some("/login/second-factor"));

    let line = one_line_failure(&sluis.run(&["user", "reset-2fa"], None), "reset-2fa without an address");
    assert!(line.contains("EMAIL"), "{line}");
    let line = one_line_failure(&sluis.run(&["user", "reset-2fa", "nobody@example.com"], None), "reset-2fa of an unknown address");
    assert!(line.contains("nobody@example.com"), "{line}");

    let reset = single_json(&sluis.run_ok(&["user", "reset-2fa", "ADA@example.com"], None));
    assert_eq!(reset["id"], ada["id"]);
    assert_eq!(reset["email"], "ada@example.com");
    assert_eq!(reset["second_factor_removed"], true);
    assert_eq!(reset["sessions_ended"], 1);
    assert!(!store.has_second_factor(&user).await.unwrap());
    assert_eq!(store.recovery_codes_left(&user).await.unwrap(), 0);
    assert_eq!(crate::support::location(&old_session.get("/account").await).as_deref(), Some("/login"), "the old session is signed out");

    // The password alone signs in now, and the user reads what happened in their history.
    let (browser, next) = password_sign_in(&sluis, "ada@example.com").await;
    assert_eq!(next.as_deref(), Some("/account"));
    let history = browser.get("/account/security/history").await.text().await.unwrap();
    assert!(history.contains("An administrator turned off two-factor authentication and ended your sessions"), "{history}");
    let audit = store.audit_entries(10).await.unwrap();
    let entry = audit.iter().find(|e| e.action == "user.reset_2fa").expect("audited");
    assert_eq!((entry.actor.as_str(), entry.target.as_str()), ("cli", format!("user:{}", user).as_str()));

    // A second reset has nothing left to remove, and says so.
    let again = single_json(&sluis.run_ok(&["user", "reset-2fa", "ada@example.com"], None));
    assert_eq!(again["second_factor_removed"], false);
}
