"""Which frames an operator should look at, and a simulated operator for headless runs."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.review.feedback import Decision, FrameForReview
from engine.core.frame import Box


# The default share of the hourly budget each reason may use (a reason missing here has the whole budget).
DEFAULT_QUOTAS = {"near-threshold": 0.4, "novel": 0.2, "drift-alarm": 0.2, "data-campaign": 0.2,
                  "agreement-sample": 0.1, "shadow": 0.2}


@dataclass
class RouterConfig:
    threshold: float = 0.5  # the detector's confidence threshold
    margin: float = 0.1  # scores this close to it are boundary cases
    novelty: float = 1.0  # novelty above this is worth a look
    sample_rate: float = 0.01  # random share sent for agreement measurement
    max_per_hour: int = 120  # the pace: frames per hour, on average
    burst: int = 10  # at most this many in a row when frames have not been set aside for a while
    quotas: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))  # reason -> share of the pace

    @classmethod
    def from_config(cls, review: dict[str, Any] | None) -> RouterConfig:
        """The ``[review]`` table of the configuration (missing keys: the defaults)."""
        r = dict(review or {})
        base = cls()
        quotas = dict(base.quotas)
        quotas.update({str(k): float(v) for k, v in (r.get("quotas") or {}).items()})
        return cls(margin=float(r.get("margin", base.margin)), novelty=float(r.get("novelty", base.novelty)),
                   max_per_hour=int(r.get("max_per_hour", base.max_per_hour)),
                   burst=int(r.get("burst", base.burst)), quotas=quotas)


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; :meth:`take` spends one if there is one. Time is given, not read."""

    def __init__(self, rate: float, burst: float, now: float | None = None) -> None:
        self.rate = max(0.0, float(rate))
        self.burst = max(1.0, float(burst))
        self.tokens = self.burst
        self.last = now

    def _fill(self, now: float) -> None:
        if self.last is not None and now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        if self.last is None or now > self.last:
            self.last = now

    def available(self, now: float) -> bool:
        self._fill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        if not self.available(now):
            return False
        self.tokens -= 1.0
        return True


class ReviewRouter:
    """Routes frames to the review queue with a reason and a value, paced rather than starved.

    One token bucket paces everything (``max_per_hour`` / 3600 frames a second on average, at most ``burst`` in a
    row); each reason has its own bucket at its quota's share of that pace, so boundary cases cannot use up the
    agreement sample. A frame goes through when both its reason's bucket and the shared one have a token."""

    REASONS = ("near-threshold", "novel", "drift-alarm", "data-campaign", "agreement-sample", "shadow")
    # How much a frame is worth to an operator, by reason (higher first); near-threshold adds how close it is.
    VALUES: ClassVar[dict[str, float]] = {"drift-alarm": 4.0, "novel": 3.0, "near-threshold": 2.0, "data-campaign": 1.5, "agreement-sample": 1.0,
                                         "shadow": 2.5}

    def __init__(self, cfg: RouterConfig | None = None, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg or RouterConfig()
        self._rng = random.Random(seed)
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self._pace: tuple[int, int] | None = None
        self.capped = 0
        self.capped_by: Counter = Counter()  # reason -> frames the pace or its quota turned away
        self.last_value = 0.0  # the value of the last frame routed
        # A data collection campaign (engine.calibration.station_files.Campaign: ``take()`` counts a frame and says
        # whether it is collected), opened when the model meets images unlike its training data.
        self.campaign: Any = None

    def _bucket(self, key: str, share: float) -> TokenBucket:
        c = self.cfg
        if self._pace != (c.max_per_hour, c.burst):  # the pace changed: start the buckets again
            self._buckets.clear()
            self._pace = (c.max_per_hour, c.burst)
        b = self._buckets.get(key)
        if b is None:
            rate = c.max_per_hour * share / 3600.0
            b = self._buckets[key] = TokenBucket(rate, max(1.0, round(c.burst * share)))
        return b

    def classify(self, scores: list[float], measurements: dict[str, Any]) -> tuple[str, float] | None:
        """Why a frame is worth a look and how much (no pacing), or None."""
        c = self.cfg
        collect = self.campaign.take() if self.campaign is not None else False
        near = [abs(s - c.threshold) for s in scores if abs(s - c.threshold) <= c.margin]
        if near:
            closeness = 1.0 - min(near) / c.margin if c.margin > 0 else 1.0
            return "near-threshold", self.VALUES["near-threshold"] + 0.9 * closeness
        novelty = measurements.get("novelty", 0.0)
        if novelty > c.novelty:
            return "novel", self.VALUES["novel"] + 0.9 * min(1.0, (novelty - c.novelty) / max(c.novelty, 1e-9))
        if measurements.get("drift_level") == "alarm":
            return "drift-alarm", self.VALUES["drift-alarm"]
        if collect:
            return "data-campaign", self.VALUES["data-campaign"]
        if self._rng.random() < c.sample_rate:
            return "agreement-sample", self.VALUES["agreement-sample"]
        return None

    def admit(self, why: str, now: float | None = None) -> bool:
        """Spend a token for a frame routed for ``why``: False (and counted) when the pace or its quota is spent."""
        with self._lock:  # the pipeline's worker and the shadow model's thread both route frames
            return self._admit(why, now)

    def _admit(self, why: str, now: float | None) -> bool:
        now = self.clock() if now is None else now
        share = self.cfg.quotas.get(why, 1.0)
        own = self._bucket(why, share) if share < 1.0 else None
        shared = self._bucket("", 1.0)
        if (own is not None and not own.available(now)) or not shared.available(now):
            self.capped += 1
            self.capped_by[why] += 1
            return False
        if own is not None:
            own.take(now)
        shared.take(now)
        return True

    def route(self, scores: list[float], measurements: dict[str, Any],
              now: float | None = None) -> tuple[str, float] | None:
        """(reason, value) for a frame an operator should see now, or None."""
        found = self.classify(scores, measurements)
        if found is None or not self.admit(found[0], now):
            return None
        self.last_value = found[1]
        return found

    def reason(self, scores: list[float], measurements: dict[str, Any], now: float | None = None) -> str | None:
        routed = self.route(scores, measurements, now)
        return routed[0] if routed is not None else None


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
