//! Shared domain types. No I/O here.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::privacy::ScopeSet;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_newtype!(
    /// A user's internal id; never shown to clients (they see a pairwise `sub`).
    UserId
);
id_newtype!(ClientId);
id_newtype!(
    /// One authorization grant: the family its refresh tokens rotate in.
    GrantId
);

#[derive(Clone, Debug)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
    pub is_admin: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] =
        [GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// Whether a client has been reviewed by an admin (DESIGN §4 rule 1–2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    /// New; receives only non-sensitive scopes.
    Unverified,
    Verified,
    /// Cannot sign anyone in; its tokens stop working at once.
    Suspended,
}

impl ClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Unverified => "unverified",
            ClientStatus::Verified => "verified",
            ClientStatus::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ClientStatus::Unverified, ClientStatus::Verified, ClientStatus::Suspended].into_iter().find(|c| c.as_str() == s)
    }
}

/// An admin's decision on one scope of one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeState {
    Requested,
    Approved,
    Rejected,
}

impl ScopeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeState::Requested => "requested",
            ScopeState::Approved => "approved",
            ScopeState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ScopeState::Requested, ScopeState::Approved, ScopeState::Rejected].into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    /// SHA-256 of the client's first secret; `None` for public clients (native and browser
    /// apps). Only the marker of a confidential client: the secrets that authenticate it
    /// (several, labelled, expiring, revocable) are in the store's `client_secrets`.
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes enabled for this client: the most it may ever receive.
    pub scopes: ScopeSet,
    /// Enabled sensitive scopes an admin has approved for this client.
    pub approved_scopes: ScopeSet,
    pub status: ClientStatus,
    /// Public subjects (one `sub` per user across clients); only an admin sets this.
    pub public_subject: bool,
    pub grant_types: Vec<GrantType>,
    pub signing_alg: SigningAlg,
    pub created_at: Timestamp,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    pub fn policy<'a>(&'a self, catalogue: &'a crate::privacy::Catalogue) -> crate::privacy::ClientPolicy<'a> {
        crate::privacy::ClientPolicy { catalogue, status: self.status, enabled: &self.scopes, approved: &self.approved_scopes }
    }
}

/// Who signed in, how and when; kept in the browser session and copied into codes and grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    pub user_id: UserId,
    pub auth_time: Timestamp,
    /// RFC 8176 method references, e.g. `pwd`.
    pub amr: Vec<String>,
    /// Session id as clients see it (`sid`); not the session cookie, which rotates.
    pub sid: String,
}

impl Authentication {
    /// Whether a second factor was presented (`otp`: a TOTP or a recovery code).
    pub fn two_factor(&self) -> bool {
        self.amr.iter().any(|m| m == "otp")
    }

    /// The authentication context class, derived from the methods so that codes and grants,
    /// which store `amr`, need no column of their own.
    pub fn acr(&self) -> Acr {
        if self.two_factor() { Acr::TwoFactor } else { Acr::OneFactor }
    }
}

/// Authentication context classes (OpenID Connect Core §2 `acr`, §3.1.2.1 `acr_values`).
/// Our own URNs, documented in docs/integrate.md and advertised in discovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Acr {
    /// A password (or another single factor).
    OneFactor,
    /// A password and a second factor.
    TwoFactor,
}

impl Acr {
    pub const ALL: [Acr; 2] = [Acr::OneFactor, Acr::TwoFactor];

    pub fn as_str(self) -> &'static str {
        match self {
            Acr::OneFactor => "urn:sluis:acr:1fa",
            Acr::TwoFactor => "urn:sluis:acr:2fa",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}
