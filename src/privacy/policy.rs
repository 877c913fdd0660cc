//! The release rule (DESIGN §4), as pure functions. A client receives a claim about a user
//! only if (1) the client is not suspended and the scope maps to the claim, (2) the scope is
//! enabled for the client and, if sensitive, approved by an admin for a verified client,
//! (3) the user consented and has not withdrawn, (4) the user signed in to the client at
//! least once (an active client-user link).

use super::{Catalogue, Claims, ScopeSet};
use crate::model::{ClientStatus, User};

/// What an admin decided about a client.
#[derive(Clone, Copy, Debug)]
pub struct ClientPolicy<'a> {
    /// Which scopes are sensitive, and what they release.
    pub catalogue: &'a Catalogue,
    pub status: ClientStatus,
    pub enabled: &'a ScopeSet,
    pub approved: &'a ScopeSet,
}

/// Rules 1–2: of `requested`, the scopes this client may be granted at all.
pub fn grantable(policy: &ClientPolicy<'_>, requested: &ScopeSet) -> ScopeSet {
    if policy.status == ClientStatus::Suspended {
        return ScopeSet::default();
    }
    let verified = policy.status == ClientStatus::Verified;
    ScopeSet::from_iter(
        requested
            .iter()
            .filter(|s| policy.enabled.contains(s) && (!policy.catalogue.is_sensitive(s) || (verified && policy.approved.contains(s)))),
    )
}

/// The state of the client-user link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// The user never signed in to this client.
    None,
    Active,
    /// The user withdrew the app.
    Withdrawn,
}

/// Everything the rule looks at for one release.
#[derive(Clone, Copy, Debug)]
pub struct ReleaseFacts<'a> {
    pub policy: ClientPolicy<'a>,
    /// The scope of the token presented (what was granted, possibly narrowed on refresh).
    pub token_scope: &'a ScopeSet,
    /// The scopes the user consented to for this client; `None` if never or withdrawn.
    pub consent: Option<&'a ScopeSet>,
    pub link: Link,
}

/// Rules 1–4: the scopes whose claims may be released now.
pub fn releasable(facts: &ReleaseFacts<'_>) -> ScopeSet {
    let Some(consent) = facts.consent else { return ScopeSet::default() };
    if facts.link != Link::Active {
        return ScopeSet::default();
    }
    grantable(&facts.policy, facts.token_scope).intersection(consent)
}

/// The claims about `user` that the client may receive (`sub` is added by the caller, as
/// it is per client).
pub fn release(user: &User, facts: &ReleaseFacts<'_>) -> Claims {
    super::release::claims_for(user, &releasable(facts), facts.policy.catalogue)
}

#[cfg(test)]
mod tests {
    use super::*;

    static CATALOGUE: std::sync::LazyLock<Catalogue> = std::sync::LazyLock::new(Catalogue::default);
    use crate::model::UserId;

    fn user() -> User {
        User {
            id: UserId("u".into()),
            email: "ada@example.com".into(),
            email_verified: true,
            name: Some("Ada".into()),
            is_admin: false,
            created_at: 1,
            updated_at: 2,
        }
    }

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    /// The whole matrix: client status × sensitivity × verification state × consent × link
    /// (withdrawal included). The expectation is written out independently of the code.
    #[test]
    fn release_matrix() {
        let statuses = [ClientStatus::Unverified, ClientStatus::Verified, ClientStatus::Suspended];
        // (scope, sensitive)
        let scopes = [("openid", false), ("email", true)];
        #[derive(Clone, Copy, Debug, PartialEq)]
        enum Verification {
            NotEnabled,
            Requested,
            Approved,
            Rejected,
        }
        let verifications = [Verification::NotEnabled, Verification::Requested, Verification::Approved, Verification::Rejected];
        let consents = [None, Some("openid"), Some("openid email")];
        let links = [Link::None, Link::Active, Link::Withdrawn];
        let mut cases = 0;
        for status in statuses {
            for (scope, sensitive) in scopes {
                for verification in verifications {
                    for consent in consents {
                        for link in links {
                            let enabled = if verification == Verification::NotEnabled { set("profile") } else { set(scope) };
                            let approved = if verification == Verification::Approved { set(scope) } else { ScopeSet::default() };
                            let consent_set = consent.map(set);
                            // Withdrawal ends consent as well as the link.
                            let consent_set = if link == Link::Withdrawn { None } else { consent_set };
                            let token_scope = set(scope);
                            let facts = ReleaseFacts {
                                policy: ClientPolicy { catalogue: &CATALOGUE, status, enabled: &enabled, approved: &approved },
                                token_scope: &token_scope,
                                consent: consent_set.as_ref(),
                                link,
                            };
                            let expected = status != ClientStatus::Suspended
                                && verification != Verification::NotEnabled
                                && (!sensitive || (status == ClientStatus::Verified && verification == Verification::Approved))
                                && consent_set.as_ref().is_some_and(|c| c.contains(scope))
                                && link == Link::Active;
                            let got = releasable(&facts).contains(scope);
                            assert_eq!(got, expected, "{status:?} {scope} {verification:?} consent={consent:?} {link:?}");
                            let claims = release(&user(), &facts);
                            assert_eq!(claims.contains_key("email"), expected && scope == "email");
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 3 * 2 * 4 * 3 * 3);
    }

    #[test]
    fn unverified_client_gets_only_the_non_sensitive_part() {
        let enabled = set("openid email profile");
        let approved = set("email profile");
        let policy = ClientPolicy { catalogue: &CATALOGUE, status: ClientStatus::Unverified, enabled: &enabled, approved: &approved };
        assert_eq!(grantable(&policy, &set("openid email profile")), set("openid"));
        let policy = ClientPolicy { catalogue: &CATALOGUE, status: ClientStatus::Verified, ..policy };
        assert_eq!(grantable(&policy, &set("openid email profile phone")), set("openid email profile"));
    }

    /// Gaps the matrix (one scope, token scope = that scope) leaves: several scopes at once,
    /// a token narrower or wider than the consent, and an approval for a scope no longer enabled.
    #[test]
    fn token_scope_consent_and_enabled_scopes_each_bound_the_release() {
        let enabled = set("openid email profile");
        let approved = set("email phone");
        let policy = ClientPolicy { catalogue: &CATALOGUE, status: ClientStatus::Verified, enabled: &enabled, approved: &approved };
        let facts = |token_scope, consent| ReleaseFacts { policy, token_scope, consent, link: Link::Active };
        let all = set("openid email profile phone");
        let openid = set("openid");
        // profile is not approved, phone is approved but not enabled.
        assert_eq!(releasable(&facts(&all, Some(&all))), set("email openid"));
        // The token bounds the release even where the consent is wider...
        assert_eq!(releasable(&facts(&openid, Some(&all))), set("openid"));
        // ...and the consent where the token is wider.
        assert_eq!(releasable(&facts(&all, Some(&openid))), set("openid"));
        let claims = release(&user(), &facts(&all, Some(&all)));
        let mut names: Vec<&str> = claims.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["email", "email_verified"]);
    }

    #[test]
    fn scopes_match_whole_tokens_only() {
        let enabled = set("openid email");
        let approved = set("email");
        let policy = ClientPolicy { catalogue: &CATALOGUE, status: ClientStatus::Verified, enabled: &enabled, approved: &approved };
        assert_eq!(grantable(&policy, &set("openid email_marketing emai")), set("openid"));
    }
}
