//! The audit trail: one JSON line per request — who, from where, what, which
//! datasets and columns, what was masked, how much came back, how it ended —
//! appended to `audit-YYYY-MM-DD.jsonl` files in the audit directory and
//! readable as `system.audit_log` by the roles the policy allows.
//!
//! Durability: each record is written and `fsync`ed before the call that
//! made it returns (for a query: when its result stream ends, before the
//! client sees the end of the stream), so an acknowledged request is on disk;
//! a crash can lose only the record of a request still running. One writer
//! thread does the writing: records submitted while it syncs are written
//! together and synced once (group commit), so requests never queue behind
//! each other's `fsync` on the async workers. Records never
//! hold passwords or tokens: the SQL text and the user name are recorded, the
//! credentials never reach this module.
//!
//! Fail closed: a record that cannot be written is an error for the request
//! that made it (the server answers UNAVAILABLE), unless the log was opened
//! fail-open, which only logs the failure.
//!
//! Tamper evidence: records are numbered (`seq`, from 1, across files and
//! restarts) and chained: each holds the hash of the one before (`prev_hash`)
//! and its own (`hash`, SHA-256 of the record's JSON with `hash` empty).
//! [`verify`] walks the files in order and names the first record that was
//! altered, deleted, inserted or moved. (Truncating the newest records leaves a
//! shorter valid chain: compare the head `verify` prints with a copy kept
//! elsewhere.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;

use crate::error::{EngineError, Result};

/// One request, as recorded.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    #[serde(default)]
    pub seq: i64,
    /// The query's id (as in `system.queries` and the log); 0 for other kinds.
    #[serde(default)]
    pub query_id: i64,
    /// RFC 3339, UTC.
    pub time: String,
    pub user: String,
    pub roles: String,
    pub client: String,
    /// `query`, `plan`, `metadata`, …
    pub kind: String,
    /// The SQL or the command.
    pub request: String,
    /// Datasets touched, comma-separated `schema.table`.
    pub datasets: String,
    /// Columns masked for this user among those datasets, comma-separated.
    pub masked: String,
    pub rows: i64,
    pub bytes: i64,
    pub duration_ms: i64,
    /// For queries, [`crate::queries::Outcome`]: `ok`, `error`, `refused`,
    /// `timed_out`, `over_limit`, `cancelled`, `dropped`; other kinds `ok`,
    /// `refused` or `error`.
    pub outcome: String,
    pub error: String,
    /// Values bound to a prepared statement's parameters (JSON rows).
    #[serde(default)]
    pub parameters: String,
    /// The previous record's `hash` (empty for the first).
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 of this record's JSON with `hash` empty, hex.
    #[serde(default)]
    pub hash: String,
    /// The engine built `request` with personal values hashed already (an
    /// erasure's predicate): not redacted again (see [`crate::redact`]).
    #[serde(skip)]
    pub(crate) redacted: bool,
    /// The request's plan uses a personal column: every literal and parameter
    /// is hashed (see [`crate::redact`]).
    #[serde(skip)]
    pub(crate) personal: bool,
}

/// Default of the longest request text kept whole in a record.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 16 * 1024;

/// `text` as recorded: whole up to `max` bytes; longer, its first `max` bytes
/// (at a character boundary) followed by its length and SHA-256, so a record or
/// `system.queries` entry stays small whatever a client sends.
pub fn clip_request(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [{} bytes in all, sha256 {}]",
        &text[..end],
        text.len(),
        sha256_hex(text.as_bytes())
    )
    .into()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The prefix of a record hash made with the audit key (HMAC-SHA-256).
const KEYED: &str = "hmac-sha256:";

/// The seal of a record's JSON: its SHA-256, or with `key` its HMAC-SHA-256
/// (prefixed [`KEYED`]), which only a holder of the key can compute — so a
/// writer of the audit files who lacks it cannot rebuild the chain after
/// removing or changing a record.
fn digest(json: &[u8], key: Option<&[u8]>) -> String {
    use hmac::{KeyInit, Mac};
    match key {
        None => sha256_hex(json),
        Some(key) => {
            let mut mac =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(json);
            let hex: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{KEYED}{hex}")
        }
    }
}

