//! The server's prepared statements: handles owned by the user who created
//! them, holding SQL (never a plan), bounded per user and closed when idle.

use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use citylake_engine::datafusion::arrow::array::RecordBatch;
use tonic::Status;

/// A prepared statement, owned by the user who created it. It keeps the SQL,
/// not a plan: every execution plans it again under the policy in force and the
/// caller's principal, so a policy reload (a revoked dataset, a new mask or row
/// filter) applies to handles prepared before it.
struct Prepared {
    user: String,
    /// The statement's SQL.
    sql: String,
    /// Bound parameter rows (one execution per row), and the memory they hold.
    params: Option<RecordBatch>,
    param_bytes: u64,
    /// Last created, bound or executed; idle handles expire.
    used: Instant,
}

/// Bounds on the server's prepared-statement state.
#[derive(Debug, Clone, Copy)]
pub struct PreparedLimits {
    /// Open handles per user; creating one more is refused (RESOURCE_EXHAUSTED).
    pub per_user: usize,
    /// A handle unused this long is closed.
    pub idle: Duration,
    /// Bytes of bound parameters one user's handles hold together, with the
    /// uploads of parameters the user is sending; beyond, the upload is
    /// refused (RESOURCE_EXHAUSTED).
    pub parameter_bytes: u64,
    /// How long one upload of bound parameters may take to arrive; a client
    /// still sending then is refused (DEADLINE_EXCEEDED) and what it sent is
    /// given back. The server sets it to `--ingest-timeout`.
    pub upload_timeout: Duration,
}

/// Default of [`PreparedLimits::parameter_bytes`]: parameters are values, not data.
pub const DEFAULT_PARAMETER_BYTES: u64 = 16 << 20;

/// Parameter rows one bind may carry: each row is one execution, recorded
/// with its values, all built when the statement runs.
pub const MAX_PARAMETER_ROWS: u64 = 100_000;

impl Default for PreparedLimits {
    fn default() -> Self {
        Self {
            per_user: 256,
            idle: Duration::from_secs(3600),
            parameter_bytes: DEFAULT_PARAMETER_BYTES,
            upload_timeout: Duration::from_secs(300),
        }
    }
}

/// Every open handle of the server, by handle.
pub struct PreparedStatements {
    handles: Mutex<HashMap<String, Prepared>>,
    /// Bytes of parameters being received, by user: uploads not yet bound
    /// ([`Receipt`]). Locked after `handles` when both are.
    receiving: Mutex<HashMap<String, u64>>,
    limits: PreparedLimits,
}

/// An upload of bound parameters being received for one of a user's handles:
/// what it has received so far counts against the user's limit together with
/// the parameters the user's handles hold and the user's other uploads (one
/// user's concurrent uploads cannot each take the whole limit). Dropped (the
/// upload refused, cut off or bound), its bytes are given back.
pub struct Receipt<'a> {
    statements: &'a PreparedStatements,
    user: String,
    handle: String,
    bytes: u64,
    rows: u64,
}

impl Receipt<'_> {
    /// Counts one more batch of `bytes` and `rows`; refused when the user
    /// would hold more than the limit, or the upload carry more rows than a
    /// bind may.
    pub fn add(&mut self, bytes: u64, rows: u64) -> Result<(), Status> {
        let (bytes, rows) = (
            self.bytes.saturating_add(bytes),
            self.rows.saturating_add(rows),
        );
        let handles = self.statements.open();
        let mut receiving = self.statements.receiving.lock();
        let held = bound(&handles, &self.user, &self.handle)
            + receiving.get(&self.user).copied().unwrap_or(0)
            - self.bytes;
        self.statements
            .check_parameters(held.saturating_add(bytes), rows)?;
        *receiving.entry(self.user.clone()).or_default() += bytes - self.bytes;
        (self.bytes, self.rows) = (bytes, rows);
        Ok(())
    }
}

impl Drop for Receipt<'_> {
    fn drop(&mut self) {
        let mut receiving = self.statements.receiving.lock();
        if let Some(held) = receiving.get_mut(&self.user) {
            *held -= self.bytes;
            if *held == 0 {
                receiving.remove(&self.user);
            }
        }
    }
}

/// Bytes of parameters bound to `user`'s handles other than `except`.
fn bound(handles: &HashMap<String, Prepared>, user: &str, except: &str) -> u64 {
    handles
        .iter()
        .filter(|(k, p)| p.user == user && k.as_str() != except)
        .map(|(_, p)| p.param_bytes)
        .sum()
}

