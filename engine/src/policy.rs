//! The access policy: roles, what each may read, which personal information it
//! sees unmasked, and row filters that may use the user's attributes.
//!
//! A policy is a TOML file (`policy.toml` beside the catalog; `citylake
//! generate` writes the default one, [`DEFAULT_POLICY`]):
//!
//! ```toml
//! [[roles]]
//! name = "district_analyst"
//! read = ["*", "hotline.cases"]      # `*`: every dataset that is not restricted; `**`: all;
//!                                    # `schema.*`: the whole schema, restricted included; or a name
//! unmasked_tags = []                 # PII tags seen unmasked (`*`: all)
//! unmasked_datasets = []             # datasets seen unmasked (patterns as in `read`)
//! department = ""                    # a department whose own datasets the role reads unmasked
//! metadata_only = false              # metadata of every dataset, no data
//! audit_log = false                  # may read system.audit_log
//! write = []                         # Delta datasets it may append to (patterns as in `read`)
//! privacy_officer = false            # may erase personal records and apply retention
//! [[roles.row_filters]]
//! datasets = ["*"]                   # applied to the readable datasets that have the columns it uses
//! predicate = "district = ${user.district}"
//! ```
//!
//! A user's access is the union of its roles' grants: a dataset is readable if
//! one role reads it; a column is unmasked if one role sees it unmasked; rows
//! are those some granting role's filter keeps (a granting role without a
//! filter keeps all). Restricted datasets are read only when named (or their
//! schema is). The owner department of a dataset always reads it unmasked.
//! `${user.department}` and `${user.<attribute>}` become SQL literals; a
//! missing attribute becomes NULL, so the filter keeps no row.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use citylake_catalog::{Classification, PiiTag};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::principal::Principal;

/// The default policy `citylake generate` writes beside a lake's catalog, and
/// the one in force when a lake has no policy file.
pub const DEFAULT_POLICY: &str = include_str!("default_policy.toml");
/// File name of the policy beside the catalog.
pub const POLICY_FILE: &str = "policy.toml";

/// The parsed policy file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub roles: Vec<RoleSpec>,
}

/// One role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(default)]
    pub unmasked_tags: Vec<String>,
    #[serde(default)]
    pub unmasked_datasets: Vec<String>,
    #[serde(default)]
    pub department: String,
    #[serde(default)]
    pub metadata_only: bool,
    #[serde(default)]
    pub audit_log: bool,
    /// Delta datasets the role may append to (ingest), patterns as in `read`.
    /// A role's `department` also writes the datasets that department owns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write: Vec<String>,
    /// May erase personal records on request and apply retention periods
    /// (`citylake privacy erase`, `citylake retention apply`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privacy_officer: bool,
    #[serde(default)]
    pub row_filters: Vec<RowFilterSpec>,
    /// Resource limits of the role's queries, replacing the server's (`30s`, `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_result_rows: Option<u64>,
    /// e.g. `256MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_result_bytes: Option<String>,
    /// e.g. `2GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_query: Option<String>,
}

impl RoleSpec {
    /// The role's limits (validated when the policy loads).
    fn limits(&self) -> std::result::Result<crate::limits::Limits, String> {
        let timeout = match self.query_timeout.as_deref() {
            None => None,
            Some(t) => match crate::config::parse_ttl(t)? {
                Some(d) if !d.is_zero() => Some(d),
                _ => return Err(format!("query_timeout `{t}` must be a positive duration")),
            },
        };
        let size = |s: &Option<String>| s.as_deref().map(crate::config::parse_size).transpose();
        Ok(crate::limits::Limits {
            query_timeout: timeout,
            max_result_rows: self.max_result_rows,
            max_result_bytes: size(&self.max_result_bytes)?.map(|n| n as u64),
            memory_per_query: size(&self.memory_per_query)?,
        })
    }
}

/// A row filter of a role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowFilterSpec {
    pub datasets: Vec<String>,
    pub predicate: String,
}

/// What one principal may do with one dataset or view.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Access {
    /// Listed in metadata (GetTables, information_schema, system.datasets).
    pub visible: bool,
    /// Its rows may be read.
    pub readable: bool,
    /// PII tags seen unmasked (all tags when `all_unmasked`).
    pub unmasked: BTreeSet<String>,
    pub all_unmasked: bool,
    /// Predicates ORed together (each the AND of one role's filters), as the
    /// policy writes them: `${user.…}` references are not substituted here but
    /// in the parsed expression ([`crate::governance::RowFilters`]), as
    /// literal values. `None`: all rows.
    pub row_filter: Option<Vec<String>>,
}

