//! Scalar traffic functions: travel-time ratios, congestion states, TPI.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::{TRAFFIC, state_label, tpi_of_dtp};
use crate::args::{
    Numeric, arguments, check_lang, english, field, floats, literal, numeric, result, text,
};
use crate::decimal::Decimal;

/// Which ratio of actual to free-flow travel time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ratio {
    /// GB/T 33171: actual / free, floored at 1.
    TravelTimeIndex,
    /// GB/T 33171: (actual − free) / actual, floored at 0.
    DelayTimeProportion,
    /// Gaode/Didi: actual / free, no floor.
    CongestionDelayIndex,
    /// TomTom: (actual / free − 1) × 100.
    TomtomPct,
}

/// `travel_time_index`, `delay_time_proportion`, `congestion_delay_index`,
/// `tomtom_congestion_pct`: (actual_s, free_flow_s) → DOUBLE.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeRatio {
    name: &'static str,
    ratio: Ratio,
    signature: Signature,
}

impl TimeRatio {
    fn new(name: &'static str, ratio: Ratio) -> Self {
        Self {
            name,
            ratio,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
    pub fn travel_time_index() -> Self {
        Self::new("travel_time_index", Ratio::TravelTimeIndex)
    }
    pub fn delay_time_proportion() -> Self {
        Self::new("delay_time_proportion", Ratio::DelayTimeProportion)
    }
    pub fn congestion_delay_index() -> Self {
        Self::new("congestion_delay_index", Ratio::CongestionDelayIndex)
    }
    pub fn tomtom_congestion_pct() -> Self {
        Self::new("tomtom_congestion_pct", Ratio::TomtomPct)
    }

    fn apply(&self, actual: f64, free: f64) -> Option<f64> {
        if !(actual.is_finite() && free.is_finite()) || actual <= 0.0 || free <= 0.0 {
            return None;
        }
        Some(match self.ratio {
            Ratio::TravelTimeIndex => (actual / free).max(1.0),
            Ratio::DelayTimeProportion => ((actual - free) / actual).max(0.0),
            Ratio::CongestionDelayIndex => actual / free,
            Ratio::TomtomPct => (actual - free) * 100.0 / free,
        })
    }
}

const TIME_ARGS: [(&str, &str); 2] = [
    ("actual_s", "actual (mean) travel time, seconds; > 0"),
    ("free_flow_s", "free-flow travel time, seconds; > 0"),
];
const INVALID: &str = "A NULL, zero or negative time gives NULL (not a valid travel time).";

static RATIO_DOCS: LazyLock<[Documentation; 4]> = LazyLock::new(|| {
    let doc = |text: String, syntax: &str, example: &str| {
        let mut b = Documentation::builder(TRAFFIC, text, syntax).with_sql_example(example);
        for (name, what) in TIME_ARGS {
            b = b.with_argument(name, what);
        }
        b.build()
    };
    [
        doc(
            format!(
                "Travel time index TTI (GB/T 33171-2016) = actual / free-flow travel time, floored at 1 (faster than free flow counts as free flow). {INVALID}"
            ),
            "travel_time_index(actual_s, free_flow_s)",
            "> SELECT travel_time_index(150, 100), travel_time_index(90, 100);\n+-----+-----+\n| 1.5 | 1.0 |\n+-----+-----+",
        ),
        doc(
            format!(
                "Delay time proportion DTP (GB/T 33171-2016) = (actual − free-flow) / actual, floored at 0; equals 1 − V/V_free. {INVALID}"
            ),
            "delay_time_proportion(actual_s, free_flow_s)",
            "> SELECT delay_time_proportion(200, 100), delay_time_proportion(90, 100);\n+-----+-----+\n| 0.5 | 0.0 |\n+-----+-----+",
        ),
        doc(
            format!(
                "Congestion delay index (Gaode/Didi) = actual / free-flow travel time, without a floor (below 1 when faster than free flow). {INVALID}"
            ),
            "congestion_delay_index(actual_s, free_flow_s)",
            "> SELECT congestion_delay_index(90, 100);\n+-----+\n| 0.9 |\n+-----+",
        ),
        doc(
            format!(
                "TomTom congestion level in percent = (actual / free-flow − 1) × 100; negative when faster than free flow (no floor). {INVALID}"
            ),
            "tomtom_congestion_pct(actual_s, free_flow_s)",
            "> SELECT tomtom_congestion_pct(130, 100);\n+------+\n| 30.0 |\n+------+",
        ),
    ]
});

fn check_arity(name: &str, t: &[DataType], min: usize, max: usize, usage: &str) -> Result<()> {
    if (min..=max).contains(&t.len()) {
        Ok(())
    } else {
        plan_err!("{name} takes {usage}, got {} arguments", t.len())
    }
}

impl ScalarUDFImpl for TimeRatio {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        floats(self.name, &["actual_s", "free_flow_s"], t)
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = arguments(&args.args)?;
        let actual = arrays[0].as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let free = arrays[1].as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let mut b = Float64Builder::with_capacity(actual.len());
        for i in 0..actual.len() {
            if actual.is_null(i) || free.is_null(i) {
                b.append_null();
            } else {
                b.append_option(self.apply(actual.value(i), free.value(i)));
            }
        }
        result(Arc::new(b.finish()), all_scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&RATIO_DOCS[self.ratio as usize])
    }
}

/// What a congestion state is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum StateBy {
    /// V / V_free (GB/T 33171-2016).
    Ratio,
    /// Speed thresholds of the road class (DB11/T 785).
    Class,
    /// The TPI bands (GB/T 33171-2016).
    Tpi,
}

