"""``inspection-station bundle verify|merge``: check a feedback bundle; join bundles from several stations."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.cli.common import UserError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    b = sub.add_parser("bundle", parents=[common], help="verify a feedback bundle, merge bundles")
    bsub = b.add_subparsers(dest="bundle_command", metavar="ACTION", required=True)
    v = bsub.add_parser("verify", parents=[common],
                        help="check every file against SHA256SUMS: changed, missing or extra files")
    v.add_argument("path", type=Path, help="a bundle folder or ZIP file")
    v.set_defaults(func=verify)
    m = bsub.add_parser("merge", parents=[common],
                        help="merge bundles from several stations, each image once (by content hash)")
    m.add_argument("inputs", type=Path, nargs="+", metavar="BUNDLE", help="two or more bundles (folders or ZIPs)")
    m.add_argument("--out", type=Path, required=True, metavar="PATH", help="the merged bundle; it must not exist")
    m.add_argument("--format", default="coco,yolo", metavar="F,...", help="coco, yolo (default: both)")
    m.add_argument("--zip", action="store_true", help="write one ZIP file instead of a folder")
    m.set_defaults(func=merge)


def verify(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.datasets.bundle import verify as check

    res = check(args.path, threads=int(config.get("export", {}).get("threads", 2)))
    for p in res.problems:
        print(p)
    if res.ok:
        print(f"{args.path}: intact, {res.checked} files match SHA256SUMS")
        return 0
    print(f"{args.path}: NOT intact, {len(res.problems)} problem{'s' if len(res.problems) != 1 else ''}")
    return 1


def merge(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.datasets.bundle import FORMATS, merge_bundles
    from engine.core.config import station_id

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UserError(f"unknown format {bad[0] if bad else args.format!r}; choose from {', '.join(FORMATS)}")
    from app.cli.credentials import require

    require(args, "export", "approved", config, action="bundle merge", obj=str(args.out))
    res = merge_bundles(list(args.inputs), args.out, station_id(config), formats, as_zip=args.zip,
                        threads=int(config.get("export", {}).get("threads", 2)))
    c = res.counts
    print(f"wrote {res.path}: {c['images']} images from {len(args.inputs)} bundles "
          f"({c['duplicate_images']} duplicates left out), {sum(c['boxes_by_class'].values())} boxes, "
          f"{c['decisions']} decisions in {res.seconds:.1f} s")
    return 0
