//! Data-quality checks (regulation art. 8: data timely, accurate, true and
//! complete), from what the catalog declares of each dataset:
//!
//! - **rows**: the dataset has rows.
//! - **freshness**: the newest value of its `time_column` (or, without one, the
//!   newest file's modification time) against its `update_frequency`, judged at
//!   the catalog's `[quality] as_of` or now: `pass` within one period, `warn`
//!   within two, `fail` beyond. Static datasets are not judged.
//! - **completeness**: NULLs in each `required` column (any is a failure).
//! - **validity**: values outside a column's `min`/`max`, and event times after
//!   the `as_of` clock.
//! - **uniqueness**: keys (`primary_key`) held by more than one row.
//! - **partition_rows**: rows per partition of the outermost partition column; a
//!   partition below (1 − t) or above (1 + t) times the median is an anomaly
//!   (`[quality] partition_tolerance`, default 0.5).
//! - **retention**: rows whose `time_column` is older than the dataset's
//!   `retention` period before the clock (any is a failure: personal data
//!   must go when its period ends; `citylake retention apply`).
//!
//! The checks read the raw datasets (no policy applies to counts), one aggregate
//! scan per dataset plus one for its key and one for its partitions. They run
//! for `citylake quality` and whenever `system.data_quality` is scanned, which
//! lists, to each principal, the datasets it may see; a filter on `dataset`
//! limits the checks run.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDateTime;
use citylake_catalog::Catalog;
use citylake_catalog::spec::{
    DEFAULT_PARTITION_TOLERANCE, DatasetSpec, parse_local_time, parse_update_frequency,
};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast as cast_array;
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit,
};
use datafusion::catalog::TableProvider;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::functions::datetime::expr_fn::to_unixtime;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::{Expr, ExprFunctionExt, TableProviderFilterPushDown};
use datafusion::prelude::{DataFrame, SessionContext, cast, col, ident, lit};
use futures::TryStreamExt;

use crate::error::{EngineError, Result};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One check of one dataset (a row of `system.data_quality`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    pub dataset: String,
    /// rows, freshness, completeness, validity, uniqueness or partition_rows.
    pub check: &'static str,
    pub column: Option<String>,
    pub partition: Option<String>,
    pub status: Status,
    /// What was measured: hours behind, NULL rate, share out of range,
    /// duplicated keys, rows in the partition.
    pub value: Option<f64>,
    /// What it is held to: the update period in hours, the median rows per partition.
    pub threshold: Option<f64>,
    pub rows_checked: i64,
    pub rows_failing: i64,
    pub detail: String,
}

/// The checks of a run and the clock they were judged at.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Local time (Asia/Shanghai).
    pub as_of: NaiveDateTime,
    pub checks: Vec<Check>,
}

impl Report {
    /// The number of checks with each status: (pass, warn, fail).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |s| self.checks.iter().filter(|c| c.status == s).count();
        (n(Status::Pass), n(Status::Warn), n(Status::Fail))
    }
}

/// Runs the checks over the raw lake.
pub struct Checker {
    catalog: Arc<Catalog>,
    /// A context over the unrestricted catalog.
    ctx: SessionContext,
}

/// Now, as local time in Asia/Shanghai (UTC+8, no daylight saving).
fn local_now() -> NaiveDateTime {
    chrono::Utc::now().naive_utc() + chrono::Duration::hours(8)
}

fn hours(seconds: i64) -> f64 {
    seconds as f64 / 3600.0
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("catalog", &self.catalog.path())
            .finish_non_exhaustive()
    }
}

impl Checker {
    pub fn new(catalog: Arc<Catalog>, ctx: SessionContext) -> Self {
        Self { catalog, ctx }
    }

    /// The clock freshness is judged at: `as_of`, else the catalog's, else now.
    pub fn as_of(&self, as_of: Option<NaiveDateTime>) -> NaiveDateTime {
        as_of
            .or_else(|| {
                let q = self.catalog.spec().quality.as_ref()?;
                parse_local_time(q.as_of.as_deref()?).ok()
            })
            .unwrap_or_else(local_now)
    }

