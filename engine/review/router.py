"""Which frames an operator should look at, and a simulated operator for headless runs."""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from engine.review.feedback import Decision, FrameForReview
from engine.core.frame import Box


@dataclass
class RouterConfig:
    threshold: float = 0.5  # the detector's confidence threshold
    margin: float = 0.1  # scores this close to it are boundary cases
    novelty: float = 1.0  # novelty above this is worth a look
    sample_rate: float = 0.01  # random share sent for agreement measurement
    max_per_hour: int = 120


class ReviewRouter:
    """Routes frames to the review queue with a reason, under an hourly cap (wall clock)."""

    REASONS = ("near-threshold", "novel", "drift-alarm", "data-campaign", "agreement-sample", "shadow")

    def __init__(self, cfg: RouterConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg or RouterConfig()
        self._rng = random.Random(seed)
        self._times: deque[float] = deque()
        self.capped = 0
        # A data collection campaign (engine.calibration.station_files.Campaign: ``take()`` counts a frame and says
        # whether it is collected), opened when the model meets images unlike its training data.
        self.campaign: Any = None

    def reason(self, scores: list[float], measurements: dict[str, Any], now: float | None = None) -> str | None:
        c = self.cfg
        why = None
        collect = self.campaign.take() if self.campaign is not None else False
        if any(abs(s - c.threshold) <= c.margin for s in scores):
            why = "near-threshold"
        elif measurements.get("novelty", 0.0) > c.novelty:
            why = "novel"
        elif measurements.get("drift_level") == "alarm":
            why = "drift-alarm"
        elif collect:
            why = "data-campaign"
        elif self._rng.random() < c.sample_rate:
            why = "agreement-sample"
        if why is None:
            return None
        now = time.time() if now is None else now
        while self._times and now - self._times[0] > 3600:
            self._times.popleft()
        if len(self._times) >= c.max_per_hour:
            self.capped += 1
            return None
        self._times.append(now)
        return why


def parse_auto_review(spec: str) -> tuple[float, str]:
    """``oracle[:ACCURACY][,operator=ID]`` -> (accuracy, operator)."""
    head, *opts = spec.split(",")
    name, _, acc = head.partition(":")
    if name != "oracle":
        raise ValueError(f"unknown reviewer {name!r}; the headless reviewer is 'oracle[:ACCURACY][,operator=ID]'")
    accuracy = float(acc) if acc else 1.0
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"the oracle's accuracy must be between 0 and 1, got {accuracy}")
    operator = "oracle"
    for o in opts:
        k, _, v = o.partition("=")
        if k != "operator" or not v:
            raise ValueError(f"unknown auto-review option {o!r}; use operator=ID")
        operator = v
    return accuracy, operator


class OracleReviewer:
    """Reviews like an operator who knows the simulator's truth, and errs with probability 1 - accuracy."""

    def __init__(self, accuracy: float = 1.0, operator: str = "oracle", seed: int = 0) -> None:
        self.accuracy = accuracy
        self.operator = operator
        # Each simulated operator errs on different frames: two operators of the same accuracy are not copies.
        self._rng = random.Random(f"{seed}:{operator}")

    def review(self, frame: FrameForReview) -> list[Decision]:
        truth = [Box(*d["box"], d["class_id"], d["class_name"]) for d in (frame.ground_truth or {}).get("defects", [])]
        matched: set[int] = set()
        out: list[Decision] = []
        for i, det in enumerate(frame.detections):
            best, best_iou = None, 0.0
            for j, t in enumerate(truth):
                iou = det.iou(t)
                if j not in matched and iou > best_iou:
                    best, best_iou = j, iou
            wrong = self._rng.random() > self.accuracy
            if best is not None and best_iou >= 0.5:
                matched.add(best)
                t = truth[best]
                if wrong:
                    out.append(Decision(frame, self.operator, "reject", detection=i, origin="oracle"))
                elif t.class_name == det.class_name:
                    out.append(Decision(frame, self.operator, "confirm", detection=i, origin="oracle"))
                else:
                    out.append(Decision(frame, self.operator, "reclass", detection=i, new_class=t.class_name,
                                        origin="oracle"))
            else:
                verdict = "confirm" if wrong else "reject"
                out.append(Decision(frame, self.operator, verdict, detection=i, origin="oracle"))
        for j, t in enumerate(truth):
            if j not in matched and self._rng.random() <= self.accuracy:
                out.append(Decision(frame, self.operator, "missed", new_class=t.class_name,
                                    new_box=(t.x0, t.y0, t.x1, t.y1), origin="oracle"))
        return out
