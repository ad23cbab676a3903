//! The lifecycle of every query, from any front end: the one place where a
//! query is numbered, tracked for `system.queries`, limited, cancelled, and
//! where its end is recorded — the audit record, the `system.queries` entry,
//! the metrics and the `query ended` log line, all with the same query id and
//! the same [`Outcome`].
//!
//! [`crate::Session::query`] registers a query when it is submitted
//! (`planning`), plans it, waits for admission (`queued`), runs it
//! (`running`) and ends it with an [`Outcome`]. [`Tracked`] is the stream that
//! carries a query's results: it enforces the timeout and the result-size
//! limits, stops when the query is cancelled (by id, by its Flight ticket, at
//! shutdown), counts what it returns, holds the admission slot until it ends,
//! and ends the query — its last item comes only after the audit record is on
//! disk, so a client that saw a result end knows the access was recorded.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::physical_plan::ExecutionPlan;
use futures::{FutureExt, Stream};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::audit::{Ack, AuditLog, AuditRecord};
use crate::limits::{LimitError, Limits, Permit, QueryPool};

/// Finished queries kept for `system.queries`.
pub const RECENT: usize = 1000;

/// How a query ended: one vocabulary for the audit trail, `system.queries`,
/// the metrics and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its results were all returned.
    Ok,
    /// It failed: bad SQL, an unknown name, bad data, an internal fault.
    Error,
    /// Refused before it ran: by the access policy, or a full admission queue.
    Refused,
    /// Stopped by its timeout.
    TimedOut,
    /// Stopped by a result-size or memory limit.
    OverLimit,
    /// Stopped on request: CancelFlightInfo, `citylake_cancel`, shutdown.
    Cancelled,
    /// Its client went away before the end.
    Dropped,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Refused => "refused",
            Self::TimedOut => "timed_out",
            Self::OverLimit => "over_limit",
            Self::Cancelled => "cancelled",
            Self::Dropped => "dropped",
        }
    }

    /// The outcome a query that failed with `e` ended with.
    pub fn of(e: &DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::External(inner) => {
                if inner.downcast_ref::<Cancelled>().is_some() {
                    return Self::Cancelled;
                }
                if inner.is::<crate::governance::AccessDenied>() {
                    return Self::Refused;
                }
                match inner.downcast_ref::<LimitError>() {
                    Some(LimitError::Timeout(_) | LimitError::IngestTimeout(_)) => Self::TimedOut,
                    // busy: not run (an ingest's batch not taken in), retry
                    Some(
                        LimitError::Busy { .. }
                        | LimitError::IngestMemory(_)
                        | LimitError::IngestPerUser(_),
                    ) => Self::Refused,
                    Some(_) => Self::OverLimit,
                    None => Self::Error,
                }
            }
            DataFusionError::ResourcesExhausted(_) => Self::OverLimit,
            _ => Self::Error,
        }
    }
}

impl Outcome {
    /// How a request that failed with `e` before it ran ended, and the error
    /// text its audit record keeps: a refusal by the policy — a hidden name is a
    /// refusal in the trail (naming it), a missing name to the user — or the
    /// outcome of the query error.
    pub fn of_error(e: &crate::EngineError) -> (Self, String) {
        use crate::EngineError;
        match e {
            EngineError::NotAllowed(_) => (Self::Refused, e.to_string()),
            EngineError::NotFound {
                name, hidden: true, ..
            } => (
                Self::Refused,
                format!("{e} (hidden from this user: {name})"),
            ),
            EngineError::Query(df) => (Self::of(df), e.to_string()),
            _ => (Self::Error, e.to_string()),
        }
    }
}

/// The error a cancelled query's stream ends with.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Cancelled(pub String);

impl Cancelled {
    pub(crate) fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

/// Where a query is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    Planning,
    Queued,
    Running,
    Ended(Outcome),
}

impl QueryState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Planning => "planning",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Ended(outcome) => outcome.as_str(),
        }
    }

    fn ended(&self) -> bool {
        matches!(self, Self::Ended(_))
    }
}

