//! `perf_grade(score [, lang])`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use super::{EvaluationOptions, FINANCE, Param, Parameters, frac, from_f64, signature};
use crate::args::{Numeric, arguments, check_lang, english, field, result};
use crate::decimal::Fraction;

/// The performance grade of a total score (优/良/中/差).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PerfGrade {
    signature: Signature,
}

impl Default for PerfGrade {
    fn default() -> Self {
        Self {
            signature: signature(),
        }
    }
}

const PARAMS: Parameters = Parameters {
    function: "perf_grade",
    usage: "(score [, lang])",
    required: 1,
    params: &[Param::Number("score"), Param::Text("lang")],
};

const ZH: [&str; 4] = ["优", "良", "中", "差"];
const EN: [&str; 4] = ["excellent", "good", "fair", "poor"];

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINANCE,
        "Performance grade of a total score, rounded to 2 decimals first: ≥ 90 优, ≥ 80 良, ≥ 60 中, \
         else 差 (with 'en': excellent, good, fair, poor). The bands are configuration: \
         citylake.grade_excellent / grade_good / grade_fair (catalog `[evaluation]`, or SET). \
         NULL for NULL.",
        "perf_grade(score [, lang])",
    )
    .with_sql_example(
        "> SELECT perf_grade(89.995), perf_grade(89.994, 'en');\n+----+------+\n| 优 | good |\n+----+------+",
    )
    .with_argument("score", "total score, 0–100")
    .with_argument("lang", "'zh' (default) or 'en'")
    .build()
});

impl ScalarUDFImpl for PerfGrade {
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
        Ok(DataType::Utf8)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        check_lang(self.name(), &args, 1)?;
        Ok(field(self.name(), DataType::Utf8))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let options = EvaluationOptions::of(&args.config_options);
        let bands = [
            options.grade_excellent,
            options.grade_good,
            options.grade_fair,
        ]
        .map(from_f64);
        let Some(bands) = bands.into_iter().collect::<Option<Vec<_>>>() else {
            return exec_err!(
                "{}: the configured grade bands are not numbers",
                self.name()
            );
        };
        let (arrays, all_scalar) = arguments(&args.args)?;
        let score = Numeric::new(&arrays[0]);
        let lang = arrays.get(1).map(|a| a.as_string::<i32>());
        let len = arrays[0].len();
        let mut b = StringBuilder::with_capacity(len, len * 3);
        for i in 0..len {
            let english = match lang {
                Some(l) if l.is_null(i) => {
                    b.append_null();
                    continue;
                }
                Some(l) => english(self.name(), l.value(i))?,
                None => false,
            };
            let Some(s) = frac(&score, i) else {
                b.append_null();
                continue;
            };
            // the grade is given on the total rounded to 2 decimals
            let Some(rounded) = s.round(2) else {
                return exec_err!("{}: arithmetic overflow", self.name());
            };
            let rounded = Fraction {
                num: rounded,
                den: 100,
            };
            let grade = bands
                .iter()
                .position(|b| rounded.cmp_frac(b).is_some_and(|o| o.is_ge()))
                .unwrap_or(3);
            b.append_value(if english { EN[grade] } else { ZH[grade] });
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
    use super::super::tests::{context, run, run_in};

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
        let ctx = context();
        ctx.sql("SET citylake.grade_excellent = 85").await.unwrap();
        let t = run_in(&ctx, "SELECT perf_grade(86, 'en')").await.unwrap();
        assert!(t.contains("excellent"), "{t}");
    }
}
