//! `city-bench`: the city-bench workload and its harness.
//!
//! - `citybench`: every query of `benches/queries/` through citylake in-process,
//!   plain DataFusion and DuckDB on the same Parquet files; checks that the
//!   three agree, then prints a markdown table with the medians, the ratios
//!   and their geometric means.
//! - `tpch`: the 22 TPC-H queries (`benches/tpch/queries/`) the same way, over
//!   tables from `tpchgen-cli` in a catalog written by `citylake catalog init`.
//! - `scale`: citylake on the workload at several scale factors, and how time grows.
//! - `flight`: result fetch over Flight SQL (ADBC) against in-process, by result size.
//! - `udf`: the criterion benchmarks of the city's functions, run and reported.
//!
//! Timings are measurements, never test assertions; `citybench --check-only`
//! (run by the test command at SF 0.01) checks only that the engines agree.

mod compare;
mod engines;
mod workload;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use engines::{Citylake, DataFusion, DuckDb, Measured};

#[derive(Parser)]
#[command(
    name = "city-bench",
    about = "city-bench: citylake next to plain DataFusion and DuckDB"
)]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Subcommand)]
enum Suite {
    /// The workload through citylake, plain DataFusion and DuckDB, side by side.
    Citybench(CitybenchArgs),
    /// The analyst set (benches/analyst/: fact tables joined with their
    /// dimensions, grouped by dimension attributes and time buckets over a
    /// month, a quarter, the year) through the three engines, side by side,
    /// on the city-bench lake.
    Analyst(SideBySideArgs),
    /// The 22 TPC-H queries through the three engines, side by side, over
    /// tables from `tpchgen-cli` (generated at data/tpch-sf<scale> when absent).
    Tpch(SideBySideArgs),
    /// citylake on the workload at several scale factors.
    Scale(ScaleArgs),
    /// Result fetch over Flight SQL (ADBC client) against in-process.
    Flight(FlightArgs),
    /// The criterion benchmarks of the functions.
    Udf(UdfArgs),
    /// The cost of the access policy: the workload as a district analyst (masking
    /// and row filters) against the administrator, and the audit log's cost per record.
    Policy(Common),
}

#[derive(Args, Clone)]
struct Common {
    /// Scale factor of the lake (generated when absent).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// The lake's directory (default: data/bench-sf<scale>).
    #[arg(long)]
    lake: Option<PathBuf>,
    /// Measured runs per query (after the warm-up).
    #[arg(long, default_value_t = 5)]
    iterations: usize,
    /// Warm-up runs per query.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Python with the duckdb (and adbc) packages (default: the test venv's).
    #[arg(long, env = "CITYLAKE_PYTHON")]
    python: Option<PathBuf>,
}

/// What every side-by-side suite (`citybench`, `tpch`) takes.
#[derive(Args)]
struct SideBySideArgs {
    #[command(flatten)]
    common: Common,
    /// Only the queries whose name contains this (`q01`).
    #[arg(long)]
    filter: Option<String>,
    /// Check that the engines agree (one run each, no warm-up, no times printed).
    #[arg(long)]
    check_only: bool,
    /// citylake with `--eager-aggregation`.
    #[arg(long)]
    eager_aggregation: bool,
}

impl SideBySideArgs {
    async fn citylake(&self, catalog: &Path) -> anyhow::Result<Citylake> {
        if self.eager_aggregation {
            Citylake::open_eager(catalog).await
        } else {
            Citylake::open(catalog).await
        }
    }
}

#[derive(Args)]
struct CitybenchArgs {
    #[command(flatten)]
    run: SideBySideArgs,
    /// The workload directory.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// citylake without writing audit records (to tell the engine's own
    /// overhead from the audit trail's; citylake always audits otherwise).
    #[arg(long)]
    without_audit: bool,
    /// citylake executing every query on the caller's threads (the engine's
    /// lanes off: `--light-query-threads 0 --general-query-threads 0`), to
    /// tell what the hop to the lanes' threads costs a millisecond query.
    #[arg(long)]
    without_lanes: bool,
    /// Where the time goes: each query's logical plan, its physical plan
    /// (EXPLAIN) and its whole run, citylake beside DataFusion, with what
    /// citylake adds to each (medians; `SELECT 1` first, the lifecycle
    /// alone). No DuckDB, no agreement check.
    #[arg(long)]
    phases: bool,
}

