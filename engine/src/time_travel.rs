//! Time travel: `as_of('finance.expenditures', 12)` and
//! `as_of('finance.expenditures', TIMESTAMP '2026-03-01 00:00:00')` read a
//! Delta dataset as it was at a version, or at the latest version committed
//! at or before a time (UTC). DataFusion's SQL has no `VERSION AS OF` clause,
//! so this is a table function.
//!
//! It is governed exactly like the current table, by construction: the
//! function looks the name up among the providers the policy built for this
//! session ([`crate::governance::PrincipalCatalog`]) — a dataset the principal
//! may not list is "not found", one it may not read is refused — and swaps
//! the version into *that* provider: a [`GovernedTable`]'s plan keeps its row
//! filter, masks and barrier, only its scan reads the older snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use citylake_catalog::delta::{AsOf, DeltaDataset};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::{Expr, LogicalPlan};

use crate::governance::{AccessDenied, GovernedTable};

/// Name of the function.
pub const AS_OF_FUNCTION: &str = "as_of";

/// `as_of(dataset, version | timestamp)` for one session.
#[derive(Debug)]
pub struct AsOfFunction {
    /// What this principal reads of each readable dataset (`schema.table`).
    pub(crate) readable: BTreeMap<String, Arc<dyn TableProvider>>,
    /// Listed but not readable.
    pub(crate) denied: BTreeSet<String>,
    /// Not even listed (refused as missing; the audit trail says why).
    pub(crate) hidden: BTreeSet<String>,
    pub(crate) user: String,
    pub(crate) catalog: String,
    pub(crate) default_schema: String,
}

impl TableFunctionImpl for AsOfFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let usage = || {
            plan_err!(
                "{AS_OF_FUNCTION}(dataset, version) or {AS_OF_FUNCTION}(dataset, TIMESTAMP '…'): \
                 the dataset's name as text, a version number or a time (UTC)"
            )
        };
        let [name, when] = args.exprs() else {
            return usage();
        };
        let Some(ScalarValue::Utf8(Some(name)) | ScalarValue::Utf8View(Some(name))) = literal(name)
        else {
            return usage();
        };
        let as_of = match literal(when) {
            Some(v @ (ScalarValue::Int64(_) | ScalarValue::Int32(_))) => {
                match v.cast_to(&datafusion::arrow::datatypes::DataType::Int64)? {
                    ScalarValue::Int64(Some(v)) if v >= 0 => AsOf::Version(v as u64),
                    _ => return plan_err!("a Delta version is a number from 0"),
                }
            }
            Some(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text))) => {
                AsOf::Timestamp(parse_time(&text)?)
            }
            Some(ScalarValue::TimestampMicrosecond(Some(us), _)) => {
                AsOf::Timestamp(us.div_euclid(1000))
            }
            Some(ScalarValue::TimestampNanosecond(Some(ns), _)) => {
                AsOf::Timestamp(ns.div_euclid(1_000_000))
            }
            Some(ScalarValue::TimestampMillisecond(Some(ms), _)) => AsOf::Timestamp(ms),
            Some(ScalarValue::TimestampSecond(Some(s), _)) => AsOf::Timestamp(s * 1000),
            _ => return usage(),
        };
        let dataset = self.resolve(&name);
        let Some(provider) = self.readable.get(&dataset) else {
            if self.denied.contains(&dataset) {
                return Err(DataFusionError::External(Box::new(AccessDenied {
                    dataset,
                    user: self.user.clone(),
                })));
            }
            // word for word the error of a missing table in FROM (NOT_FOUND):
            // no oracle for the datasets this principal may not list
            // (the session adds the suggestion a name in FROM gets)
            return Err(DataFusionError::External(Box::new(
                crate::error::MissingTable {
                    name: format!("{}.{dataset}", self.catalog),
                    hidden: self.hidden.contains(&dataset),
                },
            )));
        };
        at(provider, as_of, &dataset)
    }
}

impl AsOfFunction {
    /// `schema.table` of a name as written (`table`, `schema.table`, `catalog.schema.table`).
    fn resolve(&self, name: &str) -> String {
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            [table] => format!("{}.{table}", self.default_schema),
            [schema, table] => format!("{schema}.{table}"),
            [catalog, schema, table] if *catalog == self.catalog => format!("{schema}.{table}"),
            _ => format!("{name}\u{0}"),
        }
    }
}

/// A constant argument (a literal, possibly under casts the planner added).
fn literal(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::TryCast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        _ => None,
    }
}

