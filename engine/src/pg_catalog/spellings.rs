//! PostgreSQL spellings clients use that DataFusion reads differently or not
//! at all, rewritten into what they mean before planning:
//!
//! - casts to the catalog's own types: `'int4'::regtype` is the type's object
//!   id (`to_regtype`), `atttypid::regtype` its name (`format_type`);
//!   `'schema.table'::regclass` the relation's object id (`to_regclass`);
//!   other `::regclass`, `::regproc`, `::regnamespace` and `::name` read as
//!   text and `::oid` as an integer (object ids are integers here);
//! - `LIKE pattern ESCAPE 'c'` with an escape character other than `\`
//!   (SQLAlchemy writes `ESCAPE '/'`; DataFusion runs only `\`): the pattern
//!   is rewritten by `citylake_like_escape(pattern, 'c')` to the same pattern
//!   with `\` as its escape character;
//! - `SELECT n.oid, n.*`: PostgreSQL returns `oid` twice, DataFusion refuses
//!   two columns of one name; the wildcard leaves out the columns of its
//!   relation named before it (DBeaver's browse queries);
//! - a function in `FROM` that is not a table function is a one-row table
//!   whose one column is named by the alias (`FROM string_to_array(…) s`,
//!   Grafana), and `FROM generate_series(…) AS i` names its column `i`;
//!   `pg_catalog.` before a table function is left out, and before a
//!   function registered only under its own name;
//! - `information_schema.columns` has PostgreSQL's columns DataFusion's lacks
//!   (`udt_name` and the rest of [`COLUMNS_EXTRAS`]);
//! - `ORDER BY` an expression holding a subquery (see
//!   [`subqueries_in_order_by`]), and `IN (SELECT …)` in a projection (see
//!   [`InSubqueries`]).

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    DataType as SqlType, ExcludeSelectItem, Expr, Ident, ObjectName, Query, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias, TableAliasColumnDef,
    TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrites the spellings of the module documentation in `statement`;
/// `is_table_function` says which names are table functions, `is_function`
/// which are functions (scalar, aggregate or window; a name as registered,
/// `pg_catalog.` included where it is).
pub fn rewrite(
    statement: &mut Statement,
    is_table_function: &dyn Fn(&str) -> bool,
    is_function: &dyn Fn(&str) -> bool,
) {
    let _ = statement.visit(&mut Spellings {
        is_table_function,
        is_function,
    });
}

struct Spellings<'a> {
    is_table_function: &'a dyn Fn(&str) -> bool,
    is_function: &'a dyn Fn(&str) -> bool,
}

/// Table functions whose one column takes the name of the table's alias
/// when it gives no column names (as PostgreSQL names a scalar function's).
const ONE_COLUMN_TABLE_FUNCTIONS: [&str; 2] = ["generate_series", "range"];

/// The wildcards of `body`'s selects leave out the columns of their relation
/// named before them (see the module documentation).
fn distinct_wildcards(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            let mut named: Vec<(String, Ident)> = vec![];
            for item in select.projection.iter_mut() {
                match item {
                    SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts))
                        if parts.len() == 2 =>
                    {
                        named.push((parts[0].value.to_ascii_lowercase(), parts[1].clone()))
                    }
                    SelectItem::QualifiedWildcard(
                        SelectItemQualifiedWildcardKind::ObjectName(name),
                        options,
                    ) if options.opt_exclude.is_none() && options.opt_except.is_none() => {
                        let Some(relation) = name.0.last().and_then(|p| p.as_ident()) else {
                            continue;
                        };
                        let relation = relation.value.to_ascii_lowercase();
                        let mut columns: Vec<ObjectName> = vec![];
                        for (r, column) in &named {
                            let column = ObjectName::from(vec![column.clone()]);
                            if *r == relation && !columns.contains(&column) {
                                columns.push(column);
                            }
                        }
                        if !columns.is_empty() {
                            options.opt_exclude = Some(ExcludeSelectItem::Multiple(columns));
                        }
                    }
                    _ => {}
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            distinct_wildcards(left);
            distinct_wildcards(right);
        }
        _ => {}
    }
}

/// `sql` as an expression (made from parts that are expressions already).
fn expr(sql: &str) -> Option<Expr> {
    Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .ok()?
        .parse_expr()
        .ok()
}

