//! The simple and extended query protocols over the engine's one query path.
//!
//! Every statement runs as the connection's user *as the users file says now*
//! (a removed user's connection ends at its next statement; changed roles
//! apply), in a session built for that call under the policy in force, with
//! the connection's tag (what a CancelRequest finds). A statement prepared
//! with Parse is planned then — for its result and parameter types, and to
//! refuse it early — and planned again at every Execute under the policy in
//! force, as Flight SQL's prepared statements are.
//!
//! Statements clients send that are not queries are answered here, without
//! the engine: `BEGIN`/`COMMIT`/`ROLLBACK` are accepted (the lake is
//! read-only, a transaction changes nothing), `SET`/`RESET`/`SHOW` of client
//! settings (`client_encoding`, `DateStyle`, `extra_float_digits`,
//! `application_name`, `search_path`, …) are kept as the connection's own and
//! change nothing in the engine, `DISCARD ALL` and `DEALLOCATE` forget
//! prepared statements. `SET` of `citylake.*` and `datafusion.*` options goes
//! to the engine, which refuses it as it does over Flight SQL.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use arrow_pg::datatypes::arrow_schema_to_pg_fields;
use async_trait::async_trait;
use citylake_engine::audit::AuditRecord;
use citylake_engine::datafusion::arrow::array::{RecordBatch, StringArray};
use citylake_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use citylake_engine::datafusion::execution::SendableRecordBatchStream;
use citylake_engine::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use citylake_engine::{Engine, EngineError, QueryRequest, Session};
use citylake_server::UserDirectory;
use citylake_server::wire::{to_wire, wire_schema};
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::DEFAULT_NAME;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::DataRow;
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete,
    TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};

use crate::error::{fatal, to_pg, user_error};
use crate::startup::Login;

/// A statement as Parse left it.
#[derive(Debug, Clone)]
pub struct Prepared {
    sql: String,
    what: What,
}

#[derive(Debug, Clone)]
enum What {
    /// A query for the engine: its parameters' inferred types (`$1`, `$2`, …
    /// in order) and its result's schema as clients receive it.
    Query {
        parameters: Vec<Option<DataType>>,
        schema: SchemaRef,
    },
    /// A statement answered by the front end.
    Client(ClientStatement),
}

