//! PostgreSQL's `format(formatstr, args…)`, which Metabase's column sync
//! writes (`format('%I.%I', schema, table)`): `%s` an argument as text (NULL
//! as nothing), `%I` as an identifier (quoted when it needs to be, NULL an
//! error), `%L` as a literal (quoted, NULL as `NULL`), `%%` a `%`; each may
//! name its argument (`%2$s`), take the flag `-` (left-justify) and a width.
//! A width read from an argument (`*`) is not supported and is refused.
//!
//! Its result can be far larger than its arguments (`%1$s%1$s…`, a width), so
//! it builds at most [`MAX_FUNCTION_RESULT_BYTES`] per call, as the functions
//! of [`crate::bounded`] do, and says so when a call would build more.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::bounded::MAX_FUNCTION_RESULT_BYTES;

/// The `format` function (also `pg_catalog.format`).
pub fn udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(Format {
        signature: Signature::variadic_any(Volatility::Stable),
        aliases: vec![format!("{}.format", super::PG_CATALOG)],
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
    aliases: Vec<String>,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.is_empty() {
            return plan_err!("format(formatstr, args…) takes a format string");
        }
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalar { 1 } else { args.number_rows };
        let texts = args
            .args
            .iter()
            .map(|a| {
                let array = a.to_array(rows)?;
                Ok(datafusion::arrow::compute::cast(&array, &DataType::Utf8)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let texts: Vec<_> = texts.iter().map(|a| a.as_string::<i32>()).collect();
        let (format, values) = texts.split_first().expect("a format string (return_type)");
        let mut out = StringBuilder::new();
        let mut built = 0u64;
        let mut row_values: Vec<Option<&str>> = Vec::with_capacity(values.len());
        for row in 0..rows {
            if format.is_null(row) {
                out.append_null();
                continue;
            }
            row_values.clear();
            row_values.extend(values.iter().map(|v| v.is_valid(row).then(|| v.value(row))));
            let text = format_one(
                format.value(row),
                &row_values,
                MAX_FUNCTION_RESULT_BYTES - built,
            )?;
            built += text.len() as u64;
            out.append_value(text);
        }
        let array = out.finish();
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(Arc::new(array))
        })
    }
}

/// One row: `format` with `values` (NULL as `None`), building at most `room`
/// bytes.
fn format_one(format: &str, values: &[Option<&str>], room: u64) -> Result<String> {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.char_indices().peekable();
    let too_large = || {
        exec_err!(
            "format: the result would take more than the {} one call may build (a limit of \
             citylake's: a value this large is not an analysis)",
            bytesize::ByteSize(MAX_FUNCTION_RESULT_BYTES)
        )
    };
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // %[position$][-][width]type
        let mut spec = String::new();
        let conversion = loop {
            match chars.next() {
                Some((_, c)) if c.is_ascii_digit() || c == '$' || c == '-' || c == '*' => {
                    spec.push(c)
                }
                Some((_, c)) => break c,
                None => return exec_err!("format: unterminated format specifier"),
            }
        };
        if conversion == '%' && spec.is_empty() {
            out.push('%');
            continue;
        }
        if spec.contains('*') {
            return exec_err!("format: a width taken from an argument (`*`) is not supported");
        }
        let (position, rest) = match spec.split_once('$') {
            Some((p, rest)) => {
                let p: usize = p.parse().ok().filter(|p| *p >= 1).map_or_else(
                    || exec_err!("format: bad argument position in `%{spec}`"),
                    Ok,
                )?;
                (Some(p - 1), rest)
            }
            None => (None, spec.as_str()),
        };
        let (left, width) = match rest.strip_prefix('-') {
            Some(w) => (true, w),
            None => (false, rest),
        };
        let width: u64 = if width.is_empty() {
            0
        } else {
            width
                .parse()
                .map_or_else(|_| exec_err!("format: bad width in `%{spec}`"), Ok)?
        };
        let index = position.unwrap_or(next);
        next = index + 1;
        let Some(value) = values.get(index) else {
            return exec_err!("format: too few arguments");
        };
        let text = match (conversion, value) {
            ('s', v) => v.unwrap_or_default().to_string(),
            ('I', Some(v)) => super::quote_ident(v),
            ('I', None) => {
                return exec_err!("format: a NULL cannot be formatted as an SQL identifier");
            }
            ('L', Some(v)) => quote_literal(v),
            ('L', None) => "NULL".to_string(),
            (c, _) => return exec_err!("format: unrecognized format type specifier \"{c}\""),
        };
        let length = text.chars().count() as u64;
        if out.len() as u64 + text.len() as u64 + width.saturating_sub(length) > room {
            return too_large();
        }
        let pad = " ".repeat(width.saturating_sub(length) as usize);
        if left {
            out.push_str(&text);
            out.push_str(&pad);
        } else {
            out.push_str(&pad);
            out.push_str(&text);
        }
    }
    if out.len() as u64 > room {
        return too_large();
    }
    Ok(out)
}

/// `quote_literal`: in single quotes (inner quotes doubled); with a
/// backslash, an `E'…'` string with backslashes doubled, as PostgreSQL writes.
fn quote_literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(format: &str, values: &[Option<&str>]) -> Result<String> {
        format_one(format, values, 1 << 20)
    }

    #[test]
    fn conversions_as_postgresql_formats_them() {
        assert_eq!(f("%s-%s", &[Some("a"), None]).unwrap(), "a-");
        assert_eq!(
            f("%I.%I", &[Some("traffic"), Some("Segment Speed")]).unwrap(),
            "traffic.\"Segment Speed\""
        );
        assert_eq!(
            f("%L %L", &[Some("O'Brien"), None]).unwrap(),
            "'O''Brien' NULL"
        );
        assert_eq!(f("%L", &[Some("a\\b")]).unwrap(), "E'a\\\\b'");
        assert_eq!(f("100%%", &[]).unwrap(), "100%");
        // (an argument without a position is the one after the last one used)
        assert_eq!(
            f("%2$s %1$s %s", &[Some("a"), Some("b"), Some("c")]).unwrap(),
            "b a b"
        );
        assert_eq!(
            f("[%5s|%-5s]", &[Some("ab"), Some("cd")]).unwrap(),
            "[   ab|cd   ]"
        );
    }

    #[test]
    fn bad_formats_are_clear_errors() {
        for (format, says) in [
            ("%s %s", "too few arguments"),
            ("%x", "unrecognized format type specifier \"x\""),
            ("%", "unterminated"),
            ("%*s", "not supported"),
            ("%0$s", "bad argument position"),
        ] {
            let e = f(format, &[Some("a")]).unwrap_err().to_string();
            assert!(e.contains(says), "{format}: {e}");
        }
        assert!(f("%I", &[None]).unwrap_err().to_string().contains("NULL"));
    }

    #[test]
    fn the_result_is_bounded() {
        let e = format_one("%2000000000s", &[Some("x")], MAX_FUNCTION_RESULT_BYTES)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the"), "{e}");
        let many = "%1$s".repeat(1000);
        assert!(format_one(&many, &[Some(&"x".repeat(1000))], 100_000).is_err());
        assert_eq!(
            format_one(&many, &[Some("x")], 100_000).unwrap().len(),
            1000
        );
    }
}
