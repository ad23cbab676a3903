//! The scheduler reports a job successful only when its results can be
//! trusted: every stage ran once.
//!
//! Ballista 55 recovers from a lost executor by running stages again: a
//! running stage whose input was on the lost executor is rolled back and all
//! its tasks run anew, and a successful stage whose output was lost re-runs
//! some tasks. But the outputs of the rolled-back stage's tasks that had
//! already finished were passed to the next stage, and stay there beside
//! those of the new run: the next stage then reads those rows twice, and a
//! query's answer has duplicate groups or inflated sums (seen here: 468 rows
//! for 312 groups after one executor of two was killed mid-query). The
//! re-run tasks get new ids, so the duplicates cannot be told apart from the
//! locations alone.
//!
//! So the one place that hands a job's results out — the job's status, polled
//! or pushed to the front end — checks the job's finished graph first: a job
//! with a stage that ran more than once is reported failed, with
//! [`RERUN`] in its error, and the front end runs the query once more as a new
//! job, on the executors left ([`crate::client`]). Results are never returned
//! from a job that recovered in place; when the check cannot be made (the
//! finished graph is not found) the job fails too.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpc;
use ballista_core::serde::protobuf::{
    CancelJobParams, CancelJobResult, CleanJobDataParams, CleanJobDataResult,
    CreateUpdateSessionParams, CreateUpdateSessionResult, ExecuteQueryParams, ExecuteQueryResult,
    ExecutorStoppedParams, ExecutorStoppedResult, FailedJob, GetJobMetricsParams,
    GetJobMetricsResult, GetJobStatusParams, GetJobStatusResult, HeartBeatParams, HeartBeatResult,
    PollWorkParams, PollWorkResult, RegisterExecutorParams, RegisterExecutorResult,
    RemoveSessionParams, RemoveSessionResult, UpdateTaskStatusParams, UpdateTaskStatusResult,
    job_status,
};
use ballista_scheduler::cluster::JobState;
use ballista_scheduler::scheduler_server::SchedulerServer;
use ballista_scheduler::state::execution_stage::ExecutionStage;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// Part of the error of a job refused because a stage of it ran twice; the
/// front end runs such a query again.
pub const RERUN: &str = "citylake-rerun:";

/// How long a finished job's graph may take to be stored after its status
/// says it succeeded (Ballista tells its subscribers first).
const GRAPH_WAIT: Duration = Duration::from_secs(5);

/// Ballista's scheduler service, with results only from jobs whose stages
/// each ran once.
pub struct VerifiedScheduler {
    inner: SchedulerServer<LogicalPlanNode, PhysicalPlanNode>,
    jobs: Arc<dyn JobState>,
}

impl VerifiedScheduler {
    pub fn new(
        inner: SchedulerServer<LogicalPlanNode, PhysicalPlanNode>,
        jobs: Arc<dyn JobState>,
    ) -> Self {
        Self { inner, jobs }
    }
}

/// `result` as it may be handed out: a successful job that cannot be trusted
/// becomes a failed one.
async fn verify(jobs: &dyn JobState, mut result: GetJobStatusResult) -> GetJobStatusResult {
    let Some(status) = result.status.as_mut() else {
        return result;
    };
    let Some(job_status::Status::Successful(done)) = &status.status else {
        return result;
    };
    let job_id = status.job_id.clone();
    let refusal = match stages_run_again(jobs, &job_id).await {
        Ok(stages) if stages.is_empty() => return result,
        Ok(stages) => {
            tracing::warn!(
                job = %job_id, ?stages,
                "job refused: stages ran again after an executor was lost, and Ballista may \
                 have passed their earlier outputs on as well"
            );
            format!(
                "{RERUN} stages {stages:?} of job {job_id} ran again after an executor was lost; \
                 its results are not returned, as they may hold rows twice"
            )
        }
        Err(why) => {
            tracing::error!(job = %job_id, why, "job refused: its results cannot be checked");
            format!("the results of job {job_id} cannot be checked ({why}); they are not returned")
        }
    };
    status.status = Some(job_status::Status::Failed(FailedJob {
        error: refusal,
        queued_at: done.queued_at,
        started_at: done.started_at,
        ended_at: done.ended_at,
    }));
    result
}

