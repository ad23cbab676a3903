//! `citylake audit verify`: checks the audit trail's hash chain.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that no audit record was altered, deleted, inserted or moved; names the
    /// first that was and exits 1.
    Verify(VerifyArgs),
    /// Make a new audit key (64 random hex digits, readable by its owner only) for
    /// `--audit-key`; an existing file is never replaced.
    Key {
        /// Where to write it: keep it off the audit disk.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The audit directory (default: audit/ beside the default lake's catalog).
    #[arg(long, env = "CITYLAKE_AUDIT_DIR")]
    pub audit_dir: Option<PathBuf>,
    /// The audit key the trail is sealed with: every record must carry its seal.
    #[arg(long, env = "CITYLAKE_AUDIT_KEY")]
    pub audit_key: Option<PathBuf>,
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let args = match command {
        AuditCommand::Verify(args) => args,
        AuditCommand::Key { file } => {
            citylake_engine::audit::write_new_key(&file)?;
            println!(
                "wrote a new audit key to {} (pass it as --audit-key to every citylake process that writes the trail)",
                file.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    let key = args
        .audit_key
        .as_deref()
        .map(citylake_engine::audit::read_key)
        .transpose()?;
    let dir = args
        .audit_dir
        .unwrap_or_else(|| PathBuf::from(crate::sql::DEFAULT_LAKE_DIR).join("audit"));
    if !dir.is_dir() {
        anyhow::bail!("no audit directory at {}", dir.display());
    }
    match citylake_engine::audit::verify(&dir, key.as_deref())? {
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
            if key.is_none() {
                println!(
                    "(not sealed with an audit key: whoever may write these files can rebuild the chain; see --audit-key)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            eprintln!("audit trail broken at {broken}");
            Ok(ExitCode::FAILURE)
        }
    }
}
