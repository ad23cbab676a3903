//! `pg_catalog`: PostgreSQL's system catalogs, as far as clients read them to
//! list what they may query (psql's `\dt` and `\dn`, BI tools' schema
//! browsers), computed at each scan from the session's own catalog — the
//! policy's view of the lake — so a role sees in `pg_class` and
//! `pg_attribute` exactly the datasets and columns it sees in
//! `information_schema` and Flight SQL's GetTables (hidden datasets are not in
//! the session's catalog at all).
//!
//! Tables: `pg_namespace`, `pg_class`, `pg_attribute`, `pg_type`, `pg_database`,
//! `pg_am`, `pg_tables`, `pg_views`, `pg_proc` (citylake's own functions, in
//! the default schema), `pg_settings` (PostgreSQL's settings as they are
//! here), `pg_roles` (one role, the owner every object is listed with: the
//! lake's users are not listed to each other), and the catalogs that are empty
//! here (defaults, collations,
//! constraints, comments, indexes, inheritance, policies, publications,
//! extended statistics, triggers, rules, sequences, extensions, and
//! `information_schema`'s constraint and character-set tables: see
//! [`empty`], whose rewrite also answers the queries over them DataFusion
//! cannot plan, such as psql's `\d`). Functions clients call on them:
//! `pg_table_is_visible`, `pg_function_is_visible`, `pg_get_userbyid`,
//! `format_type` (with `numeric(p,s)`), `obj_description`, `col_description`,
//! `pg_encoding_to_char`, `has_table_privilege`, `current_database`,
//! `pg_get_expr`, `pg_get_function_arguments`/`_result`,
//! `pg_catalog.version()`, `current_catalog`, and per session `current_user`,
//! `session_user`, `current_schema()` (not `user`: it names a column of
//! `system.audit_log` and `system.queries`) — also under the `pg_catalog.` prefix clients write.
//! Object ids are stable hashes of the names (the same between queries and
//! sessions; a client may cache them).

mod empty;
mod format;
mod spellings;

/// The names of `pg_catalog`'s tables.
static CATALOG_TABLES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let mut tables: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    tables.extend(
        empty::EMPTY
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !empty::INFORMATION_SCHEMA_EXTRAS.contains(name)),
    );
    tables
});

/// Prepares a statement's reads of `pg_catalog` before it is checked and
/// planned: unqualified catalog names resolve to the catalog (PostgreSQL's
/// search path starts there), and reads of the catalogs that are empty here
/// are answered (see `empty.rs`).
pub fn rewrite(
    statement: &mut datafusion::sql::sqlparser::ast::Statement,
    is_aggregate: &dyn Fn(&str) -> bool,
    is_table_function: &dyn Fn(&str) -> bool,
    is_function: &dyn Fn(&str) -> bool,
) {
    spellings::rewrite(statement, is_table_function, is_function);
    empty::rewrite(statement, &CATALOG_TABLES, is_aggregate);
}

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int16Array, Int32Array, RecordBatch, StringArray,
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

