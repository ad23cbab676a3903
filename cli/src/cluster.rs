//! `citylake cluster scheduler|executor` and the `--cluster` flag: citylake on
//! Apache DataFusion Ballista. Built only with the `cluster` feature
//! (`cargo build --release -p citylake-cli --features cluster`), so the default
//! build does not compile Ballista.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Run a Ballista scheduler that knows citylake's functions and stores.
    Scheduler(SchedulerArgs),
    /// Run a Ballista executor that knows citylake's functions and stores.
    Executor(ExecutorArgs),
}

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(
        long,
        env = "CITYLAKE_SCHEDULER_BIND",
        default_value = "127.0.0.1:50050"
    )]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub network: Network,
    /// Seconds without a heartbeat after which an executor is lost and its
    /// tasks run elsewhere.
    #[arg(long, default_value_t = 30)]
    pub executor_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// The scheduler, HOST:PORT.
    #[arg(long, env = "CITYLAKE_SCHEDULER")]
    pub scheduler: String,
    /// Address of the executor's Arrow Flight service (shuffle data, results).
    #[arg(long, default_value = "127.0.0.1:50060")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub network: Network,
    /// Port of the executor's gRPC service (default: the Flight port + 1).
    #[arg(long)]
    pub grpc_port: Option<u16>,
    /// Tasks run at once (default: the number of cores).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Directory for shuffle files and spills (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Memory for query execution on this executor (e.g. 4GiB).
    #[arg(long, value_parser = crate::args::parse_size)]
    pub memory_limit: Option<usize>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, default_value_t = 5)]
    pub heartbeat: u64,
}

/// Where a cluster node may listen.
#[derive(Debug, Args)]
pub struct Network {
    /// Listen on an address other than loopback although the cluster's gRPC and
    /// Flight endpoints authenticate nobody (Ballista 55 has no hook for it): pass
    /// it only when nothing but the front end and the other nodes can reach the
    /// address (a private network, a firewall).
    #[arg(long)]
    pub unauthenticated_network: bool,
}

impl Network {
    /// Refuses a non-loopback `bind` unless the operator said the network is closed.
    pub fn check(&self, bind: SocketAddr) -> anyhow::Result<()> {
        if bind.ip().is_loopback() || self.unauthenticated_network {
            return Ok(());
        }
        anyhow::bail!(
            "refusing to listen on {bind}: a cluster node authenticates no caller, so anyone who \
             reaches it could run plans over the raw lake, around the access policy. Bind to \
             loopback, or pass --unauthenticated-network if only the front end and the other \
             nodes can reach this address"
        )
    }
}

#[cfg(feature = "cluster")]
pub async fn run(command: ClusterCommand) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use std::time::Duration;

    use anyhow::Context;
    use citylake_cluster::node;
    match command {
        ClusterCommand::Scheduler(args) => {
            args.network.check(args.bind)?;
            let options = node::SchedulerOptions {
                bind: args.bind,
                executor_timeout: Duration::from_secs(args.executor_timeout),
            };
            node::run_scheduler(options, |addr| {
                println!("citylake cluster scheduler listening on {addr}");
                println!("  executors: citylake cluster executor --scheduler {addr}");
                println!("  front end: citylake serve --cluster df://{addr}");
                let _ = std::io::stdout().flush();
            })
            .await
            .map_err(|e| anyhow::anyhow!("scheduler: {e}"))?;
        }
        ClusterCommand::Executor(args) => {
            args.network.check(args.bind)?;
            let (host, port) = args
                .scheduler
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .with_context(|| format!("--scheduler {}: expected HOST:PORT", args.scheduler))?;
            let grpc_port = match args.grpc_port {
                Some(p) => p,
                None => args
                    .bind
                    .port()
                    .checked_add(1)
                    .context("--bind: no port after it for gRPC; pass --grpc-port")?,
            };
            let slots = args
                .slots
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            println!(
                "citylake cluster executor on {} ({slots} slots), scheduler {host}:{port}",
                args.bind
            );
            let _ = std::io::stdout().flush();
            node::run_executor(node::ExecutorOptions {
                scheduler: (host, port),
                bind: args.bind,
                grpc_port,
                slots,
                work_dir: args.work_dir,
                memory_limit: args.memory_limit.map(|n| n as u64),
                heartbeat: Duration::from_secs(args.heartbeat),
            })
            .await
            .map_err(|e| anyhow::anyhow!("executor: {e}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "cluster"))]
pub async fn run(_command: ClusterCommand) -> anyhow::Result<ExitCode> {
    Err(not_built())
}

/// The engine's remote executor for `--cluster df://HOST:PORT`.
#[cfg(feature = "cluster")]
pub async fn connect(
    location: &str,
) -> anyhow::Result<std::sync::Arc<dyn citylake_engine::remote::RemoteExecutor>> {
    Ok(std::sync::Arc::new(
        citylake_cluster::Cluster::connect(location).await?,
    ))
}

#[cfg(not(feature = "cluster"))]
pub async fn connect(
    _location: &str,
) -> anyhow::Result<std::sync::Arc<dyn citylake_engine::remote::RemoteExecutor>> {
    Err(not_built())
}

#[cfg(not(feature = "cluster"))]
fn not_built() -> anyhow::Error {
    anyhow::anyhow!(
        "this citylake was built without cluster support; build it with \
         `cargo build --release -p citylake-cli --features cluster`"
    )
}
