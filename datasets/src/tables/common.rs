//! `common.districts`: the 13 county-level divisions (a fixed dimension).

use citylake_catalog::Classification;

use super::{Expect, dataset};
use crate::city::DISTRICTS;
use crate::table::{FilePart, TableDef, batch, column, f64s, i64s, utf8_values};

pub fn districts() -> TableDef {
    let mut spec = dataset(
        "common.districts",
        "statistics",
        Classification::Public,
        "yearly",
        "Hangzhou's 13 county-level divisions with area and resident population",
    );
    spec.columns = vec![
        column(
            "district",
            "text",
            "District name in pinyin, the key used by every table",
        ),
        column("district_name_zh", "text", "District name in Chinese"),
        column(
            "admin_code",
            "int",
            "Administrative division code (GB/T 2260)",
        ),
        column("area_km2", "double", "Land area, km²"),
        column("population", "bigint", "Resident population (rounded)"),
        column(
            "longitude",
            "double",
            "Approximate centroid longitude (WGS84)",
        ),
        column(
            "latitude",
            "double",
            "Approximate centroid latitude (WGS84)",
        ),
    ];
    Expect {
        key: &["district"],
        time: None,
        required: &[
            "district",
            "district_name_zh",
            "admin_code",
            "area_km2",
            "population",
        ],
        ranges: &[
            ("area_km2", Some(0.0), None),
            ("population", Some(0.0), None),
            ("longitude", Some(118.0), Some(121.0)),
            ("latitude", Some(29.0), Some(31.0)),
        ],
    }
    .apply(&mut spec);
    let parts = vec![FilePart {
        rel_path: "part-0.parquet".into(),
        write: Box::new(|_, schema, sink| {
            let cols = vec![
                utf8_values(DISTRICTS.iter().map(|d| d.name).collect()),
                utf8_values(DISTRICTS.iter().map(|d| d.name_zh).collect()),
                crate::table::i32s(
                    DISTRICTS
                        .iter()
                        .map(|d| Some(d.admin_code as i32))
                        .collect(),
                ),
                f64s(DISTRICTS.iter().map(|d| Some(d.area_km2)).collect()),
                i64s(DISTRICTS.iter().map(|d| Some(d.population)).collect()),
                f64s(DISTRICTS.iter().map(|d| Some(d.longitude)).collect()),
                f64s(DISTRICTS.iter().map(|d| Some(d.latitude)).collect()),
            ];
            sink(batch(schema, cols)?)
        }),
    }];
    TableDef { spec, parts }
}
