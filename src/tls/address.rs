//! Peer addresses as every HTTP route sees them.

use std::net::SocketAddr;

/// A peer address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into IPv4.
pub fn canonical_peer(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}
