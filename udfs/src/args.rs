//! Argument plumbing shared by the scalar functions: coercion rules, typed
//! access to coerced arrays, literal arguments seen at planning time.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, PrimitiveArray};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs};

use crate::decimal::Decimal;

/// The arguments of a scalar function as arrays of one length, and whether
/// they were all scalars (then the result is returned as a scalar too).
pub(crate) fn arguments(args: &[ColumnarValue]) -> Result<(Vec<ArrayRef>, bool)> {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    Ok((ColumnarValue::values_to_arrays(args)?, all_scalar))
}

/// A result array as the function's value: a scalar when every argument was one.
pub(crate) fn result(array: ArrayRef, all_scalar: bool) -> Result<ColumnarValue> {
    if all_scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

/// Whether a type is accepted as text.
pub(crate) fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

/// Coerces a text argument to `Utf8`, or a planning error naming the function.
pub(crate) fn text(function: &str, what: &str, t: &DataType) -> Result<DataType> {
    if is_text(t) {
        Ok(DataType::Utf8)
    } else {
        plan_err!("{function}: {what} must be text, got {t} (cast it: CAST({what} AS VARCHAR))")
    }
}

/// Coerces a numeric argument: integers to Int64, floats to Float64, decimals
/// to Decimal128 (exact); anything else is a planning error naming the function.
pub(crate) fn numeric(function: &str, what: &str, t: &DataType) -> Result<DataType> {
    match t {
        t if t.is_integer() => Ok(DataType::Int64),
        t if t.is_floating() || t.is_null() => Ok(DataType::Float64),
        DataType::Decimal128(..) => Ok(t.clone()),
        DataType::Decimal256(..) | DataType::Decimal32(..) | DataType::Decimal64(..) => {
            Ok(DataType::Decimal128(38, 10))
        }
        other => plan_err!(
            "{function}: {what} must be numeric, got {other} (cast it: CAST({what} AS DOUBLE))"
        ),
    }
}

/// Checks the arity and coerces every argument to Float64 (for functions
/// whose result is a DOUBLE anyway); `names` are the arguments' names.
pub(crate) fn floats(function: &str, names: &[&str], t: &[DataType]) -> Result<Vec<DataType>> {
    if t.len() != names.len() {
        return plan_err!(
            "{function} takes ({}), got {} arguments",
            names.join(", "),
            t.len()
        );
    }
    t.iter()
        .zip(names)
        .map(|(ty, what)| numeric(function, what, ty).map(|_| DataType::Float64))
        .collect()
}

/// Typed access to an array coerced by [`numeric`], resolved once per batch.
pub(crate) enum Numeric<'a> {
    Int(&'a PrimitiveArray<Int64Type>),
    Float(&'a PrimitiveArray<Float64Type>),
    Decimal(&'a Decimal128Array, i8),
}

impl<'a> Numeric<'a> {
    pub fn new(array: &'a ArrayRef) -> Self {
        match array.data_type() {
            DataType::Int64 => Self::Int(array.as_primitive()),
            DataType::Decimal128(_, scale) => {
                Self::Decimal(array.as_primitive::<Decimal128Type>(), *scale)
            }
            // the coercion leaves nothing else
            _ => Self::Float(array.as_primitive()),
        }
    }

    pub fn is_null(&self, i: usize) -> bool {
        match self {
            Self::Int(a) => a.is_null(i),
            Self::Float(a) => a.is_null(i),
            Self::Decimal(a, _) => a.is_null(i),
        }
    }

    /// Calls `f(i, decimal)` for rows `0..len` in one loop per array type
    /// (the batch-wise form of [`Numeric::decimal`]).
    pub fn for_each_decimal(&self, len: usize, mut f: impl FnMut(usize, Option<Decimal>)) {
        match self {
            Self::Float(a) if a.null_count() == 0 => {
                for (i, &x) in a.values()[..len].iter().enumerate() {
                    f(i, Decimal::from_f64(x));
                }
            }
            Self::Int(a) if a.null_count() == 0 => {
                for (i, &x) in a.values()[..len].iter().enumerate() {
                    f(i, Some(Decimal::new(x as i128, 0)));
                }
            }
            _ => {
                for i in 0..len {
                    f(i, self.decimal(i));
                }
            }
        }
    }

    /// The exact decimal of row `i` (a DOUBLE means its shortest decimal);
    /// `None` for NULL, NaN and infinities.
    pub fn decimal(&self, i: usize) -> Option<Decimal> {
        if self.is_null(i) {
            return None;
        }
        match self {
            Self::Int(a) => Some(Decimal::new(a.value(i) as i128, 0)),
            Self::Float(a) => Decimal::from_f64(a.value(i)),
            Self::Decimal(a, scale) => {
                let v = a.value(i);
                Some(if *scale >= 0 {
                    Decimal::new(v, *scale as u32)
                } else {
                    Decimal::new(v.saturating_mul(10i128.pow(scale.unsigned_abs() as u32)), 0)
                })
            }
        }
    }
}

/// The text of argument `i` when it is a literal at planning time.
pub(crate) fn literal(args: &ReturnFieldArgs, i: usize) -> Option<String> {
    match args.scalar_arguments.get(i).copied().flatten() {
        Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => Some(s.clone()),
        _ => None,
    }
}

/// A nullable result field named after the function.
pub(crate) fn field(name: &str, t: DataType) -> Arc<datafusion::arrow::datatypes::Field> {
    Arc::new(datafusion::arrow::datatypes::Field::new(name, t, true))
}

/// Parses a `lang` value: `'zh'` (default, also `'cn'`) or `'en'`; `Some(true)` for English.
fn lang(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "zh" | "cn" => Some(false),
        "en" => Some(true),
        _ => None,
    }
}

/// Parses a `lang` argument at execution; `true` for English.
pub(crate) fn english(function: &str, value: &str) -> Result<bool> {
    match lang(value) {
        Some(english) => Ok(english),
        None => datafusion::common::exec_err!(
            "{function}: unknown lang '{value}'; expected 'zh' or 'en'"
        ),
    }
}

/// Checks a literal `lang` argument (position `i`) at planning time.
pub(crate) fn check_lang(function: &str, args: &ReturnFieldArgs, i: usize) -> Result<()> {
    match literal(args, i) {
        Some(value) if lang(&value).is_none() => {
            plan_err!("{function}: unknown lang '{value}'; expected 'zh' or 'en'")
        }
        _ => Ok(()),
    }
}
