//! Traffic aggregates: `network_tpi` and `free_flow_speed`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use super::{TRAFFIC, tpi_of_dtp};
use crate::args::floats;
use crate::decimal::Decimal;

/// `network_tpi(travel_time_s, free_flow_s, weight)`: the weighted network
/// delay time proportion mapped to a TPI.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NetworkTpi {
    signature: Signature,
}

impl Default for NetworkTpi {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static NETWORK_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        TRAFFIC,
        "Traffic performance index (0–10) of a road network: the weighted mean of the segments' delay \
         time proportions DTP = max(0, (t − t_free) / t), weighted by `weight` (use vehicle-kilometres, \
         length × flow: network indices are never plain averages), mapped to a TPI as tpi_from_dtp does. \
         Rows with a NULL argument or a time ≤ 0 are skipped; a negative weight is an error; NULL when \
         the weights sum to 0 or no row remains.",
        "network_tpi(travel_time_s, free_flow_s, weight)",
    )
    .with_sql_example(
        "> SELECT network_tpi(t, f, w) FROM (VALUES (200, 100, 3), (90, 100, 1)) v(t, f, w);\n\
         +------+\n| 2.75 |\n+------+",
    )
    .with_argument("travel_time_s", "actual travel time of a segment observation, seconds")
    .with_argument("free_flow_s", "free-flow travel time of the segment, seconds")
    .with_argument("weight", "vehicle-kilometres (length × vehicle count), ≥ 0")
    .build()
});

impl AggregateUDFImpl for NetworkTpi {
    fn name(&self) -> &str {
        "network_tpi"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        floats(self.name(), &["travel_time_s", "free_flow_s", "weight"], t)
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<NetworkTpiAcc>::default())
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[weight]", args.name),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format!("{}[weighted_dtp]", args.name),
                DataType::Float64,
                true,
            )),
        ])
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&NETWORK_DOC)
    }
}

#[derive(Debug, Default)]
struct NetworkTpiAcc {
    weight: f64,
    weighted_dtp: f64,
}

impl Accumulator for NetworkTpiAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let t = values[0].as_primitive::<Float64Type>();
        let f = values[1].as_primitive::<Float64Type>();
        let w = values[2].as_primitive::<Float64Type>();
        let no_nulls = t.null_count() + f.null_count() + w.null_count() == 0;
        let (t, f, w) = (t.values(), f.values(), w.values());
        let (mut weight, mut weighted) = (0.0, 0.0);
        for i in 0..t.len() {
            if !no_nulls && (values[0].is_null(i) || values[1].is_null(i) || values[2].is_null(i)) {
                continue;
            }
            let (t, f, w) = (t[i], f[i], w[i]);
            if w < 0.0 {
                return exec_err!("network_tpi: weight must be ≥ 0, got {w}");
            }
            if t > 0.0 && f > 0.0 {
                weight += w;
                weighted += w * ((t - f) / t).max(0.0);
            }
        }
        self.weight += weight;
        self.weighted_dtp += weighted;
        Ok(())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.weight.is_nan() || self.weight <= 0.0 {
            return Ok(ScalarValue::Float64(None));
        }
        let dtp = (self.weighted_dtp / self.weight).clamp(0.0, 1.0);
        Ok(ScalarValue::Float64(
            Decimal::from_f64(dtp).and_then(tpi_of_dtp),
        ))
    }
    fn size(&self) -> usize {
        size_of_val(self)
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.weight)),
            ScalarValue::Float64(Some(self.weighted_dtp)),
        ])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let w = states[0].as_primitive::<Float64Type>();
        let d = states[1].as_primitive::<Float64Type>();
        for i in 0..w.len() {
            if w.is_valid(i) && d.is_valid(i) {
                self.weight += w.value(i);
                self.weighted_dtp += d.value(i);
            }
        }
        Ok(())
    }
}

/// `free_flow_speed(interval_mean_speed)`: mean of the fastest ninth.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FreeFlowSpeed {
    signature: Signature,
}

impl Default for FreeFlowSpeed {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static FREE_FLOW_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        TRAFFIC,
        "Free-flow speed of a segment (GB/T 33171-2016): the mean of the fastest ninth of its interval \
         mean speeds — ceil(n / 9) values of n, at least one. Feed it, per segment, the mean speed of \
         each ≤ 15-minute interval of 06:00–24:00 over at least 30 days; cap the result at the speed \
         limit with LEAST(…, speed_limit). NULL, NaN and negative speeds are skipped; NULL when none remain.",
        "free_flow_speed(interval_mean_speed)",
    )
    .with_sql_example(
        "> SELECT free_flow_speed(v) FROM generate_series(1, 18) t(v);\n+------+\n| 17.5 |\n+------+",
    )
    .with_argument("interval_mean_speed", "mean speed of one time interval, km/h")
    .build()
});

