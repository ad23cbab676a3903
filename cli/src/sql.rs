//! `citylake sql`: statements from -c, -f or standard input, or an interactive shell.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use citylake_datasets::GenerateOptions;
use citylake_engine::{
    Engine, EngineConfig, EngineError, Principal, QueryRequest, Session, SqlPermissions,
};

use crate::args::{EngineArgs, Format, SqlArgs};
use crate::output::{check_single_result, write_stream};

/// Where the demo lake lives when no catalog is given.
pub const DEFAULT_LAKE_DIR: &str = "data/lake";
/// Scale of the demo lake generated on first use.
pub const DEMO_SCALE: f64 = 0.1;

/// The catalog to use: the flag or `CITYLAKE_CATALOG`, else the demo lake,
/// generated when absent.
pub fn resolve_catalog(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let dir = PathBuf::from(DEFAULT_LAKE_DIR);
    let catalog = dir.join(citylake_datasets::CATALOG_FILE);
    if !catalog.exists() {
        eprintln!(
            "No lake at {}: generating the demo lake (scale {DEMO_SCALE}) there first…",
            dir.display()
        );
        let summary = crate::generate::generate_with_bar(&GenerateOptions::new(DEMO_SCALE, &dir))?;
        eprintln!(
            "Generated {} rows in {:.1} s.",
            summary.total_rows(),
            summary.elapsed.as_secs_f64()
        );
    }
    Ok(catalog)
}

/// The memory pool when `--memory-limit` is not given: half of the machine's
/// memory (Linux: `MemTotal` of /proc/meminfo), so that a query that keeps
/// growing — a recursive CTE, an aggregate of huge values — spills or fails
/// alone instead of taking the process and every other query with it. `None`
/// (unbounded, DataFusion's default) where the total cannot be read.
fn default_memory_limit() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    half_of_mem_total(&meminfo)
}

fn half_of_mem_total(meminfo: &str) -> Option<usize> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.checked_mul(1024)? / 2).filter(|&n| n >= 64 << 20)
}

/// Builds the engine for a catalog with the shared engine flags.
pub async fn build_engine(catalog: &Path, args: &EngineArgs) -> anyhow::Result<Engine> {
    let mut config = EngineConfig::new(catalog);
    config.memory_limit = args.memory_limit.or_else(default_memory_limit);
    config.spill_dir = args.spill_dir.clone();
    config.target_partitions = args.target_partitions;
    if let Some(ttl) = args.list_cache_ttl {
        config.list_cache_ttl = ttl.0;
    }
    config.policy = args.policy.clone();
    config.audit_dir = args.audit_dir.clone();
    config.audit_key = args.audit_key.clone();
    config.audit_max_request_bytes = args.audit_max_request;
    config.audit_fail_open = args.audit_fail_open;
    if args.benchmark_without_audit {
        tracing::warn!("--benchmark-without-audit: NO AUDIT RECORD IS WRITTEN (benchmarks only)");
        eprintln!(
            "warning: --benchmark-without-audit: no audit record is written (benchmarks only)"
        );
        config.audit_discard = true;
    }
    if let Some(bytes) = args.metadata_cache {
        config.metadata_cache_bytes = bytes;
    }
    config.limits = citylake_engine::limits::Limits {
        query_timeout: args
            .query_timeout
            .and_then(|t| t.0)
            .filter(|t| !t.is_zero()),
        max_result_rows: args.max_result_rows,
        max_result_bytes: args.max_result_bytes.map(|n| n as u64),
        memory_per_query: args.memory_per_query,
    };
    if let Some(n) = args.max_concurrent_queries {
        config.max_concurrent_queries = n;
    }
    config.query_queue = args.query_queue;
    if let Some(n) = args.light_query_slots {
        config.light_query_slots = n;
    }
    config.light_query_scan = args.light_query_scan as u64;
    if let Some(n) = args.light_query_threads {
        config.light_query_threads = n;
    }
    if let Some(n) = args.general_query_threads {
        config.general_query_threads = n;
    }
    config.general_query_nice = args.general_query_nice;
    config.eager_aggregation = args.eager_aggregation;
    config.max_ingest_bytes = args.max_ingest_bytes;
    config.max_ingest_memory = args.max_ingest_memory;
    config.ingest_timeout = args.ingest_timeout;
    let engine = Engine::new(config).await?;
    Ok(match &args.cluster {
        Some(location) => {
            let cluster = crate::cluster::connect(location, &args.cluster_tls).await?;
            engine.with_remote(cluster, args.cluster_min_scan as u64)
        }
        None => engine,
    })
}

