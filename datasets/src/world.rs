//! The simulated city's entities: stations, road segments, special-fund programs.
//! They are small and drawn once; the fact tables refer to them.

use crate::calendar::Calendar;
use crate::city::{DISTRICTS, population_weights};
use crate::noise::Noise;

const S_STATION: u64 = 0x5354;
const S_SEGMENT: u64 = 0x5347;
const S_PROGRAM: u64 = 0x5052;

/// Entity counts at scale 1; each is multiplied by the scale factor.
pub const STATIONS_PER_SF: f64 = 60.0;
pub const SEGMENTS_PER_SF: f64 = 1_000.0;
pub const HOTLINE_CASES_PER_SF: f64 = 500_000.0;
pub const INCIDENTS_PER_SF: f64 = 100_000.0;
pub const PROGRAMS_PER_SF: f64 = 300.0;

/// The number of entities at a scale: linear, with a floor so a tiny lake still
/// has one of each per district.
pub fn count(per_sf: f64, scale: f64, floor: usize) -> usize {
    ((per_sf * scale).round() as usize).max(floor)
}

/// An air-quality monitoring station.
#[derive(Debug, Clone)]
pub struct Station {
    pub id: i32,
    pub name: String,
    pub district: usize,
    pub longitude: f64,
    pub latitude: f64,
    pub station_type: &'static str,
    /// Multiplier on primary pollution (roadside > urban > background).
    pub pollution: f64,
}

/// A road segment of the traffic detector network.
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: i32,
    pub road_name: String,
    pub road_class: &'static str,
    pub district: usize,
    pub length_m: i32,
    pub lanes: i32,
    pub speed_limit_kmh: i32,
    pub free_flow_speed_kmh: f64,
    /// How strongly demand slows this segment (class × district × local variation).
    pub susceptibility: f64,
}

/// A special-fund program.
#[derive(Debug, Clone)]
pub struct Program {
    pub id: i32,
    pub name: String,
    pub department: &'static str,
    pub fund_category: &'static str,
    pub first_year: i32,
    pub last_year: i32,
    /// Budget of the first year, in fen (0.01 yuan).
    pub base_budget_fen: i128,
    /// Latent delivery quality in [0, 1]: good programs spend and deliver as planned;
    /// every tenth program (index 6 mod 10) has quality 0.
    pub quality: f64,
}

/// Everything the table generators share.
#[derive(Debug, Clone)]
pub struct World {
    pub noise: Noise,
    pub cal: Calendar,
    pub scale: f64,
    pub stations: Vec<Station>,
    pub segments: Vec<Segment>,
    pub programs: Vec<Program>,
}

pub const ROAD_CLASSES: [&str; 4] = ["expressway", "arterial", "secondary", "branch"];

const ROAD_NAMES: [&[&str]; 4] = [
    &[
        "Hangzhou Ring Expressway",
        "Shanghai-Hangzhou-Ningbo Expressway",
        "Airport Expressway",
        "Zhonghe Elevated",
        "Shangtang Elevated",
        "Desheng Elevated",
        "Qiushi Elevated",
        "Binjiang Expressway",
    ],
    &[
        "Tianmushan Road",
        "Moganshan Road",
        "Yan'an Road",
        "Jiefang Road",
        "Fengqi Road",
        "Wensan Road",
        "Gudun Road",
        "Jianghui Road",
        "Shixiang Road",
        "Qiutao Road",
        "Jiangnan Avenue",
        "Wenyi Road",
        "Genshan Road",
        "Binsheng Road",
        "Dongxin Road",
        "Xixi Road",
    ],
    &[
        "Wener Road",
        "Xueyuan Road",
        "Jiaogong Road",
        "Huaxing Road",
        "Fengtan Road",
        "Hushu Road",
        "Qingchun Road",
        "Zhongshan Road",
        "Changsheng Road",
        "Wangjiang Road",
        "Chaowang Road",
        "Shenhua Road",
    ],
    &[
        "Baoshu Road",
        "Beishan Street",
        "Nanshan Road",
        "Longjing Road",
        "Hefang Street",
        "Daxue Road",
        "Xihe Lane",
        "Jinsha Lane",
        "Yuhuang Lane",
        "Hongfu Lane",
    ],
];

