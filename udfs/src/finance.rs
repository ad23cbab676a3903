//! Spending-performance evaluation (专项资金绩效评价, 财预〔2020〕10号; DOMAIN.md §4).
//!
//! Scores and rates are exact: inputs are read as decimals (a DOUBLE as its
//! shortest decimal), every ratio is an exact fraction, and results are
//! DECIMAL rounded half to even (scores to 4 decimals, rates to 6). The grade
//! bands and the over-completion threshold are session configuration
//! ([`EvaluationOptions`], `SET citylake.grade_excellent = 85`),
//! defaulting to DOMAIN.md's values; the engine sets them from the catalog.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Decimal128Builder, StringBuilder,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::FieldRef;
use datafusion::common::config::{ConfigExtension, ConfigOptions};
use datafusion::common::{Result, exec_err, extensions_options, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

use crate::args::{Numeric, arguments, english, field, is_text, literal, numeric, result, text};
use crate::decimal::{Decimal, Fraction};

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
        "Scores, rates and grades for the evaluation of special funds (DOMAIN.md §4)",
    ),
};

/// Scale of score results (DECIMAL(10, 4)) and rate results (DECIMAL(12, 6)).
const SCORE: (u8, i8) = (10, 4);
const RATE: (u8, i8) = (12, 6);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    BudgetExecutionRate,
    BudgetExecutionScore,
    IndicatorScore,
    QualitativeScore,
    PerfGrade,
    OverCompletionFlag,
}

/// The evaluation functions: one implementation, a kind each.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Finance {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

/// The scalar functions of this family.
pub fn functions() -> Vec<Arc<ScalarUDF>> {
    [
        ("budget_execution_rate", Kind::BudgetExecutionRate),
        ("budget_execution_score", Kind::BudgetExecutionScore),
        ("indicator_score", Kind::IndicatorScore),
        ("qualitative_score", Kind::QualitativeScore),
        ("perf_grade", Kind::PerfGrade),
        ("over_completion_flag", Kind::OverCompletionFlag),
    ]
    .into_iter()
    .map(|(name, kind)| {
        Arc::new(ScalarUDF::from(Finance {
            name,
            kind,
            signature: Signature::user_defined(Volatility::Stable),
        }))
    })
    .collect()
}

/// Scoring direction of a quantitative indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    HigherBetter,
    LowerBetter,
    Interval,
    Boolean,
}

impl Direction {
    const NAMES: &'static str = "'higher_better', 'lower_better', 'interval', 'boolean'";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "higher_better" => Ok(Self::HigherBetter),
            "lower_better" => Ok(Self::LowerBetter),
            "interval" => Ok(Self::Interval),
            "boolean" => Ok(Self::Boolean),
            _ => Err(format!(
                "unknown direction '{s}'; expected one of {}",
                Self::NAMES
            )),
        }
    }
}

/// Rule for lower-is-better indicators that miss their target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// full × target / actual (default).
    Ratio,
    /// full × max(0, 1 − (actual − target) / target).
    Linear,
}

impl Rule {
    fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ratio" => Ok(Self::Ratio),
            "linear" => Ok(Self::Linear),
            _ => Err(format!("unknown rule '{s}'; expected 'ratio' or 'linear'")),
        }
    }
}

/// Qualitative tiers and their share of full marks: (lower, upper].
fn tier_band(s: &str) -> std::result::Result<(i128, i128), String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "achieved" | "达成" => Ok((80, 100)),
        "partial" | "部分达成" => Ok((60, 80)),
        "not_achieved" | "未达成" => Ok((0, 60)),
        _ => Err(format!(
            "unknown tier '{s}'; expected 'achieved', 'partial' or 'not_achieved'"
        )),
    }
}

