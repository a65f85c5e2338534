"""POST /api/validate, /api/heartbeat, /api/deactivate, the license key,
the lease and JWKS, over HTTP through nginx against the real database."""
import concurrent.futures
import glob
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import time

import jwt  # PyJWT from Debian: an independent verifier
import psycopg2
import requests

from util import (CFG, RUN_DIR, URL, api, b64url, b64url_decode, db,
                  touches_written,
                  error_code, eventually, heartbeat, issue,
                  jwt_parts, log_text, logged, make_plan, sql, sql1,
                  unique, validate, wait_healthy)


def jwks():
    r = api("/.well-known/jwks.json", method="GET")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def verify_with_jwks(token, typ):
    """Verifies token with PyJWT against the published JWKS only."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == typ
    keys = {k["kid"]: k for k in jwks()["keys"]}
    assert header["kid"] in keys
    key = jwt.PyJWK(keys[header["kid"]]).key
    return jwt.decode(token, key, algorithms=[header["alg"]],
                      issuer=CFG["issuer"], leeway=10, options={"verify_aud": False})


def sign_es256_wrong_key(header, payload):
    from cryptography.hazmat.primitives.asymmetric import ec
    k = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(payload, k, algorithm="ES256", headers=header)


def counts():
    """Everything a rejected request must leave untouched, once what
    earlier requests queued has been written."""
    touches_written()
    return sql("SELECT (SELECT count(*) FROM installations),"
               " (SELECT coalesce(max(last_seen), 'epoch') FROM installations),"
               " (SELECT count(*) FROM licenses),"
               " (SELECT count(*) FROM audit_log)")[0]


# --- the happy path -------------------------------------------------------

def test_valid_key_returns_license_installation_and_lease(lic):
    before = time.time()
    r = validate(lic["key"], "host-a.example:1", version="2.4.1",
                 metadata={"hostname": "a", "platform": "linux"}, nonce="n-123")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    b = r.json()
    assert b["valid"] is True and b["code"] == "VALID"
    L = b["license"]
    assert L["id"] == lic["id"] and L["customer_id"] == lic["customer_id"]
    assert L["plan"] == lic["plan"] and L["status"] == "active"
    assert L["features"] == ["sso", "workflows", "reports"]
    assert L["limits"] == {"installations": 3}
    assert L["expires_at"] == lic["expires_at"] and L["grace_until"] is None
    inst = b["installation"]
    assert inst["id"] == "host-a.example:1" and inst["status"] == "active"
    assert inst["first_seen"].endswith("Z")

    claims = verify_with_jwks(b["lease"], "lease+jwt")
    assert claims["sub"] == lic["id"] and claims["iid"] == "host-a.example:1"
    assert claims["feat"] == L["features"] and claims["limits"] == L["limits"]
    assert claims["nonce"] == "n-123"
    # default offline grace: 7 days from now
    assert abs(claims["exp"] - (claims["iat"] + 7 * 86400)) <= 1
    assert before - 2 <= claims["iat"] <= time.time() + 2
    assert b["lease_expires_at"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"]))

    row = sql("SELECT status, version, metadata->>'hostname' FROM installations"
              " WHERE license_id = %s AND installation_id = %s",
              lic["id"], "host-a.example:1")
    assert row == [("active", "2.4.1", "a")]


def test_license_key_itself_verifies_with_jwks(lic):
    claims = verify_with_jwks(lic["key"], "JWT")
    assert claims["sub"] == lic["id"] and claims["cid"] == lic["customer_id"]
    assert claims["lic"] == lic["plan"]
    assert claims["feat"] == ["sso", "workflows", "reports"]
    assert claims["limits"] == {"installations": 3}
    assert "exp" in claims and claims["exp"] > claims["iat"]


def test_lease_never_outlives_the_license():
    lic = issue(days=2)
    b = validate(lic["key"]).json()
    assert b["code"] == "VALID"
    claims = verify_with_jwks(b["lease"], "lease+jwt")
    exp = sql1("SELECT extract(epoch FROM expires_at)::bigint FROM licenses"
               " WHERE id = %s", lic["id"])
    assert claims["exp"] == exp


def test_perpetual_license_has_no_exp_and_seven_day_lease():
    lic = issue(perpetual=True)
    _, payload, _ = jwt_parts(lic["key"])
    assert "exp" not in payload
    b = validate(lic["key"]).json()
    assert b["code"] == "VALID" and b["license"]["expires_at"] is None
    c = verify_with_jwks(b["lease"], "lease+jwt")
    assert abs(c["exp"] - c["iat"] - 7 * 86400) <= 1


def test_database_is_the_source_of_truth_for_features(lic):
    sql("UPDATE licenses SET features = '[\"sso\",\"audit\"]' WHERE id = %s",
        lic["id"])
    b = validate(lic["key"], feature="audit").json()
    assert b["code"] == "VALID" and b["license"]["features"] == ["sso", "audit"]
    assert verify_with_jwks(b["lease"], "lease+jwt")["feat"] == ["sso", "audit"]


def test_jwks_is_static_json_with_public_keys_only():
    keys = jwks()["keys"]
    assert keys, "no keys published"
    for k in keys:
        assert k["kid"] and k["use"] == "sig" and k["alg"] in ("ES256", "EdDSA")
        assert "d" not in k  # never the private part


# --- status codes ---------------------------------------------------------

def test_expired_by_status(lic):
    sql("UPDATE licenses SET status = 'expired' WHERE id = %s", lic["id"])
    b = validate(lic["key"]).json()
    assert (b["valid"], b["code"]) == (False, "EXPIRED")
    assert b["license"]["id"] == lic["id"] and "lease" not in b


def test_expired_by_date(lic):
    sql("UPDATE licenses SET expires_at = now() - interval '1 minute'"
        " WHERE id = %s", lic["id"])
    b = validate(lic["key"]).json()
    assert (b["valid"], b["code"]) == (False, "EXPIRED") and "lease" not in b


def test_revoked(lic):
    assert validate(lic["key"]).json()["code"] == "VALID"
    sql("UPDATE licenses SET status = 'revoked', revoked_at = now() WHERE id = %s",
        lic["id"])
    b = validate(lic["key"]).json()
    assert (b["valid"], b["code"]) == (False, "REVOKED") and "lease" not in b
    assert heartbeat(lic["key"]).json()["code"] == "REVOKED"


def test_suspended(lic):
    sql("UPDATE licenses SET status = 'suspended', suspended_at = now()"
        " WHERE id = %s", lic["id"])
    b = validate(lic["key"]).json()
    assert (b["valid"], b["code"]) == (False, "SUSPENDED")
    assert b["license"]["status"] == "suspended"


def test_unknown_license_with_valid_signature(lic):
    # a correctly signed key whose license row is gone (e.g. a restored
    # backup): the signature alone never makes a key valid
    sql("DELETE FROM licenses WHERE id = %s", lic["id"])
    b = validate(lic["key"]).json()
    assert (b["valid"], b["code"]) == (False, "INVALID_KEY")


def test_key_other_than_the_stored_one_is_verified(lic):
    """A key the verified-key cache does not know is accepted when it is
    the stored one; any other is verified: a key re-signed since (here: no
    stored key at all, or another stored one) still validates on its
    signature, for validate and heartbeat alike."""
    sql("UPDATE licenses SET license_key = NULL WHERE id = %s", lic["id"])
    assert validate(lic["key"], "k1").json()["code"] == "VALID"
    r = api("/api/usage", {"license_key": lic["key"], "feature": "sso",
                           "quantity": 1})
    assert r.status_code == 200, r.text
    other = issue()
    sql("UPDATE licenses SET license_key = %s WHERE id = %s", other["key"],
        lic["id"])
    assert heartbeat(lic["key"], "k1").json()["code"] == "VALID"
    # and the other license's key stays the other license's
    b = validate(other["key"], "k2").json()
    assert b["code"] == "VALID" and b["license"]["id"] == other["id"]


def test_stored_key_vouches_only_for_itself_under_a_loaded_kid(lic):
    h, p, s = lic["key"].split(".")
    payload = json.loads(b64url_decode(p))
    payload["limits"]["installations"] = 1000
    forged = "%s.%s.%s" % (h, b64url(json.dumps(payload)), s)
    # no stored key to compare with: the forgery is verified, and fails
    sql("UPDATE licenses SET license_key = NULL WHERE id = %s", lic["id"])
    assert_invalid_key(forged)
    # a stored key whose kid is not loaded (a retired signing key) vouches
    # for nothing: retiring a key retires what it signed
    header = json.loads(b64url_decode(h))
    header["kid"] = "retired-kid"
    retired = "%s.%s.%s" % (b64url(json.dumps(header)), p, s)
    sql("UPDATE licenses SET license_key = %s WHERE id = %s", retired, lic["id"])
    assert_invalid_key(retired)
    r = heartbeat(retired, "x").json()
    assert r["code"] == "INVALID_KEY"
    r = api("/api/usage", {"license_key": retired, "feature": "sso",
                           "quantity": 1})
    assert r.status_code == 403 and error_code(r) == "INVALID_KEY"
    assert sql1("SELECT count(*) FROM usage_log WHERE license_id = %s",
                lic["id"]) == 0


# --- forged and broken keys -----------------------------------------------

def assert_invalid_key(*tokens):
    """Each token is refused with INVALID_KEY and none of them writes."""
    before = counts()
    for token in tokens:
        r = validate(token, unique("forge"))
        assert r.status_code == 200, r.text
        b = r.json()
        assert (b["valid"], b["code"]) == (False, "INVALID_KEY"), (token, b)
        assert "lease" not in b and "license" not in b
    assert counts() == before


def test_tampered_payload(lic):
    h, p, s = lic["key"].split(".")
    payload = json.loads(b64url_decode(p))
    payload["feat"].append("everything")
    payload["limits"]["installations"] = 1000
    assert_invalid_key("%s.%s.%s" % (h, b64url(json.dumps(payload)), s))


def test_bad_signature(lic):
    h, p, s = lic["key"].split(".")
    sig = bytearray(b64url_decode(s))
    sig[10] ^= 0x01
    assert_invalid_key("%s.%s.%s" % (h, p, b64url(bytes(sig))), "%s.%s." % (h, p))


def test_signed_by_another_key_with_our_kid(lic):
    header, payload, _ = jwt_parts(lic["key"])
    assert_invalid_key(sign_es256_wrong_key({"kid": header["kid"]}, payload))


def test_alg_none(lic):
    _, payload, _ = jwt_parts(lic["key"])
    forged = []
    for alg in ("none", "None", "NONE"):
        h = b64url(json.dumps({"alg": alg, "typ": "JWT"}))
        forged += ["%s.%s." % (h, b64url(json.dumps(payload))),
                   "%s.%s" % (h, b64url(json.dumps(payload)))]
    assert_invalid_key(*forged)


def test_hs256_signed_with_the_public_key(lic):
    """The classic algorithm-confusion forgery: HMAC keyed with the PEM (and
    the JWK) of the real public key."""
    header, payload, _ = jwt_parts(lic["key"])
    pubs = glob.glob(os.path.join(CFG["keys_dir"], "*.pub"))
    assert pubs
    secrets = [open(p, "rb").read() for p in pubs]
    secrets.append(json.dumps(jwks()["keys"][0]).encode())
    forged = []
    for alg, dig in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384),
                     ("HS512", hashlib.sha512)):
        for secret in secrets:
            h = b64url(json.dumps({"alg": alg, "typ": "JWT", "kid": header["kid"]}))
            p = b64url(json.dumps(payload))
            mac = hmac.new(secret, ("%s.%s" % (h, p)).encode(), dig).digest()
            forged.append("%s.%s.%s" % (h, p, b64url(mac)))
    assert_invalid_key(*forged)


def test_unknown_kid(lic):
    h, p, s = lic["key"].split(".")
    header = json.loads(b64url_decode(h))
    forged = []
    for kid in ("no-such-kid", "../../../etc/passwd", "", None):
        hh = dict(header)
        if kid is None:
            del hh["kid"]
        else:
            hh["kid"] = kid
        forged.append("%s.%s.%s" % (b64url(json.dumps(hh)), p, s))
    assert_invalid_key(*forged)


def test_lease_used_as_key(lic):
    lease = validate(lic["key"]).json()["lease"]
    # and the reverse trick: a lease re-labelled typ JWT no longer verifies
    h, p, s = lease.split(".")
    header = json.loads(b64url_decode(h))
    header["typ"] = "JWT"
    assert_invalid_key(lease, "%s.%s.%s" % (b64url(json.dumps(header)), p, s))


def test_garbage_keys():
    assert_invalid_key("garbage", "a.b.c", "...", "eyJ.eyJ.x", "é.é.é",
                       "x" * 8000, b64url("{}") + "." + b64url("{}") + ".",
                       "eyJhbGciOiJFUzI1NiJ9" * 3)


# --- domains --------------------------------------------------------------

def domain_code(lic, domain, iid=None):
    kw = {} if domain is None else {"domain": domain}
    return validate(lic["key"], iid or unique("d"), **kw).json()["code"]


def test_domain_exact_and_wildcard():
    lic = issue(domains="company.com,*.corp.example.org",
                limits="installations=100")
    assert domain_code(lic, "company.com") == "VALID"
    assert domain_code(lic, "COMPANY.com") == "VALID"
    assert domain_code(lic, "company.com.") == "VALID"
    assert domain_code(lic, "app.corp.example.org") == "VALID"
    assert domain_code(lic, "a.b.c.corp.example.org") == "VALID"
    assert domain_code(lic, "App.Corp.Example.Org.") == "VALID"


def test_domain_traps():
    lic = issue(domains="company.com,*.corp.example.org",
                limits="installations=100")
    for d in ("evilcompany.com", "company.com.evil.com", "www.company.com",
              "corp.example.org", "evilcorp.example.org", "xcorp.example.org",
              "corp.example.org.evil.com", "company.co", "EVILCOMPANY.COM."):
        assert domain_code(lic, d) == "DOMAIN_NOT_ALLOWED", d
    # not a host name at all: a client error, not a domain mismatch
    for d in ("company.com:443", "company.com/x", "*.company.com",
              "company .com", "", "company.com..", ".company.com"):
        r = validate(lic["key"], unique("d"), domain=d)
        assert r.status_code == 400 and error_code(r) == "INVALID_FIELD", d
    assert domain_code(lic, None) == "DOMAIN_NOT_ALLOWED"
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                lic["id"]) == 0


def test_no_restrictions_accepts_any_domain_and_none(lic):
    assert domain_code(lic, "anything.example") == "VALID"
    assert domain_code(lic, None) == "VALID"


# --- features and seats ---------------------------------------------------

def test_feature_not_licensed(lic):
    assert validate(lic["key"], feature="sso").json()["code"] == "VALID"
    b = validate(lic["key"], "other", feature="billing").json()
    assert (b["valid"], b["code"]) == (False, "FEATURE_NOT_LICENSED")
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s"
                " AND installation_id = 'other'", lic["id"]) == 0


def test_too_many_installations_sequential(lic):
    for i in range(3):
        assert validate(lic["key"], "seat-%d" % i).json()["code"] == "VALID"
    b = validate(lic["key"], "seat-3").json()
    assert (b["valid"], b["code"]) == (False, "TOO_MANY_INSTALLATIONS")
    assert "lease" not in b
    # existing installations keep validating
    assert validate(lic["key"], "seat-1").json()["code"] == "VALID"
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s"
                " AND status = 'active'", lic["id"]) == 3
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s"
                " AND installation_id = 'seat-3'", lic["id"]) == 0


def test_too_many_installations_concurrent(lic):
    def one(i):
        s = requests.Session()
        r = s.post(URL + "/api/validate", timeout=60,
                   json={"license_key": lic["key"], "installation_id": "c-%d" % i})
        return r.status_code, r.json()["code"]

    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        results = list(ex.map(one, range(50)))
    assert all(s == 200 for s, _ in results)
    codes = [c for _, c in results]
    assert codes.count("VALID") == 3, codes
    assert codes.count("TOO_MANY_INSTALLATIONS") == 47
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                lic["id"]) == 3


def test_concurrent_calls_each_get_their_own_answer():
    """Lookups arriving together are read in one statement
    (fcgi/lib/lookup.h); every call must still get its own license's and
    installation's answer, whatever else shared its batch."""
    plan = make_plan(features="sso,api_calls", limits="installations=100")
    lics = [issue(plan=plan, limits="installations=100,api_calls_per_month=%d"
                  % (1000 + i)) for i in range(6)]
    revoked, gone = lics[4], lics[5]
    sql("UPDATE licenses SET status = 'revoked', revoked_at = now()"
        " WHERE id = %s", revoked["id"])
    # a correctly signed key whose license row is gone: no row in the batch
    sql("DELETE FROM licenses WHERE id = %s", gone["id"])
    live = lics[:4]
    for n, l in enumerate(live):
        for k in range(3):
            assert validate(l["key"], "cc-%d-%d" % (n, k)).json()["code"] == "VALID"

    calls = []
    for rnd in range(8):
        for n, l in enumerate(live):
            for k in range(3):
                calls.append(("validate", n, k, rnd))
                calls.append(("heartbeat", n, k, rnd))
            calls.append(("usage", n, None, rnd))
            calls.append(("heartbeat-new", n, None, rnd))
        calls.append(("revoked", 4, None, rnd))
        calls.append(("gone", 5, None, rnd))

    def one(c):
        what, n, k, rnd = c
        l = lics[n]
        iid = "cc-%d-%d" % (n, k or 0)
        if what == "validate":
            r = validate(l["key"], iid, version="v%d.%d" % (n, k), nonce="x%d" % rnd)
        elif what == "heartbeat":
            r = heartbeat(l["key"], iid, version="v%d.%d" % (n, k))
        elif what == "heartbeat-new":
            r = heartbeat(l["key"], "cc-never-%d" % n)
        elif what == "usage":
            r = api("/api/usage", {"license_key": l["key"], "feature": "api_calls",
                                   "quantity": 1})
        else:
            r = validate(l["key"], "cc-x")
        return c, r.status_code, r.json()

    with concurrent.futures.ThreadPoolExecutor(48) as ex:
        results = list(ex.map(one, calls))
    for (what, n, k, rnd), status, b in results:
        assert status == 200, (what, b)
        if what in ("validate", "heartbeat"):
            assert b["code"] == "VALID", b
            assert b["license"]["id"] == lics[n]["id"]
            assert b["license"]["limits"]["api_calls_per_month"] == 1000 + n
            claims = jwt.decode(b["lease"], options={"verify_signature": False})
            assert (claims["sub"], claims["iid"]) == (lics[n]["id"], "cc-%d-%d" % (n, k))
            if what == "validate":
                assert claims["nonce"] == "x%d" % rnd
                assert b["installation"]["id"] == "cc-%d-%d" % (n, k)
        elif what == "heartbeat-new":
            assert (b["code"], b["license"]["id"]) == \
                ("INSTALLATION_NOT_ACTIVE", lics[n]["id"])
        elif what == "usage":
            assert (b["feature"], b["limit"]) == ("api_calls", 1000 + n), b
        elif what == "revoked":
            assert (b["code"], b["license"]["id"]) == ("REVOKED", revoked["id"])
        else:
            assert b["code"] == "INVALID_KEY" and "license" not in b, b
    for n, l in enumerate(live):
        assert sql1("SELECT count(*) FROM usage_log WHERE license_id = %s",
                    l["id"]) == 8
    # each installation's refresh carried its own version
    want = sorted(("cc-%d-%d" % (n, k), "v%d.%d" % (n, k))
                  for n in range(4) for k in range(3))
    eventually(lambda: sorted(sql("SELECT installation_id, version FROM installations"
                                  " WHERE license_id = ANY(%s::uuid[])",
                                  [l["id"] for l in live])) == want,
               5, "each installation's version written")