/// Statements answered without the engine.
#[derive(Debug, Clone, PartialEq)]
enum ClientStatement {
    Begin,
    Commit,
    Rollback,
    /// `SET name = value` of a client setting (value as written, unquoted).
    Set(String, String),
    /// `RESET name` / `RESET ALL` (`None`).
    Reset(Option<String>),
    Show(String),
    /// `DISCARD ALL`.
    Discard,
    /// `SAVEPOINT name`, `RELEASE [SAVEPOINT] name`, `ROLLBACK TO [SAVEPOINT]
    /// name`: nothing to keep or undo on a read-only lake; the tag to answer.
    Savepoint(&'static str),
    /// `DEALLOCATE ALL` (`None`) or `DEALLOCATE name`.
    Forget(Option<String>),
}

/// Options that belong to the engine: `SET` of these goes to the engine (and
/// is refused there), never kept as a client setting.
fn engine_option(name: &str) -> bool {
    name.starts_with("citylake.") || name.starts_with("datafusion.")
}

/// Recognises the statements the front end answers itself (see the module
/// documentation); `None` for everything else.
fn client_statement(sql: &str) -> Option<ClientStatement> {
    let text = sql.trim().trim_end_matches(';').trim();
    if text.contains(';') {
        // a script: its statements are looked at one by one
        return None;
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let first = lower.first()?.as_str();
    let only = |w: &[&str]| {
        lower.len() <= w.len() + 1 && lower.get(1).is_none_or(|x| w.contains(&x.as_str()))
    };
    match first {
        "begin" | "start"
            if first != "start" || lower.get(1).map(String::as_str) == Some("transaction") =>
        {
            Some(ClientStatement::Begin)
        }
        "commit" | "end" if only(&["transaction", "work"]) => Some(ClientStatement::Commit),
        "rollback" | "abort" if only(&["transaction", "work"]) => Some(ClientStatement::Rollback),
        "discard" if lower.len() == 2 => Some(ClientStatement::Discard),
        "savepoint" if lower.len() == 2 => Some(ClientStatement::Savepoint("SAVEPOINT")),
        "release" if (2..=3).contains(&lower.len()) => Some(ClientStatement::Savepoint("RELEASE")),
        "rollback" | "abort"
            if lower.get(1).map(String::as_str) == Some("to")
                || lower.get(2).map(String::as_str) == Some("to") =>
        {
            Some(ClientStatement::Savepoint("ROLLBACK"))
        }
        "deallocate" => {
            let name = words
                .iter()
                .skip(1)
                .find(|w| !w.eq_ignore_ascii_case("prepare"))?;
            Some(ClientStatement::Forget(
                (!name.eq_ignore_ascii_case("all")).then(|| name.trim_matches('"').to_string()),
            ))
        }
        "set" => {
            let mut rest = &text[words[0].len()..];
            rest = rest.trim_start();
            for scope in ["session ", "local "] {
                if rest.len() >= scope.len() && rest[..scope.len()].eq_ignore_ascii_case(scope) {
                    rest = rest[scope.len()..].trim_start();
                }
            }
            let lower_rest = rest.to_lowercase();
            if lower_rest.starts_with("characteristics ") || lower_rest.starts_with("transaction ")
            {
                return Some(ClientStatement::Set("transaction".into(), rest.into()));
            }
            if let Some(zone) = lower_rest.strip_prefix("time zone ") {
                return Some(ClientStatement::Set("timezone".into(), unquote(zone)));
            }
            if let Some(names) = lower_rest.strip_prefix("names ") {
                return Some(ClientStatement::Set(
                    "client_encoding".into(),
                    unquote(names),
                ));
            }
            let (name, value) = match rest.find(['=', ' ']) {
                Some(at) => (&rest[..at], rest[at..].trim_start_matches([' ', '='])),
                None => return None,
            };
            let value = value.trim();
            let value = value
                .strip_prefix("TO ")
                .or_else(|| value.strip_prefix("to "))
                .unwrap_or(value);
            let name = name.trim().trim_matches('"').to_lowercase();
            // the engine's options, the server's own settings and identity
            // (`SET ROLE`, `SET SESSION AUTHORIZATION`) are not the client's to
            // set: the engine refuses them
            let refused = engine_option(&name)
                || SERVER_OWNED.contains(&name.as_str())
                || name == "role"
                || name == "authorization";
            (!refused).then(|| ClientStatement::Set(name, unquote(value)))
        }
        "reset" if lower.len() == 2 => {
            let name = lower[1].trim_matches('"').to_string();
            if engine_option(&name) {
                return None;
            }
            Some(ClientStatement::Reset((name != "all").then_some(name)))
        }
        "show" if lower[1..] == ["transaction", "isolation", "level"] => {
            Some(ClientStatement::Show("transaction_isolation".into()))
        }
        "show" if lower.len() == 2 => {
            let name = lower[1].trim_matches('"').to_string();
            (!engine_option(&name) && name != "all" && name != "tables" && name != "columns")
                .then_some(ClientStatement::Show(name))
        }
        _ => None,
    }
}

/// PostgreSQL spellings clients put into their catalog queries that mean
/// nothing else here: psql's `OPERATOR(pg_catalog.~)` (the operator, schema
/// qualified) and `COLLATE pg_catalog.default` (the default collation); and
/// PostgreSQL's keyword `user` (see [`user_keyword`]).
fn postgres_spellings(sql: &str) -> std::borrow::Cow<'_, str> {
    let sql = user_keyword(sql);
    if !sql.contains("pg_catalog.") {
        return sql;
    }
    let mut out = sql.into_owned();
    for op in ["!~*", "~*", "!~", "~", "<>", "=", "<=", ">=", "<", ">"] {
        out = out.replace(&format!("OPERATOR(pg_catalog.{op})"), op);
    }
    out = out.replace(" COLLATE pg_catalog.default", "");
    // (casts to the catalog's types are read by the engine, for every front
    // end: engine/src/pg_catalog/spellings.rs)
    out.into()
}

/// `user` without quotes is a keyword in PostgreSQL, the current user
/// (`current_user`), not a column: Grafana's table list compares schemas with
/// `CASE WHEN trim(s[i]) = '"$user"' THEN user …`. It is rewritten so over
/// this protocol; `"user"` (quoted) names a column, as in PostgreSQL — the
/// one of `system.audit_log` and `system.queries`. Where PostgreSQL reads
/// `user` as a name (after `.` or `AS`, before `.` or `(`) it stays.
fn user_keyword(sql: &str) -> std::borrow::Cow<'_, str> {
    use citylake_engine::datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use citylake_engine::datafusion::sql::sqlparser::keywords::Keyword;
    use citylake_engine::datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.to_ascii_lowercase().contains("user") {
        return sql.into();
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        // the parser reports what is wrong with it
        return sql.into();
    };
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|i| !matches!(tokens[*i].token, Token::Whitespace(_)))
        .collect();
    let is_word = |i: usize, k: Keyword| matches!(&tokens[i].token, Token::Word(w) if w.keyword == k && w.quote_style.is_none());
    // byte offsets of the lines (the tokenizer counts columns in characters)
    let lines: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut replace = vec![];
    for (n, &i) in significant.iter().enumerate() {
        if !is_word(i, Keyword::USER) {
            continue;
        }
        let before = n.checked_sub(1).map(|p| significant[p]);
        let after = significant.get(n + 1).copied();
        let a_name = before.is_some_and(|b| {
            matches!(tokens[b].token, Token::Period)
                || [Keyword::AS, Keyword::CREATE, Keyword::ALTER, Keyword::DROP]
                    .iter()
                    .any(|k| is_word(b, *k))
        }) || after
            .is_some_and(|a| matches!(tokens[a].token, Token::Period | Token::LParen));
        if a_name {
            continue;
        }
        let start = tokens[i].span.start;
        let Some(line) = lines.get(start.line.saturating_sub(1) as usize) else {
            return sql.into();
        };
        let Some((offset, _)) = sql[*line..]
            .char_indices()
            .nth(start.column.saturating_sub(1) as usize)
        else {
            return sql.into();
        };
        replace.push(line + offset);
    }
    if replace.is_empty() {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len() + 8 * replace.len());
    let mut from = 0;
    for at in replace {
        out.push_str(&sql[from..at]);
        out.push_str("current_user");
        from = at + "user".len();
    }
    out.push_str(&sql[from..]);
    out.into()
}

/// The most parameters a prepared statement may have: PostgreSQL's (a Bind
/// message counts them in 16 bits).
const MAX_PARAMETERS: usize = 65535;