/// Score of a quantitative indicator (DOMAIN.md §4), capped at full marks.
fn indicator(
    actual: Fraction,
    target: Fraction,
    high: Option<Fraction>,
    direction: Direction,
    full: Fraction,
    rule: Rule,
) -> Option<Option<Fraction>> {
    let zero = Fraction::int(0);
    let one = Fraction::int(1);
    if actual.is_negative() || target.is_negative() || full.is_negative() {
        return Some(None);
    }
    let share = match direction {
        Direction::HigherBetter => {
            if actual.cmp_frac(&target)?.is_ge() {
                one
            } else {
                actual.checked_div(target)?
            }
        }
        Direction::LowerBetter => {
            if actual.cmp_frac(&target)?.is_le() {
                one
            } else if target.num == 0 {
                zero
            } else {
                match rule {
                    Rule::Ratio => target.checked_div(actual)?,
                    Rule::Linear => one
                        .checked_sub(actual.checked_sub(target)?.checked_div(target)?)?
                        .max(zero)?,
                }
            }
        }
        Direction::Interval => {
            let Some(high) = high else {
                return Some(None);
            };
            if high.cmp_frac(&target)?.is_lt() {
                return Some(None);
            }
            if actual.cmp_frac(&target)?.is_ge() && actual.cmp_frac(&high)?.is_le() {
                one
            } else {
                let width = high.checked_sub(target)?;
                let distance = if actual.cmp_frac(&target)?.is_lt() {
                    target.checked_sub(actual)?
                } else {
                    actual.checked_sub(high)?
                };
                if width.num == 0 {
                    zero
                } else {
                    one.checked_sub(distance.checked_div(width)?)?.max(zero)?
                }
            }
        }
        Direction::Boolean => {
            if actual.cmp_frac(&target)?.is_ge() && actual.num != 0 {
                one
            } else {
                zero
            }
        }
    };
    Some(Some(full.checked_mul(share.min(one)?)?))
}

static DOCS: LazyLock<Vec<Documentation>> = LazyLock::new(|| {
    let b = |text: &str, syntax: &str, example: &str| {
        Documentation::builder(FINANCE, text.to_string(), syntax).with_sql_example(example)
    };
    vec![
        b(
            "Budget execution rate = spent / budget, as DECIMAL(12, 6) (0.95 is 95 %), not capped (above 1 \
             is overspending). NULL when the budget is ≤ 0, the amount spent is negative, or either is NULL.",
            "budget_execution_rate(spent, budget)",
            "> SELECT budget_execution_rate(950000, 1000000);\n+----------+\n| 0.950000 |\n+----------+",
        )
        .with_argument("spent", "amount spent (yuan), decimal")
        .with_argument("budget", "budget (yuan), decimal")
        .build(),
        b(
            "Budget execution score = full_marks × min(spent / budget, 1), DECIMAL(10, 4). NULL when the \
             budget is ≤ 0 or an input is negative or NULL.",
            "budget_execution_score(spent, budget [, full_marks])",
            "> SELECT budget_execution_score(950000, 1000000), budget_execution_score(1200000, 1000000, 20);\n+---------+---------+\n| 9.5000 | 20.0000 |\n+---------+---------+",
        )
        .with_argument("spent", "amount spent (yuan)")
        .with_argument("budget", "budget (yuan)")
        .with_argument("full_marks", "the indicator's weight; default 10")
        .build(),
        b(
            "Score of a quantitative indicator, capped at full marks, DECIMAL(10, 4). higher_better: actual ≥ \
             target → full, else full × actual / target (target 0 is met by any actual ≥ 0). lower_better: \
             actual ≤ target → full, else rule 'ratio' (default) full × target / actual, or 'linear' full × \
             max(0, 1 − (actual − target) / target); a target of 0 missed scores 0. interval [target, \
             target_high]: inside → full, outside → full × max(0, 1 − distance / width) (a zero width scores 0 \
             outside). boolean: actual ≥ target and non-zero (1 = met) → full, else 0. A negative input, an \
             interval without target_high or with target_high < target, or a NULL gives NULL. The rules of \
             DOMAIN.md §4 marked [M] are the ones to confirm locally.",
            "indicator_score(actual, target, direction, full_marks [, target_high] [, rule])",
            "> SELECT indicator_score(80, 100, 'higher_better', 15), indicator_score(120, 100, 'lower_better', 15, 'linear');\n+---------+---------+\n| 12.0000 | 12.0000 |\n+---------+---------+",
        )
        .with_argument("actual", "achieved value")
        .with_argument("target", "target (the lower bound of an interval; 1 for boolean)")
        .with_argument("direction", Direction::NAMES)
        .with_argument("full_marks", "the indicator's weight")
        .with_argument("target_high", "upper bound, for 'interval'")
        .with_argument("rule", "for 'lower_better': 'ratio' (default) or 'linear'")
        .build(),
        b(
            "Score of a qualitative indicator by tier, DECIMAL(10, 4): achieved (80 %, 100 %] of full marks, \
             partial (60 %, 80 %], not_achieved [0 %, 60 %]. `position` in [0, 1] places the score inside \
             the tier's band (1, the default, is its top; 0 its lower edge). Chinese tier names 达成, \
             部分达成, 未达成 are accepted.",
            "qualitative_score(tier, full_marks [, position])",
            "> SELECT qualitative_score('achieved', 10), qualitative_score('partial', 10, 0.5);\n+---------+--------+\n| 10.0000 | 7.0000 |\n+---------+--------+",
        )
        .with_argument("tier", "'achieved', 'partial' or 'not_achieved'")
        .with_argument("full_marks", "the indicator's weight")
        .with_argument("position", "0–1 within the tier's band; default 1")
        .build(),
        b(
            "Performance grade of a total score, rounded to 2 decimals first: ≥ 90 优, ≥ 80 良, ≥ 60 中, \
             else 差 (with 'en': excellent, good, fair, poor). The bands are configuration: \
             citylake.grade_excellent / grade_good / grade_fair (catalog `[evaluation]`, or SET). \
             NULL for NULL.",
            "perf_grade(score [, lang])",
            "> SELECT perf_grade(89.995), perf_grade(89.994, 'en');\n+----+------+\n| 优 | good |\n+----+------+",
        )
        .with_argument("score", "total score, 0–100")
        .with_argument("lang", "'zh' (default) or 'en'")
        .build(),
        b(
            "Whether an indicator is over-completed enough to be reviewed: actual / target > threshold \
             (exact, compared as actual > threshold × target). The rule caps the score at full marks and \
             allows a discretionary reduction, which cannot be automated; this flags the cases. For \
             lower-is-better indicators pass (target, actual). NULL when the target is ≤ 0 or an input is \
             NULL. The default threshold is citylake.over_completion_threshold (1.2).",
            "over_completion_flag(actual, target [, threshold])",
            "> SELECT over_completion_flag(121, 100), over_completion_flag(120, 100);\n+------+-------+\n| true | false |\n+------+-------+",
        )
        .with_argument("actual", "achieved value")
        .with_argument("target", "target")
        .with_argument("threshold", "ratio above which to flag; default from configuration (1.2)")
        .build(),
    ]
});

