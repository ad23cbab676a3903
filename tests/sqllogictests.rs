//! Runs the sqllogictest files under `tests/slt/` against an engine over a
//! generated SF 0.01 lake.
//!
//! ```text
//! cargo test -p citylake-tests --test sqllogictests              # every file
//! cargo test -p citylake-tests --test sqllogictests -- traffic   # files whose name contains "traffic"
//! cargo test -p citylake-tests --test sqllogictests -- --complete  # rewrite expected results
//! cargo test -p citylake-tests --test sqllogictests -- --delta     # over the same lake, event datasets as Delta tables
//! ```
//!
//! With `--delta` the generated lake's event datasets are Delta tables (the
//! same data): every file must give the same results, except those whose
//! header says `# parquet only: <why>` (plans that print Parquet scans);
//! files saying `# delta only: <why>` run only then.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use citylake_datasets::{GenerateOptions, NoProgress};
use citylake_engine::datafusion::arrow::array::{Array, RecordBatch};
use citylake_engine::datafusion::arrow::datatypes::DataType;
use citylake_engine::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use citylake_engine::{Engine, EngineConfig, EngineError, Principal, Session, SqlPermissions};
use futures::TryStreamExt;
use sqllogictest::{DBOutput, DefaultColumnType};

/// Scale of the lake the files run over.
const SCALE: f64 = 0.01;

struct CityDb {
    session: Session,
}

/// An error as the runner compares it: its message.
#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

#[async_trait]
impl sqllogictest::AsyncDB for CityDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let err = |e: EngineError| DbError(e.to_string());
        let stream = self.session.sql(sql).await.map_err(err)?;
        let schema = stream.schema();
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| DbError(EngineError::from(e).to_string()))?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let mut rows = vec![];
        for batch in &batches {
            let options = FormatOptions::default().with_null("NULL");
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<_, _>>()
                .map_err(|e| DbError(e.to_string()))?;
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .zip(&formatters)
                        .map(|(col, f)| cell(col.as_ref(), f, row))
                        .collect(),
                );
            }
        }
        // A multi-line value (a plan) becomes one row per line, as the file shows it.
        let rows = rows
            .into_iter()
            .flat_map(|row: Vec<String>| {
                if row.iter().any(|c| c.contains('\n')) {
                    row.join(" ").lines().map(|l| vec![l.to_string()]).collect()
                } else {
                    vec![row]
                }
            })
            .collect();
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "citylake"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() => DefaultColumnType::FloatingPoint,
        DataType::Decimal128(..) | DataType::Decimal256(..) => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

/// One value as text: floats rounded to 6 decimals (so results do not depend
/// on summation order), empty strings as `(empty)`.
fn cell(col: &dyn Array, f: &ArrayFormatter<'_>, row: usize) -> String {
    if col.is_null(row) {
        return "NULL".into();
    }
    if let Some(a) = col
        .as_any()
        .downcast_ref::<citylake_engine::datafusion::arrow::array::Float64Array>()
    {
        let v = (a.value(row) * 1e6).round() / 1e6;
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    // multi-line values (plans) end with a newline the file format cannot hold
    let s = f.value(row).to_string().trim_end().to_string();
    if s.is_empty() { "(empty)".into() } else { s }
}

fn slt_files(filter: &[String]) -> Vec<PathBuf> {
    let dir = manifest_dir().join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
        })
        .collect();
    files.sort();
    files
}

/// The fixture lake a file asks for on its first line (`# lake: finance_tiny`).
fn fixture_of(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let first = text.lines().next()?;
    first
        .strip_prefix("# lake:")
        .map(|name| name.trim().to_string())
}

/// Why a file runs only over the Parquet lake (a leading `# parquet only: …`)
/// or only over the Delta lake (`# delta only: …`).
fn only(file: &Path, which: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let prefix = format!("# {which} only:");
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(prefix.as_str())
                .map(|w| w.trim().to_string())
        })
}

/// Whether the file asks for the eager-aggregation rewrite (a leading
/// `# engine: eager_aggregation` comment line): it runs on an engine over the
/// same lake with `EngineConfig::eager_aggregation`.
fn wants_eager(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|text| {
        text.lines()
            .take_while(|l| l.starts_with('#'))
            .any(|l| l.trim() == "# engine: eager_aggregation")
    })
}

