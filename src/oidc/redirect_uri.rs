//! Redirect URI rules: registration checks and the exact-match comparison.

use url::Url;

/// Whether `uri` may be registered as a redirect URI (RFC 6749 §3.1.2, RFC 8252, RFC 9700 §2.1):
/// absolute, no fragment, https — or http only on a loopback host, or a private-use scheme.
pub fn check_registration(uri: &str) -> Result<(), String> {
    let parsed = Url::parse(uri).map_err(|e| format!("redirect URI {uri:?} is not an absolute URI ({e})"))?;
    if parsed.fragment().is_some() {
        return Err(format!("redirect URI {uri:?} must not contain a fragment"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!("redirect URI {uri:?} must use https (http only for loopback addresses)")),
        // RFC 8252 §7.1: private-use schemes in reverse domain notation.
        scheme if scheme.contains('.') => Ok(()),
        scheme => Err(format!("redirect URI {uri:?} has an unsupported scheme {scheme:?}")),
    }
}

fn is_loopback(url: &Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

/// Exact string comparison against the registered URIs, except that for loopback IP
/// redirect URIs the port may vary (RFC 8252 §7.3), as native apps pick a free port.
pub fn matches(registered: &[String], presented: &str) -> bool {
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    let Ok(presented_url) = Url::parse(presented) else { return false };
    if presented_url.scheme() != "http" || !matches!(presented_url.host_str(), Some("127.0.0.1" | "[::1]")) {
        return false;
    }
    registered.iter().any(|r| {
        let Ok(mut registered_url) = Url::parse(r) else { return false };
        if registered_url.scheme() != "http" || registered_url.host_str() != presented_url.host_str() {
            return false;
        }
        // Compare everything but the port, as strings, so no other normalisation sneaks in.
        if registered_url.set_port(presented_url.port()).is_err() {
            return false;
        }
        registered_url.as_str() == presented
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_exact_matches() {
        let r = reg(&["https://app.example/cb"]);
        assert!(matches(&r, "https://app.example/cb"));
        for bad in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/cbx",
            "https://APP.example/cb",
            "https://app.example/CB",
            "https://app.example:443/cb",
            "https://app.example/cb#f",
            "https://app.example.evil/cb",
            "https://app.example/cb/../cb",
            "http://app.example/cb",
        ] {
            assert!(!matches(&r, bad), "{bad}");
        }
    }

    #[test]
    fn loopback_port_may_vary() {
        let r = reg(&["http://127.0.0.1/callback", "http://[::1]:8000/cb"]);
        assert!(matches(&r, "http://127.0.0.1:51234/callback"));
        assert!(matches(&r, "http://[::1]:9999/cb"));
        assert!(!matches(&r, "http://127.0.0.1:51234/other"));
        assert!(!matches(&r, "http://localhost:51234/callback"));
        assert!(!matches(&reg(&["https://127.0.0.1/cb"]), "https://127.0.0.1:8443/cb"));
    }

    #[test]
    fn registration_rules() {
        assert!(check_registration("https://app.example/cb").is_ok());
        assert!(check_registration("http://127.0.0.1:8080/cb").is_ok());
        assert!(check_registration("com.example.app:/oauth").is_ok());
        assert!(check_registration("http://app.example/cb").is_err());
        assert!(check_registration("https://app.example/cb#x").is_err());
        assert!(check_registration("/relative").is_err());
        assert!(check_registration("javascript:alert(1)").is_err());
    }
}
