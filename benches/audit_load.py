"""What the audit trail costs under load: 32 ADBC clients for a fixed time over the millisecond
city-bench queries (q01-q04, q15), against `citylake serve` with the audit trail on and with it off
(`--benchmark-without-audit`, a hidden flag for this benchmark only), taking turns round by round on
the same lake. Prints throughput and latency for each, the ratios on/off, and the audit writer's
records per fsync (its group commit) under that load, from the server's /metrics.

    python benches/audit_load.py --binary $CARGO_TARGET_DIR/debug/citylake --lake /tmp/lake-sf0.1 \
        [--clients 32] [--seconds 20] [--rounds 2] [--output audit_load.json]

The lake is generated at SF 0.1 when absent.
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
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from cluster import Process, workload  # noqa: E402

from adbc_driver_flightsql import dbapi as flight_sql  # noqa: E402

PASSWORD = "bench password 1"
QUERIES = ("q01", "q02", "q03", "q04", "q15")


def metric(ops, name):
    text = urllib.request.urlopen(f"http://{ops}/metrics", timeout=10).read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def load(addr, mix, clients, seconds):
    """Runs `clients` connections for `seconds`; returns the latencies of the queries that ended in time."""
    latencies, errors, lock = [], [], threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(i):
        conn = flight_sql.connect(f"grpc://{addr}", db_kwargs={"username": "bench", "password": PASSWORD})
        k = i
        start.wait()
        while time.time() < stop:
            sql = mix[k % len(mix)]
            k += 1
            t0 = time.perf_counter()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    cur.fetchall()
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                with lock:
                    errors.append(str(e))
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop = time.time() + 3600
    start.wait()
    stop = time.time() + seconds
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"{len(errors)} queries failed, e.g. {errors[0]}")
    return latencies


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--output")
    a = ap.parse_args()
    lake = pathlib.Path(a.lake)
    if not (lake / "catalog.toml").exists():
        subprocess.run([a.binary, "generate", "--scale", str(a.scale), "--out", str(lake)], check=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="audit-load-"))
    users = work / "users.toml"
    subprocess.run([a.binary, "user", "add", "bench", "--role", "admin", "--users", str(users)], check=True,
                   env=dict(os.environ, CITYLAKE_PASSWORD=PASSWORD), capture_output=True)
    mix = [sql for name, sql, _ in workload() if name.split("_")[0] in QUERIES]
    runs = {"on": [], "off": []}
    per_sync = []
    for r in range(a.rounds):
        for mode in ("on", "off"):
            extra = ["--audit-dir", str(work / f"audit-{r}")]
            if mode == "off":
                extra.append("--benchmark-without-audit")
            server = Process([a.binary, "serve", "--catalog", str(lake / "catalog.toml"), "--users", str(users),
                              "--bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0",
                              "--max-concurrent-queries", "64", "--query-queue", "256", *extra],
                             ready=r"listening on (127\.0\.0\.1:\d+)", timeout=300)
            try:
                addr = server.match.group(1)
                ops = next(m.group(1) for m in (re.search(r"Operator endpoints on http://(127\.0\.0\.1:\d+)", line)
                                                for line in server.log) if m)
                load(addr, mix, a.clients, 2)  # warm-up: caches, connections
                before = (metric(ops, "citylake_audit_records_total"), metric(ops, "citylake_audit_syncs_total"))
                latencies = load(addr, mix, a.clients, a.seconds)
                after = (metric(ops, "citylake_audit_records_total"), metric(ops, "citylake_audit_syncs_total"))
            finally:
                server.stop()
            latencies.sort()
            result = {"queries": len(latencies), "qps": len(latencies) / a.seconds,
                      "p50_ms": statistics.median(latencies) * 1e3,
                      "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3}
            if mode == "on":
                records, syncs = after[0] - before[0], after[1] - before[1]
                result["records"], result["syncs"] = records, syncs
                per_sync.append(records / syncs if syncs else float("nan"))
            runs[mode].append(result)
            print(f"round {r + 1} audit {mode:>3}: {result['queries']} queries, {result['qps']:.1f}/s, "
                  f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
                  + (f", {result['records']:.0f} records in {result['syncs']:.0f} fsyncs" if mode == "on" else ""),
                  flush=True)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("qps", "p50_ms", "p99_ms")} for m, rs in runs.items()}
    summary = {"throughput_ratio_on_off": med["on"]["qps"] / med["off"]["qps"],
               "p99_ratio_on_off": med["on"]["p99_ms"] / med["off"]["p99_ms"],
               "records_per_fsync": statistics.median(per_sync)}
    print(f"\n{a.clients} clients x {a.seconds:.0f} s, {a.rounds} rounds, queries {', '.join(QUERIES)}:")
    print(f"  throughput on/off {summary['throughput_ratio_on_off']:.3f} (aim >= 0.95), "
          f"p99 on/off {summary['p99_ratio_on_off']:.3f} (aim <= 1.1), "
          f"{summary['records_per_fsync']:.1f} audit records per fsync")
    if a.output:
        pathlib.Path(a.output).write_text(json.dumps({"runs": runs, "median": med, **summary}, indent=2))


if __name__ == "__main__":
    main()
