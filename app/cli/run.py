"""``inspection-station run``: the pipeline on a source, headless (records to JSONL) or in the window."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_NOT_STORED, UserError, data_dir, fraction, positive_int


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser("run", parents=[common], help="run the pipeline on a source, headless or in the window")
    r.add_argument("--source", help="sim://..., cam://N, file://PATH or a video path, folder://PATH, rtsp://...")
    r.add_argument("--headless", action="store_true", help="no window: process frames and write records")
    r.add_argument("--frames", type=positive_int, help="stop after this many frames (headless)")
    r.add_argument("--jsonl", help="write one JSON record per frame to this file ('-' for stdout)")
    r.add_argument("--give-up-after", type=float, default=60.0, metavar="SECONDS",
                   help="headless: stop when the source has delivered nothing this long (default 60)")
    r.add_argument("--auto-review", metavar="SPEC",
                   help="headless: review frames as an operator would, from the simulator's truth: "
                        "oracle[:ACCURACY][,operator=ID]; decisions go to the store, acks to the JSON lines")
    r.add_argument("--reference", help="a reference .npz to measure drift against (default: from the config; "
                                       "'none': statistics only)")
    r.add_argument("--model", help="an ONNX, .pt2 or TorchScript detector (default: the built-in model; 'none': no detector)")
    r.add_argument("--confidence", type=float, help="score a detection needs to be reported (default: the model's)")
    r.add_argument("--shadow", metavar="MODEL",
                   help="headless: also run this model in shadow on a share of the frames ([shadow] share; "
                        "'builtin' for the built-in model); disagreements go for review, counts to the summary")
    r.add_argument("--shadow-share", type=fraction, help="the share of frames the shadow model sees "
                                                         "(default: [shadow] share)")
    r.set_defaults(func=run)


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    if args.headless:
        return run_headless(args, config)
    if args.frames or args.jsonl or args.shadow:
        raise UserError("--frames, --jsonl and --shadow need --headless")
    from app.cli.common import gui

    return gui.run(args, config)


def run_headless(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.inference import ModelError
    from engine.monitoring.reference import ReferenceError
    from engine.review.feedback import FeedbackError
    from engine.runtime.pipeline import PipelineConfig
    from engine.runtime.records import JsonlWriter
    from engine.runtime.station import ModelChoice, Station
    from engine.sources import SourceError, open_source

    directory = data_dir(args)
    uri = args.source or config["source"]["uri"]
    try:
        open_source(uri, realtime=False)  # a URI that cannot be used is said before a model loads
    except SourceError as e:
        raise UserError(str(e)) from None
    pc = config["pipeline"]
    pcfg = PipelineConfig(read_timeout_s=config["source"]["read_timeout_s"], retry_initial_s=pc["retry_initial_s"],
                          retry_max_s=pc["retry_max_s"], frozen_after=pc["frozen_after"], max_frames=args.frames,
                          fail_on_first_open=True, give_up_after_s=args.give_up_after, pipelined=pc["pipelined"],
                          stats_stride=pc["stats_stride"])
    station = Station(config, directory, uri, ModelChoice(args.model, args.confidence), realtime=False,
                      feedback=False, keep_trends=False, strict=True, reference=args.reference, pipeline_config=pcfg)
    try:
        station.load_model()
    except ModelError as e:
        raise UserError(str(e)) from None
    from engine.inference.registry import choice_note

    note = choice_note(directory, args.model)
    if note:
        print(note, file=sys.stderr)
    if args.shadow:
        try:
            station.start_shadow(None if args.shadow == "builtin" else args.shadow, args.shadow_share)
        except ModelError as e:
            raise UserError(f"the shadow model: {e}") from None
    writer = None
    if args.jsonl:
        try:
            writer = JsonlWriter(sys.stdout if args.jsonl == "-" else Path(args.jsonl))
        except OSError as e:
            raise UserError(f"cannot write {args.jsonl}: {e.strerror}") from None
    progress = _Progress(args.frames)
    if args.auto_review:
        _auto_review(station, args.auto_review, writer)
        if not uri.startswith("sim://"):
            raise UserError("the oracle reviewer needs the simulator's ground truth: use a sim:// source")
    if writer is not None:
        station.frame_done.connect(writer.frame)
        station.events.connect(lambda ev: writer.event(ev) if ev.kind != "alarm" else None)
    station.frame_done.connect(progress.frame)
    station.events.connect(lambda ev: progress.event(ev) if ev.kind != "alarm" else None)
    try:
        station.open_source(uri)
    except (SourceError, ReferenceError, FeedbackError) as e:
        raise UserError(str(e)) from None
    pipe = station.pipeline
    assert pipe is not None
    try:
        while not pipe.join(timeout=0.2):
            pass
    except KeyboardInterrupt:
        pipe.stop()
        pipe.join(timeout=10)
        raise
    finally:
        shadow = station.stop_shadow()
        station.close(timeout=10)  # the last acknowledgements are in before the summary
        summary = station.summary()
        if shadow is not None:
            summary["shadow"] = {**shadow, "judged": dict(station.field.shadow_judged())}
        if station.field.expected_precision is not None:
            summary["expected_precision"] = round(station.field.expected_precision, 4)
        for key in ("expected_recall", "expected_f1"):
            if getattr(station.field, key) is not None:
                summary[key] = round(getattr(station.field, key), 4)
        if station.field.suggestion:
            summary["suggestion"] = station.field.suggestion
        if args.auto_review:
            summary["reviews"] = station.review_summary()
            summary.pop("error", None)
            if pipe.error:
                summary["error"] = pipe.error
        if writer:
            writer.write(summary)
            writer.close()
        progress.done()
    if args.jsonl != "-":
        print(json.dumps(summary))
    reviews = summary.get("reviews") or {}
    if reviews.get("failed"):
        # One line per distinct reason, with its count: a full disk is one line, not one per decision.
        for reason, n in (reviews.get("failures") or {}).items():
            print(f"inspection-station: error: {n} of {reviews['submitted']} decision{'s' if n != 1 else ''} "
                  f"not stored: {reason}", file=sys.stderr)
        if pipe.error:
            print(f"inspection-station: error: {pipe.error}", file=sys.stderr)
        return EXIT_NOT_STORED
    if pipe.error:
        if pipe.stats.processed == 0:
            raise UserError(pipe.error)
        print(f"inspection-station: error: {pipe.error}", file=sys.stderr)
        return 1
    if pipe.stats.processed == 0:
        raise UserError(f"no frame could be read from {pipe.source.describe()}")
    if args.frames and pipe.stats.processed < args.frames:
        print(f"inspection-station: warning: the source ended after {pipe.stats.processed} of "
              f"{args.frames} frames", file=sys.stderr)
    return 0


class _Progress:
    """A progress line on stderr when it is a terminal; source events always."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.tty = sys.stderr.isatty()
        self.n = 0
        self.t0 = time.monotonic()

    def frame(self, result: Any) -> None:
        self.n += 1
        if self.tty and (self.n % 25 == 0 or self.n == self.total):
            rate = self.n / max(1e-9, time.monotonic() - self.t0)
            of = f"/{self.total}" if self.total else ""
            print(f"\r{self.n}{of} frames, {rate:.1f} frames/s", end="", file=sys.stderr, flush=True)

    def event(self, ev: Any) -> None:
        # The final error is said once, by the command; here only what happened along the way.
        if ev.kind == "retrain-suggested":
            print(("\n" if self.tty and self.n else "") + ev.message, file=sys.stderr)
        elif ev.kind not in ("opened", "failed") and not (ev.kind == "unavailable" and self.n == 0):
            print(("\n" if self.tty and self.n else "") + f"source {ev.kind}: {ev.message}", file=sys.stderr)

    def done(self) -> None:
        if self.tty and self.n:
            print(file=sys.stderr)




