//! Running a session's queries somewhere other than this process: a cluster
//! (`citylake-cluster`, on Apache DataFusion Ballista) plugs in here, so that
//! the engine — and every crate that does not run a cluster — knows nothing of
//! Ballista.
//!
//! The session keeps the front end's duties: parsing, the access check,
//! planning against the principal's governed catalog (masks and row filters
//! become part of the plan), the audit trail. Only the optimized plan — plain
//! scans of the lake's files under the policy's projections and filters — is
//! handed to the [`RemoteExecutor`], which may decline it (a plan reading the
//! session's in-memory tables, `system.*` or `information_schema`, a
//! statement): such a plan runs locally.

use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;

use crate::error::Result;

/// Executes optimized query plans elsewhere.
#[async_trait::async_trait]
pub trait RemoteExecutor: Send + Sync + std::fmt::Debug {
    /// Where plans go (`df://host:port`), for logs and errors.
    fn location(&self) -> &str;

    /// Whether `plan` (optimized) can run remotely; `Err(why)` when it must
    /// run locally.
    fn accepts(&self, plan: &LogicalPlan) -> std::result::Result<(), String>;

    /// Runs an accepted plan; the results stream back batch by batch, and
    /// dropping the stream before its end cancels the remote work.
    async fn execute(
        &self,
        state: &SessionState,
        plan: LogicalPlan,
    ) -> Result<SendableRecordBatchStream>;
}

/// Whether a plan is a query (not DDL, DML, a statement, `EXPLAIN` or a
/// `DESCRIBE`, which the session runs itself).
pub fn is_query(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
    )
}
