//! Reads of the catalogs that are empty in citylake, answered without
//! planning what they would compute.
//!
//! PostgreSQL clients describe a table with queries that also read catalogs
//! citylake has nothing in — defaults (`pg_attrdef`), collations, indexes,
//! constraints, inheritance, row-security policies, extended statistics,
//! publications, triggers, sequences, enums, ranges, dependencies,
//! materialized views, table statistics, operator classes, tablespaces
//! (every relation is in the default one, `reltablespace` 0). psql's `\d` asks for a column's default
//! with a correlated scalar subquery over `pg_attrdef`, and for its policies
//! with `ARRAY(SELECT …)`: constructs DataFusion cannot plan, over relations
//! that hold no row. A query over an empty relation has a known answer, so
//! this rewrite gives it before planning:
//!
//! - a `SELECT` whose `FROM` joins one of [`EMPTY`] so that no row can come
//!   out (the relation itself, an inner or cross join with it, the preserved
//!   side of an outer join being empty) and that cannot produce a row from no
//!   input (no aggregate without `GROUP BY`, no `HAVING`), or whose `WHERE` is
//!   the literal `false`, is empty: the query becomes `SELECT NULL AS name, …
//!   WHERE false` with the same column names (and loses its `ORDER BY` and
//!   `WITH`); a `UNION` of empty queries, an `INTERSECT` with one, an `EXCEPT`
//!   from one, likewise;
//! - a scalar subquery that is empty is `NULL`; `EXISTS` of one is `false`
//!   (`NOT EXISTS` `true`); `x IN` one is `false`; `x op ANY` one is `false`
//!   and `x op ALL` one `true`.
//!
//! Each is the answer PostgreSQL gives. Only relations named with their schema
//! (`pg_catalog.pg_attrdef`, as clients write them) count, and the rewrite
//! runs only for statements naming one, before the access check: the relations
//! it removes hold nothing to protect, and everything else in the statement is
//! planned and checked as written.
//!
//! One more shape clients write that DataFusion cannot plan, over catalogs
//! that do hold rows: a correlated scalar subquery that looks a row up by its
//! key, `(SELECT t.typname FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid)`
//! (SQLAlchemy's reflection). It returns one row at most, so its value is
//! wrapped in `first_value(…)`, which DataFusion plans and which changes
//! nothing for one row or none.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, JoinOperator, ObjectName, Query, Select, SelectItem, SetExpr, SetOperator,
    Statement, TableFactor, TableWithJoins, Value, Visit, VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::PG_CATALOG;

