//! Governance at the server: prepared statements re-planned under the policy in
//! force, bounded prepared-statement state, logins and bound parameters in a
//! verifiable audit trail that fails closed, and a users file that a running
//! server reads again (removed users' tokens revoked, changed roles applied).

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use citylake_engine::EngineConfig;
use citylake_engine::datafusion::arrow::array::{AsArray, Int64Array, RecordBatch};
use citylake_engine::datafusion::arrow::datatypes::Int64Type;
use citylake_server::{PreparedLimits, ServeOptions, UserDirectory, Users};
use tonic::Code;
use tonic::transport::Channel;

mod common;
use common::{PASSWORD, client, code, fetch, lake, logged_in, start_full, start_in, users};

async fn count(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Result<i64, FlightError> {
    let info = c.execute(sql.to_string(), None).await?;
    let batches = fetch(c, info).await?;
    Ok(batches[0].column(0).as_primitive::<Int64Type>().value(0))
}

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut config = EngineConfig::new(lake().join("catalog.toml"));
    config.audit_dir = Some(dir.join("audit"));
    config
}

/// Writes `text` to `path` (see [`touch_forward`]).
fn rewrite(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    touch_forward(path);
}

/// Moves the file's modification time forward, so a reload is seen even within
/// the file system's timestamp granularity.
fn touch_forward(path: &std::path::Path) {
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(later)
        .unwrap();
}

#[tokio::test]
async fn a_prepared_statement_is_planned_again_under_the_policy_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    rewrite(&policy, citylake_engine::policy::DEFAULT_POLICY);
    let addr = start_in(dir.path(), |c| c.policy = Some(policy.clone())).await;
    let mut c = logged_in(addr).await;
    let mut stmt = c
        .prepare("SELECT count(*) AS n FROM common.districts".into(), None)
        .await
        .unwrap();
    let info = stmt.execute().await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        13
    );

    // the analyst role loses its grant: the old handle no longer reads the table,
    // through this login or a new one
    let revoked = citylake_engine::policy::DEFAULT_POLICY.replace(
        "name = \"analyst\"\ndescription = \"every dataset that is not restricted, all personal information masked\"\nread = [\"*\"]",
        "name = \"analyst\"\nread = []",
    );
    assert_ne!(revoked, citylake_engine::policy::DEFAULT_POLICY);
    rewrite(&policy, &revoked);
    let (code_, msg) = code(stmt.execute().await.unwrap_err());
    assert_eq!(code_, Code::NotFound, "{msg}");
    let mut again = logged_in(addr).await;
    let (code_, _) = code(again.do_get(ticket).await.unwrap_err());
    assert_eq!(code_, Code::NotFound);
    // granted again: the same handle works
    rewrite(&policy, citylake_engine::policy::DEFAULT_POLICY);
    let batches = fetch(&mut c, stmt.execute().await.unwrap()).await.unwrap();
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        13
    );
}

#[tokio::test]
async fn prepared_statements_are_bounded_per_user_and_expire_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServeOptions {
        prepared: PreparedLimits {
            per_user: 3,
            idle: Duration::from_millis(1500),
            ..Default::default()
        },
        ..Default::default()
    };
    let addr = start_full(config(dir.path()), UserDirectory::fixed(users()), options).await;
    let mut c = logged_in(addr).await;
    let mut open = vec![];
    for _ in 0..3 {
        open.push(c.prepare("SELECT 1".into(), None).await.unwrap());
    }
    let (code_, msg) = code(c.prepare("SELECT 1".into(), None).await.unwrap_err());
    assert_eq!(code_, Code::ResourceExhausted, "{msg}");
    assert!(msg.contains("3 open prepared statements"), "{msg}");
    open.pop().unwrap().close().await.unwrap();
    let mut kept = c.prepare("SELECT 1".into(), None).await.unwrap();
    // idle handles are closed; a used one lives on
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        fetch(&mut c, kept.execute().await.unwrap()).await.unwrap();
    }
    let (code_, msg) = code(open[0].execute().await.unwrap_err());
    assert_eq!(code_, Code::NotFound);
    assert!(msg.contains("expired"), "{msg}");
    fetch(&mut c, kept.execute().await.unwrap()).await.unwrap();
    c.prepare("SELECT 1".into(), None).await.unwrap();
}

