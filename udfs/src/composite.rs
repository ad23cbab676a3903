//! Composite city indices (docs/standards.md §3): normalisation windows and the
//! entropy weight method.
//!
//! No published formula exists for a single "city sign" score; these are the
//! well-defined building blocks: `minmax_norm(x, direction) OVER (…)`,
//! `zscore(x) OVER (…)` and the aggregate `entropy_weight(x_norm)` returning
//! the indicator's d_j, so that `d / SUM(d) OVER ()` are the weights.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{
    AccumulatorArgs, PartitionEvaluatorArgs, StateFieldsArgs, WindowUDFFieldArgs,
};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, DocSection, Documentation, PartitionEvaluator,
    Signature, Volatility, WindowUDF, WindowUDFImpl,
};

use crate::args::{floats, numeric, text};

pub(crate) const COMPOSITE: DocSection = DocSection {
    include: true,
    label: "Composite indices",
    description: Some("Normalisation and entropy weights for composite city indices"),
};

/// The window functions of this family.
pub fn windows() -> Vec<Arc<WindowUDF>> {
    vec![
        Arc::new(WindowUDF::from(Normalise::minmax())),
        Arc::new(WindowUDF::from(Normalise::zscore())),
    ]
}

/// The aggregate functions of this family.
pub fn aggregates() -> Vec<Arc<AggregateUDF>> {
    vec![Arc::new(AggregateUDF::from(EntropyWeight::default()))]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Method {
    MinMax,
    ZScore,
}

/// `minmax_norm(x, direction)` and `zscore(x)`, over a window partition.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Normalise {
    name: &'static str,
    method: Method,
    signature: Signature,
}

impl Normalise {
    fn new(name: &'static str, method: Method) -> Self {
        Self {
            name,
            method,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
    pub fn minmax() -> Self {
        Self::new("minmax_norm", Method::MinMax)
    }
    pub fn zscore() -> Self {
        Self::new("zscore", Method::ZScore)
    }
}

static NORMALISE_DOCS: LazyLock<[Documentation; 2]> = LazyLock::new(|| {
    [
        Documentation::builder(
            COMPOSITE,
            "Min–max normalisation over the window partition (a window function: use it with OVER): \
             'positive' gives (x − min) / (max − min), 'negative' (larger is worse) gives (max − x) / \
             (max − min). A constant partition gives 0 for every row, so its entropy weight is 0. NULL, \
             NaN and infinite x give NULL and do not count towards min and max.",
            "minmax_norm(x, direction) OVER ([PARTITION BY …])",
        )
        .with_sql_example(
            "> SELECT x, minmax_norm(x, 'negative') OVER () n FROM (VALUES (10), (20), (25)) t(x) ORDER BY x;\n\
             +----+--------------------+\n| x  | n                  |\n+----+--------------------+\n| 10 | 1.0                |\n| 20 | 0.3333333333333333 |\n| 25 | 0.0                |\n+----+--------------------+",
        )
        .with_argument("x", "the indicator, numeric")
        .with_argument("direction", "'positive' (larger is better) or 'negative' (larger is worse); constant in the partition")
        .build(),
        Documentation::builder(
            COMPOSITE,
            "Standard score over the window partition (a window function: use it with OVER): (x − mean) / \
             σ with the population standard deviation σ. A constant partition gives 0. NULL, NaN and \
             infinite x give NULL and do not count.",
            "zscore(x) OVER ([PARTITION BY …])",
        )
        .with_sql_example(
            "> SELECT x, zscore(x) OVER () z FROM (VALUES (1), (3)) t(x) ORDER BY x;\n\
             +---+------+\n| x | z    |\n+---+------+\n| 1 | -1.0 |\n| 3 | 1.0  |\n+---+------+",
        )
        .with_argument("x", "the indicator, numeric")
        .build(),
    ]
});

impl WindowUDFImpl for Normalise {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let (n, usage) = match self.method {
            Method::MinMax => (2, "(x, direction)"),
            Method::ZScore => (1, "(x)"),
        };
        if t.len() != n {
            return plan_err!("{} takes {usage}, got {} arguments", self.name, t.len());
        }
        let mut out = vec![numeric(self.name, "x", &t[0]).map(|_| DataType::Float64)?];
        if n == 2 {
            out.push(text(self.name, "direction", &t[1])?);
        }
        Ok(out)
    }
    fn partition_evaluator(
        &self,
        _: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(NormaliseEvaluator {
            name: self.name,
            method: self.method,
        }))
    }
    fn field(&self, args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(args.name(), DataType::Float64, true)))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&NORMALISE_DOCS[self.method as usize])
    }
}

#[derive(Debug)]
struct NormaliseEvaluator {
    name: &'static str,
    method: Method,
}

