//! The declared columns of a dataset against what its files hold.
//!
//! A catalog that declares columns is checked when it loads, against the
//! schema of the dataset's first file: a declared column the files do not
//! have (a misspelt name would otherwise read as all NULL), and a declared
//! type the files' type cannot be read as (which would otherwise be cast
//! silently, or fail only at query time), are errors naming the dataset,
//! the column and the file — all of a dataset's problems at once. Columns
//! the files have but the catalog does not declare are kept, with the files'
//! type: declaring some columns (to type or describe them) never hides the
//! others.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::spec::DatasetSpec;

/// Whether data stored as `file` may be read as the declared `declared`
/// without changing a value: the same type, text in any of Arrow's string
/// layouts, a wider integer or float, a timestamp in another unit, a decimal
/// of the same scale with room for the digits.
pub fn compatible(declared: &DataType, file: &DataType) -> bool {
    use DataType::*;
    let text = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let width = |t: &DataType| t.primitive_width().unwrap_or(0);
    match (declared, file) {
        (d, f) if d == f => true,
        (d, f) if text(d) && text(f) => true,
        (d, Dictionary(_, value)) => compatible(d, value),
        (d, f) if d.is_signed_integer() && f.is_integer() => {
            width(d) > width(f) || (width(d) == width(f) && f.is_signed_integer())
        }
        (Float64, f) => f.is_floating() || f.is_integer(),
        (Timestamp(_, dz), Timestamp(_, fz)) => dz == fz,
        (Decimal128(dp, ds), Decimal128(fp, fs)) => ds == fs && fp <= dp,
        (Decimal128(dp, ds), f) if f.is_integer() => (*dp as i32 - *ds as i32) >= 19,
        _ => false,
    }
}

/// The table schema of `ds` given the schema of its files: the files'
/// columns in their order, declared types where declared (text as
/// `Utf8View` when `view_types`), undeclared columns as the files hold
/// them; or the problems found, each a sentence.
pub fn table_schema(
    ds: &DatasetSpec,
    file: &Schema,
    view_types: bool,
) -> Result<SchemaRef, Vec<String>> {
    let partitions: Vec<&str> = ds.partitions.iter().map(|p| p.name.as_str()).collect();
    let mut problems = vec![];
    for c in &ds.columns {
        if partitions.contains(&c.name.as_str()) {
            continue;
        }
        if file.field_with_name(&c.name).is_err() {
            let hint = nearest(&c.name, file.fields().iter().map(|f| f.name().as_str()))
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            problems.push(format!(
                "column `{}` is declared but the files have no such column{hint} (they have: {})",
                c.name,
                file.fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let mut fields = vec![];
    for f in file.fields() {
        let declared = ds.columns.iter().find(|c| &c.name == f.name());
        let declared_type = declared.and_then(|c| {
            let text = c.data_type.as_deref()?;
            Some((text, text.parse::<crate::types::ColumnType>().ok()?))
        });
        let data_type = match declared_type {
            Some((text, t)) => {
                if !compatible(&t.arrow_type(), f.data_type()) {
                    problems.push(format!(
                        "column `{}` is declared {text} but the files hold {}",
                        f.name(),
                        sql_name(f.data_type())
                    ));
                }
                read_type(&t, view_types)
            }
            None => f.data_type().clone(),
        };
        fields.push(Field::new(f.name(), data_type, true));
    }
    if problems.is_empty() {
        Ok(Arc::new(Schema::new(fields)))
    } else {
        Err(problems)
    }
}

/// A type as the catalog spells types (Arrow's name for the others).
fn sql_name(t: &DataType) -> String {
    use DataType::*;
    match t {
        Utf8 | LargeUtf8 | Utf8View => "text".into(),
        Boolean => "boolean".into(),
        Int8 | Int16 => "smallint".into(),
        Int32 => "int".into(),
        Int64 => "bigint".into(),
        Float32 | Float64 => "double".into(),
        Date32 | Date64 => "date".into(),
        Timestamp(..) => "timestamp".into(),
        Decimal128(p, s) => format!("decimal({p},{s})"),
        Dictionary(_, value) => sql_name(value),
        other => other.to_string(),
    }
}

/// The candidate nearest to a misspelt `name`, if one is near enough to be
/// what was meant (ties go to the first in name order). The one measure for
/// every "did you mean" of the project: columns here, tables in the engine.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(name, c), c))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| c.to_string())
}

/// How a declared type is read: text as `Utf8View` when the session reads
/// strings as views (DataFusion's `schema_force_view_types`).
pub fn read_type(t: &crate::types::ColumnType, view_types: bool) -> DataType {
    match t.arrow_type() {
        DataType::Utf8 if view_types => DataType::Utf8View,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn compatible_types() {
        use DataType::*;
        assert!(compatible(&Int64, &Int32));
        assert!(compatible(&Int64, &Int64));
        assert!(!compatible(&Int32, &Int64), "narrowing loses values");
        assert!(!compatible(&Int64, &UInt64));
        assert!(compatible(&Utf8, &Utf8View));
        assert!(compatible(
            &Utf8,
            &Dictionary(Box::new(Int32), Box::new(Utf8))
        ));
        assert!(compatible(&Float64, &Float32));
        assert!(compatible(&Float64, &Int32));
        assert!(!compatible(&Int64, &Float64));
        assert!(!compatible(&Int64, &Utf8));
        assert!(compatible(
            &Timestamp(TimeUnit::Microsecond, None),
            &Timestamp(TimeUnit::Nanosecond, None)
        ));
        assert!(!compatible(
            &Timestamp(TimeUnit::Microsecond, None),
            &Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        ));
        assert!(compatible(&Decimal128(18, 2), &Decimal128(12, 2)));
        assert!(!compatible(&Decimal128(18, 2), &Decimal128(18, 4)));
        assert!(!compatible(&Date32, &Utf8));
    }
}
