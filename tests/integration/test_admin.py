"""The admin surface (program `revoke`): bearer tokens, revoke, suspend,
reinstate, reset-activations, license detail, audit rows; the same actions
through licctl; offline leases for air-gapped machines."""
import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile

import requests

from util import (URL, BIN, CONFIG, admin, admin_token, api, error_code,
                  heartbeat, issue, licctl, licctl_json, restart_with_config,
                  sql, sql1, unique, validate)
from test_validate import verify_with_jwks


def audit_rows(lic_id):
    return sql("SELECT actor, action, reason, request_id FROM audit_log"
               " WHERE target_id = %s ORDER BY id", lic_id)


def usage_code(key):
    r = api("/api/usage", {"license_key": key, "feature": "sso"})
    return r.status_code, (r.json().get("error") or {}).get("code")


ADMIN_CALLS = [("POST", "/api/revoke"), ("POST", "/api/admin/licenses/%s/suspend"),
               ("POST", "/api/admin/licenses/%s/reinstate"),
               ("POST", "/api/admin/licenses/%s/reset-activations"),
               ("GET", "/api/admin/licenses/%s")]


def test_every_admin_call_needs_a_valid_token(lic):
    tok = admin_token()
    wrong_same_len = ("A" if tok[0] != "A" else "B") + tok[1:]
    bads = [None, "", "Bearer", "Bearer " + wrong_same_len, "Bearer " + tok[:-1],
            "Basic " + tok, "bearer" + tok, "Bearer " + tok + "x"]
    for method, path in ADMIN_CALLS:
        p = path % lic["id"] if "%s" in path else path
        body = {"license_id": lic["id"]} if p == "/api/revoke" else {}
        for auth in bads:
            h = {} if auth is None else {"Authorization": auth}
            r = api(p, body if method == "POST" else None, method=method, headers=h)
            assert r.status_code == 401, (p, auth, r.text)
            assert error_code(r) == "UNAUTHORIZED"
    assert sql1("SELECT status FROM licenses WHERE id = %s", lic["id"]) == "active"
    assert audit_rows(lic["id"]) == [("licctl", "license.issue", None, None)] or \
        all(a[0] == "licctl" for a in audit_rows(lic["id"]))


def test_a_session_ends_with_its_token():
    """A console session acts as the token that opened it: once that
    token's name is no longer in admin_tokens (here: the row names one
    that is not), the session signs nothing."""
    s = requests.Session()
    r = s.post(URL + "/api/admin/session", json={"token": admin_token()})
    assert r.status_code == 201, r.text
    h = {"X-Licd-CSRF": r.json()["csrf"]}
    assert s.get(URL + "/api/admin/plans", headers=h).status_code == 200
    value = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    sql("UPDATE admin_sessions SET actor = %s WHERE id_hash = "
        "sha256(convert_to(%s, 'UTF8'))", unique("removed"), value)
    r = s.get(URL + "/api/admin/plans", headers=h)
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED", r.text
    r = s.post(URL + "/api/admin/customers", json={"email": unique("x") +
               "@example.com"}, headers=h)
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED", r.text
    assert s.get(URL + "/api/admin/session").json() == {"signed_in": False}


def test_a_session_ends_when_its_token_gets_a_new_secret():
    """Rotating a token's secret under the same name (licctl token create
    ops again, its line in admin_tokens edited) ends the sessions the old
    secret opened, though the name is still configured; the old secret
    kept under another name does not keep them alive either."""
    old = admin_token()
    old_hash = hashlib.sha256(old.encode()).hexdigest()
    s = requests.Session()
    r = s.post(URL + "/api/admin/session", json={"token": old})
    assert r.status_code == 201, r.text
    name, h = r.json()["actor"], {"X-Licd-CSRF": r.json()["csrf"]}
    value = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert sql1("SELECT token_hash FROM admin_sessions WHERE id_hash = "
                "sha256(convert_to(%s, 'UTF8'))", value) == old_hash
    assert s.get(URL + "/api/admin/plans", headers=h).status_code == 200
    with open(CONFIG) as f:
        conf = f.read()
    line = re.search(r"^admin_tokens *=.*$", conf, re.M).group(0)
    assert (name + ":" + old_hash) in line, line
    new = secrets.token_urlsafe(32)
    new_hash = hashlib.sha256(new.encode()).hexdigest()
    rotated = conf.replace(line, "admin_tokens = %s:%s,prev-%s:%s" % (
        name, new_hash, name, old_hash))
    restart_with_config(rotated)
    try:
        r = s.get(URL + "/api/admin/plans", headers=h)
        assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED", r.text
        r = s.post(URL + "/api/admin/customers", json={"email": unique("x") +
                   "@example.com"}, headers=h)
        assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED", r.text
        assert s.get(URL + "/api/admin/session").json() == {"signed_in": False}
        # the new secret signs in under the name; the old one as prev-<name>
        for tok, who in ((new, name), (old, "prev-" + name)):
            t = requests.Session()
            r = t.post(URL + "/api/admin/session", json={"token": tok})
            assert r.status_code == 201 and r.json()["actor"] == who, r.text
            th = {"X-Licd-CSRF": r.json()["csrf"]}
            assert t.get(URL + "/api/admin/plans", headers=th).status_code == 200
            assert t.get(URL + "/api/admin/session").json()["actor"] == who
    finally:
        restart_with_config(conf)
    assert admin("/api/admin/plans", method="GET").status_code == 200


