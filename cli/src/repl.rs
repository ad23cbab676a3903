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
    let mut stray = StrayInterrupts::new()?;
    loop {
        let prompt = if buffer.is_empty() {
            "citylake> "
        } else {
            "      ..> "
        };
        let read = if stray.take() {
            Err(ReadlineError::Interrupted)
        } else {
            editor.readline(prompt)
        };
        let line = match read {
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
                    // a Ctrl-C during the statement was for the statement
                    stray.take();
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
            stray.take();
        }
    }
    Ok(())
}

/// Ctrl-C pressed while the line editor does not hold the terminal (between
/// printing a result or an error and showing the next prompt) arrives as
/// SIGINT, which the handler that cancels statements has taken over from the
/// default: without this listener it would be lost, and the statement being
/// typed would stay. The next prompt acts on it as on a Ctrl-C typed there.
struct StrayInterrupts {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl StrayInterrupts {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?,
        })
    }

    /// Whether SIGINT arrived since the last call (without waiting).
    fn take(&mut self) -> bool {
        #[cfg(unix)]
        {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut any = false;
            while let std::task::Poll::Ready(Some(())) = self.signal.poll_recv(&mut cx) {
                any = true;
            }
            any
        }
        #[cfg(not(unix))]
        false
    }
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
