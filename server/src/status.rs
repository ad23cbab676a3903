//! The one place where engine errors become gRPC statuses.

use citylake_engine::EngineError;
use citylake_engine::error::ErrorClass;
use tonic::Status;

/// Maps an engine error to the gRPC code a client should see, by its
/// [`ErrorClass`] (the classification every front end shares). Messages are
/// the engine's user-facing text; internal faults say so without debug dumps.
pub fn to_status(e: &EngineError) -> Status {
    let message = e.to_string();
    match e.class() {
        ErrorClass::PermissionDenied => Status::permission_denied(message),
        ErrorClass::Unavailable => Status::unavailable(message),
        ErrorClass::Configuration => {
            tracing::error!(error = %message, "server configuration error");
            Status::internal(message)
        }
        ErrorClass::NotFound => Status::not_found(message),
        ErrorClass::Syntax | ErrorClass::Invalid => Status::invalid_argument(message),
        ErrorClass::Unsupported => Status::unimplemented(message),
        ErrorClass::DataLoss => Status::data_loss(message),
        ErrorClass::ResourceExhausted => Status::resource_exhausted(message),
        ErrorClass::Cancelled => Status::cancelled(message),
        ErrorClass::Timeout => Status::deadline_exceeded(message),
        // bad data or a cast that failed at run time: the query's fault
        ErrorClass::Data => Status::invalid_argument(message),
        ErrorClass::Internal => {
            // its message may quote values from the data: the log has its
            // class, the query's record (`system.queries`) the message as the
            // redaction rules allow (see `citylake_engine::redact`)
            tracing::error!(
                error = %citylake_engine::redact::recorded_error(&message, &[], true, true),
                "internal error"
            );
            Status::internal("internal error; see the query's record in system.queries")
        }
    }
}
