"""Fetch benchmark: small, medium and large results (up to >= 10 M rows of
traffic.segment_speed at SF 1) fetched through `citylake serve` with ADBC (Flight SQL) and with
psycopg (binary) and asyncpg (Postgres protocol, the same server), next to the same queries run
in-process by `citylake sql`; and the latency of small queries (`SELECT 1`, a cockpit query) over
both protocols.

usage: python benches/flight_fetch.py --binary target/release/citylake --lake DIR [--iterations 3]
                                      [--output results.json]
(also run by `city-bench flight`)

In-process: `citylake sql --timing --format arrow -o /dev/null` (execution plus Arrow IPC
encoding, no network). Flight: ADBC `fetch_arrow_table` over loopback (execution, encoding,
gRPC, decoding, and ADBC's import into pyarrow), and pyarrow's own Flight client (`do_get` and
`read_all` of the statement's ticket: the record batches as decoded, not re-materialised). All
report the median of N runs after a warm-up; MB/s is the Arrow size of the result (pyarrow
`Table.nbytes`) over the time.
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
import threading
import time

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow.flight as paflight
import asyncio

import asyncpg
import psycopg

SIZES = {
    "small": "SELECT * FROM traffic.segment_speed WHERE dt = DATE '2025-02-05' AND segment_id < 50",  # ~14 k rows at SF 1
    "medium": "SELECT * FROM traffic.segment_speed WHERE dt = DATE '2025-02-05'",  # one day: ~288 k rows at SF 1
    "large": "SELECT * FROM traffic.segment_speed WHERE dt < DATE '2025-02-05'",  # 35 days: 10.08 M rows at SF 1
}
SMALL = {
    "SELECT 1": "SELECT 1",
    "cockpit": "SELECT district, count(*), avg(avg_speed_kmh) FROM traffic.segment_speed s "
               "JOIN traffic.road_segments r USING (segment_id) WHERE dt = DATE '2025-02-05' GROUP BY 1 ORDER BY 1",
}
PASSWORD = "benchmark password"


def statement_descriptor(sql):
    """The Flight descriptor of a Flight SQL `CommandStatementQuery`, packed in a
    protobuf `Any` (written out here: pyarrow has Flight, not Flight SQL)."""
    def varint(n):
        out = bytearray()
        while True:
            out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    def field(number, data):
        return bytes([number << 3 | 2]) + varint(len(data)) + data

    command = field(1, sql.encode())
    url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return paflight.FlightDescriptor.for_command(field(1, url) + field(2, command))


def median_ms(run, n):
    run()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


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
    server = subprocess.Popen([a.binary, "serve", "--catalog", catalog, "--users", str(users), "--bind", "127.0.0.1:0",
                               "--pg-bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0"],
                              stderr=subprocess.PIPE, text=True)
    results, latency = [], []
    try:
        addr = pg = None
        for line in server.stderr:
            m = re.search(r"Flight SQL server listening on (127\.0\.0\.1:\d+)", line)
            addr = m.group(1) if m else addr
            m = re.search(r"Postgres protocol on 127\.0\.0\.1:(\d+)", line)
            pg = int(m.group(1)) if m else pg
            if addr and pg:
                break
        if not (addr and pg):
            sys.exit("server did not start")
        threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
        conn = flight_sql.connect(f"grpc://{addr}", db_kwargs={"username": "bench", "password": PASSWORD})
        native = paflight.FlightClient(f"grpc://{addr}")
        bearer = native.authenticate_basic_token("bench", PASSWORD)
        options = paflight.FlightCallOptions(headers=[bearer])

        def native_fetch(sql):
            info = native.get_flight_info(statement_descriptor(sql), options)
            return [native.do_get(e.ticket, options).read_all() for e in info.endpoints]
        pconn = psycopg.connect(host="127.0.0.1", port=pg, user="bench", password=PASSWORD, dbname="citylake",
                                autocommit=True)
        loop = asyncio.new_event_loop()
        aconn = loop.run_until_complete(asyncpg.connect(host="127.0.0.1", port=pg, user="bench",
                                                        password=PASSWORD, database="citylake"))
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
            direct = []
            for i in range(a.iterations + 1):
                t0 = time.perf_counter()
                tables = native_fetch(sql)
                dt = time.perf_counter() - t0
                assert sum(t.num_rows for t in tables) == rows, rows
                del tables
                if i:
                    direct.append(dt)
            psy, apg = [], []
            for i in range(a.iterations + 1):
                t0 = time.perf_counter()
                with pconn.cursor(binary=True) as cur:
                    cur.execute(sql)
                    got = cur.fetchall()
                dt = time.perf_counter() - t0
                assert len(got) == rows, (len(got), rows)
                del got
                if i:
                    psy.append(dt)
                t0 = time.perf_counter()
                got = loop.run_until_complete(aconn.fetch(sql))
                dt = time.perf_counter() - t0
                assert len(got) == rows, (len(got), rows)
                del got
                if i:
                    apg.append(dt)
            results.append({"size": size, "rows": rows, "mb": nbytes / 1e6, "in_process_s": local,
                            "flight_s": remote, "flight_native_s": direct, "psycopg_binary_s": psy, "asyncpg_s": apg})

        def flight_run(sql):
            cur = conn.cursor()
            cur.execute(sql)
            cur.fetchall()
            cur.close()

        def psycopg_run(sql):
            with pconn.cursor(binary=True) as cur:
                cur.execute(sql)
                cur.fetchall()

        for name, sql in SMALL.items():
            latency.append({"query": name,
                            "flight_ms": median_ms(lambda: flight_run(sql), 50),
                            "psycopg_ms": median_ms(lambda: psycopg_run(sql), 50),
                            "asyncpg_ms": median_ms(lambda: loop.run_until_complete(aconn.fetch(sql)), 50)})
        loop.run_until_complete(aconn.close())
        pconn.close()
        conn.close()
    finally:
        server.terminate()
        server.wait()

    print("| result | rows | MB (Arrow) | in-process median (min–max) s | MB/s | pyarrow.flight median (min–max) s "
          "| MB/s | pyarrow.flight / in-process | ADBC median (min–max) s | MB/s | ADBC / in-process |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        lo, nat, fl = r["in_process_s"], r["flight_native_s"], r["flight_s"]
        lm, nm, rm = statistics.median(lo), statistics.median(nat), statistics.median(fl)
        r["ratio"], r["native_ratio"] = rm / lm, nm / lm
        print(f"| {r['size']} | {r['rows']:,} | {r['mb']:,.1f} | {lm:.3f} ({min(lo):.3f}–{max(lo):.3f}) | "
              f"{r['mb'] / lm:,.0f} | {nm:.3f} ({min(nat):.3f}–{max(nat):.3f}) | {r['mb'] / nm:,.0f} | {nm / lm:.2f} | "
              f"{rm:.3f} ({min(fl):.3f}–{max(fl):.3f}) | {r['mb'] / rm:,.0f} | {rm / lm:.2f} |")
    print("\nin-process: `citylake sql --timing --format arrow -o /dev/null` (execution and Arrow IPC encoding);"
          " pyarrow.flight: `do_get(…).read_all()` of the statement's tickets; ADBC: `fetch_arrow_table`;"
          " both over loopback")
    print("\n| result | rows | Flight SQL (ADBC) s | psycopg binary s | rows/s | asyncpg s | rows/s "
          "| psycopg / Flight | asyncpg / Flight |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        fl = statistics.median(r["flight_s"])
        ps, ap = statistics.median(r["psycopg_binary_s"]), statistics.median(r["asyncpg_s"])
        print(f"| {r['size']} | {r['rows']:,} | {fl:.3f} | {ps:.3f} | {r['rows'] / ps:,.0f} | {ap:.3f} | "
              f"{r['rows'] / ap:,.0f} | {ps / fl:.1f} | {ap / fl:.1f} |")
    print("\n| small query | Flight SQL (ADBC) ms | psycopg ms | asyncpg ms |")
    print("|---|---|---|---|")
    for q in latency:
        print(f"| {q['query']} | {q['flight_ms']:.2f} | {q['psycopg_ms']:.2f} | {q['asyncpg_ms']:.2f} |")
    print("\n(medians: of the runs above for results, of 50 after a warm-up for small queries)")
    if a.output:
        pathlib.Path(a.output).write_text(json.dumps({"results": results, "latency": latency}, indent=2))


if __name__ == "__main__":
    main()
