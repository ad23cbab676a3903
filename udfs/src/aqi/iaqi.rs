//! `iaqi_cn(pollutant, period, concentration [, standard])` → INT.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Builder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl,
    Signature, Volatility,
};

use super::standard::{self, Period, Pollutant, Standard};
use crate::args::{Numeric, arguments, field, literal, numeric, result, text};

const NAME: &str = "iaqi_cn";

/// Individual air quality index of one pollutant (HJ 633).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IaqiCn {
    signature: Signature,
}

impl Default for IaqiCn {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

pub(crate) const AIR_QUALITY: DocSection = DocSection {
    include: true,
    label: "Air quality (HJ 633)",
    description: Some("China's air quality index, HJ 633-2012 and HJ 633-2026"),
};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        AIR_QUALITY,
        "Individual air quality index (IAQI) of one pollutant concentration under HJ 633, computed \
         exactly: IAQI_lo + ceil((IAQI_hi − IAQI_lo)(C − BP_lo)/(BP_hi − BP_lo)) on the decimal value \
         (a DOUBLE means its shortest decimal: 4.9 is 4.9). HJ633-2026 first rounds C half-to-even \
         (integers; CO to 0.1). Above the table: 500. SO2 1h or O3 8h above 800: NULL under 2012 \
         (the report uses the 24h / 1h value instead), 200 / 300 under 2026. Negative or NULL \
         concentration: NULL. PM has no 1h table: '1h' uses the 24h breakpoints (real-time report).",
        "iaqi_cn(pollutant, period, concentration [, standard])",
    )
    .with_sql_example(
        "> SELECT iaqi_cn('pm25', '24h', 75, 'HJ633-2012'), iaqi_cn('pm25', '24h', 75);\n\
         +-----+-----+\n| 100 | 114 |\n+-----+-----+",
    )
    .with_argument("pollutant", "'pm25', 'pm10', 'so2', 'no2', 'co' or 'o3'")
    .with_argument("period", "'1h', '8h' (O3 only) or '24h' (not O3)")
    .with_argument("concentration", "µg/m³ (CO: mg/m³); integer, decimal or double")
    .with_argument("standard", "'HJ633-2026' (default) or 'HJ633-2012'")
    .build()
});

