"""``inspection-station users add|list|disable|unlock``: who may use the station, and in which role.

All of it needs an admin's credentials (``--badge`` and the PIN), except the very first ``users add`` on a
station with no users, which creates its first admin. A new user's PIN is read from
``INSPECTION_STATION_NEW_PIN`` or asked twice at a hidden prompt, never given on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from app.cli.credentials import NEW_PIN_ENV, read_pin, require, store_for
from app.cli.common import UserError
from engine.security.auth import ROLES, check_pin_format


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    u = sub.add_parser("users", parents=[common], help="add, list, disable or unlock the station's users (admin)")
    usub = u.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    a = usub.add_parser("add", parents=[common],
                        help="add a user (the first user of a station is its first admin and needs no sign-in)")
    a.add_argument("new_badge", metavar="BADGE", help="the new user's badge id")
    a.add_argument("--name", default="", help="the user's full name (default: the badge id)")
    a.add_argument("--role", choices=ROLES, default=None,
                   help="operator, technician, engineer or admin (default: admin for the first user, else operator)")
    a.set_defaults(func=add)
    ls = usub.add_parser("list", parents=[common], help="list the users, their roles and whether they are locked")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    ls.set_defaults(func=list_users)
    d = usub.add_parser("disable", parents=[common], help="disable a user (kept in the records, cannot sign in)")
    d.add_argument("target", metavar="BADGE")
    d.add_argument("--reason", default="", help="why, for the audit trail")
    d.set_defaults(func=disable)
    k = usub.add_parser("unlock", parents=[common], help="lift the lockout after repeated wrong PINs")
    k.add_argument("target", metavar="BADGE")
    k.add_argument("--reason", default="", help="why, for the audit trail")
    k.set_defaults(func=unlock)


def _new_pin(badge: str) -> str:
    pin = os.environ.get(NEW_PIN_ENV)
    if not pin:
        if not sys.stdin.isatty():
            raise UserError(f"no PIN for the new user: set {NEW_PIN_ENV} or run the command in a terminal")
        pin = read_pin(f"New PIN for {badge} (4-12 digits): ", env="")
        if read_pin("The same PIN again: ", env="") != pin:
            raise UserError("the two PINs differ")
    check_pin_format(pin)
    return pin


def add(args: argparse.Namespace, config: dict[str, Any]) -> int:
    store = store_for(args, config)
    first = not store.has_users()
    role = args.role or ("admin" if first else "operator")
    if first and role != "admin":
        raise UserError("the station has no users yet: the first user must be an admin (--role admin)")
    by = None if first else require(args, "users", "approved", config, action="users add", obj=f"user {args.new_badge}")
    pin = _new_pin(args.new_badge)
    store.add_user(args.new_badge, args.name, role, pin, by)
    print(f"user {args.new_badge} added as {role}" + (" (the station's first admin)" if first else ""))
    return 0


def list_users(args: argparse.Namespace, config: dict[str, Any]) -> int:
    store = store_for(args, config)
    if store.has_users():
        require(args, "users", "reviewed", config, action="users list")
    rows = store.list_users()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no users yet: the first 'users add BADGE' creates the station's first admin")
        return 0
    import time

    now = time.time()
    print(f"{'badge':<16} {'role':<11} {'state':<18} name")
    for r in rows:
        state = "disabled" if not r["active"] else ("locked" if r["locked_until"] > now else "active")
        print(f"{r['badge']:<16} {r['role']:<11} {state:<18} {r['name']}")
    return 0


def disable(args: argparse.Namespace, config: dict[str, Any]) -> int:
    by = require(args, "users", "approved", config, action="users disable", obj=f"user {args.target}")
    store_for(args, config).disable(args.target, by, args.reason)
    print(f"user {args.target} disabled")
    return 0


def unlock(args: argparse.Namespace, config: dict[str, Any]) -> int:
    by = require(args, "users", "approved", config, action="users unlock", obj=f"user {args.target}")
    store_for(args, config).unlock(args.target, by, args.reason)
    print(f"user {args.target} unlocked")
    return 0
