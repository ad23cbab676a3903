//! Delta Lake datasets (`format = "delta"`): a dataset whose location is a
//! Delta table, read through delta-rs on the lake's own object store.
//!
//! [`DeltaDataset`] is the table provider the catalog registers for such a
//! dataset. Its schema is fixed when the catalog loads (declared columns
//! checked against the table's, as for Parquet). Each scan of the latest
//! version first asks the store whether the commit after the snapshot it holds
//! exists (one HEAD of `_delta_log/<version + 1>.json`; Delta writes every
//! commit there, put-if-absent) and reads the log again only then, so a
//! committed delivery is seen by the next query whole and a half-written one
//! never, while a table nobody writes to costs one metadata request per scan
//! instead of a log replay. A held snapshot older than [`LATEST_MAX_AGE`] is
//! read again in any case: log cleanup may have removed the commit file the
//! check looks for. A provider pinned to a version or a time
//! ([`DeltaDataset::at`]) reads that snapshot instead: time travel.
//!
//! The same type writes: [`DeltaDataset::append`] (one transaction, retried
//! over concurrent appends by Delta's optimistic concurrency),
//! [`DeltaDataset::delete`], [`DeltaDataset::vacuum`] and
//! [`DeltaDataset::optimize`]. Who may call them is the engine's concern.
//!
//! Personal information stays out of the table's log: the file statistics the
//! log keeps (minimum and maximum per column) are collected only for columns
//! without a PII tag (`delta.dataSkippingStatsColumns`), so a deleted
//! person's value cannot survive in a commit after its files are vacuumed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CastExpr, Column as ColumnExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use deltalake_core::delta_datafusion::{DeltaScanConfig, DeltaScanNext};
use deltalake_core::kernel::transaction::CommitProperties;
use deltalake_core::kernel::{EagerSnapshot, Snapshot};
use deltalake_core::logstore::LogStoreRef;
use deltalake_core::protocol::SaveMode;
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError, TableProperty};
use object_store::ObjectStore;
use url::Url;

/// DataFusion's error type, for crates that see it only through this module.
pub use datafusion::error as datafusion_error;
pub use deltalake_core::kernel::Version;

/// The commit metadata key naming citylake's operation (`erase`, `retention`, …).
pub const OPERATION_KEY: &str = "citylake.operation";
/// Operations that delete records on purpose: versions before them are not read.
pub const ERASING_OPERATIONS: [&str; 2] = ["erase", "retention"];

/// How long a scan of the latest version may rely on a held snapshot plus the
/// check that no later commit exists, before it reads the log again anyway.
pub const LATEST_MAX_AGE: Duration = Duration::from_secs(60);

/// Which snapshot of a Delta table a provider reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The latest, read afresh by every scan.
    Latest,
    /// A committed version.
    Version(Version),
    /// The latest version committed at or before this time (milliseconds
    /// since the epoch, UTC).
    Timestamp(i64),
}

/// A Delta table of the lake: the catalog's provider for a `format = "delta"`
/// dataset, and the handle its writes go through.
#[derive(Debug, Clone)]
pub struct DeltaDataset {
    /// `schema.table`, for errors.
    name: String,
    log_store: LogStoreRef,
    /// The table's schema as the catalog loaded it (declared types applied).
    schema: SchemaRef,
    as_of: AsOf,
    /// The latest snapshot read, with its files, and when it was read; shared
    /// by every clone of this provider (time-travel ones included).
    latest: Arc<Mutex<Option<Held>>>,
    /// How its files are scanned directly ([`crate::delta_files`]); `None`
    /// for a table URL that path cannot take (delta-rs's scan reads it).
    files: Option<Arc<crate::delta_files::DeltaFiles>>,
    /// The latest snapshot's files as last listed for a direct scan, with
    /// their statistics (shared by every clone, as `latest` is).
    listed: Arc<Mutex<Option<HeldListing>>>,
}

/// A snapshot's files as listed for a direct scan, with the snapshot.
type HeldListing = (Arc<EagerSnapshot>, Arc<crate::delta_files::Listed>);

/// A latest snapshot and when its log was read.
type Held = (Arc<EagerSnapshot>, Instant);

