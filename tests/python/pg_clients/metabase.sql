-- Metabase PostgreSQL driver -> PostgreSQL server: connection check, start-up and sync
--
-- Client version: Metabase master as of the stored src/metabase/driver/postgres.clj (commit 008fd667,
-- 2025 - it has the :transforms/table and :database-routing features and the describe-fields /
-- describe-fks / get-tables-sql implementations below), i.e. roughly v0.56-v0.57. Its
-- get-tables-sql matches, byte for byte, a third-party server log of Metabase v0.55.1
-- (datafusion-contrib/datafusion-postgres issue 158). JDBC driver: pgjdbc 42.7.7 behaviour
-- (42.7.6+ adds 'select current_catalog', 42.7.8+ binds the metadata LIKE/= patterns as $n
-- parameters instead of inlining them - same text once the values are substituted).
-- The application name in statement 2 is an example (Metabase sends 'Metabase v<version> [<uuid>]').
--
-- Source files read (repository + path):
--   metabase/metabase src/metabase/driver/postgres.clj (commit 008fd667) - get-tables-sql,
--       describe-syncable-tables, describe-fields-sql, describe-fks-sql, describe-indexes-sql,
--       enum-types, db-default-timezone, current-user-table-privileges, set-timezone-sql
--   metabase/metabase src/metabase/driver/sql_jdbc/connection.clj (commit 003c3790) - c3p0 pool
--       properties (testConnectionOnCheckout true), can-connect-with-spec? (SELECT 1)
--   metabase/metabase src/metabase/driver/sql_jdbc/execute.clj (commit 0041072d) -
--       set-default-connection-options!, set-best-transaction-level!
--   metabase/metabase src/metabase/driver/sql_jdbc/sync/describe_database.clj (commit 00f84ab8) -
--       all-schemas (DatabaseMetaData.getSchemas), have-select-privilege-fn
--   metabase/metabase src/metabase/driver/sql_jdbc/sync/describe_table.clj (commit 00c37c66) -
--       describe-fields, describe-fks, describe-nested-field-columns (getColumns + getPrimaryKeys)
--   metabase/metabase src/metabase/sync/sync_metadata.clj, sync/sync_metadata/fields.clj,
--       sync/sync_metadata/sync_table_privileges.clj - order of the sync steps
--   pgjdbc/pgjdbc @REL42.7.7 core/v3/ConnectionFactoryImpl.java (runInitialQueries),
--       jdbc/PgConnection.java (getTransactionIsolation, setTransactionIsolation, getCatalog,
--       isValid, setReadOnly), jdbc/PgDatabaseMetaData.java (getSchemas, getColumns, getPrimaryKeys)
--   HoneySQL rendering ({:dialect :ansi} -> double-quoted identifiers) cross-checked against
--   third-party captures: datafusion-postgres issue 158 (v0.55.1) and a Postgres 16 log of
--   Metabase v0.62 sync found in the code corpus.
--
-- Protocol: pgjdbc extended protocol throughout. HoneySQL '?' parameters ($n on the wire) are
-- written here as literals: get-tables binds 0, '^pg_', 'information_schema' and the schema names,
-- describe-fields / describe-fks bind the schema and table names. Everything inside [:inline ..]
-- or [:raw ..] is literal text in the SQL itself.
--
-- NOT LISTED AS STATEMENTS: c3p0 is configured with testConnectionOnCheckout, so EVERY pool
-- checkout first runs Connection.isValid(), which pgjdbc implements as a simple Query message with
-- an EMPTY string (the server must answer EmptyQueryResponse). pgjdbc also strips a trailing
-- semicolon from statement text before sending (see 'show timezone').
--
-- Browsing in the Metabase UI (data reference, question builder) reads Metabase's own application
-- database. The warehouse is only asked during SYNC (on 'Add database', hourly, or 'Sync database
-- schema now'), so section (b) is the sync. Database 'citylake' is assumed to hold schemas public
-- and traffic, with tables only in traffic (traffic.segment_speed). Left out: the analyze /
-- fingerprint / field-values phase (it reads table DATA, e.g. SELECT ... FROM "traffic".
-- "segment_speed" LIMIT 10000), the JSON-sample query (only for json/jsonb columns), index sync
-- (the :index-info feature is switched off in postgres.clj) and SET ROLE (only with impersonation).
--
-- Syntax check: every statement in this file was executed without error (psql, simple protocol)
-- against a scratch PostgreSQL 15.18 server holding citylake.traffic.segment_speed.

-- ======================================================================
-- (a) 'ADD DATABASE' CONNECTION CHECK (unpooled connection)
-- ======================================================================

-- VARIANT - only pgjdbc 42.7.5 (bundled by Metabase v0.54/v0.55, seen in the v0.55.1 log): its
-- runInitialQueries sends this for server >= 12. pgjdbc 42.7.6+ sends nothing for extra_float_digits
SET extra_float_digits = 2;

-- 'Add database' -> driver/can-connect? on an UNPOOLED connection. pgjdbc runInitialQueries sends the
-- ApplicationName connection property (metabase.db.spec: config/mb-version-and-process-identifier)
SET application_name = 'Metabase v0.57.0 [0d7f2c1e-5b3a-4f8e-9c6d-2a1b3c4d5e6f]';

-- sql-jdbc.conn/can-connect-with-spec? -> (jdbc/query spec ["SELECT 1"])
SELECT 1;

-- ======================================================================
-- (a) START-UP OF THE POOLED CONNECTION USED BY SYNC
-- ======================================================================

-- First pooled (c3p0) connection of the sync - pgjdbc runInitialQueries again on the new socket
SET application_name = 'Metabase v0.57.0 [0d7f2c1e-5b3a-4f8e-9c6d-2a1b3c4d5e6f]';

-- c3p0 NewPooledConnection records the connection defaults -> pgjdbc getTransactionIsolation()
SHOW TRANSACTION ISOLATION LEVEL;

-- c3p0 records the default catalog -> pgjdbc getCatalog() (42.7.6+, cached per connection)
select current_catalog;

-- checkout -> do-with-connection-with-options -> set-best-transaction-level! (READ_UNCOMMITTED is supported)
-- pgjdbc setTransactionIsolation. setReadOnly(true)/setAutoCommit(true)/setHoldability send nothing
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;

-- ======================================================================
-- (b) SCHEMA BROWSING = METADATA SYNC (tables, then fields, then foreign keys)
-- ======================================================================

-- LIST SCHEMAS: driver/describe-database* -> describe-syncable-tables -> driver/syncable-schemas ->
-- sql-jdbc all-schemas -> DatabaseMetaData.getSchemas() (pgjdbc, no catalog / pattern)
SELECT nspname AS "TABLE_SCHEM", current_database() AS "TABLE_CATALOG" FROM pg_catalog.pg_namespace  WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_'  OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_'  OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_'))  ORDER BY "TABLE_SCHEM";

-- have-privilege-fn -> sql-jdbc.sync/current-user-table-privileges :postgres (lines joined with newlines)
with table_privileges as (
 select
   NULL as role,
   t.schemaname as schema,
   t.objectname as table,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'update') as update,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'select') as select,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'insert') as insert,
   pg_catalog.has_table_privilege(     current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'delete') as delete
 from (
   select schemaname, tablename as objectname from pg_catalog.pg_tables
   union
   select schemaname, viewname as objectname from pg_catalog.pg_views
   union
   select schemaname, matviewname as objectname from pg_catalog.pg_matviews
 ) t
 where t.schemaname !~ '^pg_'
   and t.schemaname <> 'information_schema'
   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
)
select t.*
from table_privileges t;