/// Registers `pg_catalog` in `catalog`, read from `catalog` at each scan;
/// citylake's own functions are listed in `pg_proc` under `default_schema`.
pub fn register(catalog: &Arc<dyn CatalogProvider>, default_schema: &str) -> Result<()> {
    let schema = Arc::new(MemorySchemaProvider::new());
    let weak = Arc::downgrade(catalog);
    for kind in Kind::ALL {
        schema.register_table(
            kind.name().to_string(),
            Arc::new(PgTable {
                kind,
                catalog: weak.clone(),
                default_schema: default_schema.to_string(),
            }),
        )?;
    }
    for (name, columns) in empty::EMPTY {
        schema.register_table(
            name.to_string(),
            Arc::new(datafusion::datasource::empty::EmptyTable::new(
                empty::schema(columns),
            )),
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

/// PostgreSQL's type modifier of a column: `numeric(p, s)` is
/// `(p << 16 | s) + 4`; other types have none (-1).
fn type_modifier(t: &DataType) -> i32 {
    match t {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) if *s >= 0 => {
            ((i32::from(*p) << 16) | i32::from(*s)) + 4
        }
        DataType::Dictionary(_, v) => type_modifier(v),
        _ => -1,
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
    Tables,
    Proc,
    Views,
    Roles,
    Settings,
}

impl Kind {
    const ALL: [Kind; 11] = [
        Kind::Namespace,
        Kind::Class,
        Kind::Attribute,
        Kind::Type,
        Kind::Database,
        Kind::Am,
        Kind::Tables,
        Kind::Proc,
        Kind::Views,
        Kind::Roles,
        Kind::Settings,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "pg_namespace",
            Kind::Class => "pg_class",
            Kind::Attribute => "pg_attribute",
            Kind::Type => "pg_type",
            Kind::Database => "pg_database",
            Kind::Am => "pg_am",
            Kind::Tables => "pg_tables",
            Kind::Proc => "pg_proc",
            Kind::Views => "pg_views",
            Kind::Roles => "pg_roles",
            Kind::Settings => "pg_settings",
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
                f("relpartbound", T),
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
                f("attstorage", T),
                f("attstattarget", I16),
                f("attcompression", T),
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
                f("typdelim", T),
                f("typdefault", T),
                f("typbyval", B),
                f("typalign", T),
                f("typndims", I32),
                f("typispreferred", B),
                f("typisdefined", B),
                // (regproc: the text and binary conversion functions, by
                // name as `::regproc` reads; none of them is in `pg_proc`)
                f("typinput", T),
                f("typoutput", T),
                f("typreceive", I32),
                f("typsend", I32),
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
            Kind::Proc => vec![
                f("oid", I32),
                f("proname", T),
                f("pronamespace", I32),
                f("proowner", I32),
                f("prolang", I32),
                f("prokind", T),
                f("provolatile", T),
                f("proretset", B),
                f("pronargs", I16),
                f("prorettype", I32),
                f("proargnames", T),
            ],
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
            Kind::Views => vec![
                f("schemaname", T),
                f("viewname", T),
                f("viewowner", T),
                f("definition", T),
            ],
            Kind::Roles => vec![
                f("oid", I32),
                f("rolname", T),
                f("rolsuper", B),
                f("rolinherit", B),
                f("rolcreaterole", B),
                f("rolcreatedb", B),
                f("rolcanlogin", B),
                f("rolreplication", B),
                f("rolbypassrls", B),
                f("rolconnlimit", I32),
                f("rolpassword", T),
                f("rolvaliduntil", T),
                f("rolconfig", T),
            ],
            Kind::Settings => vec![
                f("name", T),
                f("setting", T),
                f("unit", T),
                f("category", T),
                f("short_desc", T),
                f("context", T),
                f("vartype", T),
                f("source", T),
                f("boot_val", T),
                f("reset_val", T),
                f("pending_restart", B),
            ],
        }))
    }
}

