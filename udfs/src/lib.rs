//! citylake's SQL functions: situation indices and spending-performance scores.
//!
//! Every function is a plain DataFusion UDF struct; [`register_all`] registers
//! the whole set, so that every session (and every cluster node) has the same.
//!
//! # Layout
//! One module per family (`aqi`, `traffic`, `composite`, `finance`), each exposing its
//! functions; [`register_all`] collects them, [`docs`] renders their in-code
//! documentation as `docs/functions.md`.

pub mod aqi;
mod args;
pub mod composite;
pub mod decimal;
pub mod docs;
pub mod finance;
pub mod traffic;

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};

/// Every scalar function of citylake.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    let mut all = aqi::functions();
    all.extend(traffic::functions());
    all.extend(finance::functions());
    all
}

/// Every aggregate function of citylake.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    let mut all = traffic::aggregates();
    all.extend(composite::aggregates());
    all
}

/// Every window function of citylake.
pub fn window_functions() -> Vec<Arc<WindowUDF>> {
    composite::windows()
}

/// Registers every citylake function with `registry`.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for udf in scalar_functions() {
        registry.register_udf(udf)?;
    }
    for udaf in aggregate_functions() {
        registry.register_udaf(udaf)?;
    }
    for udwf in window_functions() {
        registry.register_udwf(udwf)?;
    }
    Ok(())
}
