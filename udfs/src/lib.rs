//! citylake's SQL functions: situation indices and spending-performance scores.
//!
//! Every function is a plain DataFusion UDF struct; [`register_all`] registers
//! the whole set, so that every session (and every cluster node) has the same.
//!
//! # Layout
//! One module per family; each exposes `functions()`; [`register_all`] collects them.

pub mod aqi;

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::ScalarUDF;

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