-- LIST TABLES: get-tables-sql with the syncable schemas (getSchemas minus information_schema and
-- pg_catalog). Binds 0, '^pg_', 'information_schema', 'public', 'traffic'
SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = 0) AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ('public', 'traffic')) ORDER BY "type" ASC, "schema" ASC, "name" ASC;

-- connection returned to the pool: c3p0 resets the isolation level it saw at acquisition
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;

-- sync-timezone step: next checkout
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;

-- driver/db-default-timezone :postgres - prepareStatement text is 'show timezone' plus a semicolon,
-- which pgjdbc strips. Called by the sync-timezone step
show timezone;

-- checkin
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;

-- LIST COLUMNS (all tables): sync-fields! -> describe-fields-pre-process-xf :postgres -> enum-types
-- (clojure.java.jdbc query on the pooled spec - no Metabase connection options, hence no SET)
SELECT nspname, typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid IN (SELECT DISTINCT enumtypid FROM pg_enum e);

-- checkout for describe-fields (sql-jdbc.execute/reducible-query)
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;

-- describe-fields-sql :postgres with :schema-names = schemas of synced tables ('traffic')
-- no :table-names. Binds 'traffic' twice
SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment" FROM "information_schema"."columns" AS "c" LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name") WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ('traffic')) UNION ALL SELECT "pa"."attname" AS "name", CASE WHEN "ptn"."nspname" IN ('public', 'pg_catalog') THEN FORMAT('%s', "pt"."typname") ELSE FORMAT('"%s"."%s"', "ptn"."nspname", "pt"."typname") END AS "database-type", "pa"."attnum" - 1 AS "database-position", "pn"."nspname" AS "table-schema", "pc"."relname" AS "table-name", FALSE AS "pk?", NULL AS "field-comment", FALSE AS "database-required", FALSE AS "database-is-auto-increment" FROM "pg_catalog"."pg_class" AS "pc" INNER JOIN "pg_catalog"."pg_namespace" AS "pn" ON "pn"."oid" = "pc"."relnamespace" INNER JOIN "pg_catalog"."pg_attribute" AS "pa" ON "pa"."attrelid" = "pc"."oid" INNER JOIN "pg_catalog"."pg_type" AS "pt" ON "pt"."oid" = "pa"."atttypid" INNER JOIN "pg_catalog"."pg_namespace" AS "ptn" ON "ptn"."oid" = "pt"."typnamespace" WHERE ("pc"."relkind" = 'm') AND ("pa"."attnum" >= 1) AND ("pn"."nspname" IN ('traffic')) ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC;

