"""Database outage: every program answers 503 SERVICE_UNAVAILABLE as JSON
while PostgreSQL is down, and recovers by itself (no restart of the
programs) once it is back. Runs last (file name) because it stops the
shared database."""
import os
import subprocess
import time

from conftest import api, error_code, eventually, issue, validate, wait_healthy


def run(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)


def pids():
    d = os.path.join(os.environ.get("LICD_RUN_DIR", "run"), "pid")
    return {f: open(os.path.join(d, f)).read().strip() for f in os.listdir(d)}


def test_database_down_then_back():
    lic = issue()
    assert validate(lic["key"], "o1").json()["code"] == "VALID"
    before = pids()
    run(os.environ["LICD_PG_STOP"])
    try:
        # /healthz answers from a check at most a second old
        r = eventually(lambda: (lambda r: r if r.status_code == 503 else None)(
            api("/healthz", method="GET")), timeout=10)
        assert r is not None, "/healthz never answered 503"
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
    finally:
        run(os.environ["LICD_PG_START"])
    assert wait_healthy()
    # every worker reconnects on its own: many requests, all answered
    codes = [validate(lic["key"], "o1").json()["code"] for _ in range(20)]
    assert codes == ["VALID"] * 20
    assert validate(lic["key"], "o2").json()["code"] == "VALID"
    assert pids() == before, "programs were restarted"


def workers(program):
    """Pids of the worker processes under a program's prefork master."""
    master = pids()[program + ".pid"]
    out = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True).stdout
    return sorted(out.split())


def test_faults_under_load_lose_and_double_nothing():
    """Concurrent usage with idempotency keys while (a) a usage worker is
    SIGKILLed and (b) PostgreSQL stops and starts again. Every answer is
    JSON; afterwards the master has replaced the worker, the counter equals
    the log, no key was counted twice, and retrying the failed keys brings
    the count to exactly one per key."""
    import concurrent.futures
    import threading
    import uuid

    import requests

    from conftest import URL, sql, sql1
    from test_usage import metered

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
        while len(answers) < 500:
            time.sleep(0.02)
        os.kill(int(before_workers[0]), 9)
        while len(answers) < 1200:
            time.sleep(0.02)
        run(os.environ["LICD_PG_STOP"])
        time.sleep(1)
        run(os.environ["LICD_PG_START"])
        for f in futs:
            f.result()
    assert wait_healthy()
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
    # the client retries what failed, with the same keys, as a 503's
    # Retry-After asks (each connection reconnects after its own backoff):
    # one count per key
    for _ in range(10):
        failed = [k for k, a in answers.items() if a[0] != 200]
        if not failed:
            break
        time.sleep(1)
        send(failed)
    send(keys[:200])                                  # and some that succeeded
    assert agree() == len(keys)