def test_batched_lookup_answers_as_licd_lookup(lic):
    """licd_lookup_batch repeats licd_lookup's select list inline, for
    speed (sql/functions/40_lookup.sql); the handlers read both by column
    position. For the same inputs, in one transaction (one clock), each
    item's row must be licd_lookup's row, and an unknown license must have
    none."""
    assert validate(lic["key"], "bl-1", version="1.0.0").json()["code"] == "VALID"
    touches_written()
    sql("UPDATE installations SET metadata = '{\"os\":\"linux\"}'"
        " WHERE license_id = %s AND installation_id = 'bl-1'", lic["id"])
    missing = "00000000-0000-4000-8000-000000000000"
    items = [
        (lic["id"], "bl-1", 3600, None, None),          # known, fresh
        (lic["id"], "bl-1", 0, None, None),             # known, due a touch
        (lic["id"], "bl-1", 3600, "2.0.0", None),       # version changed
        (lic["id"], "bl-1", 3600, "1.0.0", '{"os":"linux"}'),  # unchanged
        (lic["id"], "bl-1", 3600, None, '{"os":"bsd"}'),  # metadata changed
        (lic["id"], "bl-new", 3600, None, None),        # unknown installation
        (lic["id"], None, 0, None, None),               # no installation
        (missing, "bl-1", 3600, None, None),            # no such license
    ]
    batch = [dict({"n": n, "l": l, "s": s},
                  **({"i": i} if i is not None else {}),
                  **({"v": v} if v is not None else {}),
                  **({"m": m} if m is not None else {}))
             for n, (l, i, s, v, m) in enumerate(items)]
    conn = psycopg2.connect(CFG["database_url"])
    try:
        with conn, conn.cursor() as cur:
            alone = []
            for l, i, s, v, m in items:
                cur.execute("SELECT * FROM licd_lookup(%s, %s, %s, %s, %s)",
                            (l, i, s, v, m))
                alone.append(cur.fetchall())
            cur.execute("SELECT * FROM licd_lookup_batch(%s::jsonb)",
                        (json.dumps(batch),))
            together = cur.fetchall()
    finally:
        conn.close()
    by_n = {row[-1]: row[:-1] for row in together}
    assert len(by_n) == len(together) == len(items) - 1
    for n, rows in enumerate(alone):
        assert rows == ([by_n[n]] if n in by_n else []), items[n]
    # the cases differ where they should
    assert [r[0][14] for r in alone[:5]] == [False, True, True, False, True]
    assert alone[5][0][9] is None and alone[7] == []

