"""licctl migrate and sql/schema.sql: a new database, and one built by the
previous release's migrations and migrated forward, dump exactly the
committed schema; function files are applied when they change; an applied
migration whose file changed is refused. Each case runs in a database of
its own in the stack's cluster (tests/schema.py)."""
import difflib
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import uuid

import psycopg2
import psycopg2.errors
import pytest

from util import BIN, CFG

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import schema  # noqa: E402

# The last release's commit: a database it migrated must come out the same.
PREVIOUS_RELEASE = "4595dcc"
# Before comments in 009, 011, 012 and 015 were reworded: licctl then
# recorded the SHA-256 of a file's whole text (migrate.c, reworded).
BEFORE_REWORDING = "d64fd76"
# The last commit before license_seats (031).
BEFORE_SEATS = "1b63933"
# The last commit before installations_seated (032).
BEFORE_SEAT_INDEX = "6d72a42"
# The last commit before seen_hour (033).
BEFORE_SEEN_HOUR = "44298b8"
# The last commit before installations_seated reads seat_since (034).
BEFORE_SEAT_SINCE = "9cb02e1"
SQL = os.path.join(ROOT, "sql")
LICCTL = os.path.join(BIN, "licctl")
HOST = psycopg2.extensions.parse_dsn(CFG["database_url"])["host"]


@pytest.fixture
def database():
    """A new, empty database owned by licd; dropped afterwards."""
    name = "licd_mig_" + uuid.uuid4().hex[:8]
    dsn = schema.create_db(HOST, name)
    try:
        yield dsn
    finally:
        schema.drop_db(HOST, name)


def same_as_schema_sql(dsn):
    got = schema.dump(dsn)
    with open(schema.SCHEMA) as f:
        want = f.read()
    if got != want:
        diff = "".join(list(difflib.unified_diff(
            want.splitlines(True), got.splitlines(True),
            "sql/schema.sql", "the migrated database"))[:80])
        pytest.fail("the schema differs from sql/schema.sql (make schema "
                    "writes it):\n" + diff)


def rows(dsn, query):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def test_a_new_database_dumps_as_schema_sql(database):
    p = schema.migrate(database, SQL, LICCTL)
    assert "applied 001_core.sql" in p.stdout
    assert "applied functions/10_checks.sql" in p.stdout
    same_as_schema_sql(database)
    # every migration and function file recorded with its SHA-256
    names = sorted(os.path.basename(f) for f in glob.glob(SQL + "/[0-9][0-9][0-9]_*.sql"))
    files = sorted(os.path.basename(f) for f in glob.glob(SQL + "/functions/[0-9][0-9]_*.sql"))
    assert [r[0] for r in rows(database, "SELECT version FROM schema_migrations"
                                         " WHERE checksum ~ '^[0-9a-f]{64}$' ORDER BY 1")] == names
    assert [r[0] for r in rows(database, "SELECT file FROM schema_functions"
                                         " WHERE checksum ~ '^[0-9a-f]{64}$' ORDER BY 1")] == files
    p = schema.migrate(database, SQL, LICCTL)
    assert p.stdout == "schema up to date (0 migrations and 0 function files applied now)\n"


def sql_at(tmp_path, rev):
    """sql/ as commit rev had it, from the repository's history."""
    out = tmp_path / ("sql-" + rev)
    out.mkdir()
    arc = subprocess.run(["git", "-C", ROOT, "archive", rev, "sql"],
                         capture_output=True)
    if arc.returncode != 0:
        pytest.fail("commit %s is not in the repository's history: this "
                    "test needs a full clone (%s)"
                    % (rev, arc.stderr.decode().strip()))
    subprocess.run(["tar", "-x", "-C", str(out)], input=arc.stdout, check=True)
    return str(out / "sql")


