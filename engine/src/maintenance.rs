//! Changes to Delta datasets that are not deliveries: erasing a person's
//! records on request, applying retention periods, compacting small files and
//! removing files no version reads. Each is decided, done and recorded here.
//!
//! **Erasure** ([`Engine::erase`]), for a privacy officer
//! ([`Policy::is_privacy_officer`]): the rows where the request's predicate
//! holds are deleted in one transaction, the files that held them are removed
//! (vacuum), and every data file of the table, live or not, is read back to
//! prove none still holds the value. The value must not outlive it anywhere
//! else either, so:
//! - the predicate is rewritten before it reaches the table's log (which
//!   records every operation's predicate) or the audit trail: each comparison
//!   of a column tagged as personal information with a literal becomes a
//!   comparison of the column's SHA-256 with the literal's. Any other use of a
//!   personal column in the predicate is refused;
//! - the log keeps no statistics of personal columns (see
//!   [`citylake_catalog::delta`]), and is searched for the value's bytes.
//!
//! **Retention** ([`Engine::apply_retention`]): the rows of each dataset with a
//! `retention` period whose `time_column` is older than the period are deleted,
//! then vacuumed.
//!
//! [`Policy::is_privacy_officer`]: crate::policy::Policy::is_privacy_officer

use std::sync::Arc;
use std::time::Instant;

use citylake_catalog::delta::DeltaDataset;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::prelude::{col, lit};
use object_store::ObjectStoreExt;

use crate::error::{EngineError, Result};
use crate::session::{Engine, Session};

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraseOutcome {
    pub dataset: String,
    /// The predicate as recorded (personal values as hashes).
    pub recorded_predicate: String,
    pub rows_deleted: u64,
    /// The table version the delete made.
    pub version: u64,
    /// Files removed by the vacuum.
    pub files_removed: usize,
    /// Files of the table still holding a matching row (each with its count),
    /// and log files holding one of the values: empty when the erasure is complete.
    pub still_held: Vec<(String, u64)>,
}

/// What retention did to one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionOutcome {
    pub dataset: String,
    /// Rows older than this (UTC, `YYYY-MM-DD HH:MM:SS`) are past retention.
    pub cutoff: String,
    /// Rows deleted (to delete, on a dry run).
    pub rows: u64,
    pub version: Option<u64>,
    pub files_removed: usize,
    /// Why nothing was deleted, when the dataset cannot be (not Delta).
    pub skipped: Option<String>,
}

impl Engine {
    /// The Delta dataset `name`, for an operation of `what`.
    fn delta_dataset(&self, name: &str, what: &str) -> Result<(&DeltaDataset, String)> {
        let entry = self.entry(name).ok_or_else(|| EngineError::NotFound {
            name: format!("{}.{name}", self.catalog().name()),
            hidden: false,
            suggestion: None,
        })?;
        let delta = entry
            .provider
            .downcast_ref::<DeltaDataset>()
            .ok_or_else(|| {
                EngineError::Rejected(format!(
                    "`{name}` is not a Delta dataset: {what} needs `format = \"delta\"`"
                ))
            })?;
        let spec = self
            .catalog()
            .spec()
            .dataset(name)
            .expect("an entry has a spec");
        Ok((delta, self.catalog().dataset_url(spec)))
    }