def test_deactivate_frees_a_seat_and_is_idempotent(lic):
    for i in range(3):
        assert validate(lic["key"], "s%d" % i).json()["code"] == "VALID"
    assert validate(lic["key"], "s3").json()["code"] == "TOO_MANY_INSTALLATIONS"
    for _ in range(2):
        r = api("/api/deactivate", {"license_key": lic["key"], "installation_id": "s0"})
        assert r.status_code == 200 and r.json() == {"deactivated": True}
    assert sql1("SELECT status FROM installations WHERE license_id = %s"
                " AND installation_id = 's0'", lic["id"]) == "inactive"
    # never-seen installation: still idempotent
    r = api("/api/deactivate", {"license_key": lic["key"], "installation_id": "never"})
    assert r.status_code == 200 and r.json() == {"deactivated": True}
    assert validate(lic["key"], "s3").json()["code"] == "VALID"
    assert heartbeat(lic["key"], "s0").json()["code"] == "INSTALLATION_NOT_ACTIVE"
    # a deactivated installation may come back when a seat is free
    api("/api/deactivate", {"license_key": lic["key"], "installation_id": "s1"})
    assert validate(lic["key"], "s0").json()["code"] == "VALID"


def test_deactivate_bad_input(lic):
    r = api("/api/deactivate", {"license_key": "garbage", "installation_id": "x"})
    assert r.status_code == 403 and error_code(r) == "INVALID_KEY"
    r = api("/api/deactivate", {"license_key": lic["key"]})
    assert r.status_code == 400 and error_code(r) == "MISSING_FIELD"
    assert "installation_id" in r.json()["error"]["message"]


