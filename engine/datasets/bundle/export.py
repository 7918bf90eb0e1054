"""``export_bundle``: the chosen frames, their truth and their history, written as one feedback bundle.

A bundle (a folder, or one ZIP file):

====================================  ===============================================================
``images/<sha256>.png``               the frames, byte for byte as stored (lossless PNG, named by hash)
``annotations/instances.json``        COCO detection ground truth: the corrected truth (``coco``)
``annotations/predictions.json``      the model's boxes as shown, a COCO results file (``coco``)
``annotations/instances_<split>.json``  the same per split (train, val, test: made by time, see
``annotations/predictions_<split>.json``  :mod:`engine.datasets.bundle.splits`), image ids as in the files above
``labels/<sha256>.txt``, ``data.yaml``  YOLO layout; an empty label file for a defect-free image (``yolo``)
``train.txt``, ``val.txt``, ``test.txt``  YOLO list files of the splits, ``./images/<sha256>.png`` a line (``yolo``)
``decisions.csv``                     every decision on the bundle's frames: operator, time, reason
``events.csv``                        station events (lens, source, model, reference) and the model and
                                      reference changes seen in the stored frames
``drift/minutes.csv``, ``drift/alarms.csv``, ``drift/summary.json``  drift statistics over the period
``manifest.json``                     format, station, version, models and references with hashes,
                                      filters, counts by kind and class, operator agreement
``SHA256SUMS``                        the SHA-256 of every other file (``sha256sum -c`` reads it)
====================================  ===============================================================
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import resources
from engine import __version__
from engine.datasets.bundle import formats as fm
from engine.datasets.bundle.selection import BundleError, ExportOptions, FrameTruth, Selection, agreement_summary, iso, select
from engine.datasets.bundle.splits import DUPLICATE_RULE, SPLITS, assign, summary as split_summary
from engine.datasets.bundle.sink import Cancelled, Sink, os_sentence, remove_stale_partials
from engine.security.anchor import stamp
from engine.storage.db import read
from engine.storage.images import ImageStore
from engine.storage.queries import frame_span, frames_by_id

Progress = Callable[[int, int, str], None]


@dataclass
class ExportResult:
    path: Path
    counts: dict[str, Any]
    seconds: float


def builtin_card() -> dict[str, Any]:
    try:
        return json.loads(resources.path("builtin_detector.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def model_classes() -> list[str]:
    return list(builtin_card().get("classes", []))


def _models(frames: list[FrameTruth]) -> list[dict[str, Any]]:
    """Each model that saw the bundle's frames, with its hash: the built-in model's from its card, else the
    prefix its name carries (a model's name ends in the first 8 hex digits of its file's SHA-256)."""
    card = builtin_card()
    out = []
    for name, n in sorted(Counter(f.model for f in frames).items(), key=lambda kv: -kv[1]):
        entry: dict[str, Any] = {"name": name, "frames": n, "sha256": None}
        token = (name or "").rsplit(" ", 1)[-1]
        if len(token) == 8 and all(c in "0123456789abcdef" for c in token):
            entry["sha256_prefix"] = token
            if (name or "").startswith("builtin") and str(card.get("sha256", "")).startswith(token):
                entry.update(sha256=card["sha256"], card={k: card.get(k) for k in ("name", "version", "classes",
                                                                                   "confidence_threshold")})
        out.append(entry)
    return out


def _builtin_reference_id() -> str | None:
    try:
        from engine.monitoring.reference import Reference

        return Reference.load(resources.path("reference_nominal.npz")).id
    except Exception:
        return None


def _references(frames: list[FrameTruth]) -> list[dict[str, Any]]:
    """The drift references in force, by id: a reference's id is the SHA-256 of its content."""
    counts = Counter(f.reference_id for f in frames if f.reference_id)
    builtin = _builtin_reference_id() if counts else None
    return [{"id": rid, "sha256": rid, "frames": n, "name": "builtin" if rid == builtin else None}
            for rid, n in counts.most_common()]


def _period(sel: Selection) -> tuple[float, float]:
    since, until = sel.period
    ts = [f.timestamp for f in sel.frames]
    lo = since if since is not None else (min(ts) if ts else 0.0)
    hi = until if until is not None else (max(ts) + 60.0 if ts else 0.0)
    return lo, hi