    /// Erases the rows of `dataset` where `predicate` (SQL) holds, for a
    /// privacy officer, with `reason` in the audit record; files no version
    /// newer than `retention` ago reads are vacuumed (zero: at once).
    pub async fn erase(
        &self,
        session: &Session,
        dataset: &str,
        predicate: &str,
        reason: &str,
        retention: std::time::Duration,
    ) -> Result<EraseOutcome> {
        let started = Instant::now();
        let mut recorded = String::from("(not parsed)");
        let result = self
            .erase_checked(session, dataset, predicate, retention, &mut recorded)
            .await;
        let record = crate::audit::AuditRecord {
            kind: "erase".into(),
            request: format!("ERASE FROM {dataset} WHERE {recorded}; reason: {reason}"),
            // the predicate's personal values are hashed (`hash_personal`), and
            // the error is its class only
            redacted: true,
            datasets: dataset.to_string(),
            rows: result.as_ref().map_or(0, |o| o.rows_deleted as i64),
            duration_ms: started.elapsed().as_millis() as i64,
            outcome: match &result {
                Ok(_) => "ok",
                Err(e) if e.class() == crate::error::ErrorClass::PermissionDenied => "refused",
                Err(_) => "error",
            }
            .into(),
            // an error may quote the predicate: only its class is kept
            error: result
                .as_ref()
                .err()
                .map(|e| format!("{:?}", e.class()))
                .unwrap_or_default(),
            ..Default::default()
        };
        session.audit(record, None).await?;
        result
    }

    async fn erase_checked(
        &self,
        session: &Session,
        dataset: &str,
        predicate: &str,
        retention: std::time::Duration,
        recorded: &mut String,
    ) -> Result<EraseOutcome> {
        let policy = self.policy_now();
        if !policy.is_privacy_officer(session.principal()) {
            return Err(EngineError::NotAllowed(format!(
                "user `{}` may not erase records: a role with `privacy_officer = true` may",
                session.principal().user
            )));
        }
        let (delta, table_url) = self.delta_dataset(dataset, "erasure")?;
        let spec = self
            .catalog()
            .spec()
            .dataset(dataset)
            .expect("an entry has a spec");
        let personal: Vec<String> = spec
            .columns
            .iter()
            .filter(|c| c.pii.is_some())
            .map(|c| c.name.clone())
            .collect();
        let schema = DFSchema::try_from(delta_schema(delta))?;
        let expr = session
            .context()
            .parse_sql_expr(predicate, &schema)
            .map_err(|e| EngineError::Rejected(format!("the erasure's predicate: {e}")))?;
        let (hashed, values) = hash_personal(expr.clone(), &personal)?;
        *recorded = hashed.to_string();
        let metadata = vec![
            (
                "citylake.user".to_string(),
                session.principal().user.clone().into(),
            ),
            (
                citylake_catalog::delta::OPERATION_KEY.to_string(),
                "erase".into(),
            ),
        ];
        let (version, rows) = delta.delete(hashed, metadata).await?;
        let removed = delta
            .vacuum(
                chrono::Duration::from_std(retention).unwrap_or_default(),
                false,
            )
            .await?;
        let still_held = self
            .still_holding(session, delta, &table_url, &expr, &values)
            .await?;
        Ok(EraseOutcome {
            dataset: dataset.to_string(),
            recorded_predicate: recorded.clone(),
            rows_deleted: rows,
            version,
            files_removed: removed.len(),
            still_held,
        })
    }

    /// The files of `delta` — every data file in its directory, live or
    /// not — with rows where `predicate` holds, and the log files holding one
    /// of `values` as bytes.
    async fn still_holding(
        &self,
        session: &Session,
        delta: &DeltaDataset,
        table_url: &str,
        predicate: &Expr,
        values: &[String],
    ) -> Result<Vec<(String, u64)>> {
        let mut held = vec![];
        let ctx = session.context();
        for file in delta.all_data_files().await? {
            let url = format!("{table_url}{}", file.location);
            let df = ctx.read_parquet(url.as_str(), Default::default()).await?;
            // a predicate on a partition column (not in the file) cannot be
            // checked per file: the file's rows are then counted against the
            // predicate's other conjuncts only where every column exists
            let columns = predicate.column_refs();
            if columns
                .iter()
                .any(|c| df.schema().field_with_unqualified_name(&c.name).is_err())
            {
                continue;
            }
            let n = df.filter(predicate.clone())?.count().await? as u64;
            if n > 0 {
                held.push((file.location.to_string(), n));
            }
        }
        let store = delta.object_store();
        for file in delta.log_files().await? {
            let bytes = store
                .get(&file.location)
                .await
                .map_err(|e| EngineError::Storage(e.to_string()))?;
            let bytes = bytes
                .bytes()
                .await
                .map_err(|e| EngineError::Storage(e.to_string()))?;
            if values
                .iter()
                .any(|v| !v.is_empty() && contains(&bytes, v.as_bytes()))
            {
                held.push((file.location.to_string(), 0));
            }
        }
        Ok(held)
    }