/// An upload of bound parameters must arrive within its time (red team: a
/// client that sent a batch and then nothing held its parameters, and a
/// handler, for as long as it kept the call open). Cut off, it answers
/// DEADLINE_EXCEEDED while the client still holds the call open, binds
/// nothing, and gives back what it held: the same user binds as much again.
#[tokio::test]
async fn a_parameter_upload_that_stalls_is_cut_off_and_gives_back_what_it_held() {
    use arrow_flight::encode::FlightDataEncoderBuilder;
    use arrow_flight::sql::{
        ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
        CommandPreparedStatementQuery, ProstMessageExt,
    };
    use arrow_flight::{Action, FlightData, FlightDescriptor};
    use futures::TryStreamExt;
    use prost::Message;

    let dir = tempfile::tempdir().unwrap();
    let options = ServeOptions {
        prepared: PreparedLimits {
            parameter_bytes: 1 << 20,
            upload_timeout: Duration::from_secs(2),
            ..Default::default()
        },
        ..Default::default()
    };
    let addr = start_full(config(dir.path()), UserDirectory::fixed(users()), options).await;
    let sql = "SELECT count(*) FROM common.districts WHERE population > $1";
    // 80,000 values: 640 KiB, more than half the limit
    let values = || {
        RecordBatch::try_from_iter([("p", Arc::new(Int64Array::from_iter_values(0..80_000)) as _)])
            .unwrap()
    };
    let mut c = logged_in(addr).await;
    let request = ActionCreatePreparedStatementRequest {
        query: sql.into(),
        transaction_id: None,
    };
    let action = Action {
        r#type: "CreatePreparedStatement".into(),
        body: request.as_any().encode_to_vec().into(),
    };
    let result = c.do_action(action).await.unwrap().message().await.unwrap();
    let created: ActionCreatePreparedStatementResult =
        Any::decode(&*result.expect("a result").body)
            .unwrap()
            .unpack()
            .unwrap()
            .expect("a prepared statement");
    let command = CommandPreparedStatementQuery {
        prepared_statement_handle: created.prepared_statement_handle,
    };
    let messages: Vec<FlightData> = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(
            command.as_any().encode_to_vec(),
        )))
        .build(futures::stream::iter([Ok(values())]))
        .try_collect()
        .await
        .unwrap();
    // the upload: its batch sent, then nothing, the call held open
    let (send, receive) = futures::channel::mpsc::unbounded::<FlightData>();
    for m in messages.clone() {
        send.unbounded_send(m).unwrap();
    }
    let mut uploader = c.clone();
    let upload = tokio::spawn(async move {
        let mut answers = uploader.do_put(receive).await?;
        while answers.message().await?.is_some() {}
        Ok::<_, FlightError>(())
    });
    let answered = tokio::time::timeout(Duration::from_secs(120), upload)
        .await
        .expect("the server never cut the stalled upload off");
    let (code_, msg) = code(answered.unwrap().expect_err("cut off"));
    assert_eq!(code_, Code::DeadlineExceeded, "{msg}");
    assert!(msg.contains("did not all arrive within 2s"), "{msg}");
    // nothing of it is held: the same user binds as much again (had the
    // stalled upload's 640 KiB still counted, 1.25 MiB would be over the limit)
    let mut answers = c.do_put(futures::stream::iter(messages)).await.unwrap();
    while answers.message().await.unwrap().is_some() {}
    // (the stalled client's side was open all along)
    drop(send);
}

