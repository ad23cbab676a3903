//! `aqi_level(aqi)` → INT 1–6, `aqi_category(aqi [, lang])` → TEXT, `aqi_color(aqi)` → TEXT.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Builder, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::iaqi::AIR_QUALITY;
use super::standard;

/// What the function returns for a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Output {
    Level,
    Category,
    Color,
}

/// `aqi_level`, `aqi_category` and `aqi_color`: one implementation, three outputs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AqiLevel {
    name: &'static str,
    output: Output,
    signature: Signature,
}

impl AqiLevel {
    fn new(name: &'static str, output: Output) -> Self {
        Self {
            name,
            output,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
    pub fn level() -> Self {
        Self::new("aqi_level", Output::Level)
    }
    pub fn category() -> Self {
        Self::new("aqi_category", Output::Category)
    }
    pub fn color() -> Self {
        Self::new("aqi_color", Output::Color)
    }
}

static DOCS: LazyLock<[Documentation; 3]> = LazyLock::new(|| {
    [
        Documentation::builder(
            AIR_QUALITY,
            "AQI level (HJ 633): 1 for 0–50, 2 for 51–100, 3 for 101–150, 4 for 151–200, 5 for 201–300, \
             6 above 300. NULL or negative AQI: NULL.",
            "aqi_level(aqi)",
        )
        .with_sql_example("> SELECT aqi_level(114);\n+---+\n| 3 |\n+---+")
        .with_argument("aqi", "an AQI or IAQI value; a fractional value (an average) is rounded up, as the standard rounds every IAQI")
        .build(),
        Documentation::builder(
            AIR_QUALITY,
            "AQI category (HJ 633): 优, 良, 轻度污染, 中度污染, 重度污染, 严重污染; with 'en': Excellent, Good, \
             Lightly polluted, Moderately polluted, Heavily polluted, Severely polluted.",
            "aqi_category(aqi [, lang])",
        )
        .with_sql_example("> SELECT aqi_category(114), aqi_category(114, 'en');\n+----------+------------------+\n| 轻度污染 | Lightly polluted |\n+----------+------------------+")
        .with_argument("aqi", "an AQI or IAQI value; a fractional value (an average) is rounded up, as the standard rounds every IAQI")
        .with_argument("lang", "'zh' (default) or 'en'")
        .build(),
        Documentation::builder(
            AIR_QUALITY,
            "AQI colour (HJ 633) as #RRGGBB: #00E400, #FFFF00, #FF7E00, #FF0000, #99004C, #7E0023.",
            "aqi_color(aqi)",
        )
        .with_sql_example("> SELECT aqi_color(114);\n+---------+\n| #FF7E00 |\n+---------+")
        .with_argument("aqi", "an AQI or IAQI value; a fractional value (an average) is rounded up, as the standard rounds every IAQI")
        .build(),
    ]
});

impl ScalarUDFImpl for AqiLevel {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let max = if self.output == Output::Category {
            2
        } else {
            1
        };
        if t.is_empty() || t.len() > max {
            let usage = if max == 2 { "(aqi [, lang])" } else { "(aqi)" };
            return plan_err!("{} takes {usage}, got {} arguments", self.name, t.len());
        }
        // an integer; a DOUBLE or DECIMAL (an average, say) is rounded up to
        // one, as the standard rounds every IAQI
        let aqi = crate::args::numeric(self.name, "aqi", &t[0])?;
        let mut out = vec![aqi];
        if let Some(lang) = t.get(1) {
            match lang {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                    out.push(DataType::Utf8)
                }
                other => {
                    return plan_err!(
                        "{}: lang must be text ('zh' or 'en'), got {other}",
                        self.name
                    );
                }
            }
        }
        Ok(out)
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.output {
            Output::Level => DataType::Int32,
            Output::Category | Output::Color => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = crate::args::arguments(&args.args)?;
        let aqi = crate::args::Numeric::new(&arrays[0]);
        let len = arrays[0].len();
        let lang = arrays.get(1).map(|a| a.as_string::<i32>());
        let levels = (0..len).map(|i| {
            aqi.decimal(i)
                .filter(|d| !d.is_negative())
                .and_then(|d| d.ceil())
                .and_then(standard::level)
        });
        let result: ArrayRef = match self.output {
            Output::Level => {
                let mut b = Int32Builder::with_capacity(len);
                levels.for_each(|l| b.append_option(l.map(|l| l as i32)));
                Arc::new(b.finish())
            }
            Output::Category | Output::Color => {
                let mut b = StringBuilder::with_capacity(len, len * 8);
                for (i, level) in levels.enumerate() {
                    let english = match lang {
                        None => false,
                        Some(l) if l.is_null(i) => {
                            b.append_null();
                            continue;
                        }
                        Some(l) => crate::args::english(self.name, l.value(i))?,
                    };
                    match level {
                        None => b.append_null(),
                        Some(l) if self.output == Output::Color => {
                            b.append_value(standard::color(l))
                        }
                        Some(l) => b.append_value(standard::category(l, english)),
                    }
                }
                Arc::new(b.finish())
            }
        };
        crate::args::result(result, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCS[self.output as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::ScalarUDF;
    use datafusion::prelude::SessionContext;

    async fn run(sql: &str) -> Result<String> {
        let ctx = SessionContext::new();
        for f in [AqiLevel::level(), AqiLevel::category(), AqiLevel::color()] {
            ctx.register_udf(ScalarUDF::from(f));
        }
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    #[tokio::test]
    async fn band_edges_languages_and_nulls() {
        // the edges of every band
        let t = run("SELECT aqi_level(x) l, aqi_category(x) zh, aqi_category(x, 'en') en, aqi_color(x) c \
                     FROM (VALUES (0), (50), (51), (100), (101), (150), (151), (200), (201), (300), (301), (NULL)) t(x)")
            .await
            .unwrap();
        for needle in [
            "| 1 | 优",
            "| 2 | 良",
            "| 3 | 轻度污染",
            "| 4 | 中度污染",
            "| 5 | 重度污染",
            "| 6 | 严重污染",
            "Severely polluted",
            "#7E0023",
        ] {
            assert!(t.contains(needle), "{needle}\n{t}");
        }
        assert_eq!(t.matches("| 1 |").count(), 2, "{t}");
        assert!(t.contains("|   |"), "NULL in, NULL out\n{t}");
    }

    /// An average AQI is rounded up as the standard rounds an IAQI, exactly
    /// (50.0 stays 50, 50.1 is 51; 100.000001 is 101).
    #[tokio::test]
    async fn fractional_aqi_is_rounded_up() {
        let t = run("SELECT aqi_level(50.0) a, aqi_level(50.1) b, aqi_category(CAST(100.000001 AS DOUBLE), 'en') c, \
                     aqi_level(avg(x)) d FROM (VALUES (50), (51)) v(x)")
            .await
            .unwrap();
        assert!(t.contains("| 1 | 2 | Lightly polluted | 2 |"), "{t}");
        let t = run("SELECT aqi_level(CAST(-0.5 AS DOUBLE)) a, aqi_level(CAST('NaN' AS DOUBLE)) b")
            .await
            .unwrap();
        assert!(t.contains("|   |   |"), "{t}");
    }

    #[tokio::test]
    async fn bad_arguments() {
        let e = run("SELECT aqi_level('high')")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("aqi_level: aqi must be numeric"), "{e}");
        let e = run("SELECT aqi_color(1, 'en')")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("aqi_color takes (aqi)"), "{e}");
        let e = run("SELECT aqi_category(1, 'fr')")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown lang 'fr'"), "{e}");
    }
}
