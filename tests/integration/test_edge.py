"""The edge: FastCGI parameters sent straight to a program's socket as
hostile input, log lines that cannot be forged."""
import os
import socket
import struct

import jwt
import pytest

from util import (CFG, admin_token, api, b64url, b64url_decode, connect,
                  error_code, fcgi_nv, fcgi_record, fcgi_request, read_all,
                  sock_path,
                  heartbeat, issue, jwt_parts, log_text, logged, sql,
                  unique, validate)


def base(**kw):
    p = {b"REQUEST_METHOD": b"POST", b"DOCUMENT_URI": b"/api/validate",
         b"CONTENT_TYPE": b"application/json", b"CONTENT_LENGTH": b"2",
         b"QUERY_STRING": b""}
    for k, v in kw.items():
        p[k.encode()] = v
    return p


HOSTILE = [
    # (params, body, expected status or None for "closed")
    (base(REQUEST_METHOD=b""), b"{}", 400),
    (base(REQUEST_METHOD=None), b"{}", 400),
    (base(REQUEST_METHOD=b"POS"), b"{}", 405),
    (base(REQUEST_METHOD=b"OST"), b"{}", 405),
    (base(REQUEST_METHOD=b"POST,GET"), b"{}", 400),
    (base(REQUEST_METHOD=b"post"), b"{}", 400),
    (base(REQUEST_METHOD=b"POST\n"), b"{}", 400),
    (base(REQUEST_METHOD=b"P" * 100000), b"{}", 400),
    (base(DOCUMENT_URI=None), b"{}", 400),
    (base(DOCUMENT_URI=b""), b"{}", 400),
    (base(DOCUMENT_URI=b"api/validate"), b"{}", 400),
    (base(DOCUMENT_URI=b"/api/validate\n"), b"{}", 400),
    (base(DOCUMENT_URI=b"/api/valid\xffate"), b"{}", 400),
    (base(DOCUMENT_URI=b"/api/validate\x00/x"), b"{}", 400),
    (base(DOCUMENT_URI=b"/" + b"a" * 200000), b"{}", 400),
    (base(CONTENT_LENGTH=b"-1"), b"{}", 400),
    (base(CONTENT_LENGTH=b"2 "), b"{}", 400),
    (base(CONTENT_LENGTH=b"99999999999999999999999"), b"{}", 400),
    (base(CONTENT_LENGTH=b"1000000"), b"{}", 413),
    (base(CONTENT_LENGTH=b"0"), b"{}", 400),
    (base(CONTENT_LENGTH=None), b"{}", 400),
    (base(CONTENT_TYPE=None), b"{}", 415),
    (base(CONTENT_TYPE=b""), b"{}", 415),
    (base(CONTENT_TYPE=b"application/json\r\nX: y"), b"{}", 415),
    (base(CONTENT_TYPE=b"\xff" * 70000), b"{}", 415),
    (base(LICD_REQUEST_ID=b"a\nb"), b"{}", 400),
    (base(LICD_REQUEST_ID=b"\xff" * 70000), b"{}", 400),
    (base(HTTP_X_REQUEST_ID=b"x" * 100000), b"{}", 400),
    (base(HTTP_AUTHORIZATION=b"Bearer \x00\xff\n"), b"{}", 400),
    (base(**{"HTTP_X_" + "A" * 1000: b"\x01" * 1000}), b"{}", 400),
    (base(CONTENT_LENGTH=b"20000"), b"{" + b" " * 19998 + b"}", 413),
]


@pytest.mark.parametrize("case", range(len(HOSTILE)))
def test_hostile_fastcgi_parameters_get_an_answer(case, lic):
    """Every parameter from the socket is untrusted: an empty or odd method,
    a missing, relative, non-UTF-8 or huge path, a malformed length or type,
    a request id with a newline. Each gets the contract's JSON error (the
    400s are missing fields of an empty object) and the worker stays free."""
    params, body, want = HOSTILE[case]
    got = fcgi_request(sock_path("validate"), params, body)
    assert got is not None
    status, headers, rest = got
    assert status == want, rest
    assert headers["Content-Type"] == "application/json"
    assert b'"error"' in rest or status == 200
    rid = headers["X-Request-Id"]
    assert 1 <= len(rid) <= 64 and all(c.isalnum() or c in "._-" for c in rid)


