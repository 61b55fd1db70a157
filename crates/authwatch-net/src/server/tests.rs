//! `serve_http` against raw sockets and a real HTTP client.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::routing::post;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use authwatch_testkit::raw_http::{read_reply, Reply};

use super::*;

/// Bodies larger than this get `413` from the test handler.
const LIMIT: usize = 64 * 1024;
/// Only a hang guard: no test waits for it unless the code under test is broken.
const HANG_GUARD: Duration = Duration::from_secs(600);

/// `POST /echo` reads the body (at most [`LIMIT`] bytes, as the receivers' handlers do) and
/// answers `200 got N`; `POST /wait` answers once `release` is notified.
fn app(release: Arc<Notify>) -> axum::Router {
    axum::Router::new()
        .route(
            "/echo",
            post(|body: axum::body::Body| async move {
                let mut body = body;
                let mut n = 0;
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else {
                        return (StatusCode::BAD_REQUEST, "cannot read the body".to_owned());
                    };
                    n += frame.data_ref().map_or(0, |d| d.len());
                    if n > LIMIT {
                        return (StatusCode::PAYLOAD_TOO_LARGE, "too large".to_owned());
                    }
                }
                (StatusCode::OK, format!("got {n}"))
            }),
        )
        .route(
            "/wait",
            post(move || async move {
                release.notified().await;
                "released"
            }),
        )
}

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    release: Arc<Notify>,
}

impl Server {
    async fn start(limits: Limits) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let release = Arc::new(Notify::new());
        let task = tokio::spawn(serve_http(
            listener,
            None,
            app(release.clone()),
            limits,
            shutdown.clone(),
        ));
        Server {
            addr,
            shutdown,
            task,
            release,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(HANG_GUARD, self.task)
            .await
            .expect("serve_http must return after shutdown")
            .unwrap();
    }
}

fn request(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads one response; panics with what arrived when the connection closes first.
async fn read_response(s: &mut TcpStream) -> Reply {
    read_reply(s).await.unwrap_or_else(|got| {
        panic!(
            "the connection closed before a whole response: {:?}",
            String::from_utf8_lossy(&got)
        )
    })
}

/// Whether the server closed the connection (EOF or reset) rather than answering.
async fn closed_without_answer(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match tokio::time::timeout(HANG_GUARD, s.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => rest.is_empty(),
        Ok(Err(_)) => true,
        Err(_) => false,
    }
}

async fn ok_request(server: &Server) {
    let mut s = server.connect().await;
    s.write_all(request("/echo", "hello").as_bytes())
        .await
        .unwrap();
    let res = tokio::time::timeout(HANG_GUARD, read_response(&mut s))
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.text(), "got 5", "{res:?}");
}

