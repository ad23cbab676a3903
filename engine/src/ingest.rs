//! Ingest: a department appends record batches to a Delta dataset, as one
//! transaction (Flight SQL's `CommandStatementIngest`, what ADBC's
//! `adbc_ingest` sends).
//!
//! The one place a write is decided and checked:
//! - the target must be a dataset this principal may write ([`Policy::writes`]):
//!   a role's `write` patterns or its department's own datasets. A dataset the
//!   principal may not even list is "not found", word for word as a missing one;
//! - it must be a Delta dataset (a Parquet directory has no transactions);
//! - every batch is checked against the catalog's declared columns before
//!   anything is written: names, types, `required`, `min`/`max`, partition
//!   columns present. The first problem is the error, naming the column and
//!   the row (counted from 1 over the whole request), and nothing is written;
//! - the request's size is capped (`max_ingest_bytes`): the batches are held
//!   in memory until the commit; so is what all requests hold together
//!   (`max_ingest_memory`): a batch that would go beyond is refused at once
//!   (busy, retry), not kept waiting with the others' batches held; one user's
//!   requests together hold at most one request's worth; and the batches must
//!   all arrive within `ingest_timeout`, so a client that stalls or trickles
//!   gives back what it holds ([`IngestBounds`]);
//! - the write takes an admission slot like a query;
//! - the commit is Delta's: all rows or none, retried over concurrent appends;
//! - every attempt, refused or not, is an audit record (kind `ingest`) with the
//!   rows, bytes and the version the commit made.
//!
//! [`Policy::writes`]: crate::policy::Policy::writes

use std::sync::Arc;
use std::time::Instant;

use citylake_catalog::DatasetSpec;
use citylake_catalog::delta::DeltaDataset;
use datafusion::arrow::array::{Array, ArrayRef, Float64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::TableReference;
use futures::{Stream, StreamExt};

use crate::error::{EngineError, Result};
use crate::session::{Engine, Session};

/// Default of the largest ingest request (bytes of Arrow data held until the commit).
pub const DEFAULT_MAX_INGEST_BYTES: usize = 256 * 1024 * 1024;

/// Default of what all ingest requests together may hold until their
/// commits: two of the largest (sixteen concurrent 60 MiB deliveries once
/// took the server to about 1 GiB; red team).
pub const DEFAULT_MAX_INGEST_MEMORY: usize = 2 * DEFAULT_MAX_INGEST_BYTES;

/// Default of how long an ingest request's batches may take to arrive: 256 MiB
/// (the largest request) at under 1 MB/s.
pub const DEFAULT_INGEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// What ingest requests may hold, together and each user's, and for how long:
/// the server's one record of it.
#[derive(Debug, Clone)]
pub(crate) struct IngestBounds {
    /// The largest request, in bytes; also what one user's requests may hold
    /// together.
    max_request: usize,
    /// What all requests together may hold, in bytes, and as KiB permits.
    max_memory: usize,
    memory: Arc<tokio::sync::Semaphore>,
    /// What each user's requests hold, in KiB.
    by_user: Arc<parking_lot::Mutex<std::collections::HashMap<String, u64>>>,
    /// How long a request's batches may take to arrive.
    timeout: std::time::Duration,
}

impl IngestBounds {
    pub(crate) fn new(config: &crate::config::EngineConfig) -> Result<Self> {
        if config.max_ingest_memory < config.max_ingest_bytes {
            return Err(EngineError::Config(format!(
                "the memory for all ingest requests ({}, --max-ingest-memory) must hold at least \
                 the largest one ({}, --max-ingest-bytes)",
                bytesize::ByteSize::b(config.max_ingest_memory as u64),
                bytesize::ByteSize::b(config.max_ingest_bytes as u64)
            )));
        }
        if config.ingest_timeout.is_zero() {
            return Err(EngineError::Config(
                "the ingest timeout (--ingest-timeout) must be longer than 0".into(),
            ));
        }
        Ok(Self {
            max_request: config.max_ingest_bytes,
            max_memory: config.max_ingest_memory,
            memory: Arc::new(tokio::sync::Semaphore::new(
                config.max_ingest_memory.div_ceil(1024),
            )),
            by_user: Default::default(),
            timeout: config.ingest_timeout,
        })
    }

    /// The largest request, in bytes.
    pub(crate) fn max_request(&self) -> usize {
        self.max_request
    }

    /// What all requests together may hold, in bytes.
    pub(crate) fn max_memory(&self) -> usize {
        self.max_memory
    }

    /// How long a request's batches may take to arrive.
    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.timeout
    }

    /// An empty hold for one request of `user`'s.
    fn hold(&self, user: &str) -> Hold {
        Hold {
            permit: None,
            memory: self.memory.clone(),
            by_user: self.by_user.clone(),
            user: user.to_string(),
        }
    }
}

