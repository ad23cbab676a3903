//! Command-line arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// citylake: SQL over the city's data lake.
#[derive(Debug, Parser)]
#[command(name = "citylake", version, about)]
pub struct Cli {
    /// Log filter (tracing syntax, e.g. `info` or `citylake_engine=debug`).
    #[arg(long, global = true, env = "CITYLAKE_LOG", default_value = "warn")]
    pub log: String,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(long, global = true, env = "CITYLAKE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the synthetic city data lake (Parquet files and catalog.toml).
    Generate(GenerateArgs),
    /// Run SQL against the lake: one statement with -c, a file with -f, or an interactive shell.
    Sql(SqlArgs),
    /// Serve the lake over Arrow Flight SQL (ADBC, JDBC, pyarrow clients).
    Serve(ServeArgs),
    /// Manage the users of the Flight SQL server.
    User(UserArgs),
    /// Check the datasets' quality: freshness, completeness, validity, uniqueness, partitions.
    Quality(crate::quality::QualityArgs),
    /// Check the audit trail.
    #[command(subcommand)]
    Audit(crate::audit::AuditCommand),
    /// Check a catalog: its format and every dataset's declared columns against its files.
    #[command(subcommand)]
    Catalog(crate::catalog::CatalogCommand),
    /// Run citylake on a Ballista cluster: a scheduler or an executor.
    #[command(subcommand)]
    Cluster(crate::cluster::ClusterCommand),
    /// Write a report (HTML, CSV, Parquet) from the lake.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Personal information in Delta datasets: erase a person's records on request.
    #[command(subcommand)]
    Privacy(crate::tables::PrivacyCommand),
    /// Retention periods of Delta datasets: delete the rows past them.
    #[command(subcommand)]
    Retention(crate::tables::RetentionCommand),
    /// Compact a Delta dataset's small files (from frequent ingests).
    Optimize(crate::tables::OptimizeArgs),
    /// Remove the files of a Delta dataset that no recent version reads.
    Vacuum(crate::tables::VacuumArgs),
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The finance bureau's spending-performance evaluation of a year's special-fund programs.
    Performance(crate::report::PerformanceArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Catalog file: a path or an s3://bucket/prefix/catalog.toml URL. Default:
    /// ./data/lake/catalog.toml, generated (scale 0.1) when absent.
    #[arg(long, env = "CITYLAKE_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "CITYLAKE_BIND", default_value = "127.0.0.1:50051")]
    pub bind: std::net::SocketAddr,
    /// Users file (argon2 hashes; see `citylake user`). Default: demo users beside the catalog.
    #[arg(long, env = "CITYLAKE_USERS")]
    pub users: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "CITYLAKE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "CITYLAKE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Also serve the Postgres wire protocol here (psql, BI tools, drivers), on
    /// the same engine, users, policy and audit trail; off unless given. Beyond
    /// loopback it needs --tls-cert/--tls-key (passwords are sent in clear text
    /// inside TLS).
    #[arg(long, env = "CITYLAKE_PG_BIND")]
    pub pg_bind: Option<std::net::SocketAddr>,
    /// A Postgres portal (a cursor fetched in chunks) whose client fetches nothing
    /// for this long is closed and its query ended, freeing its place among the
    /// running queries (`forever` keeps it).
    #[arg(long, env = "CITYLAKE_PG_PORTAL_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_ttl)]
    pub pg_portal_idle_timeout: CacheTtl,
    /// Most Postgres connections logged in at once, the last three only for
    /// supervisors (roles that read the audit log); a login beyond is refused
    /// with 53300.
    #[arg(long, env = "CITYLAKE_PG_MAX_CONNECTIONS", default_value_t = 512)]
    pub pg_max_connections: usize,
    /// Most Postgres connections one user has logged in at once [default: an
    /// eighth of --pg-max-connections].
    #[arg(long, env = "CITYLAKE_PG_MAX_CONNECTIONS_PER_USER")]
    pub pg_max_connections_per_user: Option<usize>,
    /// Most Postgres connections still logging in at once, a quarter of them
    /// from one address (IPv4, or IPv6 /64); beyond, refused with 53300.
    #[arg(long, env = "CITYLAKE_PG_MAX_STARTUPS", default_value_t = 64)]
    pub pg_max_startups: usize,
    /// Lifetime of a login's bearer token, in seconds.
    #[arg(long, env = "CITYLAKE_TOKEN_TTL", default_value_t = 12 * 3600)]
    pub token_ttl_secs: u64,
    /// Address of the operator endpoints (/metrics, /health, /ready); keep it on
    /// loopback or a private network.
    #[arg(long, env = "CITYLAKE_METRICS_BIND", default_value = "127.0.0.1:9464")]
    pub metrics_bind: Option<std::net::SocketAddr>,
    /// After SIGTERM/SIGINT, how long running queries may finish before they are
    /// cancelled (`forever` waits).
    #[arg(long, env = "CITYLAKE_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_ttl)]
    pub shutdown_grace: CacheTtl,
    /// Flight SQL connections open at once, at most half of them from one
    /// address (IPv4, or IPv6 /64); one beyond is closed as it is accepted.
    #[arg(long, env = "CITYLAKE_MAX_CONNECTIONS", default_value_t = citylake_server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Open prepared statements per user; creating more is refused until some are closed.
    #[arg(long, env = "CITYLAKE_MAX_PREPARED_STATEMENTS", default_value_t = 256)]
    pub max_prepared_statements: usize,
    /// A prepared statement unused this long is closed (`forever` keeps them).
    #[arg(long, env = "CITYLAKE_PREPARED_IDLE_TIMEOUT", default_value = "1h", value_parser = parse_ttl)]
    pub prepared_idle_timeout: CacheTtl,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The users file to change or list.
    #[arg(
        long,
        env = "CITYLAKE_USERS",
        global = true,
        default_value = "data/lake/users.toml"
    )]
    pub users: PathBuf,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password comes from CITYLAKE_PASSWORD or a prompt.
    Add {
        name: String,
        /// A role (repeatable), e.g. admin, analyst.
        #[arg(long, required = true)]
        role: Vec<String>,
        /// The user's department.
        #[arg(long)]
        department: Option<String>,
        /// An attribute KEY=VALUE (repeatable), e.g. district=Xihu.
        #[arg(long)]
        attr: Vec<String>,
        /// The access policy whose roles are allowed (default: policy.toml beside
        /// the users file, else the built-in policy).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Remove a user.
    Remove { name: String },
    /// List users (never passwords).
    List,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Scale factor: 1 is the benchmark lake (~1,000 road segments, ~105 M speed rows), 0.01 the test lake.
    #[arg(long, env = "CITYLAKE_SCALE", default_value_t = 0.1)]
    pub scale: f64,
    /// Output: a directory, or an `s3://bucket/prefix` URL (S3 settings from the AWS_*
    /// environment). The lake root; catalog.toml is written there last.
    #[arg(long, env = "CITYLAKE_OUT", default_value = crate::sql::DEFAULT_LAKE_DIR)]
    pub out: PathBuf,
    /// Random seed: the same scale, seed and year give byte-identical files.
    #[arg(long, env = "CITYLAKE_SEED", default_value_t = citylake_datasets::DEFAULT_SEED)]
    pub seed: u64,
    /// The simulated calendar year.
    #[arg(long, env = "CITYLAKE_YEAR", default_value_t = citylake_datasets::DEFAULT_YEAR)]
    pub year: i32,
    /// Replace an existing lake at --out.
    #[arg(long)]
    pub force: bool,
    /// Table format of the event datasets (the ones partitioned by time):
    /// `parquet` directories, or `delta` tables (versioned: ingest, erasure,
    /// retention, time travel). The dimensions stay Parquet.
    #[arg(long, env = "CITYLAKE_FORMAT", value_enum, default_value_t = LakeFormat::Parquet)]
    pub format: LakeFormat,
    /// For an s3:// output: files larger than this are uploaded in parts of this size
    /// (at least 5MiB, S3's smallest part).
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub upload_part_size: usize,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Catalog file: a path or an s3://bucket/prefix/catalog.toml URL. Default:
    /// ./data/lake/catalog.toml, generated (scale 0.1) when absent.
    #[arg(long, env = "CITYLAKE_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// SQL to run (one or more statements separated by `;`).
    #[arg(short = 'c', long = "command", conflicts_with = "file")]
    pub command: Option<String>,
    /// File of SQL statements to run.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write results to this file instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Print each statement's row count and elapsed time to standard error.
    #[arg(long)]
    pub timing: bool,
    #[command(flatten)]
    pub local: LocalUser,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Who a local command (`sql`, `report`, `quality`) runs as: the OS user with
/// the admin role, or a user of a users file, under the access policy like
/// that user's server queries. Either way its accesses are audited.
#[derive(Debug, Args)]
pub struct LocalUser {
    /// Run as this user of the users file (their roles and attributes; no
    /// password: whoever runs the command can read the lake's files anyway).
    #[arg(long, env = "CITYLAKE_USER")]
    pub user: Option<String>,
    /// The users file for --user (default: users.toml beside the catalog).
    #[arg(long, requires = "user")]
    pub users: Option<PathBuf>,
}

/// Engine settings shared by every command that runs queries.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Memory for query execution (e.g. 2GiB; default: half of the machine's memory); sorts,
    /// joins and aggregates spill to disk beyond it.
    #[arg(long, env = "CITYLAKE_MEMORY_LIMIT", value_parser = parse_size)]
    pub memory_limit: Option<usize>,
    /// Directory for spill files (default: the system temp directory).
    #[arg(long, env = "CITYLAKE_SPILL_DIR")]
    pub spill_dir: Option<PathBuf>,
    /// Partitions a query is split into (default: number of cores; twice that for a lake in an object store).
    #[arg(long, env = "CITYLAKE_TARGET_PARTITIONS")]
    pub target_partitions: Option<usize>,
    /// How long a dataset's file listing is reused before listing the store again
    /// (e.g. 60s, 5m; `0` lists on every query, `forever` until restart). Default 60s.
    #[arg(long, env = "CITYLAKE_LIST_CACHE_TTL", value_parser = parse_ttl)]
    pub list_cache_ttl: Option<CacheTtl>,
    /// The access policy (default: policy.toml beside the catalog, else the built-in default).
    #[arg(long, env = "CITYLAKE_POLICY")]
    pub policy: Option<PathBuf>,
    /// Where the audit trail is written (default: audit/ beside a local catalog, data/audit otherwise).
    #[arg(long, env = "CITYLAKE_AUDIT_DIR")]
    pub audit_dir: Option<PathBuf>,
    /// The audit key (`citylake audit key FILE` makes one): records are sealed with
    /// HMAC-SHA-256 under it, so whoever may write the audit files but does not hold
    /// the key cannot rebuild the chain after removing or changing records. Keep it
    /// off the audit disk, readable by the server's user only.
    #[arg(long, env = "CITYLAKE_AUDIT_KEY")]
    pub audit_key: Option<PathBuf>,
    /// Request texts longer than this are recorded as their start, their length and
    /// their SHA-256 (e.g. 16KiB).
    #[arg(long, env = "CITYLAKE_AUDIT_MAX_REQUEST", value_parser = parse_size, default_value = "16KiB")]
    pub audit_max_request: usize,
    /// Serve requests whose audit record cannot be written (the failure is logged).
    /// Default: such requests are refused with UNAVAILABLE.
    #[arg(long, env = "CITYLAKE_AUDIT_FAIL_OPEN")]
    pub audit_fail_open: bool,
    /// For `benches/audit_load.py` only: acknowledge audit records without
    /// writing them, to measure what the trail costs. Never in production.
    #[arg(long, hide = true)]
    pub benchmark_without_audit: bool,
    /// Memory for cached Parquet footers and page indexes (e.g. 256MiB; 0 turns it off).
    #[arg(long, env = "CITYLAKE_METADATA_CACHE", value_parser = parse_size)]
    pub metadata_cache: Option<usize>,
    /// Stop a query after this long (e.g. 30s, 5m; default: no limit). A role's
    /// query_timeout in the policy replaces it.
    #[arg(long, env = "CITYLAKE_QUERY_TIMEOUT", value_parser = parse_ttl)]
    pub query_timeout: Option<CacheTtl>,
    /// Memory one query may hold (e.g. 1GiB; default: the --memory-limit pool);
    /// operators spill before they fail. A role's memory_per_query replaces it.
    #[arg(long, env = "CITYLAKE_MEMORY_PER_QUERY", value_parser = parse_size)]
    pub memory_per_query: Option<usize>,
    /// Most rows a query may return (default: no limit).
    #[arg(long, env = "CITYLAKE_MAX_RESULT_ROWS")]
    pub max_result_rows: Option<u64>,
    /// Most bytes a query may return (e.g. 512MiB; default: no limit).
    #[arg(long, env = "CITYLAKE_MAX_RESULT_BYTES", value_parser = parse_size)]
    pub max_result_bytes: Option<usize>,
    /// Queries that run at once (default: twice the cores).
    #[arg(long, env = "CITYLAKE_MAX_CONCURRENT_QUERIES")]
    pub max_concurrent_queries: Option<usize>,
    /// Queries that may wait for a slot, in arrival order; beyond, refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "CITYLAKE_QUERY_QUEUE", default_value_t = citylake_engine::config::DEFAULT_QUERY_QUEUE)]
    pub query_queue: usize,
    /// Slots only light queries take, besides --max-concurrent-queries
    /// (default: four per core): cockpit queries do not queue behind
    /// year-long scans. 0: light queries wait like any other.
    #[arg(long, env = "CITYLAKE_LIGHT_QUERY_SLOTS")]
    pub light_query_slots: Option<usize>,
    /// A query whose files to scan (after partition and file pruning) are
    /// fewer bytes than this is light (one whose work cannot be estimated by
    /// the bytes it reads never is).
    #[arg(long, env = "CITYLAKE_LIGHT_QUERY_SCAN", default_value = "32MiB", value_parser = parse_size)]
    pub light_query_scan: usize,
    /// Worker threads light queries run on, beside the others' (default: the
    /// cores), so long scans cannot take all of the processor from them; 0:
    /// they run on the same threads as the others.
    #[arg(long, env = "CITYLAKE_LIGHT_QUERY_THREADS")]
    pub light_query_threads: Option<usize>,
    /// Worker threads the other queries run on (default: the cores), apart
    /// from the threads that serve the protocols and plan; 0: on those.
    #[arg(long, env = "CITYLAKE_GENERAL_QUERY_THREADS")]
    pub general_query_threads: Option<usize>,
    /// How much lower the scheduling priority of those threads is than the
    /// process's, in nice steps (0 to 19; the sum stops at 19): general
    /// queries take the processor time that light queries and the protocols leave.
    #[arg(long, env = "CITYLAKE_GENERAL_QUERY_NICE", default_value_t = 10,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub general_query_nice: i32,
    /// Aggregate the fact side of a join below it when the aggregates read
    /// one side (eager aggregation): faster on fact-dimension queries grouped
    /// by dimension attributes, slower where the fact side has about one row
    /// per group (see benches/README.md).
    #[arg(long, env = "CITYLAKE_EAGER_AGGREGATION")]
    pub eager_aggregation: bool,
    /// The largest ingest request (ADBC adbc_ingest into a Delta dataset): its
    /// batches are held in memory until they are committed.
    #[arg(long, env = "CITYLAKE_MAX_INGEST_BYTES", default_value = "256MiB", value_parser = parse_size)]
    pub max_ingest_bytes: usize,
    /// What all ingest requests together may hold until their commits; a
    /// batch beyond is refused as busy (retry). At least --max-ingest-bytes.
    #[arg(long, env = "CITYLAKE_MAX_INGEST_MEMORY", default_value = "512MiB", value_parser = parse_size)]
    pub max_ingest_memory: usize,
    /// How long an ingest request's batches, or an upload of bound
    /// parameters, may take to arrive (e.g. 5m); a request still receiving
    /// then is refused and gives back what it held.
    #[arg(long, env = "CITYLAKE_INGEST_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub ingest_timeout: std::time::Duration,
    /// Run queries on a Ballista cluster (df://HOST:PORT of its scheduler); the
    /// policy, masking and audit stay here. Needs the `cluster` build feature.
    #[arg(long, env = "CITYLAKE_CLUSTER")]
    pub cluster: Option<String>,
    /// With --cluster: a query whose files to scan are fewer bytes than this
    /// runs here, not as a cluster job (each job costs tens of milliseconds);
    /// 0 sends every query the cluster can take.
    #[arg(long, env = "CITYLAKE_CLUSTER_MIN_SCAN", default_value = "64MiB", value_parser = parse_size)]
    pub cluster_min_scan: usize,
    #[command(flatten)]
    pub cluster_tls: crate::cluster::ClusterTlsArgs,
}

pub fn parse_size(s: &str) -> Result<usize, String> {
    citylake_engine::config::parse_size(s)
}

/// A cache lifetime: `None` keeps entries until restart.
#[derive(Debug, Clone, Copy)]
pub struct CacheTtl(pub Option<std::time::Duration>);

pub fn parse_ttl(s: &str) -> Result<CacheTtl, String> {
    citylake_engine::config::parse_ttl(s).map(CacheTtl)
}

/// A duration longer than zero (e.g. 30s, 5m; a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match citylake_engine::config::parse_ttl(s)? {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "`{s}` is not a duration longer than zero (e.g. 30s, 5m)"
        )),
    }
}