def test_revoke_takes_effect_on_the_very_next_call(lic):
    assert validate(lic["key"], "r1").json()["code"] == "VALID"
    assert heartbeat(lic["key"], "r1").json()["code"] == "VALID"
    assert usage_code(lic["key"])[0] == 200
    rid = unique("revoke")
    r = api("/api/revoke", {"license_id": lic["id"], "reason": "chargeback"},
            headers={"Authorization": "Bearer " + admin_token(), "X-Request-Id": rid})
    assert r.status_code == 200
    b = r.json()
    assert b["license_id"] == lic["id"] and b["status"] == "revoked"
    assert b["revoked_at"].endswith("Z")
    # every process let go of the license before the answer (the license
    # caches' barrier): the same second, every program refuses
    assert validate(lic["key"], "r1").json()["code"] == "REVOKED"
    assert heartbeat(lic["key"], "r1").json()["code"] == "REVOKED"
    assert usage_code(lic["key"]) == (403, "REVOKED")
    assert validate(lic["key"], "new").json()["code"] == "REVOKED"
    rows = [a for a in audit_rows(lic["id"]) if a[1] == "license.revoke"]
    assert rows == [("local", "license.revoke", "chargeback", rid)]


def test_revoke_by_key_and_idempotent(lic):
    r1 = admin("/api/revoke", {"license_key": lic["key"], "reason": "r"})
    r2 = admin("/api/revoke", {"license_id": lic["id"]})
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["revoked_at"] == r2.json()["revoked_at"]
    assert sql1("SELECT status FROM licenses WHERE id = %s", lic["id"]) == "revoked"
    # a revoked license stays revoked
    r = admin("/api/admin/licenses/%s/reinstate" % lic["id"])
    assert r.status_code == 409
    assert sql1("SELECT status FROM licenses WHERE id = %s", lic["id"]) == "revoked"


