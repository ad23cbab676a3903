//! Exact decimals for the functions that must not round in binary floating
//! point: HJ 633 IAQI arithmetic, threshold comparisons of the traffic bands.

/// An exact decimal: `mantissa / 10^scale`.
/// Equality and order are of the values: `4.90 == 4.9`.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    pub mantissa: i128,
    pub scale: u32,
}

impl Decimal {
    pub fn new(mantissa: i128, scale: u32) -> Self {
        Self { mantissa, scale }
    }

    /// The shortest decimal that round-trips to `x` (4.9 is 4.9, not
    /// 4.9000000000000003552…). `None` for NaN and infinities.
    pub fn from_f64(x: f64) -> Option<Self> {
        if !x.is_finite() {
            return None;
        }
        // Fast path: the fewest fractional digits `s` for which m / 10^s parses
        // back to `x`. `m as f64 / 10^s` is one correctly rounded division of
        // two exact values, i.e. exactly what parsing "m·10^-s" yields, so the
        // test is exact; anything unusual falls through to the printed form.
        const POW: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
        for (scale, &pow) in POW.iter().enumerate() {
            let scaled = x * pow;
            // stop where decimals of this scale are not far apart compared with
            // the spacing of doubles around x (two could then round-trip)
            if scaled.abs() * f64::EPSILON * 4.0 >= 1.0 {
                break;
            }
            // round half away from zero by truncation (no libm call); a value
            // this misses has no decimal of this scale that parses back to x
            let m = (scaled + 0.5f64.copysign(scaled)) as i64;
            if m as f64 / pow == x {
                return Some(Self::new(m as i128, scale as u32));
            }
        }
        Self::from_f64_printed(x)
    }

    /// [`Decimal::from_f64`] through Rust's shortest round-trip printing.
    fn from_f64_printed(x: f64) -> Option<Self> {
        if !x.is_finite() {
            return None;
        }
        // Rust prints the shortest round-trip representation, without exponent
        let s = format!("{x}");
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.as_str()),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let scale = frac.len() as u32;
        if scale > 30 || int.len() > 30 {
            // far outside any concentration: saturate instead of overflowing
            return Some(Self::new(
                if neg {
                    -(10i128.pow(30))
                } else {
                    10i128.pow(30)
                },
                0,
            ));
        }
        let m: i128 = format!("{int}{frac}").parse().ok()?;
        Some(Self::new(if neg { -m } else { m }, scale))
    }

    /// Rounds half to even to `decimals` places (GB/T 8170).
    pub fn round_half_even(self, decimals: u32) -> Self {
        if self.scale <= decimals {
            return self;
        }
        let div = 10i128.pow(self.scale - decimals);
        let q = self.mantissa.div_euclid(div);
        let r = self.mantissa.rem_euclid(div);
        let twice = 2 * r;
        let q = if twice > div || (twice == div && q % 2 != 0) {
            q + 1
        } else {
            q
        };
        Self::new(q, decimals)
    }

    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// The smallest integer not below the value, exactly (`None` beyond i64).
    pub fn ceil(&self) -> Option<i64> {
        let unit = 10i128.checked_pow(self.scale)?;
        let q = self.mantissa.div_euclid(unit);
        let q = if self.mantissa.rem_euclid(unit) == 0 {
            q
        } else {
            q + 1
        };
        i64::try_from(q).ok()
    }

    /// Compares with an integer.
    pub fn cmp_int(&self, n: i64) -> std::cmp::Ordering {
        self.mantissa.cmp(&(n as i128 * 10i128.pow(self.scale)))
    }
}

impl Decimal {
    /// `self × k`, saturating (far outside any measured quantity).
    pub fn mul_int(self, k: i64) -> Self {
        Self::new(self.mantissa.saturating_mul(k as i128), self.scale)
    }

    /// The value as `f64` (for results that are reported as DOUBLE).
    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 / 10f64.powi(self.scale as i32)
    }
}

/// An exact fraction `num / den` (`den > 0`), for scores and rates that are
/// ratios of decimals; `None` from an operation means i128 overflow.
#[derive(Debug, Clone, Copy)]
pub struct Fraction {
    pub num: i128,
    pub den: i128,
}

impl Fraction {
    pub fn int(n: i128) -> Self {
        Self { num: n, den: 1 }
    }

    pub fn of(d: Decimal) -> Option<Self> {
        Some(Self {
            num: d.mantissa,
            den: 10i128.checked_pow(d.scale)?,
        })
    }

    /// `a / b`; `None` when `b` is 0 or on overflow.
    pub fn checked_div(self, other: Self) -> Option<Self> {
        if other.num == 0 {
            return None;
        }
        let num = self.num.checked_mul(other.den)?;
        let den = self.den.checked_mul(other.num)?;
        let sign = if den < 0 { -1 } else { 1 };
        Some(
            Self {
                num: sign * num,
                den: sign * den,
            }
            .reduced(),
        )
    }

