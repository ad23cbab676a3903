//! The one place where engine errors become Postgres errors (SQLSTATE codes,
//! <https://www.postgresql.org/docs/current/errcodes-appendix.html>), by the
//! engine's [`ErrorClass`] — the classification Flight SQL's statuses use too.

use citylake_engine::EngineError;
use citylake_engine::datafusion::error::DataFusionError;
use citylake_engine::error::ErrorClass;
use pgwire::error::{ErrorInfo, PgWireError};

/// The SQLSTATE of an engine error.
fn sqlstate(e: &EngineError) -> &'static str {
    match e.class() {
        ErrorClass::Syntax => "42601",
        ErrorClass::NotFound => "42P01",
        ErrorClass::Invalid => {
            let message = e.to_string();
            if message.contains("Invalid function") || message.contains("No function matches") {
                "42883" // undefined_function
            } else if message.contains("No field named") {
                "42703" // undefined_column
            } else {
                "42000" // syntax_error_or_access_rule_violation
            }
        }
        ErrorClass::Data => "22000", // data_exception
        ErrorClass::PermissionDenied => "42501",
        ErrorClass::Unsupported => "0A000",
        ErrorClass::ResourceExhausted => {
            if e.datafusion()
                .is_some_and(|d| matches!(d.find_root(), DataFusionError::ResourcesExhausted(_)))
            {
                "53200" // out_of_memory
            } else {
                "54000" // program_limit_exceeded: result size, a full queue
            }
        }
        ErrorClass::Timeout | ErrorClass::Cancelled => "57014", // query_canceled
        ErrorClass::Unavailable => "58000",                     // system_error
        ErrorClass::DataLoss => "XX001",                        // data_corrupted
        ErrorClass::Configuration | ErrorClass::Internal => "XX000",
    }
}

/// An engine error as the client sees it: SQLSTATE, the engine's message and,
/// for a syntax error, its position (a 1-based character index into `sql`).
/// Internal faults are logged here and told to the client without details.
pub fn to_pg(e: &EngineError, sql: Option<&str>) -> PgWireError {
    let message = match e.class() {
        ErrorClass::Internal => {
            // its message may quote values from the data (see `status.rs` in the server)
            tracing::error!(
                error = %citylake_engine::redact::recorded_error(&e.to_string(), &[], true, true),
                "internal error"
            );
            "internal error; see the query's record in system.queries".to_string()
        }
        ErrorClass::Configuration => {
            tracing::error!(error = %e, "server configuration error");
            e.to_string()
        }
        _ => e.to_string(),
    };
    let mut info = ErrorInfo::new("ERROR".into(), sqlstate(e).into(), message);
    if let (Some((line, column)), Some(sql)) = (e.syntax_location(), sql) {
        info.position = position(sql, line, column).map(|p| p.to_string());
    }
    PgWireError::UserError(Box::new(info))
}

/// An error of the front end's own, with its SQLSTATE.
pub fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

/// A FATAL error: the server closes the connection after sending it.
pub fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

/// The 1-based character index of `line`:`column` (both 1-based) in `sql`.
fn position(sql: &str, line: u64, column: u64) -> Option<usize> {
    let mut offset = 0;
    for (n, text) in sql.split('\n').enumerate() {
        if n as u64 + 1 == line {
            let column = (column as usize).min(text.chars().count() + 1);
            return Some(offset + column);
        }
        offset += text.chars().count() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_across_lines() {
        assert_eq!(position("SELEC 1", 1, 1), Some(1));
        assert_eq!(position("SELECT 1\nFROM x WHERE", 2, 6), Some(15));
        assert_eq!(position("SELECT '区' FRM t", 1, 12), Some(12));
        assert_eq!(position("SELECT 1", 3, 1), None);
    }

    #[test]
    fn classes_have_their_sqlstate() {
        let syntax = EngineError::Query(DataFusionError::SQL(
            Box::new(
                citylake_engine::datafusion::sql::sqlparser::parser::ParserError::ParserError(
                    "Expected: end of statement, found: FRM at Line: 1, Column: 10".into(),
                ),
            ),
            None,
        ));
        assert_eq!(sqlstate(&syntax), "42601");
        assert_eq!(syntax.syntax_location(), Some((1, 10)));
        let missing = EngineError::NotFound {
            name: "lake.x.y".into(),
            hidden: false,
            suggestion: None,
        };
        assert_eq!(sqlstate(&missing), "42P01");
        assert_eq!(sqlstate(&EngineError::NotAllowed("no".into())), "42501");
        let PgWireError::UserError(info) = to_pg(&syntax, Some("SELECT 1 FRM t")) else {
            panic!("a user error")
        };
        assert_eq!(info.position.as_deref(), Some("10"));
    }
}
