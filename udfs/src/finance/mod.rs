//! Spending-performance evaluation (专项资金绩效评价, 财预〔2020〕10号;
//! `docs/standards.md`).
//!
//! Scores and rates are exact: inputs are read as decimals (a DOUBLE as its
//! shortest decimal), every ratio is an exact fraction, and results are
//! DECIMAL rounded half to even (scores to 4 decimals, rates to 6). The grade
//! bands and the over-completion threshold are session configuration
//! ([`EvaluationOptions`], `SET citylake.grade_excellent = 85`), defaulting to
//! the standard's values; the engine sets them from the catalog.
//!
//! # Layout
//! One file per function (`budget` holds the rate and the score, which share
//! their arithmetic); this module holds the options, the shared argument
//! checks ([`Parameters`]) and [`functions`].

mod budget;
mod grade;
mod indicator;
mod over_completion;
mod qualitative;

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::{ConfigExtension, ConfigOptions};
use datafusion::common::{Result, extensions_options, plan_err};
use datafusion::logical_expr::{DocSection, ScalarUDF, Signature, Volatility};

use crate::args::{Numeric, numeric, text};
use crate::decimal::{Decimal, Fraction};

pub use budget::BudgetExecution;
pub use grade::PerfGrade;
pub use indicator::IndicatorScore;
pub use over_completion::OverCompletionFlag;
pub use qualitative::QualitativeScore;

extensions_options! {
    /// Configuration of the performance evaluation (`citylake.*`).
    pub struct EvaluationOptions {
        /// Lowest total score graded 优 (excellent).
        pub grade_excellent: f64, default = 90.0
        /// Lowest total score graded 良 (good).
        pub grade_good: f64, default = 80.0
        /// Lowest total score graded 中 (fair); below it 差 (poor).
        pub grade_fair: f64, default = 60.0
        /// actual / target above this is flagged for review by over_completion_flag.
        pub over_completion_threshold: f64, default = 1.2
    }
}

impl ConfigExtension for EvaluationOptions {
    const PREFIX: &'static str = "citylake";
}

impl EvaluationOptions {
    /// The options of a session's configuration (the defaults when unset).
    pub fn of(config: &ConfigOptions) -> EvaluationOptions {
        config
            .extensions
            .get::<EvaluationOptions>()
            .cloned()
            .unwrap_or_default()
    }
}

pub(crate) const FINANCE: DocSection = DocSection {
    include: true,
    label: "Spending-performance evaluation (财预〔2020〕10号)",
    description: Some(
        "Scores, rates and grades for the evaluation of special funds (docs/standards.md)",
    ),
};

/// Precision and scale of score results (DECIMAL(10, 4)) and rate results (DECIMAL(12, 6)).
const SCORE: (u8, i8) = (10, 4);
const RATE: (u8, i8) = (12, 6);

/// The scalar functions of this family.
pub fn functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(BudgetExecution::rate())),
        Arc::new(ScalarUDF::from(BudgetExecution::score())),
        Arc::new(ScalarUDF::from(IndicatorScore::default())),
        Arc::new(ScalarUDF::from(QualitativeScore::default())),
        Arc::new(ScalarUDF::from(PerfGrade::default())),
        Arc::new(ScalarUDF::from(OverCompletionFlag::default())),
    ]
}

/// Every function of the family checks its own arguments at planning time.
fn signature() -> Signature {
    Signature::user_defined(Volatility::Stable)
}

/// An argument's type: a number (read exactly) or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    Number(&'static str),
    Text(&'static str),
}

/// A function's positional parameters: the first `required` must be given,
/// the rest may be left off from the end.
struct Parameters {
    function: &'static str,
    usage: &'static str,
    required: usize,
    params: &'static [Param],
}

impl Parameters {
    /// Checks the arity and coerces each argument by its position: numbers to
    /// Int64/Float64/Decimal128 (exact), text to Utf8.
    fn coerce(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        if !(self.required..=self.params.len()).contains(&types.len()) {
            return plan_err!(
                "{} takes {}, got {} arguments",
                self.function,
                self.usage,
                types.len()
            );
        }
        self.params
            .iter()
            .zip(types)
            .map(|(param, t)| match param {
                Param::Number(what) => numeric(self.function, what, t),
                Param::Text(what) => text(self.function, what, t),
            })
            .collect()
    }
}

/// The exact value of row `i` of a numeric argument; `None` for NULL.
fn frac(n: &Numeric, i: usize) -> Option<Fraction> {
    n.decimal(i).and_then(Fraction::of)
}

fn from_f64(x: f64) -> Option<Fraction> {
    Decimal::from_f64(x).and_then(Fraction::of)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// A session with the family registered and the default options.
    pub(crate) fn context() -> SessionContext {
        let config = SessionConfig::new().with_option_extension(EvaluationOptions::default());
        let ctx = SessionContext::new_with_config(config);
        for f in functions() {
            ctx.register_udf(f.as_ref().clone());
        }
        ctx
    }

    pub(crate) async fn run_in(ctx: &SessionContext, sql: &str) -> Result<String> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    pub(crate) async fn run(sql: &str) -> Result<String> {
        run_in(&context(), sql).await
    }

    #[tokio::test]
    async fn planning_errors() {
        for (sql, needle) in [
            (
                "SELECT indicator_score(1, 2, 'up', 10)",
                "indicator_score: unknown direction 'up'",
            ),
            (
                "SELECT indicator_score(1, 2, 'interval', 10)",
                "'interval' needs target_high",
            ),
            (
                "SELECT indicator_score(1, 2, 'lower_better', 10, 'square')",
                "unknown rule 'square'",
            ),
            (
                "SELECT indicator_score(1, 2, 'lower_better', 10, 5, 'square')",
                "unknown rule 'square'",
            ),
            (
                "SELECT indicator_score(1, 2, 3, 10)",
                "indicator_score: direction must be text",
            ),
            (
                "SELECT qualitative_score('great', 10)",
                "unknown tier 'great'",
            ),
            (
                "SELECT budget_execution_rate(1)",
                "budget_execution_rate takes (spent, budget), got 1",
            ),
            (
                "SELECT budget_execution_rate(1, 2, 3)",
                "budget_execution_rate takes (spent, budget), got 3",
            ),
            (
                "SELECT budget_execution_score(1, 2, 'x')",
                "budget_execution_score: full_marks must be numeric",
            ),
            (
                "SELECT perf_grade('A')",
                "perf_grade: score must be numeric",
            ),
            ("SELECT perf_grade(1, 'fr')", "unknown lang 'fr'"),
            (
                "SELECT over_completion_flag(1)",
                "over_completion_flag takes (actual, target [, threshold]), got 1",
            ),
        ] {
            let e = run(sql).await.unwrap_err().to_string();
            assert!(e.contains(needle), "{sql}: {e}");
        }
    }

    #[tokio::test]
    async fn every_function_answers_null_for_null() {
        let t = run(
            "SELECT budget_execution_rate(NULL, 1) a, budget_execution_score(1, NULL) b, \
             indicator_score(NULL, 1, 'higher_better', 10) c, qualitative_score(NULL, 10) d, \
             perf_grade(NULL) e, over_completion_flag(1, NULL) f",
        )
        .await
        .unwrap();
        assert!(t.contains("|   |   |   |   |   |   |"), "{t}");
    }
}
