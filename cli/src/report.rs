//! `citylake report performance`: the finance bureau's evaluation report.
//!
//! Every number comes from SQL over the catalog's views (`finance.program_scores`,
//! `finance.indicator_scores`), so each can be reproduced with `citylake sql`.
//! Output: `index.html` (self-contained: inline CSS and SVG, no network, a print
//! stylesheet), `scores.csv` and `scores.parquet` with the programs' scores for
//! machines, and `scores.xlsx` for a spreadsheet (numbers as numbers, with
//! formats: money grouped by thousands, scores with two decimals, rates as %).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use arrow::array::{Array, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use citylake_engine::Session;
use citylake_engine::catalog::spec::{Labels, MoneyUnit, thousands};
use citylake_engine::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::args::{EngineArgs, Format};

/// Arguments of `citylake report performance`.
#[derive(Debug, clap::Args)]
pub struct PerformanceArgs {
    /// Budget year to evaluate.
    #[arg(long)]
    pub year: i32,
    /// Only this department's programs.
    #[arg(long)]
    pub department: Option<String>,
    /// Catalog file. Default: ./data/lake/catalog.toml, generated (scale 0.1) when absent.
    #[arg(long, env = "CITYLAKE_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Directory to write index.html, scores.csv, scores.parquet and scores.xlsx into.
    #[arg(long)]
    pub out: PathBuf,
    /// Evaluate the data as it was: the versions of the Delta datasets a
    /// report is stamped with (`finance.expenditures=3,hotline.cases=1`), or a
    /// time (`2026-03-01 00:00:00`, UTC). Default: the latest versions, read
    /// once at the start (every number of the report comes from them).
    #[arg(long)]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub local: crate::args::LocalUser,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// A query result as display strings, by column name.
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    /// The result itself, for writing it out as CSV and Parquet.
    schema: arrow::datatypes::SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Table {
    fn get(&self, row: usize, column: &str) -> &str {
        let i = self
            .columns
            .iter()
            .position(|c| c == column)
            .unwrap_or_else(|| panic!("report query has no column {column}"));
        self.rows[row][i].as_deref().unwrap_or("")
    }

    fn num(&self, row: usize, column: &str) -> f64 {
        self.get(row, column).parse().unwrap_or(0.0)
    }
}

async fn query(session: &Session, sql: &str) -> anyhow::Result<Table> {
    let stream = session.sql(sql).await?;
    let schema = stream.schema();
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let options = FormatOptions::default();
    let mut rows = vec![];
    for batch in &batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| c.is_valid(r).then(|| f.value(r).to_string()))
                    .collect(),
            );
        }
    }
    Ok(Table {
        columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        rows,
        schema,
        batches,
    })
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub async fn run(args: PerformanceArgs) -> anyhow::Result<ExitCode> {
    let catalog = crate::sql::resolve_catalog(args.catalog.clone())?;
    let engine = crate::sql::build_engine(&catalog, &args.engine).await?;
    let principal = crate::sql::local_principal(&args.local, &catalog)?;
    // the Delta datasets' versions are settled first and every query reads
    // those: a delivery during the report changes nothing in it
    let versions = data_versions(&engine, args.as_of.as_deref()).await?;
    let session = engine
        .session_pinned(principal, &versions)?
        .with_client(crate::sql::LOCAL_CLIENT);
    let year = args.year;
    let mut filter = format!("year = {year}");
    if let Some(d) = &args.department {
        write!(filter, " AND department = {}", sql_text(d))?;
    }

    eprintln!("[1/5] evaluating the programs of {year}…");
    let programs = query(
        &session,
        &format!(
            "SELECT * FROM finance.program_scores WHERE {filter} ORDER BY department, program_id"
        ),
    )
    .await?;
    if programs.rows.is_empty() {
        let known = query(
            &session,
            &format!(
                "SELECT DISTINCT department FROM finance.programs WHERE year = {year} ORDER BY 1"
            ),
        )
        .await?;
        let known: Vec<&str> = (0..known.rows.len())
            .map(|i| known.get(i, "department"))
            .collect();
        match &args.department {
            _ if known.is_empty() => {
                let years = query(
                    &session,
                    "SELECT DISTINCT CAST(year AS VARCHAR) AS year FROM finance.programs ORDER BY 1",
                )
                .await?;
                let years: Vec<&str> = (0..years.rows.len())
                    .map(|i| years.get(i, "year"))
                    .collect();
                bail!(
                    "no programs to evaluate in {year}: finance.programs has none for that year \
                     (years with programs: {}); no report written",
                    if years.is_empty() {
                        "none".to_string()
                    } else {
                        years.join(", ")
                    }
                )
            }
            Some(d) => bail!(
                "unknown department '{d}' for {year}; departments with programs that year: {}; no report written",
                known.join(", ")
            ),
            None => bail!("no programs to evaluate in {year}; no report written"),
        }
    }

    eprintln!("[2/5] summarising…");
    let summary = query(
        &session,
        &format!(
            "SELECT count(*) AS programs, sum(budget_amount) AS budget, sum(spent) AS spent, \
                    budget_execution_rate(sum(spent), sum(budget_amount)) AS rate, \
                    round(avg(total_score), 2) AS mean_score, \
                    count(*) FILTER (WHERE grade = '优') AS excellent, count(*) FILTER (WHERE grade = '良') AS good, \
                    count(*) FILTER (WHERE grade = '中') AS fair, count(*) FILTER (WHERE grade = '差') AS poor, \
                    count(*) FILTER (WHERE incomplete) AS incomplete, \
                    sum(over_completed_indicators) AS over_completed \
             FROM finance.program_scores WHERE {filter}"
        ),
    )
    .await?;
    let options = session.evaluation_options();
    let bands = [
        options.grade_excellent,
        options.grade_good,
        options.grade_fair,
    ]
    .map(|b| b.to_string());
    let departments = query(
        &session,
        &format!(
            "SELECT department, count(*) AS programs, round(avg(total_score), 2) AS mean_score, \
                    budget_execution_rate(sum(spent), sum(budget_amount)) AS rate \
             FROM finance.program_scores WHERE {filter} GROUP BY department ORDER BY mean_score DESC, department"
        ),
    )
    .await?;

    eprintln!("[3/5] scoring the indicators…");
    let indicator_filter = filter
        .replace("year =", "s.year =")
        .replace("department =", "p.department =");
    let weakest = query(
        &session,
        &format!(
            "SELECT s.level1, s.level2, count(*) AS n, \
                    round(100 * avg(coalesce(s.score, 0) / s.weight), 1) AS pct_of_full_marks, \
                    count(*) FILTER (WHERE s.missing) AS missing \
             FROM finance.indicator_scores s JOIN finance.programs p USING (program_id, year) \
             WHERE {indicator_filter} AND s.weight > 0 \
             GROUP BY 1, 2 ORDER BY pct_of_full_marks, s.level2 LIMIT 5"
        ),
    )
    .await?;
    let indicators = query(
        &session,
        &format!(
            "SELECT s.* FROM finance.indicator_scores s JOIN finance.programs p USING (program_id, year) \
             WHERE {indicator_filter} ORDER BY s.program_id, s.indicator_id"
        ),
    )
    .await?;

    eprintln!("[4/5] writing the scores…");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    // the versions read, beside the files (CSV has no place for them) and in
    // the Parquet file's metadata
    let stamp = versions_text(&versions);
    if !versions.is_empty() {
        let path = args.out.join("versions.json");
        let json = serde_json::to_string_pretty(&versions)?;
        std::fs::write(&path, json + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let metadata: std::collections::HashMap<String, String> = if versions.is_empty() {
        Default::default()
    } else {
        [("citylake.dataset_versions".to_string(), stamp.clone())].into()
    };
    let schema = std::sync::Arc::new(programs.schema.as_ref().clone().with_metadata(metadata));
    let programs = Table {
        batches: programs
            .batches
            .iter()
            .map(|b| b.clone().with_schema(schema.clone()))
            .collect::<Result<_, _>>()?,
        schema,
        ..programs
    };
    // the programs' rows as queried above, written out as they are
    for (format, file) in [
        (Format::Csv, "scores.csv"),
        (Format::Parquet, "scores.parquet"),
    ] {
        let path = args.out.join(file);
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        let stream = RecordBatchStreamAdapter::new(
            programs.schema.clone(),
            futures::stream::iter(programs.batches.clone().into_iter().map(Ok)),
        );
        crate::output::write_stream(Box::pin(stream), format, &mut out).await?;
        std::io::Write::flush(&mut out)?;
    }

    let xlsx = args.out.join("scores.xlsx");
    write_xlsx(&programs, &xlsx).with_context(|| format!("writing {}", xlsx.display()))?;

    eprintln!("[5/5] writing the report…");
    let money = engine
        .catalog()
        .spec()
        .evaluation
        .as_ref()
        .and_then(|e| e.money_unit)
        .unwrap_or_default();
    let labels = engine
        .catalog()
        .spec()
        .evaluation
        .as_ref()
        .map(|e| e.labels.clone())
        .unwrap_or_default();
    let page = render(
        &args,
        &Settings {
            bands,
            money,
            labels,
            versions: stamp,
        },
        &programs,
        &summary,
        &departments,
        &weakest,
        &indicators,
    )?;
    let index = args.out.join("index.html");
    std::fs::write(&index, page).with_context(|| format!("writing {}", index.display()))?;
    println!("{}", index.display());
    Ok(ExitCode::SUCCESS)
}

/// The Delta datasets' versions a report reads: as `--as-of` names them, at
/// a time, or the latest now.
async fn data_versions(
    engine: &citylake_engine::Engine,
    as_of: Option<&str>,
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    use citylake_engine::catalog::delta::AsOf;
    let Some(text) = as_of else {
        return Ok(engine.delta_versions(AsOf::Latest).await?);
    };
    if text.contains('=') {
        let mut versions = engine.delta_versions(AsOf::Latest).await?;
        let mut named = std::collections::BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, version) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--as-of: `{pair}` is not dataset=version"))?;
            let version: u64 = version.trim().parse().map_err(|_| {
                anyhow::anyhow!("--as-of: `{version}` of `{name}` is not a version number")
            })?;
            if !versions.contains_key(name.trim()) {
                bail!("--as-of: `{name}` is not a Delta dataset of the catalog");
            }
            named.insert(name.trim().to_string(), version);
        }
        for name in versions.keys() {
            if !named.contains_key(name) {
                eprintln!("note: --as-of names no version of {name}: its latest is read");
            }
        }
        versions.extend(named);
        return Ok(versions);
    }
    let when = crate::tables::parse_now(text).map_err(|_| {
        anyhow::anyhow!("--as-of `{text}`: expected dataset=version,… or YYYY-MM-DD[ HH:MM:SS]")
    })?;
    Ok(engine
        .delta_versions(AsOf::Timestamp(when.and_utc().timestamp_millis()))
        .await?)
}