/// What one ingest request holds: KiB of the server's bound (its permits) and,
/// as many, of its user's share. Both are given back when it is dropped.
struct Hold {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    memory: Arc<tokio::sync::Semaphore>,
    by_user: Arc<parking_lot::Mutex<std::collections::HashMap<String, u64>>>,
    user: String,
}

impl Hold {
    fn kib(&self) -> u64 {
        self.permit.as_ref().map_or(0, |p| p.num_permits() as u64)
    }

    /// Grows the hold to `bytes` (the whole request so far, rounded up to a
    /// KiB once: a request within the largest size always fits when alone),
    /// or says which bound it would pass: the user's share first, then the
    /// server's (never what the others hold: that is their business).
    fn grow_to(&mut self, bytes: u64, bounds: &IngestBounds) -> Result<()> {
        let more = bytes.div_ceil(1024).saturating_sub(self.kib());
        if more == 0 {
            return Ok(());
        }
        let busy = |e: crate::limits::LimitError| EngineError::Query(e.into_datafusion());
        let mut by_user = self.by_user.lock();
        let total = by_user.get(&self.user).copied().unwrap_or(0);
        if total + more > (bounds.max_request as u64).div_ceil(1024) {
            return Err(busy(crate::limits::LimitError::IngestPerUser(
                bytesize::ByteSize::b(bounds.max_request as u64),
            )));
        }
        let permit = u32::try_from(more)
            .ok()
            .and_then(|n| self.memory.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| {
                busy(crate::limits::LimitError::IngestMemory(
                    bytesize::ByteSize::b(bounds.max_memory as u64),
                ))
            })?;
        by_user.insert(self.user.clone(), total + more);
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        Ok(())
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let kib = self.kib();
        let mut by_user = self.by_user.lock();
        if let Some(total) = by_user.get_mut(&self.user) {
            *total -= kib;
            if *total == 0 {
                by_user.remove(&self.user);
            }
        }
        // (the permits go back to the server's bound as `permit` drops)
    }
}

/// What an ingest wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    pub rows: u64,
    /// Arrow bytes received.
    pub bytes: u64,
    /// The table version the commit made.
    pub version: u64,
}