impl Finance {
    /// (min, max) arguments and the usage text.
    fn arity(&self) -> (usize, usize, &'static str) {
        match self.kind {
            Kind::BudgetExecutionRate => (2, 2, "(spent, budget)"),
            Kind::BudgetExecutionScore => (2, 3, "(spent, budget [, full_marks])"),
            Kind::IndicatorScore => (
                4,
                6,
                "(actual, target, direction, full_marks [, target_high] [, rule])",
            ),
            Kind::QualitativeScore => (2, 3, "(tier, full_marks [, position])"),
            Kind::PerfGrade => (1, 2, "(score [, lang])"),
            Kind::OverCompletionFlag => (2, 3, "(actual, target [, threshold])"),
        }
    }

    /// Argument names, and which are text.
    fn names(&self, n: usize, types: &[DataType]) -> Vec<(&'static str, bool)> {
        match self.kind {
            Kind::BudgetExecutionRate | Kind::BudgetExecutionScore => {
                vec![("spent", false), ("budget", false), ("full_marks", false)]
            }
            Kind::IndicatorScore => {
                let mut v = vec![
                    ("actual", false),
                    ("target", false),
                    ("direction", true),
                    ("full_marks", false),
                ];
                if n == 5 && is_text(&types[4]) && !types[4].is_null() {
                    v.push(("rule", true));
                } else {
                    v.push(("target_high", false));
                    v.push(("rule", true));
                }
                v
            }
            Kind::QualitativeScore => {
                vec![("tier", true), ("full_marks", false), ("position", false)]
            }
            Kind::PerfGrade => vec![("score", false), ("lang", true)],
            Kind::OverCompletionFlag => {
                vec![("actual", false), ("target", false), ("threshold", false)]
            }
        }
    }
}

fn frac(n: &Numeric, i: usize) -> Option<Fraction> {
    n.decimal(i).and_then(Fraction::of)
}

fn from_f64(x: f64) -> Option<Fraction> {
    Decimal::from_f64(x).and_then(Fraction::of)
}

