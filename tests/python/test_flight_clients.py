"""Real Flight SQL clients from PyPI against `citylake serve`: ADBC, pyarrow.flight, and
flightsql-dbapi with SQLAlchemy (the path Superset uses)."""

import subprocess

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import flightsql.sqlalchemy  # noqa: F401  (registers the datafusion+flightsql dialect)
import pyarrow as pa
import pyarrow.flight as flight
import pytest
import sqlalchemy

from conftest import PASSWORD, binary


def adbc(server, user="ana", password=PASSWORD):
    return flight_sql.connect(f"grpc://{server.addr}",
                              db_kwargs={"username": user, "password": password})


def test_adbc_login_and_query_same_rows_as_citylake_sql(server, lake):
    sql = "SELECT district, population FROM common.districts ORDER BY admin_code"
    with adbc(server) as conn, conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    out = subprocess.run([binary(), "sql", "--catalog", str(lake / "catalog.toml"), "--format", "csv",
                          "-c", sql], check=True, capture_output=True, text=True).stdout
    expected = [(d, int(p)) for d, p in (line.split(",") for line in out.strip().splitlines()[1:])]
    assert rows == expected
    assert len(rows) == 13


def test_adbc_metadata(server):
    with adbc(server) as conn:
        objects = conn.adbc_get_objects(depth="all", catalog_filter="city").read_all().to_pylist()
        catalogs = [c["catalog_name"] for c in objects]
        assert catalogs == ["city"]
        schemas = {s["db_schema_name"]: s for s in objects[0]["catalog_db_schemas"]}
        assert {"traffic", "finance", "system"} <= set(schemas)
        assert "hotline" not in schemas, "an analyst's policy hides the restricted hotline cases"
        speed = [t for t in schemas["traffic"]["db_schema_tables"] if t["table_name"] == "segment_speed"][0]
        assert [c["column_name"] for c in speed["table_columns"]][:3] == ["segment_id", "observed_at", "avg_speed_kmh"]

        schema = conn.adbc_get_table_schema("road_segments", catalog_filter="city", db_schema_filter="traffic")
        assert schema.field("road_name").type == pa.string()
        assert schema.field("segment_id").type == pa.int32()

        info = conn.adbc_get_info()
        assert info["vendor_name"] == "citylake"
        assert conn.adbc_get_table_types() == ["TABLE", "VIEW"]


def test_adbc_parameterised_queries(server):
    with adbc(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT district FROM common.districts WHERE population > ? ORDER BY district", parameters=(1_500_000,))
        assert cur.fetchall() == [("Xiaoshan",)]
        cur.execute("SELECT count(*) FROM traffic.segment_speed WHERE dt = ? AND segment_id = ?",
                    parameters=("2025-03-01", 1))
        assert cur.fetchall() == [(288,)]


def test_adbc_types_are_client_safe(server):
    with adbc(server, user="root") as conn, conn.cursor() as cur:  # reads restricted datasets
        cur.execute("SELECT caller_name, received_at, satisfaction FROM hotline.cases ORDER BY case_id LIMIT 5")
        table = cur.fetch_arrow_table()
        assert table.schema.field("caller_name").type == pa.string()
        assert table.schema.field("received_at").type == pa.timestamp("us")
        cur.execute("SELECT amount FROM finance.expenditures LIMIT 1")
        assert cur.fetch_arrow_table().schema.field("amount").type == pa.decimal128(18, 2)


def test_adbc_wrong_password_and_bad_sql(server):
    with pytest.raises(adbc_driver_manager.Error) as e:
        with adbc(server, password="wrong password") as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    assert "UNAUTHENTICATED" in str(e.value) or "wrong user name or password" in str(e.value)
    with adbc(server) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as e:
            cur.execute("SELEC 1")
        assert "SQL syntax error" in str(e.value)
        with pytest.raises(adbc_driver_manager.Error) as e:
            cur.execute("SELECT * FROM traffic.no_such_table")
        assert "not found" in str(e.value)
        with pytest.raises(adbc_driver_manager.Error) as e:
            cur.execute("CREATE VIEW v AS SELECT 1")
        assert "read-only" in str(e.value) or "not allowed" in str(e.value)
        # the connection keeps working
        cur.execute("SELECT 1 AS one")
        assert cur.fetchall() == [(1,)]


def test_pyarrow_flight_handshake_and_doget(server):
    client = flight.FlightClient(f"grpc://{server.addr}")
    header = client.authenticate_basic_token("ana", PASSWORD)
    options = flight.FlightCallOptions(headers=[header])
    cmd = statement_query("SELECT count(*) AS n FROM environment.air_stations")
    info = client.get_flight_info(flight.FlightDescriptor.for_command(cmd), options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    assert table.column("n").to_pylist() == [13]
    assert info.schema == table.schema
    # without the token: UNAUTHENTICATED
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.get_flight_info(flight.FlightDescriptor.for_command(cmd))
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.authenticate_basic_token("ana", "wrong password")


def statement_query(sql: str) -> bytes:
    """A Flight SQL CommandStatementQuery wrapped in google.protobuf.Any, encoded by hand."""
    def field(number, payload: bytes) -> bytes:
        return bytes([number << 3 | 2]) + varint(len(payload)) + payload

    def varint(n: int) -> bytes:
        out = b""
        while True:
            b, n = n & 0x7F, n >> 7
            out += bytes([b | (0x80 if n else 0)])
            if not n:
                return out

    command = field(1, sql.encode())
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return field(1, type_url) + field(2, command)


def test_sqlalchemy_reflection_like_superset(server):
    engine = sqlalchemy.create_engine(f"datafusion+flightsql://ana:{PASSWORD.replace(' ', '%20')}@{server.addr}?insecure=true")
    inspector = sqlalchemy.inspect(engine)
    assert "traffic" in inspector.get_schema_names()
    assert "road_segments" in inspector.get_table_names(schema="traffic")
    columns = {c["name"]: c for c in inspector.get_columns("road_segments", schema="traffic")}
    assert {"segment_id", "road_name", "road_class", "length_m"} <= set(columns)
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT road_class, count(*) AS n FROM traffic.road_segments GROUP BY road_class ORDER BY road_class")).fetchall()
    assert sum(n for _, n in rows) == 13


def test_tls(tls_server):
    conn = flight_sql.connect(
        f"grpc+tls://localhost:{tls_server.addr.split(':')[1]}",
        db_kwargs={"username": "ana", "password": PASSWORD,
                   adbc_driver_flightsql.DatabaseOptions.TLS_ROOT_CERTS.value: tls_server.cert.read_text()})
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM common.districts")
        assert cur.fetchall() == [(13,)]