def migrate_as_previous_release(dsn, sql_dir):
    """What that release's licctl migrate did: each NNN_*.sql in its own
    transaction, recorded by name."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version text "
                "PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
    names = sorted(glob.glob(sql_dir + "/[0-9][0-9][0-9]_*.sql"))
    assert names, sql_dir
    for path in names:
        with open(path) as f:
            text = f.read()
        cur.execute("BEGIN")
        cur.execute(text)
        cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)",
                    (os.path.basename(path),))
        cur.execute("COMMIT")
    conn.close()


def test_the_previous_release_migrated_forward_dumps_the_same(database, tmp_path):
    migrate_as_previous_release(database, sql_at(tmp_path, PREVIOUS_RELEASE))
    assert rows(database, "SELECT count(*) FROM pg_proc WHERE proname IN"
                          " ('licd_license_state', 'licd_check_in')") == [(2,)]
    p = schema.migrate(database, SQL, LICCTL)
    assert "applied 024_functions.sql" in p.stdout
    same_as_schema_sql(database)
    # the rows the previous release wrote take the files' checksums
    assert rows(database, "SELECT count(*) FROM schema_migrations"
                          " WHERE checksum IS NULL") == [(0,)]


def sql_copy(tmp_path):
    d = tmp_path / "sql"
    shutil.copytree(SQL, d)
    return d


def test_a_changed_function_file_is_applied_alone(database, tmp_path):
    d = sql_copy(tmp_path)
    schema.migrate(database, str(d), LICCTL)
    f = d / "functions" / "20_clock.sql"
    f.write_text(f.read_text().replace(
        "SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
        "SELECT 'changed'::text"))
    st = schema.migrate(database, str(d), LICCTL, "--status").stdout
    assert [l for l in st.splitlines() if not l.endswith(" applied")] == \
        ["functions/%-30s changed" % "20_clock.sql"]
    p = schema.migrate(database, str(d), LICCTL)
    assert p.stdout == ("applied functions/20_clock.sql\n"
                        "schema up to date (0 migrations and 1 function files applied now)\n")
    assert rows(database, "SELECT licd_iso(now())") == [("changed",)]


def test_a_new_migration_applies_every_function_file_again(database, tmp_path):
    d = sql_copy(tmp_path)
    schema.migrate(database, str(d), LICCTL)
    # a migration may drop what a function file creates (here a view)
    (d / "999_test.sql").write_text("DROP VIEW license_admin_view;\n")
    p = schema.migrate(database, str(d), LICCTL)
    assert "applied 999_test.sql\n" in p.stdout
    assert p.stdout.endswith("(1 migrations and %d function files applied now)\n"
                             % len(os.listdir(d / "functions")))
    assert rows(database, "SELECT count(*) FROM license_admin_view") == [(0,)]


def test_an_applied_migration_that_changed_is_refused(database, tmp_path):
    d = sql_copy(tmp_path)
    schema.migrate(database, str(d), LICCTL)
    f = d / "019_console.sql"
    # a statement, whose text looks like a comment
    f.write_text(f.read_text() + "SELECT '-- edited after it was applied';\n")
    (d / "999_test.sql").write_text("CREATE TABLE not_applied (x int);\n")
    st = schema.migrate(database, str(d), LICCTL, "--status").stdout
    assert [l for l in st.splitlines() if not l.endswith(" applied")] == \
        ["%-40s applied, file changed since" % "019_console.sql",
         "%-40s pending" % "999_test.sql"]
    p = schema.migrate(database, str(d), LICCTL, check=False)
    assert p.returncode == 1
    assert p.stderr.startswith("licctl: 019_console.sql has changed since it "
                               "was applied (SHA-256 of its statements now ")
    assert "applied" not in p.stdout
    assert rows(database, "SELECT to_regclass('not_applied') IS NULL") == [(True,)]


def test_comments_and_layout_may_change_after_a_file_was_applied(database, tmp_path):
    d = sql_copy(tmp_path)
    schema.migrate(database, str(d), LICCTL)
    f = d / "019_console.sql"
    f.write_text("-- a comment reworded after it was applied\n\n" +
                 f.read_text().replace("\n", "\n\n  ") + "/* and another */\n")
    g = d / "functions" / "20_clock.sql"
    g.write_text("-- a contract reworded\n" + g.read_text())
    st = schema.migrate(database, str(d), LICCTL, "--status").stdout
    assert [l for l in st.splitlines() if not l.endswith(" applied")] == []
    p = schema.migrate(database, str(d), LICCTL)
    assert p.stdout == "schema up to date (0 migrations and 0 function files applied now)\n"


def whole_text_sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_checksums_older_licctl_recorded_are_replaced(database, tmp_path):
    """licctl recorded the SHA-256 of a file's whole text before it
    recorded its statements': such a checksum matches the file unchanged
    since, or a migration whose comments were reworded after (migrate.c's
    reworded), and is replaced; any other is refused."""
    d = sql_copy(tmp_path)
    schema.migrate(database, str(d), LICCTL)
    statements = rows(database, "SELECT version, checksum FROM schema_migrations"
                                " UNION ALL SELECT file, checksum FROM"
                                " schema_functions ORDER BY 1")
    reworded = ("009_usage_batch.sql", "011_check_in.sql", "012_hot_touch.sql",
                "015_cheap_checks.sql")
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        for path in glob.glob(str(d) + "/[0-9][0-9][0-9]_*.sql"):
            name = os.path.basename(path)
            text = (d / name).read_text()
            if name in reworded:
                text = subprocess.run(
                    ["git", "-C", ROOT, "show", "%s:sql/%s" % (BEFORE_REWORDING, name)],
                    capture_output=True, text=True, check=True).stdout
                assert text != (d / name).read_text()
            cur.execute("UPDATE schema_migrations SET checksum = %s WHERE version = %s",
                        (whole_text_sha256(text), name))
            assert cur.rowcount == 1, name
        for name in os.listdir(d / "functions"):
            cur.execute("UPDATE schema_functions SET checksum = %s WHERE file = %s",
                        (whole_text_sha256((d / "functions" / name).read_text()), name))
            assert cur.rowcount == 1, name
    st = schema.migrate(database, str(d), LICCTL, "--status").stdout
    assert [l for l in st.splitlines() if not l.endswith(" applied")] == \
        ["functions/%-30s changed" % n for n in sorted(os.listdir(d / "functions"))]
    p = schema.migrate(database, str(d), LICCTL)
    assert p.stdout.endswith("(0 migrations and %d function files applied now)\n"
                             % len(os.listdir(d / "functions")))
    assert rows(database, "SELECT version, checksum FROM schema_migrations"
                          " UNION ALL SELECT file, checksum FROM"
                          " schema_functions ORDER BY 1") == statements
    # a whole-text checksum of another text is a changed migration
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute("UPDATE schema_migrations SET checksum = %s WHERE version = %s",
                    (whole_text_sha256("SELECT 1;\n"), "019_console.sql"))
    p = schema.migrate(database, str(d), LICCTL, check=False)
    assert p.returncode == 1
    assert p.stderr.startswith("licctl: 019_console.sql has changed since it was applied")


def test_sessions_opened_before_027_are_ended(database, tmp_path):
    """Migration 027 stores the hash of the token that opened a session;
    a session from before it cannot say which secret opened it, so the
    migration ends it (the console signs in again)."""
    d = sql_copy(tmp_path)
    (d / "027_session_token.sql").unlink()
    # the session functions of 027 need its column: the copy has none
    (d / "functions" / "93_console_sessions.sql").write_text("-- before 027\n")
    schema.migrate(database, str(d), LICCTL)
    conn = psycopg2.connect(database)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("INSERT INTO admin_sessions (id_hash, csrf, actor, expires_at)"
                " VALUES (sha256('old'), 'c', 'ops', now() + interval '1 hour')")
    conn.close()
    p = schema.migrate(database, SQL, LICCTL)
    assert "applied 027_session_token.sql" in p.stdout
    assert rows(database, "SELECT ended_at IS NOT NULL, token_hash FROM "
                          "admin_sessions") == [(True, None)]
    assert rows(database, "SELECT count(*) FROM licd_session_get(sha256('old'))") == [(0,)]
    same_as_schema_sql(database)


def migrated_from(database, tmp_path, rev):
    """database migrated by commit rev's sql/, with plan 'p' and a customer
    to fill it with: (autocommit connection, its cursor, the customer id)."""
    schema.migrate(database, sql_at(tmp_path, rev), LICCTL)
    conn = psycopg2.connect(database)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("INSERT INTO plans (code, name) VALUES ('p', 'P')")
    cur.execute("INSERT INTO customers (email) VALUES ('a@b.test') RETURNING id")
    return conn, cur, cur.fetchone()[0]


def new_licenses(cur, cust, n):
    """n licenses of plan 'p' for customer cust: their ids."""
    cur.execute("INSERT INTO licenses (customer_id, plan_code) SELECT %s, 'p'"
                " FROM generate_series(1, %s) RETURNING id", (cust, n))
    return [r[0] for r in cur.fetchall()]


def floating_and_node(cur, cust):
    """A floating license (seat_ttl 60) and a node-locked one of plan 'p'
    for customer cust: their ids."""
    cur.execute("INSERT INTO licenses (customer_id, plan_code, seat_model, seat_ttl)"
                " VALUES (%s, 'p', 'floating', 60), (%s, 'p', 'node', NULL)"
                " RETURNING id::text", (cust, cust))
    return [r[0] for r in cur.fetchall()]


def test_floating_seats_get_their_own_index(database, tmp_path):
    """A database from before 032: the active installation a floating
    license kept from its node-locked days (no seat expiry) ends as a switch
    ends it now, the others are untouched, and installations_active gives
    way to installations_seated, which the seat's reads use."""
    conn, cur, cust = migrated_from(database, tmp_path, BEFORE_SEAT_INDEX)
    flo, node = floating_and_node(cur, cust)
    cur.execute("INSERT INTO installations (license_id, installation_id, status,"
                " seat_expires_at) VALUES (%s, 'was-node', 'active', NULL),"
                " (%s, 'seat', 'active', now() + interval '1 minute'),"
                " (%s, 'n', 'active', NULL)", (flo, flo, node))
    conn.close()
    p = schema.migrate(database, SQL, LICCTL)
    assert "applied 032_seat_index.sql" in p.stdout
    assert rows(database, "SELECT license_id::text, installation_id, status,"
                          " deactivated_at IS NOT NULL FROM installations ORDER BY 2") \
        == [(node, "n", "active", False), (flo, "seat", "active", False),
            (flo, "was-node", "inactive", True)]
    assert rows(database, "SELECT indexname FROM pg_indexes WHERE indexname"
                          " IN ('installations_active', 'installations_seated')") \
        == [("installations_seated",)]
    assert dict(rows(database, "SELECT license_id::text, active FROM license_seats")) \
        == {flo: 1, node: 1}
    same_as_schema_sql(database)


