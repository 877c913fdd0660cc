//! The pages of `/account/clients` (the domain rules are in [`super::clients`]): the owner's
//! clients with a registration form, and one client's settings, secrets and verification
//! requests. A new secret is rendered straight into the response to the form that made it
//! (never put in the session or a URL), with `Cache-Control: no-store`, and never again.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::SignedIn;
use super::clients::{self, NewSecret, OwnedClient, OwnerError, Registration, Settings};
use crate::error::{PageError, no_store};
use crate::model::{Client, ClientStatus, ScopeState, User};
use crate::privacy::Catalogue;
use crate::state::AppState;
use crate::store::{ClientSecret, ScopeDecision};
use crate::web::client_ip::ClientIp;
use crate::web::params::Params;
use crate::web::templates::{utc_machine, utc_minute};
use crate::web::{csrf, flash, render, see_other};

/// A signed-in user allowed to register clients. Extracting it is the guard of every
/// `/account/clients` page: others get a readable 403 page.
pub struct ClientOwner {
    pub me: SignedIn,
}

impl FromRequestParts<AppState> for ClientOwner {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let me = SignedIn::from_request_parts(parts, app).await?;
        if !clients::may_register(&app.config, &me.user) {
            return Err(PageError::forbidden(
                "On this server only administrators register clients. Ask an administrator to register your app for you.",
            )
            .into_response());
        }
        Ok(Self { me })
    }
}

impl ClientOwner {
    fn user(&self) -> &User {
        &self.me.user
    }

    fn actor(&self, ip: Option<String>) -> crate::admin::Actor {
        clients::actor(&self.me.user.id, ip)
    }
}

pub struct ScopeLine {
    pub scope: String,
    pub description: String,
    /// For the CSS class: `approved`, `rejected`, `requested` or `none`.
    pub state: &'static str,
    /// The state in the owner's words.
    pub state_text: &'static str,
    pub purpose: String,
    /// The admin's note (why a scope was rejected).
    pub note: String,
}

pub struct ClientLine {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub status_text: &'static str,
    pub public: bool,
    pub scopes: Vec<ScopeLine>,
}

pub struct SecretLine {
    pub id: String,
    pub label: String,
    pub created: String,
    pub created_iso: String,
    pub expires: String,
    /// `active`, `expired` or `revoked`.
    pub state: &'static str,
}

/// A scope checkbox.
pub struct ScopeChoice {
    pub name: &'static str,
    pub description: &'static str,
    pub checked: bool,
}

/// The registration form's values (kept when it is shown again with an error).
#[derive(Default)]
pub struct RegisterForm {
    pub name: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub public: bool,
    pub scopes: Vec<ScopeChoice>,
    pub purpose: String,
}

#[derive(Default)]
pub struct SettingsForm {
    pub name: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
}

#[derive(askama::Template)]
#[template(path = "account_clients.html")]
struct ClientsPage<'a> {
    csrf_token: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    clients: Vec<ClientLine>,
    form: RegisterForm,
}

#[derive(askama::Template)]
#[template(path = "account_client.html")]
struct ClientPage<'a> {
    csrf_token: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    client: ClientLine,
    new_secret: Option<&'a str>,
    secrets: Vec<SecretLine>,
    settings: SettingsForm,
    request_scopes: Vec<ScopeChoice>,
    purpose: &'a str,
    max_expiry_days: u32,
}

fn status_text(status: ClientStatus) -> &'static str {
    match status {
        ClientStatus::Unverified => "waiting for an administrator's review: until then it receives only who the user is",
        ClientStatus::Verified => "verified: it may receive the scopes approved for it",
        ClientStatus::Suspended => "suspended by the administrators: nobody can sign in to it and its tokens do not work",
    }
}

