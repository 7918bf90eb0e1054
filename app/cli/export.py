"""``inspection-station export``: a feedback bundle for retraining from the stored decisions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli.common import WHEN_HELP, UserError, data_dir, fraction, when


def _list(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    e = sub.add_parser(
        "export", parents=[common], help="write a feedback bundle for retraining (images, COCO, YOLO, decisions)",
        description="Write the reviewed frames, their corrected truth, the model's predictions, every decision, "
                    "the drift statistics and events of the period as one bundle, with a manifest and SHA256SUMS. "
                    "Times are on the frames' source clock: " + WHEN_HELP
                    + "; --since is inclusive, --until exclusive.")
    e.add_argument("--out", type=Path, required=True, metavar="PATH",
                   help="the bundle folder to create (with --zip: the ZIP file); it must not exist")
    e.add_argument("--since", metavar="T", help="frames from this time on")
    e.add_argument("--until", metavar="T", help="frames before this time")
    e.add_argument("--kinds", type=_list, metavar="K,...",
                   help="fp (a rejected detection), fn (a missed defect), confirmed, unsure (default: all four)")
    e.add_argument("--classes", type=_list, metavar="C,...", help="only these defect classes (default: all)")
    e.add_argument("--format", type=_list, metavar="F,...", help="coco, yolo (default: both)")
    e.add_argument("--replay-share", type=fraction, metavar="X",
                   help="confirmed-correct frames added as replay, as a share of the chosen frames "
                        "(default: [export] replay_share)")
    e.add_argument("--zip", action="store_true", help="write one ZIP file instead of a folder")
    e.set_defaults(func=export)


def options_from(args: argparse.Namespace, config: dict[str, Any]) -> Any:
    from engine.core.errors import StationError
    from engine.datasets.bundle import FORMATS, KINDS, ExportOptions

    from engine.datasets.bundle.splits import SplitRule

    cfg = config.get("export", {})
    try:
        return ExportOptions(split=SplitRule.from_config(cfg), since=when(args.since), until=when(args.until, "--until"), kinds=args.kinds or KINDS,
                             classes=args.classes or None, formats=args.format or FORMATS,
                             replay_share=args.replay_share if args.replay_share is not None
                             else float(cfg.get("replay_share", 0.1)),
                             replay_seed=int(cfg.get("replay_seed", 0)), zip=args.zip)
    except StationError as e:
        raise UserError(str(e)) from None


def export(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from app.cli.credentials import require, store_for
    from engine.datasets.bundle import BundleError, export_bundle
    from engine.core.config import station_id

    options = options_from(args, config)
    session = require(args, "export", "approved", config, action="export", obj=str(args.out))
    cfg = config.get("export", {})
    tty = sys.stderr.isatty()

    def progress(done: int, total: int, stage: str) -> None:
        if tty:
            print(f"\r{stage:<12} {done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        res = export_bundle(data_dir(args), args.out, options, station_id(config), progress=progress,
                            threads=int(cfg.get("threads", 2)), link_images=bool(cfg.get("link_images", False)))
    except BundleError as e:
        raise UserError(str(e)) from None
    finally:
        if tty:
            print(file=sys.stderr)
    c = res.counts
    store_for(args, config).log("exported", session, obj=str(res.path),
                                new={"images": c["images"], "decisions": c["decisions"]})
    kinds = ", ".join(f"{k} {v}" for k, v in c["by_kind"].items())
    print(f"wrote {res.path}: {c['images']} images ({kinds}), {sum(c['boxes_by_class'].values())} boxes, "
          f"{c['predictions']} predictions, {c['decisions']} decisions in {res.seconds:.1f} s")
    sp = c.get("splits", {})
    if sp:
        print("split by time: " + ", ".join(f"{s} {sp[s]}" for s in ("train", "val", "test"))
              + (f" ({c['splits_note']})" if c.get("splits_note") else ""))
    return 0
