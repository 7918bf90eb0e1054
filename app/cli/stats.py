"""``inspection-station stats IMAGE...``: the optical-health statistics of image files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.cli.common import UserError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("stats", parents=[common], help="statistics of image files (brightness, colour, focus...)")
    s.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    s.add_argument("--json", action="store_true", help="one JSON object per image, keyed by file name")
    s.set_defaults(func=run)


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    import cv2

    from engine.core.frame import as_frame_image
    from engine.monitoring.stats import SCALARS, cpu_stats

    results: dict[str, Any] = {}
    for path in args.images:
        if not path.is_file():
            raise UserError(f"image {path} does not exist")
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise UserError(f"{path} is not an image OpenCV can read")
        try:
            st = cpu_stats(as_frame_image(image))
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
        rec = st.to_record()
        rec["histogram_luma"] = [int(v) for v in st.hist[0]]
        results[str(path)] = rec
    if args.json:
        print(json.dumps(results if len(results) > 1 else next(iter(results.values())), indent=1))
        return 0
    names = list(results)
    print(f"{'statistic':<14}" + "".join(f"{Path(n).name[:16]:>18}" for n in names))
    for k in SCALARS:
        print(f"{k:<14}" + "".join(f"{results[n][k]:>18.4f}" for n in names))
    return 0