-- checkin
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;

-- per table: include-nested-fields-for-table -> describe-nested-field-columns (JSON unfolding is on by
-- default) -> do-with-connection-with-options
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;

-- table->unfold-json-fields -> describe-table-fields -> DatabaseMetaData.getColumns(null, 'traffic',
-- 'segment_speed', null) - pgjdbc 42.7.7 text for server >= 12 (42.7.8+ binds the two patterns)
SELECT * FROM (SELECT current_database() AS current_database, n.nspname,c.relname,a.attname,a.atttypid,a.attnotnull  OR (t.typtype = 'd' AND t.typnotnull) AS attnotnull,a.atttypmod,a.attlen,t.typtypmod,row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS attnum, nullif(a.attidentity, '') as attidentity,nullif(a.attgenerated, '') as attgenerated,pg_catalog.pg_get_expr(def.adbin, def.adrelid) AS adsrc,dsc.description,t.typbasetype,t.typtype  FROM pg_catalog.pg_namespace n  JOIN pg_catalog.pg_class c ON (c.relnamespace = n.oid)  JOIN pg_catalog.pg_attribute a ON (a.attrelid=c.oid)  JOIN pg_catalog.pg_type t ON (a.atttypid = t.oid)  LEFT JOIN pg_catalog.pg_attrdef def ON (a.attrelid=def.adrelid AND a.attnum = def.adnum)  LEFT JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)  LEFT JOIN pg_catalog.pg_class dc ON (dc.oid=dsc.classoid AND dc.relname='pg_class')  LEFT JOIN pg_catalog.pg_namespace dn ON (dc.relnamespace=dn.oid AND dn.nspname='pg_catalog')  WHERE c.relkind in ('r','p','v','f','m') and a.attnum > 0 AND NOT a.attisdropped  AND n.nspname LIKE 'traffic' AND c.relname LIKE 'segment_speed') c WHERE true  ORDER BY nspname,c.relname,attnum ;

