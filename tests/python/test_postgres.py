"""The Postgres wire protocol (`citylake serve --pg-bind`) with real clients: psql (Debian
postgresql-client), psycopg 3 (text and binary, server-side parameters) and asyncpg (binary,
prepared statements, portals fetched in chunks). The same users, policy, audit trail and
refusals as Flight SQL; bad input (garbage, wrong password, a Bind with the wrong number of
parameters, a cancel with the wrong key) is a clear error and the server keeps serving."""

import asyncio
import datetime
import decimal
import hashlib
import os
import re
import socket
import struct
import subprocess
import threading
import time

import asyncpg
import psycopg
import pytest

from conftest import PASSWORD, Server, binary
from test_flight_clients import adbc


class PgServer(Server):
    def __init__(self, lake, tls=None, extra=()):
        super().__init__(lake, tls=tls, extra=["--pg-bind", "127.0.0.1:0", *extra])
        self.pg = next(m for m in (re.search(r"Postgres protocol on 127\.0\.0\.1:(\d+)", line)
                                   for line in self.log) if m)
        self.port = int(self.pg.group(1))


@pytest.fixture(scope="module")
def pg(lake):
    s = PgServer(lake)
    yield s
    s.stop()
    assert s.proc.returncode == 0, "graceful shutdown on SIGTERM"


def dsn(server, user="ana", password=PASSWORD, **extra):
    parts = dict(host="127.0.0.1", port=server.port, user=user, password=password,
                 dbname="citylake", sslmode="disable", connect_timeout=10)
    parts.update(extra)
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in parts.items()})


def rows(server, user, sql, params=None, binary=False):
    with psycopg.connect(dsn(server, user), autocommit=True) as conn:
        with conn.cursor(binary=binary) as cur:
            cur.execute(sql, params)
            return cur.fetchall()


def flight_rows(server, user, sql):
    with adbc(server, user=user) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def psql(server, *args, user="ana", password=PASSWORD):
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
    return subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(server.port), "-U", user,
                           "-d", "citylake", "-v", "ON_ERROR_STOP=1", *args],
                          capture_output=True, text=True, env=env, timeout=120)


# --- psql ---------------------------------------------------------------------------------------

def test_psql_logs_in_and_runs_the_citys_functions(pg):
    done = psql(pg, "-A", "-t", "-c", "SELECT count(*) FROM common.districts")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "13"
    done = psql(pg, "-A", "-t", "-F", ",", "-c",
                "SELECT aqi_cn_daily(75, 150, 10, 80, 1.0, 160, 'HJ633-2012'), "
                "iaqi_cn('pm25', '24h', 75, 'HJ633-2012')")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "100,100", done.stdout


def test_psql_shows_where_a_syntax_error_is(pg):
    done = psql(pg, "-v", "VERBOSITY=verbose", "-c", "SELECT district FRM common.districts")
    assert done.returncode != 0
    assert "42601" in done.stderr and "FRM" in done.stderr, done.stderr
    # psql draws the cursor under the position the server reported
    assert re.search(r"LINE 1: SELECT district FRM common\.districts\n\s+\^", done.stderr), done.stderr


def test_a_wrong_password_is_28P01_and_no_data(pg):
    done = psql(pg, "-c", "SELECT 1", password="wrong")
    assert done.returncode != 0
    assert 'password authentication failed for user "ana"' in done.stderr, done.stderr
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(dsn(pg, "nobody", "x"))
    assert "password authentication failed" in str(e.value)
    assert rows(pg, "ana", "SELECT 1 AS one") == [(1,)]


# --- psycopg ------------------------------------------------------------------------------------

def test_psycopg_reads_the_same_rows_as_flight_sql_in_text_and_binary(pg):
    sql = "SELECT district, population, admin_code FROM common.districts ORDER BY admin_code"
    expected = flight_rows(pg, "ana", sql)
    assert len(expected) == 13
    assert rows(pg, "ana", sql) == expected
    assert rows(pg, "ana", sql, binary=True) == expected


@pytest.mark.parametrize("binary_format", [False, True])
def test_types_arrive_as_postgres_types(pg, binary_format):
    sql = ("SELECT CAST(1 AS SMALLINT) AS i2, CAST(2 AS INT) AS i4, CAST(3 AS BIGINT) AS i8, "
           "CAST(1.5 AS DOUBLE) AS f8, CAST('12.345' AS DECIMAL(10, 3)) AS n, 'text' AS t, "
           "DATE '2026-12-04' AS d, TIMESTAMP '2026-12-04 08:30:00' AS ts, true AS b, "
           "aqi_cn_primary(75, 150, 10, 80, 1.0, 160, 'HJ633-2012') AS primary_pollutants, "
           "CAST(NULL AS BIGINT) AS missing")
    with psycopg.connect(dsn(pg), autocommit=True) as conn, conn.cursor(binary=binary_format) as cur:
        cur.execute(sql)
        (row,) = cur.fetchall()
        types = [d.type_code for d in cur.description]
    assert row[:9] == (1, 2, 3, 1.5, decimal.Decimal("12.345"), "text", datetime.date(2026, 12, 4),
                       datetime.datetime(2026, 12, 4, 8, 30), True)
    assert row[10] is None
    # the primary pollutants, a LIST, as a text[] array
    assert isinstance(row[9], list) and row[9] and all(isinstance(p, str) for p in row[9]), row[9]
    # int2, int4, int8, float8, numeric, text, date, timestamp, bool, text[], int8
    assert types == [21, 23, 20, 701, 1700, 25, 1082, 1114, 16, 1009, 20], types


def test_server_side_parameters_are_typed_and_audited(pg):
    with psycopg.connect(dsn(pg, "root"), autocommit=True) as conn, conn.cursor() as cur:
        # psycopg sends %s as $1 with the extended protocol
        cur.execute("SELECT district FROM common.districts WHERE admin_code = %s AND population > %s",
                    (330106, 0))
        assert cur.fetchall() == [("Xihu",)]
        cur.execute("SELECT count(*) FROM common.districts WHERE district = %s", ("Xihu",))
        assert cur.fetchall() == [(1,)]
        cur.execute("SELECT %s::date + INTERVAL '1 day' AS d", (datetime.date(2026, 1, 31),))
        assert cur.fetchall() == [(datetime.date(2026, 2, 1),)]
    audited = rows(pg, "audrey", "SELECT parameters, client FROM system.audit_log "
                                 "WHERE request LIKE '%admin_code = $1 AND population > $2%' "
                                 "AND kind = 'query'")
    assert audited, "the execution is recorded"
    parameters, client = audited[-1]
    assert '"$1":"330106"' in parameters.replace(" ", ""), parameters
    assert client.startswith("postgres 127.0.0.1:"), client


