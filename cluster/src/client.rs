//! The front end's side: [`Cluster`] runs a session's optimized plans on a
//! Ballista scheduler and streams the results back.
//!
//! What runs where:
//! - here (the front end): parsing, the access check, planning against the
//!   principal's governed catalog (masks and row filters are part of the plan),
//!   optimization, the audit trail, and every plan the cluster cannot take:
//!   one reading `system.*`, `information_schema` or a session's in-memory
//!   table, one holding an `IN`/`EXISTS` subquery or a window function (which
//!   Ballista 55 computed wrongly over shuffled partitions in our tests),
//!   statements and `EXPLAIN`;
//! - on the cluster: the query itself — scans of the lake's Parquet files,
//!   joins, aggregates, citylake's functions — split into stages by the
//!   scheduler and run by the executors.
//!
//! Dropping a result stream before its end (a client that cancels or goes
//! away) cancels the cluster's job. A job the scheduler refuses because it
//! lost an executor and ran stages again ([`crate::verified`]) is run once
//! more as a new job before anything is returned.
//!
//! With a [`ClusterTls`] every connection — to the scheduler, and to the
//! executors for results — is mutual TLS; a scheduler on an address other
//! than loopback is refused without it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{CancelJobParams, GetJobStatusParams};
use citylake_engine::catalog::parquet::LakeParquetFormat;
use citylake_engine::{EngineError, Result};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingTable, ListingTableConfig};
use datafusion::datasource::{TableProvider, provider_as_source, source_as_provider};
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::logical_expr::{Expr, LogicalPlan, TableScan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::{Stream, StreamExt};

use crate::tls::ClusterTls;

/// A Ballista cluster, addressed `df://host:port` (the scheduler).
#[derive(Debug, Clone)]
pub struct Cluster {
    location: String,
    /// `http://host:port` of the scheduler's gRPC service (made `https` by
    /// `tls`).
    scheduler: String,
    tls: Option<ClusterTls>,
}

impl Cluster {
    /// Connects to the scheduler at `location` (`df://host:port`), over mutual
    /// TLS with `tls`, failing clearly when it is not there, when it does not
    /// accept this node's certificate, or when it is not on loopback and `tls`
    /// is not given.
    pub async fn connect(location: &str, tls: Option<ClusterTls>) -> Result<Self> {
        let bad = |why: String| EngineError::Config(format!("--cluster {location}: {why}"));
        let url = url::Url::parse(location).map_err(|e| bad(e.to_string()))?;
        if url.scheme() != "df" {
            return Err(bad("expected df://HOST:PORT".into()));
        }
        let host = url.host_str().ok_or_else(|| bad("no host".into()))?;
        let port = url.port().ok_or_else(|| bad("no port".into()))?;
        // (`df:` is not a scheme the URL standard knows, so its host is
        // opaque text, an IP address included)
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && tls.is_none() {
            return Err(bad(
                "a scheduler beyond loopback is reached only over mutual TLS (--cluster-ca, \
                 --cluster-cert, --cluster-key): plans and results would otherwise cross the \
                 network unauthenticated and in plain text"
                    .into(),
            ));
        }
        let scheduler = format!("http://{host}:{port}");
        let cluster = Self {
            location: location.to_string(),
            scheduler,
            tls,
        };
        // A call, not only a connection: a TLS 1.3 server refuses a client's
        // certificate after the handshake, on the first request.
        let mut client = cluster.scheduler_client().await.map_err(|e| {
            EngineError::Storage(format!(
                "cannot reach the cluster's scheduler at {location}: {}",
                causes(&e)
            ))
        })?;
        client
            .get_job_status(GetJobStatusParams {
                job_id: "citylake-connection-check".into(),
            })
            .await
            .map_err(|e| {
                EngineError::Storage(format!(
                    "the cluster's scheduler at {location} refused this node ({}): {}",
                    if cluster.tls.is_some() {
                        "is this node's certificate signed by the cluster's CA?"
                    } else {
                        "it may require mutual TLS: --cluster-ca, --cluster-cert, --cluster-key"
                    },
                    e.message()
                ))
            })?;
        Ok(cluster)
    }

    /// A client of the scheduler's gRPC service.
    async fn scheduler_client(
        &self,
    ) -> std::result::Result<SchedulerGrpcClient<tonic::transport::Channel>, tonic::transport::Error>
    {
        let plain = tonic::transport::Endpoint::from_shared(self.scheduler.clone())?;
        let endpoint = match &self.tls {
            Some(tls) => tls.secure(&plain)?,
            None => plain,
        }
        .connect_timeout(std::time::Duration::from_secs(5));
        Ok(SchedulerGrpcClient::new(endpoint.connect().await?))
    }

    /// Submits `plan` as a job and waits for it to end: its first batch (or
    /// its error, or nothing) and the rest of its results.
    async fn run_job(
        &self,
        ballista: &SessionState,
        plan: &LogicalPlan,
    ) -> Result<(Option<datafusion::error::Result<RecordBatch>>, CancelOnDrop)> {
        let physical = ballista
            .query_planner()
            .create_physical_plan(plan, ballista)
            .await?;
        let job = job_of(&physical);
        let stream = datafusion::physical_plan::execute_stream(physical, ballista.task_ctx())?;
        let mut results = CancelOnDrop {
            inner: stream,
            job,
            cluster: self.clone(),
            finished: false,
        };
        // (the first batch, or the job's error, comes once the job has ended)
        let first = results.next().await;
        Ok((first, results))
    }
}

/// An error with its causes, `outer: inner: …` (tonic's transport errors say
/// only "transport error" at the top).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = cause.source();
    }
    text
}

