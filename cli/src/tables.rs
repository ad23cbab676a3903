//! Changes to Delta datasets that are not deliveries: `citylake privacy erase`,
//! `citylake retention apply`, `citylake optimize` and `citylake vacuum`. Each
//! runs as the local user (or `--user`) under the policy, and is audited; the
//! work is the engine's ([`citylake_engine::maintenance`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::args::{CacheTtl, EngineArgs, LocalUser, parse_ttl};
use crate::sql::{LOCAL_CLIENT, build_engine, local_principal, resolve_catalog};

/// The catalog, the user and the engine settings every command here takes.
#[derive(Debug, Args)]
pub struct TableArgs {
    /// Catalog file: a path or an s3://bucket/prefix/catalog.toml URL. Default:
    /// ./data/lake/catalog.toml.
    #[arg(long, env = "CITYLAKE_CATALOG")]
    pub catalog: Option<PathBuf>,
    #[command(flatten)]
    pub local: LocalUser,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Erase a person's records from a Delta dataset on request: delete the
    /// matching rows (one transaction), remove the files that held them, and
    /// check that no file of the table still holds the value. Needs a role with
    /// `privacy_officer = true`. The audit record keeps a hash of the value.
    Erase {
        /// The dataset (`schema.table`).
        #[arg(long)]
        dataset: String,
        /// Which rows: SQL naming the person by equality on their personal
        /// columns, e.g. "caller_phone = '13800000000'".
        #[arg(long = "where")]
        predicate: String,
        /// Why (the request's reference): kept in the audit record.
        #[arg(long)]
        reason: String,
        /// Files replaced by the deletion are removed once no version newer
        /// than this reads them (default: at once; a query running over the old
        /// version may then fail).
        #[arg(long, default_value = "0s", value_parser = parse_ttl)]
        keep_old_files: CacheTtl,
        #[command(flatten)]
        table: TableArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete the rows older than each Delta dataset's `retention` period (by its
    /// `time_column`), and remove the files that held them. Needs a role with
    /// `privacy_officer = true`.
    Apply {
        /// Only this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// Count the rows past retention; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The time the periods are counted back from (YYYY-MM-DD[ HH:MM:SS], UTC;
        /// default: now).
        #[arg(long)]
        now: Option<String>,
        #[command(flatten)]
        table: TableArgs,
    },
}

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// The Delta dataset (`schema.table`).
    #[arg(long)]
    pub dataset: String,
    #[command(flatten)]
    pub table: TableArgs,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// The Delta dataset (`schema.table`).
    #[arg(long)]
    pub dataset: String,
    /// Keep the files a version newer than this still reads (time travel to
    /// older versions then fails).
    #[arg(long, default_value = "7days", value_parser = parse_ttl)]
    pub retention: CacheTtl,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub table: TableArgs,
}

async fn session(
    table: &TableArgs,
) -> anyhow::Result<(citylake_engine::Engine, citylake_engine::Principal)> {
    let catalog = resolve_catalog(table.catalog.clone())?;
    let engine = build_engine(&catalog, &table.engine).await?;
    let principal = local_principal(&table.local, &catalog)?;
    Ok((engine, principal))
}

fn duration(ttl: &CacheTtl) -> std::time::Duration {
    ttl.0.unwrap_or(std::time::Duration::MAX)
}

pub async fn privacy(command: PrivacyCommand) -> anyhow::Result<ExitCode> {
    let PrivacyCommand::Erase {
        dataset,
        predicate,
        reason,
        keep_old_files,
        table,
    } = command;
    let (engine, principal) = session(&table).await?;
    let session = engine.session(principal).with_client(LOCAL_CLIENT);
    let outcome = engine
        .erase(
            &session,
            &dataset,
            &predicate,
            &reason,
            duration(&keep_old_files),
        )
        .await?;
    println!(
        "erased {} row(s) from {} (version {}), removed {} file(s)",
        outcome.rows_deleted, outcome.dataset, outcome.version, outcome.files_removed
    );
    println!("recorded as: {}", outcome.recorded_predicate);
    if outcome.still_held.is_empty() {
        println!("checked: no file of the table holds a matching row or the value");
        Ok(ExitCode::SUCCESS)
    } else {
        for (file, rows) in &outcome.still_held {
            eprintln!("still held: {file} ({rows} row(s))");
        }
        eprintln!(
            "error: files of the table still hold the value (kept by --keep-old-files?); \
             run `citylake vacuum` once their time is up"
        );
        Ok(ExitCode::FAILURE)
    }
}

pub async fn retention(command: RetentionCommand) -> anyhow::Result<ExitCode> {
    let RetentionCommand::Apply {
        dataset,
        dry_run,
        now,
        table,
    } = command;
    let now = match now {
        Some(text) => parse_now(&text)?,
        None => chrono::Utc::now().naive_utc(),
    };
    let (engine, principal) = session(&table).await?;
    let session = engine.session(principal).with_client(LOCAL_CLIENT);
    let outcomes = engine
        .apply_retention(&session, dataset.as_deref(), now, dry_run)
        .await?;
    if outcomes.is_empty() {
        println!("no Delta dataset declares a retention period");
    }
    for o in outcomes {
        if let Some(why) = &o.skipped {
            println!("{}: passed over: {why}", o.dataset);
            continue;
        }
        match (dry_run, o.version) {
            (true, _) | (_, None) => println!(
                "{}: {} row(s) older than {} (dry run: nothing deleted)",
                o.dataset, o.rows, o.cutoff
            ),
            (false, Some(v)) => println!(
                "{}: deleted {} row(s) older than {} (version {v}), removed {} file(s)",
                o.dataset, o.rows, o.cutoff, o.files_removed
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn parse_now(text: &str) -> anyhow::Result<chrono::NaiveDateTime> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t);
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .map_err(|_| anyhow::anyhow!("--now `{text}`: expected YYYY-MM-DD[ HH:MM:SS]"))
}

pub async fn optimize(args: OptimizeArgs) -> anyhow::Result<ExitCode> {
    let (engine, principal) = session(&args.table).await?;
    let session = engine.session(principal).with_client(LOCAL_CLIENT);
    let (removed, added) = engine.optimize(&session, &args.dataset).await?;
    println!("{}: compacted {removed} file(s) into {added}", args.dataset);
    Ok(ExitCode::SUCCESS)
}

pub async fn vacuum(args: VacuumArgs) -> anyhow::Result<ExitCode> {
    let (engine, principal) = session(&args.table).await?;
    let session = engine.session(principal).with_client(LOCAL_CLIENT);
    let files = engine
        .vacuum(
            &session,
            &args.dataset,
            duration(&args.retention),
            args.dry_run,
        )
        .await?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!("{}: {verb} {} file(s)", args.dataset, files.len());
    for f in files {
        println!("  {f}");
    }
    Ok(ExitCode::SUCCESS)
}