def test_seats_in_use_are_counted_when_license_seats_arrives(database, tmp_path):
    """A database from before 031 with active and inactive installations:
    licctl migrate counts each license's active ones into license_seats
    before its triggers exist, and the triggers go on from there."""
    conn, cur, cust = migrated_from(database, tmp_path, BEFORE_SEATS)
    lics = new_licenses(cur, cust, 3)
    for n, lic in enumerate(lics):          # 0, 2 and 4 active, 1 inactive each
        cur.execute("INSERT INTO installations (license_id, installation_id, status)"
                    " SELECT %s, 'i-' || g, CASE WHEN g <= %s THEN 'active'"
                    " ELSE 'inactive' END FROM generate_series(1, %s) g",
                    (lic, 2 * n, 2 * n + 1))
    conn.close()
    p = schema.migrate(database, SQL, LICCTL)
    assert "applied 031_license_seats.sql" in p.stdout
    assert dict(rows(database, "SELECT license_id::text, active FROM license_seats")) \
        == {lics[1]: 2, lics[2]: 4}
    # the triggers count from here
    conn = psycopg2.connect(database)
    conn.autocommit = True
    conn.cursor().execute("UPDATE installations SET status = 'inactive'"
                          " WHERE license_id = %s AND installation_id = 'i-1'",
                          (lics[2],))
    conn.close()
    assert dict(rows(database, "SELECT license_id::text, active FROM license_seats")) \
        == {lics[1]: 2, lics[2]: 3}
    same_as_schema_sql(database)


