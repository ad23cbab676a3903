//! Personal values kept out of what is recorded about a request.
//!
//! The audit trail keeps each request's text and bound parameters, and
//! `system.queries` and the server log show them. A query that looks a person
//! up — `WHERE caller_phone = '13800000000'` — would leave the phone number in
//! a trail that is append-only and sealed, where it outlives an erasure of that
//! person's records (`citylake privacy erase`). [`Redactor`] rewrites what is
//! recorded first: every literal in an expression that uses a column the
//! catalog tags as personal (`pii`) becomes `'sha256:<hex>'`, the SHA-256 of
//! its text. That is the hash the erasure itself records, so an auditor can
//! still find the requests about one person (hash the value, search the trail)
//! without the trail holding the value.
//!
//! The rule, on the parsed statement:
//! - an expression *uses* a personal column when an identifier in it names one
//!   (its last part), or names an alias given to an expression that uses one;
//! - every literal under the smallest expression that uses a personal column
//!   and is not a connective (`AND`, `OR`, `NOT`, parentheses, `EXISTS`, a
//!   subquery) is hashed: `caller_phone = '…'`, `caller_phone IN (…)`,
//!   `substr(caller_phone, 1, 3) = '…'`, `caller_phone LIKE '…'`; and a
//!   placeholder there (`$1`) marks that parameter personal;
//! - a statement other than a query or `EXPLAIN` (DML and DDL are refused, but
//!   recorded) that names a personal column has all its literals hashed;
//! - a text that names a personal column and does not parse has every string
//!   and number token hashed; one that cannot even be tokenized is not kept.
//!
//! Texts that name no personal column are recorded unchanged, without being
//! parsed. Error messages are scrubbed of the values hashed in their request.
//! Known limits: column aliases given in a table alias or a CTE's column list
//! (`AS t(a, b)`) are not followed, and a short value (an 11-digit phone
//! number) can be found from its plain SHA-256 by trying them all — the hash
//! keeps the value out of the text, not out of reach of a determined holder of
//! the trail, whose access the policy (`audit_log`) already restricts.

use std::collections::{BTreeSet, HashSet};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Query, SelectItem, SetExpr, Statement, Value, ValueWithSpan, Visit,
    VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use sha2::Digest;

/// What a hashed value is recorded as: this prefix and the hex SHA-256.
pub const HASH_PREFIX: &str = "sha256:";

/// The SHA-256 of `text`, hex.
pub fn hash_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `text` as recorded in place of a personal value.
fn hashed(text: &str) -> String {
    format!("{HASH_PREFIX}{}", hash_hex(text))
}

/// Whether `text` is already a recorded hash (redaction is idempotent).
fn is_hashed(text: &str) -> bool {
    text.strip_prefix(HASH_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Which bound parameters are personal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Personal {
    #[default]
    None,
    /// `$n`, numbered from 1.
    Numbered(BTreeSet<usize>),
    /// All of them (a placeholder without a number, or a text that could not
    /// be read).
    All,
}

impl Personal {
    fn add(&mut self, placeholder: &str) {
        let n = placeholder
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok());
        match (n, &mut *self) {
            (_, Personal::All) => {}
            (Some(n), Personal::Numbered(set)) => {
                set.insert(n);
            }
            (Some(n), Personal::None) => *self = Personal::Numbered(BTreeSet::from([n])),
            (None, _) => *self = Personal::All,
        }
    }
}

/// A request as it may be recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redacted {
    /// The request's text, personal values hashed.
    pub request: String,
    /// The bound parameters' text, personal ones hashed.
    pub parameters: String,
    /// The values hashed (to scrub from the request's error message).
    pub(crate) values: Vec<String>,
}

/// Hashes the personal values of request texts (see the module's docs).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Personal column names, lower case.
    columns: HashSet<String>,
}

impl Redactor {
    /// A redactor for the columns named `columns`.
    pub fn new<S: AsRef<str>>(columns: impl IntoIterator<Item = S>) -> Self {
        Self {
            columns: columns
                .into_iter()
                .map(|c| c.as_ref().to_lowercase())
                .collect(),
        }
    }

