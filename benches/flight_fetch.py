"""Flight SQL fetch benchmark: small, medium and large results (up to >= 10 M rows of
traffic.segment_speed at SF 1) fetched through `citylake serve` with ADBC, next to the same
queries run in-process by `citylake sql`.

usage: python benches/flight_fetch.py --binary target/release/citylake --lake DIR [--iterations 3]
                                      [--output results.json]
(also run by `city-bench flight`)

In-process: `citylake sql --timing --format arrow -o /dev/null` (execution plus Arrow IPC
encoding, no network). Flight: ADBC `fetch_arrow_table` over loopback (execution, encoding,
gRPC, decoding). Both report the median of N runs after a warm-up; MB/s is the Arrow size of the
result (pyarrow `Table.nbytes`) over the time.
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

import adbc_driver_flightsql.dbapi as flight_sql

SIZES = {
    "small": "SELECT * FROM traffic.segment_speed WHERE dt = DATE '2025-02-05' AND segment_id < 50",  # ~14 k rows at SF 1
    "medium": "SELECT * FROM traffic.segment_speed WHERE dt = DATE '2025-02-05'",  # one day: ~288 k rows at SF 1
    "large": "SELECT * FROM traffic.segment_speed WHERE dt < DATE '2025-02-05'",  # 35 days: 10.08 M rows at SF 1
}
PASSWORD = "benchmark password"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--output", default=None)
    a = ap.parse_args()
    catalog = str(pathlib.Path(a.lake) / "catalog.toml")

    users = pathlib.Path(tempfile.mkdtemp()) / "users.toml"
    subprocess.run([a.binary, "user", "add", "bench", "--role", "admin", "--users", str(users)], check=True,
                   env=dict(os.environ, CITYLAKE_PASSWORD=PASSWORD), capture_output=True)
    server = subprocess.Popen([a.binary, "serve", "--catalog", catalog, "--users", str(users), "--bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0"],
                              stderr=subprocess.PIPE, text=True)
    results = []
    try:
        addr = None
        for line in server.stderr:
            m = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
            if m:
                addr = m.group(1)
                break
        if not addr:
            sys.exit("server did not start")
        conn = flight_sql.connect(f"grpc://{addr}", db_kwargs={"username": "bench", "password": PASSWORD})
        for size, sql in SIZES.items():
            local, rows = [], 0
            for i in range(a.iterations + 1):  # one process per run: Arrow output holds one result
                p = subprocess.run([a.binary, "sql", "--catalog", catalog, "--timing", "--format", "arrow",
                                    "-o", "/dev/null", "-c", sql], capture_output=True, text=True, check=True)
                m = re.search(r"(\d+) row\(s\) in ([0-9.]+) s", p.stderr)
                rows = int(m.group(1))
                if i:
                    local.append(float(m.group(2)))
            remote, nbytes = [], 0
            for i in range(a.iterations + 1):
                cur = conn.cursor()
                t0 = time.perf_counter()
                cur.execute(sql)
                table = cur.fetch_arrow_table()
                dt = time.perf_counter() - t0
                cur.close()
                assert table.num_rows == rows, (table.num_rows, rows)
                nbytes = table.nbytes
                if i:
                    remote.append(dt)
            results.append({"size": size, "rows": rows, "mb": nbytes / 1e6, "in_process_s": local,
                            "flight_s": remote})
        conn.close()
    finally:
        server.terminate()
        server.wait()

    print("| result | rows | MB (Arrow) | in-process median (min–max) s | MB/s | Flight SQL median (min–max) s "
          "| MB/s | Flight / in-process |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        lo, fl = r["in_process_s"], r["flight_s"]
        lm, rm = statistics.median(lo), statistics.median(fl)
        r["ratio"] = rm / lm
        print(f"| {r['size']} | {r['rows']:,} | {r['mb']:,.1f} | {lm:.3f} ({min(lo):.3f}–{max(lo):.3f}) | "
              f"{r['mb'] / lm:,.0f} | {rm:.3f} ({min(fl):.3f}–{max(fl):.3f}) | {r['mb'] / rm:,.0f} | {rm / lm:.2f} |")
    print("\nin-process: `citylake sql --timing --format arrow -o /dev/null` (execution and Arrow IPC encoding);"
          " Flight: ADBC `fetch_arrow_table` over loopback")
    if a.output:
        pathlib.Path(a.output).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