impl ScalarUDFImpl for Finance {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let (min, max, usage) = self.arity();
        if !(min..=max).contains(&t.len()) {
            return plan_err!("{} takes {usage}, got {} arguments", self.name, t.len());
        }
        self.names(t.len(), t)
            .into_iter()
            .zip(t)
            .map(|((what, is_text), ty)| {
                if is_text {
                    text(self.name, what, ty)
                } else {
                    numeric(self.name, what, ty)
                }
            })
            .collect()
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::BudgetExecutionRate => DataType::Decimal128(RATE.0, RATE.1),
            Kind::PerfGrade => DataType::Utf8,
            Kind::OverCompletionFlag => DataType::Boolean,
            _ => DataType::Decimal128(SCORE.0, SCORE.1),
        })
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<_> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        for (i, (what, is_text)) in self.names(types.len(), &types).into_iter().enumerate() {
            let Some(value) = is_text.then(|| literal(&args, i)).flatten() else {
                continue;
            };
            let checked = match what {
                "direction" => Direction::parse(&value).map(|d| {
                    if d == Direction::Interval && types.len() < 5 {
                        Err("'interval' needs target_high (the 5th argument)".to_string())
                    } else {
                        Ok(())
                    }
                }),
                "rule" => Rule::parse(&value).map(|_| Ok(())),
                "tier" => tier_band(&value).map(|_| Ok(())),
                "lang" => english(self.name, &value)
                    .map(|_| Ok(()))
                    .map_err(|e| e.to_string()),
                _ => Ok(Ok(())),
            };
            if let Err(e) | Ok(Err(e)) = checked {
                return plan_err!("{}: {e}", self.name);
            }
        }
        Ok(field(self.name, self.return_type(&types)?))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let options = EvaluationOptions::of(&args.config_options);
        let (arrays, all_scalar) = arguments(&args.args)?;
        let types: Vec<_> = arrays.iter().map(|a| a.data_type().clone()).collect();
        let names = self.names(arrays.len(), &types);
        let len = arrays[0].len();
        let num = |name: &str| {
            names
                .iter()
                .zip(&arrays)
                .find(|((n, t), _)| *n == name && !t)
                .map(|(_, a)| Numeric::new(a))
        };
        let txt = |name: &str| {
            names
                .iter()
                .zip(&arrays)
                .find(|((n, t), _)| *n == name && *t)
                .map(|(_, a)| a.as_string::<i32>())
        };
        let overflow = || exec_err!("{}: arithmetic overflow", self.name);
        let out: ArrayRef = match self.kind {
            Kind::BudgetExecutionRate | Kind::BudgetExecutionScore => {
                let (spent, budget) =
                    (num("spent").expect("spent"), num("budget").expect("budget"));
                let full = num("full_marks");
                let rate_only = self.kind == Kind::BudgetExecutionRate;
                let scale = if rate_only { RATE } else { SCORE };
                let mut b = Decimal128Builder::with_capacity(len);
                for i in 0..len {
                    let full = match &full {
                        Some(f) => frac(f, i),
                        None => Some(Fraction::int(10)),
                    };
                    let (Some(s), Some(bu), Some(full)) = (frac(&spent, i), frac(&budget, i), full)
                    else {
                        b.append_null();
                        continue;
                    };
                    if bu.num <= 0 || s.is_negative() || full.is_negative() {
                        b.append_null();
                        continue;
                    }
                    let v = (|| {
                        let rate = s.checked_div(bu)?;
                        if rate_only {
                            rate.round(scale.1 as u32)
                        } else {
                            full.checked_mul(rate.min(Fraction::int(1))?)?
                                .round(scale.1 as u32)
                        }
                    })();
                    match v {
                        Some(v) => b.append_value(v),
                        None => return overflow(),
                    }
                }
                Arc::new(b.finish().with_precision_and_scale(scale.0, scale.1)?)
            }
            Kind::IndicatorScore => {
                let (actual, target, full) = (
                    num("actual").expect("actual"),
                    num("target").expect("target"),
                    num("full_marks").expect("full_marks"),
                );
                let high = num("target_high");
                let direction = txt("direction").expect("direction");
                let rule = txt("rule");
                let mut b = Decimal128Builder::with_capacity(len);
                for i in 0..len {
                    let (Some(a), Some(t), Some(f)) =
                        (frac(&actual, i), frac(&target, i), frac(&full, i))
                    else {
                        b.append_null();
                        continue;
                    };
                    if direction.is_null(i) || rule.is_some_and(|r| r.is_null(i)) {
                        b.append_null();
                        continue;
                    }
                    let d = match Direction::parse(direction.value(i)) {
                        Ok(d) => d,
                        Err(e) => return exec_err!("{}: {e}", self.name),
                    };
                    let r = match rule.map(|r| Rule::parse(r.value(i))).transpose() {
                        Ok(r) => r.unwrap_or(Rule::Ratio),
                        Err(e) => return exec_err!("{}: {e}", self.name),
                    };
                    let h = high.as_ref().and_then(|h| frac(h, i));
                    match indicator(a, t, h, d, f, r) {
                        Some(Some(score)) => match score.round(SCORE.1 as u32) {
                            Some(v) => b.append_value(v),
                            None => return overflow(),
                        },
                        Some(None) => b.append_null(),
                        None => return overflow(),
                    }
                }
                Arc::new(b.finish().with_precision_and_scale(SCORE.0, SCORE.1)?)
            }
            Kind::QualitativeScore => {
                let tier = txt("tier").expect("tier");
                let full = num("full_marks").expect("full_marks");
                let position = num("position");
                let mut b = Decimal128Builder::with_capacity(len);
                for i in 0..len {
                    let pos = match &position {
                        Some(p) => frac(p, i),
                        None => Some(Fraction::int(1)),
                    };
                    let (Some(f), Some(pos)) = (frac(&full, i), pos) else {
                        b.append_null();
                        continue;
                    };
                    if tier.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    let (lo, hi) = match tier_band(tier.value(i)) {
                        Ok(band) => band,
                        Err(e) => return exec_err!("{}: {e}", self.name),
                    };
                    if pos.is_negative()
                        || pos.cmp_frac(&Fraction::int(1)).is_some_and(|o| o.is_gt())
                    {
                        return exec_err!("{}: position must be within [0, 1]", self.name);
                    }
                    // full × (lo + position × (hi − lo)) / 100
                    let v = Fraction::int(hi - lo)
                        .checked_mul(pos)
                        .and_then(|x| x.checked_add(Fraction::int(lo)))
                        .and_then(|x| x.checked_div(Fraction::int(100)))
                        .and_then(|x| x.checked_mul(f))
                        .and_then(|x| x.round(SCORE.1 as u32));
                    match v {
                        Some(v) if !f.is_negative() => b.append_value(v),
                        Some(_) => b.append_null(),
                        None => return overflow(),
                    }
                }
                Arc::new(b.finish().with_precision_and_scale(SCORE.0, SCORE.1)?)
            }
            Kind::PerfGrade => {
                let score = num("score").expect("score");
                let lang = txt("lang");
                let bands = [
                    options.grade_excellent,
                    options.grade_good,
                    options.grade_fair,
                ]
                .map(from_f64);
                let Some(bands) = bands.into_iter().collect::<Option<Vec<_>>>() else {
                    return exec_err!("{}: the configured grade bands are not numbers", self.name);
                };
                let mut b = StringBuilder::with_capacity(len, len * 3);
                for i in 0..len {
                    let english = match lang {
                        Some(l) if l.is_null(i) => {
                            b.append_null();
                            continue;
                        }
                        Some(l) => english(self.name, l.value(i))?,
                        None => false,
                    };
                    let Some(s) = frac(&score, i) else {
                        b.append_null();
                        continue;
                    };
                    // the grade is given on the total rounded to 2 decimals
                    let Some(rounded) = s.round(2) else {
                        return overflow();
                    };
                    let rounded = Fraction {
                        num: rounded,
                        den: 100,
                    };
                    let grade = bands
                        .iter()
                        .position(|b| rounded.cmp_frac(b).is_some_and(|o| o.is_ge()))
                        .unwrap_or(3);
                    const ZH: [&str; 4] = ["优", "良", "中", "差"];
                    const EN: [&str; 4] = ["excellent", "good", "fair", "poor"];
                    b.append_value(if english { EN[grade] } else { ZH[grade] });
                }
                Arc::new(b.finish())
            }
            Kind::OverCompletionFlag => {
                let (actual, target) = (
                    num("actual").expect("actual"),
                    num("target").expect("target"),
                );
                let threshold = num("threshold");
                let Some(default) = from_f64(options.over_completion_threshold) else {
                    return exec_err!("{}: the configured threshold is not a number", self.name);
                };
                let mut b = BooleanBuilder::with_capacity(len);
                for i in 0..len {
                    let th = match &threshold {
                        Some(t) => frac(t, i),
                        None => Some(default),
                    };
                    let (Some(a), Some(t), Some(th)) = (frac(&actual, i), frac(&target, i), th)
                    else {
                        b.append_null();
                        continue;
                    };
                    if t.num <= 0 {
                        b.append_null();
                        continue;
                    }
                    match th.checked_mul(t).and_then(|limit| a.cmp_frac(&limit)) {
                        Some(o) => b.append_value(o.is_gt()),
                        None => return overflow(),
                    }
                }
                Arc::new(b.finish())
            }
        };
        result(out, all_scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCS[self.kind as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{SessionConfig, SessionContext};

    async fn run(sql: &str) -> Result<String> {
        let config = SessionConfig::new().with_option_extension(EvaluationOptions::default());
        let ctx = SessionContext::new_with_config(config);
        for f in functions() {
            ctx.register_udf(f.as_ref().clone());
        }
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    fn f(n: i128) -> Fraction {
        Fraction::int(n)
    }

    #[test]
    fn indicator_rules() {
        let score = |a: i128, t: i128, h: Option<i128>, d: Direction, r: Rule| {
            indicator(f(a), f(t), h.map(f), d, f(10), r)
                .unwrap()
                .map(|s| s.round(4).unwrap())
        };
        use Direction::*;
        assert_eq!(
            score(120, 100, None, HigherBetter, Rule::Ratio),
            Some(100_000),
            "capped"
        );
        assert_eq!(
            score(80, 100, None, HigherBetter, Rule::Ratio),
            Some(80_000)
        );
        assert_eq!(
            score(5, 0, None, HigherBetter, Rule::Ratio),
            Some(100_000),
            "target 0"
        );
        assert_eq!(
            score(125, 100, None, LowerBetter, Rule::Ratio),
            Some(80_000)
        );
        assert_eq!(
            score(125, 100, None, LowerBetter, Rule::Linear),
            Some(75_000)
        );
        assert_eq!(score(250, 100, None, LowerBetter, Rule::Linear), Some(0));
        assert_eq!(score(5, 0, None, LowerBetter, Rule::Ratio), Some(0));
        assert_eq!(
            score(80, 70, Some(90), Interval, Rule::Ratio),
            Some(100_000)
        );
        assert_eq!(score(95, 70, Some(90), Interval, Rule::Ratio), Some(75_000));
        assert_eq!(score(30, 70, Some(90), Interval, Rule::Ratio), Some(0));
        assert_eq!(score(80, 70, None, Interval, Rule::Ratio), None);
        assert_eq!(score(1, 1, None, Boolean, Rule::Ratio), Some(100_000));
        assert_eq!(score(0, 1, None, Boolean, Rule::Ratio), Some(0));
        assert_eq!(score(-1, 1, None, HigherBetter, Rule::Ratio), None);
    }

    #[tokio::test]
    async fn grades_at_their_edges_and_configured_bands() {
        let t = run("SELECT perf_grade(59.99) a, perf_grade(60) b, perf_grade(79.99) c, perf_grade(80) d, \
                     perf_grade(89.99) e, perf_grade(90) f, perf_grade(89.995) g, perf_grade(NULL) h")
            .await
            .unwrap();
        assert!(
            t.contains("| 差 | 中 | 中 | 良 | 良 | 优 | 优 |   |"),
            "{t}"
        );
        let config = SessionConfig::new().with_option_extension(EvaluationOptions::default());
        let ctx = SessionContext::new_with_config(config);
        for f in functions() {
            ctx.register_udf(f.as_ref().clone());
        }
        ctx.sql("SET citylake.grade_excellent = 85").await.unwrap();
        let b = ctx
            .sql("SELECT perf_grade(86, 'en')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let t = datafusion::arrow::util::pretty::pretty_format_batches(&b)
            .unwrap()
            .to_string();
        assert!(t.contains("excellent"), "{t}");
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
                "SELECT qualitative_score('great', 10)",
                "unknown tier 'great'",
            ),
            (
                "SELECT budget_execution_rate(1)",
                "budget_execution_rate takes (spent, budget), got 1",
            ),
            (
                "SELECT perf_grade('A')",
                "perf_grade: score must be numeric",
            ),
        ] {
            let e = run(sql).await.unwrap_err().to_string();
            assert!(e.contains(needle), "{sql}: {e}");
        }
    }
}
