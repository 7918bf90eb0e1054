"""``inspection-station calibrate --images DIR --pattern 9x6 --square-mm S [--json]``: solve the lens
from a folder of images of a checkerboard (or ChArUco board) and compare it with the station's last
lens profile.

``calibrate --source URI --who NAME [--reason R] [--override STEP=TEXT]... [--keep-reference]`` runs the
whole recalibration without a window (the simulated line shows the target and the golden parts on
request; a camera must have them put in view) and commits it when every mandatory check passed or was
overridden."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.cli.common import UserError, data_dir, positive_float


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    c = sub.add_parser("calibrate", parents=[common],
                       help="solve the lens (intrinsics, distortion, scale) from images of a calibration target")
    what = c.add_mutually_exclusive_group(required=True)
    what.add_argument("--images", type=Path, help="a folder of images of the target in varied poses")
    what.add_argument("--source", help="run the whole recalibration headless on this source (sim://..., cam://0)")
    c.add_argument("--pattern", default=None, help="inner corners, columns x rows (default: [calibration] pattern)")
    c.add_argument("--square-mm", type=positive_float, default=None,
                   help="the side of one square in mm (default: [calibration] square_mm)")
    c.add_argument("--who", help="with --source: who recalibrates")
    c.add_argument("--reason", default="lens replacement", help="with --source: why (default: lens replacement)")
    c.add_argument("--note", default="", help="with --source: what was done")
    c.add_argument("--override", action="append", default=[], metavar="STEP=REASON",
                   help="with --source: let a failed check pass, with the written reason (repeatable)")
    c.add_argument("--keep-reference", action="store_true", help="with --source: keep the station reference")
    c.add_argument("--model", help="with --source: the model for the golden parts (default: the built-in model)")
    c.add_argument("--target", choices=("checkerboard", "charuco"), default=None,
                   help="the kind of target (default: [calibration] target)")
    c.add_argument("--min-views", type=int, default=None,
                   help="views the target must be found in (default: [calibration] min_views)")
    c.add_argument("--save", action="store_true",
                   help="keep the result as the station's newest lens profile in the data directory")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=run)


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.calibration.lens import Pattern, calibrate_images, compare_profiles, image_files
    from engine.calibration.recalibration import latest_lens_profile, save_lens_profile

    cal = config.get("calibration", {})
    if args.pattern is not None:
        cal["pattern"] = args.pattern
    if args.square_mm is not None:
        cal["square_mm"] = args.square_mm
    if args.target is not None:
        cal["target"] = args.target
    args.pattern, args.square_mm = cal.get("pattern", "9x6"), float(cal.get("square_mm", 8.0))
    args.target = cal.get("target", "checkerboard")
    if args.source or args.save:
        from app.cli.credentials import require

        # Solving a folder of images changes nothing; saving a lens profile or recalibrating does.
        require(args, "recalibrate", "recalibrated", config, action="calibrate",
                obj=str(args.source or args.images))
    if args.source:
        return run_headless(args, config)
    folder: Path = args.images
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    files = image_files(folder)
    if not files:
        raise UserError(f"there are no images (.png, .jpg, .bmp, .tif) in {folder}")
    pattern = Pattern.parse(args.pattern, args.square_mm, args.target)
    profile, info = calibrate_images(files, pattern, min_views=args.min_views or int(cal.get("min_views", 8)),
                                     working_distance_mm=float(cal.get("working_distance_mm", 300.0)) or None)
    profile.source = f"calibrate --images {folder}"
    ddir = data_dir(args)
    previous = latest_lens_profile(ddir)
    rows = compare_profiles(previous, profile)
    saved = None
    if args.save:
        saved = str(save_lens_profile(ddir, profile))
    if args.json:
        out = {**profile.to_dict(), "k1": profile.k1, **info, "compared_with": previous.created_utc if previous else None,
               "comparison": rows, "saved": saved}
        print(json.dumps(out, default=float))
        return 0
    print(f"{profile.views} views of the {pattern.describe()} ({len(info['skipped'])} images skipped); "
          f"coverage of the field {info['coverage']:.0%}")
    print(f"  focal length     fx {profile.fx:.2f} px, fy {profile.fy:.2f} px")
    print(f"  principal point  ({profile.cx:.2f}, {profile.cy:.2f}) px")
    print(f"  distortion       k1 {profile.k1:+.4f}, k2 {profile.dist[1]:+.4f}")
    print(f"  reprojection     {profile.rms_px:.3f} px RMS")
    if profile.mm_per_px:
        print(f"  scale            {profile.mm_per_px:.5f} mm/px at {profile.working_distance_mm:g} mm; "
              f"{profile.board_mm_per_px:.5f} mm/px on the target as held")
    if previous is not None:
        print(f"against the lens profile of {previous.created_utc}:")
        for r in rows:
            if r["delta"] is not None:
                rel = f" ({r['relative']:+.2%})" if r["relative"] is not None else ""
                print(f"  {r['label']:<28} {r['old']:.5g} -> {r['new']:.5g}{rel}")
    if saved:
        print(f"lens profile saved to {saved}")
    return 0


def run_headless(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Every step in order on ``--source``, overrides applied, then the commit; one JSON object or a summary."""
    from engine.inference import load_detector
    from engine.calibration.recalibration import (
        STEPS,
        Recalibration,
        RecalibrationError,
        load_references,
        run_step,
        simulated_nominal_profile,
    )
    from engine.sources import open_source

    if not args.who:
        raise UserError("say who recalibrates the station with --who NAME")
    overrides = {}
    for o in args.override:
        step, sep, text = o.partition("=")
        if not sep or step not in STEPS[1:-1]:
            raise UserError(f"--override {o!r} is not STEP=REASON with STEP one of {', '.join(STEPS[1:-1])}")
        overrides[step] = text
    ddir = data_dir(args)
    detector = load_detector(args.model)
    active, training, problems = load_references(config, ddir)
    source = open_source(args.source)
    source.open()
    try:
        first = source.read()
        s = Recalibration(ddir, config, detector, active, training,
                          simulated_nominal_profile(source, first.width, first.height), source.describe())
        s.set_reason(args.reason, args.who, args.note)
        settle = int(s.cal["settle_frames"])
        for step in STEPS[1:-1]:
            st = run_step(s, source, step, frames=2 * settle if step in ("focus", "exposure") else None)
            if not args.json:
                print(f"{st.title:<22} {st.status.upper():<5} {st.summary}")
        for step, text in overrides.items():
            s.override(step, text, args.who)
        result = s.commit(keep_reference=args.keep_reference)
    except ValueError as e:
        raise UserError(str(e)) from None
    finally:
        source.close()
    if args.json:
        print(json.dumps({"steps": [st.to_dict() for st in s.steps.values()], "problems": problems,
                          "report": str(result.report_path), "lens_profile": str(result.profile_path),
                          "reference": str(result.reference_path) if result.reference_path else None,
                          "reference_id": result.reference_id,
                          "campaign": str(result.campaign_path) if result.campaign_path else None}, default=str))
    else:
        for p in problems:
            print(f"note: {p}")
        print(f"committed: report {result.report_path}")
    return 0
