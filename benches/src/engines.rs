//! The engines city-bench runs side by side on the same Parquet files:
//! citylake in-process, plain DataFusion (a bare `SessionContext`, no citylake
//! layer) and DuckDB (its Python package, in a worker process).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use citylake_engine::datafusion::arrow::array::{Array, RecordBatch};
use citylake_engine::datafusion::arrow::compute::cast;
use citylake_engine::datafusion::arrow::datatypes::DataType;
use citylake_engine::datafusion::datasource::file_format::parquet::ParquetFormat;
use citylake_engine::datafusion::datasource::listing::ListingOptions;
use citylake_engine::datafusion::prelude::SessionContext;
use citylake_engine::{Engine, EngineConfig, Principal, Session};
use futures::TryStreamExt;
use serde::Deserialize;

/// A result as text, row by row (`None` for NULL), for the agreement check.
pub type Rows = Vec<Vec<Option<String>>>;

/// Times of the measured runs (seconds) and the result of the last one.
pub struct Measured {
    pub times: Vec<f64>,
    pub rows: Rows,
}

impl Measured {
    pub fn empty() -> Self {
        Self {
            times: vec![],
            rows: vec![],
        }
    }

    /// Adds the runs of `other`; its result becomes the last one.
    pub fn add(&mut self, other: Measured) {
        self.times.extend(other.times);
        self.rows = other.rows;
    }
}

/// citylake in-process: the engine every front end uses, as the local administrator.
pub struct Citylake {
    session: Session,
}

impl Citylake {
    pub async fn open(catalog: &Path) -> anyhow::Result<Self> {
        Self::open_as(catalog, Principal::local_admin()).await
    }

    /// citylake as the local administrator with the eager-aggregation rewrite.
    pub async fn open_eager(catalog: &Path) -> anyhow::Result<Self> {
        let mut config = EngineConfig::new(catalog);
        config.eager_aggregation = true;
        Self::with_config(config, Principal::local_admin()).await
    }

    /// citylake as `principal`, under the lake's access policy.
    pub async fn open_as(catalog: &Path, principal: Principal) -> anyhow::Result<Self> {
        Self::with_config(EngineConfig::new(catalog), principal).await
    }

    /// citylake as the local administrator with a part switched off to
    /// measure what it costs: its audit records acknowledged without being
    /// written (`--without-audit`), queries executed on the caller's threads
    /// (`--without-lanes`).
    pub async fn open_diagnostic(
        catalog: &Path,
        without_audit: bool,
        without_lanes: bool,
    ) -> anyhow::Result<Self> {
        let mut config = EngineConfig::new(catalog);
        config.audit_discard = without_audit;
        if without_lanes {
            (config.light_query_threads, config.general_query_threads) = (0, 0);
        }
        Self::with_config(config, Principal::local_admin()).await
    }

    async fn with_config(config: EngineConfig, principal: Principal) -> anyhow::Result<Self> {
        let engine = Engine::new(config).await?;
        Ok(Self {
            session: engine.session(principal),
        })
    }

    /// The session (for the audit-cost measurement).
    pub fn session(&self) -> &Session {
        &self.session
    }

    pub async fn run(
        &self,
        sql: &str,
        warmup: usize,
        iterations: usize,
    ) -> anyhow::Result<Measured> {
        measure(warmup, iterations, || async {
            let stream = self.session.sql(sql).await?;
            Ok(stream.try_collect::<Vec<_>>().await?)
        })
        .await
    }

    /// One run of `sql` phase by phase (see [`Phases`]).
    pub async fn phases(&self, sql: &str) -> anyhow::Result<Phases> {
        let explain = format!("EXPLAIN {sql}");
        Phases::measure(
            async || {
                self.session.plan_sql(sql).await?;
                Ok(())
            },
            async || {
                self.session
                    .sql(&explain)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await?;
                Ok(())
            },
            async || {
                self.session.sql(sql).await?.try_collect::<Vec<_>>().await?;
                Ok(())
            },
        )
        .await
    }
}

/// What one run of a query costs up to each of its phases (seconds): its
/// logical plan (parse, checks, names resolved), its physical plan (an
/// `EXPLAIN` of it, which in citylake passes the query's whole lifecycle —
/// registry, admission, audit record — without executing), and the whole run.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    pub plan: f64,
    pub explain: f64,
    pub run: f64,
}

impl Phases {
    async fn measure<P, E, R>(plan: P, explain: E, run: R) -> anyhow::Result<Self>
    where
        P: AsyncFnOnce() -> anyhow::Result<()>,
        E: AsyncFnOnce() -> anyhow::Result<()>,
        R: AsyncFnOnce() -> anyhow::Result<()>,
    {
        let started = Instant::now();
        plan().await?;
        let plan = started.elapsed().as_secs_f64();
        let started = Instant::now();
        explain().await?;
        let explain = started.elapsed().as_secs_f64();
        let started = Instant::now();
        run().await?;
        let run = started.elapsed().as_secs_f64();
        Ok(Self { plan, explain, run })
    }
}