impl PreparedStatements {
    pub fn new(limits: PreparedLimits) -> Self {
        Self {
            handles: Mutex::new(HashMap::new()),
            receiving: Mutex::new(HashMap::new()),
            limits,
        }
    }

    /// A new handle of `user` for `sql`; refused when the user has as many
    /// open as the limit allows.
    pub fn create(&self, user: &str, sql: &str) -> Result<String, Status> {
        let mut handles = self.open();
        let open = handles.values().filter(|p| p.user == user).count();
        if open >= self.limits.per_user {
            return Err(Status::resource_exhausted(format!(
                "user `{user}` has {open} open prepared statements, the most allowed \
                 (--max-prepared-statements); close some (ClosePreparedStatement)"
            )));
        }
        let handle = crate::tickets::new_id();
        handles.insert(
            handle.clone(),
            Prepared {
                user: user.to_string(),
                sql: sql.to_string(),
                params: None,
                param_bytes: 0,
                used: Instant::now(),
            },
        );
        Ok(handle)
    }

    /// The SQL and bound parameters of `user`'s handle.
    pub fn get(&self, handle: &[u8], user: &str) -> Result<(String, Option<RecordBatch>), Status> {
        let mut handles = self.open();
        let p = self.owned(&mut handles, handle, user)?;
        p.used = Instant::now();
        Ok((p.sql.clone(), p.params.clone()))
    }

    /// Starts receiving parameters for `user`'s handle (see [`Receipt`]).
    pub fn receive(&self, handle: &[u8], user: &str) -> Result<Receipt<'_>, Status> {
        let mut handles = self.open();
        self.owned(&mut handles, handle, user)?;
        Ok(Receipt {
            statements: self,
            user: user.to_string(),
            handle: key(handle),
            bytes: 0,
            rows: 0,
        })
    }

    /// Binds the parameter rows `received` counted to `user`'s handle (the
    /// handle's earlier parameters replaced); refused when the user's handles
    /// and other uploads would hold more than the limit.
    pub fn bind(
        &self,
        handle: &[u8],
        user: &str,
        params: Option<RecordBatch>,
        received: Receipt<'_>,
    ) -> Result<(), Status> {
        let mut handles = self.open();
        self.owned(&mut handles, handle, user)?;
        let others = {
            let receiving = self.receiving.lock();
            bound(&handles, user, &key(handle)) + receiving.get(user).copied().unwrap_or(0)
                - received.bytes
        };
        self.check_parameters(
            others.saturating_add(received.bytes),
            params.as_ref().map_or(0, |p| p.num_rows() as u64),
        )?;
        let p = self.owned(&mut handles, handle, user)?;
        (p.params, p.param_bytes) = (params, received.bytes);
        p.used = Instant::now();
        // the bytes move from the uploads to the handle (given back when
        // `received` is dropped, after the handles are unlocked)
        drop(handles);
        drop(received);
        Ok(())
    }

    /// How long one upload of parameters may take to arrive.
    pub fn upload_timeout(&self) -> Duration {
        self.limits.upload_timeout
    }

    /// The most bytes one upload of bound parameters may carry.
    pub fn parameter_bytes(&self) -> u64 {
        self.limits.parameter_bytes
    }

    /// Refuses bound parameters of `bytes` and `rows` (so far: checked while
    /// they are received, too) beyond what one user's handles and uploads may
    /// hold, or more rows than one bind may carry.
    fn check_parameters(&self, bytes: u64, rows: u64) -> Result<(), Status> {
        if rows > MAX_PARAMETER_ROWS {
            return Err(Status::resource_exhausted(format!(
                "more than {MAX_PARAMETER_ROWS} rows of bound parameters (each row is one \
                 execution): bind fewer rows at a time"
            )));
        }
        if bytes > self.limits.parameter_bytes {
            return Err(Status::resource_exhausted(format!(
                "bound parameters beyond {}, the most one user's prepared statements may hold \
                 together: bind fewer rows at a time, or close statements (ClosePreparedStatement)",
                bytesize::ByteSize::b(self.limits.parameter_bytes)
            )));
        }
        Ok(())
    }

    /// Closes `user`'s handle.
    pub fn close(&self, handle: &[u8], user: &str) -> Result<(), Status> {
        let mut handles = self.open();
        self.owned(&mut handles, handle, user)?;
        handles.remove(&key(handle));
        Ok(())
    }

    /// The handles, those idle longer than the limit closed.
    fn open(&self) -> MutexGuard<'_, HashMap<String, Prepared>> {
        let mut handles = self.handles.lock();
        let idle = self.limits.idle;
        handles.retain(|_, p| p.used.elapsed() < idle);
        handles
    }

    /// `user`'s handle; any other (closed, expired, someone else's) is not found.
    fn owned<'a>(
        &self,
        handles: &'a mut HashMap<String, Prepared>,
        handle: &[u8],
        user: &str,
    ) -> Result<&'a mut Prepared, Status> {
        let key = key(handle);
        match handles.get_mut(&key) {
            Some(p) if p.user == user => Ok(p),
            _ => Err(Status::not_found(format!(
                "unknown prepared statement handle `{}` (closed, expired after {} idle, or made by \
                 another server or user)",
                key.chars().take(64).collect::<String>(),
                humantime::format_duration(self.limits.idle)
            ))),
        }
    }
}

