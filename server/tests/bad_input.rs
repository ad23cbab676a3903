//! Bad input over Flight SQL: thousands of malformed and adversarial SQL
//! statements (random token soup from a seeded generator, huge literals, deep
//! nesting, pathological regular expressions, enormous IN lists, recursive
//! CTEs, a runaway join) and malformed Flight messages (random tickets, forged
//! statement and prepared-statement tickets, garbage parameter batches, unknown
//! actions). Each request must end — with an error or a result — within its
//! deadline, no handler may panic, and a normal query must still succeed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{Any, ProstMessageExt, TicketStatementQuery};
use arrow_flight::{Action, FlightDescriptor, Ticket};
use citylake_engine::datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use citylake_engine::datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

mod common;

/// Every request must end within this (the server's query timeout is 5 s).
const DEADLINE: Duration = Duration::from_secs(30);

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

/// Runs SQL to the end; `Ok(true)` if it returned rows, `Ok(false)` for an error.
async fn try_sql(c: &mut FlightSqlServiceClient<Channel>, sql: String) -> bool {
    let run = async {
        let info = c.execute(sql.clone(), None).await?;
        for endpoint in info.endpoint {
            let stream = c.do_get(endpoint.ticket.expect("a ticket")).await?;
            stream.try_collect::<Vec<_>>().await?;
        }
        Ok::<_, arrow_flight::error::FlightError>(())
    };
    match tokio::time::timeout(DEADLINE, run).await {
        Ok(result) => result.is_ok(),
        Err(_) => panic!(
            "no answer within {DEADLINE:?} to: {}",
            &sql[..sql.len().min(200)]
        ),
    }
}

/// GetFlightInfo with the client's bearer token.
async fn flight_info(
    c: &mut FlightSqlServiceClient<Channel>,
    descriptor: FlightDescriptor,
) -> Result<arrow_flight::FlightInfo, tonic::Status> {
    let mut request = tonic::Request::new(descriptor);
    let token = c.token().cloned().unwrap_or_default();
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII"),
    );
    c.inner_mut()
        .get_flight_info(request)
        .await
        .map(|r| r.into_inner())
}

const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "JOIN",
    "ON",
    "UNION",
    "ALL",
    "WITH",
    "AS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "NOT",
    "NULL",
    "AND",
    "OR",
    "IN",
    "EXISTS",
    "OVER",
    "PARTITION",
    "(",
    ")",
    ",",
    ".",
    "*",
    "+",
    "-",
    "/",
    "%",
    "=",
    "<>",
    "<",
    ">=",
    "||",
    "::",
    ";",
    "'",
    "\"",
    "$1",
    "?",
    "1",
    "0",
    "-1",
    "1e308",
    "9223372036854775808",
    "'x'",
    "''",
    "'\u{0}'",
    "'日本'",
    "TRUE",
    "count(*)",
    "sum(",
    "avg(",
    "aqi_cn_daily(",
    "iaqi_cn(",
    "network_tpi(",
    "minmax_norm(",
    "CAST(",
    "AS INT)",
    "traffic.segment_speed",
    "hotline.cases",
    "common.districts",
    "finance.expenditures",
    "system.audit_log",
    "information_schema.tables",
    "district",
    "population",
    "avg_speed_kmh",
    "caller_phone",
    "DROP TABLE",
    "INSERT INTO",
    "COPY",
    "SET",
    "CREATE",
    "EXPLAIN",
    "ANALYZE",
    "--",
    "/*",
    "*/",
];

fn token_soup(rng: &mut StdRng) -> String {
    let n = rng.random_range(1..40);
    let mut out = String::new();
    if rng.random_bool(0.7) {
        out.push_str("SELECT ");
    }
    for _ in 0..n {
        out.push_str(TOKENS[rng.random_range(0..TOKENS.len())]);
        out.push(' ');
    }
    out
}

