"""Delta Lake datasets end to end: a lake generated with `--format delta`, served by the real
binary; departments append with ADBC's `adbc_ingest`, readers see whole deliveries, time travel
reads past versions under the same policy, a person's records are erased from results and files,
retention deletes old rows, optimize compacts small files. Attacks on each are here too."""

import hashlib
import json
import pathlib
import subprocess
import threading

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import PASSWORD, Server, binary

DELTA_DATASETS = {"environment.air_quality_hourly", "traffic.segment_speed", "hotline.cases",
                  "emergency.incidents", "finance.expenditures"}


@pytest.fixture(scope="module")
def delta_lake(tmp_path_factory):
    out = tmp_path_factory.mktemp("delta-lake")
    subprocess.run([binary(), "generate", "--scale", "0.01", "--out", str(out), "--force",
                    "--format", "delta"], check=True, capture_output=True)
    users = out / "users.toml"
    env = {"CITYLAKE_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}
    for name, role, extra in [("tp", "traffic", []),             # the traffic police: writes its own
                              ("ana", "analyst", ["--attr", "district=Xihu"]),
                              ("dora", "district_analyst", ["--attr", "district=Xihu"]),
                              ("fin", "finance", []),
                              ("root", "admin", [])]:
        subprocess.run([binary(), "user", "add", name, "--role", role, *extra, "--users", str(users)],
                       check=True, capture_output=True, env=env)
    return out


@pytest.fixture(scope="module")
def delta_server(delta_lake):
    s = Server(delta_lake)
    yield s
    s.stop()


def connect(server, user):
    return flight_sql.connect(f"grpc://{server.addr}", db_kwargs={"username": user, "password": PASSWORD})


def scalar(server, user, sql):
    with connect(server, user) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def fetch(server, user, sql):
    with connect(server, user) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def ingest(server, user, table, data, mode="append"):
    with connect(server, user) as conn, conn.cursor() as cur:
        n = cur.adbc_ingest(table, data, mode=mode)
        conn.commit()
        return n


def run(*args, check=True):
    return subprocess.run([binary(), *args], check=check, capture_output=True, text=True)


def speeds(server, n=3, shift_days=400):
    """n real rows of traffic.segment_speed, moved shift_days later (new rows, same shape)."""
    rows = fetch(server, "tp", f"SELECT * FROM traffic.segment_speed ORDER BY observed_at LIMIT {n}")
    observed = pc.add(rows["observed_at"], pa.scalar(shift_days * 86400 * 10**6, pa.duration("us")))
    rows = rows.set_column(rows.schema.get_field_index("observed_at"), "observed_at",
                           observed.cast(rows.schema.field("observed_at").type))
    return rows


def audit(lake, kind):
    records = []
    for f in sorted((lake / "audit").glob("*.jsonl")):
        records += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return [r for r in records if r["kind"] == kind]


def test_the_event_datasets_are_delta_tables_and_read_like_the_parquet_lake(delta_server, delta_lake, lake):
    rows = fetch(delta_server, "root", "SELECT name, format FROM system.datasets").to_pylist()
    formats = {r["name"]: r["format"] for r in rows}
    assert {n for n, f in formats.items() if f == "delta"} == DELTA_DATASETS
    for name in DELTA_DATASETS:
        assert (delta_lake / name.replace(".", "/") / "_delta_log").is_dir(), name
    sql = ("SELECT district, count(*) AS n, sum(satisfaction) AS s FROM hotline.cases "
           "GROUP BY district ORDER BY district")
    expected = run("sql", "--catalog", str(lake / "catalog.toml"), "--format", "csv", "-c", sql).stdout
    got = run("sql", "--catalog", str(delta_lake / "catalog.toml"), "--format", "csv", "-c", sql).stdout
    assert got == expected


def test_a_department_appends_and_readers_see_the_delivery_at_once(delta_server, delta_lake):
    before = scalar(delta_server, "tp", "SELECT count(*) FROM traffic.segment_speed")
    rows = speeds(delta_server, n=5)
    assert ingest(delta_server, "tp", "traffic.segment_speed", rows) == 5
    assert scalar(delta_server, "ana", "SELECT count(*) FROM traffic.segment_speed") == before + 5
    record = audit(delta_lake, "ingest")[-1]
    assert record["user"] == "tp" and record["outcome"] == "ok" and record["rows"] == 5
    assert record["bytes"] > 0 and "version" in record["request"], record


def test_a_bad_batch_is_refused_whole_naming_column_and_row(delta_server):
    before = scalar(delta_server, "tp", "SELECT count(*) FROM traffic.segment_speed")
    rows = speeds(delta_server, n=4)
    speed = rows["avg_speed_kmh"].to_pylist()
    speed[2] = 100000.0  # far above the declared maximum
    bad = rows.set_column(rows.schema.get_field_index("avg_speed_kmh"), "avg_speed_kmh",
                          pa.array(speed, rows.schema.field("avg_speed_kmh").type))
    with pytest.raises(adbc_driver_manager.Error) as e:
        ingest(delta_server, "tp", "traffic.segment_speed", bad)
    assert "avg_speed_kmh" in str(e.value) and "row 3" in str(e.value), e.value
    assert scalar(delta_server, "tp", "SELECT count(*) FROM traffic.segment_speed") == before

    no_segment = rows.set_column(rows.schema.get_field_index("segment_id"), "segment_id",
                                 pa.array([None] * 4, rows.schema.field("segment_id").type))
    with pytest.raises(adbc_driver_manager.Error) as e:
        ingest(delta_server, "tp", "traffic.segment_speed", no_segment)
    assert "segment_id" in str(e.value) and "row 1 is NULL" in str(e.value), e.value

    # dictionary-encoded values are checked as plain ones; NaN is in no valid range (red team)
    i = rows.schema.get_field_index("vehicle_count")
    encoded = rows.set_column(i, "vehicle_count",
                              pa.array([1, -5, 2, 3], rows.schema.field(i).type).dictionary_encode())
    with pytest.raises(adbc_driver_manager.Error) as e:
        ingest(delta_server, "tp", "traffic.segment_speed", encoded)
    assert "vehicle_count" in str(e.value) and "row 2 holds -5" in str(e.value), e.value
    nan = rows.set_column(rows.schema.get_field_index("avg_speed_kmh"), "avg_speed_kmh",
                          pa.array([1.0, 2.0, float("nan"), 3.0], rows.schema.field("avg_speed_kmh").type))
    with pytest.raises(adbc_driver_manager.Error) as e:
        ingest(delta_server, "tp", "traffic.segment_speed", nan)
    assert "row 3 holds NaN" in str(e.value), e.value

    stranger = rows.append_column("plate_number", pa.array(["浙A12345"] * 4))
    with pytest.raises(adbc_driver_manager.Error) as e:
        ingest(delta_server, "tp", "traffic.segment_speed", stranger)
    assert "plate_number" in str(e.value), e.value
    assert scalar(delta_server, "tp", "SELECT count(*) FROM traffic.segment_speed") == before


def test_writes_are_refused_without_a_grant_and_audited(delta_server, delta_lake):
    rows = speeds(delta_server, n=1)
    with pytest.raises(adbc_driver_manager.Error) as e:  # an analyst reads traffic, may not write it
        ingest(delta_server, "ana", "traffic.segment_speed", rows)
    assert "may not write" in str(e.value), e.value
    refused = [r for r in audit(delta_lake, "ingest") if r["user"] == "ana"]
    assert refused and refused[-1]["outcome"] == "refused"
    cases = fetch(delta_server, "root", "SELECT * FROM hotline.cases LIMIT 1")
    with pytest.raises(adbc_driver_manager.Error) as e:  # a dataset ana may not even list
        ingest(delta_server, "ana", "hotline.cases", cases)
    assert "not found" in str(e.value) and "may not" not in str(e.value), e.value
    # the server keeps serving
    assert scalar(delta_server, "ana", "SELECT 1") == 1


def test_only_appending_to_a_declared_delta_dataset(delta_server):
    rows = speeds(delta_server, n=1)
    for mode in ["create", "replace"]:
        with pytest.raises(adbc_driver_manager.Error) as e:
            ingest(delta_server, "tp", "traffic.segment_speed", rows, mode=mode)
        assert "append" in str(e.value), (mode, e.value)
    with pytest.raises(adbc_driver_manager.Error) as e:
        ingest(delta_server, "tp", "traffic.no_such_table", rows, mode="create_append")
    assert "not found" in str(e.value), e.value
    segments = fetch(delta_server, "tp", "SELECT * FROM traffic.road_segments LIMIT 1")
    with pytest.raises(adbc_driver_manager.Error) as e:  # a Parquet dataset takes no writes
        ingest(delta_server, "tp", "traffic.road_segments", segments)
    assert "not a Delta dataset" in str(e.value), e.value
    # a delivery of no rows: the driver sends no message, so nothing names the table; the
    # error says so (not arrow-flight's bare "Command is missing") and nothing is written
    before = scalar(delta_server, "tp", "SELECT count(*) FROM traffic.segment_speed")
    with pytest.raises(adbc_driver_manager.Error) as e:
        ingest(delta_server, "tp", "traffic.segment_speed", rows.slice(0, 0))
    assert "nothing was written" in str(e.value), e.value
    assert scalar(delta_server, "tp", "SELECT count(*) FROM traffic.segment_speed") == before
    with pytest.raises(adbc_driver_manager.Error) as e:  # SQL DML stays refused
        scalar(delta_server, "tp", "DELETE FROM traffic.segment_speed")
    assert "refused" in str(e.value) or "denied" in str(e.value).lower(), e.value


def test_concurrent_writers_both_land_and_a_reader_never_sees_half_a_delivery(delta_server):
    before = scalar(delta_server, "tp", "SELECT count(*) FROM traffic.segment_speed")
    big = pa.concat_tables([speeds(delta_server, n=50, shift_days=500 + i) for i in range(4)])
    small = speeds(delta_server, n=7, shift_days=700)
    seen, errors, done = set(), [], threading.Event()

    def read():
        with connect(delta_server, "ana") as conn, conn.cursor() as cur:
            while not done.is_set():
                cur.execute("SELECT count(*) FROM traffic.segment_speed")
                seen.add(cur.fetchone()[0])

    def write(data, times):
        try:
            for _ in range(times):
                ingest(delta_server, "tp", "traffic.segment_speed", data)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(big, 3)), threading.Thread(target=write, args=(small, 5))]
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    reader.join()
    assert not errors, errors
    total = before + 3 * big.num_rows + 5 * small.num_rows
    assert scalar(delta_server, "tp", "SELECT count(*) FROM traffic.segment_speed") == total
    # every count a reader saw is a whole number of deliveries
    possible = {before + i * big.num_rows + j * small.num_rows for i in range(4) for j in range(6)}
    assert seen <= possible, sorted(seen - possible)