/// The record's JSON with its chain fields set from `prev_hash`, sealed with
/// `key` when the trail has one (see [`digest`]).
fn seal(
    record: &mut AuditRecord,
    prev_hash: &str,
    key: Option<&[u8]>,
) -> serde_json::Result<String> {
    record.prev_hash = prev_hash.to_string();
    record.hash = String::new();
    record.hash = digest(serde_json::to_string(record)?.as_bytes(), key);
    serde_json::to_string(record)
}

/// Whether `record` (as read, `hash` included) carries the seal `key` makes.
fn sealed_with(record: &AuditRecord, key: Option<&[u8]>) -> bool {
    let mut copy = record.clone();
    let stored = std::mem::take(&mut copy.hash);
    let prev = copy.prev_hash.clone();
    seal(&mut copy, &prev, key).is_ok() && copy.hash == stored
}

/// Reads an audit key file: its bytes, surrounding whitespace trimmed, at
/// least 32 of them (`citylake audit key FILE` writes 64 random hex digits).
pub fn read_key(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| EngineError::Config(format!("audit key {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let key = text.trim().as_bytes().to_vec();
    if key.len() < 32 {
        return Err(EngineError::Config(format!(
            "audit key {}: at least 32 bytes are needed, found {} (make one with `citylake audit key FILE`)",
            path.display(),
            key.len()
        )));
    }
    Ok(key)
}

/// Writes a new random audit key (64 hex digits) to `path`, readable by its
/// owner only; refuses to replace an existing file.
pub fn write_new_key(path: &Path) -> Result<()> {
    use rand::RngCore;
    use std::io::Write;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| EngineError::Config(format!("audit key {}: {e}", path.display())))?;
    file.write_all(format!("{hex}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| EngineError::Config(format!("audit key {}: {e}", path.display())))
}

impl AuditRecord {
    /// A record of a `kind` request (`query`, `plan`, `metadata`) for `request`
    /// (SQL or command) that ended with `outcome`; the session fills in who, from
    /// where, and which datasets and masked columns.
    pub fn new(kind: &str, request: &str, outcome: &str) -> Self {
        Self {
            kind: kind.to_string(),
            request: request.to_string(),
            outcome: outcome.to_string(),
            ..Default::default()
        }
    }

    /// With the rows and bytes returned.
    pub fn returned(mut self, rows: u64, bytes: u64) -> Self {
        self.rows = rows as i64;
        self.bytes = bytes as i64;
        self
    }

    /// With the time the request took.
    pub fn took(mut self, duration: std::time::Duration) -> Self {
        self.duration_ms = duration.as_millis() as i64;
        self
    }

    /// With the error the request ended with.
    pub fn failed(mut self, error: impl std::fmt::Display) -> Self {
        self.error = error.to_string();
        self
    }

    /// With the values bound to the statement's parameters.
    pub fn with_parameters(mut self, parameters: impl Into<String>) -> Self {
        self.parameters = parameters.into();
        self
    }

    /// By `user` from `client`, for records made outside a session (logins).
    pub fn by(mut self, user: &str, client: &str) -> Self {
        self.user = user.to_string();
        self.client = client.to_string();
        self
    }
}

/// The schema of `system.audit_log` (the fields of [`AuditRecord`]).
pub fn schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        int("seq"),
        int("query_id"),
        text("time"),
        text("user"),
        text("roles"),
        text("client"),
        text("kind"),
        text("request"),
        text("datasets"),
        text("masked"),
        int("rows"),
        int("bytes"),
        int("duration_ms"),
        text("outcome"),
        text("error"),
        text("parameters"),
        text("prev_hash"),
        text("hash"),
    ]))
}

/// A record that could not be written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit trail cannot be written ({dir}): {error}; the request is refused")]
pub struct AuditError {
    dir: String,
    error: String,
}

/// Most records written (and synced) together.
const MAX_BATCH: usize = 4096;

/// The audit files of one directory, appended to by one writer thread.
///
/// [`AuditLog::submit`] hands a record to the writer and returns an [`Ack`]
/// that resolves once the record is on disk (or could not be written). The
/// writer takes every record waiting when it starts a write, appends them as
/// one write and syncs once (group commit): under load, many requests share
/// one `fsync`, and no async worker ever waits on the disk.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    /// `dir` as errors name it (shared by every [`Ack`]).
    dir_text: Arc<str>,
    /// Longest request text kept whole.
    max_request_bytes: usize,
    /// Hashes personal values out of request texts.
    redactor: crate::redact::Redactor,
    /// Log a failed write and go on, instead of failing the request.
    fail_open: bool,
    /// Acknowledge without writing (benchmarks only).
    discard: bool,
    /// The writer's queue; taken on drop so the writer ends.
    queue: Option<std::sync::mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    stats: Arc<WriterStats>,
}