impl Access {
    /// Whether a column with `tag` comes back unmasked.
    pub fn sees(&self, tag: PiiTag) -> bool {
        self.all_unmasked || self.unmasked.contains(tag.as_str())
    }
}

/// The facts of a dataset the policy looks at.
pub struct DatasetFacts<'a> {
    pub name: &'a str,
    pub owner: &'a str,
    pub classification: Classification,
    /// Column names (a row filter applies only where its columns exist).
    pub columns: &'a [String],
}

impl Policy {
    /// Parses and validates policy text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let policy: Policy = toml::from_str(text).map_err(|e| {
            EngineError::Config(format!(
                "policy {}: {}",
                origin.display(),
                e.message().trim()
            ))
        })?;
        policy.validate(origin)?;
        Ok(policy)
    }

    /// Loads the policy file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::Config(format!("policy {}: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    /// The built-in default policy.
    pub fn default_policy() -> Self {
        Self::parse(DEFAULT_POLICY, Path::new("<built-in policy>"))
            .expect("the default policy is valid")
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let err = |role: &str, msg: String| {
            EngineError::Config(format!("policy {}: role `{role}`: {msg}", origin.display()))
        };
        let mut names = BTreeSet::new();
        for r in &self.roles {
            if r.name.trim().is_empty() {
                return Err(EngineError::Config(format!(
                    "policy {}: a role without a name",
                    origin.display()
                )));
            }
            if !names.insert(r.name.as_str()) {
                return Err(err(&r.name, "defined twice".into()));
            }
            for pattern in r.read.iter().chain(&r.unmasked_datasets).chain(&r.write) {
                if !valid_pattern(pattern) {
                    return Err(err(
                        &r.name,
                        format!("`{pattern}` is not `*`, `**`, `schema.*` or `schema.table`"),
                    ));
                }
            }
            if let Err(e) = r.limits() {
                return Err(err(&r.name, e));
            }
            for tag in &r.unmasked_tags {
                if tag != "*" && PiiTag::parse(tag).is_none() {
                    return Err(err(&r.name, format!("unknown PII tag `{tag}`")));
                }
            }
            for f in &r.row_filters {
                if f.predicate.trim().is_empty() || f.datasets.is_empty() {
                    return Err(err(
                        &r.name,
                        "a row filter needs datasets and a predicate".into(),
                    ));
                }
                if let Some(bad) = f.datasets.iter().find(|p| !valid_pattern(p)) {
                    return Err(err(
                        &r.name,
                        format!("row filter dataset `{bad}` is not a pattern"),
                    ));
                }
                with_placeholders(&f.predicate).map_err(|m| err(&r.name, m))?;
            }
        }
        Ok(())
    }

    /// The roles of the policy by name.
    fn role(&self, name: &str) -> Option<&RoleSpec> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The resource limits `principal`'s roles set (the most generous of them).
    pub fn limits(&self, principal: &Principal) -> crate::limits::Limits {
        principal
            .roles
            .iter()
            .filter_map(|r| self.role(r)?.limits().ok())
            .fold(Default::default(), crate::limits::Limits::most_generous)
    }

    /// Whether `principal` may read `system.audit_log`.
    pub fn reads_audit_log(&self, principal: &Principal) -> bool {
        principal
            .roles
            .iter()
            .filter_map(|r| self.role(r))
            .any(|r| r.audit_log)
    }

    /// Whether `principal` may append to `ds`: a role names it in `write`, or
    /// a role's `department` owns it. Writing never depends on reading: a
    /// department may deliver into a dataset whose other rows it cannot read.
    pub fn writes(&self, principal: &Principal, ds: &DatasetFacts) -> bool {
        principal
            .roles
            .iter()
            .filter_map(|r| self.role(r))
            .any(|role| {
                (!role.department.is_empty() && role.department == ds.owner)
                    || role.write.iter().any(|p| matches(p, ds))
            })
    }

    /// Whether `principal` may erase personal records and apply retention.
    pub fn is_privacy_officer(&self, principal: &Principal) -> bool {
        principal
            .roles
            .iter()
            .filter_map(|r| self.role(r))
            .any(|r| r.privacy_officer)
    }

    /// What `principal` may do with `ds`.
    pub fn access(&self, principal: &Principal, ds: &DatasetFacts) -> Access {
        let mut access = Access::default();
        let mut filters: Vec<String> = vec![];
        let mut unfiltered = false;
        let owner = principal
            .department
            .as_deref()
            .is_some_and(|d| !d.is_empty() && d == ds.owner);
        if owner {
            access.visible = true;
            access.readable = true;
            access.all_unmasked = true;
            unfiltered = true;
        }
        for role in principal.roles.iter().filter_map(|r| self.role(r)) {
            if role.metadata_only {
                access.visible = true;
            }
            let department = !role.department.is_empty() && role.department == ds.owner;
            let reads = department || role.read.iter().any(|p| matches(p, ds));
            if !reads {
                continue;
            }
            access.visible = true;
            access.readable = true;
            if department || role.unmasked_datasets.iter().any(|p| matches(p, ds)) {
                access.all_unmasked = true;
            }
            for tag in &role.unmasked_tags {
                if tag == "*" {
                    access.all_unmasked = true;
                } else {
                    access.unmasked.insert(tag.clone());
                }
            }
            let applicable: Vec<&RowFilterSpec> = role
                .row_filters
                .iter()
                .filter(|f| f.datasets.iter().any(|p| matches(p, ds)))
                .filter(|f| {
                    // validated at load, so the predicate parses
                    columns_of(&f.predicate)
                        .unwrap_or_default()
                        .iter()
                        .all(|c| ds.columns.iter().any(|have| have == c))
                })
                .collect();
            if applicable.is_empty() || department {
                unfiltered = true;
            } else {
                // a role's filters all hold (AND); roles combine with OR
                let both: Vec<String> = applicable
                    .iter()
                    .map(|f| format!("({})", f.predicate))
                    .collect();
                filters.push(both.join(" AND "));
            }
        }
        if access.readable && !unfiltered {
            access.row_filter = Some(filters);
        }
        access
    }
}

