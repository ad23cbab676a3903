//! Column types as the catalog spells them (SQL names), and their Arrow types.

use std::fmt;
use std::str::FromStr;

use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// The column types a catalog may declare. Spelled as SQL names in the TOML
/// file: `boolean`, `smallint`, `int`, `bigint`, `double`, `text`, `date`,
/// `timestamp` (microseconds, local time without a zone), `decimal(p,s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    SmallInt,
    Int,
    BigInt,
    Double,
    Text,
    Date,
    Timestamp,
    Decimal { precision: u8, scale: i8 },
}

/// The type names accepted in a catalog, for error messages.
pub const TYPE_NAMES: &str =
    "boolean, smallint, int, bigint, double, text, date, timestamp, decimal(p,s)";

impl ColumnType {
    /// The Arrow type the data is stored and read as.
    pub fn arrow_type(&self) -> DataType {
        match self {
            Self::Boolean => DataType::Boolean,
            Self::SmallInt => DataType::Int16,
            Self::Int => DataType::Int32,
            Self::BigInt => DataType::Int64,
            Self::Double => DataType::Float64,
            Self::Text => DataType::Utf8,
            Self::Date => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        }
    }

    /// Whether this type may be a Hive partition column (its value is spelled in a path).
    pub fn is_partition_type(&self) -> bool {
        matches!(
            self,
            Self::SmallInt | Self::Int | Self::BigInt | Self::Text | Self::Date
        )
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boolean => f.write_str("boolean"),
            Self::SmallInt => f.write_str("smallint"),
            Self::Int => f.write_str("int"),
            Self::BigInt => f.write_str("bigint"),
            Self::Double => f.write_str("double"),
            Self::Text => f.write_str("text"),
            Self::Date => f.write_str("date"),
            Self::Timestamp => f.write_str("timestamp"),
            Self::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
        }
    }
}

impl FromStr for ColumnType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let t = match lower.as_str() {
            "boolean" | "bool" => Self::Boolean,
            "smallint" | "int2" => Self::SmallInt,
            "int" | "integer" | "int4" => Self::Int,
            "bigint" | "int8" => Self::BigInt,
            "double" | "float8" | "double precision" => Self::Double,
            "text" | "string" | "varchar" => Self::Text,
            "date" => Self::Date,
            "timestamp" => Self::Timestamp,
            other => {
                let args = other
                    .strip_prefix("decimal(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .ok_or_else(|| format!("unknown type `{s}`; expected one of: {TYPE_NAMES}"))?;
                let (p, sc) = args
                    .split_once(',')
                    .ok_or_else(|| format!("`{s}`: decimal needs a precision and a scale"))?;
                let precision: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{s}`: bad decimal precision"))?;
                let scale: i8 = sc
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{s}`: bad decimal scale"))?;
                if !(1..=38).contains(&precision) || scale < 0 || scale as u8 > precision {
                    return Err(format!(
                        "`{s}`: decimal precision must be 1..=38 and 0 <= scale <= precision"
                    ));
                }
                Self::Decimal { precision, scale }
            }
        };
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type_name() {
        for name in [
            "boolean",
            "smallint",
            "int",
            "bigint",
            "double",
            "text",
            "date",
            "timestamp",
            "decimal(18,2)",
        ] {
            let t: ColumnType = name.parse().unwrap();
            assert_eq!(t.to_string(), name);
        }
    }

    #[test]
    fn rejects_unknown_and_bad_decimals() {
        // a typo names the accepted types
        assert!(
            "dat"
                .parse::<ColumnType>()
                .unwrap_err()
                .contains("expected one of")
        );
        // scale larger than precision
        assert!("decimal(4,5)".parse::<ColumnType>().is_err());
        // missing scale
        assert!("decimal(4)".parse::<ColumnType>().is_err());
    }
}