/// A record and where to say it is written.
struct Job {
    record: AuditRecord,
    done: tokio::sync::oneshot::Sender<std::result::Result<(), String>>,
}

/// What the writer has done: records written, and the syncs that made them durable.
#[derive(Debug, Default)]
struct WriterStats {
    records: AtomicU64,
    syncs: AtomicU64,
}

/// The writer thread's state: the trail's file lock, the open day file and
/// the chain's head.
#[derive(Debug)]
struct Chain {
    dir: PathBuf,
    /// `.lock` in the directory: held (an OS file lock) while records are
    /// appended, so that processes sharing a trail (two servers, a server and a
    /// command) extend one chain.
    lock: std::fs::File,
    file: Option<(String, std::fs::File)>,
    seq: i64,
    hash: String,
    /// The newest file and its length when this process last read or wrote
    /// it: if either changed, another process wrote, and the head is re-read.
    known: Known,
    /// The audit key: records are sealed with it, and a head not sealed with
    /// it is not extended (the trail was changed by someone without the key).
    key: Option<Arc<[u8]>>,
}

/// A file and its length in bytes, as last seen.
type Known = Option<(PathBuf, u64)>;

/// Releases the trail's file lock when dropped.
struct Locked<'a>(&'a std::fs::File);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// The answer to one [`AuditLog::submit`]: a future (for async callers) that
/// resolves when the record is on disk; [`Ack::wait`] blocks for it instead.
#[must_use = "a record is acknowledged only when its Ack resolves"]
pub struct Ack {
    done: tokio::sync::oneshot::Receiver<std::result::Result<(), String>>,
    dir: Arc<str>,
    fail_open: bool,
}

impl Ack {
    /// The answer for the requester: written, or fail-open, or the error.
    fn resolve(
        dir: &str,
        fail_open: bool,
        written: std::result::Result<std::result::Result<(), String>, impl std::fmt::Display>,
    ) -> std::result::Result<(), AuditError> {
        let error = match written {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(e) => format!("the audit writer stopped ({e})"),
        };
        if fail_open {
            return Ok(());
        }
        Err(AuditError {
            dir: dir.to_string(),
            error,
        })
    }

    /// Blocks until the record is written (not from an async task: use `.await`).
    pub fn wait(self) -> std::result::Result<(), AuditError> {
        Self::resolve(&self.dir, self.fail_open, self.done.blocking_recv())
    }
}

impl Future for Ack {
    type Output = std::result::Result<(), AuditError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let written = std::task::ready!(std::pin::Pin::new(&mut self.done).poll(cx));
        std::task::Poll::Ready(Self::resolve(&self.dir, self.fail_open, written))
    }
}

