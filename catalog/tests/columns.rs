//! A hand-written catalog's columns are checked against its files when it
//! loads: a misspelt name, a type the files cannot be read as — errors naming
//! the dataset, the column and the file, all at once; undeclared columns kept.

use std::path::Path;
use std::sync::Arc;

use citylake_catalog::Catalog;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::catalog::CatalogProvider;
use datafusion::execution::session_state::SessionStateBuilder;

/// A dataset directory with one file: id BIGINT, name TEXT, amount DOUBLE, extra INT.
fn write_lake(dir: &Path) {
    std::fs::create_dir_all(dir.join("t")).unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        (
            "name",
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        ),
        (
            "amount",
            Arc::new(Float64Array::from(vec![1.5, 2.5])) as ArrayRef,
        ),
        ("extra", Arc::new(Int32Array::from(vec![7, 8])) as ArrayRef),
    ])
    .unwrap();
    let file = std::fs::File::create(dir.join("t/part-0.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// Loads a catalog declaring `columns` for the dataset; the table's column
/// names and types, or the error.
async fn load(columns: &str) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().unwrap();
    write_lake(dir.path());
    let path = dir.path().join("catalog.toml");
    std::fs::write(
        &path,
        format!(
            "[catalog]\nroot = \".\"\n\n[[datasets]]\nname = \"s.t\"\nlocation = \"t/\"\nowner = \"me\"\n\
             classification = \"internal\"\nupdate_frequency = \"static\"\ncolumns = [{columns}]\n"
        ),
    )
    .unwrap();
    let catalog = Catalog::load(&path).map_err(|e| e.to_string())?;
    let state = SessionStateBuilder::new().with_default_features().build();
    let provider = catalog
        .build_provider(&state)
        .await
        .map_err(|e| e.to_string())?;
    let table = provider
        .schema("s")
        .unwrap()
        .table("t")
        .await
        .unwrap()
        .unwrap();
    Ok(table
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect())
}

#[tokio::test]
async fn partial_declarations_keep_every_column() {
    let columns =
        load(r#"{ name = "id", type = "bigint" }, { name = "name", description = "who" }"#)
            .await
            .unwrap();
    assert_eq!(
        columns,
        ["id Int64", "name Utf8View", "amount Float64", "extra Int32"]
    );
}

#[tokio::test]
async fn a_wider_declared_type_is_read_as_declared() {
    let columns = load(r#"{ name = "extra", type = "bigint" }"#)
        .await
        .unwrap();
    assert!(columns.contains(&"extra Int64".to_string()), "{columns:?}");
}

#[tokio::test]
async fn a_misspelt_column_is_an_error_naming_it() {
    let e = load(r#"{ name = "nmae", type = "text" }"#)
        .await
        .unwrap_err();
    assert!(e.contains("dataset `s.t`"), "{e}");
    assert!(e.contains("t/part-0.parquet"), "{e}");
    assert!(
        e.contains(
            "column `nmae` is declared but the files have no such column; did you mean `name`?"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let e = load(
        r#"{ name = "nmae", type = "text" }, { name = "name", type = "bigint" }, { name = "amount", type = "int" }"#,
    )
    .await
    .unwrap_err();
    assert!(e.contains("column `nmae` is declared"), "{e}");
    assert!(
        e.contains("column `name` is declared bigint but the files hold text"),
        "{e}"
    );
    assert!(
        e.contains("column `amount` is declared int but the files hold double"),
        "{e}"
    );
}
