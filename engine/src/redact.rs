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
//! The rule is blunt on purpose (a red team took a finer one apart: values
//! joined to the column, renamed columns, errors quoting the data):
//! - a request is *personal* when its text names a personal column (anywhere,
//!   as a substring: also inside a quoted identifier), or when its plan uses
//!   one, through any alias, view or column list ([`plan_is_personal`]);
//! - a request whose plan was never judged (it failed before its plan was
//!   built, or is still being planned) is treated as personal: fail closed;
//! - in a personal request every literal and every bound parameter is hashed,
//!   and comments are dropped;
//! - the error message of a personal request that failed (outcome `error`:
//!   bad SQL, bad data) is withheld, its class kept (`Arrow error: Cast
//!   error: [withheld …]`): such a message may quote values from the data in
//!   any shape (`Cannot cast string '138…'`, a regular expression built from
//!   a name), so no pattern could find them all (red team). A refusal, a
//!   timeout, a limit or a cancellation says only what citylake wrote, and is
//!   kept with the request's values and any quoted value or run of five or
//!   more digits hashed;
//! - a text that does not parse has every string and number token hashed; one
//!   that cannot even be tokenized is not kept.
//!
//! Requests that are not personal are recorded exactly as sent, without being
//! parsed. Every hashed literal can still be checked by hashing a candidate
//! (`'Xihu'`). Known limit: a short value (an 11-digit phone number) can be
//! found from its plain SHA-256 by trying them all — the hash keeps the value
//! out of the text, not out of reach of a determined holder of the trail,
//! whose access the policy (`audit_log`) already restricts.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr as PlanExpr, LogicalPlan};
use datafusion::sql::sqlparser::ast::{Value, ValueWithSpan, VisitMut, VisitorMut};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// What a hashed value is recorded as: this prefix and the hex SHA-256.
pub const HASH_PREFIX: &str = "sha256:";

/// The SHA-256 of `text`, hex.
pub fn hash_hex(text: &str) -> String {
    crate::audit::sha256_hex(text.as_bytes())
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

/// A request as it may be recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redacted {
    /// The request's text, personal values hashed.
    pub request: String,
    /// The bound parameters' text, personal ones hashed.
    pub parameters: String,
    /// The values hashed (to scrub from the request's error message).
    pub(crate) values: Vec<String>,
    /// Whether the request is personal (its error is scrubbed of every value).
    pub(crate) personal: bool,
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

    /// Whether `name` is a personal column.
    pub fn is_personal(&self, name: &str) -> bool {
        self.columns.contains(&name.to_lowercase())
    }

    /// `request` and its bound `parameters` (JSON) as they may be recorded:
    /// hashed throughout when the text names a personal column.
    pub fn redact(&self, request: &str, parameters: &str) -> Redacted {
        if !self.may_name(request) {
            return Redacted {
                request: request.to_string(),
                parameters: parameters.to_string(),
                values: vec![],
                personal: false,
            };
        }
        self.redact_all(request, parameters)
    }

    /// `request` and its bound `parameters` with every literal and parameter
    /// hashed (a personal request).
    pub fn redact_all(&self, request: &str, parameters: &str) -> Redacted {
        let mut values = vec![];
        let request = match Parser::parse_sql(&GenericDialect {}, request) {
            Ok(mut statements) => {
                for statement in &mut statements {
                    let _ = VisitMut::visit(
                        statement,
                        &mut HashValues {
                            values: &mut values,
                        },
                    );
                }
                // rendered again: comments are gone
                statements
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            Err(_) => tokens(request, &mut values),
        };
        let request = quoted_identifiers(&request, &mut values);
        let parameters = redact_parameters(parameters, &mut values);
        Redacted {
            request,
            parameters,
            values,
            personal: true,
        }
    }

    /// `text`, the error message of a request redacted as `redacted` that
    /// ended as `outcome` (`error`, `refused`, …), as it may be recorded
    /// ([`recorded_error`]).
    pub fn scrub(&self, text: &str, redacted: &Redacted, outcome: &str) -> String {
        recorded_error(
            text,
            &redacted.values,
            redacted.personal,
            outcome == "error",
        )
    }
}

/// A text that does not parse, with every string and number in it hashed and
/// its comments dropped.
fn tokens(request: &str, values: &mut Vec<String>) -> String {
    let dialect = GenericDialect {};
    let Ok(mut tokens) = Tokenizer::new(&dialect, request).tokenize() else {
        return format!(
            "[not recorded: the request names a personal column and cannot be read; {} bytes]",
            request.len()
        );
    };
    for token in &mut tokens {
        let text = match &*token {
            Token::Number(n, _) => n.clone(),
            Token::SingleQuotedString(s) => s.clone(),
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_)) => {
                *token = Token::Whitespace(Whitespace::Space);
                continue;
            }
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
        values.push(text);
    }
    tokens.iter().map(ToString::to_string).collect()
}

