//! Flight SQL end to end: the real server on 127.0.0.1:0 (plain and TLS) and
//! arrow-flight's Flight SQL client.

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, SqlInfo};
use citylake_engine::datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use citylake_engine::datafusion::arrow::datatypes::{DataType, Int64Type, Schema};
use citylake_server::TlsPem;
use futures::TryStreamExt;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

mod common;
use common::{PASSWORD, cancel, client, code, fetch, logged_in, start, until_error};

async fn query(
    c: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<(Schema, Vec<RecordBatch>), FlightError> {
    let info = c.execute(sql.to_string(), None).await?;
    let schema = info.clone().try_decode_schema()?;
    Ok((schema, fetch(c, info).await?))
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test]
async fn login_query_and_client_safe_types() {
    let addr = start(None, Duration::from_secs(60)).await;
    let mut c = logged_in(addr).await;
    let (_, batches) = query(&mut c, "SELECT count(*) AS n FROM traffic.segment_speed")
        .await
        .unwrap();
    let n = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    // 13 segments × 288 intervals × 365 days, less the planted detector outage
    // (13 × 192 intervals, datasets/src/defects.rs)
    assert_eq!(n, 13 * 288 * 365 - 13 * 192);

    // strings travel as Utf8 (not Utf8View), and the announced schema is the data's
    let (schema, batches) = query(
        &mut c,
        "SELECT road_name, segment_id, length_m FROM traffic.road_segments ORDER BY segment_id",
    )
    .await
    .unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(batches[0].schema().fields(), schema.fields());
    assert_eq!(rows(&batches), 13);
}

#[tokio::test]
async fn large_results_stream_in_many_batches() {
    let addr = start(None, Duration::from_secs(60)).await;
    let mut c = logged_in(addr).await;
    let (_, batches) = query(
        &mut c,
        "SELECT * FROM traffic.segment_speed WHERE dt < DATE '2025-02-01'",
    )
    .await
    .unwrap();
    assert_eq!(rows(&batches), 13 * 288 * 31);
    assert!(batches.len() > 10, "streamed in {} batches", batches.len());
}

#[tokio::test]
async fn authentication_is_required_and_checked() {
    let addr = start(None, Duration::from_millis(300)).await;
    // no credentials
    let mut c = client(addr).await;
    let (code_, msg) = code(c.execute("SELECT 1".into(), None).await.unwrap_err());
    assert_eq!(code_, Code::Unauthenticated, "{msg}");
    // wrong password, unknown user
    let err = c.handshake("ana", "wrong password").await.unwrap_err();
    assert!(
        err.to_string().contains("wrong user name or password"),
        "{err}"
    );
    assert!(c.handshake("nobody", PASSWORD).await.is_err());
    // a forged token
    c.set_token("forged".into());
    assert_eq!(
        code(c.execute("SELECT 1".into(), None).await.unwrap_err()).0,
        Code::Unauthenticated
    );
    // an expired token
    let mut c = logged_in(addr).await;
    assert!(query(&mut c, "SELECT 1").await.is_ok());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (code_, msg) = code(c.execute("SELECT 1".into(), None).await.unwrap_err());
    assert_eq!(code_, Code::Unauthenticated);
    assert!(msg.contains("expired"), "{msg}");
    // logging in again works: the server kept serving
    let mut c = logged_in(addr).await;
    assert!(query(&mut c, "SELECT 1").await.is_ok());
}

#[tokio::test]
async fn errors_map_to_grpc_codes_and_the_server_keeps_serving() {
    let addr = start(None, Duration::from_secs(60)).await;
    let mut c = logged_in(addr).await;
    let (code_, msg) = code(
        query(&mut c, "SELECT * FROM traffic.road_segments WHERE = 1")
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, Code::InvalidArgument);
    assert!(
        msg.contains("SQL syntax error") && msg.contains("Line: 1"),
        "{msg}"
    );
    let (code_, msg) = code(
        query(&mut c, "SELECT * FROM traffic.nope")
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, Code::NotFound, "{msg}");
    let (code_, _) = code(
        query(&mut c, "SELECT road_name + 1 FROM traffic.road_segments")
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, Code::InvalidArgument);
    // the lake is read-only through the server
    for sql in [
        "CREATE VIEW v AS SELECT 1",
        "SET datafusion.execution.batch_size = 10",
        "DROP VIEW x",
    ] {
        let (code_, msg) = code(query(&mut c, sql).await.unwrap_err());
        assert_eq!(code_, Code::PermissionDenied, "{sql}: {msg}");
    }
    let err = c
        .execute_update("INSERT INTO t VALUES (1)".into(), None)
        .await
        .unwrap_err();
    assert_eq!(code(err).0, Code::PermissionDenied);
    // and still serves
    assert_eq!(
        rows(
            &query(&mut c, "SELECT * FROM common.districts")
                .await
                .unwrap()
                .1
        ),
        13
    );
}

#[tokio::test]
async fn prepared_statements_with_inferred_parameters() {
    let addr = start(None, Duration::from_secs(60)).await;
    let mut c = logged_in(addr).await;
    let mut stmt = c
        .prepare(
            "SELECT district FROM common.districts WHERE population > $1 ORDER BY district".into(),
            None,
        )
        .await
        .unwrap();
    // the parameter's type is inferred from the plan
    assert_eq!(
        stmt.parameter_schema().unwrap().field(0).data_type(),
        &DataType::Int64
    );
    assert_eq!(
        stmt.dataset_schema().unwrap().field(0).data_type(),
        &DataType::Utf8
    );

    // one row of parameters
    let params = RecordBatch::try_from_iter(vec![(
        "$1",
        Arc::new(Int64Array::from(vec![1_500_000])) as _,
    )])
    .unwrap();
    stmt.set_parameters(params).unwrap();
    let batches = fetch(&mut c, stmt.execute().await.unwrap()).await.unwrap();
    let names: Vec<&str> = batches[0]
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(names, ["Xiaoshan"]);

    // many rows: one execution per row, results in order
    // (> 2.0 M: Xiaoshan; > 1.3 M: Shangcheng, Xiaoshan, Yuhang)
    let params = RecordBatch::try_from_iter(vec![(
        "$1",
        Arc::new(Int64Array::from(vec![2_000_000, 1_300_000])) as _,
    )])
    .unwrap();
    stmt.set_parameters(params).unwrap();
    let batches = fetch(&mut c, stmt.execute().await.unwrap()).await.unwrap();
    let names: Vec<&str> = batches
        .iter()
        .flat_map(|b| b.column(0).as_string::<i32>().iter().flatten())
        .collect();
    assert_eq!(names, ["Xiaoshan", "Shangcheng", "Xiaoshan", "Yuhang"]);
    stmt.close().await.unwrap();

    // a statement with no parameters, and a handle that this server never made
    let mut stmt = c
        .prepare("SELECT count(*) AS n FROM common.districts".into(), None)
        .await
        .unwrap();
    let batches = fetch(&mut c, stmt.execute().await.unwrap()).await.unwrap();
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        13
    );
    let forged = arrow_flight::sql::CommandPreparedStatementQuery {
        prepared_statement_handle: "from-another-server".into(),
    };
    use arrow_flight::sql::ProstMessageExt;
    use prost::Message;
    let ticket = arrow_flight::Ticket::new(forged.as_any().encode_to_vec());
    let (code_, msg) = code(c.do_get(ticket).await.unwrap_err());
    assert_eq!(code_, Code::NotFound);
    assert!(msg.contains("unknown prepared statement handle"), "{msg}");
}

