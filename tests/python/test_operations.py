"""Operating the server: limits, the admission queue, cancellation, metrics, system.queries, JSON
logs, EXPLAIN ANALYZE, graceful shutdown, and a 32-client load with one runaway query — all against
the real `citylake serve` binary on loopback with ADBC clients."""

import json
import os
import pathlib
import re
import signal
import statistics
import sys
import threading
import time
import urllib.request

import adbc_driver_manager
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
from cluster import workload  # noqa: E402
from conftest import Server  # noqa: E402
from test_cluster import normal  # noqa: E402
from test_flight_clients import adbc  # noqa: E402

RUNAWAY = ("SELECT count(*) FROM traffic.segment_speed a JOIN traffic.segment_speed b "
           "ON a.segment_id = b.segment_id")


def fetch(server, sql, user="root"):
    with adbc(server, user=user) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def until_load(server, running, queued):
    """Waits (30 s at most) until the server's /ready says `running` queries run and `queued` wait."""
    deadline = time.time() + 30
    while time.time() < deadline:
        load = json.loads(urllib.request.urlopen(f"http://{server.ops}/ready").read())
        if load == {"running": running, "queued": queued}:
            return
        time.sleep(0.05)
    raise AssertionError(f"load never reached {running} running, {queued} queued: {load}")


def start_runaway(name, conn, out, threads):
    """RUNAWAY on `conn` in a thread; its rows or error land in out[name]."""
    def run():
        try:
            with conn.cursor() as cur:
                cur.execute(RUNAWAY)
                out[name] = cur.fetchall()
        except adbc_driver_manager.Error as e:
            out[name] = e
    threads.append(threading.Thread(target=run))
    threads[-1].start()


def metrics(server):
    text = urllib.request.urlopen(f"http://{server.ops}/metrics", timeout=10).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            out[key] = s.value
    return out


def total(m, name, **labels):
    return sum(v for (n, ls), v in m.items()
               if n == name and all(dict(ls).get(k) == v2 for k, v2 in labels.items()))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(scope="module")
def ops_server(lake, tmp_path_factory):
    # the analysts' role gets a short timeout (a role's limit replaces the global one): the runaway
    # query runs as the analyst `ana`; everything else, as the administrator, has the global 60 s
    policy = (lake / "policy.toml").read_text()
    capped = policy.replace('name = "analyst"\n', 'name = "analyst"\nquery_timeout = "8s"\n', 1)
    assert capped != policy
    path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_text(capped)
    s = Server(lake, extra=["--policy", str(path), "--query-timeout", "60s", "--memory-per-query", "64MiB",
                            "--max-concurrent-queries", "8", "--query-queue", "64",
                            "--log", "info", "--log-format", "json"])
    yield s
    s.stop()


def test_metrics_parse_and_move(ops_server):
    assert urllib.request.urlopen(f"http://{ops_server.ops}/health").status == 200
    assert urllib.request.urlopen(f"http://{ops_server.ops}/ready").status == 200
    before = metrics(ops_server)
    for _ in range(3):
        assert fetch(ops_server, "SELECT count(*) FROM traffic.segment_speed "
                                 "WHERE dt = DATE '2025-03-03' AND segment_id + 0 >= 0") == [(13 * 288,)]
    after = metrics(ops_server)
    assert total(after, "citylake_queries_total", outcome="ok") \
        >= total(before, "citylake_queries_total", outcome="ok") + 3
    assert total(after, "citylake_rows_scanned_total") >= total(before, "citylake_rows_scanned_total") + 3 * 13 * 288
    assert total(after, "citylake_object_store_requests_total") > total(before, "citylake_object_store_requests_total")
    assert total(after, "citylake_query_duration_seconds_count") >= 3
    assert ("citylake_connections", ()) in after and ("citylake_queries_queued", ()) in after
    assert ("citylake_memory_reserved_bytes", ()) in after


