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

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

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
    /// The performance-evaluation settings (`[evaluation]`); defaults from docs/standards.md §4.
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
    /// The unit money is shown in by the evaluation report: `元` (default) or
    /// `万元` (ten thousand yuan, as finance bureaus usually write budgets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub money_unit: Option<MoneyUnit>,
    /// Names the report shows for codes in the data, the code kept as a
    /// tooltip (`[evaluation.labels.department]`: `transport = "交通运输局"`).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// Readers' names for the codes the finance tables hold: a code without a name
/// is shown as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// `finance.programs.department` codes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub department: BTreeMap<String, String>,
    /// `finance.performance_indicators.level1` codes (`decision`, `process`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub level1: BTreeMap<String, String>,
    /// `finance.performance_indicators.level2` codes (`budget_execution`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub level2: BTreeMap<String, String>,
}

impl Labels {
    pub fn is_empty(&self) -> bool {
        self.department.is_empty() && self.level1.is_empty() && self.level2.is_empty()
    }
}

/// How the evaluation report shows money.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MoneyUnit {
    /// 元, with two decimals.
    #[default]
    #[serde(rename = "元", alias = "yuan")]
    Yuan,
    /// 万元 (10,000 元), with two decimals.
    #[serde(rename = "万元", alias = "wan", alias = "wan_yuan")]
    WanYuan,
}

impl MoneyUnit {
    /// `amount` (in 元) in this unit, with thousands separators and two decimals.
    pub fn format(self, amount: f64) -> String {
        match self {
            MoneyUnit::Yuan => thousands(amount, 2),
            MoneyUnit::WanYuan => thousands(amount / 10_000.0, 2),
        }
    }

    /// The unit's label.
    pub fn label(self) -> &'static str {
        match self {
            MoneyUnit::Yuan => "元 yuan",
            MoneyUnit::WanYuan => "万元 10k yuan",
        }
    }
}

/// `value` with `decimals` decimals and a comma between each group of three
/// integer digits (`1234567.891` → `1,234,567.89`).
pub fn thousands(value: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, value.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, digit) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    match frac {
        "" => format!("{sign}{grouped}"),
        f => format!("{sign}{grouped}.{f}"),
    }
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
    /// The schema an unqualified table name is looked up in (`lineitem` for
    /// `tpch.lineitem`); [`DEFAULT_SCHEMA`] when not set. A session that may
    /// run `SET` statements changes it with
    /// `SET datafusion.catalog.default_schema = 'traffic'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_schema: Option<String>,
}

/// The schema of unqualified names when the catalog does not choose one.
pub const DEFAULT_SCHEMA: &str = "public";

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
    /// The owning department; `unassigned` when not set (shown as such in
    /// `system.datasets`, for the data office to fill in).
    #[serde(default = "unassigned")]
    pub owner: String,
    /// `restricted` when not set: a dataset nobody has classified is closed
    /// to every role that is not granted restricted data (fail closed).
    #[serde(default = "restricted")]
    pub classification: Classification,
    /// Expected update frequency: `static`, `hourly`, `daily`, `weekly`, `monthly`,
    /// `yearly`, or `<n> <unit>` with unit minutes/hours/days; `static` (not
    /// judged for freshness) when not set.
    #[serde(default = "static_frequency")]
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
    /// How long rows are kept (`3 years`, `90 days`), judged on `time_column`:
    /// `citylake retention apply` deletes older rows of a Delta dataset, and
    /// the quality checks report a dataset holding rows past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
}

impl DatasetSpec {
    /// The retention period, if the dataset declares one (a year is 365.25
    /// days); `Err` says why the text is not a period.
    pub fn retention_period(&self) -> Option<std::result::Result<std::time::Duration, String>> {
        let text = self.retention.as_deref()?;
        Some(
            humantime::parse_duration(text)
                .map_err(|e| {
                    format!("`{text}` is not a period such as `3 years` or `90 days`: {e}")
                })
                .and_then(|d| {
                    if d.is_zero() {
                        Err(format!("`{text}` must be longer than zero"))
                    } else {
                        Ok(d)
                    }
                }),
        )
    }

    /// A dataset with every optional field at its default (owner
    /// `unassigned`, classification `restricted`, update frequency `static`).
    pub fn new(name: impl Into<String>, location: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            location: location.into(),
            format: Format::default(),
            owner: unassigned(),
            classification: restricted(),
            update_frequency: static_frequency(),
            description: String::new(),
            sort_order: vec![],
            partitions: vec![],
            columns: vec![],
            primary_key: vec![],
            time_column: None,
            partition_tolerance: None,
            retention: None,
        }
    }
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
    /// A directory of Parquet files (hive partition directories allowed).
    #[default]
    Parquet,
    /// A Delta Lake table: versioned, written in transactions (ingest,
    /// erasure, retention), readable as of a past version.
    Delta,
}

impl Format {
    /// The name the catalog file and `system.datasets` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Delta => "delta",
        }
    }
}

fn unassigned() -> String {
    "unassigned".to_string()
}

fn restricted() -> Classification {
    Classification::Restricted
}

fn static_frequency() -> String {
    "static".to_string()
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

mod parse;
#[cfg(test)]
mod tests;
mod validate;

pub use parse::{parse_local_time, parse_update_frequency, resolve_root};

impl CatalogSpec {
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
