//! `hotline.cases`: the 12345 citizen hotline.
//!
//! Model: about 500,000 cases a year at SF 1, more on working days, fewer on
//! holidays, more in summer (heat, noise, flooding). Calls come in office hours
//! with a late-morning and an afternoon peak. District follows population; the
//! category mix follows the season (environment and utilities complaints in
//! summer, utilities in the typhoon season). Each category goes to its handling
//! department (5 % passed to the district government); resolution time is
//! log-normal around the department's median. Cases still unresolved at the end
//! of the simulated year are `open` or `in_progress` with a NULL `closed_at`.
//! Three quarters of closed cases are rated 1–5, worse when slow. 30 % of callers
//! give no ID number (NULL). `caller_name`, `caller_phone` and
//! `caller_id_number` are personal information, tagged in the catalog.

use citylake_catalog::{Classification, PiiTag};

use super::{Expect, dataset, month_partition, monthly_parts};
use crate::city::{DISTRICTS, population_weights};
use crate::defects;
use crate::events::{daily_count, day_times};
use crate::people;
use crate::table::{
    TableDef, batch, column, i16s, i64s, pii_column, timestamps, utf8, utf8_values,
};
use crate::world::{HOTLINE_CASES_PER_SF, World, count};
use crate::writer::BATCH_ROWS;

const S_CASE: u64 = 0x4341_5345;

const CHANNELS: [&str; 5] = ["phone", "app", "wechat", "web", "email"];
const CHANNEL_WEIGHTS: [f64; 5] = [55.0, 20.0, 15.0, 7.0, 3.0];

/// category, handling department, median hours to resolve, complaint templates
const CATEGORIES: [(&str, &str, f64, &[&str]); 10] = [
    (
        "urban_management",
        "urban_management",
        30.0,
        &[
            "反映{road}占道经营",
            "反映{road}附近垃圾清运不及时",
            "反映{road}共享单车乱停放",
        ],
    ),
    (
        "traffic",
        "transport",
        72.0,
        &[
            "反映{road}路口信号灯配时不合理",
            "反映{road}公交班次过少",
            "反映{road}路面破损",
        ],
    ),
    (
        "environment",
        "environment",
        48.0,
        &[
            "反映{road}附近工地夜间施工噪声扰民",
            "反映{road}附近餐饮油烟扰民",
            "反映{road}附近河道异味",
        ],
    ),
    (
        "housing",
        "housing",
        120.0,
        &[
            "反映小区物业管理问题",
            "咨询老旧小区加装电梯",
            "反映房屋漏水维修",
        ],
    ),
    (
        "labour",
        "human_resources",
        96.0,
        &["反映企业拖欠工资", "咨询社保缴纳政策", "反映劳动合同纠纷"],
    ),
    (
        "market",
        "market_supervision",
        72.0,
        &[
            "投诉商家虚假宣传",
            "投诉网购商品质量问题",
            "反映预付卡退费困难",
        ],
    ),
    (
        "public_security",
        "public_security",
        24.0,
        &["反映{road}附近深夜喧哗", "反映电信诈骗线索", "咨询户籍办理"],
    ),
    (
        "utilities",
        "utilities",
        12.0,
        &[
            "反映{road}一带停水",
            "反映{road}一带停电",
            "反映燃气管道异味",
        ],
    ),
    (
        "health",
        "health",
        48.0,
        &["咨询疫苗接种", "投诉医院服务态度", "咨询医保报销"],
    ),
    (
        "education",
        "education",
        72.0,
        &["咨询入学政策", "反映校外培训退费", "反映校车安全"],
    ),
];

const HOURS: [f64; 24] = [
    0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.6, 1.5, 3.5, 5.5, 6.0, 5.0, 3.5, 4.0, 5.0, 5.2, 4.8, 4.0, 3.0,
    2.8, 2.5, 2.0, 1.2, 0.6,
];

pub fn cases(world: &World) -> TableDef {
    let mut spec = dataset(
        "hotline.cases",
        "hotline",
        Classification::Restricted,
        "daily",
        "Cases received by the 12345 citizen service hotline",
    );
    spec.sort_order = vec!["received_at".into()];
    spec.partitions = vec![month_partition()];
    // personal data: kept three years after the call
    spec.retention = Some("3 years".into());
    spec.columns = vec![
        column(
            "case_id",
            "bigint",
            "Case number: yyyymmdd × 10^7 + sequence of the day",
        ),
        column(
            "received_at",
            "timestamp",
            "When the case was received, local time (Asia/Shanghai)",
        ),
        column(
            "district",
            "text",
            "District the case concerns (common.districts)",
        ),
        column("channel", "text", "phone, app, wechat, web or email"),
        column("category", "text", "Subject category"),
        pii_column("caller_name", "text", "Caller's name", PiiTag::Name),
        pii_column(
            "caller_phone",
            "text",
            "Caller's mobile number",
            PiiTag::Phone,
        ),
        pii_column(
            "caller_id_number",
            "text",
            "Caller's resident ID number (NULL when not given)",
            PiiTag::IdNumber,
        ),
        column("description", "text", "What the caller reported"),
        column(
            "handling_department",
            "text",
            "Department the case was assigned to",
        ),
        column(
            "status",
            "text",
            "open, in_progress or closed (as of the end of the year)",
        ),
        column(
            "closed_at",
            "timestamp",
            "When the case was closed, local time (NULL while not closed)",
        ),
        column(
            "satisfaction",
            "smallint",
            "Caller's rating 1 (poor) to 5 (very satisfied); NULL when not rated",
        ),
    ];
    Expect {
        key: &["case_id"],
        time: Some("received_at"),
        required: &[
            "case_id",
            "received_at",
            "district",
            "channel",
            "category",
            "caller_name",
            "caller_phone",
            "description",
            "handling_department",
            "status",
        ],
        ranges: &[("satisfaction", Some(1.0), Some(5.0))],
    }
    .apply(&mut spec);
    TableDef {
        spec,
        parts: monthly_parts(world, write_month),
    }
}