def test_rows_scanned_of_a_governed_dataset_are_the_rows_its_user_may_see(ops_server):
    """A district analyst's scan of hotline.cases moves citylake_rows_scanned_total by the rows of
    her district, not by the rows of the whole table (which the counter would tell whoever reads
    /metrics)."""
    total_rows = fetch(ops_server, "SELECT count(*) FROM hotline.cases")[0][0]
    visible = fetch(ops_server, "SELECT count(*) FROM hotline.cases", user="dora")[0][0]
    assert 0 < visible < total_rows
    before = total(metrics(ops_server), "citylake_rows_scanned_total")
    assert fetch(ops_server, "SELECT count(*) FROM hotline.cases WHERE case_id IS NOT NULL",
                 user="dora")[0][0] == visible
    time.sleep(0.3)  # the figures are recorded as the query ends
    moved = total(metrics(ops_server), "citylake_rows_scanned_total") - before
    assert moved == visible, (moved, visible, total_rows)


def test_json_logs_one_line_per_query_with_its_id(ops_server):
    fetch(ops_server, "SELECT 42 AS answer")
    time.sleep(0.5)
    ended = [json.loads(line) for line in ops_server.log
             if line.startswith("{") and '"query ended"' in line]
    assert ended and all("query_id" in e["fields"] for e in ended), ops_server.log[-5:]
    assert any(e["fields"]["outcome"] == "ok" for e in ended)


def test_explain_analyze_for_ones_own_queries(ops_server):
    rows = fetch(ops_server, "EXPLAIN ANALYZE SELECT count(*) FROM common.districts", user="ana")
    text = "\n".join(str(r) for r in rows)
    assert "output_rows" in text or "metrics" in text, text


def test_system_queries_shows_own_queries_and_all_to_the_auditor(ops_server):
    fetch(ops_server, "SELECT 'mine' AS x", user="ana")
    mine = fetch(ops_server, "SELECT DISTINCT \"user\" FROM system.queries", user="ana")
    assert mine == [("ana",)]
    users = {u for (u,) in fetch(ops_server, "SELECT DISTINCT \"user\" FROM system.queries", user="audrey")}
    assert {"ana", "root"} <= users
    rows = fetch(ops_server, "SELECT state, rows, peak_memory >= 0, duration_ms >= 0 FROM system.queries "
                             "WHERE sql = 'SELECT ''mine'' AS x'", user="audrey")
    assert rows == [("ok", 1, True, True)]


def test_timeout_and_memory_limit_stop_a_query_alone(ops_server):
    results = {}

    def runaway():
        try:
            results["runaway"] = fetch(ops_server, RUNAWAY, user="ana")
        except adbc_driver_manager.Error as e:
            results["runaway"] = e
    t = threading.Thread(target=runaway)
    t.start()
    time.sleep(0.3)
    # a small query at the same time succeeds
    assert fetch(ops_server, "SELECT count(*) FROM common.districts") == [(13,)]
    t.join(timeout=60)
    assert not t.is_alive()
    e = results["runaway"]
    assert isinstance(e, adbc_driver_manager.Error), e
    assert "memory limit" in str(e) or "query timeout: stopped after 8s" in str(e), str(e)
    state = fetch(ops_server, "SELECT state, error FROM system.queries WHERE sql = "
                              f"'{RUNAWAY}' ORDER BY started DESC LIMIT 1")
    assert state[0][0] in ("over_limit", "timed_out") and ("limit" in state[0][1] or "timeout" in state[0][1]), state


def test_cancel_stops_the_work(lake):
    # its own server: a runaway join stopped by a limit elsewhere may keep a core busy until its
    # task next yields (see the README's known gaps), which would blur this measurement
    ops_server = Server(lake, extra=["--query-timeout", "60s"])
    try:
        cancel_and_measure(ops_server)
    finally:
        ops_server.stop()


