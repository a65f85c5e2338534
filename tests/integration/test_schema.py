"""The database's own rules, written straight to the tables: the checks
that stand behind the programs' input validation (sql/001, sql/015)."""
import psycopg2
import psycopg2.errors
import pytest

from util import db, issue, sql1

IID_OK = ["a", "Z", "0", "b-0123456789abcdef", "host.example:8080_a-b",
          "x" * 128, "A1._:-" * 21 + "ab"]
IID_BAD = ["", "x" * 129, "a b", "a/b", "a\n", "\na", "caf\u00e9", "a;b", "*"]


def insert_installation(license_id, iid):
    with db() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO installations (license_id, installation_id)"
                    " VALUES (%s, %s)", (license_id, iid))


@pytest.mark.parametrize("iid", IID_OK)
def test_installation_id_accepted(iid):
    lic = issue()
    insert_installation(lic["id"], iid)
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s"
                " AND installation_id = %s", lic["id"], iid) == 1


@pytest.mark.parametrize("iid", IID_BAD)
def test_installation_id_refused(iid):
    lic = issue()
    with pytest.raises(psycopg2.errors.CheckViolation):
        insert_installation(lic["id"], iid)


def test_installation_id_checked_when_renamed():
    lic = issue()
    insert_installation(lic["id"], "good-1")
    with pytest.raises(psycopg2.errors.CheckViolation):
        with db() as conn, conn.cursor() as cur:
            cur.execute("UPDATE installations SET installation_id = 'bad id'"
                        " WHERE license_id = %s", (lic["id"],))
    assert sql1("SELECT installation_id FROM installations"
                " WHERE license_id = %s", lic["id"]) == "good-1"


@pytest.mark.parametrize("slug,ok", [
    ("a", True), ("api_calls", True), ("a.b-c_d", True), ("0x", True),
    ("a" * 64, True), ("a" * 65, False), ("", False), ("_a", False),
    ("-a", False), ("Api", False), ("a b", False), ("a\n", False),
    ("\u00e9t\u00e9", False),
])
def test_slug_rule(slug, ok):
    assert sql1("SELECT licd_slug_ok(%s)", slug) is ok