    /// Deletes, for each Delta dataset with a `retention` period (or only
    /// `only`), the rows whose `time_column` is older than `now` minus the
    /// period, and vacuums; with `dry_run`, counts them. For a privacy officer.
    pub async fn apply_retention(
        &self,
        session: &Session,
        only: Option<&str>,
        now: chrono::NaiveDateTime,
        dry_run: bool,
    ) -> Result<Vec<RetentionOutcome>> {
        let policy = self.policy_now();
        if !policy.is_privacy_officer(session.principal()) {
            return Err(EngineError::NotAllowed(format!(
                "user `{}` may not apply retention: a role with `privacy_officer = true` may",
                session.principal().user
            )));
        }
        let mut out = vec![];
        for ds in &self.catalog().spec().datasets {
            if only.is_some_and(|o| o != ds.name) {
                continue;
            }
            let Some(period) = ds
                .retention_period()
                .transpose()
                .map_err(EngineError::Config)?
            else {
                continue;
            };
            let Some(time_column) = &ds.time_column else {
                continue;
            };
            let delta = match self.delta_dataset(&ds.name, "retention") {
                Ok((delta, _)) => delta,
                // named: the error; otherwise reported and passed over
                Err(e) if only.is_some() => return Err(e),
                Err(e) => {
                    out.push(RetentionOutcome {
                        dataset: ds.name.clone(),
                        cutoff: String::new(),
                        rows: 0,
                        version: None,
                        files_removed: 0,
                        skipped: Some(e.to_string()),
                    });
                    continue;
                }
            };
            let cutoff = now
                - chrono::Duration::from_std(period)
                    .map_err(|e| EngineError::Config(format!("retention of `{}`: {e}", ds.name)))?;
            let cutoff_text = cutoff.format("%Y-%m-%d %H:%M:%S").to_string();
            let predicate = col(time_column.as_str()).lt(lit(ScalarValue::TimestampMicrosecond(
                Some(cutoff.and_utc().timestamp_micros()),
                None,
            )));
            let started = Instant::now();
            let result: Result<RetentionOutcome> = async {
                if dry_run {
                    let df = session
                        .context()
                        .read_table(Arc::new(delta.clone()))?
                        .filter(predicate.clone())?;
                    return Ok(RetentionOutcome {
                        dataset: ds.name.clone(),
                        cutoff: cutoff_text.clone(),
                        rows: df.count().await? as u64,
                        version: None,
                        files_removed: 0,
                        skipped: None,
                    });
                }
                let metadata = vec![
                    (
                        "citylake.user".to_string(),
                        session.principal().user.clone().into(),
                    ),
                    (
                        citylake_catalog::delta::OPERATION_KEY.to_string(),
                        "retention".into(),
                    ),
                ];
                let (version, rows) = delta.delete(predicate.clone(), metadata).await?;
                let removed = delta.vacuum(chrono::Duration::zero(), false).await?;
                Ok(RetentionOutcome {
                    dataset: ds.name.clone(),
                    cutoff: cutoff_text.clone(),
                    rows,
                    version: Some(version),
                    files_removed: removed.len(),
                    skipped: None,
                })
            }
            .await;
            if !dry_run {
                let request = format!(
                    "DELETE FROM {} WHERE {time_column} < '{cutoff_text}' (retention)",
                    ds.name
                );
                let rows = result.as_ref().map_or(0, |o| o.rows);
                self.record_maintenance(
                    session,
                    "retention",
                    &ds.name,
                    request,
                    rows,
                    started,
                    &result,
                )
                .await?;
            }
            out.push(result?);
        }
        Ok(out)
    }

