//! The shape every generated table shares: its catalog entry and the files to write.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Array, Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema, SchemaRef};
use citylake_catalog::{ColumnSpec, ColumnType, DatasetSpec, PiiTag};

use crate::Result;
use crate::world::World;

/// Receives the batches of one file, in order.
pub type BatchSink<'a> = dyn FnMut(RecordBatch) -> Result<()> + 'a;

/// Writes the batches of one file.
pub type PartFn = Box<dyn Fn(&World, &SchemaRef, &mut BatchSink<'_>) -> Result<()> + Send + Sync>;

/// One file of a table.
pub struct FilePart {
    /// Path below the dataset's location, e.g. `dt=2025-01-01/part-0.parquet`.
    pub rel_path: String,
    pub write: PartFn,
}

/// A table: its catalog entry and its files.
pub struct TableDef {
    pub spec: DatasetSpec,
    pub parts: Vec<FilePart>,
}

impl TableDef {
    /// The Arrow schema of the files (the declared columns, partitions excluded).
    pub fn file_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.spec
                .columns
                .iter()
                .map(|c| {
                    let t: ColumnType = c
                        .data_type
                        .as_deref()
                        .and_then(|t| t.parse().ok())
                        .expect("generator declares valid types");
                    Field::new(&c.name, t.arrow_type(), true)
                })
                .collect::<Vec<_>>(),
        ))
    }

    /// Indices of the sort-order columns in the file schema.
    pub fn sorted_by(&self) -> Vec<usize> {
        self.spec
            .sort_order
            .iter()
            .filter_map(|s| self.spec.columns.iter().position(|c| &c.name == s))
            .collect()
    }
}

/// A documented column of a generated table.
pub fn column(name: &str, data_type: &str, description: &str) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        data_type: Some(data_type.into()),
        description: description.into(),
        pii: None,
        required: false,
        min: None,
        max: None,
    }
}

/// A documented column holding personal or secret information.
pub fn pii_column(name: &str, data_type: &str, description: &str, tag: PiiTag) -> ColumnSpec {
    ColumnSpec {
        pii: Some(tag),
        ..column(name, data_type, description)
    }
}

/// Array constructors, so table code reads as a list of columns.
pub fn utf8<S: AsRef<str>>(v: Vec<Option<S>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}
pub fn utf8_values<S: AsRef<str>>(v: Vec<S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}
pub fn i16s(v: Vec<Option<i16>>) -> ArrayRef {
    Arc::new(Int16Array::from(v))
}
pub fn i32s(v: Vec<Option<i32>>) -> ArrayRef {
    Arc::new(Int32Array::from(v))
}
pub fn i64s(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}
pub fn f64s(v: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}
pub fn timestamps(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v))
}
pub fn decimals(v: Vec<Option<i128>>, precision: u8, scale: i8) -> Result<ArrayRef> {
    Ok(Arc::new(
        Decimal128Array::from(v).with_precision_and_scale(precision, scale)?,
    ))
}

/// Assembles a batch in schema order.
pub fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Rounds to `digits` decimals (values are published rounded, like real feeds).
pub fn round_to(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
