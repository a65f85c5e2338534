"""The production nginx site, nginx/licd.conf, served on loopback: the file
itself with only its host-specific paths and ports replaced (a self-signed
certificate, the test stack's sockets and JWKS, loopback ports), in front of
the test stack's programs. What docs/OPERATIONS.md promises of it: JSON for
every answer nginx makes, HSTS and nosniff on all of them, the JSON
redirect and ACME on port 80, rate limits with Retry-After, the real-IP
template for a load balancer, no license key in the access log."""
import os
import re
import socket
import ssl
import subprocess
import tempfile
import threading

import pytest
import requests

from util import ROOT, RUN_DIR, eventually, free_port, raw_http

HOST = "licenses.example.com"


def prod_site(d, http_port, https_port, real_ip=False):
    """nginx/licd.conf with this machine's paths, as an operator would edit it."""
    rt = open(os.path.join(RUN_DIR, "runtime-dir")).read().strip()
    site = open(os.path.join(ROOT, "nginx/licd.conf")).read()
    subs = [
        ("/etc/letsencrypt/live/%s/fullchain.pem" % HOST, d + "/cert.pem"),
        ("/etc/letsencrypt/live/%s/privkey.pem" % HOST, d + "/key.pem"),
        ("/var/log/nginx/", d + "/"),
        ("/run/licd/", rt + "/sock/"),
        ("/var/lib/licd/www", rt + "/www"),
        ("/var/www/html", d + "/acme"),
        ("include fastcgi_params;", "include /etc/nginx/fastcgi_params;"),
        ("listen [::]:80;\n", ""),
        ("listen [::]:443 ssl http2;\n", ""),
        ("listen 80;", "listen 127.0.0.1:%d;" % http_port),
        ("listen 443 ssl http2;", "listen 127.0.0.1:%d ssl http2;" % https_port),
    ]
    for a, b in subs:
        assert a in site, a
        site = site.replace(a, b)
    if real_ip:
        # one program down and one that never answers, for nginx's own
        # 502 and 504 (after 1 s instead of 30)
        site = site.replace(rt + "/sock/checkout.sock", d + "/missing.sock")
        site = site.replace(rt + "/sock/usage.sock", d + "/missing.sock")
        site = site.replace(rt + "/sock/heartbeat.sock", d + "/silent.sock")
        assert "fastcgi_read_timeout 30s;" in site
        site = site.replace("fastcgi_read_timeout 30s;", "fastcgi_read_timeout 1s;")
        for line in ("#set_real_ip_from 10.0.0.0/8;", "#real_ip_header X-Forwarded-For;",
                     "#real_ip_recursive on;"):
            assert line in site, line
        site = site.replace("#set_real_ip_from 10.0.0.0/8;", "set_real_ip_from 127.0.0.1;")
        site = site.replace("#real_ip_header", "real_ip_header")
        site = site.replace("#real_ip_recursive", "real_ip_recursive")
    return site


def make_cert(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + HOST,
                    "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1" % HOST, "-days", "2",
                    "-keyout", d + "/key.pem", "-out", d + "/cert.pem"],
                   check=True, capture_output=True)


def write_main(d, include):
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    with open(d + "/nginx.conf", "w") as f:
        f.write("%s\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
                "events {}\nhttp {\n include /etc/nginx/mime.types;\n"
                " client_body_temp_path %s/body; fastcgi_temp_path %s/fcgi;\n"
                " proxy_temp_path %s/proxy; uwsgi_temp_path %s/uwsgi; scgi_temp_path %s/scgi;\n"
                " include %s;\n}\n" % ((user,) + (d,) * 7 + (include,)))