/// One query, as `system.queries` shows it and the audit trail records it.
#[derive(Debug)]
pub struct QueryEntry {
    pub id: u64,
    pub user: String,
    pub roles: String,
    pub client: String,
    /// Its text and the values bound to its parameters (JSON), as they may
    /// be recorded: personal values hashed ([`crate::redact`]), which the
    /// error message is scrubbed of (the values themselves in memory only).
    recorded: Mutex<crate::redact::Redacted>,
    /// Whether its plan was looked at for personal columns (a query that
    /// ends before is recorded as personal).
    judged: AtomicBool,
    /// What the front end calls it (a Flight ticket's id), to cancel it by.
    pub tag: Option<String>,
    pub started: SystemTime,
    start: Instant,
    state: Mutex<(QueryState, Option<Duration>, String)>,
    /// How it ended as its user was told, where that differs from the record
    /// (see [`QueryEntry::tell`]).
    told: Mutex<Option<(Outcome, String)>>,
    /// Datasets it reads and the columns masked in them (known once planned).
    touched: Mutex<(String, String)>,
    /// Where it runs: `here`, `here: why` when a cluster did not get it, or
    /// `cluster` (known once started).
    ran_on: Mutex<String>,
    /// The slots it may take: `light` or `general` (known once planned).
    lane: Mutex<Option<&'static str>>,
    /// Time spent waiting for a slot, and when (since its request began) its
    /// execution began: the phases `system.queries` shows beside the duration.
    phases: Mutex<(Duration, Option<Duration>)>,
    rows: AtomicU64,
    bytes: AtomicU64,
    pool: Arc<QueryPool>,
    cancel: CancellationToken,
    /// Who or what cancelled it (its error says so).
    cancelled_by: Mutex<String>,
    /// Its admission slot while it runs. A cancel gives it back at once: a
    /// query whose client stopped reading is not polled again, so it would
    /// otherwise hold the slot until its client goes (red team: a
    /// supervisor's cancel of a stalled query freed nothing for 75 s).
    slot: Mutex<Option<Permit>>,
    /// The session's request counts and their value when the query started.
    requests: Option<(
        Arc<crate::requests::RequestCounts>,
        crate::requests::RequestStats,
    )>,
}

impl QueryEntry {
    pub fn state(&self) -> QueryState {
        self.state.lock().0
    }

    /// Keeps how its user was told it ended, for the user's own view of
    /// `system.queries`, where that differs from the record (which the audit
    /// roles see): a name hidden from the user is a refusal in the record and
    /// a missing name to the user, who must not tell the two apart by their
    /// own query history either.
    pub(crate) fn tell(&self, outcome: Outcome, error: String) {
        *self.told.lock() = Some((outcome, error));
    }

    pub(crate) fn set_state(&self, state: QueryState) {
        let mut s = self.state.lock();
        if !s.0.ended() {
            s.0 = state;
        }
    }

    /// Records what the planned query reads: datasets and masked columns
    /// (comma-separated), for its audit record.
    /// Its text and bound parameters as they may be recorded and shown.
    pub fn recorded(&self) -> (String, String) {
        let r = self.recorded.lock();
        if !r.personal && !self.judged.load(Ordering::Acquire) {
            // still planning: its plan may yet use a personal column the text
            // does not name (a column list renames it), so it is shown hashed
            let all = crate::redact::Redactor::default().redact_all(&r.request, &r.parameters);
            return (all.request, all.parameters);
        }
        (r.request.clone(), r.parameters.clone())
    }

    /// Its plan uses a personal column: from now on it is recorded and shown
    /// with every literal and parameter hashed.
    pub(crate) fn make_personal(&self, redactor: &crate::redact::Redactor) {
        let mut r = self.recorded.lock();
        if !r.personal {
            let mut all = redactor.redact_all(&r.request, &r.parameters);
            all.values.append(&mut r.values);
            *r = all;
        }
        self.judged.store(true, Ordering::Release);
    }

    /// Its plan was found to use no personal column: it is recorded and shown
    /// as the text rule redacted it (until then it is shown hashed whole).
    pub(crate) fn not_personal(&self) {
        self.judged.store(true, Ordering::Release);
    }

    pub fn set_touched(&self, datasets: String, masked: String) {
        *self.touched.lock() = (datasets, masked);
    }

    pub fn set_ran_on(&self, ran_on: String) {
        *self.ran_on.lock() = ran_on;
    }

    /// Whether it was admitted as a light query ([`crate::limits::Admission::admit`]).
    pub fn set_lane(&self, light: bool) {
        *self.lane.lock() = Some(if light { "light" } else { "general" });
    }

    /// Counts `waited` as time waiting for a slot.
    pub(crate) fn waited(&self, waited: Duration) {
        self.phases.lock().0 += waited;
    }

    /// Its execution begins now.
    pub(crate) fn executing(&self) {
        self.phases
            .lock()
            .1
            .get_or_insert_with(|| self.start.elapsed());
    }

