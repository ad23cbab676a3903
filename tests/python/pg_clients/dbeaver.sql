-- DBeaver (Community) -> PostgreSQL server: start-up and schema-browsing statements
--
-- Client version: DBeaver 24.2.3 (dbeaver/dbeaver snapshot 2428359b, git describe 24.2.3-21)
-- with the PostgreSQL JDBC driver it downloads for that release: pgjdbc 42.7.2
-- (plugin.xml: maven:/org.postgresql:postgresql:RELEASE[42.7.2]). Connection settings assumed:
-- DBeaver defaults (auto-commit on, 'Show all databases' off, no bootstrap queries, no default
-- schema or role, separate metadata connection on). Database citylake, user analyst,
-- server_version 16.6 (so isServerVersionAtLeast(10,0) and (12,0) are true).
--
-- Source files read (repository + path):
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java (SchemaCache, EnumValueCache, cacheDataTypes)
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreExecutionContext.java (refreshDefaults)
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java (TableCache)
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreTableBase.java, PostgreAttribute.java, PostgreDataType.java
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataTypeCache.java (getBaseTypeNameClause)
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDialect.java, impls/PostgreServerExtensionBase.java
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/PostgreUtils.java (isMetaObjectExists), PostgreConstants.java
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/plugin.xml
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.model.jdbc/src/org/jkiss/dbeaver/model/impl/jdbc/
--       JDBCDataSource.java, JDBCExecutionContext.java, JDBCRemoteInstance.java, JDBCSQLDialect.java,
--       JDBCUtils.java, cache/JDBCObjectLookupCache.java, cache/JDBCStructCache.java
--   dbeaver/dbeaver plugins/org.jkiss.dbeaver.model/src/org/jkiss/dbeaver/model/DBUtils.java
--   pgjdbc/pgjdbc @REL42.7.2 pgjdbc/src/main/java/org/postgresql/core/v3/ConnectionFactoryImpl.java
--       (runInitialQueries), jdbc/PgConnection.java (setClientInfo), jdbc/PgDatabaseMetaData.java
--       (getSQLKeywords), jdbc/TypeInfoCache.java (getPGType / getSQLType look-ups)
-- Cross-checked against a third-party server log of DBeaver 25.1.5 (datafusion-contrib/
-- datafusion-postgres issue 135) and one quoted in GreptimeTeam/greptimedb issue 5271: same
-- statements, same order, from the first SET up to the keywords query (statement 16).
--
-- Protocol: everything goes through pgjdbc PreparedStatement/Statement, i.e. the EXTENDED
-- protocol (Parse/Bind/Describe/Execute, unnamed statements, prepareThreshold=5). Where the
-- client binds a parameter ($1) the concrete value is written in place and a comment says so.
-- OIDs: 16385 = pg_namespace.oid of schema traffic, 16387 = pg_class.oid of table
-- traffic.segment_speed - example values. DBeaver binds whatever oid the server returned in
-- the schema / table list, so a test must substitute the oids its own server reports.
--
-- Two JDBC connections are opened: 'Main <citylake>' and 'Metadata <citylake>'. Each runs
-- pgjdbc's initial queries, then DBeaver's context-defaults queries. The schema list is read
-- while the Main context initialises (PostgreExecutionContext.refreshDefaults). Statements sent
-- only for non-default settings (SET search_path, SET ROLE, SHOW TRANSACTION ISOLATION LEVEL
-- when auto-commit is off, the database list when 'Show all databases' is on) are left out.
--
-- Syntax check: every statement in this file was executed without error (psql, simple protocol)
-- against a scratch PostgreSQL 15.18 server holding citylake.traffic.segment_speed.

-- ======================================================================
-- (a) START-UP - Main connection
-- ======================================================================

-- pgjdbc 42.7.2 ConnectionFactoryImpl.runInitialQueries (Main connection) - server >= 9.0
SET extra_float_digits = 3;

-- pgjdbc runInitialQueries: driver default ApplicationName (PGProperty.APPLICATION_NAME)
SET application_name = 'PostgreSQL JDBC Driver';

-- PostgreDataSource.openConnection -> Connection.setClientInfo(ApplicationName) -> pgjdbc PgConnection.setClientInfo
-- value = DBUtils.getClientApplicationName: product title + ' - ' + context name 'Main <citylake>'
SET application_name = 'DBeaver 24.2.3 - Main <citylake>';

-- PostgreExecutionContext.refreshDefaults (Main context): active schema and user
SELECT current_schema(),session_user;

-- PostgreDatabase.SchemaCache.prepareLookupStatement (no filter) - LIST SCHEMAS
-- pre-cached by refreshDefaults -> getDefaultCatalog().getSchemas()
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass
 ORDER BY nspname;

