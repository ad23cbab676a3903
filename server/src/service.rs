//! The Flight SQL service: every call authenticated, planned and executed
//! through the engine's session API, results streamed batch by batch.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use base64::Engine as _;
use citylake_engine::audit::AuditRecord;
use citylake_engine::datafusion::arrow::array::{ArrayRef, RecordBatch};
use citylake_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use citylake_engine::datafusion::arrow::ipc::writer::IpcWriteOptions;
use citylake_engine::datafusion::common::ScalarValue;
use citylake_engine::datafusion::logical_expr::LogicalPlan;
use citylake_engine::{Engine, Principal, Session};
use futures::stream::{AbortHandle, Abortable};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Tokens, UserDirectory};
use crate::metadata;
use crate::status::to_status;
use crate::wire::{to_wire, wire_schema};

type DoGetStream = <CitylakeFlightSql as FlightService>::DoGetStream;

/// The one answer to a wrong user name or a wrong password (which it was is not said).
const WRONG_PASSWORD: &str = "wrong user name or password";

/// A prepared statement, owned by the user who created it. It keeps the SQL,
/// not a plan: every execution plans it again under the policy in force and the
/// caller's principal, so a policy reload (a revoked dataset, a new mask or row
/// filter) applies to handles prepared before it.
struct Prepared {
    user: String,
    /// The statement's SQL.
    sql: String,
    /// Bound parameter rows (one execution per row).
    params: Option<RecordBatch>,
    /// Last created, bound or executed; idle handles expire.
    used: std::time::Instant,
}

/// Bounds on the server's prepared-statement state.
#[derive(Debug, Clone, Copy)]
pub struct PreparedLimits {
    /// Open handles per user; creating one more is refused (RESOURCE_EXHAUSTED).
    pub per_user: usize,
    /// A handle unused this long is closed.
    pub idle: std::time::Duration,
}

impl Default for PreparedLimits {
    fn default() -> Self {
        Self {
            per_user: 256,
            idle: std::time::Duration::from_secs(3600),
        }
    }
}

/// citylake's Flight SQL service.
pub struct CitylakeFlightSql {
    engine: Arc<Engine>,
    /// Running DoGet streams by ticket, so CancelFlightInfo can stop them.
    running: Arc<Mutex<HashMap<Vec<u8>, AbortHandle>>>,
    users: Arc<UserDirectory>,
    tokens: Arc<Tokens>,
    prepared: Mutex<HashMap<String, Prepared>>,
    prepared_limits: PreparedLimits,
    sql_info: SqlInfoData,
    xdbc: XdbcTypeInfoData,
}

impl CitylakeFlightSql {
    pub fn new(engine: Arc<Engine>, users: Arc<UserDirectory>, tokens: Arc<Tokens>) -> Self {
        Self {
            engine,
            running: Arc::new(Mutex::new(HashMap::new())),
            users,
            tokens,
            prepared: Mutex::new(HashMap::new()),
            prepared_limits: PreparedLimits::default(),
            sql_info: metadata::sql_info(),
            xdbc: metadata::xdbc_type_info(),
        }
    }

    /// Bounds the prepared-statement state (per-user cap, idle expiry).
    pub fn with_prepared_limits(mut self, limits: PreparedLimits) -> Self {
        self.prepared_limits = limits;
        self
    }

