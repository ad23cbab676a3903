//! End-to-end tests of the `citylake` binary: generate, sql, formats, errors, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn citylake() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_citylake"));
    cmd.env_remove("CITYLAKE_CATALOG");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run citylake")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// One SF 0.01 lake shared by the tests of this binary.
fn lake() -> &'static Path {
    static LAKE: OnceLock<PathBuf> = OnceLock::new();
    LAKE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let o = run(citylake()
            .args(["generate", "--scale", "0.01", "--out"])
            .arg(&dir));
        assert!(o.status.success(), "generate failed: {}", stderr(&o));
        dir
    })
}

fn sql(args: &[&str]) -> Output {
    run(citylake()
        .arg("sql")
        .arg("--catalog")
        .arg(lake().join("catalog.toml"))
        .args(args))
}

#[test]
fn generate_prints_a_summary_and_refuses_to_overwrite() {
    let dir = lake();
    assert!(dir.join("catalog.toml").exists());
    assert!(
        dir.join("traffic/segment_speed/dt=2025-06-01/part-0.parquet")
            .exists()
    );
    // a second run into the same directory refuses without --force
    let o = run(citylake()
        .args(["generate", "--scale", "0.01", "--out"])
        .arg(dir));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
}

#[test]
fn generate_rejects_a_bad_scale() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(citylake()
        .args(["generate", "--scale=-1", "--out"])
        .arg(dir.path()));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("scale must be"), "{}", stderr(&o));
}

#[test]
fn count_in_table_format() {
    let o = sql(&["-c", "SELECT count(*) AS n FROM traffic.segment_speed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 13 segments × 288 intervals × 365 days, less the planted outage (13 × 192)
    assert!(stdout(&o).contains("| 1364064 |"), "{}", stdout(&o));
}

#[test]
fn text_formats() {
    let q = "SELECT district, population FROM common.districts ORDER BY admin_code LIMIT 2";
    let csv = sql(&["--format", "csv", "-c", q]);
    assert_eq!(
        stdout(&csv),
        "district,population\nShangcheng,1400000\nGongshu,1200000\n"
    );
    let json = sql(&["--format", "json", "-c", q]);
    assert_eq!(
        stdout(&json).trim(),
        r#"[{"district":"Shangcheng","population":1400000},{"district":"Gongshu","population":1200000}]"#
    );
    let ndjson = sql(&["--format", "ndjson", "-c", q]);
    assert_eq!(
        stdout(&ndjson),
        "{\"district\":\"Shangcheng\",\"population\":1400000}\n{\"district\":\"Gongshu\",\"population\":1200000}\n"
    );
    // an empty result still has a CSV header and a JSON array
    let empty = "SELECT district FROM common.districts WHERE false";
    assert_eq!(
        stdout(&sql(&["--format", "csv", "-c", empty])),
        "district\n"
    );
    assert_eq!(
        stdout(&sql(&["--format", "json", "-c", empty])).trim(),
        "[]"
    );
}

#[test]
fn binary_formats_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let q = "SELECT station_id, pm25 FROM environment.air_quality_hourly WHERE month = '2025-01'";
    let pq = dir.path().join("out.parquet");
    let o = sql(&["--format", "parquet", "-o", pq.to_str().unwrap(), "-c", q]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&pq).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 13 * 31 * 24);

    let ipc = dir.path().join("out.arrow");
    let o = sql(&["--format", "arrow", "-o", ipc.to_str().unwrap(), "-c", q]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reader =
        arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&ipc).unwrap(), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 13 * 31 * 24);

    // two result sets cannot share one Parquet file
    let o = sql(&[
        "--format",
        "parquet",
        "-o",
        pq.to_str().unwrap(),
        "-c",
        "SELECT 1; SELECT 2",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("writes one result"), "{}", stderr(&o));
}

#[test]
fn sql_from_a_file_and_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(
        &file,
        "CREATE VIEW v AS SELECT 41 AS x;\nSELECT x + 1 AS y FROM v;\n",
    )
    .unwrap();
    let o = sql(&["--format", "csv", "-f", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).ends_with("y\n42\n"), "{}", stdout(&o));

    use std::io::Write;
    let mut child = citylake()
        .args(["sql", "--format", "csv", "--catalog"])
        .arg(lake().join("catalog.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*) AS n FROM common.districts;")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "n\n13\n");
}

