//! The access policy, enforced in the catalog each session sees: who sees
//! which datasets, masking that holds whatever a query does with a masked
//! column, row filters applied before anything else, refusals naming the
//! table, hot reload of the policy file. Over a generated SF 0.01 lake with
//! the default policy.

use std::collections::BTreeMap;

use citylake_engine::datafusion::arrow::array::RecordBatch;
use citylake_engine::datafusion::common::ScalarValue;
use citylake_engine::{Engine, EngineConfig, EngineError, Principal};
use futures::TryStreamExt;

mod common;
use common::{lake, rows};

async fn engine() -> Engine {
    Engine::new(EngineConfig::new(lake().join("catalog.toml")))
        .await
        .unwrap()
}

fn user(roles: &[&str], department: Option<&str>, attrs: &[(&str, &str)]) -> Principal {
    Principal {
        user: format!("{}-user", roles.join("+")),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        department: department.map(str::to_string),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Rows of `SELECT case_id FROM hotline.cases WHERE caller_phone = $1` with
/// `phone` bound, planned and executed as `who`.
async fn prepared_phone_lookup(engine: &Engine, who: &Principal, phone: &str) -> usize {
    let session = engine.session(who.clone());
    let request = citylake_engine::QueryRequest::new(
        "SELECT case_id FROM hotline.cases WHERE caller_phone = $1",
    )
    .with_parameters(vec![ScalarValue::from(phone)], phone);
    let batches: Vec<RecordBatch> = session
        .query(request)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

fn district_analyst() -> Principal {
    user(&["district_analyst"], None, &[("district", "Xihu")])
}

fn is_masked_phone(s: &str) -> bool {
    s.len() == 11 && s[3..7] == *"****" && s[..3].bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn a_district_analyst_sees_their_district_with_personal_data_masked() {
    let e = engine().await;
    let who = district_analyst();
    let districts = rows(&e, &who, "SELECT DISTINCT district FROM hotline.cases")
        .await
        .unwrap();
    assert_eq!(districts, vec![vec!["Xihu".to_string()]]);
    let admin = Principal::local_admin();
    let all_xihu = rows(
        &e,
        &admin,
        "SELECT count(*) FROM hotline.cases WHERE district = 'Xihu'",
    )
    .await
    .unwrap();
    let mine = rows(&e, &who, "SELECT count(*) FROM hotline.cases")
        .await
        .unwrap();
    assert_eq!(mine, all_xihu);
    let sample = rows(&e, &who, "SELECT caller_name, caller_phone, caller_id_number FROM hotline.cases WHERE caller_phone IS NOT NULL LIMIT 50").await.unwrap();
    assert!(!sample.is_empty());
    for r in &sample {
        assert_eq!(r[0].chars().count(), 2, "{r:?}");
        assert!(r[0].ends_with('*'), "{r:?}");
        assert!(is_masked_phone(&r[1]), "{r:?}");
        if r[2] != "NULL" {
            assert_eq!(&r[2][6..14], "********", "{r:?}");
        }
    }
    // finance payees (restricted, not granted): as if the table did not exist
    let err = rows(&e, &who, "SELECT payee FROM finance.expenditures")
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::NotFound { hidden: true, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not found"), "{err}");
}

/// At least thirty ways to get at a masked value or another district's rows;
/// each must come back masked, filtered or refused.
#[tokio::test]
async fn bypass_attempts_return_masked_or_filtered_data_or_are_refused() {
    let e = engine().await;
    let admin = Principal::local_admin();
    let who = district_analyst();
    // a real phone number and name of a caller in Xihu, and one elsewhere
    let real = rows(&e, &admin, "SELECT caller_phone, caller_name, caller_id_number, case_id FROM hotline.cases WHERE district = 'Xihu' AND caller_phone IS NOT NULL ORDER BY case_id LIMIT 1").await.unwrap().remove(0);
    let (phone, name, id_number) = (&real[0], &real[1], &real[2]);
    let elsewhere = rows(
        &e,
        &admin,
        "SELECT case_id FROM hotline.cases WHERE district <> 'Xihu' ORDER BY case_id LIMIT 1",
    )
    .await
    .unwrap()
    .remove(0)[0]
        .clone();

    // queries that must return no row
    let empty = [
        format!("SELECT case_id FROM hotline.cases WHERE caller_phone = '{phone}'"),
        format!("SELECT case_id FROM hotline.cases WHERE caller_phone LIKE '{phone}'"),
        format!("SELECT case_id FROM hotline.cases WHERE caller_phone IN ('{phone}', 'x')"),
        format!("SELECT case_id FROM hotline.cases WHERE caller_name = '{name}'"),
        format!("SELECT case_id FROM hotline.cases WHERE caller_id_number = '{id_number}'"),
        format!(
            "SELECT case_id FROM hotline.cases WHERE substr(caller_phone, 4, 4) = '{}'",
            &phone[3..7]
        ),
        format!(
            "SELECT case_id FROM hotline.cases WHERE caller_phone > '{}' AND caller_phone < '{}'",
            &phone[..10],
            phone
        ),
        format!("SELECT case_id FROM hotline.cases WHERE case_id = {elsewhere}"),
        "SELECT case_id FROM hotline.cases WHERE district <> 'Xihu'".to_string(),
        "SELECT * FROM hotline.cases WHERE district = 'Shangcheng'".to_string(),
        format!(
            "WITH c AS (SELECT * FROM hotline.cases) SELECT case_id FROM c WHERE caller_phone = '{phone}'"
        ),
        format!(
            "SELECT case_id FROM (SELECT * FROM hotline.cases) t WHERE t.caller_phone = '{phone}'"
        ),
        format!(
            "SELECT a.case_id FROM hotline.cases a JOIN hotline.cases b ON a.case_id = b.case_id WHERE b.caller_phone = '{phone}'"
        ),
        format!(
            "SELECT case_id FROM hotline.cases WHERE EXISTS (SELECT 1 FROM hotline.cases i WHERE i.caller_phone = '{phone}')"
        ),
        format!(
            "SELECT case_id FROM hotline.cases WHERE position('{}' IN caller_phone) > 0",
            &phone[5..9]
        ),
        format!("SELECT case_id FROM hotline.cases WHERE md5(caller_phone) = md5('{phone}')"),
        format!(
            "SELECT case_id FROM hotline.cases WHERE CAST(caller_phone AS VARCHAR) = '{phone}'"
        ),
        format!(
            "SELECT case_id FROM hotline.cases WHERE regexp_like(caller_phone, '^{}')",
            &phone[..7]
        ),
    ];
    for q in &empty {
        let r = rows(&e, &who, q).await.unwrap_or_default();
        assert!(r.is_empty(), "{q} returned {r:?}");
    }
    // queries whose every value must be masked
    let masked_phone = [
        "SELECT caller_phone FROM hotline.cases",
        "SELECT max(caller_phone) FROM hotline.cases",
        "SELECT min(caller_phone) FROM hotline.cases",
        "SELECT DISTINCT caller_phone FROM hotline.cases",
        "SELECT caller_phone FROM hotline.cases ORDER BY caller_phone LIMIT 3",
        "SELECT first_value(caller_phone) OVER (ORDER BY case_id) FROM hotline.cases",
        "SELECT caller_phone FROM hotline.cases UNION SELECT caller_phone FROM hotline.cases",
        "SELECT x FROM (SELECT caller_phone AS x FROM hotline.cases) LIMIT 5",
        "WITH t AS (SELECT caller_phone FROM hotline.cases) SELECT * FROM t",
        "SELECT caller_phone FROM hotline.cases c, LATERAL (SELECT 1) AS one(x)",
        "SELECT array_agg(caller_phone)[1] FROM hotline.cases",
        "SELECT string_agg(caller_phone, ',') FROM (SELECT caller_phone FROM hotline.cases LIMIT 3)",
        "SELECT CAST(caller_phone AS VARCHAR) FROM hotline.cases",
        "SELECT coalesce(caller_phone, 'none') FROM hotline.cases WHERE caller_phone IS NOT NULL",
    ];
    for q in &masked_phone {
        let r = rows(&e, &who, q).await.unwrap();
        assert!(!r.is_empty(), "{q}");
        for row in &r {
            for v in row[0].split(',').filter(|v| *v != "NULL" && *v != "none") {
                let v = v.trim_matches(|c| c == '[' || c == ']');
                assert!(is_masked_phone(v), "{q}: {v}");
            }
        }
    }
    // character probing sees stars, counting sees masked values
    let stars = rows(&e, &who, "SELECT DISTINCT substr(caller_phone, 4, 4) FROM hotline.cases WHERE caller_phone IS NOT NULL").await.unwrap();
    assert_eq!(stars, vec![vec!["****".to_string()]]);
    let lengths = rows(
        &e,
        &who,
        "SELECT DISTINCT length(caller_name) FROM hotline.cases WHERE caller_name IS NOT NULL",
    )
    .await
    .unwrap();
    assert_eq!(lengths, vec![vec!["2".to_string()]]);
    let distinct = rows(
        &e,
        &who,
        "SELECT count(DISTINCT caller_phone) FROM hotline.cases",
    )
    .await
    .unwrap();
    let real_distinct = rows(
        &e,
        &admin,
        "SELECT count(DISTINCT caller_phone) FROM hotline.cases WHERE district = 'Xihu'",
    )
    .await
    .unwrap();
    assert!(distinct[0][0].parse::<i64>().unwrap() <= real_distinct[0][0].parse::<i64>().unwrap());
    // EXPLAIN shows the barrier and nothing beneath it (engine/tests/attacks.rs)
    let plan = rows(
        &e,
        &who,
        &format!("EXPLAIN SELECT * FROM hotline.cases WHERE caller_phone = '{phone}'"),
    )
    .await
    .unwrap();
    let text = format!("{plan:?}");
    assert!(
        text.contains("GovernedScanExec") && !text.contains("citylake_mask"),
        "{text}"
    );
    // a prepared statement with the hidden value bound as its parameter (as the
    // server binds Flight SQL parameters) finds nothing either, while the
    // administrator's finds the case
    assert_eq!(prepared_phone_lookup(&e, &who, phone).await, 0);
    assert!(prepared_phone_lookup(&e, &admin, phone).await >= 1);
    // tables not granted (and not listed): not found, wherever they are named
    for q in [
        "SELECT * FROM finance.expenditures",
        "SELECT count(*) FROM (SELECT payee FROM finance.expenditures)",
        "WITH p AS (SELECT * FROM finance.expenditures) SELECT * FROM p",
        "EXPLAIN SELECT payee FROM finance.expenditures",
        "SELECT * FROM hotline.cases h JOIN finance.expenditures e ON true",
        "SELECT * FROM city.finance.expenditures",
        "SELECT total_score FROM finance.program_scores",
    ] {
        let err = rows(&e, &who, q).await.unwrap_err();
        assert!(
            matches!(err, EngineError::NotFound { hidden: true, .. }),
            "{q}: {err}"
        );
        assert!(err.to_string().contains("not found"), "{q}: {err}");
    }
}

/// A missing table's error suggests the nearest name the principal may list —
/// and only such names: a hidden dataset is never suggested, and naming one
/// (or a near miss of one) reads exactly as naming a table that never existed.
#[tokio::test]
async fn did_you_mean_suggests_only_visible_names() {
    let e = engine().await;
    let analyst = user(&["analyst"], None, &[]);
    let admin = user(&["admin"], None, &[]);
    let message = async |who, sql: &str| rows(&e, who, sql).await.unwrap_err().to_string();
    assert!(
        message(&analyst, "SELECT * FROM traffic.segment_sped")
            .await
            .ends_with("did you mean traffic.segment_speed?"),
    );
    assert!(
        message(&analyst, "SELECT * FROM segment_speed")
            .await
            .contains("did you mean traffic.segment_speed?"),
    );
    // the administrator is pointed at hotline.cases; the analyst, who may not
    // list it, never is — the misspelt and the exact hidden name get the same
    // kind of answer as a name that does not exist anywhere
    assert!(
        message(&admin, "SELECT * FROM hotline.case")
            .await
            .contains("did you mean hotline.cases?")
    );
    for sql in [
        "SELECT * FROM hotline.case",
        "SELECT * FROM hotline.cases",
        "SELECT * FROM finance.expenditure",
        "SELECT * FROM finance.expenditures",
    ] {
        let m = message(&analyst, sql).await;
        assert!(
            !m.contains("hotline.cases?") && !m.contains("finance.expenditures?"),
            "{sql}: {m}"
        );
    }
    // nothing near: no suggestion
    assert!(
        !message(&analyst, "SELECT * FROM zzz.qqqqqq")
            .await
            .contains("did you mean")
    );
}

#[tokio::test]
async fn metadata_lists_only_what_a_principal_may_see() {
    let e = engine().await;
    let analyst = user(&["analyst"], None, &[]);
    let names = |rows: Vec<Vec<String>>| rows.into_iter().map(|r| r.join(".")).collect::<Vec<_>>();
    let tables = names(rows(&e, &analyst, "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = 'city'").await.unwrap());
    assert!(tables.contains(&"traffic.segment_speed".to_string()));
    assert!(!tables.contains(&"hotline.cases".to_string()), "{tables:?}");
    assert!(!tables.contains(&"finance.expenditures".to_string()));
    let listed = names(
        rows(&e, &analyst, "SELECT name FROM system.datasets")
            .await
            .unwrap(),
    );
    assert!(
        !listed.contains(&"hotline.cases".to_string())
            && listed.contains(&"common.districts".to_string()),
        "{listed:?}"
    );
    let cols = rows(
        &e,
        &analyst,
        "SELECT count(*) FROM system.columns WHERE table_name = 'cases'",
    )
    .await
    .unwrap();
    assert_eq!(cols[0][0], "0");
    let err = rows(&e, &analyst, "SELECT * FROM hotline.cases")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not found") && err.to_string().contains("cases"),
        "{err}"
    );
    // the data-quality checks of hidden datasets are hidden too, even asked for by name
    let quality = names(
        rows(
            &e,
            &analyst,
            "SELECT DISTINCT dataset FROM system.data_quality ORDER BY 1",
        )
        .await
        .unwrap(),
    );
    assert!(
        quality.contains(&"traffic.segment_speed".to_string())
            && !quality.contains(&"hotline.cases".to_string()),
        "{quality:?}"
    );
    let asked = rows(
        &e,
        &analyst,
        "SELECT count(*) FROM system.data_quality WHERE dataset = 'hotline.cases'",
    )
    .await
    .unwrap();
    assert_eq!(asked[0][0], "0");

    // an auditor sees the metadata of everything and no data
    let auditor = user(&["auditor"], None, &[]);
    let tables = names(rows(&e, &auditor, "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = 'city'").await.unwrap());
    assert!(tables.contains(&"hotline.cases".to_string()), "{tables:?}");
    // …but not the data-quality results, which describe the data
    let quality = rows(
        &e,
        &auditor,
        "SELECT status FROM system.data_quality WHERE dataset = 'hotline.cases' AND \"check\" = 'uniqueness'",
    )
    .await
    .unwrap();
    assert!(quality.is_empty(), "{quality:?}");
    assert!(
        rows(&e, &auditor, "SELECT count(*) FROM common.districts")
            .await
            .is_err()
    );
    // the audit log: the auditor reads it, an analyst may not
    let session = e.session(auditor.clone());
    session
        .audit(
            citylake_engine::audit::AuditRecord::new("query", "SELECT 42", "ok").returned(1, 8),
            None,
        )
        .await
        .unwrap();
    let logged = rows(
        &e,
        &auditor,
        "SELECT count(*) FROM system.audit_log WHERE request = 'SELECT 42'",
    )
    .await
    .unwrap();
    assert_ne!(logged[0][0], "0");
    let err = rows(&e, &analyst, "SELECT * FROM system.audit_log")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("system.audit_log"), "{err}");
}

#[tokio::test]
async fn departments_and_finance_see_their_own_data_unmasked() {
    let e = engine().await;
    let admin = Principal::local_admin();
    let real = rows(
        &e,
        &admin,
        "SELECT caller_name FROM hotline.cases ORDER BY case_id LIMIT 5",
    )
    .await
    .unwrap();
    let hotline = user(&["hotline"], None, &[]);
    assert_eq!(
        rows(
            &e,
            &hotline,
            "SELECT caller_name FROM hotline.cases ORDER BY case_id LIMIT 5"
        )
        .await
        .unwrap(),
        real
    );
    // the owner department, whatever its role
    let owner = user(&["analyst"], Some("hotline"), &[]);
    assert_eq!(
        rows(
            &e,
            &owner,
            "SELECT caller_name FROM hotline.cases ORDER BY case_id LIMIT 5"
        )
        .await
        .unwrap(),
        real
    );
    let payees = rows(
        &e,
        &admin,
        "SELECT payee FROM finance.expenditures ORDER BY expenditure_id LIMIT 5",
    )
    .await
    .unwrap();
    let finance = user(&["finance"], None, &[]);
    assert_eq!(
        rows(
            &e,
            &finance,
            "SELECT payee FROM finance.expenditures ORDER BY expenditure_id LIMIT 5"
        )
        .await
        .unwrap(),
        payees
    );
    // the finance views run for finance, over what finance may read
    let scores = rows(&e, &finance, "SELECT count(*) FROM finance.program_scores")
        .await
        .unwrap();
    assert_eq!(
        scores,
        rows(&e, &admin, "SELECT count(*) FROM finance.program_scores")
            .await
            .unwrap()
    );
    // the environment bureau reads hotline cases? no: restricted, not its own
    let env = user(&["environment"], None, &[]);
    assert!(
        rows(&e, &env, "SELECT count(*) FROM hotline.cases")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_policy_file_reloads_and_a_broken_one_keeps_the_old_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, citylake_engine::policy::DEFAULT_POLICY).unwrap();
    let mut config = EngineConfig::new(lake().join("catalog.toml"));
    config.policy = Some(path.clone());
    let e = Engine::new(config).await.unwrap();
    let analyst = user(&["analyst"], None, &[]);
    assert!(
        rows(&e, &analyst, "SELECT count(*) FROM hotline.cases")
            .await
            .is_err()
    );

    // grant the analysts the hotline cases (a file with a new modification time)
    std::thread::sleep(std::time::Duration::from_millis(20));
    let granted = citylake_engine::policy::DEFAULT_POLICY.replace(
        "name = \"analyst\"\ndescription = \"every dataset that is not restricted, all personal information masked\"\nread = [\"*\"]",
        "name = \"analyst\"\nread = [\"*\", \"hotline.cases\"]",
    );
    assert_ne!(granted, citylake_engine::policy::DEFAULT_POLICY);
    std::fs::write(&path, &granted).unwrap();
    set_mtime_forward(&path, 5);
    let r = rows(&e, &analyst, "SELECT count(*) FROM hotline.cases")
        .await
        .unwrap();
    assert_ne!(r[0][0], "0");

    // a broken file: reported, the last good policy stays
    std::fs::write(&path, "[[roles]]\nname = 3\n").unwrap();
    set_mtime_forward(&path, 10);
    assert!(
        rows(&e, &analyst, "SELECT count(*) FROM hotline.cases")
            .await
            .is_ok()
    );
    // and a bad policy at start is an error naming the file
    let mut config = EngineConfig::new(lake().join("catalog.toml"));
    config.policy = Some(path.clone());
    let err = Engine::new(config).await.unwrap_err();
    assert!(err.to_string().contains("policy.toml"), "{err}");
}

/// Moves a file's modification time `secs` into the future (coarse file-system clocks).
fn set_mtime_forward(path: &std::path::Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(secs))
        .unwrap();
}

#[tokio::test]
async fn a_roles_limits_replace_the_global_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let policy = format!(
        "{}\n[[roles]]\nname = \"capped\"\nread = [\"*\"]\nmax_result_rows = 5\n",
        citylake_engine::policy::DEFAULT_POLICY
    );
    std::fs::write(&path, policy).unwrap();
    let mut config = EngineConfig::new(lake().join("catalog.toml"));
    config.policy = Some(path);
    config.limits.max_result_rows = Some(100);
    let e = Engine::new(config).await.unwrap();
    // the role's 5 rows, not the global 100
    let err = rows(
        &e,
        &user(&["capped"], None, &[]),
        "SELECT * FROM common.districts",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("more than 5 rows") && err.contains("max_result_rows"),
        "{err}"
    );
    // an analyst gets the global limit: 13 rows pass, 288 do not
    let analyst = user(&["analyst"], None, &[]);
    assert_eq!(
        rows(&e, &analyst, "SELECT * FROM common.districts")
            .await
            .unwrap()
            .len(),
        13
    );
    let err = rows(
        &e,
        &analyst,
        "SELECT * FROM traffic.segment_speed WHERE dt = DATE '2025-03-03' AND segment_id = 1",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("more than 100 rows"), "{err}");
    // system.queries shows the analyst their own query stopped by a limit (not the capped user's)
    let failed = rows(
        &e,
        &analyst,
        "SELECT count(*) FROM system.queries WHERE state = 'over_limit'",
    )
    .await
    .unwrap();
    assert_eq!(failed[0][0], "1");
}

/// A view over row-filtered inputs is planned for the principal: a district
/// analyst reads `situation.district_daily` computed from what they may read
/// of its inputs (every input with a district column, filtered to their
/// district) — exactly what an administrator gets from the view's SQL with
/// the same filter applied to each input by hand.
#[tokio::test]
async fn a_view_over_filtered_inputs_is_planned_for_the_principal() {
    let e = engine().await;
    let who = district_analyst();
    let admin = Principal::local_admin();
    let shape = "SELECT district, CAST(day AS VARCHAR), aqi, tpi, cases_per_10k, situation_index \
                 FROM {} WHERE day BETWEEN DATE '2025-03-01' AND DATE '2025-03-07' ORDER BY 1, 2";
    let theirs = rows(&e, &who, &shape.replace("{}", "situation.district_daily"))
        .await
        .unwrap();
    assert_eq!(theirs.len(), 7, "{theirs:?}");
    assert!(theirs.iter().all(|r| r[0] == "Xihu"), "{theirs:?}");
    let view = std::fs::read_to_string(lake().join("views/situation_district_daily.sql")).unwrap();
    let mut by_hand = view.clone();
    for (table, alias) in [
        ("hotline.cases", "cases"),
        ("environment.air_stations", "stations"),
        ("traffic.road_segments", "segments"),
        ("common.districts", "districts"),
    ] {
        let filtered = by_hand.replace(
            &format!("FROM {table}"),
            &format!("FROM (SELECT * FROM {table} WHERE district = 'Xihu') AS {alias}"),
        );
        let filtered = filtered.replace(
            &format!("JOIN {table}"),
            &format!("JOIN (SELECT * FROM {table} WHERE district = 'Xihu')"),
        );
        assert_ne!(filtered, by_hand, "the view reads {table}");
        by_hand = filtered;
    }
    let by_hand = by_hand.trim().trim_end_matches(';');
    let expected = rows(
        &e,
        &admin,
        &shape.replace("{}", &format!("({by_hand}) AS v")),
    )
    .await
    .unwrap();
    assert_eq!(theirs, expected);
    // not the unfiltered view's Xihu rows: the indicators were computed from Xihu alone
    let unfiltered = rows(&e, &admin, &shape.replace("{}", "situation.district_daily"))
        .await
        .unwrap();
    let unfiltered_xihu: Vec<_> = unfiltered.into_iter().filter(|r| r[0] == "Xihu").collect();
    assert_eq!(unfiltered_xihu.len(), 7);
    assert_ne!(theirs, unfiltered_xihu);
}

/// A user's attributes reach the row filter as literal values in its parsed
/// expression: an attribute holding SQL matches nothing (it is a district
/// name no row has), and a missing attribute is NULL (no row either).
#[tokio::test]
async fn attributes_are_values_in_the_row_filter_never_sql() {
    let e = engine().await;
    for district in ["Xihu' OR 'a' = 'a", "Xihu') OR (TRUE", "Xihu\\' OR 1=1 --"] {
        let who = user(&["district_analyst"], None, &[("district", district)]);
        let n = rows(&e, &who, "SELECT count(*) FROM hotline.cases")
            .await
            .unwrap();
        assert_eq!(n[0][0], "0", "{district}");
    }
    let nowhere = user(&["district_analyst"], None, &[]);
    let n = rows(&e, &nowhere, "SELECT count(*) FROM hotline.cases")
        .await
        .unwrap();
    assert_eq!(n[0][0], "0");
    // the same filter with a real district keeps that district's rows
    let n = rows(
        &e,
        &district_analyst(),
        "SELECT count(*) FROM hotline.cases",
    )
    .await
    .unwrap();
    assert_ne!(n[0][0], "0");
}

/// A read-only session (the server's) answers the listings analysts type —
/// `SHOW TABLES`, `SHOW COLUMNS`, `DESCRIBE` — over what the principal may
/// see, and refuses anything that is not a query before planning it.
#[tokio::test]
async fn listings_run_in_a_read_only_session_and_writes_do_not() {
    let e = engine().await;
    let analyst = user(&["analyst"], None, &[]);
    let tables = rows(&e, &analyst, "SHOW TABLES").await.unwrap();
    let names: Vec<_> = tables
        .iter()
        .map(|r| format!("{}.{}", r[1], r[2]))
        .collect();
    assert!(
        names.contains(&"traffic.segment_speed".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"hotline.cases".to_string()),
        "hidden: {names:?}"
    );
    let columns = rows(&e, &analyst, "DESCRIBE common.districts")
        .await
        .unwrap();
    assert!(columns.iter().any(|r| r[0] == "district"), "{columns:?}");
    let shown = rows(&e, &analyst, "SHOW COLUMNS FROM common.districts")
        .await
        .unwrap();
    assert!(!shown.is_empty());
    // a hidden table is as missing for DESCRIBE as for SELECT
    let err = rows(&e, &analyst, "DESCRIBE hotline.cases")
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::NotFound { hidden: true, .. }),
        "{err}"
    );
    for sql in [
        "CREATE VIEW v AS SELECT 1",
        "SET datafusion.execution.batch_size = 10",
        "INSERT INTO t VALUES (1)",
    ] {
        let err = rows(&e, &analyst, sql).await.unwrap_err();
        assert!(matches!(err, EngineError::NotAllowed(_)), "{sql}: {err}");
    }
}
