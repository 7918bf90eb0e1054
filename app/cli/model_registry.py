"""``inspection-station model list|add|promote|rollback|challenge``: the station's models, the champion it runs,
and the evidence for replacing it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.cli.common import UserError, data_dir, positive_int


def register(msub: Any, common: argparse.ArgumentParser) -> None:
    lst = msub.add_parser("list", parents=[common], help="the station's models: champion, challengers, retired")
    lst.add_argument("--json", action="store_true", help="as JSON")
    lst.set_defaults(func=list_models)
    a = msub.add_parser("add", parents=[common], help="register a model file as a challenger (proven first: loaded "
                                                      "and run on one frame)")
    a.add_argument("path", type=Path, help="M.pt with its card M.json, M.onnx, M.pt2 or a TorchScript file")
    a.set_defaults(func=add_model)
    p = msub.add_parser("promote", parents=[common], help="make a model the champion the station runs (signed by "
                                                          "an engineer)")
    p.add_argument("model", help="a registered name or SHA-256 prefix, 'builtin', or a model file (added first)")
    p.set_defaults(func=promote_model)
    r = msub.add_parser("rollback", parents=[common], help="the champion before this one runs again; this one is "
                                                           "retired (signed by an engineer)")
    r.set_defaults(func=rollback_model)
    c = msub.add_parser("challenge", parents=[common],
                        help="champion against a challenger on the golden set, the bundles' held-out frames and a "
                             "replay of the reference line, with bootstrap intervals and a verdict")
    c.add_argument("model", help="the challenger: a registered name or SHA-256 prefix, 'builtin', or a model file")
    c.add_argument("--json", action="store_true", help="every figure as JSON")
    c.add_argument("--report", type=Path, help="write the side-by-side HTML report here")
    c.add_argument("--frames", type=positive_int, default=60, help="replay frames per simulator seed (default 60)")
    c.add_argument("--seeds", default="0,1,2", help="simulator seeds of the replay (default 0,1,2)")
    c.add_argument("--bundle", type=Path, action="append", default=[],
                   help="a feedback bundle to take held-out frames from, besides those the station exported "
                        "(repeat for more)")
    c.add_argument("--margin", type=float, default=1.0,
                   help="F1 points the challenger may lose on the replay and still be promoted (default 1)")
    c.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples (default 1000)")
    c.add_argument("--block", type=positive_int, default=12,
                   help="the bundles' and the replay's frames are resampled in blocks of this many consecutive "
                        "frames, as a defect stays in view for several (default 12; 1: frame by frame)")
    c.set_defaults(func=challenge)


def _fail(e: Exception) -> UserError:
    return UserError(str(e))


def list_models(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.inference import registry

    try:
        rows = [e.summary() for e in registry.entries(data_dir(args))]
    except registry.RegistryError as e:
        raise _fail(e) from None
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        q = f"F1 {r['f1']:.3f}" if isinstance(r["f1"], (int, float)) else "no quality on its card"
        lineage = r["lineage"]
        line = f"{r['status']:<10} {r['name']:<16} {r['sha256'][:12]}  {r['title']}; {q}"
        if lineage:
            line += f"; lineage: {registry.lineage_text(lineage)}"
        print(line)
    return 0


def _resolve_or_add(args: argparse.Namespace, ref: str, who: str = "") -> Any:
    from engine.inference import ModelError, registry

    d = data_dir(args)
    try:
        entry = registry.resolve(d, ref)
        if entry is not None:
            return entry
        p = Path(ref).expanduser()
        if not p.exists():
            raise UserError(f"{ref} is neither a model in the registry (model list shows them) nor a model file")
        entry, new = registry.add(d, p, by=who)
        print(f"{'added' if new else 'already registered:'} {entry.name} ({entry.title}, sha256 "
              f"{entry.sha256[:12]}...)", file=sys.stderr)
        return entry
    except (registry.RegistryError, ModelError) as e:
        raise _fail(e) from None


def add_model(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.inference import ModelError, registry

    try:
        entry, new = registry.add(data_dir(args), args.path)
    except (registry.RegistryError, ModelError) as e:
        raise _fail(e) from None
    if not new:
        print(f"{args.path} is registered already as {entry.name} ({entry.status})")
        return 0
    print(f"added {entry.name} as a challenger: {entry.title}, sha256 {entry.sha256[:12]}..., classes "
          f"{', '.join(entry.card.get('classes') or [])}")
    return 0


def _audit(args: argparse.Namespace, config: dict[str, Any], session: Any, action: str, old: Any, new: Any) -> None:
    from app.cli.credentials import store_for

    store_for(args, config).log(action, session, obj="champion model",
                                old={"name": old.name, "sha256": old.sha256},
                                new={"name": new.name, "sha256": new.sha256}, meaning="approved",
                                model_version=new.sha256)


def promote_model(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from app.cli.credentials import require
    from engine.inference import registry

    entry = _resolve_or_add(args, args.model)
    session = require(args, "models", "approved", config, action="model promote", obj=entry.name)
    try:
        old, new = registry.promote(data_dir(args), entry.name)
    except registry.RegistryError as e:
        raise _fail(e) from None
    _audit(args, config, session, "model_promoted", old, new)
    print(f"{new.name} ({new.title}) is the champion; {old.name} is retired (model rollback brings it back)")
    return 0


def rollback_model(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from app.cli.credentials import require
    from engine.inference import registry

    try:
        current = registry.champion(data_dir(args))
    except registry.RegistryError as e:
        raise _fail(e) from None
    if current.name == registry.BUILTIN:
        raise UserError("the built-in model is the champion; there is no earlier champion to roll back to")
    session = require(args, "models", "approved", config, action="model rollback", obj=current.name)
    try:
        old, new = registry.rollback(data_dir(args))
    except registry.RegistryError as e:
        raise _fail(e) from None
    _audit(args, config, session, "model_rolled_back", old, new)
    print(f"{new.name} ({new.title}) is the champion again; {old.name} is retired")
    return 0


def challenge(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.inference import ModelError, registry
    from engine.inference.challenge import ChallengeOptions, run_challenge

    d = data_dir(args)
    entry = _resolve_or_add(args, args.model)
    if entry.status == "champion":
        raise UserError(f"{entry.name} is the champion; challenge it with another model")
    try:
        seeds = tuple(int(s) for s in str(args.seeds).split(",") if s.strip())
    except ValueError:
        raise UserError(f"--seeds takes numbers separated by commas, not {args.seeds!r}") from None
    if args.report is not None and not args.report.expanduser().parent.is_dir():
        raise UserError(f"folder {args.report.expanduser().parent} does not exist")
    opts = ChallengeOptions(frames=args.frames, seeds=seeds, bundles=tuple(b.expanduser() for b in args.bundle),
                            margin=args.margin / 100.0, resamples=args.resamples,
                            block=args.block)

    tty, last = sys.stderr.isatty(), [""]

    def progress(text: str) -> None:
        if tty:
            print(f"\r{text:<70}", end="", file=sys.stderr, flush=True)
        elif text.split(":")[0] != last[0]:  # a log: one line per stage
            last[0] = text.split(":")[0]
            print(text, file=sys.stderr, flush=True)

    try:
        result = run_challenge(d, registry.champion(d), entry, opts, progress=progress)
    except (registry.RegistryError, ModelError) as e:
        raise _fail(e) from None
    finally:
        if tty:
            print(file=sys.stderr)
    if args.report is not None:
        from engine.inference.challenge_report import write_report

        write_report(result, args.report.expanduser(), d, config)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        from engine.inference.challenge_report import text_summary

        print(text_summary(result))
        if args.report is not None:
            print(f"wrote {args.report}")
    return 0
