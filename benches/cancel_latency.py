"""How soon a timeout stops the work: every city-bench query, and runaway joins and aggregations,
run by `citylake sql --query-timeout T`; the overshoot is the command's wall time minus T minus the
time the same command takes for `SELECT 1` (start-up, catalog load, shut-down). The process ends
only when every task of the query has stopped (the runtime waits for running tasks), so the
overshoot is how long work went on after the timeout fired. Prints each figure and the maximum.

    python benches/cancel_latency.py --binary $CARGO_TARGET_DIR/debug/citylake --lake data/lake \
        [--runs 3] [--output cancel_latency.json]

City-bench queries that finish in under 50 ms are not timed out (nothing to stop); the others run
with T = half their normal time. The runaway queries run with T = 2 s.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]

RUNAWAY = {
    "nested_loop_distinct": "SELECT count(DISTINCT a.avg_speed_kmh + b.avg_speed_kmh) FROM traffic.segment_speed a, "
                            "traffic.segment_speed b WHERE a.vehicle_count < b.vehicle_count",
    "hash_self_join": "SELECT count(*) FROM traffic.segment_speed a JOIN traffic.segment_speed b "
                      "ON a.segment_id = b.segment_id",
    "join_group_by": "SELECT a.segment_id, b.observed_at, count(*) FROM traffic.segment_speed a "
                     "JOIN traffic.segment_speed b ON a.observed_at = b.observed_at GROUP BY 1, 2",
    "cross_join_sort": "SELECT a.pm25 * b.pm25 AS x FROM environment.air_quality_hourly a, "
                       "environment.air_quality_hourly b ORDER BY x DESC LIMIT 5",
}


def run(binary, catalog, sql, timeout=None):
    args = [binary, "sql", "--catalog", str(catalog), "--format", "csv", f"--command={sql}"]
    if timeout is not None:
        args[2:2] = ["--query-timeout", f"{int(timeout * 1000)}ms"]
    start = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True)
    return time.monotonic() - start, done


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--lake", default=str(ROOT / "data" / "lake"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--output")
    a = p.parse_args()
    catalog = pathlib.Path(a.lake) / "catalog.toml"
    base = statistics.median(run(a.binary, catalog, "SELECT 1")[0] for _ in range(a.runs))
    print(f"start-up and shut-down of `citylake sql`: {base:.3f} s")
    cases = []
    for path in sorted((ROOT / "benches" / "queries").glob("*.sql")):
        sql = path.read_text()
        normal = statistics.median(run(a.binary, catalog, sql)[0] for _ in range(a.runs)) - base
        if normal < 0.05:
            print(f"{path.stem:45} {normal:7.3f} s: not timed out")
            continue
        cases.append((path.stem, sql, normal / 2))
    for name, sql in RUNAWAY.items():
        cases.append((name, sql, 2.0))
    results = []
    for name, sql, timeout in cases:
        overshoots = []
        for _ in range(a.runs):
            took, done = run(a.binary, catalog, sql, timeout)
            if "query timeout" not in done.stderr:
                print(f"{name}: finished before its timeout; skipped")
                break
            overshoots.append(took - timeout - base)
        if overshoots:
            worst = max(overshoots)
            results.append({"query": name, "timeout_s": round(timeout, 3), "overshoot_s": round(worst, 3)})
            print(f"{name:45} timeout {timeout:6.2f} s  overshoot (worst of {len(overshoots)}) {worst:6.3f} s")
    worst = max(r["overshoot_s"] for r in results)
    print(f"maximum overshoot: {worst:.3f} s over {len(results)} queries")
    if a.output:
        pathlib.Path(a.output).write_text(json.dumps({"base_s": base, "results": results,
                                                      "max_overshoot_s": worst}, indent=2))


if __name__ == "__main__":
    main()
