//! Errors of the catalog crate.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Result type of the catalog crate.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Everything that can be wrong with a catalog. Each variant names the catalog
/// file and, where there is one, the dataset and the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog file could not be read.
    #[error("cannot read catalog {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },

    /// The catalog file is not valid TOML.
    #[error("catalog {}: TOML syntax error: {message}", path.display())]
    Syntax { path: PathBuf, message: String },

    /// The file is TOML, but a section or dataset does not follow the catalog format.
    #[error("catalog {}: {}field `{field}`: {message}", path.display(), dataset_prefix(.dataset))]
    Invalid {
        path: PathBuf,
        /// `None` for the `[catalog]` section and top-level keys.
        dataset: Option<String>,
        field: String,
        message: String,
    },

    /// Fields the catalog format requires are missing: every one in the
    /// file, at once (a hand-written catalog is fixed in one pass).
    #[error("catalog {}: required fields are missing:\n  - {}", path.display(), missing.join("\n  - "))]
    Missing { path: PathBuf, missing: Vec<String> },

    /// The catalog could not be serialised (writing a generated catalog).
    #[error("cannot serialise catalog: {0}")]
    Serialize(String),

    /// A dataset could not be turned into a table (listing its files, reading a footer).
    #[error("catalog {}: dataset `{dataset}` at {location}: {error}", path.display())]
    Table {
        path: PathBuf,
        dataset: String,
        location: String,
        error: Box<DataFusionError>,
    },

    /// A dataset's declared columns do not match its files: every problem
    /// found, each naming the column.
    #[error("catalog {}: dataset `{dataset}`: the declared columns do not match the files (checked against {file}):\n  - {}", path.display(), problems.join("\n  - "))]
    Columns {
        path: PathBuf,
        dataset: String,
        /// The file checked (the dataset's first).
        file: String,
        problems: Vec<String>,
    },

    /// A view's query cannot be read or planned.
    #[error("catalog {}: view `{view}`: {message}", path.display())]
    View {
        path: PathBuf,
        view: String,
        message: String,
    },

    /// A directory a catalog is written for (`citylake catalog init`) cannot
    /// be described: unreadable, without Parquet files, or laid out two ways.
    #[error("{}: {message}", dir.display())]
    Describe { dir: PathBuf, message: String },

    /// A DataFusion error outside any one dataset (registering the catalog).
    #[error("{0}")]
    DataFusion(DataFusionError),
}

fn dataset_prefix(dataset: &Option<String>) -> String {
    match dataset {
        Some(name) => format!("dataset `{name}`, "),
        None => String::new(),
    }
}

impl From<DataFusionError> for CatalogError {
    fn from(e: DataFusionError) -> Self {
        Self::DataFusion(e)
    }
}
