//! HJ 633 breakpoint tables and the exact IAQI computation, independent of Arrow.
//!
//! Concentrations are exact decimals ([`Decimal`]: an integer mantissa and a
//! power-of-ten scale), so an IAQI is `IAQI_lo + ceil((IAQI_hi − IAQI_lo) ·
//! (C − BP_lo) / (BP_hi − BP_lo))` computed in integers: no binary floating
//! point, no "n + ε rounds up one too high" (docs/standards.md §1).

use std::fmt;
use std::str::FromStr;

pub use crate::decimal::Decimal;

/// The two versions of HJ 633.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Standard {
    /// HJ 633-2012, in force until 2026-02-28.
    Hj2012,
    /// HJ 633-2026, in force from 2026-03-01 (the default).
    Hj2026,
}

impl Standard {
    pub const DEFAULT: Standard = Standard::Hj2026;
    pub const NAMES: &'static str = "'HJ633-2012', 'HJ633-2026'";
}

impl FromStr for Standard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().replace(' ', "").as_str() {
            "HJ633-2012" | "HJ633_2012" | "2012" => Ok(Self::Hj2012),
            "HJ633-2026" | "HJ633_2026" | "2026" => Ok(Self::Hj2026),
            _ => Err(format!(
                "unknown standard '{s}'; expected one of {}",
                Self::NAMES
            )),
        }
    }
}

impl fmt::Display for Standard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hj2012 => "HJ633-2012",
            Self::Hj2026 => "HJ633-2026",
        })
    }
}

/// The six pollutants of HJ 633.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pollutant {
    Pm25,
    Pm10,
    So2,
    No2,
    Co,
    O3,
}

impl Pollutant {
    pub const ALL: [Pollutant; 6] = [
        Self::Pm25,
        Self::Pm10,
        Self::So2,
        Self::No2,
        Self::Co,
        Self::O3,
    ];
    pub const NAMES: &'static str = "'pm25', 'pm10', 'so2', 'no2', 'co', 'o3'";

    /// The name used in results (`aqi_cn_primary`): `PM2.5`, `PM10`, `SO2`, `NO2`, `CO`, `O3`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Pm25 => "PM2.5",
            Self::Pm10 => "PM10",
            Self::So2 => "SO2",
            Self::No2 => "NO2",
            Self::Co => "CO",
            Self::O3 => "O3",
        }
    }

    /// Decimals the 2026 standard rounds a concentration to (GB/T 8170).
    fn decimals_2026(&self) -> u32 {
        if *self == Self::Co { 1 } else { 0 }
    }
}

impl FromStr for Pollutant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['.', '_'], "")
            .as_str()
        {
            "pm25" => Ok(Self::Pm25),
            "pm10" => Ok(Self::Pm10),
            "so2" => Ok(Self::So2),
            "no2" => Ok(Self::No2),
            "co" => Ok(Self::Co),
            "o3" => Ok(Self::O3),
            _ => Err(format!(
                "unknown pollutant '{s}'; expected one of {}",
                Self::NAMES
            )),
        }
    }
}

/// Averaging period of a concentration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    H1,
    H8,
    H24,
}

impl Period {
    pub const NAMES: &'static str = "'1h', '8h', '24h'";
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1h" => Ok(Self::H1),
            "8h" => Ok(Self::H8),
            "24h" => Ok(Self::H24),
            _ => Err(format!(
                "unknown period '{s}'; expected one of {}",
                Self::NAMES
            )),
        }
    }
}

/// IAQI values of the breakpoint columns.
const IAQI: [i64; 8] = [0, 50, 100, 150, 200, 300, 400, 500];

/// What happens above a table that stops early (SO2 1h, O3 8h above 800).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beyond {
    /// Above the last breakpoint: 500 (what every implementation does).
    Cap500,
    /// Not computed by this table: the report uses another value (2012).
    NotComputed,
    /// A fixed IAQI (2026: SO2 1h → 200, O3 8h → 300).
    Fixed(i64),
}

