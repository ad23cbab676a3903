//! Cancellation that reaches the work inside operators.
//!
//! A query is stopped (timeout, cancel, a dropped client, shutdown) by
//! dropping its stream, which aborts the tasks running its plan — but a tokio
//! task is only aborted, and a timer only fires, when some task yields. Data
//! sources and exchanges yield every so many batches (DataFusion's
//! `EnsureCooperative`), so most plans do; a join does not: a nested-loop or
//! hash join turns one input batch into many output batches, and the
//! aggregate or sort above it consumes them in one loop that never returns
//! `Pending`. On two cores two such loops hold every worker, and a 3 s timeout
//! ended after 47 s.
//!
//! [`YieldAfterJoins`] puts a [`YieldExec`] above every join (and unnest, the
//! other operator whose output outgrows its input): its stream gives the task
//! back to the scheduler once every [`SLICE`] of work, so timers fire and
//! aborted tasks stop within milliseconds. It counts time per stream, not
//! tokio's per-task budget: DataFusion's `CooperativeExec` spends that budget
//! once per batch per layer, and a plan with more nested joins than the budget
//! (128) would never reach its leaves again (a set of 200 INTERSECTs
//! livelocked). Measured by `benches/cancel_latency.py`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Statistics, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, PlanProperties, RecordBatchStream, StatisticsArgs,
};
use datafusion::physical_plan::{ExecutionPlan, replace_children_if_necessary};
use futures::{Stream, StreamExt};

/// The physical optimizer rule; see the module docs.
#[derive(Debug, Default)]
pub struct YieldAfterJoins;

/// Whether `plan`'s output can outgrow its input many times over.
fn multiplies(plan: &dyn ExecutionPlan) -> bool {
    plan.is::<NestedLoopJoinExec>()
        || plan.is::<HashJoinExec>()
        || plan.is::<CrossJoinExec>()
        || plan.is::<SortMergeJoinExec>()
        || plan.is::<SymmetricHashJoinExec>()
        || plan.is::<UnnestExec>()
}

impl PhysicalOptimizerRule for YieldAfterJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // bottom-up, so that each node is rebuilt at most once (a deep plan
        // costs linear time, not quadratic)
        plan.transform_up(|node| {
            let children = node.children();
            if node.is::<YieldExec>() || !children.iter().any(|c| multiplies(c.as_ref())) {
                return Ok(Transformed::no(node));
            }
            let wrapped = children
                .into_iter()
                .map(|c| {
                    if multiplies(c.as_ref()) {
                        Arc::new(YieldExec::new(c.clone())) as Arc<dyn ExecutionPlan>
                    } else {
                        c.clone()
                    }
                })
                .collect();
            Ok(Transformed::yes(replace_children_if_necessary(
                node, wrapped,
            )?))
        })
        .map(|t| t.data)
        .map(|plan| {
            // a join at the root has no parent to wrap it
            if multiplies(plan.as_ref()) {
                Arc::new(YieldExec::new(plan)) as Arc<dyn ExecutionPlan>
            } else {
                plan
            }
        })
    }

    fn name(&self) -> &str {
        "yield_after_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// How long a stream under a [`YieldExec`] works before it yields once.
pub const SLICE: Duration = Duration::from_millis(2);

/// Passes its input through unchanged, yielding to the scheduler after each
/// [`SLICE`] of work; see the module docs.
#[derive(Debug, Clone)]
pub struct YieldExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl YieldExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::clone(input.properties());
        Self { input, properties }
    }
}

impl DisplayAs for YieldExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "YieldExec")
    }
}

impl ExecutionPlan for YieldExec {
    fn name(&self) -> &str {
        "YieldExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("YieldExec has one child, got {}", children.len());
        }
        Ok(Arc::new(YieldExec::new(children.swap_remove(0))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(YieldStream {
            inner: self.input.execute(partition, context)?,
            since: None,
        }))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::clone(&input_stats[0]))
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }
}

/// The stream of a [`YieldExec`].
struct YieldStream {
    inner: SendableRecordBatchStream,
    /// When this stream last started working without a pause.
    since: Option<Instant>,
}

impl Stream for YieldStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= SLICE {
            // a slice of work done: let the scheduler run timers and other tasks
            self.since = None;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let polled = self.inner.poll_next_unpin(cx);
        if polled.is_pending() {
            // waiting for input is a pause too
            self.since = None;
        }
        polled
    }
}

impl RecordBatchStream for YieldStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;

    fn context() -> SessionContext {
        SessionContext::new_with_state(
            SessionStateBuilder::new()
                .with_default_features()
                .with_physical_optimizer_rule(Arc::new(YieldAfterJoins))
                .build(),
        )
    }

    /// A join that runs for seconds: 900 M pairs, none kept.
    const SLOW_JOIN: &str = "SELECT count(*) FROM generate_series(1, 30000) a, \
                             generate_series(1, 30000) b WHERE a.value + b.value < 0";

    #[tokio::test]
    async fn every_join_gets_a_yield_point() {
        let ctx = context();
        let plan = ctx
            .sql(SLOW_JOIN)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let join = lines
            .iter()
            .position(|l| l.starts_with("NestedLoopJoinExec"))
            .unwrap();
        assert_eq!(lines[join - 1], "YieldExec", "{text}");
    }

    /// A timeout stops a join's work, not only the wait for it: the pairs the
    /// join's filter evaluated stop growing once the query is dropped, long
    /// before the join's end. (Without the yield points, dropping the
    /// runtime waits for the aggregate's loop over the join's output: every
    /// pair is evaluated.) The filter keeps half the pairs; a nested-loop
    /// join whose filter keeps none works through a whole probe batch in one
    /// poll, which no yield point above it can shorten.
    #[test]
    fn a_timeout_stops_the_work_of_a_join() {
        use datafusion::arrow::datatypes::DataType;
        use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
        use std::sync::atomic::{AtomicU64, Ordering};

        static PAIRS: AtomicU64 = AtomicU64::new(0);
        let counted = create_udf(
            "counted",
            vec![DataType::Int64],
            DataType::Int64,
            Volatility::Volatile,
            Arc::new(|args: &[ColumnarValue]| {
                let n = match &args[0] {
                    ColumnarValue::Array(a) => a.len() as u64,
                    ColumnarValue::Scalar(_) => 1,
                };
                PAIRS.fetch_add(n, Ordering::Relaxed);
                Ok(args[0].clone())
            }),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let ctx = context();
            ctx.register_udf(counted);
            let sql = "SELECT count(*) FROM generate_series(1, 40000) a, generate_series(1, 40000) b \
                       WHERE counted(a.value + b.value) % 2 = 0";
            let df = ctx.sql(sql).await.unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(300), df.collect()).await;
            assert!(waited.is_err(), "the join ended before its timeout");
        });
        // dropping the runtime waits for every task to reach a yield point
        drop(runtime);
        let stopped_at = PAIRS.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(PAIRS.load(Ordering::Relaxed), stopped_at, "work goes on");
        let all = 40_000u64 * 40_000;
        assert!(
            stopped_at < all / 4,
            "{stopped_at} of {all} pairs evaluated: the join ran on after its timeout"
        );
    }

    /// More nested joins than tokio's cooperative budget (128) still run: the
    /// yield points count time per stream, not the task's budget.
    #[tokio::test]
    async fn deeply_nested_joins_make_progress() {
        let ctx = context();
        let sql = format!("SELECT 1{}", " INTERSECT SELECT 1".repeat(200));
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }
}
