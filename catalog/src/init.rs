//! A first catalog for Parquet files that already exist (`citylake catalog
//! init`): one dataset per `.parquet` file or per directory of them, Hive
//! partitions (`key=value/`) typed from their values, every optional field at
//! its fail-closed default, and the schema as the default schema (so the
//! files' own queries — TPC-H's, say — run with unqualified names).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{CatalogError, Result};
use crate::spec::{CatalogSection, CatalogSpec, DEFAULT_CATALOG_NAME, DatasetSpec, PartitionSpec};

fn describe(dir: &Path, message: String) -> CatalogError {
    CatalogError::Describe {
        dir: dir.to_path_buf(),
        message,
    }
}

/// A catalog for the Parquet files in `dir` (its root), the datasets in
/// `schema` (default: the directory's name as an identifier), and the
/// entries skipped (directories without Parquet files).
pub fn describe_dir(dir: &Path, schema: Option<&str>) -> Result<(CatalogSpec, Vec<String>)> {
    if !dir.is_dir() {
        return Err(describe(dir, "not a directory".into()));
    }
    let schema = identifier(&schema.map(str::to_string).unwrap_or_else(|| {
        std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "lake".into())
    }));
    let mut datasets: Vec<DatasetSpec> = vec![];
    let mut skipped = vec![];
    for (name, path) in entries(dir)? {
        if path.is_dir() {
            let mut files = vec![];
            parquet_files(&path, Path::new(""), &mut files)?;
            if files.is_empty() {
                skipped.push(format!("{name}/"));
                continue;
            }
            let table = format!("{schema}.{}", identifier(&name));
            datasets.push(directory_dataset(dir, table, name, &files)?);
        } else if let Some(stem) = name.strip_suffix(".parquet") {
            datasets.push(DatasetSpec::new(
                format!("{schema}.{}", identifier(stem)),
                name,
            ));
        }
    }
    if datasets.is_empty() {
        return Err(describe(
            dir,
            "no Parquet files (a .parquet file, or a directory of them, per dataset)".into(),
        ));
    }
    datasets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen = BTreeSet::new();
    for d in &datasets {
        if !seen.insert(d.name.clone()) {
            return Err(describe(
                dir,
                format!("two entries become dataset `{}`: rename one", d.name),
            ));
        }
    }
    let spec = CatalogSpec {
        catalog: CatalogSection {
            name: DEFAULT_CATALOG_NAME.into(),
            root: ".".into(),
            description: String::new(),
            default_schema: Some(schema),
        },
        datasets,
        views: vec![],
        storage: None,
        evaluation: None,
        quality: None,
    };
    Ok((spec, skipped))
}

/// `spec` as a catalog file, with a header saying what to edit.
pub fn to_file_text(spec: &CatalogSpec) -> Result<String> {
    let schema = spec
        .catalog
        .default_schema
        .as_deref()
        .unwrap_or(crate::spec::DEFAULT_SCHEMA);
    Ok(format!(
        "# Written by `citylake catalog init` for the Parquet files in this directory.\n\
         # Columns and their types are read from the files. Edit each dataset's owner,\n\
         # classification (restricted until you say otherwise: only roles granted\n\
         # restricted data read it) and update_frequency; declare columns to document\n\
         # them, mark personal data (pii) or add quality rules. Unqualified names\n\
         # resolve in schema `{schema}` (default_schema).\n\n{}",
        spec.to_toml()?
    ))
}

/// A name as a lower-case identifier (`Line Item` → `line_item`).
fn identifier(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The entries of `dir` by name, without hidden and `_`-prefixed ones (what
/// writers leave beside their data: `_SUCCESS`, `.crc`, …).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let unreadable = |e: std::io::Error| describe(dir, format!("cannot read: {e}"));
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .map(|e| e.map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())))
        .collect::<std::io::Result<_>>()
        .map_err(unreadable)?;
    entries.retain(|(name, _)| !name.starts_with('.') && !name.starts_with('_'));
    entries.sort();
    Ok(entries)
}

