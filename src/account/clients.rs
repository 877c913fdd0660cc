//! Client owners' self-service (`/account/clients`): a signed-in user registers and manages
//! their own clients — name, redirect URIs, secrets (several at once, so they can be rotated
//! without downtime) — and asks an admin to verify scopes, saying why they need them.
//!
//! Self-registered clients start unverified, so until an admin approves a sensitive scope
//! they receive only the non-sensitive part (DESIGN §4 rule 2). Owners see and change only
//! their own clients; anyone else's is "not found", never "forbidden", so ids cannot be probed.
//! Every change goes to the audit log with the owner as actor.

use crate::admin::{self, Actor, AdminError, NewClientSpec};
use crate::clock::Timestamp;
use crate::config::{ClientRegistration, Config};
use crate::crypto::{random_id, random_token, token_hash};
use crate::model::{Client, User, UserId};
use crate::privacy::{Catalogue, ScopeSet};
use crate::store::{ClientSecret, NewClientSecret, ScopeDecision, Store, StoreError};

/// Most URIs of one kind a client may register.
const MAX_URIS: usize = 20;
const MAX_LABEL: usize = 100;
const MAX_PURPOSE: usize = 2000;
/// Longest expiry a secret may be given: about ten years.
pub const MAX_EXPIRY_DAYS: u32 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// Input the owner can correct; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// No such client, or not this user's.
    #[error("no such client")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AdminError> for OwnerError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(message) => OwnerError::Invalid(capitalise(&message)),
            AdminError::DuplicateEmail => OwnerError::Invalid(e.to_string()),
            AdminError::Store(e) => OwnerError::Store(e),
        }
    }
}

fn invalid<T>(message: impl Into<String>) -> Result<T, OwnerError> {
    Err(OwnerError::Invalid(message.into()))
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Whether `user` may register and manage clients here: admins always, others if the
/// operator opened registration to users.
pub fn may_register(config: &Config, user: &User) -> bool {
    user.is_admin || config.client_registration == ClientRegistration::Users
}

/// The actor an owner's change is audited as.
pub fn actor(user: &UserId, ip: Option<String>) -> Actor {
    Actor { name: format!("user:{user}"), ip }
}

/// A secret to show its owner once; its `Debug` never prints it.
pub struct NewSecret(String);

impl NewSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSecret(…)")
    }
}

/// The lines of a textarea with one URI per line, blank lines dropped.
pub fn uri_lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// The "expires in days" field: empty for a secret that does not expire.
pub fn expiry_days(input: Option<&str>) -> Result<Option<u32>, OwnerError> {
    match input.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(days) => match days.parse::<u32>() {
            Ok(days) => Ok(Some(days)),
            Err(_) => invalid(format!("The expiry must be a whole number of days from 1 to {MAX_EXPIRY_DAYS}, or empty for none.")),
        },
    }
}

/// Sensitive catalogue scopes an owner can ask to have verified (non-sensitive ones, like
/// `openid`, every client has without review).
pub fn requestable_scopes(catalogue: &Catalogue) -> impl Iterator<Item = &'static str> + '_ {
    catalogue.iter().filter(|s| s.sensitive).map(|s| s.name)
}

/// What a user fills in to register a client.
#[derive(Clone, Debug, Default)]
pub struct Registration {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (browser or native app) has no secret and must use PKCE.
    pub public: bool,
    /// Sensitive scopes to request verification for.
    pub scopes: Vec<String>,
    /// Why it needs them; required with any scope.
    pub purpose: String,
}

fn check_uris(redirect_uris: &[String], post_logout_redirect_uris: &[String]) -> Result<(), OwnerError> {
    if redirect_uris.is_empty() {
        return invalid("Enter at least one redirect URI: where users return after signing in.");
    }
    if redirect_uris.len() > MAX_URIS || post_logout_redirect_uris.len() > MAX_URIS {
        return invalid(format!("A client can have at most {MAX_URIS} redirect URIs of each kind."));
    }
    Ok(())
}

/// Checks a verification request; returns the trimmed purpose.
fn check_request<'a>(catalogue: &Catalogue, scopes: &[String], purpose: &'a str) -> Result<&'a str, OwnerError> {
    for scope in scopes {
        if catalogue.get(scope).is_none() || !catalogue.is_sensitive(scope) {
            return invalid(format!("“{scope}” is not a scope that needs verification."));
        }
    }
    let purpose = purpose.trim();
    if !scopes.is_empty() && purpose.is_empty() {
        return invalid("Say what your app needs these scopes for: the administrators decide on that purpose.");
    }
    if purpose.chars().count() > MAX_PURPOSE {
        return invalid(format!("The purpose can have at most {MAX_PURPOSE} characters."));
    }
    Ok(purpose)
}