    /// A redactor for the columns `catalog` tags as personal, in any dataset.
    pub fn for_catalog(catalog: &citylake_catalog::CatalogSpec) -> Self {
        Self::new(
            catalog
                .datasets
                .iter()
                .flat_map(|d| d.columns.iter())
                .filter(|c| c.pii.is_some())
                .map(|c| c.name.as_str()),
        )
    }

    /// Whether `text` may name a personal column (a cheap test on the text).
    fn may_name(&self, text: &str) -> bool {
        if self.columns.is_empty() {
            return false;
        }
        let lower = text.to_lowercase();
        self.columns.iter().any(|c| lower.contains(c.as_str()))
    }

    /// `request` and its bound `parameters` (JSON, keyed `$1`, `$2`, … where
    /// the front end knows the numbers) as they may be recorded.
    pub fn redact(&self, request: &str, parameters: &str) -> Redacted {
        if !self.may_name(request) {
            return Redacted {
                request: request.to_string(),
                parameters: parameters.to_string(),
                values: vec![],
            };
        }
        let mut found = Found::default();
        let request = match Parser::parse_sql(&GenericDialect {}, request) {
            Ok(mut statements) => {
                self.statements(&mut statements, &mut found);
                if found.values.is_empty() {
                    request.to_string()
                } else {
                    statements
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            }
            Err(_) => self.tokens(request, &mut found),
        };
        let parameters = redact_parameters(parameters, &found.personal, &mut found.values);
        Redacted {
            request,
            parameters,
            values: found.values,
        }
    }

    /// `text` (an error message about a request redacted as `redacted`) with
    /// the values hashed there hashed here too.
    pub fn scrub(&self, text: &str, redacted: &Redacted) -> String {
        scrub(text, &redacted.values)
    }

    fn statements(&self, statements: &mut [Statement], found: &mut Found) {
        let mut columns = self.columns.clone();
        aliases(statements, &mut columns);
        for statement in statements {
            let precise = matches!(
                statement,
                Statement::Query(_) | Statement::Explain { .. } | Statement::ExplainTable { .. }
            );
            if precise {
                let _ = VisitMut::visit(
                    statement,
                    &mut Scopes {
                        columns: &columns,
                        found,
                    },
                );
            } else if self.may_name(&statement.to_string()) {
                let _ = VisitMut::visit(statement, &mut HashValues { found });
            }
        }
    }

    /// A text that does not parse: if a word of it names a personal column,
    /// every string and number in it hashed.
    fn tokens(&self, request: &str, found: &mut Found) -> String {
        let dialect = GenericDialect {};
        let Ok(mut tokens) = Tokenizer::new(&dialect, request).tokenize() else {
            found.personal = Personal::All;
            return format!(
                "[not recorded: the request names a personal column and cannot be read; {} bytes]",
                request.len()
            );
        };
        let names = tokens
            .iter()
            .any(|t| matches!(t, Token::Word(w) if self.columns.contains(&w.value.to_lowercase())));
        if !names {
            return request.to_string();
        }
        found.personal = Personal::All;
        for token in &mut tokens {
            let text = match &*token {
                Token::Number(n, _) => n.clone(),
                Token::SingleQuotedString(s) => s.clone(),
                Token::Word(_) | Token::Whitespace(_) | Token::Placeholder(_) => continue,
                // any other literal (`E'…'`, `X'…'`, `$$…$$`, …), quotes and all
                other => {
                    let shown = other.to_string();
                    if !(shown.contains('\'') || shown.contains('"') || shown.starts_with('$')) {
                        continue;
                    }
                    shown
                }
            };
            if is_hashed(&text) {
                continue;
            }
            *token = Token::SingleQuotedString(hashed(&text));
            found.values.push(text);
        }
        tokens.iter().map(ToString::to_string).collect()
    }
}

/// What redaction found in a request.
#[derive(Debug, Default)]
struct Found {
    values: Vec<String>,
    personal: Personal,
}

/// Adds to `columns` the aliases given (in a select list) to expressions that
/// use one of them, until no more are found.
fn aliases(statements: &[Statement], columns: &mut HashSet<String>) {
    struct Aliases<'a> {
        columns: &'a HashSet<String>,
        new: Vec<String>,
    }
    impl Aliases<'_> {
        fn set(&mut self, body: &SetExpr) {
            match body {
                SetExpr::Select(select) => {
                    for item in &select.projection {
                        if let SelectItem::ExprWithAlias { expr, alias } = item
                            && uses(expr, self.columns)
                            && !self.columns.contains(&alias.value.to_lowercase())
                        {
                            self.new.push(alias.value.to_lowercase());
                        }
                    }
                }
                SetExpr::SetOperation { left, right, .. } => {
                    self.set(left);
                    self.set(right);
                }
                _ => {}
            }
        }
    }
    impl Visitor for Aliases<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            self.set(&query.body);
            ControlFlow::Continue(())
        }
    }
    // each round follows one more level of aliasing; a query has few
    for _ in 0..16 {
        let mut visitor = Aliases {
            columns,
            new: vec![],
        };
        for statement in statements {
            let _ = Visit::visit(statement, &mut visitor);
        }
        if visitor.new.is_empty() {
            return;
        }
        columns.extend(visitor.new);
    }
}

