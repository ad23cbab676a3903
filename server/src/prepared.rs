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
    /// Bytes of bound parameters one user's handles hold together; a bind
    /// beyond is refused (RESOURCE_EXHAUSTED).
    pub parameter_bytes: u64,
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
        }
    }
}

/// Every open handle of the server, by handle.
pub struct PreparedStatements {
    handles: Mutex<HashMap<String, Prepared>>,
    limits: PreparedLimits,
}

impl PreparedStatements {
    pub fn new(limits: PreparedLimits) -> Self {
        Self {
            handles: Mutex::new(HashMap::new()),
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

    /// Binds parameter rows, holding `bytes` of memory, to `user`'s handle;
    /// refused when the user's handles would hold more than the limit.
    pub fn bind(
        &self,
        handle: &[u8],
        user: &str,
        params: Option<RecordBatch>,
        bytes: u64,
    ) -> Result<(), Status> {
        let mut handles = self.open();
        self.owned(&mut handles, handle, user)?;
        let others: u64 = handles
            .iter()
            .filter(|(k, p)| p.user == user && **k != key(handle))
            .map(|(_, p)| p.param_bytes)
            .sum();
        self.check_parameters(
            others + bytes,
            params.as_ref().map_or(0, |p| p.num_rows() as u64),
        )?;
        let p = self.owned(&mut handles, handle, user)?;
        (p.params, p.param_bytes) = (params, bytes);
        p.used = Instant::now();
        Ok(())
    }

    /// The most bytes one upload of bound parameters may carry.
    pub fn parameter_bytes(&self) -> u64 {
        self.limits.parameter_bytes
    }

    /// Refuses bound parameters of `bytes` and `rows` (so far: checked while
    /// they are received, too) beyond what one user's handles may hold, or
    /// more rows than one bind may carry.
    pub fn check_parameters(&self, bytes: u64, rows: u64) -> Result<(), Status> {
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