    /// Checks the datasets named (all when `None`; an unknown name is an error).
    pub async fn run(
        &self,
        datasets: Option<&BTreeSet<String>>,
        as_of: Option<NaiveDateTime>,
    ) -> Result<Report> {
        let spec = self.catalog.spec();
        if let Some(names) = datasets {
            for name in names {
                if !spec.datasets.iter().any(|d| &d.name == name) {
                    let known: Vec<_> = spec.datasets.iter().map(|d| d.name.as_str()).collect();
                    return Err(EngineError::Query(
                        datafusion::common::plan_datafusion_err!(
                            "no dataset `{name}` in the catalog; it has {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        let as_of = self.as_of(as_of);
        let mut checks = vec![];
        for ds in &spec.datasets {
            if datasets.is_some_and(|names| !names.contains(&ds.name)) {
                continue;
            }
            checks.extend(self.check_dataset(ds, as_of).await?);
        }
        Ok(Report { as_of, checks })
    }

    /// The single row of an aggregate over `df`, its columns read by alias.
    async fn row(df: DataFrame) -> Result<Row> {
        let batches = df.collect().await?;
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        Row::new(datafusion::arrow::compute::concat_batches(
            &schema, &batches,
        )?)
    }

    async fn check_dataset(&self, ds: &DatasetSpec, as_of: NaiveDateTime) -> Result<Vec<Check>> {
        let table = self
            .ctx
            .table(TableReference::full(
                self.catalog.name(),
                ds.schema_name(),
                ds.table_name(),
            ))
            .await?;
        let required: Vec<&str> = ds
            .columns
            .iter()
            .filter(|c| c.required)
            .map(|c| c.name.as_str())
            .collect();
        let ranged: Vec<_> = ds
            .columns
            .iter()
            .filter(|c| c.min.is_some() || c.max.is_some())
            .collect();

        // one scan: rows, NULLs, out-of-range values, the newest event time;
        // each aggregate is built as an expression and read back by its alias
        let rows = || count(lit(1));
        let mut aggregates = vec![rows().alias("rows")];
        for (i, c) in required.iter().enumerate() {
            aggregates.push(count(ident(*c)).alias(format!("present_{i}")));
        }
        for (i, c) in ranged.iter().enumerate() {
            let v = || cast(ident(&c.name), DataType::Float64);
            let below = c.min.map(|min| v().lt(lit(min)));
            let above = c.max.map(|max| v().gt(lit(max)));
            let bad = match (below, above) {
                (Some(b), Some(a)) => b.or(a),
                (Some(e), None) | (None, Some(e)) => e,
                (None, None) => lit(false),
            };
            aggregates.push(rows().filter(bad).build()?.alias(format!("bad_{i}")));
            aggregates.push(min(v()).alias(format!("min_{i}")));
            aggregates.push(max(v()).alias(format!("max_{i}")));
        }
        if let Some(t) = &ds.time_column {
            let clock = as_of
                .and_utc()
                .timestamp_nanos_opt()
                .ok_or_else(|| EngineError::Config(format!("the clock {as_of} is out of range")))?;
            aggregates.push(to_unixtime(vec![max(ident(t))]).alias("newest"));
            aggregates.push(
                rows()
                    .filter(ident(t).gt(lit(ScalarValue::TimestampNanosecond(Some(clock), None))))
                    .build()?
                    .alias("future"),
            );
        }
        // rows older than the retention period, counted back from the clock
        let retention = match (&ds.time_column, ds.retention_period()) {
            (Some(t), Some(period)) => {
                let period = period.map_err(EngineError::Config)?;
                let cutoff = as_of
                    - chrono::Duration::from_std(period).map_err(|e| {
                        EngineError::Config(format!("retention of `{}`: {e}", ds.name))
                    })?;
                let micros = cutoff.and_utc().timestamp_micros();
                aggregates.push(
                    rows()
                        .filter(
                            ident(t).lt(lit(ScalarValue::TimestampMicrosecond(Some(micros), None))),
                        )
                        .build()?
                        .alias("past_retention"),
                );
                Some((t.clone(), cutoff))
            }
            _ => None,
        };
        let values = Self::row(table.clone().aggregate(vec![], aggregates)?).await?;
        let n = values.int("rows")?;
        let check = |check: &'static str, status: Status, detail: String| Check {
            dataset: ds.name.clone(),
            check,
            column: None,
            partition: None,
            status,
            value: None,
            threshold: None,
            rows_checked: n,
            rows_failing: 0,
            detail,
        };
        let mut out = vec![];
        out.push(Check {
            value: Some(n as f64),
            ..if n == 0 {
                check("rows", Status::Fail, "the dataset has no rows".into())
            } else {
                check("rows", Status::Pass, format!("{n} rows"))
            }
        });
        for (i, c) in required.iter().enumerate() {
            let nulls = n - values.int(&format!("present_{i}"))?;
            let rate = if n == 0 { 0.0 } else { nulls as f64 / n as f64 };
            let (status, detail) = if nulls == 0 {
                (Status::Pass, "no NULLs".to_string())
            } else {
                (
                    Status::Fail,
                    format!("{nulls} of {n} rows have no {c} ({:.4} %)", rate * 100.0),
                )
            };
            out.push(Check {
                column: Some(c.to_string()),
                value: Some(rate),
                threshold: Some(0.0),
                rows_failing: nulls,
                ..check("completeness", status, detail)
            });
        }
        for (i, c) in ranged.iter().enumerate() {
            let bad = values.int(&format!("bad_{i}"))?;
            let (lo, hi) = (
                values.float(&format!("min_{i}"))?,
                values.float(&format!("max_{i}"))?,
            );
            let range = format!(
                "[{}, {}]",
                c.min.map_or("-∞".into(), |v| v.to_string()),
                c.max.map_or("∞".into(), |v| v.to_string())
            );
            let observed = match (lo, hi) {
                (Some(lo), Some(hi)) => format!("observed [{lo}, {hi}]"),
                _ => "no values".into(),
            };
            let status = if bad == 0 { Status::Pass } else { Status::Fail };
            let detail = if bad == 0 {
                format!("valid range {range}; {observed}")
            } else {
                format!("{bad} rows outside the valid range {range}; {observed}")
            };
            out.push(Check {
                column: Some(c.name.clone()),
                value: Some(if n == 0 { 0.0 } else { bad as f64 / n as f64 }),
                rows_failing: bad,
                ..check("validity", status, detail)
            });
        }
        if let Some((t, cutoff)) = retention {
            let past = values.int("past_retention")?;
            let retention = ds.retention.as_deref().unwrap_or_default();
            let (status, detail) = if past == 0 {
                (
                    Status::Pass,
                    format!(
                        "no row older than the retention period ({retention}, before {cutoff})"
                    ),
                )
            } else {
                (
                    Status::Fail,
                    format!(
                        "{past} rows are older than the retention period ({retention}, before \
                         {cutoff}): `citylake retention apply` deletes them"
                    ),
                )
            };
            out.push(Check {
                column: Some(t),
                value: Some(past as f64),
                threshold: Some(0.0),
                rows_failing: past,
                ..check("retention", status, detail)
            });
        }
        let period = parse_update_frequency(&ds.update_frequency)
            .map_err(EngineError::Config)?
            .map(|p| p.as_secs() as i64);
        let newest = match &ds.time_column {
            Some(t) => {
                let latest = values.float("newest")?.map(|s| s.floor() as i64);
                let future = values.int("future")?;
                out.push(Check {
                    column: Some(t.clone()),
                    value: Some(if n == 0 {
                        0.0
                    } else {
                        future as f64 / n as f64
                    }),
                    rows_failing: future,
                    ..if future == 0 {
                        check("validity", Status::Pass, format!("no {t} after {as_of}"))
                    } else {
                        check(
                            "validity",
                            Status::Fail,
                            format!("{future} rows have {t} after the clock {as_of}"),
                        )
                    }
                });
                latest.map(|s| (s, format!("newest {t}")))
            }
            None if period.is_some() => self
                .newest_file(ds)
                .await?
                .map(|s| (s, "newest file modified".to_string())),
            None => None,
        };
        if let Some(period) = period {
            let as_of_secs = as_of.and_utc().timestamp();
            out.push(match newest {
                Some((newest, what)) => {
                    let lag = (as_of_secs - newest).max(0);
                    let status = if lag <= period {
                        Status::Pass
                    } else if lag <= 2 * period {
                        Status::Warn
                    } else {
                        Status::Fail
                    };
                    let when = chrono::DateTime::from_timestamp(newest, 0)
                        .map(|t| t.naive_utc().to_string())
                        .unwrap_or_default();
                    Check {
                        column: ds.time_column.clone(),
                        value: Some(hours(lag)),
                        threshold: Some(hours(period)),
                        ..check(
                            "freshness",
                            status,
                            format!(
                                "{what} {when}: {:.1} h before {as_of}; expected {} ({:.1} h)",
                                hours(lag),
                                ds.update_frequency,
                                hours(period)
                            ),
                        )
                    }
                }
                None => check(
                    "freshness",
                    Status::Fail,
                    format!("no data to date; expected {}", ds.update_frequency),
                ),
            });
        }

        if !ds.primary_key.is_empty() {
            let key: Vec<Expr> = ds.primary_key.iter().map(ident).collect();
            let held = table
                .clone()
                .aggregate(key, vec![rows().alias("k")])?
                .filter(col("k").gt(lit(1i64)))?
                .aggregate(
                    vec![],
                    vec![
                        rows().alias("keys"),
                        sum(col("k") - lit(1i64)).alias("extra"),
                    ],
                )?;
            let values = Self::row(held).await?;
            let (keys, extra) = (values.int("keys")?, values.int("extra")?);
            let name = ds.primary_key.join(", ");
            out.push(Check {
                column: Some(name.clone()),
                value: Some(keys as f64),
                threshold: Some(0.0),
                rows_failing: extra,
                ..if keys == 0 {
                    check("uniqueness", Status::Pass, format!("({name}) is unique"))
                } else {
                    check(
                        "uniqueness",
                        Status::Fail,
                        format!("{keys} values of ({name}) are held by more than one row ({extra} extra rows)"),
                    )
                }
            });
        }

        if let Some(part) = ds.partitions.first() {
            let batches = table
                .aggregate(
                    vec![cast(ident(&part.name), DataType::Utf8).alias("part")],
                    vec![rows().alias("n")],
                )?
                .sort(vec![col("part").sort(true, false)])?
                .collect()
                .await?;
            let mut counts: Vec<(String, i64)> = vec![];
            for b in &batches {
                let names = string_column(b, "part")?;
                let rows = int_column(b, "n")?;
                for i in 0..b.num_rows() {
                    counts.push((names.value(i).to_string(), rows.value(i)));
                }
            }
            let tolerance = ds
                .partition_tolerance
                .or_else(|| self.catalog.spec().quality.as_ref()?.partition_tolerance)
                .unwrap_or(DEFAULT_PARTITION_TOLERANCE);
            let median = median(counts.iter().map(|(_, n)| *n).collect());
            let (low, high) = (median * (1.0 - tolerance), median * (1.0 + tolerance));
            for (name, rows) in counts {
                let r = rows as f64;
                let ok = r >= low && r <= high;
                let detail = format!(
                    "{rows} rows; median {median} per partition, expected {:.0}–{:.0}",
                    low.max(0.0),
                    high
                );
                out.push(Check {
                    column: Some(part.name.clone()),
                    partition: Some(format!("{}={name}", part.name)),
                    value: Some(r),
                    threshold: Some(median),
                    rows_checked: rows,
                    rows_failing: if ok { 0 } else { rows },
                    ..check(
                        "partition_rows",
                        if ok { Status::Pass } else { Status::Fail },
                        if ok {
                            detail
                        } else {
                            format!("anomaly: {detail}")
                        },
                    )
                });
            }
        }
        Ok(out)
    }

    /// The newest modification time of the dataset's files, seconds since the
    /// epoch in local time.
    async fn newest_file(&self, ds: &DatasetSpec) -> Result<Option<i64>> {
        let url =
            datafusion::datasource::listing::ListingTableUrl::parse(self.catalog.dataset_url(ds))?;
        let store = self.ctx.runtime_env().object_store(&url)?;
        let files: Vec<_> = store
            .list(Some(url.prefix()))
            .try_collect()
            .await
            .map_err(|e| EngineError::Storage(crate::storage::describe_store_error(&e)))?;
        Ok(files
            .iter()
            .map(|m| (m.last_modified.naive_utc() + chrono::Duration::hours(8)).and_utc())
            .max()
            .map(|t| t.timestamp()))
    }
}

fn median(mut v: Vec<i64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m] as f64
    } else {
        (v[m - 1] + v[m]) as f64 / 2.0
    }
}

/// A column of a quality query's result by its alias.
fn column<'a>(batch: &'a RecordBatch, alias: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(alias)
        .ok_or_else(|| EngineError::Config(format!("a quality query has no column {alias}")))
}

fn string_column(batch: &RecordBatch, alias: &str) -> Result<StringArray> {
    Ok(cast_array(column(batch, alias)?, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

fn int_column(batch: &RecordBatch, alias: &str) -> Result<Int64Array> {
    Ok(cast_array(column(batch, alias)?, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// The one row of an aggregate, its columns read by alias.
struct Row(RecordBatch);

impl Row {
    fn new(batch: RecordBatch) -> Result<Self> {
        if batch.num_rows() != 1 {
            return Err(EngineError::Config(format!(
                "a quality query returned {} rows instead of one",
                batch.num_rows()
            )));
        }
        Ok(Self(batch))
    }

    /// An integer (NULL → 0).
    fn int(&self, alias: &str) -> Result<i64> {
        let a = int_column(&self.0, alias)?;
        Ok(if a.is_null(0) { 0 } else { a.value(0) })
    }

    /// A float.
    fn float(&self, alias: &str) -> Result<Option<f64>> {
        let a = cast_array(column(&self.0, alias)?, &DataType::Float64)?;
        let a = a.as_primitive::<Float64Type>();
        Ok((!a.is_null(0)).then(|| a.value(0)))
    }
}

/// The schema of `system.data_quality`.
pub fn schema() -> SchemaRef {
    let text = |n: &str, null| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        text("dataset", false),
        text("check", false),
        text("column", true),
        text("partition", true),
        text("status", false),
        Field::new("value", DataType::Float64, true),
        Field::new("threshold", DataType::Float64, true),
        Field::new("rows_checked", DataType::Int64, false),
        Field::new("rows_failing", DataType::Int64, false),
        text("detail", false),
        Field::new(
            "as_of",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]))
}

/// A report as one record batch of [`schema`].
pub fn to_batch(report: &Report) -> Result<RecordBatch> {
    let c = &report.checks;
    let text = |f: &dyn Fn(&Check) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(c.iter().map(f)))
    };
    let as_of = report.as_of.and_utc().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        text(&|c| Some(&c.dataset)),
        text(&|c| Some(c.check)),
        text(&|c| c.column.as_deref()),
        text(&|c| c.partition.as_deref()),
        text(&|c| Some(c.status.as_str())),
        Arc::new(Float64Array::from_iter(c.iter().map(|c| c.value))),
        Arc::new(Float64Array::from_iter(c.iter().map(|c| c.threshold))),
        Arc::new(Int64Array::from_iter_values(
            c.iter().map(|c| c.rows_checked),
        )),
        Arc::new(Int64Array::from_iter_values(
            c.iter().map(|c| c.rows_failing),
        )),
        text(&|c| Some(&c.detail)),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            c.iter().map(|_| as_of),
        )),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// `system.data_quality`: the checks, run when the table is scanned.
#[derive(Debug)]
pub struct QualityTable {
    checker: Arc<Checker>,
}

impl QualityTable {
    pub fn new(checker: Arc<Checker>) -> Self {
        Self { checker }
    }
}

/// The datasets a filter `dataset = '…'` or `dataset IN ('…', …)` allows.
fn datasets_of_filter(filter: &Expr) -> Option<BTreeSet<String>> {
    let is_dataset = |e: &Expr| matches!(e, Expr::Column(c) if c.name == "dataset");
    let literal = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _) => Some(s.clone()),
        _ => None,
    };
    match filter {
        Expr::BinaryExpr(b) if b.op == datafusion::logical_expr::Operator::Eq => {
            if is_dataset(&b.left) {
                literal(&b.right).map(|s| BTreeSet::from([s]))
            } else if is_dataset(&b.right) {
                literal(&b.left).map(|s| BTreeSet::from([s]))
            } else {
                None
            }
        }
        Expr::InList(l) if !l.negated && is_dataset(&l.expr) => {
            l.list.iter().map(literal).collect()
        }
        _ => None,
    }
}

#[async_trait::async_trait]
impl TableProvider for QualityTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // the filter is still applied above; here it only limits the checks run
        Ok(filters
            .iter()
            .map(|f| match datasets_of_filter(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let mut wanted: Option<BTreeSet<String>> = None;
        for set in filters.iter().filter_map(datasets_of_filter) {
            wanted = Some(match wanted {
                None => set,
                Some(w) => w.intersection(&set).cloned().collect(),
            });
        }
        // names not in the catalog simply match nothing here
        if let Some(w) = &mut wanted {
            w.retain(|name| {
                self.checker
                    .catalog
                    .spec()
                    .datasets
                    .iter()
                    .any(|d| &d.name == name)
            });
        }
        Ok(Arc::new(QualityExec::new(
            self.checker.clone(),
            wanted,
            projection.cloned(),
        )?))
    }
}

/// The scan of `system.data_quality`: the checks run when it is executed,
/// not while the query is planned, so they run where the query's work runs
/// (its lane's threads, [`crate::lanes`]) and its timeout and cancel stop
/// them. They read whole datasets, so the plan is weighed as a long scan
/// ([`QualityExec::WEIGHT`]: never a light query).
#[derive(Debug)]
pub struct QualityExec {
    checker: Arc<Checker>,
    /// The datasets to check (a filter on `dataset`), or all.
    wanted: Option<BTreeSet<String>>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<datafusion::physical_plan::PlanProperties>,
}

impl QualityExec {
    /// What the plan weighs for admission and routing, in bytes of files to
    /// scan ([`crate::remote::scan_bytes`], which adds saturating): no
    /// threshold (`--light-query-scan`, a `u64`) is above it, so never light.
    pub const WEIGHT: u64 = u64::MAX;

    fn new(
        checker: Arc<Checker>,
        wanted: Option<BTreeSet<String>>,
        projection: Option<Vec<usize>>,
    ) -> datafusion::error::Result<Self> {
        use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
        let schema = match &projection {
            Some(p) => Arc::new(schema().project(p)?),
            None => schema(),
        };
        let properties = datafusion::physical_plan::PlanProperties::new(
            datafusion::physical_expr::EquivalenceProperties::new(schema.clone()),
            datafusion::physical_plan::Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            checker,
            wanted,
            projection,
            schema,
            properties: Arc::new(properties),
        })
    }
}

impl datafusion::physical_plan::DisplayAs for QualityExec {
    fn fmt_as(
        &self,
        _: datafusion::physical_plan::DisplayFormatType,
        f: &mut std::fmt::Formatter,
    ) -> std::fmt::Result {
        match &self.wanted {
            Some(w) => write!(f, "QualityExec: datasets={}", w.len()),
            None => write!(f, "QualityExec: datasets=all"),
        }
    }
}

impl datafusion::physical_plan::ExecutionPlan for QualityExec {
    fn name(&self) -> &str {
        "QualityExec"
    }

