//! `citylake quality`: the data-quality checks of the lake's datasets.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use arrow::array::{BooleanArray, RecordBatch};
use citylake_engine::Principal;
use citylake_engine::audit::AuditRecord;
use citylake_engine::quality::{Report, Status, to_batch};
use clap::{Args, ValueEnum};

use crate::args::EngineArgs;

#[derive(Debug, Args)]
pub struct QualityArgs {
    /// Catalog file: a path or an s3://bucket/prefix/catalog.toml URL. Default:
    /// ./data/lake/catalog.toml, generated (scale 0.1) when absent.
    #[arg(long, env = "CITYLAKE_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Check only this dataset (`schema.table`; repeatable).
    #[arg(long)]
    pub dataset: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = QualityFormat::Table)]
    pub format: QualityFormat,
    /// The local time freshness is judged at (YYYY-MM-DD[THH:MM:SS]); default: the
    /// catalog's `[quality] as_of`, else now.
    #[arg(long)]
    pub as_of: Option<String>,
    /// In the table, list passing checks too (by default only warnings and failures).
    #[arg(long)]
    pub all: bool,
    /// Exit with status 1 when a check fails.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QualityFormat {
    /// A text table of the warnings and failures, then a summary.
    Table,
    /// Every check as JSON: `{"as_of", "summary", "checks": [...]}`.
    Json,
}

pub async fn run(args: QualityArgs) -> anyhow::Result<ExitCode> {
    let as_of = args
        .as_of
        .as_deref()
        .map(citylake_engine::catalog::spec::parse_local_time)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--as-of: {e}"))?;
    let catalog = crate::sql::resolve_catalog(args.catalog)?;
    let engine = crate::sql::build_engine(&catalog, &args.engine).await?;
    let datasets: BTreeSet<String> = args.dataset.into_iter().collect();
    let started = std::time::Instant::now();
    let result = engine
        .quality()
        .run((!datasets.is_empty()).then_some(&datasets), as_of)
        .await;
    // the checks read the lake's data: the run is an access like any query
    let session = engine
        .session(Principal::local_admin())
        .with_client(crate::sql::LOCAL_CLIENT);
    let scope = if datasets.is_empty() {
        "citylake quality (every dataset)".to_string()
    } else {
        format!(
            "citylake quality --dataset {}",
            datasets
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(" --dataset ")
        )
    };
    let mut record = AuditRecord::new(
        "quality",
        &scope,
        if result.is_ok() { "ok" } else { "error" },
    )
    .took(started.elapsed());
    if let Ok(report) = &result {
        record = record.returned(report.checks.len() as u64, 0);
        record.datasets = report
            .checks
            .iter()
            .map(|c| c.dataset.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(",");
    }
    if let Err(e) = &result {
        record = record.failed(e);
    }
    session.audit(record, None).await?;
    let report = result?;
    let mut out = std::io::stdout().lock();
    match args.format {
        QualityFormat::Json => {
            let (pass, warn, fail) = report.counts();
            let json = serde_json::json!({
                "as_of": report.as_of.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "summary": {"pass": pass, "warn": warn, "fail": fail},
                "checks": report.checks,
            });
            serde_json::to_writer_pretty(&mut out, &json)?;
            writeln!(out)?;
        }
        QualityFormat::Table => write_table(&report, args.all, &mut out)?,
    }
    let failed = report.checks.iter().any(|c| c.status == Status::Fail);
    Ok(if failed && args.strict {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn write_table(report: &Report, all: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let batch = to_batch(report)?;
    let keep = BooleanArray::from_iter(
        report
            .checks
            .iter()
            .map(|c| Some(all || c.status != Status::Pass)),
    );
    let batch = arrow::compute::filter_record_batch(&batch, &keep)?;
    // dataset, check, column, partition, status, value, detail
    let batch: RecordBatch = batch.project(&[0, 1, 2, 3, 4, 5, 9])?;
    if batch.num_rows() > 0 {
        let table = arrow::util::pretty::pretty_format_batches(&[batch])
            .context("formatting the checks")?;
        writeln!(out, "{table}")?;
    }
    let (pass, warn, fail) = report.counts();
    let datasets: BTreeSet<&str> = report.checks.iter().map(|c| c.dataset.as_str()).collect();
    writeln!(
        out,
        "{} checks of {} datasets at {}: {pass} passed, {warn} warnings, {fail} failed",
        report.checks.len(),
        datasets.len(),
        report.as_of.format("%Y-%m-%d %H:%M:%S"),
    )?;
    Ok(())
}
