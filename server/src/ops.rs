//! The operator's side: a small HTTP server (loopback by default) with
//! `/metrics` (Prometheus text), `/health` (liveness: the process answers) and
//! `/ready` (readiness: 503 once shutting down, with the load), and the count
//! of open client connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use citylake_engine::Engine;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What the HTTP endpoints read.
#[derive(Clone)]
pub struct Ops {
    engine: Arc<Engine>,
    shutting_down: Arc<AtomicBool>,
}

impl Ops {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on `/ready` answers 503.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Serves the endpoints on `listener` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/health", get(|| async { "ok\n" }))
            .route("/ready", get(ready))
            .with_state(self);
        axum::serve(listener, app).await
    }
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.engine.metrics_text(),
    )
}

async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    let (running, queued) = ops.engine.load();
    let body = format!("{{\"running\":{running},\"queued\":{queued}}}\n");
    if ops.shutting_down.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, body)
    } else {
        (StatusCode::OK, body)
    }
}

/// One host: an IPv4 address, or the /64 prefix of an IPv6 address (one
/// host's addresses) — what both front ends bound connections per.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer(u128);

impl From<IpAddr> for Peer {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => Self(u128::from(v6) >> 64 | 1 << 127),
        }
    }
}

/// Which connections the Flight SQL listener takes: at most `max` open, at
/// most half of them from one [`Peer`], so that one host cannot hold every
/// connection (each costs a socket, buffers and up to 128 calls). A
/// connection beyond is closed as soon as it is accepted.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    per_peer: usize,
    open: Mutex<(usize, HashMap<Peer, usize>)>,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(Self {
            max,
            per_peer: (max / 2).max(1),
            open: Mutex::default(),
        })
    }

    /// A place for a connection from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Place, &'static str> {
        let peer = Peer::from(ip);
        let mut open = self.open.lock();
        if open.0 >= self.max {
            return Err("the server holds as many connections as it may");
        }
        let from_peer = open.1.entry(peer).or_default();
        if *from_peer >= self.per_peer {
            return Err("this address holds as many connections as one may");
        }
        *from_peer += 1;
        open.0 += 1;
        Ok(Place {
            connections: self.clone(),
            peer,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().0
    }
}

/// A connection's place among the [`Connections`], given back when dropped.
#[derive(Debug)]
pub struct Place {
    connections: Arc<Connections>,
    peer: Peer,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock();
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.peer);
            }
        }
    }
}

/// A client connection, counted in the engine's `connections` gauge while
/// open, holding its [`Place`] when it has one.
pub struct Counted {
    inner: TcpStream,
    engine: Arc<Engine>,
    _place: Option<Place>,
}

impl Counted {
    pub fn new(inner: TcpStream, engine: Arc<Engine>, place: Option<Place>) -> Self {
        engine.queries().metrics.connections.inc();
        Self {
            inner,
            engine,
            _place: place,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.engine.queries().metrics.connections.dec();
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Counted {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_bounded_in_all_and_per_peer_and_given_back() {
        let connections = Connections::new(4);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "::ffff:10.0.0.3".parse().unwrap();
        let first = connections.admit(a).unwrap();
        let _second = connections.admit(a).unwrap();
        // half of all from one address
        assert!(connections.admit(a).unwrap_err().contains("this address"));
        let _third = connections.admit(b).unwrap();
        let _fourth = connections.admit(b).unwrap();
        assert!(
            connections
                .admit(c)
                .unwrap_err()
                .contains("the server holds")
        );
        assert_eq!(connections.open(), 4);
        drop(first);
        // the place given back is anyone's
        let _fifth = connections.admit(c).unwrap();
        assert!(
            connections
                .admit(a)
                .unwrap_err()
                .contains("the server holds")
        );
    }

    #[test]
    fn a_peer_is_a_v4_address_or_a_v6_slash_64() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(Peer::from(v4), Peer::from(mapped));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(Peer::from(a), Peer::from(b));
        assert_ne!(Peer::from(a), Peer::from(other));
        // an IPv6 /64 whose bits look like an IPv4 address is still another host
        let low: IpAddr = "::a01:203".parse().unwrap();
        assert_ne!(
            Peer::from(low),
            Peer::from("0.0.10.1".parse::<IpAddr>().unwrap())
        );
        assert_ne!(
            Peer::from(low),
            Peer::from("10.1.2.3".parse::<IpAddr>().unwrap())
        );
    }
}
