//! `finance.programs`, `finance.expenditures`, `finance.performance_indicators`.
//!
//! Model: about 300 special-fund programs at SF 1, each running one to three of
//! the three years up to the simulated year, with a log-normal budget (median
//! about 5 million yuan, growing 8 % a year). Each program has a latent delivery
//! quality: good programs spend close to their budget (execution rate 60–100 %)
//! and meet their targets. Payments (3–22 per program-year, to 2–4 recurring
//! payees) add up exactly to the amount spent and bunch up in the fourth quarter,
//! as year-end spending does. Indicators follow the self-evaluation framework of
//! 财预〔2020〕10号 as docs/standards.md §4 gives it: budget execution 10 (process),
//! output 50, benefit 30 and satisfaction 10 (outcome), with every level of the
//! framework present: each program carries a 10-point decision indicator
//! (绩效目标明确性), its points taken from output (quantity 10, timeliness 5)
//! so the total stays 100. The budget-execution
//! indicator's actual value is the rate computed from the payments. 1 % of
//! actual values are not reported (NULL), and every tenth program (id ending in 3)
//! has not reported the satisfaction survey of its last year. `payee` is a trade secret.
//! Money is DECIMAL(18,2) yuan.

use citylake_catalog::{Classification, PiiTag};

use super::{Expect, dataset, partition};
use crate::calendar::Calendar;
use crate::table::{
    FilePart, TableDef, batch, column, decimals, i32s, i64s, pii_column, timestamps, utf8,
    utf8_values,
};
use crate::world::{Program, World};

const S_FIN: u64 = 0x0046_494E;
const S_PAY: u64 = 0x0050_4159;
const S_IND: u64 = 0x0049_4E44;

/// The readers' names of the codes the finance tables hold, for the catalog's
/// `[evaluation.labels]` (the report shows them, the code as a tooltip).
pub fn labels() -> citylake_catalog::spec::Labels {
    let map = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    citylake_catalog::spec::Labels {
        department: map(&[
            ("environment", "生态环境局"),
            ("transport", "交通运输局"),
            ("urban_management", "城市管理局"),
            ("emergency", "应急管理局"),
            ("health", "卫生健康委员会"),
            ("education", "教育局"),
            ("agriculture", "农业农村局"),
            ("science_technology", "科学技术局"),
            ("civil_affairs", "民政局"),
            ("culture_tourism", "文化广电旅游局"),
        ]),
        level1: map(&[
            ("decision", "决策"),
            ("process", "过程"),
            ("output", "产出"),
            ("outcome", "效益"),
        ]),
        level2: map(&[
            ("performance_target", "绩效目标"),
            ("budget_execution", "预算执行"),
            ("quantity", "数量指标"),
            ("quality", "质量指标"),
            ("timeliness", "时效指标"),
            ("cost", "成本指标"),
            ("social_benefit", "社会效益"),
            ("sustainability", "可持续影响"),
            ("satisfaction", "满意度"),
        ]),
    }
}

pub fn tables(world: &World) -> Vec<TableDef> {
    vec![programs(), expenditures(world), indicators()]
}

/// The program-years of the lake, ordered by year then program.
fn program_years(world: &World) -> Vec<(&Program, i32)> {
    let year = world.cal.year;
    let mut out = vec![];
    for y in year - 2..=year {
        out.extend(
            world
                .programs
                .iter()
                .filter(|p| (p.first_year..=p.last_year).contains(&y))
                .map(|p| (p, y)),
        );
    }
    out
}

fn budget_fen(p: &Program, year: i32) -> i128 {
    let growth = 1.0 + 0.08 * (year - p.first_year) as f64;
    ((p.base_budget_fen as f64 * growth) / 100_000.0).round() as i128 * 100_000
}

/// Quality of a program in one year: its latent quality plus the year's luck.
fn year_quality(world: &World, p: &Program, year: i32) -> f64 {
    (p.quality + 0.12 * world.noise.normal(S_FIN, p.id as u64, year as u64)).clamp(0.0, 1.0)
}