impl Engine {
    /// Appends `batches` to the dataset `table` for `session`'s principal
    /// (see the module docs). `table` without a schema is looked up in the
    /// default schema.
    pub async fn ingest<S>(
        &self,
        session: &Session,
        table: TableReference,
        batches: S,
    ) -> Result<IngestOutcome>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        let name = self.dataset_name(&table);
        let seen = Seen::default();
        // a client that goes away mid-request drops this future: the attempt
        // is recorded all the same, as a dropped query is
        let mut dropped = RecordIfDropped {
            session,
            name: &name,
            started: Instant::now(),
            seen: &seen,
            armed: true,
        };
        let result = self.ingest_checked(session, &table, batches, &seen).await;
        dropped.armed = false;
        let (started, seen) = (dropped.started, (seen.rows(), seen.bytes()));
        let (outcome, error, request) = match &result {
            Ok(o) => (
                "ok",
                String::new(),
                format!("INGEST INTO {name} (append): version {}", o.version),
            ),
            // named as a query's would be: refused, timed_out, over_limit, …
            Err(e) => {
                let (outcome, error) = crate::queries::Outcome::of_error(e);
                (
                    outcome.as_str(),
                    error,
                    format!("INGEST INTO {name} (append)"),
                )
            }
        };
        let record = crate::audit::AuditRecord {
            kind: "ingest".into(),
            request,
            datasets: name.clone(),
            rows: seen.0 as i64,
            bytes: seen.1 as i64,
            duration_ms: started.elapsed().as_millis() as i64,
            outcome: outcome.into(),
            error,
            ..Default::default()
        };
        // the commit is in the table's history with the user either way; a
        // record that cannot be written fails the request (fail closed)
        session.audit(record, None).await?;
        result
    }

    /// `schema.table` of a reference (the default schema when it has none).
    fn dataset_name(&self, table: &TableReference) -> String {
        format!(
            "{}.{}",
            table.schema().unwrap_or(self.catalog().default_schema()),
            table.table()
        )
    }

    async fn ingest_checked<S>(
        &self,
        session: &Session,
        table: &TableReference,
        batches: S,
        seen: &Seen,
    ) -> Result<IngestOutcome>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        let name = self.dataset_name(table);
        let principal = session.principal();
        let policy = self.policy_now();
        let not_found = || EngineError::NotFound {
            name: format!("{}.{name}", self.catalog().name()),
            hidden: false,
            suggestion: None,
        };
        if table.catalog().is_some_and(|c| c != self.catalog().name()) {
            return Err(not_found());
        }
        let Some(entry) = self.entry(&name) else {
            return Err(not_found());
        };
        let facts = entry.facts();
        if !policy.writes(principal, &facts) {
            return Err(if policy.access(principal, &facts).visible {
                EngineError::NotAllowed(format!("user `{}` may not write `{name}`", principal.user))
            } else {
                EngineError::NotFound {
                    name: format!("{}.{name}", self.catalog().name()),
                    hidden: true,
                    suggestion: None,
                }
            });
        }
        let Some(delta) = entry.provider.downcast_ref::<DeltaDataset>() else {
            return Err(EngineError::Rejected(format!(
                "`{name}` is not a Delta dataset: only `format = \"delta\"` datasets take writes"
            )));
        };
        let spec = self.catalog().spec().dataset(&name).ok_or_else(not_found)?;
        let schema = entry.provider.schema();
        let width = row_width(&schema);
        let bounds = self.ingest_bounds();
        let max = bounds.max_request;
        // given back when this request ends, committed or not
        let mut hold = bounds.hold(&principal.user);
        let deadline = tokio::time::Instant::now() + bounds.timeout;
        let timed_out = || {
            EngineError::Query(
                crate::limits::LimitError::IngestTimeout(bounds.timeout).into_datafusion(),
            )
        };
        let mut received = vec![];
        let mut batches = std::pin::pin!(batches);
        loop {
            let next = tokio::time::timeout_at(deadline, batches.next())
                .await
                .map_err(|_| timed_out())?;
            let Some(batch) = next else { break };
            let batch = batch?;
            check_batch(spec, &schema, &batch, seen.rows()).map_err(EngineError::Rejected)?;
            // what it holds, or what it will take once cast to the dataset's
            // columns (missing ones filled with nulls), whichever is more
            let bytes = held_bytes(&batch)?.max(batch.num_rows() as u64 * width);
            let total = seen.add(batch.num_rows() as u64, bytes);
            if total > max as u64 {
                return Err(EngineError::Rejected(format!(
                    "the ingest is larger than {} (--max-ingest-bytes): send it in several requests",
                    bytesize::ByteSize::b(max as u64)
                )));
            }
            hold.grow_to(total, bounds)?;
            if batch.num_rows() > 0 {
                received.push(batch);
            }
        }
        if received.is_empty() {
            return Err(EngineError::Rejected(format!(
                "the ingest into `{name}` holds no rows"
            )));
        }
        // the wait for a slot holds the batches too: within the same deadline
        let _permit = tokio::time::timeout_at(deadline, self.admission_for(principal))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| EngineError::Query(e.into_datafusion()))?;
        let metadata = vec![
            ("citylake.user".to_string(), principal.user.clone().into()),
            ("citylake.rows".to_string(), seen.rows().into()),
        ];
        let version = delta.append(received, metadata).await?;
        Ok(IngestOutcome {
            rows: seen.rows(),
            bytes: seen.bytes(),
            version,
        })
    }
}

/// Rows and bytes an ingest has received so far.
#[derive(Debug, Default)]
struct Seen {
    rows: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

impl Seen {
    fn rows(&self) -> u64 {
        self.rows.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a batch; the bytes received in all.
    fn add(&self, rows: u64, bytes: u64) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        self.rows.fetch_add(rows, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed) + bytes
    }
}

/// Writes the audit record of an ingest whose future is dropped before it
/// ended (the client reset the stream), unless disarmed.
struct RecordIfDropped<'a> {
    session: &'a Session,
    name: &'a str,
    started: Instant,
    seen: &'a Seen,
    armed: bool,
}

