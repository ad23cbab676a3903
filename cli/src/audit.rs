//! `citylake audit verify`: checks the audit trail's hash chain.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that no audit record was altered, deleted, inserted or moved; names the
    /// first that was and exits 1.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The audit directory (default: audit/ beside the default lake's catalog).
    #[arg(long, env = "CITYLAKE_AUDIT_DIR")]
    pub audit_dir: Option<PathBuf>,
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify(args) = command;
    let dir = args
        .audit_dir
        .unwrap_or_else(|| PathBuf::from(crate::sql::DEFAULT_LAKE_DIR).join("audit"));
    if !dir.is_dir() {
        anyhow::bail!("no audit directory at {}", dir.display());
    }
    match citylake_engine::audit::verify(&dir)? {
        Ok(head) => {
            println!(
                "audit trail intact: {} records in {} files ({}); newest record's hash {}",
                head.records,
                head.files,
                dir.display(),
                if head.hash.is_empty() {
                    "-"
                } else {
                    &head.hash
                }
            );
            println!(
                "(keep this hash elsewhere: a trail cut short after it verifies as a shorter chain)"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            eprintln!("audit trail broken at {broken}");
            Ok(ExitCode::FAILURE)
        }
    }
}