/// Parquet files under `dir` (not hidden, not `_`-prefixed), with their paths
/// relative to it.
fn parquet_files(dir: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for (name, path) in entries(dir)? {
        if path.is_dir() {
            parquet_files(&path, &relative.join(&name), out)?;
        } else if name.ends_with(".parquet") {
            out.push(relative.join(&name));
        }
    }
    Ok(())
}

/// The type of a partition column from its values: `bigint`, `date` or `text`.
fn partition_type<'a>(values: impl IntoIterator<Item = &'a str>) -> &'static str {
    let values: Vec<&str> = values.into_iter().collect();
    if values.iter().all(|v| v.parse::<i64>().is_ok()) {
        "bigint"
    } else if values
        .iter()
        .all(|v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok())
    {
        "date"
    } else {
        "text"
    }
}

/// The dataset of one directory: its Hive partition columns, in the order of
/// the path, each with the type its values admit.
fn directory_dataset(
    dir: &Path,
    name: String,
    location: String,
    files: &[PathBuf],
) -> Result<DatasetSpec> {
    let mut dataset = DatasetSpec::new(name, format!("{location}/"));
    let mut keys: Vec<String> = vec![];
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let parts: Vec<(String, String)> = file
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
            .filter_map(|c| {
                let c = c.as_os_str().to_string_lossy();
                let (k, v) = c.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        let these: Vec<String> = parts.iter().map(|(k, _)| k.clone()).collect();
        if i == 0 {
            keys = these;
        } else if these != keys {
            return Err(describe(
                dir,
                format!(
                    "{location}: files are partitioned differently ({} under `{}`, {} under `{}`); \
                 a dataset's files must share one layout",
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join("/")
                    },
                    files[0].display(),
                    if these.is_empty() {
                        "none".to_string()
                    } else {
                        these.join("/")
                    },
                    file.display()
                ),
            ));
        }
        for (k, v) in parts {
            values.entry(k).or_default().push(v);
        }
    }
    dataset.partitions = keys
        .iter()
        .map(|k| PartitionSpec {
            name: k.clone(),
            data_type: partition_type(values[k].iter().map(String::as_str)).into(),
            description: String::new(),
        })
        .collect();
    Ok(dataset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_identifiers_and_partition_types_are_inferred() {
        assert_eq!(identifier("Line Item"), "line_item");
        assert_eq!(identifier("2024"), "_2024");
        assert_eq!(partition_type(["1", "22"]), "bigint");
        assert_eq!(partition_type(["2025-01-01", "2025-12-31"]), "date");
        assert_eq!(partition_type(["2025-01", "x"]), "text");
    }

    #[test]
    fn files_and_partitioned_directories_become_datasets() {
        let dir = tempfile::tempdir().unwrap();
        let touch = |p: &str| {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        };
        touch("Orders.parquet");
        touch("events/dt=2025-01-01/region=3/a.parquet");
        touch("events/dt=2025-01-02/region=4/b.parquet");
        touch("events/_SUCCESS");
        touch("notes/readme.txt");
        let (spec, skipped) = describe_dir(dir.path(), Some("shop")).unwrap();
        let names: Vec<_> = spec.datasets.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["shop.events", "shop.orders"]);
        let events = &spec.datasets[0];
        assert_eq!(events.location, "events/");
        let parts: Vec<_> = events
            .partitions
            .iter()
            .map(|p| (p.name.as_str(), p.data_type.as_str()))
            .collect();
        assert_eq!(parts, [("dt", "date"), ("region", "bigint")]);
        assert_eq!(skipped, ["notes/"]);
        assert_eq!(spec.catalog.default_schema.as_deref(), Some("shop"));
        touch("events/c.parquet");
        let err = describe_dir(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("partitioned differently"), "{err}");
    }
}