#[derive(Args)]
struct ScaleArgs {
    #[command(flatten)]
    common: Common,
    /// Scale factors, smallest first.
    #[arg(long, value_delimiter = ',', default_value = "0.1,1")]
    scales: Vec<f64>,
}

#[derive(Args)]
struct FlightArgs {
    #[command(flatten)]
    common: Common,
    /// The citylake binary to serve with (a release build for figures).
    #[arg(long, default_value = "target/release/citylake")]
    binary: PathBuf,
}

#[derive(Args)]
struct UdfArgs {
    /// Write the results as JSON here.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Report the last run's results without running the benchmarks again.
    #[arg(long)]
    report_only: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.suite {
            Suite::Citybench(a) => citybench(a).await,
            Suite::Tpch(a) => tpch(a).await,
            Suite::Analyst(a) => analyst(a).await,
            Suite::Scale(a) => scale(a).await,
            Suite::Flight(a) => flight(a),
            Suite::Udf(a) => udf(a),
            Suite::Policy(a) => policy(a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Common {
    fn lake(&self) -> PathBuf {
        self.lake
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("data/bench-sf{}", self.scale)))
    }

    fn python(&self) -> PathBuf {
        self.python.clone().unwrap_or_else(|| {
            let venv = std::env::var_os("CITYLAKE_VENV").map_or_else(
                || {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/citylake/venv")
                },
                PathBuf::from,
            );
            venv.join("bin/python")
        })
    }
}

/// The catalog of the lake at `dir`, generated at `scale` when absent.
fn ensure_lake(dir: &Path, scale: f64) -> anyhow::Result<PathBuf> {
    let catalog = dir.join(citylake_datasets::CATALOG_FILE);
    if !catalog.exists() {
        eprintln!("generating the SF {scale} lake at {}…", dir.display());
        let summary = citylake_datasets::generate(
            &citylake_datasets::GenerateOptions::new(scale, dir),
            &citylake_datasets::NoProgress,
        )?;
        eprintln!(
            "generated {} rows in {:.1} s",
            summary.total_rows(),
            summary.elapsed.as_secs_f64()
        );
    }
    Ok(catalog)
}

#[derive(Serialize)]
struct QueryResult {
    name: String,
    need: String,
    shape: String,
    citylake_s: Vec<f64>,
    datafusion_s: Vec<f64>,
    duckdb_s: Vec<f64>,
    citylake_functions_s: Option<Vec<f64>>,
    vs_datafusion: f64,
    vs_duckdb: f64,
}

#[derive(Serialize)]
struct CitybenchResult {
    suite: String,
    date: String,
    scale: f64,
    iterations: usize,
    duckdb_version: String,
    queries: Vec<QueryResult>,
    geomean_vs_datafusion: f64,
    geomean_vs_duckdb: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn geomean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0), |(s, n), x| (s + x.ln(), n + 1));
    (sum / n as f64).exp()
}

fn cell(times: &[f64]) -> String {
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    format!("{:.4} ({min:.4}–{max:.4})", median(times))
}

async fn citybench(a: CitybenchArgs) -> anyhow::Result<ExitCode> {
    let queries = workload::load(
        &a.queries.clone().unwrap_or_else(workload::default_dir),
        a.run.filter.as_deref(),
    )?;
    let catalog = ensure_lake(&a.run.common.lake(), a.run.common.scale)?;
    let citylake = if a.without_audit || a.without_lanes {
        Citylake::open_diagnostic(&catalog, a.without_audit, a.without_lanes).await?
    } else {
        a.run.citylake(&catalog).await?
    };
    if a.phases {
        return phases(&a.run.common, &queries, &catalog, citylake).await;
    }
    side_by_side(
        "city-bench",
        &a.run.common,
        &queries,
        &catalog,
        citylake,
        a.run.check_only,
    )
    .await
}

