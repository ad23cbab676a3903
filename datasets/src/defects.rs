//! Known defects the generator plants, so that the data-quality checks
//! (`citylake quality`, `system.data_quality`) find something real. Each is the
//! kind of fault a city's feeds have; the days are day-of-year indices (0 =
//! 1 January), the same at every scale.
//!
//! | dataset | defect | check that finds it |
//! |---|---|---|
//! | `traffic.segment_speed` | the detector feed was down 06:00–22:00 on day 45 (15 Feb): that day's partition holds a third of the usual rows | partition row counts |
//! | `traffic.segment_speed` | the first segment's detector sent its fault code −1 km/h for six intervals on day 100 | validity (`avg_speed_kmh` ≥ 0) |
//! | `environment.air_quality_hourly` | the first station's PM2.5 analyser drifted below zero for three hours on day 150 | validity (`pm25` ≥ 0) |
//! | `hotline.cases` | the first case of days 130–132 was received twice (a resent app submission) | uniqueness of `case_id` |
//! | `emergency.incidents` | the first incident of days 200–202 was not geocoded to a district | completeness of `district` |
//! | `emergency.incidents` | the dispatch export stopped: no incidents in the year's last three days | freshness (hourly) |

use std::ops::Range;

/// Day whose traffic detector feed was down for most of the day.
pub const SPEED_OUTAGE_DAY: u32 = 45;
/// The 5-minute slots of [`SPEED_OUTAGE_DAY`] with no rows (06:00–22:00).
pub const SPEED_OUTAGE_SLOTS: Range<u32> = 72..264;
/// Day on which the first segment reported its fault code.
pub const SPEED_FAULT_DAY: u32 = 100;
/// The slots of [`SPEED_FAULT_DAY`] reported as −1 km/h (10:00–10:30).
pub const SPEED_FAULT_SLOTS: Range<u32> = 120..126;
/// The speed a faulty detector reports.
pub const SPEED_FAULT_CODE: f64 = -1.0;
/// Day on which the first station's PM2.5 analyser drifted.
pub const PM25_DRIFT_DAY: u32 = 150;
/// Hours of [`PM25_DRIFT_DAY`] with a negative PM2.5.
pub const PM25_DRIFT_HOURS: Range<i64> = 3..6;
/// The PM2.5 reported while drifting, µg/m³.
pub const PM25_DRIFT_VALUE: f64 = -2.0;
/// Days whose first hotline case was stored twice.
pub const DUPLICATE_CASE_DAYS: Range<u32> = 130..133;
/// Days whose first emergency incident has no district.
pub const UNLOCATED_INCIDENT_DAYS: Range<u32> = 200..203;
/// The year's last days without emergency incidents (the export stopped).
pub const INCIDENT_FEED_STOPPED_DAYS: u32 = 3;

/// Whether the traffic detector feed delivered `slot` of day `d`.
pub fn speed_feed_up(d: u32, slot: u32) -> bool {
    !(d == SPEED_OUTAGE_DAY && SPEED_OUTAGE_SLOTS.contains(&slot))
}

/// Whether the `i`-th segment reports its fault code in `slot` of day `d`.
pub fn speed_fault(d: u32, slot: u32, i: usize) -> bool {
    i == 0 && d == SPEED_FAULT_DAY && SPEED_FAULT_SLOTS.contains(&slot)
}

/// Whether the `i`-th station's PM2.5 drifts at global hour `gh`.
pub fn pm25_drift(i: usize, gh: i64) -> bool {
    i == 0 && PM25_DRIFT_HOURS.contains(&(gh - PM25_DRIFT_DAY as i64 * 24))
}

/// Whether the incident export still ran on day `d` of a year of `days` days.
pub fn incident_feed_up(d: u32, days: u32) -> bool {
    d + INCIDENT_FEED_STOPPED_DAYS < days
}