    /// Compacts `dataset`'s small files (Delta's OPTIMIZE): files removed and
    /// added. For a role that may write the dataset or a privacy officer.
    pub async fn optimize(&self, session: &Session, dataset: &str) -> Result<(u64, u64)> {
        self.maintainer(session, dataset)?;
        let (delta, _) = self.delta_dataset(dataset, "optimize")?;
        let started = Instant::now();
        let result = delta.optimize().await.map_err(EngineError::from);
        self.record_maintenance(
            session,
            "optimize",
            dataset,
            format!("OPTIMIZE {dataset}"),
            0,
            started,
            &result,
        )
        .await?;
        result
    }

    /// Removes `dataset`'s files that no version newer than `retention` ago
    /// reads: the files removed (to remove, on a dry run).
    pub async fn vacuum(
        &self,
        session: &Session,
        dataset: &str,
        retention: std::time::Duration,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        self.maintainer(session, dataset)?;
        let (delta, _) = self.delta_dataset(dataset, "vacuum")?;
        let started = Instant::now();
        let result = delta
            .vacuum(
                chrono::Duration::from_std(retention).unwrap_or_default(),
                dry_run,
            )
            .await
            .map_err(EngineError::from);
        if !dry_run {
            self.record_maintenance(
                session,
                "vacuum",
                dataset,
                format!("VACUUM {dataset}"),
                0,
                started,
                &result,
            )
            .await?;
        }
        result
    }

    fn maintainer(&self, session: &Session, dataset: &str) -> Result<()> {
        let policy = self.policy_now();
        let principal = session.principal();
        let entry = self.entry(dataset).ok_or_else(|| EngineError::NotFound {
            name: format!("{}.{dataset}", self.catalog().name()),
            hidden: false,
            suggestion: None,
        })?;
        if policy.is_privacy_officer(principal) || policy.writes(principal, &entry.facts()) {
            Ok(())
        } else {
            Err(EngineError::NotAllowed(format!(
                "user `{}` may not maintain `{dataset}`: a role that writes it may",
                principal.user
            )))
        }
    }

    /// The audit record of a maintenance operation (`kind`) on `dataset`.
    #[allow(clippy::too_many_arguments)]
    async fn record_maintenance<T>(
        &self,
        session: &Session,
        kind: &str,
        dataset: &str,
        request: String,
        rows: u64,
        started: Instant,
        result: &Result<T>,
    ) -> Result<()> {
        let record = crate::audit::AuditRecord {
            kind: kind.into(),
            request,
            rows: rows as i64,
            datasets: dataset.to_string(),
            duration_ms: started.elapsed().as_millis() as i64,
            outcome: if result.is_ok() { "ok" } else { "error" }.into(),
            error: result
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
            ..Default::default()
        };
        session.audit(record, None).await
    }
}

/// The arrow schema of a Delta dataset's provider.
fn delta_schema(delta: &DeltaDataset) -> datafusion::arrow::datatypes::Schema {
    use datafusion::catalog::TableProvider;
    delta.schema().as_ref().clone()
}

