"""Flight SQL fetch benchmark: a large result (>= 10 M rows of traffic.segment_speed) fetched
through `citylake serve` with ADBC, next to the same query run in-process by `citylake sql`.

usage: python benches/flight_fetch.py --binary target/release/citylake --lake DIR [--iterations 3]

In-process: `citylake sql --timing --format arrow -o /dev/null` (execution plus Arrow IPC
encoding, no network). Flight: ADBC `fetch_arrow_table` over loopback (execution, encoding,
gRPC, decoding). Both report the median of N runs after a warm-up; MB/s is the Arrow size of the
result (pyarrow `Table.nbytes`) over the time.
"""

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import adbc_driver_flightsql.dbapi as flight_sql

SQL = "SELECT * FROM traffic.segment_speed WHERE dt < DATE '2025-02-05'"  # 35 days: 10.08 M rows at SF 1
PASSWORD = "benchmark password"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--iterations", type=int, default=3)
    a = ap.parse_args()
    catalog = str(pathlib.Path(a.lake) / "catalog.toml")

    local, rows = [], 0
    for i in range(a.iterations + 1):  # one process per run: Arrow output holds one result
        p = subprocess.run([a.binary, "sql", "--catalog", catalog, "--timing", "--format", "arrow",
                            "-o", "/dev/null", "-c", SQL], capture_output=True, text=True, check=True)
        m = re.search(r"(\d+) row\(s\) in ([0-9.]+) s", p.stderr)
        rows = int(m.group(1))
        if i:
            local.append(float(m.group(2)))

    users = pathlib.Path(tempfile.mkdtemp()) / "users.toml"
    subprocess.run([a.binary, "user", "add", "bench", "--role", "admin", "--users", str(users)], check=True,
                   env=dict(os.environ, CITYLAKE_PASSWORD=PASSWORD), capture_output=True)
    server = subprocess.Popen([a.binary, "serve", "--catalog", catalog, "--users", str(users), "--bind", "127.0.0.1:0"],
                              stderr=subprocess.PIPE, text=True)
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
        remote, nbytes = [], 0
        for i in range(a.iterations + 1):
            cur = conn.cursor()
            t0 = time.perf_counter()
            cur.execute(SQL)
            table = cur.fetch_arrow_table()
            dt = time.perf_counter() - t0
            cur.close()
            assert table.num_rows == rows, (table.num_rows, rows)
            nbytes = table.nbytes
            if i:
                remote.append(dt)
        conn.close()
    finally:
        server.terminate()
        server.wait()

    lm, rm = statistics.median(local), statistics.median(remote)
    mb = nbytes / 1e6
    print(f"result: {rows:,} rows, {mb:,.0f} MB as Arrow")
    print("| path | median (min–max) s | MB/s |")
    print("|---|---|---|")
    print(f"| in-process (`citylake sql`, Arrow IPC to /dev/null) | {lm:.2f} ({min(local):.2f}–{max(local):.2f}) | {mb / lm:,.0f} |")
    print(f"| Flight SQL over loopback (ADBC `fetch_arrow_table`) | {rm:.2f} ({min(remote):.2f}–{max(remote):.2f}) | {mb / rm:,.0f} |")
    print(f"\nFlight / in-process time ratio: {rm / lm:.2f}")


if __name__ == "__main__":
    main()