/// The highest `$n` placeholder in `sql` (0 for none).
fn placeholders(sql: &str) -> usize {
    use citylake_engine::datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use citylake_engine::datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map(|tokens| {
            tokens
                .iter()
                .filter_map(|t| match t {
                    Token::Placeholder(p) => p.strip_prefix('$')?.parse::<usize>().ok(),
                    _ => None,
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Whether `sql` holds no statement: only whitespace, comments and `;`.
fn only_comments(sql: &str) -> bool {
    use citylake_engine::datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use citylake_engine::datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .is_ok_and(|tokens| {
            tokens
                .iter()
                .all(|t| matches!(t, Token::Whitespace(_) | Token::SemiColon))
        })
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    v.strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(v)
        .to_string()
}

/// The value of a setting a client asks for with `SHOW`: what it set, else
/// the server's.
fn setting<C: ClientInfo>(client: &C, name: &str) -> Option<String> {
    // the server's own settings are the server's, whatever a start-up message said
    if !SERVER_OWNED.contains(&name) {
        if let Some(v) = client.metadata().get(&setting_key(name)) {
            return Some(v.clone());
        }
        if let Some(v) = client.metadata().get(name) {
            return Some(v.clone());
        }
    }
    citylake_engine::pg_catalog::server_setting(name).map(str::to_string)
}

/// The connection's `statement_timeout` (`SET statement_timeout = 5000`,
/// `'5s'`, `'2min'`; `0` is none), as PostgreSQL reads it: a bare number is
/// milliseconds. It shortens, never lengthens, the server's query timeout.
/// A Parse of more SQL than any statement may be (as the engine refuses it).
fn statement_too_large(bytes: usize) -> PgWireError {
    user_error(
        "54000",
        format!(
            "statement too large: {bytes} bytes, at most {}",
            citylake_engine::MAX_STATEMENT_BYTES
        ),
    )
}

fn statement_timeout<C: ClientInfo>(client: &C) -> Option<std::time::Duration> {
    let value = client.metadata().get(&setting_key("statement_timeout"))?;
    let value = value.trim();
    let millis = match value.parse::<u64>() {
        Ok(ms) => ms,
        Err(_) => {
            let (number, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit())?);
            let n: u64 = number.parse().ok()?;
            let scale: u64 = match unit.trim() {
                "ms" => 1,
                "s" => 1000,
                "min" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return None,
            };
            n.saturating_mul(scale)
        }
    };
    // PostgreSQL's largest (`INT_MAX` milliseconds, 24.8 days)
    let millis = millis.min(i32::MAX as u64);
    (millis > 0).then(|| std::time::Duration::from_millis(millis))
}

/// Settings only the server sets (`SHOW` answers the server's value).
const SERVER_OWNED: [&str; 11] = [
    "server_version",
    "server_version_num",
    "server_encoding",
    "integer_datetimes",
    "is_superuser",
    "max_identifier_length",
    "lc_collate",
    "lc_ctype",
    "transaction_read_only",
    "default_transaction_read_only",
    "session_authorization",
];

/// Where a connection keeps the settings its client made.
const SETTING_PREFIX: &str = "citylake.pg.setting.";

/// How many settings one connection may hold, and how long each may be.
const MAX_SETTINGS: usize = 256;
const MAX_SETTING_BYTES: usize = 4096;

fn setting_key(name: &str) -> String {
    format!("{SETTING_PREFIX}{name}")
}

/// The engine stream as Postgres rows, in `format` (text or binary per column).
fn rows(
    stream: SendableRecordBatchStream,
    format: &Format,
    idle: std::time::Duration,
) -> PgWireResult<QueryResponse> {
    let schema = wire_schema(&stream.schema());
    let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, None)?);
    let encode = fields.clone();
    let rows = idle_closing(stream, idle)
        .map(move |batch| {
            let encoded: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send> = match batch
                .map_err(EngineError::from)
                .and_then(|b| to_wire(b, &schema).map_err(EngineError::from))
            {
                Ok(batch) => Box::new(crate::rows::encode(encode.clone(), batch)),
                Err(e) => Box::new(std::iter::once(Err(to_pg(&e, None)))),
            };
            futures::stream::iter(encoded)
        })
        .flatten();
    Ok(QueryResponse::new(fields, rows))
}

/// Default of how long a portal's query may wait for its client's next
/// Execute before it is ended: a portal fetched in chunks keeps its query —
/// and the admission slot it holds — running between fetches, so a client that
/// stops fetching (an open cursor forgotten in a BI tool, or on purpose) would
/// otherwise keep other users' queries queued for as long as its connection
/// lives.
pub const PORTAL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The engine stream, ended (dropped: the query ends as `dropped`, its slot
/// freed) when nobody has polled it for `limit`; the next poll then answers an
/// error saying so.
fn idle_closing(
    stream: SendableRecordBatchStream,
    limit: std::time::Duration,
) -> impl futures::Stream<Item = citylake_engine::datafusion::error::Result<RecordBatch>> + Send + 'static
{
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    struct Shared {
        stream: parking_lot::Mutex<Option<SendableRecordBatchStream>>,
        started: std::time::Instant,
        /// milliseconds since `started` of the last poll
        last: AtomicU64,
        closed_idle: AtomicBool,
    }
    impl Shared {
        fn touch(&self) {
            self.last
                .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        fn idle(&self) -> std::time::Duration {
            let last = std::time::Duration::from_millis(self.last.load(Ordering::Relaxed));
            self.started.elapsed().saturating_sub(last)
        }
    }
    let shared = Arc::new(Shared {
        stream: parking_lot::Mutex::new(Some(stream)),
        started: std::time::Instant::now(),
        last: AtomicU64::new(0),
        closed_idle: AtomicBool::new(false),
    });
    let watched = Arc::downgrade(&shared);
    let forever = limit >= std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    tokio::spawn(async move {
        if forever {
            return;
        }
        loop {
            tokio::time::sleep(limit / 4).await;
            let Some(shared) = watched.upgrade() else {
                return;
            };
            if shared.idle() < limit {
                continue;
            }
            // not while a poll is running (it holds the lock)
            if let Some(mut stream) = shared.stream.try_lock() {
                if stream.take().is_some() {
                    shared.closed_idle.store(true, Ordering::Relaxed);
                    tracing::info!("postgres: a portal idle for {limit:?} ended");
                }
                return;
            }
        }
    });
    futures::stream::poll_fn(move |cx| {
        shared.touch();
        let mut stream = shared.stream.lock();
        let polled = match stream.as_mut() {
            Some(s) => s.poll_next_unpin(cx),
            None if shared.closed_idle.swap(false, Ordering::Relaxed) => {
                std::task::Poll::Ready(Some(Err(
                    citylake_engine::datafusion::error::DataFusionError::External(Box::new(
                        citylake_engine::queries::Cancelled(format!(
                            "the portal was closed: its client fetched nothing for {limit:?}"
                        )),
                    )),
                )))
            }
            None => std::task::Poll::Ready(None),
        };
        if matches!(polled, std::task::Poll::Ready(None)) {
            *stream = None;
        }
        shared.touch();
        polled
    })
}

/// One text column named `name` with one row, `value`.
fn one_value(name: &str, value: String, format: &Format) -> PgWireResult<QueryResponse> {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec![value]))],
    )
    .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let stream = RecordBatchStreamAdapter::new(schema, futures::stream::iter([Ok(batch)]));
    rows(Box::pin(stream), format, PORTAL_IDLE_TIMEOUT)
}

