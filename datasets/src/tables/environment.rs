//! `environment.air_stations` and `environment.air_quality_hourly`.
//!
//! Model of an hourly reading at a station: a citywide stagnation process
//! (multi-day episodes) scales primary pollutants; PM2.5 follows the season
//! (winter high) with a morning and late-evening bump, is washed out by rain and
//! is higher in urban districts and at roadside stations; PM10 is PM2.5 times a
//! coarse-fraction ratio plus spring dust events; NO2 peaks with the rush hours;
//! CO tracks PM2.5 and NO2; SO2 stays low; O3 is photochemical (summer
//! afternoons, suppressed by rain and by NO titration in the urban core).
//! `o3_8h` is the 8-hour sliding mean of the reported O3 (at least 6 valid hours,
//! as HJ 663 requires). About 1 % of station-days have an outage of 2–8 hours
//! (every pollutant NULL) and 0.4 % of single values are missing.

use citylake_catalog::Classification;

use super::{Expect, dataset, month_partition, monthly_parts};
use crate::city::DISTRICTS;
use crate::defects;
use crate::table::{
    FilePart, TableDef, batch, column, f64s, i32s, round_to, timestamps, utf8_values,
};
use crate::world::{Station, World};
use crate::writer::BATCH_ROWS;

const S_MET: u64 = 0x004D_4554;
const S_DUST: u64 = 0x4455_5354;
const S_AQ: u64 = 0x4151;
const S_OUT: u64 = 0x004F_5554;
const S_MISS: u64 = 0x4D49_5353;

pub fn tables(world: &World) -> Vec<TableDef> {
    vec![stations(world), hourly(world)]
}

fn stations(world: &World) -> TableDef {
    let mut spec = dataset(
        "environment.air_stations",
        "environment",
        Classification::Public,
        "yearly",
        "Air-quality monitoring stations of the city network",
    );
    spec.columns = vec![
        column("station_id", "int", "Station identifier"),
        column("station_name", "text", "Station name"),
        column(
            "district",
            "text",
            "District the station stands in (common.districts)",
        ),
        column("longitude", "double", "Longitude (WGS84)"),
        column("latitude", "double", "Latitude (WGS84)"),
        column(
            "station_type",
            "text",
            "urban, suburban, roadside or background",
        ),
    ];
    Expect {
        key: &["station_id"],
        time: None,
        required: &[
            "station_id",
            "station_name",
            "district",
            "longitude",
            "latitude",
            "station_type",
        ],
        ranges: &[
            ("longitude", Some(118.0), Some(121.0)),
            ("latitude", Some(29.0), Some(31.0)),
        ],
    }
    .apply(&mut spec);
    let stations = world.stations.clone();
    let parts = vec![FilePart {
        rel_path: "part-0.parquet".into(),
        write: Box::new(move |_, schema, sink| {
            let s = &stations;
            sink(batch(
                schema,
                vec![
                    i32s(s.iter().map(|s| Some(s.id)).collect()),
                    utf8_values(s.iter().map(|s| s.name.as_str()).collect()),
                    utf8_values(s.iter().map(|s| DISTRICTS[s.district].name).collect()),
                    f64s(s.iter().map(|s| Some(round_to(s.longitude, 5))).collect()),
                    f64s(s.iter().map(|s| Some(round_to(s.latitude, 5))).collect()),
                    utf8_values(s.iter().map(|s| s.station_type).collect()),
                ],
            )?)
        }),
    }];
    TableDef { spec, parts }
}