/// A job that failed because a task's operator did not fit in its executor's
/// memory (a hash join's build side cannot spill) reaches the front end as the
/// job's failure text: it is a resource limit, said as one (RESOURCE_EXHAUSTED,
/// outcome `over_limit`), without the job's internals.
fn out_of_memory(e: DataFusionError) -> DataFusionError {
    const MARK: &str = "Resources exhausted";
    let text = e.to_string();
    match text.find(MARK) {
        Some(at) => DataFusionError::ResourcesExhausted(format!(
            "the query needs more memory than a cluster executor gives one task (its \
             --memory-limit shared by its slots): {}",
            text[at + MARK.len()..].trim_start_matches([':', ' '])
        )),
        None => e,
    }
}

/// Why `plan` cannot run on the cluster, if it cannot.
fn local_only(plan: &LogicalPlan) -> Option<String> {
    let mut why = None;
    let mut scans = 0;
    let _ = plan.apply_with_subqueries(|node| {
        let reason = match node {
            LogicalPlan::TableScan(scan) => {
                scans += 1;
                let source = source_as_provider(&scan.source).ok();
                let listing = source
                    .as_ref()
                    .is_some_and(|p| p.downcast_ref::<ListingTable>().is_some());
                let delta = source.as_ref().is_some_and(|p| {
                    p.downcast_ref::<citylake_engine::catalog::delta::DeltaDataset>()
                        .is_some()
                });
                if delta {
                    Some(format!(
                        "it reads {}, a Delta table whose snapshot is resolved in this process",
                        scan.table_name
                    ))
                } else {
                    (!listing).then(|| {
                        format!("it reads {}, which lives in this process", scan.table_name)
                    })
                }
            }
            LogicalPlan::Extension(_) | LogicalPlan::RecursiveQuery(_) => Some(format!(
                "{} plans are not sent to the cluster",
                node.display()
            )),
            // Ballista 55 returned wrong rows for window functions over shuffled
            // partitions (built-in ones too: `max(x) OVER (PARTITION BY day)`
            // after a GROUP BY), so windows stay here, where they are right.
            LogicalPlan::Window(_) => Some(
                "it has window functions, which Ballista 55 computes wrongly over shuffled \
                 partitions"
                    .to_string(),
            ),
            _ => {
                let mut subquery = false;
                let _ = node.apply_expressions(|e| {
                    subquery |= e
                        .exists(|e| {
                            // (a scalar subquery travels; these do not)
                            Ok(matches!(e, Expr::InSubquery(_) | Expr::Exists(_)))
                        })
                        .unwrap_or(false);
                    Ok(TreeNodeRecursion::Continue)
                });
                subquery.then(|| "it keeps a subquery expression".to_string())
            }
        };
        if reason.is_some() {
            why = reason;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    why.or_else(|| (scans == 0).then(|| "it reads no dataset".to_string()))
}

/// The plan with each dataset's Parquet format as DataFusion's own: the
/// error-naming wrapper (`LakeParquetFormat`) works in this process only, and
/// what travels to the scheduler must be a format it knows.
fn portable(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(table) = source_as_provider(&scan.source)?
            .downcast_ref::<ListingTable>()
            .map(|t| (t.table_paths().clone(), t.options().clone(), t.schema()))
        else {
            return Ok(Transformed::no(node));
        };
        let (paths, mut options, schema) = table;
        let Some(lake) = options.format.downcast_ref::<LakeParquetFormat>() else {
            return Ok(Transformed::no(node));
        };
        options.format =
            Arc::new(ParquetFormat::default().with_options(lake.inner().options().clone()));
        let file_schema: SchemaRef = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| {
                    !options
                        .table_partition_cols
                        .iter()
                        .any(|(p, _)| p == f.name())
                })
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let table = ListingTable::try_new(
            ListingTableConfig::new_with_multi_paths(paths)
                .with_listing_options(options)
                .with_schema(file_schema),
        )?;
        let scan = TableScan {
            source: provider_as_source(Arc::new(table)),
            ..scan.clone()
        };
        Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
    })?;
    Ok(plan.data)
}