#[derive(Default)]
struct CaseColumns {
    id: Vec<Option<i64>>,
    received: Vec<Option<i64>>,
    district: Vec<&'static str>,
    channel: Vec<&'static str>,
    category: Vec<&'static str>,
    name: Vec<String>,
    phone: Vec<String>,
    id_number: Vec<Option<String>>,
    description: Vec<String>,
    department: Vec<&'static str>,
    status: Vec<&'static str>,
    closed: Vec<Option<i64>>,
    satisfaction: Vec<Option<i16>>,
}

impl CaseColumns {
    /// Stores the last case a second time.
    fn repeat_last(&mut self) {
        fn again<T: Clone>(v: &mut Vec<T>) {
            let last = v.last().expect("a case was pushed").clone();
            v.push(last);
        }
        again(&mut self.id);
        again(&mut self.received);
        again(&mut self.district);
        again(&mut self.channel);
        again(&mut self.category);
        again(&mut self.name);
        again(&mut self.phone);
        again(&mut self.id_number);
        again(&mut self.description);
        again(&mut self.department);
        again(&mut self.status);
        again(&mut self.closed);
        again(&mut self.satisfaction);
    }

    fn finish(
        self,
        schema: &arrow::datatypes::SchemaRef,
    ) -> crate::Result<arrow::array::RecordBatch> {
        batch(
            schema,
            vec![
                i64s(self.id),
                timestamps(self.received),
                utf8_values(self.district),
                utf8_values(self.channel),
                utf8_values(self.category),
                utf8_values(self.name),
                utf8_values(self.phone),
                utf8(self.id_number),
                utf8_values(self.description),
                utf8_values(self.department),
                utf8_values(self.status),
                timestamps(self.closed),
                i16s(self.satisfaction),
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
    let per_day = count(HOTLINE_CASES_PER_SF, world.scale, 500) as f64 / cal.days() as f64;
    let weights = population_weights();
    let end = cal.end_micros();
    let mut cols = CaseColumns::default();
    for d in cal.month_days(month) {
        let doy = d as f64;
        let summer = (-((doy - 200.0) / 40.0).powi(2)).exp();
        let day_factor = if cal.is_holiday(d) {
            0.6
        } else if cal.is_workday(d) {
            1.1
        } else {
            0.8
        };
        let expected = per_day * day_factor * (0.92 + 0.2 * summer);
        let date = cal.date(d);
        let date_key = date
            .format("%Y%m%d")
            .to_string()
            .parse::<i64>()
            .expect("digits");
        let typhoon = (-((doy - 235.0) / 25.0).powi(2)).exp();
        let cat_weights = [
            14.0,
            10.0,
            8.0 + 8.0 * summer,
            9.0,
            7.0,
            9.0,
            6.0,
            5.0 + 5.0 * summer + 6.0 * typhoon,
            6.0,
            5.0,
        ];
        let times = day_times(n, S_CASE, d, daily_count(n, S_CASE, d, expected), &HOURS);
        for (seq, (secs, key)) in times.into_iter().enumerate() {
            let district = n.pick(S_CASE, key, 10, &weights);
            let (category, department, median_h, templates) =
                CATEGORIES[n.pick(S_CASE, key, 11, &cat_weights)];
            let template = templates[(n.bits(S_CASE, key, 12) % templates.len() as u64) as usize];
            let road = &world.segments
                [(n.bits(S_CASE, key, 13) % world.segments.len() as u64) as usize]
                .road_name;
            let received = cal.micros(d, secs);
            let hours = median_h * (0.8 * n.normal(S_CASE, key, 14)).exp();
            let closed_at = received + (hours * 3.6e9) as i64;
            let (status, closed, satisfaction) = if closed_at <= end {
                let rated = n.unit(S_CASE, key, 15) < 0.75;
                let mean = 4.6 - 0.35 * (1.0 + hours / median_h).ln() * 2.0;
                let score = (mean + 0.7 * n.normal(S_CASE, key, 16))
                    .round()
                    .clamp(1.0, 5.0) as i16;
                ("closed", Some(closed_at), rated.then_some(score))
            } else if end - received < 4 * 3_600_000_000 {
                ("open", None, None)
            } else {
                ("in_progress", None, None)
            };
            cols.id.push(Some(date_key * 10_000_000 + seq as i64 + 1));
            cols.received.push(Some(received));
            cols.district.push(DISTRICTS[district].name);
            cols.channel
                .push(CHANNELS[n.pick(S_CASE, key, 17, &CHANNEL_WEIGHTS)]);
            cols.category.push(category);
            cols.name.push(people::name(n, S_CASE, key));
            cols.phone.push(people::mobile(n, S_CASE, key));
            cols.id_number.push(
                (n.unit(S_CASE, key, 18) >= 0.3)
                    .then(|| people::id_number(n, S_CASE, key, &DISTRICTS[district], cal.year)),
            );
            cols.description.push(template.replace("{road}", road));
            cols.department.push(if n.unit(S_CASE, key, 19) < 0.05 {
                "district_government"
            } else {
                department
            });
            cols.status.push(status);
            cols.closed.push(closed);
            cols.satisfaction.push(satisfaction);
            if seq == 0 && defects::DUPLICATE_CASE_DAYS.contains(&d) {
                cols.repeat_last();
            }
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
