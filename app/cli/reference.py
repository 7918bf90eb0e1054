"""``inspection-station reference build|show``: the baselines drift is measured against."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli.common import UserError, positive_int


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser("reference", parents=[common], help="build or show a drift reference")
    rsub = r.add_subparsers(dest="reference_command", metavar="ACTION", required=True)
    b = rsub.add_parser("build", parents=[common], help="build a reference from a source or a folder of images")
    b.add_argument("--source", required=True, help="sim://..., folder://PATH of training images, a video...")
    b.add_argument("--frames", type=positive_int, default=1000, help="frames to use (default 1000)")
    b.add_argument("--out", type=Path, required=True, help="the reference file to write (.npz)")
    b.add_argument("--model", help="detector whose embeddings go in (default: the built-in model)")
    b.add_argument("--no-embeddings", action="store_true", help="statistics only, no detector")
    b.set_defaults(func=build)
    s = rsub.add_parser("show", parents=[common], help="summarise a reference file")
    s.add_argument("path", type=Path)
    s.set_defaults(func=show)


def build(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.monitoring.reference import Reference
    from engine.sources import SourceEnded, SourceError, open_source
    from engine.monitoring.stats import cpu_stats

    if args.out.exists():
        raise UserError(f"{args.out} already exists; choose another name or remove it")
    from app.cli.credentials import require, store_for

    session = require(args, "references", "authored", config, action="reference build", obj=str(args.out))
    detector = None
    if not args.no_embeddings:
        from engine.inference import ModelError, load_detector

        try:
            detector = load_detector(args.model)
        except ModelError as e:
            raise UserError(f"{e} (or use --no-embeddings)") from None
    source = open_source(args.source)
    source.open()
    tty = sys.stderr.isatty()

    def items():
        n = 0
        while n < args.frames:
            try:
                frame = source.read()
            except SourceEnded:
                return
            except SourceError as e:
                print(f"skipped: {e}", file=sys.stderr)
                continue
            emb = detector.detect([frame])[0].embedding if detector is not None else None
            if n == 0:
                meta.update(width=frame.width, height=frame.height)  # the frame size it is valid for
            n += 1
            yield cpu_stats(frame.as_order("BGR")), emb

    def progress(n: int) -> None:
        if n % 50 == 0 or n == args.frames:
            print(f"\r{n}/{args.frames} frames" if tty else f"{n}/{args.frames} frames", end="" if tty else "\n",
                  file=sys.stderr, flush=True)

    meta = {"source": source.describe(), "detector": detector.name if detector else None,
            "detector_sha256": getattr(detector, "sha256", None) if detector else None}
    try:
        ref = Reference.build(items(), meta, progress)
    finally:
        source.close()
        if tty:
            print(file=sys.stderr)
    try:
        path = ref.save(args.out)
    except OSError as e:
        raise UserError(f"cannot write {args.out}: {e.strerror}") from None
    store_for(args, config).log("reference_built", session, obj=str(path), new={"reference_id": ref.id,
                                "frames": ref.frames, "source": meta["source"]}, meaning="authored")
    print(f"reference {ref.id} written to {path} ({ref.frames} frames"
          f"{', with embeddings' if ref.embedding is not None else ''})")
    return 0


def show(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.monitoring.reference import Reference, dumps_summary

    print(dumps_summary(Reference.load(args.path)), end="")
    return 0
