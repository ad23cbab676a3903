//! The catalog file format: a TOML declaration of the lake's datasets.
//!
//! ```toml
//! [catalog]
//! name = "city"          # the DataFusion catalog name (default "city")
//! root = "."             # storage root: a URL (file:///lake, later s3://bucket/prefix)
//!                        # or a path relative to this file
//! description = "Hangzhou city data lake"
//!
//! [[datasets]]
//! name = "traffic.segment_speed"      # schema.table
//! location = "traffic/segment_speed/" # relative to the root
//! format = "parquet"
//! owner = "traffic"                   # owning department
//! classification = "internal"         # public | internal | restricted
//! update_frequency = "5 minutes"      # how often new data is expected
//! description = "Speed per road segment and 5-minute interval"
//! sort_order = ["observed_at"]        # order of the rows within each file
//! partitions = [{ name = "dt", type = "date" }]
//! primary_key = ["segment_id", "observed_at"]  # optional; checked for uniqueness
//! time_column = "observed_at"         # optional; the event time freshness is judged on
//! partition_tolerance = 0.5           # optional; overrides [quality]'s for this dataset
//!
//! [[datasets.columns]]
//! name = "segment_id"
//! type = "int"                         # optional; when every column has one, no file is read to plan
//! description = "Road segment, see traffic.road_segments"
//! pii = "plate"                        # optional personal-information / secrecy tag
//! required = true                      # optional; a NULL here is a completeness defect
//! min = 0                              # optional valid range of a numeric column
//! max = 200
//!
//! [quality]
//! as_of = "2026-01-01T00:00:00"       # optional: the clock freshness is judged against
//!                                     # (local time; default: now). A simulated lake sets it.
//! partition_tolerance = 0.5           # a partition with fewer than (1 − t) × or more than
//!                                     # (1 + t) × the median rows per partition is an anomaly
//!
//! [[views]]
//! name = "situation.district_daily"   # schema.view (a new schema is created when needed)
//! file = "views/situation_district_daily.sql"  # relative to this file; or `sql = "SELECT …"`
//! owner = "city operations centre"
//! description = "Daily city situation index per district"
//! ```
//!
//! Views are planned when the engine starts, in the order declared (a view may
//! use the ones before it), with every citylake function available.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};
use crate::types::ColumnType;

/// Default name of the DataFusion catalog the lake is registered as.
pub const DEFAULT_CATALOG_NAME: &str = "city";

/// A whole catalog file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSpec {
    pub catalog: CatalogSection,
    #[serde(default)]
    pub datasets: Vec<DatasetSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<ViewSpec>,
    /// Object-store settings of an `s3://` root (`[storage]`); credentials never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSection>,
    /// The performance-evaluation settings (`[evaluation]`); defaults from DOMAIN.md §4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<EvaluationSection>,
    /// The data-quality settings (`[quality]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualitySection>,
}

/// The `[quality]` section: how the data-quality checks judge the lake.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySection {
    /// The local time (`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS`, Asia/Shanghai) that
    /// freshness is judged against; default: now. A simulated lake sets the end
    /// of its year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// A partition whose row count is below (1 − t) or above (1 + t) times the
    /// median of the dataset's partitions is an anomaly (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_tolerance: Option<f64>,
}

/// Default of [`QualitySection::partition_tolerance`].
pub const DEFAULT_PARTITION_TOLERANCE: f64 = 0.5;

/// Parses a local time `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS` (a space instead of
/// the `T` too).
pub fn parse_local_time(s: &str) -> Result<chrono::NaiveDateTime, String> {
    let t = s.trim();
    chrono::NaiveDateTime::parse_from_str(&t.replace(' ', "T"), "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
        })
        .map_err(|_| {
            format!("`{s}` is not a local time; expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS")
        })
}

/// The `[storage]` section: how to reach an S3-compatible root. Each setting
/// overrides the standard `AWS_*` environment variable; credentials come only
/// from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Endpoint URL of an S3-compatible store (e.g. `http://127.0.0.1:8333`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Allow plain HTTP (a store on loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// Path-style addressing (`endpoint/bucket/key`), which most self-hosted stores need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
}

/// The `[evaluation]` section: grade bands and the over-completion threshold of
/// the spending-performance evaluation. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSection {
    /// Lowest total graded 优 (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade_excellent: Option<f64>,
    /// Lowest total graded 良 (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade_good: Option<f64>,
    /// Lowest total graded 中 (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade_fair: Option<f64>,
    /// actual / target above which an indicator is flagged (default 1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_completion_threshold: Option<f64>,
}

