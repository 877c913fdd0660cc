//! Microsoft identity platform's issuer rules. Its `common` and `organizations` discovery
//! documents name the issuer `https://login.microsoftonline.com/{tenantid}/v2.0`, with that
//! placeholder literally; each ID token's `iss` names the user's tenant, which its `tid`
//! claim repeats. The platform's guidance ("Validate the issuer") is to accept a token only
//! when `iss` equals the template with `{tenantid}` replaced by the token's `tid`.

use url::Url;

pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// Whether a discovered issuer belongs with the configured one: the same, or on the same
/// origin of the form `/{tenant}/v2.0` (the template, or a tenant's own issuer when a
/// domain name or `consumers` was configured).
pub fn issuer_fits(configured: &str, discovered: &str) -> bool {
    let (Ok(configured), Ok(discovered)) = (Url::parse(configured), Url::parse(&discovered.replace(TENANT_PLACEHOLDER, "tenant"))) else {
        return false;
    };
    let segments: Vec<&str> = discovered.path().trim_matches('/').split('/').collect();
    configured.origin() == discovered.origin() && segments.len() == 2 && segments[1] == "v2.0"
}

/// The issuer an ID token with tenant `tid` must name; `None` when `tid` is missing or not
/// a plain tenant id.
pub fn expected_issuer(discovered: &str, tid: Option<&str>) -> Option<String> {
    let tid = tid.filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))?;
    let expected = discovered.replace(TENANT_PLACEHOLDER, tid);
    // A tenant's own issuer (no placeholder) must still be the token's tenant.
    let tenant = Url::parse(&expected).ok()?.path().trim_matches('/').split('/').next()?.to_string();
    (tenant == tid).then_some(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

    #[test]
    fn discovered_issuers_that_fit() {
        let common = "https://login.microsoftonline.com/common/v2.0";
        assert!(issuer_fits(common, TEMPLATE));
        assert!(issuer_fits("https://login.microsoftonline.com/consumers/v2.0", &format!("https://login.microsoftonline.com/{TENANT}/v2.0")));
        assert!(!issuer_fits(common, "https://evil.example/{tenantid}/v2.0"), "another origin");
        assert!(!issuer_fits(common, "https://login.microsoftonline.com/{tenantid}/v2.0/extra"));
        assert!(!issuer_fits(common, "https://login.microsoftonline.com/{tenantid}"));
    }

    #[test]
    fn the_token_issuer_follows_its_tenant() {
        assert_eq!(expected_issuer(TEMPLATE, Some(TENANT)).as_deref(), Some(&*format!("https://login.microsoftonline.com/{TENANT}/v2.0")));
        assert_eq!(expected_issuer(TEMPLATE, None), None, "no tid, no trust");
        assert_eq!(expected_issuer(TEMPLATE, Some("a/b")), None);
        assert_eq!(expected_issuer(TEMPLATE, Some("")), None);
        let own = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
        assert_eq!(expected_issuer(&own, Some(TENANT)).as_deref(), Some(own.as_str()));
        assert_eq!(expected_issuer(&own, Some("f8cdef31-a31e-4b4a-93e4-5f571e91255a")), None, "another tenant");
    }
}
