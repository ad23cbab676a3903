//! Eager aggregation: an aggregation above an inner equi-join is computed in
//! part below it, on the side its aggregates read, so the join sees one row
//! per group of that side instead of every row.
//!
//! ```text
//! Aggregate: group [d.class, f.day], [count(*), sum(f.x), avg(f.y)]
//!   Join: f.key = d.key
//!     f (millions of rows)     d (a dimension)
//! ```
//! becomes
//! ```text
//! Projection (the original names and types)
//!   Aggregate: group [d.class, f.day], [sum(c), sum(s), sum(sy) / sum(cy)]
//!     Join: f.key = d.key
//!       Aggregate: group [f.key, f.day], [count(*) c, sum(f.x) s, sum(f.y) sy, count(f.y) cy]
//!         f
//!       d
//! ```
//!
//! (Yan and Larson's "eager group-by"; DataFusion 55 does not do it.) The
//! rewrite holds when all of these do, and the rule leaves the plan alone
//! otherwise:
//! - the aggregation reads the join (or a projection of its columns), which
//!   is inner, on column pairs only, with no further filter;
//! - every aggregate is `count`, `sum` (of integers or floats), `min`,
//!   `max` or `avg` (whose result is a float), without `DISTINCT`, `FILTER`
//!   or `ORDER BY`, and reads columns of one side only — the same side for
//!   all of them (the "fact" side), and at least one reads a column;
//! - every grouping expression reads one side only, at least one reads the
//!   other side (the dimension: without, the join only filters the fact
//!   rows, and aggregating them all first costs more than it saves), and
//!   there are no grouping sets;
//! - what moves below the join — the aggregates' arguments, the fact side's
//!   grouping expressions — cannot fail: columns, literals and widening
//!   numeric casts and fields of dates and timestamps (`extract(hour FROM
//!   t)`) only, since below the join they also meet the fact rows
//!   the join drops (`100 / f.x` would divide by a zero the query never
//!   reads);
//! - the fact side is not an aggregation already (the rule does not apply
//!   twice).
//!
//! Why the results are the same: the join matches each fact row to the same
//! dimension rows whether or not the fact rows were first gathered by their
//! join key and fact-side grouping values, so every final group receives the
//! same fact rows, only in partial sums: a count is the sum of the partial
//! counts (0 when there are none), a sum the sum of partial sums, a minimum
//! the minimum of partial minima, an average the sum of partial sums over the
//! sum of partial counts. A dimension row matched twice doubles a partial
//! exactly as it doubled the rows. Float sums may differ in their last bits,
//! as they do between runs with other partitionings.
//!
//! It pays when the fact side has many rows per (join key, fact-side group)
//! — a month of 5-minute speeds per road segment and day: two of the
//! city's analyst queries ran in 0.79 and 0.86 of the time — and costs one
//! more hash aggregation when it has about one row per group (grouped by a
//! raw timestamp). The logical plan carries no row counts or distinct
//! counts to tell the two apart (nor, in this catalog, declared keys), so
//! the rule is off unless asked for (`EngineConfig::eager_aggregation`,
//! `--eager-aggregation`); `benches/README.md` has the measurements.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchema, Result};
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, Join, JoinConstraint, JoinType, LogicalPlan, Projection, cast,
    lit,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The optimizer rule; see the module's documentation.
#[derive(Debug, Default)]
pub struct EagerAggregation;

