//! Reading a catalog file: TOML into [`CatalogSpec`], with errors that name
//! the dataset and field, and the parsers of its values (times, update
//! frequencies, the storage root).

use std::path::Path;
use std::time::Duration;

use super::*;

/// Parses a local time `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS` (a space instead of
/// the `T` too).
pub fn parse_local_time(s: &str) -> Result<chrono::NaiveDateTime, String> {
    let t = s.trim();
    chrono::NaiveDateTime::parse_from_str(&t.replace(' ', "T"), "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
        })
        .map_err(|_| {
            format!("`{s}` is not a local time; expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS")
        })
}

/// Parses an update frequency: `static`, `hourly`, `daily`, `weekly`, `monthly`,
/// `yearly`, or `<n> <unit>` (`minute(s)`, `hour(s)`, `day(s)`). `Ok(None)` means static.
pub fn parse_update_frequency(s: &str) -> Result<Option<Duration>, String> {
    const DAY: u64 = 86_400;
    let lower = s.trim().to_ascii_lowercase();
    let secs = match lower.as_str() {
        "static" | "never" => return Ok(None),
        "hourly" => 3_600,
        "daily" => DAY,
        "weekly" => 7 * DAY,
        "monthly" => 31 * DAY,
        "yearly" | "annual" => 366 * DAY,
        other => {
            let (n, unit) = other.split_once(' ').ok_or_else(|| bad_frequency(s))?;
            let n: u64 = n.parse().map_err(|_| bad_frequency(s))?;
            let unit_secs = match unit.trim().trim_end_matches('s') {
                "minute" | "min" => 60,
                "hour" => 3_600,
                "day" => DAY,
                _ => return Err(bad_frequency(s)),
            };
            if n == 0 {
                return Err(bad_frequency(s));
            }
            n * unit_secs
        }
    };
    Ok(Some(Duration::from_secs(secs)))
}

/// A serde error as (the field it is about, the message): `catalog.root`,
/// `columns[2].type`.
fn error_field(e: &serde_path_to_error::Error<toml::de::Error>) -> (String, String) {
    let message = clean(e.inner());
    let path = e.path().to_string();
    let field = if path == "." {
        field_of(&message)
    } else {
        path
    };
    (field, message)
}

/// An optional section of plain settings; errors are named `section.field`.
fn settings<T: serde::de::DeserializeOwned>(
    table: &toml::Table,
    name: &str,
    error: impl Fn(&str, String) -> CatalogError,
) -> Result<Option<T>> {
    let Some(section) = table.get(name) else {
        return Ok(None);
    };
    serde_path_to_error::deserialize(section.clone())
        .map(Some)
        .map_err(|e| {
            let (field, message) = error_field(&e);
            error(&format!("{name}.{field}"), message)
        })
}

/// Every required field the file lacks, in one error: `[catalog]` and its
/// `root`, each dataset's `name` and `location`, each view's `name`. (The
/// other fields have defaults; their errors come one entry at a time.)
fn check_required(table: &toml::Table, path: &Path) -> Result<()> {
    let mut missing = vec![];
    match table.get("catalog").and_then(|c| c.as_table()) {
        None => missing.push("the `[catalog]` section (with `root`)".to_string()),
        Some(c) if !c.contains_key("root") => missing.push("`[catalog]`: `root`".to_string()),
        Some(_) => {}
    }
    for (key, what, required) in [
        ("datasets", "dataset", &["name", "location"][..]),
        ("views", "view", &["name"][..]),
    ] {
        let entries = table.get(key).and_then(|v| v.as_array());
        for (i, entry) in entries.into_iter().flatten().enumerate() {
            let Some(entry) = entry.as_table() else {
                continue;
            };
            let lacks: Vec<String> = required
                .iter()
                .filter(|f| !entry.contains_key(**f))
                .map(|f| format!("`{f}`"))
                .collect();
            if lacks.is_empty() {
                continue;
            }
            let label = match entry.get("name").and_then(|n| n.as_str()) {
                Some(name) => format!("{what} `{name}`"),
                None => format!("{what} #{} of the `[[{key}]]`", i + 1),
            };
            missing.push(format!("{label}: {}", lacks.join(", ")));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CatalogError::Missing {
            path: path.to_path_buf(),
            missing,
        })
    }
}

fn bad_frequency(s: &str) -> String {
    format!(
        "`{s}` is not an update frequency; expected static, hourly, daily, weekly, monthly, \
         yearly, or `<n> minutes|hours|days`"
    )
}

impl CatalogSpec {
    /// Reads and validates a catalog file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| CatalogError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates catalog text; `path` is used in error messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let table: toml::Table = toml::from_str(text).map_err(|e| CatalogError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid =
            |dataset: Option<String>, field: &str, message: String| CatalogError::Invalid {
                path: path.to_path_buf(),
                dataset,
                field: field.to_string(),
                message,
            };

