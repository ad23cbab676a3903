"""Object-store benchmark: the three foundation queries over the same lake in local files and in
SeaweedFS (a real S3-compatible server on loopback), side by side, cold and warm, with the
object-store requests each run makes.

usage: python benches/object_store.py --binary target/release/citylake [--scale 1]
                                      [--lake data/bench-sf1] [--iterations 5] [--output results.json]

The local lake is generated at --lake when absent; the same lake (same scale and seed: the same
bytes) is generated into s3://lake/sf<scale> with `citylake generate --out s3://…`, which also
measures the upload. Each query runs in its own `citylake sql --timing` process, N+1 times: the
first run is cold (empty listing and footer caches), the others warm. Reported: the medians (and
min/max) of the warm runs, the cold run, the ratios S3 / local, and the object-store requests and
MiB fetched of the cold and of a warm run (from citylake's request counter).
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

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
sys.path.insert(0, str(HERE))
from foundation import QUERIES  # noqa: E402
from seaweed import BUCKET, Weed  # noqa: E402

TIMING = re.compile(r"row\(s\) in ([0-9.]+) s; object store: (\d+) requests \(GET (\d+), HEAD (\d+), "
                    r"LIST (\d+), PUT \d+, other \d+\), ([0-9.]+) MiB fetched")


def run_query(binary, catalog, sql, iterations, env):
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write((sql.strip() + ";\n") * (iterations + 1))
        path = f.name
    try:
        p = subprocess.run([binary, "sql", "--catalog", catalog, "--timing", "--format", "csv", "-f", path],
                           capture_output=True, text=True, env=env)
    finally:
        os.unlink(path)
    if p.returncode != 0:
        sys.exit(f"citylake sql failed on {catalog}:\n{p.stderr[-2000:]}")
    runs = [{"s": float(m[0]), "requests": int(m[1]), "get": int(m[2]), "head": int(m[3]),
             "list": int(m[4]), "mib": float(m[5])} for m in TIMING.findall(p.stderr)]
    lines = p.stdout.strip().splitlines()
    one = len(lines) // (iterations + 1)
    return runs, lines[:one]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--lake", default="data/bench-sf1")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--output", default=None)
    a = ap.parse_args()

    lake = pathlib.Path(a.lake)
    if not (lake / "catalog.toml").exists():
        subprocess.run([a.binary, "generate", "--scale", str(a.scale), "--out", str(lake), "--force"],
                       check=True, capture_output=True)
    local_catalog = str(lake / "catalog.toml")
    result = {"machine": {"cores": os.cpu_count()}, "scale": a.scale, "queries": []}
    with tempfile.TemporaryDirectory(prefix="citylake-weed-") as tmp:
        weed = Weed(tmp)
        try:
            env = weed.env()
            prefix = f"sf{a.scale:g}"
            t0 = time.perf_counter()
            up = subprocess.run([a.binary, "generate", "--scale", str(a.scale), "--out",
                                 f"s3://{BUCKET}/{prefix}", "--force"], capture_output=True, text=True, env=env)
            if up.returncode != 0:
                sys.exit(up.stderr[-2000:])
            result["generate_s3_s"] = time.perf_counter() - t0
            upload = re.search(r"uploaded .*", up.stdout).group(0)
            print(f"generate --scale {a.scale} --out s3://{BUCKET}/{prefix}: "
                  f"{result['generate_s3_s']:.1f} s in all; {upload}")
            s3_catalog = f"s3://{BUCKET}/{prefix}/catalog.toml"
            print()
            print("| query | local warm s | S3 warm s | warm S3/local | local cold s | S3 cold s "
                  "| cold S3/local | S3 requests cold → warm | S3 MiB cold → warm |")
            print("|---|---|---|---|---|---|---|---|---|")
            for name, sql in QUERIES.items():
                local, lrows = run_query(a.binary, local_catalog, sql, a.iterations, None)
                remote, rrows = run_query(a.binary, s3_catalog, sql, a.iterations, env)
                if lrows != rrows:
                    sys.exit(f"results differ for {name}:\n local {lrows[:3]}\n s3 {rrows[:3]}")
                lw = [r["s"] for r in local[1:]]
                rw = [r["s"] for r in remote[1:]]
                lm, rm = statistics.median(lw), statistics.median(rw)
                q = {"name": name, "local": local, "s3": remote, "warm_ratio": rm / lm,
                     "cold_ratio": remote[0]["s"] / local[0]["s"]}
                result["queries"].append(q)
                print(f"| {name} | {lm:.3f} ({min(lw):.3f}–{max(lw):.3f}) | {rm:.3f} ({min(rw):.3f}–{max(rw):.3f}) "
                      f"| {q['warm_ratio']:.2f} | {local[0]['s']:.3f} | {remote[0]['s']:.3f} | {q['cold_ratio']:.2f} "
                      f"| {remote[0]['requests']} → {remote[-1]['requests']} "
                      f"| {remote[0]['mib']:.1f} → {remote[-1]['mib']:.1f} |")
        finally:
            weed.stop()
    warm = statistics.geometric_mean([q["warm_ratio"] for q in result["queries"]])
    cold = statistics.geometric_mean([q["cold_ratio"] for q in result["queries"]])
    result["geomean_warm_ratio"], result["geomean_cold_ratio"] = warm, cold
    print(f"\ngeometric mean S3 / local: warm {warm:.2f}, cold {cold:.2f}")
    if a.output:
        pathlib.Path(a.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
