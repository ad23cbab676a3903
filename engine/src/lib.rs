//! citylake's engine: a DataFusion session built from configuration, behind one
//! narrow API that every front end (CLI, Flight SQL, reports) uses.
//!
//! ```no_run
//! # async fn demo() -> citylake_engine::Result<()> {
//! use citylake_engine::{Engine, EngineConfig, Principal};
//! use futures::TryStreamExt;
//!
//! let engine = Engine::new(EngineConfig::new("data/lake/catalog.toml")).await?;
//! let session = engine.session(Principal::local_admin());
//! let stream = session.sql("SELECT count(*) FROM traffic.segment_speed").await?;
//! let batches: Vec<_> = stream.try_collect().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: [`EngineConfig`] (catalog, memory limit and spilling, parallelism).
//! - `session`: [`Engine`] (shared: runtime, catalog providers) and [`Session`]
//!   (one principal's SQL: parse, plan, execute to a stream of record batches).
//! - [`storage`]: object stores (local, S3) and loading a catalog from one;
//!   [`publish`]: uploading a lake with its catalog last; [`requests`]: counting
//!   object-store requests per session and per engine.
//! - [`audit`]: the audit trail (JSON lines, `system.audit_log`).
//! - [`policy`]: roles, grants, masks and row filters; [`governance`]: their
//!   enforcement in the catalog each session sees.
//! - [`quality`]: the data-quality checks and `system.data_quality`.
//! - [`limits`]: per-query limits, the per-query memory pool, admission;
//!   [`bounded`]: functions whose results outgrow their arguments, checked
//!   before they build them;
//!   [`queries`]: every query's state (`system.queries`) and the metrics.
//! - [`ingest`]: appends to Delta datasets (who may write, the checks of the
//!   batches, the audit record).
//! - [`maintenance`]: erasure on request, retention, optimize and vacuum of
//!   Delta datasets.
//! - [`time_travel`]: `as_of(dataset, version | time)`, governed like the table.
//! - [`eager`]: the optimizer rule that aggregates the fact side of a join
//!   below it (eager aggregation).
//! - [`yielding`]: joins yield to the scheduler, so a cancel or timeout stops
//!   the work inside operators.
//! - [`remote`]: the hook through which a cluster runs a session's queries.
//! - [`principal`]: who is asking; [`error`]: [`EngineError`].

pub mod audit;
pub mod bounded;
pub mod config;
pub mod eager;
pub mod error;
pub mod governance;
pub mod ingest;
pub mod lanes;
pub mod limits;
pub mod maintenance;
pub mod pg_catalog;
pub mod policy;
pub mod principal;
pub mod publish;
pub mod quality;
pub mod queries;
pub mod redact;
pub mod remote;
pub mod requests;
mod session;
pub mod snapshot;
pub mod storage;
pub mod time_travel;
pub mod yielding;

pub use citylake_catalog as catalog;
/// The DataFusion every citylake crate uses (one version for the workspace).
pub use datafusion;

/// The stack size of every thread that plans or runs queries (the command's
/// runtime, the light queries' runtime): planning and executing recurse over
/// a statement's tree, and DataFusion advises more than the 2 MiB default for
/// deep plans.
pub const THREAD_STACK_SIZE: usize = 16 << 20;

/// Makes ring the process's TLS crypto provider, once (later calls do nothing).
///
/// citylake's TLS — Flight SQL and cluster gRPC through tonic, the Postgres
/// protocol through pgwire — is built on ring; delta-rs's HTTP client also
/// enables rustls's aws-lc-rs, and with both compiled in rustls cannot pick a
/// default and panics at the first TLS configuration that does not name one
/// (tonic's). Every front end calls this before it configures TLS.
pub fn install_tls_provider() {
    // an error means a provider is installed already: the first one stays
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub use config::EngineConfig;
pub use error::{EngineError, Result};
pub use principal::Principal;
pub use requests::RequestStats;
pub use session::{
    Engine, MAX_CTE_COPIES, MAX_OPERATORS, MAX_PLAN_NODES, MAX_SET_OPERATIONS, MAX_STATEMENT_BYTES,
    QueryRequest, Session, SqlPermissions, Statement, TableInfo,
};