/// One `[[views]]` entry: a SQL view over the datasets (and earlier views).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSpec {
    /// `schema.view`.
    pub name: String,
    /// The query, inline; exactly one of `sql` and `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// A file holding the query, relative to the catalog file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl ViewSpec {
    /// The schema part of the name.
    pub fn schema_name(&self) -> &str {
        self.name.split_once('.').map_or("", |(s, _)| s)
    }

    /// The view part of the name.
    pub fn view_name(&self) -> &str {
        self.name.split_once('.').map_or(&self.name, |(_, v)| v)
    }
}

/// The `[catalog]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSection {
    #[serde(default = "default_catalog_name")]
    pub name: String,
    /// Storage root: a URL, or a local path relative to the catalog file.
    pub root: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn default_catalog_name() -> String {
    DEFAULT_CATALOG_NAME.to_string()
}

/// One `[[datasets]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// `schema.table`.
    pub name: String,
    /// Location relative to the storage root (a directory for partitioned data).
    pub location: String,
    #[serde(default)]
    pub format: Format,
    /// The owning department.
    pub owner: String,
    pub classification: Classification,
    /// Expected update frequency: `static`, `hourly`, `daily`, `weekly`, `monthly`,
    /// `yearly`, or `<n> <unit>` with unit minutes/hours/days.
    pub update_frequency: String,
    #[serde(default)]
    pub description: String,
    /// Columns the rows of each file are sorted by (ascending).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sort_order: Vec<String>,
    /// Hive-style partition columns, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionSpec>,
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    /// Columns whose values identify a row; the quality checks count duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    /// The event-time column freshness is judged on (newest value against the
    /// update frequency); without it, the newest file's modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    /// This dataset's partition-row tolerance, overriding `[quality]`'s (e.g. for
    /// yearly partitions whose sizes legitimately differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_tolerance: Option<f64>,
}

/// A Hive partition column (`dt=2025-01-01/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A column's documentation (and optionally its type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<PiiTag>,
    /// Every row must have a value (a completeness check).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Lowest valid value of a numeric column (a validity check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest valid value of a numeric column (a validity check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// File format of a dataset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Parquet,
}

/// How sensitive a dataset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Public,
    Internal,
    Restricted,
}

impl Classification {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Restricted => "restricted",
        }
    }
}

/// The kind of personal or secret information a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiTag {
    Name,
    Phone,
    IdNumber,
    Address,
    Plate,
    Email,
    Location,
    TradeSecret,
}

impl PiiTag {
    /// Every tag.
    pub const ALL: [PiiTag; 8] = [
        Self::Name,
        Self::Phone,
        Self::IdNumber,
        Self::Address,
        Self::Plate,
        Self::Email,
        Self::Location,
        Self::TradeSecret,
    ];

    /// The tag named `s` (`name`, `phone`, `id_number`, …).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Phone => "phone",
            Self::IdNumber => "id_number",
            Self::Address => "address",
            Self::Plate => "plate",
            Self::Email => "email",
            Self::Location => "location",
            Self::TradeSecret => "trade_secret",
        }
    }
}

impl DatasetSpec {
    /// The schema part of `schema.table`.
    pub fn schema_name(&self) -> &str {
        self.name.split_once('.').map(|(s, _)| s).unwrap_or("")
    }

    /// The table part of `schema.table`.
    pub fn table_name(&self) -> &str {
        self.name.split_once('.').map(|(_, t)| t).unwrap_or("")
    }

    /// Parsed partition columns (valid after [`CatalogSpec::validate`]).
    pub fn partition_types(&self) -> Vec<(String, ColumnType)> {
        self.partitions
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.data_type.parse().ok()?)))
            .collect()
    }

    /// The declared column types, when every column declares one.
    pub fn declared_types(&self) -> Option<Vec<(String, ColumnType)>> {
        if self.columns.is_empty() {
            return None;
        }
        self.columns
            .iter()
            .map(|c| Some((c.name.clone(), c.data_type.as_deref()?.parse().ok()?)))
            .collect()
    }
}