/// PostgreSQL's columns of `information_schema.columns` that DataFusion's
/// does not have, as they are here: the PostgreSQL type's name (`udt_name`,
/// what Metabase and npgsql read for a column's type), and no identity,
/// generation, domain, collation or character set. Its own columns stay as
/// they are, so Flight SQL clients read what they read before.
const COLUMNS_EXTRAS: &str = "CAST(NULL AS INT) AS interval_precision, \
    CAST(NULL AS TEXT) AS character_set_catalog, CAST(NULL AS TEXT) AS character_set_schema, \
    CAST(NULL AS TEXT) AS character_set_name, CAST(NULL AS TEXT) AS collation_catalog, \
    CAST(NULL AS TEXT) AS collation_schema, CAST(NULL AS TEXT) AS collation_name, \
    CAST(NULL AS TEXT) AS domain_catalog, CAST(NULL AS TEXT) AS domain_schema, \
    CAST(NULL AS TEXT) AS domain_name, current_database() AS udt_catalog, \
    'pg_catalog' AS udt_schema, citylake_udt_name(data_type) AS udt_name, \
    CAST(NULL AS TEXT) AS scope_catalog, CAST(NULL AS TEXT) AS scope_schema, \
    CAST(NULL AS TEXT) AS scope_name, CAST(NULL AS INT) AS maximum_cardinality, \
    CAST(ordinal_position AS TEXT) AS dtd_identifier, 'NO' AS is_self_referencing, \
    'NO' AS is_identity, CAST(NULL AS TEXT) AS identity_generation, \
    CAST(NULL AS TEXT) AS identity_start, CAST(NULL AS TEXT) AS identity_increment, \
    CAST(NULL AS TEXT) AS identity_maximum, CAST(NULL AS TEXT) AS identity_minimum, \
    'NO' AS identity_cycle, 'NEVER' AS is_generated, \
    CAST(NULL AS TEXT) AS generation_expression, 'NO' AS is_updatable";

/// `information_schema.columns` (not already a derived table's) as a
/// subquery adding [`COLUMNS_EXTRAS`], under the name it was read by.
fn information_schema_columns(factor: &TableFactor) -> Option<TableFactor> {
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = factor
    else {
        return None;
    };
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
        .collect::<Option<_>>()?;
    let ([schema, table] | [_, schema, table]) = parts.as_slice() else {
        return None;
    };
    if schema != "information_schema" || table != "columns" {
        return None;
    }
    let sql = format!("SELECT *, {COLUMNS_EXTRAS} FROM {name}");
    let Ok(Statement::Query(subquery)) = Parser::new(&GenericDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_statement())
    else {
        return None;
    };
    Some(TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(alias.clone().unwrap_or(TableAlias {
            explicit: true,
            name: Ident::new("columns"),
            columns: vec![],
            at: None,
        })),
        sample: None,
    })
}

/// `X::regclass`: a relation's name (a string, or a function building one:
/// Metabase's `format('%I.%I', schema, table)::regclass`) is its object id
/// (`to_regclass`); an object id (a column) stays what it is, shown as text.
fn regclass(inner: &Expr) -> Option<Expr> {
    let mut built = inner;
    while let Expr::Nested(e) = built {
        built = e;
    }
    match built {
        Expr::Value(v)
            if matches!(
                v.value,
                Value::SingleQuotedString(_) | Value::Placeholder(_)
            ) =>
        {
            expr(&format!("to_regclass({inner})"))
        }
        Expr::Function(_)
        | Expr::BinaryOp {
            op: datafusion::sql::sqlparser::ast::BinaryOperator::StringConcat,
            ..
        } => expr(&format!("to_regclass({inner})")),
        _ => expr(&format!("CAST({inner} AS TEXT)")),
    }
}

/// `x [NOT] IN (SELECT …)` in a select's projection, which DataFusion 55
/// does not run there ("Physical plan does not support logical expression
/// InSubquery"; Grafana's table list has one in a `CASE`): the subquery's
/// values are gathered into an array by a scalar subquery, which DataFusion
/// runs, and the answer is SQL's, `NULL`s included — true when `x` is among
/// them; false when there are none; else `NULL` when `x` or one of them is
/// `NULL`; else false. Subqueries inside it are left to their own select.
struct InSubqueries {
    depth: usize,
}

