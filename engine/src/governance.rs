//! Enforcement of the access policy, in one place: the catalog a session sees.
//!
//! For each dataset and view the principal's [`Access`](crate::policy::Access) decides:
//! - not visible: not registered at all (absent from GetTables,
//!   information_schema and `system.datasets`), and refused by name in queries;
//! - visible but not readable (an auditor): listed, refused in queries by
//!   name, and registered as a [`DeniedTable`] whose scan refuses too — so a
//!   path that escapes the statement's name check still reads nothing;
//! - readable with masked columns or a row filter: registered as a
//!   [`GovernedTable`] — `SELECT mask(c)… FROM dataset WHERE filter` over the
//!   real provider behind a security barrier the optimizer cannot cross, so
//!   whatever the query does with a masked column (join, filter, aggregate,
//!   cast, function, subquery, CTE, view, EXPLAIN, prepared statement) it sees
//!   only the masked value, the row filter applies before any expression of the
//!   user's that is not leak-proof, and the plan shows nothing beneath it;
//! - readable in full: the provider itself (no cost).
//!
//! The catalog's views are planned again for a restricted principal, over
//! its governed tables, so a view never reads around the policy.

use std::sync::Arc;

use citylake_catalog::PiiTag;
use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, Result as DfResult, TableReference};
use datafusion::datasource::{TableType, provider_as_source};
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, TableProviderFilterPushDown,
    Volatility, create_udf,
};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::prelude::{cast as cast_expr, col, lit};
use futures::StreamExt;

/// A dataset the principal may list but not read: its schema (for metadata
/// listings) and a scan that refuses with [`AccessDenied`]. Nothing else of the
/// real provider (statistics, files, constraints) is reachable through it.
#[derive(Debug)]
pub struct DeniedTable {
    schema: SchemaRef,
    table_type: TableType,
    denied: AccessDenied,
}

impl DeniedTable {
    /// Stands in for `inner` (the dataset `dataset`) for `user`.
    pub fn new(inner: &dyn TableProvider, dataset: &str, user: &str) -> Self {
        Self {
            schema: inner.schema(),
            table_type: inner.table_type(),
            denied: AccessDenied {
                dataset: dataset.to_string(),
                user: user.to_string(),
            },
        }
    }
}

/// A read of a dataset the policy does not let the principal read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("permission denied: user `{user}` may not read `{dataset}`")]
pub struct AccessDenied {
    pub dataset: String,
    pub user: String,
}

#[async_trait::async_trait]
impl TableProvider for DeniedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.table_type
    }

    async fn scan(
        &self,
        _state: &dyn CatalogSession,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(datafusion::error::DataFusionError::External(Box::new(
            self.denied.clone(),
        )))
    }
}