    /// Asks the query to stop; its stream ends with [`Cancelled`] saying `why`.
    pub fn cancel(&self, why: &str) {
        {
            let mut by = self.cancelled_by.lock();
            if by.is_empty() {
                *by = why.to_string();
            }
        }
        self.cancel.cancel();
        drop(self.slot.lock().take());
    }

    /// Completes when the query is cancelled.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Ends when the query is cancelled or its `timeout` (counted from its
    /// request) has passed: what stops work running away from its stream
    /// ([`crate::lanes`]).
    pub(crate) fn stopped(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let cancel = self.cancel.clone();
        let deadline = timeout.map(|t| tokio::time::Instant::from_std(self.start + t));
        async move {
            match deadline {
                Some(deadline) => tokio::select! {
                    () = cancel.cancelled_owned() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                },
                None => cancel.cancelled_owned().await,
            }
        }
    }

    /// The cancel's message, once cancelled.
    pub fn cancelled_by(&self) -> String {
        self.cancelled_by.lock().clone()
    }
}

/// A new query id: random, not a sequence — a user who sees only their own
/// queries learns nothing of other users' activity from the gaps between
/// their ids. Below 2^53 (exact in JSON and JavaScript), never 0.
fn new_id() -> u64 {
    loop {
        let id = rand::random::<u64>() >> 11;
        if id != 0 {
            return id;
        }
    }
}

/// What a front end says of a query when it submits it.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub user: String,
    pub roles: String,
    pub client: String,
    /// The query's text (clipped to the audit trail's limit).
    pub sql: String,
    pub parameters: String,
    pub tag: Option<String>,
    /// The session's object-store request counts (its requests are logged at the end).
    pub requests: Option<Arc<crate::requests::RequestCounts>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The engine's Prometheus metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    queries: Family<OutcomeLabels, Counter>,
    latency: Histogram,
    rows_returned: Counter,
    bytes_returned: Counter,
    rows_scanned: Counter,
    bytes_scanned: Counter,
    spills: Counter,
    spilled_bytes: Counter,
    running: Gauge,
    queued: Gauge,
    memory_reserved: Gauge,
    object_store: Family<KindLabels, Counter>,
    object_store_bytes: Counter,
    audit_records: Counter,
    audit_syncs: Counter,
    /// Open client connections (set by the server).
    pub connections: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("citylake");
        let m = Self {
            queries: Family::default(),
            latency: Histogram::new(exponential_buckets(0.001, 2.0, 18)),
            rows_returned: Counter::default(),
            bytes_returned: Counter::default(),
            rows_scanned: Counter::default(),
            bytes_scanned: Counter::default(),
            spills: Counter::default(),
            spilled_bytes: Counter::default(),
            running: Gauge::default(),
            queued: Gauge::default(),
            memory_reserved: Gauge::default(),
            object_store: Family::default(),
            object_store_bytes: Counter::default(),
            audit_records: Counter::default(),
            audit_syncs: Counter::default(),
            connections: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "queries",
            "Queries by outcome (ok, error, refused, timed_out, over_limit, cancelled, dropped) and the user's roles",
            m.queries.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time from submission to the end of the result stream",
            m.latency.clone(),
        );
        registry.register(
            "rows_returned",
            "Rows sent to clients",
            m.rows_returned.clone(),
        );
        registry.register(
            "bytes_returned",
            "Bytes of result batches sent to clients",
            m.bytes_returned.clone(),
        );
        registry.register(
            "rows_scanned",
            "Rows read from the lake's files",
            m.rows_scanned.clone(),
        );
        registry.register(
            "bytes_scanned",
            "Bytes read from the lake's files",
            m.bytes_scanned.clone(),
        );
        registry.register(
            "spills",
            "Spill files written by sorts, aggregates and joins",
            m.spills.clone(),
        );
        registry.register(
            "spilled_bytes",
            "Bytes spilled to disk",
            m.spilled_bytes.clone(),
        );
        registry.register("queries_running", "Queries running now", m.running.clone());
        registry.register(
            "queries_queued",
            "Queries waiting for a slot",
            m.queued.clone(),
        );
        registry.register(
            "memory_reserved_bytes",
            "Memory reserved by running queries in the engine's pool",
            m.memory_reserved.clone(),
        );
        registry.register(
            "object_store_requests",
            "Object-store requests by kind (get, head, list, put, other)",
            m.object_store.clone(),
        );
        registry.register(
            "object_store_fetched_bytes",
            "Bytes fetched from the object store",
            m.object_store_bytes.clone(),
        );
        registry.register(
            "audit_records",
            "Audit records written by this process",
            m.audit_records.clone(),
        );
        registry.register(
            "audit_syncs",
            "Syncs of the audit trail to disk (records per sync: the group commit's batch)",
            m.audit_syncs.clone(),
        );
        registry.register(
            "connections",
            "Open client connections",
            m.connections.clone(),
        );
        Self { registry, ..m }
    }
}

