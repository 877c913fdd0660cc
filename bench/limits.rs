//! The physical limits of this machine for Sluis' expensive steps: signing a token per
//! algorithm (with Sluis' own key and JWT code), verifying one, and argon2id hashing and
//! verifying with the configured parameters, and the authorization-code exchange's database
//! transaction. Each cost is measured on one thread; a ceiling is the cores divided by that
//! cost (what the machine could do if it did nothing else), except for the database commit:
//! SQLite commits one write transaction at a time, so its ceiling is 1 ÷ cost.
//!
//!     cargo run --release --example limits [-- [--json] [sign|argon2|sqlite]]
//!
//! `--json` prints one JSON object instead of the table (read by bench/compare). A section
//! name measures that section alone: bench/compare measures each again just before the rows
//! it bounds, as a shared machine's speed drifts over a run. The sections `rs256-all` and
//! `argon2-all` are the every-core rows alone (RS256 signing for 1.5 s, argon2id verifying
//! for 3 s): bench/compare measures them around each round of the code exchange and of the
//! sign-in, whose bounds they set.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::json;
use sluis::crypto::jwt::{self, Expectations};
use sluis::crypto::keys::{self, KeyRing};
use sluis::crypto::password::PasswordHasher;
use sluis::crypto::random_id;
use sluis::model::{Authentication, ClientId, GrantId, SigningAlg, UserId};
use sluis::store::{NewCode, NewGrant, Store};

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