fn client_line(client: &Client, decisions: &[ScopeDecision], catalogue: &Catalogue) -> ClientLine {
    let scopes = client
        .scopes
        .iter()
        .map(|scope| {
            let decision = decisions.iter().find(|d| d.scope == scope);
            let (state, state_text) = match decision.map(|d| d.state) {
                _ if !catalogue.is_sensitive(scope) => ("none", "no review needed"),
                Some(ScopeState::Approved) => ("approved", "approved"),
                Some(ScopeState::Rejected) => ("rejected", "rejected"),
                Some(ScopeState::Requested) | None => ("requested", "waiting for review"),
            };
            ScopeLine {
                scope: scope.to_string(),
                description: catalogue.get(scope).map_or("", |s| s.description).to_string(),
                state,
                state_text,
                purpose: decision.and_then(|d| d.purpose.clone()).unwrap_or_default(),
                note: decision.and_then(|d| d.note.clone()).unwrap_or_default(),
            }
        })
        .collect();
    ClientLine {
        id: client.id.to_string(),
        name: client.name.clone(),
        status: client.status.as_str(),
        status_text: status_text(client.status),
        public: client.is_public(),
        scopes,
    }
}

fn secret_line(secret: &ClientSecret, now: i64) -> SecretLine {
    SecretLine {
        id: secret.id.clone(),
        label: secret.label.clone(),
        created: utc_minute(secret.created_at),
        created_iso: utc_machine(secret.created_at),
        expires: secret.expires_at.map_or_else(|| "never".to_string(), utc_minute),
        state: match secret {
            s if s.revoked_at.is_some() => "revoked",
            s if !s.is_active(now) => "expired",
            _ => "active",
        },
    }
}

fn scope_choices(catalogue: &Catalogue, checked: &[String]) -> Vec<ScopeChoice> {
    clients::requestable_scopes(catalogue)
        .map(|name| ScopeChoice {
            name,
            description: catalogue.get(name).map_or("", |s| s.description),
            checked: checked.iter().any(|c| c == name),
        })
        .collect()
}

/// The scopes ticked in a form (`scope_<name>` checkboxes: parameters do not repeat).
fn ticked_scopes(catalogue: &Catalogue, form: &Params) -> Vec<String> {
    clients::requestable_scopes(catalogue).filter(|s| form.contains(&format!("scope_{s}"))).map(str::to_string).collect()
}

