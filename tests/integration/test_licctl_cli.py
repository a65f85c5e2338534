"""licctl says what is wrong: every bad value gets one line naming the
option and what it accepts, exit 2, and nothing is written; commands the
docs show without arguments work; list and show tell the status validate
would answer."""

from util import CONFIG, issue, licctl, make_plan, sql, sql1, unique, validate


def counts():
    return sql("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM"
               " plans), (SELECT count(*) FROM licenses), (SELECT count(*)"
               " FROM audit_log)")[0]


def refused(args, option):
    before = counts()
    p = licctl(*args, check=False)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("licctl: " + option), \
        (args, p.stderr)
    for word in ("violates", "constraint", "ERROR", "invalid input syntax"):
        assert word not in p.stderr, (args, p.stderr)
    assert counts() == before, args
    return lines[0]


def test_bad_values_are_named_and_nothing_is_written():
    plan = make_plan()
    email = unique("c") + "@example.com"
    licctl("customer", "create", "--email", email)
    issue_ = ["license", "issue", "--customer", email, "--plan", plan]
    cases = [
        (["customer", "create", "--email", "not an email"], "--email"),
        (["customer", "create", "--email", "a@b@c"], "--email"),
        (["customer", "create", "--email", "x" * 250 + "@e.com"], "--email"),
        (["customer", "create", "--email", "ok@example.com", "--name",
          "n" * 201], "--name"),
        (["plan", "set", "Bad Code", "--name", "x"], "CODE"),
        (["plan", "set", unique("p"), "--interval", "weekly"], "--interval"),
        (["plan", "set", unique("p"), "--currency", "dollars"], "--currency"),
        (["plan", "set", unique("p"), "--price-cents", "-5"], "--price-cents"),
        (["plan", "set", unique("p"), "--price-cents", "12.5"], "--price-cents"),
        (["plan", "set", unique("p"), "--features", "sso,Bad Feature"],
         "--features"),
        (["plan", "set", unique("p"), "--limits", "seats=lots"], "--limits"),
        (["plan", "set", unique("p"), "--limits", "Bad Name=3"], "--limits"),
        (issue_ + ["--expires", "2027-02-30"], "--expires"),
        (issue_ + ["--expires", "2020-01-01"], "--expires"),
        (issue_ + ["--expires", "tomorrow"], "--expires"),
        (issue_ + ["--expires", "2030-01-01T25:00:00Z"], "--expires"),
        (issue_ + ["--expires", "2030-1-1"], "--expires"),
        (issue_ + ["--days", "0"], "--days"),
        (issue_ + ["--days", "ten"], "--days"),
        (issue_ + ["--days", "30", "--domains", "exa mple.com"], "--domains"),
        (issue_ + ["--days", "30", "--domains", "a..b"], "--domains"),
        (issue_ + ["--days", "30", "--domains", "x" * 64 + ".com"], "--domains"),
        (issue_ + ["--days", "30", "--features", "a b"], "--features"),
        (["license", "issue", "--customer", email, "--plan", "No Such",
          "--days", "3"], "--plan"),
        (["license", "issue", "--customer", "nobody-" + unique("x") +
          "@example.com", "--plan", plan, "--days", "3"], "--customer"),
        (["license", "issue", "--customer", email, "--plan", unique("nop"),
          "--days", "3"], "--plan"),
        (["license", "list", "--status", "bogus"], "--status"),
        (["license", "show", "not-a-uuid"], "LICENSE_ID"),
        (["license", "revoke", "not-a-uuid"], "LICENSE_ID"),
        (["usage", "00000000-0000-4000-8000-000000000000", "--period",
          "2026-13"], "--period"),
        (["usage", "00000000-0000-4000-8000-000000000000", "--period",
          "26-01"], "--period"),
        (["audit", "--limit", "many"], "--limit"),
        (["notifications", "--status", "sent"], "--status"),
        (["notifications", "--limit", "-1"], "--limit"),
        (["notifications", "retry", "x"], "ID"),
    ]
    for args, option in cases:
        refused(args, option)
    # who is unknown is said
    line = refused(["license", "issue", "--customer", "ghost-" + unique("g") +
                    "@example.com", "--plan", plan, "--days", "3"], "--customer")
    assert "unknown customer" in line
    line = refused(["license", "issue", "--customer", email, "--plan",
                    unique("ghost"), "--days", "3"], "--plan")
    assert "unknown plan" in line


