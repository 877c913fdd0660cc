//! Integration tests: one binary, one module per area.

mod support;
mod mail_support;

mod flow;
mod authorize;
mod discovery;
mod logout;
mod pages;
mod account_pages;
mod revoke_introspect;
mod token;
mod userinfo;
mod release;
mod rp_release;
mod served;
mod rp;
mod cli;
mod browser;
mod admin_pages;
mod owner_clients;
mod scopes;
mod second_factor;
mod limits;
mod dropped_requests;
mod login_protection;
mod login_history;
mod account_deletion;
mod email_change;
mod upstream;
mod upstream_link;
mod github;