fn valid_pattern(p: &str) -> bool {
    p == "*"
        || p == "**"
        || p.split_once('.').is_some_and(|(s, t)| {
            !s.is_empty() && !t.is_empty() && !s.contains('*') && (t == "*" || !t.contains('*'))
        })
}

/// `*` matches every dataset that is not restricted; `schema.*` every dataset
/// of the schema; otherwise the exact name.
fn matches(pattern: &str, ds: &DatasetFacts) -> bool {
    if pattern == "*" {
        return ds.classification != Classification::Restricted;
    }
    if pattern == "**" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(schema) => ds.name.split_once('.').is_some_and(|(s, _)| s == schema),
        None => pattern == ds.name,
    }
}

/// Column names a predicate uses (its identifiers, as the SQL parser reads
/// it; `${…}` references are replaced by literals first).
fn columns_of(predicate: &str) -> std::result::Result<Vec<String>, String> {
    use datafusion::sql::sqlparser::ast::{Expr, visit_expressions};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use std::ops::ControlFlow;
    let sql = substitute(predicate, &Principal::local_admin())?;
    let expr = Parser::new(&GenericDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| format!("predicate `{predicate}`: {e}"))?;
    let mut out = vec![];
    let _ = visit_expressions(&expr, |e| {
        match e {
            Expr::Identifier(id) => out.push(id.value.clone()),
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    out.push(last.value.clone());
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(out)
}

/// Replaces `${user.name}`, `${user.department}` and `${user.<attribute>}`
/// with SQL string literals (NULL when the user has no such attribute).
pub fn substitute(predicate: &str, principal: &Principal) -> std::result::Result<String, String> {
    replace_references(predicate, |attr| {
        Ok(match attribute(principal, attr) {
            Some(v) => format!("'{}'", v.replace('\'', "''")),
            None => "NULL".into(),
        })
    })
}

/// The prefix of the placeholders `${user.<x>}` references become in
/// [`with_placeholders`].
pub const USER_PLACEHOLDER: &str = "$user_";

/// The predicate with each `${user.<x>}` as the placeholder `$user_<x>`, so it
/// parses once into an expression whose placeholders are then replaced by a
/// principal's values as literals (never as SQL text).
pub fn with_placeholders(predicate: &str) -> std::result::Result<String, String> {
    replace_references(predicate, |attr| {
        if attr.is_empty() || !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`${{user.{attr}}}`: an attribute name is letters, digits and `_`"
            ));
        }
        Ok(format!("{USER_PLACEHOLDER}{attr}"))
    })
}

