//! Arrow record batches as Postgres `DataRow` messages.
//!
//! Each value is encoded by `arrow_pg` (text or binary per column, as the
//! client asked), into one buffer per batch: each row is a slice of it.
//! pgwire's own `DataRowEncoder` hands each row out with `split`, after which
//! its buffer starts again from nothing and grows by reallocation — several
//! allocations per row, which were a quarter of the server's CPU when a client
//! fetched millions of rows (README, "Postgres protocol next to Flight SQL").

use std::sync::Arc;

use arrow_pg::encoder::{Encoder, encode_value};
use bytes::{BufMut, BytesMut};
use citylake_engine::datafusion::arrow::array::RecordBatch;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};

/// Bytes reserved at a time: rows are slices of chunks this size (a row
/// larger than a chunk gets a chunk of its own).
const CHUNK_BYTES: usize = 64 << 10;

/// Encodes rows into a shared buffer; `take_row` splits the row written
/// since the last one off its front.
struct RowBuffer {
    buf: BytesMut,
    columns: i16,
    /// Bytes reserved when the buffer is full.
    chunk: usize,
}

impl Encoder for RowBuffer {
    type Item = DataRow;

    fn encode_field<T>(&mut self, value: &T, pg_field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        if self.buf.capacity() - self.buf.len() < 64 {
            self.buf.reserve(self.chunk);
        }
        // the value's length, -1 (NULL) until it is written
        let at = self.buf.len();
        self.buf.put_i32(-1);
        let is_null = match pg_field.format() {
            FieldFormat::Text => value.to_sql_text(
                pg_field.datatype(),
                &mut self.buf,
                pg_field.format_options(),
            )?,
            FieldFormat::Binary => value.to_sql(pg_field.datatype(), &mut self.buf)?,
        };
        if let IsNull::No = is_null {
            let len = (self.buf.len() - at - 4) as i32;
            self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        self.columns += 1;
        Ok(())
    }

    fn take_row(&mut self) -> DataRow {
        DataRow::new(self.buf.split(), std::mem::take(&mut self.columns))
    }
}

/// The rows of `batch`, encoded as `fields` say (one per column).
pub(crate) fn encode(
    fields: Arc<Vec<FieldInfo>>,
    batch: RecordBatch,
) -> impl Iterator<Item = PgWireResult<DataRow>> + Send {
    let mut encoder = RowBuffer {
        buf: BytesMut::new(),
        columns: 0,
        // a small batch takes a small buffer
        chunk: (batch.num_rows() * 64).clamp(256, CHUNK_BYTES),
    };
    (0..batch.num_rows()).map(move |row| {
        let schema = batch.schema_ref();
        let start = encoder.buf.len();
        for (col, array) in batch.columns().iter().enumerate() {
            if let Err(e) = encode_value(&mut encoder, array, row, schema.field(col), &fields[col])
            {
                // nothing of a row that failed stays for the next one
                encoder.buf.truncate(start);
                encoder.columns = 0;
                return Err(e);
            }
        }
        Ok(encoder.take_row())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
    use citylake_engine::datafusion::arrow::array::{
        ArrayRef, Float64Array, Int64Array, StringArray,
    };
    use pgwire::api::portal::Format;

    /// The same bytes as arrow_pg's own row encoder, text and binary, NULLs
    /// and values longer than a chunk included.
    #[test]
    fn rows_are_the_bytes_pgwire_would_send() {
        let long = "x".repeat(CHUNK_BYTES + 10);
        let batch = RecordBatch::try_from_iter([
            (
                "n",
                Arc::new(Int64Array::from_iter(
                    (0..3000).map(|i| (i % 7 != 0).then_some(i)),
                )) as ArrayRef,
            ),
            (
                "f",
                Arc::new(Float64Array::from_iter_values(
                    (0..3000).map(|i| i as f64 / 3.0),
                )),
            ),
            (
                "s",
                Arc::new(StringArray::from_iter((0..3000).map(|i| match i {
                    5 => Some(long.clone()),
                    i if i % 11 == 0 => None,
                    i => Some(format!("row {i}")),
                }))) as ArrayRef,
            ),
        ])
        .unwrap();
        for format in [Format::UnifiedText, Format::UnifiedBinary] {
            let fields =
                Arc::new(arrow_schema_to_pg_fields(&batch.schema(), &format, None).unwrap());
            let ours: Vec<_> = encode(fields.clone(), batch.clone())
                .map(Result::unwrap)
                .collect();
            let theirs: Vec<_> = encode_recordbatch(fields, batch.clone())
                .map(Result::unwrap)
                .collect();
            assert_eq!(ours.len(), 3000);
            assert_eq!(ours, theirs);
        }
    }
}