impl AuditLog {
    /// Opens (creating) the audit directory, continuing the chain of the
    /// records already there, and starts its writer thread.
    ///
    /// With `key`, records are sealed with HMAC-SHA-256 under it, and a trail
    /// whose newest record is not sealed with it is refused (now, and whenever
    /// another process has extended the trail since): the files were changed
    /// by someone who does not hold the key.
    pub fn open(dir: &Path, key: Option<Vec<u8>>) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| EngineError::Config(format!("audit directory {}: {e}", dir.display())))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))
            .map_err(|e| EngineError::Config(format!("audit directory {}: {e}", dir.display())))?;
        let key: Option<Arc<[u8]>> = key.map(Into::into);
        let (seq, hash, known) = head(dir, key.as_deref())?;
        let chain = Chain {
            dir: dir.to_path_buf(),
            lock,
            file: None,
            seq,
            hash,
            known,
            key,
        };
        let stats = Arc::new(WriterStats::default());
        let (queue, jobs) = std::sync::mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("citylake-audit".into())
            .spawn({
                let stats = stats.clone();
                move || chain.run(jobs, &stats)
            })
            .map_err(|e| EngineError::Config(format!("starting the audit writer: {e}")))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            dir_text: dir.display().to_string().into(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            redactor: Default::default(),
            fail_open: false,
            discard: false,
            queue: Some(queue),
            writer: Some(writer),
            stats,
        })
    }

    /// Hashes the personal values of request texts with `redactor` (see
    /// [`crate::redact`]; default: none are).
    pub fn with_redactor(mut self, redactor: crate::redact::Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// What hashes the personal values of request texts.
    pub fn redactor(&self) -> &crate::redact::Redactor {
        &self.redactor
    }

    /// Keeps request texts whole up to `max` bytes (see [`clip_request`]).
    pub fn with_max_request_bytes(mut self, max: usize) -> Self {
        self.max_request_bytes = max;
        self
    }

    /// A record that cannot be written is logged and the request goes on
    /// (default: the request fails).
    pub fn with_fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// Acknowledges records without writing them (benchmarks of what the
    /// trail costs; nothing is recorded).
    pub fn discarding(mut self, discard: bool) -> Self {
        self.discard = discard;
        self
    }

    /// Where the files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The longest request text kept whole.
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    /// Records written so far by this process, and the syncs that made them
    /// durable (records per sync is the group commit's batch size).
    pub fn writes(&self) -> (u64, u64) {
        (
            self.stats.records.load(Ordering::Relaxed),
            self.stats.syncs.load(Ordering::Relaxed),
        )
    }

    /// Hands `record` to the writer (its time set now; it is numbered and
    /// chained when written). The [`Ack`] resolves when it is on disk; a
    /// failure is an error unless the log is fail-open.
    pub fn submit(&self, mut record: AuditRecord) -> Ack {
        let now = chrono::Utc::now();
        record.time = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // personal values out before anything is kept (a query's record was
        // redacted when it was registered: this is then a no-op)
        if !record.redacted {
            let redacted = if record.personal {
                self.redactor
                    .redact_all(&record.request, &record.parameters)
            } else {
                self.redactor.redact(&record.request, &record.parameters)
            };
            record.error = self
                .redactor
                .scrub(&record.error, &redacted, &record.outcome);
            (record.request, record.parameters) = (redacted.request, redacted.parameters);
        }
        record.request = clip_request(&record.request, self.max_request_bytes).into_owned();
        record.parameters = clip_request(&record.parameters, self.max_request_bytes).into_owned();
        record.error = clip_request(&record.error, self.max_request_bytes).into_owned();
        let (done, answer) = tokio::sync::oneshot::channel();
        if self.discard {
            let _ = done.send(Ok(()));
        } else if let Some(queue) = &self.queue {
            // a send fails only when the writer is gone: the Ack then reports it
            let _ = queue.send(Job { record, done });
        }
        Ack {
            done: answer,
            dir: self.dir_text.clone(),
            fail_open: self.fail_open,
        }
    }

    /// Appends `record` and waits until it is on disk.
    pub async fn record(&self, record: AuditRecord) -> std::result::Result<(), AuditError> {
        self.submit(record).await
    }

    /// [`AuditLog::record`] for code outside an async runtime.
    pub fn record_blocking(&self, record: AuditRecord) -> std::result::Result<(), AuditError> {
        self.submit(record).wait()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        // the writer drains what was submitted, then ends
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Chain {
    /// The writer thread: takes every record waiting, appends them with one
    /// write and one sync, and acknowledges each.
    fn run(mut self, jobs: std::sync::mpsc::Receiver<Job>, stats: &WriterStats) {
        while let Ok(first) = jobs.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut records: Vec<&mut AuditRecord> =
                batch.iter_mut().map(|j| &mut j.record).collect();
            let result = self.append(&mut records).map_err(|e| {
                tracing::error!(error = %e, dir = %self.dir.display(), "cannot write the audit log");
                e.to_string()
            });
            if result.is_ok() {
                stats
                    .records
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                stats.syncs.fetch_add(1, Ordering::Relaxed);
            }
            for job in batch {
                // a requester that stopped waiting no longer needs the answer
                let _ = job.done.send(result.clone());
            }
        }
    }

    /// Numbers, chains and appends `records` to today's file, then syncs it.
    /// On failure the chain's head is unchanged (the records are not written).
    fn append(&mut self, records: &mut [&mut AuditRecord]) -> std::io::Result<()> {
        let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
        self.lock.lock()?;
        let _locked = Locked(&self.lock);
        let path = self.dir.join(format!("audit-{day}.jsonl"));
        // another process may have extended the chain since this one last did
        let unchanged = match &self.known {
            Some((known, len)) => {
                std::fs::metadata(known).is_ok_and(|m| m.len() == *len)
                    && (*known == path || !path.exists())
            }
            None => !path.exists(),
        };
        if !unchanged {
            let (seq, hash, known) = head(&self.dir, self.key.as_deref())
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            (self.seq, self.hash, self.known) = (seq, hash, known);
        }
        let (mut seq, mut hash) = (self.seq, self.hash.clone());
        let mut lines = String::new();
        for record in records.iter_mut() {
            seq += 1;
            record.seq = seq;
            lines.push_str(&seal(record, &hash, self.key.as_deref())?);
            lines.push('\n');
            hash = record.hash.clone();
        }
        // a day file removed or moved away while open would swallow records
        // that nobody can read: write to the file that is there (or fail)
        if self.file.is_some() && !path.exists() {
            self.file = None;
        }
        if self.file.as_ref().is_none_or(|(d, _)| *d != day) {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            self.file = Some((day, file));
        }
        let (_, file) = self.file.as_mut().expect("opened above");
        let written = file
            .write_all(lines.as_bytes())
            .and_then(|()| file.sync_data())
            .and_then(|()| file.metadata());
        match written {
            Ok(meta) => {
                self.known = Some((path, meta.len()));
                (self.seq, self.hash) = (seq, hash);
                Ok(())
            }
            Err(e) => {
                // the file may hold part of a line: reopen it next time
                self.file = None;
                Err(e)
            }
        }
    }
}

/// The audit files of `dir`, oldest first.
fn audit_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::Config(format!("audit directory {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

/// The last record's `seq` and `hash` (0 and empty for a new trail), and the
/// newest file with its length. With `key`, the last record must be sealed
/// with it.
fn head(dir: &Path, key: Option<&[u8]>) -> Result<(i64, String, Known)> {
    let files = audit_files(dir)?;
    let known = match files.last() {
        Some(p) => Some((
            p.clone(),
            std::fs::metadata(p)
                .map_err(|e| EngineError::Config(format!("{}: {e}", p.display())))?
                .len(),
        )),
        None => None,
    };
    for path in files.iter().rev() {
        if let Some(last) = last_line(path)? {
            let record: AuditRecord = serde_json::from_str(&last).map_err(|e| {
                EngineError::Config(format!(
                    "{}: the last audit record is unreadable ({e}); check it with `citylake audit verify`",
                    path.display()
                ))
            })?;
            if key.is_some() && !sealed_with(&record, key) {
                return Err(EngineError::Audit(format!(
                    "{}: the newest audit record ({}) is not sealed with the audit key: the \
                     trail was changed by someone without the key, or written without it; no \
                     record is added to it (check it with `citylake audit verify --audit-key`)",
                    path.display(),
                    record.seq
                )));
            }
            return Ok((record.seq, record.hash, known));
        }
    }
    Ok((0, String::new(), known))
}

/// The last non-empty line of a file, read from its end (a day file can be
/// large; a record is a few KiB).
fn last_line(path: &Path) -> Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let err = |e: std::io::Error| EngineError::Config(format!("{}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(err)?;
    let len = file.metadata().map_err(err)?.len();
    let mut chunk: u64 = 256 << 10;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start)).map_err(err)?;
        let mut bytes = vec![];
        file.read_to_end(&mut bytes).map_err(err)?;
        let text = String::from_utf8_lossy(&bytes);
        let trimmed = text.trim_end();
        match trimmed.rfind('\n') {
            Some(i) => return Ok(Some(trimmed[i + 1..].to_string())),
            None if start == 0 => {
                return Ok((!trimmed.is_empty()).then(|| trimmed.to_string()));
            }
            None => chunk *= 4,
        }
    }
}

/// What [`verify`] found in an intact trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub records: i64,
    pub files: usize,
    /// The newest record's hash (empty for an empty trail).
    pub hash: String,
}

