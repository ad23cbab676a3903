//! The same scale, seed and year give byte-identical lakes; another seed does not.

use std::collections::BTreeMap;
use std::path::Path;

use citylake_datasets::{GenerateOptions, NoProgress, generate};

/// Every file below `root` with its bytes, by relative path.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn lake(scale: f64, seed: u64) -> (tempfile::TempDir, BTreeMap<String, Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = GenerateOptions::new(scale, dir.path());
    options.seed = seed;
    generate(&options, &NoProgress).unwrap();
    let f = files(dir.path());
    (dir, f)
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (_a, first) = lake(0.01, 7);
    let (_b, second) = lake(0.01, 7);
    // every dataset's files, the standard views and the catalog, no temporary files left behind
    let views = citylake_catalog::views::STANDARD_VIEWS.len();
    assert_eq!(first.len(), 365 + 12 * 3 + 3 + 5 + views + 1);
    assert!(first.keys().all(|k| !k.ends_with(".tmp")));
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &first {
        assert!(bytes == &second[path], "{path} differs between two runs");
    }
    let (_c, other) = lake(0.01, 8);
    let speed = "traffic/segment_speed/dt=2025-05-01/part-0.parquet";
    assert_ne!(first[speed], other[speed], "another seed gives other data");
}

#[test]
fn force_replaces_an_existing_lake() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = GenerateOptions::new(0.01, dir.path());
    generate(&options, &NoProgress).unwrap();
    let err = generate(&options, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    // a stray file inside a dataset directory is cleared by --force
    let stray = dir.path().join("traffic/segment_speed/dt=1999-01-01");
    std::fs::create_dir_all(&stray).unwrap();
    options.force = true;
    generate(&options, &NoProgress).unwrap();
    assert!(!stray.exists());
    assert!(dir.path().join("catalog.toml").exists());
}

#[test]
fn catalog_written_last_declares_every_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&GenerateOptions::new(0.01, dir.path()), &NoProgress).unwrap();
    let catalog = citylake_catalog::Catalog::load(&summary.catalog).unwrap();
    let names: Vec<_> = catalog
        .spec()
        .datasets
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "common.districts",
            "environment.air_stations",
            "environment.air_quality_hourly",
            "traffic.road_segments",
            "traffic.segment_speed",
            "hotline.cases",
            "emergency.incidents",
            "finance.programs",
            "finance.expenditures",
            "finance.performance_indicators",
        ]
    );
    for d in &summary.datasets {
        assert!(d.rows > 0, "{} is empty", d.name);
    }
}
