//! A raw HTTP/1.1 client over a plain `TcpStream`, for tests that need what a client library
//! hides or refuses: the exact bytes on the wire (a `Content-Length` larger than the body, a
//! chunked stream, a head that never ends), and the answer read byte for byte (a `408` before
//! the body was sent, a `413` while the client is still writing, an answer and then a close).
//!
//! ```ignore
//! let r = raw_http::post(addr, "/v1/traces", &[("Content-Type", "application/json")], b"{}").await;
//! assert_eq!(r.status, 200, "{r:?}");
//! let r = raw_http::exchange(addr, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 9999\r\n\r\n", b"").await;
//! assert_eq!(r.status, 413);
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest an [`exchange`] may take: a hang guard, not a timing assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// One HTTP/1.1 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Header lines in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses one complete HTTP/1.1 response at the start of `data`, or `None` while more bytes are
/// needed. A body is delimited by `Content-Length`, by chunked encoding, or (with `eof`: the
/// connection has closed) by the end of `data`.
pub fn parse_reply(data: &[u8], eof: bool) -> Option<Reply> {
    let end = find(data, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&data[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &data[end + 4..];
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = reply.header("content-length") {
        let len: usize = len.parse().ok()?;
        if rest.len() < len {
            return None;
        }
        reply.body = rest[..len].to_vec();
    } else if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        let mut at = rest;
        loop {
            let nl = find(at, b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&at[..nl]).ok()?.trim(), 16).ok()?;
            at = &at[nl + 2..];
            if size == 0 {
                break;
            }
            if at.len() < size + 2 {
                return None;
            }
            reply.body.extend_from_slice(&at[..size]);
            at = &at[size + 2..];
        }
    } else if eof {
        reply.body = rest.to_vec();
    } else {
        return None;
    }
    Some(reply)
}

/// Reads one response from `stream`: until it is complete, or until the connection closes or
/// fails. When it closed without a whole response, the error holds the bytes that did arrive.
pub async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Reply, Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(r) = parse_reply(&data, false) {
            return Ok(r);
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    parse_reply(&data, true).ok_or(data)
}

/// On a fresh connection to `addr`, writes `head` then `body` and reads one response. The server
/// may answer (and close) before taking the whole body: that is not an error.
///
/// # Panics
/// When no whole response arrives, or none within [`HANG_GUARD`].
pub async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> Reply {
    let io = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("send the head");
        let _ = s.write_all(body).await;
        read_reply(&mut s).await.unwrap_or_else(|data| {
            panic!(
                "no HTTP response from {addr}, got {:?}",
                String::from_utf8_lossy(&data)
            )
        })
    };
    tokio::time::timeout(HANG_GUARD, io)
        .await
        .expect("an HTTP answer within the hang guard")
}

/// The head of a request with `Host: addr`, `Connection: close`, `headers` and, when given, a
/// `Content-Length`.
pub fn request_head(
    method: &str,
    path: &str,
    addr: SocketAddr,
    headers: &[(&str, &str)],
    content_length: Option<usize>,
) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(n) = content_length {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// `POST path` with `body` and `headers` on a fresh connection; see [`exchange`].
pub async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let head = request_head("POST", path, addr, headers, Some(body.len()));
    exchange(addr, &head, body).await
}

/// `GET path` on a fresh connection; see [`exchange`].
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    exchange(addr, &request_head("GET", path, addr, &[], None), b"").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_and_close_delimited_bodies() {
        let r = parse_reply(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhi",
            false,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.text().as_str(), r.header("x-a")),
            (200, "hi", Some("b"))
        );
        assert_eq!(
            parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi", true),
            None
        );
        let chunked = b"HTTP/1.1 413 Payload Too Large\r\ntransfer-encoding: chunked\r\n\r\n\
                        3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse_reply(chunked, false).unwrap();
        assert_eq!((r.status, r.text().as_str()), (413, "abcde"));
        assert_eq!(parse_reply(&chunked[..chunked.len() - 7], false), None);
        assert_eq!(parse_reply(b"HTTP/1.1 204 No Content\r\n\r\n", false), None);
        let r = parse_reply(b"HTTP/1.1 204 No Content\r\n\r\n", true).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        assert_eq!(parse_reply(b"HTTP/1.1 200 OK\r\n", true), None);
    }

    #[tokio::test]
    async fn exchanges_over_a_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"body") {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let r = post(addr, "/x", &[("X-Test", "1")], b"body").await;
        assert_eq!((r.status, r.text().as_str()), (201, "ok"));
        let sent = server.await.unwrap();
        assert!(sent.starts_with("POST /x HTTP/1.1\r\n"), "{sent}");
        assert!(
            sent.contains("Content-Length: 4\r\nX-Test: 1\r\n\r\nbody"),
            "{sent}"
        );
    }
}