pub const DEPARTMENTS: [&str; 10] = [
    "environment",
    "transport",
    "urban_management",
    "emergency",
    "health",
    "education",
    "agriculture",
    "science_technology",
    "civil_affairs",
    "culture_tourism",
];

const PROGRAM_NAMES: [&[&str]; 10] = [
    &[
        "大气污染防治专项",
        "水环境综合治理专项",
        "土壤污染修复专项",
        "生态环境监测能力建设",
    ],
    &[
        "智慧交通信号优化工程",
        "公交专用道建设",
        "城市道路拥堵治理",
        "公共停车设施建设",
    ],
    &[
        "城市精细化管理提升",
        "生活垃圾分类处理",
        "城市照明节能改造",
        "老旧小区综合改造",
    ],
    &[
        "应急救援能力建设",
        "城市防汛排涝工程",
        "消防站点建设",
        "应急物资储备",
    ],
    &[
        "基层医疗服务能力提升",
        "公共卫生应急体系建设",
        "老年健康服务专项",
    ],
    &[
        "义务教育均衡发展",
        "职业教育实训基地建设",
        "校园安全提升工程",
    ],
    &["高标准农田建设", "乡村振兴产业发展", "农产品质量安全监管"],
    &[
        "城市大脑应用场景建设",
        "科技企业孵化扶持",
        "数字经济创新专项",
    ],
    &["社区居家养老服务", "困难群众救助", "婚姻登记服务提升"],
    &["文化惠民工程", "西湖景区保护提升", "全域旅游发展专项"],
];

pub const FUND_CATEGORIES: [&str; 5] = [
    "infrastructure",
    "public_service",
    "subsidy",
    "research",
    "operations",
];

impl World {
    pub fn new(scale: f64, seed: u64, year: i32) -> Self {
        let noise = Noise::new(seed);
        let cal = Calendar::new(year);
        let mut world = Self {
            noise,
            cal,
            scale,
            stations: Vec::new(),
            segments: Vec::new(),
            programs: Vec::new(),
        };
        world.stations = world.draw_stations();
        world.segments = world.draw_segments();
        world.programs = world.draw_programs();
        world
    }

    fn district_for(&self, stream: u64, i: usize, weights: &[f64]) -> usize {
        // The first 13 entities cover every district once; the rest follow the weights.
        if i < DISTRICTS.len() {
            i
        } else {
            self.noise.pick(stream, i as u64, 0, weights)
        }
    }

    fn draw_stations(&self) -> Vec<Station> {
        let n = count(STATIONS_PER_SF, self.scale, DISTRICTS.len());
        let weights = population_weights();
        let mut per_district = [0usize; 13];
        (0..n)
            .map(|i| {
                let district = self.district_for(S_STATION, i, &weights);
                per_district[district] += 1;
                let dist = &DISTRICTS[district];
                let (station_type, pollution) = if i < DISTRICTS.len() {
                    if dist.urban >= 0.5 {
                        ("urban", 1.0)
                    } else {
                        ("suburban", 0.85)
                    }
                } else {
                    let types = [
                        ("urban", 1.0),
                        ("suburban", 0.85),
                        ("roadside", 1.2),
                        ("background", 0.7),
                    ];
                    types[self
                        .noise
                        .pick(S_STATION, i as u64, 1, &[4.0, 2.0, 2.0, 1.0])]
                };
                let spread = dist.area_km2.sqrt() / 111.0 * 0.3;
                Station {
                    id: 1001 + i as i32,
                    name: format!("{}-{:02}", dist.name, per_district[district]),
                    district,
                    longitude: dist.longitude + spread * self.noise.normal(S_STATION, i as u64, 2),
                    latitude: dist.latitude + spread * self.noise.normal(S_STATION, i as u64, 3),
                    station_type,
                    pollution: pollution * (0.92 + 0.16 * self.noise.unit(S_STATION, i as u64, 4)),
                }
            })
            .collect()
    }

