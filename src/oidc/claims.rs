//! Gathering the facts for `privacy::release` and recording the release: the one path by
//! which userinfo and the user API hand out claims.

use serde_json::json;

use crate::model::{Client, User};
use crate::privacy::{self, Claims, Link, ReleaseFacts, ScopeSet};
use crate::state::AppState;
use crate::store::{DataAccess, StoreError};

/// The claims `client` may receive about `user` for `scope` now, with `sub`; every
/// release is recorded as a data-access event the user can see.
pub async fn released_claims(
    app: &AppState,
    client: &Client,
    user: &User,
    scope: &ScopeSet,
    endpoint: &str,
) -> Result<Claims, StoreError> {
    let consent = app.store.consent(&user.id, &client.id).await?.and_then(|s| ScopeSet::parse(&s));
    let link = match app.store.link(&user.id, &client.id).await? {
        None => Link::None,
        Some(l) if l.withdrawn_at.is_some() => Link::Withdrawn,
        Some(_) => Link::Active,
    };
    let facts = ReleaseFacts { policy: client.policy(&app.scopes), token_scope: scope, consent: consent.as_ref(), link };
    let mut claims = privacy::release(user, &facts);
    let names: Vec<&str> = claims.keys().map(String::as_str).collect();
    app.store
        .record_data_access(&DataAccess {
            at: app.now(),
            user_id: user.id.clone(),
            client_id: client.id.clone(),
            endpoint: endpoint.to_string(),
            claims: names.join(" "),
        })
        .await?;
    claims.insert("sub".into(), json!(app.subject(client, &user.id)));
    Ok(claims)
}