/// Builds `tests/fixtures/NAME/` under `root`: its `setup.sql` writes the data
/// (`DIR` is the lake directory), its `catalog.toml` declares it, the standard
/// views are copied next to it.
async fn build_fixture(name: &str, root: &Path) -> Engine {
    use citylake_engine::datafusion::prelude::SessionContext;
    let src = manifest_dir().join("fixtures").join(name);
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("views")).expect("fixture dir");
    for view in citylake_engine::catalog::views::STANDARD_VIEWS {
        std::fs::write(dir.join("views").join(view.file), view.sql).expect("view file");
    }
    let setup = std::fs::read_to_string(src.join("setup.sql")).expect("fixture setup.sql");
    let ctx = SessionContext::new();
    for statement in setup.split(";\n").filter(|s| {
        s.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
    }) {
        let sql = statement.replace("DIR", &dir.to_string_lossy());
        let written = match ctx.sql(&sql).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        written.unwrap_or_else(|e| panic!("fixture {name}: {e}\n{sql}"));
    }
    std::fs::copy(src.join("catalog.toml"), dir.join("catalog.toml")).expect("fixture catalog");
    Engine::new(EngineConfig::new(dir.join("catalog.toml")))
        .await
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let complete = args.iter().any(|a| a == "--complete");
    let delta = args.iter().any(|a| a == "--delta");
    let filter: Vec<String> = args.into_iter().filter(|a| !a.starts_with('-')).collect();

    // The lake: generated here (SF 0.01), or an existing one — e.g. the same lake
    // in an S3 store — named by CITYLAKE_SLT_CATALOG. (Plans print file paths
    // relative to the lake root, so the files do not depend on where it is.)
    let lake = tempfile::tempdir().expect("temp dir");
    let catalog = match std::env::var_os("CITYLAKE_SLT_CATALOG") {
        Some(catalog) => PathBuf::from(catalog),
        None => {
            let mut options = GenerateOptions::new(SCALE, lake.path());
            if delta {
                options.format = citylake_engine::catalog::Format::Delta;
            }
            citylake_datasets::generate(&options, &NoProgress)
                .expect("generate the test lake")
                .catalog
        }
    };
    let engine = Arc::new(
        Engine::new(EngineConfig::new(&catalog))
            .await
            .expect("engine over the test lake"),
    );
    // hand-written fixture lakes, built when a file asks for one (`# lake: NAME`)
    let fixtures = tempfile::tempdir().expect("temp dir");
    let mut fixture_engines: std::collections::HashMap<String, Arc<Engine>> = Default::default();

    let mut eager: Option<Arc<Engine>> = None;

    let (mut passed, mut failed) = (0, 0);
    for file in slt_files(&filter) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let other = if delta { "parquet" } else { "delta" };
        if let Some(why) = only(&file, other) {
            println!("skip   {name} ({other} only: {why})");
            continue;
        }
        if delta && fixture_of(&file).is_some() {
            println!("skip   {name} (a fixture lake of its own)");
            continue;
        }
        let engine = match fixture_of(&file) {
            None if wants_eager(&file) => match &eager {
                Some(e) => e.clone(),
                None => {
                    let mut config = EngineConfig::new(&catalog);
                    config.eager_aggregation = true;
                    let e = Arc::new(
                        Engine::new(config)
                            .await
                            .expect("engine over the test lake"),
                    );
                    eager = Some(e.clone());
                    e
                }
            },
            None => engine.clone(),
            Some(fixture) => match fixture_engines.get(&fixture) {
                Some(e) => e.clone(),
                None => {
                    let e = Arc::new(build_fixture(&fixture, fixtures.path()).await);
                    fixture_engines.insert(fixture, e.clone());
                    e
                }
            },
        };
        let mut runner = sqllogictest::Runner::new(move || {
            let session = engine
                .session(Principal::local_admin())
                .with_permissions(SqlPermissions::ALL);
            async move { Ok(CityDb { session }) }
        });
        let result = if complete {
            runner
                .update_test_file(
                    &file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .map_err(|e| e.to_string())
        } else {
            runner
                .run_file_async(&file)
                .await
                .map_err(|e| e.display(true).to_string())
        };
        match result {
            Ok(()) => {
                passed += 1;
                println!("ok     {name}");
            }
            Err(e) => {
                failed += 1;
                println!("FAILED {name}\n{e}");
            }
        }
    }
    println!("sqllogictest: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}

/// This crate's directory: from `cargo test`'s environment at run time (a test
/// binary reused from a build in another checkout would otherwise look there),
/// else where it was built.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