    fn properties(&self) -> &Arc<datafusion::physical_plan::PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> datafusion::error::Result<
            datafusion::common::tree_node::TreeNodeRecursion,
        >,
    ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        if !children.is_empty() {
            return datafusion::common::internal_err!("QualityExec has no children");
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<datafusion::execution::TaskContext>,
    ) -> datafusion::error::Result<datafusion::execution::SendableRecordBatchStream> {
        if partition != 0 {
            return datafusion::common::internal_err!("QualityExec has one partition");
        }
        let (checker, wanted, projection) = (
            self.checker.clone(),
            self.wanted.clone(),
            self.projection.clone(),
        );
        let external = |e: EngineError| datafusion::error::DataFusionError::External(Box::new(e));
        let checks = async move {
            let report = checker.run(wanted.as_ref(), None).await.map_err(external)?;
            let batch = to_batch(&report).map_err(external)?;
            Ok(match &projection {
                Some(p) => batch.project(p)?,
                None => batch,
            })
        };
        Ok(Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(checks),
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3, 1, 2]), 2.0);
        assert_eq!(median(vec![4, 1, 3, 2]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn dataset_filters_limit_the_checks() {
        use datafusion::prelude::{col, lit};
        let eq = col("dataset").eq(lit("hotline.cases"));
        assert_eq!(
            datasets_of_filter(&eq),
            Some(BTreeSet::from(["hotline.cases".to_string()]))
        );
        let list = col("dataset").in_list(vec![lit("a.b"), lit("c.d")], false);
        assert_eq!(datasets_of_filter(&list).map(|s| s.len()), Some(2));
        assert_eq!(
            datasets_of_filter(&col("dataset").in_list(vec![lit("a.b")], true)),
            None
        );
        assert_eq!(datasets_of_filter(&col("status").eq(lit("fail"))), None);
    }
}