fn hourly(world: &World) -> TableDef {
    let mut spec = dataset(
        "environment.air_quality_hourly",
        "environment",
        Classification::Internal,
        "hourly",
        "Hourly pollutant concentrations per station (local time, hour ending)",
    );
    spec.sort_order = vec!["observed_at".into(), "station_id".into()];
    spec.partitions = vec![month_partition()];
    spec.columns = vec![
        column("station_id", "int", "Station (environment.air_stations)"),
        column(
            "observed_at",
            "timestamp",
            "Start of the hour, local time (Asia/Shanghai)",
        ),
        column("pm25", "double", "PM2.5, µg/m³, 1-hour mean"),
        column("pm10", "double", "PM10, µg/m³, 1-hour mean"),
        column("so2", "double", "SO2, µg/m³, 1-hour mean"),
        column("no2", "double", "NO2, µg/m³, 1-hour mean"),
        column("co", "double", "CO, mg/m³, 1-hour mean"),
        column("o3", "double", "O3, µg/m³, 1-hour mean"),
        column(
            "o3_8h",
            "double",
            "O3 8-hour sliding mean ending this hour, µg/m³ (NULL with fewer than 6 valid hours)",
        ),
    ];
    Expect {
        key: &["station_id", "observed_at"],
        time: Some("observed_at"),
        required: &["station_id", "observed_at"],
        ranges: &[
            ("pm25", Some(0.0), None),
            ("pm10", Some(0.0), None),
            ("so2", Some(0.0), None),
            ("no2", Some(0.0), None),
            ("co", Some(0.0), None),
            ("o3", Some(0.0), None),
            ("o3_8h", Some(0.0), None),
        ],
    }
    .apply(&mut spec);
    TableDef {
        spec,
        parts: monthly_parts(world, write_month),
    }
}

/// Concentrations of one station-hour: pm25, pm10, so2, no2, co, o3 (None = missing).
fn reading(world: &World, st: &Station, gh: i64) -> [Option<f64>; 6] {
    let n = &world.noise;
    let d = gh.div_euclid(24);
    let h = gh.rem_euclid(24) as f64;
    let day = d.clamp(0, world.cal.days() as i64 - 1) as u32;
    let sid = st.id as u64;
    let ghu = gh as u64;
    // station-day outage of 2-8 hours
    if n.unit(S_OUT, sid, day as u64) < 0.01 {
        let start = n.range(S_OUT, sid, day as u64 + 1_000_000, 0, 22) as f64;
        let len = n.range(S_OUT, sid, day as u64 + 2_000_000, 2, 8) as f64;
        if h >= start && h < start + len {
            return [None; 6];
        }
    }
    let dist = &DISTRICTS[st.district];
    let winter = world.cal.winter(day);
    let summer = (1.0 - winter) / 2.0;
    let t = gh as f64;
    let met = n.smooth(S_MET, 0, t / 36.0) + 0.3 * n.smooth(S_MET, sid, t / 12.0);
    let rain = world.cal.rain(n, day, h);
    let doy = day as f64;
    let dust = (n.smooth(S_DUST, 0, t / 48.0) - 0.55).max(0.0)
        * 2.5
        * (-((doy - 95.0) / 30.0).powi(2)).exp();
    let e = |k: u64| n.normal(S_AQ, sid, ghu.wrapping_mul(8).wrapping_add(k));
    let urban = dist.urban;

    let diurnal_pm = 1.0
        + 0.12 * (std::f64::consts::TAU * (h - 22.0) / 24.0).cos()
        + 0.10 * (-((h - 8.5) / 1.5).powi(2)).exp();
    let pm25 = ((30.0 + 20.0 * winter)
        * (0.55 * met).exp()
        * (0.75 + 0.4 * urban)
        * st.pollution
        * diurnal_pm
        * (1.0 - 0.45 * rain)
        * (0.15 * e(0)).exp())
    .max(2.0);
    let pm10 = pm25 * (1.5 + 0.12 * e(1)).max(1.05) + 150.0 * dust + 5.0;
    let rush = 0.7
        + 0.35 * (-((h - 8.0) / 1.5).powi(2)).exp()
        + 0.45 * (-((h - 19.0) / 2.0).powi(2)).exp();
    let no2 = ((30.0 + 10.0 * winter)
        * rush
        * (0.6 + 0.6 * urban)
        * st.pollution
        * (0.35 * met).exp()
        * (1.0 - 0.2 * rain)
        * (0.15 * e(2)).exp())
    .max(2.0);
    let co = (0.45 + 0.008 * pm25 + 0.004 * no2 + 0.05 * e(3)).max(0.1);
    let so2 =
        ((6.0 + 3.0 * winter) * (0.3 * met).exp() * (0.8 + 0.4 * urban) * (0.25 * e(4)).exp())
            .max(2.0);
    let photo = (-((h - 15.0) / 3.2).powi(2)).exp();
    let o3 = ((20.0 + 15.0 * summer)
        + (60.0 + 140.0 * summer)
            * photo
            * (1.0 - 0.7 * rain)
            * (1.15 - 0.3 * urban)
            * (0.25 * met).exp())
        * (0.12 * e(5)).exp();
    let values = [
        pm25.round(),
        pm10.round(),
        so2.round(),
        no2.round(),
        round_to(co, 1),
        o3.round().max(1.0),
    ];
    let mut out = [None; 6];
    for (k, v) in values.into_iter().enumerate() {
        let missing = n.unit(S_MISS, sid, ghu.wrapping_mul(8).wrapping_add(k as u64)) < 0.004;
        out[k] = (!missing).then_some(v);
    }
    out
}

