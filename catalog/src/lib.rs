//! The city lake's catalog.
//!
//! A catalog is a TOML file (format documented in [`spec`]) that declares where the
//! lake is stored and, per dataset, its location, format, partitions, owner,
//! classification, update frequency and column documentation with PII tags.
//! [`Catalog::build_provider`] turns it into the DataFusion catalog `city`: one
//! schema per domain, a listing table per dataset, and the `system` schema
//! (`system.datasets`, `system.columns`).
//!
//! # Layout
//! - [`spec`]: the file format (serde types), parsing and validation.
//! - [`types`]: column type names and their Arrow types.
//! - `provider`: DataFusion providers built from a loaded catalog.
//! - [`views`]: the city's standard views shipped with citylake.
//! - [`parquet`], [`delta`]: the two dataset formats (a Parquet directory, a Delta table).
//! - [`error`]: [`CatalogError`], naming file, dataset and field.

pub mod columns;
pub mod delta;
mod delta_files;
pub mod error;
pub mod init;
pub mod parquet;
mod provider;
pub mod spec;
pub mod types;
pub mod views;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use error::{CatalogError, Result};
pub use provider::SYSTEM_SCHEMA;
pub use spec::{
    CatalogSection, CatalogSpec, Classification, ColumnSpec, DatasetSpec, EvaluationSection,
    Format, PartitionSpec, PiiTag, ViewSpec,
};
pub use types::ColumnType;

/// A loaded, validated catalog with its storage root resolved to a URL and
/// the queries of its views read.
#[derive(Debug, Clone)]
pub struct Catalog {
    path: PathBuf,
    spec: CatalogSpec,
    root: String,
    /// View name → its query (inline or read from its file at load).
    view_sql: HashMap<String, String>,
}

impl Catalog {
    /// Loads and validates the catalog file at `path`, reading the views' files
    /// relative to it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let spec = CatalogSpec::from_file(path)?;
        Self::from_spec(spec, path)
    }

    /// Wraps an already parsed catalog; `path` locates a relative root and the
    /// views' files, and names errors.
    pub fn from_spec(spec: CatalogSpec, path: &Path) -> Result<Self> {
        let base = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .to_path_buf();
        Self::from_spec_with(spec, path, |file| {
            let full = base.join(file);
            std::fs::read_to_string(&full)
                .map_err(|e| format!("cannot read {}: {e}", full.display()))
        })
    }

    /// Wraps a catalog read from elsewhere (an object store): `location` is the
    /// catalog file's path or URL (`s3://bucket/prefix/catalog.toml`), against
    /// which a relative root resolves; `read_file` returns the text of a file
    /// named relative to it (a view's `file`), or a message saying why not.
    pub fn from_spec_with(
        spec: CatalogSpec,
        location: &Path,
        mut read_file: impl FnMut(&str) -> std::result::Result<String, String>,
    ) -> Result<Self> {
        spec.validate(location)?;
        let root = spec::resolve_root(&spec.catalog.root, location).map_err(|message| {
            CatalogError::Invalid {
                path: location.to_path_buf(),
                dataset: None,
                field: "catalog.root".into(),
                message,
            }
        })?;
        let mut view_sql = HashMap::with_capacity(spec.views.len());
        for view in &spec.views {
            let sql = match (&view.sql, &view.file) {
                (Some(sql), _) => sql.clone(),
                (None, file) => {
                    read_file(file.as_deref().unwrap_or_default()).map_err(|message| {
                        CatalogError::View {
                            path: location.to_path_buf(),
                            view: view.name.clone(),
                            message,
                        }
                    })?
                }
            };
            view_sql.insert(view.name.clone(), sql);
        }
        Ok(Self {
            path: location.to_path_buf(),
            spec,
            root,
            view_sql,
        })
    }

    /// The file this catalog was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed catalog.
    pub fn spec(&self) -> &CatalogSpec {
        &self.spec
    }

    /// The DataFusion catalog name (`city` by default).
    pub fn name(&self) -> &str {
        &self.spec.catalog.name
    }

    /// The schema unqualified table names are looked up in (`public` unless
    /// `[catalog] default_schema` says otherwise).
    pub fn default_schema(&self) -> &str {
        self.spec
            .catalog
            .default_schema
            .as_deref()
            .unwrap_or(spec::DEFAULT_SCHEMA)
    }

    /// The storage root as a URL ending in `/` (`file:///...`, `s3://bucket/prefix/`).
    pub fn root_url(&self) -> &str {
        &self.root
    }

    /// The query of a view: inline, or as read from its file at load.
    pub fn view_sql(&self, view: &ViewSpec) -> &str {
        self.view_sql.get(&view.name).map_or("", String::as_str)
    }

    /// The full URL of a dataset's location.
    pub fn dataset_url(&self, ds: &DatasetSpec) -> String {
        format!("{}{}", self.root, ds.location.trim_start_matches("./"))
    }
}
