//! `citylake report performance`: the finance bureau's evaluation report.
//!
//! Every number comes from SQL over the catalog's views (`finance.program_scores`,
//! `finance.indicator_scores`), so each can be reproduced with `citylake sql`.
//! Output: `index.html` (self-contained: inline CSS and SVG, no network, a print
//! stylesheet), `scores.csv` and `scores.parquet` with the programs' scores.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use arrow::array::{Array, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use citylake_engine::Session;
use citylake_engine::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;

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
    /// Directory to write index.html, scores.csv and scores.parquet into.
    #[arg(long)]
    pub out: PathBuf,
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

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub async fn run(args: PerformanceArgs) -> anyhow::Result<ExitCode> {
    let catalog = crate::sql::resolve_catalog(args.catalog.clone())?;
    let engine = crate::sql::build_engine(&catalog, &args.engine).await?;
    let principal = crate::sql::local_principal(&args.local, &catalog)?;
    let session = engine
        .session(principal)
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
            _ if known.is_empty() => bail!(
                "no programs to evaluate in {year}: finance.programs has none for that year; no report written"
            ),
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

    eprintln!("[5/5] writing the report…");
    let page = render(
        &args,
        &bands,
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

/// A horizontal bar chart as inline SVG; values on a 0..`max` scale.
fn bar_chart(title: &str, bars: &[(String, f64, String)], max: f64, color: &str) -> String {
    let (row, label_w, chart_w) = (26.0, 190.0, 420.0);
    let height = row * bars.len() as f64 + 34.0;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{t}\" xmlns=\"http://www.w3.org/2000/svg\" \
         viewBox=\"0 0 {w} {height}\" width=\"{w}\" height=\"{height}\"><title>{t}</title>",
        t = html(title),
        w = label_w + chart_w + 170.0
    );
    for (i, (label, value, text)) in bars.iter().enumerate() {
        let y = 10.0 + row * i as f64;
        let w = if max > 0.0 {
            (value / max).clamp(0.0, 1.0) * chart_w
        } else {
            0.0
        };
        let _ = write!(
            svg,
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\" font-size=\"13\">{label}</text>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"18\" fill=\"{color}\"/>\
             <text x=\"{vx:.1}\" y=\"{ty}\" font-size=\"12\">{text}</text>",
            lx = label_w - 8.0,
            ty = y + 14.0,
            label = html(label),
            vx = label_w + w + 6.0,
            text = html(text),
        );
    }
    let axis_y = 10.0 + row * bars.len() as f64 + 4.0;
    let _ = write!(
        svg,
        "<line x1=\"{label_w}\" y1=\"{axis_y}\" x2=\"{x2}\" y2=\"{axis_y}\" stroke=\"#555\"/></svg>",
        x2 = label_w + chart_w
    );
    svg
}

fn grade_class(grade: &str) -> &'static str {
    match grade {
        "优" => "g-excellent",
        "良" => "g-good",
        "中" => "g-fair",
        _ => "g-poor",
    }
}