impl VisitorMut for InSubqueries {
    type Break = ();
    fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        let Expr::InSubquery {
            expr: x,
            subquery,
            negated,
        } = e
        else {
            return ControlFlow::Continue(());
        };
        let values =
            format!("(SELECT array_agg(citylake_in.c) FROM ({subquery}) AS citylake_in (c))");
        let test = format!(
            "CASE WHEN {values} IS NULL THEN false WHEN ({x}) IS NULL THEN CAST(NULL AS BOOLEAN) \
             WHEN array_has({values}, {x}) THEN true \
             WHEN array_position({values}, NULL) IS NOT NULL THEN CAST(NULL AS BOOLEAN) \
             ELSE false END"
        );
        let test = if *negated {
            format!("NOT ({test})")
        } else {
            format!("({test})")
        };
        if let Some(r) = expr(&test) {
            *e = r;
        }
        ControlFlow::Continue(())
    }
}

/// Whether `e` holds a subquery.
fn has_subquery(e: &Expr) -> bool {
    use datafusion::sql::sqlparser::ast::{Visit, Visitor};
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. } => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    e.visit(&mut Finder).is_break()
}

/// `ORDER BY` an expression holding a subquery (Grafana's table list orders
/// by `CASE WHEN schema IN (SELECT …) THEN 0 ELSE 1 END`), which DataFusion
/// plans only in a projection: each ordering expression that is not a plain
/// name or position becomes a column of the select, which an outer select
/// leaves out again (`SELECT * EXCLUDE (…)`), and the query orders by those
/// columns. Only for a plain select (no `DISTINCT`, grouping or `HAVING`,
/// where another column would change the answer).
fn subqueries_in_order_by(query: &mut Query) {
    use datafusion::sql::sqlparser::ast::{OrderByExpr, OrderByKind};
    let Some(order_by) = &mut query.order_by else {
        return;
    };
    let OrderByKind::Expressions(exprs) = &mut order_by.kind else {
        return;
    };
    if !exprs.iter().any(|o| has_subquery(&o.expr)) {
        return;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return;
    };
    let grouped = match &select.group_by {
        datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, m) => {
            !e.is_empty() || !m.is_empty()
        }
        datafusion::sql::sqlparser::ast::GroupByExpr::All(_) => true,
    };
    if select.distinct.is_some() || grouped || select.having.is_some() {
        return;
    }
    let aliases: Vec<String> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let mut inner = select.clone();
    let mut hidden = vec![];
    for (i, o) in exprs.iter_mut().enumerate() {
        // a position, or an output column's name: read by the outer select
        let outer = match &o.expr {
            Expr::Value(_) => true,
            Expr::Identifier(name) => aliases.contains(&name.value.to_ascii_lowercase()),
            _ => false,
        };
        if outer {
            continue;
        }
        let name = Ident::new(format!("citylake_order_{i}"));
        let mut moved = o.expr.clone();
        let _ = moved.visit(&mut InSubqueries { depth: 0 });
        inner.projection.push(SelectItem::ExprWithAlias {
            expr: moved,
            alias: name.clone(),
        });
        *o = OrderByExpr {
            expr: Expr::Identifier(name.clone()),
            options: o.options,
            with_fill: None,
        };
        hidden.push(name.to_string());
    }
    let sql = format!(
        "SELECT * EXCLUDE ({}) FROM ({inner}) AS citylake_ordered",
        hidden.join(", ")
    );
    let Ok(Statement::Query(outer)) = Parser::new(&GenericDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_statement())
    else {
        return;
    };
    query.body = outer.body;
}

