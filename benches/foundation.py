"""Foundation benchmark: lake generation at SF 1, and three queries through `citylake sql`
side by side with DuckDB on the same Parquet files.

usage: python benches/foundation.py --binary target/release/citylake [--scale 1] [--lake DIR]
                                    [--iterations 5] [--output results.json]

Generation: wall time, rows/s and peak memory (max RSS) of `citylake generate`.
Queries: each engine runs a warm-up and then N timed runs in one process (citylake: one
`citylake sql --timing -f` process; DuckDB: its Python package, in-process); the median is
reported with min/max, and the ratio citylake / DuckDB (below 1: citylake faster). Both
engines' answers are compared before any time is reported.
"""

import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "scripts"))
import duckdb_lake  # noqa: E402

QUERIES = {
    "scan-aggregate: speed and volume by hour of day (segment_speed, full year)": """
        SELECT extract(hour FROM observed_at) AS h, count(*) AS n,
               round(avg(avg_speed_kmh), 4) AS speed, sum(vehicle_count) AS vehicles
        FROM traffic.segment_speed GROUP BY 1 ORDER BY 1""",
    "join: working-day rush-hour speed by road class (segment_speed x road_segments)": """
        SELECT s.road_class, count(*) AS n,
               round(avg(v.avg_speed_kmh / s.free_flow_speed_kmh), 4) AS rel_speed
        FROM traffic.segment_speed v JOIN traffic.road_segments s ON v.segment_id = s.segment_id
        WHERE extract(hour FROM v.observed_at) IN (7, 8, 17, 18)
          AND extract(dow FROM v.observed_at) BETWEEN 1 AND 5
        GROUP BY s.road_class ORDER BY s.road_class""",
    "one day: slowest segments on 2025-03-03 (partition filter)": """
        SELECT segment_id, round(min(avg_speed_kmh), 1) AS vmin, count(*) AS n
        FROM traffic.segment_speed WHERE dt = DATE '2025-03-03'
        GROUP BY segment_id ORDER BY vmin, segment_id LIMIT 10""",
}


def generate(binary, scale, lake):
    cmd = ["/usr/bin/time", "-v", binary, "generate", "--scale", str(scale), "--out", lake, "--force"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    rows = int(re.search(r"^(\d+) rows,", p.stdout, re.M).group(1))
    return {"scale": scale, "wall_s": wall, "rows": rows, "rows_per_s": rows / wall,
            "peak_rss_mib": rss_kib / 1024}


def citylake_times(binary, catalog, sql, iterations):
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write((sql.strip() + ";\n") * (iterations + 1))
        path = f.name
    try:
        p = subprocess.run([binary, "sql", "--catalog", catalog, "--timing", "--format", "csv",
                            "-f", path], capture_output=True, text=True, check=True)
    finally:
        os.unlink(path)
    times = [float(t) for t in re.findall(r"row\(s\) in ([0-9.]+) s", p.stderr)]
    header_and_rows = p.stdout.strip().splitlines()
    one = len(header_and_rows) // (iterations + 1)
    return times[1:], header_and_rows[1:one]


def duckdb_times(con, sql, iterations):
    rows = con.execute(sql).fetchall()  # warm-up
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append(time.perf_counter() - t0)
    return times, rows


def same(csv_rows, duck_rows):
    def norm(v):
        try:
            return round(float(v), 3)
        except (TypeError, ValueError):
            return str(v)
    ours = [[norm(x) for x in r.split(",")] for r in csv_rows]
    theirs = [[norm(x) for x in r] for r in duck_rows]
    return ours == theirs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--lake", default="data/bench-sf1")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--skip-generate", action="store_true", help="reuse the lake at --lake")
    ap.add_argument("--output", default=None)
    a = ap.parse_args()

    result = {"machine": {"cores": os.cpu_count()}}
    if not a.skip_generate:
        result["generate"] = g = generate(a.binary, a.scale, a.lake)
        print(f"generate --scale {a.scale}: {g['rows']:,} rows in {g['wall_s']:.1f} s "
              f"({g['rows_per_s']:,.0f} rows/s), peak RSS {g['peak_rss_mib']:.0f} MiB")
    catalog = str(pathlib.Path(a.lake) / "catalog.toml")
    con = duckdb_lake.connect(catalog)
    print()
    print("| query | citylake median (min–max) s | DuckDB median (min–max) s | citylake / DuckDB |")
    print("|---|---|---|---|")
    result["queries"] = []
    for name, sql in QUERIES.items():
        ct, crows = citylake_times(a.binary, catalog, sql, a.iterations)
        dt, drows = duckdb_times(con, sql, a.iterations)
        if not same(crows, drows):
            sys.exit(f"results differ for {name}:\n citylake {crows[:3]}\n duckdb {drows[:3]}")
        cm, dm = statistics.median(ct), statistics.median(dt)
        result["queries"].append({"name": name, "citylake_s": ct, "duckdb_s": dt, "ratio": cm / dm})
        print(f"| {name} | {cm:.3f} ({min(ct):.3f}–{max(ct):.3f}) | {dm:.3f} ({min(dt):.3f}–{max(dt):.3f}) "
              f"| {cm / dm:.2f} |")
    ratios = [q["ratio"] for q in result["queries"]]
    geo = statistics.geometric_mean(ratios)
    result["geomean_ratio"] = geo
    print(f"\ngeometric mean of the ratios: {geo:.2f}")
    if a.output:
        pathlib.Path(a.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