/// Every query of the engine, its metrics, and the audit trail its ends go to.
#[derive(Debug)]
pub struct QueryRegistry {
    running: Mutex<Vec<Arc<QueryEntry>>>,
    recent: Mutex<VecDeque<Arc<QueryEntry>>>,
    audit: Arc<AuditLog>,
    pub metrics: Metrics,
}

impl QueryRegistry {
    /// A registry whose queries are recorded in `audit`.
    pub fn new(audit: Arc<AuditLog>) -> Self {
        Self {
            running: Mutex::new(vec![]),
            recent: Mutex::new(VecDeque::new()),
            audit,
            metrics: Metrics::new(),
        }
    }

    /// A new query, `planning`, its time counted from `start`.
    pub fn register(
        &self,
        submission: Submission,
        pool: Arc<QueryPool>,
        start: Instant,
    ) -> Arc<QueryEntry> {
        let redacted = self
            .audit
            .redactor()
            .redact(&submission.sql, &submission.parameters);
        let entry = Arc::new(QueryEntry {
            id: new_id(),
            user: submission.user,
            roles: submission.roles,
            client: submission.client,
            recorded: Mutex::new(redacted),
            judged: AtomicBool::new(false),
            tag: submission.tag,
            started: SystemTime::now() - start.elapsed(),
            start,
            state: Mutex::new((QueryState::Planning, None, String::new())),
            told: Mutex::new(None),
            touched: Mutex::new(Default::default()),
            ran_on: Mutex::new(String::new()),
            lane: Mutex::new(None),
            phases: Mutex::default(),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            pool,
            cancel: CancellationToken::new(),
            cancelled_by: Mutex::new(String::new()),
            slot: Mutex::new(None),
            requests: submission.requests.map(|r| {
                let before = r.snapshot();
                (r, before)
            }),
        });
        self.running.lock().push(entry.clone());
        entry
    }

