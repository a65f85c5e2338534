"""A newcomer's first command, as root, from a checkout under a 0700
directory (a clone in /root): `make run` and the stack `make test` starts
must work although PostgreSQL runs as `postgres` and nginx's workers as
`nobody`, neither of which can enter the checkout. The test copies the
working checkout (its tracked files and its build) into a fresh 0700
directory and starts both from there, then stops them."""
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest
import requests

from util import ROOT, free_port, runtime_dir

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="only root runs the cluster and nginx's workers as other users")


def clean_env(**extra):
    """The environment of a newcomer's shell: none of the test stack's
    LICD_* / sanitizer settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LICD_", "ASAN_", "UBSAN_", "LSAN_"))}
    env["LICD_PG_FAST"] = "1"       # a throw-away cluster; reachability is the point
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def checkout():
    """A copy of this checkout at <0700 dir>/licd, built already."""
    top = tempfile.mkdtemp(prefix="licd-0700-")
    os.chmod(top, 0o700)
    dst = os.path.join(top, "licd")
    if os.path.isdir(os.path.join(ROOT, ".git")) or os.path.isfile(os.path.join(ROOT, ".git")):
        files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], check=True,
                               capture_output=True).stdout.decode().split("\0")
        for f in filter(None, files):
            src = os.path.join(ROOT, f)
            if not os.path.lexists(src):
                continue
            os.makedirs(os.path.dirname(os.path.join(dst, f)), exist_ok=True)
            shutil.copy2(src, os.path.join(dst, f), follow_symlinks=False)
    else:
        shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns("build", "run"))
    # the build, newer than the sources so that make finds it up to date
    # (a fresh build would only cost time here)
    for part in ("bin", "obj", "liblicd.a"):
        src = os.path.join(ROOT, "build", part)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dst, "build", part))
        elif os.path.exists(src):
            os.makedirs(os.path.join(dst, "build"), exist_ok=True)
            shutil.copy2(src, os.path.join(dst, "build", part))
    for d, _, names in os.walk(os.path.join(dst, "build")):
        for n in names:
            os.utime(os.path.join(d, n))
    yield dst
    rt = os.path.join(dst, "run", "runtime-dir")
    if os.path.exists(rt):
        shutil.rmtree(open(rt).read().strip(), ignore_errors=True)
    shutil.rmtree(top, ignore_errors=True)


def assert_sockets_0660(run_dir):
    sock = os.path.join(runtime_dir(run_dir), "sock")
    names = sorted(os.listdir(sock))
    assert len(names) == 6, names
    for n in names:
        mode = stat.S_IMODE(os.stat(os.path.join(sock, n)).st_mode)
        assert mode == 0o660, (n, oct(mode))


def validate(port, key, iid="first-run"):
    r = requests.post("http://127.0.0.1:%d/api/validate" % port, timeout=30,
                      json={"license_key": key, "installation_id": iid,
                            "domain": "app.example.com", "feature": "sso"})
    assert r.status_code == 200, r.text
    assert r.json()["code"] == "VALID"


def test_make_run_from_a_0700_checkout(checkout):
    port = free_port()
    env = clean_env(PORT=str(port))
    run_dir = os.path.join(checkout, "run")
    try:
        p = subprocess.run(["make", "-C", checkout, "run"], env=env, cwd=checkout,
                           capture_output=True, text=True, timeout=300)
        out = p.stdout + p.stderr
        assert p.returncode == 0, out
        assert "Permission denied" not in out, out
        assert not re.search(r"^rm ", out, re.M), out
        # the printed UUID is said to be the license id, and it is
        lic = json.load(open(os.path.join(run_dir, "demo-license.json")))
        assert re.search(r"license id: +%s$" % lic["id"], out, re.M), out
        # the walk-through README promises, with this run's values
        for call in ("/api/validate", "/api/heartbeat", "/api/usage", "/api/deactivate",
                     "/.well-known/jwks.json", "/api/revoke", "license list",
                     "licctl audit", "licd-lifecycle --dry-run", "make stop"):
            assert call in out, call
        assert "http://127.0.0.1:%d" % port in out
        key = open(os.path.join(run_dir, "demo-license.txt")).read().strip()
        validate(port, key)
        assert_sockets_0660(run_dir)
        # PostgreSQL's log reachable from the run directory, and written
        with open(os.path.join(run_dir, "log", "postgres.log")) as f:
            assert "ready to accept connections" in f.read()
        # a second make run while running is harmless
        p = subprocess.run(["make", "-C", checkout, "run"], env=env, cwd=checkout,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        validate(port, key)
    finally:
        s = subprocess.run(["make", "-C", checkout, "stop"], env=env, cwd=checkout,
                           capture_output=True, text=True, timeout=120)
    assert s.returncode == 0, s.stdout + s.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get("http://127.0.0.1:%d/healthz" % port, timeout=5)
    st = subprocess.run([os.path.join(checkout, "deploy/local.sh"), "status", run_dir],
                        env=env, capture_output=True, text=True, timeout=60)
    assert st.returncode == 1 and "running" not in st.stdout, st.stdout


def test_test_stack_from_a_0700_checkout(checkout):
    """The stack tests/run.sh starts: a /tmp run directory, the checkout's
    programs, migrations and nginx template."""
    port = free_port()
    run_dir = tempfile.mkdtemp(prefix="licd-test-0700-")
    os.chmod(run_dir, 0o755)
    env = clean_env(LICD_BIN_DIR=os.path.join(checkout, "build/bin"))
    local = os.path.join(checkout, "deploy/local.sh")
    try:
        p = subprocess.run([local, "start", run_dir, str(port)], env=env, cwd=checkout,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "Permission denied" not in p.stdout + p.stderr
        licctl = os.path.join(checkout, "build/bin/licctl")
        lenv = dict(env, LICD_CONFIG=os.path.join(run_dir, "licd.conf"))

        def ctl(*args):
            r = subprocess.run([licctl] + list(args), env=lenv, cwd=checkout,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
            return r.stdout

        ctl("plan", "set", "p0700", "--name", "P", "--features", "sso",
            "--limits", "installations=2")
        ctl("customer", "create", "--email", "first@example.com", "--name", "F")
        key = json.loads(ctl("license", "issue", "--customer", "first@example.com",
                             "--plan", "p0700", "--days", "30", "--json"))["key"]
        validate(port, key)
        assert_sockets_0660(run_dir)
    finally:
        s = subprocess.run([local, "stop", run_dir], env=env, cwd=checkout,
                           capture_output=True, text=True, timeout=120)
        shutil.rmtree(run_dir, ignore_errors=True)
    assert s.returncode == 0, s.stdout + s.stderr
