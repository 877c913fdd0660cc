//! The client's IP address: the connection's peer, or — only when that peer is one of the
//! configured trusted proxies — the address the proxies report in `Forwarded` (RFC 7239)
//! or `X-Forwarded-For`. Anything else could be forged by the client.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Extensions};
use ipnet::IpNet;

use crate::state::AppState;

#[derive(Clone, Debug, Default)]
pub struct ClientIp(pub Option<String>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(&parts.extensions, &parts.headers, &app.config.trusted_proxies).map(|ip| ip.to_string())))
    }
}

/// The client's address for a request, as [`ClientIp`] explains.
pub fn client_ip(extensions: &Extensions, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    from_forwarding(peer, headers, trusted)
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// Walks the forwarding chain from the nearest hop back, skipping our own proxies: the
/// first address that is not one of them is the client.
fn from_forwarding(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let hops = forwarded_hops(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted(*ip, trusted) => client = *ip,
            Some(ip) => return Some(*ip),
            // An obfuscated or unparsable hop: trust stops there.
            None => return Some(client),
        }
    }
    Some(client)
}

/// The addresses in `Forwarded: for=…` (preferred) or `X-Forwarded-For`, in order.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()).collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.eq_ignore_ascii_case("for").then(|| parse_node(value))
                })
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().parse::<IpAddr>().ok())
        .collect()
}

/// RFC 7239 §6: `192.0.2.43`, `"192.0.2.43:47011"`, `"[2001:db8:cafe::17]:4711"`.
fn parse_node(value: &str) -> Option<IpAddr> {
    let v = value.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    v.rsplit_once(':').and_then(|(host, _port)| host.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let ip = from_forwarding("198.51.100.7".parse().unwrap(), &headers(&[("x-forwarded-for", "1.2.3.4")]), &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn a_trusted_proxy_chain_is_walked_from_the_right() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(from_forwarding("10.0.0.1".parse().unwrap(), &h, &trusted), Some("203.0.113.9".parse().unwrap()));
        let h = headers(&[("forwarded", "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https")]);
        assert_eq!(from_forwarding("10.0.0.1".parse().unwrap(), &h, &trusted), Some("2001:db8::1".parse().unwrap()));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(from_forwarding("10.0.0.1".parse().unwrap(), &h, &trusted), Some("10.0.0.1".parse().unwrap()));
        // No header: the proxy itself is all we know.
        assert_eq!(from_forwarding("10.0.0.1".parse().unwrap(), &HeaderMap::new(), &trusted), Some("10.0.0.1".parse().unwrap()));
    }
}