def test_installations_get_the_hour_they_were_last_seen(database, tmp_path):
    """A database from before 033: every installation gets seen_hour, the
    start of the hour-long span its last_seen falls in, the spans of each
    installation id starting at a minute and second of their own; the
    list's indexes move to it."""
    conn, cur, cust = migrated_from(database, tmp_path, BEFORE_SEEN_HOUR)
    lics = new_licenses(cur, cust, 2)
    for lic in lics:
        cur.execute("INSERT INTO installations (license_id, installation_id, last_seen)"
                    " SELECT %s, 'i-' || g, timestamptz '2026-03-29 01:00:00+00'"
                    " + make_interval(secs => g * 97) FROM generate_series(1, 60) g", (lic,))
    conn.close()
    p = schema.migrate(database, SQL, LICCTL)
    assert "applied 033_seen_hour.sql" in p.stdout
    # the same id, the same span under either license; 60 ids, spread
    (inside, starts, pairs), = rows(
        database, "SELECT count(*) FILTER (WHERE seen_hour <= last_seen"
                  " AND last_seen < seen_hour + interval '1 hour'),"
                  " count(DISTINCT extract(epoch FROM seen_hour)::bigint % 3600),"
                  " count(DISTINCT (installation_id, seen_hour)) FROM installations")
    assert (inside, pairs) == (120, 60) and starts >= 50, (inside, starts, pairs)
    assert rows(database, "SELECT indexdef LIKE '%seen_hour, license_id, installation_id)'"
                          " FROM pg_indexes WHERE indexname IN"
                          " ('installations_seen', 'installations_version_seen')") \
        == [(True,), (True,)]
    same_as_schema_sql(database)