def test_existing_installation_refresh():
    """last_seen, version and metadata are refreshed by the writer behind
    licd_lookup's read; a domain is recorded at once but only once it is
    allowed; nothing is refreshed for a license that is not valid."""
    lic = issue(domains="company.com,*.corp.example.org",
                limits="installations=10")
    row = ("SELECT extract(epoch FROM now() - last_seen)::int, version,"
           " domain, metadata->>'k' FROM installations"
           " WHERE license_id = %s AND installation_id = 'r1'")
    assert validate(lic["key"], "r1", version="1.0",
                    domain="company.com").json()["code"] == "VALID"
    sql("UPDATE installations SET last_seen = now() - interval '2 hours'"
        " WHERE license_id = %s", lic["id"])
    b = validate(lic["key"], "r1", version="1.0", domain="company.com").json()
    assert b["code"] == "VALID"
    assert eventually(lambda: sql(row, lic["id"])[0][0] < 60)
    age, version, domain, _ = sql(row, lic["id"])[0]
    assert age < 60 and (version, domain) == ("1.0", "company.com")
    seen = time.mktime(time.strptime(b["installation"]["last_seen"],
                                     "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(seen - time.time()) < 60      # the answer shows the refresh
    # changes are written at once, not after touch_interval
    assert validate(lic["key"], "r1", version="1.1", domain="a.corp.example.org",
                    metadata={"k": "v"}).json()["code"] == "VALID"
    assert sql(row, lic["id"])[0][1:] == ("1.1", "a.corp.example.org", "v")
    # a domain the license does not allow is refused and never recorded
    # (the call itself is a contact of an active installation: its version
    # is)
    assert validate(lic["key"], "r1", version="1.2",
                    domain="evil.example").json()["code"] == "DOMAIN_NOT_ALLOWED"
    assert eventually(lambda: sql(row, lic["id"])[0][1] == "1.2")
    assert sql(row, lic["id"])[0][1:3] == ("1.2", "a.corp.example.org")
    # a suspended license: refused, and its installation is not refreshed
    sql("UPDATE installations SET last_seen = now() - interval '2 hours'"
        " WHERE license_id = %s", lic["id"])
    sql("UPDATE licenses SET status = 'suspended' WHERE id = %s", lic["id"])
    assert validate(lic["key"], "r1", version="1.3",
                    domain="company.com").json()["code"] == "SUSPENDED"
    assert heartbeat(lic["key"], "r1").json()["code"] == "SUSPENDED"
    touches_written()
    age, version, _, _ = sql(row, lic["id"])[0]
    assert age > 3600 and version == "1.2"


# --- heartbeat ------------------------------------------------------------

def test_heartbeat_updates_last_seen_and_version(lic):
    assert validate(lic["key"], "hb", version="1.0").json()["code"] == "VALID"
    sql("UPDATE installations SET last_seen = now() - interval '2 hours'"
        " WHERE license_id = %s", lic["id"])
    r = heartbeat(lic["key"], "hb", version="1.1", nonce="hb-nonce")
    assert r.status_code == 200
    b = r.json()
    assert (b["valid"], b["code"]) == (True, "VALID")
    assert isinstance(b["next_heartbeat_in"], int) and b["next_heartbeat_in"] > 0
    c = verify_with_jwks(b["lease"], "lease+jwt")
    assert c["iid"] == "hb" and c["nonce"] == "hb-nonce"
    q = ("SELECT extract(epoch FROM now() - last_seen), version"
         " FROM installations WHERE license_id = %s AND installation_id = 'hb'")
    assert eventually(lambda: sql(q, lic["id"])[0][1] == "1.1")
    age, version = sql(q, lic["id"])[0]
    assert age < 60 and version == "1.1"


def test_refreshes_queued_together_are_all_written():
    """Refreshes queued within one touch_flush_ms go out as one
    licd_touch_batch array, encoded item by item: every item of it must
    arrive, with its own version, escapes and all."""
    lic = issue(limits="installations=10")
    iids = ["tb-%d" % i for i in range(6)]
    for iid in iids:
        assert validate(lic["key"], iid, version="1.0").json()["code"] == "VALID"
    touches_written()
    sql("UPDATE installations SET last_seen = now() - interval '2 hours'"
        " WHERE license_id = %s", lic["id"])
    want = {iid: '2.0 "%s" \\ é' % iid for iid in iids}
    for iid in iids:
        assert heartbeat(lic["key"], iid, version=want[iid]).json()["code"] == "VALID"
    q = ("SELECT installation_id, version,"
         " extract(epoch FROM now() - last_seen) < 60"
         " FROM installations WHERE license_id = %s")

    def refreshed():
        rows = sql(q, lic["id"])
        return {r[0]: r[1] for r in rows} if all(r[2] for r in rows) else None
    assert eventually(refreshed) == want


def test_a_refresh_within_the_hour_is_a_heap_only_update():
    """The writer's refresh changes no indexed column while last_seen stays
    in its hour-long span (seen_hour, 033), so PostgreSQL makes it a HOT
    update: no index entry, and no index page written after a checkpoint.
    Crossing into the next span moves the row in the installation list's
    index, which is the one refresh an hour that is not HOT."""
    lic = issue(limits="installations=2")
    assert validate(lic["key"], "hot-1", version="1.0").json()["code"] == "VALID"
    touches_written()
    sql("UPDATE installations SET last_seen = now() - interval '2 hours'"
        " WHERE license_id = %s", lic["id"])
    hour = sql1("SELECT extract(epoch FROM seen_hour)::bigint FROM installations"
                " WHERE license_id = %s", lic["id"])
    sql("UPDATE installations SET last_seen = to_timestamp(%s) WHERE"
        " license_id = %s", hour, lic["id"])

    def refresh(t):
        """licd_touch_batch's refresh to t, alone in a transaction: (rows
        updated, of which heap-only)."""
        conn = db()
        conn.autocommit = False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT licd_touch_batch(%s)", (json.dumps(
                    [{"l": lic["id"], "i": "hot-1", "t": t, "v": "1.0"}]),))
                cur.execute("SELECT pg_stat_get_xact_tuples_updated(c.oid),"
                            " pg_stat_get_xact_tuples_hot_updated(c.oid)"
                            " FROM pg_class c WHERE c.oid = 'installations'::regclass")
                got = cur.fetchone()
            conn.commit()
            return got
        finally:
            conn.close()
    assert refresh(hour + 1800) == (1, 1)
    assert refresh(hour + 3599) == (1, 1)
    assert refresh(hour + 3600) == (1, 0)
    assert sql("SELECT extract(epoch FROM last_seen)::bigint,"
               " extract(epoch FROM seen_hour)::bigint FROM installations"
               " WHERE license_id = %s", lic["id"]) == [(hour + 3600, hour + 3600)]


