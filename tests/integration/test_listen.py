"""<program>_listen: a program accepts FastCGI on TCP as well as on its unix
socket (tests/run.sh gives heartbeat a loopback port). The scale test
(tests/scale/) drives the same listeners from another host's nginx."""
import json
import os
import socket
import subprocess

import pytest

from util import connect, fcgi_call, heartbeat, sock_path, validate

TCP = os.environ.get("LICD_HEARTBEAT_TCP")
pytestmark = pytest.mark.skipif(not TCP, reason="heartbeat_listen not set")


def tcp_addr():
    host, port = TCP.rsplit(":", 1)
    return host, int(port)


def unix_addr():
    return sock_path("heartbeat")


def fcgi_post(addr, path, body):
    """One FastCGI POST straight to the program; (status, JSON body)."""
    status, _, payload = fcgi_call(addr, "POST", path, body)
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


def test_tcp_connections_carry_keepalive_probes():
    """A connection nginx keeps waits with no read pending; only TCP
    keepalive ends one whose front vanished without closing it. The
    program's side of a new TCP connection runs the keepalive timer (the
    listener's settings, inherited), its unix socket needs none."""
    port = tcp_addr()[1]
    s = connect(tcp_addr())
    try:
        mine = "%s:%d" % s.getsockname()
        out = subprocess.run(["ss", "-Htno", "state", "established",
                              "sport", "=", ":%d" % port],
                             capture_output=True, text=True,
                             check=True).stdout
        lines = [ln for ln in out.splitlines() if mine in ln]
        assert len(lines) == 1, out
        assert "timer:(keepalive," in lines[0], lines[0]
    finally:
        s.close()


def start_heartbeat(tmp_path, listen, stdin):
    """heartbeat started by hand with heartbeat_listen = listen and stdin
    as its fd 0; what it printed and its exit status."""
    conf = tmp_path / "licd.conf"
    conf.write_text(open(os.environ["LICD_CONFIG"]).read() +
                    "\nheartbeat_listen = %s\n" % listen)
    bindir = os.path.join(os.path.dirname(os.environ["LICD_BIN"]), "asan", "bin")
    if not os.path.exists(os.path.join(bindir, "heartbeat")):
        bindir = os.environ["LICD_BIN"]
    return subprocess.run([os.path.join(bindir, "heartbeat"), "-c", str(conf)],
                          stdin=stdin, capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))


def test_tcp_listener_refuses_a_bad_address(tmp_path):
    """A listen address that cannot be bound stops the program at start
    with the key named, instead of serving on the socket alone."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(tmp_path / "hb.sock"))
    s.listen(1)
    p = start_heartbeat(tmp_path, "127.0.0.1:notaport", s.fileno())
    s.close()
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "heartbeat_listen" in p.stderr


def test_tcp_listener_needs_the_socket_on_fd_0(tmp_path):
    """With <program>_listen the program still serves its socket on fd 0;
    started without one it refuses to start rather than run half."""
    p = start_heartbeat(tmp_path, "127.0.0.1:0", subprocess.DEVNULL)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "needs a listening socket on fd 0" in p.stderr
