//! The city data lake generator.
//!
//! [`generate`] writes every dataset of the data dictionary (`docs/data.md`)
//! as Parquet under an output directory, then a `catalog.toml` that declares them
//! (written last, so a lake with a catalog is complete). The same scale, seed and
//! year give byte-identical files: every random value is a hash of the seed and
//! of the entity and time it belongs to ([`noise`]), so files can be written in
//! parallel, in any order. Memory stays bounded: each file is streamed in
//! batches of at most 64 Ki rows.
//!
//! # The model of each table
//! - `common.districts`: Hangzhou's 13 county-level divisions ([`city`]).
//! - `environment.air_stations`, `environment.air_quality_hourly`: see `tables::environment`.
//! - `traffic.road_segments`, `traffic.segment_speed`: see `tables::traffic`.
//! - `hotline.cases`: see `tables::hotline`.
//! - `emergency.incidents`: see `tables::emergency`.
//! - `finance.programs`, `finance.expenditures`, `finance.performance_indicators`:
//!   see `tables::finance`.
//!
//! The module docs of each (`cargo doc --document-private-items`) describe the
//! simulation; `citylake sql -c "SELECT * FROM system.columns"` lists every column.
//!
//! # Layout
//! - [`noise`]: hash-based deterministic randomness; [`calendar`]: the simulated year,
//!   holidays, seasons and rain; [`city`]: the districts; `world`: the entities.
//! - `tables`: one module per department; `table`, `writer`: shared plumbing.

pub mod calendar;
pub mod city;
pub mod defects;
mod events;
pub mod noise;
mod people;
mod table;
mod tables;
mod world;
mod writer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use citylake_catalog::{CatalogSection, CatalogSpec};
use rayon::prelude::*;

pub use world::{SEGMENTS_PER_SF, STATIONS_PER_SF};

/// Default seed of `citylake generate`.
pub const DEFAULT_SEED: u64 = 20_250_101;
/// Default simulated year.
pub const DEFAULT_YEAR: i32 = 2025;
/// File name of the catalog written at the lake root.
pub const CATALOG_FILE: &str = "catalog.toml";

/// Errors of the generator. Causes are chained as `source()`, not repeated in
/// the message (print with `{:#}` through anyhow to see the whole chain).
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error(
        "{} already holds a lake (catalog.toml); pass --force to replace it",
        .0.display()
    )]
    LakeExists(PathBuf),
    #[error("I/O error")]
    Io(#[from] std::io::Error),
    #[error("Arrow error")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("Parquet error")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Catalog(#[from] citylake_catalog::CatalogError),
    #[error("making {path} a Delta table")]
    Delta {
        path: String,
        #[source]
        source: Box<datafusion_error::DataFusionError>,
    },
    #[error("writing {path}")]
    File {
        path: String,
        #[source]
        source: Box<GenerateError>,
    },
}

use citylake_catalog::delta::datafusion_error;

pub type Result<T, E = GenerateError> = std::result::Result<T, E>;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Scale factor: multiplies entity counts (segments, stations, cases, programs).
    pub scale: f64,
    pub seed: u64,
    /// The simulated calendar year.
    pub year: i32,
    pub out: PathBuf,
    /// Replace an existing lake at `out`.
    pub force: bool,
    /// Format of the event datasets (those partitioned by time): Parquet
    /// directories, or Delta tables over the same files. Dimensions stay Parquet.
    pub format: citylake_catalog::Format,
}

impl GenerateOptions {
    pub fn new(scale: f64, out: impl Into<PathBuf>) -> Self {
        Self {
            scale,
            seed: DEFAULT_SEED,
            year: DEFAULT_YEAR,
            out: out.into(),
            force: false,
            format: citylake_catalog::Format::Parquet,
        }
    }
}

/// Receives progress as files are written (from several threads).
pub trait Progress: Sync {
    /// Called once with the number of files to write.
    fn start(&self, _files: u64) {}
    /// Called after each file.
    fn file_done(&self, _dataset: &str, _rows: u64) {}
}

/// Ignores progress.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What one dataset came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    pub name: String,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// What a generation run wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    pub catalog: PathBuf,
    pub datasets: Vec<DatasetSummary>,
    pub elapsed: Duration,
}

impl Summary {
    pub fn total_rows(&self) -> u64 {
        self.datasets.iter().map(|d| d.rows).sum()
    }
    pub fn total_bytes(&self) -> u64 {
        self.datasets.iter().map(|d| d.bytes).sum()
    }
}

