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

pub fn scope_info(name: &str) -> Option<&'static ScopeInfo> {
    SCOPES.iter().find(|s| s.name == name)
}

/// Whether a scope needs an admin's approval. Scopes we do not know are treated as sensitive.
pub fn is_sensitive(name: &str) -> bool {
    scope_info(name).is_none_or(|s| s.sensitive)
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

    pub fn from_iter<'a>(items: impl IntoIterator<Item = &'a str>) -> Self {
        Self(items.into_iter().map(str::to_string).collect())
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
