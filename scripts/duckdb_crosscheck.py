"""The same aggregates through citylake and DuckDB over the same lake must agree.

usage: duckdb_crosscheck.py CITYLAKE_BINARY
Generates an SF 0.01 lake in a temporary directory, runs each query through
`citylake sql --format csv` and through DuckDB, and compares the rows (floats to 6 digits).
Prints `N passed, N failed` and exits non-zero on any mismatch.
"""

import csv
import io
import subprocess
import sys
import tempfile
from decimal import Decimal

import duckdb_lake

QUERIES = {
    "segment_speed totals": """
        SELECT count(*) AS n, sum(vehicle_count) AS vehicles, count(avg_speed_kmh) AS readings,
               round(avg(avg_speed_kmh), 6) AS speed
        FROM traffic.segment_speed""",
    "speed by road class (join)": """
        SELECT s.road_class, count(*) AS n, round(avg(v.avg_speed_kmh), 6) AS speed
        FROM traffic.segment_speed v JOIN traffic.road_segments s ON v.segment_id = s.segment_id
        GROUP BY s.road_class ORDER BY s.road_class""",
    "one day (partition filter)": """
        SELECT extract(hour FROM observed_at) AS h, count(*) AS n, max(avg_speed_kmh) AS vmax
        FROM traffic.segment_speed WHERE dt = DATE '2025-03-01'
        GROUP BY 1 ORDER BY 1""",
    "hotline cases per district": """
        SELECT c.district, count(*) AS n, count(c.closed_at) AS closed, sum(c.satisfaction) AS sat
        FROM hotline.cases c JOIN common.districts d ON c.district = d.district
        GROUP BY c.district ORDER BY c.district""",
    "air quality by month": """
        SELECT month, count(*) AS n, count(pm25) AS pm25_n, round(avg(pm25), 6) AS pm25,
               max(o3_8h) AS o3_8h_max
        FROM environment.air_quality_hourly GROUP BY month ORDER BY month""",
    "money by year (decimal)": """
        SELECT year, count(*) AS n, sum(amount) AS spent FROM finance.expenditures
        GROUP BY year ORDER BY year""",
    "incidents by type": """
        SELECT incident_type, count(*) AS n, count(arrived_at) AS arrived, min(reported_at) AS first
        FROM emergency.incidents GROUP BY 1 ORDER BY 1""",
}


def norm(v) -> str:
    if v is None or v == "":
        return ""
    s = str(v).replace("T", " ")
    try:
        d = Decimal(s)
        return f"{round(d, 6).normalize():f}"
    except Exception:
        return s


def citylake_rows(binary, catalog, sql):
    out = subprocess.run([binary, "sql", "--catalog", catalog, "--format", "csv", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    rows = list(csv.reader(io.StringIO(out)))[1:]
    return [[norm(v) for v in r] for r in rows]


def duckdb_rows(con, sql):
    return [[norm(v) for v in r] for r in con.execute(sql).fetchall()]


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as lake:
        subprocess.run([binary, "generate", "--scale", "0.01", "--out", lake], check=True,
                       capture_output=True)
        catalog = f"{lake}/catalog.toml"
        con = duckdb_lake.connect(catalog)
        passed = failed = 0
        for name, sql in QUERIES.items():
            ours, theirs = citylake_rows(binary, catalog, sql), duckdb_rows(con, sql)
            if ours == theirs and ours:
                passed += 1
                print(f"ok     {name} ({len(ours)} rows)")
            else:
                failed += 1
                print(f"FAILED {name}\n  citylake: {ours[:5]}\n  duckdb:   {theirs[:5]}")
    print(f"duckdb cross-check: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