def nginx(d, *args):
    return subprocess.run(["nginx", "-c", d + "/nginx.conf", "-p", d, "-e", d + "/error.log"]
                          + list(args), capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def site():
    d = tempfile.mkdtemp(prefix="licd-nginx-prod-")
    os.chmod(d, 0o755)
    os.makedirs(d + "/acme/.well-known/acme-challenge")
    for sub in ("body", "fcgi", "proxy", "uwsgi", "scgi"):
        os.makedirs(os.path.join(d, sub))
    make_cert(d)
    silent = socket.socket(socket.AF_UNIX)      # listens, never accepts
    silent.bind(d + "/silent.sock")
    os.chmod(d + "/silent.sock", 0o666)
    silent.listen(16)
    http_port, https_port = free_port(), free_port()
    with open(d + "/licd.conf", "w") as f:
        f.write(prod_site(d, http_port, https_port, real_ip=True))
    write_main(d, d + "/licd.conf")
    p = nginx(d, "-t")
    assert p.returncode == 0, p.stderr
    p = nginx(d)
    assert p.returncode == 0, p.stderr

    def up():
        try:
            return requests.get("https://127.0.0.1:%d/healthz" % https_port,
                                verify=d + "/cert.pem", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False
    try:    # nginx is stopped whatever fails, its start included
        eventually(up, 10, lambda: "nginx to answer; error.log: " +
                   open(d + "/error.log").read())
        yield {"dir": d, "http": "http://127.0.0.1:%d" % http_port,
               "https": "https://127.0.0.1:%d" % https_port,
               "https_port": https_port, "ca": d + "/cert.pem"}
    finally:
        nginx(d, "-s", "stop")
        silent.close()
        try:
            eventually(lambda: not os.path.exists(d + "/nginx.pid"), 10,
                       "nginx to stop")
        finally:
            subprocess.run(["rm", "-rf", d])


def get(site, path, method="GET", **kw):
    kw.setdefault("timeout", 10)
    return requests.request(method, site["https"] + path, verify=site["ca"],
                            allow_redirects=False, **kw)


def secure_headers(r):
    assert r.headers.get("Strict-Transport-Security") == "max-age=63072000", r.headers
    assert r.headers.get("X-Content-Type-Options") == "nosniff", r.headers
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", r.headers.get("X-Request-Id", "")), r.headers
    assert r.headers.get("Server") == "nginx", r.headers   # server_tokens off


def json_error(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    assert r.json()["error"]["code"] == code, r.text
    secure_headers(r)


def test_production_site_passes_nginx_t_with_its_template_as_shipped():
    """The file as shipped (real-IP lines commented) is accepted as well."""
    d = tempfile.mkdtemp(prefix="licd-nginx-t-")
    try:
        make_cert(d)
        with open(d + "/licd.conf", "w") as f:
            f.write(prod_site(d, free_port(), free_port()))
        write_main(d, d + "/licd.conf")
        p = nginx(d, "-t")
        assert p.returncode == 0, p.stderr
    finally:
        subprocess.run(["rm", "-rf", d])


def test_tls_site_serves_the_api_with_security_headers(site):
    r = get(site, "/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    secure_headers(r)
    h = get(site, "/healthz", method="HEAD")
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Type"] == r.headers["Content-Type"]
    secure_headers(h)
    j = get(site, "/.well-known/jwks.json")
    assert j.status_code == 200 and j.json()["keys"], j.text
    assert j.headers["Cache-Control"] == "public, max-age=300"
    secure_headers(j)
    r = get(site, "/api/validate", json={"license_key": "x", "installation_id": "i"},
            method="POST")
    assert r.status_code == 200 and r.json()["code"] == "INVALID_KEY", r.text
    secure_headers(r)


def test_production_nginx_errors_are_json(site):
    json_error(get(site, "/no/such/thing"), 404, "NOT_FOUND")
    r = get(site, "/.well-known/jwks.json", method="POST", data=b"")
    json_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["Allow"] == "GET, HEAD"
    r = get(site, "/api/validate", method="POST", data=b"x" * 20000,
            headers={"Content-Type": "application/json"})
    json_error(r, 413, "PAYLOAD_TOO_LARGE")
    json_error(get(site, "/" + "a" * 20000), 414, "URI_TOO_LONG")
    # a request line nginx cannot parse, over TLS
    ctx = ssl.create_default_context(cafile=site["ca"])
    head, body = raw_http("127.0.0.1", site["https_port"], b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
                          10, lambda s: ctx.wrap_socket(s, server_hostname="127.0.0.1"))
    assert head.startswith("HTTP/1.1 400"), head
    assert "Strict-Transport-Security" in head and "nosniff" in head
    assert b'"code":"BAD_REQUEST"' in body


def test_upstream_down_or_silent_is_json_502_504(site):
    json_error(get(site, "/api/public/plans"), 502, "SERVICE_UNAVAILABLE")
    r = get(site, "/api/heartbeat", method="POST", json={})
    json_error(r, 504, "SERVICE_UNAVAILABLE")
    assert r.json()["error"]["message"] == "upstream timed out"


def test_admin_allow_list_sees_the_client_behind_a_balancer(site):
    """With the real-IP template filled in (the balancer is 127.0.0.1), the
    allow-list judges the forwarded client address."""
    r = get(site, "/api/revoke", method="POST", json={})
    assert r.status_code == 401, r.text          # allowed address: the program answers
    r = get(site, "/api/revoke", method="POST", json={},
            headers={"X-Forwarded-For": "203.0.113.9"})
    json_error(r, 403, "FORBIDDEN")


def flood(site, path, headers, method="GET", data=None, seconds=30):
    """Requests from 8 connections at once until nginx answers 429 (the
    rate is exceeded however slow the machine is); (that answer, count)."""
    stop = threading.Event()
    got, count = [], [0]
    lock = threading.Lock()

    def one():
        with requests.Session() as s:
            while not stop.is_set():
                r = s.request(method, site["https"] + path, headers=headers, data=data,
                              verify=site["ca"], timeout=10)
                with lock:
                    count[0] += 1
                if r.status_code == 429:
                    got.append(r)
                    stop.set()
    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    assert got, "no 429 after %d requests" % count[0]
    return got[0], count[0]


def test_healthz_rate_limited_with_retry_after(site):
    """zone licd_health: 10 r/s, burst 20, per client; a flood from one
    (forwarded) address gets JSON 429 with Retry-After, others do not."""
    r, n = flood(site, "/healthz", {"X-Forwarded-For": "198.18.7.7"})
    assert n > 20
    json_error(r, 429, "RATE_LIMITED")
    assert r.headers["Retry-After"] == "1"
    assert get(site, "/healthz", headers={"X-Forwarded-For": "198.18.7.8"}).status_code == 200


def test_webhooks_rate_limited(site):
    """zone licd_webhook: 50 r/s, burst 200, per sending address."""
    r, n = flood(site, "/api/stripe/webhook", {"X-Forwarded-For": "198.18.7.9",
                                                "Content-Type": "application/json"},
                 method="POST", data=b"{}")
    assert n > 200
    json_error(r, 429, "RATE_LIMITED")


def test_port_80_redirects_with_json_and_serves_acme(site):
    r = requests.post(site["http"] + "/api/validate?x=1", data=b"{}", allow_redirects=False,
                      timeout=10)
    assert r.status_code == 308, r.text
    assert r.headers["Location"] == "https://%s/api/validate?x=1" % HOST
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"]["code"] == "HTTPS_REQUIRED"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Server"] == "nginx"
    tok = "tok-" + os.urandom(6).hex()
    p = os.path.join(site["dir"], "acme/.well-known/acme-challenge", tok)
    with open(p, "w") as f:
        f.write(tok + ".thumbprint")
    os.chmod(p, 0o644)
    r = requests.get(site["http"] + "/.well-known/acme-challenge/" + tok, timeout=10)
    assert r.status_code == 200 and r.text == tok + ".thumbprint"
    assert r.headers["Content-Type"].startswith("text/plain")


def test_no_license_key_in_the_production_logs(site):
    """GET /api/usage carries the key in its query string: neither the access
    log nor the error log (where nginx writes the request line of an
    upstream failure) may hold it. The usage program is down here, so nginx
    answers 502 and has an error to log; the same failure on another path
    is logged, which shows the log is written and read in time."""
    secret = "eyJsecret" + os.urandom(8).hex()
    r = get(site, "/api/usage", params={"license_key": secret, "period": "2026-01"})
    json_error(r, 502, "SERVICE_UNAVAILABLE")
    rid = r.headers["X-Request-Id"]
    marker = "m" + os.urandom(6).hex()
    json_error(get(site, "/api/public/plans", params={"marker": marker}), 502,
               "SERVICE_UNAVAILABLE")
    log = site["dir"] + "/licd-access.log"
    err = site["dir"] + "/error.log"
    # buffer=64k flush=1s
    line = eventually(lambda: [l for l in open(log).read().splitlines() if rid in l]
                      if os.path.exists(log) else [], 5)
    assert line and '"GET /api/usage?<query> HTTP/1.1" 502' in line[0], line
    assert eventually(lambda: marker in open(err).read(), 5), open(err).read()[-2000:]
    for name in os.listdir(site["dir"]):
        if name.endswith(".log"):
            assert secret not in open(os.path.join(site["dir"], name)).read(), name
