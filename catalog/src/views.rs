//! The city's standard views, shipped with citylake (`catalog/views/*.sql`).
//!
//! The generator writes them next to a demo lake's `catalog.toml` and declares
//! them as `[[views]]`; a production catalog can reference the same files.

use crate::spec::ViewSpec;

/// A view shipped with citylake.
pub struct StandardView {
    /// `schema.view`.
    pub name: &'static str,
    /// File name under the lake's `views/` directory.
    pub file: &'static str,
    pub owner: &'static str,
    pub description: &'static str,
    pub sql: &'static str,
}

/// Every standard view, in dependency order.
pub const STANDARD_VIEWS: &[StandardView] = &[
    StandardView {
        name: "situation.district_daily",
        file: "situation_district_daily.sql",
        owner: "city operations centre",
        description: "Daily city situation index per district (0–100, higher is better) from air \
                  quality, traffic and hotline indicators with entropy weights",
        sql: include_str!("../views/situation_district_daily.sql"),
    },
    StandardView {
        name: "finance.program_spending",
        file: "finance_program_spending.sql",
        owner: "finance",
        description: "Every program and year with its budget and the sum of its payments",
        sql: include_str!("../views/finance_program_spending.sql"),
    },
    StandardView {
        name: "finance.indicator_scores",
        file: "finance_indicator_scores.sql",
        owner: "finance",
        description: "Every performance indicator of every program and year with its score and \
                      review flags",
        sql: include_str!("../views/finance_indicator_scores.sql"),
    },
    StandardView {
        name: "finance.program_scores",
        file: "finance_program_scores.sql",
        owner: "finance",
        description: "Spending-performance evaluation per program and year: dimension scores, total, \
                  grade, budget execution rate and review flags",
        sql: include_str!("../views/finance_program_scores.sql"),
    },
];

impl StandardView {
    /// The catalog entry referencing the file under `dir` (relative to the catalog).
    pub fn spec(&self, dir: &str) -> ViewSpec {
        ViewSpec {
            name: self.name.to_string(),
            sql: None,
            file: Some(format!("{dir}/{}", self.file)),
            owner: self.owner.to_string(),
            description: self.description.to_string(),
        }
    }
}