impl NormaliseEvaluator {
    /// `true` for 'negative'; the direction must be one value in the partition.
    fn negative(&self, directions: &ArrayRef) -> Result<Option<bool>> {
        let d = directions.as_string::<i32>();
        let mut found: Option<&str> = None;
        for v in d.iter().flatten() {
            match found {
                None => found = Some(v),
                Some(f) if f != v => {
                    return exec_err!(
                        "{}: direction must be the same in the whole partition, got '{f}' and '{v}'",
                        self.name
                    );
                }
                Some(_) => {}
            }
        }
        match found.map(|f| f.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(f) if f == "positive" => Ok(Some(false)),
            Some(f) if f == "negative" => Ok(Some(true)),
            Some(f) => exec_err!(
                "{}: unknown direction '{f}'; expected 'positive' or 'negative'",
                self.name
            ),
        }
    }
}

impl PartitionEvaluator for NormaliseEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let x = values[0].as_primitive::<Float64Type>();
        let valid = |i: usize| x.is_valid(i) && x.value(i).is_finite();
        let finite = (0..num_rows).filter(|&i| valid(i)).map(|i| x.value(i));
        let map: Box<dyn Fn(f64) -> f64> = match self.method {
            Method::MinMax => {
                let Some(negative) = self.negative(&values[1])? else {
                    return Ok(Arc::new(Float64Array::new_null(num_rows)));
                };
                let (min, max) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                });
                let range = max - min;
                if range.is_nan() || range <= 0.0 {
                    Box::new(|_| 0.0)
                } else if negative {
                    Box::new(move |v| (max - v) / range)
                } else {
                    Box::new(move |v| (v - min) / range)
                }
            }
            Method::ZScore => {
                let (n, sum) = finite
                    .clone()
                    .fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
                let mean = sum / n.max(1) as f64;
                let var = finite.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1) as f64;
                let sd = var.sqrt();
                if sd.is_nan() || sd <= 0.0 {
                    Box::new(|_| 0.0)
                } else {
                    Box::new(move |v| (v - mean) / sd)
                }
            }
        };
        Ok(Arc::new(
            (0..num_rows)
                .map(|i| valid(i).then(|| map(x.value(i))))
                .collect::<Float64Array>(),
        ))
    }
}

/// `entropy_weight(x_norm)`: d_j = 1 − e_j of one indicator (docs/standards.md §3).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EntropyWeight {
    signature: Signature,
}

impl Default for EntropyWeight {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static ENTROPY_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        COMPOSITE,
        "Entropy weight method, the degree of divergence d_j = 1 − e_j of one indicator over n samples: \
         p_i = x_i / Σx, e_j = −(1 / ln n) Σ p_i ln p_i with 0·ln 0 = 0. Normalise first (minmax_norm); the \
         weights are then d_j / Σ_k d_k (in SQL: d / NULLIF(d1 + d2 + …, 0)), the score Σ_j w_j x'_ij (× 100). \
         n is the number of non-NULL, non-NaN values; n < 2 gives NULL; an all-zero or constant column gives \
         0 (weight 0); when every column is constant the weights' denominator is 0, so NULLIF gives NULL. \
         A negative value is an error (x' must be ≥ 0).",
        "entropy_weight(x_norm)",
    )
    .with_sql_example(
        "> SELECT round(entropy_weight(x), 6) d FROM (VALUES (0.2), (0.6), (0.0), (1.0)) t(x);\n\
         +----------+\n| d        |\n+----------+\n| 0.324178 |\n+----------+",
    )
    .with_argument("x_norm", "the normalised indicator, ≥ 0")
    .build()
});

impl AggregateUDFImpl for EntropyWeight {
    fn name(&self) -> &str {
        "entropy_weight"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        floats(self.name(), &["x_norm"], t)
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<EntropyAcc>::default())
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[n]", args.name),
                DataType::Int64,
                true,
            )),
            Arc::new(Field::new(
                format!("{}[sum]", args.name),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format!("{}[sum_x_ln_x]", args.name),
                DataType::Float64,
                true,
            )),
        ])
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&ENTROPY_DOC)
    }
}

/// Streaming entropy: with S = Σx and T = Σ x ln x, Σ p ln p = T/S − ln S.
#[derive(Debug, Default)]
struct EntropyAcc {
    n: i64,
    sum: f64,
    sum_x_ln_x: f64,
}

