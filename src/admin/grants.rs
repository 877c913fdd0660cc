//! Admin review of scope grants: per client, which scopes are verified and how many users
//! granted each; per user, which clients hold which scopes since when. As a page and JSON.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::PageError;
use crate::model::{ClientId, ScopeState};
use crate::state::AppState;
use crate::web::{format_time, render};

const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct GrantFilter {
    /// A user's email: show what that user granted.
    user: Option<String>,
    /// A scope: show the clients holding it.
    scope: Option<String>,
    /// A client id: show that client's scopes and counts.
    client: Option<String>,
    page: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ScopeSummary {
    scope: String,
    state: &'static str,
    users: i64,
}

#[derive(Debug, Serialize)]
pub struct ClientSummary {
    client_id: String,
    name: String,
    status: &'static str,
    scopes: Vec<ScopeSummary>,
}

#[derive(Debug, Serialize)]
pub struct UserGrantRow {
    client_id: String,
    client_name: String,
    scope: String,
    since: i64,
    #[serde(skip)]
    since_text: String,
}

#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum GrantReview {
    Clients { page: i64, has_more: bool, clients: Vec<ClientSummary> },
    User { email: String, found: bool, grants: Vec<UserGrantRow> },
    Scope { scope: String, page: i64, has_more: bool, clients: Vec<ClientSummary> },
}

async fn summary(app: &AppState, id: &ClientId, only: Option<&str>) -> Result<Option<ClientSummary>, PageError> {
    let Some(client) = app.store.client(id.as_str()).await? else { return Ok(None) };
    let decisions = app.store.scope_decisions(&client.id).await?;
    let counts = app.store.scope_counts(&client.id).await?;
    let scopes = client
        .scopes
        .iter()
        .filter(|s| only.is_none_or(|o| o == *s))
        .map(|scope| ScopeSummary {
            scope: scope.to_string(),
            state: if !app.scopes.is_sensitive(scope) {
                "not needed"
            } else {
                decisions.iter().find(|d| d.scope == scope).map_or(ScopeState::Requested, |d| d.state).as_str()
            },
            users: counts.iter().find(|c| c.scope == scope).map_or(0, |c| c.users),
        })
        .collect();
    Ok(Some(ClientSummary { client_id: client.id.to_string(), name: client.name, status: client.status.as_str(), scopes }))
}

pub async fn review(app: &AppState, filter: &GrantFilter) -> Result<GrantReview, PageError> {
    let page = filter.page.unwrap_or(1).max(1);
    let offset = (page - 1) * PAGE_SIZE;
    if let Some(email) = filter.user.as_deref().filter(|e| !e.is_empty()) {
        let Some((user, _)) = app.store.user_credentials(email).await? else {
            return Ok(GrantReview::User { email: email.to_string(), found: false, grants: vec![] });
        };
        let mut grants = Vec::new();
        for g in app.store.grants_of_user(&user.id).await? {
            let client_name = app.store.client(g.client_id.as_str()).await?.map(|c| c.name).unwrap_or_default();
            grants.push(UserGrantRow { client_id: g.client_id.to_string(), client_name, scope: g.scope, since: g.granted_at, since_text: format_time(g.granted_at) });
        }
        return Ok(GrantReview::User { email: user.email, found: true, grants });
    }
    if let Some(id) = filter.client.as_deref().filter(|c| !c.is_empty()) {
        let clients: Vec<ClientSummary> = summary(app, &ClientId(id.to_string()), None).await?.into_iter().collect();
        return Ok(GrantReview::Clients { page: 1, has_more: false, clients });
    }
    if let Some(scope) = filter.scope.as_deref().filter(|s| !s.is_empty()) {
        let mut held = app.store.clients_with_scope(scope, PAGE_SIZE + 1, offset).await?;
        let has_more = held.len() as i64 > PAGE_SIZE;
        held.truncate(PAGE_SIZE as usize);
        let mut clients = Vec::new();
        for (id, _) in held {
            clients.extend(summary(app, &id, Some(scope)).await?);
        }
        return Ok(GrantReview::Scope { scope: scope.to_string(), page, has_more, clients });
    }
    let mut listed = app.store.list_clients(None, PAGE_SIZE + 1, offset).await?;
    let has_more = listed.len() as i64 > PAGE_SIZE;
    listed.truncate(PAGE_SIZE as usize);
    let mut clients = Vec::new();
    for client in listed {
        clients.extend(summary(app, &client.id, None).await?);
    }
    Ok(GrantReview::Clients { page, has_more, clients })
}

#[derive(askama::Template)]
#[template(path = "admin_grants.html")]
struct GrantsPage<'a> {
    user: &'a str,
    scope: &'a str,
    client: &'a str,
    review: GrantReview,
}

pub async fn get_grants(State(app): State<AppState>, Query(filter): Query<GrantFilter>) -> Result<Response, PageError> {
    let review = review(&app, &filter).await?;
    let page = GrantsPage {
        user: filter.user.as_deref().unwrap_or(""),
        scope: filter.scope.as_deref().unwrap_or(""),
        client: filter.client.as_deref().unwrap_or(""),
        review,
    };
    Ok(render(&page))
}

pub async fn get_grants_json(State(app): State<AppState>, Query(filter): Query<GrantFilter>) -> Result<Response, PageError> {
    Ok(Json(review(&app, &filter).await?).into_response())
}
