//! Helpers shared by the engine's integration tests: one generated SF 0.01
//! lake per test binary, and query results as text.
#![allow(dead_code)]

use std::sync::OnceLock;

use citylake_datasets::{GenerateOptions, NoProgress};
use citylake_engine::datafusion::arrow::array::{Array, RecordBatch, StringArray};
use citylake_engine::datafusion::arrow::compute::cast;
use citylake_engine::datafusion::arrow::datatypes::DataType;
use citylake_engine::{Engine, EngineError, Principal};
use futures::TryStreamExt;

pub fn lake() -> &'static std::path::Path {
    static LAKE: OnceLock<tempfile::TempDir> = OnceLock::new();
    LAKE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        citylake_datasets::generate(&GenerateOptions::new(0.01, dir.path()), &NoProgress).unwrap();
        dir
    })
    .path()
}

/// Every value as text, row by row.
pub async fn rows(
    engine: &Engine,
    who: &Principal,
    sql: &str,
) -> Result<Vec<Vec<String>>, EngineError> {
    let session = engine.session(who.clone());
    let batches: Vec<RecordBatch> = session
        .sql(sql)
        .await?
        .try_collect()
        .await
        .map_err(EngineError::from)?;
    let mut out = vec![];
    for b in &batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        let s = c.as_any().downcast_ref::<StringArray>().unwrap();
                        if s.is_null(i) {
                            "NULL".to_string()
                        } else {
                            s.value(i).to_string()
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}
