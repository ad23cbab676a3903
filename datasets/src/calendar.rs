//! The simulated year: dates, local timestamps, holidays, seasons and weather.

use chrono::{Datelike, NaiveDate, Weekday};

use crate::noise::Noise;

const MICROS_PER_SEC: i64 = 1_000_000;
const STREAM_RAIN: u64 = 0x5241_494E;

/// The calendar of one simulated year.
#[derive(Debug, Clone, Copy)]
pub struct Calendar {
    pub year: i32,
    start: NaiveDate,
    days: u32,
}

impl Calendar {
    pub fn new(year: i32) -> Self {
        let start = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid year");
        let end = NaiveDate::from_ymd_opt(year + 1, 1, 1).expect("valid year");
        Self {
            year,
            start,
            days: (end - start).num_days() as u32,
        }
    }

    /// Number of days in the year.
    pub fn days(&self) -> u32 {
        self.days
    }

    /// The date of day `d` (0-based).
    pub fn date(&self, d: u32) -> NaiveDate {
        self.start + chrono::Days::new(d as u64)
    }

    /// Days of the given month (1-12) as 0-based day indices.
    pub fn month_days(&self, month: u32) -> std::ops::Range<u32> {
        let first = NaiveDate::from_ymd_opt(self.year, month, 1).expect("valid month");
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(self.year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(self.year, month + 1, 1)
        }
        .expect("valid month");
        let a = (first - self.start).num_days() as u32;
        let b = (next - self.start).num_days() as u32;
        a..b
    }

    /// Local wall-clock time (Asia/Shanghai, stored without a zone) of day `d`
    /// plus `secs` seconds, as microseconds since 1970-01-01 00:00.
    pub fn micros(&self, d: u32, secs: i64) -> i64 {
        let days = (self.date(d) - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days();
        (days * 86_400 + secs) * MICROS_PER_SEC
    }

    /// End of the simulated year: the "now" the lake was extracted at.
    pub fn end_micros(&self) -> i64 {
        self.micros(self.days, 0)
    }

    /// Days since 1970-01-01 of day `d` (Arrow Date32).
    pub fn date32(&self, d: u32) -> i32 {
        (self.date(d) - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
    }

    /// Public holiday (national days off; 2024–2026 from the State Council's
    /// schedules, other years the fixed-date ones only).
    pub fn is_holiday(&self, d: u32) -> bool {
        let date = self.date(d);
        let (m, day) = (date.month(), date.day());
        let fixed = (m == 1 && day == 1) || (m == 5 && day <= 5) || (m == 10 && day <= 7);
        let spring = match self.year {
            2024 => m == 2 && (10..=17).contains(&day),
            2025 => (m == 1 && day >= 28) || (m == 2 && day <= 4),
            2026 => m == 2 && (15..=23).contains(&day),
            _ => false,
        };
        fixed || spring
    }

    /// The Spring Festival week, when the city empties.
    pub fn is_spring_festival(&self, d: u32) -> bool {
        let date = self.date(d);
        self.is_holiday(d) && date.month() <= 2 && !(date.month() == 1 && date.day() == 1)
    }

    /// A working day: Monday–Friday and not a holiday.
    pub fn is_workday(&self, d: u32) -> bool {
        !matches!(self.date(d).weekday(), Weekday::Sat | Weekday::Sun) && !self.is_holiday(d)
    }

    /// Seasonal cycle, +1 in mid-January (winter) to -1 in mid-July (summer).
    pub fn winter(&self, d: u32) -> f64 {
        (std::f64::consts::TAU * (d as f64 - 15.0) / 365.0).cos()
    }

    /// Rain intensity in [0, 1], citywide, at hour `h` (fractional) of day `d`.
    /// Wetter in the plum-rain season (mid-June to mid-July) and typhoon season.
    pub fn rain(&self, noise: &Noise, d: u32, h: f64) -> f64 {
        let doy = d as f64;
        let wetness = 0.22
            + 0.38 * (-((doy - 178.0) / 18.0).powi(2)).exp()
            + 0.15 * (-((doy - 235.0) / 22.0).powi(2)).exp();
        let t = (d as f64 * 24.0 + h) / 7.0;
        let v = (noise.smooth(STREAM_RAIN, 0, t) + 1.0) / 2.0;
        ((v - (1.0 - wetness)) / wetness).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_months_and_timestamps() {
        let cal = Calendar::new(2025);
        assert_eq!(cal.days(), 365);
        assert_eq!(cal.month_days(2), 31..59);
        // 2025-01-01 00:00 local = 1735689600 s after the epoch (wall clock, no zone)
        assert_eq!(cal.micros(0, 0), 1_735_689_600_000_000);
        assert_eq!(cal.date32(0), 20089);
        assert!(cal.is_spring_festival(28) && !cal.is_spring_festival(0));
        assert!(!cal.is_workday(3)); // Saturday 2025-01-04
    }

    #[test]
    fn rain_is_bounded_and_wetter_in_june() {
        let cal = Calendar::new(2025);
        let n = Noise::new(1);
        let share = |days: std::ops::Range<u32>| {
            let mut wet = 0;
            let mut all = 0;
            for d in days {
                for h in 0..24 {
                    let r = cal.rain(&n, d, h as f64);
                    assert!((0.0..=1.0).contains(&r));
                    wet += (r > 0.0) as u32;
                    all += 1;
                }
            }
            wet as f64 / all as f64
        };
        assert!(share(160..200) > share(0..40));
    }
}