/// Calls per second of `f` with one thread per core running it at once: what the cores
/// really give together (shared caches, memory bandwidth and the hypervisor included).
fn parallel_rate(cores: usize, budget: Duration, f: impl Fn() + Sync) -> f64 {
    let start = Instant::now();
    let calls: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| {
                    let mut calls = 0u64;
                    while start.elapsed() < budget {
                        f();
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    calls as f64 / start.elapsed().as_secs_f64()
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
    let only = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    if let Some(section) = only.as_deref().filter(|s| !["sign", "rs256-all", "argon2", "argon2-all", "sqlite"].contains(s)) {
        anyhow::bail!("unknown section {section:?}: sign, rs256-all, argon2, argon2-all or sqlite");
    }
    let measured = |section: &str| only.as_deref().is_none_or(|s| s == section);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let budget = Duration::from_millis(1500);
    let mut rows = Vec::new();

    // `rs256-all`: of this section, RS256 with every core signing alone.
    let rs256_all = only.as_deref() == Some("rs256-all");
    for alg in SigningAlg::ALL.into_iter().filter(|alg| measured("sign") || (rs256_all && *alg == SigningAlg::RS256)) {
        let generated = keys::generate(alg)?;
        let key = keys::parse(&generated.kid, alg, &generated.pkcs8, 0, None)?;
        let claims = claims();
        if measured("sign") {
            let sign = cost(budget, || {
                black_box(jwt::sign(&key, "at+jwt", black_box(&claims)));
            });
            rows.push((format!("sign {}", alg.as_str()), sign));
        }
        let together = parallel_rate(cores, budget, || {
            black_box(jwt::sign(&key, "at+jwt", black_box(&claims)));
        });
        // Stored as a cost (seconds per call per core) so that cores ÷ cost is the rate.
        rows.push((format!("sign {}, all cores at once", alg.as_str()), cores as f64 / together));
        if measured("sign") {
            let token = jwt::sign(&key, "at+jwt", &claims);
            let ring = KeyRing::new(vec![keys::parse(&generated.kid, alg, &generated.pkcs8, 0, None)?]);
            let expect = Expectations { issuer: "http://127.0.0.1:8080", typ: Some("at+jwt"), check_expiry: true, now: 1_900_000_000 };
            let verify = cost(budget, || {
                black_box(jwt::verify::<serde_json::Value>(&ring, black_box(&token), &expect).expect("verifies"));
            });
            rows.push((format!("verify {}", alg.as_str()), verify));
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // `argon2-all`: of this section, argon2id with every core verifying alone.
    if measured("argon2") || only.as_deref() == Some("argon2-all") {
        // The hasher as the server uses it (one slot: one hash at a time, so this is one core's cost).
        let hasher = PasswordHasher::new(1);
        let hash = runtime.block_on(hasher.hash("bench password 123".into()))?;
        let argon_budget = Duration::from_secs(3);
        if measured("argon2") {
            let hash_cost = cost(argon_budget, || {
                black_box(runtime.block_on(hasher.hash("bench password 123".into())).expect("hashes"));
            });
            let verify_cost = cost(argon_budget, || {
                assert!(runtime.block_on(hasher.verify(Some(hash.clone()), "bench password 123".into())).expect("verifies"));
            });
            rows.push(("argon2id hash".into(), hash_cost));
            rows.push(("argon2id verify".into(), verify_cost));
        }
        // The server's hasher with one slot per core, every core verifying at once: argon2id is
        // memory-bound, so two at once on shared caches cost more each than one alone.
        let all_cores = tokio::runtime::Builder::new_multi_thread().worker_threads(cores).build()?;
        let shared = PasswordHasher::new(cores);
        let together = parallel_rate(cores, argon_budget, || {
            assert!(all_cores.block_on(shared.verify(Some(hash.clone()), "bench password 123".into())).expect("verifies"));
        });
        rows.push(("argon2id verify, all cores at once".into(), cores as f64 / together));
    }

    if measured("sqlite") {
        // The exchange's writes (`Store::redeem_code`: consume the code, store the grant),
        // one after another on a fresh SQLite file with the server's settings (WAL,
        // synchronous=NORMAL); the codes are stored beforehand, untimed.
        let dir = tempfile::tempdir()?;
        let commit = runtime.block_on(redeem_cost(&format!("sqlite://{}?mode=rwc", dir.path().join("limits.db").display())))?;
        rows.push(("SQLite commit (code exchange)".into(), commit));
    }

    if as_json {
        let costs: serde_json::Map<String, serde_json::Value> = rows.iter().map(|(name, secs)| (name.clone(), json!(secs))).collect();
        println!("{}", json!({"cores": cores, "seconds": costs}));
        return Ok(());
    }
    println!("{cores} cores; cost on one thread, and the ceiling (cores ÷ cost); argon2id m=19456 KiB, t=2, p=1\n");
    println!("| {:<40} | {:>12} | {:>14} |", "operation", "cost", "ceiling /s");
    println!("|{:-<42}|{:->14}|{:->16}|", "", "", "");
    for (name, secs) in &rows {
        let ceiling = if name.starts_with("SQLite") { 1.0 / secs } else { cores as f64 / secs };
        println!("| {:<40} | {:>9.1} µs | {:>14.0} |", name, secs * 1e6, ceiling);
    }
    Ok(())
}

/// Seconds per redemption of a code: the best of three rounds of 2,000.
async fn redeem_cost(url: &str) -> anyhow::Result<f64> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let hashes: Vec<String> = (0..2000).map(|_| random_id()).collect();
        for hash in &hashes {
            store.insert_code(&code(hash)).await?;
        }
        let start = Instant::now();
        for hash in &hashes {
            let id = GrantId(random_id());
            let grant = {
                let id = id.clone();
                move |c: &NewCode| Some(NewGrant { id, client_id: c.client_id.clone(), scope: c.scope.clone(), auth: c.auth.clone(), created_at: 1_900_000_000, refresh: None })
            };
            store.redeem_code(hash, &id, 1_900_000_000, grant).await?;
        }
        best = best.min(start.elapsed().as_secs_f64() / hashes.len() as f64);
    }
    Ok(best)
}

fn code(hash: &str) -> NewCode {
    NewCode {
        code_hash: hash.to_string(),
        client_id: ClientId("bench-client".into()),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        scope: "openid email profile".into(),
        nonce: None,
        code_challenge: Some(random_id()),
        auth: Authentication { user_id: UserId("bench-user".into()), auth_time: 1_900_000_000, amr: vec!["pwd".into()], sid: random_id() },
        expires_at: 1_900_000_060,
    }
}
