"""The configuration as one table (fcgi/lib/config.c): every program, the
lifecycle job and licctl refuse a file with an unknown key or a bad value at
start with `file:line: message`; LICD_<KEY> is checked the same way;
`licctl config check` prints the effective configuration with every secret
masked; README's table is the C table's."""
import os
import re
import subprocess

import pytest

from util import BIN, CONFIG

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROGRAMS = ["validate", "heartbeat", "usage", "revoke", "checkout", "webhook"]
# Under make test the sanitizer builds are what runs; else the plain ones.
ASAN_BIN = os.path.join(os.path.dirname(BIN), "asan", "bin")
PROG_BIN = ASAN_BIN if os.path.exists(os.path.join(ASAN_BIN, "validate")) else BIN
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")

BAD = """# a file with one mistake of each kind
database_url = dbname=licd
stripe_webhook_secret = whsec_typo
lease_ttl = 7d
threads = many
processes = 0
console_counts = maybe
key_alg = RS256
expiry_warning_days = 30,,1
admin_tokens =
not a key value line
revoke_requests = 64
"""


def bad_lines(path):
    return [
        "%s:3: unknown key 'stripe_webhook_secret' (did you mean "
        "'stripe_webhook_secrets'?)" % path,
        "%s:4: lease_ttl: '7d' is not a whole number (seconds, "
        "60..315360000)" % path,
        "%s:5: threads: 'many' is not a whole number (1..64)" % path,
        "%s:6: processes: 0 is out of range (1..32)" % path,
        "%s:7: console_counts: 'maybe' is not on or off (also yes/no, "
        "true/false, 1/0)" % path,
        "%s:8: key_alg: 'RS256' is not one of ES256/EdDSA" % path,
        "%s:9: expiry_warning_days: '30,,1' is not a comma-separated list "
        "of whole numbers (days, 0..3650)" % path,
        "%s:11: expected key = value" % path,
        "%s:12: unknown key 'revoke_requests'" % path,
    ]


def run(argv, env=None, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=env or ENV, **kw)


def licctl(*args, env=None):
    return run([os.path.join(BIN, "licctl")] + list(args), env=env)


def keys():
    """licctl config keys: name -> (type, default, range, secret)."""
    out = licctl("config", "keys")
    assert out.returncode == 0, out.stderr
    rows = [l.split("\t") for l in out.stdout.splitlines()]
    assert rows[0] == ["key", "type", "default", "range", "secret"]
    return {r[0]: tuple(r[1:]) for r in rows[1:]}


@pytest.fixture
def bad_conf(tmp_path):
    p = tmp_path / "licd.conf"
    p.write_text(BAD)
    return str(p)


@pytest.mark.parametrize("program", PROGRAMS)
def test_program_refuses_a_bad_file(program, bad_conf):
    """Every problem told, each as file:line: message, then the program
    stops before it serves anything."""
    p = run([os.path.join(PROG_BIN, program), "-c", bad_conf])
    assert p.returncode == 1
    assert p.stderr.splitlines() == bad_lines(bad_conf) + [
        "%s: the configuration is not valid; not started" % program]


def test_lifecycle_refuses_a_bad_file(bad_conf):
    p = run([os.path.join(PROG_BIN, "licd-lifecycle"), "-c", bad_conf])
    assert p.returncode == 1
    assert p.stderr.splitlines() == bad_lines(bad_conf) + [
        "licd-lifecycle: the configuration is not valid; nothing done"]
    assert p.stdout == ""


@pytest.mark.parametrize("args", [["license", "list"], ["audit"],
                                  ["keys", "list"], ["migrate", "--status"]])
def test_licctl_refuses_a_bad_file(args, bad_conf):
    """-c names the file; through LICD_CONFIG the same."""
    p = licctl("-c", bad_conf, *args)
    assert p.returncode == 2
    assert p.stderr.splitlines() == bad_lines(bad_conf) + [
        "licctl: the configuration is not valid (licctl config check)"]
    assert p.stdout == ""
    p = licctl(*args, env=dict(ENV, LICD_CONFIG=bad_conf))
    assert p.returncode == 2
    assert p.stderr.splitlines()[0] == bad_lines(bad_conf)[0]


