//! The engine (shared by every session) and a principal's session.

use std::num::NonZeroUsize;
use std::sync::Arc;

use citylake_catalog::Catalog;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;

use crate::config::EngineConfig;
use crate::error::{EngineError, Result};
use crate::policy::{DatasetFacts, PolicyStore};
use crate::principal::Principal;
use crate::requests::{CountingRegistry, RequestCounts, RequestStats};
use citylake_catalog::columns::nearest;

/// A parsed SQL statement.
pub type Statement = datafusion::sql::parser::Statement;

/// What kinds of statements a session accepts besides queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlPermissions {
    /// CREATE/DROP of session-local views and tables.
    pub ddl: bool,
    /// INSERT, COPY TO and other writes.
    pub dml: bool,
    /// SET and other session statements.
    pub statements: bool,
}

impl SqlPermissions {
    /// Queries only: what a shared server allows.
    pub const READ_ONLY: Self = Self {
        ddl: false,
        dml: false,
        statements: false,
    };
    /// Everything: the local command line, where the user owns the session.
    pub const ALL: Self = Self {
        ddl: true,
        dml: true,
        statements: true,
    };
}

/// The shared part: runtime (memory pool, spill directory, object stores,
/// caches) and the catalog's table providers, built once.
#[derive(Debug, Clone)]
pub struct Engine {
    catalog: Arc<Catalog>,
    runtime: Arc<RuntimeEnv>,
    config: SessionConfig,
    /// The catalog's datasets, then its views, in order, with their providers.
    entries: Vec<Entry>,
    /// `system.datasets` and `system.columns`.
    system: Vec<(String, Arc<dyn datafusion::catalog::TableProvider>)>,
    /// The access policy, reloaded when its file changes.
    policy: Arc<PolicyStore>,
    /// The audit trail and `system.audit_log` over it.
    audit: Arc<crate::audit::AuditLog>,
    audit_table: Arc<dyn datafusion::catalog::TableProvider>,
    /// Object-store requests of every session's queries.
    requests: Arc<RequestCounts>,
    /// The data-quality checks over the raw lake (`system.data_quality`).
    quality: Arc<crate::quality::Checker>,
    /// Where queries run when not here (a cluster), if anywhere.
    remote: Option<crate::remote::Routing>,
    /// Every query, for `system.queries` and the metrics.
    queries: Arc<crate::queries::QueryRegistry>,
    /// How many queries run at once and wait.
    admission: Arc<crate::limits::Admission>,
    /// Queries scanning fewer bytes of files than this are light (admission).
    light_query_scan: u64,
    /// The runtimes queries run on ([`crate::lanes`]).
    lanes: Arc<crate::lanes::Lanes>,
    /// The global per-query limits (roles may replace them).
    limits: crate::limits::Limits,
    /// Row-filter predicates, parsed once.
    row_filters: Arc<crate::governance::RowFilters>,
    /// The lake root as plans print file paths (cut from `EXPLAIN` results).
    root_prefix: Arc<str>,
    /// Whether sessions plan with [`crate::eager`].
    eager_aggregation: bool,
    /// What ingest requests may hold and for how long ([`crate::ingest`]).
    ingest: crate::ingest::IngestBounds,
}

impl Entry {
    pub(crate) fn facts(&self) -> DatasetFacts<'_> {
        DatasetFacts {
            name: &self.name,
            owner: &self.owner,
            classification: self.classification,
            columns: &self.columns,
        }
    }
}

/// A dataset or view of the catalog, as the policy sees it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) schema: String,
    pub(crate) table: String,
    /// `schema.table`
    pub(crate) name: String,
    pub(crate) owner: String,
    pub(crate) classification: citylake_catalog::Classification,
    pub(crate) columns: Vec<String>,
    pub(crate) pii: Vec<(String, citylake_catalog::PiiTag)>,
    pub(crate) provider: Arc<dyn datafusion::catalog::TableProvider>,
    /// For a view: the datasets and views it reads.
    pub(crate) reads: Option<Vec<String>>,
}