/// A principal's catalog as the policy decides it (see the module docs): the
/// datasets and views it may list, each as it may read it, and the system
/// tables listing only those. Returns the catalog and what the session needs
/// to check statements and fill in audit records.
pub(crate) fn principal_catalog(
    entries: &[crate::session::Entry],
    system_tables: &[(String, Arc<dyn TableProvider>)],
    policy: &crate::policy::Policy,
    principal: &crate::principal::Principal,
    state: &SessionState,
    catalog_name: &str,
    row_filters: &RowFilters,
) -> PrincipalCatalog {
    use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
    let catalog = Arc::new(MemoryCatalogProvider::new());
    let schema = |name: &str| -> Arc<dyn datafusion::catalog::SchemaProvider> {
        if let Some(s) = catalog.schema(name) {
            return s;
        }
        let s: Arc<dyn datafusion::catalog::SchemaProvider> = Arc::new(MemorySchemaProvider::new());
        catalog
            .register_schema(name, s.clone())
            .expect("memory catalog accepts schemas");
        s
    };
    // listed but not readable: refused by name (PERMISSION_DENIED)
    let mut denied = std::collections::BTreeSet::new();
    // not even listed: not registered, so a query naming one fails exactly as
    // for a name that does not exist (no oracle for hidden names)
    let mut hidden = std::collections::BTreeSet::new();
    let mut in_full = std::collections::BTreeSet::new();
    let mut visible = vec![];
    // per dataset, the columns masked for this principal (for the audit records)
    let mut masked_columns = std::collections::BTreeMap::new();
    // what this principal reads of each readable dataset and view (views read these)
    let mut readable: std::collections::BTreeMap<String, Arc<dyn TableProvider>> =
        Default::default();
    for e in entries {
        let mut access = policy.access(principal, &e.facts());
        // a view reading a masked or filtered input is planned again over
        // what this principal reads of it (the masks and filters apply
        // inside the view); one reading an input it may not read is refused
        let mut governed_view = false;
        if let Some(reads) = &e.reads
            && !reads.iter().all(|r| in_full.contains(r))
        {
            if reads.iter().all(|r| readable.contains_key(r)) {
                governed_view = access.readable;
            } else {
                access.readable = false;
                access.visible &= reads.iter().all(|r| !hidden.contains(r));
            }
        }
        if !access.visible {
            hidden.insert(e.name.clone());
            continue;
        }
        visible.push(e.name.clone());
        let provider: Arc<dyn TableProvider> = if !access.readable {
            // listed (an auditor's metadata), refused in queries: by name,
            // and by a provider that refuses to scan
            denied.insert(e.name.clone());
            Arc::new(DeniedTable::new(
                e.provider.as_ref(),
                &e.name,
                &principal.user,
            ))
        } else if governed_view {
            match view_over(e.provider.as_ref(), &readable) {
                Ok(t) => t,
                Err(err) => {
                    tracing::error!(view = %e.name, error = %err, "cannot plan the view under the policy; refusing it");
                    hidden.insert(e.name.clone());
                    visible.pop();
                    continue;
                }
            }
        } else {
            let masked: Vec<_> = e
                .pii
                .iter()
                .filter(|(_, tag)| !access.sees(*tag))
                .cloned()
                .collect();
            if !masked.is_empty() {
                masked_columns.insert(
                    e.name.clone(),
                    masked
                        .iter()
                        .map(|(c, _)| format!("{}.{c}", e.name))
                        .collect::<Vec<_>>(),
                );
            }
            if masked.is_empty() && access.row_filter.is_none() {
                in_full.insert(e.name.clone());
                e.provider.clone()
            } else {
                let name = TableReference::full(catalog_name, e.schema.as_str(), e.table.as_str());
                let governed = access
                    .row_filter
                    .as_deref()
                    .map(|predicates| {
                        row_filters.expr(
                            state,
                            &e.name,
                            &e.provider.schema(),
                            predicates,
                            principal,
                        )
                    })
                    .transpose()
                    .and_then(|filter| governed_table(name, e.provider.clone(), filter, &masked));
                match governed {
                    Ok(t) => t,
                    Err(err) => {
                        tracing::error!(dataset = %e.name, error = %err, "cannot apply the policy; refusing the dataset");
                        hidden.insert(e.name.clone());
                        visible.pop();
                        continue;
                    }
                }
            }
        };
        if access.readable {
            readable.insert(e.name.clone(), provider.clone());
        }
        schema(&e.schema)
            .register_table(e.table.clone(), provider)
            .expect("memory schema accepts tables");
    }
    // the catalog's own tables list only what this principal may see
    let system = schema(citylake_catalog::SYSTEM_SCHEMA);
    // an expression built here, not SQL text: `column IN ('name', …)`
    let listed_in = |column: Expr, names: &mut dyn Iterator<Item = &String>| {
        let names: Vec<_> = names.map(|n| lit(n.as_str())).collect();
        if names.is_empty() {
            lit(false)
        } else {
            column.in_list(names, false)
        }
    };
    let everything = denied.is_empty() && hidden.is_empty() && in_full.len() == entries.len();
    for (name, table) in system_tables {
        let table = if everything {
            table.clone()
        } else {
            use datafusion::prelude::{col, lit};
            let predicate = match name.as_str() {
                "datasets" => listed_in(col("name"), &mut visible.iter()),
                // a dataset's quality checks (row counts, duplicates, partitions,
                // freshness) describe all of its rows: shown only to those who
                // read it in full
                "data_quality" => listed_in(col("dataset"), &mut in_full.iter()),
                _ => listed_in(
                    datafusion::functions::string::expr_fn::concat(vec![
                        col("schema_name"),
                        lit("."),
                        col("table_name"),
                    ]),
                    &mut visible.iter(),
                ),
            };
            let reference =
                TableReference::full(catalog_name, citylake_catalog::SYSTEM_SCHEMA, name.as_str());
            governed_table(reference, table.clone(), Some(predicate), &[])
                .expect("the system tables' filter plans")
        };
        system
            .register_table(name.clone(), table)
            .expect("memory schema accepts tables");
    }
    PrincipalCatalog {
        catalog,
        denied,
        hidden,
        masked_columns,
        readable,
    }
}

