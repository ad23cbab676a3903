//! The operator's side: a small HTTP server (loopback by default) with
//! `/metrics` (Prometheus text), `/health` (liveness: the process answers) and
//! `/ready` (readiness: 503 once shutting down, with the load), and the count
//! of open client connections.

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

/// A client connection, counted in the engine's `connections` gauge while open.
pub struct Counted {
    inner: TcpStream,
    engine: Arc<Engine>,
}

impl Counted {
    pub fn new(inner: TcpStream, engine: Arc<Engine>) -> Self {
        engine.queries().metrics.connections.inc();
        Self { inner, engine }
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
