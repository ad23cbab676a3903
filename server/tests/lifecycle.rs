//! One lifecycle for every query through Flight SQL: each outcome (ok, error,
//! refused, over_limit, timed_out, cancelled, dropped) is recorded once, with
//! the same query id and the same outcome in the audit trail and in
//! `system.queries`; cancellation is per query, not per ticket or statement.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow_flight::CancelStatus;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightInfo, Ticket};
use citylake_engine::datafusion::arrow::array::AsArray;
use citylake_engine::datafusion::arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;

mod common;
use common::{cancel, code, fetch, logged_in, start_in, until_error};

/// A join that runs for minutes on the SF 0.01 lake.
const RUNAWAY: &str = "SELECT count(*) FROM traffic.segment_speed a JOIN traffic.segment_speed b \
                       ON a.segment_id = b.segment_id";
const ALL_SPEEDS: &str = "SELECT * FROM traffic.segment_speed";
const SPEED_ROWS: usize = 1_364_064;

/// Every query record of the trail, by SQL (the last one of each).
fn audited(dir: &std::path::Path) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for file in std::fs::read_dir(dir.join("audit")).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if record["kind"] == "query" {
                out.insert(record["request"].as_str().unwrap().to_string(), record);
            }
        }
    }
    out
}

fn ticket(info: &FlightInfo) -> Ticket {
    info.endpoint[0].ticket.clone().unwrap()
}