def test_floating_seats_keep_their_index_under_seat_since(database, tmp_path):
    """A database from before 034: a row with a seat expiry but no
    seat_since gets its activation time, a constraint keeps every seat
    expiry with a seat_since from then on, and installations_seated's
    predicate moves to seat_since, so that a renewal, which moves only
    seat_expires_at, is heap-only."""
    conn, cur, cust = migrated_from(database, tmp_path, BEFORE_SEAT_SINCE)
    flo, node = floating_and_node(cur, cust)
    cur.execute("INSERT INTO installations (license_id, installation_id, status,"
                " activated_at, seat_since, seat_expires_at) VALUES"
                " (%s, 'live', 'active', '2026-11-01Z', '2026-11-02Z', now() + interval '1 minute'),"
                " (%s, 'lapsed', 'active', '2026-11-03Z', NULL, now() - interval '1 minute'),"
                " (%s, 'released', 'inactive', '2026-11-04Z', '2026-11-04Z', NULL),"
                " (%s, 'n', 'active', '2026-11-05Z', NULL, NULL)", (flo, flo, flo, node))
    conn.close()
    p = schema.migrate(database, SQL, LICCTL)
    assert "applied 034_seat_renewal_hot.sql" in p.stdout
    assert rows(database, "SELECT installation_id, to_char(seat_since AT TIME ZONE 'UTC',"
                          " 'MM-DD') FROM installations ORDER BY 1") \
        == [("lapsed", "11-03"), ("live", "11-02"), ("n", None), ("released", "11-04")]
    assert rows(database, "SELECT indexdef FROM pg_indexes"
                          " WHERE indexname = 'installations_seated'") \
        == [("CREATE INDEX installations_seated ON public.installations USING btree"
             " (license_id) WHERE ((status = 'active'::text) AND (seat_since IS NOT NULL))",)]
    conn = psycopg2.connect(database)
    conn.autocommit = True
    with pytest.raises(psycopg2.errors.CheckViolation):
        conn.cursor().execute("UPDATE installations SET seat_since = NULL"
                              " WHERE installation_id = 'live'")
    conn.close()
    same_as_schema_sql(database)