/// Plain DataFusion: a default `SessionContext` with one listing table per
/// dataset of the catalog (same files, same Hive partitions), nothing else.
pub struct DataFusion {
    ctx: SessionContext,
}

impl DataFusion {
    pub async fn open(catalog: &Path) -> anyhow::Result<Self> {
        let catalog = citylake_engine::catalog::Catalog::load(catalog)?;
        // unqualified names resolve where citylake resolves them
        let ctx = SessionContext::new_with_config(
            citylake_engine::datafusion::prelude::SessionConfig::new()
                .with_default_catalog_and_schema("datafusion", catalog.default_schema()),
        );
        for schema in catalog.spec().schema_names() {
            ctx.sql(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await?;
        }
        for ds in &catalog.spec().datasets {
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(
                    ds.partition_types()
                        .into_iter()
                        .map(|(name, t)| (name, t.arrow_type()))
                        .collect(),
                );
            ctx.register_listing_table(&ds.name, catalog.dataset_url(ds), options, None, None)
                .await
                .with_context(|| format!("registering {}", ds.name))?;
        }
        Ok(Self { ctx })
    }

    pub async fn run(
        &self,
        sql: &str,
        warmup: usize,
        iterations: usize,
    ) -> anyhow::Result<Measured> {
        measure(warmup, iterations, || async {
            Ok(self.ctx.sql(sql).await?.collect().await?)
        })
        .await
    }

    /// One run of `sql` phase by phase (see [`Phases`]).
    pub async fn phases(&self, sql: &str) -> anyhow::Result<Phases> {
        let explain = format!("EXPLAIN {sql}");
        Phases::measure(
            async || {
                self.ctx.state().create_logical_plan(sql).await?;
                Ok(())
            },
            async || {
                self.ctx.sql(&explain).await?.collect().await?;
                Ok(())
            },
            async || {
                self.ctx.sql(sql).await?.collect().await?;
                Ok(())
            },
        )
        .await
    }
}

async fn measure<F, Fut>(warmup: usize, iterations: usize, run: F) -> anyhow::Result<Measured>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<RecordBatch>>>,
{
    for _ in 0..warmup {
        run().await?;
    }
    let mut times = Vec::with_capacity(iterations);
    let mut last = vec![];
    for _ in 0..iterations.max(1) {
        let started = Instant::now();
        last = run().await?;
        times.push(started.elapsed().as_secs_f64());
    }
    Ok(Measured {
        times,
        rows: rows_of(&last)?,
    })
}

/// Every value as text (Arrow's display cast), row by row.
pub fn rows_of(batches: &[RecordBatch]) -> anyhow::Result<Rows> {
    let mut rows = vec![];
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| {
                        let s = c
                            .as_any()
                            .downcast_ref::<citylake_engine::datafusion::arrow::array::StringArray>(
                            )
                            .expect("cast to Utf8");
                        (!s.is_null(i)).then(|| s.value(i).to_string())
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// DuckDB through its Python package, in a worker process speaking JSON lines.
pub struct DuckDb {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub version: String,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    times: Vec<f64>,
    #[serde(default)]
    rows: Rows,
    error: Option<String>,
    ready: Option<String>,
}

impl DuckDb {
    /// Starts `python duckdb_worker.py CATALOG` (the venv's Python, with the duckdb package).
    pub fn start(python: &Path, catalog: &Path, threads: Option<usize>) -> anyhow::Result<Self> {
        let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("duckdb_worker.py");
        let mut cmd = Command::new(python);
        cmd.arg(&worker).arg(catalog);
        if let Some(n) = threads {
            cmd.arg(n.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "starting DuckDB: {} {} (pass --python, a Python with the duckdb package)",
                    python.display(),
                    worker.display()
                )
            })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut me = Self {
            child,
            stdin,
            stdout,
            version: String::new(),
        };
        let hello = me.read()?;
        me.version = hello.ready.context("the DuckDB worker did not start")?;
        Ok(me)
    }

    fn read(&mut self) -> anyhow::Result<Reply> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the DuckDB worker exited");
        }
        Ok(serde_json::from_str(&line)?)
    }

    pub fn run(&mut self, sql: &str, warmup: usize, iterations: usize) -> anyhow::Result<Measured> {
        let request =
            serde_json::json!({"sql": sql, "warmup": warmup, "iterations": iterations.max(1)});
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let reply = self.read()?;
        if let Some(e) = reply.error {
            bail!("DuckDB: {e}");
        }
        Ok(Measured {
            times: reply.times,
            rows: reply.rows,
        })
    }
}

impl Drop for DuckDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
