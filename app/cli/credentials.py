"""Credentials on the command line: commands that change what the station trusts ask who is doing it.

``require(args, permission, meaning)`` is called by a command before it exports, changes references or
imports models. The badge comes from ``--badge`` (or a prompt), the PIN from the ``INSPECTION_STATION_PIN``
environment variable or a hidden prompt, never from the command line, where other users could read it.
A station that has no users yet is not secured: the command runs, and the audit trail says it ran
unsigned.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from typing import Any, NoReturn, Sequence

from app.cli.common import UserError, data_dir
from engine.security.auth import (
    AuthStore,
    PermissionDenied,
    Policy,
    Session,
    describe_permission,
    required_role,
    unsecured_session,
)
from engine.core.config import station_id

PIN_ENV = "INSPECTION_STATION_PIN"
NEW_PIN_ENV = "INSPECTION_STATION_NEW_PIN"

# An option that would carry a secret (``--pin 1234``, ``--pin=1234``, ``--new-pin``, ``--password``…).
SECRET_OPTION = re.compile(r"-{1,2}(pin|new[-_]?pin|pass(word|wd|code)?|secret)", re.IGNORECASE)
PIN_LIKE = re.compile(r"\d{4,12}\Z")  # the shape of a PIN (check_pin_format): never echoed in a usage error
PIN_ON_COMMAND_LINE = (f"a PIN is never given on the command line, where other users can read it: set {PIN_ENV} "
                       f"(for a new user's PIN, {NEW_PIN_ENV}) or type it at the prompt")


def _secrets_in(argv: Sequence[str]) -> set[str]:
    """Tokens of ``argv`` that may be a PIN: anything after a secret option, and anything shaped like a PIN."""
    out: set[str] = set()
    after_secret = False
    for tok in argv:
        if after_secret and tok:
            out.add(tok)
        m = SECRET_OPTION.match(tok)
        after_secret = m is not None
        if m and tok[m.end():].lstrip("="):
            out.add(tok[m.end():].lstrip("="))  # --pin=1234, --pin1234
        if PIN_LIKE.match(tok):
            out.add(tok)
    return out


class CommandLineParser(argparse.ArgumentParser):
    """An argument parser that never prints a PIN back.

    A secret-looking option (``--pin``…) is refused before parsing, in one sentence that repeats nothing of
    what was typed; any other usage error has every PIN-shaped token of the command line masked.
    Sub-command parsers are of this class too (argparse makes them of their parent's class).
    """

    _secrets: set[str] = set()

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None):  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        self._secrets = _secrets_in(argv)
        for tok in argv:
            if tok == "--":
                break
            if SECRET_OPTION.match(tok):
                self.error(PIN_ON_COMMAND_LINE)
        return super().parse_known_args(argv, namespace)

    def error(self, message: str) -> NoReturn:
        for secret in sorted(self._secrets, key=len, reverse=True):
            message = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", "****", message)
        super().error(message)


def store_for(args: argparse.Namespace, config: dict[str, Any] | None) -> AuthStore:
    return AuthStore(data_dir(args), Policy.from_config(config), station=station_id(config or {}))


def read_pin(prompt: str = "PIN: ", env: str = PIN_ENV) -> str:
    pin = os.environ.get(env)
    if pin:
        return pin
    if not sys.stdin.isatty():
        raise UserError(f"no PIN: set {env} or run the command in a terminal to be asked for it")
    return getpass.getpass(prompt)


def require(args: argparse.Namespace, permission: str, meaning: str, config: dict[str, Any] | None = None,
            action: str | None = None, obj: str = "") -> Session:
    """The session of whoever signs for this command; :class:`UserError` if they may not.

    ``permission``: e.g. ``"export"``, ``"references"``, ``"models"``. ``meaning``: what the signature means
    (``"approved"``, ``"reviewed"``, ``"recalibrated"``). The signature (or the refusal) is in the audit trail.
    """
    store = store_for(args, config)
    what = action or getattr(args, "command", None) or permission
    if not store.has_users():
        session = unsecured_session()
        store.log(what, session, obj=obj, meaning=meaning,
                  reason=f"station not secured (no users yet): {describe_permission(permission).lower()} "
                         "allowed without sign-in")
        _settings(args, config, session)
        return session
    badge = getattr(args, "badge", None)
    role = required_role(permission)
    if not badge:
        if not sys.stdin.isatty():
            raise UserError(f"{describe_permission(permission)} needs {role} credentials: give --badge, with the PIN "
                            f"in {PIN_ENV} or typed at the prompt")
        badge = input(f"{role.capitalize()} badge: ").strip()
    pin = read_pin(f"PIN for badge {badge}: ")
    session = None
    try:
        session = store.authenticate(badge, pin, action="signature", meaning=meaning, obj=obj or what,
                                     reason=f"for {what}")
        session.require(permission)
    except PermissionDenied as e:  # a failed sign-in is logged by authenticate itself
        store.log(f"{what}_refused", session, obj=obj or what, reason=str(e), meaning=meaning)
        raise
    _settings(args, config, session)
    return session


def _settings(args: argparse.Namespace, config: dict[str, Any] | None, session: Session) -> None:
    """Settings edited in the config file since the trail last saw them go in before the signed command."""
    if config is not None:
        from engine.security.audit import record_settings

        record_settings(data_dir(args), config, station_id(config), user=session.badge, role=session.role)
