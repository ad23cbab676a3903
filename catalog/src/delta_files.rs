//! A Delta snapshot's files scanned as DataFusion scans a Parquet listing.
//!
//! A snapshot of a Delta table is a list of Parquet files with their
//! partition values. When reading it needs nothing else — no deletion
//! vectors, no column mapping, no reader feature but `timestampNtz`, every
//! file under the table's root — [`DeltaFiles::scan`] builds DataFusion's own
//! Parquet scan over exactly those files (never a listing of the directory,
//! which holds removed files until they are vacuumed), as the Parquet lake's
//! listing tables do:
//! - each file's statistics come from its footer (through the runtime's
//!   footer cache), exact where the footer's are: `max(observed_at)` is
//!   answered from them. Delta's own statistics keep timestamps to the
//!   millisecond only, so delta-rs marks them inexact and every file was read;
//! - a file's statistics are kept for as long as it is in the latest
//!   snapshot (Delta never rewrites a file in place), so a new version costs
//!   the footers of its new files only;
//! - filters on partition columns drop files before the scan is built; the
//!   others are pushed into the Parquet scan (row groups, pages, rows).
//!
//! delta-rs's kernel scan replays the snapshot's file actions and parses
//! their JSON statistics at every scan: a fifth of a cockpit query's time.
//! Any snapshot this module does not take ([`DeltaFiles::readable`]) is read
//! by delta-rs's scan instead.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake_core::kernel::{EagerSnapshot, Version};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use object_store::path::Path;
use url::Url;

/// The files of one snapshot, ready to scan.
#[derive(Debug)]
pub(crate) struct Listed {
    pub(crate) version: Version,
    /// Partition columns, in the order of each file's `partition_values`.
    partitions: Vec<FieldRef>,
    files: Vec<PartitionedFile>,
    /// The files' partition values, a row per file (partition filters are
    /// evaluated over it).
    partition_values: RecordBatch,
    /// Each file's statistics as its footer has them (its partition values
    /// aside), with the size and time the log gives the file, for the next
    /// listing to reuse (for the same path, size and time only).
    pub(crate) footers: HashMap<Path, Footer>,
}

/// A file's footer statistics, and the size and time they are for.
#[derive(Debug, Clone)]
pub(crate) struct Footer {
    size: u64,
    modified: chrono::DateTime<chrono::Utc>,
    pub(crate) statistics: Arc<Statistics>,
}

/// How the files of a Delta table are scanned directly.
#[derive(Debug)]
pub(crate) struct DeltaFiles {
    /// `scheme://authority` of the table's store.
    store_url: ObjectStoreUrl,
    /// The table's root within that store.
    root: Path,
    format: crate::parquet::LakeParquetFormat,
}

impl DeltaFiles {
    /// For the table at `table_url` (its root directory).
    pub(crate) fn new(table_url: &Url) -> DfResult<Self> {
        let store = format!(
            "{}://{}",
            table_url.scheme(),
            &table_url[url::Position::BeforeHost..url::Position::AfterPort]
        );
        Ok(Self {
            store_url: ObjectStoreUrl::parse(&store)?,
            root: Path::from_url_path(table_url.path())?,
            format: crate::parquet::LakeParquetFormat::new(ParquetFormat::default(), store),
        })
    }

    /// Whether reading `snapshot` needs nothing but its files and partition
    /// values: its protocol asks for no reader feature but `timestampNtz`.
    /// Deletion vectors, column mapping and every later reader feature are
    /// reader features, so this one test keeps them all with delta-rs.
    pub(crate) fn readable(snapshot: &EagerSnapshot) -> bool {
        let Ok(protocol) = serde_json::to_value(snapshot.protocol()) else {
            return false;
        };
        match protocol.get("minReaderVersion").and_then(|v| v.as_i64()) {
            Some(1) => true,
            Some(3) => protocol
                .get("readerFeatures")
                .and_then(|f| f.as_array())
                .is_some_and(|f| f.iter().all(|f| f.as_str() == Some("timestampNtz"))),
            _ => false,
        }
    }