def cancel_and_measure(ops_server):
    pid = ops_server.proc.pid
    conn = adbc(ops_server, user="root")
    cur = conn.cursor()
    cur.execute("SELECT a.segment_id, b.observed_at FROM traffic.segment_speed a "
                "JOIN traffic.segment_speed b ON a.observed_at = b.observed_at")
    reader = cur.fetch_record_batch()
    reader.read_next_batch()
    cur.adbc_cancel()  # CancelFlightInfo
    try:
        reader.read_all()
    except Exception:
        pass
    cur.close()
    conn.close()
    # work stops at its tasks' next await point (a hash table being built is finished first):
    # within 30 s, the server must have a 2-second window of idle CPU
    deadline, busy = time.time() + 30, []
    while time.time() < deadline:
        start = cpu_seconds(pid)
        time.sleep(2)
        busy.append(cpu_seconds(pid) - start)
        if busy[-1] < 0.4:
            break
    else:
        queries = fetch(ops_server, "SELECT query_id, state, duration_ms, sql FROM system.queries "
                                    "WHERE state IN ('running', 'queued')", user="audrey")
        pytest.fail(f"the server kept working after the cancel: CPU seconds per 2 s window {busy}; "
                    f"running: {queries}")
    rows = fetch(ops_server, "SELECT state FROM system.queries WHERE sql LIKE '%a.observed_at = b.observed_at%' "
                             "AND sql NOT LIKE '%system.queries%' ORDER BY started DESC LIMIT 1", user="audrey")
    # the driver's cancel reaches the server as CancelFlightInfo (`cancelled`) or as the call's
    # stream being reset (`dropped`, the client went away), whichever the driver sends
    assert rows in ([("cancelled",)], [("dropped",)]), rows


def test_one_user_cannot_hold_every_slot(lake):
    """Attack (red team): an analyst filled every slot with endless scans, and the administrator
    could not even read `system.queries` to find them. A user's queries hold all slots but one."""
    # the scans are heavy (more than 64 KiB of files): they cannot take the light slots
    s = Server(lake, extra=["--max-concurrent-queries", "2", "--light-query-scan", "64KiB", "--query-timeout", "30s"])
    conns = [adbc(s, user="ana") for _ in range(2)]
    threads, out = [], {}
    try:
        for i, conn in enumerate(conns):
            start_runaway(f"scan{i}", conn, out, threads)
        deadline = time.time() + 30
        while time.time() < deadline:
            load = json.loads(urllib.request.urlopen(f"http://{s.ops}/ready").read())
            if load == {"running": 1, "queued": 1}:
                break
            time.sleep(0.05)
        assert load == {"running": 1, "queued": 1}, load  # her second waits for her first
        # the administrator's query runs while both of hers are still there (not after them)
        running = fetch(s, "SELECT user, state FROM system.queries WHERE state IN ('running', 'queued') "
                           "AND sql NOT LIKE '%system.queries%'")
        assert sorted(running) == [("ana", "queued"), ("ana", "running")], running
        # and can stop them
        cancelled = fetch(s, "SELECT citylake_cancel(query_id) FROM system.queries "
                             "WHERE user = 'ana' AND state IN ('running', 'queued')")
        assert cancelled and all(r[0] for r in cancelled), cancelled
    finally:
        for t in threads:
            t.join(60)
        for c in conns:
            c.close()
        s.stop()