def test_heartbeat_unknown_installation(lic):
    b = heartbeat(lic["key"], "never-validated").json()
    assert (b["valid"], b["code"]) == (False, "INSTALLATION_NOT_ACTIVE")
    assert "lease" not in b
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                lic["id"]) == 0


def test_heartbeat_invalid_key():
    b = heartbeat("garbage", "x").json()
    assert (b["valid"], b["code"]) == (False, "INVALID_KEY")


# --- bad input ------------------------------------------------------------

ENDPOINTS = ("/api/validate", "/api/heartbeat", "/api/deactivate")


def test_malformed_json(lic):
    before = counts()
    for ep in ENDPOINTS:
        for body in ('{"license_key": ', "not json", "[]", '"str"', "",
                     '{"license_key": "a"} trailing', "null"):
            r = api(ep, data=body)
            assert r.status_code == 400, (ep, body, r.text)
            assert error_code(r) == "MALFORMED_JSON", (ep, body)
    assert counts() == before


def test_wrong_content_type(lic):
    body = json.dumps({"license_key": lic["key"], "installation_id": "x"})
    for ep in ENDPOINTS:
        for ct in ("text/plain", "application/x-www-form-urlencoded", None,
                   "application/jsonx"):
            r = api(ep, data=body, ctype=ct)
            assert r.status_code == 415, (ep, ct, r.text)
            assert error_code(r) == "UNSUPPORTED_MEDIA_TYPE"
    r = api("/api/validate", data=body, ctype="application/json; charset=utf-8")
    assert r.json()["code"] == "VALID"