/// The snapshot a scan reads, files in memory, and whether it is the held
/// latest one (or a past one, time travel).
struct ScanSnapshot {
    snapshot: Arc<EagerSnapshot>,
    latest: bool,
}

/// A failure of a Delta table operation, as a DataFusion error naming the dataset.
fn delta_err(name: &str, e: DeltaTableError) -> DataFusionError {
    match e {
        DeltaTableError::Arrow { source } => DataFusionError::ArrowError(Box::new(source), None),
        DeltaTableError::ObjectStore { source } => DataFusionError::ObjectStore(Box::new(source)),
        other => DataFusionError::External(format!("Delta table `{name}`: {other}").into()),
    }
}

/// The log store of the Delta table at `table_url`, over `store` — the
/// object store the runtime registered for the table's scheme and bucket
/// (`/` at its root).
pub fn log_store(store: Arc<dyn ObjectStore>, table_url: &Url) -> DfResult<LogStoreRef> {
    register_schemes();
    let url = directory_url(table_url);
    let table = DeltaTableBuilder::from_url(url.clone())
        .and_then(|b| b.with_storage_backend(store, url.clone()).build())
        .map_err(|e| delta_err(url.as_str(), e))?;
    Ok(table.log_store())
}

/// delta-rs's default log store for every scheme the lake's stores serve.
/// delta-rs knows `file://` by itself and `s3://` only through its AWS crate,
/// which would bring a second S3 client; citylake hands it the lake's own
/// store instead, and the default log store commits with a conditional put
/// (a new commit file is created only if absent), which S3 offers.
#[derive(Debug)]
struct LakeLogStores;

impl deltalake_core::logstore::LogStoreFactory for LakeLogStores {
    fn with_options(
        &self,
        prefixed_store: deltalake_core::logstore::ObjectStoreRef,
        root_store: deltalake_core::logstore::ObjectStoreRef,
        location: &Url,
        options: &deltalake_core::logstore::StorageConfig,
    ) -> deltalake_core::DeltaResult<LogStoreRef> {
        Ok(deltalake_core::logstore::default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_schemes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let factories = deltalake_core::logstore::logstore_factories();
        for scheme in ["s3://", "s3a://"] {
            let url = Url::parse(scheme).expect("a scheme is a URL");
            if !factories.contains_key(&url) {
                factories.insert(url, Arc::new(LakeLogStores));
            }
        }
    });
}

/// `url` ending in `/` (delta-rs joins paths onto it).
fn directory_url(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    url
}

impl DeltaDataset {
    /// The dataset `name` over `log_store`, with the schema the catalog settled on.
    pub fn new(name: impl Into<String>, log_store: LogStoreRef, schema: SchemaRef) -> Self {
        let files = crate::delta_files::DeltaFiles::new(log_store.config().location())
            .ok()
            .map(Arc::new);
        Self {
            name: name.into(),
            log_store,
            schema,
            as_of: AsOf::Latest,
            latest: Arc::default(),
            files,
            listed: Arc::default(),
        }
    }

    /// `schema.table`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The snapshot this provider reads.
    pub fn as_of(&self) -> AsOf {
        self.as_of
    }

    /// The same dataset read as of a past version or time (time travel). The
    /// schema stays the current one; a version whose schema differs is an
    /// error when scanned.
    pub fn at(&self, as_of: AsOf) -> Self {
        Self {
            as_of,
            ..self.clone()
        }
    }

    /// The table's latest snapshot (its log read now).
    pub async fn latest_snapshot(log_store: &LogStoreRef, name: &str) -> DfResult<Snapshot> {
        Snapshot::try_new(log_store.as_ref(), None)
            .await
            .map_err(|e| delta_err(name, e))
    }

    /// The version this provider reads now: the latest for [`AsOf::Latest`].
    pub async fn resolve_version(&self) -> DfResult<Version> {
        match self.as_of {
            AsOf::Version(v) => Ok(v),
            AsOf::Latest => Ok(self.latest().await?.version()),
            AsOf::Timestamp(ms) => self.version_at(ms).await,
        }
    }