def test_revoke_bad_input():
    r = admin("/api/revoke", {})
    assert r.status_code == 400 and error_code(r) == "MISSING_FIELD"
    r = admin("/api/revoke", {"license_id": "not-a-uuid"})
    assert r.status_code == 400 and error_code(r) == "INVALID_FIELD"
    r = admin("/api/revoke", {"license_id": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    r = admin("/api/revoke", {"license_key": "garbage"})
    assert r.status_code == 400 and error_code(r) == "INVALID_FIELD", r.text
    r = admin("/api/revoke", {"license_id": 5})
    assert r.status_code == 400 and error_code(r) == "INVALID_FIELD"


def test_suspend_reinstate(lic):
    assert validate(lic["key"], "s1").json()["code"] == "VALID"
    r = admin("/api/admin/licenses/%s/suspend" % lic["id"], {"reason": "audit"})
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    assert r.json()["changed"] is True
    assert validate(lic["key"], "s1").json()["code"] == "SUSPENDED"
    assert heartbeat(lic["key"], "s1").json()["code"] == "SUSPENDED"
    assert usage_code(lic["key"]) == (403, "SUSPENDED")
    r = admin("/api/admin/licenses/%s/suspend" % lic["id"], {"reason": "audit"})
    assert r.status_code == 200 and r.json()["changed"] is False
    r = admin("/api/admin/licenses/%s/reinstate" % lic["id"])
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert validate(lic["key"], "s1").json()["code"] == "VALID"
    actions = [(a[1], a[2]) for a in audit_rows(lic["id"]) if a[0] == "local"]
    assert actions[:2] == [("license.suspend", "audit"), ("license.suspend", "audit")]
    assert actions[2][0] == "license.reinstate"


def test_reset_activations_frees_every_seat(lic):
    for i in range(3):
        assert validate(lic["key"], "x%d" % i).json()["code"] == "VALID"
    assert validate(lic["key"], "x3").json()["code"] == "TOO_MANY_INSTALLATIONS"
    r = admin("/api/admin/licenses/%s/reset-activations" % lic["id"])
    assert r.status_code == 200 and r.json()["deactivated"] == 3
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s"
                " AND status = 'active'", lic["id"]) == 0
    assert heartbeat(lic["key"], "x0").json()["code"] == "INSTALLATION_NOT_ACTIVE"
    assert validate(lic["key"], "x3").json()["code"] == "VALID"
    r = admin("/api/admin/licenses/%s/reset-activations" % lic["id"])
    assert r.status_code == 200 and r.json()["deactivated"] == 1


def test_license_detail(lic):
    validate(lic["key"], "d1", version="3.0")
    api("/api/usage", {"license_key": lic["key"], "feature": "sso", "quantity": 4})
    r = admin("/api/admin/licenses/%s" % lic["id"], method="GET")
    assert r.status_code == 200
    b = r.json()
    assert b["license"]["id"] == lic["id"] and b["license"]["status"] == "active"
    assert [i["id"] for i in b["installations"]] == ["d1"]
    assert b["installations"][0]["status"] == "active"
    text = json.dumps(b["usage"])
    assert "sso" in text and "4" in text
    r = admin("/api/admin/licenses/00000000-0000-0000-0000-000000000000", method="GET")
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    for verb in ("suspend", "reinstate", "reset-activations"):
        r = admin("/api/admin/licenses/00000000-0000-0000-0000-000000000000/" + verb)
        assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    r = admin("/api/admin/licenses/%s/explode" % lic["id"])
    assert r.status_code == 404


def test_licctl_actions_write_audit_rows(lic):
    for action in ("suspend", "reinstate", "revoke"):
        licctl("license", action, lic["id"], "--reason", "by hand " + action)
    assert sql1("SELECT status FROM licenses WHERE id = %s", lic["id"]) == "revoked"
    rows = [(a[0], a[1], a[2]) for a in audit_rows(lic["id"])]
    for action in ("suspend", "reinstate", "revoke"):
        assert ("licctl", "license." + action, "by hand " + action) in rows
    out = licctl("audit", "--license", lic["id"]).stdout
    assert "license.revoke" in out and "by hand revoke" in out
    assert validate(lic["key"]).json()["code"] == "REVOKED"


def test_licctl_usage_report(lic):
    api("/api/usage", {"license_key": lic["key"], "feature": "workflows", "quantity": 7})
    out = licctl("usage", lic["id"]).stdout
    assert "workflows" in out and "7" in out


def test_licctl_help_on_every_command():
    cmds = [["migrate"], ["keys"], ["keys", "generate"], ["plan"], ["plan", "set"],
            ["customer"], ["customer", "create"], ["license"], ["license", "issue"],
            ["license", "show"], ["license", "list"], ["license", "revoke"],
            ["usage"], ["audit"], ["lease"], ["lease", "offline"], ["token"],
            ["token", "create"], []]
    for c in cmds:
        p = subprocess.run([os.path.join(BIN, "licctl")] + c + ["--help"],
                           capture_output=True, text=True,
                           env=dict(os.environ, LICD_CONFIG="/nonexistent/licd.conf"))
        assert p.returncode == 0, (c, p.stderr)
        assert p.stdout.startswith("usage:"), c


def test_offline_lease_for_an_air_gapped_machine():
    lic = issue(limits="installations=2")
    out = licctl_json("lease", "offline", "--license", lic["id"],
                      "--installation", "vault-01", "--days", "365")
    lease = out["lease"] if isinstance(out, dict) else out
    c = verify_with_jwks(lease, "lease+jwt")
    assert c["sub"] == lic["id"] and c["iid"] == "vault-01"
    exp = sql1("SELECT extract(epoch FROM expires_at)::bigint FROM licenses"
               " WHERE id = %s", lic["id"])
    assert c["exp"] == exp  # capped at the license's end (30 days)
    assert sql1("SELECT status FROM installations WHERE license_id = %s AND"
                " installation_id = 'vault-01'", lic["id"]) == "active"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"installation_id": "vault-02", "nonce": "n-42",
                   "metadata": {"hostname": "vault-02"}}, f)
    try:
        out = licctl_json("lease", "offline", "--license", lic["id"],
                          "--request", f.name, "--days", "10")
    finally:
        os.unlink(f.name)
    lease = out["lease"] if isinstance(out, dict) else out
    c = verify_with_jwks(lease, "lease+jwt")
    assert c["iid"] == "vault-02" and c["nonce"] == "n-42"
    assert abs(c["exp"] - c["iat"] - 10 * 86400) <= 1
    # both seats used: an online activation is refused
    assert validate(lic["key"], "online").json()["code"] == "TOO_MANY_INSTALLATIONS"
    p = licctl("lease", "offline", "--license", lic["id"], "--installation",
               "vault-03", "--days", "10", check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                lic["id"]) == 2
