//! What a request says about its client, believed only as far as the proxies it came
//! through are trusted, and the headers only Arbiter may set.
//!
//! Peer addresses arrive canonical (IPv4-mapped IPv6 → IPv4, at accept: see
//! [`crate::tls::canonical_peer`]); addresses read from headers are canonicalised here.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName};

use crate::wire::is_arbiter_header;

/// Every `X-Forwarded-For` value of a request, joined in order (a client's own header
/// first, what each proxy appended after it), or `None` when there is none.
pub fn forwarded_chain(headers: &HeaderMap) -> Option<String> {
    joined(headers, "x-forwarded-for")
}

/// Every `X-Fraud-Score` value of a request, joined in order.
pub fn fraud_scores(headers: &HeaderMap) -> Option<String> {
    joined(headers, "x-fraud-score")
}

/// All values of a header, in order, joined with `, ` (as RFC 9110 §5.3 allows for lists).
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut chain: Option<String> = None;
    for v in headers.get_all(name) {
        let Ok(text) = v.to_str() else { continue };
        match &mut chain {
            Some(c) => {
                c.push_str(", ");
                c.push_str(text);
            }
            None => chain = Some(text.to_owned()),
        }
    }
    chain
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
/// address of the `X-Forwarded-For` chain that is not itself a trusted proxy (what the
/// nearest untrusted hop connected from; anything left of it a client could have written).
pub fn client_ip(peer: IpAddr, chain: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut candidate = peer;
    for hop in chain.unwrap_or_default().rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                candidate = ip.to_canonical();
                if !is_trusted(&candidate) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    candidate
}

/// The fraud score a trusted proxy set (`scores`: the [`fraud_scores`] of the request):
/// `Ok(None)` from an untrusted peer or without the header; the rightmost value when several
/// were sent (the one the proxy appended); an error when that value is not a whole number.
pub fn fraud_score(
    peer: IpAddr,
    scores: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> Result<Option<i64>, String> {
    let peer = peer.to_canonical();
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return Ok(None);
    }
    let Some(last) = scores.and_then(|s| s.rsplit(',').next()).map(str::trim) else {
        return Ok(None);
    };
    last.parse::<i64>().map(Some).map_err(|_| {
        format!(
            "`X-Fraud-Score` must be a whole number, not `{}`",
            truncate(last)
        )
    })
}

/// Removes every `x-arbiter-*` header a client sent: only Arbiter sets them.
pub fn remove_arbiter_headers(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_arbiter_header(n.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(32);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases = [
            // an untrusted peer is the client, whatever it says
            ("203.0.113.9", Some("1.1.1.1"), "203.0.113.9"),
            // behind a trusted proxy: what the proxy appended
            ("10.0.0.1", Some("1.1.1.1, 198.51.100.7"), "198.51.100.7"),
            // through two trusted proxies
            (
                "10.0.0.1",
                Some("1.1.1.1, 198.51.100.7, 10.0.0.2"),
                "198.51.100.7",
            ),
            // IPv4-mapped addresses are IPv4
            (
                "::ffff:10.0.0.1",
                Some("::ffff:198.51.100.7"),
                "198.51.100.7",
            ),
            ("::ffff:203.0.113.9", None, "203.0.113.9"),
            // garbage stops the walk at the last good hop
            ("10.0.0.1", Some("1.1.1.1, nonsense"), "10.0.0.1"),
        ];
        for (peer, chain, expected) in cases {
            assert_eq!(
                client_ip(ip(peer), chain, &trusted),
                ip(expected),
                "{peer} {chain:?}"
            );
        }
    }

    #[test]
    fn every_forwarded_header_counts_in_order() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.append("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        assert_eq!(
            forwarded_chain(&h).as_deref(),
            Some("6.6.6.6, 198.51.100.7")
        );
        let trusted = nets(&["127.0.0.0/8"]);
        let client = client_ip(
            "127.0.0.1".parse().unwrap(),
            forwarded_chain(&h).as_deref(),
            &trusted,
        );
        assert_eq!(client, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn fraud_scores_come_from_the_proxy_and_must_parse() {
        let trusted = nets(&["127.0.0.0/8"]);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(
            fraud_score(proxy, fraud_scores(&h).as_deref(), &trusted),
            Ok(None)
        );
        h.append("x-fraud-score", HeaderValue::from_static("5"));
        h.append("x-fraud-score", HeaderValue::from_static("90"));
        let scores = fraud_scores(&h);
        assert_eq!(
            fraud_score(proxy, scores.as_deref(), &trusted),
            Ok(Some(90))
        );
        let stranger = "203.0.113.1".parse().unwrap();
        assert_eq!(fraud_score(stranger, scores.as_deref(), &trusted), Ok(None));
        assert!(fraud_score(proxy, Some("high"), &trusted).is_err());
        assert!(fraud_score(proxy, Some("5, "), &trusted).is_err());
    }

    #[test]
    fn arbiter_headers_are_removed_in_any_case() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-arbiter-principal",
            HeaderValue::from_static("User::\"admin\""),
        );
        h.insert("X-Arbiter-Anything", HeaderValue::from_static("x"));
        h.insert("x-other", HeaderValue::from_static("kept"));
        remove_arbiter_headers(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-other"));
    }
}
