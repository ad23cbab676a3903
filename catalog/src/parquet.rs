//! The lake's Parquet format: DataFusion's [`ParquetFormat`], with every error
//! of reading a file (a corrupt or truncated footer, an object deleted after it
//! was listed, a failed range request) naming the object it came from, as
//! `s3://bucket/key` or `file:///path` — DataFusion's own messages say only
//! "Corrupt footer".
//!
//! Everything else (statistics, pruning, the footer cache, range coalescing)
//! is DataFusion's: each method delegates, and the scan keeps DataFusion's
//! reader factory, wrapped.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, FileSinkConfig, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_expr_common::sort_expr::LexRequirement;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::{ObjectMeta, ObjectStore};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

/// [`ParquetFormat`] whose errors name the object. `store_url` is the
/// scheme and authority the object paths are relative to (`s3://lake`, `file://`).
#[derive(Debug)]
pub struct LakeParquetFormat {
    inner: ParquetFormat,
    store_url: String,
}

impl LakeParquetFormat {
    pub fn new(inner: ParquetFormat, store_url: impl Into<String>) -> Self {
        Self {
            inner,
            store_url: store_url.into(),
        }
    }

    /// DataFusion's Parquet format this one wraps (what a plan sent to a
    /// cluster carries: the wrapper's error naming is local to this process).
    pub fn inner(&self) -> &ParquetFormat {
        &self.inner
    }

    fn name(&self, location: &object_store::path::Path) -> String {
        object_name(&self.store_url, location)
    }
}

/// `stats` with the minimum and maximum of each floating-point column marked
/// inexact: Parquet leaves NaN out of them (and still calls them exact), while
/// DataFusion's `max` counts NaN as the largest value, so `max(x)` answered
/// from statistics would be 1.0 where the data says NaN. They still prune.
fn nan_safe(mut stats: Statistics, schema: &Schema) -> Statistics {
    for (column, field) in stats.column_statistics.iter_mut().zip(schema.fields()) {
        if field.data_type().is_floating() {
            column.min_value = column.min_value.clone().to_inexact();
            column.max_value = column.max_value.clone().to_inexact();
        }
    }
    stats
}

fn object_name(store_url: &str, location: &object_store::path::Path) -> String {
    format!("{store_url}/{location}")
}

/// `error` with the object's name in front of its message.
fn named(object: &str, error: DataFusionError) -> DataFusionError {
    match error {
        DataFusionError::ParquetError(e) => {
            DataFusionError::ParquetError(Box::new(name_parquet_error(object, *e)))
        }
        DataFusionError::ObjectStore(e) => DataFusionError::ObjectStore(Box::new(match *e {
            object_store::Error::NotFound { source, .. } => object_store::Error::NotFound {
                path: object.to_string(),
                source,
            },
            other => object_store::Error::Generic {
                store: "object store",
                source: format!("reading {object}: {other}").into(),
            },
        })),
        other => other.context(format!("reading {object}")),
    }
}

fn name_parquet_error(object: &str, error: ParquetError) -> ParquetError {
    let message = error.to_string();
    let message = message.strip_prefix("Parquet error: ").unwrap_or(&message);
    let message = message.strip_prefix("External: ").unwrap_or(message);
    ParquetError::General(format!("{object}: {message}"))
}

#[async_trait]
impl FileFormat for LakeParquetFormat {
    fn get_ext(&self) -> String {
        self.inner.get_ext()
    }

    fn get_ext_with_compression(&self, c: &FileCompressionType) -> Result<String> {
        self.inner.get_ext_with_compression(c)
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        self.inner.compression_type()
    }

    async fn infer_schema(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        objects: &[ObjectMeta],
    ) -> Result<SchemaRef> {
        self.inner.infer_schema(state, store, objects).await
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        let stats = self
            .inner
            .infer_stats(state, store, table_schema.clone(), object)
            .await
            .map_err(|e| named(&self.name(&object.location), e))?;
        Ok(nan_safe(stats, &table_schema))
    }

    async fn infer_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Option<LexOrdering>> {
        self.inner
            .infer_ordering(state, store, table_schema, object)
            .await
            .map_err(|e| named(&self.name(&object.location), e))
    }

    async fn infer_stats_and_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<datafusion::datasource::file_format::FileMeta> {
        let mut meta = self
            .inner
            .infer_stats_and_ordering(state, store, table_schema.clone(), object)
            .await
            .map_err(|e| named(&self.name(&object.location), e))?;
        meta.statistics = nan_safe(meta.statistics, &table_schema);
        Ok(meta)
    }

    async fn create_physical_plan(
        &self,
        state: &dyn Session,
        conf: FileScanConfig,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.create_physical_plan(state, conf).await?;
        Ok(name_reader_errors(plan, &self.store_url))
    }

