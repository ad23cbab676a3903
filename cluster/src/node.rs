//! The cluster's processes: a Ballista scheduler and executors whose sessions
//! know citylake.
//!
//! What every node adds to Ballista's defaults:
//! - the functions: `citylake_udfs::register_all` (scalar, aggregate, window)
//!   and the policy's `citylake_mask`, so that plans naming them decode, and
//!   the engine's size-checked `repeat`, `lpad`, … (`citylake_engine::bounded`);
//! - the configuration options (`citylake.grade_excellent`, …) that travel with
//!   a query's settings;
//! - object stores: `s3://` locations open a client from the node's own
//!   environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, …) on first use;
//!   credentials are never part of a query's settings;
//! - mutual TLS when given a [`ClusterTls`] (see [`crate::tls`]), and only the
//!   services the cluster needs: the scheduler serves Ballista's scheduler gRPC
//!   service alone (no REST API, no Flight SQL, no Flight proxy: nobody but the
//!   front end and the executors has business there), and tasks are pulled by
//!   the executors, which therefore run no task-launch service;
//! - the scheduler returns results only from jobs whose stages each ran once
//!   ([`crate::verified`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::error::BallistaError;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_executor::flight_service::BallistaFlightService;
use ballista_executor::shutdown::Shutdown;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::create_scheduler;
use citylake_engine::storage::EnvObjectStoreRegistry;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use crate::tls::ClusterTls;
use crate::verified::VerifiedScheduler;

/// Errors of starting or running a node.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The session configuration every node starts from: Ballista's, with
/// citylake's options, and with `tls` every connection Ballista opens from it
/// (to the scheduler, to executors for shuffle data and results) over mutual
/// TLS.
pub fn session_config(tls: Option<&ClusterTls>) -> SessionConfig {
    let config = static_planner(
        SessionConfig::new_with_ballista()
            .with_option_extension(citylake_udfs::finance::EvaluationOptions::default()),
    );
    match tls {
        Some(tls) => config
            .with_ballista_use_tls(true)
            .with_ballista_override_create_grpc_client_endpoint(tls.endpoint_override()),
        None => config,
    }
}

/// `config` with Ballista's static distributed planner instead of its adaptive
/// one (AQE, on by default in Ballista 55): after an executor dies mid-job the
/// adaptive planner resubmits the stages whose map output it held, then loses
/// track of them ("Can't find active stage to update stage outputs") and the
/// job never ends — the static planner re-runs them and the job completes
/// (`test_cluster.py::test_an_executor_stopped_mid_query`).
///
/// Joins are planned as on a single node: hash joins, a build side under
/// `hash_join_single_partition_threshold` broadcast (`CollectLeft`), larger
/// ones partitioned. Ballista turns `prefer_hash_join` off so that its adaptive
/// planner picks the join once it has measured the build side; the static
/// planner measures nothing, and DataFusion's physical planner then makes every
/// equi-join a sort-merge join — a full-year fact table joined with a
/// thousand-row dimension was shuffled and sorted (105 M rows, 7× the single
/// node's time, benches/README.md). A hash join's build side is held in the
/// executor's memory pool (`--memory-limit`); one that does not fit fails the
/// query with "resources exhausted", it does not take the executor down.
pub fn static_planner(config: SessionConfig) -> SessionConfig {
    config
        .set_bool(
            ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED,
            false,
        )
        .set_bool("datafusion.optimizer.prefer_hash_join", true)
}

/// A runtime whose stores open from the environment, sharing `registry`.
fn runtime(
    registry: &Arc<EnvObjectStoreRegistry>,
    temp_dir: Option<&str>,
) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let mut builder = RuntimeEnvBuilder::new().with_object_store_registry(registry.clone());
    if let Some(dir) = temp_dir {
        builder = builder.with_temp_file_path(dir);
    }
    builder.build_arc()
}

/// A session state with Ballista's planner rules and citylake's functions.
fn session_state(
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
) -> datafusion::error::Result<SessionState> {
    let mut state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
        .build();
    register_functions(&mut state)?;
    Ok(state)
}

