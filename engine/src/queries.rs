//! What the engine is doing: every query from admission to its end, kept for
//! `system.queries` (running ones and the last [`RECENT`] finished), and the
//! Prometheus metrics of the whole engine.
//!
//! A query is [`QueryRegistry::register`]ed when it is submitted, waits for
//! admission (`queued`), runs, and ends `finished`, `failed`, `timed_out`,
//! `cancelled` (its stream dropped before the end: a client cancel, a
//! disconnect) or `refused` (the queue was full). [`Tracked`] is the stream
//! that carries a query's results: it enforces the timeout and the result-size
//! limits, counts what it returns, holds the admission slot until it ends, and
//! records the outcome and the plan's scan and spill figures when it ends.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::physical_plan::ExecutionPlan;
use futures::Stream;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::limits::{LimitError, Limits, Permit, QueryPool};

/// Finished queries kept for `system.queries`.
pub const RECENT: usize = 1000;

/// Where a query is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    Queued,
    Running,
    Finished,
    Failed,
    TimedOut,
    Cancelled,
    Refused,
}

impl QueryState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Refused => "refused",
        }
    }

    fn ended(&self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

/// One query, as `system.queries` shows it.
#[derive(Debug)]
pub struct QueryEntry {
    pub id: u64,
    pub user: String,
    pub roles: String,
    pub client: String,
    pub sql: String,
    pub started: SystemTime,
    start: Instant,
    state: Mutex<(QueryState, Option<Duration>, String)>,
    rows: AtomicU64,
    bytes: AtomicU64,
    pool: Arc<QueryPool>,
}

impl QueryEntry {
    pub fn state(&self) -> QueryState {
        self.state.lock().expect("state lock").0
    }

    fn set_running(&self) {
        self.state.lock().expect("state lock").0 = QueryState::Running;
    }
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
            connections: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "queries",
            "Queries by outcome (finished, failed, timed_out, cancelled, refused) and the user's roles",
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
            "connections",
            "Open client connections",
            m.connections.clone(),
        );
        Self { registry, ..m }
    }
}

/// Every query of the engine, and its metrics.
#[derive(Debug)]
pub struct QueryRegistry {
    next_id: AtomicU64,
    running: Mutex<Vec<Arc<QueryEntry>>>,
    recent: Mutex<VecDeque<Arc<QueryEntry>>>,
    pub metrics: Metrics,
}

impl Default for QueryRegistry {
    fn default() -> Self {
        Self {
            next_id: AtomicU64::new(1),
            running: Mutex::new(vec![]),
            recent: Mutex::new(VecDeque::new()),
            metrics: Metrics::new(),
        }
    }
}