/// Registers a client owned by `owner`: unverified, its requested scopes `requested` with
/// the purpose. Returns it with its first secret (confidential clients), to show once.
pub async fn register(store: &Store, catalogue: &Catalogue, owner: &User, reg: Registration, actor: &Actor, now: Timestamp) -> Result<(Client, Option<NewSecret>), OwnerError> {
    check_uris(&reg.redirect_uris, &reg.post_logout_redirect_uris)?;
    let purpose = check_request(catalogue, &reg.scopes, &reg.purpose)?.to_string();
    let mut scopes = vec!["openid".to_string()];
    scopes.extend(reg.scopes.iter().cloned());
    // Confidential clients may also call the user API on their own behalf.
    let mut grant_types = vec!["authorization_code".to_string(), "refresh_token".to_string()];
    if !reg.public {
        grant_types.push("client_credentials".into());
    }
    let spec = NewClientSpec {
        name: reg.name,
        redirect_uris: reg.redirect_uris,
        post_logout_redirect_uris: reg.post_logout_redirect_uris,
        public: reg.public,
        scopes,
        grant_types,
        signing_alg: None,
        verified: false,
    };
    let (client, secret) = admin::create_owned_client(store, catalogue, spec, Some(&owner.id), actor, now).await?;
    if !reg.scopes.is_empty() {
        let requested: Vec<&str> = reg.scopes.iter().map(String::as_str).collect();
        if !store.request_scopes(&client.id, &client.scopes, &requested, &purpose, now).await? {
            return Err(OwnerError::NotFound);
        }
        let details = serde_json::json!({"scopes": requested, "purpose": purpose});
        admin::audit(store, actor, "client.scopes.request", client.id.as_str(), details, now).await?;
    }
    Ok((client, secret.map(NewSecret)))
}

/// One of the owner's clients, with what the pages show about it.
pub struct OwnedClient {
    pub client: Client,
    pub decisions: Vec<ScopeDecision>,
    pub secrets: Vec<ClientSecret>,
}

/// The owner's clients, newest first, with their scope decisions.
pub async fn clients_of(store: &Store, owner: &UserId) -> Result<Vec<(Client, Vec<ScopeDecision>)>, StoreError> {
    let clients = store.clients_of_owner(owner).await?;
    let mut out = Vec::with_capacity(clients.len());
    for client in clients {
        let decisions = store.scope_decisions(&client.id).await?;
        out.push((client, decisions));
    }
    Ok(out)
}

async fn owned(store: &Store, owner: &UserId, client_id: &str) -> Result<Client, OwnerError> {
    store.owned_client(client_id, owner).await?.ok_or(OwnerError::NotFound)
}

/// One client of the owner, with its decisions and secrets.
pub async fn client_of(store: &Store, owner: &UserId, client_id: &str) -> Result<OwnedClient, OwnerError> {
    let client = owned(store, owner, client_id).await?;
    let decisions = store.scope_decisions(&client.id).await?;
    let secrets = store.client_secrets(&client.id).await?;
    Ok(OwnedClient { client, decisions, secrets })
}

/// What an owner may change after registration.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
}

pub async fn update(store: &Store, owner: &UserId, client_id: &str, settings: Settings, actor: &Actor, now: Timestamp) -> Result<(), OwnerError> {
    let client = owned(store, owner, client_id).await?;
    check_uris(&settings.redirect_uris, &settings.post_logout_redirect_uris)?;
    let name = admin::check_client_fields(&settings.name, &settings.redirect_uris, &settings.post_logout_redirect_uris)?;
    store.update_client_registration(&client.id, name, &settings.redirect_uris, &settings.post_logout_redirect_uris).await?;
    let details = serde_json::json!({
        "name": name, "redirect_uris": settings.redirect_uris, "post_logout_redirect_uris": settings.post_logout_redirect_uris,
        "previous": {"name": client.name, "redirect_uris": client.redirect_uris, "post_logout_redirect_uris": client.post_logout_redirect_uris},
    });
    admin::audit(store, actor, "client.update", client.id.as_str(), details, now).await?;
    Ok(())
}

/// Adds a secret, valid for `expires_in_days` if given. The old ones keep working until
/// revoked or expired, so clients can switch over without downtime.
pub async fn add_secret(
    store: &Store,
    owner: &UserId,
    client_id: &str,
    label: &str,
    expires_in_days: Option<u32>,
    actor: &Actor,
    now: Timestamp,
) -> Result<NewSecret, OwnerError> {
    let client = owned(store, owner, client_id).await?;
    if client.is_public() {
        return invalid("This is a public client: it has no secrets (it proves itself with PKCE instead).");
    }
    let label = label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL {
        return invalid(format!("Give the secret a label of 1 to {MAX_LABEL} characters, such as where it is used."));
    }
    let expires_at = match expires_in_days {
        Some(days) if !(1..=MAX_EXPIRY_DAYS).contains(&days) => {
            return invalid(format!("The expiry must be from 1 to {MAX_EXPIRY_DAYS} days, or empty for none."));
        }
        Some(days) => Some(now + i64::from(days) * 24 * 3600),
        None => None,
    };
    let secret = random_token();
    let id = random_id();
    let new = NewClientSecret { id: &id, client_id: &client.id, label, secret_hash: &token_hash(&secret), created_at: now, expires_at };
    store.add_client_secret(&new).await?;
    let details = serde_json::json!({"secret_id": id, "label": label, "expires_at": expires_at});
    admin::audit(store, actor, "client.secret.add", client.id.as_str(), details, now).await?;
    Ok(NewSecret(secret))
}

