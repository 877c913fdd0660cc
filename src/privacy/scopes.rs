//! The scope catalogue and a set type that matches scopes as whole tokens only.

use std::collections::BTreeSet;
use std::fmt;

/// One scope of the catalogue: what it releases and how the consent page says it.
#[derive(Debug)]
pub struct ScopeInfo {
    pub name: &'static str,
    pub claims: &'static [&'static str],
    pub description: &'static str,
    /// Releases personal data (or long-lived access): needs an admin's approval per client.
    pub sensitive: bool,
}

/// OpenID Connect Core §5.4 standard scopes, plus `offline_access` (§11).
pub const SCOPES: &[ScopeInfo] = &[
    ScopeInfo { name: "openid", claims: &["sub"], description: "Know that it is you (an identifier unique to this app)", sensitive: false },
    ScopeInfo {
        name: "profile",
        claims: &[
            "name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
            "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at",
        ],
        description: "Your name and basic profile",
        sensitive: true,
    },
    ScopeInfo { name: "email", claims: &["email", "email_verified"], description: "Your email address", sensitive: true },
    ScopeInfo { name: "address", claims: &["address"], description: "Your postal address", sensitive: true },
    ScopeInfo { name: "phone", claims: &["phone_number", "phone_number_verified"], description: "Your phone number", sensitive: true },
    ScopeInfo { name: "offline_access", claims: &[], description: "Stay connected when you are not using it", sensitive: true },
];

/// An operator-defined scope, as configured (`[[scopes]]` in sluis.toml).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomScope {
    pub name: String,
    /// Shown on the consent page, in plain words.
    pub description: String,
    /// Standard claims it releases (none for a scope that only grants API access).
    #[serde(default)]
    pub claims: Vec<String>,
    #[serde(default = "sensitive_by_default")]
    pub sensitive: bool,
}

fn sensitive_by_default() -> bool {
    true
}

/// The scopes this instance knows: the standard ones plus the operator's.
#[derive(Debug)]
pub struct Catalogue {
    scopes: Vec<&'static ScopeInfo>,
}

impl Default for Catalogue {
    fn default() -> Self {
        Self { scopes: SCOPES.iter().collect() }
    }
}

impl Catalogue {
    /// Adds the operator's scopes. They are built once per process start and live as long
    /// as it does, so they are leaked into `'static` and share the standard scopes' type.
    pub fn with_custom(custom: &[CustomScope]) -> Result<Self, String> {
        let mut catalogue = Self::default();
        let known_claims: Vec<&str> = SCOPES.iter().flat_map(|s| s.claims.iter().copied()).collect();
        for scope in custom {
            let valid_token = ScopeSet::parse(&scope.name).is_some_and(|s| s.iter().count() == 1);
            if !valid_token {
                return Err(format!("scope name {:?} is not a single valid scope token", scope.name));
            }
            if catalogue.get(&scope.name).is_some() {
                return Err(format!("scope {:?} is defined twice (or is a standard scope)", scope.name));
            }
            if scope.description.trim().is_empty() {
                return Err(format!("scope {:?} needs a description for the consent page", scope.name));
            }
            if let Some(claim) = scope.claims.iter().find(|c| !known_claims.contains(&c.as_str()) || c.as_str() == "sub") {
                return Err(format!("scope {:?} releases {claim:?}, which is not a standard claim", scope.name));
            }
            let claims: Vec<&'static str> = scope.claims.iter().map(|c| &*Box::leak(c.clone().into_boxed_str())).collect();
            let info = ScopeInfo {
                name: Box::leak(scope.name.clone().into_boxed_str()),
                claims: Box::leak(claims.into_boxed_slice()),
                description: Box::leak(scope.description.trim().to_string().into_boxed_str()),
                sensitive: scope.sensitive,
            };
            catalogue.scopes.push(Box::leak(Box::new(info)));
        }
        Ok(catalogue)
    }

    pub fn get(&self, name: &str) -> Option<&'static ScopeInfo> {
        self.scopes.iter().copied().find(|s| s.name == name)
    }

    /// Whether a scope needs an admin's approval. Unknown scopes are treated as sensitive.
    pub fn is_sensitive(&self, name: &str) -> bool {
        self.get(name).is_none_or(|s| s.sensitive)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'static ScopeInfo> + '_ {
        self.scopes.iter().copied()
    }
}

/// A set of scope tokens (RFC 6749 §3.3: space-delimited, case-sensitive, order irrelevant).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a `scope` parameter. Returns `None` if a token has characters RFC 6749 §3.3 forbids.
    pub fn parse(s: &str) -> Option<Self> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            // scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if !token.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)) {
                return None;
            }
            set.insert(token.to_string());
        }
        Some(Self(set))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.union(&other.0).cloned().collect())
    }

    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<'a> FromIterator<&'a str> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(items: I) -> Self {
        Self(items.into_iter().map(str::to_string).collect())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(name: &str, claims: &[&str]) -> CustomScope {
        CustomScope { name: name.into(), description: "Read your orders".into(), claims: claims.iter().map(|c| c.to_string()).collect(), sensitive: true }
    }

    #[test]
    fn operator_scopes_join_the_catalogue() {
        let catalogue = Catalogue::with_custom(&[custom("orders:read", &[]), CustomScope { sensitive: false, ..custom("newsletter", &["email"]) }]).unwrap();
        assert_eq!(catalogue.get("orders:read").unwrap().description, "Read your orders");
        assert!(catalogue.is_sensitive("orders:read"));
        assert!(!catalogue.is_sensitive("newsletter"));
        assert_eq!(catalogue.get("newsletter").unwrap().claims, ["email"]);
        assert!(catalogue.is_sensitive("never-heard-of-it"));
        assert!(Catalogue::default().get("orders:read").is_none());
    }

    #[test]
    fn operator_scopes_are_checked() {
        assert!(Catalogue::with_custom(&[custom("email", &[])]).is_err(), "standard name");
        assert!(Catalogue::with_custom(&[custom("a b", &[])]).is_err(), "two tokens");
        assert!(Catalogue::with_custom(&[custom("x", &["password"])]).is_err(), "unknown claim");
        assert!(Catalogue::with_custom(&[custom("x", &[]), custom("x", &[])]).is_err(), "twice");
        assert!(Catalogue::with_custom(&[CustomScope { description: " ".into(), ..custom("x", &[]) }]).is_err());
    }

    #[test]
    fn matches_whole_tokens_only() {
        let set = ScopeSet::parse("openid email_marketing").unwrap();
        assert!(!set.contains("email"));
        assert!(set.contains("email_marketing"));
    }

    #[test]
    fn rejects_forbidden_characters() {
        assert!(ScopeSet::parse("openid \"quoted\"").is_none());
        assert!(ScopeSet::parse("openid back\\slash").is_none());
        assert!(ScopeSet::parse("caf\u{e9}").is_none());
    }

    #[test]
    fn display_is_sorted_and_deduplicated() {
        assert_eq!(ScopeSet::parse("  profile openid  openid ").unwrap().to_string(), "openid profile");
    }
}