/// Amount spent in fen: the budget times an execution rate driven by quality.
fn spent_fen(world: &World, p: &Program, year: i32) -> i128 {
    let key = p.id as u64;
    let rate = if world.noise.unit(S_FIN, key, year as u64 + 10_000) < 0.05 {
        1.0
    } else {
        (0.6 + 0.4 * year_quality(world, p, year)
            + 0.06 * world.noise.normal(S_FIN, key, year as u64 + 20_000))
        .clamp(0.3, 1.0)
    };
    (budget_fen(p, year) as f64 * rate).floor() as i128
}

fn programs() -> TableDef {
    let mut spec = dataset(
        "finance.programs",
        "finance",
        Classification::Internal,
        "yearly",
        "Special-fund programs of the finance bureau, one row per program and budget year",
    );
    spec.sort_order = vec!["year".into(), "program_id".into()];
    spec.columns = vec![
        column("program_id", "int", "Program identifier"),
        column("program_name", "text", "Program name"),
        column(
            "department",
            "text",
            "Department responsible for the program",
        ),
        column(
            "fund_category",
            "text",
            "infrastructure, public_service, subsidy, research or operations",
        ),
        column("year", "int", "Budget year"),
        column("budget_amount", "decimal(18,2)", "Budget of the year, yuan"),
    ];
    Expect {
        key: &["program_id", "year"],
        time: None,
        required: &[
            "program_id",
            "program_name",
            "department",
            "fund_category",
            "year",
            "budget_amount",
        ],
        ranges: &[("budget_amount", Some(0.0), None)],
    }
    .apply(&mut spec);
    let parts = vec![FilePart {
        rel_path: "part-0.parquet".into(),
        write: Box::new(|world, schema, sink| {
            let rows = program_years(world);
            sink(batch(
                schema,
                vec![
                    i32s(rows.iter().map(|(p, _)| Some(p.id)).collect()),
                    utf8_values(rows.iter().map(|(p, _)| p.name.as_str()).collect()),
                    utf8_values(rows.iter().map(|(p, _)| p.department).collect()),
                    utf8_values(rows.iter().map(|(p, _)| p.fund_category).collect()),
                    i32s(rows.iter().map(|(_, y)| Some(*y)).collect()),
                    decimals(
                        rows.iter().map(|(p, y)| Some(budget_fen(p, *y))).collect(),
                        18,
                        2,
                    )?,
                ],
            )?)
        }),
    }];
    TableDef { spec, parts }
}

const PAYEE_A: &[&str] = &[
    "华", "信", "达", "恒", "诚", "通", "安", "盛", "鑫", "泰", "博", "科", "润", "创", "远", "宏",
];
const PAYEE_KIND: &[&str] = &[
    "建设工程有限公司",
    "科技有限公司",
    "环保工程有限公司",
    "信息技术有限公司",
    "市政工程有限公司",
    "咨询服务有限公司",
];
const PURPOSES: &[&str] = &[
    "工程进度款",
    "设备采购款",
    "技术服务费",
    "咨询费",
    "补贴发放",
    "材料采购款",
    "监理费",
];
const MONTH_WEIGHTS: [f64; 12] = [
    4.0, 4.0, 6.0, 7.0, 7.0, 8.0, 8.0, 8.0, 9.0, 10.0, 12.0, 17.0,
];

