//! The city-bench workload: `benches/queries/*.sql`, one query per file.
//!
//! A file starts with `-- need:` (the user need it models) and `-- shape:`
//! (what kind of work it is), then the query as citylake runs it, with the
//! city's functions and views; an optional `-- standard:` line starts the
//! variant in standard SQL only (functions replaced by CASE expressions or
//! left out), which plain DataFusion and DuckDB run. Without it, the query is
//! standard SQL already.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// One query of the workload.
#[derive(Debug, Clone)]
pub struct Query {
    /// The file name without `.sql`, e.g. `q05_rush_hour_by_road_class`.
    pub name: String,
    pub need: String,
    pub shape: String,
    /// As citylake runs it (functions and views).
    pub citylake: String,
    /// Standard SQL, run by every engine and compared across them.
    pub standard: String,
}

impl Query {
    /// Whether the citylake variant differs from the standard one.
    pub fn uses_functions(&self) -> bool {
        self.citylake != self.standard
    }
}

/// The directory of the workload in this checkout.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("queries")
}

/// The analyst set in this checkout (`benches/analyst/`).
pub fn analyst_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("analyst")
}

/// The 22 TPC-H queries in this checkout (`benches/tpch/queries/`).
pub fn tpch_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tpch/queries")
}

/// Loads every `*.sql` of `dir`, sorted by name; `filter` keeps the names containing it.
pub fn load(dir: &Path, filter: Option<&str>) -> anyhow::Result<Vec<Query>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the workload in {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "sql"));
    files.sort();
    let mut out = vec![];
    for path in files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        out.push(parse(&name, &text).with_context(|| format!("in {}", path.display()))?);
    }
    if out.is_empty() {
        match filter {
            Some(f) => bail!("no query in {} matches the filter {f:?}", dir.display()),
            None => bail!("no query in {}", dir.display()),
        }
    }
    Ok(out)
}

fn parse(name: &str, text: &str) -> anyhow::Result<Query> {
    let header = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    let need = header("-- need:").context("no `-- need:` line")?;
    let shape = header("-- shape:").context("no `-- shape:` line")?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-- need:") && !l.starts_with("-- shape:"))
        .collect::<Vec<_>>()
        .join("\n");
    let (citylake, standard) = match body.split_once("-- standard:") {
        Some((c, s)) => (clean(c), clean(s)),
        None => (clean(&body), clean(&body)),
    };
    if citylake.is_empty() || standard.is_empty() {
        bail!("empty query");
    }
    Ok(Query {
        name: name.to_string(),
        need,
        shape,
        citylake,
        standard,
    })
}

fn clean(sql: &str) -> String {
    sql.trim().trim_end_matches(';').trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_variants_and_checks_the_headers() {
        let q = parse(
            "q",
            "-- need: a\n-- shape: b\nSELECT f(x) FROM t;\n-- standard:\nSELECT x FROM t;\n",
        )
        .unwrap();
        assert_eq!(q.citylake, "SELECT f(x) FROM t");
        assert_eq!(q.standard, "SELECT x FROM t");
        assert!(q.uses_functions());
        let q = parse("q", "-- need: a\n-- shape: b\nSELECT 1;").unwrap();
        assert!(!q.uses_functions());
        assert!(parse("q", "SELECT 1").is_err());
    }

    #[test]
    fn the_tpch_suite_has_its_22_queries() {
        assert_eq!(load(&tpch_dir(), None).unwrap().len(), 22);
    }

    #[test]
    fn the_analyst_set_joins_facts_and_dimensions_over_month_quarter_and_year() {
        let all = load(&analyst_dir(), None).unwrap();
        assert_eq!(all.len(), 10);
        for span in ["month", "quarter", "year"] {
            assert!(all.iter().any(|q| q.name.ends_with(span)), "{span}");
        }
        assert!(all.iter().all(|q| q.standard.contains(" JOIN ")));
    }

    #[test]
    fn the_workload_has_at_least_twenty_queries() {
        let all = load(&default_dir(), None).unwrap();
        assert!(all.len() >= 20, "{}", all.len());
        assert!(all.iter().filter(|q| q.uses_functions()).count() >= 5);
    }
}