def test_personal_values_never_reach_the_audit_trail(pg):
    """A lookup of a person by phone number, by literal or by bound parameter, is recorded with
    the number's SHA-256: the trail is append-only, so an erasure could not take it out later."""
    phone = rows(pg, "root", "SELECT caller_phone FROM hotline.cases WHERE caller_phone IS NOT NULL "
                             "ORDER BY case_id LIMIT 1")[0][0]
    with psycopg.connect(dsn(pg, "root"), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM hotline.cases WHERE district = %s AND caller_phone = %s",
                    ("Xihu", phone))
        cur.execute(f"SELECT count(*) FROM hotline.cases WHERE caller_phone IN ('{phone}', 'x')")
        # an error message that would echo the value
        with pytest.raises(psycopg.Error):
            cur.execute(f"SELECT count(*) FROM hotline.cases WHERE caller_phone = CAST('{phone}' AS DATE)")
        # the red team's shapes: the value joined to the column; the column renamed by a column
        # list (the text never names it: the plan does); an error quoting values from the data
        cur.execute(f"SELECT c.case_id FROM hotline.cases c JOIN (SELECT '{phone}' AS caller_phone) v "
                    "USING (caller_phone)")
        columns = ", ".join(f"c{i}" for i in range(len(cur.execute(
            "SELECT * FROM hotline.cases LIMIT 0").description)))
        cur.execute(f"SELECT count(*) FROM hotline.cases AS t({columns}) WHERE "
                    f"{' OR '.join(f'CAST(c{i} AS TEXT) = %s' for i in range(len(columns.split(','))))}",
                    [phone] * len(columns.split(",")))
        with pytest.raises(psycopg.Error):
            cur.execute("SELECT CAST(caller_phone AS TINYINT) FROM hotline.cases")
        # the second red team's: a message quoting the data unquoted (a regular expression
        # built from the column); a request that fails to plan, the column renamed by a column
        # list (no plan to say it is personal); a value written as a quoted identifier
        with pytest.raises(psycopg.Error):
            cur.execute("SELECT regexp_like('x', 'a' || caller_phone || '(') FROM hotline.cases "
                        "WHERE caller_phone IS NOT NULL ORDER BY case_id LIMIT 1")
        with pytest.raises(psycopg.Error):
            cur.execute(f"SELECT count(*) FROM hotline.cases AS t({columns}) WHERE "
                        f"{' OR '.join(f'c{i} = {chr(39)}{phone}{chr(39)}' for i in range(len(columns.split(','))))} "
                        "AND nosuch = 1")
        with pytest.raises(psycopg.Error):
            cur.execute(f'SELECT count(*) FROM hotline.cases WHERE caller_phone = "{phone}"')
    digest = hashlib.sha256(phone.encode()).hexdigest()
    audited = [tuple(v or "" for v in r) for r in rows(
        pg, "audrey", "SELECT request, parameters, error FROM system.audit_log "
                      "WHERE kind IN ('query', 'prepare') AND request LIKE '%hotline.cases%'")]
    # the failed ones: their messages withheld, their classes kept
    withheld = [r[2] for r in audited if "message withheld" in r[2]]
    assert len(withheld) >= 5, audited
    assert any(e.startswith("Arrow error: Cast error: ") for e in withheld), withheld
    regex = [r[2] for r in audited if "regexp_like" in r[0]]
    assert regex and all("message withheld" in e for e in regex), (regex, audited)
    assert not [r for r in audited if phone in " ".join(r)], audited
    with_hash = [r for r in audited if digest in r[0] + r[1]]
    assert len(with_hash) >= 5, audited
    # a personal request has every literal and parameter hashed (each can still be checked)
    xihu = hashlib.sha256(b"Xihu").hexdigest()
    assert any(xihu in r[1] for r in with_hash), with_hash
    # the server's log holds no phone number either
    assert phone not in "\n".join(pg.log), "the phone number is in the server's log"