impl Engine {
    /// Loads the catalog and builds the runtime and the table providers.
    pub async fn new(config: EngineConfig) -> Result<Self> {
        let catalog = crate::storage::load_catalog(&config.catalog).await?;
        // Listings and Parquet footers are cached between queries (DataFusion's
        // caches, shared by all sessions): a warm query over object storage
        // reads only the pages it needs.
        let mut runtime =
            RuntimeEnvBuilder::new().with_metadata_cache_limit(config.metadata_cache_bytes);
        runtime = match config.list_cache_ttl {
            Some(ttl) if ttl.is_zero() => runtime.with_object_list_cache_limit(0),
            ttl => runtime
                .with_object_list_cache_limit(16 * 1024 * 1024)
                .with_object_list_cache_ttl(ttl),
        };
        if let Some(limit) = config.memory_limit {
            if limit < 1 << 20 {
                return Err(EngineError::Config(format!(
                    "memory limit {limit} bytes is below the 1 MiB minimum"
                )));
            }
            runtime = runtime.with_memory_pool(Arc::new(TrackConsumersPool::new(
                FairSpillPool::new(limit),
                NonZeroUsize::new(5).expect("non-zero"),
            )));
        }
        if let Some(dir) = &config.spill_dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                EngineError::Config(format!("spill directory {}: {e}", dir.display()))
            })?;
            runtime = runtime.with_temp_file_path(dir);
        }
        if let Some(max) = config.max_spill_bytes {
            runtime = runtime.with_max_temp_directory_size(max);
        }
        let runtime = runtime.build_arc()?;
        crate::storage::register(&runtime, &catalog).await?;

        // the evaluation settings of the catalog, as session options (`SET citylake.…`)
        let mut evaluation = citylake_udfs::finance::EvaluationOptions::default();
        if let Some(e) = &catalog.spec().evaluation {
            let defaults = evaluation.clone();
            evaluation.grade_excellent = e.grade_excellent.unwrap_or(defaults.grade_excellent);
            evaluation.grade_good = e.grade_good.unwrap_or(defaults.grade_good);
            evaluation.grade_fair = e.grade_fair.unwrap_or(defaults.grade_fair);
            evaluation.over_completion_threshold = e
                .over_completion_threshold
                .unwrap_or(defaults.over_completion_threshold);
        }
        let mut session_config = SessionConfig::new()
            .with_option_extension(evaluation)
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(catalog.name(), catalog.default_schema());
        // planning errors carry the span of what they are about (a column, a
        // function): the command line points at it
        session_config.options_mut().sql_parser.collect_spans = true;
        // A lake in an object store waits on requests: twice as many partitions as
        // cores keeps more GETs in flight (measured at SF 1 against SeaweedFS:
        // S3 / local 1.55 → 1.35). `--target-partitions` overrides it.
        let remote = !catalog.root_url().starts_with("file://");
        let target_partitions = config.target_partitions.or_else(|| {
            remote.then(|| 2 * std::thread::available_parallelism().map_or(1, |n| n.get()))
        });
        if let Some(n) = target_partitions {
            if n == 0 {
                return Err(EngineError::Config(
                    "target partitions must be at least 1".into(),
                ));
            }
            session_config = session_config.with_target_partitions(n);
        }
        if let Some(n) = config.batch_size {
            if n == 0 {
                return Err(EngineError::Config("batch size must be at least 1".into()));
            }
            session_config = session_config.with_batch_size(n);
        }
        let ingest = crate::ingest::IngestBounds::new(&config)?;

        // Build the providers once, with a plain state over the same runtime.
        let state = SessionStateBuilder::new()
            .with_config(session_config.clone())
            .with_runtime_env(runtime.clone())
            .with_default_features()
            .build();
        let provider = catalog.build_provider(&state).await?;
        let catalog = Arc::new(catalog);
        let quality = {
            let ctx = SessionContext::new_with_state(state.clone());
            ctx.register_catalog(catalog.name(), provider.clone());
            Arc::new(crate::quality::Checker::new(catalog.clone(), ctx))
        };
        // Views are planned once, with the functions and the lake's catalog.
        {
            let mut state = state.clone();
            citylake_udfs::register_all(&mut state)?;
            let ctx = SessionContext::new_with_state(state);
            ctx.register_catalog(catalog.name(), provider.clone());
            catalog.register_views(&ctx, &provider).await?;
        }
        let entries = catalog_entries(&catalog, &provider).await?;
        let system_schema = provider
            .schema(citylake_catalog::SYSTEM_SCHEMA)
            .expect("the system schema exists");
        let mut system = vec![];
        for name in system_schema.table_names() {
            if let Some(table) = system_schema.table(&name).await? {
                system.push((name, table));
            }
        }
        system.push((
            "data_quality".to_string(),
            Arc::new(crate::quality::QualityTable::new(quality.clone())),
        ));
        let policy_path = config.policy.clone().or_else(|| {
            let beside = config.catalog.parent()?.join(crate::policy::POLICY_FILE);
            (!crate::storage::is_url(&config.catalog.to_string_lossy()) && beside.exists())
                .then_some(beside)
        });
        let policy = Arc::new(PolicyStore::open(policy_path)?);
        let remote_catalog = crate::storage::is_url(&config.catalog.to_string_lossy());
        let audit_dir = config
            .audit_dir
            .clone()
            .unwrap_or_else(|| match config.catalog.parent() {
                Some(dir) if !remote_catalog => dir.join("audit"),
                _ => std::path::PathBuf::from("data/audit"),
            });
        let audit = Arc::new(
            crate::audit::AuditLog::open(
                &audit_dir,
                config
                    .audit_key
                    .as_deref()
                    .map(crate::audit::read_key)
                    .transpose()?,
            )?
            .with_max_request_bytes(config.audit_max_request_bytes)
            .with_redactor(crate::redact::Redactor::for_catalog(catalog.spec()))
            .with_fail_open(config.audit_fail_open)
            .discarding(config.audit_discard),
        );
        let audit_for_queries = audit.clone();
        let audit_table: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(
            crate::snapshot::SnapshotTable(crate::audit::AuditTable::new(&audit_dir)),
        );
        Ok(Self {
            root_prefix: root_prefix(catalog.root_url()),
            eager_aggregation: config.eager_aggregation,
            ingest,
            catalog,
            runtime,
            config: session_config,
            entries,
            system,
            policy,
            audit,
            audit_table,
            requests: Arc::new(RequestCounts::default()),
            quality,
            remote: None,
            queries: Arc::new(crate::queries::QueryRegistry::new(audit_for_queries)),
            admission: Arc::new(crate::limits::Admission::new(
                config.max_concurrent_queries,
                config.light_query_slots,
                config.query_queue,
            )),
            light_query_scan: config.light_query_scan,
            lanes: Arc::new(
                crate::lanes::Lanes::new(
                    config.light_query_threads,
                    config.general_query_threads,
                    config.general_query_nice,
                )
                .map_err(|e| EngineError::Config(format!("starting the queries' threads: {e}")))?,
            ),
            limits: config.limits.clone(),
            row_filters: Default::default(),
        })
    }

    /// The audit trail, for records made outside a session (logins).
    pub fn audit_log(&self) -> &crate::audit::AuditLog {
        &self.audit
    }

    /// Running and recent queries, and the engine's metrics.
    pub fn queries(&self) -> &Arc<crate::queries::QueryRegistry> {
        &self.queries
    }

    /// The engine's metrics as Prometheus text.
    pub fn metrics_text(&self) -> String {
        self.queries.encode(
            self.admission.running(),
            self.admission.waiting(),
            self.runtime.memory_pool.reserved(),
            &self.requests.snapshot(),
        )
    }

    /// Whether `principal` supervises: reads the audit log, sees and cancels
    /// every query, and may use the places kept for that (a query slot, a
    /// Postgres connection).
    pub fn supervises(&self, principal: &Principal) -> bool {
        self.policy.current().reads_audit_log(principal)
    }

    /// The policy in force now (reloaded if its file changed).
    pub(crate) fn policy_now(&self) -> Arc<crate::policy::Policy> {
        self.policy.current()
    }

    /// The dataset `schema.table` of the catalog (not a view).
    pub(crate) fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.name == name && e.reads.is_none())
    }

    /// What ingest requests may hold and for how long.
    pub(crate) fn ingest_bounds(&self) -> &crate::ingest::IngestBounds {
        &self.ingest
    }

    /// The largest ingest request, in bytes (`--max-ingest-bytes`).
    pub fn max_ingest_bytes(&self) -> usize {
        self.ingest.max_request()
    }

    /// What all ingest requests together may hold, in bytes (`--max-ingest-memory`).
    pub fn max_ingest_memory(&self) -> usize {
        self.ingest.max_memory()
    }

    /// How long an upload may take to arrive (`--ingest-timeout`).
    pub fn ingest_timeout(&self) -> std::time::Duration {
        self.ingest.timeout()
    }

    /// A slot among the running queries for work of `principal`'s that is
    /// not a query (an ingest), with the same shares and the same queue.
    pub(crate) async fn admission_for(
        &self,
        principal: &Principal,
    ) -> std::result::Result<crate::limits::Permit, crate::limits::LimitError> {
        self.admission
            .admit(&principal.user, self.supervises(principal), false)
            .await
    }

    /// Queries running and waiting now.
    pub fn load(&self) -> (usize, usize) {
        (self.admission.running(), self.admission.waiting())
    }

    /// Sends every session's queries to `remote` (a cluster) where it accepts
    /// them and they scan at least `min_scan_bytes` of files; the rest run
    /// here (see [`crate::remote::Routing`]).
    pub fn with_remote(
        mut self,
        remote: Arc<dyn crate::remote::RemoteExecutor>,
        min_scan_bytes: u64,
    ) -> Self {
        self.remote = Some(crate::remote::Routing {
            executor: remote,
            min_scan_bytes,
        });
        self
    }

    /// The data-quality checks over the raw lake, as `citylake quality` runs them
    /// (sessions see them, filtered to their datasets, as `system.data_quality`).
    pub fn quality(&self) -> &crate::quality::Checker {
        &self.quality
    }

    /// Object-store requests made by every session's queries so far.
    pub fn object_store_requests(&self) -> RequestStats {
        self.requests.snapshot()
    }

    /// The loaded catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// A new session for `principal`, read-only until [`Session::with_permissions`].
    /// The catalog it sees is the policy's view of the lake for this principal
    /// (see [`crate::governance`]).
    pub fn session(&self, principal: Principal) -> Session {
        self.session_over(principal, &self.entries)
    }

    /// A session for `principal` whose Delta datasets read the versions
    /// `versions` names (`schema.table` → version), in every table, view and
    /// function of its catalog: a past report re-run over the data it read
    /// ([`crate::time_travel`]). Names that are not Delta datasets are an error.
    pub fn session_pinned(
        &self,
        principal: Principal,
        versions: &std::collections::BTreeMap<String, u64>,
    ) -> Result<Session> {
        let entries = crate::time_travel::pinned_entries(&self.entries, versions)?;
        Ok(self.session_over(principal, &entries))
    }

    /// The datasets and views of the catalog (with their providers).
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn session_over(&self, principal: Principal, entries: &[Entry]) -> Session {
        let policy = self.policy.current();
        let limits = self.limits.with_roles(&policy.limits(&principal));
        // The shared runtime (memory pool, disk, caches, stores), seen through a
        // registry that counts this session's object-store requests and a pool
        // that caps this session's memory.
        let requests = Arc::new(RequestCounts::default());
        let registry = CountingRegistry::new(
            self.runtime.object_store_registry.clone(),
            vec![requests.clone(), self.requests.clone()],
        );
        let pool = Arc::new(crate::limits::QueryPool::new(
            self.runtime.memory_pool.clone(),
            limits.memory_per_query,
        ));
        let runtime = RuntimeEnvBuilder::from_runtime_env(&self.runtime)
            .with_object_store_registry(Arc::new(registry))
            .with_memory_pool(pool.clone())
            .build_arc()
            .expect("a runtime from a built runtime");
        let mut state = SessionStateBuilder::new()
            .with_config(self.config.clone())
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(crate::yielding::YieldAfterJoins))
            .with_optimizer_rules(crate::bounded::optimizer_rules(self.eager_aggregation))
            .build();
        citylake_udfs::register_all(&mut state).expect("built-in functions register");
        crate::bounded::register(&mut state).expect("bounded functions register");
        for f in crate::pg_catalog::functions() {
            datafusion::execution::FunctionRegistry::register_udf(&mut state, f)
                .expect("catalog functions register");
        }
        for (name, f) in crate::pg_catalog::table_functions() {
            state.register_udtf(name, f);
        }
        datafusion::execution::FunctionRegistry::register_udf(
            &mut state,
            crate::governance::mask_udf(),
        )
        .expect("the mask function registers");

        let catalog_name = self.catalog.name();
        let crate::governance::PrincipalCatalog {
            catalog,
            mut denied,
            hidden,
            masked_columns,
            readable,
        } = crate::governance::principal_catalog(
            entries,
            &self.system,
            &policy,
            &principal,
            &state,
            catalog_name,
            &self.row_filters,
        );
        let schema = |name: &str| -> Arc<dyn datafusion::catalog::SchemaProvider> {
            if let Some(s) = catalog.schema(name) {
                return s;
            }
            let s: Arc<dyn datafusion::catalog::SchemaProvider> =
                Arc::new(MemorySchemaProvider::new());
            catalog
                .register_schema(name, s.clone())
                .expect("memory catalog accepts schemas");
            s
        };
        let system = schema(citylake_catalog::SYSTEM_SCHEMA);
        // a user's own queries; all of them for the roles that read the audit log
        let all_queries = policy.reads_audit_log(&principal);
        system
            .register_table(
                "queries".into(),
                Arc::new(crate::snapshot::SnapshotTable(
                    crate::queries::QueriesTable::new(
                        self.queries.clone(),
                        (!all_queries).then(|| principal.user.clone()),
                    ),
                )),
            )
            .expect("memory schema accepts tables");
        if all_queries {
            system
                .register_table("audit_log".into(), self.audit_table.clone())
                .expect("memory schema accepts tables");
        } else {
            denied.insert(format!("{}.audit_log", citylake_catalog::SYSTEM_SCHEMA));
        }
        schema(self.catalog.default_schema());
        // PostgreSQL's system catalogs, over this very catalog (what it lists
        // is what the policy lets this principal list)
        let catalog: Arc<dyn CatalogProvider> = catalog;
        crate::pg_catalog::register(&catalog, self.catalog.default_schema())
            .expect("memory catalog accepts schemas");
        let ctx = SessionContext::new_with_state(state);
        ctx.register_catalog(catalog_name, catalog);
        for f in
            crate::pg_catalog::session_functions(&principal.user, self.catalog.default_schema())
        {
            ctx.register_udf(f);
        }
        ctx.register_udf(crate::queries::cancel_udf(
            self.queries.clone(),
            principal.user.clone(),
            all_queries,
        ));
        // time travel, over what the policy built for this principal
        ctx.register_udtf(
            crate::time_travel::AS_OF_FUNCTION,
            Arc::new(crate::time_travel::AsOfFunction {
                readable,
                denied: denied.clone(),
                hidden: hidden.clone(),
                user: principal.user.clone(),
                catalog: catalog_name.to_string(),
                default_schema: self.catalog.default_schema().to_string(),
            }),
        );
        Session {
            ctx,
            principal,
            permissions: SqlPermissions::READ_ONLY,
            requests,
            denied,
            hidden,
            audit: self.audit.clone(),
            client: String::new(),
            masked_columns,
            remote: self.remote.clone(),
            queries: self.queries.clone(),
            admission: self.admission.clone(),
            light_query_scan: self.light_query_scan,
            lanes: self.lanes.clone(),
            supervisor: all_queries,
            limits,
            pool,
            root_prefix: self.root_prefix.clone(),
        }
    }
}