/// The distributed query node of a physical plan (its root, as Ballista plans
/// it), which learns its job's id once submitted.
type Job = Arc<dyn ExecutionPlan>;

fn job_of(plan: &Arc<dyn ExecutionPlan>) -> Option<Job> {
    if plan.is::<DistributedQueryExec<LogicalPlanNode>>() {
        return Some(Arc::clone(plan));
    }
    plan.children().into_iter().find_map(job_of)
}

fn job_id(job: &Job) -> Option<String> {
    job.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()?
        .job_id()
        .map(|id| id.to_string())
}

#[async_trait::async_trait]
impl citylake_engine::remote::RemoteExecutor for Cluster {
    fn location(&self) -> &str {
        &self.location
    }

    fn accepts(&self, plan: &LogicalPlan) -> std::result::Result<(), String> {
        match local_only(plan) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    async fn execute(
        &self,
        state: &SessionState,
        plan: LogicalPlan,
    ) -> Result<SendableRecordBatchStream> {
        let plan = portable(plan)?;
        let mut ballista = state.clone().upgrade_for_ballista(self.scheduler.clone())?;
        *ballista.config_mut() = crate::node::static_planner(std::mem::take(ballista.config_mut()));
        if let Some(tls) = &self.tls {
            let config = std::mem::take(ballista.config_mut())
                .with_ballista_use_tls(true)
                .with_ballista_override_create_grpc_client_endpoint(tls.endpoint_override());
            *ballista.config_mut() = config;
        }
        // A job that lost an executor is refused by the scheduler
        // (`crate::verified`) and run once more, as a new job on the executors
        // left. Nothing is passed on before the job has ended.
        let (mut first, mut results) = self.run_job(&ballista, &plan).await?;
        if let Some(Err(e)) = &first
            && e.to_string().contains(crate::verified::RERUN)
        {
            tracing::warn!(error = %e, "running the query again as a new cluster job");
            (first, results) = self.run_job(&ballista, &plan).await?;
        }
        let first = first.map(|r| r.map_err(out_of_memory));
        let schema = results.schema();
        let rows = futures::stream::iter(first).chain(results);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }
}

/// A cluster job's results; dropped before their end, the job is cancelled.
struct CancelOnDrop {
    inner: SendableRecordBatchStream,
    job: Option<Job>,
    cluster: Cluster,
    finished: bool,
}

impl Stream for CancelOnDrop {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if matches!(next, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.finished = true;
        }
        next
    }
}

impl RecordBatchStream for CancelOnDrop {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(job_id) = self.job.as_ref().and_then(job_id) else {
            return;
        };
        let cluster = self.cluster.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(job = %job_id, "no runtime to cancel the cluster job on");
            return;
        };
        runtime.spawn(async move {
            let result = async {
                cluster
                    .scheduler_client()
                    .await?
                    .cancel_job(CancelJobParams {
                        job_id: job_id.clone(),
                    })
                    .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
            .await;
            match result {
                Ok(()) => {
                    tracing::info!(job = %job_id, "cluster job cancelled: its results were dropped")
                }
                Err(e) => {
                    tracing::warn!(job = %job_id, error = %e, "cannot cancel the cluster job")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that ran out of its executor's memory is a resource limit at
    /// the front end, said without the job's internals; other failures pass.
    #[test]
    fn a_job_out_of_memory_is_a_resource_limit() {
        let failed = DataFusionError::Execution(
            "Job aBcD12 failed: Task 3 of stage 2 failed: Resources exhausted: Failed to \
             allocate additional 64.0 MB for HashJoinInput[1]"
                .into(),
        );
        match out_of_memory(failed) {
            DataFusionError::ResourcesExhausted(text) => {
                assert!(text.contains("--memory-limit"), "{text}");
                assert!(
                    text.contains("Failed to allocate additional 64.0 MB"),
                    "{text}"
                );
                assert!(!text.contains("aBcD12"), "{text}");
            }
            other => panic!("{other}"),
        }
        let other = DataFusionError::Execution("Job x failed: division by zero".into());
        assert!(matches!(
            out_of_memory(other),
            DataFusionError::Execution(t) if t.contains("division by zero")
        ));
    }
}
