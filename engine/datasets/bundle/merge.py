"""``merge_bundles``: bundles from several stations as one, each image once.

Every input must verify first. Images are de-duplicated by their content hash (their file name): the first
bundle named that holds an image gives its annotations and predictions; later copies are counted in the
manifest (``counts.duplicate_images``) and left out. Classes are joined by name, in order of appearance.
Decisions, events and drift tables are joined with a ``station`` column in front. The merged bundle is
written like an export: to a temporary name, renamed when complete. The train, val and test splits are made
again over the merged frames, by time (:mod:`engine.datasets.bundle.splits`), so that no two bundles' splits
straddle each other; a box drawn twice in a frame is kept once.
"""

from __future__ import annotations

import csv
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from engine import __version__
from engine.datasets.bundle import formats as fm
from engine.datasets.bundle.check import BundleReader, verify
from engine.datasets.bundle.export import ExportResult, Progress, agreement_rows
from engine.core.timeparse import parse_time
from engine.datasets.bundle.selection import BundleError, FrameTruth, Label, agreement_summary, iso
from engine.datasets.bundle.splits import DUPLICATE_RULE, SplitRule, assign, dedupe, summary as split_summary
from engine.datasets.bundle.sink import Cancelled, Sink, os_sentence, remove_stale_partials


SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, csv.Error, RecursionError)


def _check_manifest(p: Path, m: dict[str, Any]) -> None:
    """The manifest fields a merge reads, each of the JSON type the exporter writes; BundleError otherwise."""
    def want(ok: bool, what: str) -> None:
        if not ok:
            raise BundleError(f"{p} has a manifest whose {what}; nothing was merged")

    want(isinstance(m.get("station_id", ""), (str, int)), "station_id is not a name")
    stations = m.get("stations", [])
    want(isinstance(stations, list) and all(isinstance(x, str) for x in stations), "stations are not a list of names")
    for key in ("models", "references"):
        items = m.get(key, [])
        want(isinstance(items, list) and all(isinstance(e, dict) for e in items), f"{key} are not a list of objects")
        want(all(isinstance(e.get("frames", 0), int) for e in items), f"{key} give frame counts that are not numbers")
    want(all("id" in e for e in m.get("references", [])), "references lack their id")
    for key in ("counts", "files"):
        want(isinstance(m.get(key, {}), dict), f"{key} is not an object")


def _check_image_name(p: Path, r: BundleReader, img: Any) -> str:
    """The image's content hash, when its ``file_name`` is exactly ``<sha256>.png`` and the bundle holds it."""
    if not isinstance(img, dict):
        raise TypeError(f"a COCO image is a {type(img).__name__}, not an object")
    name = img.get("file_name")
    sha = Path(name).stem if isinstance(name, str) else ""
    if not isinstance(name, str) or not SHA256_HEX.match(sha) or name != f"{sha}.png" \
            or not r.exists(fm.image_name(sha)):
        shown = str(name)[:80] if name is not None else "no file_name"
        raise BundleError(f"{p} names an image {shown!r} in its COCO file that is not one of its own images "
                          "(<sha256>.png in images/); nothing was merged")
    return sha


def _frame(img: dict[str, Any], anns: list[dict[str, Any]], preds: list[dict[str, Any]], names: dict[int, str]
           ) -> FrameTruth:
    def box(b: list[float]) -> tuple[float, float, float, float]:
        return (b[0], b[1], b[0] + b[2], b[1] + b[3])

    ts = img.get("timestamp")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        ts = parse_time(img["time_utc"]) if img.get("time_utc") else 0.0
    f = FrameTruth(0, Path(img["file_name"]).stem, int(img["width"]), int(img["height"]), img.get("source", ""),
                   int(img.get("sequence", 0)), float(ts),
                   img.get("model"), img.get("reference_id"),
                   bool(img.get("reviewed", True)))
    f.kinds = set(img.get("kinds", []))
    f.replay = "replay" in f.kinds
    f.truth = [Label(box(a["bbox"]), names[a["category_id"]], a.get("status", "confirmed")) for a in anns]
    f.predictions = [Label(box(p["bbox"]), names[p["category_id"]], "predicted", p.get("score")) for p in preds]
    f.truth, f.duplicates = dedupe(f.truth)
    return f


