//! `citylake catalog check`: loads a catalog as the server would — its
//! format, every dataset's files against its declared columns, the views, the
//! policy — and says what is wrong, or what it holds.
//!
//! `citylake catalog init DIR`: writes a first catalog for Parquet files that
//! already exist — one dataset per file or directory, Hive partitions and
//! their types read from the directory names — then loads it as `check` does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use citylake_engine::catalog::init;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Load the catalog as `serve` would and report every error it finds:
    /// fields, locations, declared columns against the files, views.
    Check(CheckArgs),
    /// Write DIR/catalog.toml for the Parquet files under DIR: each `.parquet`
    /// file and each directory holding Parquet files (Hive partitions
    /// `key=value/` become partition columns) is a dataset of one schema,
    /// which is also the schema unqualified names resolve in. Columns are read
    /// from the files; owner, classification and update frequency are left at
    /// their fail-closed defaults for you to edit.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The directory holding the Parquet files (the catalog's root).
    pub dir: PathBuf,
    /// Schema of the datasets (default: the directory's name).
    #[arg(long)]
    pub schema: Option<String>,
    /// Replace an existing DIR/catalog.toml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Catalog file (a path or an s3:// URL). Default: the demo lake's.
    #[arg(long, env = "CITYLAKE_CATALOG")]
    pub catalog: Option<PathBuf>,
}

pub async fn run(command: CatalogCommand) -> anyhow::Result<ExitCode> {
    match command {
        CatalogCommand::Check(args) => {
            let catalog = args.catalog.unwrap_or_else(|| {
                PathBuf::from(crate::sql::DEFAULT_LAKE_DIR).join("catalog.toml")
            });
            check(&catalog).await
        }
        CatalogCommand::Init(args) => init(args).await,
    }
}

async fn check(catalog: &Path) -> anyhow::Result<ExitCode> {
    let config = citylake_engine::EngineConfig::new(catalog);
    match citylake_engine::Engine::new(config).await {
        Ok(engine) => {
            let spec = engine.catalog().spec();
            println!(
                "catalog {} is valid: {} datasets, {} views; every declared column matches its files",
                catalog.display(),
                spec.datasets.len(),
                spec.views.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let out = args.dir.join("catalog.toml");
    if out.exists() && !args.force {
        bail!("{} exists (--force replaces it)", out.display());
    }
    let (spec, skipped) = init::describe_dir(&args.dir, args.schema.as_deref())?;
    for entry in skipped {
        eprintln!("skipped {entry}: no Parquet files");
    }
    std::fs::write(&out, init::to_file_text(&spec)?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let schema = spec.catalog.default_schema.as_deref().unwrap_or_default();
    println!(
        "wrote {}: {} datasets in schema {schema}",
        out.display(),
        spec.datasets.len()
    );
    for d in &spec.datasets {
        let partitions = d
            .partitions
            .iter()
            .map(|p| format!("{} {}", p.name, p.data_type))
            .collect::<Vec<_>>();
        if partitions.is_empty() {
            println!("  {} ← {}", d.name, d.location);
        } else {
            println!(
                "  {} ← {} (partitioned by {})",
                d.name,
                d.location,
                partitions.join(", ")
            );
        }
    }
    check(&out).await
}
