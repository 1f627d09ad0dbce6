//! Who is calling: the peer address, or behind a trusted reverse proxy the right-most
//! untrusted hop of `X-Forwarded-For`; and whether that address may call `/payment`.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Whether `ip` lies in one of `nets`.
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|n| n.contains(&ip))
}

/// Whether `ip` may call `/payment`: an empty allow-list lets everyone.
pub fn allowed(allow: &[IpNet], ip: IpAddr) -> bool {
    allow.is_empty() || contains(allow, ip)
}

/// The address block that counts as one client for rate limits: an IPv4 address itself, an
/// IPv6 address's /64 (one subscriber's usual allocation, RFC 6177: a /64 holds 2^64
/// addresses that one host can rotate through at will). IPv4-mapped IPv6 counts as IPv4.
pub fn group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
    }
}

/// The real client's address.
///
/// Only when the peer itself is a trusted proxy is `X-Forwarded-For` read, and then from the
/// right: each proxy appends the address it got the request from, so walking right to left
/// over trusted proxies, the first untrusted entry is the client. The left-most entry is
/// whatever the client chose to send and is never believed on its own. An entry that is not an
/// address ends the walk at the last hop known for certain.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let mut client = peer.to_canonical();
    if !contains(trusted, client) {
        return client;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.into_iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !contains(trusted, ip) {
            return ip;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_group_by_their_64_and_ipv4_by_itself() {
        assert_eq!(group(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(group(ip("2001:db8:1:2:ffff:1:2:3")), ip("2001:db8:1:2::"));
        assert_ne!(group(ip("2001:db8:1:3::1")), group(ip("2001:db8:1:2::1")));
        assert_eq!(group(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_ne!(group(ip("10.1.2.3")), group(ip("10.1.2.4")));
        assert_eq!(group(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = xff(&["79.142.16.5"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &trusted),
            ip("203.0.113.9")
        );
        // nobody trusted: the header is never read
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &[]), ip("10.0.0.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "192.168.1.1/32"]);
        // the client spoofs a first entry; the proxy appends the real address
        let h = xff(&["79.142.16.5, 203.0.113.9"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        // two proxies: skip the trusted inner one
        let h = xff(&["1.1.1.1, 203.0.113.9, 192.168.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        // several header lines are one list, in order
        let h = xff(&["1.1.1.1", "203.0.113.9"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn odd_forwarded_values_never_make_up_a_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        // no header: the proxy itself
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        // garbage right of a real hop: stop at the last certain hop (the proxy)
        let h = xff(&["79.142.16.5, unknown"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.1"));
        // all hops trusted: the left-most trusted one
        let h = xff(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.1.1.1"));
        // ports and IPv6 brackets
        let h = xff(&["203.0.113.9:5555"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        let h = xff(&["[2001:db8::1]:443"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("2001:db8::1"));
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_blocks() {
        let allow = nets(&["79.142.16.0/20"]);
        assert!(allowed(&allow, ip("::ffff:79.142.20.1")));
        assert!(allowed(&allow, ip("79.142.31.255")));
        assert!(!allowed(&allow, ip("79.142.32.0")));
        assert!(allowed(&[], ip("8.8.8.8")));
        let trusted = nets(&["127.0.0.1/32"]);
        let h = xff(&["203.0.113.9"]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &h, &trusted),
            ip("203.0.113.9")
        );
    }
}
