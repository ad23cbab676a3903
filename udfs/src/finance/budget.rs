//! `budget_execution_rate(spent, budget)` and
//! `budget_execution_score(spent, budget [, full_marks])`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Decimal128Builder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use super::{FINANCE, Param, Parameters, RATE, SCORE, frac, signature};
use crate::args::{Numeric, arguments, field, result};
use crate::decimal::Fraction;

/// The budget execution rate (spent / budget) or its score
/// (full_marks × min(rate, 1)).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BudgetExecution {
    /// The score rather than the rate.
    score: bool,
    signature: Signature,
}

const RATE_PARAMS: Parameters = Parameters {
    function: "budget_execution_rate",
    usage: "(spent, budget)",
    required: 2,
    params: &[Param::Number("spent"), Param::Number("budget")],
};

const SCORE_PARAMS: Parameters = Parameters {
    function: "budget_execution_score",
    usage: "(spent, budget [, full_marks])",
    required: 2,
    params: &[
        Param::Number("spent"),
        Param::Number("budget"),
        Param::Number("full_marks"),
    ],
};

static RATE_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINANCE,
        "Budget execution rate = spent / budget, as DECIMAL(12, 6) (0.95 is 95 %), not capped (above 1 \
         is overspending). NULL when the budget is ≤ 0, the amount spent is negative, or either is NULL.",
        "budget_execution_rate(spent, budget)",
    )
    .with_sql_example(
        "> SELECT budget_execution_rate(950000, 1000000);\n+----------+\n| 0.950000 |\n+----------+",
    )
    .with_argument("spent", "amount spent (yuan), decimal")
    .with_argument("budget", "budget (yuan), decimal")
    .build()
});

static SCORE_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINANCE,
        "Budget execution score = full_marks × min(spent / budget, 1), DECIMAL(10, 4). NULL when the \
         budget is ≤ 0 or an input is negative or NULL.",
        "budget_execution_score(spent, budget [, full_marks])",
    )
    .with_sql_example(
        "> SELECT budget_execution_score(950000, 1000000), budget_execution_score(1200000, 1000000, 20);\n+---------+---------+\n| 9.5000 | 20.0000 |\n+---------+---------+",
    )
    .with_argument("spent", "amount spent (yuan)")
    .with_argument("budget", "budget (yuan)")
    .with_argument("full_marks", "the indicator's weight; default 10")
    .build()
});

impl BudgetExecution {
    pub fn rate() -> Self {
        Self {
            score: false,
            signature: signature(),
        }
    }

    pub fn score() -> Self {
        Self {
            score: true,
            signature: signature(),
        }
    }

    fn parameters(&self) -> &'static Parameters {
        if self.score {
            &SCORE_PARAMS
        } else {
            &RATE_PARAMS
        }
    }

    fn scale(&self) -> (u8, i8) {
        if self.score { SCORE } else { RATE }
    }
}

impl ScalarUDFImpl for BudgetExecution {
    fn name(&self) -> &str {
        self.parameters().function
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        self.parameters().coerce(t)
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        let (precision, scale) = self.scale();
        Ok(DataType::Decimal128(precision, scale))
    }
    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(field(self.name(), self.return_type(&[])?))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = arguments(&args.args)?;
        let (spent, budget) = (Numeric::new(&arrays[0]), Numeric::new(&arrays[1]));
        let full = arrays.get(2).map(Numeric::new);
        let (precision, scale) = self.scale();
        let len = arrays[0].len();
        let mut b = Decimal128Builder::with_capacity(len);
        for i in 0..len {
            let full = match &full {
                Some(f) => frac(f, i),
                None => Some(Fraction::int(10)),
            };
            let (Some(s), Some(bu), Some(full)) = (frac(&spent, i), frac(&budget, i), full) else {
                b.append_null();
                continue;
            };
            if bu.num <= 0 || s.is_negative() || full.is_negative() {
                b.append_null();
                continue;
            }
            let v = s.checked_div(bu).and_then(|rate| {
                if self.score {
                    full.checked_mul(rate.min(Fraction::int(1))?)?
                        .round(scale as u32)
                } else {
                    rate.round(scale as u32)
                }
            });
            match v {
                Some(v) => b.append_value(v),
                None => return exec_err!("{}: arithmetic overflow", self.name()),
            }
        }
        let out: ArrayRef = Arc::new(b.finish().with_precision_and_scale(precision, scale)?);
        result(out, all_scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(if self.score { &SCORE_DOC } else { &RATE_DOC })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::run;

    #[tokio::test]
    async fn rate_and_score() {
        let t = run(
            "SELECT budget_execution_rate(950000, 1000000) a, budget_execution_score(950000, 1000000) b, \
             budget_execution_score(1200000, 1000000, 20) c, budget_execution_rate(1, 0) d, \
             budget_execution_rate(-1, 10) e, budget_execution_rate(1, 3) f",
        )
        .await
        .unwrap();
        assert!(
            t.contains("| 0.950000 | 9.5000 | 20.0000 |   |   | 0.333333 |"),
            "{t}"
        );
    }
}
