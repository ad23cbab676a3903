//! Attacks on the access policy by an ordinary logged-in user, at the engine's
//! session API (the one enforcement point every front end goes through): values
//! of filtered-out rows and unmasked personal data through error messages,
//! statistics and metrics in plans, data-quality results, hidden dataset names,
//! and statements built to crash the process. Over a generated SF 0.01 lake with
//! the default policy; the district analyst `dora` reads only Xihu's hotline
//! cases, with names, phones and ID numbers masked.

use std::collections::BTreeSet;

use citylake_engine::error::ErrorClass;
use citylake_engine::{Engine, EngineConfig, EngineError, Principal, QueryRequest};

mod common;
use common::{lake, rows};

async fn engine() -> Engine {
    let mut config = EngineConfig::new(lake().join("catalog.toml"));
    config.audit_dir = Some(tempfile::tempdir().unwrap().keep());
    Engine::new(config).await.unwrap()
}

fn principal(user: &str, role: &str, attrs: &[(&str, &str)]) -> Principal {
    Principal {
        user: user.into(),
        roles: vec![role.into()],
        department: None,
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn dora() -> Principal {
    principal("dora", "district_analyst", &[("district", "Xihu")])
}

fn analyst() -> Principal {
    principal("ana", "analyst", &[])
}

/// What `dora` must never see: the other districts' names and every real
/// name, phone and ID number of the hotline's callers.
struct Secrets {
    districts: Vec<String>,
    pii: BTreeSet<String>,
    /// rows of the whole table (the unfiltered count)
    total: String,
}

async fn secrets(e: &Engine) -> Secrets {
    let admin = Principal::local_admin();
    let districts = rows(e, &admin, "SELECT DISTINCT district FROM hotline.cases WHERE district <> 'Xihu' AND district IS NOT NULL ORDER BY 1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].clone())
        .collect::<Vec<_>>();
    assert!(districts.len() >= 5, "{districts:?}");
    let pii = rows(
        e,
        &admin,
        "SELECT caller_name, caller_phone, caller_id_number FROM hotline.cases",
    )
    .await
    .unwrap()
    .into_iter()
    .flatten()
    .filter(|v| v != "NULL" && v.chars().count() >= 2)
    .collect();
    let total = rows(e, &admin, "SELECT count(*) FROM hotline.cases")
        .await
        .unwrap()[0][0]
        .clone();
    Secrets {
        districts,
        pii,
        total,
    }
}

impl Secrets {
    /// Panics if `text` holds anything `dora` may not see.
    fn assert_absent(&self, what: &str, text: &str) {
        for d in &self.districts {
            assert!(
                !text.contains(d.as_str()),
                "{what}: another district `{d}` leaked: {text}"
            );
        }
        // names are 2–3 characters: look for them only where they could stand alone
        for v in &self.pii {
            if v.chars().count() >= 5 {
                assert!(
                    !text.contains(v.as_str()),
                    "{what}: a real value `{v}` leaked: {text}"
                );
            }
        }
    }
}

/// A predicate that fails on a value (a cast, a division, a parse) is evaluated
/// only on rows that passed the row filter, after masking: its error can name
/// nothing else, and it cannot fail because of a hidden row (which would tell
/// that such a row exists).
#[tokio::test]
async fn errors_never_carry_a_hidden_row_or_an_unmasked_value() {
    let e = engine().await;
    let s = secrets(&e).await;
    let who = dora();
    let mine = rows(&e, &who, "SELECT count(*) FROM hotline.cases")
        .await
        .unwrap()[0][0]
        .clone();

    // the oracle is real: run by the administrator, a division by zero on
    // another district's rows fails
    let other = &s.districts[0];
    let oracle = format!(
        "SELECT count(*) FROM hotline.cases WHERE 1 / (CASE WHEN district = '{other}' THEN 0 ELSE 1 END) = 1"
    );
    assert!(rows(&e, &Principal::local_admin(), &oracle).await.is_err());
    // for dora it cannot fail, at any selectivity: every other district, a NULL
    // district, a predicate that holds on no row, on all rows, on a few
    for d in s
        .districts
        .iter()
        .map(|d| format!("'{d}'"))
        .chain(["NULL".to_string()])
    {
        for extra in [
            "",
            " AND case_id > 0",
            " AND case_id < 0",
            " OR case_id % 7 = 0",
        ] {
            let q = format!(
                "SELECT count(*) FROM hotline.cases WHERE (1 / (CASE WHEN district = {d} OR district IS NULL THEN 0 ELSE 1 END) = 1){extra}"
            );
            let got = rows(&e, &who, &q).await;
            assert!(got.is_ok(), "{q}: {got:?}");
        }
        let q = format!(
            "SELECT count(*) FROM hotline.cases WHERE 1 / (CASE WHEN district = {d} THEN 0 ELSE 1 END) = 1"
        );
        assert_eq!(rows(&e, &who, &q).await.unwrap()[0][0], mine, "{q}");
    }

    // errors that quote the value they failed on quote only Xihu and masked values
    for q in [
        "SELECT count(*) FROM hotline.cases WHERE CAST(district AS INT) = 1",
        "SELECT count(*) FROM hotline.cases WHERE CAST(COALESCE(district, 'none') AS INT) = 1",
        "SELECT count(*) FROM hotline.cases WHERE CAST(caller_phone AS BIGINT) > 0",
        "SELECT count(*) FROM hotline.cases WHERE arrow_cast(caller_id_number, 'Int64') > 0",
        "SELECT count(*) FROM hotline.cases WHERE to_timestamp(caller_name) IS NOT NULL",
        "SELECT count(*) FROM hotline.cases WHERE to_date(district) IS NOT NULL",
        "SELECT count(*) FROM hotline.cases WHERE CAST(district AS DATE) > DATE '2025-01-01'",
        "SELECT count(*) FROM hotline.cases h JOIN common.districts d ON CAST(h.caller_phone AS INT) = d.population",
        "SELECT max(CAST(caller_phone AS BIGINT)) FROM hotline.cases",
        "SELECT * FROM hotline.cases WHERE case_id IN (SELECT CAST(caller_name AS BIGINT) FROM hotline.cases)",
        "SELECT count(*) FROM hotline.cases WHERE regexp_like(caller_phone, CASE WHEN district = 'Xihu' THEN '[' ELSE '.' END)",
        "SELECT count(*) FROM (SELECT CAST(district AS INT) AS d FROM hotline.cases) WHERE d > 0",
        "SELECT CAST(caller_phone AS INT) OVER () FROM hotline.cases",
        "SELECT count(*) FROM hotline.cases WHERE CAST(district AS INT) = 1 OR CAST(caller_phone AS INT) = 1",
        "WITH RECURSIVE r(n) AS (SELECT CAST(caller_phone AS INT) FROM hotline.cases UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT count(*) FROM r",
        "SELECT count(*) FROM hotline.cases WHERE unnest(make_array(CAST(caller_id_number AS INT))) > 0",
    ] {
        match rows(&e, &who, q).await {
            Ok(r) => s.assert_absent(q, &format!("{r:?}")),
            Err(err) => s.assert_absent(q, &err.to_string()),
        }
    }
}

/// EXPLAIN, EXPLAIN VERBOSE and EXPLAIN ANALYZE stay available, and show
/// nothing beneath a governed dataset's barrier: no statistics of the raw scan,
/// no metrics of the operators applying the policy, no real value.
#[tokio::test]
async fn plans_show_nothing_beneath_the_barrier() {
    let e = engine().await;
    let s = secrets(&e).await;
    let who = dora();
    for q in [
        "EXPLAIN SELECT caller_phone FROM hotline.cases WHERE case_id > 0",
        "EXPLAIN VERBOSE SELECT caller_phone, caller_name FROM hotline.cases WHERE caller_phone > '1'",
        "EXPLAIN ANALYZE SELECT caller_phone, count(*) FROM hotline.cases GROUP BY caller_phone",
        "EXPLAIN ANALYZE VERBOSE SELECT * FROM hotline.cases WHERE district = 'Xihu'",
        "EXPLAIN VERBOSE SELECT min(caller_id_number), max(caller_id_number) FROM hotline.cases",
        "EXPLAIN VERBOSE SELECT count(*) FROM hotline.cases",
    ] {
        let text = rows(&e, &who, q)
            .await
            .unwrap_or_else(|err| panic!("{q}: {err}"))
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("GovernedScanExec"), "{q}: {text}");
        assert!(
            !text.contains("DataSourceExec") && !text.contains(".parquet"),
            "{q}: {text}"
        );
        s.assert_absent(q, &text);
        for line in text.lines().filter(|l| l.contains("GovernedScanExec")) {
            assert!(
                !line.contains(&format!("Exact({})", s.total))
                    && !line.contains(&format!("Inexact({})", s.total))
                    && !line.contains(&format!("output_rows={}", s.total)),
                "{q}: the unfiltered row count in {line}"
            );
        }
    }
    // the administrator's plans are not governed: the scan is shown
    let text = rows(
        &e,
        &Principal::local_admin(),
        "EXPLAIN SELECT caller_phone FROM hotline.cases",
    )
    .await
    .unwrap()
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("\n");
    assert!(
        text.contains("DataSourceExec") && !text.contains("GovernedScanExec"),
        "{text}"
    );
    // file paths are relative to the lake, for everyone (plans and the catalog's table)
    let root = lake().to_string_lossy().trim_start_matches('/').to_string();
    let locations = rows(&e, &who, "SELECT location FROM system.datasets")
        .await
        .unwrap();
    assert!(
        !locations.is_empty() && !format!("{locations:?}").contains(&root),
        "{locations:?}"
    );
    assert!(
        text.contains("hotline/cases/") && !text.contains(&root),
        "{text}"
    );

    // a count over the governed dataset is computed, not read from statistics
    let n = rows(&e, &who, "SELECT count(*) FROM hotline.cases")
        .await
        .unwrap();
    assert_ne!(n[0][0], s.total);
}

/// A dataset's checks describe all of its rows and raw values: a principal
/// sees them only for datasets it reads in full.
#[tokio::test]
async fn data_quality_results_only_for_datasets_read_in_full() {
    let e = engine().await;
    let seen = |who: Principal| {
        let e = &e;
        async move {
            rows(
                e,
                &who,
                "SELECT DISTINCT dataset FROM system.data_quality ORDER BY 1",
            )
            .await
            .unwrap()
            .into_iter()
            .map(|r| r[0].clone())
            .collect::<Vec<_>>()
        }
    };
    let admin = seen(Principal::local_admin()).await;
    assert!(admin.contains(&"hotline.cases".to_string()), "{admin:?}");
    // the datasets with personal data: masked for dora and ana (no department,
    // no unmasked tags), so never read in full
    let personal: Vec<String> = rows(
        &e,
        &Principal::local_admin(),
        "SELECT DISTINCT schema_name || '.' || table_name FROM system.columns \
         WHERE pii IS NOT NULL AND pii <> '' ORDER BY 1",
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert!(personal.len() >= 2, "{personal:?}");
    for who in [dora(), analyst()] {
        let visible = seen(who.clone()).await;
        // what they read in full is there; what is filtered or masked is not
        assert!(
            visible.contains(&"traffic.segment_speed".to_string()),
            "{visible:?}"
        );
        for d in personal.iter().chain(["hotline.cases".to_string()].iter()) {
            assert!(!visible.contains(d), "{d} in {visible:?}");
        }
        let asked = rows(
            &e,
            &who,
            "SELECT count(*) FROM system.data_quality WHERE dataset = 'hotline.cases'",
        )
        .await
        .unwrap();
        assert_eq!(asked[0][0], "0");
    }
}

/// A dataset a principal may not list answers exactly like one that does not
/// exist, wherever it is named; one it may list but not read answers
/// "permission denied".
#[tokio::test]
async fn hidden_names_answer_like_missing_ones() {
    let e = engine().await;
    let cases = [
        (analyst(), "hotline.cases", "hotline.casez"),
        (dora(), "finance.expenditures", "finance.expenditurez"),
        (dora(), "finance.program_scores", "finance.program_scorez"),
    ];
    for (who, hidden, missing) in cases {
        for shape in [
            "SELECT * FROM {}",
            "SELECT count(*) FROM (SELECT * FROM {})",
            "WITH x AS (SELECT * FROM {}) SELECT * FROM x",
            "EXPLAIN SELECT * FROM {}",
            "SELECT * FROM common.districts d JOIN {} ON true",
            "SELECT * FROM city.{}",
            "SELECT * FROM common.districts WHERE EXISTS (SELECT 1 FROM {})",
        ] {
            let q = |name: &str| shape.replace("{}", name);
            let a = rows(&e, &who, &q(hidden)).await.unwrap_err();
            let b = rows(&e, &who, &q(missing)).await.unwrap_err();
            assert!(
                matches!(a, EngineError::NotFound { hidden: true, .. }),
                "{}: {a:?}",
                q(hidden)
            );
            assert!(
                matches!(b, EngineError::NotFound { hidden: false, .. }),
                "{}: {b:?}",
                q(missing)
            );
            let (ta, tb) = (a.to_string(), b.to_string());
            let tail = |n: &str| n.rsplit('.').next().unwrap().to_string();
            assert_eq!(
                ta.replace(&tail(hidden), "NAME"),
                tb.replace(&tail(missing), "NAME"),
                "{shape}"
            );
            // and with the whole error chain, as the command line prints it (`{:#}`)
            let chain = |err: EngineError| format!("{:#}", anyhow::Error::from(err));
            assert_eq!(
                chain(a).replace(&tail(hidden), "NAME"),
                chain(b).replace(&tail(missing), "NAME"),
                "{shape}"
            );
            assert!(!ta.contains("permission"), "{ta}");
        }
    }
    // listed but not readable: an auditor's metadata
    let auditor = principal("audrey", "auditor", &[]);
    let err = rows(&e, &auditor, "SELECT * FROM common.districts")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotAllowed(_)), "{err}");
    assert!(err.to_string().contains("permission denied"), "{err}");
    // metadata does not count hidden entries either
    let n = rows(
        &e,
        &analyst(),
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'hotline'",
    )
    .await
    .unwrap();
    assert_eq!(n[0][0], "0");
}

/// Statements of every shape, at the size limit and past it: each is answered
/// or refused with an error, none takes the process down. Run on an 8 MiB stack,
/// half of what the server's workers have.
#[test]
fn no_statement_shape_crashes_the_process() {
    use citylake_engine::{MAX_OPERATORS, MAX_SET_OPERATIONS};
    let n = MAX_OPERATORS;
    let sets = MAX_SET_OPERATIONS - 4;
    let shapes: Vec<(String, String)> = [
        "+",
        "-",
        "*",
        "/",
        "%",
        "||",
        "=",
        "<>",
        "<",
        ">",
        "<=",
        ">=",
        "AND",
        "OR",
        "&",
        "|",
        "#",
        "<<",
        ">>",
        "IS DISTINCT FROM",
        "LIKE",
        "ILIKE",
        "~",
        "@>",
    ]
    .iter()
    .map(|op| {
        let chain = |k: usize| format!("SELECT 1 {}", format!("{op} 1 ").repeat(k));
        (
            format!("chain of {op}"),
            chain(n / op.split(' ').count() - 8),
        )
    })
    .chain([
        (
            "unary minus".into(),
            format!("SELECT {}1", "- ".repeat(n - 8)),
        ),
        ("NOT".into(), format!("SELECT {}true", "NOT ".repeat(n - 8))),
        (
            "function nesting".into(),
            format!(
                "SELECT {}1{}",
                "abs(".repeat(n / 3 - 4),
                ")".repeat(n / 3 - 4)
            ),
        ),
        (
            "CASE nesting".into(),
            format!(
                "SELECT {}1{}",
                "CASE WHEN true THEN ".repeat(n / 5 - 4),
                " END".repeat(n / 5 - 4)
            ),
        ),
        (
            "subquery nesting".into(),
            format!(
                "SELECT * FROM {}SELECT 1{}",
                "(".repeat(n / 2 - 4),
                ") t".repeat(n / 2 - 4)
            ),
        ),
        (
            "UNION ALL".into(),
            format!("SELECT 1{}", " UNION ALL SELECT 1".repeat(sets)),
        ),
        (
            "UNION".into(),
            format!("SELECT 1{}", " UNION SELECT 1".repeat(sets)),
        ),
        (
            "INTERSECT".into(),
            format!("SELECT 1{}", " INTERSECT SELECT 1".repeat(sets)),
        ),
        (
            "EXCEPT".into(),
            format!("SELECT 1{}", " EXCEPT SELECT 1".repeat(sets)),
        ),
        (
            "joins".into(),
            format!(
                "SELECT 1 FROM (SELECT 1){}",
                " CROSS JOIN (SELECT 1)".repeat(sets / 2)
            ),
        ),
        ("CTE chain".into(), {
            let k = n / 8 - 4;
            let ctes: Vec<String> = (0..k)
                .map(|i| {
                    if i == 0 {
                        "c0 AS (SELECT 1 AS x)".to_string()
                    } else {
                        format!("c{i} AS (SELECT x + 1 AS x FROM c{})", i - 1)
                    }
                })
                .collect();
            format!("WITH {} SELECT x FROM c{}", ctes.join(", "), k - 1)
        }),
        (
            "IN list".into(),
            format!(
                "SELECT 1 WHERE 1 IN ({})",
                (0..50_000)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        (
            "array nesting".into(),
            format!("SELECT {}1{}", "[".repeat(n / 2 - 4), "]".repeat(n / 2 - 4)),
        ),
        (
            "casts".into(),
            format!("SELECT 1{}", "::BIGINT".repeat(n / 2 - 4)),
        ),
        (
            "long string".into(),
            format!("SELECT '{}'", "x".repeat(4 << 20)),
        ),
    ])
    .collect();
    let run = move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let e = engine().await;
            let who = dora();
            let mut answered = 0;
            for (name, sql) in &shapes {
                let started = std::time::Instant::now();
                // at the limit: an answer or a clear error
                if rows(&e, &who, sql).await.is_ok() {
                    answered += 1;
                }
                // past it: refused before planning
                let beyond = format!("{sql} {}", "+ 1 ".repeat(n));
                let err = rows(&e, &who, &beyond).await.unwrap_err().to_string();
                assert!(
                    err.contains("too complex")
                        || err.contains("recursion limit")
                        || err.contains("too large"),
                    "{name}: {err}"
                );
                eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64());
            }
            // past the limit on set operations, with few operators
            let unions = format!(
                "SELECT 1{}",
                " UNION ALL SELECT 1".repeat(MAX_SET_OPERATIONS + 1)
            );
            let err = rows(&e, &who, &unions).await.unwrap_err().to_string();
            assert!(err.contains("set operations"), "{err}");
            // a statement over the size limit
            let huge = format!(
                "SELECT '{}'",
                "x".repeat(citylake_engine::MAX_STATEMENT_BYTES)
            );
            let err = rows(&e, &who, &huge).await.unwrap_err().to_string();
            assert!(err.contains("too large"), "{err}");
            // the engine still answers
            assert_eq!(
                rows(&e, &who, "SELECT 1").await.unwrap(),
                vec![vec!["1".to_string()]]
            );
            answered
        })
    };
    let answered = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .expect("no statement may crash the engine");
    assert!(
        answered >= 10,
        "most shapes at the limit are answered: {answered}"
    );
}