/// Milliseconds since the epoch of `2026-03-01 00:00:00` (UTC; `T` and a
/// zone offset allowed).
fn parse_time(text: &str) -> Result<i64> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis());
    }
    plan_err!("`{text}` is not a time (YYYY-MM-DD HH:MM:SS, UTC)")
}

/// `provider` (what the principal reads of `dataset`) reading the Delta
/// snapshot `as_of` instead of the latest.
fn at(
    provider: &Arc<dyn TableProvider>,
    as_of: AsOf,
    dataset: &str,
) -> Result<Arc<dyn TableProvider>> {
    let not_delta = || {
        plan_err!(
            "`{dataset}` is not a Delta dataset: only `format = \"delta\"` datasets have versions"
        )
    };
    if let Some(delta) = provider.downcast_ref::<DeltaDataset>() {
        return Ok(Arc::new(delta.at(as_of)));
    }
    let Some(governed) = provider.downcast_ref::<GovernedTable>() else {
        return not_delta();
    };
    let mut found = false;
    let plan = governed
        .plan()
        .clone()
        .transform_up(|node| {
            let LogicalPlan::TableScan(mut scan) = node else {
                return Ok(Transformed::no(node));
            };
            let source = source_as_provider(&scan.source)?;
            let Some(delta) = source.downcast_ref::<DeltaDataset>() else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            found = true;
            scan.source = provider_as_source(Arc::new(delta.at(as_of)));
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })?
        .data;
    if !found {
        return not_delta();
    }
    Ok(Arc::new(governed.with_plan(plan)))
}

/// The dataset (`schema.table`) a provider reads, where it is one of the
/// lake's: a Delta dataset (current or past) or a governed table. For the
/// audit record of a query that reads it through a table function.
pub fn dataset_of(provider: &dyn TableProvider) -> Option<String> {
    if let Some(delta) = provider.downcast_ref::<DeltaDataset>() {
        return Some(delta.name().to_string());
    }
    let governed = provider.downcast_ref::<GovernedTable>()?;
    let name = governed.name();
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        [_, schema, table] => Some(format!("{schema}.{table}")),
        _ => None,
    }
}

/// `entries` with each Delta dataset `versions` names read at that version,
/// and each view reading one planned over it.
pub(crate) fn pinned_entries(
    entries: &[crate::session::Entry],
    versions: &BTreeMap<String, u64>,
) -> crate::Result<Vec<crate::session::Entry>> {
    for name in versions.keys() {
        let delta = entries
            .iter()
            .find(|e| &e.name == name)
            .is_some_and(|e| e.provider.downcast_ref::<DeltaDataset>().is_some());
        if !delta {
            return Err(crate::EngineError::Rejected(format!(
                "`{name}` is not a Delta dataset of the catalog: only those have versions"
            )));
        }
    }
    let pin = |delta: &DeltaDataset| {
        versions
            .get(delta.name())
            .map(|v| Arc::new(delta.at(AsOf::Version(*v))) as Arc<dyn TableProvider>)
    };
    entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(delta) = e.provider.downcast_ref::<DeltaDataset>() {
                if let Some(p) = pin(delta) {
                    e.provider = p;
                }
            } else if let Some(plan) = e.provider.get_logical_plan() {
                // a view: its scans of pinned datasets swapped
                let definition = e.provider.get_table_definition().map(str::to_string);
                let plan = plan
                    .into_owned()
                    .transform_up_with_subqueries(|node| {
                        let LogicalPlan::TableScan(mut scan) = node else {
                            return Ok(Transformed::no(node));
                        };
                        let source = source_as_provider(&scan.source)?;
                        match source.downcast_ref::<DeltaDataset>().and_then(pin) {
                            Some(p) => {
                                scan.source = provider_as_source(p);
                                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
                            }
                            None => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
                        }
                    })?
                    .data;
                e.provider = Arc::new(datafusion::catalog::view::ViewTable::new(plan, definition));
            }
            Ok(e)
        })
        .collect()
}

impl crate::session::Engine {
    /// The version of each Delta dataset of the catalog as of `as_of` (the
    /// latest for [`AsOf::Latest`]): what a report reads and is stamped with.
    pub async fn delta_versions(&self, as_of: AsOf) -> crate::Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for e in self.entries() {
            if let Some(delta) = e.provider.downcast_ref::<DeltaDataset>() {
                out.insert(e.name.clone(), delta.at(as_of).resolve_version().await?);
            }
        }
        Ok(out)
    }
}