impl Drop for RecordIfDropped<'_> {
    fn drop(&mut self) {
        if !self.armed || std::thread::panicking() {
            // (a panic is not the client going away: the task's failure is
            // logged, and the request answered with an internal error)
            return;
        }
        self.session.audit_unwaited(crate::audit::AuditRecord {
            kind: "ingest".into(),
            request: format!("INGEST INTO {} (append)", self.name),
            datasets: self.name.to_string(),
            rows: self.seen.rows() as i64,
            bytes: self.seen.bytes() as i64,
            duration_ms: self.started.elapsed().as_millis() as i64,
            outcome: crate::queries::Outcome::Dropped.as_str().into(),
            error: "dropped: the client went away before the ingest ended (a commit it had \
                    begun may still have landed: see the table's history)"
                .into(),
            ..Default::default()
        });
    }
}

/// The bytes of memory `batch` keeps alive: every distinct allocation its
/// columns' buffers point into, counted once and whole — what it holds, not
/// only what it shows. The columns of a batch decoded from one IPC message
/// share that message's body (counted once: a 62 MiB delivery of four columns
/// was once refused as over 256 MiB), and a batch of one row sent in a 64 MiB
/// message keeps the 64 MiB alive (counted: such messages once held memory
/// without limit; red team). At least the bytes its columns show.
pub fn held_bytes(batch: &RecordBatch) -> Result<u64> {
    use datafusion::arrow::array::ArrayData;
    use datafusion::arrow::buffer::Buffer;
    fn walk(data: &ArrayData, allocations: &mut std::collections::HashMap<usize, usize>) {
        let mut add = |b: &Buffer| {
            // an allocation is known by where it starts; its size is its
            // capacity (the whole region, for memory owned elsewhere)
            let size = b.capacity().max(b.ptr_offset() + b.len());
            let entry = allocations
                .entry(b.data_ptr().as_ptr() as usize)
                .or_default();
            *entry = (*entry).max(size);
        };
        data.buffers().iter().for_each(&mut add);
        if let Some(nulls) = data.nulls() {
            add(nulls.buffer());
        }
        for child in data.child_data() {
            walk(child, allocations);
        }
    }
    let mut allocations = std::collections::HashMap::new();
    let mut shown = 0u64;
    for column in batch.columns() {
        let data = column.to_data();
        shown += data
            .get_slice_memory_size()
            .map_err(|e| EngineError::Query(e.into()))? as u64;
        walk(&data, &mut allocations);
    }
    let held = allocations.values().map(|&n| n as u64).sum::<u64>();
    Ok(held.max(shown))
}

/// The fewest bytes a row of `schema` takes in memory: each column's fixed
/// width, or its offset for variable-size ones, and at least one byte.
fn row_width(schema: &Schema) -> u64 {
    schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Boolean | DataType::Null => 1,
            DataType::Utf8 | DataType::Binary | DataType::List(_) => 4,
            DataType::Utf8View | DataType::BinaryView => 16,
            t => t.primitive_width().unwrap_or(8) as u64,
        })
        .sum::<u64>()
        .max(1)
}

