//! Page templates (askama, compiled in; HTML-escaped by default).

use askama::Template;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub csrf_token: &'a str,
    pub request_id: &'a str,
    pub client_name: Option<&'a str>,
    pub email: &'a str,
    pub error: Option<&'a str>,
}

pub struct ScopeLine {
    pub name: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub csrf_token: &'a str,
    pub request_id: &'a str,
    pub client_name: &'a str,
    pub user_email: &'a str,
    pub scopes: Vec<ScopeLine>,
}

#[derive(Template)]
#[template(path = "form_post.html")]
pub struct FormPostPage<'a> {
    pub action: &'a str,
    pub fields: Vec<(&'a str, &'a str)>,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    pub csrf_token: &'a str,
    pub client_name: Option<&'a str>,
    /// Hidden fields carried through the confirmation (post_logout_redirect_uri, state, …).
    pub fields: Vec<(&'a str, &'a str)>,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOutPage;

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    pub csrf_token: &'a str,
    pub email: &'a str,
    pub name: Option<&'a str>,
}