/// Shared by both protocols: the engine, the users, the connection's login.
pub struct QueryHandler {
    engine: Arc<Engine>,
    users: Arc<UserDirectory>,
    parser: Arc<Parser>,
    portal_idle: std::time::Duration,
}

impl QueryHandler {
    /// Execute of a query's portal: up to `max_rows` rows (0: all) streamed
    /// to the client as they are encoded — pgwire's own Execute gathers
    /// every requested row in memory first, the whole result for
    /// `max_rows = 0`, and reserves room for `max_rows` rows up front —
    /// then PortalSuspended, or CommandComplete at the end.
    async fn execute_query<C>(
        &self,
        client: &mut C,
        portal: Arc<Portal<Prepared>>,
        max_rows: usize,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use pgwire::api::PgWireConnectionState;
        use pgwire::api::portal::PortalExecutionState;
        use pgwire::messages::extendedquery::PortalSuspended;
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let transaction_status = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let state = portal.state();
        if matches!(*state.lock().await, PortalExecutionState::Initial) {
            match ExtendedQueryHandler::do_query(self, client, portal.as_ref(), max_rows).await? {
                Response::Query(results) => portal.start(results).await,
                // the connection's error path answers it (skipping to Sync)
                Response::Error(e) => return Err(PgWireError::UserError(e)),
                _ => unreachable!("a query's portal answers rows or an error"),
            }
        }
        let mut state = state.lock().await;
        let streamed = async {
            match &mut *state {
                PortalExecutionState::Suspended(response) => {
                    let tag = response.command_tag().to_owned();
                    let data = response.data_rows();
                    let mut rows = 0;
                    let mut suspended = true;
                    while max_rows == 0 || rows < max_rows {
                        match data.next().await {
                            Some(row) => {
                                client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                                rows += 1;
                            }
                            None => {
                                suspended = false;
                                break;
                            }
                        }
                    }
                    Ok((tag, rows, suspended))
                }
                // fetched to its end before: nothing more
                _ => Ok(("SELECT".to_string(), 0, false)),
            }
        }
        .await;
        let (tag, rows, suspended) = match streamed {
            Ok(done) => done,
            Err(e) => {
                // the query ended with an error (a timeout, a cancel, an idle
                // close, a limit): the portal is gone, so a later Execute of it
                // is told so rather than answered as if its rows had ended
                drop(state);
                named(client).portals.lock().remove(&portal.name);
                client.portal_store().rm_portal(&portal.name);
                return Err(e);
            }
        };
        if suspended {
            client
                .send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
                .await?;
        } else {
            *state = PortalExecutionState::Finished;
            client
                .send(PgWireBackendMessage::CommandComplete(
                    Tag::new(&tag).with_rows(rows).into(),
                ))
                .await?;
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(transaction_status);
        Ok(())
    }
    pub fn new(
        engine: Arc<Engine>,
        users: Arc<UserDirectory>,
        portal_idle: std::time::Duration,
    ) -> Self {
        let parser = Arc::new(Parser {
            engine: engine.clone(),
            users: users.clone(),
        });
        Self {
            engine,
            users,
            parser,
            portal_idle,
        }
    }

    /// Answers a statement of the front end's own.
    fn client_response<C>(
        &self,
        client: &mut C,
        statement: &ClientStatement,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        Ok(match statement {
            ClientStatement::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            ClientStatement::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
            ClientStatement::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
            ClientStatement::Savepoint(tag) => Response::Execution(Tag::new(tag)),
            ClientStatement::Set(name, value) => {
                // a connection's settings are bounded: any name may be set
                // (as PostgreSQL's custom ones), not any number of them
                let key = setting_key(name);
                let held = client
                    .metadata()
                    .keys()
                    .filter(|k| k.starts_with(SETTING_PREFIX))
                    .count();
                let new = !client.metadata().contains_key(&key);
                if value.len() > MAX_SETTING_BYTES || (new && held >= MAX_SETTINGS) {
                    return Err(user_error(
                        "53400",
                        format!(
                            "a connection holds at most {MAX_SETTINGS} settings of at most \
                             {MAX_SETTING_BYTES} bytes each (RESET some)"
                        ),
                    ));
                }
                client.metadata_mut().insert(key, value.clone());
                Response::Execution(Tag::new("SET"))
            }
            ClientStatement::Reset(name) => {
                let keys: Vec<String> = match name {
                    Some(n) => vec![setting_key(n)],
                    None => client
                        .metadata()
                        .keys()
                        .filter(|k| k.starts_with(SETTING_PREFIX))
                        .cloned()
                        .collect(),
                };
                for k in keys {
                    client.metadata_mut().remove(&k);
                }
                Response::Execution(Tag::new("RESET"))
            }
            ClientStatement::Show(name) => match setting(client, name) {
                Some(value) => Response::Query(one_value(name, value, format)?),
                None => {
                    return Err(user_error(
                        "42704",
                        format!("unrecognized configuration parameter \"{name}\""),
                    ));
                }
            },
            ClientStatement::Forget(name) => {
                let named = named(client);
                match name {
                    Some(n) => {
                        named.statements.lock().remove(n);
                        client.portal_store().rm_statement(n);
                    }
                    None => {
                        for (n, _) in named.statements.lock().drain() {
                            client.portal_store().rm_statement(&n);
                        }
                    }
                }
                Response::Execution(Tag::new(if name.is_some() {
                    "DEALLOCATE"
                } else {
                    "DEALLOCATE ALL"
                }))
            }
            ClientStatement::Discard => {
                let named = named(client);
                for (n, _) in named.statements.lock().drain() {
                    client.portal_store().rm_statement(&n);
                }
                named.portals.lock().clear();
                client.portal_store().clear_portals();
                Response::Execution(Tag::new("DISCARD ALL"))
            }
        })
    }

    /// `COPY … TO STDOUT`: the query's rows in COPY format (see [`crate::copy`]);
    /// a refused `COPY` is recorded in the audit trail like a refused query.
    async fn copy_out(
        &self,
        session: &Session,
        login: &Login,
        sql: &str,
    ) -> PgWireResult<Response> {
        let copy = match crate::copy::parse(sql) {
            Ok(copy) => copy,
            Err(e) => {
                if let PgWireError::UserError(info) = &e
                    && (info.code == "25006" || info.code == "42501")
                {
                    let record = AuditRecord::new("query", sql, "refused").failed(&info.message);
                    session
                        .audit(record, None)
                        .await
                        .map_err(|e| to_pg(&e, None))?;
                }
                return Err(e);
            }
        };
        let request = QueryRequest::new(&copy.query).with_tag(crate::cancel::tag(login.pid));
        let stream = session
            .query(request)
            .await
            .map_err(|e| to_pg(&e, Some(&copy.query)))?;
        Ok(Response::CopyOut(crate::copy::response(stream, &copy)?))
    }

    /// Runs one query of the engine's for the connection.
    async fn run(
        &self,
        session: &Session,
        login: &Login,
        request: QueryRequest,
        sql: &str,
        format: &Format,
    ) -> PgWireResult<QueryResponse> {
        let request = request.with_tag(crate::cancel::tag(login.pid));
        let stream = session
            .query(request)
            .await
            .map_err(|e| to_pg(&e, Some(sql)))?;
        rows(stream, format, self.portal_idle)
    }
}

/// Most named prepared statements, and most named portals, one connection
/// may hold (as Flight SQL bounds prepared statements per user): beyond, Parse
/// or Bind is refused with `53400` until some are closed.
pub const MAX_NAMED_PER_CONNECTION: usize = 256;

/// Most bytes one connection's prepared statements (their text) and portals
/// (their bound values) may hold together, unnamed ones included: beyond,
/// Parse or Bind is refused with `53400` until some are closed. Counting
/// names alone let one connection hold 256 statements and 256 portals of up
/// to 16 MiB each (red team, round 3).
pub const MAX_HELD_BYTES_PER_CONNECTION: usize = 16 << 20;

/// A connection's prepared statements and portals, by name (the unnamed one,
/// [`DEFAULT_NAME`], is replaced, not added), with the bytes each holds.
#[derive(Default)]
struct Named {
    statements: parking_lot::Mutex<HashMap<String, usize>>,
    portals: parking_lot::Mutex<HashMap<String, usize>>,
}

/// A statement's or portal's name as a message gives it: none, or an empty
/// one, is the unnamed one.
fn name_or_default(name: &Option<String>) -> String {
    name.as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAME)
        .to_string()
}

