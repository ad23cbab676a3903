//! The one place where engine errors become gRPC statuses.

use citylake_engine::EngineError;
use citylake_engine::audit::AuditError;
use citylake_engine::datafusion::error::DataFusionError;
use citylake_engine::governance::AccessDenied;
use citylake_engine::limits::LimitError;
use citylake_engine::queries::Cancelled;
use tonic::Status;

/// Maps an engine error to the gRPC code a client should see. Messages are the
/// engine's user-facing text; internal faults say so without debug dumps.
pub fn to_status(e: &EngineError) -> Status {
    let message = e.to_string();
    match e {
        EngineError::NotAllowed(_) => Status::permission_denied(message),
        EngineError::Storage(_) | EngineError::Audit(_) => Status::unavailable(message),
        EngineError::Config(_) | EngineError::Catalog(_) => {
            tracing::error!(error = %message, "server configuration error");
            Status::internal(message)
        }
        EngineError::NotFound { .. } => Status::not_found(message),
        EngineError::Query(df) => match df.find_root() {
            DataFusionError::SQL(..) | DataFusionError::SchemaError(..) => {
                Status::invalid_argument(message)
            }
            DataFusionError::Plan(_) | DataFusionError::Configuration(_) => {
                Status::invalid_argument(message)
            }
            DataFusionError::NotImplemented(_) => Status::unimplemented(message),
            // a lake object that is corrupt, truncated or gone since it was listed
            DataFusionError::ParquetError(_) => Status::data_loss(message),
            DataFusionError::ObjectStore(e)
                if matches!(**e, object_store::Error::NotFound { .. }) =>
            {
                Status::data_loss(message)
            }
            // the store is unreachable, slow or refusing: retrying later may work
            DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) => {
                Status::unavailable(message)
            }
            DataFusionError::ResourcesExhausted(_) => Status::resource_exhausted(message),
            DataFusionError::External(e) if e.is::<Cancelled>() => Status::cancelled(message),
            DataFusionError::External(e) if e.is::<AccessDenied>() => {
                Status::permission_denied(message)
            }
            // the query's audit record could not be written: fail closed
            DataFusionError::External(e) if e.is::<AuditError>() => Status::unavailable(message),
            DataFusionError::External(e) => match e.downcast_ref::<LimitError>() {
                Some(LimitError::Timeout(_)) => Status::deadline_exceeded(message),
                Some(_) => Status::resource_exhausted(message),
                None => {
                    tracing::error!(error = %message, "internal error");
                    Status::internal("internal error; see the server log")
                }
            },
            DataFusionError::Execution(_) | DataFusionError::ArrowError(..) => {
                // bad data or a cast that failed at run time: the query's fault
                Status::invalid_argument(message)
            }
            _ => {
                tracing::error!(error = %message, "internal error");
                Status::internal("internal error; see the server log")
            }
        },
    }
}
