//! `emergency.incidents`: calls to the emergency services.
//!
//! Model: about 100,000 incidents a year at SF 1. The type mix follows the hour
//! and the season: traffic accidents in the rush hours and in rain, fires in the
//! dry winter, medical calls all day (more in winter), public-security calls at
//! night and on weekends, floods in the plum-rain and typhoon seasons on rainy
//! days. Dispatch follows 20 s–3 min after the report; the drive takes longer in
//! large rural districts and in the rush hours; the time on scene depends on the
//! type and the severity (1 minor … 4 major). 1.5 % of incidents are cancelled
//! before arrival (`arrived_at` and `resolved_at` NULL).

use citylake_catalog::Classification;

use super::{Expect, dataset, month_partition, monthly_parts};
use crate::city::{DISTRICTS, population_weights};
use crate::defects;
use crate::events::{daily_count, day_times};
use crate::table::{
    TableDef, batch, column, f64s, i16s, i64s, round_to, timestamps, utf8, utf8_values,
};
use crate::world::{INCIDENTS_PER_SF, World, count};
use crate::writer::BATCH_ROWS;

const S_INC: u64 = 0x494E_4349;
const TYPES: [&str; 5] = [
    "fire",
    "traffic_accident",
    "medical",
    "public_security",
    "flood",
];
/// median minutes on scene per type
const ON_SCENE_MIN: [f64; 5] = [75.0, 40.0, 30.0, 35.0, 120.0];

const HOURS: [f64; 24] = [
    2.0, 1.6, 1.3, 1.1, 1.0, 1.2, 1.8, 3.0, 4.0, 3.8, 3.5, 3.5, 3.4, 3.3, 3.4, 3.6, 3.8, 4.2, 4.4,
    4.0, 3.6, 3.2, 2.8, 2.4,
];

pub fn incidents(world: &World) -> TableDef {
    let mut spec = dataset(
        "emergency.incidents",
        "emergency",
        Classification::Internal,
        "hourly",
        "Incidents handled by the emergency services, from report to resolution",
    );
    spec.sort_order = vec!["reported_at".into()];
    spec.partitions = vec![month_partition()];
    spec.columns = vec![
        column(
            "incident_id",
            "bigint",
            "Incident number: yyyymmdd × 10^6 + sequence of the day",
        ),
        column(
            "incident_type",
            "text",
            "fire, traffic_accident, medical, public_security or flood",
        ),
        column("district", "text", "District (common.districts)"),
        column(
            "reported_at",
            "timestamp",
            "When the call was received, local time (Asia/Shanghai)",
        ),
        column(
            "dispatched_at",
            "timestamp",
            "When a unit was dispatched, local time",
        ),
        column(
            "arrived_at",
            "timestamp",
            "When the first unit arrived, local time (NULL: cancelled)",
        ),
        column(
            "resolved_at",
            "timestamp",
            "When the incident was closed on scene, local time (NULL: cancelled)",
        ),
        column("longitude", "double", "Longitude of the scene (WGS84)"),
        column("latitude", "double", "Latitude of the scene (WGS84)"),
        column(
            "severity",
            "smallint",
            "1 minor, 2 moderate, 3 serious, 4 major",
        ),
    ];
    Expect {
        key: &["incident_id"],
        time: Some("reported_at"),
        required: &[
            "incident_id",
            "incident_type",
            "district",
            "reported_at",
            "severity",
        ],
        ranges: &[
            ("longitude", Some(118.0), Some(121.0)),
            ("latitude", Some(29.0), Some(31.0)),
            ("severity", Some(1.0), Some(4.0)),
        ],
    }
    .apply(&mut spec);
    TableDef {
        spec,
        parts: monthly_parts(world, write_month),
    }
}

#[derive(Default)]
struct Columns {
    id: Vec<Option<i64>>,
    kind: Vec<&'static str>,
    district: Vec<Option<&'static str>>,
    reported: Vec<Option<i64>>,
    dispatched: Vec<Option<i64>>,
    arrived: Vec<Option<i64>>,
    resolved: Vec<Option<i64>>,
    lon: Vec<Option<f64>>,
    lat: Vec<Option<f64>>,
    severity: Vec<Option<i16>>,
}

