//! Admin pages: the client verification queue and the audit log.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use tower_sessions::Session;

use super::guard::AdminUser;
use super::{Actor, AdminError};
use crate::error::PageError;
use crate::model::{Client, ClientStatus, ScopeState};
use crate::privacy::Catalogue;
use crate::state::AppState;
use crate::store::{AuditEntry, ScopeDecision};
use crate::web::client_ip::ClientIp;
use crate::web::params::Params;
use crate::web::{csrf, render, see_other};

const PAGE_SIZE: i64 = 50;

pub struct ScopeRow {
    pub scope: String,
    pub sensitive: bool,
    pub state: &'static str,
    pub purpose: String,
    pub note: String,
}

pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub scopes: Vec<ScopeRow>,
}

#[derive(askama::Template)]
#[template(path = "admin_clients.html")]
struct ClientsPage<'a> {
    filter: &'a str,
    clients: Vec<ClientRow>,
    page: i64,
    has_more: bool,
}

#[derive(askama::Template)]
#[template(path = "admin_client.html")]
struct ClientPage<'a> {
    csrf_token: &'a str,
    client: ClientRow,
    redirect_uris: &'a [String],
    message: Option<&'a str>,
}

#[derive(askama::Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    entries: Vec<AuditRow>,
}

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub ip: String,
    pub action: String,
    pub target: String,
    pub details: String,
}

/// A client and its scope states, as the pages show them.
fn client_row(client: &Client, decisions: &[ScopeDecision], catalogue: &Catalogue) -> ClientRow {
    let scopes = client
        .scopes
        .iter()
        .map(|scope| {
            let decision = decisions.iter().find(|d| d.scope == scope);
            let sensitive = catalogue.is_sensitive(scope);
            ScopeRow {
                scope: scope.to_string(),
                sensitive,
                // A non-sensitive scope needs no decision.
                state: match decision.map(|d| d.state) {
                    _ if !sensitive => "not needed",
                    Some(state) => state.as_str(),
                    None => ScopeState::Requested.as_str(),
                },
                purpose: decision.and_then(|d| d.purpose.clone()).unwrap_or_default(),
                note: decision.and_then(|d| d.note.clone()).unwrap_or_default(),
            }
        })
        .collect();
    ClientRow { id: client.id.to_string(), name: client.name.clone(), status: client.status.as_str(), scopes }
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    page: Option<i64>,
}

pub async fn get_clients(State(app): State<AppState>, Query(q): Query<ListQuery>) -> Result<Response, PageError> {
    let filter = q.status.as_deref().unwrap_or("all");
    let status = match filter {
        "all" => None,
        other => Some(ClientStatus::parse(other).ok_or_else(|| PageError::bad_request("Unknown status filter."))?),
    };
    let page = q.page.unwrap_or(1).max(1);
    let mut clients = app.store.list_clients(status, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE).await?;
    let has_more = clients.len() as i64 > PAGE_SIZE;
    clients.truncate(PAGE_SIZE as usize);
    let mut rows = Vec::with_capacity(clients.len());
    for client in &clients {
        rows.push(client_row(client, &app.store.scope_decisions(&client.id).await?, &app.scopes));
    }
    Ok(render(&ClientsPage { filter, clients: rows, page, has_more }))
}

pub async fn get_client(
    State(app): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    client_page(&app, &session, &id, None).await
}

async fn client_page(app: &AppState, session: &Session, id: &str, message: Option<&str>) -> Result<Response, PageError> {
    let client = app.store.client(id).await?.ok_or_else(PageError::not_found)?;
    let decisions = app.store.scope_decisions(&client.id).await?;
    let token = csrf::token(session).await?;
    Ok(render(&ClientPage { csrf_token: &token, client: client_row(&client, &decisions, &app.scopes), redirect_uris: &client.redirect_uris, message }))
}

/// One form for every decision on a client: `action` is approve, reject, verify or suspend.
pub async fn post_client(
    State(app): State<AppState>,
    session: Session,
    Extension(admin): Extension<AdminUser>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Params::parse(&body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(&session, form.get("csrf_token")).await?;
    let actor = Actor { name: format!("user:{}", admin.user.id), ip };
    let now = app.now();
    let scope = form.get("scope").unwrap_or("");
    let result = match form.get("action") {
        Some("approve") if !scope.is_empty() => super::verify_client(&app.store, &id, &[scope.to_string()], &actor, now).await.map(|_| ()),
        Some("verify") => super::verify_client(&app.store, &id, &[], &actor, now).await.map(|_| ()),
        Some("reject") if !scope.is_empty() => match form.get("note") {
            Some(note) => super::reject_scope(&app.store, &id, scope, note, &actor, now).await,
            None => return client_page(&app, &session, &id, Some("Write a note for the client's owner when rejecting a scope.")).await,
        },
        Some("suspend") => super::suspend_client(&app.store, &id, &actor, now).await,
        _ => return Err(PageError::bad_request("Unknown action.")),
    };
    match result {
        Ok(()) => Ok(see_other(&format!("/admin/clients/{}", url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()))),
        Err(AdminError::Invalid(message)) => client_page(&app, &session, &id, Some(&message)).await,
        Err(e) => Err(PageError::internal(&e)),
    }
}

pub async fn get_audit(State(app): State<AppState>) -> Result<Response, PageError> {
    let entries: Vec<AuditEntry> = app.store.audit_entries(200).await?;
    let entries = entries
        .into_iter()
        .map(|e| AuditRow {
            at: crate::web::format_time(e.at),
            actor: e.actor,
            ip: e.ip.unwrap_or_default(),
            action: e.action,
            target: e.target,
            details: e.details,
        })
        .collect();
    Ok(render(&AuditPage { entries }))
}

pub async fn get_admin_home() -> impl IntoResponse {
    see_other("/admin/clients")
}
