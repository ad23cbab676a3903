//! citylake's Arrow Flight SQL server.
//!
//! [`serve`] runs [`CitylakeFlightSql`] on an already-bound listener until a
//! shutdown future completes, optionally with TLS. Every call is authenticated
//! (basic-auth handshake → bearer token, or basic credentials on the call),
//! planned and executed through the engine's session API with the caller's
//! principal, read-only, and streamed batch by batch with client-safe types.
//!
//! # Layout
//! - `service`: the Flight SQL commands; [`auth`]: users file, tokens and
//!   credentials; `metadata`: every metadata command (`Listing`), SqlInfo,
//!   XDBC types; `prepared`: prepared statements and their limits;
//!   `tickets`: the tickets handed out and CancelFlightInfo's reading of
//!   them; [`wire`]: client-safe types (the Postgres front end's too); `status`: the one mapping from engine
//!   errors to gRPC codes; [`ops`]: health and metrics; `gate`: in front of
//!   every call, who is calling (before its body is read), what the bodies of
//!   the requests in progress hold, and how long they take to arrive;
//!   `upload`: the checks of what clients upload, message by message.

pub mod auth;
mod gate;
mod metadata;
pub mod ops;
mod prepared;
mod service;
mod status;
mod tickets;
mod upload;
pub mod wire;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use citylake_engine::Engine;
use tokio::net::TcpListener;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub use auth::{Tokens, User, UserDirectory, Users, UsersError};
pub use prepared::PreparedLimits;
pub use service::CitylakeFlightSql;

/// Default lifetime of a bearer token.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read TLS {what} {path}: {error}")]
    TlsFile {
        what: &'static str,
        path: String,
        error: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("server failed: {0}")]
    Transport(String),
}

/// PEM certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl TlsPem {
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, ServerError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|error| ServerError::TlsFile {
                what,
                path: path.display().to_string(),
                error,
            })
        };
        Ok(Self {
            cert: read("certificate", cert)?,
            key: read("key", key)?,
        })
    }
}

/// The largest message a call may send (an ingest's batch, bound parameters).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Default of [`ServeOptions::arriving_bytes_per_user`]: two of the largest
/// messages arriving at once.
pub const DEFAULT_ARRIVING_BYTES_PER_USER: u64 = 2 * MAX_MESSAGE_BYTES as u64;

/// Default of [`ServeOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How long a client may take over its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls one connection may have open at once (HTTP/2 streams).
pub const MAX_CALLS_PER_CONNECTION: u32 = 128;

/// Default time running queries get to finish after a shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What a server may tune beyond its listener, users and TLS.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// After shutdown begins, how long running queries may finish.
    pub shutdown_grace: Duration,
    /// Bounds on prepared statements.
    pub prepared: PreparedLimits,
    /// What one user's messages still arriving may hold together, in bytes
    /// (all users' together: `--max-ingest-memory`, or this when larger).
    pub arriving_bytes_per_user: u64,
    /// Connections open at once, half of them from one address (see
    /// [`ops::Connections`]).
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            prepared: PreparedLimits::default(),
            arriving_bytes_per_user: DEFAULT_ARRIVING_BYTES_PER_USER,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves Flight SQL on `listener` until `shutdown` completes, with the default
/// [`ServeOptions`] (see [`serve_with_options`]).
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    users: Arc<UserDirectory>,
    token_ttl: Duration,
    tls: Option<TlsPem>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    serve_with_options(
        listener,
        engine,
        users,
        token_ttl,
        tls,
        shutdown,
        ServeOptions::default(),
    )
    .await
}

/// Serves Flight SQL on `listener` until `shutdown` completes. Then it stops
/// accepting connections and calls, lets running queries finish for the grace period,
/// and cancels those still running (their clients get `CANCELLED`, their
/// audit records are written). The audit trail is synced record by record.
pub async fn serve_with_options(
    listener: TcpListener,
    engine: Arc<Engine>,
    users: Arc<UserDirectory>,
    token_ttl: Duration,
    tls: Option<TlsPem>,
    shutdown: impl Future<Output = ()> + Send,
    options: ServeOptions,
) -> Result<(), ServerError> {
    let grace = options.shutdown_grace;
    let prepared = options.prepared;
    let service = Arc::new(
        CitylakeFlightSql::new(engine.clone(), users, Arc::new(Tokens::new(token_ttl)))
            .with_prepared_limits(prepared),
    );
    // what messages still arriving may hold: a user's, and all users'
    // together (at least one user's: see `Budget::new`)
    let budget = gate::Budget::new(
        options.arriving_bytes_per_user,
        engine.max_ingest_memory() as u64,
        engine.ingest_timeout().max(prepared.upload_timeout),
    );
    let gate = gate::GateLayer::new(service.clone(), budget);
    let queries = engine.queries().clone();
    let shutdown = async move {
        shutdown.await;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let n = queries.cancel_all("the query was cancelled: the server is shutting down");
            if n > 0 {
                tracing::warn!(
                    queries = n,
                    "shutdown grace period over: cancelled the running queries"
                );
            }
        });
    };
    // Larger HTTP/2 flow-control windows: results are large and mostly sent on
    // fast links; the 64 KiB defaults stall the stream between acknowledgements.
    // A connection carries at most 128 calls at once (each may hold a
    // handler and a message being received), and one whose peer stopped
    // answering is closed after the keepalive's timeout.
    let mut builder = Server::builder()
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .max_concurrent_streams(MAX_CALLS_PER_CONNECTION)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    if let Some(tls) = tls {
        citylake_engine::install_tls_provider();
        builder = builder
            .tls_config(
                ServerTlsConfig::new()
                    .identity(Identity::from_pem(tls.cert, tls.key))
                    .timeout(TLS_HANDSHAKE_TIMEOUT),
            )
            .map_err(|e| ServerError::Tls(e.to_string()))?;
    }
    builder
        .layer(gate)
        .add_service(
            FlightServiceServer::from_arc(service).max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(
            incoming(
                listener,
                engine,
                ops::Connections::new(options.max_connections),
            ),
            shutdown,
        )
        .await
        .map_err(|e| ServerError::Transport(e.to_string()))
}

/// The accepted connections, with Nagle's algorithm off: a Flight SQL call is a
/// few small HTTP/2 frames each way, and with Nagle on, each waits for the
/// peer's delayed ACK (~40 ms per call on Linux).
/// Each connection holds a place among `connections` (one beyond is closed at
/// once) and is counted in the `connections` gauge while open. A failed accept
/// (out of file descriptors) is retried after a pause, not at once in a loop.
fn incoming(
    listener: TcpListener,
    engine: Arc<Engine>,
    connections: Arc<ops::Connections>,
) -> impl futures::Stream<Item = std::io::Result<ops::Counted>> {
    futures::stream::unfold(listener, move |listener| {
        let (engine, connections) = (engine.clone(), connections.clone());
        async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a connection; retrying in 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let place = match connections.admit(peer.ip()) {
                    Ok(place) => place,
                    Err(why) => {
                        tracing::debug!(%peer, why, "connection refused");
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::warn!(error = %e, "cannot set TCP_NODELAY");
                }
                let counted = ops::Counted::new(stream, engine, Some(place));
                return Some((Ok(counted), listener));
            }
        }
    })
}