impl ScalarUDFImpl for IaqiCn {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        if !(3..=4).contains(&t.len()) {
            return plan_err!(
                "{NAME} takes 3 or 4 arguments (pollutant, period, concentration [, standard]), got {}",
                t.len()
            );
        }
        let mut out = vec![
            text(NAME, "pollutant", &t[0])?,
            text(NAME, "period", &t[1])?,
            numeric(NAME, "concentration", &t[2])?,
        ];
        if t.len() == 4 {
            out.push(text(NAME, "standard", &t[3])?);
        }
        Ok(out)
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    /// Checks literal pollutant, period and standard while planning.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let pollutant = literal(&args, 0)
            .map(|s| s.parse::<Pollutant>())
            .transpose();
        let period = literal(&args, 1).map(|s| s.parse::<Period>()).transpose();
        let standard = literal(&args, 3).map(|s| s.parse::<Standard>()).transpose();
        let (pollutant, period) = match (pollutant, period, standard) {
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return plan_err!("{NAME}: {e}"),
            (Ok(p), Ok(t), Ok(_)) => (p, t),
        };
        if let (Some(p), Some(t)) = (pollutant, period)
            && let Err(e) = standard::check(p, t)
        {
            return plan_err!("{NAME}: {e}");
        }
        Ok(field(NAME, DataType::Int32))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = arguments(&args.args)?;
        let len = arrays[0].len();
        let pollutant = arrays[0].as_string::<i32>();
        let period = arrays[1].as_string::<i32>();
        let standard = arrays.get(3).map(|a| a.as_string::<i32>());
        let concentration = Numeric::new(&arrays[2]);
        let mut out = Int32Builder::with_capacity(len);
        // parsed names of the previous row: literal arguments are parsed once
        let mut cache: Option<(String, String, Option<String>, Pollutant, Period, Standard)> = None;
        for i in 0..len {
            let c = concentration.decimal(i);
            if c.is_none()
                || pollutant.is_null(i)
                || period.is_null(i)
                || standard.is_some_and(|s| s.is_null(i))
            {
                out.append_null();
                continue;
            }
            let (p, t, s) = (
                pollutant.value(i),
                period.value(i),
                standard.map(|s| s.value(i)),
            );
            let hit = matches!(&cache, Some((cp, ct, cs, ..)) if cp == p && ct == t && cs.as_deref() == s);
            if !hit {
                let parsed = (|| -> std::result::Result<_, String> {
                    let std_ = s
                        .map(str::parse::<Standard>)
                        .transpose()?
                        .unwrap_or(Standard::DEFAULT);
                    Ok((p.parse::<Pollutant>()?, t.parse::<Period>()?, std_))
                })();
                match parsed {
                    Ok((pp, tt, ss)) => {
                        cache = Some((
                            p.to_string(),
                            t.to_string(),
                            s.map(str::to_string),
                            pp,
                            tt,
                            ss,
                        ))
                    }
                    Err(e) => return exec_err!("{NAME}: {e}"),
                }
            }
            let (.., pp, tt, ss) = cache.as_ref().expect("parsed above");
            match standard::iaqi(*ss, *pp, *tt, c.expect("checked above")) {
                Ok(v) => out.append_option(v.map(|v| v as i32)),
                Err(e) => return exec_err!("{NAME}: {e}"),
            }
        }
        let out: ArrayRef = Arc::new(out.finish());
        result(out, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int32Array, StringArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::logical_expr::ScalarUDF;
    use datafusion::prelude::SessionContext;

    async fn one(sql: &str) -> Result<String> {
        let ctx = SessionContext::new();
        ctx.register_udf(ScalarUDF::from(IaqiCn::default()));
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    #[tokio::test]
    async fn scalars_arrays_types_and_nulls() {
        // literal arguments; integer, decimal and double concentrations
        let t = one("SELECT iaqi_cn('pm25', '24h', 75, 'HJ633-2012') a, iaqi_cn('pm25', '24h', 75.0) b, \
                     iaqi_cn('pm25', '24h', CAST(4.9 AS DOUBLE), 'HJ633-2012') c, iaqi_cn('co', '24h', 0.3) d")
            .await
            .unwrap();
        assert!(t.contains("| 100 | 114 | 7 | 8 |"), "{t}");
        // NULL in, NULL out; negative → NULL
        let t = one("SELECT iaqi_cn('pm25', '24h', NULL) a, iaqi_cn('pm25', '24h', -1) b")
            .await
            .unwrap();
        assert!(t.contains("|   |   |"), "{t}");
    }

    #[tokio::test]
    async fn bad_arguments_are_planning_errors() {
        for (sql, needle) in [
            ("SELECT iaqi_cn('pm1', '24h', 1)", "unknown pollutant 'pm1'"),
            ("SELECT iaqi_cn('pm25', '2h', 1)", "unknown period '2h'"),
            (
                "SELECT iaqi_cn('pm25', '24h', 1, 'HJ633-1999')",
                "unknown standard",
            ),
            ("SELECT iaqi_cn('pm25', '8h', 1)", "no 8h breakpoints"),
            ("SELECT iaqi_cn('pm25', '24h')", "takes 3 or 4 arguments"),
            ("SELECT iaqi_cn('pm25', '24h', 'x')", "must be numeric"),
        ] {
            let e = one(sql).await.unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("iaqi_cn"), "{sql}: {e}");
        }
    }

    #[test]
    fn arrays_with_nulls_and_slices() {
        let udf = IaqiCn::default();
        let conc: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(10.0),
            None,
            Some(35.5),
            Some(600.0),
        ]));
        // a sliced array: offsets must be honoured
        let conc = conc.slice(1, 3);
        let pollutant: ArrayRef = Arc::new(StringArray::from(vec!["pm25"; 3]));
        let period: ArrayRef = Arc::new(StringArray::from(vec!["24h"; 3]));
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(pollutant),
                ColumnarValue::Array(period),
                ColumnarValue::Array(conc),
            ],
            arg_fields: vec![],
            number_rows: 3,
            return_field: Arc::new(Field::new("x", DataType::Int32, true)),
            config_options: Default::default(),
        };
        let ColumnarValue::Array(out) = udf.invoke_with_args(args).unwrap() else {
            panic!("array")
        };
        let out = out.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            vec![None, Some(52), Some(500)]
        );
    }
}
