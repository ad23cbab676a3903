//! The Flight SQL service: every call authenticated, planned and executed
//! through the engine's session API, results streamed batch by batch.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{DoPutError, FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    CancelFlightInfoResult, CancelStatus, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use citylake_engine::audit::AuditRecord;
use citylake_engine::datafusion::arrow::array::{ArrayRef, RecordBatch};
use citylake_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use citylake_engine::datafusion::arrow::ipc::writer::IpcWriteOptions;
use citylake_engine::datafusion::common::{ScalarValue, TableReference};
use citylake_engine::datafusion::logical_expr::LogicalPlan;
use citylake_engine::{Engine, Principal, QueryRequest, Session};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Tokens, UserDirectory, decode_basic};
use crate::metadata::{Listing, ServerInfo};
use crate::prepared::{PreparedLimits, PreparedStatements};
use crate::status::to_status;
use crate::tickets;
use crate::wire::{to_wire, wire_schema};

type DoGetStream = <CitylakeFlightSql as FlightService>::DoGetStream;

/// The one answer to a wrong user name or a wrong password (which it was is not said).
const WRONG_PASSWORD: &str = "wrong user name or password";

/// citylake's Flight SQL service.
pub struct CitylakeFlightSql {
    engine: Arc<Engine>,
    users: Arc<UserDirectory>,
    tokens: Arc<Tokens>,
    prepared: PreparedStatements,
    info: ServerInfo,
}

impl CitylakeFlightSql {
    pub fn new(engine: Arc<Engine>, users: Arc<UserDirectory>, tokens: Arc<Tokens>) -> Self {
        Self {
            engine,
            users,
            tokens,
            prepared: PreparedStatements::new(PreparedLimits::default()),
            info: ServerInfo::default(),
        }
    }

    /// Bounds the prepared-statement state (per-user cap, idle expiry).
    pub fn with_prepared_limits(mut self, limits: PreparedLimits) -> Self {
        self.prepared = PreparedStatements::new(limits);
        self
    }

    /// Records a login attempt (`method`: handshake, basic, token) by `user`
    /// from the request's client; never the password or the token.
    async fn audit_login<T>(
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
            .await
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    /// A refused login, recorded: the status to answer with (UNAUTHENTICATED, or
    /// UNAVAILABLE when the record cannot be written).
    async fn refuse_login<T>(
        &self,
        request: &Request<T>,
        user: &str,
        method: &str,
        why: &str,
    ) -> Status {
        match self.audit_login(request, user, method, Err(why)).await {
            Ok(()) => Status::unauthenticated(why.to_string()),
            Err(unavailable) => unavailable,
        }
    }

    /// The principal whose name and password these are, with the credential
    /// it was checked against (the stored hash), which a token issued for this
    /// login is bound to.
    async fn verify(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<(Principal, String)>, Status> {
        let user = self
            .users
            .verify(user, password)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock => Status::unavailable(e.to_string()),
                _ => Status::internal(format!("verifying the password: {e}")),
            })?;
        Ok(user.map(|u| (u.principal(), u.password_hash)))
    }