    /// Records a login attempt (`method`: handshake, basic, token) by `user`
    /// from the request's client; never the password or the token.
    fn audit_login<T>(
        &self,
        request: &Request<T>,
        user: &str,
        method: &str,
        outcome: Result<&Principal, &str>,
    ) -> Result<(), Status> {
        let client = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut record = AuditRecord::new(
            "login",
            method,
            if outcome.is_ok() { "ok" } else { "refused" },
        )
        .by(user, &client);
        match outcome {
            Ok(p) => record.roles = p.roles.join(","),
            Err(why) => record.error = why.to_string(),
        }
        self.engine
            .audit_log()
            .record(record)
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    /// A refused login, recorded: the status to answer with (UNAUTHENTICATED, or
    /// UNAVAILABLE when the record cannot be written).
    fn refuse_login<T>(&self, request: &Request<T>, user: &str, method: &str, why: &str) -> Status {
        match self.audit_login(request, user, method, Err(why)) {
            Ok(()) => Status::unauthenticated(why.to_string()),
            Err(unavailable) => unavailable,
        }
    }

    /// The principal of a request: a bearer token from the handshake, or basic
    /// credentials sent with the call itself. Basic credentials and refused
    /// tokens are login attempts, recorded in the audit trail.
    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                Status::unauthenticated(
                    "authentication required: handshake with a user name and password, \
                     then send the bearer token",
                )
            })?
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            return match self.tokens.check(token.trim()) {
                // the user as the users file says now: roles changed since the
                // login apply; a removed user's tokens end here
                Some(user) => match self.users.current().get(&user) {
                    Some(u) => Ok(u.principal()),
                    None => {
                        let n = self.tokens.revoke(&user);
                        const WHY: &str = "the user no longer exists; its tokens are revoked";
                        tracing::warn!(user, tokens = n, "tokens of a removed user revoked");
                        Err(self.refuse_login(request, &user, "token", WHY))
                    }
                },
                None => Err(self.refuse_login(
                    request,
                    "",
                    "token",
                    "invalid or expired token; log in again",
                )),
            };
        }
        if let Some(basic) = header.strip_prefix("Basic ") {
            let (user, password) = decode_basic(basic)?;
            return match self
                .users
                .current()
                .verify(&user, &password)
                .map(|u| u.principal())
            {
                Some(p) => {
                    self.audit_login(request, &user, "basic", Ok(&p))?;
                    Ok(p)
                }
                None => Err(self.refuse_login(request, &user, "basic", WRONG_PASSWORD)),
            };
        }
        Err(Status::unauthenticated(
            "unsupported authorization scheme; use Basic or Bearer",
        ))
    }

    fn session<T>(&self, request: &Request<T>) -> Result<Session, Status> {
        let principal = self.principal(request)?;
        let client = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        Ok(self.engine.session(principal).with_client(client))
    }

    /// Plans SQL; a refusal or an error is recorded in the audit trail.
    async fn plan(&self, session: &Session, sql: &str) -> Result<LogicalPlan, Status> {
        let started = std::time::Instant::now();
        match session.plan_sql(sql).await {
            Ok(plan) => {
                tracing::info!(user = %session.principal().user, sql, "planned");
                Ok(plan)
            }
            Err(e) => {
                // a hidden name is a refusal in the trail, a missing name to the user
                let (outcome, recorded) = match &e {
                    citylake_engine::EngineError::NotAllowed(_) => ("refused", e.to_string()),
                    citylake_engine::EngineError::Hidden { names, .. } => (
                        "refused",
                        format!("{e} (hidden from this user: {})", names.join(", ")),
                    ),
                    _ => ("error", e.to_string()),
                };
                session
                    .audit(
                        AuditRecord::new("query", sql, outcome)
                            .took(started.elapsed())
                            .failed(recorded),
                        None,
                    )
                    .map_err(|e| to_status(&e))?;
                Err(to_status(&e))
            }
        }
    }

    /// Records a metadata call in the audit trail.
    fn audit_metadata(
        session: &Session,
        command: &str,
        rows: usize,
        started: std::time::Instant,
    ) -> Result<(), Status> {
        session
            .audit(
                AuditRecord::new("metadata", command, "ok")
                    .returned(rows as u64, 0)
                    .took(started.elapsed()),
                None,
            )
            .map_err(|e| to_status(&e))
    }

    /// A FlightInfo announcing `schema` with one endpoint whose ticket is `ticket`.
    fn info(
        schema: &Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        Ok(FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("encoding the schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(descriptor))
    }

    /// GetFlightInfo of a metadata command: authenticate, announce `schema`,
    /// and hand the command back as the ticket.
    fn metadata_info<C: ProstMessageExt>(
        &self,
        request: Request<FlightDescriptor>,
        command: &C,
        schema: &Schema,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        let info = Self::info(
            schema,
            command.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    /// Executes plans one after the other, converting every batch to client-safe
    /// types. The stream is registered under its ticket until it ends, so that
    /// CancelFlightInfo can stop it (the client then gets `CANCELLED`).
    fn stream(
        &self,
        ticket: Vec<u8>,
        session: Session,
        sql: String,
        parameters: String,
        plans: Vec<LogicalPlan>,
        started: std::time::Instant,
    ) -> Result<Response<DoGetStream>, Status> {
        let first = plans
            .first()
            .ok_or_else(|| Status::internal("no plan to execute"))?;
        let schema = wire_schema(first.schema().as_arrow());
        let session = Arc::new(session);
        let log = QueryLog::start(&session, sql, parameters, first.clone());
        let target = schema.clone();
        let counter = log.clone();
        let query = log.sql().to_string();
        let batches = futures::stream::iter(plans)
            .then(move |plan| {
                let session = session.clone();
                let query = query.clone();
                async move { session.run_planned(plan, &query, started).await }
            })
            .map_err(|e| FlightError::Tonic(Box::new(to_status(&e))))
            .map_ok(|s| s.map_err(|e| FlightError::Tonic(Box::new(to_status(&e.into())))))
            .try_flatten()
            .and_then(move |batch| {
                let target = target.clone();
                counter.rows(&batch);
                async move { to_wire(batch, &target).map_err(FlightError::Arrow) }
            })
            .inspect_err({
                let log = log.clone();
                move |e| log.failed(e)
            });
        let (abort, registration) = AbortHandle::new_pair();
        self.running
            .lock()
            .expect("running lock")
            .insert(ticket.clone(), abort.clone());
        let guard = Unregister {
            running: self.running.clone(),
            ticket,
        };
        let cancelled = futures::stream::once(async move {
            drop(guard);
            // the record is on disk before the client sees the end; if it cannot
            // be written, the client sees an error instead of a complete result
            if let Err(e) = log.finish(abort.is_aborted()) {
                return Some(Err(FlightError::Tonic(Box::new(to_status(&e)))));
            }
            abort.is_aborted().then(|| {
                Err(FlightError::Tonic(Box::new(Status::cancelled(
                    "the query was cancelled",
                ))))
            })
        })
        .filter_map(|item| async move { item });
        Ok(encode(
            schema,
            Abortable::new(batches, registration).chain(cancelled),
        ))
    }

    /// A handle that can stop every running stream later (the end of a
    /// shutdown's grace period); their clients get `CANCELLED`.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            running: self.running.clone(),
        }
    }

    /// CancelFlightInfo: stops the running streams of the FlightInfo's tickets.
    fn cancel(&self, body: &[u8]) -> Result<CancelStatus, Status> {
        let request = CancelFlightInfoRequest::decode(body)
            .map_err(|e| Status::invalid_argument(format!("bad CancelFlightInfo request: {e}")))?;
        let info = request
            .info
            .ok_or_else(|| Status::invalid_argument("CancelFlightInfo without a FlightInfo"))?;
        let running = self.running.lock().expect("running lock");
        let mut cancelled = false;
        for endpoint in info.endpoint {
            if let Some(abort) = endpoint
                .ticket
                .and_then(|t| running.get(t.ticket.as_ref()).cloned())
            {
                abort.abort();
                cancelled = true;
            }
        }
        Ok(if cancelled {
            CancelStatus::Cancelled
        } else {
            CancelStatus::NotCancellable
        })
    }

    /// The SQL and bound parameters of `user`'s handle (an expired handle is closed).
    fn lookup_prepared(
        &self,
        handle: &[u8],
        user: &str,
    ) -> Result<(String, Option<RecordBatch>), Status> {
        let key = String::from_utf8_lossy(handle).to_string();
        let mut prepared = self.prepared.lock().expect("prepared lock");
        self.expire_prepared(&mut prepared);
        match prepared.get_mut(&key) {
            Some(p) if p.user == user => {
                p.used = std::time::Instant::now();
                Ok((p.sql.clone(), p.params.clone()))
            }
            _ => Err(Status::not_found(format!(
                "unknown prepared statement handle `{}` (closed, expired after {} idle, or made by \
                 another server or user)",
                key.chars().take(64).collect::<String>(),
                humantime::format_duration(self.prepared_limits.idle)
            ))),
        }
    }

    /// Closes the handles idle longer than the limit.
    fn expire_prepared(&self, prepared: &mut HashMap<String, Prepared>) {
        let idle = self.prepared_limits.idle;
        prepared.retain(|_, p| p.used.elapsed() < idle);
    }
}

/// Encodes record batches as Flight data with the announced schema.
fn encode<S>(schema: SchemaRef, batches: S) -> Response<DoGetStream>
where
    S: Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
{
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

/// A one-batch result.
fn batch_response(batch: RecordBatch) -> Result<Response<DoGetStream>, Status> {
    let schema = batch.schema();
    Ok(encode(schema, futures::stream::once(async { Ok(batch) })))
}

fn decode_basic(encoded: &str) -> Result<(String, String), Status> {
    // padding optional: Go's Flight client sends unpadded base64
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = lenient
        .decode(encoded.trim())
        .map_err(|_| Status::unauthenticated("basic credentials are not base64"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Status::unauthenticated("basic credentials are not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| Status::unauthenticated("basic credentials are not user:password"))?;
    Ok((user.to_string(), password.to_string()))
}

fn new_handle() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ipc_schema(schema: &Schema) -> Result<Vec<u8>, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: citylake_engine::datafusion::arrow::error::ArrowError| {
            Status::internal(format!("encoding the schema: {e}"))
        })?;
    Ok(bytes.to_vec())
}

/// The parameter schema of a plan: `$1`, `$2`, … in order, with their inferred types.
fn parameter_schema(plan: &LogicalPlan) -> Result<Schema, Status> {
    let types = plan
        .get_parameter_types()
        .map_err(|e| to_status(&e.into()))?;
    let mut params: Vec<(usize, String, Option<DataType>)> = types
        .into_iter()
        .map(|(id, t)| {
            (
                id.trim_start_matches('$').parse().unwrap_or(usize::MAX),
                id,
                t,
            )
        })
        .collect();
    params.sort();
    Ok(Schema::new(
        params
            .into_iter()
            .map(|(_, id, t)| {
                let t = wire_schema(&Schema::new(vec![Field::new(
                    "p",
                    t.unwrap_or(DataType::Null),
                    true,
                )]))
                .field(0)
                .data_type()
                .clone();
                Field::new(id, t, true)
            })
            .collect::<Vec<_>>(),
    ))
}

/// The Flight action that cancels a FlightInfo's queries.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

/// Stops the service's running streams (see [`CitylakeFlightSql::canceller`]).
#[derive(Clone)]
pub struct Canceller {
    running: Arc<Mutex<HashMap<Vec<u8>, AbortHandle>>>,
}

impl Canceller {
    /// Stops every running stream; returns how many.
    pub fn cancel_all(&self) -> usize {
        let running = self.running.lock().expect("running lock");
        for abort in running.values() {
            abort.abort();
        }
        running.len()
    }
}

/// Removes a stream from the running set when it ends or is dropped.
struct Unregister {
    running: Arc<Mutex<HashMap<Vec<u8>, AbortHandle>>>,
    ticket: Vec<u8>,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(&self.ticket);
        }
    }
}

const READ_ONLY: &str = "the lake is read-only through the server: only queries are accepted";

#[tonic::async_trait]
impl FlightSqlService for CitylakeFlightSql {
    type FlightService = CitylakeFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                Status::unauthenticated(
                    "handshake needs basic credentials (user name and password)",
                )
            })?
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        let basic = header
            .strip_prefix("Basic ")
            .ok_or_else(|| Status::unauthenticated("handshake needs basic credentials"))?;
        let (user, password) = decode_basic(basic)?;
        let Some(principal) = self
            .users
            .current()
            .verify(&user, &password)
            .map(|u| u.principal())
        else {
            tracing::warn!(user, "failed login");
            return Err(self.refuse_login(&request, &user, "handshake", WRONG_PASSWORD));
        };
        self.audit_login(&request, &user, "handshake", Ok(&principal))?;
        tracing::info!(user, "login");
        let token = self.tokens.issue(&principal.user);
        let payload = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(futures::stream::iter(vec![Ok(payload)])));
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("token is not a header value"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request)?;
        let started = std::time::Instant::now();
        let plan = self.plan(&session, &query.query).await?;
        session
            .audit(
                AuditRecord::new("plan", &query.query, "ok").took(started.elapsed()),
                Some(&plan),
            )
            .map_err(|e| to_status(&e))?;
        let schema = wire_schema(plan.schema().as_arrow());
        // a random id makes each FlightInfo's ticket unique (for CancelFlightInfo)
        let ticket = TicketStatementQuery {
            statement_handle: format!("{}:{}", new_handle(), query.query)
                .into_bytes()
                .into(),
        };
        let info = Self::info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request)?;
        let text = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("statement ticket is not UTF-8 SQL"))?;
        let sql = text
            .split_once(':')
            .map(|(_, sql)| sql.to_string())
            .ok_or_else(|| Status::invalid_argument("not a citylake statement ticket"))?;
        let started = std::time::Instant::now();
        let plan = self.plan(&session, &sql).await?;
        self.stream(
            request.into_inner().ticket.to_vec(),
            session,
            sql,
            String::new(),
            vec![plan],
            started,
        )
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let session = self.session(&request)?;
        let plan = self.plan(&session, &query.query).await?;
        let dataset_schema = ipc_schema(&wire_schema(plan.schema().as_arrow()))?;
        let parameter_schema = ipc_schema(&parameter_schema(&plan)?)?;
        session
            .audit(AuditRecord::new("prepare", &query.query, "ok"), Some(&plan))
            .map_err(|e| to_status(&e))?;
        let handle = new_handle();
        let user = session.principal().user.clone();
        {
            let mut prepared = self.prepared.lock().expect("prepared lock");
            self.expire_prepared(&mut prepared);
            let open = prepared.values().filter(|p| p.user == user).count();
            if open >= self.prepared_limits.per_user {
                return Err(Status::resource_exhausted(format!(
                    "user `{user}` has {open} open prepared statements, the most allowed \
                     (--max-prepared-statements); close some (ClosePreparedStatement)"
                )));
            }
            prepared.insert(
                handle.clone(),
                Prepared {
                    user,
                    sql: query.query.clone(),
                    params: None,
                    used: std::time::Instant::now(),
                },
            );
        }
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: dataset_schema.into(),
            parameter_schema: parameter_schema.into(),
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let principal = self.principal(&request)?;
        let handle = query.prepared_statement_handle.clone();
        self.lookup_prepared(&handle, &principal.user)?;
        let stream = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        );
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(format!("reading bound parameters: {e}")))?;
        let params = match batches.first() {
            None => None,
            Some(first) => Some(
                citylake_engine::datafusion::arrow::compute::concat_batches(
                    &first.schema(),
                    &batches,
                )
                .map_err(|e| Status::invalid_argument(format!("bound parameters: {e}")))?,
            ),
        };
        let key = String::from_utf8_lossy(&handle).to_string();
        if let Some(p) = self.prepared.lock().expect("prepared lock").get_mut(&key) {
            p.params = params;
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request)?;
        let (sql, _) =
            self.lookup_prepared(&cmd.prepared_statement_handle, &session.principal().user)?;
        let plan = self.plan(&session, &sql).await?;
        let schema = wire_schema(plan.schema().as_arrow());
        let info = Self::info(&schema, cmd.as_any().encode_to_vec(), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request)?;
        let (sql, params) =
            self.lookup_prepared(&cmd.prepared_statement_handle, &session.principal().user)?;
        // planned again: the policy in force now, the caller's principal now
        let started = std::time::Instant::now();
        let plan = self.plan(&session, &sql).await?;
        let parameters = params.as_ref().map(parameters_json).unwrap_or_default();
        let plans = match params {
            None => {
                let missing = plan
                    .get_parameter_types()
                    .map(|p| !p.is_empty())
                    .unwrap_or(false);
                if missing {
                    return Err(Status::invalid_argument(
                        "the prepared statement has parameters: bind them before executing",
                    ));
                }
                vec![plan]
            }
            Some(rows) => bind_rows(&plan, &rows)?,
        };
        self.stream(
            request.into_inner().ticket.to_vec(),
            session,
            sql,
            parameters,
            plans,
            started,
        )
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let principal = self.principal(&request)?;
        self.lookup_prepared(&query.prepared_statement_handle, &principal.user)?;
        let key = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        self.prepared.lock().expect("prepared lock").remove(&key);
        Ok(())
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.principal(&request)?;
        Err(Status::permission_denied(READ_ONLY))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.principal(&request)?;
        Err(Status::permission_denied(READ_ONLY))
    }

    // ---- metadata: GetFlightInfo announces the schema; DoGet returns the rows ----

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request)?;
        let started = std::time::Instant::now();
        let mut builder = query.into_builder();
        for name in session.catalog_names() {
            builder.append(name);
        }
        Self::audit_metadata(
            &session,
            "GetCatalogs",
            session.catalog_names().len(),
            started,
        )?;
        batch_response(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        )
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request)?;
        let started = std::time::Instant::now();
        let mut builder = query.into_builder();
        for (catalog, schema) in session.schemas() {
            builder.append(catalog, schema);
        }
        Self::audit_metadata(&session, "GetDbSchemas", session.schemas().len(), started)?;
        batch_response(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        )
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request)?;
        let started = std::time::Instant::now();
        let tables = session.tables().await.map_err(|e| to_status(&e))?;
        let mut builder = query.into_builder();
        for t in &tables {
            builder
                .append(
                    &t.catalog,
                    &t.schema,
                    &t.table,
                    t.table_type,
                    &wire_schema(&t.columns),
                )
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        Self::audit_metadata(&session, "GetTables", tables.len(), started)?;
        batch_response(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        )
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::table_types().schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        batch_response(metadata::table_types())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        batch_response(
            query
                .into_builder(&self.sql_info)
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        )
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder(&self.xdbc).schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        batch_response(
            query
                .into_builder(&self.xdbc)
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        )
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::primary_keys_schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        batch_response(RecordBatch::new_empty(metadata::primary_keys_schema()))
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        batch_response(RecordBatch::new_empty(metadata::foreign_keys_schema()))
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        batch_response(RecordBatch::new_empty(metadata::foreign_keys_schema()))
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        batch_response(RecordBatch::new_empty(metadata::foreign_keys_schema()))
    }

    async fn do_action_fallback(
        &self,
        request: Request<arrow_flight::Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        self.principal(&request)?;
        let action = request.into_inner();
        if action.r#type != CANCEL_FLIGHT_INFO {
            return Err(Status::invalid_argument(format!(
                "unknown action `{}`",
                action.r#type
            )));
        }
        let status = self.cancel(&action.body)?;
        let result = CancelFlightInfoResult::new(status);
        let body = arrow_flight::Result {
            body: result.encode_to_vec().into(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter(vec![Ok(
            body,
        )]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<arrow_flight::ActionType, Status>>> {
        Some(vec![Ok(arrow_flight::ActionType {
            r#type: CANCEL_FLIGHT_INFO.to_string(),
            description: "Cancel the running queries of a FlightInfo".to_string(),
        })])
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        Err(Status::invalid_argument(format!(
            "unknown ticket type {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// One plan per bound parameter row.
/// One query's line in the log when its stream is dropped (finished, failed,
/// cancelled or abandoned by the client): user, outcome, rows, time and the
/// object-store requests it made (`citylake serve --log info`).
#[derive(Clone)]
struct QueryLog {
    inner: Arc<QueryLogInner>,
}

struct QueryLogInner {
    session: Arc<Session>,
    sql: String,
    /// Values bound to a prepared statement's parameters (JSON rows), if any.
    parameters: String,
    plan: LogicalPlan,
    before: citylake_engine::RequestStats,
    started: std::time::Instant,
    rows: AtomicU64,
    bytes: AtomicU64,
    /// 0 running, 1 ok, 2 failed, 3 cancelled
    outcome: AtomicU8,
    error: Mutex<String>,
    /// The audit record is written once: at the end of the stream, before the
    /// client sees it end, or when the stream is dropped.
    audited: std::sync::atomic::AtomicBool,
}

impl QueryLog {
    fn start(session: &Arc<Session>, sql: String, parameters: String, plan: LogicalPlan) -> Self {
        Self {
            inner: Arc::new(QueryLogInner {
                session: session.clone(),
                sql,
                parameters,
                plan,
                bytes: AtomicU64::new(0),
                error: Mutex::new(String::new()),
                audited: Default::default(),
                before: session.object_store_requests(),
                started: std::time::Instant::now(),
                rows: AtomicU64::new(0),
                outcome: AtomicU8::new(0),
            }),
        }
    }

    fn sql(&self) -> &str {
        &self.inner.sql
    }

    fn rows(&self, batch: &RecordBatch) {
        self.inner
            .rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        self.inner
            .bytes
            .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
    }

    fn failed(&self, e: &FlightError) {
        self.inner.outcome.store(2, Ordering::Relaxed);
        *self.inner.error.lock().expect("error lock") = e.to_string();
        tracing::info!(user = %self.inner.session.principal().user, error = %e, "query failed");
    }

    /// The stream is about to end: record it in the audit trail now, so that
    /// the record is on disk before the client sees the end.
    fn finish(&self, cancelled: bool) -> citylake_engine::Result<()> {
        let outcome = if cancelled { 3 } else { 1 };
        let _ =
            self.inner
                .outcome
                .compare_exchange(0, outcome, Ordering::Relaxed, Ordering::Relaxed);
        self.inner.audit()
    }
}

impl QueryLogInner {
    fn outcome(&self) -> &'static str {
        match self.outcome.load(Ordering::Relaxed) {
            0 => "dropped",
            1 => "ok",
            2 => "error",
            _ => "cancelled",
        }
    }

    fn audit(&self) -> citylake_engine::Result<()> {
        if self.audited.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let error = self.error.lock().expect("error lock").clone();
        self.session.audit(
            AuditRecord::new("query", &self.sql, self.outcome())
                .returned(
                    self.rows.load(Ordering::Relaxed),
                    self.bytes.load(Ordering::Relaxed),
                )
                .took(self.started.elapsed())
                .failed(error)
                .with_parameters(self.parameters.clone()),
            Some(&self.plan),
        )
    }
}

impl Drop for QueryLogInner {
    fn drop(&mut self) {
        // a stream dropped by its client: nobody left to refuse (the failure is logged)
        let _ = self.audit();
        let outcome = match self.outcome.load(Ordering::Relaxed) {
            0 => "dropped by the client",
            1 => "ok",
            2 => "failed",
            _ => "cancelled",
        };
        tracing::info!(
            user = %self.session.principal().user,
            outcome,
            rows = self.rows.load(Ordering::Relaxed),
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            object_store = %self.session.object_store_requests().since(&self.before),
            "query finished"
        );
    }
}

/// Bound parameter rows as JSON (`[{"$1": …}, …]`), for the audit trail.
fn parameters_json(rows: &RecordBatch) -> String {
    let mut writer = citylake_engine::datafusion::arrow::json::ArrayWriter::new(Vec::new());
    match writer.write(rows).and_then(|_| writer.finish()) {
        Ok(()) => String::from_utf8_lossy(&writer.into_inner()).into_owned(),
        Err(e) => format!("(parameters not encodable: {e})"),
    }
}

fn bind_rows(plan: &LogicalPlan, rows: &RecordBatch) -> Result<Vec<LogicalPlan>, Status> {
    // DataFusion ignores extra values; a batch with more columns than the
    // statement has parameters is a client's mistake
    let parameters = plan
        .get_parameter_types()
        .map_err(|e| to_status(&e.into()))?
        .len();
    if rows.num_columns() > parameters {
        return Err(Status::invalid_argument(format!(
            "the statement has {parameters} parameter(s); the parameter batch binds {}",
            rows.num_columns()
        )));
    }
    let mut plans = Vec::with_capacity(rows.num_rows());
    for row in 0..rows.num_rows() {
        let values: Vec<ScalarValue> = rows
            .columns()
            .iter()
            .map(|c: &ArrayRef| ScalarValue::try_from_array(c, row))
            .collect::<Result<_, _>>()
            .map_err(|e| Status::invalid_argument(format!("bound parameter: {e}")))?;
        let bound = plan
            .clone()
            .with_param_values(values)
            .map_err(|e| to_status(&e.into()))?;
        plans.push(bound);
    }
    if plans.is_empty() {
        return Err(Status::invalid_argument("no parameter rows were bound"));
    }
    Ok(plans)
}
