//! `qualitative_score(tier, full_marks [, position])`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use super::{FINANCE, Param, Parameters, SCORE, frac, signature};
use crate::args::{Numeric, arguments, field, literal, result};
use crate::decimal::Fraction;

/// The score of a qualitative indicator by tier.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct QualitativeScore {
    signature: Signature,
}

impl Default for QualitativeScore {
    fn default() -> Self {
        Self {
            signature: signature(),
        }
    }
}

const PARAMS: Parameters = Parameters {
    function: "qualitative_score",
    usage: "(tier, full_marks [, position])",
    required: 2,
    params: &[
        Param::Text("tier"),
        Param::Number("full_marks"),
        Param::Number("position"),
    ],
};

/// Qualitative tiers and their share of full marks in percent: (lower, upper].
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

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINANCE,
        "Score of a qualitative indicator by tier, DECIMAL(10, 4): achieved (80 %, 100 %] of full marks, \
         partial (60 %, 80 %], not_achieved [0 %, 60 %]. `position` in [0, 1] places the score inside \
         the tier's band (1, the default, is its top; 0 its lower edge). Chinese tier names 达成, \
         部分达成, 未达成 are accepted.",
        "qualitative_score(tier, full_marks [, position])",
    )
    .with_sql_example(
        "> SELECT qualitative_score('achieved', 10), qualitative_score('partial', 10, 0.5);\n+---------+--------+\n| 10.0000 | 7.0000 |\n+---------+--------+",
    )
    .with_argument("tier", "'achieved', 'partial' or 'not_achieved'")
    .with_argument("full_marks", "the indicator's weight")
    .with_argument("position", "0–1 within the tier's band; default 1")
    .build()
});

impl ScalarUDFImpl for QualitativeScore {
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
        Ok(DataType::Decimal128(SCORE.0, SCORE.1))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if let Some(tier) = literal(&args, 0)
            && let Err(e) = tier_band(&tier)
        {
            return plan_err!("{}: {e}", self.name());
        }
        Ok(field(self.name(), self.return_type(&[])?))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = arguments(&args.args)?;
        let tier = arrays[0].as_string::<i32>();
        let full = Numeric::new(&arrays[1]);
        let position = arrays.get(2).map(Numeric::new);
        let len = arrays[0].len();
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
                Err(e) => return exec_err!("{}: {e}", self.name()),
            };
            if pos.is_negative() || pos.cmp_frac(&Fraction::int(1)).is_some_and(|o| o.is_gt()) {
                return exec_err!("{}: position must be within [0, 1]", self.name());
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

    #[tokio::test]
    async fn tiers_and_positions() {
        let t = run(
            "SELECT qualitative_score('achieved', 10) a, qualitative_score('partial', 10, 0.5) b, \
             qualitative_score('未达成', 10, 0) c, qualitative_score('达成', 10, 0) d",
        )
        .await
        .unwrap();
        assert!(t.contains("| 10.0000 | 7.0000 | 0.0000 | 8.0000 |"), "{t}");
        let e = run("SELECT qualitative_score('achieved', 10, 1.5)")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("position must be within [0, 1]"), "{e}");
    }
}