#[tokio::test]
async fn metadata_commands() {
    let addr = start(None, Duration::from_secs(60)).await;
    let mut c = logged_in(addr).await;
    let info = c.get_catalogs().await.unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    assert_eq!(batches[0].column(0).as_string::<i32>().value(0), "city");

    // schemas with and without a catalog filter, with a pattern
    let all = {
        let info = c
            .get_db_schemas(CommandGetDbSchemas::default())
            .await
            .unwrap();
        fetch(&mut c, info)
    }
    .await
    .unwrap();
    let names: Vec<&str> = all
        .iter()
        .flat_map(|b| b.column(1).as_string::<i32>().iter().flatten())
        .collect();
    for schema in [
        "common",
        "emergency",
        "environment",
        "finance",
        "traffic",
        "system",
        "public",
    ] {
        assert!(names.contains(&schema), "{schema} missing from {names:?}");
    }
    // the analyst's policy: restricted datasets (hotline.cases) are not even listed
    assert!(!names.contains(&"hotline"), "{names:?}");
    let filtered = CommandGetDbSchemas {
        catalog: Some("city".into()),
        db_schema_filter_pattern: Some("tra%".into()),
    };
    let batches = {
        let info = c.get_db_schemas(filtered).await.unwrap();
        fetch(&mut c, info)
    }
    .await
    .unwrap();
    assert_eq!(batches[0].column(1).as_string::<i32>().value(0), "traffic");
    assert_eq!(rows(&batches), 1);

    // tables with a pattern and their Arrow schemas
    let cmd = CommandGetTables {
        catalog: Some("city".into()),
        db_schema_filter_pattern: Some("traffic".into()),
        table_name_filter_pattern: Some("%speed".into()),
        table_types: vec![],
        include_schema: true,
    };
    let batches = {
        let info = c.get_tables(cmd).await.unwrap();
        fetch(&mut c, info)
    }
    .await
    .unwrap();
    assert_eq!(rows(&batches), 1);
    assert_eq!(
        batches[0].column(2).as_string::<i32>().value(0),
        "segment_speed"
    );
    let schema_bytes = batches[0].column(4).as_binary::<i32>().value(0);
    let schema = arrow_flight::IpcMessage(schema_bytes.to_vec().into());
    let schema = Schema::try_from(schema).unwrap();
    assert!(schema.field_with_name("avg_speed_kmh").is_ok());
    assert_eq!(
        schema
            .field_with_name("observed_at")
            .unwrap()
            .data_type()
            .to_string(),
        "Timestamp(µs)"
    );

    // table types, SqlInfo, XDBC types, keys
    let batches = {
        let info = c.get_table_types().await.unwrap();
        fetch(&mut c, info)
    }
    .await
    .unwrap();
    assert_eq!(rows(&batches), 2);
    let batches = {
        let info = c
            .get_sql_info(vec![
                SqlInfo::FlightSqlServerName,
                SqlInfo::FlightSqlServerReadOnly,
            ])
            .await
            .unwrap();
        fetch(&mut c, info)
    }
    .await
    .unwrap();
    assert_eq!(rows(&batches), 2);
    let batches = {
        let info = c.get_xdbc_type_info(Default::default()).await.unwrap();
        fetch(&mut c, info)
    }
    .await
    .unwrap();
    assert!(rows(&batches) >= 8);
    let pk = arrow_flight::sql::CommandGetPrimaryKeys {
        catalog: None,
        db_schema: Some("traffic".into()),
        table: "road_segments".into(),
    };
    let batches = {
        let info = c.get_primary_keys(pk).await.unwrap();
        fetch(&mut c, info)
    }
    .await
    .unwrap();
    assert_eq!(rows(&batches), 0);
}