#[tokio::test]
async fn logins_preparations_and_bound_values_are_in_a_verifiable_trail() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_in(dir.path(), |_| {}).await;
    // a failed login, a forged token, a login
    let mut c = client(addr).await;
    let err = c.handshake("ana", "not the password").await.unwrap_err();
    assert!(
        err.to_string().contains("wrong user name or password"),
        "{err}"
    );
    let mut forged = client(addr).await;
    forged.set_token("forged-token".into());
    assert!(count(&mut forged, "SELECT 1").await.is_err());
    let mut c = logged_in(addr).await;
    let mut stmt = c
        .prepare(
            "SELECT count(*) FROM common.districts WHERE population > $1".into(),
            None,
        )
        .await
        .unwrap();
    let params = RecordBatch::try_from_iter(vec![(
        "$1",
        Arc::new(Int64Array::from(vec![1_500_000])) as _,
    )])
    .unwrap();
    stmt.set_parameters(params).unwrap();
    fetch(&mut c, stmt.execute().await.unwrap()).await.unwrap();

    let audit = dir.path().join("audit");
    let text: String = std::fs::read_dir(&audit)
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    assert!(!text.contains(PASSWORD) && !text.contains("not the password"));
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |kind: &str, outcome: &str| {
        records
            .iter()
            .filter(|r| r["kind"] == kind && r["outcome"] == outcome)
            .cloned()
            .collect::<Vec<_>>()
    };
    let failed = find("login", "refused");
    assert!(
        failed
            .iter()
            .any(|r| r["user"] == "ana" && r["request"] == "handshake"),
        "{failed:?}"
    );
    assert!(failed.iter().any(|r| r["request"] == "token"), "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|r| r["client"].as_str().unwrap().starts_with("127.0.0.1:")),
        "{failed:?}"
    );
    let ok = find("login", "ok");
    assert!(
        ok.iter()
            .any(|r| r["user"] == "ana" && r["roles"] == "analyst"),
        "{ok:?}"
    );
    assert!(!find("prepare", "ok").is_empty(), "{records:?}");
    let executed = find("query", "ok");
    assert!(
        executed
            .iter()
            .any(|r| r["parameters"].as_str().unwrap().contains("1500000")),
        "{executed:?}"
    );
    let head = citylake_engine::audit::verify(&audit, None)
        .unwrap()
        .unwrap();
    assert_eq!(head.records as usize, records.len());
}

#[tokio::test]
async fn a_request_whose_record_cannot_be_written_is_refused_unless_fail_open() {
    for fail_open in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let addr = start_in(dir.path(), |c| c.audit_fail_open = fail_open).await;
        let mut c = logged_in(addr).await;
        assert_eq!(
            count(&mut c, "SELECT count(*) FROM common.districts")
                .await
                .unwrap(),
            13
        );
        std::fs::remove_dir_all(dir.path().join("audit")).unwrap();
        let got = count(&mut c, "SELECT count(*) FROM common.districts").await;
        if fail_open {
            assert_eq!(got.unwrap(), 13);
        } else {
            let (code_, msg) = code(got.unwrap_err());
            assert_eq!(code_, Code::Unavailable, "{msg}");
            assert!(msg.contains("audit trail"), "{msg}");
            // back when the trail can be written again
            std::fs::create_dir_all(dir.path().join("audit")).unwrap();
            assert_eq!(
                count(&mut c, "SELECT count(*) FROM common.districts")
                    .await
                    .unwrap(),
                13
            );
        }
    }
}