def test_config_check_tells_every_problem(bad_conf):
    p = licctl("config", "check", bad_conf)
    assert p.returncode == 2
    assert p.stderr.splitlines() == bad_lines(bad_conf) + [
        "licctl: %s is not valid" % bad_conf]
    assert p.stdout == ""


def test_a_missing_named_file_is_refused(tmp_path):
    missing = str(tmp_path / "nope.conf")
    p = licctl("config", "check", missing)
    assert p.returncode == 2
    assert p.stderr.splitlines()[0] == \
        "%s: No such file or directory" % missing
    p = run([os.path.join(PROG_BIN, "usage"), "-c", missing])
    assert p.returncode == 1
    assert p.stderr.splitlines()[0] == \
        "%s: No such file or directory" % missing


@pytest.mark.parametrize("var,value,msg", [
    ("LICD_LEASE_TTL", "7d", "lease_ttl: '7d' is not a whole number "
     "(seconds, 60..315360000)"),
    ("LICD_THREADS", "many", "threads: 'many' is not a whole number (1..64)"),
    ("LICD_VALIDATE_REQUESTS", "5000", "validate_requests: 5000 is out of "
     "range (2..1024)"),
    ("LICD_CONSOLE_COUNTS", "perhaps", "console_counts: 'perhaps' is not on "
     "or off (also yes/no, true/false, 1/0)"),
    ("LICD_HEALTH_PROGRAMS", "validate,valdate", "health_programs: 'valdate' "
     "is not a program (validate, heartbeat, usage, revoke, checkout, "
     "webhook)"),
])
def test_environment_override_is_checked(var, value, msg):
    """A bad LICD_<KEY> stops a program, the lifecycle job and licctl the
    same way, the message naming the variable; the stack's own file is
    valid."""
    want = "%s (environment): %s" % (var, msg)
    env = dict(ENV, **{var: value})
    p = run([os.path.join(PROG_BIN, "validate"), "-c", CONFIG], env=env)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        want, "validate: the configuration is not valid; not started"]
    p = run([os.path.join(PROG_BIN, "licd-lifecycle"), "-c", CONFIG,
             "--dry-run"], env=env)
    assert p.returncode == 1 and p.stderr.splitlines()[0] == want
    p = licctl("-c", CONFIG, "audit", env=env)
    assert p.returncode == 2 and p.stderr.splitlines()[0] == want
    p = licctl("config", "check", CONFIG, env=env)
    assert p.returncode == 2 and p.stderr.splitlines()[0] == want


def test_environment_override_wins_and_says_so():
    env = dict(ENV, LICD_LEASE_TTL="3600", LICD_GRACE_DAYS="")
    p = licctl("config", "check", CONFIG, env=env)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "lease_ttl                  = 3600  # LICD_LEASE_TTL" in lines
    # an empty variable is ignored: the file's line stands
    assert any(re.fullmatch(r"grace_days +=.*# %s:\d+" % re.escape(CONFIG), l)
               for l in lines), lines


def value_for(name, typ, default, rng):
    """A valid value for every key, unlike its default where it can be."""
    if typ == "integer":
        lo, hi = map(int, rng.split(".."))
        return str(hi if default == str(lo) else lo)
    if typ == "list":
        lo, hi = map(int, rng.split(".."))
        return "%d, %d" % (hi, lo)
    if typ == "bool":
        return "off" if default == "on" else "on"
    if typ == "enum":
        return [c for c in rng.split("|") if c != default][0]
    # strings with a form (config.c's checks)
    if name == "admin_tokens":
        return "ops:%s,ci:%s" % ("ab" * 32, "cd" * 32)
    if name == "health_programs":
        return "validate,usage"
    if name.endswith("_listen"):
        return "127.0.0.1:%d" % (9000 + len(name))
    if name == "smtp_url":
        return "smtp://mail.example.com:25"
    if name != "database_url" and name.endswith(("_url", "_base")):
        return "https://%s.example.com/" % name.replace("_", "-")
    return "value-of-%s" % name


