//! `COPY … TO STDOUT`: a query's rows streamed to the client in PostgreSQL's
//! text, CSV or binary COPY format (psql's `\copy (SELECT …) TO 'file.csv'`,
//! psycopg's `cursor.copy()`).
//!
//! The rows come from the same query lifecycle as every other statement: the
//! `SELECT` inside (or `SELECT columns FROM table` for `COPY table`) runs
//! through `Session::query`, governed, limited, audited and cancellable. `COPY
//! … FROM STDIN` is refused (`25006`: the lake is read-only here), and so is a
//! `COPY` to or from a file or program on the server (`42501`).

use std::sync::Arc;

use arrow_pg::datatypes::arrow_schema_to_pg_fields;
use arrow_pg::encoder::encode_value;
use bytes::{BufMut, Bytes, BytesMut};
use citylake_engine::EngineError;
use citylake_engine::datafusion::execution::SendableRecordBatchStream;
use citylake_engine::datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use citylake_engine::datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use citylake_engine::datafusion::sql::sqlparser::parser::Parser;
use citylake_server::wire::{to_wire, wire_schema};
use futures::StreamExt;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;

use crate::error::{to_pg, user_error};

/// The COPY formats.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    Text {
        delimiter: char,
        null: String,
    },
    Csv {
        delimiter: char,
        null: String,
        quote: char,
        escape: char,
        header: bool,
    },
    Binary,
}

/// A `COPY … TO STDOUT`: the query whose rows it sends, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyOut {
    pub query: String,
    pub layout: Layout,
}

/// Whether `sql` is a `COPY` statement (then it is answered here, or refused).
pub fn is_copy(sql: &str) -> bool {
    sql.trim_start()
        .get(..5)
        .is_some_and(|w| w.eq_ignore_ascii_case("copy ") || w.eq_ignore_ascii_case("copy("))
}

/// Reads a `COPY` statement.
pub fn parse(sql: &str) -> PgWireResult<CopyOut> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| user_error("42601", format!("COPY: {e}")))?;
    let [
        Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        },
    ] = statements.as_slice()
    else {
        return Err(user_error("42601", "COPY: one COPY statement expected"));
    };
    if !to {
        return Err(user_error(
            "25006",
            "COPY … FROM: the lake is read-only here (departments deliver data through \
             their pipelines, not through this connection)",
        ));
    }
    if *target != CopyTarget::Stdout {
        return Err(user_error(
            "42501",
            "COPY to a file or program on the server is not allowed: use COPY … TO STDOUT \
             (psql's \\copy writes the client's file)",
        ));
    }
    let query = match source {
        CopySource::Query(query) => query.to_string(),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let columns = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("SELECT {columns} FROM {table_name}")
        }
    };

    let mut format = "text".to_string();
    let (mut delimiter, mut null, mut quote, mut escape, mut header) =
        (None, None, '"', None, false);
    for option in options {
        match option {
            CopyOption::Format(f) => format = f.value.to_lowercase(),
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Null(n) => null = Some(n.clone()),
            CopyOption::Header(h) => header = *h,
            CopyOption::Quote(c) => quote = *c,
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            other => {
                return Err(user_error(
                    "0A000",
                    format!("COPY option {other} is not supported"),
                ));
            }
        }
    }
    for option in legacy_options {
        match option {
            CopyLegacyOption::Binary => format = "binary".into(),
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Null(n) => null = Some(n.clone()),
            CopyLegacyOption::Csv(csv) => {
                format = "csv".into();
                for o in csv {
                    match o {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(c) => quote = *c,
                        CopyLegacyCsvOption::Escape(c) => escape = Some(*c),
                        other => {
                            return Err(user_error(
                                "0A000",
                                format!("COPY option {other} is not supported"),
                            ));
                        }
                    }
                }
            }
            other => {
                return Err(user_error(
                    "0A000",
                    format!("COPY option {other} is not supported"),
                ));
            }
        }
    }
    let layout = match format.as_str() {
        "text" => {
            if header {
                return Err(user_error(
                    "0A000",
                    "COPY HEADER is available only in CSV mode",
                ));
            }
            Layout::Text {
                delimiter: delimiter.unwrap_or('\t'),
                null: null.unwrap_or_else(|| "\\N".into()),
            }
        }
        "csv" => Layout::Csv {
            delimiter: delimiter.unwrap_or(','),
            null: null.unwrap_or_default(),
            quote,
            escape: escape.unwrap_or(quote),
            header,
        },
        "binary" => Layout::Binary,
        other => {
            return Err(user_error(
                "22023",
                format!("COPY format \"{other}\" not recognized"),
            ));
        }
    };
    Ok(CopyOut { query, layout })
}