def test_oversized_body(lic):
    before = counts()
    big = json.dumps({"license_key": lic["key"], "installation_id": "x",
                      "version": "v" * (17 * 1024)})
    for ep in ENDPOINTS:
        r = api(ep, data=big)
        assert r.status_code == 413, (ep, r.status_code)
        assert error_code(r) == "PAYLOAD_TOO_LARGE"
    assert counts() == before


def test_method_not_allowed_and_not_found():
    for ep in ENDPOINTS:
        r = api(ep, method="GET")
        assert r.status_code == 405 and error_code(r) == "METHOD_NOT_ALLOWED"
    r = api("/api/nope", {})
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"


def test_missing_fields(lic):
    before = counts()
    for ep in ENDPOINTS:
        for body, field in (({"installation_id": "x"}, "license_key"),
                            ({"license_key": lic["key"]}, "installation_id"),
                            ({}, "license_key")):
            r = api(ep, body)
            assert r.status_code == 400 and error_code(r) == "MISSING_FIELD", (ep, body)
            assert field in r.json()["error"]["message"]
    assert counts() == before


def test_wrong_types(lic):
    before = counts()
    base = {"license_key": lic["key"], "installation_id": "typed"}
    bad = [("license_key", 123), ("license_key", None), ("installation_id", 5),
           ("installation_id", ["x"]), ("domain", 7), ("version", {}),
           ("feature", True), ("metadata", "str"), ("metadata", [1]),
           ("nonce", 1.5)]
    for field, value in bad:
        body = dict(base, **{field: value})
        r = api("/api/validate", body)
        assert r.status_code == 400, (field, value, r.text)
        want = "MISSING_FIELD" if value is None else "INVALID_FIELD"   # null is absent
        assert error_code(r) == want, (field, value)
        assert field in r.json()["error"]["message"]
    assert counts() == before


