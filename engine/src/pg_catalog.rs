//! `pg_catalog`: PostgreSQL's system catalogs, as far as clients read them to
//! list what they may query (psql's `\dt` and `\dn`, BI tools' schema
//! browsers), computed at each scan from the session's own catalog — the
//! policy's view of the lake — so a role sees in `pg_class` and
//! `pg_attribute` exactly the datasets and columns it sees in
//! `information_schema` and Flight SQL's GetTables (hidden datasets are not in
//! the session's catalog at all).
//!
//! Tables: `pg_namespace`, `pg_class`, `pg_attribute`, `pg_type`, `pg_database`,
//! `pg_am`, `pg_tables`, and empty `pg_description`, `pg_index`,
//! `pg_constraint`, `pg_attrdef`, `pg_collation`, `pg_inherits` (the lake has
//! no comments, indexes, constraints, defaults, collations or inheritance). Functions clients call on them:
//! `pg_table_is_visible`, `pg_get_userbyid`, `format_type`,
//! `obj_description`, `col_description`, `pg_encoding_to_char`,
//! `has_table_privilege`, `current_database`, `pg_get_expr` — also under the
//! `pg_catalog.` prefix clients write. Object ids are stable hashes of the
//! names (the same between queries and sessions; a client may cache them).

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int16Array, Int32Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;

/// The schema's name.
pub const PG_CATALOG: &str = "pg_catalog";
/// The database clients see (`current_database()`, `pg_database`).
pub const DATABASE: &str = "citylake";
/// The owner every object is listed with.
const OWNER: &str = "citylake";
const OWNER_OID: i32 = 10;
const DATABASE_OID: i32 = 16384;

/// Registers `pg_catalog` in `catalog`, read from `catalog` at each scan.
pub fn register(catalog: &Arc<dyn CatalogProvider>) -> Result<()> {
    let schema = Arc::new(MemorySchemaProvider::new());
    let weak = Arc::downgrade(catalog);
    for kind in Kind::ALL {
        schema.register_table(
            kind.name().to_string(),
            Arc::new(PgTable {
                kind,
                catalog: weak.clone(),
            }),
        )?;
    }
    catalog.register_schema(PG_CATALOG, schema)?;
    Ok(())
}

/// A stable object id for `name` (≥ 16385, below 2³¹).
fn oid(name: &str) -> i32 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    16385 + (h.finish() % (i32::MAX as u64 - 16385)) as i32
}

/// The Postgres type (oid, name, length) a column of this type is shown as.
fn pg_type(t: &DataType) -> (i32, &'static str, i16) {
    match t {
        DataType::Boolean => (16, "bool", 1),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => (21, "int2", 2),
        DataType::Int32 | DataType::UInt16 => (23, "int4", 4),
        DataType::Int64 | DataType::UInt32 => (20, "int8", 8),
        DataType::Float16 | DataType::Float32 => (700, "float4", 4),
        DataType::Float64 => (701, "float8", 8),
        DataType::Decimal128(..) | DataType::Decimal256(..) | DataType::UInt64 => {
            (1700, "numeric", -1)
        }
        DataType::Date32 | DataType::Date64 => (1082, "date", 4),
        DataType::Timestamp(_, None) => (1114, "timestamp", 8),
        DataType::Timestamp(_, Some(_)) => (1184, "timestamptz", 8),
        DataType::Time32(_) | DataType::Time64(_) => (1083, "time", 8),
        DataType::Interval(_) | DataType::Duration(_) => (1186, "interval", 16),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => (17, "bytea", -1),
        DataType::Dictionary(_, v) => pg_type(v),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            match pg_type(f.data_type()).0 {
                16 => (1000, "_bool", -1),
                21 => (1005, "_int2", -1),
                23 => (1007, "_int4", -1),
                20 => (1016, "_int8", -1),
                701 => (1022, "_float8", -1),
                1700 => (1231, "_numeric", -1),
                _ => (1009, "_text", -1),
            }
        }
        _ => (25, "text", -1),
    }
}