/// Which of a connection's [`Named`] maps.
#[derive(Clone, Copy)]
enum Kept {
    Statement,
    Portal,
}

impl Named {
    /// Keeps `bytes` under `name` in `kept`'s map — what the name held before,
    /// for [`Named::restore`] — or refuses (keeping nothing) when the name
    /// would be one too many or the bytes too much.
    fn keep(&self, kept: Kept, name: &str, bytes: usize) -> PgWireResult<Option<usize>> {
        let (mut statements, mut portals) = (self.statements.lock(), self.portals.lock());
        let held: usize = statements.values().chain(portals.values()).sum();
        let (names, what) = match kept {
            Kept::Statement => (&mut *statements, "prepared statement"),
            Kept::Portal => (&mut *portals, "portal"),
        };
        let replaced = names.get(name).copied();
        let named = names.len() - usize::from(names.contains_key(DEFAULT_NAME));
        if name != DEFAULT_NAME && replaced.is_none() && named >= MAX_NAMED_PER_CONNECTION {
            return Err(user_error(
                "53400",
                format!(
                    "this connection holds {MAX_NAMED_PER_CONNECTION} named {what}s, the most it \
                     may: close some first"
                ),
            ));
        }
        if held - replaced.unwrap_or(0) + bytes > MAX_HELD_BYTES_PER_CONNECTION {
            return Err(user_error(
                "53400",
                format!(
                    "this connection's prepared statements and portals would hold more than {} \
                     (this {what}: {}): close some first",
                    bytesize::ByteSize::b(MAX_HELD_BYTES_PER_CONNECTION as u64),
                    bytesize::ByteSize::b(bytes as u64)
                ),
            ));
        }
        names.insert(name.to_string(), bytes);
        Ok(replaced)
    }