    /// Ends a query (once): its `system.queries` entry, metrics and log line
    /// now, and its audit record, whose [`Ack`] resolves when it is on disk
    /// (`None` when the query had already ended). `error` is the text the
    /// audit trail and `system.queries` keep.
    pub fn end(&self, entry: &Arc<QueryEntry>, outcome: Outcome, error: String) -> Option<Ack> {
        let elapsed = entry.start.elapsed();
        // a query that ends before its plan was judged (it failed to plan) is
        // recorded as personal: its plan cannot say it is not (fail closed)
        if !entry.judged.load(Ordering::Acquire) {
            entry.make_personal(&crate::redact::Redactor::default());
        }
        let error = {
            let recorded = entry.recorded.lock();
            crate::redact::recorded_error(
                &error,
                &recorded.values,
                recorded.personal,
                outcome == Outcome::Error,
            )
        };
        {
            let mut s = entry.state.lock();
            if s.0.ended() {
                return None;
            }
            *s = (QueryState::Ended(outcome), Some(elapsed), error.clone());
        }
        self.running.lock().retain(|e| e.id != entry.id);
        let mut recent = self.recent.lock();
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(entry.clone());
        drop(recent);
        let (rows, bytes) = (
            entry.rows.load(Ordering::Relaxed),
            entry.bytes.load(Ordering::Relaxed),
        );
        let m = &self.metrics;
        m.queries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str().to_string(),
                role: entry.roles.clone(),
            })
            .inc();
        m.latency.observe(elapsed.as_secs_f64());
        m.rows_returned.inc_by(rows);
        m.bytes_returned.inc_by(bytes);
        let object_store = entry
            .requests
            .as_ref()
            .map(|(counts, before)| counts.snapshot().since(before).to_string())
            .unwrap_or_default();
        tracing::info!(
            query_id = entry.id,
            user = %entry.user,
            client = %entry.client,
            outcome = outcome.as_str(),
            rows,
            elapsed_ms = elapsed.as_millis() as u64,
            peak_memory = entry.pool.peak(),
            object_store = %object_store,
            error = %error,
            "query ended"
        );
        let (datasets, masked) = entry.touched.lock().clone();
        let (sql, parameters) = entry.recorded();
        let mut record = AuditRecord::new("query", &sql, outcome.as_str())
            .returned(rows, bytes)
            .took(elapsed)
            .failed(error)
            .with_parameters(parameters)
            .by(&entry.user, &entry.client);
        record.query_id = entry.id as i64;
        // redacted when registered (and when its plan was known), error above
        record.redacted = true;
        record.roles = entry.roles.clone();
        record.datasets = datasets;
        record.masked = masked;
        Some(self.audit.submit(record))
    }

    /// Cancels the running query `id` — only if it is `user`'s, unless `user`
    /// is `None` (a role that sees every query); whether there was one.
    pub fn cancel(&self, id: u64, user: Option<&str>, why: &str) -> bool {
        self.cancel_where(|e| e.id == id && user.is_none_or(|u| e.user == u), why) > 0
    }

    /// Cancels `user`'s running queries a front end tagged `tag`; how many.
    /// (A tag is a secret of the client it was handed to; a query of another
    /// user is not cancelled even by its tag.)
    pub fn cancel_tagged(&self, tag: &str, user: &str, why: &str) -> usize {
        self.cancel_where(|e| e.tag.as_deref() == Some(tag) && e.user == user, why)
    }

    /// Cancels every running query (shutdown); how many.
    pub fn cancel_all(&self, why: &str) -> usize {
        self.cancel_where(|_| true, why)
    }

    fn cancel_where(&self, matches: impl Fn(&QueryEntry) -> bool, why: &str) -> usize {
        let running = self.running.lock();
        let mut n = 0;
        for entry in running.iter().filter(|e| matches(e)) {
            entry.cancel(why);
            n += 1;
        }
        n
    }

    /// Running and recent queries, in the order they started; only `user`'s when given.
    pub fn snapshot(&self, user: Option<&str>) -> Vec<Arc<QueryEntry>> {
        let recent = self.recent.lock();
        let running = self.running.lock();
        let mut all: Vec<_> = recent.iter().chain(running.iter()).cloned().collect();
        all.retain(|e| user.is_none_or(|u| e.user == u));
        all.sort_by_key(|e| e.start);
        all
    }

    /// Records what a finished plan scanned and spilled. Rows scanned from a
    /// governed dataset are the rows its barrier let through (what the
    /// principal may see), not the rows its files hold: the counter is read by
    /// whoever reaches `/metrics`, and a district analyst's query must not tell
    /// them how many cases the other districts have. Bytes are what was read.
    fn plan_figures(&self, plan: &Arc<dyn ExecutionPlan>) {
        let m = &self.metrics;
        fn walk(m: &Metrics, plan: &Arc<dyn ExecutionPlan>, governed: bool) {
            if let Some(metrics) = plan.metrics() {
                if plan.name() == "DataSourceExec" {
                    if !governed {
                        m.rows_scanned
                            .inc_by(metrics.output_rows().unwrap_or(0) as u64);
                    }
                    m.bytes_scanned.inc_by(
                        metrics
                            .sum_by_name("bytes_scanned")
                            .map_or(0, |v| v.as_usize()) as u64,
                    );
                }
                m.spills.inc_by(metrics.spill_count().unwrap_or(0) as u64);
                m.spilled_bytes
                    .inc_by(metrics.spilled_bytes().unwrap_or(0) as u64);
            }
            for child in plan.children() {
                walk(m, child, governed);
            }
            // the plan behind a governed dataset's barrier: its output is what was scanned
            if let Some(inner) = crate::governance::GovernedScanExec::governed_plan(plan.as_ref()) {
                fn output_rows(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
                    plan.metrics()
                        .and_then(|x| x.output_rows())
                        .or_else(|| plan.children().first().and_then(|c| output_rows(c)))
                }
                m.rows_scanned
                    .inc_by(output_rows(inner).unwrap_or(0) as u64);
                walk(m, inner, true);
            }
        }
        walk(m, plan, false);
    }

    /// The metrics as Prometheus text (OpenMetrics), after updating the gauges
    /// from the engine's current state.
    pub fn encode(
        &self,
        running: usize,
        queued: usize,
        memory_reserved: usize,
        requests: &crate::RequestStats,
    ) -> String {
        let m = &self.metrics;
        m.running.set(running as i64);
        m.queued.set(queued as i64);
        m.memory_reserved.set(memory_reserved as i64);
        for (kind, n) in [
            ("get", requests.get),
            ("head", requests.head),
            ("list", requests.list),
            ("put", requests.put),
            ("other", requests.other),
        ] {
            m.object_store
                .get_or_create(&KindLabels { kind: kind.into() })
                .inner()
                .store(n, Ordering::Relaxed);
        }
        m.object_store_bytes
            .inner()
            .store(requests.bytes, Ordering::Relaxed);
        let (records, syncs) = self.audit.writes();
        m.audit_records.inner().store(records, Ordering::Relaxed);
        m.audit_syncs.inner().store(syncs, Ordering::Relaxed);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry)
            .expect("encoding to a String cannot fail");
        out
    }
}