/// A short statement whose plan grows exponentially: each common table
/// expression reads the one before twice. Planned as a tree, 30 levels are 2³⁰
/// scans (it ran for minutes until the kernel killed the process); the plan's
/// size is counted, with a stop at the limit, before anything walks it.
#[tokio::test]
async fn a_plan_that_doubles_with_each_cte_is_refused() {
    use citylake_engine::MAX_CTE_COPIES;
    let e = engine().await;
    let doubling = |levels: usize, outer: &str| {
        let ctes = (1..levels)
            .map(|i| {
                format!(
                    "c{i} AS (SELECT * FROM c{p} UNION ALL SELECT * FROM c{p})",
                    p = i - 1
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{outer}WITH c0 AS (SELECT 1 AS a), {ctes} SELECT count(*) FROM c{}",
            levels - 1
        )
    };
    // small: answered, 2^(levels-1) rows counted
    assert_eq!(
        rows(&e, &dora(), &doubling(8, "")).await.unwrap(),
        vec![vec!["128".to_string()]]
    );
    for outer in ["", "EXPLAIN ", "EXPLAIN VERBOSE ", "EXPLAIN ANALYZE "] {
        let sql = doubling(30, outer);
        assert!(sql.len() < 2000);
        let started = std::time::Instant::now();
        let err = rows(&e, &dora(), &sql).await.unwrap_err().to_string();
        assert!(
            err.contains("statement too complex") && err.contains(&MAX_CTE_COPIES.to_string()),
            "{err}"
        );
        eprintln!(
            "{outer}30 levels refused after {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
    // fewer copies of a larger CTE: refused by the plan's size, counted with a stop
    let wide = doubling(9, "").replacen(
        "SELECT 1 AS a",
        &format!("SELECT 1 AS a{}", " UNION ALL SELECT 1".repeat(40)),
        1,
    );
    let err = rows(&e, &dora(), &wide).await.unwrap_err().to_string();
    assert!(
        err.contains("statement too complex")
            && err.contains(&citylake_engine::MAX_PLAN_NODES.to_string()),
        "{err}"
    );
    // quoted names are other CTEs than their unquoted lower-case twins: a light
    // `aK` defined after each heavy `"AK"` must not overwrite its weight
    let quoted = (1..22)
        .map(|i| {
            format!(
                "\"A{i}\" AS (SELECT * FROM \"A{p}\" UNION ALL SELECT * FROM \"A{p}\"), a{i} AS (SELECT 1 AS x)",
                p = i - 1
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH \"A0\" AS (SELECT 1 AS x), a0 AS (SELECT 1 AS x), {quoted} SELECT count(*) FROM \"A21\""
    );
    let err = rows(&e, &dora(), &sql).await.unwrap_err().to_string();
    assert!(err.contains(&MAX_CTE_COPIES.to_string()), "{err}");
    // the same as a scalar subquery inside an expression
    let sql = format!("SELECT ({}) AS n", doubling(30, ""));
    let err = rows(&e, &dora(), &sql).await.unwrap_err().to_string();
    assert!(err.contains("statement too complex"), "{err}");
    assert_eq!(
        rows(&e, &dora(), "SELECT 1").await.unwrap(),
        vec![vec!["1".to_string()]]
    );
}

/// Values built from small statements: a function whose result outgrows its
/// arguments is checked before it builds it, while planning (constant folding)
/// and executing; a large constant is refused before it is repeated into every
/// row. Each answered with an error; the engine's memory stays small.
#[tokio::test]
async fn values_built_from_small_statements_are_bounded() {
    let e = engine().await;
    for (sql, says) in [
        (
            "SELECT length(repeat('x', 2147483647))",
            "repeat: the result would take",
        ),
        (
            "SELECT lpad(caller_name, 2000000000) FROM hotline.cases",
            "lpad: the result would take",
        ),
        (
            "SELECT cardinality(range(1, 500000000))",
            "range: the result would take",
        ),
        (
            "SELECT repeat(district, 100000000) FROM hotline.cases",
            "repeat: the result would take",
        ),
        (
            "SELECT repeat('ab', 50000), case_id FROM hotline.cases",
            "a statement's constants",
        ),
        // work, not size: one call cannot be stopped by a timeout (red team:
        // this held a thread for hours after its query had timed out)
        (
            "SELECT sum(levenshtein(repeat('a', 12000), repeat('b', 12000) || \
             CAST(value AS VARCHAR))) FROM generate_series(1, 300)",
            "levenshtein: 300 row(s) would compare",
        ),
        (
            "SELECT levenshtein(repeat('a', 20000), repeat('b', 20000))",
            "levenshtein: 1 row(s) would compare",
        ),
    ] {
        let err = match rows(&e, &dora(), sql).await {
            Ok(_) => panic!("{sql} was answered"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(says), "{sql}: {err}");
    }
    assert_eq!(
        rows(&e, &dora(), "SELECT length(repeat('x', 1000))")
            .await
            .unwrap(),
        vec![vec!["1000".to_string()]]
    );
    assert_eq!(
        rows(
            &e,
            &dora(),
            "SELECT min(levenshtein(district, 'Xihu')) FROM hotline.cases"
        )
        .await
        .unwrap(),
        vec![vec!["0".to_string()]]
    );
}

/// Planning counts against the query timeout: a query whose planning used up
/// its budget ends with the timeout error as soon as it runs (statements that
/// take long to plan cannot run on a fresh budget).
#[tokio::test]
async fn planning_time_counts_against_the_query_timeout() {
    use futures::TryStreamExt;
    use std::time::{Duration, Instant};
    let mut config = EngineConfig::new(lake().join("catalog.toml"));
    config.audit_dir = Some(tempfile::tempdir().unwrap().keep());
    config.limits.query_timeout = Some(Duration::from_secs(2));
    let e = Engine::new(config).await.unwrap();
    let session = e.session(dora());
    let sql = "SELECT count(*) FROM hotline.cases";
    let started = Instant::now();
    // as if the front end's work and planning had taken longer than the whole budget
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let late = async {
        session
            .query(QueryRequest::new(sql).started_at(started))
            .await?
            .try_collect::<Vec<_>>()
            .await
            .map_err(EngineError::from)
    }
    .await;
    let err = late.unwrap_err().to_string();
    assert!(err.contains("query timeout"), "{err}");
    // the same plan on a fresh budget runs
    let batches: Vec<_> = session
        .query(QueryRequest::new(sql))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

/// Query ids are not a sequence: the gaps between one user's ids say nothing
/// of how many queries other users ran in between.
#[tokio::test]
async fn query_ids_reveal_nothing_of_other_users_activity() {
    let e = engine().await;
    let mut ids = vec![];
    for _ in 0..3 {
        rows(&e, &analyst(), "SELECT 1").await.unwrap();
        // another user's query in between
        rows(&e, &Principal::local_admin(), "SELECT 2")
            .await
            .unwrap();
    }
    let mine = rows(
        &e,
        &analyst(),
        "SELECT query_id FROM system.queries WHERE sql = 'SELECT 1' ORDER BY started",
    )
    .await
    .unwrap();
    for r in &mine {
        ids.push(r[0].parse::<i64>().unwrap());
    }
    assert_eq!(ids.len(), 3, "{mine:?}");
    let steps: Vec<i64> = ids.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        steps.iter().all(|s| s.abs() > 1_000),
        "ids {ids:?} look like a sequence"
    );
}

/// Executing a query never takes the threads that serve requests. The test
/// runs on one thread, standing for the threads that serve the protocols and
/// plan; while one user's query computes one long batch (which no timeout or
/// cancel can cut short) in either lane, another user's query is planned and
/// answered on that thread, and the long one has still produced nothing.
/// Had its batch been computed on the serving thread, the short query could
/// not have ended before it (the red team's `levenshtein` once held the
/// administrator's `SELECT 1` for 108 s).
#[tokio::test(flavor = "current_thread")]
async fn a_long_batch_leaves_the_serving_thread_free() {
    // every query light, then none (the lane is chosen by the bytes of files
    // to scan: this one scans one small file)
    for (light_scan, lane) in [(u64::MAX, "light"), (0, "general")] {
        let mut config = EngineConfig::new(lake().join("catalog.toml"));
        config.audit_dir = Some(tempfile::tempdir().unwrap().keep());
        config.light_query_scan = light_scan;
        // (a thread for the long query and one for the rest, whatever the cores)
        config.light_query_threads = 2;
        config.general_query_threads = 2;
        let e = std::sync::Arc::new(Engine::new(config).await.unwrap());
        // one batch of 60 rows, 4 M character pairs each (under the bound)
        let long = "SELECT max(levenshtein(repeat('a', 2000) || CAST(lanes * 10 AS VARCHAR), \
                    repeat('b', 2000))) AS d FROM (SELECT lanes FROM traffic.road_segments LIMIT 60)";
        let heavy = tokio::spawn({
            let e = e.clone();
            async move { rows(&e, &analyst(), long).await }
        });
        let admin = Principal::local_admin();
        let watch = "SELECT lane, rows FROM system.queries \
                     WHERE sql LIKE '%levenshtein%' AND state = 'running' AND lane IS NOT NULL";
        // until the long query is planned and started in its lane
        let started = loop {
            let got = rows(&e, &admin, watch).await.unwrap();
            if !got.is_empty() {
                break got;
            }
            assert!(
                !heavy.is_finished(),
                "the long query ended before it was seen"
            );
            tokio::task::yield_now().await;
        };
        assert_eq!(started, vec![vec![lane.to_string(), "0".to_string()]]);
        let answered = rows(&e, &dora(), "SELECT 1 AS one").await.unwrap();
        assert_eq!(answered, vec![vec!["1".to_string()]]);
        // the long query is still at work and has returned nothing yet
        let still = rows(&e, &admin, watch).await.unwrap();
        assert_eq!(
            still, started,
            "{lane}: the long batch ran on the serving thread"
        );
        // and it ends with its answer
        let d = heavy.await.unwrap().unwrap();
        assert_eq!(d, vec![vec!["2002".to_string()]]);
    }
}

/// A query whose work cannot be estimated from the bytes it reads is never
/// light: rows made as it runs (`generate_series`, a recursive query) or a
/// product of its inputs (a cross or nested-loop join of small tables). Each
/// would otherwise take a light slot at the protocols' priority for as long
/// as it computes (red team: a CPU-heavy query over no files weighed 0 bytes).
/// What is known to be small stays light.
#[tokio::test]
async fn work_that_cannot_be_weighed_is_never_light() {
    let e = engine().await;
    let heavy = [
        "SELECT sum(value) AS s FROM generate_series(1, 1000)",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10) \
         SELECT max(n) AS m FROM t",
        // (rows filtered: how many is not known)
        "SELECT count(*) AS c FROM traffic.road_segments a \
         CROSS JOIN (SELECT * FROM traffic.road_segments WHERE lanes > 1) b",
        "SELECT count(*) AS c FROM traffic.road_segments a \
         JOIN (SELECT * FROM traffic.road_segments WHERE lanes > 1) b ON a.length_m < b.length_m",
    ];
    let light = [
        "SELECT 1 AS one",
        "SELECT count(*) AS c FROM traffic.road_segments",
        // a product with a side of one row weighs the other side; of two
        // sides of known rows, its inputs times the rows (the test lake's
        // road segments: a few thousand pairs)
        "SELECT count(*) AS c FROM traffic.road_segments \
         CROSS JOIN (SELECT max(lanes) AS m FROM traffic.road_segments)",
        "SELECT count(*) AS c FROM traffic.road_segments a CROSS JOIN traffic.road_segments b",
        "SELECT count(*) AS c FROM information_schema.tables",
    ];
    for sql in heavy.iter().chain(&light) {
        rows(&e, &analyst(), sql).await.unwrap();
    }
    let lanes: std::collections::BTreeMap<String, String> = rows(
        &e,
        &Principal::local_admin(),
        "SELECT sql, lane FROM system.queries WHERE user = 'ana'",
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    for sql in heavy {
        assert_eq!(
            lanes.get(sql).map(String::as_str),
            Some("general"),
            "{sql}: {lanes:?}"
        );
    }
    for sql in light {
        assert_eq!(
            lanes.get(sql).map(String::as_str),
            Some("light"),
            "{sql}: {lanes:?}"
        );
    }
}

/// `e` says each of `words` and is of `class`.
fn refused_as(e: &EngineError, words: &[&str], class: ErrorClass) {
    let text = e.to_string();
    assert!(words.iter().all(|w| text.contains(w)), "{text}");
    assert_eq!(e.class(), class, "{text}");
}

/// An SF 0.01 lake of Delta datasets whose ingest requests may hold 40 KiB,
/// alone or together (`configure` changes more), and a delivery of about
/// 25 KiB of `traffic.segment_speed`'s own rows: one fits, two do not.
async fn ingest_lake(
    configure: impl FnOnce(&mut EngineConfig),
) -> (
    tempfile::TempDir,
    Engine,
    datafusion::arrow::array::RecordBatch,
) {
    use futures::TryStreamExt;

    let dir = tempfile::tempdir().unwrap();
    let mut options = citylake_datasets::GenerateOptions::new(0.01, dir.path());
    options.format = citylake_engine::catalog::Format::Delta;
    citylake_datasets::generate(&options, &citylake_datasets::NoProgress).unwrap();
    let mut config = EngineConfig::new(dir.path().join("catalog.toml"));
    config.audit_dir = Some(dir.path().join("audit"));
    config.max_ingest_bytes = 40 << 10;
    config.max_ingest_memory = 40 << 10;
    configure(&mut config);
    let e = Engine::new(config).await.unwrap();
    let batches: Vec<_> = e
        .session(principal("tp", "traffic", &[]))
        .sql("SELECT * FROM traffic.segment_speed ORDER BY observed_at LIMIT 700")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let delivery =
        datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    (dir, e, delivery)
}

/// An ingest's batches as a client that sends `delivery` and then stalls
/// sends them (the stream never ends); the receiver resolves once the
/// delivery was taken in.
fn stalling(
    delivery: datafusion::arrow::array::RecordBatch,
) -> (
    impl futures::Stream<Item = Result<datafusion::arrow::array::RecordBatch, EngineError>> + Send,
    tokio::sync::oneshot::Receiver<()>,
) {
    use futures::StreamExt;
    let (held, holding) = tokio::sync::oneshot::channel::<()>();
    let stream = futures::stream::iter([Ok(delivery)]).chain(
        futures::stream::once(async move {
            let _ = held.send(());
            futures::future::pending::<()>().await;
        })
        .filter_map(|()| async { None }),
    );
    (stream, holding)
}

/// Ingest requests hold their batches until their commits; what they hold
/// together is bounded (`max_ingest_memory`), or many at once could take the
/// server's memory (sixteen 60 MiB deliveries once took it to about 1 GiB). A
/// batch beyond the bound is refused at once as "busy" (not kept waiting
/// while holding the others), the message names no other request, and once
/// the holder commits the same delivery goes through.
#[tokio::test]
async fn ingest_requests_together_hold_no_more_than_the_bound() {
    use citylake_engine::datafusion::common::TableReference;
    use futures::StreamExt;

    let (_dir, e, delivery) = ingest_lake(|_| {}).await;
    let tp = principal("tp", "traffic", &[]);
    let table = || TableReference::parse_str("traffic.segment_speed");

    // the first request sends its batch and holds it, waiting for more
    let (more, wait) = tokio::sync::oneshot::channel::<()>();
    let (held, holding) = tokio::sync::oneshot::channel::<()>();
    let first = futures::stream::iter([Ok(delivery.clone())]).chain(
        futures::stream::once(async move {
            // polled once the first batch was taken in
            let _ = held.send(());
            let _ = wait.await;
        })
        .filter_map(|()| async { None }),
    );
    let first = tokio::spawn({
        let (e, session) = (e.clone(), e.session(tp.clone()));
        async move { e.ingest(&session, table(), first).await }
    });
    holding.await.unwrap();

    // another writer's delivery beyond the bound is refused at once, as busy
    let second = || futures::stream::iter([Ok(delivery.clone())]);
    let tp2 = principal("tp2", "traffic", &[]);
    let refused = e
        .ingest(&e.session(tp2.clone()), table(), second())
        .await
        .unwrap_err();
    refused_as(
        &refused,
        &["server busy", "--max-ingest-memory"],
        ErrorClass::ResourceExhausted,
    );
    // and so is the same writer's second request: one user's requests hold
    // one request's worth at most, so one writer cannot keep the whole bound
    let refused = e
        .ingest(&e.session(tp.clone()), table(), second())
        .await
        .unwrap_err();
    refused_as(
        &refused,
        &["your ingest requests"],
        ErrorClass::ResourceExhausted,
    );

    // the first commits; then the second goes through
    more.send(()).unwrap();
    let written = first.await.unwrap().unwrap();
    assert_eq!(written.rows, delivery.num_rows() as u64);
    assert!((21 << 10..40 << 10).contains(&written.bytes), "{written:?}");
    for who in [&tp2, &tp] {
        let again = e
            .ingest(&e.session(who.clone()), table(), second())
            .await
            .unwrap();
        assert_eq!(again.rows, delivery.num_rows() as u64);
    }
}

/// An ingest whose client sends part of its data and then stalls (or trickles)
/// held its batches for as long as the connection stayed open: the bound of
/// what all requests hold could be kept full by a few accounts that never
/// finish. Its batches must all arrive within the ingest timeout; then the
/// request is refused and what it held is given back.
#[tokio::test]
async fn an_ingest_that_stalls_gives_back_what_it_holds() {
    use citylake_engine::datafusion::common::TableReference;

    let (_dir, e, delivery) =
        ingest_lake(|c| c.ingest_timeout = std::time::Duration::from_secs(3)).await;
    let tp = principal("tp", "traffic", &[]);
    let table = || TableReference::parse_str("traffic.segment_speed");
    let count = "SELECT count(*) FROM traffic.segment_speed";
    let before = rows(&e, &tp, count).await.unwrap();
    // one batch, then nothing (a client that stalls: the stream never ends)
    let (stalled, holding) = stalling(delivery.clone());
    let first = tokio::spawn({
        let (e, session) = (e.clone(), e.session(tp.clone()));
        async move { e.ingest(&session, table(), stalled).await }
    });
    holding.await.unwrap();
    // while it holds its batch, another writer is busy
    let tp2 = principal("tp2", "traffic", &[]);
    let busy = e
        .ingest(
            &e.session(tp2.clone()),
            table(),
            futures::stream::iter([Ok(delivery.clone())]),
        )
        .await
        .unwrap_err();
    assert!(busy.to_string().contains("server busy"), "{busy}");

    // the stalled request ends at its deadline, with a timeout that says so
    // (a guard far beyond it: without the deadline the request never ends)
    let refused = tokio::time::timeout(std::time::Duration::from_secs(120), first)
        .await
        .expect("the stalled ingest was never ended")
        .unwrap()
        .unwrap_err();
    refused_as(
        &refused,
        &["ingest timeout", "--ingest-timeout"],
        ErrorClass::Timeout,
    );
    // nothing of it was written, and what it held is free again: both
    // writers' deliveries go through (each alone fills the bound)
    let after = rows(&e, &tp, count).await.unwrap();
    assert_eq!(before, after);
    for who in [&tp2, &tp] {
        let written = e
            .ingest(
                &e.session(who.clone()),
                table(),
                futures::stream::iter([Ok(delivery.clone())]),
            )
            .await
            .unwrap();
        assert_eq!(written.rows, delivery.num_rows() as u64);
    }
    // a client that goes away mid-request (its call dropped) is recorded too
    let (abandoned, holding) = stalling(delivery.clone());
    let gone = tokio::spawn({
        let (e, session) = (e.clone(), e.session(tp.clone()));
        async move { e.ingest(&session, table(), abandoned).await }
    });
    holding.await.unwrap();
    gone.abort();
    assert!(gone.await.unwrap_err().is_cancelled());
    // (a query's record is written after it: the trail is then up to date)
    rows(&e, &tp, "SELECT 1").await.unwrap();

    // and the trail says what happened to each
    let trail = rows(
        &e,
        &Principal::local_admin(),
        "SELECT outcome, error FROM system.audit_log WHERE kind = 'ingest' ORDER BY seq",
    )
    .await
    .unwrap();
    let outcomes: Vec<&str> = trail.iter().map(|r| r[0].as_str()).collect();
    // (the busy refusal, the timeout, the two deliveries, the one dropped)
    assert_eq!(
        outcomes,
        ["refused", "timed_out", "ok", "ok", "dropped"],
        "{trail:?}"
    );
    assert!(trail[4][1].contains("client went away"), "{trail:?}");
}

/// `system.data_quality` reads whole datasets. Its checks once ran while its
/// query was planned, weighed as light (red team: 347 ms against a 20 ms
/// timeout, stopped only after them). They now run when the plan is executed,
/// in the general lane, where the query's timeout and cancel stop its work.
#[tokio::test]
async fn data_quality_checks_run_when_executed_as_a_long_scan() {
    let e = engine().await;
    let admin = Principal::local_admin();
    let plan = rows(
        &e,
        &admin,
        "EXPLAIN SELECT count(*) FROM system.data_quality",
    )
    .await
    .unwrap();
    let plan = format!("{plan:?}");
    assert!(plan.contains("QualityExec"), "{plan}");
    let n = rows(&e, &admin, "SELECT count(*) FROM system.data_quality")
        .await
        .unwrap();
    assert_ne!(n[0][0], "0");
    let lanes = rows(
        &e,
        &admin,
        "SELECT DISTINCT lane FROM system.queries \
         WHERE sql = 'SELECT count(*) FROM system.data_quality' AND state = 'ok'",
    )
    .await
    .unwrap();
    assert_eq!(lanes, vec![vec!["general".to_string()]]);
}
