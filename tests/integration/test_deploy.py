"""The production deployment files: `make install` into a DESTDIR lays out
what docs/OPERATIONS.md promises, the nginx site passes `nginx -t`, and the
systemd units pass `systemd-analyze verify`."""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_make_install_layout(tmp_path):
    dest = tmp_path / "root"
    p = subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=%s" % dest],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for prog in ("validate", "heartbeat", "usage", "revoke", "checkout", "webhook",
                 "licd-lifecycle"):
        assert os.access(dest / "usr/lib/licd" / prog, os.X_OK), prog
    assert os.access(dest / "usr/bin/licctl", os.X_OK)
    assert sorted(os.listdir(dest / "usr/share/licd/sql"))[0] == "001_core.sql"
    for unit in ("licd@.service", "licd@.socket", "licd-lifecycle.service",
                 "licd-lifecycle.timer"):
        assert (dest / "lib/systemd/system" / unit).is_file()
    for p in ("checkout", "webhook"):
        assert (dest / ("lib/systemd/system/licd@%s.service.d/network.conf" % p)).is_file()
    conf = dest / "etc/licd/licd.conf"
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    assert "database_url" in conf.read_text()


def test_nginx_site_passes_nginx_t(tmp_path):
    site = open(os.path.join(ROOT, "nginx/licd.conf")).read()
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=t", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True,
                   capture_output=True)
    site = site.replace("/etc/letsencrypt/live/licenses.example.com/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/licenses.example.com/privkey.pem", str(key))
    site = site.replace("/var/log/nginx/", str(tmp_path) + "/")
    site = site.replace("include fastcgi_params;", "include /etc/nginx/fastcgi_params;")
    (tmp_path / "licd.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        "pid %s/nginx.pid; error_log %s/error.log; events {}\n"
        "http { include /etc/nginx/mime.types; include %s/licd.conf; }\n"
        % (tmp_path, tmp_path, tmp_path))
    p = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf"),
                        "-e", str(tmp_path / "error.log")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "syntax is ok" in p.stderr
    # the contract's answers are all there
    pages = " ".join(re.findall(r"error_page ([0-9 =]+) /\.licd-error;", site)).split()
    for code in ("400", "405", "408", "413", "414", "429", "494", "500", "501",
                 "502", "503", "504"):
        assert code in pages, code
    assert "limit_req_zone" in site and "http2" in site and "deny all" in site


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_units_verify(tmp_path):
    bindir = os.path.join(ROOT, "build", "bin")
    names = []
    for unit in os.listdir(os.path.join(ROOT, "systemd")):
        if os.path.isdir(os.path.join(ROOT, "systemd", unit)):
            continue        # drop-ins of one instance
        text = open(os.path.join(ROOT, "systemd", unit)).read()
        # the built programs stand in for /usr/lib/licd (not installed here)
        text = text.replace("/usr/lib/licd/%i", bindir + "/validate")
        text = text.replace("/usr/lib/licd/", bindir + "/")
        (tmp_path / unit).write_text(text)
        names.append(unit)
    units = [str(tmp_path / n.replace("@.", "@validate.")) for n in names]
    p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units,
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr.strip() == "", p.stderr
    svc = open(os.path.join(ROOT, "systemd", "licd@.service")).read()
    for must in ("StandardInput=socket", "User=licd", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "PrivateTmp=yes", "Restart=on-failure",
                 "ReadWritePaths=", "ProtectProc=invisible", "IPAddressDeny=any\n"):
        assert must in svc, must
    # the lifecycle job hardened like the programs, less the IP filter
    # (it delivers mail and webhooks); checkout and webhook call Stripe
    job = open(os.path.join(ROOT, "systemd", "licd-lifecycle.service")).read()
    for must in ("ProtectClock=yes", "ProtectKernelLogs=yes", "ProtectHostname=yes",
                 "RestrictRealtime=yes", "SystemCallFilter=~@privileged @resources",
                 "ProtectProc=invisible", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n"):
        assert must in job, must
    assert "\nIPAddressDeny=" not in job
    for p in ("checkout", "webhook"):
        drop = open(os.path.join(ROOT, "systemd", "licd@%s.service.d" % p, "network.conf")).read()
        assert "\nIPAddressDeny=\n" in drop, p
