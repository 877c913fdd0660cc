//! `/account/activity`: every release of the user's data (userinfo, the user API), one
//! readable line each: "Example Shop read your email address on 2026-11-23 14:02 UTC".

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;

use super::SignedIn;
use crate::clock::Timestamp;
use crate::error::PageError;
use crate::model::{ClientId, UserId};
use crate::privacy::SCOPES;
use crate::state::AppState;
use crate::store::{Store, StoreError};
use crate::web::render;
use crate::web::templates::{ActivityLine, ActivityPage, utc_machine, utc_minute};

/// How many events the page shows (the newest).
pub const PAGE_SIZE: usize = 200;

/// One data-access event, as the user reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub at: Timestamp,
    pub app_name: String,
    /// e.g. "read your email address"
    pub summary: String,
    /// e.g. "userinfo"
    pub channel: String,
}

/// The user's data-access events, newest first, at most `limit`.
pub async fn data_access(store: &Store, user: &UserId, limit: usize) -> Result<Vec<Access>, StoreError> {
    let events = store.data_access_of_user(user, i64::try_from(limit).unwrap_or(i64::MAX)).await?;
    let mut names: HashMap<ClientId, String> = HashMap::new();
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        if !names.contains_key(&event.client_id) {
            let name = store.client(event.client_id.as_str()).await?.map_or_else(|| "A removed app".to_string(), |c| c.name);
            names.insert(event.client_id.clone(), name);
        }
        out.push(Access {
            at: event.at,
            app_name: names[&event.client_id].clone(),
            summary: summary(&event.claims),
            channel: channel(&event.endpoint).to_string(),
        });
    }
    Ok(out)
}

/// What a release told the app, in plain words, from the claim names recorded
/// (space-separated; `sub` is implied by every release and never recorded).
pub fn summary(claims: &str) -> String {
    let claims: Vec<&str> = claims.split(' ').filter(|c| !c.is_empty() && *c != "sub").collect();
    if claims.is_empty() {
        return "checked that it is you".to_string();
    }
    // One phrase per catalogue scope, in catalogue order, in the consent page's words.
    let mut phrases: Vec<String> = SCOPES
        .iter()
        .filter(|scope| scope.claims.iter().any(|c| claims.contains(c)))
        .map(|scope| lower_first(scope.description))
        .collect();
    // Claims of operator-defined scopes, by name rather than not at all.
    phrases.extend(
        claims
            .iter()
            .filter(|c| !SCOPES.iter().any(|s| s.claims.contains(c)))
            .map(|c| format!("“{c}”")),
    );
    format!("read {}", and_list(&phrases))
}

/// The endpoint a release went through, as shown.
pub fn channel(endpoint: &str) -> &str {
    match endpoint {
        "user_api" => "user API",
        other => other,
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

pub async fn get_activity(State(app): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let events = data_access(&app.store, &me.user.id, PAGE_SIZE).await?;
    let truncated_at = (events.len() >= PAGE_SIZE).then_some(PAGE_SIZE);
    let events = events
        .into_iter()
        .map(|e| ActivityLine {
            when: utc_minute(e.at),
            when_iso: utc_machine(e.at),
            app_name: e.app_name,
            summary: e.summary,
            channel: e.channel,
        })
        .collect();
    Ok(render(&ActivityPage { events, truncated_at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_become_plain_words() {
        assert_eq!(summary("email email_verified"), "read your email address");
        assert_eq!(summary("email_verified"), "read your email address");
        assert_eq!(summary("name updated_at"), "read your name and basic profile");
        assert_eq!(summary("updated_at email name email_verified"), "read your name and basic profile and your email address");
        assert_eq!(summary("email phone_number address"), "read your email address, your postal address and your phone number");
    }

    #[test]
    fn identity_alone_is_said_as_such() {
        assert_eq!(summary(""), "checked that it is you");
        assert_eq!(summary("sub"), "checked that it is you");
    }

    #[test]
    fn unknown_claims_are_named() {
        assert_eq!(summary("email shoe_size"), "read your email address and “shoe_size”");
    }

    #[test]
    fn endpoints_are_named() {
        assert_eq!(channel("user_api"), "user API");
        assert_eq!(channel("userinfo"), "userinfo");
    }
}
