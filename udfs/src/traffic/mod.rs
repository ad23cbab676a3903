//! Traffic congestion: GB/T 33171-2016 indices, DB11/T 785 speed bands and
//! the commercial (Gaode/Didi, TomTom) definitions (docs/standards.md §2).

mod aggregate;
mod scalar;

pub use aggregate::{FreeFlowSpeed, NetworkTpi};
pub use scalar::{CongestionState, TimeRatio, TpiFromDtp};

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, DocSection, ScalarUDF};

pub(crate) const TRAFFIC: DocSection = DocSection {
    include: true,
    label: "Traffic congestion (GB/T 33171-2016, DB11/T 785)",
    description: Some(
        "Travel-time and speed based congestion indices of road segments and networks",
    ),
};

/// The five congestion states, least congested first.
const STATES_ZH: [&str; 5] = ["畅通", "基本畅通", "轻度拥堵", "中度拥堵", "严重拥堵"];
const STATES_EN: [&str; 5] = [
    "smooth",
    "basically smooth",
    "lightly congested",
    "moderately congested",
    "severely congested",
];

/// The label of congestion state `band` (0 = 畅通 … 4 = 严重拥堵).
pub(crate) fn state_label(band: usize, english: bool) -> &'static str {
    if english {
        STATES_EN[band]
    } else {
        STATES_ZH[band]
    }
}

/// The scalar functions of this family.
pub fn functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(TimeRatio::travel_time_index())),
        Arc::new(ScalarUDF::from(TimeRatio::delay_time_proportion())),
        Arc::new(ScalarUDF::from(TimeRatio::congestion_delay_index())),
        Arc::new(ScalarUDF::from(TimeRatio::tomtom_congestion_pct())),
        Arc::new(ScalarUDF::from(CongestionState::by_ratio())),
        Arc::new(ScalarUDF::from(CongestionState::by_class())),
        Arc::new(ScalarUDF::from(CongestionState::tpi_level())),
        Arc::new(ScalarUDF::from(TpiFromDtp::default())),
    ]
}

/// The aggregate functions of this family.
pub fn aggregates() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::from(NetworkTpi::default())),
        Arc::new(AggregateUDF::from(FreeFlowSpeed::default())),
    ]
}

/// TPI from a network delay time proportion (GB/T 33171-2016 Annex C bins,
/// linear inside a bin), exactly on the decimal value; `None` outside [0, 1].
pub(crate) fn tpi_of_dtp(dtp: crate::decimal::Decimal) -> Option<f64> {
    // bins in hundredths of DTP → TPI from `tpi` to `tpi + 2`
    const BINS: [(i128, i128, f64); 5] = [
        (0, 30, 0.0),
        (30, 50, 2.0),
        (50, 60, 4.0),
        (60, 70, 6.0),
        (70, 100, 8.0),
    ];
    let (m, s) = (dtp.mantissa, dtp.scale);
    if s > 30 {
        return None;
    }
    let pow = 10i128.pow(s);
    // dtp in hundredths, exactly: m / 10^s × 100 = m·100 / pow
    let hundred = m.checked_mul(100)?;
    if hundred < 0 || hundred > 100 * pow {
        return None;
    }
    let (lo, hi, base) = BINS
        .iter()
        .copied()
        .find(|&(_, hi, _)| hundred < hi * pow)
        .unwrap_or(BINS[4]);
    // base + 2·(dtp − lo)/(hi − lo): one rounding of an exact fraction
    let num = 2 * (hundred - lo * pow);
    let den = (hi - lo) * pow;
    Some(base + num as f64 / den as f64)
}