def test_session_settings_clients_send_are_accepted_and_engine_options_refused(pg):
    with psycopg.connect(dsn(pg), autocommit=True) as conn, conn.cursor() as cur:
        for statement in ["SET extra_float_digits = 3", "SET application_name = 'dbeaver'",
                          "SET search_path TO public", "SET DateStyle = 'ISO'", "BEGIN", "COMMIT",
                          "BEGIN", "ROLLBACK", "DISCARD ALL", "SET TIME ZONE 'UTC'"]:
            cur.execute(statement)
        cur.execute("SHOW application_name")
        assert cur.fetchall() == [("dbeaver",)]
        cur.execute("SHOW transaction_isolation")
        assert cur.fetchall() == [("read committed",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cur.execute("SET datafusion.execution.batch_size = 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cur.execute("CREATE TABLE t AS SELECT 1")
        # identity is not the client's to set
        with pytest.raises(psycopg.Error):
            cur.execute("SET ROLE admin")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cur.execute("SET is_superuser = on")
        cur.execute("SHOW is_superuser")
        assert cur.fetchall() == [("off",)]
        with pytest.raises(psycopg.errors.UndefinedTable):
            cur.execute("SELECT * FROM nowhere.nothing")
        with pytest.raises(psycopg.errors.UndefinedFunction):
            cur.execute("SELECT no_such_function(1)")
        # an error ends the statement, not the connection
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]


def test_a_script_runs_statement_by_statement(pg):
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        # the simple protocol (no parameters): several statements in one message
        cur = conn.execute(psycopg.sql.SQL("SET application_name = 'x'; SELECT 1; SELECT 2 AS two"),
                           prepare=False)
        assert cur.statusmessage == "SET"
        assert cur.nextset() and cur.fetchall() == [(1,)]
        assert cur.nextset() and cur.fetchall() == [(2,)]


# --- asyncpg ------------------------------------------------------------------------------------

def test_asyncpg_prepared_statements_binary_and_portals_in_chunks(pg):
    async def main():
        conn = await asyncpg.connect(host="127.0.0.1", port=pg.port, user="ana", password=PASSWORD,
                                     database="citylake", ssl=False)
        try:
            statement = await conn.prepare(
                "SELECT district, population FROM common.districts WHERE population > $1 "
                "ORDER BY admin_code")
            assert [t.name for t in statement.get_parameters()] == ["int8"]
            big = await statement.fetch(0)
            assert len(big) == 13
            assert await statement.fetch(10 ** 12) == []
            # a portal fetched 5 rows at a time (Execute with a row limit)
            async with conn.transaction():
                seen = [r async for r in conn.cursor("SELECT station_id FROM environment.air_stations "
                                                    "ORDER BY station_id", prefetch=5)]
            expected = await conn.fetch("SELECT station_id FROM environment.air_stations ORDER BY station_id")
            assert seen == expected and len(seen) > 5
            value = await conn.fetchval("SELECT CAST('12.345' AS DECIMAL(10, 3))")
            assert value == decimal.Decimal("12.345")
        finally:
            await conn.close()
    asyncio.run(main())


# --- governance ---------------------------------------------------------------------------------

def test_a_district_analyst_is_masked_and_filtered_exactly_as_over_flight(pg):
    sql = ("SELECT case_id, district, caller_name, caller_phone, caller_id_number FROM hotline.cases "
           "ORDER BY case_id LIMIT 200")
    over_pg = rows(pg, "dora", sql)
    assert over_pg == flight_rows(pg, "dora", sql)
    assert {r[1] for r in over_pg} == {"Xihu"}
    for _, _, name, phone, id_number in over_pg:
        assert phone is None or re.fullmatch(r"\d{3}\*{4}\d{4}", phone), phone
        assert id_number is None or re.fullmatch(r".{6}\*{8}.{4}", id_number), id_number
    assert rows(pg, "dora", "SELECT count(*) FROM hotline.cases") == \
        rows(pg, "root", "SELECT count(*) FROM hotline.cases WHERE district = 'Xihu'")


def test_psql_lists_the_governed_catalog(pg):
    """pg_catalog is computed from the session's own catalog: psql's \\dt and \\dn show what the
    role may list, nothing more — the same over Flight SQL."""
    def listed(user):
        done = psql(pg, "-A", "-t", "-F", ".", "-c", "\\dt", user=user)
        assert done.returncode == 0, done.stderr
        return {"{}.{}".format(*line.split(".")[:2]) for line in done.stdout.split()}
    dora, ana, root = listed("dora"), listed("ana"), listed("root")
    assert "hotline.cases" in dora and "finance.expenditures" not in dora, dora
    assert "hotline.cases" not in ana and "traffic.segment_speed" in ana, ana
    assert {"finance.expenditures", "hotline.cases"} <= root
    assert "system.audit_log" in root and "system.audit_log" not in dora
    done = psql(pg, "-A", "-t", "-c", "\\dn", user="dora")
    assert done.returncode == 0 and "hotline" in done.stdout, done.stderr
    # columns: those information_schema lists for the role, in order, with Postgres types
    sql = ("SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "
           "JOIN pg_catalog.pg_class c ON a.attrelid = c.oid JOIN pg_catalog.pg_namespace n "
           "ON c.relnamespace = n.oid WHERE n.nspname = 'common' AND c.relname = 'districts' ORDER BY a.attnum")
    columns = rows(pg, "dora", sql)
    expected = rows(pg, "dora", "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                "'common' AND table_name = 'districts' ORDER BY ordinal_position")
    assert [c for c, _ in columns] == [c for (c,) in expected]
    assert ("population", "bigint") in columns, columns
    # the same catalog over Flight SQL
    flight = {r[0] for r in flight_rows(pg, "ana", "SELECT relname FROM pg_catalog.pg_class")}
    assert "cases" not in flight and "segment_speed" in flight
    assert rows(pg, "ana", "SELECT count(*) FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c "
                           "ON a.attrelid = c.oid WHERE c.relname = 'expenditures'") == [(0,)]


def test_psql_describes_a_table_and_lists_the_citys_functions(pg):
    """\\d runs psql's own describe queries (correlated subqueries over pg_attrdef and
    pg_collation, the policies, statistics, publications and inheritance footers): the
    columns are the role's, with their Postgres types; a hidden dataset is not found."""
    done = psql(pg, "-c", "\\d traffic.segment_speed")
    assert done.returncode == 0, done.stderr
    assert 'Table "traffic.segment_speed"' in done.stdout, done.stdout
    expected = rows(pg, "ana", "SELECT column_name FROM information_schema.columns WHERE "
                               "table_schema = 'traffic' AND table_name = 'segment_speed'")
    described = [line.split("|")[0].strip() for line in done.stdout.splitlines()[3:]
                 if "|" in line]
    assert sorted(described) == sorted(c for (c,) in expected), done.stdout
    # numeric(p,s) shown with its precision and scale; a masked column still listed for dora
    done = psql(pg, "-c", "\\d finance.expenditures", user="root")
    assert done.returncode == 0 and re.search(r"\| numeric\(\d+,\d+\)", done.stdout), done.stdout
    done = psql(pg, "-c", "\\d hotline.cases", user="dora")
    assert done.returncode == 0 and "caller_phone" in done.stdout, done.stderr
    done = psql(pg, "-c", "\\d finance.expenditures", user="ana")
    assert done.returncode != 0 and "Did not find any relation" in done.stderr, done.stderr
    # \d of a pattern runs as well
    done = psql(pg, "-c", "\\d common.*")
    assert done.returncode == 0 and "district" in done.stdout, done.stderr
    # \df: the city's functions, in the default schema
    done = psql(pg, "-A", "-t", "-c", "\\df")
    assert done.returncode == 0, done.stderr
    names = {line.split("|")[1] for line in done.stdout.splitlines() if "|" in line}
    assert {"aqi_cn_daily", "iaqi_cn", "aqi_cn_primary"} <= names, names
    done = psql(pg, "-A", "-t", "-c", "\\df aqi*")
    assert done.returncode == 0 and all(n.startswith("aqi") for n in
                                        (line.split("|")[1] for line in done.stdout.splitlines())), done.stdout


def test_psql_copies_a_query_to_a_csv_file(pg, tmp_path):
    target = tmp_path / "districts.csv"
    sql = "SELECT district, population, admin_code FROM common.districts ORDER BY admin_code"
    done = psql(pg, "-c", f"\\copy ({sql}) TO '{target}' WITH CSV HEADER")
    assert done.returncode == 0 and "COPY 13" in done.stdout, (done.stdout, done.stderr)
    import csv
    with open(target, newline="") as f:
        read = list(csv.reader(f))
    assert read[0] == ["district", "population", "admin_code"]
    assert [tuple(r) for r in read[1:]] == [tuple(map(str, r)) for r in rows(pg, "ana", sql)]
    # governed like any query: dora's copy of the hotline is masked and her district only
    target = tmp_path / "cases.txt"
    done = psql(pg, "-c", f"\\copy (SELECT district, caller_phone FROM hotline.cases LIMIT 50) TO '{target}'",
                user="dora")
    assert done.returncode == 0, done.stderr
    lines = target.read_text().splitlines()
    assert lines and all(line.split("\t")[0] == "Xihu" for line in lines), lines[:3]
    assert all(re.fullmatch(r"\d{3}\*{4}\d{4}|\\N", line.split("\t")[1]) for line in lines), lines[:3]
    # writing is refused (and recorded); so is a file on the server
    done = psql(pg, "-c", f"\\copy common.districts FROM '{target}'")
    assert done.returncode != 0 and "read-only" in done.stderr, done.stderr
    done = psql(pg, "-c", "COPY common.districts TO '/tmp/x.csv'")
    assert done.returncode != 0 and "not allowed" in done.stderr, done.stderr
    done = psql(pg, "-c", f"\\copy (SELECT payee FROM finance.expenditures) TO '{target}'", user="dora")
    assert done.returncode != 0 and "not found" in done.stderr.lower(), done.stderr
    refused = rows(pg, "audrey", "SELECT outcome FROM system.audit_log WHERE request LIKE 'COPY %common.districts FROM%'")
    assert refused and refused[-1][0] == "refused", refused


def test_psycopg_copy_to_stdout_in_text_csv_and_binary(pg):
    sql = "SELECT district, population FROM common.districts ORDER BY admin_code"
    expected = rows(pg, "ana", sql)
    with psycopg.connect(dsn(pg), autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ({sql}) TO STDOUT") as copy:
            copy.set_types(["text", "int8"])
            assert list(copy.rows()) == expected
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["text", "int8"])
            assert list(copy.rows()) == expected
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv, HEADER, DELIMITER ';')") as copy:
            text = b"".join(bytes(block) for block in copy).decode()
        assert text.splitlines()[0] == "district;population"
        assert text.splitlines()[1:] == [f"{d};{p}" for d, p in expected]
        # no rows: binary COPY still sends its header
        with cur.copy(f"COPY ({sql} LIMIT 0) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["text", "int8"])
            assert list(copy.rows()) == []
        # the extended protocol does not run COPY; the connection goes on
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            cur.execute("COPY (SELECT 1) TO STDOUT", prepare=True)
        assert cur.execute("SELECT 1").fetchall() == [(1,)]


def test_psql_cancels_a_query_on_interrupt(pg):
    env = dict(os.environ, PGPASSWORD=PASSWORD)
    proc = subprocess.Popen(["psql", "-X", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "root",
                             "-d", "citylake", "-c", LONG], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    proc.send_signal(2)  # what ^C does: psql sends a CancelRequest
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "cancelled by the client" in err, err


CLIENT_SEQUENCES = os.path.join(os.path.dirname(__file__), "pg_clients")


def client_statements(name):
    """The statements of a recorded client sequence (tests/python/pg_clients/NAME.sql), each
    with whether a `-- citylake: not yet …` comment line before it says it does not run here."""
    statements, lines, not_yet = [], [], False
    with open(os.path.join(CLIENT_SEQUENCES, name)) as f:
        for line in f.read().splitlines():
            if line.lstrip().startswith("--"):
                not_yet = not_yet or line.lstrip().startswith("-- citylake: not yet")
                continue
            lines.append(line)
            if line.rstrip().endswith(";"):
                sql = "\n".join(lines).strip().rstrip(";").strip()
                if sql:
                    statements.append((sql, not_yet))
                lines, not_yet = [], False
    return statements


def run_client_statements(server, statements, user, binary):
    """Runs each statement on one connection: what the result rows hold, and which
    statements failed (with the error)."""
    seen, failed = set(), {}
    with psycopg.connect(dsn(server, user), autocommit=True) as conn:
        for i, (sql, _) in enumerate(statements):
            with conn.cursor(binary=binary) as cur:
                try:
                    cur.execute(sql)
                except psycopg.Error as e:
                    failed[i] = str(e).splitlines()[0]
                    continue
                if cur.description:
                    for row in cur.fetchall():
                        seen.update(str(v) for v in row)
    return seen, failed


@pytest.mark.parametrize("client", sorted(f for f in os.listdir(CLIENT_SEQUENCES) if f.endswith(".sql")))
def test_recorded_bi_client_sequences_run_on_the_governed_catalog(pg, client):
    """The start-up and schema-browse statements of DBeaver, Grafana, Metabase and npgsql
    (Power BI), as recorded from their sources (tests/python/pg_clients): every statement runs
    without error in the simple protocol (text) and the extended one (binary) — but those
    marked `-- citylake: not yet`, which must still fail (the marker goes when one runs) —, and
    what they list is the role's catalog."""
    statements = client_statements(client)
    assert statements, client
    runs = [("ana", False), ("ana", True), ("dora", True)]
    results = {run: run_client_statements(pg, statements, *run) for run in runs}
    failing = set()
    for run, (_, failed) in results.items():
        for i, error in failed.items():
            assert statements[i][1], f"{client} {run}: {error}\n{statements[i][0]}"
            failing.add(i)
    for i, (sql, not_yet) in enumerate(statements):
        assert not not_yet or i in failing, f"{client}: runs now, remove its 'not yet' marker:\n{sql}"
    for run in runs[:2]:
        ana = results[run][0]
        assert "cases" not in ana and "caller_phone" not in ana and "expenditures" not in ana
    assert "expenditures" not in results[runs[2]][0]


def test_sqlalchemy2_and_pandas_read_and_reflect(pg):
    """SQLAlchemy 2 (the path Superset and notebooks take) with pandas, table and column
    reflection; run with the second virtualenv's Python."""
    python = os.environ.get("CITYLAKE_SQLALCHEMY2_PYTHON")
    if not python:
        pytest.fail("CITYLAKE_SQLALCHEMY2_PYTHON is not set: scripts/test.sh makes the second "
                    "virtualenv (scripts/requirements-sqlalchemy2.txt) and sets it")
    client = os.path.join(os.path.dirname(__file__), "sqlalchemy2_client.py")

    def run(user):
        done = subprocess.run([python, client, str(pg.port), user, PASSWORD], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
        import json
        return json.loads(done.stdout)
    ana, dora = run("ana"), run("dora")
    assert ana["server_version"][:2] == [16, 6]
    assert [tuple(r) for r in ana["read_sql"]] == \
        rows(pg, "ana", "SELECT district, population FROM common.districts ORDER BY admin_code")
    assert len(ana["read_sql_params"]) == 1
    # reflection shows the governed catalog
    assert "segment_speed" in ana["tables"]["traffic"] and ana["tables"]["hotline"] == []
    assert "cases" in dora["tables"]["hotline"] and "expenditures" not in dora["tables"]["finance"]
    assert {"traffic", "common"} <= set(ana["schemas"])
    assert ana["has_table"] == [True, False]
    expected = rows(pg, "ana", "SELECT column_name FROM information_schema.columns WHERE "
                               "table_schema = 'common' AND table_name = 'districts' ORDER BY ordinal_position")
    assert [c[0] for c in ana["columns"]] == [c for (c,) in expected]
    # the types SQLAlchemy recognises (format_type's SQL spellings)
    assert ["population", "BIGINT", True] in ana["columns"], ana["columns"]
    assert ["area_km2", "DOUBLE PRECISION", True] in ana["columns"], ana["columns"]
    assert ana["pk"] == [] and ana["fks"] == [] and ana["indexes"] == []
    assert ana["read_sql_table"] == [[c for (c,) in expected], 13]


def test_a_comment_only_query_is_an_empty_query(pg):
    """pgx's ping (Grafana's health check) is the simple query `-- ping`; lib/pq's is `;`."""
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        for sql in ("-- ping", ";", "  "):
            cur = conn.execute(sql)
            assert cur.description is None and conn.pgconn.transaction_status == 0, sql
        assert conn.execute("SELECT 1").fetchall() == [(1,)]


def test_hidden_datasets_answer_like_missing_ones_over_postgres(pg):
    def error(user, sql):
        with pytest.raises(psycopg.Error) as e:
            rows(pg, user, sql)
        return e.value.sqlstate, str(e.value)
    hidden = error("dora", "SELECT payee FROM finance.expenditures")
    missing = error("dora", "SELECT payee FROM finance.expenditurez")
    assert hidden[0] == missing[0] == "42P01"
    assert hidden[1].replace("expenditures", "X") == missing[1].replace("expenditurez", "X")
    state, message = error("audrey", "SELECT count(*) FROM common.districts")
    assert state == "42501" and "permission denied" in message
    # a prepared statement over a hidden dataset is refused at Parse, the same way
    async def prepare():
        conn = await asyncpg.connect(host="127.0.0.1", port=pg.port, user="dora", password=PASSWORD,
                                     database="citylake", ssl=False)
        try:
            with pytest.raises(asyncpg.exceptions.UndefinedTableError):
                await conn.prepare("SELECT payee FROM finance.expenditures WHERE amount > $1")
        finally:
            await conn.close()
    asyncio.run(prepare())


def test_logins_and_refusals_are_in_the_audit_trail(pg):
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn(pg, "dora", "not her password"))
    with pytest.raises(psycopg.Error):
        rows(pg, "dora", "SELECT payee AS pg_refused FROM finance.expenditures")
    # (`user` unquoted is PostgreSQL's keyword, the current user: the column is `"user"`)
    assert rows(pg, "audrey", "SELECT user AS u, current_user AS c") == [("audrey", "audrey")]
    records = rows(pg, "audrey", 'SELECT kind, request, outcome, "user", client, error '
                                 "FROM system.audit_log "
                                 "WHERE client LIKE 'postgres %' OR request = 'postgres password' "
                                 "ORDER BY seq")
    logins = [r for r in records if r[0] == "login" and r[3] == "dora"]
    assert any(r[2] == "refused" for r in logins) and any(r[2] == "ok" for r in logins), logins
    refused = [r for r in records if "pg_refused" in r[1]]
    assert refused and refused[-1][2] == "refused", refused
    audit_dir = pg_audit_dir(pg)
    text = "".join(p.read_text() for p in audit_dir.glob("*.jsonl"))
    assert "not her password" not in text and PASSWORD not in text


def pg_audit_dir(server):
    import pathlib
    catalog = pathlib.Path(server.proc.args[server.proc.args.index("--catalog") + 1])
    return catalog.parent / "audit"


def wait_for_login(server, user, password):
    deadline = time.time() + 10
    while True:
        try:
            return psycopg.connect(dsn(server, user, password), autocommit=True)
        except psycopg.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def refused_soon(conn):
    """The error the connection's statements get once the users file change is seen."""
    deadline = time.time() + 10
    with pytest.raises(psycopg.OperationalError) as e:
        while time.time() < deadline:
            conn.execute("SELECT 1")
            time.sleep(0.2)
    return str(e.value)


def test_a_changed_password_or_removed_user_is_refused_at_the_next_statement(lake, pg):
    users = lake / "users.toml"
    add = lambda password: subprocess.run(  # noqa: E731
        [binary(), "user", "add", "temp_pg", "--role", "analyst", "--users", str(users)],
        check=True, capture_output=True, env=dict(os.environ, CITYLAKE_PASSWORD=password))
    remove = lambda: subprocess.run(  # noqa: E731
        [binary(), "user", "remove", "temp_pg", "--users", str(users)], check=True, capture_output=True)
    add(PASSWORD)
    try:
        conn = wait_for_login(pg, "temp_pg", PASSWORD)
        assert conn.execute("SELECT 1").fetchall() == [(1,)]
        # the password changes: the connection that logged in with the old one ends
        remove()
        add("another password")
        assert "password changed" in refused_soon(conn)
        conn = wait_for_login(pg, "temp_pg", "another password")
        assert conn.execute("SELECT 1").fetchall() == [(1,)]
    finally:
        remove()
    assert "no longer exists" in refused_soon(conn)


# --- cancel, limits, bad input ------------------------------------------------------------------

LONG = ("SELECT count(*) FROM traffic.segment_speed a JOIN traffic.segment_speed b "
        "ON a.segment_id = b.segment_id")


def test_statement_timeout_shortens_the_query_timeout(pg):
    with psycopg.connect(dsn(pg, "root"), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '1s'")
        started = time.time()
        with pytest.raises(psycopg.errors.QueryCanceled) as e:
            conn.execute(LONG)
        assert "timeout" in str(e.value) and time.time() - started < 30, str(e.value)
        conn.execute("SET statement_timeout = 0")
        assert conn.execute("SELECT 1").fetchall() == [(1,)]


def test_a_cancel_request_stops_the_query(pg):
    with psycopg.connect(dsn(pg, "root"), autocommit=True) as conn:
        threading.Timer(1.5, conn.cancel).start()
        started = time.time()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(LONG)
        assert time.time() - started < 60
        assert conn.execute("SELECT 1").fetchall() == [(1,)]
    recorded = rows(pg, "audrey", "SELECT outcome FROM system.audit_log WHERE request = %s", (LONG,))
    assert recorded and recorded[-1][0] == "cancelled", recorded


def raw_login(server, user="ana", password=PASSWORD, extra=b""):
    """A socket past the startup phase, speaking the protocol by hand; its key data too."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    body = (struct.pack("!i", 196608) + b"user\0" + user.encode() + b"\0database\0citylake\0"
            + extra + b"\0")
    s.sendall(struct.pack("!i", len(body) + 4) + body)
    key = None
    while True:
        tag, payload = read_message(s)
        if tag == b"R" and struct.unpack("!i", payload[:4])[0] == 3:
            pw = password.encode() + b"\0"
            s.sendall(b"p" + struct.pack("!i", len(pw) + 4) + pw)
        elif tag == b"K":
            key = struct.unpack("!ii", payload[:8])
        elif tag == b"Z":
            return s, key
        elif tag == b"E":
            raise RuntimeError(payload)


def read_message(s):
    header = recv_exactly(s, 5)
    length = struct.unpack("!i", header[1:])[0]
    return header[:1], recv_exactly(s, length - 4)


def recv_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def message(tag, body):
    return tag + struct.pack("!i", len(body) + 4) + body


def until_ready(s):
    seen = []
    while True:
        tag, payload = read_message(s)
        seen.append((tag, payload))
        if tag == b"Z":
            return seen


def error_code(seen):
    for tag, payload in seen:
        if tag == b"E":
            fields = dict((f[:1], f[1:].decode()) for f in payload.split(b"\0") if f)
            return fields.get(b"C"), fields.get(b"M")
    return None


def test_execute_row_limits_as_postgresql_reads_them(pg):
    """Execute's row limit: 0 or less is every row (a -1 once closed the connection untold: pgwire
    reserved room for 2^64 rows), a huge one is every row too without reserving room for it, and a
    small one suspends the portal; the rows come as they are encoded."""
    s, _ = raw_login(pg)
    with s:
        for max_rows in (-1, 0, 2**31 - 1):
            parse = b"\0SELECT district FROM common.districts ORDER BY district\0" + struct.pack("!h", 0)
            bind = b"\0\0" + struct.pack("!hhh", 0, 0, 0)
            s.sendall(message(b"P", parse) + message(b"B", bind)
                      + message(b"E", b"\0" + struct.pack("!i", max_rows)) + message(b"S", b""))
            seen = until_ready(s)
            assert error_code(seen) is None, (max_rows, error_code(seen))
            assert sum(tag == b"D" for tag, _ in seen) == 13, max_rows
            assert any(tag == b"C" and payload.startswith(b"SELECT 13") for tag, payload in seen)
        # a portal read 5 rows at a time: 5, 5, 3 and the end
        bind = b"p\0\0" + struct.pack("!hhh", 0, 0, 0)
        s.sendall(message(b"P", b"\0SELECT district FROM common.districts\0" + struct.pack("!h", 0))
                  + message(b"B", bind) + message(b"S", b""))
        until_ready(s)
        got = []
        for _ in range(3):
            s.sendall(message(b"E", b"p\0" + struct.pack("!i", 5)) + message(b"S", b""))
            seen = until_ready(s)
            got.append((sum(tag == b"D" for tag, _ in seen), [t for t, _ in seen if t in (b"s", b"C")]))
        assert got == [(5, [b"s"]), (5, [b"s"]), (3, [b"C"])], got
        # and once more past the end: nothing, complete
        s.sendall(message(b"E", b"p\0" + struct.pack("!i", 5)) + message(b"S", b""))
        seen = until_ready(s)
        assert [t for t, _ in seen if t in (b"D", b"s", b"C")] == [b"C"], seen
    assert rows(pg, "ana", "SELECT 1") == [(1,)]


def test_a_bind_with_the_wrong_number_of_parameters_is_refused(pg):
    s, _ = raw_login(pg)
    with s:
        parse = b"\0" + b"SELECT $1::bigint + 1\0" + struct.pack("!h", 0)
        bind = b"\0\0" + struct.pack("!h", 0) + struct.pack("!h", 0) + struct.pack("!h", 0)
        execute = b"\0" + struct.pack("!i", 0)
        s.sendall(message(b"P", parse) + message(b"B", bind) + message(b"E", execute) + message(b"S", b""))
        code, text = error_code(until_ready(s))
        assert code == "08P01" and "requires 1" in text, (code, text)
        # the connection still works
        s.sendall(message(b"Q", b"SELECT 41 + 1\0"))
        seen = until_ready(s)
        assert any(tag == b"D" and payload.endswith(b"42") for tag, payload in seen), seen


def test_a_list_bound_to_any_lists_the_governed_tables_as_pgcli_does(pg):
    """pgcli's `\\dt` (pgspecial) binds a Python list to `relkind = ANY(%s)`: the parameter is
    typed as a list of the column's type, in text and binary."""
    sql = ("SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
           "LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
           "WHERE c.relkind = ANY(%s) AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' "
           "ORDER BY 1, 2")
    tables = rows(pg, "ana", "SELECT table_schema, table_name FROM information_schema.tables "
                             "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN "
                             "('information_schema', 'pg_catalog') ORDER BY 1, 2")
    assert ("hotline", "cases") not in tables and tables
    for binary in (False, True):
        assert rows(pg, "ana", sql, (["r", "p"],), binary=binary) == tables
        assert rows(pg, "ana", sql, ([],), binary=binary) == []
    with psycopg.connect(dsn(pg, "ana"), autocommit=True) as conn:
        n = conn.execute("SELECT count(*) FROM common.districts WHERE population = ANY(%s)",
                         ([0, -1],)).fetchall()
        assert n == [(0,)], n


def test_a_huge_parameter_number_is_refused_and_the_server_lives(pg):
    """Attack: `$99999999999` in a Parse once made the server reserve a place per
    parameter — terabytes — and abort, ending both protocols for everyone."""
    s, _ = raw_login(pg)
    with s:
        for sql in (b"SELECT $99999999999", b"SELECT $65536", b"SELECT $1 + $400000000"):
            s.sendall(message(b"P", b"\0" + sql + b"\0" + struct.pack("!h", 0)) + message(b"S", b""))
            code, text = error_code(until_ready(s))
            assert code == "54000" and "at most 65535 parameters" in text, (sql, code, text)
        s.sendall(message(b"Q", b"SELECT 41 + 1\0"))
        seen = until_ready(s)
        assert any(tag == b"D" and payload.endswith(b"42") for tag, payload in seen), seen
    with psycopg.connect(dsn(pg, "ana"), autocommit=True) as conn:
        assert conn.execute("SELECT %s::bigint + 1", [41], prepare=True).fetchall() == [(42,)]


def test_a_users_query_history_does_not_tell_hidden_from_missing(pg):
    """Attack: ana's own `system.queries` once showed a query of a hidden dataset as
    `refused` (its error naming it hidden) and one of a missing dataset as `error`:
    an oracle for which restricted datasets exist. The audit roles still see the truth."""
    told = {}
    for name in ("hotline.cases", "hotline.calls"):  # hidden from ana; missing
        marker = f"probe_{name.replace('.', '_')}"
        with pytest.raises(psycopg.Error) as e:
            rows(pg, "ana", f"SELECT 1 AS {marker} FROM {name}")
        told[name] = str(e.value).replace(name.split(".")[1], "X")
        own = rows(pg, "ana", "SELECT state, error FROM system.queries WHERE sql LIKE %s",
                   (f"%AS {marker} %",))
        assert len(own) == 1, own
        told[name + " history"] = (own[0][0], own[0][1].replace(name.split(".")[1], "X"))
    assert told["hotline.cases"] == told["hotline.calls"], told
    assert told["hotline.cases history"] == told["hotline.calls history"], told
    assert told["hotline.cases history"][0] == "error", told
    seen = rows(pg, "audrey", "SELECT state, error FROM system.queries WHERE sql LIKE %s",
                ("%AS probe_hotline_cases %",))
    assert seen[0][0] == "refused" and "hidden from this user" in seen[0][1], seen


def test_an_absurd_statement_timeout_is_bounded_not_a_crash(pg):
    """Attack: a timeout whose milliseconds overflow 64 bits once panicked the connection."""
    with psycopg.connect(dsn(pg, "ana"), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '999999999999999d'")
        assert conn.execute("SELECT 1").fetchall() == [(1,)]
        conn.execute("SET statement_timeout = '18446744073709551615'")
        assert conn.execute("SELECT 2").fetchall() == [(2,)]


def test_the_servers_settings_are_not_the_start_up_messages(pg):
    s, _ = raw_login(pg, extra=b"is_superuser\0on\0server_version\099\0")
    with s:
        s.sendall(message(b"Q", b"SHOW is_superuser\0"))
        seen = until_ready(s)
        assert any(tag == b"D" and payload.endswith(b"off") for tag, payload in seen), seen


def test_named_statements_per_connection_are_bounded(pg):
    s, _ = raw_login(pg)
    with s:
        batch = b"".join(message(b"P", f"s{i}\0SELECT {i}\0".encode() + struct.pack("!h", 0))
                         for i in range(256))
        s.sendall(batch + message(b"S", b""))
        assert error_code(until_ready(s)) is None
        s.sendall(message(b"P", b"one_more\0SELECT 1\0" + struct.pack("!h", 0)) + message(b"S", b""))
        code, text = error_code(until_ready(s))
        assert code == "53400" and "256" in text, (code, text)
        # closing one makes room; replacing an existing name needs none
        s.sendall(message(b"C", b"Ss0\0") + message(b"P", b"one_more\0SELECT 1\0" + struct.pack("!h", 0))
                  + message(b"P", b"s1\0SELECT 2\0" + struct.pack("!h", 0)) + message(b"S", b""))
        assert error_code(until_ready(s)) is None
        s.sendall(message(b"Q", b"DEALLOCATE ALL\0"))
        until_ready(s)
        s.sendall(message(b"P", b"after\0SELECT 1\0" + struct.pack("!h", 0)) + message(b"S", b""))
        assert error_code(until_ready(s)) is None


def test_what_prepared_statements_and_portals_hold_per_connection_is_bounded(pg):
    """Red team, round 3: names alone were counted, so one connection could keep 256 statements and
    256 portals of up to 16 MiB each (a `BEGIN` followed by 16 MiB was kept without the statement
    size check), and a portal's value kept its whole message's read buffer. Now a connection's
    statements and portals hold at most 16 MiB together, and no statement is over 8 MiB."""
    mib = b"x" * (1 << 20)

    def parse(s, name, sql):
        s.sendall(message(b"P", name + b"\0" + sql + b"\0" + struct.pack("!h", 0)) + message(b"S", b""))
        return error_code(until_ready(s))

    def bind(s, portal, statement, value):
        body = (portal + b"\0" + statement + b"\0" + struct.pack("!h", 0) + struct.pack("!h", 1)
                + struct.pack("!i", len(value)) + value + struct.pack("!h", 0))
        s.sendall(message(b"B", body) + message(b"S", b""))
        return error_code(until_ready(s))

    s, _ = raw_login(pg)
    with s:
        # more than any statement may be: refused whatever it starts with
        code, text = parse(s, b"huge", b"BEGIN " + mib * 9)
        assert code == "54000" and "statement too large" in text, (code, text)
        refused = None
        for i in range(20):
            seen = parse(s, b"b%d" % i, b"BEGIN " + mib)
            if seen is not None:
                refused = (i, seen)
                break
        assert refused is not None and refused[0] == 15, refused
        code, text = refused[1]
        assert code == "53400" and "would hold more than 16.0 MiB" in text, (code, text)
        # closing one makes room
        s.sendall(message(b"C", b"Sb0\0") + message(b"S", b""))
        until_ready(s)
        assert parse(s, b"again", b"BEGIN " + mib) is None
        s.sendall(message(b"Q", b"DEALLOCATE ALL\0"))
        until_ready(s)
        # portals: bound values count with the statements
        assert parse(s, b"q", b"SELECT length($1::text)") is None
        refused = None
        for i in range(20):
            seen = bind(s, b"p%d" % i, b"q", mib)
            if seen is not None:
                refused = (i, seen)
                break
        assert refused is not None and refused[0] == 15, refused
        assert refused[1][0] == "53400", refused
        # the connection serves on
        s.sendall(message(b"C", b"Pp0\0") + message(b"S", b""))
        until_ready(s)
        assert bind(s, b"p_last", b"q", b"abc") is None
    assert rows(pg, "ana", "SELECT 1") == [(1,)]


def test_session_settings_per_connection_are_bounded(pg):
    # any name may be set (as PostgreSQL's custom settings), not any number nor any length
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        refused = None
        for i in range(300):
            try:
                conn.execute(f"SET app.k{i} = 'v'")
            except psycopg.Error as e:
                refused = (i, e.sqlstate, str(e))
                break
        assert refused and refused[0] <= 256 and refused[1] == "53400", refused
        conn.execute("SET app.k0 = 'again'")  # replacing one needs no room
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SET app.k0 = '" + "x" * 5000 + "'")
        assert e.value.sqlstate == "53400", e.value
        conn.execute("RESET ALL")
        conn.execute("SET app.after = 'v'")
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_garbage_and_wrong_cancel_keys_leave_the_server_serving(pg):
    # bytes that are no startup message
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(64))
        try:
            s.recv(1024)
        except OSError:
            pass
    # a startup message that lies about its length
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as s:
        s.sendall(struct.pack("!i", 2 ** 30) + b"\0\3\0\0user\0")
        try:
            s.recv(1024)
        except OSError:
            pass
    # a query before any login
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as s:
        s.sendall(message(b"Q", b"SELECT * FROM hotline.cases\0"))
        try:
            answer = s.recv(4096)
        except OSError:
            answer = b""
        assert b"Xihu" not in answer and b"caller" not in answer
    # a cancel with a wrong key does not stop the victim's query
    victim, (pid, secret) = raw_login(pg, "root")
    with victim:
        victim.sendall(message(b"Q", b"SELECT count(*) FROM environment.air_quality_hourly\0"))
        with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as c:
            c.sendall(struct.pack("!iiii", 16, 80877102, pid, secret ^ 0x5A5A))
        seen = until_ready(victim)
        assert error_code(seen) is None, seen
    assert rows(pg, "ana", "SELECT 1") == [(1,)]


def test_messages_are_bounded_before_they_are_read(pg):
    """A message's length is checked as its header arrives: before login 10,000 bytes, after
    16 MiB; the connection ends with 08P01 without the server reading (or buffering) the rest."""
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as s:
        body = struct.pack("!i", 196608) + b"user\0ana\0\0"
        s.sendall(struct.pack("!i", len(body) + 4) + body)
        tag, _ = read_message(s)
        assert tag == b"R"  # asked for the password
        s.sendall(b"Q" + struct.pack("!i", 2 ** 30))  # 1 GiB announced, never sent
        tag, payload = read_message(s)
        assert tag == b"E" and b"08P01" in payload and b"before logging in" in payload, payload
    s, _ = raw_login(pg)
    with s:
        s.sendall(b"Q" + struct.pack("!i", 64 << 20))
        tag, payload = read_message(s)
        assert tag == b"E" and b"08P01" in payload, payload
    assert rows(pg, "ana", "SELECT 1") == [(1,)]


def test_a_flood_of_password_attempts_is_bounded_and_others_still_log_in(pg):
    def attempt(_):
        try:
            psycopg.connect(dsn(pg, "nobody", "wrong password"), connect_timeout=30).close()
            return "accepted"
        except psycopg.OperationalError as e:
            # wrong password, or too many logins at once (checked or starting): refused either way
            return "refused" if ("password authentication failed" in str(e) or "53300" in str(e)
                                 or "retry shortly" in str(e)) else str(e)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(100) as pool:
        outcomes = list(pool.map(attempt, range(100)))
    assert set(outcomes) == {"refused"}, set(outcomes)
    assert rows(pg, "ana", "SELECT 1") == [(1,)]


def test_a_suspended_portal_ends_with_its_user(lake, pg):
    users = lake / "users.toml"
    env = dict(os.environ, CITYLAKE_PASSWORD=PASSWORD)
    subprocess.run([binary(), "user", "add", "portal_pg", "--role", "admin", "--users", str(users)],
                   check=True, capture_output=True, env=env)
    removed = False
    try:
        deadline = time.time() + 10
        while True:
            try:
                s, _ = raw_login(pg, "portal_pg")
                break
            except (RuntimeError, ConnectionError):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        with s:
            parse = b"\0SELECT case_id FROM hotline.cases\0" + struct.pack("!h", 0)
            bind = b"cur\0\0" + struct.pack("!hhh", 0, 0, 0)
            s.sendall(message(b"P", parse) + message(b"B", bind)
                      + message(b"E", b"cur\0" + struct.pack("!i", 1)) + message(b"S", b""))
            seen = until_ready(s)
            assert any(tag == b"s" for tag, _ in seen), seen  # PortalSuspended
            subprocess.run([binary(), "user", "remove", "portal_pg", "--users", str(users)],
                           check=True, capture_output=True)
            removed = True
            time.sleep(1.1)  # the users file's modification time moves on
            s.sendall(message(b"E", b"cur\0" + struct.pack("!i", 1)) + message(b"S", b""))
            tag, payload = read_message(s)
            assert tag == b"E" and b"28000" in payload and b"no longer exists" in payload, (tag, payload)
    finally:
        if not removed:
            subprocess.run([binary(), "user", "remove", "portal_pg", "--users", str(users)],
                           capture_output=True)


def test_a_portal_left_unfetched_is_closed_and_frees_its_slot(lake):
    """A cursor fetched in chunks holds a running query between fetches; one whose client stops
    fetching is ended after --pg-portal-idle-timeout, so it cannot keep others' queries queued."""
    # no light slots: `SELECT 1` would not wait for the portal's slot
    server = PgServer(lake, extra=["--pg-portal-idle-timeout", "2s", "--max-concurrent-queries", "1",
                                   "--light-query-slots", "0"])
    try:
        s, _ = raw_login(server, "root")
        with s:
            parse = b"\0SELECT * FROM traffic.segment_speed\0" + struct.pack("!h", 0)
            bind = b"cur\0\0" + struct.pack("!hhh", 0, 0, 0)
            s.sendall(message(b"P", parse) + message(b"B", bind)
                      + message(b"E", b"cur\0" + struct.pack("!i", 1)) + message(b"S", b""))
            assert any(tag == b"s" for tag, _ in until_ready(s))  # suspended, its query running
            # the only slot is the portal's: another user's query waits until the portal is closed
            started = time.time()
            assert rows(server, "ana", "SELECT 1") == [(1,)]
            assert time.time() - started >= 1.0
            # the rows of the batch already read come, then the end of the closed query
            s.sendall(message(b"E", b"cur\0" + struct.pack("!i", 0)) + message(b"S", b""))
            seen = until_ready(s)
            assert len(seen) <= 8192 + 2, len(seen)
            code, text = error_code(seen)
            assert code == "57014" and "fetched nothing" in text, (code, text)
            # the portal ended with its query: a later Execute is told it is gone, not answered
            # as if its rows had simply ended
            s.sendall(message(b"E", b"cur\0" + struct.pack("!i", 0)) + message(b"S", b""))
            seen = until_ready(s)
            assert not any(tag == b"C" for tag, _ in seen), seen
            code, text = error_code(seen)
            assert code in ("34000", "26000") and "not found" in text, (code, text)
    finally:
        server.stop()


def running_queries(server):
    import json
    import urllib.request
    with urllib.request.urlopen(f"http://{server.ops}/ready", timeout=10) as r:
        return json.loads(r.read())["running"]


def test_a_client_that_goes_away_ends_its_query(lake):
    """Nothing reads a connection while its statement runs; the server notices the client closing
    (even with a Sync still unread) and drops the statement, as over Flight SQL."""
    server = PgServer(lake, extra=["--pg-max-connections", "3"])
    try:
        s, _ = raw_login(server, "root")
        parse = ("\0" + LONG + "\0").encode() + struct.pack("!h", 0)
        bind = b"\0\0" + struct.pack("!hhh", 0, 0, 0)
        s.sendall(message(b"P", parse) + message(b"B", bind)
                  + message(b"E", b"\0" + struct.pack("!i", 0)) + message(b"S", b""))
        deadline = time.time() + 20
        while running_queries(server) == 0 and time.time() < deadline:
            time.sleep(0.2)
        assert running_queries(server) == 1
        s.close()
        deadline = time.time() + 20
        while running_queries(server) > 0 and time.time() < deadline:
            time.sleep(0.2)
        assert running_queries(server) == 0, "the query of a client that went away still runs"
    finally:
        server.stop()


def suspended_portal(server, user):
    """A connection whose portal over the speeds fetched one row and waits: its query holds an
    admission slot, as a client that stops reading its results does."""
    s, _ = raw_login(server, user)
    parse = b"\0SELECT * FROM traffic.segment_speed\0" + struct.pack("!h", 0)
    bind = b"cur\0\0" + struct.pack("!hhh", 0, 0, 0)
    s.sendall(message(b"P", parse) + message(b"B", bind)
              + message(b"E", b"cur\0" + struct.pack("!i", 1)) + message(b"S", b""))
    assert any(tag == b"s" for tag, _ in until_ready(s))
    return s


def test_users_cannot_take_every_connection_or_slot_from_the_supervisors(lake):
    """Red team: one analyst opened connections until none was left for anyone; two analysts
    whose clients stopped reading held every query slot, and the administrator's `SELECT 1` waited
    a minute. Now a user holds --pg-max-connections-per-user connections at most, the last three
    of --pg-max-connections and one query slot are kept for supervisors (roles that read the audit
    log), who see and cancel what holds the others."""
    server = PgServer(lake, extra=["--pg-max-connections", "6", "--pg-max-connections-per-user", "2",
                                   "--max-concurrent-queries", "4"])
    held = []
    try:
        # two query slots for ana (all but one of the three shared), one for dora
        held += [suspended_portal(server, "ana") for _ in range(2)]
        held.append(suspended_portal(server, "dora"))
        assert running_queries(server) == 3
        # ana's third connection: her share
        with pytest.raises(psycopg.OperationalError, match='too many connections for role "ana"'):
            psycopg.connect(dsn(server, "ana"))
        # dora's second: the three places open to all are taken, the rest kept
        with pytest.raises(psycopg.OperationalError, match="reserved for supervisors"):
            psycopg.connect(dsn(server, "dora"))
        # the administrator logs in and runs at once, in the kept slot, over both protocols
        with psycopg.connect(dsn(server, "root"), autocommit=True) as root:
            started = time.time()
            stuck = root.execute('SELECT query_id, "user" FROM system.queries '
                                 "WHERE state = 'running'").fetchall()
            assert time.time() - started < 20, "the supervisor waited for a slot"
            assert sorted(u for _, u in stuck if u != "root") == ["ana", "ana", "dora"]
            assert flight_rows(server, "root", "SELECT 1") == [(1,)]
            # ... and frees the slots
            for qid, user in stuck:
                if user != "root":
                    assert root.execute("SELECT citylake_cancel(%s)", (qid,)).fetchall() == [(True,)]
        for s in held:
            s.close()
        held.clear()
        deadline = time.time() + 20
        while running_queries(server) > 0 and time.time() < deadline:
            time.sleep(0.2)
        # the places come back
        assert rows(server, "dora", "SELECT 1") == [(1,)]
        assert rows(server, "ana", "SELECT 1") == [(1,)]
        refused = rows(server, "audrey", "SELECT error FROM system.audit_log WHERE kind = 'login' "
                                         "AND outcome = 'refused' AND \"user\" = 'dora'")
        assert ("remaining connection slots are reserved for supervisors",) in refused, refused
    finally:
        for s in held:
            s.close()
        server.stop()


def test_a_supervisors_cancel_frees_the_slot_of_a_stalled_or_queued_query(lake):
    """Red team: a query whose client stopped reading is not polled again, so root's
    citylake_cancel returned true and the query held its slot for 75 s more; a cancelled queued
    query stayed queued. Now a cancel gives the slot back at once and ends a queued query."""
    # no light slots: her small second query would not queue
    server = PgServer(lake, extra=["--max-concurrent-queries", "2", "--light-query-slots", "0"])
    try:
        s, _ = raw_login(server, "ana")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(message(b"Q", b"SELECT a.*, b.avg_speed_kmh FROM traffic.segment_speed a, "
                                b"traffic.segment_speed b\0"))
        deadline = time.time() + 20
        while running_queries(server) == 0 and time.time() < deadline:
            time.sleep(0.2)
        # her second query waits behind her first (one of the two slots is hers at most)
        queued = {}

        def second():
            try:
                queued["rows"] = rows(server, "ana", "SELECT count(*) FROM common.districts")
            except psycopg.Error as e:
                queued["error"] = str(e)
        t = threading.Thread(target=second)
        t.start()
        with psycopg.connect(dsn(server, "root"), autocommit=True) as root:
            deadline = time.time() + 20
            while time.time() < deadline:
                hers = root.execute('SELECT query_id, state FROM system.queries WHERE "user" = %s '
                                    "AND state IN ('running', 'queued')", ("ana",)).fetchall()
                if sorted(st for _, st in hers) == ["queued", "running"]:
                    break
                time.sleep(0.2)
            assert sorted(st for _, st in hers) == ["queued", "running"], hers
            # the queued one first (the running one's slot, once free, would start it)
            for qid, _ in sorted(hers, key=lambda q: q[1] != "queued"):
                assert root.execute("SELECT citylake_cancel(%s)", (qid,)).fetchall() == [(True,)]
        t.join(timeout=20)
        assert "cancelled" in queued.get("error", ""), queued
        # the stalled client still reads nothing, yet its slot is free
        deadline = time.time() + 10
        while running_queries(server) > 0 and time.time() < deadline:
            time.sleep(0.2)
        assert running_queries(server) == 0, "the cancelled query still holds its slot"
        assert rows(server, "dora", "SELECT 1") == [(1,)]
        s.close()
    finally:
        server.stop()


def idle_from(server, address):
    """A connection from `address` (any of 127/8 reaches the loopback server) that never logs in."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((address, 0))
    s.connect(("127.0.0.1", server.port))
    return s


def refusal(s):
    """The 53300 error a refused connection is sent, or None when the connection was taken."""
    s.settimeout(1.0)
    try:
        tag, payload = read_message(s)
    except (socket.timeout, TimeoutError):
        return None
    assert tag == b"E" and b"53300" in payload, (tag, payload)
    return payload.decode(errors="replace")


def test_connections_that_never_log_in_cannot_keep_others_out(lake):
    """Anonymous connections hold a start-up place until they log in or time out: at most
    --pg-max-startups of them, a quarter per address, and never the places of logged-in users."""
    server = PgServer(lake, extra=["--pg-max-startups", "8"])
    try:
        working = psycopg.connect(dsn(server, "ana"), autocommit=True)
        # one address: two start-up places (a quarter of 8), the third is told why
        attacker = [idle_from(server, "127.0.0.2") for _ in range(2)]
        assert all(refusal(s) is None for s in attacker)
        third = idle_from(server, "127.0.0.2")
        assert "from this address" in refusal(third)
        third.close()
        # another address logs in meanwhile
        assert rows(server, "dora", "SELECT 1") == [(1,)]
        # many addresses fill the start-up places ...
        crowd = [idle_from(server, f"127.0.0.{3 + i // 2}") for i in range(6)]
        assert all(refusal(s) is None for s in crowd)
        late = idle_from(server, "127.0.0.20")
        assert "logging in" in refusal(late)
        late.close()
        with pytest.raises(psycopg.OperationalError, match="53300|logging in"):
            psycopg.connect(dsn(server, "ana"))
        # ... never those of logged-in connections, which go on
        assert working.execute("SELECT count(*) FROM common.districts").fetchall() == [(13,)]
        # places come back as anonymous connections end
        for s in attacker + crowd:
            s.close()
        deadline = time.time() + 10
        while True:
            try:
                assert rows(server, "ana", "SELECT 1") == [(1,)]
                break
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        working.close()
    finally:
        server.stop()


def test_malformed_bind_and_parse_are_protocol_errors_before_and_after_login(pg):
    """A Bind or Parse whose counts run past the message's end (pgwire's decoder panics on them)
    ends that connection with 08P01, whether or not it logged in; the server goes on."""
    malformed = [
        message(b"B", b"\0\0" + struct.pack("!h", 5)),
        message(b"B", b"\0\0" + struct.pack("!hh", 0, 3) + struct.pack("!i", 100) + b"ab"),
        message(b"P", b"x\0SELECT 1\0" + struct.pack("!h", 10)),
        message(b"P", b"xyz"),
    ]
    for logged_in in (False, True):
        for m in malformed:
            if logged_in:
                s, _ = raw_login(pg)
            else:
                s = socket.create_connection(("127.0.0.1", pg.port), timeout=10)
                body = struct.pack("!i", 196608) + b"user\0ana\0database\0citylake\0\0"
                s.sendall(struct.pack("!i", len(body) + 4) + body)
                tag, _ = read_message(s)
                assert tag == b"R"  # asked for the password: not logged in
            with s:
                s.sendall(m + message(b"S", b""))
                tag, payload = read_message(s)
                assert tag == b"E" and b"08P01" in payload, (logged_in, m, tag, payload)
    assert rows(pg, "ana", "SELECT count(*) FROM common.districts") == [(13,)]


def test_a_seeded_fuzz_of_protocol_messages_never_stops_the_server(pg):
    import random
    rng = random.Random(20261204)
    tags = [b"Q", b"P", b"B", b"D", b"E", b"S", b"C", b"H", b"X", b"F", b"d", b"c", b"f", b"Z", b"\0"]
    for _ in range(60):
        s, _ = raw_login(pg)
        with s:
            for _ in range(rng.randint(1, 4)):
                tag = rng.choice(tags)
                body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
                length = len(body) + 4 if rng.random() < 0.8 else rng.randint(-5, 2 ** 20)
                try:
                    s.sendall(tag + struct.pack("!i", length) + body)
                except (OSError, struct.error):
                    break
            try:
                s.settimeout(0.5)
                s.recv(4096)
            except OSError:
                pass
    assert rows(pg, "ana", "SELECT count(*) FROM common.districts") == [(13,)]
    assert pg.proc.poll() is None


# --- start-up refusals and TLS ------------------------------------------------------------------

def test_postgres_beyond_loopback_needs_tls(lake):
    done = subprocess.run([binary(), "serve", "--catalog", str(lake / "catalog.toml"), "--users",
                           str(lake / "users.toml"), "--bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0",
                           "--pg-bind", "0.0.0.0:0"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "without TLS" in done.stderr and "--tls-cert" in done.stderr, done.stderr


def test_sslmode_require_with_the_servers_certificate(lake, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = PgServer(lake, tls=(str(cert), str(key)))
    try:
        with psycopg.connect(dsn(server, sslmode="verify-full", sslrootcert=str(cert)),
                             autocommit=True) as conn:
            assert conn.info.pgconn.ssl_in_use
            assert conn.execute("SELECT count(*) FROM common.districts").fetchall() == [(13,)]
    finally:
        server.stop()