/// Whether an identifier in `expr` names one of `columns`.
fn uses(expr: &Expr, columns: &HashSet<String>) -> bool {
    struct Uses<'a>(&'a HashSet<String>);
    impl Visitor for Uses<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            let name = match expr {
                Expr::Identifier(id) => Some(&id.value),
                Expr::CompoundIdentifier(parts) => parts.last().map(|p| &p.value),
                _ => None,
            };
            match name {
                Some(n) if self.0.contains(&n.to_lowercase()) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    Visit::visit(expr, &mut Uses(columns)).is_break()
}

/// An expression that only joins or wraps others: the literals hashed are
/// those of the smallest expression below it that uses a personal column.
fn is_connective(expr: &Expr) -> bool {
    match expr {
        Expr::BinaryOp { op, .. } => matches!(
            op,
            BinaryOperator::And | BinaryOperator::Or | BinaryOperator::Xor
        ),
        Expr::UnaryOp { .. }
        | Expr::Nested(_)
        | Expr::Exists { .. }
        | Expr::Subquery(_)
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_) => true,
        _ => false,
    }
}

/// Hashes the literals of every expression that uses a personal column.
struct Scopes<'a> {
    columns: &'a HashSet<String>,
    found: &'a mut Found,
}

impl VisitorMut for Scopes<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if !is_connective(expr) && uses(expr, self.columns) {
            let _ = VisitMut::visit(expr, &mut HashValues { found: self.found });
        }
        ControlFlow::Continue(())
    }
}

/// Hashes every literal it visits; marks every placeholder personal.
struct HashValues<'a> {
    found: &'a mut Found,
}

impl VisitorMut for HashValues<'_> {
    type Break = ();
    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        let text = match &value.value {
            Value::Null | Value::Boolean(_) => return ControlFlow::Continue(()),
            Value::Placeholder(p) => {
                self.found.personal.add(p);
                return ControlFlow::Continue(());
            }
            Value::Number(n, _) => n.to_string(),
            Value::DollarQuotedString(s) => s.value.clone(),
            other => match other.clone().into_string() {
                Some(s) => s,
                None => other.to_string(),
            },
        };
        if !is_hashed(&text) {
            value.value = Value::SingleQuotedString(hashed(&text));
            self.found.values.push(text);
        }
        ControlFlow::Continue(())
    }
}