#[test]
fn syntax_error_shows_position_and_fails() {
    let o = sql(&[
        "-c",
        "SELECT count(*) FROM traffic.segment_speed WHERE dt = = 1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("SQL syntax error"), "{err}");
    // the statement, and a caret under column 55
    assert!(err.contains("Line: 1, Column: 55"), "{err}");
    assert!(
        err.contains(&format!("\n      | {}^", " ".repeat(54))),
        "{err}"
    );
    // the message says it once, without DataFusion's debug wrappers
    assert!(!err.contains("ParserError("), "{err}");
}

#[test]
fn unknown_table_and_column_fail_clearly() {
    let o = sql(&["-c", "SELECT * FROM traffic.nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("table 'city.traffic.nope' not found"),
        "{}",
        stderr(&o)
    );
    let o = sql(&["-c", "SELECT 1,\n  nope FROM traffic.road_segments"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("nope"), "{err}");
    // the caret from the planner's span: line 2, under `nope`
    assert!(
        err.contains("\n    2 |   nope FROM traffic.road_segments\n      |   ^"),
        "{err}"
    );
    // a statement after the failing one does not run
    let o = sql(&[
        "--format",
        "csv",
        "-c",
        "SELECT * FROM traffic.nope; SELECT 1 AS one",
    ]);
    assert!(!stdout(&o).contains("one"));
}

#[test]
fn missing_and_bad_catalogs() {
    let o = run(citylake().args([
        "sql",
        "--catalog",
        "/no/such/catalog.toml",
        "-c",
        "SELECT 1",
    ]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read catalog /no/such/catalog.toml"),
        "{}",
        stderr(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("catalog.toml");
    std::fs::write(&bad, "[catalog]\nroot = \".\"\n[[datasets]]\nname = \"a.b\"\nlocation = \"b/\"\nowner = \"x\"\nclassification = \"secret\"\nupdate_frequency = \"daily\"\n").unwrap();
    let o = run(citylake()
        .args(["sql", "--catalog"])
        .arg(&bad)
        .args(["-c", "SELECT 1"]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("dataset `a.b`") && err.contains("field `classification`"),
        "{err}"
    );

    // the catalog can also come from CITYLAKE_CATALOG
    let o = run(citylake()
        .env("CITYLAKE_CATALOG", lake().join("catalog.toml"))
        .args([
            "sql",
            "--format",
            "csv",
            "-c",
            "SELECT count(*) AS n FROM common.districts",
        ]));
    assert_eq!(stdout(&o), "n\n13\n");
}

#[test]
fn a_missing_dataset_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        "[catalog]\nroot = \".\"\n[[datasets]]\nname = \"a.b\"\nlocation = \"b/\"\nowner = \"x\"\nclassification = \"public\"\nupdate_frequency = \"daily\"\n",
    )
    .unwrap();
    let o = run(citylake()
        .args(["sql", "--catalog"])
        .arg(&catalog)
        .args(["-c", "SELECT * FROM a.b"]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("dataset `a.b`") && err.contains("b/"), "{err}");
}

#[test]
fn catalog_views_run_and_broken_views_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    let base = "[catalog]\nroot = \".\"\n";
    let cases = [
        (
            "[[views]]\nname = \"s.v\"\nsql = \"SELECT aqi_cn_daily(75, 150, 10, 80, 1.0, 160) AS aqi\"\n",
            None,
        ),
        (
            "[[views]]\nname = \"s.v\"\nsql = \"SELECT * FROM nowhere\"\n",
            Some("view `s.v`: Error during planning: table 'city.public.nowhere' not found"),
        ),
        (
            "[[views]]\nname = \"s.v\"\nsql = \"CREATE TABLE t AS SELECT 1\"\n",
            Some("view `s.v`"),
        ),
        (
            "[[views]]\nname = \"s.v\"\nfile = \"views/missing.sql\"\n",
            Some("view `s.v`: cannot read"),
        ),
    ];
    for (views, error) in cases {
        std::fs::write(&catalog, format!("{base}{views}")).unwrap();
        let o = run(citylake()
            .args(["sql", "--format", "csv", "--catalog"])
            .arg(&catalog)
            .args(["-c", "SELECT * FROM s.v"]));
        match error {
            None => {
                assert!(o.status.success(), "{}", stderr(&o));
                assert_eq!(stdout(&o), "aqi\n114\n");
            }
            Some(needle) => {
                assert_eq!(o.status.code(), Some(1), "{views}");
                assert!(stderr(&o).contains(needle), "{views}: {}", stderr(&o));
            }
        }
    }
}

#[test]
fn done_when_of_the_situation_functions_issue() {
    // the daily report per station over a day of hourly data, in `citylake sql`
    let o = sql(&[
        "--format",
        "csv",
        "-c",
        "SELECT station_id, aqi_cn_daily(pm25, pm10, so2, no2, co, o3_8h) AS aqi, \
                aqi_category(aqi_cn_daily(pm25, pm10, so2, no2, co, o3_8h)) AS category, \
                aqi_cn_primary(pm25, pm10, so2, no2, co, o3_8h) AS primary_pollutants \
         FROM (SELECT station_id, avg(pm25) pm25, avg(pm10) pm10, avg(so2) so2, avg(no2) no2, avg(co) co, max(o3_8h) o3_8h \
               FROM environment.air_quality_hourly WHERE CAST(observed_at AS DATE) = DATE '2025-01-15' GROUP BY station_id) \
         ORDER BY station_id",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(
        out.lines().next(),
        Some("station_id,aqi,category,primary_pollutants")
    );
    assert!(rows.len() >= 13, "{out}");
    for row in rows {
        let cols: Vec<&str> = row.splitn(4, ',').collect();
        let aqi: i32 = cols[1].parse().unwrap();
        assert!((0..=500).contains(&aqi), "{row}");
        assert!(
            ["优", "良", "轻度污染", "中度污染", "重度污染", "严重污染"].contains(&cols[2]),
            "{row}"
        );
    }
}

#[test]
fn performance_report_numbers_equal_a_plain_sql_recomputation() {
    let out = tempfile::tempdir().unwrap();
    let o = run(citylake()
        .args(["report", "performance", "--year", "2025", "--catalog"])
        .arg(lake().join("catalog.toml"))
        .arg("--out")
        .arg(out.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    for stage in ["[1/5]", "[5/5]"] {
        assert!(stderr(&o).contains(stage), "{}", stderr(&o));
    }
    let index = out.path().join("index.html");
    assert_eq!(stdout(&o).trim(), index.display().to_string());
    let page = std::fs::read_to_string(&index).unwrap();
    for part in [
        "<svg",
        "Scores by department",
        "Budget execution",
        "Weakest indicators",
        "@media print",
        "优 excellent (≥ 90)",
        "id=\"p",
    ] {
        assert!(page.contains(part), "{part}");
    }
    assert!(
        !page.contains("http://")
            || page.matches("http://").count()
                == page.matches("http://www.w3.org/2000/svg").count(),
        "no network resource in the page"
    );
    assert!(out.path().join("scores.parquet").exists());
    // money grouped by thousands with two decimals, in the unit the catalog chooses (元 by default);
    // boolean indicators as met or not; scores with two decimals
    let budget = page.find("预算 budget (元 yuan)").expect("the budget card");
    let card = &page[page[..budget].rfind("<b>").unwrap() + 3..budget];
    let figure = &card[..card.find("</b>").unwrap()];
    assert!(
        figure.contains(',') && figure.rsplit('.').next().unwrap().len() == 2,
        "{figure}"
    );
    assert!(
        page.contains("达成 met"),
        "boolean indicators read as met / not met"
    );
    assert!(
        !page.contains(">1</b> programs") && !page.contains("(1 programs)"),
        "one program is singular"
    );
    // departments and indicator levels by the names the catalog declares
    // (`[evaluation.labels]`), the data's code as a tooltip, in tables and charts
    for named in [
        r#"<span class="code" title="transport">交通运输局</span>"#,
        r#"<span class="code" title="decision">决策</span>"#,
        r#"<span class="code" title="budget_execution">预算执行</span>"#,
        "<title>transport</title>交通运输局",
    ] {
        assert!(page.contains(named), "{named}");
    }
    // every program's total (the bold cell of its row) has exactly two decimals
    let totals: Vec<&str> = page
        .split("<td><b>")
        .skip(1)
        .map(|rest| &rest[..rest.find("</b>").unwrap()])
        .collect();
    assert!(!totals.is_empty());
    for total in totals {
        assert_eq!(
            total.split_once('.').map(|(_, d)| d.len()),
            Some(2),
            "{total}"
        );
    }
    // the scores recomputed from the raw tables with plain SQL (no citylake function)
    let script = out.path().join("check.sql");
    let csv = out.path().join("scores.csv");
    std::fs::write(
        &script,
        format!(
            "CREATE EXTERNAL TABLE report STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true');\n\
             WITH spent AS (SELECT program_id, year, sum(amount) AS spent FROM finance.expenditures GROUP BY 1, 2),\n\
             p AS (SELECT p.program_id, p.year, CAST(p.budget_amount AS DOUBLE) AS budget, CAST(coalesce(s.spent, 0) AS DOUBLE) AS spent\n\
                   FROM finance.programs p LEFT JOIN spent s USING (program_id, year)),\n\
             i AS (SELECT program_id, year, level2, direction, CAST(weight AS DOUBLE) AS w, CAST(target_value AS DOUBLE) AS t,\n\
                          CAST(target_high AS DOUBLE) AS h, CAST(actual_value AS DOUBLE) AS a FROM finance.performance_indicators),\n\
             scored AS (SELECT i.program_id, i.year, CASE\n\
                 WHEN i.level2 = 'budget_execution' THEN i.w * least(p.spent / p.budget, 1)\n\
                 WHEN i.a IS NULL THEN 0\n\
                 WHEN i.direction = 'higher_better' THEN CASE WHEN i.a >= i.t THEN i.w ELSE i.w * i.a / i.t END\n\
                 WHEN i.direction = 'lower_better' THEN CASE WHEN i.a <= i.t THEN i.w WHEN i.t = 0 THEN 0 ELSE i.w * i.t / i.a END\n\
                 WHEN i.direction = 'interval' THEN CASE WHEN i.a BETWEEN i.t AND i.h THEN i.w\n\
                      ELSE i.w * greatest(0, 1 - (CASE WHEN i.a < i.t THEN i.t - i.a ELSE i.a - i.h END) / (i.h - i.t)) END\n\
                 WHEN i.direction = 'boolean' THEN CASE WHEN i.a >= i.t AND i.a <> 0 THEN i.w ELSE 0 END END AS score\n\
               FROM i JOIN p USING (program_id, year)),\n\
             plain AS (SELECT s.program_id, sum(s.score) AS total, max(p.spent / p.budget) AS rate\n\
                       FROM scored s JOIN p USING (program_id, year) WHERE s.year = 2025 GROUP BY 1)\n\
             SELECT count(*) AS programs,\n\
                    count(*) FILTER (WHERE abs(r.total_score - plain.total) > 0.001\n\
                                        OR abs(r.budget_execution_rate - plain.rate) > 0.000001\n\
                                        OR r.grade <> CASE WHEN round(plain.total, 2) >= 90 THEN '优' WHEN round(plain.total, 2) >= 80 THEN '良'\n\
                                                           WHEN round(plain.total, 2) >= 60 THEN '中' ELSE '差' END) AS differing,\n\
                    (SELECT count(*) FROM finance.programs WHERE year = 2025) AS expected\n\
             FROM report r JOIN plain USING (program_id);\n",
            csv.display()
        ),
    )
    .unwrap();
    let o = run(citylake()
        .args(["sql", "--format", "csv", "--catalog"])
        .arg(lake().join("catalog.toml"))
        .arg("-f")
        .arg(&script));
    assert!(o.status.success(), "{}", stderr(&o));
    let last = stdout(&o).lines().last().unwrap().to_string();
    let cols: Vec<&str> = last.split(',').collect();
    assert_eq!(cols[1], "0", "programs whose report numbers differ: {last}");
    assert_eq!(
        cols[0], cols[2],
        "every program of the year is in the report: {last}"
    );
    assert!(cols[0].parse::<u32>().unwrap() > 0);
}

#[test]
fn performance_report_refuses_an_empty_year_and_an_unknown_department() {
    let out = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            vec!["--year", "1999"],
            "no programs to evaluate in 1999: finance.programs has none for that year (years with programs: 2023, 2024, 2025)",
        ),
        (
            vec!["--year", "2025", "--department", "nope"],
            "unknown department 'nope' for 2025; departments with programs that year:",
        ),
    ] {
        let target = out.path().join("r");
        let o = run(citylake()
            .args(["report", "performance", "--catalog"])
            .arg(lake().join("catalog.toml"))
            .args(&args)
            .arg("--out")
            .arg(&target));
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
        assert!(!target.exists(), "no report is written");
    }
}

#[test]
fn default_lake_is_generated_when_absent() {
    let cwd = tempfile::tempdir().unwrap();
    let o = run(citylake().current_dir(cwd.path()).args([
        "sql",
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS n FROM traffic.road_segments",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("generating the demo lake (scale 0.1)"),
        "{}",
        stderr(&o)
    );
    // scale 0.1: 100 segments
    assert_eq!(stdout(&o), "n\n100\n");
    assert!(cwd.path().join("data/lake/catalog.toml").exists());
    // the second run reuses it silently
    let o = run(citylake().current_dir(cwd.path()).args([
        "sql",
        "--format",
        "csv",
        "-c",
        "SELECT 1 AS one",
    ]));
    assert!(!stderr(&o).contains("generating"), "{}", stderr(&o));
}

#[test]
fn user_add_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let add = |name: &str| {
        run(citylake()
            .env("CITYLAKE_PASSWORD", "a long password")
            .args([
                "user",
                "add",
                name,
                "--role",
                "district_analyst",
                "--department",
                "hotline",
                "--attr",
                "district=Xihu",
                "--users",
            ])
            .arg(&users))
    };
    assert!(add("wang").status.success());
    // a second user of the same name is refused
    let o = add("wang");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = run(citylake().args(["user", "list", "--users"]).arg(&users));
    let out = stdout(&o);
    assert!(
        out.contains("wang") && out.contains("district_analyst") && out.contains("district=Xihu"),
        "{out}"
    );
    assert!(!out.contains("argon2"), "list never shows hashes");
    assert!(
        run(citylake()
            .args(["user", "remove", "wang", "--users"])
            .arg(&users))
        .status
        .success()
    );
    let o = run(citylake()
        .args(["user", "remove", "wang", "--users"])
        .arg(&users));
    assert!(stderr(&o).contains("no user `wang`"), "{}", stderr(&o));
    // without CITYLAKE_PASSWORD and no terminal: a clear error
    let o = run(citylake()
        .args(["user", "add", "li", "--role", "analyst", "--users"])
        .arg(&users));
    assert!(stderr(&o).contains("CITYLAKE_PASSWORD"), "{}", stderr(&o));
    // a role the policy does not define is refused, naming the roles it has
    let o = run(citylake()
        .env("CITYLAKE_PASSWORD", "pw")
        .args(["user", "add", "li", "--role", "analist", "--users"])
        .arg(&users));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("role `analist` is not defined in the built-in policy")
            && stderr(&o).contains("analyst"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn serve_demo_mode_creates_users_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let cwd = tempfile::tempdir().unwrap();
    let mut child = citylake()
        .current_dir(cwd.path())
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--metrics-bind",
            "127.0.0.1:0",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Ctrl-C to stop") {
            break;
        }
    }
    assert!(seen.contains("generating the demo lake"), "{seen}");
    assert!(seen.contains("Created demo users"), "{seen}");
    assert!(seen.contains("listening on 127.0.0.1:"), "{seen}");
    assert!(
        seen.contains("adbc_driver_flightsql") && seen.contains("jdbc:arrow-flight-sql://"),
        "{seen}"
    );
    let passwords = cwd.path().join("data/lake/demo-passwords.txt");
    let text = std::fs::read_to_string(&passwords).unwrap();
    assert!(text.contains("admin: ") && text.contains("analyst: "));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&passwords).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // graceful shutdown on SIGTERM
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn serve_refuses_half_a_tls_configuration_and_a_missing_users_file() {
    let catalog = lake().join("catalog.toml");
    let o = run(citylake()
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--users",
            "/no/users.toml",
            "--catalog",
        ])
        .arg(&catalog));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot read users file /no/users.toml"),
        "{}",
        stderr(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let o = run(citylake()
        .env("CITYLAKE_PASSWORD", "a long password")
        .args(["user", "add", "ana", "--role", "analyst", "--users"])
        .arg(&users));
    assert!(o.status.success(), "{}", stderr(&o));
    // serve with these TLS flags fails; its stderr
    let serve_fails = |tls: &[&str]| {
        let o = run(citylake()
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--metrics-bind",
                "127.0.0.1:0",
            ])
            .args(tls)
            .arg("--users")
            .arg(&users)
            .arg("--catalog")
            .arg(&catalog));
        assert!(!o.status.success());
        stderr(&o)
    };
    let err = serve_fails(&["--tls-cert", "/no/cert.pem"]);
    assert!(
        err.contains("--tls-cert and --tls-key go together"),
        "{err}"
    );
    let err = serve_fails(&["--tls-cert", "/no/cert.pem", "--tls-key", "/no/key.pem"]);
    assert!(
        err.contains("cannot read TLS certificate /no/cert.pem"),
        "{err}"
    );
}

fn quality(args: &[&str]) -> Output {
    run(citylake()
        .arg("quality")
        .arg("--catalog")
        .arg(lake().join("catalog.toml"))
        .args(args))
}

#[test]
fn quality_finds_the_planted_defects() {
    // the table lists the failures, then a summary
    let o = quality(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for expected in [
        "dt=2025-02-15",
        "3 rows outside the valid range [0, ∞]; observed [-2,",
        "3 values of (case_id) are held by more than one row",
        "3 of 1064 rows have no district",
        "newest reported_at 2025-12-28",
        "6 failed",
    ] {
        assert!(out.contains(expected), "{expected} missing from\n{out}");
    }
    assert!(
        !out.contains("| pass"),
        "passing checks listed without --all"
    );
    assert!(quality(&["--all"]).status.success());
    // --strict fails on a failed check; a clean dataset passes
    assert_eq!(quality(&["--strict"]).status.code(), Some(1));
    let o = quality(&["--strict", "--dataset", "common.districts"]);
    assert!(o.status.success(), "{}", stdout(&o));

    // JSON: every check of one dataset; another clock makes the feed fresh
    let o = quality(&[
        "--format",
        "json",
        "--dataset",
        "emergency.incidents",
        "--as-of",
        "2025-12-28T19:00:00",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["as_of"], "2025-12-28T19:00:00");
    let checks = json["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["dataset"] == "emergency.incidents"));
    let freshness = checks.iter().find(|c| c["check"] == "freshness").unwrap();
    assert_eq!(freshness["status"], "pass", "{freshness}");
    // a clock before the newest event: those rows are from the future
    let future = checks
        .iter()
        .find(|c| c["check"] == "validity" && c["column"] == "reported_at")
        .unwrap();
    assert_eq!(future["status"], "fail", "{future}");
    assert_eq!(json["summary"]["fail"], 2);

    // bad input
    let o = quality(&["--dataset", "no.such"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no dataset `no.such` in the catalog; it has common.districts"),
        "{}",
        stderr(&o)
    );
    let o = quality(&["--as-of", "yesterday"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--as-of: `yesterday` is not a local time"),
        "{}",
        stderr(&o)
    );
}

/// Local use is an access like any other: `citylake sql`, `report` and
/// `quality` leave audit records (client `local`, the OS user, a query id).
#[test]
fn local_commands_are_audited_like_server_queries() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let records = || -> Vec<serde_json::Value> {
        std::fs::read_dir(&audit)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let with_audit = |cmd: &[&str], args: &[&str]| {
        run(citylake()
            .args(cmd)
            .arg("--catalog")
            .arg(lake().join("catalog.toml"))
            .arg("--audit-dir")
            .arg(&audit)
            .args(args))
    };
    let o = with_audit(
        &["sql"],
        &[
            "-c",
            "SELECT count(*) FROM hotline.cases; SELECT no_such_column FROM common.districts",
        ],
    );
    assert!(!o.status.success());
    let out = dir.path().join("report");
    let o = with_audit(
        &["report", "performance"],
        &["--year", "2025", "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = with_audit(&["quality"], &["--dataset", "common.districts"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = records();
    assert!(all.iter().all(|r| r["client"] == "local"), "{all:#?}");
    let queries: Vec<_> = all.iter().filter(|r| r["kind"] == "query").collect();
    let ok = queries
        .iter()
        .find(|r| r["request"].as_str().unwrap().contains("hotline.cases"))
        .expect("the sql command's query is recorded");
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["datasets"], "hotline.cases");
    assert!(ok["query_id"].as_i64().unwrap() > 0);
    let failed = queries
        .iter()
        .find(|r| r["request"].as_str().unwrap().contains("no_such_column"))
        .expect("the failed statement is recorded");
    assert_eq!(failed["outcome"], "error");
    // the report's queries read the finance datasets
    assert!(
        queries
            .iter()
            .any(|r| r["datasets"].as_str().unwrap().contains("finance.")),
        "{queries:#?}"
    );
    let quality = all
        .iter()
        .find(|r| r["kind"] == "quality")
        .expect("the quality run is recorded");
    assert_eq!(quality["datasets"], "common.districts");
    assert!(
        citylake_engine::audit::verify(&audit, None)
            .unwrap()
            .is_ok(),
        "one intact chain across the three commands"
    );
}

/// `--user` runs a local command as a user of the users file: their policy
/// (row filter, masks), read-only, and their name in the audit trail.
#[test]
fn a_local_command_runs_as_a_user_of_the_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let o = run(citylake()
        .env("CITYLAKE_PASSWORD", "a long password")
        .args(["user", "add", "wang", "--role", "district_analyst"])
        .args(["--attr", "district=Xihu", "--users"])
        .arg(&users));
    assert!(o.status.success(), "{}", stderr(&o));
    let audit = dir.path().join("audit");
    let as_wang = |sql: &str| {
        run(citylake()
            .arg("sql")
            .arg("--catalog")
            .arg(lake().join("catalog.toml"))
            .arg("--audit-dir")
            .arg(&audit)
            .args(["--user", "wang", "--users"])
            .arg(&users)
            .args(["--format", "csv", "-c", sql]))
    };
    let o = as_wang("SELECT DISTINCT district FROM hotline.cases");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "district\nXihu");
    let o = as_wang("SELECT caller_phone FROM hotline.cases LIMIT 1");
    assert!(stdout(&o).contains("****"), "masked: {}", stdout(&o));
    // read-only, like the server
    let o = as_wang("CREATE VIEW v AS SELECT 1");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("queries only"), "{}", stderr(&o));
    // recorded under their name
    let text: String = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        text.lines().all(|l| l.contains("\"user\":\"wang\"")),
        "{text}"
    );
    // an unknown user is a clear error
    let o = run(citylake()
        .arg("sql")
        .arg("--catalog")
        .arg(lake().join("catalog.toml"))
        .args(["--user", "nobody", "--users"])
        .arg(&users)
        .args(["-c", "SELECT 1"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--user nobody: no such user"),
        "{}",
        stderr(&o)
    );
}

/// The (one) day file of an audit trail.
fn day_file(audit: &Path) -> PathBuf {
    std::fs::read_dir(audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap()
}

#[test]
fn audit_verify_passes_an_intact_trail_and_names_the_first_altered_record() {
    use citylake_engine::audit::{AuditLog, AuditRecord};
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = AuditLog::open(&audit, None).unwrap();
    for i in 0..3 {
        log.record_blocking(AuditRecord::new("query", &format!("SELECT {i}"), "ok"))
            .unwrap();
    }
    let verify = || {
        run(citylake()
            .args(["audit", "verify", "--audit-dir"])
            .arg(&audit))
    };
    let o = verify();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("intact: 3 records"), "{}", stdout(&o));
    // someone edits the second record
    let file = day_file(&audit);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("SELECT 1", "SELECT 7")).unwrap();
    let o = verify();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{}:2:", file.display())) && err.contains("altered"),
        "{err}"
    );
    // no trail at all is an error, not an intact trail
    let o = run(citylake()
        .args(["audit", "verify", "--audit-dir"])
        .arg(dir.path().join("nowhere")));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no audit directory"), "{}", stderr(&o));
}

/// With `--audit-key`, `citylake sql` seals its records with the key; verify
/// needs the key and refuses a chain rebuilt without it; a process with the key
/// refuses to extend such a chain.
#[test]
fn an_audit_key_seals_the_trail_against_rebuilding() {
    let dir = tempfile::tempdir().unwrap();
    let (audit, key) = (dir.path().join("audit"), dir.path().join("audit.key"));
    let o = run(citylake().args(["audit", "key"]).arg(&key));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !run(citylake().args(["audit", "key"]).arg(&key))
            .status
            .success()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is its owner's only");
    }
    let sql = |q: &str| {
        run(citylake()
            .arg("sql")
            .arg("--catalog")
            .arg(lake().join("catalog.toml"))
            .arg("--audit-dir")
            .arg(&audit)
            .arg("--audit-key")
            .arg(&key)
            .args(["-c", q]))
    };
    for q in ["SELECT 1", "SELECT 2", "SELECT 3"] {
        let o = sql(q);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let verify = |with_key: bool| {
        let mut cmd = citylake();
        cmd.args(["audit", "verify", "--audit-dir"]).arg(&audit);
        if with_key {
            cmd.arg("--audit-key").arg(&key);
        }
        run(&mut cmd)
    };
    let o = verify(true);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let o = verify(false);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--audit-key"), "{}", stderr(&o));
    // the second record removed, the rest renumbered, relinked and re-hashed
    let file = day_file(&audit);
    let text = std::fs::read_to_string(&file).unwrap();
    let mut records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    records.remove(1);
    let mut prev = records[0]["hash"].as_str().unwrap().to_string();
    for (i, r) in records.iter_mut().enumerate().skip(1) {
        r["seq"] = serde_json::json!(i + 1);
        r["prev_hash"] = serde_json::json!(prev);
        r["hash"] = serde_json::json!("");
        let body = serde_json::to_string(r).unwrap();
        use sha2::Digest;
        let hash: String = sha2::Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        r["hash"] = serde_json::json!(hash);
        prev = hash;
    }
    let forged: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(&file, forged).unwrap();
    let o = verify(true);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(":2:") && stderr(&o).contains("not sealed with the audit key"),
        "{}",
        stderr(&o)
    );
    // a process holding the key does not continue the forged chain
    let o = sql("SELECT 4");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not sealed with the audit key"),
        "{}",
        stderr(&o)
    );
}

/// A cluster node authenticates nobody: it refuses an address beyond loopback
/// unless the operator says the network is closed.
#[cfg(feature = "cluster")]
#[test]
fn cluster_nodes_refuse_to_listen_beyond_loopback() {
    for args in [
        vec!["cluster", "scheduler", "--bind", "0.0.0.0:0"],
        vec![
            "cluster",
            "executor",
            "--scheduler",
            "127.0.0.1:1",
            "--bind",
            "0.0.0.0:0",
        ],
    ] {
        let o = run(citylake().args(&args));
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.contains("refusing to listen on 0.0.0.0:0 without mutual TLS")
                && err.contains("--cluster-ca"),
            "{err}"
        );
        // the old way around it is gone
        let mut old = args.clone();
        old.push("--unauthenticated-network");
        assert_eq!(run(citylake().args(&old)).status.code(), Some(2), "{old:?}");
    }
    // a front end reaches a scheduler beyond loopback only over mutual TLS
    let o = run(citylake()
        .args(["sql", "--catalog"])
        .arg(lake().join("catalog.toml"))
        .args(["--cluster", "df://192.0.2.1:50050", "-c", "SELECT 1"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("only over mutual TLS"),
        "{}",
        stderr(&o)
    );
    // the scheduler has no catalog option: it resolves no dataset by name for anyone
    let o = run(citylake().args(["cluster", "scheduler", "--catalog", "x"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// `citylake catalog check`: a valid catalog is reported as such; a misspelt
/// column and a wrong type in a hand-written one are errors naming them.
#[test]
fn catalog_check_names_column_mistakes() {
    let o = run(citylake()
        .args(["catalog", "check", "--catalog"])
        .arg(lake().join("catalog.toml")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("is valid"), "{}", stdout(&o));
    // a copy of the lake's catalog beside it, with two mistakes in common.districts
    let text = std::fs::read_to_string(lake().join("catalog.toml"))
        .unwrap()
        .replacen("name = \"population\"", "name = \"populaton\"", 1)
        .replacen(
            "name = \"area_km2\"\ntype = \"double\"",
            "name = \"area_km2\"\ntype = \"int\"",
            1,
        );
    let catalog = lake().join("catalog-with-mistakes.toml");
    std::fs::write(&catalog, text).unwrap();
    let o = run(citylake()
        .args(["catalog", "check", "--catalog"])
        .arg(&catalog));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(e.contains("dataset `common.districts`"), "{e}");
    assert!(e.contains("column `populaton` is declared but the files have no such column; did you mean `population`?"), "{e}");
    assert!(
        e.contains("column `area_km2` is declared int but the files hold double"),
        "{e}"
    );
}