    pub fn checked_mul(self, other: Self) -> Option<Self> {
        Some(
            Self {
                num: self.num.checked_mul(other.num)?,
                den: self.den.checked_mul(other.den)?,
            }
            .reduced(),
        )
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        Some(
            Self {
                num: self
                    .num
                    .checked_mul(other.den)?
                    .checked_sub(other.num.checked_mul(self.den)?)?,
                den: self.den.checked_mul(other.den)?,
            }
            .reduced(),
        )
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.checked_sub(Self {
            num: -other.num,
            den: other.den,
        })
    }

    fn reduced(self) -> Self {
        let (mut a, mut b) = (self.num.unsigned_abs(), self.den.unsigned_abs());
        while b != 0 {
            (a, b) = (b, a % b);
        }
        let g = a.max(1) as i128;
        Self {
            num: self.num / g,
            den: self.den / g,
        }
    }

    /// The value rounded half to even to `scale` decimals, as a mantissa.
    pub fn round(self, scale: u32) -> Option<i128> {
        let n = self.num.checked_mul(10i128.checked_pow(scale)?)?;
        let (q, r) = (n.div_euclid(self.den), n.rem_euclid(self.den));
        let twice = r.checked_mul(2)?;
        Some(if twice > self.den || (twice == self.den && q % 2 != 0) {
            q + 1
        } else {
            q
        })
    }

    pub fn is_negative(&self) -> bool {
        self.num < 0
    }

    pub fn cmp_frac(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(
            self.num
                .checked_mul(other.den)?
                .cmp(&other.num.checked_mul(self.den)?),
        )
    }

    pub fn min(self, other: Self) -> Option<Self> {
        Some(if self.cmp_frac(&other)?.is_le() {
            self
        } else {
            other
        })
    }

    pub fn max(self, other: Self) -> Option<Self> {
        Some(if self.cmp_frac(&other)?.is_ge() {
            self
        } else {
            other
        })
    }
}

impl Ord for Decimal {
    /// Exact comparison of the values (4.90 = 4.9), saturating far out of range.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let s = self.scale.max(other.scale);
        let widen = |d: &Decimal| {
            10i128
                .checked_pow(s - d.scale)
                .map_or(d.mantissa.signum() * i128::MAX, |p| {
                    d.mantissa.saturating_mul(p)
                })
        };
        widen(self).cmp(&widen(other))
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_shortest_decimal_equals_the_printed_one() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..200_000u64 {
            let r = next();
            let x = match i % 4 {
                0 => (r % 10_000_000) as f64 / 10f64.powi((r >> 40) as i32 % 7),
                1 => f64::from_bits(r),
                2 => (r % 1_000_000) as f64 * 0.001,
                _ => -((r % 100_000) as f64) / 100.0,
            };
            if !x.is_finite() {
                continue;
            }
            let fast = Decimal::from_f64(x).unwrap();
            let printed = Decimal::from_f64_printed(x).unwrap();
            // equal as values (4.90 = 4.9)
            let s = fast.scale.max(printed.scale);
            let widen = |d: Decimal| d.mantissa.checked_mul(10i128.pow(s - d.scale));
            assert_eq!(
                widen(fast),
                widen(printed),
                "{x:?}: {fast:?} vs {printed:?}"
            );
        }
        assert_eq!(Decimal::from_f64(4.9), Some(Decimal::new(49, 1)));
        assert_eq!(
            Decimal::new(490, 2).cmp(&Decimal::new(49, 1)),
            std::cmp::Ordering::Equal
        );
        assert!(Decimal::new(7, 1).mul_int(10) == Decimal::new(70, 1));
        assert!(Decimal::new(-1, 0) < Decimal::new(0, 5));
        let third = Fraction::int(1).checked_div(Fraction::int(3)).unwrap();
        assert_eq!(third.round(4), Some(3333));
        assert_eq!(
            Fraction::int(5)
                .checked_div(Fraction::int(2))
                .unwrap()
                .round(0),
            Some(2)
        );
        assert_eq!(
            Fraction::int(7)
                .checked_div(Fraction::int(2))
                .unwrap()
                .round(0),
            Some(4)
        );
        let x = Fraction::of(Decimal::new(125, 2)).unwrap();
        assert_eq!(x.checked_sub(Fraction::int(1)).unwrap().round(2), Some(25));
        assert!(Fraction::int(1).checked_div(Fraction::int(0)).is_none());
        assert_eq!(
            Decimal::from_f64(0.1 + 0.2),
            Decimal::from_f64_printed(0.1 + 0.2)
        );
    }
}