/// Checks one batch of an ingest into `ds` (whose table schema is `schema`)
/// against the declared columns; `first_row` is the number of rows before it.
/// The first problem found, as a sentence naming the column (and the row).
pub fn check_batch(
    ds: &DatasetSpec,
    schema: &Schema,
    batch: &RecordBatch,
    first_row: u64,
) -> std::result::Result<(), String> {
    let dataset = &ds.name;
    for field in batch.schema().fields() {
        let Ok(target) = schema.field_with_name(field.name()) else {
            let hint = citylake_catalog::columns::nearest(
                field.name(),
                schema.fields().iter().map(|f| f.name().as_str()),
            )
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
            return Err(format!(
                "column `{}` is not a column of `{dataset}`{hint}",
                field.name()
            ));
        };
        if !citylake_catalog::columns::compatible(target.data_type(), field.data_type()) {
            return Err(format!(
                "column `{}` of `{dataset}` is {}; the batch holds {}",
                field.name(),
                target.data_type(),
                field.data_type()
            ));
        }
    }
    let row = |i: usize| first_row + i as u64 + 1;
    let partitions = ds.partitions.iter().map(|p| p.name.as_str());
    let declared_required = ds
        .columns
        .iter()
        .filter(|c| c.required)
        .map(|c| c.name.as_str());
    for name in partitions.chain(declared_required) {
        let Some(column) = batch.column_by_name(name) else {
            return Err(format!(
                "column `{name}` of `{dataset}` is required and the batch does not have it"
            ));
        };
        if column.null_count() > 0 {
            let i = (0..column.len()).find(|&i| column.is_null(i)).unwrap_or(0);
            return Err(format!(
                "column `{name}` of `{dataset}` is required: row {} is NULL",
                row(i)
            ));
        }
    }
    for c in ds
        .columns
        .iter()
        .filter(|c| c.min.is_some() || c.max.is_some())
    {
        let Some(column) = batch.column_by_name(&c.name) else {
            continue;
        };
        let Some(values) = as_f64(column) else {
            continue;
        };
        for i in 0..values.len() {
            if values.is_null(i) {
                continue;
            }
            let v = values.value(i);
            if v.is_nan() {
                return Err(format!(
                    "column `{}` of `{dataset}`: row {} holds NaN, which has no place in its valid range",
                    c.name,
                    row(i)
                ));
            }
            if let Some(min) = c.min
                && v < min
            {
                return Err(format!(
                    "column `{}` of `{dataset}`: row {} holds {v}, below the minimum {min}",
                    c.name,
                    row(i)
                ));
            }
            if let Some(max) = c.max
                && v > max
            {
                return Err(format!(
                    "column `{}` of `{dataset}`: row {} holds {v}, above the maximum {max}",
                    c.name,
                    row(i)
                ));
            }
        }
    }
    Ok(())
}

