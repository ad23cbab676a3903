//! The interactive shell: history, multi-line statements ended by `;`, and a
//! few backslash commands (which `-c` and `-f` scripts may use too).

use std::io::Write;

use citylake_engine::Session;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::args::Format;
use crate::sql::run_script;

const HELP: &str = "\
Statements end with `;` and may span lines. Ctrl-C stops the running statement
(or discards the one being typed; twice at an empty prompt quits). Commands:
  \\d            list tables
  \\d NAME       describe a table (schema.table)
  \\datasets     the catalog's datasets (system.datasets)
  \\?            this help
  \\q            quit (or Ctrl-D)";

/// A backslash command.
#[derive(Debug, PartialEq)]
pub enum Meta {
    Quit,
    Help,
    /// A query that answers it.
    Query(String),
}

/// The backslash command of `line` (which starts with `\`), or why it is not one.
pub fn meta_command(line: &str) -> Result<Meta, String> {
    Ok(
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["\\q"] | ["\\quit"] => Meta::Quit,
            ["\\?"] | ["\\h"] | ["\\help"] => Meta::Help,
            ["\\d"] => Meta::Query(
                "SELECT table_schema, table_name, table_type FROM information_schema.tables \
                 WHERE table_schema <> 'information_schema' ORDER BY 1, 2"
                    .to_string(),
            ),
            ["\\d", name] => Meta::Query(format!(
                "SELECT column_name, data_type, is_partition, pii, description FROM system.columns \
                 WHERE schema_name || '.' || table_name = '{}' ORDER BY ordinal_position",
                name.trim_end_matches(';').replace('\'', "''")
            )),
            ["\\datasets"] => Meta::Query(
                "SELECT name, owner, classification, update_frequency, description \
                 FROM system.datasets ORDER BY name"
                    .to_string(),
            ),
            _ => return Err(format!("unknown command {}; \\? for help", line.trim())),
        },
    )
}

pub async fn run(
    session: &Session,
    format: Format,
    timing: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".citylake_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    // written after every entry, so a crash or a kill loses nothing
    let remember = |editor: &mut DefaultEditor, entry: &str| {
        let _ = editor.add_history_entry(entry);
        if let Some(path) = &history {
            let _ = editor.save_history(path);
        }
    };
    eprintln!(
        "citylake {} — SQL over the city lake. \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    let mut interrupted = false;
    loop {
        let prompt = if buffer.is_empty() {
            "citylake> "
        } else {
            "      ..> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                if !buffer.is_empty() {
                    // discards the statement being typed
                    buffer.clear();
                } else if interrupted {
                    break;
                } else {
                    eprintln!("(Ctrl-C again or \\q to quit)");
                    interrupted = true;
                }
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        interrupted = false;
        let trimmed = line.trim();
        if trimmed.starts_with('\\') {
            remember(&mut editor, trimmed);
            if !buffer.is_empty() {
                // not swallowed into the statement being typed
                eprintln!(
                    "a command inside an unfinished statement: end the statement with `;` \
                     (or discard it with Ctrl-C) first"
                );
                continue;
            }
            match meta_command(trimmed) {
                Ok(Meta::Quit) => break,
                Ok(Meta::Help) => eprintln!("{HELP}"),
                Ok(Meta::Query(sql)) => {
                    run_script(session, &sql, format, out, timing).await;
                }
                Err(e) => eprintln!("{e}"),
            }
            continue;
        }
        if trimmed.is_empty() && buffer.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if trimmed.ends_with(';') {
            let sql = std::mem::take(&mut buffer);
            remember(&mut editor, sql.trim());
            run_script(session, &sql, format, out, timing).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(meta_command("\\q"), Ok(Meta::Quit));
        assert!(
            matches!(meta_command("\\d traffic.segment_speed"), Ok(Meta::Query(q)) if q.contains("'traffic.segment_speed'"))
        );
        assert!(
            matches!(meta_command("\\d x';--"), Ok(Meta::Query(q)) if q.contains("= 'x'';--'"))
        );
        assert!(
            meta_command("\\x")
                .unwrap_err()
                .contains("unknown command \\x")
        );
    }
}
