-- Grafana PostgreSQL data source (grafana-postgresql-datasource) -> PostgreSQL server
--
-- Client version: the plugin as released in Grafana 13 / external plugin
-- grafana/grafana-postgresql-datasource 13.0.x (CHANGELOG 13.0.3), backend on pgx v5.10.0
-- (go.mod github.com/jackc/pgx/v5 v5.10.0). The queries that Grafana 12.x (plugin bundled in
-- grafana/grafana) sends for the table list without a schema and for the column list are
-- byte-identical to statements 6, 7 and 8 below (grafana/grafana public/app/plugins/datasource/
-- grafana-postgresql-datasource/postgresMetaQuery.ts has the same showTables()/getSchema()/
-- buildSchemaConstraint() text). Grafana 12.x's query builder lists no schemas (datasets() returns
-- an empty list), so statements 3, 4 and 5 are Grafana 13 only.
--
-- Source files read (repository + path):
--   grafana/grafana-postgresql-datasource src/postgresMetaQuery.ts (commit 0666bf10)
--   grafana/grafana-postgresql-datasource src/datasource.ts (commit 07a14fd1) - getDB(), fetchSchemas,
--       fetchTables, fetchFields, getVersion, getTimescaleDBVersion, fetchDatabases
--   grafana/grafana-postgresql-datasource pkg/postgresql/postgres.go (commit 004dd5d9) - pgxpool set-up
--   grafana/grafana-postgresql-datasource pkg/postgresql/sqleng/sql_engine.go (commit 03380587) -
--       Ping() = pgxpool.Ping, execQuery() = PgConn().Exec (SIMPLE query protocol)
--   grafana/grafana-postgresql-datasource CHANGELOG.md, go.mod
--   grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/configuration/
--       useAutoDetectFeatures.ts (commit 3af0110a) - version / TimescaleDB auto-detection
--   grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/datasource.ts and
--       postgresMetaQuery.ts (Grafana 12.x), pgx/handler_checkhealth.go, sqleng/handler_checkhealth.go
--   grafana/grafana packages/grafana-sql/src/datasource/SqlDatasource.ts (runSql -> /api/ds/query)
--   jackc/pgx v5.10.0 pgconn/pgconn.go (PgConn.Ping), pgxpool/pool.go (Pool.Ping, ShouldPing)
--
-- Protocol: every statement here is sent by the backend with pgconn.PgConn.Exec, i.e. ONE
-- simple-protocol Query message, the text exactly as below (no parameters, no Parse/Bind).
--
-- START-UP / HEALTH CHECK - NOT LISTED AS A STATEMENT: pgx opens connections without sending any
-- SQL (no SET, no application_name, no type loading). 'Save and test' calls CheckHealth ->
-- pool.Ping -> pgconn Ping, which sends the simple Query message whose whole text is the SQL
-- comment   -- ping   (the server must answer EmptyQueryResponse + ReadyForQuery). pgxpool sends
-- the same comment-only query whenever it hands out a connection that was idle for more than 1s.
-- The health check is therefore not 'SELECT 1'. Grafana versions still on lib/pq (database/sql)
-- pinged with lib/pq conn.Ping, a simple Query whose text is a lone semicolon (also an empty
-- query). A test should send '-- ping' raw, outside this file.
--
-- Order: statements 1-2 run once, from the configuration page, when a new data source is saved
-- (useAutoDetectFeatures). Statements 3-8 are sent by the query editor while the user browses.
--
-- Syntax check: every statement in this file was executed without error (psql, simple protocol)
-- against a scratch PostgreSQL 15.18 server holding citylake.traffic.segment_speed.

-- ======================================================================
-- (a) START-UP (data source creation)
-- ======================================================================

-- useAutoDetectFeatures (config page, new data source) -> datasource.getVersion() -> postgresMetaQuery.getVersion
SELECT current_setting('server_version_num')::int/100 as version;

-- useAutoDetectFeatures -> getTimescaleDBVersion() - only if version >= 906 and jsonData.timescaledb unset
SELECT extversion FROM pg_extension WHERE extname = 'timescaledb';

-- ======================================================================
-- (b) SCHEMA BROWSING (query editor)
-- ======================================================================

-- OPTIONAL - only with jsonData.enableMultiDatabase: query builder 'Database' picker -> fetchDatabases -> showDatabases
SELECT datname FROM pg_database WHERE datistemplate = false ORDER BY datname;

-- LIST SCHEMAS: query builder 'Schema' (dataset) picker -> db.datasets() -> fetchSchemas -> showSchemas
SELECT schema_name FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema', 'pg_catalog', 'pg_toast',
                              '_timescaledb_cache', '_timescaledb_catalog',
                              '_timescaledb_internal', '_timescaledb_config',
                              'timescaledb_information', 'timescaledb_experimental')
    ORDER BY schema_name;

-- LIST TABLES of schema traffic: builder 'Table' picker -> db.tables('traffic') -> fetchTables -> showTables(schema)
SELECT quote_ident(table_name) AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) = quote_ident('traffic')
    ORDER BY 1;

-- LIST COLUMNS of the picked table: db.fields(query) -> fetchFields -> getSchema(query.table)
-- query.table is the unqualified name from the table list, so the ELSE branch applies (search_path based
-- - with the default search_path it finds nothing for a table in schema traffic)
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('segment_speed'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('segment_speed'))[1]
          AND quote_ident(table_name) = (parse_ident('segment_speed'))[2]
        ELSE quote_ident(table_name) = 'segment_speed'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END;

-- LIST TABLES without a schema: code-editor autocomplete and db.lookup() -> fetchTables() -> showTables()
-- (Grafana 12.x query builder table list too). Tables outside search_path come back as schema.table
SELECT
    CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          ) THEN 0 ELSE 1 END, 1;

-- LIST COLUMNS for a schema-qualified name from that list (autocomplete / Grafana 12.x builder)
-- getSchema('traffic.segment_speed') - the parse_ident two-part branch applies
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('traffic.segment_speed'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('traffic.segment_speed'))[1]
          AND quote_ident(table_name) = (parse_ident('traffic.segment_speed'))[2]
        ELSE quote_ident(table_name) = 'traffic.segment_speed'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END;