/// PGCOPY's header: signature, flags, extension length.
fn binary_header() -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(b"PGCOPY\n\xff\r\n\0");
    b.put_i32(0);
    b.put_i32(0);
    b.freeze()
}

/// One CSV field as PostgreSQL writes a header name.
fn csv_field(value: &str, delimiter: char, quote: char, escape: char) -> String {
    if value.contains([delimiter, quote, '\n', '\r']) || value.is_empty() {
        let mut out = String::from(quote);
        for c in value.chars() {
            if c == quote || c == escape {
                out.push(escape);
            }
            out.push(c);
        }
        out.push(quote);
        out
    } else {
        value.to_string()
    }
}

/// The engine's stream as COPY data: one CopyData per row (the header, if
/// any, before the first).
pub fn response(stream: SendableRecordBatchStream, copy: &CopyOut) -> PgWireResult<CopyResponse> {
    let schema = wire_schema(&stream.schema());
    let format = match copy.layout {
        Layout::Binary => Format::UnifiedBinary,
        _ => Format::UnifiedText,
    };
    let fields = Arc::new(arrow_schema_to_pg_fields(&schema, &format, None)?);
    let columns = fields.len();
    let encoder = match &copy.layout {
        Layout::Text { delimiter, null } => CopyEncoder::new_text(
            fields.clone(),
            CopyTextOptions {
                delimiter: delimiter.to_string().into(),
                null_string: null.as_str().into(),
            },
        ),
        Layout::Csv {
            delimiter,
            null,
            quote,
            escape,
            ..
        } => CopyEncoder::new_csv(
            fields.clone(),
            CopyCsvOptions {
                delimiter: delimiter.to_string().into(),
                quote: quote.to_string().into(),
                escape: escape.to_string().into(),
                null_string: null.as_str().into(),
                force_quote: vec![],
            },
        ),
        Layout::Binary => CopyEncoder::new_binary(fields.clone()),
    };
    // what goes before the first row: the CSV header line; for binary COPY
    // without a row, the PGCOPY header the encoder writes with its first row
    let before_first: Option<Bytes> = match &copy.layout {
        Layout::Csv {
            header: true,
            delimiter,
            quote,
            escape,
            ..
        } => {
            let names: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| csv_field(f.name(), *delimiter, *quote, *escape))
                .collect();
            Some(Bytes::from(format!(
                "{}\n",
                names.join(&delimiter.to_string())
            )))
        }
        _ => None,
    };
    let binary = copy.layout == Layout::Binary;
    let state = Encoding {
        batches: stream,
        encoder,
        fields,
        schema,
        before_first,
        rows_sent: false,
        done: false,
    };
    let data = futures::stream::unfold(state, move |mut s| async move {
        if s.done {
            return None;
        }
        let out = match s.batches.next().await {
            Some(batch) => s.encode(batch),
            None => {
                s.done = true;
                if !binary {
                    vec![]
                } else if s.rows_sent {
                    vec![Ok(CopyEncoder::finish_copy_binary())]
                } else {
                    // the header and the trailer in one message: clients parse
                    // the header together with what follows it
                    let mut both = BytesMut::from(binary_header().as_ref());
                    both.extend_from_slice(&CopyEncoder::finish_copy_binary().data);
                    vec![Ok(CopyData::new(both.freeze()))]
                }
            }
        };
        Some((futures::stream::iter(out), s))
    })
    .flatten();
    // the trailer of binary COPY is sent above (CopyResponse::new would add
    // its own as a separate message, after a header-only one for no rows)
    let mut response = CopyResponse::new(0, columns, data);
    response.format = if binary { 1 } else { 0 };
    Ok(response)
}

