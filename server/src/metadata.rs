//! What the server says about itself: SqlInfo, XDBC type info, table types,
//! and the (empty) key listings; [`Listing`], every metadata command of the
//! service in one place.

use std::sync::Arc;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, Nullable, ProstMessageExt, Searchable, SqlInfo,
    SqlNullOrdering, SqlSupportedCaseSensitivity, SqlSupportedTransaction, SqlSupportedUnions,
    SupportedSqlGrammar, XdbcDataType,
};
use citylake_engine::Session;
use citylake_engine::datafusion::arrow::array::{RecordBatch, StringArray};
use citylake_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use prost::Message;
use tonic::Status;

use crate::status::to_status;
use crate::wire::wire_schema;

/// GetSqlInfo: consistent with what the server really does (read-only SQL, no
/// transactions, no Substrait, double-quoted identifiers folded to lower case).
pub fn sql_info() -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "citylake");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(
        SqlInfo::SqlSupportedGrammar,
        SupportedSqlGrammar::SqlCoreGrammar as i32,
    );
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    b.append(
        SqlInfo::SqlSupportedUnions,
        SqlSupportedUnions::SqlUnion as i32 | SqlSupportedUnions::SqlUnionAll as i32,
    );
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlMaxColumnNameLength, 0i64);
    b.build().expect("static SqlInfo is valid")
}

/// GetXdbcTypeInfo: the SQL types of the lake's columns.
pub fn xdbc_type_info() -> XdbcTypeInfoData {
    let mut b = XdbcTypeInfoDataBuilder::new();
    let row =
        |name: &str, data_type: XdbcDataType, quote: bool, searchable: Searchable| XdbcTypeInfo {
            type_name: name.to_string(),
            data_type,
            column_size: None,
            literal_prefix: quote.then(|| "'".to_string()),
            literal_suffix: quote.then(|| "'".to_string()),
            create_params: None,
            nullable: Nullable::NullabilityNullable,
            case_sensitive: quote,
            searchable,
            unsigned_attribute: Some(false),
            fixed_prec_scale: false,
            auto_increment: Some(false),
            local_type_name: Some(name.to_string()),
            minimum_scale: None,
            maximum_scale: None,
            sql_data_type: data_type,
            datetime_subcode: None,
            num_prec_radix: None,
            interval_precision: None,
        };
    b.append(row(
        "BOOLEAN",
        XdbcDataType::XdbcBit,
        false,
        Searchable::Basic,
    ));
    b.append(row(
        "SMALLINT",
        XdbcDataType::XdbcSmallint,
        false,
        Searchable::Basic,
    ));
    b.append(row(
        "INTEGER",
        XdbcDataType::XdbcInteger,
        false,
        Searchable::Basic,
    ));
    b.append(row(
        "BIGINT",
        XdbcDataType::XdbcBigint,
        false,
        Searchable::Basic,
    ));
    b.append(row(
        "DOUBLE",
        XdbcDataType::XdbcDouble,
        false,
        Searchable::Basic,
    ));
    b.append(XdbcTypeInfo {
        create_params: Some(vec!["precision".into(), "scale".into()]),
        minimum_scale: Some(0),
        maximum_scale: Some(38),
        fixed_prec_scale: true,
        ..row(
            "DECIMAL",
            XdbcDataType::XdbcDecimal,
            false,
            Searchable::Basic,
        )
    });
    b.append(row(
        "VARCHAR",
        XdbcDataType::XdbcVarchar,
        true,
        Searchable::Full,
    ));
    b.append(row("DATE", XdbcDataType::XdbcDate, true, Searchable::Basic));
    b.append(row(
        "TIMESTAMP",
        XdbcDataType::XdbcTimestamp,
        true,
        Searchable::Basic,
    ));
    b.build().expect("static XDBC type info is valid")
}

/// GetTableTypes.
pub fn table_types() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "table_type",
        DataType::Utf8,
        false,
    )]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec!["TABLE", "VIEW"]))],
    )
    .expect("static batch")
}

/// GetPrimaryKeys: the lake declares no keys, so always empty.
pub fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// GetExportedKeys / GetImportedKeys / GetCrossReference: always empty.
pub fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

/// A Flight SQL metadata command: its name in the audit trail, the schema its
/// FlightInfo announces, the ticket that hands it back, and its rows for the
/// caller's session. The service's twenty GetFlightInfo/DoGet methods for
/// metadata are one line each over this.
pub enum Listing {
    Catalogs(CommandGetCatalogs),
    Schemas(CommandGetDbSchemas),
    Tables(CommandGetTables),
    TableTypes(CommandGetTableTypes),
    SqlInfo(CommandGetSqlInfo),
    XdbcTypeInfo(CommandGetXdbcTypeInfo),
    PrimaryKeys(CommandGetPrimaryKeys),
    ExportedKeys(CommandGetExportedKeys),
    ImportedKeys(CommandGetImportedKeys),
    CrossReference(CommandGetCrossReference),
}

