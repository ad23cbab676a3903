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

use datafusion::common::stats::Precision;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::joins::{CrossJoinExec, NestedLoopJoinExec};
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use datafusion::physical_plan::streaming::StreamingTableExec;
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs, StatisticsContext};

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

/// The work a physical plan is estimated to do, in bytes of input: the files
/// it scans (the sum of their sizes, or of their ranges where a file is split
/// over partitions) and the rows held in memory it reads. Work that cannot be
/// estimated weighs `u64::MAX` (fail closed: never light, never too small for
/// the cluster) — a source citylake does not know (`generate_series`, a
/// recursive query's work table). A join whose output is the product of its
/// inputs (a cross or nested-loop join) weighs its inputs times the rows of
/// its smaller side, and a byte per pair, when both sides' row counts are
/// known exactly, its inputs
/// when one side is known to hold at most one row (a one-row aggregate beside
/// a table weighs the table), and `u64::MAX` otherwise: a few kilobytes of
/// files can make minutes of work. An `unnest` (one row becomes any number)
/// weighs `u64::MAX` too.
pub fn scan_bytes(plan: &dyn ExecutionPlan) -> u64 {
    if plan.is::<NestedLoopJoinExec>() || plan.is::<CrossJoinExec>() {
        let statistics = StatisticsContext::new();
        let rows: Vec<Option<u64>> = plan
            .children()
            .iter()
            .map(|child| {
                let computed = statistics
                    .compute(child.as_ref(), &StatisticsArgs::new())
                    .ok()?;
                match computed.num_rows {
                    Precision::Exact(rows) => Some(rows as u64),
                    _ => None,
                }
            })
            .collect();
        // (the pairs themselves weigh a byte each: sides of rows that read
        // no bytes, unions of constants, still make work)
        let (times, pairs) = if rows.iter().all(Option::is_some) {
            let known = rows.iter().flatten();
            (
                known.clone().min().copied().unwrap_or(0),
                known.fold(1, |n: u64, &r| n.saturating_mul(r)),
            )
        } else if rows.iter().flatten().any(|&n| n <= 1) {
            (1, 0)
        } else {
            return u64::MAX;
        };
        return plan
            .children()
            .into_iter()
            .map(|child| scan_bytes(child.as_ref()))
            .fold(0, u64::saturating_add)
            .saturating_mul(times.max(1))
            .saturating_add(pairs);
    }
    // a row becomes many (red team: `unnest(range(0, n))` over one row of
    // `VALUES` weighed nothing)
    if plan.is::<UnnestExec>() {
        return u64::MAX;
    }
    // a governed scan shows no children (nothing beneath the barrier is
    // printed): its scan is weighed all the same (red team: a masked
    // dataset's year-long scans weighed nothing and took the light slots)
    if let Some(inner) = crate::governance::GovernedScanExec::governed_plan(plan) {
        return scan_bytes(inner.as_ref());
    }
    let children = plan.children();
    if children.is_empty() {
        return leaf_bytes(plan);
    }
    children
        .into_iter()
        .map(|child| scan_bytes(child.as_ref()))
        .fold(0, u64::saturating_add)
}

