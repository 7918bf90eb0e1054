"""``inspection-station audit verify|export|anchor``: check the audit trail's hash chain (against anchors kept
outside the database), print a record of it, write its head to a file kept elsewhere."""

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
    v.add_argument("--anchor", type=Path, action="append", default=[], metavar="FILE",
                   help="an anchor written by 'audit anchor' (repeatable): the trail must still hold its head, or "
                        "it was cut short or re-chained")
    v.set_defaults(func=verify)
    n = asub.add_parser("anchor", parents=[common],
                        help="write the chain's head (entries, last id, hash, time, station) to a file to keep "
                             "elsewhere, and to the system journal when there is one")
    n.add_argument("--out", type=Path, required=True, help="the JSON file to write (replaced atomically)")
    n.add_argument("--json", action="store_true", help="print the head as one JSON object")
    n.set_defaults(func=anchor)
    e = asub.add_parser("export", parents=[common], help="write the whole trail as printable HTML or CSV "
                                                         "(needs engineer credentials)")
    e.add_argument("--out", type=Path, required=True, help="file to write (.html, or .csv for CSV)")
    e.add_argument("--format", choices=("html", "csv"), default=None, help="default: from the file's suffix")
    e.set_defaults(func=export)


def verify(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.security import anchor

    anchors = [(str(p), anchor.load(p.expanduser())) for p in args.anchor]  # a bad file: one sentence, exit 2
    v = anchor.verify(data_dir(args), anchors)
    if args.json:
        print(json.dumps({"ok": v.ok, "entries": v.entries, "broken_entry": v.broken_id, "reason": v.reason,
                          "head": v.head, "anchors": len(anchors)}))
    elif v.ok and anchors:
        print(f"{v.sentence()}; it holds the head of every anchor given ({len(anchors)})")
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


def anchor(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.core.config import station_id
    from engine.security import anchor as anchors
    from engine.security.audit import verify as check

    out: Path = args.out.expanduser()
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist")
    if out.is_dir():
        raise UserError(f"{out} is a folder; name the anchor file")
    v = check(data_dir(args))
    if not v.ok:
        print(f"{v.sentence()}; no anchor was written (an anchor of a broken trail would vouch for it)")
        return 1
    head = anchors.head(data_dir(args), station_id(config))
    if head is None:
        raise UserError(f"there is no audit trail in {data_dir(args)} yet, so there is nothing to anchor")
    try:
        anchors.write(out, head)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    where = anchors.journal(head)
    if args.json:
        print(json.dumps({**head.to_dict(), "file": str(out), "journal": where or None}))
    else:
        print(f"anchored entry {head.last_id} of {head.entries} (SHA-256 {head.hash[:16]}) in {out}; "
              + (f"also in the system journal ({where})" if where else "no system journal on this machine"))
    return 0
