"""Users, roles, PINs and lockout, on a real SQLite file, read back from the audit trail."""

import hashlib
import itertools
import sqlite3

import pytest

from engine.security import audit
from engine.security.auth import (
    PERMISSIONS,
    ROLES,
    AuthError,
    AuthStore,
    PermissionDenied,
    Policy,
    Session,
    can,
    required_role,
    unsecured_session,
)
from engine.core.config import default_config
from engine.storage.db import DB_NAME


class Clock:
    def __init__(self, t=1_800_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def station(tmp_path):
    clock = Clock()
    store = AuthStore(tmp_path, Policy(max_failures=3, lockout_minutes=10), station="line-4", clock=clock)
    admin = store.add_user("100", "Ada Admin", "admin", "1234", None)
    for badge, role in (("200", "operator"), ("300", "technician"), ("400", "engineer")):
        store.add_user(badge, f"User {badge}", role, "2468", admin)
    return store, admin, clock


def actions(path):
    return [(r["action"], r["user"], r["reason"]) for r in audit.entries(path)]


def test_roles_build_on_each_other_and_name_the_least_role_for_each_permission():
    assert [len(PERMISSIONS[r]) for r in ROLES] == [1, 3, 9, 10]
    for lower, higher in itertools.pairwise(ROLES):
        assert PERMISSIONS[lower] < PERMISSIONS[higher]
    assert required_role("review") == "operator" and required_role("recalibrate") == "technician"
    assert required_role("camera_settings") == "technician"
    assert {required_role(p) for p in ("export", "references", "tolerances", "models", "agreement", "readiness")} \
        == {"engineer"}
    assert required_role("users") == "admin"
    for forbidden in ("export", "recalibrate", "tolerances"):
        assert not can("operator", forbidden)
        with pytest.raises(PermissionDenied, match=f"needs the {required_role(forbidden)} role"):
            Session("200", "Otto", "operator").require(forbidden)
    assert can("technician", "recalibrate") and not can("technician", "export") and can("engineer", "export")
    assert unsecured_session().can("users")  # a station without users is not secured yet


def test_the_pin_is_kept_only_as_a_salted_scrypt_hash(station, tmp_path):
    con = sqlite3.connect(tmp_path / DB_NAME)
    rows = con.execute("SELECT badge, salt, pin_hash, scrypt_n, scrypt_r, scrypt_p FROM users").fetchall()
    every_value = [v for row in con.execute("SELECT * FROM users") for v in row]
    every_value += [v for row in con.execute("SELECT * FROM audit_log") for v in row]
    con.close()
    assert "2468" not in every_value and 2468 not in every_value  # the PIN itself is stored nowhere
    by_badge = {r[0]: r for r in rows}
    for badge in ("200", "300"):
        _, salt, pin_hash, n, r, p = by_badge[badge]
        assert n >= 2**14 and r == 8 and p == 1
        assert pin_hash == hashlib.scrypt(b"2468", salt=bytes.fromhex(salt), n=n, r=r, p=p, dklen=32).hex()
    assert by_badge["200"][1] != by_badge["300"][1]  # one salt per user: the same PIN hashes differently
    assert by_badge["200"][2] != by_badge["300"][2]


def test_a_wrong_pin_is_refused_and_logged_and_repeated_failures_lock(station, tmp_path):
    store, _, clock = station
    with pytest.raises(AuthError, match="wrong PIN"):
        store.authenticate("200", "1111")
    assert ("sign_in_failed", "200", "wrong PIN (1 of 3)") in actions(tmp_path)
    with pytest.raises(AuthError):
        store.authenticate("200", "1112")
    with pytest.raises(AuthError, match="now locked for 10 minutes"):
        store.authenticate("200", "1113")
    log = actions(tmp_path)
    assert ("account_locked", "200", "3 wrong PINs in a row; locked for 10 minutes") in log
    # Locked: even the right PIN is refused (and logged) until the lockout ends.
    with pytest.raises(AuthError, match="locked"):
        store.authenticate("200", "2468")
    assert actions(tmp_path)[-1] == ("sign_in_failed", "200", "account locked")
    clock.t += 9 * 60
    with pytest.raises(AuthError, match="locked"):
        store.authenticate("200", "2468")
    clock.t += 2 * 60
    s = store.authenticate("200", "2468")
    assert s.role == "operator" and actions(tmp_path)[-1] == ("sign_in", "200", "")
    assert audit.verify(tmp_path).ok


def test_a_good_pin_resets_the_count_and_an_admin_can_unlock(station, tmp_path):
    store, admin, _ = station
    for pin in ("0000", "0001"):
        with pytest.raises(AuthError):
            store.authenticate("300", pin)
    store.authenticate("300", "2468")
    for pin in ("0000", "0001"):
        with pytest.raises(AuthError):
            store.authenticate("300", pin)  # two again, not four: no lock
    store.authenticate("300", "2468")
    for pin in ("0000", "0001", "0002"):
        with pytest.raises(AuthError):
            store.authenticate("300", pin)
    operator = store.authenticate("200", "2468")
    with pytest.raises(PermissionDenied):
        store.unlock("300", operator)
    store.unlock("300", admin, reason="forgot the PIN twice")
    assert store.authenticate("300", "2468").badge == "300"


def test_unknown_badges_and_disabled_accounts_are_refused_and_logged(station, tmp_path):
    store, admin, _ = station
    with pytest.raises(AuthError, match="unknown badge or wrong PIN"):
        store.authenticate("999", "1234")
    assert actions(tmp_path)[-1] == ("sign_in_failed", "999", "unknown badge")
    store.disable("200", admin, reason="left the company")
    with pytest.raises(AuthError, match="disabled"):
        store.authenticate("200", "2468")
    with pytest.raises(AuthError, match="last active admin"):
        store.disable("100", admin)
    assert [u["active"] for u in store.list_users() if u["badge"] == "200"] == [0]


def test_only_an_admin_adds_users_and_the_first_user_is_an_admin(tmp_path, station):
    store, admin, _ = station
    operator = store.authenticate("200", "2468")
    engineer = store.authenticate("400", "2468")
    for who in (operator, engineer, None):
        with pytest.raises(PermissionDenied):
            store.add_user("500", "New", "operator", "1357", who)
    with pytest.raises(AuthError, match="already a user"):
        store.add_user("200", "Again", "operator", "1357", admin)
    with pytest.raises(AuthError, match="4 to 12 digits"):
        store.add_user("500", "New", "operator", "12ab", admin)
    fresh = AuthStore(tmp_path / "other")
    (tmp_path / "other").mkdir()
    with pytest.raises(AuthError, match="first user must be an admin"):
        fresh.add_user("1", "First", "operator", "1234", None)
    assert fresh.add_user("1", "First", "admin", "1234", None).role == "admin"


def test_a_signature_records_its_meaning_and_refuses_a_wrong_pin(station, tmp_path):
    store, _, _ = station
    tech = store.authenticate("300", "2468")
    store.sign(tech, "2468", "recalibrated", "recalibration", obj="camera 0", old={"fx": 1000}, new={"fx": 1060})
    e = audit.entries(tmp_path)[-1]
    assert (e["action"], e["meaning"], e["user"], e["role"]) == ("recalibration", "recalibrated", "300", "technician")
    assert e["old_value"] == '{"fx":1000}' and e["new_value"] == '{"fx":1060}'
    with pytest.raises(AuthError):
        store.sign(tech, "9999", "recalibrated", "recalibration")
    assert actions(tmp_path)[-1][0] == "signature_failed"


def test_the_policy_comes_from_the_security_table():
    p = Policy.from_config(default_config())
    assert p.require_sign_in and p.idle_lock_minutes == 15 and p.max_failures == 5 and p.lockout_minutes == 15
