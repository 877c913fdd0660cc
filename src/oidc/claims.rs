//! Gathering the facts for `privacy::release` and recording the release: the one path by
//! which userinfo and the user API hand out claims.

use serde_json::json;

use crate::model::Client;
use crate::privacy::{self, Claims, Link, ReleaseFacts, ScopeSet};
use crate::state::AppState;
use crate::store::{DataAccess, ReleaseSubject, StoreError};

/// The claims `client` may receive about the subject's user for `scope` now, with `sub`;
/// every release is recorded as a data-access event the user can see. The facts were read
/// with the request's other state (`Store::access_record`, `Store::release_subject_by_sub`).
pub async fn released_claims(
    app: &AppState,
    client: &Client,
    subject: &ReleaseSubject,
    scope: &ScopeSet,
    endpoint: &str,
) -> Result<Claims, StoreError> {
    let user = &subject.user;
    let consent = subject.consent.as_deref().and_then(ScopeSet::parse);
    let link = match &subject.link {
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