-- pgjdbc TypeInfoCache.getPGType(1034) - triggered by PostgreSchema reading nspacl (aclitem[]) with getObject
-- $1 = 1034 (setInt). Sent once per connection, only when some nspacl value is non-NULL
SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = 1034;

-- pgjdbc TypeInfoCache.getSQLType(1034) - same trigger. $1 = 1034 (setLong). The trailing semicolon of the
-- Java text is removed by pgjdbc's parser before sending
SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid   FROM pg_catalog.pg_type   LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r           from pg_namespace as ns           join ( select s.r, (current_schemas(false))[s.r] as nspname                    from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r          using ( nspname )        ) as sp     ON sp.nspoid = typnamespace  WHERE pg_type.oid = 1034  ORDER BY sp.r, pg_type.oid DESC;

-- PostgreExecutionContext.refreshDefaults (Main context): JDBCUtils.queryString
SHOW search_path;

-- ======================================================================
-- (a) START-UP - Metadata connection, then data source initialisation
-- ======================================================================

-- pgjdbc runInitialQueries (Metadata connection)
SET extra_float_digits = 3;

-- pgjdbc runInitialQueries (Metadata connection)
SET application_name = 'PostgreSQL JDBC Driver';

-- PostgreDataSource.openConnection -> setClientInfo, context name 'Metadata <citylake>'
SET application_name = 'DBeaver 24.2.3 - Metadata <citylake>';

-- PostgreExecutionContext.refreshDefaults (Metadata context) - schemas already cached, no re-read
SELECT current_schema(),session_user;

-- PostgreExecutionContext.refreshDefaults (Metadata context)
SHOW search_path;

-- PostgreDatabase.readDatabaseInfo (constructor PostgreDatabase(monitor, dataSource, name))
-- $1 = 'citylake' (setString)
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='citylake';

-- PostgreDataSource.initializeRemoteInstance -> SettingCache lookup of OPTION_STANDARD_CONFORMING_STRINGS
-- $1 = 'standard_conforming_strings' (setString)
select * from pg_catalog.pg_settings where name='standard_conforming_strings';

