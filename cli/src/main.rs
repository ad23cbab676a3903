//! The `citylake` command.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod cluster;
mod generate;
mod output;
mod quality;
mod repl;
mod report;
mod serve;
mod sql;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    cli.init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
