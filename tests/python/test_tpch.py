"""A data engineer's own files: TPC-H tables from `tpchgen-cli`, a catalog written by
`citylake catalog init`, and the 22 TPC-H queries run unchanged (unqualified names resolve in
the catalog's default schema), each answer compared with DuckDB's over the same files."""

import datetime
import decimal
import pathlib
import shutil
import subprocess
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import binary

QUERIES = pathlib.Path(__file__).resolve().parents[2] / "benches" / "tpch" / "queries"
TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


@pytest.fixture(scope="module")
def tpch(tmp_path_factory):
    out = tmp_path_factory.mktemp("tpch")
    generator = shutil.which("tpchgen-cli") or str(pathlib.Path(sys.executable).parent / "tpchgen-cli")
    subprocess.run([generator, "parquet", "-s", "0.01", f"--output-dir={out}"], check=True,
                   capture_output=True)
    # one table as a partitioned directory, as departments often deliver them
    duckdb.execute(f"COPY (SELECT * FROM '{out}/nation.parquet') TO '{out}/nation' "
                   "(FORMAT parquet, PARTITION_BY (n_regionkey))")
    (out / "nation.parquet").unlink()
    return out


def value(v):
    if isinstance(v, (float, decimal.Decimal)):
        return round(float(v), 2)
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    return v


def rows(table):
    return sorted(tuple(value(v) for v in row.values()) for row in table.to_pylist())


def test_catalog_init_then_the_22_queries_unchanged(tpch, tmp_path):
    init = subprocess.run([binary(), "catalog", "init", str(tpch), "--schema", "tpch"],
                          capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    assert "8 datasets in schema tpch" in init.stdout
    assert "tpch.nation ← nation/ (partitioned by n_regionkey bigint)" in init.stdout
    catalog = tpch / "catalog.toml"
    assert 'default_schema = "tpch"' in catalog.read_text()
    # a second init does not overwrite the edited catalog
    again = subprocess.run([binary(), "catalog", "init", str(tpch)], capture_output=True, text=True)
    assert again.returncode != 0 and "--force" in again.stderr

    duck = duckdb.connect()
    for t in TABLES:
        source = f"'{tpch}/{t}.parquet'" if t != "nation" else f"read_parquet('{tpch}/nation/*/*.parquet', hive_partitioning = true)"
        duck.execute(f"CREATE VIEW {t} AS SELECT * FROM {source}")
    failures = []
    for q in sorted(QUERIES.glob("q*.sql")):
        out = tmp_path / f"{q.stem}.parquet"
        run = subprocess.run([binary(), "sql", "--catalog", str(catalog), "-f", str(q),
                              "--format", "parquet", "-o", str(out)], capture_output=True, text=True)
        if run.returncode != 0:
            failures.append(f"{q.name}: {run.stderr.strip()}")
            continue
        ours = rows(pq.read_table(out))
        theirs = rows(duck.execute(q.read_text()).to_arrow_table())
        if ours != theirs:
            failures.append(f"{q.name}: {len(ours)} rows, DuckDB {len(theirs)}; first differing: "
                            f"{next((a, b) for a, b in zip(ours + [None] * len(theirs), theirs + [None] * len(ours)) if a != b)}")
    assert not failures, "\n".join(failures)
    assert len(list(QUERIES.glob("q*.sql"))) == 22
    # the session's own search path: elsewhere, the bare name is not found, with the nearest name
    moved = subprocess.run([binary(), "sql", "--catalog", str(catalog), "-c",
                            "SET datafusion.catalog.default_schema = 'public'; SELECT count(*) FROM region"],
                           capture_output=True, text=True)
    assert moved.returncode != 0
    assert "table 'city.public.region' not found; did you mean tpch.region?" in moved.stderr, moved.stderr


def test_catalog_init_refuses_what_it_cannot_describe(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = subprocess.run([binary(), "catalog", "init", str(empty)], capture_output=True, text=True)
    assert run.returncode != 0 and "no Parquet files" in run.stderr
    mixed = tmp_path / "mixed"
    for sub in ["t/year=2024", "t"]:
        (mixed / sub).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"a": [1]}), mixed / "t" / "year=2024" / "a.parquet")
    pq.write_table(pa.table({"a": [2]}), mixed / "t" / "b.parquet")
    run = subprocess.run([binary(), "catalog", "init", str(mixed)], capture_output=True, text=True)
    assert run.returncode != 0 and "partitioned differently" in run.stderr, run.stderr
