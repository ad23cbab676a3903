//! citylake's Postgres wire protocol front end.
//!
//! [`serve`] answers the PostgreSQL protocol (v3) on an already-bound
//! listener, beside Flight SQL and on the same [`Engine`]: the same users file
//! (reloaded while running), the same access policy, audit trail, limits,
//! admission queue, `system.queries` and shutdown. It hands the engine a
//! principal and SQL exactly like Flight SQL does ([`Session::query`]), and
//! encodes the Arrow results as Postgres rows (text or binary, per column, as
//! the client asks).
//!
//! # Layout
//! - `doors`: which connections are taken (at most `max_startups` still
//!   logging in, a quarter per address; at most `max_connections` logged in,
//!   an eighth per user and three kept for supervisors);
//! - `connection`: one connection's message loop, every message's size
//!   bounded before it is read (10,000 bytes before login);
//! - `startup`: the startup phase — TLS required beyond loopback, cleartext
//!   password checked against the users file's Argon2 hashes, login records;
//! - `handler`: simple and extended query protocols (Parse/Bind/Describe/
//!   Execute with typed `$n` parameters, portals fetched in chunks), the
//!   statements clients send that are not queries (`SET`, `SHOW`, `BEGIN`, …);
//! - `params`: bound parameter values, text or binary, as engine values;
//! - `rows`: result batches as `DataRow` messages, each batch into one buffer;
//! - `cancel`: CancelRequest by process id and secret key, through the
//!   engine's cancellation;
//! - `error`: the one mapping from engine errors to SQLSTATE codes.
//!
//! [`Session::query`]: citylake_engine::Session::query

mod cancel;
mod connection;
mod copy;
mod doors;
mod error;
mod handler;
mod params;
mod rows;
mod startup;

use std::future::Future;
use std::sync::Arc;

use citylake_engine::Engine;
use citylake_server::{ServerError, TlsPem, UserDirectory};
use pgwire::tokio::tokio_rustls::rustls;
use tokio::net::TcpListener;

/// What the Postgres front end may tune.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// How long a portal's query waits for its client's next fetch before it
    /// is ended (freeing its admission slot).
    pub portal_idle: std::time::Duration,
    /// Most connections logged in at once (the last three only for
    /// supervisors); beyond, logins are refused.
    pub max_connections: usize,
    /// Most connections one user has logged in at once; `None`: an eighth of
    /// `max_connections`.
    pub max_connections_per_user: Option<usize>,
    /// Most connections not logged in yet, a quarter of them from one address
    /// (see `doors`).
    pub max_startups: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            portal_idle: handler::PORTAL_IDLE_TIMEOUT,
            max_connections: 512,
            max_connections_per_user: None,
            max_startups: 64,
        }
    }
}

/// The handlers of every connection (see `connection`): they share the engine, the users and the
/// table of connections a CancelRequest is checked against.
pub(crate) struct Handlers {
    pub(crate) query: Arc<handler::QueryHandler>,
    pub(crate) startup: Arc<startup::Startup>,
    pub(crate) cancel: Arc<cancel::CancelRequests>,
}

/// Serves the Postgres protocol on `listener` until `shutdown` completes, then
/// stops accepting connections (running queries are the engine's to finish or
/// cancel, as for Flight SQL). With `tls`, clients may (and beyond loopback
/// must) use TLS (`sslmode=require`).
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    users: Arc<UserDirectory>,
    tls: Option<TlsPem>,
    shutdown: impl Future<Output = ()> + Send,
    options: PgOptions,
) -> Result<(), ServerError> {
    let acceptor = tls.map(|pem| tls_acceptor(&pem)).transpose()?;
    let cancel = Arc::new(cancel::CancelRequests::new(engine.clone()));
    let handlers = Arc::new(Handlers {
        query: Arc::new(handler::QueryHandler::new(
            engine.clone(),
            users.clone(),
            options.portal_idle,
        )),
        startup: Arc::new(startup::Startup::new(
            engine.clone(),
            users,
            cancel.clone(),
            acceptor.is_some(),
        )),
        cancel,
    });
    let doors = Arc::new(doors::Doors::new(
        options.max_connections,
        options.max_connections_per_user,
        options.max_startups,
    ));
    let refusing = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // out of file descriptors and the like: keep serving the others
                    tracing::warn!(error = %e, "postgres: cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let ticket = match doors.admit(peer.ip()) {
            Ok(ticket) => ticket,
            Err(why) => {
                // as PostgreSQL past max_connections: told why, and closed
                tracing::warn!(%peer, why, "postgres: connection refused");
                refuse(socket, why, &refusing);
                continue;
            }
        };
        let handlers = handlers.clone();
        let acceptor = acceptor.clone();
        let connections = Open::new(engine.clone());
        tokio::spawn(async move {
            let _open = connections;
            if let Err(e) = connection::serve(socket, acceptor, handlers, ticket).await {
                tracing::debug!(%peer, error = %e, "postgres connection ended with an error");
            }
        });
    }
}

/// Refused connections being told why at once, at most; beyond, closed untold.
const MAX_REFUSING: usize = 256;

/// Tells a refused connection why (`53300`) and closes it: the message
/// written, the write side shut, and the client's bytes read and dropped for at
/// most a second, so that the close is not a reset that could discard the
/// message before the client reads it.
fn refuse(
    mut socket: tokio::net::TcpStream,
    why: &'static str,
    refusing: &Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let refusing = refusing.clone();
    tokio::spawn(async move {
        let told = async {
            socket.write_all(&doors::refusal(why)).await?;
            socket.shutdown().await?;
            let mut sink = [0u8; 1024];
            while socket.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), told).await;
        refusing.fetch_sub(1, Ordering::Relaxed);
    });
}

/// A connection, counted in the engine's `connections` gauge while open (the
/// same gauge as Flight SQL's).
struct Open(Arc<Engine>);

impl Open {
    fn new(engine: Arc<Engine>) -> Self {
        engine.queries().metrics.connections.inc();
        Self(engine)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.queries().metrics.connections.dec();
    }
}

/// A TLS acceptor for the certificate and key (the same PEM files as Flight SQL).
fn tls_acceptor(pem: &TlsPem) -> Result<pgwire::tokio::TlsAcceptor, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("the certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&pem.key)
        .map_err(|e| ServerError::Tls(format!("the private key: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServerError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}
