//! Everything a request handler may use, built once at start.

use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::clock::{Clock, Timestamp};
use crate::config::Config;
use crate::crypto::keys::KeyRing;
use crate::crypto::password::PasswordHasher;
use crate::crypto::seal::Sealer;
use crate::privacy::Catalogue;
use crate::model::{Client, ClientId, UserId};
use crate::store::Store;

/// What every handler shares. One `Arc` inside: axum clones the state for every extractor
/// and middleware of every request, and cloning a dozen `Arc`s each time (atomic counters
/// bouncing between cores) cost a quarter of the CPU of a discovery request.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub passwords: PasswordHasher,
    pub keys: Arc<KeyCache>,
    pub secrets: Arc<InstanceSecrets>,
    pub limits: Arc<crate::web::rate_limit::RateLimits>,
    /// The scope catalogue: standard scopes plus the operator's.
    pub scopes: Arc<Catalogue>,
    /// Discovery documents, serialised once: they only change with the config.
    pub discovery: Bytes,
    /// Outgoing mail; `None` when the operator set up none (`[mail]`).
    pub mailer: Option<crate::mail::Mailer>,
    /// Upstream (social) sign-in providers, with their cached metadata.
    pub upstreams: Arc<crate::login::upstream::Providers>,
}

impl Shared {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn issuer(&self) -> &str {
        self.config.issuer()
    }

    /// The `sub` a client knows the user by: pairwise unless an admin set the client to
    /// public subjects.
    pub fn subject(&self, client: &Client, user: &UserId) -> String {
        if client.public_subject {
            user.to_string()
        } else {
            self.secrets.pairwise_subject(&client.id, user)
        }
    }
}

/// The key ring in use, swapped whole when keys are rotated.
#[derive(Debug)]
pub struct KeyCache(RwLock<Arc<KeyRing>>);

impl KeyCache {
    pub fn new(ring: KeyRing) -> Self {
        Self(RwLock::new(Arc::new(ring)))
    }

    pub fn ring(&self) -> Arc<KeyRing> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, ring: KeyRing) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
    }
}

/// Keys derived from the instance secret.
#[derive(Debug)]
pub struct InstanceSecrets {
    pub key_sealer: Sealer,
    /// Seals TOTP secrets at rest (its own purpose: a sealed key cannot be opened as one).
    pub totp_sealer: Sealer,
    pairwise: aws_lc_rs::hmac::Key,
}

impl InstanceSecrets {
    pub fn new(instance_secret: &str) -> Self {
        let mut material = b"sluis pairwise subject v1\0".to_vec();
        material.extend_from_slice(instance_secret.as_bytes());
        let derived = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &material);
        Self {
            key_sealer: Sealer::new(instance_secret, "signing keys"),
            totp_sealer: Sealer::new(instance_secret, "totp secrets"),
            pairwise: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// OpenID Connect Core §8.1: a pairwise `sub`, stable per client and user, that two
    /// clients cannot correlate.
    pub fn pairwise_subject(&self, client: &ClientId, user: &UserId) -> String {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.pairwise);
        ctx.update(client.as_str().as_bytes());
        ctx.update(b"\0");
        ctx.update(user.as_str().as_bytes());
        crate::crypto::b64url(ctx.sign().as_ref())
    }
}
