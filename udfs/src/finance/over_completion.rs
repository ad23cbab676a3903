//! `over_completion_flag(actual, target [, threshold])`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, BooleanBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use super::{EvaluationOptions, FINANCE, Param, Parameters, frac, from_f64, signature};
use crate::args::{Numeric, arguments, field, result};

/// Whether an indicator is over-completed enough to be reviewed.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct OverCompletionFlag {
    signature: Signature,
}

impl Default for OverCompletionFlag {
    fn default() -> Self {
        Self {
            signature: signature(),
        }
    }
}

const PARAMS: Parameters = Parameters {
    function: "over_completion_flag",
    usage: "(actual, target [, threshold])",
    required: 2,
    params: &[
        Param::Number("actual"),
        Param::Number("target"),
        Param::Number("threshold"),
    ],
};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINANCE,
        "Whether an indicator is over-completed enough to be reviewed: actual / target > threshold \
         (exact, compared as actual > threshold × target). The rule caps the score at full marks and \
         allows a discretionary reduction, which cannot be automated; this flags the cases. For \
         lower-is-better indicators pass (target, actual). NULL when the target is ≤ 0 or an input is \
         NULL. The default threshold is citylake.over_completion_threshold (1.2).",
        "over_completion_flag(actual, target [, threshold])",
    )
    .with_sql_example(
        "> SELECT over_completion_flag(121, 100), over_completion_flag(120, 100);\n+------+-------+\n| true | false |\n+------+-------+",
    )
    .with_argument("actual", "achieved value")
    .with_argument("target", "target")
    .with_argument(
        "threshold",
        "ratio above which to flag; default from configuration (1.2)",
    )
    .build()
});

impl ScalarUDFImpl for OverCompletionFlag {
    fn name(&self) -> &str {
        PARAMS.function
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        PARAMS.coerce(t)
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(field(self.name(), DataType::Boolean))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let options = EvaluationOptions::of(&args.config_options);
        let Some(default) = from_f64(options.over_completion_threshold) else {
            return exec_err!("{}: the configured threshold is not a number", self.name());
        };
        let (arrays, all_scalar) = arguments(&args.args)?;
        let (actual, target) = (Numeric::new(&arrays[0]), Numeric::new(&arrays[1]));
        let threshold = arrays.get(2).map(Numeric::new);
        let len = arrays[0].len();
        let mut b = BooleanBuilder::with_capacity(len);
        for i in 0..len {
            let th = match &threshold {
                Some(t) => frac(t, i),
                None => Some(default),
            };
            let (Some(a), Some(t), Some(th)) = (frac(&actual, i), frac(&target, i), th) else {
                b.append_null();
                continue;
            };
            if t.num <= 0 {
                b.append_null();
                continue;
            }
            match th.checked_mul(t).and_then(|limit| a.cmp_frac(&limit)) {
                Some(o) => b.append_value(o.is_gt()),
                None => return exec_err!("{}: arithmetic overflow", self.name()),
            }
        }
        let out: ArrayRef = Arc::new(b.finish());
        result(out, all_scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{context, run_in};

    #[tokio::test]
    async fn flags_above_the_threshold_exactly() {
        let ctx = context();
        let t = run_in(
            &ctx,
            "SELECT over_completion_flag(121, 100) a, over_completion_flag(120, 100) b, \
             over_completion_flag(3, 2, 1.5) c, over_completion_flag(1, 0) d",
        )
        .await
        .unwrap();
        assert!(t.contains("| true | false | false |   |"), "{t}");
        ctx.sql("SET citylake.over_completion_threshold = 1.1")
            .await
            .unwrap();
        let t = run_in(&ctx, "SELECT over_completion_flag(111, 100) a")
            .await
            .unwrap();
        assert!(t.contains("| true |"), "{t}");
    }
}
