"""A fine-tuning run as a child process of the window: ``python -m engine.inference.train_job SPEC.json``.

The window signs the run and starts this process, so that training never takes the window's interpreter or its
priority: the process lowers its own (``nice`` 10 where there is one), and the live line keeps the cores first.
The spec (JSON) names the bundles, the base model (``null``: the built-in one), the output ``.pt``, the seed, a
time cap, and optionally the data directory whose model registry takes the new model in as a challenger.

What it says, one JSON object per line on stdout: ``{"step": s, "steps": n, "loss": v, "eta_s": t}`` at most twice a
second, then one of ``{"done": {...}}`` (exit 0), ``{"error": "one sentence"}`` (exit 2) or ``{"interrupted":
"..."}`` (exit 130: SIGTERM or SIGINT; nothing was written). The progress lines people read go to stderr.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

# what a spec may change of FinetuneConfig besides seed and minutes (short runs for tests and trials)
TUNABLE = ("steps", "batch", "replay_frames", "threads", "distill_weight")
NICE = 10


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def read_spec(path: Path) -> dict[str, Any]:
    from engine.inference.finetune import FinetuneError

    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FinetuneError(f"the training spec {path} cannot be read ({e})") from None
    if not isinstance(spec, dict) or not spec.get("bundles") or not spec.get("out"):
        raise FinetuneError(f"the training spec {path} names no bundles or no output file")
    return spec


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Train as the spec says; register the new model when the spec names a data directory. The summary."""
    from engine.inference.finetune import FinetuneConfig
    from engine.inference.finetune_card import train_from_bundles

    names = {f.name for f in fields(FinetuneConfig)}
    extra = {k: v for k, v in (spec.get("config") or {}).items() if k in TUNABLE and k in names}
    cfg = replace(FinetuneConfig(), seed=int(spec.get("seed", 0)), minutes=spec.get("minutes"), **extra)
    last = [0.0]
    t0: list[float] = []  # the training loop's start: reading the bundles and the replay frames come before it

    def on_step(step: int, loss: float) -> None:
        now = time.monotonic()
        if not t0:
            t0.append(now - 1e-3)
        if now - last[0] >= 0.5 or step == cfg.steps:
            last[0] = now
            spent = now - t0[0]
            eta = spent / step * (cfg.steps - step)
            if cfg.minutes:
                eta = min(eta, max(0.0, cfg.minutes * 60.0 - spent))
            _say({"step": step, "steps": cfg.steps, "loss": round(float(loss), 4), "eta_s": round(eta, 1)})

    out = Path(spec["out"])
    card = train_from_bundles([Path(b) for b in spec["bundles"]], out, spec.get("base"), cfg, progress=sys.stderr,
                              command=str(spec.get("command", "trained from the window")), on_step=on_step)
    # The weights and the card are written: from here a cancel would leave them half registered, so the run
    # finishes (registering takes seconds) and says it was trained.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    q = card.get("quality", {})
    summary: dict[str, Any] = {
        "out": str(out), "sha256": card["sha256"], "steps": card["training"]["steps_done"],
        "stopped": card["training"]["stopped"], "total_s": card["training"]["total_s"],
        "measured_on": q.get("measured_on"), "f1": q.get("f1"),
        "parent_f1": (q.get("parent_on_the_same_frames") or {}).get("f1"), "registered": None}
    if spec.get("data_dir"):
        from engine.inference import registry

        print("taking the new model into the station's registry as a challenger", file=sys.stderr, flush=True)
        entry, _ = registry.add(Path(spec["data_dir"]), out, by=str(spec.get("by", "")))
        summary["registered"] = entry.name
    return summary


def main(argv: list[str] | None = None) -> int:
    from engine.core.errors import StationError
    from engine.inference.finetune import Interrupted

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m engine.inference.train_job SPEC.json", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # the window's Cancel: the same as Ctrl+C, nothing written
    if hasattr(os, "nice"):
        try:
            os.nice(NICE)
        except OSError:
            pass
    try:
        _say({"done": run(read_spec(Path(argv[0])))})
    except (Interrupted, KeyboardInterrupt) as e:
        _say({"interrupted": str(e) or "interrupted before training began; nothing was written"})
        return 130
    except StationError as e:
        _say({"error": str(e)})
        return 2
    except MemoryError:
        _say({"error": "the machine ran out of memory while training; nothing was written"})
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