/// A principal's `name`, `department` or attribute `attr`.
pub fn attribute(principal: &Principal, attr: &str) -> Option<String> {
    match attr {
        "name" => Some(principal.user.clone()),
        "department" => principal.department.clone(),
        other => principal.attributes.get(other).cloned(),
    }
}

/// `predicate` with each `${user.<x>}` replaced by `replace(x)`.
fn replace_references(
    predicate: &str,
    replace: impl Fn(&str) -> std::result::Result<String, String>,
) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = predicate;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let tail = &rest[start + 2..];
        let (key, after) = tail
            .split_once('}')
            .ok_or_else(|| format!("unclosed `${{` in `{predicate}`"))?;
        let attr = key
            .trim()
            .strip_prefix("user.")
            .ok_or_else(|| format!("`${{{key}}}`: only ${{user.…}} references are allowed"))?;
        out.push_str(&replace(attr)?);
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// The policy in force, reloaded when its file changes; a broken file is
/// reported and the previous policy kept.
#[derive(Debug)]
pub struct PolicyStore {
    path: Option<PathBuf>,
    state: parking_lot::RwLock<(std::sync::Arc<Policy>, Option<std::time::SystemTime>)>,
}

impl PolicyStore {
    /// The policy at `path` (must be valid at start), or the built-in default.
    pub fn open(path: Option<PathBuf>) -> Result<Self> {
        let (policy, modified) = match &path {
            Some(p) => (Policy::load(p)?, modified(p)),
            None => (Policy::default_policy(), None),
        };
        Ok(Self {
            path,
            state: parking_lot::RwLock::new((std::sync::Arc::new(policy), modified)),
        })
    }

    /// Where the policy comes from.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The current policy, reloading the file first if it changed.
    pub fn current(&self) -> std::sync::Arc<Policy> {
        if let Some(path) = &self.path {
            let now = modified(path);
            let stale = self.state.read().1 != now;
            if stale {
                let mut state = self.state.write();
                if state.1 != now {
                    state.1 = now;
                    match Policy::load(path) {
                        Ok(p) => {
                            tracing::info!(path = %path.display(), "policy reloaded");
                            state.0 = std::sync::Arc::new(p);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the changed policy is invalid; keeping the previous one");
                        }
                    }
                }
            }
        }
        self.state.read().0.clone()
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[&str], dept: Option<&str>, attrs: &[(&str, &str)]) -> Principal {
        Principal {
            user: "u".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            department: dept.map(str::to_string),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn facts<'a>(
        name: &'a str,
        owner: &'a str,
        c: Classification,
        cols: &'a [String],
    ) -> DatasetFacts<'a> {
        DatasetFacts {
            name,
            owner,
            classification: c,
            columns: cols,
        }
    }