/// The types `pg_type` lists (every one [`pg_type`] can answer).
const TYPES: [(i32, &str, i16); 22] = [
    (16, "bool", 1),
    (17, "bytea", -1),
    (20, "int8", 8),
    (21, "int2", 2),
    (23, "int4", 4),
    (25, "text", -1),
    (700, "float4", 4),
    (701, "float8", 8),
    (1082, "date", 4),
    (1083, "time", 8),
    (1114, "timestamp", 8),
    (1184, "timestamptz", 8),
    (1186, "interval", 16),
    (1700, "numeric", -1),
    (1043, "varchar", -1),
    (19, "name", 64),
    (1000, "_bool", -1),
    (1005, "_int2", -1),
    (1007, "_int4", -1),
    (1016, "_int8", -1),
    (1022, "_float8", -1),
    (1009, "_text", -1),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Namespace,
    Class,
    Attribute,
    Type,
    Database,
    Am,
    Description,
    Index,
    Constraint,
    Tables,
    AttrDef,
    Collation,
    Inherits,
}

impl Kind {
    const ALL: [Kind; 13] = [
        Kind::Namespace,
        Kind::Class,
        Kind::Attribute,
        Kind::Type,
        Kind::Database,
        Kind::Am,
        Kind::Description,
        Kind::Index,
        Kind::Constraint,
        Kind::Tables,
        Kind::AttrDef,
        Kind::Collation,
        Kind::Inherits,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "pg_namespace",
            Kind::Class => "pg_class",
            Kind::Attribute => "pg_attribute",
            Kind::Type => "pg_type",
            Kind::Database => "pg_database",
            Kind::Am => "pg_am",
            Kind::Description => "pg_description",
            Kind::Index => "pg_index",
            Kind::Constraint => "pg_constraint",
            Kind::Tables => "pg_tables",
            Kind::AttrDef => "pg_attrdef",
            Kind::Collation => "pg_collation",
            Kind::Inherits => "pg_inherits",
        }
    }

    fn schema(self) -> SchemaRef {
        use DataType::{Boolean as B, Int16 as I16, Int32 as I32, Utf8 as T};
        let f = |name: &str, t: DataType| Field::new(name, t, true);
        Arc::new(Schema::new(match self {
            Kind::Namespace => vec![
                f("oid", I32),
                f("nspname", T),
                f("nspowner", I32),
                f("nspacl", T),
            ],
            Kind::Class => vec![
                f("oid", I32),
                f("relname", T),
                f("relnamespace", I32),
                f("reltype", I32),
                f("relowner", I32),
                f("relam", I32),
                f("relkind", T),
                f("relpersistence", T),
                f("relnatts", I16),
                f("relchecks", I16),
                f("relhasindex", B),
                f("relhasrules", B),
                f("relhastriggers", B),
                f("relrowsecurity", B),
                f("relforcerowsecurity", B),
                f("relispartition", B),
                f("reltoastrelid", I32),
                f("reltablespace", I32),
                f("reloftype", I32),
                f("relreplident", T),
                f("reloptions", T),
                f("relacl", T),
            ],
            Kind::Attribute => vec![
                f("attrelid", I32),
                f("attname", T),
                f("atttypid", I32),
                f("attlen", I16),
                f("attnum", I16),
                f("atttypmod", I32),
                f("attnotnull", B),
                f("atthasdef", B),
                f("attisdropped", B),
                f("attidentity", T),
                f("attgenerated", T),
                f("attcollation", I32),
            ],
            Kind::Type => vec![
                f("oid", I32),
                f("typname", T),
                f("typnamespace", I32),
                f("typowner", I32),
                f("typlen", I16),
                f("typtype", T),
                f("typcategory", T),
                f("typelem", I32),
                f("typarray", I32),
                f("typbasetype", I32),
                f("typtypmod", I32),
                f("typnotnull", B),
                f("typrelid", I32),
                f("typcollation", I32),
            ],
            Kind::Database => vec![
                f("oid", I32),
                f("datname", T),
                f("datdba", I32),
                f("encoding", I32),
                f("datallowconn", B),
                f("datistemplate", B),
            ],
            Kind::Am => vec![f("oid", I32), f("amname", T), f("amtype", T)],
            Kind::Description => vec![
                f("objoid", I32),
                f("classoid", I32),
                f("objsubid", I32),
                f("description", T),
            ],
            Kind::Index => vec![
                f("indexrelid", I32),
                f("indrelid", I32),
                f("indisprimary", B),
                f("indisunique", B),
            ],
            Kind::Constraint => vec![
                f("oid", I32),
                f("conname", T),
                f("connamespace", I32),
                f("contype", T),
                f("conrelid", I32),
            ],
            Kind::AttrDef => vec![
                f("oid", I32),
                f("adrelid", I32),
                f("adnum", I16),
                f("adbin", T),
            ],
            Kind::Collation => vec![f("oid", I32), f("collname", T), f("collnamespace", I32)],
            Kind::Inherits => vec![f("inhrelid", I32), f("inhparent", I32), f("inhseqno", I32)],
            Kind::Tables => vec![
                f("schemaname", T),
                f("tablename", T),
                f("tableowner", T),
                f("tablespace", T),
                f("hasindexes", B),
                f("hasrules", B),
                f("hastriggers", B),
                f("rowsecurity", B),
            ],
        }))
    }
}