def test_time_travel_reads_a_past_version_under_the_same_policy(delta_server, delta_lake):
    log = delta_lake / "traffic/segment_speed/_delta_log"
    first = scalar(delta_server, "ana", "SELECT count(*) FROM as_of('traffic.segment_speed', 0)")
    now = scalar(delta_server, "ana", "SELECT count(*) FROM traffic.segment_speed")
    converted = scalar(delta_server, "ana", "SELECT count(*) FROM traffic.segment_speed WHERE observed_at < "
                                            "TIMESTAMP '2026-01-01 00:00:00'")
    assert first == converted and now > first and (log / "00000000000000000001.json").exists()
    later = scalar(delta_server, "ana", "SELECT count(*) FROM as_of('traffic.segment_speed', "
                                        "TIMESTAMP '2200-01-01 00:00:00')")
    assert later == now
    with pytest.raises(adbc_driver_manager.Error) as e:
        scalar(delta_server, "ana", "SELECT count(*) FROM as_of('traffic.segment_speed', 99999)")
    assert "no version 99999" in str(e.value), e.value
    with pytest.raises(adbc_driver_manager.Error) as e:  # at once, not a search of the log (red team)
        scalar(delta_server, "ana", "SELECT count(*) FROM as_of('traffic.segment_speed', 9223372036854775807)")
    assert "no version 9223372036854775807" in str(e.value), e.value
    # masks and row filters hold in the past too: dora sees her district's cases, names masked
    past = fetch(delta_server, "dora", "SELECT DISTINCT district FROM as_of('hotline.cases', 0)")
    assert past["district"].to_pylist() == ["Xihu"]
    names = fetch(delta_server, "dora", "SELECT caller_phone FROM as_of('hotline.cases', 0) LIMIT 5")
    assert all("*" in p for p in names["caller_phone"].to_pylist()), names
    # a dataset ana may not list is "not found", word for word as a missing one
    with pytest.raises(adbc_driver_manager.Error) as hidden:
        scalar(delta_server, "ana", "SELECT count(*) FROM as_of('hotline.cases', 0)")
    with pytest.raises(adbc_driver_manager.Error) as missing:
        scalar(delta_server, "ana", "SELECT count(*) FROM as_of('hotline.nothing', 0)")
    assert str(hidden.value).replace("cases", "X") == str(missing.value).replace("nothing", "X")
    # and as a name in FROM: NOT_FOUND, the same words
    with pytest.raises(adbc_driver_manager.Error) as direct:
        scalar(delta_server, "ana", "SELECT count(*) FROM hotline.cases")
    assert str(hidden.value) == str(direct.value), (hidden.value, direct.value)
    assert "NOT_FOUND" in str(hidden.value) or "NotFound" in str(hidden.value), hidden.value
    with pytest.raises(adbc_driver_manager.Error) as e:
        scalar(delta_server, "ana", "SELECT count(*) FROM as_of('traffic.road_segments', 0)")
    assert "not a Delta dataset" in str(e.value)
    record = [r for r in audit(delta_lake, "query") if "as_of('traffic.segment_speed', 0)" in r["request"]][-1]
    assert record["datasets"] == "traffic.segment_speed", record