def test_a_cockpit_query_does_not_queue_behind_long_scans(lake):
    """Every slot taken by a long scan and another scan waiting: a query that scans little (a light
    query, under --light-query-scan) still runs, in a light slot, while both are still there; its
    user's own scan holding her share does not stop it either. `system.queries.lane` says which
    slots each query took."""
    s = Server(lake, extra=["--max-concurrent-queries", "1", "--light-query-scan", "64KiB",
                            "--query-timeout", "30s"])
    conns = {"ana": adbc(s, user="ana"), "root": adbc(s, user="root")}
    threads, out = [], {}
    try:
        start_runaway("ana", conns["ana"], out, threads)
        until_load(s, 1, 0)
        start_runaway("root", conns["root"], out, threads)
        until_load(s, 1, 1)
        cockpit = "SELECT count(*) FROM traffic.road_segments"
        assert fetch(s, cockpit, user="ana")[0][0] > 0
        lanes = fetch(s, "SELECT sql, state, lane FROM system.queries WHERE sql NOT LIKE '%system.queries%' "
                         "ORDER BY started", user="root")
        assert [(q, st, ln) for q, st, ln in lanes if q in (RUNAWAY, cockpit)] == [
            (RUNAWAY, "running", "general"), (RUNAWAY, "queued", "general"), (cockpit, "ok", "light")], lanes
        assert not out, out  # both scans were still there
        fetch(s, "SELECT citylake_cancel(query_id) FROM system.queries WHERE state IN ('running', 'queued') "
                 "AND sql NOT LIKE '%system.queries%'", user="root")
        # attack (review): a row-filtered user's scans are behind the governed barrier, which shows no
        # children; they once weighed nothing and every one of them was light
        # (hotline.cases is filtered to her district: 300 KiB of files at this scale, over 64 KiB)
        big, small = "SELECT count(*) FROM hotline.cases", "SELECT count(*) FROM traffic.road_segments"
        assert fetch(s, big, user="dora")[0][0] > 0 and fetch(s, small, user="dora")[0][0] > 0
        lanes = dict(fetch(s, f"SELECT sql, lane FROM system.queries WHERE user = 'dora'", user="root"))
        assert lanes == {big: "general", small: "light"}, lanes
    finally:
        for t in threads:
            t.join(60)
        for c in conns.values():
            c.close()
        s.stop()


def test_the_queue_admits_in_order_and_refuses_beyond_its_bound(lake):
    # no light slots: `SELECT 2` (no files) would otherwise not queue
    s = Server(lake, extra=["--max-concurrent-queries", "1", "--query-queue", "1", "--light-query-slots", "0",
                            "--query-timeout", "20s"])
    # connections first: a login verifies an argon2 hash, which takes a while
    conns = [adbc(s, user="root") for _ in range(3)]
    threads = []
    try:
        out = {}

        def run(name, conn, sql):
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    out[name] = (time.time(), cur.fetchall())
            except adbc_driver_manager.Error as e:
                out[name] = (time.time(), e)
        def until(running, queued):
            until_load(s, running, queued)
        first = threading.Thread(target=run, args=("first", conns[0], RUNAWAY))  # holds the slot until its timeout
        first.start()
        threads.append(first)
        until(1, 0)
        # a query's time counts from its request, queueing included: the second starts a few
        # seconds after the first, so it still has time to run when the first's timeout frees the slot
        time.sleep(3)
        second = threading.Thread(target=run, args=("second", conns[1], "SELECT 2"))
        second.start()
        threads.append(second)
        until(1, 1)
        run("third", conns[2], "SELECT 3")
        third = out["third"][1]
        assert isinstance(third, adbc_driver_manager.Error), third
        assert "server busy" in str(third) and "--query-queue" in str(third), str(third)
        first.join(60)
        second.join(60)
        assert out["second"][1] == [(2,)]
        assert "query timeout" in str(out["first"][1])
        states = fetch(s, "SELECT sql, state FROM system.queries ORDER BY started")
        assert ("SELECT 3", "refused") in states and ("SELECT 2", "ok") in states
        # the queued query ended after the running one released its slot (server clock)
        ends = dict(fetch(s, "SELECT state, CAST(started AS BIGINT) / 1000 + CAST(duration_ms AS BIGINT) "
                             "FROM system.queries WHERE sql IN ('SELECT 2', '" + RUNAWAY.replace("'", "''") + "')"))
        assert ends["ok"] >= ends["timed_out"], ends
    finally:
        # a connection must not be closed under a thread still using it (the driver aborts)
        for t in threads:
            t.join(60)
        for c in conns:
            c.close()
        s.stop()


