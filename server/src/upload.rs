//! What clients upload to the Flight SQL service — an ingest's batches, a
//! prepared statement's bound parameters — checked message by message before
//! Arrow decodes it. The one place both go through.
//!
//! Compressed IPC bodies are refused. A compressed buffer states its own
//! uncompressed length, and the decoder reserves that much memory before any
//! count of what a request holds could see it: a message of a few bytes
//! claiming terabytes would end the process, and a real 64 MiB message could
//! unpack to gigabytes (red team). Clients send uncompressed batches unless
//! told otherwise (ADBC, pyarrow), so nothing is lost.
//!
//! What a decoded batch holds is then counted whole by its consumer
//! ([`citylake_engine::ingest::held_bytes`]): padding in a message is memory.

use arrow_flight::FlightData;
use arrow_flight::error::FlightError;
use citylake_engine::datafusion::arrow::ipc;
use futures::{Stream, StreamExt};

/// `messages`, each refused if its body is compressed.
pub fn checked(
    messages: impl Stream<Item = Result<FlightData, FlightError>> + Send,
) -> impl Stream<Item = Result<FlightData, FlightError>> + Send {
    messages.map(|m| m.and_then(|data| refuse_compressed(&data).map(|()| data)))
}

fn refuse_compressed(data: &FlightData) -> Result<(), FlightError> {
    if data.data_header.is_empty() {
        return Ok(());
    }
    let message = ipc::root_as_message(&data.data_header)
        .map_err(|e| FlightError::DecodeError(format!("not an Arrow IPC message: {e}")))?;
    let compressed = message
        .header_as_record_batch()
        .and_then(|b| b.compression())
        .is_some()
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

    #[tokio::test]
    async fn compressed_bodies_are_refused_before_decoding() {
        let plain = messages(None).await;
        let decoded: Vec<RecordBatch> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(checked(
                futures::stream::iter(plain.into_iter().map(Ok)),
            ))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(decoded[0].num_rows(), 1000);
        for codec in [CompressionType::LZ4_FRAME, CompressionType::ZSTD] {
            let sent = messages(Some(codec)).await;
            let e = checked(futures::stream::iter(sent.into_iter().map(Ok)))
                .try_collect::<Vec<_>>()
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("compressed Arrow IPC bodies"), "{e}");
        }
        // a header that is not an IPC message is named as such
        let junk = FlightData {
            data_header: vec![1, 2, 3].into(),
            ..Default::default()
        };
        let e = refuse_compressed(&junk).unwrap_err().to_string();
        assert!(e.contains("not an Arrow IPC message"), "{e}");
    }
}