/// Generates the lake. Files are written in parallel on rayon's pool.
pub fn generate(options: &GenerateOptions, progress: &dyn Progress) -> Result<Summary> {
    let started = Instant::now();
    if !(options.scale.is_finite() && options.scale > 0.0 && options.scale <= 1_000.0) {
        return Err(GenerateError::InvalidOption(format!(
            "scale must be a number in (0, 1000], got {}",
            options.scale
        )));
    }
    if !(1971..=9998).contains(&options.year) {
        return Err(GenerateError::InvalidOption(format!(
            "year must be in 1971..=9998, got {}",
            options.year
        )));
    }
    let out = &options.out;
    let catalog_path = out.join(CATALOG_FILE);
    if catalog_path.exists() && !options.force {
        return Err(GenerateError::LakeExists(out.clone()));
    }
    let world = world::World::new(options.scale, options.seed, options.year);
    let tables = tables::all(&world);
    std::fs::create_dir_all(out)?;
    // Unpublish the old lake first, then clear the datasets' directories.
    if catalog_path.exists() {
        std::fs::remove_file(&catalog_path)?;
    }
    for t in &tables {
        let dir = out.join(&t.spec.location);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
    }

    let jobs: Vec<(usize, &table::FilePart)> = tables
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.parts.iter().map(move |p| (i, p)))
        .collect();
    progress.start(jobs.len() as u64);
    let schemas: Vec<_> = tables
        .iter()
        .map(|t| (t.file_schema(), t.sorted_by()))
        .collect();
    let results: Vec<(usize, u64, u64)> = jobs
        .par_iter()
        .map(|(i, part)| {
            let t = &tables[*i];
            let path = out.join(&t.spec.location).join(&part.rel_path);
            let (schema, sorted_by) = &schemas[*i];
            let write = || -> Result<(u64, u64)> {
                let mut sink = writer::ParquetSink::create(&path, schema.clone(), sorted_by)?;
                (part.write)(&world, schema, &mut |b| sink.write(&b))?;
                sink.finish()
            };
            let (rows, bytes) = write().map_err(|e| GenerateError::File {
                path: path.display().to_string(),
                source: Box::new(e),
            })?;
            progress.file_done(&t.spec.name, rows);
            Ok((*i, rows, bytes))
        })
        .collect::<Result<_>>()?;

    let mut datasets: Vec<DatasetSummary> = tables
        .iter()
        .map(|t| DatasetSummary {
            name: t.spec.name.clone(),
            files: 0,
            rows: 0,
            bytes: 0,
        })
        .collect();
    for (i, rows, bytes) in results {
        datasets[i].files += 1;
        datasets[i].rows += rows;
        datasets[i].bytes += bytes;
    }

    let mut tables = tables;
    if options.format == citylake_catalog::Format::Delta {
        for t in tables.iter_mut().filter(|t| !t.spec.partitions.is_empty()) {
            delta::convert(out, &t.spec)?;
            t.spec.format = citylake_catalog::Format::Delta;
        }
    }
    let spec = CatalogSpec {
        catalog: CatalogSection {
            name: citylake_catalog::spec::DEFAULT_CATALOG_NAME.into(),
            root: ".".into(),
            description: format!(
                "Hangzhou city data lake (synthetic): scale {}, seed {}, year {}",
                options.scale, options.seed, options.year
            ),
            default_schema: None,
        },
        datasets: tables.into_iter().map(|t| t.spec).collect(),
        views: citylake_catalog::views::STANDARD_VIEWS
            .iter()
            .map(|v| v.spec(VIEWS_DIR))
            .collect(),
        storage: None,
        evaluation: Some(citylake_catalog::spec::EvaluationSection {
            labels: tables::finance::labels(),
            ..Default::default()
        }),
        // the simulated year ends at the lake's clock: freshness is judged there
        quality: Some(citylake_catalog::spec::QualitySection {
            as_of: Some(format!("{}-01-01T00:00:00", options.year + 1)),
            partition_tolerance: None,
        }),
    };
    let views_dir = options.out.join(VIEWS_DIR);
    std::fs::create_dir_all(&views_dir)?;
    for view in citylake_catalog::views::STANDARD_VIEWS {
        write_atomic(&views_dir.join(view.file), view.sql.as_bytes())?;
    }
    spec.validate(&catalog_path)?;
    write_atomic(&catalog_path, spec.to_toml()?.as_bytes())?;
    Ok(Summary {
        catalog: catalog_path,
        datasets,
        elapsed: started.elapsed(),
    })
}

mod delta {
    //! `--format delta`: the event datasets' Parquet directories become Delta
    //! tables in place (a first commit lists the files), on a runtime of their
    //! own so the generator stays callable from synchronous code and async code.
    use std::path::Path;
    use std::sync::Arc;

    use citylake_catalog::DatasetSpec;

    use super::{GenerateError, Result};

    pub(super) fn convert(out: &Path, ds: &DatasetSpec) -> Result<()> {
        let dir = out.join(&ds.location);
        let dir = dir.canonicalize()?;
        let url = url::Url::from_directory_path(&dir).map_err(|()| {
            GenerateError::InvalidOption(format!("{} is not an absolute path", dir.display()))
        })?;
        let store = Arc::new(object_store::local::LocalFileSystem::new());
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime
                        .block_on(citylake_catalog::delta::convert_dataset(store, &url, ds))
                        .map_err(|e| GenerateError::Delta {
                            path: dir.display().to_string(),
                            source: Box::new(e),
                        })
                })
                .join()
                .expect("the conversion thread does not panic")
        })?;
        Ok(())
    }
}

/// Where the generator writes the standard views' SQL, relative to the lake.
const VIEWS_DIR: &str = "views";

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