/// The breakpoint table of one pollutant and period under one standard,
/// resolved once and then applied to many concentrations ([`Breakpoints::iaqi`]).
#[derive(Debug, Clone, Copy)]
pub struct Breakpoints {
    /// Concentrations for IAQI 0, 50, … up to where the table stops.
    bp: &'static [i64],
    beyond: Beyond,
    /// Decimals the input is first rounded to (half-even), 2026 only.
    round_to: Option<u32>,
    /// With `round_to`: the IAQI of every rounded concentration `m / 10^d`
    /// from 0 to the last breakpoint, worked out once by
    /// [`Breakpoints::iaqi_scaled`] (a few thousand values at most), so a
    /// rounded value costs one load instead of a search and a division.
    rounded: Option<&'static [u16]>,
}

/// The breakpoint table of a pollutant and period under a standard, or an
/// error naming what exists (PM has no 1h table: the real-time report uses the
/// 24h breakpoints, which this returns for 1h as well).
pub fn breakpoints(
    standard: Standard,
    pollutant: Pollutant,
    period: Period,
) -> Result<Breakpoints, String> {
    use Period::*;
    use Pollutant::*;
    let round_to = match standard {
        Standard::Hj2012 => None,
        Standard::Hj2026 => Some(pollutant.decimals_2026()),
    };
    let full = |bp| Breakpoints {
        bp,
        beyond: Beyond::Cap500,
        round_to,
        rounded: None,
    };
    let t = match (pollutant, period) {
        (So2, H24) => full(&[0, 50, 150, 475, 800, 1600, 2100, 2620]),
        (So2, H1) => Breakpoints {
            bp: &[0, 150, 500, 650, 800],
            beyond: match standard {
                Standard::Hj2012 => Beyond::NotComputed,
                Standard::Hj2026 => Beyond::Fixed(200),
            },
            round_to,
            rounded: None,
        },
        (No2, H24) => full(&[0, 40, 80, 180, 280, 565, 750, 940]),
        (No2, H1) => full(&[0, 100, 200, 700, 1200, 2340, 3090, 3840]),
        (Co, H24) => full(&[0, 2, 4, 14, 24, 36, 48, 60]),
        (Co, H1) => full(&[0, 5, 10, 35, 60, 90, 120, 150]),
        (O3, H1) => full(&[0, 160, 200, 300, 400, 800, 1000, 1200]),
        (O3, H8) => Breakpoints {
            bp: &[0, 100, 160, 215, 265, 800],
            beyond: match standard {
                Standard::Hj2012 => Beyond::NotComputed,
                Standard::Hj2026 => Beyond::Fixed(300),
            },
            round_to,
            rounded: None,
        },
        (Pm10, H24 | H1) => match standard {
            Standard::Hj2012 => full(&[0, 50, 150, 250, 350, 420, 500, 600]),
            Standard::Hj2026 => full(&[0, 50, 120, 250, 350, 420, 500, 600]),
        },
        (Pm25, H24 | H1) => match standard {
            Standard::Hj2012 => full(&[0, 35, 75, 115, 150, 250, 350, 500]),
            Standard::Hj2026 => full(&[0, 35, 60, 115, 150, 250, 350, 500]),
        },
        (So2 | No2 | Co | Pm10 | Pm25, H8) => {
            return Err(format!(
                "{} has no 8h breakpoints; use '1h' or '24h' (only o3 has an 8h table)",
                pollutant.label()
            ));
        }
        (O3, H24) => {
            return Err("O3 has no 24h breakpoints; use '1h' or '8h'".to_string());
        }
    };
    Ok(Breakpoints {
        rounded: rounded_iaqis(standard, pollutant, period, &t),
        ..t
    })
}

/// The table of [`Breakpoints::rounded`] of a standard, pollutant and period,
/// built on first use.
fn rounded_iaqis(
    standard: Standard,
    pollutant: Pollutant,
    period: Period,
    t: &Breakpoints,
) -> Option<&'static [u16]> {
    use std::sync::OnceLock;
    static TABLES: [OnceLock<Box<[u16]>>; 36] = [const { OnceLock::new() }; 36];
    let d = t.round_to?;
    let index = (standard as usize * 6 + pollutant as usize) * 3 + period as usize;
    let table = TABLES[index].get_or_init(|| {
        let last = t.bp[t.bp.len() - 1] * 10i64.pow(d);
        (0..=last)
            .map(|m| {
                let iaqi = t.iaqi_scaled(m, d).expect("within the table");
                u16::try_from(iaqi).expect("an IAQI is at most 500")
            })
            .collect()
    });
    Some(table)
}