/// Parses an update frequency: `static`, `hourly`, `daily`, `weekly`, `monthly`,
/// `yearly`, or `<n> <unit>` (`minute(s)`, `hour(s)`, `day(s)`). `Ok(None)` means static.
pub fn parse_update_frequency(s: &str) -> Result<Option<Duration>, String> {
    const DAY: u64 = 86_400;
    let lower = s.trim().to_ascii_lowercase();
    let secs = match lower.as_str() {
        "static" | "never" => return Ok(None),
        "hourly" => 3_600,
        "daily" => DAY,
        "weekly" => 7 * DAY,
        "monthly" => 31 * DAY,
        "yearly" | "annual" => 366 * DAY,
        other => {
            let (n, unit) = other.split_once(' ').ok_or_else(|| bad_frequency(s))?;
            let n: u64 = n.parse().map_err(|_| bad_frequency(s))?;
            let unit_secs = match unit.trim().trim_end_matches('s') {
                "minute" | "min" => 60,
                "hour" => 3_600,
                "day" => DAY,
                _ => return Err(bad_frequency(s)),
            };
            if n == 0 {
                return Err(bad_frequency(s));
            }
            n * unit_secs
        }
    };
    Ok(Some(Duration::from_secs(secs)))
}

/// A serde error as (the field it is about, the message): `catalog.root`,
/// `columns[2].type`.
fn error_field(e: &serde_path_to_error::Error<toml::de::Error>) -> (String, String) {
    let message = clean(e.inner());
    let path = e.path().to_string();
    let field = if path == "." {
        field_of(&message)
    } else {
        path
    };
    (field, message)
}

/// An optional section of plain settings; errors are named `section.field`.
fn settings<T: serde::de::DeserializeOwned>(
    table: &toml::Table,
    name: &str,
    error: impl Fn(&str, String) -> CatalogError,
) -> Result<Option<T>> {
    let Some(section) = table.get(name) else {
        return Ok(None);
    };
    serde_path_to_error::deserialize(section.clone())
        .map(Some)
        .map_err(|e| {
            let (field, message) = error_field(&e);
            error(&format!("{name}.{field}"), message)
        })
}