/// What [`principal_catalog`] built.
pub(crate) struct PrincipalCatalog {
    pub(crate) catalog: Arc<datafusion::catalog::MemoryCatalogProvider>,
    /// Listed but not readable: refused by name (PERMISSION_DENIED).
    pub(crate) denied: std::collections::BTreeSet<String>,
    /// Not even listed: absent from the catalog.
    pub(crate) hidden: std::collections::BTreeSet<String>,
    /// Per dataset, the columns masked for this principal.
    pub(crate) masked_columns: std::collections::BTreeMap<String, Vec<String>>,
    /// What this principal reads of each readable dataset and view (the
    /// providers registered in `catalog`), by `schema.table`.
    pub(crate) readable: std::collections::BTreeMap<String, Arc<dyn TableProvider>>,
}

/// A catalog view planned again over what a principal reads of its inputs:
/// the view's plan with every table it scans replaced by the principal's
/// provider of that table (a [`GovernedTable`] with its masks and row filter,
/// or the dataset itself where it is read in full). `readable` maps
/// `schema.table` to those providers; a table missing from it is an error.
pub fn view_over(
    view: &dyn TableProvider,
    readable: &std::collections::BTreeMap<String, Arc<dyn TableProvider>>,
) -> DfResult<Arc<dyn TableProvider>> {
    use datafusion::common::tree_node::Transformed;
    let plan = view
        .get_logical_plan()
        .ok_or_else(|| datafusion::error::DataFusionError::Plan("not a view".into()))?
        .into_owned();
    let plan = plan
        .transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(mut scan) = node else {
                return Ok(Transformed::no(node));
            };
            let r = &scan.table_name;
            let name = format!("{}.{}", r.schema().unwrap_or_default(), r.table());
            let provider = readable.get(&name).ok_or_else(|| {
                datafusion::common::plan_datafusion_err!(
                    "the view reads `{name}`, which this principal may not read"
                )
            })?;
            if provider.schema() != scan.source.schema() {
                return datafusion::common::plan_err!(
                    "`{name}` as this principal reads it has another schema"
                );
            }
            scan.source = provider_as_source(provider.clone());
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })?
        .data;
    Ok(Arc::new(datafusion::catalog::view::ViewTable::new(
        plan,
        view.get_table_definition().map(str::to_string),
    )))
}

/// Name of the masking function (registered in every session).
pub const MASK_FUNCTION: &str = "citylake_mask";

/// The masked form of one value.
pub fn mask_value(value: &str, tag: PiiTag) -> Option<String> {
    let chars: Vec<char> = value.chars().collect();
    let keep = |head: usize, stars: &str, tail: usize| -> String {
        if chars.len() < head + tail + 1 {
            return stars.to_string();
        }
        let h: String = chars[..head].iter().collect();
        let t: String = chars[chars.len() - tail..].iter().collect();
        format!("{h}{stars}{t}")
    };
    match tag {
        PiiTag::Name => Some(match chars.first() {
            Some(c) => format!("{c}*"),
            None => String::new(),
        }),
        PiiTag::Phone => Some(keep(3, "****", 4)),
        PiiTag::IdNumber => Some(keep(6, "********", 4)),
        PiiTag::Address => Some(keep(6, "***", 0)),
        PiiTag::Plate => Some(keep(2, "***", 0)),
        PiiTag::Email => Some(match value.split_once('@') {
            Some((user, domain)) => {
                let first: String = user.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".to_string(),
        }),
        PiiTag::Location | PiiTag::TradeSecret => None,
    }
}

/// `citylake_mask(text, 'tag')`: the masked text (NULL for tags shown as NULL).
/// One instance, shared by every session and governed plan.
pub fn mask_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| Arc::new(build_mask_udf())).clone()
}