/// The lake root as object-store paths print it: the URL's path without its
/// leading `/` (`file:///tmp/lake/` → `tmp/lake/`, `s3://b/city/` → `city/`).
fn root_prefix(root: &str) -> Arc<str> {
    let path = url::Url::parse(root)
        .map(|u| u.path().trim_start_matches('/').to_string())
        .unwrap_or_default();
    if path.is_empty() || path.ends_with('/') {
        path.into()
    } else {
        format!("{path}/").into()
    }
}

fn column_names(t: &dyn datafusion::catalog::TableProvider) -> Vec<String> {
    t.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// The catalog's datasets and views with their providers, facts and PII tags.
async fn catalog_entries(
    catalog: &Catalog,
    provider: &MemoryCatalogProvider,
) -> Result<Vec<Entry>> {
    let mut out = vec![];
    let table = |schema: &str, table: &str| {
        let provider = provider.schema(schema).expect("registered schema");
        let table = table.to_string();
        async move { provider.table(&table).await }
    };
    for ds in &catalog.spec().datasets {
        let Some(t) = table(ds.schema_name(), ds.table_name()).await? else {
            continue;
        };
        out.push(Entry {
            schema: ds.schema_name().to_string(),
            table: ds.table_name().to_string(),
            name: ds.name.clone(),
            owner: ds.owner.clone(),
            classification: ds.classification,
            columns: column_names(t.as_ref()),
            pii: ds
                .columns
                .iter()
                .filter_map(|c| c.pii.map(|tag| (c.name.clone(), tag)))
                .collect(),
            provider: t,
            reads: None,
        });
    }
    for v in &catalog.spec().views {
        let Some(t) = table(v.schema_name(), v.view_name()).await? else {
            continue;
        };
        let reads = t
            .get_logical_plan()
            .map(|plan| datasets_of(&plan, catalog.default_schema()))
            .unwrap_or_default();
        out.push(Entry {
            schema: v.schema_name().to_string(),
            table: v.view_name().to_string(),
            name: v.name.clone(),
            owner: v.owner.clone(),
            classification: citylake_catalog::Classification::Internal,
            columns: column_names(t.as_ref()),
            pii: vec![],
            provider: t,
            reads: Some(reads),
        });
    }
    Ok(out)
}

/// Runs `work`; a panic inside it becomes an internal error of this request
/// (logged with its message), so one statement cannot end the process.
async fn contain_panics<T>(what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(EngineError::Query(panicked(what, panic))),
    }
}

/// An `EXPLAIN` result with the lake root cut from every file path: where the
/// lake lives on the server's disk or in its bucket is not the user's business.
fn relative_paths(stream: SendableRecordBatchStream, root: Arc<str>) -> SendableRecordBatchStream {
    use datafusion::arrow::array::{Array, ArrayRef, StringArray};
    use futures::StreamExt;
    let schema = stream.schema();
    let mapped = stream.map(move |batch| {
        let batch = batch?;
        let columns = batch
            .columns()
            .iter()
            .map(|c| match c.as_any().downcast_ref::<StringArray>() {
                Some(text) => Arc::new(
                    text.iter()
                        .map(|v| v.map(|v| v.replace(&*root, "")))
                        .collect::<StringArray>(),
                ) as ArrayRef,
                None => c.clone(),
            })
            .collect();
        Ok(datafusion::arrow::record_batch::RecordBatch::try_new(
            batch.schema(),
            columns,
        )?)
    });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, mapped))
}

/// `stream`, ending with an internal error if polling it panics (an operator's
/// bug, or a panic DataFusion carries over from one of its tasks).
fn contain_stream_panics(stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
    use futures::StreamExt;
    let schema = stream.schema();
    let guarded = std::panic::AssertUnwindSafe(stream)
        .catch_unwind()
        .map(|item| match item {
            Ok(result) => result,
            Err(panic) => Err(panicked("executing", panic)),
        });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, guarded))
}

pub(crate) fn panicked(
    what: &str,
    panic: Box<dyn std::any::Any + Send>,
) -> datafusion::error::DataFusionError {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into());
    tracing::error!(panic = %message, "a panic while {what}; the request was ended");
    datafusion::error::DataFusionError::Internal(format!(
        "internal error while {what}; the request was ended"
    ))
}

/// Whether a statement only reads: a query (`SELECT`, `WITH`, `VALUES`), an
/// `EXPLAIN` of one, or a listing DataFusion answers from `information_schema`
/// (`SHOW TABLES`, `SHOW COLUMNS`, `DESCRIBE`, `SHOW FUNCTIONS`, `SHOW <setting>`).
fn is_query(statement: &Statement) -> bool {
    use datafusion::sql::sqlparser::ast;
    match statement {
        Statement::Statement(s) => match s.as_ref() {
            ast::Statement::Query(_)
            | ast::Statement::ShowTables { .. }
            | ast::Statement::ShowColumns { .. }
            | ast::Statement::ExplainTable { .. }
            | ast::Statement::ShowFunctions { .. }
            | ast::Statement::ShowVariable { .. } => true,
            ast::Statement::Explain { statement, .. } => {
                matches!(statement.as_ref(), ast::Statement::Query(_))
            }
            _ => false,
        },
        Statement::Explain(explain) => is_query(&explain.statement),
        _ => false,
    }
}

