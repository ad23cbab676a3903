//! Do two engines agree on a result? Rows in order (every query orders its
//! output), values as text; numbers may differ by float noise: relatively by
//! 1e-6, or by one unit in the last decimal place the less precise side shows (two
//! engines summing in a different order can round `x.xxx5` differently).

use crate::engines::Rows;

/// `None` when the results agree, else what differs first.
pub fn difference(a: &Rows, b: &Rows) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} rows vs {} rows", a.len(), b.len()));
    }
    for (i, (ra, rb)) in a.iter().zip(b).enumerate() {
        if ra.len() != rb.len() {
            return Some(format!("row {i}: {} columns vs {}", ra.len(), rb.len()));
        }
        for (j, (va, vb)) in ra.iter().zip(rb).enumerate() {
            if !same_value(va.as_deref(), vb.as_deref()) {
                return Some(format!("row {i}, column {j}: {va:?} vs {vb:?}"));
            }
        }
    }
    None
}

fn same_value(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a == b
                || same_time(a, b)
                || match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(x), Ok(y)) => close(x, y, a, b),
                    _ => false,
                }
        }
        _ => false,
    }
}

/// `2025-01-01T08:00:00` and `2025-01-01 08:00:00` are the same time.
fn same_time(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.len() >= 19 && a.replacen('T', " ", 1) == b.replacen('T', " ", 1)
}

fn close(x: f64, y: f64, a: &str, b: &str) -> bool {
    if x == y || (x.is_nan() && y.is_nan()) {
        return true;
    }
    let diff = (x - y).abs();
    let scale = x.abs().max(y.abs());
    if diff <= 1e-6 * scale {
        return true;
    }
    let decimals = |s: &str| {
        if s.contains(['e', 'E']) {
            return usize::MAX;
        }
        s.split_once('.').map_or(0, |(_, f)| f.len())
    };
    let shown = decimals(a).min(decimals(b));
    (1..16).contains(&shown) && diff <= 1.000_001 * 10f64.powi(-(shown as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[&[Option<&str>]]) -> Rows {
        v.iter()
            .map(|r| r.iter().map(|c| c.map(str::to_string)).collect())
            .collect()
    }

    #[test]
    fn tolerates_float_noise_not_different_answers() {
        let a = rows(&[&[
            Some("Xihu"),
            Some("0.30000000000000004"),
            Some("12.345"),
            None,
        ]]);
        let b = rows(&[&[Some("Xihu"), Some("0.3"), Some("12.346"), None]]);
        assert_eq!(difference(&a, &b), None);
        let c = rows(&[&[Some("Xihu"), Some("0.3"), Some("12.347"), None]]);
        assert!(difference(&a, &c).unwrap().contains("column 2"));
        let d = rows(&[&[Some("Xihu"), Some("0.3"), Some("12.345"), Some("1")]]);
        assert!(difference(&a, &d).is_some());
        assert!(difference(&a, &rows(&[])).unwrap().contains("1 rows vs 0"));
        assert!(same_value(
            Some("2025-12-31T17:55:00"),
            Some("2025-12-31 17:55:00")
        ));
        assert!(!same_value(Some("7"), Some("8")));
    }
}