/// Where a trail stops being the one that was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct ChainBreak {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

/// Walks the audit files of `dir` in order and checks every record's number,
/// link to the one before and own hash; the first that does not hold is named.
/// With `key`, every record must be sealed with it (HMAC-SHA-256): a chain
/// rebuilt by someone without the key after removing or changing records
/// fails at the first record they sealed. Without it, a keyed record is
/// named as needing the key.
pub fn verify(
    dir: &Path,
    key: Option<&[u8]>,
) -> Result<std::result::Result<ChainHead, ChainBreak>> {
    let files = audit_files(dir)?;
    let (mut seq, mut hash) = (0i64, String::new());
    for path in &files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::Config(format!("{}: {e}", path.display())))?;
        for (i, line) in text.lines().enumerate() {
            let at = |problem: String| ChainBreak {
                file: path.display().to_string(),
                line: i + 1,
                problem,
            };
            let record: AuditRecord = match serde_json::from_str(line) {
                Ok(r) => r,
                Err(e) => return Ok(Err(at(format!("not an audit record ({e}): altered")))),
            };
            let keyed = record.hash.starts_with(KEYED);
            match (keyed, key) {
                (true, None) => {
                    return Ok(Err(at(format!(
                        "record {} is sealed with an audit key: verify with --audit-key",
                        record.seq
                    ))));
                }
                (false, Some(_)) => {
                    return Ok(Err(at(format!(
                        "record {} is not sealed with the audit key: written without it, or \
                         by someone who does not hold it (records removed or changed, and the \
                         chain rebuilt)",
                        record.seq
                    ))));
                }
                _ => {}
            }
            let stored = record.hash.clone();
            if !sealed_with(&record, key) {
                return Ok(Err(at(format!(
                    "record {} was altered (its hash does not match its content)",
                    record.seq
                ))));
            }
            if record.seq != seq + 1 {
                let problem = if record.seq > seq + 1 {
                    format!(
                        "record {} follows record {seq}: records {} to {} were deleted",
                        record.seq,
                        seq + 1,
                        record.seq - 1
                    )
                } else {
                    format!(
                        "record {} follows record {seq}: inserted, replayed or out of order",
                        record.seq
                    )
                };
                return Ok(Err(at(problem)));
            }
            if record.prev_hash != hash {
                return Ok(Err(at(format!(
                    "record {} does not link to the record before it: a record was replaced, \
                     inserted or moved",
                    record.seq
                ))));
            }
            seq = record.seq;
            hash = stored;
        }
    }
    Ok(Ok(ChainHead {
        records: seq,
        files: files.len(),
        hash,
    }))
}

