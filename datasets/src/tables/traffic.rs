//! `traffic.road_segments` and `traffic.segment_speed`.
//!
//! Model of a 5-minute reading on a segment: travel demand follows the time of
//! day (working days: a morning peak around 08:00 and an evening peak around
//! 17:50; weekends and holidays: one broad daytime hump; the Spring Festival
//! week: the city half empty). Congestion = the segment's susceptibility (its
//! road class, its district's urbanisation, local variation) × demand^1.6,
//! worsened by rain, plus slow local fluctuations and incidents (about 2 % of
//! segment-days, more on rainy days: 30–120 minutes of heavy slow-down). Speed =
//! free-flow speed × (1 − congestion), floored at 7 % of free flow; vehicle count
//! follows demand and lanes and drops once a segment breaks down. About 0.2 % of
//! readings are detector drop-outs (speed, travel time and count NULL).
//!
//! Layout: one file per day (`dt=YYYY-MM-DD`), rows sorted by `observed_at`,
//! then `segment_id`. `segment_id` is an INT: joins with `road_segments` on an
//! integer key ran 1.4× faster than on a string key (docs/data.md).

use chrono::Datelike;
use citylake_catalog::Classification;

use super::{Expect, dataset, partition};
use crate::city::DISTRICTS;
use crate::defects;
use crate::table::{
    FilePart, TableDef, batch, column, f64s, i32s, round_to, timestamps, utf8_values,
};
use crate::world::World;
use crate::writer::BATCH_ROWS;

const S_LOCAL: u64 = 0x004C_4F43;
const S_INCIDENT: u64 = 0x0049_4E43;
const S_SPEED: u64 = 0x0053_5044;
const SLOTS: u32 = 288;

pub fn tables(world: &World) -> Vec<TableDef> {
    vec![segments(world), speeds(world)]
}

fn segments(world: &World) -> TableDef {
    let mut spec = dataset(
        "traffic.road_segments",
        "traffic",
        Classification::Public,
        "monthly",
        "Road segments of the traffic detector network",
    );
    spec.columns = vec![
        column("segment_id", "int", "Segment identifier"),
        column(
            "road_name",
            "text",
            "Name of the road the segment belongs to",
        ),
        column(
            "road_class",
            "text",
            "expressway, arterial, secondary or branch",
        ),
        column("district", "text", "District (common.districts)"),
        column("length_m", "int", "Segment length, metres"),
        column("lanes", "int", "Lanes per direction"),
        column("speed_limit_kmh", "int", "Posted speed limit, km/h"),
        column(
            "free_flow_speed_kmh",
            "double",
            "Free-flow speed, km/h (GB/T 33171: fastest ninth of interval means, capped at the limit)",
        ),
    ];
    Expect {
        key: &["segment_id"],
        time: None,
        required: &[
            "segment_id",
            "road_name",
            "road_class",
            "district",
            "length_m",
            "lanes",
            "speed_limit_kmh",
            "free_flow_speed_kmh",
        ],
        ranges: &[
            ("length_m", Some(1.0), None),
            ("lanes", Some(1.0), None),
            ("speed_limit_kmh", Some(1.0), Some(130.0)),
            ("free_flow_speed_kmh", Some(1.0), Some(150.0)),
        ],
    }
    .apply(&mut spec);
    let segs = world.segments.clone();
    let parts = vec![FilePart {
        rel_path: "part-0.parquet".into(),
        write: Box::new(move |_, schema, sink| {
            let s = &segs;
            sink(batch(
                schema,
                vec![
                    i32s(s.iter().map(|s| Some(s.id)).collect()),
                    utf8_values(s.iter().map(|s| s.road_name.as_str()).collect()),
                    utf8_values(s.iter().map(|s| s.road_class).collect()),
                    utf8_values(s.iter().map(|s| DISTRICTS[s.district].name).collect()),
                    i32s(s.iter().map(|s| Some(s.length_m)).collect()),
                    i32s(s.iter().map(|s| Some(s.lanes)).collect()),
                    i32s(s.iter().map(|s| Some(s.speed_limit_kmh)).collect()),
                    f64s(s.iter().map(|s| Some(s.free_flow_speed_kmh)).collect()),
                ],
            )?)
        }),
    }];
    TableDef { spec, parts }
}