#[tokio::test]
async fn every_outcome_links_the_audit_record_and_system_queries_by_query_id() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_in(dir.path(), |c| {
        c.limits.query_timeout = Some(Duration::from_secs(2));
        c.limits.max_result_rows = Some(100_000);
    })
    .await;
    let mut c = logged_in(addr).await;
    let run = async |c: &mut FlightSqlServiceClient<Channel>, sql: &str| {
        let info = c.execute(sql.to_string(), None).await?;
        fetch(c, info).await
    };
    let mut expected: Vec<(&str, &str)> = vec![];
    // ok
    let sql = "SELECT count(*) FROM common.districts";
    run(&mut c, sql).await.unwrap();
    expected.push((sql, "ok"));
    // error at run time (a cast of a column's value; planning cannot fold it)
    let sql = "SELECT CAST(district || 'x' AS INT) FROM common.districts";
    let (code_, _) = code(run(&mut c, sql).await.unwrap_err());
    assert_eq!(code_, Code::InvalidArgument);
    expected.push((sql, "error"));
    // refused by the policy: an analyst may not read the audit trail
    let sql = "SELECT count(*) FROM system.audit_log";
    let (code_, _) = code(c.execute(sql.into(), None).await.unwrap_err());
    assert!(
        matches!(code_, Code::PermissionDenied | Code::NotFound),
        "{code_:?}"
    );
    // (refused at GetFlightInfo: a `plan` record; the same statement redeemed
    // as a ticket is a refused query)
    let forged = arrow_flight::sql::TicketStatementQuery {
        statement_handle: format!("forged:{sql}").into_bytes().into(),
    };
    use arrow_flight::sql::ProstMessageExt;
    let stream = c.do_get(Ticket::new(forged.as_any().encode_to_vec())).await;
    assert!(stream.is_err());
    expected.push((sql, "refused"));
    // over a result limit
    let (code_, msg) = code(run(&mut c, ALL_SPEEDS).await.unwrap_err());
    assert_eq!(code_, Code::ResourceExhausted, "{msg}");
    expected.push((ALL_SPEEDS, "over_limit"));
    // timed out
    let (code_, _) = code(run(&mut c, RUNAWAY).await.unwrap_err());
    assert_eq!(code_, Code::DeadlineExceeded);
    expected.push((RUNAWAY, "timed_out"));
    // cancelled by CancelFlightInfo
    let sql = "SELECT * FROM traffic.segment_speed WHERE segment_id >= 0";
    let info = c.execute(sql.into(), None).await.unwrap();
    let mut stream = c.do_get(ticket(&info)).await.unwrap();
    stream.try_next().await.unwrap().unwrap();
    assert_eq!(cancel(&mut c, info).await, CancelStatus::Cancelled);
    let (_, err) = until_error(&mut stream).await;
    assert_eq!(code(err).0, Code::Cancelled);
    expected.push((sql, "cancelled"));
    // dropped by its client after the first batch
    let sql = "SELECT * FROM traffic.segment_speed WHERE segment_id < 1000";
    let info = c.execute(sql.into(), None).await.unwrap();
    let mut stream = c.do_get(ticket(&info)).await.unwrap();
    stream.try_next().await.unwrap().unwrap();
    drop(stream);
    expected.push((sql, "dropped"));

    // the dropped query's end reaches the server when the stream is reset
    let mut records = audited(dir.path());
    for _ in 0..100 {
        if records.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        records = audited(dir.path());
    }
    let info = c
        .execute(
            "SELECT sql, state, query_id FROM system.queries".into(),
            None,
        )
        .await
        .unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    let mut shown: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            shown.insert(
                b.column(0).as_string::<i32>().value(i).to_string(),
                (
                    b.column(1).as_string::<i32>().value(i).to_string(),
                    b.column(2).as_primitive::<Int64Type>().value(i),
                ),
            );
        }
    }
    for (sql, outcome) in expected {
        let record = records
            .get(sql)
            .unwrap_or_else(|| panic!("no audit record of {sql}: {records:#?}"));
        assert_eq!(record["outcome"], outcome, "{sql}: {record}");
        assert_eq!(record["user"], "ana");
        let (state, id) = shown
            .get(sql)
            .unwrap_or_else(|| panic!("{sql} not in system.queries: {shown:?}"));
        assert_eq!(state, outcome, "{sql}");
        assert_eq!(record["query_id"], *id, "{sql}: one id in both");
        assert!(*id > 0);
    }
    // the trail is intact
    citylake_engine::audit::verify(&dir.path().join("audit"), None)
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn two_executions_of_one_prepared_statement_are_cancelled_separately() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_in(dir.path(), |_| {}).await;
    let mut c = logged_in(addr).await;
    let mut stmt = c.prepare(ALL_SPEEDS.into(), None).await.unwrap();
    let first = stmt.execute().await.unwrap();
    let second = stmt.execute().await.unwrap();
    assert_ne!(
        ticket(&first),
        ticket(&second),
        "each execution has its own ticket"
    );
    let mut a = c.do_get(ticket(&first)).await.unwrap();
    let mut b = c.do_get(ticket(&second)).await.unwrap();
    let mut b_rows = b.try_next().await.unwrap().unwrap().num_rows();
    a.try_next().await.unwrap().unwrap();
    // cancel the first: only it ends
    assert_eq!(cancel(&mut c, first.clone()).await, CancelStatus::Cancelled);
    let (_, err) = until_error(&mut a).await;
    assert_eq!(code(err).0, Code::Cancelled);
    while let Some(batch) = b.try_next().await.unwrap() {
        b_rows += batch.num_rows();
    }
    assert_eq!(b_rows, SPEED_ROWS, "the other execution ran to its end");
    // a ticket redeemed twice: two queries, each cancelled by its FlightInfo
    assert_eq!(cancel(&mut c, second).await, CancelStatus::NotCancellable);
    let mut outcomes: Vec<String> = vec![];
    for _ in 0..50 {
        let text: String = std::fs::read_dir(dir.path().join("audit"))
            .unwrap()
            .filter_map(|f| std::fs::read_to_string(f.unwrap().path()).ok())
            .collect();
        outcomes = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["kind"] == "query" && r["request"] == ALL_SPEEDS)
            .map(|r| r["outcome"].as_str().unwrap().to_string())
            .collect();
        if outcomes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    outcomes.sort();
    assert_eq!(outcomes, ["cancelled", "ok"]);
}

