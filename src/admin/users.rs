//! Operator's actions on users' accounts.

use serde::Serialize;

use super::{Actor, AdminError, audit};
use crate::clock::Timestamp;
use crate::login::events::{self, AccountEvent, Origin};
use crate::store::Store;

/// What [`reset_second_factor`] did.
#[derive(Clone, Debug, Serialize)]
pub struct SecondFactorReset {
    pub id: String,
    pub email: String,
    /// Whether the user had an authenticator (or one being set up) to remove.
    pub second_factor_removed: bool,
    pub sessions_ended: usize,
}

/// Recovery for a user who lost their authenticator and their recovery codes: removes their
/// TOTP and recovery codes and ends their sessions (so a session opened by whoever holds the
/// authenticator ends too), audited and shown in the user's own history. The operator must
/// have checked who is asking: this hands the account to whoever knows the password.
pub async fn reset_second_factor(store: &Store, email: &str, actor: &Actor, now: Timestamp) -> Result<SecondFactorReset, AdminError> {
    let Some((user, _)) = store.user_credentials(email).await? else {
        return Err(AdminError::Invalid(format!("no user with the email address {:?}", email.trim())));
    };
    let had_factor = store.totp_factor(&user.id).await?.is_some() || store.recovery_codes_left(&user.id).await? > 0;
    store.delete_second_factors(&user.id).await?;
    let sids = store.end_all_user_sessions(&user.id).await?;
    for sid in &sids {
        store.revoke_grants_of_session(sid, now).await?;
    }
    events::record_account_event(store, &user.id, AccountEvent::SecondFactorReset, None, &Origin::default(), now).await?;
    let details = serde_json::json!({"second_factor_removed": had_factor, "sessions_ended": sids.len()});
    audit(store, actor, "user.reset_2fa", &format!("user:{}", user.id), details, now).await?;
    Ok(SecondFactorReset { id: user.id.to_string(), email: user.email, second_factor_removed: had_factor, sessions_ended: sids.len() })
}
