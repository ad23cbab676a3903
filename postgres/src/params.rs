//! Values bound to a statement's `$n` parameters (Bind), as engine values.
//!
//! Each value is read as the type the client declared for it in Parse (or,
//! when it declared none, the type the server described: the planner's
//! inference, or `text`), in the format the client chose (text or binary),
//! then cast to the type the planner inferred for the parameter. A value that
//! does not read or cast is the client's error (`22P02`), naming the parameter.

use citylake_engine::datafusion::arrow::datatypes::DataType;
use citylake_engine::datafusion::common::ScalarValue;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::error::PgWireResult;

use crate::error::user_error;

/// The values of `portal`'s parameters; `declared` are the client's types
/// (Parse), `inferred` the planner's (one per parameter it found).
pub fn values<S: Clone>(
    portal: &Portal<S>,
    declared: &[Option<Type>],
    inferred: &[Option<DataType>],
) -> PgWireResult<Vec<ScalarValue>> {
    if portal.parameter_len() != inferred.len() {
        return Err(user_error(
            "08P01",
            format!(
                "bind message supplies {} parameters, but the statement requires {}",
                portal.parameter_len(),
                inferred.len()
            ),
        ));
    }
    (0..portal.parameter_len())
        .map(|i| {
            let target = inferred.get(i).cloned().flatten();
            let pg = declared
                .get(i)
                .cloned()
                .flatten()
                .or_else(|| target.as_ref().and_then(pg_type))
                .unwrap_or(Type::TEXT);
            let value = read(portal, i, &pg)?;
            match target {
                Some(t) if value.data_type() != t => value.cast_to(&t).map_err(|e| {
                    user_error(
                        "22P02",
                        format!("parameter ${}: cannot read {value} as {t}: {e}", i + 1),
                    )
                }),
                _ => Ok(value),
            }
        })
        .collect()
}

/// The Postgres type a parameter of this type is described as.
pub fn pg_type(t: &DataType) -> Option<Type> {
    Some(match t {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal128(..) | DataType::UInt64 => Type::NUMERIC,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        // (`x = ANY($1)`: a list of x's type)
        DataType::List(f) | DataType::LargeList(f) => match pg_type(f.data_type())? {
            Type::TEXT => Type::TEXT_ARRAY,
            Type::INT2 | Type::INT4 | Type::INT8 => Type::INT8_ARRAY,
            Type::FLOAT4 | Type::FLOAT8 => Type::FLOAT8_ARRAY,
            _ => return None,
        },
        _ => return None,
    })
}

/// Parameter `i` read as the Postgres type `pg`.
fn read<S: Clone>(portal: &Portal<S>, i: usize, pg: &Type) -> PgWireResult<ScalarValue> {
    let bad = |e: pgwire::error::PgWireError| {
        user_error(
            "22P02",
            format!("parameter ${}: not a valid {pg}: {e}", i + 1),
        )
    };
    Ok(match *pg {
        Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, pg).map_err(bad)?),
        Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, pg).map_err(bad)?),
        Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, pg).map_err(bad)?),
        Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, pg).map_err(bad)?),
        Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, pg).map_err(bad)?),
        Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, pg).map_err(bad)?),
        Type::NUMERIC => {
            let d = portal
                .parameter::<rust_decimal::Decimal>(i, pg)
                .map_err(bad)?;
            match d {
                Some(d) => ScalarValue::Decimal128(Some(d.mantissa()), 38, d.scale() as i8),
                None => ScalarValue::Decimal128(None, 38, 0),
            }
        }
        Type::DATE => {
            let d = portal.parameter::<chrono::NaiveDate>(i, pg).map_err(bad)?;
            ScalarValue::Date32(d.map(|d| {
                (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days()
                    as i32
            }))
        }
        Type::TIMESTAMP => {
            let t = portal
                .parameter::<chrono::NaiveDateTime>(i, pg)
                .map_err(bad)?;
            ScalarValue::TimestampMicrosecond(t.map(|t| t.and_utc().timestamp_micros()), None)
        }
        Type::TIMESTAMPTZ => {
            let t = portal
                .parameter::<chrono::DateTime<chrono::FixedOffset>>(i, pg)
                .map_err(bad)?;
            ScalarValue::TimestampMicrosecond(t.map(|t| t.timestamp_micros()), Some("UTC".into()))
        }
        // arrays, as a list of their elements' values (cast to the planner's type after)
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::NAME_ARRAY | Type::BPCHAR_ARRAY => {
            let values = portal
                .parameter::<Vec<Option<String>>>(i, pg)
                .map_err(bad)?;
            list(
                values.map(|v| v.into_iter().map(ScalarValue::Utf8).collect()),
                &DataType::Utf8,
            )?
        }
        Type::INT2_ARRAY | Type::INT4_ARRAY | Type::INT8_ARRAY => {
            let values = match *pg {
                Type::INT2_ARRAY => portal
                    .parameter::<Vec<Option<i16>>>(i, pg)
                    .map_err(bad)?
                    .map(|v| v.into_iter().map(|x| x.map(i64::from)).collect::<Vec<_>>()),
                Type::INT4_ARRAY => portal
                    .parameter::<Vec<Option<i32>>>(i, pg)
                    .map_err(bad)?
                    .map(|v| v.into_iter().map(|x| x.map(i64::from)).collect::<Vec<_>>()),
                _ => portal.parameter::<Vec<Option<i64>>>(i, pg).map_err(bad)?,
            };
            list(
                values.map(|v| v.into_iter().map(ScalarValue::Int64).collect()),
                &DataType::Int64,
            )?
        }
        Type::FLOAT8_ARRAY => {
            let values = portal.parameter::<Vec<Option<f64>>>(i, pg).map_err(bad)?;
            list(
                values.map(|v| v.into_iter().map(ScalarValue::Float64).collect()),
                &DataType::Float64,
            )?
        }
        _ => {
            // text, varchar, name, unknown — and types read as their text
            let text_type = match *pg {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => pg,
                _ => &Type::TEXT,
            };
            ScalarValue::Utf8(portal.parameter::<String>(i, text_type).map_err(bad)?)
        }
    })
}

/// A list value of `values` (`None`: a NULL list) of elements of type `element`.
fn list(values: Option<Vec<ScalarValue>>, element: &DataType) -> PgWireResult<ScalarValue> {
    Ok(match values {
        Some(values) => ScalarValue::List(ScalarValue::new_list_nullable(&values, element)),
        None => ScalarValue::try_from(&DataType::new_list(element.clone(), true))
            .map_err(|e| user_error("22P02", e.to_string()))?,
    })
}

/// The bound values as the audit trail and `system.queries` show them:
/// `{"$1": "…", …}`.
pub fn audit_text(values: &[ScalarValue]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let shown = if v.is_null() {
                serde_json::Value::Null
            } else {
                serde_json::Value::String(v.to_string())
            };
            (format!("${}", i + 1), shown)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}