/// `expr` with each comparison of a `personal` column with a literal turned
/// into a comparison of SHA-256 hashes (hex), and the literal values; an error
/// if a personal column is used any other way.
fn hash_personal(expr: Expr, personal: &[String]) -> Result<(Expr, Vec<String>)> {
    let mut values = vec![];
    let is_personal = |e: &Expr| match e {
        Expr::Column(c) => personal.contains(&c.name),
        _ => false,
    };
    let value_text = |v: &ScalarValue| -> Option<String> {
        match v
            .cast_to(&datafusion::arrow::datatypes::DataType::Utf8)
            .ok()?
        {
            ScalarValue::Utf8(Some(s)) => Some(s),
            _ => None,
        }
    };
    let rewritten = expr
        .transform_down(|e| {
            let hashed = match &e {
                Expr::BinaryExpr(BinaryExpr { left, op, right })
                    if matches!(op, Operator::Eq | Operator::NotEq) =>
                {
                    let (column, value) = match (left.as_ref(), right.as_ref()) {
                        (c, Expr::Literal(v, _)) if is_personal(c) => (c, v),
                        (Expr::Literal(v, _), c) if is_personal(c) => (c, v),
                        _ => return Ok(Transformed::no(e)),
                    };
                    let Some(text) = value_text(value) else {
                        return Ok(Transformed::no(e));
                    };
                    values.push(text.clone());
                    Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(hash_expr(column.clone())),
                        *op,
                        Box::new(lit(crate::redact::hash_hex(&text))),
                    ))
                }
                Expr::InList(list) if is_personal(&list.expr) => {
                    let mut hashes = vec![];
                    for item in &list.list {
                        let Expr::Literal(v, _) = item else {
                            return Ok(Transformed::no(e));
                        };
                        let Some(text) = value_text(v) else {
                            return Ok(Transformed::no(e));
                        };
                        values.push(text.clone());
                        hashes.push(lit(crate::redact::hash_hex(&text)));
                    }
                    hash_expr((*list.expr).clone()).in_list(hashes, list.negated)
                }
                _ => return Ok(Transformed::no(e)),
            };
            Ok(Transformed::new(hashed, true, TreeNodeRecursion::Jump))
        })?
        .data;
    // what is left of a personal column must be under a hash
    let mut bare = None;
    rewritten.apply(|e| {
        if is_hash(e) {
            return Ok(TreeNodeRecursion::Jump);
        }
        if let Expr::Column(c) = e
            && personal.contains(&c.name)
        {
            bare = Some(c.name.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if let Some(column) = bare {
        return Err(EngineError::Rejected(format!(
            "column `{column}` holds personal information: name the person by equality \
             (`{column} = '…'` or `{column} IN ('…', …)`), so that only a hash of the value \
             is recorded"
        )));
    }
    Ok((rewritten, values))
}

/// `encode(sha256(CAST(column AS text)), 'hex')`.
fn hash_expr(column: Expr) -> Expr {
    use datafusion::functions::crypto::expr_fn::sha256;
    use datafusion::functions::encoding::expr_fn::encode;
    encode(
        sha256(datafusion::prelude::cast(
            column,
            datafusion::arrow::datatypes::DataType::Utf8,
        )),
        lit("hex"),
    )
}

fn is_hash(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.name() == "encode"
        && matches!(f.args.first(), Some(Expr::ScalarFunction(inner)) if inner.name() == "sha256"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_values_are_hashed_and_other_uses_refused() {
        let personal = vec!["phone".to_string()];
        let (e, values) = hash_personal(col("phone").eq(lit("13800000000")), &personal).unwrap();
        let text = e.to_string();
        assert!(!text.contains("13800000000"), "{text}");
        assert!(
            text.contains(&crate::redact::hash_hex("13800000000")),
            "{text}"
        );
        assert_eq!(values, vec!["13800000000".to_string()]);

        let (e, values) = hash_personal(
            col("phone")
                .in_list(vec![lit("1"), lit("2")], false)
                .and(col("district").eq(lit("West Lake"))),
            &personal,
        )
        .unwrap();
        let text = e.to_string();
        assert!(
            text.contains("West Lake") && !text.contains("'1'"),
            "{text}"
        );
        assert_eq!(values.len(), 2);

        for refused in [
            col("phone").like(lit("138%")),
            col("phone").gt(lit("1")),
            datafusion::functions::string::expr_fn::upper(col("phone")).eq(lit("X")),
        ] {
            let e = hash_personal(refused.clone(), &personal).unwrap_err();
            assert!(
                e.to_string().contains("`phone` holds personal"),
                "{refused}: {e}"
            );
        }
    }
}