impl VisitorMut for Spellings<'_> {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        distinct_wildcards(&mut query.body);
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                match item {
                    SelectItem::ExprWithAlias { expr: e, .. } => {
                        let _ = e.visit(&mut InSubqueries { depth: 0 });
                    }
                    SelectItem::UnnamedExpr(e) => {
                        let written = e.to_string();
                        let _ = e.visit(&mut InSubqueries { depth: 0 });
                        if e.to_string() != written {
                            // named as written, not by what it became
                            *item = SelectItem::ExprWithAlias {
                                expr: e.clone(),
                                alias: Ident::with_quote('"', written),
                            };
                        }
                    }
                    _ => {}
                }
            }
        }
        subqueries_in_order_by(query);
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let Some(columns) = information_schema_columns(factor) {
            *factor = columns;
            return ControlFlow::Continue(());
        }
        let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let Some(function) = name.0.last().and_then(|p| p.as_ident()) else {
            return ControlFlow::Continue(());
        };
        let function = function.value.to_ascii_lowercase();
        if (self.is_table_function)(&function) {
            // `pg_catalog.pg_get_keywords()`: DataFusion looks table functions
            // up by their first name part
            if let [schema, _] = name.0.as_slice()
                && schema
                    .as_ident()
                    .is_some_and(|s| s.value.eq_ignore_ascii_case(super::PG_CATALOG))
            {
                name.0.remove(0);
            }
            if let Some(alias) = alias
                && alias.columns.is_empty()
                && ONE_COLUMN_TABLE_FUNCTIONS.contains(&function.as_str())
            {
                alias.columns = vec![TableAliasColumnDef {
                    name: alias.name.clone(),
                    data_type: None,
                }];
            }
            return ControlFlow::Continue(());
        }
        // a scalar function: a one-row table, its column named by the alias
        let column = alias
            .as_ref()
            .map(|a| {
                a.columns
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| a.name.clone())
            })
            .unwrap_or_else(|| Ident::new(function.clone()));
        let table = alias
            .as_ref()
            .map(|a| a.name.clone())
            .unwrap_or_else(|| Ident::new(function.clone()));
        let args: Vec<String> = args.args.iter().map(ToString::to_string).collect();
        let call = format!("SELECT {name}({}) AS {column}", args.join(", "));
        let Ok(Statement::Query(subquery)) = Parser::new(&GenericDialect {})
            .try_with_sql(&call)
            .and_then(|mut p| p.parse_statement())
        else {
            return ControlFlow::Continue(());
        };
        *factor = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(TableAlias {
                explicit: true,
                name: table,
                columns: vec![],
                at: None,
            }),
            sample: None,
        };
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        // `pg_catalog.array_to_string(…)` (psql): PostgreSQL's functions are
        // all in `pg_catalog`; one that is not registered under that name
        // here is the function of its own name
        if let Expr::Function(f) = e
            && let [schema, function] = f.name.0.as_slice()
            && let (Some(schema), Some(function)) = (schema.as_ident(), function.as_ident())
            && schema.value.eq_ignore_ascii_case(super::PG_CATALOG)
        {
            let bare = function.value.to_ascii_lowercase();
            if !(self.is_function)(&format!("{}.{bare}", super::PG_CATALOG))
                && (self.is_function)(&bare)
            {
                f.name.0.remove(0);
            }
        }
        let replacement = match e {
            Expr::Cast {
                expr: inner,
                data_type: SqlType::Regclass,
                ..
            } => regclass(inner),
            Expr::Cast {
                expr: inner,
                data_type: SqlType::Custom(name, modifiers),
                ..
            } if modifiers.is_empty() => {
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
                    .collect();
                let qualified_ok = match parts.as_slice() {
                    [_] => true,
                    [schema, _] => schema == super::PG_CATALOG,
                    _ => false,
                };
                let kind = parts.last().map(String::as_str).unwrap_or_default();
                if !qualified_ok {
                    return ControlFlow::Continue(());
                }
                match kind {
                    "regtype" => match inner.as_ref() {
                        Expr::Value(v)
                            if matches!(
                                v.value,
                                Value::SingleQuotedString(_) | Value::Placeholder(_)
                            ) =>
                        {
                            expr(&format!("to_regtype({inner})"))
                        }
                        _ => expr(&format!("format_type({inner}, NULL)")),
                    },
                    "regclass" => regclass(inner),
                    "regproc" | "regprocedure" | "regnamespace" | "regoper" | "name" | "char"
                    | "text" | "varchar" => expr(&format!("CAST({inner} AS TEXT)")),
                    "oid" | "regrole" => expr(&format!("CAST({inner} AS INT)")),
                    _ => None,
                }
            }
            Expr::Like {
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                pattern,
                escape_char,
                ..
            } => {
                let c = match escape_char.as_ref().map(|v| &v.value) {
                    Some(Value::SingleQuotedString(c)) if c != "\\" && c.chars().count() == 1 => {
                        c.clone()
                    }
                    _ => return ControlFlow::Continue(()),
                };
                if let Some(p) = expr(&format!(
                    "citylake_like_escape({pattern}, '{}')",
                    c.replace('\'', "''")
                )) {
                    **pattern = p;
                    *escape_char = None;
                }
                return ControlFlow::Continue(());
            }
            _ => return ControlFlow::Continue(()),
        };
        if let Some(r) = replacement {
            *e = r;
        }
        ControlFlow::Continue(())
    }
}