/// citylake's functions and the policy's mask function, added to `state`.
pub fn register_functions(state: &mut SessionState) -> datafusion::error::Result<()> {
    citylake_udfs::register_all(state)?;
    citylake_engine::bounded::register(state)?;
    datafusion::execution::FunctionRegistry::register_udf(
        state,
        citylake_engine::governance::mask_udf(),
    )?;
    Ok(())
}

/// How to run a scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub bind: SocketAddr,
    /// An executor silent for this long is lost: its tasks are rescheduled.
    pub executor_timeout: Duration,
    /// Mutual TLS with the front end and the executors.
    pub tls: Option<ClusterTls>,
}

/// Runs a scheduler until the process ends. `ready` receives the bound address.
pub async fn run_scheduler(
    options: SchedulerOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    // No catalog: the scheduler resolves no dataset by name for anyone. The
    // front end sends optimized plans that carry their files' locations, after
    // the access policy; the stores come from this node's environment.
    let registry = Arc::new(EnvObjectStoreRegistry::new());
    let listener = tokio::net::TcpListener::bind(options.bind).await?;
    let addr = listener.local_addr()?;
    let builder_registry = registry.clone();
    let timeout = options.executor_timeout.as_secs().max(1);
    let tls = options.tls.clone();
    let config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        external_host: addr.ip().to_string(),
        bind_port: addr.port(),
        scheduling_policy: TaskSchedulingPolicy::PullStaged,
        executor_timeout_seconds: timeout,
        no_executors_grace_period_seconds: timeout,
        expire_dead_executor_interval_seconds: timeout.clamp(1, 5),
        override_create_grpc_client_endpoint: tls.as_ref().map(ClusterTls::endpoint_override),
        ..Default::default()
    }
    .with_override_config_producer(Arc::new(move || session_config(tls.as_ref())))
    .with_override_session_builder(Arc::new(move |config: SessionConfig| {
        session_state(config, runtime(&builder_registry, None)?)
    }));
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config).await?;
    let jobs = cluster.job_state();
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config.clone()).await?;
    tokio::spawn(log_executors_joining(scheduler.state.clone()));
    let service = SchedulerGrpcServer::new(VerifiedScheduler::new(scheduler, jobs))
        .max_encoding_message_size(config.grpc_server_max_encoding_message_size as usize)
        .max_decoding_message_size(config.grpc_server_max_decoding_message_size as usize);
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = &options.tls {
        server = server.tls_config(tls.server())?;
    }
    ready(addr);
    server
        .add_service(service)
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await?;
    Ok(())
}

