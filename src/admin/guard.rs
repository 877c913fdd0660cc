//! The one admin guard: every `/admin` route sits behind it, so no handler checks roles.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use crate::error::PageError;
use crate::login::session;
use crate::model::{Authentication, User};
use crate::state::AppState;
use crate::web::see_other;

/// A signed-in administrator, put into the request by [`require_admin`].
#[derive(Clone, Debug)]
pub struct AdminUser {
    pub user: User,
    pub auth: Authentication,
}

pub async fn require_admin(State(app): State<AppState>, session: Session, mut request: Request, next: Next) -> Response {
    let auth = match session::current(&session).await {
        Ok(Some(auth)) => auth,
        Ok(None) => return see_other("/login"),
        Err(e) => return e.into_response(),
    };
    let user = match app.store.user(&auth.user_id).await {
        Ok(Some(user)) => user,
        Ok(None) => return see_other("/login"),
        Err(e) => return PageError::from(e).into_response(),
    };
    if !user.is_admin {
        return PageError::forbidden("This page is for administrators.").into_response();
    }
    request.extensions_mut().insert(AdminUser { user, auth });
    next.run(request).await
}
