//! Kernel benchmarks of the situation-index functions, each beside a plain
//! arithmetic baseline over the same 1 M rows (DataFusion's own kernels):
//!
//! - `aqi_cn_daily` of six pollutant columns vs `greatest` of the same columns;
//! - `network_tpi` vs the weighted sum Σ w·(t − f)/t with Arrow's arithmetic kernels.
//!
//! Run: `cargo bench -p citylake-udfs --bench functions`. The README reports the ratios.

use std::sync::Arc;

use citylake_udfs::aqi::AqiCn;
use citylake_udfs::traffic::NetworkTpi;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::compute::kernels::{aggregate, numeric};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF};

const ROWS: usize = 1 << 20;
const BATCH: usize = 8192;

/// A deterministic column of one-decimal values in `[lo, hi)`.
fn column(seed: u64, lo: f64, hi: f64) -> Vec<ArrayRef> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f64> = (0..ROWS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            ((lo + u * (hi - lo)) * 10.0).round() / 10.0
        })
        .collect();
    values
        .chunks(BATCH)
        .map(|c| Arc::new(Float64Array::from(c.to_vec())) as ArrayRef)
        .collect()
}

fn invoke(udf: &ScalarUDF, columns: &[Vec<ArrayRef>], batch: usize) -> ColumnarValue {
    let args: Vec<ColumnarValue> = columns
        .iter()
        .map(|c| ColumnarValue::Array(c[batch].clone()))
        .collect();
    let arg_fields = (0..args.len())
        .map(|i| Arc::new(Field::new(format!("c{i}"), DataType::Float64, true)))
        .collect();
    let return_type = udf
        .return_type(&vec![DataType::Float64; args.len()])
        .expect("return type");
    udf.invoke_with_args(ScalarFunctionArgs {
        number_rows: columns[0][batch].len(),
        args,
        arg_fields,
        return_field: Arc::new(Field::new("out", return_type, true)),
        config_options: Default::default(),
    })
    .expect("invoke")
}

fn aqi(c: &mut Criterion) {
    // daily means: PM2.5, PM10, SO2, NO2, CO, O3 8h
    let columns = vec![
        column(1, 5.0, 250.0),
        column(2, 10.0, 400.0),
        column(3, 2.0, 80.0),
        column(4, 5.0, 150.0),
        column(5, 0.2, 4.0),
        column(6, 20.0, 300.0),
    ];
    let daily = ScalarUDF::from(AqiCn::daily());
    let greatest = datafusion::functions::core::greatest();
    let mut group = c.benchmark_group("aqi_1M_rows");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("aqi_cn_daily", |b| {
        b.iter(|| {
            for i in 0..columns[0].len() {
                std::hint::black_box(invoke(&daily, &columns, i));
            }
        })
    });
    group.bench_function("greatest_baseline", |b| {
        b.iter(|| {
            for i in 0..columns[0].len() {
                std::hint::black_box(invoke(&greatest, &columns, i));
            }
        })
    });
    group.finish();
}

fn network_tpi(c: &mut Criterion) {
    let t = column(7, 60.0, 600.0);
    let f = column(8, 50.0, 60.0);
    let w = column(9, 0.0, 500.0);
    let udaf = NetworkTpi::default();
    let schema = datafusion::arrow::datatypes::Schema::empty();
    let return_field = Arc::new(Field::new("tpi", DataType::Float64, true));
    let mut group = c.benchmark_group("network_tpi_1M_rows");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("network_tpi", |b| {
        b.iter(|| {
            let mut acc = udaf
                .accumulator(AccumulatorArgs {
                    return_field: return_field.clone(),
                    schema: &schema,
                    ignore_nulls: false,
                    order_bys: &[],
                    is_reversed: false,
                    name: "network_tpi",
                    is_distinct: false,
                    exprs: &[],
                    expr_fields: &[],
                })
                .expect("accumulator");
            for i in 0..t.len() {
                acc.update_batch(&[t[i].clone(), f[i].clone(), w[i].clone()])
                    .expect("update");
            }
            acc.evaluate().expect("evaluate")
        })
    });
    group.bench_function("weighted_sum_baseline", |b| {
        b.iter(|| {
            let (mut weighted, mut weight) = (0.0, 0.0);
            for i in 0..t.len() {
                let delay = numeric::sub(&t[i], &f[i]).expect("sub");
                let dtp = numeric::div(&delay, &t[i]).expect("div");
                let wd = numeric::mul(&dtp, &w[i]).expect("mul");
                let wd = wd.as_any().downcast_ref::<Float64Array>().expect("f64");
                let wi = w[i].as_any().downcast_ref::<Float64Array>().expect("f64");
                weighted += aggregate::sum(wd).unwrap_or(0.0);
                weight += aggregate::sum(wi).unwrap_or(0.0);
            }
            weighted / weight
        })
    });
    group.finish();
}

criterion_group!(benches, aqi, network_tpi);
criterion_main!(benches);