def _history(data_dir: Path, sel: Selection) -> dict[str, list[dict[str, Any]]]:
    """Drift minutes, alarms and events of the period; model and reference changes seen in the frames."""
    lo, hi = _period(sel)
    minutes = read(data_dir, "SELECT * FROM trend_minutes WHERE minute >= ? AND minute < ? ORDER BY minute, metric",
                   [int(lo // 60) * 60, hi])
    alarms = read(data_dir, "SELECT * FROM drift_alarms WHERE time >= ? AND time < ? ORDER BY time", [lo, hi])
    events = [{**e, "origin": "station"} for e in
              read(data_dir, "SELECT time, kind, detail FROM station_events WHERE time >= ? AND time < ?"
                             " ORDER BY time", [lo, hi])]
    seen = read(data_dir, "SELECT timestamp, model, reference_id FROM frames WHERE timestamp >= ? AND timestamp < ?"
                          " ORDER BY timestamp, id", [lo, hi])
    last_model = last_ref = ""
    for r in seen:
        if r["model"] != last_model and r["model"]:
            if last_model:
                events.append({"time": r["timestamp"], "kind": "model", "origin": "frames",
                               "detail": f"frames from model {r['model']} (before: {last_model})"})
            last_model = r["model"]
        if r["reference_id"] != last_ref and r["reference_id"]:
            if last_ref:
                events.append({"time": r["timestamp"], "kind": "reference", "origin": "frames",
                               "detail": f"drift reference {r['reference_id'][:16]} (before: {last_ref[:16]})"})
            last_ref = r["reference_id"]
    events.sort(key=lambda e: e["time"])
    for e in events:
        e["time_utc"] = iso(e["time"])
    for m in minutes:
        m["minute_utc"] = iso(m["minute"])
    for a in alarms:
        a["time_utc"] = iso(a["time"])
    return {"minutes": minutes, "alarms": alarms, "events": events}


def drift_summary(minutes: list[dict[str, Any]], alarms: list[dict[str, Any]], lo: float, hi: float
                  ) -> dict[str, Any]:
    """Per statistic over the period: minutes seen, batch-weighted mean, extremes, minutes at each level."""
    per: dict[str, dict[str, Any]] = {}
    for m in minutes:
        s = per.setdefault(m["metric"], {"minutes": 0, "batches": 0, "_sum": 0.0, "min": m["min"], "max": m["max"],
                                         "levels": Counter()})
        s["minutes"] += 1
        s["batches"] += m["n"]
        s["_sum"] += m["mean"] * m["n"]
        s["min"], s["max"] = min(s["min"], m["min"]), max(s["max"], m["max"])
        s["levels"][m["level"]] += 1
    metrics = {k: {"minutes": s["minutes"], "batches": s["batches"],
                   "mean": s["_sum"] / s["batches"] if s["batches"] else None, "min": s["min"], "max": s["max"],
                   "minutes_by_level": dict(s["levels"])} for k, s in sorted(per.items())}
    return {"period": {"since": iso(lo), "until": iso(hi)}, "metrics": metrics,
            "alarms": dict(Counter(f"{a['metric']}:{a['level']}" for a in alarms))}


def decision_rows(sel: Selection) -> list[dict[str, Any]]:
    from engine.datasets.bundle.selection import effective_ids

    in_bundle = {f.frame_id for f in sel.frames}
    frames = {f.frame_id: f for f in sel.frames}
    by_frame: dict[int, list[dict[str, Any]]] = {}
    for d in sel.decisions:
        by_frame.setdefault(int(d["frame_id"]), []).append(d)
    live: set[int] = set()
    for ds in by_frame.values():
        live |= effective_ids(ds)
    rows = []
    for d in sel.decisions:
        f = frames.get(int(d["frame_id"]))
        rows.append({**d, "time_utc": iso(d["time_utc"]), "reason": d["queue_reason"],
                     "undoes": d["undoes_review_id"], "effective": int(d["id"]) in live and d["verdict"] != "undo",
                     "source": f.source if f else d.get("source"), "sequence": f.sequence if f else d.get("sequence"),
                     "frame_time_utc": iso(f.timestamp) if f else d.get("frame_time_utc"),
                     "image_sha256": f.image_sha256 if f else d.get("image_sha256"),
                     "in_bundle": int(d["frame_id"]) in in_bundle})
    return rows


def _missing_frame_details(data_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Decisions on frames left out of the images still name their frame."""
    ids = sorted({int(r["frame_id"]) for r in rows if r["source"] is None})
    if not ids:
        return
    info = frames_by_id(data_dir, ids)
    for r in rows:
        i = info.get(int(r["frame_id"]))
        if r["source"] is None and i:
            r.update(source=i["source"], sequence=i["sequence"], frame_time_utc=iso(i["timestamp"]),
                     image_sha256=i["image_sha256"])


def agreement_rows(rows: list[dict[str, Any]], station: str = "") -> list[dict[str, Any]]:
    """Decision rows (as in ``decisions.csv``) in the shape :func:`agreement_summary` reads."""
    out = []
    for r in rows:
        eff = r["effective"]
        out.append({"frame": (station, r["source"], str(r["sequence"]), r["frame_time_utc"]),
                    "operator": r["operator"], "verdict": r["verdict"],
                    "detection": r["detection"] if r["detection"] not in ("", None) else None,
                    "new_class": r["new_class"] or None,
                    "effective": eff if isinstance(eff, bool) else str(eff) == "True"})
    return out


def stored_span(data_dir: Path) -> tuple[float, float] | None:
    """The first and last stored frame's time (source clock), or None when nothing is stored."""
    return frame_span(Path(data_dir))


def preview(data_dir: Path, options: ExportOptions) -> dict[str, Any]:
    """The counts an export with these options would write, without writing anything."""
    return select(Path(data_dir), options, model_classes()).counts()


def _describe_empty(o: ExportOptions) -> str:
    what = ", ".join(o.kinds)
    cls = f" of class {', '.join(o.classes)}" if o.classes else ""
    when = ""
    if o.since is not None or o.until is not None:
        when = f" between {iso(o.since) or 'the start'} and {iso(o.until) or 'now'}"
    return f"nothing to export: no reviewed frames of kind {what}{cls}{when}"


def export_bundle(data_dir: Path, out: Path, options: ExportOptions, station: str,
                  progress: Progress | None = None, cancel: threading.Event | Callable[[], bool] | None = None,
                  threads: int = 2, link_images: bool = False) -> ExportResult:
    """Write a bundle to ``out`` (a folder, or a ZIP file with ``options.zip``), atomically.

    ``progress(done, total, stage)`` is called along the way; ``cancel`` (an event, or a function returning
    True) stops the export, leaving nothing behind. Errors are :class:`BundleError` with one sentence.
    """
    t0 = time.perf_counter()
    data_dir, out = Path(data_dir), Path(out)
    if options.zip and out.suffix.lower() != ".zip":
        out = out.with_name(out.name + ".zip")
    if out.exists() or out.is_symlink():
        raise BundleError(f"{out} already exists; choose another name or remove it first")
    is_cancelled: Callable[[], bool]
    if cancel is None:
        is_cancelled = lambda: False
    elif isinstance(cancel, threading.Event):
        is_cancelled = cancel.is_set
    else:
        is_cancelled = cancel
    report = progress or (lambda done, total, stage: None)
    sel = select(data_dir, options, model_classes())
    if not sel.chosen:
        raise BundleError(_describe_empty(options))
    store_images = ImageStore(data_dir)
    missing = store_images.missing(f.image_sha256 for f in sel.frames)
    if missing:
        raise BundleError(f"{len(missing)} of the chosen images are missing from {store_images.root} "
                          f"(the first: {missing[0]}.png)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(out)
        sink = Sink(out, options.zip, threads=threads, link_images=link_images)
    except OSError as e:
        raise BundleError(os_sentence(e, out)) from None
    total = len(sel.frames) + 6
    done = 0

    def step(stage: str, n: int = 1) -> None:
        nonlocal done
        done += n
        report(min(done, total), total, stage)

    try:
        report(0, total, "images")
        counter = {"n": 0}
        lock = threading.Lock()

        def one_done() -> None:
            with lock:
                counter["n"] += 1
                if counter["n"] % 50 == 0 or counter["n"] == len(sel.frames):
                    step("images", 50 if counter["n"] % 50 == 0 else counter["n"] % 50)

        sink.add_images([(fm.image_name(f.image_sha256), store_images.path(f.image_sha256), f.image_sha256)
                         for f in sel.frames], one_done, is_cancelled)
        done = len(sel.frames)
        sid = station
        created = time.time()
        info = {"description": f"feedback from inspection station {sid}", "version": __version__,
                "date_created": iso(created), "contributor": sid}
        times = [f.timestamp for f in sel.frames]
        splits = assign(times, options.split)
        for name, body in fm.annotation_files(sel.frames, sel.classes, info, sid, splits, options.formats).items():
            sink.add_bytes(name, body)
        step("annotations")
        if "yolo" in options.formats:
            for f in sel.frames:
                sink.add_bytes(fm.label_name(f.image_sha256), fm.yolo_label(f, sel.classes))
                if is_cancelled():
                    raise Cancelled("the export was cancelled; nothing was written")
        step("labels")
        rows = decision_rows(sel)
        _missing_frame_details(data_dir, rows)
        sink.add_bytes(fm.DECISIONS_CSV, fm.table(fm.DECISION_COLUMNS, rows))
        hist = _history(data_dir, sel)
        lo, hi = _period(sel)
        sink.add_bytes(fm.EVENTS_CSV, fm.table(fm.EVENT_COLUMNS, hist["events"]))
        sink.add_bytes(fm.DRIFT_MINUTES_CSV, fm.table(fm.MINUTE_COLUMNS, hist["minutes"]))
        sink.add_bytes(fm.DRIFT_ALARMS_CSV, fm.table(fm.ALARM_COLUMNS, hist["alarms"]))
        sink.add_bytes(fm.DRIFT_SUMMARY, fm.pretty_json(drift_summary(hist["minutes"], hist["alarms"], lo, hi)))
        step("history")
        counts = sel.counts()
        counts["events"] = len(hist["events"])
        counts["drift_minutes"] = len(hist["minutes"])
        counts["drift_alarms"] = len(hist["alarms"])
        splits_entry = split_summary(times, splits, options.split, iso)
        counts["splits"] = {s: splits_entry[s]["images"] for s in SPLITS}
        if splits_entry["note"]:
            counts["splits_note"] = splits_entry["note"]
        manifest = {
            "format": fm.FORMAT_NAME,
            "format_version": fm.FORMAT_VERSION,
            "station_id": sid,
            "stations": [sid],
            "application": "inspection-station",
            "application_version": __version__,
            "created_utc": iso(created),
            "period": {"since": iso(lo), "until": iso(hi),
                       "first_frame_utc": iso(min(f.timestamp for f in sel.frames)),
                       "last_frame_utc": iso(max(f.timestamp for f in sel.frames)),
                       "clock": "the frames' source clock"},
            "filters": options.to_dict(),
            "classes": sel.classes,
            "models": _models(sel.frames),
            "references": _references(sel.frames),
            "counts": counts,
            "agreement": agreement_summary(agreement_rows(rows, sid)),
            "splits": splits_entry,
            "policy": {
                "undecided_detections": "a detection on a reviewed frame with no decision is kept as predicted "
                                        "(status 'undecided')",
                "replay": "replay frames are confirmed-correct or unreviewed frames drawn at random "
                          "(seed in filters); unreviewed ones carry the model's boxes (status 'unreviewed')",
                "corrected_class": "counts as fp and fn",
                "duplicates": "one image per content hash; the frame decided last gives its truth",
                "duplicate_boxes": DUPLICATE_RULE,
            },
            "files": fm.manifest_files(options.formats),
            "audit_anchor": stamp(data_dir, sid),  # the audit chain's head, one more copy outside the database
        }
        sink.add_bytes(fm.MANIFEST, fm.pretty_json(manifest))
        step("manifest")
        if is_cancelled():
            raise Cancelled("the export was cancelled; nothing was written")
        sink.seal()
        step("sealed", 2)
    except BaseException as e:
        sink.abort()
        if isinstance(e, OSError):
            raise BundleError(os_sentence(e, out)) from None
        raise
    return ExportResult(out, counts, time.perf_counter() - t0)

