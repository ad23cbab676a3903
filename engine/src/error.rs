//! Errors of the engine crate.

use datafusion::error::DataFusionError;

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What can go wrong building the engine or running a query.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The catalog could not be loaded or built.
    #[error("{0}")]
    Catalog(citylake_catalog::CatalogError),

    /// The engine configuration is invalid.
    #[error("invalid engine configuration: {0}")]
    Config(String),

    /// An object store could not be read or written (unreachable, refused,
    /// missing bucket or object); the message names the URL.
    #[error("{0}")]
    Storage(String),

    /// The statement is not allowed in this session (e.g. DDL through a read-only front end).
    #[error("not allowed: {0}")]
    NotAllowed(String),

    /// The audit trail cannot be written: the request is refused (fail closed).
    #[error("{0}")]
    Audit(String),

    /// A write's data or options are refused (a batch that breaks the
    /// dataset's declared columns, an unsupported mode); nothing was written.
    #[error("{0}")]
    Rejected(String),

    /// A table or view the statement names does not exist — or exists but the
    /// principal may not even list it (`hidden`): the user sees the same error
    /// either way, word for word DataFusion's own for a missing table (no oracle
    /// for hidden names); the audit trail records which it was. The suggestion
    /// is the nearest name the principal may list, found the same way for a
    /// hidden name as for a missing one.
    #[error("planning error: table '{name}' not found{}", did_you_mean(.suggestion))]
    NotFound {
        /// `catalog.schema.table`, as resolved.
        name: String,
        hidden: bool,
        /// The nearest visible `schema.table`, if one is near.
        suggestion: Option<String>,
    },

    /// The query failed: planning (syntax, unknown table, types) or execution.
    #[error("{}", describe(.0))]
    Query(DataFusionError),
}

impl From<citylake_catalog::CatalogError> for EngineError {
    fn from(e: citylake_catalog::CatalogError) -> Self {
        Self::Catalog(e)
    }
}

impl From<DataFusionError> for EngineError {
    fn from(e: DataFusionError) -> Self {
        // a table function's missing (or hidden) dataset reads as a missing table
        if let DataFusionError::External(inner) = e.find_root()
            && let Some(missing) = inner.downcast_ref::<MissingTable>()
        {
            return Self::NotFound {
                name: missing.name.clone(),
                hidden: missing.hidden,
                suggestion: None,
            };
        }
        Self::Query(e)
    }
}

/// A dataset named to a table function (`as_of`) that does not exist or that
/// the principal may not list: it becomes [`EngineError::NotFound`], word for
/// word the error of a missing table in `FROM`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("table '{name}' not found")]
pub struct MissingTable {
    /// `catalog.schema.table`.
    pub name: String,
    pub hidden: bool,
}

impl From<datafusion::arrow::error::ArrowError> for EngineError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Self::Query(e.into())
    }
}

impl EngineError {
    /// The underlying DataFusion error, if this is a query error.
    pub fn datafusion(&self) -> Option<&DataFusionError> {
        match self {
            Self::Query(e) => Some(e),
            _ => None,
        }
    }
}

/// What kind of failure an [`EngineError`] is, for a front end to answer
/// with its protocol's code (gRPC status, SQLSTATE): the one classification
/// every front end maps, so that Flight SQL and Postgres agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The SQL text does not parse.
    Syntax,
    /// The query is wrong: unknown column or function, types, planning.
    Invalid,
    /// A value failed at run time (a cast, a division by zero): the query's data.
    Data,
    /// A table or view that does not exist (or that the principal may not list).
    NotFound,
    /// The principal may not do this.
    PermissionDenied,
    /// Not supported by the engine.
    Unsupported,
    /// A resource limit: result size, memory, a full admission queue.
    ResourceExhausted,
    /// The query ran out of its time.
    Timeout,
    /// The query was cancelled (by its client, an administrator, shutdown).
    Cancelled,
    /// The store or the audit trail cannot be reached or written: retry later.
    Unavailable,
    /// A lake object is corrupt, truncated or gone since it was listed.
    DataLoss,
    /// The server's own configuration is wrong (the operator's to fix).
    Configuration,
    /// A fault of the engine; the message is for the server log, not the client.
    Internal,
}