/// `city-bench citybench --phases`: see [`CitybenchArgs::phases`].
async fn phases(
    c: &Common,
    queries: &[workload::Query],
    catalog: &Path,
    citylake: Citylake,
) -> anyhow::Result<ExitCode> {
    let datafusion = DataFusion::open(catalog).await?;
    let mut named = vec![("SELECT 1".to_string(), "SELECT 1".to_string())];
    named.extend(queries.iter().map(|q| (q.name.clone(), q.standard.clone())));
    println!(
        "Phases at SF {} ({}), median of {} runs after {} warm-up, in ms: citylake / DataFusion, \
         and what citylake adds to each phase\n",
        c.scale,
        catalog.display(),
        c.iterations.max(1),
        c.warmup
    );
    println!(
        "| query | logical plan | EXPLAIN (+ physical plan, lifecycle) | run (+ execution) | \
         added: logical plan | added: physical plan, lifecycle | added: execution | added in all |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, sql) in &named {
        let (mut ours, mut df) = (vec![], vec![]);
        for i in 0..c.warmup + c.iterations.max(1) {
            let o = citylake
                .phases(sql)
                .await
                .with_context(|| format!("{name} on citylake"))?;
            let d = datafusion
                .phases(sql)
                .await
                .with_context(|| format!("{name} on DataFusion"))?;
            if i >= c.warmup {
                ours.push(o);
                df.push(d);
            }
        }
        let ms = |v: &[engines::Phases], f: fn(&engines::Phases) -> f64| {
            1e3 * median(&v.iter().map(f).collect::<Vec<_>>())
        };
        let (op, oe, or) = (
            ms(&ours, |p| p.plan),
            ms(&ours, |p| p.explain),
            ms(&ours, |p| p.run),
        );
        let (dp, de, dr) = (
            ms(&df, |p| p.plan),
            ms(&df, |p| p.explain),
            ms(&df, |p| p.run),
        );
        println!(
            "| {name} | {op:.3} / {dp:.3} | {oe:.3} / {de:.3} | {or:.3} / {dr:.3} | {:+.3} | {:+.3} | \
             {:+.3} | {:+.3} |",
            op - dp,
            (oe - op) - (de - dp),
            (or - oe) - (dr - de),
            or - dr
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn analyst(a: SideBySideArgs) -> anyhow::Result<ExitCode> {
    let queries = workload::load(&workload::analyst_dir(), a.filter.as_deref())?;
    let catalog = ensure_lake(&a.common.lake(), a.common.scale)?;
    let citylake = a.citylake(&catalog).await?;
    side_by_side(
        "analyst set",
        &a.common,
        &queries,
        &catalog,
        citylake,
        a.check_only,
    )
    .await
}

/// The TPC-H tables at `dir` with their catalog, made when absent the way a
/// user would: `tpchgen-cli parquet`, then what `citylake catalog init --schema
/// tpch` writes.
fn ensure_tpch(dir: &Path, scale: f64, python: &Path) -> anyhow::Result<PathBuf> {
    let catalog = dir.join(citylake_datasets::CATALOG_FILE);
    if catalog.exists() {
        return Ok(catalog);
    }
    let beside = python.parent().map(|bin| bin.join("tpchgen-cli"));
    let generator = beside
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("tpchgen-cli"));
    eprintln!(
        "generating TPC-H SF {scale} at {} with {}…",
        dir.display(),
        generator.display()
    );
    let status = Command::new(&generator)
        .args(["parquet", "-s", &scale.to_string()])
        .arg(format!("--output-dir={}", dir.display()))
        .status()
        .with_context(|| format!("running {} (pip install tpchgen-cli)", generator.display()))?;
    if !status.success() {
        bail!("{} failed: {status}", generator.display());
    }
    let (spec, _) = citylake_engine::catalog::init::describe_dir(dir, Some("tpch"))?;
    std::fs::write(
        &catalog,
        citylake_engine::catalog::init::to_file_text(&spec)?,
    )?;
    Ok(catalog)
}

/// `--lake` is the directory of the tables (default data/tpch-sf<scale>).
async fn tpch(a: SideBySideArgs) -> anyhow::Result<ExitCode> {
    let c = &a.common;
    let queries = workload::load(&workload::tpch_dir(), a.filter.as_deref())?;
    let dir = c
        .lake
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("data/tpch-sf{}", c.scale)));
    let catalog = ensure_tpch(&dir, c.scale, &c.python())?;
    let citylake = a.citylake(&catalog).await?;
    side_by_side("TPC-H", c, &queries, &catalog, citylake, a.check_only).await
}

