"""Fixtures of the integration suite. The helpers (HTTP, database,
licctl, waits, raw sockets, stack control) are in util.py; tests import
them from there.

A test that disturbs the shared stack (stops PostgreSQL, rotates keys,
stops the programs) does it through a fixture that owns the disturbance:
the fixture restores the stack whatever the test did and waits until it is
healthy, so the test files run in any order."""
import pytest

from util import floating_unseated, issue, pg, seats_disagree, set_clock, wait_healthy


@pytest.fixture(scope="session", autouse=True)
def seats_in_use_agree():
    """After the whole suite (every writer of installations it drove,
    through the programs, licctl, the lifecycle and its own SQL), each
    license's license_seats row equals its active installations: the
    activations' seats in use are exact whoever wrote; and every active
    installation of a floating license holds a seat expiry."""
    yield
    wrong = seats_disagree()
    assert wrong == [], wrong
    unseated = floating_unseated()
    assert unseated == [], unseated


@pytest.fixture
def lic():
    """A fresh license: features sso,workflows,reports; 3 installations."""
    return issue()


@pytest.fixture
def database():
    """PostgreSQL of the stack for a test to stop, start or restart
    (database("stop")); afterwards it is running and every program answers
    /healthz 200 again, whatever the test did."""
    try:
        yield pg
    finally:
        pg("start")
        wait_healthy()


@pytest.fixture
def clock():
    """set_clock for the test; the SQL clock reads the real time again
    afterwards, whatever failed."""
    try:
        yield set_clock
    finally:
        set_clock(0)
