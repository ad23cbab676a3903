//! The audit trail: one JSON line per request — who, from where, what, which
//! datasets and columns, what was masked, how much came back, how it ended —
//! appended to `audit-YYYY-MM-DD.jsonl` files in the audit directory and
//! readable as `system.audit_log` by the roles the policy allows.
//!
//! Durability: each record is written and `fsync`ed before the call that
//! made it returns (for a query: when its result stream ends, before the
//! client sees the end of the stream), so an acknowledged request is on disk;
//! a crash can lose only the record of a request still running. Records never
//! hold passwords or tokens: the SQL text and the user name are recorded, the
//! credentials never reach this module.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;

use crate::error::{EngineError, Result};

/// One request, as recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditRecord {
    /// RFC 3339, UTC.
    pub time: String,
    pub user: String,
    pub roles: String,
    pub client: String,
    /// `query`, `plan`, `metadata`, …
    pub kind: String,
    /// The SQL or the command.
    pub request: String,
    /// Datasets touched, comma-separated `schema.table`.
    pub datasets: String,
    /// Columns masked for this user among those datasets, comma-separated.
    pub masked: String,
    pub rows: i64,
    pub bytes: i64,
    pub duration_ms: i64,
    /// `ok`, `refused`, `error`, `cancelled`, `dropped`.
    pub outcome: String,
    pub error: String,
}

impl AuditRecord {
    /// A record of a `kind` request (`query`, `plan`, `metadata`) for `request`
    /// (SQL or command) that ended with `outcome`; the session fills in who, from
    /// where, and which datasets and masked columns.
    pub fn new(kind: &str, request: &str, outcome: &str) -> Self {
        Self {
            kind: kind.to_string(),
            request: request.to_string(),
            outcome: outcome.to_string(),
            ..Default::default()
        }
    }

    /// With the rows and bytes returned.
    pub fn returned(mut self, rows: u64, bytes: u64) -> Self {
        self.rows = rows as i64;
        self.bytes = bytes as i64;
        self
    }

    /// With the time the request took.
    pub fn took(mut self, duration: std::time::Duration) -> Self {
        self.duration_ms = duration.as_millis() as i64;
        self
    }

    /// With the error the request ended with.
    pub fn failed(mut self, error: impl std::fmt::Display) -> Self {
        self.error = error.to_string();
        self
    }
}

/// The schema of `system.audit_log` (the fields of [`AuditRecord`]).
pub fn schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int64, true);
    std::sync::Arc::new(Schema::new(vec![
        text("time"),
        text("user"),
        text("roles"),
        text("client"),
        text("kind"),
        text("request"),
        text("datasets"),
        text("masked"),
        int("rows"),
        int("bytes"),
        int("duration_ms"),
        text("outcome"),
        text("error"),
    ]))
}

/// The append-only audit files of one directory.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    file: Mutex<Option<(String, std::fs::File)>>,
}

impl AuditLog {
    /// Opens (creating) the audit directory.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| EngineError::Config(format!("audit directory {}: {e}", dir.display())))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file: Mutex::new(None),
        })
    }

    /// Where the files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `record` (its time set now) and syncs it to disk. A failure is
    /// logged: the request it records has already been served or refused.
    pub fn record(&self, mut record: AuditRecord) {
        let now = chrono::Utc::now();
        record.time = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let day = now.format("%Y-%m-%d").to_string();
        let line = match serde_json::to_string(&record) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an audit record");
                return;
            }
        };
        let mut guard = self.file.lock().expect("audit lock");
        let result = (|| -> std::io::Result<()> {
            if guard.as_ref().is_none_or(|(d, _)| *d != day) {
                let path = self.dir.join(format!("audit-{day}.jsonl"));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                *guard = Some((day, file));
            }
            let (_, file) = guard.as_mut().expect("opened above");
            file.write_all(line.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_data()
        })();
        if let Err(e) = result {
            tracing::error!(error = %e, dir = %self.dir.display(), "cannot write the audit log");
        }
    }
}

/// `system.audit_log`: every record of the audit directory, read afresh by
/// each query (the files grow while the server runs, so no listing or footer
/// cache may stand in between).
#[derive(Debug)]
pub struct AuditTable {
    dir: PathBuf,
}

impl AuditTable {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn read(&self) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| {
                EngineError::Config(format!("audit directory {}: {e}", self.dir.display()))
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        let mut batches = vec![];
        for path in files {
            let file = std::fs::File::open(&path)
                .map_err(|e| EngineError::Config(format!("{}: {e}", path.display())))?;
            let reader = datafusion::arrow::json::ReaderBuilder::new(schema())
                .build(std::io::BufReader::new(file))
                .map_err(datafusion::error::DataFusionError::from)?;
            for batch in reader {
                batches.push(batch.map_err(datafusion::error::DataFusionError::from)?);
            }
        }
        Ok(batches)
    }
}

impl crate::snapshot::Snapshot for AuditTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn batches(&self) -> datafusion::error::Result<Vec<datafusion::arrow::array::RecordBatch>> {
        self.read()
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_lines_appended_to_the_day_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit")).unwrap();
        for outcome in ["ok", "refused"] {
            log.record(AuditRecord {
                user: "dora".into(),
                request: "SELECT 1".into(),
                outcome: outcome.into(),
                ..Default::default()
            });
        }
        let files: Vec<_> = std::fs::read_dir(log.dir()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["outcome"], "refused");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        // a second log on the same directory appends (a restarted server)
        AuditLog::open(&dir.path().join("audit"))
            .unwrap()
            .record(AuditRecord::default());
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert_eq!(schema().fields().len(), 13);
    }
}
