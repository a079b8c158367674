//! Ports and readiness probes.
//!
//! Tests pick ephemeral ports so they can run beside a developer's stack on
//! the fixed dev ports, and beside each other. The HTTP probe is a bare
//! HTTP/1.1 request over a socket: all we need is a status line, and a full
//! client would be a heavy dependency for that.

use std::{net::TcpListener, time::Duration};

use anyhow::Context as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// Asks the OS for `n` distinct free ports on 127.0.0.1.
///
/// All listeners stay open until every port is chosen, so the OS cannot
/// hand out the same port twice; they close before the servers bind. Another
/// process could take a port in that gap, which is unlikely enough for tests.
pub(crate) fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("bind 127.0.0.1:0 to find a free port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Sends `GET path` to 127.0.0.1:`port` and returns the response status, or
/// `None` if nothing answers (yet) within a second.
pub(crate) async fn http_status(port: u16, path: &str) -> Option<u16> {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        // "HTTP/1.1 200" is 12 bytes; read until we have them.
        let mut head = Vec::with_capacity(64);
        let mut buf = [0u8; 64];
        while head.len() < 12 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = std::str::from_utf8(&head[..12]).ok()?;
        line.strip_prefix("HTTP/1.")?.get(2..)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(8).expect("ports");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
    }

    #[tokio::test]
    async fn http_status_reads_status_line() {
        let server =
            edge_testing::server::Server::start(|_| edge_testing::server::Reply::status(503)).await;
        let port = server
            .url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        assert_eq!(http_status(port, "/").await, Some(503));
    }

    #[tokio::test]
    async fn http_status_is_none_when_nothing_listens() {
        let port = free_ports(1).expect("port")[0];
        assert_eq!(http_status(port, "/").await, None);
    }
}