/// Logs each executor the first time it polls the scheduler (Ballista logs
/// their removal; under the pull policy it logs no arrival).
async fn log_executors_joining(
    state: Arc<ballista_scheduler::state::SchedulerState<LogicalPlanNode, PhysicalPlanNode>>,
) {
    let mut known = std::collections::HashSet::new();
    loop {
        if let Ok(executors) = state.executor_manager.get_executors_state().await {
            for (metadata, ..) in &executors {
                if !known.contains(&metadata.id) {
                    tracing::info!(
                        executor = %metadata.id,
                        flight = %format!("{}:{}", metadata.host, metadata.port),
                        "executor joined"
                    );
                }
            }
            known = executors.into_iter().map(|(m, ..)| m.id).collect();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How to run an executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's host and port.
    pub scheduler: (String, u16),
    /// Address of the executor's Arrow Flight service (shuffle and results).
    pub bind: SocketAddr,
    /// Tasks run at once.
    pub slots: usize,
    /// Where shuffle files and spills go (default: a temporary directory).
    pub work_dir: Option<PathBuf>,
    /// Memory for query execution on this executor (default: Ballista's, a
    /// share of the machine's memory).
    pub memory_limit: Option<u64>,
    /// How often the executor tells the scheduler it is alive.
    pub heartbeat: Duration,
    /// Mutual TLS with the scheduler, the front end and the other executors.
    pub tls: Option<ClusterTls>,
}

/// Runs an executor until the process ends.
pub async fn run_executor(options: ExecutorOptions) -> Result<(), Error> {
    let registry = Arc::new(EnvObjectStoreRegistry::new());
    let tls = options.tls.clone();
    let functions_state = session_state(session_config(tls.as_ref()), runtime(&registry, None)?)?;
    let functions = Arc::new(BallistaFunctionRegistry::from(&functions_state));
    let work_dir = options
        .work_dir
        .as_ref()
        .map(|d| d.to_string_lossy().into_owned());
    if let Some(dir) = &options.work_dir {
        std::fs::create_dir_all(dir)?;
    }
    let temp_dir = work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: options.bind.ip().to_string(),
        external_host: Some(options.bind.ip().to_string()),
        port: options.bind.port(),
        // (pull-staged: no task-launch service is started; Ballista still
        // wants a port number for the executor's metadata)
        grpc_port: 0,
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        scheduler_host: options.scheduler.0.clone(),
        scheduler_port: options.scheduler.1,
        scheduler_connect_timeout_seconds: 30,
        vcores: options.slots.max(1),
        work_dir,
        special_mod_log_level: "WARN".into(),
        print_thread_info: false,
        executor_heartbeat_interval_seconds: options.heartbeat.as_secs().max(1),
        memory_pool_size: options.memory_limit,
        override_function_registry: Some(functions),
        override_config_producer: Some(Arc::new(move || session_config(tls.as_ref()))),
        override_runtime_producer: Some(Arc::new(move |_config: &SessionConfig| {
            runtime(&registry, temp_dir.as_deref())
        })),
        override_create_grpc_client_endpoint: options
            .tls
            .as_ref()
            .map(ClusterTls::endpoint_override),
        override_arrow_flight_service: options.tls.clone().map(flight_over_tls),
        ..Default::default()
    };
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}

/// The executor's Arrow Flight service (shuffle data and results, Ballista's
/// own) served over mutual TLS.
fn flight_over_tls(tls: ClusterTls) -> Arc<ballista_executor::ArrowFlightServerProvider> {
    let defaults = ExecutorProcessConfig::default();
    let decoding = defaults.grpc_max_decoding_message_size as usize;
    let encoding = defaults.grpc_max_encoding_message_size as usize;
    Arc::new(
        move |work_dir: String, address: SocketAddr, mut shutdown: Shutdown, _| {
            let server_tls = tls.server();
            tokio::spawn(async move {
                let service = FlightServiceServer::new(BallistaFlightService::new(work_dir))
                    .max_decoding_message_size(decoding)
                    .max_encoding_message_size(encoding);
                tonic::transport::Server::builder()
                    .tls_config(server_tls)
                    .map_err(BallistaError::TonicError)?
                    .add_service(service)
                    .serve_with_shutdown(address, async move { shutdown.recv().await })
                    .await
                    .map_err(BallistaError::TonicError)
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    /// The physical plan of a fact table joined with a dimension, planned
    /// with `config` as the scheduler plans it.
    async fn join_plan(config: SessionConfig) -> String {
        let registry = Arc::new(EnvObjectStoreRegistry::new());
        let state = session_state(
            config.with_target_partitions(4),
            runtime(&registry, None).unwrap(),
        )
        .unwrap();
        let ctx = SessionContext::new_with_state(state);
        ctx.sql("CREATE TABLE fact AS SELECT value % 100 AS k, value AS v FROM generate_series(1, 10000)")
            .await
            .unwrap();
        ctx.sql("CREATE TABLE dim AS SELECT value AS k, 'd' || value AS name FROM generate_series(1, 100)")
            .await
            .unwrap();
        let plan = ctx
            .sql("SELECT dim.name, sum(fact.v) FROM fact JOIN dim ON fact.k = dim.k GROUP BY 1")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string()
    }

    /// What the scheduler plans for a fact table joined with a dimension: a
    /// hash join, not a sort of the fact table (see [`static_planner`]).
    #[tokio::test]
    async fn joins_are_planned_as_on_a_single_node() {
        let shown = join_plan(session_config(None)).await;
        assert!(
            shown.contains("HashJoinExec") && !shown.contains("SortMergeJoinExec"),
            "{shown}"
        );
        // what Ballista's defaults alone plan without its adaptive planner
        let ballista = join_plan(SessionConfig::new_with_ballista().set_bool(
            ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED,
            false,
        ))
        .await;
        assert!(ballista.contains("SortMergeJoinExec"), "{ballista}");
    }
}