/// What the server describes of itself, built once.
pub struct ServerInfo {
    pub sql_info: SqlInfoData,
    pub xdbc: XdbcTypeInfoData,
}

impl Default for ServerInfo {
    fn default() -> Self {
        Self {
            sql_info: sql_info(),
            xdbc: xdbc_type_info(),
        }
    }
}

impl Listing {
    /// The command's name, as the audit trail records it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Catalogs(_) => "GetCatalogs",
            Self::Schemas(_) => "GetDbSchemas",
            Self::Tables(_) => "GetTables",
            Self::TableTypes(_) => "GetTableTypes",
            Self::SqlInfo(_) => "GetSqlInfo",
            Self::XdbcTypeInfo(_) => "GetXdbcTypeInfo",
            Self::PrimaryKeys(_) => "GetPrimaryKeys",
            Self::ExportedKeys(_) => "GetExportedKeys",
            Self::ImportedKeys(_) => "GetImportedKeys",
            Self::CrossReference(_) => "GetCrossReference",
        }
    }

    /// The ticket of the FlightInfo: the command itself.
    pub fn ticket(&self) -> Vec<u8> {
        let any = match self {
            Self::Catalogs(c) => c.as_any(),
            Self::Schemas(c) => c.as_any(),
            Self::Tables(c) => c.as_any(),
            Self::TableTypes(c) => c.as_any(),
            Self::SqlInfo(c) => c.as_any(),
            Self::XdbcTypeInfo(c) => c.as_any(),
            Self::PrimaryKeys(c) => c.as_any(),
            Self::ExportedKeys(c) => c.as_any(),
            Self::ImportedKeys(c) => c.as_any(),
            Self::CrossReference(c) => c.as_any(),
        };
        any.encode_to_vec()
    }

    /// The schema of the command's rows.
    pub fn schema(&self, info: &ServerInfo) -> SchemaRef {
        match self {
            Self::Catalogs(c) => c.into_builder().schema(),
            Self::Schemas(c) => c.clone().into_builder().schema(),
            Self::Tables(c) => c.clone().into_builder().schema(),
            Self::TableTypes(_) => table_types().schema(),
            Self::SqlInfo(c) => c.clone().into_builder(&info.sql_info).schema(),
            Self::XdbcTypeInfo(c) => c.into_builder(&info.xdbc).schema(),
            Self::PrimaryKeys(_) => primary_keys_schema(),
            Self::ExportedKeys(_) | Self::ImportedKeys(_) | Self::CrossReference(_) => {
                foreign_keys_schema()
            }
        }
    }

    /// The command's rows, as `session`'s principal may see them.
    pub async fn rows(self, session: &Session, info: &ServerInfo) -> Result<RecordBatch, Status> {
        fn internal(e: impl std::fmt::Display) -> Status {
            Status::internal(e.to_string())
        }
        match self {
            Self::Catalogs(c) => {
                let mut b = c.into_builder();
                for name in session.catalog_names() {
                    b.append(name);
                }
                b.build().map_err(internal)
            }
            Self::Schemas(c) => {
                let mut b = c.into_builder();
                for (catalog, schema) in session.schemas() {
                    b.append(catalog, schema);
                }
                b.build().map_err(internal)
            }
            Self::Tables(c) => {
                let tables = session.tables().await.map_err(|e| to_status(&e))?;
                let mut b = c.into_builder();
                for t in &tables {
                    b.append(
                        &t.catalog,
                        &t.schema,
                        &t.table,
                        t.table_type,
                        &wire_schema(&t.columns),
                    )
                    .map_err(internal)?;
                }
                b.build().map_err(internal)
            }
            Self::TableTypes(_) => Ok(table_types()),
            Self::SqlInfo(c) => c.into_builder(&info.sql_info).build().map_err(internal),
            Self::XdbcTypeInfo(c) => c.into_builder(&info.xdbc).build().map_err(internal),
            Self::PrimaryKeys(_) => Ok(RecordBatch::new_empty(primary_keys_schema())),
            Self::ExportedKeys(_) | Self::ImportedKeys(_) | Self::CrossReference(_) => {
                Ok(RecordBatch::new_empty(foreign_keys_schema()))
            }
        }
    }
}
