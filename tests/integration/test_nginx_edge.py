"""nginx's own answers on the test stack (nginx/licd-local.conf.in), probed
as an attacker would: malformed requests on raw sockets get the contract's
JSON error shape with X-Request-Id, never nginx's HTML; a client too slow
gets the connection closed without a byte; HEAD /healthz answers as GET;
nginx's own 405 carries Allow; and no license key reaches the access log."""
import json
import os
import re
import pytest

from util import RUN_DIR, URL, api, error_code, eventually, raw_http

HOST, PORT = re.match(r"http://([^:/]+):(\d+)", URL).groups()
PORT = int(PORT)


def raw(data, timeout=15):
    """Sends bytes to the stack's nginx, reads until it closes; (head, body)."""
    return raw_http(HOST, PORT, data, timeout)


MALFORMED = [
    ("garbage request line", b"GARBAGE\r\n\r\n", 400, "BAD_REQUEST"),
    ("bad method token", b"G@T /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400, "BAD_REQUEST"),
    ("two Host headers", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "BAD_REQUEST"),
    ("NUL in the URI", b"GET /heal\x00thz HTTP/1.1\r\nHost: a\r\n\r\n", 400, "BAD_REQUEST"),
    ("bad Content-Length", b"POST /api/validate HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
     400, "BAD_REQUEST"),
    ("URI too long", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, "URI_TOO_LONG"),
    ("header too large", b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n",
     431, "HEADERS_TOO_LARGE"),
    ("unknown Transfer-Encoding", b"POST /api/validate HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: gzip\r\n\r\n", 501, "NOT_IMPLEMENTED"),
    ("HTTP/2.0 request line", b"GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n", 505,
     "HTTP_VERSION_NOT_SUPPORTED"),
    ("body over 16 KiB", b"POST /api/validate HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
     b"Content-Length: 20000\r\nConnection: close\r\n\r\n" + b"{" * 20000, 413, "PAYLOAD_TOO_LARGE"),
    ("unknown path", b"GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 404, "NOT_FOUND"),
]


@pytest.mark.parametrize("name,data,status,code", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_nginx_errors_are_contract_json(name, data, status, code):
    head, body = raw(data)
    assert head.startswith("HTTP/1.1 %d" % status), head
    assert re.search(r"(?mi)^Content-Type: application/json", head), head
    assert re.search(r"(?mi)^X-Request-Id: [A-Za-z0-9._-]{1,64}\r?$", head), head
    assert b"<html" not in body.lower()
    err = json.loads(body)
    assert list(err) == ["error"] and sorted(err["error"]) == ["code", "message"], err
    assert err["error"]["code"] == code and err["error"]["message"], err


@pytest.mark.parametrize("data", [
    b"POST /api/validate HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{",
    b"POST /api/validate HTTP/1.1\r\nHost: a\r\n",
], ids=["body", "headers"])
def test_slow_client_is_cut_off_without_html(data):
    """client_body_timeout / client_header_timeout (5 s): nginx closes the
    connection (logging 408) and sends nothing, so there is no HTML 408."""
    head, body = raw(data, timeout=30)      # a socket timeout if nginx waited on
    assert head == "" and body == b"", (head, body)


def test_head_healthz_answers_like_get():
    g = api("/healthz", method="GET")
    h = api("/healthz", method="HEAD")
    assert g.status_code == 200 and g.json()["status"] == "ok"
    assert h.status_code == 200, h.headers
    assert h.content == b""
    for k in ("Content-Type", "Cache-Control"):
        assert h.headers.get(k) == g.headers.get(k), k
    assert h.headers["X-Request-Id"]


def test_nginx_own_405_carries_allow():
    r = api("/.well-known/jwks.json", method="POST", data="{}")
    assert r.status_code == 405 and error_code(r) == "METHOD_NOT_ALLOWED"
    assert r.headers["Allow"] == "GET, HEAD"
    assert r.headers["X-Request-Id"]
    for m in ("GET", "HEAD"):
        assert api("/.well-known/jwks.json", method=m).status_code == 200, m


def test_license_key_never_in_nginx_access_log():
    secret = "eyJhbGciOiJFUzI1NiJ9.secret" + os.urandom(8).hex()
    rid = "nolog-" + os.urandom(6).hex()
    api("/api/usage", method="GET", params={"license_key": secret, "period": "2026-01"},
        headers={"X-Request-Id": rid})
    log = os.path.join(RUN_DIR, "log", "nginx-access.log")
    # nginx writes its access log every second (buffer=64k flush=1s)
    lines = eventually(lambda: [l for l in open(log).read().splitlines()
                                if "rid=%s" % rid in l], 5)
    assert lines and '"GET /api/usage?<query> HTTP/1.1"' in lines[0], lines
    # nor from request lines nginx refuses or reads as HTTP/0.9
    before = len(open(log).read().splitlines())
    odd = (b"/api/usage?license_key=%s HTTP/1.1", b"GET /api/usage?license_key=%s",
           b"GET  /api/usage?license_key=%s HTTP/1.1")
    for line in odd:
        raw(line % secret.encode() + b"\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert eventually(lambda: len(open(log).read().splitlines()) >= before + len(odd), 5)
    assert secret not in open(log).read()


def test_console_without_its_slash_is_redirected_with_json():
    r = api("/console", method="GET", params=None)
    assert r.history and r.history[0].status_code == 301
    first = r.history[0]
    assert first.headers["Location"] == "/console/"
    assert first.headers["Content-Type"].startswith("application/json")
    assert first.json()["error"]["code"] == "MOVED_PERMANENTLY"
    assert first.headers.get("X-Request-Id")
