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
import sys
from typing import Any

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
