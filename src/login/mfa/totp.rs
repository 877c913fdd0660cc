//! TOTP (RFC 6238) through totp-rs, with the parameters every authenticator app supports:
//! HMAC-SHA-1, six digits, 30-second steps, and ±1 step for clock drift (RFC 6238 §5.2).
//! The enrolment page gets the key as text, the `otpauth://` link and a QR code as inline
//! SVG (inline markup, so the strict CSP needs no `img-src data:`).

use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Algorithm, Builder, Totp};

use crate::clock::Timestamp;
use crate::crypto::random_bytes;

const DIGITS: u8 = 6;
const STEP: u64 = 30;
const SKEW: u16 = 1;

/// A TOTP key (RFC 4226 §4 recommends 160 bits). Never printed.
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn generate() -> Self {
        Self(random_bytes::<20>().to_vec())
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, issuer: Option<&str>, account: &str) -> Result<Totp, totp_rs::TotpError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(SKEW)
            .with_step_duration(STEP)
            .with_secret(self.0.clone())
            .with_issuer(issuer.map(label))
            .with_account_name(label(account))
            .build()
    }

    /// The matched time step if `code` (already [`normalise`]d) is valid at `now`, give or
    /// take one step. The caller must still refuse a step it accepted before.
    pub fn check(&self, code: &str, now: Timestamp) -> Option<i64> {
        let now = u64::try_from(now).ok()?;
        let step = self.totp(None, "").ok()?.check(code, now)?;
        i64::try_from(step).ok()
    }

    /// What the enrolment page shows for this key.
    pub fn enrolment(&self, issuer: &str, account: &str) -> Result<Enrolment, String> {
        let totp = self.totp(Some(issuer), account).map_err(|e| e.to_string())?;
        let url = totp.to_url().map_err(|e| e.to_string())?;
        let key = totp.secret().to_base32();
        Ok(Enrolment { qr_svg: qr_svg(&url)?, key: group(&key), url })
    }
}

/// Six digits, spaces allowed (apps often show `123 456`).
pub fn normalise(input: &str) -> Option<String> {
    let code: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == usize::from(DIGITS) && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// The otpauth label parts may not contain a colon (Key Uri Format).
fn label(s: &str) -> String {
    s.replace(':', ".")
}

/// The key in groups of four, as people type it.
fn group(key: &str) -> String {
    key.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

pub struct Enrolment {
    /// Base32, grouped by four.
    pub key: String,
    /// The `otpauth://totp/…` link.
    pub url: String,
    /// `<svg>` markup without an XML prolog, safe to embed: only rectangles, no text.
    pub qr_svg: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(..)")
    }
}

fn qr_svg(data: &str) -> Result<String, String> {
    let code = QrCode::new(data.as_bytes()).map_err(|e| e.to_string())?;
    let image = code.render::<svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build();
    let start = image.find("<svg").ok_or("the QR renderer made no <svg>")?;
    Ok(image[start..].replacen("<svg ", "<svg role=\"img\" aria-label=\"QR code for your authenticator app\" ", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 test key, truncated to six digits.
    #[test]
    fn rfc_6238_vectors() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.check("287082", 59), Some(1));
        assert_eq!(secret.check("081804", 1_111_111_109), Some(37_037_036));
        assert_eq!(secret.check("050471", 1_111_111_111), Some(37_037_037));
        assert_eq!(secret.check("005924", 1_234_567_890), Some(41_152_263));
    }

    #[test]
    fn one_step_either_side_and_no_further() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        // "287082" belongs to step 1 (30..59).
        assert_eq!(secret.check("287082", 30 + 29 + 30), Some(1), "one step late");
        assert_eq!(secret.check("287082", 0), Some(1), "one step early");
        assert_eq!(secret.check("287082", 90), None, "two steps late");
        assert_eq!(secret.check("28708", 59), None);
        assert_eq!(secret.check("287082", -1), None);
    }

    #[test]
    fn enrolment_shows_key_link_and_svg() {
        let secret = Secret::generate();
        let page = secret.enrolment("login.example", "ada@example.com").unwrap();
        assert!(page.url.starts_with("otpauth://totp/login.example:ada%40example.com?"), "{}", page.url);
        assert!(page.url.contains("issuer=login.example"));
        assert_eq!(page.key.replace(' ', ""), page.url.split("secret=").nth(1).unwrap().split('&').next().unwrap());
        assert!(page.qr_svg.starts_with("<svg role=\"img\""));
        assert!(page.qr_svg.ends_with("</svg>") && !page.qr_svg.contains("<?xml"));
        assert_eq!(normalise("123 456").as_deref(), Some("123456"));
        assert!(secret.enrolment("host:8080", "a:b").unwrap().url.starts_with("otpauth://totp/host.8080:a.b?"));
    }
}
