//! Second factors: TOTP authenticators and recovery codes. Pure: codes, secrets and their
//! checks; storage is in `store/`, the pages in `login/second_factor.rs` and
//! `account/security.rs`.

pub mod recovery;
pub mod totp;

use crate::config::Config;
use crate::model::User;

/// What the user typed on the second-factor page: one field takes either kind of code.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// Six digits from the authenticator app.
    Totp(String),
    /// A recovery code, normalised (see [`recovery::normalise`]).
    Recovery(String),
    Malformed,
}

pub fn classify(input: &str) -> Presented {
    if let Some(code) = totp::normalise(input) {
        return Presented::Totp(code);
    }
    match recovery::normalise(input) {
        Some(code) => Presented::Recovery(code),
        None => Presented::Malformed,
    }
}

/// Whether the configuration obliges this user to have a second factor.
pub fn required_for(config: &Config, user: &User) -> bool {
    config.require_2fa_for_all || (user.is_admin && config.require_2fa_for_admins)
}

/// RFC 8176 method references a successful second factor adds to the first factor's:
/// `otp` (a TOTP or a recovery code, both one-time passwords) and `mfa`.
pub fn with_second_factor(mut amr: Vec<String>) -> Vec<String> {
    for method in ["otp", "mfa"] {
        if !amr.iter().any(|m| m == method) {
            amr.push(method.to_string());
        }
    }
    amr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_field_takes_both_kinds() {
        assert_eq!(classify(" 123 456 "), Presented::Totp("123456".into()));
        assert_eq!(classify("ABCD-efgh-2345-6723"), Presented::Recovery("abcdefgh23456723".into()));
        assert_eq!(classify("12345"), Presented::Malformed);
        assert_eq!(classify(""), Presented::Malformed);
    }

    #[test]
    fn second_factor_methods_are_added_once() {
        assert_eq!(with_second_factor(vec!["pwd".into()]), ["pwd", "otp", "mfa"]);
        assert_eq!(with_second_factor(vec!["pwd".into(), "otp".into(), "mfa".into()]), ["pwd", "otp", "mfa"]);
    }
}
