"""Signing-key rotation without downtime, under load: `licctl keys add`
(published, not signing), `licctl keys activate KID` (licctl signs with it
at once, the programs after SIGHUP), `licctl keys retire KID`. The running
programs load a key whose kid they do not know yet by themselves. The
`keys` fixture owns the rotation: afterwards keys_dir, the JWKS and the
programs' signing key are as they were before the test, whatever failed."""
import grp
import json
import os
import re
import shutil
import signal
import stat
import tempfile
import threading

import pytest

from util import (CFG, RUN_DIR, admin, api, eventually, heartbeat, hot, issue,
                  json_error, jwt_parts, licctl, log_text, make_plan, sql, sql1,
                  unique, validate)

SIGNING = ("validate", "heartbeat", "usage", "revoke", "webhook")


def kid_of(token):
    return jwt_parts(token)[0]["kid"]


def hup():
    """SIGHUP to each program (its master passes it to the workers)."""
    for p in SIGNING:
        with open(os.path.join(RUN_DIR, "pid", p + ".pid")) as f:
            os.kill(int(f.read().strip()), signal.SIGHUP)


def added_kid(out):
    m = re.search(r"^new ES256 key (\S+) published", out, re.M)
    assert m, out
    return m.group(1)


def lease_kid(lic):
    """The kid of the lease the programs sign now."""
    b = validate(lic["key"], "rot-lease", nonce=unique("n")).json()
    assert b["code"] == "VALID", b
    return kid_of(b["lease"])


def signing(lic, kid):
    """Until every program process signs leases with kid (after hup())."""
    eventually(lambda: all(lease_kid(lic) == kid for _ in range(10)), 20,
               "leases signed with %s" % kid)


@pytest.fixture
def keys():
    """Owns the signing keys: keys_dir and the JWKS as they were are put
    back after the test, the programs reload them, and the test ends once
    leases are signed with the first key again."""
    kdir = CFG["keys_dir"]
    before = sorted(os.listdir(kdir))
    owner = {f: os.stat(os.path.join(kdir, f)) for f in before}
    jwks = open(CFG["jwks_file"], "rb").read()
    current = open(os.path.join(kdir, "current")).read().strip()
    with tempfile.TemporaryDirectory(prefix="licd-keys-") as saved:
        for f in before:
            shutil.copy2(os.path.join(kdir, f), saved)
        lic = issue()
        try:
            yield lic
        finally:
            for f in os.listdir(kdir):
                if f not in before:
                    os.unlink(os.path.join(kdir, f))
            for f in before:
                dst = os.path.join(kdir, f)
                shutil.copy2(os.path.join(saved, f), dst)
                os.chown(dst, owner[f].st_uid, owner[f].st_gid)
            with open(CFG["jwks_file"], "wb") as f:
                f.write(jwks)
    hup()
    signing(lic, current)
    assert api("/.well-known/jwks.json", method="GET").content == jwks