/// The datasets and views a plan reads, `schema.table`, sorted.
fn datasets_of(plan: &LogicalPlan, default_schema: &str) -> Vec<String> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut out = std::collections::BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            // a dataset read through a table function (`as_of`) is named by
            // its provider, not by the function
            let named = datafusion::datasource::source_as_provider(&scan.source)
                .ok()
                .and_then(|p| crate::time_travel::dataset_of(p.as_ref()));
            let r = &scan.table_name;
            out.insert(named.unwrap_or_else(|| {
                format!("{}.{}", r.schema().unwrap_or(default_schema), r.table())
            }));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out.into_iter().collect()
}

/// Most structural tokens a statement may hold: operators, parentheses and
/// keywords — every token that can add a level to the parsed tree (names,
/// literals and commas cannot). See [`Session::parse`].
pub const MAX_OPERATORS: usize = 2048;
/// Most set operations (`UNION`, `INTERSECT`, `EXCEPT`) and joins a statement
/// may hold: each adds several levels to the plan (an `INTERSECT` chain of
/// 1,600 overflowed an 8 MiB stack).
pub const MAX_SET_OPERATIONS: usize = 512;
/// Most nodes a statement's logical plan may have, counted as a tree: an
/// input used twice counts twice. A common table expression is planned once
/// and shared, but every later walk — the optimizer, the physical planner,
/// execution — sees its copies, so 30 CTEs each reading the one before twice
/// (`c1 AS (SELECT * FROM c0 UNION ALL SELECT * FROM c0)`, …) make a
/// 1.6 kB statement a plan of 2³⁰ scans that ran for minutes until the
/// kernel killed the process. The 22 TPC-H queries have at most 60 nodes.
pub const MAX_PLAN_NODES: usize = 10_000;
/// Longest statement text accepted, in bytes.
pub const MAX_STATEMENT_BYTES: usize = 8 << 20;

/// Most copies of common table expressions a statement may expand to. The
/// planner copies a CTE's plan into each place that reads it (sharing its
/// nodes, but not the lists that name them: a `UNION ALL` of two readers is
/// flattened into one list of their inputs), so CTEs that read the one before
/// twice double with each level — 30 levels exhausted 24 GiB while *planning*,
/// before any plan existed to be measured. The copies are counted on the
/// parsed statement instead, each CTE weighing one plus the copies its body
/// reads.
pub const MAX_CTE_COPIES: u64 = 1024;

/// Refuses a statement whose CTEs expand to more than [`MAX_CTE_COPIES`]
/// copies (see there). Counted conservatively: a name defined in any `WITH`
/// of the statement counts as that CTE wherever it is read.
fn check_cte_copies(statement: &Statement) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{ObjectName, Query, Visit, Visitor};
    use std::collections::HashMap;
    use std::ops::ControlFlow;

    /// A name as the planner compares it: unquoted folded to lower case,
    /// quoted as written (`"A1"` and `a1` are two CTEs).
    fn normal(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
        match ident.quote_style {
            Some(_) => ident.value.clone(),
            None => ident.value.to_lowercase(),
        }
    }

    #[derive(Default)]
    struct Copies {
        /// each CTE's body (by address) and its name
        bodies: HashMap<*const Query, String>,
        /// the copies reading each defined CTE adds
        weight: HashMap<String, u64>,
        /// the CTE bodies being walked (address, name, copies read so far);
        /// the first entry is the statement itself
        open: Vec<(*const Query, String, u64)>,
    }
    impl Visitor for Copies {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            let at = query as *const Query;
            if let Some(name) = self.bodies.get(&at) {
                self.open.push((at, name.clone(), 0));
            }
            for cte in query.with.iter().flat_map(|w| &w.cte_tables) {
                self.bodies
                    .insert(&*cte.query as *const Query, normal(&cte.alias.name));
            }
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if self.open.len() > 1 && self.open.last().map(|o| o.0) == Some(query as *const _) {
                let (_, name, read) = self.open.pop().unwrap_or_default();
                // a name defined twice (in nested WITHs) keeps the heavier weight
                let weight = self.weight.entry(name).or_default();
                *weight = (*weight).max(read.saturating_add(1));
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
            let [part] = relation.0.as_slice() else {
                return ControlFlow::Continue(());
            };
            let Some(ident) = part.as_ident() else {
                return ControlFlow::Continue(());
            };
            let Some(weight) = self.weight.get(&normal(ident)) else {
                return ControlFlow::Continue(());
            };
            let Some(open) = self.open.last_mut() else {
                return ControlFlow::Continue(());
            };
            open.2 = open.2.saturating_add(*weight);
            if open.2 > MAX_CTE_COPIES {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }

    let mut copies = Copies {
        open: vec![(std::ptr::null(), String::new(), 0)],
        ..Default::default()
    };
    let flow = match statement {
        Statement::Statement(s) => s.visit(&mut copies),
        Statement::Explain(explain) => return check_cte_copies(&explain.statement),
        Statement::CopyTo(copy) => match &copy.source {
            datafusion::sql::parser::CopyToSource::Query(q) => q.visit(&mut copies),
            _ => ControlFlow::Continue(()),
        },
        _ => ControlFlow::Continue(()),
    };
    if flow.is_break() {
        return Err(EngineError::Query(
            datafusion::common::plan_datafusion_err!(
                "statement too complex: its common table expressions expand to more than \
             {MAX_CTE_COPIES} copies (each use of a CTE copies it, with every CTE it reads; \
             split the statement, or materialize the repeated part)"
            ),
        ));
    }
    Ok(())
}

/// Refuses a plan of more than [`MAX_PLAN_NODES`] nodes; the count stops at
/// the limit, so a plan of any size is refused in bounded time.
/// Types the parameter of `x = ANY($n)` — which DataFusion plans as
/// `array_has($n, x)` and leaves untyped — as a list of `x`'s type, as
/// PostgreSQL does: a client binding a list (pgcli's `relkind = ANY(%s)`, an
/// ADBC `= ANY(?)`) gets a list. Only an untyped parameter whose element's
/// type is known is typed.
fn array_placeholders(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::{Expr, ExprSchemable};
    let typed = plan.transform_up_with_subqueries(|node| {
        let inputs = node.inputs();
        let [input] = inputs.as_slice() else {
            return Ok(Transformed::no(node));
        };
        let schema = input.schema().clone();
        node.map_expressions(|e| {
            e.transform_up(|e| {
                let Expr::ScalarFunction(mut f) = e else {
                    return Ok(Transformed::no(e));
                };
                if !matches!(f.name(), "array_has" | "list_has" | "array_contains")
                    || f.args.len() != 2
                {
                    return Ok(Transformed::no(Expr::ScalarFunction(f)));
                }
                let element = match (&f.args[0], &f.args[1]) {
                    (Expr::Placeholder(p), needle) if p.field.is_none() => {
                        match needle.get_type(&schema) {
                            Ok(t) if t != DataType::Null => t,
                            _ => return Ok(Transformed::no(Expr::ScalarFunction(f))),
                        }
                    }
                    _ => return Ok(Transformed::no(Expr::ScalarFunction(f))),
                };
                if let Expr::Placeholder(p) = &mut f.args[0] {
                    let list = DataType::new_list(element, true);
                    p.field = Some(Arc::new(Field::new(p.id.clone(), list, true)));
                }
                Ok(Transformed::yes(Expr::ScalarFunction(f)))
            })
        })
    })?;
    Ok(typed.data)
}

fn check_plan_size(plan: &LogicalPlan) -> Result<()> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut nodes = 0usize;
    plan.apply_with_subqueries(|_| {
        nodes += 1;
        Ok(if nodes > MAX_PLAN_NODES {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    if nodes > MAX_PLAN_NODES {
        return Err(EngineError::Query(
            datafusion::common::plan_datafusion_err!(
                "statement too complex: its plan has more than {MAX_PLAN_NODES} nodes (a common \
             table expression counts once for each use; split the statement, or materialize \
             the repeated part)"
            ),
        ));
    }
    Ok(())
}

fn check_complexity(sql: &str) -> Result<()> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let refuse = |what: String| {
        Err(EngineError::Query(
            datafusion::error::DataFusionError::Plan(what),
        ))
    };
    if sql.len() > MAX_STATEMENT_BYTES {
        return refuse(format!(
            "statement too large: {} bytes, at most {MAX_STATEMENT_BYTES}",
            sql.len()
        ));
    }
    // a syntax error is reported by the parser, with its position
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(());
    };
    let structural = tokens
        .iter()
        .filter(|t| match t {
            Token::Word(w) => w.keyword != Keyword::NoKeyword,
            Token::Number(..)
            | Token::Char(_)
            | Token::Comma
            | Token::Whitespace(_)
            | Token::Period
            | Token::SemiColon
            | Token::EOF
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_) => false,
            _ => true,
        })
        .count();
    let set_operations = tokens
        .iter()
        .filter(|t| {
            matches!(t, Token::Word(w) if matches!(w.keyword,
                Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::JOIN))
        })
        .count();
    if set_operations > MAX_SET_OPERATIONS {
        return refuse(format!(
            "statement too complex: {set_operations} set operations and joins, at most \
             {MAX_SET_OPERATIONS} (split it)"
        ));
    }
    if structural > MAX_OPERATORS {
        return refuse(format!(
            "statement too complex: {structural} operators, keywords and parentheses, at most \
             {MAX_OPERATORS} (split it, or use IN (…) for long lists of alternatives)"
        ));
    }
    Ok(())
}

/// Rewrites `?` placeholders to `$1`, `$2`, … in the order they appear;
/// whether the statement has parameters at all.
fn number_question_marks(statement: &mut Statement) -> bool {
    use datafusion::sql::sqlparser::ast::{Expr, Value, visit_expressions_mut};
    use std::ops::ControlFlow;
    let Statement::Statement(inner) = statement else {
        return false;
    };
    let (mut n, mut any) = (0, false);
    let _ = visit_expressions_mut(&mut **inner, |expr| {
        if let Expr::Value(v) = expr
            && let Value::Placeholder(p) = &v.value
        {
            any = true;
            if p == "?" {
                n += 1;
                v.value = Value::Placeholder(format!("${n}"));
            }
        }
        ControlFlow::<()>::Continue(())
    });
    any
}

/// A query as a front end hands it to [`Session::query`]: its SQL (or an
/// already parsed statement), the values bound to its parameters, the front
/// end's tag for it (to cancel it by) and when the request started.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    sql: String,
    statement: Option<Statement>,
    parameters: Option<Vec<datafusion::common::ScalarValue>>,
    parameters_text: String,
    tag: Option<String>,
    started: std::time::Instant,
}