impl Columns {
    fn finish(
        self,
        schema: &arrow::datatypes::SchemaRef,
    ) -> crate::Result<arrow::array::RecordBatch> {
        batch(
            schema,
            vec![
                i64s(self.id),
                utf8_values(self.kind),
                utf8(self.district),
                timestamps(self.reported),
                timestamps(self.dispatched),
                timestamps(self.arrived),
                timestamps(self.resolved),
                f64s(self.lon),
                f64s(self.lat),
                i16s(self.severity),
            ],
        )
    }
}

fn write_month(
    world: &World,
    month: u32,
    schema: &arrow::datatypes::SchemaRef,
    sink: &mut crate::table::BatchSink<'_>,
) -> crate::Result<()> {
    let n = &world.noise;
    let cal = &world.cal;
    let per_day = count(INCIDENTS_PER_SF, world.scale, 200) as f64 / cal.days() as f64;
    let weights = population_weights();
    let mut cols = Columns::default();
    for d in cal.month_days(month) {
        if !defects::incident_feed_up(d, cal.days()) {
            continue;
        }
        let winter = cal.winter(d).max(0.0);
        let day_rain: f64 = (0..24).map(|h| cal.rain(n, d, h as f64)).sum::<f64>() / 24.0;
        let flood_season = (-((d as f64 - 190.0) / 45.0).powi(2)).exp();
        let weekend = !cal.is_workday(d);
        let expected = per_day * (1.0 + 0.3 * day_rain + 0.1 * weekend as u8 as f64);
        let date_key = cal
            .date(d)
            .format("%Y%m%d")
            .to_string()
            .parse::<i64>()
            .expect("digits");
        let times = day_times(n, S_INC, d, daily_count(n, S_INC, d, expected), &HOURS);
        for (seq, (secs, key)) in times.into_iter().enumerate() {
            let h = secs as f64 / 3_600.0;
            let rush = (-((h - 8.0) / 1.2).powi(2)).exp() + (-((h - 18.0) / 1.5).powi(2)).exp();
            let night = if !(6.0..22.0).contains(&h) { 1.0 } else { 0.0 };
            let type_weights = [
                1.0 + 1.0 * winter,
                3.0 * (1.0 + rush) * (1.0 + 1.5 * day_rain),
                5.0 * (1.0 + 0.3 * winter),
                2.0 * (1.0 + night + 0.5 * weekend as u8 as f64),
                0.05 + 6.0 * flood_season * day_rain,
            ];
            let kind = n.pick(S_INC, key, 10, &type_weights);
            let district = &DISTRICTS[n.pick(S_INC, key, 11, &weights)];
            let severity = 1 + n.pick(S_INC, key, 12, &[50.0, 30.0, 15.0, 5.0]) as i16;
            let reported = cal.micros(d, secs);
            let dispatched = reported + n.range(S_INC, key, 13, 20, 180) * 1_000_000;
            // drive: 5 min in the core, up to ~30 min in large rural districts
            let drive_min = (4.0 + 0.45 * district.area_km2.sqrt() * (1.2 - district.urban))
                * (1.0 + 0.4 * rush)
                * (0.35 * n.normal(S_INC, key, 14)).exp();
            let cancelled = n.unit(S_INC, key, 15) < 0.015;
            let arrived = dispatched + (drive_min * 6e7) as i64;
            let scene_min = ON_SCENE_MIN[kind]
                * (0.7 + 0.3 * severity as f64)
                * (0.5 * n.normal(S_INC, key, 16)).exp();
            let resolved = arrived + (scene_min * 6e7) as i64;
            let spread = district.area_km2.sqrt() / 111.0 * 0.25;
            cols.id.push(Some(date_key * 1_000_000 + seq as i64 + 1));
            cols.kind.push(TYPES[kind]);
            let unlocated = seq == 0 && defects::UNLOCATED_INCIDENT_DAYS.contains(&d);
            cols.district.push((!unlocated).then_some(district.name));
            cols.reported.push(Some(reported));
            cols.dispatched.push(Some(dispatched));
            cols.arrived.push((!cancelled).then_some(arrived));
            cols.resolved.push((!cancelled).then_some(resolved));
            cols.lon.push(Some(round_to(
                district.longitude + spread * n.normal(S_INC, key, 17),
                5,
            )));
            cols.lat.push(Some(round_to(
                district.latitude + spread * n.normal(S_INC, key, 18),
                5,
            )));
            cols.severity.push(Some(severity));
            if cols.id.len() >= BATCH_ROWS {
                sink(std::mem::take(&mut cols).finish(schema)?)?;
            }
        }
    }
    if !cols.id.is_empty() {
        sink(cols.finish(schema)?)?;
    }
    Ok(())
}