fn key(handle: &[u8]) -> String {
    String::from_utf8_lossy(handle).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(limit: u64) -> PreparedStatements {
        PreparedStatements::new(PreparedLimits {
            parameter_bytes: limit,
            ..Default::default()
        })
    }

    fn refused(r: Result<(), Status>) -> String {
        let e = r.expect_err("refused");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
        e.message().to_string()
    }

    /// One user's uploads count together while they arrive (red team: each
    /// was counted alone until bound, so a user with many uploads open held
    /// the limit many times over); another user's do not; bytes come back
    /// when an upload ends, however it ends.
    #[test]
    fn uploads_of_one_user_count_together_until_bound() {
        let s = statements(1000);
        let (a, b) = (
            s.create("ana", "SELECT $1").unwrap(),
            s.create("ana", "SELECT $1").unwrap(),
        );
        let other = s.create("bob", "SELECT $1").unwrap();
        let mut first = s.receive(a.as_bytes(), "ana").unwrap();
        first.add(600, 1).unwrap();
        let mut second = s.receive(b.as_bytes(), "ana").unwrap();
        assert!(refused(second.add(600, 1)).contains("1000 B"));
        // the refused batch was not kept: what fits still does
        second.add(400, 1).unwrap();
        assert_eq!(second.bytes, 400);
        // another user has a limit of their own
        let mut theirs = s.receive(other.as_bytes(), "bob").unwrap();
        theirs.add(1000, 1).unwrap();
        // an upload cut off gives its bytes back
        drop(second);
        let mut third = s.receive(b.as_bytes(), "ana").unwrap();
        third.add(400, 1).unwrap();
        drop(third);
        // bound, the bytes stay counted on the handle; binding again replaces them
        s.bind(a.as_bytes(), "ana", None, first).unwrap();
        let mut again = s.receive(b.as_bytes(), "ana").unwrap();
        assert!(refused(again.add(500, 1)).contains("1000 B"));
        let mut rebind = s.receive(a.as_bytes(), "ana").unwrap();
        rebind.add(900, 1).unwrap();
        // (the other upload of 0 bytes still open)
        s.bind(a.as_bytes(), "ana", None, rebind).unwrap();
        drop(again);
        let mut last = s.receive(b.as_bytes(), "ana").unwrap();
        last.add(100, 1).unwrap();
        assert!(refused(last.add(1, 1)).contains("1000 B"));
        // closed, a handle gives its parameters back
        s.close(a.as_bytes(), "ana").unwrap();
        last.add(900, 1).unwrap();
        assert!(s.receiving.lock().get("ana") == Some(&1000));
        drop(last);
        assert!(s.receiving.lock().get("ana").is_none());
        // rows beyond a bind's are refused as they arrive
        let mut rows = s.receive(b.as_bytes(), "ana").unwrap();
        assert!(refused(rows.add(0, MAX_PARAMETER_ROWS + 1)).contains("rows"));
    }

    /// Someone else's handle is not found, and nothing is counted for it.
    #[test]
    fn uploads_go_to_handles_of_their_own_user() {
        let s = statements(1000);
        let a = s.create("ana", "SELECT $1").unwrap();
        let e = s.receive(a.as_bytes(), "bob").err().expect("not found");
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(s.receiving.lock().is_empty());
    }
}
