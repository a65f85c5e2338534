"""Database outage: every program answers 503 SERVICE_UNAVAILABLE as JSON
while PostgreSQL is down, and recovers by itself (no restart of the
programs) once it is back. Runs last (file name) because it stops the
shared database."""
import os
import subprocess
import time

from conftest import api, error_code, issue, validate, wait_healthy


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
        for _ in range(2):  # the first call finds the connection dead
            r = api("/healthz", method="GET")
            assert r.status_code == 503 and r.json()["database"] != "ok" \
                or error_code(r) == "SERVICE_UNAVAILABLE"
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