/// `system.audit_log`: every record of the audit directory, read afresh by
/// each query (the files grow while the server runs, so no listing or footer
/// cache may stand in between).
#[derive(Debug, Clone)]
pub struct AuditTable {
    dir: PathBuf,
}

impl AuditTable {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn read(&self) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
        let files = audit_files(&self.dir)?;
        let mut batches = vec![];
        for path in files {
            let file = std::fs::File::open(&path)
                .map_err(|e| EngineError::Config(format!("{}: {e}", path.display())))?;
            let reader = datafusion::arrow::json::ReaderBuilder::new(schema())
                .build(std::io::BufReader::new(file))
                .map_err(datafusion::error::DataFusionError::from)?;
            for batch in reader {
                batches.push(batch.map_err(datafusion::error::DataFusionError::from)?);
            }
        }
        Ok(batches)
    }
}

impl crate::snapshot::Snapshot for AuditTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn batches(&self) -> datafusion::error::Result<Vec<datafusion::arrow::array::RecordBatch>> {
        self.read()
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(dir: &Path) -> Vec<(PathBuf, String)> {
        audit_files(dir)
            .unwrap()
            .into_iter()
            .flat_map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                text.lines()
                    .map(|l| (p.clone(), l.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn rewrite(dir: &Path, lines: &[(PathBuf, String)]) {
        for p in audit_files(dir).unwrap() {
            std::fs::remove_file(p).unwrap();
        }
        for (p, l) in lines {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap();
            writeln!(f, "{l}").unwrap();
        }
    }

    fn trail(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit");
        let log = AuditLog::open(&audit, None).unwrap();
        for i in 0..n {
            log.record_blocking(AuditRecord::new("query", &format!("SELECT {i}"), "ok"))
                .unwrap();
        }
        (dir, audit)
    }

    #[test]
    fn records_are_json_lines_appended_to_the_day_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit"), None).unwrap();
        for outcome in ["ok", "refused"] {
            log.record_blocking(AuditRecord {
                user: "dora".into(),
                request: "SELECT 1".into(),
                outcome: outcome.into(),
                ..Default::default()
            })
            .unwrap();
        }
        let files = audit_files(log.dir()).unwrap();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["outcome"], "refused");
        assert_eq!(lines[1]["seq"], 2);
        assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        // a second log on the same directory appends and continues the chain
        AuditLog::open(&dir.path().join("audit"), None)
            .unwrap()
            .record_blocking(AuditRecord::default())
            .unwrap();
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert_eq!(text.lines().count(), 3);
        let head = verify(log.dir(), None).unwrap().unwrap();
        assert_eq!(head.records, 3);
        assert_eq!(schema().fields().len(), 18);
    }

    #[test]
    fn an_intact_chain_verifies_across_files() {
        let (_d, audit) = trail(4);
        // move the last two records into the next day's file
        let mut all = lines(&audit);
        let next = audit.join("audit-2999-01-01.jsonl");
        all[2].0 = next.clone();
        all[3].0 = next;
        rewrite(&audit, &all);
        let head = verify(&audit, None).unwrap().unwrap();
        assert_eq!((head.records, head.files), (4, 2));
        assert_eq!(head.hash.len(), 64);
    }

    #[test]
    fn every_kind_of_tampering_is_named() {
        let (_d, audit) = trail(5);
        let original = lines(&audit);
        let check = |lines: Vec<(PathBuf, String)>, line: usize, words: &str| {
            rewrite(&audit, &lines);
            let broken = verify(&audit, None).unwrap().unwrap_err();
            assert_eq!(broken.line, line, "{broken}");
            assert!(broken.problem.contains(words), "{broken}");
        };
        // altered: one value changed, hash kept
        let mut l = original.clone();
        l[2].1 = l[2].1.replace("SELECT 2", "SELECT 9");
        check(l, 3, "altered");
        // altered and re-hashed by someone without the rest of the chain
        let mut l = original.clone();
        let mut r: AuditRecord = serde_json::from_str(&l[2].1).unwrap();
        r.user = "nobody".into();
        let prev = r.prev_hash.clone();
        l[2].1 = seal(&mut r, &prev, None).unwrap();
        check(l, 4, "does not link");
        // deleted
        let mut l = original.clone();
        l.remove(1);
        check(l, 2, "were deleted");
        // reordered
        let mut l = original.clone();
        l.swap(1, 2);
        check(l, 2, "deleted");
        // inserted: a copy of an earlier record
        let mut l = original.clone();
        l.insert(3, original[1].clone());
        check(l, 4, "out of order");
        // not JSON
        let mut l = original.clone();
        l[0].1.push('x');
        check(l, 1, "not an audit record");
        // the original verifies again
        rewrite(&audit, &original);
        assert_eq!(verify(&audit, None).unwrap().unwrap().records, 5);
    }

    #[test]
    fn a_keyed_trail_cannot_be_rebuilt_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit");
        let key_file = dir.path().join("audit.key");
        write_new_key(&key_file).unwrap();
        assert!(
            write_new_key(&key_file).is_err(),
            "an existing key is never replaced"
        );
        let key = read_key(&key_file).unwrap();
        let log = AuditLog::open(&audit, Some(key.clone())).unwrap();
        for i in 0..5 {
            log.record_blocking(AuditRecord::new("query", &format!("SELECT {i}"), "ok"))
                .unwrap();
        }
        drop(log);
        let original = lines(&audit);
        assert!(original.iter().all(|(_, l)| l.contains(KEYED)));
        let head = verify(&audit, Some(&key)).unwrap().unwrap();
        assert_eq!(head.records, 5);
        // without the key: named as needing it
        let broken = verify(&audit, None).unwrap().unwrap_err();
        assert!(broken.problem.contains("--audit-key"), "{broken}");
        // with another key: not sealed with it
        let other = b"another key of at least thirty-two bytes".to_vec();
        assert!(verify(&audit, Some(&other)).unwrap().is_err());

        // the attack: record 2 removed, every later record renumbered, relinked
        // and re-hashed — a chain that verifies without a key
        let mut forged = vec![original[0].clone()];
        let mut prev: AuditRecord = serde_json::from_str(&original[0].1).unwrap();
        for (path, line) in original.iter().skip(2) {
            let mut r: AuditRecord = serde_json::from_str(line).unwrap();
            r.seq = prev.seq + 1;
            let sealed = seal(&mut r, &prev.hash, None).unwrap();
            forged.push((path.clone(), sealed));
            prev = r;
        }
        rewrite(&audit, &forged);
        assert_eq!(
            verify(&audit, None).unwrap().unwrap_err().line,
            1,
            "keyed first record"
        );
        let broken = verify(&audit, Some(&key)).unwrap().unwrap_err();
        assert_eq!(broken.line, 2, "{broken}");
        assert!(
            broken.problem.contains("not sealed with the audit key"),
            "{broken}"
        );
        // and a server holding the key adds nothing to the forged trail
        let err = AuditLog::open(&audit, Some(key.clone())).unwrap_err();
        assert!(
            err.to_string().contains("not sealed with the audit key"),
            "{err}"
        );
        // restored, it is extended again
        rewrite(&audit, &original);
        let log = AuditLog::open(&audit, Some(key.clone())).unwrap();
        log.record_blocking(AuditRecord::new("query", "SELECT 5", "ok"))
            .unwrap();
        assert_eq!(verify(&audit, Some(&key)).unwrap().unwrap().records, 6);
        // a short key is refused
        std::fs::write(dir.path().join("short.key"), "abc").unwrap();
        assert!(read_key(&dir.path().join("short.key")).is_err());
    }

