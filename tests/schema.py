#!/usr/bin/env python3
"""sql/schema.sql: the schema a migrated database has, as pg_dump prints it.

`make schema` (python3 tests/schema.py) writes it: a throw-away PostgreSQL
cluster (deploy/local.sh pg-start), a new database migrated by
build/bin/licctl, `pg_dump --schema-only --no-owner`, normalised. The
integration suite (tests/integration/test_migrations.py) checks that a new
database, and one built by the previous release's migrations and migrated
forward, dump exactly that.

Normalised: pg_dump's version lines, session settings, \\restrict lines
and the owner in each object's heading are left out; the order is
pg_dump's own (by object type, then name, dependencies first), which does
not depend on the order the objects were created in.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = os.path.join(ROOT, "sql", "schema.sql")

# The settings pg_dump puts at the top and before the first table.
DUMP_SETTINGS = re.compile(
    r"^(SET (statement_timeout|lock_timeout|idle_in_transaction_session_timeout"
    r"|client_encoding|standard_conforming_strings|check_function_bodies"
    r"|xmloption|client_min_messages|row_security|default_tablespace"
    r"|default_table_access_method) = .*;"
    r"|SELECT pg_catalog\.set_config\('search_path', '', false\);"
    r"|\\(un)?restrict \S+)\n", re.M)
HEADING = re.compile(r"^--\n-- (Name: .*?; Type: [^;\n]*); Schema: [^;\n]*; Owner: [^\n]*\n--\n", re.M)
BANNER = re.compile(r"^--\n-- PostgreSQL database dump( complete)?\n--\n|^-- Dumped (from|by) .*\n", re.M)


def pg_tool(name):
    """A PostgreSQL program of the newest server installed (as local.sh)."""
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    if not dirs:
        raise RuntimeError("PostgreSQL is not installed (run deploy/deps.sh)")
    dirs.sort(key=lambda d: [int(x) for x in re.findall(r"\d+", d)])
    return os.path.join(dirs[-1], name)


def normalise(text):
    text = BANNER.sub("", text)
    text = DUMP_SETTINGS.sub("", text)
    text = HEADING.sub(r"-- \1\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


def superuser(host, dbname="postgres"):
    """A connection as the cluster's superuser (the local clusters trust
    their unix socket)."""
    conn = psycopg2.connect(host=host, dbname=dbname, user="postgres")
    conn.autocommit = True
    return conn


def create_db(host, name):
    """An empty database owned by the role licd, as OPERATIONS.md makes it."""
    conn = superuser(host)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'licd'")
        if cur.fetchone() is None:
            cur.execute("CREATE ROLE licd LOGIN")
        cur.execute("CREATE DATABASE %s OWNER licd" % name)
    finally:
        conn.close()
    return "host=%s dbname=%s user=licd" % (host, name)


def drop_db(host, name):
    conn = superuser(host)
    try:
        conn.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    finally:
        conn.close()


def migrate(dsn, sql_dir, licctl, *args, check=True):
    """licctl migrate against dsn with the migrations in sql_dir."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
        conf.write("database_url = %s\nsql_dir = %s\n" % (dsn, sql_dir))
        conf.flush()
        env = dict(os.environ, LICD_CONFIG=conf.name)
        for k in ("LICD_DATABASE_URL", "LICD_SQL_DIR"):
            env.pop(k, None)
        p = subprocess.run([licctl, "migrate"] + list(args), env=env,
                           capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("licctl migrate: %s%s" % (p.stdout, p.stderr))
    return p


def dump(dsn):
    """The schema of dsn, normalised."""
    p = subprocess.run([pg_tool("pg_dump"), "--schema-only", "--no-owner",
                        "-d", dsn], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("pg_dump: " + p.stderr)
    return normalise(p.stdout)


def main():
    """make schema: writes sql/schema.sql from a new database in a
    throw-away cluster."""
    licctl = os.path.join(ROOT, "build", "bin", "licctl")
    run = tempfile.mkdtemp(prefix="licd-schema.")
    os.chmod(run, 0o755)
    os.mkdir(os.path.join(run, "log"))
    local = os.path.join(ROOT, "deploy", "local.sh")
    env = dict(os.environ, LICD_PG_FAST="1")
    try:
        subprocess.run([local, "pg-start", run], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        with open(os.path.join(run, "runtime-dir")) as f:
            host = os.path.join(f.read().strip(), "pg")
        dsn = create_db(host, "licd_schema")
        migrate(dsn, os.path.join(ROOT, "sql"), licctl)
        text = dump(dsn)
    finally:
        subprocess.run([local, "pg-stop", run], stdout=subprocess.DEVNULL)
        rt = open(os.path.join(run, "runtime-dir")).read().strip() \
            if os.path.exists(os.path.join(run, "runtime-dir")) else run
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(rt, ignore_errors=True)
    with open(SCHEMA, "w") as f:
        f.write(text)
    print("wrote %s" % os.path.relpath(SCHEMA))


if __name__ == "__main__":
    sys.exit(main())