impl QueryRequest {
    /// SQL holding exactly one statement, starting now.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            statement: None,
            parameters: None,
            parameters_text: String::new(),
            tag: None,
            started: std::time::Instant::now(),
        }
    }

    /// A statement already parsed (by [`Session::parse`]) from a script.
    pub fn parsed(statement: Statement) -> Self {
        Self {
            statement: Some(statement.clone()),
            ..Self::new(statement.to_string())
        }
    }

    /// With values for `$1`, `$2`, …; `text` is how the audit trail shows them.
    pub fn with_parameters(
        mut self,
        values: Vec<datafusion::common::ScalarValue>,
        text: impl Into<String>,
    ) -> Self {
        self.parameters = Some(values);
        self.parameters_text = text.into();
        self
    }

    /// With the front end's tag (cancel with [`crate::queries::QueryRegistry::cancel_tagged`]).
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Started at `started` (before the front end's own work on it).
    pub fn started_at(mut self, started: std::time::Instant) -> Self {
        self.started = started;
        self
    }
}

/// The parameters a statement's text declares: its highest `$n`, or its
/// number of `?`.
fn declared_parameters(statement: &Statement) -> usize {
    use datafusion::sql::sqlparser::ast::{Expr, Value, visit_expressions};
    use std::ops::ControlFlow;
    let Statement::Statement(inner) = statement else {
        return 0;
    };
    let (mut highest, mut questions) = (0usize, 0usize);
    let _ = visit_expressions(inner.as_ref(), |e| {
        if let Expr::Value(v) = e
            && let Value::Placeholder(p) = &v.value
        {
            if p == "?" {
                questions += 1;
            } else if let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                highest = highest.max(n);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    highest.max(questions)
}

/// `plan` with its parameters bound to `values`: as many as the statement
/// declares (`declared`, from its text) or the plan holds (its highest `$n`);
/// a parameter may be gone from the plan (a subquery over an empty catalog
/// answered before planning) and still be bound by the client.
fn bind(
    plan: LogicalPlan,
    values: Vec<datafusion::common::ScalarValue>,
    declared: usize,
) -> Result<LogicalPlan> {
    let parameters = plan
        .get_parameter_types()?
        .keys()
        .filter_map(|id| id.trim_start_matches('$').parse::<usize>().ok())
        .max()
        .unwrap_or(0)
        .max(declared);
    if parameters == 0 && values.is_empty() {
        return Ok(plan);
    }
    if values.is_empty() {
        return Err(EngineError::Query(
            datafusion::common::plan_datafusion_err!(
                "the statement has {parameters} parameter(s): bind them before executing"
            ),
        ));
    }
    // DataFusion ignores extra values; more values than parameters is a client's mistake
    if values.len() > parameters {
        return Err(EngineError::Query(
            datafusion::common::plan_datafusion_err!(
                "the statement has {parameters} parameter(s); {} values were bound",
                values.len()
            ),
        ));
    }
    Ok(plan.with_param_values(values)?)
}

/// One principal's SQL session. Cheap to create; not shared between principals.
pub struct Session {
    ctx: SessionContext,
    principal: Principal,
    permissions: SqlPermissions,
    requests: Arc<RequestCounts>,
    /// Datasets and views this principal may list but not read (`schema.table`).
    denied: std::collections::BTreeSet<String>,
    /// Datasets and views this principal may not even list: absent from its
    /// catalog, so naming one fails like a name that does not exist.
    hidden: std::collections::BTreeSet<String>,
    audit: Arc<crate::audit::AuditLog>,
    /// The client's address, for the audit trail.
    client: String,
    /// Per dataset, the columns masked for this principal.
    masked_columns: std::collections::BTreeMap<String, Vec<String>>,
    /// Where queries run when not here (a cluster), if anywhere.
    remote: Option<crate::remote::Routing>,
    queries: Arc<crate::queries::QueryRegistry>,
    admission: Arc<crate::limits::Admission>,
    light_query_scan: u64,
    lanes: Arc<crate::lanes::Lanes>,
    /// Whether the principal supervises (reads the audit log, sees and
    /// cancels every query): its queries may take the admission's kept slot.
    supervisor: bool,
    /// This principal's per-query limits.
    limits: crate::limits::Limits,
    /// The memory pool of this session's queries (its cap and peak).
    pool: Arc<crate::limits::QueryPool>,
    /// The lake root as object-store paths print it (`tmp/…/lake/`), cut from
    /// plans shown to users: file paths in `EXPLAIN` are relative to the lake.
    root_prefix: Arc<str>,
}

impl Session {
    /// Allows more than queries (the CLI allows everything; servers stay read-only).
    pub fn with_permissions(mut self, permissions: SqlPermissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// A timeout the client asked for (Postgres' `statement_timeout`): it can
    /// only shorten the one the server and the principal's roles set.
    pub fn with_client_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        if let Some(t) = timeout {
            self.limits.query_timeout =
                Some(self.limits.query_timeout.map_or(t, |mine| mine.min(t)));
        }
        self
    }

    /// Records the client's address in this session's audit records.
    pub fn with_client(mut self, client: impl Into<String>) -> Self {
        self.client = client.into();
        self
    }

    /// Appends `record` to the audit trail (on disk when this returns), with
    /// this session's user, roles and client, and — from `plan` — the datasets
    /// the request touched and the columns masked in them. An error (the
    /// record is not on disk) must fail the request: the trail fails closed.
    /// Queries are recorded by their lifecycle ([`Session::query`]); this is
    /// for the other kinds (`plan`, `prepare`, `metadata`).
    pub async fn audit(
        &self,
        record: crate::audit::AuditRecord,
        plan: Option<&LogicalPlan>,
    ) -> Result<()> {
        self.audit
            .record(self.stamped(record, plan))
            .await
            .map_err(|e| EngineError::Audit(e.to_string()))
    }

    /// [`Session::audit`] for a request whose requester is gone (its future
    /// dropped): the record is handed to the writer, nobody waits for it.
    pub(crate) fn audit_unwaited(&self, record: crate::audit::AuditRecord) {
        drop(self.audit.submit(self.stamped(record, None)));
    }

    /// `record` with this session's user, roles and client, and what `plan`
    /// touched.
    fn stamped(
        &self,
        mut record: crate::audit::AuditRecord,
        plan: Option<&LogicalPlan>,
    ) -> crate::audit::AuditRecord {
        if let Some(plan) = plan {
            (record.datasets, record.masked) = self.touched(plan);
            record.personal = crate::redact::plan_is_personal(plan, self.audit.redactor());
        } else if record.outcome != "ok"
            && matches!(
                record.kind.as_str(),
                "query" | "plan" | "prepare" | "ingest"
            )
        {
            // a request (or a delivery) that failed with no plan to say it uses
            // no personal column (it failed to plan) is recorded as if it did:
            // fail closed. Maintenance commands' records are citylake's own text.
            record.personal = true;
        }
        record.user = self.principal.user.clone();
        record.roles = self.principal.roles.join(",");
        record.client = self.client.clone();
        record
    }

    /// The datasets `plan` reads and the columns masked for this principal
    /// among them, each comma-separated.
    fn touched(&self, plan: &LogicalPlan) -> (String, String) {
        // the session's schema, read in place (cloning the state per query costs its registries)
        let default_schema = self
            .ctx
            .state_ref()
            .read()
            .config_options()
            .catalog
            .default_schema
            .clone();
        let datasets = datasets_of(plan, &default_schema);
        let masked: Vec<&str> = datasets
            .iter()
            .filter_map(|d| self.masked_columns.get(d))
            .flatten()
            .map(String::as_str)
            .collect();
        (datasets.join(","), masked.join(","))
    }

    /// Object-store requests made by this session's queries so far (snapshot
    /// before and after a query to see its own).
    pub fn object_store_requests(&self) -> RequestStats {
        self.requests.snapshot()
    }

    /// The session's evaluation settings (grade bands, over-completion threshold):
    /// the catalog's `[evaluation]`, as changed by `SET citylake.…`.
    pub fn evaluation_options(&self) -> citylake_udfs::finance::EvaluationOptions {
        citylake_udfs::finance::EvaluationOptions::of(self.ctx.state().config_options())
    }

    /// The session's DataFusion context (its governed catalog and functions),
    /// for the engine's own work beside queries (maintenance of Delta tables).
    pub(crate) fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Who this session runs as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Cancels this principal's running queries tagged `tag` (a front end's
    /// own handle on what it started: a ticket, a shell statement); how many.
    pub fn cancel_tagged(&self, tag: &str, why: &str) -> usize {
        self.queries.cancel_tagged(tag, &self.principal.user, why)
    }

    /// Splits SQL text into statements (syntax errors carry line and column).
    /// A text over [`MAX_STATEMENT_BYTES`] or with more than [`MAX_OPERATORS`]
    /// structural tokens is refused before it is parsed: a chain like
    /// `1 + 1 + … + 1` or `SELECT 1 UNION SELECT 1 …` parses without recursion
    /// into a tree so deep that planning it would exhaust a thread's stack, and
    /// every level of a tree needs at least one such token. (Nesting through
    /// parentheses is bounded by the parser's recursion limit.)
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        check_complexity(sql)?;
        let statements = DFParser::parse_sql(sql)?;
        Ok(statements.into_iter().collect())
    }

    /// Plans one statement, checking it against the session's permissions.
    /// Positional `?` placeholders (JDBC, ADBC) become `$1`, `$2`, … in order.
    /// A panic while planning ends this request with an internal error, not the
    /// process.
    pub async fn plan(&self, statement: Statement) -> Result<LogicalPlan> {
        contain_panics("planning", self.plan_unguarded(statement)).await
    }

    async fn plan_unguarded(&self, mut statement: Statement) -> Result<LogicalPlan> {
        let has_parameters = number_question_marks(&mut statement);
        // one copy of the session's state for the statement, as DataFusion's
        // own `sql` takes (a copy clones every registry of functions: taken
        // per step, they were a third of what citylake added to planning)
        let state = self.ctx.state();
        if let Statement::Statement(s) = &mut statement {
            // unqualified pg_catalog names, and reads of the catalogs that are
            // empty here (psql's `\d`), before checking and planning
            let aggregates = state.aggregate_functions();
            let tables = state.table_functions();
            let scalars = state.scalar_functions();
            let windows = state.window_functions();
            crate::pg_catalog::rewrite(
                s,
                &|name| aggregates.contains_key(name),
                &|name| tables.contains_key(name),
                &|name| {
                    scalars.contains_key(name)
                        || aggregates.contains_key(name)
                        || windows.contains_key(name)
                },
            );
        }
        check_cte_copies(&statement)?;
        let query = is_query(&statement);
        let permissions = self.permissions;
        if !(query || permissions.ddl || permissions.dml || permissions.statements) {
            return Err(EngineError::NotAllowed(
                "this session runs queries only (SELECT, WITH, VALUES, EXPLAIN); the lake is \
                 read-only here"
                    .into(),
            ));
        }
        self.check_access(&state, &statement, query)?;
        let plan = match state.statement_to_plan(statement).await {
            Ok(plan) => plan,
            Err(e) => return Err(self.suggest(e.into())),
        };
        check_plan_size(&plan)?;
        let plan = if has_parameters {
            array_placeholders(plan)?
        } else {
            plan
        };
        let options = SQLOptions::new()
            .with_allow_ddl(self.permissions.ddl)
            .with_allow_dml(self.permissions.dml)
            .with_allow_statements(self.permissions.statements);
        options
            .verify_plan(&plan)
            .map_err(|e| EngineError::NotAllowed(e.strip_backtrace().to_string()))?;
        Ok(plan)
    }

    /// Checks every table a statement names before it is planned: one the
    /// principal may list but not read is refused, naming it (PERMISSION_DENIED
    /// over Flight SQL); one it may not even list is [`EngineError::NotFound`],
    /// as is — in a query — one that does not exist (a created name in DDL is
    /// left to the planner, whose error for a missing table reads the same).
    fn check_access(&self, state: &SessionState, statement: &Statement, query: bool) -> Result<()> {
        let catalog = state.config_options().catalog.default_catalog.clone();
        let default_schema = state.config_options().catalog.default_schema.clone();
        for r in state.resolve_table_references(statement)? {
            // a table function (`generate_series(…)`) is named like a table
            if r.schema().is_none() && state.table_functions().contains_key(r.table()) {
                continue;
            }
            let resolved = r.clone().resolve(&catalog, &default_schema);
            let name = format!("{}.{}", resolved.schema, resolved.table);
            let ours = *resolved.catalog == *catalog;
            if ours && self.denied.contains(&name) {
                return Err(EngineError::NotAllowed(format!(
                    "permission denied: user `{}` may not read `{name}`",
                    self.principal.user
                )));
            }
            let hidden = ours && self.hidden.contains(&name);
            if hidden || (query && !self.ctx.table_exist(r).unwrap_or(false)) {
                return Err(EngineError::NotFound {
                    name: resolved.to_string(),
                    hidden,
                    suggestion: self.nearest_table(&name, &catalog),
                });
            }
        }
        Ok(())
    }

    /// A dataset named to a table function (`as_of`) that is missing or
    /// hidden, with the suggestion the same name in FROM gets.
    fn suggest(&self, e: EngineError) -> EngineError {
        let EngineError::NotFound {
            name,
            hidden,
            suggestion: None,
        } = e
        else {
            return e;
        };
        let catalog = self
            .ctx
            .state_ref()
            .read()
            .config_options()
            .catalog
            .default_catalog
            .clone();
        let suggestion = self.nearest_table(
            name.strip_prefix(&format!("{catalog}.")).unwrap_or(&name),
            &catalog,
        );
        EngineError::NotFound {
            name,
            hidden,
            suggestion,
        }
    }

    /// The `schema.table` of this session's catalog nearest to `name` — only
    /// names the principal may list (a hidden one is not in its catalog), so
    /// a hidden name gets the suggestion a missing one would.
    fn nearest_table(&self, name: &str, catalog: &str) -> Option<String> {
        let catalog = self.ctx.catalog(catalog)?;
        let mut visible: Vec<String> = catalog
            .schema_names()
            .into_iter()
            .filter(|s| s != "information_schema")
            .flat_map(|schema| {
                let tables = catalog
                    .schema(&schema)
                    .map(|s| s.table_names())
                    .unwrap_or_default();
                tables.into_iter().map(move |t| format!("{schema}.{t}"))
            })
            .filter(|candidate| !self.hidden.contains(candidate))
            .collect();
        visible.sort();
        let table = |n: &str| n.rsplit('.').next().unwrap_or(n).to_string();
        let wanted = name.to_lowercase();
        // the whole name, else the table alone (`segment_speed` for `traffic.segment_speed`)
        nearest(&wanted, visible.iter().map(String::as_str)).or_else(|| {
            let bare = nearest(
                &table(&wanted),
                visible.iter().map(|c| c.rsplit('.').next().unwrap_or(c)),
            )?;
            visible.into_iter().find(|c| table(c) == bare)
        })
    }

    /// Runs a query — the one path every front end takes (see
    /// [`crate::queries`]): it is registered (numbered, visible in
    /// `system.queries`), parsed, checked against the policy, planned, bound
    /// to its parameters, admitted (or refused when the queue is full) and
    /// executed under the principal's limits; its results stream batch by
    /// batch, and dropping the stream stops the work. However it ends —
    /// refused, failed while planning, or at the end of its stream — the
    /// engine records it once: audit record, `system.queries`, metrics, log.
    /// Its time counts from the request's start, so planning counts against
    /// the query timeout.
    pub async fn query(&self, request: QueryRequest) -> Result<SendableRecordBatchStream> {
        let QueryRequest {
            sql,
            statement,
            parameters,
            parameters_text,
            tag,
            started,
        } = request;
        let entry = self.queries.register(
            crate::queries::Submission {
                user: self.principal.user.clone(),
                roles: self.principal.roles.join(","),
                client: self.client.clone(),
                // a huge statement is kept as its start, length and hash
                sql: crate::audit::clip_request(&sql, self.audit.max_request_bytes()).into_owned(),
                parameters: parameters_text,
                tag,
                requests: Some(self.requests.clone()),
            },
            self.pool.clone(),
            started,
        );
        // a request dropped before its stream exists ends its query as dropped
        struct Pending<'a> {
            queries: &'a crate::queries::QueryRegistry,
            entry: Option<Arc<crate::queries::QueryEntry>>,
        }
        impl Drop for Pending<'_> {
            fn drop(&mut self) {
                if let Some(entry) = self.entry.take() {
                    // nobody is left to wait for the record: it is written all the same
                    drop(self.queries.end(
                        &entry,
                        crate::queries::Outcome::Dropped,
                        "dropped before it ran".into(),
                    ));
                }
            }
        }
        let mut pending = Pending {
            queries: &self.queries,
            entry: Some(entry.clone()),
        };
        let planned = async {
            let statement = match statement {
                Some(statement) => statement,
                None => self.single_statement(&sql)?,
            };
            let declared = declared_parameters(&statement);
            let plan = self.plan(statement).await?;
            bind(plan, parameters.unwrap_or_default(), declared)
        }
        .await;
        let plan = match planned {
            Ok(plan) => plan,
            Err(e) => {
                pending.entry = None;
                return Err(self.failed(&entry, e).await);
            }
        };
        let (datasets, masked) = self.touched(&plan);
        entry.set_touched(datasets, masked);
        if crate::redact::plan_is_personal(&plan, self.audit.redactor()) {
            entry.make_personal(self.audit.redactor());
        } else {
            entry.not_personal();
        }
        // A slot first, of either kind: the physical plan, which says whether
        // the query is light (its files to scan), is built under it — building
        // it reads files (Parquet footers, a Delta log, the quality checks),
        // work that must not escape the admission limits (red team).
        entry.set_state(crate::queries::QueryState::Queued);
        let first = match self.admit(&entry, true).await {
            Ok(p) => p,
            Err(e) => {
                pending.entry = None;
                return Err(self.failed(&entry, EngineError::Query(e)).await);
            }
        };
        // (each plan weighed once: the weight is a walk of the whole plan)
        let weighed = |p: Prepared| {
            let light = p.is_light(self.light_query_scan);
            (p, light)
        };
        let planned = contain_panics("planning the query", self.prepare(plan.clone()))
            .await
            .map(weighed);
        let (prepared, permit) = match planned {
            // a heavy query planned in a light slot waits for a general one,
            // and is planned again there: its data (a Delta table's snapshot)
            // is read as of when it runs, not as of before it waited (an
            // erasure committed meanwhile is not read around)
            Ok((prepared, false)) if first.is_light() => {
                drop(prepared);
                drop(first);
                entry.set_lane(false);
                let permit = match self.admit(&entry, false).await {
                    Ok(p) => p,
                    Err(e) => {
                        pending.entry = None;
                        return Err(self.failed(&entry, EngineError::Query(e)).await);
                    }
                };
                let planned = contain_panics("planning the query", self.prepare(plan))
                    .await
                    .map(weighed);
                (planned, permit)
            }
            planned => (planned, first),
        };
        let (prepared, light) = match prepared {
            Ok(weighed) => weighed,
            Err(e) => {
                pending.entry = None;
                return Err(self.failed(&entry, e).await);
            }
        };
        entry.set_lane(light);
        let stop = entry.stopped(self.limits.query_timeout);
        entry.executing();
        let started = contain_panics("starting the query", self.start(prepared, light, stop)).await;
        pending.entry = None;
        match started {
            Ok((stream, physical, ran_on)) => {
                entry.set_ran_on(ran_on);
                Ok(Box::pin(crate::queries::Tracked::new(
                    stream,
                    self.queries.clone(),
                    entry,
                    self.limits.clone(),
                    physical,
                    permit,
                )))
            }
            Err(e) => Err(self.failed(&entry, e).await),
        }
    }

    /// A slot for `entry`'s query (`light`: a light one will do), or the
    /// refusal; a cancel reaches a query waiting for its slot too.
    async fn admit(
        &self,
        entry: &crate::queries::QueryEntry,
        light: bool,
    ) -> std::result::Result<crate::limits::Permit, datafusion::error::DataFusionError> {
        let waiting = std::time::Instant::now();
        let admitted = tokio::select! {
            admitted = self.admission.admit(&self.principal.user, self.supervisor, light) => {
                admitted.map_err(|e| e.into_datafusion())
            }
            () = entry.cancelled() => {
                Err(crate::queries::Cancelled(entry.cancelled_by()).into_datafusion())
            }
        };
        // (system.queries' `queued_ms`)
        entry.waited(waiting.elapsed());
        admitted
    }

    /// Ends `entry` with the outcome of `e` and waits for its audit record:
    /// the error to answer with (the audit trail's own, if the record could not
    /// be written).
    async fn failed(&self, entry: &Arc<crate::queries::QueryEntry>, e: EngineError) -> EngineError {
        let (outcome, recorded) = crate::queries::Outcome::of_error(&e);
        // a missing name and a hidden one are told alike, and so shown to
        // their user alike (the record says which, and may withhold a
        // missing one's message as it does a failed request's)
        if matches!(e, EngineError::NotFound { .. }) {
            entry.tell(crate::queries::Outcome::Error, e.to_string());
        }
        if let Some(ack) = self.queries.end(entry, outcome, recorded)
            && let Err(audit) = ack.await
        {
            return EngineError::Audit(audit.to_string());
        }
        e
    }

    /// The one statement of `sql`.
    fn single_statement(&self, sql: &str) -> Result<Statement> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(EngineError::Query(
                datafusion::common::plan_datafusion_err!(
                    "expected exactly one SQL statement, got {}",
                    statements.len()
                ),
            ));
        }
        Ok(statements.remove(0))
    }

    /// Plans a query to the end, not yet running it: for the cluster when
    /// there is one, it takes the plan (optimized here under this principal's
    /// policy) and the plan is worth a job ([`crate::remote::Routing`]), else
    /// the local physical plan.
    async fn prepare(&self, plan: LogicalPlan) -> Result<Prepared> {
        let mut ran_on = "here".to_string();
        // a physical plan built to weigh the query, run here if it stays
        let mut weighed = None;
        if let Some(routing) = &self.remote
            && crate::remote::is_query(&plan)
        {
            let remote = &routing.executor;
            let state = self.ctx.state();
            let optimized = state.optimize(&plan)?;
            let stays = match remote.accepts(&optimized) {
                // every query the cluster takes goes there: nothing to weigh
                Ok(()) if routing.min_scan_bytes == 0 => None,
                Ok(()) => {
                    let physical = state
                        .query_planner()
                        .create_physical_plan(&optimized, &state)
                        .await?;
                    let why = routing.route(physical.as_ref()).err();
                    weighed = Some(physical);
                    why
                }
                Err(why) => Some(why),
            };
            let Some(why) = stays else {
                return Ok(Prepared::Remote(Box::new(state), optimized));
            };
            tracing::debug!(reason = %why, "query runs locally");
            ran_on = format!("here: {why}");
        }
        let explain = matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
        let physical = match weighed {
            Some(physical) => physical,
            None => {
                let df = self.ctx.execute_logical_plan(plan).await?;
                df.create_physical_plan().await?
            }
        };
        Ok(Prepared::Local {
            physical,
            explain,
            ran_on,
        })
    }

    /// Starts a prepared query, here (in its lane: `light` or general) or on
    /// the cluster; the local physical plan is returned for its
    /// scan and spill figures, and where the query runs (for `system.queries`).
    async fn start(
        &self,
        prepared: Prepared,
        light: bool,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(
        SendableRecordBatchStream,
        Option<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
        String,
    )> {
        let (physical, explain, ran_on) = match prepared {
            Prepared::Remote(state, optimized) => {
                let routing = self.remote.as_ref().expect("prepared for the cluster");
                tracing::debug!(
                    cluster = routing.executor.location(),
                    "query runs on the cluster"
                );
                let stream = routing.executor.execute(&state, optimized).await?;
                // (not the scheduler's address: users see their own queries' `ran_on`)
                return Ok((stream, None, "cluster".to_string()));
            }
            Prepared::Local {
                physical,
                explain,
                ran_on,
            } => (physical, explain, ran_on),
        };
        // off the threads serving the protocols; long scans at a lower priority
        let mut stream = self
            .lanes
            .execute(light, physical.clone(), self.ctx.task_ctx(), stop)?;
        if explain && !self.root_prefix.is_empty() {
            stream = relative_paths(stream, self.root_prefix.clone());
        }
        Ok((contain_stream_panics(stream), Some(physical), ran_on))
    }

    /// Parses and plans SQL holding exactly one statement (without running
    /// it: a Flight SQL FlightInfo, a prepared statement's schemas).
    pub async fn plan_sql(&self, sql: &str) -> Result<LogicalPlan> {
        let statement = self.single_statement(sql)?;
        self.plan(statement).await
    }

    /// Runs SQL holding exactly one statement (see [`Session::query`]).
    pub async fn sql(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        self.query(QueryRequest::new(sql)).await
    }

    /// The catalog names this session sees, sorted.
    pub fn catalog_names(&self) -> Vec<String> {
        let mut names = self.ctx.catalog_names();
        names.sort();
        names
    }

    /// Every (catalog, schema) this session can see, sorted.
    pub fn schemas(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        for catalog_name in self.ctx.catalog_names() {
            if let Some(catalog) = self.ctx.catalog(&catalog_name) {
                for schema in catalog.schema_names() {
                    out.push((catalog_name.clone(), schema));
                }
            }
        }
        out.sort();
        out
    }

    /// Every table this session can see, sorted by catalog, schema and name.
    pub async fn tables(&self) -> Result<Vec<TableInfo>> {
        let mut out = vec![];
        for catalog_name in self.ctx.catalog_names() {
            let Some(catalog) = self.ctx.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for table_name in schema.table_names() {
                    if let Some(table) = schema.table(&table_name).await? {
                        out.push(TableInfo {
                            catalog: catalog_name.clone(),
                            schema: schema_name.clone(),
                            table: table_name,
                            table_type: match table.table_type() {
                                datafusion::datasource::TableType::View => "VIEW",
                                _ => "TABLE",
                            },
                            columns: table.schema(),
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.catalog, &a.schema, &a.table).cmp(&(&b.catalog, &b.schema, &b.table))
        });
        Ok(out)
    }
}

/// A table as metadata commands list it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub catalog: String,
    pub schema: String,
    pub table: String,
    /// `TABLE` or `VIEW`.
    pub table_type: &'static str,
    pub columns: datafusion::arrow::datatypes::SchemaRef,
}

/// A query planned to the end and not yet started ([`Session::prepare`]).
enum Prepared {
    /// For the cluster: the session state it was optimized in, and the plan.
    Remote(Box<SessionState>, LogicalPlan),
    /// To run here.
    Local {
        physical: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        /// Whether it is `EXPLAIN` (its text names files: made relative).
        explain: bool,
        ran_on: String,
    },
}

impl Prepared {
    /// Whether the query is light for admission: it runs here and its
    /// physical plan scans fewer than `threshold` bytes of files.
    fn is_light(&self, threshold: u64) -> bool {
        match self {
            Prepared::Remote(..) => false,
            Prepared::Local { physical, .. } => {
                crate::remote::scan_bytes(physical.as_ref()) < threshold
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dataset listed but not readable is refused by its provider too: a
    /// plan that never went through the statement's name check (the
    /// DataFrame API on the session's own context) reads nothing.
    /// An engine over a small generated lake in `dir`, its configuration
    /// changed by `configure`.
    async fn engine_over_a_lake(
        dir: &std::path::Path,
        configure: impl FnOnce(&mut EngineConfig),
    ) -> Engine {
        citylake_datasets::generate(
            &citylake_datasets::GenerateOptions::new(0.01, dir),
            &citylake_datasets::NoProgress,
        )
        .unwrap();
        let mut config = EngineConfig::new(dir.join("catalog.toml"));
        config.audit_dir = Some(dir.join("audit"));
        configure(&mut config);
        Engine::new(config).await.unwrap()
    }

    #[tokio::test]
    async fn a_denied_dataset_refuses_to_scan_whatever_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine_over_a_lake(dir.path(), |_| ()).await;
        let auditor = Principal {
            user: "audrey".into(),
            roles: vec!["auditor".into()],
            department: None,
            attributes: Default::default(),
        };
        let session = engine.session(auditor);
        // listed: its schema is there for metadata
        let table = session.ctx.table("hotline.cases").await.unwrap();
        assert!(table.schema().fields().len() > 3);
        // refused when scanned, with the dataset and the user named
        let err = table.collect().await.unwrap_err();
        let denied = match err.find_root() {
            datafusion::error::DataFusionError::External(e) => {
                e.downcast_ref::<crate::governance::AccessDenied>()
            }
            _ => None,
        }
        .unwrap_or_else(|| panic!("not an access refusal: {err}"));
        assert_eq!(denied.dataset, "hotline.cases");
        assert_eq!(denied.user, "audrey");
        // and through SQL the statement check answers first, the same way
        let err = session
            .sql("SELECT count(*) FROM hotline.cases")
            .await
            .err()
            .unwrap();
        assert!(matches!(err, EngineError::NotAllowed(_)), "{err}");
    }

    /// `system.queries` tells a query's time waiting for a slot from its
    /// planning: a query that waited for the one slot behind another shows
    /// the wait as `queued_ms`, and `planning_ms` is the rest until it ran.
    #[tokio::test]
    async fn system_queries_tells_the_wait_for_a_slot_from_planning() {
        use futures::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        // one slot for everyone (the other is kept for supervisors), none for light queries
        let engine = engine_over_a_lake(dir.path(), |config| {
            config.max_concurrent_queries = 2;
            config.light_query_slots = 0;
        })
        .await;
        let analyst = Principal {
            user: "ana".into(),
            roles: vec!["analyst".into()],
            department: None,
            attributes: Default::default(),
        };
        // the first holds the slot while its stream is open
        let first = engine
            .session(analyst.clone())
            .sql("SELECT 1")
            .await
            .unwrap();
        let second = {
            let session = engine.session(analyst);
            tokio::spawn(async move {
                let stream = session.sql("SELECT 2").await.unwrap();
                stream.try_collect::<Vec<_>>().await.unwrap()
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        drop(first);
        second.await.unwrap();
        let batches = engine
            .session(Principal::local_admin())
            .sql(
                "SELECT queued_ms, planning_ms, duration_ms FROM system.queries \
                 WHERE sql = 'SELECT 2'",
            )
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Float64Type;
        let value = |i: usize| batches[0].column(i).as_primitive::<Float64Type>().value(0);
        let (queued, planning, duration) = (value(0), value(1), value(2));
        assert!(queued >= 250.0, "queued {queued} ms");
        assert!(batches[0].column(1).is_valid(0) && planning >= 0.0);
        assert!(
            queued + planning <= duration,
            "{queued} + {planning} > {duration}"
        );
    }
}