def test_empty_method_does_not_take_a_worker(lic):
    """An empty REQUEST_METHOD once spun a worker thread forever; more of
    them than the program has threads, then every worker still answers."""
    for _ in range(40):
        status, _, body = fcgi_request(sock_path("validate"), base(REQUEST_METHOD=b""),
                                       b"{}")
        assert status == 400 and b"BAD_REQUEST" in body
    for prog in ("heartbeat", "usage", "revoke", "checkout", "webhook"):
        got = fcgi_request(sock_path(prog), base(REQUEST_METHOD=b"", DOCUMENT_URI=b"/healthz"))
        assert got is not None and got[0] == 400
    codes = [validate(lic["key"], "edge").json()["code"] for _ in range(20)]
    assert codes == ["VALID"] * 20


def test_broken_records_close_the_connection(lic):
    """Records that are not FastCGI, a parameter length past the record (the
    program waits for the rest, 5 s at most), an unknown role: the program
    closes the connection and keeps serving."""
    bad = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        fcgi_record(1, struct.pack(">HB5x", 9, 0)),               # unknown role
        fcgi_record(1, struct.pack(">HB5x", 1, 0)) + fcgi_record(4, b"\x7f\x7f" + b"a" * 10),
        fcgi_record(1, struct.pack(">HB5x", 1, 0)) +
        fcgi_record(4, struct.pack(">II", 0xffffffff, 0xffffffff)),
        fcgi_record(1, struct.pack(">HB5x", 1, 0)) + fcgi_record(5, b"{}") + fcgi_record(4, b""),
    ]
    for raw in bad:
        try:
            got = fcgi_request(sock_path("validate"), None, raw=raw, timeout=20)
        except socket.timeout:
            got = "timeout"
        assert got != "timeout"
        if got is not None:
            assert got[1]["Content-Type"] == "application/json"
    codes = [validate(lic["key"], "edge2").json()["code"] for _ in range(20)]
    assert codes == ["VALID"] * 20


def test_log_lines_cannot_be_forged():
    """A newline in the URL (nginx decodes %0a into DOCUMENT_URI) used to
    write a line of the attacker's choosing into the log, unauthenticated.
    The path is logged as one escaped word on the request's own line."""
    rid = "forge." + unique("rid")
    fake = ("2026-11-29T10:00:00.000Z revoke[1] info rid=x POST /api/revoke "
            "status=200 code=- license=00000000-0000-0000-0000-000000000000")
    r = api("/api/checkout/session/%0a" + fake.replace(" ", "%20"),
            method="GET", headers={"X-Request-Id": rid})
    assert r.status_code == 400 and error_code(r) == "BAD_REQUEST"
    lines = logged(rid)
    assert len(lines) == 1, lines
    assert "/api/checkout/session/%0A2026-11-29T10:00:00.000Z%20revoke" in lines[0]
    assert "status=400" in lines[0]
    for line in log_text().splitlines():
        assert not line.startswith("2026-11-29T10:00:00.000Z revoke[1]")
    # the same through the program's socket, with every control character
    rid = "forge2." + unique("rid")
    got = fcgi_request(sock_path("checkout"), {
        b"REQUEST_METHOD": b"GET", b"LICD_REQUEST_ID": rid.encode(),
        b"DOCUMENT_URI": b"/api/checkout/session/\r\n\x1b[2J\t\x7f \\x0a"})
    assert got[0] == 400
    lines = logged(rid)
    assert len(lines) == 1, lines
    assert "session/%0D%0A%1B[2J%09%7F%20%5Cx0a status=400" in lines[0]


# --- one accepted form per key --------------------------------------------

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def sig_rs(key):
    sig = b64url_decode(key.split(".")[2])
    return sig[:32], int.from_bytes(sig[32:], "big")


def high_s_twin(key):
    """(r, n - s): the same signature to ECDSA, another text."""
    h, p, _ = key.split(".")
    r, s = sig_rs(key)
    return "%s.%s.%s" % (h, p, b64url(r + (P256_N - s).to_bytes(32, "big")))


def other_last_char(part):
    """The same bytes with other unused bits in the last character (the
    lowest bit is unused whenever the length is not a multiple of 4)."""
    assert len(part) % 4 in (2, 3)
    return part[:-1] + B64[B64.index(part[-1]) ^ 1]


def refused(key, iid):
    b = validate(key, iid).json()
    return (b["valid"], b["code"]) == (False, "INVALID_KEY") and "lease" not in b


