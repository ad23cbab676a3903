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
    /// Write certificates for mutual TLS between the cluster's processes: a CA
    /// (made once, in DIR/ca.pem and DIR/ca.key) and a certificate for one node
    /// (DIR/NAME.pem, DIR/NAME.key) signed by it.
    Certs(CertsArgs),
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory of the CA and the node certificates.
    pub dir: PathBuf,
    /// Host name or IP address the node is reached by (repeat for several).
    #[arg(long = "host", required = true)]
    pub hosts: Vec<String>,
    /// File name of the node's certificate and key.
    #[arg(long, default_value = "node")]
    pub name: String,
}

/// Mutual TLS between the cluster's processes: the CA every node trusts and
/// this node's certificate and key (PEM; `citylake cluster certs` writes them).
/// Required on every node — scheduler, executors, front end — for addresses
/// other than loopback.
#[derive(Debug, Clone, Args)]
pub struct ClusterTlsArgs {
    /// The cluster's CA certificate.
    #[arg(long, env = "CITYLAKE_CLUSTER_CA", requires_all = ["cluster_cert", "cluster_key"])]
    pub cluster_ca: Option<PathBuf>,
    /// This node's certificate, signed by the CA.
    #[arg(long, env = "CITYLAKE_CLUSTER_CERT", requires_all = ["cluster_ca", "cluster_key"])]
    pub cluster_cert: Option<PathBuf>,
    /// This node's private key.
    #[arg(long, env = "CITYLAKE_CLUSTER_KEY", requires_all = ["cluster_ca", "cluster_cert"])]
    pub cluster_key: Option<PathBuf>,
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
    pub tls: ClusterTlsArgs,
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
    pub tls: ClusterTlsArgs,
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

// (only the `cluster` build starts nodes; the checks stay compiled and tested in every build)
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
impl ClusterTlsArgs {
    fn given(&self) -> bool {
        self.cluster_ca.is_some()
    }

    /// Refuses a node listening beyond loopback without mutual TLS.
    pub fn check_bind(&self, bind: SocketAddr) -> anyhow::Result<()> {
        if bind.ip().is_loopback() || self.given() {
            return Ok(());
        }
        anyhow::bail!(
            "refusing to listen on {bind} without mutual TLS: anyone who reaches a cluster node \
             could run plans over the raw lake, around the access policy. Bind to loopback, or \
             give every node --cluster-ca, --cluster-cert and --cluster-key (`citylake cluster \
             certs` writes them)"
        )
    }

    #[cfg(feature = "cluster")]
    fn load(&self) -> anyhow::Result<Option<citylake_cluster::ClusterTls>> {
        match (&self.cluster_ca, &self.cluster_cert, &self.cluster_key) {
            (Some(ca), Some(cert), Some(key)) => {
                Ok(Some(citylake_cluster::ClusterTls::load(ca, cert, key)?))
            }
            _ => Ok(None),
        }
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
            args.tls.check_bind(args.bind)?;
            let tls = args.tls.load()?;
            if tls.is_none() {
                eprintln!(
                    "note: no --cluster-ca/--cluster-cert/--cluster-key: every account on this \
                     machine can reach the scheduler on {}",
                    args.bind
                );
            }
            let options = node::SchedulerOptions {
                bind: args.bind,
                executor_timeout: Duration::from_secs(args.executor_timeout),
                tls,
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
            args.tls.check_bind(args.bind)?;
            let tls = args.tls.load()?;
            let (host, port) = args
                .scheduler
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .with_context(|| format!("--scheduler {}: expected HOST:PORT", args.scheduler))?;
            if args.memory_limit == Some(0) {
                anyhow::bail!(
                    "--memory-limit 0: an executor needs memory to run tasks (omit it for \
                     Ballista's default, a share of the machine's)"
                );
            }
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
                slots,
                work_dir: args.work_dir,
                memory_limit: args.memory_limit.map(|n| n as u64),
                heartbeat: Duration::from_secs(args.heartbeat),
                tls,
            })
            .await
            .map_err(|e| anyhow::anyhow!("executor: {e}"))?;
        }
        ClusterCommand::Certs(args) => {
            let made = citylake_cluster::tls::generate(&args.dir, &args.name, &args.hosts)
                .map_err(|e| anyhow::anyhow!("cluster certs: {e}"))?;
            if made.new_ca {
                println!(
                    "wrote the cluster's CA: {} (give to every node) and its key {} (keep it \
                     off the nodes; it signs more)",
                    made.ca.display(),
                    made.ca_key.display()
                );
            }
            println!(
                "wrote {} and {} for {}: --cluster-ca {} --cluster-cert {} --cluster-key {}",
                made.cert.display(),
                made.key.display(),
                args.hosts.join(", "),
                made.ca.display(),
                made.cert.display(),
                made.key.display()
            );
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
    tls: &ClusterTlsArgs,
) -> anyhow::Result<std::sync::Arc<dyn citylake_engine::remote::RemoteExecutor>> {
    Ok(std::sync::Arc::new(
        citylake_cluster::Cluster::connect(location, tls.load()?).await?,
    ))
}

#[cfg(not(feature = "cluster"))]
pub async fn connect(
    _location: &str,
    _tls: &ClusterTlsArgs,
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