    /// The latest version committed at or before `ms` (milliseconds since the epoch).
    async fn version_at(&self, ms: i64) -> DfResult<Version> {
        let when = chrono::DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| DataFusionError::Plan(format!("timestamp {ms} ms is out of range")))?;
        let none = || {
            DataFusionError::Plan(format!(
                "`{}` has no version committed at or before {when}",
                self.name
            ))
        };
        let mut table = DeltaTable::new(self.log_store.clone());
        table.load_with_datetime(when).await.map_err(|e| match e {
            DeltaTableError::NotATable(_) | DeltaTableError::InvalidVersion(_) => none(),
            e => delta_err(&self.name, e),
        })?;
        let version = table.version().ok_or_else(none)?;
        // delta-rs settles on the first version for a time before it: that
        // version was not there yet
        let committed = table
            .snapshot()
            .ok()
            .and_then(|s| s.version_timestamp(version));
        if committed.is_some_and(|t| t > ms) {
            return Err(none());
        }
        Ok(version)
    }

    /// The latest snapshot, files included: the held one while no later
    /// commit exists and it is younger than [`LATEST_MAX_AGE`], else the log
    /// read again.
    async fn latest(&self) -> DfResult<Arc<EagerSnapshot>> {
        let held = self.latest.lock().expect("not poisoned").clone();
        if let Some((snapshot, read)) = held
            && read.elapsed() < LATEST_MAX_AGE
        {
            use object_store::ObjectStoreExt;
            let next = object_store::path::Path::from(format!(
                "_delta_log/{:020}.json",
                snapshot.version() + 1
            ));
            match self.log_store.object_store(None).head(&next).await {
                Err(object_store::Error::NotFound { .. }) => return Ok(snapshot),
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let fresh = Arc::new(
            EagerSnapshot::try_new(self.log_store.as_ref(), None)
                .await
                .map_err(|e| delta_err(&self.name, e))?,
        );
        let mut slot = self.latest.lock().expect("not poisoned");
        // two scans may read the log at once: the newer snapshot stays
        if slot
            .as_ref()
            .is_none_or(|(held, _)| held.version() <= fresh.version())
        {
            *slot = Some((fresh.clone(), Instant::now()));
        }
        Ok(fresh)
    }

    async fn snapshot(&self) -> DfResult<ScanSnapshot> {
        let version = match self.as_of {
            AsOf::Latest => {
                return Ok(ScanSnapshot {
                    snapshot: self.latest().await?,
                    latest: true,
                });
            }
            AsOf::Version(v) => v,
            AsOf::Timestamp(ms) => self.version_at(ms).await?,
        };
        // a version past the latest is refused here: the kernel would list
        // and search the log for it (a version near 2^63 ran for minutes)
        let latest = self.latest().await?.version();
        if version > latest {
            return Err(DataFusionError::Plan(format!(
                "`{}` has no version {version}",
                self.name
            )));
        }
        let snapshot = EagerSnapshot::try_new(self.log_store.as_ref(), Some(version))
            .await
            .map_err(|e| match e {
                DeltaTableError::InvalidVersion(_) | DeltaTableError::NotATable(_) => {
                    DataFusionError::Plan(format!("`{}` has no version {version}", self.name))
                }
                e if e.to_string().contains("version") => {
                    DataFusionError::Plan(format!("`{}` has no version {version} ({e})", self.name))
                }
                e => delta_err(&self.name, e),
            })?;
        self.refuse_before_erasure(version, latest).await?;
        Ok(ScanSnapshot {
            snapshot: Arc::new(snapshot),
            latest: false,
        })
    }

    /// The files of `scan` listed for a direct scan: the latest snapshot's
    /// listing is kept until a later one replaces it, and a new listing reuses
    /// the statistics of the files it already held. `None`: the snapshot is
    /// for delta-rs's scan to read.
    async fn listed(
        &self,
        state: &dyn Session,
        files: &crate::delta_files::DeltaFiles,
        scan: &ScanSnapshot,
    ) -> DfResult<Option<Arc<crate::delta_files::Listed>>> {
        if !crate::delta_files::DeltaFiles::readable(&scan.snapshot) {
            return Ok(None);
        }
        let held = self.listed.lock().expect("not poisoned").clone();
        // the listing of this very snapshot (a table made again may repeat a version)
        if scan.latest
            && let Some((snapshot, listed)) = &held
            && Arc::ptr_eq(snapshot, &scan.snapshot)
        {
            return Ok(Some(listed.clone()));
        }
        let Some(listed) = files
            .list(
                state,
                &scan.snapshot,
                &self.schema,
                held.as_ref().map(|(_, l)| l.as_ref()),
            )
            .await?
        else {
            return Ok(None);
        };
        let listed = Arc::new(listed);
        if scan.latest {
            let mut slot = self.listed.lock().expect("not poisoned");
            if slot
                .as_ref()
                .is_none_or(|(_, held)| held.version <= listed.version)
            {
                *slot = Some((scan.snapshot.clone(), listed.clone()));
            }
        }
        Ok(Some(listed))
    }

    /// Refuses a past version older than an erasure or a retention deletion:
    /// what was deleted on purpose is not read back through time travel, even
    /// while its files are kept (`--keep-old-files`). The commits after `version`
    /// are read for the mark citylake puts in such a commit; a commit whose log
    /// entry is gone (log cleanup) cannot be checked, so the read is refused
    /// too (fail closed).
    async fn refuse_before_erasure(&self, version: Version, latest: Version) -> DfResult<()> {
        use object_store::ObjectStoreExt;
        let store = self.log_store.object_store(None);
        for later in version + 1..=latest {
            let path = object_store::path::Path::from(format!("_delta_log/{later:020}.json"));
            let bytes = match store.get(&path).await {
                Ok(got) => got.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(DataFusionError::Plan(format!(
                        "`{}` version {version} cannot be read: the log entry of version {later} is \
                         gone, so it cannot be told whether records were erased since",
                        self.name
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let text = String::from_utf8_lossy(&bytes);
            if ERASING_OPERATIONS
                .iter()
                .any(|op| text.contains(&format!("\"{OPERATION_KEY}\":\"{op}\"")))
            {
                return Err(DataFusionError::Plan(format!(
                    "`{}` version {version} is older than version {later}, which erased records \
                     (on request or by retention): versions before it are not read",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// The table opened at its latest version, for a write.
    async fn open_latest(&self) -> DfResult<DeltaTable> {
        let mut table = DeltaTable::new(self.log_store.clone());
        table.load().await.map_err(|e| delta_err(&self.name, e))?;
        Ok(table)
    }

    /// Appends `batches` as one transaction and returns the version it made.
    /// Each batch is cast to the table's own types first (text layouts, wider
    /// integers); a value that does not fit is an error and nothing is written.
    /// `metadata` goes into the commit (who, which request).
    pub async fn append(
        &self,
        batches: Vec<RecordBatch>,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> DfResult<Version> {
        let table = self.open_latest().await?;
        let target = table
            .snapshot()
            .map_err(|e| delta_err(&self.name, e))?
            .snapshot()
            .arrow_schema();
        let batches = batches
            .into_iter()
            .map(|b| cast_batch(&b, &target))
            .collect::<DfResult<Vec<_>>>()?;
        let table = table
            .write(batches)
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(CommitProperties::default().with_metadata(metadata))
            .await
            .map_err(|e| delta_err(&self.name, e))?;
        table
            .version()
            .ok_or_else(|| DataFusionError::Internal("a write without a version".into()))
    }

    /// Deletes the rows where `predicate` holds (one transaction); returns the
    /// version made and the rows deleted. The predicate may call DataFusion's
    /// built-in functions (delta-rs plans the delete in a session of its own,
    /// with its planner).
    pub async fn delete(
        &self,
        predicate: Expr,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> DfResult<(Version, u64)> {
        let table = self.open_latest().await?;
        let (table, metrics) = table
            .delete()
            .with_predicate(predicate)
            .with_commit_properties(CommitProperties::default().with_metadata(metadata))
            .await
            .map_err(|e| delta_err(&self.name, e))?;
        let version = table
            .version()
            .ok_or_else(|| DataFusionError::Internal("a delete without a version".into()))?;
        Ok((version, metrics.num_deleted_rows.unwrap_or(0) as u64))
    }

    /// Removes the files no version newer than `retention` ago reads; returns
    /// their paths (what would go, with `dry_run`).
    pub async fn vacuum(
        &self,
        retention: chrono::Duration,
        dry_run: bool,
    ) -> DfResult<Vec<String>> {
        let table = self.open_latest().await?;
        let (_, metrics) = table
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_dry_run(dry_run)
            .await
            .map_err(|e| delta_err(&self.name, e))?;
        Ok(metrics.files_deleted)
    }

    /// Compacts small files into larger ones (Delta's OPTIMIZE); returns the
    /// files removed and added.
    pub async fn optimize(&self) -> DfResult<(u64, u64)> {
        let table = self.open_latest().await?;
        let (_, metrics) = table
            .optimize()
            .await
            .map_err(|e| delta_err(&self.name, e))?;
        Ok((metrics.num_files_removed, metrics.num_files_added))
    }

    /// Every data file of the table's directory, live or not (what a check
    /// that a value is gone from the files must read).
    pub async fn all_data_files(&self) -> DfResult<Vec<object_store::ObjectMeta>> {
        use futures::TryStreamExt;
        let store = self.log_store.object_store(None);
        let files: Vec<_> = store.list(None).try_collect().await?;
        Ok(files
            .into_iter()
            .filter(|o| o.location.extension() == Some("parquet"))
            .filter(|o| !o.location.as_ref().starts_with("_delta_log"))
            .collect())
    }

    /// Every file of the table's log (commits and checkpoints).
    pub async fn log_files(&self) -> DfResult<Vec<object_store::ObjectMeta>> {
        use futures::TryStreamExt;
        let store = self.log_store.object_store(None);
        let files: Vec<_> = store
            .list(Some(&object_store::path::Path::from("_delta_log")))
            .try_collect()
            .await?;
        Ok(files)
    }

    /// The table's object store, rooted at the table's directory.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.log_store.object_store(None)
    }
}

/// `batch` with each column cast to `target`'s type of the same name, in
/// `target`'s order; a column `target` has and `batch` lacks is NULL.
fn cast_batch(batch: &RecordBatch, target: &SchemaRef) -> DfResult<RecordBatch> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => Ok(cast_with_options(c, f.data_type(), &options)?),
            None => Ok(datafusion::arrow::array::new_null_array(
                f.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}

#[async_trait::async_trait]
impl TableProvider for DeltaDataset {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // used to skip files and row groups; DataFusion still applies each
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let scan = self.snapshot().await?;
        let snapshot = &scan.snapshot;
        let theirs = snapshot.arrow_schema();
        // the columns this provider promised, by name and position
        let mut problems = vec![];
        for (i, f) in self.schema.fields().iter().enumerate() {
            match theirs.fields().get(i) {
                Some(t)
                    if t.name() == f.name()
                        && crate::columns::compatible(f.data_type(), t.data_type()) => {}
                Some(t) => problems.push(format!(
                    "column {} is `{}` {} in the table, `{}` {} in the catalog",
                    i + 1,
                    t.name(),
                    t.data_type(),
                    f.name(),
                    f.data_type()
                )),
                None => problems.push(format!("column `{}` is missing", f.name())),
            }
        }
        if !problems.is_empty() {
            return Err(DataFusionError::Plan(format!(
                "Delta table `{}` at version {} has another schema than when the catalog loaded: {}",
                self.name,
                snapshot.version(),
                problems.join("; ")
            )));
        }
        if let Some(files) = &self.files
            && let Some(listed) = self.listed(state, files, &scan).await?
        {
            return files
                .scan(state, &listed, &self.schema, projection, filters, limit)
                .await;
        }
        // read as the catalog's schema: text as the session reads Parquet text
        // and partition values as plain columns (delta-rs would build a
        // dictionary row by row, then be cast back: a fifth of a cockpit
        // query's time). The files are read through the session's object
        // store for the lake (the one this table's log store wraps).
        let config = DeltaScanConfig::new_from_session(state)
            .with_wrap_partition_values(false)
            .with_schema(self.schema.clone());
        let provider = DeltaScanNext::new(scan.snapshot.clone(), config)?;
        let plan = provider.scan(state, projection, filters, limit).await?;
        // the table's own types (Delta stores text as Utf8) read as the catalog's
        let wanted = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let got = plan.schema();
        if got.fields().len() != wanted.fields().len() {
            return Err(DataFusionError::Internal(format!(
                "Delta scan of `{}` returned {} columns for {}",
                self.name,
                got.fields().len(),
                wanted.fields().len()
            )));
        }
        if got
            .fields()
            .iter()
            .zip(wanted.fields())
            .all(|(g, w)| g.data_type() == w.data_type())
        {
            return Ok(plan);
        }
        let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = got
            .fields()
            .iter()
            .zip(wanted.fields())
            .enumerate()
            .map(|(i, (g, w))| {
                let column: Arc<dyn PhysicalExpr> = Arc::new(ColumnExpr::new(g.name(), i));
                let expr = if g.data_type() == w.data_type() {
                    column
                } else {
                    Arc::new(CastExpr::new(column, w.data_type().clone(), None))
                };
                (expr, w.name().clone())
            })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
    }
}

/// The table properties citylake gives a Delta table it creates: statistics
/// only for the columns without personal information (`stats_columns`), so the
/// log never holds a personal value.
pub fn table_properties(stats_columns: &[String]) -> Vec<(TableProperty, String)> {
    vec![(
        TableProperty::DataSkippingStatsColumns,
        stats_columns.join(","),
    )]
}

/// Turns the Parquet directory at `table_url` into a Delta table in place
/// (the files stay; a first commit lists them), with hive partition
/// directories read as `partitions` (name, Delta type) and statistics kept
/// for `stats_columns` only.
pub async fn convert_parquet(
    store: Arc<dyn ObjectStore>,
    table_url: &Url,
    partitions: Vec<(String, deltalake_core::kernel::DataType)>,
    stats_columns: &[String],
) -> DfResult<Version> {
    use deltalake_core::operations::convert_to_delta::ConvertToDeltaBuilder;
    let log_store = log_store(store, table_url)?;
    let mut builder = ConvertToDeltaBuilder::new()
        .with_log_store(log_store)
        .with_partition_schema(
            partitions
                .into_iter()
                .map(|(name, t)| deltalake_core::kernel::StructField::new(name, t, true)),
        );
    for (key, value) in table_properties(stats_columns) {
        builder = builder.with_configuration_property(key, Some(value));
    }
    let table = builder
        .await
        .map_err(|e| delta_err(table_url.as_str(), e))?;
    table
        .version()
        .ok_or_else(|| DataFusionError::Internal("a conversion without a version".into()))
}

/// The Delta type of a partition column's declared type.
fn partition_type(t: crate::types::ColumnType) -> deltalake_core::kernel::DataType {
    use crate::types::ColumnType;
    use deltalake_core::kernel::DataType;
    match t {
        ColumnType::SmallInt => DataType::SHORT,
        ColumnType::Int => DataType::INTEGER,
        ColumnType::BigInt => DataType::LONG,
        ColumnType::Date => DataType::DATE,
        // the catalog allows no other partition type (`is_partition_type`)
        _ => DataType::STRING,
    }
}

/// The columns of `ds` whose statistics a Delta table may keep: those the
/// catalog declares without a PII tag, partition columns aside.
pub fn stats_columns(ds: &crate::spec::DatasetSpec) -> Vec<String> {
    ds.columns
        .iter()
        .filter(|c| c.pii.is_none())
        .filter(|c| !ds.partitions.iter().any(|p| p.name == c.name))
        .map(|c| c.name.clone())
        .collect()
}

/// [`convert_parquet`] for a dataset the catalog declares, at `table_url`.
pub async fn convert_dataset(
    store: Arc<dyn ObjectStore>,
    table_url: &Url,
    ds: &crate::spec::DatasetSpec,
) -> DfResult<Version> {
    let partitions = ds
        .partition_types()
        .into_iter()
        .map(|(name, t)| (name, partition_type(t)))
        .collect();
    convert_parquet(store, table_url, partitions, &stats_columns(ds)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    async fn sum(provider: &DeltaDataset) -> i64 {
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(provider.clone())).unwrap();
        let got = ctx
            .sql("SELECT sum(n) FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        got[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    }

    /// The physical plan of a scan of all of `provider`, as EXPLAIN shows it.
    async fn plan(provider: &DeltaDataset) -> String {
        let plan = provider
            .scan(&SessionContext::new().state(), None, &[], None)
            .await
            .unwrap();
        datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string()
    }

    fn held(provider: &DeltaDataset) -> Arc<EagerSnapshot> {
        provider.latest.lock().unwrap().clone().unwrap().0
    }

    /// A reader holds the latest snapshot between scans and reads the log
    /// again as soon as another writer (here another handle, as another
    /// process would be) commits.
    #[tokio::test]
    async fn the_held_latest_snapshot_is_reused_until_a_later_commit_exists() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("part-0.parquet")).unwrap();
        let first = batch(&[1, 2, 3]);
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, first.schema(), None).unwrap();
        writer.write(&first).unwrap();
        writer.close().unwrap();
        let url = Url::from_directory_path(dir.path()).unwrap();
        let root: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new());
        assert_eq!(
            convert_parquet(root.clone(), &url, vec![], &["n".to_string()])
                .await
                .unwrap(),
            0
        );

        let schema = first.schema();
        let reader = DeltaDataset::new("t", log_store(root.clone(), &url).unwrap(), schema.clone());
        let other = DeltaDataset::new("t", log_store(root, &url).unwrap(), schema);
        assert_eq!(sum(&reader).await, 6);
        let before = held(&reader);
        assert_eq!(before.version(), 0);
        let v0 = reader.listed.lock().unwrap().clone().unwrap().1;
        assert_eq!(sum(&reader).await, 6);
        assert!(
            Arc::ptr_eq(&before, &held(&reader)),
            "the log was read again"
        );

        assert_eq!(other.append(vec![batch(&[4, 5])], vec![]).await.unwrap(), 1);
        assert_eq!(sum(&reader).await, 15);
        assert_eq!(held(&reader).version(), 1);
        assert_eq!(reader.resolve_version().await.unwrap(), 1);

        // the files are scanned directly, and a new version's listing reads
        // the footers of its new files only
        let listed = |p: &DeltaDataset| p.listed.lock().unwrap().clone().unwrap().1;
        let v1 = listed(&reader);
        assert_eq!((v1.version, v1.footers.len()), (1, 2));
        let part0 = |l: &crate::delta_files::Listed| {
            l.footers
                .iter()
                .find(|(path, _)| path.as_ref().ends_with("part-0.parquet"))
                .map(|(_, f)| f.statistics.clone())
                .unwrap()
        };
        assert!(Arc::ptr_eq(&part0(&v0), &part0(&v1)), "a footer read again");
        let shown = plan(&reader).await;
        assert!(shown.starts_with("DataSourceExec"), "{shown}");

        // time travel shares the held snapshot for its "no such version" check
        assert_eq!(sum(&reader.at(AsOf::Version(0))).await, 6);
        let err = reader
            .at(AsOf::Version(2))
            .scan(&SessionContext::new().state(), None, &[], None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("has no version 2"), "{err}");
    }

    /// A table whose reading needs more than its files (here: deletion
    /// vectors, a reader feature) is read by delta-rs's scan, with the same
    /// results.
    #[tokio::test]
    async fn a_table_with_reader_features_is_read_by_delta_rs() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path()).unwrap();
        let root: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new());
        let store = log_store(root, &url).unwrap();
        let table = DeltaTable::new(store.clone())
            .create()
            .with_columns([deltalake_core::kernel::StructField::new(
                "n",
                deltalake_core::kernel::DataType::LONG,
                true,
            )])
            .with_configuration_property(TableProperty::EnableDeletionVectors, Some("true"))
            .await
            .unwrap();
        assert!(!crate::delta_files::DeltaFiles::readable(
            &EagerSnapshot::try_new(table.log_store().as_ref(), None)
                .await
                .unwrap()
        ));
        let schema = batch(&[]).schema();
        let provider = DeltaDataset::new("t", store, schema);
        provider
            .append(vec![batch(&[1, 2, 3])], vec![])
            .await
            .unwrap();
        assert_eq!(sum(&provider).await, 6);
        assert!(provider.listed.lock().unwrap().is_none());
        let shown = plan(&provider).await;
        assert!(shown.contains("DeltaScanExec"), "{shown}");
    }
}