def test_a_persons_records_are_erased_from_results_files_and_log(delta_server, delta_lake):
    phone = fetch(delta_server, "root", "SELECT caller_phone, count(*) AS n FROM hotline.cases "
                                        "GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1")["caller_phone"][0].as_py()
    table_dir = delta_lake / "hotline/cases"
    before = scalar(delta_server, "root", f"SELECT count(*) FROM hotline.cases WHERE caller_phone = '{phone}'")
    assert before >= 1
    # the same lookup with the value bound to a parameter, and one through an alias
    with connect(delta_server, "root") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM hotline.cases WHERE caller_phone = ?", parameters=[phone])
        assert cur.fetchone()[0] == before
        cur.execute(f"SELECT count(*) FROM (SELECT caller_phone AS p FROM hotline.cases) WHERE p = '{phone}'")
        assert cur.fetchone()[0] == before
        # what supervisors see of recent queries holds the hash, not the value
        cur.execute("SELECT sql FROM system.queries")
        shown = [r[0] for r in cur.fetchall()]
        assert all(phone not in q for q in shown), shown
    # not a privacy officer: refused
    refused = run("privacy", "erase", "--catalog", str(delta_lake / "catalog.toml"), "--user", "ana",
                  "--users", str(delta_lake / "users.toml"), "--dataset", "hotline.cases",
                  "--where", f"caller_phone = '{phone}'", "--reason", "request 1", check=False)
    assert refused.returncode != 0 and "may not erase" in refused.stderr, refused.stderr
    # a predicate that would put the value in the log in clear: refused
    like = run("privacy", "erase", "--catalog", str(delta_lake / "catalog.toml"), "--dataset", "hotline.cases",
               "--where", f"caller_phone LIKE '{phone}%'", "--reason", "request 2", check=False)
    assert like.returncode != 0 and "personal information" in like.stderr, like.stderr
    done = run("privacy", "erase", "--catalog", str(delta_lake / "catalog.toml"), "--dataset", "hotline.cases",
               "--where", f"caller_phone = '{phone}'", "--reason", "PIPL art. 47 request 2026-0042")
    assert f"erased {before} row(s)" in done.stdout and "no file of the table holds" in done.stdout, done.stdout
    assert phone not in done.stdout
    assert scalar(delta_server, "root", f"SELECT count(*) FROM hotline.cases WHERE caller_phone = '{phone}'") == 0
    # no data file, live or not, holds the value; no log file either
    for f in table_dir.rglob("*.parquet"):
        if "_delta_log" in f.parts:
            continue
        column = pq.read_table(f, columns=["caller_phone"])["caller_phone"]
        assert phone not in column.to_pylist(), f
    for f in (table_dir / "_delta_log").iterdir():
        assert phone.encode() not in f.read_bytes(), f
    # what was erased is not read back through time travel either
    with pytest.raises(adbc_driver_manager.Error) as e:
        scalar(delta_server, "root", "SELECT count(*) FROM as_of('hotline.cases', 0)")
    assert "erased records" in str(e.value), e.value
    records = audit(delta_lake, "erase")
    assert [r["outcome"] for r in records][-3:] == ["refused", "error", "ok"]
    assert all(phone not in json.dumps(r, ensure_ascii=False) for r in records)
    assert "PIPL art. 47" in records[-1]["request"] and records[-1]["rows"] == before
    # the trail is append-only and sealed, so the lookups made before the erasure must never have
    # put the value there: they are recorded with its SHA-256 (the hash the erasure records too)
    for f in (delta_lake / "audit").glob("*.jsonl"):
        assert phone not in f.read_text(), f
    digest = hashlib.sha256(phone.encode()).hexdigest()
    assert digest in records[-1]["request"], records[-1]
    lookups = [r for r in audit(delta_lake, "query") if digest in r["request"] + r["parameters"]]
    assert len(lookups) >= 4, lookups  # two by literal, one by parameter, one through an alias


