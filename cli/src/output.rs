//! Writing query results in the formats of `--format`.

use std::io::Write;

use anyhow::{Context, bail};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use citylake_engine::datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use crate::args::Format;

/// CSV has no nested values: lists, structs and maps are written as their
/// display text (`[PM2.5, PM10]`), as the table format shows them.
fn nested_as_text(batch: RecordBatch) -> anyhow::Result<RecordBatch> {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use std::sync::Arc;

    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type().is_nested())
    {
        return Ok(batch);
    }
    let options = FormatOptions::default();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.data_type().is_nested() {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let text: StringArray = (0..column.len())
                .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Writes one result stream to `out`; returns the number of rows.
pub async fn write_stream(
    stream: SendableRecordBatchStream,
    format: Format,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u64> {
    let schema = stream.schema();
    // an error of the query is the engine's, told the engine's way (once,
    // without DataFusion's "External error:" wrapper)
    let mut stream = stream.map(|batch| batch.map_err(citylake_engine::EngineError::Query));
    let mut rows = 0u64;
    match format {
        Format::Table => {
            let mut batches = vec![];
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                batches.push(batch);
            }
            write_table(&schema, &batches, out)?;
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            while let Some(batch) = stream.next().await {
                let batch = nested_as_text(batch?)?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            if rows == 0 {
                // a header line even without rows
                writer.write(&nested_as_text(RecordBatch::new_empty(schema.clone()))?)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(out);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.finish()?;
            writer.into_inner().write_all(b"\n")?;
        }
        Format::Ndjson => {
            let mut writer = arrow::json::LineDelimitedWriter::new(out);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.finish()?;
        }
        Format::Parquet => {
            let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema, None)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.close()?;
        }
        Format::Arrow => {
            let mut writer = arrow::ipc::writer::FileWriter::try_new(out, &schema)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.finish()?;
        }
    }
    Ok(rows)
}

fn write_table(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let table = arrow::util::pretty::pretty_format_batches_with_schema(schema.clone(), batches)
        .context("formatting the result table")?;
    writeln!(out, "{table}")?;
    Ok(())
}

/// Binary formats hold one result set.
pub fn check_single_result(format: Format, queries: usize) -> anyhow::Result<()> {
    if matches!(format, Format::Parquet | Format::Arrow) && queries > 1 {
        bail!(
            "--format {} writes one result; the input has {queries} statements",
            if format == Format::Parquet {
                "parquet"
            } else {
                "arrow"
            }
        );
    }
    Ok(())
}
