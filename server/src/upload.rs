//! What clients upload to the Flight SQL service — an ingest's batches, a
//! prepared statement's bound parameters — checked message by message before
//! Arrow decodes it. The one place both go through:
//!
//! - **Compressed IPC bodies are refused.** A compressed buffer states its own
//!   uncompressed length, and the decoder reserves that much memory before any
//!   count of what a request holds could see it: a message of a few bytes
//!   claiming terabytes would end the process, and a real 64 MiB message could
//!   unpack to gigabytes (red team). Clients send uncompressed batches unless
//!   told otherwise (ADBC, pyarrow), so nothing is lost.
//! - **A batch claims no more rows than its body can hold** (eight per byte,
//!   the densest encoding, and 64 Ki besides): a batch of no columns, or of
//!   `Null` columns, has no body, and its row count alone once made later
//!   steps reserve memory per row (red team).
//! - **What a stream carries in all is capped** (the caller's `limit`, on the
//!   wire: schemas, dictionaries and batches alike), so memory the decoder
//!   keeps for itself (dictionaries) is bounded too.
//! - **Each message is copied into allocations of its own.** The transport
//!   hands out message fields as slices of its receive buffer: a batch whose
//!   8-byte body sat beside 64 MiB of padding kept all of it alive (red
//!   team). After the copy a batch holds what it shows, and its consumer
//!   counts that ([`citylake_engine::ingest::held_bytes`]).
//! - **Bound parameters are plain values** ([`plain_parameters`]): each row
//!   becomes one execution carrying a copy of its values and, for the audit
//!   trail, their JSON with the column names. A layout that shares one value
//!   between rows (dictionaries, run-end encoding, views) or a long column
//!   name was counted once and copied once per row: 100,000 rows of a 15 MiB
//!   name would have been 1.5 TB (red team).

use arrow_flight::FlightData;
use arrow_flight::error::FlightError;
use bytes::Bytes;
use citylake_engine::datafusion::arrow::datatypes::{DataType, Schema};
use citylake_engine::datafusion::arrow::ipc;
use futures::{Stream, StreamExt};

/// Longest column name of bound parameters, in bytes.
pub const MAX_PARAMETER_NAME: usize = 256;

/// Refuses bound parameters that are not plain values under short names (see
/// the module docs): the types allowed are those whose every row holds its
/// own bytes.
pub fn plain_parameters(schema: &Schema) -> Result<(), String> {
    for field in schema.fields() {
        if field.name().len() > MAX_PARAMETER_NAME {
            return Err(format!(
                "a bound parameter's column name is {} bytes long; at most {MAX_PARAMETER_NAME} \
                 are accepted",
                field.name().len()
            ));
        }
        use DataType::*;
        let plain = matches!(
            field.data_type(),
            Null | Boolean
                | Int8
                | Int16
                | Int32
                | Int64
                | UInt8
                | UInt16
                | UInt32
                | UInt64
                | Float16
                | Float32
                | Float64
                | Decimal32(..)
                | Decimal64(..)
                | Decimal128(..)
                | Decimal256(..)
                | Utf8
                | LargeUtf8
                | Binary
                | LargeBinary
                | FixedSizeBinary(_)
                | Date32
                | Date64
                | Time32(_)
                | Time64(_)
                | Timestamp(..)
                | Duration(_)
                | Interval(_)
        );
        if !plain {
            return Err(format!(
                "bound parameter `{}` is of type {}; parameters are plain values (numbers, text, \
                 binary, dates and times), not dictionaries, views, lists or structures",
                field.name().chars().take(64).collect::<String>(),
                field.data_type()
            ));
        }
    }
    Ok(())
}

/// Rows a batch may claim beyond eight per byte of its body.
const ROWS_WITHOUT_BODY: u64 = 64 * 1024;

/// `messages`, each checked (see the module docs) and copied; the stream
/// fails once it has carried more than `limit` bytes.
pub fn checked(
    messages: impl Stream<Item = Result<FlightData, FlightError>> + Send,
    limit: u64,
) -> impl Stream<Item = Result<FlightData, FlightError>> + Send {
    let mut carried = 0u64;
    messages.map(move |m| {
        let data = m?;
        carried += (data.data_header.len() + data.data_body.len() + data.app_metadata.len()) as u64;
        if carried > limit {
            return Err(FlightError::ProtocolError(format!(
                "the upload is larger than {}, the most this request takes",
                bytesize::ByteSize::b(limit)
            )));
        }
        refuse_what_would_grow(&data)?;
        Ok(FlightData {
            flight_descriptor: data.flight_descriptor,
            data_header: Bytes::copy_from_slice(&data.data_header),
            data_body: Bytes::copy_from_slice(&data.data_body),
            app_metadata: Bytes::new(),
        })
    })
}