/// One catalog table, computed at each scan from the session's catalog.
#[derive(Debug)]
struct PgTable {
    kind: Kind,
    catalog: Weak<dyn CatalogProvider>,
}

/// A table as listed: schema, name, columns, whether a view.
type Listed = (String, String, SchemaRef, bool);

/// The schemas and tables a session's catalog lists: `(schema, table, its
/// columns, whether a view)`; `pg_catalog` and `information_schema` are
/// listed as schemas only.
async fn listing(catalog: &dyn CatalogProvider) -> Result<(Vec<String>, Vec<Listed>)> {
    let mut schemas = catalog.schema_names();
    schemas.sort();
    let mut tables = vec![];
    for schema_name in &schemas {
        if schema_name == PG_CATALOG || schema_name == "information_schema" {
            continue;
        }
        let Some(schema) = catalog.schema(schema_name) else {
            continue;
        };
        let mut names = schema.table_names();
        names.sort();
        for name in names {
            if let Some(table) = schema.table(&name).await? {
                let view = table.table_type() == datafusion::datasource::TableType::View;
                tables.push((schema_name.clone(), name, table.schema(), view));
            }
        }
    }
    Ok((schemas, tables))
}

fn strings<'a>(v: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(v.into_iter().collect::<StringArray>())
}
fn ints(v: impl IntoIterator<Item = Option<i32>>) -> ArrayRef {
    Arc::new(v.into_iter().collect::<Int32Array>())
}
fn shorts(v: impl IntoIterator<Item = Option<i16>>) -> ArrayRef {
    Arc::new(v.into_iter().collect::<Int16Array>())
}
fn bools(v: impl IntoIterator<Item = Option<bool>>) -> ArrayRef {
    Arc::new(v.into_iter().collect::<BooleanArray>())
}

