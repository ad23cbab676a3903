//! `indicator_score(actual, target, direction, full_marks [, target_high] [, rule])`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use super::{FINANCE, Param, Parameters, SCORE, frac, signature};
use crate::args::{Numeric, arguments, field, is_text, literal, result};
use crate::decimal::Fraction;

/// The score of a quantitative indicator.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IndicatorScore {
    signature: Signature,
}

impl Default for IndicatorScore {
    fn default() -> Self {
        Self {
            signature: signature(),
        }
    }
}

const USAGE: &str = "(actual, target, direction, full_marks [, target_high] [, rule])";

/// With a fifth argument of text, it is the rule (no target_high).
const WITH_RULE: Parameters = Parameters {
    function: "indicator_score",
    usage: USAGE,
    required: 4,
    params: &[
        Param::Number("actual"),
        Param::Number("target"),
        Param::Text("direction"),
        Param::Number("full_marks"),
        Param::Text("rule"),
    ],
};

const WITH_HIGH: Parameters = Parameters {
    function: "indicator_score",
    usage: USAGE,
    required: 4,
    params: &[
        Param::Number("actual"),
        Param::Number("target"),
        Param::Text("direction"),
        Param::Number("full_marks"),
        Param::Number("target_high"),
        Param::Text("rule"),
    ],
};

/// Positions of the optional arguments target_high and rule, from the
/// argument types (a text fifth argument is the rule).
fn optional(types: &[DataType]) -> (Option<usize>, Option<usize>) {
    match types.len() {
        5 if is_text(&types[4]) && !types[4].is_null() => (None, Some(4)),
        5 => (Some(4), None),
        6 => (Some(4), Some(5)),
        _ => (None, None),
    }
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

/// Score of a quantitative indicator (the evaluation framework's rules), capped at full marks.
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

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINANCE,
        "Score of a quantitative indicator, capped at full marks, DECIMAL(10, 4). higher_better: actual ≥ \
             target → full, else full × actual / target (target 0 is met by any actual ≥ 0). lower_better: \
             actual ≤ target → full, else rule 'ratio' (default) full × target / actual, or 'linear' full × \
             max(0, 1 − (actual − target) / target); a target of 0 missed scores 0. interval [target, \
             target_high]: inside → full, outside → full × max(0, 1 − distance / width) (a zero width scores 0 \
             outside). boolean: actual ≥ target and non-zero (1 = met) → full, else 0. A negative input, an \
             interval without target_high or with target_high < target, or a NULL gives NULL. The rules marked [M] in \
             docs/standards.md are the ones to confirm locally.",
            "indicator_score(actual, target, direction, full_marks [, target_high] [, rule])",
        )
        .with_sql_example(
            "> SELECT indicator_score(80, 100, 'higher_better', 15), indicator_score(120, 100, 'lower_better', 15, 'linear');\n+---------+---------+\n| 12.0000 | 12.0000 |\n+---------+---------+",
        )
        .with_argument("actual", "achieved value")
        .with_argument("target", "target (the lower bound of an interval; 1 for boolean)")
        .with_argument("direction", Direction::NAMES)
        .with_argument("full_marks", "the indicator's weight")
        .with_argument("target_high", "upper bound, for 'interval'")
        .with_argument("rule", "for 'lower_better': 'ratio' (default) or 'linear'")
        .build()
});

impl ScalarUDFImpl for IndicatorScore {
    fn name(&self) -> &str {
        WITH_HIGH.function
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        match optional(t) {
            (None, Some(_)) => WITH_RULE.coerce(t),
            _ => WITH_HIGH.coerce(t),
        }
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(SCORE.0, SCORE.1))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<_> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let (high, rule) = optional(&types);
        if let Some(direction) = literal(&args, 2) {
            match Direction::parse(&direction) {
                Err(e) => return plan_err!("{}: {e}", self.name()),
                Ok(Direction::Interval) if high.is_none() => {
                    return plan_err!(
                        "{}: 'interval' needs target_high (the 5th argument)",
                        self.name()
                    );
                }
                Ok(_) => {}
            }
        }
        if let Some(rule) = rule.and_then(|i| literal(&args, i))
            && let Err(e) = Rule::parse(&rule)
        {
            return plan_err!("{}: {e}", self.name());
        }
        Ok(field(self.name(), self.return_type(&types)?))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = arguments(&args.args)?;
        let types: Vec<_> = arrays.iter().map(|a| a.data_type().clone()).collect();
        let (high, rule) = optional(&types);
        let (actual, target, full) = (
            Numeric::new(&arrays[0]),
            Numeric::new(&arrays[1]),
            Numeric::new(&arrays[3]),
        );
        let direction = arrays[2].as_string::<i32>();
        let high = high.map(|i| Numeric::new(&arrays[i]));
        let rule = rule.map(|i| arrays[i].as_string::<i32>());
        let len = arrays[0].len();
        let mut b = Decimal128Builder::with_capacity(len);
        for i in 0..len {
            let (Some(a), Some(t), Some(f)) = (frac(&actual, i), frac(&target, i), frac(&full, i))
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
                Err(e) => return exec_err!("{}: {e}", self.name()),
            };
            let r = match rule.map(|r| Rule::parse(r.value(i))).transpose() {
                Ok(r) => r.unwrap_or(Rule::Ratio),
                Err(e) => return exec_err!("{}: {e}", self.name()),
            };
            let h = high.as_ref().and_then(|h| frac(h, i));
            match indicator(a, t, h, d, f, r) {
                Some(Some(score)) => match score.round(SCORE.1 as u32) {
                    Some(v) => b.append_value(v),
                    None => return exec_err!("{}: arithmetic overflow", self.name()),
                },
                Some(None) => b.append_null(),
                None => return exec_err!("{}: arithmetic overflow", self.name()),
            }
        }
        let out: ArrayRef = Arc::new(b.finish().with_precision_and_scale(SCORE.0, SCORE.1)?);
        result(out, all_scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::run;
    use super::*;

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
    async fn optional_arguments_by_type() {
        let t = run(
            "SELECT indicator_score(125, 100, 'lower_better', 15, 'linear') a, \
             indicator_score(95, 70, 'interval', 10, 90) b, \
             indicator_score(125, 100, 'lower_better', 10, NULL, 'linear') c",
        )
        .await
        .unwrap();
        assert!(t.contains("| 11.2500 | 7.5000 | 7.5000 |"), "{t}");
    }
}