/// `request` (the text of a personal request) with every quoted identifier
/// hashed: `caller_phone = "13800000000"` is a column name to SQL, a value to
/// whoever wrote it (red team). A text that cannot be tokenized is kept as it
/// is: it was rendered by the parser or [`tokens`] a moment ago.
fn quoted_identifiers(request: &str, values: &mut Vec<String>) -> String {
    let dialect = GenericDialect {};
    let Ok(mut tokens) = Tokenizer::new(&dialect, request).tokenize() else {
        return request.to_string();
    };
    let mut changed = false;
    for token in &mut tokens {
        if let Token::Word(w) = &*token
            && let Some(quote) = w.quote_style
            && !is_hashed(&w.value)
        {
            let value = w.value.clone();
            *token = Token::make_word(&hashed(&value), Some(quote));
            values.push(value);
            changed = true;
        }
    }
    if !changed {
        return request.to_string();
    }
    tokens.iter().map(ToString::to_string).collect()
}

/// Whether `plan` uses a personal column: a column reference named like one,
/// in any node or subquery, or in the plan of a view it reads.
pub fn plan_is_personal(plan: &LogicalPlan, redactor: &Redactor) -> bool {
    if redactor.columns.is_empty() {
        return false;
    }
    let mut personal = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source)
            && let Some(view) = provider.get_logical_plan()
            && plan_is_personal(&view, redactor)
        {
            personal = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let PlanExpr::Column(c) = e
                    && redactor.is_personal(&c.name)
                {
                    personal = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    personal
}

/// Hashes every literal it visits.
struct HashValues<'a> {
    values: &'a mut Vec<String>,
}

impl VisitorMut for HashValues<'_> {
    type Break = ();
    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        let text = match &value.value {
            Value::Null | Value::Boolean(_) | Value::Placeholder(_) => {
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
            self.values.push(text);
        }
        ControlFlow::Continue(())
    }
}

/// `parameters` (JSON: an object or an array of objects) with every value
/// hashed; a text that is not JSON is not kept.
fn redact_parameters(parameters: &str, values: &mut Vec<String>) -> String {
    if parameters.is_empty() {
        return String::new();
    }
    let Ok(mut json) = serde_json::from_str::<serde_json::Value>(parameters) else {
        return format!(
            "[not recorded: parameters of a personal request, {} bytes]",
            parameters.len()
        );
    };
    fn hash(value: &mut serde_json::Value, values: &mut Vec<String>) {
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) if is_hashed(s) => {}
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| hash(v, values)),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| hash(v, values)),
            other => {
                let text = match &*other {
                    serde_json::Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                *other = serde_json::Value::String(hashed(&text));
                values.push(text);
            }
        }
    }
    hash(&mut json, values);
    json.to_string()
}

/// The classes an error message may start with (`describe` in the error
/// module, and the libraries' own), kept when the rest is withheld.
const ERROR_CLASSES: [&str; 22] = [
    "SQL syntax error",
    "planning error",
    "schema error",
    "resources exhausted",
    "not supported",
    "execution error",
    "Arrow error",
    "Parquet error",
    "storage error",
    "I/O error",
    "Cast error",
    "Compute error",
    "Invalid argument error",
    "Parser error",
    "Divide by zero error",
    "Arithmetic overflow",
    "Json error",
    "External error",
    "Schema error",
    "Error during planning",
    "Execution error",
    "regex parse error",
];

/// What is recorded of `text`, the error message of a request whose hashed
/// values are `values`: for a personal request that `failed` (bad SQL, bad
/// data: a message from DataFusion or the libraries below), only its class,
/// the rest withheld; otherwise the message with `values` hashed and, for a
/// personal request, every quoted value and run of five or more digits.
pub fn recorded_error(text: &str, values: &[String], personal: bool, failed: bool) -> String {
    if !(personal && failed) || text.is_empty() {
        return scrub(text, values, personal);
    }
    // the classes it starts with, each followed by a colon
    let mut kept = 0;
    loop {
        let next = text[kept..].trim_start();
        let Some(class) = ERROR_CLASSES.iter().find(|c| {
            next.strip_prefix(**c)
                .is_some_and(|rest| rest.starts_with(':'))
        }) else {
            break;
        };
        kept = text.len() - next.len() + class.len() + 1;
    }
    if kept == 0 {
        WITHHELD.to_string()
    } else {
        format!("{} {WITHHELD}", &text[..kept])
    }
}