/// Refuses a message that would make the decoder, or later steps, reserve
/// more memory than the message holds.
fn refuse_what_would_grow(data: &FlightData) -> Result<(), FlightError> {
    if data.data_header.is_empty() {
        return Ok(());
    }
    let message = ipc::root_as_message(&data.data_header)
        .map_err(|e| FlightError::DecodeError(format!("not an Arrow IPC message: {e}")))?;
    let batch = message.header_as_record_batch();
    let compressed = batch.and_then(|b| b.compression()).is_some()
        || message
            .header_as_dictionary_batch()
            .and_then(|d| d.data())
            .and_then(|b| b.compression())
            .is_some();
    if compressed {
        return Err(FlightError::ProtocolError(
            "compressed Arrow IPC bodies are not accepted: send the batches uncompressed (the \
             server decompresses nothing a client sends)"
                .into(),
        ));
    }
    if let Some(batch) = batch {
        let rows = u64::try_from(batch.length()).unwrap_or(u64::MAX);
        let body = data.data_body.len() as u64;
        if rows > body.saturating_mul(8).saturating_add(ROWS_WITHOUT_BODY) {
            return Err(FlightError::ProtocolError(format!(
                "a batch claims {rows} rows in a body of {body} bytes: more than its data can hold"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_flight::encode::FlightDataEncoderBuilder;
    use citylake_engine::datafusion::arrow::array::{Int64Array, RecordBatch};
    use citylake_engine::datafusion::arrow::datatypes::{DataType, Field, Schema};
    use citylake_engine::datafusion::arrow::ipc::CompressionType;
    use citylake_engine::datafusion::arrow::ipc::writer::IpcWriteOptions;
    use futures::TryStreamExt;

    use super::*;

    async fn messages(compression: Option<CompressionType>) -> Vec<FlightData> {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(0..1000))],
        )
        .unwrap();
        let options = IpcWriteOptions::default()
            .try_with_compression(compression)
            .unwrap();
        FlightDataEncoderBuilder::new()
            .with_options(options)
            .build(futures::stream::iter([Ok(batch)]))
            .try_collect()
            .await
            .unwrap()
    }

    /// Why `sent` is refused, within `limit`.
    async fn refusal(sent: Vec<FlightData>, limit: u64) -> String {
        checked(futures::stream::iter(sent.into_iter().map(Ok)), limit)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err()
            .to_string()
    }

    #[tokio::test]
    async fn compressed_bodies_are_refused_before_decoding() {
        let plain = messages(None).await;
        let decoded: Vec<RecordBatch> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(checked(
                futures::stream::iter(plain.into_iter().map(Ok)),
                1 << 20,
            ))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(decoded[0].num_rows(), 1000);
        for codec in [CompressionType::LZ4_FRAME, CompressionType::ZSTD] {
            let sent = messages(Some(codec)).await;
            let e = refusal(sent, 1 << 20).await;
            assert!(e.contains("compressed Arrow IPC bodies"), "{e}");
        }
        // a header that is not an IPC message is named as such
        let junk = FlightData {
            data_header: vec![1, 2, 3].into(),
            ..Default::default()
        };
        let e = refuse_what_would_grow(&junk).unwrap_err().to_string();
        assert!(e.contains("not an Arrow IPC message"), "{e}");
    }

    /// A batch of no columns claiming 2^40 rows, and more than a stream may
    /// carry, are refused; what passes is a copy, not a slice of the input.
    #[tokio::test]
    async fn claims_beyond_the_body_and_the_limit_are_refused() {
        let empty = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &citylake_engine::datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(1 << 40)),
        )
        .unwrap();
        let sent: Vec<FlightData> = FlightDataEncoderBuilder::new()
            .build(futures::stream::iter([Ok(empty)]))
            .try_collect()
            .await
            .unwrap();
        let e = refusal(sent, 1 << 20).await;
        assert!(e.contains("claims 1099511627776 rows"), "{e}");

        let plain = messages(None).await;
        let size: usize = plain
            .iter()
            .map(|m| m.data_header.len() + m.data_body.len())
            .sum();
        let e = refusal(plain.clone(), size as u64 - 1).await;
        assert!(e.contains("the upload is larger than"), "{e}");

        // a body that is a slice of a larger buffer comes out on its own
        let mut padded = plain[1].clone();
        let mut buffer = vec![0u8; 1 << 20];
        buffer[..padded.data_body.len()].copy_from_slice(&padded.data_body);
        padded.data_body = Bytes::from(buffer).slice(0..padded.data_body.len());
        let out: Vec<FlightData> = checked(
            futures::stream::iter([Ok(plain[0].clone()), Ok(padded.clone())]),
            1 << 21,
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(out[1].data_body, padded.data_body);
        assert_ne!(out[1].data_body.as_ptr(), padded.data_body.as_ptr());
    }

    /// Parameters are plain values under short names: layouts that share one
    /// value between rows, and long names, are refused (each row is copied
    /// with its names into its own execution and audit record).
    #[test]
    fn parameters_are_plain_values_under_short_names() {
        let field = |name: &str, t: DataType| Schema::new(vec![Field::new(name, t, true)]);
        for t in [
            DataType::Int64,
            DataType::Utf8,
            DataType::LargeUtf8,
            DataType::Boolean,
            DataType::Decimal128(10, 2),
            DataType::Date32,
            DataType::Null,
        ] {
            plain_parameters(&field("$1", t)).unwrap();
        }
        let shared = [
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
            DataType::Utf8View,
            DataType::BinaryView,
            DataType::RunEndEncoded(
                Arc::new(Field::new("run_ends", DataType::Int32, false)),
                Arc::new(Field::new("values", DataType::Utf8, true)),
            ),
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            DataType::Struct(vec![Field::new("a", DataType::Int64, true)].into()),
        ];
        for t in shared {
            let e = plain_parameters(&field("$1", t.clone())).unwrap_err();
            assert!(e.contains("plain values"), "{t}: {e}");
        }
        let e = plain_parameters(&field(&"n".repeat(MAX_PARAMETER_NAME + 1), DataType::Int64))
            .unwrap_err();
        assert!(e.contains("257 bytes long"), "{e}");
        plain_parameters(&field(&"n".repeat(MAX_PARAMETER_NAME), DataType::Int64)).unwrap();
    }
}