-- JDBCDataSource.initialize -> JDBCSQLDialect.initDriverSettings -> DatabaseMetaData.getSQLKeywords()
-- pgjdbc PgDatabaseMetaData.getSQLKeywords (server >= 9.0). The other getXxxFunctions() are client-side
select string_agg(word, ',') from pg_catalog.pg_get_keywords() where word <> ALL ('{a,abs,absolute,action,ada,add,admin,after,all,allocate,alter,always,and,any,are,array,as,asc,asensitive,assertion,assignment,asymmetric,at,atomic,attribute,attributes,authorization,avg,before,begin,bernoulli,between,bigint,binary,blob,boolean,both,breadth,by,c,call,called,cardinality,cascade,cascaded,case,cast,catalog,catalog_name,ceil,ceiling,chain,char,char_length,character,character_length,character_set_catalog,character_set_name,character_set_schema,characteristics,characters,check,checked,class_origin,clob,close,coalesce,cobol,code_units,collate,collation,collation_catalog,collation_name,collation_schema,collect,column,column_name,command_function,command_function_code,commit,committed,condition,condition_number,connect,connection_name,constraint,constraint_catalog,constraint_name,constraint_schema,constraints,constructors,contains,continue,convert,corr,corresponding,count,covar_pop,covar_samp,create,cross,cube,cume_dist,current,current_collation,current_date,current_default_transform_group,current_path,current_role,current_time,current_timestamp,current_transform_group_for_type,current_user,cursor,cursor_name,cycle,data,date,datetime_interval_code,datetime_interval_precision,day,deallocate,dec,decimal,declare,default,defaults,deferrable,deferred,defined,definer,degree,delete,dense_rank,depth,deref,derived,desc,describe,descriptor,deterministic,diagnostics,disconnect,dispatch,distinct,domain,double,drop,dynamic,dynamic_function,dynamic_function_code,each,element,else,end,end-exec,equals,escape,every,except,exception,exclude,excluding,exec,execute,exists,exp,external,extract,false,fetch,filter,final,first,float,floor,following,for,foreign,fortran,found,free,from,full,function,fusion,g,general,get,global,go,goto,grant,granted,group,grouping,having,hierarchy,hold,hour,identity,immediate,implementation,in,including,increment,indicator,initially,inner,inout,input,insensitive,insert,instance,instantiable,int,integer,intersect,intersection,interval,into,invoker,is,isolation,join,k,key,key_member,key_type,language,large,last,lateral,leading,left,length,level,like,ln,local,localtime,localtimestamp,locator,lower,m,map,match,matched,max,maxvalue,member,merge,message_length,message_octet_length,message_text,method,min,minute,minvalue,mod,modifies,module,month,more,multiset,mumps,name,names,national,natural,nchar,nclob,nesting,new,next,no,none,normalize,normalized,not,"null",nullable,nullif,nulls,number,numeric,object,octet_length,octets,of,old,on,only,open,option,options,or,order,ordering,ordinality,others,out,outer,output,over,overlaps,overlay,overriding,pad,parameter,parameter_mode,parameter_name,parameter_ordinal_position,parameter_specific_catalog,parameter_specific_name,parameter_specific_schema,partial,partition,pascal,path,percent_rank,percentile_cont,percentile_disc,placing,pli,position,power,preceding,precision,prepare,preserve,primary,prior,privileges,procedure,public,range,rank,read,reads,real,recursive,ref,references,referencing,regr_avgx,regr_avgy,regr_count,regr_intercept,regr_r2,regr_slope,regr_sxx,regr_sxy,regr_syy,relative,release,repeatable,restart,result,return,returned_cardinality,returned_length,returned_octet_length,returned_sqlstate,returns,revoke,right,role,rollback,rollup,routine,routine_catalog,routine_name,routine_schema,row,row_count,row_number,rows,savepoint,scale,schema,schema_name,scope_catalog,scope_name,scope_schema,scroll,search,second,section,security,select,self,sensitive,sequence,serializable,server_name,session,session_user,set,sets,similar,simple,size,smallint,some,source,space,specific,specific_name,specifictype,sql,sqlexception,sqlstate,sqlwarning,sqrt,start,state,statement,static,stddev_pop,stddev_samp,structure,style,subclass_origin,submultiset,substring,sum,symmetric,system,system_user,table,table_name,tablesample,temporary,then,ties,time,timestamp,timezone_hour,timezone_minute,to,top_level_count,trailing,transaction,transaction_active,transactions_committed,transactions_rolled_back,transform,transforms,translate,translation,treat,trigger,trigger_catalog,trigger_name,trigger_schema,trim,true,type,uescape,unbounded,uncommitted,under,union,unique,unknown,unnamed,unnest,update,upper,usage,user,user_defined_type_catalog,user_defined_type_code,user_defined_type_name,user_defined_type_schema,using,value,values,var_pop,var_samp,varchar,varying,view,when,whenever,where,width_bucket,window,with,within,without,work,write,year,zone}'::text[]);

-- PostgreDataSource.initialize: server version string (JDBCUtils.queryString)
SELECT version();

-- PostgreDataSource.initialize: PostgreUtils.isMetaObjectExists(session, 'pg_enum', '*') (server >= 12)
SELECT * FROM pg_catalog.pg_enum WHERE 1<>1 LIMIT 1;

-- PostgreDataSource.initialize: PostgreUtils.isMetaObjectExists(session, 'pg_class', 'reltype')
SELECT reltype FROM pg_catalog.pg_class WHERE 1<>1 LIMIT 1;

-- PostgreDatabase.cacheDataTypes (readAllTypes=false, typcategory supported because server >= 10)
-- base_type_name clause from PostgreDataTypeCache.getBaseTypeNameClause (server >= 7.3)
SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description
FROM pg_catalog.pg_type t
LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem 
LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid
WHERE t.typname IS NOT NULL
AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C');

-- PostgreDatabase.initEnumTypesCache -> EnumValueCache (supportsEnumTable = true)
SELECT * FROM pg_catalog.pg_enum;

-- ======================================================================
-- (b) SCHEMA BROWSING (navigator) - sent on the Metadata connection
-- ======================================================================

-- LIST SCHEMAS: the navigator 'Schemas' node shows the SchemaCache filled by statement 5.
-- The same query is sent again on refresh (F5) of the Schemas node
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass
 ORDER BY nspname;

-- LIST TABLES of schema traffic: PostgreSchema.TableCache.prepareLookupStatement (all objects, server >= 10)
-- $1 = 16385 (setLong) = pg_namespace.oid of traffic
SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key 
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
WHERE c.relnamespace=16385 AND c.relkind not in ('i','I','c');

-- LIST COLUMNS of traffic.segment_speed: PostgreSchema.TableCache.prepareChildrenStatement(forTable)
-- supportsSequences() = true adds dep.objid + pg_depend join. $1 = 16387 (setLong) = pg_class.oid of the table
-- If relacl / attacl values are non-NULL, pgjdbc repeats the two oid 1034 type look-ups on this connection
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid=16387
ORDER BY a.attnum;
