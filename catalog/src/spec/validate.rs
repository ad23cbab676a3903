//! Checking a parsed catalog for what serde cannot: names, locations, types,
//! and the references between fields.

use std::path::Path;

use super::*;

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl CatalogSpec {
    /// Checks what serde cannot: names, locations, types, references between fields.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let invalid = |dataset: Option<&str>, field: &str, message: String| {
            Err(CatalogError::Invalid {
                path: path.to_path_buf(),
                dataset: dataset.map(str::to_string),
                field: field.to_string(),
                message,
            })
        };
        if !is_identifier(&self.catalog.name) {
            return invalid(
                None,
                "catalog.name",
                format!("`{}` is not a lower-case identifier", self.catalog.name),
            );
        }
        if let Some(schema) = &self.catalog.default_schema
            && !is_identifier(schema)
        {
            return invalid(
                None,
                "catalog.default_schema",
                format!("`{schema}` is not a lower-case identifier"),
            );
        }
        if self.catalog.root.trim().is_empty() {
            return invalid(None, "catalog.root", "must not be empty".into());
        }
        let mut names = BTreeSet::new();
        for ds in &self.datasets {
            let name = Some(ds.name.as_str());
            match ds.name.split_once('.') {
                Some((schema, table)) if is_identifier(schema) && is_identifier(table) => {}
                _ => {
                    return invalid(
                        name,
                        "name",
                        "must be `schema.table` with lower-case identifiers".into(),
                    );
                }
            }
            if matches!(ds.schema_name(), "system" | "information_schema") {
                return invalid(
                    name,
                    "name",
                    format!("schema `{}` is reserved", ds.schema_name()),
                );
            }
            if !names.insert(ds.name.clone()) {
                return invalid(name, "name", "is declared twice".into());
            }
            let location = ds.location.trim();
            if location.is_empty() {
                return invalid(name, "location", "must not be empty".into());
            }
            if location.starts_with('/')
                || location.contains("://")
                || location.split('/').any(|part| part == "..")
            {
                return invalid(
                    name,
                    "location",
                    format!("`{location}` must be relative to the storage root, without `..`"),
                );
            }
            if ds.owner.trim().is_empty() {
                return invalid(name, "owner", "must name the owning department".into());
            }
            if let Err(message) = parse_update_frequency(&ds.update_frequency) {
                return invalid(name, "update_frequency", message);
            }
            let mut column_names = BTreeSet::new();
            for (i, col) in ds.columns.iter().enumerate() {
                if col.name.trim().is_empty() {
                    return invalid(
                        name,
                        &format!("columns[{i}].name"),
                        "must not be empty".into(),
                    );
                }
                if !column_names.insert(col.name.as_str()) {
                    return invalid(
                        name,
                        &format!("columns[{i}].name"),
                        format!("column `{}` is declared twice", col.name),
                    );
                }
                if let Some(Err(message)) = col.data_type.as_ref().map(|t| t.parse::<ColumnType>())
                {
                    return invalid(name, &format!("columns[{i}].type"), message);
                }
                for (field, bound) in [("min", col.min), ("max", col.max)] {
                    if bound.is_some_and(|b| !b.is_finite()) {
                        return invalid(
                            name,
                            &format!("columns[{i}].{field}"),
                            "must be a finite number".into(),
                        );
                    }
                }
                if let (Some(min), Some(max)) = (col.min, col.max)
                    && min > max
                {
                    return invalid(
                        name,
                        &format!("columns[{i}].min"),
                        format!("{min} is above max {max}"),
                    );
                }
            }
            let is_column = |c: &str| {
                ds.columns.is_empty()
                    || column_names.contains(c)
                    || ds.partitions.iter().any(|p| p.name == c)
            };
            for (i, key) in ds.primary_key.iter().enumerate() {
                if !is_column(key) {
                    return invalid(
                        name,
                        &format!("primary_key[{i}]"),
                        format!("`{key}` is not a declared column"),
                    );
                }
            }
            if let Some(t) = ds.partition_tolerance
                && !(t.is_finite() && t > 0.0)
            {
                return invalid(
                    name,
                    "partition_tolerance",
                    format!("{t} must be a positive number"),
                );
            }
            if let Some(t) = &ds.time_column
                && !is_column(t)
            {
                return invalid(
                    name,
                    "time_column",
                    format!("`{t}` is not a declared column"),
                );
            }
            if let Some(Err(message)) = ds.retention_period() {
                return invalid(name, "retention", message);
            }
            if ds.retention.is_some() && ds.time_column.is_none() {
                return invalid(
                    name,
                    "retention",
                    "a retention period needs `time_column`, the column rows are aged by".into(),
                );
            }
            for (i, part) in ds.partitions.iter().enumerate() {
                let field = format!("partitions[{i}].type");
                match part.data_type.parse::<ColumnType>() {
                    Ok(t) if t.is_partition_type() => {}
                    Ok(t) => {
                        return invalid(
                            name,
                            &field,
                            format!(
                                "`{t}` cannot be a partition column type; use date, text, \
                                 smallint, int or bigint"
                            ),
                        );
                    }
                    Err(message) => return invalid(name, &field, message),
                }
                if column_names.contains(part.name.as_str()) {
                    return invalid(
                        name,
                        &format!("partitions[{i}].name"),
                        format!("`{}` is both a partition and a file column", part.name),
                    );
                }
            }
            for (i, col) in ds.sort_order.iter().enumerate() {
                let known = column_names.contains(col.as_str())
                    || ds.partitions.iter().any(|p| &p.name == col);
                if !ds.columns.is_empty() && !known {
                    return invalid(
                        name,
                        &format!("sort_order[{i}]"),
                        format!("`{col}` is not a declared column"),
                    );
                }
            }
        }
        if let Some(q) = &self.quality {
            if let Some(Err(message)) = q.as_of.as_deref().map(parse_local_time) {
                return invalid(None, "quality.as_of", message);
            }
            if let Some(t) = q.partition_tolerance
                && !(t.is_finite() && t > 0.0)
            {
                return invalid(
                    None,
                    "quality.partition_tolerance",
                    format!("{t} must be a positive number"),
                );
            }
        }
        if let Some(e) = &self.evaluation {
            let bands = [
                ("grade_excellent", e.grade_excellent.unwrap_or(90.0)),
                ("grade_good", e.grade_good.unwrap_or(80.0)),
                ("grade_fair", e.grade_fair.unwrap_or(60.0)),
            ];
            for (name, v) in bands {
                if !(0.0..=100.0).contains(&v) {
                    return invalid(
                        None,
                        &format!("evaluation.{name}"),
                        format!("{v} is not a score between 0 and 100"),
                    );
                }
            }
            if !(bands[0].1 > bands[1].1 && bands[1].1 > bands[2].1) {
                return invalid(
                    None,
                    "evaluation",
                    "the grade bands must decrease: grade_excellent > grade_good > grade_fair"
                        .into(),
                );
            }
            if let Some(t) = e.over_completion_threshold
                && !(t.is_finite() && t >= 1.0)
            {
                return invalid(
                    None,
                    "evaluation.over_completion_threshold",
                    format!("{t} must be a ratio of at least 1"),
                );
            }
        }
        for view in &self.views {
            let field = |f: &str| format!("views[{}].{f}", view.name);
            match view.name.split_once('.') {
                Some((schema, name)) if is_identifier(schema) && is_identifier(name) => {}
                _ => {
                    return invalid(
                        None,
                        &field("name"),
                        "must be `schema.view` with lower-case identifiers".into(),
                    );
                }
            }
            if matches!(view.schema_name(), "system" | "information_schema") {
                return invalid(
                    None,
                    &field("name"),
                    format!("schema `{}` is reserved", view.schema_name()),
                );
            }
            if !names.insert(view.name.clone()) {
                return invalid(
                    None,
                    &field("name"),
                    "is already declared (as a dataset or a view)".into(),
                );
            }
            match (&view.sql, &view.file) {
                (Some(sql), None) if !sql.trim().is_empty() => {}
                (None, Some(file))
                    if !file.trim().is_empty()
                        && !file.starts_with('/')
                        && !file.split('/').any(|p| p == "..") => {}
                (None, Some(file)) => {
                    return invalid(
                        None,
                        &field("file"),
                        format!(
                            "`{file}` must be a path relative to the catalog file, without `..`"
                        ),
                    );
                }
                _ => {
                    return invalid(
                        None,
                        &field("sql"),
                        "give exactly one of `sql` (the query) and `file` (a .sql file)".into(),
                    );
                }
            }
        }
        Ok(())
    }
}