/// A query's result stream under its limits; see the module docs.
pub struct Tracked {
    inner: SendableRecordBatchStream,
    registry: Arc<QueryRegistry>,
    entry: Arc<QueryEntry>,
    limits: Limits,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    plan: Option<Arc<dyn ExecutionPlan>>,
    /// Ended: the audit record's acknowledgement, then the last item to give.
    closing: Option<(Option<Ack>, Option<DfResult<RecordBatch>>)>,
    ended: bool,
}

impl Tracked {
    pub fn new(
        inner: SendableRecordBatchStream,
        registry: Arc<QueryRegistry>,
        entry: Arc<QueryEntry>,
        limits: Limits,
        plan: Option<Arc<dyn ExecutionPlan>>,
        permit: Permit,
    ) -> Self {
        entry.set_state(QueryState::Running);
        // held by the entry, so a cancel can give it back without this
        // stream being polled (see `QueryEntry::slot`)
        if !entry.cancel.is_cancelled() {
            *entry.slot.lock() = Some(permit);
        }
        let deadline = limits.query_timeout.map(|t| {
            let remaining = t.saturating_sub(entry.start.elapsed());
            Box::pin(tokio::time::sleep(remaining))
        });
        Self {
            inner,
            registry,
            cancelled: Box::pin(entry.cancel.clone().cancelled_owned()),
            entry,
            limits,
            deadline,
            plan,
            closing: None,
            ended: false,
        }
    }

    /// Ends the query with `outcome`; `last` is given once its record is on disk.
    fn end(&mut self, outcome: Outcome, error: String, last: Option<DfResult<RecordBatch>>) {
        self.ended = true;
        drop(self.entry.slot.lock().take());
        // drop the plan's stream now: its tasks stop (a timed-out or over-limit
        // query must not keep the CPU busy while the client reads its error)
        let schema = self.inner.schema();
        self.inner = Box::pin(datafusion::physical_plan::EmptyRecordBatchStream::new(
            schema,
        ));
        if let Some(plan) = self.plan.take() {
            self.registry.plan_figures(&plan);
        }
        let ack = self.registry.end(&self.entry, outcome, error);
        self.closing = Some((ack, last));
    }

    fn stop(&mut self, outcome: Outcome, e: DataFusionError) {
        self.end(outcome, e.to_string(), Some(Err(e)));
    }

    /// The next item of the query's own stream, ending the query when it ends.
    fn advance(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.cancelled.as_mut().poll(cx).is_ready() {
            let why = self.entry.cancelled_by.lock().clone();
            self.stop(Outcome::Cancelled, Cancelled(why).into_datafusion());
            return Poll::Ready(());
        }
        // the clock is read as well as the timer polled: a timer fires only
        // when its runtime turns its driver, and a query running on other
        // threads ([`crate::lanes`]) may wake this task with results first
        if let Some(deadline) = self.deadline.as_mut()
            && (deadline.deadline() <= tokio::time::Instant::now()
                || deadline.as_mut().poll(cx).is_ready())
        {
            let timeout = self.limits.query_timeout.unwrap_or_default();
            self.stop(
                Outcome::TimedOut,
                LimitError::Timeout(timeout).into_datafusion(),
            );
            return Poll::Ready(());
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(batch))) => {
                let rows = self
                    .entry
                    .rows
                    .fetch_add(batch.num_rows() as u64, Ordering::Relaxed)
                    + batch.num_rows() as u64;
                let bytes = self
                    .entry
                    .bytes
                    .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed)
                    + batch.get_array_memory_size() as u64;
                if let Some(max) = self.limits.max_result_rows
                    && rows > max
                {
                    self.stop(
                        Outcome::OverLimit,
                        LimitError::ResultRows(max).into_datafusion(),
                    );
                } else if let Some(max) = self.limits.max_result_bytes
                    && bytes > max
                {
                    self.stop(
                        Outcome::OverLimit,
                        LimitError::ResultBytes(max).into_datafusion(),
                    );
                } else {
                    self.closing = Some((None, Some(Ok(batch))));
                }
                Poll::Ready(())
            }
            Poll::Ready(Some(Err(e))) => {
                self.stop(Outcome::of(&e), e);
                Poll::Ready(())
            }
            Poll::Ready(None) => {
                self.end(Outcome::Ok, String::new(), None);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Stream for Tracked {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.closing.is_none() {
            if self.ended {
                return Poll::Ready(None);
            }
            std::task::ready!(self.advance(cx));
        }
        let (ack, _) = self.closing.as_mut().expect("set by advance");
        if let Some(ack) = ack {
            let written = std::task::ready!(ack.poll_unpin(cx));
            if let Err(e) = written {
                // fail closed: the client does not see a clean end of an unrecorded access
                self.closing = None;
                return Poll::Ready(Some(Err(DataFusionError::External(Box::new(e)))));
            }
        }
        let (_, last) = self.closing.take().expect("checked above");
        Poll::Ready(last)
    }
}