/// The `pg_catalog` relations that never hold a row in citylake, with their
/// columns (the ones clients read; `i` int4, `s` int2, `l` int8, `b` bool,
/// `t` text): registered as empty tables, and rewritten as described above.
pub const EMPTY: &[(&str, &[(&str, char)])] = &[
    (
        "pg_attrdef",
        &[
            ("oid", 'i'),
            ("adrelid", 'i'),
            ("adnum", 's'),
            ("adbin", 't'),
        ],
    ),
    (
        "pg_collation",
        &[("oid", 'i'), ("collname", 't'), ("collnamespace", 'i')],
    ),
    (
        "pg_constraint",
        &[
            ("oid", 'i'),
            ("conname", 't'),
            ("connamespace", 'i'),
            ("contype", 't'),
            ("conrelid", 'i'),
            ("confrelid", 'i'),
            ("conparentid", 'i'),
            ("conkey", 't'),
            ("confkey", 't'),
        ],
    ),
    (
        "pg_depend",
        &[
            ("classid", 'i'),
            ("objid", 'i'),
            ("objsubid", 'i'),
            ("refclassid", 'i'),
            ("refobjid", 'i'),
            ("refobjsubid", 'i'),
            ("deptype", 't'),
        ],
    ),
    (
        "pg_description",
        &[
            ("objoid", 'i'),
            ("classoid", 'i'),
            ("objsubid", 'i'),
            ("description", 't'),
        ],
    ),
    (
        "pg_enum",
        &[
            ("oid", 'i'),
            ("enumtypid", 'i'),
            ("enumsortorder", 'i'),
            ("enumlabel", 't'),
        ],
    ),
    (
        "pg_event_trigger",
        &[
            ("oid", 'i'),
            ("evtname", 't'),
            ("evtevent", 't'),
            ("evtowner", 'i'),
            ("evtenabled", 't'),
        ],
    ),
    (
        "pg_extension",
        &[
            ("oid", 'i'),
            ("extname", 't'),
            ("extowner", 'i'),
            ("extnamespace", 'i'),
            ("extrelocatable", 'b'),
            ("extversion", 't'),
        ],
    ),
    (
        "pg_foreign_table",
        &[("ftrelid", 'i'), ("ftserver", 'i'), ("ftoptions", 't')],
    ),
    (
        "pg_index",
        &[
            ("indexrelid", 'i'),
            ("indrelid", 'i'),
            ("indnatts", 's'),
            ("indisunique", 'b'),
            ("indisprimary", 'b'),
            ("indisclustered", 'b'),
            ("indisvalid", 'b'),
            ("indkey", 't'),
            ("indexprs", 't'),
            ("indpred", 't'),
        ],
    ),
    (
        "pg_inherits",
        &[
            ("inhrelid", 'i'),
            ("inhparent", 'i'),
            ("inhseqno", 'i'),
            ("inhdetachpending", 'b'),
        ],
    ),
    (
        "pg_matviews",
        &[
            ("schemaname", 't'),
            ("matviewname", 't'),
            ("matviewowner", 't'),
            ("ispopulated", 'b'),
            ("definition", 't'),
        ],
    ),
    (
        "pg_opclass",
        &[
            ("oid", 'i'),
            ("opcname", 't'),
            ("opcnamespace", 'i'),
            ("opcmethod", 'i'),
            ("opcdefault", 'b'),
        ],
    ),
    (
        "pg_partitioned_table",
        &[
            ("partrelid", 'i'),
            ("partstrat", 't'),
            ("partnatts", 's'),
            ("partdefid", 'i'),
        ],
    ),
    (
        "pg_policy",
        &[
            ("oid", 'i'),
            ("polname", 't'),
            ("polrelid", 'i'),
            ("polcmd", 't'),
            ("polpermissive", 'b'),
            ("polroles", 't'),
            ("polqual", 't'),
            ("polwithcheck", 't'),
        ],
    ),
    (
        "pg_publication",
        &[
            ("oid", 'i'),
            ("pubname", 't'),
            ("pubowner", 'i'),
            ("puballtables", 'b'),
        ],
    ),
    (
        "pg_publication_namespace",
        &[("oid", 'i'), ("pnpubid", 'i'), ("pnnspid", 'i')],
    ),
    (
        "pg_publication_rel",
        &[
            ("oid", 'i'),
            ("prpubid", 'i'),
            ("prrelid", 'i'),
            ("prqual", 't'),
            ("prattrs", 't'),
        ],
    ),
    (
        "pg_range",
        &[
            ("rngtypid", 'i'),
            ("rngsubtype", 'i'),
            ("rngmultitypid", 'i'),
        ],
    ),
    (
        "pg_rewrite",
        &[
            ("oid", 'i'),
            ("rulename", 't'),
            ("ev_class", 'i'),
            ("ev_type", 't'),
            ("is_instead", 'b'),
        ],
    ),
    (
        "pg_sequence",
        &[
            ("seqrelid", 'i'),
            ("seqtypid", 'i'),
            ("seqstart", 'l'),
            ("seqincrement", 'l'),
            ("seqmax", 'l'),
            ("seqmin", 'l'),
            ("seqcache", 'l'),
            ("seqcycle", 'b'),
        ],
    ),
    (
        "pg_stat_user_tables",
        &[
            ("relid", 'i'),
            ("schemaname", 't'),
            ("relname", 't'),
            ("n_live_tup", 'l'),
            ("n_dead_tup", 'l'),
        ],
    ),
    (
        "pg_statistic_ext",
        &[
            ("oid", 'i'),
            ("stxrelid", 'i'),
            ("stxname", 't'),
            ("stxnamespace", 'i'),
            ("stxowner", 'i'),
            ("stxkind", 't'),
        ],
    ),
    (
        "pg_tablespace",
        &[("oid", 'i'), ("spcname", 't'), ("spcowner", 'i')],
    ),
    (
        "pg_trigger",
        &[
            ("oid", 'i'),
            ("tgrelid", 'i'),
            ("tgname", 't'),
            ("tgfoid", 'i'),
            ("tgtype", 's'),
            ("tgenabled", 't'),
            ("tgisinternal", 'b'),
        ],
    ),
    (
        "key_column_usage",
        &[
            ("constraint_catalog", 't'),
            ("constraint_schema", 't'),
            ("constraint_name", 't'),
            ("table_catalog", 't'),
            ("table_schema", 't'),
            ("table_name", 't'),
            ("column_name", 't'),
            ("ordinal_position", 'i'),
            ("position_in_unique_constraint", 'i'),
        ],
    ),
    (
        "table_constraints",
        &[
            ("constraint_catalog", 't'),
            ("constraint_schema", 't'),
            ("constraint_name", 't'),
            ("table_catalog", 't'),
            ("table_schema", 't'),
            ("table_name", 't'),
            ("constraint_type", 't'),
            ("is_deferrable", 't'),
            ("initially_deferred", 't'),
            ("enforced", 't'),
            ("nulls_distinct", 't'),
        ],
    ),
    (
        "referential_constraints",
        &[
            ("constraint_catalog", 't'),
            ("constraint_schema", 't'),
            ("constraint_name", 't'),
            ("unique_constraint_catalog", 't'),
            ("unique_constraint_schema", 't'),
            ("unique_constraint_name", 't'),
            ("match_option", 't'),
            ("update_rule", 't'),
            ("delete_rule", 't'),
        ],
    ),
    (
        "constraint_column_usage",
        &[
            ("table_catalog", 't'),
            ("table_schema", 't'),
            ("table_name", 't'),
            ("column_name", 't'),
            ("constraint_catalog", 't'),
            ("constraint_schema", 't'),
            ("constraint_name", 't'),
        ],
    ),
    (
        "character_sets",
        &[
            ("character_set_catalog", 't'),
            ("character_set_schema", 't'),
            ("character_set_name", 't'),
            ("character_repertoire", 't'),
            ("form_of_use", 't'),
            ("default_collate_catalog", 't'),
            ("default_collate_schema", 't'),
            ("default_collate_name", 't'),
        ],
    ),
];

