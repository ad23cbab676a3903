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
//! - [`error`]: [`CatalogError`], naming file, dataset and field.

pub mod error;
mod provider;
pub mod spec;
pub mod types;
pub mod views;

use std::path::{Path, PathBuf};

pub use error::{CatalogError, Result};
pub use provider::SYSTEM_SCHEMA;
pub use spec::{
    CatalogSection, CatalogSpec, Classification, ColumnSpec, DatasetSpec, EvaluationSection,
    Format, PartitionSpec, PiiTag, ViewSpec,
};
pub use types::ColumnType;

/// A loaded, validated catalog with its storage root resolved to a URL.
#[derive(Debug, Clone)]
pub struct Catalog {
    path: PathBuf,
    spec: CatalogSpec,
    root: String,
}

impl Catalog {
    /// Loads and validates the catalog file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let spec = CatalogSpec::from_file(path)?;
        Self::from_spec(spec, path)
    }

    /// Wraps an already parsed catalog; `path` locates a relative root and names errors.
    pub fn from_spec(spec: CatalogSpec, path: &Path) -> Result<Self> {
        spec.validate(path)?;
        let root = spec::resolve_root(&spec.catalog.root, path).map_err(|message| {
            CatalogError::Invalid {
                path: path.to_path_buf(),
                dataset: None,
                field: "catalog.root".into(),
                message,
            }
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            spec,
            root,
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

    /// The storage root as a URL ending in `/` (`file:///...`, `s3://bucket/prefix/`).
    pub fn root_url(&self) -> &str {
        &self.root
    }

    /// The query of a view: inline, or read from its file (relative to the catalog file).
    pub fn view_sql(&self, view: &ViewSpec) -> Result<String> {
        if let Some(sql) = &view.sql {
            return Ok(sql.clone());
        }
        let file = view.file.as_deref().unwrap_or_default();
        let path = self
            .path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(file);
        std::fs::read_to_string(&path).map_err(|e| CatalogError::View {
            path: self.path.clone(),
            view: view.name.clone(),
            message: format!("cannot read {}: {e}", path.display()),
        })
    }

    /// The full URL of a dataset's location.
    pub fn dataset_url(&self, ds: &DatasetSpec) -> String {
        format!("{}{}", self.root, ds.location.trim_start_matches("./"))
    }
}