#[tokio::test]
async fn tls_end_to_end() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = TlsPem {
        cert: cert.cert.pem().into_bytes(),
        key: cert.key_pair.serialize_pem().into_bytes(),
    };
    let addr = start(Some(tls), Duration::from_secs(60)).await;
    // the client's TLS too runs on the provider citylake chooses (see install_tls_provider)
    citylake_engine::install_tls_provider();
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cert.cert.pem()))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{}", addr.port()))
        .unwrap()
        .tls_config(config)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = FlightSqlServiceClient::new(channel);
    c.handshake("ana", PASSWORD).await.unwrap();
    let (_, batches) = query(&mut c, "SELECT count(*) FROM common.districts")
        .await
        .unwrap();
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        13
    );
    // a plain-text client cannot talk to the TLS server
    let plain = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut c = FlightSqlServiceClient::new(channel);
        assert!(c.handshake("ana", PASSWORD).await.is_err());
    }
}

#[tokio::test]
async fn cancel_flight_info_stops_a_running_query() {
    use arrow_flight::CancelStatus;
    let addr = start(None, Duration::from_secs(60)).await;
    let mut c = logged_in(addr).await;
    let info = c
        .execute("SELECT * FROM traffic.segment_speed".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = c.do_get(ticket).await.unwrap();
    // the first batch arrives; then the client cancels
    let first = stream.try_next().await.unwrap().unwrap();
    assert!(first.num_rows() > 0);
    assert_eq!(cancel(&mut c, info.clone()).await, CancelStatus::Cancelled);
    // the stream ends with CANCELLED before the 1.36 M rows
    let (rest, err) = until_error(&mut stream).await;
    let rows = first.num_rows() + rest;
    assert!(rows < 1_366_560, "{rows}");
    assert_eq!(code(err).0, Code::Cancelled);
    // cancelling a finished query: not cancellable; the server keeps serving
    assert_eq!(cancel(&mut c, info).await, CancelStatus::NotCancellable);
    assert_eq!(rows_of(&mut c, "SELECT 1").await, 1);
}

async fn rows_of(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> usize {
    rows(&query(c, sql).await.unwrap().1)
}
