"""Users, roles and sign-in: who may do what at the station, with every attempt in the audit trail.

Roles build on each other; what each may do is data (:data:`PERMISSIONS`), so the window and the command
line gate their actions from the same table. A PIN is never stored: only a salted scrypt hash of it, with
the salt and cost parameters of that user's hash, compared in constant time. Repeated wrong PINs lock the
account for a while; every sign-in, failure, lock and change to a user goes into the audit trail in the
same transaction as the change itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.errors import StationError
from engine.security import audit
from engine.storage.db import DB_NAME, connect

ROLES = ("operator", "technician", "engineer", "admin")

_OPERATOR = frozenset({"review"})
_TECHNICIAN = _OPERATOR | {"recalibrate", "camera_settings"}
_ENGINEER = _TECHNICIAN | {"export", "references", "tolerances", "models", "agreement", "readiness"}
_ADMIN = _ENGINEER | {"users"}
PERMISSIONS: dict[str, frozenset[str]] = {"operator": _OPERATOR, "technician": frozenset(_TECHNICIAN),
                                          "engineer": frozenset(_ENGINEER), "admin": frozenset(_ADMIN)}
ALL_PERMISSIONS = frozenset(_ADMIN)
# What a signature means, as recorded with it.
MEANINGS = ("reviewed", "approved", "recalibrated", "authored", "verified")

# scrypt cost: 2^14 x 8 x 1 takes 16 MiB and some 50 ms, too slow to guess 4-8 digit PINs offline in bulk
# cheaply and quick enough at a shift change. Each user's hash keeps the parameters it was made with.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
PIN_RE = re.compile(r"^[0-9]{4,12}$")
BADGE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class AuthError(StationError):
    """Sign-in refused or a user cannot be changed; one sentence."""


class PermissionDenied(AuthError):
    """The signed-in user's role does not allow the action."""


def required_role(permission: str) -> str:
    """The least role that holds ``permission``."""
    for role in ROLES:
        if permission in PERMISSIONS[role]:
            return role
    raise KeyError(f"unknown permission {permission!r}")


def can(role: str | None, permission: str) -> bool:
    return role is not None and permission in PERMISSIONS.get(role, frozenset())


@dataclass(frozen=True)
class Policy:
    """Lock and lockout rules, from the ``[security]`` table of the configuration."""

    idle_lock_minutes: float = 15.0
    max_failures: int = 5
    lockout_minutes: float = 15.0
    require_sign_in: bool = True

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> Policy:
        s = (config or {}).get("security", {})
        return cls(idle_lock_minutes=float(s.get("idle_lock_minutes", cls.idle_lock_minutes)),
                   max_failures=max(1, int(s.get("max_failures", cls.max_failures))),
                   lockout_minutes=float(s.get("lockout_minutes", cls.lockout_minutes)),
                   require_sign_in=bool(s.get("require_sign_in", cls.require_sign_in)))


@dataclass
class Session:
    """A signed-in user. ``secured`` is false only on a station that has no users yet."""

    badge: str
    name: str
    role: str
    signed_in_at: float = field(default_factory=time.time)
    last_activity: float = field(default_factory=time.monotonic)
    secured: bool = True

    @property
    def permissions(self) -> frozenset[str]:
        return ALL_PERMISSIONS if not self.secured else PERMISSIONS.get(self.role, frozenset())

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise PermissionDenied(f"{describe_permission(permission)} needs the {required_role(permission)} role; "
                                   f"{self.name or self.badge} is signed in as {self.role}")

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def idle_s(self) -> float:
        return time.monotonic() - self.last_activity


UNSECURED = "unsecured"


def unsecured_session() -> Session:
    """The session of a station with no users yet: everything allowed, recorded as such."""
    return Session("", "", UNSECURED, secured=False)


_DESCRIPTIONS = {"review": "Reviewing detections", "recalibrate": "Recalibration",
                 "camera_settings": "Changing camera and lighting settings", "export": "Exporting data",
                 "references": "Changing drift references", "tolerances": "Changing tolerances",
                 "models": "Changing or importing models", "agreement": "Agreement studies",
                 "readiness": "Data readiness", "users": "Managing users"}


def describe_permission(permission: str) -> str:
    return _DESCRIPTIONS.get(permission, permission.replace("_", " ").capitalize())


def hash_pin(pin: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=128 * r * n * p + 2**20,
                          dklen=32).hex()


def check_pin_format(pin: str) -> None:
    if not PIN_RE.match(pin or ""):
        raise AuthError("a PIN is 4 to 12 digits")


def check_badge_format(badge: str) -> None:
    if not BADGE_RE.match(badge or ""):
        raise AuthError("a badge id is 1 to 64 letters, digits, dots, dashes or underscores")


