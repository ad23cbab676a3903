"""The access policy over Flight SQL with a real client (ADBC): a district analyst sees the hotline
cases of their district only, with callers' names, phones and id numbers masked, and cannot read the
finance payees (as if the table did not exist); an analyst does not even see the restricted
datasets in metadata; the admin sees everything unmasked."""

import json
import re
import subprocess

import adbc_driver_manager
import pytest

from conftest import PASSWORD, Server, binary
from test_flight_clients import adbc


def fetch(server, user, sql):
    with adbc(server, user=user) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_a_district_analyst_sees_their_district_masked(server):
    assert fetch(server, "dora", "SELECT DISTINCT district FROM hotline.cases") == [("Xihu",)]
    (mine,) = fetch(server, "dora", "SELECT count(*) FROM hotline.cases")
    (xihu,) = fetch(server, "root", "SELECT count(*) FROM hotline.cases WHERE district = 'Xihu'")
    assert mine == xihu
    rows = fetch(server, "dora", "SELECT caller_name, caller_phone, caller_id_number FROM hotline.cases "
                                 "WHERE caller_phone IS NOT NULL AND caller_id_number IS NOT NULL LIMIT 100")
    assert rows
    for name, phone, id_number in rows:
        assert len(name) == 2 and name.endswith("*"), name
        assert re.fullmatch(r"\d{3}\*{4}\d{4}", phone), phone
        assert re.fullmatch(r".{6}\*{8}.{4}", id_number), id_number
    # the admin sees the real values
    real = fetch(server, "root", "SELECT caller_phone FROM hotline.cases WHERE district = 'Xihu' "
                                 "AND caller_phone IS NOT NULL ORDER BY case_id LIMIT 1")[0][0]
    assert "*" not in real
    # a filter on the hidden value confirms nothing
    assert fetch(server, "dora", f"SELECT case_id FROM hotline.cases WHERE caller_phone = '{real}'") == []


def test_hidden_tables_answer_like_missing_ones_and_the_server_keeps_serving(server):
    """A dataset the user may not even list answers exactly like a name that does not exist
    (no oracle for hidden names); one the user may list but not read is "permission denied"."""
    def error(user, sql):
        with pytest.raises(adbc_driver_manager.Error) as e:
            fetch(server, user, sql)
        return str(e.value)
    hidden = error("dora", "SELECT payee FROM finance.expenditures")
    missing = error("dora", "SELECT payee FROM finance.expenditurez")
    assert "not found" in hidden.lower() and "permission" not in hidden.lower(), hidden
    assert hidden.replace("expenditures", "X") == missing.replace("expenditurez", "X"), (hidden, missing)
    assert "hotline.cases" in error("ana", "SELECT count(*) FROM hotline.cases")
    assert "permission denied" in error("audrey", "SELECT count(*) FROM common.districts").lower()
    assert fetch(server, "ana", "SELECT count(*) FROM common.districts") == [(13,)]


def test_metadata_follows_the_policy(server):
    def schemas(user):
        with adbc(server, user=user) as conn:
            objects = conn.adbc_get_objects(depth="tables", catalog_filter="city").read_all().to_pylist()
            return {s["db_schema_name"]: [t["table_name"] for t in s["db_schema_tables"]]
                    for s in objects[0]["catalog_db_schemas"]}
    assert "cases" in schemas("dora").get("hotline", [])
    assert "expenditures" not in schemas("dora").get("finance", [])
    assert "hotline" not in schemas("ana")
    assert "expenditures" in schemas("root")["finance"]


def test_every_request_is_in_the_audit_log_and_survives_a_restart(lake):
    """Allowed and refused queries and metadata calls are recorded with user, client, datasets and
    masking; the auditor reads them as system.audit_log, others may not; a restarted server still
    has them; no password or token is ever written."""
    first = Server(lake)
    try:
        marker = "SELECT count(*) AS audit_marker FROM hotline.cases"
        fetch(first, "dora", marker)
        with pytest.raises(adbc_driver_manager.Error):
            fetch(first, "dora", "SELECT payee AS audit_refused FROM finance.expenditures")
        with adbc(first, user="dora") as conn:
            conn.adbc_get_objects(depth="tables", catalog_filter="city").read_all()
        with pytest.raises(adbc_driver_manager.Error) as e:
            fetch(first, "dora", "SELECT * FROM system.audit_log")
        assert "system.audit_log" in str(e.value)
    finally:
        first.stop()
    second = Server(lake)
    try:
        rows = fetch(second, "audrey", "SELECT user, kind, request, datasets, masked, rows, outcome, error, client "
                                       "FROM system.audit_log WHERE user = 'dora' ORDER BY time")
    finally:
        second.stop()
    by_request = {}
    for r in rows:
        by_request.setdefault(r[2], []).append(r)
    ok = [r for r in by_request[marker] if r[1] == "query"]
    assert ok and ok[-1][6] == "ok" and ok[-1][5] == 1, by_request[marker]
    assert ok[-1][3] == "hotline.cases" and "hotline.cases.caller_phone" in ok[-1][4], ok[-1]
    assert ok[-1][8].startswith("127.0.0.1:"), ok[-1]
    refused = by_request["SELECT payee AS audit_refused FROM finance.expenditures"]
    assert refused[-1][6] == "refused" and "finance.expenditures" in refused[-1][7], refused
    assert any(r[1] == "metadata" for r in rows), rows
    assert any(r[6] == "refused" and "audit_log" in r[2] for r in rows), rows
    text = "".join(p.read_text() for p in (lake / "audit").glob("*.jsonl"))
    assert PASSWORD not in text and "Bearer" not in text and "Basic " not in text
    for line in text.splitlines():
        json.loads(line)
    # logins are recorded too, and the chain holds across the restart
    assert any(r[1] == "login" for r in rows), rows
    done = subprocess.run([binary(), "audit", "verify", "--audit-dir", str(lake / "audit")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "intact" in done.stdout, done.stdout + done.stderr


def test_plans_over_flight_show_the_barrier_and_no_real_value(server):
    """EXPLAIN VERBOSE and EXPLAIN ANALYZE through ADBC: the governed scan is one opaque node, without
    the raw scan's statistics, files or the policy's operators."""
    real = {r[0] for r in fetch(server, "root", "SELECT caller_phone FROM hotline.cases "
                                                "WHERE caller_phone IS NOT NULL")}
    for q in ["EXPLAIN VERBOSE SELECT caller_phone FROM hotline.cases WHERE caller_phone > '1'",
              "EXPLAIN ANALYZE SELECT caller_phone, count(*) FROM hotline.cases GROUP BY 1"]:
        text = "\n".join(str(v) for row in fetch(server, "dora", q) for v in row)
        assert "GovernedScanExec" in text and "DataSourceExec" not in text, text
        assert ".parquet" not in text and "citylake_mask" not in text, text
        assert not any(phone in text for phone in real), text


def test_data_quality_over_flight_follows_the_policy(server):
    """The planted defects are in system.data_quality for whoever may see the dataset."""
    failing = fetch(server, "root", "SELECT dataset, \"check\" FROM system.data_quality "
                                    "WHERE status = 'fail' ORDER BY 1, 2")
    assert ("hotline.cases", "uniqueness") in failing
    assert ("traffic.segment_speed", "partition_rows") in failing
    assert ("emergency.incidents", "freshness") in failing
    # an analyst does not see the restricted hotline, not even its checks
    seen = {d for (d,) in fetch(server, "ana", "SELECT DISTINCT dataset FROM system.data_quality")}
    assert "traffic.segment_speed" in seen and "hotline.cases" not in seen