    /// The principal of a request: a bearer token from the handshake, or basic
    /// credentials sent with the call itself. Basic credentials and refused
    /// tokens are login attempts, recorded in the audit trail. Basic
    /// credentials that verified are remembered (as a hash, for a token's
    /// lifetime, and only while the user's password hash is unchanged), so a
    /// client that sends them with every call pays for Argon2 and is recorded
    /// as a login once.
    /// Called by the gate in front of every call but the handshake
    /// (`gate.rs`), whose finding the handlers read back from the request.
    pub(crate) async fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        if let Some(crate::gate::Authenticated(principal)) = request.extensions().get() {
            return Ok(principal.clone());
        }
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
            let token = token.trim();
            let known = (!token.starts_with(crate::auth::BASIC_KEY_PREFIX))
                .then(|| self.tokens.check(token))
                .flatten();
            return match known {
                // the user as the users file says now: roles changed since the
                // login apply; a removed user's tokens end here, and a token
                // issued before a password change ends at its next call
                Some(crate::auth::TokenOwner { user, credential }) => {
                    match self.users.current().get(&user) {
                        Some(u) if u.password_hash == credential => Ok(u.principal()),
                        Some(_) => {
                            self.tokens.forget(token);
                            const WHY: &str =
                                "the password changed since this login; the token is revoked";
                            tracing::warn!(user, "a token issued before a password change revoked");
                            Err(self.refuse_login(request, &user, "token", WHY).await)
                        }
                        None => {
                            let n = self.tokens.revoke(&user);
                            const WHY: &str = "the user no longer exists; its tokens are revoked";
                            tracing::warn!(user, tokens = n, "tokens of a removed user revoked");
                            Err(self.refuse_login(request, &user, "token", WHY).await)
                        }
                    }
                }
                None => Err(self
                    .refuse_login(
                        request,
                        "",
                        "token",
                        "invalid or expired token; log in again",
                    )
                    .await),
            };
        }
        if let Some(basic) = header.strip_prefix("Basic ") {
            let (user, password) = decode_basic(basic)?;
            let users = self.users.current();
            let remembered = crate::auth::basic_key(
                &user,
                &password,
                users.get(&user).map(|u| u.password_hash.as_str()),
            );
            if let Some(u) = users.get(&user)
                && self.tokens.check(&remembered)
                    == Some(crate::auth::TokenOwner {
                        user: user.clone(),
                        credential: u.password_hash.clone(),
                    })
            {
                return Ok(u.principal());
            }
            return match self.verify(&user, &password).await? {
                Some((p, credential)) => {
                    self.audit_login(request, &user, "basic", Ok(&p)).await?;
                    self.tokens.remember(&remembered, &user, &credential);
                    Ok(p)
                }
                None => Err(self
                    .refuse_login(request, &user, "basic", WRONG_PASSWORD)
                    .await),
            };
        }
        Err(Status::unauthenticated(
            "unsupported authorization scheme; use Basic or Bearer",
        ))
    }

    async fn session<T>(&self, request: &Request<T>) -> Result<Session, Status> {
        let principal = self.principal(request).await?;
        let client = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        Ok(self.engine.session(principal).with_client(client))
    }

    /// Plans SQL without running it (a FlightInfo, a prepared statement's
    /// schemas), recorded in the audit trail as `kind`: a refusal, an error, or
    /// (when `record_ok`) the plan.
    async fn plan(
        &self,
        session: &Session,
        sql: &str,
        kind: &str,
        record_ok: bool,
    ) -> Result<LogicalPlan, Status> {
        let started = std::time::Instant::now();
        let plan = match session.plan_sql(sql).await {
            Ok(plan) => plan,
            Err(e) => {
                let (outcome, recorded) = citylake_engine::queries::Outcome::of_error(&e);
                let record = AuditRecord::new(kind, sql, outcome.as_str())
                    .took(started.elapsed())
                    .failed(recorded);
                session
                    .audit(record, None)
                    .await
                    .map_err(|e| to_status(&e))?;
                return Err(to_status(&e));
            }
        };
        if record_ok {
            session
                .audit(
                    AuditRecord::new(kind, sql, "ok").took(started.elapsed()),
                    Some(&plan),
                )
                .await
                .map_err(|e| to_status(&e))?;
        }
        Ok(plan)
    }

    /// GetFlightInfo of a metadata command: authenticate, announce its
    /// schema, and hand the command back as the ticket.
    async fn listing_info(
        &self,
        request: Request<FlightDescriptor>,
        listing: Listing,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = listing.schema(&self.info);
        let info = Self::info(&schema, listing.ticket(), request.into_inner())?;
        Ok(Response::new(info))
    }

    /// DoGet of a metadata command: its rows for the caller, recorded in
    /// the audit trail (every lookup is, the server's own description too).
    async fn listing(
        &self,
        request: Request<Ticket>,
        listing: Listing,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request).await?;
        let started = std::time::Instant::now();
        let command = listing.name();
        let batch = listing.rows(&session, &self.info).await?;
        session
            .audit(
                AuditRecord::new("metadata", command, "ok")
                    .returned(batch.num_rows() as u64, 0)
                    .took(started.elapsed()),
                None,
            )
            .await
            .map_err(|e| to_status(&e))?;
        batch_response(batch)
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

    /// The FlightInfo of a planned query: its client-safe schema and `ticket`.
    fn query_info(
        plan: &LogicalPlan,
        ticket: &impl ProstMessageExt,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = wire_schema(plan.schema().as_arrow());
        let info = Self::info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    /// Runs queries one after the other (a prepared statement's parameter
    /// rows), converting every batch to client-safe types. The first runs
    /// before the response, so that a refusal or a planning error is the
    /// call's status and the stream's schema is the query's. Each query's
    /// lifecycle — its audit record, `system.queries` entry, cancellation —
    /// is the engine's ([`Session::query`]).
    async fn stream(
        &self,
        session: Session,
        requests: Vec<QueryRequest>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut requests = requests.into_iter();
        let first = requests
            .next()
            .ok_or_else(|| Status::internal("no query to run"))?;
        let first = session.query(first).await.map_err(|e| to_status(&e))?;
        let schema = wire_schema(&first.schema());
        let session = Arc::new(session);
        let rest = futures::stream::iter(requests)
            .then(move |request| {
                let session = session.clone();
                async move { session.query(request).await }
            })
            .map_err(|e| FlightError::Tonic(Box::new(to_status(&e))));
        let target = schema.clone();
        let batches = futures::stream::once(async move { Ok(first) })
            .chain(rest)
            .map_ok(|s| s.map_err(|e| FlightError::Tonic(Box::new(to_status(&e.into())))))
            .try_flatten()
            .and_then(move |batch| {
                let target = target.clone();
                async move { to_wire(batch, &target).map_err(FlightError::Arrow) }
            });
        Ok(encode(schema, batches))
    }

    /// CancelFlightInfo: cancels the queries of the FlightInfo's tickets
    /// (each FlightInfo's ticket carries its own id: two executions of one
    /// statement are cancelled separately).
    fn cancel(&self, body: &[u8], user: &str) -> Result<CancelStatus, Status> {
        let mut cancelled = 0;
        for tag in tickets::cancelled_tags(body)? {
            cancelled += self.engine.queries().cancel_tagged(
                &tag,
                user,
                "the query was cancelled by the client (CancelFlightInfo)",
            );
        }
        Ok(if cancelled > 0 {
            CancelStatus::Cancelled
        } else {
            CancelStatus::NotCancellable
        })
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

const READ_ONLY: &str = "SQL that changes data is refused: the server takes queries, and appends to Delta datasets by bulk ingest (ADBC adbc_ingest)";

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
        let Some((principal, credential)) = self.verify(&user, &password).await? else {
            tracing::warn!(user, "failed login");
            return Err(self
                .refuse_login(&request, &user, "handshake", WRONG_PASSWORD)
                .await);
        };
        self.audit_login(&request, &user, "handshake", Ok(&principal))
            .await?;
        tracing::info!(user, "login");
        let token = self.tokens.issue(&principal.user, &credential);
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
        let session = self.session(&request).await?;
        let plan = self.plan(&session, &query.query, "plan", true).await?;
        // a random id makes each FlightInfo's ticket unique: it tags the query
        // the ticket starts (for CancelFlightInfo)
        let ticket = tickets::statement(&query.query);
        Self::query_info(&plan, &ticket, request)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request).await?;
        let (tag, sql) = tickets::read_statement(&ticket)?;
        self.stream(session, vec![QueryRequest::new(&sql).with_tag(&tag)])
            .await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let session = self.session(&request).await?;
        let plan = self.plan(&session, &query.query, "prepare", true).await?;
        let dataset_schema = ipc_schema(&wire_schema(plan.schema().as_arrow()))?;
        let parameter_schema = ipc_schema(&parameter_schema(&plan)?)?;
        let handle = self
            .prepared
            .create(&session.principal().user, &query.query)?;
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
        let principal = self.principal(&request).await?;
        let handle = query.prepared_statement_handle.clone();
        let mut received = self.prepared.receive(&handle, &principal.user)?;
        let mut stream = FlightRecordBatchStream::new_from_flight_data(crate::upload::checked(
            request.into_inner().map_err(FlightError::from),
            self.prepared.parameter_bytes(),
        ));
        // counted as they arrive (with the user's other uploads and bound
        // parameters), refused as soon as they are too many or too late
        let mut batches = Vec::<RecordBatch>::new();
        let timeout = self.prepared.upload_timeout();
        tokio::time::timeout(timeout, async {
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| {
                    Status::invalid_argument(format!("reading bound parameters: {e}"))
                })?;
                crate::upload::plain_parameters(&batch.schema())
                    .map_err(Status::invalid_argument)?;
                let bytes =
                    citylake_engine::ingest::held_bytes(&batch).map_err(|e| to_status(&e))?;
                received.add(bytes, batch.num_rows() as u64)?;
                batches.push(batch);
            }
            Ok::<_, Status>(())
        })
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!(
                "the bound parameters did not all arrive within {}; nothing was bound (send them \
                 faster or fewer at a time; the operator can raise --ingest-timeout)",
                humantime::format_duration(timeout)
            ))
        })??;
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
        self.prepared
            .bind(&handle, &principal.user, params, received)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request).await?;
        let (sql, _) = self
            .prepared
            .get(&cmd.prepared_statement_handle, &session.principal().user)?;
        let plan = self.plan(&session, &sql, "plan", false).await?;
        // each execution's ticket gets its own id (for CancelFlightInfo)
        let ticket = tickets::prepared(&cmd.prepared_statement_handle);
        Self::query_info(&plan, &ticket, request)
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request).await?;
        let (tag, handle) = tickets::read_prepared(&cmd.prepared_statement_handle);
        let (sql, params) = self.prepared.get(&handle, &session.principal().user)?;
        // planned again by each query: the policy in force now, the caller's principal now
        let mut requests = match params {
            None => vec![QueryRequest::new(&sql)],
            Some(rows) => bind_rows(&sql, &rows)?,
        };
        if let Some(tag) = tag {
            requests = requests.into_iter().map(|r| r.with_tag(&tag)).collect();
        }
        self.stream(session, requests).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let principal = self.principal(&request).await?;
        self.prepared
            .close(&query.prepared_statement_handle, &principal.user)
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.principal(&request).await?;
        Err(Status::permission_denied(READ_ONLY))
    }

    /// Bulk ingest (ADBC's `adbc_ingest`): appends to a Delta dataset the
    /// principal may write, as one transaction (see `citylake_engine::ingest`).
    /// Only appending to a dataset the catalog declares: creating, replacing,
    /// temporary tables and transactions are refused.
    async fn do_put_statement_ingest(
        &self,
        ticket: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        use arrow_flight::sql::{TableExistsOption, TableNotExistOption};
        let session = self.session(&request).await?;
        let options = ticket.table_definition_options.unwrap_or_default();
        let exists = TableExistsOption::try_from(options.if_exists).ok();
        let missing = TableNotExistOption::try_from(options.if_not_exist).ok();
        let refuse = |why: &str| {
            Err(Status::invalid_argument(format!(
                "ingest into `{}`: {why}; citylake appends to datasets its catalog declares \
                 (ADBC: mode=\"append\")",
                ticket.table
            )))
        };
        if ticket.temporary {
            return refuse("temporary tables are not supported");
        }
        if ticket.transaction_id.is_some() {
            return refuse("transactions are not supported (each ingest is one)");
        }
        if exists != Some(TableExistsOption::Append) {
            return refuse("only appending to an existing table is supported");
        }
        if !matches!(
            missing,
            Some(TableNotExistOption::Fail | TableNotExistOption::Create)
        ) {
            return refuse("the option for a missing table is not set");
        }
        let table = match (&ticket.catalog, &ticket.schema) {
            (Some(c), Some(s)) => {
                TableReference::full(c.as_str(), s.as_str(), ticket.table.as_str())
            }
            (None, Some(s)) => TableReference::partial(s.as_str(), ticket.table.as_str()),
            (_, None) => match ticket.table.split_once('.') {
                // `schema.table` in the table name, as ADBC users write it
                Some((s, t)) => TableReference::partial(s, t),
                None => TableReference::bare(ticket.table.as_str()),
            },
        };
        // (on the wire, twice the largest request: what the decoder keeps
        // for itself, dictionaries, is bounded too; the batches are counted
        // against --max-ingest-bytes by the engine)
        let batches = FlightRecordBatchStream::new_from_flight_data(crate::upload::checked(
            request.into_inner().map_err(FlightError::from),
            2 * self.engine.max_ingest_bytes() as u64,
        ))
        .map_err(|e| {
            citylake_engine::EngineError::Rejected(format!("reading the ingested batches: {e}"))
        });
        let outcome = self
            .engine
            .ingest(&session, table, batches)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(outcome.rows as i64)
    }

    /// An upload whose first message is missing or names no command: what
    /// arrives when ADBC ingests a table of no rows (it sends no message, so
    /// nothing says which table). Nothing is written either way.
    async fn do_put_error_callback(
        &self,
        request: Request<PeekableFlightDataStream>,
        error: DoPutError,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        self.principal(&request).await?;
        Err(Status::invalid_argument(match error {
            DoPutError::MissingCommand => {
                "the upload carried no message, so nothing says what it is for; nothing was \
                 written (an ADBC ingest of no rows sends nothing)"
            }
            DoPutError::MissingFlightDescriptor => {
                "the upload's first message has no Flight descriptor naming its command; \
                 nothing was written"
            }
        }))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.principal(&request).await?;
        Err(Status::permission_denied(READ_ONLY))
    }

    // ---- metadata: one line each over metadata::Listing ----

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing_info(request, Listing::Catalogs(query)).await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.listing(request, Listing::Catalogs(query)).await
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing_info(request, Listing::Schemas(query)).await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.listing(request, Listing::Schemas(query)).await
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing_info(request, Listing::Tables(query)).await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.listing(request, Listing::Tables(query)).await
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing_info(request, Listing::TableTypes(query)).await
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.listing(request, Listing::TableTypes(query)).await
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing_info(request, Listing::SqlInfo(query)).await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.listing(request, Listing::SqlInfo(query)).await
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing_info(request, Listing::XdbcTypeInfo(query))
            .await
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.listing(request, Listing::XdbcTypeInfo(query)).await
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing_info(request, Listing::PrimaryKeys(query))
            .await
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.listing(request, Listing::PrimaryKeys(query)).await
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing_info(request, Listing::ExportedKeys(query))
            .await
    }

    async fn do_get_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.listing(request, Listing::ExportedKeys(query)).await
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing_info(request, Listing::ImportedKeys(query))
            .await
    }

    async fn do_get_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.listing(request, Listing::ImportedKeys(query)).await
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing_info(request, Listing::CrossReference(query))
            .await
    }

    async fn do_get_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.listing(request, Listing::CrossReference(query)).await
    }

    async fn do_action_fallback(
        &self,
        request: Request<arrow_flight::Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let principal = self.principal(&request).await?;
        let action = request.into_inner();
        if action.r#type != CANCEL_FLIGHT_INFO {
            return Err(Status::invalid_argument(format!(
                "unknown action `{}`",
                action.r#type
            )));
        }
        let status = self.cancel(&action.body, &principal.user)?;
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
        self.principal(&request).await?;
        Err(Status::invalid_argument(format!(
            "unknown ticket type {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Bound parameter rows as JSON (`[{"$1": …}, …]`), for the audit trail.
fn parameters_json(rows: &RecordBatch) -> String {
    let mut writer = citylake_engine::datafusion::arrow::json::ArrayWriter::new(Vec::new());
    match writer.write(rows).and_then(|_| writer.finish()) {
        Ok(()) => String::from_utf8_lossy(&writer.into_inner()).into_owned(),
        Err(e) => format!("(parameters not encodable: {e})"),
    }
}

/// One query per bound parameter row, each with that row's values.
fn bind_rows(sql: &str, rows: &RecordBatch) -> Result<Vec<QueryRequest>, Status> {
    let mut requests = Vec::with_capacity(rows.num_rows());
    for row in 0..rows.num_rows() {
        let values: Vec<ScalarValue> = rows
            .columns()
            .iter()
            .map(|c: &ArrayRef| ScalarValue::try_from_array(c, row))
            .collect::<Result<_, _>>()
            .map_err(|e| Status::invalid_argument(format!("bound parameter: {e}")))?;
        requests.push(
            QueryRequest::new(sql).with_parameters(values, parameters_json(&rows.slice(row, 1))),
        );
    }
    if requests.is_empty() {
        return Err(Status::invalid_argument("no parameter rows were bound"));
    }
    Ok(requests)
}
