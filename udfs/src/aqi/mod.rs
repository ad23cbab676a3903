//! Air quality index, China (HJ 633-2012 and HJ 633-2026).
//!
//! [`standard`] holds the breakpoint tables and the exact IAQI arithmetic; the
//! SQL functions built on it are registered by [`functions`].

mod iaqi;
mod level;
mod report;
pub mod standard;

pub use iaqi::IaqiCn;
pub use level::AqiLevel;
pub use report::AqiCn;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

/// The SQL functions of this family.
pub fn functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(IaqiCn::default())),
        Arc::new(ScalarUDF::from(AqiCn::daily())),
        Arc::new(ScalarUDF::from(AqiCn::hourly())),
        Arc::new(ScalarUDF::from(AqiCn::primary())),
        Arc::new(ScalarUDF::from(AqiCn::hourly_primary())),
        Arc::new(ScalarUDF::from(AqiLevel::level())),
        Arc::new(ScalarUDF::from(AqiLevel::category())),
        Arc::new(ScalarUDF::from(AqiLevel::color())),
    ]
}