pub async fn run(args: SqlArgs) -> anyhow::Result<ExitCode> {
    let script = match (&args.command, &args.file) {
        (Some(sql), _) => Some(sql.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read SQL file {}", path.display()))?,
        ),
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut sql = String::new();
            std::io::stdin().read_to_string(&mut sql)?;
            Some(sql)
        }
        (None, None) => None,
    };
    let catalog = resolve_catalog(args.catalog)?;
    let engine = build_engine(&catalog, &args.engine).await?;
    let principal = local_principal(&args.local, &catalog)?;
    // the local administrator owns the session; a user of the users file gets
    // what the server would give them: queries only
    let permissions = if args.local.user.is_some() {
        SqlPermissions::READ_ONLY
    } else {
        SqlPermissions::ALL
    };
    let session = engine
        .session(principal)
        .with_client(LOCAL_CLIENT)
        .with_permissions(permissions);
    let mut out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create output file {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    match script {
        Some(sql) => {
            let ok = run_script(&session, &sql, args.format, &mut *out, args.timing).await;
            out.flush()?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => {
            crate::repl::run(&session, args.format, args.timing, &mut *out).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Who a local command runs as: `--user` from the users file (default
/// users.toml beside the catalog), else the OS user with the admin role.
pub fn local_principal(
    local: &crate::args::LocalUser,
    catalog: &Path,
) -> anyhow::Result<Principal> {
    let Some(name) = &local.user else {
        return Ok(Principal::local_admin());
    };
    let file = match &local.users {
        Some(file) => file.clone(),
        None => catalog
            .parent()
            .unwrap_or(Path::new("."))
            .join("users.toml"),
    };
    let users = citylake_server::Users::load(&file)
        .with_context(|| format!("--user {name}: reading the users file"))?;
    let user = users
        .get(name)
        .ok_or_else(|| anyhow::anyhow!("--user {name}: no such user in {}", file.display()))?;
    Ok(user.principal())
}

/// The client the audit trail names for the command-line tools.
pub const LOCAL_CLIENT: &str = "local";

/// Runs every statement of `sql` — SQL statements and backslash commands on
/// their own lines (`\d`, `\datasets`, …) — stopping at the first error
/// (printed to standard error). Returns whether all succeeded.
pub async fn run_script(
    session: &Session,
    sql: &str,
    format: Format,
    out: &mut (dyn Write + Send),
    timing: bool,
) -> bool {
    let mut pending = String::new();
    for line in sql.split_inclusive('\n') {
        if !line.trim_start().starts_with('\\') {
            pending.push_str(line);
            continue;
        }
        if !run_statements(session, &std::mem::take(&mut pending), format, out, timing).await {
            return false;
        }
        match crate::repl::meta_command(line) {
            Ok(crate::repl::Meta::Quit) => return true,
            Ok(crate::repl::Meta::Help) => {}
            Ok(crate::repl::Meta::Query(query)) => {
                if !run_statements(session, &query, format, out, timing).await {
                    return false;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return false;
            }
        }
    }
    run_statements(session, &pending, format, out, timing).await
}

/// Runs the SQL statements of `sql`; Ctrl-C cancels the running one.
async fn run_statements(
    session: &Session,
    sql: &str,
    format: Format,
    out: &mut (dyn Write + Send),
    timing: bool,
) -> bool {
    if sql.trim().is_empty() {
        return true;
    }
    let result: anyhow::Result<()> = async {
        let statements = session.parse(sql)?;
        check_single_result(format, statements.len())?;
        for statement in statements {
            let started = std::time::Instant::now();
            let before = session.object_store_requests();
            let rows = interruptible(session, statement, format, &mut *out).await?;
            out.flush()?;
            if timing {
                let requests = session.object_store_requests().since(&before);
                eprintln!(
                    "{rows} row(s) in {:.3} s; object store: {requests}",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => true,
        Err(e) => {
            eprintln!("{}", render_error(&e, sql));
            false
        }
    }
}

/// Runs one statement and writes its result; Ctrl-C cancels it through the
/// engine (the query ends `cancelled`, its tasks stop, its record is
/// written), and a second Ctrl-C stops waiting for that.
async fn interruptible(
    session: &Session,
    statement: citylake_engine::datafusion::sql::parser::Statement,
    format: Format,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u64> {
    static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag = format!("local-{}-{n}", std::process::id());
    let run = async {
        let stream = session
            .query(QueryRequest::parsed(statement).with_tag(&tag))
            .await?;
        write_stream(stream, format, out).await
    };
    tokio::pin!(run);
    tokio::select! {
        rows = &mut run => return rows,
        _ = tokio::signal::ctrl_c() => {}
    }
    session.cancel_tagged(&tag, "cancelled by Ctrl-C");
    tokio::select! {
        rows = &mut run => rows,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    }
}

/// An error message and, where it has a position, the line of SQL with a
/// caret under it: the span DataFusion's planner attaches to the error (an
/// unknown column, a bad function call), else for a syntax error the position
/// sqlparser states in its message (its errors carry no structured span).
pub fn render_error(e: &anyhow::Error, sql: &str) -> String {
    let message = format!("error: {e:#}");
    let Some(EngineError::Query(df)) = e.downcast_ref::<EngineError>() else {
        return message;
    };
    let spanned = df
        .iter()
        .find_map(|e| e.diagnostic().and_then(|d| d.span))
        .map(|span| (span.start.line as usize, span.start.column as usize));
    let syntax = || match df.find_root() {
        citylake_engine::datafusion::error::DataFusionError::SQL(..) => position(&message),
        _ => None,
    };
    let Some((line, column)) = spanned.or_else(syntax) else {
        return message;
    };
    let Some(text) = sql.lines().nth(line.saturating_sub(1)) else {
        return message;
    };
    format!(
        "{message}\n  {line:>3} | {text}\n      | {}^",
        " ".repeat(column.saturating_sub(1))
    )
}

/// `Line: L, Column: C` as sqlparser states positions in its messages.
fn position(message: &str) -> Option<(usize, usize)> {
    let rest = message.split("Line: ").nth(1)?;
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_default_memory_pool_is_half_the_machine() {
        let meminfo = "MemTotal:       24615896 kB\nMemFree:         1000 kB\n";
        assert_eq!(super::half_of_mem_total(meminfo), Some(24615896 * 1024 / 2));
        assert_eq!(super::half_of_mem_total("MemFree: 1 kB"), None);
        assert_eq!(super::half_of_mem_total("MemTotal: 1000 kB"), None);
    }

    use super::position;

    #[test]
    fn finds_parser_positions() {
        assert_eq!(
            position("Expected: end of statement, found: x at Line: 2, Column: 15"),
            Some((2, 15))
        );
        assert_eq!(position("no position here"), None);
    }
}