def test_field_lengths_and_charsets(lic):
    before = counts()
    base = {"license_key": lic["key"], "installation_id": "len"}
    bad = [("installation_id", "a" * 129), ("installation_id", ""),
           ("installation_id", "has space"), ("installation_id", "a/b"),
           ("domain", "a" * 255), ("domain", "bad domain"),
           ("version", "v" * 65), ("nonce", "n" * 129), ("nonce", ""),
           ("feature", "f" * 65),
           ("metadata", {"blob": "x" * 2100})]
    for field, value in bad:
        r = api("/api/validate", dict(base, **{field: value}))
        assert r.status_code == 400, (field, r.text)
        assert error_code(r) == "INVALID_FIELD", field
    assert counts() == before
    ok = validate(lic["key"], "a" * 128, nonce="n" * 128).json()
    assert ok["code"] == "VALID"


SQL_METAS = ["x'; DROP TABLE licenses; --", "1 OR 1=1", "\"; SELECT pg_sleep(5);--",
             "\\x00", "%' OR '%'='", "$$; TRUNCATE installations; $$"]


def test_sql_metacharacters_in_every_string_field(lic):
    before = counts()
    base = {"license_key": lic["key"], "installation_id": "meta"}
    for meta in SQL_METAS:
        for field in ("license_key", "installation_id", "domain", "feature"):
            r = api("/api/validate", dict(base, **{field: meta}))
            if field == "license_key":
                assert r.status_code == 200 and r.json()["code"] == "INVALID_KEY"
            else:
                assert r.status_code == 400 and error_code(r) == "INVALID_FIELD", (field, meta)
        # free-text fields accept them as data, stored verbatim, never executed
        r = api("/api/validate", dict(base, version=meta[:64], nonce=meta,
                                      metadata={"hostname": meta}))
        assert r.json()["code"] == "VALID"
        assert jwt_parts(r.json()["lease"])[1]["nonce"] == meta
        assert eventually(lambda: sql1(
            "SELECT metadata->>'hostname' FROM installations WHERE"
            " license_id = %s AND installation_id = 'meta'", lic["id"]) == meta)
    assert sql1("SELECT count(*) FROM licenses") == before[2]


def test_nul_escapes_rejected(lic):
    for field in ("installation_id", "version", "domain", "nonce"):
        r = api("/api/validate", data='{"license_key": "%s", "installation_id": "n",'
                ' "%s": "a\\u0000b"}' % (lic["key"], field) if field != "installation_id"
                else '{"license_key": "%s", "installation_id": "a\\u0000b"}' % lic["key"])
        assert r.status_code == 400, (field, r.text)
        assert error_code(r) == "INVALID_FIELD", (field, r.text)


