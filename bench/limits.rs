//! The physical limits of this machine for Sluis' expensive steps: signing a token per
//! algorithm (with Sluis' own key and JWT code), verifying one, and argon2id hashing and
//! verifying with the configured parameters. Each cost is measured on one thread; a ceiling is
//! the cores divided by that cost (what the machine could do if it did nothing else).
//!
//!     cargo run --release --example limits [-- --json]
//!
//! `--json` prints one JSON object instead of the table (read by bench/compare).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::json;
use sluis::crypto::jwt::{self, Expectations};
use sluis::crypto::keys::{self, KeyRing};
use sluis::crypto::password::PasswordHasher;
use sluis::crypto::random_id;
use sluis::model::SigningAlg;

/// Seconds per call of `f`: the best of five rounds of `budget / 5` each (after a warm-up),
/// as other work on a shared machine only ever adds time.
fn cost(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let round = budget / 5;
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let mut calls = 0u64;
            while start.elapsed() < round {
                f();
                calls += 1;
            }
            start.elapsed().as_secs_f64() / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// An access token's claims, the size Sluis signs at the token endpoint.
fn claims() -> serde_json::Value {
    json!({
        "iss": "http://127.0.0.1:8080", "sub": random_id(), "aud": "http://127.0.0.1:8080",
        "exp": 1_900_000_300, "iat": 1_900_000_000, "jti": random_id(), "client_id": random_id(),
        "scope": "openid email profile",
    })
}

fn main() -> anyhow::Result<()> {
    let as_json = std::env::args().any(|a| a == "--json");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let budget = Duration::from_millis(1500);
    let mut rows = Vec::new();

    for alg in SigningAlg::ALL {
        let generated = keys::generate(alg)?;
        let key = keys::parse(&generated.kid, alg, &generated.pkcs8, 0, None)?;
        let claims = claims();
        let sign = cost(budget, || {
            black_box(jwt::sign(&key, "at+jwt", black_box(&claims)));
        });
        let token = jwt::sign(&key, "at+jwt", &claims);
        let ring = KeyRing::new(vec![keys::parse(&generated.kid, alg, &generated.pkcs8, 0, None)?]);
        let expect = Expectations { issuer: "http://127.0.0.1:8080", typ: Some("at+jwt"), check_expiry: true, now: 1_900_000_000 };
        let verify = cost(budget, || {
            black_box(jwt::verify::<serde_json::Value>(&ring, black_box(&token), &expect).expect("verifies"));
        });
        rows.push((format!("sign {}", alg.as_str()), sign));
        rows.push((format!("verify {}", alg.as_str()), verify));
    }

    // The hasher as the server uses it (one slot: one hash at a time, so this is one core's cost).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let hasher = PasswordHasher::new(1);
    let hash = runtime.block_on(hasher.hash("bench password 123".into()))?;
    let argon_budget = Duration::from_secs(3);
    let hash_cost = cost(argon_budget, || {
        black_box(runtime.block_on(hasher.hash("bench password 123".into())).expect("hashes"));
    });
    let verify_cost = cost(argon_budget, || {
        assert!(runtime.block_on(hasher.verify(Some(hash.clone()), "bench password 123".into())).expect("verifies"));
    });
    rows.push(("argon2id hash".into(), hash_cost));
    rows.push(("argon2id verify".into(), verify_cost));

    if as_json {
        let costs: serde_json::Map<String, serde_json::Value> = rows.iter().map(|(name, secs)| (name.clone(), json!(secs))).collect();
        println!("{}", json!({"cores": cores, "seconds": costs}));
        return Ok(());
    }
    println!("{cores} cores; cost on one thread, and the ceiling (cores ÷ cost); argon2id m=19456 KiB, t=2, p=1\n");
    println!("| {:<40} | {:>12} | {:>14} |", "operation", "cost", "ceiling /s");
    println!("|{:-<42}|{:->14}|{:->16}|", "", "", "");
    for (name, secs) in &rows {
        println!("| {:<40} | {:>9.1} µs | {:>14.0} |", name, secs * 1e6, cores as f64 / secs);
    }
    Ok(())
}