def test_rotation_under_load_without_invalid_keys(keys):
    kdir = CFG["keys_dir"]
    old = open(os.path.join(kdir, "current")).read().strip()
    plan = make_plan(limits="installations=1000")
    first = issue(plan=plan)
    assert kid_of(first["key"]) == old
    stop = threading.Event()
    codes, issued, errors = [], [], []

    def validator():
        i = 0
        while not stop.is_set():
            try:
                b = validate(first["key"], "rot-v%d" % (i % 50)).json()
                codes.append(("old", b.get("code")))
                h = heartbeat(first["key"], "rot-v%d" % (i % 50)).json()
                codes.append(("old-hb", h.get("code")))
            except Exception as e:          # noqa: BLE001 - recorded
                errors.append(repr(e))
            i += 1

    def issuer():
        while not stop.is_set():
            try:
                lic = issue(plan=plan)
                issued.append(lic["key"])
                b = validate(lic["key"], "rot-i").json()
                codes.append((kid_of(lic["key"]), b.get("code")))
                r = api("/api/usage", {"license_key": lic["key"],
                                       "feature": "sso", "quantity": 1})
                codes.append((kid_of(lic["key"]) + "-usage", r.status_code))
            except Exception as e:          # noqa: BLE001 - recorded
                errors.append(repr(e))

    threads = [threading.Thread(target=validator) for _ in range(3)] + \
        [threading.Thread(target=issuer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        eventually(lambda: len(issued) >= 3, 60, "3 keys issued")
        # step 1: a new key, published, not signing yet
        new = added_kid(licctl("keys", "add").stdout)
        assert new != old
        jwks = api("/.well-known/jwks.json", method="GET").json()
        assert {k["kid"] for k in jwks["keys"]} >= {old, new}
        st = os.stat(os.path.join(kdir, new + ".key"))
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert st.st_gid == os.stat(kdir).st_gid
        n = len(issued)
        eventually(lambda: len(issued) >= n + 3, 60, "3 more keys issued")
        assert all(kid_of(k) == old for k in issued)
        # step 2: it signs; licctl at once, the programs find it alone
        out = licctl("keys", "activate", new).stdout
        assert new in out
        assert "%s  ES256  current (signs)" % new in licctl("keys", "list").stdout
        eventually(lambda: sum(kid_of(k) == new for k in issued) >= 5, 60,
                   "5 keys issued with the new kid")
        # the programs sign leases with it after SIGHUP at the latest
        hup()
        signing(keys, new)
        n = len(issued)
        eventually(lambda: len(issued) >= n + 3, 60, "3 more keys issued")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors[:5]
    bad = [c for c in codes if c[1] not in ("VALID", 200)]
    assert not bad, bad[:10]
    kids = {kid_of(k) for k in issued}
    assert kids == {old, new}
    # info lines are buffered for up to log_flush_ms
    eventually(lambda: "keys reloaded for kid %s" % new in log_text(), 10,
               "the log line of the reload")
    # both kids keep validating afterwards
    assert validate(first["key"], "rot-after").json()["code"] == "VALID"
    assert validate(issued[-1], "rot-after").json()["code"] == "VALID"


def test_retired_key_stops_verifying_after_reload(keys):
    """A third key (group-readable by keys_group) becomes current; the
    second is retired: what it signed is INVALID_KEY once the programs
    reloaded, even where its license was answered from memory, what the
    others signed stays valid. The current key cannot
    be retired."""
    kdir = CFG["keys_dir"]
    k2 = added_kid(licctl("keys", "add").stdout)
    licctl("keys", "activate", k2)
    lic2 = issue()
    assert kid_of(lic2["key"]) == k2
    assert validate(lic2["key"], "ret").json()["code"] == "VALID"
    group = grp.getgrnam("nogroup")
    env_before = os.environ.get("LICD_KEYS_GROUP")
    os.environ["LICD_KEYS_GROUP"] = "nogroup"
    try:
        k3 = added_kid(licctl("keys", "add").stdout)
    finally:
        if env_before is None:
            del os.environ["LICD_KEYS_GROUP"]
        else:
            os.environ["LICD_KEYS_GROUP"] = env_before
    st = os.stat(os.path.join(kdir, k3 + ".key"))
    assert st.st_gid == group.gr_gid and stat.S_IMODE(st.st_mode) == 0o640
    p = licctl("keys", "retire", k2, check=False)
    assert p.returncode == 1 and "current" in p.stderr, (p.returncode, p.stderr)
    licctl("keys", "activate", k3)
    lic3 = issue()
    assert kid_of(lic3["key"]) == k3
    hup()
    signing(keys, k3)
    # its license answered from memory in every process: retiring the
    # kid must stop that too
    hot(lic2, "ret")
    # lic2 is not revoked: retiring what signed it is refused unless forced
    p = licctl("keys", "retire", k2, check=False)
    assert p.returncode == 1 and "1 licenses not revoked hold keys %s signed" % k2 in p.stderr, \
        (p.returncode, p.stderr)
    assert os.path.exists(os.path.join(kdir, k2 + ".pub"))
    licctl("keys", "retire", k2, "--force")
    assert not os.path.exists(os.path.join(kdir, k2 + ".pub"))
    jwks = api("/.well-known/jwks.json", method="GET").json()
    assert k2 not in {k["kid"] for k in jwks["keys"]}
    hup()

    def refused():
        # ten in a row from each program: every process has reloaded
        return all(validate(lic2["key"], "ret").json()["code"] == "INVALID_KEY" and
                   heartbeat(lic2["key"], "ret").json()["code"] == "INVALID_KEY"
                   for _ in range(10))
    eventually(refused, 20, "the retired key's license refused by validate and heartbeat")
    assert validate(lic3["key"], "ret").json()["code"] == "VALID"
    assert validate(keys["key"], "ret").json()["code"] == "VALID"
    p = licctl("keys", "retire", "nosuchkid", check=False)
    assert p.returncode == 1 and "no key nosuchkid" in p.stderr, (p.returncode, p.stderr)


def test_reissued_key_outlives_the_retired_one(keys):
    """`licctl license reissue` signs a license's key again with the
    current key (audited): the old key still verifies until its kid is
    retired; after the retirement and a reload, the old key is
    INVALID_KEY and the reissued one VALID, with the license's
    installation kept."""
    k2 = added_kid(licctl("keys", "add").stdout)
    licctl("keys", "activate", k2)
    lic = issue()
    assert kid_of(lic["key"]) == k2
    assert validate(lic["key"], "reissue-1").json()["code"] == "VALID"
    k3 = added_kid(licctl("keys", "add").stdout)
    licctl("keys", "activate", k3)
    doc = json.loads(licctl("license", "reissue", lic["id"], "--json").stdout)
    assert doc["id"] == lic["id"] and doc["kid"] == k3, doc
    new = doc["license_key"]
    assert kid_of(new) == k3 and new != lic["key"]
    assert jwt_parts(new)[1]["sub"] == lic["id"]
    # both verify while k2 is loaded
    assert validate(lic["key"], "reissue-1").json()["code"] == "VALID"
    assert validate(new, "reissue-1").json()["code"] == "VALID"
    shown = licctl("license", "show", lic["id"], "--json").stdout
    assert new in shown
    audit = licctl("audit", "--license", lic["id"], "--json").stdout
    assert "license.reissue" in audit, audit
    audit = sql1("""SELECT details FROM audit_log WHERE action = 'license.reissue'
                     AND target_id = %s ORDER BY id DESC LIMIT 1""", lic["id"])
    assert audit == {"kid": k3}, audit
    hup()
    signing(keys, k3)
    licctl("keys", "retire", k2)
    hup()

    def refused():
        return all(validate(lic["key"], "reissue-1").json()["code"] == "INVALID_KEY"
                   for _ in range(10))
    eventually(refused, 20, "the old key refused once its kid is retired")
    b = validate(new, "reissue-1").json()
    assert b["code"] == "VALID" and b["installation"]["status"] == "active", b


def test_bulk_reissue_before_retiring(keys, tmp_path):
    """`licctl license reissue --kid KID --keys-out FILE`: every license not
    revoked whose key KID signed, over several chunks, is signed again with
    the current key, stored and audited; FILE (0600) has one
    "id<TAB>e-mail<TAB>key" line per license; a second run finds nothing.
    `keys retire KID` is refused while such a license is left, and passes
    after; then the old keys are INVALID_KEY and the new ones VALID."""
    kdir = CFG["keys_dir"]
    first = open(os.path.join(kdir, "current")).read().strip()
    k2 = added_kid(licctl("keys", "add").stdout)
    licctl("keys", "activate", k2)
    plan = make_plan()
    email = unique("bulk") + "@example.com"
    licctl("customer", "create", "--email", email)
    many = tmp_path / "many.txt"
    licctl("license", "issue", "--customer", email, "--plan", plan, "--days", "30",
           "--count", "2345", "--keys-out", str(many))
    olds = many.read_text().split()
    assert len(olds) == 2345 and {kid_of(k) for k in olds} == {k2}
    one = issue(plan=plan)
    gone = issue(plan=plan)
    licctl("license", "revoke", gone["id"], "--reason", "bulk test")
    assert validate(one["key"], "bulk-1").json()["code"] == "VALID"
    untouched = keys                      # signed with the first key
    k3 = added_kid(licctl("keys", "add").stdout)
    licctl("keys", "activate", k3)

    p = licctl("keys", "retire", k2, check=False)
    assert p.returncode == 1 and "2346 licenses not revoked hold keys %s signed" % k2 in p.stderr, \
        (p.returncode, p.stderr)
    for bad in (["--kid", k3], ["--kid", "no such kid"], ["--kid", k2, one["id"]],
                ["--kid", k2, "--json"], [one["id"], "--keys-out", str(tmp_path / "x")]):
        p = licctl("license", "reissue", *bad, check=False)
        assert p.returncode in (1, 2) and p.stderr.startswith(("licctl: ", "usage: ")), \
            (bad, p.returncode, p.stderr)
        assert sql1("SELECT count(*) FROM licenses WHERE key_kid = %s", k3) == 0, bad

    out = tmp_path / "reissued.tsv"
    p = licctl("license", "reissue", "--kid", k2, "--keys-out", str(out))
    assert "reissued 2346 licenses signed with %s" % k2 in p.stderr, p.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    lines = [line.split("\t") for line in out.read_text().splitlines()]
    assert len(lines) == 2346 and all(len(f) == 3 for f in lines)
    ids = [f[0] for f in lines]
    assert ids == sorted(ids) and len(set(ids)) == 2346 and gone["id"] not in ids
    assert {f[1] for f in lines} == {email, one["email"]}
    stored = dict(sql("SELECT id::text, license_key FROM licenses WHERE key_kid = %s", k3))
    assert stored == {f[0]: f[2] for f in lines}
    for lid, _, key in lines[::500] + [l for l in lines if l[0] == one["id"]]:
        assert kid_of(key) == k3 and jwt_parts(key)[1]["sub"] == lid
    assert sql1("SELECT count(*) FROM licenses WHERE key_kid = %s", k2) == 1   # the revoked one
    assert sql1("SELECT key_kid FROM licenses WHERE id = %s", untouched["id"]) == first
    assert sql1("""SELECT count(*) FROM audit_log WHERE action = 'license.reissue'
                   AND actor = 'licctl' AND details = %s""",
                json.dumps({"kid": k3, "from_kid": k2})) == 2346

    p = licctl("license", "reissue", "--kid", k2)
    assert p.stdout == "" and "reissued 0 licenses" in p.stderr, (p.stdout, p.stderr)
    new = [l[2] for l in lines if l[0] == one["id"]][0]
    assert validate(new, "bulk-1").json()["code"] == "VALID"
    hup()
    signing(keys, k3)
    licctl("keys", "retire", k2)
    hup()

    def refused():
        return all(validate(one["key"], "bulk-1").json()["code"] == "INVALID_KEY"
                   for _ in range(10))
    eventually(refused, 20, "the old key refused once its kid is retired")
    b = validate(new, "bulk-1").json()
    assert b["code"] == "VALID" and b["installation"]["status"] == "active", b
    assert validate(untouched["key"], "bulk-1").json()["code"] == "VALID"


def test_reissue_through_the_admin_api(keys):
    """POST /api/admin/licenses/{id}/reissue, the console's way to what
    licctl license reissue does: the key signed again with the current key,
    stored with its kid and audited (actor, reason, kid) in one
    transaction, in that answer only; the old key keeps verifying."""
    lic = keys
    assert validate(lic["key"], "api-reissue").json()["code"] == "VALID"
    k2 = added_kid(licctl("keys", "add").stdout)
    licctl("keys", "activate", k2)
    hup()
    got = {}

    def reissued():         # each try signs again: until the program has k2
        r = admin("/api/admin/licenses/%s/reissue" % lic["id"], {"reason": "rotation"})
        assert r.status_code == 200, r.text
        got.clear()
        got.update(r.json())
        return got["kid"] == k2
    eventually(reissued, 20, "the admin API signing with " + k2)
    new = got["license_key"]
    assert sorted(got) == ["kid", "license_id", "license_key"], got
    assert got["license_id"] == lic["id"] and kid_of(new) == k2 and new != lic["key"]
    assert jwt_parts(new)[1]["sub"] == lic["id"]
    assert validate(lic["key"], "api-reissue").json()["code"] == "VALID"
    v = validate(new, "api-reissue").json()
    assert v["code"] == "VALID" and v["installation"]["status"] == "active", v
    # stored as the license's key; GET shows its kid, never the key
    assert sql1("SELECT license_key FROM licenses WHERE id = %s", lic["id"]) == new
    doc = admin("/api/admin/licenses/" + lic["id"], method="GET")
    assert doc.status_code == 200 and new not in doc.text, doc.text
    assert doc.json()["license"]["kid"] == k2
    last = [a for a in doc.json()["audit"] if a["action"] == "license.reissue"][0]
    assert last["reason"] == "rotation" and last["details"] == {"kid": k2} \
        and last["actor"], last
    assert new.rsplit(".", 1)[1] not in log_text()


def test_reissue_through_the_admin_api_refuses():
    lic = issue()
    path = "/api/admin/licenses/%s/reissue"
    json_error(admin(path % "00000000-0000-4000-8000-000000000000"), 404, "NOT_FOUND")
    json_error(admin(path % "not-a-license"), 404, "NOT_FOUND")
    r = json_error(admin(path % lic["id"], method="GET"), 405, "METHOD_NOT_ALLOWED")
    assert r.headers["Allow"] == "POST"
    json_error(admin(path % lic["id"], {"reason": 5}), 400, "INVALID_FIELD")
    json_error(admin(path % lic["id"], {"reason": "x" * 501}), 400, "INVALID_FIELD")
    json_error(api(path % lic["id"], {}, headers={"Authorization": "Bearer nope"}),
               401, "UNAUTHORIZED")
    # nothing of the refusals was written
    assert sql1("SELECT license_key FROM licenses WHERE id = %s", lic["id"]) == lic["key"]


def test_reissue_refuses_what_is_not_a_license():
    p = licctl("license", "reissue", "not-a-uuid", check=False)
    assert p.returncode == 2 and "usage: licctl license reissue" in p.stderr, p.stderr
    p = licctl("license", "reissue", "00000000-0000-4000-8000-000000000000",
               check=False)
    assert p.returncode == 1 and "no license" in p.stderr, p.stderr