fn speeds(world: &World) -> TableDef {
    let mut spec = dataset(
        "traffic.segment_speed",
        "traffic",
        Classification::Internal,
        "5 minutes",
        "Mean speed, travel time and vehicle count per segment and 5-minute interval",
    );
    spec.sort_order = vec!["observed_at".into(), "segment_id".into()];
    spec.partitions = vec![partition(
        "dt",
        "date",
        "Partition: local date of observed_at",
    )];
    spec.columns = vec![
        column("segment_id", "int", "Segment (traffic.road_segments)"),
        column(
            "observed_at",
            "timestamp",
            "Start of the 5-minute interval, local time (Asia/Shanghai)",
        ),
        column(
            "avg_speed_kmh",
            "double",
            "Mean speed over the interval, km/h (NULL: detector drop-out)",
        ),
        column(
            "travel_time_s",
            "double",
            "Travel time over the segment at that speed, seconds",
        ),
        column(
            "vehicle_count",
            "int",
            "Vehicles counted in the interval, all lanes",
        ),
    ];
    Expect {
        key: &[],
        time: Some("observed_at"),
        required: &["segment_id", "observed_at"],
        ranges: &[
            ("avg_speed_kmh", Some(0.0), Some(200.0)),
            ("travel_time_s", Some(0.0), None),
            ("vehicle_count", Some(0.0), None),
        ],
    }
    .apply(&mut spec);
    let parts = (0..world.cal.days())
        .map(|d| FilePart {
            rel_path: format!("dt={}/part-0.parquet", world.cal.date(d)),
            write: Box::new(move |world, schema, sink| write_day(world, d, schema, sink)),
        })
        .collect();
    TableDef { spec, parts }
}

fn gauss(x: f64, mu: f64, sigma: f64) -> f64 {
    (-((x - mu) / sigma).powi(2)).exp()
}

/// Travel demand in [0, ~1.1] at hour `h` of day `d`.
pub fn demand(world: &World, d: u32, h: f64) -> f64 {
    let daytime = 1.0 / (1.0 + (-(h - 6.5) * 1.5).exp()) / (1.0 + ((h - 22.0) * 1.2).exp());
    let friday = world.cal.date(d).weekday() == chrono::Weekday::Fri;
    let base = if world.cal.is_workday(d) {
        0.10 + 0.45 * daytime
            + 0.55 * gauss(h, 8.1, 0.8)
            + 0.5 * gauss(h, 17.8, 1.0) * if friday { 1.15 } else { 1.0 }
    } else {
        0.10 + 0.5 * daytime + 0.2 * gauss(h, 15.0, 3.0)
    };
    if world.cal.is_spring_festival(d) {
        base * 0.55
    } else {
        base
    }
}