impl Breakpoints {
    /// The IAQI of one concentration, or `None` when the standard does not
    /// define one (negative concentration; above 800 for SO2 1h / O3 8h under 2012).
    pub fn iaqi(&self, c: Decimal) -> Option<i64> {
        if c.is_negative() {
            return None;
        }
        // the usual case, all in i64 (no 128-bit division): a mantissa below
        // 2^53 with at most 9 decimals
        if c.scale <= 9
            && let Ok(m) = i64::try_from(c.mantissa)
            && m < 1 << 53
        {
            return self.iaqi_i64(m, c.scale);
        }
        let c = match self.round_to {
            Some(d) => c.round_half_even(d),
            None => c,
        };
        let bp = self.bp;
        for i in 1..bp.len() {
            if c.cmp_int(bp[i]) != std::cmp::Ordering::Greater {
                let (lo, hi) = (bp[i - 1], bp[i]);
                let (ilo, ihi) = (IAQI[i - 1], IAQI[i]);
                return Some(ilo + segment_step(ihi - ilo, lo, hi, c));
            }
        }
        self.beyond_table()
    }

    /// [`Breakpoints::iaqi`] of a DOUBLE's shortest decimal, decided in
    /// floating point where that is certain; `None` where it is not (the
    /// caller takes the exact path through [`Decimal::from_f64`]).
    ///
    /// Why it is exact where it answers: a double and its shortest decimal lie
    /// on the same side of every integer (parsing is monotonic and integers
    /// below 2^53 are doubles), so the segment found by comparing with the
    /// integer breakpoints is the decimal's. Within a segment the IAQI is
    /// `IAQI_lo + ceil(v)` with `v = (IAQI_hi − IAQI_lo)(C − BP_lo)/(BP_hi −
    /// BP_lo) ≤ 100`; computed from the double, `v` is off by a few units in
    /// the last place (< 10^-12), so `ceil(v)` is the decimal's unless `v` is
    /// within 10^-9 of an integer — then the exact path decides. Under a
    /// standard that first rounds C half to even (HJ633-2026), the rounding is
    /// decided the same way: the exact path takes values within 10^-6 of a
    /// half, the rest go to the integer path.
    #[inline]
    pub fn iaqi_f64(&self, x: f64) -> Option<Option<i64>> {
        // negative, NaN and infinite values, the huge and the vanishingly
        // small (which the decimal path may not represent): the exact path
        if !(1e-6..4.0e15).contains(&x) && x != 0.0 {
            return None;
        }
        // (`as i64` truncates, which is the floor of these non-negative values;
        // `f64::floor` and `ceil` are calls into libm on baseline x86-64)
        if let Some(d) = self.round_to {
            const POW: [f64; 4] = [1e0, 1e1, 1e2, 1e3];
            let y = x * *POW.get(d as usize)?;
            let whole = y as i64;
            let frac = y - whole as f64;
            if (frac - 0.5).abs() < 1e-6 {
                return None;
            }
            let m = whole + i64::from(frac > 0.5);
            return Some(self.iaqi_i64(m, d));
        }
        let bp = self.bp;
        for i in 1..bp.len() {
            let hi = bp[i] as f64;
            if x <= hi {
                let lo = bp[i - 1] as f64;
                let v = (IAQI[i] - IAQI[i - 1]) as f64 * (x - lo) / (hi - lo);
                let whole = v as i64;
                let frac = v - whole as f64;
                if !(1e-9..=1.0 - 1e-9).contains(&frac) {
                    return None;
                }
                return Some(Some(IAQI[i - 1] + whole + 1));
            }
        }
        Some(self.beyond_table())
    }