/// One catalog table, computed at each scan from the session's catalog.
#[derive(Debug)]
struct PgTable {
    kind: Kind,
    catalog: Weak<dyn CatalogProvider>,
    default_schema: String,
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
                let mut typmod = vec![];
                for (s, t, cols, _) in &tables {
                    for (i, field) in cols.fields().iter().enumerate() {
                        let (type_oid, _, type_len) = pg_type(field.data_type());
                        rel.push(Some(table_oid(s, t)));
                        name.push(Some(field.name().as_str()));
                        typ.push(Some(type_oid));
                        len.push(Some(type_len));
                        num.push(Some(i as i16 + 1));
                        notnull.push(Some(!field.is_nullable()));
                        typmod.push(Some(type_modifier(field.data_type())));
                    }
                }
                let m = rel.len();
                vec![
                    ints(rel),
                    strings(name),
                    ints(typ),
                    shorts(len),
                    shorts(num),
                    ints(typmod),
                    bools(notnull),
                    bools((0..m).map(|_| Some(false))),
                    bools((0..m).map(|_| Some(false))),
                    strings((0..m).map(|_| Some(""))),
                    strings((0..m).map(|_| Some(""))),
                    ints((0..m).map(|_| Some(0))),
                    strings((0..m).map(|_| Some("p"))),
                    shorts((0..m).map(|_| Some(-1))),
                    strings((0..m).map(|_| Some(""))),
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
                let conversions: Vec<(String, String)> = TYPES
                    .iter()
                    .map(|(_, n, _)| match n.starts_with('_') {
                        true => ("array_in".into(), "array_out".into()),
                        false => (format!("{n}in"), format!("{n}out")),
                    })
                    .collect();
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
                    strings(TYPES.iter().map(|_| Some(","))),
                    strings(TYPES.iter().map(|_| None)),
                    bools(TYPES.iter().map(|(_, _, l)| Some(*l > 0))),
                    strings(TYPES.iter().map(|_| Some("i"))),
                    ints(TYPES.iter().map(|_| Some(0))),
                    bools(TYPES.iter().map(|_| Some(false))),
                    bools(TYPES.iter().map(|_| Some(true))),
                    strings(conversions.iter().map(|(input, _)| Some(input.as_str()))),
                    strings(conversions.iter().map(|(_, output)| Some(output.as_str()))),
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
            Kind::Proc => {
                let fs = city_functions();
                let namespace = oid(&self.default_schema);
                let argnames: Vec<String> = fs
                    .iter()
                    .map(|f| format!("{{{}}}", f.arguments.join(",")))
                    .collect();
                vec![
                    ints(fs.iter().map(|f| Some(f.oid))),
                    strings(fs.iter().map(|f| Some(f.name.as_str()))),
                    ints(fs.iter().map(|_| Some(namespace))),
                    ints(fs.iter().map(|_| Some(OWNER_OID))),
                    ints(fs.iter().map(|_| Some(12))), // "internal"
                    strings(fs.iter().map(|f| Some(f.kind))),
                    strings(fs.iter().map(|_| Some("i"))),
                    bools(fs.iter().map(|_| Some(false))),
                    shorts(fs.iter().map(|f| Some(f.arguments.len() as i16))),
                    ints(fs.iter().map(|_| Some(2276))), // "any"
                    strings(argnames.iter().map(|a| Some(a.as_str()))),
                ]
            }
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
            Kind::Views => {
                let views: Vec<&Listed> = tables.iter().filter(|(_, _, _, view)| *view).collect();
                vec![
                    strings(views.iter().map(|(s, _, _, _)| Some(s.as_str()))),
                    strings(views.iter().map(|(_, t, _, _)| Some(t.as_str()))),
                    strings(views.iter().map(|_| Some(OWNER))),
                    strings(views.iter().map(|_| None)),
                ]
            }
            // the one role every object is listed with (`pg_get_userbyid`):
            // the users of the lake are not listed to each other
            Kind::Roles => vec![
                ints([Some(OWNER_OID)]),
                strings([Some(OWNER)]),
                bools([Some(false)]),
                bools([Some(true)]),
                bools([Some(false)]),
                bools([Some(false)]),
                bools([Some(false)]),
                bools([Some(false)]),
                bools([Some(false)]),
                ints([Some(-1)]),
                strings([Some("********")]),
                strings([None]),
                strings([None]),
            ],
            Kind::Settings => {
                let n = SETTINGS.len();
                let values = || strings(SETTINGS.iter().map(|(_, v)| Some(*v)));
                vec![
                    strings(SETTINGS.iter().map(|(name, _)| Some(*name))),
                    values(),
                    strings((0..n).map(|_| None)),
                    strings((0..n).map(|_| Some("Client Connection Defaults"))),
                    strings((0..n).map(|_| Some(""))),
                    strings((0..n).map(|_| Some("internal"))),
                    strings((0..n).map(|_| Some("string"))),
                    strings((0..n).map(|_| Some("default"))),
                    values(),
                    values(),
                    bools((0..n).map(|_| Some(false))),
                ]
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

/// The object id of the type PostgreSQL calls `name` (its SQL spellings
/// too), among those [`TYPES`] lists.
fn type_oid(name: &str) -> Option<i32> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    let (base, array) = match name.strip_suffix("[]") {
        Some(b) => (b.trim(), true),
        None => (name, false),
    };
    let base = match base {
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "boolean" => "bool",
        "double precision" => "float8",
        "real" => "float4",
        "character varying" => "varchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        other => other,
    };
    let wanted = if array {
        format!("_{base}")
    } else {
        base.to_string()
    };
    TYPES
        .iter()
        .find(|(_, n, _)| *n == wanted)
        .map(|(o, _, _)| *o)
}

/// The name `format_type` gives a type (SQL's spelling where it has one, as
/// PostgreSQL's `format_type` does: `integer`, `double precision`, …).
fn sql_type_name(name: &str) -> &str {
    match name {
        "bool" => "boolean",
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "varchar" => "character varying",
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "time" => "time without time zone",
        other => other,
    }
}

/// `quote_ident`: `name` as is when it is a plain lower-case identifier, else
/// in double quotes (inner quotes doubled).
fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `parse_ident`: the parts of a dotted name; unquoted parts lower-cased,
/// quoted ones as written.
fn parse_ident(name: &str) -> Vec<String> {
    let mut parts = vec![];
    let mut current = String::new();
    let mut chars = name.trim().chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c if quoted => current.push(c),
            c => current.extend(c.to_lowercase()),
        }
    }
    parts.push(current);
    parts
}