def test_a_file_with_every_key_passes(tmp_path):
    """Every key of the table set in one file (the secrets included) is
    valid, and config check says each came from its line."""
    ks = keys()
    assert len(ks) > 60
    conf = tmp_path / "every.conf"
    lines = ["# every key"] + ["%s = %s" % (k, value_for(k, *v[:3]))
                               for k, v in ks.items()]
    conf.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in ENV.items() if not k.startswith("LICD_")}
    p = licctl("config", "check", str(conf), env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == "# %s: valid" % conf
    assert len(out) == len(ks) + 1
    for i, (k, v) in enumerate(ks.items()):
        assert re.fullmatch(r"%s +=.*  # %s:%d" % (k, re.escape(str(conf)),
                                                   i + 2), out[i + 1]), out[i + 1]
        if v[3] == "no" and k != "database_url":
            assert out[i + 1].split(" = ", 1)[1].startswith(
                value_for(k, *v[:3]) + "  # ")


def test_shipped_and_written_configs_pass():
    """The example, the stack's file (deploy/local.sh and tests/run.sh)."""
    for path in (os.path.join(ROOT, "deploy", "licd.conf.example"), CONFIG):
        p = licctl("config", "check", path)
        assert p.returncode == 0, (path, p.stderr)
        assert p.stdout.startswith("# %s: valid\n" % path)
    p = licctl("config", "check", env=dict(ENV, LICD_CONFIG=CONFIG))
    assert p.returncode == 0 and p.stdout.startswith("# %s: valid\n" % CONFIG)


SECRETS = {
    "admin_tokens": "ops:%s" % ("ab" * 32),
    "stripe_secret_key": "sk_live_TOPSECRET1",
    "stripe_webhook_secrets": "whsec_TOPSECRET2,whsec_TOPSECRET3",
    "paddle_webhook_secrets": "pdl_TOPSECRET4",
    "smtp_password": "TOPSECRET5",
    "notify_webhook_secret": "TOPSECRET6",
    "database_url": "host=db.internal dbname=licd user=licd "
                    "password=TOPSECRET7",
    "smtp_url": "smtps://mailer:TOPSECRET8@mail.example.com:465/",
    "notify_webhook_url": "https://hook:TOPSECRET9@vendor.example.com/h",
}


def test_config_check_masks_every_secret(tmp_path):
    """No secret reaches the output, whether from the file or the
    environment; every key flagged secret is among those tried."""
    ks = keys()
    flagged = {k for k, v in ks.items() if v[3] == "yes"}
    assert flagged <= set(SECRETS), flagged - set(SECRETS)
    conf = tmp_path / "secrets.conf"
    conf.write_text("".join("%s = %s\n" % kv for kv in SECRETS.items()
                            if kv[0] != "smtp_password"))
    env = dict(ENV, LICD_SMTP_PASSWORD=SECRETS["smtp_password"],
               LICD_STRIPE_API_BASE="https://u:TOPSECRET10@api.example")
    p = licctl("config", "check", str(conf), env=env)
    assert p.returncode == 0, p.stderr
    for token in ["TOPSECRET", "ab" * 32]:
        assert token not in p.stdout and token not in p.stderr
    lines = p.stdout.splitlines()
    for k in flagged:
        assert any(re.fullmatch(r"%s +\= \*{8}  # .*" % k, l) for l in lines), k
    assert "database_url               = host=db.internal dbname=licd " \
        "user=licd password=********  # %s:6" % conf in lines
    assert "stripe_api_base            = https://u:********@api.example  " \
        "# LICD_STRIPE_API_BASE" in lines
    assert any(l.startswith("smtp_url                   = smtps://mailer:"
                            "********@mail.example.com:465/  # ")
               for l in lines)


def test_readme_table_is_the_c_table():
    """README's configuration table is `licctl config keys --markdown`
    verbatim: every key there is in the C table with the same default and
    range, and no other."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(r"<!-- generated by `licctl config keys --markdown`[^\n]*\n"
                  r"(.*?)<!-- end of the generated table -->", readme, re.S)
    assert m, "README.md lacks the generated configuration table"
    p = licctl("config", "keys", "--markdown")
    assert p.returncode == 0
    assert m.group(1) == p.stdout, \
        "README.md's table differs: replace it with the output of " \
        "build/bin/licctl config keys --markdown"
    # and the generated table itself names every key of the table
    md_keys = set(re.findall(r"^\| `([^`]+)`", p.stdout, re.M))
    for k in keys():
        assert k in md_keys or any(
            pat.startswith("<program>_") and k.endswith(pat[9:])
            for pat in md_keys), k


def fcgi_validate(sock, key, iid):
    """One FastCGI POST /api/validate straight to a program's socket."""
    import json
    import socket
    import struct

    def rec(t, content):
        return struct.pack(">BBHHBB", 1, t, 1, len(content), 0, 0) + content

    data = json.dumps({"license_key": key, "installation_id": iid}).encode()
    params = b""
    for k, v in ((b"REQUEST_METHOD", b"POST"),
                 (b"DOCUMENT_URI", b"/api/validate"),
                 (b"CONTENT_TYPE", b"application/json"),
                 (b"CONTENT_LENGTH", str(len(data)).encode())):
        params += bytes([len(k), len(v)]) + k + v
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
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
    while len(out) >= 8:
        _, t, _, n, pad = struct.unpack(">BBHHB", out[:7])
        if t == 6:
            stdout += out[8:8 + n]
        out = out[8 + n + pad:]
    return json.loads(stdout.partition(b"\r\n\r\n")[2])["code"]


def counted_today():
    from util import sql1
    return sql1("SELECT coalesce(sum(n), 0) FROM validation_counts "
                "WHERE day = (now() AT TIME ZONE 'UTC')::date AND code = 'VALID'")


def validate_privately(tmp_path, lic, extra, calls):
    """A validate process of its own on the stack's database with `extra`
    config lines: `calls` VALID answers, then SIGTERM (which writes what
    its writer holds) and its exit."""
    import socket
    conf = tmp_path / ("%d.conf" % len(list(tmp_path.iterdir())))
    conf.write_text(open(CONFIG).read() + "\n" + extra + "\n")
    path = str(tmp_path / ("v%d.sock" % len(list(tmp_path.iterdir()))))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(16)
    p = subprocess.Popen([os.path.join(PROG_BIN, "validate"), "-c", str(conf)],
                         stdin=s.fileno(), stderr=subprocess.PIPE, env=ENV)
    s.close()
    try:
        for i in range(calls):
            assert fcgi_validate(path, lic["key"], "cc-%d" % (i % 3)) == "VALID"
    finally:
        p.terminate()
        assert p.wait(timeout=30) == 0, p.stderr.read()


def test_console_counts_off_counts_nothing(tmp_path, lic):
    """validate counts its answers for the console's overview unless
    console_counts = off; a process's counts are written by its exit."""
    before = counted_today()
    validate_privately(tmp_path, lic, "console_counts = on", 5)
    on = counted_today()
    assert on - before >= 5
    validate_privately(tmp_path, lic, "console_counts = off", 5)
    assert counted_today() == on


@pytest.mark.parametrize("program", ["validate", "revoke", "checkout",
                                     "webhook"])
def test_program_refuses_keys_that_do_not_load(program, tmp_path):
    """A signing program whose current key does not load stops at start
    with the loader's message, whether it holds its keys from the start
    (validate) or loads them at its first call (revoke, checkout, webhook
    check them at start all the same); no keys at all, the same."""
    kdir = tmp_path / "keys"
    kdir.mkdir()
    log = tmp_path / "licd.log"
    env = dict(ENV, LICD_KEYS_DIR=str(kdir), LICD_LOG_FILE=str(log))
    p = run([os.path.join(PROG_BIN, program), "-c", CONFIG], env=env)
    assert p.returncode == 1
    assert "no keys in %s (run licctl keys generate)" % kdir in \
        log.read_text()
    kid = "A" * 43
    (kdir / "current").write_text(kid + "\n")
    (kdir / (kid + ".key")).write_text("-----BEGIN PRIVATE KEY-----\n"
                                       "bm90IGEga2V5\n"
                                       "-----END PRIVATE KEY-----\n")
    (kdir / (kid + ".pub")).write_text("not a key either\n")
    log.write_text("")
    p = run([os.path.join(PROG_BIN, program), "-c", CONFIG], env=env)
    assert p.returncode == 1
    lines = [l for l in log.read_text().splitlines() if " error " in l]
    assert len(lines) == 1, log.read_text()
    assert "%s[" % program in lines[0] and kid in lines[0]