/// The tables of `information_schema` clients read that DataFusion's does not
/// have: constraints (a lake declares none) and character sets. They are
/// [`EMPTY`] catalogs in `pg_catalog`, where `information_schema.X` is read.
pub const INFORMATION_SCHEMA_EXTRAS: [&str; 5] = [
    "key_column_usage",
    "table_constraints",
    "referential_constraints",
    "constraint_column_usage",
    "character_sets",
];

/// The schema of one of the [`EMPTY`] catalogs.
pub fn schema(columns: &[(&str, char)]) -> datafusion::arrow::datatypes::SchemaRef {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let fields = columns.iter().map(|(name, t)| {
        let t = match t {
            'i' => DataType::Int32,
            's' => DataType::Int16,
            'l' => DataType::Int64,
            'b' => DataType::Boolean,
            _ => DataType::Utf8,
        };
        Field::new(*name, t, true)
    });
    std::sync::Arc::new(Schema::new(fields.collect::<Vec<_>>()))
}

/// Prepares a statement's reads of `pg_catalog`: an unqualified name of one
/// of its `tables` (not a `WITH` query's) means the catalog's, as PostgreSQL's
/// search path always starts with `pg_catalog`; then the reads of [`EMPTY`]
/// catalogs are answered (see the module documentation). `is_aggregate` tells
/// an aggregate function by name.
pub fn rewrite(statement: &mut Statement, tables: &[&str], is_aggregate: &dyn Fn(&str) -> bool) {
    qualify(statement, tables);
    if !names_catalog(statement) {
        return;
    }
    let _ = statement.visit(&mut Rewriter { is_aggregate });
}