def test_one_accepted_text_per_key(lic):
    """ECDSA accepts (r, s) and (r, n - s); base64url ignores the unused
    bits of a last character. licd signs low-S only and accepts only the
    canonical text: the other forms of a valid key get INVALID_KEY on
    every path (validate, heartbeat, usage, deactivate)."""
    key = lic["key"]
    assert jwt_parts(key)[0]["alg"] == "ES256"
    for _ in range(8):
        assert sig_rs(issue()["key"])[1] <= P256_N // 2
    assert sig_rs(key)[1] <= P256_N // 2
    h, p, s = key.split(".")
    forms = [high_s_twin(key), "%s.%s.%s" % (h, p, other_last_char(s))]
    if len(p) % 4:
        forms.append("%s.%s.%s" % (h, other_last_char(p), s))
    if len(h) % 4:
        forms.append("%s.%s.%s" % (other_last_char(h), p, s))
    assert validate(key, "one-form").json()["code"] == "VALID"
    for f in forms:
        assert b64url_decode(f.split(".")[2]) is not None and f != key
        assert refused(f, "one-form-x")
        assert heartbeat(f, "one-form").json()["code"] == "INVALID_KEY"
        r = api("/api/usage", {"license_key": f, "feature": "sso", "quantity": 1})
        assert r.status_code == 403 and error_code(r) == "INVALID_KEY"
        r = api("/api/deactivate", {"license_key": f, "installation_id": "one-form"})
        assert r.status_code == 403 and error_code(r) == "INVALID_KEY"
    # also once the stored copy is gone (the key is verified, not compared)
    sql("UPDATE licenses SET license_key = NULL WHERE id = %s", lic["id"])
    for f in forms:
        assert refused(f, "one-form-y")


def test_key_signed_high_s_before_keeps_its_one_text():
    """A key signed before signatures were made low-S may hold the high s.
    It keeps validating as stored, byte for byte; its low-S twin, which
    verifies, is refused as a second text of it."""
    lic = issue()
    legacy = high_s_twin(lic["key"])       # what the old signer could emit
    sql("UPDATE licenses SET license_key = %s WHERE id = %s", legacy, lic["id"])
    b = validate(legacy, "legacy").json()
    assert b["code"] == "VALID" and b["license"]["id"] == lic["id"]
    assert heartbeat(legacy, "legacy").json()["code"] == "VALID"
    assert refused(lic["key"], "legacy-twin")
    assert heartbeat(lic["key"], "legacy").json()["code"] == "INVALID_KEY"


def mint(claims, kid=None):
    """A key signed with the stack's own current private key."""
    from cryptography.hazmat.primitives import serialization
    kdir = CFG["keys_dir"]
    kid = kid or open(os.path.join(kdir, "current")).read().strip()
    with open(os.path.join(kdir, kid + ".key"), "rb") as f:
        priv = serialization.load_pem_private_key(f.read(), None)
    return jwt.encode(claims, priv, algorithm="ES256",
                      headers={"kid": kid, "typ": "JWT"})


def test_issuer_checked_for_every_key(lic):
    """A key minted with the right private key but another issuer is
    refused, also when it is the license's stored copy byte for byte."""
    _, claims, _ = jwt_parts(lic["key"])
    assert claims["iss"] == CFG["issuer"]
    claims["iss"] = "someone-else"
    other = mint(claims)
    assert sig_rs(other) and jwt.get_unverified_header(other)["kid"]
    sql("UPDATE licenses SET license_key = %s WHERE id = %s", other, lic["id"])
    assert refused(other, "iss-1")
    assert heartbeat(other, "iss-1").json()["code"] == "INVALID_KEY"
    r = api("/api/usage", {"license_key": other, "feature": "sso", "quantity": 1})
    assert r.status_code == 403 and error_code(r) == "INVALID_KEY"
    sql("UPDATE licenses SET license_key = NULL WHERE id = %s", lic["id"])
    assert refused(other, "iss-2")
    # the same minting with the right issuer is accepted (the test's
    # minting is sound)
    claims["iss"] = CFG["issuer"]
    good = mint(claims)
    sql("UPDATE licenses SET license_key = %s WHERE id = %s", good, lic["id"])
    assert validate(good, "iss-3").json()["code"] == "VALID"


# --- input the database would refuse --------------------------------------