    /// [`Breakpoints::iaqi`] of `m / 10^scale`, `0 ≤ m < 2^53`, `scale ≤ 9`.
    fn iaqi_i64(&self, mut m: i64, mut scale: u32) -> Option<i64> {
        if let Some(d) = self.round_to
            && scale > d
        {
            // GB/T 8170: half to even
            let div = 10i64.pow(scale - d);
            let (q, r) = (m / div, m % div);
            m = if 2 * r > div || (2 * r == div && q % 2 != 0) {
                q + 1
            } else {
                q
            };
            scale = d;
        }
        if let Some(rounded) = self.rounded
            && Some(scale) == self.round_to
        {
            return match rounded.get(m as usize) {
                Some(&iaqi) => Some(i64::from(iaqi)),
                None => self.beyond_table(),
            };
        }
        self.iaqi_scaled(m, scale)
    }

    /// The IAQI of `m / 10^scale` (`0 ≤ m`, already rounded where the
    /// standard rounds), in integers.
    fn iaqi_scaled(&self, m: i64, scale: u32) -> Option<i64> {
        let pow = 10i64.pow(scale);
        let bp = self.bp;
        for i in 1..bp.len() {
            if m <= bp[i] * pow {
                let (lo, hi) = (bp[i - 1], bp[i]);
                let num = (IAQI[i] - IAQI[i - 1]) * (m - lo * pow);
                let den = (hi - lo) * pow;
                return Some(IAQI[i - 1] + (num + den - 1) / den);
            }
        }
        self.beyond_table()
    }

    fn beyond_table(&self) -> Option<i64> {
        match self.beyond {
            Beyond::Cap500 => Some(500),
            Beyond::NotComputed => None,
            Beyond::Fixed(v) => Some(v),
        }
    }
}

/// `ceil(span · (C − lo) / (hi − lo))` for `lo ≤ C ≤ hi`, exactly: in `i64` when
/// the scaled values fit (the usual case), else in `i128`.
fn segment_step(span: i64, lo: i64, hi: i64, c: Decimal) -> i64 {
    if c.scale <= 9
        && let Ok(m) = i64::try_from(c.mantissa)
    {
        let pow = 10i64.pow(c.scale);
        if let (Some(lo_s), Some(den)) = (lo.checked_mul(pow), (hi - lo).checked_mul(pow))
            && let Some(num) = m.checked_sub(lo_s).and_then(|d| d.checked_mul(span))
        {
            return num / den + i64::from(num % den != 0);
        }
    }
    let pow = 10i128.pow(c.scale);
    let num = span as i128 * (c.mantissa - lo as i128 * pow);
    let den = (hi - lo) as i128 * pow;
    (num / den + i128::from(num % den != 0)) as i64
}

/// Checks that a pollutant and period have a table (for planning-time errors).
pub fn check(pollutant: Pollutant, period: Period) -> Result<(), String> {
    breakpoints(Standard::DEFAULT, pollutant, period).map(|_| ())
}

/// The IAQI of one concentration (see [`Breakpoints::iaqi`]); an error when
/// the pollutant has no table for the period.
pub fn iaqi(
    standard: Standard,
    pollutant: Pollutant,
    period: Period,
    c: Decimal,
) -> Result<Option<i64>, String> {
    Ok(breakpoints(standard, pollutant, period)?.iaqi(c))
}

/// AQI level 1–6 of an AQI value (0–50 → 1, … > 300 → 6); `None` when negative.
pub fn level(aqi: i64) -> Option<i64> {
    Some(match aqi {
        i64::MIN..=-1 => return None,
        0..=50 => 1,
        51..=100 => 2,
        101..=150 => 3,
        151..=200 => 4,
        201..=300 => 5,
        _ => 6,
    })
}

/// Category of a level, in Chinese or English.
pub fn category(level: i64, english: bool) -> &'static str {
    const ZH: [&str; 6] = ["优", "良", "轻度污染", "中度污染", "重度污染", "严重污染"];
    const EN: [&str; 6] = [
        "Excellent",
        "Good",
        "Lightly polluted",
        "Moderately polluted",
        "Heavily polluted",
        "Severely polluted",
    ];
    let i = (level.clamp(1, 6) - 1) as usize;
    if english { EN[i] } else { ZH[i] }
}