-- get-table-pks -> DatabaseMetaData.getPrimaryKeys(null, 'traffic', 'segment_speed') - pgjdbc 42.7.7
-- (server >= 11 uses i.indnkeyatts). A JSON sample query follows only if the table has json columns
SELECT        result.TABLE_CAT AS "TABLE_CAT",        result.TABLE_SCHEM AS "TABLE_SCHEM",        result.TABLE_NAME AS "TABLE_NAME",        result.COLUMN_NAME AS "COLUMN_NAME",        result.KEY_SEQ AS "KEY_SEQ",        result.PK_NAME AS "PK_NAME"FROM      (SELECT current_database() AS TABLE_CAT, n.nspname AS TABLE_SCHEM,   ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME,   (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, ci.relname AS PK_NAME,   information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM, i.indnkeyatts as KEY_COUNT FROM pg_catalog.pg_class ct   JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid)   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN pg_catalog.pg_index i ON ( a.attrelid = i.indrelid)   JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) WHERE true  AND n.nspname = 'traffic' AND ct.relname = 'segment_speed' AND i.indisprimary  ) result where  result.A_ATTNUM = (result.KEYS).x AND result.KEY_SEQ <= KEY_COUNT  ORDER BY result.table_name, result.pk_name, result.key_seq;

-- checkin
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;

-- sync-fks step: checkout
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;

-- describe-fks-sql :postgres with :schema-names ('traffic'). Binds 'traffic'
SELECT "fk_ns"."nspname" AS "fk-table-schema", "fk_table"."relname" AS "fk-table-name", "fk_column"."attname" AS "fk-column-name", "pk_ns"."nspname" AS "pk-table-schema", "pk_table"."relname" AS "pk-table-name", "pk_column"."attname" AS "pk-column-name" FROM "pg_constraint" AS "c" INNER JOIN "pg_class" AS "fk_table" ON "c"."conrelid" = "fk_table"."oid" INNER JOIN "pg_namespace" AS "fk_ns" ON "c"."connamespace" = "fk_ns"."oid" INNER JOIN "pg_attribute" AS "fk_column" ON "c"."conrelid" = "fk_column"."attrelid" INNER JOIN "pg_class" AS "pk_table" ON "c"."confrelid" = "pk_table"."oid" INNER JOIN "pg_namespace" AS "pk_ns" ON "pk_table"."relnamespace" = "pk_ns"."oid" INNER JOIN "pg_attribute" AS "pk_column" ON "c"."confrelid" = "pk_column"."attrelid" WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND ("c"."contype" = 'f'::char) AND ("fk_column"."attnum" = ANY(c.conkey)) AND ("pk_column"."attnum" = ANY(c.confkey)) AND ("fk_ns"."nspname" IN ('traffic')) ORDER BY "fk-table-schema" ASC, "fk-table-name" ASC;

-- checkin
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;

-- sync-table-privileges step (driver supports :table-privileges): same query as above, run via
-- clojure.java.jdbc on the pooled spec (no SET)
with table_privileges as (
 select
   NULL as role,
   t.schemaname as schema,
   t.objectname as table,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'update') as update,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'select') as select,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'insert') as insert,
   pg_catalog.has_table_privilege(     current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'delete') as delete
 from (
   select schemaname, tablename as objectname from pg_catalog.pg_tables
   union
   select schemaname, viewname as objectname from pg_catalog.pg_views
   union
   select schemaname, matviewname as objectname from pg_catalog.pg_matviews
 ) t
 where t.schemaname !~ '^pg_'
   and t.schemaname <> 'information_schema'
   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
)
select t.*
from table_privileges t;