    #[test]
    fn a_record_that_cannot_be_written_fails_the_request_unless_fail_open() {
        let (_d, audit) = trail(1);
        let log = AuditLog::open(&audit, None).unwrap();
        // the directory gone (a disk unmounted, a volume full behave alike)
        std::fs::remove_dir_all(&audit).unwrap();
        let err = log
            .record_blocking(AuditRecord::new("query", "SELECT 1", "ok"))
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        let log = log.with_fail_open(true);
        log.record_blocking(AuditRecord::new("query", "SELECT 1", "ok"))
            .unwrap();
    }

    #[test]
    fn processes_sharing_a_trail_extend_one_chain() {
        let (_d, audit) = trail(1);
        // two writers on one directory (two servers on one lake), interleaved
        let a = AuditLog::open(&audit, None)
            .unwrap()
            .with_max_request_bytes(1 << 20);
        let b = AuditLog::open(&audit, None).unwrap();
        for i in 0..5 {
            a.record_blocking(AuditRecord::new("query", &format!("a{i}"), "ok"))
                .unwrap();
            b.record_blocking(AuditRecord::new("query", &format!("b{i}"), "ok"))
                .unwrap();
            b.record_blocking(AuditRecord::new("query", &format!("b{i}'"), "ok"))
                .unwrap();
        }
        let head = verify(&audit, None).unwrap().unwrap();
        assert_eq!(head.records, 16);
        // a long last record is found from the file's end
        a.record_blocking(AuditRecord::new("query", &"x".repeat(300_000), "ok"))
            .unwrap();
        b.record_blocking(AuditRecord::new("query", "after", "ok"))
            .unwrap();
        assert_eq!(verify(&audit, None).unwrap().unwrap().records, 18);
    }

    /// Records submitted while the writer syncs are written together: fewer
    /// syncs than records, every record acknowledged, one intact chain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn records_submitted_together_share_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(&dir.path().join("audit"), None).unwrap());
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    let acks: Vec<Ack> = (0..100)
                        .map(|i| log.submit(AuditRecord::new("query", &format!("{t}/{i}"), "ok")))
                        .collect();
                    for ack in acks {
                        ack.await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let (records, syncs) = log.writes();
        assert_eq!(records, 800);
        assert!(syncs * 2 < records, "{records} records in {syncs} syncs");
        assert_eq!(verify(log.dir(), None).unwrap().unwrap().records, 800);
    }

    #[test]
    fn long_requests_are_clipped_with_their_length_and_hash() {
        let long = "é".repeat(10_000);
        let clipped = clip_request(&long, 101);
        assert!(clipped.len() < 300, "{clipped}");
        assert!(clipped.contains("20000 bytes in all, sha256 "), "{clipped}");
        assert_eq!(clip_request("SELECT 1", 101), "SELECT 1");
    }
}
