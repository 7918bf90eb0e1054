"""``inspection-station audit verify|export``: check the audit trail's hash chain, print a record of it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.cli.credentials import require, store_for
from app.cli.common import UserError, data_dir


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    a = sub.add_parser("audit", parents=[common], help="verify the audit trail or export a printable record of it")
    asub = a.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = asub.add_parser("verify", parents=[common],
                        help="check every entry's hash and link, and every decision against its entry "
                             "(exit status 1 when broken, naming the first broken entry)")
    v.add_argument("--json", action="store_true", help="the outcome as one JSON object")
    v.set_defaults(func=verify)
    e = asub.add_parser("export", parents=[common], help="write the whole trail as printable HTML or CSV "
                                                         "(needs engineer credentials)")
    e.add_argument("--out", type=Path, required=True, help="file to write (.html, or .csv for CSV)")
    e.add_argument("--format", choices=("html", "csv"), default=None, help="default: from the file's suffix")
    e.set_defaults(func=export)


def verify(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.security.audit import verify as check

    v = check(data_dir(args))
    if args.json:
        print(json.dumps({"ok": v.ok, "entries": v.entries, "broken_entry": v.broken_id, "reason": v.reason,
                          "head": v.head}))
    else:
        print(v.sentence())
    return 0 if v.ok else 1


def export(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.security.audit import export as write

    out: Path = args.out.expanduser()
    if out.exists():
        raise UserError(f"{out} already exists; choose another name or remove it")
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist")
    session = require(args, "export", "approved", config, action="audit export", obj=str(out))
    try:
        v = write(data_dir(args), out, args.format, generated_by=session.name or session.badge or "unsigned")
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror}") from None
    store_for(args, config).log("audit_exported", session, obj=str(out), new={"entries": v.entries, "ok": v.ok})
    print(f"{v.entries} entries written to {out}; {v.sentence()}")
    return 0 if v.ok else 1