impl RecordBatchStream for Tracked {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.ended {
            // the stream was dropped before its end: the work stops with it;
            // the record is still written (nobody is left to wait for it)
            self.end(
                Outcome::Dropped,
                "dropped: the client stopped reading".into(),
                None,
            );
        }
    }
}

/// The schema of `system.queries`.
pub fn schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        int("query_id"),
        text("user"),
        text("roles"),
        text("client"),
        text("sql"),
        text("state"),
        Field::new(
            "started",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("duration_ms", DataType::Float64, true),
        int("rows"),
        int("bytes"),
        int("peak_memory"),
        text("error"),
        text("ran_on"),
        text("lane"),
        Field::new("queued_ms", DataType::Float64, true),
        Field::new("planning_ms", DataType::Float64, true),
    ]))
}

/// Queries as one batch of [`schema`]; `as_told`: each as its user was told
/// it ended (the user's own view).
fn to_batch(entries: &[Arc<QueryEntry>], as_told: bool) -> DfResult<RecordBatch> {
    let text = |f: &dyn Fn(&QueryEntry) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| f(e))))
    };
    let states: Vec<_> = entries
        .iter()
        .map(|e| {
            let mut state = e.state.lock().clone();
            if as_told
                && matches!(state.0, QueryState::Ended(_))
                && let Some((outcome, error)) = e.told.lock().clone()
            {
                state.0 = QueryState::Ended(outcome);
                state.2 = error;
            }
            state
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            entries.iter().map(|e| e.id as i64),
        )),
        text(&|e| e.user.clone()),
        text(&|e| e.roles.clone()),
        text(&|e| e.client.clone()),
        text(&|e| e.recorded().0),
        Arc::new(StringArray::from_iter_values(
            states.iter().map(|s| s.0.as_str()),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(entries.iter().map(|e| {
                e.started
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as i64)
            }))
            .with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from_iter_values(
            entries
                .iter()
                .zip(&states)
                .map(|(e, s)| s.1.unwrap_or_else(|| e.start.elapsed()).as_secs_f64() * 1e3),
        )),
        Arc::new(Int64Array::from_iter_values(
            entries
                .iter()
                .map(|e| e.rows.load(Ordering::Relaxed) as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            entries
                .iter()
                .map(|e| e.bytes.load(Ordering::Relaxed) as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            entries.iter().map(|e| e.pool.peak() as i64),
        )),
        Arc::new(StringArray::from_iter(
            states
                .iter()
                .map(|s| (!s.2.is_empty()).then_some(s.2.as_str())),
        )),
        Arc::new(StringArray::from_iter(entries.iter().map(|e| {
            let ran_on = e.ran_on.lock();
            (!ran_on.is_empty()).then(|| ran_on.clone())
        }))),
        Arc::new(StringArray::from_iter(
            entries.iter().map(|e| *e.lane.lock()),
        )),
        // waiting for a slot, and the rest of the time until its execution
        // began (parsing, the policy's checks, the logical and physical plans)
        Arc::new(Float64Array::from_iter_values(
            entries
                .iter()
                .map(|e| e.phases.lock().0.as_secs_f64() * 1e3),
        )),
        Arc::new(Float64Array::from_iter(entries.iter().map(|e| {
            let (queued, executing) = *e.phases.lock();
            executing.map(|at| at.saturating_sub(queued).as_secs_f64() * 1e3)
        }))),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// `system.queries`: running and recent queries (a user's own, or all for
/// roles that read the audit log).
#[derive(Debug, Clone)]
pub struct QueriesTable {
    registry: Arc<QueryRegistry>,
    user: Option<String>,
}

impl QueriesTable {
    pub fn new(registry: Arc<QueryRegistry>, user: Option<String>) -> Self {
        Self { registry, user }
    }
}

impl crate::snapshot::Snapshot for QueriesTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn batches(&self) -> DfResult<Vec<RecordBatch>> {
        Ok(vec![to_batch(
            &self.registry.snapshot(self.user.as_deref()),
            self.user.is_some(),
        )?])
    }
}

/// `citylake_cancel(query_id)`: cancels a running query, returning whether
/// there was one to cancel — the caller's own queries, or any query for the
/// roles that see every query in `system.queries` (`audit_log` roles). The
/// call is a query like any other, so it is in the audit trail, and the
/// cancelled query's record names who cancelled it.
pub fn cancel_udf(
    registry: Arc<QueryRegistry>,
    caller: String,
    any_user: bool,
) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    create_udf(
        CANCEL_FUNCTION,
        vec![DataType::Int64],
        DataType::Boolean,
        // never folded while planning: it acts when the query runs
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let ids = ColumnarValue::values_to_arrays(args)?;
            let ids = datafusion::arrow::compute::cast(&ids[0], &DataType::Int64)?;
            let ids = ids
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("cast to Int64");
            let why = format!("the query was cancelled by {caller} with {CANCEL_FUNCTION}");
            let done: datafusion::arrow::array::BooleanArray = ids
                .iter()
                .map(|id| {
                    id.map(|id| {
                        id > 0
                            && registry.cancel(
                                id as u64,
                                (!any_user).then_some(caller.as_str()),
                                &why,
                            )
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(done)))
        }),
    )
}

