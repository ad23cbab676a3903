"""Many clients at once: 32 ADBC connections (of 8 analysts, 4 each) run the whole city-bench mix
(benches/queries, q01-q20) in turns for a fixed time against `citylake serve` with its default
admission settings (or the ones given after `--`). Each query is first timed alone; a query that
takes under 100 ms alone is a *cockpit* query, the others (year-long scans, joins) are *heavy*.
Prints throughput and p50/p99 latency per class: the goal is cockpit p99 <= 0.5 s at 32 clients.

    python benches/concurrency.py --binary target/release/citylake --lake /tmp/bench-sf1 \
        [--clients 32] [--users 8] [--seconds 60] [--output concurrency.json] [-- --serve-flag ...]

The lake is generated at --scale (default 1) when absent. The clients are Python threads on the
same machine as the server: on 2 cores they take part of the CPU the server would have.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from cluster import Process, workload  # noqa: E402

from adbc_driver_flightsql import dbapi as flight_sql  # noqa: E402

PASSWORD = "bench password 1"
COCKPIT_S = 0.1


def connect(addr, user):
    return flight_sql.connect(f"grpc://{addr}", db_kwargs={"username": user, "password": PASSWORD})


def timed(conn, sql):
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()
    return time.perf_counter() - t0


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q * len(values))) - 1))]


def load(addr, mix, clients, users, seconds):
    """[(query name, latency s)] of the queries `clients` connections ended within `seconds`."""
    done, errors, lock = [], [], threading.Lock()
    start = threading.Barrier(clients + 1)
    stop = [float("inf")]

    def client(i):
        conn = connect(addr, f"analyst{i % users}")
        k = i * 7  # clients start at different places of the mix
        start.wait()
        while time.time() < stop[0]:
            name, sql = mix[k % len(mix)]
            k += 1
            try:
                took = timed(conn, sql)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                with lock:
                    errors.append(f"{name}: {e}")
                continue
            if time.time() <= stop[0]:
                with lock:
                    done.append((name, took))
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    stop[0] = time.time() + seconds
    for t in threads:
        t.join()
    return done, errors


def summary(latencies, seconds):
    if not latencies:
        return {"queries": 0}
    return {"queries": len(latencies), "per_s": len(latencies) / seconds,
            "p50_ms": statistics.median(latencies) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3,
            "max_ms": max(latencies) * 1e3}


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--scale", type=float, default=1)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--output")
    a = ap.parse_args(argv)
    lake = pathlib.Path(a.lake)
    if not (lake / "catalog.toml").exists():
        subprocess.run([a.binary, "generate", "--scale", str(a.scale), "--out", str(lake)], check=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="concurrency-"))
    users = work / "users.toml"
    for u in range(a.users):
        subprocess.run([a.binary, "user", "add", f"analyst{u}", "--role", "admin", "--users", str(users)],
                       check=True, env=dict(os.environ, CITYLAKE_PASSWORD=PASSWORD), capture_output=True)
    mix = [(name.split("_")[0], sql) for name, sql, _ in workload()]
    server = Process([a.binary, "serve", "--catalog", str(lake / "catalog.toml"), "--users", str(users),
                      "--bind", "127.0.0.1:0", "--audit-dir", str(work / "audit"), *extra],
                     ready=r"listening on (127\.0\.0\.1:\d+)", timeout=300)
    try:
        addr = server.match.group(1)
        conn = connect(addr, "analyst0")
        alone = {}
        for name, sql in mix:
            timed(conn, sql)  # warm-up: caches
            alone[name] = statistics.median(timed(conn, sql) for _ in range(3))
        conn.close()
        cockpit = {n for n, s in alone.items() if s < COCKPIT_S}
        print("alone (median of 3, ms): " + ", ".join(
            f"{n} {s * 1e3:.0f}{'*' if n in cockpit else ''}" for n, s in alone.items()) + "   (* cockpit)")
        done, errors = load(addr, mix, a.clients, a.users, a.seconds)
        # the slots each query could take, as the server decided (system.queries.lane)
        conn = connect(addr, "analyst0")
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT sql, lane FROM system.queries WHERE lane IS NOT NULL")
            lanes = {sql: lane for sql, lane in cur.fetchall()}
        conn.close()
        lane = {name: lanes.get(sql, "?") for name, sql in mix}
    finally:
        server.stop()
    result = {
        "clients": a.clients, "users": a.users, "seconds": a.seconds, "serve_flags": extra,
        "alone_ms": {n: s * 1e3 for n, s in alone.items()},
        "lane": lane,
        "all": summary([t for _, t in done], a.seconds),
        "cockpit": summary([t for n, t in done if n in cockpit], a.seconds),
        "heavy": summary([t for n, t in done if n not in cockpit], a.seconds),
        "errors": len(errors), "error_sample": errors[:3],
    }
    print("lanes: " + ", ".join(f"{n} {l}" for n, l in lane.items()))
    print(f"{a.clients} clients of {a.users} users, {a.seconds:.0f} s, serve {' '.join(extra) or '(defaults)'}:")
    for cls in ("all", "cockpit", "heavy"):
        s = result[cls]
        if s["queries"]:
            print(f"  {cls:8} {s['queries']:6} queries {s['per_s']:7.2f}/s  p50 {s['p50_ms']:8.1f} ms  "
                  f"p99 {s['p99_ms']:8.1f} ms  max {s['max_ms']:8.1f} ms")
    if errors:
        print(f"  {len(errors)} queries failed, e.g. {errors[0]}")
    if a.output:
        pathlib.Path(a.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