/// `queries` through citylake, plain DataFusion and DuckDB over `catalog`:
/// agreement first, then (unless `check_only`) the table of times and ratios.
async fn side_by_side(
    suite: &str,
    c: &Common,
    queries: &[workload::Query],
    catalog: &Path,
    citylake: Citylake,
    check_only: bool,
) -> anyhow::Result<ExitCode> {
    let (warmup, iterations) = if check_only {
        (0, 1)
    } else {
        (c.warmup, c.iterations)
    };
    let datafusion = DataFusion::open(catalog).await?;
    let mut duckdb = DuckDb::start(&c.python(), catalog, None)?;
    eprintln!(
        "{suite}: {} queries at SF {} ({}), {iterations} run(s) after {warmup} warm-up; DuckDB {}",
        queries.len(),
        c.scale,
        catalog.display(),
        duckdb.version
    );
    let mut results = vec![];
    let mut disagreements = vec![];
    for q in queries {
        let run = |what: &str, r: anyhow::Result<Measured>| {
            r.with_context(|| format!("{} on {what}", q.name))
        };
        // warm-up, then the engines take turns run by run, so that drift on the
        // machine (frequency, caches, other load) falls on all of them alike
        let mut ours = Measured::empty();
        let mut df = Measured::empty();
        let mut duck = Measured::empty();
        let mut functions = q.uses_functions().then(Measured::empty);
        for i in 0..warmup + iterations.max(1) {
            let c = run("citylake", citylake.run(&q.standard, 0, 1).await)?;
            let d = run("DataFusion", datafusion.run(&q.standard, 0, 1).await)?;
            let k = run("DuckDB", duckdb.run(&q.standard, 0, 1))?;
            let f = match &functions {
                Some(_) => Some(run(
                    "citylake (functions)",
                    citylake.run(&q.citylake, 0, 1).await,
                )?),
                None => None,
            };
            if i >= warmup {
                ours.add(c);
                df.add(d);
                duck.add(k);
                if let (Some(all), Some(f)) = (functions.as_mut(), f) {
                    all.add(f);
                }
            }
        }
        for (other, m) in [("DataFusion", &df), ("DuckDB", &duck)] {
            if let Some(d) = compare::difference(&ours.rows, &m.rows) {
                disagreements.push(format!("{}: citylake vs {other}: {d}", q.name));
            }
        }
        if check_only {
            eprintln!(
                "{:<40} {} rows, engines agree: {}",
                q.name,
                ours.rows.len(),
                if disagreements.iter().any(|d| d.starts_with(&q.name)) {
                    "NO"
                } else {
                    "yes"
                }
            );
        }
        results.push(QueryResult {
            name: q.name.clone(),
            need: q.need.clone(),
            shape: q.shape.clone(),
            vs_datafusion: median(&ours.times) / median(&df.times),
            vs_duckdb: median(&ours.times) / median(&duck.times),
            citylake_s: ours.times,
            datafusion_s: df.times,
            duckdb_s: duck.times,
            citylake_functions_s: functions.map(|m| m.times),
        });
    }
    if !disagreements.is_empty() {
        for d in &disagreements {
            eprintln!("DISAGREE {d}");
        }
        bail!("the engines disagree on {} result(s)", disagreements.len());
    }
    if check_only {
        eprintln!(
            "all {} queries agree across citylake, DataFusion and DuckDB",
            queries.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let result = CitybenchResult {
        suite: suite.to_string(),
        date: today(),
        scale: c.scale,
        iterations,
        duckdb_version: duckdb.version.clone(),
        geomean_vs_datafusion: geomean(results.iter().map(|r| r.vs_datafusion)),
        geomean_vs_duckdb: geomean(results.iter().map(|r| r.vs_duckdb)),
        queries: results,
    };
    print_table(&result);
    if let Some(path) = &c.output {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(r: &CitybenchResult) {
    println!(
        "{} at SF {} ({}), median (min–max) of {} runs in seconds; DuckDB {}\n",
        r.suite, r.scale, r.date, r.iterations, r.duckdb_version
    );
    println!(
        "| query | citylake | DataFusion | DuckDB | citylake / DataFusion | citylake / DuckDB | citylake with functions |"
    );
    println!("|---|---|---|---|---|---|---|");
    for q in &r.queries {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {} |",
            q.name,
            cell(&q.citylake_s),
            cell(&q.datafusion_s),
            cell(&q.duckdb_s),
            q.vs_datafusion,
            q.vs_duckdb,
            q.citylake_functions_s.as_deref().map_or("—".into(), cell)
        );
    }
    println!(
        "\ngeometric mean: citylake / DataFusion {:.3}, citylake / DuckDB {:.3}",
        r.geomean_vs_datafusion, r.geomean_vs_duckdb
    );
    let mut worst: Vec<&QueryResult> = r.queries.iter().collect();
    worst.sort_by(|a, b| b.vs_duckdb.total_cmp(&a.vs_duckdb));
    println!(
        "slowest against DuckDB: {}",
        worst
            .iter()
            .take(3)
            .map(|q| format!("{} ({:.2})", q.name, q.vs_duckdb))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

async fn scale(a: ScaleArgs) -> anyhow::Result<ExitCode> {
    let queries = workload::load(&workload::default_dir(), None)?;
    if a.scales.len() < 2 {
        bail!("give at least two scale factors (--scales 0.1,1)");
    }
    let mut per_scale: Vec<(f64, Vec<f64>)> = vec![];
    for &sf in &a.scales {
        let catalog = ensure_lake(&PathBuf::from(format!("data/bench-sf{sf}")), sf)?;
        let citylake = Citylake::open(&catalog).await?;
        let mut medians = vec![];
        for q in &queries {
            let m = citylake
                .run(&q.citylake, a.common.warmup, a.common.iterations)
                .await
                .with_context(|| format!("{} at SF {sf}", q.name))?;
            medians.push(median(&m.times));
        }
        per_scale.push((sf, medians));
    }
    let (small, large) = (&per_scale[0], &per_scale[per_scale.len() - 1]);
    println!(
        "citylake, median of {} runs (s); SF {} → SF {} (data ×{:.0})\n",
        a.common.iterations,
        small.0,
        large.0,
        large.0 / small.0
    );
    println!("| query | SF {} | SF {} | ratio |", small.0, large.0);
    println!("|---|---|---|---|");
    for (i, q) in queries.iter().enumerate() {
        println!(
            "| {} | {:.4} | {:.4} | {:.1} |",
            q.name,
            small.1[i],
            large.1[i],
            large.1[i] / small.1[i]
        );
    }
    let total_small: f64 = small.1.iter().sum();
    let total_large: f64 = large.1.iter().sum();
    println!(
        "\nwhole workload: {total_small:.3} s → {total_large:.3} s, ratio {:.2}; geometric mean of the ratios {:.2}",
        total_large / total_small,
        geomean(small.1.iter().zip(&large.1).map(|(s, l)| l / s))
    );
    if let Some(path) = &a.common.output {
        let json = serde_json::json!({
            "date": today(),
            "queries": queries.iter().map(|q| &q.name).collect::<Vec<_>>(),
            "scales": per_scale.iter().map(|(sf, m)| serde_json::json!({"scale": sf, "median_s": m})).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The workload as admin and as a district analyst (Xihu): the queries the
/// analyst may run (masked hotline cases, district row filters), time ratios;
/// then the audit log's cost per record (a JSON line, fsynced).
async fn policy(c: Common) -> anyhow::Result<ExitCode> {
    let catalog = ensure_lake(&c.lake(), c.scale)?;
    let queries = workload::load(&workload::default_dir(), None)?;
    let admin = Citylake::open(&catalog).await?;
    let analyst = citylake_engine::Principal {
        user: "bench-district-analyst".into(),
        roles: vec!["district_analyst".into()],
        department: None,
        attributes: [("district".to_string(), "Xihu".to_string())].into(),
    };
    let restricted = Citylake::open_as(&catalog, analyst).await?;
    println!(
        "citylake as admin and as a district analyst (Xihu), SF {}, median of {} runs (s)\n",
        c.scale, c.iterations
    );
    println!("| query | admin | district analyst | ratio |\n|---|---|---|---|");
    let mut ratios = vec![];
    for q in &queries {
        let a = admin.run(&q.citylake, c.warmup, c.iterations).await?;
        let r = match restricted.run(&q.citylake, c.warmup, c.iterations).await {
            Ok(r) => r,
            Err(e) => {
                println!(
                    "| {} | {:.4} | refused: {} | — |",
                    q.name,
                    median(&a.times),
                    short(&e)
                );
                continue;
            }
        };
        let ratio = median(&r.times) / median(&a.times);
        ratios.push(ratio);
        println!(
            "| {} | {:.4} | {:.4} | {ratio:.2} |",
            q.name,
            median(&a.times),
            median(&r.times)
        );
    }
    println!(
        "\ngeometric mean over the {} queries the analyst may run: {:.3}",
        ratios.len(),
        geomean(ratios.iter().copied())
    );
    let n = 200;
    let started = std::time::Instant::now();
    for i in 0..n {
        restricted
            .session()
            .audit(
                citylake_engine::audit::AuditRecord::new(
                    "query",
                    &format!("SELECT {i} -- city-bench audit cost"),
                    "ok",
                )
                .returned(1, 8),
                None,
            )
            .await?;
    }
    println!(
        "audit log: {:.3} ms per record ({n} records one after the other, each waiting for its fsync)",
        started.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    Ok(ExitCode::SUCCESS)
}

fn short(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    s.split("may not read")
        .nth(1)
        .map_or(s.clone(), |t| format!("may not read{t}"))
}

/// Runs `benches/flight_fetch.py` (ADBC needs Python) on the lake.
fn flight(a: FlightArgs) -> anyhow::Result<ExitCode> {
    let c = &a.common;
    let catalog = ensure_lake(&c.lake(), c.scale)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("flight_fetch.py");
    let mut cmd = Command::new(c.python());
    cmd.arg(script)
        .arg("--binary")
        .arg(&a.binary)
        .arg("--lake")
        .arg(catalog.parent().unwrap_or(Path::new(".")))
        .arg("--iterations")
        .arg(c.iterations.to_string());
    if let Some(out) = &c.output {
        cmd.arg("--output").arg(out);
    }
    let status = cmd.status().context("running flight_fetch.py")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the functions' criterion benchmarks and reports criterion's estimates.
fn udf(a: UdfArgs) -> anyhow::Result<ExitCode> {
    if !a.report_only {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["bench", "-p", "citylake-udfs", "--bench", "functions"])
            .status()
            .context("running cargo bench")?;
        if !status.success() {
            bail!("cargo bench failed");
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let mut rows = vec![];
    collect_estimates(&target.join("criterion"), &mut rows)?;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    println!("| benchmark | mean | 95% interval |\n|---|---|---|");
    for (name, mean, lo, hi) in &rows {
        println!(
            "| {name} | {:.3} ms | {:.3}–{:.3} ms |",
            mean / 1e6,
            lo / 1e6,
            hi / 1e6
        );
    }
    if let Some(path) = &a.output {
        let json: Vec<_> = rows
            .iter()
            .map(|(n, m, l, h)| serde_json::json!({"name": n, "mean_ns": m, "low_ns": l, "high_ns": h}))
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `(benchmark, mean, low, high)` in ns from criterion's `*/new/estimates.json`.
fn collect_estimates(dir: &Path, out: &mut Vec<(String, f64, f64, f64)>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        bail!("no criterion results under {}", dir.display());
    };
    for entry in entries {
        let path = entry?.path();
        let estimates = path.join("new/estimates.json");
        if estimates.exists() {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&estimates)?)?;
            let mean = &v["mean"];
            let name = path
                .strip_prefix(dir.parent().unwrap_or(dir))
                .unwrap_or(&path)
                .display()
                .to_string();
            out.push((
                name.trim_start_matches("criterion/").to_string(),
                mean["point_estimate"].as_f64().unwrap_or(f64::NAN),
                mean["confidence_interval"]["lower_bound"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                mean["confidence_interval"]["upper_bound"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            ));
        } else if path.is_dir() && path.file_name().is_some_and(|n| n != "report") {
            collect_estimates(&path, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_geometric_means() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!((geomean([1.0, 4.0].into_iter()) - 2.0).abs() < 1e-12);
    }
}