fn write_month(
    world: &World,
    month: u32,
    schema: &arrow::datatypes::SchemaRef,
    sink: &mut crate::table::BatchSink<'_>,
) -> crate::Result<()> {
    let days = world.cal.month_days(month);
    let first_hour = days.start as i64 * 24;
    let last_hour = days.end as i64 * 24;
    let stations = &world.stations;
    // last 7 reported O3 values per station, warmed up with the hours before the month
    let mut o3_hist: Vec<std::collections::VecDeque<Option<f64>>> = stations
        .iter()
        .map(|st| {
            (first_hour - 7..first_hour)
                .map(|gh| {
                    if gh < 0 {
                        None
                    } else {
                        reading(world, st, gh)[5]
                    }
                })
                .collect()
        })
        .collect();

    let cap = BATCH_ROWS + stations.len();
    let mut cols = Columns::with_capacity(cap);
    for gh in first_hour..last_hour {
        let ts = world.cal.micros(0, gh * 3_600);
        for (i, st) in stations.iter().enumerate() {
            let mut r = reading(world, st, gh);
            if defects::pm25_drift(i, gh) {
                r[0] = Some(defects::PM25_DRIFT_VALUE);
            }
            let hist = &mut o3_hist[i];
            hist.push_back(r[5]);
            let valid: Vec<f64> = hist.iter().flatten().copied().collect();
            let o3_8h = (valid.len() >= 6)
                .then(|| (valid.iter().sum::<f64>() / valid.len() as f64).round());
            hist.pop_front();
            cols.push(st.id, ts, r, o3_8h);
        }
        if cols.len() >= BATCH_ROWS {
            sink(std::mem::replace(&mut cols, Columns::with_capacity(cap)).finish(schema)?)?;
        }
    }
    if cols.len() > 0 {
        sink(cols.finish(schema)?)?;
    }
    Ok(())
}

struct Columns {
    station: Vec<Option<i32>>,
    ts: Vec<Option<i64>>,
    values: [Vec<Option<f64>>; 7],
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Self {
            station: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            values: std::array::from_fn(|_| Vec::with_capacity(n)),
        }
    }

    fn len(&self) -> usize {
        self.station.len()
    }

    fn push(&mut self, station: i32, ts: i64, r: [Option<f64>; 6], o3_8h: Option<f64>) {
        self.station.push(Some(station));
        self.ts.push(Some(ts));
        for (k, v) in r.into_iter().enumerate() {
            self.values[k].push(v);
        }
        self.values[6].push(o3_8h);
    }

    fn finish(
        self,
        schema: &arrow::datatypes::SchemaRef,
    ) -> crate::Result<arrow::array::RecordBatch> {
        let mut cols = vec![i32s(self.station), timestamps(self.ts)];
        cols.extend(self.values.into_iter().map(f64s));
        batch(schema, cols)
    }
}