-- ======================================================================
-- (b) RE-SYNC OF ONE TABLE (columns of traffic.segment_speed)
-- ======================================================================

-- LIST COLUMNS OF ONE TABLE ('Sync table schema' / sync-table-metadata! for traffic.segment_speed):
-- enum-types again (pre-process xf)
SELECT nspname, typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid IN (SELECT DISTINCT enumtypid FROM pg_enum e);

-- checkout
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;

-- describe-fields-sql with :schema-names ('traffic') and :table-names ('segment_speed') - the
-- table-name IN clause is rendered from the same HoneySQL form (call site not re-read)
SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment" FROM "information_schema"."columns" AS "c" LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name") WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ('traffic')) AND ("c"."table_name" IN ('segment_speed')) UNION ALL SELECT "pa"."attname" AS "name", CASE WHEN "ptn"."nspname" IN ('public', 'pg_catalog') THEN FORMAT('%s', "pt"."typname") ELSE FORMAT('"%s"."%s"', "ptn"."nspname", "pt"."typname") END AS "database-type", "pa"."attnum" - 1 AS "database-position", "pn"."nspname" AS "table-schema", "pc"."relname" AS "table-name", FALSE AS "pk?", NULL AS "field-comment", FALSE AS "database-required", FALSE AS "database-is-auto-increment" FROM "pg_catalog"."pg_class" AS "pc" INNER JOIN "pg_catalog"."pg_namespace" AS "pn" ON "pn"."oid" = "pc"."relnamespace" INNER JOIN "pg_catalog"."pg_attribute" AS "pa" ON "pa"."attrelid" = "pc"."oid" INNER JOIN "pg_catalog"."pg_type" AS "pt" ON "pt"."oid" = "pa"."atttypid" INNER JOIN "pg_catalog"."pg_namespace" AS "ptn" ON "ptn"."oid" = "pt"."typnamespace" WHERE ("pc"."relkind" = 'm') AND ("pa"."attnum" >= 1) AND ("pn"."nspname" IN ('traffic')) AND ("pc"."relname" IN ('segment_speed')) ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC;

-- checkin
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;

-- sync-fks-for-table!: checkout
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;

-- describe-fks-sql with :table-names then :schema-names (that is the order of the two WHEN forms)
SELECT "fk_ns"."nspname" AS "fk-table-schema", "fk_table"."relname" AS "fk-table-name", "fk_column"."attname" AS "fk-column-name", "pk_ns"."nspname" AS "pk-table-schema", "pk_table"."relname" AS "pk-table-name", "pk_column"."attname" AS "pk-column-name" FROM "pg_constraint" AS "c" INNER JOIN "pg_class" AS "fk_table" ON "c"."conrelid" = "fk_table"."oid" INNER JOIN "pg_namespace" AS "fk_ns" ON "c"."connamespace" = "fk_ns"."oid" INNER JOIN "pg_attribute" AS "fk_column" ON "c"."conrelid" = "fk_column"."attrelid" INNER JOIN "pg_class" AS "pk_table" ON "c"."confrelid" = "pk_table"."oid" INNER JOIN "pg_namespace" AS "pk_ns" ON "pk_table"."relnamespace" = "pk_ns"."oid" INNER JOIN "pg_attribute" AS "pk_column" ON "c"."confrelid" = "pk_column"."attrelid" WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND ("c"."contype" = 'f'::char) AND ("fk_column"."attnum" = ANY(c.conkey)) AND ("pk_column"."attnum" = ANY(c.confkey)) AND ("fk_table"."relname" IN ('segment_speed')) AND ("fk_ns"."nspname" IN ('traffic')) ORDER BY "fk-table-schema" ASC, "fk-table-name" ASC;

-- checkin
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
