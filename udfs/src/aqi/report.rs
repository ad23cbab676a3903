//! The report-level AQI (HJ 633 §5): `aqi_cn_daily`, `aqi_cn_hourly` and their
//! primary pollutants, `aqi_cn_primary`, `aqi_cn_hourly_primary`.
//!
//! One implementation: a report (daily or real-time) fixes which breakpoint
//! table each argument is read with; an output (the AQI or the primary
//! pollutants) fixes what is returned.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int32Builder, ListBuilder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::iaqi::AIR_QUALITY;
use super::standard::{Breakpoints, Period, Pollutant, Standard, breakpoints};
use crate::args::{Numeric, arguments, field, is_text, literal, numeric, result, text};

/// Which report: which averaging period each argument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Report {
    /// 日报: 24h means, O3 daily max 8h (and, 2012 only, O3 daily max 1h).
    Daily,
    /// 实时报: 1h values (PM with the 24h breakpoints).
    Hourly,
}

/// What the function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Output {
    Aqi,
    Primary,
}

/// The report-level AQI functions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AqiCn {
    name: &'static str,
    report: Report,
    output: Output,
    signature: Signature,
}

impl AqiCn {
    fn new(name: &'static str, report: Report, output: Output) -> Self {
        Self {
            name,
            report,
            output,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
    pub fn daily() -> Self {
        Self::new("aqi_cn_daily", Report::Daily, Output::Aqi)
    }
    pub fn hourly() -> Self {
        Self::new("aqi_cn_hourly", Report::Hourly, Output::Aqi)
    }
    pub fn primary() -> Self {
        Self::new("aqi_cn_primary", Report::Daily, Output::Primary)
    }
    pub fn hourly_primary() -> Self {
        Self::new("aqi_cn_hourly_primary", Report::Hourly, Output::Primary)
    }

    fn usage(&self) -> &'static str {
        match self.report {
            Report::Daily => "(pm25, pm10, so2, no2, co, o3_8h [, o3_1h] [, standard])",
            Report::Hourly => "(pm25, pm10, so2, no2, co, o3 [, standard])",
        }
    }

    /// Positions of the optional arguments, from the (coerced) argument types.
    fn layout(&self, types: &[DataType]) -> Result<Layout> {
        let n = types.len();
        let max = match self.report {
            Report::Daily => 8,
            Report::Hourly => 7,
        };
        if !(6..=max).contains(&n) {
            return plan_err!("{} takes {}, got {n} arguments", self.name, self.usage());
        }
        let standard = match (self.report, n) {
            (Report::Hourly, 7) | (Report::Daily, 8) => Some(n - 1),
            // a text 7th argument of the daily report is the standard, a number is O3 1h
            (Report::Daily, 7) => (is_text(&types[6]) && !types[6].is_null()).then_some(6),
            _ => None,
        };
        let o3_1h =
            (self.report == Report::Daily && n - usize::from(standard.is_some()) == 7).then_some(6);
        Ok(Layout { o3_1h, standard })
    }
}

/// Where the optional arguments are.
struct Layout {
    o3_1h: Option<usize>,
    standard: Option<usize>,
}

const POLLUTANTS: [Pollutant; 6] = [
    Pollutant::Pm25,
    Pollutant::Pm10,
    Pollutant::So2,
    Pollutant::No2,
    Pollutant::Co,
    Pollutant::O3,
];

/// The breakpoint tables of a report's indicators under one standard, in
/// argument order (the 7th is O3 1h of the 2012 daily report).
struct Indicators {
    tables: Vec<(Pollutant, Breakpoints)>,
    /// 2026 §5.3.1: with a pollutant missing, publish only an AQI above 100.
    missing_needs_over_100: bool,
}

impl Indicators {
    fn new(report: Report, standard: Standard) -> Self {
        let period = |p: Pollutant| match (report, p) {
            (Report::Daily, Pollutant::O3) => Period::H8,
            (Report::Daily, _) => Period::H24,
            (Report::Hourly, _) => Period::H1,
        };
        let mut tables: Vec<_> = POLLUTANTS
            .iter()
            .map(|&p| {
                let t = breakpoints(standard, p, period(p)).expect("every report table exists");
                (p, t)
            })
            .collect();
        if report == Report::Daily && standard == Standard::Hj2012 {
            let t = breakpoints(standard, Pollutant::O3, Period::H1).expect("O3 1h exists");
            tables.push((Pollutant::O3, t));
        }
        Self {
            tables,
            missing_needs_over_100: standard == Standard::Hj2026,
        }
    }
}

impl Indicators {
    /// The AQI to publish from the maximum IAQI: NULL when nothing was
    /// measured, and under 2026 (§5.3.1) when a pollutant is missing and the
    /// others give 100 or less.
    fn publish(&self, max: Option<i64>, missing: bool) -> Option<i64> {
        max.filter(|&m| !(missing && self.missing_needs_over_100 && m <= 100))
    }
}

/// The AQI and the IAQIs of one row.
struct Row {
    aqi: Option<i64>,
    iaqi: [Option<i64>; 7],
}

fn evaluate(ind: &Indicators, values: &[Numeric], row: usize) -> Row {
    let mut iaqi = [None; 7];
    let mut max: Option<i64> = None;
    let mut missing = false;
    for (k, (_, table)) in ind.tables.iter().enumerate() {
        let Some(input) = values.get(k) else {
            // the 2012 daily O3 1h was not given: it is not required
            continue;
        };
        let v = input.decimal(row).and_then(|c| table.iaqi(c));
        iaqi[k] = v;
        match v {
            Some(v) => max = Some(max.map_or(v, |m| m.max(v))),
            // O3 8h above 800 under 2012 is "not computed", not missing: the
            // O3 1h value stands for it; any other gap is a missing pollutant
            None if k < 6 => missing = true,
            None => {}
        }
    }
    Row {
        aqi: ind.publish(max, missing),
        iaqi,
    }
}

/// The AQI of every row under one standard, column by column: each
/// indicator's IAQIs in one tight loop, folded into a running maximum.
fn aqi_columns(ind: &Indicators, values: &[Numeric], len: usize) -> ArrayRef {
    let mut max = vec![-1i64; len];
    let mut missing = vec![false; len];
    for (k, (_, table)) in ind.tables.iter().enumerate() {
        let Some(input) = values.get(k) else {
            continue;
        };
        let mut take = |i: usize, iaqi: Option<i64>| match iaqi {
            Some(v) => max[i] = max[i].max(v),
            None if k < 6 => missing[i] = true,
            None => {}
        };
        match input {
            // DOUBLEs without NULLs (the usual daily means): decided in floating
            // point where that is exact (`Breakpoints::iaqi_f64`)
            Numeric::Float(a) if a.null_count() == 0 => {
                for (i, &x) in a.values()[..len].iter().enumerate() {
                    let iaqi = match table.iaqi_f64(x) {
                        Some(decided) => decided,
                        None => crate::decimal::Decimal::from_f64(x).and_then(|c| table.iaqi(c)),
                    };
                    take(i, iaqi);
                }
            }
            _ => input.for_each_decimal(len, |i, c| take(i, c.and_then(|c| table.iaqi(c)))),
        }
    }
    let out: Int32Array = max
        .iter()
        .zip(&missing)
        .map(|(&m, &gap)| ind.publish((m >= 0).then_some(m), gap).map(|v| v as i32))
        .collect();
    Arc::new(out)
}

static DOCS: LazyLock<[Documentation; 4]> = LazyLock::new(|| {
    let common = "Concentrations in µg/m³ (CO in mg/m³), integer, decimal or double; each IAQI is \
                  computed exactly as iaqi_cn does. A NULL or negative concentration is a missing \
                  pollutant: under HJ633-2012 the AQI is the maximum of the others (NULL when all \
                  are missing); under HJ633-2026 (§5.3.1) it is published only when the others give \
                  more than 100, else NULL.";
    let daily_args = |b: datafusion::logical_expr::DocumentationBuilder| {
        b.with_argument(
            "pm25, pm10, so2, no2, co",
            "24-hour (daily) mean concentrations",
        )
        .with_argument("o3_8h", "daily maximum of the 8-hour sliding mean of O3")
        .with_argument(
            "o3_1h",
            "optional daily maximum 1-hour O3; used by HJ633-2012 only (its 7th indicator)",
        )
        .with_argument("standard", "'HJ633-2026' (default) or 'HJ633-2012'")
    };
    let hourly_args = |b: datafusion::logical_expr::DocumentationBuilder| {
        b.with_argument("pm25, pm10, so2, no2, co, o3", "1-hour concentrations")
            .with_argument("standard", "'HJ633-2026' (default) or 'HJ633-2012'")
    };
    [
        daily_args(
            Documentation::builder(
                AIR_QUALITY,
                format!(
                    "Daily AQI (日报, HJ 633 §5): the maximum IAQI of the 24h means of PM2.5, PM10, SO2, \
                     NO2, CO and the O3 daily max 8h; HJ633-2012 also uses the O3 daily max 1h when \
                     given, and takes O3 from it when the 8h value is above 800. {common}"
                ),
                "aqi_cn_daily(pm25, pm10, so2, no2, co, o3_8h [, o3_1h] [, standard])",
            )
            .with_sql_example(
                "> SELECT aqi_cn_daily(75, 150, 10, 80, 1.0, 160, 'HJ633-2012'), aqi_cn_daily(75, 150, 10, 80, 1.0, 160);\n\
                 +-----+-----+\n| 100 | 114 |\n+-----+-----+",
            ),
        )
        .build(),
        hourly_args(
            Documentation::builder(
                AIR_QUALITY,
                format!(
                    "Real-time AQI (实时报, HJ 633 §5): the maximum IAQI of the 1-hour values of the six \
                     pollutants; PM2.5 and PM10 use the 24h breakpoints. SO2 1h above 800: no SO2 IAQI \
                     under HJ633-2012 (the standard then uses the 24h mean, which this function does \
                     not take: add iaqi_cn('so2', '24h', …) with GREATEST), 200 under HJ633-2026. \
                     {common}"
                ),
                "aqi_cn_hourly(pm25, pm10, so2, no2, co, o3 [, standard])",
            )
            .with_sql_example(
                "> SELECT aqi_cn_hourly(40, 60, 10, 90, 0.8, 170);\n+----+\n| 63 |\n+----+",
            ),
        )
        .build(),
        daily_args(
            Documentation::builder(
                AIR_QUALITY,
                "Primary pollutants (首要污染物) of the daily AQI: every pollutant whose IAQI equals \
                 the AQI when the AQI is above 50 (ties all listed, in the order PM2.5, PM10, SO2, NO2, \
                 CO, O3; O3 once even when both its 8h and 1h values tie); an empty list when the AQI \
                 is 50 or less; NULL when the AQI is NULL. Same arguments as aqi_cn_daily.",
                "aqi_cn_primary(pm25, pm10, so2, no2, co, o3_8h [, o3_1h] [, standard])",
            )
            .with_sql_example(
                "> SELECT aqi_cn_primary(75, 150, 10, 80, 1.0, 160, 'HJ633-2012'), aqi_cn_primary(75, 150, 10, 80, 1.0, 160);\n\
                 +--------------------------+---------+\n| [PM2.5, PM10, NO2, O3]   | [PM2.5] |\n+--------------------------+---------+",
            ),
        )
        .build(),
        hourly_args(
            Documentation::builder(
                AIR_QUALITY,
                "Primary pollutants of the real-time AQI, as aqi_cn_primary does for the daily one. \
                 Same arguments as aqi_cn_hourly.",
                "aqi_cn_hourly_primary(pm25, pm10, so2, no2, co, o3 [, standard])",
            )
            .with_sql_example(
                "> SELECT aqi_cn_hourly_primary(40, 60, 10, 90, 0.8, 170);\n+-------+\n| [O3]  |\n+-------+",
            ),
        )
        .build(),
    ]
});

/// Whether every value of a string column is the same (a literal, usually).
fn all_equal(c: &datafusion::arrow::array::StringArray) -> bool {
    c.len() == 0 || (0..c.len()).all(|i| c.value(i) == c.value(0))
}

fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

impl ScalarUDFImpl for AqiCn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let layout = self.layout(t)?;
        const NAMES: [&str; 7] = ["pm25", "pm10", "so2", "no2", "co", "o3", "o3_1h"];
        t.iter()
            .enumerate()
            .map(|(i, ty)| {
                if Some(i) == layout.standard {
                    text(self.name, "standard", ty)
                } else {
                    numeric(self.name, NAMES[i], ty)
                }
            })
            .collect()
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.output {
            Output::Aqi => DataType::Int32,
            Output::Primary => list_type(),
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<_> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let layout = self.layout(&types)?;
        if let Some(i) = layout.standard
            && let Some(s) = literal(&args, i)
            && let Err(e) = s.parse::<Standard>()
        {
            return plan_err!("{}: {e}", self.name);
        }
        Ok(field(self.name, self.return_type(&types)?))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = arguments(&args.args)?;
        let types: Vec<_> = arrays.iter().map(|a| a.data_type().clone()).collect();
        let layout = self.layout(&types)?;
        let len = args.number_rows.max(arrays.first().map_or(0, |a| a.len()));
        let mut values: Vec<Numeric> = arrays[..6].iter().map(Numeric::new).collect();
        if let Some(i) = layout.o3_1h {
            values.push(Numeric::new(&arrays[i]));
        }
        let standards = layout.standard.map(|i| arrays[i].as_string::<i32>());
        let by_standard = [
            Indicators::new(self.report, Standard::Hj2012),
            Indicators::new(self.report, Standard::Hj2026),
        ];
        let pick = |s: Standard| &by_standard[usize::from(s == Standard::Hj2026)];
        // the standard of the previous row: a literal is parsed once
        let mut last: Option<(String, Standard)> = None;
        let mut standard_at = |i: usize| -> Result<Option<Standard>> {
            let Some(col) = standards else {
                return Ok(Some(Standard::DEFAULT));
            };
            if col.is_null(i) {
                return Ok(None);
            }
            let text = col.value(i);
            if let Some((t, s)) = &last
                && t == text
            {
                return Ok(Some(*s));
            }
            match text.parse::<Standard>() {
                Ok(s) => {
                    last = Some((text.to_string(), s));
                    Ok(Some(s))
                }
                Err(e) => exec_err!("{}: {e}", self.name),
            }
        };
        let out: ArrayRef = match self.output {
            // one standard for the whole batch (absent or a literal): column by column
            Output::Aqi if standards.is_none_or(|c| c.null_count() == 0 && all_equal(c)) => {
                match standard_at(0)? {
                    _ if len == 0 => Arc::new(Int32Array::new_null(0)),
                    Some(s) => aqi_columns(pick(s), &values, len),
                    None => Arc::new(Int32Array::new_null(len)),
                }
            }
            Output::Aqi => {
                let mut b = Int32Builder::with_capacity(len);
                for i in 0..len {
                    match standard_at(i)? {
                        None => b.append_null(),
                        Some(s) => {
                            b.append_option(evaluate(pick(s), &values, i).aqi.map(|v| v as i32))
                        }
                    }
                }
                Arc::new(b.finish())
            }
            Output::Primary => {
                let mut b = ListBuilder::new(StringBuilder::new())
                    .with_field(Arc::new(Field::new_list_field(DataType::Utf8, true)));
                for i in 0..len {
                    let Some(s) = standard_at(i)? else {
                        b.append_null();
                        continue;
                    };
                    let ind = pick(s);
                    let row = evaluate(ind, &values, i);
                    let Some(aqi) = row.aqi else {
                        b.append_null();
                        continue;
                    };
                    if aqi > 50 {
                        let mut seen_o3 = false;
                        for (k, (p, _)) in ind.tables.iter().enumerate() {
                            if row.iaqi[k] == Some(aqi) && !(*p == Pollutant::O3 && seen_o3) {
                                seen_o3 |= *p == Pollutant::O3;
                                b.values().append_value(p.label());
                            }
                        }
                    }
                    b.append(true);
                }
                Arc::new(b.finish())
            }
        };
        result(out, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        let i = match (self.report, self.output) {
            (Report::Daily, Output::Aqi) => 0,
            (Report::Hourly, Output::Aqi) => 1,
            (Report::Daily, Output::Primary) => 2,
            (Report::Hourly, Output::Primary) => 3,
        };
        Some(&DOCS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Float64Array;
    use datafusion::logical_expr::ScalarUDF;
    use datafusion::prelude::SessionContext;

    async fn run(sql: &str) -> Result<String> {
        let ctx = SessionContext::new();
        for f in [
            AqiCn::daily(),
            AqiCn::hourly(),
            AqiCn::primary(),
            AqiCn::hourly_primary(),
        ] {
            ctx.register_udf(ScalarUDF::from(f));
        }
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    #[tokio::test]
    async fn domain_md_daily_example() {
        let t = run(
            "SELECT aqi_cn_daily(75, 150, 10, 80, 1.0, 160, 'HJ633-2012') a, \
                            aqi_cn_primary(75, 150, 10, 80, 1.0, 160, 'HJ633-2012') p, \
                            aqi_cn_daily(75, 150, 10, 80, 1.0, 160) b, \
                            aqi_cn_primary(75, 150, 10, 80, 1.0, 160) q",
        )
        .await
        .unwrap();
        assert!(
            t.contains("| 100 | [PM2.5, PM10, NO2, O3] | 114 | [PM2.5] |"),
            "{t}"
        );
    }

    #[tokio::test]
    async fn o3_1h_missing_pollutants_and_nulls() {
        // 2012 daily: O3 1h is the 7th indicator; 2026 ignores it
        let t = run(
            "SELECT aqi_cn_daily(10, 10, 10, 10, 0.5, 50, 300, 'HJ633-2012') a, \
                            aqi_cn_daily(10, 10, 10, 10, 0.5, 50, 300) b, \
                            aqi_cn_primary(10, 10, 10, 10, 0.5, 50, 300, 'HJ633-2012') c",
        )
        .await
        .unwrap();
        assert!(t.contains("| 150 | 25 | [O3] |"), "{t}");
        // 2012: O3 8h above 800 is not computed, the 1h value stands in
        let t = run(
            "SELECT aqi_cn_daily(10, 10, 10, 10, 0.5, 801, 300, 'HJ633-2012') a, \
                            aqi_cn_daily(10, 10, 10, 10, 0.5, 801, 'HJ633-2012') b, \
                            aqi_cn_daily(10, 10, 10, 10, 0.5, 801) c",
        )
        .await
        .unwrap();
        assert!(t.contains("| 150 | 15 | 300 |"), "{t}");
        // a missing pollutant: 2012 takes the others; 2026 publishes only above 100
        let t = run(
            "SELECT aqi_cn_daily(NULL, 10, 10, 10, 0.5, 50, 'HJ633-2012') a, \
                            aqi_cn_daily(NULL, 10, 10, 10, 0.5, 50) b, \
                            aqi_cn_daily(NULL, 10, 10, 10, 0.5, 170) c, \
                            aqi_cn_daily(-1, 10, 10, 10, 0.5, 170) d, \
                            aqi_cn_daily(NULL, NULL, NULL, NULL, NULL, NULL, 'HJ633-2012') e, \
                            aqi_cn_primary(10, 10, 10, 10, 0.5, 50) f, \
                            aqi_cn_primary(NULL, 10, 10, 10, 0.5, 50) g",
        )
        .await
        .unwrap();
        assert!(t.contains("| 25 |   | 110 | 110 |   | [] |   |"), "{t}");
    }

    #[tokio::test]
    async fn hourly_report() {
        // PM uses the 24h breakpoints; SO2 1h above 800: none (2012) / 200 (2026)
        let t = run(
            "SELECT aqi_cn_hourly(75, 10, 10, 10, 0.5, 10, 'HJ633-2012') a, \
                            aqi_cn_hourly(10, 10, 801, 10, 0.5, 10, 'HJ633-2012') b, \
                            aqi_cn_hourly(10, 10, 801, 10, 0.5, 10) c, \
                            aqi_cn_hourly_primary(10, 10, 801, 10, 0.5, 10) d, \
                            aqi_cn_hourly_primary(40, 60, 10, 90, 0.8, 170) e",
        )
        .await
        .unwrap();
        assert!(t.contains("| 100 | 15 | 200 | [SO2] | [O3] |"), "{t}");
    }

    #[tokio::test]
    async fn bad_arguments_are_planning_errors() {
        for (sql, needle) in [
            (
                "SELECT aqi_cn_daily(1, 2, 3, 4, 5)",
                "aqi_cn_daily takes (pm25, pm10, so2, no2, co, o3_8h [, o3_1h] [, standard]), got 5",
            ),
            (
                "SELECT aqi_cn_daily(1, 2, 3, 4, 5, 6, 'HJ633-1999')",
                "aqi_cn_daily: unknown standard 'HJ633-1999'",
            ),
            (
                "SELECT aqi_cn_daily(1, 2, 3, 4, 5, 6, 7, 8)",
                "aqi_cn_daily: standard must be text",
            ),
            (
                "SELECT aqi_cn_hourly(1, 2, 3, 4, 5, 6, 7)",
                "aqi_cn_hourly: standard must be text",
            ),
            (
                "SELECT aqi_cn_primary('a', 2, 3, 4, 5, 6)",
                "aqi_cn_primary: pm25 must be numeric",
            ),
        ] {
            let e = run(sql).await.unwrap_err().to_string();
            assert!(e.contains(needle), "{sql}: {e}");
        }
    }

    #[test]
    fn arrays_sliced_and_mixed_with_scalars() {
        let pm25: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(999.0),
            Some(75.0),
            None,
            Some(4.9),
        ]));
        let pm25 = pm25.slice(1, 3);
        let mut args = vec![ColumnarValue::Array(pm25)];
        for v in [10.0, 10.0, 10.0, 0.5, 10.0] {
            args.push(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::Float64(Some(v)),
            ));
        }
        args.push(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::Utf8(Some("HJ633-2012".into())),
        ));
        let out = AqiCn::daily()
            .invoke_with_args(ScalarFunctionArgs {
                args,
                arg_fields: vec![],
                number_rows: 3,
                return_field: field("x", DataType::Int32),
                config_options: Default::default(),
            })
            .unwrap();
        let ColumnarValue::Array(out) = out else {
            panic!("array")
        };
        let out = out.as_any().downcast_ref::<Int32Array>().unwrap();
        // 2012: PM2.5 75 → 100; NULL PM2.5 → max of the others (SO2 10 → 10,
        // NO2 10 → 13, PM10 10 → 10, CO 0.5 → 13, O3 10 → 5) = 13; 4.9 → 7 vs 13
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            vec![Some(100), Some(13), Some(13)]
        );
        assert_eq!(out.len(), 3);
    }
}