fn adversarial() -> Vec<String> {
    let in_list = (0..50_000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    vec![
        format!("SELECT '{}'", "x".repeat(4 << 20)),
        format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000)),
        format!("SELECT {}1", "-".repeat(20_000)),
        format!("SELECT 1 {}", "+ 1 ".repeat(20_000)),
        "SELECT regexp_like(repeat('a', 100000), '(a+)+$')".into(),
        "SELECT regexp_like(repeat('a', 1000), '(a|aa)*b')".into(),
        "SELECT regexp_replace('x', '(', 'y')".into(),
        format!("SELECT count(*) FROM common.districts WHERE population IN ({in_list})"),
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"
            .into(),
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 100) \
         SELECT count(*) FROM t"
            .into(),
        "SELECT count(*) FROM traffic.segment_speed a, traffic.segment_speed b".into(),
        // (a 2 GiB `repeat` is folded while planning, before the timeout applies: a
        // known gap, see the README's Operations section)
        "SELECT length(repeat('x', 100000000))".into(),
        "SELECT 1/0, CAST('x' AS INT)".into(),
        "SELECT 9223372036854775807 + 1".into(),
        "SELECT * FROM".into(),
        String::new(),
        ";;;".into(),
        "SELECT 1; SELECT 2".into(),
        "\u{feff}SELECT 1".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sql_and_flight_messages_never_crash_or_hang_the_server() {
    count_panics();
    let addr = common::start_with(|config| {
        config.limits.query_timeout = Some(Duration::from_secs(5));
        config.limits.memory_per_query = Some(256 << 20);
    })
    .await;
    let mut c = common::logged_in(addr).await;

    // adversarial statements: each ends with a result or an error
    for sql in adversarial() {
        try_sql(&mut c, sql).await;
    }
    // token soup: thousands of malformed statements, the same every run
    let mut rng = StdRng::seed_from_u64(20_261_129);
    let mut answered = 0;
    for _ in 0..3_000 {
        answered += try_sql(&mut c, token_soup(&mut rng)).await as usize;
    }
    assert!(answered < 3_000, "some of the soup must be refused");

    // random and forged tickets
    for i in 0..500 {
        let len = rng.random_range(0..200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let ticket = if i % 2 == 0 {
            Ticket::new(bytes)
        } else {
            // a well-formed statement ticket with a garbage handle
            let t = TicketStatementQuery {
                statement_handle: bytes.into(),
            };
            Ticket::new(t.as_any().encode_to_vec())
        };
        let r = tokio::time::timeout(DEADLINE, async {
            let stream = c.do_get(ticket).await?;
            stream.try_collect::<Vec<_>>().await
        })
        .await
        .expect("a bad ticket is answered");
        assert!(r.is_err() || i % 2 == 1, "a random ticket was accepted");
    }
    // unknown actions and garbage bodies
    for name in [
        "",
        "CreatePreparedStatement",
        "ClosePreparedStatement",
        "nope",
        "CancelFlightInfo",
    ] {
        let body: Vec<u8> = (0..64).map(|_| rng.random()).collect();
        let action = Action::new(name, body);
        let r = tokio::time::timeout(DEADLINE, c.do_action(action)).await;
        assert!(
            r.expect("an action is answered").is_err(),
            "garbage action `{name}` accepted"
        );
    }
    // garbage GetFlightInfo commands
    for _ in 0..100 {
        let body: Vec<u8> = (0..rng.random_range(0..100))
            .map(|_| rng.random())
            .collect();
        let descriptor = FlightDescriptor::new_cmd(body);
        let r = tokio::time::timeout(DEADLINE, flight_info(&mut c, descriptor)).await;
        assert!(r.expect("answered").is_err());
    }
    // a prepared statement with a garbage handle, and with parameter batches of the wrong shape
    let forged = Any {
        type_url: "type.googleapis.com/arrow.flight.protocol.sql.CommandPreparedStatementQuery"
            .into(),
        value: vec![0xff, 0x01, 0x02].into(),
    };
    let r = tokio::time::timeout(
        DEADLINE,
        flight_info(&mut c, FlightDescriptor::new_cmd(forged.encode_to_vec())),
    )
    .await
    .expect("answered");
    assert!(r.is_err());
    let mut prepared = c
        .prepare(
            "SELECT district FROM common.districts WHERE population > $1".into(),
            None,
        )
        .await
        .expect("prepares");
    for batch in [
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["not a number"]))],
        )
        .unwrap(),
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Int64, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(Int64Array::from(vec![2])),
            ],
        )
        .unwrap(),
        RecordBatch::new_empty(Arc::new(Schema::empty())),
    ] {
        let shape = format!("{:?}", batch.schema().fields());
        let r = tokio::time::timeout(DEADLINE, async {
            prepared.set_parameters(batch)?;
            let info = prepared.execute().await?;
            for endpoint in info.endpoint {
                let stream = c.do_get(endpoint.ticket.expect("ticket")).await?;
                stream.try_collect::<Vec<_>>().await?;
            }
            Ok::<_, arrow_flight::error::FlightError>(())
        })
        .await
        .expect("answered");
        assert!(
            r.is_err(),
            "a parameter batch of the wrong shape was accepted: {shape}"
        );
    }

    // parameters sent compressed are refused before they are decoded (a
    // compressed body states its own unpacked size, which the decoder would
    // reserve: a few bytes claiming terabytes would end the process), and so
    // are more parameters than a user's statements may hold
    let big = |n: i64| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from_iter_values(0..n))],
        )
        .unwrap()
    };
    for (batch, codec, expected) in [
        (
            big(1000),
            Some(citylake_engine::datafusion::arrow::ipc::CompressionType::ZSTD),
            "compressed Arrow IPC bodies are not accepted",
        ),
        (
            big(3_000_000),
            None,
            "more than 100000 rows of bound parameters",
        ),
        (
            // few rows, many bytes: 1,000 values of 20 kB
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)])),
                vec![Arc::new(StringArray::from(vec!["x".repeat(20_000); 1000]))],
            )
            .unwrap(),
            None,
            "16.0 MiB",
        ),
        (
            // a long column name, copied into every row's execution and record
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new(
                    "n".repeat(100_000),
                    DataType::Int64,
                    true,
                )])),
                vec![Arc::new(Int64Array::from(vec![1, 2]))],
            )
            .unwrap(),
            None,
            "column name is 100000 bytes long",
        ),
        (
            // not a plain value
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new(
                    "x",
                    DataType::Struct(vec![Field::new("a", DataType::Int64, true)].into()),
                    true,
                )])),
                vec![Arc::new(
                    citylake_engine::datafusion::arrow::array::StructArray::from(vec![(
                        Arc::new(Field::new("a", DataType::Int64, true)),
                        Arc::new(Int64Array::from(vec![1])) as ArrayRef,
                    )]),
                )],
            )
            .unwrap(),
            None,
            "parameters are plain values",
        ),
    ] {
        let r = tokio::time::timeout(DEADLINE, bind_raw(&mut c, batch, codec))
            .await
            .expect("answered");
        let e = r.expect_err("refused").to_string();
        assert!(e.contains(expected), "{e}");
    }

    // still serving, and nothing panicked
    assert!(try_sql(&mut c, "SELECT count(*) FROM common.districts".into()).await);
    let mut fresh = common::logged_in(addr).await;
    assert!(try_sql(&mut fresh, "SELECT 1".into()).await);
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a handler panicked");
}