    /// The files of `snapshot` for a table whose columns are `schema`, each
    /// with its footer's statistics: those of `known` reused (a file of an
    /// earlier listing), the others read. `None` when a file is outside what
    /// this module reads (a deletion vector, a path outside the table, a
    /// partition column the schema lacks).
    pub(crate) async fn list(
        &self,
        state: &dyn Session,
        snapshot: &EagerSnapshot,
        schema: &SchemaRef,
        known: Option<&Listed>,
    ) -> DfResult<Option<Listed>> {
        let log = snapshot.log_data();
        let mut partitions: Option<Vec<String>> = None;
        let mut files = Vec::with_capacity(log.num_files());
        for view in log.iter() {
            if view.deletion_vector_descriptor().is_some() {
                return Ok(None);
            }
            let raw = view.path();
            if raw.contains("://") || raw.starts_with('/') {
                return Ok(None);
            }
            let values = view.partition_values_map();
            let names = partitions.get_or_insert_with(|| {
                let mut names: Vec<String> = values.keys().cloned().collect();
                // in the schema's order, as a listing's partition columns are
                names.sort_by_key(|n| schema.index_of(n).unwrap_or(usize::MAX));
                names
            });
            if values.len() != names.len() {
                return Ok(None);
            }
            let mut partition_values = Vec::with_capacity(names.len());
            for name in names.iter() {
                let Ok(field) = schema.field_with_name(name) else {
                    return Ok(None);
                };
                let value = match values.get(name) {
                    // the protocol writes NULL as no value or an empty string
                    Some(Some(v)) if !v.is_empty() => {
                        ScalarValue::try_from_string(v.clone(), field.data_type())?
                    }
                    Some(_) => ScalarValue::try_from(field.data_type())?,
                    None => return Ok(None),
                };
                partition_values.push(value);
            }
            let location = Path::from_iter(
                self.root
                    .parts()
                    .chain(view.object_store_path().parts().collect::<Vec<_>>()),
            );
            let object_meta = ObjectMeta {
                location,
                last_modified: view
                    .modification_datetime()
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?,
                size: view.size().max(0) as u64,
                e_tag: None,
                version: None,
            };
            let mut file = PartitionedFile::from(object_meta);
            file.partition_values = partition_values;
            files.push(file);
        }
        let names = partitions.unwrap_or_default();
        let partitions: Vec<FieldRef> = names
            .iter()
            .map(|n| Ok(Arc::new(schema.field_with_name(n)?.clone())))
            .collect::<DfResult<_>>()?;
        let file_schema = file_schema(schema, &partitions);
        let none = HashMap::new();
        let known = known
            .filter(|k| k.partitions == partitions)
            .map_or(&none, |k| &k.footers);
        let store = state.runtime_env().object_store(&self.store_url)?;
        let concurrency = state
            .config_options()
            .execution
            .meta_fetch_concurrency
            .get();
        let files = futures::stream::iter(files.into_iter().map(|file| {
            let meta = &file.object_meta;
            let reused = known
                .get(&meta.location)
                .filter(|f| f.size == meta.size && f.modified == meta.last_modified)
                .map(|f| f.statistics.clone());
            let (store, file_schema) = (store.clone(), file_schema.clone());
            async move {
                let statistics = match reused {
                    Some(s) => s,
                    None => {
                        let s: Statistics = self
                            .format
                            .infer_stats(state, &store, file_schema, &file.object_meta)
                            .await?;
                        Arc::new(s)
                    }
                };
                let meta = &file.object_meta;
                let footer = Footer {
                    size: meta.size,
                    modified: meta.last_modified,
                    statistics: statistics.clone(),
                };
                let location = meta.location.clone();
                DfResult::<_>::Ok((file.with_statistics(statistics), (location, footer)))
            }
        }))
        .buffered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
        let (files, footers): (Vec<PartitionedFile>, _) = files.into_iter().unzip();
        let columns = (0..partitions.len())
            .map(|c| {
                ScalarValue::iter_to_array(files.iter().map(|f| f.partition_values[c].clone()))
            })
            .collect::<DfResult<Vec<_>>>()?;
        let partition_values = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(partitions.clone())),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(files.len())),
        )?;
        Ok(Some(Listed {
            version: snapshot.version(),
            partitions,
            files,
            partition_values,
            footers,
        }))
    }

    /// The scan of `listed` for a table whose columns are `schema`: the
    /// columns of `projection` (of `schema`), files whose partition values
    /// fail a filter of `filters` on partition columns left out.
    pub(crate) async fn scan(
        &self,
        state: &dyn Session,
        listed: &Listed,
        schema: &SchemaRef,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let file_schema = file_schema(schema, &listed.partitions);
        let names: Vec<&str> = listed
            .partitions
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let partition_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| !names.is_empty() && expr_applicable_for_cols(&names, f))
            .cloned()
            .collect();
        // the filters evaluated once over every file's partition values (a
        // file a filter is false or NULL for is left out)
        let files: Vec<PartitionedFile> = match conjunction(partition_filters) {
            None => listed.files.clone(),
            Some(filter) => {
                let values = &listed.partition_values;
                let df_schema = DFSchema::try_from(values.schema())?;
                let keep = state
                    .create_physical_expr(filter, &df_schema)?
                    .evaluate(values)?
                    .into_array(values.num_rows())?;
                let keep = keep.as_boolean();
                listed
                    .files
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| keep.is_valid(*i) && keep.value(*i))
                    .map(|(_, f)| f.clone())
                    .collect()
            }
        };
        // the scan's columns are the file's, then the partition columns: the
        // projection asks for them in the table's order
        let scanned: Vec<&str> = file_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .chain(names.iter().copied())
            .collect();
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        let indices: Vec<usize> = wanted
            .iter()
            .map(|&i| {
                let name = schema.field(i).name();
                scanned.iter().position(|s| s == name).ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal(format!(
                        "column `{name}` is not scanned"
                    ))
                })
            })
            .collect::<DfResult<_>>()?;
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(Arc::new(schema.project(&wanted)?))));
        }
        let table_schema = Arc::new(Schema::new(
            file_schema
                .fields()
                .iter()
                .cloned()
                .chain(listed.partitions.iter().cloned())
                .collect::<Vec<_>>(),
        ));
        // statistics as a listing table has them: each group's and the whole scan's
        let collect = state.config().collect_statistics();
        let merged = |files: &[PartitionedFile]| {
            Statistics::try_merge_iter(
                files.iter().filter_map(|f| f.statistics.as_deref()),
                &table_schema,
            )
        };
        let statistics = if collect {
            merged(&files)?
        } else {
            Statistics::new_unknown(&table_schema)
        };
        let groups = FileGroup::new(files)
            .split_files(state.config().target_partitions())
            .into_iter()
            .map(|g| {
                if !collect {
                    return Ok(g);
                }
                let s = merged(g.files())?;
                Ok(g.with_statistics(Arc::new(s)))
            })
            .collect::<DfResult<Vec<_>>>()?;
        let source = self.format.file_source(
            TableSchema::builder(file_schema)
                .with_table_partition_cols(listed.partitions.clone())
                .build(),
        );
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(groups)
            .with_statistics(statistics)
            .with_projection_indices(Some(indices))?
            .with_limit(limit)
            .build();
        self.format.create_physical_plan(state, config).await
    }
}

/// `schema` without the partition columns: what the files hold.
fn file_schema(schema: &SchemaRef, partitions: &[FieldRef]) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| !partitions.iter().any(|p| p.name() == f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    ))
}