/// How query results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A Parquet file (one query).
    Parquet,
    /// An Arrow IPC file (one query).
    Arrow,
}

/// Table format of a generated lake's event datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LakeFormat {
    Parquet,
    Delta,
}

impl From<LakeFormat> for citylake_engine::catalog::Format {
    fn from(f: LakeFormat) -> Self {
        match f {
            LakeFormat::Parquet => Self::Parquet,
            LakeFormat::Delta => Self::Delta,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Json => builder.json().init(),
            LogFormat::Text => builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init(),
        }
    }

    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Generate(args) => crate::generate::run(args).await,
            Command::Sql(args) => crate::sql::run(args).await,
            Command::Serve(args) => crate::serve::run(args).await,
            Command::User(args) => crate::serve::user(args),
            Command::Quality(args) => crate::quality::run(args).await,
            Command::Audit(command) => crate::audit::run(command),
            Command::Catalog(command) => crate::catalog::run(command).await,
            Command::Cluster(command) => crate::cluster::run(command).await,
            Command::Report(ReportCommand::Performance(args)) => crate::report::run(args).await,
            Command::Privacy(command) => crate::tables::privacy(command).await,
            Command::Retention(command) => crate::tables::retention(command).await,
            Command::Optimize(args) => crate::tables::optimize(args).await,
            Command::Vacuum(args) => crate::tables::vacuum(args).await,
        }
    }
}