impl AggregateUDFImpl for FreeFlowSpeed {
    fn name(&self) -> &str {
        "free_flow_speed"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        floats(self.name(), &["interval_mean_speed"], t)
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<FreeFlowAcc>::default())
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[speeds]", args.name),
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            true,
        ))])
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&FREE_FLOW_DOC)
    }
}

#[derive(Debug, Default)]
struct FreeFlowAcc {
    speeds: Vec<f64>,
}

impl FreeFlowAcc {
    fn extend(&mut self, a: &Float64Array) {
        self.speeds
            .extend(a.iter().flatten().filter(|v| v.is_finite() && *v >= 0.0));
    }
}

impl Accumulator for FreeFlowAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.extend(values[0].as_primitive::<Float64Type>());
        Ok(())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        let n = self.speeds.len();
        if n == 0 {
            return Ok(ScalarValue::Float64(None));
        }
        let k = n.div_ceil(9);
        let fastest = &mut self.speeds[..];
        // the k largest at the front, in any order
        fastest.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let sum: f64 = fastest[..k].iter().sum();
        Ok(ScalarValue::Float64(Some(sum / k as f64)))
    }
    fn size(&self) -> usize {
        size_of_val(self) + self.speeds.capacity() * size_of::<f64>()
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = ScalarValue::new_list_nullable(
            &self
                .speeds
                .iter()
                .map(|v| ScalarValue::Float64(Some(*v)))
                .collect::<Vec<_>>(),
            &DataType::Float64,
        );
        Ok(vec![ScalarValue::List(list)])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                let v = lists.value(i);
                self.extend(v.as_primitive::<Float64Type>());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(v: &[Option<f64>]) -> ArrayRef {
        Arc::new(Float64Array::from(v.to_vec()))
    }

    #[test]
    fn network_tpi_is_weighted_and_mergeable() {
        let mut a = NetworkTpiAcc::default();
        // DTP 0.5 with weight 3, DTP 0 (faster than free flow) with weight 1 → 0.375 → 2 + 0.75
        a.update_batch(&[
            arr(&[Some(200.0), Some(90.0), None, Some(0.0)]),
            arr(&[Some(100.0), Some(100.0), Some(1.0), Some(100.0)]),
            arr(&[Some(3.0), Some(1.0), Some(5.0), Some(7.0)]),
        ])
        .unwrap();
        assert_eq!(a.evaluate().unwrap(), ScalarValue::Float64(Some(2.75)));
        let mut b = NetworkTpiAcc::default();
        b.merge_batch(
            &a.state()
                .unwrap()
                .iter()
                .map(|s| s.to_array().unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(b.evaluate().unwrap(), ScalarValue::Float64(Some(2.75)));
        let e = a
            .update_batch(&[arr(&[Some(1.0)]), arr(&[Some(1.0)]), arr(&[Some(-1.0)])])
            .unwrap_err();
        assert!(e.to_string().contains("weight must be ≥ 0"), "{e}");
        assert_eq!(
            NetworkTpiAcc::default().evaluate().unwrap(),
            ScalarValue::Float64(None)
        );
    }

    #[test]
    fn free_flow_speed_takes_the_fastest_ninth() {
        let mut a = FreeFlowAcc::default();
        let speeds: Vec<_> = (1..=72)
            .map(|v| Some(v as f64))
            .chain([None, Some(f64::NAN)])
            .collect();
        a.update_batch(&[arr(&speeds)]).unwrap();
        // 72 intervals → the fastest 8: 65..=72, mean 68.5
        assert_eq!(a.evaluate().unwrap(), ScalarValue::Float64(Some(68.5)));
        let mut b = FreeFlowAcc::default();
        b.merge_batch(
            &a.state()
                .unwrap()
                .iter()
                .map(|s| s.to_array().unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(b.evaluate().unwrap(), ScalarValue::Float64(Some(68.5)));
        let mut one = FreeFlowAcc::default();
        one.update_batch(&[arr(&[Some(40.0)])]).unwrap();
        assert_eq!(one.evaluate().unwrap(), ScalarValue::Float64(Some(40.0)));
        assert_eq!(
            FreeFlowAcc::default().evaluate().unwrap(),
            ScalarValue::Float64(None)
        );
    }
}