/// Prepares a statement and binds `params` to it as a client could, with its
/// batches encoded under `compression`.
async fn bind_raw(
    c: &mut FlightSqlServiceClient<Channel>,
    params: RecordBatch,
    compression: Option<citylake_engine::datafusion::arrow::ipc::CompressionType>,
) -> Result<(), arrow_flight::error::FlightError> {
    use arrow_flight::encode::FlightDataEncoderBuilder;
    use arrow_flight::sql::{
        ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
        CommandPreparedStatementQuery,
    };
    use citylake_engine::datafusion::arrow::ipc::writer::IpcWriteOptions;
    let request = ActionCreatePreparedStatementRequest {
        query: "SELECT district FROM common.districts WHERE population > $1".into(),
        transaction_id: None,
    };
    let action = Action {
        r#type: "CreatePreparedStatement".into(),
        body: request.as_any().encode_to_vec().into(),
    };
    let mut results = c.do_action(action).await?;
    let result = results.message().await?.expect("a result");
    let created: ActionCreatePreparedStatementResult = Any::decode(&*result.body)?
        .unpack()?
        .expect("a prepared statement");
    let command = CommandPreparedStatementQuery {
        prepared_statement_handle: created.prepared_statement_handle,
    };
    let options = IpcWriteOptions::default().try_with_compression(compression)?;
    let messages: Vec<_> = FlightDataEncoderBuilder::new()
        .with_options(options)
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(
            command.as_any().encode_to_vec(),
        )))
        .build(futures::stream::iter([Ok(params)]))
        .try_collect()
        .await?;
    let mut answers = c.do_put(futures::stream::iter(messages)).await?;
    while answers.message().await?.is_some() {}
    Ok(())
}