fn expenditures(world: &World) -> TableDef {
    let mut spec = dataset(
        "finance.expenditures",
        "finance",
        Classification::Restricted,
        "daily",
        "Payments made from special-fund programs",
    );
    spec.sort_order = vec!["paid_at".into()];
    spec.partitions = vec![partition(
        "year",
        "int",
        "Partition: budget year of the payment",
    )];
    spec.columns = vec![
        column(
            "expenditure_id",
            "bigint",
            "Payment identifier: year × 10^7 + program × 100 + sequence",
        ),
        column("program_id", "int", "Program paid from (finance.programs)"),
        column(
            "paid_at",
            "timestamp",
            "When the payment was made, local time (Asia/Shanghai)",
        ),
        column("amount", "decimal(18,2)", "Amount paid, yuan"),
        pii_column(
            "payee",
            "text",
            "Company paid (a trade secret)",
            PiiTag::TradeSecret,
        ),
        column("purpose", "text", "What the payment was for"),
    ];
    let year = world.cal.year;
    Expect {
        key: &["expenditure_id"],
        time: Some("paid_at"),
        required: &["expenditure_id", "program_id", "paid_at", "amount", "payee"],
        ranges: &[("amount", Some(0.0), None)],
    }
    .apply(&mut spec);
    // programs start and end over the years: a year's payments vary with the
    // programs running then, so only a near-empty year is an anomaly
    spec.partition_tolerance = Some(0.9);
    let parts = (year - 2..=year)
        .map(|y| FilePart {
            rel_path: format!("year={y}/part-0.parquet"),
            write: Box::new(move |world, schema, sink| {
                let n = &world.noise;
                let cal = Calendar::new(y);
                // (paid_at, id, program, amount fen, payee, purpose)
                let mut rows: Vec<(i64, i64, i32, i128, String, &str)> = vec![];
                for (p, _) in program_years(world).into_iter().filter(|(_, py)| *py == y) {
                    let key = (p.id as u64) << 16 | y as u64;
                    let spent = spent_fen(world, p, y);
                    let k = 3 + (n.bits(S_PAY, key, 0) % 20) as usize;
                    let payees = 2 + (n.bits(S_PAY, key, 1) % 3);
                    let w: Vec<f64> = (0..k)
                        .map(|i| 0.3 + n.unit(S_PAY, key, 100 + i as u64))
                        .collect();
                    let total: f64 = w.iter().sum();
                    let mut left = spent;
                    for (i, wi) in w.iter().enumerate() {
                        let amount = if i + 1 == k {
                            left
                        } else {
                            (spent as f64 * wi / total).floor() as i128
                        };
                        left -= amount;
                        let month = 1 + n.pick(S_PAY, key, 200 + i as u64, &MONTH_WEIGHTS) as u32;
                        let days = cal.month_days(month);
                        let d = n.range(
                            S_PAY,
                            key,
                            300 + i as u64,
                            days.start as i64,
                            days.end as i64 - 1,
                        ) as u32;
                        let secs = n.range(S_PAY, key, 400 + i as u64, 9 * 3_600, 17 * 3_600);
                        let payee_idx = n.bits(S_PAY, key, 500 + i as u64) % payees;
                        let pk = (p.id as u64) << 8 | payee_idx;
                        let payee = format!(
                            "杭州{}{}{}",
                            PAYEE_A[(n.bits(S_PAY, pk, 1) % PAYEE_A.len() as u64) as usize],
                            PAYEE_A[(n.bits(S_PAY, pk, 2) % PAYEE_A.len() as u64) as usize],
                            PAYEE_KIND[(n.bits(S_PAY, pk, 3) % PAYEE_KIND.len() as u64) as usize]
                        );
                        let purpose = PURPOSES
                            [(n.bits(S_PAY, key, 600 + i as u64) % PURPOSES.len() as u64) as usize];
                        let id = y as i64 * 10_000_000 + p.id as i64 * 100 + i as i64 + 1;
                        rows.push((cal.micros(d, secs), id, p.id, amount, payee, purpose));
                    }
                }
                rows.sort_by_key(|r| (r.0, r.1));
                sink(batch(
                    schema,
                    vec![
                        i64s(rows.iter().map(|r| Some(r.1)).collect()),
                        i32s(rows.iter().map(|r| Some(r.2)).collect()),
                        timestamps(rows.iter().map(|r| Some(r.0)).collect()),
                        decimals(rows.iter().map(|r| Some(r.3)).collect(), 18, 2)?,
                        utf8_values(rows.iter().map(|r| r.4.as_str()).collect()),
                        utf8_values(rows.iter().map(|r| r.5).collect()),
                    ],
                )?)
            }),
        })
        .collect();
    TableDef { spec, parts }
}

