//! Client-safe Arrow types on the wire: view types become their classic forms
//! (`Utf8View` → `Utf8`, `BinaryView` → `Binary`) and dictionaries their value
//! type, recursively, so JDBC, ODBC and older ADBC drivers read every result.

use std::sync::Arc;

use citylake_engine::datafusion::arrow::array::RecordBatch;
use citylake_engine::datafusion::arrow::compute::{CastOptions, cast_with_options};
use citylake_engine::datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use citylake_engine::datafusion::arrow::error::ArrowError;

fn wire_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => wire_type(value),
        DataType::List(f) => DataType::List(Arc::new(wire_field(f))),
        DataType::LargeList(f) => DataType::LargeList(Arc::new(wire_field(f))),
        DataType::ListView(f) => DataType::List(Arc::new(wire_field(f))),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| wire_field(f)).collect::<Fields>())
        }
        other => other.clone(),
    }
}

fn wire_field(f: &Field) -> Field {
    f.clone().with_data_type(wire_type(f.data_type()))
}

/// The schema announced to clients for a result of `schema`.
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| wire_field(f))
            .collect::<Fields>(),
        schema.metadata().clone(),
    ))
}

/// Converts a batch to `target` (from [`wire_schema`]); a no-op when nothing differs.
pub fn to_wire(batch: RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().fields() == target.fields() {
        return batch.with_schema(target.clone());
    }
    let options = CastOptions::default();
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast_with_options(c, f.data_type(), &options)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use citylake_engine::datafusion::arrow::array::{DictionaryArray, Int32Array, StringViewArray};
    use citylake_engine::datafusion::arrow::datatypes::Int32Type;

    #[test]
    fn views_and_dictionaries_become_plain_types() {
        let dict: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
        let batch = RecordBatch::try_from_iter(vec![
            (
                "s",
                Arc::new(StringViewArray::from(vec!["x", "y", "z"])) as _,
            ),
            ("d", Arc::new(dict) as _),
            ("i", Arc::new(Int32Array::from(vec![1, 2, 3])) as _),
        ])
        .unwrap();
        let target = wire_schema(&batch.schema());
        assert_eq!(target.field(0).data_type(), &DataType::Utf8);
        assert_eq!(target.field(1).data_type(), &DataType::Utf8);
        assert_eq!(target.field(2).data_type(), &DataType::Int32);
        let out = to_wire(batch, &target).unwrap();
        assert_eq!(out.schema(), target);
    }
}
