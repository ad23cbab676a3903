"""DuckDB over a citylake lake: one view per dataset of catalog.toml, on the same Parquet files.

Used by city-bench (its DuckDB worker) and the foundation benchmark, so that both engines read exactly the
same files with the same schema names (`traffic.segment_speed`, ...).
"""

import pathlib
import tomllib

import duckdb


def connect(catalog_path: str, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    catalog_path = pathlib.Path(catalog_path).resolve()
    spec = tomllib.loads(catalog_path.read_text())
    root = (catalog_path.parent / spec["catalog"]["root"]).resolve()
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    for ds in spec["datasets"]:
        schema, table = ds["name"].split(".")
        location = root / ds["location"]
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        partitioned = bool(ds.get("partitions"))
        types = {p["name"]: {"date": "DATE", "text": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT",
                             "smallint": "SMALLINT"}[p["type"]] for p in ds.get("partitions", [])}
        hive = f", hive_partitioning = true, hive_types = {types!r}" if partitioned else ""
        files = location if ds["location"].endswith(".parquet") else f"{location}/**/*.parquet"
        con.execute(
            f'CREATE VIEW "{schema}"."{table}" AS '
            f"SELECT * FROM read_parquet('{files}'{hive})"
        )
    # unqualified names resolve where citylake resolves them
    default_schema = spec["catalog"].get("default_schema")
    if default_schema:
        con.execute(f'USE "{default_schema}"')
    return con