impl OptimizerRule for EagerAggregation {
    fn name(&self) -> &str {
        "citylake_eager_aggregation"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(agg) = &plan else {
            return Ok(Transformed::no(plan));
        };
        match eager(agg)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// Which input of the join an expression reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// The side all of `expr`'s columns come from; `Ok(None)`: it reads none;
/// `Err(())`: both, or a column of neither.
fn side_of(
    expr: &Expr,
    left: &DFSchema,
    right: &DFSchema,
) -> std::result::Result<Option<Side>, ()> {
    let mut side = None;
    for c in expr.column_refs() {
        let this = if left.has_column(c) {
            Side::Left
        } else if right.has_column(c) {
            Side::Right
        } else {
            return Err(());
        };
        if side.is_some_and(|s| s != this) {
            return Err(());
        }
        side = Some(this);
    }
    Ok(side)
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// The aggregate functions the rule can split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

struct Split<'a> {
    kind: Kind,
    func: &'a AggregateFunction,
}

fn splittable(expr: &Expr) -> Option<Split<'_>> {
    let Expr::AggregateFunction(func) = unaliased(expr) else {
        return None;
    };
    let AggregateFunctionParams {
        args,
        distinct,
        filter,
        order_by,
        ..
    } = &func.params;
    if *distinct || filter.is_some() || !order_by.is_empty() || args.len() != 1 {
        return None;
    }
    let kind = match func.func.name() {
        "count" => Kind::Count,
        "sum" => Kind::Sum,
        "min" => Kind::Min,
        "max" => Kind::Max,
        "avg" => Kind::Avg,
        _ => return None,
    };
    Some(Split { kind, func })
}

fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(a) => unaliased(&a.expr),
        e => e,
    }
}

fn call(func: Arc<datafusion::logical_expr::AggregateUDF>, arg: Expr) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        func,
        vec![arg],
        false,
        None,
        vec![],
        None,
    ))
}