impl EngineError {
    /// The kind of failure this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        use crate::audit::AuditError;
        use crate::governance::AccessDenied;
        use crate::limits::LimitError;
        use crate::queries::Cancelled;
        match self {
            Self::NotAllowed(_) => ErrorClass::PermissionDenied,
            Self::Storage(_) | Self::Audit(_) => ErrorClass::Unavailable,
            Self::Config(_) | Self::Catalog(_) => ErrorClass::Configuration,
            Self::NotFound { .. } => ErrorClass::NotFound,
            Self::Rejected(_) => ErrorClass::Invalid,
            Self::Query(df) => match df.find_root() {
                DataFusionError::SQL(..) => ErrorClass::Syntax,
                DataFusionError::SchemaError(..)
                | DataFusionError::Plan(_)
                | DataFusionError::Configuration(_) => ErrorClass::Invalid,
                DataFusionError::NotImplemented(_) => ErrorClass::Unsupported,
                DataFusionError::ParquetError(_) => ErrorClass::DataLoss,
                DataFusionError::ObjectStore(e)
                    if matches!(**e, object_store::Error::NotFound { .. }) =>
                {
                    ErrorClass::DataLoss
                }
                DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) => {
                    ErrorClass::Unavailable
                }
                DataFusionError::ResourcesExhausted(_) => ErrorClass::ResourceExhausted,
                DataFusionError::External(e) if e.is::<Cancelled>() => ErrorClass::Cancelled,
                DataFusionError::External(e) if e.is::<AccessDenied>() => {
                    ErrorClass::PermissionDenied
                }
                // the query's audit record could not be written: fail closed
                DataFusionError::External(e) if e.is::<AuditError>() => ErrorClass::Unavailable,
                DataFusionError::External(e) => match e.downcast_ref::<LimitError>() {
                    Some(LimitError::Timeout(_) | LimitError::IngestTimeout(_)) => {
                        ErrorClass::Timeout
                    }
                    Some(_) => ErrorClass::ResourceExhausted,
                    None => ErrorClass::Internal,
                },
                DataFusionError::Execution(_) | DataFusionError::ArrowError(..) => ErrorClass::Data,
                _ => ErrorClass::Internal,
            },
        }
    }

    /// Where a syntax error is in the statement: 1-based line and column, as
    /// the parser reports them (`… at Line: 2, Column: 7`).
    pub fn syntax_location(&self) -> Option<(u64, u64)> {
        let Self::Query(df) = self else { return None };
        let DataFusionError::SQL(err, _) = df.find_root() else {
            return None;
        };
        let text = err.to_string();
        let at = text.rfind("Line: ")?;
        let rest = &text[at + "Line: ".len()..];
        let (line, rest) = rest.split_once(", Column: ")?;
        let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        Some((line.trim().parse().ok()?, column.parse().ok()?))
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(name) => format!("; did you mean {name}?"),
        None => String::new(),
    }
}

/// DataFusion's message without the context wrappers it stacks, prefixed with what kind of error it is.
fn describe(e: &DataFusionError) -> String {
    let root = e.find_root();
    match root {
        DataFusionError::SQL(err, _) => format!("SQL syntax error: {}", parser_message(err)),
        DataFusionError::Plan(msg) => format!("planning error: {}", unstack(msg)),
        DataFusionError::SchemaError(err, _) => format!("schema error: {err}"),
        DataFusionError::ResourcesExhausted(msg) => format!("resources exhausted: {msg}"),
        DataFusionError::NotImplemented(msg) => format!("not supported: {msg}"),
        DataFusionError::Execution(msg) => format!("execution error: {}", unstack(msg)),
        DataFusionError::ArrowError(err, _) => format!("Arrow error: {err}"),
        // ParquetError's own message starts with what it is ("Parquet error: …")
        DataFusionError::ParquetError(err) => err.to_string(),
        DataFusionError::ObjectStore(err) => format!("storage error: {err}"),
        DataFusionError::IoError(err) => format!("I/O error: {err}"),
        // citylake's own errors (limits, cancellation, refusals) and those of
        // the libraries below say what they are; DataFusion's wrapper adds nothing
        DataFusionError::External(err) => err.to_string(),
        other => other.to_string(),
    }
}

/// A message without the errors DataFusion formats into it as text: a
/// function's own argument check reaches the user as
/// `Execution error: Function 'f' user-defined coercion failed with: Error
/// during planning: f: x must be numeric, got Utf8. No function matches …
/// Candidate functions: f(UserDefined)` — of which only the function's own
/// sentence says anything.
fn unstack(msg: &str) -> String {
    const COERCION: &str = "user-defined coercion failed with: ";
    const GENERIC: &str = ". No function matches the given name and argument types";
    let mut m = msg;
    if let Some(at) = m.find(COERCION) {
        m = &m[at + COERCION.len()..];
        if let Some(end) = m.find(GENERIC) {
            m = &m[..end];
        }
    }
    loop {
        let before = m;
        for prefix in [
            "Error during planning: ",
            "Execution error: ",
            "This feature is not implemented: ",
        ] {
            m = m.strip_prefix(prefix).unwrap_or(m);
        }
        if m == before {
            return m.to_string();
        }
    }
}

/// sqlparser's message without its `sql parser error: ` prefix.
fn parser_message(err: &datafusion::sql::sqlparser::parser::ParserError) -> String {
    let s = err.to_string();
    s.strip_prefix("sql parser error: ")
        .unwrap_or(&s)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_argument_error_is_said_once() {
        let e = DataFusionError::Plan(
            "Execution error: Function 'aqi_level' user-defined coercion failed with: Error \
             during planning: aqi_level: aqi must be numeric, got Utf8. No function matches the \
             given name and argument types 'aqi_level(Utf8)'. You might need to add explicit type \
             casts.\n\tCandidate functions:\n\taqi_level(UserDefined)"
                .into(),
        );
        assert_eq!(
            EngineError::Query(e).to_string(),
            "planning error: aqi_level: aqi must be numeric, got Utf8"
        );
        // DataFusion's own signature errors keep their text
        let e = DataFusionError::Plan("Function 'abs' expects Numeric but received String".into());
        assert_eq!(
            EngineError::Query(e).to_string(),
            "planning error: Function 'abs' expects Numeric but received String"
        );
        let e = DataFusionError::Execution("Execution error: Error during planning: x".into());
        assert_eq!(EngineError::Query(e).to_string(), "execution error: x");
    }
}
