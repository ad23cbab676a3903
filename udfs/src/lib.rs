//! citylake's SQL functions: situation indices and spending-performance scores.
//!
//! Every function is a plain DataFusion UDF struct; [`register_all`] registers
//! the whole set, so that every session (and every cluster node) has the same.
//!
//! # Layout
//! One module per family; each exposes `functions()`; [`register_all`] collects them.

pub mod aqi;

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};

/// Every scalar function of citylake.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    aqi::functions()
}

/// Registers every citylake function with `registry`.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for udf in scalar_functions() {
        registry.register_udf(udf)?;
    }
    Ok(())
}

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