/// Revokes a secret at once. Returns its label.
pub async fn revoke_secret(store: &Store, owner: &UserId, client_id: &str, secret_id: &str, actor: &Actor, now: Timestamp) -> Result<String, OwnerError> {
    let client = owned(store, owner, client_id).await?;
    let secrets = store.client_secrets(&client.id).await?;
    let secret = secrets.iter().find(|s| s.id == secret_id).ok_or(OwnerError::NotFound)?;
    if secret.revoked_at.is_some() {
        return invalid(format!("The secret “{}” was already revoked.", secret.label));
    }
    store.revoke_client_secret(&client.id, secret_id, now).await?;
    let details = serde_json::json!({"secret_id": secret_id, "label": secret.label});
    admin::audit(store, actor, "client.secret.revoke", client.id.as_str(), details, now).await?;
    Ok(secret.label.clone())
}

/// What an owner asks the admins to verify, and why.
pub struct VerificationRequest<'a> {
    pub scopes: &'a [String],
    pub purpose: &'a str,
}

/// Asks the admins to verify `scopes` for the client, for the stated purpose. The scopes
/// are enabled for the client, which still receives none of them until one is approved.
/// Asking again for a rejected scope puts it back in the queue; an approved one stays approved.
pub async fn request_verification(
    store: &Store,
    catalogue: &Catalogue,
    owner: &UserId,
    client_id: &str,
    request: &VerificationRequest<'_>,
    actor: &Actor,
    now: Timestamp,
) -> Result<(), OwnerError> {
    let VerificationRequest { scopes, purpose } = *request;
    let client = owned(store, owner, client_id).await?;
    if scopes.is_empty() {
        return invalid("Choose at least one scope to have verified.");
    }
    let purpose = check_request(catalogue, scopes, purpose)?;
    let decisions = store.scope_decisions(&client.id).await?;
    let approved = |scope: &str| client.approved_scopes.contains(scope);
    if let Some(done) = scopes.iter().find(|s| approved(s)) {
        return invalid(format!("“{done}” is already approved for this client."));
    }
    let requested: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let enabled = client.scopes.union(&ScopeSet::from_iter(requested.iter().copied()));
    if !store.request_scopes(&client.id, &enabled, &requested, purpose, now).await? {
        return Err(OwnerError::NotFound);
    }
    let previous: Vec<_> = decisions
        .iter()
        .filter(|d| requested.contains(&d.scope.as_str()))
        .map(|d| serde_json::json!({"scope": d.scope, "state": d.state.as_str()}))
        .collect();
    let details = serde_json::json!({"scopes": requested, "purpose": purpose, "previous": previous});
    admin::audit(store, actor, "client.scopes.request", client.id.as_str(), details, now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_uri_per_line() {
        assert_eq!(uri_lines(" https://a.example/cb \r\n\n  \nhttps://b.example/cb"), ["https://a.example/cb", "https://b.example/cb"]);
        assert!(uri_lines("\n \n").is_empty());
    }

    #[test]
    fn requests_need_sensitive_catalogue_scopes_and_a_purpose() {
        let scopes = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(check_request(&Catalogue::default(), &scopes(&["email"]), "  newsletters  ").unwrap(), "newsletters");
        assert!(check_request(&Catalogue::default(), &scopes(&["email"]), "  ").is_err());
        assert!(check_request(&Catalogue::default(), &scopes(&["openid"]), "why").is_err(), "openid needs no review");
        assert!(check_request(&Catalogue::default(), &scopes(&["shoe_size"]), "why").is_err(), "not in the catalogue");
        assert!(check_request(&Catalogue::default(), &[], "").is_ok(), "nothing asked, nothing to explain");
        assert!(check_request(&Catalogue::default(), &scopes(&["email"]), &"x".repeat(MAX_PURPOSE + 1)).is_err());
    }

    #[test]
    fn registration_is_for_admins_unless_opened() {
        let user = |is_admin| User {
            id: UserId("u".into()),
            email: "a@example.com".into(),
            email_verified: false,
            name: None,
            is_admin,
            created_at: 0,
            updated_at: 0,
        };
        let admins = Config::default();
        assert!(may_register(&admins, &user(true)));
        assert!(!may_register(&admins, &user(false)));
        let users = Config { client_registration: ClientRegistration::Users, ..Config::default() };
        assert!(may_register(&users, &user(false)));
    }

    #[test]
    fn expiry_is_optional_whole_days() {
        assert_eq!(expiry_days(None).unwrap(), None);
        assert_eq!(expiry_days(Some(" ")).unwrap(), None);
        assert_eq!(expiry_days(Some("30")).unwrap(), Some(30));
        assert!(expiry_days(Some("1.5")).is_err());
        assert!(expiry_days(Some("-1")).is_err());
    }

    #[test]
    fn new_secrets_do_not_print() {
        assert_eq!(format!("{:?}", NewSecret("s3cr3t".into())), "NewSecret(…)");
    }
}
