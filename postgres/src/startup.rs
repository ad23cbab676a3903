//! The startup phase: who the client is.
//!
//! The users file holds Argon2 hashes, from which SCRAM-SHA-256 cannot be
//! answered (SCRAM needs its own salted verifier per user), so the server asks
//! for the password in clear text (`AuthenticationCleartextPassword`) and
//! checks it against the hash, as Flight SQL's handshake does. The password
//! therefore crosses the connection: beyond loopback the server requires TLS
//! (it refuses to start on a non-loopback address without a certificate, and
//! with one, refuses clients from beyond loopback that did not negotiate it).
//! Every attempt — accepted or refused, with the user name and client address,
//! never the password — is a `login` record in the audit trail; a login whose
//! record cannot be written is refused (fail closed).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use citylake_engine::Engine;
use citylake_engine::audit::AuditRecord;
use citylake_server::UserDirectory;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, ServerParameterProvider, StartupHandler, finish_authentication,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{ClientInfo, METADATA_USER, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage, ProtocolVersion};

use crate::cancel::{CancelRequests, Registered};
use crate::error::fatal;

/// The user a connection logged in as: set once, when the password checked
/// out. Every query looks this up (a connection without it runs nothing).
pub struct Login {
    pub user: String,
    /// The stored password hash the login was checked against: a connection
    /// outlives no password change.
    pub credential: String,
    pub pid: i32,
    _registered: Registered,
}

/// The login's method as the audit trail records it.
const METHOD: &str = "postgres password";

pub struct Startup {
    engine: Arc<Engine>,
    users: Arc<UserDirectory>,
    cancel: Arc<CancelRequests>,
    tls: bool,
    parameters: Parameters,
}

impl Startup {
    pub fn new(
        engine: Arc<Engine>,
        users: Arc<UserDirectory>,
        cancel: Arc<CancelRequests>,
        tls: bool,
    ) -> Self {
        Self {
            engine,
            users,
            cancel,
            tls,
            parameters: Parameters::default(),
        }
    }

    /// Writes a login record; an error when it cannot be written.
    async fn audit(
        &self,
        user: &str,
        client: &str,
        outcome: Result<&[String], &str>,
    ) -> PgWireResult<()> {
        let mut record = AuditRecord::new(
            "login",
            METHOD,
            if outcome.is_ok() { "ok" } else { "refused" },
        )
        .by(user, client);
        match outcome {
            Ok(roles) => record.roles = roles.join(","),
            Err(why) => record.error = why.to_string(),
        }
        self.engine.audit_log().record(record).await.map_err(|e| {
            fatal(
                "58000",
                format!("the audit trail cannot be written, so no login is accepted: {e}"),
            )
        })
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.tls && !client.is_secure() && !peer.ip().is_loopback() {
                    return Err(fatal(
                        "28000",
                        "this server accepts passwords only over TLS: connect with sslmode=require",
                    ));
                }
                if client
                    .metadata()
                    .get(METADATA_USER)
                    .is_none_or(|u| u.is_empty())
                {
                    return Err(fatal("28000", "no user name in the startup message"));
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                if !matches!(
                    client.state(),
                    PgWireConnectionState::AuthenticationInProgress
                ) {
                    return Err(fatal("08P01", "a password message out of turn"));
                }
                let password = password.into_password()?.password;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let checked = self
                    .users
                    .verify(&user, &password)
                    .await
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::WouldBlock => fatal("53300", e.to_string()),
                        _ => fatal("XX000", format!("checking the password: {e}")),
                    })?
                    .map(|u| (u.principal(), u.password_hash));
                let client_addr = peer.to_string();
                let Some((principal, credential)) = checked else {
                    tracing::warn!(user, %peer, "postgres: failed login");
                    const WHY: &str = "wrong user name or password";
                    self.audit(&user, &client_addr, Err(WHY)).await?;
                    // PostgreSQL's own words (clients match on them), no hint
                    // whether the user exists
                    return Err(fatal(
                        "28P01",
                        format!("password authentication failed for user \"{user}\""),
                    ));
                };
                // a logged-in place (one user's share, the supervisors' kept
                // ones), given back when the connection ends
                let place = match client
                    .session_extensions()
                    .get::<crate::connection::LoggedIn>()
                {
                    Some(state) => state.set(&user, self.engine.supervises(&principal)),
                    None => Ok(()),
                };
                if let Err(why) = place {
                    tracing::warn!(user, %peer, why, "postgres: login refused");
                    self.audit(&user, &client_addr, Err(why.as_str())).await?;
                    return Err(fatal("53300", why));
                }
                self.audit(&user, &client_addr, Ok(&principal.roles))
                    .await?;
                let long_key = client.protocol_version() != ProtocolVersion::PROTOCOL3_0;
                let (pid, key, registered) = self.cancel.register(&user, long_key);
                client.set_pid_and_secret_key(pid, key);
                client.session_extensions().insert(Login {
                    user: user.clone(),
                    credential,
                    pid,
                    _registered: registered,
                });
                tracing::info!(user, %peer, "postgres: login");
                finish_authentication(client, &self.parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What the server tells a client after login: PostgreSQL's defaults for the
/// format settings clients read, citylake's version, read-only.
struct Parameters(DefaultServerParameterProvider);

impl Default for Parameters {
    fn default() -> Self {
        let mut p = DefaultServerParameterProvider::default();
        p.server_version = format!(
            "{} (citylake {})",
            citylake_engine::pg_catalog::SERVER_VERSION,
            env!("CARGO_PKG_VERSION")
        );
        p.is_superuser = false;
        p.default_transaction_read_only = true;
        Self(p)
    }
}

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        self.0.server_parameters(client)
    }
}