/// The input of a plan without children: see [`scan_bytes`].
fn leaf_bytes(plan: &dyn ExecutionPlan) -> u64 {
    // no rows, one row, `information_schema`'s listings of the catalog (the
    // only streaming tables a session has: citylake registers none)
    if plan.is::<EmptyExec>() || plan.is::<PlaceholderRowExec>() || plan.is::<StreamingTableExec>()
    {
        return 0;
    }
    // the data-quality checks read whole datasets when executed
    if plan.is::<crate::quality::QualityExec>() {
        return crate::quality::QualityExec::WEIGHT;
    }
    let Some(source) = plan.downcast_ref::<DataSourceExec>() else {
        return u64::MAX;
    };
    if let Some(config) = source.data_source().downcast_ref::<FileScanConfig>() {
        return config
            .file_groups
            .iter()
            .flat_map(|group| group.files())
            // a file split into byte ranges over several partitions counts
            // once, range by range
            .map(|file| match &file.range {
                Some(range) => (range.end - range.start).max(0) as u64,
                None => file.object_meta.size,
            })
            .fold(0, u64::saturating_add);
    }
    // rows already in memory: `VALUES`, the system and catalog tables
    if let Some(memory) = source.data_source().downcast_ref::<MemorySourceConfig>() {
        return memory
            .partitions()
            .iter()
            .flatten()
            .map(|batch| batch.get_array_memory_size() as u64)
            .fold(0, u64::saturating_add);
    }
    u64::MAX
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

    /// The physical plan of `sql` in a plain session.
    async fn weigh(sql: &str) -> u64 {
        let ctx = datafusion::prelude::SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_information_schema(true),
        );
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        scan_bytes(plan.as_ref())
    }

    /// Work that cannot be estimated is never small (red team: a CPU-heavy
    /// query over no files weighed nothing and ran as a light query).
    #[tokio::test]
    async fn work_not_known_weighs_the_most() {
        // rows made as the query runs, a recursive query's work table
        assert_eq!(
            weigh("SELECT sum(value) FROM generate_series(1, 1000000000)").await,
            u64::MAX
        );
        assert_eq!(weigh("SELECT count(*) FROM range(10)").await, u64::MAX);
        let recursive = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 100000000) \
                         SELECT max(n) FROM t";
        assert_eq!(weigh(recursive).await, u64::MAX);
        // a product of inputs whose rows are not known exactly
        let filtered = "SELECT count(*) FROM (SELECT * FROM (VALUES (1), (2)) v(x) WHERE x > 1) a \
                        CROSS JOIN (SELECT * FROM (VALUES (1), (2)) v(y) WHERE y > 1) b";
        assert_eq!(weigh(filtered).await, u64::MAX);
        let filtered = "SELECT count(*) FROM (SELECT * FROM (VALUES (1), (2)) v(x) WHERE x > 1) a \
                        JOIN (SELECT * FROM (VALUES (1), (2)) v(y) WHERE y > 1) b ON a.x < b.y";
        assert_eq!(weigh(filtered).await, u64::MAX);
        // rows from nothing: an unnest, a product of constants
        let unnest =
            "SELECT count(*) FROM (SELECT unnest(range(0, n)) AS k FROM (VALUES (200000)) v(n))";
        assert_eq!(weigh(unnest).await, u64::MAX);
        let ones = (0..64)
            .map(|_| "SELECT 1 AS x")
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let constants = format!(
            "WITH u AS ({ones}) SELECT sum(a.x + b.x + c.x + d.x + e.x) \
             FROM u a, u b, u c, u d, u e"
        );
        assert!(weigh(&constants).await >= 1 << 30);
        // one side known, of more than one row, the other not
        let half = "SELECT count(*) FROM (VALUES (1), (2)) a(x) \
                    CROSS JOIN (SELECT * FROM (VALUES (1), (2)) v(y) WHERE y > 1) b";
        assert_eq!(weigh(half).await, u64::MAX);
    }

    /// What is known is weighed: no rows, one row, rows in memory, the
    /// catalog's listings; a product beside a side of exactly known rows is
    /// its inputs times those rows.
    #[tokio::test]
    async fn work_known_is_weighed() {
        assert_eq!(weigh("SELECT 1").await, 0);
        assert_eq!(
            weigh("SELECT count(*) FROM information_schema.tables").await,
            0
        );
        let values = weigh("SELECT * FROM (VALUES (1), (2)) v(x)").await;
        assert!(values > 0 && values < 1 << 20, "{values}");
        let one = weigh(
            "SELECT * FROM (VALUES (1), (2)) a(x) CROSS JOIN (SELECT max(y) AS m FROM (VALUES (3)) b(y))",
        )
        .await;
        assert!(one > values && one < 1 << 20, "{one}");
        // a product of sides of exactly known rows: its inputs times the
        // smaller side's rows, and a byte per pair
        let product = "SELECT count(*) FROM (VALUES (1), (2)) a(x) JOIN (VALUES (1), (2), (3)) b(y) ON a.x < b.y";
        let three = weigh("SELECT * FROM (VALUES (1), (2), (3)) v(x)").await;
        assert_eq!(weigh(product).await, (values + three) * 2 + 2 * 3);
    }
}
