//! `citylake generate`.

use std::process::ExitCode;

use citylake_datasets::{GenerateOptions, Progress, Summary, generate};
use citylake_engine::storage;
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

pub async fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let out = args.out.to_string_lossy().into_owned();
    let remote = storage::is_url(&out)
        .then(|| storage::parse_url(&out))
        .transpose()?;
    if args.upload_part_size < citylake_engine::publish::MIN_PART_SIZE {
        anyhow::bail!("--upload-part-size must be at least 5MiB (S3's smallest part)");
    }
    if let Some(url) = &remote {
        // before spending time generating: the store answers and holds no lake (or --force)
        citylake_engine::publish::check_destination(
            url,
            citylake_datasets::CATALOG_FILE,
            args.force,
        )
        .await?;
    }
    // An object-store lake is written to a local staging directory, then published.
    let staging = match &remote {
        Some(_) => Some(
            tempfile::Builder::new()
                .prefix("citylake-lake-")
                .tempdir()?,
        ),
        None => None,
    };
    let options = GenerateOptions {
        scale: args.scale,
        seed: args.seed,
        year: args.year,
        out: staging
            .as_ref()
            .map_or(args.out.clone(), |d| d.path().to_path_buf()),
        force: args.force,
        format: args.format.into(),
    };
    let summary = generate_with_bar(&options)?;
    print_summary(&summary);
    if let Some(url) = remote {
        publish(&options.out, &url, args.force, args.upload_part_size).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Uploads the staged lake to `url`, its catalog last, with a progress bar.
async fn publish(
    staged: &std::path::Path,
    url: &url::Url,
    replace: bool,
    part_size: usize,
) -> anyhow::Result<()> {
    let total: u64 = walk_size(staged)?;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes}  {msg}",
        )
        .expect("valid template"),
    );
    let started = std::time::Instant::now();
    let done = citylake_engine::publish::publish_lake(
        staged,
        url,
        citylake_datasets::CATALOG_FILE,
        replace,
        part_size,
        &|rel, bytes| {
            bar.set_message(rel.to_string());
            bar.inc(bytes);
        },
    )
    .await?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "uploaded {} files, {:.1} MiB in {:.1} s ({:.1} MiB/s) to {url}{}; catalog: {}{}",
        done.files,
        done.bytes as f64 / 1_048_576.0,
        secs,
        done.bytes as f64 / 1_048_576.0 / secs.max(1e-9),
        if done.removed > 0 {
            format!(" (replacing {} objects)", done.removed)
        } else {
            String::new()
        },
        url.as_str().trim_end_matches('/'),
        format_args!("/{}", citylake_datasets::CATALOG_FILE),
    );
    Ok(())
}

fn walk_size(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            walk_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
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
    // the default access policy beside the catalog, unless one is there already
    let policy = options.out.join(citylake_engine::policy::POLICY_FILE);
    if options.force || !policy.exists() {
        std::fs::write(&policy, citylake_engine::policy::DEFAULT_POLICY)?;
    }
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