def test_32_clients_with_one_runaway(ops_server):
    mix = [(name, sql) for name, sql, _ in workload()]
    expected = {name: normal(fetch(ops_server, sql)) for name, sql in mix}
    before = metrics(ops_server)
    latencies, errors, wrong = [], [], []
    stop = time.time() + 20
    lock = threading.Lock()

    def client(i):
        with adbc(ops_server, user="root") as conn:
            k = i
            while time.time() < stop:
                name, sql = mix[k % len(mix)]
                k += 7
                t0 = time.perf_counter()
                try:
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        rows = cur.fetchall()
                except adbc_driver_manager.Error as e:
                    with lock:
                        errors.append((name, str(e)))
                    continue
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    if normal(rows) != expected[name]:
                        wrong.append(name)
    runaway = {}

    def run_away():
        try:
            runaway["result"] = fetch(ops_server, RUNAWAY, user="ana")
        except adbc_driver_manager.Error as e:
            runaway["result"] = e
    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    threads.append(threading.Thread(target=run_away))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:5]
    assert not wrong, wrong[:5]
    assert isinstance(runaway["result"], adbc_driver_manager.Error)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    rss = peak_rss(ops_server.proc.pid)
    print(f"\n32 clients, 20 s: {len(latencies)} queries, p50 {p50 * 1e3:.1f} ms, "
          f"p99 {p99 * 1e3:.1f} ms, mean {statistics.mean(latencies) * 1e3:.1f} ms; "
          f"server peak RSS {rss / 2**20:.0f} MiB; runaway: {str(runaway['result'])[:120]}")
    assert rss < 4 << 30, f"server memory grew to {rss / 2**20:.0f} MiB"
    after = metrics(ops_server)
    finished = total(after, "citylake_queries_total", outcome="ok") - \
        total(before, "citylake_queries_total", outcome="ok")
    assert finished >= len(latencies)
    stopped = (total(after, "citylake_queries_total", outcome="over_limit") +
               total(after, "citylake_queries_total", outcome="timed_out")) - \
        (total(before, "citylake_queries_total", outcome="over_limit") +
         total(before, "citylake_queries_total", outcome="timed_out"))
    assert stopped >= 1
    shown = fetch(ops_server, f"SELECT state FROM system.queries WHERE sql = '{RUNAWAY}' "
                              "ORDER BY started DESC LIMIT 1")
    assert shown[0][0] in ("over_limit", "timed_out")


def test_graceful_shutdown_cancels_after_the_grace_period(lake):
    s = Server(lake, extra=["--shutdown-grace", "2s"])
    out = {}
    # two running queries, each recorded as its own cancelled query
    queries = {"a": RUNAWAY, "b": RUNAWAY.replace("count(*)", "count(*) AS n")}

    def long_query(key):
        try:
            out[key] = fetch(s, queries[key])
        except adbc_driver_manager.Error as e:
            out[key] = e
    threads = [threading.Thread(target=long_query, args=(k,)) for k in queries]
    for t in threads:
        t.start()
    time.sleep(1.5)
    ready = urllib.request.urlopen(f"http://{s.ops}/ready").status
    assert ready == 200
    started = time.time()
    s.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=60)
    s.proc.wait(timeout=60)
    assert time.time() - started < 30
    # the clients see an error (CANCELLED, or the connection gone when they close their statements)
    for key in queries:
        assert isinstance(out[key], adbc_driver_manager.Error), out[key]
    assert s.proc.returncode == 0
    audit = [json.loads(line) for p in (lake / "audit").glob("*.jsonl") for line in p.read_text().splitlines()]
    for sql in queries.values():
        ended = [r for r in audit if r.get("kind") == "query" and r.get("request") == sql]
        assert ended and ended[-1]["outcome"] == "cancelled", f"{sql}: {ended[-1:]}"
        assert "shutting down" in ended[-1]["error"], ended[-1]
        assert ended[-1]["query_id"] > 0