/// (quantity item, unit) per department, in `DEPARTMENTS` order.
fn quantity_item(department: &str) -> (&'static str, &'static str) {
    match department {
        "environment" => ("治理项目完成数", "个"),
        "transport" => ("信号优化路口数", "个"),
        "urban_management" => ("改造完成小区数", "个"),
        "emergency" => ("应急演练场次", "次"),
        "health" => ("签约服务人数", "人"),
        "education" => ("受训学生人次", "人次"),
        "agriculture" => ("建成农田面积", "亩"),
        "science_technology" => ("上线应用场景数", "个"),
        "civil_affairs" => ("服务老人户数", "户"),
        _ => ("举办惠民活动场次", "场"),
    }
}

struct Indicator {
    level1: &'static str,
    level2: &'static str,
    name: &'static str,
    direction: &'static str,
    target: f64,
    target_high: Option<f64>,
    actual: f64,
    unit: &'static str,
    weight: f64,
}

fn program_indicators(world: &World, p: &Program, y: i32) -> Vec<Indicator> {
    let n = &world.noise;
    let key = (p.id as u64) << 16 | y as u64;
    let q = year_quality(world, p, y);
    let e = |k: u64| n.normal(S_IND, key, k);
    let rate = spent_fen(world, p, y) as f64 / budget_fen(p, y) as f64 * 100.0;
    let (item, unit) = quantity_item(p.department);
    let qty_target = n.range(S_IND, key, 1, 20, 2_000) as f64;
    let cost_target = n.range(S_IND, key, 2, 10, 500) as f64 * 100.0;
    let people_target = n.range(S_IND, key, 3, 1_000, 100_000) as f64;
    let ind =
        |level1, level2, name, direction, target, target_high, actual, unit, weight| Indicator {
            level1,
            level2,
            name,
            direction,
            target,
            target_high,
            actual,
            unit,
            weight,
        };
    let met = if q + 0.2 * e(4) > 0.25 { 1.0 } else { 0.0 };
    let mut v = vec![ind(
        "decision",
        "performance_target",
        "绩效目标明确性",
        "boolean",
        1.0,
        None,
        met,
        "是/否",
        10.0,
    )];
    v.push(ind(
        "process",
        "budget_execution",
        "预算执行率",
        "higher_better",
        100.0,
        None,
        rate,
        "%",
        10.0,
    ));
    v.push(ind(
        "output",
        "quantity",
        item,
        "higher_better",
        qty_target,
        None,
        (qty_target * (0.55 + 0.55 * q + 0.1 * e(5)).clamp(0.3, 1.4)).round(),
        unit,
        10.0,
    ));
    v.push(ind(
        "output",
        "quality",
        "验收合格率",
        "higher_better",
        95.0,
        None,
        (85.0 + 15.0 * q + 3.0 * e(6)).min(100.0),
        "%",
        10.0,
    ));
    let on_time = if q + 0.2 * e(7) > 0.35 { 1.0 } else { 0.0 };
    v.push(ind(
        "output",
        "timeliness",
        "按期完成",
        "boolean",
        1.0,
        None,
        on_time,
        "是/否",
        5.0,
    ));
    v.push(ind(
        "output",
        "cost",
        "单位成本",
        "lower_better",
        cost_target,
        None,
        (cost_target * (1.25 - 0.35 * q + 0.1 * e(8)).clamp(0.8, 1.6)).round(),
        "元",
        15.0,
    ));
    v.push(ind(
        "outcome",
        "social_benefit",
        "受益人数",
        "higher_better",
        people_target,
        None,
        (people_target * (0.6 + 0.5 * q + 0.1 * e(9)).clamp(0.3, 1.5)).round(),
        "人",
        15.0,
    ));
    v.push(ind(
        "outcome",
        "sustainability",
        "设施利用率",
        "interval",
        70.0,
        Some(90.0),
        (55.0 + 40.0 * q + 5.0 * e(10)).clamp(30.0, 100.0),
        "%",
        15.0,
    ));
    v.push(ind(
        "outcome",
        "satisfaction",
        "服务对象满意度",
        "higher_better",
        90.0,
        None,
        (75.0 + 22.0 * q + 3.0 * e(11)).clamp(50.0, 100.0),
        "%",
        10.0,
    ));
    v
}