/// Reads a form and checks its CSRF token.
async fn read_form(owner: &ClientOwner, body: &Bytes) -> Result<Params, PageError> {
    let form = Params::parse(body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(&owner.me.session, form.get("csrf_token")).await?;
    Ok(form)
}

fn field(form: &Params, name: &str) -> String {
    form.get(name).unwrap_or_default().to_string()
}

fn with_status(mut response: Response, status: StatusCode) -> Response {
    *response.status_mut() = status;
    response
}

/// The response that shows a new secret: never cached.
fn shown_once(response: Response) -> Response {
    (no_store(), response).into_response()
}

async fn list_page(app: &AppState, owner: &ClientOwner, error: Option<&str>, form: RegisterForm) -> Result<Response, PageError> {
    let owned = clients::clients_of(&app.store, &owner.user().id).await?;
    let notice = flash::take(&owner.me.session).await?;
    let token = csrf::token(&owner.me.session).await?;
    let page = ClientsPage {
        csrf_token: &token,
        notice: notice.as_deref(),
        error,
        clients: owned.iter().map(|(client, decisions)| client_line(client, decisions, &app.scopes)).collect(),
        form,
    };
    Ok(render(&page))
}

pub async fn get_clients(State(app): State<AppState>, owner: ClientOwner) -> Result<Response, PageError> {
    list_page(&app, &owner, None, RegisterForm { scopes: scope_choices(&app.scopes, &[]), ..RegisterForm::default() }).await
}

pub async fn post_clients(State(app): State<AppState>, owner: ClientOwner, ClientIp(ip): ClientIp, body: Bytes) -> Result<Response, PageError> {
    let form = read_form(&owner, &body).await?;
    let registration = Registration {
        name: field(&form, "name"),
        redirect_uris: clients::uri_lines(form.get("redirect_uris").unwrap_or_default()),
        post_logout_redirect_uris: clients::uri_lines(form.get("post_logout_redirect_uris").unwrap_or_default()),
        public: form.get("client_type") == Some("public"),
        scopes: ticked_scopes(&app.scopes, &form),
        purpose: field(&form, "purpose"),
    };
    let kept = RegisterForm {
        name: registration.name.clone(),
        redirect_uris: field(&form, "redirect_uris"),
        post_logout_redirect_uris: field(&form, "post_logout_redirect_uris"),
        public: registration.public,
        scopes: scope_choices(&app.scopes, &registration.scopes),
        purpose: registration.purpose.clone(),
    };
    match clients::register(&app.store, &app.scopes, owner.user(), registration, &owner.actor(ip), app.now()).await {
        Ok((client, secret)) => {
            let notice = format!("{} is registered. It starts unverified: an administrator reviews the scopes it asked for.", client.name);
            let page = Extras { notice: Some(&notice), new_secret: secret.as_ref(), ..Extras::default() };
            let response = client_page(&app, &owner, client.id.as_str(), page).await?;
            Ok(if secret.is_some() { shown_once(response) } else { response })
        }
        Err(OwnerError::Invalid(message)) => Ok(with_status(list_page(&app, &owner, Some(&message), kept).await?, StatusCode::BAD_REQUEST)),
        Err(e) => Err(owner_error(e)),
    }
}

fn owner_error(e: OwnerError) -> PageError {
    match e {
        OwnerError::NotFound => PageError::not_found(),
        OwnerError::Invalid(message) => PageError::bad_request(message),
        OwnerError::Store(e) => PageError::from(e),
    }
}

/// What a client page shows besides the client: a message, a new secret, or the values of
/// a form that is shown again with an error.
#[derive(Default)]
struct Extras<'a> {
    notice: Option<&'a str>,
    error: Option<&'a str>,
    new_secret: Option<&'a NewSecret>,
    settings: Option<SettingsForm>,
    request: Option<(Vec<String>, String)>,
}

async fn client_page(app: &AppState, owner: &ClientOwner, id: &str, extras: Extras<'_>) -> Result<Response, PageError> {
    let OwnedClient { client, decisions, secrets } = clients::client_of(&app.store, &owner.user().id, id).await.map_err(owner_error)?;
    let token = csrf::token(&owner.me.session).await?;
    let flashed = match extras.notice {
        Some(_) => None,
        None => flash::take(&owner.me.session).await?,
    };
    let settings = extras.settings.unwrap_or_else(|| SettingsForm {
        name: client.name.clone(),
        redirect_uris: client.redirect_uris.join("\n"),
        post_logout_redirect_uris: client.post_logout_redirect_uris.join("\n"),
    });
    let (requested, purpose) = extras.request.unwrap_or_default();
    let now = app.now();
    let page = ClientPage {
        csrf_token: &token,
        notice: extras.notice.or(flashed.as_deref()),
        error: extras.error,
        client: client_line(&client, &decisions, &app.scopes),
        new_secret: extras.new_secret.map(NewSecret::expose),
        secrets: secrets.iter().map(|s| secret_line(s, now)).collect(),
        settings,
        request_scopes: scope_choices(&app.scopes, &requested),
        purpose: &purpose,
        max_expiry_days: clients::MAX_EXPIRY_DAYS,
    };
    Ok(render(&page))
}

/// The client's page again, with the reason a form was refused, as 400.
async fn refused(app: &AppState, owner: &ClientOwner, id: &str, extras: Extras<'_>) -> Result<Response, PageError> {
    Ok(with_status(client_page(app, owner, id, extras).await?, StatusCode::BAD_REQUEST))
}

fn client_url(id: &str) -> String {
    format!("/account/clients/{}", url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>())
}

