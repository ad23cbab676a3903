//! The function reference (`docs/functions.md`), generated from the
//! documentation each function carries in code.
//!
//! Regenerate with `CITYLAKE_BLESS=1 cargo test -p citylake-udfs docs`; the
//! `reference_is_current` test fails when the checked-in page is stale, and
//! `examples_run` executes every SQL example and compares its output.

use std::fmt::Write;

use datafusion::logical_expr::Documentation;

/// One documented function: its name, kind and documentation.
pub struct Entry {
    pub name: String,
    pub kind: &'static str,
    pub doc: Documentation,
}

/// Every citylake function with its documentation, in section order.
pub fn entries() -> Vec<Entry> {
    let mut out = Vec::new();
    for f in crate::scalar_functions() {
        if let Some(d) = f.documentation() {
            out.push(Entry {
                name: f.name().to_string(),
                kind: "scalar",
                doc: d.clone(),
            });
        }
    }
    for f in crate::aggregate_functions() {
        if let Some(d) = f.documentation() {
            out.push(Entry {
                name: f.name().to_string(),
                kind: "aggregate",
                doc: d.clone(),
            });
        }
    }
    for f in crate::window_functions() {
        if let Some(d) = f.documentation() {
            out.push(Entry {
                name: f.name().to_string(),
                kind: "window",
                doc: d.clone(),
            });
        }
    }
    // sections in order of first appearance; functions keep their order inside one
    let mut sections: Vec<&'static str> = Vec::new();
    for e in &out {
        if !sections.contains(&e.doc.doc_section.label) {
            sections.push(e.doc.doc_section.label);
        }
    }
    out.sort_by_key(|e| sections.iter().position(|s| *s == e.doc.doc_section.label));
    out
}

/// The reference page as Markdown.
pub fn reference_markdown() -> String {
    let entries = entries();
    let mut md = String::from(
        "# citylake SQL function reference\n\n\
         <!-- Generated from the functions' in-code documentation by `CITYLAKE_BLESS=1 cargo test -p \
         citylake-udfs docs`; do not edit by hand. A test fails when this page is stale. -->\n\n\
         Every function is registered in every citylake session (`citylake sql`, `citylake serve`). \
         NULL in gives NULL out unless a function says otherwise; a wrong argument (unknown name, \
         wrong arity, non-numeric value) is a planning error naming the function.\n",
    );
    let mut section = "";
    for e in &entries {
        let s = &e.doc.doc_section;
        if s.label != section {
            section = s.label;
            let _ = write!(md, "\n## {}\n\n", s.label);
            if let Some(d) = s.description {
                let _ = writeln!(md, "{d}.\n");
            }
            for f in entries
                .iter()
                .filter(|f| f.doc.doc_section.label == section)
            {
                let _ = writeln!(md, "- [`{}`](#{}) ({})", f.name, f.name, f.kind);
            }
        }
        let d = &e.doc;
        let _ = write!(
            md,
            "\n### {}\n\n{}\n\n```sql\n{}\n```\n",
            e.name, d.description, d.syntax_example
        );
        if let Some(args) = &d.arguments {
            md.push_str("\n| argument | meaning |\n|---|---|\n");
            for (name, what) in args {
                let _ = writeln!(md, "| `{name}` | {} |", what.replace('|', "\\|"));
            }
        }
        if let Some(example) = &d.sql_example {
            let _ = write!(md, "\nExample:\n\n```text\n{example}\n```\n");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This crate's directory: from `cargo test`'s environment at run time (a test
    /// binary reused from a build in another checkout would otherwise look there),
    /// else where it was built.
    fn manifest_dir() -> std::path::PathBuf {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
    }

    use datafusion::prelude::SessionContext;

    fn page_path() -> std::path::PathBuf {
        manifest_dir().join("../docs/functions.md")
    }

    #[test]
    fn reference_is_current() {
        let want = reference_markdown();
        let path = page_path();
        if std::env::var_os("CITYLAKE_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/functions.md is stale: regenerate it with `CITYLAKE_BLESS=1 cargo test -p citylake-udfs docs`"
        );
    }

    #[test]
    fn every_function_is_documented_with_an_example() {
        let n = crate::scalar_functions().len()
            + crate::aggregate_functions().len()
            + crate::window_functions().len();
        let entries = entries();
        assert_eq!(entries.len(), n, "a function without documentation");
        for e in entries {
            assert!(e.doc.sql_example.is_some(), "{} has no SQL example", e.name);
        }
    }

    /// The trimmed cells of a table's data rows: an example may leave out the
    /// header (two border lines) or show it (three).
    fn cells(table: &str) -> Vec<Vec<String>> {
        let lines: Vec<&str> = table.lines().map(str::trim).collect();
        let borders = lines.iter().filter(|l| l.starts_with('+')).count();
        let rows = lines.iter().filter(|l| l.starts_with('|'));
        rows.skip(usize::from(borders >= 3))
            .map(|l| {
                l.trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().to_string())
                    .collect()
            })
            .collect()
    }

    #[tokio::test]
    async fn examples_run() {
        let ctx = SessionContext::new();
        let mut state = ctx.state();
        crate::register_all(&mut state).unwrap();
        let ctx = SessionContext::new_with_state(state);
        let mut failures = Vec::new();
        for e in entries() {
            let example = e.doc.sql_example.unwrap();
            let (sql, want) = example
                .split_once("\n+")
                .expect("an example has a result table");
            let sql = sql.trim_start_matches("> ").trim();
            let want = format!("+{want}");
            let got = match ctx.sql(sql).await {
                Ok(df) => match df.collect().await {
                    Ok(b) => datafusion::arrow::util::pretty::pretty_format_batches(&b)
                        .unwrap()
                        .to_string(),
                    Err(err) => err.to_string(),
                },
                Err(err) => err.to_string(),
            };
            if cells(&got) != cells(&want) {
                failures.push(format!("{}:\n{sql}\nwant:\n{want}\ngot:\n{got}", e.name));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}