/// What stands for a withheld error message.
pub const WITHHELD: &str = "[message withheld: the request uses, or may use, a personal column, and the message may quote its values]";

/// `text` (an error message) with each of `values` (four characters or more:
/// shorter ones would hash half the message) replaced by its hash; for a
/// personal request also every single-quoted value and every run of five or
/// more digits, which may come from the data.
fn scrub(text: &str, values: &[String], personal: bool) -> String {
    let mut out = text.to_string();
    let mut values: Vec<&String> = values.iter().filter(|v| v.chars().count() >= 4).collect();
    // longest first, so a value containing another is replaced whole
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in values {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), &hashed(v));
        }
    }
    if !personal {
        return out;
    }
    let mut scrubbed = String::with_capacity(out.len());
    let mut rest = out.as_str();
    loop {
        // the next quoted value or digit run
        let quote = rest.find('\'');
        let digits = rest
            .char_indices()
            .find(|&(i, c)| {
                c.is_ascii_digit()
                    && rest[i..].chars().take_while(char::is_ascii_digit).count() >= 5
                    && !rest[..i].ends_with(|p: char| p.is_ascii_alphanumeric() || p == ':')
            })
            .map(|(i, _)| i);
        match (quote, digits) {
            (Some(q), d) if d.is_none_or(|d| q < d) => {
                let Some(len) = rest[q + 1..].find('\'') else {
                    // an apostrophe, not a quoted value
                    scrubbed.push_str(&rest[..=q]);
                    rest = &rest[q + 1..];
                    continue;
                };
                let value = &rest[q + 1..q + 1 + len];
                scrubbed.push_str(&rest[..q]);
                if is_hashed(value) {
                    scrubbed.push_str(&rest[q..q + len + 2]);
                } else {
                    scrubbed.push('\'');
                    scrubbed.push_str(&hashed(value));
                    scrubbed.push('\'');
                }
                rest = &rest[q + len + 2..];
            }
            (_, Some(d)) => {
                let len = rest[d..].chars().take_while(char::is_ascii_digit).count();
                scrubbed.push_str(&rest[..d]);
                scrubbed.push_str(&hashed(&rest[d..d + len]));
                rest = &rest[d + len..];
            }
            _ => {
                scrubbed.push_str(rest);
                break;
            }
        }
    }
    scrubbed
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
    fn a_request_naming_a_personal_column_has_every_literal_hashed() {
        let r = redact(&format!(
            "SELECT case_id FROM hotline.cases WHERE caller_phone = '{PHONE}' AND district = 'Xihu' -- {PHONE}"
        ));
        assert_hidden(&r);
        assert!(r.request.contains(&hashed(PHONE)), "{}", r.request);
        assert!(r.request.contains(&hashed("Xihu")), "{}", r.request);
        assert!(r.personal);
    }

    #[test]
    fn every_shape_of_use_is_covered() {
        for sql in [
            format!("SELECT 1 FROM t WHERE c.CALLER_PHONE = {PHONE}"),
            format!("SELECT 1 FROM t WHERE caller_phone LIKE '{PHONE}%'"),
            format!("SELECT 1 FROM t WHERE \"caller_phone\" = E'{PHONE}'"),
            format!("SELECT 1 FROM t WHERE caller_phone = $${PHONE}$$"),
            // the value joined to the column, not compared with it (red team)
            format!(
                "SELECT c.case_id FROM t c JOIN (SELECT '{PHONE}' AS caller_phone) v USING (caller_phone)"
            ),
            format!(
                "WITH x AS (SELECT '{PHONE}' AS v) SELECT 1 FROM t, x WHERE caller_phone = x.v"
            ),
            format!(
                "WITH x(p) AS (SELECT caller_phone FROM t) SELECT 1 FROM x WHERE p = '{PHONE}'"
            ),
            format!(
                "SELECT 1 FROM (SELECT 'x' AS p UNION ALL SELECT caller_phone FROM t) u WHERE p = '{PHONE}'"
            ),
            format!("SELECT 1 FROM s WHERE s.\"upper(t.caller_phone)\" = '{PHONE}'"),
            format!("EXPLAIN SELECT 1 FROM t WHERE caller_phone = '{PHONE}'"),
            format!("SELECT 1; SELECT 2 FROM t WHERE caller_phone = '{PHONE}'"),
            format!("INSERT INTO t (caller_phone) VALUES ('{PHONE}')"),
            // does not parse, names the column
            format!("SELECT FROM WHERE caller_phone = '{PHONE}' )) /* {PHONE} */"),
        ] {
            let r = redact(&sql);
            assert_hidden(&r);
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
            let r = redact(sql);
            assert_eq!(r.request, sql);
            assert!(!r.personal);
        }
        // an unreadable text that names one is not kept
        let r = redact(&format!("SELECT caller_phone = '{PHONE}"));
        assert_hidden(&r);
        assert!(r.request.starts_with("[not recorded"), "{}", r.request);
    }

    #[test]
    fn a_request_found_personal_by_its_plan_is_hashed_whole() {
        // `AS t(a, b)` renames the column: the text does not name it
        let sql = format!("SELECT a FROM hotline.cases AS t(a, b) WHERE b = '{PHONE}'");
        assert_eq!(redact(&sql).request, sql);
        let r = redactor().redact_all(&sql, "");
        assert_hidden(&r);
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
    fn every_parameter_of_a_personal_request_is_hashed() {
        let sql = "SELECT 1 FROM t WHERE district = $1 AND caller_phone = $2";
        // Postgres: an object keyed $n
        let r = redactor().redact(sql, &format!(r#"{{"$1":"Xihu","$2":"{PHONE}"}}"#));
        assert_hidden(&r);
        assert!(r.parameters.contains(&hashed(PHONE)), "{}", r.parameters);
        assert!(r.parameters.contains(&hashed("Xihu")), "{}", r.parameters);
        // Flight SQL: rows of objects
        let r = redactor().redact(sql, &format!(r#"[{{"a":"Xihu","b":{PHONE}}}]"#));
        assert_hidden(&r);
        // not JSON: not kept
        let r = redactor().redact(sql, PHONE);
        assert_hidden(&r);
        // a request that is not personal keeps its parameters
        let r = redactor().redact("SELECT $1", r#"{"$1":"Xihu"}"#);
        assert_eq!(r.parameters, r#"{"$1":"Xihu"}"#);
    }

    #[test]
    fn quoted_identifiers_of_a_personal_request_are_hashed() {
        for sql in [
            format!("SELECT count(*) FROM t WHERE caller_phone = \"{PHONE}\""),
            format!("SELECT caller_phone AS \"{PHONE}\" FROM t"),
            format!("SELECT caller_phone FROM t WHERE caller_phone = \"{PHONE}\" AND ("),
        ] {
            let r = redact(&sql);
            assert_hidden(&r);
            assert!(r.request.contains(&hashed(PHONE)), "{}", r.request);
            assert_eq!(redact(&r.request).request, r.request, "idempotent");
        }
    }

    #[test]
    fn a_failed_personal_requests_message_is_withheld_but_its_class() {
        let r = redact(&format!(
            "SELECT CAST(caller_phone AS TINYINT) FROM t WHERE x = '{PHONE}'"
        ));
        // the red team's shapes: values from the data, quoted or not, in any script
        for (error, class) in [
            (
                "Arrow error: Cast error: Cannot cast string '18669451851' to value of Int8 type",
                "Arrow error: Cast error: ",
            ),
            (
                "execution error: regex parse error:\n    a18036158013(\n ^\nerror: unclosed group",
                "execution error: regex parse error: ",
            ),
            ("regex parse error: 郑艳敏[", "regex parse error: "),
            ("Can't cast value 18072855998 to type Int8", ""),
            ("郑艳敏: no such thing", ""),
        ] {
            let recorded = redactor().scrub(error, &r, "error");
            assert_eq!(recorded, format!("{class}{WITHHELD}"), "{error}");
            // recording again changes nothing
            assert_eq!(redactor().scrub(&recorded, &r, "error"), recorded);
        }
        // citylake's own message (a refusal, a timeout) is kept, values hashed
        let refused = format!("permission denied: user `ana` may not read `{PHONE}`");
        let recorded = redactor().scrub(&refused, &r, "refused");
        assert!(
            recorded.starts_with("permission denied: user `ana`"),
            "{recorded}"
        );
        assert!(!recorded.contains(PHONE), "{recorded}");
        // a request that is not personal: its error as it is
        let plain = redact("SELECT 1");
        assert_eq!(
            redactor().scrub("value '12345678'", &plain, "error"),
            "value '12345678'"
        );
    }
}