fn build_mask_udf() -> ScalarUDF {
    create_udf(
        MASK_FUNCTION,
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let text = cast(&arrays[0], &DataType::Utf8)?;
            let text = text
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8");
            let tags = cast(&arrays[1], &DataType::Utf8)?;
            let tags = tags
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8");
            let out: StringArray = (0..text.len())
                .map(|i| {
                    if text.is_null(i) {
                        return None;
                    }
                    let tag = PiiTag::parse(tags.value(i)).unwrap_or(PiiTag::TradeSecret);
                    mask_value(text.value(i), tag)
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

/// The masking expression for a column of `data_type` with `tag`: text is
/// masked and cast back to its type; other types (a coordinate) become NULL.
fn mask_expr(column: &str, tag: PiiTag, data_type: &DataType) -> Expr {
    let masked = match data_type {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => cast_expr(
            mask_udf().call(vec![col(column), lit(tag.as_str())]),
            data_type.clone(),
        ),
        other => cast_expr(lit(datafusion::common::ScalarValue::Null), other.clone()),
    };
    masked.alias(column)
}

/// A policy's row-filter predicates, each parsed once per dataset with its
/// `${user.…}` references as placeholders; a principal's values go into the
/// parsed expression as literals — never into SQL text.
#[derive(Debug, Default)]
pub struct RowFilters {
    parsed: parking_lot::Mutex<std::collections::HashMap<(String, String), Expr>>,
}

impl RowFilters {
    /// The row filter of `dataset` (its `schema`) for `principal`: the
    /// `predicates` (as [`crate::policy::Access::row_filter`] has them) ORed.
    pub fn expr(
        &self,
        state: &SessionState,
        dataset: &str,
        schema: &SchemaRef,
        predicates: &[String],
        principal: &crate::principal::Principal,
    ) -> DfResult<Expr> {
        let mut any = vec![];
        for predicate in predicates {
            let parsed = self.parsed(state, dataset, schema, predicate)?;
            any.push(bind_user(parsed, principal)?);
        }
        Ok(datafusion::logical_expr::utils::disjunction(any).unwrap_or(lit(false)))
    }

    fn parsed(
        &self,
        state: &SessionState,
        dataset: &str,
        schema: &SchemaRef,
        predicate: &str,
    ) -> DfResult<Expr> {
        let key = (dataset.to_string(), predicate.to_string());
        if let Some(expr) = self.parsed.lock().get(&key) {
            return Ok(expr.clone());
        }
        let sql = crate::policy::with_placeholders(predicate)
            .map_err(datafusion::error::DataFusionError::Plan)?;
        let df_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone())?;
        let expr = state.create_logical_expr(&sql, &df_schema)?;
        self.parsed.lock().insert(key, expr.clone());
        Ok(expr)
    }
}

/// `expr` with its `$user_<x>` placeholders replaced by `principal`'s `<x>`
/// as a text literal (NULL when it has none: the filter keeps no row).
fn bind_user(expr: Expr, principal: &crate::principal::Principal) -> DfResult<Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    expr.transform(|e| match &e {
        Expr::Placeholder(p) => match p.id.strip_prefix(crate::policy::USER_PLACEHOLDER) {
            Some(attr) => Ok(Transformed::yes(lit(
                datafusion::common::ScalarValue::Utf8(crate::policy::attribute(principal, attr)),
            ))),
            None => datafusion::common::plan_err!(
                "row filter placeholder {} is not a ${{user.…}} reference",
                p.id
            ),
        },
        _ => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}

/// The governed form of a table: `provider`'s rows where `row_filter` holds
/// (`None`: all), with the `masked` columns masked, behind a security barrier
/// (see [`GovernedTable`]).
pub fn governed_table(
    name: TableReference,
    provider: Arc<dyn TableProvider>,
    row_filter: Option<Expr>,
    masked: &[(String, PiiTag)],
) -> DfResult<Arc<dyn TableProvider>> {
    let schema = provider.schema();
    let mut plan = LogicalPlanBuilder::scan(name.clone(), provider_as_source(provider), None)?;
    if let Some(predicate) = row_filter {
        plan = plan.filter(predicate)?;
    }
    let exprs: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| match masked.iter().find(|(c, _)| c == f.name()) {
            Some((_, tag)) => mask_expr(f.name(), *tag, f.data_type()),
            None => Expr::Column(Column::new_unqualified(f.name())).alias(f.name()),
        })
        .collect();
    let plan = plan.project(exprs)?.build()?;
    Ok(Arc::new(GovernedTable {
        name: name.to_string(),
        schema: Arc::new(plan.schema().as_arrow().clone()),
        plan,
    }))
}

/// A dataset as a principal may see it, behind a security barrier.
///
/// DataFusion would inline a view (`get_logical_plan`) and its optimizer would
/// then push the user's predicates below the row filter and the masks, where an
/// expression that fails on a value (a cast, a division, a regex) could put a
/// hidden row's or an unmasked value into its error, and where `EXPLAIN` would
/// print the raw scan's statistics. This provider is opaque instead:
/// - the outer plan holds one [`GovernedScanExec`] leaf; what it runs (the raw
///   scan, the row filter, the masks) is planned by the provider and is not a
///   child of it, so no optimizer rule can move anything across it, `EXPLAIN`
///   cannot print it, and its statistics are unknown;
/// - only predicates proven leak-proof ([`is_leak_proof`]) are accepted for
///   pushdown (and applied after the masks, so they see what the user sees, and
///   may still prune the Parquet scan); every other expression of the query runs
///   above the barrier, on rows that passed the filter and values after masking.
#[derive(Debug)]
pub struct GovernedTable {
    name: String,
    schema: SchemaRef,
    /// scan → row filter → masks
    plan: LogicalPlan,
}

impl GovernedTable {
    /// `catalog.schema.table`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it reads: scan → row filter → masks.
    pub fn plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// The same table over another plan of the same schema (the scan
    /// swapped for a past version of the dataset: [`crate::time_travel`]).
    pub fn with_plan(&self, plan: LogicalPlan) -> Self {
        Self {
            name: self.name.clone(),
            schema: self.schema.clone(),
            plan,
        }
    }
}

/// Whether `expr` can be evaluated on rows the policy hides without revealing
/// anything: it cannot fail, and its only output is a boolean per row. The
/// allow-list (documented in the README's *Access policy*): a column compared
/// with a literal (`=`, `<>`, `<`, `<=`, `>`, `>=`, `IS [NOT] DISTINCT FROM`),
/// `column [NOT] BETWEEN literal AND literal`, `column [NOT] IN (literals)`,
/// `column IS [NOT] NULL`, literals, and `AND`/`OR`/`NOT` of these. A column
/// wrapped in anything (a cast added by type coercion included) is not on it.
pub fn is_leak_proof(expr: &Expr) -> bool {
    use datafusion::logical_expr::Operator::*;
    let column = |e: &Expr| matches!(e, Expr::Column(_));
    let literal = |e: &Expr| matches!(e, Expr::Literal(..));
    match expr {
        Expr::Literal(..) => true,
        Expr::BinaryExpr(b) => match b.op {
            And | Or => is_leak_proof(&b.left) && is_leak_proof(&b.right),
            Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom | IsNotDistinctFrom => {
                (column(&b.left) && literal(&b.right)) || (literal(&b.left) && column(&b.right))
            }
            _ => false,
        },
        Expr::Not(e) => is_leak_proof(e),
        Expr::IsNull(e) | Expr::IsNotNull(e) => column(e),
        Expr::InList(l) => column(&l.expr) && l.list.iter().all(literal),
        Expr::Between(b) => column(&b.expr) && literal(&b.low) && literal(&b.high),
        _ => false,
    }
}

/// `expr` with its columns unqualified (the governed plan is one table).
fn unqualified(expr: Expr) -> DfResult<Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            Column::new_unqualified(c.name),
        ))),
        e => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}