/// The ids of the stages of the finished job `job_id` that ran more than once.
async fn stages_run_again(jobs: &dyn JobState, job_id: &str) -> Result<Vec<usize>, String> {
    let started = tokio::time::Instant::now();
    let graph = loop {
        match jobs.get_execution_graph(&job_id.to_string().into()).await {
            Ok(Some(graph)) => break graph,
            Ok(None) if started.elapsed() < GRAPH_WAIT => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Ok(None) => return Err("its finished plan is not found".into()),
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut again: Vec<usize> = graph
        .stages()
        .iter()
        .filter_map(|(id, stage)| match stage {
            ExecutionStage::Successful(s) if s.stage_attempt_num == 0 => None,
            ExecutionStage::Successful(_) => Some(*id),
            // (a finished job's stages have all succeeded)
            _ => Some(*id),
        })
        .collect();
    again.sort_unstable();
    Ok(again)
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<GetJobStatusResult, Status>> + Send>>;

#[tonic::async_trait]
impl SchedulerGrpc for VerifiedScheduler {
    type ExecuteQueryPushStream = StatusStream;

    async fn execute_query_push(
        &self,
        request: Request<ExecuteQueryParams>,
    ) -> Result<Response<StatusStream>, Status> {
        let response = SchedulerGrpc::execute_query_push(&self.inner, request).await?;
        let (metadata, statuses, extensions) = response.into_parts();
        let jobs = self.jobs.clone();
        let verified = statuses.then(move |item| {
            let jobs = jobs.clone();
            async move {
                match item {
                    Ok(result) => Ok(verify(jobs.as_ref(), result).await),
                    Err(e) => Err(e),
                }
            }
        });
        Ok(Response::from_parts(
            metadata,
            Box::pin(verified) as StatusStream,
            extensions,
        ))
    }

    async fn get_job_status(
        &self,
        request: Request<GetJobStatusParams>,
    ) -> Result<Response<GetJobStatusResult>, Status> {
        let response = SchedulerGrpc::get_job_status(&self.inner, request).await?;
        let (metadata, result, extensions) = response.into_parts();
        let result = verify(self.jobs.as_ref(), result).await;
        Ok(Response::from_parts(metadata, result, extensions))
    }

    // The rest is Ballista's own.

    async fn poll_work(
        &self,
        request: Request<PollWorkParams>,
    ) -> Result<Response<PollWorkResult>, Status> {
        SchedulerGrpc::poll_work(&self.inner, request).await
    }

    async fn register_executor(
        &self,
        request: Request<RegisterExecutorParams>,
    ) -> Result<Response<RegisterExecutorResult>, Status> {
        SchedulerGrpc::register_executor(&self.inner, request).await
    }

    async fn heart_beat_from_executor(
        &self,
        request: Request<HeartBeatParams>,
    ) -> Result<Response<HeartBeatResult>, Status> {
        SchedulerGrpc::heart_beat_from_executor(&self.inner, request).await
    }

    async fn update_task_status(
        &self,
        request: Request<UpdateTaskStatusParams>,
    ) -> Result<Response<UpdateTaskStatusResult>, Status> {
        SchedulerGrpc::update_task_status(&self.inner, request).await
    }

    async fn create_update_session(
        &self,
        request: Request<CreateUpdateSessionParams>,
    ) -> Result<Response<CreateUpdateSessionResult>, Status> {
        SchedulerGrpc::create_update_session(&self.inner, request).await
    }

    async fn remove_session(
        &self,
        request: Request<RemoveSessionParams>,
    ) -> Result<Response<RemoveSessionResult>, Status> {
        SchedulerGrpc::remove_session(&self.inner, request).await
    }

    async fn execute_query(
        &self,
        request: Request<ExecuteQueryParams>,
    ) -> Result<Response<ExecuteQueryResult>, Status> {
        SchedulerGrpc::execute_query(&self.inner, request).await
    }

    async fn get_job_metrics(
        &self,
        request: Request<GetJobMetricsParams>,
    ) -> Result<Response<GetJobMetricsResult>, Status> {
        SchedulerGrpc::get_job_metrics(&self.inner, request).await
    }

    async fn executor_stopped(
        &self,
        request: Request<ExecutorStoppedParams>,
    ) -> Result<Response<ExecutorStoppedResult>, Status> {
        SchedulerGrpc::executor_stopped(&self.inner, request).await
    }

    async fn cancel_job(
        &self,
        request: Request<CancelJobParams>,
    ) -> Result<Response<CancelJobResult>, Status> {
        SchedulerGrpc::cancel_job(&self.inner, request).await
    }

    async fn clean_job_data(
        &self,
        request: Request<CleanJobDataParams>,
    ) -> Result<Response<CleanJobDataResult>, Status> {
        SchedulerGrpc::clean_job_data(&self.inner, request).await
    }
}