/// The rewritten plan, or None when `agg` is not of the shape the rewrite
/// holds for.
fn eager(agg: &Aggregate) -> Result<Option<LogicalPlan>> {
    // the join, or a projection of its columns (what DataFusion leaves when
    // it prunes the join keys), which the aggregate reads by the same names
    let join = match agg.input.as_ref() {
        LogicalPlan::Join(join) => join,
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            match p.input.as_ref() {
                LogicalPlan::Join(join) => join,
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    if join.join_type != JoinType::Inner
        || join.filter.is_some()
        || join.null_aware
        || join.on.is_empty()
        || !join
            .on
            .iter()
            .all(|(l, r)| matches!((l, r), (Expr::Column(_), Expr::Column(_))))
    {
        return Ok(None);
    }
    if agg
        .group_expr
        .iter()
        .any(|g| matches!(g, Expr::GroupingSet(_)))
    {
        return Ok(None);
    }
    let (left, right) = (join.left.schema(), join.right.schema());
    // the aggregates: splittable, all reading one side
    let mut splits = vec![];
    let mut fact = None;
    for a in &agg.aggr_expr {
        let Some(split) = splittable(a) else {
            return Ok(None);
        };
        match side_of(a, left, right) {
            Err(()) => return Ok(None),
            Ok(None) => {}
            Ok(Some(s)) if fact.is_some_and(|f| f != s) => return Ok(None),
            Ok(Some(s)) => fact = Some(s),
        }
        splits.push(split);
    }
    let Some(fact) = fact else {
        return Ok(None);
    };
    // what moves below the join runs on fact rows the join would drop (no
    // match, a NULL key, a dimension-side filter): only what cannot fail
    // there may move — columns, literals, widening numeric casts; a sum
    // only of integers or floats (a decimal sum of sums would be checked
    // against the precision where the original wraps)
    let fact_plan = match fact {
        Side::Left => &join.left,
        Side::Right => &join.right,
    };
    let fact_schema = fact_plan.schema();
    for s in &splits {
        let arg = &s.func.params.args[0];
        if !infallible(arg, fact_schema) {
            return Ok(None);
        }
        if s.kind == Kind::Sum {
            let t = arg.get_type(fact_schema)?;
            if !(t.is_integer() || t.is_floating()) {
                return Ok(None);
            }
        }
    }
    if matches!(unproject(fact_plan), LogicalPlan::Aggregate(_)) {
        return Ok(None);
    }
    // the average of an integer or float column is a float; a decimal's is a
    // decimal, whose division the rewrite would not reproduce
    for (s, field) in splits
        .iter()
        .zip(agg.schema.fields().iter().skip(agg.group_expr.len()))
    {
        if s.kind == Kind::Avg && field.data_type() != &DataType::Float64 {
            return Ok(None);
        }
    }
    // the grouping: each expression of one side; the fact side's are
    // computed below the join
    let mut fact_groups: Vec<Expr> = vec![];
    let mut seen = HashSet::new();
    for (l, r) in &join.on {
        let key = if fact == Side::Left { l } else { r };
        if seen.insert(key.schema_name().to_string()) {
            fact_groups.push(key.clone());
        }
    }
    let mut top_groups = vec![];
    let mut names_dimension = false;
    for g in &agg.group_expr {
        match side_of(g, left, right) {
            Err(()) => return Ok(None),
            Ok(Some(s)) if s == fact => {
                if !infallible(g, fact_schema) {
                    return Ok(None);
                }
                let name = g.schema_name().to_string();
                if seen.insert(name) {
                    fact_groups.push(g.clone());
                }
                top_groups.push(g.clone());
            }
            Ok(_) => {
                names_dimension |= side_of(g, left, right) == Ok(Some(fact.other()));
                top_groups.push(g.clone());
            }
        }
    }
    // the query's groups need the dimension's attributes: without one, the
    // join only filters the fact rows (TPC-H Q2's cheapest supplier per part
    // through supplier, nation and region), and aggregating them all before
    // that filter costs more than it saves (Q2 ran 3× slower)
    if !names_dimension {
        return Ok(None);
    }
    // the partial aggregates below the join, the final ones above it, and
    // the expressions over those (a Projection: an Aggregate holds only
    // aggregate functions)
    let mut partials = vec![];
    let mut partial = |e: Expr| {
        let name = format!("__citylake_eager_{}", partials.len());
        partials.push(e.alias(&name));
        Expr::Column(Column::from_name(name))
    };
    let mut top_aggregates = vec![];
    let mut total = |e: Expr| {
        let name = format!("__citylake_eager_total_{}", top_aggregates.len());
        top_aggregates.push(e.alias(&name));
        Expr::Column(Column::from_name(name))
    };
    let mut finals = vec![];
    for s in &splits {
        let arg = s.func.params.args[0].clone();
        let func = s.func.func.clone();
        finals.push(match s.kind {
            Kind::Count => {
                let c = partial(call(func, arg));
                coalesce(vec![total(call(sum_udaf(), c)), lit(0i64)])
            }
            Kind::Sum => total(call(sum_udaf(), partial(call(func, arg)))),
            Kind::Min | Kind::Max => {
                let p = partial(call(func.clone(), arg));
                total(call(func, p))
            }
            Kind::Avg => {
                let float = match arg.get_type(fact_schema)? {
                    DataType::Float64 => arg.clone(),
                    _ => cast(arg.clone(), DataType::Float64),
                };
                let s = partial(call(sum_udaf(), float));
                let c = partial(call(count_udaf(), arg));
                total(call(sum_udaf(), s)) / cast(total(call(sum_udaf(), c)), DataType::Float64)
            }
        });
    }
    let fact_names: Vec<String> = fact_groups
        .iter()
        .map(|g| g.schema_name().to_string())
        .collect();
    let below = Aggregate::try_new(fact_plan.clone(), fact_groups, partials)?;
    // grouping expressions of the fact side are columns of `below` now
    let top_groups: Vec<Expr> = top_groups
        .into_iter()
        .map(|g| match side_of(&g, left, right) {
            Ok(Some(s)) if s == fact => {
                let name = g.schema_name().to_string();
                let i = fact_names
                    .iter()
                    .position(|n| *n == name)
                    .expect("every fact-side grouping is grouped below");
                Expr::Column(below.schema.columns()[i].clone())
            }
            _ => g,
        })
        .collect();
    let below = Arc::new(LogicalPlan::Aggregate(below));
    let (new_left, new_right) = match fact {
        Side::Left => (below, join.right.clone()),
        Side::Right => (join.left.clone(), below),
    };
    let new_join = Join::try_new(
        new_left,
        new_right,
        join.on.clone(),
        None,
        JoinType::Inner,
        JoinConstraint::On,
        join.null_equality,
        false,
    )?;
    let groups = top_groups.len();
    let top = Aggregate::try_new(
        Arc::new(LogicalPlan::Join(new_join)),
        top_groups,
        top_aggregates,
    )?;
    // the original names and types
    let outputs: Vec<Expr> = top
        .schema
        .iter()
        .take(groups)
        .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
        .chain(finals)
        .collect();
    let exprs = outputs
        .into_iter()
        .zip(agg.schema.iter())
        .map(|(e, (qualifier, field))| {
            let now = e.get_type(&top.schema)?;
            let e = if &now != field.data_type() {
                cast(e, field.data_type().clone())
            } else {
                e
            };
            Ok(e.alias_qualified(qualifier.cloned(), field.name()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(LogicalPlan::Aggregate(top)),
    )?)))
}

/// Whether `expr` cannot fail on any row of `schema`: a column, a literal,
/// a cast of one between numeric types that widens (integers to wider
/// integers or to floats, floats to `Float64`), or a field of a date or
/// timestamp column (`extract(hour FROM t)`, `date_part('dow', t)`: calendar
/// arithmetic on a valid value).
fn infallible(expr: &Expr, schema: &DFSchema) -> bool {
    match expr {
        Expr::Column(_) | Expr::Literal(..) => true,
        Expr::ScalarFunction(f) if f.func.name() == "date_part" => match f.args.as_slice() {
            [Expr::Literal(..), column @ Expr::Column(_)] => matches!(
                column.get_type(schema),
                Ok(DataType::Date32 | DataType::Date64 | DataType::Timestamp(..))
            ),
            _ => false,
        },
        Expr::Cast(c) => {
            let Ok(from) = c.expr.get_type(schema) else {
                return false;
            };
            let widens = match (&from, c.field.data_type()) {
                (f, t) if f == t => true,
                (
                    DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64,
                    DataType::Int64 | DataType::Float64,
                ) => true,
                (
                    DataType::UInt8 | DataType::UInt16 | DataType::UInt32,
                    DataType::Int64 | DataType::UInt64 | DataType::Float64,
                ) => true,
                (DataType::Float16 | DataType::Float32, DataType::Float64) => true,
                _ => false,
            };
            widens && infallible(&c.expr, schema)
        }
        _ => false,
    }
}

/// The plan under any projections.
fn unproject(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::Projection(p) => unproject(&p.input),
        LogicalPlan::SubqueryAlias(s) => unproject(&s.input),
        p => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int32Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    /// A fact table with NULLs everywhere, keys missing from the dimension,
    /// and a dimension with duplicate keys: the cases a wrong split breaks.
    fn tables() -> (MemTable, MemTable) {
        let mut seed = 0x2545_f491_u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let rows = 5_000;
        let (mut key, mut day, mut x, mut y, mut s) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..rows {
            key.push((next(10) != 0).then(|| next(40) as i32));
            day.push(Some(next(7) as i32));
            // multiples of 1/4: sums are exact in any order
            x.push((next(8) != 0).then(|| next(400) as f64 / 4.0 - 20.0));
            y.push((next(8) != 0).then(|| next(1000) as i32 - 100));
            s.push((next(5) != 0).then(|| format!("s{}", next(30))));
        }
        let fact = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int32, true),
            Field::new("day", DataType::Int32, true),
            Field::new("x", DataType::Float64, true),
            Field::new("y", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            fact.clone(),
            vec![
                Arc::new(Int32Array::from(key)),
                Arc::new(Int32Array::from(day)),
                Arc::new(Float64Array::from(x)),
                Arc::new(Int32Array::from(y)),
                Arc::new(StringArray::from(s)),
            ],
        )
        .unwrap();
        let f = MemTable::try_new(
            fact,
            vec![vec![batch.slice(0, 2500)], vec![batch.slice(2500, 2500)]],
        )
        .unwrap();
        // keys 0..30 (30..40 of the fact match nothing), 5 and 7 twice
        let mut dk: Vec<i32> = (0..30).collect();
        dk.extend([5, 7]);
        let class: Vec<String> = dk.iter().map(|k| format!("c{}", k % 4)).collect();
        let grp: Vec<i32> = dk.iter().map(|k| k % 7).collect();
        let dim = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int32, false),
            Field::new("class", DataType::Utf8, false),
            Field::new("grp", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            dim.clone(),
            vec![
                Arc::new(Int32Array::from(dk)),
                Arc::new(StringArray::from(class)),
                Arc::new(Int32Array::from(grp)),
            ],
        )
        .unwrap();
        let d = MemTable::try_new(dim, vec![vec![batch]]).unwrap();
        (f, d)
    }

    fn context(eager: bool) -> SessionContext {
        let mut rules = datafusion::optimizer::Optimizer::new().rules;
        if eager {
            rules.push(Arc::new(EagerAggregation));
        }
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let (f, d) = tables();
        ctx.register_table("f", Arc::new(f)).unwrap();
        ctx.register_table("d", Arc::new(d)).unwrap();
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> (String, usize, String) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().into_optimized_plan().unwrap();
        let mut aggregates = 0;
        plan.apply(|p| {
            aggregates += usize::from(matches!(p, LogicalPlan::Aggregate(_)));
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .unwrap();
        let batches = df.collect().await.unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        (
            lines.join("\n"),
            aggregates,
            plan.display_indent().to_string(),
        )
    }

    use datafusion::common::tree_node::TreeNode;

    #[tokio::test]
    async fn split_aggregations_give_the_same_results() {
        let (plain, eager) = (context(false), context(true));
        // (query, whether the rule applies)
        let cases = [
            (
                "SELECT d.class, f.day, count(*) AS n, count(f.x), sum(f.y), avg(f.x), avg(f.y), \
                 min(f.s), max(f.x), sum(f.x) FROM f JOIN d ON f.key = d.key GROUP BY d.class, f.day",
                true,
            ),
            // the fact side on the right, grouped by the dimension only
            (
                "SELECT d.grp, count(f.s), max(f.s), sum(f.y) FROM d JOIN f ON d.key = f.key GROUP BY d.grp",
                true,
            ),
            // a cast of the fact side in the grouping
            (
                "SELECT CAST(f.day AS BIGINT) AS day, d.class, sum(f.x) FROM f JOIN d ON f.key = d.key \
                 GROUP BY CAST(f.day AS BIGINT), d.class",
                true,
            ),
            // not split: an expression that could fail on the fact rows the
            // join drops (key 35 matches nothing: 100 / 0 only there)
            (
                "SELECT d.class, sum(100 / (f.key - 35)) FROM f JOIN d ON f.key = d.key GROUP BY d.class",
                false,
            ),
            (
                "SELECT f.day % 3 AS third, d.class, sum(f.x) FROM f JOIN d ON f.key = d.key \
                 GROUP BY f.day % 3, d.class",
                false,
            ),
            // two join keys
            (
                "SELECT d.class, count(*), sum(f.y) FROM f JOIN d ON f.key = d.key AND f.day = d.grp \
                 GROUP BY d.class",
                true,
            ),
            // a grouping that matches nothing: no rows
            (
                "SELECT d.class, count(*), count(f.y), sum(f.y), min(f.x) FROM f JOIN d ON f.key = d.key \
                 WHERE d.grp = 99 GROUP BY d.class",
                true,
            ),
            // not split: no grouping by the dimension, the join only filters
            (
                "SELECT count(*), sum(f.y), avg(f.x) FROM f JOIN d ON f.key = d.key WHERE d.class = 'c1'",
                false,
            ),
            (
                "SELECT f.key, count(*), sum(f.x) FROM f JOIN d ON f.key = d.key GROUP BY f.key",
                false,
            ),
            // not split: DISTINCT, an aggregate over both sides, an outer join
            (
                "SELECT d.class, count(DISTINCT f.y) FROM f JOIN d ON f.key = d.key GROUP BY d.class",
                false,
            ),
            (
                "SELECT d.class, sum(f.y * d.grp) FROM f JOIN d ON f.key = d.key GROUP BY d.class",
                false,
            ),
            (
                "SELECT d.class, sum(f.y) FROM f LEFT JOIN d ON f.key = d.key GROUP BY d.class",
                false,
            ),
        ];
        for (sql, applies) in cases {
            let (want, before, _) = run(&plain, sql).await;
            let (got, after, plan) = run(&eager, sql).await;
            assert_eq!(got, want, "{sql}");
            assert_eq!(
                after > before,
                applies,
                "{sql}: {before} → {after} aggregations\n{plan}"
            );
        }
    }
}
