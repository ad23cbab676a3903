//! `citylake catalog check`: loads a catalog as the server would — its
//! format, every dataset's files against its declared columns, the views, the
//! policy — and says what is wrong, or what it holds.
//!
//! `citylake catalog init DIR`: writes a first catalog for Parquet files that
//! already exist — one dataset per file or directory, Hive partitions and
//! their types read from the directory names — then loads it as `check` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use citylake_engine::catalog::spec::{CatalogSection, CatalogSpec, DatasetSpec, PartitionSpec};
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

/// A name as a lower-case identifier (`Line Item` → `line_item`).
fn identifier(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The entries of `dir` by name, without hidden and `_`-prefixed ones (what
/// writers leave beside their data: `_SUCCESS`, `.crc`, …).
fn entries(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| e.map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())))
        .collect::<Result<_, _>>()?;
    entries.retain(|(name, _)| !name.starts_with('.') && !name.starts_with('_'));
    entries.sort();
    Ok(entries)
}

/// Parquet files under `dir` (not hidden, not `_`-prefixed), with their paths
/// relative to it.
fn parquet_files(dir: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for (name, path) in entries(dir)? {
        if path.is_dir() {
            parquet_files(&path, &relative.join(&name), out)?;
        } else if name.ends_with(".parquet") {
            out.push(relative.join(&name));
        }
    }
    Ok(())
}

/// The type of a partition column from its values: `bigint`, `date` or `text`.
fn partition_type<'a>(values: impl IntoIterator<Item = &'a str>) -> &'static str {
    let values: Vec<&str> = values.into_iter().collect();
    if values.iter().all(|v| v.parse::<i64>().is_ok()) {
        "bigint"
    } else if values
        .iter()
        .all(|v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok())
    {
        "date"
    } else {
        "text"
    }
}

/// The dataset of one directory: its Hive partition columns, in the order of
/// the path, each with the type its values admit.
fn directory_dataset(
    name: String,
    location: String,
    files: &[PathBuf],
) -> anyhow::Result<DatasetSpec> {
    let mut dataset = DatasetSpec::new(name, format!("{location}/"));
    let mut keys: Vec<String> = vec![];
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let parts: Vec<(String, String)> = file
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
            .filter_map(|c| {
                let c = c.as_os_str().to_string_lossy();
                let (k, v) = c.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        let these: Vec<String> = parts.iter().map(|(k, _)| k.clone()).collect();
        if i == 0 {
            keys = these;
        } else if these != keys {
            bail!(
                "{location}: files are partitioned differently ({} under `{}`, {} under `{}`); \
                 a dataset's files must share one layout",
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join("/")
                },
                files[0].display(),
                if these.is_empty() {
                    "none".to_string()
                } else {
                    these.join("/")
                },
                file.display()
            );
        }
        for (k, v) in parts {
            values.entry(k).or_default().push(v);
        }
    }
    dataset.partitions = keys
        .iter()
        .map(|k| PartitionSpec {
            name: k.clone(),
            data_type: partition_type(values[k].iter().map(String::as_str)).into(),
            description: String::new(),
        })
        .collect();
    Ok(dataset)
}

async fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let out = dir.join("catalog.toml");
    if out.exists() && !args.force {
        bail!("{} exists (--force replaces it)", out.display());
    }
    let schema = identifier(&args.schema.clone().unwrap_or_else(|| {
        std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "lake".into())
    }));
    let mut datasets: Vec<DatasetSpec> = vec![];
    for (name, path) in entries(dir)? {
        if path.is_dir() {
            let mut files = vec![];
            parquet_files(&path, Path::new(""), &mut files)?;
            if files.is_empty() {
                eprintln!("skipped {name}/: no Parquet files");
                continue;
            }
            let table = format!("{schema}.{}", identifier(&name));
            datasets.push(directory_dataset(table, name, &files)?);
        } else if let Some(stem) = name.strip_suffix(".parquet") {
            datasets.push(DatasetSpec::new(
                format!("{schema}.{}", identifier(stem)),
                name,
            ));
        }
    }
    if datasets.is_empty() {
        bail!(
            "no Parquet files in {} (a .parquet file, or a directory of them, per dataset)",
            dir.display()
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in &datasets {
        if !seen.insert(d.name.clone()) {
            bail!(
                "two entries of {} become dataset `{}`: rename one",
                dir.display(),
                d.name
            );
        }
    }
    let spec = CatalogSpec {
        catalog: CatalogSection {
            name: citylake_engine::catalog::spec::DEFAULT_CATALOG_NAME.into(),
            root: ".".into(),
            description: String::new(),
            default_schema: Some(schema.clone()),
        },
        datasets,
        views: vec![],
        storage: None,
        evaluation: None,
        quality: None,
    };
    let header = format!(
        "# Written by `citylake catalog init` for the Parquet files in this directory.\n\
         # Columns and their types are read from the files. Edit each dataset's owner,\n\
         # classification (restricted until you say otherwise: only roles granted\n\
         # restricted data read it) and update_frequency; declare columns to document\n\
         # them, mark personal data (pii) or add quality rules. Unqualified names\n\
         # resolve in schema `{schema}` (default_schema).\n\n"
    );
    std::fs::write(&out, header + &spec.to_toml()?)
        .with_context(|| format!("cannot write {}", out.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_identifiers_and_partition_types_are_inferred() {
        assert_eq!(identifier("Line Item"), "line_item");
        assert_eq!(identifier("2024"), "_2024");
        assert_eq!(partition_type(["1", "22"]), "bigint");
        assert_eq!(partition_type(["2025-01-01", "2025-12-31"]), "date");
        assert_eq!(partition_type(["2025-01", "x"]), "text");
    }
}