fn qualify(statement: &mut Statement, tables: &[&str]) {
    use datafusion::sql::sqlparser::ast::{Ident, ObjectNamePart};
    let mut ctes = HashSet::new();
    struct Ctes<'a>(&'a mut HashSet<String>);
    impl Visitor for Ctes<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.0.insert(cte.alias.name.value.to_ascii_lowercase());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = Visit::visit(&*statement, &mut Ctes(&mut ctes));
    let _ = datafusion::sql::sqlparser::ast::visit_relations_mut(statement, |name| {
        if let [schema, table] = name.0.as_mut_slice()
            && schema
                .as_ident()
                .is_some_and(|s| s.value.eq_ignore_ascii_case("information_schema"))
            && let Some(t) = table.as_ident()
            && INFORMATION_SCHEMA_EXTRAS.contains(&t.value.to_ascii_lowercase().as_str())
        {
            *table = ObjectNamePart::Identifier(Ident::new(t.value.to_ascii_lowercase()));
            *schema = ObjectNamePart::Identifier(Ident::new(PG_CATALOG));
        }
        if let [only] = name.0.as_slice()
            && let Some(ident) = only.as_ident()
        {
            let lower = ident.value.to_ascii_lowercase();
            if tables.contains(&lower.as_str()) && !ctes.contains(&lower) {
                name.0
                    .insert(0, ObjectNamePart::Identifier(Ident::new(PG_CATALOG)));
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether `statement` reads `pg_catalog` at all (else nothing here applies).
fn names_catalog(statement: &Statement) -> bool {
    datafusion::sql::sqlparser::ast::visit_relations(statement, |name| {
        let schema = name.0.iter().rev().nth(1).and_then(|p| p.as_ident());
        if schema.is_some_and(|s| s.value.eq_ignore_ascii_case(PG_CATALOG)) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// `pg_catalog.X` or `catalog.pg_catalog.X` with `X` in [`EMPTY`].
fn is_empty_catalog(name: &ObjectName) -> bool {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
        .collect::<Option<_>>()
        .unwrap_or_default();
    match parts.as_slice() {
        [schema, table] | [_, schema, table] => {
            schema == PG_CATALOG && EMPTY.iter().any(|(name, _)| name == table)
        }
        _ => false,
    }
}

struct Rewriter<'a> {
    is_aggregate: &'a dyn Fn(&str) -> bool,
}

impl Rewriter<'_> {
    fn query_is_empty(&self, query: &Query) -> bool {
        self.set_is_empty(&query.body)
    }

    fn set_is_empty(&self, set: &SetExpr) -> bool {
        match set {
            SetExpr::Select(select) => self.select_is_empty(select),
            SetExpr::Query(query) => self.query_is_empty(query),
            SetExpr::SetOperation {
                op, left, right, ..
            } => match op {
                SetOperator::Union => self.set_is_empty(left) && self.set_is_empty(right),
                SetOperator::Intersect => self.set_is_empty(left) || self.set_is_empty(right),
                SetOperator::Except | SetOperator::Minus => self.set_is_empty(left),
            },
            _ => false,
        }
    }

    fn select_is_empty(&self, select: &Select) -> bool {
        let grouped = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => !exprs.is_empty() && modifiers.is_empty(),
            GroupByExpr::All(_) => false,
        };
        // an aggregate without grouping makes a row out of no input
        if select.having.is_some() || (!grouped && self.aggregates(&select.projection)) {
            return false;
        }
        if matches!(&select.selection, Some(Expr::Value(v)) if v.value == Value::Boolean(false)) {
            return true;
        }
        select.from.iter().any(|t| self.joined_is_empty(t))
    }

    /// Whether no row can come out of `FROM a JOIN b …`.
    fn joined_is_empty(&self, table: &TableWithJoins) -> bool {
        let mut empty = self.factor_is_empty(&table.relation);
        for join in &table.joins {
            let right = self.factor_is_empty(&join.relation);
            empty = match &join.join_operator {
                JoinOperator::Join(_)
                | JoinOperator::Inner(_)
                | JoinOperator::CrossJoin(_)
                | JoinOperator::StraightJoin(_)
                | JoinOperator::Semi(_)
                | JoinOperator::LeftSemi(_)
                | JoinOperator::RightSemi(_)
                | JoinOperator::CrossApply => empty || right,
                JoinOperator::Left(_)
                | JoinOperator::LeftOuter(_)
                | JoinOperator::Anti(_)
                | JoinOperator::LeftAnti(_)
                | JoinOperator::OuterApply => empty,
                JoinOperator::Right(_)
                | JoinOperator::RightOuter(_)
                | JoinOperator::RightAnti(_) => right,
                JoinOperator::FullOuter(_) => empty && right,
                _ => false,
            };
        }
        empty
    }

    fn factor_is_empty(&self, factor: &TableFactor) -> bool {
        match factor {
            TableFactor::Table { name, args, .. } => args.is_none() && is_empty_catalog(name),
            TableFactor::Derived { subquery, .. } => self.query_is_empty(subquery),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.joined_is_empty(table_with_joins),
            _ => false,
        }
    }

    /// Whether the projection calls an aggregate function (not counting those
    /// inside subqueries, nor window functions).
    fn aggregates(&self, projection: &[SelectItem]) -> bool {
        struct Finder<'a> {
            is_aggregate: &'a dyn Fn(&str) -> bool,
            depth: usize,
        }
        impl Visitor for Finder<'_> {
            type Break = ();
            fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
                self.depth += 1;
                ControlFlow::Continue(())
            }
            fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
                self.depth -= 1;
                ControlFlow::Continue(())
            }
            fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
                if let Expr::Function(f) = expr {
                    let last = f
                        .name
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .map(|i| i.value.to_ascii_lowercase())
                        .unwrap_or_default();
                    if self.depth == 0 && f.over.is_none() && (self.is_aggregate)(&last) {
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut finder = Finder {
            is_aggregate: self.is_aggregate,
            depth: 0,
        };
        projection
            .iter()
            .any(|item| Visit::visit(item, &mut finder).is_break())
    }
}

/// The column names a query's output has, from its leftmost `SELECT`; `None`
/// when it selects `*`.
fn output_names(set: &SetExpr) -> Option<Vec<String>> {
    match set {
        SetExpr::Select(select) => {
            let mut seen = HashSet::new();
            select
                .projection
                .iter()
                .map(|item| {
                    let name = match item {
                        SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                        SelectItem::UnnamedExpr(expr) => expr_name(expr),
                        _ => return None,
                    };
                    // DataFusion wants distinct names; PostgreSQL would repeat one
                    let mut unique = name.clone();
                    let mut n = 1;
                    while !seen.insert(unique.clone()) {
                        n += 1;
                        unique = format!("{name}_{n}");
                    }
                    Some(unique)
                })
                .collect()
        }
        SetExpr::Query(query) => output_names(&query.body),
        SetExpr::SetOperation { left, .. } => output_names(left),
        _ => None,
    }
}

/// The name PostgreSQL gives an unnamed output column.
fn expr_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map(|i| i.value.clone()).unwrap_or_default()
        }
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.clone())
            .unwrap_or_else(|| "?column?".into()),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => expr_name(expr),
        Expr::Case { .. } => "case".into(),
        _ => "?column?".into(),
    }
}

