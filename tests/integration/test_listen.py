"""<program>_listen: a program accepts FastCGI on TCP as well as on its unix
socket (tests/run.sh gives heartbeat a loopback port). The scale test
(tests/scale/) drives the same listeners from another host's nginx."""
import json
import os
import socket
import struct

import pytest

from conftest import RUN_DIR, heartbeat, validate

TCP = os.environ.get("LICD_HEARTBEAT_TCP")
pytestmark = pytest.mark.skipif(not TCP, reason="heartbeat_listen not set")


def tcp_addr():
    host, port = TCP.rsplit(":", 1)
    return host, int(port)


def unix_addr():
    rt_file = os.path.join(RUN_DIR, "runtime-dir")
    rt = open(rt_file).read().strip() if os.path.exists(rt_file) else RUN_DIR
    return os.path.join(rt, "sock", "heartbeat.sock")


def connect(addr):
    s = socket.socket(socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET,
                      socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(addr)
    return s


def fcgi_post(addr, path, body):
    """One FastCGI POST straight to the program; (status, JSON body)."""
    def rec(t, content):
        return struct.pack(">BBHHBB", 1, t, 1, len(content), 0, 0) + content

    data = json.dumps(body).encode()
    params = b""
    for k, v in ((b"REQUEST_METHOD", b"POST"), (b"DOCUMENT_URI", path.encode()),
                 (b"CONTENT_TYPE", b"application/json"),
                 (b"CONTENT_LENGTH", str(len(data)).encode())):
        params += bytes([len(k), len(v)]) + k + v
    s = connect(addr)
    s.sendall(rec(1, struct.pack(">HB5x", 1, 0)) + rec(4, params) + rec(4, b"")
              + rec(5, data) + rec(5, b""))
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    stdout = b""
    while len(out) >= 8:        # the FCGI_STDOUT records' contents
        _, t, _, n, pad = struct.unpack(">BBHHB", out[:7])
        if t == 6:
            stdout += out[8:8 + n]
        out = out[8 + n + pad:]
    head, _, payload = stdout.partition(b"\r\n\r\n")
    status = int(head.split(b"Status: ")[1][:3])
    return status, json.loads(payload)


def test_program_answers_on_tcp_and_its_unix_socket(lic):
    assert validate(lic["key"], "tcp-1").json()["code"] == "VALID"
    body = {"license_key": lic["key"], "installation_id": "tcp-1"}
    for addr in (tcp_addr(), unix_addr()):
        st, ans = fcgi_post(addr, "/api/heartbeat", body)
        assert st == 200 and ans["code"] == "VALID", ans


def test_connections_without_a_request_on_either_listener(lic):
    """More connections that bring nothing (or half a record) than the
    program has threads, on both listeners: every thread still accepts on
    both, so a thread is never left waiting on one of them alone."""
    assert validate(lic["key"], "tcp-2").json()["code"] == "VALID"
    for i in range(80):
        s = connect(tcp_addr() if i % 4 < 2 else unix_addr())
        if i % 2:
            s.sendall(b"\x01\x01\x00")
        s.close()
    body = {"license_key": lic["key"], "installation_id": "tcp-2"}
    for _ in range(10):
        for addr in (tcp_addr(), unix_addr()):
            st, ans = fcgi_post(addr, "/api/heartbeat", body)
            assert st == 200 and ans["code"] == "VALID"
    assert all(heartbeat(lic["key"], "tcp-2").json()["code"] == "VALID"
               for _ in range(20))


def test_tcp_listener_refuses_a_bad_address(tmp_path):
    """A listen address that cannot be bound stops the program at start
    with the key named, instead of serving on the socket alone."""
    import subprocess
    conf = tmp_path / "licd.conf"
    conf.write_text(open(os.environ["LICD_CONFIG"]).read() +
                    "\nheartbeat_listen = 127.0.0.1:notaport\n")
    bindir = os.path.join(os.path.dirname(os.environ["LICD_BIN"]), "asan", "bin")
    if not os.path.exists(os.path.join(bindir, "heartbeat")):
        bindir = os.environ["LICD_BIN"]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(tmp_path / "hb.sock"))
    s.listen(1)
    p = subprocess.run([os.path.join(bindir, "heartbeat"), "-c", str(conf)],
                       stdin=s.fileno(), capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    s.close()
    assert p.returncode != 0
    assert "heartbeat_listen" in p.stderr


def test_tcp_listener_needs_the_socket_on_fd_0(tmp_path):
    """With <program>_listen the program still serves its socket on fd 0;
    started without one it refuses to start rather than run half."""
    import subprocess
    conf = tmp_path / "licd.conf"
    conf.write_text(open(os.environ["LICD_CONFIG"]).read() +
                    "\nheartbeat_listen = 127.0.0.1:0\n")
    bindir = os.path.join(os.path.dirname(os.environ["LICD_BIN"]), "asan", "bin")
    if not os.path.exists(os.path.join(bindir, "heartbeat")):
        bindir = os.environ["LICD_BIN"]
    p = subprocess.run([os.path.join(bindir, "heartbeat"), "-c", str(conf)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    assert p.returncode != 0
    assert "needs a listening socket on fd 0" in p.stderr