        for key in table.keys() {
            if ![
                "catalog",
                "datasets",
                "views",
                "storage",
                "evaluation",
                "quality",
            ]
            .contains(&key.as_str())
            {
                return Err(invalid(
                    None,
                    key,
                    "unknown top-level key; expected `[catalog]`, `[[datasets]]`, `[[views]]`, \
                     `[storage]`, `[evaluation]` and `[quality]`"
                        .into(),
                ));
            }
        }
        check_required(&table, path)?;
        let error = |field: &str, message: String| invalid(None, field, message);
        let catalog: CatalogSection = settings(&table, "catalog", error)?
            .ok_or_else(|| invalid(None, "catalog", "the `[catalog]` section is missing".into()))?;
        // the entries of an array of tables, each labelled by its name (or position)
        let entries = |key: &str| -> Result<Vec<(String, toml::Value)>> {
            let Some(value) = table.get(key) else {
                return Ok(vec![]);
            };
            let entries = value.as_array().ok_or_else(|| {
                invalid(
                    None,
                    key,
                    format!("must be an array of tables (`[[{key}]]`)"),
                )
            })?;
            Ok(entries
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    let label = entry
                        .get("name")
                        .and_then(|n| n.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("#{}", i + 1));
                    (label, entry.clone())
                })
                .collect())
        };
        let mut datasets = Vec::new();
        for (label, entry) in entries("datasets")? {
            let dataset: DatasetSpec = serde_path_to_error::deserialize(entry).map_err(|e| {
                let (field, message) = error_field(&e);
                invalid(Some(label.clone()), &field, message)
            })?;
            datasets.push(dataset);
        }
        let mut views = Vec::new();
        for (label, entry) in entries("views")? {
            let view: ViewSpec = serde_path_to_error::deserialize(entry).map_err(|e| {
                let (field, message) = error_field(&e);
                invalid(None, &format!("views[{label}].{field}"), message)
            })?;
            views.push(view);
        }
        if let Some(key) = table
            .get("storage")
            .and_then(|section| section.as_table())
            .and_then(|t| {
                t.keys()
                    .find(|k| k.contains("key") || k.contains("secret") || k.contains("token"))
            })
        {
            return Err(invalid(
                None,
                &format!("storage.{key}"),
                "credentials are never stored in the catalog; set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (or AWS_SESSION_TOKEN) in the environment"
                    .into(),
            ));
        }
        let storage = settings(&table, "storage", error)?;
        let evaluation = settings(&table, "evaluation", error)?;
        let quality = settings(&table, "quality", error)?;
        let spec = Self {
            catalog,
            datasets,
            views,
            storage,
            evaluation,
            quality,
        };
        spec.validate(path)?;
        Ok(spec)
    }
}

/// The storage root of a catalog as a URL string with a trailing slash.
pub fn resolve_root(root: &str, catalog_path: &Path) -> Result<String, String> {
    let location = catalog_path.to_string_lossy();
    if location.contains("://") && !root.contains("://") {
        // a catalog in an object store: a relative root is relative to its URL
        if Path::new(root).is_absolute() {
            return Err(format!(
                "`{root}` is a local path, but the catalog is at {location}; use a URL or a relative path"
            ));
        }
        let base = url::Url::parse(&location)
            .map_err(|e| format!("catalog location `{location}` is not a valid URL: {e}"))?;
        let mut s = base
            .join(root)
            .map_err(|e| format!("`{root}` relative to {location}: {e}"))?
            .to_string();
        if !s.ends_with('/') {
            s.push('/');
        }
        return Ok(s);
    }
    if root.contains("://") {
        let url = url::Url::parse(root).map_err(|e| format!("`{root}` is not a valid URL: {e}"))?;
        let mut s = url.to_string();
        if !s.ends_with('/') {
            s.push('/');
        }
        return Ok(s);
    }
    let base = catalog_path.parent().unwrap_or(Path::new("."));
    let dir: PathBuf = if Path::new(root).is_absolute() {
        PathBuf::from(root)
    } else {
        base.join(root)
    };
    let dir = std::path::absolute(&dir).map_err(|e| format!("`{root}`: {e}"))?;
    let url = url::Url::from_directory_path(&dir)
        .map_err(|_| format!("`{}` is not a usable directory path", dir.display()))?;
    Ok(url.to_string())
}

/// toml's message without its trailing newline and source excerpt.
fn clean(e: &toml::de::Error) -> String {
    e.message().trim().to_string()
}

/// The field a serde error is about (`unknown field `x``, `missing field `x``), if it names one.
fn field_of(msg: &str) -> String {
    for prefix in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(name) = msg
            .split(prefix)
            .nth(1)
            .and_then(|rest| rest.split('`').next())
        {
            return name.to_string();
        }
    }
    "-".to_string()
}