    #[test]
    fn the_default_policy_grants_what_the_roles_promise() {
        let p = Policy::default_policy();
        let cols: Vec<String> = ["case_id", "district", "caller_name"]
            .map(String::from)
            .to_vec();
        let cases = facts(
            "hotline.cases",
            "hotline",
            Classification::Restricted,
            &cols,
        );
        let pay_cols: Vec<String> = ["payee"].map(String::from).to_vec();
        let payments = facts(
            "finance.expenditures",
            "finance",
            Classification::Restricted,
            &pay_cols,
        );
        let speed_cols: Vec<String> = ["segment_id"].map(String::from).to_vec();
        let speed = facts(
            "traffic.segment_speed",
            "traffic",
            Classification::Internal,
            &speed_cols,
        );

        let admin = p.access(&user(&["admin"], None, &[]), &cases);
        assert!(admin.readable && admin.all_unmasked && admin.row_filter.is_none());

        let analyst = user(&["analyst"], None, &[]);
        assert!(
            !p.access(&analyst, &cases).visible,
            "restricted: default deny"
        );
        let s = p.access(&analyst, &speed);
        assert!(s.readable && !s.all_unmasked && s.unmasked.is_empty());

        let district = user(&["district_analyst"], None, &[("district", "Xihu")]);
        let a = p.access(&district, &cases);
        assert!(a.readable && !a.sees(PiiTag::Name) && !a.sees(PiiTag::Phone));
        assert_eq!(
            a.row_filter,
            Some(vec!["(district = ${user.district})".to_string()])
        );
        assert!(!p.access(&district, &payments).readable);
        // the filter applies only where the column exists
        assert_eq!(p.access(&district, &speed).row_filter, None);

        let finance = user(&["finance"], None, &[]);
        let f = p.access(&finance, &payments);
        assert!(f.readable && f.all_unmasked);

        let hotline = user(&["hotline"], None, &[]);
        assert!(p.access(&hotline, &cases).all_unmasked);
        assert!(!p.access(&hotline, &payments).readable);

        let auditor = user(&["auditor"], None, &[]);
        let au = p.access(&auditor, &cases);
        assert!(au.visible && !au.readable);
        assert!(p.reads_audit_log(&auditor) && !p.reads_audit_log(&analyst));

        // the owner department reads its own data unmasked whatever its roles
        let owner = user(&["analyst"], Some("hotline"), &[]);
        assert!(p.access(&owner, &cases).all_unmasked);
    }

    #[test]
    fn bad_policies_name_the_problem() {
        let bad = |text: &str| {
            Policy::parse(text, Path::new("/p.toml"))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[[roles]]\nname = \"a\"\nread = [\"hotline\"]\n").contains("`hotline`"));
        assert!(bad("[[roles]]\nname = \"a\"\nunmasked_tags = [\"dna\"]\n").contains("dna"));
        assert!(bad("[[roles]]\nname = \"a\"\n[[roles]]\nname = \"a\"\n").contains("twice"));
        assert!(bad("[[roles]]\nname = \"a\"\nwrite = true\n").contains("/p.toml"));
        let unclosed = "[[roles]]\nname = \"a\"\n[[roles.row_filters]]\ndatasets = [\"*\"]\npredicate = \"d = ${user.d\"\n";
        assert!(bad(unclosed).contains("unclosed"));
    }

    #[test]
    fn role_limits_are_validated_and_the_most_generous_applies() {
        let text = "[[roles]]\nname = \"a\"\nquery_timeout = \"30s\"\nmax_result_rows = 10\n\
                    [[roles]]\nname = \"b\"\nquery_timeout = \"5m\"\nmemory_per_query = \"1GiB\"\n";
        let p = Policy::parse(text, Path::new("/p.toml")).unwrap();
        let l = p.limits(&user(&["a", "b"], None, &[]));
        assert_eq!(l.query_timeout, Some(std::time::Duration::from_secs(300)));
        assert_eq!(l.max_result_rows, Some(10));
        assert_eq!(l.memory_per_query, Some(1 << 30));
        assert_eq!(p.limits(&user(&["c"], None, &[])), Default::default());
        let bad = |text: &str| {
            Policy::parse(text, Path::new("/p.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = bad("[[roles]]\nname = \"a\"\nquery_timeout = \"soon\"\n");
        assert!(e.contains("role `a`") && e.contains("soon"), "{e}");
        assert!(bad("[[roles]]\nname = \"a\"\nquery_timeout = \"0\"\n").contains("positive"));
        assert!(bad("[[roles]]\nname = \"a\"\nmemory_per_query = \"lots\"\n").contains("lots"));
    }

    #[test]
    fn attributes_become_escaped_literals() {
        let u = user(&[], Some("traffic"), &[("district", "O'Hare")]);
        assert_eq!(
            substitute("district = ${user.district} AND d = ${user.department}", &u).unwrap(),
            "district = 'O''Hare' AND d = 'traffic'"
        );
        assert_eq!(
            columns_of("district = ${user.district} AND lower(x) IN ('a b')").unwrap(),
            ["district", "x"]
        );
        // function names are not columns (a filter must not be skipped for them)
        assert_eq!(
            columns_of("coalesce(district, 'none') = ${user.district}").unwrap(),
            ["district"]
        );
        assert!(columns_of("district = = 1").is_err());
    }
}