    /// What `name` held before a [`Named::keep`] whose statement or portal
    /// was then refused: nothing (`None`), or its earlier bytes.
    fn restore(&self, kept: Kept, name: &str, before: Option<usize>) {
        let mut names = match kept {
            Kept::Statement => self.statements.lock(),
            Kept::Portal => self.portals.lock(),
        };
        match before {
            Some(bytes) => names.insert(name.to_string(), bytes),
            None => names.remove(name),
        };
    }
}

fn named<C: ClientInfo>(client: &C) -> Arc<Named> {
    client
        .session_extensions()
        .get_or_insert_with(Named::default)
}

/// The session a connection's statement runs in (see the module documentation).
async fn session_for<C: ClientInfo>(
    engine: &Arc<Engine>,
    users: &UserDirectory,
    client: &C,
) -> PgWireResult<(Session, Arc<Login>)> {
    let Some(login) = client.session_extensions().get::<Login>() else {
        // never reached through the protocol (the startup handler runs first),
        // but a connection without a login runs nothing
        return Err(fatal("28000", "not logged in"));
    };
    let address = format!("postgres {}", client.socket_addr());
    let current = users.current();
    let why = match current.get(&login.user) {
        Some(user) if user.password_hash == login.credential => {
            let session = engine
                .session(user.principal())
                .with_client(address)
                .with_client_timeout(statement_timeout(client));
            return Ok((session, login));
        }
        Some(_) => "the password changed since this connection logged in",
        None => "the user no longer exists",
    };
    let record = AuditRecord::new("login", "postgres connection", "refused")
        .by(&login.user, &address)
        .failed(why);
    if let Err(e) = engine.audit_log().record(record).await {
        return Err(fatal("58000", e.to_string()));
    }
    Err(fatal("28000", why))
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (session, login) = session_for(&self.engine, &self.users, client).await?;
        let text = Format::UnifiedText;
        let query = &*postgres_spellings(query);
        if let Some(statement) = client_statement(query) {
            return Ok(vec![self.client_response(client, &statement, &text)?]);
        }
        if crate::copy::is_copy(query) {
            return Ok(vec![self.copy_out(&session, &login, query).await?]);
        }
        if only_comments(query) {
            // pgx's ping is `-- ping`, lib/pq's `;`
            return Ok(vec![Response::EmptyQuery]);
        }
        let statements = session.parse(query).map_err(|e| to_pg(&e, Some(query)))?;
        if statements.len() <= 1 {
            let response = self
                .run(&session, &login, QueryRequest::new(query), query, &text)
                .await?;
            return Ok(vec![Response::Query(response)]);
        }
        // a script: each statement in turn, up to the first error
        let mut responses = vec![];
        for statement in statements {
            let sql = statement.to_string();
            let answer = match client_statement(&sql) {
                Some(own) => self.client_response(client, &own, &text),
                None => self
                    .run(
                        &session,
                        &login,
                        QueryRequest::parsed(statement),
                        &sql,
                        &text,
                    )
                    .await
                    .map(Response::Query),
            };
            match answer {
                Ok(r) => responses.push(r),
                Err(e) => {
                    responses.push(Response::Error(Box::new(ErrorInfo::from(e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// Parse: plans the statement for its types (and to refuse it early).
pub struct Parser {
    engine: Arc<Engine>,
    users: Arc<UserDirectory>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let (session, _) = session_for(&self.engine, &self.users, client).await?;
        let sql = &*postgres_spellings(sql);
        if crate::copy::is_copy(sql) {
            return Err(crate::copy::extended_refused());
        }
        if let Some(own) = client_statement(sql) {
            return Ok(Some(Prepared {
                sql: sql.to_string(),
                what: What::Client(own),
            }));
        }
        let declared = placeholders(sql);
        if declared > MAX_PARAMETERS {
            // (a place is kept for each: `$99999999999` would ask for terabytes)
            return Err(user_error(
                "54000",
                format!(
                    "a statement may have at most {MAX_PARAMETERS} parameters; this one names ${declared}"
                ),
            ));
        }
        let started = std::time::Instant::now();
        let plan = match session.plan_sql(sql).await {
            Ok(plan) => plan,
            Err(e) => {
                // refusals and errors are recorded, as every request's are
                let (outcome, recorded) = citylake_engine::queries::Outcome::of_error(&e);
                let record = AuditRecord::new("prepare", sql, outcome.as_str())
                    .took(started.elapsed())
                    .failed(recorded);
                session
                    .audit(record, None)
                    .await
                    .map_err(|e| to_pg(&e, None))?;
                return Err(to_pg(&e, Some(sql)));
            }
        };
        // a prepared statement is recorded as over Flight SQL: who planned what,
        // over which datasets (its executions are recorded each with its values)
        session
            .audit(
                AuditRecord::new("prepare", sql, "ok").took(started.elapsed()),
                Some(&plan),
            )
            .await
            .map_err(|e| to_pg(&e, None))?;
        // `$n` by position: the types the planner inferred, and a place for
        // every `$n` the text holds even where the plan lost it (a subquery
        // over an empty catalog answered before planning): clients bind them all
        let mut parameters: Vec<Option<DataType>> = vec![None; declared];
        for (id, t) in plan
            .get_parameter_types()
            .map_err(|e| to_pg(&e.into(), Some(sql)))?
        {
            if let Some(n) = id
                .trim_start_matches('$')
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PARAMETERS).contains(n))
            {
                if parameters.len() < n {
                    parameters.resize(n, None);
                }
                parameters[n - 1] = t;
            }
        }
        Ok(Some(Prepared {
            sql: sql.to_string(),
            what: What::Query {
                parameters,
                schema: wire_schema(plan.schema().as_arrow()),
            },
        }))
    }

    fn get_parameter_types(&self, statement: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(match &statement.what {
            What::Query { parameters, .. } => parameters
                .iter()
                .map(|t| {
                    t.as_ref()
                        .and_then(crate::params::pg_type)
                        .unwrap_or(Type::TEXT)
                })
                .collect(),
            What::Client(_) => vec![],
        })
    }

    fn get_result_schema(
        &self,
        statement: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.unwrap_or(&Format::UnifiedText);
        match &statement.what {
            What::Query { schema, .. } => arrow_schema_to_pg_fields(schema, format, None),
            What::Client(ClientStatement::Show(name)) => arrow_schema_to_pg_fields(
                &Schema::new(vec![Field::new(name, DataType::Utf8, false)]),
                format,
                None,
            ),
            What::Client(_) => Ok(vec![]),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    /// Execute: the connection's user is checked first, also for a portal
    /// already running (a suspended portal of a removed user, or of one whose
    /// password changed, delivers no more rows: the connection ends).
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        session_for(&self.engine, &self.users, client).await?;
        let mut message = message;
        // PostgreSQL: zero or less is every row (pgwire would reserve room
        // for `-1 as usize` rows and panic)
        message.max_rows = message.max_rows.max(0);
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal))
                if matches!(portal.statement.statement.what, What::Query { .. }) =>
            {
                self.execute_query(client, portal, message.max_rows as usize)
                    .await
            }
            _ => self._on_execute(client, message).await,
        }
    }

    /// Describe: the connection's user is checked first.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        session_for(&self.engine, &self.users, client).await?;
        self._on_describe(client, message).await
    }

    /// Parse, within [`MAX_NAMED_PER_CONNECTION`] named statements.
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let named = named(client);
        let name = name_or_default(&message.name);
        let sql_bytes = message.query.len();
        if sql_bytes > citylake_engine::MAX_STATEMENT_BYTES {
            return Err(statement_too_large(sql_bytes));
        }
        let before = named.keep(Kept::Statement, &name, sql_bytes)?;
        match StoredStatement::parse(client, &message, self.query_parser()).await {
            Ok(Some(statement)) => client.portal_store().put_statement(Arc::new(statement)),
            Ok(None) => client.portal_store().put_empty_statement(&name),
            Err(e) => {
                // the statement kept under the name before stays, and counts
                named.restore(Kept::Statement, &name, before);
                return Err(e);
            }
        }
        client
            .send(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    /// Bind, within [`MAX_NAMED_PER_CONNECTION`] named portals.
    async fn on_bind<C>(&self, client: &mut C, mut message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let named = named(client);
        let portal = name_or_default(&message.portal_name);
        // the values are copied out of the message: pgwire hands them out as
        // slices of its read buffer, which kept the whole buffer (up to a
        // 16 MiB message) alive for a value of a few bytes
        message.parameters = message
            .parameters
            .into_iter()
            .map(|p| p.map(|b| bytes::Bytes::copy_from_slice(&b)))
            .collect();
        let bound: usize = message.parameters.iter().flatten().map(|b| b.len()).sum();
        let before = named.keep(Kept::Portal, &portal, bound)?;
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let put = match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => Portal::try_new(&message, statement)
                .map(|p| client.portal_store().put_portal(Arc::new(p))),
            Some(Entry::Empty) if !message.parameters.is_empty() => Err(user_error(
                "08P01",
                format!(
                    "bind message supplies {} parameters, but the statement is empty",
                    message.parameters.len()
                ),
            )),
            Some(Entry::Empty) => {
                client.portal_store().put_empty_portal(&portal);
                Ok(())
            }
            None => Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        };
        if let Err(e) = put {
            named.restore(Kept::Portal, &portal, before);
            return Err(e);
        }
        client
            .send(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    /// Close of a statement or portal, which frees its name.
    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let named = named(client);
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                named.statements.lock().remove(name);
                client.portal_store().rm_statement(name);
            }
            TARGET_TYPE_BYTE_PORTAL => {
                named.portals.lock().remove(name);
                client.portal_store().rm_portal(name);
            }
            _ => {}
        }
        client
            .send(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (session, login) = session_for(&self.engine, &self.users, client).await?;
        let statement: &StoredStatement<Prepared> = &portal.statement;
        let prepared = &statement.statement;
        let format = &portal.result_column_format;
        match &prepared.what {
            What::Client(own) => {
                let own = own.clone();
                self.client_response(client, &own, format)
            }
            What::Query { parameters, .. } => {
                let values = crate::params::values(portal, &statement.parameter_types, parameters)?;
                let mut request = QueryRequest::new(&prepared.sql);
                if !values.is_empty() {
                    let text = crate::params::audit_text(&values);
                    request = request.with_parameters(values, text);
                }
                let response = self
                    .run(&session, &login, request, &prepared.sql, format)
                    .await?;
                Ok(Response::Query(response))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connections_statements_and_portals_are_bounded_in_names_and_bytes() {
        let named = Named::default();
        let mib = 1 << 20;
        for i in 0..15 {
            named.keep(Kept::Statement, &format!("s{i}"), mib).unwrap();
        }
        // portals count with the statements
        let refused = named.keep(Kept::Portal, "p", mib + 1).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("would hold more than 16.0 MiB"),
            "{refused}"
        );
        named.keep(Kept::Portal, "p", mib).unwrap();
        // replacing a name counts its new bytes, not both
        named.keep(Kept::Portal, "p", mib).unwrap();
        named.keep(Kept::Statement, "s0", mib).unwrap();
        // a refused statement gives its place back as it was
        let before = named.keep(Kept::Statement, "s1", 10).unwrap();
        assert_eq!(before, Some(mib));
        named.restore(Kept::Statement, "s1", before);
        assert_eq!(named.statements.lock().get("s1"), Some(&mib));
        named.restore(Kept::Portal, "p", None);
        assert_eq!(named.portals.lock().get("p"), None);
        // the unnamed one is replaced and does not count among the names
        let small = Named::default();
        for i in 0..MAX_NAMED_PER_CONNECTION {
            small.keep(Kept::Statement, &format!("s{i}"), 1).unwrap();
        }
        small.keep(Kept::Statement, DEFAULT_NAME, 1).unwrap();
        small.keep(Kept::Statement, DEFAULT_NAME, 2).unwrap();
        let refused = small.keep(Kept::Statement, "one more", 1).unwrap_err();
        assert!(refused.to_string().contains("256 named"), "{refused}");
    }

    #[test]
    fn placeholders_are_counted_in_the_text() {
        assert_eq!(placeholders("SELECT 1"), 0);
        assert_eq!(placeholders("SELECT $1, '$5', $3 -- $9"), 3);
    }

    #[test]
    fn user_is_the_keyword_unless_quoted_or_a_name() {
        for (sql, want) in [
            (
                "SELECT CASE WHEN x = '\"$user\"' THEN user ELSE x END",
                "SELECT CASE WHEN x = '\"$user\"' THEN current_user ELSE x END",
            ),
            (
                "SELECT User, \"user\", a.user, 1 AS user\n FROM t WHERE\n  é = USER",
                "SELECT current_user, \"user\", a.user, 1 AS user\n FROM t WHERE\n  é = current_user",
            ),
            (
                "SELECT 'user', users, user_id FROM t -- user",
                "SELECT 'user', users, user_id FROM t -- user",
            ),
            (
                "SELECT user.x, user(1) FROM user",
                "SELECT user.x, user(1) FROM current_user",
            ),
            ("CREATE USER x", "CREATE USER x"),
        ] {
            assert_eq!(user_keyword(sql), want, "{sql}");
        }
    }

    #[test]
    fn savepoints_are_accepted() {
        for (sql, tag) in [
            ("SAVEPOINT _pg3_1", "SAVEPOINT"),
            ("RELEASE SAVEPOINT _pg3_1", "RELEASE"),
            ("release sp", "RELEASE"),
            ("ROLLBACK TO SAVEPOINT _pg3_1", "ROLLBACK"),
            ("rollback transaction to sp", "ROLLBACK"),
        ] {
            assert_eq!(
                client_statement(sql),
                Some(ClientStatement::Savepoint(tag)),
                "{sql}"
            );
        }
        assert_eq!(
            client_statement("ROLLBACK"),
            Some(ClientStatement::Rollback)
        );
    }

    #[test]
    fn comment_only_queries_are_empty() {
        for sql in ["-- ping", ";", "  ", "/* x */ ;\n-- y"] {
            assert!(only_comments(sql), "{sql}");
        }
        assert!(!only_comments("-- x\nSELECT 1"));
    }

    #[test]
    fn client_statements_are_recognised() {
        use ClientStatement::*;
        assert_eq!(client_statement("BEGIN"), Some(Begin));
        assert_eq!(client_statement("begin transaction;"), Some(Begin));
        assert_eq!(client_statement("START TRANSACTION READ ONLY"), Some(Begin));
        assert_eq!(client_statement("COMMIT"), Some(Commit));
        assert_eq!(client_statement("rollback"), Some(Rollback));
        assert_eq!(
            client_statement("SET extra_float_digits = 3"),
            Some(Set("extra_float_digits".into(), "3".into()))
        );
        assert_eq!(
            client_statement("SET search_path TO 'public'"),
            Some(Set("search_path".into(), "public".into()))
        );
        assert_eq!(
            client_statement("SET SESSION application_name = 'psql'"),
            Some(Set("application_name".into(), "psql".into()))
        );
        assert_eq!(
            client_statement("SET TIME ZONE 'UTC'"),
            Some(Set("timezone".into(), "utc".into()))
        );
        assert_eq!(
            client_statement("SHOW DateStyle"),
            Some(Show("datestyle".into()))
        );
        assert_eq!(client_statement("DISCARD ALL"), Some(Discard));
        assert_eq!(client_statement("DEALLOCATE ALL"), Some(Forget(None)));
        // identity and the server's settings are not the client's
        assert_eq!(client_statement("SET ROLE admin"), None);
        assert_eq!(client_statement("SET SESSION AUTHORIZATION root"), None);
        assert_eq!(client_statement("SET is_superuser = on"), None);
        assert_eq!(
            client_statement("DEALLOCATE PREPARE s1"),
            Some(Forget(Some("s1".into())))
        );
        // the engine's options are the engine's to refuse
        assert_eq!(client_statement("SET citylake.audit = 'off'"), None);
        assert_eq!(
            client_statement("SET datafusion.execution.batch_size = 1"),
            None
        );
        assert_eq!(
            client_statement("SHOW datafusion.execution.batch_size"),
            None
        );
        assert_eq!(
            client_statement("RESET datafusion.optimizer.max_passes"),
            None
        );
        // queries are queries
        assert_eq!(client_statement("SELECT 1"), None);
        assert_eq!(client_statement("SET a = 1; SELECT 1"), None);
        assert_eq!(
            client_statement("SHOW TRANSACTION ISOLATION LEVEL"),
            Some(Show("transaction_isolation".into()))
        );
        assert_eq!(client_statement("begin_date"), None);
        assert_eq!(client_statement("START 1"), None);
    }
}