def merge_bundles(inputs: list[Path], out: Path, station: str, formats: tuple[str, ...] = ("coco", "yolo"),
                  as_zip: bool = False, rule: SplitRule = SplitRule(),
                  progress: Progress | None = None, cancel: threading.Event | Callable[[], bool] | None = None,
                  threads: int = 2) -> ExportResult:
    t0 = time.perf_counter()
    out = Path(out)
    if as_zip and out.suffix.lower() != ".zip":
        out = out.with_name(out.name + ".zip")
    if len(inputs) < 2:
        raise BundleError("name at least two bundles to merge")
    if out.exists():
        raise BundleError(f"{out} already exists; choose another name or remove it first")
    is_cancelled = (cancel.is_set if isinstance(cancel, threading.Event) else cancel) or (lambda: False)
    report = progress or (lambda d, t, s: None)
    readers: list[BundleReader] = []
    try:
        manifests = []
        for p in inputs:
            res = verify(Path(p), threads)
            if not res.ok:
                raise BundleError(f"{p} does not verify ({res.problems[0]}); nothing was merged")
            _check_manifest(Path(p), res.manifest)
            if not res.manifest.get("files", {}).get("coco_ground_truth"):
                raise BundleError(f"{p} has no COCO annotations; only bundles exported with the coco format merge")
            manifests.append(res.manifest)
            readers.append(BundleReader(Path(p)))
        classes: list[str] = []
        frames: list[FrameTruth] = []
        sources: list[tuple[str, Any, str]] = []
        stations: list[str] = []
        image_station: list[str] = []
        dup = 0
        seen: set[str] = set()
        decisions: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        minutes: list[dict[str, Any]] = []
        alarms: list[dict[str, Any]] = []
        models: dict[str, dict[str, Any]] = {}
        refs: dict[str, dict[str, Any]] = {}
        for r, m in zip(readers, manifests):
            try:
                sid = str(m.get("station_id", ""))
                stations.extend(s for s in m.get("stations", [sid]) if s not in stations)
                gt = r.json(fm.COCO_GT)
                preds = r.json(fm.COCO_PRED) if r.exists(fm.COCO_PRED) else []
                names = {c["id"]: c["name"] for c in gt["categories"]}
                if not all(isinstance(k, int) and isinstance(v, str) for k, v in names.items()):
                    raise TypeError("COCO categories must pair whole-number ids with names")
                classes.extend(n for n in names.values() if n not in classes)
                anns_by: dict[int, list[dict[str, Any]]] = {}
                for a in gt["annotations"]:
                    anns_by.setdefault(a["image_id"], []).append(a)
                preds_by: dict[int, list[dict[str, Any]]] = {}
                for p in preds:
                    preds_by.setdefault(p["image_id"], []).append(p)
                for img in gt["images"]:
                    sha = _check_image_name(Path(r.path), r, img)
                    if sha in seen:
                        dup += 1
                        continue
                    seen.add(sha)
                    frames.append(_frame(img, anns_by.get(img["id"], []), preds_by.get(img["id"], []), names))
                    image_station.append(img.get("station", sid))
                    sources.append((fm.image_name(sha), r.opener(fm.image_name(sha)), sha))
                for name, bucket in ((fm.DECISIONS_CSV, decisions), (fm.EVENTS_CSV, events),
                                     (fm.DRIFT_MINUTES_CSV, minutes), (fm.DRIFT_ALARMS_CSV, alarms)):
                    if r.exists(name):
                        bucket.extend({**row, "station": row.get("station") or sid} for row in fm.read_table(r.read(name)))
                for e in m.get("models", []):
                    models.setdefault(e.get("name") or "", {**e, "frames": 0})["frames"] += e.get("frames", 0)
                for e in m.get("references", []):
                    refs.setdefault(e["id"], {**e, "frames": 0})["frames"] += e.get("frames", 0)
            except BundleError:
                raise
            except SHAPE_ERRORS as e:
                raise BundleError(f"{r.path} holds annotations, tables or a manifest of an unexpected shape "
                                  f"({type(e).__name__}: {str(e)[:80]}); nothing was merged") from None
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_partials(out)
            sink = Sink(out, as_zip, threads=1 if any(r.is_zip for r in readers) else threads)
        except OSError as e:
            raise BundleError(os_sentence(e, out)) from None
        total = len(frames) + 3
        n = [0]

        def one() -> None:
            n[0] += 1
            if n[0] % 50 == 0 or n[0] == len(frames):
                report(n[0], total, "images")

        try:
            sink.add_images(sources, one, is_cancelled)
            created = time.time()
            info = {"description": f"feedback merged from stations {', '.join(stations)}", "version": __version__,
                    "date_created": iso(created), "contributor": station}
            times = [f.timestamp for f in frames]
            splits = assign(times, rule)
            for name, body in fm.annotation_files(frames, classes, info, "", splits, formats, image_station).items():
                sink.add_bytes(name, body)
            if "yolo" in formats:
                for f in frames:
                    sink.add_bytes(fm.label_name(f.image_sha256), fm.yolo_label(f, classes))
            report(len(frames) + 1, total, "labels")
            cols = ("station",)
            sink.add_bytes(fm.DECISIONS_CSV, fm.table(cols + fm.DECISION_COLUMNS, decisions))
            sink.add_bytes(fm.EVENTS_CSV, fm.table(cols + fm.EVENT_COLUMNS, events))
            sink.add_bytes(fm.DRIFT_MINUTES_CSV, fm.table(cols + fm.MINUTE_COLUMNS, minutes))
            sink.add_bytes(fm.DRIFT_ALARMS_CSV, fm.table(cols + fm.ALARM_COLUMNS, alarms))
            summaries = {}
            for r, m in zip(readers, manifests):
                if r.exists(fm.DRIFT_SUMMARY):
                    summaries[str(m.get("station_id", ""))] = r.json(fm.DRIFT_SUMMARY)
            sink.add_bytes(fm.DRIFT_SUMMARY, fm.pretty_json({"stations": summaries}))
            by_kind: Counter[str] = Counter(k for f in frames for k in (["replay"] if f.replay else f.kinds))
            boxes: Counter[str] = Counter(lab.class_name for f in frames for lab in f.truth)
            counts = {"images": len(frames), "duplicate_images": dup,
                      "by_kind": {k: by_kind.get(k, 0) for k in ("fp", "fn", "confirmed", "unsure", "replay")},
                      "boxes_by_class": {c: boxes.get(c, 0) for c in classes},
                      "predictions": sum(len(f.predictions) for f in frames),
                      "defect_free_images": sum(1 for f in frames if not f.truth),
                      "duplicate_boxes_removed": sum(f.duplicates for f in frames),
                      "decisions": len(decisions), "events": len(events), "drift_minutes": len(minutes),
                      "drift_alarms": len(alarms)}
            agree_in = [row for d in decisions for row in agreement_rows([d], d["station"])]
            manifest = {
                "format": fm.FORMAT_NAME, "format_version": fm.FORMAT_VERSION, "station_id": station,
                "stations": stations, "application": "inspection-station", "application_version": __version__,
                "created_utc": iso(created),
                "merged_from": [{"station_id": m.get("station_id"), "created_utc": m.get("created_utc"),
                                 "application_version": m.get("application_version"), "period": m.get("period"),
                                 "filters": m.get("filters"), "images": m.get("counts", {}).get("images"),
                                 "audit_anchor": m.get("audit_anchor")}
                                for m in manifests],
                "classes": classes, "models": list(models.values()), "references": list(refs.values()),
                "counts": counts, "agreement": agreement_summary(agree_in),
                "splits": split_summary(times, splits, rule, iso),
                "policy": {"duplicates": "one image per content hash; the first bundle named gives its truth",
                           "duplicate_boxes": DUPLICATE_RULE,
                           "splits": "made again over the merged frames by the same rule"},
                "files": fm.manifest_files(formats),
            }
            sink.add_bytes(fm.MANIFEST, fm.pretty_json(manifest))
            if is_cancelled():
                raise Cancelled("the merge was cancelled; nothing was written")
            sink.seal()
            report(total, total, "sealed")
        except BaseException as e:
            sink.abort()
            if isinstance(e, OSError):
                raise BundleError(os_sentence(e, out)) from None
            if isinstance(e, SHAPE_ERRORS):
                raise BundleError(f"the bundles hold annotations or tables of an unexpected shape "
                                  f"({type(e).__name__}: {str(e)[:80]}); nothing was merged") from None
            raise
        return ExportResult(out, counts, time.perf_counter() - t0)
    finally:
        for r in readers:
            r.close()