impl QueryRegistry {
    /// A new query, queued.
    pub fn register(
        &self,
        user: &str,
        roles: &str,
        client: &str,
        sql: &str,
        pool: Arc<QueryPool>,
        start: Instant,
    ) -> Arc<QueryEntry> {
        let entry = Arc::new(QueryEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            user: user.to_string(),
            roles: roles.to_string(),
            client: client.to_string(),
            sql: sql.to_string(),
            started: SystemTime::now() - start.elapsed(),
            start,
            state: Mutex::new((QueryState::Queued, None, String::new())),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            pool,
        });
        self.running
            .lock()
            .expect("running lock")
            .push(entry.clone());
        entry
    }

    /// Marks a query ended (once); records its metrics.
    pub fn end(&self, entry: &Arc<QueryEntry>, state: QueryState, error: String) {
        {
            let mut s = entry.state.lock().expect("state lock");
            if s.0.ended() {
                return;
            }
            *s = (state, Some(entry.start.elapsed()), error);
        }
        self.running
            .lock()
            .expect("running lock")
            .retain(|e| e.id != entry.id);
        let mut recent = self.recent.lock().expect("recent lock");
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(entry.clone());
        drop(recent);
        let m = &self.metrics;
        m.queries
            .get_or_create(&OutcomeLabels {
                outcome: state.as_str().to_string(),
                role: entry.roles.clone(),
            })
            .inc();
        m.latency.observe(entry.start.elapsed().as_secs_f64());
        m.rows_returned.inc_by(entry.rows.load(Ordering::Relaxed));
        m.bytes_returned.inc_by(entry.bytes.load(Ordering::Relaxed));
        tracing::info!(
            query_id = entry.id,
            user = %entry.user,
            state = state.as_str(),
            rows = entry.rows.load(Ordering::Relaxed),
            elapsed_ms = entry.start.elapsed().as_millis() as u64,
            peak_memory = entry.pool.peak(),
            "query ended"
        );
    }

    /// Running and recent queries, newest last; only `user`'s when given.
    pub fn snapshot(&self, user: Option<&str>) -> Vec<Arc<QueryEntry>> {
        let recent = self.recent.lock().expect("recent lock");
        let running = self.running.lock().expect("running lock");
        let mut all: Vec<_> = recent.iter().chain(running.iter()).cloned().collect();
        all.retain(|e| user.is_none_or(|u| e.user == u));
        all.sort_by_key(|e| e.id);
        all
    }

    /// Records what a finished plan scanned and spilled.
    fn plan_figures(&self, plan: &Arc<dyn ExecutionPlan>) {
        fn walk(plan: &Arc<dyn ExecutionPlan>, f: &mut impl FnMut(&Arc<dyn ExecutionPlan>)) {
            f(plan);
            for child in plan.children() {
                walk(child, f);
            }
            // what a governed dataset scanned counts too (the plan behind its barrier)
            if let Some(inner) = crate::governance::GovernedScanExec::governed_plan(plan.as_ref()) {
                walk(inner, f);
            }
        }
        let m = &self.metrics;
        walk(plan, &mut |node| {
            let Some(metrics) = node.metrics() else {
                return;
            };
            if node.name() == "DataSourceExec" {
                m.rows_scanned
                    .inc_by(metrics.output_rows().unwrap_or(0) as u64);
                m.bytes_scanned.inc_by(
                    metrics
                        .sum_by_name("bytes_scanned")
                        .map_or(0, |v| v.as_usize()) as u64,
                );
            }
            m.spills.inc_by(metrics.spill_count().unwrap_or(0) as u64);
            m.spilled_bytes
                .inc_by(metrics.spilled_bytes().unwrap_or(0) as u64);
        });
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
    plan: Option<Arc<dyn ExecutionPlan>>,
    ended: bool,
    _permit: Permit,
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
        entry.set_running();
        let deadline = limits.query_timeout.map(|t| {
            let remaining = t.saturating_sub(entry.start.elapsed());
            Box::pin(tokio::time::sleep(remaining))
        });
        Self {
            inner,
            registry,
            entry,
            limits,
            deadline,
            plan,
            ended: false,
            _permit: permit,
        }
    }

    fn end(&mut self, state: QueryState, error: String) {
        self.ended = true;
        // drop the plan's stream now: its tasks stop (a timed-out or over-limit
        // query must not keep the CPU busy while the client reads its error)
        let schema = self.inner.schema();
        self.inner = Box::pin(datafusion::physical_plan::EmptyRecordBatchStream::new(
            schema,
        ));
        if let Some(plan) = self.plan.take() {
            self.registry.plan_figures(&plan);
        }
        self.registry.end(&self.entry, state, error);
    }

    fn stop(
        &mut self,
        state: QueryState,
        e: DataFusionError,
    ) -> Poll<Option<DfResult<RecordBatch>>> {
        self.end(state, e.to_string());
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for Tracked {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            let timeout = self.limits.query_timeout.unwrap_or_default();
            return self.stop(
                QueryState::TimedOut,
                LimitError::Timeout(timeout).into_datafusion(),
            );
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
                    return self.stop(
                        QueryState::Failed,
                        LimitError::ResultRows(max).into_datafusion(),
                    );
                }
                if let Some(max) = self.limits.max_result_bytes
                    && bytes > max
                {
                    return self.stop(
                        QueryState::Failed,
                        LimitError::ResultBytes(max).into_datafusion(),
                    );
                }
                Poll::Ready(Some(Ok(batch)))
            }
            Poll::Ready(Some(Err(e))) => {
                let state = if matches!(LimitError::of(&e), Some(LimitError::Timeout(_))) {
                    QueryState::TimedOut
                } else {
                    QueryState::Failed
                };
                self.stop(state, e)
            }
            Poll::Ready(None) => {
                self.end(QueryState::Finished, String::new());
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
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
            // the stream was dropped before its end: the work stops with it
            self.end(
                QueryState::Cancelled,
                "cancelled: the client stopped reading".into(),
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
    ]))
}

/// Queries as one batch of [`schema`].
fn to_batch(entries: &[Arc<QueryEntry>]) -> DfResult<RecordBatch> {
    let text = |f: &dyn Fn(&QueryEntry) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| f(e))))
    };
    let states: Vec<_> = entries
        .iter()
        .map(|e| e.state.lock().expect("state lock").clone())
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            entries.iter().map(|e| e.id as i64),
        )),
        text(&|e| e.user.clone()),
        text(&|e| e.roles.clone()),
        text(&|e| e.client.clone()),
        text(&|e| e.sql.clone()),
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
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// `system.queries`: running and recent queries (a user's own, or all for
/// roles that read the audit log).
#[derive(Debug)]
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
        )?])
    }
}