#[test]
fn zero_turns_a_timeout_off() {
    let l = Limits::new(Duration::ZERO, Duration::from_secs(1), Duration::ZERO, 0);
    assert_eq!(l.read_header_timeout, None);
    assert_eq!(l.read_timeout, Some(Duration::from_secs(1)));
    assert_eq!(l.idle_timeout, None);
    assert_eq!(l.max_connections, 1);
    let d = Limits::default();
    assert_eq!(d.read_header_timeout, Some(Duration::from_secs(10)));
    assert_eq!(d.read_timeout, Some(Duration::from_secs(30)));
    assert_eq!(d.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(d.max_connections, 1024);
}

#[test]
fn turned_off_timeouts_are_warned_about() {
    let mut v = authwatch_core::Validator::new("");
    validate_http_limits(
        &mut v,
        "http",
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let (errors, warnings) = v.into_parts();
    assert!(errors.is_empty());
    let paths: Vec<String> = warnings
        .iter()
        .map(|w| {
            w.to_string()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        paths,
        ["http", "http", "http"],
        "{warnings:?}" // "http::read_header_timeout: ..." splits at the first ':'
    );
    let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert!(
        text[0].starts_with("http::read_header_timeout: is 0"),
        "{text:?}"
    );
    assert!(text[1].starts_with("http::read_timeout: is 0"), "{text:?}");
    assert!(text[2].starts_with("http::idle_timeout: is 0"), "{text:?}");
    let mut v = authwatch_core::Validator::new("");
    let d = Limits::default();
    validate_http_limits(
        &mut v,
        "",
        d.read_header_timeout.unwrap(),
        d.read_timeout.unwrap(),
        d.idle_timeout.unwrap(),
    );
    assert!(v.into_parts().1.is_empty());
}

#[tokio::test(start_paused = true)]
async fn headers_sent_byte_by_byte_are_cut_off() {
    let server = Server::start(Limits::default()).await;
    let mut slow = server.connect().await;
    // One byte a second: the 10 s `read_header_timeout` passes long before the head ends.
    for b in request("/echo", "hello").bytes() {
        if slow.write_all(&[b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        closed_without_answer(&mut slow).await,
        "a client sending its head slowly must be cut off, not answered"
    );
    // The server goes on serving others.
    ok_request(&server).await;
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_sends_nothing_is_cut_off() {
    let server = Server::start(Limits::default()).await;
    let mut silent = server.connect().await;
    assert!(closed_without_answer(&mut silent).await);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_body_gets_408_while_others_are_served() {
    let server = Server::start(Limits::default()).await;
    let mut slow = server.connect().await;
    slow.write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    // Meanwhile another client is served.
    ok_request(&server).await;
    ok_request(&server).await;
    let res = tokio::time::timeout(HANG_GUARD, read_response(&mut slow))
        .await
        .unwrap();
    assert_eq!(res.status, 408, "{res:?}");
    assert_eq!(res.header("connection"), Some("close"), "{res:?}");
    assert!(res.text().contains("raise `read_timeout`"), "{res:?}");
    assert!(closed_without_answer(&mut slow).await);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_connection_cap_holds_and_frees_on_close() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let server = Server::start(limits).await;
    // Two keep-alive connections, each served once, fill the cap.
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = server.connect().await;
        s.write_all(request("/echo", "hi").as_bytes())
            .await
            .unwrap();
        let res = read_response(&mut s).await;
        assert_eq!(res.status, 200, "{res:?}");
        open.push(s);
    }
    // The third connects (kernel backlog) but is not served while both are open.
    let mut third = server.connect().await;
    third
        .write_all(request("/echo", "third").as_bytes())
        .await
        .unwrap();
    let early = tokio::time::timeout(Duration::from_secs(5), read_response(&mut third)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");
    // Closing one lets it in.
    drop(open.pop());
    let res = tokio::time::timeout(HANG_GUARD, read_response(&mut third))
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.text(), "got 5", "{res:?}");
    drop(open);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn idle_keep_alive_connections_close_after_idle_timeout_not_header_timeout() {
    let server = Server::start(Limits::default()).await;
    let mut s = server.connect().await;
    s.write_all(request("/echo", "hi").as_bytes())
        .await
        .unwrap();
    let res = read_response(&mut s).await;
    assert_eq!(res.status, 200, "{res:?}");
    // Past `read_header_timeout` (10 s) but within `idle_timeout` (60 s): still open and
    // usable.
    tokio::time::sleep(Duration::from_secs(30)).await;
    s.write_all(request("/echo", "again").as_bytes())
        .await
        .unwrap();
    let res = read_response(&mut s).await;
    assert_eq!(res.text(), "got 5", "{res:?}");
    // Then idle: closed.
    assert!(closed_without_answer(&mut s).await);
    server.stop().await;
}

/// A client that writes its whole (oversized, chunked) body before reading still reads
/// the `413`: the server drains instead of resetting the connection.
#[tokio::test]
async fn an_oversized_chunked_body_gets_a_readable_413_raw() {
    let server = Server::start(Limits::default()).await;
    let mut s = server.connect().await;
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    // 1 MiB in 64 KiB chunks, paced so that the client is still writing when the server
    // has answered: a server that closed without draining resets the connection, and a
    // write fails.
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..16 {
        let mut wire = format!("{:x}\r\n", chunk.len()).into_bytes();
        wire.extend_from_slice(&chunk);
        wire.extend_from_slice(b"\r\n");
        tokio::time::timeout(HANG_GUARD, s.write_all(&wire))
            .await
            .unwrap()
            .expect("the server must read (and drop) the rest instead of resetting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let res = tokio::time::timeout(HANG_GUARD, read_response(&mut s))
        .await
        .unwrap();
    assert_eq!(res.status, 413, "{res:?}");
    assert_eq!(res.text(), "too large", "{res:?}");
    server.stop().await;
}

/// The same with a real HTTP client streaming the body.
#[tokio::test]
async fn an_oversized_chunked_body_gets_a_readable_413_hyper_client() {
    let server = Server::start(Limits::default()).await;
    let tcp = server.connect().await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let chunks = futures::stream::iter(
        (0..64).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 16 * 1024])))),
    );
    let req = Request::post("/echo")
        .header("host", "test")
        .body(http_body_util::StreamBody::new(chunks))
        .unwrap();
    let res = tokio::time::timeout(HANG_GUARD, sender.send_request(req))
        .await
        .unwrap()
        .expect("the client must read the answer, not a reset");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"too large");
    drop(sender);
    let _ = tokio::time::timeout(HANG_GUARD, conn).await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_answers_requests_in_flight() {
    let server = Server::start(Limits::default()).await;
    let mut s = server.connect().await;
    s.write_all(request("/wait", "").as_bytes()).await.unwrap();
    // Wait until the request is in the handler, then shut down.
    tokio::task::yield_now().await;
    let mut idle = server.connect().await;
    idle.write_all(request("/echo", "x").as_bytes())
        .await
        .unwrap();
    let _ = read_response(&mut idle).await;
    server.shutdown.cancel();
    // The idle keep-alive connection is closed...
    assert!(closed_without_answer(&mut idle).await);
    // ...the one in flight is answered.
    server.release.notify_waiters();
    let res = tokio::time::timeout(HANG_GUARD, read_response(&mut s))
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.text(), "released", "{res:?}");
    tokio::time::timeout(HANG_GUARD, server.task)
        .await
        .expect("serve_http must return once the request is answered")
        .unwrap();
}
