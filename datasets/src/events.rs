//! Point events (hotline calls, incidents): how many a day, and when.

use crate::noise::Noise;

/// The number of events on a day with the given expectation (±8 % day-to-day noise).
pub fn daily_count(n: &Noise, stream: u64, d: u32, expected: f64) -> usize {
    (expected * (1.0 + 0.08 * n.normal(stream, d as u64, u64::MAX)))
        .round()
        .max(0.0) as usize
}

/// `count` event times on day `d` (seconds after midnight), drawn from the
/// hourly weights and sorted; each with a stable key for drawing its attributes.
pub fn day_times(
    n: &Noise,
    stream: u64,
    d: u32,
    count: usize,
    hour_weights: &[f64; 24],
) -> Vec<(i64, u64)> {
    let mut times: Vec<(i64, u64)> = (0..count)
        .map(|j| {
            let key = (d as u64) << 32 | j as u64;
            let hour = n.pick(stream, key, 0, hour_weights) as i64;
            let sec = n.range(stream, key, 1, 0, 3_599);
            (hour * 3_600 + sec, key)
        })
        .collect();
    times.sort_unstable();
    times
}
