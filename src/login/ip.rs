//! IP addresses in the login records, pure: the sortable key that makes a prefix filter an
//! index range, truncation for retention, the network a throttle counts per, and the admin's
//! filter syntax.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parses an address, seeing an IPv4-mapped IPv6 address (`::ffff:203.0.113.5`, as a
/// dual-stack socket reports IPv4 peers) as the IPv4 address it is.
pub fn parse(ip: &str) -> Option<IpAddr> {
    let ip: IpAddr = ip.trim().parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    })
}

/// The fixed-width hex key: `4` + 8 hex digits for IPv4, `6` + 32 for IPv6. Keys of one
/// family have one length and use only `0-9a-f`, so their order is the addresses' order
/// under any collation (a textual `LIKE '203.0.113.%'` needs a `C` collation on PostgreSQL
/// to use an index, and SQLite's LIKE is case-insensitive and skips indexes).
pub fn key(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("4{:08x}", u32::from(*v4)),
        IpAddr::V6(v6) => format!("6{:032x}", u128::from(*v6)),
    }
}

/// The address with its host part cleared, as retention keeps it: IPv4 to its /24
/// (`203.0.113.0`), IPv6 to its /48 (`2001:db8:1::`).
pub fn truncate(ip: &IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(*v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(*v6) & !(u128::MAX >> 48))),
    }
}

/// What the throttle counts per: an IPv4 address, or an IPv6 /64 (one subscriber usually
/// holds a whole /64, so counting single IPv6 addresses would count nothing).
pub fn throttle_network(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{}/64", Ipv6Addr::from(u128::from(*v6) & !(u128::MAX >> 64))),
    }
}

/// An admin's IP filter as an inclusive range of keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub low: String,
    pub high: String,
}

impl KeyRange {
    pub fn is_single(&self) -> bool {
        self.low == self.high
    }
}

fn network(ip: IpAddr, bits: u32) -> KeyRange {
    match ip {
        IpAddr::V4(v4) => {
            let host = if bits >= 32 { 0 } else { u32::MAX >> bits };
            let low = u32::from(v4) & !host;
            KeyRange { low: key(&IpAddr::V4(low.into())), high: key(&IpAddr::V4((low | host).into())) }
        }
        IpAddr::V6(v6) => {
            let host = if bits >= 128 { 0 } else { u128::MAX >> bits };
            let low = u128::from(v6) & !host;
            KeyRange { low: key(&IpAddr::V6(low.into())), high: key(&IpAddr::V6((low | host).into())) }
        }
    }
}

/// Parses an admin's IP filter: an address (`203.0.113.5`), a network in CIDR form
/// (`203.0.113.0/24`, `2001:db8::/32`), or a prefix of whole groups (`203.0.113.`,
/// `203.0.113`, `10.`, `2001:db8:`), which means the network those groups fix.
pub fn parse_filter(input: &str) -> Result<KeyRange, String> {
    let s = input.trim();
    let invalid = || format!("“{s}” is not an IP address, network (203.0.113.0/24) or prefix (203.0.113.)");
    if let Some(ip) = parse(s) {
        let k = key(&ip);
        return Ok(KeyRange { low: k.clone(), high: k });
    }
    if let Some((addr, bits)) = s.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| invalid())?;
        let bits: u32 = bits.parse().map_err(|_| invalid())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(invalid());
        }
        return Ok(network(ip, bits));
    }
    let groups: Vec<&str> = s.trim_end_matches(['.', ':']).split(['.', ':']).collect();
    if s.contains('.') && !s.contains(':') && (1..=3).contains(&groups.len()) {
        let mut octets = [0u8; 4];
        for (i, g) in groups.iter().enumerate() {
            octets[i] = g.parse().map_err(|_| invalid())?;
        }
        return Ok(network(IpAddr::V4(octets.into()), 8 * groups.len() as u32));
    }
    if s.contains(':') && !s.contains('.') && !s.contains("::") && (1..=7).contains(&groups.len()) {
        let mut segments = [0u16; 8];
        for (i, g) in groups.iter().enumerate() {
            if g.is_empty() || g.len() > 4 {
                return Err(invalid());
            }
            segments[i] = u16::from_str_radix(g, 16).map_err(|_| invalid())?;
        }
        return Ok(network(IpAddr::V6(segments.into()), 16 * groups.len() as u32));
    }
    Err(invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        parse(s).unwrap()
    }

    #[test]
    fn keys_sort_like_addresses() {
        assert_eq!(key(&ip("203.0.113.5")), "4cb007105");
        assert_eq!(key(&ip("::ffff:203.0.113.5")), "4cb007105", "IPv4-mapped is IPv4");
        assert_eq!(key(&ip("2001:db8::1")), "620010db8000000000000000000000001");
        assert!(key(&ip("9.255.255.255")) < key(&ip("10.0.0.0")));
    }

    #[test]
    fn truncation_keeps_the_network() {
        assert_eq!(truncate(&ip("203.0.113.77")).to_string(), "203.0.113.0");
        assert_eq!(truncate(&ip("2001:db8:1:2:3:4:5:6")).to_string(), "2001:db8:1::");
        assert_eq!(truncate(&truncate(&ip("203.0.113.77"))), truncate(&ip("203.0.113.77")), "idempotent");
    }

    #[test]
    fn throttles_count_per_address_or_ipv6_64() {
        assert_eq!(throttle_network(&ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(throttle_network(&ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
    }

    #[test]
    fn filters_are_ranges() {
        let exact = parse_filter("203.0.113.5").unwrap();
        assert!(exact.is_single());
        let prefix = parse_filter("203.0.113.").unwrap();
        assert_eq!(prefix, parse_filter("203.0.113").unwrap());
        assert_eq!(prefix, parse_filter("203.0.113.0/24").unwrap());
        assert_eq!(prefix.low, key(&ip("203.0.113.0")));
        assert_eq!(prefix.high, key(&ip("203.0.113.255")));
        let inside = key(&ip("203.0.113.77"));
        assert!(prefix.low <= inside && inside <= prefix.high);
        assert!(key(&ip("203.0.114.0")) > prefix.high);
        let v6 = parse_filter("2001:db8:").unwrap();
        assert_eq!(v6, parse_filter("2001:db8::/32").unwrap());
        let inside = key(&ip("2001:db8:ffff::1"));
        assert!(v6.low <= inside && inside <= v6.high);
        assert_eq!(parse_filter("10.").unwrap(), parse_filter("10.0.0.0/8").unwrap());
        for bad in ["", "203.0.113.999", "bogus", "203.0.113.0/33", "1.2.3.4.5", "2001:db8:::"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