impl Accumulator for EntropyAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for v in values[0].as_primitive::<Float64Type>().iter().flatten() {
            if v.is_nan() {
                continue;
            }
            if v < 0.0 || v.is_infinite() {
                return exec_err!(
                    "entropy_weight: x_norm must be a finite value ≥ 0 (normalise with minmax_norm first), got {v}"
                );
            }
            self.n += 1;
            self.sum += v;
            if v > 0.0 {
                self.sum_x_ln_x += v * v.ln();
            }
        }
        Ok(())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.n < 2 {
            return Ok(ScalarValue::Float64(None));
        }
        if self.sum <= 0.0 {
            return Ok(ScalarValue::Float64(Some(0.0)));
        }
        let e = (self.sum.ln() - self.sum_x_ln_x / self.sum) / (self.n as f64).ln();
        Ok(ScalarValue::Float64(Some((1.0 - e).clamp(0.0, 1.0))))
    }
    fn size(&self) -> usize {
        size_of_val(self)
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Int64(Some(self.n)),
            ScalarValue::Float64(Some(self.sum)),
            ScalarValue::Float64(Some(self.sum_x_ln_x)),
        ])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n: &Int64Array = states[0].as_primitive::<Int64Type>();
        let s = states[1].as_primitive::<Float64Type>();
        let t = states[2].as_primitive::<Float64Type>();
        for i in 0..n.len() {
            if n.is_valid(i) {
                self.n += n.value(i);
                self.sum += s.value(i);
                self.sum_x_ln_x += t.value(i);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entropy(v: &[f64]) -> Option<f64> {
        let mut a = EntropyAcc::default();
        a.update_batch(&[Arc::new(Float64Array::from(v.to_vec()))])
            .unwrap();
        match a.evaluate().unwrap() {
            ScalarValue::Float64(d) => d,
            _ => unreachable!(),
        }
    }

    #[test]
    fn domain_md_entropy_example() {
        // X = [[3,10],[5,20],[2,15],[7,25]], column 1 positive, column 2 negative
        let c1 = [0.2, 0.6, 0.0, 1.0];
        let c2 = [1.0, 1.0 / 3.0, 2.0 / 3.0, 0.0];
        let (d1, d2) = (entropy(&c1).unwrap(), entropy(&c2).unwrap());
        assert!((1.0 - d1 - 0.675822).abs() < 1e-6, "e1 = {}", 1.0 - d1);
        assert!((1.0 - d2 - 0.729574).abs() < 1e-6, "e2 = {}", 1.0 - d2);
        let (w1, w2) = (d1 / (d1 + d2), d2 / (d1 + d2));
        assert!((w1 - 0.545200).abs() < 1e-6 && (w2 - 0.454800).abs() < 1e-6);
        let scores: Vec<f64> = (0..4).map(|i| 100.0 * (w1 * c1[i] + w2 * c2[i])).collect();
        for (got, want) in scores.iter().zip([56.384, 47.872, 30.320, 54.520]) {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
    }

    #[test]
    fn entropy_edge_cases() {
        assert_eq!(entropy(&[0.5]), None, "n = 1");
        assert_eq!(entropy(&[]), None);
        assert_eq!(entropy(&[0.0, 0.0, 0.0]), Some(0.0), "all zero");
        assert!(entropy(&[0.4, 0.4, 0.4]).unwrap().abs() < 1e-12, "constant");
        let mut a = EntropyAcc::default();
        let e = a
            .update_batch(&[Arc::new(Float64Array::from(vec![0.5, -0.1]))])
            .unwrap_err();
        assert!(e.to_string().contains("must be a finite value ≥ 0"), "{e}");
        // merging partial states equals one pass
        let mut p = EntropyAcc::default();
        p.update_batch(&[Arc::new(Float64Array::from(vec![0.2, 0.6]))])
            .unwrap();
        let mut q = EntropyAcc::default();
        q.update_batch(&[Arc::new(Float64Array::from(vec![0.0, 1.0]))])
            .unwrap();
        let states: Vec<ArrayRef> = p
            .state()
            .unwrap()
            .iter()
            .map(|s| s.to_array().unwrap())
            .collect();
        q.merge_batch(&states).unwrap();
        let merged = match q.evaluate().unwrap() {
            ScalarValue::Float64(d) => d.unwrap(),
            _ => unreachable!(),
        };
        assert!((merged - entropy(&[0.2, 0.6, 0.0, 1.0]).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn normalisation() {
        let x: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(10.0),
            None,
            Some(20.0),
            Some(25.0),
        ]));
        let dir: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec![
            "negative";
            4
        ]));
        let mut ev = NormaliseEvaluator {
            name: "minmax_norm",
            method: Method::MinMax,
        };
        let out = ev.evaluate_all(&[x.clone(), dir], 4).unwrap();
        let out = out.as_primitive::<Float64Type>();
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            vec![Some(1.0), None, Some(1.0 / 3.0), Some(0.0)]
        );
        let mut ev = NormaliseEvaluator {
            name: "zscore",
            method: Method::ZScore,
        };
        let out = ev.evaluate_all(&[x], 4).unwrap();
        let z = out.as_primitive::<Float64Type>();
        let sum: f64 = z.iter().flatten().sum();
        assert!(sum.abs() < 1e-12 && z.is_null(1));
        let bad: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec!["up"; 1]));
        let one: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        let mut ev = NormaliseEvaluator {
            name: "minmax_norm",
            method: Method::MinMax,
        };
        let e = ev.evaluate_all(&[one, bad], 1).unwrap_err();
        assert!(e.to_string().contains("unknown direction 'up'"), "{e}");
    }
}
