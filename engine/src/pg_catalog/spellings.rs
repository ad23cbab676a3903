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
//!   Grafana), and `FROM generate_series(…) AS i` names its column `i`.

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
/// `is_table_function` says which names are table functions.
pub fn rewrite(statement: &mut Statement, is_table_function: &dyn Fn(&str) -> bool) {
    let _ = statement.visit(&mut Spellings { is_table_function });
}

struct Spellings<'a> {
    is_table_function: &'a dyn Fn(&str) -> bool,
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

/// `X::regclass`: a relation's name (a string) is its object id
/// (`to_regclass`); an object id stays what it is, shown as text.
fn regclass(inner: &Expr) -> Option<Expr> {
    match inner {
        Expr::Value(v)
            if matches!(
                v.value,
                Value::SingleQuotedString(_) | Value::Placeholder(_)
            ) =>
        {
            expr(&format!("to_regclass({inner})"))
        }
        _ => expr(&format!("CAST({inner} AS TEXT)")),
    }
}

impl VisitorMut for Spellings<'_> {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        distinct_wildcards(&mut query.body);
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
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
        rewrite(&mut statement, &|name| name == "generate_series");
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