/// Colour of a level as `#RRGGBB`.
pub fn color(level: i64) -> &'static str {
    const HEX: [&str; 6] = [
        "#00E400", "#FFFF00", "#FF7E00", "#FF0000", "#99004C", "#7E0023",
    ];
    HEX[(level.clamp(1, 6) - 1) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use Period::*;
    use Pollutant::*;
    use Standard::*;

    fn v(s: Standard, p: Pollutant, t: Period, x: f64) -> Option<i64> {
        iaqi(s, p, t, Decimal::from_f64(x).unwrap()).unwrap()
    }

    /// The floating-point shortcut answers exactly what the decimal path
    /// answers, or leaves the value to it: every table of both standards, on
    /// one- and two-decimal readings, arbitrary doubles, and the hard places —
    /// breakpoints, the doubles just beside them, halves (2026 rounds C first)
    /// and values whose IAQI step is a whole number.
    #[test]
    fn the_floating_point_shortcut_agrees_with_the_exact_path() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut values = vec![0.0, 0.05, 0.5, 1.5, 2.5, 1e-300, 5e-324];
        for _ in 0..200_000 {
            let u = next();
            values.push((u * 45_000.0).round() / 10.0);
            values.push((u * 150_000.0).round() / 100.0);
            values.push(u * 1_500.0);
            values.push(u * 10.0);
        }
        for k in 0..=4_000 {
            let k = f64::from(k);
            for x in [k, k + 0.5, k - 0.5, k + 0.05, k + 0.25, k / 10.0 + 0.05] {
                values.extend([x, x.next_up(), x.next_down()]);
            }
        }
        let (mut decided, mut total) = (0usize, 0usize);
        for s in [Hj2012, Hj2026] {
            for p in Pollutant::ALL {
                for t in [H1, H8, H24] {
                    let Ok(table) = breakpoints(s, p, t) else {
                        continue;
                    };
                    for &x in values.iter().filter(|x| **x >= 0.0) {
                        total += 1;
                        let Some(fast) = table.iaqi_f64(x) else {
                            continue;
                        };
                        decided += 1;
                        let exact = Decimal::from_f64(x).and_then(|c| table.iaqi(c));
                        assert_eq!(fast, exact, "{s:?} {p:?} {t:?} {x:?}");
                    }
                }
            }
        }
        // the shortcut must also be worth having: most readings are decided by it
        assert!(decided * 10 > total * 8, "{decided} of {total}");
        // and it leaves negative and non-finite values to the exact path
        let table = breakpoints(Hj2012, Pm25, H24).unwrap();
        for x in [-0.1, f64::NAN, f64::INFINITY, -0.0 - 1e-9] {
            assert_eq!(table.iaqi_f64(x), None, "{x}");
        }
    }

    /// The table of rounded values holds what the arithmetic gives, up to
    /// the last breakpoint and one step beyond it, for every table that rounds.
    #[test]
    fn the_rounded_table_is_the_arithmetic() {
        let mut tables = 0;
        for s in [Hj2012, Hj2026] {
            for p in Pollutant::ALL {
                for t in [H1, H8, H24] {
                    let Ok(table) = breakpoints(s, p, t) else {
                        continue;
                    };
                    let Some(d) = table.round_to else {
                        assert!(table.rounded.is_none());
                        continue;
                    };
                    tables += 1;
                    let last = table.bp[table.bp.len() - 1] * 10i64.pow(d);
                    assert_eq!(table.rounded.unwrap().len() as i64, last + 1);
                    for m in 0..=last + 10 {
                        assert_eq!(
                            table.iaqi_i64(m, d),
                            table.iaqi_scaled(m, d),
                            "{s:?} {p:?} {t:?} {m}"
                        );
                    }
                }
            }
        }
        assert_eq!(tables, 12, "every table of HJ633-2026 rounds");
    }

    #[test]
    fn worked_values_of_domain_md() {
        // each as 2012 / 2026
        type Case = (Pollutant, Period, f64, Option<i64>, Option<i64>);
        let cases: [Case; 10] = [
            (Pm25, H24, 34.5, Some(50), Some(49)),
            (Pm25, H24, 35.5, Some(51), Some(52)),
            (Pm25, H24, 60.0, Some(82), Some(100)),
            (Pm25, H24, 75.0, Some(100), Some(114)),
            (Pm10, H24, 150.0, Some(100), Some(112)),
            (Co, H24, 0.3, Some(8), Some(8)),
            (So2, H24, 100.0, Some(75), Some(75)),
            (So2, H1, 801.0, None, Some(200)),
            (O3, H8, 100.5, Some(51), Some(50)),
            (No2, H24, 45.0, Some(57), Some(57)),
        ];
        for (p, t, x, y2012, y2026) in cases {
            assert_eq!(v(Hj2012, p, t, x), y2012, "{p:?} {t:?} {x} 2012");
            assert_eq!(v(Hj2026, p, t, x), y2026, "{p:?} {t:?} {x} 2026");
        }
    }

    #[test]
    fn no_float_error_at_exact_values() {
        // PM2.5 4.9 must give 7 (a naive f64 formula gives 8)
        assert_eq!(v(Hj2012, Pm25, H24, 4.9), Some(7));
        // every 0.1 step from 0 to 500 equals the exact rational formula
        for tenth in 0..5000i128 {
            let c = Decimal::new(tenth, 1);
            let got = iaqi(Hj2012, Pm25, H24, c).unwrap().unwrap();
            let x = Decimal::from_f64(tenth as f64 / 10.0).unwrap();
            assert_eq!(iaqi(Hj2012, Pm25, H24, x).unwrap().unwrap(), got, "{tenth}");
        }
    }

    #[test]
    fn boundaries_and_beyond() {
        // exactly on a breakpoint: the lower segment's top
        assert_eq!(v(Hj2012, Pm25, H24, 35.0), Some(50));
        assert_eq!(v(Hj2012, Pm25, H24, 0.0), Some(0));
        // above the table: 500
        assert_eq!(v(Hj2012, Pm25, H24, 500.1), Some(500));
        assert_eq!(v(Hj2026, Pm25, H24, 9999.0), Some(500));
        // negative: not defined
        assert_eq!(v(Hj2012, Pm25, H24, -1.0), None);
        // O3 8h above 800: 2012 not computed, 2026 → 300
        assert_eq!(v(Hj2012, O3, H8, 801.0), None);
        assert_eq!(v(Hj2026, O3, H8, 801.0), Some(300));
        // 2026 half-even rounding of the input: 34.5 → 34, 35.5 → 36, CO 0.45 → 0.4
        assert_eq!(
            Decimal::from_f64(34.5).unwrap().round_half_even(0),
            Decimal::new(34, 0)
        );
        assert_eq!(
            Decimal::from_f64(35.5).unwrap().round_half_even(0),
            Decimal::new(36, 0)
        );
        assert_eq!(
            Decimal::from_f64(0.45).unwrap().round_half_even(1),
            Decimal::new(4, 1)
        );
        // tables that do not exist are errors
        assert!(iaqi(Hj2026, Pm25, H8, Decimal::new(1, 0)).is_err());
        assert!(iaqi(Hj2026, O3, H24, Decimal::new(1, 0)).is_err());
    }

    #[test]
    fn monotone_in_concentration() {
        for s in [Hj2012, Hj2026] {
            for p in Pollutant::ALL {
                for t in [H1, H8, H24] {
                    if check(p, t).is_err() {
                        continue;
                    }
                    let mut last = 0;
                    for tenth in 0..30_000i128 {
                        match iaqi(s, p, t, Decimal::new(tenth, 1)).unwrap() {
                            Some(x) => {
                                assert!(x >= last, "{s} {p:?} {t:?} {tenth}: {x} < {last}");
                                last = x;
                            }
                            None => break,
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn names_parse_and_levels() {
        assert_eq!("HJ633-2012".parse::<Standard>().unwrap(), Hj2012);
        assert!(
            "HJ633-2099"
                .parse::<Standard>()
                .unwrap_err()
                .contains("'HJ633-2026'")
        );
        assert_eq!("PM2.5".parse::<Pollutant>().unwrap(), Pm25);
        assert!("pm1".parse::<Pollutant>().unwrap_err().contains("'pm25'"));
        assert_eq!(level(50), Some(1));
        assert_eq!(level(51), Some(2));
        assert_eq!(level(301), Some(6));
        assert_eq!(category(3, false), "轻度污染");
        assert_eq!(color(5), "#99004C");
    }
}
