//! Hangzhou's 13 county-level divisions, the fixed dimension every table refers to.
//!
//! Areas and populations are rounded public figures (areas after the 2021
//! redistricting, resident populations around 2023); centroids are approximate.
//! They shape the simulation (how busy, how urban, how far ambulances drive) and
//! are not an official statistic.

/// A district of the city.
#[derive(Debug, Clone, Copy)]
pub struct District {
    pub name: &'static str,
    pub name_zh: &'static str,
    pub admin_code: u32,
    pub area_km2: f64,
    pub population: i64,
    pub longitude: f64,
    pub latitude: f64,
    /// 0 (rural) .. 1 (dense urban core).
    pub urban: f64,
}

/// A row of [`DISTRICTS`], positional to keep the table readable.
#[allow(clippy::too_many_arguments)]
const fn d(
    name: &'static str,
    name_zh: &'static str,
    admin_code: u32,
    area_km2: f64,
    population: i64,
    longitude: f64,
    latitude: f64,
    urban: f64,
) -> District {
    District {
        name,
        name_zh,
        admin_code,
        area_km2,
        population,
        longitude,
        latitude,
        urban,
    }
}

/// The districts in a fixed order (their index is used as a stable key).
pub const DISTRICTS: [District; 13] = [
    d(
        "Shangcheng",
        "上城区",
        330102,
        122.0,
        1_400_000,
        120.171,
        30.250,
        1.0,
    ),
    d(
        "Gongshu",
        "拱墅区",
        330105,
        119.0,
        1_200_000,
        120.142,
        30.319,
        1.0,
    ),
    d(
        "Xihu",
        "西湖区",
        330106,
        313.0,
        1_180_000,
        120.130,
        30.259,
        0.9,
    ),
    d(
        "Binjiang",
        "滨江区",
        330108,
        72.0,
        540_000,
        120.211,
        30.208,
        1.0,
    ),
    d(
        "Xiaoshan",
        "萧山区",
        330109,
        1_417.0,
        2_100_000,
        120.264,
        30.185,
        0.65,
    ),
    d(
        "Yuhang",
        "余杭区",
        330110,
        942.0,
        1_400_000,
        120.000,
        30.280,
        0.7,
    ),
    d(
        "Fuyang",
        "富阳区",
        330111,
        1_821.0,
        840_000,
        119.960,
        30.049,
        0.4,
    ),
    d(
        "Linan",
        "临安区",
        330112,
        3_119.0,
        650_000,
        119.724,
        30.234,
        0.3,
    ),
    d(
        "Linping",
        "临平区",
        330113,
        286.0,
        1_170_000,
        120.299,
        30.419,
        0.7,
    ),
    d(
        "Qiantang",
        "钱塘区",
        330114,
        531.0,
        800_000,
        120.493,
        30.323,
        0.6,
    ),
    d(
        "Tonglu",
        "桐庐县",
        330122,
        1_825.0,
        460_000,
        119.691,
        29.794,
        0.25,
    ),
    d(
        "Chunan",
        "淳安县",
        330127,
        4_427.0,
        330_000,
        119.042,
        29.609,
        0.15,
    ),
    d(
        "Jiande",
        "建德市",
        330182,
        2_321.0,
        440_000,
        119.281,
        29.475,
        0.2,
    ),
];

/// Population shares, for drawing where people (and their calls) are.
pub fn population_weights() -> Vec<f64> {
    DISTRICTS.iter().map(|d| d.population as f64).collect()
}
