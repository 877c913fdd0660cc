//! Changing one's email address, proven by a link mailed to the new address.
//!
//! A request stores a pending change (the token's hash only, one per user, at most one
//! request a minute) and mails the link to the new address and a notice to the current one.
//! The answer is the same whether or not another account has the new address: that
//! address then receives a mail saying so instead of a link, so only its owner learns it.
//! Confirming needs the link, a click (scanners only fetch), and the account that asked.

use askama::Template;

use crate::clock::Timestamp;
use crate::crypto::{random_token, token_hash};
use crate::login::events::{self, AccountEvent, Origin};
use crate::mail::{self, Mail};
use crate::model::User;
use crate::state::AppState;
use crate::store::{EmailChange, EmailChangeApplied, NewEmailChange, Store, StoreError, normalise_email};

/// How long the mailed link works.
pub const LINK_LIFETIME: i64 = 24 * 3600;
/// The least time between two requests of one user (each sends two mails).
pub const MIN_INTERVAL: i64 = 60;

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    /// Mail went out (a link, or word that the address is taken: the user cannot tell).
    Sent,
    Invalid,
    /// The new address is the current one.
    Same,
    TooSoon,
    /// The operator has not set up outgoing mail.
    NoMailer,
    /// The relay did not take the mail to the new address; nothing is pending.
    NotSent,
}

/// Why a link does not (or no longer) change the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a link we sent, replaced by a newer request, or expired long enough to be gone.
    Unknown,
    Expired,
    Used,
    /// Another account asked for this change.
    OtherAccount,
    /// Another account has the new address now.
    Taken,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unknown => "This link is not valid: it may be mistyped, or a newer request replaced it. Ask for a new link on your account page.",
            Refusal::Expired => "This link has expired (links work for 24 hours). Ask for a new one on your account page.",
            Refusal::Used => "This link was already used. Your email address is as your account page shows it.",
            Refusal::OtherAccount => "This link belongs to another account. Sign out, sign in with the account that asked for the change, and open the link again.",
            Refusal::Taken => "Another account now uses this email address, so yours cannot change to it. Choose another address.",
        }
    }
}

#[derive(Template)]
#[template(path = "mail/email_change_link.txt")]
struct LinkMail<'a> {
    site: &'a str,
    link: &'a str,
}

impl Mail for LinkMail<'_> {
    fn subject(&self) -> String {
        format!("Confirm your new email address for {}", self.site)
    }
}

#[derive(Template)]
#[template(path = "mail/email_change_taken.txt")]
struct TakenMail<'a> {
    site: &'a str,
    issuer: &'a str,
}

impl Mail for TakenMail<'_> {
    fn subject(&self) -> String {
        format!("This address already has a {} account", self.site)
    }
}

#[derive(Template)]
#[template(path = "mail/email_change_notice.txt")]
struct NoticeMail<'a> {
    site: &'a str,
    issuer: &'a str,
    masked: &'a str,
}

impl Mail for NoticeMail<'_> {
    fn subject(&self) -> String {
        format!("Your {} email address is about to change", self.site)
    }
}

/// `nora@example.com` as `n***@example.com`: enough to recognise, not to learn it.
pub fn mask_address(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".into(),
    }
}

/// The link that confirms the change with `token`.
pub fn confirm_path(token: &str) -> String {
    format!("/account/email/confirm?token={}", url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>())
}

/// What people call this Sluis in mail: the issuer's host.
fn site_name(app: &AppState) -> String {
    url::Url::parse(app.issuer()).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| "Sluis".into())
}