/// `parameters` (JSON: an object or an array of objects, keyed `$n` where the
/// front end numbers them) with the personal ones hashed; other keys, when
/// any parameter is personal, are all hashed.
fn redact_parameters(parameters: &str, personal: &Personal, values: &mut Vec<String>) -> String {
    if parameters.is_empty() || *personal == Personal::None {
        return parameters.to_string();
    }
    let Ok(mut json) = serde_json::from_str::<serde_json::Value>(parameters) else {
        return format!(
            "[not recorded: parameters bound to a personal column, {} bytes]",
            parameters.len()
        );
    };
    fn object(
        map: &mut serde_json::Map<String, serde_json::Value>,
        personal: &Personal,
        values: &mut Vec<String>,
    ) {
        for (key, value) in map.iter_mut() {
            let n = key.strip_prefix('$').and_then(|n| n.parse::<usize>().ok());
            let is_personal = match (personal, n) {
                (Personal::None, _) => false,
                (Personal::Numbered(set), Some(n)) => set.contains(&n),
                _ => true,
            };
            if !is_personal {
                continue;
            }
            let text = match &*value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) if is_hashed(s) => continue,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            *value = serde_json::Value::String(hashed(&text));
            values.push(text);
        }
    }
    match &mut json {
        serde_json::Value::Object(map) => object(map, personal, values),
        serde_json::Value::Array(rows) => {
            for row in rows {
                match row {
                    serde_json::Value::Object(map) => object(map, personal, values),
                    other => *other = serde_json::Value::String("[not recorded]".into()),
                }
            }
        }
        other => *other = serde_json::Value::String("[not recorded]".into()),
    }
    json.to_string()
}