/// `segment_state`, `segment_state_by_class`, `tpi_level`: → TEXT congestion state.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CongestionState {
    name: &'static str,
    by: StateBy,
    signature: Signature,
}

/// Road classes of DB11/T 785 and their speed thresholds (km/h): above the
/// first is 畅通, above the second 基本畅通, … at or below the last 严重拥堵.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoadClass {
    Expressway,
    Arterial,
    /// Secondary and branch roads share a table.
    Minor,
}

impl RoadClass {
    const NAMES: &'static str =
        "'expressway', 'arterial', 'secondary', 'branch' (or 快速路, 主干路, 次干路, 支路)";

    fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "expressway" | "快速路" => Ok(Self::Expressway),
            "arterial" | "主干路" => Ok(Self::Arterial),
            "secondary" | "branch" | "次干路" | "支路" => Ok(Self::Minor),
            _ => Err(format!(
                "unknown road class '{s}'; expected one of {}",
                Self::NAMES
            )),
        }
    }

    fn thresholds(self) -> [i64; 4] {
        match self {
            Self::Expressway => [65, 50, 35, 20],
            Self::Arterial => [40, 30, 20, 15],
            Self::Minor => [35, 25, 15, 10],
        }
    }
}

impl CongestionState {
    fn new(name: &'static str, by: StateBy) -> Self {
        Self {
            name,
            by,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
    pub fn by_ratio() -> Self {
        Self::new("segment_state", StateBy::Ratio)
    }
    pub fn by_class() -> Self {
        Self::new("segment_state_by_class", StateBy::Class)
    }
    pub fn tpi_level() -> Self {
        Self::new("tpi_level", StateBy::Tpi)
    }

    fn usage(&self) -> &'static str {
        match self.by {
            StateBy::Ratio => "(speed, free_flow_speed [, lang])",
            StateBy::Class => "(speed, road_class [, lang])",
            StateBy::Tpi => "(tpi [, lang])",
        }
    }

    fn arity(&self) -> usize {
        match self.by {
            StateBy::Ratio | StateBy::Class => 2,
            StateBy::Tpi => 1,
        }
    }
}

/// The band (0 = 畅通 … 4 = 严重拥堵) of V / V_free, exactly: 10·V > 7·V_free
/// and so on, on the decimal values, so float error cannot cross a threshold.
fn band_by_ratio(v: Decimal, free: Decimal) -> Option<usize> {
    if v.is_negative() || free.cmp_int(0) != std::cmp::Ordering::Greater {
        return None;
    }
    let v10 = v.mul_int(10);
    // ratio > 0.7, > 0.5, > 0.4, > 0.3
    Some(
        [7, 5, 4, 3]
            .iter()
            .position(|&k| v10 > free.mul_int(k))
            .unwrap_or(4),
    )
}

fn band_by_class(v: Decimal, class: RoadClass) -> Option<usize> {
    if v.is_negative() {
        return None;
    }
    Some(
        class
            .thresholds()
            .iter()
            .position(|&t| v.cmp_int(t) == std::cmp::Ordering::Greater)
            .unwrap_or(4),
    )
}

/// TPI bands [0,2) 畅通, [2,4) 基本畅通, [4,6) 轻度, [6,8) 中度, [8,10] 严重.
fn band_by_tpi(tpi: Decimal) -> Option<usize> {
    if tpi.is_negative() || tpi.cmp_int(10) == std::cmp::Ordering::Greater {
        return None;
    }
    Some(
        [2, 4, 6, 8]
            .iter()
            .position(|&t| tpi.cmp_int(t) == std::cmp::Ordering::Less)
            .unwrap_or(4),
    )
}

static STATE_DOCS: LazyLock<[Documentation; 3]> = LazyLock::new(|| {
    let lang = (
        "lang",
        "'zh' (default: 畅通, 基本畅通, 轻度拥堵, 中度拥堵, 严重拥堵) or 'en' (smooth, basically smooth, lightly congested, moderately congested, severely congested)",
    );
    [
        Documentation::builder(
            TRAFFIC,
            "Congestion state of a segment by the speed ratio V / V_free (GB/T 33171-2016): 畅通 above 0.7, \
             基本畅通 (0.5, 0.7], 轻度拥堵 (0.4, 0.5], 中度拥堵 (0.3, 0.4], 严重拥堵 at or below 0.3. Compared \
             exactly on the decimal values (10·V > 7·V_free), so a ratio of exactly 0.7 is 基本畅通. NULL for \
             NULL, a negative speed or a free-flow speed ≤ 0.",
            "segment_state(speed, free_flow_speed [, lang])",
        )
        .with_sql_example("> SELECT segment_state(35, 50), segment_state(36, 50, 'en');\n+----------+--------+\n| 基本畅通 | smooth |\n+----------+--------+")
        .with_argument("speed", "mean speed, km/h")
        .with_argument("free_flow_speed", "free-flow speed of the segment, km/h")
        .with_argument(lang.0, lang.1)
        .build(),
        Documentation::builder(
            TRAFFIC,
            "Congestion state of a segment by the speed thresholds of its road class (Beijing DB11/T 785-2011; km/h, \
             畅通 / 基本畅通 / 轻度 / 中度 / 严重): expressway > 65 / (50, 65] / (35, 50] / (20, 35] / ≤ 20; arterial \
             > 40 / (30, 40] / (20, 30] / (15, 20] / ≤ 15; secondary and branch > 35 / (25, 35] / (15, 25] / (10, 15] / ≤ 10. \
             NULL for NULL or a negative speed; an unknown road class is an error.",
            "segment_state_by_class(speed, road_class [, lang])",
        )
        .with_sql_example("> SELECT segment_state_by_class(50, 'expressway'), segment_state_by_class(50, 'arterial');\n+----------+------+\n| 轻度拥堵 | 畅通 |\n+----------+------+")
        .with_argument("speed", "mean speed, km/h")
        .with_argument("road_class", RoadClass::NAMES)
        .with_argument(lang.0, lang.1)
        .build(),
        Documentation::builder(
            TRAFFIC,
            "Congestion level of a traffic performance index (GB/T 33171-2016): [0, 2) 畅通, [2, 4) 基本畅通, \
             [4, 6) 轻度拥堵, [6, 8) 中度拥堵, [8, 10] 严重拥堵. NULL outside [0, 10].",
            "tpi_level(tpi [, lang])",
        )
        .with_sql_example("> SELECT tpi_level(4), tpi_level(3.99, 'en');\n+----------+------------------+\n| 轻度拥堵 | basically smooth |\n+----------+------------------+")
        .with_argument("tpi", "traffic performance index, 0–10")
        .with_argument(lang.0, lang.1)
        .build(),
    ]
});

impl ScalarUDFImpl for CongestionState {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let n = self.arity();
        check_arity(self.name, t, n, n + 1, self.usage())?;
        let mut out = Vec::with_capacity(t.len());
        match self.by {
            StateBy::Ratio => {
                out.push(numeric(self.name, "speed", &t[0])?);
                out.push(numeric(self.name, "free_flow_speed", &t[1])?);
            }
            StateBy::Class => {
                out.push(numeric(self.name, "speed", &t[0])?);
                out.push(text(self.name, "road_class", &t[1])?);
            }
            StateBy::Tpi => out.push(numeric(self.name, "tpi", &t[0])?),
        }
        if let Some(lang) = t.get(n) {
            out.push(text(self.name, "lang", lang)?);
        }
        Ok(out)
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if self.by == StateBy::Class
            && let Some(class) = literal(&args, 1)
            && let Err(e) = RoadClass::parse(&class)
        {
            return plan_err!("{}: {e}", self.name);
        }
        check_lang(self.name, &args, self.arity())?;
        Ok(field(self.name, DataType::Utf8))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = arguments(&args.args)?;
        let len = arrays[0].len();
        let first = Numeric::new(&arrays[0]);
        let second = (self.by == StateBy::Ratio).then(|| Numeric::new(&arrays[1]));
        let classes = (self.by == StateBy::Class).then(|| arrays[1].as_string::<i32>());
        let langs = arrays.get(self.arity()).map(|a| a.as_string::<i32>());
        let mut last_class: Option<(String, RoadClass)> = None;
        let mut b = StringBuilder::with_capacity(len, len * 12);
        for i in 0..len {
            let english = match langs {
                None => false,
                Some(l) if l.is_null(i) => {
                    b.append_null();
                    continue;
                }
                Some(l) => english(self.name, l.value(i))?,
            };
            let band = match self.by {
                StateBy::Ratio => {
                    match (first.decimal(i), second.as_ref().and_then(|s| s.decimal(i))) {
                        (Some(v), Some(f)) => band_by_ratio(v, f),
                        _ => None,
                    }
                }
                StateBy::Class => {
                    let classes = classes.expect("class column");
                    match first.decimal(i) {
                        Some(v) if !classes.is_null(i) => {
                            let name = classes.value(i);
                            let class = match &last_class {
                                Some((n, c)) if n == name => *c,
                                _ => match RoadClass::parse(name) {
                                    Ok(c) => {
                                        last_class = Some((name.to_string(), c));
                                        c
                                    }
                                    Err(e) => return exec_err!("{}: {e}", self.name),
                                },
                            };
                            band_by_class(v, class)
                        }
                        _ => None,
                    }
                }
                StateBy::Tpi => first.decimal(i).and_then(band_by_tpi),
            };
            b.append_option(band.map(|band| state_label(band, english)));
        }
        let out: ArrayRef = Arc::new(b.finish());
        result(out, all_scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&STATE_DOCS[self.by as usize])
    }
}