fn bad_frequency(s: &str) -> String {
    format!(
        "`{s}` is not an update frequency; expected static, hourly, daily, weekly, monthly, \
         yearly, or `<n> minutes|hours|days`"
    )
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl CatalogSpec {
    /// Reads and validates a catalog file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| CatalogError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates catalog text; `path` is used in error messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let table: toml::Table = toml::from_str(text).map_err(|e| CatalogError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid =
            |dataset: Option<String>, field: &str, message: String| CatalogError::Invalid {
                path: path.to_path_buf(),
                dataset,
                field: field.to_string(),
                message,
            };

        for key in table.keys() {
            if ![
                "catalog",
                "datasets",
                "views",
                "storage",
                "evaluation",
                "quality",
            ]
            .contains(&key.as_str())
            {
                return Err(invalid(
                    None,
                    key,
                    "unknown top-level key; expected `[catalog]`, `[[datasets]]`, `[[views]]`, \
                     `[storage]`, `[evaluation]` and `[quality]`"
                        .into(),
                ));
            }
        }
        let error = |field: &str, message: String| invalid(None, field, message);
        let catalog: CatalogSection = settings(&table, "catalog", error)?
            .ok_or_else(|| invalid(None, "catalog", "the `[catalog]` section is missing".into()))?;
        // the entries of an array of tables, each labelled by its name (or position)
        let entries = |key: &str| -> Result<Vec<(String, toml::Value)>> {
            let Some(value) = table.get(key) else {
                return Ok(vec![]);
            };
            let entries = value.as_array().ok_or_else(|| {
                invalid(
                    None,
                    key,
                    format!("must be an array of tables (`[[{key}]]`)"),
                )
            })?;
            Ok(entries
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    let label = entry
                        .get("name")
                        .and_then(|n| n.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("#{}", i + 1));
                    (label, entry.clone())
                })
                .collect())
        };
        let mut datasets = Vec::new();
        for (label, entry) in entries("datasets")? {
            let dataset: DatasetSpec = serde_path_to_error::deserialize(entry).map_err(|e| {
                let (field, message) = error_field(&e);
                invalid(Some(label.clone()), &field, message)
            })?;
            datasets.push(dataset);
        }
        let mut views = Vec::new();
        for (label, entry) in entries("views")? {
            let view: ViewSpec = serde_path_to_error::deserialize(entry).map_err(|e| {
                let (field, message) = error_field(&e);
                invalid(None, &format!("views[{label}].{field}"), message)
            })?;
            views.push(view);
        }
        if let Some(key) = table
            .get("storage")
            .and_then(|section| section.as_table())
            .and_then(|t| {
                t.keys()
                    .find(|k| k.contains("key") || k.contains("secret") || k.contains("token"))
            })
        {
            return Err(invalid(
                None,
                &format!("storage.{key}"),
                "credentials are never stored in the catalog; set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (or AWS_SESSION_TOKEN) in the environment"
                    .into(),
            ));
        }
        let storage = settings(&table, "storage", error)?;
        let evaluation = settings(&table, "evaluation", error)?;
        let quality = settings(&table, "quality", error)?;
        let spec = Self {
            catalog,
            datasets,
            views,
            storage,
            evaluation,
            quality,
        };
        spec.validate(path)?;
        Ok(spec)
    }

    /// Checks what serde cannot: names, locations, types, references between fields.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let invalid = |dataset: Option<&str>, field: &str, message: String| {
            Err(CatalogError::Invalid {
                path: path.to_path_buf(),
                dataset: dataset.map(str::to_string),
                field: field.to_string(),
                message,
            })
        };
        if !is_identifier(&self.catalog.name) {
            return invalid(
                None,
                "catalog.name",
                format!("`{}` is not a lower-case identifier", self.catalog.name),
            );
        }
        if self.catalog.root.trim().is_empty() {
            return invalid(None, "catalog.root", "must not be empty".into());
        }
        let mut names = BTreeSet::new();
        for ds in &self.datasets {
            let name = Some(ds.name.as_str());
            match ds.name.split_once('.') {
                Some((schema, table)) if is_identifier(schema) && is_identifier(table) => {}
                _ => {
                    return invalid(
                        name,
                        "name",
                        "must be `schema.table` with lower-case identifiers".into(),
                    );
                }
            }
            if matches!(ds.schema_name(), "system" | "information_schema") {
                return invalid(
                    name,
                    "name",
                    format!("schema `{}` is reserved", ds.schema_name()),
                );
            }
            if !names.insert(ds.name.clone()) {
                return invalid(name, "name", "is declared twice".into());
            }
            let location = ds.location.trim();
            if location.is_empty() {
                return invalid(name, "location", "must not be empty".into());
            }
            if location.starts_with('/')
                || location.contains("://")
                || location.split('/').any(|part| part == "..")
            {
                return invalid(
                    name,
                    "location",
                    format!("`{location}` must be relative to the storage root, without `..`"),
                );
            }
            if ds.owner.trim().is_empty() {
                return invalid(name, "owner", "must name the owning department".into());
            }
            if let Err(message) = parse_update_frequency(&ds.update_frequency) {
                return invalid(name, "update_frequency", message);
            }
            let mut column_names = BTreeSet::new();
            for (i, col) in ds.columns.iter().enumerate() {
                if col.name.trim().is_empty() {
                    return invalid(
                        name,
                        &format!("columns[{i}].name"),
                        "must not be empty".into(),
                    );
                }
                if !column_names.insert(col.name.as_str()) {
                    return invalid(
                        name,
                        &format!("columns[{i}].name"),
                        format!("column `{}` is declared twice", col.name),
                    );
                }
                if let Some(Err(message)) = col.data_type.as_ref().map(|t| t.parse::<ColumnType>())
                {
                    return invalid(name, &format!("columns[{i}].type"), message);
                }
                for (field, bound) in [("min", col.min), ("max", col.max)] {
                    if bound.is_some_and(|b| !b.is_finite()) {
                        return invalid(
                            name,
                            &format!("columns[{i}].{field}"),
                            "must be a finite number".into(),
                        );
                    }
                }
                if let (Some(min), Some(max)) = (col.min, col.max)
                    && min > max
                {
                    return invalid(
                        name,
                        &format!("columns[{i}].min"),
                        format!("{min} is above max {max}"),
                    );
                }
            }
            let is_column = |c: &str| {
                ds.columns.is_empty()
                    || column_names.contains(c)
                    || ds.partitions.iter().any(|p| p.name == c)
            };
            for (i, key) in ds.primary_key.iter().enumerate() {
                if !is_column(key) {
                    return invalid(
                        name,
                        &format!("primary_key[{i}]"),
                        format!("`{key}` is not a declared column"),
                    );
                }
            }
            if let Some(t) = ds.partition_tolerance
                && !(t.is_finite() && t > 0.0)
            {
                return invalid(
                    name,
                    "partition_tolerance",
                    format!("{t} must be a positive number"),
                );
            }
            if let Some(t) = &ds.time_column
                && !is_column(t)
            {
                return invalid(
                    name,
                    "time_column",
                    format!("`{t}` is not a declared column"),
                );
            }
            for (i, part) in ds.partitions.iter().enumerate() {
                let field = format!("partitions[{i}].type");
                match part.data_type.parse::<ColumnType>() {
                    Ok(t) if t.is_partition_type() => {}
                    Ok(t) => {
                        return invalid(
                            name,
                            &field,
                            format!(
                                "`{t}` cannot be a partition column type; use date, text, \
                                 smallint, int or bigint"
                            ),
                        );
                    }
                    Err(message) => return invalid(name, &field, message),
                }
                if column_names.contains(part.name.as_str()) {
                    return invalid(
                        name,
                        &format!("partitions[{i}].name"),
                        format!("`{}` is both a partition and a file column", part.name),
                    );
                }
            }
            for (i, col) in ds.sort_order.iter().enumerate() {
                let known = column_names.contains(col.as_str())
                    || ds.partitions.iter().any(|p| &p.name == col);
                if !ds.columns.is_empty() && !known {
                    return invalid(
                        name,
                        &format!("sort_order[{i}]"),
                        format!("`{col}` is not a declared column"),
                    );
                }
            }
        }
        if let Some(q) = &self.quality {
            if let Some(Err(message)) = q.as_of.as_deref().map(parse_local_time) {
                return invalid(None, "quality.as_of", message);
            }
            if let Some(t) = q.partition_tolerance
                && !(t.is_finite() && t > 0.0)
            {
                return invalid(
                    None,
                    "quality.partition_tolerance",
                    format!("{t} must be a positive number"),
                );
            }
        }
        if let Some(e) = &self.evaluation {
            let bands = [
                ("grade_excellent", e.grade_excellent.unwrap_or(90.0)),
                ("grade_good", e.grade_good.unwrap_or(80.0)),
                ("grade_fair", e.grade_fair.unwrap_or(60.0)),
            ];
            for (name, v) in bands {
                if !(0.0..=100.0).contains(&v) {
                    return invalid(
                        None,
                        &format!("evaluation.{name}"),
                        format!("{v} is not a score between 0 and 100"),
                    );
                }
            }
            if !(bands[0].1 > bands[1].1 && bands[1].1 > bands[2].1) {
                return invalid(
                    None,
                    "evaluation",
                    "the grade bands must decrease: grade_excellent > grade_good > grade_fair"
                        .into(),
                );
            }
            if let Some(t) = e.over_completion_threshold
                && !(t.is_finite() && t >= 1.0)
            {
                return invalid(
                    None,
                    "evaluation.over_completion_threshold",
                    format!("{t} must be a ratio of at least 1"),
                );
            }
        }
        for view in &self.views {
            let field = |f: &str| format!("views[{}].{f}", view.name);
            match view.name.split_once('.') {
                Some((schema, name)) if is_identifier(schema) && is_identifier(name) => {}
                _ => {
                    return invalid(
                        None,
                        &field("name"),
                        "must be `schema.view` with lower-case identifiers".into(),
                    );
                }
            }
            if matches!(view.schema_name(), "system" | "information_schema") {
                return invalid(
                    None,
                    &field("name"),
                    format!("schema `{}` is reserved", view.schema_name()),
                );
            }
            if !names.insert(view.name.clone()) {
                return invalid(
                    None,
                    &field("name"),
                    "is already declared (as a dataset or a view)".into(),
                );
            }
            match (&view.sql, &view.file) {
                (Some(sql), None) if !sql.trim().is_empty() => {}
                (None, Some(file))
                    if !file.trim().is_empty()
                        && !file.starts_with('/')
                        && !file.split('/').any(|p| p == "..") => {}
                (None, Some(file)) => {
                    return invalid(
                        None,
                        &field("file"),
                        format!(
                            "`{file}` must be a path relative to the catalog file, without `..`"
                        ),
                    );
                }
                _ => {
                    return invalid(
                        None,
                        &field("sql"),
                        "give exactly one of `sql` (the query) and `file` (a .sql file)".into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// Serialises the catalog as TOML (used by the generator).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| CatalogError::Serialize(e.to_string()))
    }

    /// The dataset with this `schema.table` name.
    pub fn dataset(&self, name: &str) -> Option<&DatasetSpec> {
        self.datasets.iter().find(|d| d.name == name)
    }

    /// The schemas the datasets live in, sorted.
    pub fn schema_names(&self) -> BTreeSet<&str> {
        self.datasets.iter().map(|d| d.schema_name()).collect()
    }

    /// The schemas the views live in that no dataset lives in, sorted.
    pub fn view_only_schema_names(&self) -> BTreeSet<&str> {
        let datasets = self.schema_names();
        self.views
            .iter()
            .map(|v| v.schema_name())
            .filter(|s| !datasets.contains(s))
            .collect()
    }
}

/// The storage root of a catalog as a URL string with a trailing slash.
pub fn resolve_root(root: &str, catalog_path: &Path) -> Result<String, String> {
    let location = catalog_path.to_string_lossy();
    if location.contains("://") && !root.contains("://") {
        // a catalog in an object store: a relative root is relative to its URL
        if Path::new(root).is_absolute() {
            return Err(format!(
                "`{root}` is a local path, but the catalog is at {location}; use a URL or a relative path"
            ));
        }
        let base = url::Url::parse(&location)
            .map_err(|e| format!("catalog location `{location}` is not a valid URL: {e}"))?;
        let mut s = base
            .join(root)
            .map_err(|e| format!("`{root}` relative to {location}: {e}"))?
            .to_string();
        if !s.ends_with('/') {
            s.push('/');
        }
        return Ok(s);
    }
    if root.contains("://") {
        let url = url::Url::parse(root).map_err(|e| format!("`{root}` is not a valid URL: {e}"))?;
        let mut s = url.to_string();
        if !s.ends_with('/') {
            s.push('/');
        }
        return Ok(s);
    }
    let base = catalog_path.parent().unwrap_or(Path::new("."));
    let dir: PathBuf = if Path::new(root).is_absolute() {
        PathBuf::from(root)
    } else {
        base.join(root)
    };
    let dir = std::path::absolute(&dir).map_err(|e| format!("`{root}`: {e}"))?;
    let url = url::Url::from_directory_path(&dir)
        .map_err(|_| format!("`{}` is not a usable directory path", dir.display()))?;
    Ok(url.to_string())
}

/// toml's message without its trailing newline and source excerpt.
fn clean(e: &toml::de::Error) -> String {
    e.message().trim().to_string()
}

/// The field a serde error is about (`unknown field `x``, `missing field `x``), if it names one.
fn field_of(msg: &str) -> String {
    for prefix in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(name) = msg
            .split(prefix)
            .nth(1)
            .and_then(|rest| rest.split('`').next())
        {
            return name.to_string();
        }
    }
    "-".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[catalog]
root = "."

[[datasets]]
name = "traffic.segment_speed"
location = "traffic/segment_speed/"
owner = "traffic"
classification = "internal"
update_frequency = "5 minutes"
partitions = [{ name = "dt", type = "date" }]
sort_order = ["observed_at"]

[[datasets.columns]]
name = "observed_at"
type = "timestamp"
description = "interval start"

[[datasets.columns]]
name = "plate"
type = "text"
pii = "plate"
"#;

    fn parse(text: &str) -> Result<CatalogSpec> {
        CatalogSpec::from_toml(text, Path::new("/lake/catalog.toml"))
    }

    /// The message of a parse error, which must name the file.
    fn error(text: &str) -> String {
        let msg = parse(text).unwrap_err().to_string();
        assert!(msg.contains("/lake/catalog.toml"), "{msg}");
        msg
    }

    #[test]
    fn parses_a_valid_catalog() {
        let spec = parse(GOOD).unwrap();
        assert_eq!(spec.catalog.name, "city");
        let ds = &spec.datasets[0];
        assert_eq!(
            (ds.schema_name(), ds.table_name()),
            ("traffic", "segment_speed")
        );
        assert_eq!(
            ds.partition_types(),
            vec![("dt".to_string(), ColumnType::Date)]
        );
        assert_eq!(ds.columns[1].pii, Some(PiiTag::Plate));
        assert!(ds.declared_types().is_some());
    }

    #[test]
    fn round_trips_through_toml() {
        let spec = parse(GOOD).unwrap();
        assert_eq!(parse(&spec.to_toml().unwrap()).unwrap(), spec);
    }

    #[test]
    fn syntax_error_names_the_line() {
        let msg = error("[catalog]\nroot = \n");
        assert!(
            msg.contains("TOML syntax error") && msg.contains("line 2"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_field_names_dataset_and_field() {
        let msg =
            error(&GOOD.replace("owner = \"traffic\"", "owner = \"traffic\"\nowners = \"x\""));
        assert!(msg.contains("dataset `traffic.segment_speed`"), "{msg}");
        assert!(
            msg.contains("field `owners`") && msg.contains("unknown field"),
            "{msg}"
        );
    }

    #[test]
    fn missing_location_names_dataset_and_field() {
        let msg = error(&GOOD.replace("location = \"traffic/segment_speed/\"\n", ""));
        assert!(
            msg.contains("dataset `traffic.segment_speed`") && msg.contains("field `location`"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_partition_type_is_refused() {
        // a type that does not exist
        let msg = error(&GOOD.replace("type = \"date\"", "type = \"dat\""));
        assert!(
            msg.contains("partitions[0].type") && msg.contains("unknown type `dat`"),
            "{msg}"
        );
        // a type that cannot be spelled in a path
        let msg = error(&GOOD.replace("type = \"date\"", "type = \"double\""));
        assert!(msg.contains("cannot be a partition column type"), "{msg}");
    }

    #[test]
    fn bad_enum_values_name_their_field() {
        let msg = error(&GOOD.replace("\"internal\"", "\"secret\""));
        assert!(
            msg.contains("field `classification`") && msg.contains("unknown variant"),
            "{msg}"
        );
        let msg = error(&GOOD.replace("pii = \"plate\"", "pii = \"shoe_size\""));
        assert!(msg.contains("columns[1].pii"), "{msg}");
    }

    #[test]
    fn semantic_errors() {
        // not schema.table
        assert!(
            error(&GOOD.replace("traffic.segment_speed", "segment_speed")).contains("field `name`")
        );
        // escaping the root
        assert!(
            error(&GOOD.replace("traffic/segment_speed/", "../elsewhere/"))
                .contains("field `location`")
        );
        // reserved schema
        assert!(error(&GOOD.replace("traffic.segment_speed", "system.x")).contains("reserved"));
        // unparseable frequency
        assert!(error(&GOOD.replace("5 minutes", "now and then")).contains("update_frequency"));
        // sort order on an undeclared column
        assert!(error(&GOOD.replace("[\"observed_at\"]", "[\"nope\"]")).contains("sort_order[0]"));
        // declared twice
        let twice = format!("{GOOD}{}", &GOOD[GOOD.find("[[datasets]]").unwrap()..]);
        assert!(error(&twice).contains("declared twice"));
        // no [catalog]
        assert!(error("[[datasets]]\nname = \"a.b\"\n").contains("`[catalog]` section is missing"));
    }

    #[test]
    fn quality_declarations_are_validated() {
        let with = |dataset: &str, column: &str| {
            GOOD.replace(
                "sort_order = [\"observed_at\"]",
                &format!("sort_order = [\"observed_at\"]\n{dataset}"),
            )
            .replace(
                "description = \"interval start\"",
                &format!("description = \"interval start\"\n{column}"),
            )
        };
        let ok = parse(&with(
            "primary_key = [\"plate\", \"observed_at\"]\ntime_column = \"observed_at\"",
            "required = true",
        ))
        .unwrap();
        assert_eq!(ok.datasets[0].primary_key.len(), 2);
        assert!(ok.datasets[0].columns[0].required);
        assert!(
            error(&with("primary_key = [\"nope\"]", "")).contains("field `primary_key[0]`: `nope`")
        );
        assert!(error(&with("time_column = \"nope\"", "")).contains("field `time_column`"));
        assert!(error(&with("", "min = 5\nmax = 1")).contains("5 is above max 1"));
        assert!(error(&with("partition_tolerance = 0", "")).contains("positive number"));
        let quality = |section: &str| format!("{GOOD}\n[quality]\n{section}\n");
        let q = parse(&quality(
            "as_of = \"2026-01-01\"\npartition_tolerance = 0.25",
        ))
        .unwrap();
        assert_eq!(q.quality.unwrap().as_of.as_deref(), Some("2026-01-01"));
        assert!(error(&quality("as_of = \"soon\"")).contains("field `quality.as_of`"));
        assert!(error(&quality("tolerance = 1")).contains("quality.tolerance"));
        assert_eq!(
            parse_local_time("2026-01-01 08:30:00").unwrap().to_string(),
            "2026-01-01 08:30:00"
        );
    }

    #[test]
    fn update_frequencies() {
        assert_eq!(parse_update_frequency("static").unwrap(), None);
        assert_eq!(
            parse_update_frequency("5 minutes").unwrap(),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_update_frequency("daily").unwrap(),
            Some(Duration::from_secs(86_400))
        );
        assert!(parse_update_frequency("0 days").is_err());
    }

    #[test]
    fn roots_resolve_against_the_catalog_file() {
        assert_eq!(
            resolve_root(".", Path::new("/lake/catalog.toml")).unwrap(),
            "file:///lake/"
        );
        assert_eq!(
            resolve_root("data", Path::new("/lake/catalog.toml")).unwrap(),
            "file:///lake/data/"
        );
        assert_eq!(
            resolve_root("s3://bucket/prefix", Path::new("/x")).unwrap(),
            "s3://bucket/prefix/"
        );
        assert!(resolve_root("s3://bad host/", Path::new("/x")).is_err());
        let remote = Path::new("s3://lake/city/catalog.toml");
        assert_eq!(resolve_root(".", remote).unwrap(), "s3://lake/city/");
        assert_eq!(
            resolve_root("data", remote).unwrap(),
            "s3://lake/city/data/"
        );
        assert!(resolve_root("/abs", remote).is_err());
    }

    #[test]
    fn views_are_validated() {
        let with = |view: &str| format!("{GOOD}\n[[views]]\n{view}\n");
        let spec = parse(&with("name = \"situation.daily\"\nsql = \"SELECT 1\"")).unwrap();
        assert_eq!(spec.views[0].view_name(), "daily");
        assert_eq!(
            spec.view_only_schema_names()
                .into_iter()
                .collect::<Vec<_>>(),
            ["situation"]
        );
        assert_eq!(parse(&spec.to_toml().unwrap()).unwrap(), spec);
        for (view, needle) in [
            (
                "name = \"daily\"\nsql = \"SELECT 1\"",
                "field `views[daily].name`: must be `schema.view`",
            ),
            (
                "name = \"s.v\"",
                "give exactly one of `sql` (the query) and `file`",
            ),
            (
                "name = \"s.v\"\nsql = \"SELECT 1\"\nfile = \"v.sql\"",
                "give exactly one of",
            ),
            (
                "name = \"s.v\"\nfile = \"../v.sql\"",
                "must be a path relative to the catalog file",
            ),
            (
                "name = \"traffic.segment_speed\"\nsql = \"SELECT 1\"",
                "is already declared",
            ),
            (
                "name = \"system.v\"\nsql = \"SELECT 1\"",
                "schema `system` is reserved",
            ),
            (
                "name = \"s.v\"\nquery = \"SELECT 1\"",
                "unknown field `query`",
            ),
        ] {
            let msg = error(&with(view));
            assert!(msg.contains(needle), "{view}: {msg}");
        }
    }

    #[test]
    fn storage_settings_never_hold_credentials() {
        let spec = parse(&format!(
            "{GOOD}\n[storage]\nendpoint = \"http://127.0.0.1:8333\"\nallow_http = true\npath_style = true\n"
        ))
        .unwrap();
        assert_eq!(spec.storage.unwrap().allow_http, Some(true));
        let msg = error(&format!("{GOOD}\n[storage]\nsecret_access_key = \"x\"\n"));
        assert!(
            msg.contains("credentials are never stored in the catalog"),
            "{msg}"
        );
        let msg = error(&format!("{GOOD}\n[storage]\nbucket = \"x\"\n"));
        assert!(msg.contains("unknown field `bucket`"), "{msg}");
    }

    #[test]
    fn evaluation_settings_are_validated() {
        let spec = parse(&format!("{GOOD}\n[evaluation]\ngrade_excellent = 85\n")).unwrap();
        assert_eq!(spec.evaluation.unwrap().grade_excellent, Some(85.0));
        for (section, needle) in [
            ("grade_good = 95", "the grade bands must decrease"),
            (
                "grade_fair = -1",
                "field `evaluation.grade_fair`: -1 is not a score",
            ),
            (
                "over_completion_threshold = 0.5",
                "must be a ratio of at least 1",
            ),
            ("grade_best = 1", "unknown field `grade_best`"),
        ] {
            let msg = error(&format!("{GOOD}\n[evaluation]\n{section}\n"));
            assert!(msg.contains(needle), "{section}: {msg}");
        }
    }
}