/// `SELECT CAST(NULL AS VARCHAR) AS "a", … WHERE false`
fn empty_select(names: &[String]) -> Option<SetExpr> {
    let columns = names
        .iter()
        .map(|n| format!("CAST(NULL AS VARCHAR) AS \"{}\"", n.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {columns} WHERE false");
    let mut statements = Parser::parse_sql(&GenericDialect {}, &sql).ok()?;
    match statements.pop()? {
        Statement::Query(query) => Some(*query.body),
        _ => None,
    }
}

fn boolean(value: bool) -> Expr {
    Expr::Value(Value::Boolean(value).into())
}

/// The catalogs whose `oid` is a key: one row at most has a given `oid`.
const KEYED_BY_OID: &[&str] = &[
    "pg_am",
    "pg_class",
    "pg_database",
    "pg_namespace",
    "pg_proc",
    "pg_type",
];

impl Rewriter<'_> {
    /// A scalar subquery that looks one row up by key — `(SELECT x FROM
    /// pg_catalog.pg_type t WHERE t.oid = a.atttypid …)`, as SQLAlchemy's
    /// reflection writes — returns at most one row; DataFusion plans a
    /// correlated scalar subquery only when it aggregates, so its value is
    /// wrapped in `first_value(…)`, which changes nothing for one row or none.
    fn aggregate_key_lookup(&self, query: &mut Query) {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return;
        };
        let [table] = select.from.as_slice() else {
            return;
        };
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = &table.relation
        else {
            return;
        };
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
            .collect();
        let keyed = match parts.as_slice() {
            [schema, t] | [_, schema, t] => {
                schema == PG_CATALOG && KEYED_BY_OID.contains(&t.as_str())
            }
            _ => false,
        };
        let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
        if !keyed
            || !table.joins.is_empty()
            || grouped
            || select.having.is_some()
            || select.projection.len() != 1
            || self.aggregates(&select.projection)
        {
            return;
        }
        let qualifier = alias
            .as_ref()
            .map(|a| a.name.value.to_ascii_lowercase())
            .or_else(|| parts.last().cloned())
            .unwrap_or_default();
        let is_key = |e: &Expr| match e {
            Expr::CompoundIdentifier(ids) => {
                let ids: Vec<String> = ids.iter().map(|i| i.value.to_ascii_lowercase()).collect();
                ids.last().map(String::as_str) == Some("oid")
                    && ids.len() >= 2
                    && ids[ids.len() - 2] == qualifier
            }
            _ => false,
        };
        // a conjunct of the WHERE clause: `key = …` or `… = key`
        fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
            match e {
                Expr::BinaryOp {
                    left,
                    op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
                    right,
                } => {
                    conjuncts(left, out);
                    conjuncts(right, out);
                }
                Expr::Nested(inner) => conjuncts(inner, out),
                other => out.push(other.clone()),
            }
        }
        let mut all = vec![];
        if let Some(selection) = &select.selection {
            conjuncts(selection, &mut all);
        }
        let by_key = all.iter().any(|c| {
            matches!(c, Expr::BinaryOp { left, op: datafusion::sql::sqlparser::ast::BinaryOperator::Eq, right }
                if is_key(left) || is_key(right))
        });
        if !by_key {
            return;
        }
        let item = &mut select.projection[0];
        let value = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return,
        };
        let wrapped = Parser::new(&GenericDialect {})
            .try_with_sql(&format!("first_value({value})"))
            .and_then(|mut p| p.parse_expr());
        if let Ok(wrapped) = wrapped {
            *value = wrapped;
        }
    }

    /// Replaces the empty `SELECT`s among a set operation's branches.
    fn empty_branches(&self, set: &mut SetExpr) {
        if let SetExpr::SetOperation { left, right, .. } = set {
            for branch in [left, right] {
                if matches!(branch.as_ref(), SetExpr::Select(_)) && self.set_is_empty(branch) {
                    if let Some(empty) = output_names(branch).as_deref().and_then(empty_select) {
                        **branch = empty;
                    }
                } else {
                    self.empty_branches(branch);
                }
            }
        }
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.empty_branches(&mut query.body);
        if self.query_is_empty(query) {
            let names = output_names(&query.body);
            if let Some(body) = names.as_deref().and_then(empty_select) {
                *query.body = body;
                query.order_by = None;
                query.with = None;
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // before the subquery inside is itself answered (`NULL`)
        let answer = match expr {
            Expr::AnyOp { right, .. } if matches!(right.as_ref(), Expr::Subquery(q) if self.query_is_empty(q)) => {
                boolean(false)
            }
            Expr::AllOp { right, .. } if matches!(right.as_ref(), Expr::Subquery(q) if self.query_is_empty(q)) => {
                boolean(true)
            }
            _ => return ControlFlow::Continue(()),
        };
        *expr = answer;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Subquery(q) = expr
            && !self.query_is_empty(q)
        {
            self.aggregate_key_lookup(q);
            return ControlFlow::Continue(());
        }
        let answer = match expr {
            Expr::Subquery(q) if self.query_is_empty(q) => Expr::Value(Value::Null.into()),
            Expr::Exists { subquery, negated } if self.query_is_empty(subquery) => {
                boolean(*negated)
            }
            Expr::InSubquery {
                subquery, negated, ..
            } if self.query_is_empty(subquery) => boolean(*negated),
            _ => return ControlFlow::Continue(()),
        };
        *expr = answer;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut statement, &["pg_index", "pg_class"], &|name| {
            ["count", "max", "string_agg", "array_agg"].contains(&name)
        });
        statement.to_string()
    }

    #[test]
    fn scalar_subquery_over_an_empty_catalog_is_null() {
        let out = rewritten(
            "SELECT a.attname, (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) \
             FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND a.atthasdef), \
             (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t \
             WHERE c.oid = a.attcollation) AS attcollation FROM pg_catalog.pg_attribute a",
        );
        assert_eq!(
            out,
            "SELECT a.attname, NULL, NULL AS attcollation FROM pg_catalog.pg_attribute a"
        );
    }

    #[test]
    fn empty_queries_keep_their_column_names() {
        let out = rewritten(
            "SELECT pol.polname, pol.polpermissive, CASE WHEN pol.polroles = '{0}' THEN NULL \
             ELSE pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles \
             where oid = any (pol.polroles) order by 1),',') END, \
             pg_catalog.pg_get_expr(pol.polqual, pol.polrelid) \
             FROM pg_catalog.pg_policy pol WHERE pol.polrelid = '16385' ORDER BY 1",
        );
        assert_eq!(
            out,
            "SELECT CAST(NULL AS VARCHAR) AS \"polname\", CAST(NULL AS VARCHAR) AS \
             \"polpermissive\", CAST(NULL AS VARCHAR) AS \"case\", CAST(NULL AS VARCHAR) AS \
             \"pg_get_expr\" WHERE false"
        );
    }

    #[test]
    fn unions_intersections_and_joins() {
        // both branches empty
        let out = rewritten(
            "SELECT pubname, NULL, NULL FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_class c \
             ON true UNION SELECT pubname, NULL, NULL FROM pg_catalog.pg_publication p ORDER BY 1",
        );
        assert!(out.ends_with("WHERE false"), "{out}");
        // one branch not empty: the union stands
        let out = rewritten(
            "SELECT relname FROM pg_catalog.pg_class UNION SELECT collname FROM pg_catalog.pg_collation",
        );
        assert!(
            out.starts_with("SELECT relname FROM pg_catalog.pg_class UNION SELECT CAST(NULL"),
            "{out}"
        );
        // a left join with an empty catalog keeps the left rows
        let out = rewritten(
            "SELECT c.relname, i.inhparent FROM pg_catalog.pg_class c \
             LEFT JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid",
        );
        assert!(out.contains("LEFT JOIN pg_catalog.pg_inherits"), "{out}");
        // … and an inner join, or the preserved side of a right join, does not
        for join in ["JOIN", "CROSS JOIN", "INNER JOIN"] {
            let on = if join == "CROSS JOIN" { "" } else { " ON true" };
            let out = rewritten(&format!(
                "SELECT c.relname FROM pg_catalog.pg_class c {join} pg_catalog.pg_index i{on}"
            ));
            assert!(out.ends_with("WHERE false"), "{join}: {out}");
        }
        let out = rewritten(
            "SELECT c.relname FROM pg_catalog.pg_index i RIGHT JOIN pg_catalog.pg_class c ON true",
        );
        assert!(out.contains("RIGHT JOIN"), "{out}");
    }

    #[test]
    fn aggregates_make_a_row_out_of_nothing() {
        for sql in [
            "SELECT count(*) FROM pg_catalog.pg_index",
            "SELECT max(indrelid) FROM pg_catalog.pg_index HAVING true",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
        // grouped: no group, no row
        assert!(
            rewritten("SELECT indrelid, count(*) FROM pg_catalog.pg_index GROUP BY indrelid")
                .ends_with("WHERE false")
        );
        // a window function is not an aggregate
        assert!(
            rewritten("SELECT count(*) OVER () FROM pg_catalog.pg_index").ends_with("WHERE false")
        );
        // an aggregate inside a subquery does not count for the outer query
        assert!(rewritten(
            "SELECT (SELECT string_agg(relname, ',') FROM pg_catalog.pg_class) FROM pg_catalog.pg_trigger"
        )
        .ends_with("WHERE false"));
    }

    #[test]
    fn a_scalar_lookup_by_oid_is_aggregated() {
        assert_eq!(
            rewritten(
                "SELECT (SELECT t.typcollation FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) \
                 FROM pg_catalog.pg_attribute a"
            ),
            "SELECT (SELECT first_value(t.typcollation) FROM pg_catalog.pg_type t WHERE t.oid = \
             a.atttypid) FROM pg_catalog.pg_attribute a"
        );
        // not by a key, or not a catalog: left to the planner
        for sql in [
            "SELECT (SELECT t.typname FROM pg_catalog.pg_type t WHERE t.typlen = a.attlen) FROM x a",
            "SELECT (SELECT t.x FROM traffic.t t WHERE t.oid = a.y) FROM x a",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }

    #[test]
    fn predicates_over_empty_subqueries() {
        let out = rewritten(
            "SELECT relname FROM pg_catalog.pg_class c WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_index i \
             WHERE i.indrelid = c.oid) OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index) \
             OR c.oid IN (SELECT inhrelid FROM pg_catalog.pg_inherits) \
             OR c.oid = ANY (SELECT conrelid FROM pg_catalog.pg_constraint) \
             OR c.oid <> ALL (SELECT conrelid FROM pg_catalog.pg_constraint)",
        );
        assert_eq!(
            out,
            "SELECT relname FROM pg_catalog.pg_class c WHERE false OR true OR false OR false OR true"
        );
    }

    #[test]
    fn only_schema_qualified_empty_catalogs_and_not_wildcards() {
        for sql in [
            "SELECT * FROM pg_catalog.pg_index",
            "SELECT relname FROM pg_catalog.pg_class",
            "SELECT indrelid FROM traffic.pg_index",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
        assert!(
            rewritten("SELECT indrelid FROM citylake.pg_catalog.pg_index").ends_with("WHERE false")
        );
    }

    #[test]
    fn unqualified_catalog_names_are_the_catalogs_unless_a_with_query() {
        // PostgreSQL searches pg_catalog first
        assert!(rewritten("SELECT indrelid FROM pg_index").ends_with("WHERE false"));
        assert_eq!(
            rewritten("SELECT relname FROM pg_class"),
            "SELECT relname FROM pg_catalog.pg_class"
        );
        let sql = "WITH pg_index AS (SELECT 1 AS indrelid) SELECT indrelid FROM pg_index";
        assert_eq!(rewritten(sql), sql);
        assert_eq!(
            rewritten("SELECT x FROM traffic.pg_class"),
            "SELECT x FROM traffic.pg_class"
        );
    }
}
