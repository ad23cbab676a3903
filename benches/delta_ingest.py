"""Delta ingest over Flight SQL, measured: ADBC `adbc_ingest` throughput in 1,000- and
100,000-row batches (one commit each), how soon a reader sees a delivery, and the cost of many
small ingests for a cockpit query before and after `citylake optimize`.

    python benches/delta_ingest.py --binary target/release/citylake [--lake DIR] [--small 10000]

The lake (SF 0.01, `--format delta`) is generated into --lake when absent; the server runs on
127.0.0.1 with a `traffic` user that delivers `traffic.segment_speed`. Times are medians; nothing here
is a test threshold."""

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
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
from cluster import Process  # noqa: E402

PASSWORD = "correct horse battery"
COCKPIT = ("SELECT r.road_class, count(*) AS n, avg(v.avg_speed_kmh) AS speed FROM traffic.segment_speed v "
           "JOIN traffic.road_segments r USING (segment_id) WHERE v.dt = DATE '2025-12-31' GROUP BY 1 ORDER BY 1")


def connect(addr, user):
    return flight_sql.connect(f"grpc://{addr}", db_kwargs={"username": user, "password": PASSWORD})


def rows_like(conn, n, day_shift):
    """n rows shaped like traffic.segment_speed's, on the last day of the year (one partition)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM traffic.segment_speed WHERE dt = DATE '2025-12-31' LIMIT {min(n, 100000)}")
        base = cur.fetch_arrow_table()
    reps = -(-n // base.num_rows)
    table = pa.concat_tables([base] * reps).slice(0, n)
    shift = pa.scalar(day_shift * 10**6, pa.duration("us"))  # microseconds later: new rows, same day
    i = table.schema.get_field_index("observed_at")
    return table.set_column(i, "observed_at", pc.add(table["observed_at"], shift).cast(table.schema.field(i).type))


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def cockpit(conn, runs=5):
    times = []
    with conn.cursor() as cur:
        for _ in range(runs + 1):
            t = time.perf_counter()
            cur.execute(COCKPIT)
            cur.fetchall()
            times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--lake")
    p.add_argument("--small", type=int, default=10000, help="small ingests before optimize")
    args = p.parse_args()
    lake = pathlib.Path(args.lake or tempfile.mkdtemp(prefix="delta-ingest-"))
    if not (lake / "catalog.toml").exists():
        subprocess.run([args.binary, "generate", "--scale", "0.01", "--out", str(lake), "--format", "delta",
                        "--force"], check=True, capture_output=True)
        env = dict(os.environ, CITYLAKE_PASSWORD=PASSWORD)
        for name, role in [("tp", "traffic"), ("ana", "analyst")]:
            subprocess.run([args.binary, "user", "add", name, "--role", role, "--users", str(lake / "users.toml")],
                           check=True, capture_output=True, env=env)
    server = Process([args.binary, "serve", "--catalog", str(lake / "catalog.toml"), "--users",
                      str(lake / "users.toml"), "--bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0"],
                     ready=r"listening on (127\.0\.0\.1:\d+)")
    addr = server.match.group(1)
    out = {}
    try:
        writer, reader = connect(addr, "tp"), connect(addr, "ana")
        for batch, commits in [(1000, 50), (100000, 5)]:
            data = rows_like(writer, batch, 1)
            nbytes = data.nbytes
            times = []
            for _ in range(commits):
                with writer.cursor() as cur:
                    times.append(timed(lambda: cur.adbc_ingest("traffic.segment_speed", data, mode="append")))
            total = sum(times)
            out[f"ingest_{batch}"] = {
                "commits": commits, "rows_per_s": round(batch * commits / total),
                "mb_per_s": round(nbytes * commits / total / 1e6, 1),
                "commit_ms_median": round(1000 * statistics.median(times), 1),
                "commit_ms_max": round(1000 * max(times), 1),
            }
            print(f"{batch:>7}-row batches: {out[f'ingest_{batch}']}", flush=True)
        # how soon a reader sees a delivery: from the start of the ingest call to a count that has it
        lags = []
        data = rows_like(writer, 1000, 2)
        with reader.cursor() as rc:
            for _ in range(10):
                rc.execute("SELECT count(*) FROM traffic.segment_speed")
                before = rc.fetchone()[0]
                t = time.perf_counter()
                with writer.cursor() as cur:
                    cur.adbc_ingest("traffic.segment_speed", data, mode="append")
                while True:
                    rc.execute("SELECT count(*) FROM traffic.segment_speed")
                    if rc.fetchone()[0] == before + 1000:
                        break
                lags.append(time.perf_counter() - t)
        out["visible_after_ms_median"] = round(1000 * statistics.median(lags), 1)
        print(f"a 1,000-row delivery is visible to a reader {out['visible_after_ms_median']} ms after the ingest "
              "call starts (median of 10)", flush=True)
        # many small ingests, then the cockpit query before and after optimize
        fresh = cockpit(reader)
        small = rows_like(writer, 10, 3)
        started = time.perf_counter()
        with writer.cursor() as cur:
            for i in range(args.small):
                cur.adbc_ingest("traffic.segment_speed", small, mode="append")
                if (i + 1) % 1000 == 0:
                    print(f"  {i + 1} small ingests, {time.perf_counter() - started:.0f} s", flush=True)
        spent = time.perf_counter() - started
        after_small = cockpit(reader)
        done = subprocess.run([args.binary, "optimize", "--catalog", str(lake / "catalog.toml"), "--dataset",
                               "traffic.segment_speed"],
                              check=True, capture_output=True, text=True)
        optimized = cockpit(reader)
        out["small_ingests"] = {
            "count": args.small, "seconds": round(spent, 1), "per_ingest_ms": round(1000 * spent / args.small, 1),
            "cockpit_ms_before_ingests": round(1000 * fresh, 1),
            "cockpit_ms_after_ingests": round(1000 * after_small, 1),
            "cockpit_ms_after_optimize": round(1000 * optimized, 1),
            "ratio_small_files_to_optimized": round(after_small / optimized, 2),
            "optimize": done.stdout.strip(),
        }
        print(json.dumps(out, indent=2))
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=30)


if __name__ == "__main__":
    main()