#[tokio::test]
async fn a_running_server_follows_the_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    // bob, of Xihu, with `role`
    let add_bob = |file: &mut Users, role: &str| {
        file.add(
            "bob",
            PASSWORD,
            vec![role.into()],
            None,
            [("district".to_string(), "Xihu".to_string())].into(),
        )
        .unwrap()
    };
    let mut file = users();
    add_bob(&mut file, "analyst");
    file.save(&path).unwrap();
    let addr = start_full(
        config(dir.path()),
        UserDirectory::watch(&path).unwrap(),
        ServeOptions::default(),
    )
    .await;
    let mut ana = logged_in(addr).await;
    let mut bob = client(addr).await;
    bob.handshake("bob", PASSWORD).await.unwrap();
    assert!(
        count(&mut bob, "SELECT count(*) FROM hotline.cases")
            .await
            .is_err()
    );

    // bob becomes a district analyst; ana is removed (`citylake user` while serving)
    let mut file = Users::load(&path).unwrap();
    file.set_roles("bob", vec!["district_analyst".into()])
        .unwrap();
    file.remove("ana").unwrap();
    file.save(&path).unwrap();
    touch_forward(&path);
    assert!(
        count(&mut bob, "SELECT count(*) FROM hotline.cases")
            .await
            .unwrap()
            > 0
    );
    let (code_, msg) = code(count(&mut ana, "SELECT 1").await.unwrap_err());
    assert_eq!(code_, Code::Unauthenticated, "{msg}");
    assert!(msg.contains("revoked"), "{msg}");
    let (code_, _) = code(count(&mut ana, "SELECT 1").await.unwrap_err());
    assert_eq!(code_, Code::Unauthenticated);
    assert!(client(addr).await.handshake("ana", PASSWORD).await.is_err());

    // bob's password changes (remove and add again): the token of his earlier
    // login ends at its next call; the new password logs in
    let mut file = Users::load(&path).unwrap();
    file.remove("bob").unwrap();
    file.add(
        "bob",
        "a new password",
        vec!["district_analyst".into()],
        None,
        [("district".to_string(), "Xihu".to_string())].into(),
    )
    .unwrap();
    file.save(&path).unwrap();
    touch_forward(&path);
    let (code_, msg) = code(count(&mut bob, "SELECT 1").await.unwrap_err());
    assert_eq!(code_, Code::Unauthenticated, "{msg}");
    assert!(msg.contains("password changed"), "{msg}");
    assert!(
        count(&mut bob, "SELECT 1").await.is_err(),
        "the token stays revoked"
    );
    let mut again = client(addr).await;
    assert!(again.handshake("bob", PASSWORD).await.is_err());
    again.handshake("bob", "a new password").await.unwrap();
    assert!(
        count(&mut again, "SELECT count(*) FROM hotline.cases")
            .await
            .unwrap()
            > 0
    );
}