class AuthStore:
    """The ``users`` table of the station's database and the sign-in rules over it."""

    def __init__(self, data_dir: Path, policy: Policy | None = None, station: str = "",
                 clock: Any = time.time) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.policy = policy or Policy()
        self.station = station
        self.clock = clock  # wall clock, replaceable in tests of the lockout

    def _db(self) -> Any:
        return connect(self.path)

    def _write(self, work: Any) -> Any:
        """Run ``work(db)`` in one write transaction; the audit entries it appends commit with it."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                out = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return out
        except sqlite3.Error as e:
            raise AuthError(f"the user store in {self.data_dir} cannot be written: {e}") from None
        finally:
            db.conn.close()

    def _audit(self, db: Any, action: str, who: Session | None, **kw: Any) -> int:
        if who is not None:
            kw.setdefault("user", who.badge)
            kw.setdefault("user_name", who.name)
            kw.setdefault("role", who.role)
        return audit.append(db, action, station=self.station, now=self.clock(), **kw)

    # ------------------------------------------------------------------ users

    def has_users(self) -> bool:
        db = self._db()
        try:
            return db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None
        finally:
            db.conn.close()

    def list_users(self) -> list[dict[str, Any]]:
        db = self._db()
        try:
            cur = db.execute("SELECT badge, name, role, active, failures, locked_until, created, created_by"
                             " FROM users ORDER BY badge")
            names = [c[0] for c in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            db.conn.close()

    def user(self, badge: str) -> dict[str, Any] | None:
        return next((u for u in self.list_users() if u["badge"] == badge), None)

    def add_user(self, badge: str, name: str, role: str, pin: str, by: Session | None) -> Session | None:
        """Add a user. ``by`` must hold ``users``, except for the first user of a station, who must be an
        admin. Returns the new user's session when it was the first admin (signed in at once)."""
        check_badge_format(badge)
        check_pin_format(pin)
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        name = (name or badge).strip()
        salt = os.urandom(SALT_BYTES)
        pin_hash = hash_pin(pin, salt)

        def work(db: Any) -> bool:
            first = db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is None
            if first and role != "admin":
                raise AuthError("the station has no users yet: the first user must be an admin")
            if not first:
                if by is None or not by.secured:
                    raise PermissionDenied("adding a user needs an admin's sign-in")
                by.require("users")
            if db.execute("SELECT 1 FROM users WHERE badge = ?", [badge]).fetchone() is not None:
                raise AuthError(f"badge {badge} is already a user")
            db.execute("INSERT INTO users (badge, name, role, salt, pin_hash, scrypt_n, scrypt_r, scrypt_p, active,"
                       " failures, locked_until, created, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 0, 0, ?, ?)",
                       [badge, name, role, salt.hex(), pin_hash, SCRYPT_N, SCRYPT_R, SCRYPT_P, self.clock(),
                        by.badge if by is not None and by.secured else badge])
            self._audit(db, "user_added", by if not first else Session(badge, name, role), obj=f"user {badge}",
                        new={"badge": badge, "name": name, "role": role},
                        reason="first administrator of the station" if first else "")
            if first:
                self._audit(db, "sign_in", Session(badge, name, role), obj=f"user {badge}",
                            reason="first administrator")
            return first

        first = self._write(work)
        return Session(badge, name, role) if first else None

    def disable(self, badge: str, by: Session, reason: str = "") -> None:
        def work(db: Any) -> None:
            by.require("users")
            row = db.execute("SELECT role, active FROM users WHERE badge = ?", [badge]).fetchone()
            if row is None:
                raise AuthError(f"there is no user with badge {badge}")
            if not row[1]:
                raise AuthError(f"user {badge} is already disabled")
            if row[0] == "admin":
                admins = db.execute("SELECT count(*) FROM users WHERE role = 'admin' AND active = 1").fetchone()[0]
                if admins <= 1:
                    raise AuthError(f"user {badge} is the last active admin and cannot be disabled")
            db.execute("UPDATE users SET active = 0 WHERE badge = ?", [badge])
            self._audit(db, "user_disabled", by, obj=f"user {badge}", old="active", new="disabled", reason=reason)

        self._write(work)

    def unlock(self, badge: str, by: Session, reason: str = "") -> None:
        def work(db: Any) -> None:
            by.require("users")
            if db.execute("SELECT 1 FROM users WHERE badge = ?", [badge]).fetchone() is None:
                raise AuthError(f"there is no user with badge {badge}")
            db.execute("UPDATE users SET failures = 0, locked_until = 0 WHERE badge = ?", [badge])
            self._audit(db, "user_unlocked", by, obj=f"user {badge}", reason=reason)

        self._write(work)

    # ------------------------------------------------------------------ sign-in and signatures

    def authenticate(self, badge: str, pin: str, action: str = "sign_in", meaning: str = "", obj: str = "",
                     reason: str = "", model_version: str = "") -> Session:
        """Check a badge and PIN; a session, or :class:`AuthError` with the reason. Either way it is logged.

        ``action`` names what the credentials were given for (``sign_in``, ``switch_user``, ``unlock``,
        ``signature``, or a command); ``meaning`` is the meaning of a signature (reviewed, approved, ...).
        """
        badge = (badge or "").strip()
        pin = pin or ""
        # Hash before taking the write lock, so one slow scrypt never holds other writers up.
        row = self._user_row(badge)
        matches = False
        if row is not None:
            try:
                matches = hmac.compare_digest(hash_pin(pin, bytes.fromhex(row["salt"]), row["scrypt_n"],
                                                       row["scrypt_r"], row["scrypt_p"]), row["pin_hash"])
            except (ValueError, TypeError):
                matches = False
        else:
            hash_pin(pin, b"\0" * SALT_BYTES)  # the same time for an unknown badge as for a wrong PIN

        def work(db: Any) -> Session:
            now = self.clock()
            r = db.execute("SELECT name, role, active, failures, locked_until FROM users WHERE badge = ?",
                           [badge]).fetchone()
            extra = {"obj": obj or f"user {badge}", "meaning": meaning, "model_version": model_version}
            if r is None:
                self._audit(db, f"{action}_failed", None, user=badge, reason="unknown badge", **extra)
                return AuthError("unknown badge or wrong PIN")  # type: ignore[return-value]
            name, role, active, failures, locked_until = r
            who = Session(badge, name, role)
            if not active:
                self._audit(db, f"{action}_failed", who, reason="account disabled", **extra)
                return AuthError(f"the account of badge {badge} is disabled")  # type: ignore[return-value]
            if locked_until and now < locked_until:
                self._audit(db, f"{action}_failed", who, reason="account locked", **extra)
                return AuthError(f"badge {badge} is locked after repeated wrong PINs; try again in "  # type: ignore
                                 f"{_minutes(locked_until - now)} or ask an admin")
            if not matches:
                failures = int(failures) + 1
                lock = failures >= self.policy.max_failures
                db.execute("UPDATE users SET failures = ?, locked_until = ? WHERE badge = ?",
                           [0 if lock else failures, now + self.policy.lockout_minutes * 60.0 if lock else 0, badge])
                self._audit(db, f"{action}_failed", who, reason=f"wrong PIN ({failures} of "
                                                                 f"{self.policy.max_failures})", **extra)
                if lock:
                    self._audit(db, "account_locked", who, obj=f"user {badge}",
                                reason=f"{failures} wrong PINs in a row; locked for "
                                       f"{_minutes(self.policy.lockout_minutes * 60.0)}")
                    return AuthError(f"wrong PIN; badge {badge} is now locked for "  # type: ignore[return-value]
                                     f"{_minutes(self.policy.lockout_minutes * 60.0)}")
                return AuthError("unknown badge or wrong PIN")  # type: ignore[return-value]
            db.execute("UPDATE users SET failures = 0, locked_until = 0 WHERE badge = ?", [badge])
            self._audit(db, action, who, reason=reason, **extra)
            return who

        out = self._write(work)
        if isinstance(out, AuthError):
            raise out  # raised after the commit, so the failure is logged
        return out

    def _user_row(self, badge: str) -> dict[str, Any] | None:
        db = self._db()
        try:
            cur = db.execute("SELECT salt, pin_hash, scrypt_n, scrypt_r, scrypt_p FROM users WHERE badge = ?", [badge])
            r = cur.fetchone()
            return dict(zip([c[0] for c in cur.description], r)) if r is not None else None
        finally:
            db.conn.close()

    def sign(self, session: Session, pin: str, meaning: str, action: str, obj: str = "", old: Any = None,
             new: Any = None, reason: str = "", model_version: str = "") -> None:
        """An electronic signature: the signed-in user enters the PIN again for a critical action.

        Records ``action`` with the meaning of the signature (reviewed, approved, recalibrated, ...), the old
        and new value; a wrong PIN is refused, logged and counts towards the lockout.
        """
        if not session.secured:
            self.log(action, session, obj=obj, old=old, new=new, reason=reason or "station not secured: no users yet",
                     meaning=meaning, model_version=model_version)
            return
        signer = self.authenticate(session.badge, pin, action="signature", meaning=meaning, obj=obj or action,
                                   reason=f"for {action}")
        self.log(action, signer, obj=obj, old=old, new=new, reason=reason, meaning=meaning,
                 model_version=model_version)

    def log(self, action: str, who: Session | None, **kw: Any) -> int:
        """One audit entry for something a user did (a lock, a switch, a setting changed)."""
        return self._write(lambda db: self._audit(db, action, who, **kw))


def _minutes(seconds: float) -> str:
    m = max(1, round(seconds / 60.0))
    return f"{m} minute{'s' if m != 1 else ''}"
