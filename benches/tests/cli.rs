//! The `city-bench` command's errors. (Its workload is checked against DataFusion and
//! DuckDB by `scripts/test.sh`'s quick mode, which needs the test venv's DuckDB; these
//! tests also make `cargo test` build the binary that step runs.)

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_city-bench"))
}

#[test]
fn an_unknown_suite_is_a_usage_error() {
    let out = bench().arg("tpcz").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tpcz") && err.contains("Usage: city-bench"),
        "{err}"
    );
}

#[test]
fn a_filter_matching_no_query_is_an_error_not_an_empty_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench()
        .args([
            "citybench",
            "--check-only",
            "--filter",
            "no-such-query",
            "--lake",
        ])
        .arg(dir.path().join("lake"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no-such-query"), "{err}");
    assert!(
        !dir.path().join("lake").exists(),
        "nothing is generated for no query"
    );
}

#[test]
fn a_python_without_duckdb_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench()
        .args([
            "citybench",
            "--check-only",
            "--scale",
            "0.001",
            "--filter",
            "q01",
        ])
        .arg("--lake")
        .arg(dir.path().join("lake"))
        .arg("--python")
        .arg(dir.path().join("no-python"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no-python") && err.contains("--python"),
        "{err}"
    );
}
