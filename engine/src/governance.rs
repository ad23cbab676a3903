//! Enforcement of the access policy, in one place: the catalog a session sees.
//!
//! For each dataset and view the principal's [`Access`](crate::policy::Access) decides:
//! - not visible: not registered at all (absent from GetTables,
//!   information_schema and `system.datasets`), and refused by name in queries;
//! - visible but not readable (an auditor): listed, refused in queries;
//! - readable with masked columns or a row filter: registered as a governed
//!   table — a plan `SELECT mask(c)… FROM dataset WHERE filter` over the real
//!   provider, which DataFusion inlines into every query that names it, so
//!   whatever the query does with a masked column (join, filter, aggregate,
//!   cast, function, subquery, CTE, view, EXPLAIN, prepared statement) it sees
//!   only the masked value, and the row filter applies before anything else;
//! - readable in full: the provider itself (no cost).
//!
//! The catalog's views are planned again for a restricted principal, over
//! its governed tables, so a view never reads around the policy.

use std::borrow::Cow;
use std::sync::Arc;

use citylake_catalog::PiiTag;
use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::{Result as DfResult, TableReference};
use datafusion::datasource::{TableType, ViewTable, provider_as_source};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, TableProviderFilterPushDown,
    Volatility, create_udf,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{cast as cast_expr, col, lit};

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

/// The governed form of a table: `provider`'s rows where `row_filter` holds
/// (`None`: all; an empty list: none), with the `masked` columns masked.
pub fn governed_table(
    state: &SessionState,
    name: TableReference,
    provider: Arc<dyn TableProvider>,
    row_filter: Option<&[String]>,
    masked: &[(String, PiiTag)],
) -> DfResult<Arc<dyn TableProvider>> {
    let schema = provider.schema();
    let mut plan = LogicalPlanBuilder::scan(name, provider_as_source(provider), None)?;
    if let Some(filters) = row_filter {
        let sql: Cow<str> = if filters.is_empty() {
            "FALSE".into()
        } else {
            filters.join(" OR ").into()
        };
        let predicate = state.create_logical_expr(&sql, plan.schema())?;
        plan = plan.filter(predicate)?;
    }
    let exprs: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| match masked.iter().find(|(c, _)| c == f.name()) {
            Some((_, tag)) => mask_expr(f.name(), *tag, f.data_type()),
            None => col(f.name()),
        })
        .collect();
    let plan = plan.project(exprs)?.build()?;
    Ok(Arc::new(GovernedTable {
        view: ViewTable::new(plan, None),
    }))
}

/// A dataset as a principal may see it: a view of the real table, presented
/// as a table (metadata calls list it as `TABLE`, as it is for others).
#[derive(Debug)]
struct GovernedTable {
    view: ViewTable,
}

#[async_trait::async_trait]
impl TableProvider for GovernedTable {
    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_logical_plan(&'_ self) -> Option<Cow<'_, LogicalPlan>> {
        self.view.get_logical_plan()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.view.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.view.scan(state, projection, filters, limit).await
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