/// The gate in front of every call (`server/src/gate.rs`), attacked. Before
/// it, the Flight SQL dispatch read the first message of a DoPut — up to
/// 64 MiB — before any handler checked who sent it: a caller with no
/// credentials who opened an upload and sent nothing held a handler for as
/// long as he liked, and one who sent a large message had it buffered whole
/// (red team, round 3). Now who is calling is checked on the headers, before
/// the body is read; a logged-in caller's body must arrive within the ingest
/// timeout; and what its messages still arriving hold (which the transport
/// buffers before any handler sees them) is counted per user and in all.
#[tokio::test]
async fn uploads_are_authenticated_before_they_are_read_and_bounded_while_they_arrive() {
    use arrow_flight::sql::{CommandStatementIngest, ProstMessageExt};
    use arrow_flight::{FlightData, FlightDescriptor};
    use futures::StreamExt;
    use prost::Message;

    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.max_ingest_bytes = 1 << 20;
    config.max_ingest_memory = 1 << 20;
    config.ingest_timeout = Duration::from_secs(2);
    let options = ServeOptions {
        prepared: PreparedLimits {
            parameter_bytes: 1 << 20,
            upload_timeout: Duration::from_secs(1),
            ..Default::default()
        },
        arriving_bytes_per_user: 8 << 20,
        ..Default::default()
    };
    let addr = start_full(config, UserDirectory::fixed(users()), options).await;
    let ingest = CommandStatementIngest {
        table: "anything".into(),
        ..Default::default()
    };
    let descriptor = FlightDescriptor::new_cmd(ingest.as_any().encode_to_vec());
    let answer = |c: &mut FlightSqlServiceClient<Channel>, messages| {
        let mut c = c.clone();
        async move {
            let call = async move {
                let mut answers = c.do_put(messages).await?;
                while answers.message().await?.is_some() {}
                Ok::<_, FlightError>(())
            };
            tokio::time::timeout(Duration::from_secs(60), call)
                .await
                .expect("the server never answered the upload")
                .expect_err("the upload is refused")
        }
    };

    // no credentials, and a body that never comes: refused at once
    let stalled = futures::stream::pending::<FlightData>().boxed();
    let (code_, msg) = code(answer(&mut client(addr).await, stalled).await);
    assert_eq!(code_, Code::Unauthenticated, "{msg}");
    // a forged token, and a first message of 20 MiB: refused before it is read
    let mut forged = client(addr).await;
    forged.set_token("forged-token".into());
    let large = FlightData {
        flight_descriptor: Some(descriptor.clone()),
        data_body: vec![7u8; 20 << 20].into(),
        ..Default::default()
    };
    let one = futures::stream::iter([large.clone()]).boxed();
    let (code_, msg) = code(answer(&mut forged, one).await);
    assert_eq!(code_, Code::Unauthenticated, "{msg}");

    // logged in, a body that never comes: cut off at the ingest timeout
    let mut c = logged_in(addr).await;
    let stalled = futures::stream::pending::<FlightData>().boxed();
    let (code_, msg) = code(answer(&mut c, stalled).await);
    assert_eq!(code_, Code::DeadlineExceeded, "{msg}");
    assert!(msg.contains("did not all arrive within 2s"), "{msg}");

    // logged in, one message of 20 MiB (under the 64 MiB a message may be):
    // refused while it arrives, by what this user's messages still arriving
    // may hold (8 MiB here)
    let one = futures::stream::iter([large]).boxed();
    let (code_, msg) = code(answer(&mut c, one).await);
    assert_eq!(code_, Code::ResourceExhausted, "{msg}");
    assert!(
        msg.contains(
            "this user's requests would hold more than 8.0 MiB in messages still arriving"
        ),
        "{msg}"
    );

    // what the refused requests brought is given back: the same user's
    // calls, and others', are served
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM common.districts")
            .await
            .unwrap(),
        count(
            &mut logged_in(addr).await,
            "SELECT count(*) FROM common.districts"
        )
        .await
        .unwrap()
    );
}

/// One address cannot hold every connection (red team, round 3: the Flight
/// listener took connections without bound, until the process ran out of
/// file descriptors): at most half of `max_connections` from one address; a
/// connection beyond is closed as soon as it is accepted, and a place given
/// back is taken again.
#[tokio::test]
async fn one_address_holds_at_most_half_the_connections() {
    use tonic::transport::Endpoint;
    let dir = tempfile::tempdir().unwrap();
    let options = ServeOptions {
        max_connections: 4,
        ..Default::default()
    };
    let addr = start_full(config(dir.path()), UserDirectory::fixed(users()), options).await;
    let connect = || async move {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await?;
        let mut c = FlightSqlServiceClient::new(channel);
        c.handshake("ana", PASSWORD)
            .await
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(c)
    };
    let mut first = connect().await.unwrap();
    let mut second = connect().await.unwrap();
    assert!(
        connect().await.is_err(),
        "a third connection from one address was served"
    );
    // the two held are served on
    let sql = "SELECT count(*) FROM common.districts";
    assert_eq!(
        count(&mut first, sql).await.unwrap(),
        count(&mut second, sql).await.unwrap()
    );
    // one closed, its place is taken again (its close reaches the server soon)
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut third = loop {
        if let Ok(c) = connect().await {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(count(&mut third, sql).await.unwrap() > 0);
}