/// The version of PostgreSQL citylake answers as (`server_version`,
/// `pg_catalog.version()`): the protocol and catalogs clients may expect.
pub const SERVER_VERSION: &str = "16.6";

/// The value PostgreSQL's setting `name` (lower case) has here, as `SHOW` and
/// `current_setting()` answer it when a connection has not set its own.
pub fn server_setting(name: &str) -> Option<&'static str> {
    SETTINGS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// PostgreSQL's settings as they are here (`pg_settings`, `SHOW`,
/// `current_setting()`).
const SETTINGS: &[(&str, &str)] = &[
    ("server_version", SERVER_VERSION),
    ("server_version_num", "160006"), // SERVER_VERSION's number
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("timezone", "UTC"),
    ("intervalstyle", "postgres"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("transaction_read_only", "on"),
    ("default_transaction_read_only", "on"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("is_superuser", "off"),
    ("search_path", "\"$user\", public"),
    ("application_name", ""),
    ("extra_float_digits", "1"),
    ("max_identifier_length", "63"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("lc_messages", "C"),
    ("statement_timeout", "0"),
    ("lock_timeout", "0"),
    ("default_table_access_method", "heap"),
    ("default_tablespace", ""),
];

/// One of citylake's own functions as `pg_proc` lists it.
struct CityFunction {
    oid: i32,
    name: String,
    /// `f` function, `a` aggregate, `w` window
    kind: &'static str,
    /// the argument names of its documentation
    arguments: Vec<String>,
}

/// citylake's own functions (the city's indices and scores), sorted by name.
/// Their arguments coerce from several types, so `pg_proc` lists them with
/// their documented argument names and the pseudo-type `any`.
fn city_functions() -> &'static [CityFunction] {
    static FUNCTIONS: std::sync::LazyLock<Vec<CityFunction>> = std::sync::LazyLock::new(|| {
        let names = |doc: Option<&datafusion::logical_expr::Documentation>| {
            doc.and_then(|d| d.arguments.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
        };
        let mut out = vec![];
        for f in citylake_udfs::scalar_functions() {
            out.push((f.name().to_string(), "f", names(f.documentation())));
        }
        for f in citylake_udfs::aggregate_functions() {
            out.push((f.name().to_string(), "a", names(f.documentation())));
        }
        for f in citylake_udfs::window_functions() {
            out.push((f.name().to_string(), "w", names(f.documentation())));
        }
        out.sort();
        out.into_iter()
            .map(|(name, kind, arguments)| CityFunction {
                oid: oid(&format!("function {name}")),
                name,
                kind,
                arguments,
            })
            .collect()
    });
    &FUNCTIONS
}

/// The functions whose answer depends on the session: `current_user`,
/// `session_user` (the principal), `current_schema()` (the schema unqualified
/// names resolve in).
pub fn session_functions(user: &str, default_schema: &str) -> Vec<ScalarUDF> {
    let text = |name: &'static str, value: &str| {
        ScalarUDF::new_from_impl(PgFunction {
            name,
            aliases: vec![format!("{PG_CATALOG}.{name}")],
            signature: Signature::nullary(Volatility::Stable),
            returns: DataType::Utf8,
            value: Value::Constant(ScalarValue::Utf8(Some(value.to_string()))),
        })
    };
    let schemas = |with_catalog: bool| {
        let mut names = vec![];
        if with_catalog {
            names.push(ScalarValue::Utf8(Some(PG_CATALOG.into())));
        }
        names.push(ScalarValue::Utf8(Some(default_schema.into())));
        ScalarValue::List(ScalarValue::new_list_nullable(&names, &DataType::Utf8))
    };
    vec![
        text("current_user", user),
        text("session_user", user),
        text("current_schema", default_schema),
        ScalarUDF::new_from_impl(PgFunction {
            name: "to_regclass",
            aliases: vec![format!("{PG_CATALOG}.to_regclass")],
            signature: Signature::any(1, Volatility::Stable),
            returns: DataType::Int32,
            value: Value::RegClass(default_schema.to_string()),
        }),
        ScalarUDF::new_from_impl(PgFunction {
            name: "current_schemas",
            aliases: vec![format!("{PG_CATALOG}.current_schemas")],
            signature: Signature::any(1, Volatility::Stable),
            returns: DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            value: Value::Schemas(schemas(false), schemas(true)),
        }),
    ]
}

/// The table functions clients call on the catalog: `pg_get_keywords()`
/// (`pg_catalog.pg_get_keywords()` too: see `spellings.rs`).
pub fn table_functions() -> Vec<(
    &'static str,
    Arc<dyn datafusion::catalog::TableFunctionImpl>,
)> {
    vec![("pg_get_keywords", Arc::new(Keywords))]
}

/// `pg_get_keywords()`: the keywords of the SQL parser, listed as PostgreSQL
/// lists its own (`word`, `catcode`, `barelabel`, `catdesc`, `baredesc`);
/// `R` (reserved) are those that cannot name a column without `AS`, the rest
/// `U` (unreserved). pgjdbc's `getSQLKeywords()` (DBeaver) reads it.
#[derive(Debug)]
struct Keywords;

impl datafusion::catalog::TableFunctionImpl for Keywords {
    fn call_with_args(
        &self,
        args: datafusion::catalog::TableFunctionArgs,
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
        use datafusion::sql::sqlparser::keywords::{
            ALL_KEYWORDS, ALL_KEYWORDS_INDEX, RESERVED_FOR_COLUMN_ALIAS,
        };
        if !args.exprs().is_empty() {
            return datafusion::common::plan_err!("pg_get_keywords() takes no arguments");
        }
        let reserved: Vec<bool> = ALL_KEYWORDS_INDEX
            .iter()
            .map(|k| RESERVED_FOR_COLUMN_ALIAS.contains(k))
            .collect();
        let words: Vec<String> = ALL_KEYWORDS.iter().map(|w| w.to_lowercase()).collect();
        let code = |r: bool| if r { "R" } else { "U" };
        let describe = |r: bool| {
            if r { "reserved" } else { "unreserved" }
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("word", DataType::Utf8, false),
            Field::new("catcode", DataType::Utf8, false),
            Field::new("barelabel", DataType::Boolean, false),
            Field::new("catdesc", DataType::Utf8, false),
            Field::new("baredesc", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                strings(words.iter().map(|w| Some(w.as_str()))),
                strings(reserved.iter().map(|r| Some(code(*r)))),
                bools(reserved.iter().map(|r| Some(!r))),
                strings(reserved.iter().map(|r| Some(describe(*r)))),
                strings(reserved.iter().map(|r| {
                    Some(if *r {
                        "requires AS"
                    } else {
                        "can be bare label"
                    })
                })),
            ],
        )?;
        Ok(Arc::new(datafusion::datasource::MemTable::try_new(
            schema,
            vec![vec![batch]],
        )?))
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
    for (name, value) in [
        ("pg_function_is_visible", ScalarValue::Boolean(Some(true))),
        ("pg_type_is_visible", ScalarValue::Boolean(Some(true))),
        ("pg_collation_is_visible", ScalarValue::Boolean(Some(true))),
        ("pg_operator_is_visible", ScalarValue::Boolean(Some(true))),
        ("pg_opclass_is_visible", ScalarValue::Boolean(Some(true))),
        ("pg_get_serial_sequence", ScalarValue::Utf8(None)),
        (
            "pg_relation_is_publishable",
            ScalarValue::Boolean(Some(false)),
        ),
        ("pg_get_constraintdef", ScalarValue::Utf8(None)),
        ("pg_get_indexdef", ScalarValue::Utf8(None)),
        ("pg_get_triggerdef", ScalarValue::Utf8(None)),
        ("pg_get_statisticsobjdef_columns", ScalarValue::Utf8(None)),
        ("pg_get_viewdef", ScalarValue::Utf8(None)),
    ] {
        let returns = value.data_type();
        out.push(constant(name, returns, value));
    }
    out.push(constant(
        "has_any_column_privilege",
        Boolean,
        ScalarValue::Boolean(Some(true)),
    ));
    out.push(constant("pg_get_partkeydef", Utf8, ScalarValue::Utf8(None)));
    out.push(spellings::like_escape_udf());
    out.push(format::udf());
    let text_list = DataType::List(Arc::new(Field::new_list_field(Utf8, true)));
    for (name, returns, value) in [
        ("quote_ident", Utf8, Value::QuoteIdent),
        ("parse_ident", text_list.clone(), Value::ParseIdent),
        // (int4 in PostgreSQL; int8 here, what DataFusion's array indexes and
        // generate_series take)
        (
            "array_lower",
            DataType::Int64,
            Value::ArrayBound { upper: false },
        ),
        (
            "array_upper",
            DataType::Int64,
            Value::ArrayBound { upper: true },
        ),
        ("current_setting", Utf8, Value::Setting),
        ("to_regtype", DataType::Int32, Value::ToRegtype),
        ("citylake_udt_name", Utf8, Value::UdtName),
    ] {
        out.push(Arc::new(ScalarUDF::new_from_impl(PgFunction {
            name,
            aliases: vec![format!("{PG_CATALOG}.{name}")],
            signature: Signature::variadic_any(Volatility::Stable),
            returns,
            value,
        })));
    }
    for (name, value) in [
        ("pg_get_function_arguments", Value::FunctionArguments),
        (
            "pg_get_function_identity_arguments",
            Value::FunctionArguments,
        ),
        ("pg_get_function_result", Value::FunctionResult),
    ] {
        out.push(Arc::new(ScalarUDF::new_from_impl(PgFunction {
            name,
            aliases: vec![format!("{PG_CATALOG}.{name}")],
            signature: Signature::variadic_any(Volatility::Stable),
            returns: Utf8,
            value,
        })));
    }
    // the version string PostgreSQL clients parse ("PostgreSQL 16.6 …"); an
    // unqualified version() stays DataFusion's
    out.push(Arc::new(ScalarUDF::new_from_impl(PgFunction {
        name: "pg_catalog.version",
        aliases: vec![],
        signature: Signature::nullary(Volatility::Stable),
        returns: Utf8,
        value: Value::Constant(ScalarValue::Utf8(Some(format!(
            "PostgreSQL {SERVER_VERSION} (citylake {}, Apache DataFusion {})",
            env!("CARGO_PKG_VERSION"),
            datafusion::DATAFUSION_VERSION
        )))),
    })));
    out.push(Arc::new(ScalarUDF::new_from_impl(PgFunction {
        name: "current_database",
        aliases: vec![
            format!("{PG_CATALOG}.current_database"),
            "current_catalog".into(),
        ],
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
    /// `pg_get_function_arguments(oid)`: a city function's argument names
    FunctionArguments,
    /// `pg_get_function_result(oid)`
    FunctionResult,
    /// `current_schemas(implicit)`: the search path without and with
    /// `pg_catalog`
    Schemas(ScalarValue, ScalarValue),
    /// `quote_ident(text)`: quoted unless a plain lower-case identifier
    QuoteIdent,
    /// `parse_ident(text)`: the dotted name's parts, unquoted
    ParseIdent,
    /// `array_lower(array, dim)` / `array_upper(array, dim)`
    ArrayBound {
        upper: bool,
    },
    /// `current_setting(name [, missing_ok])`: [`server_setting`]
    Setting,
    /// `to_regtype(name)`: the type's object id, `NULL` for an unknown type
    ToRegtype,
    /// `to_regclass(name)`: the object id a relation of that name has (its
    /// catalog tables and unqualified names in `pg_catalog` first, then the
    /// default schema); whether it exists is not looked up
    RegClass(String),
    /// `format_type(oid, typmod)`: the type's name
    FormatType,
    /// `citylake_udt_name(data_type)`: the name of the PostgreSQL type a
    /// column of that Arrow type (as `information_schema.columns` spells it)
    /// is shown as (`information_schema.columns.udt_name`)
    UdtName,
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
            Value::Schemas(without, with) => Ok(ColumnarValue::Scalar(
                match args.args.first() {
                    Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true)))) => with,
                    _ => without,
                }
                .clone(),
            )),
            Value::QuoteIdent
            | Value::ParseIdent
            | Value::Setting
            | Value::ToRegtype
            | Value::UdtName
            | Value::RegClass(_) => {
                // one text argument (a NULL of the result's type without it)
                let Some(first) = args.args.first() else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::try_from(&self.returns)?));
                };
                let texts = datafusion::arrow::compute::cast(
                    &first.to_array(args.number_rows)?,
                    &DataType::Utf8,
                )?;
                let texts = datafusion::arrow::array::AsArray::as_string::<i32>(&texts);
                match &self.value {
                    Value::RegClass(default_schema) => {
                        let out: Int32Array = texts
                            .iter()
                            .map(|t| {
                                let t = t?;
                                // an object id already
                                if let Ok(n) = t.trim().parse::<i32>() {
                                    return Some(n);
                                }
                                let parts = parse_ident(t);
                                Some(match parts.as_slice() {
                                    [table]
                                        if Kind::ALL.iter().any(|k| k.name() == table)
                                            || empty::EMPTY.iter().any(|(n, _)| n == table) =>
                                    {
                                        oid(&format!("{PG_CATALOG}.{table}"))
                                    }
                                    [table] => oid(&format!("{default_schema}.{table}")),
                                    [.., schema, table] => oid(&format!("{schema}.{table}")),
                                    [] => return None,
                                })
                            })
                            .collect();
                        Ok(ColumnarValue::Array(Arc::new(out)))
                    }
                    Value::ToRegtype => {
                        let out: Int32Array = texts
                            .iter()
                            .map(|t| {
                                let t = t?;
                                t.trim().parse::<i32>().ok().or_else(|| type_oid(t))
                            })
                            .collect();
                        Ok(ColumnarValue::Array(Arc::new(out)))
                    }
                    Value::UdtName => {
                        let out: StringArray = texts
                            .iter()
                            .map(|t| {
                                let t: DataType = t?.parse().ok()?;
                                Some(pg_type(&t).1)
                            })
                            .collect();
                        Ok(ColumnarValue::Array(Arc::new(out)))
                    }
                    Value::QuoteIdent => {
                        let out: StringArray = texts.iter().map(|t| t.map(quote_ident)).collect();
                        Ok(ColumnarValue::Array(Arc::new(out)))
                    }
                    Value::Setting => {
                        let missing_ok = matches!(
                            args.args.get(1),
                            Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
                        );
                        let mut out = Vec::with_capacity(texts.len());
                        for t in texts.iter() {
                            out.push(match t {
                                None => None,
                                Some(name) => match server_setting(&name.to_lowercase()) {
                                    Some(v) => Some(v),
                                    None if missing_ok => None,
                                    None => {
                                        return datafusion::common::plan_err!(
                                            "unrecognized configuration parameter \"{name}\""
                                        );
                                    }
                                },
                            });
                        }
                        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
                    }
                    _ => {
                        let mut builder = datafusion::arrow::array::ListBuilder::new(
                            datafusion::arrow::array::StringBuilder::new(),
                        );
                        for t in texts.iter() {
                            match t {
                                Some(t) => {
                                    for part in parse_ident(t) {
                                        builder.values().append_value(part);
                                    }
                                    builder.append(true);
                                }
                                None => builder.append(false),
                            }
                        }
                        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
                    }
                }
            }
            Value::ArrayBound { upper } => {
                let (Some(array), Some(dim)) = (args.args.first(), args.args.get(1)) else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Int64(None)));
                };
                let arrays = array.to_array(args.number_rows)?;
                let dims = datafusion::arrow::compute::cast(
                    &dim.to_array(args.number_rows)?,
                    &DataType::Int64,
                )?;
                let dims = datafusion::arrow::array::AsArray::as_primitive::<
                    datafusion::arrow::datatypes::Int64Type,
                >(&dims);
                let lengths: Vec<Option<usize>> = match arrays.data_type() {
                    DataType::List(_) => {
                        let l = datafusion::arrow::array::AsArray::as_list::<i32>(&arrays);
                        (0..l.len())
                            .map(|i| l.is_valid(i).then(|| l.value_length(i) as usize))
                            .collect()
                    }
                    DataType::LargeList(_) => {
                        let l = datafusion::arrow::array::AsArray::as_list::<i64>(&arrays);
                        (0..l.len())
                            .map(|i| l.is_valid(i).then(|| l.value_length(i) as usize))
                            .collect()
                    }
                    _ => vec![None; arrays.len()],
                };
                let out: datafusion::arrow::array::Int64Array = lengths
                    .iter()
                    .enumerate()
                    .map(
                        |(i, len)| match (len, dims.is_valid(i).then(|| dims.value(i))) {
                            (Some(n), Some(1)) if *n > 0 => {
                                Some(if *upper { *n as i64 } else { 1 })
                            }
                            _ => None,
                        },
                    )
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
            Value::FunctionArguments | Value::FunctionResult => {
                let Some(first) = args.args.first() else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
                };
                let oids = first.to_array(args.number_rows)?;
                let oids = datafusion::arrow::compute::cast(&oids, &DataType::Int64)?;
                let oids = datafusion::arrow::array::AsArray::as_primitive::<
                    datafusion::arrow::datatypes::Int64Type,
                >(&oids);
                let functions = city_functions();
                let texts: StringArray = oids
                    .iter()
                    .map(|o| {
                        let f = functions.iter().find(|f| Some(i64::from(f.oid)) == o)?;
                        Some(match self.value {
                            Value::FunctionArguments => f.arguments.join(", "),
                            _ => "any".to_string(),
                        })
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(texts)))
            }
            Value::FormatType => {
                let Some(first) = args.args.first() else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
                };
                let oids = first.to_array(args.number_rows)?;
                let modifiers = match args.args.get(1) {
                    Some(m) => Some(datafusion::arrow::compute::cast(
                        &m.to_array(args.number_rows)?,
                        &DataType::Int64,
                    )?),
                    None => None,
                };
                let modifiers = modifiers.as_ref().map(|m| {
                    datafusion::arrow::array::AsArray::as_primitive::<
                        datafusion::arrow::datatypes::Int64Type,
                    >(m)
                });
                let oids = datafusion::arrow::compute::cast(&oids, &DataType::Int64)?;
                let oids = datafusion::arrow::array::AsArray::as_primitive::<
                    datafusion::arrow::datatypes::Int64Type,
                >(&oids);
                let names: StringArray = oids
                    .iter()
                    .enumerate()
                    .map(|(row, o)| {
                        let modifier = modifiers
                            .filter(|m| m.is_valid(row))
                            .map_or(-1, |m| m.value(row));
                        o.map(|o| {
                            if o == 1700 && modifier >= 4 {
                                let m = modifier - 4;
                                return format!("numeric({},{})", (m >> 16) & 0xffff, m & 0xffff);
                            }
                            TYPES.iter().find(|(t, _, _)| i64::from(*t) == o).map_or(
                                "???".to_string(),
                                |(_, n, _)| match n.strip_prefix('_') {
                                    Some(e) => format!("{}[]", sql_type_name(e)),
                                    None => sql_type_name(n).to_string(),
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
