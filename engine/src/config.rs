//! Engine configuration.

use std::path::PathBuf;
use std::time::Duration;

/// Default time a listing of a dataset's files is reused before the store is
/// listed again: files added to the lake are seen within a minute.
pub const DEFAULT_LIST_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default memory for cached Parquet footers and page indexes (shared by all queries).
pub const DEFAULT_METADATA_CACHE: usize = 256 * 1024 * 1024;

/// How to build an [`Engine`](crate::Engine).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The lake's `catalog.toml`: a local path or an `s3://bucket/prefix/catalog.toml` URL.
    pub catalog: PathBuf,
    /// Memory for query execution, shared by all queries, in bytes. Operators that
    /// can spill (sort, aggregate, join) spill to disk beyond it. `None`: unbounded.
    pub memory_limit: Option<usize>,
    /// Where spill files go (default: the system temp directory).
    pub spill_dir: Option<PathBuf>,
    /// Cap on the total size of spill files, in bytes (default: DataFusion's, 100 GiB).
    pub max_spill_bytes: Option<u64>,
    /// Partitions a query is split into (default: the number of cores; twice that
    /// for a lake in an object store, so that more requests are in flight).
    pub target_partitions: Option<usize>,
    /// Rows per record batch (default: DataFusion's 8192).
    pub batch_size: Option<usize>,
    /// How long a listing of a dataset's files is reused; `None` until restart.
    /// Parquet footers are cached too, and re-read when an object's size or
    /// modification time changes.
    pub list_cache_ttl: Option<Duration>,
    /// Memory for cached Parquet footers and page indexes, in bytes (0: no cache).
    pub metadata_cache_bytes: usize,
    /// The access policy file (default: `policy.toml` beside a local catalog when
    /// present, else the built-in default policy).
    pub policy: Option<PathBuf>,
    /// Where the audit trail is written (default: `audit/` beside a local
    /// catalog, `data/audit` for a catalog in an object store).
    pub audit_dir: Option<PathBuf>,
    /// The audit key file: records are sealed with HMAC-SHA-256 under it
    /// (see [`crate::audit::AuditLog::open`]); none: plain SHA-256.
    pub audit_key: Option<PathBuf>,
    /// Request texts longer than this are recorded as their start, length and
    /// SHA-256 (in the audit trail and `system.queries`).
    pub audit_max_request_bytes: usize,
    /// When an audit record cannot be written, log it and serve the request
    /// anyway (default: refuse the request — the trail fails closed).
    pub audit_fail_open: bool,
    /// Acknowledge audit records without writing them — only for measuring
    /// what the trail costs (`--benchmark-without-audit`).
    pub audit_discard: bool,
    /// Per-query limits (timeout, result size, memory); roles may replace them.
    pub limits: crate::limits::Limits,
    /// Queries that run at once (default: twice the cores).
    pub max_concurrent_queries: usize,
    /// Queries that may wait for a slot, in arrival order; beyond, refused (default 64).
    pub query_queue: usize,
    /// Slots only light queries take, besides the others (default: four
    /// per core; at 32 clients on 2 cores, 4 rather than 2 took the cockpit
    /// p99 from 3.1 s to 2.1 s, and 8 rather than 4 from 0.77 s to 0.57 s,
    /// the wait for a slot being most of the tail); 0: light queries wait
    /// like any other.
    pub light_query_slots: usize,
    /// A query whose files to scan are fewer bytes than this is light
    /// (default [`DEFAULT_LIGHT_QUERY_SCAN`]).
    pub light_query_scan: u64,
    /// Worker threads of the runtime light queries run on ([`crate::lanes`];
    /// default: the cores); 0: on the main runtime.
    pub light_query_threads: usize,
    /// Worker threads of the runtime the other queries run on (default: the
    /// cores); 0: on the main runtime, beside the protocols.
    pub general_query_threads: usize,
    /// How many nice steps (0–19) those threads run below the process's own
    /// priority (default [`DEFAULT_GENERAL_QUERY_NICE`]).
    pub general_query_nice: i32,
    /// The eager-aggregation rewrite ([`crate::eager`]); off by default: with
    /// no row counts or distinct counts in the logical plan it cannot tell a
    /// grouping that shrinks the fact side from one that does not.
    pub eager_aggregation: bool,
    /// The largest ingest request, in bytes of Arrow data held until its commit.
    pub max_ingest_bytes: usize,
    /// The bytes of Arrow data all ingest requests together may hold until
    /// their commits (default [`crate::ingest::DEFAULT_MAX_INGEST_MEMORY`]);
    /// at least `max_ingest_bytes`.
    pub max_ingest_memory: usize,
    /// How long an ingest request's batches may take to arrive and wait for
    /// a slot (default [`crate::ingest::DEFAULT_INGEST_TIMEOUT`]): what they
    /// hold is given back then, whatever the client does (the commit itself,
    /// the server's own work, is not cut short).
    pub ingest_timeout: Duration,
}

