//! CancelRequest: a client opens a new connection and sends the process id
//! and secret key the server gave it at login; the queries that connection
//! is running are cancelled through the engine (their clients get `57014`,
//! their audit records say cancelled). A wrong key cancels nothing and is
//! answered like a right one (the protocol answers a cancel with nothing).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use citylake_engine::Engine;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;

/// The open connections' process ids, secret keys and users.
pub struct CancelRequests {
    engine: Arc<Engine>,
    open: parking_lot::Mutex<HashMap<i32, (SecretKey, String)>>,
}

/// A connection's entry, removed when the connection ends.
pub struct Registered {
    pid: i32,
    table: Arc<CancelRequests>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.table.open.lock().remove(&self.pid);
    }
}

/// The tag of the queries a connection runs (what a cancel finds them by).
pub fn tag(pid: i32) -> String {
    format!("postgres-{pid}")
}

impl CancelRequests {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            open: Default::default(),
        }
    }

    /// A random process id (a sequence would tell how many logins happened in
    /// between) and a random secret key for `user`'s new connection.
    pub fn register(self: &Arc<Self>, user: &str, long_key: bool) -> (i32, SecretKey, Registered) {
        let mut open = self.open.lock();
        let pid = loop {
            let pid = rand::random::<i32>() & 0x7fff_ffff;
            if pid > 0 && !open.contains_key(&pid) {
                break pid;
            }
        };
        let key = if long_key {
            SecretKey::Bytes(rand::random::<[u8; 32]>().to_vec().into())
        } else {
            SecretKey::I32(rand::random())
        };
        open.insert(pid, (key.clone(), user.to_string()));
        drop(open);
        let registered = Registered {
            pid,
            table: self.clone(),
        };
        (pid, key, registered)
    }
}

#[async_trait]
impl pgwire::api::cancel::CancelHandler for CancelRequests {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let user = match self.open.lock().get(&request.pid) {
            // compared as bytes: a 4-byte key may be read back as bytes
            Some((key, user)) if key.to_bytes() == request.secret_key.to_bytes() => user.clone(),
            _ => {
                tracing::warn!(
                    pid = request.pid,
                    "postgres: a cancel request with a wrong key"
                );
                return;
            }
        };
        let n = self.engine.queries().cancel_tagged(
            &tag(request.pid),
            &user,
            "the query was cancelled by the client (CancelRequest)",
        );
        tracing::info!(
            pid = request.pid,
            user,
            queries = n,
            "postgres: cancel request"
        );
    }
}