def _auto_review(station: Any, spec: str, writer: Any) -> None:
    """The headless operator: the station reviews frames from the simulator's truth on the pipeline's worker;
    each acknowledgement (on the store's writer) or failure (there, or where the store gives up at the end)
    becomes a JSON line."""
    from engine.review.feedback import Ack, FeedbackError
    from engine.review.router import OracleReviewer, parse_auto_review

    try:
        accuracy, operator = parse_auto_review(spec)
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        station.review_automatically(OracleReviewer(accuracy, operator))
    except FeedbackError as e:
        raise UserError(str(e)) from None

    def acked(rec: Any) -> None:
        ack, decision = rec.ack, rec.decision
        if isinstance(ack, Ack):
            if writer is not None:
                writer.write({"type": "review_ack", "review_id": ack.review_id, "decision_id": ack.decision_id,
                              "sequence": decision.frame.sequence, "verdict": decision.verdict,
                              "operator": decision.operator, "latency_ms": round(ack.latency_ms, 2)})
        elif writer is not None:  # said once per reason at the end, on stderr; here one record per decision
            writer.write({"type": "review_failed", "review_id": decision.review_id,
                          "sequence": decision.frame.sequence, "verdict": decision.verdict,
                          "operator": decision.operator, "reason": str(ack)})

    station.acked.connect(acked)