def test_retention_deletes_rows_past_their_period(delta_server, delta_lake):
    catalog = str(delta_lake / "catalog.toml")
    total = scalar(delta_server, "root", "SELECT count(*) FROM hotline.cases")
    # three years after the lake's year, the first months are past retention
    dry = run("retention", "apply", "--catalog", catalog, "--now", "2028-07-01", "--dry-run")
    line = next(l for l in dry.stdout.splitlines() if l.startswith("hotline.cases"))
    old = int(line.split(": ")[1].split(" ")[0])
    assert 0 < old < total, dry.stdout
    assert scalar(delta_server, "root", "SELECT count(*) FROM hotline.cases") == total
    applied = run("retention", "apply", "--catalog", catalog, "--now", "2028-07-01", "--dataset", "hotline.cases")
    assert f"deleted {old} row(s)" in applied.stdout, applied.stdout
    assert scalar(delta_server, "root", "SELECT count(*) FROM hotline.cases") == total - old
    assert scalar(delta_server, "root", "SELECT count(*) FROM hotline.cases WHERE received_at < "
                                        "TIMESTAMP '2025-07-01 00:00:00'") == 0
    quality = run("quality", "--catalog", catalog, "--dataset", "hotline.cases", "--all", "--as-of", "2028-07-01")
    line = next(l for l in quality.stdout.splitlines() if "| retention" in l)
    assert "| pass" in line and "no row older than the retention period" in line, line