fn write_day(
    world: &World,
    d: u32,
    schema: &arrow::datatypes::SchemaRef,
    sink: &mut crate::table::BatchSink<'_>,
) -> crate::Result<()> {
    let n = &world.noise;
    let segs = &world.segments;
    // per-slot demand^1.6 and rain factor, shared by every segment
    let slot: Vec<(f64, f64, f64)> = (0..SLOTS)
        .map(|s| {
            let h = s as f64 / 12.0;
            let dem = demand(world, d, h);
            let rain = world.cal.rain(n, d, h);
            (dem.min(1.0), dem.powf(1.6) * (1.0 + 0.35 * rain), rain)
        })
        .collect();
    let rainy_day = slot.iter().filter(|s| s.2 > 0.0).count() > 48;
    // incidents: (start slot, end slot) per segment, if any today
    let incidents: Vec<Option<(u32, u32)>> = segs
        .iter()
        .map(|seg| {
            let key = seg.id as u64;
            let p = if rainy_day { 0.04 } else { 0.02 };
            (n.unit(S_INCIDENT, key, d as u64) < p).then(|| {
                let start = n.range(S_INCIDENT, key, d as u64 + 1_000_000, 72, 264) as u32;
                let len = n.range(S_INCIDENT, key, d as u64 + 2_000_000, 6, 24) as u32;
                (start, start + len)
            })
        })
        .collect();

    let cap = BATCH_ROWS + segs.len();
    let mut cols = SpeedColumns::with_capacity(cap);
    for s in 0..SLOTS {
        if !defects::speed_feed_up(d, s) {
            continue;
        }
        let ts = world.cal.micros(d, s as i64 * 300);
        let (dem, pressure, _) = slot[s as usize];
        let t = (d * SLOTS + s) as f64 / 6.0; // local fluctuation knots every 30 min
        for (i, seg) in segs.iter().enumerate() {
            let key = seg.id as u64;
            let row = ((d * SLOTS + s) as u64) << 20 | key;
            let bits = n.bits(S_SPEED, key, row);
            if bits % 1000 < 2 {
                cols.push(seg.id, ts, None, None, None);
                continue;
            }
            if defects::speed_fault(d, s, i) {
                cols.push(seg.id, ts, Some(defects::SPEED_FAULT_CODE), None, Some(0));
                continue;
            }
            let mut c = seg.susceptibility * pressure + 0.05 * n.smooth(S_LOCAL, key, t);
            if matches!(incidents[i], Some((a, b)) if s >= a && s < b) {
                c += 0.35;
            }
            let e1 = n.normal(S_SPEED, key, row ^ 0x1);
            let e2 = n.normal(S_SPEED, key, row ^ 0x2);
            let speed = round_to(
                (seg.free_flow_speed_kmh * (1.0 - c).clamp(0.07, 1.05) * (1.0 + 0.04 * e1))
                    .max(1.0),
                1,
            );
            let travel = round_to(seg.length_m as f64 / (speed / 3.6), 1);
            let cap5 = if seg.road_class == "expressway" {
                170.0
            } else {
                150.0
            };
            let count = (seg.lanes as f64
                * cap5
                * dem
                * (1.0 - 0.7 * (c - 0.55).max(0.0))
                * (1.0 + 0.1 * e2))
                .round()
                .max(0.0) as i32;
            cols.push(seg.id, ts, Some(speed), Some(travel), Some(count));
        }
        if cols.len() >= BATCH_ROWS {
            sink(std::mem::replace(&mut cols, SpeedColumns::with_capacity(cap)).finish(schema)?)?;
        }
    }
    if cols.len() > 0 {
        sink(cols.finish(schema)?)?;
    }
    Ok(())
}

struct SpeedColumns {
    segment: Vec<Option<i32>>,
    ts: Vec<Option<i64>>,
    speed: Vec<Option<f64>>,
    travel: Vec<Option<f64>>,
    count: Vec<Option<i32>>,
}

impl SpeedColumns {
    fn with_capacity(n: usize) -> Self {
        Self {
            segment: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            speed: Vec::with_capacity(n),
            travel: Vec::with_capacity(n),
            count: Vec::with_capacity(n),
        }
    }

    fn len(&self) -> usize {
        self.segment.len()
    }

    fn push(
        &mut self,
        seg: i32,
        ts: i64,
        speed: Option<f64>,
        travel: Option<f64>,
        count: Option<i32>,
    ) {
        self.segment.push(Some(seg));
        self.ts.push(Some(ts));
        self.speed.push(speed);
        self.travel.push(travel);
        self.count.push(count);
    }

    fn finish(
        self,
        schema: &arrow::datatypes::SchemaRef,
    ) -> crate::Result<arrow::array::RecordBatch> {
        batch(
            schema,
            vec![
                i32s(self.segment),
                timestamps(self.ts),
                f64s(self.speed),
                f64s(self.travel),
                i32s(self.count),
            ],
        )
    }
}
