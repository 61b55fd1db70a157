//! Clients that try to hold an HTTP server: one that sends its request head a byte at a time
//! and never ends it (slowloris), one that stays connected after its answer without sending
//! another request. Every server authwatch opens serves through `authwatch_net::serve_http` and
//! must cut both off (`read_header_timeout`, `idle_timeout`); each server's tests call these.
//!
//! Both work with real time (configure short timeouts) and with tokio's paused time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::raw_http::read_reply;

/// Time between two bytes of the slow client.
const GAP: Duration = Duration::from_millis(100);

/// Connects to `addr` and sends a request head one byte every 100 ms without ever ending it;
/// panics unless the server closes the connection, without answering, within `within`.
pub async fn assert_slow_head_is_cut_off(addr: SocketAddr, within: Duration) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let start = Instant::now();
    let head = b"GET / HTTP/1.1\r\nhost: test\r\nx-slow: ";
    let mut sent = 0usize;
    let mut buf = [0u8; 256];
    loop {
        assert!(
            start.elapsed() <= within,
            "a client sending its request head a byte every {GAP:?} still connected after {within:?}"
        );
        let byte = head.get(sent).copied().unwrap_or(b'a');
        if s.write_all(&[byte]).await.is_err() {
            return; // closed (reset) by the server
        }
        sent += 1;
        match timeout(GAP, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return, // closed
            Ok(Ok(n)) => panic!(
                "the server answered a request head that never ended: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {} // still open: send the next byte
        }
    }
}

/// Sends `GET {path}` on a keep-alive connection, reads the answer, then sends nothing; panics
/// unless the server closes the connection within `within`. Returns the answer's status code.
pub async fn assert_idle_connection_is_closed(
    addr: SocketAddr,
    path: &str,
    within: Duration,
) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes())
        .await
        .expect("send the request");
    let status = timeout(within, read_reply(&mut s))
        .await
        .expect("an answer to a complete request")
        .unwrap_or_else(|got| {
            panic!(
                "the connection closed before a whole answer: {:?}",
                String::from_utf8_lossy(&got)
            )
        })
        .status;
    let mut rest = Vec::new();
    match timeout(within, s.read_to_end(&mut rest)).await {
        Ok(_) => assert!(
            rest.is_empty(),
            "the server sent more than one answer: {:?}",
            String::from_utf8_lossy(&rest)
        ),
        Err(_) => panic!("an idle keep-alive connection was still open after {within:?}"),
    }
    status
}
