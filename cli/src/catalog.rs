//! `citylake catalog check`: loads a catalog as the server would — its
//! format, every dataset's files against its declared columns, the views, the
//! policy — and says what is wrong, or what it holds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Load the catalog as `serve` would and report every error it finds:
    /// fields, locations, declared columns against the files, views.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Catalog file (a path or an s3:// URL). Default: the demo lake's.
    #[arg(long, env = "CITYLAKE_CATALOG")]
    pub catalog: Option<PathBuf>,
}

pub async fn run(command: CatalogCommand) -> anyhow::Result<ExitCode> {
    let CatalogCommand::Check(args) = command;
    let catalog = args
        .catalog
        .unwrap_or_else(|| PathBuf::from(crate::sql::DEFAULT_LAKE_DIR).join("catalog.toml"));
    let config = citylake_engine::EngineConfig::new(&catalog);
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