/// The name of [`cancel_udf`].
pub const CANCEL_FUNCTION: &str = "citylake_cancel";

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: &str = "13800138000";

    fn registry(dir: &std::path::Path) -> QueryRegistry {
        let audit = AuditLog::open(dir, None)
            .unwrap()
            .with_redactor(crate::redact::Redactor::new(["caller_phone"]));
        QueryRegistry::new(Arc::new(audit))
    }

    fn submit(registry: &QueryRegistry, sql: &str) -> Arc<QueryEntry> {
        let pool = Arc::new(QueryPool::new(
            Arc::new(datafusion::execution::memory_pool::UnboundedMemoryPool::default()),
            None,
        ));
        registry.register(
            Submission {
                user: "ana".into(),
                roles: "analyst".into(),
                client: String::new(),
                sql: sql.into(),
                parameters: String::new(),
                tag: None,
                requests: None,
            },
            pool,
            Instant::now(),
        )
    }

    /// The red team's shape: a column list renames the personal column, so the
    /// text never names it, and the request fails before its plan could.
    #[test]
    fn a_request_is_shown_hashed_until_its_plan_is_judged_and_recorded_so_if_it_never_is() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        let sql = format!("SELECT count(*) FROM hotline.cases t(a, b) WHERE b = '{PHONE}' AND x");
        // planning: shown hashed
        let entry = submit(&registry, &sql);
        assert!(
            !entry.recorded().0.contains(PHONE),
            "{:?}",
            entry.recorded()
        );
        // it fails to plan: recorded hashed, its message withheld
        let error = format!("planning error: no column x near '{PHONE}'");
        let _ = registry.end(&entry, Outcome::Error, error);
        assert!(
            !entry.recorded().0.contains(PHONE),
            "{:?}",
            entry.recorded()
        );
        let shown = to_batch(std::slice::from_ref(&entry), false).unwrap();
        let told = to_batch(&[entry], true).unwrap();
        let text = |b: &RecordBatch| {
            datafusion::arrow::util::pretty::pretty_format_batches(std::slice::from_ref(b))
                .unwrap()
                .to_string()
        };
        assert!(!text(&shown).contains(PHONE), "{}", text(&shown));
        assert!(text(&shown).contains(crate::redact::WITHHELD));
        assert!(!text(&told).contains(PHONE), "{}", text(&told));

        // judged not personal: shown as sent
        let entry = submit(&registry, "SELECT 'Xihu'");
        assert!(!entry.recorded().0.contains("Xihu"));
        entry.not_personal();
        assert_eq!(entry.recorded().0, "SELECT 'Xihu'");
        let _ = registry.end(&entry, Outcome::Error, "execution error: 'Xihu'".into());
        assert!(text(&to_batch(&[entry], false).unwrap()).contains("execution error: 'Xihu'"));
    }
}