#[async_trait::async_trait]
impl TableProvider for GovernedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: the accepted ones are evaluated again above the barrier
        Ok(filters
            .iter()
            .map(|f| {
                if is_leak_proof(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut plan = LogicalPlanBuilder::from(self.plan.clone());
        // defence in depth: a filter that is not leak-proof never goes inside
        let inside = filters
            .iter()
            .filter(|f| is_leak_proof(f))
            .cloned()
            .map(unqualified)
            .collect::<DfResult<Vec<_>>>()?;
        let exact = inside.len() == filters.len();
        if let Some(predicate) = conjunction(inside) {
            plan = plan.filter(predicate)?;
        }
        if let Some(n) = limit.filter(|_| exact) {
            plan = plan.limit(0, Some(n))?;
        }
        let schema = match projection {
            Some(p) => {
                let fields: Vec<Expr> = p
                    .iter()
                    .map(|&i| {
                        let name = self.schema.field(i).name();
                        Expr::Column(Column::new_unqualified(name)).alias(name)
                    })
                    .collect();
                plan = plan.project(fields)?;
                Arc::new(self.schema.project(p)?)
            }
            None => self.schema.clone(),
        };
        let inner = state.create_physical_plan(&plan.build()?).await?;
        Ok(Arc::new(GovernedScanExec::new(&self.name, inner, schema)))
    }
}

/// The barrier in a physical plan: runs the governed plan of one dataset,
/// which is not its child (nothing outside sees or rewrites it), and reports
/// no statistics and no metrics of what it runs.
#[derive(Debug)]
pub struct GovernedScanExec {
    name: String,
    inner: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl GovernedScanExec {
    pub(crate) fn new(name: &str, inner: Arc<dyn ExecutionPlan>, schema: SchemaRef) -> Self {
        let partitions = inner.properties().partitioning.partition_count();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            name: name.to_string(),
            inner,
            schema,
            properties: Arc::new(properties),
        }
    }

    /// The plan behind the barrier, for the engine's own accounting (rows and
    /// bytes scanned, spills); never shown to a user.
    pub fn governed_plan(plan: &dyn ExecutionPlan) -> Option<&Arc<dyn ExecutionPlan>> {
        plan.downcast_ref::<Self>().map(|g| &g.inner)
    }
}

impl DisplayAs for GovernedScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "GovernedScanExec: dataset={}, partitions={}",
                self.name,
                self.properties.partitioning.partition_count()
            ),
            DisplayFormatType::TreeRender => write!(f, "dataset={}", self.name),
        }
    }
}

