//! The `citylake` command.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod audit;
mod catalog;
mod cluster;
mod generate;
mod output;
mod quality;
mod repl;
mod report;
mod serve;
mod sql;
mod tables;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    cli.init_logging();
    citylake_engine::install_tls_provider();
    // 16 MiB stacks: planning recurses over a statement's tree (DataFusion's own
    // advice for deep plans; the 2 MiB default is small for analysts' SQL)
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(citylake_engine::THREAD_STACK_SIZE)
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
