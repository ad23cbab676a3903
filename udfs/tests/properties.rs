//! Property tests of the IAQI kernel: monotone in the concentration, and equal
//! to the exact rational formula rounded up (an independent integer oracle
//! with its own copy of the HJ 633 tables).

use citylake_udfs::aqi::standard::{Decimal, Period, Pollutant, Standard, iaqi};
use proptest::prelude::*;

const IAQI: [i128; 8] = [0, 50, 100, 150, 200, 300, 400, 500];

/// The breakpoints and what lies beyond them: `Some(v)` a fixed IAQI, `None` not computed.
fn table(s: Standard, p: Pollutant, t: Period) -> (&'static [i128], Option<i128>) {
    use Period::*;
    use Pollutant::*;
    let y2012 = s == Standard::Hj2012;
    match (p, t) {
        (So2, H24) => (&[0, 50, 150, 475, 800, 1600, 2100, 2620], Some(500)),
        (So2, _) => (
            &[0, 150, 500, 650, 800],
            if y2012 { None } else { Some(200) },
        ),
        (No2, H24) => (&[0, 40, 80, 180, 280, 565, 750, 940], Some(500)),
        (No2, _) => (&[0, 100, 200, 700, 1200, 2340, 3090, 3840], Some(500)),
        (Co, H24) => (&[0, 2, 4, 14, 24, 36, 48, 60], Some(500)),
        (Co, _) => (&[0, 5, 10, 35, 60, 90, 120, 150], Some(500)),
        (O3, H8) => (
            &[0, 100, 160, 215, 265, 800],
            if y2012 { None } else { Some(300) },
        ),
        (O3, _) => (&[0, 160, 200, 300, 400, 800, 1000, 1200], Some(500)),
        (Pm10, _) if y2012 => (&[0, 50, 150, 250, 350, 420, 500, 600], Some(500)),
        (Pm10, _) => (&[0, 50, 120, 250, 350, 420, 500, 600], Some(500)),
        (Pm25, _) if y2012 => (&[0, 35, 75, 115, 150, 250, 350, 500], Some(500)),
        (Pm25, _) => (&[0, 35, 60, 115, 150, 250, 350, 500], Some(500)),
    }
}

/// The oracle: thousandths of a unit in, IAQI out.
fn oracle(s: Standard, p: Pollutant, t: Period, milli: i128) -> Option<i128> {
    if milli < 0 {
        return None;
    }
    // 2026: half-even to integers (CO: to tenths), in thousandths
    let c = if s == Standard::Hj2026 {
        let unit = if p == Pollutant::Co { 100 } else { 1000 };
        let (q, r) = (milli / unit, milli % unit);
        let q = if 2 * r > unit || (2 * r == unit && q % 2 == 1) {
            q + 1
        } else {
            q
        };
        q * unit
    } else {
        milli
    };
    let (bp, beyond) = table(s, p, t);
    for i in 1..bp.len() {
        if c <= bp[i] * 1000 {
            let num = (IAQI[i] - IAQI[i - 1]) * (c - bp[i - 1] * 1000);
            let den = (bp[i] - bp[i - 1]) * 1000;
            return Some(IAQI[i - 1] + (num + den - 1) / den);
        }
    }
    beyond
}

/// Every (standard, pollutant, period) with a table: 12 per standard (PM 1h reads the 24h rows).
fn combos() -> Vec<(Standard, Pollutant, Period)> {
    let mut out = vec![];
    for s in [Standard::Hj2012, Standard::Hj2026] {
        for p in Pollutant::ALL {
            for t in [Period::H1, Period::H8, Period::H24] {
                if citylake_udfs::aqi::standard::check(p, t).is_ok() {
                    out.push((s, p, t));
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn equals_the_exact_formula_rounded_up(k in 0usize..24, milli in -1_000i128..4_000_000) {
        let (s, p, t) = combos()[k];
        let got = iaqi(s, p, t, Decimal::new(milli, 3)).unwrap();
        prop_assert_eq!(got.map(i128::from), oracle(s, p, t, milli), "{} {:?} {:?} {}", s, p, t, milli);
    }

    #[test]
    fn monotone_non_decreasing(k in 0usize..24, a in 0i128..4_000_000, b in 0i128..4_000_000) {
        let (s, p, t) = combos()[k];
        let (lo, hi) = (a.min(b), a.max(b));
        let x = iaqi(s, p, t, Decimal::new(lo, 3)).unwrap();
        let y = iaqi(s, p, t, Decimal::new(hi, 3)).unwrap();
        // where both are defined (2012 leaves SO2 1h / O3 8h above 800 undefined)
        if let (Some(x), Some(y)) = (x, y) {
            prop_assert!(x <= y, "{} {:?} {:?}: iaqi({}) = {} > iaqi({}) = {}", s, p, t, lo, x, hi, y);
        }
    }

    #[test]
    fn doubles_mean_their_shortest_decimal(k in 0usize..24, tenths in 0i64..100_000) {
        // a DOUBLE written with one decimal gives the IAQI of that decimal, not of its binary value
        let (s, p, t) = combos()[k];
        let x = tenths as f64 / 10.0;
        let got = iaqi(s, p, t, Decimal::from_f64(x).unwrap()).unwrap();
        prop_assert_eq!(got.map(i128::from), oracle(s, p, t, i128::from(tenths) * 100));
    }
}

#[test]
fn there_are_24_tables() {
    assert_eq!(combos().len(), 24);
}