    async fn create_writer_physical_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
        state: &dyn Session,
        conf: FileSinkConfig,
        order_requirements: Option<LexRequirement>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner
            .create_writer_physical_plan(input, state, conf, order_requirements)
            .await
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        self.inner.file_source(table_schema)
    }
}

/// The Parquet scan `plan` with its reader factory wrapped so that read errors
/// name the object (unchanged when it is not a Parquet scan).
fn name_reader_errors(plan: Arc<dyn ExecutionPlan>, store_url: &str) -> Arc<dyn ExecutionPlan> {
    let Some(exec) = plan.downcast_ref::<DataSourceExec>() else {
        return plan;
    };
    let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() else {
        return plan;
    };
    let Some(source) = config.file_source().downcast_ref::<ParquetSource>() else {
        return plan;
    };
    let Some(factory) = source.parquet_file_reader_factory() else {
        return plan;
    };
    let source = source
        .clone()
        .with_parquet_file_reader_factory(Arc::new(NamingReaderFactory {
            inner: factory.clone(),
            store_url: store_url.to_string(),
        }));
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(source))
        .build();
    DataSourceExec::from_data_source(config)
}

/// Wraps DataFusion's reader factory (with its footer cache) so that each
/// reader's errors name its object.
#[derive(Debug)]
struct NamingReaderFactory {
    inner: Arc<dyn ParquetFileReaderFactory>,
    store_url: String,
}

impl ParquetFileReaderFactory for NamingReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let object = object_name(&self.store_url, &file.object_meta.location);
        let inner = self
            .inner
            .create_reader(partition_index, file, metadata_size_hint, metrics)
            .map_err(|e| named(&object, e))?;
        Ok(Box::new(NamingReader { inner, object }))
    }
}

struct NamingReader {
    inner: Box<dyn AsyncFileReader + Send>,
    object: String,
}

impl fmt::Debug for NamingReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NamingReader({})", self.object)
    }
}

impl AsyncFileReader for NamingReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let object = &self.object;
        self.inner
            .get_bytes(range)
            .map(move |r| r.map_err(|e| name_parquet_error(object, e)))
            .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        let object = &self.object;
        self.inner
            .get_byte_ranges(ranges)
            .map(move |r| r.map_err(|e| name_parquet_error(object, e)))
            .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let object = &self.object;
        self.inner
            .get_metadata(options)
            .map(move |r| r.map_err(|e| name_parquet_error(object, e)))
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A footer's minimum and maximum leave NaN out: answered from them,
    /// `max(x)` over `[1.0, NaN]` would be 1.0, where the data says NaN.
    #[tokio::test]
    async fn float_minimums_and_maximums_are_not_exact() {
        use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch};
        use datafusion::arrow::datatypes::{DataType, Field};
        use datafusion::common::stats::Precision;
        use datafusion::prelude::SessionContext;
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(vec![1.0, f64::NAN])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let path = dir.path().join("a.parquet");
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            schema.clone(),
            None,
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new());
        let location = object_store::path::Path::from_filesystem_path(&path).unwrap();
        let meta = object_store::ObjectStoreExt::head(store.as_ref(), &location)
            .await
            .unwrap();
        let format = LakeParquetFormat::new(ParquetFormat::default(), "file://");
        let state = SessionContext::new().state();
        let stats = format
            .infer_stats(&state, &store, schema.clone(), &meta)
            .await
            .unwrap();
        let (x, n) = (&stats.column_statistics[0], &stats.column_statistics[1]);
        assert!(!matches!(x.max_value, Precision::Exact(_)), "{x:?}");
        assert!(!matches!(x.min_value, Precision::Exact(_)), "{x:?}");
        assert_eq!(n.max_value, Precision::Exact(2i64.into()));
        let meta = format
            .infer_stats_and_ordering(&state, &store, schema, &meta)
            .await
            .unwrap();
        assert!(!matches!(
            meta.statistics.column_statistics[0].max_value,
            Precision::Exact(_)
        ));
    }

    #[test]
    fn messages_name_the_object() {
        let e = name_parquet_error(
            "s3://lake/a.parquet",
            ParquetError::General("Invalid Parquet file. Corrupt footer".into()),
        );
        assert_eq!(
            e.to_string(),
            "Parquet error: s3://lake/a.parquet: Invalid Parquet file. Corrupt footer"
        );
        let e = named(
            "s3://lake/b.parquet",
            DataFusionError::ObjectStore(Box::new(object_store::Error::NotFound {
                path: "b.parquet".into(),
                source: "gone".into(),
            })),
        );
        assert!(e.to_string().contains("s3://lake/b.parquet"), "{e}");
        assert_eq!(
            object_name("file://", &"tmp/lake/x.parquet".into()),
            "file:///tmp/lake/x.parquet"
        );
    }
}