/// `citylake_cancel(query_id)` cancels one's own running query; another
/// user's query is out of reach (the call answers false); the cancelled
/// query's record names who cancelled it.
#[tokio::test]
async fn citylake_cancel_stops_ones_own_query_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut users = common::users();
    users
        .add(
            "bob",
            common::PASSWORD,
            vec!["analyst".into()],
            None,
            Default::default(),
        )
        .unwrap();
    let mut config = citylake_engine::EngineConfig::new(common::lake().join("catalog.toml"));
    config.audit_dir = Some(dir.path().join("audit"));
    let addr = common::start_full(
        config,
        citylake_server::UserDirectory::fixed(users),
        citylake_server::ServeOptions::default(),
    )
    .await;
    let mut ana = logged_in(addr).await;
    let info = ana.execute(RUNAWAY.into(), None).await.unwrap();
    let mut runaway = ana.do_get(ticket(&info)).await.unwrap();
    let waiting = tokio::spawn(async move { until_error(&mut runaway).await.1 });
    // its id, as ana sees it in system.queries
    let mut id = None;
    for _ in 0..100 {
        let info = ana
            .execute(
                format!(
                    "SELECT query_id FROM system.queries WHERE state = 'running' AND sql = '{}'",
                    RUNAWAY.replace('\'', "''")
                ),
                None,
            )
            .await
            .unwrap();
        let batches = fetch(&mut ana, info).await.unwrap();
        if let Some(b) = batches.iter().find(|b| b.num_rows() > 0) {
            id = Some(b.column(0).as_primitive::<Int64Type>().value(0));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = id.expect("the runaway query is running");
    let cancel_sql = |id: i64| format!("SELECT citylake_cancel({id}) AS cancelled");
    let answer = async |c: &mut FlightSqlServiceClient<Channel>, sql: String| {
        let info = c.execute(sql, None).await.unwrap();
        let batches = fetch(c, info).await.unwrap();
        batches[0].column(0).as_boolean().value(0)
    };
    // bob cannot cancel ana's query
    let mut bob = common::client(addr).await;
    bob.handshake("bob", common::PASSWORD).await.unwrap();
    assert!(!answer(&mut bob, cancel_sql(id)).await);
    assert!(
        !waiting.is_finished(),
        "bob's call did not stop ana's query"
    );
    // ana can; an id that is not running answers false
    assert!(answer(&mut ana, cancel_sql(id)).await);
    assert!(!answer(&mut ana, cancel_sql(id + 1000)).await);
    let err = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the cancelled query ends")
        .unwrap();
    let (code_, msg) = code(err);
    assert_eq!(code_, Code::Cancelled, "{msg}");
    assert!(
        msg.contains("cancelled by ana with citylake_cancel"),
        "{msg}"
    );
    let mut record = None;
    for _ in 0..50 {
        record = audited(dir.path()).remove(RUNAWAY);
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = record.expect("the cancelled query is recorded");
    assert_eq!(record["outcome"], "cancelled");
    assert_eq!(record["query_id"], id);
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("cancelled by ana with citylake_cancel"),
        "{record}"
    );
}

/// Every metadata command — the server's description of itself included —
/// is a lookup recorded in the audit trail with the rows it returned.
#[tokio::test]
async fn every_metadata_command_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = citylake_engine::EngineConfig::new(common::lake().join("catalog.toml"));
    config.audit_dir = Some(dir.path().join("audit"));
    let addr = common::start_full(
        config,
        citylake_server::UserDirectory::fixed(common::users()),
        citylake_server::ServeOptions::default(),
    )
    .await;
    let mut c = logged_in(addr).await;
    let mut returned = BTreeMap::new();
    macro_rules! call {
        ($name:literal, $info:expr) => {{
            let info = $info.await.unwrap();
            let batches = fetch(&mut c, info).await.unwrap();
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            returned.insert($name, rows);
        }};
    }
    call!("GetCatalogs", c.get_catalogs());
    call!("GetDbSchemas", c.get_db_schemas(Default::default()));
    call!("GetTables", c.get_tables(Default::default()));
    call!("GetTableTypes", c.get_table_types());
    call!("GetSqlInfo", c.get_sql_info(vec![]));
    call!("GetXdbcTypeInfo", c.get_xdbc_type_info(Default::default()));
    call!(
        "GetPrimaryKeys",
        c.get_primary_keys(arrow_flight::sql::CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "districts".into(),
        })
    );
    call!(
        "GetExportedKeys",
        c.get_exported_keys(arrow_flight::sql::CommandGetExportedKeys {
            catalog: None,
            db_schema: None,
            table: "districts".into(),
        })
    );
    call!(
        "GetImportedKeys",
        c.get_imported_keys(arrow_flight::sql::CommandGetImportedKeys {
            catalog: None,
            db_schema: None,
            table: "districts".into(),
        })
    );
    call!(
        "GetCrossReference",
        c.get_cross_reference(arrow_flight::sql::CommandGetCrossReference {
            pk_table: "districts".into(),
            fk_table: "cases".into(),
            ..Default::default()
        })
    );
    let mut recorded = BTreeMap::new();
    for file in std::fs::read_dir(dir.path().join("audit")).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if record["kind"] == "metadata" {
                assert_eq!(record["user"], "ana", "{record}");
                assert_eq!(record["outcome"], "ok", "{record}");
                recorded.insert(
                    record["request"].as_str().unwrap().to_string(),
                    record["rows"].as_u64().unwrap() as usize,
                );
            }
        }
    }
    for (name, rows) in &returned {
        assert_eq!(recorded.get(*name), Some(rows), "{name}: {recorded:?}");
    }
    assert!(returned["GetTables"] > 0 && returned["GetSqlInfo"] > 0);
}
