"""Three ways the replay set of a fine-tuning run (:mod:`engine.inference.finetune`) is used: prioritised replay of
its defects (:class:`ReplayFocus`), the corrected frames' lamp measured against it (:func:`lamp_ratio`), and the
lamp reference every frame is normalised to (:func:`normalise_lamp`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.inference.lamp_norm import LampNorm

Pool = Any  # engine.inference.finetune.Pool: frames (.images) and their defects (.objects)


def lamp_ratio(corrected: Pool, replay: Pool) -> np.ndarray:
    """The corrected frames' lamp relative to the replay frames': the ratio of their mean colours, per channel."""
    def mean(pool: Pool) -> np.ndarray:
        return np.mean([im.reshape(-1, 3).mean(axis=0) for im in pool.images], axis=0)

    return (mean(corrected) / np.maximum(mean(replay), 1.0)).astype(np.float32)


def normalise_lamp(data: Any, percentile: float, parent_card: dict[str, Any]) -> tuple[LampNorm | None, str]:
    """Normalise every frame of ``data`` (corrected and replay) in place to the parent's lamp reference, or, when
    the parent has none, to the simulated nominal replay frames' (the line the parent learnt on; the bundles' own
    replay frames only when there are none, since those may be under the drifted lamp). The normalisation used
    (None when there is nothing to measure a reference on) and where its reference comes from."""
    norm, where = LampNorm.from_card(parent_card), "the parent's card"
    if norm is None:
        simulated = int(data.frames.get("replay_simulated", 0))
        frames = data.replay.images[-simulated:] if simulated else data.replay.images
        if not len(frames):
            return None, "no replay frames to measure a lamp reference on"
        norm = LampNorm.measure(frames, percentile)
        where = (f"{simulated} simulated nominal replay frames" if simulated else
                 f"the bundles' {len(frames)} replay frames (no simulated ones; if the bundles were exported under "
                 f"the drifted lamp, so is this reference)")
    for pool in (data.corrected, data.replay):
        pool.images[:] = [norm.apply(im) for im in pool.images]
    return norm, where


@dataclass
class ReplayFocus:
    """Prioritised replay of the defects in the replay frames (:attr:`FinetuneConfig.replay_focus`).

    Each replay defect keeps the disagreement measured when a crop around it was last trained on: the
    difference between the student's and the frozen parent's heat-map score of its class at its centre cell.
    A defect not seen yet has the highest priority, so the unseen ones come first; after that the crops go where
    the student is forgetting what the parent did, whatever class or look that is.
    """

    where: np.ndarray  # K x 2: (frame, object) of each replay defect
    priority: np.ndarray  # K: the last disagreement (1 until seen)
    power: float
    floor: float = 0.02  # a defect the student has learnt is still drawn now and then
    picks: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # this batch: (row, k, class, i, j)

    @classmethod
    def of(cls, pool: Pool, power: float) -> ReplayFocus:
        where = np.array([(i, j) for i, objs in enumerate(pool.objects) for j in range(len(objs))],
                         np.int64).reshape(-1, 2)
        return cls(where, np.ones(len(where)), power)

    def draw(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """A replay defect: its index, its frame's and its own index in that frame."""
        w = np.maximum(self.priority, self.floor) ** self.power
        k = int(rng.choice(len(w), p=w / w.sum()))
        return k, int(self.where[k, 0]), int(self.where[k, 1])

    def update(self, heat: torch.Tensor, parent_heat: torch.Tensor, is_replay: torch.Tensor) -> None:
        """Record this batch's disagreements (logits of the whole batch; the parent's of its replay rows)."""
        rows = torch.cumsum(is_replay.long(), 0) - 1  # batch row -> row among the replay crops
        with torch.no_grad():
            for b, k, c, i, j in self.picks:
                s = torch.sigmoid(heat[b, c, i, j])
                p = torch.sigmoid(parent_heat[int(rows[b]), c, i, j])
                self.priority[k] = float((s - p).abs())
        self.picks.clear()
