"""The end of a recalibration: what a finished session decided, written to the data directory.

:func:`commit` writes ``lens_profiles/<time>.json`` (and ``.png``, the view at commit, the next report's
"before"), ``references/<id>.npz`` and ``station.json`` (the station's active reference), ``campaigns/<time>.json``
when the domain step asked for more data, a ``recalibration`` event for every trend chart, and
``reports/recalibration-<time>.json`` with its HTML report; each file through a temporary name, fsync and rename.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.calibration.lens import utc_now, write_json_atomic
from engine.calibration.recalibration import TITLES, CommitResult, Recalibration, RecalibrationError, plain
from engine.calibration.recalibration_report import render_report
from engine.calibration.station_files import (
    Campaign,
    save_lens_profile,
    set_station_reference,
    unique_path,
    utc_stamp,
)
from engine.core.files import write_atomic
from engine.monitoring.reference import Reference, ReferenceError


def commit(s: Recalibration, keep_reference: bool = False) -> CommitResult:
    """Write the lens profile, the station reference, the event and the report of session ``s``."""
    if s.committed is not None:
        raise RecalibrationError("this recalibration has already been committed")
    blocked = s.blocking()
    if blocked:
        raise RecalibrationError("not finished: " + ", ".join(TITLES[b].lower() for b in blocked) +
                                 " failed or did not run; override with a written reason to go on")
    if s.profile is None:
        raise RecalibrationError("the geometry has not been solved, so there is no lens profile to keep")
    stamp = utc_stamp()
    profile_path = save_lens_profile(s.data_dir, s.profile, stamp)
    if s.last_production is not None:
        ok, png = cv2.imencode(".png", s.last_production)
        if ok:
            write_atomic(profile_path.with_suffix(".png"), png.tobytes())
    reference_path, reference_id = None, s.reference.id if s.reference is not None else ""
    if not keep_reference:
        ref = build_reference(s)
        reference_path = Path(s.data_dir) / "references" / f"{ref.id[:16]}.npz"
        reference_path.parent.mkdir(parents=True, exist_ok=True)
        ref.save(reference_path)
        reference_id = ref.id
        set_station_reference(s.data_dir, reference_path, ref.id, s.who, f"recalibration after {s.reason}")
    campaign_path = None
    if s.campaign_planned:
        c = Campaign(f"recalibration-{stamp}", int(s.cal["campaign_every_n"]), int(s.cal["campaign_frames"]),
                     "domain shift after " + s.reason, utc_now())
        campaign_path = c.save(unique_path(Path(s.data_dir) / "campaigns" / f"{stamp}.json"))
    event_time = float(s.last_frame_time if s.last_frame_time is not None else s.clock())
    detail = (f"{s.reason} by {s.who}: lens fx {s.profile.fx:.1f} px, k1 {s.profile.k1:+.3f}; "
              + (f"new reference {reference_id[:12]}" if not keep_reference else "reference kept"))
    from engine.storage.db import DB_NAME, connect

    db = connect(Path(s.data_dir) / DB_NAME)
    try:
        with db.conn:
            db["station_events"].insert({"time": event_time, "kind": "recalibration", "detail": detail})
    finally:
        db.conn.close()
    rec = record(s, keep_reference, reference_id, profile_path, reference_path, campaign_path)
    record_path = unique_path(Path(s.data_dir) / "reports" / f"recalibration-{stamp}.json")
    write_json_atomic(record_path, rec)
    report_path = record_path.with_suffix(".html")
    write_atomic(report_path, render_report(s, rec).encode("utf-8"))
    s.committed = CommitResult(profile_path, report_path, record_path, reference_path, reference_id,
                               campaign_path, event_time)
    return s.committed


def build_reference(s: Recalibration) -> Reference:
    """The new station reference, from the domain step's fresh frames (and the model's embeddings of them)."""
    if len(s.domain_stats) < 50:
        raise RecalibrationError(f"a new reference needs at least 50 fresh frames from the domain step, "
                                 f"got {len(s.domain_stats)}; run that step or keep the old reference")
    embs: list[np.ndarray | None] = list(s.domain_embeddings)
    if len(embs) != len(s.domain_stats):
        embs = [None] * len(s.domain_stats)
    w, h = s.size or (0, 0)
    meta = {"source": s.source_uri or "recalibration", "width": w, "height": h,
            "detector": getattr(s.detector, "name", None), "detector_sha256": getattr(s.detector, "sha256", None),
            "made_by": "recalibration",
            "reason": s.reason, "who": s.who}
    try:
        return Reference.build(zip(s.domain_stats, embs), meta)
    except ReferenceError as e:
        raise RecalibrationError(str(e)) from None


def record(s: Recalibration, keep_reference: bool, reference_id: str, profile_path: Path,
           reference_path: Path | None, campaign_path: Path | None) -> dict[str, Any]:
    """The session as plain JSON: reason, every step's verdict and values, overrides, what was written."""
    return plain({
        "started_utc": s.started_utc, "committed_utc": utc_now(), "reason": s.reason, "who": s.who,
        "note": s.note, "source": s.source_uri,
        "steps": [st.to_dict() for st in s.steps.values()],
        "overrides": {st.name: st.override for st in s.steps.values() if st.override},
        "lens_profile": str(profile_path), "previous_profile": s.previous.to_dict() if s.previous else None,
        "reference": {"kept": keep_reference, "id": reference_id,
                      "path": str(reference_path) if reference_path else None,
                      "previous_id": s.reference.id if s.reference is not None else None},
        "campaign": str(campaign_path) if campaign_path else None,
    })