fn render(
    args: &PerformanceArgs,
    bands: &[String; 3],
    programs: &Table,
    summary: &Table,
    departments: &Table,
    weakest: &Table,
    indicators: &Table,
) -> anyhow::Result<String> {
    let year = args.year;
    let scope = match &args.department {
        Some(d) => format!("{year} · {}", html(d)),
        None => format!("{year} · 全部部门 all departments"),
    };
    let mut p = String::new();
    write!(
        p,
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>专项资金绩效评价报告 Performance evaluation {scope}</title><style>{CSS}</style></head><body>\
         <header><h1>专项资金绩效评价报告<br><small>Special-fund performance evaluation report</small></h1>\
         <p class=\"scope\">{scope}</p><p class=\"note\">依据 财预〔2020〕10号 · Scores from <code>finance.program_scores</code>; \
         every figure can be reproduced with SQL (see the README).</p></header>"
    )?;

    // summary
    let s = |c: &str| summary.get(0, c).to_string();
    write!(
        p,
        "<section id=\"summary\"><h2>概况 Summary</h2><div class=\"cards\">\
         <div class=\"card\"><b>{}</b><span>评价项目 programs evaluated</span></div>\
         <div class=\"card\"><b>{}</b><span>预算 budget (元 yuan)</span></div>\
         <div class=\"card\"><b>{}</b><span>支出 spent (元 yuan)</span></div>\
         <div class=\"card\"><b>{}</b><span>预算执行率 budget execution</span></div>\
         <div class=\"card\"><b>{}</b><span>平均得分 mean score</span></div></div>\
         <table class=\"grades\"><tr><th>等级 grade</th><th class=\"g-excellent\">优 excellent (≥ {b0})</th>\
         <th class=\"g-good\">良 good (≥ {b1})</th><th class=\"g-fair\">中 fair (≥ {b2})</th><th class=\"g-poor\">差 poor</th></tr>\
         <tr><td>项目数 programs</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>\
         <p>数据不完整 incomplete data: <b>{}</b> programs · 超额完成待复核 over-completed indicators to review: <b>{}</b></p></section>",
        s("programs"),
        s("budget"),
        s("spent"),
        pct(summary.num(0, "rate")),
        s("mean_score"),
        s("excellent"),
        s("good"),
        s("fair"),
        s("poor"),
        s("incomplete"),
        s("over_completed"),
        b0 = bands[0],
        b1 = bands[1],
        b2 = bands[2],
    )?;

    // charts
    let scores: Vec<_> = (0..departments.rows.len())
        .map(|i| {
            (
                departments.get(i, "department").to_string(),
                departments.num(i, "mean_score"),
                format!(
                    "{} ({} programs)",
                    departments.get(i, "mean_score"),
                    departments.get(i, "programs")
                ),
            )
        })
        .collect();
    let rates: Vec<_> = (0..departments.rows.len())
        .map(|i| {
            let r = departments.num(i, "rate");
            (departments.get(i, "department").to_string(), r, pct(r))
        })
        .collect();
    let max_rate = rates.iter().map(|r| r.1).fold(1.0, f64::max);
    write!(
        p,
        "<section id=\"charts\"><h2>部门得分 Scores by department</h2>{}\
         <h2>预算执行 Budget execution by department</h2>{}</section>",
        bar_chart("Mean total score by department", &scores, 100.0, "#2b6cb0"),
        bar_chart(
            "Budget execution rate by department",
            &rates,
            max_rate,
            "#2f855a"
        ),
    )?;

    // weakest indicators
    p.push_str(
        "<section id=\"weakest\"><h2>薄弱指标 Weakest indicators</h2>\
         <table><tr><th>一级 level 1</th><th>二级 level 2</th><th>指标数 indicators</th>\
         <th>得分率 % of full marks</th><th>缺失 missing</th></tr>",
    );
    for i in 0..weakest.rows.len() {
        write!(
            p,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html(weakest.get(i, "level1")),
            html(weakest.get(i, "level2")),
            weakest.get(i, "n"),
            weakest.get(i, "pct_of_full_marks"),
            weakest.get(i, "missing")
        )?;
    }
    p.push_str("</table></section>");

    // every program
    p.push_str(
        "<section id=\"programs\"><h2>项目得分 Program scores</h2><table class=\"programs\">\
         <tr><th>项目 program</th><th>部门 department</th><th>决策 decision</th><th>过程 process</th>\
         <th>产出 output</th><th>效益 outcome</th><th>总分 total</th><th>等级 grade</th>\
         <th>执行率 execution</th><th>备注 notes</th></tr>",
    );
    for i in 0..programs.rows.len() {
        let g = programs.get(i, "grade");
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
        write!(
            p,
            "<tr><td><a href=\"#p{id}\">{id} {name}</a></td><td>{dept}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td><b>{}</b></td><td class=\"{cls}\">{g} {}</td><td>{}</td><td>{}</td></tr>",
            or_dash(programs.get(i, "decision_score")),
            or_dash(programs.get(i, "process_score")),
            or_dash(programs.get(i, "output_score")),
            or_dash(programs.get(i, "outcome_score")),
            programs.get(i, "total_score"),
            programs.get(i, "grade_en"),
            pct(programs.num(i, "budget_execution_rate")),
            html(&notes.join("; ")),
            id = programs.get(i, "program_id"),
            name = html(programs.get(i, "program_name")),
            dept = html(programs.get(i, "department")),
            cls = grade_class(g),
        )?;
    }
    p.push_str("</table></section>");

    // per-program detail
    p.push_str("<section id=\"details\"><h2>项目明细 Program details</h2>");
    for i in 0..programs.rows.len() {
        let id = programs.get(i, "program_id");
        write!(
            p,
            "<article id=\"p{id}\" class=\"program\"><h3>{id} {name} <span class=\"{cls}\">{g} {}</span></h3>\
             <p>部门 {dept} · 预算 budget {} · 支出 spent {} · 执行率 execution {} · 总分 total <b>{}</b></p>\
             <table><tr><th>一级</th><th>二级</th><th>指标 indicator</th><th>方向 direction</th><th>目标 target</th>\
             <th>实际 actual</th><th>单位 unit</th><th>权重 weight</th><th>得分 score</th></tr>",
            programs.get(i, "grade_en"),
            programs.get(i, "budget_amount"),
            programs.get(i, "spent"),
            pct(programs.num(i, "budget_execution_rate")),
            programs.get(i, "total_score"),
            name = html(programs.get(i, "program_name")),
            dept = html(programs.get(i, "department")),
            g = programs.get(i, "grade"),
            cls = grade_class(programs.get(i, "grade")),
        )?;
        for k in (0..indicators.rows.len()).filter(|&k| indicators.get(k, "program_id") == id) {
            let target = match indicators.get(k, "target_high") {
                "" => indicators.get(k, "target_value").to_string(),
                high => format!("{}–{high}", indicators.get(k, "target_value")),
            };
            let flag = if indicators.get(k, "over_completed") == "true" {
                " ⚑"
            } else {
                ""
            };
            write!(
                p,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{flag}</td></tr>",
                html(indicators.get(k, "level1")),
                html(indicators.get(k, "level2")),
                html(indicators.get(k, "indicator_name")),
                html(indicators.get(k, "direction")),
                html(&target),
                or_missing(indicators.get(k, "actual_value")),
                html(indicators.get(k, "unit")),
                indicators.get(k, "weight"),
                or_missing(indicators.get(k, "score")),
            )?;
        }
        p.push_str("</table></article>");
    }
    p.push_str("</section><footer>citylake · generated from the catalog's views; ⚑ over-completed, to review</footer></body></html>\n");
    Ok(p)
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

const CSS: &str = "body{font-family:'Noto Sans CJK SC','PingFang SC','Microsoft YaHei',sans-serif;margin:2em;color:#1a202c}\
h1 small{font-size:.55em;color:#4a5568}h2{border-bottom:2px solid #2b6cb0;padding-bottom:.2em;margin-top:1.6em}\
.scope{font-size:1.2em}.note{color:#4a5568;font-size:.9em}.cards{display:flex;flex-wrap:wrap;gap:1em}\
.card{border:1px solid #cbd5e0;border-radius:6px;padding:.8em 1.2em;min-width:10em}.card b{display:block;font-size:1.4em}\
.card span{color:#4a5568;font-size:.85em}table{border-collapse:collapse;margin:.8em 0;font-size:.9em}\
th,td{border:1px solid #cbd5e0;padding:.3em .6em;text-align:left}th{background:#edf2f7}\
.g-excellent{background:#c6f6d5}.g-good{background:#bee3f8}.g-fair{background:#fefcbf}.g-poor{background:#fed7d7}\
.program{margin-top:1.2em}.chart{max-width:100%;height:auto}footer{margin-top:2em;color:#718096;font-size:.8em}\
@media print{body{margin:1cm}section{page-break-before:always}section#summary{page-break-before:avoid}\
.program{page-break-inside:avoid}a{color:inherit;text-decoration:none}}";