/// `pattern` with its escape character `escape` replaced by `\` (a `\` of
/// its own becomes `\\`, a literal backslash).
pub fn like_escape(pattern: &str, escape: char) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            out.push('\\');
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

/// `citylake_like_escape(pattern, escape)`, see [`like_escape`].
pub fn like_escape_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(LikeEscape {
        signature: Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct LikeEscape {
    signature: Signature,
}

impl ScalarUDFImpl for LikeEscape {
    fn name(&self) -> &str {
        "citylake_like_escape"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let escape = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(e))) if e.chars().count() == 1 => {
                e.chars().next().unwrap_or('\\')
            }
            _ => return datafusion::common::exec_err!("ESCAPE takes one character"),
        };
        let patterns = args.args[0].to_array(args.number_rows)?;
        let patterns = datafusion::arrow::array::AsArray::as_string::<i32>(&patterns);
        let out: StringArray = (0..patterns.len())
            .map(|i| {
                patterns
                    .is_valid(i)
                    .then(|| like_escape(patterns.value(i), escape))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut statement, &|name| name == "generate_series", &|name| {
            ["array_to_string", "pg_catalog.format_type", "format_type"].contains(&name)
        });
        statement.to_string()
    }

    #[test]
    fn casts_to_catalog_types() {
        assert_eq!(
            rewritten(
                "SELECT oid::regtype::text, 'hstore'::regtype, c.oid::pg_catalog.regclass, x::oid FROM t"
            ),
            "SELECT format_type(oid, NULL)::TEXT, to_regtype('hstore'), CAST(c.oid AS TEXT), CAST(x AS INT) FROM t"
        );
        assert_eq!(
            rewritten(
                "SELECT 'pg_catalog.pg_class'::regclass, $1::regclass, CAST(y AS REGCLASS) FROM t"
            ),
            "SELECT to_regclass('pg_catalog.pg_class'), to_regclass($1), CAST(y AS TEXT) FROM t"
        );
        assert_eq!(
            rewritten("SELECT x::pg_catalog.text, y::pg_catalog.regtype::pg_catalog.text FROM t"),
            "SELECT CAST(x AS TEXT), CAST(format_type(y, NULL) AS TEXT) FROM t"
        );
        // a cast to a type of another schema is left alone
        assert_eq!(
            rewritten("SELECT x::myschema.regtype FROM t"),
            "SELECT x::myschema.regtype FROM t"
        );
    }

    #[test]
    fn a_wildcard_leaves_out_the_columns_named_before_it() {
        assert_eq!(
            rewritten("SELECT n.oid, n.*, d.description FROM pg_namespace n JOIN d ON true"),
            "SELECT n.oid, n.* EXCLUDE (oid), d.description FROM pg_namespace n JOIN d ON true"
        );
        // another relation's wildcard, or a column named after it, is left alone
        assert_eq!(
            rewritten("SELECT a.oid, b.*, a.* FROM a, b"),
            "SELECT a.oid, b.*, a.* EXCLUDE (oid) FROM a, b"
        );
        assert_eq!(
            rewritten("SELECT t.*, t.oid FROM t"),
            "SELECT t.*, t.oid FROM t"
        );
    }

    #[test]
    fn functions_in_from() {
        assert_eq!(
            rewritten("SELECT s[i] FROM generate_series(1, 2) AS i, string_to_array('a,b', ',') s"),
            "SELECT s[i] FROM generate_series(1, 2) AS i (i), (SELECT string_to_array('a,b', ',') AS s) AS s"
        );
    }

    #[test]
    fn ordering_by_a_subquery() {
        let sql = rewritten(
            "SELECT CASE WHEN s IN (SELECT 1) THEN t END AS x FROM r \
             ORDER BY CASE WHEN s IN (SELECT 2) THEN 0 ELSE 1 END DESC, 1, x, t LIMIT 3",
        );
        assert!(
            sql.starts_with("SELECT * EXCLUDE (citylake_order_0, citylake_order_3) FROM (SELECT "),
            "{sql}"
        );
        assert!(
            sql.ends_with(
                " ELSE 1 END AS citylake_order_0, t AS citylake_order_3 FROM r) AS \
                 citylake_ordered ORDER BY citylake_order_0 DESC, 1, x, citylake_order_3 LIMIT 3"
            ),
            "{sql}"
        );
        // (the IN of both, now in the projection, as there)
        assert!(!sql.contains(" IN (SELECT"), "{sql}");
        // grouped or distinct: left to the planner
        for sql in [
            "SELECT DISTINCT a FROM r ORDER BY a IN (SELECT 1)",
            "SELECT a FROM r GROUP BY a ORDER BY a IN (SELECT 1)",
            "SELECT a FROM r ORDER BY a + 1",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }

    #[test]
    fn in_subqueries_in_a_projection() {
        let sql = rewritten(
            "SELECT CASE WHEN s NOT IN (SELECT x FROM r WHERE y IN (SELECT 1)) THEN 0 END FROM t \
             WHERE s IN (SELECT 2)",
        );
        assert!(
            sql.starts_with(
                "SELECT CASE WHEN NOT (CASE WHEN (SELECT array_agg(citylake_in.c) FROM (SELECT x \
                 FROM r WHERE y IN (SELECT 1)) AS citylake_in (c)) IS NULL THEN false"
            ),
            "{sql}"
        );
        // a filter's stays: DataFusion runs it
        assert!(
            sql.ends_with(
                "END) THEN 0 END AS \"CASE WHEN s NOT IN (SELECT x FROM r WHERE y IN (SELECT 1)) \
                 THEN 0 END\" FROM t WHERE s IN (SELECT 2)"
            ),
            "{sql}"
        );
    }

    #[test]
    fn functions_under_the_catalog_prefix() {
        assert_eq!(
            rewritten(
                "SELECT pg_catalog.array_to_string(a, ','), pg_catalog.format_type(1, 2), \
                 pg_catalog.nothing(1), other.array_to_string(a, ',')"
            ),
            "SELECT array_to_string(a, ','), pg_catalog.format_type(1, 2), pg_catalog.nothing(1), \
             other.array_to_string(a, ',')"
        );
    }

    #[test]
    fn table_functions_under_the_catalog_prefix() {
        assert_eq!(
            rewritten("SELECT * FROM pg_catalog.generate_series(1, 2) g"),
            "SELECT * FROM generate_series(1, 2) g (g)"
        );
    }

    #[test]
    fn information_schema_columns_has_postgresql_columns() {
        let sql = rewritten("SELECT udt_name FROM information_schema.columns WHERE x = 1");
        assert!(
            sql.starts_with(
                "SELECT udt_name FROM (SELECT *, CAST(NULL AS INT) AS interval_precision"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with("FROM information_schema.columns) AS columns WHERE x = 1"),
            "{sql}"
        );
        // the name it was read by stays; the subquery is not rewritten again
        let sql = rewritten("SELECT c.udt_name FROM city.information_schema.columns AS c");
        assert!(
            sql.ends_with("FROM city.information_schema.columns) AS c"),
            "{sql}"
        );
        assert_eq!(sql.matches("udt_name").count(), 3, "{sql}");
        // other tables of the schema, and a table of that name elsewhere, stay
        for other in [
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM traffic.columns",
        ] {
            assert_eq!(rewritten(other), other);
        }
    }

    #[test]
    fn like_with_another_escape_character() {
        assert_eq!(
            rewritten("SELECT 1 WHERE n NOT LIKE $1 || '%' ESCAPE '/'"),
            "SELECT 1 WHERE n NOT LIKE citylake_like_escape($1 || '%', '/')"
        );
        assert_eq!(
            rewritten("SELECT 1 WHERE n LIKE 'a\\_%' ESCAPE '\\'"),
            "SELECT 1 WHERE n LIKE 'a\\_%' ESCAPE '\\'"
        );
        assert_eq!(like_escape("pg/_%", '/'), "pg\\_%");
        assert_eq!(like_escape("a//b\\c", '/'), "a\\/b\\\\c");
    }
}