/// The state of a COPY's encoding, batch after batch.
struct Encoding {
    batches: SendableRecordBatchStream,
    encoder: CopyEncoder,
    fields: Arc<Vec<pgwire::api::results::FieldInfo>>,
    schema: citylake_engine::datafusion::arrow::datatypes::SchemaRef,
    before_first: Option<Bytes>,
    rows_sent: bool,
    done: bool,
}

impl Encoding {
    /// One batch's rows; after an error, the error and nothing more.
    fn encode(
        &mut self,
        batch: citylake_engine::datafusion::error::Result<
            citylake_engine::datafusion::arrow::array::RecordBatch,
        >,
    ) -> Vec<PgWireResult<CopyData>> {
        let batch = match batch
            .map_err(EngineError::from)
            .and_then(|b| to_wire(b, &self.schema).map_err(EngineError::from))
        {
            Ok(b) => b,
            Err(e) => {
                self.done = true;
                return vec![Err(to_pg(&e, None))];
            }
        };
        let batch_schema = batch.schema();
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            for (col, array) in batch.columns().iter().enumerate() {
                if let Err(e) = encode_value(
                    &mut self.encoder,
                    array,
                    row,
                    batch_schema.field(col),
                    &self.fields[col],
                ) {
                    self.done = true;
                    out.push(Err(e));
                    return out;
                }
            }
            let data = self.encoder.take_copy();
            self.rows_sent = true;
            out.push(Ok(match self.before_first.take() {
                Some(first) => {
                    let mut joined = BytesMut::from(first.as_ref());
                    joined.extend_from_slice(&data.data);
                    CopyData::new(joined.freeze())
                }
                None => data,
            }));
        }
        out
    }
}

/// A `PgWireError` for a COPY the extended protocol was asked to run.
pub fn extended_refused() -> PgWireError {
    user_error(
        "0A000",
        "COPY runs in the simple query protocol here (psql's \\copy, psycopg's cursor.copy)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_statements() {
        assert!(is_copy("copy (select 1) to stdout"));
        assert!(is_copy("  COPY(select 1) TO STDOUT"));
        assert!(!is_copy("copyright"));
        let c = parse("COPY ( SELECT 1 AS a ) TO STDOUT with csv header").unwrap();
        assert_eq!(c.query, "SELECT 1 AS a");
        assert!(matches!(
            c.layout,
            Layout::Csv {
                header: true,
                delimiter: ',',
                ..
            }
        ));
        let c = parse("COPY traffic.road_segments (segment_id, name) TO STDOUT").unwrap();
        assert_eq!(
            c.query,
            "SELECT segment_id, name FROM traffic.road_segments"
        );
        assert_eq!(
            c.layout,
            Layout::Text {
                delimiter: '\t',
                null: "\\N".into()
            }
        );
        let c = parse("COPY t TO STDOUT (FORMAT csv, DELIMITER ';', NULL 'NA', HEADER)").unwrap();
        assert!(
            matches!(c.layout, Layout::Csv { delimiter: ';', header: true, ref null, .. } if null == "NA")
        );
        assert_eq!(
            parse("COPY t TO STDOUT (FORMAT binary)").unwrap().layout,
            Layout::Binary
        );
    }

    #[test]
    fn refused_copies() {
        let code = |sql: &str| match parse(sql) {
            Err(PgWireError::UserError(e)) => e.code.clone(),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(code("COPY t FROM STDIN"), "25006");
        assert_eq!(code("COPY t TO '/etc/passwd'"), "42501");
        assert_eq!(code("COPY t TO PROGRAM 'rm -rf /'"), "42501");
        assert_eq!(code("COPY t TO STDOUT (FORMAT xml)"), "22023");
        assert_eq!(code("COPY t TO STDOUT (HEADER)"), "0A000");
        assert_eq!(code("COPY (SELEC 1) TO STDOUT"), "42601");
    }

    #[test]
    fn header_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a", ',', '"', '"'), "a");
        assert_eq!(csv_field("a,b", ',', '"', '"'), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"", ' ', '"', '"'), "\"say \"\"hi\"\"\"");
    }
}
