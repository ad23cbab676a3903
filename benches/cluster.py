"""City-bench on a local Ballista cluster vs a single node, on the same machine and lake.

Starts `citylake cluster scheduler`, N `citylake cluster executor`s, `citylake serve --cluster`
and a plain `citylake serve` (all on loopback), then runs the workload's queries (benches/queries,
the citylake variants) through ADBC against both front ends, taking turns run by run, checks that
both return the same rows, and prints the median time per query and the ratio cluster / single node.

    cargo build --release -p citylake-cli --features cluster
    python benches/cluster.py --binary $CARGO_TARGET_DIR/release/citylake --lake /tmp/bench-sf1 \
        [--scale 1] [--runs 3] [--executors 2] [--output cluster.json]
"""

import argparse
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
from cluster import Cluster, Process, workload  # noqa: E402

from adbc_driver_flightsql import dbapi as flight_sql  # noqa: E402

PASSWORD = "bench password 1"


def serve(binary, catalog, users, extra=()):
    return Process([binary, "serve", "--catalog", str(catalog), "--users", str(users),
                    "--bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0", *extra], ready=r"listening on (127\.0\.0\.1:\d+)",
                   timeout=300)


def run(addr, sql):
    with flight_sql.connect(f"grpc://{addr}", db_kwargs={"username": "bench", "password": PASSWORD}) as conn:
        with conn.cursor() as cur:
            start = time.perf_counter()
            cur.execute(sql)
            table = cur.fetch_arrow_table()
            return time.perf_counter() - start, table


def same(a, b):
    def norm(t):
        rows = [tuple(round(v, 6) if isinstance(v, float) else v for v in r.values())
                for r in t.to_pylist()]
        return sorted(rows, key=repr)
    return norm(a) == norm(b)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--lake", required=True)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--executors", type=int, default=2)
    p.add_argument("--slots", type=int, default=None, help="tasks per executor (default: cores)")
    p.add_argument("--cluster-min-scan", default=None,
                   help="the front end's --cluster-min-scan (default: the server's, 64MiB)")
    p.add_argument("--output")
    a = p.parse_args()

    lake = pathlib.Path(a.lake)
    if not (lake / "catalog.toml").exists():
        subprocess.run([a.binary, "generate", "--scale", str(a.scale), "--out", str(lake)], check=True)
    tmp = pathlib.Path(tempfile.mkdtemp())
    users = tmp / "users.toml"
    subprocess.run([a.binary, "user", "add", "bench", "--role", "admin", "--users", str(users)], check=True,
                   capture_output=True, env=dict(os.environ, CITYLAKE_PASSWORD=PASSWORD))

    cluster = Cluster(a.binary, executors=a.executors, slots=a.slots, work_dir=str(tmp))
    single = serve(a.binary, lake / "catalog.toml", users, ["--audit-dir", str(tmp / "audit1")])
    routing = ["--cluster-min-scan", a.cluster_min_scan] if a.cluster_min_scan else []
    front = serve(a.binary, lake / "catalog.toml", users,
                  [*cluster.front_args(), *routing, "--audit-dir", str(tmp / "audit2")])
    results = []
    try:
        for name, sql, _ in workload():
            times = {"single": [], "cluster": []}
            tables = {}
            for i in range(a.runs + 1):  # the first run of each warms caches and is not counted
                for label, proc in [("single", single), ("cluster", front)]:
                    took, table = run(proc.match.group(1), sql)
                    tables[label] = table
                    if i:
                        times[label].append(took)
            agree = same(tables["single"], tables["cluster"])
            s, c = statistics.median(times["single"]), statistics.median(times["cluster"])
            # where the cluster's front end ran it (system.queries.ran_on)
            _, seen = run(front.match.group(1), "SELECT sql, ran_on FROM system.queries")
            ran_on = [r["ran_on"] for r in seen.to_pylist() if r["sql"] == sql and r["ran_on"]]
            where = ("executors" if ran_on and ran_on[-1].startswith("cluster") else
                     "front end: " + (ran_on[-1][len("here: "):] if ran_on else "?"))
            results.append({"query": name, "single_ms": s * 1e3, "cluster_ms": c * 1e3,
                            "ratio": c / s, "agree": agree, "ran_on": where})
            print(f"{name:45s} single {s * 1e3:9.1f} ms  cluster {c * 1e3:9.1f} ms  "
                  f"ratio {c / s:6.2f}  {where}{'' if agree else '  RESULTS DIFFER'}", flush=True)
    finally:
        front.stop()
        single.stop()
        cluster.stop()
    geo = math.exp(sum(math.log(r["ratio"]) for r in results) / len(results))
    print(f"\n{len(results)} queries, {sum(r['agree'] for r in results)} agree; "
          f"geometric mean cluster / single node: {geo:.2f}")
    print("\n| query | single node ms | cluster ms | cluster / single | ran on |\n|---|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['query']} | {r['single_ms']:.1f} | {r['cluster_ms']:.1f} | {r['ratio']:.2f} | {r['ran_on']} |")
    if a.output:
        pathlib.Path(a.output).write_text(json.dumps({"geomean": geo, "queries": results}, indent=1))
    if not all(r["agree"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