pub async fn get_client(State(app): State<AppState>, owner: ClientOwner, Path(id): Path<String>) -> Result<Response, PageError> {
    client_page(&app, &owner, &id, Extras::default()).await
}

/// The settings form: name and redirect URIs.
pub async fn post_client(
    State(app): State<AppState>,
    owner: ClientOwner,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = read_form(&owner, &body).await?;
    let settings = Settings {
        name: field(&form, "name"),
        redirect_uris: clients::uri_lines(form.get("redirect_uris").unwrap_or_default()),
        post_logout_redirect_uris: clients::uri_lines(form.get("post_logout_redirect_uris").unwrap_or_default()),
    };
    match clients::update(&app.store, &owner.user().id, &id, settings, &owner.actor(ip), app.now()).await {
        Ok(()) => {
            flash::set(&owner.me.session, "Your changes are saved.").await?;
            Ok(see_other(&client_url(&id)))
        }
        Err(OwnerError::Invalid(message)) => {
            let kept = SettingsForm {
                name: field(&form, "name"),
                redirect_uris: field(&form, "redirect_uris"),
                post_logout_redirect_uris: field(&form, "post_logout_redirect_uris"),
            };
            let extras = Extras { error: Some(&message), settings: Some(kept), ..Extras::default() };
            refused(&app, &owner, &id, extras).await
        }
        Err(e) => Err(owner_error(e)),
    }
}

/// A new secret, shown on the resulting page only.
pub async fn post_secret(
    State(app): State<AppState>,
    owner: ClientOwner,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = read_form(&owner, &body).await?;
    let label = field(&form, "label");
    let added = match clients::expiry_days(form.get("expires_in_days")) {
        Ok(days) => clients::add_secret(&app.store, &owner.user().id, &id, &label, days, &owner.actor(ip), app.now()).await,
        Err(e) => Err(e),
    };
    match added {
        Ok(secret) => {
            let notice = format!("The secret “{}” is ready. Your other secrets keep working until you revoke them.", label.trim());
            let extras = Extras { notice: Some(&notice), new_secret: Some(&secret), ..Extras::default() };
            Ok(shown_once(client_page(&app, &owner, &id, extras).await?))
        }
        Err(OwnerError::Invalid(message)) => {
            let extras = Extras { error: Some(&message), ..Extras::default() };
            refused(&app, &owner, &id, extras).await
        }
        Err(e) => Err(owner_error(e)),
    }
}

pub async fn post_revoke_secret(
    State(app): State<AppState>,
    owner: ClientOwner,
    ClientIp(ip): ClientIp,
    Path((id, secret_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    read_form(&owner, &body).await?;
    let message = match clients::revoke_secret(&app.store, &owner.user().id, &id, &secret_id, &owner.actor(ip), app.now()).await {
        Ok(label) => format!("The secret “{label}” is revoked: it no longer authenticates the client."),
        Err(OwnerError::Invalid(message)) => message,
        Err(e) => return Err(owner_error(e)),
    };
    flash::set(&owner.me.session, &message).await?;
    Ok(see_other(&client_url(&id)))
}

pub async fn post_verification(
    State(app): State<AppState>,
    owner: ClientOwner,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = read_form(&owner, &body).await?;
    let scopes = ticked_scopes(&app.scopes, &form);
    let purpose = field(&form, "purpose");
    match clients::request_verification(&app.store, &app.scopes, &owner.user().id, &id, &clients::VerificationRequest { scopes: &scopes, purpose: &purpose }, &owner.actor(ip), app.now()).await {
        Ok(()) => {
            let message = format!("Verification of {} is requested. The administrators will review it.", scopes.join(", "));
            flash::set(&owner.me.session, &message).await?;
            Ok(see_other(&client_url(&id)))
        }
        Err(OwnerError::Invalid(message)) => {
            let extras = Extras { error: Some(&message), request: Some((scopes, purpose)), ..Extras::default() };
            refused(&app, &owner, &id, extras).await
        }
        Err(e) => Err(owner_error(e)),
    }
}