def test_domain_normalised_before_its_length_is_checked(lic):
    """254 characters with a trailing dot is a 253-character name (the
    database's limit): valid, recorded lower case without the dot. One
    more character is a field error, never a 500."""
    l63 = "a" * 63
    d254 = "%s.%s.%s.%s." % (l63, l63, l63, "B" * 61)
    assert len(d254) == 254
    r = validate(lic["key"], "dom-254", domain=d254)
    assert r.status_code == 200 and r.json()["code"] == "VALID", r.text
    assert sql("SELECT domain FROM installations WHERE license_id = %s AND"
               " installation_id = 'dom-254'", lic["id"]) == [(d254[:-1].lower(),)]
    for bad in ("%s.%s.%s.%s" % (l63, l63, l63, "b" * 62),      # 254, no dot
                "%s.%s.%s.%s.." % (l63, l63, l63, "b" * 60),
                "a" * 64 + ".com", "a..b", ".", "x" * 300):
        r = validate(lic["key"], "dom-bad", domain=bad)
        assert r.status_code == 400 and error_code(r) == "INVALID_FIELD", (bad, r.text)
    # restrictions still match the normalised name
    other = issue(domains="company.com,*.corp.example.org")
    b = validate(other["key"], "dom-r", domain="App.Corp.Example.ORG.").json()
    assert b["code"] == "VALID"


def stripe_signed(body):
    import hashlib
    import hmac
    import time
    secret = CFG["stripe_webhook_secrets"].split(",")[0]
    t = int(time.time())
    mac = hmac.new(secret.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()
    return api("/api/stripe/webhook", data=body,
               headers={"Stripe-Signature": "t=%d,v1=%s" % (t, mac)})


def test_webhook_event_with_nul_is_recorded_not_500():
    """PostgreSQL's jsonb cannot hold \\u0000; an event carrying one (a
    customer's name, say) is recorded with U+FFFD instead, answered 200
    once, and a redelivery is a duplicate, not a retry loop on 500."""
    eid = "evt_" + unique("nul").replace("-", "")
    body = ('{"id":"%s","object":"event","type":"customer.updated",'
            '"created":1790000000,"data":{"object":{"id":"cus_1",'
            '"name":"A\\u0000B","metadata":{"k\\u0000":"\\u0000"}}}}' % eid).encode()
    r = stripe_signed(body)
    assert r.status_code == 200, r.text
    assert sql("SELECT status, payload->'data'->'object'->>'name' FROM webhook_events"
               " WHERE event_id = %s", eid) == [("ignored", "A\ufffdB")]
    r = stripe_signed(body)
    assert r.status_code == 200, r.text
    assert sql("SELECT count(*) FROM webhook_events WHERE event_id = %s", eid) == [(1,)]


def test_answer_never_read_frees_its_worker():
    """A front that stops reading: an answer larger than the socket's send
    buffer (200 installations with 4 KiB of metadata each) to a request
    sent straight to the program, and never read. The program gives up
    after its send timeout (HTTP_SEND_TIMEOUT_S, fcgi/lib/http.c): the
    request's log line, written once its answer is sent or has failed,
    appears while nothing is read (without the timeout the worker would
    wait for the reader for ever), and what was sent ends without
    FastCGI's end-of-request record."""
    lic = issue()
    version = unique("big")[:60]
    sql("INSERT INTO installations (license_id, installation_id, version, "
        "metadata) SELECT %s, 'big-' || g, %s, jsonb_build_object('m', "
        "repeat('x', 4000)) FROM generate_series(1, 200) g", lic["id"], version)
    rid = unique("unread")
    params = {b"REQUEST_METHOD": b"GET",
              b"DOCUMENT_URI": b"/api/admin/installations",
              b"QUERY_STRING": b"limit=200&version=" + version.encode(),
              b"CONTENT_LENGTH": b"",
              b"HTTP_AUTHORIZATION": b"Bearer " + admin_token().encode(),
              b"HTTP_X_REQUEST_ID": rid.encode()}
    p = b"".join(fcgi_nv(k, v) for k, v in params.items())
    s = connect(sock_path("revoke"), timeout=30)
    try:
        s.sendall(fcgi_record(1, struct.pack(">HB5x", 1, 0)) +
                  fcgi_record(4, p) + fcgi_record(4, b"") + fcgi_record(5, b""))
        lines = logged(rid, timeout=30)
        assert len(lines) == 1 and "status=200" in lines[0], lines
        data = read_all(s)
    finally:
        s.close()
    types, pos = [], 0
    while pos + 8 <= len(data):
        _, rtype, _, clen, plen = struct.unpack(">BBHHB", data[pos:pos + 7])
        types.append(rtype)
        pos += 8 + clen + plen
    assert 6 in types and 3 not in types, types[-3:]
    assert len(data) < 200 * 4000