def test_invalid_utf8_in_every_string_field(lic):
    before = counts()
    fields = {"license_key": lic["key"], "installation_id": "utf",
              "domain": "a.example", "version": "1", "feature": "sso",
              "nonce": "n", "metadata": {"hostname": "h"}}
    for name in fields:
        body = json.dumps(fields).encode()
        if name == "metadata":
            body = body.replace(b'"hostname": "h"', b'"hostname": "\xff\xfe"')
        else:
            raw = json.dumps(fields[name]).encode()
            body = body.replace(b'"%s": %s' % (name.encode(), raw),
                                b'"%s": "a\xc3\x28b"' % name.encode(), 1)
        assert b"\xc3\x28" in body or b"\xff" in body
        r = api("/api/validate", data=body)
        assert r.status_code == 400, (name, r.text)
        assert error_code(r) == "MALFORMED_JSON", name
    assert counts() == before


# --- request ids and logs -------------------------------------------------

def test_request_id_echoed_and_logged_key_never_logged(lic):
    rid = "test." + unique("rid")
    r = api("/api/validate", {"license_key": lic["key"], "installation_id": "rid"},
            headers={"X-Request-Id": rid})
    assert r.headers["X-Request-Id"] == rid
    lines = logged(rid)
    assert len(lines) == 1, lines
    assert "POST /api/validate" in lines[0] and "code=VALID" in lines[0]
    text = log_text()
    assert lic["key"] not in text
    assert lic["key"].split(".")[2] not in text


def test_connections_without_a_request_do_not_stall_workers(lic):
    """The programs accept on their unix socket themselves (fcgi/lib/http.c)
    and leave a connection that brings no request to libfcgi: more such
    connections than there are worker threads, hung up at once or after
    half a record, and every worker still answers."""
    rt_file = os.path.join(RUN_DIR, "runtime-dir")
    rt = open(rt_file).read().strip() if os.path.exists(rt_file) else RUN_DIR
    path = os.path.join(rt, "sock", "validate.sock")
    for i in range(80):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        if i % 2:
            s.sendall(b"\x01\x01\x00")     # a FastCGI header cut short
        s.close()
    codes = [validate(lic["key"], "half").json()["code"] for _ in range(30)]
    assert codes == ["VALID"] * 30


def test_buffered_log_lines_written_when_a_worker_stops(lic):
    """A program buffers its request lines (log_flush_ms); a worker told to
    stop writes what it holds before it exits, so a restart or deploy loses
    no line. Both validate workers stop right after the call (well inside
    the flush interval); their master starts new ones."""
    rid = "stop." + unique("rid")
    master = open(os.path.join(RUN_DIR, "pid", "validate.pid")).read().strip()
    kids = subprocess.run(["pgrep", "-P", master], capture_output=True,
                          text=True).stdout.split()
    assert kids
    r = api("/api/validate", {"license_key": lic["key"], "installation_id": "stop"},
            headers={"X-Request-Id": rid})
    assert r.json()["code"] == "VALID"
    for k in kids:
        os.kill(int(k), signal.SIGTERM)

    def ended(k):
        try:
            return open("/proc/%s/stat" % k).read().split(") ")[1][0] == "Z"
        except FileNotFoundError:
            return True
    eventually(lambda: all(ended(k) for k in kids), 15, "the validate workers to exit",
               interval=0.01)
    lines = [l for l in log_text().splitlines() if "rid=%s " % rid in l]
    assert len(lines) == 1, lines
    assert wait_healthy()
    assert eventually(lambda: validate(lic["key"], "stop").json()["code"] == "VALID")


def test_request_id_generated_when_absent_or_invalid():
    seen = set()
    for hdr in ({}, {"X-Request-Id": "bad id with spaces"},
                {"X-Request-Id": "x" * 65}, {"X-Request-Id": "a;b"}):
        r = api("/api/validate", {"license_key": "garbage", "installation_id": "x"},
                headers=hdr)
        rid = r.headers["X-Request-Id"]
        assert 1 <= len(rid) <= 64 and rid != hdr.get("X-Request-Id")
        assert all(c.isalnum() or c in "._-" for c in rid)
        seen.add(rid)
    assert len(seen) == 4
    # errors produced by nginx itself carry one too
    r = api("/api/nope", {}, headers={"X-Request-Id": "nginx-err-1"})
    assert r.headers["X-Request-Id"] == "nginx-err-1"


def test_healthz():
    r = api("/healthz", method="GET")
    assert r.status_code == 200
    doc = r.json()
    assert doc["status"] == "ok" and doc["database"] == "ok", doc
    assert doc["programs"]["validate"]["status"] == "ok"
    assert doc["programs"]["validate"]["database"] == "ok"


def test_fresh_lease_reused_unless_something_changed(lic):
    a = validate(lic["key"], "reuse").json()
    b = validate(lic["key"], "reuse").json()
    # one program has several worker processes, each with its own cache
    leases = {a["lease"], b["lease"]}
    for _ in range(6):
        leases.add(validate(lic["key"], "reuse").json()["lease"])
    assert len(leases) <= 2
    # a nonce always gets a freshly signed lease carrying it
    c = validate(lic["key"], "reuse", nonce="fresh-1").json()
    assert c["lease"] not in leases and jwt_parts(c["lease"])[1]["nonce"] == "fresh-1"
    # a changed entitlement is never served from the cache
    sql("UPDATE licenses SET features = '[\"sso\"]' WHERE id = %s", lic["id"])
    d = validate(lic["key"], "reuse").json()
    assert d["lease"] not in leases
    assert verify_with_jwks(d["lease"], "lease+jwt")["feat"] == ["sso"]