impl ExecutionPlan for GovernedScanExec {
    fn name(&self) -> &str {
        "GovernedScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return datafusion::common::internal_err!("GovernedScanExec has no children");
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let stream = self.inner.execute(partition, context)?;
        if stream.schema() == self.schema {
            return Ok(stream);
        }
        // the same columns; only field metadata or nullability may differ
        let schema = self.schema.clone();
        let relabelled = stream.map(move |batch| {
            let batch = batch?;
            let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            Ok(RecordBatch::try_new_with_options(
                schema.clone(),
                batch.columns().to_vec(),
                &options,
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            relabelled,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_per_tag() {
        assert_eq!(mask_value("张三丰", PiiTag::Name).unwrap(), "张*");
        assert_eq!(
            mask_value("13812345678", PiiTag::Phone).unwrap(),
            "138****5678"
        );
        assert_eq!(
            mask_value("330106199001011234", PiiTag::IdNumber).unwrap(),
            "330106********1234"
        );
        assert_eq!(mask_value("123", PiiTag::Phone).unwrap(), "****");
        assert_eq!(mask_value("Hangzhou Lvyuan Co.", PiiTag::TradeSecret), None);
        assert_eq!(
            mask_value("li.ming@example.cn", PiiTag::Email).unwrap(),
            "l***@example.cn"
        );
        assert_eq!(mask_value("浙A12345", PiiTag::Plate).unwrap(), "浙A***");
    }
}