def test_optimize_compacts_small_ingests_with_the_same_results(delta_server, delta_lake):
    for i in range(12):
        ingest(delta_server, "tp", "traffic.segment_speed", speeds(delta_server, n=2, shift_days=800 + i))
    sql = "SELECT count(*), sum(vehicle_count) FROM traffic.segment_speed"
    before = fetch(delta_server, "ana", sql)
    done = run("optimize", "--catalog", str(delta_lake / "catalog.toml"), "--dataset", "traffic.segment_speed")
    assert "compacted" in done.stdout, done.stdout
    removed = int(done.stdout.split("compacted ")[1].split(" ")[0])
    assert removed >= 12, done.stdout
    assert fetch(delta_server, "ana", sql) == before
    refused = run("optimize", "--catalog", str(delta_lake / "catalog.toml"), "--dataset", "traffic.segment_speed",
                  "--user", "ana", "--users", str(delta_lake / "users.toml"), check=False)
    assert refused.returncode != 0 and "may not maintain" in refused.stderr, refused.stderr


def test_a_past_report_is_reproduced_exactly_after_late_payments(delta_server, delta_lake, tmp_path):
    catalog = str(delta_lake / "catalog.toml")
    first, later, again = tmp_path / "first", tmp_path / "later", tmp_path / "again"
    run("report", "performance", "--year", "2025", "--catalog", catalog, "--out", str(first))
    versions = json.loads((first / "versions.json").read_text())
    assert set(versions) == DELTA_DATASETS
    stamp = ",".join(f"{k}={v}" for k, v in sorted(versions.items()))
    assert stamp in (first / "index.html").read_text()
    assert pq.read_schema(first / "scores.parquet").metadata[b"citylake.dataset_versions"].decode() == stamp
    # late payments of 2025 arrive: the finance bureau delivers them
    late = fetch(delta_server, "fin", "SELECT * FROM finance.expenditures ORDER BY paid_at DESC LIMIT 20")
    ids = late.schema.get_field_index("expenditure_id")
    late = late.set_column(ids, "expenditure_id", pc.add(late["expenditure_id"], 10**12))
    assert ingest(delta_server, "fin", "finance.expenditures", late) == 20
    run("report", "performance", "--year", "2025", "--catalog", catalog, "--out", str(later))
    assert (later / "scores.csv").read_bytes() != (first / "scores.csv").read_bytes()
    # the first report, re-run as of its stamp: the same scores, byte for byte
    run("report", "performance", "--year", "2025", "--catalog", catalog, "--out", str(again), "--as-of", stamp)
    assert (again / "scores.csv").read_bytes() == (first / "scores.csv").read_bytes()
    assert pq.read_table(again / "scores.parquet") == pq.read_table(first / "scores.parquet")
    bad = run("report", "performance", "--year", "2025", "--catalog", catalog, "--out", str(tmp_path / "x"),
              "--as-of", "traffic.road_segments=1", check=False)
    assert bad.returncode != 0 and "not a Delta dataset" in bad.stderr, bad.stderr


def test_the_postgres_protocol_reads_delta_datasets_and_their_past(delta_lake):
    import psycopg
    from test_postgres import PgServer, dsn
    s = PgServer(delta_lake)
    try:
        with psycopg.connect(dsn(s, "dora"), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT DISTINCT district FROM as_of('emergency.incidents', 0)")
            assert cur.fetchall() == [("Xihu",)]
            cur.execute("SELECT caller_phone FROM hotline.cases LIMIT 3")
            assert all("*" in p for (p,) in cur.fetchall())
            with pytest.raises(psycopg.Error) as e:  # DML stays refused on this protocol too
                cur.execute("DELETE FROM hotline.cases")
            assert e.value.sqlstate in ("42501", "0A000", "25006"), e.value.sqlstate
        with psycopg.connect(dsn(s, "ana"), autocommit=True) as conn, conn.cursor() as cur:
            with pytest.raises(psycopg.Error) as e:
                cur.execute("SELECT count(*) FROM as_of('hotline.cases', 0)")
            assert "not found" in str(e.value), e.value
    finally:
        s.stop()