/// `tpi_from_dtp(dtp)` → DOUBLE 0–10.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TpiFromDtp {
    signature: Signature,
}

impl Default for TpiFromDtp {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static TPI_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        TRAFFIC,
        "Traffic performance index (0–10) from a network delay time proportion, by the bins of GB/T \
         33171-2016 Annex C: DTP [0, 0.3) → TPI [0, 2), [0.3, 0.5) → [2, 4), [0.5, 0.6) → [4, 6), \
         [0.6, 0.7) → [6, 8), [0.7, 1] → [8, 10]. Inside a bin the value is interpolated linearly: a \
         common display convention, not the standard's text. Computed on the decimal value (0.55 → 5.0 \
         exactly). NULL outside [0, 1].",
        "tpi_from_dtp(dtp)",
    )
    .with_sql_example(
        "> SELECT tpi_from_dtp(0.15), tpi_from_dtp(0.55), tpi_from_dtp(0.85);\n+-----+-----+-----+\n| 1.0 | 5.0 | 9.0 |\n+-----+-----+-----+",
    )
    .with_argument("dtp", "delay time proportion, 0–1 (see delay_time_proportion, network_tpi)")
    .build()
});

impl ScalarUDFImpl for TpiFromDtp {
    fn name(&self) -> &str {
        "tpi_from_dtp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), t, 1, 1, "(dtp)")?;
        Ok(vec![numeric(self.name(), "dtp", &t[0])?])
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = arguments(&args.args)?;
        let dtp = Numeric::new(&arrays[0]);
        let mut b = Float64Builder::with_capacity(arrays[0].len());
        for i in 0..arrays[0].len() {
            b.append_option(dtp.decimal(i).and_then(tpi_of_dtp));
        }
        result(Arc::new(b.finish()), all_scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&TPI_DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f64) -> Decimal {
        Decimal::from_f64(x).unwrap()
    }

    #[test]
    fn ratio_bands_at_their_edges() {
        // exactly 0.7, 0.5, 0.4, 0.3 belong to the more congested band
        let cases = [
            (35.1, 0),
            (35.0, 1),
            (25.1, 1),
            (25.0, 2),
            (20.0, 3),
            (15.0, 4),
            (0.0, 4),
        ];
        for (v, band) in cases {
            assert_eq!(band_by_ratio(d(v), d(50.0)), Some(band), "{v}");
        }
        // float trouble: 0.7 / 1.0 as doubles is exactly the 0.7 threshold
        assert_eq!(band_by_ratio(d(0.7), d(1.0)), Some(1));
        assert_eq!(band_by_ratio(d(10.0), d(0.0)), None);
        assert_eq!(band_by_ratio(d(-1.0), d(50.0)), None);
    }

    #[test]
    fn class_bands_and_tpi() {
        assert_eq!(band_by_class(d(65.0), RoadClass::Expressway), Some(1));
        assert_eq!(band_by_class(d(65.01), RoadClass::Expressway), Some(0));
        assert_eq!(band_by_class(d(20.0), RoadClass::Expressway), Some(4));
        assert_eq!(band_by_class(d(15.0), RoadClass::Arterial), Some(4));
        assert_eq!(band_by_class(d(10.5), RoadClass::Minor), Some(3));
        assert!(
            RoadClass::parse("motorway")
                .unwrap_err()
                .contains("'expressway'")
        );
        assert_eq!(band_by_tpi(d(2.0)), Some(1));
        assert_eq!(band_by_tpi(d(1.999)), Some(0));
        assert_eq!(band_by_tpi(d(10.0)), Some(4));
        assert_eq!(band_by_tpi(d(10.01)), None);
        for (dtp, tpi) in [
            (0.15, 1.0),
            (0.4, 3.0),
            (0.55, 5.0),
            (0.65, 7.0),
            (0.85, 9.0),
            (0.0, 0.0),
            (0.3, 2.0),
            (1.0, 10.0),
        ] {
            assert_eq!(tpi_of_dtp(d(dtp)), Some(tpi), "{dtp}");
        }
        assert_eq!(tpi_of_dtp(d(1.01)), None);
        assert_eq!(tpi_of_dtp(d(-0.01)), None);
    }

    #[test]
    fn ratios() {
        let tti = TimeRatio::travel_time_index();
        assert_eq!(tti.apply(150.0, 100.0), Some(1.5));
        assert_eq!(tti.apply(90.0, 100.0), Some(1.0));
        assert_eq!(tti.apply(0.0, 100.0), None);
        let dtp = TimeRatio::delay_time_proportion();
        assert_eq!(dtp.apply(200.0, 100.0), Some(0.5));
        assert_eq!(dtp.apply(90.0, 100.0), Some(0.0));
        assert_eq!(
            TimeRatio::congestion_delay_index().apply(90.0, 100.0),
            Some(0.9)
        );
        assert_eq!(
            TimeRatio::tomtom_congestion_pct().apply(130.0, 100.0),
            Some(30.0)
        );
        assert_eq!(TimeRatio::tomtom_congestion_pct().apply(100.0, -1.0), None);
    }
}