fn indicators() -> TableDef {
    let mut spec = dataset(
        "finance.performance_indicators",
        "finance",
        Classification::Internal,
        "yearly",
        "Performance indicators of each program and year: targets, actual values and weights",
    );
    spec.sort_order = vec!["year".into(), "program_id".into()];
    spec.columns = vec![
        column("program_id", "int", "Program (finance.programs)"),
        column("year", "int", "Budget year evaluated"),
        column(
            "indicator_id",
            "int",
            "Indicator number within the program-year",
        ),
        column("level1", "text", "decision, process, output or outcome"),
        column(
            "level2",
            "text",
            "Second-level dimension (budget_execution, quantity, quality, timeliness, cost, social_benefit, sustainability, satisfaction, performance_target)",
        ),
        column("indicator_name", "text", "Indicator name"),
        column(
            "direction",
            "text",
            "higher_better, lower_better, interval or boolean",
        ),
        column(
            "target_value",
            "decimal(18,2)",
            "Target (lower bound for interval indicators; 1 for boolean)",
        ),
        column(
            "target_high",
            "decimal(18,2)",
            "Upper bound of an interval indicator, else NULL",
        ),
        column(
            "actual_value",
            "decimal(18,2)",
            "Achieved value (NULL: not reported)",
        ),
        column("unit", "text", "Unit of target and actual"),
        column(
            "weight",
            "decimal(5,2)",
            "Weight in the total score; weights of a program-year sum to 100",
        ),
    ];
    Expect {
        key: &["program_id", "year", "indicator_id"],
        time: None,
        required: &[
            "program_id",
            "year",
            "indicator_id",
            "level1",
            "level2",
            "indicator_name",
            "direction",
            "target_value",
            "unit",
            "weight",
        ],
        ranges: &[
            ("target_value", Some(0.0), None),
            ("actual_value", Some(0.0), None),
            ("weight", Some(0.0), Some(100.0)),
        ],
    }
    .apply(&mut spec);
    let parts = vec![FilePart {
        rel_path: "part-0.parquet".into(),
        write: Box::new(|world, schema, sink| {
            let fixed = |x: f64| Some((x * 100.0).round() as i128);
            let mut c: (Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>) = Default::default();
            let mut d: (Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>) = Default::default();
            for (p, y) in program_years(world) {
                for (i, ind) in program_indicators(world, p, y).into_iter().enumerate() {
                    // 1 % of values are not reported; and every tenth program has not
                    // reported its satisfaction survey for the latest year (so that
                    // evaluations with incomplete data exist at every scale)
                    let late_survey = p.id % 10 == 3
                        && y == p.last_year.min(world.cal.year)
                        && ind.level2 == "satisfaction";
                    let missing = late_survey
                        || world.noise.unit(
                            S_IND,
                            (p.id as u64) << 16 | y as u64,
                            1_000 + i as u64,
                        ) < 0.01;
                    c.0.push(Some(p.id));
                    c.1.push(Some(y));
                    c.2.push(Some(i as i32 + 1));
                    c.3.push(ind.level1);
                    c.4.push(ind.level2);
                    c.5.push(ind.name);
                    d.0.push(ind.direction);
                    d.1.push(fixed(ind.target));
                    d.2.push(ind.target_high.and_then(fixed));
                    d.3.push(if missing { None } else { fixed(ind.actual) });
                    d.4.push(Some(ind.unit));
                    d.5.push(fixed(ind.weight));
                }
            }
            sink(batch(
                schema,
                vec![
                    i32s(c.0),
                    i32s(c.1),
                    i32s(c.2),
                    utf8_values(c.3),
                    utf8_values(c.4),
                    utf8_values(c.5),
                    utf8_values(d.0),
                    decimals(d.1, 18, 2)?,
                    decimals(d.2, 18, 2)?,
                    decimals(d.3, 18, 2)?,
                    utf8(d.4),
                    decimals(d.5, 5, 2)?,
                ],
            )?)
        }),
    }];
    TableDef { spec, parts }
}
