//! Issue 14, defect 2: a client that is slow on purpose cannot hold the listeners. Slow
//! headers, a body that never ends and idle keep-alive connections are cut off; connections
//! beyond `max_connections` wait until one closes; the gRPC listener announces its stream
//! limit. On the code before this change every one of these connections stayed open.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Reads until the server closes the connection (or `within` passes): what it sent.
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn limited_server(header: u64, request: u64, connections: usize) -> TestServer {
    TestServer::start_with(|c| {
        c.http.header_timeout_seconds = header;
        c.http.request_timeout_seconds = request;
        c.http.max_connections = connections;
        c.grpc.max_concurrent_streams = 7;
    })
    .await
}

#[tokio::test]
async fn slow_headers_slow_bodies_and_idle_connections_are_cut_off() {
    let server = limited_server(1, 1, 64).await;

    // Slow-loris: headers that never end.
    let mut tcp = TcpStream::connect(server.http_addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: arbiter\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        read_until_closed(&mut tcp, Duration::from_secs(10))
            .await
            .is_some(),
        "a connection whose headers never end is closed"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A body that stops half-way: 408 once the request timeout passes.
    let mut tcp = TcpStream::connect(server.http_addr).await.unwrap();
    tcp.write_all(
        b"POST /access/v1/evaluation HTTP/1.1\r\nHost: arbiter\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"subject\":",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut tcp, Duration::from_secs(10))
        .await
        .expect("a stalled body ends the request");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // A keep-alive connection left idle after its answer.
    let mut tcp = TcpStream::connect(server.http_addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: arbiter\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut tcp, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_place() {
    let server = limited_server(30, 30, 2).await;
    let holders = [
        TcpStream::connect(server.http_addr).await.unwrap(),
        TcpStream::connect(server.http_addr).await.unwrap(),
    ];
    let mut third = TcpStream::connect(server.http_addr).await.unwrap();
    third
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: arbiter\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf))
            .await
            .is_err(),
        "the third connection is not served while two are open"
    );
    drop(holders);
    let answer = read_until_closed(&mut third, Duration::from_secs(10))
        .await
        .expect("served once a place is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn the_grpc_listener_announces_its_stream_limit() {
    let server = limited_server(10, 30, 64).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (_send, mut connection) = h2::client::handshake(tcp).await.unwrap();
    // Drive the connection until the server's SETTINGS have arrived.
    let _ = tokio::time::timeout(Duration::from_millis(300), &mut connection).await;
    assert_eq!(connection.max_concurrent_send_streams(), 7);
}