impl PgTable {
    async fn rows(&self) -> Result<RecordBatch> {
        let schema = self.kind.schema();
        let Some(catalog) = self.catalog.upgrade() else {
            return Ok(RecordBatch::new_empty(schema));
        };
        let (schemas, tables) = listing(catalog.as_ref()).await?;
        let n = tables.len();
        let table_oid = |s: &str, t: &str| oid(&format!("{s}.{t}"));
        let columns: Vec<ArrayRef> = match self.kind {
            Kind::Namespace => vec![
                ints(schemas.iter().map(|s| Some(oid(s)))),
                strings(schemas.iter().map(|s| Some(s.as_str()))),
                ints(schemas.iter().map(|_| Some(OWNER_OID))),
                strings(schemas.iter().map(|_| None)),
            ],
            Kind::Class => {
                let each = |f: &dyn Fn(&Listed) -> Option<i32>| ints(tables.iter().map(f));
                let no = || bools((0..n).map(|_| Some(false)));
                vec![
                    each(&|(s, t, _, _)| Some(table_oid(s, t))),
                    strings(tables.iter().map(|(_, t, _, _)| Some(t.as_str()))),
                    each(&|(s, _, _, _)| Some(oid(s))),
                    each(&|_| Some(0)),
                    each(&|_| Some(OWNER_OID)),
                    each(&|(_, _, _, view)| Some(if *view { 0 } else { 2 })),
                    strings(
                        tables
                            .iter()
                            .map(|(_, _, _, view)| Some(if *view { "v" } else { "r" })),
                    ),
                    strings(tables.iter().map(|_| Some("p"))),
                    shorts(
                        tables
                            .iter()
                            .map(|(_, _, c, _)| Some(c.fields().len() as i16)),
                    ),
                    shorts(tables.iter().map(|_| Some(0))),
                    no(),
                    no(),
                    no(),
                    no(),
                    no(),
                    no(),
                    each(&|_| Some(0)),
                    each(&|_| Some(0)),
                    each(&|_| Some(0)),
                    strings(tables.iter().map(|_| Some("d"))),
                    strings(tables.iter().map(|_| None)),
                    strings(tables.iter().map(|_| None)),
                ]
            }
            Kind::Attribute => {
                let mut rel = vec![];
                let mut name = vec![];
                let mut typ = vec![];
                let mut len = vec![];
                let mut num = vec![];
                let mut notnull = vec![];
                for (s, t, cols, _) in &tables {
                    for (i, field) in cols.fields().iter().enumerate() {
                        let (type_oid, _, type_len) = pg_type(field.data_type());
                        rel.push(Some(table_oid(s, t)));
                        name.push(Some(field.name().as_str()));
                        typ.push(Some(type_oid));
                        len.push(Some(type_len));
                        num.push(Some(i as i16 + 1));
                        notnull.push(Some(!field.is_nullable()));
                    }
                }
                let m = rel.len();
                vec![
                    ints(rel),
                    strings(name),
                    ints(typ),
                    shorts(len),
                    shorts(num),
                    ints((0..m).map(|_| Some(-1))),
                    bools(notnull),
                    bools((0..m).map(|_| Some(false))),
                    bools((0..m).map(|_| Some(false))),
                    strings((0..m).map(|_| Some(""))),
                    strings((0..m).map(|_| Some(""))),
                    ints((0..m).map(|_| Some(0))),
                ]
            }
            Kind::Type => {
                let array_of = |oid: i32| {
                    TYPES
                        .iter()
                        .find(|(_, name, _)| {
                            TYPES
                                .iter()
                                .any(|(o, n, _)| *o == oid && *name == format!("_{n}"))
                        })
                        .map_or(0, |(o, _, _)| *o)
                };
                let element_of = |name: &str| {
                    name.strip_prefix('_')
                        .and_then(|e| TYPES.iter().find(|(_, n, _)| *n == e))
                        .map_or(0, |(o, _, _)| *o)
                };
                let catalog_oid = oid(PG_CATALOG);
                vec![
                    ints(TYPES.iter().map(|(o, _, _)| Some(*o))),
                    strings(TYPES.iter().map(|(_, n, _)| Some(*n))),
                    ints(TYPES.iter().map(|_| Some(catalog_oid))),
                    ints(TYPES.iter().map(|_| Some(OWNER_OID))),
                    shorts(TYPES.iter().map(|(_, _, l)| Some(*l))),
                    strings(TYPES.iter().map(|_| Some("b"))),
                    strings(TYPES.iter().map(|(_, n, _)| {
                        Some(match *n {
                            "bool" => "B",
                            "int2" | "int4" | "int8" | "float4" | "float8" | "numeric" => "N",
                            "date" | "time" | "timestamp" | "timestamptz" => "D",
                            "interval" => "T",
                            n if n.starts_with('_') => "A",
                            _ => "S",
                        })
                    })),
                    ints(TYPES.iter().map(|(_, n, _)| Some(element_of(n)))),
                    ints(TYPES.iter().map(|(o, _, _)| Some(array_of(*o)))),
                    ints(TYPES.iter().map(|_| Some(0))),
                    ints(TYPES.iter().map(|_| Some(-1))),
                    bools(TYPES.iter().map(|_| Some(false))),
                    ints(TYPES.iter().map(|_| Some(0))),
                    ints(TYPES.iter().map(|_| Some(0))),
                ]
            }
            Kind::Database => vec![
                ints([Some(DATABASE_OID)]),
                strings([Some(DATABASE)]),
                ints([Some(OWNER_OID)]),
                ints([Some(6)]), // UTF8
                bools([Some(true)]),
                bools([Some(false)]),
            ],
            Kind::Am => vec![
                ints([Some(2)]),
                strings([Some("heap")]),
                strings([Some("t")]),
            ],
            Kind::Tables => vec![
                strings(tables.iter().map(|(s, _, _, _)| Some(s.as_str()))),
                strings(tables.iter().map(|(_, t, _, _)| Some(t.as_str()))),
                strings(tables.iter().map(|_| Some(OWNER))),
                strings(tables.iter().map(|_| None)),
                bools(tables.iter().map(|_| Some(false))),
                bools(tables.iter().map(|_| Some(false))),
                bools(tables.iter().map(|_| Some(false))),
                bools(tables.iter().map(|_| Some(false))),
            ],
            Kind::Description
            | Kind::Index
            | Kind::Constraint
            | Kind::AttrDef
            | Kind::Collation
            | Kind::Inherits => {
                return Ok(RecordBatch::new_empty(schema));
            }
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for PgTable {
    fn schema(&self) -> SchemaRef {
        self.kind.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.rows().await?;
        crate::snapshot::scan_of(vec![batch], self.kind.schema(), projection)
    }
}

/// The functions clients call on the catalog (see the module documentation),
/// made once.
pub fn functions() -> Vec<Arc<ScalarUDF>> {
    static FUNCTIONS: std::sync::LazyLock<Vec<Arc<ScalarUDF>>> =
        std::sync::LazyLock::new(make_functions);
    FUNCTIONS.clone()
}

fn make_functions() -> Vec<Arc<ScalarUDF>> {
    use DataType::{Boolean, Utf8};
    let constant = |name: &'static str, returns: DataType, value: ScalarValue| {
        Arc::new(ScalarUDF::new_from_impl(PgFunction {
            name,
            aliases: vec![format!("{PG_CATALOG}.{name}")],
            signature: Signature::variadic_any(Volatility::Stable),
            returns,
            value: Value::Constant(value),
        }))
    };
    let mut out = vec![
        constant(
            "pg_table_is_visible",
            Boolean,
            ScalarValue::Boolean(Some(true)),
        ),
        constant(
            "pg_get_userbyid",
            Utf8,
            ScalarValue::Utf8(Some(OWNER.into())),
        ),
        constant("obj_description", Utf8, ScalarValue::Utf8(None)),
        constant("col_description", Utf8, ScalarValue::Utf8(None)),
        constant("pg_get_expr", Utf8, ScalarValue::Utf8(None)),
        constant(
            "pg_encoding_to_char",
            Utf8,
            ScalarValue::Utf8(Some("UTF8".into())),
        ),
        constant(
            "has_table_privilege",
            Boolean,
            ScalarValue::Boolean(Some(true)),
        ),
        constant(
            "has_schema_privilege",
            Boolean,
            ScalarValue::Boolean(Some(true)),
        ),
    ];
    out.push(Arc::new(ScalarUDF::new_from_impl(PgFunction {
        name: "current_database",
        aliases: vec![format!("{PG_CATALOG}.current_database")],
        signature: Signature::nullary(Volatility::Stable),
        returns: Utf8,
        value: Value::Constant(ScalarValue::Utf8(Some(DATABASE.into()))),
    })));
    out.push(Arc::new(ScalarUDF::new_from_impl(PgFunction {
        name: "format_type",
        aliases: vec![format!("{PG_CATALOG}.format_type")],
        signature: Signature::variadic_any(Volatility::Immutable),
        returns: Utf8,
        value: Value::FormatType,
    })));
    out
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum Value {
    Constant(ScalarValue),
    /// `format_type(oid, typmod)`: the type's name
    FormatType,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgFunction {
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
    returns: DataType,
    value: Value,
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &self.value {
            Value::Constant(v) => Ok(ColumnarValue::Scalar(v.clone())),
            Value::FormatType => {
                let Some(first) = args.args.first() else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
                };
                let oids = first.to_array(args.number_rows)?;
                let oids = datafusion::arrow::compute::cast(&oids, &DataType::Int64)?;
                let oids = datafusion::arrow::array::AsArray::as_primitive::<
                    datafusion::arrow::datatypes::Int64Type,
                >(&oids);
                let names: StringArray = oids
                    .iter()
                    .map(|o| {
                        o.map(|o| {
                            TYPES.iter().find(|(t, _, _)| i64::from(*t) == o).map_or(
                                "???".to_string(),
                                |(_, n, _)| match n.strip_prefix('_') {
                                    Some(e) => format!("{e}[]"),
                                    None => n.to_string(),
                                },
                            )
                        })
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(names)))
            }
        }
    }
}