def test_commands_the_docs_show_without_arguments():
    for args in (["audit"], ["notifications"], ["notifications", "list"],
                 ["license", "list"], ["plan", "list"], ["customer", "list"],
                 ["keys", "list"]):
        p = licctl(*args, check=False)
        assert p.returncode == 0, (args, p.stderr)
        assert p.stderr == "" or not p.stderr.startswith("licctl: \n"), args


def test_plan_set_prints_like_the_other_commands():
    code = unique("plan")
    out = licctl("plan", "set", code, "--name", "Pro", "--features", "sso",
                 "--limits", "installations=3").stdout
    assert out.startswith(code) and "features=" in out and not out.startswith("{")
    listed = [l for l in licctl("plan", "list").stdout.splitlines()
              if l.startswith(code + " ")]
    assert listed == [out.rstrip("\n")]


def test_list_and_show_tell_the_effective_status():
    lic = issue(days=2)
    # past its expiry by the SQL clock, but not yet written by lifecycle
    sql("UPDATE licenses SET expires_at = licd_now() - interval '1 hour'"
        " WHERE id = %s", lic["id"])
    assert sql1("SELECT status FROM licenses WHERE id = %s", lic["id"]) == "active"
    assert validate(lic["key"], "eff").json()["code"] == "EXPIRED"
    out = licctl("license", "show", lic["id"]).stdout
    assert "effective_status      expired" in out, out
    line = [l for l in licctl("license", "list", "--customer", lic["email"]).stdout
            .splitlines() if l.startswith(lic["id"])][0]
    assert " expired " in line
    assert lic["id"] in licctl("license", "list", "--status", "expired").stdout
    assert lic["id"] not in licctl("license", "list", "--status", "active").stdout
    # in grace: validate answers VALID
    sql("UPDATE licenses SET grace_until = licd_now() + interval '3 days'"
        " WHERE id = %s", lic["id"])
    assert validate(lic["key"], "eff").json()["code"] == "VALID"
    line = [l for l in licctl("license", "list", "--customer", lic["email"]).stdout
            .splitlines() if l.startswith(lic["id"])][0]
    assert " active,grace " in line
    import json
    doc = json.loads(licctl("license", "show", lic["id"], "--json").stdout)
    assert doc["effective_status"] == "active" and doc["in_grace"] is True


DOCS = ["README.md", "docs/OPERATIONS.md", "docs/API.md", "docs/DESIGN.md"]
# Shown in the docs but run elsewhere in the suite: key changes (the
# rotation test; they would change the stack's current key here), the
# migrations (every stack start), package set-up lines.
ELSEWHERE = ("licctl keys", "licctl migrate", "runuser", "sudo")


def doc_command_lines():
    """Every licctl command line in the docs' sh blocks and `licctl …`
    spans, continuation lines joined, comments dropped."""
    import os
    import re
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    found = []
    for name in DOCS:
        text = open(os.path.join(root, name)).read()
        for block in re.findall(r"```sh\n(.*?)```", text, re.S):
            block = block.replace("\\\n", " ")
            for line in block.splitlines():
                line = line.split(" #", 1)[0].strip()
                if re.match(r"^(build/bin/)?licctl ", line):
                    found.append(re.sub(r"^build/bin/", "", line))
        for span in re.findall(r"`(licctl [^`]*)`", text):
            # a command named in the text, not a line to run
            if "\n" not in span and not re.fullmatch(r"licctl (license|token|lease|webhook|plan|"
                                r"customer) [a-z-]+( [a-z|-]+)?", span):
                found.append(span)
    return found


def test_every_licctl_line_in_the_docs_runs():
    """The docs' command lines, with their placeholders filled in (a
    license id, a notification id): each exits 0 and prints no error."""
    import shlex
    lic = issue()
    nid = sql1("SELECT coalesce(max(id), 1) FROM notifications")
    fill = {"LICENSE_ID": lic["id"], "ID": lic["id"], "ID|--all": "--all",
            "NAME": "docs", "EVENT_ID": "evt_none", "FILE": CONFIG}
    ran = 0
    for line in doc_command_lines():
        if line.startswith(ELSEWHERE) or "…" in line or "<" in line or \
                "|" in line.replace("ID|--all", ""):
            continue
        # "[--status pending]": the optional part given
        args = shlex.split(line.replace("[", "").replace("]", ""))[1:]
        if args[:2] == ["notifications", "retry"]:
            fill["ID"] = str(nid)
        args = [fill.get(a, a) for a in args]
        fill["ID"] = lic["id"]
        if args[:2] == ["webhook", "replay"]:
            continue        # needs a pending event (test_billing_trust)
        p = licctl(*args, check=False)
        assert p.returncode == 0, (line, p.stderr)
        assert "error" not in p.stderr and "not valid" not in p.stderr, \
            (line, p.stderr)
        ran += 1
    assert ran >= 12, ran


