//! Running a session's queries somewhere other than this process: a cluster
//! (`citylake-cluster`, on Apache DataFusion Ballista) plugs in here, so that
//! the engine — and every crate that does not run a cluster — knows nothing of
//! Ballista.
//!
//! The session keeps the front end's duties: parsing, the access check,
//! planning against the principal's governed catalog (masks and row filters
//! become part of the plan), the audit trail. Only the optimized plan — plain
//! scans of the lake's files under the policy's projections and filters — is
//! handed to the [`RemoteExecutor`], which may decline it (a plan reading the
//! session's in-memory tables, `system.*` or `information_schema`, a
//! statement): such a plan runs locally. So does a plan whose files to scan
//! are fewer bytes than [`Routing::min_scan_bytes`]: a cluster job costs tens
//! of milliseconds of its own (submission, stage planning, status polling),
//! more than a small query takes here ([`Routing::route`]).

use std::sync::Arc;

use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;

use crate::error::Result;

/// Where a session's queries go when there is a cluster: the executor and the
/// rule choosing between it and this process.
#[derive(Debug, Clone)]
pub struct Routing {
    pub executor: Arc<dyn RemoteExecutor>,
    /// Plans scanning files of fewer bytes than this run here.
    pub min_scan_bytes: u64,
}

impl Routing {
    /// Whether a plan the executor accepted is worth a cluster job: `Err(why)`
    /// when its files to scan (after partition and file pruning, as the
    /// local physical plan lists them) are fewer bytes than the threshold.
    pub fn route(&self, physical: &dyn ExecutionPlan) -> std::result::Result<(), String> {
        let bytes = scan_bytes(physical);
        if bytes >= self.min_scan_bytes {
            return Ok(());
        }
        Err(format!(
            "it scans {} of files, less than the cluster's threshold of {} (--cluster-min-scan)",
            bytesize::ByteSize(bytes),
            bytesize::ByteSize(self.min_scan_bytes)
        ))
    }
}

/// Bytes of the files a physical plan scans (the sum of their sizes, or of
/// their ranges where a file is split over partitions).
pub fn scan_bytes(plan: &dyn ExecutionPlan) -> u64 {
    let own = plan
        .downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        .map_or(0, |config| {
            config
                .file_groups
                .iter()
                .flat_map(|group| group.files())
                // a file split into byte ranges over several partitions
                // counts once, range by range
                .map(|file| match &file.range {
                    Some(range) => (range.end - range.start).max(0) as u64,
                    None => file.object_meta.size,
                })
                .sum()
        });
    // a governed scan shows no children (nothing beneath the barrier is
    // printed): its scan is weighed all the same (red team: a masked
    // dataset's year-long scans weighed nothing and took the light slots)
    let governed = crate::governance::GovernedScanExec::governed_plan(plan)
        .map_or(0, |inner| scan_bytes(inner.as_ref()));
    // the data-quality checks read whole datasets when executed
    let checks = plan
        .downcast_ref::<crate::quality::QualityExec>()
        .map_or(0, |_| crate::quality::QualityExec::WEIGHT);
    plan.children()
        .into_iter()
        .map(|child| scan_bytes(child.as_ref()))
        .chain([own, governed, checks])
        .fold(0, u64::saturating_add)
}

/// Executes optimized query plans elsewhere.
#[async_trait::async_trait]
pub trait RemoteExecutor: Send + Sync + std::fmt::Debug {
    /// Where plans go (`df://host:port`), for logs and errors.
    fn location(&self) -> &str;

    /// Whether `plan` (optimized) can run remotely; `Err(why)` when it must
    /// run locally.
    fn accepts(&self, plan: &LogicalPlan) -> std::result::Result<(), String>;

    /// Runs an accepted plan; the results stream back batch by batch, and
    /// dropping the stream before its end cancels the remote work.
    async fn execute(
        &self,
        state: &SessionState,
        plan: LogicalPlan,
    ) -> Result<SendableRecordBatchStream>;
}

/// Whether a plan is a query (not DDL, DML, a statement, `EXPLAIN` or a
/// `DESCRIBE`, which the session runs itself).
pub fn is_query(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::listing::PartitionedFile;
    use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
    use datafusion::execution::object_store::ObjectStoreUrl;
    use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;

    /// A file split into byte ranges over partitions counts once; whole files
    /// count their size; scans below other operators count too.
    #[test]
    fn scan_bytes_counts_each_byte_once() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let ranges = (0..4).map(|i| {
            FileGroup::new(vec![
                PartitionedFile::new("a.parquet", 10 << 20)
                    .with_range(i * (10 << 18), (i + 1) * (10 << 18)),
            ])
        });
        let whole = FileGroup::new(vec![PartitionedFile::new("b.parquet", 1000)]);
        let config = FileScanConfigBuilder::new(
            ObjectStoreUrl::local_filesystem(),
            Arc::new(ParquetSource::new(schema)),
        )
        .with_file_groups(ranges.chain([whole]).collect())
        .build();
        let scan = DataSourceExec::from_data_source(config);
        let plan = CoalescePartitionsExec::new(scan.clone());
        assert_eq!(scan_bytes(&plan), (10 << 20) + 1000);
        // behind a governed scan's barrier too (it shows no children): a
        // masked dataset's year-long scan once weighed nothing and was light
        let schema = scan.schema();
        let governed = crate::governance::GovernedScanExec::new("t", scan, schema);
        assert!(governed.children().is_empty());
        assert_eq!(scan_bytes(&governed), (10 << 20) + 1000);
    }
}
