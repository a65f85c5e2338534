"""Database outage: every program answers 503 SERVICE_UNAVAILABLE as JSON
while PostgreSQL is down, and recovers by itself (no restart of the
programs) once it is back. The `database` fixture owns the outage: the
database runs and the stack is healthy again after each test, whatever
failed."""
import concurrent.futures
import os
import threading
import uuid

import requests

from test_usage import metered
from util import (URL, api, error_code, eventually, issue, pids, poll, sql, sql1,
                  validate, wait_healthy, workers)


def test_database_down_then_back(database):
    lic = issue()
    assert validate(lic["key"], "o1").json()["code"] == "VALID"
    before = pids()
    database("stop")
    # /healthz answers from a check at most a second old
    r = poll(lambda: api("/healthz", method="GET"), lambda r: r.status_code == 503,
             10, "/healthz to answer 503")
    assert r.json()["status"] == "unavailable", r.text
    assert r.json()["database"] == "unreachable", r.text
    for _ in range(2):  # the first call finds the connection dead
        r = validate(lic["key"], "o1")
        assert r.status_code == 503, r.text
        assert error_code(r) == "SERVICE_UNAVAILABLE"
        r = api("/api/heartbeat", {"license_key": lic["key"], "installation_id": "o1"})
        assert r.status_code == 503 and error_code(r) == "SERVICE_UNAVAILABLE"
        r = api("/api/usage", {"license_key": lic["key"], "feature": "sso"})
        assert r.status_code == 503 and error_code(r) == "SERVICE_UNAVAILABLE"
    database("start")
    wait_healthy()
    # every worker reconnects on its own: many requests, all answered
    codes = [validate(lic["key"], "o1").json()["code"] for _ in range(20)]
    assert codes == ["VALID"] * 20
    assert validate(lic["key"], "o2").json()["code"] == "VALID"
    assert pids() == before, "programs were restarted"


def test_faults_under_load_lose_and_double_nothing(database):
    """Concurrent usage with idempotency keys while (a) a usage worker is
    SIGKILLed and (b) PostgreSQL stops and starts again. Every answer is
    JSON; afterwards the master has replaced the worker, the counter equals
    the log, no key was counted twice, and retrying the failed keys brings
    the count to exactly one per key."""
    lic = metered(limit=10 ** 9)
    keys = ["f-%s" % uuid.uuid4().hex for _ in range(3000)]
    answers = {}
    lock = threading.Lock()
    before_workers = workers("usage")
    assert len(before_workers) >= 2

    def send(chunk):
        s = requests.Session()
        for k in chunk:
            try:
                r = s.post(URL + "/api/usage", timeout=30,
                           json={"license_key": lic["key"], "feature": "api_calls",
                                 "idempotency_key": k})
                ctype = r.headers.get("Content-Type", "")
                res = (r.status_code, ctype.startswith("application/json"))
            except requests.RequestException:
                res = ("conn", True)
            with lock:
                answers[k] = res

    chunks = [keys[i::20] for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        futs = [ex.submit(send, c) for c in chunks]
        eventually(lambda: len(answers) >= 500, 120, "500 answers before the kill")
        os.kill(int(before_workers[0]), 9)
        eventually(lambda: len(answers) >= 1200, 120, "1200 answers before the stop")
        database("stop")
        with lock:
            n = len(answers)

        def seen_down():
            with lock:
                return sum(1 for a in list(answers.values())[n:] if a[0] == 503) >= 20
        # the outage lasts until clients have seen it
        eventually(seen_down, 60, "20 answers 503 during the outage")
        database("start")
        for f in futs:
            f.result()
    wait_healthy()
    statuses = {a[0] for a in answers.values()}
    assert statuses <= {200, 502, 503, "conn"}, statuses
    assert all(a[1] for a in answers.values())      # always JSON
    assert 200 in statuses and 503 in statuses
    after = workers("usage")
    assert len(after) == len(before_workers) and before_workers[0] not in after

    def agree():
        c = sql1("SELECT coalesce(sum(used), 0) FROM usage_counters WHERE license_id = %s",
                 lic["id"])
        n, total, distinct = sql("SELECT count(*), coalesce(sum(quantity), 0),"
                                 " count(DISTINCT idempotency_key) FROM usage_log"
                                 " WHERE license_id = %s", lic["id"])[0]
        assert c == total == n == distinct
        return c

    counted = agree()
    ok = [k for k, a in answers.items() if a[0] == 200]
    assert counted >= len(ok)
    # the client retries what failed, with the same keys, until answered
    # (each connection reconnects after its own backoff): one count per key

    def retried():
        send([k for k, a in answers.items() if a[0] != 200])
        return all(a[0] == 200 for a in answers.values())
    eventually(retried, 60, "every failed key answered 200 on retry", interval=0.2)
    send(keys[:200])                                  # and some that succeeded
    assert agree() == len(keys)