/// A numeric column as doubles (`None` for other types); a dictionary-encoded
/// one by its values.
fn as_f64(column: &ArrayRef) -> Option<Float64Array> {
    let values = match column.data_type() {
        DataType::Dictionary(_, value) => value.as_ref(),
        other => other,
    };
    if !values.is_numeric() {
        return None;
    }
    let doubles = cast(column, &DataType::Float64).ok()?;
    use datafusion::arrow::array::AsArray;
    Some(
        doubles
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
            .clone(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use citylake_catalog::{ColumnSpec, PartitionSpec};
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::Field;

    use super::*;

    /// A batch decoded from one IPC message counts its data once, not once
    /// per column (the columns share the message's buffer).
    #[test]
    fn a_decoded_batchs_size_is_its_data() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::ipc::{reader::StreamReader, writer::StreamWriter};
        let n = 100_000;
        let schema = Arc::new(Schema::new(
            (0..4)
                .map(|i| Field::new(format!("c{i}"), DataType::Int64, false))
                .collect::<Vec<_>>(),
        ));
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n as i64));
        let batch = RecordBatch::try_new(schema.clone(), vec![column; 4]).unwrap();
        let mut ipc = vec![];
        let mut writer = StreamWriter::try_new(&mut ipc, &schema).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        let decoded = StreamReader::try_new(std::io::Cursor::new(ipc), None)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        // the four columns' data, counted once (the message's body, aligned)
        let data = 4 * 8 * n as u64;
        let held = held_bytes(&decoded).unwrap();
        assert!((data..data + 1024).contains(&held), "{held} for {data}");
        // one array four times is one allocation, but never counted under
        // what the columns show
        assert_eq!(held_bytes(&batch).unwrap(), data);
    }

    /// A one-row batch sent in a message padded to megabytes holds them all.
    #[test]
    fn a_small_slice_of_a_large_message_counts_the_message() {
        use datafusion::arrow::array::Int64Array;
        let big: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1_000_000));
        let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![big.slice(10, 1)]).unwrap();
        assert_eq!(
            batch.columns()[0]
                .to_data()
                .get_slice_memory_size()
                .unwrap(),
            8
        );
        let held = held_bytes(&batch).unwrap();
        assert!(held >= 8_000_000, "{held}");
    }

    fn dataset() -> (DatasetSpec, Schema) {
        let mut ds = DatasetSpec::new("environment.readings", "environment/readings/");
        let column = |name: &str, required: bool, min: Option<f64>, max: Option<f64>| ColumnSpec {
            name: name.into(),
            data_type: None,
            description: String::new(),
            pii: None,
            required,
            min,
            max,
        };
        ds.columns = vec![
            column("station_id", true, None, None),
            column("pm25", false, Some(0.0), Some(1000.0)),
            column("note", false, None, None),
        ];
        ds.partitions = vec![PartitionSpec {
            name: "month".into(),
            data_type: "text".into(),
            description: String::new(),
        }];
        let schema = Schema::new(vec![
            Field::new("station_id", DataType::Utf8View, true),
            Field::new("pm25", DataType::Float64, true),
            Field::new("note", DataType::Utf8View, true),
            Field::new("month", DataType::Utf8View, true),
        ]);
        (ds, schema)
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn text(v: Vec<Option<&str>>) -> ArrayRef {
        Arc::new(StringArray::from(v))
    }

    #[test]
    fn a_good_batch_passes_and_each_problem_names_column_and_row() {
        let (ds, schema) = dataset();
        let good = batch(vec![
            ("station_id", text(vec![Some("S1"), Some("S2")])),
            ("pm25", Arc::new(Int32Array::from(vec![Some(12), None]))),
            ("month", text(vec![Some("2025-01"), Some("2025-01")])),
        ]);
        assert_eq!(check_batch(&ds, &schema, &good, 0), Ok(()));

        let above = batch(vec![
            ("station_id", text(vec![Some("S1"), Some("S2")])),
            (
                "pm25",
                Arc::new(Int32Array::from(vec![Some(12), Some(1200)])),
            ),
            ("month", text(vec![Some("2025-01"), Some("2025-01")])),
        ]);
        let e = check_batch(&ds, &schema, &above, 10).unwrap_err();
        assert!(
            e.contains("`pm25`") && e.contains("row 12") && e.contains("maximum 1000"),
            "{e}"
        );

        let null = batch(vec![
            ("station_id", text(vec![Some("S1"), None])),
            ("month", text(vec![Some("2025-01"), Some("2025-01")])),
        ]);
        let e = check_batch(&ds, &schema, &null, 0).unwrap_err();
        assert!(
            e.contains("`station_id`") && e.contains("row 2 is NULL"),
            "{e}"
        );

        let no_partition = batch(vec![("station_id", text(vec![Some("S1")]))]);
        let e = check_batch(&ds, &schema, &no_partition, 0).unwrap_err();
        assert!(
            e.contains("`month`") && e.contains("does not have it"),
            "{e}"
        );

        let misspelt = batch(vec![
            ("station_id", text(vec![Some("S1")])),
            ("pm_25", Arc::new(Int32Array::from(vec![Some(1)]))),
            ("month", text(vec![Some("2025-01")])),
        ]);
        let e = check_batch(&ds, &schema, &misspelt, 0).unwrap_err();
        assert!(
            e.contains("`pm_25` is not a column") && e.contains("did you mean `pm25`"),
            "{e}"
        );

        // a dictionary-encoded column is checked by its values, NaN is out of any range
        let dictionary = batch(vec![
            ("station_id", text(vec![Some("S1"), Some("S2")])),
            (
                "pm25",
                cast(
                    &(Arc::new(Int32Array::from(vec![Some(5), Some(5000)])) as ArrayRef),
                    &DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Int32)),
                )
                .unwrap(),
            ),
            ("month", text(vec![Some("2025-01"), Some("2025-01")])),
        ]);
        let e = check_batch(&ds, &schema, &dictionary, 0).unwrap_err();
        assert!(e.contains("row 2 holds 5000"), "{e}");
        let nan = batch(vec![
            ("station_id", text(vec![Some("S1")])),
            ("pm25", Arc::new(Float64Array::from(vec![f64::NAN]))),
            ("month", text(vec![Some("2025-01")])),
        ]);
        let e = check_batch(&ds, &schema, &nan, 0).unwrap_err();
        assert!(e.contains("row 1 holds NaN"), "{e}");

        let wrong_type = batch(vec![
            ("station_id", text(vec![Some("S1")])),
            ("pm25", text(vec![Some("high")])),
            ("month", text(vec![Some("2025-01")])),
        ]);
        let e = check_batch(&ds, &schema, &wrong_type, 0).unwrap_err();
        assert!(e.contains("`pm25`") && e.contains("Float64"), "{e}");
    }
}
