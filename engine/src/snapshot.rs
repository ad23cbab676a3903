//! System tables whose rows are computed when they are scanned
//! (`system.audit_log`, `system.queries`, `system.data_quality`).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;

/// What a [`SnapshotTable`] reads at each scan (on a blocking thread: reading
/// may touch files, as the audit trail's does).
pub trait Snapshot: std::fmt::Debug + Clone + Send + Sync {
    fn schema(&self) -> SchemaRef;
    /// The table's rows now.
    fn batches(&self) -> Result<Vec<RecordBatch>>;
}

/// A table provider over a [`Snapshot`], read fresh at every scan.
#[derive(Debug)]
pub struct SnapshotTable<T>(pub T);

/// `batches` as the plan of a scan with `projection`.
pub fn scan_of(
    batches: Vec<RecordBatch>,
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    datafusion::datasource::memory::MemorySourceConfig::try_new_exec(
        &[batches],
        schema,
        projection.cloned(),
    )
    .map(|e| e as _)
}

#[async_trait::async_trait]
impl<T: Snapshot + 'static> datafusion::catalog::TableProvider for SnapshotTable<T> {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.0.clone();
        let batches = tokio::task::spawn_blocking(move || snapshot.batches())
            .await
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))??;
        scan_of(batches, self.0.schema(), projection)
    }
}