/// `finance.expenditures=3,hotline.cases=1`: what `--as-of` takes back.
fn versions_text(versions: &std::collections::BTreeMap<String, u64>) -> String {
    versions
        .iter()
        .map(|(name, v)| format!("{name}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A horizontal bar chart as inline SVG; values on a 0..`max` scale. (SVG
/// elements are closed explicitly: in HTML, an unclosed `<rect>` in SVG would
/// take the elements after it as its children.)
fn bar_chart(title: &str, bars: &[(Named, f64, String)], max: f64, color: &str) -> Markup {
    let (row, label_w, chart_w) = (26.0, 190.0, 420.0);
    let height = row * bars.len() as f64 + 34.0;
    let width = label_w + chart_w + 170.0;
    let axis_y = 10.0 + row * bars.len() as f64 + 4.0;
    html! {
        svg class="chart" role="img" aria-label=(title) xmlns="http://www.w3.org/2000/svg"
            viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height) {
            title { (title) }
            @for (i, (label, value, text)) in bars.iter().enumerate() {
                @let y = 10.0 + row * i as f64;
                @let w = if max > 0.0 { (value / max).clamp(0.0, 1.0) * chart_w } else { 0.0 };
                text x=(label_w - 8.0) y=(y + 14.0) text-anchor="end" font-size="13" {
                    @if let Some(code) = &label.code { title { (code) } }
                    (label.shown)
                }
                rect x=(label_w) y=(y) width=(format!("{w:.1}")) height="18" fill=(color) {}
                text x=(format!("{:.1}", label_w + w + 6.0)) y=(y + 14.0) font-size="12" { (text) }
            }
            line x1=(label_w) y1=(axis_y) x2=(label_w + chart_w) y2=(axis_y) stroke="#555" {}
        }
    }
}

/// "program" for one, "programs" otherwise.
fn programs_word(count: &str) -> &'static str {
    if count == "1" { "program" } else { "programs" }
}

fn grade_class(grade: &str) -> &'static str {
    match grade {
        "优" => "g-excellent",
        "良" => "g-good",
        "中" => "g-fair",
        _ => "g-poor",
    }
}