impl EngineConfig {
    /// Defaults for the catalog at `catalog`.
    pub fn new(catalog: impl Into<PathBuf>) -> Self {
        Self {
            catalog: catalog.into(),
            memory_limit: None,
            spill_dir: None,
            max_spill_bytes: None,
            target_partitions: None,
            batch_size: None,
            list_cache_ttl: Some(DEFAULT_LIST_CACHE_TTL),
            limits: Default::default(),
            max_concurrent_queries: 2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            query_queue: DEFAULT_QUERY_QUEUE,
            light_query_slots: 4 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            light_query_scan: DEFAULT_LIGHT_QUERY_SCAN,
            light_query_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            general_query_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            general_query_nice: DEFAULT_GENERAL_QUERY_NICE,
            eager_aggregation: false,
            max_ingest_bytes: crate::ingest::DEFAULT_MAX_INGEST_BYTES,
            max_ingest_memory: crate::ingest::DEFAULT_MAX_INGEST_MEMORY,
            ingest_timeout: crate::ingest::DEFAULT_INGEST_TIMEOUT,
            metadata_cache_bytes: DEFAULT_METADATA_CACHE,
            policy: None,
            audit_dir: None,
            audit_key: None,
            audit_max_request_bytes: crate::audit::DEFAULT_MAX_REQUEST_BYTES,
            audit_fail_open: false,
            audit_discard: false,
        }
    }
}

/// Parses a duration such as `60s`, `5m`, `1h`, `500ms`; `0` or `never` turns a cache off
/// (`Some(ZERO)`), `forever` keeps entries until restart (`None`).
pub fn parse_ttl(s: &str) -> Result<Option<Duration>, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "forever" => return Ok(None),
        "0" | "never" | "off" => return Ok(Some(Duration::ZERO)),
        _ => {}
    }
    // a bare number is seconds
    if let Ok(seconds) = t.parse::<u64>() {
        return Ok(Some(Duration::from_secs(seconds)));
    }
    humantime::parse_duration(t)
        .map(Some)
        .map_err(|e| format!("`{s}` is not a duration ({e}; e.g. 250ms, 60s, 5m, 1h 30m, forever)"))
}

/// Default of [`EngineConfig::light_query_scan`]: 32 MiB of files. At scale 1
/// every city-bench query that takes under 40 ms alone scans less (the
/// whole of `hotline.cases` is 19 MiB), every year-long scan of the traffic
/// speeds more (399 MiB). With 16 MiB the hotline's cockpit queries queued
/// behind those scans: cockpit p99 at 32 clients 24.6 s with 16 MiB, 3.1 s
/// with 32 MiB (benches/README.md § concurrency).
pub const DEFAULT_LIGHT_QUERY_SCAN: u64 = 32 * 1024 * 1024;

/// Default of [`EngineConfig::general_query_nice`]: a thread at nice 10 gets
/// about a tenth of the processor time of one at 0 while both want it, so
/// general queries take what the protocols, the planning and the light
/// queries leave (benches/README.md § concurrency).
pub const DEFAULT_GENERAL_QUERY_NICE: i32 = 10;

/// Default of [`EngineConfig::query_queue`].
pub const DEFAULT_QUERY_QUEUE: usize = 64;

/// A byte count for people: `512 B`, `1.5 KiB`, `256.0 MiB`, `2.0 GiB`.
pub fn format_size(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

/// Parses a size: `512MiB`, `2GiB` (powers of 1024), `1.5GB`, `800k` (powers
/// of 1000), `800000` (bytes).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let bytes: bytesize::ByteSize = s
        .trim()
        .parse()
        .map_err(|e| format!("`{s}` is not a size ({e}; e.g. 512MiB, 2GiB)"))?;
    usize::try_from(bytes.as_u64()).map_err(|_| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::{parse_size, parse_ttl};
    use std::time::Duration;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("60s").unwrap(), Some(Duration::from_secs(60)));
        assert_eq!(parse_ttl("5m").unwrap(), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_ttl("250ms").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_ttl("forever").unwrap(), None);
        assert_eq!(parse_ttl("0").unwrap(), Some(Duration::ZERO));
        assert_eq!(parse_ttl("90").unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_ttl("1h 30m").unwrap(),
            Some(Duration::from_secs(5400))
        );
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("3 parsecs").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("2G").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1.5 KiB").unwrap(), 1536);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