    fn draw_segments(&self) -> Vec<Segment> {
        let n = count(SEGMENTS_PER_SF, self.scale, DISTRICTS.len());
        let weights: Vec<f64> = DISTRICTS
            .iter()
            .map(|d| d.population as f64 * (0.3 + d.urban))
            .collect();
        (0..n)
            .map(|i| {
                let key = i as u64;
                let district = self.district_for(S_SEGMENT, i, &weights);
                let dist = &DISTRICTS[district];
                let class = self.noise.pick(S_SEGMENT, key, 1, &[1.0, 3.0, 3.0, 3.0]);
                let names = ROAD_NAMES[class];
                let name = names[self
                    .noise
                    .range(S_SEGMENT, key, 2, 0, names.len() as i64 - 1)
                    as usize];
                let (limit, len_lo, len_hi, lanes, class_sus) = match class {
                    0 => (
                        80,
                        800,
                        3_000,
                        3 + self.noise.range(S_SEGMENT, key, 3, 0, 1) as i32,
                        0.55,
                    ),
                    1 => (60, 300, 1_500, 3, 0.62),
                    2 => (50, 200, 1_000, 2, 0.48),
                    _ => (40, 100, 600, 1, 0.38),
                };
                let limit = if class == 0 && dist.urban < 0.5 {
                    100
                } else {
                    limit
                };
                let ff = limit as f64 * (0.85 + 0.15 * self.noise.unit(S_SEGMENT, key, 4));
                Segment {
                    id: 1 + i as i32,
                    road_name: name.to_string(),
                    road_class: ROAD_CLASSES[class],
                    district,
                    length_m: self.noise.range(S_SEGMENT, key, 5, len_lo, len_hi) as i32,
                    lanes,
                    speed_limit_kmh: limit,
                    free_flow_speed_kmh: (ff * 10.0).round() / 10.0,
                    susceptibility: class_sus
                        * (0.55 + 0.6 * dist.urban)
                        * (0.75 + 0.5 * self.noise.unit(S_SEGMENT, key, 6)),
                }
            })
            .collect()
    }

    fn draw_programs(&self) -> Vec<Program> {
        let n = count(PROGRAMS_PER_SF, self.scale, 12);
        let year = self.cal.year;
        (0..n)
            .map(|i| {
                let key = i as u64;
                let dep = if i < DEPARTMENTS.len() {
                    i
                } else {
                    self.noise.pick(
                        S_PROGRAM,
                        key,
                        0,
                        &[3.0, 3.0, 2.0, 2.0, 2.0, 2.0, 1.0, 2.0, 1.0, 1.0],
                    )
                };
                let names = PROGRAM_NAMES[dep];
                let template = names[self
                    .noise
                    .range(S_PROGRAM, key, 1, 0, names.len() as i64 - 1)
                    as usize];
                let district =
                    &DISTRICTS[self.noise.pick(S_PROGRAM, key, 2, &population_weights())];
                let first_year = year - self.noise.range(S_PROGRAM, key, 3, 0, 2) as i32;
                let span = self.noise.range(S_PROGRAM, key, 4, 1, 3) as i32;
                // log-normal budgets, median about 5 million yuan
                let yuan = (5.0e6 * (0.9 * self.noise.normal(S_PROGRAM, key, 5)).exp())
                    .clamp(2.0e5, 2.0e8);
                Program {
                    id: 1 + i as i32,
                    name: format!("{}{}", district.name_zh, template),
                    department: DEPARTMENTS[dep],
                    fund_category: FUND_CATEGORIES[self.noise.pick(
                        S_PROGRAM,
                        key,
                        6,
                        &[3.0, 3.0, 2.0, 1.0, 1.0],
                    )],
                    first_year,
                    last_year: (first_year + span - 1).min(year),
                    base_budget_fen: (yuan / 1_000.0).round() as i128 * 100_000,
                    // every tenth program struggles, so that evaluations of every
                    // grade exist at every scale
                    quality: if i % 10 == 6 {
                        0.0
                    } else {
                        self.noise.unit(S_PROGRAM, key, 7).powf(0.6)
                    },
                }
            })
            .collect()
    }
}
