//! `release`: the one place that decides which claims about a user a client receives.

use serde_json::{Map, Value, json};

use crate::model::User;
use crate::privacy::{Catalogue, ScopeSet};

pub type Claims = Map<String, Value>;

/// Every claim Sluis holds about `user` (claims it has no value for are absent).
fn user_claims(user: &User) -> Claims {
    let mut claims = Claims::new();
    claims.insert("email".into(), json!(user.email));
    claims.insert("email_verified".into(), json!(user.email_verified));
    if let Some(name) = &user.name {
        claims.insert("name".into(), json!(name));
    }
    claims.insert("updated_at".into(), json!(user.updated_at));
    claims
}

/// Claims about `user` that the scopes in `scope` map to in the catalogue. Callers go
/// through [`super::release`], which decides the scopes.
pub(super) fn claims_for(user: &User, scope: &ScopeSet, catalogue: &Catalogue) -> Claims {
    let all = user_claims(user);
    let mut claims = Claims::new();
    for info in scope.iter().filter_map(|s| catalogue.get(s)) {
        for name in info.claims {
            if let Some(value) = all.get(*name) {
                claims.insert((*name).to_string(), value.clone());
            }
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserId;

    fn user() -> User {
        User {
            id: UserId("u1".into()),
            email: "ada@example.com".into(),
            email_verified: true,
            name: Some("Ada".into()),
            is_admin: false,
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn openid_alone_releases_nothing() {
        assert!(claims_for(&user(), &ScopeSet::parse("openid").unwrap(), &Catalogue::default()).is_empty());
    }

    #[test]
    fn email_scope_releases_email_only() {
        let claims = claims_for(&user(), &ScopeSet::parse("openid email").unwrap(), &Catalogue::default());
        assert_eq!(claims.get("email"), Some(&json!("ada@example.com")));
        assert!(claims.get("name").is_none());
    }

    #[test]
    fn similar_scope_names_release_nothing() {
        let claims = claims_for(&user(), &ScopeSet::parse("openid email_marketing profile2").unwrap(), &Catalogue::default());
        assert!(claims.is_empty());
    }
}
