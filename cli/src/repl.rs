//! The interactive shell: history, multi-line statements ended by `;`, and a
//! few backslash commands.

use std::io::Write;

use citylake_engine::Session;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::args::Format;
use crate::sql::run_script;

const HELP: &str = "\
Statements end with `;` and may span lines. Commands:
  \\d            list tables
  \\d NAME       describe a table (schema.table)
  \\datasets     the catalog's datasets (system.datasets)
  \\?            this help
  \\q            quit (or Ctrl-D)";

pub async fn run(
    session: &Session,
    format: Format,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".citylake_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!(
        "citylake {} — SQL over the city lake. \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "citylake> "
        } else {
            "      ..> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            let sql = match trimmed.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["\\q"] | ["\\quit"] => break,
                ["\\?"] | ["\\h"] | ["\\help"] => {
                    eprintln!("{HELP}");
                    continue;
                }
                ["\\d"] => {
                    "SELECT table_schema, table_name, table_type FROM information_schema.tables \
                            WHERE table_schema <> 'information_schema' ORDER BY 1, 2"
                        .to_string()
                }
                ["\\d", name] => format!(
                    "SELECT column_name, data_type, is_partition, pii, description FROM system.columns \
                     WHERE schema_name || '.' || table_name = '{}' ORDER BY ordinal_position",
                    name.replace('\'', "''")
                ),
                ["\\datasets"] => {
                    "SELECT name, owner, classification, update_frequency, description \
                                   FROM system.datasets ORDER BY name"
                        .to_string()
                }
                _ => {
                    eprintln!("unknown command {trimmed}; \\? for help");
                    continue;
                }
            };
            run_script(session, &sql, format, out, true).await;
            continue;
        }
        if trimmed.is_empty() && buffer.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if trimmed.ends_with(';') {
            let sql = std::mem::take(&mut buffer);
            let _ = editor.add_history_entry(sql.trim());
            run_script(session, &sql, format, out, true).await;
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}