def bare(*args):
    """licctl with no configuration to read: help and usage need none."""
    import os
    import subprocess
    from util import BIN
    return subprocess.run([os.path.join(BIN, "licctl")] + list(args),
                          capture_output=True, text=True,
                          env=dict(os.environ,
                                   LICD_CONFIG="/nonexistent/licd.conf"))


def table_commands():
    """(group, verb) of every row of licctl's command table (verb None
    for a group that is one command), read from its source."""
    import os
    import re
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", "fcgi",
                            "licctl", "main.c")).read()
    table = src.split("cmds[] = {", 1)[1].split("\n};", 1)[0]
    rows = [(g, v or None) for g, v in re.findall(
        r'^\t\{ "([a-z-]+)", (?:NULL|"([a-z-]+)")', table, re.M)]
    # the license actions are rows too, through a macro
    rows += [("license", v) for v in re.findall(r'^\tACTION\("([a-z-]+)"',
                                                table, re.M)]
    return rows


def test_help_lists_every_command_and_each_has_its_usage():
    p = bare("--help")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    lines = p.stdout.splitlines()
    assert lines[:2] == ["usage: licctl [-c CONFIG] COMMAND ...", "commands:"]
    listed = []
    for line in lines[2:]:
        if not line.startswith("  "):
            break
        words = line.split()
        # "group verb  summary" or "group  summary": the name column
        name = line[2:29].split()
        assert words[:len(name)] == name and 1 <= len(name) <= 2, line
        listed.append((name[0], name[1] if len(name) == 2 else None))
    assert lines[2 + len(listed)].startswith("Every command takes --help.")
    assert sorted(listed, key=str) == sorted(table_commands(), key=str)
    assert len(listed) == len(set(listed))
    groups = {}
    for group, verb in listed:
        groups.setdefault(group, []).append(verb)
    for group, verbs in groups.items():
        for verb in verbs:
            words = [group] + ([verb] if verb else [])
            p = bare(*words, "--help")
            assert p.returncode == 0 and p.stderr == "", (words, p.stderr)
            assert p.stdout.startswith("usage: licctl %s" % " ".join(words)), \
                (words, p.stdout)
            assert len(p.stdout.splitlines()) >= 2, (words, p.stdout)
        if verbs == [None]:
            continue
        # GROUP --help: one usage line per verb, in the table's order
        p = bare(group, "--help")
        assert p.returncode == 0 and p.stderr == "", (group, p.stderr)
        usage = [l for l in p.stdout.splitlines()
                 if l.startswith(("usage: licctl ", "       licctl "))]
        assert [l.split("licctl ", 1)[1].split()[1] for l in usage] == verbs, (group, p.stdout)


def test_a_command_line_licctl_cannot_run_exits_2_with_one_line():
    for args, says in ((["license", "frobnicate"],
                        "licctl: unknown license command 'frobnicate'"),
                       (["keys", "nope", "--alg", "EdDSA"],
                        "licctl: unknown keys command 'nope'"),
                       (["frobnicate"], "licctl: unknown command 'frobnicate'"),
                       (["frobnicate", "list"],
                        "licctl: unknown command 'frobnicate'")):
        p = bare(*args)
        assert p.returncode == 2 and p.stdout == "", (args, p)
        assert p.stderr.splitlines() == [p.stderr.rstrip("\n")] and \
            p.stderr.startswith(says), (args, p.stderr)
    # no command at all, or a group without its verb: the usage, exit 2
    p = bare()
    assert p.returncode == 2 and p.stderr.startswith("usage: licctl"), p
    p = bare("keys")
    assert p.returncode == 2 and p.stderr.startswith("usage: licctl keys "), p