/// `text` with each of `values` (four characters or more: shorter ones would
/// hash half the message) replaced by its hash.
pub(crate) fn scrub(text: &str, values: &[String]) -> String {
    let mut out = text.to_string();
    let mut values: Vec<&String> = values.iter().filter(|v| v.chars().count() >= 4).collect();
    // longest first, so a value containing another is replaced whole
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in values {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), &hashed(v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: &str = "13800138000";

    fn redactor() -> Redactor {
        Redactor::new(["caller_phone", "id_number"])
    }

    fn redact(sql: &str) -> Redacted {
        redactor().redact(sql, "")
    }

    fn assert_hidden(r: &Redacted) {
        assert!(!r.request.contains(PHONE), "{}", r.request);
        assert!(!r.parameters.contains(PHONE), "{}", r.parameters);
    }

    #[test]
    fn a_value_compared_with_a_personal_column_is_hashed_and_others_kept() {
        let r = redact(&format!(
            "SELECT case_id FROM hotline.cases WHERE caller_phone = '{PHONE}' AND district = 'Xihu'"
        ));
        assert_hidden(&r);
        assert!(r.request.contains(&hashed(PHONE)), "{}", r.request);
        assert!(r.request.contains("'Xihu'"), "{}", r.request);
        assert_eq!(r.values, vec![PHONE.to_string()]);
    }

    #[test]
    fn every_shape_of_use_is_covered() {
        for sql in [
            format!("SELECT 1 FROM t WHERE c.CALLER_PHONE = {PHONE}"),
            format!("SELECT 1 FROM t WHERE caller_phone IN ('x', '{PHONE}')"),
            format!("SELECT 1 FROM t WHERE caller_phone LIKE '{PHONE}%'"),
            format!("SELECT 1 FROM t WHERE substr(caller_phone, 1, 11) = '{PHONE}'"),
            format!("SELECT 1 FROM t WHERE caller_phone || '' = '{PHONE}'"),
            format!("SELECT 1 FROM t WHERE caller_phone BETWEEN '{PHONE}' AND '2'"),
            format!("SELECT 1 FROM t WHERE NOT (caller_phone <> '{PHONE}')"),
            format!("SELECT count(*) FILTER (WHERE caller_phone = '{PHONE}') FROM t"),
            format!("SELECT CASE WHEN caller_phone = '{PHONE}' THEN 1 END FROM t"),
            format!("SELECT 1 FROM t WHERE caller_phone IN (SELECT '{PHONE}')"),
            format!("SELECT 1 FROM t JOIN u ON t.caller_phone = '{PHONE}'"),
            format!("SELECT * FROM (SELECT caller_phone AS p FROM t) s WHERE s.p = '{PHONE}'"),
            format!(
                "WITH a AS (SELECT upper(caller_phone) AS q FROM t), b AS (SELECT q AS r FROM a) \
                 SELECT * FROM b WHERE r = '{PHONE}'"
            ),
            format!("EXPLAIN SELECT 1 FROM t WHERE caller_phone = '{PHONE}'"),
            format!("SELECT 1; SELECT 2 FROM t WHERE caller_phone = '{PHONE}'"),
            // DML (refused, but recorded)
            format!("INSERT INTO t (caller_phone) VALUES ('{PHONE}')"),
            format!("DELETE FROM t WHERE caller_phone = '{PHONE}'"),
            // does not parse, names the column
            format!("SELECT FROM WHERE caller_phone = '{PHONE}' ))"),
        ] {
            let r = redact(&sql);
            assert_hidden(&r);
            // the pattern `'…%'` is hashed whole
            assert!(r.request.contains(HASH_PREFIX), "{sql}\n→ {}", r.request);
        }
    }

    #[test]
    fn texts_that_name_no_personal_column_are_kept_as_sent() {
        for sql in [
            "select  district, count(*) from hotline.cases where district = 'Xihu' group by 1",
            "SELEC garbage '",
            "SELECT '13800138000' AS not_a_column_use",
        ] {
            assert_eq!(redact(sql).request, sql);
        }
        // an unreadable text that names one is not kept
        let r = redact(&format!("SELECT caller_phone = '{PHONE}"));
        assert_hidden(&r);
        assert!(r.request.starts_with("[not recorded"), "{}", r.request);
    }

    #[test]
    fn redaction_is_idempotent() {
        let once = redactor().redact(
            &format!("SELECT 1 FROM t WHERE caller_phone = '{PHONE}' AND id_number = $2"),
            &format!(r#"{{"$1":"Xihu","$2":"{PHONE}"}}"#),
        );
        let twice = redactor().redact(&once.request, &once.parameters);
        assert_eq!(once.request, twice.request);
        assert_eq!(once.parameters, twice.parameters);
        assert!(twice.values.is_empty());
    }

    #[test]
    fn parameters_bound_to_a_personal_column_are_hashed() {
        let sql = "SELECT 1 FROM t WHERE district = $1 AND caller_phone = $2";
        // Postgres: an object keyed $n
        let r = redactor().redact(sql, &format!(r#"{{"$1":"Xihu","$2":"{PHONE}"}}"#));
        assert_hidden(&r);
        assert!(r.parameters.contains("Xihu"), "{}", r.parameters);
        assert!(r.parameters.contains(&hashed(PHONE)), "{}", r.parameters);
        // Flight SQL: rows of objects; keys without numbers: all hashed
        let r = redactor().redact(sql, &format!(r#"[{{"a":"Xihu","b":{PHONE}}}]"#));
        assert_hidden(&r);
        assert!(!r.parameters.contains("Xihu"), "{}", r.parameters);
        // not JSON
        let r = redactor().redact(sql, PHONE);
        assert_hidden(&r);
        // no personal placeholder: as sent
        let r = redactor().redact(
            &format!("SELECT 1 FROM t WHERE district = $1 AND caller_phone = '{PHONE}'"),
            r#"{"$1":"Xihu"}"#,
        );
        assert_eq!(r.parameters, r#"{"$1":"Xihu"}"#);
    }

    #[test]
    fn error_messages_are_scrubbed_of_the_hashed_values() {
        let r = redact(&format!(
            "SELECT 1 FROM t WHERE caller_phone = '{PHONE}' + 1"
        ));
        let error = format!("Cannot cast string '{PHONE}' to Int64");
        let scrubbed = redactor().scrub(&error, &r);
        assert!(!scrubbed.contains(PHONE), "{scrubbed}");
        // but not of short values (the `1`)
        assert!(scrubbed.contains("Int64"), "{scrubbed}");
    }
}
