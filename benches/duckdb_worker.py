"""DuckDB for city-bench: started by the harness (`city-bench citybench`), it opens the lake's
catalog with DuckDB views over the same Parquet files (scripts/duckdb_lake.py) and answers one
JSON request per line on stdin: {"sql": ..., "warmup": w, "iterations": n} →
{"times": [seconds…], "rows": [[value as text or null…]…]} or {"error": message}.
Times are of `sql(sql).to_arrow_table()` (the result as Arrow, as the Rust engines produce
it); the rows for the agreement check come from one more run."""

import datetime
import decimal
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "scripts"))
import duckdb_lake  # noqa: E402


def text(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    return str(v)


def main():
    con = duckdb_lake.connect(sys.argv[1], threads=int(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(json.dumps({"ready": duckdb_lake.duckdb.__version__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            for _ in range(req.get("warmup", 1)):
                con.sql(req["sql"]).to_arrow_table()
            times = []
            for _ in range(req.get("iterations", 1)):
                t0 = time.perf_counter()
                # the relation API: DuckDB 2.0 copies the rows once more for a DB-API cursor's Arrow
                con.sql(req["sql"]).to_arrow_table()
                times.append(time.perf_counter() - t0)
            rows = [[text(v) for v in r] for r in con.execute(req["sql"]).fetchall()]
            print(json.dumps({"times": times, "rows": rows}), flush=True)
        except Exception as e:  # report and carry on with the next query
            print(json.dumps({"error": str(e)}), flush=True)


if __name__ == "__main__":
    main()
