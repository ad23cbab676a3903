//! `citylake generate`.

use std::process::ExitCode;

use citylake_datasets::{GenerateOptions, Progress, Summary, generate};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::GenerateArgs;

/// A progress bar on standard error (drawn only on a terminal).
struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, files: u64) {
        self.0.set_length(files);
    }
    fn file_done(&self, dataset: &str, _rows: u64) {
        self.0.set_message(dataset.to_string());
        self.0.inc(1);
    }
}

pub fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let options = GenerateOptions {
        scale: args.scale,
        seed: args.seed,
        year: args.year,
        out: args.out,
        force: args.force,
    };
    let summary = generate_with_bar(&options)?;
    print_summary(&summary);
    Ok(ExitCode::SUCCESS)
}

/// Generates a lake with a progress bar on standard error.
pub fn generate_with_bar(options: &GenerateOptions) -> anyhow::Result<Summary> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files  {msg}",
        )
        .expect("valid template"),
    );
    let summary = generate(options, &Bar(bar.clone()))?;
    bar.finish_and_clear();
    Ok(summary)
}

fn print_summary(s: &Summary) {
    println!(
        "{:<34} {:>6} {:>13} {:>10}",
        "dataset", "files", "rows", "MiB"
    );
    for d in &s.datasets {
        println!(
            "{:<34} {:>6} {:>13} {:>10.1}",
            d.name,
            d.files,
            d.rows,
            d.bytes as f64 / 1_048_576.0
        );
    }
    let secs = s.elapsed.as_secs_f64();
    println!(
        "{} rows, {:.1} MiB in {:.1} s ({:.0} rows/s); catalog: {}",
        s.total_rows(),
        s.total_bytes() as f64 / 1_048_576.0,
        secs,
        s.total_rows() as f64 / secs.max(1e-9),
        s.catalog.display()
    );
}