/// The `[evaluation]` settings the page shows: grade bands, money's unit and
/// the readers' names of the data's codes.
struct Settings {
    bands: [String; 3],
    money: MoneyUnit,
    labels: Labels,
    /// The Delta datasets' versions read (`name=version,…`; empty: none).
    versions: String,
}

/// A code as the reader sees it: its name from `[evaluation.labels]`, with the
/// code kept for a tooltip; the code itself when it has no name.
struct Named {
    shown: String,
    code: Option<String>,
}

impl Named {
    fn new(names: &std::collections::BTreeMap<String, String>, code: &str) -> Self {
        match names.get(code) {
            Some(name) => Self {
                shown: name.clone(),
                code: Some(code.to_string()),
            },
            None => Self {
                shown: code.to_string(),
                code: None,
            },
        }
    }
}

impl maud::Render for Named {
    fn render(&self) -> Markup {
        html! {
            @match &self.code {
                Some(code) => span.code title=(code) { (self.shown) },
                None => (self.shown),
            }
        }
    }
}

/// The report page. Every value is escaped by the template (maud); only the
/// stylesheet, a constant, goes in as it is.
fn render(
    args: &PerformanceArgs,
    settings: &Settings,
    programs: &Table,
    summary: &Table,
    departments: &Table,
    weakest: &Table,
    indicators: &Table,
) -> anyhow::Result<String> {
    let (bands, money) = (&settings.bands, settings.money);
    let labels = &settings.labels;
    let department = |code: &str| Named::new(&labels.department, code);
    let level1 = |code: &str| Named::new(&labels.level1, code);
    let level2 = |code: &str| Named::new(&labels.level2, code);
    let year = args.year;
    let scope = match &args.department {
        Some(d) => match department(d).code {
            Some(_) => format!("{year} · {} {d}", department(d).shown),
            None => format!("{year} · {d}"),
        },
        None => format!("{year} · 全部部门 all departments"),
    };
    let s = |c: &str| summary.get(0, c).to_string();
    let scores: Vec<_> = (0..departments.rows.len())
        .map(|i| {
            (
                department(departments.get(i, "department")),
                departments.num(i, "mean_score"),
                format!(
                    "{} ({} {})",
                    score(departments.get(i, "mean_score")),
                    departments.get(i, "programs"),
                    programs_word(departments.get(i, "programs"))
                ),
            )
        })
        .collect();
    let rates: Vec<_> = (0..departments.rows.len())
        .map(|i| {
            let r = departments.num(i, "rate");
            (department(departments.get(i, "department")), r, pct(r))
        })
        .collect();
    let max_rate = rates.iter().map(|r| r.1).fold(1.0, f64::max);
    let notes = |i: usize| {
        let mut notes = vec![];
        if programs.get(i, "incomplete") == "true" {
            notes.push(format!(
                "数据不完整 incomplete ({} missing)",
                programs.get(i, "missing_indicators")
            ));
        }
        if programs.num(i, "over_completed_indicators") > 0.0 {
            notes.push(format!(
                "超额完成待复核 {} to review",
                programs.get(i, "over_completed_indicators")
            ));
        }
        notes.join("; ")
    };
    // a boolean indicator is met or not; a count or amount is grouped by thousands
    let boolean = |k: usize| indicators.get(k, "direction") == "boolean";
    let target = |k: usize| match indicators.get(k, "target_high") {
        _ if boolean(k) => "达成 met".to_string(),
        "" => figure(indicators.get(k, "target_value")),
        high => format!(
            "{}–{}",
            figure(indicators.get(k, "target_value")),
            figure(high)
        ),
    };
    let actual = |k: usize| match indicators.get(k, "actual_value") {
        "" => String::new(),
        v if boolean(k) => match v.parse::<f64>() {
            Ok(x) if x != 0.0 => "达成 met".to_string(),
            _ => "未达成 not met".to_string(),
        },
        v => figure(v),
    };
    let page = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "专项资金绩效评价报告 Performance evaluation " (scope) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { "专项资金绩效评价报告" br; small { "Special-fund performance evaluation report" } }
                    p.scope { (scope) }
                    p.note {
                        "依据 财预〔2020〕10号 · Scores from " code { "finance.program_scores" }
                        "; every figure can be reproduced with SQL (see the README)."
                    }
                }
                section #summary {
                    h2 { "概况 Summary" }
                    div.cards {
                        div.card { b { (s("programs")) } span { "评价项目 programs evaluated" } }
                        div.card { b { (money.format(summary.num(0, "budget"))) } span { "预算 budget (" (money.label()) ")" } }
                        div.card { b { (money.format(summary.num(0, "spent"))) } span { "支出 spent (" (money.label()) ")" } }
                        div.card { b { (pct(summary.num(0, "rate"))) } span { "预算执行率 budget execution" } }
                        div.card { b { (score(&s("mean_score"))) } span { "平均得分 mean score" } }
                    }
                    table.grades {
                        tr {
                            th { "等级 grade" }
                            th.g-excellent { "优 excellent (≥ " (bands[0]) ")" }
                            th.g-good { "良 good (≥ " (bands[1]) ")" }
                            th.g-fair { "中 fair (≥ " (bands[2]) ")" }
                            th.g-poor { "差 poor" }
                        }
                        tr {
                            td { "项目数 programs" }
                            td { (s("excellent")) } td { (s("good")) } td { (s("fair")) } td { (s("poor")) }
                        }
                    }
                    p {
                        "数据不完整 incomplete data: " b { (s("incomplete")) }
                        " " (programs_word(&s("incomplete"))) " · 超额完成待复核 over-completed indicators to review: "
                        b { (s("over_completed")) }
                    }
                }
                section #charts {
                    h2 { "部门得分 Scores by department" }
                    (bar_chart("Mean total score by department", &scores, 100.0, "#2b6cb0"))
                    h2 { "预算执行 Budget execution by department" }
                    (bar_chart("Budget execution rate by department", &rates, max_rate, "#2f855a"))
                }
                section #weakest {
                    h2 { "薄弱指标 Weakest indicators" }
                    table {
                        tr {
                            th { "一级 level 1" } th { "二级 level 2" } th { "指标数 indicators" }
                            th { "得分率 % of full marks" } th { "缺失 missing" }
                        }
                        @for i in 0..weakest.rows.len() {
                            tr {
                                td { (level1(weakest.get(i, "level1"))) }
                                td { (level2(weakest.get(i, "level2"))) }
                                td { (weakest.get(i, "n")) }
                                td { (weakest.get(i, "pct_of_full_marks")) }
                                td { (weakest.get(i, "missing")) }
                            }
                        }
                    }
                }
                section #programs {
                    h2 { "项目得分 Program scores" }
                    table.programs {
                        tr {
                            th { "项目 program" } th { "部门 department" } th { "决策 decision" }
                            th { "过程 process" } th { "产出 output" } th { "效益 outcome" }
                            th { "总分 total" } th { "等级 grade" } th { "执行率 execution" } th { "备注 notes" }
                        }
                        @for i in 0..programs.rows.len() {
                            @let id = programs.get(i, "program_id");
                            @let grade = programs.get(i, "grade");
                            tr {
                                td { a href=(format!("#p{id}")) { (id) " " (programs.get(i, "program_name")) } }
                                td { (department(programs.get(i, "department"))) }
                                td { (or_dash(&score(programs.get(i, "decision_score")))) }
                                td { (or_dash(&score(programs.get(i, "process_score")))) }
                                td { (or_dash(&score(programs.get(i, "output_score")))) }
                                td { (or_dash(&score(programs.get(i, "outcome_score")))) }
                                td { b { (score(programs.get(i, "total_score"))) } }
                                td class=(grade_class(grade)) { (grade) " " (programs.get(i, "grade_en")) }
                                td { (pct(programs.num(i, "budget_execution_rate"))) }
                                td { (notes(i)) }
                            }
                        }
                    }
                }
                section #details {
                    h2 { "项目明细 Program details" }
                    @for i in 0..programs.rows.len() {
                        @let id = programs.get(i, "program_id");
                        @let grade = programs.get(i, "grade");
                        article.program id=(format!("p{id}")) {
                            h3 {
                                (id) " " (programs.get(i, "program_name")) " "
                                span class=(grade_class(grade)) { (grade) " " (programs.get(i, "grade_en")) }
                            }
                            p {
                                "部门 " (department(programs.get(i, "department")))
                                " · 预算 budget " (money.format(programs.num(i, "budget_amount"))) " " (money.label())
                                " · 支出 spent " (money.format(programs.num(i, "spent"))) " " (money.label())
                                " · 执行率 execution " (pct(programs.num(i, "budget_execution_rate")))
                                " · 总分 total " b { (score(programs.get(i, "total_score"))) }
                            }
                            table {
                                tr {
                                    th { "一级" } th { "二级" } th { "指标 indicator" } th { "方向 direction" }
                                    th { "目标 target" } th { "实际 actual" } th { "单位 unit" }
                                    th { "权重 weight" } th { "得分 score" }
                                }
                                @for k in (0..indicators.rows.len()).filter(|&k| indicators.get(k, "program_id") == id) {
                                    tr {
                                        td { (level1(indicators.get(k, "level1"))) }
                                        td { (level2(indicators.get(k, "level2"))) }
                                        td { (indicators.get(k, "indicator_name")) }
                                        td { (indicators.get(k, "direction")) }
                                        td { (target(k)) }
                                        td { (or_missing(&actual(k))) }
                                        td { (indicators.get(k, "unit")) }
                                        td { (indicators.get(k, "weight")) }
                                        td {
                                            (or_missing(&score(indicators.get(k, "score"))))
                                            @if indicators.get(k, "over_completed") == "true" { " ⚑" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                footer {
                    "citylake · generated from the catalog's views; ⚑ over-completed, to review"
                    @if !settings.versions.is_empty() {
                        br;
                        "数据版本 data versions: " code.versions { (settings.versions) }
                        " — re-run with " code { "--as-of '" (settings.versions) "'" }
                    }
                }
            }
        }
    };
    Ok(page.into_string() + "\n")
}

/// The programs' rows as a worksheet: a frozen header, numbers as numbers
/// with the format their column calls for, text (Chinese included) as text.
fn write_xlsx(programs: &Table, path: &std::path::Path) -> anyhow::Result<()> {
    use rust_xlsxwriter::{Format as Cell, Workbook};
    let money = Cell::new().set_num_format("#,##0.00");
    let score = Cell::new().set_num_format("0.00");
    let rate = Cell::new().set_num_format("0.0%");
    let header = Cell::new().set_bold();
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("scores")?;
    for (c, field) in programs.schema.fields().iter().enumerate() {
        let c = u16::try_from(c)?;
        sheet.write_string_with_format(0, c, field.name(), &header)?;
        let numeric = field.data_type().is_numeric();
        let format = match field.name().as_str() {
            "budget_amount" | "spent" => Some(&money),
            "budget_execution_rate" => Some(&rate),
            n if n.ends_with("_score") => Some(&score),
            _ => None,
        };
        for (r, row) in programs.rows.iter().enumerate() {
            let r = u32::try_from(r + 1)?;
            let Some(value) = row[usize::from(c)].as_deref() else {
                continue;
            };
            match (numeric, value.parse::<f64>()) {
                (true, Ok(v)) => match format {
                    Some(f) => sheet.write_number_with_format(r, c, v, f)?,
                    None => sheet.write_number(r, c, v)?,
                },
                _ if field.data_type() == &arrow::datatypes::DataType::Boolean => {
                    sheet.write_boolean(r, c, value == "true")?
                }
                _ => sheet.write_string(r, c, value)?,
            };
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofit();
    workbook.save(path)?;
    Ok(())
}

/// A score with two decimals (empty stays empty).
fn score(value: &str) -> String {
    match value.parse::<f64>() {
        Ok(v) => format!("{v:.2}"),
        Err(_) => value.to_string(),
    }
}

/// A figure as the data gives it, grouped by thousands (`9717` → `9,717`,
/// `1234.5` → `1,234.5`).
fn figure(value: &str) -> String {
    match value.parse::<f64>() {
        Ok(v) => {
            let decimals = value
                .split_once('.')
                .map_or(0, |(_, f)| f.trim_end_matches('0').len());
            thousands(v, decimals.min(4))
        }
        Err(_) => value.to_string(),
    }
}

fn pct(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "—" } else { s }
}

fn or_missing(s: &str) -> &str {
    if s.is_empty() { "缺失 missing" } else { s }
}

const CSS: &str = "body{font-family:'Noto Sans CJK SC','Noto Sans SC','Source Han Sans SC','WenQuanYi Zen Hei','PingFang SC','Microsoft YaHei',sans-serif;margin:2em;color:#1a202c}\
h1 small{font-size:.55em;color:#4a5568}h2{border-bottom:2px solid #2b6cb0;padding-bottom:.2em;margin-top:1.6em}\
.scope{font-size:1.2em}.note{color:#4a5568;font-size:.9em}.cards{display:flex;flex-wrap:wrap;gap:1em}\
.card{border:1px solid #cbd5e0;border-radius:6px;padding:.8em 1.2em;min-width:10em}.card b{display:block;font-size:1.4em}\
.card span{color:#4a5568;font-size:.85em}table{border-collapse:collapse;margin:.8em 0;font-size:.9em}\
th,td{border:1px solid #cbd5e0;padding:.3em .6em;text-align:left}th{background:#edf2f7}span.code{text-decoration:underline dotted #a0aec0;cursor:help}\
.g-excellent{background:#c6f6d5}.g-good{background:#bee3f8}.g-fair{background:#fefcbf}.g-poor{background:#fed7d7}\
.program{margin-top:1.2em}.chart{max-width:100%;height:auto}footer{margin-top:2em;color:#718096;font-size:.8em}\
@media print{body{margin:1cm}section{page-break-before:always}section#summary{page-break-before:avoid}\
.program{page-break-inside:avoid}a{color:inherit;text-decoration:none}}";
