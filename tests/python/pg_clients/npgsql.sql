-- Power BI Desktop (PostgreSQL connector) / Npgsql -> PostgreSQL server
--
-- Client version: Power BI Desktop's PostgreSQL connector runs on Npgsql 4.0.x - it ships Npgsql
-- 4.0.10 (Microsoft's Power Query PostgreSQL connector page, as quoted in ravendb/ravendb
-- PowerBIConfig.cs - not re-read here). The type-loading, reset and GetSchema text is identical
-- in 4.0.10 and 4.0.17 (git diff v4.0.10 v4.0.17). Sections 1-2 are Power BI.
-- Section 3 is the current Npgsql (9.x/10.x, npgsql/npgsql HEAD 3cb5804b = v10.0.0-153) start-up
-- for any other .NET client, as requested (GenerateLoadTypesQuery & co, server >= 12 branches).
-- Section 4 is Npgsql 4.0.17 GetSchema('Schemata'/'Tables'/'Columns'), which Power BI does NOT use.
--
-- Source files read (repository + path):
--   npgsql/npgsql @v4.0.17 src/Npgsql/PostgresDatabaseInfo.cs (GenerateTypesQuery, LoadBackendTypes)
--   npgsql/npgsql @v4.0.17 src/Npgsql/NpgsqlConnector.cs (Open, LoadDatabaseInfo, WriteStartupMessage,
--       GenerateResetMessage, Reset -> PregeneratedMessage.DiscardAll)
--   npgsql/npgsql @v4.0.17 src/Npgsql/NpgsqlSchema.cs (GetSchemata, GetTables, GetColumns, BuildCommand)
--   npgsql/npgsql @HEAD src/Npgsql/PostgresDatabaseInfo.cs (GenerateLoadTypesQuery,
--       GenerateLoadCompositeTypesQuery, GenerateLoadEnumFieldsQuery, LoadBackendTypes)
--   Power BI's own navigator SQL is closed source (Microsoft.Mashup engine). Section 2 is copied
--   from a third-party PostgreSQL statement log of Power BI Desktop + Npgsql (datafusion-contrib/
--   datafusion-postgres issue 218, Oct 2025), table name changed to segment_speed and the schema
--   literal to traffic. The same text is reproduced, whitespace included, in an Npgsql 4.0.17
--   probe program found in the code corpus that states it copied it verbatim from that log.
--   Partial excerpts of the log itself were read and agree. NOT read from any Microsoft source.
--
-- Protocol. Npgsql 4.0: every statement below goes out in the EXTENDED protocol (unnamed
-- Parse/Bind/Describe/Execute), except DISCARD ALL, a simple Query message. The type-loading
-- command is one NpgsqlCommand whose text holds three statements separated by semicolons. Npgsql
-- 4 splits it and sends three Parse/Bind/Execute groups in one batch (results requested as text).
-- Npgsql 9/10: the version query and the three type-loading statements go out together as ONE
-- simple-protocol Query message (lines joined with Environment.NewLine). They are split here.
-- Line breaks inside these statements are CRLF in Windows builds of Npgsql (.gitattributes text=auto
-- compiles verbatim strings with the checkout's line endings). The SQL comments (/*** ... ***/,
-- /* ... */, -- ...) are part of the text the server receives, and two of them contain an
-- apostrophe (Don't load system attributes) - a lexer must skip comments before looking for
-- quotes. Statements 16 and 17 (Npgsql 10) contain whitespace-only lines and statement 18 contains
-- an EMPTY line, exactly as Npgsql sends them - split this file on lines ending with a semicolon,
-- not on blank lines.
--
-- Start-up: Npgsql sends no SET after authentication (client_encoding, application_name,
-- search_path, TimeZone are StartupMessage parameters). Type loading runs once per connection string
-- per process (NpgsqlDatabaseInfo.Cache), on the first physical connection. Power BI evaluates in
-- several Mashup container processes, so the type-loading trio is seen more than once per session.
-- DISCARD ALL is prepended to the first command after a pooled connection is re-opened (Reset() on
-- Close, Pooling=true is Power BI's default). Power BI opens and closes the connection around its
-- navigator queries, so DISCARD ALL is placed before each of them here. The captured log shows it
-- at least before the second foreign-key query. The exact interleaving depends on Power BI's pooling.
--
-- Syntax check: every statement in this file was executed without error (psql, simple protocol)
-- against a scratch PostgreSQL 15.18 server holding citylake.traffic.segment_speed.

-- ======================================================================
-- 1. POWER BI START-UP - Npgsql 4.0.x type loading (first physical connection)
-- ======================================================================

-- Npgsql 4.0.17 PostgresDatabaseInfo.GenerateTypesQuery, statement 1 of 3: server >= 9.2 so withRange,
-- withEnum, withEnumSortOrder are true. LoadTableComposites=false (default)
/*** Load all supported types ***/
SELECT ns.nspname, a.typname, a.oid, a.typrelid, a.typbasetype,
CASE WHEN pg_proc.proname='array_recv' THEN 'a' ELSE a.typtype END AS type,
CASE
  WHEN pg_proc.proname='array_recv' THEN a.typelem
  WHEN a.typtype='r' THEN rngsubtype
  ELSE 0
END AS elemoid,
CASE
  WHEN pg_proc.proname IN ('array_recv','oidvectorrecv') THEN 3    /* Arrays last */
  WHEN a.typtype='r' THEN 2                                        /* Ranges before */
  WHEN a.typtype='d' THEN 1                                        /* Domains before */
  ELSE 0                                                           /* Base types first */
END AS ord
FROM pg_type AS a
JOIN pg_namespace AS ns ON (ns.oid = a.typnamespace)
JOIN pg_proc ON pg_proc.oid = a.typreceive
LEFT OUTER JOIN pg_class AS cls ON (cls.oid = a.typrelid)
LEFT OUTER JOIN pg_type AS b ON (b.oid = a.typelem)
LEFT OUTER JOIN pg_class AS elemcls ON (elemcls.oid = b.typrelid)
LEFT OUTER JOIN pg_range ON (pg_range.rngtypid = a.oid) 
WHERE
  a.typtype IN ('b', 'r', 'e', 'd') OR         /* Base, range, enum, domain */
  (a.typtype = 'c' AND cls.relkind='c') OR /* User-defined free-standing composites (not table composites) by default */
  (pg_proc.proname='array_recv' AND (
    b.typtype IN ('b', 'r', 'e', 'd') OR       /* Array of base, range, enum, domain */
    (b.typtype = 'p' AND b.typname IN ('record', 'void')) OR /* Arrays of special supported pseudo-types */
    (b.typtype = 'c' AND elemcls.relkind='c')  /* Array of user-defined free-standing composites (not table composites) */
  )) OR
  (a.typtype = 'p' AND a.typname IN ('record', 'void'))  /* Some special supported pseudo-types */
ORDER BY ord;

-- GenerateTypesQuery statement 2 of 3: fields of free-standing composite types
/*** Load field definitions for (free-standing) composite types ***/
SELECT typ.oid, att.attname, att.atttypid
FROM pg_type AS typ
JOIN pg_namespace AS ns ON (ns.oid = typ.typnamespace)
JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
JOIN pg_attribute AS att ON (att.attrelid = typ.typrelid)
WHERE
  (typ.typtype = 'c' AND cls.relkind='c') AND
  attnum > 0 AND     /* Don't load system attributes */
  NOT attisdropped
ORDER BY typ.oid, att.attnum;

-- GenerateTypesQuery statement 3 of 3: enum labels (server >= 8.3, enumsortorder since 9.1)
/*** Load enum fields ***/
SELECT pg_type.oid, enumlabel
FROM pg_enum
JOIN pg_type ON pg_type.oid=enumtypid
ORDER BY oid, enumsortorder;

-- ======================================================================
-- 2. POWER BI SCHEMA BROWSING (navigator) - Power BI's own SQL via Npgsql 4.0.x
-- ======================================================================

-- Power BI navigator: character-set check, first navigator query (third-party log, see header)
select character_set_name from INFORMATION_SCHEMA.character_sets;

-- Npgsql 4.0 connector Reset() -> PregeneratedMessage.DiscardAll (simple Query) on pooled re-open
DISCARD ALL;

-- LIST SCHEMAS + TABLES: Power BI navigator table list - the schema list is derived from TABLE_SCHEMA
select TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE
        from INFORMATION_SCHEMA.tables
        where TABLE_SCHEMA not in ('information_schema', 'pg_catalog')
        order by TABLE_SCHEMA, TABLE_NAME;

-- pooled re-open
DISCARD ALL;

-- LIST COLUMNS of traffic.segment_speed: Power BI navigator (table selected)
select COLUMN_NAME, ORDINAL_POSITION, IS_NULLABLE, case when (data_type like '%unsigned%') then DATA_TYPE || ' unsigned' else DATA_TYPE end as DATA_TYPE
        from INFORMATION_SCHEMA.columns
        where TABLE_SCHEMA = 'traffic' and TABLE_NAME = 'segment_speed'
        order by TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION;

-- pooled re-open
DISCARD ALL;

-- Power BI relationships: foreign keys that reference the selected table
select
            pkcol.COLUMN_NAME as PK_COLUMN_NAME,
            fkcol.TABLE_SCHEMA AS FK_TABLE_SCHEMA,
            fkcol.TABLE_NAME AS FK_TABLE_NAME,
            fkcol.COLUMN_NAME as FK_COLUMN_NAME,
            fkcol.ORDINAL_POSITION as ORDINAL,
            fkcon.CONSTRAINT_SCHEMA || '_' || fkcol.TABLE_NAME || '_' || 'segment_speed' || '_' || fkcon.CONSTRAINT_NAME as FK_NAME
        from
            (select distinct constraint_catalog, constraint_schema, unique_constraint_schema, constraint_name, unique_constraint_name
                from INFORMATION_SCHEMA.REFERENTIAL_CONSTRAINTS) fkcon
                inner join
            INFORMATION_SCHEMA.KEY_COLUMN_USAGE fkcol
                on fkcon.CONSTRAINT_SCHEMA = fkcol.CONSTRAINT_SCHEMA
                and fkcon.CONSTRAINT_NAME = fkcol.CONSTRAINT_NAME
                inner join
            INFORMATION_SCHEMA.KEY_COLUMN_USAGE pkcol
                on fkcon.UNIQUE_CONSTRAINT_SCHEMA = pkcol.CONSTRAINT_SCHEMA
                and fkcon.UNIQUE_CONSTRAINT_NAME = pkcol.CONSTRAINT_NAME
        where pkcol.TABLE_SCHEMA = 'traffic' and pkcol.TABLE_NAME = 'segment_speed'
                and pkcol.ORDINAL_POSITION = fkcol.ORDINAL_POSITION
        order by FK_NAME, fkcol.ORDINAL_POSITION;

-- pooled re-open (this one is visible in the log, right before the next query)
DISCARD ALL;

-- Power BI relationships: foreign keys of the selected table
select
            pkcol.TABLE_SCHEMA AS PK_TABLE_SCHEMA,
            pkcol.TABLE_NAME AS PK_TABLE_NAME,
            pkcol.COLUMN_NAME as PK_COLUMN_NAME,
            fkcol.COLUMN_NAME as FK_COLUMN_NAME,
            fkcol.ORDINAL_POSITION as ORDINAL,
            fkcon.CONSTRAINT_SCHEMA || '_' || 'segment_speed' || '_' || pkcol.TABLE_NAME || '_' || fkcon.CONSTRAINT_NAME as FK_NAME
        from
            (select distinct constraint_catalog, constraint_schema, unique_constraint_schema, constraint_name, unique_constraint_name
                from INFORMATION_SCHEMA.REFERENTIAL_CONSTRAINTS) fkcon
                inner join
            INFORMATION_SCHEMA.KEY_COLUMN_USAGE fkcol
                on fkcon.CONSTRAINT_SCHEMA = fkcol.CONSTRAINT_SCHEMA
                and fkcon.CONSTRAINT_NAME = fkcol.CONSTRAINT_NAME
                inner join
            INFORMATION_SCHEMA.KEY_COLUMN_USAGE pkcol
                on fkcon.UNIQUE_CONSTRAINT_SCHEMA = pkcol.CONSTRAINT_SCHEMA
                and fkcon.UNIQUE_CONSTRAINT_NAME = pkcol.CONSTRAINT_NAME
        where fkcol.TABLE_SCHEMA = 'traffic' and fkcol.TABLE_NAME = 'segment_speed'
                and pkcol.ORDINAL_POSITION = fkcol.ORDINAL_POSITION
        order by FK_NAME, fkcol.ORDINAL_POSITION;

-- pooled re-open
DISCARD ALL;

-- Power BI: primary key / unique constraints of the selected table
select i.CONSTRAINT_SCHEMA || '_' || i.CONSTRAINT_NAME as INDEX_NAME, ii.COLUMN_NAME, ii.ORDINAL_POSITION, case when i.CONSTRAINT_TYPE = 'PRIMARY KEY' then 'Y' else 'N' end as PRIMARY_KEY
        from INFORMATION_SCHEMA.table_constraints i inner join INFORMATION_SCHEMA.key_column_usage ii on i.CONSTRAINT_SCHEMA = ii.CONSTRAINT_SCHEMA and i.CONSTRAINT_NAME = ii.CONSTRAINT_NAME and i.TABLE_SCHEMA = ii.TABLE_SCHEMA and i.TABLE_NAME = ii.TABLE_NAME
        where i.TABLE_SCHEMA = 'traffic' and i.TABLE_NAME = 'segment_speed'
        and i.CONSTRAINT_TYPE in ('PRIMARY KEY', 'UNIQUE')
        order by i.CONSTRAINT_SCHEMA || '_' || i.CONSTRAINT_NAME, ii.TABLE_SCHEMA, ii.TABLE_NAME, ii.ORDINAL_POSITION;

-- ======================================================================
-- 3. CURRENT NPGSQL (9.x / 10.x) START-UP - not Power BI
-- ======================================================================

-- Npgsql 9.x/10.x LoadBackendTypes batch, part 1 of 4 (sent with a trailing semicolon inside the batch)
SELECT version();

-- Npgsql 9.x/10.x GenerateLoadTypesQuery(withRange, withMultirange (server >= 14), loadTableComposites=false,
-- schemaListSqlFragment=null, hasTypeCategory (server >= 8.4)) - part 2 of 4
SELECT ns.nspname, t.oid, t.typname, t.typtype, t.typnotnull, t.elemtypoid
FROM (
    -- Arrays have typtype=b - this subquery identifies them by their typreceive and converts their typtype to a
    -- We first do this for the type (innerest-most subquery), and then for its element type
    -- This also returns the array element, range subtype and domain base type as elemtypoid
    SELECT
        typ.oid, typ.typnamespace, typ.typname, typ.typtype, typ.typrelid, typ.typnotnull, typ.relkind,
        elemtyp.oid AS elemtypoid, elemtyp.typname AS elemtypname, elemcls.relkind AS elemrelkind,
        CASE WHEN elemproc.proname='array_recv' THEN 'a' ELSE elemtyp.typtype END AS elemtyptype
        , typ.typcategory
    FROM (
        SELECT typ.oid, typnamespace, typname, typrelid, typnotnull, relkind, typelem AS elemoid,
            CASE WHEN proc.proname='array_recv' THEN 'a' ELSE typ.typtype END AS typtype,
            CASE
                WHEN proc.proname='array_recv' THEN typ.typelem
                WHEN typ.typtype='r' THEN rngsubtype
                WHEN typ.typtype='m' THEN (SELECT rngtypid FROM pg_range WHERE rngmultitypid = typ.oid)
                WHEN typ.typtype='d' THEN typ.typbasetype
            END AS elemtypoid
            , typ.typcategory
        FROM pg_type AS typ
        LEFT JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
        LEFT JOIN pg_proc AS proc ON proc.oid = typ.typreceive
        LEFT JOIN pg_range ON (pg_range.rngtypid = typ.oid)
    ) AS typ
    LEFT JOIN pg_type AS elemtyp ON elemtyp.oid = elemtypoid
    LEFT JOIN pg_class AS elemcls ON (elemcls.oid = elemtyp.typrelid)
    LEFT JOIN pg_proc AS elemproc ON elemproc.oid = elemtyp.typreceive
) AS t
JOIN pg_namespace AS ns ON (ns.oid = typnamespace)
WHERE
    
    (typtype IN ('b', 'r', 'm', 'e', 'd') OR -- Base, range, multirange, enum, domain
    (typtype = 'c' AND relkind='c') OR -- User-defined free-standing composites (not table composites) by default
    (typtype = 'p' AND typname IN ('record', 'void', 'unknown')) OR -- Some special supported pseudo-types
    (typtype = 'a' AND (  -- Array of...
        elemtyptype IN ('b', 'r', 'm', 'e', 'd') OR -- Array of base, range, multirange, enum, domain
        (elemtyptype = 'p' AND elemtypname IN ('record', 'void')) OR -- Arrays of special supported pseudo-types
        (elemtyptype = 'c' AND elemrelkind='c') -- Array of user-defined free-standing composites (not table composites) by default
    )))
ORDER BY CASE
       WHEN typtype IN ('b', 'e', 'p') THEN 0           -- First base types, enums, pseudo-types
       WHEN typtype = 'c' THEN 1                        -- Composites after (fields loaded later in 2nd pass)
       WHEN typtype = 'r' THEN 2                        -- Ranges after
       WHEN typtype = 'm' THEN 3                        -- Multiranges after
       WHEN typtype = 'd' AND elemtyptype <> 'a' THEN 4 -- Domains over non-arrays after
       WHEN typtype = 'a' THEN 5                        -- Arrays after
       WHEN typtype = 'd' AND elemtyptype = 'a' THEN 6  -- Domains over arrays last
END;

-- Npgsql 9.x/10.x GenerateLoadCompositeTypesQuery(false, null) - part 3 of 4
-- Load field definitions for (free-standing) composite types
SELECT typ.oid, att.attname, att.atttypid
FROM pg_type AS typ
JOIN pg_namespace AS ns ON (ns.oid = typ.typnamespace)
JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
JOIN pg_attribute AS att ON (att.attrelid = typ.typrelid)
WHERE
  (typ.typtype = 'c' AND cls.relkind='c') AND
  
  attnum > 0 AND     -- Don't load system attributes
  NOT attisdropped
ORDER BY typ.oid, att.attnum;

-- Npgsql 9.x/10.x GenerateLoadEnumFieldsQuery(withEnumSortOrder=true, null) - part 4 of 4
-- Load enum fields
SELECT typ.oid, enumlabel
FROM pg_enum
JOIN pg_type AS typ ON typ.oid = enumtypid
JOIN pg_namespace AS ns ON ns.oid = typ.typnamespace

ORDER BY oid, enumsortorder;

-- Npgsql 9.x/10.x pooled connection returned and re-opened: Reset() prepends DISCARD ALL (simple Query)
DISCARD ALL;

-- ======================================================================
-- 4. APPENDIX - Npgsql 4.0.17 GetSchema collections (Power BI does not call them)
-- ======================================================================

-- NOT USED BY POWER BI. Npgsql 4.0.17 NpgsqlSchema.GetSchemata, conn.GetSchema("Schemata") - no restrictions
select * from(
    select current_database() as catalog_name,
        nspname AS schema_name,
        r.rolname AS schema_owner
    from
        pg_catalog.pg_namespace left join pg_catalog.pg_roles r on r.oid = nspowner
    ) tmp;

-- NOT USED BY POWER BI. NpgsqlSchema.GetTables, GetSchema("Tables", new[] {null, "traffic"})
-- BuildCommand appends ' AND table_schema = :table_schema' - bound as $1 = 'traffic'
SELECT table_catalog, table_schema, table_name, table_type
FROM information_schema.tables
WHERE table_type IN ('BASE TABLE', 'FOREIGN', 'FOREIGN TABLE') AND table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema = 'traffic';

-- NOT USED BY POWER BI. NpgsqlSchema.GetColumns, GetSchema("Columns", new[] {null, "traffic", "segment_speed"})
-- $1 = 'traffic', $2 = 'segment_speed' (named :table_schema / :table_name rewritten to positional)
SELECT table_catalog, table_schema, table_name, column_name, ordinal_position, column_default, is_nullable, udt_name AS data_type, character_maximum_length, character_octet_length, numeric_precision, numeric_precision_radix, numeric_scale, datetime_precision, character_set_catalog, character_set_schema, character_set_name, collation_catalog FROM information_schema.columns WHERE table_schema = 'traffic' AND table_name = 'segment_speed';