/// Asks to change `user`'s address to `new_email`: stores the pending change and mails.
pub async fn request(app: &AppState, user: &User, new_email: &str) -> Result<Requested, StoreError> {
    let Some(mailer) = &app.mailer else { return Ok(Requested::NoMailer) };
    let new_email = new_email.trim();
    if new_email.len() > 254 || !mail::is_address(new_email) {
        return Ok(Requested::Invalid);
    }
    if normalise_email(new_email) == normalise_email(&user.email) {
        return Ok(Requested::Same);
    }
    let now = app.now();
    let token = random_token();
    let hash = token_hash(&token);
    // Stored even when the address is taken (the token then goes nowhere): the limit and the
    // replacement of an older request must not tell the two cases apart either.
    let change = NewEmailChange { token_hash: &hash, user_id: &user.id, new_email, created_at: now, expires_at: now + LINK_LIFETIME };
    if !app.store.put_email_change(&change, now - MIN_INTERVAL).await? {
        return Ok(Requested::TooSoon);
    }
    let site = site_name(app);
    let sent = if app.store.email_in_use(new_email).await? {
        mailer.send(new_email, &TakenMail { site: &site, issuer: app.issuer() }).await
    } else {
        let link = format!("{}{}", app.issuer(), confirm_path(&token));
        mailer.send(new_email, &LinkMail { site: &site, link: &link }).await
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "email change: the mail to the new address was not sent");
        app.store.delete_email_change(&hash).await?;
        return Ok(Requested::NotSent);
    }
    // The current address may be the reason for the change (gone, full): its notice failing
    // does not stop the change.
    let notice = NoticeMail { site: &site, issuer: app.issuer(), masked: &mask_address(new_email) };
    if let Err(e) = mailer.send(&user.email, &notice).await {
        tracing::warn!(error = %e, "email change: the notice to the current address was not sent");
    }
    Ok(Requested::Sent)
}

/// The pending change `token` stands for, if `user` may confirm it at `now`.
pub async fn pending(store: &Store, user: &User, token: &str, now: Timestamp) -> Result<Result<EmailChange, Refusal>, StoreError> {
    // Our tokens are 43 characters; anything much longer is not worth a look-up.
    if token.is_empty() || token.len() > 128 {
        return Ok(Err(Refusal::Unknown));
    }
    let Some(change) = store.email_change(&token_hash(token)).await? else { return Ok(Err(Refusal::Unknown)) };
    // Another account's link says nothing about that change's state.
    Ok(if change.user_id != user.id {
        Err(Refusal::OtherAccount)
    } else if change.used_at.is_some() {
        Err(Refusal::Used)
    } else if change.expires_at <= now {
        Err(Refusal::Expired)
    } else {
        Ok(change)
    })
}

/// Applies the change `token` stands for, recording the account event; returns the new
/// address.
pub async fn confirm(store: &Store, user: &User, token: &str, origin: &Origin, now: Timestamp) -> Result<Result<String, Refusal>, StoreError> {
    if let Err(refusal) = pending(store, user, token, now).await? {
        return Ok(Err(refusal));
    }
    match store.apply_email_change(&token_hash(token), &user.id, now).await? {
        EmailChangeApplied::Changed { new_email, .. } => {
            // The history says that it changed, not to what: the page shows the address.
            events::record_account_event(store, &user.id, AccountEvent::EmailChanged, None, origin, now).await?;
            tracing::info!("email address changed");
            Ok(Ok(new_email))
        }
        // Used or expired between the look-up and now: say which, as a fresh look-up does.
        EmailChangeApplied::NotPending => Ok(Err(pending(store, user, token, now).await?.err().unwrap_or(Refusal::Used))),
        EmailChangeApplied::Taken => Ok(Err(Refusal::Taken)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_to_a_hint() {
        assert_eq!(mask_address("nora@example.com"), "n***@example.com");
        assert_eq!(mask_address("ñ@example.org"), "ñ***@example.org");
        assert_eq!(mask_address("nobody"), "***");
    }

    #[test]
    fn the_confirm_link_encodes_the_token() {
        assert_eq!(confirm_path("a-b_c"), "/account/email/confirm?token=a-b_c");
        assert_eq!(confirm_path("a+b&c"), "/account/email/confirm?token=a%2Bb%26c");
    }
}
