//! A TCP proxy on loopback that can be taken down and brought back on the same port: while it
//! is down, connecting to it is refused (nothing listens) and the connections it carried are
//! cut, as when a provider's endpoint goes away.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// The running proxy; dropping it stops it.
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl TcpProxy {
    /// Listens on a free `127.0.0.1` port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let p = TcpProxy {
            addr,
            target,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        p.serve(listener);
        p
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = self.tasks.clone();
        let target = self.target;
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut t = tasks.lock().unwrap_or_else(|e| e.into_inner());
                t.retain(|h| !h.is_finished());
                t.push(conn.abort_handle());
            }
        });
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(accept.abort_handle());
    }

    /// Stops listening and cuts every connection: new connections are refused.
    pub async fn down(&self) {
        let handles: Vec<AbortHandle> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for h in &handles {
            h.abort();
        }
        // Wait until the port refuses connections (the listener is dropped with its task).
        for _ in 0..200 {
            if TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the proxy on {} still accepts connections", self.addr);
    }

    /// Listens again on the same port.
    pub async fn up(&self) {
        for _ in 0..500 {
            if let Ok(l) = TcpListener::bind(self.addr).await {
                self.serve(l);
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("cannot listen on {} again", self.addr);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        for h in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_refuses_while_down_and_comes_back() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let p = TcpProxy::start(target).await;
        let roundtrip = |addr| async move {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(b"ping").await?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        assert_eq!(&roundtrip(p.addr()).await.unwrap(), b"ping");
        p.down().await;
        let e = TcpStream::connect(p.addr()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        p.up().await;
        assert_eq!(&roundtrip(p.addr()).await.unwrap(), b"ping");
    }
}
