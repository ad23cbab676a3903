//! Helpers shared by the server's end-to-end tests: a generated SF 0.01 lake,
//! users, the server on 127.0.0.1:0 and logged-in clients.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow_flight::FlightInfo;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use citylake_engine::datafusion::arrow::array::RecordBatch;
use citylake_engine::{Engine, EngineConfig};
use citylake_server::{TlsPem, Users};
use futures::TryStreamExt;
use tonic::transport::{Channel, Endpoint};

pub const PASSWORD: &str = "correct horse battery";

pub fn lake() -> &'static std::path::Path {
    static LAKE: OnceLock<std::path::PathBuf> = OnceLock::new();
    LAKE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        citylake_datasets::generate(
            &citylake_datasets::GenerateOptions::new(0.01, &dir),
            &citylake_datasets::NoProgress,
        )
        .unwrap();
        dir
    })
}

pub fn users() -> Users {
    let mut users = Users::default();
    users
        .add(
            "ana",
            PASSWORD,
            vec!["analyst".into()],
            Some("traffic".into()),
            Default::default(),
        )
        .unwrap();
    users
}

/// Starts a server (with TLS when given) and returns its address.
pub async fn start(tls: Option<TlsPem>, ttl: Duration) -> std::net::SocketAddr {
    // each server its own audit trail: servers of tests running at once over
    // the one lake would otherwise open a trail another is writing
    let mut config = EngineConfig::new(lake().join("catalog.toml"));
    config.audit_dir = Some(tempfile::tempdir().unwrap().keep());
    let engine = Engine::new(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(citylake_server::serve(
        listener,
        Arc::new(engine),
        Arc::new(citylake_server::UserDirectory::fixed(users())),
        ttl,
        tls,
        std::future::pending(),
    ));
    addr
}

pub async fn client(addr: std::net::SocketAddr) -> FlightSqlServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    FlightSqlServiceClient::new(channel)
}

pub async fn logged_in(addr: std::net::SocketAddr) -> FlightSqlServiceClient<Channel> {
    let mut c = client(addr).await;
    c.handshake("ana", PASSWORD).await.unwrap();
    c
}

/// The server with its engine, users and options given whole.
pub async fn start_full(
    config: EngineConfig,
    users: citylake_server::UserDirectory,
    options: citylake_server::ServeOptions,
) -> std::net::SocketAddr {
    let engine = Engine::new(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(citylake_server::serve_with_options(
        listener,
        Arc::new(engine),
        Arc::new(users),
        Duration::from_secs(3600),
        None,
        std::future::pending(),
        options,
    ));
    addr
}

/// The server with `config` changed by `configure` (limits, for instance).
pub async fn start_with(configure: impl FnOnce(&mut EngineConfig)) -> std::net::SocketAddr {
    let mut config = EngineConfig::new(lake().join("catalog.toml"));
    configure(&mut config);
    start_full(
        config,
        citylake_server::UserDirectory::fixed(users()),
        citylake_server::ServeOptions::default(),
    )
    .await
}

/// Every batch of every endpoint of `info`.
pub async fn fetch(
    c: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<Vec<RecordBatch>, FlightError> {
    let mut out = vec![];
    for endpoint in info.endpoint {
        let stream = c.do_get(endpoint.ticket.unwrap()).await?;
        out.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(out)
}

/// The gRPC code and message of a failed call.
pub fn code(e: FlightError) -> (tonic::Code, String) {
    match e {
        FlightError::Tonic(s) => (s.code(), s.message().to_string()),
        other => panic!("not a gRPC status: {other}"),
    }
}

/// The server with its audit trail in `dir/audit` and `config` changed by `configure`.
pub async fn start_in(
    dir: &std::path::Path,
    configure: impl FnOnce(&mut EngineConfig),
) -> std::net::SocketAddr {
    start_with(|config| {
        config.audit_dir = Some(dir.join("audit"));
        configure(config)
    })
    .await
}

/// CancelFlightInfo of `info`: the status the server answers.
pub async fn cancel(
    c: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> arrow_flight::CancelStatus {
    use arrow_flight::{Action, CancelFlightInfoRequest, CancelFlightInfoResult};
    use prost::Message;
    let action = Action::new(
        "CancelFlightInfo",
        CancelFlightInfoRequest::new(info).encode_to_vec(),
    );
    let body = c
        .do_action(action)
        .await
        .unwrap()
        .try_next()
        .await
        .unwrap()
        .unwrap();
    CancelFlightInfoResult::decode(body.body).unwrap().status()
}

/// Reads `stream` to its error (counting the rows before it); panics if it ends cleanly.
pub async fn until_error(
    stream: &mut arrow_flight::decode::FlightRecordBatchStream,
) -> (usize, FlightError) {
    let mut rows = 0;
    loop {
        match stream.try_next().await {
            Ok(Some(b)) => rows += b.num_rows(),
            Ok(None) => panic!("the stream ended ({rows} rows) without an error"),
            Err(e) => return (rows, e),
        }
    }
}
